//! The item codec: how runs, the query index, pointers and snapshot groups are laid out as DynamoDB
//! items (`docs/dynamodb.md`), and read back with every malformation named.

use crate::domain::allocation::CostVector;
use crate::domain::resources;
use crate::domain::run::{LatestRun, Run, RunState};
use crate::domain::snapshot::{DayFigures, Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::domain::Dimension;
use crate::ports::{PeriodStatus, RunFailure, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit is 400 KB; a group is refused well before it.
const ITEM_BUDGET: usize = 350 * 1024;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
pub(super) const POINTER_PK: &str = "POINTER";
/// Pointer attributes: the newest known run (JSON) and its version (for the condition), the
/// versions replaced by a flip and not yet expired (a number set).
pub(super) const LATEST: &str = "latest";
pub(super) const LATEST_VERSION: &str = "latest_version";
pub(super) const RETIRING: &str = "retiring";

/// The query index item's key.
pub fn query_key(query_id: &str) -> Item {
    HashMap::from([
        (PK.to_string(), s(format!("QUERY#{query_id}"))),
        (SK.to_string(), s("QUERY")),
    ])
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn malformed(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Malformed {
        key: key.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn text<'a>(item: &'a Item, name: &str, key: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(malformed(
            key,
            format!("`{name}` is missing or not a string"),
        )),
    }
}

pub(super) fn number(item: &Item, name: &str, key: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| malformed(key, format!("`{name}` is not an integer: {v}"))),
        _ => Err(malformed(
            key,
            format!("`{name}` is missing or not a number"),
        )),
    }
}

pub(super) fn json_attr<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
    key: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text(item, name, key)?)
        .map_err(|e| malformed(key, format!("`{name}` is not the expected JSON: {e}")))
}

pub(super) fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The partition holding one level of one snapshot.
pub fn snapshot_partition(period: BillingPeriod, version: i64, level: Level) -> String {
    format!("SNAP#{}#{}#{}", period.label(), version, level.name())
}

/// The compact encoding of a group: `{"a":allocated,"k":[keys],"d":[[day of month, 4 costs, line items, resources], …]}`,
/// and beside it, binary attribute `r`, the days' resource sets (`domain::resources::encode_days`).
/// `resources` in `d` is each day's count, for people reading the table.
/// Costs keep full `f64` precision (shortest round-trip form), so sums reconcile to the cent.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupBody {
    a: bool,
    k: Vec<String>,
    d: Vec<(u32, f64, f64, f64, f64, u64, u64)>,
}

/// The item of one group of a snapshot.
pub fn group_item(info: &SnapshotInfo, group: &SnapshotGroup) -> Result<Item, StoreError> {
    use chrono::Datelike;
    let body = GroupBody {
        a: group.allocated,
        k: group.keys.clone(),
        d: group
            .days()
            .iter()
            .map(|(day, f)| {
                let [a, b, c, d] = f.costs.0;
                (day.day(), a, b, c, d, f.line_items, f.resources.len())
            })
            .collect(),
    };
    let pk = snapshot_partition(info.period, info.version, group.level);
    let encoded = to_json(&body);
    let resources = resources::encode_days(
        group
            .days()
            .iter()
            .map(|(day, f)| (day.day(), &f.resources)),
    );
    if encoded.len() + resources.len() > ITEM_BUDGET {
        return Err(malformed(
            &pk,
            format!(
                "group {:?} encodes to {} bytes, over the {} byte budget",
                group.keys,
                encoded.len() + resources.len(),
                ITEM_BUDGET
            ),
        ));
    }
    Ok(HashMap::from([
        (PK.to_string(), s(pk)),
        (SK.to_string(), s(group.id())),
        ("g".to_string(), s(encoded)),
        (
            "r".to_string(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(resources)),
        ),
    ]))
}

/// Reads a group item back.
/// Reads a group item back; `extras` are the snapshot's ([`SnapshotInfo::extras`]: its labels, then
/// the resource), which key its full level after the fixed dimensions.
pub fn read_group(
    item: &Item,
    period: BillingPeriod,
    level: Level,
    extras: &std::sync::Arc<[Dimension]>,
) -> Result<SnapshotGroup, StoreError> {
    let key = text(item, SK, "snapshot group")?;
    let body: GroupBody = json_attr(item, "g", key)?;
    let bytes = match item.get("r") {
        Some(AttributeValue::B(blob)) => blob.as_ref(),
        _ => {
            return Err(malformed(
                key,
                "binary attribute `r` (resource sets) is missing",
            ))
        }
    };
    let mut sets: BTreeMap<u32, resources::ResourceSet> = resources::decode_days(bytes)
        .map_err(|reason| malformed(key, format!("attribute `r`: {reason}")))?
        .into_iter()
        .collect();
    let mut days = BTreeMap::new();
    for (day, a, b, c, d, line_items, count) in body.d {
        let resources = sets.remove(&day).unwrap_or_default();
        if resources.len() != count {
            return Err(malformed(
                key,
                format!(
                    "day {day}: {count} resources in `g`, {} in `r`",
                    resources.len()
                ),
            ));
        }
        let date = chrono::NaiveDate::from_ymd_opt(period.year, period.month, day)
            .ok_or_else(|| malformed(key, format!("day {day} is not in {}", period.label())))?;
        days.insert(
            date,
            DayFigures {
                costs: CostVector([a, b, c, d]),
                line_items,
                resources,
            },
        );
    }
    let extras: std::sync::Arc<[Dimension]> = match level {
        Level::Full => extras.clone(),
        Level::Namespace => std::sync::Arc::from(Vec::new()),
    };
    if body.k.len() != level.dimensions().len() + extras.len() {
        return Err(malformed(
            key,
            "key length does not match its level and the snapshot's labels and resource key",
        ));
    }
    Ok(SnapshotGroup::new(level, body.k, body.a, days).with_extras(extras))
}

pub fn pointer_status(item: &Item) -> Result<PeriodStatus, StoreError> {
    let key = text(item, SK, "pointer")?;
    let period = BillingPeriod::parse(key).map_err(|e| malformed(key, e.to_string()))?;
    let serving = match item.get("info") {
        Some(_) => Some(json_attr::<SnapshotInfo>(item, "info", key)?),
        None => None,
    };
    let last_failure = match item.get("last_failure") {
        Some(_) => Some(json_attr::<RunFailure>(item, "last_failure", key)?),
        None => None,
    };
    let latest = match item.get(LATEST) {
        Some(_) => Some(json_attr::<LatestRun>(item, LATEST, key)?),
        None => None,
    };
    let retiring = match item.get(RETIRING) {
        Some(AttributeValue::Ns(versions)) => versions
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| malformed(key, format!("`{RETIRING}` holds {v}")))
            })
            .collect::<Result<Vec<i64>, _>>()?,
        Some(_) => return Err(malformed(key, format!("`{RETIRING}` is not a number set"))),
        None => Vec::new(),
    };
    Ok(PeriodStatus {
        period,
        serving,
        last_failure,
        latest,
        retiring,
    })
}

/// A run's key: one partition per billing period (the reconciler lists a period's runs with one
/// `Query`), the run id as sort key.
pub fn run_key(period: BillingPeriod, run_id: &str) -> Item {
    HashMap::from([
        (PK.to_string(), s(format!("RUN#{}", period.label()))),
        (SK.to_string(), s(run_id)),
    ])
}

pub fn run_item(run: &Run) -> Item {
    let mut item = run_key(run.period, &run.id);
    item.insert("period".into(), s(run.period.label()));
    item.insert("version".into(), n(run.version));
    item.insert("source".into(), s(&run.source));
    item.insert("state".into(), s(run.state.name()));
    item.insert("columns".into(), s(to_json(&run.columns)));
    item.insert("tag_mapping".into(), s(to_json(&run.tag_mapping)));
    item.insert("updated_at_ms".into(), n(run.updated_at_ms));
    item.insert("missing_tags".into(), s(to_json(&run.missing_tags)));
    if let Some(q) = &run.query_id {
        item.insert("query_id".into(), s(q));
    }
    if let Some(f) = &run.failure {
        item.insert("failure".into(), s(f));
    }
    item
}

pub fn read_run(item: &Item) -> Result<Run, StoreError> {
    let pk = text(item, PK, "run")?;
    if !pk.starts_with("RUN#") {
        return Err(malformed(pk, "not a run key"));
    }
    let id = text(item, SK, pk)?;
    let state = text(item, "state", pk)?;
    let optional = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    Ok(Run {
        id: id.to_string(),
        period: BillingPeriod::parse(text(item, "period", pk)?)
            .map_err(|e| malformed(pk, e.to_string()))?,
        version: number(item, "version", pk)?,
        source: text(item, "source", pk)?.to_string(),
        state: RunState::parse(state)
            .ok_or_else(|| malformed(pk, format!("unknown state `{state}`")))?,
        query_id: optional("query_id"),
        columns: json_attr(item, "columns", pk)?,
        tag_mapping: json_attr(item, "tag_mapping", pk)?,
        missing_tags: json_attr(item, "missing_tags", pk)?,
        failure: optional("failure"),
        updated_at_ms: number(item, "updated_at_ms", pk)?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::Label;

    pub fn info(version: i64) -> SnapshotInfo {
        SnapshotInfo {
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            version,
            run_id: "r".into(),
            source: "s".into(),
            flavour: crate::domain::Flavour::Cur2,
            computed_at: "2024-07-01T00:00:00Z".into(),
            line_items: 1,
            groups: vec![0, 0],
            labels: vec![],
            resources: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn group_items_round_trip_with_exact_costs() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid");
        let group = SnapshotGroup::new(
            Level::Full,
            (0..8).map(|i| format!("k{i} \"quoted\", comma")).collect(),
            false,
            BTreeMap::from([(
                day,
                DayFigures {
                    costs: CostVector([0.1 + 0.2, 1e-12, -3.5, 123_456_789.123_456_79]),
                    line_items: 7,
                    resources: resources::ResourceSet::from_hashes([2, 1 << 63]),
                },
            )]),
        );
        let none: std::sync::Arc<[Dimension]> = std::sync::Arc::from(Vec::new());
        let item = group_item(&info(1), &group).expect("encodable");
        assert_eq!(
            read_group(&item, info(1).period, Level::Full, &none).expect("decodable"),
            group
        );
        let wrong_level = read_group(&item, info(1).period, Level::Namespace, &none);
        assert!(wrong_level.is_err());
        // With a label and the resource, the full level's keys end with their values; the snapshot's
        // extra keys say so.
        let team = Dimension::Label(Label::new("team").expect("valid"));
        let extras: std::sync::Arc<[Dimension]> = vec![team, Dimension::Resource].into();
        let mut keys = group.keys.clone();
        keys.push("payments".into());
        keys.push("db-1".into());
        let labelled = SnapshotGroup::new(Level::Full, keys, false, group.days().clone())
            .with_extras(extras.clone());
        let item = group_item(&info(1), &labelled).expect("encodable");
        let back = read_group(&item, info(1).period, Level::Full, &extras).expect("decodable");
        assert_eq!(back, labelled);
        assert_eq!(back.key_at(team), Some(8));
        assert_eq!(back.value(Dimension::Resource), Some("db-1"));
        assert!(
            read_group(&item, info(1).period, Level::Full, &none).is_err(),
            "a key too long for a snapshot without labels"
        );
    }

    #[test]
    fn runs_round_trip_with_their_typed_tag_mapping() {
        let mut mapping = crate::domain::TagMapping::default();
        mapping
            .apply_override("namespace=app.kubernetes.io/part-of,team")
            .expect("valid");
        let run = Run {
            id: "cur/x#2024-06#exec-1".into(),
            period: info(1).period,
            version: 5,
            source: "exec-1".into(),
            state: RunState::Writing,
            query_id: Some("q-1".into()),
            columns: vec!["a".into()],
            tag_mapping: mapping,
            missing_tags: vec!["team".into()],
            failure: None,
            updated_at_ms: 1_719_814_351_123,
        };
        assert_eq!(read_run(&run_item(&run)).expect("decodable"), run);
        let mut broken = run_item(&run);
        broken.insert("state".into(), s("DONE"));
        let err = read_run(&broken).expect_err("unknown state");
        assert!(err.to_string().contains("DONE"), "{err}");
    }
}

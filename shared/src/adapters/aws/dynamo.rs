//! The DynamoDB store: runs, query index, billing-period pointers and snapshot groups in one table.
//! Key schema and access patterns: `docs/dynamodb.md`.

use super::retry::Backoff;
use crate::domain::allocation::CostVector;
use crate::domain::resources;
use crate::domain::run::{Run, RunState};
use crate::domain::snapshot::{DayFigures, Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::{PeriodStatus, RunFailure, SnapshotReader, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Item = HashMap<String, AttributeValue>;

/// AWS's limit on one `BatchWriteItem` request (API reference, BatchWriteItem: "up to 25 item put or
/// delete operations"). moto accepts more; real DynamoDB rejects the whole request.
pub const BATCH_WRITE_LIMIT: usize = 25;
/// Batches in flight at once per writer.
pub const WRITE_CONCURRENCY: usize = 4;
/// DynamoDB's item size limit is 400 KB; a group is refused well before it.
const ITEM_BUDGET: usize = 350 * 1024;
/// How long items of a replaced snapshot stay readable for requests that read its pointer before the flip.
pub const EXPIRY_GRACE_SECONDS: i64 = 3600;

const PK: &str = "pk";
const SK: &str = "sk";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
const POINTER_PK: &str = "POINTER";

/// Request counts, for the benchmark and for tests that hold the access patterns to their budget.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub batch_writes: AtomicU64,
    pub queries: AtomicU64,
    pub other: AtomicU64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.batch_writes.load(Ordering::Relaxed)
            + self.queries.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

/// The outcome of publishing a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Flip {
    /// The pointer now names this snapshot; `previous` was serving before.
    Flipped { previous: Option<SnapshotInfo> },
    /// The pointer already named this very version (a rerun after the flip).
    AlreadyServing,
    /// A newer version serves: this snapshot must not.
    Newer { serving: i64 },
}

/// The outcome of claiming a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    New,
    Existing(Run),
}

/// The DynamoDB-backed store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    counts: Arc<RequestCounts>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn backend<E>(context: impl Into<String>) -> impl FnOnce(SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let context = context.into();
    move |err| StoreError::Backend {
        context,
        source: aws_sdk_dynamodb::error::DisplayErrorContext(err)
            .to_string()
            .into(),
    }
}

fn malformed(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Malformed {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn text<'a>(item: &'a Item, name: &str, key: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(malformed(
            key,
            format!("`{name}` is missing or not a string"),
        )),
    }
}

fn number(item: &Item, name: &str, key: &str) -> Result<i64, StoreError> {
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

fn json_attr<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
    key: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text(item, name, key)?)
        .map_err(|e| malformed(key, format!("`{name}` is not the expected JSON: {e}")))
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Whether a `BatchWriteItem` error is worth retrying with backoff after the SDK's own retries gave
/// up: throttling, request limits and internal errors (DynamoDB developer guide, "Error handling").
fn retryable(err: &SdkError<BatchWriteItemError>) -> bool {
    match err.as_service_error() {
        Some(
            BatchWriteItemError::ProvisionedThroughputExceededException(_)
            | BatchWriteItemError::ThrottlingException(_)
            | BatchWriteItemError::RequestLimitExceeded(_)
            | BatchWriteItemError::InternalServerError(_),
        ) => true,
        Some(other) => matches!(other.code(), Some("ThrottlingException")),
        None => false,
    }
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
            .days
            .iter()
            .map(|(day, f)| {
                let [a, b, c, d] = f.costs.0;
                (day.day(), a, b, c, d, f.line_items, f.resources.len())
            })
            .collect(),
    };
    let pk = snapshot_partition(info.period, info.version, group.level);
    let encoded = to_json(&body);
    let resources =
        resources::encode_days(group.days.iter().map(|(day, f)| (day.day(), &f.resources)));
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
pub fn read_group(
    item: &Item,
    period: BillingPeriod,
    level: Level,
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
    if body.k.len() != level.dimensions().len() {
        return Err(malformed(key, "key length does not match its level"));
    }
    Ok(SnapshotGroup {
        level,
        keys: body.k,
        allocated: body.a,
        days,
    })
}

fn pointer_status(item: &Item) -> Result<PeriodStatus, StoreError> {
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
    Ok(PeriodStatus {
        period,
        serving,
        last_failure,
    })
}

fn run_key(run_id: &str) -> Item {
    HashMap::from([
        (PK.to_string(), s(format!("RUN#{run_id}"))),
        (SK.to_string(), s("RUN")),
    ])
}

fn run_item(run: &Run) -> Item {
    let mut item = run_key(&run.id);
    item.insert("period".into(), s(run.period.label()));
    item.insert("version".into(), n(run.version));
    item.insert("source".into(), s(&run.source));
    item.insert("state".into(), s(run.state.name()));
    item.insert("columns".into(), s(to_json(&run.columns)));
    item.insert("tag_keys".into(), s(to_json(&run.tag_keys)));
    item.insert("missing_tags".into(), s(to_json(&run.missing_tags)));
    if let Some(q) = &run.query_id {
        item.insert("query_id".into(), s(q));
    }
    if let Some(f) = &run.failure {
        item.insert("failure".into(), s(f));
    }
    item
}

fn read_run(item: &Item) -> Result<Run, StoreError> {
    let pk = text(item, PK, "run")?;
    let id = pk
        .strip_prefix("RUN#")
        .ok_or_else(|| malformed(pk, "not a run key"))?;
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
        tag_keys: json_attr(item, "tag_keys", pk)?,
        missing_tags: json_attr(item, "missing_tags", pk)?,
        failure: optional("failure"),
    })
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    fn count_other(&self) {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
    }

    /// Claims `run` (state `CLAIMED`) unless a run with its id exists; then returns that one.
    pub async fn claim_run(&self, run: &Run) -> Result<Claim, StoreError> {
        self.count_other();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::New),
            Err(err) => {
                if let Some(existing) = err.as_service_error().and_then(|e| match e {
                    PutItemError::ConditionalCheckFailedException(e) => e.item(),
                    _ => None,
                }) {
                    return Ok(Claim::Existing(read_run(existing)?));
                }
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    // Older DynamoDB-compatibles do not return the item: read it.
                    return self
                        .run(&run.id)
                        .await?
                        .map(Claim::Existing)
                        .ok_or_else(|| malformed(&run.id, "claimed but unreadable"));
                }
                Err(backend(format!("claiming run {}", run.id))(err))
            }
        }
    }

    pub async fn run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        self.count_other();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(run_key(run_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend(format!("reading run {run_id}")))?;
        out.item().map(read_run).transpose()
    }

    /// The run that started `query_id`, if kubecur started it.
    pub async fn run_by_query(&self, query_id: &str) -> Result<Option<Run>, StoreError> {
        self.count_other();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(format!("QUERY#{query_id}")))
            .key(SK, s("QUERY"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend(format!("looking up query {query_id}")))?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                let run_id = text(item, "run_id", query_id)?.to_string();
                self.run(&run_id).await
            }
        }
    }

    /// Records that `run` started `query_id`: the index item first, so the writer can always find it.
    pub async fn record_query(&self, run: &Run, query_id: &str) -> Result<(), StoreError> {
        self.count_other();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(format!("QUERY#{query_id}")))
            .item(SK, s("QUERY"))
            .item("run_id", s(&run.id))
            .send()
            .await
            .map_err(backend(format!("indexing query {query_id}")))?;
        let mut updated = run.clone();
        updated.query_id = Some(query_id.to_string());
        updated.state = RunState::Querying;
        self.put_run(&updated).await
    }

    pub async fn put_run(&self, run: &Run) -> Result<(), StoreError> {
        self.count_other();
        let mut item = run_item(run);
        item.insert("updated_at".into(), s(now_rfc3339()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend(format!("recording run {}", run.id)))?;
        Ok(())
    }

    /// Writes every group of a snapshot: batches of at most [`BATCH_WRITE_LIMIT`], [`WRITE_CONCURRENCY`]
    /// in flight, unprocessed items and throttling retried with exponential backoff and full jitter.
    pub async fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: &[SnapshotGroup],
    ) -> Result<(), StoreError> {
        let items: Vec<Item> = groups
            .iter()
            .map(|g| group_item(info, g))
            .collect::<Result<_, _>>()?;
        self.put_items(
            items,
            &format!("snapshot {} v{}", info.period.label(), info.version),
        )
        .await
    }

    async fn put_items(&self, items: Vec<Item>, what: &str) -> Result<(), StoreError> {
        // Items are moved into their requests, not copied: a snapshot can hold many thousand.
        let mut requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| malformed(what, e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut batches = Vec::with_capacity(requests.len().div_ceil(BATCH_WRITE_LIMIT));
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_WRITE_LIMIT));
            batches.push(std::mem::replace(&mut requests, rest));
        }
        stream::iter(
            batches
                .into_iter()
                .map(|batch| self.write_batch(batch, what)),
        )
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// One batch, retried until every request is processed or the backoff gives up.
    pub async fn write_batch(
        &self,
        batch: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        debug_assert!(batch.len() <= BATCH_WRITE_LIMIT);
        let mut pending = batch;
        let mut backoff = Backoff::new();
        loop {
            self.counts.batch_writes.fetch_add(1, Ordering::Relaxed);
            let result = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await;
            match result {
                Ok(out) => {
                    let unprocessed = out
                        .unprocessed_items()
                        .and_then(|m| m.get(&self.table))
                        .cloned()
                        .unwrap_or_default();
                    if unprocessed.is_empty() {
                        return Ok(());
                    }
                    tracing::debug!(
                        unprocessed = unprocessed.len(),
                        "BatchWriteItem left items unprocessed; retrying."
                    );
                    pending = unprocessed;
                }
                Err(err) if retryable(&err) => {
                    tracing::debug!(code = ?err.code(), "BatchWriteItem throttled; retrying.");
                }
                Err(err) => return Err(backend(format!("writing {what}"))(err)),
            }
            if !backoff.wait().await {
                return Err(StoreError::Backend {
                    context: format!("writing {what}"),
                    source: format!(
                        "{} items still unprocessed after {} attempts",
                        pending.len(),
                        backoff.attempts()
                    )
                    .into(),
                });
            }
        }
    }

    /// Makes `info` the period's serving snapshot if no newer version serves (a conditional update:
    /// only a newer run can win).
    pub async fn flip(&self, info: &SnapshotInfo) -> Result<Flip, StoreError> {
        self.count_other();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(POINTER_PK))
            .key(SK, s(info.period.label()))
            .update_expression("SET #info = :info, #version = :version")
            .condition_expression("attribute_not_exists(#version) OR #version < :version")
            .expression_attribute_names("#info", "info")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":info", s(to_json(info)))
            .expression_attribute_values(":version", n(info.version))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let previous = match out.attributes() {
                    Some(old) if old.contains_key("info") => pointer_status(old)?.serving,
                    _ => None,
                };
                Ok(Flip::Flipped { previous })
            }
            Err(err) => {
                let current = err.as_service_error().and_then(|e| match e {
                    UpdateItemError::ConditionalCheckFailedException(e) => {
                        Some(e.item().map(|i| number(i, "version", "pointer")))
                    }
                    _ => None,
                });
                match current {
                    Some(Some(Ok(v))) if v == info.version => Ok(Flip::AlreadyServing),
                    Some(Some(Ok(v))) => Ok(Flip::Newer { serving: v }),
                    Some(_) => {
                        // No item returned: read the pointer to tell the two cases apart.
                        let now = self.pointers(&[info.period]).await?;
                        let v = now
                            .first()
                            .and_then(|p| p.serving.as_ref())
                            .map(|s| s.version)
                            .unwrap_or_default();
                        Ok(if v == info.version {
                            Flip::AlreadyServing
                        } else {
                            Flip::Newer { serving: v }
                        })
                    }
                    None => Err(backend(format!("publishing {}", info.period.label()))(err)),
                }
            }
        }
    }

    /// Records a failed run on the period's pointer; the serving snapshot is untouched.
    pub async fn record_failure(
        &self,
        period: BillingPeriod,
        failure: &RunFailure,
    ) -> Result<(), StoreError> {
        self.count_other();
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(POINTER_PK))
            .key(SK, s(period.label()))
            .update_expression("SET #f = :f")
            .expression_attribute_names("#f", "last_failure")
            .expression_attribute_values(":f", s(to_json(failure)))
            .send()
            .await
            .map_err(backend(format!(
                "recording a failure of {}",
                period.label()
            )))?;
        Ok(())
    }

    /// Sets the TTL attribute on every item of a snapshot (re-put in batches: `BatchWriteItem` has no
    /// update). DynamoDB deletes them within days of the time; readers never look at them again, since
    /// the pointer names another version.
    pub async fn expire(
        &self,
        info: &SnapshotInfo,
        at_epoch_seconds: i64,
    ) -> Result<u64, StoreError> {
        let mut items = Vec::new();
        for level in Level::ALL {
            items.extend(
                self.query_partition(&snapshot_partition(info.period, info.version, level))
                    .await?,
            );
        }
        for item in &mut items {
            item.insert(TTL_ATTRIBUTE.into(), n(at_epoch_seconds));
        }
        let total = items.len() as u64;
        // One batch sequence over both levels: batches stay full across the level boundary.
        self.put_items(
            items,
            &format!("expiring {} v{}", info.period.label(), info.version),
        )
        .await?;
        Ok(total)
    }

    async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        self.query_all(pk, None).await
    }

    /// Every item of partition `pk` (with sort keys in `[first, last]` when given), page by page.
    /// Consistent reads: items written just before a pointer flip must all be seen.
    async fn query_all(
        &self,
        pk: &str,
        range: Option<(&str, &str)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.counts.queries.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            request = match range {
                None => request.key_condition_expression("#pk = :pk"),
                Some((first, last)) => request
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :last")
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":first", s(first))
                    .expression_attribute_values(":last", s(last)),
            };
            let page = request
                .send()
                .await
                .map_err(backend(format!("reading {pk}")))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}

impl SnapshotReader for DynamoStore {
    async fn pointers(&self, periods: &[BillingPeriod]) -> Result<Vec<PeriodStatus>, StoreError> {
        let (Some(first), Some(last)) = (periods.iter().min(), periods.iter().max()) else {
            return Ok(Vec::new());
        };
        // Pointers share one partition, sorted by period: a window's pointers are one range query.
        let mut out = Vec::new();
        for item in self
            .query_all(POINTER_PK, Some((&first.label(), &last.label())))
            .await?
        {
            let status = pointer_status(&item)?;
            if periods.contains(&status.period) {
                out.push(status);
            }
        }
        Ok(out)
    }

    async fn all_pointers(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        self.query_partition(POINTER_PK)
            .await?
            .iter()
            .map(pointer_status)
            .collect()
    }

    async fn groups(
        &self,
        info: &SnapshotInfo,
        level: Level,
    ) -> Result<Vec<SnapshotGroup>, StoreError> {
        self.query_partition(&snapshot_partition(info.period, info.version, level))
            .await?
            .iter()
            .map(|item| read_group(item, info.period, level))
            .collect()
    }
}

/// Error paths against `aws-smithy-mocks`: what DynamoDB does under load and contention.
#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::sync::Mutex;

    fn store(client: Client) -> DynamoStore {
        DynamoStore::new(client, "kubecur")
    }

    fn requests(n: usize) -> Vec<WriteRequest> {
        (0..n)
            .map(|i| {
                let put = PutRequest::builder()
                    .item(PK, s("p"))
                    .item(SK, s(i.to_string()))
                    .build()
                    .expect("valid");
                WriteRequest::builder().put_request(put).build()
            })
            .collect()
    }

    fn info(version: i64) -> SnapshotInfo {
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
            warnings: vec![],
        }
    }

    /// A `BatchWriteItem` rule builder that records the size of every request it sees.
    fn recording_batch_sizes() -> (
        std::sync::Arc<Mutex<Vec<usize>>>,
        aws_smithy_mocks::RuleBuilder<
            aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput,
            BatchWriteItemOutput,
            BatchWriteItemError,
        >,
    ) {
        let sizes = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let rule = mock!(Client::batch_write_item).match_requests(move |req| {
            let n = req
                .request_items()
                .and_then(|m| m.get("kubecur"))
                .map_or(0, Vec::len);
            seen.lock().expect("lock").push(n);
            true
        });
        (sizes, rule)
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_until_none_remain() {
        let (sizes, rule) = recording_batch_sizes();
        let rule = rule
            .sequence()
            .output(|| {
                BatchWriteItemOutput::builder()
                    .unprocessed_items("kubecur", requests(3))
                    .build()
            })
            .output(|| BatchWriteItemOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        store(client)
            .write_batch(requests(25), "test")
            .await
            .expect("written");
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(*sizes.lock().expect("lock"), vec![25, 3]);
    }

    #[tokio::test]
    async fn throttling_is_retried_with_backoff() {
        let rule = mock!(Client::batch_write_item)
            .sequence()
            .error(|| {
                BatchWriteItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .build(),
                )
            })
            .times(2)
            .output(|| BatchWriteItemOutput::builder().build())
            .build();
        // The SDK's own retries are off so this layer's retry is what is tested.
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| {
            c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        });
        let store = store(client);
        store
            .write_batch(requests(5), "test")
            .await
            .expect("written after throttling");
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(store.counts().batch_writes.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn other_errors_fail_the_write_at_once() {
        let rule = mock!(Client::batch_write_item).then_error(|| {
            BatchWriteItemError::ResourceNotFoundException(
                aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
                    .message("no table")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| {
            c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        });
        let err = store(client)
            .write_batch(requests(5), "snapshot x")
            .await
            .expect_err("not retryable");
        assert!(err.to_string().contains("writing snapshot x"), "{err}");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn snapshots_are_written_in_batches_of_at_most_25() {
        let (sizes, rule) = recording_batch_sizes();
        let rule = rule.then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let groups: Vec<SnapshotGroup> = (0..60)
            .map(|i| SnapshotGroup {
                level: Level::Namespace,
                keys: vec![format!("ns-{i}")],
                allocated: true,
                days: BTreeMap::new(),
            })
            .collect();
        store(client)
            .write_groups(&info(1), &groups)
            .await
            .expect("written");
        let mut sizes = sizes.lock().expect("lock").clone();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![10, 25, 25]);
    }

    #[tokio::test]
    async fn a_second_claim_returns_the_existing_run() {
        let existing = Run {
            id: "cur/x#2024-06#exec-1".into(),
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            version: 5,
            source: "exec-1".into(),
            state: RunState::Querying,
            query_id: Some("q-1".into()),
            columns: vec!["a".into()],
            tag_keys: vec![],
            missing_tags: vec![],
            failure: None,
        };
        let stored = run_item(&existing);
        let rule = mock!(Client::put_item).then_error(move || {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .set_item(Some(stored.clone()))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let mut again = existing.clone();
        again.state = RunState::Claimed;
        again.query_id = None;
        let claim = store(client).claim_run(&again).await.expect("answered");
        assert_eq!(claim, Claim::Existing(existing));
    }

    #[tokio::test]
    async fn only_a_newer_version_wins_the_pointer() {
        let conflict = |version: i64| {
            move || {
                UpdateItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder()
                        .item(PK, s(POINTER_PK))
                        .item(SK, s("2024-06"))
                        .item("version", n(version))
                        .build(),
                )
            }
        };
        for (serving, expected) in [(9, Flip::Newer { serving: 9 }), (7, Flip::AlreadyServing)] {
            let rule = mock!(Client::update_item).then_error(conflict(serving));
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
            assert_eq!(
                store(client).flip(&info(7)).await.expect("answered"),
                expected
            );
        }
        let previous = info(3);
        let old = HashMap::from([
            (PK.to_string(), s(POINTER_PK)),
            (SK.to_string(), s("2024-06")),
            ("info".to_string(), s(to_json(&previous))),
            ("version".to_string(), n(3)),
        ]);
        let rule = mock!(Client::update_item).then_output(move || {
            UpdateItemOutput::builder()
                .set_attributes(Some(old.clone()))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        assert_eq!(
            store(client).flip(&info(7)).await.expect("flipped"),
            Flip::Flipped {
                previous: Some(previous)
            }
        );
    }

    #[test]
    fn group_items_round_trip_with_exact_costs() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid");
        let group = SnapshotGroup {
            level: Level::Full,
            keys: (0..8).map(|i| format!("k{i} \"quoted\", comma")).collect(),
            allocated: false,
            days: BTreeMap::from([(
                day,
                DayFigures {
                    costs: CostVector([0.1 + 0.2, 1e-12, -3.5, 123456789.123456789]),
                    line_items: 7,
                    resources: resources::ResourceSet::from_hashes([2, 1 << 63]),
                },
            )]),
        };
        let item = group_item(&info(1), &group).expect("encodable");
        assert_eq!(
            read_group(&item, info(1).period, Level::Full).expect("decodable"),
            group
        );
        let wrong_level = read_group(&item, info(1).period, Level::Namespace);
        assert!(wrong_level.is_err());
    }
}

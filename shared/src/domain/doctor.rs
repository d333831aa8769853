//! `kubecur doctor`'s verdicts: what a deployment's facts (gathered by the `deployment` use case) mean,
//! each as one check that passes or fails with the exact fix. Also the cost allocation tag rules of
//! `kubecur setup tags`. Pure: the facts come in as values.

use super::columns::ColumnSet;
use super::flavour::Flavour;
use super::run::{Health, LatestRun};
use super::tags::{resolve_tag, Concept, Resolution, TagMapping};
use super::window::BillingPeriod;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// Whether one check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
}

/// One line of the report: what was checked, what was found, and what to do when it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Stable identifier (`credentials`, `export`, …) for scripts.
    pub name: &'static str,
    pub status: Status,
    /// What was found, in one sentence.
    pub message: String,
    /// The exact fix; present exactly when the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            message: message.into(),
            fix: None,
        }
    }

    pub fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }
}

impl fmt::Display for Check {
    /// `✔ name: message` or `✘ name: message → fix: …`, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fix {
            None => write!(f, "✔ {}: {}", self.name, self.message),
            Some(fix) => write!(f, "✘ {}: {} → fix: {}", self.name, self.message, fix),
        }
    }
}

/// Every check, in the order they were run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// True only when there is at least one check and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(Check::passed)
    }

    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed()).count()
    }

    /// One line per check.
    pub fn to_text(&self) -> String {
        self.checks
            .iter()
            .map(|c| format!("{c}\n"))
            .collect::<String>()
    }

    /// `{ "ok": bool, "checks": [ {name, status, message, fix?} ] }`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": self.passed(), "checks": self.checks })
    }
}

// ---------------------------------------------------------------------------------------------
// Cost allocation tags

/// Where Cost Explorer stands on one tag key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagState {
    Active,
    Inactive,
    /// Not listed by `ListCostAllocationTags`: AWS has not seen the key on a bill yet and refuses to
    /// activate it until it has (up to 24 hours after the key is first used).
    NotSeen,
}

impl fmt::Display for TagState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TagState::Active => "active",
            TagState::Inactive => "inactive",
            TagState::NotSeen => "not yet seen by AWS",
        })
    }
}

/// `ListCostAllocationTags` accepts at most 100 keys per request
/// (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_ListCostAllocationTags.html).
pub const MAX_TAG_KEYS_PER_LIST: usize = 100;

/// `UpdateCostAllocationTagsStatus` takes 1 to 20 entries per request
/// (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_UpdateCostAllocationTagsStatus.html).
pub const MAX_TAG_KEYS_PER_UPDATE: usize = 20;

/// What kubecur needs activated: every key of every concept of the mapping, in concept order, each once.
pub fn wanted_tag_keys(mapping: &TagMapping) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for concept in Concept::ALL {
        for key in mapping.keys(concept) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The state of each wanted key given what Cost Explorer listed (`key → active?`). Tag keys are
/// case-sensitive in AWS, so they are compared exactly; a key not listed is [`TagState::NotSeen`].
pub fn tag_states(wanted: &[String], listed: &BTreeMap<String, bool>) -> Vec<(String, TagState)> {
    wanted
        .iter()
        .map(|key| {
            let state = match listed.get(key) {
                Some(true) => TagState::Active,
                Some(false) => TagState::Inactive,
                None => TagState::NotSeen,
            };
            (key.clone(), state)
        })
        .collect()
}

/// The first day of the month `YYYY-MM`, as `StartCostAllocationTagBackfill` wants it
/// (`2024-06-01T00:00:00Z`). AWS accepts only the first day of a month, not in the future and not
/// before the previous twelve months
/// (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_StartCostAllocationTagBackfill.html):
/// anything else is refused here with the allowed range.
pub fn backfill_from(text: &str, today: NaiveDate) -> Result<String, String> {
    let current = BillingPeriod::of(today);
    let earliest = BillingPeriod::of(
        current
            .first_day()
            .checked_sub_months(Months::new(12))
            .unwrap_or(NaiveDate::MIN),
    );
    let allowed = format!(
        "a month from {} to {} (AWS backfills at most the previous twelve months)",
        earliest.label(),
        current.label()
    );
    let period = BillingPeriod::parse(text)
        .map_err(|_| format!("--backfill `{text}` is not a month: expected YYYY-MM, {allowed}"))?;
    if period > current {
        return Err(format!(
            "--backfill {} is in the future: expected {allowed}",
            period.label()
        ));
    }
    if period < earliest {
        return Err(format!(
            "--backfill {} is too far back: expected {allowed}",
            period.label()
        ));
    }
    Ok(format!(
        "{}T00:00:00Z",
        period.first_day().format("%Y-%m-%d")
    ))
}

/// The tags check: passes when every wanted key is active.
pub fn tags_check(states: &[(String, TagState)]) -> Check {
    const NAME: &str = "tags";
    if states.is_empty() {
        return Check::fail(
            NAME,
            "no tag keys to check",
            "pass --tag-key CONCEPT=KEY[,KEY] or use the defaults",
        );
    }
    let list = |wanted: TagState| -> Vec<&str> {
        states
            .iter()
            .filter(|(_, s)| *s == wanted)
            .map(|(k, _)| k.as_str())
            .collect()
    };
    let (active, inactive, unseen) = (
        list(TagState::Active),
        list(TagState::Inactive),
        list(TagState::NotSeen),
    );
    let mut parts = Vec::new();
    for (label, keys) in [
        ("active", &active),
        ("inactive", &inactive),
        ("not yet seen by AWS", &unseen),
    ] {
        if !keys.is_empty() {
            parts.push(format!("{label}: {}", keys.join(", ")));
        }
    }
    let message = parts.join("; ");
    if inactive.is_empty() && unseen.is_empty() {
        return Check::pass(NAME, message);
    }
    let mut fixes = Vec::new();
    if !inactive.is_empty() {
        fixes.push("run `kubecur setup tags --apply` to activate the inactive keys".to_string());
    }
    if !unseen.is_empty() {
        fixes.push(
            "tag at least one resource with each unseen key; AWS lists a key up to 24 h after its first use, then re-run `kubecur setup tags --apply`"
                .to_string(),
        );
    }
    Check::fail(NAME, message, fixes.join("; "))
}

// ---------------------------------------------------------------------------------------------
// The Data Export

/// What `GetExport` says about the export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportFacts {
    pub name: String,
    /// The export's SQL (`SELECT … FROM COST_AND_USAGE_REPORT`).
    pub query: String,
    /// Table name → its properties (`INCLUDE_RESOURCES` → `TRUE` …).
    pub table_configurations: BTreeMap<String, BTreeMap<String, String>>,
    /// `PARQUET` or `TEXT_OR_CSV`.
    pub format: String,
    /// `OVERWRITE_REPORT` or `CREATE_NEW_REPORT`.
    pub overwrite: String,
    pub bucket: String,
    pub prefix: String,
    /// `HEALTHY` / `UNHEALTHY`, with the reason when unhealthy.
    pub health: Option<String>,
    pub health_reason: Option<String>,
}

impl ExportFacts {
    /// The key prefix the export delivers under: `<prefix>/<export name>` (no slashes at the ends).
    pub fn delivery_root(&self) -> String {
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            self.name.clone()
        } else {
            format!("{prefix}/{}", self.name)
        }
    }
}

/// The export check: it exists, is healthy, includes resource IDs, is Parquet, overwrites, and
/// selects the two columns kubecur cannot do without.
pub fn export_check(name: &str, export: Option<&ExportFacts>) -> Check {
    const NAME: &str = "export";
    let Some(export) = export else {
        return Check::fail(
            NAME,
            format!("no Data Export named {name} in this account (BCM Data Exports, us-east-1)"),
            "create it: the Terraform module kubecur-billing does (or pass --export-name with the name of yours)",
        );
    };
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let include_resources = export
        .table_configurations
        .values()
        .filter_map(|properties| properties.get("INCLUDE_RESOURCES"))
        .any(|value| value.eq_ignore_ascii_case("TRUE"));
    if !include_resources {
        problems.push("INCLUDE_RESOURCES is not TRUE (no resource IDs: nothing can be attributed to a resource)".to_string());
        fixes.push("set the table property INCLUDE_RESOURCES = TRUE");
    }
    if export.format != "PARQUET" {
        problems.push(format!("format is {}, not PARQUET", export.format));
        fixes.push("set the format to PARQUET");
    }
    if export.overwrite != "OVERWRITE_REPORT" {
        problems.push(format!(
            "delivery is {}, not OVERWRITE_REPORT (each refresh would add a copy of the month)",
            export.overwrite
        ));
        fixes.push("set the file versioning to OVERWRITE_REPORT");
    }
    let query = export.query.to_ascii_lowercase();
    let missing: Vec<&str> = ["line_item_resource_id", "resource_tags"]
        .into_iter()
        .filter(|column| !query.contains(column))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the export's query does not select {}",
            missing.join(", ")
        ));
        fixes.push("add those columns to the export's query");
    }
    if export.health.as_deref() == Some("UNHEALTHY") {
        problems.push(format!(
            "AWS reports it UNHEALTHY ({})",
            export.health_reason.as_deref().unwrap_or("no reason given")
        ));
        fixes.push("fix the reason AWS gives (usually the bucket policy for bcm-data-exports.amazonaws.com)");
    }
    let location = format!("s3://{}/{}/", export.bucket, export.delivery_root());
    if problems.is_empty() {
        Check::pass(
            NAME,
            format!("{name}: Parquet, resource IDs, overwrite, delivering to {location}"),
        )
    } else {
        Check::fail(
            NAME,
            format!("{name}: {}", problems.join("; ")),
            format!(
                "{} (`aws bcm-data-exports update-export`, or recreate it with the Terraform module kubecur-billing)",
                fixes.join("; ")
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The Glue table

/// The Glue table check: it exists, is a CUR, has resource IDs, and can hold every wanted tag key
/// (a CUR 2.0 table holds them in its `resource_tags` map, so the column is the check; a legacy table
/// needs one `resource_tags_user_…` column per key).
pub fn glue_table_check(
    database: &str,
    table: &str,
    columns: Option<&[String]>,
    mapping: &TagMapping,
) -> Check {
    const NAME: &str = "glue-table";
    let Some(columns) = columns else {
        return Check::fail(
            NAME,
            format!("no Glue table {database}.{table}"),
            "create it (the Terraform module kubecur-billing does), or pass --glue-database and --glue-table",
        );
    };
    let set = ColumnSet::new(columns.iter().map(String::as_str));
    let flavour =
        match Flavour::detect(&set) {
            Ok(flavour) => flavour,
            Err(error) => return Check::fail(
                NAME,
                format!("{database}.{table} is not a CUR table: {error}"),
                "point --glue-database/--glue-table at the table over the export's data/ folder",
            ),
        };
    let mut problems = Vec::new();
    if flavour != Flavour::Focus && !set.has("line_item_resource_id") {
        problems
            .push("no line_item_resource_id column (the export lacks resource IDs)".to_string());
    }
    let missing: Vec<String> = wanted_tag_keys(mapping)
        .iter()
        .filter_map(|key| match resolve_tag(flavour, &set, key) {
            Resolution::Found(_) => None,
            Resolution::Missing { looked_for } => Some(format!("{key} ({looked_for})")),
        })
        .collect();
    if !missing.is_empty() {
        problems.push(format!("cannot hold {}", missing.join(", ")));
    }
    if problems.is_empty() {
        let how = match flavour {
            Flavour::LegacyCur => "a column per tag key".to_string(),
            Flavour::Cur2 => "tags in the resource_tags map".to_string(),
            Flavour::Focus => "tags in the tags map".to_string(),
        };
        return Check::pass(
            NAME,
            format!(
                "{database}.{table}: {flavour}, {} columns, {how}",
                columns.len()
            ),
        );
    }
    let fix = match flavour {
        Flavour::LegacyCur => "activate the tags (`kubecur setup tags --apply`); the report gains a column per active key at its next delivery, then update the table's columns (re-run AWS's crawler)",
        Flavour::Cur2 | Flavour::Focus => "recreate the table from the export's columns (the Terraform module kubecur-billing does)",
    };
    Check::fail(
        NAME,
        format!("{database}.{table} ({flavour}): {}", problems.join("; ")),
        fix,
    )
}

// ---------------------------------------------------------------------------------------------
// Deliveries

/// The newest delivery signal found in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFacts {
    pub key: String,
    pub last_modified: DateTime<Utc>,
}

/// An export "refreshes each time the source data updates, up to three times daily"
/// (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_DataExports_RefreshCadence.html):
/// two days without a new manifest means it has stopped delivering.
pub const MAX_DELIVERY_AGE_HOURS: i64 = 48;

/// The delivery check: a manifest exists under `s3://bucket/root/metadata/` and is recent.
pub fn delivery_check(
    bucket: &str,
    root: &str,
    newest: Option<&DeliveryFacts>,
    now: DateTime<Utc>,
) -> Check {
    const NAME: &str = "delivery";
    let location = format!("s3://{bucket}/{root}/metadata/");
    let Some(newest) = newest else {
        return Check::fail(
            NAME,
            format!("no export manifest under {location}"),
            "wait for the first delivery (AWS delivers within 24 h of creating the export); if it never comes, check the export's health and the bucket policy for bcm-data-exports.amazonaws.com",
        );
    };
    let hours = (now - newest.last_modified).num_hours();
    let age = if hours < 48 {
        format!("{hours} h")
    } else {
        format!("{} days", hours / 24)
    };
    let message = format!(
        "newest manifest s3://{bucket}/{} written {} ({age} ago)",
        newest.key,
        newest.last_modified.format("%Y-%m-%dT%H:%MZ")
    );
    if hours > MAX_DELIVERY_AGE_HOURS {
        Check::fail(
            NAME,
            message,
            format!("the export has not delivered for more than {MAX_DELIVERY_AGE_HOURS} h: check its health (`kubecur doctor` export line) and the bucket policy"),
        )
    } else {
        Check::pass(NAME, message)
    }
}

// ---------------------------------------------------------------------------------------------
// The pipeline

/// The pipeline table check: the DynamoDB table exists and is usable.
pub fn pipeline_table_check(table: &str, status: Option<&str>) -> Check {
    const NAME: &str = "pipeline-table";
    match status {
        None => Check::fail(
            NAME,
            format!("no DynamoDB table {table}"),
            "deploy the pipeline (Terraform module kubecur or the SAM template), or pass --table / --name-prefix",
        ),
        Some("ACTIVE") | Some("UPDATING") => {
            Check::pass(NAME, format!("DynamoDB table {table} is {}", status.unwrap_or("")))
        }
        Some(other) => Check::fail(
            NAME,
            format!("DynamoDB table {table} is {other}"),
            "wait until it is ACTIVE, or redeploy the pipeline",
        ),
    }
}

/// One billing period's pointer, the facts `GET /status` judges.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodRun {
    pub period: BillingPeriod,
    /// The serving snapshot: version and when it was computed (RFC 3339).
    pub serving: Option<(i64, String)>,
    /// The newest delivery kubecur knows of, and its run's state.
    pub latest: Option<LatestRun>,
    /// The last failed run.
    pub last_failure: Option<FailedRun>,
}

/// A billing period's last failed run, as its pointer keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRun {
    pub run_id: String,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

impl PeriodRun {
    /// `fresh`, `stale (why)` or `failed (why)`: the same rule, [`Health::judge`], as `GET /status`.
    pub fn health(&self) -> Health {
        Health::judge(
            self.serving.as_ref().map(|(version, _)| *version),
            self.latest.as_ref(),
            self.last_failure
                .as_ref()
                .map(|f| (f.run_id.as_str(), f.reason.as_str())),
        )
    }
}

/// How many of the newest billing periods the report shows.
pub const RECENT_PERIODS: usize = 3;

/// The runs check: the newest billing period is `fresh` as `GET /status` judges it (its newest
/// delivery serves). Older periods are listed for context.
pub fn pipeline_runs_check(periods: &[PeriodRun]) -> Check {
    const NAME: &str = "pipeline-runs";
    let mut recent: Vec<&PeriodRun> = periods.iter().collect();
    recent.sort_by_key(|p| std::cmp::Reverse(p.period));
    recent.truncate(RECENT_PERIODS);
    let Some(newest) = recent.first() else {
        return Check::fail(
            NAME,
            "no billing period has been allocated yet",
            "wait for a delivery (the ingest starts on its manifest); if one arrived (see the delivery line), read the cur-ingest function's logs",
        );
    };
    let describe = |p: &PeriodRun| -> String {
        let serving = match &p.serving {
            Some((version, at)) => format!("serving v{version} computed {at}"),
            None => "no snapshot".to_string(),
        };
        format!("{} {}, {serving}", p.period.label(), p.health().label())
    };
    let message = recent
        .iter()
        .map(|p| describe(p))
        .collect::<Vec<_>>()
        .join("; ");
    let period = newest.period.label();
    match newest.health() {
        Health::Fresh => Check::pass(NAME, message),
        Health::Failed(_) => Check::fail(
            NAME,
            message,
            format!(
                "the newest delivery of {period} failed and the previous snapshot (if any) keeps serving: fix the reason shown; the next delivery of {period} starts a new run (a delivery that already has a run is not started again)"
            ),
        ),
        Health::Stale(_) => Check::fail(
            NAME,
            message,
            format!(
                "the newest delivery of {period} is not served yet: a run in progress finishes within minutes, and the reconciler (hourly by default) resumes one stuck for 30 minutes; if it stays stale, read the cur-ingest and allocation-writer functions' logs"
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Athena

/// What `GetWorkGroup` says about the pipeline's workgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkgroupFacts {
    /// `ENABLED` / `DISABLED`.
    pub state: String,
    pub output_location: Option<String>,
    pub enforced: bool,
}

/// The workgroup check: it exists, is enabled and has a query result location (the functions leave
/// `KUBECUR_ATHENA_OUTPUT` unset and rely on it).
pub fn workgroup_check(name: &str, workgroup: Option<&WorkgroupFacts>) -> Check {
    const NAME: &str = "athena-workgroup";
    let Some(workgroup) = workgroup else {
        return Check::fail(
            NAME,
            format!("no Athena workgroup {name}"),
            "deploy the pipeline (it creates the workgroup), or pass --workgroup / --name-prefix",
        );
    };
    if workgroup.state != "ENABLED" {
        return Check::fail(
            NAME,
            format!("Athena workgroup {name} is {}", workgroup.state),
            format!(
                "enable it: `aws athena update-work-group --work-group {name} --state ENABLED`"
            ),
        );
    }
    match workgroup.output_location.as_deref().filter(|l| !l.trim().is_empty()) {
        Some(location) => Check::pass(
            NAME,
            format!(
                "{name}: results in {location}{}",
                if workgroup.enforced {
                    " (enforced)"
                } else {
                    ""
                }
            ),
        ),
        None => Check::fail(
            NAME,
            format!("Athena workgroup {name} has no query result location"),
            format!("set one: `aws athena update-work-group --work-group {name} --configuration-updates ResultConfigurationUpdates={{OutputLocation=s3://BUCKET/PREFIX/}}` (the pipeline's modules do)"),
        ),
    }
}

/// The credentials check's pass line: who is calling, and where.
pub fn credentials_check(account: &str, arn: &str, region: Option<&str>) -> Check {
    const NAME: &str = "credentials";
    match region {
        Some(region) if !region.trim().is_empty() => {
            Check::pass(NAME, format!("{arn} (account {account}), region {region}"))
        }
        _ => Check::fail(
            NAME,
            format!("{arn} (account {account}), but no region"),
            "set AWS_REGION (or pass --region) to the region of the pipeline",
        ),
    }
}

/// Today's date, for [`backfill_from`]: kept here so callers pass `now` explicitly in tests.
pub fn today(now: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(now.year(), now.month(), now.day()).unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::run::RunState;

    fn names(checks: &[Check]) -> Vec<&str> {
        checks.iter().map(|c| c.name).collect()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("timestamp")
            .with_timezone(&Utc)
    }

    fn good_export() -> ExportFacts {
        ExportFacts {
            name: "kubecur-cur2".into(),
            query: "SELECT line_item_resource_id, line_item_unblended_cost, resource_tags FROM COST_AND_USAGE_REPORT".into(),
            table_configurations: BTreeMap::from([(
                "COST_AND_USAGE_REPORT".to_string(),
                BTreeMap::from([
                    ("INCLUDE_RESOURCES".to_string(), "TRUE".to_string()),
                    ("TIME_GRANULARITY".to_string(), "DAILY".to_string()),
                ]),
            )]),
            format: "PARQUET".into(),
            overwrite: "OVERWRITE_REPORT".into(),
            bucket: "cur-bucket".into(),
            prefix: "cur/".into(),
            health: Some("HEALTHY".into()),
            health_reason: None,
        }
    }

    #[test]
    fn a_report_passes_only_when_every_check_passes() {
        let mut report = Report {
            checks: vec![Check::pass("a", "fine"), Check::pass("b", "fine")],
        };
        assert!(report.passed());
        report.checks.push(Check::fail("c", "broken", "mend it"));
        assert!(!report.passed());
        assert_eq!(report.failures(), 1);
        assert!(!Report { checks: vec![] }.passed(), "no checks is no pass");
        let text = report.to_text();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(text.lines().last(), Some("✘ c: broken → fix: mend it"));
        let json = report.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][2]["status"], "fail");
        assert_eq!(json["checks"][2]["fix"], "mend it");
        assert!(json["checks"][0].get("fix").is_none());
        assert_eq!(names(&report.checks), ["a", "b", "c"]);
    }

    #[test]
    fn wanted_keys_follow_the_mapping_once_each() {
        assert_eq!(
            wanted_tag_keys(&TagMapping::default()),
            [
                "kubernetes_cluster",
                "kubernetes_namespace",
                "kubernetes_deployment",
                "kubernetes_pod",
                "kubernetes_daemonset",
                "kubernetes_container"
            ]
        );
        let mut mapping = TagMapping::default();
        mapping
            .apply_override("namespace=team,kubernetes_namespace")
            .expect("valid");
        mapping.apply_override("pod=team").expect("valid");
        let keys = wanted_tag_keys(&mapping);
        assert_eq!(keys.iter().filter(|k| *k == "team").count(), 1);
        assert_eq!(keys[1], "team");
    }

    #[test]
    fn unlisted_keys_are_not_seen_and_case_matters() {
        let wanted = vec![
            "kubernetes_pod".to_string(),
            "Team".to_string(),
            "ns".to_string(),
        ];
        let listed = BTreeMap::from([
            ("kubernetes_pod".to_string(), true),
            ("team".to_string(), false),
            ("ns".to_string(), false),
        ]);
        assert_eq!(
            tag_states(&wanted, &listed),
            [
                ("kubernetes_pod".to_string(), TagState::Active),
                ("Team".to_string(), TagState::NotSeen),
                ("ns".to_string(), TagState::Inactive),
            ]
        );
    }

    #[test]
    fn tags_check_passes_when_all_are_active() {
        let check = tags_check(&[
            ("kubernetes_namespace".into(), TagState::Active),
            ("kubernetes_pod".into(), TagState::Active),
        ]);
        assert!(check.passed(), "{check}");
        assert!(check
            .message
            .contains("kubernetes_namespace, kubernetes_pod"));
    }

    #[test]
    fn tags_check_fails_with_the_fix_for_inactive_and_unseen_keys() {
        let check = tags_check(&[
            ("kubernetes_namespace".into(), TagState::Active),
            ("kubernetes_pod".into(), TagState::Inactive),
            ("kubernetes_container".into(), TagState::NotSeen),
        ]);
        assert!(!check.passed());
        assert!(
            check.message.contains("inactive: kubernetes_pod"),
            "{check}"
        );
        assert!(
            check
                .message
                .contains("not yet seen by AWS: kubernetes_container"),
            "{check}"
        );
        let fix = check.fix.as_deref().unwrap_or_default();
        assert!(fix.contains("kubecur setup tags --apply"), "{fix}");
        assert!(fix.contains("24 h"), "{fix}");
        assert!(!tags_check(&[]).passed());
    }

    #[test]
    fn backfill_accepts_the_current_month_and_the_twelve_before() {
        let today = day("2026-12-01");
        assert_eq!(
            backfill_from("2026-12", today).as_deref(),
            Ok("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            backfill_from("2025-12", today).as_deref(),
            Ok("2025-12-01T00:00:00Z")
        );
        assert_eq!(
            backfill_from(" 2026-03 ", today).as_deref(),
            Ok("2026-03-01T00:00:00Z")
        );
    }

    #[test]
    fn backfill_refuses_bad_future_and_old_months_with_the_allowed_range() {
        let today = day("2026-12-15");
        for (given, says) in [
            ("2027-01", "in the future"),
            ("2025-11", "too far back"),
            ("2026-13", "not a month"),
            ("2026-06-01", "not a month"),
            ("June", "not a month"),
            ("", "not a month"),
        ] {
            let error = backfill_from(given, today).expect_err(given);
            assert!(error.contains(says), "{given}: {error}");
            assert!(
                error.contains("from 2025-12 to 2026-12"),
                "{given}: {error}"
            );
        }
    }

    #[test]
    fn export_check_passes_for_parquet_overwrite_with_resources() {
        let check = export_check("kubecur-cur2", Some(&good_export()));
        assert!(check.passed(), "{check}");
        assert!(
            check.message.contains("s3://cur-bucket/cur/kubecur-cur2/"),
            "{check}"
        );
    }

    #[test]
    fn export_check_names_every_wrong_setting() {
        let mut export = good_export();
        export.table_configurations.values_mut().for_each(|p| {
            p.insert("INCLUDE_RESOURCES".into(), "FALSE".into());
        });
        export.format = "TEXT_OR_CSV".into();
        export.overwrite = "CREATE_NEW_REPORT".into();
        export.query = "SELECT line_item_unblended_cost FROM COST_AND_USAGE_REPORT".into();
        export.health = Some("UNHEALTHY".into());
        export.health_reason = Some("BILL_OWNER_CHANGED".into());
        let check = export_check("kubecur-cur2", Some(&export));
        assert!(!check.passed());
        for expected in [
            "INCLUDE_RESOURCES",
            "TEXT_OR_CSV",
            "CREATE_NEW_REPORT",
            "line_item_resource_id, resource_tags",
            "BILL_OWNER_CHANGED",
        ] {
            assert!(check.message.contains(expected), "{expected}: {check}");
        }
        assert!(check.fix.as_deref().unwrap_or_default().contains("PARQUET"));
    }

    #[test]
    fn a_missing_export_fails_with_how_to_create_it() {
        let check = export_check("kubecur-cur2", None);
        assert!(!check.passed());
        assert!(check.message.contains("no Data Export named kubecur-cur2"));
        assert!(check
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("--export-name"));
    }

    #[test]
    fn delivery_root_joins_prefix_and_name() {
        let mut export = good_export();
        assert_eq!(export.delivery_root(), "cur/kubecur-cur2");
        export.prefix = String::new();
        assert_eq!(export.delivery_root(), "kubecur-cur2");
        export.prefix = "/a/b/".into();
        assert_eq!(export.delivery_root(), "a/b/kubecur-cur2");
    }

    fn cur2_columns() -> Vec<String> {
        [
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "line_item_resource_id",
            "resource_tags",
            "billing_period",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_cur2_table_with_the_tag_map_passes() {
        let columns = cur2_columns();
        let check = glue_table_check(
            "cur",
            "kubecur_cur2",
            Some(&columns),
            &TagMapping::default(),
        );
        assert!(check.passed(), "{check}");
        assert!(check.message.contains("CUR 2.0"), "{check}");
    }

    #[test]
    fn a_cur2_table_without_the_tag_map_or_resource_ids_fails() {
        let columns: Vec<String> = cur2_columns()
            .into_iter()
            .filter(|c| c != "line_item_resource_id")
            .collect();
        // Without resource_tags the table reads as legacy: every tag column is then missing.
        let without_map: Vec<String> = columns
            .iter()
            .filter(|c| *c != "resource_tags")
            .cloned()
            .collect();
        let check = glue_table_check("cur", "t", Some(&without_map), &TagMapping::default());
        assert!(!check.passed());
        assert!(check.message.contains("line_item_resource_id"), "{check}");
        assert!(
            check
                .message
                .contains("kubernetes_namespace (column resource_tags_user_kubernetes_namespace)"),
            "{check}"
        );
    }

    #[test]
    fn a_legacy_table_needs_one_column_per_key() {
        let mut columns = vec![
            "line_item_usage_start_date".to_string(),
            "line_item_unblended_cost".to_string(),
            "line_item_resource_id".to_string(),
        ];
        columns.extend(
            Concept::ALL
                .iter()
                .map(|c| format!("resource_tags_user_kubernetes_{}", c.name())),
        );
        let check = glue_table_check("cur", "legacy", Some(&columns), &TagMapping::default());
        assert!(check.passed(), "{check}");
        columns.retain(|c| c != "resource_tags_user_kubernetes_pod");
        let check = glue_table_check("cur", "legacy", Some(&columns), &TagMapping::default());
        assert!(!check.passed());
        assert!(check.message.contains("kubernetes_pod"), "{check}");
        assert!(!check.message.contains("kubernetes_namespace"), "{check}");
        assert!(check.fix.as_deref().unwrap_or_default().contains("crawler"));
    }

    #[test]
    fn a_missing_or_foreign_table_fails() {
        assert!(!glue_table_check("cur", "t", None, &TagMapping::default()).passed());
        let other = vec!["id".to_string(), "name".to_string()];
        let check = glue_table_check("cur", "t", Some(&other), &TagMapping::default());
        assert!(!check.passed());
        assert!(check.message.contains("not a CUR table"), "{check}");
    }

    #[test]
    fn a_recent_manifest_passes_and_an_old_or_missing_one_fails() {
        let now = at("2026-12-01T12:00:00Z");
        let newest = DeliveryFacts {
            key: "cur/kubecur-cur2/metadata/BILLING_PERIOD=2026-12/kubecur-cur2-Manifest.json"
                .into(),
            last_modified: at("2026-12-01T06:00:00Z"),
        };
        let check = delivery_check("b", "cur/kubecur-cur2", Some(&newest), now);
        assert!(check.passed(), "{check}");
        assert!(check.message.contains("6 h ago"), "{check}");
        let old = DeliveryFacts {
            last_modified: at("2026-11-25T06:00:00Z"),
            ..newest
        };
        let check = delivery_check("b", "cur/kubecur-cur2", Some(&old), now);
        assert!(!check.passed());
        assert!(check.message.contains("6 days ago"), "{check}");
        let check = delivery_check("b", "cur/kubecur-cur2", None, now);
        assert!(!check.passed());
        assert!(
            check.message.contains("s3://b/cur/kubecur-cur2/metadata/"),
            "{check}"
        );
    }

    #[test]
    fn pipeline_table_must_exist_and_be_active() {
        assert!(pipeline_table_check("kubecur", Some("ACTIVE")).passed());
        assert!(!pipeline_table_check("kubecur", None).passed());
        assert!(!pipeline_table_check("kubecur", Some("DELETING")).passed());
    }

    fn period(month: u32) -> BillingPeriod {
        BillingPeriod { year: 2026, month }
    }

    fn latest(version: i64, state: RunState) -> Option<LatestRun> {
        Some(LatestRun {
            run_id: format!("run-v{version}"),
            version,
            state,
            updated_at_ms: 1_796_000_000_000,
        })
    }

    fn failure(version: i64, reason: &str) -> Option<FailedRun> {
        Some(FailedRun {
            run_id: format!("run-v{version}"),
            reason: reason.into(),
            at: "2026-11-29T07:00:00Z".into(),
        })
    }

    #[test]
    fn runs_pass_when_the_newest_period_serves_its_newest_delivery() {
        let periods = vec![
            PeriodRun {
                period: period(10),
                serving: None,
                latest: latest(1, RunState::Failed),
                last_failure: failure(1, "old"),
            },
            PeriodRun {
                period: period(11),
                serving: Some((3, "2026-11-30T07:00:00Z".into())),
                latest: latest(3, RunState::Serving),
                // An earlier delivery's failure, superseded by the one that serves.
                last_failure: failure(2, "earlier"),
            },
        ];
        let check = pipeline_runs_check(&periods);
        assert!(check.passed(), "{check}");
        assert!(
            check
                .message
                .starts_with("2026-11 fresh, serving v3 computed 2026-11-30T07:00:00Z"),
            "{check}"
        );
        assert!(
            check.message.contains("2026-10 failed (old), no snapshot"),
            "{check}"
        );
    }

    #[test]
    fn runs_fail_when_the_newest_delivery_failed() {
        let failed_last = vec![PeriodRun {
            period: period(11),
            serving: Some((3, "2026-11-30T07:00:00Z".into())),
            latest: latest(4, RunState::Failed),
            last_failure: failure(4, "COLUMN_NOT_FOUND"),
        }];
        let check = pipeline_runs_check(&failed_last);
        assert!(!check.passed());
        assert!(
            check
                .message
                .contains("2026-11 failed (COLUMN_NOT_FOUND), serving v3"),
            "{check}"
        );
        assert!(
            check
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("next delivery of 2026-11"),
            "{check}"
        );
    }

    #[test]
    fn runs_fail_when_nothing_is_served_or_the_newest_delivery_is_not_yet() {
        assert!(!pipeline_runs_check(&[]).passed());
        let never_served = vec![PeriodRun {
            period: period(12),
            serving: None,
            latest: None,
            last_failure: None,
        }];
        let check = pipeline_runs_check(&never_served);
        assert!(!check.passed());
        assert!(check.message.contains("stale (no snapshot yet)"), "{check}");
        let in_progress = vec![PeriodRun {
            period: period(12),
            serving: Some((3, "2026-12-01T07:00:00Z".into())),
            latest: latest(4, RunState::Querying),
            last_failure: None,
        }];
        let check = pipeline_runs_check(&in_progress);
        assert!(!check.passed());
        assert!(
            check
                .message
                .contains("stale (newer delivery run-v4 is QUERYING since"),
            "{check}"
        );
        assert!(
            check
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("reconciler"),
            "{check}"
        );
    }

    #[test]
    fn runs_show_only_the_recent_periods() {
        let periods: Vec<PeriodRun> = (1..=6)
            .map(|m| PeriodRun {
                period: period(m),
                serving: Some((1, "2026-07-01T00:00:00Z".into())),
                latest: latest(1, RunState::Serving),
                last_failure: None,
            })
            .collect();
        let check = pipeline_runs_check(&periods);
        assert!(check.passed());
        assert_eq!(check.message.matches("serving").count(), RECENT_PERIODS);
        assert!(!check.message.contains("2026-03"), "{check}");
    }

    #[test]
    fn workgroup_needs_to_be_enabled_with_a_result_location() {
        let good = WorkgroupFacts {
            state: "ENABLED".into(),
            output_location: Some("s3://results/kubecur/".into()),
            enforced: true,
        };
        let check = workgroup_check("kubecur", Some(&good));
        assert!(check.passed(), "{check}");
        assert!(check.message.contains("s3://results/kubecur/ (enforced)"));
        assert!(!workgroup_check("kubecur", None).passed());
        let disabled = WorkgroupFacts {
            state: "DISABLED".into(),
            ..good.clone()
        };
        assert!(!workgroup_check("kubecur", Some(&disabled)).passed());
        let nowhere = WorkgroupFacts {
            output_location: None,
            ..good
        };
        let check = workgroup_check("kubecur", Some(&nowhere));
        assert!(!check.passed());
        assert!(check
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("OutputLocation"));
    }

    #[test]
    fn credentials_need_a_region() {
        let arn = "arn:aws:iam::111122223333:user/ops";
        assert!(credentials_check("111122223333", arn, Some("eu-west-1")).passed());
        assert!(!credentials_check("111122223333", arn, None).passed());
        assert!(!credentials_check("111122223333", arn, Some("")).passed());
    }
}

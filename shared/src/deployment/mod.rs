//! Checking and finishing a deployment: the use cases behind `kubecur doctor` and `kubecur setup tags`,
//! over two ports, [`DeploymentProbe`] (read-only facts) and [`CostAllocationTags`] (Cost Explorer's
//! tag activation). The verdicts are the pure [`crate::domain::doctor`]; the AWS adapter,
//! `aws::AwsDeployment`, comes with the feature `deployment` (STS, Cost Explorer, BCM Data Exports).

#[cfg(feature = "deployment")]
pub mod aws;

use crate::domain::doctor::{
    credentials_check, delivery_check, export_check, glue_table_check, pipeline_runs_check,
    pipeline_table_check, tag_states, tags_check, wanted_tag_keys, workgroup_check, Check,
    DeliveryFacts, ExportFacts, PeriodRun, Report, TagState, WorkgroupFacts, MAX_TAG_KEYS_PER_LIST,
    MAX_TAG_KEYS_PER_UPDATE,
};
use crate::domain::TagMapping;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a probe could not answer. `action` is the IAM action that was attempted
/// (`sts:GetCallerIdentity` …), so the fix can name the permission.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The SDK found no credentials anywhere in its chain.
    #[error("{action}: no AWS credentials found")]
    NoCredentials {
        action: &'static str,
        #[source]
        source: BoxError,
    },
    /// The endpoint did not answer (refused, unreachable, timed out).
    #[error("{action}: no answer from AWS ({reason})")]
    Unreachable {
        action: &'static str,
        reason: &'static str,
        #[source]
        source: BoxError,
    },
    /// AWS answered with an error.
    #[error("{action}: {code}: {message}")]
    Refused {
        action: &'static str,
        code: String,
        message: String,
    },
    /// Anything else (an answer kubecur cannot read …).
    #[error("{action}: {source}")]
    Other {
        action: &'static str,
        #[source]
        source: BoxError,
    },
}

impl ProbeError {
    /// The exact fix for this failure.
    pub fn fix(&self) -> String {
        match self {
            ProbeError::NoCredentials { .. } => "export credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, plus AWS_SESSION_TOKEN for a role; from a profile: eval \"$(aws configure export-credentials --format env)\")".to_string(),
            ProbeError::Unreachable { .. } => "check the network path to AWS (proxy, VPC endpoints, AWS_ENDPOINT_URL) and AWS_REGION".to_string(),
            ProbeError::Refused { action, code, .. } => {
                let lower = code.to_ascii_lowercase();
                if lower.contains("accessdenied") || lower.contains("unauthorized") {
                    format!("allow {action} for this identity")
                } else if lower.contains("expired") || lower.contains("invalidclienttoken") || lower.contains("signature") || lower.contains("unrecognizedclient") {
                    "refresh the credentials (they are expired or not valid for this account)".to_string()
                } else {
                    "retry; if it persists, run with KUBECUR_LOG=debug and read the AWS error".to_string()
                }
            }
            ProbeError::Other { .. } => {
                "retry; if it persists, run with KUBECUR_LOG=debug and read the error".to_string()
            }
        }
    }

    /// Classifies a failure that is not an AWS error answer by its source chain: credentials, then
    /// timeouts and connection failures; anything else is [`ProbeError::Other`].
    pub fn classify(action: &'static str, source: BoxError) -> ProbeError {
        let mut chain = String::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = current {
            chain.push_str(&error.to_string().to_ascii_lowercase());
            chain.push('\n');
            current = error.source();
        }
        if chain.contains("credential") {
            ProbeError::NoCredentials { action, source }
        } else if chain.contains("timeout") || chain.contains("timed out") {
            ProbeError::Unreachable {
                action,
                reason: "timed out",
                source,
            }
        } else if chain.contains("dispatch failure")
            || chain.contains("connect")
            || chain.contains("dns")
            || chain.contains("io error")
        {
            ProbeError::Unreachable {
                action,
                reason: "cannot connect",
                source,
            }
        } else {
            ProbeError::Other { action, source }
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub arn: String,
}

/// Read-only facts about a deployment. `Ok(None)` means "does not exist"; errors mean "could not tell".
pub trait DeploymentProbe: Send + Sync {
    /// The region the calls go to, if one is configured.
    fn region(&self) -> Option<String>;
    fn caller(&self) -> impl Future<Output = Result<Caller, ProbeError>> + Send;
    /// The Data Export named `name` (BCM Data Exports lives in us-east-1).
    fn export(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ExportFacts>, ProbeError>> + Send;
    /// The Glue table's columns, partition keys included.
    fn table_columns(
        &self,
        database: &str,
        table: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, ProbeError>> + Send;
    /// The newest export manifest under `s3://bucket/root/metadata/`.
    fn newest_manifest(
        &self,
        bucket: &str,
        root: &str,
    ) -> impl Future<Output = Result<Option<DeliveryFacts>, ProbeError>> + Send;
    /// The pipeline's DynamoDB table status (`ACTIVE` …).
    fn pipeline_table(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<Option<String>, ProbeError>> + Send;
    /// Every billing period's pointer in the pipeline's table, as `GET /status` reads it.
    fn period_runs(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<Vec<PeriodRun>, ProbeError>> + Send;
    /// The Athena workgroup.
    fn workgroup(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<WorkgroupFacts>, ProbeError>> + Send;
}

/// Cost Explorer's cost allocation tags (us-east-1).
pub trait CostAllocationTags: Send + Sync {
    /// `key → active?` for those of `keys` that AWS lists (at most [`MAX_TAG_KEYS_PER_LIST`] keys;
    /// every page is read).
    fn listed(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, bool>, ProbeError>> + Send;
    /// Activates `keys` (at most [`MAX_TAG_KEYS_PER_UPDATE`]); returns the keys AWS refused, with why.
    fn activate(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, ProbeError>> + Send;
    /// Starts a backfill from `from` (`2024-06-01T00:00:00Z`); returns the request's status.
    fn backfill(&self, from: &str) -> impl Future<Output = Result<String, ProbeError>> + Send;
}

/// The default `name_prefix` of the Terraform modules and `NamePrefix` of the SAM template: the
/// pipeline's DynamoDB table and Athena workgroup are named after it, and the export is `<prefix>-cur2`.
pub const DEFAULT_NAME_PREFIX: &str = "kubecur";

/// The Glue database and table of the export that the from-zero setups create without a crawler
/// (`infra/terraform/examples/from-zero/main.tf`, and `GlueDatabase`/`GlueTable` in
/// `infra/sam/README.md`); `tests/tests/infra_billing.rs` keeps them equal.
pub const DEFAULT_GLUE_DATABASE: &str = "kubecur_cur";
pub const DEFAULT_GLUE_TABLE: &str = "cur2";

/// What `kubecur doctor` looks at. Defaults match the names the infrastructure creates (see the CLI).
#[derive(Debug, Clone)]
pub struct DoctorInputs {
    pub export_name: String,
    pub glue_database: String,
    pub glue_table: String,
    /// The delivery bucket; from the export when not given.
    pub bucket: Option<String>,
    /// The export's key prefix in the bucket, `<prefix>/<export name>`; from the export when not given.
    pub delivery_root: Option<String>,
    pub pipeline_table: String,
    pub workgroup: String,
    pub mapping: TagMapping,
}

fn failed(name: &'static str, error: &ProbeError) -> Check {
    Check::fail(name, error.to_string(), error.fix())
}

/// The states of `keys`, listed in requests of at most [`MAX_TAG_KEYS_PER_LIST`] keys.
pub async fn tag_states_of<T: CostAllocationTags>(
    tags: &T,
    keys: &[String],
) -> Result<Vec<(String, TagState)>, ProbeError> {
    let mut listed = BTreeMap::new();
    for chunk in keys.chunks(MAX_TAG_KEYS_PER_LIST) {
        listed.extend(tags.listed(chunk).await?);
    }
    Ok(tag_states(keys, &listed))
}

/// Runs every check, concurrently where they are independent (so a dead network costs one timeout,
/// not one per check), and returns one line per check in a fixed order: credentials, export, tags,
/// glue-table, delivery, pipeline-table, pipeline-runs, athena-workgroup.
pub async fn doctor<P: DeploymentProbe + CostAllocationTags>(
    probe: &P,
    inputs: &DoctorInputs,
    now: DateTime<Utc>,
) -> Report {
    let keys = wanted_tag_keys(&inputs.mapping);
    let (caller, export, tags, columns, table, runs, workgroup) = tokio::join!(
        probe.caller(),
        probe.export(&inputs.export_name),
        tag_states_of(probe, &keys),
        probe.table_columns(&inputs.glue_database, &inputs.glue_table),
        probe.pipeline_table(&inputs.pipeline_table),
        probe.period_runs(&inputs.pipeline_table),
        probe.workgroup(&inputs.workgroup),
    );

    // Where deliveries land: the flags, else the export's destination.
    let exported = export.as_ref().ok().and_then(Option::as_ref);
    let bucket = inputs
        .bucket
        .clone()
        .or_else(|| exported.map(|e| e.bucket.clone()));
    let root = inputs
        .delivery_root
        .as_ref()
        .map(|r| r.trim_matches('/').to_string())
        .or_else(|| exported.map(ExportFacts::delivery_root));
    let delivery = match (bucket, root) {
        (Some(bucket), Some(root)) => match probe.newest_manifest(&bucket, &root).await {
            Ok(newest) => delivery_check(&bucket, &root, newest.as_ref(), now),
            Err(error) => failed("delivery", &error),
        },
        _ => {
            let why = match &export {
                Err(error) => format!("the export could not be read ({error})"),
                Ok(_) => format!("there is no export {}", inputs.export_name),
            };
            Check::fail(
                "delivery",
                format!("cannot tell where deliveries land: {why}"),
                "fix the export line, or pass --bucket and --prefix",
            )
        }
    };

    let table_missing = matches!(table, Ok(None));
    let checks = vec![
        match caller {
            Ok(caller) => {
                credentials_check(&caller.account, &caller.arn, probe.region().as_deref())
            }
            Err(error) => failed("credentials", &error),
        },
        match &export {
            Ok(found) => export_check(&inputs.export_name, found.as_ref()),
            Err(error) => failed("export", error),
        },
        match tags {
            Ok(states) => tags_check(&states),
            Err(error) => failed("tags", &error),
        },
        match columns {
            Ok(columns) => glue_table_check(
                &inputs.glue_database,
                &inputs.glue_table,
                columns.as_deref(),
                &inputs.mapping,
            ),
            Err(error) => failed("glue-table", &error),
        },
        delivery,
        match &table {
            Ok(status) => pipeline_table_check(&inputs.pipeline_table, status.as_deref()),
            Err(error) => failed("pipeline-table", error),
        },
        match runs {
            _ if table_missing => Check::fail(
                "pipeline-runs",
                format!("no runs: there is no table {}", inputs.pipeline_table),
                "deploy the pipeline first",
            ),
            Ok(periods) => pipeline_runs_check(&periods),
            Err(error) => failed("pipeline-runs", &error),
        },
        match workgroup {
            Ok(found) => workgroup_check(&inputs.workgroup, found.as_ref()),
            Err(error) => failed("athena-workgroup", &error),
        },
    ];
    Report { checks }
}

/// What `kubecur setup tags` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSetup {
    /// Each wanted key's state before any change.
    pub states: Vec<(String, TagState)>,
    /// Keys activated by this run (`--apply`).
    pub activated: Vec<String>,
    /// Keys AWS refused to activate, with its reason.
    pub refused: Vec<(String, String)>,
    /// The backfill request's status, when one was started.
    pub backfill: Option<String>,
}

/// Lists the keys' states; with `apply`, activates the inactive ones (in requests of at most
/// [`MAX_TAG_KEYS_PER_UPDATE`]) and, with `backfill_from` (already validated by
/// [`crate::domain::doctor::backfill_from`]), starts a backfill. Keys AWS has not seen are never sent:
/// AWS refuses them until a bill carries them.
pub async fn setup_tags<T: CostAllocationTags>(
    tags: &T,
    keys: &[String],
    apply: bool,
    backfill_from: Option<&str>,
) -> Result<TagSetup, ProbeError> {
    let states = tag_states_of(tags, keys).await?;
    let mut setup = TagSetup {
        states,
        activated: Vec::new(),
        refused: Vec::new(),
        backfill: None,
    };
    if !apply {
        return Ok(setup);
    }
    let inactive: Vec<String> = setup
        .states
        .iter()
        .filter(|(_, state)| *state == TagState::Inactive)
        .map(|(key, _)| key.clone())
        .collect();
    for batch in inactive.chunks(MAX_TAG_KEYS_PER_UPDATE) {
        let refused = tags.activate(batch).await?;
        setup.activated.extend(
            batch
                .iter()
                .filter(|key| !refused.iter().any(|(r, _)| r == *key))
                .cloned(),
        );
        setup.refused.extend(refused);
    }
    if let Some(from) = backfill_from {
        setup.backfill = Some(tags.backfill(from).await?);
    }
    Ok(setup)
}

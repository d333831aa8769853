//! The AWS pipeline's use cases, over ports (`ports::pipeline`): the ingest (a delivery finished →
//! partition + query), the writer (a query finished → snapshot), the reconciler (on a schedule: find
//! what was missed and finish it) and snapshot publishing, shared with `kubecur serve`. The Lambda
//! crates only parse events and wire the AWS adapters in; the tests wire the memory adapters in.

pub mod ingest;
pub mod publish;
pub mod reconcile;
pub mod writer;

use crate::domain::columns::ColumnSet;
use crate::domain::plan::{AllocationPlan, AllocationRequest};
use crate::domain::run::{IllegalTransition, Run};
use crate::domain::window::{BillingPeriod, UsageWindow};
use crate::domain::{Dimension, DomainError, TagMapping};
use crate::ports::pipeline::{Clock, ErrorKind, ExternalError, RunStore};
use crate::ports::{EngineError, RunFailure, StoreError};

/// The most bytes the ingest reads of a delivery signal: a manifest (it lists the delivery's files;
/// AWS splits data into parts of at most a few GB, so even a large export's manifest is far below
/// this) or the legacy status object (a one-row Parquet file of a few hundred bytes).
pub const MAX_SIGNAL_BYTES: u64 = 8 * 1024 * 1024;

/// The most result rows the writer takes. A larger result fails the run with this limit named.
pub const MAX_RESULT_ROWS: usize = 4_000_000;

/// What the snapshot being built costs in memory, per full-level group and per result row: the result
/// streams through and is never held, but the snapshot is, until it is written. Fitted to the peak
/// resident memory `bench/writer_memory.sh` measures on two shapes of result (30 days per group: 4 M
/// rows, 133 k groups, +788 MB; 1 day per group: 1 M rows and groups, +1,446 MB), then rounded up.
pub const SNAPSHOT_BYTES_PER_GROUP: u64 = 1_400;
pub const SNAPSHOT_BYTES_PER_ROW: u64 = 170;

/// Memory a function keeps for everything but the snapshot: the runtime, SDK clients, batches in flight.
const RESERVED_MB: u64 = 150;

/// The memory the snapshot being built may take in a function of `memory_mb` (Lambda's
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; the writer function has 1,024 MB): a result that would need more
/// fails the run, naming the figures, instead of the function running out of memory and being retried
/// until its events land in the failure queue.
pub fn snapshot_budget_bytes(memory_mb: Option<u64>) -> u64 {
    memory_mb.unwrap_or(1_024).saturating_sub(RESERVED_MB) * 1024 * 1024
}

/// [`snapshot_budget_bytes`] of the running function, from its environment.
pub fn snapshot_budget_from_env(lookup: impl Fn(&str) -> Option<String>) -> u64 {
    snapshot_budget_bytes(
        lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|mb| mb.trim().parse().ok()),
    )
}

/// How long items of a replaced snapshot stay readable for requests that read its pointer before the flip.
pub const EXPIRY_GRACE_SECONDS: i64 = 3600;

/// Why a pipeline step failed. The Lambda returns it as the invocation's error with
/// [`PipelineError::kind`] as `errorType`, so the event is retried and, after the retries, kept by
/// the on-failure destination: nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The event or an object it points at is unusable as given (named in the message).
    #[error("{0}")]
    InvalidEvent(String),
    /// The deployment is wrong (named in the message).
    #[error("{0}")]
    Misconfigured(String),
    #[error(transparent)]
    External(#[from] ExternalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Conflict(#[from] IllegalTransition),
}

impl PipelineError {
    /// The stable class of the error, reported as the Lambda's `errorType`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::InvalidEvent(_) => ErrorKind::InvalidEvent,
            PipelineError::Misconfigured(_) | PipelineError::Domain(_) => ErrorKind::Misconfigured,
            PipelineError::External(e) => e.kind,
            PipelineError::Store(StoreError::Malformed { .. }) => ErrorKind::Internal,
            PipelineError::Store(StoreError::Backend { .. }) => ErrorKind::Transient,
            PipelineError::Store(StoreError::Conflict { .. }) => ErrorKind::Conflict,
            PipelineError::Engine(_) => ErrorKind::InvalidEvent,
            PipelineError::Conflict(_) => ErrorKind::Conflict,
        }
    }
}

/// The allocation every run computes: the whole billing period at full grain, so any window and
/// grouping inside it can be served from the snapshot. Ingest and writer plan it identically.
pub fn run_plan(
    columns: &[String],
    period: BillingPeriod,
    tag_mapping: &TagMapping,
) -> Result<AllocationPlan, DomainError> {
    let request = run_request(Some(UsageWindow::billing_period(period)), tag_mapping);
    AllocationPlan::new(&ColumnSet::new(columns.iter()), &request)
}

/// What a run allocates (and `kubecur serve` at start): the fixed dimensions, then the configured
/// labels (`KUBECUR_LABELS`), then the resource ids the configured share rules select
/// (`KUBECUR_SHARE_RULES`), if any; with the resource sets snapshots need.
pub fn run_request(window: Option<UsageWindow>, tag_mapping: &TagMapping) -> AllocationRequest {
    AllocationRequest {
        window,
        group_by: Dimension::ALL
            .into_iter()
            .chain(tag_mapping.labels().iter().copied().map(Dimension::Label))
            .chain((!tag_mapping.resources().is_empty()).then_some(Dimension::Resource))
            .collect(),
        tag_mapping: tag_mapping.clone(),
        accounts: Vec::new(),
        // Snapshots answer any window and regrouping: they need the resource sets.
        resource_ids: true,
        resources: tag_mapping.resources().to_vec(),
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Fails `run` with `reason`: the failure goes on the period's pointer first (so it shows on
/// `/status` even if the next write fails), then the run becomes final. A retry after a crash in
/// between finds the run non-final and records the failure again (idempotent).
pub(crate) async fn fail_run<S: RunStore>(
    store: &S,
    clock: &dyn Clock,
    run: &mut Run,
    reason: &str,
) -> Result<(), PipelineError> {
    tracing::error!(run = %run.id, %reason, "Allocation run failed; the previous snapshot keeps serving.");
    let now = clock.now_ms();
    let mut failed = run.clone();
    failed.fail(reason, now)?;
    store
        .record_failure(
            &failed,
            &RunFailure {
                run_id: run.id.clone(),
                reason: reason.to_string(),
                at: rfc3339(now),
            },
        )
        .await?;
    store.put_run(&failed, run.state).await?;
    *run = failed;
    Ok(())
}

/// Moves `run` to `to`, records it, and notes it on the period's pointer.
pub(crate) async fn advance<S: RunStore>(
    store: &S,
    clock: &dyn Clock,
    run: &mut Run,
    to: crate::domain::run::RunState,
) -> Result<(), PipelineError> {
    let mut next = run.clone();
    next.advance(to, clock.now_ms())?;
    store.put_run(&next, run.state).await?;
    store.note_latest(&next).await?;
    *run = next;
    Ok(())
}

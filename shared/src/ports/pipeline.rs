//! The write side of the AWS pipeline as ports: what the ingest, writer and reconciler use cases need
//! from DynamoDB ([`RunStore`], [`SnapshotWriter`]), Athena ([`QueryRunner`]), Glue ([`Catalog`]) and
//! S3 ([`ObjectReader`]). The AWS adapters (`adapters::aws`) implement them for the Lambda functions;
//! the memory adapters (`adapters::memory`, `api::MemoryStore`) for `kubecur serve` and the tests.

use super::{ResultSink, SnapshotReader, StoreError};
use crate::domain::run::{Run, RunState};
use crate::domain::snapshot::{SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use std::future::Future;
use std::time::Duration;

/// The stable class of a failure: what a Lambda reports as its `errorType`, so that alarms and
/// dead-letter readers can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ErrorKind {
    /// The event, or an object it points at, is unusable as given: retrying will not help.
    InvalidEvent,
    /// Throttling, a timeout, a network or service failure: a retry may succeed.
    Transient,
    /// The store refused a change the run's lifecycle does not allow.
    Conflict,
    /// The deployment is wrong: a missing table, workgroup, permission, or a bad setting.
    Misconfigured,
    /// Stored data kubecur cannot read (hand edits, a newer schema).
    Internal,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidEvent => "InvalidEvent",
            ErrorKind::Transient => "Transient",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Misconfigured => "Misconfigured",
            ErrorKind::Internal => "Internal",
        }
    }

    /// The class of an AWS error code. Unknown codes and failures without one (network, timeouts)
    /// are transient: the event is retried, then kept by the on-failure destination.
    pub fn of_aws_code(code: Option<&str>) -> ErrorKind {
        match code {
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "EntityNotFoundException"
                | "ResourceNotFoundException"
                | "NoSuchBucket"
                | "InvalidRequestException"
                | "ValidationException",
            ) => ErrorKind::Misconfigured,
            Some("NoSuchKey" | "NotFound") => ErrorKind::InvalidEvent,
            _ => ErrorKind::Transient,
        }
    }
}

/// A call to an external service failed or answered something unusable. The message is concise
/// (the service's code and message); adapters log the raw response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{context}: {message}")]
pub struct ExternalError {
    pub kind: ErrorKind,
    pub context: String,
    pub message: String,
}

impl ExternalError {
    pub fn new(
        kind: ErrorKind,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> ExternalError {
        ExternalError {
            kind,
            context: context.into(),
            message: message.into(),
        }
    }
}

/// A query's state as kubecur acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl QueryState {
    /// From the state names of the API and of the `Athena Query State Change` event.
    pub fn parse(text: &str) -> Option<QueryState> {
        match text {
            "QUEUED" | "RUNNING" => Some(QueryState::Running),
            "SUCCEEDED" => Some(QueryState::Succeeded),
            "FAILED" => Some(QueryState::Failed),
            "CANCELLED" => Some(QueryState::Cancelled),
            _ => None,
        }
    }
}

/// What `GetQueryExecution` says about a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryStatus {
    pub state: QueryState,
    /// Why it failed or was cancelled (`StateChangeReason`, else the Athena error message).
    pub reason: Option<String>,
    /// `s3://…/<query id>.csv`: the result as one CSV object.
    pub output_location: Option<String>,
    /// The query text as submitted (its first line names the kubecur run that started it).
    pub query: Option<String>,
}

/// What kubecur needs from the catalog's table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Data columns then partition keys, as Glue names them (lower case).
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    /// `s3://…/` under which the partition folders live.
    pub location: Option<String>,
}

/// A small object read whole (manifest, legacy status object).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    /// `LastModified`, milliseconds since the Unix epoch.
    pub last_modified_ms: Option<i64>,
    /// Without quotes.
    pub etag: Option<String>,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: Option<i64>,
    pub etag: Option<String>,
}

/// The outcome of claiming a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    New,
    /// Boxed: a run (with its column list and tag mapping) is large beside `New`.
    Existing(Box<Run>),
}

/// The outcome of publishing a snapshot. Decided by [`crate::domain::snapshot::newer_wins`] in every store.
#[derive(Debug, Clone, PartialEq)]
pub enum Flip {
    /// The pointer now names this snapshot; `previous` was serving before.
    Flipped { previous: Option<SnapshotInfo> },
    /// The pointer already named this very version (a rerun after the flip).
    AlreadyServing,
    /// A newer version serves: this snapshot must not.
    Newer { serving: i64 },
}

/// The last failed run of a billing period, kept beside its serving snapshot.
pub use super::RunFailure;

/// Runs and the per-period records about them (DynamoDB, or memory).
pub trait RunStore: Send + Sync {
    /// Claims `run` unless a run with its id exists; then returns that one.
    fn claim_run(&self, run: &Run) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    fn run(
        &self,
        period: BillingPeriod,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<Run>, StoreError>> + Send;
    /// Every run of a billing period (the reconciler looks for stuck ones).
    fn runs(
        &self,
        period: BillingPeriod,
    ) -> impl Future<Output = Result<Vec<Run>, StoreError>> + Send;
    /// The run that started `query_id`, if the index has it.
    fn run_by_query(
        &self,
        query_id: &str,
    ) -> impl Future<Output = Result<Option<Run>, StoreError>> + Send;
    /// Indexes `query_id` to `run` (idempotent).
    fn index_query(
        &self,
        run: &Run,
        query_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records `run`, on the condition that the stored run is still in state `from` (the state this
    /// invocation read): two invocations moving one run cannot overwrite each other. A lost condition
    /// is [`StoreError::Conflict`].
    fn put_run(
        &self,
        run: &Run,
        from: RunState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records `run` as its period's newest known delivery, unless a newer one is recorded (the
    /// period's `/status` tells fresh from stale with it).
    fn note_latest(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a failed run on its period's pointer, with `note_latest` in the same write: a failure
    /// is on the pointer before the run is final, so it always shows on `/status`.
    fn record_failure(
        &self,
        run: &Run,
        failure: &RunFailure,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Writes and publishes snapshots.
pub trait SnapshotWriter: SnapshotReader {
    /// Writes (idempotently) groups of the snapshot `info` describes; not yet visible to readers.
    fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: Vec<SnapshotGroup>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Makes `info` the period's serving snapshot if no newer version serves. In the same atomic
    /// write, the replaced version joins the pointer's `retiring` set, so that its expiry survives a
    /// crash right after the flip (whoever publishes next expires it).
    fn flip(&self, info: &SnapshotInfo) -> impl Future<Output = Result<Flip, StoreError>> + Send;
    /// Sets a time to live on every item of snapshot `version` of `period` (idempotent).
    fn expire(
        &self,
        period: BillingPeriod,
        version: i64,
        at_epoch_seconds: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Removes `version` from the pointer's `retiring` set once its items have their time to live.
    fn retired(
        &self,
        period: BillingPeriod,
        version: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Runs SQL in Athena's workgroup.
pub trait QueryRunner: Send + Sync {
    fn workgroup(&self) -> &str;
    /// Starts `sql`; the same `token` returns the same query instead of a second one.
    fn start(
        &self,
        sql: &str,
        database: &str,
        token: Option<&str>,
    ) -> impl Future<Output = Result<String, ExternalError>> + Send;
    fn status(
        &self,
        query_id: &str,
    ) -> impl Future<Output = Result<QueryStatus, ExternalError>> + Send;
    /// Polls until the query ends or `timeout` passes (then a transient error naming the query).
    fn wait(
        &self,
        query_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<QueryStatus, ExternalError>> + Send;
}

/// The catalog (Glue) that describes the CUR table.
pub trait Catalog: Send + Sync {
    fn table(
        &self,
        database: &str,
        table: &str,
    ) -> impl Future<Output = Result<TableInfo, ExternalError>> + Send;
}

/// Reads objects (S3).
pub trait ObjectReader: Send + Sync {
    /// The whole object, refused with an `InvalidEvent` error when it is larger than `max_bytes`
    /// (nothing beyond the limit is read).
    fn get(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<StoredObject, ExternalError>> + Send;
    /// Legacy CUR's status object (a one-row Parquet file with a `status` column): whether it says
    /// `READY`, with the object's `LastModified` and ETag. Unreadable is an error, never "ready".
    fn legacy_status(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<(bool, StoredObject), ExternalError>> + Send;
    /// Every object under `prefix`.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, ExternalError>> + Send;
    /// Whether any object under `prefix` was modified at or after `since_epoch_seconds`.
    fn modified_since(
        &self,
        bucket: &str,
        prefix: &str,
        since_epoch_seconds: i64,
    ) -> impl Future<Output = Result<bool, ExternalError>> + Send;
    /// Reads a query result (`s3://…csv`) into `sink`, row by row as it arrives. An unreadable result
    /// or the sink's refusal is an `InvalidEvent` error with the reason.
    fn read_result(
        &self,
        uri: &str,
        sink: &mut dyn ResultSink,
    ) -> impl Future<Output = Result<(), ExternalError>> + Send;
}

/// The time, injected so that tests and the simulation control it.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that says what it is told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(now_ms: i64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(now_ms))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<T: Clock + ?Sized> Clock for std::sync::Arc<T> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

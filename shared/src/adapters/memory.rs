//! In-memory Athena, Glue and S3 behind the pipeline's ports: the ingest, writer and reconciler run
//! against them in unit tests and in the fault simulation (`shared/tests/pipeline_simulation.rs`).
//! The store in memory is [`crate::api::MemoryStore`].

use crate::domain::snapshot::Fnv128;
use crate::ports::pipeline::{
    Catalog, ErrorKind, ExternalError, ObjectMeta, ObjectReader, QueryRunner, QueryState,
    QueryStatus, StoredObject, TableInfo,
};
use crate::ports::{ResultSink, ResultTable};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn locked<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, ExternalError> {
    mutex.lock().map_err(|_| {
        ExternalError::new(
            ErrorKind::Internal,
            "using an in-memory adapter",
            "a thread panicked while holding the lock",
        )
    })
}

#[derive(Debug, Clone)]
struct Object {
    bytes: Vec<u8>,
    last_modified_ms: i64,
    etag: String,
}

#[derive(Debug, Default)]
struct Objects {
    objects: BTreeMap<(String, String), Object>,
    results: BTreeMap<String, ResultTable>,
}

/// S3 in memory. Like S3, an object's ETag is a digest of its bytes: identical bytes written again
/// get the same ETag and a new `LastModified`. Clones share the same objects.
#[derive(Debug, Default, Clone)]
pub struct MemoryObjects {
    state: Arc<Mutex<Objects>>,
}

impl MemoryObjects {
    /// Writes an object at `last_modified_ms`.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>, last_modified_ms: i64) {
        let mut hash = Fnv128::new();
        hash.write(&bytes);
        if let Ok(mut state) = self.state.lock() {
            state.objects.insert(
                (bucket.to_string(), key.to_string()),
                Object {
                    bytes,
                    last_modified_ms,
                    etag: format!("{:032x}", hash.finish()),
                },
            );
        }
    }

    /// Stores a query result at `uri`.
    pub fn put_result(&self, uri: &str, table: ResultTable) {
        if let Ok(mut state) = self.state.lock() {
            state.results.insert(uri.to_string(), table);
        }
    }
}

impl ObjectReader for MemoryObjects {
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<StoredObject, ExternalError> {
        let context = format!("reading s3://{bucket}/{key}");
        let state = locked(&self.state)?;
        let object = state
            .objects
            .get(&(bucket.to_string(), key.to_string()))
            .ok_or_else(|| {
                ExternalError::new(
                    ErrorKind::InvalidEvent,
                    &context,
                    "NoSuchKey: no such object",
                )
            })?;
        if object.bytes.len() as u64 > max_bytes {
            return Err(ExternalError::new(
                ErrorKind::InvalidEvent,
                context,
                format!(
                    "the object has {} bytes, over the {max_bytes} byte limit for a delivery signal",
                    object.bytes.len()
                ),
            ));
        }
        Ok(StoredObject {
            bytes: object.bytes.clone(),
            last_modified_ms: Some(object.last_modified_ms),
            etag: Some(object.etag.clone()),
        })
    }

    /// The memory store keeps a status object as its status text (`READY`), not as Parquet.
    async fn legacy_status(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<(bool, StoredObject), ExternalError> {
        let object = self.get(bucket, key, max_bytes).await?;
        Ok((object.bytes == b"READY", object))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, ExternalError> {
        Ok(locked(&self.state)?
            .objects
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), o)| ObjectMeta {
                key: key.clone(),
                size: o.bytes.len() as u64,
                last_modified_ms: Some(o.last_modified_ms),
                etag: Some(o.etag.clone()),
            })
            .collect())
    }

    async fn modified_since(
        &self,
        bucket: &str,
        prefix: &str,
        since_epoch_seconds: i64,
    ) -> Result<bool, ExternalError> {
        Ok(self
            .list(bucket, prefix)
            .await?
            .iter()
            .any(|o| o.last_modified_ms.unwrap_or(0) / 1000 >= since_epoch_seconds))
    }

    async fn read_result(&self, uri: &str, sink: &mut dyn ResultSink) -> Result<(), ExternalError> {
        let context = format!("reading the query result {uri}");
        let table = locked(&self.state)?
            .results
            .get(uri)
            .cloned()
            .ok_or_else(|| ExternalError::new(ErrorKind::Transient, &context, "NoSuchKey"))?;
        let refused =
            |reason: String| ExternalError::new(ErrorKind::InvalidEvent, &context, reason);
        sink.columns(table.columns).map_err(refused)?;
        for row in table.rows {
            sink.row(row).map_err(refused)?;
        }
        Ok(())
    }
}

/// How an in-memory query ends: with a result table, or `FAILED`/`CANCELLED` with a reason.
pub type Answer = Result<ResultTable, (QueryState, String)>;

/// Decides how each query started in [`MemoryAthena`] ends, from its SQL.
pub type Answerer = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

#[derive(Debug, Clone)]
struct Query {
    sql: String,
    status: QueryState,
    reason: Option<String>,
}

#[derive(Default)]
struct Queries {
    next: u64,
    by_token: BTreeMap<String, String>,
    queries: BTreeMap<String, Query>,
}

/// Athena in memory: queries end as soon as they start, as the [`Answerer`] decides; results land in
/// a [`MemoryObjects`]. A repeated `ClientRequestToken` returns the first query, as Athena does.
#[derive(Clone)]
pub struct MemoryAthena {
    workgroup: String,
    objects: MemoryObjects,
    answer: Answerer,
    state: Arc<Mutex<Queries>>,
}

impl std::fmt::Debug for MemoryAthena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAthena")
            .field("workgroup", &self.workgroup)
            .finish_non_exhaustive()
    }
}

impl MemoryAthena {
    pub fn new(workgroup: &str, objects: MemoryObjects, answer: Answerer) -> MemoryAthena {
        MemoryAthena {
            workgroup: workgroup.to_string(),
            objects,
            answer,
            state: Arc::default(),
        }
    }

    /// How many queries were started (tokens reused count once).
    pub fn started(&self) -> usize {
        self.state.lock().map(|s| s.queries.len()).unwrap_or(0)
    }

    /// Every query started, in order.
    pub fn query_ids(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.queries.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl QueryRunner for MemoryAthena {
    fn workgroup(&self) -> &str {
        &self.workgroup
    }

    async fn start(
        &self,
        sql: &str,
        _database: &str,
        token: Option<&str>,
    ) -> Result<String, ExternalError> {
        let mut state = locked(&self.state)?;
        if let Some(id) = token.and_then(|t| state.by_token.get(t)) {
            return Ok(id.clone());
        }
        state.next += 1;
        let id = format!("q-{:04}", state.next);
        let (status, reason) = match (self.answer)(sql) {
            Ok(table) => {
                self.objects
                    .put_result(&format!("s3://results/{id}.csv"), table);
                (QueryState::Succeeded, None)
            }
            Err((status, reason)) => (status, Some(reason)),
        };
        if let Some(token) = token {
            state.by_token.insert(token.to_string(), id.clone());
        }
        state.queries.insert(
            id.clone(),
            Query {
                sql: sql.to_string(),
                status,
                reason,
            },
        );
        Ok(id)
    }

    async fn status(&self, query_id: &str) -> Result<QueryStatus, ExternalError> {
        let state = locked(&self.state)?;
        let query = state.queries.get(query_id).ok_or_else(|| {
            ExternalError::new(
                ErrorKind::InvalidEvent,
                format!("reading Athena query {query_id}"),
                "InvalidRequestException: no such query",
            )
        })?;
        Ok(QueryStatus {
            state: query.status,
            reason: query.reason.clone(),
            output_location: Some(format!("s3://results/{query_id}.csv")),
            query: Some(query.sql.clone()),
        })
    }

    async fn wait(&self, query_id: &str, _timeout: Duration) -> Result<QueryStatus, ExternalError> {
        self.status(query_id).await
    }
}

/// A Glue catalog of one table.
#[derive(Debug, Clone)]
pub struct MemoryCatalog(pub TableInfo);

impl Catalog for MemoryCatalog {
    async fn table(&self, _database: &str, _table: &str) -> Result<TableInfo, ExternalError> {
        Ok(self.0.clone())
    }
}

/// When an injected fault strikes relative to the call it is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// The call does not happen; the caller gets an error (a crash or a network failure before it).
    Before,
    /// The call happens; the caller gets an error anyway (a crash or a lost response after it).
    After,
    /// The call does not happen; the caller gets a throttling error.
    Throttle,
}

/// Faults for one invocation: the `n`th external call (1-based) fails as [`Strike`] says. Shared by
/// every [`Faulty`] port of that invocation, so calls are counted across ports.
#[derive(Debug, Default)]
pub struct FaultPlan {
    calls: std::sync::atomic::AtomicUsize,
    strike: Mutex<Option<(usize, Strike)>>,
    /// A fault on every call of one name (`"recording a run"` …), for targeted tests.
    named: Mutex<Option<(String, Strike)>>,
    log: Mutex<Vec<String>>,
}

impl FaultPlan {
    /// From now on, the `nth` call counted from now fails as `strike` says (`None`: no fault).
    pub fn arm(&self, fault: Option<(usize, Strike)>) {
        self.calls.store(0, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut strike) = self.strike.lock() {
            *strike = fault;
        }
        if let Ok(mut log) = self.log.lock() {
            log.clear();
        }
    }

    /// Every call named `call` fails as `strike` says, until disarmed with `None`.
    pub fn arm_named(&self, fault: Option<(&str, Strike)>) {
        if let Ok(mut named) = self.named.lock() {
            *named = fault.map(|(n, s)| (n.to_string(), s));
        }
    }

    /// The names of the calls made since the last [`FaultPlan::arm`], in order.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// External calls counted since the last [`FaultPlan::arm`].
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn strikes(&self, at: usize, call: &str, when: &[Strike]) -> Option<Strike> {
        let named = self.named.lock().ok()?.clone();
        if let Some((_, s)) = named.filter(|(n, s)| n == call && when.contains(s)) {
            return Some(s);
        }
        let strike = *self.strike.lock().ok()?;
        strike
            .filter(|(n, s)| *n == at && when.contains(s))
            .map(|(_, s)| s)
    }

    fn before(&self, call: &str) -> Result<usize, String> {
        let at = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if let Ok(mut log) = self.log.lock() {
            log.push(call.to_string());
        }
        match self.strikes(at, call, &[Strike::Before, Strike::Throttle]) {
            Some(Strike::Throttle) => Err(format!("ThrottlingException: {call} (injected)")),
            Some(_) => Err(format!("crashed before {call} (injected)")),
            None => Ok(at),
        }
    }

    fn after(&self, at: usize, call: &str) -> Result<(), String> {
        match self.strikes(at, call, &[Strike::After]) {
            Some(_) => Err(format!("crashed after {call} (injected)")),
            None => Ok(()),
        }
    }
}

/// A port with faults injected by a shared [`FaultPlan`]: the fault simulation wraps every memory
/// adapter in one.
#[derive(Debug, Clone)]
pub struct Faulty<T> {
    pub inner: T,
    pub plan: Arc<FaultPlan>,
}

fn store_fault(message: String) -> crate::ports::StoreError {
    crate::ports::StoreError::Backend {
        context: "injected fault".into(),
        source: message.into(),
    }
}

fn external_fault(message: String) -> ExternalError {
    ExternalError::new(ErrorKind::Transient, "injected fault", message)
}

macro_rules! faulty {
    ($self:ident, $name:literal, $fault:ident, $call:expr) => {{
        let at = $self.plan.before($name).map_err($fault)?;
        let out = $call.await?;
        $self.plan.after(at, $name).map_err($fault)?;
        Ok(out)
    }};
}

use crate::domain::run::{Run, RunState};
use crate::domain::snapshot::{Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::pipeline::{Claim, Flip, RunStore, SnapshotWriter};
use crate::ports::{PeriodStatus, RunFailure, SnapshotReader, StoreError};

impl<T: SnapshotReader> SnapshotReader for Faulty<T> {
    async fn pointers(&self, periods: &[BillingPeriod]) -> Result<Vec<PeriodStatus>, StoreError> {
        faulty!(
            self,
            "reading pointers",
            store_fault,
            self.inner.pointers(periods)
        )
    }

    async fn all_pointers(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        faulty!(
            self,
            "reading all pointers",
            store_fault,
            self.inner.all_pointers()
        )
    }

    async fn groups(
        &self,
        info: &SnapshotInfo,
        level: Level,
    ) -> Result<Vec<std::sync::Arc<SnapshotGroup>>, StoreError> {
        faulty!(
            self,
            "reading groups",
            store_fault,
            self.inner.groups(info, level)
        )
    }
}

impl<T: SnapshotWriter> SnapshotWriter for Faulty<T> {
    async fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: Vec<SnapshotGroup>,
    ) -> Result<(), StoreError> {
        faulty!(
            self,
            "writing groups",
            store_fault,
            self.inner.write_groups(info, groups)
        )
    }

    async fn flip(&self, info: &SnapshotInfo) -> Result<Flip, StoreError> {
        faulty!(
            self,
            "flipping the pointer",
            store_fault,
            self.inner.flip(info)
        )
    }

    async fn expire(
        &self,
        period: BillingPeriod,
        version: i64,
        at_epoch_seconds: i64,
    ) -> Result<u64, StoreError> {
        faulty!(
            self,
            "expiring a snapshot",
            store_fault,
            self.inner.expire(period, version, at_epoch_seconds)
        )
    }

    async fn retired(&self, period: BillingPeriod, version: i64) -> Result<(), StoreError> {
        faulty!(
            self,
            "marking a snapshot retired",
            store_fault,
            self.inner.retired(period, version)
        )
    }
}

impl<T: RunStore> RunStore for Faulty<T> {
    async fn claim_run(&self, run: &Run) -> Result<Claim, StoreError> {
        faulty!(
            self,
            "claiming a run",
            store_fault,
            self.inner.claim_run(run)
        )
    }

    async fn run(&self, period: BillingPeriod, run_id: &str) -> Result<Option<Run>, StoreError> {
        faulty!(
            self,
            "reading a run",
            store_fault,
            self.inner.run(period, run_id)
        )
    }

    async fn runs(&self, period: BillingPeriod) -> Result<Vec<Run>, StoreError> {
        faulty!(self, "listing runs", store_fault, self.inner.runs(period))
    }

    async fn run_by_query(&self, query_id: &str) -> Result<Option<Run>, StoreError> {
        faulty!(
            self,
            "looking up a query",
            store_fault,
            self.inner.run_by_query(query_id)
        )
    }

    async fn index_query(&self, run: &Run, query_id: &str) -> Result<(), StoreError> {
        faulty!(
            self,
            "indexing a query",
            store_fault,
            self.inner.index_query(run, query_id)
        )
    }

    async fn put_run(&self, run: &Run, from: RunState) -> Result<(), StoreError> {
        faulty!(
            self,
            "recording a run",
            store_fault,
            self.inner.put_run(run, from)
        )
    }

    async fn note_latest(&self, run: &Run) -> Result<(), StoreError> {
        faulty!(
            self,
            "noting the latest run",
            store_fault,
            self.inner.note_latest(run)
        )
    }

    async fn record_failure(&self, run: &Run, failure: &RunFailure) -> Result<(), StoreError> {
        faulty!(
            self,
            "recording a failure",
            store_fault,
            self.inner.record_failure(run, failure)
        )
    }
}

impl<T: QueryRunner> QueryRunner for Faulty<T> {
    fn workgroup(&self) -> &str {
        self.inner.workgroup()
    }

    async fn start(
        &self,
        sql: &str,
        database: &str,
        token: Option<&str>,
    ) -> Result<String, ExternalError> {
        faulty!(
            self,
            "starting a query",
            external_fault,
            self.inner.start(sql, database, token)
        )
    }

    async fn status(&self, query_id: &str) -> Result<QueryStatus, ExternalError> {
        faulty!(
            self,
            "reading a query",
            external_fault,
            self.inner.status(query_id)
        )
    }

    async fn wait(&self, query_id: &str, timeout: Duration) -> Result<QueryStatus, ExternalError> {
        faulty!(
            self,
            "waiting for a query",
            external_fault,
            self.inner.wait(query_id, timeout)
        )
    }
}

impl<T: Catalog> Catalog for Faulty<T> {
    async fn table(&self, database: &str, table: &str) -> Result<TableInfo, ExternalError> {
        faulty!(
            self,
            "reading the table",
            external_fault,
            self.inner.table(database, table)
        )
    }
}

impl<T: ObjectReader> ObjectReader for Faulty<T> {
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<StoredObject, ExternalError> {
        faulty!(
            self,
            "reading an object",
            external_fault,
            self.inner.get(bucket, key, max_bytes)
        )
    }

    async fn legacy_status(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<(bool, StoredObject), ExternalError> {
        faulty!(
            self,
            "reading the status object",
            external_fault,
            self.inner.legacy_status(bucket, key, max_bytes)
        )
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, ExternalError> {
        faulty!(
            self,
            "listing objects",
            external_fault,
            self.inner.list(bucket, prefix)
        )
    }

    async fn modified_since(
        &self,
        bucket: &str,
        prefix: &str,
        since_epoch_seconds: i64,
    ) -> Result<bool, ExternalError> {
        faulty!(
            self,
            "listing changes",
            external_fault,
            self.inner
                .modified_since(bucket, prefix, since_epoch_seconds)
        )
    }

    async fn read_result(&self, uri: &str, sink: &mut dyn ResultSink) -> Result<(), ExternalError> {
        faulty!(
            self,
            "reading a result",
            external_fault,
            self.inner.read_result(uri, sink)
        )
    }
}

//! Ports: the capabilities the allocation use case needs from the outside world. The pipeline's
//! write side is in [`pipeline`].

pub mod pipeline;

use crate::domain::columns::ColumnSet;
use crate::domain::snapshot::{Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::domain::DomainError;
use std::future::Future;

/// One cell of a query result. Engines that return text (Athena CSV) use `Text` for numbers too.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Number(f64),
    Integer(i64),
}

impl Cell {
    /// The cell as a number: `Null` is 0; text must parse.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Null => Some(0.0),
            Cell::Number(v) => Some(*v),
            Cell::Integer(v) => Some(*v as f64),
            Cell::Text(t) if t.is_empty() => Some(0.0),
            Cell::Text(t) => t.trim().parse().ok(),
        }
    }

    /// The cell as text (`Null` is empty).
    pub fn as_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::Number(v) => v.to_string(),
            Cell::Integer(v) => v.to_string(),
        }
    }
}

/// A whole query result: column names and rows of cells in that order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl ResultTable {
    /// The position of `column`, if present.
    pub fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }
}

/// Where a query result goes as it is read, row by row: a reader of a large result never holds all of
/// it. A refusal (`Err`) stops the read; its reason names what is wrong.
pub trait ResultSink: Send {
    /// The column names: once, before any row.
    fn columns(&mut self, columns: Vec<String>) -> Result<(), String>;
    /// One row, as wide as the header.
    fn row(&mut self, row: Vec<Cell>) -> Result<(), String>;
    /// Every group of the keys sent so far has been sent: later rows have other keys. An engine
    /// that answers in several parts (each complete for its keys) says so after each; a sink may
    /// then finish what it holds of them.
    fn keys_complete(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A sink that keeps the whole table (small results and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableSink(pub ResultTable);

impl ResultSink for TableSink {
    fn columns(&mut self, columns: Vec<String>) -> Result<(), String> {
        self.0.columns = columns;
        Ok(())
    }

    fn row(&mut self, row: Vec<Cell>) -> Result<(), String> {
        self.0.rows.push(row);
        Ok(())
    }
}

/// Rows read back from a [`RunStore`], in the order written.
pub type RunRows =
    Box<dyn Iterator<Item = Result<crate::domain::AllocationRow, EngineError>> + Send>;

/// Where sorted runs of display rows wait when there are more than memory should hold (temporary
/// files: `adapters::spill::DiskRuns`). A row is kept with its keys, flag, costs, shared part, resource count and line
/// items (not its resource set: display rows are merged already).
pub trait RunStore: Send {
    /// Keeps `rows`, in their order, as the next run.
    fn write_run(&mut self, rows: &[crate::domain::AllocationRow]) -> Result<(), EngineError>;
    /// Every run written, each read back in its order.
    fn read_runs(&mut self) -> Result<Vec<RunRows>, EngineError>;
}

/// Why an engine could not answer. Grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input data is unusable as given (no files, unreadable file, mixed flavours …). The message names it.
    #[error("{0}")]
    Input(String),
    /// The request cannot be planned against this data.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Storage (local disk or S3) failed.
    #[error("{context}: {source}")]
    Storage {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine failed while planning or running a query.
    #[error("{context}: {source}")]
    Execution {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Runs an allocation plan over one CUR table (the local engine, `adapters::native`). The result has
/// exactly the columns, with the same meaning, of the allocation query
/// [`crate::domain::sql::render_allocation`] renders for the plan (plus `unreadable_tags` when the plan
/// reads tag maps), so [`crate::service`] reads it as the pipeline reads Athena's: through a
/// [`ResultSink`], one row at a time, never a whole table of cells.
pub trait AllocationEngine {
    /// The table's real column names (canonical: legacy CSV headers already mapped to Athena names).
    fn columns(&self) -> &ColumnSet;
    /// Scans the table and hands the plan's groups to `sink`: the header, then one row per group. An
    /// engine that holds the groups in parts (passes over the table when they are too many for memory)
    /// calls [`ResultSink::keys_complete`] after each part. A refusal by the sink stops the run with
    /// an error naming its reason.
    fn run_allocation(
        &self,
        plan: &crate::domain::AllocationPlan,
        sink: &mut dyn ResultSink,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// Receives progress of long work, to show a person. Every method has a silent default.
pub trait Progress: Send + Sync {
    /// A new phase starts: "reading schemas of 12 files".
    fn phase(&self, _message: &str) {}
    /// The current scan will read about this many line items (`None`: unknown, e.g. CSV).
    fn set_total_rows(&self, _rows: Option<u64>) {}
    /// The scan has read `rows` line items so far.
    fn rows_read(&self, _rows: u64) {}
    /// Work is over (successfully or not).
    fn finish(&self) {}
}

/// Progress that reports nothing (tests, scripts).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why a snapshot store could not answer or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored item does not have the shape kubecur writes (hand edits, a newer schema): named.
    #[error("stored item {key} is malformed: {reason}")]
    Malformed { key: String, reason: String },
    /// A conditional write lost: the item changed since it was read (another invocation moved the run
    /// on). Retrying reads it again.
    #[error("{key} changed concurrently: {reason}")]
    Conflict { key: String, reason: String },
    /// The store failed (network, throttling beyond retries, permissions).
    #[error("{context}: {source}")]
    Backend {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The last failed run of a billing period, kept beside its serving snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    pub run_id: String,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

/// One billing period's pointer: the snapshot it serves (if any), its last failure (if any), the
/// newest delivery kubecur knows of, and the versions replaced by a flip whose items have not been
/// given a time to live yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodStatus {
    pub period: BillingPeriod,
    pub serving: Option<SnapshotInfo>,
    pub last_failure: Option<RunFailure>,
    pub latest: Option<crate::domain::run::LatestRun>,
    pub retiring: Vec<i64>,
}

/// Reads serving snapshots: DynamoDB on AWS, memory in `kubecur serve`.
pub trait SnapshotReader: Send + Sync {
    /// The pointers of `periods` (one round trip); periods without a pointer are left out.
    fn pointers(
        &self,
        periods: &[BillingPeriod],
    ) -> impl Future<Output = Result<Vec<PeriodStatus>, StoreError>> + Send;
    /// Every period's pointer, oldest first.
    fn all_pointers(&self) -> impl Future<Output = Result<Vec<PeriodStatus>, StoreError>> + Send;
    /// Every group of `level` in the snapshot `info` describes; shared, so that a store holding them in
    /// memory answers without copying.
    fn groups(
        &self,
        info: &SnapshotInfo,
        level: Level,
    ) -> impl Future<Output = Result<Vec<std::sync::Arc<SnapshotGroup>>, StoreError>> + Send;
}

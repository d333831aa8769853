//! The AWS pipeline's use cases (feature `aws`): the ingest (a delivery finished → partition + query)
//! and the writer (a query finished → snapshot). The Lambda crates only parse events and call these.

pub mod ingest;
pub mod writer;

use crate::adapters::aws::AwsError;
use crate::domain::columns::ColumnSet;
use crate::domain::plan::{AllocationPlan, AllocationRequest};
use crate::domain::window::{BillingPeriod, UsageWindow};
use crate::domain::{Dimension, DomainError};
use crate::ports::{EngineError, StoreError};

/// Why a pipeline step failed. The Lambda returns it as the invocation's error, so the event is
/// retried and, after the retries, kept by the on-failure destination: nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The event or an object it points at is unusable as given (named in the message).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The allocation every run computes: the whole billing period at full grain, so any window and
/// grouping inside it can be served from the snapshot. Ingest and writer plan it identically.
pub fn run_plan(
    columns: &[String],
    period: BillingPeriod,
    tag_keys: &[String],
) -> Result<AllocationPlan, DomainError> {
    let request = AllocationRequest {
        window: Some(UsageWindow::billing_period(period)),
        group_by: Dimension::ALL.to_vec(),
        tag_mapping: crate::config::tag_mapping(tag_keys)?,
        accounts: Vec::new(),
        // Snapshots answer any window and regrouping: they need the resource sets.
        resource_ids: true,
    };
    AllocationPlan::new(&ColumnSet::new(columns.iter()), &request)
}

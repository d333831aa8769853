//! The DynamoDB store: runs, query index, billing-period pointers and snapshot groups in one table.
//! Key schema and access patterns: `docs/dynamodb.md`.
//!
//! - [`codec`]: the items and how they read back;
//! - [`runs`]: the run repository (the [`RunStore`](crate::ports::pipeline::RunStore) port);
//! - [`snapshots`]: snapshot writing and publishing
//!   ([`SnapshotWriter`](crate::ports::pipeline::SnapshotWriter)) and reading ([`SnapshotReader`]);
//! - [`counts`]: request counters.

pub mod codec;
pub mod counts;
pub mod runs;
pub mod snapshots;

pub use crate::pipeline::EXPIRY_GRACE_SECONDS;
pub use crate::ports::pipeline::{Claim, Flip};
pub use codec::{group_item, read_group, snapshot_partition, Item, TTL_ATTRIBUTE};
pub use counts::RequestCounts;
pub use snapshots::{BATCH_WRITE_LIMIT, WRITE_CONCURRENCY};

use crate::domain::snapshot::{Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::{PeriodStatus, SnapshotReader, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;
use codec::{pointer_status, s, PK, POINTER_PK, SK};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The DynamoDB-backed store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    counts: Arc<RequestCounts>,
}

/// Maps an SDK error to a store error with the service's code and message; the raw response goes to
/// the log only.
fn backend<E>(context: impl Into<String>) -> impl FnOnce(SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let context = context.into();
    move |err| {
        tracing::warn!(%context, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "DynamoDB call failed.");
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            (None, _) => err.to_string(),
        };
        StoreError::Backend {
            context,
            source: message.into(),
        }
    }
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
    ) -> Result<Vec<std::sync::Arc<SnapshotGroup>>, StoreError> {
        let extras: std::sync::Arc<[crate::domain::Dimension]> = info.extras().into();
        self.query_partition(&snapshot_partition(info.period, info.version, level))
            .await?
            .iter()
            .map(|item| read_group(item, info.period, level, &extras).map(std::sync::Arc::new))
            .collect()
    }
}

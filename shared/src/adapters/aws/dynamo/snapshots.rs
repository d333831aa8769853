//! Snapshot writing and publishing: groups in batches, the pointer flip, the replaced snapshot's TTL.

use super::codec::{
    group_item, malformed, n, s, snapshot_partition, to_json, Item, PK, POINTER_PK, RETIRING, SK,
    TTL_ATTRIBUTE,
};
use super::{backend, DynamoStore};
use crate::adapters::aws::retry::Backoff;
use crate::domain::snapshot::{newer_wins, Level, PointerDecision, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::pipeline::{Flip, SnapshotWriter};
use crate::ports::{SnapshotReader, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::sync::atomic::Ordering;

/// AWS's limit on one `BatchWriteItem` request (API reference, BatchWriteItem: "up to 25 item put or
/// delete operations"). moto accepts more; real DynamoDB rejects the whole request.
pub const BATCH_WRITE_LIMIT: usize = 25;
/// Batches in flight at once per writer.
pub const WRITE_CONCURRENCY: usize = 4;
/// Reads and conditional writes of a pointer before publishing gives up (each failure means another
/// writer flipped it in between: rare, and the invocation is retried).
const FLIP_ATTEMPTS: usize = 5;

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

fn put_request(item: Item, what: &str) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| malformed(what, e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl DynamoStore {
    /// Writes every group of a snapshot: batches of at most [`BATCH_WRITE_LIMIT`], [`WRITE_CONCURRENCY`]
    /// in flight, unprocessed items and throttling retried with exponential backoff and full jitter.
    pub async fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: &[SnapshotGroup],
    ) -> Result<(), StoreError> {
        let what = format!("snapshot {} v{}", info.period.label(), info.version);
        // Every item is checked before the first is written, so an item over DynamoDB's size limit
        // fails the snapshot before it leaves items behind; then each batch's items are encoded as the
        // batch goes out, not all at once (a snapshot's items weigh about what its groups weigh).
        for group in groups {
            group_item(info, group)?;
        }
        // Batches by their first index: a stream of borrowed chunks trips rustc's `Send` inference.
        stream::iter((0..groups.len()).step_by(BATCH_WRITE_LIMIT))
            .map(|start| {
                let end = groups.len().min(start + BATCH_WRITE_LIMIT);
                self.write_group_batch(info, &groups[start..end], &what)
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn write_group_batch(
        &self,
        info: &SnapshotInfo,
        groups: &[SnapshotGroup],
        what: &str,
    ) -> Result<(), StoreError> {
        let batch = groups
            .iter()
            .map(|g| put_request(group_item(info, g)?, what))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write_batch(batch, what).await
    }

    async fn put_items(&self, items: Vec<Item>, what: &str) -> Result<(), StoreError> {
        // Items are moved into their requests, not copied: a snapshot can hold many thousand.
        let mut requests = items
            .into_iter()
            .map(|item| put_request(item, what))
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

    /// Makes `info` the period's serving snapshot if no newer version serves ([`newer_wins`]): the
    /// pointer is read, then updated on the condition that it still serves what was read, adding the
    /// replaced version to the `retiring` set in the same write. A concurrent flip in between fails
    /// the condition and the decision is taken again.
    pub async fn flip_pointer(&self, info: &SnapshotInfo) -> Result<Flip, StoreError> {
        for _ in 0..FLIP_ATTEMPTS {
            let current = self
                .pointers(&[info.period])
                .await?
                .into_iter()
                .next()
                .and_then(|p| p.serving);
            match newer_wins(current.as_ref().map(|c| c.version), info.version) {
                PointerDecision::AlreadyServing => return Ok(Flip::AlreadyServing),
                PointerDecision::KeepNewer(serving) => return Ok(Flip::Newer { serving }),
                PointerDecision::Flip => {}
            }
            self.count_other();
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(POINTER_PK))
                .key(SK, s(info.period.label()))
                .expression_attribute_names("#info", "info")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":info", s(to_json(info)))
                .expression_attribute_values(":version", n(info.version));
            request = match &current {
                None => request
                    .update_expression("SET #info = :info, #version = :version")
                    .condition_expression("attribute_not_exists(#version)"),
                Some(previous) => request
                    .update_expression(
                        "SET #info = :info, #version = :version ADD #retiring :previous",
                    )
                    .condition_expression("#version = :serving")
                    .expression_attribute_names("#retiring", RETIRING)
                    .expression_attribute_values(
                        ":previous",
                        AttributeValue::Ns(vec![previous.version.to_string()]),
                    )
                    .expression_attribute_values(":serving", n(previous.version)),
            };
            match request.send().await {
                Ok(_) => return Ok(Flip::Flipped { previous: current }),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
                {
                    tracing::debug!(period = %info.period.label(), "The pointer changed while publishing; deciding again.");
                }
                Err(err) => {
                    return Err(backend(format!("publishing {}", info.period.label()))(err))
                }
            }
        }
        Err(malformed(
            &info.period.label(),
            format!("the pointer kept changing over {FLIP_ATTEMPTS} attempts to publish"),
        ))
    }

    /// Takes `version` off the pointer's `retiring` set.
    pub async fn mark_retired(
        &self,
        period: BillingPeriod,
        version: i64,
    ) -> Result<(), StoreError> {
        self.count_other();
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(POINTER_PK))
            .key(SK, s(period.label()))
            .update_expression("DELETE #retiring :version")
            .expression_attribute_names("#retiring", RETIRING)
            .expression_attribute_values(":version", AttributeValue::Ns(vec![version.to_string()]))
            .send()
            .await
            .map_err(backend(format!("retiring {} v{version}", period.label())))?;
        Ok(())
    }

    /// Sets the TTL attribute on every item of a snapshot (re-put in batches: `BatchWriteItem` has no
    /// update). DynamoDB deletes them within days of the time; readers never look at them again, since
    /// the pointer names another version.
    pub async fn expire_snapshot(
        &self,
        period: BillingPeriod,
        version: i64,
        at_epoch_seconds: i64,
    ) -> Result<u64, StoreError> {
        let mut items = Vec::new();
        for level in Level::ALL {
            items.extend(
                self.query_partition(&snapshot_partition(period, version, level))
                    .await?,
            );
        }
        for item in &mut items {
            item.insert(TTL_ATTRIBUTE.into(), n(at_epoch_seconds));
        }
        let total = items.len() as u64;
        // One batch sequence over both levels: batches stay full across the level boundary.
        self.put_items(items, &format!("expiring {} v{version}", period.label()))
            .await?;
        Ok(total)
    }
}

impl SnapshotWriter for DynamoStore {
    async fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: Vec<SnapshotGroup>,
    ) -> Result<(), StoreError> {
        DynamoStore::write_groups(self, info, &groups).await
    }

    async fn flip(&self, info: &SnapshotInfo) -> Result<Flip, StoreError> {
        self.flip_pointer(info).await
    }

    async fn expire(
        &self,
        period: BillingPeriod,
        version: i64,
        at_epoch_seconds: i64,
    ) -> Result<u64, StoreError> {
        self.expire_snapshot(period, version, at_epoch_seconds)
            .await
    }

    async fn retired(&self, period: BillingPeriod, version: i64) -> Result<(), StoreError> {
        self.mark_retired(period, version).await
    }
}

/// Error paths against `aws-smithy-mocks`: what DynamoDB does under load and contention.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::dynamo::codec::tests::info;
    use crate::adapters::aws::dynamo::codec::{n, s, to_json, PK, POINTER_PK, RETIRING, SK};
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    };
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::collections::{BTreeMap, HashMap};
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

    /// A `BatchWriteItem` rule builder that records the size of every request it sees.
    #[allow(clippy::type_complexity)] // the SDK's generic rule type, spelled once in a test helper
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
            .map(|i| {
                SnapshotGroup::new(
                    Level::Namespace,
                    vec![format!("ns-{i}")],
                    true,
                    BTreeMap::new(),
                )
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

    fn pointer_page(version: Option<i64>) -> QueryOutput {
        let mut item = HashMap::from([
            (PK.to_string(), s(POINTER_PK)),
            (SK.to_string(), s("2024-06")),
        ]);
        if let Some(v) = version {
            item.insert("info".into(), s(to_json(&info(v))));
            item.insert("version".into(), n(v));
        }
        QueryOutput::builder().items(item).build()
    }

    #[tokio::test]
    async fn only_a_newer_version_wins_the_pointer() {
        for (serving, expected) in [(9, Flip::Newer { serving: 9 }), (7, Flip::AlreadyServing)] {
            let read = mock!(Client::query).then_output(move || pointer_page(Some(serving)));
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&read]);
            assert_eq!(
                store(client)
                    .flip_pointer(&info(7))
                    .await
                    .expect("answered"),
                expected,
                "no write when the rule refuses"
            );
        }
        // Serving v3: the update is conditional on v3 still serving and retires v3 in the same write.
        let read = mock!(Client::query).then_output(|| pointer_page(Some(3)));
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                r.condition_expression() == Some("#version = :serving")
                    && r.update_expression()
                        .is_some_and(|e| e.contains("ADD #retiring :previous"))
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":previous"))
                        == Some(&AttributeValue::Ns(vec!["3".into()]))
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&read, &update]);
        assert_eq!(
            store(client).flip_pointer(&info(7)).await.expect("flipped"),
            Flip::Flipped {
                previous: Some(info(3))
            }
        );
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_flip_that_loses_a_race_decides_again() {
        // Read v3, another writer publishes v9, the conditional update fails, the re-read says v9.
        let read = mock!(Client::query)
            .sequence()
            .output(|| pointer_page(Some(3)))
            .output(|| pointer_page(Some(9)))
            .build();
        let update = mock!(Client::update_item).then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&read, &update]);
        assert_eq!(
            store(client)
                .flip_pointer(&info(7))
                .await
                .expect("answered"),
            Flip::Newer { serving: 9 }
        );
        assert_eq!((read.num_calls(), update.num_calls()), (2, 1));
    }

    #[test]
    fn pointers_read_back_their_retiring_versions() {
        let mut item = HashMap::from([
            (PK.to_string(), s(POINTER_PK)),
            (SK.to_string(), s("2024-06")),
        ]);
        item.insert(
            RETIRING.into(),
            AttributeValue::Ns(vec!["3".into(), "5".into()]),
        );
        let status = super::super::codec::pointer_status(&item).expect("readable");
        assert_eq!(status.retiring, vec![3, 5]);
        item.insert(RETIRING.into(), s("3"));
        assert!(super::super::codec::pointer_status(&item).is_err());
    }
}

//! A CUR delivery finished: claim the run, add the billing period's partition, start the allocation.

use super::{advance, fail_run, run_plan, PipelineError, MAX_SIGNAL_BYTES};
use crate::config::IngestConfig;
use crate::domain::delivery::{classify, parse_manifest, DeliveryObject};
use crate::domain::plan::Warning;
use crate::domain::run::{Delivery, Run, RunState};
use crate::domain::sql::{period_partition, render_add_partition};
use crate::domain::window::BillingPeriod;
use crate::domain::TableRef;
use crate::ports::pipeline::{
    Catalog, Claim, Clock, ObjectReader, QueryRunner, QueryState, RunStore, TableInfo,
};
use chrono::{Datelike, Months};
use std::sync::Arc;
use std::time::Duration;

/// One object-created notification, whatever its transport (S3 notification or EventBridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// Without quotes.
    pub etag: Option<String>,
    /// Event time, milliseconds since the epoch.
    pub event_time_ms: i64,
}

/// What the ingest did with one signal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum IngestOutcome {
    /// Not a delivery signal (data part, crawler template, test object …).
    Ignored { key: String, reason: String },
    /// Legacy status object not `READY`.
    NotReady { key: String },
    /// A delivery of an export or report the configured table does not read.
    Foreign { key: String, reason: String },
    /// This delivery's run exists and has its query: nothing new starts.
    Duplicate { run_id: String, state: RunState },
    /// The allocation query started.
    Started { run_id: String, query_id: String },
    /// The run could not start (the partition DDL failed): recorded on the run and the pointer.
    Failed { run_id: String, reason: String },
}

/// The ingest use case over its ports.
#[derive(Clone)]
pub struct Ingest<S, Q, C, O> {
    pub store: S,
    pub queries: Q,
    pub catalog: C,
    pub objects: O,
    pub config: IngestConfig,
    pub clock: Arc<dyn Clock>,
}

impl<S, Q, C, O> std::fmt::Debug for Ingest<S, Q, C, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The root (`prefix/name`, no trailing slash) a table location belongs to: the folder above the
/// data folder (`…/<export>/data/`, legacy `…/<report>/<report>/`), where the delivery signals live.
pub fn delivery_root(location: &str) -> Option<(String, String)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    let key = key.trim_end_matches('/');
    let (root, _) = key.rsplit_once('/')?;
    (!bucket.is_empty() && !root.is_empty()).then(|| (bucket.to_string(), root.to_string()))
}

impl<S: RunStore, Q: QueryRunner, C: Catalog, O: ObjectReader> Ingest<S, Q, C, O> {
    /// Handles one signal. Ignoring is an outcome, not an error; errors mean "retry this event".
    pub async fn handle(&self, signal: &Signal) -> Result<Vec<IngestOutcome>, PipelineError> {
        match classify(&signal.key) {
            DeliveryObject::Ignored(reason) => {
                tracing::debug!(key = %signal.key, %reason, "Not a delivery signal; ignored.");
                Ok(vec![IngestOutcome::Ignored {
                    key: signal.key.clone(),
                    reason: reason.to_string(),
                }])
            }
            DeliveryObject::ExportManifest {
                export_root,
                billing_period,
            } => {
                // Whose delivery it is, before reading a byte of it.
                let table = self.table().await?;
                if let Some(foreign) = self.foreign(signal, &export_root, &table) {
                    return Ok(vec![foreign]);
                }
                let object = self
                    .objects
                    .get(&signal.bucket, &signal.key, MAX_SIGNAL_BYTES)
                    .await?;
                let manifest = parse_manifest(&signal.key, &object.bytes)
                    .map_err(|e| PipelineError::InvalidEvent(e.to_string()))?;
                let delivery = Delivery {
                    root: export_root,
                    period: billing_period,
                    identity: manifest.execution_id,
                    signalled_at_ms: object.last_modified_ms.unwrap_or(signal.event_time_ms),
                };
                Ok(vec![self.start(&delivery, &table).await?])
            }
            DeliveryObject::LegacyStatus { report_root } => {
                let table = self.table().await?;
                if let Some(foreign) = self.foreign(signal, &report_root, &table) {
                    return Ok(vec![foreign]);
                }
                let (ready, object) = self
                    .objects
                    .legacy_status(&signal.bucket, &signal.key, MAX_SIGNAL_BYTES)
                    .await?;
                if !ready {
                    tracing::info!(key = %signal.key, "Legacy CUR status is not READY; waiting for the next update.");
                    return Ok(vec![IngestOutcome::NotReady {
                        key: signal.key.clone(),
                    }]);
                }
                let written_at = object.last_modified_ms.unwrap_or(signal.event_time_ms);
                let identity = legacy_identity(signal, object.etag, object.last_modified_ms)?;
                let mut outcomes = Vec::new();
                for period in self.legacy_periods(signal, &table).await? {
                    let delivery = Delivery {
                        root: report_root.clone(),
                        period,
                        identity: identity.clone(),
                        signalled_at_ms: written_at,
                    };
                    outcomes.push(self.start(&delivery, &table).await?);
                }
                Ok(outcomes)
            }
        }
    }

    pub async fn table(&self) -> Result<TableInfo, PipelineError> {
        Ok(self
            .catalog
            .table(&self.config.database, &self.config.cur_table)
            .await?)
    }

    fn location(&self, table: &TableInfo) -> Result<String, PipelineError> {
        let location = table.location.clone().ok_or_else(|| {
            PipelineError::Misconfigured(format!(
                "Glue table {}.{} has no storage location",
                self.config.database, self.config.cur_table
            ))
        })?;
        Ok(if location.ends_with('/') {
            location
        } else {
            location + "/"
        })
    }

    /// A delivery under another root than the configured table's location is not ours to query.
    fn foreign(&self, signal: &Signal, root: &str, table: &TableInfo) -> Option<IngestOutcome> {
        let expected = format!("s3://{}/{}/", signal.bucket, root);
        let location = table.location.as_deref().unwrap_or("");
        let location = location.trim_end_matches('/').to_string() + "/";
        if location.starts_with(&expected) {
            return None;
        }
        let reason = format!(
            "the delivery is under {expected} but Glue table {}.{} reads {location}",
            self.config.database, self.config.cur_table
        );
        tracing::warn!(key = %signal.key, %reason, "Delivery for another table; ignored.");
        Some(IngestOutcome::Foreign {
            key: signal.key.clone(),
            reason,
        })
    }

    /// Legacy CUR's status object does not say which month was delivered: the month of the signal, and
    /// the month before when its folder changed in the 24 hours before the signal (AWS keeps updating
    /// the previous month until its invoice is final).
    async fn legacy_periods(
        &self,
        signal: &Signal,
        table: &TableInfo,
    ) -> Result<Vec<BillingPeriod>, PipelineError> {
        let at =
            chrono::DateTime::from_timestamp_millis(signal.event_time_ms).ok_or_else(|| {
                PipelineError::InvalidEvent(format!(
                    "event time {} ms is out of range",
                    signal.event_time_ms
                ))
            })?;
        let current = BillingPeriod::of(at.date_naive());
        let mut periods = Vec::new();
        if let Some(day) = current.first_day().checked_sub_months(Months::new(1)) {
            let previous = BillingPeriod {
                year: day.year(),
                month: day.month(),
            };
            if let Some(partition) = period_partition(&table.partition_keys, previous)? {
                let folder = self.location(table)? + &partition.folder;
                let (bucket, prefix) = split_uri(&folder)?;
                let since = signal.event_time_ms / 1000 - 24 * 3600;
                if self.objects.modified_since(&bucket, &prefix, since).await? {
                    periods.push(previous);
                }
            }
        }
        periods.push(current);
        Ok(periods)
    }

    /// Claims the delivery's run and starts its query, unless the run already has one.
    async fn start(
        &self,
        delivery: &Delivery,
        table: &TableInfo,
    ) -> Result<IngestOutcome, PipelineError> {
        let plan = run_plan(&table.columns, delivery.period, &self.config.tag_mapping)?;
        let run = Run {
            id: delivery.run_id(),
            period: delivery.period,
            version: delivery.version(),
            source: delivery.identity.clone(),
            state: RunState::Claimed,
            query_id: None,
            columns: table.columns.clone(),
            tag_mapping: self.config.tag_mapping.clone(),
            missing_tags: plan
                .warnings
                .iter()
                .filter_map(|w| match w {
                    Warning::TagMissing { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect(),
            failure: None,
            updated_at_ms: self.clock.now_ms(),
        };
        let mut run = match self.store.claim_run(&run).await? {
            Claim::New => run,
            Claim::Existing(existing) if existing.state != RunState::Claimed => {
                tracing::info!(run = %existing.id, state = existing.state.name(), "Delivery already has a run; nothing starts.");
                return Ok(IngestOutcome::Duplicate {
                    run_id: existing.id,
                    state: existing.state,
                });
            }
            // Claimed by an invocation that stopped before recording its query: carry on with that
            // claim. The ClientRequestToken makes Athena return the same query to a concurrent twin.
            Claim::Existing(existing) => *existing,
        };
        self.resume(&mut run, table).await
    }

    /// Carries a `CLAIMED` run on: the period's partition, the query (same token, so a retry gets the
    /// same query back), its index, `QUERYING`. The reconciler resumes stuck claims with it.
    pub async fn resume(
        &self,
        run: &mut Run,
        table: &TableInfo,
    ) -> Result<IngestOutcome, PipelineError> {
        self.store.note_latest(run).await?;
        if let Some(partition) = period_partition(&table.partition_keys, run.period)? {
            let location = self.location(table)? + &partition.folder;
            let ddl = render_add_partition(
                &self.config.database,
                &self.config.cur_table,
                &partition,
                &location,
            )?;
            tracing::info!(%ddl, "Adding the billing period's partition.");
            let ddl_id = self
                .queries
                .start(&ddl, &self.config.database, None)
                .await?;
            let status = self
                .queries
                .wait(
                    &ddl_id,
                    Duration::from_secs(self.config.ddl_timeout_seconds),
                )
                .await?;
            if status.state != QueryState::Succeeded {
                let reason = format!(
                    "adding partition {location} failed ({:?}): {}",
                    status.state,
                    status.reason.unwrap_or_else(|| "no reason given".into())
                );
                fail_run(&self.store, self.clock.as_ref(), run, &reason).await?;
                return Ok(IngestOutcome::Failed {
                    run_id: run.id.clone(),
                    reason,
                });
            }
        }
        let plan = run_plan(&run.columns, run.period, &run.tag_mapping)?;
        let sql = run.query_marker()
            + &crate::domain::sql::render_allocation(
                &plan,
                &TableRef::Glue {
                    database: self.config.database.clone(),
                    table: self.config.cur_table.clone(),
                },
            )?;
        let token = run.client_request_token();
        let query_id = self
            .queries
            .start(&sql, &self.config.database, Some(&token))
            .await?;
        self.store.index_query(run, &query_id).await?;
        run.query_id = Some(query_id.clone());
        advance(&self.store, self.clock.as_ref(), run, RunState::Querying).await?;
        tracing::info!(run = %run.id, query = %query_id, "Allocation query started.");
        Ok(IngestOutcome::Started {
            run_id: run.id.clone(),
            query_id,
        })
    }
}

/// A legacy delivery's identity: the status object's ETag and `LastModified`. The ETag alone is not
/// enough: the status object is a tiny file saying `READY`, and when AWS writes identical bytes again
/// the ETag (a digest of the bytes for a single-part upload) does not change, while `LastModified`
/// does ("Date and time when the object was last modified",
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html#API_HeadObject_ResponseSyntax>;
/// ETag: "The ETag reflects changes only to the contents of an object, not its metadata",
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html>).
fn legacy_identity(
    signal: &Signal,
    etag: Option<String>,
    last_modified_ms: Option<i64>,
) -> Result<String, PipelineError> {
    let etag = etag.or_else(|| signal.etag.clone()).ok_or_else(|| {
        PipelineError::InvalidEvent(format!(
            "neither the event nor the object {} carries an ETag: a legacy delivery cannot be identified",
            signal.key
        ))
    })?;
    let modified = last_modified_ms.unwrap_or(signal.event_time_ms);
    Ok(format!("{etag}@{modified}"))
}

/// Splits `s3://bucket/key` into bucket and key.
pub fn split_uri(uri: &str) -> Result<(String, String), PipelineError> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| PipelineError::Misconfigured(format!("`{uri}` is not an s3:// URI")))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket.to_string(), key.to_string())),
        _ => Err(PipelineError::Misconfigured(format!(
            "`{uri}` has no bucket or key"
        ))),
    }
}

//! A CUR delivery finished: claim the run, add the billing period's partition, start the allocation.

use super::{run_plan, PipelineError};
use crate::adapters::aws::athena::{Athena, QueryState};
use crate::adapters::aws::dynamo::{Claim, DynamoStore};
use crate::adapters::aws::glue::{table_info, TableInfo};
use crate::adapters::aws::s3;
use crate::config::IngestConfig;
use crate::domain::delivery::{classify, parse_manifest, DeliveryObject};
use crate::domain::plan::Warning;
use crate::domain::run::{Delivery, Run, RunState};
use crate::domain::sql::{period_partition, render_add_partition};
use crate::domain::window::BillingPeriod;
use crate::domain::{Dialect, TableRef};
use chrono::{Datelike, Months};
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
}

/// The ingest use case with its adapters.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub athena: Athena,
    pub store: DynamoStore,
    pub config: IngestConfig,
}

impl Ingest {
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
                let bytes = s3::get_bytes(&self.s3, &signal.bucket, &signal.key).await?;
                let manifest = parse_manifest(&signal.key, &bytes)
                    .map_err(|e| PipelineError::Input(e.to_string()))?;
                let table = self.table().await?;
                if let Some(foreign) = self.foreign(signal, &export_root, &table) {
                    return Ok(vec![foreign]);
                }
                let delivery = Delivery {
                    root: export_root,
                    period: billing_period,
                    identity: manifest.execution_id,
                    signalled_at_ms: signal.event_time_ms,
                };
                Ok(vec![self.start(&delivery, &table).await?])
            }
            DeliveryObject::LegacyStatus { report_root } => {
                let bytes = s3::get_bytes(&self.s3, &signal.bucket, &signal.key).await?;
                if !s3::legacy_status_ready(&signal.key, bytes)? {
                    tracing::info!(key = %signal.key, "Legacy CUR status is not READY; waiting for the next update.");
                    return Ok(vec![IngestOutcome::NotReady {
                        key: signal.key.clone(),
                    }]);
                }
                let table = self.table().await?;
                if let Some(foreign) = self.foreign(signal, &report_root, &table) {
                    return Ok(vec![foreign]);
                }
                let identity = signal.etag.clone().ok_or_else(|| {
                    PipelineError::Input(format!(
                        "the event for {} carries no ETag: a legacy delivery cannot be identified",
                        signal.key
                    ))
                })?;
                let mut outcomes = Vec::new();
                for period in self.legacy_periods(signal, &table).await? {
                    let delivery = Delivery {
                        root: report_root.clone(),
                        period,
                        identity: identity.clone(),
                        signalled_at_ms: signal.event_time_ms,
                    };
                    outcomes.push(self.start(&delivery, &table).await?);
                }
                Ok(outcomes)
            }
        }
    }

    async fn table(&self) -> Result<TableInfo, PipelineError> {
        Ok(table_info(&self.glue, &self.config.database, &self.config.cur_table).await?)
    }

    fn location(&self, table: &TableInfo) -> Result<String, PipelineError> {
        let location = table.location.clone().ok_or_else(|| {
            PipelineError::Input(format!(
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
                PipelineError::Input(format!(
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
                let (bucket, prefix) = s3::split_uri(&folder)?;
                let since = signal.event_time_ms / 1000 - 24 * 3600;
                if s3::modified_since(&self.s3, &bucket, &prefix, since).await? {
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
        let plan = run_plan(&table.columns, delivery.period, &self.config.tag_keys)?;
        let run = Run {
            id: delivery.run_id(),
            period: delivery.period,
            version: delivery.version(),
            source: delivery.identity.clone(),
            state: RunState::Claimed,
            query_id: None,
            columns: table.columns.clone(),
            tag_keys: self.config.tag_keys.clone(),
            missing_tags: plan
                .warnings
                .iter()
                .filter_map(|w| match w {
                    Warning::TagMissing { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect(),
            failure: None,
        };
        let run = match self.store.claim_run(&run).await? {
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
            Claim::Existing(existing) => existing,
        };
        if let Some(partition) = period_partition(&table.partition_keys, delivery.period)? {
            let location = self.location(table)? + &partition.folder;
            let ddl = render_add_partition(
                &self.config.database,
                &self.config.cur_table,
                &partition,
                &location,
            )?;
            tracing::info!(%ddl, "Adding the billing period's partition.");
            let ddl_id = self.athena.start(&ddl, &self.config.database, None).await?;
            let status = self
                .athena
                .wait(
                    &ddl_id,
                    Duration::from_secs(self.config.ddl_timeout_seconds),
                )
                .await?;
            if status.state != QueryState::Succeeded {
                return Err(PipelineError::Input(format!(
                    "adding partition {location} failed ({:?}): {}",
                    status.state,
                    status.reason.unwrap_or_else(|| "no reason given".into())
                )));
            }
        }
        let sql = crate::domain::sql::render_allocation(
            &plan,
            Dialect::Athena,
            &TableRef::Glue {
                database: self.config.database.clone(),
                table: self.config.cur_table.clone(),
            },
        )?;
        let token = delivery.client_request_token();
        let query_id = self
            .athena
            .start(&sql, &self.config.database, Some(&token))
            .await?;
        self.store.record_query(&run, &query_id).await?;
        tracing::info!(run = %run.id, query = %query_id, "Allocation query started.");
        Ok(IngestOutcome::Started {
            run_id: run.id,
            query_id,
        })
    }
}

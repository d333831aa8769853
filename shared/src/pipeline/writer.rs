//! An allocation query finished: write its result as a new snapshot and publish it atomically, or
//! record why it failed. The previous snapshot serves until the pointer flips.

use super::{run_plan, PipelineError};
use crate::adapters::aws::athena::{Athena, QueryState};
use crate::adapters::aws::dynamo::{DynamoStore, Flip, EXPIRY_GRACE_SECONDS};
use crate::adapters::aws::s3;
use crate::domain::run::{Run, RunState};
use crate::domain::snapshot::{build_snapshot, SnapshotInfo, SnapshotOrigin};
use crate::ports::RunFailure;
use crate::service::read_allocation;

/// The parts of an `Athena Query State Change` event the writer acts on
/// (docs/cur-reference.md#athena).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    pub query_id: String,
    pub state: String,
    pub workgroup: String,
}

/// What the writer did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum WriterOutcome {
    /// Another workgroup's query, or one kubecur did not start.
    NotOurs,
    /// Queued or running: wait for the final event.
    NotFinal,
    /// The run already ended (a repeated event).
    AlreadyDone { run_id: String, state: RunState },
    /// The query failed or was cancelled; recorded.
    Failed { run_id: String, reason: String },
    /// The snapshot now serves.
    Published {
        run_id: String,
        groups: usize,
        replaced: Option<i64>,
    },
    /// A newer snapshot already served; this one's items expire.
    Superseded { run_id: String, serving: i64 },
}

/// The writer use case with its adapters.
#[derive(Debug, Clone)]
pub struct Writer {
    pub s3: aws_sdk_s3::Client,
    pub athena: Athena,
    pub store: DynamoStore,
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Writer {
    pub async fn handle(&self, event: &QueryEvent) -> Result<WriterOutcome, PipelineError> {
        if event.workgroup != self.athena.workgroup() {
            return Ok(WriterOutcome::NotOurs);
        }
        if QueryState::parse(&event.state).unwrap_or(QueryState::Running) == QueryState::Running {
            return Ok(WriterOutcome::NotFinal);
        }
        let Some(mut run) = self.store.run_by_query(&event.query_id).await? else {
            tracing::debug!(query = %event.query_id, "Not a kubecur allocation query; ignored.");
            return Ok(WriterOutcome::NotOurs);
        };
        if run.state.is_final() {
            return Ok(WriterOutcome::AlreadyDone {
                run_id: run.id,
                state: run.state,
            });
        }
        // The event is a hint; GetQueryExecution is the authority on state, reason and output.
        let status = self.athena.status(&event.query_id).await?;
        match status.state {
            QueryState::Running => Ok(WriterOutcome::NotFinal),
            QueryState::Failed | QueryState::Cancelled => {
                let reason = format!(
                    "Athena query {} {}: {}",
                    event.query_id,
                    if status.state == QueryState::Failed {
                        "failed"
                    } else {
                        "was cancelled"
                    },
                    status.reason.unwrap_or_else(|| "no reason given".into())
                );
                self.fail(&mut run, &reason).await?;
                Ok(WriterOutcome::Failed {
                    run_id: run.id,
                    reason,
                })
            }
            QueryState::Succeeded => {
                let output = status.output_location.ok_or_else(|| {
                    PipelineError::Input(format!(
                        "Athena query {} succeeded without an output location",
                        event.query_id
                    ))
                })?;
                self.publish(&mut run, &output).await
            }
        }
    }

    async fn fail(&self, run: &mut Run, reason: &str) -> Result<(), PipelineError> {
        tracing::error!(run = %run.id, %reason, "Allocation run failed; the previous snapshot keeps serving.");
        run.state = RunState::Failed;
        run.failure = Some(reason.to_string());
        self.store.put_run(run).await?;
        self.store
            .record_failure(
                run.period,
                &RunFailure {
                    run_id: run.id.clone(),
                    reason: reason.to_string(),
                    at: now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                },
            )
            .await?;
        Ok(())
    }

    async fn publish(&self, run: &mut Run, output: &str) -> Result<WriterOutcome, PipelineError> {
        let table = s3::read_result_csv(&self.s3, output).await?;
        let plan = run_plan(&run.columns, run.period, &run.tag_keys)?;
        let allocation = read_allocation(&plan, &table)?;
        let groups = build_snapshot(&allocation)?;
        let info = SnapshotInfo::describe(
            &allocation,
            &groups,
            SnapshotOrigin {
                period: run.period,
                version: run.version,
                run_id: run.id.clone(),
                source: run.source.clone(),
                computed_at: now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        );
        run.state = RunState::Writing;
        self.store.put_run(run).await?;
        self.store.write_groups(&info, &groups).await?;
        let expire_at = now().timestamp() + EXPIRY_GRACE_SECONDS;
        match self.store.flip(&info).await? {
            Flip::Flipped { previous } => {
                let replaced = previous.as_ref().map(|p| p.version);
                if let Some(previous) = previous.filter(|p| p.version != info.version) {
                    let expired = self.store.expire(&previous, expire_at).await?;
                    tracing::info!(
                        version = previous.version,
                        items = expired,
                        "Replaced snapshot expires."
                    );
                }
                run.state = RunState::Serving;
                self.store.put_run(run).await?;
                tracing::info!(run = %run.id, groups = groups.len(), "Snapshot published.");
                Ok(WriterOutcome::Published {
                    run_id: run.id.clone(),
                    groups: groups.len(),
                    replaced,
                })
            }
            Flip::AlreadyServing => {
                run.state = RunState::Serving;
                self.store.put_run(run).await?;
                Ok(WriterOutcome::Published {
                    run_id: run.id.clone(),
                    groups: groups.len(),
                    replaced: None,
                })
            }
            Flip::Newer { serving } => {
                self.store.expire(&info, expire_at).await?;
                run.state = RunState::Superseded;
                self.store.put_run(run).await?;
                tracing::info!(run = %run.id, serving, "A newer snapshot already serves; this one expires.");
                Ok(WriterOutcome::Superseded {
                    run_id: run.id.clone(),
                    serving,
                })
            }
        }
    }
}

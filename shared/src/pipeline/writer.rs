//! An allocation query finished: write its result as a new snapshot and publish it atomically, or
//! record why it failed. The previous snapshot serves until the pointer flips.

use super::publish::{publish, Snapshot, SnapshotStream};
use super::{advance, fail_run, rfc3339, run_plan, PipelineError, MAX_RESULT_ROWS};
use crate::domain::run::{parse_query_marker, Run, RunState};
use crate::domain::snapshot::SnapshotOrigin;
use crate::ports::pipeline::{
    Clock, ErrorKind, Flip, ObjectReader, QueryRunner, QueryState, QueryStatus, RunStore,
    SnapshotWriter,
};
use std::sync::Arc;

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
    /// The query failed or was cancelled, or its result cannot become a snapshot; recorded.
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

/// The writer use case over its ports.
#[derive(Clone)]
pub struct Writer<S, Q, O> {
    pub store: S,
    pub queries: Q,
    pub objects: O,
    pub clock: Arc<dyn Clock>,
    /// The most result rows taken (default [`MAX_RESULT_ROWS`]).
    pub max_result_rows: usize,
    /// The memory the snapshot being built may take ([`super::snapshot_budget_bytes`]).
    pub snapshot_budget_bytes: u64,
}

impl<S, Q, O> std::fmt::Debug for Writer<S, Q, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("max_result_rows", &self.max_result_rows)
            .field("snapshot_budget_bytes", &self.snapshot_budget_bytes)
            .finish_non_exhaustive()
    }
}

impl<S, Q, O> Writer<S, Q, O> {
    pub fn new(store: S, queries: Q, objects: O, clock: Arc<dyn Clock>) -> Writer<S, Q, O> {
        Writer {
            store,
            queries,
            objects,
            clock,
            max_result_rows: MAX_RESULT_ROWS,
            snapshot_budget_bytes: super::snapshot_budget_bytes(None),
        }
    }
}

impl<S: RunStore + SnapshotWriter, Q: QueryRunner, O: ObjectReader> Writer<S, Q, O> {
    pub async fn handle(&self, event: &QueryEvent) -> Result<WriterOutcome, PipelineError> {
        if event.workgroup != self.queries.workgroup() {
            return Ok(WriterOutcome::NotOurs);
        }
        if QueryState::parse(&event.state).unwrap_or(QueryState::Running) == QueryState::Running {
            return Ok(WriterOutcome::NotFinal);
        }
        let (run, status) = match self.store.run_by_query(&event.query_id).await? {
            Some(run) => (run, None),
            None => match self.unindexed(&event.query_id).await? {
                Some(found) => found,
                None => {
                    tracing::debug!(query = %event.query_id, "Not a kubecur allocation query; ignored.");
                    return Ok(WriterOutcome::NotOurs);
                }
            },
        };
        self.finish(run, &event.query_id, status).await
    }

    /// A query the index does not know: the ingest writes the index after `StartQueryExecution`, so
    /// the event can come first (or the ingest died in between). The query's first line names the
    /// run that started it; the index is then written here.
    async fn unindexed(
        &self,
        query_id: &str,
    ) -> Result<Option<(Run, Option<QueryStatus>)>, PipelineError> {
        let status = match self.queries.status(query_id).await {
            Ok(status) => status,
            // Athena does not know the query (InvalidRequestException): not one kubecur started.
            Err(e) if e.kind != ErrorKind::Transient => {
                tracing::warn!(query = %query_id, error = %e, "Athena cannot describe the query; not ours.");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let Some((period, run_id)) = status.query.as_deref().and_then(parse_query_marker) else {
            return Ok(None);
        };
        let run = self.store.run(period, &run_id).await?.ok_or_else(|| {
            PipelineError::Store(crate::ports::StoreError::Backend {
                context: format!("finding the run of Athena query {query_id}"),
                source: format!("the query names run {run_id}, which is not recorded (yet)").into(),
            })
        })?;
        self.store.index_query(&run, query_id).await?;
        tracing::info!(run = %run.id, query = %query_id, "Query indexed from its marker.");
        Ok(Some((run, Some(status))))
    }

    /// Takes `run` (whose query is `query_id`) to a final state if its query has ended. The writer
    /// does it for an event; the reconciler for a run stuck in `QUERYING` or `WRITING`.
    pub async fn finish(
        &self,
        mut run: Run,
        query_id: &str,
        status: Option<QueryStatus>,
    ) -> Result<WriterOutcome, PipelineError> {
        if run.state.is_final() {
            return Ok(WriterOutcome::AlreadyDone {
                run_id: run.id,
                state: run.state,
            });
        }
        // The event is a hint; GetQueryExecution is the authority on state, reason and output.
        let status = match status {
            Some(status) => status,
            None => self.queries.status(query_id).await?,
        };
        if run.state == RunState::Claimed {
            // The ingest started the query but stopped before recording it.
            run.query_id = Some(query_id.to_string());
            advance(
                &self.store,
                self.clock.as_ref(),
                &mut run,
                RunState::Querying,
            )
            .await?;
        }
        match status.state {
            QueryState::Running => Ok(WriterOutcome::NotFinal),
            QueryState::Failed | QueryState::Cancelled => {
                let reason = format!(
                    "Athena query {query_id} {}: {}",
                    if status.state == QueryState::Failed {
                        "failed"
                    } else {
                        "was cancelled"
                    },
                    status.reason.unwrap_or_else(|| "no reason given".into())
                );
                self.failed(run, reason).await
            }
            QueryState::Succeeded => {
                let Some(output) = status.output_location else {
                    let reason =
                        format!("Athena query {query_id} succeeded without an output location");
                    return self.failed(run, reason).await;
                };
                self.publish(run, &output).await
            }
        }
    }

    async fn failed(&self, mut run: Run, reason: String) -> Result<WriterOutcome, PipelineError> {
        fail_run(&self.store, self.clock.as_ref(), &mut run, &reason).await?;
        Ok(WriterOutcome::Failed {
            run_id: run.id,
            reason,
        })
    }

    /// Streams the result into a snapshot, checking each row: anything wrong with the result itself
    /// fails the run with the reason (the previous snapshot keeps serving); store and network failures
    /// are errors (retried).
    async fn snapshot(
        &self,
        run: &Run,
        output: &str,
    ) -> Result<Result<Snapshot, String>, PipelineError> {
        let plan = match run_plan(&run.columns, run.period, &run.tag_mapping) {
            Ok(plan) => plan,
            Err(e) => return Ok(Err(format!("planning the result of {output}: {e}"))),
        };
        let mut stream =
            match SnapshotStream::new(plan, self.max_result_rows, self.snapshot_budget_bytes) {
                Ok(stream) => stream,
                Err(e) => return Ok(Err(format!("building the snapshot: {e}"))),
            };
        match self.objects.read_result(output, &mut stream).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::InvalidEvent => return Ok(Err(e.to_string())),
            Err(e) => return Err(e.into()),
        }
        let origin = SnapshotOrigin {
            period: run.period,
            version: run.version,
            run_id: run.id.clone(),
            source: run.source.clone(),
            computed_at: rfc3339(self.clock.now_ms()),
        };
        Ok(stream
            .finish(origin)
            .map_err(|e| format!("reading the result {output}: {e}")))
    }

    async fn publish(&self, mut run: Run, output: &str) -> Result<WriterOutcome, PipelineError> {
        let snapshot = match self.snapshot(&run, output).await? {
            Ok(snapshot) => snapshot,
            Err(reason) => return self.failed(run, reason).await,
        };
        let groups = snapshot.groups.len();
        advance(
            &self.store,
            self.clock.as_ref(),
            &mut run,
            RunState::Writing,
        )
        .await?;
        let published = publish(&self.store, snapshot, self.clock.now_ms() / 1000).await?;
        let to = match published.flip {
            Flip::Newer { .. } => RunState::Superseded,
            Flip::Flipped { .. } | Flip::AlreadyServing => RunState::Serving,
        };
        advance(&self.store, self.clock.as_ref(), &mut run, to).await?;
        Ok(match published.flip {
            Flip::Flipped { previous } => {
                tracing::info!(run = %run.id, groups, "Snapshot published.");
                WriterOutcome::Published {
                    run_id: run.id,
                    groups,
                    replaced: previous.map(|p| p.version),
                }
            }
            Flip::AlreadyServing => WriterOutcome::Published {
                run_id: run.id,
                groups,
                replaced: None,
            },
            Flip::Newer { serving } => {
                tracing::info!(run = %run.id, serving, "A newer snapshot already serves; this one expires.");
                WriterOutcome::Superseded {
                    run_id: run.id,
                    serving,
                }
            }
        })
    }
}

//! cur-ingest: a CUR delivery finished in S3 → claim the run, add the Athena partition, start the
//! allocation query. Accepts the S3 notification shape and the EventBridge `Object Created` shape
//! (AWS's legacy CUR crawler template takes over the bucket's notification configuration, so
//! EventBridge is the transport `infra/` sets up).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use kubecur_shared::domain::delivery::decode_event_key;
use kubecur_shared::pipeline::ingest::{Ingest, IngestOutcome, Signal};
use kubecur_shared::pipeline::reconcile::{metrics_line, ReconcileReport, Reconciler};
use kubecur_shared::pipeline::PipelineError;
use kubecur_shared::ports::pipeline::{
    Catalog, ExternalError, ObjectReader, QueryRunner, RunStore, SnapshotWriter,
};
use serde::{Deserialize, Serialize};

/// `detail` of an EventBridge `Object Created` event from S3.
#[derive(Debug, Deserialize, Serialize)]
struct ObjectCreated {
    bucket: Named,
    object: CreatedObject,
}

#[derive(Debug, Deserialize, Serialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct CreatedObject {
    key: String,
    etag: Option<String>,
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// The object-created signals in an event of either shape.
///
/// S3 notification keys are URL-encoded, spaces as `+` (S3 user guide, "Event message structure");
/// EventBridge keys are not (S3 user guide, "EventBridge event message structure" examples; see
/// `tests/fixtures/events/README.md`), so only notification keys are decoded.
pub fn signals(event: &serde_json::Value) -> Result<Vec<Signal>, PipelineError> {
    if event.get("Records").is_some() {
        let parsed: S3Event = serde_json::from_value(event.clone())
            .map_err(|e| PipelineError::InvalidEvent(format!("malformed S3 notification: {e}")))?;
        return parsed
            .records
            .iter()
            .map(|record| {
                let bucket = record.s3.bucket.name.clone().ok_or_else(|| {
                    PipelineError::InvalidEvent(
                        "S3 notification record without a bucket name".into(),
                    )
                })?;
                let raw = record.s3.object.key.as_deref().ok_or_else(|| {
                    PipelineError::InvalidEvent(
                        "S3 notification record without an object key".into(),
                    )
                })?;
                Ok(Signal {
                    bucket,
                    key: decode_event_key(raw)
                        .map_err(|e| PipelineError::InvalidEvent(e.to_string()))?,
                    etag: record.s3.object.e_tag.as_deref().map(unquote),
                    event_time_ms: record.event_time.timestamp_millis(),
                })
            })
            .collect();
    }
    let source = event.get("source").and_then(|v| v.as_str());
    let detail_type = event.get("detail-type").and_then(|v| v.as_str());
    match (source, detail_type) {
        (Some("aws.s3"), Some("Object Created")) => {
            let parsed: EventBridgeEvent<ObjectCreated> = serde_json::from_value(event.clone())
                .map_err(|e| PipelineError::InvalidEvent(format!("malformed EventBridge S3 event: {e}")))?;
            let time = parsed.time.ok_or_else(|| {
                PipelineError::InvalidEvent("EventBridge S3 event without a time".into())
            })?;
            Ok(vec![Signal {
                bucket: parsed.detail.bucket.name,
                key: parsed.detail.object.key,
                etag: parsed.detail.object.etag.as_deref().map(unquote),
                event_time_ms: time.timestamp_millis(),
            }])
        }
        _ => Err(PipelineError::InvalidEvent(format!(
            "not an S3 notification nor an EventBridge `Object Created` event (source {source:?}, detail-type {detail_type:?})"
        ))),
    }
}

/// Handles one invocation: every signal is processed even if an earlier one fails; any failure fails
/// the invocation (so the event is retried and finally kept by the on-failure destination).
pub async fn handle<S: RunStore, Q: QueryRunner, C: Catalog, O: ObjectReader>(
    ingest: &Ingest<S, Q, C, O>,
    event: &serde_json::Value,
) -> Result<Vec<IngestOutcome>, PipelineError> {
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let mut kind = None;
    for signal in signals(event)? {
        match ingest.handle(&signal).await {
            Ok(out) => outcomes.extend(out),
            Err(err) => {
                tracing::error!(key = %signal.key, error = %err, "Ingest failed.");
                kind.get_or_insert(err.kind());
                failures.push(format!("{}: {err}", signal.key));
            }
        }
    }
    match kind {
        None => Ok(outcomes),
        // The first failure's class: an event of one record (the usual) reports exactly its own.
        Some(kind) => Err(PipelineError::External(ExternalError::new(
            kind,
            format!("ingesting {} signal(s)", failures.len()),
            failures.join("; "),
        ))),
    }
}

/// The reconciler's event: the EventBridge Scheduler schedule sends this fixed input
/// (`infra/`), so the ingest function's second job is told apart from object notifications.
pub fn is_reconcile(event: &serde_json::Value) -> bool {
    event.get("kubecur").and_then(|v| v.as_str()) == Some("reconcile")
}

/// One reconciler pass; its metrics are logged as one CloudWatch Embedded Metric Format line. A pass
/// with errors fails the invocation (after logging the metrics), so the errors alarm too.
pub async fn reconcile<S, Q, C, O>(
    reconciler: &Reconciler<S, Q, C, O>,
    now_ms: i64,
) -> Result<ReconcileReport, PipelineError>
where
    S: RunStore + SnapshotWriter,
    Q: QueryRunner,
    C: Catalog,
    O: ObjectReader,
{
    let report = reconciler.reconcile().await?;
    // stdout: the Lambda log stream, where CloudWatch reads EMF lines.
    println!("{}", metrics_line(&report, METRIC_NAMESPACE, now_ms));
    if let Some(first) = report.errors.first() {
        return Err(PipelineError::External(ExternalError::new(
            kubecur_shared::ports::pipeline::ErrorKind::Transient,
            format!("reconciling: {} error(s), the first", report.errors.len()),
            first.clone(),
        )));
    }
    Ok(report)
}

/// The CloudWatch namespace of the reconciler's metrics (the alarm in `infra/` watches it).
pub const METRIC_NAMESPACE: &str = "kubecur";

/// A pipeline error as Lambda reports it: the stable class as `errorType`, the concise message.
pub fn diagnostic(err: &PipelineError) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: err.kind().name().to_string(),
        error_message: err.to_string(),
    }
}

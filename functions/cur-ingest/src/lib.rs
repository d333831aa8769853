//! cur-ingest: a CUR delivery finished in S3 → claim the run, add the Athena partition, start the
//! allocation query. Accepts the S3 notification shape and the EventBridge `Object Created` shape
//! (AWS's legacy CUR crawler template takes over the bucket's notification configuration, so
//! EventBridge is the transport `infra/` sets up).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use kubecur_shared::domain::delivery::decode_event_key;
use kubecur_shared::pipeline::ingest::{Ingest, IngestOutcome, Signal};
use kubecur_shared::pipeline::PipelineError;
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
            .map_err(|e| PipelineError::Input(format!("malformed S3 notification: {e}")))?;
        return parsed
            .records
            .iter()
            .map(|record| {
                let bucket = record.s3.bucket.name.clone().ok_or_else(|| {
                    PipelineError::Input("S3 notification record without a bucket name".into())
                })?;
                let raw = record.s3.object.key.as_deref().ok_or_else(|| {
                    PipelineError::Input("S3 notification record without an object key".into())
                })?;
                Ok(Signal {
                    bucket,
                    key: decode_event_key(raw).map_err(|e| PipelineError::Input(e.to_string()))?,
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
                .map_err(|e| PipelineError::Input(format!("malformed EventBridge S3 event: {e}")))?;
            let time = parsed.time.ok_or_else(|| {
                PipelineError::Input("EventBridge S3 event without a time".into())
            })?;
            Ok(vec![Signal {
                bucket: parsed.detail.bucket.name,
                key: parsed.detail.object.key,
                etag: parsed.detail.object.etag.as_deref().map(unquote),
                event_time_ms: time.timestamp_millis(),
            }])
        }
        _ => Err(PipelineError::Input(format!(
            "not an S3 notification nor an EventBridge `Object Created` event (source {source:?}, detail-type {detail_type:?})"
        ))),
    }
}

/// Handles one invocation: every signal is processed even if an earlier one fails; any failure fails
/// the invocation (so the event is retried and finally kept by the on-failure destination).
pub async fn handle(
    ingest: &Ingest,
    event: &serde_json::Value,
) -> Result<Vec<IngestOutcome>, PipelineError> {
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for signal in signals(event)? {
        match ingest.handle(&signal).await {
            Ok(out) => outcomes.extend(out),
            Err(err) => {
                tracing::error!(key = %signal.key, error = %err, "Ingest failed.");
                failures.push(format!("{}: {err}", signal.key));
            }
        }
    }
    if failures.is_empty() {
        Ok(outcomes)
    } else {
        Err(PipelineError::Input(failures.join("; ")))
    }
}

//! allocation-writer: an `Athena Query State Change` event → write the finished allocation to DynamoDB
//! as one snapshot and flip the billing period's pointer to it (or record the failure).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kubecur_shared::pipeline::writer::{QueryEvent, Writer, WriterOutcome};
use kubecur_shared::pipeline::PipelineError;
use kubecur_shared::ports::pipeline::{ObjectReader, QueryRunner, RunStore, SnapshotWriter};
use serde::Deserialize;

/// `detail` of an `Athena Query State Change` event (Athena user guide, "Monitor Athena queries with
/// EventBridge"). Only the fields kubecur acts on; `athenaError` and the rest are ignored, since
/// GetQueryExecution is read for the authoritative state and reason.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StateChange {
    current_state: String,
    query_execution_id: String,
    workgroup_name: String,
}

/// Reads the event; anything but an Athena state change is an error naming what arrived.
pub fn query_event(event: &serde_json::Value) -> Result<QueryEvent, PipelineError> {
    let parsed: EventBridgeEvent<serde_json::Value> = serde_json::from_value(event.clone())
        .map_err(|e| PipelineError::InvalidEvent(format!("not an EventBridge event: {e}")))?;
    if parsed.source != "aws.athena" || parsed.detail_type != "Athena Query State Change" {
        return Err(PipelineError::InvalidEvent(format!(
            "expected an `Athena Query State Change` event from aws.athena, got `{}` from {}",
            parsed.detail_type, parsed.source
        )));
    }
    let detail: StateChange = serde_json::from_value(parsed.detail).map_err(|e| {
        PipelineError::InvalidEvent(format!("malformed Athena state change detail: {e}"))
    })?;
    Ok(QueryEvent {
        query_id: detail.query_execution_id,
        state: detail.current_state,
        workgroup: detail.workgroup_name,
    })
}

pub async fn handle<S: RunStore + SnapshotWriter, Q: QueryRunner, O: ObjectReader>(
    writer: &Writer<S, Q, O>,
    event: &serde_json::Value,
) -> Result<WriterOutcome, PipelineError> {
    writer.handle(&query_event(event)?).await
}

/// A pipeline error as Lambda reports it: the stable class as `errorType`, the concise message.
pub fn diagnostic(err: &PipelineError) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: err.kind().name().to_string(),
        error_message: err.to_string(),
    }
}

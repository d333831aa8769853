//! `kubecur serve`: the pipeline's API on this machine. The CUR is allocated once at full grain with the
//! embedded engine, split into one snapshot per billing period exactly as the writer function does, and
//! served by the same handler code as the Lambda (`kubecur_shared::api`) from a memory store.

use crate::args::ServeArgs;
use crate::progress::TerminalProgress;
use crate::CliError;
use kubecur_shared::adapters::datafusion::DataFusionQueryEngine;
use kubecur_shared::api::{self, ApiRequest, ApiResponse, MemoryStore};
use kubecur_shared::config::tag_mapping;
use kubecur_shared::domain::snapshot::{
    build_snapshot, split_by_period, SnapshotInfo, SnapshotOrigin,
};
use kubecur_shared::domain::{AllocationRequest, Dimension};
use kubecur_shared::ports::Progress;
use kubecur_shared::service;
use std::sync::Arc;

/// Allocates `args.cur` into a memory store, one snapshot per billing period found.
pub async fn load(
    cur: &str,
    tag_keys: &[String],
    progress: Arc<dyn Progress>,
) -> Result<MemoryStore, CliError> {
    let request = AllocationRequest {
        window: None,
        group_by: Dimension::ALL.to_vec(),
        tag_mapping: tag_mapping(tag_keys)?,
        accounts: Vec::new(),
        resource_ids: true,
    };
    let mut engine = DataFusionQueryEngine::open(cur, None, progress).await?;
    let full = service::allocate(&mut engine, &request).await?;
    let store = MemoryStore::default();
    let version = chrono::Utc::now().timestamp_millis();
    let computed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (period, allocation) in split_by_period(&full)? {
        let groups = build_snapshot(&allocation)?;
        let info = SnapshotInfo::describe(
            &allocation,
            &groups,
            SnapshotOrigin {
                period,
                version,
                run_id: format!("local#{}", period.label()),
                source: cur.to_string(),
                computed_at: computed_at.clone(),
            },
        );
        store.publish(info, groups);
    }
    Ok(store)
}

fn respond(request: tiny_http::Request, response: ApiResponse) {
    let mut reply =
        tiny_http::Response::from_string(response.body).with_status_code(response.status);
    if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", response.content_type) {
        reply = reply.with_header(header);
    }
    if let Err(err) = request.respond(reply) {
        tracing::warn!(error = %err, "Could not send a response.");
    }
}

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let progress = Arc::new(TerminalProgress::new());
    let loaded = load(&args.cur, &args.tag_keys, progress.clone()).await;
    progress.finish();
    let store = Arc::new(loaded?);
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    eprintln!(
        "serving http://{}/allocation?window=month&aggregate=namespace and /status (Ctrl-C stops)",
        args.listen
    );
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        for request in server.incoming_requests() {
            let url = request.url().to_string();
            let (path, query) = url.split_once('?').unwrap_or((&url, ""));
            let response = match api::query_pairs(Some(query)) {
                Ok(query) => {
                    let api_request = ApiRequest {
                        method: request.method().as_str().to_string(),
                        path: path.to_string(),
                        query,
                    };
                    let today = chrono::Utc::now().date_naive();
                    runtime.block_on(api::handle(store.as_ref(), &api_request, today))
                }
                Err(reason) => ApiResponse::bad_query(&reason),
            };
            respond(request, response);
        }
    })
    .await
    .map_err(|e| CliError::Failed(format!("the server stopped: {e}")))
}

//! `kubecur serve`: the pipeline's API on this machine. The CUR is allocated once at full grain with the
//! embedded engine, split into one snapshot per billing period exactly as the writer function does, and
//! served by the same handler code as the Lambda (`kubecur_shared::api`) from a memory store.

use crate::args::ServeArgs;
use crate::progress::TerminalProgress;
use crate::CliError;
use kubecur_shared::adapters::datafusion::DataFusionQueryEngine;
use kubecur_shared::api::{self, ApiResponse, Limits, MemoryStore};
use kubecur_shared::config::tag_mapping;
use kubecur_shared::domain::share::ShareRules;
use kubecur_shared::domain::snapshot::{split_by_period, undated, SnapshotOrigin};
use kubecur_shared::domain::{AllocationRequest, Dimension};
use kubecur_shared::pipeline::publish::{build, publish};
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
    // Line items without a usage date fit no day: served nowhere, said here and in every period's warnings.
    let (undated_items, undated_costs) = undated(&full)?;
    if undated_items > 0 {
        eprintln!(
            "warning: {undated_items} line items have no usage date (amortizedNetCost {:.2}): they belong to no billing period and are not served",
            undated_costs.get(kubecur_shared::domain::CostMetric::AmortizedNetCost)
        );
    }
    let store = MemoryStore::default();
    let version = chrono::Utc::now().timestamp_millis();
    let computed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (period, allocation) in split_by_period(&full)? {
        // The writer function's code: the same snapshot, published the same way.
        let snapshot = build(
            &allocation,
            SnapshotOrigin {
                period,
                version,
                run_id: format!("local#{}", period.label()),
                source: cur.to_string(),
                computed_at: computed_at.clone(),
            },
        )?;
        publish(&store, snapshot, chrono::Utc::now().timestamp())
            .await
            .map_err(|e| CliError::Failed(format!("holding the snapshot in memory: {e}")))?;
    }
    Ok(store)
}

fn respond(request: tiny_http::Request, response: ApiResponse) {
    let headers = response.headers();
    let mut reply =
        tiny_http::Response::from_string(response.body).with_status_code(response.status);
    for (name, value) in headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
            reply = reply.with_header(header);
        }
    }
    if let Err(err) = request.respond(reply) {
        tracing::warn!(error = %err, "Could not send a response.");
    }
}

/// One worker: takes requests off the shared listener until it closes. Several run at once, each on
/// its own thread; the store is read-only after loading, so they share it without contention.
fn serve_requests(
    server: &tiny_http::Server,
    store: &MemoryStore,
    runtime: &tokio::runtime::Handle,
    limits: &Limits,
    share: &ShareRules,
) {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(error = %err, "The listener stopped.");
                return;
            }
        };
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let today = chrono::Utc::now().date_naive();
        let response = runtime.block_on(api::handle_http(
            store,
            request.method().as_str(),
            path,
            Some(query),
            today,
            limits,
            share,
        ));
        respond(request, response);
    }
}

/// A listening socket whose connections send without Nagle's delay (`TCP_NODELAY`; Linux copies it to
/// every accepted connection, which `accepted_connections_send_without_delay` checks). tiny_http writes a
/// response through a 1 KiB buffer, so any answer over 1 KiB leaves in several writes; with Nagle on,
/// each write after the first waits for the client's delayed ACK: ~40 ms per request on Linux (measured
/// by `bench/serve_load.sh` before this: a flat 44 ms p50 whatever the answer's size).
pub fn listen(address: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let address = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As the standard library's TcpListener::bind does on Unix: a restarted server can bind at once.
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    // A bad rules file is refused before the CUR is read.
    let share = Arc::new(crate::allocate::read_share_rules(
        args.share_rules.as_deref(),
    )?);
    let progress = Arc::new(TerminalProgress::new());
    let loaded = load(&args.cur, &args.tag_keys, progress.clone()).await;
    progress.finish();
    let store = Arc::new(loaded?);
    let listener = listen(&args.listen)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let server = Arc::new(
        tiny_http::Server::from_listener(listener, None)
            .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?,
    );
    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let limits = args.limits();
    eprintln!(
        "serving http://{}/allocation?window=month&aggregate=namespace, /status and /openapi.json with {threads} threads (Ctrl-C stops)",
        args.listen
    );
    let runtime = tokio::runtime::Handle::current();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (server, store, runtime, share) = (
                server.clone(),
                store.clone(),
                runtime.clone(),
                share.clone(),
            );
            tokio::task::spawn_blocking(move || {
                serve_requests(&server, &store, &runtime, &limits, &share)
            })
        })
        .collect();
    for worker in workers {
        worker
            .await
            .map_err(|e| CliError::Failed(format!("the server stopped: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::listen;

    #[test]
    fn accepted_connections_send_without_delay() {
        let listener = listen("127.0.0.1:0").expect("listen");
        let address = listener.local_addr().expect("address");
        let _client = std::net::TcpStream::connect(address).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(
            accepted.nodelay().expect("nodelay"),
            "an accepted connection must not wait for delayed ACKs (TCP_NODELAY)"
        );
    }

    #[test]
    fn an_address_that_does_not_resolve_is_an_error() {
        assert!(listen("not an address").is_err());
    }
}

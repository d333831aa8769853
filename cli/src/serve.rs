//! `kubecur serve`: the pipeline's API on this machine. The CUR is allocated once at full grain with the
//! local engine, split into one snapshot per billing period exactly as the writer function does, and
//! served by the same handler code as the Lambda (`kubecur_shared::api`) from a memory store. With
//! `--api URL` it serves the Cost Allocation page in front of a deployed API instead ([`crate::proxy`]).

use crate::args::ServeArgs;
use crate::progress::TerminalProgress;
use crate::proxy::Proxy;
use crate::CliError;
use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::api::{self, ApiResponse, MemoryStore, Settings};
use kubecur_shared::config::tag_mapping;
use kubecur_shared::domain::label::parse_label_list;
use kubecur_shared::domain::snapshot::{split_by_period, undated, SnapshotOrigin};
use kubecur_shared::domain::Label;
use kubecur_shared::pipeline::publish::{build, publish};
use kubecur_shared::pipeline::run_request;
use kubecur_shared::ports::Progress;
use kubecur_shared::service;
use std::sync::Arc;

/// Allocates `args.cur` into a memory store, one snapshot per billing period found.
///
/// It keys what a pipeline run keys: the full grain, the `labels` (`KUBECUR_LABELS`), and the resource
/// ids `resources` the share rules select (`KUBECUR_SHARE_RULES`).
pub async fn load(
    cur: &str,
    tag_keys: &[String],
    labels: &[Label],
    resources: &[String],
    progress: Arc<dyn Progress>,
) -> Result<MemoryStore, CliError> {
    let mut mapping = tag_mapping(tag_keys)?;
    mapping.set_labels(labels.to_vec());
    mapping.set_resources(resources.to_vec());
    let request = run_request(None, &mapping);
    let engine = NativeEngine::open(cur, None, progress).await?;
    let full = service::allocate(&engine, &request).await?;
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
            &request.resources,
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

/// What the deployed API answered to a forwarded request (`serve --api`).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What answers the API routes: the CUR allocated in memory, or a deployed API behind the proxy (with
/// the `Host` values this server answers to).
enum Backend {
    Local(MemoryStore),
    Remote(Proxy, Vec<String>),
}

/// The `Host` values a browser sends to this listener. The proxy signs with the user's credentials, so
/// it answers only requests addressed to it by these names: a web page elsewhere that rebinds its own
/// DNS name to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
fn local_hosts(listen: &str) -> Vec<String> {
    let mut hosts = vec![listen.to_string()];
    if let Some((_, port)) = listen.rsplit_once(':') {
        for name in ["localhost", "127.0.0.1", "[::1]"] {
            hosts.push(format!("{name}:{port}"));
        }
    }
    hosts
}

fn respond_with(request: tiny_http::Request, status: u16, content_type: &str, body: Vec<u8>) {
    let mut reply = tiny_http::Response::from_data(body).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", content_type) {
        reply = reply.with_header(header);
    }
    if let Err(err) = request.respond(reply) {
        tracing::warn!(error = %err, "Could not send a response.");
    }
}

/// `--page-dir`: the page's file read from disk, for working on the page without a rebuild.
fn page_from_dir(dir: &std::path::Path, path: &str, method: &str) -> Option<ApiResponse> {
    let asset = api::page::asset(path.trim_end_matches('/'))?;
    let mut response = api::page::response(asset, method);
    if response.status == 200 {
        match std::fs::read_to_string(dir.join(asset.file)) {
            Ok(body) => response.body = body,
            Err(err) => {
                tracing::warn!(error = %err, file = asset.file, "Serving the built-in file.")
            }
        }
    }
    Some(response)
}

/// One request to the deployed API: the page's files are served here, `GET`s are forwarded signed,
/// and a failure to reach the API is a 502 whose message the page shows.
fn serve_remote(
    request: tiny_http::Request,
    (proxy, hosts): (&Proxy, &[String]),
    path: &str,
    query: &str,
    runtime: &tokio::runtime::Handle,
) {
    let host = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_ascii_lowercase());
    if !host.as_ref().is_some_and(|h| hosts.contains(h)) {
        let body = serde_json::json!({ "code": 403, "status": "error", "message": format!("this proxy answers only requests for {}", hosts.join(", ")) });
        return respond_with(
            request,
            403,
            "application/json",
            body.to_string().into_bytes(),
        );
    }
    if let Some(asset) = api::page::asset(path.trim_end_matches('/')) {
        let response = api::page::response(asset, request.method().as_str());
        return respond(request, response);
    }
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        let body = serde_json::json!({ "code": 405, "status": "error", "message": "only GET is forwarded" });
        return respond_with(
            request,
            405,
            "application/json",
            body.to_string().into_bytes(),
        );
    }
    match runtime.block_on(proxy.forward(path, query)) {
        Ok(answer) => respond_with(request, answer.status, &answer.content_type, answer.body),
        Err(message) => {
            tracing::warn!(%message, "The API could not be reached.");
            let body = serde_json::json!({ "code": 502, "status": "error", "message": message });
            respond_with(
                request,
                502,
                "application/json",
                body.to_string().into_bytes(),
            )
        }
    }
}

/// One worker: takes requests off the shared listener until it closes. Several run at once, each on
/// its own thread; the store is read-only after loading, so they share it without contention.
fn serve_requests(
    server: &tiny_http::Server,
    backend: &Backend,
    runtime: &tokio::runtime::Handle,
    settings: &Settings,
    page_dir: Option<&std::path::Path>,
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
        if let Some(page) = page_dir.and_then(|d| page_from_dir(d, path, request.method().as_str()))
        {
            respond(request, page);
            continue;
        }
        let store = match backend {
            Backend::Local(store) => store,
            Backend::Remote(proxy, hosts) => {
                serve_remote(request, (proxy, hosts), path, query, runtime);
                continue;
            }
        };
        let today = chrono::Utc::now().date_naive();
        let response = runtime.block_on(api::handle_http(
            store,
            request.method().as_str(),
            path,
            Some(query),
            today,
            settings,
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
    if args.api.is_some() && args.share_rules.is_some() {
        return Err(CliError::Usage(
            "--share-rules applies to --cur; a deployed API applies the rules it is configured with (KUBECUR_SHARE_RULES)".into(),
        ));
    }
    // A bad rules file or label is refused before the CUR is read.
    let share = crate::allocate::read_share_rules(args.share_rules.as_deref())?;
    let labels = parse_label_list(args.labels.as_deref().unwrap_or(""))
        .map_err(|e| CliError::Usage(format!("--labels: {e}")))?;
    let backend = match (&args.cur, &args.api) {
        (Some(cur), _) => {
            let progress = Arc::new(TerminalProgress::new());
            let resources = share.resource_ids();
            let loaded = load(cur, &args.tag_keys, &labels, &resources, progress.clone()).await;
            progress.finish();
            Backend::Local(loaded?)
        }
        (None, Some(url)) => Backend::Remote(
            Proxy::connect(url, args.region.clone()).await?,
            local_hosts(&args.listen),
        ),
        (None, None) => return Err(CliError::Usage("give --cur PATH or --api URL".into())),
    };
    let backend = Arc::new(backend);
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
    // As the API function with KUBECUR_SHARE_RULES and KUBECUR_LABELS.
    let settings = Arc::new(Settings {
        limits: args.limits(),
        share,
        labels,
    });
    match backend.as_ref() {
        Backend::Local(_) => eprintln!(
            "serving the Cost Allocation page at http://{0}/ and the API at http://{0}/allocation?window=month&aggregate=namespace, /status and /openapi.json with {threads} threads (Ctrl-C stops)",
            args.listen
        ),
        Backend::Remote(proxy, _) => eprintln!(
            "serving the Cost Allocation page at http://{}/ in front of {} with {threads} threads (Ctrl-C stops)",
            args.listen,
            proxy.describe()
        ),
    }
    let runtime = tokio::runtime::Handle::current();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (server, backend, runtime, settings) = (
                server.clone(),
                backend.clone(),
                runtime.clone(),
                settings.clone(),
            );
            let page_dir = args.page_dir.clone();
            tokio::task::spawn_blocking(move || {
                serve_requests(&server, &backend, &runtime, &settings, page_dir.as_deref())
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
    fn the_proxy_answers_only_its_own_host_names() {
        assert_eq!(
            super::local_hosts("127.0.0.1:9003"),
            [
                "127.0.0.1:9003",
                "localhost:9003",
                "127.0.0.1:9003",
                "[::1]:9003"
            ]
        );
    }

    #[test]
    fn an_address_that_does_not_resolve_is_an_error() {
        assert!(listen("not an address").is_err());
    }
}

//! allocation-api: API Gateway HTTP API (payload v2) → the shared allocation API over DynamoDB.

use kubecur_shared::api::{self, ApiResponse, Settings};
use kubecur_shared::ports::SnapshotReader;
use lambda_http::{Body, Request, Response};

/// Serves one API Gateway request under the default [`Settings`].
pub async fn handle<S: SnapshotReader>(store: &S, request: Request) -> Response<Body> {
    handle_with_limits(store, &Settings::default(), request).await
}

/// Serves one API Gateway request under the function's configured [`Settings`] (limits, share rules,
/// labels).
pub async fn handle_with_limits<S: SnapshotReader>(
    store: &S,
    settings: &Settings,
    request: Request,
) -> Response<Body> {
    let today = chrono::Utc::now().date_naive();
    let response = api::handle_http(
        store,
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
        today,
        settings,
    )
    .await;
    into_response(response)
}

fn into_response(response: ApiResponse) -> Response<Body> {
    let headers = response.headers();
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = lambda_http::http::StatusCode::from_u16(response.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            lambda_http::http::HeaderName::from_bytes(name.as_bytes()),
            lambda_http::http::HeaderValue::from_str(value),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}

//! allocation-api: API Gateway HTTP API (payload v2) → the shared allocation API over DynamoDB.

use kubecur_shared::api::{self, ApiRequest, ApiResponse};
use kubecur_shared::ports::SnapshotReader;
use lambda_http::{Body, Request, Response};

/// Serves one API Gateway request.
pub async fn handle<S: SnapshotReader>(store: &S, request: Request) -> Response<Body> {
    let today = chrono::Utc::now().date_naive();
    let response = match api::query_pairs(request.uri().query()) {
        Ok(query) => {
            let api_request = ApiRequest {
                method: request.method().as_str().to_string(),
                path: request.uri().path().to_string(),
                query,
            };
            api::handle(store, &api_request, today).await
        }
        Err(reason) => ApiResponse::bad_query(&reason),
    };
    into_response(response)
}

fn into_response(response: ApiResponse) -> Response<Body> {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = lambda_http::http::StatusCode::from_u16(response.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = lambda_http::http::HeaderValue::from_str(response.content_type) {
        out.headers_mut()
            .insert(lambda_http::http::header::CONTENT_TYPE, value);
    }
    out
}

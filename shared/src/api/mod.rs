//! The allocation API, independent of transport: the Lambda (API Gateway HTTP API) and `kubecur serve`
//! both turn their request into an [`ApiRequest`] and send back the [`ApiResponse`].
//!
//! Routes (OpenCost's conventions where OpenCost has one):
//! - `GET /allocation?window=…&aggregate=…&accumulate=…&step=…&costMetric=…&filter<Dimension>s=…&format=json|csv`
//! - `GET /status`

mod memory;
mod params;

pub use memory::MemoryStore;
pub use params::{AllocationQuery, ParamError};

use crate::domain::allocation::Allocation;
use crate::domain::delivery::decode_event_key;
use crate::domain::snapshot::{answer, Level, SnapshotGroup};
use crate::domain::{CostMetric, UsageWindow};
use crate::ports::{PeriodStatus, SnapshotReader, StoreError};
use chrono::NaiveDate;
use serde_json::{json, Value};

/// A request as the API sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order; a name may repeat.
    pub query: Vec<(String, String)>,
}

/// A response: status, content type and body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";
const CSV: &str = "text/csv; charset=utf-8";

impl ApiResponse {
    fn json(status: u16, body: &Value) -> ApiResponse {
        ApiResponse {
            status,
            content_type: JSON,
            body: body.to_string(),
        }
    }

    /// 400 for a query string that cannot be decoded at all.
    pub fn bad_query(reason: &str) -> ApiResponse {
        ApiResponse::error(
            400,
            json!({ "error": { "parameter": "query string", "message": reason, "allowed": "URL-encoded name=value pairs" } }),
        )
    }

    fn error(status: u16, body: Value) -> ApiResponse {
        let mut document = json!({ "code": status, "status": "error" });
        if let (Some(out), Value::Object(fields)) = (document.as_object_mut(), body) {
            out.extend(fields);
        }
        ApiResponse::json(status, &document)
    }
}

/// Serves one request. `today` is the caller's clock (relative windows such as `7d` end today).
/// Never panics and never returns an empty success for a failure: bad parameters are 400 naming the
/// parameter, unknown routes 404, store failures 500 with an opaque id (details go to the log only).
pub async fn handle<S: SnapshotReader>(
    store: &S,
    request: &ApiRequest,
    today: NaiveDate,
) -> ApiResponse {
    let path = request.path.trim_end_matches('/');
    let route = match (request.method.as_str(), path) {
        ("GET" | "HEAD", "/allocation") => Route::Allocation,
        ("GET" | "HEAD", "/status") => Route::Status,
        (_, "/allocation" | "/status") => {
            return ApiResponse::error(
                405,
                json!({ "message": format!("{} is not allowed on {path}; use GET", request.method) }),
            )
        }
        _ => {
            return ApiResponse::error(
                404,
                json!({ "message": format!("no route {} {}; routes: GET /allocation, GET /status", request.method, request.path) }),
            )
        }
    };
    let result = match route {
        Route::Allocation => match AllocationQuery::parse(&request.query, today) {
            Ok(query) => allocation(store, &query).await,
            Err(err) => return ApiResponse::error(400, json!({ "error": err })),
        },
        Route::Status => match params::reject_unknown(&request.query, &[]) {
            Ok(()) => status(store).await,
            Err(err) => return ApiResponse::error(400, json!({ "error": err })),
        },
    };
    result.unwrap_or_else(|err| {
        let id = error_id();
        tracing::error!(error_id = %id, error = %err, path = %request.path, "API request failed.");
        ApiResponse::error(
            500,
            json!({ "message": "internal error; quote the id when reporting it", "errorId": id }),
        )
    })
}

enum Route {
    Allocation,
    Status,
}

/// An id to find a failure in the logs by, without putting its details in the response.
fn error_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hash = crate::domain::snapshot::Fnv128::new();
    hash.write(&nanos.to_le_bytes());
    hash.write(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hash.write(&std::process::id().to_le_bytes());
    format!("{:016x}", hash.finish() as u64)
}

async fn allocation<S: SnapshotReader>(
    store: &S,
    query: &AllocationQuery,
) -> Result<ApiResponse, StoreError> {
    let periods = query.window.billing_periods();
    let pointers = store.pointers(&periods).await?;
    let mut dimensions = query.aggregate.clone();
    dimensions.extend(query.filters.iter().map(|(d, _)| *d));
    let level = Level::serving(&dimensions);
    let mut groups: Vec<SnapshotGroup> = Vec::new();
    let mut warnings = Vec::new();
    let mut flavour = None;
    let mut snapshots = Vec::new();
    for pointer in &pointers {
        let Some(info) = &pointer.serving else {
            continue;
        };
        let got = store.groups(info, level).await?;
        if got.len() as u64 != info.expected_groups(level) {
            return Err(StoreError::Malformed {
                key: format!("snapshot {} v{}", info.period.label(), info.version),
                reason: format!(
                    "{} {} groups read, {} written",
                    got.len(),
                    level.name(),
                    info.expected_groups(level)
                ),
            });
        }
        groups.extend(got);
        for warning in &info.warnings {
            if !warnings.contains(warning) {
                warnings.push(warning.clone());
            }
        }
        flavour.get_or_insert(info.flavour);
        snapshots.push(json!({
            "period": info.period.label(),
            "version": info.version,
            "computedAt": info.computed_at,
            "source": info.source,
        }));
    }
    let missing: Vec<String> = periods
        .iter()
        .filter(|p| {
            !pointers
                .iter()
                .any(|s| s.period == **p && s.serving.is_some())
        })
        .map(|p| p.label())
        .collect();
    let keep = |group: &SnapshotGroup| {
        group.level == level
            && query.filters.iter().all(|(dimension, allowed)| {
                let at = level.dimensions().iter().position(|d| d == dimension);
                at.is_some_and(|at| allowed.iter().any(|a| *a == group.keys[at]))
            })
    };
    let flavour = flavour.unwrap_or(crate::domain::Flavour::Cur2);
    let steps: Vec<UsageWindow> = query.steps();
    let sets: Vec<Allocation> = steps
        .iter()
        .map(|step| {
            answer(
                &groups,
                *step,
                &query.aggregate,
                keep,
                flavour,
                warnings.clone(),
            )
        })
        .collect();
    if query.csv {
        return Ok(ApiResponse {
            status: 200,
            content_type: CSV,
            body: render_csv(&sets, query),
        });
    }
    // With one step the set is the whole window; only daily steps need the window summed again.
    let summary = match sets.as_slice() {
        [whole] => whole.summary(query.metric),
        _ => answer(
            &groups,
            query.window,
            &query.aggregate,
            keep,
            flavour,
            warnings.clone(),
        )
        .summary(query.metric),
    };
    let mut notes: Vec<Value> = warnings
        .iter()
        .map(|w| json!({ "warning": w, "message": w.to_string() }))
        .collect();
    if !missing.is_empty() {
        notes.push(json!({
            "warning": { "kind": "noSnapshot", "periods": missing },
            "message": format!("no allocation has been computed yet for billing period(s) {}: their days are not in the data", missing.join(", ")),
        }));
    }
    Ok(ApiResponse::json(
        200,
        &json!({
            "code": 200,
            "status": "success",
            "data": sets.iter().map(|set| set_json(set, query)).collect::<Vec<_>>(),
            "meta": {
                "window": window_json(query.window),
                "aggregate": query.aggregate,
                "costMetric": query.metric,
                "level": level.name(),
                "snapshots": snapshots,
                "summary": summary,
                "warnings": notes,
            },
        }),
    ))
}

fn window_json(window: UsageWindow) -> Value {
    json!({
        "start": format!("{}T00:00:00Z", window.from()),
        "end": format!("{}T00:00:00Z", window.to()),
    })
}

/// One allocation set in OpenCost's shape: a map from group name (`a/b`) to its figures.
fn set_json(set: &Allocation, query: &AllocationQuery) -> Value {
    let window = set.window.map(window_json).unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    for row in set.display_rows(query.metric) {
        let name = row.keys.join("/");
        let mut properties = serde_json::Map::new();
        for (dimension, key) in set.group_by.iter().zip(&row.keys) {
            properties.insert(dimension.name().to_string(), key.clone().into());
        }
        let mut item = json!({
            "name": name,
            "properties": properties,
            "window": window,
            "start": window["start"],
            "end": window["end"],
            "allocated": row.allocated,
            "totalCost": row.costs.get(query.metric),
            "resources": row.resources,
            "lineItems": row.line_items,
        });
        if let Some(fields) = item.as_object_mut() {
            for metric in CostMetric::ALL {
                fields.insert(metric.name().to_string(), row.costs.get(metric).into());
            }
        }
        out.insert(name, item);
    }
    Value::Object(out)
}

/// Decoded query parameters, in order, from a raw query string (`+` is a space, `%XX` escapes).
///
/// The Lambda reads the raw string, not `queryStringParameters`: API Gateway joins repeated names with commas there, and the
/// `aws_lambda_events` type splits values on commas, which would cut `window=START,END` in two.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            Ok((
                decode_event_key(name).map_err(|e| e.to_string())?,
                decode_event_key(value).map_err(|e| e.to_string())?,
            ))
        })
        .collect()
}

/// Quotes a CSV field when it holds a separator, quote, line break or edge space (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn render_csv(sets: &[Allocation], query: &AllocationQuery) -> String {
    let mut header = vec!["windowStart".to_string(), "windowEnd".to_string()];
    header.extend(query.aggregate.iter().map(|d| d.name().to_string()));
    header.push("allocated".into());
    header.extend(CostMetric::ALL.iter().map(|m| m.name().to_string()));
    header.extend(["resources".to_string(), "lineItems".to_string()]);
    let mut out = header.join(",") + "\n";
    for set in sets {
        let (start, end) = set
            .window
            .map(|w| (w.from().to_string(), w.to().to_string()))
            .unwrap_or_default();
        for row in set.display_rows(query.metric) {
            let mut cells = vec![start.clone(), end.clone()];
            cells.extend(row.keys.iter().map(|k| csv_field(k)));
            cells.push(row.allocated.to_string());
            cells.extend(
                CostMetric::ALL
                    .iter()
                    .map(|m| row.costs.get(*m).to_string()),
            );
            cells.push(row.resources.to_string());
            cells.push(row.line_items.to_string());
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

async fn status<S: SnapshotReader>(store: &S) -> Result<ApiResponse, StoreError> {
    let periods: Vec<PeriodStatus> = store.all_pointers().await?;
    let data: Vec<Value> = periods
        .iter()
        .map(|p| {
            json!({
                "period": p.period.label(),
                "serving": p.serving.as_ref().map(|s| json!({
                    "version": s.version,
                    "runId": s.run_id,
                    "source": s.source,
                    "flavour": s.flavour,
                    "computedAt": s.computed_at,
                    "lineItems": s.line_items,
                    "missingTagColumns": s.missing_tags(),
                    "warnings": s.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                })),
                "lastFailure": p.last_failure,
            })
        })
        .collect();
    Ok(ApiResponse::json(
        200,
        &json!({ "code": 200, "status": "success", "data": data }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Dimension;

    #[test]
    fn raw_query_keeps_commas_and_decodes_escapes() {
        let pairs = query_pairs(Some(
            "window=2024-06-01T00%3A00%3A00Z%2C2024-07-01T00%3A00%3A00Z&aggregate=namespace,service",
        ))
        .expect("valid");
        assert_eq!(
            pairs,
            [
                (
                    "window".to_string(),
                    "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z".to_string()
                ),
                ("aggregate".to_string(), "namespace,service".to_string()),
            ]
        );
        assert!(query_pairs(Some("window=%zz")).is_err());
        assert_eq!(query_pairs(None), Ok(vec![]));
    }

    use crate::domain::allocation::{AllocationRow, CostVector};
    use crate::domain::snapshot::{build_snapshot, SnapshotInfo, SnapshotOrigin};
    use crate::domain::window::BillingPeriod;
    use crate::domain::{Flavour, UNALLOCATED};
    use crate::ports::{PeriodStatus, StoreError};

    fn store() -> MemoryStore {
        let u = UNALLOCATED;
        let row = |day: &str, ns: &str, cost: f64| AllocationRow {
            keys: [day, "prod", ns, u, u, u, u, "AmazonRDS", "111122223333"]
                .iter()
                .map(|k| k.to_string())
                .collect(),
            allocated: ns != u,
            costs: CostVector([cost, cost, cost, cost]),
            resources: 1,
            resource_ids: Some(crate::domain::resources::ResourceSet::from_hashes([1])),
            line_items: 3,
        };
        let full = Allocation {
            flavour: Flavour::Cur2,
            window: None,
            group_by: Dimension::ALL.to_vec(),
            rows: vec![
                row("2024-06-01", "payments", 10.0),
                row("2024-06-02", "payments", 5.5),
                row("2024-06-02", "search,eu", 1.25),
                row("2024-06-03", u, 100.0),
            ],
            warnings: vec![],
        };
        let groups = build_snapshot(&full).expect("full grain");
        let info = SnapshotInfo::describe(
            &full,
            &groups,
            SnapshotOrigin {
                period: BillingPeriod {
                    year: 2024,
                    month: 6,
                },
                version: 7,
                run_id: "run".into(),
                source: "exec-1".into(),
                computed_at: "2024-07-01T07:00:00Z".into(),
            },
        );
        let store = MemoryStore::default();
        assert!(store.publish(info, groups));
        store
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid")
    }

    async fn get(store: &impl SnapshotReader, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let request = ApiRequest {
            method: "GET".into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let response = handle(store, &request, today()).await;
        let body = serde_json::from_str(&response.body).unwrap_or(Value::String(response.body));
        (response.status, body)
    }

    #[tokio::test]
    async fn allocation_sums_the_window_by_namespace() {
        let (status, body) = get(
            &store(),
            "/allocation",
            &[("window", "2024-06-02T00:00:00Z,2024-06-04T00:00:00Z")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let set = &body["data"][0];
        assert_eq!(set["payments"]["totalCost"], 5.5);
        assert_eq!(set["search,eu"]["lineItems"], 3);
        assert_eq!(set[UNALLOCATED]["allocated"], false);
        assert_eq!(body["meta"]["summary"]["total"], 106.75);
        assert_eq!(body["meta"]["level"], "namespace");
        assert_eq!(body["meta"]["snapshots"][0]["version"], 7);
    }

    #[tokio::test]
    async fn periods_without_a_snapshot_are_named_not_silently_empty() {
        let (status, body) = get(
            &store(),
            "/allocation",
            &[("window", "2024-05-31T00:00:00Z,2024-06-02T00:00:00Z")],
        )
        .await;
        assert_eq!(status, 200);
        let warnings = body["meta"]["warnings"].to_string();
        assert!(warnings.contains("2024-05"), "{warnings}");
        assert_eq!(body["data"][0]["payments"]["totalCost"], 10.0);
    }

    #[tokio::test]
    async fn csv_quotes_values_and_daily_steps_split_sets() {
        let store = store();
        let request = ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: vec![
                (
                    "window".into(),
                    "2024-06-01T00:00:00Z,2024-06-03T00:00:00Z".into(),
                ),
                ("step".into(), "1d".into()),
                ("format".into(), "csv".into()),
                ("aggregate".into(), "namespace,service".into()),
            ],
        };
        let response = handle(&store, &request, today()).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type, CSV);
        let lines: Vec<&str> = response.body.lines().collect();
        assert!(
            lines[0].starts_with("windowStart,windowEnd,namespace,service,allocated,listCost"),
            "{}",
            lines[0]
        );
        assert_eq!(lines.len(), 4, "{}", response.body);
        assert!(
            response
                .body
                .contains("2024-06-02,2024-06-03,\"search,eu\",AmazonRDS,true,1.25"),
            "{}",
            response.body
        );
    }

    #[tokio::test]
    async fn filters_select_groups_and_finer_requests_use_the_full_level() {
        let (_, body) = get(
            &store(),
            "/allocation",
            &[
                ("window", "month"),
                ("aggregate", "cluster"),
                ("filterNamespaces", "payments"),
            ],
        )
        .await;
        assert_eq!(body["meta"]["level"], "full");
        assert_eq!(body["data"][0]["prod"]["totalCost"], 15.5);
    }

    #[tokio::test]
    async fn bad_parameters_unknown_routes_and_methods_are_reported() {
        let store = store();
        let (status, body) = get(
            &store,
            "/allocation",
            &[("window", "7d"), ("costMetric", "blended")],
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["parameter"], "costMetric");
        assert!(body["error"]["allowed"]
            .as_str()
            .is_some_and(|a| a.contains("amortizedNetCost")));
        let (status, body) = get(&store, "/nope", &[]).await;
        assert_eq!(status, 404);
        assert!(body["message"]
            .as_str()
            .is_some_and(|m| m.contains("GET /allocation")));
        let (status, _) = get(&store, "/status", &[("verbose", "1")]).await;
        assert_eq!(status, 400);
        let request = ApiRequest {
            method: "POST".into(),
            path: "/allocation".into(),
            query: vec![],
        };
        assert_eq!(handle(&store, &request, today()).await.status, 405);
    }

    #[tokio::test]
    async fn status_lists_each_period() {
        let (status, body) = get(&store(), "/status", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["period"], "2024-06");
        assert_eq!(body["data"][0]["serving"]["source"], "exec-1");
        assert_eq!(body["data"][0]["serving"]["lineItems"], 12);
    }

    struct Broken;

    impl SnapshotReader for Broken {
        async fn pointers(&self, _: &[BillingPeriod]) -> Result<Vec<PeriodStatus>, StoreError> {
            Err(StoreError::Backend {
                context: "reading pointers".into(),
                source: "secret detail".into(),
            })
        }
        async fn all_pointers(&self) -> Result<Vec<PeriodStatus>, StoreError> {
            self.pointers(&[]).await
        }
        async fn groups(
            &self,
            _: &SnapshotInfo,
            _: Level,
        ) -> Result<Vec<SnapshotGroup>, StoreError> {
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn store_failures_are_500_with_an_id_and_no_details() {
        let (status, body) = get(&Broken, "/allocation", &[("window", "7d")]).await;
        assert_eq!(status, 500);
        assert_eq!(body["errorId"].as_str().map(str::len), Some(16));
        assert!(!body.to_string().contains("secret"), "{body}");
    }
}

//! The allocation API, independent of transport: the Lambda (API Gateway HTTP API) and `kubecur serve`
//! both turn their request into an [`ApiRequest`] and send back the [`ApiResponse`].
//!
//! Routes (OpenCost's conventions where OpenCost has one):
//! - `GET /allocation?window=…&aggregate=…&accumulate=…&step=…&costMetric=…&filter<Dimension>s=…&format=json|csv`
//! - `GET /status`
//! - `GET /openapi.json`: the OpenAPI 3.1 document of these routes (`openapi.json` beside this file)
//! - `GET /` and `GET /page/…`: the Cost Allocation page, which reads only the routes above ([`page`])

mod memory;
pub mod page;
mod params;
#[cfg(test)]
mod schema_check;

pub use memory::MemoryStore;
pub use params::{allocation_parameters, AllocationQuery, Limits, ParamError};

use crate::domain::allocation::{Allocation, AllocationRow};
use crate::domain::delivery::decode_event_key;
use crate::domain::plan::Warning;
use crate::domain::run::Health;
use crate::domain::share::{ShareRules, SharedSource};
use crate::domain::snapshot::{answer, labels_of, Level, SnapshotGroup, SnapshotInfo};
use crate::domain::{CostMetric, Dimension, Label, UsageWindow};
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

    /// The headers a transport sends with the body: its content type, and on a 405 the methods the
    /// route allows (`Allow` is required there: https://www.rfc-editor.org/rfc/rfc9110#section-15.5.6).
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![("Content-Type", self.content_type)];
        if self.status == 405 {
            headers.push(("Allow", "GET, HEAD"));
        }
        if self.content_type.starts_with("text/html") {
            headers.extend(page::HTML_HEADERS);
        }
        headers
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

/// The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What a deployment configures for every request: the limits, the share rules every answer applies
/// before those its parameters ask for (`KUBECUR_SHARE_RULES`), and the labels its runs compute
/// (`KUBECUR_LABELS`; `kubecur serve --labels`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub limits: Limits,
    pub share: ShareRules,
    pub labels: Vec<Label>,
}

/// Serves one request under the default [`Settings`]; see [`handle_with_limits`].
pub async fn handle<S: SnapshotReader>(
    store: &S,
    request: &ApiRequest,
    today: NaiveDate,
) -> ApiResponse {
    handle_with_limits(store, request, today, &Settings::default()).await
}

/// Serves one HTTP request as a front end receives it (the API function, `kubecur serve`): method,
/// path and the raw query string, still URL-encoded. A query string that cannot be decoded is a 400.
pub async fn handle_http<S: SnapshotReader>(
    store: &S,
    method: &str,
    path: &str,
    raw_query: Option<&str>,
    today: NaiveDate,
    settings: &Settings,
) -> ApiResponse {
    match query_pairs(raw_query) {
        Ok(query) => {
            let request = ApiRequest {
                method: method.to_string(),
                path: path.to_string(),
                query,
            };
            handle_with_limits(store, &request, today, settings).await
        }
        Err(reason) => ApiResponse::bad_query(&reason),
    }
}

/// Serves one request. `today` is the caller's clock (relative windows such as `7d` end today).
/// Never panics and never returns an empty success for a failure: bad parameters and requests beyond
/// `limits` are 400 naming the parameter, unknown routes 404, store failures 500 with an opaque id
/// (details go to the log only). `settings` are the deployment's ([`Settings`]).
pub async fn handle_with_limits<S: SnapshotReader>(
    store: &S,
    request: &ApiRequest,
    today: NaiveDate,
    settings: &Settings,
) -> ApiResponse {
    let path = request.path.trim_end_matches('/');
    if let Some(asset) = page::asset(path) {
        // The page reads its own query (window, aggregate, costMetric) and says what is wrong with it.
        return page::response(asset, &request.method);
    }
    let route = match (request.method.as_str(), path) {
        ("GET" | "HEAD", "/allocation") => Route::Allocation,
        ("GET" | "HEAD", "/status") => Route::Status,
        ("GET" | "HEAD", "/openapi.json") => Route::OpenApi,
        (_, "/allocation" | "/status" | "/openapi.json") => {
            return ApiResponse::error(
                405,
                json!({ "message": format!("{} is not allowed on {path}; use GET", request.method) }),
            )
        }
        _ => {
            return ApiResponse::error(
                404,
                json!({ "message": format!("no route {} {}; routes: GET /allocation, GET /status, GET /openapi.json, GET / (the page)", request.method, request.path) }),
            )
        }
    };
    let result = match route {
        Route::Allocation => {
            match AllocationQuery::parse_with_limits(&request.query, today, &settings.limits) {
                Ok(query) => allocation(store, &query, settings).await,
                Err(err) => return ApiResponse::error(400, json!({ "error": err })),
            }
        }
        Route::Status => match params::reject_unknown(&request.query, &[]) {
            Ok(()) => status(store).await,
            Err(err) => return ApiResponse::error(400, json!({ "error": err })),
        },
        Route::OpenApi => match params::reject_unknown(&request.query, &[]) {
            Ok(()) => Ok(ApiResponse {
                status: 200,
                content_type: JSON,
                body: OPENAPI.to_string(),
            }),
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
    OpenApi,
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

/// The labels any serving snapshot computed, in first-seen order.
fn computed_labels(pointers: &[PeriodStatus]) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::new();
    for info in pointers.iter().filter_map(|p| p.serving.as_ref()) {
        for label in &info.labels {
            if !out.contains(label) {
                out.push(*label);
            }
        }
    }
    out
}

/// A 400 when the request names a label (`aggregate=label:KEY`, `filterLabels`, `shareLabels`, a
/// configured rule) that is neither configured (`KUBECUR_LABELS` of the API, `configured`) nor
/// computed by a serving snapshot: the pipeline groups by the labels of `KUBECUR_LABELS` only. A
/// configured label a month lacks is answered, with a `labelNotComputed` warning. Without configured
/// labels and without any snapshot there is nothing to check against (the answer says no snapshot).
fn uncomputed_labels(
    pointers: &[PeriodStatus],
    configured: &[Label],
    dimensions: &[Dimension],
    query: &AllocationQuery,
) -> Option<ApiResponse> {
    if configured.is_empty() && pointers.iter().all(|p| p.serving.is_none()) {
        return None;
    }
    let mut computed = configured.to_vec();
    for label in computed_labels(pointers) {
        if !computed.contains(&label) {
            computed.push(label);
        }
    }
    let absent = labels_of(dimensions)
        .into_iter()
        .find(|l| !computed.contains(l))?;
    let named = Dimension::Label(absent);
    let parameter = if query.aggregate.contains(&named) {
        "aggregate"
    } else if query.filters.iter().any(|(d, _)| *d == named) {
        "filterLabels"
    } else if query.share.labels.iter().any(|(l, _)| *l == absent) {
        "shareLabels"
    } else {
        "the configured share rules"
    };
    let allowed = if computed.is_empty() {
        "no label: this deployment computes none (set KUBECUR_LABELS, or `kubecur serve --labels`)"
            .to_string()
    } else {
        let keys: Vec<&str> = computed.iter().map(|l| l.key()).collect();
        format!(
            "the labels this deployment computes (KUBECUR_LABELS, or a computed month): {}",
            keys.join(", ")
        )
    };
    Some(ApiResponse::error(
        400,
        json!({ "error": ParamError {
            parameter: parameter.into(),
            message: format!("label `{}` is not computed by the pipeline", absent.key()),
            allowed,
        } }),
    ))
}

/// Per serving snapshot, the resource ids the share rules select that it was computed without
/// (period, ids): the ingest keys those of `KUBECUR_SHARE_RULES` as it was when the month ran.
fn resource_gaps(pointers: &[PeriodStatus], rules: &ShareRules) -> Vec<(String, Vec<String>)> {
    let wanted = rules.resource_ids();
    pointers
        .iter()
        .filter_map(|p| p.serving.as_ref())
        .filter_map(|info| {
            let lacking: Vec<String> = wanted
                .iter()
                .filter(|id| !info.resources.contains(id))
                .cloned()
                .collect();
            (!lacking.is_empty()).then(|| (info.period.label(), lacking))
        })
        .collect()
}

/// Per serving snapshot, the requested labels it was computed without (period, keys).
fn label_gaps(pointers: &[PeriodStatus], dimensions: &[Dimension]) -> Vec<(String, Vec<String>)> {
    let wanted = labels_of(dimensions);
    pointers
        .iter()
        .filter_map(|p| p.serving.as_ref())
        .filter_map(|info| {
            let mut lacking: Vec<String> = Vec::new();
            for label in &wanted {
                let key = label.key().to_string();
                if !info.labels.contains(label) && !lacking.contains(&key) {
                    lacking.push(key);
                }
            }
            (!lacking.is_empty()).then(|| (info.period.label(), lacking))
        })
        .collect()
}

async fn allocation<S: SnapshotReader>(
    store: &S,
    query: &AllocationQuery,
    settings: &Settings,
) -> Result<ApiResponse, StoreError> {
    let limits = &settings.limits;
    let periods = query.window.billing_periods();
    let pointers = store.pointers(&periods).await?;
    let rules = settings.share.clone().with_parameters(&query.share);
    let sharing = !rules.is_empty();
    // With sharing, each set is answered at the grain the rules need and filtered after sharing, so
    // that a group's figures do not depend on which other groups a filter shows.
    let grain = if sharing {
        rules.grain_with_filters(&query.aggregate, query.filters.iter().map(|(d, _)| *d))
    } else {
        query.aggregate.clone()
    };
    let mut dimensions = query.aggregate.clone();
    dimensions.extend(query.filters.iter().map(|(d, _)| *d));
    dimensions.extend(grain.iter().copied());
    if let Some(refused) = uncomputed_labels(&pointers, &settings.labels, &dimensions, query) {
        return Ok(refused);
    }
    let level = Level::serving(&dimensions);
    let mut groups: Vec<std::sync::Arc<SnapshotGroup>> = Vec::new();
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
            && (sharing
                || query.filters.iter().all(|(dimension, allowed)| {
                    group
                        .value(*dimension)
                        .is_some_and(|value| allowed.iter().any(|a| a == value))
                }))
    };
    // Sharing over a set at the grain, then the filters, then the requested aggregate.
    let share_set = |set: Allocation| -> Result<(Allocation, Vec<SharedSource>), StoreError> {
        if !sharing {
            return Ok((set, Vec::new()));
        }
        let shared = rules
            .apply_for(&set, &query.aggregate, query.metric)
            .map_err(|e| StoreError::Malformed {
                key: "the share rules".into(),
                reason: e.to_string(),
            })?;
        let mut set = shared.allocation;
        set.retain_values(&query.filters);
        let set = set
            .regroup(&query.aggregate)
            .ok_or_else(|| StoreError::Malformed {
                key: "the shared answer".into(),
                reason: "the aggregate is not among the keys it was shared at".into(),
            })?;
        Ok((set, shared.sources))
    };
    let flavour = flavour.unwrap_or(crate::domain::Flavour::Cur2);
    // Filtered once, not once per step.
    let kept: Vec<&SnapshotGroup> = groups.iter().map(|g| &**g).filter(|g| keep(g)).collect();
    let mut sets: Vec<(Allocation, Vec<AllocationRow>)> = Vec::new();
    let mut answered: u64 = 0;
    let mut sources: Vec<SharedSource> = Vec::new();
    let steps = query.steps();
    let one_step = steps.len() == 1;
    for step in steps {
        let (set, moved) = share_set(answer(
            kept.iter().copied(),
            step,
            &grain,
            |_| true,
            flavour,
            warnings.clone(),
        ))?;
        if one_step {
            sources = moved;
        }
        let rows = set.display_rows(query.metric);
        answered += rows.len() as u64;
        if answered > u64::from(limits.max_groups) {
            let so_far = if sets.is_empty() { "" } else { " so far" };
            return Ok(ApiResponse::error(
                400,
                json!({ "error": ParamError {
                    parameter: "aggregate".into(),
                    message: format!("the answer would hold {answered} groups{so_far}, more than the limit"),
                    allowed: format!(
                        "at most {} groups in one answer: aggregate by fewer or coarser keys, filter (e.g. filterNamespaces), or ask for a shorter window or fewer steps",
                        limits.max_groups
                    ),
                } }),
            ));
        }
        sets.push((set, rows));
    }
    if query.csv {
        return Ok(ApiResponse {
            status: 200,
            content_type: CSV,
            body: render_csv(&sets, query, sharing),
        });
    }
    // With one step the set is the whole window; only daily steps need the window summed again.
    let (summary, share_warnings) = match sets.as_slice() {
        [(whole, _)] => (whole.summary(query.metric), whole.warnings.clone()),
        _ => {
            let (whole, moved) = share_set(answer(
                kept.iter().copied(),
                query.window,
                &grain,
                |_| true,
                flavour,
                warnings.clone(),
            ))?;
            sources = moved;
            (whole.summary(query.metric), whole.warnings)
        }
    };
    // The share rules' warnings (those of the whole window) after the snapshots'.
    let warnings: Vec<Warning> =
        warnings
            .into_iter()
            .chain(share_warnings)
            .fold(Vec::new(), |mut all, w| {
                if !all.contains(&w) {
                    all.push(w);
                }
                all
            });
    let mut notes: Vec<Value> = warnings
        .iter()
        .map(|w| json!({ "warning": w, "message": w.to_string() }))
        .collect();
    for (period, labels) in label_gaps(&pointers, &dimensions) {
        notes.push(json!({
            "warning": { "kind": "labelNotComputed", "period": period, "labels": labels },
            "message": format!("the snapshot of {period} was computed without label(s) {}: its cost shows as `__unallocated__` for them until the month is computed again", labels.join(", ")),
        }));
    }
    for (period, ids) in resource_gaps(&pointers, &rules) {
        notes.push(json!({
            "warning": { "kind": "resourceNotComputed", "period": period, "resources": ids },
            "message": format!("the snapshot of {period} was computed without resource id(s) {} (set the same share rules on the ingest, KUBECUR_SHARE_RULES): a rule selecting them takes nothing from that month until it is computed again", ids.join(", ")),
        }));
    }
    if !missing.is_empty() {
        notes.push(json!({
            "warning": { "kind": "noSnapshot", "periods": missing },
            "message": format!("no allocation has been computed yet for billing period(s) {}: their days are not in the data", missing.join(", ")),
        }));
    }
    #[derive(serde::Serialize)]
    struct Document<'a> {
        code: u16,
        data: Vec<SetJson<'a>>,
        meta: Value,
        status: &'static str,
    }
    let document = Document {
        code: 200,
        data: sets
            .iter()
            .map(|(set, rows)| SetJson::new(set, rows, query.metric))
            .collect(),
        status: "success",
        meta: json!({
                "window": window_json(query.window),
                "aggregate": query.aggregate,
                "costMetric": query.metric,
                "level": level.name(),
                "snapshots": snapshots,
                "summary": summary,
                "shared": sources.iter().map(|s| shared_json(s, query.metric)).collect::<Vec<_>>(),
                "warnings": notes,
        }),
    };
    Ok(ApiResponse {
        status: 200,
        content_type: JSON,
        body: serde_json::to_string(&document).map_err(|e| StoreError::Malformed {
            key: "the allocation answer".into(),
            reason: e.to_string(),
        })?,
    })
}

/// One shared source of an answer: the rule, what it moved (the chosen metric and all four), and the
/// line items and groups it took. The API's `meta.shared` and `kubecur allocate --format json` alike.
pub fn shared_json(source: &SharedSource, metric: CostMetric) -> Value {
    let mut object = json!({
        "rule": source.rule,
        "totalCost": source.costs.get(metric),
        "lineItems": source.line_items,
        "groups": source.groups,
    });
    for m in CostMetric::ALL {
        object[m.name()] = json!(source.costs.get(m));
    }
    object
}

fn window_json(window: UsageWindow) -> Value {
    json!(WindowJson::of(window))
}

/// One allocation set in OpenCost's shape: a map from group name ([`group_name`]) to its figures,
/// serialized as it is written (no `Value` tree: this is most of every answer's bytes). Entries are in
/// name order, as a JSON object map would hold them.
struct SetJson<'a> {
    group_by: &'a [crate::domain::Dimension],
    window: Option<WindowJson>,
    rows: Vec<(String, &'a AllocationRow)>,
    metric: CostMetric,
}

#[derive(serde::Serialize)]
struct WindowJson {
    start: String,
    end: String,
}

impl WindowJson {
    fn of(window: UsageWindow) -> WindowJson {
        WindowJson {
            start: format!("{}T00:00:00Z", window.from()),
            end: format!("{}T00:00:00Z", window.to()),
        }
    }
}

impl<'a> SetJson<'a> {
    fn new(set: &'a Allocation, rows: &'a [AllocationRow], metric: CostMetric) -> SetJson<'a> {
        let mut rows: Vec<(String, &AllocationRow)> =
            rows.iter().map(|r| (group_name(&r.keys), r)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        SetJson {
            group_by: &set.group_by,
            window: set.window.map(WindowJson::of),
            rows,
            metric,
        }
    }
}

impl serde::Serialize for SetJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.rows.len()))?;
        for (name, row) in &self.rows {
            map.serialize_entry(
                name,
                &ItemJson {
                    set: self,
                    name,
                    row,
                },
            )?;
        }
        map.end()
    }
}

/// One group of a set: its name, raw key values, window and figures.
struct ItemJson<'a> {
    set: &'a SetJson<'a>,
    name: &'a str,
    row: &'a AllocationRow,
}

impl serde::Serialize for ItemJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (row, window) = (self.row, self.set.window.as_ref());
        let mut map = serializer.serialize_map(Some(10 + CostMetric::ALL.len()))?;
        map.serialize_entry("allocated", &row.allocated)?;
        map.serialize_entry("end", &window.map(|w| &w.end))?;
        map.serialize_entry("lineItems", &row.line_items)?;
        map.serialize_entry("name", self.name)?;
        map.serialize_entry("properties", &Properties(self.set.group_by, &row.keys))?;
        map.serialize_entry("resources", &row.resources)?;
        map.serialize_entry("sharedCost", &row.shared.get(self.set.metric))?;
        map.serialize_entry("start", &window.map(|w| &w.start))?;
        map.serialize_entry("totalCost", &row.costs.get(self.set.metric))?;
        map.serialize_entry("window", &window)?;
        for metric in CostMetric::ALL {
            map.serialize_entry(metric.name(), &row.costs.get(metric))?;
        }
        map.end()
    }
}

/// Each aggregate's name → the group's raw value.
struct Properties<'a>(&'a [crate::domain::Dimension], &'a [String]);

impl serde::Serialize for Properties<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (dimension, key) in self.0.iter().zip(self.1) {
            map.serialize_entry(dimension.name(), key)?;
        }
        map.end()
    }
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

/// A group's name: its key values joined with `/`, as OpenCost names them, with `%` and `/` inside a
/// value percent-encoded (`%25`, `%2F`) so that distinct groups always get distinct names
/// (`a/b` + `c` is `a%2Fb/c`, `a` + `b/c` is `a/b%2Fc`). The raw values are in `properties`.
pub fn group_name(keys: &[String]) -> String {
    let mut name = String::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            name.push('/');
        }
        for ch in key.chars() {
            match ch {
                '%' => name.push_str("%25"),
                '/' => name.push_str("%2F"),
                other => name.push(other),
            }
        }
    }
    name
}

/// A text cell of kubecur's CSV (API `format=csv` and `kubecur allocate --format csv`; numbers are
/// written as numbers, never through here):
/// - a cell beginning with `=`, `+`, `-`, `@`, tab or carriage return gets a leading single quote, so a
///   spreadsheet shows it as text instead of evaluating it as a formula (OWASP's advice,
///   https://owasp.org/www-community/attacks/CSV_Injection);
/// - then it is quoted when it holds a separator, quote, line break or edge space (RFC 4180).
pub fn csv_field(text: &str) -> String {
    let neutralised;
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutralised = format!("'{text}");
        neutralised.as_str()
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// With `sharing`, a `sharedCost` column (the chosen metric's part received from shared sources).
fn render_csv(
    sets: &[(Allocation, Vec<AllocationRow>)],
    query: &AllocationQuery,
    sharing: bool,
) -> String {
    let mut header = vec!["windowStart".to_string(), "windowEnd".to_string()];
    header.extend(query.aggregate.iter().map(|d| d.name().to_string()));
    header.push("allocated".into());
    header.extend(CostMetric::ALL.iter().map(|m| m.name().to_string()));
    header.extend(["resources".to_string(), "lineItems".to_string()]);
    if sharing {
        header.push("sharedCost".into());
    }
    let mut out = header.join(",") + "\n";
    for (set, rows) in sets {
        let (start, end) = set
            .window
            .map(|w| (w.from().to_string(), w.to().to_string()))
            .unwrap_or_default();
        for row in rows {
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
            if sharing {
                cells.push(row.shared.get(query.metric).to_string());
            }
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

/// `fresh`, `stale (why)` or `failed (why)` for a period (domain rule: [`Health::judge`]).
fn health(p: &PeriodStatus) -> Health {
    Health::judge(
        p.serving.as_ref().map(|s| s.version),
        p.latest.as_ref(),
        p.last_failure
            .as_ref()
            .map(|f| (f.run_id.as_str(), f.reason.as_str())),
    )
}

/// Seconds since the serving snapshot was computed.
fn age_seconds(info: &SnapshotInfo) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&info.computed_at)
        .ok()
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

async fn status<S: SnapshotReader>(store: &S) -> Result<ApiResponse, StoreError> {
    let periods: Vec<PeriodStatus> = store.all_pointers().await?;
    let data: Vec<Value> = periods
        .iter()
        .map(|p| {
            json!({
                "period": p.period.label(),
                "health": health(p).label(),
                "ageSeconds": p.serving.as_ref().and_then(age_seconds),
                "latest": p.latest.as_ref().map(|l| json!({
                    "runId": l.run_id,
                    "version": l.version,
                    "state": l.state.name(),
                })),
                "serving": p.serving.as_ref().map(|s| json!({
                    "version": s.version,
                    "runId": s.run_id,
                    "source": s.source,
                    "flavour": s.flavour,
                    "computedAt": s.computed_at,
                    "lineItems": s.line_items,
                    "missingTagColumns": s.missing_tags(),
                    // What `aggregate=label:KEY` and the share rules' `resource` can use for this month.
                    "labels": s.labels,
                    "resources": s.resources,
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

    /// One row of June 2024 at full grain (`keys` without the day), its cost in every metric.
    fn june_row(day: &str, keys: &[&str], cost: f64, line_items: u64) -> AllocationRow {
        AllocationRow {
            keys: std::iter::once(day)
                .chain(keys.iter().copied())
                .map(str::to_string)
                .collect(),
            allocated: keys[1] != UNALLOCATED,
            costs: CostVector([cost, cost, cost, cost]),
            shared: Default::default(),
            resources: 1,
            resource_ids: Some(crate::domain::resources::ResourceSet::from_hashes([1])),
            line_items,
        }
    }

    /// A store serving June 2024 (version 7) built from `rows` grouped by `group_by`.
    fn june_store(group_by: Vec<Dimension>, rows: Vec<AllocationRow>) -> MemoryStore {
        june_store_keying(group_by, &[], rows)
    }

    /// [`june_store`] whose run keyed the resource ids `resources` ([`Dimension::Resource`]).
    fn june_store_keying(
        group_by: Vec<Dimension>,
        resources: &[String],
        rows: Vec<AllocationRow>,
    ) -> MemoryStore {
        let full = Allocation {
            flavour: Flavour::Cur2,
            window: None,
            group_by,
            rows,
            warnings: vec![],
        };
        let groups = build_snapshot(&full).expect("full grain");
        let info = SnapshotInfo::describe(
            &full,
            resources,
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

    fn store() -> MemoryStore {
        let u = UNALLOCATED;
        let row = |day: &str, ns: &str, cost: f64| {
            june_row(
                day,
                &["prod", ns, u, u, u, u, "AmazonRDS", "111122223333"],
                cost,
                3,
            )
        };
        june_store(
            Dimension::ALL.to_vec(),
            vec![
                row("2024-06-01", "payments", 10.0),
                row("2024-06-02", "payments", 5.5),
                row("2024-06-02", "search,eu", 1.25),
                row("2024-06-03", u, 100.0),
            ],
        )
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
    async fn configured_rules_select_by_resource_id_and_a_month_computed_without_it_is_a_warning() {
        let u = UNALLOCATED;
        let row = |ns: &str, service: &str, resource: &str, cost: f64| {
            june_row(
                "2024-06-01",
                &["prod", ns, u, u, u, u, service, "111122223333", resource],
                cost,
                1,
            )
        };
        let mut group_by = Dimension::ALL.to_vec();
        group_by.push(Dimension::Resource);
        // The untagged RDS cost is 70 of `db-shared` and 20 of other databases.
        let rows = vec![
            row("payments", "AmazonS3", "", 30.0),
            row("search", "AmazonS3", "", 10.0),
            row(u, "AmazonRDS", "db-shared", 70.0),
            row(u, "AmazonRDS", "", 20.0),
        ];
        let keyed = june_store_keying(group_by, &["db-shared".to_string()], rows);
        let rules = ShareRules::parse_json(
            r#"{"rules": [{"name": "shared db", "select": {"resource": "db-shared"}}]}"#,
        )
        .expect("valid");
        let request = ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: vec![(
                "window".into(),
                "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z".into(),
            )],
        };
        let settings = Settings {
            share: rules,
            ..Settings::default()
        };
        let answer = |store: MemoryStore| {
            let (request, settings) = (request.clone(), settings.clone());
            async move {
                let response = handle_with_limits(&store, &request, today(), &settings).await;
                assert_eq!(response.status, 200, "{}", response.body);
                serde_json::from_str::<Value>(&response.body).expect("JSON")
            }
        };
        let body = answer(keyed).await;
        let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9);
        let set = &body["data"][0];
        // 70 by weight over payments 30 and search 10: 52.5 and 17.5; the other 20 stays unallocated.
        assert!(close(&set["payments"]["totalCost"], 82.5), "{set}");
        assert!(close(&set["payments"]["sharedCost"], 52.5), "{set}");
        assert!(close(&set["search"]["totalCost"], 27.5), "{set}");
        assert!(close(&set[UNALLOCATED]["totalCost"], 20.0), "{set}");
        assert!(close(&body["meta"]["summary"]["total"], 130.0), "{body}");
        assert_eq!(body["meta"]["shared"][0]["rule"], "shared db", "{body}");
        let kinds = |body: &Value| -> Vec<String> {
            body["meta"]["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w["warning"]["kind"].as_str().map(str::to_string))
                .collect()
        };
        assert!(
            !kinds(&body).contains(&"resourceNotComputed".to_string()),
            "{body}"
        );

        // A month computed before the rule named the database: nothing moves, and the answer says why.
        let body = answer(store()).await;
        assert!(
            kinds(&body).contains(&"resourceNotComputed".to_string()),
            "{body}"
        );
        assert!(body.to_string().contains("db-shared"), "{body}");
        let set = &body["data"][0];
        assert!(close(&set[UNALLOCATED]["totalCost"], 100.0), "{set}");
    }

    #[tokio::test]
    async fn configured_labels_are_checked_before_any_month_is_computed() {
        let empty = MemoryStore::default();
        let settings = Settings {
            labels: vec![crate::domain::Label::new("team").expect("valid")],
            ..Settings::default()
        };
        let ask = |aggregate: &str| ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: vec![
                (
                    "window".into(),
                    "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z".into(),
                ),
                ("aggregate".into(), aggregate.into()),
            ],
        };
        let refused = handle_with_limits(&empty, &ask("label:env"), today(), &settings).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        let body: Value = serde_json::from_str(&refused.body).expect("JSON");
        assert_eq!(body["error"]["parameter"], "aggregate", "{body}");
        assert!(
            body["error"]["allowed"]
                .as_str()
                .is_some_and(|a| a.contains("team")),
            "{body}"
        );
        // A configured label is answered: no month yet, and the answer says so.
        let answered = handle_with_limits(&empty, &ask("label:team"), today(), &settings).await;
        assert_eq!(answered.status, 200, "{}", answered.body);
        assert!(answered.body.contains("noSnapshot"), "{}", answered.body);
        // Without configured labels and without a month there is nothing to check against.
        let unchecked =
            handle_with_limits(&empty, &ask("label:env"), today(), &Settings::default()).await;
        assert_eq!(unchecked.status, 200, "{}", unchecked.body);
    }

    /// June 2024 at full grain and by `label:team` (as with `KUBECUR_LABELS=team`).
    fn labelled_store() -> MemoryStore {
        let u = UNALLOCATED;
        let team = crate::domain::Label::new("team").expect("valid");
        let row = |day: &str, ns: &str, team: &str, cost: f64| {
            june_row(
                day,
                &["prod", ns, u, u, u, u, "AmazonRDS", "111122223333", team],
                cost,
                1,
            )
        };
        let mut group_by = Dimension::ALL.to_vec();
        group_by.push(Dimension::Label(team));
        // Its pointer names the label: without it, `aggregate=label:team` below would be a 400.
        june_store(
            group_by,
            vec![
                row("2024-06-01", "payments", "pay", 10.0),
                row("2024-06-02", "payments", "plat", 6.0),
                row("2024-06-02", "search", "pay", 4.0),
                row("2024-06-03", u, u, 100.0),
            ],
        )
    }

    #[tokio::test]
    async fn labels_aggregate_filter_and_share_and_an_uncomputed_label_is_a_400_listing_the_computed(
    ) {
        let window = ("window", "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z");
        let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9);
        let labelled = labelled_store();
        let (status, body) = get(
            &labelled,
            "/allocation",
            &[window, ("aggregate", "label:team")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let set = &body["data"][0];
        assert_eq!(set.as_object().map(|o| o.len()), Some(3), "{set}");
        assert!(close(&set["pay"]["totalCost"], 14.0), "{set}");
        assert!(close(&set["plat"]["totalCost"], 6.0), "{set}");
        assert!(close(&set[UNALLOCATED]["totalCost"], 100.0), "{set}");
        assert_eq!(set["pay"]["properties"]["label:team"], "pay", "{set}");
        assert_eq!(body["meta"]["aggregate"], json!(["label:team"]));

        let (_, filtered) = get(
            &labelled,
            "/allocation",
            &[
                window,
                ("aggregate", "namespace"),
                ("filterLabels", "team:pay"),
            ],
        )
        .await;
        let set = &filtered["data"][0];
        assert_eq!(set.as_object().map(|o| o.len()), Some(2), "{set}");
        assert!(close(&set["payments"]["totalCost"], 10.0), "{set}");
        assert!(close(&set["search"]["totalCost"], 4.0), "{set}");

        // The platform team's 6 over the other allocated groups by weight: payments 10, search 4.
        let (status, shared) = get(
            &labelled,
            "/allocation",
            &[window, ("shareLabels", "team:plat")],
        )
        .await;
        assert_eq!(status, 200, "{shared}");
        let set = &shared["data"][0];
        assert!(
            close(&set["payments"]["sharedCost"], 6.0 * 10.0 / 14.0),
            "{set}"
        );
        assert!(
            close(&set["payments"]["totalCost"], 10.0 + 6.0 * 10.0 / 14.0),
            "{set}"
        );
        assert!(
            close(&set["search"]["totalCost"], 4.0 + 6.0 * 4.0 / 14.0),
            "{set}"
        );
        assert!(close(&set[UNALLOCATED]["totalCost"], 100.0), "{set}");
        assert!(
            close(&shared["meta"]["summary"]["total"], 120.0),
            "{shared}"
        );
        assert_eq!(shared["meta"]["shared"][0]["rule"], "shareLabels=team:plat");

        // A label the pipeline does not compute: 400, naming the parameter and listing `team`.
        for (parameter, query) in [
            ("aggregate", ("aggregate", "label:env")),
            ("filterLabels", ("filterLabels", "env:prod")),
            ("shareLabels", ("shareLabels", "env:prod")),
        ] {
            let (status, body) = get(&labelled, "/allocation", &[window, query]).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["parameter"], parameter, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`env`")),
                "{body}"
            );
            assert!(
                body["error"]["allowed"]
                    .as_str()
                    .is_some_and(|m| m.contains("team")),
                "{body}"
            );
        }
        // A deployment without labels says it computes none.
        let (status, body) = get(
            &store(),
            "/allocation",
            &[window, ("aggregate", "label:team")],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["allowed"]
                .as_str()
                .is_some_and(|m| m.contains("KUBECUR_LABELS")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn shared_cost_goes_to_the_receivers_before_filters_and_is_listed() {
        let window = ("window", "2024-06-01T00:00:00Z,2024-06-04T00:00:00Z");
        let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9);
        // 100 untagged over payments (15.5) and search,eu (1.25), by weight.
        let (status, body) = get(
            &store(),
            "/allocation",
            &[window, ("shareUnallocated", "true")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let set = &body["data"][0];
        assert!(set.get(UNALLOCATED).is_none(), "{set}");
        let payments = 100.0 * 15.5 / 16.75;
        assert!(close(&set["payments"]["sharedCost"], payments), "{set}");
        assert!(
            close(&set["payments"]["totalCost"], 15.5 + payments),
            "{set}"
        );
        assert!(
            close(&set["search,eu"]["sharedCost"], 100.0 - payments),
            "{set}"
        );
        assert!(close(&body["meta"]["summary"]["total"], 116.75), "{body}");
        assert!(
            close(&body["meta"]["summary"]["unallocated"], 0.0),
            "{body}"
        );
        assert_eq!(body["meta"]["shared"][0]["rule"], "shareUnallocated");
        assert!(
            close(&body["meta"]["shared"][0]["totalCost"], 100.0),
            "{body}"
        );
        assert_eq!(body["meta"]["shared"][0]["lineItems"], 3);
        // A filter shows the same figures for the groups it keeps.
        let (_, filtered) = get(
            &store(),
            "/allocation",
            &[
                window,
                ("shareUnallocated", "true"),
                ("filterNamespaces", "payments"),
            ],
        )
        .await;
        assert_eq!(
            filtered["data"][0].as_object().map(|o| o.len()),
            Some(1),
            "{filtered}"
        );
        assert_eq!(filtered["data"][0]["payments"], set["payments"]);
        // Even: 50 each; a fixed amount: 300 a month is 30 over three June days, 15 each.
        let (_, even) = get(
            &store(),
            "/allocation",
            &[
                window,
                ("shareUnallocated", "true"),
                ("shareSplit", "even"),
                ("shareCost", "300"),
            ],
        )
        .await;
        assert!(
            close(&even["data"][0]["payments"]["sharedCost"], 65.0),
            "{even}"
        );
        assert!(
            close(&even["data"][0]["search,eu"]["sharedCost"], 65.0),
            "{even}"
        );
        assert!(
            close(&even["meta"]["shared"][1]["totalCost"], 30.0),
            "{even}"
        );
        assert!(close(&even["meta"]["summary"]["total"], 146.75), "{even}");
        // Without sharing, every group says it received nothing, and nothing is listed.
        let (_, plain) = get(&store(), "/allocation", &[window]).await;
        assert_eq!(plain["data"][0]["payments"]["sharedCost"], 0.0);
        assert_eq!(plain["meta"]["shared"], json!([]));
        // CSV: a sharedCost column with sharing.
        let request = ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: [
                window,
                ("shareCost", "300"),
                ("shareSplit", "even"),
                ("format", "csv"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let csv = handle(&store(), &request, today()).await.body;
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .is_some_and(|h| h.ends_with(",lineItems,sharedCost")),
            "{csv}"
        );
        assert!(
            csv.lines().any(
                |l| l.starts_with("2024-06-01,2024-06-04,payments,true,30.5,")
                    && l.ends_with(",15")
            ),
            "{csv}"
        );
        // A namespace shared with nowhere to go stays, with a warning.
        let (_, nowhere) = get(
            &store(),
            "/allocation",
            &[
                ("window", "2024-06-03T00:00:00Z,2024-06-04T00:00:00Z"),
                ("shareUnallocated", "true"),
            ],
        )
        .await;
        assert!(
            close(&nowhere["data"][0][UNALLOCATED]["totalCost"], 100.0),
            "{nowhere}"
        );
        assert!(
            nowhere["meta"]["warnings"].as_array().is_some_and(|w| w
                .iter()
                .any(|w| w["warning"]["kind"] == "shareHasNoReceivers")),
            "{nowhere}"
        );
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
    async fn status_says_fresh_stale_or_failed_with_the_reason_and_age() {
        use crate::domain::run::{Run, RunState};
        use crate::ports::pipeline::RunStore;
        use crate::ports::RunFailure;
        let store = store();
        let (_, body) = get(&store, "/status", &[]).await;
        assert_eq!(body["data"][0]["health"], "fresh", "{body}");
        let computed = chrono::DateTime::parse_from_rfc3339("2024-07-01T07:00:00Z").expect("valid");
        let expected = (chrono::Utc::now() - computed.with_timezone(&chrono::Utc)).num_seconds();
        let age = body["data"][0]["ageSeconds"].as_i64().expect("an age");
        assert!((age - expected).abs() <= 5, "{age} vs {expected}");

        let mut run = Run {
            id: "cur/x#2024-06#exec-2".into(),
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            version: 9,
            source: "exec-2".into(),
            state: RunState::Querying,
            query_id: Some("q-2".into()),
            columns: vec![],
            tag_mapping: crate::domain::TagMapping::default(),
            missing_tags: vec![],
            failure: None,
            updated_at_ms: 1_719_900_000_000,
        };
        store.note_latest(&run).await.expect("noted");
        let (_, body) = get(&store, "/status", &[]).await;
        let health = body["data"][0]["health"].as_str().expect("text");
        assert!(
            health.starts_with(
                "stale (newer delivery cur/x#2024-06#exec-2 is QUERYING since 2024-07-02"
            ),
            "{health}"
        );
        assert_eq!(
            body["data"][0]["serving"]["version"], 7,
            "the old snapshot still serves"
        );

        run.fail("Athena query q-2 failed: boom", 1_719_900_100_000)
            .expect("allowed");
        let failure = RunFailure {
            run_id: run.id.clone(),
            reason: "Athena query q-2 failed: boom".into(),
            at: "2024-07-02T06:00:00Z".into(),
        };
        store
            .record_failure(&run, &failure)
            .await
            .expect("recorded");
        let (_, body) = get(&store, "/status", &[]).await;
        assert_eq!(
            body["data"][0]["health"],
            "failed (Athena query q-2 failed: boom)"
        );
        assert_eq!(body["data"][0]["latest"]["state"], "FAILED");
    }

    #[tokio::test]
    async fn status_lists_each_period() {
        let (status, body) = get(&store(), "/status", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["period"], "2024-06");
        assert_eq!(body["data"][0]["serving"]["source"], "exec-1");
        assert_eq!(body["data"][0]["serving"]["lineItems"], 12);
    }

    /// A store serving June 2024 from full-grain rows given as (day, namespace, deployment, cost).
    fn store_of(rows: &[(&str, &str, &str, f64)]) -> MemoryStore {
        let u = UNALLOCATED;
        let full = Allocation {
            flavour: Flavour::Cur2,
            window: None,
            group_by: Dimension::ALL.to_vec(),
            rows: rows
                .iter()
                .map(|(day, ns, deployment, cost)| AllocationRow {
                    keys: [
                        *day,
                        "prod",
                        ns,
                        deployment,
                        u,
                        u,
                        u,
                        "AmazonRDS",
                        "111122223333",
                    ]
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
                    allocated: *ns != u,
                    costs: CostVector([*cost; 4]),
                    shared: Default::default(),
                    resources: 1,
                    resource_ids: Some(crate::domain::resources::ResourceSet::from_hashes([1])),
                    line_items: 1,
                })
                .collect(),
            warnings: vec![],
        };
        let groups = build_snapshot(&full).expect("full grain");
        let info = SnapshotInfo::describe(
            &full,
            &[],
            &groups,
            SnapshotOrigin {
                period: BillingPeriod {
                    year: 2024,
                    month: 6,
                },
                version: 1,
                run_id: "run".into(),
                source: "exec-1".into(),
                computed_at: "2024-07-01T07:00:00Z".into(),
            },
        );
        let store = MemoryStore::default();
        assert!(store.publish(info, groups));
        store
    }

    /// Issue 9: `a/b` + `c` and `a` + `b/c` were both named `a/b/c`; the `data` map kept one of them.
    #[tokio::test]
    async fn groups_whose_joined_names_would_collide_stay_apart() {
        let store = store_of(&[
            ("2024-06-01", "a/b", "c", 1.0),
            ("2024-06-01", "a", "b/c", 2.0),
            ("2024-06-01", "100%", "x", 4.0),
        ]);
        let (status, body) = get(
            &store,
            "/allocation",
            &[("window", "month"), ("aggregate", "namespace,deployment")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let set = body["data"][0].as_object().expect("one set");
        assert_eq!(set.len(), 3, "{body}");
        assert_eq!(set["a%2Fb/c"]["properties"]["namespace"], "a/b");
        assert_eq!(set["a%2Fb/c"]["name"], "a%2Fb/c");
        assert_eq!(set["a/b%2Fc"]["properties"]["deployment"], "b/c");
        assert_eq!(set["a/b%2Fc"]["totalCost"], 2.0);
        assert_eq!(set["100%25/x"]["properties"]["namespace"], "100%");
        let rows: f64 = set.values().filter_map(|g| g["totalCost"].as_f64()).sum();
        assert_eq!(
            rows,
            body["meta"]["summary"]["total"].as_f64().expect("total")
        );
    }

    /// Issue 9: a tag value `=1+2` was written as is (a formula when a spreadsheet opens the file).
    #[tokio::test]
    async fn csv_text_cells_cannot_start_a_formula_and_numbers_stay_numbers() {
        let store = store_of(&[
            ("2024-06-01", "=1+2", "@SUM(A1)", 1.0),
            ("2024-06-01", "-team", "+x", -2.5),
            ("2024-06-01", "\tab", "\rcr", 3.0),
        ]);
        let request = ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: vec![
                ("window".into(), "month".into()),
                ("format".into(), "csv".into()),
                ("aggregate".into(), "namespace,deployment".into()),
            ],
        };
        let response = handle(&store, &request, today()).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let body = &response.body;
        assert!(body.contains(",'=1+2,'@SUM(A1),true,1,"), "{body}");
        assert!(body.contains(",'-team,'+x,true,-2.5,"), "{body}");
        assert!(body.contains(",'\tab,\"'\rcr\",true,3,"), "{body}");
    }

    /// Issue 9: `window=0,253402300800` was answered (10 MB, 2.3 GB resident with `step=1d`).
    #[tokio::test]
    async fn windows_steps_and_groups_beyond_the_limits_are_refused_naming_the_limit() {
        let store = store();
        for (query, parameter, limit) in [
            (vec![("window", "0,253402300800")], "window", "1096 days"),
            (vec![("window", "1097d")], "window", "1096 days"),
            (
                vec![("window", "367d"), ("step", "1d")],
                "step",
                "366 steps",
            ),
        ] {
            let (status, body) = get(&store, "/allocation", &query).await;
            assert_eq!(status, 400, "{query:?}: {body}");
            assert_eq!(body["error"]["parameter"], parameter, "{body}");
            assert!(
                body["error"]["allowed"]
                    .as_str()
                    .is_some_and(|a| a.contains(limit)),
                "{body}"
            );
        }
        let (status, _) = get(&store, "/allocation", &[("window", "366d"), ("step", "1d")]).await;
        assert_eq!(status, 200);
        let names: Vec<String> = (0..10_001).map(|i| format!("ns-{i}")).collect();
        let rows: Vec<(&str, &str, &str, f64)> = names
            .iter()
            .map(|n| ("2024-06-01", n.as_str(), "web", 1.0))
            .collect();
        let (status, body) = get(&store_of(&rows), "/allocation", &[("window", "month")]).await;
        assert_eq!(status, 400, "{}", body["meta"]);
        assert_eq!(body["error"]["parameter"], "aggregate", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("10001 groups")),
            "{body}"
        );
        assert!(
            body["error"]["allowed"]
                .as_str()
                .is_some_and(|a| a.contains("10000 groups")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn the_openapi_document_is_served() {
        let (status, body) = get(&store(), "/openapi.json", &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["openapi"], "3.1.0");
        assert!(body["paths"]["/allocation"]["get"].is_object(), "{body}");
    }

    fn openapi() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    #[test]
    fn the_document_lists_exactly_the_parameters_the_parser_accepts() {
        let document = openapi();
        let listed: Vec<String> = document["paths"]["/allocation"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(listed, allocation_parameters());
        for name in &listed {
            let mut query = vec![("window".to_string(), "7d".to_string())];
            if name != "window" {
                let example = match name.as_str() {
                    "aggregate" => "pod",
                    "accumulate" => "true",
                    "step" => "1d",
                    "costMetric" => "netCost",
                    "format" => "csv",
                    "shareUnallocated" => "true",
                    "shareCost" => "1500",
                    "shareSplit" => "even",
                    "shareLabels" | "filterLabels" => "team:payments",
                    _ => "payments",
                };
                query.push((name.clone(), example.to_string()));
            }
            assert!(
                AllocationQuery::parse(&query, today()).is_ok(),
                "{name} is documented but refused"
            );
        }
        let err = AllocationQuery::parse(
            &[
                ("window".into(), "7d".into()),
                ("filterDays".into(), "x".into()),
            ],
            today(),
        )
        .expect_err("not a parameter");
        assert_eq!(err.parameter, "filterDays");
        for (parameter, schema) in [
            ("costMetric", "/enum"),
            ("step", "/enum"),
            ("format", "/enum"),
        ] {
            let at = listed.iter().position(|n| n == parameter).expect("listed");
            let values = document["paths"]["/allocation"]["get"]["parameters"][at]["schema"]
                .pointer(schema)
                .and_then(Value::as_array)
                .expect("an enum")
                .clone();
            for value in values {
                let value = value.as_str().expect("text").to_string();
                let query = [
                    ("window".to_string(), "7d".to_string()),
                    (parameter.to_string(), value),
                ];
                assert!(AllocationQuery::parse(&query, today()).is_ok(), "{query:?}");
            }
        }
        let limits = Limits::default();
        let text = document.to_string();
        for stated in [
            format!(
                "At most {},{:03} days by default",
                limits.max_window_days / 1000,
                limits.max_window_days % 1000
            ),
            format!("at most {} sets by default", limits.max_steps),
        ] {
            assert!(
                text.contains(&stated),
                "the document does not say `{stated}`"
            );
        }
    }

    /// Each route's real responses (200, 400, 404, 405, 500) conform to the document's schemas.
    #[tokio::test]
    async fn real_responses_conform_to_the_document() {
        let document = openapi();
        let store = store();
        let operation = |path: &str| document["paths"][path]["get"].clone();
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);
        let cases: Vec<Case> = vec![
            ("GET", "/allocation", vec![("window", "month")], 200),
            (
                "GET",
                "/allocation",
                vec![
                    ("window", "2024-05-31T00:00:00Z,2024-06-04T00:00:00Z"),
                    ("aggregate", "namespace,day,service"),
                    ("step", "1d"),
                    ("costMetric", "listCost"),
                ],
                200,
            ),
            (
                "GET",
                "/allocation",
                vec![
                    ("window", "month"),
                    ("aggregate", "pod"),
                    ("filterNamespaces", "payments"),
                ],
                200,
            ),
            ("GET", "/allocation", vec![("window", "9999d")], 400),
            (
                "GET",
                "/allocation",
                vec![("window", "7d"), ("colour", "red")],
                400,
            ),
            ("GET", "/status", vec![], 200),
            ("GET", "/status", vec![("verbose", "1")], 400),
            ("GET", "/openapi.json", vec![], 200),
            ("POST", "/allocation", vec![], 405),
            ("DELETE", "/openapi.json", vec![], 405),
            ("GET", "/nowhere", vec![], 404),
        ];
        for (method, path, query, expected) in cases {
            let request = ApiRequest {
                method: method.into(),
                path: path.into(),
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let response = handle(&store, &request, today()).await;
            assert_eq!(
                response.status, expected,
                "{method} {path} {query:?}: {}",
                response.body
            );
            let documented = if path == "/nowhere" { "/status" } else { path };
            let mut spec = operation(documented)["responses"][expected.to_string()].clone();
            if let Some(reference) = spec["$ref"].as_str() {
                spec = document
                    .pointer(reference.trim_start_matches('#'))
                    .expect("response")
                    .clone();
            }
            let schema = &spec["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{method} {path}: {expected} is not documented"
            );
            let body: Value = serde_json::from_str(&response.body).expect("JSON body");
            let violations = schema_check::violations(&document, schema, &body);
            assert!(
                violations.is_empty(),
                "{method} {path} {query:?}: {violations:?}\n{body}"
            );
            if expected == 405 {
                assert!(response.headers().contains(&("Allow", "GET, HEAD")));
            }
        }
        let (status, body) = get(&Broken, "/allocation", &[("window", "7d")]).await;
        assert_eq!(status, 500);
        let schema = &document["components"]["responses"]["InternalError"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            schema_check::violations(&document, schema, &body),
            Vec::<String>::new()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Distinct keys get distinct names, `properties` are the raw values, and the rows add up to
        /// the summary, in JSON and in CSV.
        #[test]
        fn distinct_groups_get_distinct_names_and_add_up_to_the_summary(
            rows in proptest::collection::vec(
                ("[a/%2F]{0,4}", "[a/%2F=]{0,3}", -1000i32..1000, 1u32..4),
                1..24,
            )
        ) {
            let rows: Vec<(String, String, String, f64)> = rows
                .into_iter()
                .map(|(ns, dep, cents, day)| (format!("2024-06-0{day}"), ns, dep, f64::from(cents) / 100.0))
                .collect();
            let borrowed: Vec<(&str, &str, &str, f64)> = rows
                .iter()
                .map(|(d, n, p, c)| (d.as_str(), n.as_str(), p.as_str(), *c))
                .collect();
            let store = store_of(&borrowed);
            let keys: std::collections::BTreeSet<(&str, &str)> =
                borrowed.iter().map(|(_, n, p, _)| (*n, *p)).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let query = [("window", "month"), ("aggregate", "namespace,deployment")];
            let (status, body) = runtime.block_on(get(&store, "/allocation", &query));
            proptest::prop_assert_eq!(status, 200);
            let set = body["data"][0].as_object().expect("one set");
            proptest::prop_assert_eq!(set.len(), keys.len(), "{}", body);
            let mut named = std::collections::BTreeSet::new();
            let mut sum = 0.0;
            for (name, group) in set {
                proptest::prop_assert_eq!(&group["name"], name);
                let raw = (
                    group["properties"]["namespace"].as_str().expect("namespace"),
                    group["properties"]["deployment"].as_str().expect("deployment"),
                );
                proptest::prop_assert!(keys.contains(&raw), "{:?}", raw);
                proptest::prop_assert_eq!(name, &group_name(&[raw.0.to_string(), raw.1.to_string()]));
                named.insert(raw);
                sum += group["totalCost"].as_f64().expect("cost");
            }
            proptest::prop_assert_eq!(named.len(), keys.len());
            let total = body["meta"]["summary"]["total"].as_f64().expect("total");
            proptest::prop_assert!((sum - total).abs() < 1e-6, "{} vs {}", sum, total);
            let csv = runtime.block_on(handle(
                &store,
                &ApiRequest {
                    method: "GET".into(),
                    path: "/allocation".into(),
                    query: query
                        .iter()
                        .chain(&[("format", "csv")])
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                },
                today(),
            ));
            proptest::prop_assert_eq!(csv.body.lines().count(), keys.len() + 1, "{}", csv.body);
        }
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
        ) -> Result<Vec<std::sync::Arc<SnapshotGroup>>, StoreError> {
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

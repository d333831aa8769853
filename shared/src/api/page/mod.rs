//! The Cost Allocation page (issue 13): one HTML page, its script and style, and the vendored chart
//! library (uPlot, pinned, `scripts/vendor_uplot.sh`), built into the binary. Served at `GET /` and
//! `GET /page/…` by the API function and by `kubecur serve`; the page reads only the public API
//! (`/allocation`, `/status`), so it needs no network beyond it.

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// The file's name beside this module (what `kubecur serve --page-dir` reads instead).
    pub file: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the page; the OpenAPI document lists each path (a test keeps them equal).
pub const ASSETS: [Asset; 5] = [
    Asset {
        path: "/",
        file: "index.html",
        content_type: HTML,
        body: include_str!("index.html"),
    },
    Asset {
        path: "/page/app.js",
        file: "app.js",
        content_type: JS,
        body: include_str!("app.js"),
    },
    Asset {
        path: "/page/app.css",
        file: "app.css",
        content_type: CSS,
        body: include_str!("app.css"),
    },
    Asset {
        path: "/page/uPlot.iife.min.js",
        file: "vendor/uPlot.iife.min.js",
        content_type: JS,
        body: include_str!("vendor/uPlot.iife.min.js"),
    },
    Asset {
        path: "/page/uPlot.min.css",
        file: "vendor/uPlot.min.css",
        content_type: CSS,
        body: include_str!("vendor/uPlot.min.css"),
    },
];

/// The page's file at `path` (`/` and `` are the page itself), if it is one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// The answer for one of the page's files: the file on `GET`/`HEAD`, 405 otherwise.
pub fn response(asset: &Asset, method: &str) -> super::ApiResponse {
    match method {
        "GET" | "HEAD" => super::ApiResponse {
            status: 200,
            content_type: asset.content_type,
            body: asset.body.to_string(),
        },
        _ => super::ApiResponse::error(
            405,
            serde_json::json!({ "message": format!("{method} is not allowed on {}; use GET", asset.path) }),
        ),
    }
}

/// Headers the page's files are sent with besides their content type: the page may load only its own
/// files and talk only to its own origin (no CDN, no other network), may not be framed, and its
/// files are never sniffed as another type.
pub const HTML_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = asset("/").expect("the page");
        assert_eq!(asset(""), Some(page));
        for other in &ASSETS[1..] {
            assert!(
                // Relative, so the page also works under an API stage or a base path.
                page.body.contains(&format!("\"{}\"", &other.path[1..])),
                "index.html does not load {}",
                other.path
            );
        }
        for asset in ASSETS {
            for remote in ["http://", "https://", "//cdn", "@import"] {
                // The vendored library names its home page in its licence comment only.
                let body = asset.body.replace("https://github.com/leeoniya/uPlot", "");
                assert!(
                    !body.contains(remote),
                    "{} refers to {remote}: the page must not load anything from elsewhere",
                    asset.file
                );
            }
        }
        assert_eq!(asset("/page/nothing.js"), None);
    }

    /// The OpenAPI document lists exactly the page's files, each with its media type.
    #[test]
    fn the_document_lists_exactly_the_pages_files() {
        let document: serde_json::Value =
            serde_json::from_str(super::super::OPENAPI).expect("openapi.json is JSON");
        let paths = document["paths"].as_object().expect("paths");
        let listed: Vec<&str> = paths
            .keys()
            .map(String::as_str)
            .filter(|p| *p == "/" || p.starts_with("/page/"))
            .collect();
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        assert_eq!(listed, served);
        for asset in ASSETS {
            let media = asset.content_type.split(';').next().expect("a media type");
            assert!(
                paths[asset.path]["get"]["responses"]["200"]["content"][media].is_object(),
                "{} is not documented as {media}",
                asset.path
            );
        }
    }

    async fn get(method: &str, path: &str, query: &[(&str, &str)]) -> super::super::ApiResponse {
        let request = super::super::ApiRequest {
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let today = chrono::NaiveDate::from_ymd_opt(2024, 6, 30).expect("a day");
        super::super::handle(&super::super::MemoryStore::default(), &request, today).await
    }

    #[tokio::test]
    async fn the_page_is_served_with_its_policy_whatever_its_query_and_only_on_get() {
        // A bad window in the page's URL is the page's to explain (it asks the API and shows the 400).
        for query in [vec![], vec![("window", "yesteryear"), ("colour", "red")]] {
            let response = get("GET", "/", &query).await;
            assert_eq!(response.status, 200, "{query:?}");
            assert!(response.body.starts_with("<!doctype html>"));
            let headers = response.headers();
            assert!(headers.contains(&("Content-Type", "text/html; charset=utf-8")));
            assert!(headers
                .iter()
                .any(|(n, v)| *n == "Content-Security-Policy" && v.contains("connect-src 'self'")));
        }
        let script = get("HEAD", "/page/app.js", &[]).await;
        assert_eq!(
            (script.status, script.content_type),
            (200, "text/javascript; charset=utf-8")
        );
        assert!(!script
            .headers()
            .iter()
            .any(|(n, _)| *n == "Content-Security-Policy"));
        let refused = get("POST", "/", &[]).await;
        assert_eq!(refused.status, 405, "{}", refused.body);
        assert!(refused.headers().contains(&("Allow", "GET, HEAD")));
        assert_eq!(get("GET", "/page/other.js", &[]).await.status, 404);
    }
}

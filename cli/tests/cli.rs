//! The `kubecur` binary as a user runs it: exit codes, output formats, messages.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn kubecur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubecur"))
        .args(args)
        .output()
        .expect("kubecur runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small legacy Parquet sample, written once by `kubecur sample`.
fn sample_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let out = kubecur(&[
            "sample",
            "--out",
            &dir.path().display().to_string(),
            "--rows",
            "5000",
            "--only",
            "legacy-parquet,focus-csv",
        ]);
        assert!(out.status.success(), "sample failed: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("Wrote 5000 line items"),
            "{}",
            text(&out.stdout)
        );
        dir
    })
    .path()
}

fn legacy() -> String {
    sample_dir().join("legacy-parquet").display().to_string()
}

#[test]
fn allocate_prints_a_table_and_a_summary_line() {
    let out = kubecur(&["allocate", "--cur", &legacy(), "--period", "2024-06"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("NAMESPACE"), "{stdout}");
    for needle in [
        "amortizedNetCost",
        "payments",
        "__unallocated__",
        "支付",
        "legacy CUR amortizedNetCost total",
        "allocated",
        "unallocated",
    ] {
        assert!(stdout.contains(needle), "missing {needle}: {stdout}");
    }
}

#[test]
fn csv_has_one_column_per_key_and_one_for_the_metric_and_sums_to_the_json_total() {
    let csv = kubecur(&[
        "allocate",
        "--cur",
        &legacy(),
        "--period",
        "2024-06",
        "--aggregate",
        "namespace,service",
        "--metric",
        "amortizedCost",
        "--format",
        "csv",
    ]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let csv = text(&csv.stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("namespace,service,amortizedCost"));
    let csv_total: f64 = lines
        .map(|l| {
            l.rsplit(',')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .expect("numeric metric")
        })
        .sum();

    let json = kubecur(&[
        "allocate",
        "--cur",
        &legacy(),
        "--period",
        "2024-06",
        "--metric",
        "amortizedCost",
        "--format",
        "json",
    ]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let total = document["summary"]["total"].as_f64().expect("total");
    assert!(
        (csv_total - total).abs() < 1e-6 * total.abs().max(1.0),
        "csv {csv_total} vs json {total}"
    );
    assert_eq!(document["metric"], "amortizedCost");
    assert!(document["rows"]
        .as_array()
        .is_some_and(|rows| !rows.is_empty()));
}

#[test]
fn warnings_go_to_stderr_and_stdout_stays_machine_readable() {
    let out = kubecur(&[
        "allocate",
        "--cur",
        &legacy(),
        "--period",
        "2024-06",
        "--tag-key",
        "pod=not_activated",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: pod tag `not_activated` is not in the data"),
        "{}",
        text(&out.stderr)
    );
    let document: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is only JSON");
    assert_eq!(document["warnings"][0]["warning"]["kind"], "tagMissing");
}

#[test]
fn focus_csv_allocates_too() {
    let cur = sample_dir().join("focus-csv").display().to_string();
    let out = kubecur(&[
        "allocate",
        "--cur",
        &cur,
        "--from",
        "2024-06-01",
        "--to",
        "2024-06-08",
        "--aggregate",
        "namespace,day",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("namespace,day,amortizedNetCost\n"),
        "{stdout}"
    );
    assert!(
        stdout.lines().skip(1).all(|l| l.contains(",2024-06-0")),
        "only the first week of June: {stdout}"
    );
}

#[test]
fn unknown_metric_exits_2_and_lists_the_metrics() {
    let out = kubecur(&["allocate", "--cur", &legacy(), "--metric", "blendedCost"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown cost metric `blendedCost`") && stderr.contains("amortizedNetCost"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_refused_before_any_file_is_read() {
    for (args, needle) in [
        (vec!["--period", "2024-13"], "month must be 01 to 12"),
        (
            vec!["--aggregate", "namespace,label"],
            "unknown aggregate `label`",
        ),
        (vec!["--tag-key", "namespace"], "missing `=`"),
        (vec!["--account", "12"], "invalid account id `12`"),
        (
            vec!["--from", "2024-06-10", "--to", "2024-06-01"],
            "the end must be after the start",
        ),
    ] {
        let mut full = vec!["allocate", "--cur", "/nonexistent/kubecur"];
        full.extend(args);
        let out = kubecur(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{full:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn missing_path_and_empty_directory_are_explained() {
    let out = kubecur(&["allocate", "--cur", "/nonexistent/kubecur"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot open CUR path `/nonexistent/kubecur`"),
        "{}",
        text(&out.stderr)
    );

    let empty = tempfile::tempdir().expect("temporary directory");
    let out = kubecur(&["allocate", "--cur", &empty.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no CUR data files"),
        "{}",
        text(&out.stderr)
    );
}

/// `kubecur serve` answers the pipeline's API with `kubecur allocate`'s numbers.
#[test]
fn serve_answers_the_api_with_allocates_numbers() {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_kubecur"))
        .args(["serve", "--cur", &legacy(), "--listen", &listen])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubecur serve starts");
    let get = |path: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(&listen).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(response) = get("/status") {
            break response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not answer within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let response = get("/allocation?window=2024-06-01T00%3A00%3A00Z%2C2024-07-01T00%3A00%3A00Z&aggregate=namespace");
    let missing = get("/allocation?window=7d&costMetric=blended");
    let openapi = get("/openapi.json");
    let not_allowed = {
        let mut stream = std::net::TcpStream::connect(&listen).expect("connects");
        write!(
            stream,
            "DELETE /status HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
        )
        .expect("sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    };
    // Requests in parallel all get the same, complete answer.
    let by_pod =
        "/allocation?window=2024-06-01T00%3A00%3A00Z%2C2024-07-01T00%3A00%3A00Z&aggregate=pod";
    let parallel: Vec<Option<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8).map(|_| scope.spawn(|| get(by_pod))).collect();
        workers
            .into_iter()
            .map(|w| w.join().ok().flatten())
            .collect()
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.contains("\"2024-06\""), "{status}");
    let response = response.expect("an answer");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value = serde_json::from_str(
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default(),
    )
    .expect("JSON body");
    let missing = missing.expect("an answer");
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    assert!(missing.contains("costMetric"), "{missing}");
    let openapi = openapi.expect("an answer");
    assert!(openapi.starts_with("HTTP/1.1 200"), "{openapi}");
    assert!(openapi.contains("\"openapi\": \"3.1.0\""), "{openapi}");
    assert!(not_allowed.starts_with("HTTP/1.1 405"), "{not_allowed}");
    assert!(
        not_allowed
            .to_ascii_lowercase()
            .contains("allow: get, head"),
        "{not_allowed}"
    );
    let body_of = |response: &str| {
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    let first = parallel[0].as_deref().map(body_of).expect("an answer");
    assert!(first.contains("\"pod\""), "{first}");
    for response in &parallel {
        let response = response.as_deref().expect("every request is answered");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(body_of(response), first);
    }

    let out = kubecur(&[
        "allocate",
        "--cur",
        &legacy(),
        "--period",
        "2024-06",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = local["rows"].as_array().expect("rows");
    let set = body["data"][0].as_object().expect("one set");
    assert_eq!(set.len(), rows.len(), "{body}");
    for row in rows {
        let name = row["namespace"].as_str().expect("namespace");
        let served = set[name]["amortizedNetCost"].as_f64().expect("served cost");
        let allocated = row["amortizedNetCost"].as_f64().expect("allocated cost");
        assert!(
            (served - allocated).abs() < 1e-6,
            "{name}: {served} vs {allocated}"
        );
        assert_eq!(set[name]["lineItems"], row["lineItems"], "{name}");
    }
}

//! The `kubecur` binary as a user runs it: exit codes, output formats, messages.

use std::collections::BTreeMap;
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
    // `resources` (distinct resources over the window) for several windows and aggregates, from the
    // snapshot the API serves: compared with `kubecur allocate`, which counts in SQL, below.
    let windows = [
        ("2024-06-01", "2024-07-01"),
        ("2024-06-03", "2024-06-10"),
        ("2024-06-15", "2024-06-16"),
        ("2024-05-20", "2024-06-05"),
    ];
    let aggregates = [
        "namespace",
        "service",
        "account",
        "cluster,deployment",
        "namespace,pod",
        "day,namespace",
    ];
    let mut served_resources = Vec::new();
    for (from, to) in windows {
        for aggregate in aggregates {
            let path = format!(
                "/allocation?window={from}T00%3A00%3A00Z%2C{to}T00%3A00%3A00Z&aggregate={aggregate}"
            );
            // HTTP/1.0: the server then sends large bodies whole rather than chunked.
            let response = (|| {
                let mut stream = std::net::TcpStream::connect(&listen).ok()?;
                write!(stream, "GET {path} HTTP/1.0\r\nHost: {listen}\r\n\r\n").ok()?;
                let mut response = String::new();
                stream.read_to_string(&mut response).ok()?;
                Some(response)
            })()
            .unwrap_or_else(|| panic!("{path}: no answer"));
            assert!(
                response.lines().next().is_some_and(|l| l.contains(" 200 ")),
                "{path}: {response}"
            );
            let body: serde_json::Value = serde_json::from_str(
                response
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b)
                    .unwrap_or_default(),
            )
            .expect("JSON body");
            served_resources.push((from, to, aggregate, body));
        }
    }
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

    let mut compared = 0;
    let mut nonzero = 0;
    for (from, to, aggregate, body) in served_resources {
        let out = kubecur(&[
            "allocate",
            "--cur",
            &legacy(),
            "--from",
            from,
            "--to",
            to,
            "--aggregate",
            aggregate,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let local: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let rows = local["rows"].as_array().expect("rows");
        let context = format!("{from}..{to} by {aggregate}");
        let mut served = BTreeMap::new();
        for set in body["data"].as_array().expect("sets") {
            for (name, item) in set.as_object().expect("a set") {
                served.insert(name.clone(), item["resources"].clone());
            }
        }
        let mut allocated = BTreeMap::new();
        for row in rows {
            let name = aggregate
                .split(',')
                .map(|d| row[d].as_str().expect("key").to_string())
                .collect::<Vec<_>>()
                .join("/");
            allocated.insert(name, row["resources"].clone());
        }
        assert_eq!(served, allocated, "{context}: API vs CLI resources");
        compared += allocated.len();
        nonzero += allocated.values().filter(|r| r.as_u64() > Some(0)).count();
    }
    assert!(nonzero > 50, "{nonzero} of {compared} rows count resources");
}

/// Every data file under `dir` whose path contains `needle` and ends with `extension`.
fn data_files(dir: &Path, needle: &str, extension: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("listable") {
                stack.push(entry.expect("entry").path());
            }
        } else {
            let text = path.display().to_string();
            if text.contains(needle) && text.ends_with(extension) && !text.contains("metadata") {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no {needle} {extension} files in {}",
        dir.display()
    );
    out
}

/// `(line items, total)` of `kubecur allocate --period 2024-06 --format json`, and its stderr.
fn june_totals(cur: &Path) -> ((u64, f64), String) {
    let out = kubecur(&[
        "allocate",
        "--cur",
        &cur.display().to_string(),
        "--period",
        "2024-06",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let summary = &json["summary"];
    (
        (
            summary["lineItems"].as_u64().expect("line items"),
            summary["total"].as_f64().expect("total"),
        ),
        text(&out.stderr),
    )
}

/// Writes a file and sets its modification time (the delivery order manifests are compared by).
fn write_at(path: &Path, bytes: &[u8], seconds: u64) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("folder");
    std::fs::write(path, bytes).expect("written");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
        .expect("mtime set");
}

/// Two deliveries of June side by side ("create new report version"): with their manifests only the
/// newest is read; without, both are read, and the user is warned.
#[test]
fn only_the_newest_delivery_of_a_month_is_read_when_manifests_say_which() {
    // Legacy CUR layout: <report>/yyyymmdd-yyyymmdd/<assemblyId>/…, manifests with reportKeys
    // (https://docs.aws.amazon.com/cur/latest/userguide/understanding-report-versions.html).
    let june = data_files(&sample_dir().join("legacy-parquet"), "month=6", ".parquet");
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("report");
    let month = report.join("20240601-20240701");
    let mut keys = [Vec::new(), Vec::new()];
    for (n, assembly) in ["a-1", "a-2"].iter().enumerate() {
        // The second delivery holds only the first file: its total differs from the first's.
        let files = if n == 0 { &june[..] } else { &june[..1] };
        for (i, file) in files.iter().enumerate() {
            let name = format!("report-{i}.snappy.parquet");
            write_at(
                &month.join(assembly).join(&name),
                &std::fs::read(file).expect("readable"),
                1_717_200_000,
            );
            keys[n].push(format!("cur/report/20240601-20240701/{assembly}/{name}"));
        }
    }
    let only_newest = tempfile::tempdir().expect("temporary directory");
    for (i, _) in keys[1].iter().enumerate() {
        let name = format!("report-{i}.snappy.parquet");
        std::fs::copy(
            month.join("a-2").join(&name),
            only_newest.path().join(&name),
        )
        .expect("copied");
    }
    let (expected, _) = june_totals(only_newest.path());
    let (single_a1, _) = june_totals(&month.join("a-1"));

    let (both, stderr) = june_totals(&report);
    assert_eq!(
        both.0,
        expected.0 + single_a1.0,
        "without manifests both deliveries are read"
    );
    assert!(
        stderr.contains("2024-06 has data files in 2 folders") && stderr.contains("a-1"),
        "{stderr}"
    );

    let manifest = |assembly: &str, keys: &[String]| {
        serde_json::json!({
            "assemblyId": assembly,
            "reportKeys": keys,
            "billingPeriod": {"start": "20240601T000000.000Z", "end": "20240701T000000.000Z"},
        })
        .to_string()
    };
    write_at(
        &month.join("a-1/report-Manifest.json"),
        manifest("a-1", &keys[0]).as_bytes(),
        1_717_300_000,
    );
    write_at(
        &month.join("a-2/report-Manifest.json"),
        manifest("a-2", &keys[1]).as_bytes(),
        1_717_400_000,
    );
    // The month's own manifest describes the latest delivery.
    write_at(
        &month.join("report-Manifest.json"),
        manifest("a-2", &keys[1]).as_bytes(),
        1_717_400_001,
    );
    let (newest, stderr) = june_totals(&report);
    assert_eq!(newest.0, expected.0, "{stderr}");
    assert!(
        (newest.1 - expected.1).abs() < 1e-6,
        "{newest:?} vs {expected:?}"
    );
    assert!(!stderr.contains("folders"), "{stderr}");

    // A newest manifest listing a file that is not there: refused, naming it.
    let mut listed = keys[1].clone();
    listed.push("cur/report/20240601-20240701/a-3/report-9.snappy.parquet".into());
    write_at(
        &month.join("a-3/report-Manifest.json"),
        manifest("a-3", &listed).as_bytes(),
        1_717_500_000,
    );
    let out = kubecur(&[
        "allocate",
        "--cur",
        &report.display().to_string(),
        "--period",
        "2024-06",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a-3/report-9.snappy.parquet"),
        "{}",
        text(&out.stderr)
    );
}

/// The same for a CUR 2.0 / FOCUS export with `CREATE_NEW_REPORT`: `metadata/BILLING_PERIOD=…`
/// manifests with `executionId` and `dataFiles`
/// (https://docs.aws.amazon.com/cur/latest/userguide/dataexports-manifest.html).
#[test]
fn a_data_export_reads_the_files_of_its_newest_manifest() {
    let june = data_files(
        &sample_dir().join("focus-csv"),
        "BILLING_PERIOD=2024-06",
        ".csv",
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let export = dir.path().join("kubecur-focus");
    let mut uris = [Vec::new(), Vec::new()];
    for (n, execution) in ["20240602T010000Z-e1", "20240603T010000Z-e2"]
        .iter()
        .enumerate()
    {
        let files = if n == 0 { &june[..1] } else { &june[..] };
        for (i, file) in files.iter().enumerate() {
            let relative = format!("data/BILLING_PERIOD=2024-06/{execution}/kubecur-focus-{i}.csv");
            write_at(
                &export.join(&relative),
                &std::fs::read(file).expect("readable"),
                1_717_200_000,
            );
            uris[n].push(format!("s3://bucket/exports/kubecur-focus/{relative}"));
        }
    }
    let (only_e2, _) = june_totals(&export.join("data/BILLING_PERIOD=2024-06/20240603T010000Z-e2"));
    for (n, execution) in ["20240602T010000Z-e1", "20240603T010000Z-e2"]
        .iter()
        .enumerate()
    {
        let manifest = serde_json::json!({
            "executionId": format!("e{}", n + 1),
            "dataFiles": uris[n],
            "billingPeriod": {"start": "2024-06-01T00:00:00.000Z"},
        });
        write_at(
            &export.join(format!(
                "metadata/BILLING_PERIOD=2024-06/{execution}/kubecur-focus-Manifest.json"
            )),
            manifest.to_string().as_bytes(),
            1_717_300_000 + n as u64 * 86_400,
        );
    }
    let (newest, stderr) = june_totals(&export);
    assert_eq!(newest.0, only_e2.0, "{stderr}");
    assert!(
        (newest.1 - only_e2.1).abs() < 1e-6,
        "{newest:?} vs {only_e2:?}"
    );
}

/// The README's worked example (docs/examples/shared-rds): payments, search and checkout spend 600,
/// 300 and 100 on S3 in June 2024; an untagged RDS database they all use costs 900.
fn shared_rds(extra: &[&str]) -> (Output, BTreeMap<String, (f64, f64)>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/shared-rds");
    let cur = root.join("cur").display().to_string();
    let mut args = vec![
        "allocate", "--cur", &cur, "--period", "2024-06", "--metric", "listCost", "--format", "csv",
    ];
    let rules: Vec<String> = extra
        .iter()
        .map(|a| match a.strip_prefix("rules:") {
            Some(file) => root.join(file).display().to_string(),
            None => a.to_string(),
        })
        .collect();
    args.extend(rules.iter().map(String::as_str));
    let out = kubecur(&args);
    let mut rows = BTreeMap::new();
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    if out.status.success() {
        assert_eq!(
            lines.next(),
            Some("namespace,listCost,sharedCost"),
            "{stdout}"
        );
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| cells[i].parse::<f64>().expect("a number");
            rows.insert(cells[0].to_string(), (number(1), number(2)));
        }
    }
    (out, rows)
}

#[test]
fn a_rule_selecting_by_resource_id_takes_that_resource_only() {
    // checkout's bucket (100) by its id, evenly to payments and search; the RDS (900) stays untagged.
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": [{"name": "assets", "select": {"resource": "checkout-assets"},
                       "target": {"namespace": ["payments", "search"]}, "split": "even"}]}"#,
    )
    .expect("written");
    let rules = rules.display().to_string();
    let (out, rows) = shared_rds(&["--share-rules", &rules]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (namespace, total, shared) in [
        ("payments", 650.0, 50.0),
        ("search", 350.0, 50.0),
        ("__unallocated__", 900.0, 0.0),
    ] {
        let (got_total, got_shared) = rows[namespace];
        assert!(
            close(got_total, total) && close(got_shared, shared),
            "{namespace}: {got_total} ({got_shared} shared)"
        );
    }
    // An id no line item has selects nothing: a warning, and nothing moves.
    std::fs::write(
        dir.path().join("none.json"),
        r#"{"rules": [{"name": "gone", "select": {"resource": "db-that-was-deleted"}}]}"#,
    )
    .expect("written");
    let none = dir.path().join("none.json").display().to_string();
    let (out, rows) = shared_rds(&["--share-rules", &none]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("gone"), "{}", text(&out.stderr));
    assert!(close(rows["__unallocated__"].0, 900.0), "{rows:?}");
}

#[test]
fn the_readme_shared_rds_example_splits_by_weight_evenly_and_by_percentages() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    for (extra, expected) in [
        // Weighted by own cost 600 : 300 : 100 → 540, 270, 90.
        (
            vec!["--share-rules", "rules:share-rules.json"],
            [
                ("payments", 1140.0, 540.0),
                ("search", 570.0, 270.0),
                ("checkout", 190.0, 90.0),
            ],
        ),
        // Even: 300 each.
        (
            vec!["--share-unallocated", "--share-split", "even"],
            [
                ("payments", 900.0, 300.0),
                ("search", 600.0, 300.0),
                ("checkout", 400.0, 300.0),
            ],
        ),
        // Fixed percentages 50 / 30 / 20 → 450, 270, 180.
        (
            vec!["--share-rules", "rules:share-rules-percent.json"],
            [
                ("payments", 1050.0, 450.0),
                ("search", 570.0, 270.0),
                ("checkout", 280.0, 180.0),
            ],
        ),
        // The database selected by its resource id, weighted: as the first.
        (
            vec!["--share-rules", "rules:share-rules-resource.json"],
            [
                ("payments", 1140.0, 540.0),
                ("search", 570.0, 270.0),
                ("checkout", 190.0, 90.0),
            ],
        ),
    ] {
        let (out, rows) = shared_rds(&extra);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(
            rows.len(),
            3,
            "{extra:?}: the untagged RDS left the answer: {rows:?}"
        );
        for (namespace, total, shared) in expected {
            let (got_total, got_shared) = rows[namespace];
            assert!(
                close(got_total, total) && close(got_shared, shared),
                "{extra:?} {namespace}: {got_total} ({got_shared} shared), expected {total} ({shared})"
            );
        }
        let sum: f64 = rows.values().map(|(t, _)| t).sum();
        assert!(
            close(sum, 1900.0),
            "{extra:?}: the June total is 1,900, got {sum}"
        );
    }
    // The table shows the SHARED column and what each rule moved.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/shared-rds");
    let out = kubecur(&[
        "allocate",
        "--cur",
        &root.join("cur").display().to_string(),
        "--period",
        "2024-06",
        "--metric",
        "listCost",
        "--share-rules",
        &root.join("share-rules.json").display().to_string(),
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("SHARED"), "{stdout}");
    assert!(
        stdout.contains("shared by `shared RDS`: 900.00 listCost from 30 line items in 1 groups"),
        "{stdout}"
    );
}

/// `kubecur allocate` on docs/examples/labels (June 1: 340 in all) as CSV: the header and, per row,
/// the first cell and the numbers after it.
fn labels_example(extra: &[&str]) -> (Output, String, BTreeMap<String, Vec<f64>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/labels");
    let cur = root.join("cur").display().to_string();
    let rules = root.join("share-platform-logs.json").display().to_string();
    let mut args = vec![
        "allocate", "--cur", &cur, "--period", "2024-06", "--metric", "listCost", "--format", "csv",
    ];
    args.extend(
        extra
            .iter()
            .map(|a| if *a == "RULES" { rules.as_str() } else { a }),
    );
    let out = kubecur(&args);
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let numbers = cells[1..]
                .iter()
                .map(|c| c.parse().expect("a number"))
                .collect();
            (cells[0].to_string(), numbers)
        })
        .collect();
    (out, header, rows)
}

#[test]
fn the_readme_labels_example_aggregates_and_shares_by_any_tag() {
    // By the `team` tag: hand sums of the five line items.
    let (out, header, rows) = labels_example(&["--aggregate", "label:team"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(header, "label:team,listCost");
    let expected: BTreeMap<String, Vec<f64>> = [
        ("payments", 140.0),
        ("platform", 90.0),
        ("search", 60.0),
        ("__unallocated__", 50.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![v]))
    .collect();
    assert_eq!(rows, expected);
    // The platform team's 90 shared by namespace. Weighted at (namespace, team): payments 100,
    // search 60 + 40, checkout 50 → 36, 36, 18. Even: 30 per namespace. The rules file: 45 to each
    // of payments and search.
    for (extra, expected) in [
        (
            vec!["--share-labels", "team:platform"],
            [
                ("payments", 136.0, 36.0),
                ("search", 136.0, 36.0),
                ("checkout", 68.0, 18.0),
            ],
        ),
        (
            vec!["--share-labels", "team:platform", "--share-split", "even"],
            [
                ("payments", 130.0, 30.0),
                ("search", 130.0, 30.0),
                ("checkout", 80.0, 30.0),
            ],
        ),
        (
            vec!["--share-rules", "RULES"],
            [
                ("payments", 145.0, 45.0),
                ("search", 145.0, 45.0),
                ("checkout", 50.0, 0.0),
            ],
        ),
    ] {
        let (out, header, rows) = labels_example(&extra);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(header, "namespace,listCost,sharedCost", "{extra:?}");
        assert_eq!(rows.len(), expected.len(), "{extra:?}: {rows:?}");
        for (namespace, total, shared) in expected {
            let got = &rows[namespace];
            assert!(
                (got[0] - total).abs() < 1e-9 && (got[1] - shared).abs() < 1e-9,
                "{extra:?} {namespace}: {got:?}, expected {total} ({shared} shared)"
            );
        }
    }
    // Filtered to the payments team (after sharing, as the API filters): its ledger (100) and its
    // search domain (40); with the platform's 90 shared by weight (100 and 40 of 250), 136 and 54.4.
    for (extra, expected) in [
        (
            vec!["--filter-labels", "team:payments"],
            vec![("payments", vec![100.0]), ("search", vec![40.0])],
        ),
        (
            vec![
                "--filter-labels",
                "team:payments",
                "--share-labels",
                "team:platform",
            ],
            vec![
                ("payments", vec![136.0, 36.0]),
                ("search", vec![54.4, 14.4]),
            ],
        ),
    ] {
        let (out, _, rows) = labels_example(&extra);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(rows.len(), expected.len(), "{extra:?}: {rows:?}");
        for (namespace, figures) in expected {
            let got = &rows[namespace];
            assert_eq!(got.len(), figures.len(), "{extra:?} {namespace}: {got:?}");
            for (g, e) in got.iter().zip(&figures) {
                assert!(
                    (g - e).abs() < 1e-9,
                    "{extra:?} {namespace}: {got:?}, expected {figures:?}"
                );
            }
        }
    }
    for (extra, needle) in [
        (vec!["--filter-labels", "team"], "--filter-labels"),
        (vec!["--aggregate", "label:"], "empty"),
        (vec!["--share-labels", "team"], "--share-labels"),
        (vec!["--share-labels", "team:"], "--share-labels"),
    ] {
        let (out, _, _) = labels_example(&extra);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(needle),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bad_share_arguments_exit_2_naming_the_rule_and_the_field() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bad = dir.path().join("rules.json");
    std::fs::write(
        &bad,
        r#"{"rules": [{"name": "shared RDS", "select": {"service": "AmazonRDS"}, "split": {"percent": {"payments": 60, "search": 30}}}]}"#,
    )
    .expect("written");
    let bad = bad.display().to_string();
    for (extra, needles) in [
        (
            vec!["--share-rules", bad.as_str()],
            vec!["rules.json", "`shared RDS`", "split.percent", "90"],
        ),
        (vec!["--share-cost", "NaN"], vec!["--share-cost", "NaN"]),
        (
            vec!["--share-split", "fair", "--share-unallocated"],
            vec!["--share-split", "fair"],
        ),
        (
            vec!["--share-split", "even"],
            vec!["give something to share"],
        ),
        (
            vec!["--share-namespaces", " , "],
            vec!["--share-namespaces", "empty"],
        ),
    ] {
        let (out, _) = shared_rds(&extra);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{extra:?}: missing `{needle}` in {stderr}"
            );
        }
    }
    // A fixed amount needs a window to be pro-rated over.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/shared-rds/cur");
    let out = kubecur(&[
        "allocate",
        "--cur",
        &root.display().to_string(),
        "--share-cost",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("pro-rated to the window"),
        "{}",
        text(&out.stderr)
    );
}

/// Built without the feature `aws` (the README's quick start), the AWS commands stop at once with the
/// build that has them; bad arguments are still refused as such. Runs in that build only:
/// `cargo test --release -p kubecur --no-default-features --test cli`.
#[cfg(not(feature = "aws"))]
#[test]
fn without_the_aws_feature_the_aws_commands_name_the_build_that_has_them() {
    for args in [
        &["doctor"][..],
        &["setup", "tags"],
        &[
            "serve",
            "--api",
            "https://abc.execute-api.eu-west-1.amazonaws.com",
        ],
    ] {
        let out = kubecur(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("built without the AWS commands"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("cargo build --release -p kubecur"),
            "{args:?}: {stderr}"
        );
    }
    let out = kubecur(&["doctor", "--name-prefix", " "]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--name-prefix must not be empty"));
}

/// Issue 12 (scale): `--max-groups` bounds the groups held at a time; an allocation with more is made
/// in passes and sorted through temporary files. The output must not change: CSV and JSON byte for
/// byte (the summary's sums are added in another order, so JSON is compared without them), and
/// a nonsense limit is refused.
#[test]
fn max_groups_changes_memory_not_the_answer() {
    let full_grain = "day,cluster,namespace,deployment,pod,daemonset,container,service,account";
    let run = |format: &str, extra: &[&str]| {
        let cur = legacy();
        let mut args = vec![
            "allocate",
            "--cur",
            &cur,
            "--aggregate",
            full_grain,
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        let out = kubecur(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (whole, _) = run("csv", &[]);
    let rows = whole.lines().count() - 1;
    assert!(rows > 500, "many groups: {rows}");
    let (parts, stderr) = run("csv", &["--max-groups", "40"]);
    assert!(
        parts == whole,
        "the CSV changed with --max-groups 40 (stderr: {stderr})"
    );
    let json = |text: &str| {
        let mut value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        let summary = value["summary"].take();
        (value, summary)
    };
    let (whole, whole_summary) = json(&run("json", &[]).0);
    let (parts, parts_summary) = json(&run("json", &["--max-groups", "100"]).0);
    assert_eq!(parts, whole);
    for field in ["lineItems", "rows", "warnings", "metric"] {
        assert_eq!(parts_summary[field], whole_summary[field], "{field}");
    }
    let total = |s: &serde_json::Value| s["total"].as_f64().expect("a total");
    assert!((total(&parts_summary) - total(&whole_summary)).abs() < 1e-6);

    let out = kubecur(&["allocate", "--cur", &legacy(), "--max-groups", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--max-groups"),
        "{}",
        text(&out.stderr)
    );
}

//! Bad CUR input as a user meets it through the binary: the exit code and the message (issue 9).

use std::process::{Command, Output, Stdio};

fn kubecur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubecur"))
        .args(args)
        .output()
        .expect("kubecur runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir_with(name: &str, contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(name), contents).expect("write");
    dir
}

fn path(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

const HEADER: &str = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId,resourceTags/user:kubernetes_namespace";

#[test]
fn nan_and_overflowing_costs_exit_2_naming_file_row_and_column() {
    for bad in ["NaN", "1e400"] {
        let csv = format!(
            "{HEADER}\n2024-06-01T00:00:00Z,1.5,AmazonRDS,111122223333,payments\n2024-06-01T00:00:00Z,{bad},AmazonRDS,111122223333,web\n"
        );
        let dir = dir_with("cur-00001.csv", &csv);
        let out = kubecur(&["allocate", "--cur", &path(&dir)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        for needle in ["cur-00001.csv", "data row 2", "line_item_unblended_cost"] {
            assert!(stderr.contains(needle), "{bad}: no `{needle}` in {stderr}");
        }
        assert!(text(&out.stdout).is_empty(), "{bad}: printed a result");
    }
}

#[test]
fn focus_export_with_null_tags_allocates_with_one_warning() {
    let csv = concat!(
        "ChargePeriodStart,BilledCost,EffectiveCost,ListCost,ServiceName,SubAccountId,ResourceId,Tags\n",
        "2024-06-01T00:00:00Z,1,1,1,Amazon RDS,111122223333,db-1,\"{\"\"kubernetes_namespace\"\":\"\"payments\"\"}\"\n",
        "2024-06-01T00:00:00Z,2,2,2,Amazon RDS,111122223333,db-2,NULL\n",
        "2024-06-01T00:00:00Z,4,4,4,Amazon RDS,111122223333,db-3,NULL\n",
    );
    let dir = dir_with("focus.csv", csv);
    let out = kubecur(&["allocate", "--cur", &path(&dir), "--format", "json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("unreadable tags"))
            .collect::<Vec<_>>(),
        ["warning: 2 line items had unreadable tags; their cost is in `__unallocated__`"]
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let total: f64 = json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["amortizedNetCost"].as_f64().expect("a cost"))
        .sum();
    assert_eq!(total, 7.0, "{json}");
}

#[test]
fn serve_starts_when_a_line_item_has_no_usage_date() {
    use std::io::{Read, Write};
    let csv = format!(
        "{HEADER}\n2024-06-01T00:00:00Z,1.5,AmazonRDS,111122223333,payments\n,2.5,AmazonRDS,111122223333,web\n"
    );
    let dir = dir_with("cur.csv", &csv);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_kubecur"))
        .args(["serve", "--cur", &path(&dir), "--listen", &listen])
        .stderr(Stdio::piped())
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(response) = get("/status") {
            break Some(response);
        }
        if std::time::Instant::now() > deadline || server.try_wait().ok().flatten().is_some() {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = server.kill();
    let output = server.wait_with_output().expect("serve output");
    let stderr = text(&output.stderr);
    let status = status.unwrap_or_else(|| panic!("serve did not start: {stderr}"));
    assert!(status.contains("\"2024-06\""), "{status}");
    assert!(
        status.contains("1 line items have no usage date"),
        "{status}"
    );
    assert!(
        stderr.contains("1 line items have no usage date (amortizedNetCost 2.50)"),
        "{stderr}"
    );
}

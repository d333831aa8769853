//! The writer's peak memory on a large query result (issue: bounded writer memory), measured on the
//! deployed code path against moto server: the result CSV streams from S3 through the S3 adapter, the
//! snapshot is built row by row and written to DynamoDB in batches. `bench/writer_memory.sh` runs it.
//!
//! `cargo run --release -p kubecur-tests --example writer_memory -- [ROWS] [DAYS]` (defaults 200000, 30).
//! The writer has the deployed function's memory budget (1,024 MB, `pipeline::snapshot_budget_bytes`)
//! and says so when it refuses a result; `NO_BUDGET=1` turns the budget off to measure any shape.
//!
//! The result has ROWS full-grain rows: ROWS / DAYS groups (a pod, its containers and services) with
//! one row per usage day, as Athena returns them for a month. Its header is the real allocation query's
//! (taken from a local run on a small sample), so the writer reads it exactly as it reads Athena's.
//!
//! Peak memory is the process's high-water mark of resident memory (`VmHWM`), reset just before the
//! writer runs (Linux: writing 5 to `/proc/self/clear_refs`), so it is the writer's own peak; the
//! resident memory before it (the SDK clients, the test harness) is printed beside it.

use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::pipeline::writer::WriterOutcome;
use kubecur_shared::sample::{write_sample, SampleOutput, SampleSpec};
use kubecur_tests::pipeline::{local_allocation_result, AwsEnv};
use std::io::Write;
use std::time::Instant;

/// A figure of `/proc/self/status` in MB (`VmHWM`, `VmRSS`).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

/// One cell of generated row `i` for `column` (Athena's CSV: every cell quoted).
fn cell(column: &str, i: u64, days: u64) -> String {
    let group = i / days;
    let day = i % days + 1;
    match column {
        "day" => format!("2024-06-{day:02}"),
        "cluster" => "prod-eu".into(),
        "namespace" => format!("ns-{}", group % 40),
        "deployment" => format!("deploy-{}", group % 900),
        "pod" => format!("pod-{group}"),
        "daemonset" => "__unallocated__".into(),
        "container" => format!("container-{}", group % 5),
        "service" => {
            ["AmazonRDS", "AmazonS3", "AmazonEC2", "AmazonDynamoDB"][(group % 4) as usize].into()
        }
        "account" => "111122223333".into(),
        "allocated" => "1".into(),
        // Two resources per group, one of them shared with the next group.
        "resource_hashes" => format!("{:016x} {:016x}", group * 2 + 1, group * 2 + 2),
        "line_items" => "3".into(),
        c if c.starts_with("tag_source_") => "3".into(),
        // The four cost metrics and anything else numeric.
        _ => format!("{}.{:04}", (i * 7919) % 1000, i % 10_000),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse().expect("ROWS must be a number"))
        .unwrap_or(200_000);
    let days: u64 = args
        .next()
        .map(|a| a.parse().expect("DAYS must be a number from 1 to 30"))
        .unwrap_or(30);
    assert!((1..=30).contains(&days), "DAYS must be from 1 to 30");
    let june = BillingPeriod {
        year: 2024,
        month: 6,
    };

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = SampleSpec::new(2_000);
    spec.outputs = vec![SampleOutput::Cur2Parquet];
    write_sample(dir.path(), &spec, |_| {}).expect("sample written");
    let env = AwsEnv::start(&dir.path().join(SampleOutput::Cur2Parquet.dir_name())).await;
    let header = local_allocation_result(&env.export, &env.columns, june)
        .await
        .columns;

    // The query starts on the sample's small result; its output object is then replaced by the large one.
    env.seed_athena(june).await;
    let query = env
        .ingest_started(&env.manifest_event(june, "2024-07-01T06:00:00Z"))
        .await;
    let output = env
        .clients
        .athena
        .get_query_execution()
        .query_execution_id(&query)
        .send()
        .await
        .expect("described")
        .query_execution()
        .and_then(|q| q.result_configuration())
        .and_then(|c| c.output_location())
        .expect("an output location")
        .to_string();
    let (bucket, key) = output
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an s3:// output location");

    let csv = dir.path().join("result.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&csv).expect("result file"));
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let line = |cells: Vec<String>| cells.join(",") + "\n";
    file.write_all(line(header.iter().map(|c| quote(c)).collect()).as_bytes())
        .expect("written");
    for i in 0..rows {
        let cells = header.iter().map(|c| quote(&cell(c, i, days))).collect();
        file.write_all(line(cells).as_bytes()).expect("written");
    }
    file.flush().expect("written");
    drop(file);
    let bytes = std::fs::metadata(&csv).expect("result file").len();
    env.clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(
            aws_sdk_s3::primitives::ByteStream::from_path(&csv)
                .await
                .expect("readable"),
        )
        .send()
        .await
        .expect("result uploaded");

    let mut writer = env.writer();
    writer.snapshot_budget_bytes = if std::env::var_os("NO_BUDGET").is_some() {
        u64::MAX
    } else {
        kubecur_shared::pipeline::snapshot_budget_bytes(Some(1_024))
    };
    let before = status_mb("VmRSS");
    std::fs::write("/proc/self/clear_refs", "5").expect("peak memory reset (Linux)");
    let started = Instant::now();
    let outcome = env.write(&writer, &query, "SUCCEEDED").await;
    let elapsed = started.elapsed().as_secs_f64();
    let peak = status_mb("VmHWM");
    let groups = match outcome {
        WriterOutcome::Published { groups, .. } => groups,
        WriterOutcome::Failed { reason, .. } => {
            println!(
                "writer: {rows} result rows refused after {elapsed:.1} s, peak resident memory {peak:.0} MB: {reason}"
            );
            return;
        }
        other => panic!("the snapshot was not published: {other:?}"),
    };
    println!(
        "writer: {rows} result rows ({:.0} MB of CSV), {groups} snapshot items, {elapsed:.1} s, peak resident memory {peak:.0} MB (resident before the writer ran: {before:.0} MB)",
        bytes as f64 / 1e6,
    );
}

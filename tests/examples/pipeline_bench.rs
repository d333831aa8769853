//! The AWS pipeline's request budget, measured against moto server (bench/pipeline.sh runs it):
//! DynamoDB requests the writer makes per snapshot item, and DynamoDB round trips per API request.
//!
//! `cargo run --release -p kubecur-tests --example pipeline_bench -- [ROWS]` (default 200000 line items).
//! moto does not cut `Query` pages at 1 MB as DynamoDB does, so the namespace level's size is printed
//! too, with the number of 1 MB pages it takes on DynamoDB.

use kubecur_shared::adapters::aws::dynamo::{group_item, BATCH_WRITE_LIMIT};
use kubecur_shared::domain::snapshot::Level;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::ports::SnapshotReader;
use kubecur_shared::sample::{write_sample, SampleOutput, SampleSpec};
use kubecur_tests::pipeline::AwsEnv;
use std::sync::atomic::Ordering;

const PAGE: f64 = 1024.0 * 1024.0;

fn item_bytes(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    // DynamoDB item size: attribute names plus values (strings as UTF-8 bytes, binary as its bytes).
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    aws_sdk_dynamodb::types::AttributeValue::S(text) => text.len(),
                    aws_sdk_dynamodb::types::AttributeValue::B(blob) => blob.as_ref().len(),
                    _ => 8,
                }
        })
        .sum()
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS must be a number"))
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = SampleSpec::new(rows);
    spec.outputs = vec![SampleOutput::Cur2Parquet];
    write_sample(dir.path(), &spec, |_| {}).expect("sample written");
    let env = AwsEnv::start(&dir.path().join(SampleOutput::Cur2Parquet.dir_name())).await;
    let june = BillingPeriod {
        year: 2024,
        month: 6,
    };

    for (delivery, time) in [
        ("first delivery", "2024-07-01T06:00:00Z"),
        (
            "second delivery (replaces the first, expires its items)",
            "2024-07-02T06:00:00Z",
        ),
    ] {
        if delivery.starts_with("second") {
            env.redeliver(june, "bench-2").await;
        }
        env.seed_athena(june).await;
        let query = env.ingest_started(&env.manifest_event(june, time)).await;
        let writer = env.writer();
        env.write(&writer, &query, "SUCCEEDED").await;
        let counts = writer.store.counts();
        let pointer = env.store().pointers(&[june]).await.expect("pointer");
        let info = pointer[0].serving.clone().expect("serving");
        let items: u64 = info.groups.iter().sum();
        let batches = counts.batch_writes.load(Ordering::Relaxed);
        let minimum = (items as f64 / BATCH_WRITE_LIMIT as f64).ceil();
        println!(
            "writer, {delivery}: {items} snapshot items, {batches} BatchWriteItem requests (minimum for the snapshot: {minimum}), ratio {:.3}, plus {} other requests",
            batches as f64 / minimum,
            counts.other.load(Ordering::Relaxed) + counts.queries.load(Ordering::Relaxed),
        );
    }

    let store = env.store();
    let pointer = store.pointers(&[june]).await.expect("pointer");
    let info = pointer[0].serving.clone().expect("serving");
    for level in Level::ALL {
        let groups = store.groups(&info, level).await.expect("groups");
        let bytes: usize = groups
            .iter()
            .map(|g| item_bytes(&group_item(&info, g).expect("encodable")))
            .sum();
        let per_group = bytes as f64 / groups.len().max(1) as f64;
        println!(
            "snapshot level {}: {} groups, {:.0} KiB, {:.0} bytes per group, {} Query page(s) of 1 MB on DynamoDB; 2 pages hold {:.0} such groups",
            level.name(),
            groups.len(),
            bytes as f64 / 1024.0,
            per_group,
            (bytes as f64 / PAGE).ceil().max(1.0),
            2.0 * PAGE / per_group,
        );
    }

    for (what, query) in [
        (
            "the June window (30 days) by namespace",
            "window=2024-06-01T00:00:00Z,2024-07-01T00:00:00Z&aggregate=namespace",
        ),
        (
            "the June window (30 days) by namespace, pod",
            "window=2024-06-01T00:00:00Z,2024-07-01T00:00:00Z&aggregate=namespace,pod",
        ),
        (
            "window across two billing months by namespace",
            "window=2024-05-15T00:00:00Z,2024-06-15T00:00:00Z&aggregate=namespace",
        ),
    ] {
        let counted = env.store();
        let request = kubecur_shared::api::ApiRequest {
            method: "GET".into(),
            path: "/allocation".into(),
            query: kubecur_shared::api::query_pairs(Some(query)).expect("valid"),
        };
        let today = chrono::NaiveDate::from_ymd_opt(2024, 7, 2).expect("valid");
        let response = kubecur_shared::api::handle(&counted, &request, today).await;
        assert_eq!(response.status, 200);
        println!(
            "API {what}: {} DynamoDB round trips on moto (1 pointer range query + 1 Query per billing month with a snapshot)",
            counted.counts().total()
        );
    }
}

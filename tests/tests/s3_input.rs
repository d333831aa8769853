//! `--cur s3://…`: the local engine reads a CUR export from S3 (moto server on loopback), through the
//! same credential and endpoint environment variables a user sets.

use kubecur_shared::adapters::datafusion::DataFusionQueryEngine;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{AllocationRequest, CostMetric, Dimension, UsageWindow};
use kubecur_shared::ports::NoProgress;
use kubecur_shared::sample::SampleOutput;
use kubecur_shared::service;
use kubecur_tests::{sample, Moto};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::Path;
use std::sync::Arc;

async fn upload(store: &dyn ObjectStore, local_root: &Path, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).expect("readable sample") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            Box::pin(upload(store, local_root, &path, prefix)).await;
            continue;
        }
        let relative = path
            .strip_prefix(local_root)
            .expect("below the root")
            .to_string_lossy()
            .replace('\\', "/");
        let key = ObjectPath::from(format!("{prefix}/{relative}"));
        let bytes = std::fs::read(&path).expect("readable file");
        store
            .put(&key, PutPayload::from(bytes))
            .await
            .expect("upload to moto");
    }
}

#[tokio::test]
async fn s3_export_allocates_like_the_same_files_on_disk() {
    let moto = Moto::start();
    // The engine reads these like any user's shell would provide them.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");

    let client = create_bucket(&moto.endpoint, "billing").await;
    assert!(client, "bucket created");
    let store = AmazonS3Builder::from_env()
        .with_bucket_name("billing")
        .build()
        .expect("S3 client");
    let local = sample().path(SampleOutput::Cur2Parquet);
    upload(&store, &local, &local, "exports/kubecur").await;

    let window = Some(UsageWindow::billing_period(
        BillingPeriod::parse("2024-06").expect("valid"),
    ));
    let request = AllocationRequest {
        window,
        group_by: vec![Dimension::Namespace],
        ..AllocationRequest::default()
    };
    let mut from_s3 =
        DataFusionQueryEngine::open("s3://billing/exports/kubecur", window, Arc::new(NoProgress))
            .await
            .expect("opens the S3 export");
    let mut from_disk =
        DataFusionQueryEngine::open(&local.display().to_string(), window, Arc::new(NoProgress))
            .await
            .expect("opens the local export");
    assert_eq!(
        from_s3.discovery().files.len(),
        from_disk.discovery().files.len()
    );
    let s3 = service::allocate(&mut from_s3, &request)
        .await
        .expect("allocates from S3");
    let disk = service::allocate(&mut from_disk, &request)
        .await
        .expect("allocates from disk");
    for metric in CostMetric::ALL {
        let (a, b) = (s3.summary(metric).total, disk.summary(metric).total);
        assert!(
            (a - b).abs() < 1e-6 * b.abs().max(1.0),
            "{metric}: S3 {a} vs disk {b}"
        );
    }
    assert_eq!(s3.rows.len(), disk.rows.len());

    odd_keys_are_read_as_the_objects_they_name(&store).await;

    let missing =
        DataFusionQueryEngine::open("s3://billing/no/such/prefix", None, Arc::new(NoProgress))
            .await;
    let err = missing
        .err()
        .expect("an empty prefix is an error")
        .to_string();
    assert!(
        err.contains("no CUR data files") && err.contains("s3://billing/no/such/prefix"),
        "{err}"
    );
}

/// Keys holding `#`, `?` and `%` (legal in S3: any UTF-8,
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>) are read as themselves,
/// not as a URL's fragment, query or percent escape. Each file holds a distinct power of two, and decoys
/// sit at the keys a misread URL would name, so any mix-up changes the total.
async fn odd_keys_are_read_as_the_objects_they_name(store: &dyn ObjectStore) {
    let header = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId\n";
    let files = [
        ("odd/2024#06/part-1.csv", 1.0),
        ("odd/part?2.csv", 2.0),
        ("odd/100%25-3.csv", 4.0),
        ("odd/50%-4.csv", 8.0),
        ("odd/a b+c-5.csv", 16.0),
    ];
    // Not data by name (no extension), so read only if a key is misread as one of them.
    let decoys = ["odd/2024", "odd/part"];
    for (key, cost) in files {
        let body = format!("{header}2024-06-01T00:00:00Z,{cost},AmazonS3,111122223333\n");
        let key = ObjectPath::parse(key).expect("a legal key");
        store
            .put(&key, PutPayload::from(body.into_bytes()))
            .await
            .expect("upload");
    }
    for key in decoys {
        let body = format!("{header}2024-06-01T00:00:00Z,1000,AmazonS3,111122223333\n");
        let key = ObjectPath::parse(key).expect("a legal key");
        store
            .put(&key, PutPayload::from(body.into_bytes()))
            .await
            .expect("upload");
    }
    let mut engine = DataFusionQueryEngine::open("s3://billing/odd", None, Arc::new(NoProgress))
        .await
        .expect("opens the odd keys");
    let request = AllocationRequest {
        group_by: vec![Dimension::Namespace],
        ..AllocationRequest::default()
    };
    let allocation = service::allocate(&mut engine, &request)
        .await
        .expect("allocates the odd keys");
    assert_eq!(
        allocation.totals().get(CostMetric::ListCost),
        31.0,
        "every file read once, as itself"
    );
    assert_eq!(engine.discovery().files.len(), files.len());
    assert_eq!(engine.discovery().skipped_unknown.len(), decoys.len());
}

/// Creates a bucket with a plain HTTP PUT (S3's CreateBucket), so the test needs no AWS SDK.
async fn create_bucket(endpoint: &str, bucket: &str) -> bool {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("moto reachable");
    let request = format!("PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response.starts_with("HTTP/1.1 200")
}

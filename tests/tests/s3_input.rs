//! `--cur s3://…`: the local engine reads a CUR export from S3 (moto server on loopback), through the
//! same credential and endpoint environment variables a user sets. It allocates like the same files on
//! disk, Parquet (projected column chunks through the object store) and gzip CSV alike; keys holding
//! `#`, `?` and `%` are read as themselves.

use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{AllocationRequest, CostMetric, Dimension, UsageWindow};
use kubecur_shared::ports::NoProgress;
use kubecur_shared::sample::{write_sample, SampleOutput, SampleSpec};
use kubecur_shared::service;
use kubecur_tests::Moto;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::Path;
use std::sync::Arc;

/// Creates a bucket with a plain HTTP PUT (S3's CreateBucket), so the test needs no AWS SDK.
fn create_bucket(endpoint: &str, bucket: &str) -> bool {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("moto reachable");
    let request = format!("PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response.starts_with("HTTP/1.1 200")
}

async fn upload(store: &dyn ObjectStore, root: &Path, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).expect("readable sample") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            Box::pin(upload(store, root, &path, prefix)).await;
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .replace('\\', "/");
        let key = ObjectPath::from(format!("{prefix}/{relative}"));
        store
            .put(
                &key,
                PutPayload::from(std::fs::read(&path).expect("readable")),
            )
            .await
            .expect("upload to moto");
    }
}

#[tokio::test]
async fn s3_exports_allocate_like_the_same_files_on_disk() {
    let moto = Moto::start();
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    assert!(create_bucket(&moto.endpoint, "billing"), "bucket created");
    let store = AmazonS3Builder::from_env()
        .with_bucket_name("billing")
        .build()
        .expect("S3 client");

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = SampleSpec::new(20_000);
    spec.rows_per_file = 8_000;
    spec.outputs = vec![SampleOutput::Cur2Parquet, SampleOutput::LegacyCsvGz];
    write_sample(dir.path(), &spec, |_| {}).expect("sample written");

    let window = Some(UsageWindow::billing_period(
        BillingPeriod::parse("2024-06").expect("valid"),
    ));
    let request = AllocationRequest {
        window,
        group_by: vec![Dimension::Namespace, Dimension::Service],
        resource_ids: true,
        ..AllocationRequest::default()
    };
    for output in spec.outputs.clone() {
        let local = dir.path().join(output.dir_name());
        let prefix = format!("exports/{}", output.dir_name());
        upload(&store, &local, &local, &prefix).await;
        let from_s3 = NativeEngine::open(
            &format!("s3://billing/{prefix}"),
            window,
            Arc::new(NoProgress),
        )
        .await
        .unwrap_or_else(|e| panic!("{output:?}: opens the S3 export: {e}"));
        let from_disk =
            NativeEngine::open(&local.display().to_string(), window, Arc::new(NoProgress))
                .await
                .expect("opens the local export");
        assert_eq!(
            from_s3.discovery().files.len(),
            from_disk.discovery().files.len(),
            "{output:?}"
        );
        let s3 = service::allocate(&from_s3, &request)
            .await
            .unwrap_or_else(|e| panic!("{output:?}: allocates from S3: {e}"));
        let disk = service::allocate(&from_disk, &request)
            .await
            .expect("allocates from disk");
        assert!(!disk.rows.is_empty(), "{output:?}");
        assert_eq!(s3.rows.len(), disk.rows.len(), "{output:?}");
        for (a, b) in s3.rows.iter().zip(&disk.rows) {
            assert_eq!(
                (&a.keys, a.allocated, a.line_items, &a.resource_ids),
                (&b.keys, b.allocated, b.line_items, &b.resource_ids),
                "{output:?}"
            );
            for metric in CostMetric::ALL {
                let (x, y) = (a.costs.get(metric), b.costs.get(metric));
                assert!(
                    (x - y).abs() < 1e-9 * y.abs().max(1.0),
                    "{output:?} {metric}: {x} vs {y}"
                );
            }
        }
    }

    odd_keys_are_read_as_the_objects_they_name(&store).await;

    let err = NativeEngine::open("s3://billing/no/such/prefix", None, Arc::new(NoProgress))
        .await
        .err()
        .expect("an empty prefix is an error")
        .to_string();
    assert!(
        err.contains("no CUR data files") && err.contains("s3://billing/no/such/prefix"),
        "{err}"
    );
}

/// Each file holds a distinct power of two, and decoys sit at the keys a misread URL would name.
async fn odd_keys_are_read_as_the_objects_they_name(store: &dyn ObjectStore) {
    let header = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId\n";
    let files = [
        ("odd/2024#06/part-1.csv", 1.0),
        ("odd/part?2.csv", 2.0),
        ("odd/100%25-3.csv", 4.0),
        ("odd/50%-4.csv", 8.0),
        ("odd/a b+c-5.csv", 16.0),
    ];
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
    let engine = NativeEngine::open("s3://billing/odd", None, Arc::new(NoProgress))
        .await
        .expect("opens the odd keys");
    let request = AllocationRequest {
        group_by: vec![Dimension::Namespace],
        ..AllocationRequest::default()
    };
    let allocation = service::allocate(&engine, &request)
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

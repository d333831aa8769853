//! The functions' event parsing over the real AWS event fixtures (`tests/fixtures/events/`).

use kubecur_tests::pipeline::fixture;

mod ingest_events {
    use super::*;
    use cur_ingest::signals;

    #[test]
    fn s3_notification_keys_are_decoded() {
        let signals = signals(&fixture("s3-notification-cur2-manifest.json")).expect("valid");
        assert_eq!(signals.len(), 1);
        assert_eq!(
            signals[0].key,
            "cur/kubecur-export/metadata/BILLING_PERIOD=2024-06/kubecur-export-Manifest.json"
        );
        assert_eq!(signals[0].bucket, "kubecur-cur-test");
        assert_eq!(
            signals[0].etag.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(signals[0].event_time_ms, 1_719_814_351_123);
    }

    #[test]
    fn every_record_of_a_notification_becomes_a_signal() {
        let signals = signals(&fixture("s3-notification-noise.json")).expect("valid");
        let keys: Vec<&str> = signals.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "cur/kubecur-export/data/BILLING_PERIOD=2024-06/kubecur export-00001.snappy.parquet",
                "aws-programmatic-access-test-object",
                "cur/kubecur-legacy/crawler-cfn.yml"
            ]
        );
    }

    #[test]
    fn eventbridge_keys_are_taken_as_they_are() {
        let from_bridge = signals(&fixture("eventbridge-s3-object-created.json")).expect("valid");
        let from_notification =
            signals(&fixture("s3-notification-cur2-manifest.json")).expect("valid");
        assert_eq!(from_bridge[0].key, from_notification[0].key);
        assert_eq!(from_bridge[0].bucket, from_notification[0].bucket);
    }

    #[test]
    fn other_events_are_errors_that_say_what_arrived() {
        let athena = fixture("athena-query-state-change-succeeded.json");
        let err = signals(&athena).expect_err("not S3");
        assert!(err.to_string().contains("aws.athena"), "{err}");
        let mut broken = fixture("s3-notification-cur2-manifest.json");
        broken["Records"][0]["s3"]["object"]["key"] = serde_json::json!("a%zzb");
        let err = signals(&broken).expect_err("bad escape");
        assert!(err.to_string().contains("a%zzb"), "{err}");
    }
}

mod writer_events {
    use super::*;
    use allocation_writer::query_event;

    #[test]
    fn every_athena_fixture_is_read() {
        for (name, state) in [
            ("athena-query-state-change-succeeded.json", "SUCCEEDED"),
            ("athena-query-state-change-failed.json", "FAILED"),
            ("athena-query-state-change-running.json", "RUNNING"),
        ] {
            let event = query_event(&fixture(name)).expect(name);
            assert_eq!(event.state, state);
            assert_eq!(event.query_id, "11111111-2222-3333-4444-555555555555");
            assert_eq!(event.workgroup, "kubecur");
        }
    }

    #[test]
    fn other_events_are_named_errors() {
        let err = query_event(&fixture("eventbridge-s3-object-created.json")).expect_err("S3");
        assert!(err.to_string().contains("Object Created"), "{err}");
        let mut broken = fixture("athena-query-state-change-succeeded.json");
        broken["detail"] = serde_json::json!({"currentState": "SUCCEEDED"});
        let err = query_event(&broken).expect_err("no query id");
        assert!(err.to_string().contains("queryExecutionId"), "{err}");
    }
}

mod legacy_status {
    use arrow_array::RecordBatch;
    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field, Schema};
    use kubecur_shared::adapters::aws::s3::legacy_status_ready;
    use kubecur_shared::sample::SampleOutput;
    use kubecur_tests::sample;
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    fn status_file(status: &str) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "status",
            DataType::Utf8,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![status]))],
        )
        .expect("batch");
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).expect("writer");
        writer.write(&batch).expect("written");
        writer.close().expect("closed");
        bytes
    }

    #[test]
    fn the_status_object_is_read_without_a_query_engine() {
        let path = sample().path(SampleOutput::LegacyParquet).join(
            "kubecur-sample/kubecur-sample/cost_and_usage_data_status/cost_and_usage_data_status.parquet",
        );
        let bytes = std::fs::read(&path).expect("sample status object");
        assert!(legacy_status_ready("status", bytes).expect("readable"));
        assert!(!legacy_status_ready("status", status_file("UNAVAILABLE")).expect("readable"));
    }

    #[test]
    fn an_unreadable_status_object_is_an_error_naming_it() {
        let err = legacy_status_ready(
            "cur/r/cost_and_usage_data_status/x.parquet",
            b"not parquet".to_vec(),
        )
        .expect_err("garbage");
        assert!(
            err.to_string()
                .contains("cur/r/cost_and_usage_data_status/x.parquet"),
            "{err}"
        );
    }
}

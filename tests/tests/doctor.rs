//! `kubecur doctor` and `kubecur setup tags` use cases over the real AWS adapter: S3, Glue, DynamoDB,
//! Athena and STS on the wire against moto server (with the pipeline run once, so a period is
//! served), Cost Explorer and BCM Data Exports through aws-smithy-mocks (moto has neither). Each check
//! has its ✔ and its ✘.

use aws_sdk_bcmdataexports::operation::get_export::GetExportOutput;
use aws_sdk_bcmdataexports::operation::list_exports::{ListExportsError, ListExportsOutput};
use aws_sdk_bcmdataexports::types::{
    CompressionOption, DataQuery, DestinationConfigurations, Export, ExportReference, ExportStatus,
    ExportStatusCode, FormatOption, OverwriteOption, S3Destination, S3OutputConfigurations,
    S3OutputType,
};
use aws_sdk_costexplorer::operation::list_cost_allocation_tags::ListCostAllocationTagsOutput;
use aws_sdk_costexplorer::operation::start_cost_allocation_tag_backfill::StartCostAllocationTagBackfillOutput;
use aws_sdk_costexplorer::operation::update_cost_allocation_tags_status::UpdateCostAllocationTagsStatusOutput;
use aws_sdk_costexplorer::types::{
    CostAllocationTag, CostAllocationTagBackfillRequest, CostAllocationTagBackfillStatus,
    CostAllocationTagStatus, CostAllocationTagType, UpdateCostAllocationTagsStatusError,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use kubecur_shared::deployment::aws::AwsDeployment;
use kubecur_shared::deployment::{doctor, setup_tags, DoctorInputs};
use kubecur_shared::domain::doctor::{Check, Report, TagState};
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::TagMapping;
use kubecur_shared::pipeline::writer::WriterOutcome;
use kubecur_shared::sample::SampleOutput;
use kubecur_tests::pipeline::{AwsEnv, CUR_BUCKET, CUR_TABLE, DATABASE, RESULT_BUCKET, TABLE};
use kubecur_tests::sample;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const EXPORT: &str = "kubecur-cur2";
const EXPORT_ARN: &str = "arn:aws:bcm-data-exports:us-east-1:123456789012:export/kubecur-cur2-0a1b";
const RESULTS_WORKGROUP: &str = "kubecur-with-results";
const DEFAULT_KEYS: [&str; 6] = [
    "kubernetes_cluster",
    "kubernetes_namespace",
    "kubernetes_deployment",
    "kubernetes_pod",
    "kubernetes_daemonset",
    "kubernetes_container",
];

/// The sample's CUR 2.0 export in moto, June delivered through the real ingest and writer, and a
/// workgroup with a result location.
async fn deployed() -> AwsEnv {
    let env = AwsEnv::start(&sample().path(SampleOutput::Cur2Parquet)).await;
    let june = BillingPeriod {
        year: 2024,
        month: 6,
    };
    env.seed_athena(june).await;
    let query = env
        .ingest_started(&env.manifest_event(june, "2024-07-01T06:12:31.123Z"))
        .await;
    let outcome = env.write(&env.writer(), &query, "SUCCEEDED").await;
    assert!(
        matches!(outcome, WriterOutcome::Published { .. }),
        "{outcome:?}"
    );
    env.clients
        .athena
        .create_work_group()
        .name(RESULTS_WORKGROUP)
        .configuration(
            aws_sdk_athena::types::WorkGroupConfiguration::builder()
                .result_configuration(
                    aws_sdk_athena::types::ResultConfiguration::builder()
                        .output_location(format!("s3://{RESULT_BUCKET}/kubecur/"))
                        .build(),
                )
                .enforce_work_group_configuration(true)
                .build(),
        )
        .send()
        .await
        .expect("workgroup created");
    env
}

async fn moto_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

fn export(format: FormatOption, include_resources: &str) -> Export {
    Export::builder()
        .export_arn(EXPORT_ARN)
        .name(EXPORT)
        .data_query(
            DataQuery::builder()
                .query_statement("SELECT bill_billing_period_start_date, line_item_resource_id, line_item_unblended_cost, line_item_usage_start_date, resource_tags FROM COST_AND_USAGE_REPORT")
                .table_configurations(
                    "COST_AND_USAGE_REPORT",
                    HashMap::from([
                        ("INCLUDE_RESOURCES".to_string(), include_resources.to_string()),
                        ("TIME_GRANULARITY".to_string(), "DAILY".to_string()),
                    ]),
                )
                .build()
                .expect("valid"),
        )
        .destination_configurations(
            DestinationConfigurations::builder()
                .s3_destination(
                    S3Destination::builder()
                        .s3_bucket(CUR_BUCKET)
                        .s3_prefix("cur")
                        .s3_region("us-east-1")
                        .s3_output_configurations(
                            S3OutputConfigurations::builder()
                                .output_type(S3OutputType::Custom)
                                .format(format)
                                .compression(CompressionOption::Parquet)
                                .overwrite(OverwriteOption::OverwriteReport)
                                .build()
                                .expect("valid"),
                        )
                        .build()
                        .expect("valid"),
                )
                .build(),
        )
        .build()
        .expect("valid")
}

/// BCM Data Exports answering `ListExports` (two pages, the export on the second) and `GetExport`.
fn data_exports(found: Option<Export>) -> aws_sdk_bcmdataexports::Client {
    let reference = |name: &str, arn: &str| {
        ExportReference::builder()
            .export_name(name)
            .export_arn(arn)
            .export_status(
                ExportStatus::builder()
                    .status_code(ExportStatusCode::Healthy)
                    .build(),
            )
            .build()
            .expect("valid")
    };
    let other = reference(
        "someone-elses-export",
        "arn:aws:bcm-data-exports:us-east-1:123456789012:export/other",
    );
    let first_page = mock!(aws_sdk_bcmdataexports::Client::list_exports)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            ListExportsOutput::builder()
                .exports(other.clone())
                .next_token("page-2")
                .build()
        });
    let listed = found.as_ref().map(|e| reference(e.name(), EXPORT_ARN));
    let second_page = mock!(aws_sdk_bcmdataexports::Client::list_exports)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            let page = ListExportsOutput::builder();
            match &listed {
                Some(reference) => page.exports(reference.clone()).build(),
                None => page.build(),
            }
        });
    let get = mock!(aws_sdk_bcmdataexports::Client::get_export)
        .match_requests(|r| r.export_arn() == Some(EXPORT_ARN))
        .then_output(move || {
            let out = GetExportOutput::builder().export_status(
                ExportStatus::builder()
                    .status_code(ExportStatusCode::Healthy)
                    .build(),
            );
            match &found {
                Some(export) => out.export(export.clone()).build(),
                None => out.build(),
            }
        });
    mock_client!(
        aws_sdk_bcmdataexports,
        RuleMode::MatchAny,
        [&first_page, &second_page, &get]
    )
}

/// What a mocked call received: each activation request's keys, each backfill's start.
type Recorded<T> = Arc<Mutex<Vec<T>>>;

/// Cost Explorer listing `tags` (key, active?) and recording every activation request's keys.
fn cost_explorer(
    tags: &[(&str, bool)],
    refuse: &[&str],
) -> (
    aws_sdk_costexplorer::Client,
    Recorded<Vec<String>>,
    Recorded<String>,
) {
    let tags: Vec<(String, bool)> = tags.iter().map(|(k, a)| (k.to_string(), *a)).collect();
    let refuse: Vec<String> = refuse.iter().map(|k| k.to_string()).collect();
    // Like AWS: only the requested keys that it has seen come back.
    let list = mock!(aws_sdk_costexplorer::Client::list_cost_allocation_tags).then_compute_output(
        move |request| {
            let wanted = request.tag_keys();
            tags.iter()
                .filter(|(key, _)| wanted.contains(key))
                .fold(
                    ListCostAllocationTagsOutput::builder(),
                    |out, (key, active)| {
                        out.cost_allocation_tags(
                            CostAllocationTag::builder()
                                .tag_key(key)
                                .r#type(CostAllocationTagType::UserDefined)
                                .status(if *active {
                                    CostAllocationTagStatus::Active
                                } else {
                                    CostAllocationTagStatus::Inactive
                                })
                                .build()
                                .expect("valid"),
                        )
                    },
                )
                .build()
        },
    );
    let updates = Arc::new(Mutex::new(Vec::new()));
    let seen = updates.clone();
    // Records each request's keys; refuses those of `refuse` that are in the request.
    let update = mock!(aws_sdk_costexplorer::Client::update_cost_allocation_tags_status)
        .then_compute_output(move |request| {
            let keys: Vec<String> = request
                .cost_allocation_tags_status()
                .iter()
                .map(|e| e.tag_key().to_string())
                .collect();
            let out = refuse
                .iter()
                .filter(|key| keys.contains(key))
                .fold(
                    UpdateCostAllocationTagsStatusOutput::builder(),
                    |out, key| {
                        out.errors(
                            UpdateCostAllocationTagsStatusError::builder()
                                .tag_key(key)
                                .code("TagKeysNotFoundException")
                                .message("tag key not found")
                                .build(),
                        )
                    },
                )
                .build();
            seen.lock().expect("lock").push(keys);
            out
        });
    let backfills = Arc::new(Mutex::new(Vec::new()));
    let asked = backfills.clone();
    let backfill = mock!(aws_sdk_costexplorer::Client::start_cost_allocation_tag_backfill)
        .then_compute_output(move |request| {
            asked
                .lock()
                .expect("lock")
                .push(request.backfill_from().unwrap_or_default().to_string());
            StartCostAllocationTagBackfillOutput::builder()
                .backfill_request(
                    CostAllocationTagBackfillRequest::builder()
                        .backfill_status(CostAllocationTagBackfillStatus::Processing)
                        .build(),
                )
                .build()
        });
    let client = mock_client!(
        aws_sdk_costexplorer,
        RuleMode::MatchAny,
        [&list, &update, &backfill]
    );
    (client, updates, backfills)
}

fn all_active() -> Vec<(&'static str, bool)> {
    DEFAULT_KEYS.iter().map(|k| (*k, true)).collect()
}

/// The adapter on moto, with Cost Explorer and Data Exports mocked.
async fn probe(env: &AwsEnv, export: Option<Export>, tags: &[(&str, bool)]) -> AwsDeployment {
    let mut probe = AwsDeployment::new(&moto_config(&env.moto.endpoint).await, true);
    probe.data_exports = data_exports(export);
    probe.cost_explorer = cost_explorer(tags, &[]).0;
    probe
}

fn inputs() -> DoctorInputs {
    DoctorInputs {
        export_name: EXPORT.into(),
        glue_database: DATABASE.into(),
        glue_table: CUR_TABLE.into(),
        bucket: None,
        delivery_root: None,
        pipeline_table: TABLE.into(),
        workgroup: RESULTS_WORKGROUP.into(),
        mapping: TagMapping::default(),
    }
}

fn check<'a>(report: &'a Report, name: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in\n{}", report.to_text()))
}

fn failing<'a>(report: &'a Report, name: &str) -> &'a Check {
    let found = check(report, name);
    assert!(!found.passed(), "{name} should fail:\n{}", report.to_text());
    assert!(found.fix.is_some(), "{found}");
    found
}

#[tokio::test]
async fn a_complete_deployment_passes_every_check() {
    let env = deployed().await;
    let probe = probe(
        &env,
        Some(export(FormatOption::Parquet, "TRUE")),
        &all_active(),
    )
    .await;
    let report = doctor(&probe, &inputs(), chrono::Utc::now()).await;
    assert!(report.passed(), "{}", report.to_text());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "credentials",
            "export",
            "tags",
            "glue-table",
            "delivery",
            "pipeline-table",
            "pipeline-runs",
            "athena-workgroup"
        ]
    );
    let text = report.to_text();
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.lines().all(|l| l.starts_with("✔ ")), "{text}");
    // Facts read from the wire, not echoed inputs.
    assert!(
        check(&report, "credentials")
            .message
            .contains("123456789012"),
        "{text}"
    );
    assert!(
        check(&report, "delivery")
            .message
            .contains("cur/kubecur-cur2/metadata/BILLING_PERIOD="),
        "{text}"
    );
    assert!(
        check(&report, "pipeline-runs")
            .message
            .starts_with("2024-06 fresh, serving v"),
        "{text}"
    );
    assert!(
        check(&report, "athena-workgroup")
            .message
            .contains(&format!("s3://{RESULT_BUCKET}/kubecur/ (enforced)")),
        "{text}"
    );
    assert!(
        check(&report, "glue-table").message.contains("CUR 2.0"),
        "{text}"
    );
}

#[tokio::test]
async fn each_missing_or_wrong_part_fails_its_own_check() {
    let env = deployed().await;
    let good = Some(export(FormatOption::Parquet, "TRUE"));

    // credentials: no region configured.
    let mut no_region = probe(&env, good.clone(), &all_active()).await;
    no_region.region = None;
    let report = doctor(&no_region, &inputs(), chrono::Utc::now()).await;
    assert!(failing(&report, "credentials")
        .message
        .contains("no region"));
    assert_eq!(report.failures(), 1, "{}", report.to_text());

    // export: a CSV export without resource IDs; then none at all.
    let csv = probe(
        &env,
        Some(export(FormatOption::TextOrCsv, "FALSE")),
        &all_active(),
    )
    .await;
    let report = doctor(&csv, &inputs(), chrono::Utc::now()).await;
    let bad = failing(&report, "export");
    assert!(bad.message.contains("INCLUDE_RESOURCES"), "{bad}");
    assert!(bad.message.contains("TEXT_OR_CSV"), "{bad}");
    assert_eq!(report.failures(), 1, "{}", report.to_text());
    let none = probe(&env, None, &all_active()).await;
    let report = doctor(&none, &inputs(), chrono::Utc::now()).await;
    assert!(failing(&report, "export")
        .message
        .contains("no Data Export named kubecur-cur2"));
    // Without the export, nothing says where deliveries land.
    assert!(failing(&report, "delivery")
        .message
        .contains("cannot tell where"));

    // tags: one inactive, one never seen by AWS.
    let mut tags = all_active();
    tags.retain(|(k, _)| *k != "kubernetes_container");
    tags.iter_mut()
        .filter(|(k, _)| *k == "kubernetes_pod")
        .for_each(|t| t.1 = false);
    let probe_tags = probe(&env, good.clone(), &tags).await;
    let report = doctor(&probe_tags, &inputs(), chrono::Utc::now()).await;
    let bad = failing(&report, "tags");
    assert!(bad.message.contains("inactive: kubernetes_pod"), "{bad}");
    assert!(
        bad.message
            .contains("not yet seen by AWS: kubernetes_container"),
        "{bad}"
    );
    assert_eq!(report.failures(), 1, "{}", report.to_text());

    let healthy = probe(&env, good.clone(), &all_active()).await;
    let with = |change: &dyn Fn(&mut DoctorInputs)| {
        let mut changed = inputs();
        change(&mut changed);
        changed
    };

    // glue-table: absent.
    let report = doctor(
        &healthy,
        &with(&|i| i.glue_table = "no_such_table".into()),
        chrono::Utc::now(),
    )
    .await;
    assert!(failing(&report, "glue-table")
        .message
        .contains("no Glue table cur.no_such_table"));
    // glue-table: present, but made from an export without resource IDs.
    let without_ids: Vec<&str> = env
        .columns
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "line_item_resource_id")
        .collect();
    create_glue_table(&env, "without_resource_ids", &without_ids).await;
    let report = doctor(
        &healthy,
        &with(&|i| i.glue_table = "without_resource_ids".into()),
        chrono::Utc::now(),
    )
    .await;
    let bad = failing(&report, "glue-table");
    assert!(
        bad.message.contains("no line_item_resource_id column"),
        "{bad}"
    );
    assert_eq!(report.failures(), 1, "{}", report.to_text());

    // delivery: a prefix without manifests; a bucket that does not exist.
    let report = doctor(
        &healthy,
        &with(&|i| i.delivery_root = Some("cur/elsewhere".into())),
        chrono::Utc::now(),
    )
    .await;
    assert!(failing(&report, "delivery")
        .message
        .contains("no export manifest under s3://"));
    let report = doctor(
        &healthy,
        &with(&|i| i.bucket = Some("no-such-bucket".into())),
        chrono::Utc::now(),
    )
    .await;
    assert!(
        failing(&report, "delivery")
            .message
            .contains("NoSuchBucket"),
        "{}",
        report.to_text()
    );
    // …and a manifest older than two days.
    let later = chrono::Utc::now() + chrono::Duration::days(3);
    let report = doctor(&healthy, &inputs(), later).await;
    assert!(
        failing(&report, "delivery").message.contains("3 days ago"),
        "{}",
        report.to_text()
    );

    // pipeline-table and pipeline-runs: no table.
    let report = doctor(
        &healthy,
        &with(&|i| i.pipeline_table = "no-such-table".into()),
        chrono::Utc::now(),
    )
    .await;
    assert!(failing(&report, "pipeline-table")
        .message
        .contains("no DynamoDB table no-such-table"));
    failing(&report, "pipeline-runs");

    // pipeline-runs: a table in which nothing was ever allocated.
    create_empty_table(&env, "kubecur-empty").await;
    let report = doctor(
        &healthy,
        &with(&|i| i.pipeline_table = "kubecur-empty".into()),
        chrono::Utc::now(),
    )
    .await;
    assert!(
        check(&report, "pipeline-table").passed(),
        "{}",
        report.to_text()
    );
    assert!(failing(&report, "pipeline-runs")
        .message
        .contains("no billing period"));

    // athena-workgroup: the pipeline's own test workgroup has no result location; another does not exist.
    let report = doctor(
        &healthy,
        &with(&|i| i.workgroup = "kubecur".into()),
        chrono::Utc::now(),
    )
    .await;
    assert!(failing(&report, "athena-workgroup")
        .message
        .contains("no query result location"));
    let report = doctor(
        &healthy,
        &with(&|i| i.workgroup = "no-such-workgroup".into()),
        chrono::Utc::now(),
    )
    .await;
    assert!(failing(&report, "athena-workgroup")
        .message
        .contains("no Athena workgroup"));
}

#[tokio::test]
async fn pipeline_runs_judges_the_newest_delivery_as_status_does() {
    let env = deployed().await;
    let healthy = probe(
        &env,
        Some(export(FormatOption::Parquet, "TRUE")),
        &all_active(),
    )
    .await;
    let june = BillingPeriod {
        year: 2024,
        month: 6,
    };
    // A second delivery of June whose query runs: stale, the first snapshot still serves.
    env.redeliver(june, "exec-2").await;
    env.seed_athena(june).await;
    let query = env
        .ingest_started(&env.manifest_event(june, "2024-07-02T06:12:31.123Z"))
        .await;
    let report = doctor(&healthy, &inputs(), chrono::Utc::now()).await;
    let stale = failing(&report, "pipeline-runs");
    assert!(
        stale.message.starts_with("2024-06 stale (newer delivery "),
        "{stale}"
    );
    assert!(stale.message.contains("serving v"), "{stale}");
    assert_eq!(report.failures(), 1, "{}", report.to_text());

    // Its query is cancelled: failed, with the reason the pointer keeps.
    env.clients
        .athena
        .stop_query_execution()
        .query_execution_id(&query)
        .send()
        .await
        .expect("cancelled");
    let outcome = env.write(&env.writer(), &query, "CANCELLED").await;
    assert!(
        matches!(outcome, WriterOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let report = doctor(&healthy, &inputs(), chrono::Utc::now()).await;
    let failed = failing(&report, "pipeline-runs");
    assert!(failed.message.starts_with("2024-06 failed ("), "{failed}");
    assert!(failed.message.contains("cancelled"), "{failed}");
    assert!(
        failed
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("next delivery of 2024-06"),
        "{failed}"
    );
    assert_eq!(report.failures(), 1, "{}", report.to_text());
}

#[tokio::test]
async fn aws_refusals_name_the_permission_to_grant() {
    let env = deployed().await;
    let mut denied = probe(&env, None, &all_active()).await;
    let rule = mock!(aws_sdk_bcmdataexports::Client::list_exports).then_error(|| {
        ListExportsError::generic(
            aws_sdk_bcmdataexports::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform bcm-data-exports:ListExports")
                .build(),
        )
    });
    denied.data_exports = mock_client!(aws_sdk_bcmdataexports, RuleMode::MatchAny, [&rule]);
    let report = doctor(&denied, &inputs(), chrono::Utc::now()).await;
    let bad = failing(&report, "export");
    assert!(bad.message.contains("AccessDeniedException"), "{bad}");
    assert_eq!(
        bad.fix.as_deref(),
        Some("allow bcm-data-exports:ListExports for this identity")
    );
}

#[tokio::test]
async fn an_unreachable_aws_fails_every_check_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    // Nothing listens there now: connections are refused.
    let config = kubecur_shared::deployment::aws::load_config(Some("us-east-1")).await;
    let config = config
        .into_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"),
        ))
        .build();
    let probe = AwsDeployment::new(&config, true);
    let started = std::time::Instant::now();
    let report = doctor(&probe, &inputs(), chrono::Utc::now()).await;
    let took = started.elapsed();
    assert_eq!(report.checks.len(), 8);
    assert_eq!(report.failures(), 8, "{}", report.to_text());
    for check in &report.checks {
        assert!(
            check.message.contains("no answer from AWS")
                || check.message.contains("cannot tell where"),
            "{check}"
        );
    }
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

/// A Glue table `name` in the test database with `columns` (`resource_tags` as the map AWS declares).
async fn create_glue_table(env: &AwsEnv, name: &str, columns: &[&str]) {
    use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};
    let descriptor = columns
        .iter()
        .fold(StorageDescriptor::builder(), |d, c| {
            let kind = if *c == "resource_tags" {
                "map<string,string>"
            } else {
                "string"
            };
            d.columns(
                Column::builder()
                    .name(*c)
                    .r#type(kind)
                    .build()
                    .expect("valid"),
            )
        })
        .build();
    env.clients
        .glue
        .create_table()
        .database_name(DATABASE)
        .table_input(
            TableInput::builder()
                .name(name)
                .storage_descriptor(descriptor)
                .build()
                .expect("valid"),
        )
        .send()
        .await
        .expect("table created");
}

async fn create_empty_table(env: &AwsEnv, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("valid")
    };
    let key = |n: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(kind)
            .build()
            .expect("valid")
    };
    env.clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("table created");
}

// ---------------------------------------------------------------------------------------------
// kubecur setup tags

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("team_{i:02}")).collect()
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let (client, updates, backfills) = cost_explorer(&[("kubernetes_pod", false)], &[]);
    let tags = AwsDeployment {
        cost_explorer: client,
        ..AwsDeployment::new(&moto_config("http://127.0.0.1:9").await, true)
    };
    let wanted: Vec<String> = DEFAULT_KEYS.iter().map(|k| k.to_string()).collect();
    let setup = setup_tags(&tags, &wanted, false, Some("2024-06-01T00:00:00Z"))
        .await
        .expect("listed");
    assert_eq!(setup.states.len(), 6);
    assert_eq!(
        setup.states[3],
        ("kubernetes_pod".to_string(), TagState::Inactive)
    );
    assert_eq!(setup.states[0].1, TagState::NotSeen);
    assert!(updates.lock().expect("lock").is_empty());
    assert!(backfills.lock().expect("lock").is_empty());
    assert!(setup.activated.is_empty() && setup.backfill.is_none());
}

#[tokio::test]
async fn apply_activates_inactive_keys_in_batches_of_twenty_and_never_sends_unseen_ones() {
    let wanted = keys(26);
    // 25 inactive, the last never seen; AWS refuses one of them.
    let listed: Vec<(&str, bool)> = wanted[..25].iter().map(|k| (k.as_str(), false)).collect();
    let (client, updates, backfills) = cost_explorer(&listed, &["team_03"]);
    let tags = AwsDeployment {
        cost_explorer: client,
        ..AwsDeployment::new(&moto_config("http://127.0.0.1:9").await, true)
    };
    let setup = setup_tags(&tags, &wanted, true, Some("2024-06-01T00:00:00Z"))
        .await
        .expect("applied");
    let sent = updates.lock().expect("lock").clone();
    assert_eq!(sent.iter().map(Vec::len).collect::<Vec<_>>(), [20, 5]);
    assert!(
        sent.iter().flatten().all(|k| k != "team_25"),
        "unseen key sent"
    );
    assert_eq!(setup.activated.len(), 24);
    assert!(!setup.activated.contains(&"team_03".to_string()));
    assert_eq!(setup.refused.len(), 1, "{:?}", setup.refused);
    assert_eq!(setup.refused[0].0, "team_03");
    assert!(setup.refused[0].1.contains("TagKeysNotFoundException"));
    assert_eq!(*backfills.lock().expect("lock"), ["2024-06-01T00:00:00Z"]);
    assert_eq!(setup.backfill.as_deref(), Some("PROCESSING"));
}

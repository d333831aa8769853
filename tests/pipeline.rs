//! A whole AWS account in moto server for the pipeline tests and the pipeline benchmark: the CUR bucket
//! with a CUR 2.0 delivery, the Glue table over it, the Athena workgroup and result bucket, the
//! DynamoDB table, and the three handlers wired to them exactly as their `main`s wire them.

use crate::Moto;
use allocation_writer::handle as write_handle;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use kubecur_shared::adapters::aws::athena::Athena;
use kubecur_shared::adapters::aws::{
    AwsIngest, AwsWriter, Clients, DynamoStore, GlueCatalog, S3Objects,
};
use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::config::IngestConfig;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::TagMapping;
use kubecur_shared::domain::UsageWindow;
use kubecur_shared::pipeline::ingest::{Ingest, IngestOutcome};
use kubecur_shared::pipeline::run_plan;
use kubecur_shared::pipeline::writer::{Writer, WriterOutcome};
use kubecur_shared::ports::pipeline::SystemClock;
use kubecur_shared::ports::{AllocationEngine, Cell, NoProgress, ResultTable, TableSink};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const CUR_BUCKET: &str = "kubecur-cur-test";
pub const RESULT_BUCKET: &str = "kubecur-athena-results";
pub const TABLE: &str = "kubecur";
pub const WORKGROUP: &str = "kubecur";
pub const DATABASE: &str = "cur";
pub const CUR_TABLE: &str = "kubecur_cur2";
/// Where the sample's CUR 2.0 export lands in the bucket: `<prefix>/<export name>`.
pub const EXPORT_ROOT: &str = "cur/kubecur-cur2";

/// A test fixture from `tests/fixtures/events/`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Which kind of CUR delivery the account holds (the sample's output of that flavour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// CUR 2.0 data export (`cur/kubecur-cur2/data/BILLING_PERIOD=…`, manifests under `metadata/`).
    Cur2,
    /// FOCUS data export (`cur/kubecur-focus/…`, same layout as CUR 2.0).
    Focus,
    /// Legacy CUR with the Athena integration (`cur/kubecur-sample/kubecur-sample/year=…/month=…`,
    /// the status object at `cur/kubecur-sample/cost_and_usage_data_status/`).
    Legacy,
}

impl Export {
    /// The report or export root (`<prefix>/<name>`).
    pub fn root(self) -> &'static str {
        match self {
            Export::Cur2 => EXPORT_ROOT,
            Export::Focus => "cur/kubecur-focus",
            Export::Legacy => LEGACY_ROOT,
        }
    }

    /// The Glue table's location: the data folder the partitions live under.
    pub fn location(self) -> String {
        match self {
            Export::Cur2 | Export::Focus => format!("s3://{CUR_BUCKET}/{}/data/", self.root()),
            Export::Legacy => format!("s3://{CUR_BUCKET}/{LEGACY_ROOT}/kubecur-sample/"),
        }
    }

    pub fn partition_keys(self) -> &'static [&'static str] {
        match self {
            Export::Cur2 | Export::Focus => &["billing_period"],
            Export::Legacy => &["year", "month"],
        }
    }
}

/// Where the sample's legacy report lands: `<prefix>/<report name>`.
pub const LEGACY_ROOT: &str = "cur/kubecur-sample";
/// The legacy status object, where AWS writes it (beside the report's data folder).
pub const LEGACY_STATUS_KEY: &str =
    "cur/kubecur-sample/cost_and_usage_data_status/cost_and_usage_data_status.parquet";

/// The moto account with everything the pipeline needs.
pub struct AwsEnv {
    pub moto: Moto,
    pub clients: Clients,
    /// The local CUR 2.0 export that was uploaded.
    pub export: PathBuf,
    /// The CUR table's columns (as the Glue table holds them).
    pub columns: Vec<String>,
    pub kind: Export,
    /// The ingest function's `KUBECUR_LABELS` (empty: unset).
    pub labels: String,
    /// The ingest function's `KUBECUR_SHARE_RULES` (empty: unset).
    pub share_rules: String,
}

impl AwsEnv {
    /// Starts moto and creates the buckets, table, workgroup and Glue table; uploads `export`
    /// (a sample CUR 2.0 output folder holding `kubecur-cur2/…`) under `cur/`.
    pub async fn start(export: &Path) -> AwsEnv {
        AwsEnv::start_export(export, Export::Cur2).await
    }

    /// Starts moto with `export` (a sample output folder of flavour `kind`) uploaded under `cur/`.
    pub async fn start_export(export: &Path, kind: Export) -> AwsEnv {
        let moto = Moto::start();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let clients = Clients::from_config(&config, true);
        for bucket in [CUR_BUCKET, RESULT_BUCKET] {
            clients
                .s3
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("bucket created");
        }
        upload(&clients.s3, export, export, "cur").await;
        if kind == Export::Legacy {
            // The sample keeps the status object in the data folder's parent's child; AWS writes it
            // beside the report's data folder: put a copy where AWS does.
            let sample_status = export.join(
                "kubecur-sample/kubecur-sample/cost_and_usage_data_status/cost_and_usage_data_status.parquet",
            );
            clients
                .s3
                .put_object()
                .bucket(CUR_BUCKET)
                .key(LEGACY_STATUS_KEY)
                .body(std::fs::read(&sample_status).expect("status object").into())
                .send()
                .await
                .expect("status uploaded");
        }
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("valid")
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("valid")
        };
        clients
            .dynamodb
            .create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .send()
            .await
            .expect("table created");
        clients
            .athena
            .create_work_group()
            .name(WORKGROUP)
            .send()
            .await
            .expect("workgroup created");
        let engine = NativeEngine::open(&export.to_string_lossy(), None, Arc::new(NoProgress))
            .await
            .expect("sample readable");
        let columns: Vec<String> = engine
            .columns()
            .names()
            .iter()
            .filter(|c| !["billing_period", "year", "month"].contains(&c.as_str()))
            .cloned()
            .collect();
        create_glue_table(&clients.glue, &columns, kind).await;
        let mut all = columns.clone();
        all.extend(kind.partition_keys().iter().map(|k| k.to_string()));
        AwsEnv {
            moto,
            clients,
            export: export.to_path_buf(),
            columns: all,
            kind,
            labels: String::new(),
            share_rules: String::new(),
        }
    }

    /// The same environment with the ingest function's `KUBECUR_LABELS` set to `labels`.
    pub fn with_labels(mut self, labels: &str) -> AwsEnv {
        self.labels = labels.to_string();
        self
    }

    /// The same environment with the ingest function's `KUBECUR_SHARE_RULES` set to `rules` (the
    /// ingest keys the resource ids they select).
    pub fn with_share_rules(mut self, rules: &str) -> AwsEnv {
        self.share_rules = rules.to_string();
        self
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.clients.dynamodb.clone(), TABLE)
    }

    pub fn ingest(&self) -> AwsIngest {
        Ingest {
            objects: S3Objects(self.clients.s3.clone()),
            catalog: GlueCatalog(self.clients.glue.clone()),
            queries: self.athena(),
            store: self.store(),
            clock: Arc::new(SystemClock),
            config: IngestConfig::from_lookup(|name| {
                Some(match name {
                    "KUBECUR_TABLE" => TABLE.into(),
                    "KUBECUR_ATHENA_WORKGROUP" => WORKGROUP.into(),
                    "KUBECUR_ATHENA_DATABASE" => DATABASE.into(),
                    "KUBECUR_ATHENA_TABLE" => CUR_TABLE.into(),
                    "KUBECUR_ATHENA_OUTPUT" => format!("s3://{RESULT_BUCKET}/kubecur/"),
                    "KUBECUR_LABELS" if !self.labels.is_empty() => self.labels.clone(),
                    "KUBECUR_SHARE_RULES" if !self.share_rules.is_empty() => {
                        self.share_rules.clone()
                    }
                    _ => return None,
                })
            })
            .expect("valid configuration"),
        }
    }

    fn athena(&self) -> Athena {
        Athena::new(
            self.clients.athena.clone(),
            WORKGROUP,
            Some(format!("s3://{RESULT_BUCKET}/kubecur/")),
        )
    }

    /// A writer over `dynamodb` (pass a client with a fault-injecting interceptor to kill it midway).
    pub fn writer_with(&self, dynamodb: aws_sdk_dynamodb::Client) -> AwsWriter {
        Writer::new(
            DynamoStore::new(dynamodb, TABLE),
            self.athena(),
            S3Objects(self.clients.s3.clone()),
            Arc::new(SystemClock),
        )
    }

    pub fn writer(&self) -> AwsWriter {
        self.writer_with(self.clients.dynamodb.clone())
    }

    /// Queues in moto's Athena what the next two queries return: the partition DDL (nothing) and the
    /// allocation, computed by the local engine for the same plan. moto runs no SQL.
    pub async fn seed_athena(&self, period: BillingPeriod) {
        let mapping = self.ingest().config.tag_mapping;
        let result =
            local_allocation_result_with(&self.export, &self.columns, period, &mapping).await;
        let to_row = |cells: Vec<Value>| json!({ "Data": cells });
        let mut rows = vec![to_row(
            result
                .columns
                .iter()
                .map(|c| json!({ "VarCharValue": c }))
                .collect(),
        )];
        for row in &result.rows {
            rows.push(to_row(
                row.iter()
                    .map(|cell| match cell {
                        Cell::Null => json!({}),
                        other => json!({ "VarCharValue": other.as_text() }),
                    })
                    .collect(),
            ));
        }
        let body = json!({
            "results": [
                { "rows": [], "column_info": [] },
                { "rows": rows, "column_info": [] },
            ]
        });
        post_json(
            &self.moto.endpoint,
            "/moto-api/static/athena/query-results",
            &body,
        );
    }

    /// The S3 notification of the period's manifest, with the given event time.
    pub fn manifest_event(&self, period: BillingPeriod, event_time: &str) -> Value {
        let mut event = fixture("s3-notification-cur2-manifest.json");
        let record = &mut event["Records"][0];
        record["eventTime"] = json!(event_time);
        record["s3"]["bucket"]["name"] = json!(CUR_BUCKET);
        let root = self.kind.root();
        let name = root.rsplit('/').next().unwrap_or(root);
        record["s3"]["object"]["key"] = json!(format!(
            "{root}/metadata/BILLING_PERIOD%3D{}/{name}-Manifest.json",
            period.label()
        ));
        event
    }

    /// The S3 notification of legacy CUR's status object, with the given event time.
    pub fn legacy_status_event(&self, event_time: &str) -> Value {
        let mut event = fixture("s3-notification-legacy-status.json");
        let record = &mut event["Records"][0];
        record["eventTime"] = json!(event_time);
        record["s3"]["bucket"]["name"] = json!(CUR_BUCKET);
        record["s3"]["object"]["key"] = json!(LEGACY_STATUS_KEY);
        event
    }

    /// Rewrites the period's manifest with a new `executionId`: a new delivery of the same data. A
    /// delivery's version is its manifest's `LastModified`, which S3 keeps to the second: the rewrite
    /// waits for the next second (AWS's deliveries are hours apart).
    pub async fn redeliver(&self, period: BillingPeriod, execution_id: &str) {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let manifest = json!({ "executionId": execution_id, "dataFiles": [] });
        self.clients
            .s3
            .put_object()
            .bucket(CUR_BUCKET)
            .key(format!(
                "{EXPORT_ROOT}/metadata/BILLING_PERIOD={}/kubecur-cur2-Manifest.json",
                period.label()
            ))
            .body(manifest.to_string().into_bytes().into())
            .send()
            .await
            .expect("manifest written");
    }

    /// Runs the ingest on an event and returns the query it started.
    pub async fn ingest_started(&self, event: &Value) -> String {
        let outcomes = cur_ingest::handle(&self.ingest(), event)
            .await
            .expect("ingest succeeds");
        outcomes
            .into_iter()
            .find_map(|o| match o {
                IngestOutcome::Started { query_id, .. } => Some(query_id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no query started for {event}"))
    }

    /// Feeds the writer the Athena event of `query_id` in `state`.
    pub async fn write(&self, writer: &AwsWriter, query_id: &str, state: &str) -> WriterOutcome {
        let mut event = fixture("athena-query-state-change-succeeded.json");
        event["detail"]["queryExecutionId"] = json!(query_id);
        event["detail"]["currentState"] = json!(state);
        event["detail"]["workgroupName"] = json!(WORKGROUP);
        write_handle(writer, &event).await.expect("writer succeeds")
    }

    /// The API's answer to an API Gateway v2 event (fixture `name`, query string replaced when given).
    pub async fn api(&self, name: &str, raw_query: Option<&str>) -> (u16, Value) {
        self.api_sharing(
            &kubecur_shared::domain::share::ShareRules::default(),
            name,
            raw_query,
        )
        .await
    }

    /// [`AwsEnv::api`] with share rules configured on the function (`KUBECUR_SHARE_RULES`; its
    /// `KUBECUR_LABELS` is the ingest's, [`AwsEnv::with_labels`]).
    pub async fn api_sharing(
        &self,
        share: &kubecur_shared::domain::share::ShareRules,
        name: &str,
        raw_query: Option<&str>,
    ) -> (u16, Value) {
        let mut event = fixture(name);
        if let Some(query) = raw_query {
            event["rawQueryString"] = json!(query);
            event
                .as_object_mut()
                .map(|e| e.remove("queryStringParameters"));
        }
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
        // The function's configuration as Terraform and SAM write it: the ingest's labels, the rules.
        let settings = kubecur_shared::api::Settings {
            share: share.clone(),
            labels: kubecur_shared::domain::label::parse_label_list(&self.labels)
                .expect("valid labels"),
            ..kubecur_shared::api::Settings::default()
        };
        let response = allocation_api::handle_with_limits(&self.store(), &settings, request).await;
        let status = response.status().as_u16();
        let body = match response.body() {
            lambda_http::Body::Text(text) => text.clone(),
            lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(bytes).to_string(),
            lambda_http::Body::Empty => String::new(),
            _ => String::new(),
        };
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    /// How many queries moto's Athena was asked to start in the workgroup.
    pub async fn queries_started(&self) -> usize {
        self.clients
            .athena
            .list_query_executions()
            .work_group(WORKGROUP)
            .send()
            .await
            .expect("listed")
            .query_execution_ids()
            .len()
    }
}

/// What Athena would return for the run's query: the same plan, rendered for and run by the local engine.
pub async fn local_allocation_result(
    export: &Path,
    columns: &[String],
    period: BillingPeriod,
) -> ResultTable {
    local_allocation_result_with(export, columns, period, &TagMapping::default()).await
}

/// [`local_allocation_result`] for the ingest's tag mapping (its labels among it).
pub async fn local_allocation_result_with(
    export: &Path,
    columns: &[String],
    period: BillingPeriod,
    mapping: &TagMapping,
) -> ResultTable {
    let engine = NativeEngine::open(
        &export.to_string_lossy(),
        Some(UsageWindow::billing_period(period)),
        Arc::new(NoProgress),
    )
    .await
    .expect("sample readable");
    let plan = run_plan(columns, period, mapping).expect("plannable");
    let mut table = TableSink::default();
    engine
        .run_allocation(&plan, &mut table)
        .await
        .expect("allocated locally");
    table.0
}

async fn create_glue_table(glue: &aws_sdk_glue::Client, columns: &[String], kind: Export) {
    use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, TableInput};
    glue.create_database()
        .database_input(
            DatabaseInput::builder()
                .name(DATABASE)
                .build()
                .expect("valid"),
        )
        .send()
        .await
        .expect("database created");
    let column = |name: &str, kind: &str| {
        Column::builder()
            .name(name)
            .r#type(kind)
            .build()
            .expect("valid")
    };
    let descriptor = columns
        .iter()
        .fold(StorageDescriptor::builder(), |d, c| {
            d.columns(column(
                c,
                if c == "resource_tags" {
                    "map<string,string>"
                } else {
                    "string"
                },
            ))
        })
        .location(kind.location())
        .build();
    glue.create_table()
        .database_name(DATABASE)
        .table_input(
            TableInput::builder()
                .name(CUR_TABLE)
                .storage_descriptor(descriptor)
                .set_partition_keys(Some(
                    kind.partition_keys()
                        .iter()
                        .map(|k| column(k, "string"))
                        .collect(),
                ))
                .build()
                .expect("valid"),
        )
        .send()
        .await
        .expect("table created");
}

async fn upload(s3: &aws_sdk_s3::Client, root: &Path, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).expect("readable sample") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            Box::pin(upload(s3, root, &path, prefix)).await;
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .replace('\\', "/");
        s3.put_object()
            .bucket(CUR_BUCKET)
            .key(format!("{prefix}/{relative}"))
            .body(std::fs::read(&path).expect("readable").into())
            .send()
            .await
            .expect("uploaded");
    }
}

/// A bare HTTP/1.1 POST of JSON to moto's control API (no HTTP client crate needed for one call).
fn post_json(endpoint: &str, path: &str, body: &Value) {
    let host = endpoint.trim_start_matches("http://");
    let payload = body.to_string();
    let mut stream = std::net::TcpStream::connect(host).expect("moto reachable");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    assert!(
        response.starts_with("HTTP/1.1 201") || response.starts_with("HTTP/1.0 201"),
        "moto refused the Athena results: {response}"
    );
}

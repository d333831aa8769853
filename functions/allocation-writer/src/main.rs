use allocation_writer::diagnostic;
use kubecur_shared::adapters::aws::athena::Athena;
use kubecur_shared::adapters::aws::{
    init_lambda_logging, s3_client, sdk_config, AwsWriter, DynamoStore, S3Objects,
};
use kubecur_shared::config::WriterConfig;
use kubecur_shared::pipeline::writer::Writer;
use kubecur_shared::ports::pipeline::SystemClock;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = WriterConfig::from_lookup(|n| std::env::var(n).ok())?;
    let aws = sdk_config().await;
    let mut writer: AwsWriter = Writer::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table),
        Athena::new(aws_sdk_athena::Client::new(&aws), config.workgroup, None),
        S3Objects(s3_client(&aws, false)),
        Arc::new(SystemClock),
    );
    writer.snapshot_budget_bytes =
        kubecur_shared::pipeline::snapshot_budget_from_env(|n| std::env::var(n).ok());
    let writer = &writer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let outcome = allocation_writer::handle(writer, &event.payload)
                .await
                .map_err(|e| diagnostic(&e))?;
            Ok::<_, Diagnostic>(serde_json::json!({ "outcome": outcome }))
        },
    ))
    .await
}

use kubecur_shared::adapters::aws::athena::Athena;
use kubecur_shared::adapters::aws::{init_lambda_logging, s3_client, sdk_config, DynamoStore};
use kubecur_shared::config::WriterConfig;
use kubecur_shared::pipeline::writer::Writer;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = WriterConfig::from_lookup(|n| std::env::var(n).ok())?;
    let aws = sdk_config().await;
    let writer = Writer {
        s3: s3_client(&aws, false),
        athena: Athena::new(aws_sdk_athena::Client::new(&aws), config.workgroup, None),
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table),
    };
    let writer = &writer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let outcome = allocation_writer::handle(writer, &event.payload).await?;
            Ok::<_, Error>(serde_json::json!({ "outcome": outcome }))
        },
    ))
    .await
}

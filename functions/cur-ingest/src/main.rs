use kubecur_shared::adapters::aws::athena::Athena;
use kubecur_shared::adapters::aws::{init_lambda_logging, s3_client, sdk_config, DynamoStore};
use kubecur_shared::config::IngestConfig;
use kubecur_shared::pipeline::ingest::Ingest;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = IngestConfig::from_lookup(|n| std::env::var(n).ok())?;
    let aws = sdk_config().await;
    let ingest = Ingest {
        s3: s3_client(&aws, false),
        glue: aws_sdk_glue::Client::new(&aws),
        athena: Athena::new(
            aws_sdk_athena::Client::new(&aws),
            config.workgroup.clone(),
            config.output_location.clone(),
        ),
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table.clone()),
        config,
    };
    let ingest = &ingest;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let outcomes = cur_ingest::handle(ingest, &event.payload).await?;
            Ok::<_, Error>(serde_json::json!({ "outcomes": outcomes }))
        },
    ))
    .await
}

use kubecur_shared::adapters::aws::{init_lambda_logging, sdk_config, DynamoStore};
use kubecur_shared::config::ApiConfig;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = ApiConfig::from_lookup(|n| std::env::var(n).ok())?;
    let aws = sdk_config().await;
    let settings = config.settings();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table);
    let (store, settings) = (&store, &settings);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(allocation_api::handle_with_limits(store, settings, request).await)
    }))
    .await
}

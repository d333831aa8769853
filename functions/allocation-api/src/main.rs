use kubecur_shared::adapters::aws::{init_lambda_logging, Clients, DynamoStore};
use kubecur_shared::config::ApiConfig;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = ApiConfig::from_lookup(|n| std::env::var(n).ok())?;
    let clients = Clients::from_env().await;
    let store = DynamoStore::new(clients.dynamodb, config.table);
    let store = &store;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(allocation_api::handle(store, request).await)
    }))
    .await
}

use cur_ingest::{diagnostic, is_reconcile};
use kubecur_shared::adapters::aws::athena::Athena;
use kubecur_shared::adapters::aws::{
    init_lambda_logging, s3_client, sdk_config, AwsIngest, AwsReconciler, DynamoStore, GlueCatalog,
    S3Objects,
};
use kubecur_shared::config::IngestConfig;
use kubecur_shared::pipeline::reconcile::ReconcileConfig;
use kubecur_shared::pipeline::writer::Writer;
use kubecur_shared::ports::pipeline::{Clock, SystemClock};
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use std::sync::Arc;

/// Two jobs, one function: object notifications (the ingest) and the hourly schedule (the
/// reconciler). The reconciler needs exactly the ingest's clients (S3, Glue, Athena, DynamoDB) plus
/// the writer's code, which links no new SDK: a function of its own would be a third binary of the
/// same size with the same role.
#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda_logging();
    let config = IngestConfig::from_lookup(|n| std::env::var(n).ok())?;
    let aws = sdk_config().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.table.clone());
    let athena = Athena::new(
        aws_sdk_athena::Client::new(&aws),
        config.workgroup.clone(),
        config.output_location.clone(),
    );
    let objects = S3Objects(s3_client(&aws, false));
    let ingest: AwsIngest = kubecur_shared::pipeline::ingest::Ingest {
        store: store.clone(),
        queries: athena.clone(),
        catalog: GlueCatalog(aws_sdk_glue::Client::new(&aws)),
        objects: objects.clone(),
        config: config.clone(),
        clock: clock.clone(),
    };
    let reconciler: AwsReconciler = kubecur_shared::pipeline::reconcile::Reconciler {
        ingest: ingest.clone(),
        writer: Writer {
            snapshot_budget_bytes: kubecur_shared::pipeline::snapshot_budget_from_env(|n| {
                std::env::var(n).ok()
            }),
            ..Writer::new(store, athena, objects, clock.clone())
        },
        config: ReconcileConfig::default(),
    };
    let (ingest, reconciler, clock) = (&ingest, &reconciler, &clock);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            if is_reconcile(&event.payload) {
                let report = cur_ingest::reconcile(reconciler, clock.now_ms())
                    .await
                    .map_err(|e| diagnostic(&e))?;
                return Ok::<_, Diagnostic>(serde_json::json!({ "reconciled": report }));
            }
            let outcomes = cur_ingest::handle(ingest, &event.payload)
                .await
                .map_err(|e| diagnostic(&e))?;
            Ok(serde_json::json!({ "outcomes": outcomes }))
        },
    ))
    .await
}

//! The AWS adapter of [`DeploymentProbe`] and [`CostAllocationTags`]: STS, BCM Data Exports and Cost
//! Explorer (both us-east-1 only), S3, Glue, DynamoDB and Athena. Read-only except
//! [`CostAllocationTags::activate`] and [`CostAllocationTags::backfill`].

use super::{BoxError, Caller, CostAllocationTags, DeploymentProbe, ProbeError};
use crate::adapters::aws::DynamoStore;
use crate::domain::delivery::{classify, DeliveryObject};
use crate::domain::doctor::{DeliveryFacts, ExportFacts, FailedRun, PeriodRun, WorkgroupFacts};
use crate::ports::SnapshotReader;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// Cost Explorer and BCM Data Exports answer only in us-east-1
/// (https://docs.aws.amazon.com/general/latest/gr/billing.html).
pub const BILLING_REGION: &str = "us-east-1";

/// The SDK configuration for the CLI's deployment commands: credentials and region from the
/// environment (`region` overrides it), short timeouts and one retry, so that a machine without AWS
/// access gets its answer in seconds rather than after the SDK's default retries.
pub async fn load_config(region: Option<&str>) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(20))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// Maps an SDK error: AWS's answers keep their code and message; the rest is classified by cause.
fn probe_error<E, R>(action: &'static str) -> impl FnOnce(SdkError<E, R>) -> ProbeError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |error| {
        if let Some(service) = error.as_service_error() {
            return ProbeError::Refused {
                action,
                code: service.code().unwrap_or("UnknownError").to_string(),
                message: service.message().unwrap_or("no message").to_string(),
            };
        }
        ProbeError::classify(action, Box::new(error))
    }
}

fn chrono_time(time: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// Every client the two ports need. Fields are public so tests can put mocks or an emulator behind
/// any of them.
#[derive(Debug, Clone)]
pub struct AwsDeployment {
    pub region: Option<String>,
    pub sts: aws_sdk_sts::Client,
    pub cost_explorer: aws_sdk_costexplorer::Client,
    pub data_exports: aws_sdk_bcmdataexports::Client,
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub athena: aws_sdk_athena::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl AwsDeployment {
    /// Clients from `config`; Cost Explorer and Data Exports are pinned to [`BILLING_REGION`].
    /// `path_style` addresses S3 buckets as `endpoint/bucket` (emulators).
    pub fn new(config: &SdkConfig, path_style: bool) -> AwsDeployment {
        let billing = Region::new(BILLING_REGION);
        AwsDeployment {
            region: config.region().map(|r| r.to_string()),
            sts: aws_sdk_sts::Client::new(config),
            cost_explorer: aws_sdk_costexplorer::Client::from_conf(
                aws_sdk_costexplorer::config::Builder::from(config)
                    .region(billing.clone())
                    .build(),
            ),
            data_exports: aws_sdk_bcmdataexports::Client::from_conf(
                aws_sdk_bcmdataexports::config::Builder::from(config)
                    .region(billing)
                    .build(),
            ),
            s3: crate::adapters::aws::s3_client(config, path_style),
            glue: aws_sdk_glue::Client::new(config),
            athena: aws_sdk_athena::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }

    async fn export_arn(&self, name: &str) -> Result<Option<String>, ProbeError> {
        let mut token: Option<String> = None;
        loop {
            let page = self
                .data_exports
                .list_exports()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(probe_error("bcm-data-exports:ListExports"))?;
            if let Some(found) = page.exports().iter().find(|e| e.export_name() == name) {
                return Ok(Some(found.export_arn().to_string()));
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(None),
            }
        }
    }
}

impl DeploymentProbe for AwsDeployment {
    fn region(&self) -> Option<String> {
        self.region.clone()
    }

    async fn caller(&self) -> Result<Caller, ProbeError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(probe_error("sts:GetCallerIdentity"))?;
        Ok(Caller {
            account: out.account().unwrap_or("unknown account").to_string(),
            arn: out.arn().unwrap_or("unknown identity").to_string(),
        })
    }

    async fn export(&self, name: &str) -> Result<Option<ExportFacts>, ProbeError> {
        let Some(arn) = self.export_arn(name).await? else {
            return Ok(None);
        };
        let out = self
            .data_exports
            .get_export()
            .export_arn(&arn)
            .send()
            .await
            .map_err(probe_error("bcm-data-exports:GetExport"))?;
        let Some(export) = out.export() else {
            return Ok(None);
        };
        let query = export.data_query();
        let destination = export
            .destination_configurations()
            .and_then(|d| d.s3_destination());
        let output = destination.and_then(|d| d.s3_output_configurations());
        let status = out.export_status();
        Ok(Some(ExportFacts {
            name: export.name().to_string(),
            query: query
                .map(|q| q.query_statement().to_string())
                .unwrap_or_default(),
            table_configurations: query
                .and_then(|q| q.table_configurations())
                .map(|tables| {
                    tables
                        .iter()
                        .map(|(table, properties)| {
                            (
                                table.clone(),
                                properties
                                    .iter()
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            format: output
                .map(|o| o.format().as_str().to_string())
                .unwrap_or_else(|| "unknown".into()),
            overwrite: output
                .map(|o| o.overwrite().as_str().to_string())
                .unwrap_or_else(|| "unknown".into()),
            bucket: destination
                .map(|d| d.s3_bucket().to_string())
                .unwrap_or_default(),
            prefix: destination
                .map(|d| d.s3_prefix().to_string())
                .unwrap_or_default(),
            health: status
                .and_then(|s| s.status_code())
                .map(|c| c.as_str().to_string()),
            health_reason: status
                .and_then(|s| s.status_reason())
                .map(|r| r.as_str().to_string()),
        }))
    }

    async fn table_columns(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Option<Vec<String>>, ProbeError> {
        match self
            .glue
            .get_table()
            .database_name(database)
            .name(table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().map(|table| {
                let mut columns: Vec<String> = table
                    .storage_descriptor()
                    .map(|d| d.columns().iter().map(|c| c.name().to_string()).collect())
                    .unwrap_or_default();
                columns.extend(table.partition_keys().iter().map(|c| c.name().to_string()));
                columns
            })),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(probe_error("glue:GetTable")(error)),
        }
    }

    async fn newest_manifest(
        &self,
        bucket: &str,
        root: &str,
    ) -> Result<Option<DeliveryFacts>, ProbeError> {
        let prefix = format!("{}/metadata/", root.trim_matches('/'));
        let mut newest: Option<DeliveryFacts> = None;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(probe_error("s3:ListBucket"))?;
            for object in page.contents() {
                let (Some(key), Some(modified)) =
                    (object.key(), object.last_modified().and_then(chrono_time))
                else {
                    continue;
                };
                if !matches!(classify(key), DeliveryObject::ExportManifest { .. }) {
                    continue;
                }
                if newest.as_ref().is_none_or(|n| modified > n.last_modified) {
                    newest = Some(DeliveryFacts {
                        key: key.to_string(),
                        last_modified: modified,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(newest),
            }
        }
    }

    async fn pipeline_table(&self, table: &str) -> Result<Option<String>, ProbeError> {
        match self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.table()
                    .and_then(|t| t.table_status())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "of unknown status".into()),
            )),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(probe_error("dynamodb:DescribeTable")(error)),
        }
    }

    async fn period_runs(&self, table: &str) -> Result<Vec<PeriodRun>, ProbeError> {
        let store = DynamoStore::new(self.dynamodb.clone(), table);
        let pointers = store
            .all_pointers()
            .await
            .map_err(|error| ProbeError::classify("dynamodb:Query", Box::new(error) as BoxError))?;
        Ok(pointers
            .into_iter()
            .map(|status| PeriodRun {
                period: status.period,
                serving: status.serving.map(|s| (s.version, s.computed_at)),
                latest: status.latest,
                last_failure: status.last_failure.map(|f| FailedRun {
                    run_id: f.run_id,
                    reason: f.reason,
                    at: f.at,
                }),
            })
            .collect())
    }

    async fn workgroup(&self, name: &str) -> Result<Option<WorkgroupFacts>, ProbeError> {
        match self.athena.get_work_group().work_group(name).send().await {
            Ok(out) => Ok(out.work_group().map(|group| {
                let configuration = group.configuration();
                WorkgroupFacts {
                    state: group
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "ENABLED".into()),
                    output_location: configuration
                        .and_then(|c| c.result_configuration())
                        .and_then(|r| r.output_location())
                        .map(str::to_string),
                    enforced: configuration
                        .and_then(|c| c.enforce_work_group_configuration())
                        .unwrap_or(false),
                }
            })),
            // Athena answers an unknown workgroup with InvalidRequestException "… is not found".
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_invalid_request_exception()
                        && e.message().is_some_and(|m| m.contains("not found"))
                }) =>
            {
                Ok(None)
            }
            Err(error) => Err(probe_error("athena:GetWorkGroup")(error)),
        }
    }
}

impl CostAllocationTags for AwsDeployment {
    async fn listed(&self, keys: &[String]) -> Result<BTreeMap<String, bool>, ProbeError> {
        use aws_sdk_costexplorer::types::CostAllocationTagStatus;
        let mut listed = BTreeMap::new();
        if keys.is_empty() {
            return Ok(listed);
        }
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cost_explorer
                .list_cost_allocation_tags()
                .set_tag_keys(Some(keys.to_vec()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(probe_error("ce:ListCostAllocationTags"))?;
            for tag in page.cost_allocation_tags() {
                listed.insert(
                    tag.tag_key().to_string(),
                    *tag.status() == CostAllocationTagStatus::Active,
                );
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(listed),
            }
        }
    }

    async fn activate(&self, keys: &[String]) -> Result<Vec<(String, String)>, ProbeError> {
        use aws_sdk_costexplorer::types::{CostAllocationTagStatus, CostAllocationTagStatusEntry};
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self.cost_explorer.update_cost_allocation_tags_status();
        for key in keys {
            let entry = CostAllocationTagStatusEntry::builder()
                .tag_key(key)
                .status(CostAllocationTagStatus::Active)
                .build()
                .map_err(|error| ProbeError::Other {
                    action: "ce:UpdateCostAllocationTagsStatus",
                    source: Box::new(error),
                })?;
            request = request.cost_allocation_tags_status(entry);
        }
        let out = request
            .send()
            .await
            .map_err(probe_error("ce:UpdateCostAllocationTagsStatus"))?;
        Ok(out
            .errors()
            .iter()
            .map(|e| {
                (
                    e.tag_key().unwrap_or("unknown key").to_string(),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("UnknownError"),
                        e.message().unwrap_or("no message")
                    ),
                )
            })
            .collect())
    }

    async fn backfill(&self, from: &str) -> Result<String, ProbeError> {
        let out = self
            .cost_explorer
            .start_cost_allocation_tag_backfill()
            .backfill_from(from)
            .send()
            .await
            .map_err(probe_error("ce:StartCostAllocationTagBackfill"))?;
        Ok(out
            .backfill_request()
            .and_then(|r| r.backfill_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "requested".into()))
    }
}

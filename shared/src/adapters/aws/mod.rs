//! AWS adapters (feature `aws`): DynamoDB store, Athena queries, Glue tables, S3 objects. No query
//! engine is linked: the Lambda functions build on these alone.

pub mod athena;
pub mod dynamo;
pub mod glue;
pub mod retry;
pub mod s3;

pub use dynamo::DynamoStore;

/// An AWS call failed, or returned something unusable. `context` says what kubecur was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct AwsError {
    pub context: String,
    pub message: String,
    /// The service's error code (`ThrottlingException` …), when there is one.
    pub code: Option<String>,
}

impl AwsError {
    pub fn new(context: impl Into<String>, message: impl Into<String>) -> AwsError {
        AwsError {
            context: context.into(),
            message: message.into(),
            code: None,
        }
    }

    /// Maps an SDK error, keeping its code and the full error chain in the message.
    pub fn from_sdk<E, R>(
        context: impl Into<String>,
    ) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, R>) -> AwsError
    where
        E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let context = context.into();
        move |err| {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            let code = err.code().map(str::to_string);
            AwsError {
                context,
                message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
                code,
            }
        }
    }
}

/// The shared SDK configuration from the environment (Lambda: its role's credentials and region;
/// `AWS_ENDPOINT_URL` is honoured). Each function builds only the clients it uses, so the others'
/// code is not linked into it.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// An S3 client; `path_style` addresses buckets as `endpoint/bucket` (emulators).
pub fn s3_client(config: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Every SDK client of the pipeline, for tests and tools that drive all three functions.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub athena: aws_sdk_athena::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    pub fn from_config(config: &aws_config::SdkConfig, path_style: bool) -> Clients {
        Clients {
            s3: s3_client(config, path_style),
            glue: aws_sdk_glue::Client::new(config),
            athena: aws_sdk_athena::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }
}

/// Logs for a Lambda function: CloudWatch adds timestamps, so none here; `KUBECUR_LOG` filters
/// (default `info`).
pub fn init_lambda_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(crate::config::LOG)
                .unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .with_ansi(false)
        .init();
}

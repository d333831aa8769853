//! AWS adapters (feature `aws`): DynamoDB store, Athena queries, Glue tables, S3 objects. No query
//! engine is linked: the Lambda functions build on these alone.

pub mod athena;
pub mod dynamo;
pub mod glue;
pub mod retry;
pub mod s3;

pub use dynamo::DynamoStore;
pub use glue::GlueCatalog;
pub use s3::S3Objects;

/// The use cases wired to AWS, as the Lambda functions run them.
pub type AwsIngest =
    crate::pipeline::ingest::Ingest<DynamoStore, athena::Athena, GlueCatalog, S3Objects>;
pub type AwsWriter = crate::pipeline::writer::Writer<DynamoStore, athena::Athena, S3Objects>;
pub type AwsReconciler =
    crate::pipeline::reconcile::Reconciler<DynamoStore, athena::Athena, GlueCatalog, S3Objects>;

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

    /// The port's view of the error: its stable class from the service's code, the concise message.
    pub fn external(self) -> crate::ports::pipeline::ExternalError {
        crate::ports::pipeline::ExternalError {
            kind: crate::ports::pipeline::ErrorKind::of_aws_code(self.code.as_deref()),
            context: self.context,
            message: self.message,
        }
    }

    /// Maps an SDK error to its code and message (`NoSuchKey: The specified key does not exist.`).
    /// The raw response (headers, body, the whole error chain) is logged, never put in the message:
    /// it would land in Lambda's error report and the dead-letter queue.
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
            tracing::warn!(%context, error = %aws_sdk_s3::error::DisplayErrorContext(&err), "AWS call failed.");
            let code = err.code().map(str::to_string);
            let message = match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                (None, _) => concise(&err),
            };
            AwsError {
                context,
                message,
                code,
            }
        }
    }
}

impl From<AwsError> for crate::ports::pipeline::ExternalError {
    fn from(err: AwsError) -> Self {
        err.external()
    }
}

/// An SDK error without a service code (timeout, dispatch or response failure): its kind, and the
/// innermost cause's first line, bounded.
fn concise<E: std::error::Error>(err: &E) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    let first = text.lines().next().unwrap_or("");
    let mut out = format!("{err}: {first}");
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
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

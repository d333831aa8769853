//! `kubecur doctor`: checks a deployment, read-only, one line per check with ✔ or ✘ and the fix.

use crate::CliError;
use clap::{Args, ValueEnum};
use kubecur_shared::deployment::{
    DoctorInputs, DEFAULT_GLUE_DATABASE, DEFAULT_GLUE_TABLE, DEFAULT_NAME_PREFIX,
};
use kubecur_shared::domain::TagMapping;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The Terraform modules' `name_prefix` (SAM: the stack's NamePrefix): names the table, the
    /// workgroup and, by default, the export.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_NAME_PREFIX)]
    pub name_prefix: String,
    /// The CUR 2.0 Data Export [default: PREFIX-cur2].
    #[arg(long, value_name = "NAME")]
    pub export_name: Option<String>,
    /// The Glue database of the CUR table (the default is the one the from-zero Terraform example
    /// and the SAM README create).
    #[arg(long, value_name = "DATABASE", default_value = DEFAULT_GLUE_DATABASE)]
    pub glue_database: String,
    /// The Glue table over the export's data (the default is the one the from-zero Terraform example
    /// and the SAM README create).
    #[arg(long, value_name = "TABLE", default_value = DEFAULT_GLUE_TABLE)]
    pub glue_table: String,
    /// The bucket the export delivers to [default: the export's destination].
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The export's key prefix in the bucket, `<prefix>/<export name>` [default: the export's].
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// The pipeline's DynamoDB table [default: PREFIX].
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// The pipeline's Athena workgroup [default: PREFIX].
    #[arg(long, value_name = "WORKGROUP")]
    pub workgroup: Option<String>,
    /// The region of the pipeline [default: AWS_REGION]. Cost Explorer and Data Exports are always us-east-1.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Read a concept from other tag keys, as for `allocate`. Repeatable.
    #[arg(long = "tag-key", value_name = "CONCEPT=KEY[,KEY]")]
    pub tag_keys: Vec<String>,
    /// Output format: one line per check, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = DoctorFormat::Text)]
    pub format: DoctorFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Text,
    Json,
}

/// The tag mapping of `--tag-key` overrides (the defaults otherwise).
pub fn mapping(overrides: &[String]) -> Result<TagMapping, CliError> {
    let mut mapping = TagMapping::default();
    for spec in overrides {
        mapping.apply_override(spec)?;
    }
    Ok(mapping)
}

fn inputs(args: &DoctorArgs) -> Result<DoctorInputs, CliError> {
    let prefix = args.name_prefix.trim();
    if prefix.is_empty() {
        return Err(CliError::Usage("--name-prefix must not be empty".into()));
    }
    let export_name = args
        .export_name
        .clone()
        .unwrap_or_else(|| format!("{prefix}-cur2"));
    Ok(DoctorInputs {
        glue_database: args.glue_database.clone(),
        glue_table: args.glue_table.clone(),
        export_name,
        bucket: args.bucket.clone(),
        delivery_root: args.prefix.clone(),
        pipeline_table: args.table.clone().unwrap_or_else(|| prefix.to_string()),
        workgroup: args.workgroup.clone().unwrap_or_else(|| prefix.to_string()),
        mapping: mapping(&args.tag_keys)?,
    })
}

/// Without the feature `aws`: bad arguments are still refused first, then the rebuild is named.
#[cfg(not(feature = "aws"))]
pub async fn run(args: DoctorArgs) -> Result<(), CliError> {
    inputs(&args)?;
    Err(CliError::not_built("kubecur doctor"))
}

#[cfg(feature = "aws")]
pub async fn run(args: DoctorArgs) -> Result<(), CliError> {
    use kubecur_shared::deployment::aws::{load_config, AwsDeployment};
    let inputs = inputs(&args)?;
    let config = load_config(args.region.as_deref()).await;
    let probe = AwsDeployment::new(&config, std::env::var_os("AWS_ENDPOINT_URL").is_some());
    let report = kubecur_shared::deployment::doctor(&probe, &inputs, chrono::Utc::now()).await;
    match args.format {
        DoctorFormat::Text => print!("{}", report.to_text()),
        DoctorFormat::Json => println!("{}", report.to_json()),
    }
    if report.passed() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} checks failed",
            report.failures(),
            report.checks.len()
        )))
    }
}

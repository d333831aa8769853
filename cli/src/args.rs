//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use kubecur_shared::api::Limits;
use std::path::PathBuf;

/// Allocate out-of-cluster AWS cost (RDS, S3, EBS, DynamoDB …) to Kubernetes namespaces, deployments,
/// pods, daemonsets and containers, from the Cost and Usage Report.
#[derive(Debug, Parser)]
#[command(name = "kubecur", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Allocate a CUR (legacy CUR, CUR 2.0 or FOCUS; Parquet, CSV or CSV.gz) on this machine.
    Allocate(AllocateArgs),
    /// Write a realistic synthetic CUR in every flavour, to try kubecur without a billing account.
    Sample(SampleArgs),
    /// Allocate a CUR once, then serve the pipeline's HTTP API (GET /allocation, GET /status) and the Cost
    /// Allocation page (GET /) from memory; or, with --api URL, the page in front of a deployed API.
    Serve(ServeArgs),
    /// Check a deployment (read-only): credentials, the Data Export, cost allocation tags, the Glue
    /// table, the newest delivery, the pipeline and its last runs, the Athena workgroup.
    Doctor(crate::doctor::DoctorArgs),
    /// Finish a deployment's billing side: `setup tags` activates the cost allocation tags.
    Setup(crate::setup::SetupArgs),
}

#[derive(Debug, Args)]
pub struct AllocateArgs {
    /// The CUR export: a local directory or file, or s3://BUCKET/PREFIX (AWS credentials from the environment).
    #[arg(long, value_name = "PATH")]
    pub cur: String,
    /// Allocate one billing period, e.g. 2024-06.
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First usage day to allocate (UTC), with --to.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<String>,
    /// Day after the last usage day (exclusive), with --from.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<String>,
    /// Group by these keys: day, cluster, namespace, deployment, pod, daemonset, container, service, account.
    #[arg(long, value_name = "KEYS", default_value = "namespace")]
    pub aggregate: String,
    /// The cost to show: listCost, netCost, amortizedCost or amortizedNetCost.
    #[arg(long, value_name = "METRIC", default_value = "amortizedNetCost")]
    pub metric: String,
    /// Read a concept from other tag keys, first non-empty wins, e.g. namespace=app.kubernetes.io/part-of,team. Repeatable.
    #[arg(long = "tag-key", value_name = "CONCEPT=KEY[,KEY]")]
    pub tag_keys: Vec<String>,
    /// Keep only this usage account. Repeatable.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<String>,
    /// Spread these namespaces' cost over the other namespaces' groups (comma-separated); they leave the answer.
    #[arg(long, value_name = "NS[,NS]")]
    pub share_namespaces: Option<String>,
    /// Spread the cost of line items carrying these tag values over the allocated groups, e.g.
    /// team:platform,team:shared (each pair split at its last `:`).
    #[arg(long, value_name = "KEY:VALUE[,KEY:VALUE]")]
    pub share_labels: Option<String>,
    /// Keep only cost whose tag has one of the values, for every key given, e.g. team:payments,team:search
    /// (each pair split at its last `:`; applied after sharing, as the API's filterLabels).
    #[arg(long, value_name = "KEY:VALUE[,KEY:VALUE]")]
    pub filter_labels: Option<String>,
    /// Spread the untagged (`__unallocated__`) cost over the allocated groups.
    #[arg(long)]
    pub share_unallocated: bool,
    /// Spread a fixed amount per month (pro-rated to the window) over the allocated groups.
    #[arg(long, value_name = "AMOUNT", allow_negative_numbers = true)]
    pub share_cost: Option<String>,
    /// How shared cost is split: weighted (by each group's own cost of --metric) or even.
    #[arg(long, value_name = "SPLIT")]
    pub share_split: Option<String>,
    /// Share rules for out-of-cluster shared resources, a JSON file (README: "Shared costs"); applied before the --share-* flags.
    #[arg(long, value_name = "FILE")]
    pub share_rules: Option<PathBuf>,
    /// Output format. JSON and CSV are for scripts: warnings then go to stderr only.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print the Athena SQL the pipeline would run for this data instead of allocating (needs a window).
    #[arg(long, value_enum, value_name = "DIALECT")]
    pub show_sql: Option<SqlDialect>,
    /// The Glue table the Athena SQL reads, as DATABASE.TABLE.
    #[arg(
        long,
        value_name = "DATABASE.TABLE",
        default_value = "cur_database.cur_table"
    )]
    pub athena_table: String,
    /// Groups held in memory at a time (the default kept 23.8 M groups under 1.3 GiB). An allocation with more is made in
    /// several passes over the files and its rows sorted in temporary files (under TMPDIR); sharing and
    /// --filter-labels hold every group.
    #[arg(long, value_name = "N", default_value_t = kubecur_shared::adapters::native::DEFAULT_GROUP_LIMIT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_groups: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlDialect {
    Athena,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Directory to write into (one folder per flavour and format is created below it).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of line items.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub rows: u64,
    /// Write only these outputs (comma-separated): legacy-parquet, legacy-csv, cur2-parquet, cur2-csv, focus-parquet, focus-csv.
    #[arg(long, value_name = "OUTPUTS")]
    pub only: Option<String>,
    /// Line items per file.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub rows_per_file: u64,
    /// Add N resources each tagged with a pod of its own (a large estate, for benchmarks at scale).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pods: u64,
    /// Spread the line items over the first N days from 2024-05-01 (1 to 61; 31 keeps them in May).
    #[arg(long, value_name = "N", default_value_t = 61)]
    pub days: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The CUR export: a local directory or file, or s3://BUCKET/PREFIX.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "api",
        conflicts_with = "api"
    )]
    pub cur: Option<String>,
    /// Serve the page in front of this deployed API instead (its URL, e.g.
    /// https://abc123.execute-api.eu-west-1.amazonaws.com): requests are signed with your AWS
    /// credentials (SigV4, execute-api), or sent with the bearer token in KUBECUR_API_TOKEN.
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The API's region for signing (default: from the URL, else AWS_REGION).
    #[arg(long, value_name = "REGION", requires = "api")]
    pub region: Option<String>,
    /// Serve the page's files from this directory instead of the built-in ones (for working on the page:
    /// shared/src/api/page).
    #[arg(long, value_name = "DIR", hide = true)]
    pub page_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9003")]
    pub listen: String,
    /// Read a concept from other tag keys, first non-empty wins, e.g. namespace=app.kubernetes.io/part-of,team. Repeatable.
    #[arg(long = "tag-key", value_name = "CONCEPT=KEY[,KEY]")]
    pub tag_keys: Vec<String>,
    /// Share rules every answer applies before its share parameters, a JSON file (README: "Shared costs").
    #[arg(long, value_name = "FILE")]
    pub share_rules: Option<PathBuf>,
    /// Further tag keys to serve as `aggregate=label:KEY`, `filterLabels` and `shareLabels`
    /// (comma-separated; the pipeline's KUBECUR_LABELS).
    #[arg(long, value_name = "KEY[,KEY]", conflicts_with = "api")]
    pub labels: Option<String>,
    /// Requests served at once (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Longest `window` a request may ask for, in days.
    #[arg(long, value_name = "DAYS", default_value_t = Limits::default().max_window_days, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub max_window_days: u32,
    /// Most sets one request may ask for with `step=1d`.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_steps, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub max_steps: u32,
    /// Most groups in one answer (summed over its sets).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_groups, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_groups: u32,
}

impl ServeArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_window_days: self.max_window_days,
            max_steps: self.max_steps,
            max_groups: self.max_groups,
        }
    }
}

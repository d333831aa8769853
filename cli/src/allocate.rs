//! `kubecur allocate`: read the arguments into a request, run the local engine, print the result.

use crate::args::{AllocateArgs, Format, SqlDialect};
use crate::output;
use crate::progress::TerminalProgress;
use crate::CliError;
use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::adapters::spill::DiskRuns;
use kubecur_shared::domain::label::parse_label_values;
use kubecur_shared::domain::plan::AccountId;
use kubecur_shared::domain::share::SharedSource;
use kubecur_shared::domain::share::{parse_amount, ShareParameters, ShareRules, Split};
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::Allocation;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, CostMetric, Dimension, TableRef, TagMapping, UsageWindow,
};
use kubecur_shared::ports::{AllocationEngine, Progress};
use kubecur_shared::service::{self, DisplayAllocation};
use std::sync::Arc;

/// Turns the arguments into a request; every mistake is reported before any file is read.
pub fn request_from(args: &AllocateArgs) -> Result<(AllocationRequest, CostMetric), CliError> {
    let metric: CostMetric = args.metric.parse()?;
    let group_by = Dimension::parse_list(&args.aggregate)?;
    let window = match (&args.period, &args.from, &args.to) {
        (Some(period), _, _) => Some(UsageWindow::billing_period(BillingPeriod::parse(period)?)),
        (None, Some(from), Some(to)) => Some(UsageWindow::new(
            UsageWindow::parse_day("--from", from)?,
            UsageWindow::parse_day("--to", to)?,
        )?),
        _ => None,
    };
    let mut tag_mapping = TagMapping::default();
    for spec in &args.tag_keys {
        tag_mapping.apply_override(spec)?;
    }
    let accounts = args
        .accounts
        .iter()
        .map(|a| AccountId::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        AllocationRequest {
            window,
            // Without the namespace among the keys, tagged and untagged line items of one key are two
            // rows merged for display: their resource sets count a resource in both once.
            resource_ids: !group_by.is_empty() && !group_by.contains(&Dimension::Namespace),
            group_by,
            tag_mapping,
            accounts,
            resources: Vec::new(),
        },
        metric,
    ))
}

/// Reads a share rules file (JSON, [`ShareRules::parse_json`]); a mistake names the file, the rule
/// and the field.
pub fn read_share_rules(path: Option<&std::path::Path>) -> Result<ShareRules, CliError> {
    let Some(path) = path else {
        return Ok(ShareRules::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "--share-rules {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    ShareRules::parse_json(&text)
        .map_err(|e| CliError::Usage(format!("--share-rules {}: {e}", path.display())))
}

/// The rules file's rules, then those the `--share-*` flags ask for.
pub fn share_rules_from(args: &AllocateArgs) -> Result<ShareRules, CliError> {
    let cost_per_month = match &args.share_cost {
        None => None,
        Some(text) => {
            Some(parse_amount(text).map_err(|e| CliError::Usage(format!("--share-cost: {e}")))?)
        }
    };
    let split = match &args.share_split {
        None => None,
        Some(text) => Some(Split::parse(text).ok_or_else(|| {
            CliError::Usage(format!(
                "--share-split `{text}` is not a split; expected even or weighted"
            ))
        })?),
    };
    let namespaces: Vec<String> = args
        .share_namespaces
        .iter()
        .flat_map(|list| list.split(','))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if args.share_namespaces.is_some() && namespaces.is_empty() {
        return Err(CliError::Usage(
            "--share-namespaces is empty; expected a comma-separated list of namespaces".into(),
        ));
    }
    let labels = match &args.share_labels {
        None => Vec::new(),
        Some(text) => {
            parse_label_values(text).map_err(|e| CliError::Usage(format!("--share-labels: {e}")))?
        }
    };
    let rules = read_share_rules(args.share_rules.as_deref())?.with_parameters(&ShareParameters {
        namespaces,
        labels,
        unallocated: args.share_unallocated,
        cost_per_month,
        split: split.clone(),
    });
    if split.is_some() && rules.is_empty() {
        return Err(CliError::Usage(
            "--share-split chooses how shared cost is split: give something to share (--share-namespaces, --share-labels, --share-unallocated, --share-cost or --share-rules)".into(),
        ));
    }
    Ok(rules)
}

fn athena_table(text: &str) -> Result<TableRef, CliError> {
    match text.split_once('.') {
        Some((database, table)) if !database.is_empty() && !table.is_empty() => {
            Ok(TableRef::Glue {
                database: database.to_string(),
                table: table.to_string(),
            })
        }
        _ => Err(CliError::Usage(format!(
            "--athena-table `{text}` must be DATABASE.TABLE"
        ))),
    }
}

/// `--show-sql athena`: the query the pipeline would run, for the data's real columns.
async fn show_sql(
    args: &AllocateArgs,
    dialect: SqlDialect,
    request: &AllocationRequest,
) -> Result<(), CliError> {
    let table = match dialect {
        SqlDialect::Athena => athena_table(&args.athena_table)?,
    };
    let engine = NativeEngine::open(
        &args.cur,
        request.window,
        Arc::new(kubecur_shared::ports::NoProgress),
    )
    .await?;
    let plan = AllocationPlan::new(engine.columns(), request)?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    println!("{}", render_allocation(&plan, &table)?);
    Ok(())
}

pub async fn run(args: AllocateArgs) -> Result<(), CliError> {
    let (mut request, metric) = request_from(&args)?;
    let rules = share_rules_from(&args)?;
    if rules.has_fixed_amount() && request.window.is_none() {
        return Err(kubecur_shared::domain::DomainError::ShareCostNeedsWindow.into());
    }
    // Any of a key's values, every key given (the API's filterLabels).
    let filters: Vec<(Dimension, Vec<String>)> = match &args.filter_labels {
        None => Vec::new(),
        Some(text) => parse_label_values(text)
            .map_err(|e| CliError::Usage(format!("--filter-labels: {e}")))?
            .into_iter()
            .map(|(label, values)| (Dimension::Label(label), values))
            .collect(),
    };
    let aggregate = request.group_by.clone();
    if !rules.is_empty() || !filters.is_empty() {
        // Allocated at the grain the rules and filters need, shared, filtered, then regrouped: merged
        // rows count a resource once.
        request.group_by = rules.grain_with_filters(&aggregate, filters.iter().map(|(d, _)| *d));
        request.resource_ids |= request.group_by.len() > aggregate.len();
        request.resources = rules.resource_ids();
    }
    if let Some(dialect) = args.show_sql {
        return show_sql(&args, dialect, &request).await;
    }
    let progress = Arc::new(TerminalProgress::new());
    // Without sharing or filters the allocation is displayed as it is made, never held whole: the
    // engine's passes hold at most --max-groups groups, and display rows past a quarter of that wait
    // sorted in temporary files.
    let streamed = rules.is_empty() && filters.is_empty();
    let result = async {
        let engine = NativeEngine::open(&args.cur, request.window, progress.clone())
            .await?
            .with_group_limit(args.max_groups);
        let discovery = engine.discovery();
        progress.phase(&format!(
            "allocating {} files ({:.0} MiB) of {}",
            discovery.files.len(),
            discovery.total_bytes() as f64 / (1024.0 * 1024.0),
            engine.flavour()
        ));
        if streamed {
            let store = Box::new(DiskRuns::new(None));
            let run_rows = (args.max_groups / 4).max(1);
            let display =
                service::allocate_for_display(&engine, &request, metric, store, run_rows).await?;
            Ok::<_, CliError>((display, None))
        } else {
            let allocation = service::allocate(&engine, &request).await?;
            shared_and_filtered(allocation, &rules, &filters, &aggregate, metric)
        }
    }
    .await;
    progress.finish();
    let (allocation, sources) = result?;
    let sources = sources.as_deref();
    for warning in &allocation.about.warnings {
        eprintln!("warning: {warning}");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = match args.format {
        Format::Table => output::write_table(&mut out, allocation, sources, metric),
        Format::Json => output::write_json(&mut out, allocation, sources, metric),
        Format::Csv => output::write_csv(&mut out, allocation, sources, metric),
    };
    written.map_err(|e| CliError::Failed(format!("cannot write the output: {e}")))
}

/// Shares, filters and regroups an allocation held whole, then orders it for display.
fn shared_and_filtered(
    mut allocation: Allocation,
    rules: &ShareRules,
    filters: &[(Dimension, Vec<String>)],
    aggregate: &[Dimension],
    metric: CostMetric,
) -> Result<(DisplayAllocation, Option<Vec<SharedSource>>), CliError> {
    let mut sources = None;
    if !rules.is_empty() {
        let shared = rules.apply_for(&allocation, aggregate, metric)?;
        allocation = shared.allocation;
        sources = Some(shared.sources);
    }
    allocation.retain_values(filters);
    if allocation.group_by != aggregate {
        allocation = allocation
            .regroup(aggregate)
            .ok_or_else(|| CliError::Failed("the allocation lost the requested keys".into()))?;
    }
    Ok((
        DisplayAllocation::from_allocation(allocation, metric),
        sources,
    ))
}

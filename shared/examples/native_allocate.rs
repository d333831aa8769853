//! Measures the native engine (feature `native-engine`) without the CLI:
//!
//! ```sh
//! cargo run --release -p kubecur-shared --features native-engine --example native_allocate -- \
//!     sample /var/tmp/kubecur-bench 10000000          # legacy-CUR Parquet, as bench/allocate_vs_duckdb.py
//! cargo run --release -p kubecur-shared --features native-engine --example native_allocate -- \
//!     allocate /var/tmp/kubecur-bench/legacy-parquet [THREADS [FROM TO]]
//! cargo run --release -p kubecur-shared --features native-engine --example native_allocate -- \
//!     sql /var/tmp/kubecur-bench/legacy-parquet FROM TO   # the Athena SQL of the same allocation
//! ```
//!
//! `allocate` runs the full-grain allocation (every dimension; no window unless FROM TO, as
//! `2024-05-01 2024-07-01`) and prints the open and scan times, line items per second, the peak RSS
//! (VmHWM) and the per-namespace amortized net cost. `sql` prints the Athena SQL of that allocation over
//! `"bench"."cur"`, for `bench/native_vs_duckdb.py`.

use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, CostMetric, Dialect, Dimension, TableRef, UsageWindow,
};
use kubecur_shared::ports::AllocationEngine;
use kubecur_shared::ports::NoProgress;
use kubecur_shared::sample::{write_sample, SampleOutput, SampleSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn window(args: &[String], at: usize) -> Result<Option<UsageWindow>, Box<dyn std::error::Error>> {
    match (args.get(at), args.get(at + 1)) {
        (Some(from), Some(to)) => Ok(Some(UsageWindow::new(
            UsageWindow::parse_day("from", from)?,
            UsageWindow::parse_day("to", to)?,
        )?)),
        _ => Ok(None),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sample") => {
            let dir = args.get(1).ok_or("sample DIR ROWS")?;
            let rows: u64 = args.get(2).ok_or("sample DIR ROWS")?.parse()?;
            let mut spec = SampleSpec::new(rows);
            spec.outputs = vec![SampleOutput::LegacyParquet];
            let report = write_sample(std::path::Path::new(dir), &spec, |_| {})?;
            println!("{} rows, {} files, {} bytes", report.rows, report.files.len(), report.bytes);
        }
        Some("sql") => {
            let path = args.get(1).ok_or("sql PATH FROM TO")?;
            let engine = NativeEngine::open(path, None, Arc::new(NoProgress)).await?;
            let request = AllocationRequest {
                window: window(&args, 2)?,
                group_by: Dimension::ALL.to_vec(),
                ..AllocationRequest::default()
            };
            let plan = AllocationPlan::new(engine.columns(), &request)?;
            let table = TableRef::Glue {
                database: "bench".into(),
                table: "cur".into(),
            };
            println!("{}", render_allocation(&plan, Dialect::Athena, &table)?);
        }
        Some("allocate") => {
            let path = args.get(1).ok_or("allocate PATH [THREADS [FROM TO]]")?;
            let started = Instant::now();
            let mut engine = NativeEngine::open(path, None, Arc::new(NoProgress)).await?;
            if let Some(threads) = args.get(2) {
                engine = engine.with_threads(threads.parse()?);
            }
            let opened = started.elapsed();
            let request = AllocationRequest {
                window: window(&args, 3)?,
                group_by: Dimension::ALL.to_vec(),
                ..AllocationRequest::default()
            };
            let scan = Instant::now();
            let allocation =
                kubecur_shared::service::allocate_with_plan(&engine, &request).await?;
            let scanned = scan.elapsed();
            let line_items: u64 = allocation.rows.iter().map(|r| r.line_items).sum();
            let mut by_namespace: BTreeMap<String, f64> = BTreeMap::new();
            let namespace = allocation
                .group_by
                .iter()
                .position(|d| *d == Dimension::Namespace)
                .ok_or("no namespace key")?;
            for row in &allocation.rows {
                *by_namespace.entry(row.keys[namespace].clone()).or_default() +=
                    row.costs.get(CostMetric::AmortizedNetCost);
            }
            println!(
                "open {:.3} s, allocation {:.3} s, whole {:.3} s; {} groups, {} line items, {:.2} M line items/s; peak RSS {}",
                opened.as_secs_f64(),
                scanned.as_secs_f64(),
                started.elapsed().as_secs_f64(),
                allocation.rows.len(),
                line_items,
                line_items as f64 / started.elapsed().as_secs_f64() / 1e6,
                peak_rss()
            );
            for (namespace, cost) in by_namespace {
                println!("{namespace}\t{cost:.6}");
            }
        }
        _ => {
            return Err(
                "usage: native_allocate sample DIR ROWS | allocate PATH [THREADS [FROM TO]] | sql PATH FROM TO"
                    .into(),
            )
        }
    }
    Ok(())
}

//! Profiling aid: runs `EXPLAIN ANALYZE` of the allocation query over a CUR and prints per-operator
//! metrics (`KUBECUR_PRINT_SQL=1` prints the query; `KUBECUR_SQL_FILE=f.sql` runs an edited one instead).
//! `cargo run --release -p kubecur-shared --features local-engine --example explain_allocation -- PATH [AGGREGATE]`

use kubecur_shared::adapters::datafusion::DataFusionQueryEngine;
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::{AllocationPlan, AllocationRequest, Dimension};
use kubecur_shared::ports::{NoProgress, QueryEngine};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: explain_allocation PATH [AGGREGATE]")?;
    let group_by = match args.next() {
        Some(list) => Dimension::parse_list(&list)?,
        None => Dimension::ALL.to_vec(),
    };
    let request = AllocationRequest {
        group_by,
        ..AllocationRequest::default()
    };
    let mut engine = DataFusionQueryEngine::open(&path, None, Arc::new(NoProgress)).await?;
    let plan = AllocationPlan::new(engine.columns(), &request)?;
    engine.prepare(&plan.required_columns()).await?;
    let mut sql = render_allocation(&plan, engine.dialect(), &engine.table())?;
    if let Ok(file) = std::env::var("KUBECUR_SQL_FILE") {
        // Experiment with a hand-edited query over the same prepared view.
        let text = std::fs::read_to_string(file)?;
        let mut statements: Vec<&str> =
            text.split(";\n").filter(|s| !s.trim().is_empty()).collect();
        sql = statements.pop().unwrap_or_default().to_string();
        for statement in statements {
            engine.query(statement).await?; // e.g. SET datafusion.execution.batch_size = 32768
        }
    } else if std::env::var_os("KUBECUR_PRINT_SQL").is_some() {
        println!("{sql}");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let analyzed = engine.query(&format!("EXPLAIN ANALYZE {sql}")).await?;
    for row in &analyzed.rows {
        for cell in row {
            println!("{}", cell.as_text());
        }
    }
    eprintln!("total {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

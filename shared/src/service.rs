//! The allocation use case: plan against the engine's columns, run one query, read the result.

use crate::domain::allocation::{Allocation, AllocationRow, CostVector};
use crate::domain::plan::AllocationPlan;
use crate::domain::sql::{
    render_allocation, ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCES_COLUMN,
    TAG_SOURCE_COLUMN_PREFIX,
};
use crate::domain::{AllocationRequest, CostMetric};
use crate::ports::{EngineError, QueryEngine, ResultTable};

/// Allocates `request` with `engine`.
///
/// Errors: the data cannot be planned (not a CUR, a required column missing), the engine fails, or its
/// result lacks an expected column (a bug: named in the error). Missing tags are warnings in the result.
pub async fn allocate<E: QueryEngine>(
    engine: &mut E,
    request: &AllocationRequest,
) -> Result<Allocation, EngineError> {
    let plan = AllocationPlan::new(engine.columns(), request)?;
    engine.prepare(&plan.required_columns()).await?;
    let sql = render_allocation(&plan, engine.dialect(), &engine.table())?;
    tracing::debug!(sql = %sql, "Rendered allocation query.");
    let started = std::time::Instant::now();
    let result = engine.query(&sql).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        groups = result.rows.len(),
        "Allocation query finished."
    );
    read_allocation(&plan, &result)
}

/// Turns the allocation query's result into an [`Allocation`].
pub fn read_allocation(
    plan: &AllocationPlan,
    result: &ResultTable,
) -> Result<Allocation, EngineError> {
    let column = |name: &str| {
        result.position(name).ok_or_else(|| EngineError::Execution {
            context: "reading the allocation result".into(),
            source: format!("column `{name}` is missing; got {:?}", result.columns).into(),
        })
    };
    let keys: Vec<usize> = plan
        .group_by
        .iter()
        .map(|d| column(d.name()))
        .collect::<Result<_, _>>()?;
    let metrics: Vec<usize> = CostMetric::ALL
        .iter()
        .map(|m| column(m.sql_alias()))
        .collect::<Result<_, _>>()?;
    let allocated = column(ALLOCATED_COLUMN)?;
    let resources = column(RESOURCES_COLUMN)?;
    let line_items = column(LINE_ITEMS_COLUMN)?;
    let tag_sources: Vec<usize> = (0..plan.tag_sources().len())
        .map(|i| column(&format!("{TAG_SOURCE_COLUMN_PREFIX}{i}")))
        .collect::<Result<_, _>>()?;
    let mut tag_source_counts = vec![0u64; tag_sources.len()];
    let number = |row: &[crate::ports::Cell], at: usize| {
        row[at].as_f64().ok_or_else(|| EngineError::Execution {
            context: "reading the allocation result".into(),
            source: format!("`{}` is not a number: {:?}", result.columns[at], row[at]).into(),
        })
    };
    let mut rows = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        let mut costs = CostVector::default();
        for (slot, &at) in costs.0.iter_mut().zip(&metrics) {
            *slot = number(row, at)?;
        }
        for (count, &at) in tag_source_counts.iter_mut().zip(&tag_sources) {
            *count += number(row, at)? as u64;
        }
        rows.push(AllocationRow {
            keys: keys.iter().map(|&at| row[at].as_text()).collect(),
            allocated: number(row, allocated)? != 0.0,
            costs,
            resources: number(row, resources)? as u64,
            line_items: number(row, line_items)? as u64,
        });
    }
    // A tag that no line item in the window carries is reported, never silently empty.
    let mut noted = plan.clone();
    noted.note_tag_presence(&tag_source_counts);
    Ok(Allocation {
        flavour: plan.flavour,
        window: plan.window,
        group_by: plan.group_by.clone(),
        rows,
        warnings: noted.warnings,
    })
}

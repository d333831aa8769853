//! The allocation use case: plan against the engine's columns, probe tags, run, read the result.

use crate::domain::allocation::{Allocation, AllocationRow, CostVector};
use crate::domain::plan::AllocationPlan;
use crate::domain::sql::{
    render_allocation, render_tag_probe, ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCES_COLUMN,
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
    let mut plan = AllocationPlan::new(engine.columns(), request)?;
    engine.prepare(&plan.required_columns()).await?;
    if let Some(probe) = render_tag_probe(&plan, engine.dialect(), &engine.table())? {
        let result = engine.query(&probe).await?;
        let counts: Vec<u64> = result
            .rows
            .first()
            .map(|row| {
                row.iter()
                    .map(|c| c.as_f64().unwrap_or(0.0) as u64)
                    .collect()
            })
            .unwrap_or_default();
        plan.note_tag_presence(&counts);
    }
    let sql = render_allocation(&plan, engine.dialect(), &engine.table())?;
    tracing::debug!(sql = %sql, "Rendered allocation query.");
    let result = engine.query(&sql).await?;
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
        rows.push(AllocationRow {
            keys: keys.iter().map(|&at| row[at].as_text()).collect(),
            allocated: number(row, allocated)? != 0.0,
            costs,
            resources: number(row, resources)? as u64,
            line_items: number(row, line_items)? as u64,
        });
    }
    Ok(Allocation {
        flavour: plan.flavour,
        window: plan.window,
        group_by: plan.group_by.clone(),
        rows,
        warnings: plan.warnings.clone(),
    })
}

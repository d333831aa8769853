//! The allocation use case: plan against the engine's columns, run one query, read the result.

use crate::domain::allocation::{Allocation, AllocationRow, CostVector};
use crate::domain::plan::Warning;
use crate::domain::plan::{AllocationPlan, Presence};
use crate::domain::resources::ResourceSet;
use crate::domain::sql::{
    render_allocation, ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCES_COLUMN,
    RESOURCE_HASHES_COLUMN, TAG_SOURCE_COLUMN_PREFIX, UNREADABLE_TAGS_COLUMN,
};
use crate::domain::{AllocationRequest, CostMetric, UNALLOCATED};
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
    // Either the count or, when the plan asked for them, the set of resource hashes.
    let resources = column(if plan.resource_ids {
        RESOURCE_HASHES_COLUMN
    } else {
        RESOURCES_COLUMN
    })?;
    let line_items = column(LINE_ITEMS_COLUMN)?;
    // Where each tag source's presence count comes from: a counted column or a group key.
    let presence: Vec<Result<usize, usize>> = plan
        .presence()
        .into_iter()
        .map(|p| match p {
            Presence::Counted(n) => column(&format!("{TAG_SOURCE_COLUMN_PREFIX}{n}")).map(Ok),
            Presence::FromGroupKey(position) => Ok(Err(keys[position])),
        })
        .collect::<Result<_, _>>()?;
    // Only the local engine counts unreadable tag cells (Athena reads typed maps): optional.
    let unreadable_tags = result.position(UNREADABLE_TAGS_COLUMN);
    let mut unreadable_count = 0u64;
    let mut tag_source_counts = vec![0u64; presence.len()];
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
        for (count, source) in tag_source_counts.iter_mut().zip(&presence) {
            *count += match *source {
                Ok(at) => number(row, at)? as u64,
                Err(key) if row[key].as_text() != UNALLOCATED => number(row, line_items)? as u64,
                Err(_) => 0,
            };
        }
        if let Some(at) = unreadable_tags {
            unreadable_count += number(row, at)? as u64;
        }
        let resource_ids = if plan.resource_ids {
            let set = ResourceSet::parse(&row[resources].as_text()).map_err(|reason| {
                EngineError::Execution {
                    context: "reading the allocation result".into(),
                    source: format!("`{RESOURCE_HASHES_COLUMN}`: {reason}").into(),
                }
            })?;
            Some(set)
        } else {
            None
        };
        rows.push(AllocationRow {
            keys: keys.iter().map(|&at| row[at].as_text()).collect(),
            allocated: number(row, allocated)? != 0.0,
            costs,
            resources: match &resource_ids {
                Some(set) => set.len(),
                None => number(row, resources)? as u64,
            },
            resource_ids,
            line_items: number(row, line_items)? as u64,
        });
    }
    // A tag that no line item in the window carries is reported, never silently empty.
    let mut noted = plan.clone();
    noted.note_tag_presence(&tag_source_counts);
    if unreadable_count > 0 {
        noted.warnings.push(Warning::UnreadableTags {
            line_items: unreadable_count,
        });
    }
    Ok(Allocation {
        flavour: plan.flavour,
        window: plan.window,
        group_by: plan.group_by.clone(),
        rows,
        warnings: noted.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::columns::ColumnSet;
    use crate::domain::tags::Concept;
    use crate::domain::Dimension;
    use crate::ports::Cell;

    fn plan() -> AllocationPlan {
        let columns = ColumnSet::new([
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "line_item_product_code",
            "line_item_usage_account_id",
            "resource_tags_user_kubernetes_namespace",
        ]);
        let request = AllocationRequest {
            group_by: vec![Dimension::Namespace],
            ..AllocationRequest::default()
        };
        AllocationPlan::new(&columns, &request).expect("plannable")
    }

    fn result(namespaces: &[&str]) -> ResultTable {
        let columns = [
            "namespace",
            "allocated",
            "list_cost",
            "net_cost",
            "amortized_cost",
            "amortized_net_cost",
            "resources",
            "line_items",
        ];
        ResultTable {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: namespaces
                .iter()
                .map(|ns| {
                    let mut row = vec![
                        Cell::Text(ns.to_string()),
                        Cell::Integer(i64::from(*ns != UNALLOCATED)),
                    ];
                    row.extend([
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                    ]);
                    row.extend([Cell::Integer(1), Cell::Integer(3)]);
                    row
                })
                .collect(),
        }
    }

    #[test]
    fn a_grouped_single_source_tag_needs_no_counting_column() {
        assert_eq!(plan().presence(), vec![Presence::FromGroupKey(0)]);
    }

    #[test]
    fn tag_never_set_is_derived_from_the_group_keys() {
        let never = read_allocation(&plan(), &result(&[UNALLOCATED])).expect("reads");
        let expected = Warning::TagNeverSet {
            concept: Concept::Namespace,
            key: "kubernetes_namespace".into(),
        };
        assert!(never.warnings.contains(&expected), "{:?}", never.warnings);
        let set = read_allocation(&plan(), &result(&[UNALLOCATED, "payments"])).expect("reads");
        assert!(!set.warnings.contains(&expected), "{:?}", set.warnings);
        assert_eq!(set.rows.iter().map(|r| r.line_items).sum::<u64>(), 6);
    }

    #[test]
    fn a_result_missing_a_column_is_an_error_naming_it() {
        let mut table = result(&["payments"]);
        table.columns[2] = "something_else".into();
        let err = read_allocation(&plan(), &table)
            .expect_err("list_cost is missing")
            .to_string();
        assert!(err.contains("`list_cost` is missing"), "{err}");
    }
}

//! The reference allocator: the plan evaluated row by row in plain Rust.
//!
//! It is the executable statement of the rules that the SQL engines must match: tests run both over the
//! same data and compare. It also serves small in-memory inputs.

use super::allocation::{Allocation, AllocationRow, CostVector};
use super::dimension::Dimension;
use super::expr::LineItemValues;
use super::plan::{AllocationPlan, SPLIT_COST_OPERATIONS};
use super::resources::{resource_hash, ResourceSet};
use super::tags::{Concept, TagSource};
use super::UNALLOCATED;
use std::collections::{BTreeMap, HashSet};

#[derive(Default)]
struct Group {
    costs: CostVector,
    resources: HashSet<String>,
    line_items: u64,
}

fn tag_value(plan: &AllocationPlan, concept: Concept, item: &dyn LineItemValues) -> String {
    plan.sources(concept)
        .iter()
        .find_map(|(_, source)| {
            let raw = match source {
                TagSource::Column(column) => item.text(column),
                TagSource::MapKey { column, key } => item.tag(column, key),
            };
            raw.map(str::trim).filter(|v| !v.is_empty())
        })
        .unwrap_or(UNALLOCATED)
        .to_string()
}

fn keep(plan: &AllocationPlan, item: &dyn LineItemValues) -> bool {
    if let Some(window) = plan.window {
        match item.day(&plan.day_column) {
            Some(day) if window.contains(day) => {}
            _ => return false,
        }
    }
    if let Some(operation) = &plan.operation_column {
        if item
            .text(operation)
            .is_some_and(|op| SPLIT_COST_OPERATIONS.contains(&op))
        {
            return false;
        }
    }
    if !plan.accounts.is_empty() {
        let account = item.text(&plan.account_column).unwrap_or("");
        if !plan.accounts.iter().any(|a| a.as_str() == account) {
            return false;
        }
    }
    true
}

/// Allocates `items` by `plan`, exactly as the rendered SQL does.
pub fn allocate<'a, I>(plan: &AllocationPlan, items: I) -> Allocation
where
    I: IntoIterator<Item = &'a dyn LineItemValues>,
{
    let mut groups: BTreeMap<(Vec<String>, bool), Group> = BTreeMap::new();
    for item in items {
        if !keep(plan, item) {
            continue;
        }
        let keys: Vec<String> = plan
            .group_by
            .iter()
            .map(|dimension| match dimension {
                Dimension::Day => item
                    .day(&plan.day_column)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                Dimension::Service => item
                    .text(&plan.service_column)
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                Dimension::Account => item
                    .text(&plan.account_column)
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                Dimension::Resource => plan
                    .resource_column
                    .as_ref()
                    .and_then(|c| item.text(c))
                    .map(str::trim)
                    .filter(|id| plan.resources.iter().any(|r| r == id))
                    .unwrap_or("")
                    .to_string(),
                other => other
                    .concept()
                    .map(|c| tag_value(plan, c, item))
                    .unwrap_or_default(),
            })
            .collect();
        let allocated = tag_value(plan, Concept::Namespace, item) != UNALLOCATED;
        let group = groups.entry((keys, allocated)).or_default();
        for (slot, metric) in group.costs.0.iter_mut().zip(&plan.metrics) {
            *slot += metric.eval(item);
        }
        if let Some(resource) = plan
            .resource_column
            .as_ref()
            .and_then(|c| item.text(c))
            .map(str::trim)
        {
            if !resource.is_empty() {
                group.resources.insert(resource.to_string());
            }
        }
        group.line_items += 1;
    }
    Allocation {
        flavour: plan.flavour,
        window: plan.window,
        group_by: plan.group_by.clone(),
        rows: groups
            .into_iter()
            .map(|((keys, allocated), g)| AllocationRow {
                keys,
                allocated,
                costs: g.costs,
                shared: Default::default(),
                resources: g.resources.len() as u64,
                resource_ids: plan.resource_ids.then(|| {
                    ResourceSet::from_hashes(g.resources.iter().filter_map(|r| resource_hash(r)))
                }),
                line_items: g.line_items,
            })
            .collect(),
        warnings: plan.warnings.clone(),
    }
}

//! `resources` = distinct resources over the requested window, checked against a direct count over the
//! generated line items: the snapshots the API serves (any window, any aggregate) and the allocation
//! `kubecur allocate` runs (the local engine).

use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::domain::expr::LineItemValues;
use kubecur_shared::domain::plan::SPLIT_COST_OPERATIONS;
use kubecur_shared::domain::snapshot::{answer, build_snapshot, split_by_period, Level};
use kubecur_shared::domain::tags::TagSource;
use kubecur_shared::domain::{
    Allocation, AllocationPlan, AllocationRequest, CostMetric, Dimension, UsageWindow, UNALLOCATED,
};
use kubecur_shared::ports::{AllocationEngine, NoProgress};
use kubecur_shared::sample::SampleOutput;
use kubecur_shared::service;
use kubecur_tests::sample;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

async fn engine() -> NativeEngine {
    let path = sample().path(SampleOutput::LegacyParquet);
    NativeEngine::open(&path.display().to_string(), None, Arc::new(NoProgress))
        .await
        .expect("legacy sample opens")
}

fn day(text: &str) -> chrono::NaiveDate {
    UsageWindow::parse_day("day", text).expect("valid day")
}

/// Per display key (`a/b`), the distinct non-empty resource ids of the window's line items, counted
/// directly: the plan only names the columns; no SQL, snapshot or hash is involved.
fn direct_count(plan: &AllocationPlan, window: UsageWindow) -> BTreeMap<String, u64> {
    let tag = |item: &dyn LineItemValues, dimension: Dimension| -> String {
        let concept = dimension.concept().expect("a tag dimension");
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
    };
    let resource = plan.resource_column.as_deref().expect("resource ids");
    let operation = plan.operation_column.as_deref().expect("operation column");
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in &sample().line_items() {
        let item: &dyn LineItemValues = item;
        let Some(usage_day) = item.day(&plan.day_column) else {
            continue;
        };
        if !window.contains(usage_day)
            || item
                .text(operation)
                .is_some_and(|op| SPLIT_COST_OPERATIONS.contains(&op))
        {
            continue;
        }
        let key = plan
            .group_by
            .iter()
            .map(|d| match d {
                Dimension::Day => usage_day.to_string(),
                Dimension::Service => item.text(&plan.service_column).unwrap_or("").trim().into(),
                Dimension::Account => item.text(&plan.account_column).unwrap_or("").trim().into(),
                other => tag(item, *other),
            })
            .collect::<Vec<_>>()
            .join("/");
        let ids = sets.entry(key).or_default();
        if let Some(id) = item.text(resource).map(str::trim).filter(|r| !r.is_empty()) {
            ids.insert(id.to_string());
        }
    }
    sets.into_iter()
        .map(|(key, ids)| (key, ids.len() as u64))
        .collect()
}

fn per_key(allocation: &Allocation) -> BTreeMap<String, u64> {
    allocation
        .display_rows(CostMetric::AmortizedNetCost)
        .into_iter()
        .map(|row| (row.keys.join("/"), row.resources))
        .collect()
}

#[tokio::test]
async fn resources_are_distinct_over_any_window_in_snapshots_and_allocations() {
    // The snapshots, built as `kubecur serve` and the writer build them.
    let engine = engine().await;
    let full = service::allocate(
        &engine,
        &AllocationRequest {
            resource_ids: true,
            ..AllocationRequest::default()
        },
    )
    .await
    .expect("full grain");
    let mut groups = Vec::new();
    for (_, allocation) in split_by_period(&full).expect("by period") {
        groups.extend(build_snapshot(&allocation).expect("snapshot"));
    }
    let aggregates: [&[Dimension]; 6] = [
        &[Dimension::Namespace],
        &[Dimension::Service],
        &[Dimension::Account],
        &[Dimension::Cluster, Dimension::Deployment],
        &[Dimension::Namespace, Dimension::Pod],
        &[Dimension::Day, Dimension::Namespace],
    ];
    let windows = [
        ("2024-06-01", "2024-07-01"),
        ("2024-06-03", "2024-06-10"),
        ("2024-06-15", "2024-06-16"),
        ("2024-05-20", "2024-06-05"),
    ];
    let mut rows = 0;
    let mut beyond_one_day = 0;
    for (from, to) in windows {
        let window = UsageWindow::new(day(from), day(to)).expect("window");
        for aggregate in aggregates {
            let context = format!("{from}..{to} by {aggregate:?}");
            let request = AllocationRequest {
                window: Some(window),
                group_by: aggregate.to_vec(),
                // As `kubecur allocate` sets it.
                resource_ids: !aggregate.contains(&Dimension::Namespace),
                ..AllocationRequest::default()
            };
            let plan = AllocationPlan::new(engine.columns(), &request).expect("plannable");
            let expected = direct_count(&plan, window);

            let level = Level::serving(aggregate);
            let served = answer(
                &groups,
                window,
                aggregate,
                |g| g.level == level,
                full.flavour,
                vec![],
            );
            assert_eq!(per_key(&served), expected, "{context}: snapshot");

            let allocated = service::allocate(&engine, &request)
                .await
                .expect("allocates");
            assert_eq!(per_key(&allocated), expected, "{context}: allocate");

            rows += expected.len();
            if to > "2024-06-16" || from < "2024-06-01" {
                beyond_one_day += expected.values().filter(|n| **n > 1).count();
            }
        }
    }
    assert!(
        rows > 100 && beyond_one_day > 20,
        "{rows} rows, {beyond_one_day} multi-day"
    );
}

//! Law: for every metric, allocated + unallocated = the CUR total of the window, for any line items,
//! any grouping and any tag mapping (to 1e-9 relative); and after sharing (`domain::share`), + the fixed
//! amounts placed.

use chrono::NaiveDate;
use kubecur_shared::domain::columns::ColumnSet;
use kubecur_shared::domain::evaluate::allocate;
use kubecur_shared::domain::expr::LineItemValues;
use kubecur_shared::domain::plan::SPLIT_COST_OPERATIONS;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, CostMetric, Dimension, UsageWindow,
};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Item {
    day: NaiveDate,
    text: HashMap<&'static str, String>,
    numbers: HashMap<&'static str, f64>,
}

impl LineItemValues for Item {
    fn number(&self, column: &str) -> Option<f64> {
        self.numbers.get(column).copied()
    }
    fn text(&self, column: &str) -> Option<&str> {
        self.text.get(column).map(String::as_str)
    }
    fn tag(&self, _: &str, _: &str) -> Option<&str> {
        None
    }
    fn day(&self, _: &str) -> Option<NaiveDate> {
        Some(self.day)
    }
}

const TYPES: [&str; 17] = [
    "Usage",
    "DiscountedUsage",
    "RIFee",
    "Fee",
    "SavingsPlanCoveredUsage",
    "SavingsPlanNegation",
    "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee",
    "Credit",
    "Refund",
    "Tax",
    "EdpDiscount",
    "PrivateRateDiscount",
    "BundledDiscount",
    "Discount",
    "NewTypeFrom2027",
    "",
];
const NUMBER_COLUMNS: [&str; 11] = [
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "reservation_effective_cost",
    "reservation_net_effective_cost",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_net_savings_plan_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_net_unused_recurring_fee",
];
const TAG_COLUMNS: [&str; 4] = [
    "resource_tags_user_kubernetes_namespace",
    "resource_tags_user_kubernetes_deployment",
    "resource_tags_user_kubernetes_pod",
    "resource_tags_user_team",
];
const TAG_VALUES: [&str; 6] = ["payments", "", "  ", "zahlungsverkehr-ü", "支付", "O'Brien"];

/// Every fixed dimension and `label:team` (the tag column `resource_tags_user_team`).
fn dimensions() -> Vec<Dimension> {
    let team = kubecur_shared::domain::Label::new("team").expect("valid");
    Dimension::ALL
        .into_iter()
        .chain([Dimension::Label(team)])
        .collect()
}

fn item() -> impl Strategy<Value = Item> {
    (
        0u32..45,
        prop::sample::select(TYPES.to_vec()),
        prop::collection::vec(prop::option::of(-1000.0f64..1000.0), NUMBER_COLUMNS.len()),
        prop::collection::vec(
            prop::option::of(prop::sample::select(TAG_VALUES.to_vec())),
            TAG_COLUMNS.len(),
        ),
        prop::option::of(prop::sample::select(vec![
            "RunInstances",
            SPLIT_COST_OPERATIONS[0],
            SPLIT_COST_OPERATIONS[1],
        ])),
        prop::sample::select(vec!["111111111111", "222222222222"]),
        prop::option::of(prop::sample::select(vec![
            "db-1",
            "bucket-a",
            "vol-9",
            "",
            "arn:aws:ec2:x:reserved-instances/r",
        ])),
    )
        .prop_map(|(day, kind, numbers, tags, operation, account, resource)| {
            let mut text: HashMap<&'static str, String> = HashMap::new();
            text.insert("line_item_line_item_type", kind.to_string());
            text.insert("line_item_product_code", "AmazonRDS".into());
            text.insert("line_item_usage_account_id", account.into());
            for (column, value) in TAG_COLUMNS.iter().zip(tags) {
                if let Some(v) = value {
                    text.insert(column, v.to_string());
                }
            }
            if let Some(op) = operation {
                text.insert("line_item_operation", op.into());
            }
            if let Some(r) = resource {
                text.insert("line_item_resource_id", r.into());
                text.insert("reservation_reservation_a_r_n", r.into());
            }
            let numbers = NUMBER_COLUMNS
                .iter()
                .zip(numbers)
                .filter_map(|(c, v)| v.map(|v| (*c, v)))
                .collect();
            let day = NaiveDate::from_ymd_opt(2024, 6, 1)
                .and_then(|d| d.checked_add_days(chrono::Days::new(day.into())));
            Item {
                day: day.unwrap_or(NaiveDate::MIN),
                text,
                numbers,
            }
        })
}

fn columns() -> ColumnSet {
    let mut names: Vec<&str> = vec![
        "line_item_usage_start_date",
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_usage_account_id",
        "line_item_resource_id",
        "line_item_operation",
        "reservation_reservation_a_r_n",
    ];
    names.extend(NUMBER_COLUMNS);
    names.extend(TAG_COLUMNS);
    ColumnSet::new(names)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocated_plus_unallocated_is_the_window_total(
        items in prop::collection::vec(item(), 0..200),
        group_by in prop::sample::subsequence(dimensions(), 1..=10),
        namespace_keys in prop::sample::select(vec!["kubernetes_namespace", "team,kubernetes_namespace", "absent_tag"]),
        windowed in any::<bool>(),
        one_account in any::<bool>(),
    ) {
        let mut request = AllocationRequest { group_by, ..AllocationRequest::default() };
        request.tag_mapping.apply_override(&format!("namespace={namespace_keys}")).expect("valid mapping");
        if windowed {
            let from = NaiveDate::from_ymd_opt(2024, 6, 10).expect("valid");
            let to = NaiveDate::from_ymd_opt(2024, 7, 1).expect("valid");
            request.window = Some(UsageWindow::new(from, to).expect("valid"));
        }
        if one_account {
            request.accounts = vec![kubecur_shared::domain::plan::AccountId::parse("111111111111").expect("valid")];
        }
        let plan = AllocationPlan::new(&columns(), &request).expect("plannable");
        let allocation = allocate(&plan, items.iter().map(|i| i as &dyn LineItemValues));

        // The total, computed independently of grouping: every kept line item once.
        let kept: Vec<&Item> = items.iter().filter(|i| {
            request.window.is_none_or(|w| w.contains(i.day))
                && !i.text.get("line_item_operation").is_some_and(|op| SPLIT_COST_OPERATIONS.contains(&op.as_str()))
                && (!one_account || i.text["line_item_usage_account_id"] == "111111111111")
        }).collect();
        for metric in CostMetric::ALL {
            let expected: f64 = kept.iter().map(|i| plan.metrics[metric.index()].eval(*i)).sum();
            let summary = allocation.summary(metric);
            prop_assert!(close(summary.allocated + summary.unallocated, expected),
                "{metric}: {} + {} != {expected}", summary.allocated, summary.unallocated);
            prop_assert!(close(summary.total, expected));
            let regrouped = allocation.regroup(&allocation.group_by[..1]).expect("prefix of the keys");
            prop_assert!(close(regrouped.totals().get(metric), expected));
        }
        let line_items: u64 = allocation.rows.iter().map(|r| r.line_items).sum();
        prop_assert_eq!(line_items, kept.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Sharing moves cost, never makes or loses it: for every metric, any rules, allocated +
    /// unallocated after sharing = the window's CUR total + the fixed amounts placed, and each fixed
    /// amount placed is its monthly figure pro-rated to the window.
    #[test]
    fn sharing_keeps_the_window_total(
        items in prop::collection::vec(item(), 0..200),
        aggregate in prop::sample::subsequence(dimensions(), 1..=3),
        share_labels in prop::sample::subsequence(TAG_VALUES.to_vec(), 0..=2),
        namespaces in prop::sample::subsequence(vec!["payments", "zahlungsverkehr-ü", "支付", "O'Brien", "absent"], 0..=2),
        unallocated in any::<bool>(),
        cost in prop::option::of(-500.0f64..5000.0),
        even in any::<bool>(),
        with_file in any::<bool>(),
        by_resource in any::<bool>(),
        metric in prop::sample::select(CostMetric::ALL.to_vec()),
    ) {
        use kubecur_shared::domain::plan::Warning;
        use kubecur_shared::domain::share::{month_fraction, ShareParameters, ShareRules, Split};
        let file = r#"{"rules": [
            {"name": "account two", "select": {"account": "222222222222", "unallocated": true},
             "split": {"percent": {"payments": 60, "支付": 40}}}
        ]}"#;
        let mut configured = if with_file { ShareRules::parse_json(file).expect("valid") } else { ShareRules::default() };
        // A shared database and volume selected by resource id, first among the rules.
        let resource_rule = r#"{"rules": [
            {"name": "shared db", "select": {"resource": ["db-1", "vol-9"]}, "split": "even"}
        ]}"#;
        if by_resource {
            let mut rules = ShareRules::parse_json(resource_rule).expect("valid").rules;
            rules.append(&mut configured.rules);
            configured.rules = rules;
        }
        let team = kubecur_shared::domain::Label::new("team").expect("valid");
        let rules = configured.with_parameters(&ShareParameters {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            labels: if share_labels.is_empty() {
                Vec::new()
            } else {
                vec![(team, share_labels.iter().map(|v| v.to_string()).collect())]
            },
            unallocated,
            cost_per_month: cost,
            split: Some(if even { Split::Even } else { Split::Weighted }),
        });
        let from = NaiveDate::from_ymd_opt(2024, 6, 10).expect("valid");
        let to = NaiveDate::from_ymd_opt(2024, 7, 1).expect("valid");
        let window = UsageWindow::new(from, to).expect("valid");
        let request = AllocationRequest {
            group_by: rules.grain(&aggregate),
            window: Some(window),
            resources: rules.resource_ids(),
            ..AllocationRequest::default()
        };
        let plan = AllocationPlan::new(&columns(), &request).expect("plannable");
        let allocation = allocate(&plan, items.iter().map(|i| i as &dyn LineItemValues));
        let shared = rules.apply_for(&allocation, &aggregate, metric).expect("windowed, at the rules' grain");
        let answer = shared.allocation.regroup(&aggregate).expect("the aggregate leads the grain");

        let kept: Vec<&Item> = items.iter().filter(|i| {
            window.contains(i.day)
                && !i.text.get("line_item_operation").is_some_and(|op| SPLIT_COST_OPERATIONS.contains(&op.as_str()))
        }).collect();
        let fixed = shared.sources.iter().find(|s| s.rule.starts_with("shareCost="));
        if let (Some(cost), Some(fixed)) = (cost, fixed) {
            let unplaced = answer.warnings.iter().any(|w| matches!(w, Warning::ShareHasNoReceivers { rule } if rule == &fixed.rule));
            // Unplaced (no receiver on some day): only part of it, never more.
            let expected = cost * month_fraction(window);
            for m in CostMetric::ALL {
                let placed = fixed.costs.get(m);
                if unplaced {
                    prop_assert!(placed.abs() <= expected.abs() * (1.0 + 1e-9), "{m}: placed {placed} of {expected}");
                } else {
                    prop_assert!(close(placed, expected), "{m}: placed {placed} of {expected}");
                }
            }
        }
        for m in CostMetric::ALL {
            let cur: f64 = kept.iter().map(|i| plan.metrics[m.index()].eval(*i)).sum();
            let placed = fixed.map_or(0.0, |f| f.costs.get(m));
            let summary = answer.summary(m);
            prop_assert!(close(summary.allocated + summary.unallocated, cur + placed),
                "{m}: {} + {} != {cur} + {placed}", summary.allocated, summary.unallocated);
            prop_assert!(answer.rows.iter().all(|r| r.costs.get(m).is_finite() && r.shared.get(m).is_finite()));
            // What the receivers got is what the rules that found receivers moved.
            let received: f64 = answer.rows.iter().map(|r| r.shared.get(m)).sum();
            let moved: f64 = shared.sources.iter().map(|s| s.costs.get(m)).sum();
            prop_assert!(close(received, moved), "{m}: received {received}, moved {moved}");
        }
        // No shared namespace is left in the answer unless its rule found no receiver.
        if let Some(ns_at) = answer.group_by.iter().position(|d| *d == Dimension::Namespace) {
            let kept_sources = answer.warnings.iter().any(|w| matches!(w, Warning::ShareHasNoReceivers { .. }));
            if !kept_sources {
                prop_assert!(answer.rows.iter().all(|r| !namespaces.contains(&r.keys[ns_at].as_str())));
            }
        }
    }
}

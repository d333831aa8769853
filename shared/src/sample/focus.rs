//! The FOCUS 1.x schema: columns, and the cost columns priced from the legacy line item by kubecur's own
//! rule table, so FOCUS allocates to the same numbers as the CUR flavours for the metrics it carries.

use super::estate::{SampleLineItem, NUMBER_COLUMNS, PAYER};
use super::write::{Column, Fill};
use crate::domain::columns::{aws_column_name, ColumnSet};
use crate::domain::expr::Expr;
use crate::domain::{AllocationPlan, AllocationRequest};

/// The plan that prices a sample line item by kubecur's rules (used to fill FOCUS cost columns).
pub(super) fn legacy_pricing() -> [Expr; 4] {
    let mut columns: Vec<String> = NUMBER_COLUMNS.iter().map(|h| aws_column_name(h)).collect();
    columns.extend(
        [
            "line_item_usage_start_date",
            "line_item_line_item_type",
            "line_item_product_code",
            "line_item_usage_account_id",
            "reservation_reservation_a_r_n",
        ]
        .map(String::from),
    );
    match AllocationPlan::new(&ColumnSet::new(columns), &AllocationRequest::default()) {
        Ok(plan) => plan.metrics,
        Err(_) => [Expr::Zero, Expr::Zero, Expr::Zero, Expr::Zero],
    }
}

pub(super) fn focus_columns() -> Vec<Column> {
    vec![
        Column {
            name: "BillingAccountId".into(),
            fill: Fill::Text(|_, out| out.push_str(PAYER)),
        },
        Column {
            name: "SubAccountId".into(),
            fill: Fill::Text(|i, out| out.push_str(i.account)),
        },
        Column {
            name: "ChargePeriodStart".into(),
            fill: Fill::Timestamp(|i| i.usage_start),
        },
        Column {
            name: "ChargePeriodEnd".into(),
            fill: Fill::Timestamp(SampleLineItem::usage_end),
        },
        Column {
            name: "ChargeCategory".into(),
            fill: Fill::Text(|i, out| {
                out.push_str(match i.line_item_type {
                    "Tax" => "Tax",
                    "Credit" | "Refund" => "Credit",
                    "RIFee" | "SavingsPlanRecurringFee" | "SavingsPlanUpfrontFee" | "Fee" => {
                        "Purchase"
                    }
                    _ => "Usage",
                })
            }),
        },
        Column {
            name: "ServiceName".into(),
            fill: Fill::Text(|i, out| out.push_str(i.service_name)),
        },
        Column {
            name: "ResourceId".into(),
            fill: Fill::Text(|i, out| out.push_str(&i.resource_id)),
        },
        Column {
            name: "ListCost".into(),
            fill: Fill::Metric(0),
        },
        Column {
            name: "BilledCost".into(),
            fill: Fill::Metric(1),
        },
        Column {
            name: "EffectiveCost".into(),
            fill: Fill::Metric(3),
        },
        Column {
            name: "Tags".into(),
            fill: Fill::TagMap(|k| k.to_string()),
        },
        Column {
            name: "x_Operation".into(),
            fill: Fill::Text(|i, out| out.push_str(i.operation)),
        },
        Column {
            name: "x_ServiceCode".into(),
            fill: Fill::Text(|i, out| out.push_str(i.product_code)),
        },
    ]
}

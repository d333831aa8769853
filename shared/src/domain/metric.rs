//! The four cost metrics and the rule table that computes each from a line item
//! (docs/cur-reference.md#cost-rules).

use super::columns::ColumnSet;
use super::error::DomainError;
use super::expr::{Branch, Expr};
use super::flavour::Flavour;
use super::named::named_enum;

/// A cost metric, named as OpenCost and Kubecost name them (`amortizedNetCost`: the name in requests
/// and CSV headers). Parsing accepts `amortizedNetCost`, `amortized_net_cost` or `AMORTIZEDNETCOST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[derive(Default)]
pub enum CostMetric {
    /// Unblended cost; EDP and private-rate discount rows count as 0.
    ListCost,
    /// Net unblended cost when the CUR has it, else unblended.
    NetCost,
    /// RI and Savings Plan fees spread over the usage they cover.
    AmortizedCost,
    /// The same with the `_net_` variants where they exist. The default.
    #[default]
    AmortizedNetCost,
}

named_enum!(CostMetric {
    ListCost => "listCost",
    NetCost => "netCost",
    AmortizedCost => "amortizedCost",
    AmortizedNetCost => "amortizedNetCost",
} from_str: DomainError, squashed, |given, allowed| DomainError::UnknownMetric { given, allowed });

/// `text` trimmed, without `_` and `-`, lower-cased: `amortized_net_cost` → `amortizednetcost`.
fn squashed(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_lowercase()
}

impl CostMetric {
    /// `amortized_net_cost`: the column alias in rendered SQL and engine results.
    pub fn sql_alias(self) -> &'static str {
        match self {
            CostMetric::ListCost => "list_cost",
            CostMetric::NetCost => "net_cost",
            CostMetric::AmortizedCost => "amortized_cost",
            CostMetric::AmortizedNetCost => "amortized_net_cost",
        }
    }

    /// The position of the metric in [`CostMetric::ALL`] and in a `CostVector`.
    pub fn index(self) -> usize {
        match self {
            CostMetric::ListCost => 0,
            CostMetric::NetCost => 1,
            CostMetric::AmortizedCost => 2,
            CostMetric::AmortizedNetCost => 3,
        }
    }

    /// The expression computing this metric per line item for `flavour`, built only from columns
    /// that exist in `columns`. Fails only when the flavour's base cost column is missing.
    pub fn expression(self, flavour: Flavour, columns: &ColumnSet) -> Result<Expr, DomainError> {
        match flavour {
            Flavour::Focus => focus_expression(self, columns),
            Flavour::LegacyCur | Flavour::Cur2 => cur_expression(self, flavour, columns),
        }
    }
}

// Line item types whose cost is restated elsewhere (docs/cur-reference.md#cost-rules).
const DISCOUNTS_EXCLUDED_FROM_LIST: [&str; 2] = ["EdpDiscount", "PrivateRateDiscount"];

fn types(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn cost(columns: &ColumnSet, name: &str) -> Option<Expr> {
    cost_of(columns, &[name])
}

/// The `candidates` that exist, read first-non-NULL per row; `None` if none exists.
fn cost_of(columns: &ColumnSet, candidates: &[&str]) -> Option<Expr> {
    let real: Vec<String> = candidates
        .iter()
        .filter_map(|c| columns.get(c))
        .map(str::to_string)
        .collect();
    (!real.is_empty()).then_some(Expr::Cost(real))
}

fn cur_expression(
    metric: CostMetric,
    flavour: Flavour,
    columns: &ColumnSet,
) -> Result<Expr, DomainError> {
    let unblended = cost(columns, "line_item_unblended_cost")
        .ok_or_else(|| missing(flavour, "line_item_unblended_cost", columns))?;
    let net = matches!(metric, CostMetric::NetCost | CostMetric::AmortizedNetCost);
    let base = if net {
        cost_of(
            columns,
            &["line_item_net_unblended_cost", "line_item_unblended_cost"],
        )
        .unwrap_or(unblended)
    } else {
        unblended
    };
    let type_column = columns.get("line_item_line_item_type").map(str::to_string);

    let Some(type_column) = type_column else {
        // Without the type column no rule can apply: every row is "everything else".
        return Ok(base);
    };
    match metric {
        CostMetric::NetCost => Ok(base),
        CostMetric::ListCost => Ok(Expr::ByLineItemType {
            type_column,
            branches: vec![Branch {
                types: types(&DISCOUNTS_EXCLUDED_FROM_LIST),
                requires_non_empty: None,
                then: Expr::Zero,
            }],
            otherwise: Box::new(base),
        }),
        CostMetric::AmortizedCost | CostMetric::AmortizedNetCost => {
            let pick = |net_name: &str, plain: &str| {
                if net {
                    cost_of(columns, &[net_name, plain])
                } else {
                    cost_of(columns, &[plain])
                }
            };
            let mut branches = Vec::new();
            if let Some(effective) = pick(
                "reservation_net_effective_cost",
                "reservation_effective_cost",
            ) {
                branches.push(Branch {
                    types: types(&["DiscountedUsage"]),
                    requires_non_empty: None,
                    then: effective,
                });
            }
            if let Some(effective) = pick(
                "savings_plan_net_savings_plan_effective_cost",
                "savings_plan_savings_plan_effective_cost",
            ) {
                branches.push(Branch {
                    types: types(&["SavingsPlanCoveredUsage"]),
                    requires_non_empty: None,
                    then: effective,
                });
            }
            branches.push(Branch {
                types: types(&["SavingsPlanNegation", "SavingsPlanUpfrontFee"]),
                requires_non_empty: None,
                then: Expr::Zero,
            });
            // Legacy Athena spells the ARN column `reservation_reservation_a_r_n`, CUR 2.0 `…_arn`.
            if let Some(arn) = columns.first_of(&[
                "reservation_reservation_a_r_n",
                "reservation_reservation_arn",
            ]) {
                branches.push(Branch {
                    types: types(&["Fee"]),
                    requires_non_empty: Some(arn.to_string()),
                    then: Expr::Zero,
                });
            }
            let unused_upfront = pick(
                "reservation_net_unused_amortized_upfront_fee_for_billing_period",
                "reservation_unused_amortized_upfront_fee_for_billing_period",
            );
            let unused_recurring = pick(
                "reservation_net_unused_recurring_fee",
                "reservation_unused_recurring_fee",
            );
            let ri_fee_parts: Vec<Expr> = [unused_upfront, unused_recurring]
                .into_iter()
                .flatten()
                .collect();
            if !ri_fee_parts.is_empty() {
                branches.push(Branch {
                    types: types(&["RIFee"]),
                    requires_non_empty: None,
                    then: Expr::Add(ri_fee_parts),
                });
            }
            if let (Some(total), Some(used)) = (
                cost(columns, "savings_plan_total_commitment_to_date"),
                cost(columns, "savings_plan_used_commitment"),
            ) {
                branches.push(Branch {
                    types: types(&["SavingsPlanRecurringFee"]),
                    requires_non_empty: None,
                    then: Expr::Sub(Box::new(total), Box::new(used)),
                });
            }
            Ok(Expr::ByLineItemType {
                type_column,
                branches,
                otherwise: Box::new(base),
            })
        }
    }
}

/// FOCUS carries the metrics as columns: `ListCost`, `BilledCost` (the invoice, after discounts) and
/// `EffectiveCost` (amortized, after discounts). FOCUS has no amortized-before-discount figure, so
/// `amortizedCost` is `EffectiveCost` too; the README says so.
fn focus_expression(metric: CostMetric, columns: &ColumnSet) -> Result<Expr, DomainError> {
    let need =
        |name: &str| cost(columns, name).ok_or_else(|| missing(Flavour::Focus, name, columns));
    match metric {
        CostMetric::ListCost => {
            Ok(cost(columns, "listcost").map_or_else(|| need("billedcost"), Ok)?)
        }
        CostMetric::NetCost => need("billedcost"),
        CostMetric::AmortizedCost | CostMetric::AmortizedNetCost => need("effectivecost"),
    }
}

fn missing(flavour: Flavour, column: &str, columns: &ColumnSet) -> DomainError {
    DomainError::MissingColumns {
        flavour: flavour.to_string(),
        missing: column.to_string(),
        found: super::flavour::preview(columns.names()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::expr::LineItemValues;
    use chrono::NaiveDate;
    use std::collections::HashMap;

    /// A hand-written line item: every column as text, like a CSV row.
    struct Item(HashMap<&'static str, &'static str>);

    impl LineItemValues for Item {
        fn number(&self, column: &str) -> Option<f64> {
            self.0.get(column).and_then(|v| v.parse().ok())
        }
        fn text(&self, column: &str) -> Option<&str> {
            self.0.get(column).copied()
        }
        fn tag(&self, _: &str, _: &str) -> Option<&str> {
            None
        }
        fn day(&self, _: &str) -> Option<NaiveDate> {
            None
        }
    }

    const FULL_LEGACY: [&str; 16] = [
        "line_item_usage_start_date",
        "line_item_line_item_type",
        "line_item_unblended_cost",
        "line_item_net_unblended_cost",
        "reservation_effective_cost",
        "reservation_net_effective_cost",
        "reservation_reservation_a_r_n",
        "reservation_unused_amortized_upfront_fee_for_billing_period",
        "reservation_unused_recurring_fee",
        "reservation_net_unused_amortized_upfront_fee_for_billing_period",
        "reservation_net_unused_recurring_fee",
        "savings_plan_savings_plan_effective_cost",
        "savings_plan_net_savings_plan_effective_cost",
        "savings_plan_total_commitment_to_date",
        "savings_plan_used_commitment",
        "line_item_product_code",
    ];

    fn costs(columns: &[&str], item: &[(&'static str, &'static str)]) -> [f64; 4] {
        let columns = ColumnSet::new(columns.iter().copied());
        let item = Item(item.iter().copied().collect());
        CostMetric::ALL.map(|m| {
            m.expression(Flavour::LegacyCur, &columns)
                .expect("legacy columns")
                .eval(&item)
        })
    }

    // [list, net, amortized, amortizedNet], each computed by hand from the rule table.
    #[test]
    fn plain_usage_is_unblended_everywhere_and_net_where_net_exists() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "Usage"),
                ("line_item_unblended_cost", "10"),
                ("line_item_net_unblended_cost", "9"),
            ],
        );
        assert_eq!(got, [10.0, 9.0, 10.0, 9.0]);
    }

    #[test]
    fn edp_discount_is_zero_for_list_cost_only() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "EdpDiscount"),
                ("line_item_unblended_cost", "-3"),
                ("line_item_net_unblended_cost", "-3"),
            ],
        );
        assert_eq!(got, [0.0, -3.0, -3.0, -3.0]);
    }

    #[test]
    fn private_rate_discount_is_zero_for_list_cost_only() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "PrivateRateDiscount"),
                ("line_item_unblended_cost", "-2"),
            ],
        );
        assert_eq!(got, [0.0, -2.0, -2.0, -2.0]);
    }

    #[test]
    fn discounted_usage_amortizes_to_reservation_effective_cost() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "DiscountedUsage"),
                ("line_item_unblended_cost", "0"),
                ("reservation_effective_cost", "4.5"),
                ("reservation_net_effective_cost", "4"),
            ],
        );
        assert_eq!(got, [0.0, 0.0, 4.5, 4.0]);
    }

    #[test]
    fn savings_plan_covered_usage_amortizes_to_effective_cost() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "SavingsPlanCoveredUsage"),
                ("line_item_unblended_cost", "7"),
                ("line_item_net_unblended_cost", "7"),
                ("savings_plan_savings_plan_effective_cost", "5"),
                ("savings_plan_net_savings_plan_effective_cost", "4.75"),
            ],
        );
        assert_eq!(got, [7.0, 7.0, 5.0, 4.75]);
    }

    #[test]
    fn negation_and_upfront_fee_are_zero_when_amortized() {
        for kind in ["SavingsPlanNegation", "SavingsPlanUpfrontFee"] {
            let item: [(&'static str, &'static str); 2] = [
                ("line_item_line_item_type", kind),
                ("line_item_unblended_cost", "-7"),
            ];
            assert_eq!(costs(&FULL_LEGACY, &item), [-7.0, -7.0, 0.0, 0.0], "{kind}");
        }
    }

    #[test]
    fn fee_with_reservation_arn_is_zero_when_amortized_but_marketplace_fee_is_not() {
        let ri = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "Fee"),
                ("line_item_unblended_cost", "100"),
                (
                    "reservation_reservation_a_r_n",
                    "arn:aws:ec2:…:reserved-instances/abc",
                ),
            ],
        );
        assert_eq!(ri, [100.0, 100.0, 0.0, 0.0]);
        let marketplace = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "Fee"),
                ("line_item_unblended_cost", "20"),
                ("reservation_reservation_a_r_n", ""),
            ],
        );
        assert_eq!(marketplace, [20.0, 20.0, 20.0, 20.0]);
    }

    #[test]
    fn ri_fee_amortizes_to_the_unused_part() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "RIFee"),
                ("line_item_unblended_cost", "50"),
                (
                    "reservation_unused_amortized_upfront_fee_for_billing_period",
                    "3",
                ),
                ("reservation_unused_recurring_fee", "2"),
                (
                    "reservation_net_unused_amortized_upfront_fee_for_billing_period",
                    "2.5",
                ),
                ("reservation_net_unused_recurring_fee", "1.5"),
            ],
        );
        assert_eq!(got, [50.0, 50.0, 5.0, 4.0]);
    }

    #[test]
    fn savings_plan_recurring_fee_amortizes_to_unused_commitment() {
        let got = costs(
            &FULL_LEGACY,
            &[
                ("line_item_line_item_type", "SavingsPlanRecurringFee"),
                ("line_item_unblended_cost", "30"),
                ("savings_plan_total_commitment_to_date", "30"),
                ("savings_plan_used_commitment", "26"),
            ],
        );
        assert_eq!(got, [30.0, 30.0, 4.0, 4.0]);
    }

    #[test]
    fn credits_refunds_taxes_and_unknown_types_take_the_default_branch() {
        for kind in [
            "Credit",
            "Refund",
            "Tax",
            "BundledDiscount",
            "Discount",
            "SomethingAwsAddsNextYear",
        ] {
            let item: [(&'static str, &'static str); 2] = [
                ("line_item_line_item_type", kind),
                ("line_item_unblended_cost", "-1.25"),
            ];
            assert_eq!(costs(&FULL_LEGACY, &item), [-1.25; 4], "{kind}");
        }
    }

    #[test]
    fn accounts_without_ri_or_sp_columns_still_get_every_metric() {
        let minimal = [
            "line_item_usage_start_date",
            "line_item_line_item_type",
            "line_item_unblended_cost",
        ];
        let got = costs(
            &minimal,
            &[
                ("line_item_line_item_type", "SavingsPlanNegation"),
                ("line_item_unblended_cost", "-7"),
            ],
        );
        assert_eq!(got, [-7.0, -7.0, 0.0, 0.0]);
        let usage = costs(
            &minimal,
            &[
                ("line_item_line_item_type", "Usage"),
                ("line_item_unblended_cost", "2"),
            ],
        );
        assert_eq!(usage, [2.0; 4]);
    }

    #[test]
    fn focus_metrics_are_its_cost_columns() {
        let columns = ColumnSet::new([
            "chargeperiodstart",
            "effectivecost",
            "billedcost",
            "listcost",
        ]);
        let item = Item(
            [
                ("effectivecost", "3"),
                ("billedcost", "4"),
                ("listcost", "5"),
            ]
            .into_iter()
            .collect(),
        );
        let got = CostMetric::ALL.map(|m| {
            m.expression(Flavour::Focus, &columns)
                .expect("focus")
                .eval(&item)
        });
        assert_eq!(got, [5.0, 4.0, 3.0, 3.0]);
    }

    #[test]
    fn metric_names_parse_in_several_spellings() {
        assert_eq!("amortizedNetCost".parse(), Ok(CostMetric::AmortizedNetCost));
        assert_eq!(
            "amortized_net_cost".parse(),
            Ok(CostMetric::AmortizedNetCost)
        );
        assert_eq!("LISTCOST".parse(), Ok(CostMetric::ListCost));
        let err = "blendedCost"
            .parse::<CostMetric>()
            .expect_err("not supported");
        assert!(
            err.to_string().contains("blendedCost") && err.to_string().contains("netCost"),
            "{err}"
        );
    }
}

//! A small cost-expression language: the rule table is written once in it, then rendered to each SQL
//! dialect ([`super::sql`]) and evaluated in Rust ([`Expr::eval`], the reference the engines are tested
//! against).

use chrono::NaiveDate;

/// The largest magnitude a single cost cell of a CUR may hold: 10^15 (a quadrillion in the billing
/// currency, far beyond any real line item, yet exactly representable in a double with cents to spare).
pub const MAX_COST_MAGNITUDE: f64 = 1e15;

/// Whether a cost cell's value is one kubecur adds up: finite and at most [`MAX_COST_MAGNITUDE`] in
/// magnitude. NaN, ±infinity and absurd figures (`1e400` read as infinity, `3.4e38`) are not: engines
/// refuse the data with the file and column rather than summing them into a meaningless total.
pub fn is_plausible_cost(value: f64) -> bool {
    // NaN compares false, so it is refused too.
    value.abs() <= MAX_COST_MAGNITUDE
}

/// A per-line-item cost expression. Every value is a double; a NULL cost column counts as 0.
/// Serialisable so an engine can evaluate it natively (the local engine's `kubecur_cost` function).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Expr {
    /// The constant 0.
    Zero,
    /// The first non-NULL of these numeric columns (a `_net_` column, then its plain fallback);
    /// all NULL (or empty CSV cells) counts as 0.
    Cost(Vec<String>),
    /// The sum of the parts.
    Add(Vec<Expr>),
    /// `left - right`.
    Sub(Box<Expr>, Box<Expr>),
    /// Chooses by the line item type column; a NULL or unknown type takes `otherwise`.
    ByLineItemType {
        type_column: String,
        branches: Vec<Branch>,
        otherwise: Box<Expr>,
    },
}

/// One arm of [`Expr::ByLineItemType`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Branch {
    /// The line item types this arm takes.
    pub types: Vec<String>,
    /// If set, the arm applies only when this text column is non-empty (e.g. `Fee` rows with a reservation ARN).
    pub requires_non_empty: Option<String>,
    pub then: Expr,
}

/// What a line item looks like to the Rust evaluator. Implemented by test fixtures and the sample generator.
pub trait LineItemValues {
    /// A numeric column; `None` for NULL, empty or absent.
    fn number(&self, column: &str) -> Option<f64>;
    /// A text column; `None` for NULL or absent.
    fn text(&self, column: &str) -> Option<&str>;
    /// The value of `key` in the map (or JSON object) column `column`.
    fn tag(&self, column: &str, key: &str) -> Option<&str>;
    /// The UTC day of a timestamp column.
    fn day(&self, column: &str) -> Option<NaiveDate>;
}

impl Expr {
    /// The value of the expression for one line item, with SQL's semantics.
    pub fn eval(&self, item: &dyn LineItemValues) -> f64 {
        match self {
            Expr::Zero => 0.0,
            Expr::Cost(columns) => columns.iter().find_map(|c| item.number(c)).unwrap_or(0.0),
            Expr::Add(parts) => parts.iter().map(|p| p.eval(item)).sum(),
            Expr::Sub(left, right) => left.eval(item) - right.eval(item),
            Expr::ByLineItemType {
                type_column,
                branches,
                otherwise,
            } => {
                let line_item_type = item.text(type_column);
                let chosen = branches.iter().find(|branch| {
                    line_item_type.is_some_and(|t| branch.types.iter().any(|b| b == t))
                        && branch
                            .requires_non_empty
                            .as_deref()
                            .is_none_or(|column| item.text(column).is_some_and(|v| !v.is_empty()))
                });
                match chosen {
                    Some(branch) => branch.then.eval(item),
                    None => otherwise.eval(item),
                }
            }
        }
    }

    /// Every column the expression reads, each once, in first-use order.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    /// The numeric columns among [`Expr::columns`].
    pub fn cost_columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_cost_columns(&mut out);
        out
    }

    fn collect_cost_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Zero => {}
            Expr::Cost(columns) => columns.iter().for_each(|c| push_unique(out, c)),
            Expr::Add(parts) => parts.iter().for_each(|p| p.collect_cost_columns(out)),
            Expr::Sub(l, r) => {
                l.collect_cost_columns(out);
                r.collect_cost_columns(out);
            }
            Expr::ByLineItemType {
                branches,
                otherwise,
                ..
            } => {
                branches
                    .iter()
                    .for_each(|b| b.then.collect_cost_columns(out));
                otherwise.collect_cost_columns(out);
            }
        }
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        if let Expr::ByLineItemType {
            type_column,
            branches,
            ..
        } = self
        {
            push_unique(out, type_column);
            for column in branches
                .iter()
                .filter_map(|b| b.requires_non_empty.as_ref())
            {
                push_unique(out, column);
            }
        }
        let mut costs = Vec::new();
        self.collect_cost_columns(&mut costs);
        for c in &costs {
            push_unique(out, c);
        }
    }
}

fn push_unique(out: &mut Vec<String>, column: &str) {
    if !out.iter().any(|c| c == column) {
        out.push(column.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_costs_are_finite_and_at_most_a_quadrillion() {
        for ok in [0.0, -0.0, 1.5, -1e15, 1e15, f64::MIN_POSITIVE] {
            assert!(is_plausible_cost(ok), "{ok}");
        }
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.000_000_1e15,
            -3.4e38,
            f64::MAX,
        ] {
            assert!(!is_plausible_cost(bad), "{bad}");
        }
    }
}

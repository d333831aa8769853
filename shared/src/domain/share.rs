//! Sharing: the cost of some groups (shared namespaces, untagged cost, the line items a rule selects)
//! and fixed monthly amounts, spread over the receiving groups of an answer.
//!
//! Applied at read time over an [`Allocation`], so that changing the rules needs no new query:
//! `kubecur allocate`, the API (`kubecur serve` and the API function) all call [`ShareRules::apply`].
//! The names are OpenCost's where OpenCost has one (`shareNamespaces`, `shareCost`, `shareSplit`,
//! `shareUnallocated`; <https://opencost.io/docs/integrations/api/#allocation-api>).
//!
//! The rules, in order:
//! - A row of the allocation is a *source* of the first rule whose selector matches it. Sources leave
//!   the answer; their cost is spread over the rule's receivers.
//! - *Receivers* are the allocated rows (a namespace tag) that are no rule's source, narrowed by the
//!   rule's target. `__unallocated__` never receives.
//! - `even` gives each receiver an equal part; `weighted` a part in proportion to its own cost of the
//!   chosen metric (negative costs weigh 0; when no receiver has a positive cost, `even`, with a
//!   warning); fixed percentages give each listed namespace its percentage, spread over that
//!   namespace's receivers by weight.
//! - The same fractions split each of the four metrics, so that for every metric allocated +
//!   unallocated after sharing = the CUR total of the window + the fixed amounts placed.
//! - A rule that selects nothing is a warning; a rule with sources but no receiver leaves its sources
//!   where they are, with a warning: cost is never dropped.
//! - With `day` among the keys, each day shares on its own (a day's figures add up to that day's
//!   total); otherwise the whole window shares at once.

use super::allocation::{Allocation, AllocationRow, CostVector};
use super::dimension::Dimension;
use super::error::DomainError;
use super::label::Label;
use super::metric::CostMetric;
use super::plan::Warning;
use super::window::UsageWindow;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use std::collections::BTreeMap;

/// The largest fixed amount a rule may share per month (the bound every cost cell has).
const MAX_AMOUNT: f64 = 1e15;

/// How a rule's cost is divided among its receivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    Even,
    Weighted,
    /// Namespace → percentage (adding up to 100).
    Percent(Vec<(String, f64)>),
}

impl Split {
    /// `even` or `weighted` (the forms a parameter or flag takes).
    pub fn parse(text: &str) -> Option<Split> {
        match text.trim().to_ascii_lowercase().as_str() {
            "even" => Some(Split::Even),
            "weighted" => Some(Split::Weighted),
            _ => None,
        }
    }
}

/// Which rows a rule takes (or gives to): every condition holds (a value among the listed ones for
/// each dimension), and with `unallocated` only rows without a namespace tag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    pub values: Vec<(Dimension, Vec<String>)>,
    pub unallocated: bool,
}

impl Selector {
    fn matches(&self, positions: &[usize], row: &AllocationRow) -> bool {
        (!self.unallocated || !row.allocated)
            && self
                .values
                .iter()
                .zip(positions)
                .all(|((_, allowed), &at)| allowed.iter().any(|v| *v == row.keys[at]))
    }

    fn positions(&self, group_by: &[Dimension]) -> Vec<usize> {
        self.values
            .iter()
            .map(|(d, _)| group_by.iter().position(|g| g == d).unwrap_or(usize::MAX))
            .collect()
    }
}

/// Where a rule's cost comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The rows the selector matches.
    Select(Selector),
    /// A fixed amount per calendar month, pro-rated by day (every metric gets it).
    AmountPerMonth(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShareRule {
    /// Names the rule in the answer's list of shared sources, warnings and errors.
    pub name: String,
    pub source: Source,
    /// Narrows the receivers (empty: every allocated group of the answer).
    pub target: Selector,
    pub split: Split,
}

/// The rules an answer applies, in order (a row is the source of the first rule that selects it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareRules {
    pub rules: Vec<ShareRule>,
}

/// What one rule moved in an answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedSource {
    pub rule: String,
    /// The amounts spread, per metric in [`CostMetric::ALL`] order.
    pub costs: CostVector,
    /// Line items and groups of the allocation it took (0 for a fixed amount).
    pub line_items: u64,
    pub groups: u64,
}

/// An allocation after sharing: the rows (receivers carry what they got in
/// [`AllocationRow::shared`]) and what each rule moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    pub allocation: Allocation,
    pub sources: Vec<SharedSource>,
}

/// The request parameters (`shareNamespaces`, `shareUnallocated`, `shareCost`, `shareSplit`) or the
/// same flags of `kubecur allocate`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareParameters {
    pub namespaces: Vec<String>,
    /// `shareLabels=KEY:VALUE,…`: each key's values (a row carrying any of them is shared).
    pub labels: Vec<(Label, Vec<String>)>,
    pub unallocated: bool,
    pub cost_per_month: Option<f64>,
    /// `None`: the default, `weighted`.
    pub split: Option<Split>,
}

/// A bad rule: which rule, which field, what is wrong.
fn rule_error(rule: &str, field: &str, message: impl Into<String>) -> DomainError {
    DomainError::ShareRule {
        rule: rule.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The dimensions a selector may name: every allocation key but the day, and the resource id.
fn selectable() -> Vec<Dimension> {
    Dimension::ALL
        .into_iter()
        .filter(|d| *d != Dimension::Day)
        .chain([Dimension::Resource])
        .collect()
}

/// A fixed amount: a finite number within ±1e15.
pub fn check_amount(amount: f64) -> Result<f64, String> {
    if amount.is_finite() && amount.abs() <= MAX_AMOUNT {
        Ok(amount)
    } else {
        Err(format!("{amount} is not a finite amount within ±1e15"))
    }
}

/// A fixed amount as a parameter or flag gives it (`shareCost=1500`, `--share-cost 1500`).
pub fn parse_amount(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number"))
        .and_then(check_amount)
}

impl ShareRules {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules the parameters ask for, after `self`'s (a configured rules file comes first).
    pub fn with_parameters(mut self, parameters: &ShareParameters) -> ShareRules {
        let split = parameters.split.clone().unwrap_or(Split::Weighted);
        if !parameters.namespaces.is_empty() {
            self.rules.push(ShareRule {
                name: format!("shareNamespaces={}", parameters.namespaces.join(",")),
                source: Source::Select(Selector {
                    values: vec![(Dimension::Namespace, parameters.namespaces.clone())],
                    unallocated: false,
                }),
                target: Selector::default(),
                split: split.clone(),
            });
        }
        // One rule per key: a row carrying any listed value is a source (OpenCost's `shareLabels`).
        for (label, values) in &parameters.labels {
            self.rules.push(ShareRule {
                name: format!(
                    "shareLabels={}",
                    values
                        .iter()
                        .map(|v| format!("{}:{v}", label.key()))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                source: Source::Select(Selector {
                    values: vec![(Dimension::Label(*label), values.clone())],
                    unallocated: false,
                }),
                target: Selector::default(),
                split: split.clone(),
            });
        }
        if parameters.unallocated {
            self.rules.push(ShareRule {
                name: "shareUnallocated".into(),
                source: Source::Select(Selector {
                    values: Vec::new(),
                    unallocated: true,
                }),
                target: Selector::default(),
                split: split.clone(),
            });
        }
        if let Some(amount) = parameters.cost_per_month {
            self.rules.push(ShareRule {
                name: format!("shareCost={amount}"),
                source: Source::AmountPerMonth(amount),
                target: Selector::default(),
                split,
            });
        }
        self
    }

    /// The resource ids the rules select or target by `resource`, in first-seen order: the ids an
    /// allocation must key ([`super::plan::AllocationRequest::resources`]) for the rules to apply.
    pub fn resource_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in &self.rules {
            let selectors = match &rule.source {
                Source::Select(selector) => vec![selector, &rule.target],
                Source::AmountPerMonth(_) => vec![&rule.target],
            };
            for (dimension, values) in selectors.into_iter().flat_map(|s| &s.values) {
                if *dimension == Dimension::Resource {
                    for value in values {
                        if !out.contains(value) {
                            out.push(value.clone());
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether a rule shares a fixed amount (which needs a window to be pro-rated over).
    pub fn has_fixed_amount(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.source, Source::AmountPerMonth(_)))
    }

    /// The keys to allocate by so that the rules can be applied and the answer then regrouped to
    /// `aggregate`: `aggregate` first, then every other dimension a rule names.
    pub fn grain(&self, aggregate: &[Dimension]) -> Vec<Dimension> {
        let mut grain = aggregate.to_vec();
        let mut need = |d: Dimension| {
            if !grain.contains(&d) {
                grain.push(d);
            }
        };
        for rule in &self.rules {
            if let Source::Select(selector) = &rule.source {
                selector.values.iter().for_each(|(d, _)| need(*d));
            }
            rule.target.values.iter().for_each(|(d, _)| need(*d));
            if matches!(rule.split, Split::Percent(_)) {
                need(Dimension::Namespace);
            }
        }
        grain
    }

    /// [`ShareRules::grain`], then each `filtered` dimension not already there: the grain an answer is
    /// allocated (or read) at when it is shared and filtered afterwards, so that a group's figures do
    /// not depend on which other groups a filter shows. The API and `kubecur allocate` both use it.
    pub fn grain_with_filters(
        &self,
        aggregate: &[Dimension],
        filtered: impl IntoIterator<Item = Dimension>,
    ) -> Vec<Dimension> {
        let mut grain = self.grain(aggregate);
        for d in filtered {
            if !grain.contains(&d) {
                grain.push(d);
            }
        }
        grain
    }

    /// Applies the rules to `allocation`, whose keys must hold [`ShareRules::grain`]; `metric` weighs
    /// `weighted` splits. The rows keep the allocation's keys (regroup afterwards). Fails only when
    /// a fixed amount must be pro-rated and the allocation has no window, or the keys lack a
    /// dimension a rule names.
    pub fn apply(
        &self,
        allocation: &Allocation,
        metric: CostMetric,
    ) -> Result<Shared, DomainError> {
        self.apply_for(allocation, &allocation.group_by, metric)
    }

    /// [`ShareRules::apply`] for an answer grouped by `aggregate` (a part of the allocation's keys):
    /// `even` gives each of the answer's groups an equal part, spread over the group's rows at the
    /// finer grain by weight (evenly when none weighs anything).
    pub fn apply_for(
        &self,
        allocation: &Allocation,
        aggregate: &[Dimension],
        metric: CostMetric,
    ) -> Result<Shared, DomainError> {
        let group_by = &allocation.group_by;
        if let Some(missing) = self.grain(&[]).into_iter().find(|d| !group_by.contains(d)) {
            return Err(rule_error(
                "",
                "keys",
                format!("the allocation is not grouped by `{missing}`, which a rule names"),
            ));
        }
        let day_at = group_by.iter().position(|d| *d == Dimension::Day);
        // The day partitions (one, the whole window, without `day` among the keys).
        let mut partitions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, row) in allocation.rows.iter().enumerate() {
            let day = day_at.map_or("", |at| row.keys[at].as_str());
            partitions.entry(day).or_default().push(i);
        }
        // A fixed amount is spread per day present when sharing by day, else over the whole window.
        let amount_days: Vec<(Option<&str>, f64)> = if self.has_fixed_amount() {
            match (day_at, allocation.window) {
                (Some(_), _) => partitions
                    .keys()
                    .map(|day| {
                        let share = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                            .map_or(0.0, |d| 1.0 / f64::from(days_in_month(d)));
                        (Some(*day), share)
                    })
                    .collect(),
                (None, Some(window)) => vec![(None, month_fraction(window))],
                (None, None) => {
                    return Err(DomainError::ShareCostNeedsWindow);
                }
            }
        } else {
            Vec::new()
        };
        let fraction_of = |day: &str| -> f64 {
            amount_days
                .iter()
                .find(|(d, _)| d.is_none_or(|d| d == day))
                .map_or(0.0, |(_, f)| *f)
        };

        let sources_at: Vec<Option<Vec<usize>>> = self
            .rules
            .iter()
            .map(|r| match &r.source {
                Source::Select(s) => Some(s.positions(group_by)),
                Source::AmountPerMonth(_) => None,
            })
            .collect();
        // Each row's rule, if it is a source.
        let owner: Vec<Option<usize>> = allocation
            .rows
            .iter()
            .map(|row| {
                self.rules
                    .iter()
                    .zip(&sources_at)
                    .position(|(rule, at)| match (&rule.source, at) {
                        (Source::Select(selector), Some(at)) => selector.matches(at, row),
                        _ => false,
                    })
            })
            .collect();
        let namespace_at = group_by.iter().position(|d| *d == Dimension::Namespace);
        let answer_at: Vec<usize> = aggregate
            .iter()
            .filter_map(|d| group_by.iter().position(|g| g == d))
            .collect();
        let rows = &allocation.rows;

        let mut received: Vec<CostVector> = vec![CostVector::default(); allocation.rows.len()];
        // Sources whose rule found no receiver stay in the answer.
        let mut kept_source = vec![false; allocation.rows.len()];
        let mut moved: Vec<SharedSource> = self
            .rules
            .iter()
            .map(|r| SharedSource {
                rule: r.name.clone(),
                costs: CostVector::default(),
                line_items: 0,
                groups: 0,
            })
            .collect();
        // A fixed amount always selects something; with no row at all it reaches no one.
        let mut selected_any: Vec<bool> = self
            .rules
            .iter()
            .map(|r| matches!(r.source, Source::AmountPerMonth(_)))
            .collect();
        // By day, a day of the window without any group cannot take its part of a fixed amount.
        let days_missing = day_at.is_some()
            && allocation.window.is_some_and(|w| {
                w.from()
                    .iter_days()
                    .take_while(|d| *d < w.to())
                    .any(|d| !partitions.contains_key(d.to_string().as_str()))
            });
        let mut unplaced: Vec<bool> = selected_any
            .iter()
            .map(|fixed| *fixed && (partitions.is_empty() || days_missing))
            .collect();
        let mut even_fallback = vec![false; self.rules.len()];
        let mut missing_namespaces: Vec<Vec<String>> = vec![Vec::new(); self.rules.len()];

        for (day, members) in &partitions {
            for (r, rule) in self.rules.iter().enumerate() {
                let taken: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| owner[i] == Some(r))
                    .collect();
                let mut pool = CostVector::default();
                for &i in &taken {
                    pool.add(&allocation.rows[i].costs);
                }
                if let Source::AmountPerMonth(amount) = rule.source {
                    let amount = amount * fraction_of(day);
                    pool.add(&CostVector([amount; 4]));
                } else if taken.is_empty() {
                    continue;
                }
                selected_any[r] = true;
                let target_at = rule.target.positions(group_by);
                let receivers: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let row = &allocation.rows[i];
                        row.allocated && owner[i].is_none() && rule.target.matches(&target_at, row)
                    })
                    .collect();
                let weight = |i: usize| allocation.rows[i].costs.get(metric).max(0.0);
                let parts: Vec<(usize, f64)> = match &rule.split {
                    Split::Even => even_by_group(rows, &receivers, &answer_at, weight),
                    Split::Weighted => {
                        let parts = weighted(&receivers, weight);
                        if parts.is_none() && !receivers.is_empty() {
                            even_fallback[r] = true;
                        }
                        parts.unwrap_or_else(|| even_by_group(rows, &receivers, &answer_at, weight))
                    }
                    Split::Percent(percentages) => {
                        let mut present: Vec<(f64, Vec<usize>)> = Vec::new();
                        for (namespace, percent) in percentages {
                            let rows: Vec<usize> = receivers
                                .iter()
                                .copied()
                                .filter(|&i| {
                                    namespace_at
                                        .is_some_and(|ns| allocation.rows[i].keys[ns] == *namespace)
                                })
                                .collect();
                            if rows.is_empty() {
                                if !missing_namespaces[r].contains(namespace) {
                                    missing_namespaces[r].push(namespace.clone());
                                }
                            } else {
                                present.push((*percent, rows));
                            }
                        }
                        let total: f64 = present.iter().map(|(p, _)| p).sum();
                        let mut parts = Vec::new();
                        if total > 0.0 {
                            for (percent, rows) in present {
                                let within = weighted(&rows, weight).unwrap_or_else(|| even(&rows));
                                parts.extend(
                                    within.into_iter().map(|(i, f)| (i, f * percent / total)),
                                );
                            }
                        }
                        parts
                    }
                };
                if parts.is_empty() {
                    unplaced[r] = true;
                    taken.iter().for_each(|&i| kept_source[i] = true);
                    continue;
                }
                for (i, fraction) in parts {
                    let mut part = pool;
                    part.0.iter_mut().for_each(|v| *v *= fraction);
                    received[i].add(&part);
                }
                moved[r].costs.add(&pool);
                moved[r].line_items += taken
                    .iter()
                    .map(|&i| allocation.rows[i].line_items)
                    .sum::<u64>();
                moved[r].groups += taken.len() as u64;
            }
        }

        let mut out = allocation.clone_without_rows();
        for (r, rule) in self.rules.iter().enumerate() {
            if !selected_any[r] {
                out.warnings.push(Warning::ShareSelectsNothing {
                    rule: rule.name.clone(),
                });
            }
            if unplaced[r] {
                out.warnings.push(Warning::ShareHasNoReceivers {
                    rule: rule.name.clone(),
                });
            }
            if even_fallback[r] {
                out.warnings.push(Warning::ShareSplitEvenly {
                    rule: rule.name.clone(),
                });
            }
            if !missing_namespaces[r].is_empty() {
                out.warnings.push(Warning::ShareNamespacesAbsent {
                    rule: rule.name.clone(),
                    namespaces: missing_namespaces[r].clone(),
                });
            }
        }
        for (i, row) in allocation.rows.iter().enumerate() {
            if owner[i].is_some() && !kept_source[i] {
                continue;
            }
            let mut row = row.clone();
            row.costs.add(&received[i]);
            row.shared.add(&received[i]);
            out.rows.push(row);
        }
        Ok(Shared {
            allocation: out,
            sources: moved,
        })
    }

    /// Reads a rules file (JSON):
    ///
    /// ```json
    /// { "rules": [
    ///   { "name": "shared RDS", "select": { "service": ["AmazonRDS"], "unallocated": true },
    ///     "target": { "namespace": ["payments", "search", "checkout"] }, "split": "weighted" },
    ///   { "name": "support plan", "amountPerMonth": 1500, "split": "even" },
    ///   { "name": "logging", "select": { "namespace": "logging" },
    ///     "split": { "percent": { "payments": 50, "search": 30, "checkout": 20 } } } ] }
    /// ```
    ///
    /// Every mistake is an error naming the rule (its `name`, else `#N`) and the field.
    pub fn parse_json(text: &str) -> Result<ShareRules, DomainError> {
        let document: Value = serde_json::from_str(text)
            .map_err(|e| rule_error("", "", format!("not valid JSON: {e}")))?;
        let Value::Object(top) = document else {
            return Err(rule_error(
                "",
                "",
                "the file must hold a JSON object with a `rules` array",
            ));
        };
        if let Some(key) = top.keys().find(|k| *k != "rules") {
            return Err(rule_error("", key, "unknown field; allowed: rules"));
        }
        let Some(Value::Array(items)) = top.get("rules") else {
            return Err(rule_error("", "rules", "must be an array of rules"));
        };
        let mut rules: Vec<ShareRule> = Vec::new();
        for (n, item) in items.iter().enumerate() {
            let rule = parse_rule(n + 1, item)?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(rule_error(&rule.name, "name", "is used by an earlier rule"));
            }
            rules.push(rule);
        }
        Ok(ShareRules { rules })
    }
}

fn parse_rule(n: usize, item: &Value) -> Result<ShareRule, DomainError> {
    let Value::Object(fields) = item else {
        return Err(rule_error(
            &format!("#{n}"),
            "",
            "a rule must be a JSON object",
        ));
    };
    let name = match fields.get("name") {
        None => format!("#{n}"),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => {
            return Err(rule_error(
                &format!("#{n}"),
                "name",
                "must be a non-empty string",
            ))
        }
    };
    const FIELDS: [&str; 5] = ["name", "select", "amountPerMonth", "target", "split"];
    if let Some(key) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(rule_error(
            &name,
            key,
            format!("unknown field; allowed: {}", FIELDS.join(", ")),
        ));
    }
    let source = match (fields.get("select"), fields.get("amountPerMonth")) {
        (Some(_), Some(_)) => {
            return Err(rule_error(
                &name,
                "select",
                "a rule shares either selected line items (`select`) or a fixed amount (`amountPerMonth`), not both",
            ))
        }
        (None, None) => {
            return Err(rule_error(
                &name,
                "select",
                "missing: give `select` (which line items to share) or `amountPerMonth`",
            ))
        }
        (Some(select), None) => {
            let selector = parse_selector(&name, "select", select, true)?;
            if selector.values.is_empty() && !selector.unallocated {
                return Err(rule_error(
                    &name,
                    "select",
                    "selects everything: name at least one condition",
                ));
            }
            Source::Select(selector)
        }
        (None, Some(amount)) => {
            let amount = amount
                .as_f64()
                .ok_or_else(|| rule_error(&name, "amountPerMonth", "must be a number"))?;
            Source::AmountPerMonth(
                check_amount(amount).map_err(|m| rule_error(&name, "amountPerMonth", m))?,
            )
        }
    };
    let target = match fields.get("target") {
        None => Selector::default(),
        Some(Value::String(s)) if s == "all" => Selector::default(),
        Some(value) => parse_selector(&name, "target", value, false)?,
    };
    let split = match fields.get("split") {
        None => Split::Weighted,
        Some(Value::String(s)) => Split::parse(s).ok_or_else(|| {
            rule_error(
                &name,
                "split",
                format!("`{s}` is not a split; allowed: even, weighted, {{\"percent\": {{NAMESPACE: N, …}}}}"),
            )
        })?,
        Some(Value::Object(o)) => {
            let Some(Value::Object(percent)) = o.get("percent").filter(|_| o.len() == 1) else {
                return Err(rule_error(
                    &name,
                    "split",
                    "an object split must be {\"percent\": {NAMESPACE: N, …}}",
                ));
            };
            if percent.is_empty() {
                return Err(rule_error(&name, "split.percent", "lists no namespace"));
            }
            let mut parts = Vec::new();
            for (namespace, value) in percent {
                let p = value.as_f64().filter(|p| p.is_finite() && *p >= 0.0).ok_or_else(|| {
                    rule_error(
                        &name,
                        &format!("split.percent.{namespace}"),
                        format!("`{value}` is not a percentage (a number from 0 to 100)"),
                    )
                })?;
                parts.push((namespace.clone(), p));
            }
            let total: f64 = parts.iter().map(|(_, p)| p).sum();
            if (total - 100.0).abs() > 1e-6 {
                return Err(rule_error(
                    &name,
                    "split.percent",
                    format!("the percentages add up to {total}, not 100"),
                ));
            }
            Split::Percent(parts)
        }
        Some(_) => {
            return Err(rule_error(
                &name,
                "split",
                "must be \"even\", \"weighted\" or {\"percent\": {NAMESPACE: N, …}}",
            ))
        }
    };
    Ok(ShareRule {
        name,
        source,
        target,
        split,
    })
}

fn parse_selector(
    rule: &str,
    field: &str,
    value: &Value,
    unallocated_allowed: bool,
) -> Result<Selector, DomainError> {
    let allowed_keys: Vec<&str> = selectable()
        .into_iter()
        .map(|d| d.name())
        .chain(["label:KEY"])
        .chain(unallocated_allowed.then_some("unallocated"))
        .collect();
    let Value::Object(fields) = value else {
        return Err(rule_error(
            rule,
            field,
            format!(
                "must be an object with any of: {}{}",
                allowed_keys.join(", "),
                if field == "target" {
                    " (or \"all\")"
                } else {
                    ""
                }
            ),
        ));
    };
    let mut selector = Selector::default();
    for (key, value) in fields {
        let path = format!("{field}.{key}");
        if key == "unallocated" && unallocated_allowed {
            selector.unallocated = value
                .as_bool()
                .ok_or_else(|| rule_error(rule, &path, "must be true or false"))?;
            continue;
        }
        let dimension = match Label::parse_prefixed(key) {
            Some(label) => {
                Dimension::Label(label.map_err(|e| rule_error(rule, &path, e.to_string()))?)
            }
            None => selectable()
                .into_iter()
                .find(|d| d.name() == key)
                .ok_or_else(|| {
                    rule_error(
                        rule,
                        &path,
                        format!("unknown key; allowed: {}", allowed_keys.join(", ")),
                    )
                })?,
        };
        let values: Vec<String> = match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| rule_error(rule, &path, "must be a string or a list of strings"))?,
            _ => {
                return Err(rule_error(
                    rule,
                    &path,
                    "must be a string or a list of strings",
                ))
            }
        };
        if values.is_empty() {
            return Err(rule_error(rule, &path, "lists no value"));
        }
        if dimension == Dimension::Resource {
            // Ids are compared trimmed, and rendered into the pipeline's query as literals.
            if let Some(bad) = values.iter().find(|v| {
                v.trim().is_empty() || v.trim() != v.as_str() || v.chars().any(char::is_control)
            }) {
                return Err(rule_error(
                    rule,
                    &path,
                    format!("`{}` is not a resource id (blank, surrounding spaces or a control character)", bad.escape_debug()),
                ));
            }
        }
        selector.values.push((dimension, values));
    }
    Ok(selector)
}

/// Equal parts.
fn even(receivers: &[usize]) -> Vec<(usize, f64)> {
    let n = receivers.len() as f64;
    receivers.iter().map(|&i| (i, 1.0 / n)).collect()
}

/// Equal parts per answer group (the receivers' keys at `answer_at`), each group's part spread over
/// its rows by `weight` (evenly when none of them weighs anything).
fn even_by_group(
    rows: &[AllocationRow],
    receivers: &[usize],
    answer_at: &[usize],
    weight: impl Fn(usize) -> f64,
) -> Vec<(usize, f64)> {
    let mut groups: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for &i in receivers {
        let key = answer_at
            .iter()
            .map(|&p| rows[i].keys[p].as_str())
            .collect();
        groups.entry(key).or_default().push(i);
    }
    let n = groups.len() as f64;
    groups
        .values()
        .flat_map(|members| {
            let within = weighted(members, &weight).unwrap_or_else(|| even(members));
            within.into_iter().map(move |(i, f)| (i, f / n))
        })
        .collect()
}

/// Parts in proportion to `weight`, or `None` when no receiver weighs anything.
fn weighted(receivers: &[usize], weight: impl Fn(usize) -> f64) -> Option<Vec<(usize, f64)>> {
    let total: f64 = receivers.iter().map(|&i| weight(i)).sum();
    (total > 0.0).then(|| receivers.iter().map(|&i| (i, weight(i) / total)).collect())
}

fn days_in_month(day: NaiveDate) -> u32 {
    let first = day.with_day(1).unwrap_or(day);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    (next - first).num_days().max(1) as u32
}

/// The months a window covers, day by day (June 1–16 is 15/30 = 0.5).
pub fn month_fraction(window: UsageWindow) -> f64 {
    window
        .from()
        .iter_days()
        .take_while(|d| *d < window.to())
        .map(|d| 1.0 / f64::from(days_in_month(d)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Flavour, UNALLOCATED};

    fn row(keys: &[&str], allocated: bool, cost: f64) -> AllocationRow {
        AllocationRow {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            allocated,
            costs: CostVector([cost, cost, cost * 0.5, cost * 0.5]),
            shared: CostVector::default(),
            resources: 1,
            resource_ids: None,
            line_items: 10,
        }
    }

    fn june() -> UsageWindow {
        UsageWindow::billing_period(
            super::super::window::BillingPeriod::parse("2024-06").expect("valid"),
        )
    }

    /// By namespace and service: three teams, a shared `platform` namespace, an untagged shared RDS.
    fn estate() -> Allocation {
        Allocation {
            flavour: Flavour::Cur2,
            window: Some(june()),
            group_by: vec![Dimension::Namespace, Dimension::Service],
            rows: vec![
                row(&["payments", "AmazonS3"], true, 600.0),
                row(&["search", "AmazonS3"], true, 300.0),
                row(&["checkout", "AmazonS3"], true, 100.0),
                row(&["platform", "AmazonS3"], true, 200.0),
                row(&[UNALLOCATED, "AmazonRDS"], false, 900.0),
                row(&[UNALLOCATED, "AmazonS3"], false, 50.0),
            ],
            warnings: Vec::new(),
        }
    }

    fn costs(shared: &Shared, namespace: &str, metric: CostMetric) -> (f64, f64) {
        let by_ns = shared
            .allocation
            .regroup(&[Dimension::Namespace])
            .expect("namespace is a key");
        let row = by_ns
            .rows
            .iter()
            .find(|r| r.keys[0] == namespace)
            .unwrap_or_else(|| panic!("no row {namespace}"));
        (row.costs.get(metric), row.shared.get(metric))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn even_gives_equal_parts_per_answer_group_not_per_row_of_the_finer_grain() {
        // Shared at (namespace, service) for an answer by namespace: payments has two rows, search
        // one; the 90 untagged go 45 / 45, and payments' 45 by weight over its two rows.
        let estate = Allocation {
            flavour: Flavour::Cur2,
            window: Some(june()),
            group_by: vec![Dimension::Namespace, Dimension::Service],
            rows: vec![
                row(&["payments", "AmazonS3"], true, 30.0),
                row(&["payments", "AmazonRDS"], true, 10.0),
                row(&["search", "AmazonS3"], true, 10.0),
                row(&[UNALLOCATED, "AmazonRDS"], false, 90.0),
            ],
            warnings: Vec::new(),
        };
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            unallocated: true,
            split: Some(Split::Even),
            ..ShareParameters::default()
        });
        let shared = rules
            .apply_for(&estate, &[Dimension::Namespace], CostMetric::ListCost)
            .expect("applies");
        assert_eq!(
            costs(&shared, "payments", CostMetric::ListCost),
            (85.0, 45.0)
        );
        assert_eq!(costs(&shared, "search", CostMetric::ListCost), (55.0, 45.0));
        let s3 = shared
            .allocation
            .rows
            .iter()
            .find(|r| r.keys == ["payments", "AmazonS3"])
            .expect("a row");
        assert!(close(
            s3.shared.get(CostMetric::ListCost),
            45.0 * 30.0 / 40.0
        ));
        // Answered at the grain itself, each row is a group: 30 each.
        let shared = rules.apply(&estate, CostMetric::ListCost).expect("applies");
        assert_eq!(
            costs(&shared, "payments", CostMetric::ListCost),
            (100.0, 60.0)
        );
    }

    #[test]
    fn a_shared_namespace_is_spread_by_weight_and_disappears() {
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            namespaces: vec!["platform".into()],
            ..ShareParameters::default()
        });
        let shared = rules
            .apply(&estate(), CostMetric::ListCost)
            .expect("applies");
        // platform's 200 over 600 : 300 : 100 → 120, 60, 20.
        for (ns, total, got) in [
            ("payments", 720.0, 120.0),
            ("search", 360.0, 60.0),
            ("checkout", 120.0, 20.0),
        ] {
            let (cost, part) = costs(&shared, ns, CostMetric::ListCost);
            assert!(
                close(cost, total) && close(part, got),
                "{ns}: {cost} {part}"
            );
            // The same fractions split the other metrics: amortized is half of list here.
            let (cost, part) = costs(&shared, ns, CostMetric::AmortizedCost);
            assert!(close(cost, total / 2.0) && close(part, got / 2.0), "{ns}");
        }
        assert!(shared
            .allocation
            .rows
            .iter()
            .all(|r| r.keys[0] != "platform"));
        assert_eq!(shared.sources.len(), 1);
        assert!(close(
            shared.sources[0].costs.get(CostMetric::ListCost),
            200.0
        ));
        assert_eq!(shared.sources[0].line_items, 10);
        // Untagged cost is not a receiver and stays.
        let (unallocated, part) = costs(&shared, UNALLOCATED, CostMetric::ListCost);
        assert!(close(unallocated, 950.0) && close(part, 0.0));
        assert!(close(
            shared.allocation.totals().get(CostMetric::ListCost),
            estate().totals().get(CostMetric::ListCost)
        ));
    }

    #[test]
    fn even_split_gives_equal_parts_and_unallocated_can_be_shared() {
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            unallocated: true,
            split: Some(Split::Even),
            ..ShareParameters::default()
        });
        let shared = rules
            .apply(&estate(), CostMetric::ListCost)
            .expect("applies");
        // 950 untagged over four namespaces (platform receives too: it is not shared here).
        for ns in ["payments", "search", "checkout", "platform"] {
            let (_, part) = costs(&shared, ns, CostMetric::ListCost);
            assert!(close(part, 237.5), "{ns}: {part}");
        }
        assert!(close(
            shared
                .allocation
                .unallocated_totals()
                .get(CostMetric::ListCost),
            0.0
        ));
        assert!(close(
            shared
                .allocation
                .allocated_totals()
                .get(CostMetric::ListCost),
            2150.0
        ));
    }

    #[test]
    fn a_fixed_amount_is_pro_rated_to_the_window() {
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            cost_per_month: Some(300.0),
            split: Some(Split::Even),
            ..ShareParameters::default()
        });
        let mut half = estate();
        half.window = Some(
            UsageWindow::new(
                NaiveDate::from_ymd_opt(2024, 6, 1).expect("valid"),
                NaiveDate::from_ymd_opt(2024, 6, 16).expect("valid"),
            )
            .expect("valid"),
        );
        let shared = rules.apply(&half, CostMetric::ListCost).expect("applies");
        // 300 a month, 15 of June's 30 days: 150 over four namespaces.
        let (_, part) = costs(&shared, "search", CostMetric::ListCost);
        assert!(close(part, 37.5), "{part}");
        assert!(close(
            shared.sources[0].costs.get(CostMetric::NetCost),
            150.0
        ));
        let mut unwindowed = estate();
        unwindowed.window = None;
        assert_eq!(
            rules.apply(&unwindowed, CostMetric::ListCost),
            Err(DomainError::ShareCostNeedsWindow)
        );
        // Across a month boundary each day is a share of its own month: 1/30 + 1/31.
        let two_days = UsageWindow::new(
            NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid"),
            NaiveDate::from_ymd_opt(2024, 7, 2).expect("valid"),
        )
        .expect("valid");
        assert!(close(month_fraction(two_days), 1.0 / 30.0 + 1.0 / 31.0));
    }

    #[test]
    fn a_rules_file_splits_a_shared_rds_by_percentages() {
        let rules = ShareRules::parse_json(
            r#"{"rules": [
                {"name": "shared RDS", "select": {"service": "AmazonRDS", "unallocated": true},
                 "split": {"percent": {"payments": 50, "search": 30, "checkout": 20}}}
            ]}"#,
        )
        .expect("valid");
        assert_eq!(
            rules.grain(&[Dimension::Namespace]),
            vec![Dimension::Namespace, Dimension::Service]
        );
        // Filtered dimensions come last, each once.
        assert_eq!(
            rules.grain_with_filters(
                &[Dimension::Namespace],
                [Dimension::Service, Dimension::Account, Dimension::Account]
            ),
            vec![Dimension::Namespace, Dimension::Service, Dimension::Account]
        );
        assert_eq!(
            ShareRules::default().grain_with_filters(&[Dimension::Pod], [Dimension::Namespace]),
            vec![Dimension::Pod, Dimension::Namespace]
        );
        let shared = rules
            .apply(&estate(), CostMetric::ListCost)
            .expect("applies");
        for (ns, got) in [
            ("payments", 450.0),
            ("search", 270.0),
            ("checkout", 180.0),
            ("platform", 0.0),
        ] {
            let (_, part) = costs(&shared, ns, CostMetric::ListCost);
            assert!(close(part, got), "{ns}: {part}");
        }
        // The untagged S3 cost was not selected and stays unallocated.
        assert!(close(
            shared
                .allocation
                .unallocated_totals()
                .get(CostMetric::ListCost),
            50.0
        ));
        assert!(shared.allocation.warnings.is_empty());
    }

    #[test]
    fn selecting_nothing_or_reaching_no_one_is_a_warning_and_keeps_the_cost() {
        let rules = ShareRules::parse_json(
            r#"{"rules": [
                {"name": "nothing", "select": {"namespace": "absent"}},
                {"name": "nobody", "select": {"namespace": "platform"}, "target": {"namespace": "absent"}}
            ]}"#,
        )
        .expect("valid");
        let shared = rules
            .apply(&estate(), CostMetric::ListCost)
            .expect("applies");
        assert_eq!(
            shared.allocation.warnings,
            vec![
                Warning::ShareSelectsNothing {
                    rule: "nothing".into()
                },
                Warning::ShareHasNoReceivers {
                    rule: "nobody".into()
                },
            ]
        );
        assert_eq!(shared.allocation.rows, {
            let mut rows = estate().rows;
            rows.iter_mut()
                .for_each(|r| r.shared = CostVector::default());
            rows
        });
    }

    #[test]
    fn weights_that_are_all_zero_or_negative_fall_back_to_even_with_a_warning() {
        let mut credits = estate();
        for row in credits.rows.iter_mut().filter(|r| r.keys[0] != "platform") {
            row.costs = CostVector([-1.0; 4]);
        }
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            namespaces: vec!["platform".into()],
            ..ShareParameters::default()
        });
        let shared = rules
            .apply(&credits, CostMetric::ListCost)
            .expect("applies");
        let (_, part) = costs(&shared, "search", CostMetric::ListCost);
        assert!(close(part, 200.0 / 3.0), "{part}");
        assert!(shared
            .allocation
            .warnings
            .contains(&Warning::ShareSplitEvenly {
                rule: "shareNamespaces=platform".into()
            }));
    }

    #[test]
    fn a_rule_selects_line_items_by_resource_id() {
        // The untagged RDS cost is two databases: 700 of `db-shared` and 200 of `db-other`.
        let mut by_resource = estate();
        by_resource.group_by.push(Dimension::Resource);
        by_resource.rows = vec![
            row(&["payments", "AmazonS3", ""], true, 600.0),
            row(&["search", "AmazonS3", ""], true, 300.0),
            row(&["checkout", "AmazonS3", ""], true, 100.0),
            row(&[UNALLOCATED, "AmazonRDS", "db-shared"], false, 700.0),
            row(&[UNALLOCATED, "AmazonRDS", ""], false, 200.0),
        ];
        let rules = ShareRules::parse_json(
            r#"{"rules": [{"name": "shared db", "select": {"resource": ["db-shared"]},
                           "target": {"namespace": ["payments", "search"]}, "split": "even"}]}"#,
        )
        .expect("valid");
        assert_eq!(rules.resource_ids(), vec!["db-shared".to_string()]);
        assert_eq!(
            rules.grain(&[Dimension::Namespace]),
            vec![Dimension::Namespace, Dimension::Resource]
        );
        let shared = rules
            .apply(&by_resource, CostMetric::ListCost)
            .expect("applies");
        // 700 evenly over payments and search; checkout and the other database are untouched.
        for (ns, total, part) in [
            ("payments", 950.0, 350.0),
            ("search", 650.0, 350.0),
            ("checkout", 100.0, 0.0),
        ] {
            let got = costs(&shared, ns, CostMetric::ListCost);
            assert!(close(got.0, total) && close(got.1, part), "{ns}: {got:?}");
        }
        assert!(close(
            shared
                .allocation
                .unallocated_totals()
                .get(CostMetric::ListCost),
            200.0
        ));
        assert!(close(
            shared.sources[0].costs.get(CostMetric::ListCost),
            700.0
        ));
    }

    #[test]
    fn by_day_each_day_shares_on_its_own() {
        let mut daily = estate();
        daily.group_by.insert(0, Dimension::Day);
        daily.rows = vec![
            row(&["2024-06-01", "payments", "AmazonS3"], true, 10.0),
            row(&["2024-06-01", "search", "AmazonS3"], true, 30.0),
            row(&["2024-06-01", "platform", "AmazonS3"], true, 8.0),
            row(&["2024-06-02", "payments", "AmazonS3"], true, 5.0),
            row(&["2024-06-02", "platform", "AmazonS3"], true, 4.0),
        ];
        let rules = ShareRules::default().with_parameters(&ShareParameters {
            namespaces: vec!["platform".into()],
            cost_per_month: Some(30.0),
            ..ShareParameters::default()
        });
        let shared = rules.apply(&daily, CostMetric::ListCost).expect("applies");
        let part = |day: &str, ns: &str| {
            shared
                .allocation
                .rows
                .iter()
                .find(|r| r.keys[0] == day && r.keys[1] == ns)
                .map(|r| r.shared.get(CostMetric::ListCost))
        };
        // Day 1: 8 + 1 (30 a month, June has 30 days) over 10 : 30; day 2: 4 + 1 all to payments.
        assert!(close(
            part("2024-06-01", "payments").unwrap_or(f64::NAN),
            2.25
        ));
        assert!(close(
            part("2024-06-01", "search").unwrap_or(f64::NAN),
            6.75
        ));
        assert!(close(
            part("2024-06-02", "payments").unwrap_or(f64::NAN),
            5.0
        ));
    }

    #[test]
    fn bad_rule_files_name_the_rule_and_the_field() {
        for (text, rule, field, says) in [
            ("[]", "", "", "object"),
            (r#"{"rules": [], "extra": 1}"#, "", "extra", "unknown"),
            (r#"{"rules": [{"name": "a"}]}"#, "a", "select", "missing"),
            (
                r#"{"rules": [{"name": "a", "select": {"resource": [" db-1"]}}]}"#,
                "a",
                "select.resource",
                "not a resource id",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"resource": ""}}]}"#,
                "a",
                "select.resource",
                "not a resource id",
            ),
            (
                r#"{"rules": [{"select": {"pod": "x"}, "amountPerMonth": 1}]}"#,
                "#1",
                "select",
                "not both",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {}}]}"#,
                "a",
                "select",
                "everything",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"label": "x"}}]}"#,
                "a",
                "select.label",
                "unknown key",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": 3}}]}"#,
                "a",
                "select.pod",
                "string",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": []}}]}"#,
                "a",
                "select.pod",
                "no value",
            ),
            (
                r#"{"rules": [{"name": "a", "amountPerMonth": "10"}]}"#,
                "a",
                "amountPerMonth",
                "number",
            ),
            (
                r#"{"rules": [{"name": "a", "amountPerMonth": 1e300}]}"#,
                "a",
                "amountPerMonth",
                "1e15",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}, "split": "fair"}]}"#,
                "a",
                "split",
                "fair",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}, "split": {"percent": {"p": 60, "q": 30}}}]}"#,
                "a",
                "split.percent",
                "90",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}, "split": {"percent": {"p": -5}}}]}"#,
                "a",
                "split.percent.p",
                "-5",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}, "target": {"unallocated": true}}]}"#,
                "a",
                "target.unallocated",
                "unknown key",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}, "wieght": 1}]}"#,
                "a",
                "wieght",
                "unknown field",
            ),
            (
                r#"{"rules": [{"name": "a", "select": {"pod": "x"}}, {"name": "a", "select": {"pod": "y"}}]}"#,
                "a",
                "name",
                "earlier",
            ),
        ] {
            match ShareRules::parse_json(text) {
                Err(DomainError::ShareRule {
                    rule: r,
                    field: f,
                    message,
                }) => {
                    assert_eq!((r.as_str(), f.as_str()), (rule, field), "{text}: {message}");
                    assert!(message.contains(says), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}

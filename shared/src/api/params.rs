//! `GET /allocation` parameters: parsed strictly, every error naming the parameter and what is allowed.

use crate::domain::label::{parse_label_values, Label};
use crate::domain::share::{parse_amount, ShareParameters, Split};
use crate::domain::{CostMetric, Dimension, UsageWindow};
use chrono::NaiveDate;
use std::str::FromStr;

/// A bad parameter: which one, what was given, what is allowed. Serialised into the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamError {
    pub parameter: String,
    pub message: String,
    pub allowed: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parameter `{}`: {} (allowed: {})",
            self.parameter, self.message, self.allowed
        )
    }
}

/// A parsed `GET /allocation` request.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationQuery {
    pub window: UsageWindow,
    pub aggregate: Vec<Dimension>,
    pub metric: CostMetric,
    /// `step=1d`: one set per day; otherwise one set for the window.
    pub daily: bool,
    /// `accumulate=true`: sum the steps into one set.
    pub accumulate: bool,
    /// `filterNamespaces=a,b` …, `filterLabels=team:a`: keep groups whose value is one of these.
    pub filters: Vec<(Dimension, Vec<String>)>,
    pub csv: bool,
    /// `shareNamespaces`, `shareLabels`, `shareUnallocated`, `shareCost`, `shareSplit`
    /// ([`crate::domain::share`]).
    pub share: ShareParameters,
}

/// What one `GET /allocation` may ask for; each is refused with a 400 naming the parameter and the limit.
///
/// The defaults fit the API function: 256 MB of memory and AWS Lambda's 6 MB response payload for a
/// synchronous invocation (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); a
/// group is about 450–475 bytes of JSON (measured by `bench/serve_load.sh`, BENCHMARKS.md), so 10,000
/// groups stay under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest window, in days (default 1,096: three years with a leap day).
    pub max_window_days: u32,
    /// Most sets in one answer with `step=1d` (default 366: a year of days).
    pub max_steps: u32,
    /// Most groups in one answer, summed over its sets (default 10,000).
    pub max_groups: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_window_days: 1096,
            max_steps: 366,
            max_groups: 10_000,
        }
    }
}

/// Every parameter `GET /allocation` accepts, in the order the OpenAPI document lists them.
pub fn allocation_parameters() -> Vec<String> {
    let mut names: Vec<String> = PARAMETERS[..11].iter().map(|p| p.to_string()).collect();
    names.extend(Dimension::ALL.into_iter().filter_map(filter_parameter));
    names.push("filterLabels".into());
    names
}

const PARAMETERS: [&str; 12] = [
    "window",
    "aggregate",
    "accumulate",
    "step",
    "costMetric",
    "format",
    "shareNamespaces",
    "shareLabels",
    "shareUnallocated",
    "shareCost",
    "shareSplit",
    "filter<Dimension>s",
];

fn filter_parameter(dimension: Dimension) -> Option<String> {
    let name = dimension.name();
    (dimension != Dimension::Day).then(|| {
        let mut chars = name.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase());
        format!("filter{}{}s", first.unwrap_or_default(), chars.as_str())
    })
}

/// Rejects any parameter not in `known` (typos must not be silently ignored).
pub fn reject_unknown(query: &[(String, String)], known: &[&str]) -> Result<(), ParamError> {
    for (name, _) in query {
        if !known.contains(&name.as_str()) {
            return Err(ParamError {
                parameter: name.clone(),
                message: "unknown parameter".into(),
                allowed: if known.is_empty() {
                    "no parameters".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    Ok(())
}

impl AllocationQuery {
    /// Parses the parameters under the default [`Limits`].
    pub fn parse(
        query: &[(String, String)],
        today: NaiveDate,
    ) -> Result<AllocationQuery, ParamError> {
        Self::parse_with_limits(query, today, &Limits::default())
    }

    /// Parses the parameters; a window longer than `limits.max_window_days` or more daily steps than
    /// `limits.max_steps` is an error naming the parameter and the limit.
    pub fn parse_with_limits(
        query: &[(String, String)],
        today: NaiveDate,
        limits: &Limits,
    ) -> Result<AllocationQuery, ParamError> {
        let filters: Vec<(Dimension, String)> = Dimension::ALL
            .into_iter()
            .filter_map(|d| filter_parameter(d).map(|p| (d, p)))
            .collect();
        let names = allocation_parameters();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        reject_unknown(query, &known)?;
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in query {
            if seen.contains(&name.as_str()) {
                return Err(ParamError {
                    parameter: name.clone(),
                    message: "given more than once".into(),
                    allowed: "one value; lists are comma-separated".into(),
                });
            }
            seen.push(name);
        }
        let get = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let bad = |parameter: &str, message: String, allowed: &str| ParamError {
            parameter: parameter.into(),
            message,
            allowed: allowed.into(),
        };
        let window_forms = "today, yesterday, week, lastweek, month, lastmonth, Nd, Nh (multiple of 24), START,END as RFC 3339 UTC midnights or Unix seconds";
        let window = match get("window") {
            None => return Err(bad("window", "is required".into(), window_forms)),
            Some(text) => UsageWindow::parse_opencost(text, today)
                .map_err(|e| bad("window", e.to_string(), window_forms))?,
        };
        let span = (window.to() - window.from()).num_days();
        if span > i64::from(limits.max_window_days) {
            return Err(bad(
                "window",
                format!("spans {span} days, more than the limit"),
                &format!("at most {} days; {window_forms}", limits.max_window_days),
            ));
        }
        let dimension_names = Dimension::ALL.map(|d| d.name()).join(", ");
        let aggregate = match get("aggregate") {
            None => vec![Dimension::Namespace],
            Some(text) => Dimension::parse_list(text).map_err(|e| {
                bad(
                    "aggregate",
                    e.to_string(),
                    &format!("a comma-separated list of {dimension_names}"),
                )
            })?,
        };
        let metric_names = CostMetric::ALL.map(|m| m.name()).join(", ");
        let metric = match get("costMetric") {
            None => CostMetric::default(),
            Some(text) => CostMetric::from_str(text)
                .map_err(|e| bad("costMetric", e.to_string(), &metric_names))?,
        };
        let boolean = |name: &str| match get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(bad(name, format!("`{v}` is not a boolean"), "true, false")),
        };
        let accumulate = boolean("accumulate")?;
        let daily = match get("step") {
            None => false,
            Some("1d" | "24h") => true,
            Some(v) => {
                return Err(bad(
                    "step",
                    format!("`{v}` is not supported: CUR data is daily"),
                    "1d (or 24h); omit for one set over the whole window",
                ))
            }
        };
        if daily && !accumulate && span > i64::from(limits.max_steps) {
            return Err(bad(
                "step",
                format!("`step=1d` over {span} days would answer {span} sets, more than the limit"),
                &format!(
                    "at most {} steps: a shorter window, accumulate=true, or no step",
                    limits.max_steps
                ),
            ));
        }
        let csv = match get("format") {
            None | Some("json") => false,
            Some("csv") => true,
            Some(v) => return Err(bad("format", format!("unknown format `{v}`"), "json, csv")),
        };
        let list = |parameter: &str| -> Result<Option<Vec<String>>, ParamError> {
            let Some(text) = get(parameter) else {
                return Ok(None);
            };
            let values: Vec<String> = text
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(bad(
                    parameter,
                    "is empty".into(),
                    "a comma-separated list of values",
                ));
            }
            Ok(Some(values))
        };
        let mut parsed = Vec::new();
        for (dimension, parameter) in &filters {
            if let Some(values) = list(parameter)? {
                parsed.push((*dimension, values));
            }
        }
        let label_values = |parameter: &str| -> Result<Vec<(Label, Vec<String>)>, ParamError> {
            match get(parameter) {
                None => Ok(Vec::new()),
                Some(text) => parse_label_values(text).map_err(|message| {
                    bad(
                        parameter,
                        message,
                        "comma-separated KEY:VALUE pairs (split at the last `:`), KEY a tag key",
                    )
                }),
            }
        };
        // `filterLabels=team:a,team:b,env:prod`: any of a key's values, every key (as the other filters).
        for (label, values) in label_values("filterLabels")? {
            parsed.push((Dimension::Label(label), values));
        }
        let share = ShareParameters {
            namespaces: list("shareNamespaces")?.unwrap_or_default(),
            labels: label_values("shareLabels")?,
            unallocated: boolean("shareUnallocated")?,
            cost_per_month: match get("shareCost") {
                None => None,
                Some(text) => Some(parse_amount(text).map_err(|message| {
                    bad(
                        "shareCost",
                        message,
                        "a fixed amount per month, a finite number within ±1e15",
                    )
                })?),
            },
            split: match get("shareSplit") {
                None => None,
                Some(text) => Some(Split::parse(text).ok_or_else(|| {
                    bad(
                        "shareSplit",
                        format!("`{text}` is not a split"),
                        "even, weighted",
                    )
                })?),
            },
        };
        Ok(AllocationQuery {
            window,
            aggregate,
            metric,
            daily,
            accumulate,
            filters: parsed,
            csv,
            share,
        })
    }

    /// The windows of the sets to return: one per day with `step=1d` (unless accumulated), else one.
    pub fn steps(&self) -> Vec<UsageWindow> {
        if !self.daily || self.accumulate {
            return vec![self.window];
        }
        self.window
            .from()
            .iter_days()
            .take_while(|d| *d < self.window.to())
            .filter_map(|d| UsageWindow::new(d, d.succ_opt()?).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 7, 10).expect("valid")
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AllocationQuery, ParamError> {
        let query: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AllocationQuery::parse(&query, today())
    }

    #[test]
    fn opencost_style_request_parses() {
        let q = parse(&[
            ("window", "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z"),
            ("aggregate", "namespace,service"),
            ("costMetric", "listCost"),
            ("filterNamespaces", "payments, search"),
        ])
        .expect("valid");
        assert_eq!(q.aggregate, vec![Dimension::Namespace, Dimension::Service]);
        assert_eq!(q.metric, CostMetric::ListCost);
        assert_eq!(q.window.to() - q.window.from(), chrono::Duration::days(30));
        assert_eq!(
            q.filters,
            vec![(
                Dimension::Namespace,
                vec!["payments".into(), "search".into()]
            )]
        );
        assert_eq!(q.steps().len(), 1);
    }

    #[test]
    fn share_parameters_parse() {
        let q = parse(&[
            ("window", "7d"),
            ("shareNamespaces", "kube-system, platform"),
            ("shareUnallocated", "true"),
            ("shareCost", "1500.5"),
            ("shareSplit", "even"),
            (
                "shareLabels",
                "team:platform,team:shared, aws:createdBy:ops",
            ),
        ])
        .expect("valid");
        let team = Label::new("team").expect("valid");
        let created_by = Label::new("aws:createdBy").expect("valid");
        assert_eq!(
            q.share,
            ShareParameters {
                namespaces: vec!["kube-system".into(), "platform".into()],
                labels: vec![
                    (team, vec!["platform".into(), "shared".into()]),
                    (created_by, vec!["ops".into()])
                ],
                unallocated: true,
                cost_per_month: Some(1500.5),
                split: Some(Split::Even),
            }
        );
        let q = parse(&[("window", "7d")]).expect("valid");
        assert_eq!(q.share, ShareParameters::default());
    }

    #[test]
    fn label_aggregates_and_filters_parse_and_bad_pairs_name_the_parameter() {
        let q = parse(&[
            ("window", "7d"),
            ("aggregate", "label:team,namespace"),
            ("filterLabels", "team:payments,team:search,env:prod"),
            ("filterNamespaces", "a"),
        ])
        .expect("valid");
        let team = Label::new("team").expect("valid");
        let env = Label::new("env").expect("valid");
        assert_eq!(
            q.aggregate,
            vec![Dimension::Label(team), Dimension::Namespace]
        );
        assert_eq!(
            q.filters,
            vec![
                (Dimension::Namespace, vec!["a".into()]),
                (
                    Dimension::Label(team),
                    vec!["payments".into(), "search".into()]
                ),
                (Dimension::Label(env), vec!["prod".into()]),
            ]
        );
        for (name, value) in [
            ("filterLabels", "team"),
            ("filterLabels", "team:"),
            ("shareLabels", ","),
            ("aggregate", "label:"),
        ] {
            let err = parse(&[("window", "7d"), (name, value)]).expect_err(value);
            assert_eq!(err.parameter, name, "{err}");
        }
    }

    #[test]
    fn defaults_are_namespace_and_amortized_net_cost() {
        let q = parse(&[("window", "7d")]).expect("valid");
        assert_eq!(q.aggregate, vec![Dimension::Namespace]);
        assert_eq!(q.metric, CostMetric::AmortizedNetCost);
        assert!(!q.csv);
    }

    #[test]
    fn daily_steps_split_the_window_unless_accumulated() {
        let q = parse(&[("window", "7d"), ("step", "1d")]).expect("valid");
        assert_eq!(q.steps().len(), 7);
        let q = parse(&[("window", "7d"), ("step", "1d"), ("accumulate", "true")]).expect("valid");
        assert_eq!(q.steps().len(), 1);
    }

    #[test]
    fn every_error_names_its_parameter() {
        for (pairs, parameter, says) in [
            (vec![], "window", "required"),
            (vec![("window", "7x")], "window", "7x"),
            (
                vec![("window", "7d"), ("aggregate", "labels:app")],
                "aggregate",
                "labels:app",
            ),
            (
                vec![("window", "7d"), ("costMetric", "blended")],
                "costMetric",
                "blended",
            ),
            (
                vec![("window", "7d"), ("agregate", "pod")],
                "agregate",
                "unknown",
            ),
            (
                vec![("window", "7d"), ("window", "1d")],
                "window",
                "more than once",
            ),
            (
                vec![("window", "7d"), ("accumulate", "yes")],
                "accumulate",
                "yes",
            ),
            (vec![("window", "7d"), ("step", "1h")], "step", "1h"),
            (vec![("window", "7d"), ("format", "xml")], "format", "xml"),
            (
                vec![("window", "7d"), ("filterPods", " , ")],
                "filterPods",
                "empty",
            ),
            (
                vec![("window", "7d"), ("shareNamespaces", ",")],
                "shareNamespaces",
                "empty",
            ),
            (
                vec![("window", "7d"), ("shareCost", "NaN")],
                "shareCost",
                "NaN",
            ),
            (
                vec![("window", "7d"), ("shareCost", "ten")],
                "shareCost",
                "ten",
            ),
            (
                vec![("window", "7d"), ("shareSplit", "fair")],
                "shareSplit",
                "fair",
            ),
            (
                vec![("window", "7d"), ("shareUnallocated", "1")],
                "shareUnallocated",
                "1",
            ),
        ] {
            let err = parse(&pairs).expect_err("must be rejected");
            assert_eq!(err.parameter, parameter, "{err}");
            assert!(err.message.contains(says), "{err}");
            assert!(!err.allowed.is_empty(), "{err}");
        }
    }
}

//! The functions' typed configuration, read from environment variables. The names here are the ones
//! Terraform and SAM set (`infra/`); [`INGEST_VARS`], [`WRITER_VARS`] and [`API_VARS`] list them per
//! function for the test that checks the three agree.

use crate::api::{Limits, Settings};
use crate::domain::label::parse_label_list;
use crate::domain::share::ShareRules;
use crate::domain::Label;
use crate::domain::{DomainError, TagMapping};

/// DynamoDB table holding runs, pointers and snapshots (all three functions).
pub const TABLE: &str = "KUBECUR_TABLE";
/// Athena workgroup the queries run in (ingest starts them, the writer only acts on this workgroup's).
pub const ATHENA_WORKGROUP: &str = "KUBECUR_ATHENA_WORKGROUP";
/// Glue database and table of the CUR (ingest).
pub const ATHENA_DATABASE: &str = "KUBECUR_ATHENA_DATABASE";
pub const ATHENA_TABLE: &str = "KUBECUR_ATHENA_TABLE";
/// Optional `s3://` result location; leave unset when the workgroup enforces its own (ingest).
pub const ATHENA_OUTPUT: &str = "KUBECUR_ATHENA_OUTPUT";
/// Optional tag key overrides, `;`-separated `CONCEPT=KEY[,KEY]` (ingest), as `--tag-key` takes them.
pub const TAG_KEYS: &str = "KUBECUR_TAG_KEYS";
/// Optional further tag keys every run groups by, `,`-separated (ingest; the API reads it too, to refuse
/// other keys even before a month is computed): `aggregate=label:KEY`, `filterLabels` and `shareLabels`
/// of the API take these keys. Each key can split every group of the
/// snapshot's full level, at most into as many groups as the key has values (not measured yet).
pub const LABELS: &str = "KUBECUR_LABELS";
/// Optional: seconds the ingest waits for the partition DDL (default 120).
pub const DDL_TIMEOUT_SECONDS: &str = "KUBECUR_DDL_TIMEOUT_SECONDS";
/// Optional log filter of every function (`info` by default; `debug` logs the rendered SQL).
pub const LOG: &str = "KUBECUR_LOG";
/// Optional limits of one `GET /allocation` (api): the longest window in days (default 1,096), the
/// most `step=1d` sets (default 366), the most groups in one answer (default 10,000).
pub const API_MAX_WINDOW_DAYS: &str = "KUBECUR_API_MAX_WINDOW_DAYS";
pub const API_MAX_STEPS: &str = "KUBECUR_API_MAX_STEPS";
pub const API_MAX_GROUPS: &str = "KUBECUR_API_MAX_GROUPS";
/// Optional share rules every `GET /allocation` answer applies (api): the JSON of a rules file
/// ([`crate::domain::share::ShareRules::parse_json`]). Lambda's environment holds at most 4 KB in all
/// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html). The ingest reads it too:
/// every run keys the resource ids its rules select by `resource`, so that the API can apply them.
pub const SHARE_RULES: &str = "KUBECUR_SHARE_RULES";

/// What each function reads: (required, optional).
pub const INGEST_VARS: (&[&str], &[&str]) = (
    &[TABLE, ATHENA_WORKGROUP, ATHENA_DATABASE, ATHENA_TABLE],
    &[
        ATHENA_OUTPUT,
        TAG_KEYS,
        LABELS,
        SHARE_RULES,
        DDL_TIMEOUT_SECONDS,
        LOG,
    ],
);
pub const WRITER_VARS: (&[&str], &[&str]) = (&[TABLE, ATHENA_WORKGROUP], &[LOG]);
pub const API_VARS: (&[&str], &[&str]) = (
    &[TABLE],
    &[
        LOG,
        API_MAX_WINDOW_DAYS,
        API_MAX_STEPS,
        API_MAX_GROUPS,
        SHARE_RULES,
        LABELS,
    ],
);

/// A missing or invalid variable, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(ConfigError {
            name,
            reason: "is required and not set".into(),
        }),
    }
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The cur-ingest function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    pub table: String,
    pub workgroup: String,
    pub database: String,
    pub cur_table: String,
    pub output_location: Option<String>,
    /// The tag mapping with the overrides applied (validated and typed once, here).
    pub tag_mapping: TagMapping,
    pub ddl_timeout_seconds: u64,
}

/// The allocation-writer function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    pub table: String,
    pub workgroup: String,
}

/// The allocation-api function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub table: String,
    pub limits: Limits,
    /// The configured share rules (none when unset or blank).
    pub share: ShareRules,
    /// The labels the runs compute (`KUBECUR_LABELS`, the ingest's value): `label:KEY` requests for
    /// any other key are refused even before a month is computed.
    pub labels: Vec<Label>,
}

impl ApiConfig {
    /// What every request is served under.
    pub fn settings(&self) -> Settings {
        Settings {
            limits: self.limits,
            share: self.share.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Builds the tag mapping from override specs (`CONCEPT=KEY[,KEY]`).
pub fn tag_mapping(specs: &[String]) -> Result<TagMapping, DomainError> {
    let mut mapping = TagMapping::default();
    for spec in specs {
        mapping.apply_override(spec)?;
    }
    Ok(mapping)
}

impl IngestConfig {
    /// Reads the configuration through `lookup` (`|n| std::env::var(n).ok()` in the function).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<IngestConfig, ConfigError> {
        let output_location = optional(&lookup, ATHENA_OUTPUT);
        if let Some(location) = &output_location {
            if !location.starts_with("s3://") {
                return Err(ConfigError {
                    name: ATHENA_OUTPUT,
                    reason: format!("`{location}` is not an s3:// URI"),
                });
            }
        }
        let tag_keys: Vec<String> = optional(&lookup, TAG_KEYS)
            .map(|v| {
                v.split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut tag_mapping = tag_mapping(&tag_keys).map_err(|e| ConfigError {
            name: TAG_KEYS,
            reason: e.to_string(),
        })?;
        tag_mapping.set_labels(labels(&lookup)?);
        if let Some(rules) = optional(&lookup, SHARE_RULES) {
            let rules = share_rules(&rules)?;
            tag_mapping.set_resources(rules.resource_ids());
        }
        let ddl_timeout_seconds = match optional(&lookup, DDL_TIMEOUT_SECONDS) {
            None => 120,
            Some(v) => v
                .parse()
                .ok()
                .filter(|s| (1..=900).contains(s))
                .ok_or_else(|| ConfigError {
                    name: DDL_TIMEOUT_SECONDS,
                    reason: format!("`{v}` is not a number of seconds from 1 to 900"),
                })?,
        };
        Ok(IngestConfig {
            table: required(&lookup, TABLE)?,
            workgroup: required(&lookup, ATHENA_WORKGROUP)?,
            database: required(&lookup, ATHENA_DATABASE)?,
            cur_table: required(&lookup, ATHENA_TABLE)?,
            output_location,
            tag_mapping,
            ddl_timeout_seconds,
        })
    }
}

impl WriterConfig {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<WriterConfig, ConfigError> {
        Ok(WriterConfig {
            table: required(&lookup, TABLE)?,
            workgroup: required(&lookup, ATHENA_WORKGROUP)?,
        })
    }
}

/// The labels of [`LABELS`] (the ingest and the API read the same value); none when unset.
fn labels(lookup: &impl Fn(&str) -> Option<String>) -> Result<Vec<Label>, ConfigError> {
    match optional(lookup, LABELS) {
        None => Ok(Vec::new()),
        Some(text) => parse_label_list(&text).map_err(|e| ConfigError {
            name: LABELS,
            reason: e.to_string(),
        }),
    }
}

/// The rules of [`SHARE_RULES`] (the ingest and the API read the same value).
fn share_rules(text: &str) -> Result<ShareRules, ConfigError> {
    ShareRules::parse_json(text).map_err(|e| ConfigError {
        name: SHARE_RULES,
        reason: e.to_string(),
    })
}

/// An optional whole number from 1 to `max`, or `default` when unset.
fn bounded(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match optional(lookup, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ConfigError {
                name,
                reason: format!("`{v}` is not a whole number from 1 to {max}"),
            }),
    }
}

impl ApiConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiConfig, ConfigError> {
        let defaults = Limits::default();
        Ok(ApiConfig {
            table: required(&lookup, TABLE)?,
            limits: Limits {
                max_window_days: bounded(
                    &lookup,
                    API_MAX_WINDOW_DAYS,
                    defaults.max_window_days,
                    36_600,
                )?,
                max_steps: bounded(&lookup, API_MAX_STEPS, defaults.max_steps, 36_600)?,
                max_groups: bounded(&lookup, API_MAX_GROUPS, defaults.max_groups, 10_000_000)?,
            },
            share: match optional(&lookup, SHARE_RULES) {
                None => ShareRules::default(),
                Some(text) => share_rules(&text)?,
            },
            labels: labels(&lookup)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 4] = [
        (TABLE, "kubecur"),
        (ATHENA_WORKGROUP, "kubecur"),
        (ATHENA_DATABASE, "cur"),
        (ATHENA_TABLE, "cur_report"),
    ];

    #[test]
    fn ingest_reads_required_and_optional_variables() {
        let mut pairs = BASE.to_vec();
        pairs.push((
            TAG_KEYS,
            "namespace=app.kubernetes.io/part-of,team; cluster=eks_cluster",
        ));
        let config = IngestConfig::from_lookup(env(&pairs)).expect("valid");
        let expected = tag_mapping(&[
            "namespace=app.kubernetes.io/part-of,team".to_string(),
            "cluster=eks_cluster".to_string(),
        ])
        .expect("valid");
        assert_eq!(config.tag_mapping, expected);
        assert!(config.tag_mapping.labels().is_empty());
        assert_eq!(config.output_location, None);
        pairs.push((LABELS, "team, cost-center"));
        let config = IngestConfig::from_lookup(env(&pairs)).expect("valid");
        let keys: Vec<&str> = config
            .tag_mapping
            .labels()
            .iter()
            .map(|l| l.key())
            .collect();
        assert_eq!(keys, ["team", "cost-center"]);
        assert_eq!(config.ddl_timeout_seconds, 120);
    }

    #[test]
    fn each_bad_variable_is_named() {
        for (name, value) in [
            (ATHENA_OUTPUT, "results-bucket/prefix"),
            (TAG_KEYS, "tenant=team"),
            (LABELS, "team,team"),
            (SHARE_RULES, r#"{"rules": [{"select": {"resource": " "}}]}"#),
            (DDL_TIMEOUT_SECONDS, "0"),
            (TABLE, " "),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
            let err = IngestConfig::from_lookup(env(&pairs)).expect_err(name);
            assert_eq!(err.name, name, "{err}");
        }
        let err = WriterConfig::from_lookup(env(&[(TABLE, "t")])).expect_err("no workgroup");
        assert_eq!(err.name, ATHENA_WORKGROUP);
    }

    #[test]
    fn ingest_keys_the_resource_ids_the_share_rules_select() {
        let mut pairs = BASE.to_vec();
        pairs.push((
            SHARE_RULES,
            r#"{"rules": [{"name": "db", "select": {"resource": ["db-1", "db-2"]}},
                          {"name": "rds", "select": {"service": "AmazonRDS"}}]}"#,
        ));
        let config = IngestConfig::from_lookup(env(&pairs)).expect("valid");
        assert_eq!(config.tag_mapping.resources(), ["db-1", "db-2"]);
        let config = IngestConfig::from_lookup(env(&BASE)).expect("valid");
        assert!(config.tag_mapping.resources().is_empty());
    }

    #[test]
    fn api_reads_the_labels_and_names_a_bad_one() {
        let config = ApiConfig::from_lookup(env(&[(TABLE, "t"), (LABELS, "team, CostCenter")]))
            .expect("valid");
        let keys: Vec<&str> = config.settings().labels.iter().map(|l| l.key()).collect();
        assert_eq!(keys, ["team", "CostCenter"]);
        let err = ApiConfig::from_lookup(env(&[(TABLE, "t"), (LABELS, "team,team")]))
            .expect_err("repeated");
        assert_eq!(err.name, LABELS);
    }

    #[test]
    fn api_share_rules_are_read_and_a_bad_rule_is_named() {
        let config = ApiConfig::from_lookup(env(&[(TABLE, "t")])).expect("valid");
        assert!(config.share.is_empty());
        let config = ApiConfig::from_lookup(env(&[
            (TABLE, "t"),
            (
                SHARE_RULES,
                r#"{"rules": [{"name": "rds", "select": {"service": "AmazonRDS"}, "split": "even"}]}"#,
            ),
        ]))
        .expect("valid");
        assert_eq!(config.share.rules.len(), 1);
        let err = ApiConfig::from_lookup(env(&[
            (TABLE, "t"),
            (
                SHARE_RULES,
                r#"{"rules": [{"name": "rds", "select": {"service": 1}}]}"#,
            ),
        ]))
        .expect_err("bad rule");
        assert_eq!(err.name, SHARE_RULES);
        assert!(
            err.reason.contains("`rds`") && err.reason.contains("select.service"),
            "{err}"
        );
    }

    #[test]
    fn api_limits_default_and_each_bad_one_is_named() {
        let config = ApiConfig::from_lookup(env(&[(TABLE, "t")])).expect("valid");
        assert_eq!(config.limits, Limits::default());
        let config = ApiConfig::from_lookup(env(&[
            (TABLE, "t"),
            (API_MAX_WINDOW_DAYS, "400"),
            (API_MAX_STEPS, " 31 "),
            (API_MAX_GROUPS, "500"),
        ]))
        .expect("valid");
        assert_eq!(
            config.limits,
            Limits {
                max_window_days: 400,
                max_steps: 31,
                max_groups: 500
            }
        );
        for (name, value) in [
            (API_MAX_WINDOW_DAYS, "0"),
            (API_MAX_STEPS, "-1"),
            (API_MAX_GROUPS, "many"),
            (API_MAX_GROUPS, "10000001"),
        ] {
            let err = ApiConfig::from_lookup(env(&[(TABLE, "t"), (name, value)])).expect_err(name);
            assert_eq!(err.name, name, "{err}");
            assert!(err.reason.contains(value), "{err}");
        }
    }
}

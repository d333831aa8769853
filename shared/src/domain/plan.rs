//! From a request and a table's real columns to a typed allocation plan: which column or tag feeds each
//! dimension, which expression computes each metric, what filters apply, and what is missing.

use super::columns::ColumnSet;
use super::dimension::Dimension;
use super::error::DomainError;
use super::expr::Expr;
use super::flavour::{preview, Flavour};
use super::metric::CostMetric;
use super::tags::{resolve_tag, Concept, Resolution, TagMapping, TagSource};
use super::window::UsageWindow;
use std::collections::BTreeMap;
use std::fmt;

/// A 12-digit AWS account id.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(text: &str) -> Result<AccountId, DomainError> {
        let text = text.trim();
        if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(text.to_string()))
        } else {
            Err(DomainError::InvalidAccount(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AllocationRequest {
    /// Usage days to allocate; `None` means every day in the data (local engine only).
    pub window: Option<UsageWindow>,
    /// Grouping keys; empty means the full grain ([`Dimension::ALL`]).
    pub group_by: Vec<Dimension>,
    pub tag_mapping: TagMapping,
    /// Usage accounts to keep; empty keeps all.
    pub accounts: Vec<AccountId>,
    /// Also return each group's resources as a set of hashes ([`super::resources`]) instead of only
    /// their count, so groups can be merged later without counting a resource twice: snapshots need it
    /// (any window, any regrouping); it costs an MD5 per line item.
    pub resource_ids: bool,
    /// The resource ids [`Dimension::Resource`] keys (the ids share rules select by `resource`): a
    /// line item of one of them has its id there, every other line item `''`.
    pub resources: Vec<String>,
}

/// Something the allocation could not do as asked, reported beside the result. Never fatal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Warning {
    /// The data cannot hold this tag at all (legacy CUR: no such column, tag not activated).
    #[serde(rename_all = "camelCase")]
    TagMissing {
        concept: Concept,
        key: String,
        looked_for: String,
    },
    /// The tag can be read but no line item in the window carries it.
    #[serde(rename_all = "camelCase")]
    TagNeverSet { concept: Concept, key: String },
    /// No resource id column ("include resource IDs" is off): resource counts are 0.
    NoResourceIdColumn,
    /// No line item type column: every row takes the default cost rule.
    NoLineItemTypeColumn,
    /// Line items whose tag cell could not be read (invalid JSON, the text `NULL`, a map of the wrong
    /// type; [`super::tags::TagCell`]): read as untagged, so their cost is in `__unallocated__`.
    #[serde(rename_all = "camelCase")]
    UnreadableTags { line_items: u64 },
    /// Line items without a usage date: they belong to no day, hence to no billing period's snapshot
    /// (`kubecur serve`); their cost is in no served figure.
    #[serde(rename_all = "camelCase")]
    UndatedLineItems { line_items: u64 },
    /// A share rule (or parameter) selected no line item in the window.
    ShareSelectsNothing { rule: String },
    /// A share rule found no group to receive its cost: the cost stays where it was.
    ShareHasNoReceivers { rule: String },
    /// No receiver of a weighted share had a positive cost: the cost was split evenly.
    ShareSplitEvenly { rule: String },
    /// Namespaces a percentage split names have no cost in the window: the others took their part.
    ShareNamespacesAbsent {
        rule: String,
        namespaces: Vec<String>,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TagMissing { concept, key, looked_for } => write!(
                f,
                "{concept} tag `{key}` is not in the data (looked for {looked_for}); is it activated as a cost allocation tag?"
            ),
            Warning::TagNeverSet { concept, key } => {
                write!(f, "{concept} tag `{key}` is set on no line item in the window")
            }
            Warning::NoResourceIdColumn => {
                write!(f, "the data has no resource id column (\"include resource IDs\" is off): resource counts are 0")
            }
            Warning::NoLineItemTypeColumn => {
                write!(f, "the data has no line item type column: every row is costed by the default rule")
            }
            Warning::UnreadableTags { line_items } => write!(
                f,
                "{line_items} line items had unreadable tags; their cost is in `{}`",
                super::UNALLOCATED
            ),
            Warning::ShareSelectsNothing { rule } => {
                write!(f, "share rule `{rule}` selects no line item in the window")
            }
            Warning::ShareHasNoReceivers { rule } => write!(
                f,
                "share rule `{rule}` found no allocated group to receive its cost (on some day of the window, with `day` among the keys): that cost stays where it was, and a fixed amount's part is not added"
            ),
            Warning::ShareSplitEvenly { rule } => write!(
                f,
                "share rule `{rule}`: no receiving group has a positive cost to weigh by, so the cost was split evenly"
            ),
            Warning::ShareNamespacesAbsent { rule, namespaces } => write!(
                f,
                "share rule `{rule}`: namespace(s) {} have no cost in the window; the other namespaces took their percentage",
                namespaces.join(", ")
            ),
            Warning::UndatedLineItems { line_items } => write!(
                f,
                "{line_items} line items have no usage date: they belong to no day or billing period, and their cost is in no served figure"
            ),
        }
    }
}

/// How a column must be read for the plan to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Number,
    Timestamp,
    Text,
    /// A map of string to string (or, in CSV exports, a JSON object as text).
    TagMap,
}

/// How the number of line items carrying one tag source is obtained from the allocation result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// From output column `tag_source_<n>`.
    Counted(usize),
    /// From the line items of rows whose group key at this position is not `__unallocated__`.
    FromGroupKey(usize),
}

/// The tag sources feeding one concept, each with the key it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptSources {
    pub concept: Concept,
    pub sources: Vec<(String, TagSource)>,
}

/// The resolved plan: everything a renderer or evaluator needs, nothing engine-specific.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationPlan {
    pub flavour: Flavour,
    pub window: Option<UsageWindow>,
    pub group_by: Vec<Dimension>,
    pub accounts: Vec<AccountId>,
    pub day_column: String,
    pub service_column: String,
    pub account_column: String,
    pub resource_column: Option<String>,
    /// The operation column, when it exists: EKS/ECS split-cost rows are excluded through it.
    pub operation_column: Option<String>,
    /// Whether the query returns each group's resource id hashes (see [`AllocationRequest::resource_ids`]).
    pub resource_ids: bool,
    /// See [`AllocationRequest::resources`] (trimmed, blank ones dropped).
    pub resources: Vec<String>,
    pub concepts: Vec<ConceptSources>,
    /// One expression per metric, in [`CostMetric::ALL`] order.
    pub metrics: [Expr; 4],
    pub warnings: Vec<Warning>,
}

/// `line_item_operation` values whose rows duplicate EC2 cost per pod or task
/// (docs/cur-reference.md#cost-rules).
pub const SPLIT_COST_OPERATIONS: [&str; 2] = ["EKSPod-EC2", "ECSTask-EC2"];

struct FlavourColumns {
    day: &'static str,
    service: &'static [&'static str],
    account: &'static str,
    resource: &'static str,
    operation: &'static str,
}

fn flavour_columns(flavour: Flavour) -> FlavourColumns {
    match flavour {
        Flavour::LegacyCur | Flavour::Cur2 => FlavourColumns {
            day: "line_item_usage_start_date",
            service: &["line_item_product_code"],
            account: "line_item_usage_account_id",
            resource: "line_item_resource_id",
            operation: "line_item_operation",
        },
        Flavour::Focus => FlavourColumns {
            day: "chargeperiodstart",
            service: &["servicename", "x_servicecode"],
            account: "subaccountid",
            resource: "resourceid",
            operation: "x_operation",
        },
    }
}

impl AllocationPlan {
    /// Plans `request` against a table with the real `columns`.
    ///
    /// Errors when the table is not a CUR ([`DomainError::UnknownFlavour`]) or lacks a column no
    /// allocation can do without (day, service, account, base cost). Missing optional columns (tags,
    /// resource id, RI/SP, net costs) become [`Warning`]s or narrower rules, never errors.
    pub fn new(
        columns: &ColumnSet,
        request: &AllocationRequest,
    ) -> Result<AllocationPlan, DomainError> {
        let flavour = Flavour::detect(columns)?;
        let names = flavour_columns(flavour);
        let mut missing = Vec::new();
        let mut required = |candidates: &[&str]| match columns.first_of(candidates) {
            Some(real) => real.to_string(),
            None => {
                missing.push(candidates.join(" or "));
                String::new()
            }
        };
        let day_column = required(&[names.day]);
        let service_column = required(names.service);
        let account_column = required(&[names.account]);
        if !missing.is_empty() {
            return Err(DomainError::MissingColumns {
                flavour: flavour.to_string(),
                missing: missing.join(", "),
                found: preview(columns.names()),
            });
        }

        let mut warnings = Vec::new();
        let resource_column = columns.get(names.resource).map(str::to_string);
        if resource_column.is_none() {
            warnings.push(Warning::NoResourceIdColumn);
        }
        if flavour != Flavour::Focus && !columns.has("line_item_line_item_type") {
            warnings.push(Warning::NoLineItemTypeColumn);
        }
        // The Kubernetes concepts, then the labels the request groups by.
        let labels = request
            .group_by
            .iter()
            .filter_map(|d| d.label().map(Concept::Label));
        let concepts = Concept::ALL
            .into_iter()
            .chain(labels)
            .map(|concept| {
                let mut sources = Vec::new();
                for key in request.tag_mapping.keys(concept) {
                    match resolve_tag(flavour, columns, &key) {
                        Resolution::Found(found) => {
                            sources.extend(found.into_iter().map(|s| (key.clone(), s)))
                        }
                        Resolution::Missing { looked_for } => warnings.push(Warning::TagMissing {
                            concept,
                            key: key.clone(),
                            looked_for,
                        }),
                    }
                }
                ConceptSources { concept, sources }
            })
            .collect();
        let metrics = [
            CostMetric::ListCost.expression(flavour, columns)?,
            CostMetric::NetCost.expression(flavour, columns)?,
            CostMetric::AmortizedCost.expression(flavour, columns)?,
            CostMetric::AmortizedNetCost.expression(flavour, columns)?,
        ];
        let group_by = if request.group_by.is_empty() {
            Dimension::ALL.to_vec()
        } else {
            request.group_by.clone()
        };
        Ok(AllocationPlan {
            flavour,
            window: request.window,
            group_by,
            accounts: request.accounts.clone(),
            day_column,
            service_column,
            account_column,
            resource_column,
            operation_column: columns.get(names.operation).map(str::to_string),
            resource_ids: request.resource_ids,
            resources: request
                .resources
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            concepts,
            metrics,
            warnings,
        })
    }

    /// The sources feeding `concept`.
    pub fn sources(&self, concept: Concept) -> &[(String, TagSource)] {
        self.concepts
            .iter()
            .find(|c| c.concept == concept)
            .map(|c| c.sources.as_slice())
            .unwrap_or(&[])
    }

    /// Every column the plan reads, with how it must be typed. Engines read these and nothing else.
    pub fn required_columns(&self) -> Vec<(String, ColumnKind)> {
        let mut out: Vec<(String, ColumnKind)> = Vec::new();
        let mut add = |name: &str, kind: ColumnKind| {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.to_string(), kind));
            }
        };
        add(&self.day_column, ColumnKind::Timestamp);
        add(&self.service_column, ColumnKind::Text);
        add(&self.account_column, ColumnKind::Text);
        if let Some(c) = &self.resource_column {
            add(c, ColumnKind::Text);
        }
        if let Some(c) = &self.operation_column {
            add(c, ColumnKind::Text);
        }
        for concept in &self.concepts {
            for (_, source) in &concept.sources {
                match source {
                    TagSource::Column(c) => add(c, ColumnKind::Text),
                    TagSource::MapKey { column, .. } => add(column, ColumnKind::TagMap),
                }
            }
        }
        for metric in &self.metrics {
            let costs = metric.cost_columns();
            for column in metric.columns() {
                let kind = if costs.contains(&column) {
                    ColumnKind::Number
                } else {
                    ColumnKind::Text
                };
                add(&column, kind);
            }
        }
        out
    }

    /// The map (or, in CSV exports, JSON text) columns tags are read from, each once: the columns whose
    /// unreadable cells the allocation counts ([`Warning::UnreadableTags`]).
    pub fn tag_map_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, _, source) in self.tag_sources() {
            if let TagSource::MapKey { column, .. } = source {
                if !out.contains(&column.as_str()) {
                    out.push(column);
                }
            }
        }
        out
    }

    /// How the presence of each of [`AllocationPlan::tag_sources`] is counted. When a concept has a
    /// single source and is a group key, its count is the line items of the rows whose key is not
    /// `__unallocated__`: no extra column (and no per-row work) is needed.
    pub fn presence(&self) -> Vec<Presence> {
        let mut counted = 0;
        self.tag_sources()
            .into_iter()
            .map(|(concept, _, _)| {
                let single = self.sources(concept).len() == 1;
                let key = self
                    .group_by
                    .iter()
                    .position(|d| d.concept() == Some(concept));
                match key {
                    Some(position) if single => Presence::FromGroupKey(position),
                    _ => {
                        counted += 1;
                        Presence::Counted(counted - 1)
                    }
                }
            })
            .collect()
    }

    /// Every (concept, key, source) the plan reads tags from, in order.
    pub fn tag_sources(&self) -> Vec<(Concept, &str, &TagSource)> {
        self.concepts
            .iter()
            .flat_map(|c| {
                c.sources
                    .iter()
                    .map(move |(key, source)| (c.concept, key.as_str(), source))
            })
            .collect()
    }

    /// Adds [`Warning::TagNeverSet`] for each tag key whose sources were all empty in the window,
    /// given the per-source non-blank counts from the allocation result (in [`AllocationPlan::tag_sources`] order).
    pub fn note_tag_presence(&mut self, non_empty_counts: &[u64]) {
        let mut per_key: BTreeMap<(Concept, String), u64> = BTreeMap::new();
        for ((concept, key, _), count) in self.tag_sources().into_iter().zip(non_empty_counts) {
            *per_key.entry((concept, key.to_string())).or_default() += count;
        }
        for ((concept, key), count) in per_key {
            if count == 0 {
                self.warnings.push(Warning::TagNeverSet { concept, key });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_columns() -> ColumnSet {
        ColumnSet::new([
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "line_item_line_item_type",
            "line_item_product_code",
            "line_item_usage_account_id",
            "line_item_resource_id",
            "resource_tags_user_kubernetes_namespace",
        ])
    }

    #[test]
    fn missing_tag_columns_become_warnings_not_errors() {
        let plan = AllocationPlan::new(&legacy_columns(), &AllocationRequest::default())
            .expect("plannable");
        assert_eq!(plan.sources(Concept::Namespace).len(), 1);
        let missing: Vec<Concept> = plan
            .warnings
            .iter()
            .filter_map(|w| match w {
                Warning::TagMissing { concept, .. } => Some(*concept),
                _ => None,
            })
            .collect();
        assert_eq!(
            missing,
            vec![
                Concept::Cluster,
                Concept::Deployment,
                Concept::Pod,
                Concept::Daemonset,
                Concept::Container
            ]
        );
        assert_eq!(plan.group_by, Dimension::ALL.to_vec());
    }

    #[test]
    fn missing_required_columns_are_all_named() {
        let cols = ColumnSet::new(["line_item_usage_start_date", "line_item_unblended_cost"]);
        let err = AllocationPlan::new(&cols, &AllocationRequest::default())
            .expect_err("no service, no account");
        let text = err.to_string();
        assert!(
            text.contains("line_item_product_code") && text.contains("line_item_usage_account_id"),
            "{text}"
        );
    }

    #[test]
    fn missing_resource_id_is_a_warning() {
        let cols = ColumnSet::new(
            legacy_columns()
                .names()
                .iter()
                .filter(|c| *c != "line_item_resource_id")
                .cloned(),
        );
        let plan = AllocationPlan::new(&cols, &AllocationRequest::default()).expect("plannable");
        assert!(plan.resource_column.is_none());
        assert!(plan.warnings.contains(&Warning::NoResourceIdColumn));
    }

    #[test]
    fn zero_presence_counts_turn_into_never_set_warnings() {
        let mut plan = AllocationPlan::new(&legacy_columns(), &AllocationRequest::default())
            .expect("plannable");
        plan.note_tag_presence(&[0]);
        assert!(plan.warnings.contains(&Warning::TagNeverSet {
            concept: Concept::Namespace,
            key: "kubernetes_namespace".into()
        }));
    }

    #[test]
    fn required_columns_are_typed() {
        let plan = AllocationPlan::new(&legacy_columns(), &AllocationRequest::default())
            .expect("plannable");
        let cols = plan.required_columns();
        assert!(cols.contains(&("line_item_usage_start_date".into(), ColumnKind::Timestamp)));
        assert!(cols.contains(&("line_item_unblended_cost".into(), ColumnKind::Number)));
        assert!(cols.contains(&("line_item_line_item_type".into(), ColumnKind::Text)));
        assert!(cols.contains(&(
            "resource_tags_user_kubernetes_namespace".into(),
            ColumnKind::Text
        )));
    }

    #[test]
    fn account_ids_must_be_twelve_digits() {
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("12345").is_err());
        assert!(AccountId::parse("12345678901x").is_err());
    }
}

//! Kubernetes concepts, the tag keys that carry them, and where those tags live in each flavour.

use super::columns::{aws_column_name, ColumnSet};
use super::error::DomainError;
use super::flavour::Flavour;
use super::label::Label;
use super::named::trimmed_lowercase;
use std::collections::BTreeMap;

/// A Kubernetes concept a resource can be tagged with, or any other tag key ([`Concept::Label`],
/// `label:KEY`), which is not in [`Concept::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concept {
    Cluster,
    Namespace,
    Deployment,
    Pod,
    Daemonset,
    Container,
    Label(Label),
}

/// The Kubernetes concepts and their names, in [`Concept::ALL`] order.
const NAMES: [(Concept, &str); 6] = [
    (Concept::Cluster, "cluster"),
    (Concept::Namespace, "namespace"),
    (Concept::Deployment, "deployment"),
    (Concept::Pod, "pod"),
    (Concept::Daemonset, "daemonset"),
    (Concept::Container, "container"),
];

impl Concept {
    /// The Kubernetes concepts (not the labels).
    pub const ALL: [Concept; 6] = [
        Concept::Cluster,
        Concept::Namespace,
        Concept::Deployment,
        Concept::Pod,
        Concept::Daemonset,
        Concept::Container,
    ];

    /// `namespace`, …, or `label:KEY`.
    pub fn name(self) -> &'static str {
        match self {
            Concept::Label(label) => label.name(),
            fixed => NAMES
                .iter()
                .find(|(c, _)| *c == fixed)
                .map_or("", |(_, name)| name),
        }
    }

    /// The Kubernetes concepts' names joined with `, ` (what `--tag-key` accepts).
    pub fn names() -> String {
        NAMES.map(|(_, name)| name).join(", ")
    }

    /// The tag key engineers use by default: `kubernetes_namespace`, …; a label's own key.
    pub fn default_key(self) -> String {
        match self {
            Concept::Label(label) => label.key().to_string(),
            fixed => format!("kubernetes_{}", fixed.name()),
        }
    }
}

impl std::fmt::Display for Concept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Concept {
    type Err = String;

    /// A Kubernetes concept's name (trimmed, any case); labels are not concepts `--tag-key` remaps.
    fn from_str(text: &str) -> Result<Concept, String> {
        let wanted = trimmed_lowercase(text);
        NAMES
            .iter()
            .find(|(_, name)| *name == wanted)
            .map(|(c, _)| *c)
            .ok_or_else(|| format!("unknown concept `{text}`"))
    }
}

/// Stored (in warnings) as its name: `"namespace"`, `"label:team"`.
impl serde::Serialize for Concept {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Concept {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match Label::parse_prefixed(&text) {
            Some(label) => label.map(Concept::Label).map_err(serde::de::Error::custom),
            None => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// For each concept, the tag keys (as written on the resources) that carry it; the first non-empty wins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagMapping {
    keys: BTreeMap<Concept, Vec<String>>,
    /// Further tag keys every pipeline run groups by (`KUBECUR_LABELS`), so that the API can answer
    /// `aggregate=label:KEY` for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<Label>,
    /// Resource ids every pipeline run keys separately (the ids the configured share rules select by
    /// `resource`, [`super::share::ShareRules::resource_ids`]), so the API can apply those rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
}

impl Default for TagMapping {
    /// Every concept maps to its `kubernetes_<concept>` key.
    fn default() -> Self {
        TagMapping {
            keys: Concept::ALL
                .into_iter()
                .map(|c| (c, vec![c.default_key()]))
                .collect(),
            labels: Vec::new(),
            resources: Vec::new(),
        }
    }
}

impl TagMapping {
    /// The keys for `concept`, in priority order; a label's key is its own.
    pub fn keys(&self, concept: Concept) -> Vec<String> {
        match concept {
            Concept::Label(label) => vec![label.key().to_string()],
            fixed => self.keys.get(&fixed).cloned().unwrap_or_default(),
        }
    }

    /// The labels every pipeline run groups by, in configured order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Sets the labels every pipeline run groups by.
    pub fn set_labels(&mut self, labels: Vec<Label>) {
        self.labels = labels;
    }

    /// The resource ids every pipeline run keys separately, in configured order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// Sets the resource ids every pipeline run keys separately.
    pub fn set_resources(&mut self, resources: Vec<String>) {
        self.resources = resources;
    }

    /// Applies one override, `namespace=app.kubernetes.io/part-of,team`: the concept's keys are replaced.
    ///
    /// Keys are kept as written (they are tag keys, not column names); empty keys, a missing `=` or an
    /// unknown concept are errors. Keys may contain `=` after the first one, `.`, `/`, `:` and unicode.
    pub fn apply_override(&mut self, spec: &str) -> Result<(), DomainError> {
        let invalid = |reason: &str| DomainError::InvalidTagMapping {
            given: spec.to_string(),
            reason: reason.to_string(),
            allowed: Concept::names(),
        };
        let (concept, keys) = spec.split_once('=').ok_or_else(|| invalid("missing `=`"))?;
        let concept: Concept = concept.parse().map_err(|e: String| invalid(&e))?;
        let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_string()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(invalid("empty tag key"));
        }
        if keys.iter().any(|k| k.chars().any(char::is_control)) {
            return Err(invalid("tag key contains a control character"));
        }
        self.keys.insert(concept, keys);
        Ok(())
    }
}

/// Where one tag's value is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TagSource {
    /// Legacy CUR: a flat column such as `resource_tags_user_kubernetes_namespace`.
    Column(String),
    /// CUR 2.0 / FOCUS: a key in a map column (or a JSON object in CSV exports).
    MapKey { column: String, key: String },
}

/// The outcome of resolving one tag key against a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The key is readable from these sources (more than one when AWS merged or the reader de-duplicated).
    Found(Vec<TagSource>),
    /// The table cannot hold this key: what was looked for, for the warning.
    Missing { looked_for: String },
}

/// Resolves a tag key (as written on the resource) for a flavour and its real column list.
///
/// Legacy CUR: the key becomes `resource_tags_user_<normalised>` (`aws:` keys `resource_tags_aws_…`) and
/// must exist as a column. CUR 2.0: the same name without `resource_tags_` as a key of the
/// `resource_tags` map. FOCUS: the key of the `tags` map as written, and also `user:<key>` because
/// the key form of AWS's FOCUS export is unverified (docs/cur-reference.md#formats). Map keys can
/// only be checked against data, not columns: the allocation query counts each source's non-blank
/// values ([`crate::domain::plan::AllocationPlan::presence`]).
pub fn resolve_tag(flavour: Flavour, columns: &ColumnSet, key: &str) -> Resolution {
    let column_form = if key.starts_with("aws:") {
        aws_column_name(&format!("resourceTags/{key}"))
    } else {
        aws_column_name(&format!("resourceTags/user:{key}"))
    };
    match flavour {
        Flavour::LegacyCur => {
            let found = columns.resolve(&column_form);
            if found.is_empty() {
                Resolution::Missing {
                    looked_for: format!("column {column_form}"),
                }
            } else {
                Resolution::Found(
                    found
                        .into_iter()
                        .map(|c| TagSource::Column(c.to_string()))
                        .collect(),
                )
            }
        }
        Flavour::Cur2 => match columns.get("resource_tags") {
            Some(map) => {
                let map_key = column_form
                    .strip_prefix("resource_tags_")
                    .unwrap_or(&column_form)
                    .to_string();
                Resolution::Found(vec![TagSource::MapKey {
                    column: map.to_string(),
                    key: map_key,
                }])
            }
            None => Resolution::Missing {
                looked_for: "column resource_tags".into(),
            },
        },
        Flavour::Focus => match columns.get("tags") {
            Some(map) => {
                let mut sources = vec![TagSource::MapKey {
                    column: map.to_string(),
                    key: key.to_string(),
                }];
                if !key.starts_with("user:") && !key.starts_with("aws:") {
                    sources.push(TagSource::MapKey {
                        column: map.to_string(),
                        key: format!("user:{key}"),
                    });
                }
                Resolution::Found(sources)
            }
            None => Resolution::Missing {
                looked_for: "column tags".into(),
            },
        },
    }
}

/// What one tag cell holding text reads as: CUR 2.0 `resource_tags` and FOCUS `Tags` in CSV exports hold
/// a JSON object (`{"user_team":"a"}`). Exporters also write blanks, the text `NULL`, or worse.
#[derive(Debug, Clone, PartialEq)]
pub enum TagCell {
    /// NULL, empty or whitespace: the line item has no tags. Not a problem.
    Blank,
    /// A JSON object whose values are strings, numbers, booleans or null.
    Tags(serde_json::Map<String, serde_json::Value>),
    /// Anything else: invalid JSON, `NULL`/`null`, an array, a bare string or number, an object holding
    /// nested objects or arrays. The line item is read as untagged (its cost goes to `__unallocated__`)
    /// and counted in one [`crate::domain::plan::Warning::UnreadableTags`]; the run never fails on it.
    Unreadable,
}

impl TagCell {
    /// Reads a tag cell held as text (`None` for SQL NULL).
    pub fn read(text: Option<&str>) -> TagCell {
        let Some(text) = text else {
            return TagCell::Blank;
        };
        if text.trim().is_empty() {
            return TagCell::Blank;
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            Ok(object)
                if object.values().all(|v| {
                    !matches!(
                        v,
                        serde_json::Value::Object(_) | serde_json::Value::Array(_)
                    )
                }) =>
            {
                TagCell::Tags(object)
            }
            _ => TagCell::Unreadable,
        }
    }

    /// The value of `key`: a string as is, a number or boolean as its JSON text; `None` when absent,
    /// null, or the cell is blank or unreadable.
    pub fn get(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        let TagCell::Tags(object) = self else {
            return None;
        };
        match object.get(key)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(value) => Some(std::borrow::Cow::Borrowed(value)),
            other => Some(std::borrow::Cow::Owned(other.to_string())),
        }
    }

    pub fn is_unreadable(&self) -> bool {
        matches!(self, TagCell::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_uses_kubernetes_keys() {
        let mapping = TagMapping::default();
        assert_eq!(mapping.keys(Concept::Namespace), ["kubernetes_namespace"]);
        assert_eq!(mapping.keys(Concept::Daemonset), ["kubernetes_daemonset"]);
    }

    #[test]
    fn override_replaces_keys_in_priority_order() {
        let mut mapping = TagMapping::default();
        mapping
            .apply_override("namespace=app.kubernetes.io/part-of, team")
            .expect("valid override");
        assert_eq!(
            mapping.keys(Concept::Namespace),
            ["app.kubernetes.io/part-of", "team"]
        );
        assert_eq!(mapping.keys(Concept::Pod), ["kubernetes_pod"]);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let mut mapping = TagMapping::default();
        for (spec, needle) in [
            ("namespace", "missing `=`"),
            ("team=x", "unknown concept `team`"),
            ("pod=a,,b", "empty tag key"),
        ] {
            let err = mapping.apply_override(spec).expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn legacy_key_resolves_to_its_normalised_column() {
        let cols = ColumnSet::new([
            "line_item_unblended_cost",
            "resource_tags_user_app_kubernetes_io_part_of",
        ]);
        assert_eq!(
            resolve_tag(Flavour::LegacyCur, &cols, "app.kubernetes.io/part-of"),
            Resolution::Found(vec![TagSource::Column(
                "resource_tags_user_app_kubernetes_io_part_of".into()
            )])
        );
        assert_eq!(
            resolve_tag(Flavour::LegacyCur, &cols, "kubernetes_pod"),
            Resolution::Missing {
                looked_for: "column resource_tags_user_kubernetes_pod".into()
            }
        );
    }

    #[test]
    fn aws_generated_key_resolves_without_user_prefix() {
        let cols = ColumnSet::new(["resource_tags_aws_eks_cluster_name"]);
        assert!(matches!(
            resolve_tag(Flavour::LegacyCur, &cols, "aws:eks:cluster-name"),
            Resolution::Found(_)
        ));
        let cur2 = ColumnSet::new(["resource_tags"]);
        assert_eq!(
            resolve_tag(Flavour::Cur2, &cur2, "aws:eks:cluster-name"),
            Resolution::Found(vec![TagSource::MapKey {
                column: "resource_tags".into(),
                key: "aws_eks_cluster_name".into()
            }])
        );
    }

    #[test]
    fn cur2_key_is_normalised_with_user_prefix() {
        let cols = ColumnSet::new(["resource_tags"]);
        assert_eq!(
            resolve_tag(Flavour::Cur2, &cols, "KubernetesCluster"),
            Resolution::Found(vec![TagSource::MapKey {
                column: "resource_tags".into(),
                key: "user_kubernetes_cluster".into()
            }])
        );
    }

    #[test]
    fn focus_key_tolerates_both_key_forms() {
        let cols = ColumnSet::new(["tags"]);
        let Resolution::Found(sources) = resolve_tag(Flavour::Focus, &cols, "kubernetes_namespace")
        else {
            panic!("tags column exists");
        };
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[1],
            TagSource::MapKey {
                column: "tags".into(),
                key: "user:kubernetes_namespace".into()
            }
        );
    }

    #[test]
    fn tag_cells_that_cannot_be_read_are_unreadable_not_errors() {
        assert_eq!(TagCell::read(None), TagCell::Blank);
        assert_eq!(TagCell::read(Some("  ")), TagCell::Blank);
        let cell = TagCell::read(Some(r#"{"kubernetes_namespace":"支付","n":3,"x":null}"#));
        assert_eq!(cell.get("kubernetes_namespace").as_deref(), Some("支付"));
        assert_eq!(cell.get("n").as_deref(), Some("3"));
        assert_eq!(cell.get("x"), None);
        assert_eq!(cell.get("absent"), None);
        for text in [
            "NULL",
            "null",
            "{not json",
            "[1,2]",
            "\"text\"",
            "42",
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":["b"]}"#,
        ] {
            let cell = TagCell::read(Some(text));
            assert!(cell.is_unreadable(), "{text}: {cell:?}");
            assert_eq!(cell.get("a"), None, "{text}");
        }
    }
}

//! The keys an allocation can be grouped by.

use super::error::DomainError;
use super::label::Label;
use super::named::trimmed_lowercase;
use super::tags::Concept;

/// One grouping key of an allocation. The names are OpenCost's `aggregate` names, used in requests and
/// output columns (SQL aliases: [`Dimension::sql_alias`]); [`Dimension::ALL`] is in the order of the
/// full-grain allocation.
/// [`Dimension::Label`] (`label:KEY`) is any other tag key; it is not in [`Dimension::ALL`].
/// [`Dimension::Resource`] (`resource`) exists for share rules that select line items by resource id:
/// it is the id for the ids a plan lists ([`super::plan::AllocationRequest::resources`]) and `''` for
/// every other line item, so it never multiplies groups beyond the resources named. It is not an
/// `aggregate` choice and does not parse from a request ([`std::str::FromStr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Day,
    Cluster,
    Namespace,
    Deployment,
    Pod,
    Daemonset,
    Container,
    Service,
    Account,
    Label(Label),
    Resource,
}

/// The fixed dimensions and their names, in [`Dimension::ALL`] order.
const FIXED: [(Dimension, &str); 9] = [
    (Dimension::Day, "day"),
    (Dimension::Cluster, "cluster"),
    (Dimension::Namespace, "namespace"),
    (Dimension::Deployment, "deployment"),
    (Dimension::Pod, "pod"),
    (Dimension::Daemonset, "daemonset"),
    (Dimension::Container, "container"),
    (Dimension::Service, "service"),
    (Dimension::Account, "account"),
];

impl Dimension {
    /// Every fixed dimension (not the labels), in the order of the full-grain allocation.
    pub const ALL: [Dimension; 9] = [
        Dimension::Day,
        Dimension::Cluster,
        Dimension::Namespace,
        Dimension::Deployment,
        Dimension::Pod,
        Dimension::Daemonset,
        Dimension::Container,
        Dimension::Service,
        Dimension::Account,
    ];

    /// The name in requests, output and SQL aliases: `namespace`, …, `label:KEY`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Label(label) => label.name(),
            Dimension::Resource => "resource",
            fixed => FIXED
                .iter()
                .find(|(d, _)| *d == fixed)
                .map_or("", |(_, name)| name),
        }
    }

    /// Every fixed name joined with `, `, and `label:KEY`: the choices an error message lists.
    pub fn names() -> String {
        let mut names: Vec<&str> = FIXED.iter().map(|(_, name)| *name).collect();
        names.push("label:KEY");
        names.join(", ")
    }

    /// The column alias in the allocation query and its result: the name of a fixed dimension; for a
    /// label `label_` and the 64-bit FNV-1a hash of its key in hex. Athena (Trino) treats identifiers
    /// case-insensitively, even quoted ones (<https://github.com/trinodb/trino/issues/17>), so
    /// `label:Team` and `label:team` as aliases would be one column; a lower-case ASCII alias derived
    /// from the exact key keeps them apart.
    pub fn sql_alias(self) -> String {
        match self {
            Dimension::Label(label) => {
                let mut hash = crate::domain::snapshot::Fnv128::new();
                hash.write(label.key().as_bytes());
                format!("label_{:016x}", hash.finish() as u64)
            }
            // Apart from the query's `resource_id`, `resource_hash` and `resources` columns.
            Dimension::Resource => "resource_key".to_string(),
            fixed => fixed.name().to_string(),
        }
    }

    /// The label, for a `label:KEY` dimension.
    pub fn label(self) -> Option<Label> {
        match self {
            Dimension::Label(label) => Some(label),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dimension {
    type Err = DomainError;

    /// A fixed name (trimmed, any case) or `label:KEY` (the prefix in any case, the key as written).
    fn from_str(text: &str) -> Result<Dimension, DomainError> {
        let trimmed = text.trim();
        if let Some(label) = Label::parse_prefixed(trimmed) {
            return label.map(Dimension::Label);
        }
        let wanted = trimmed_lowercase(trimmed);
        FIXED
            .iter()
            .find(|(_, name)| *name == wanted)
            .map(|(d, _)| *d)
            .ok_or_else(|| DomainError::UnknownDimension {
                given: text.to_string(),
                allowed: Dimension::names(),
            })
    }
}

/// Stored and sent as its name (`"namespace"`, `"label:team"`).
impl serde::Serialize for Dimension {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Dimension {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == Dimension::Resource.name() {
            return Ok(Dimension::Resource);
        }
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Dimension {
    /// The Kubernetes concept behind this dimension, if it comes from a tag.
    pub fn concept(self) -> Option<Concept> {
        match self {
            Dimension::Cluster => Some(Concept::Cluster),
            Dimension::Namespace => Some(Concept::Namespace),
            Dimension::Deployment => Some(Concept::Deployment),
            Dimension::Pod => Some(Concept::Pod),
            Dimension::Daemonset => Some(Concept::Daemonset),
            Dimension::Container => Some(Concept::Container),
            Dimension::Label(label) => Some(Concept::Label(label)),
            Dimension::Day | Dimension::Service | Dimension::Account | Dimension::Resource => None,
        }
    }

    /// Parses `namespace,service` into dimensions, in the given order. Empty input is an error:
    /// callers that want the full grain pass [`Dimension::ALL`].
    pub fn parse_list(text: &str) -> Result<Vec<Dimension>, DomainError> {
        let mut out: Vec<Dimension> = Vec::new();
        for part in text.split(',') {
            let dim: Dimension = part.parse()?;
            if out.contains(&dim) {
                return Err(DomainError::RepeatedDimension(dim.name().to_string()));
            }
            out.push(dim);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_in_order() {
        assert_eq!(
            Dimension::parse_list("namespace, Service"),
            Ok(vec![Dimension::Namespace, Dimension::Service])
        );
    }

    #[test]
    fn unknown_dimension_lists_the_allowed_ones() {
        let err = Dimension::parse_list("namespace,labels:app").expect_err("no such dimension");
        assert!(err.to_string().contains("`labels:app`"), "{err}");
        assert!(err.to_string().contains("daemonset"), "{err}");
        assert!(err.to_string().contains("label:KEY"), "{err}");
    }

    #[test]
    fn a_label_dimension_is_any_tag_key_and_round_trips_through_serde() {
        let dims = Dimension::parse_list("namespace, Label:app.kubernetes.io/name").expect("valid");
        let label = Label::new("app.kubernetes.io/name").expect("valid");
        assert_eq!(dims, vec![Dimension::Namespace, Dimension::Label(label)]);
        assert_eq!(dims[1].name(), "label:app.kubernetes.io/name");
        assert_eq!(dims[1].concept(), Some(Concept::Label(label)));
        let json = serde_json::to_string(&dims).expect("serialises");
        assert_eq!(json, r#"["namespace","label:app.kubernetes.io/name"]"#);
        let back: Vec<Dimension> = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, dims);
        assert!(Dimension::parse_list("label:").is_err(), "an empty key");
        assert!(
            Dimension::parse_list("label:a,label:a").is_err(),
            "repeated"
        );
    }

    #[test]
    fn label_aliases_are_lower_case_ascii_and_tell_keys_of_another_case_apart() {
        let upper = Dimension::Label(Label::new("Team").expect("valid"));
        let lower = Dimension::Label(Label::new("team").expect("valid"));
        for alias in [upper.sql_alias(), lower.sql_alias()] {
            assert!(alias.starts_with("label_") && alias.len() == 22, "{alias}");
            assert!(
                alias
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{alias}"
            );
        }
        assert_ne!(upper.sql_alias(), lower.sql_alias());
        assert_eq!(Dimension::Namespace.sql_alias(), "namespace");
    }

    #[test]
    fn resource_is_not_an_aggregate_choice_but_round_trips_through_serde() {
        assert!(Dimension::parse_list("namespace,resource").is_err());
        assert!(!Dimension::names().contains("resource"));
        let json = serde_json::to_string(&Dimension::Resource).expect("serialises");
        assert_eq!(json, r#""resource""#);
        let back: Dimension = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, Dimension::Resource);
        assert_eq!(Dimension::Resource.sql_alias(), "resource_key");
        assert_eq!(Dimension::Resource.concept(), None);
    }

    #[test]
    fn every_fixed_dimension_is_named_and_parses_back() {
        for d in Dimension::ALL {
            assert_eq!(d.name().parse::<Dimension>(), Ok(d));
            assert_eq!(
                serde_json::to_string(&d).expect("ok"),
                format!("\"{}\"", d.name())
            );
        }
    }

    #[test]
    fn repeated_and_empty_entries_are_rejected() {
        assert!(Dimension::parse_list("pod,pod").is_err());
        assert!(Dimension::parse_list("").is_err());
        assert!(Dimension::parse_list("pod,").is_err());
    }
}

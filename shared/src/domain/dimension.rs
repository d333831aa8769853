//! The keys an allocation can be grouped by.

use super::error::DomainError;
use super::tags::Concept;
use std::fmt;
use std::str::FromStr;

/// One grouping key of an allocation. The names are OpenCost's `aggregate` names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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
}

impl Dimension {
    /// Every dimension, in the order of the full-grain allocation.
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

    /// The name used in requests, output columns and SQL aliases.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Cluster => "cluster",
            Dimension::Namespace => "namespace",
            Dimension::Deployment => "deployment",
            Dimension::Pod => "pod",
            Dimension::Daemonset => "daemonset",
            Dimension::Container => "container",
            Dimension::Service => "service",
            Dimension::Account => "account",
        }
    }

    /// The Kubernetes concept behind this dimension, if it comes from a tag.
    pub fn concept(self) -> Option<Concept> {
        match self {
            Dimension::Cluster => Some(Concept::Cluster),
            Dimension::Namespace => Some(Concept::Namespace),
            Dimension::Deployment => Some(Concept::Deployment),
            Dimension::Pod => Some(Concept::Pod),
            Dimension::Daemonset => Some(Concept::Daemonset),
            Dimension::Container => Some(Concept::Container),
            Dimension::Day | Dimension::Service | Dimension::Account => None,
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

    fn allowed() -> String {
        Dimension::ALL
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dimension {
    type Err = DomainError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        Dimension::ALL
            .into_iter()
            .find(|d| d.name() == wanted)
            .ok_or_else(|| DomainError::UnknownDimension {
                given: text.to_string(),
                allowed: Dimension::allowed(),
            })
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
        let err = Dimension::parse_list("namespace,label:app").expect_err("label is not supported");
        assert!(err.to_string().contains("`label:app`"), "{err}");
        assert!(err.to_string().contains("daemonset"), "{err}");
    }

    #[test]
    fn repeated_and_empty_entries_are_rejected() {
        assert!(Dimension::parse_list("pod,pod").is_err());
        assert!(Dimension::parse_list("").is_err());
        assert!(Dimension::parse_list("pod,").is_err());
    }
}

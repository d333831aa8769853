//! The keys an allocation can be grouped by.

use super::error::DomainError;
use super::named::{named_enum, trimmed_lowercase};
use super::tags::Concept;

/// One grouping key of an allocation. The names are OpenCost's `aggregate` names, used in requests,
/// output columns and SQL aliases; [`Dimension::ALL`] is in the order of the full-grain allocation.
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

named_enum!(Dimension {
    Day => "day",
    Cluster => "cluster",
    Namespace => "namespace",
    Deployment => "deployment",
    Pod => "pod",
    Daemonset => "daemonset",
    Container => "container",
    Service => "service",
    Account => "account",
} from_str: DomainError, trimmed_lowercase, |given, allowed| DomainError::UnknownDimension {
    given,
    allowed
});

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

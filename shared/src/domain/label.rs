//! `label:KEY`: any tag key as a grouping key (OpenCost's `aggregate=label:team`).
//!
//! A [`Label`] is interned — the key is kept once per process and the label is a `Copy` pointer to it —
//! so that [`super::Dimension`] and [`super::Concept`] stay small `Copy` values. The interner is
//! bounded ([`MAX_LABELS`]): a long-running server asked for ever new keys refuses them with an
//! error rather than growing without end.

use super::error::DomainError;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The prefix of a label dimension's name (`label:team`), compared without case.
pub const PREFIX: &str = "label:";

/// The longest tag key AWS allows: 128 characters
/// (<https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html>).
pub const MAX_KEY_CHARS: usize = 128;

/// The most distinct label keys one process interns.
pub const MAX_LABELS: usize = 4096;

/// Interned names, `label:KEY`, each leaked once.
static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// A tag key used as a grouping key. Compares, orders and hashes by the key's text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(&'static str);

impl Label {
    /// The label for tag key `key`, as written on the resources (case and spaces kept: AWS tag keys are
    /// case-sensitive). Errors on an empty key, a control character, a key over 128 characters, or
    /// when the process already holds [`MAX_LABELS`] other keys.
    pub fn new(key: &str) -> Result<Label, DomainError> {
        let invalid = |reason: &str| DomainError::InvalidLabel {
            given: key.escape_debug().to_string(),
            reason: reason.to_string(),
        };
        if key.trim().is_empty() {
            return Err(invalid("the tag key is empty"));
        }
        if key.chars().any(char::is_control) {
            return Err(invalid("the tag key contains a control character"));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(invalid("AWS tag keys have at most 128 characters"));
        }
        let name = format!("{PREFIX}{key}");
        let mut names = NAMES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = names.get(name.as_str()) {
            return Ok(Label(found));
        }
        if names.len() >= MAX_LABELS {
            return Err(invalid(&format!(
                "this process already serves {MAX_LABELS} distinct label keys"
            )));
        }
        let leaked: &'static str = Box::leak(name.into_boxed_str());
        names.insert(leaked);
        Ok(Label(leaked))
    }

    /// Parses `label:KEY` (the prefix in any case); `None` when `text` has no such prefix.
    pub fn parse_prefixed(text: &str) -> Option<Result<Label, DomainError>> {
        let head = text.get(..PREFIX.len())?;
        head.eq_ignore_ascii_case(PREFIX)
            .then(|| Label::new(&text[PREFIX.len()..]))
    }

    /// The tag key, as written on the resources.
    pub fn key(self) -> &'static str {
        &self.0[PREFIX.len()..]
    }

    /// `label:KEY`: the dimension's name in requests, output columns and SQL aliases.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Label({:?})", self.key())
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Stored as its key (`"team"`), in run records and snapshot descriptions.
impl serde::Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

impl<'de> serde::Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        Label::new(&key).map_err(serde::de::Error::custom)
    }
}

/// Parses a configured list of tag keys (`KUBECUR_LABELS=team,cost-center`, `--labels team`): comma
/// separated, each trimmed, none repeated.
pub fn parse_label_list(text: &str) -> Result<Vec<Label>, DomainError> {
    let mut out: Vec<Label> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let label = Label::parse_prefixed(part).unwrap_or_else(|| Label::new(part))?;
        if out.contains(&label) {
            return Err(DomainError::InvalidLabel {
                given: part.to_string(),
                reason: "listed twice".into(),
            });
        }
        out.push(label);
    }
    Ok(out)
}

/// Parses `KEY:VALUE[,KEY:VALUE]` (`filterLabels`, `shareLabels`, `--share-labels`) into each key's
/// values, keys in first-seen order. Each pair splits at its **last** `:`, because AWS tag keys may hold
/// colons (`aws:createdBy`) and values rarely do; a value with a colon is selected with a rules file.
/// Errors name the pair.
pub fn parse_label_values(text: &str) -> Result<Vec<(Label, Vec<String>)>, String> {
    let mut out: Vec<(Label, Vec<String>)> = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .rsplit_once(':')
            .ok_or_else(|| format!("`{pair}` is not KEY:VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return Err(format!("`{pair}` has no value after its last `:`"));
        }
        let label = Label::new(key).map_err(|e| e.to_string())?;
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, values)) => {
                if !values.iter().any(|v| v == value) {
                    values.push(value.to_string());
                }
            }
            None => out.push((label, vec![value.to_string()])),
        }
    }
    if out.is_empty() {
        return Err("is empty; expected KEY:VALUE[,KEY:VALUE]".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_keeps_its_key_as_written_and_is_interned() {
        let a = Label::new("Team/Owner").expect("valid");
        let b = Label::parse_prefixed("LABEL:Team/Owner")
            .expect("prefixed")
            .expect("valid");
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.name(), b.name()), "one copy of the key");
        assert_eq!(a.key(), "Team/Owner");
        assert_eq!(a.name(), "label:Team/Owner");
        assert_ne!(a, Label::new("team/owner").expect("valid"), "case is kept");
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        for (key, reason) in [
            ("", "empty"),
            ("  ", "empty"),
            ("a\tb", "control"),
            (&"k".repeat(129), "128"),
        ] {
            let err = Label::new(key).expect_err(key).to_string();
            assert!(err.contains(reason), "{key:?}: {err}");
        }
        assert!(Label::new(&"k".repeat(128)).is_ok());
        assert!(Label::parse_prefixed("namespace").is_none());
        assert!(Label::parse_prefixed("lab").is_none());
    }

    #[test]
    fn label_values_split_at_the_last_colon_and_group_by_key() {
        let parsed =
            parse_label_values("team:payments, aws:createdBy:alice ,team:search,team:payments")
                .expect("valid");
        let flat: Vec<(&str, Vec<&str>)> = parsed
            .iter()
            .map(|(l, v)| (l.key(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            flat,
            [
                ("team", vec!["payments", "search"]),
                ("aws:createdBy", vec!["alice"])
            ]
        );
        for bad in ["team", "team:", ":x", "", " , "] {
            assert!(parse_label_values(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_configured_list_is_trimmed_and_refuses_repeats() {
        let labels = parse_label_list(" team, label:cost-center ,").expect("valid");
        let keys: Vec<&str> = labels.iter().map(|l| l.key()).collect();
        assert_eq!(keys, ["team", "cost-center"]);
        assert!(parse_label_list("team,team")
            .expect_err("repeat")
            .to_string()
            .contains("twice"));
        assert_eq!(parse_label_list("").expect("empty is none"), Vec::new());
    }
}

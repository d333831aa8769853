//! Column names: AWS's rules for turning a CUR header or tag key into an Athena column name,
//! and a case-insensitive view of a table's real column list.

/// Applies AWS's CUR column-name rules (docs/cur-reference.md#column-names), in order:
/// `_` before every upper-case letter, lower-case, every non-`[a-z0-9]` becomes `_`,
/// runs of `_` collapse, leading/trailing `_` are stripped.
///
/// `lineItem/UnblendedCost` → `line_item_unblended_cost`; `resourceTags/user:userID` →
/// `resource_tags_user_user_i_d`. Non-ASCII letters become `_` like any other character AWS rejects.
/// Truncation of over-long names is *not* modelled: [`ColumnSet::resolve`] matches those by their
/// underscore-free form instead, because the limit is not documented.
pub fn aws_column_name(raw: &str) -> String {
    let mut spaced = String::with_capacity(raw.len() + 8);
    for ch in raw.chars() {
        if ch.is_ascii_uppercase() {
            spaced.push('_');
        }
        spaced.push(ch);
    }
    let mut out = String::with_capacity(spaced.len());
    for ch in spaced.chars().flat_map(char::to_lowercase) {
        let mapped = if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            ch
        } else {
            '_'
        };
        if mapped == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(mapped);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The name a source column gets in kubecur's canonical (Athena-like) view of the data.
///
/// Legacy CUR CSV headers (`lineItem/UnblendedCost`, `resourceTags/user:Team`) follow AWS's rules;
/// everything else (Parquet columns, FOCUS `ChargePeriodStart`) is lower-cased, as Glue does.
pub fn canonical_column_name(raw: &str) -> String {
    if raw.contains('/') {
        aws_column_name(raw)
    } else {
        raw.trim().to_lowercase()
    }
}

/// A table's real column list, looked up case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnSet {
    names: Vec<String>,
}

impl ColumnSet {
    /// Builds the set from the real column names, as the engine or Glue reports them.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// The real names, in source order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The real name of `wanted` if the table has it (case-insensitive).
    pub fn get(&self, wanted: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(wanted))
            .map(String::as_str)
    }

    /// Whether the table has `wanted` (case-insensitive).
    pub fn has(&self, wanted: &str) -> bool {
        self.get(wanted).is_some()
    }

    /// The first of `candidates` the table has.
    pub fn first_of(&self, candidates: &[&str]) -> Option<&str> {
        candidates.iter().find_map(|c| self.get(c))
    }

    /// Every real column that carries the tag column `wanted`: the exact name, duplicates that a CSV
    /// reader had to rename (`name__dup2`, AWS merges `Team` and `team` into one column), and, when no
    /// exact match exists, a unique column with the same underscore-free spelling (AWS shortens
    /// over-long names by dropping underscores).
    pub fn resolve(&self, wanted: &str) -> Vec<&str> {
        let wanted = wanted.to_ascii_lowercase();
        let dup_prefix = format!("{wanted}__dup");
        let exact: Vec<&str> = self
            .names
            .iter()
            .filter(|n| {
                let n = n.to_ascii_lowercase();
                n == wanted || n.starts_with(&dup_prefix)
            })
            .map(String::as_str)
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        let squashed: String = wanted.chars().filter(|c| *c != '_').collect();
        let loose: Vec<&str> = self
            .names
            .iter()
            .filter(|n| {
                n.to_ascii_lowercase()
                    .chars()
                    .filter(|c| *c != '_')
                    .eq(squashed.chars())
            })
            .map(String::as_str)
            .collect();
        if loose.len() == 1 {
            loose
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test per row of docs/cur-reference.md#column-names.
    #[test]
    fn plain_key_maps_to_user_column() {
        assert_eq!(
            aws_column_name("resourceTags/user:kubernetes_namespace"),
            "resource_tags_user_kubernetes_namespace"
        );
    }

    #[test]
    fn ebs_csi_key_with_dots_slashes_and_dashes() {
        assert_eq!(
            aws_column_name("resourceTags/user:kubernetes.io/created-for/pvc/namespace"),
            "resource_tags_user_kubernetes_io_created_for_pvc_namespace"
        );
    }

    #[test]
    fn camel_case_key_gets_underscores() {
        assert_eq!(
            aws_column_name("resourceTags/user:KubernetesCluster"),
            "resource_tags_user_kubernetes_cluster"
        );
    }

    #[test]
    fn consecutive_capitals_each_get_an_underscore() {
        assert_eq!(
            aws_column_name("resourceTags/user:userID"),
            "resource_tags_user_user_i_d"
        );
    }

    #[test]
    fn keys_differing_in_case_merge() {
        assert_eq!(
            aws_column_name("resourceTags/user:Team"),
            aws_column_name("resourceTags/user:team")
        );
        assert_eq!(
            aws_column_name("resourceTags/user:team"),
            "resource_tags_user_team"
        );
    }

    #[test]
    fn aws_generated_key_keeps_aws_prefix() {
        assert_eq!(
            aws_column_name("resourceTags/aws:eks:cluster-name"),
            "resource_tags_aws_eks_cluster_name"
        );
    }

    #[test]
    fn legacy_csv_headers_become_athena_names() {
        assert_eq!(
            canonical_column_name("lineItem/UnblendedCost"),
            "line_item_unblended_cost"
        );
        assert_eq!(
            canonical_column_name("lineItem/LineItemType"),
            "line_item_line_item_type"
        );
        assert_eq!(
            canonical_column_name("savingsPlan/SavingsPlanEffectiveCost"),
            "savings_plan_savings_plan_effective_cost"
        );
        assert_eq!(
            canonical_column_name("reservation/ReservationARN"),
            "reservation_reservation_a_r_n"
        );
    }

    #[test]
    fn parquet_and_focus_names_are_lower_cased_like_glue() {
        assert_eq!(
            canonical_column_name("ChargePeriodStart"),
            "chargeperiodstart"
        );
        assert_eq!(
            canonical_column_name("line_item_unblended_cost"),
            "line_item_unblended_cost"
        );
    }

    #[test]
    fn unicode_and_leading_symbols_are_stripped() {
        assert_eq!(aws_column_name("__Zählung:x__"), "z_hlung_x");
    }

    #[test]
    fn resolve_finds_duplicates_and_truncated_names() {
        let cols = ColumnSet::new([
            "a",
            "resource_tags_user_team",
            "resource_tags_user_team__dup2",
            "resourcetags_user_longkey",
        ]);
        assert_eq!(
            cols.resolve("resource_tags_user_team"),
            vec!["resource_tags_user_team", "resource_tags_user_team__dup2"]
        );
        assert_eq!(
            cols.resolve("resource_tags_user_long_key"),
            vec!["resourcetags_user_longkey"]
        );
        assert!(cols.resolve("resource_tags_user_absent").is_empty());
    }
}

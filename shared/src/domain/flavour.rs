//! Which of the three CUR formats a table holds, told from its column list alone.

use super::columns::ColumnSet;
use super::error::DomainError;
use std::fmt;

/// The export format of the data. See docs/cur-reference.md#formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavour {
    /// Legacy CUR: flat `resource_tags_user_*` columns, Athena partitions `year`/`month`.
    LegacyCur,
    /// CUR 2.0 (Data Exports): `resource_tags` map, partition `billing_period`.
    Cur2,
    /// FOCUS 1.x export: `ChargePeriodStart`, `EffectiveCost`, `Tags`.
    Focus,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::LegacyCur => "legacy CUR",
            Flavour::Cur2 => "CUR 2.0",
            Flavour::Focus => "FOCUS",
        })
    }
}

const FOCUS_MARKERS: [&str; 2] = ["chargeperiodstart", "effectivecost"];
const CUR_MARKERS: [&str; 2] = ["line_item_unblended_cost", "line_item_usage_start_date"];
const CUR2_MARKER: &str = "resource_tags";

impl Flavour {
    /// Detects the flavour from the real column names (canonical or Glue lower-case; case is ignored).
    ///
    /// FOCUS wins when both FOCUS markers exist; otherwise a CUR with a `resource_tags` column is CUR 2.0
    /// and one without is legacy. A table with neither set of markers is not a CUR:
    /// [`DomainError::UnknownFlavour`] names the markers and the columns found.
    pub fn detect(columns: &ColumnSet) -> Result<Flavour, DomainError> {
        if FOCUS_MARKERS.iter().all(|c| columns.has(c)) {
            return Ok(Flavour::Focus);
        }
        if CUR_MARKERS.iter().all(|c| columns.has(c)) {
            return Ok(if columns.has(CUR2_MARKER) {
                Flavour::Cur2
            } else {
                Flavour::LegacyCur
            });
        }
        Err(DomainError::UnknownFlavour {
            legacy: CUR_MARKERS.join(", "),
            cur2: format!("{} + {CUR2_MARKER}", CUR_MARKERS.join(", ")),
            focus: FOCUS_MARKERS.join(", "),
            found: preview(columns.names()),
        })
    }
}

/// The first few column names, for error messages about a table's shape.
pub(crate) fn preview(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" … ({} columns)", names.len()));
    }
    if text.is_empty() {
        text.push_str("no columns");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_cur_has_flat_tag_columns_and_no_map() {
        let cols = ColumnSet::new([
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "resource_tags_user_team",
            "year",
            "month",
        ]);
        assert_eq!(Flavour::detect(&cols), Ok(Flavour::LegacyCur));
    }

    #[test]
    fn cur2_has_the_resource_tags_map() {
        let cols = ColumnSet::new([
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "resource_tags",
            "billing_period",
        ]);
        assert_eq!(Flavour::detect(&cols), Ok(Flavour::Cur2));
    }

    #[test]
    fn focus_is_detected_in_any_case() {
        let cols = ColumnSet::new(["ChargePeriodStart", "EffectiveCost", "BilledCost", "Tags"]);
        assert_eq!(Flavour::detect(&cols), Ok(Flavour::Focus));
        let glue = ColumnSet::new(["chargeperiodstart", "effectivecost"]);
        assert_eq!(Flavour::detect(&glue), Ok(Flavour::Focus));
    }

    #[test]
    fn a_table_that_is_no_cur_is_named_as_such() {
        let cols = ColumnSet::new(["status"]);
        let err = Flavour::detect(&cols).expect_err("status table is not a CUR");
        let text = err.to_string();
        assert!(text.contains("not a Cost and Usage Report"), "{text}");
        assert!(text.contains("found: status"), "{text}");
    }
}

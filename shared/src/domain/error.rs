//! Errors the domain raises: all of them are bad input (request or data shape), never I/O.

use thiserror::Error;

/// What the caller asked for, or the data it pointed at, cannot be allocated as given.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DomainError {
    #[error("unknown cost metric `{given}`; expected one of: {allowed}")]
    UnknownMetric { given: String, allowed: String },
    #[error("unknown aggregate `{given}`; expected a comma-separated list of: {allowed}")]
    UnknownDimension { given: String, allowed: String },
    #[error("invalid label `{given}`: {reason} (expected label:KEY, KEY a tag key as written on the resources)")]
    InvalidLabel { given: String, reason: String },
    #[error("aggregate `{0}` is listed twice")]
    RepeatedDimension(String),
    #[error("invalid --tag-key `{given}`: {reason} (expected CONCEPT=KEY[,KEY], CONCEPT one of: {allowed})")]
    InvalidTagMapping {
        given: String,
        reason: String,
        allowed: String,
    },
    #[error("invalid {what} `{given}`: {reason}")]
    InvalidWindow {
        what: &'static str,
        given: String,
        reason: String,
    },
    #[error("invalid account id `{0}`: expected 12 digits")]
    InvalidAccount(String),
    #[error("invalid SQL identifier `{given}`: {reason}")]
    InvalidIdentifier { given: String, reason: String },
    #[error("text value contains a control character, which kubecur never sends to SQL: {0:?}")]
    InvalidLiteral(String),
    #[error("not a Cost and Usage Report: none of the columns mark legacy CUR ({legacy}), CUR 2.0 ({cur2}) or FOCUS ({focus}); found: {found}")]
    UnknownFlavour {
        legacy: String,
        cur2: String,
        focus: String,
        found: String,
    },
    #[error("{flavour} data lacks required column(s) {missing}; found: {found}")]
    MissingColumns {
        flavour: String,
        missing: String,
        found: String,
    },
    #[error("the CUR table is partitioned by {0}; kubecur knows `year, month` (legacy CUR) and `billing_period` (CUR 2.0, FOCUS)")]
    UnsupportedPartitions(String),
    #[error("share rule {}field `{field}`: {message}", if rule.is_empty() { String::new() } else { format!("`{rule}`, ") })]
    ShareRule {
        rule: String,
        field: String,
        message: String,
    },
    #[error("a fixed shared amount (shareCost, --share-cost, amountPerMonth) is pro-rated to the window: give a window (--period or --from/--to)")]
    ShareCostNeedsWindow,
    #[error("the Athena query needs a usage window (billing period or date range): without one it would scan the whole history")]
    WindowRequired,
}

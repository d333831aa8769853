//! Renders an [`AllocationPlan`] to SQL for Athena (engine v3, Trino), the pipeline's distributed
//! engine. The local engine (`adapters::native`) runs the same plan without SQL.
//!
//! Shape: a derived table computes every per-line-item expression, the outer query only groups and
//! sums, so all casts and CASEs live in the derived table. Every identifier is quoted and every literal
//! escaped here.

use super::dimension::Dimension;
use super::error::DomainError;
use super::expr::Expr;
use super::flavour::Flavour;
use super::metric::CostMetric;
use super::plan::{AllocationPlan, Presence, SPLIT_COST_OPERATIONS};
use super::tags::{Concept, TagSource};
use super::window::BillingPeriod;
use super::UNALLOCATED;

/// The table to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRef {
    /// `"database"."table"` in the Glue catalog, partitioned by billing period: the query always
    /// carries partition predicates.
    Glue { database: String, table: String },
}

/// Output column of the allocated flag: 1 when the line item has a namespace tag.
pub const ALLOCATED_COLUMN: &str = "allocated";
/// Output column with the number of distinct non-empty resource ids in the group.
pub const RESOURCES_COLUMN: &str = "resources";
/// Output column, with [`AllocationPlan::resource_ids`] and instead of [`RESOURCES_COLUMN`]: the group's
/// distinct resource hashes (first 16 hex digits of the MD5 of the id), separated by spaces.
pub const RESOURCE_HASHES_COLUMN: &str = "resource_hashes";
/// Output column with the number of line items in the group.
pub const LINE_ITEMS_COLUMN: &str = "line_items";
/// Output column of the local engine (never in the SQL) with the number of line items whose tags could
/// not be read (CSV exports hold tag maps as JSON text). Athena needs none: AWS declares CUR 2.0 `resource_tags` and FOCUS `tags` as `map<string,string>`
/// columns, which hold no text to misread (a NULL map is simply no tags).
pub const UNREADABLE_TAGS_COLUMN: &str = "unreadable_tags";
/// Prefix of the output columns `tag_source_<n>`: line items with a non-blank value from a tag source
/// (see [`AllocationPlan::presence`]), so missing tags are reported without a second scan.
pub const TAG_SOURCE_COLUMN_PREFIX: &str = "tag_source_";

/// Quotes an identifier (`"name"`, with `"` doubled). Control characters and empty names are rejected.
pub fn quote_ident(name: &str) -> Result<String, DomainError> {
    if name.is_empty() || name.chars().any(char::is_control) || name.len() > 255 {
        return Err(DomainError::InvalidIdentifier {
            given: name.escape_debug().to_string(),
            reason: "must be 1 to 255 characters without control characters".into(),
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Quotes a text literal (`'O''Brien'`). Control characters are rejected rather than sent to SQL.
pub fn quote_literal(value: &str) -> Result<String, DomainError> {
    if value.chars().any(char::is_control) {
        return Err(DomainError::InvalidLiteral(value.to_string()));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

struct Renderer<'a> {
    plan: &'a AllocationPlan,
}

impl Renderer<'_> {
    fn zero(&self) -> &'static str {
        // `0.0` is DECIMAL in Trino; `0E0` is DOUBLE like the cost columns.
        "0E0"
    }

    fn expr(&self, expr: &Expr) -> Result<String, DomainError> {
        Ok(match expr {
            Expr::Zero => self.zero().to_string(),
            Expr::Cost(columns) => {
                let columns = columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("COALESCE({}, {})", columns.join(", "), self.zero())
            }
            Expr::Add(parts) => {
                let parts = parts
                    .iter()
                    .map(|p| self.expr(p))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" + "))
            }
            Expr::Sub(left, right) => format!("({} - {})", self.expr(left)?, self.expr(right)?),
            Expr::ByLineItemType {
                type_column,
                branches,
                otherwise,
            } => {
                let subject = quote_ident(type_column)?;
                let mut sql = String::from("CASE");
                for branch in branches {
                    let types = branch
                        .types
                        .iter()
                        .map(|t| quote_literal(t))
                        .collect::<Result<Vec<_>, _>>()?;
                    sql.push_str(&format!(" WHEN {subject} IN ({})", types.join(", ")));
                    if let Some(column) = &branch.requires_non_empty {
                        sql.push_str(&format!(
                            " AND COALESCE({}, '') <> ''",
                            quote_ident(column)?
                        ));
                    }
                    sql.push_str(&format!(" THEN {}", self.expr(&branch.then)?));
                }
                sql.push_str(&format!(" ELSE {} END", self.expr(otherwise)?));
                sql
            }
        })
    }

    fn metric(&self, expr: &Expr) -> Result<String, DomainError> {
        self.expr(expr)
    }

    fn tag_source(&self, source: &TagSource) -> Result<String, DomainError> {
        Ok(match source {
            TagSource::Column(column) => quote_ident(column)?,
            // `map['k']` fails on a missing key in Trino; element_at returns NULL.
            TagSource::MapKey { column, key } => format!(
                "element_at({}, {})",
                quote_ident(column)?,
                quote_literal(key)?
            ),
        })
    }

    /// The first non-blank, trimmed value of `sources`, else `fallback` (SQL text): blank and
    /// whitespace-only values count as absent.
    fn first_nonblank(&self, sources: &[String], fallback: &str) -> String {
        if sources.is_empty() {
            return fallback.to_string();
        }
        let parts: Vec<String> = sources
            .iter()
            .map(|s| format!("NULLIF(TRIM({s}), '')"))
            .collect();
        format!("COALESCE({}, {fallback})", parts.join(", "))
    }

    /// 1 when the source holds a non-blank value, else 0.
    fn present(&self, source: &TagSource) -> Result<String, DomainError> {
        let value = self.tag_source(source)?;
        Ok(format!(
            "CASE WHEN NULLIF(TRIM({value}), '') IS NULL THEN 0 ELSE 1 END"
        ))
    }

    fn concept(&self, concept: Concept) -> Result<String, DomainError> {
        let sources = self
            .plan
            .sources(concept)
            .iter()
            .map(|(_, source)| self.tag_source(source))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.first_nonblank(&sources, &quote_literal(UNALLOCATED)?))
    }

    fn dimension(&self, dimension: Dimension) -> Result<String, DomainError> {
        let plan = self.plan;
        match dimension {
            // Grouped as a DATE (cheap) and printed as YYYY-MM-DD by every engine.
            Dimension::Day => Ok(format!("CAST({} AS DATE)", quote_ident(&plan.day_column)?)),
            // Trimmed, NULL as ''.
            Dimension::Service => {
                Ok(self.first_nonblank(&[quote_ident(&plan.service_column)?], "''"))
            }
            Dimension::Account => {
                Ok(self.first_nonblank(&[quote_ident(&plan.account_column)?], "''"))
            }
            // The trimmed id for the listed resources, '' for every other line item.
            Dimension::Resource => match &plan.resource_column {
                Some(column) if !plan.resources.is_empty() => {
                    let id = self.first_nonblank(&[quote_ident(column)?], "''");
                    let listed = plan
                        .resources
                        .iter()
                        .map(|r| quote_literal(r))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(format!(
                        "CASE WHEN {id} IN ({}) THEN {id} ELSE '' END",
                        listed.join(", ")
                    ))
                }
                _ => Ok("''".to_string()),
            },
            other => match other.concept() {
                Some(concept) => self.concept(concept),
                None => Err(DomainError::InvalidIdentifier {
                    given: other.to_string(),
                    reason: "not a tag dimension".into(),
                }),
            },
        }
    }

    fn filters(&self, table_is_partitioned: bool) -> Result<Vec<String>, DomainError> {
        let plan = self.plan;
        let mut filters = Vec::new();
        if table_is_partitioned {
            let window = plan.window.ok_or(DomainError::WindowRequired)?;
            let periods = window.billing_periods();
            filters.push(match plan.flavour {
                Flavour::LegacyCur => {
                    let each = periods
                        .iter()
                        .map(|p| {
                            let (year, month) = p.legacy_partition();
                            Ok(format!(
                                "(\"year\" = {} AND \"month\" = {})",
                                quote_literal(&year)?,
                                quote_literal(&month)?
                            ))
                        })
                        .collect::<Result<Vec<_>, DomainError>>()?;
                    format!("({})", each.join(" OR "))
                }
                Flavour::Cur2 | Flavour::Focus => {
                    let labels = periods
                        .iter()
                        .map(|p| quote_literal(&p.label()))
                        .collect::<Result<Vec<_>, _>>()?;
                    format!("\"billing_period\" IN ({})", labels.join(", "))
                }
            });
        }
        if let Some(window) = plan.window {
            let day = quote_ident(&plan.day_column)?;
            filters.push(format!(
                "{day} >= TIMESTAMP '{} 00:00:00' AND {day} < TIMESTAMP '{} 00:00:00'",
                window.from().format("%Y-%m-%d"),
                window.to().format("%Y-%m-%d")
            ));
        }
        if let Some(operation) = &plan.operation_column {
            let excluded = SPLIT_COST_OPERATIONS
                .iter()
                .map(|o| quote_literal(o))
                .collect::<Result<Vec<_>, _>>()?;
            // NULL kept explicitly: `NULL NOT IN (…)` is NULL, which would drop the line item.
            let operation = quote_ident(operation)?;
            filters.push(format!(
                "({operation} IS NULL OR {operation} NOT IN ({}))",
                excluded.join(", ")
            ));
        }
        if !plan.accounts.is_empty() {
            let ids = plan
                .accounts
                .iter()
                .map(|a| quote_literal(a.as_str()))
                .collect::<Result<Vec<_>, _>>()?;
            filters.push(format!(
                "{} IN ({})",
                quote_ident(&plan.account_column)?,
                ids.join(", ")
            ));
        }
        Ok(filters)
    }

    fn table(&self, table: &TableRef) -> Result<String, DomainError> {
        match table {
            TableRef::Glue { database, table } => Ok(format!(
                "{}.{}",
                quote_ident(database)?,
                quote_ident(table)?
            )),
        }
    }

    fn where_clause(&self, table: &TableRef) -> Result<String, DomainError> {
        let partitioned = matches!(table, TableRef::Glue { .. });
        let filters = self.filters(partitioned)?;
        Ok(if filters.is_empty() {
            String::new()
        } else {
            format!("\nWHERE {}", filters.join("\n  AND "))
        })
    }

    fn allocation(&self, table: &TableRef) -> Result<String, DomainError> {
        let plan = self.plan;
        let mut inner = Vec::new();
        for dimension in &plan.group_by {
            inner.push(format!(
                "{} AS {}",
                self.dimension(*dimension)?,
                quote_ident(&dimension.sql_alias())?
            ));
        }
        if !plan.group_by.contains(&Dimension::Namespace) {
            inner.push(format!(
                "{} AS {}",
                self.concept(Concept::Namespace)?,
                quote_ident(Dimension::Namespace.name())?
            ));
        }
        for metric in CostMetric::ALL {
            inner.push(format!(
                "{} AS {}",
                self.metric(&plan.metrics[metric.index()])?,
                quote_ident(metric.sql_alias())?
            ));
        }
        let resource = match &plan.resource_column {
            Some(column) => self.first_nonblank(&[quote_ident(column)?], "CAST(NULL AS VARCHAR)"),
            None => "CAST(NULL AS VARCHAR)".to_string(),
        };
        inner.push(format!("{resource} AS \"resource_id\""));
        if plan.resource_ids {
            // The same 64-bit hash as the local engine's (domain::resources::resource_hash): Trino's
            // `md5` of varbinary, upper-case hex via `to_hex`. Of the expression, not of the alias
            // `resource_id`: a select list cannot refer to its own aliases.
            let hash = format!("substr(lower(to_hex(md5(to_utf8({resource})))), 1, 16)");
            inner.push(format!("{hash} AS \"resource_hash\""));
        }
        // Line items counted as a SUM of ones (the golden SQL's shape; COUNT(*) would count the same).
        inner.push("1 AS \"line_item\"".to_string());
        let mut counted = 0;
        for ((_, _, source), presence) in plan.tag_sources().iter().zip(plan.presence()) {
            if let Presence::Counted(n) = presence {
                let alias = quote_ident(&format!("{TAG_SOURCE_COLUMN_PREFIX}{n}"))?;
                inner.push(format!("{} AS {alias}", self.present(source)?));
                counted += 1;
            }
        }

        let keys = plan
            .group_by
            .iter()
            .map(|d| quote_ident(&d.sql_alias()))
            .collect::<Result<Vec<_>, _>>()?;
        let allocated = format!(
            "CASE WHEN \"namespace\" = {} THEN 0 ELSE 1 END",
            quote_literal(UNALLOCATED)?
        );
        let mut outer: Vec<String> = keys.clone();
        outer.push(format!("{allocated} AS {}", quote_ident(ALLOCATED_COLUMN)?));
        for metric in CostMetric::ALL {
            let alias = quote_ident(metric.sql_alias())?;
            outer.push(format!("SUM({alias}) AS {alias}"));
        }
        if plan.resource_ids {
            // Lines without a resource id hash to NULL: filtered out before aggregating.
            let hashes = "array_join(array_agg(DISTINCT \"resource_hash\") FILTER (WHERE \"resource_hash\" IS NOT NULL), ' ')";
            outer.push(format!(
                "{hashes} AS {}",
                quote_ident(RESOURCE_HASHES_COLUMN)?
            ));
        } else {
            outer.push(format!(
                "COUNT(DISTINCT \"resource_id\") AS {}",
                quote_ident(RESOURCES_COLUMN)?
            ));
        }
        outer.push(format!(
            "SUM(\"line_item\") AS {}",
            quote_ident(LINE_ITEMS_COLUMN)?
        ));
        for i in 0..counted {
            let alias = quote_ident(&format!("{TAG_SOURCE_COLUMN_PREFIX}{i}"))?;
            outer.push(format!("SUM({alias}) AS {alias}"));
        }
        let mut group = keys;
        group.push(allocated);

        Ok(format!(
            "SELECT\n  {}\nFROM (\n  SELECT\n    {}\n  FROM {}{}\n) AS \"line_items\"\nGROUP BY {}",
            outer.join(",\n  "),
            inner.join(",\n    "),
            self.table(table)?,
            self.where_clause(table)?.replace('\n', "\n  "),
            group.join(", ")
        ))
    }
}

/// Renders the allocation query: one row per group with the group keys (named after the dimensions),
/// `allocated`, the four metrics (`list_cost`, `net_cost`, `amortized_cost`, `amortized_net_cost`),
/// `resources` (or `resource_hashes` with [`AllocationPlan::resource_ids`]), `line_items` and one `tag_source_<i>` count per tag source.
///
/// Errors: [`DomainError::WindowRequired`] for Athena without a window (it would scan every partition);
/// [`DomainError::InvalidIdentifier`] / [`DomainError::InvalidLiteral`] for names or values that cannot be
/// quoted safely.
pub fn render_allocation(plan: &AllocationPlan, table: &TableRef) -> Result<String, DomainError> {
    Renderer { plan }.allocation(table)
}

/// A billing period's partition of the CUR table: partition values and the folder under the table's
/// location that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub values: Vec<(String, String)>,
    /// Relative to the table location, with a trailing `/`.
    pub folder: String,
}

/// The partition of `period` for a table partitioned by `keys`: legacy CUR's `year`, `month` (month
/// not zero padded) or CUR 2.0 / FOCUS `billing_period` (folder `BILLING_PERIOD=YYYY-MM`),
/// docs/cur-reference.md#formats. `None` for an unpartitioned table; an error for partition keys
/// kubecur does not know.
pub fn period_partition(
    keys: &[String],
    period: BillingPeriod,
) -> Result<Option<Partition>, DomainError> {
    let lower: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    let names: Vec<&str> = lower.iter().map(String::as_str).collect();
    match names.as_slice() {
        [] => Ok(None),
        ["year", "month"] => {
            let (year, month) = period.legacy_partition();
            Ok(Some(Partition {
                folder: format!("year={year}/month={month}/"),
                values: vec![(keys[0].clone(), year), (keys[1].clone(), month)],
            }))
        }
        ["billing_period"] => Ok(Some(Partition {
            folder: format!("BILLING_PERIOD={}/", period.label()),
            values: vec![(keys[0].clone(), period.label())],
        })),
        _ => Err(DomainError::UnsupportedPartitions(keys.join(", "))),
    }
}

/// Athena DDL adding `partition` at `location` (Hive syntax: backtick-quoted names,
/// docs/cur-reference.md#athena). `ADD IF NOT EXISTS` makes it safe to repeat.
pub fn render_add_partition(
    database: &str,
    table: &str,
    partition: &Partition,
    location: &str,
) -> Result<String, DomainError> {
    let tick = |name: &str| {
        if name.is_empty() || name.contains('`') || name.chars().any(char::is_control) {
            Err(DomainError::InvalidIdentifier {
                given: name.escape_debug().to_string(),
                reason: "DDL names cannot be empty or hold backticks or control characters".into(),
            })
        } else {
            Ok(format!("`{name}`"))
        }
    };
    let values = partition
        .values
        .iter()
        .map(|(k, v)| Ok(format!("{} = {}", tick(k)?, quote_literal(v)?)))
        .collect::<Result<Vec<_>, DomainError>>()?;
    Ok(format!(
        "ALTER TABLE {}.{} ADD IF NOT EXISTS PARTITION ({}) LOCATION {}",
        tick(database)?,
        tick(table)?,
        values.join(", "),
        quote_literal(location)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_each_layout() {
        let period = BillingPeriod {
            year: 2024,
            month: 6,
        };
        let legacy = period_partition(&["year".into(), "month".into()], period)
            .expect("known")
            .expect("partitioned");
        assert_eq!(legacy.folder, "year=2024/month=6/");
        assert_eq!(
            render_add_partition("cur", "my_report", &legacy, "s3://b/cur/r/r/year=2024/month=6/")
                .expect("valid"),
            "ALTER TABLE `cur`.`my_report` ADD IF NOT EXISTS PARTITION (`year` = '2024', `month` = '6') LOCATION 's3://b/cur/r/r/year=2024/month=6/'"
        );
        let cur2 = period_partition(&["billing_period".into()], period)
            .expect("known")
            .expect("partitioned");
        assert_eq!(cur2.folder, "BILLING_PERIOD=2024-06/");
        assert_eq!(period_partition(&[], period), Ok(None));
        assert!(period_partition(&["dt".into()], period).is_err());
        assert!(render_add_partition("cur", "a`b", &cur2, "s3://b/").is_err());
    }

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_ident("2024_cur").expect("valid"), "\"2024_cur\"");
        assert_eq!(quote_ident("a\"b").expect("valid"), "\"a\"\"b\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\nb").is_err());
    }

    #[test]
    fn literals_are_escaped_and_control_characters_refused() {
        assert_eq!(quote_literal("O'Brien").expect("valid"), "'O''Brien'");
        assert_eq!(
            quote_literal("zahlungsverkehr-ü").expect("valid"),
            "'zahlungsverkehr-ü'"
        );
        assert!(quote_literal("a\u{0}b").is_err());
    }
}

//! The CUR 2.0 schema: the legacy columns without the flat tag columns, plus the `resource_tags` map.

use super::legacy::{legacy_columns, legacy_tag_column};
use super::write::{Column, Fill};

pub(super) fn cur2_key(key: &str) -> String {
    let name = legacy_tag_column(key);
    name.strip_prefix("resource_tags_")
        .unwrap_or(&name)
        .to_string()
}

pub(super) fn cur2_columns() -> Vec<Column> {
    let mut columns: Vec<Column> = legacy_columns(false)
        .into_iter()
        .filter(|c| !matches!(c.fill, Fill::Tag(_)))
        .collect();
    for column in &mut columns {
        if column.name == "reservation_reservation_a_r_n" {
            column.name = "reservation_reservation_arn".into();
        }
    }
    columns.push(Column {
        name: "resource_tags".into(),
        fill: Fill::TagMap(cur2_key),
    });
    columns
}

//! The legacy CUR schema: Athena column names for Parquet, `lineItem/…` headers for CSV, and one flat
//! column per tag key (merged where AWS merges keys that normalise alike).

use super::estate::{number_column, SampleLineItem, NUMBER_COLUMNS, PAYER, TAG_KEYS};
use super::write::{Column, Fill};
use crate::domain::columns::aws_column_name;
use std::collections::BTreeMap;

pub(super) fn legacy_columns(csv: bool) -> Vec<Column> {
    let mut columns = vec![
        Column {
            name: "identity/LineItemId".into(),
            fill: Fill::Text(|i, out| {
                out.push_str(&format!("{:x}", i.usage_start.and_utc().timestamp()))
            }),
        },
        Column {
            name: "bill/PayerAccountId".into(),
            fill: Fill::Text(|_, out| out.push_str(PAYER)),
        },
        Column {
            name: "lineItem/UsageAccountId".into(),
            fill: Fill::Text(|i, out| out.push_str(i.account)),
        },
        Column {
            name: "lineItem/LineItemType".into(),
            fill: Fill::Text(|i, out| out.push_str(i.line_item_type)),
        },
        Column {
            name: "lineItem/UsageStartDate".into(),
            fill: Fill::Timestamp(|i| i.usage_start),
        },
        Column {
            name: "lineItem/UsageEndDate".into(),
            fill: Fill::Timestamp(SampleLineItem::usage_end),
        },
        Column {
            name: "lineItem/ProductCode".into(),
            fill: Fill::Text(|i, out| out.push_str(i.product_code)),
        },
        Column {
            name: "lineItem/UsageType".into(),
            fill: Fill::Text(|i, out| out.push_str(i.usage_type)),
        },
        Column {
            name: "lineItem/Operation".into(),
            fill: Fill::Text(|i, out| out.push_str(i.operation)),
        },
        Column {
            name: "lineItem/ResourceId".into(),
            fill: Fill::Text(|i, out| out.push_str(&i.resource_id)),
        },
        Column {
            name: "reservation/ReservationARN".into(),
            fill: Fill::Text(|i, out| out.push_str(&i.reservation_arn)),
        },
    ];
    columns.extend(NUMBER_COLUMNS.iter().map(|h| Column {
        name: h.to_string(),
        fill: Fill::Number(number_column(h)),
    }));
    if csv {
        // CSV keeps one header per key as written; kubecur's reader merges what AWS merges.
        for key in TAG_KEYS {
            columns.push(Column {
                name: legacy_tag_header(key),
                fill: Fill::Tag(vec![key]),
            });
        }
    } else {
        let mut merged: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for key in TAG_KEYS {
            merged.entry(legacy_tag_column(key)).or_default().push(key);
        }
        columns.extend(merged.into_iter().map(|(name, keys)| Column {
            name,
            fill: Fill::Tag(keys),
        }));
    }
    if !csv {
        for column in &mut columns {
            column.name = aws_column_name(&column.name);
        }
    }
    columns
}

fn legacy_tag_header(key: &str) -> String {
    if key.starts_with("aws:") {
        format!("resourceTags/{key}")
    } else {
        format!("resourceTags/user:{key}")
    }
}

pub(super) fn legacy_tag_column(key: &str) -> String {
    aws_column_name(&legacy_tag_header(key))
}

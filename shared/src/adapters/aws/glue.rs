//! Glue: the CUR table's columns, partition keys and location.

use super::AwsError;
use aws_sdk_glue::Client;

/// What kubecur needs from the catalog's table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Data columns then partition keys, as Glue names them (lower case).
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    /// `s3://…/` under which the partition folders live.
    pub location: Option<String>,
}

/// Reads `database.table` (`GetTable`).
pub async fn table_info(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<TableInfo, AwsError> {
    let context = format!("reading Glue table {database}.{table}");
    let out = client
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .map_err(AwsError::from_sdk(context.clone()))?;
    let table = out
        .table()
        .ok_or_else(|| AwsError::new(context.clone(), "no table returned"))?;
    let descriptor = table.storage_descriptor();
    let partition_keys: Vec<String> = table
        .partition_keys()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut columns: Vec<String> = descriptor
        .map(|d| d.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    columns.extend(partition_keys.iter().cloned());
    Ok(TableInfo {
        columns,
        partition_keys,
        location: descriptor.and_then(|d| d.location()).map(str::to_string),
    })
}

//! Glue: the CUR table's columns, partition keys and location.

use super::AwsError;
use aws_sdk_glue::Client;

pub use crate::ports::pipeline::TableInfo;

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

/// The Glue catalog behind the [`Catalog`](crate::ports::pipeline::Catalog) port.
#[derive(Debug, Clone)]
pub struct GlueCatalog(pub Client);

impl crate::ports::pipeline::Catalog for GlueCatalog {
    async fn table(
        &self,
        database: &str,
        table: &str,
    ) -> Result<TableInfo, crate::ports::pipeline::ExternalError> {
        Ok(table_info(&self.0, database, table).await?)
    }
}

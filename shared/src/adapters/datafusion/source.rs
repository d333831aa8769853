//! Reading the schemas of CUR data files as DataFusion tables. Finding the files is shared with the
//! native engine: [`crate::adapters::files`], re-exported here.

pub use crate::adapters::files::*;
use crate::ports::EngineError;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::execution::context::SessionState;
use object_store::ObjectStore;
use std::sync::Arc;

/// A file's schema as read, with each field's canonical name.
#[derive(Debug, Clone)]
pub struct FileSchema {
    /// As the reader must be given it (CSV: every column text, canonical names; Parquet: as stored).
    pub schema: SchemaRef,
    /// `(canonical name, field name in `schema`)`, one per field.
    pub canonical: Vec<(String, String)>,
    /// Line items in the file, when its metadata says (Parquet).
    pub rows: Option<u64>,
}

/// Reads one file's schema: the Parquet footer, or the CSV header line.
pub async fn read_schema(
    file: &DataFile,
    store: &Arc<dyn ObjectStore>,
    state: &SessionState,
) -> Result<FileSchema, EngineError> {
    let unreadable =
        |reason: String| EngineError::Input(format!("cannot read `{}`: {reason}", file.url));
    match file.kind {
        FileKind::Parquet => {
            let format = ParquetFormat::default().with_force_view_types(false);
            let schema = format
                .infer_schema(state, store, std::slice::from_ref(&file.meta))
                .await
                .map_err(|e| unreadable(format!("not a readable Parquet file ({e})")))?;
            let rows = format
                .infer_stats(state, store, schema.clone(), &file.meta)
                .await
                .ok()
                .and_then(|stats| stats.num_rows.get_value().map(|rows| *rows as u64));
            let raw: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let canonical = canonical_names(&raw).into_iter().zip(raw).collect();
            Ok(FileSchema {
                schema,
                canonical,
                rows,
            })
        }
        FileKind::Csv { .. } => {
            let raw = read_csv_header(file, store).await?;
            if raw.iter().all(String::is_empty) {
                return Err(unreadable("the file is empty or has no header line".into()));
            }
            let names = canonical_names(&raw);
            let schema = Arc::new(Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(n, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ));
            Ok(FileSchema {
                schema,
                canonical: names.iter().map(|n| (n.clone(), n.clone())).collect(),
                rows: None,
            })
        }
    }
}

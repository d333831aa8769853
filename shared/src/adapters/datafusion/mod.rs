//! `DataFusionQueryEngine`: the embedded engine over CUR files on disk or in S3.
//!
//! Files are grouped by encoding and schema, each group registered as a listing table, and a view
//! `cur` puts them under kubecur's canonical column names with the types the plan asks for (CSV cells are
//! text; costs become DOUBLE, dates TIMESTAMP). The rendered allocation SQL then reads only `cur`.

mod functions;
pub mod source;

use crate::domain::columns::ColumnSet;
use crate::domain::flavour::Flavour;
use crate::domain::plan::ColumnKind;
use crate::domain::sql::quote_ident;
use crate::domain::{Dialect, TableRef, UsageWindow};
use crate::ports::{Cell, EngineError, Progress, QueryEngine, ResultTable};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use source::{CurLocation, DataFile, FileKind, FileSchema};
use std::sync::Arc;

pub use source::Discovery;

/// How often a running query reports the rows its scans have read.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(150);

/// The leaves of a physical plan: the file scans.
fn scans_of(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<dyn ExecutionPlan>> {
    let children = plan.children();
    if children.is_empty() {
        return vec![plan.clone()];
    }
    children.into_iter().flat_map(scans_of).collect()
}

/// The name of the canonical view the rendered SQL reads.
pub const VIEW: &str = "cur";

/// Files that share an encoding and a schema, registered as one table.
struct SourceGroup {
    table: String,
    kind: FileKind,
    files: Vec<String>,
    schema: SchemaRef,
    /// (canonical name, field name in `schema`).
    canonical: Vec<(String, String)>,
}

/// The embedded engine. Construct with [`DataFusionQueryEngine::open`].
pub struct DataFusionQueryEngine {
    ctx: SessionContext,
    location: CurLocation,
    groups: Vec<SourceGroup>,
    columns: ColumnSet,
    flavour: Flavour,
    discovery: Discovery,
    progress: Arc<dyn Progress>,
    /// Line items in all files, when every file's footer says (Parquet); for the progress bar.
    total_rows: Option<u64>,
}

fn execution(
    context: impl Into<String>,
) -> impl FnOnce(datafusion::error::DataFusionError) -> EngineError {
    let context = context.into();
    move |source| EngineError::Execution {
        context,
        source: Box::new(source),
    }
}

impl DataFusionQueryEngine {
    /// Opens the CUR at `location` (`s3://bucket/prefix` or a local path): lists its data files, reads
    /// every schema, checks that they hold one flavour, and registers them.
    ///
    /// S3 credentials come from the environment (`AWS_ACCESS_KEY_ID`…, `AWS_PROFILE` is not read; web
    /// identity and instance metadata are), and `AWS_ENDPOINT_URL` points at an emulator.
    ///
    /// With a `window`, files whose path names another billing period (`year=2024/month=5`,
    /// `BILLING_PERIOD=2024-05`) are not read at all.
    ///
    /// Errors ([`EngineError::Input`] unless noted): the path does not exist, holds no data file, a file
    /// cannot be read (named), files of different flavours are mixed (named), a file is not a CUR.
    pub async fn open(
        location: &str,
        window: Option<UsageWindow>,
        progress: Arc<dyn Progress>,
    ) -> Result<DataFusionQueryEngine, EngineError> {
        let location = CurLocation::parse(location)?;
        let ctx = SessionContext::new_with_config(session_config());
        for function in functions::all() {
            ctx.register_udf(function);
        }

        let store: Arc<dyn ObjectStore> = source::open_store(&location)?;
        ctx.register_object_store(&location.store_url()?, store.clone());

        progress.phase(&format!("listing {}", location.display()));
        let discovery = source::discover(&location, &store, window.as_ref()).await?;
        if !discovery.skipped_unknown.is_empty() {
            tracing::warn!(count = discovery.skipped_unknown.len(), first = %discovery.skipped_unknown[0], "Skipped files that are not CUR data.");
        }
        progress.phase(&format!(
            "reading the schemas of {} files",
            discovery.files.len()
        ));
        let state = ctx.state();
        let mut schemas: Vec<(DataFile, FileSchema)> = Vec::with_capacity(discovery.files.len());
        for file in &discovery.files {
            let schema = source::read_schema(file, &store, &state).await?;
            schemas.push((file.clone(), schema));
        }
        let total_rows = schemas.iter().map(|(_, schema)| schema.rows).sum();
        let groups = group_files(&location, schemas)?;
        let (columns, flavour) = check_one_flavour(&location, &groups)?;
        for group in &groups {
            register_group(&ctx, group).await?;
        }
        Ok(DataFusionQueryEngine {
            ctx,
            location,
            groups,
            columns,
            flavour,
            discovery,
            progress,
            total_rows,
        })
    }

    /// The flavour every file holds.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// What discovery found (files, bytes, skipped objects).
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Where the files are.
    pub fn location(&self) -> String {
        self.location.display()
    }

    async fn physical_plan(&self, sql: &str) -> Result<Arc<dyn ExecutionPlan>, EngineError> {
        let frame = self
            .ctx
            .sql(sql)
            .await
            .map_err(execution("planning the query"))?;
        frame
            .create_physical_plan()
            .await
            .map_err(execution("planning the query"))
    }

    /// The physical plan of `sql`, for tests that guard the plan's shape.
    pub async fn explain(&self, sql: &str) -> Result<String, EngineError> {
        let plan = self.physical_plan(sql).await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        Ok(text)
    }
}

/// Where a bad cell is in one file: its row (0-based over the file's data rows) and, for Parquet, the
/// row group holding it.
struct CellPlace {
    row: u64,
    row_group: Option<usize>,
}

impl DataFusionQueryEngine {
    /// Turns an implausible cost seen by the query into an input error naming the file, the row (CSV) or
    /// row group (Parquet) and the column. Runs only after a query failed: it rescans the column file by
    /// file, in order, with the same typing as the `cur` view.
    async fn locate_implausible(&self, bad: &functions::ImplausibleCost) -> EngineError {
        let rule = format!(
            "the cost {} is not a finite amount within ±{:e}; kubecur adds up no such figure (fix or remove the line item)",
            bad.value,
            crate::domain::expr::MAX_COST_MAGNITUDE
        );
        for group in &self.groups {
            let Some((_, raw)) = group
                .canonical
                .iter()
                .find(|(canonical, _)| canonical.eq_ignore_ascii_case(&bad.column))
            else {
                continue;
            };
            for url in &group.files {
                match self.find_implausible(group, url, raw).await {
                    Ok(Some((place, value))) => {
                        let file = source::short_name(&self.location, url);
                        let at = match place.row_group {
                            Some(row_group) => {
                                format!("row group {row_group} (row {} of the file)", place.row + 1)
                            }
                            None => format!("data row {}", place.row + 1),
                        };
                        return EngineError::Input(format!(
                            "`{file}` {at}, column `{raw}`: the cost {value} is not a finite amount within ±{:e}; kubecur adds up no such figure (fix or remove the line item)",
                            crate::domain::expr::MAX_COST_MAGNITUDE
                        ));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(file = %url, error = %error, "Could not rescan a file for an implausible cost.")
                    }
                }
            }
        }
        EngineError::Input(format!(
            "{}: column `{}`: {rule} (the file holding it could not be found again)",
            self.location.display(),
            bad.column
        ))
    }

    /// The first cell of `raw` in the file at `url` that is not a plausible cost, read exactly as the
    /// `cur` view reads it, in file order (one partition).
    async fn find_implausible(
        &self,
        group: &SourceGroup,
        url: &str,
        raw: &str,
    ) -> Result<Option<(CellPlace, f64)>, EngineError> {
        let field = group
            .schema
            .field_with_name(raw)
            .map_err(|e| EngineError::Execution {
                context: format!("reading column `{raw}`"),
                source: Box::new(e),
            })?;
        let expr = typed(raw, field.data_type(), ColumnKind::Number)?;
        let mut config = session_config().with_target_partitions(1);
        config.options_mut().optimizer.repartition_file_scans = false;
        let ctx = SessionContext::new_with_config_rt(config, self.ctx.runtime_env());
        let single = SourceGroup {
            table: "single_file".into(),
            kind: group.kind,
            files: vec![url.to_string()],
            schema: group.schema.clone(),
            canonical: Vec::new(),
        };
        register_group(&ctx, &single).await?;
        let frame = ctx
            .sql(&format!("SELECT {expr} AS \"value\" FROM \"single_file\""))
            .await
            .map_err(execution("rescanning a cost column"))?;
        let mut stream = frame
            .execute_stream()
            .await
            .map_err(execution("rescanning a cost column"))?;
        let mut offset = 0u64;
        let mut found = None;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            let batch = batch.map_err(execution("rescanning a cost column"))?;
            let column = datafusion::arrow::compute::cast(batch.column(0), &DataType::Float64)
                .map_err(|e| EngineError::Execution {
                    context: "rescanning a cost column".into(),
                    source: Box::new(e),
                })?;
            if let Some((row, value)) =
                functions::first_implausible(column.as_primitive::<Float64Type>())
            {
                found = Some((offset + row as u64, value));
                break;
            }
            offset += batch.num_rows() as u64;
        }
        let Some((row, value)) = found else {
            return Ok(None);
        };
        let row_group = match group.kind {
            FileKind::Parquet => self.row_group_of(url, row).await,
            FileKind::Csv { .. } => None,
        };
        Ok(Some((CellPlace { row, row_group }, value)))
    }

    /// The Parquet row group holding `row` of the file at `url`, from its footer.
    // parquet 59 deprecates ParquetObjectReader in favour of a hand-written AsyncFileReader
    // (https://github.com/apache/arrow-rs/issues/10308); this one footer read on an error path does
    // not warrant one.
    #[allow(deprecated)]
    async fn row_group_of(&self, url: &str, row: u64) -> Option<usize> {
        use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
        use datafusion::parquet::arrow::async_reader::ParquetObjectReader;
        let file = self.discovery.files.iter().find(|f| f.url == url)?;
        let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(
            self.location.store_url().ok()?.as_str(),
        )
        .ok()?;
        let store = self.ctx.runtime_env().object_store(&store_url).ok()?;
        let mut reader = ParquetObjectReader::new(store, file.meta.location.clone())
            .with_file_size(file.meta.size);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, Default::default())
            .await
            .ok()?;
        let mut end = 0u64;
        for (index, row_group) in metadata.metadata().row_groups().iter().enumerate() {
            end += u64::try_from(row_group.num_rows()).unwrap_or(0);
            if row < end {
                return Some(index);
            }
        }
        None
    }
}

/// Groups files by encoding and schema. Parquet files are one group when their schemas merge
/// (legacy CUR's schema changes month to month; missing columns read as NULL).
fn group_files(
    location: &CurLocation,
    schemas: Vec<(DataFile, FileSchema)>,
) -> Result<Vec<SourceGroup>, EngineError> {
    let mut groups: Vec<SourceGroup> = Vec::new();
    for (file, schema) in schemas {
        let existing = groups.iter_mut().find(|g| {
            g.kind == file.kind
                && (g.schema == schema.schema
                    || (file.kind == FileKind::Parquet
                        && Schema::try_merge([
                            g.schema.as_ref().clone(),
                            schema.schema.as_ref().clone(),
                        ])
                        .is_ok()))
        });
        match existing {
            Some(group) => {
                if group.schema != schema.schema {
                    let merged = Schema::try_merge([
                        group.schema.as_ref().clone(),
                        schema.schema.as_ref().clone(),
                    ])
                    .map_err(|e| {
                        EngineError::Input(format!(
                            "cannot merge the schema of `{}`: {e}",
                            source::short_name(location, &file.url)
                        ))
                    })?;
                    group.schema = Arc::new(merged);
                    for (canonical, raw) in schema.canonical {
                        if !group.canonical.iter().any(|(_, r)| *r == raw) {
                            group.canonical.push((canonical, raw));
                        }
                    }
                }
                group.files.push(file.url);
            }
            None => groups.push(SourceGroup {
                table: format!("source_{}", groups.len()),
                kind: file.kind,
                files: vec![file.url],
                schema: schema.schema,
                canonical: schema.canonical,
            }),
        }
    }
    Ok(groups)
}

fn check_one_flavour(
    location: &CurLocation,
    groups: &[SourceGroup],
) -> Result<(ColumnSet, Flavour), EngineError> {
    let mut flavours: Vec<(Flavour, &SourceGroup)> = Vec::new();
    for group in groups {
        let columns = ColumnSet::new(group.canonical.iter().map(|(c, _)| c.clone()));
        let flavour = Flavour::detect(&columns).map_err(|e| {
            EngineError::Input(format!(
                "`{}` {e}",
                source::short_name(location, &group.files[0])
            ))
        })?;
        flavours.push((flavour, group));
    }
    let first = flavours[0].0;
    if let Some((other, group)) = flavours.iter().find(|(f, _)| *f != first) {
        return Err(EngineError::Input(format!(
            "`{}` mixes CUR flavours: `{}` is {first} but `{}` is {other}; point --cur at one export",
            location.display(),
            source::short_name(location, &flavours[0].1.files[0]),
            source::short_name(location, &group.files[0]),
        )));
    }
    let mut names: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for group in groups {
        for (canonical, _) in &group.canonical {
            if seen.insert(canonical.as_str()) {
                names.push(canonical.clone());
            }
        }
    }
    Ok((ColumnSet::new(names), first))
}

async fn register_group(ctx: &SessionContext, group: &SourceGroup) -> Result<(), EngineError> {
    let format: Arc<dyn datafusion::datasource::file_format::FileFormat> = match group.kind {
        FileKind::Parquet => Arc::new(ParquetFormat::default().with_force_view_types(false)),
        FileKind::Csv { gzip } => Arc::new(
            CsvFormat::default()
                .with_has_header(true)
                .with_newlines_in_values(true)
                .with_file_compression_type(if gzip {
                    FileCompressionType::GZIP
                } else {
                    FileCompressionType::UNCOMPRESSED
                }),
        ),
    };
    let urls = group
        .files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(execution("naming the data files"))?;
    // Parquet footers carry exact row counts: collected, they give the progress bar its total.
    let options = ListingOptions::new(format).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(group.schema.clone());
    let table = ListingTable::try_new(config).map_err(execution("registering the data files"))?;
    ctx.register_table(group.table.as_str(), Arc::new(table))
        .map_err(execution("registering the data files"))?;
    Ok(())
}

/// The SQL that reads `raw` (of `data_type`) as `kind`.
/// The engine's session settings, for the allocation and for the rescan that locates a bad cell.
fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new();
    let options = config.options_mut();
    // Plain Utf8 strings: view types make literals and columns disagree, which defeats the grouped
    // COUNT(DISTINCT) rewrite (docs/local-engine.md#grouped-distinct-count) and makes CSV and Parquet
    // groups unionable.
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    // No file statistics: DataFusion 55 replaces a column whose file-level min equals its max (and has
    // no nulls) by that constant (`constant_columns_from_stats` in datafusion-datasource-parquet's
    // opener). Parquet leaves NaN out of min/max (parquet-format's parquet.thrift, ColumnOrder: "NaNs
    // should not be written to min or max statistics fields";
    // arrow-rs writes them so), so a cost column of 1.0s with one NaN read as all 1.0s and the NaN
    // was summed away unseen. Without statistics every cell reaches `kubecur_cost`, which refuses it.
    // Row groups are still pruned by their own footer metadata when a window filters.
    options.execution.collect_statistics = false;
    config
}

fn typed(raw: &str, data_type: &DataType, kind: ColumnKind) -> Result<String, EngineError> {
    let column = quote_ident(raw)?;
    let is_text = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    Ok(match kind {
        ColumnKind::Number if data_type == &DataType::Float64 => column,
        ColumnKind::Number if is_text => format!("CAST(NULLIF(TRIM({column}), '') AS DOUBLE)"),
        ColumnKind::Number => format!("CAST({column} AS DOUBLE)"),
        ColumnKind::Timestamp if is_text => {
            format!("CAST(NULLIF(TRIM({column}), '') AS TIMESTAMP)")
        }
        ColumnKind::Timestamp => format!("CAST({column} AS TIMESTAMP)"),
        ColumnKind::Text if data_type == &DataType::Utf8 => column,
        ColumnKind::Text => format!("CAST({column} AS VARCHAR)"),
        ColumnKind::TagMap => column,
    })
}

fn null_of(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Number => "CAST(NULL AS DOUBLE)",
        ColumnKind::Timestamp => "CAST(NULL AS TIMESTAMP)",
        ColumnKind::Text | ColumnKind::TagMap => "CAST(NULL AS VARCHAR)",
    }
}

fn to_result_table(batches: &[RecordBatch]) -> Result<ResultTable, EngineError> {
    let mut table = ResultTable::default();
    let Some(first) = batches.first() else {
        return Ok(table);
    };
    table.columns = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let options = FormatOptions::default();
    for batch in batches {
        let columns = batch.columns();
        let mut rows: Vec<Vec<Cell>> = (0..batch.num_rows())
            .map(|_| Vec::with_capacity(columns.len()))
            .collect();
        for array in columns {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| {
                EngineError::Execution {
                    context: "reading the query result".into(),
                    source: Box::new(e),
                }
            })?;
            for (i, row) in rows.iter_mut().enumerate() {
                let cell = if array.is_null(i) {
                    Cell::Null
                } else {
                    match array.data_type() {
                        DataType::Float64 => {
                            Cell::Number(array.as_primitive::<Float64Type>().value(i))
                        }
                        DataType::Int64 => {
                            Cell::Integer(array.as_primitive::<Int64Type>().value(i))
                        }
                        DataType::UInt64 => {
                            Cell::Integer(array.as_primitive::<UInt64Type>().value(i) as i64)
                        }
                        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(i).to_string()),
                        _ => Cell::Text(formatter.value(i).to_string()),
                    }
                };
                row.push(cell);
            }
        }
        table.rows.extend(rows);
    }
    Ok(table)
}

impl QueryEngine for DataFusionQueryEngine {
    fn columns(&self) -> &ColumnSet {
        &self.columns
    }

    fn dialect(&self) -> Dialect {
        Dialect::DataFusion
    }

    fn table(&self) -> TableRef {
        TableRef::Local(VIEW.to_string())
    }

    async fn prepare(&mut self, columns: &[(String, ColumnKind)]) -> Result<(), EngineError> {
        let mut selects = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let mut items = Vec::with_capacity(columns.len());
            for (name, kind) in columns {
                let found = group
                    .canonical
                    .iter()
                    .find(|(canonical, _)| canonical.eq_ignore_ascii_case(name));
                let expr = match found {
                    Some((_, raw)) => {
                        let field = group.schema.field_with_name(raw).map_err(|e| {
                            EngineError::Execution {
                                context: format!("reading column `{raw}`"),
                                source: Box::new(e),
                            }
                        })?;
                        typed(raw, field.data_type(), *kind)?
                    }
                    None => null_of(*kind).to_string(),
                };
                items.push(format!("{expr} AS {}", quote_ident(name)?));
            }
            selects.push(format!(
                "SELECT {} FROM {}",
                items.join(", "),
                quote_ident(&group.table)?
            ));
        }
        let sql = format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            quote_ident(VIEW)?,
            selects.join(" UNION ALL ")
        );
        self.ctx
            .sql(&sql)
            .await
            .map_err(execution("building the canonical view over the CUR files"))?;
        Ok(())
    }

    async fn query(&self, sql: &str) -> Result<ResultTable, EngineError> {
        let plan = self.physical_plan(sql).await?;
        let scans = scans_of(&plan);
        // Parquet footers give exact row counts; CSV has none (the bar then only counts).
        self.progress.set_total_rows(self.total_rows);
        let running = datafusion::physical_plan::collect(plan, self.ctx.task_ctx());
        tokio::pin!(running);
        let batches = loop {
            tokio::select! {
                done = &mut running => break done,
                () = tokio::time::sleep(PROGRESS_EVERY) => {
                    let rows: usize = scans.iter().filter_map(|s| s.metrics()?.output_rows()).sum();
                    self.progress.rows_read(rows as u64);
                }
            }
        };
        let batches = match batches {
            Ok(batches) => batches,
            Err(error) => {
                if let Some(bad) = functions::implausible_cost(&error) {
                    return Err(self.locate_implausible(&bad).await);
                }
                return Err(execution(format!("scanning {}", self.location.display()))(
                    error,
                ));
            }
        };
        to_result_table(&batches)
    }
}

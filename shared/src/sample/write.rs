//! Writing the outputs: Arrow batches from line items, Parquet and (gzip) CSV files in the Athena / Data
//! Exports layout, and the delivery markers a real export has beside its data.

use super::cur2::cur2_columns;
use super::estate::{generate_item, resource_pool, Rng, SampleLineItem};
use super::focus::{focus_columns, legacy_pricing};
use super::legacy::legacy_columns;
use super::{SampleError, SampleOutput, SampleReport, SampleSpec};
use crate::domain::expr::Expr;
use arrow_array::builder::{
    Float64Builder, MapBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::ArrayRef;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDateTime;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A column of the output table, with how to fill it from a line item.
pub(super) struct Column {
    pub(super) name: String,
    pub(super) fill: Fill,
}

pub(super) enum Fill {
    Text(fn(&SampleLineItem, &mut String)),
    Number(&'static str),
    /// One of the pricing metrics (FOCUS).
    Metric(usize),
    Timestamp(fn(&SampleLineItem) -> NaiveDateTime),
    /// A flat legacy tag column: the first non-empty value of these keys (AWS merged them).
    Tag(Vec<&'static str>),
    /// All tags as a map; keys transformed by the function.
    TagMap(fn(&str) -> String),
}

fn map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn schema_of(columns: &[Column], tags_as_json: bool) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| {
                let data_type = match c.fill {
                    Fill::Text(_) | Fill::Tag(_) => DataType::Utf8,
                    Fill::Number(_) | Fill::Metric(_) => DataType::Float64,
                    Fill::Timestamp(_) => DataType::Timestamp(TimeUnit::Millisecond, None),
                    Fill::TagMap(_) if tags_as_json => DataType::Utf8,
                    Fill::TagMap(_) => map_type(),
                };
                Field::new(&c.name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

fn tags_map(item: &SampleLineItem, key_of: fn(&str) -> String) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (key, value) in &item.tags {
        // AWS merges keys that normalise alike; the first value wins, as in the flat columns.
        map.entry(key_of(key)).or_insert_with(|| value.clone());
    }
    map
}

fn build_batch(
    columns: &[Column],
    schema: &SchemaRef,
    items: &[SampleLineItem],
    pricing: &[Expr; 4],
    tags_as_json: bool,
) -> Result<RecordBatch, Box<dyn std::error::Error + Send + Sync>> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let mut scratch = String::new();
    for column in columns {
        let array: ArrayRef = match &column.fill {
            Fill::Text(fill) => {
                let mut b = StringBuilder::with_capacity(items.len(), items.len() * 16);
                for item in items {
                    scratch.clear();
                    fill(item, &mut scratch);
                    b.append_value(&scratch);
                }
                Arc::new(b.finish())
            }
            Fill::Number(name) => {
                let mut b = Float64Builder::with_capacity(items.len());
                for item in items {
                    b.append_option(item.numbers.get(name).copied());
                }
                Arc::new(b.finish())
            }
            Fill::Metric(index) => {
                let mut b = Float64Builder::with_capacity(items.len());
                for item in items {
                    // FOCUS has no split-cost rows to exclude by type: they are priced like any usage.
                    b.append_value(pricing[*index].eval(item));
                }
                Arc::new(b.finish())
            }
            Fill::Timestamp(fill) => {
                let mut b = TimestampMillisecondBuilder::with_capacity(items.len());
                for item in items {
                    b.append_value(fill(item).and_utc().timestamp_millis());
                }
                Arc::new(b.finish())
            }
            Fill::Tag(keys) => {
                let mut b = StringBuilder::with_capacity(items.len(), items.len() * 8);
                for item in items {
                    let value = keys.iter().find_map(|k| {
                        item.tags
                            .iter()
                            .find(|(tk, _)| tk == k)
                            .map(|(_, v)| v.as_str())
                    });
                    b.append_option(value);
                }
                Arc::new(b.finish())
            }
            Fill::TagMap(key_of) if tags_as_json => {
                let mut b = StringBuilder::with_capacity(items.len(), items.len() * 64);
                for item in items {
                    b.append_value(serde_json::to_string(&tags_map(item, *key_of))?);
                }
                Arc::new(b.finish())
            }
            Fill::TagMap(key_of) => {
                let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
                for item in items {
                    for (k, v) in tags_map(item, *key_of) {
                        b.keys().append_value(k);
                        b.values().append_value(v);
                    }
                    b.append(true)?;
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// Where each output's files go, Athena / Data Exports layout, below `out/<dir_name>/`.
fn file_path(out: &Path, output: SampleOutput, period: (i32, u32), part: u64) -> PathBuf {
    let base = out.join(output.dir_name());
    let (year, month) = period;
    match output {
        SampleOutput::LegacyParquet => base.join(format!("kubecur-sample/kubecur-sample/year={year}/month={month}/kubecur-sample-{part:05}.snappy.parquet")),
        SampleOutput::LegacyCsvGz => base.join(format!("kubecur-sample/{year}{month:02}01-{year}{:02}01/kubecur-sample-{part:05}.csv.gz", month % 12 + 1)),
        SampleOutput::Cur2Parquet => base.join(format!("kubecur-cur2/data/BILLING_PERIOD={year}-{month:02}/kubecur-cur2-{part:05}.snappy.parquet")),
        SampleOutput::Cur2CsvGz => base.join(format!("kubecur-cur2/data/BILLING_PERIOD={year}-{month:02}/kubecur-cur2-{part:05}.csv.gz")),
        SampleOutput::FocusParquet => base.join(format!("kubecur-focus/data/BILLING_PERIOD={year}-{month:02}/kubecur-focus-{part:05}.snappy.parquet")),
        SampleOutput::FocusCsv => base.join(format!("kubecur-focus/data/BILLING_PERIOD={year}-{month:02}/kubecur-focus-{part:05}.csv")),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SampleError + '_ {
    move |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn encode_err(
    path: &Path,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> SampleError + '_ {
    move |source| SampleError::Encode {
        path: path.to_path_buf(),
        source,
    }
}

enum Sink {
    Parquet(ArrowWriter<File>),
    Csv(arrow_csv::Writer<Box<dyn Write + Send>>),
}

struct OpenFile {
    path: PathBuf,
    sink: Sink,
    rows: u64,
}

fn open(path: &Path, output: SampleOutput, schema: &SchemaRef) -> Result<OpenFile, SampleError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let file = File::create(path).map_err(io_err(path))?;
    let sink = match output {
        SampleOutput::LegacyParquet | SampleOutput::Cur2Parquet | SampleOutput::FocusParquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(131_072))
                .build();
            Sink::Parquet(
                ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .map_err(|e| encode_err(path)(Box::new(e)))?,
            )
        }
        SampleOutput::LegacyCsvGz | SampleOutput::Cur2CsvGz => {
            let gz: Box<dyn Write + Send> = Box::new(flate2::write::GzEncoder::new(
                BufWriter::new(file),
                flate2::Compression::fast(),
            ));
            Sink::Csv(
                arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%SZ".into())
                    .build(gz),
            )
        }
        SampleOutput::FocusCsv => {
            let plain: Box<dyn Write + Send> = Box::new(BufWriter::new(file));
            Sink::Csv(
                arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%SZ".into())
                    .build(plain),
            )
        }
    };
    Ok(OpenFile {
        path: path.to_path_buf(),
        sink,
        rows: 0,
    })
}

fn close(file: OpenFile) -> Result<PathBuf, SampleError> {
    match file.sink {
        Sink::Parquet(writer) => {
            writer
                .close()
                .map_err(|e| encode_err(&file.path)(Box::new(e)))?;
        }
        Sink::Csv(writer) => {
            let mut inner = writer.into_inner();
            inner.flush().map_err(io_err(&file.path))?;
            drop(inner); // finishes the gzip stream
        }
    }
    Ok(file.path)
}

struct OutputState {
    output: SampleOutput,
    columns: Vec<Column>,
    schema: SchemaRef,
    tags_as_json: bool,
    open: Option<(OpenFile, (i32, u32))>,
    parts: u64,
}

/// Writes the sample below `out`, calling `on_rows(done)` after each batch. Deterministic for a seed.
pub fn write_sample(
    out: &Path,
    spec: &SampleSpec,
    mut on_rows: impl FnMut(u64),
) -> Result<SampleReport, SampleError> {
    let mut rng = Rng(spec.seed);
    let pool = resource_pool(&mut rng, spec.pods);
    let pricing = legacy_pricing();
    let mut states: Vec<OutputState> = spec
        .outputs
        .iter()
        .map(|&output| {
            let (columns, tags_as_json) = match output {
                SampleOutput::LegacyParquet => (legacy_columns(false), false),
                SampleOutput::LegacyCsvGz => (legacy_columns(true), true),
                SampleOutput::Cur2Parquet => (cur2_columns(), false),
                SampleOutput::Cur2CsvGz => (cur2_columns(), true),
                SampleOutput::FocusParquet => (focus_columns(), false),
                SampleOutput::FocusCsv => (focus_columns(), true),
            };
            let schema = schema_of(&columns, tags_as_json);
            OutputState {
                output,
                columns,
                schema,
                tags_as_json,
                open: None,
                parts: 0,
            }
        })
        .collect();
    let mut files = Vec::new();
    const BATCH: u64 = 65_536;
    let mut done = 0u64;
    while done < spec.rows {
        let n = BATCH.min(spec.rows - done);
        let items: Vec<SampleLineItem> = (done..done + n)
            .map(|row| generate_item(&mut rng, &pool, row, spec.rows, spec.days))
            .collect();
        // A batch may straddle a month boundary: split it by billing period.
        let mut start = 0;
        while start < items.len() {
            let period = (
                items[start]
                    .usage_start
                    .date()
                    .format("%Y")
                    .to_string()
                    .parse()
                    .unwrap_or(2024),
                chrono::Datelike::month(&items[start].usage_start.date()),
            );
            let end = items[start..]
                .iter()
                .position(|i| chrono::Datelike::month(&i.usage_start.date()) != period.1)
                .map_or(items.len(), |p| start + p);
            let slice = &items[start..end];
            for state in &mut states {
                let needs_new = match &state.open {
                    Some((file, open_period)) => {
                        *open_period != period || file.rows >= spec.rows_per_file
                    }
                    None => true,
                };
                if needs_new {
                    if let Some((file, _)) = state.open.take() {
                        files.push(close(file)?);
                    }
                    state.parts += 1;
                    let path = file_path(out, state.output, period, state.parts);
                    state.open = Some((open(&path, state.output, &state.schema)?, period));
                }
                let batch = build_batch(
                    &state.columns,
                    &state.schema,
                    slice,
                    &pricing,
                    state.tags_as_json,
                )
                .map_err(encode_err(out))?;
                if let Some((file, _)) = state.open.as_mut() {
                    match &mut file.sink {
                        Sink::Parquet(w) => w
                            .write(&batch)
                            .map_err(|e| encode_err(&file.path)(Box::new(e)))?,
                        Sink::Csv(w) => w
                            .write(&batch)
                            .map_err(|e| encode_err(&file.path)(Box::new(e)))?,
                    }
                    file.rows += slice.len() as u64;
                }
            }
            start = end;
        }
        done += n;
        on_rows(done);
    }
    for state in &mut states {
        if let Some((file, _)) = state.open.take() {
            files.push(close(file)?);
        }
    }
    write_delivery_markers(out, &spec.outputs, &mut files)?;
    let bytes = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    Ok(SampleReport {
        rows: spec.rows,
        files,
        bytes,
    })
}

/// The non-data objects a real delivery has beside the data, which readers must skip: legacy CUR's
/// status object and crawler template, CUR 2.0 / FOCUS manifests, AWS's access test object.
fn write_delivery_markers(
    out: &Path,
    outputs: &[SampleOutput],
    files: &mut Vec<PathBuf>,
) -> Result<(), SampleError> {
    let write = |path: PathBuf, text: &str| -> Result<PathBuf, SampleError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::write(&path, text).map_err(io_err(&path))?;
        Ok(path)
    };
    for output in outputs {
        let base = out.join(output.dir_name());
        match output {
            SampleOutput::LegacyParquet => {
                files.push(write(
                    base.join("kubecur-sample/crawler-cfn.yml"),
                    "# AWS's crawler template would be here.\n",
                )?);
                let status = base.join("kubecur-sample/kubecur-sample/cost_and_usage_data_status/cost_and_usage_data_status.parquet");
                if let Some(parent) = status.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let schema = Arc::new(Schema::new(vec![Field::new(
                    "status",
                    DataType::Utf8,
                    true,
                )]));
                let mut b = StringBuilder::new();
                b.append_value("READY");
                let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(b.finish())])
                    .map_err(|e| encode_err(&status)(Box::new(e)))?;
                let file = File::create(&status).map_err(io_err(&status))?;
                let mut writer = ArrowWriter::try_new(file, schema, None)
                    .map_err(|e| encode_err(&status)(Box::new(e)))?;
                writer
                    .write(&batch)
                    .map_err(|e| encode_err(&status)(Box::new(e)))?;
                writer
                    .close()
                    .map_err(|e| encode_err(&status)(Box::new(e)))?;
                files.push(status);
            }
            SampleOutput::Cur2Parquet
            | SampleOutput::FocusParquet
            | SampleOutput::Cur2CsvGz
            | SampleOutput::FocusCsv => {
                let export =
                    if matches!(output, SampleOutput::Cur2Parquet | SampleOutput::Cur2CsvGz) {
                        "kubecur-cur2"
                    } else {
                        "kubecur-focus"
                    };
                for period in ["2024-05", "2024-06"] {
                    let manifest = serde_json::json!({
                        "executionId": format!("sample-{period}"),
                        "billingPeriod": {"start": format!("{period}-01T00:00:00.000Z")},
                        "dataFiles": [],
                    });
                    files.push(write(
                        base.join(format!(
                            "{export}/metadata/BILLING_PERIOD={period}/{export}-Manifest.json"
                        )),
                        &manifest.to_string(),
                    )?);
                }
            }
            SampleOutput::LegacyCsvGz => {}
        }
        files.push(write(base.join("aws-programmatic-access-test-object"), "")?);
    }
    Ok(())
}

//! S3: small objects (manifests, the legacy status object), the Athena result CSV streamed row by row
//! into a [`ResultSink`], and recent changes under a prefix.

use super::AwsError;
use crate::ports::pipeline::{ErrorKind, ExternalError, ObjectMeta, ObjectReader, StoredObject};
use crate::ports::{Cell, ResultSink};
use aws_sdk_s3::Client;

/// Splits `s3://bucket/key` into bucket and key.
pub fn split_uri(uri: &str) -> Result<(String, String), AwsError> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| {
        AwsError::new(
            "reading an S3 location",
            format!("`{uri}` is not an s3:// URI"),
        )
    })?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket.to_string(), key.to_string())),
        _ => Err(AwsError::new(
            "reading an S3 location",
            format!("`{uri}` has no bucket or key"),
        )),
    }
}

/// A whole small object, refused (without reading its body) when it is larger than `max_bytes`.
pub async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
    max_bytes: u64,
) -> Result<StoredObject, ExternalError> {
    let context = format!("reading s3://{bucket}/{key}");
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(AwsError::from_sdk(context.clone()))?;
    let too_large = |size: u64| {
        ExternalError::new(
            ErrorKind::InvalidEvent,
            context.clone(),
            format!("the object has {size} bytes or more, over the {max_bytes} byte limit for a delivery signal"),
        )
    };
    if let Some(length) = out.content_length().and_then(|l| u64::try_from(l).ok()) {
        if length > max_bytes {
            return Err(too_large(length));
        }
    }
    let last_modified_ms = out.last_modified().and_then(|t| t.to_millis().ok());
    let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
    let mut body = out.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| ExternalError::new(ErrorKind::Transient, context.clone(), e.to_string()))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
    }
    Ok(StoredObject {
        bytes,
        last_modified_ms,
        etag,
    })
}

/// The S3 adapter behind the [`ObjectReader`] port.
#[derive(Debug, Clone)]
pub struct S3Objects(pub Client);

impl ObjectReader for S3Objects {
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<StoredObject, ExternalError> {
        get_object(&self.0, bucket, key, max_bytes).await
    }

    async fn legacy_status(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<(bool, StoredObject), ExternalError> {
        let object = get_object(&self.0, bucket, key, max_bytes).await?;
        let ready = legacy_status_ready(key, object.bytes.clone())
            .map_err(|e| ExternalError::new(ErrorKind::InvalidEvent, e.context, e.message))?;
        Ok((ready, object))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, ExternalError> {
        let mut pages = self
            .0
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(AwsError::from_sdk(format!(
                "listing s3://{bucket}/{prefix}"
            )))?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(ObjectMeta {
                    key: o.key()?.to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                    etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                })
            }));
        }
        Ok(out)
    }

    async fn modified_since(
        &self,
        bucket: &str,
        prefix: &str,
        since_epoch_seconds: i64,
    ) -> Result<bool, ExternalError> {
        Ok(modified_since(&self.0, bucket, prefix, since_epoch_seconds).await?)
    }

    async fn read_result(&self, uri: &str, sink: &mut dyn ResultSink) -> Result<(), ExternalError> {
        read_result_csv(&self.0, uri, sink).await
    }
}

/// Streams an Athena result CSV (header row, RFC 4180 quoting) into `sink`, record by record as S3
/// sends the chunks: no whole-object buffer, no table, and no 1,000-row `GetQueryResults` pages. A
/// malformed result or the sink's refusal is an `InvalidEvent` error, raised where it happens.
pub async fn read_result_csv(
    client: &Client,
    uri: &str,
    sink: &mut dyn ResultSink,
) -> Result<(), ExternalError> {
    let (bucket, key) = split_uri(uri)?;
    let context = format!("reading the query result {uri}");
    let out = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(AwsError::from_sdk(context.clone()))?;
    let refused = |reason: String| ExternalError::new(ErrorKind::InvalidEvent, &context, reason);
    let mut body = out.body;
    let mut parser = CsvParser::default();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| ExternalError::new(ErrorKind::Transient, context.clone(), e.to_string()))?
    {
        parser.feed(&chunk, sink).map_err(refused)?;
    }
    parser.finish(sink).map_err(refused)
}

/// An incremental CSV reader: the first record is the header, every later one a row, each handed to a
/// [`ResultSink`] as soon as it is complete.
pub struct CsvParser {
    reader: csv_core::Reader,
    field: Vec<u8>,
    fields: Vec<Vec<u8>>,
    /// The header's width, once read.
    width: Option<usize>,
    /// Records after the header so far (blank lines included: error messages count lines).
    records: usize,
}

impl Default for CsvParser {
    fn default() -> Self {
        CsvParser {
            // Not `csv_core::Reader::default()`: that one has no built DFA and loops on any input.
            reader: csv_core::Reader::new(),
            field: Vec::new(),
            fields: Vec::new(),
            width: None,
            records: 0,
        }
    }
}

impl CsvParser {
    /// Consumes one chunk; records may span chunks.
    pub fn feed(&mut self, mut input: &[u8], sink: &mut dyn ResultSink) -> Result<(), String> {
        // csv-core reads an empty slice as the end of input, so it is only ever given bytes here.
        while !input.is_empty() {
            if !self.step(&mut input, sink)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One `read_field` call; `false` once the reader needs more input or has ended.
    fn step(&mut self, input: &mut &[u8], sink: &mut dyn ResultSink) -> Result<bool, String> {
        let mut out = [0u8; 8192];
        let (result, read, written) = self.reader.read_field(input, &mut out);
        *input = &input[read..];
        self.field.extend_from_slice(&out[..written]);
        match result {
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::End => Ok(false),
            csv_core::ReadFieldResult::OutputFull => Ok(true),
            csv_core::ReadFieldResult::Field { record_end } => {
                self.fields.push(std::mem::take(&mut self.field));
                if record_end {
                    self.record(sink)?;
                }
                Ok(true)
            }
        }
    }

    fn record(&mut self, sink: &mut dyn ResultSink) -> Result<(), String> {
        let record = std::mem::take(&mut self.fields);
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|_| "a field is not UTF-8".to_string())
        };
        let Some(width) = self.width else {
            let columns: Vec<String> = record.into_iter().map(text).collect::<Result<_, _>>()?;
            self.width = Some(columns.len());
            return sink.columns(columns);
        };
        self.records += 1;
        if record.len() == 1 && record[0].is_empty() {
            return Ok(()); // a blank line
        }
        if record.len() != width {
            return Err(format!(
                "row {} has {} fields, the header {width}",
                self.records + 1,
                record.len(),
            ));
        }
        let row = record
            .into_iter()
            .map(|f| text(f).map(Cell::Text))
            .collect::<Result<Vec<_>, _>>()?;
        sink.row(row)
    }

    /// Ends the input: the last record comes out. Errors when there was no header.
    pub fn finish(mut self, sink: &mut dyn ResultSink) -> Result<(), String> {
        // The end of input: the last field and record (if unterminated) come out, then `End`.
        let mut empty: &[u8] = &[];
        while self.step(&mut empty, sink)? {}
        if self.width.is_none() {
            return Err("the result has no header row".into());
        }
        Ok(())
    }
}

/// Reads legacy CUR's status object (a one-row Parquet file with a `status` column) and tells whether
/// it says `READY`. Anything unreadable is an error naming the object, never a silent "ready".
pub fn legacy_status_ready(key: &str, bytes: Vec<u8>) -> Result<bool, AwsError> {
    let context = format!("reading the legacy CUR status object {key}");
    // The parquet crate panics on some corrupt pages instead of returning an error (found by
    // tests/tests/fuzz_parsers.rs: "Decoder for dict should have been set"). A corrupt status object
    // is an error naming the object, never a crashed invocation.
    match std::panic::catch_unwind(|| read_status(&context, bytes)) {
        Ok(result) => result,
        Err(_) => Err(AwsError::new(
            context.clone(),
            "the object is not a readable Parquet file",
        )),
    }
}

fn read_status(context: &str, bytes: Vec<u8>) -> Result<bool, AwsError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let context = context.to_string();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
        .map_err(|e| AwsError::new(context.clone(), e.to_string()))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| AwsError::new(context.clone(), e.to_string()))?;
    for row in rows {
        let row = row.map_err(|e| AwsError::new(context.clone(), e.to_string()))?;
        for (name, field) in row.get_column_iter() {
            if name.eq_ignore_ascii_case("status") {
                return match field {
                    Field::Str(value) => Ok(value.trim().eq_ignore_ascii_case("READY")),
                    other => Err(AwsError::new(
                        context,
                        format!("`status` is not text: {other}"),
                    )),
                };
            }
        }
    }
    Err(AwsError::new(context, "no `status` column or no row"))
}

/// Whether any object under `prefix` was modified at or after `since_epoch_seconds`.
pub async fn modified_since(
    client: &Client,
    bucket: &str,
    prefix: &str,
    since_epoch_seconds: i64,
) -> Result<bool, AwsError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk(format!(
            "listing s3://{bucket}/{prefix}"
        )))?;
        if page
            .contents()
            .iter()
            .filter_map(|o| o.last_modified())
            .any(|t| t.secs() >= since_epoch_seconds)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(text: &str, chunk: usize) -> Result<crate::ports::ResultTable, String> {
        let mut parser = CsvParser::default();
        let mut table = crate::ports::TableSink::default();
        for part in text.as_bytes().chunks(chunk) {
            parser.feed(part, &mut table)?;
        }
        parser.finish(&mut table)?;
        Ok(table.0)
    }

    #[test]
    fn athena_csv_parses_whatever_the_chunking() {
        let text = "\"namespace\",\"list_cost\"\n\"pay,ments\",\"1.5\"\n\"say \"\"hi\"\"\",\"\"\n\"multi\nline\",\"2\"\n";
        let whole = parse_in_chunks(text, text.len()).expect("valid");
        assert_eq!(whole.columns, ["namespace", "list_cost"]);
        assert_eq!(whole.rows.len(), 3);
        assert_eq!(whole.rows[0][0], Cell::Text("pay,ments".into()));
        assert_eq!(whole.rows[1][0], Cell::Text("say \"hi\"".into()));
        assert_eq!(whole.rows[2][0], Cell::Text("multi\nline".into()));
        for chunk in [1, 2, 3, 7] {
            assert_eq!(
                parse_in_chunks(text, chunk),
                Ok(whole.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn ragged_rows_and_empty_results_are_errors() {
        assert!(parse_in_chunks("\"a\",\"b\"\n\"1\"\n", 4).is_err());
        assert!(parse_in_chunks("", 4).is_err());
        let header_only = parse_in_chunks("\"a\"\n", 4).expect("a header is a valid empty result");
        assert!(header_only.rows.is_empty());
    }

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            split_uri("s3://results/kubecur/q.csv").expect("valid"),
            ("results".to_string(), "kubecur/q.csv".to_string())
        );
        assert!(split_uri("https://results/q.csv").is_err());
        assert!(split_uri("s3://results").is_err());
    }
}

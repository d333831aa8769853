//! Finding CUR data files under a local directory or an `s3://` prefix, and reading their CSV headers,
//! for the local engine (`adapters::native`).
//!
//! A delivery holds more than data: legacy CUR's `cost_and_usage_data_status` object (itself a Parquet
//! file), CUR 2.0 / FOCUS manifests, AWS's crawler template and access test object. Those are skipped by
//! name; anything else that is not `.parquet`, `.csv` or `.csv.gz` is skipped and counted, never read.

use crate::domain::columns::canonical_column_name;
use crate::domain::deliveries::{self, Delivery, FoundFile, SelectionNote};
use crate::domain::window::BillingPeriod;
use crate::domain::UsageWindow;
use crate::ports::EngineError;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

/// Where the CUR files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurLocation {
    /// A local directory (or a single file).
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl CurLocation {
    /// Parses `--cur`: `s3://bucket/prefix` or a local path (which must exist).
    pub fn parse(text: &str) -> Result<CurLocation, EngineError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(EngineError::Input(format!(
                    "`{text}` names no bucket: expected s3://BUCKET/PREFIX"
                )));
            }
            return Ok(CurLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            });
        }
        let path = PathBuf::from(text);
        let absolute = std::fs::canonicalize(&path).map_err(|e| {
            EngineError::Input(format!("cannot open CUR path `{}`: {e}", path.display()))
        })?;
        Ok(CurLocation::Local(absolute))
    }

    /// The URL of the object store that serves this location (`file://` or `s3://bucket`).
    pub fn store_url(&self) -> Result<Url, EngineError> {
        let text = match self {
            CurLocation::Local(_) => "file://".to_string(),
            CurLocation::S3 { bucket, .. } => format!("s3://{bucket}"),
        };
        Url::parse(&text)
            .map_err(|e| EngineError::Input(format!("`{text}` is not a valid URL: {e}")))
    }

    /// For messages: the location as the user wrote it.
    pub fn display(&self) -> String {
        match self {
            CurLocation::Local(path) => path.display().to_string(),
            CurLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// How a data file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Parquet,
    Csv { gzip: bool },
}

/// One data file.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub kind: FileKind,
    /// For ListingTable: `file:///…` or `s3://bucket/key`.
    pub url: String,
    /// For schema reads through the object store.
    pub meta: ObjectMeta,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub files: Vec<DataFile>,
    /// Objects that are neither data nor a known delivery marker.
    pub skipped_unknown: Vec<String>,
    /// Data files whose path names a billing period outside the requested window (not read).
    pub outside_window: usize,
    /// Legacy and CUR 2.0 / FOCUS manifests found beside the data (never read as data).
    pub manifests: Vec<ObjectMeta>,
    /// Data files left out because a newer delivery of their month replaces them.
    pub older_deliveries: usize,
    /// What choosing among several deliveries of a month decided (`domain::deliveries`).
    pub delivery_notes: Vec<SelectionNote>,
}

impl Discovery {
    /// The size of the data files to read.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.meta.size).sum()
    }
}

/// Delivery markers and metadata that live beside the data and are never data.
fn is_delivery_marker(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    key.contains("cost_and_usage_data_status/")
        || key.contains("/metadata/")
        || name.ends_with("Manifest.json")
        || name == "crawler-cfn.yml"
        || name == "aws-programmatic-access-test-object"
        || name.starts_with('.')
        || name.starts_with('_') // _SUCCESS, _common_metadata
}

fn kind_of(key: &str) -> Option<FileKind> {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".parquet") {
        Some(FileKind::Parquet)
    } else if lower.ends_with(".csv") {
        Some(FileKind::Csv { gzip: false })
    } else if lower.ends_with(".csv.gz") {
        Some(FileKind::Csv { gzip: true })
    } else {
        None
    }
}

/// The billing period a data file's path names, if any: legacy `year=2024/month=6`, CUR 2.0 / FOCUS
/// `BILLING_PERIOD=2024-06` (any case), or legacy CSV's `20240601-20240701` folder.
pub fn period_of(key: &str) -> Option<BillingPeriod> {
    let segments: Vec<&str> = key.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let lower = segment.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("billing_period=") {
            return BillingPeriod::parse(value).ok();
        }
        if let (Some(year), Some(month)) = (
            lower.strip_prefix("year="),
            segments.get(i + 1).and_then(|m| {
                m.to_ascii_lowercase()
                    .strip_prefix("month=")
                    .map(str::to_string)
            }),
        ) {
            return BillingPeriod::parse(&format!("{year}-{:0>2}", month)).ok();
        }
        let bytes = segment.as_bytes();
        if bytes.len() == 17
            && bytes[8] == b'-'
            && segment.chars().filter(char::is_ascii_digit).count() == 16
        {
            return BillingPeriod::parse(&format!("{}-{}", &segment[0..4], &segment[4..6])).ok();
        }
    }
    None
}

fn classify(
    key: &str,
    meta: ObjectMeta,
    url: String,
    window: Option<&UsageWindow>,
    found: &mut Discovery,
) {
    if is_delivery_marker(key) {
        if key.ends_with("-Manifest.json") {
            found.manifests.push(meta);
        }
        return;
    }
    match kind_of(key) {
        Some(kind) => {
            let outside = match (window, period_of(key)) {
                (Some(window), Some(period)) => !window.billing_periods().contains(&period),
                _ => false,
            };
            if outside {
                found.outside_window += 1;
            } else {
                found.files.push(DataFile { kind, url, meta });
            }
        }
        None => found.skipped_unknown.push(key.to_string()),
    }
}

/// The `s3://bucket/key` URL of an object, its key percent-encoded segment by segment: the listing
/// table parses it as a URL, so a raw `#`, `?` or `%` in a key would name a different object (`#…` a
/// fragment, `?…` a query, `%41` an `A`). S3 keys may hold any UTF-8
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>).
pub fn s3_url(bucket: &str, key: &ObjectPath) -> Result<String, EngineError> {
    let mut url = Url::parse(&format!("s3://{bucket}/"))
        .map_err(|e| EngineError::Input(format!("`{bucket}` is not a usable bucket name: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| EngineError::Input(format!("`{bucket}` is not a usable bucket name")))?
        .pop_if_empty()
        .extend(key.parts().map(|part| part.as_ref().to_string()));
    Ok(url.to_string())
}

/// Lists every data file at `location`, sorted by name, leaving out files whose path names a billing
/// period the `window` does not touch (the local counterpart of Athena's partition predicates).
///
/// Errors: the location cannot be listed, or it holds no data file (the error says what was there).
pub async fn discover(
    location: &CurLocation,
    store: &Arc<dyn ObjectStore>,
    window: Option<&UsageWindow>,
) -> Result<Discovery, EngineError> {
    let mut found = Discovery::default();
    match location {
        CurLocation::Local(root) => {
            let mut stack = vec![root.clone()];
            while let Some(path) = stack.pop() {
                let metadata = std::fs::metadata(&path).map_err(|e| {
                    EngineError::Input(format!("cannot read `{}`: {e}", path.display()))
                })?;
                if metadata.is_dir() {
                    let entries = std::fs::read_dir(&path).map_err(|e| {
                        EngineError::Input(format!("cannot list `{}`: {e}", path.display()))
                    })?;
                    for entry in entries {
                        let entry = entry.map_err(|e| {
                            EngineError::Input(format!("cannot list `{}`: {e}", path.display()))
                        })?;
                        stack.push(entry.path());
                    }
                    continue;
                }
                let key = path.display().to_string();
                let location = ObjectPath::from_filesystem_path(&path)
                    .map_err(|e| EngineError::Input(format!("unusable file name `{key}`: {e}")))?;
                let url = Url::from_file_path(&path)
                    .map_err(|()| EngineError::Input(format!("unusable file name `{key}`")))?
                    .to_string();
                let meta = ObjectMeta {
                    location,
                    last_modified: metadata.modified().map(Into::into).unwrap_or_default(),
                    size: metadata.len(),
                    e_tag: None,
                    version: None,
                };
                classify(&key, meta, url, window, &mut found);
            }
        }
        CurLocation::S3 { bucket, prefix } => {
            // Parsed, not `ObjectPath::from`, which would percent-encode a `#`, `?` or `%` of the prefix.
            let prefix_path = if prefix.is_empty() {
                None
            } else {
                Some(ObjectPath::parse(prefix).map_err(|e| {
                    EngineError::Input(format!(
                        "`{}` is not a usable S3 prefix: {e}",
                        location.display()
                    ))
                })?)
            };
            let objects: Vec<ObjectMeta> = store
                .list(prefix_path.as_ref())
                .try_collect()
                .await
                .map_err(|e| EngineError::Storage {
                    context: format!("listing {}", location.display()),
                    source: Box::new(e),
                })?;
            for meta in objects {
                let key = meta.location.to_string();
                let url = s3_url(bucket, &meta.location)?;
                classify(&key, meta, url, window, &mut found);
            }
        }
    }
    found.files.sort_by(|a, b| a.url.cmp(&b.url));
    newest_deliveries(location, store, window, &mut found).await?;
    if found.files.is_empty() {
        let extra = if found.outside_window > 0 {
            format!(
                " for the requested window ({} data files are of other billing periods)",
                found.outside_window
            )
        } else if found.skipped_unknown.is_empty() {
            String::new()
        } else {
            format!(
                " (found only: {})",
                found
                    .skipped_unknown
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(EngineError::Input(format!(
            "no CUR data files (.parquet, .csv, .csv.gz) under `{}`{extra}",
            location.display()
        )));
    }
    Ok(found)
}

/// Manifests larger than this are refused rather than read into memory (real ones are kilobytes).
const MANIFEST_LIMIT: u64 = 64 * 1024 * 1024;

/// Where several deliveries of a month sit side by side, keeps only the files of each month's newest
/// delivery, by the manifests found (the rule: `domain::deliveries::select`). Notes that the user must
/// hear of are logged as warnings.
async fn newest_deliveries(
    location: &CurLocation,
    store: &Arc<dyn ObjectStore>,
    window: Option<&UsageWindow>,
    found: &mut Discovery,
) -> Result<(), EngineError> {
    // Keys as the manifests write them: relative to the bucket on S3, to `--cur` locally.
    let root = match location {
        CurLocation::Local(root) => ObjectPath::from_filesystem_path(root)
            .map(|p| p.to_string())
            .unwrap_or_default(),
        CurLocation::S3 { .. } => String::new(),
    };
    let relative = |meta: &ObjectMeta| {
        let key = meta.location.to_string();
        match key.strip_prefix(&root) {
            Some(rest) if !root.is_empty() => rest.trim_start_matches('/').to_string(),
            _ => key,
        }
    };
    let mut found_deliveries: Vec<Delivery> = Vec::new();
    for meta in &found.manifests {
        let key = relative(meta);
        if meta.size > MANIFEST_LIMIT {
            return Err(EngineError::Input(format!(
                "manifest `{key}` is {} bytes, more than a manifest can be ({MANIFEST_LIMIT})",
                meta.size
            )));
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| EngineError::Storage {
                context: format!("reading manifest `{key}`"),
                source: Box::new(e),
            })?
            .bytes()
            .await
            .map_err(|e| EngineError::Storage {
                context: format!("reading manifest `{key}`"),
                source: Box::new(e),
            })?;
        let delivery = deliveries::parse_delivery(
            &key,
            &bytes,
            period_of(&key),
            meta.last_modified.timestamp_millis(),
        )
        .map_err(|e| EngineError::Input(e.to_string()))?;
        let in_window = window.is_none_or(|w| w.billing_periods().contains(&delivery.period));
        if in_window {
            found_deliveries.push(delivery);
        }
    }
    let files: Vec<FoundFile> = found
        .files
        .iter()
        .map(|f| {
            let key = relative(&f.meta);
            FoundFile {
                period: period_of(&key),
                key,
            }
        })
        .collect();
    let selection = deliveries::select(&files, &found_deliveries)
        .map_err(|e| EngineError::Input(e.to_string()))?;
    let before = found.files.len();
    let mut keep = selection.keep.iter();
    found.files.retain(|_| keep.next().copied().unwrap_or(true));
    found.older_deliveries = before - found.files.len();
    for note in &selection.notes {
        if note.is_warning() {
            tracing::warn!("{note}");
        } else {
            tracing::info!("{note}");
        }
    }
    found.delivery_notes = selection.notes;
    Ok(())
}

/// Canonical names for raw names; a name that repeats (AWS merged `Team`/`team` into one column, but a
/// CSV has both) gets `__dup2`, `__dup3`, … which tag resolution folds back together.
///
/// Linear in the number of names: each base name remembers its next suffix, and a set answers "taken?"
/// (a header of 20,000 copies of one name is 20,000 steps, not 20,000³).
pub fn canonical_names(raw: &[String]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::with_capacity(raw.len());
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let base = canonical_column_name(name);
        let mut candidate = base.clone();
        if taken.contains(&candidate) {
            let n = next_suffix.entry(base.clone()).or_insert(1);
            loop {
                *n += 1;
                candidate = format!("{base}__dup{n}");
                // A raw name can itself look like `x__dup2`: skip suffixes already taken.
                if !taken.contains(&candidate) {
                    break;
                }
            }
        }
        taken.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

/// Splits a CSV header line, honouring double quotes.
pub fn parse_csv_header(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut current)),
            (other, _) => current.push(other),
        }
    }
    fields.push(current);
    fields
}

/// A path for messages relative to the root, when local.
pub fn short_name(location: &CurLocation, url: &str) -> String {
    match location {
        CurLocation::Local(root) => {
            let root_url = Url::from_directory_path(root)
                .map(|u| u.to_string())
                .unwrap_or_default();
            url.strip_prefix(&root_url).unwrap_or(url).to_string()
        }
        CurLocation::S3 { .. } => url.to_string(),
    }
}

/// The raw header names of a CSV (or gzip CSV) data file: the first line of its first MiB.
///
/// Errors: the object cannot be read, is not gzip when named so, or its header is not UTF-8.
pub async fn read_csv_header(
    file: &DataFile,
    store: &Arc<dyn ObjectStore>,
) -> Result<Vec<String>, EngineError> {
    let unreadable =
        |reason: String| EngineError::Input(format!("cannot read `{}`: {reason}", file.url));
    let gzip = matches!(file.kind, FileKind::Csv { gzip: true });
    // The header is in the first bytes; 1 MiB covers thousands of tag columns.
    let end = file.meta.size.min(1 << 20);
    let head = store
        .get_range(&file.meta.location, 0..end)
        .await
        .map_err(|e| EngineError::Storage {
            context: format!("reading `{}`", file.url),
            source: Box::new(e),
        })?;
    let text = if gzip {
        let mut decoder = flate2::read::GzDecoder::new(head.as_ref());
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        loop {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() || buf[..filled].contains(&b'\n') {
                        break;
                    }
                }
                // A truncated stream is expected: only the head was fetched.
                Err(_) if filled > 0 => break,
                Err(e) => return Err(unreadable(format!("not a gzip file ({e})"))),
            }
        }
        buf.truncate(filled);
        buf
    } else {
        head.to_vec()
    };
    let line_end = text.iter().position(|b| *b == b'\n').unwrap_or(text.len());
    let header = std::str::from_utf8(&text[..line_end])
        .map_err(|_| unreadable("the header line is not UTF-8".into()))?
        .trim_end_matches('\r');
    Ok(parse_csv_header(header))
}

/// The object store serving `location`: the local file system, or S3 with credentials from the
/// environment (`AWS_ENDPOINT_URL` points at an emulator).
pub fn open_store(location: &CurLocation) -> Result<Arc<dyn ObjectStore>, EngineError> {
    Ok(match location {
        CurLocation::Local(_) => Arc::new(object_store::local::LocalFileSystem::new()),
        CurLocation::S3 { bucket, .. } => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| EngineError::Storage {
                    context: format!("configuring S3 access to {}", location.display()),
                    source: Box::new(e),
                })?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_markers_are_not_data() {
        assert!(is_delivery_marker(
            "r/r/cost_and_usage_data_status/cost_and_usage_data_status.parquet"
        ));
        assert!(is_delivery_marker(
            "p/e/metadata/BILLING_PERIOD=2024-06/e-Manifest.json"
        ));
        assert!(is_delivery_marker("p/r/crawler-cfn.yml"));
        assert!(is_delivery_marker("aws-programmatic-access-test-object"));
        assert!(!is_delivery_marker(
            "p/r/r/year=2024/month=6/r-00001.snappy.parquet"
        ));
    }

    #[test]
    fn data_files_are_recognised_by_extension() {
        assert_eq!(kind_of("a/b.snappy.parquet"), Some(FileKind::Parquet));
        assert_eq!(
            kind_of("a/b-00001.csv.gz"),
            Some(FileKind::Csv { gzip: true })
        );
        assert_eq!(kind_of("a/B.CSV"), Some(FileKind::Csv { gzip: false }));
        assert_eq!(kind_of("a/b.json"), None);
    }

    #[test]
    fn csv_headers_are_split_with_quotes_and_merged_names_deduplicated() {
        let raw = parse_csv_header("\u{feff}lineItem/UnblendedCost,\"resourceTags/user:a,b\",resourceTags/user:Team,resourceTags/user:team");
        assert_eq!(raw[1], "resourceTags/user:a,b");
        let names = canonical_names(&raw);
        assert_eq!(
            names,
            [
                "line_item_unblended_cost",
                "resource_tags_user_a_b",
                "resource_tags_user_team",
                "resource_tags_user_team__dup2"
            ]
        );
    }

    #[test]
    fn many_copies_of_one_header_get_distinct_names_in_order() {
        let mut raw: Vec<String> = vec!["resourceTags/user:team".to_string(); 20_000];
        // A raw name that already looks like a suffix must not be handed out twice.
        raw.insert(1, "resource_tags_user_team__dup3".to_string());
        let names = canonical_names(&raw);
        assert_eq!(names.len(), raw.len());
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "names repeat");
        assert_eq!(names[0], "resource_tags_user_team");
        assert_eq!(names[1], "resource_tags_user_team__dup3");
        assert_eq!(names[2], "resource_tags_user_team__dup2");
        assert_eq!(names[3], "resource_tags_user_team__dup4");
        assert_eq!(names[20_000], "resource_tags_user_team__dup20001");
    }

    #[test]
    fn s3_urls_encode_what_a_url_would_misread() {
        let key = ObjectPath::parse("exports/a#b/c?d/100%25 x.csv").expect("valid key");
        let url = s3_url("billing", &key).expect("url");
        assert_eq!(url, "s3://billing/exports/a%23b/c%3Fd/100%2525%20x.csv");
        let parsed = Url::parse(&url).expect("parses");
        assert_eq!(
            ObjectPath::from_url_path(parsed.path()).expect("decodes"),
            key
        );
    }

    #[test]
    fn billing_periods_are_read_from_every_layout() {
        let june = BillingPeriod::parse("2024-06").ok();
        assert_eq!(
            period_of("p/r/r/year=2024/month=6/r-00001.snappy.parquet"),
            june
        );
        assert_eq!(
            period_of("p/e/data/BILLING_PERIOD=2024-06/e-00001.snappy.parquet"),
            june
        );
        assert_eq!(
            period_of("p/e/data/billing_period=2024-06/e-00001.csv.gz"),
            june
        );
        assert_eq!(period_of("p/r/20240601-20240701/r-00001.csv.gz"), june);
        assert_eq!(period_of("exports/cur.parquet"), None);
    }

    #[test]
    fn s3_locations_need_a_bucket() {
        assert_eq!(
            CurLocation::parse("s3://billing/cur/kubecur/").expect("valid"),
            CurLocation::S3 {
                bucket: "billing".into(),
                prefix: "cur/kubecur".into()
            }
        );
        assert!(CurLocation::parse("s3:///x").is_err());
        assert!(CurLocation::parse("/definitely/not/here")
            .expect_err("missing")
            .to_string()
            .contains("cannot open CUR path"));
    }
}

//! `NativeEngine`: kubecur's local allocation engine over CUR files on disk or in S3 (`kubecur allocate`,
//! `kubecur serve`). Built on arrow-rs readers alone, no query engine. Its speed against DuckDB and
//! polars, and its memory at millions of groups (where it is still well behind), are in BENCHMARKS.md.
//!
//! It runs an [`AllocationPlan`] directly rather than SQL ([`AllocationEngine`]): one scan reads only the
//! plan's columns, text columns as Parquet dictionaries where the file has them, groups on per-column
//! string ids (a dictionary's values are interned once per batch, never per row), evaluates the
//! metrics' [`crate::domain::expr::Expr`] over arrays, and counts line items, tag presence, unreadable
//! tag cells and distinct resources per group. Files and Parquet row groups are shared out to worker
//! threads whose partial results are merged at the end. The result has the columns of the rendered
//! allocation query and goes to a [`ResultSink`] row by row, as the pipeline reads Athena's.
//!
//! Finding the files (local or `s3://`, delivery manifests, billing-period pruning) is
//! [`crate::adapters::files`].

mod columns;
mod scan;

use crate::adapters::files::{self, CurLocation, DataFile, Discovery, FileKind};
use crate::domain::columns::ColumnSet;
use crate::domain::flavour::Flavour;
use crate::domain::{AllocationPlan, UsageWindow};
use crate::ports::{AllocationEngine, EngineError, Progress, ResultSink};
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use std::sync::Arc;

/// One data file as the engine reads it.
#[derive(Clone)]
pub(crate) struct NativeFile {
    pub file: DataFile,
    /// The file's name for messages (relative to a local root).
    pub name: String,
    pub encoding: Encoding,
    /// `(canonical name, name in the file)`, one per column.
    pub canonical: Vec<(String, String)>,
}

#[derive(Clone)]
pub(crate) enum Encoding {
    /// The footer, read once at open: schema, row groups and their row counts.
    Parquet(ArrowReaderMetadata),
    /// The header's columns, by position (`canonical` is in header order).
    Csv { gzip: bool },
}

impl NativeFile {
    /// The name in the file of the canonical column `name` (case-insensitive, as the plan names it).
    pub fn raw_name(&self, name: &str) -> Option<&str> {
        self.canonical
            .iter()
            .find(|(canonical, _)| canonical.eq_ignore_ascii_case(name))
            .map(|(_, raw)| raw.as_str())
    }

    /// The position of the canonical column `name` among the file's columns.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.canonical
            .iter()
            .position(|(canonical, _)| canonical.eq_ignore_ascii_case(name))
    }
}

/// The native engine. Construct with [`NativeEngine::open`], run with
/// [`crate::service::allocate`].
pub struct NativeEngine {
    location: CurLocation,
    store: Arc<dyn ObjectStore>,
    files: Arc<Vec<NativeFile>>,
    columns: ColumnSet,
    flavour: Flavour,
    discovery: Discovery,
    progress: Arc<dyn Progress>,
    /// Line items in all files, when every file's footer says (Parquet); for the progress bar.
    total_rows: Option<u64>,
    threads: usize,
    /// Groups one pass may hold ([`NativeEngine::with_group_limit`]).
    group_limit: usize,
}

/// Groups a pass holds by default: with it, `kubecur allocate` peaked at 1,229 MiB over 23.8 M groups
/// (`bench/scale.py` at 50 M line items, BENCHMARKS.md).
pub const DEFAULT_GROUP_LIMIT: usize = 2_000_000;

impl NativeEngine {
    /// Opens the CUR at `location` (`s3://bucket/prefix` or a local path): lists its data files, reads
    /// every schema (Parquet footer, CSV header) and checks that they hold one flavour.
    ///
    /// With a `window`, files whose path names another billing period are not read at all.
    pub async fn open(
        location: &str,
        window: Option<UsageWindow>,
        progress: Arc<dyn Progress>,
    ) -> Result<NativeEngine, EngineError> {
        let location = CurLocation::parse(location)?;
        let store = files::open_store(&location)?;
        progress.phase(&format!("listing {}", location.display()));
        let discovery = files::discover(&location, &store, window.as_ref()).await?;
        if !discovery.skipped_unknown.is_empty() {
            tracing::warn!(count = discovery.skipped_unknown.len(), first = %discovery.skipped_unknown[0], "Skipped files that are not CUR data.");
        }
        progress.phase(&format!(
            "reading the schemas of {} files",
            discovery.files.len()
        ));
        let mut native = Vec::with_capacity(discovery.files.len());
        for file in &discovery.files {
            native.push(read_file(&location, &store, file).await?);
        }
        let (columns, flavour) = check_one_flavour(&location, &native)?;
        let total_rows = native
            .iter()
            .map(|f| match &f.encoding {
                Encoding::Parquet(meta) => {
                    u64::try_from(meta.metadata().file_metadata().num_rows()).ok()
                }
                Encoding::Csv { .. } => None,
            })
            .sum();
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(1, 8);
        Ok(NativeEngine {
            location,
            store,
            files: Arc::new(native),
            columns,
            flavour,
            discovery,
            progress,
            total_rows,
            threads,
            group_limit: DEFAULT_GROUP_LIMIT,
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

    /// Holds at most about `groups` groups at a time (at least 1). An allocation with more groups
    /// than that is made in several passes over the files, each for the groups of a range of key
    /// hashes: memory stays bounded, time grows with the passes.
    pub fn with_group_limit(mut self, groups: usize) -> NativeEngine {
        self.group_limit = groups.max(1);
        self
    }

    /// Scans with `threads` workers (at least one) instead of one per core.
    pub fn with_threads(mut self, threads: usize) -> NativeEngine {
        self.threads = threads.max(1);
        self
    }
}

/// Reads one file's schema: the Parquet footer (kept for the scan), or the CSV header line.
async fn read_file(
    location: &CurLocation,
    store: &Arc<dyn ObjectStore>,
    file: &DataFile,
) -> Result<NativeFile, EngineError> {
    let name = files::short_name(location, &file.url);
    let unreadable =
        |reason: String| EngineError::Input(format!("cannot read `{}`: {reason}", file.url));
    match file.kind {
        FileKind::Parquet => {
            let meta = match location {
                CurLocation::Local(_) => {
                    let path = local_path(file)?;
                    let handle = std::fs::File::open(&path).map_err(|e| {
                        EngineError::Input(format!("cannot open `{}`: {e}", path.display()))
                    })?;
                    ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new())
                }
                CurLocation::S3 { .. } => {
                    #[allow(deprecated)]
                    let mut reader = parquet::arrow::async_reader::ParquetObjectReader::new(
                        store.clone(),
                        file.meta.location.clone(),
                    )
                    .with_file_size(file.meta.size);
                    ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await
                }
            }
            .map_err(|e| unreadable(format!("not a readable Parquet file ({e})")))?;
            let raw: Vec<String> = meta
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let canonical = files::canonical_names(&raw).into_iter().zip(raw).collect();
            Ok(NativeFile {
                file: file.clone(),
                name,
                encoding: Encoding::Parquet(meta),
                canonical,
            })
        }
        FileKind::Csv { gzip } => {
            let raw = files::read_csv_header(file, store).await?;
            if raw.iter().all(String::is_empty) {
                return Err(unreadable("the file is empty or has no header line".into()));
            }
            let names = files::canonical_names(&raw);
            Ok(NativeFile {
                file: file.clone(),
                name,
                encoding: Encoding::Csv { gzip },
                canonical: names.iter().map(|n| (n.clone(), n.clone())).collect(),
            })
        }
    }
}

/// The local path of a file discovered under a local root.
pub(crate) fn local_path(file: &DataFile) -> Result<std::path::PathBuf, EngineError> {
    url::Url::parse(&file.url)
        .ok()
        .and_then(|url| url.to_file_path().ok())
        .ok_or_else(|| EngineError::Input(format!("`{}` is not a local file", file.url)))
}

/// Every file must hold the same flavour; the columns are the union of the files' canonical names,
/// in first-seen order.
fn check_one_flavour(
    location: &CurLocation,
    files: &[NativeFile],
) -> Result<(ColumnSet, Flavour), EngineError> {
    let mut first: Option<(Flavour, &NativeFile)> = None;
    let mut names: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for file in files {
        let columns = ColumnSet::new(file.canonical.iter().map(|(c, _)| c.clone()));
        let flavour = Flavour::detect(&columns)
            .map_err(|e| EngineError::Input(format!("`{}` {e}", file.name)))?;
        match first {
            None => first = Some((flavour, file)),
            Some((expected, first_file)) if expected != flavour => {
                return Err(EngineError::Input(format!(
                    "`{}` mixes CUR flavours: `{}` is {expected} but `{}` is {flavour}; point --cur at one export",
                    location.display(),
                    first_file.name,
                    file.name,
                )));
            }
            Some(_) => {}
        }
        for (canonical, _) in &file.canonical {
            if seen.insert(canonical.clone()) {
                names.push(canonical.clone());
            }
        }
    }
    let (flavour, _) = first.ok_or_else(|| {
        EngineError::Input(format!("no CUR data files under `{}`", location.display()))
    })?;
    Ok((ColumnSet::new(names), flavour))
}

impl AllocationEngine for NativeEngine {
    fn columns(&self) -> &ColumnSet {
        &self.columns
    }

    async fn run_allocation(
        &self,
        plan: &AllocationPlan,
        sink: &mut dyn ResultSink,
    ) -> Result<(), EngineError> {
        let compiled = Arc::new(scan::Compiled::new(plan)?);
        let job = Arc::new(scan::Job {
            files: self.files.clone(),
            store: self.store.clone(),
            local: matches!(self.location, CurLocation::Local(_)),
            progress: self.progress.clone(),
            threads: self.threads,
            runtime: tokio::runtime::Handle::current(),
            group_limit: self.group_limit,
            strings: scan::StringPool::default(),
        });
        let location = self.location.display();
        sink.columns(scan::columns(&compiled))
            .map_err(scan::sink_refused)?;
        // Passes over the files, each for the groups whose key hash is in a range: one pass when
        // every group fits in memory; otherwise each pass holds about `group_limit` groups, and
        // its groups are complete (sent, then freed) before the next pass reads the files again.
        let (mut lo, mut hi, mut pass) = (0u64, scan::HASH_END, 1usize);
        loop {
            if pass > 1 {
                self.progress.phase(&format!(
                    "pass {pass}: groups with key hashes from {:.1} % (a pass holds at most {} groups)",
                    lo as f64 / scan::HASH_END as f64 * 100.0,
                    self.group_limit
                ));
            }
            self.progress.set_total_rows(self.total_rows);
            // The scan, the merge and the sort on a blocking thread; building and sending the rows
            // here, where the sink is.
            let (job_, compiled_) = (job.clone(), compiled.clone());
            let (sorted, done_to, groups) = tokio::task::spawn_blocking(move || {
                let (groups, done_to) = job_.run(&compiled_, lo, hi)?;
                let count = groups.len();
                Ok::<_, EngineError>((scan::sort(&compiled_, groups), done_to, count))
            })
            .await
            .map_err(|e| EngineError::Execution {
                context: format!("scanning {location}"),
                source: Box::new(e),
            })??;
            scan::emit(&compiled, sorted, sink)?;
            sink.keys_complete().map_err(scan::sink_refused)?;
            tracing::debug!(
                pass,
                groups,
                done_to_percent = done_to as f64 / scan::HASH_END as f64 * 100.0,
                "Pass finished."
            );
            if done_to >= scan::HASH_END {
                return Ok(());
            }
            // The next range: as wide as held about 70 % of the limit at this pass's density.
            let width = done_to - lo;
            let wanted = if groups == 0 {
                scan::HASH_END - done_to
            } else {
                (width as f64 * (self.group_limit as f64 * 0.7 / groups as f64)) as u64
            };
            lo = done_to;
            hi = lo.saturating_add(wanted.max(1)).min(scan::HASH_END);
            pass += 1;
        }
    }
}

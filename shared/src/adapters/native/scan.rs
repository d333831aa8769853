//! The scan: a plan compiled to column positions, worker threads over files and Parquet row groups,
//! per-batch grouping on string ids, the merge and sort, and the allocation query's result rows sent
//! to a sink one at a time.

use super::columns::{days, lookup_tags, nonblank, numbers, text_map, BadCell, Numbers, NO_DAY};
use super::{local_path, Encoding, NativeFile};
use crate::domain::expr::{is_plausible_cost, Expr, MAX_COST_MAGNITUDE};
use crate::domain::plan::{AllocationPlan, Presence, SPLIT_COST_OPERATIONS};
use crate::domain::resources::resource_hash;
use crate::domain::sql::{
    ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCES_COLUMN, RESOURCE_HASHES_COLUMN,
    TAG_SOURCE_COLUMN_PREFIX, UNREADABLE_TAGS_COLUMN,
};
use crate::domain::tags::{Concept, TagSource};
use crate::domain::{CostMetric, Dimension, UNALLOCATED};
use crate::ports::{Cell, EngineError, Progress, ResultSink};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use hashbrown::HashTable;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use rustc_hash::{FxHashMap, FxHashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Rows per batch read.
const BATCH_ROWS: usize = 8192;
/// The id of the empty string (a blank service or account; an absent tag).
const BLANK: u32 = 0;
/// The id of [`UNALLOCATED`].
const UNALLOCATED_ID: u32 = 1;

/// One group key position.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Day,
    Service,
    Account,
    /// The resource id, for the ids the plan lists ([`AllocationPlan::resources`]); '' otherwise.
    Resource,
    /// Index into [`Compiled::concepts`].
    Concept(usize),
}

/// One tag source: a text column, or a key of a map (or JSON text) column.
#[derive(Debug)]
struct Source {
    column: usize,
    key: Option<String>,
}

/// A cost expression over column positions.
#[derive(Debug)]
enum CExpr {
    Zero,
    Cost(Vec<usize>),
    Add(Vec<CExpr>),
    Sub(Box<CExpr>, Box<CExpr>),
    ByType {
        column: usize,
        branches: Vec<CBranch>,
        otherwise: Box<CExpr>,
    },
}

#[derive(Debug)]
struct CBranch {
    types: Vec<String>,
    requires_non_empty: Option<usize>,
    then: CExpr,
}

/// The plan, compiled to positions in its required columns.
#[derive(Debug)]
pub struct Compiled {
    /// The plan's required columns (canonical names), in [`AllocationPlan::required_columns`] order.
    names: Vec<String>,
    day: usize,
    service: usize,
    account: usize,
    resource: Option<usize>,
    operation: Option<usize>,
    /// `[from, to)` in days since 1970-01-01.
    window: Option<(i32, i32)>,
    accounts: Vec<String>,
    group_by: Vec<Dimension>,
    slots: Vec<Slot>,
    sources: Vec<Source>,
    /// The sources of each concept the keys or the allocated flag need.
    concepts: Vec<Vec<usize>>,
    /// Index into `concepts` of the namespace (the allocated flag).
    namespace: usize,
    /// The sources whose presence is counted, in `tag_source_<n>` order.
    counted: Vec<usize>,
    /// Tag map columns (their unreadable cells are counted), each once.
    map_columns: Vec<usize>,
    metrics: Vec<CExpr>,
    cost_columns: Vec<usize>,
    resource_ids: bool,
    /// The resource ids [`Slot::Resource`] keys (trimmed, as the plan lists them).
    resource_keys: Vec<String>,
}

fn compile_error(reason: String) -> EngineError {
    EngineError::Execution {
        context: "compiling the allocation plan".into(),
        source: reason.into(),
    }
}

impl Compiled {
    pub fn new(plan: &AllocationPlan) -> Result<Compiled, EngineError> {
        let names: Vec<String> = plan
            .required_columns()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let index = |name: &str| {
            names.iter().position(|n| n == name).ok_or_else(|| {
                compile_error(format!("column `{name}` is not among the plan's columns"))
            })
        };
        let sources = plan
            .tag_sources()
            .into_iter()
            .map(|(_, _, source)| {
                Ok(match source {
                    TagSource::Column(column) => Source {
                        column: index(column)?,
                        key: None,
                    },
                    TagSource::MapKey { column, key } => Source {
                        column: index(column)?,
                        key: Some(key.clone()),
                    },
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let concept_of: Vec<Concept> = plan.tag_sources().into_iter().map(|(c, _, _)| c).collect();
        let mut wanted: Vec<Concept> = Vec::new();
        let mut slots = Vec::new();
        for dimension in &plan.group_by {
            slots.push(match dimension {
                Dimension::Day => Slot::Day,
                Dimension::Service => Slot::Service,
                Dimension::Account => Slot::Account,
                Dimension::Resource => Slot::Resource,
                other => {
                    let concept = other.concept().ok_or_else(|| {
                        compile_error(format!("`{other:?}` is not a tag dimension"))
                    })?;
                    let at = wanted
                        .iter()
                        .position(|c| *c == concept)
                        .unwrap_or_else(|| {
                            wanted.push(concept);
                            wanted.len() - 1
                        });
                    Slot::Concept(at)
                }
            });
        }
        let namespace = wanted
            .iter()
            .position(|c| *c == Concept::Namespace)
            .unwrap_or_else(|| {
                wanted.push(Concept::Namespace);
                wanted.len() - 1
            });
        let concepts = wanted
            .iter()
            .map(|concept| {
                concept_of
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| *c == concept)
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let counted = plan
            .presence()
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| matches!(p, Presence::Counted(_)).then_some(i))
            .collect();
        let map_columns = plan
            .tag_map_columns()
            .into_iter()
            .map(index)
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = plan
            .metrics
            .iter()
            .map(|m| compile_expr(m, &index))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cost_columns = Vec::new();
        for metric in &plan.metrics {
            for column in metric.cost_columns() {
                let at = index(&column)?;
                if !cost_columns.contains(&at) {
                    cost_columns.push(at);
                }
            }
        }
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .ok_or_else(|| compile_error("no epoch".into()))?;
        let day_number = |day: chrono::NaiveDate| {
            i32::try_from((day - epoch).num_days())
                .map_err(|_| compile_error(format!("day {day} is out of range")))
        };
        let window = match plan.window {
            Some(w) => Some((day_number(w.from())?, day_number(w.to())?)),
            None => None,
        };
        Ok(Compiled {
            day: index(&plan.day_column)?,
            service: index(&plan.service_column)?,
            account: index(&plan.account_column)?,
            resource: plan.resource_column.as_deref().map(index).transpose()?,
            operation: plan.operation_column.as_deref().map(index).transpose()?,
            window,
            accounts: plan
                .accounts
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            group_by: plan.group_by.clone(),
            slots,
            sources,
            concepts,
            namespace,
            counted,
            map_columns,
            metrics,
            cost_columns,
            resource_ids: plan.resource_ids,
            resource_keys: plan.resources.clone(),
            names,
        })
    }

    fn needs_days(&self) -> bool {
        self.window.is_some() || self.slots.contains(&Slot::Day)
    }
}

fn compile_expr(
    expr: &Expr,
    index: &impl Fn(&str) -> Result<usize, EngineError>,
) -> Result<CExpr, EngineError> {
    Ok(match expr {
        Expr::Zero => CExpr::Zero,
        Expr::Cost(columns) => {
            CExpr::Cost(columns.iter().map(|c| index(c)).collect::<Result<_, _>>()?)
        }
        Expr::Add(parts) => CExpr::Add(
            parts
                .iter()
                .map(|p| compile_expr(p, index))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Sub(l, r) => CExpr::Sub(
            Box::new(compile_expr(l, index)?),
            Box::new(compile_expr(r, index)?),
        ),
        Expr::ByLineItemType {
            type_column,
            branches,
            otherwise,
        } => {
            if branches.len() > 63 {
                return Err(compile_error(format!(
                    "a cost rule has {} branches; at most 63 are supported",
                    branches.len()
                )));
            }
            CExpr::ByType {
                column: index(type_column)?,
                branches: branches
                    .iter()
                    .map(|b| {
                        Ok(CBranch {
                            types: b.types.clone(),
                            requires_non_empty: b
                                .requires_non_empty
                                .as_deref()
                                .map(index)
                                .transpose()?,
                            then: compile_expr(&b.then, index)?,
                        })
                    })
                    .collect::<Result<_, EngineError>>()?,
                otherwise: Box::new(compile_expr(otherwise, index)?),
            }
        }
    })
}

/// Where a batch comes from, for messages.
struct Place<'a> {
    file: &'a NativeFile,
    /// Parquet: the row group.
    row_group: Option<usize>,
    /// The batch's first row in the file (0-based over data rows).
    first_row: u64,
}

impl Place<'_> {
    fn at(&self, row: usize) -> String {
        let row = self.first_row + row as u64 + 1;
        match self.row_group {
            Some(group) => format!("row group {group} (row {row} of the file)"),
            None => format!("data row {row}"),
        }
    }

    fn cell(&self, raw: &str, bad: BadCell) -> EngineError {
        EngineError::Input(format!(
            "`{}` {}, column `{raw}`: {}",
            self.file.name,
            self.at(bad.row),
            bad.reason
        ))
    }

    fn column(&self, raw: &str, reason: String) -> EngineError {
        EngineError::Input(format!("`{}`, column `{raw}`: {reason}", self.file.name))
    }
}

/// Strings seen by one worker, by id: 0 is `""`, 1 is [`UNALLOCATED`]. The text of all of them is
/// one buffer (a string costs its bytes plus 20 bytes of bookkeeping, not two allocations: at millions of
/// pod names that was most of a worker's memory). Each has a hash of its text, the same in every
/// worker: the key hashes that share groups out to passes are made of them.
pub(super) struct Strings {
    /// The id of each string, found by its hash.
    index: HashTable<u32>,
    text: String,
    /// Where each string ends in `text` (it starts where the one before ends).
    ends: Vec<usize>,
    hashes: Vec<u64>,
}

impl Strings {
    fn new() -> Strings {
        let mut strings = Strings {
            index: HashTable::new(),
            text: String::new(),
            ends: Vec::new(),
            hashes: Vec::new(),
        };
        strings.intern("");
        strings.intern(UNALLOCATED);
        strings
    }

    /// No strings at all, not even the two reserved ones (a placeholder; allocates nothing).
    fn empty() -> Strings {
        Strings {
            index: HashTable::new(),
            text: String::new(),
            ends: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// Forgets every string but the two reserved ones, keeping the memory.
    fn clear(&mut self) {
        self.index.clear();
        self.text.clear();
        self.ends.clear();
        self.hashes.clear();
        self.intern("");
        self.intern(UNALLOCATED);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn intern(&mut self, text: &str) -> u32 {
        let mut hasher = rustc_hash::FxHasher::default();
        text.hash(&mut hasher);
        let hash = mix(hasher.finish());
        let (all, ends) = (&self.text, &self.ends);
        let at = |id: u32| {
            let id = id as usize;
            let start = if id == 0 { 0 } else { ends[id - 1] };
            &all[start..ends[id]]
        };
        if let Some(&id) = self.index.find(hash, |&id| at(id) == text) {
            return id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(text);
        self.ends.push(self.text.len());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.index
            .insert_unique(hash, id, |&id| hashes[id as usize]);
        id
    }

    fn get(&self, id: u32) -> &str {
        let id = id as usize;
        let Some(&end) = self.ends.get(id) else {
            return "";
        };
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.text[start..end]
    }
}

/// Costs are added as whole numbers of 10⁻¹² currency units: exactly, so a sum does not depend on the
/// order its line items were added in. Float sums do (in their last bits), and the threads share row
/// groups out in whatever order they get to them: the same files gave figures that differed from run
/// to run, now and then by a cent once rounded. A line item is at most ±1e15
/// ([`MAX_COST_MAGNITUDE`]), 10²⁷ units, so an i128 sum holds 1.7·10¹¹ such line items, more than any
/// scan reads; amounts below 10⁻¹² are rounded to it.
const UNITS_PER_CURRENCY: i128 = 1_000_000_000_000;

/// A cost in units (the nearest one; a tie, half a unit, away from zero). The whole currency units and
/// the fraction are converted apart: the whole cost times 10¹² is past 2^53 from about 9,000 up, where
/// a float product would lose the cost's last digits. Casts, no `round`/`trunc` (library calls on the
/// x86-64 baseline; this runs four times per line item).
fn units(cost: f64) -> i128 {
    let whole = cost as i64;
    let fraction = (cost - whole as f64) * UNITS_PER_CURRENCY as f64;
    let fraction = (fraction + 0.5_f64.copysign(fraction)) as i64;
    i128::from(whole) * UNITS_PER_CURRENCY + i128::from(fraction)
}

/// A sum of units as a cost.
fn amount(units: i128) -> f64 {
    let whole = units / UNITS_PER_CURRENCY;
    let fraction = units % UNITS_PER_CURRENCY;
    whole as f64 + fraction as f64 / UNITS_PER_CURRENCY as f64
}

/// One worker's groups (or, after the merge, all of them). Each group's key is stored once, in `keys`;
/// the index holds only group numbers and finds them by the key's hash (a map from keys to numbers
/// would store every key twice: at millions of groups, most of the memory).
pub struct Groups {
    strings: Strings,
    /// The strings of the batch being added (small, so looking them up stays in cache); only those of
    /// the rows kept go on to `strings`.
    batch: Strings,
    /// Ids per key: the plan's slots, then the allocated flag.
    width: usize,
    index: HashTable<u32>,
    /// Every group's key, `width` ids each.
    keys: Vec<u32>,
    /// The four metrics' sums, in units of [`UNITS_PER_CURRENCY`] (see [`units`]).
    sums: Vec<[i128; 4]>,
    line_items: Vec<u64>,
    /// `counted` presence counts per group, flat.
    presence: Vec<u64>,
    unreadable: Vec<u64>,
    /// `(group << 32) | resource string id`.
    resources: FxHashSet<u64>,
    /// The pass this worker scans for (`None` for the merged groups).
    pass: Option<Arc<Pass>>,
    /// The key hashes kept: `[lo, hi)` ([`display_hash`]); every row when the range is whole.
    lo: u64,
    hi: u64,
}

/// Key hashes are 63 bits: a pass keeps the groups whose hash is in `[lo, hi)`, `hi` at most this.
pub const HASH_END: u64 = 1 << 63;

/// One pass over the files: the key hashes it keeps, `[lo, hi)`. `hi` only comes down: when the
/// workers' groups pass `limit`, the worker that sees it lowers `hi` so about half of its groups stay,
/// and every worker drops the groups above it at its next batch (their rows are read again by a
/// later pass). Every row of a display key is in the same pass, since the hash is the key's.
struct Pass {
    lo: u64,
    hi: AtomicU64,
    /// Groups one worker may hold.
    limit: usize,
}

/// A 64-bit finaliser (MurmurHash3's `fmix64`): spreads the bits of a hash, so that ranges of hashes
/// share groups out evenly.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a group's display key (its slots, not the allocated flag), from its strings' text and
/// its day: the same in every worker and run, below [`HASH_END`].
fn display_hash(slots: &[Slot], hashes: &[u64], key: &[u32]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for (slot, &value) in slots.iter().zip(key) {
        let part = match slot {
            Slot::Day => mix(u64::from(value) ^ 0x1357_9bdf_2468_ace0),
            _ => hashes.get(value as usize).copied().unwrap_or(0),
        };
        h = (h ^ part)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    mix(h) >> 1
}

fn key_hash(key: &[u32]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

impl Groups {
    fn new(width: usize) -> Groups {
        Groups {
            strings: Strings::new(),
            batch: Strings::empty(),
            width,
            index: HashTable::new(),
            keys: Vec::new(),
            sums: Vec::new(),
            line_items: Vec::new(),
            presence: Vec::new(),
            unreadable: Vec::new(),
            resources: FxHashSet::default(),
            pass: None,
            lo: 0,
            hi: HASH_END,
        }
    }

    /// A worker's groups for `pass`, with the strings it has seen in earlier passes.
    fn for_pass(width: usize, pass: &Arc<Pass>, strings: Strings) -> Groups {
        let mut groups = Groups::new(width);
        groups.strings = strings;
        groups.lo = pass.lo;
        groups.hi = pass.hi.load(Ordering::Relaxed);
        groups.pass = Some(pass.clone());
        groups
    }

    /// Whether rows must be checked against the pass's range.
    fn filtering(&self) -> bool {
        self.lo > 0 || self.hi < HASH_END
    }

    /// After a batch: past the pass's limit, lowers the pass's `hi` to keep about half of this
    /// worker's groups; then drops the groups above the pass's `hi` when it came down.
    fn keep_to_pass(&mut self, plan: &Compiled) {
        let Some(pass) = self.pass.clone() else {
            return;
        };
        if self.len() > pass.limit {
            let mut hashes: Vec<u64> = (0..self.len())
                .map(|g| display_hash(&plan.slots, &self.strings.hashes, self.key(g)))
                .collect();
            let keep = (pass.limit / 2).max(1);
            let (_, &mut bound, _) = hashes.select_nth_unstable(keep);
            pass.hi.fetch_min(bound.max(self.lo + 1), Ordering::Relaxed);
        }
        let hi = pass.hi.load(Ordering::Relaxed);
        if hi < self.hi {
            self.hi = hi;
            self.compact(plan);
        }
    }

    /// Keeps only the groups whose key hash is in `[lo, hi)`.
    fn compact(&mut self, plan: &Compiled) {
        let counted = plan.counted.len();
        let mut kept = Groups::new(self.width);
        kept.lo = self.lo;
        kept.hi = self.hi;
        kept.pass = self.pass.take();
        let mut moved = vec![u32::MAX; self.len()];
        for (g, to) in moved.iter_mut().enumerate() {
            let key = self.key(g);
            let hash = display_hash(&plan.slots, &self.strings.hashes, key);
            if hash < kept.lo || hash >= kept.hi {
                continue;
            }
            let n = kept.group(key, counted);
            kept.sums[n] = self.sums[g];
            kept.line_items[n] = self.line_items[g];
            kept.presence[n * counted..(n + 1) * counted]
                .copy_from_slice(&self.presence[g * counted..(g + 1) * counted]);
            kept.unreadable[n] = self.unreadable[g];
            *to = n as u32;
        }
        for pair in &self.resources {
            let to = moved[(pair >> 32) as usize];
            if to != u32::MAX {
                kept.resources
                    .insert((u64::from(to) << 32) | (pair & 0xffff_ffff));
            }
        }
        kept.strings = std::mem::replace(&mut self.strings, Strings::empty());
        *self = kept;
    }

    /// The number of groups.
    pub(super) fn len(&self) -> usize {
        self.line_items.len()
    }

    /// Group `g`'s key.
    fn key(&self, g: usize) -> &[u32] {
        &self.keys[g * self.width..(g + 1) * self.width]
    }

    fn group(&mut self, key: &[u32], counted: usize) -> usize {
        let hash = key_hash(key);
        let width = self.width;
        let keys = &self.keys;
        let at = |g: u32| &keys[g as usize * width..(g as usize + 1) * width];
        if let Some(&g) = self.index.find(hash, |&g| at(g) == key) {
            return g as usize;
        }
        let g = self.len();
        self.index
            .insert_unique(hash, g as u32, |&g| key_hash(at(g)));
        self.keys.extend_from_slice(key);
        self.sums.push([0; 4]);
        self.line_items.push(0);
        self.presence.extend(std::iter::repeat_n(0, counted));
        self.unreadable.push(0);
        g
    }

    /// Adds one batch: `columns` are the plan's columns (`None` where the file lacks one).
    fn add_batch(
        &mut self,
        plan: &Compiled,
        columns: &[Option<ArrayRef>],
        rows: usize,
        place: &Place<'_>,
        raw: &[Option<String>],
    ) -> Result<(), EngineError> {
        let column = |i: usize| columns.get(i).and_then(Option::as_ref);
        let raw_name = |i: usize| {
            raw.get(i)
                .and_then(Option::as_deref)
                .unwrap_or_else(|| plan.names.get(i).map_or("?", String::as_str))
                .to_string()
        };
        let text_error = |i: usize| move |reason: String| place.column(&raw_name(i), reason);

        // Which rows the allocation keeps: the window, no split-cost rows, the accounts asked for.
        let days = if plan.needs_days() {
            days(column(plan.day), rows).map_err(|bad| place.cell(&raw_name(plan.day), bad))?
        } else {
            Vec::new()
        };
        let mut keep = vec![true; rows];
        if let Some((from, to)) = plan.window {
            for (keep, day) in keep.iter_mut().zip(&days) {
                *keep = *day != NO_DAY && *day >= from && *day < to;
            }
        }
        if let Some(operation) = plan.operation {
            let split = text_map(column(operation), rows, &mut |v: Option<&str>| {
                v.is_some_and(|op| SPLIT_COST_OPERATIONS.contains(&op))
            })
            .map_err(text_error(operation))?;
            for (keep, split) in keep.iter_mut().zip(split) {
                *keep &= !split;
            }
        }
        if !plan.accounts.is_empty() {
            let wanted = text_map(column(plan.account), rows, &mut |v: Option<&str>| {
                v.is_some_and(|a| plan.accounts.iter().any(|w| w == a))
            })
            .map_err(text_error(plan.account))?;
            for (keep, wanted) in keep.iter_mut().zip(wanted) {
                *keep &= wanted;
            }
        }
        let selected: Vec<usize> = (0..rows).filter(|&row| keep[row]).collect();
        if selected.is_empty() {
            return Ok(());
        }

        // Costs: every kept cell must be a plausible amount.
        let mut numbers_of: Vec<Option<Numbers>> = (0..plan.names.len()).map(|_| None).collect();
        for &c in &plan.cost_columns {
            let read = numbers(column(c), rows).map_err(|bad| place.cell(&raw_name(c), bad))?;
            if let Some(&row) = selected
                .iter()
                .find(|&&row| read.valid[row] && !is_plausible_cost(read.values[row]))
            {
                return Err(place.cell(
                    &raw_name(c),
                    BadCell {
                        row,
                        reason: format!(
                            "the cost {} is not a finite amount within ±{MAX_COST_MAGNITUDE:e}; kubecur adds up no such figure (fix or remove the line item)",
                            read.values[row]
                        ),
                    },
                ));
            }
            numbers_of[c] = Some(read);
        }
        let mut metrics = Vec::with_capacity(4);
        for metric in &plan.metrics {
            metrics.push(
                evaluate(metric, rows, &numbers_of, &column)
                    .map_err(|(c, reason)| place.column(&raw_name(c), reason))?,
            );
        }

        // Tags: each source's value as a string id of the batch (0: absent or blank), unreadable
        // cells marked.
        let mut local = std::mem::replace(&mut self.batch, Strings::empty());
        local.clear();
        let strings = &mut local;
        let mut source_ids: Vec<Vec<u32>> = vec![vec![BLANK; rows]; plan.sources.len()];
        let mut unreadable = vec![false; rows];
        for (s, source) in plan.sources.iter().enumerate() {
            if source.key.is_none() {
                source_ids[s] = text_map(column(source.column), rows, &mut |v: Option<&str>| {
                    nonblank(v).map_or(BLANK, |t| strings.intern(t))
                })
                .map_err(text_error(source.column))?;
            }
        }
        for &map in &plan.map_columns {
            let wanted: Vec<usize> = (0..plan.sources.len())
                .filter(|&s| plan.sources[s].column == map && plan.sources[s].key.is_some())
                .collect();
            let keys: Vec<&str> = wanted
                .iter()
                .filter_map(|&s| plan.sources[s].key.as_deref())
                .collect();
            let found = lookup_tags(column(map), rows, &keys, &mut |t: &str| strings.intern(t));
            for (mark, bad) in unreadable.iter_mut().zip(&found.unreadable) {
                *mark |= *bad;
            }
            for (s, ids) in wanted.into_iter().zip(found.ids) {
                source_ids[s] = ids;
            }
        }
        let concept_ids: Vec<Vec<u32>> = plan
            .concepts
            .iter()
            .map(|sources| {
                (0..rows)
                    .map(|row| {
                        sources
                            .iter()
                            .map(|&s| source_ids[s][row])
                            .find(|&id| id != BLANK)
                            .unwrap_or(UNALLOCATED_ID)
                    })
                    .collect()
            })
            .collect();
        let mut trimmed = |c: usize| {
            text_map(column(c), rows, &mut |v: Option<&str>| {
                nonblank(v).map_or(BLANK, |t| strings.intern(t))
            })
            .map_err(text_error(c))
        };
        let services = if plan.slots.contains(&Slot::Service) {
            trimmed(plan.service)?
        } else {
            Vec::new()
        };
        let accounts = if plan.slots.contains(&Slot::Account) {
            trimmed(plan.account)?
        } else {
            Vec::new()
        };
        let resources = match plan.resource {
            Some(c) => trimmed(c)?,
            None => Vec::new(),
        };
        // The listed ids' string ids in this worker (none read: they match nothing).
        let listed: Vec<u32> = if plan.slots.contains(&Slot::Resource) {
            plan.resource_keys
                .iter()
                .map(|r| strings.intern(r))
                .collect()
        } else {
            Vec::new()
        };

        // Group and add.
        let width = plan.slots.len() + 1;
        let counted = plan.counted.len();
        let mut key = vec![0u32; width];
        let filtering = self.filtering();
        // A batch id's id among the worker's strings, looked up once per batch (the two reserved ids
        // are the same in both).
        let mut remap = vec![u32::MAX; local.len()];
        let mut carry = |id: u32, strings: &mut Strings| -> u32 {
            if id <= UNALLOCATED_ID {
                return id;
            }
            match remap.get_mut(id as usize) {
                Some(slot) if *slot == u32::MAX => {
                    *slot = strings.intern(local.get(id));
                    *slot
                }
                Some(slot) => *slot,
                None => BLANK,
            }
        };
        for &row in &selected {
            for (slot, value) in plan.slots.iter().zip(key.iter_mut()) {
                *value = match slot {
                    Slot::Day => days[row] as u32,
                    Slot::Service => services[row],
                    Slot::Account => accounts[row],
                    Slot::Resource => resources
                        .get(row)
                        .copied()
                        .filter(|id| listed.contains(id))
                        .unwrap_or(BLANK),
                    Slot::Concept(c) => concept_ids[*c][row],
                };
            }
            if filtering {
                let hash = display_hash(&plan.slots, &local.hashes, &key);
                if hash < self.lo || hash >= self.hi {
                    continue;
                }
            }
            // The kept row's strings, from the batch's ids to this worker's.
            for (slot, value) in plan.slots.iter().zip(key.iter_mut()) {
                if *slot != Slot::Day {
                    *value = carry(*value, &mut self.strings);
                }
            }
            key[width - 1] = u32::from(concept_ids[plan.namespace][row] != UNALLOCATED_ID);
            let g = self.group(&key, counted);
            let sums = &mut self.sums[g];
            for (sum, metric) in sums.iter_mut().zip(&metrics) {
                *sum += units(metric[row]);
            }
            self.line_items[g] += 1;
            for (n, &s) in plan.counted.iter().enumerate() {
                self.presence[g * counted + n] += u64::from(source_ids[s][row] != BLANK);
            }
            self.unreadable[g] += u64::from(unreadable[row]);
            if let Some(&resource) = resources.get(row) {
                if resource != BLANK {
                    let resource = carry(resource, &mut self.strings);
                    self.resources
                        .insert(((g as u64) << 32) | u64::from(resource));
                }
            }
        }
        self.batch = local;
        self.keep_to_pass(plan);
        Ok(())
    }
}

/// A metric over every row of a batch, with SQL's semantics (as `kubecur_cost`); an error names the
/// column position that could not be read.
fn evaluate<'a>(
    expr: &CExpr,
    rows: usize,
    numbers: &[Option<Numbers>],
    column: &impl Fn(usize) -> Option<&'a ArrayRef>,
) -> Result<Vec<f64>, (usize, String)> {
    Ok(match expr {
        CExpr::Zero => vec![0.0; rows],
        CExpr::Cost(columns) => {
            let mut out = vec![0.0; rows];
            let mut filled = vec![false; rows];
            for &c in columns {
                let Some(read) = numbers.get(c).and_then(Option::as_ref) else {
                    continue;
                };
                for row in 0..rows {
                    if !filled[row] && read.valid[row] {
                        out[row] = read.values[row];
                        filled[row] = true;
                    }
                }
            }
            out
        }
        CExpr::Add(parts) => {
            let mut out = vec![0.0; rows];
            for part in parts {
                for (slot, value) in out.iter_mut().zip(evaluate(part, rows, numbers, column)?) {
                    *slot += value;
                }
            }
            out
        }
        CExpr::Sub(left, right) => {
            let mut out = evaluate(left, rows, numbers, column)?;
            for (slot, value) in out.iter_mut().zip(evaluate(right, rows, numbers, column)?) {
                *slot -= value;
            }
            out
        }
        CExpr::ByType {
            column: type_column,
            branches,
            otherwise,
        } => {
            // Per distinct type: the branches whose types include it, as bits.
            let masks = text_map(column(*type_column), rows, &mut |v: Option<&str>| {
                let Some(t) = v else { return 0u64 };
                branches
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.types.iter().any(|bt| bt == t))
                    .fold(0u64, |mask, (i, _)| mask | (1 << i))
            })
            .map_err(|reason| (*type_column, reason))?;
            let required = branches
                .iter()
                .map(|b| {
                    b.requires_non_empty
                        .map(|c| {
                            text_map(column(c), rows, &mut |v: Option<&str>| {
                                v.is_some_and(|s| !s.is_empty())
                            })
                            .map_err(|reason| (c, reason))
                        })
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let otherwise_index = branches.len();
            let choice: Vec<usize> = (0..rows)
                .map(|row| {
                    let mask = masks[row];
                    (0..branches.len())
                        .find(|&i| {
                            mask & (1 << i) != 0 && required[i].as_ref().is_none_or(|r| r[row])
                        })
                        .unwrap_or(otherwise_index)
                })
                .collect();
            let mut used = vec![false; branches.len() + 1];
            for &c in &choice {
                used[c] = true;
            }
            let mut values: Vec<Option<Vec<f64>>> = Vec::with_capacity(branches.len() + 1);
            for (i, then) in branches
                .iter()
                .map(|b| &b.then)
                .chain([otherwise.as_ref()])
                .enumerate()
            {
                values.push(if used[i] {
                    Some(evaluate(then, rows, numbers, column)?)
                } else {
                    None
                });
            }
            choice
                .iter()
                .enumerate()
                .map(|(row, &c)| values[c].as_ref().map_or(0.0, |v| v[row]))
                .collect()
        }
    })
}

/// A file prepared for the scan: the file's name of each plan column, and for Parquet the footer with
/// text columns asked for as dictionaries, the projection, and where each row group starts.
struct Prepared {
    raw: Vec<Option<String>>,
    parquet: Option<ParquetPlan>,
}

struct ParquetPlan {
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    row_group_starts: Vec<u64>,
}

fn prepare(plan: &Compiled, file: &NativeFile) -> Prepared {
    let raw: Vec<Option<String>> = plan
        .names
        .iter()
        .map(|name| file.raw_name(name).map(str::to_string))
        .collect();
    let parquet = match &file.encoding {
        Encoding::Csv { .. } => None,
        Encoding::Parquet(metadata) => {
            let schema = metadata.schema();
            let wanted: Vec<usize> = raw
                .iter()
                .flatten()
                .filter_map(|name| schema.index_of(name).ok())
                .collect();
            // Text columns (not costs, days or tag maps) as dictionaries: Parquet's dictionary pages
            // are then read as they are, and each value is interned once per batch.
            let text: Vec<&str> = plan
                .names
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    !plan.cost_columns.contains(i)
                        && *i != plan.day
                        && !plan.map_columns.contains(i)
                })
                .filter_map(|(i, _)| raw[i].as_deref())
                .collect();
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|field| {
                    if field.data_type() == &DataType::Utf8 && text.contains(&field.name().as_str())
                    {
                        field.as_ref().clone().with_data_type(DataType::Dictionary(
                            Box::new(DataType::Int32),
                            Box::new(DataType::Utf8),
                        ))
                    } else {
                        field.as_ref().clone()
                    }
                })
                .collect();
            let with_dictionaries = Schema::new_with_metadata(fields, schema.metadata().clone());
            let metadata = ArrowReaderMetadata::try_new(
                metadata.metadata().clone(),
                ArrowReaderOptions::new().with_schema(Arc::new(with_dictionaries)),
            )
            .unwrap_or_else(|error| {
                // Still correct, only slower: text is then interned per run of equal values.
                tracing::debug!(file = %file.name, %error, "Text columns not readable as dictionaries.");
                metadata.clone()
            });
            let mask = ProjectionMask::roots(metadata.parquet_schema(), wanted);
            let mut row_group_starts = Vec::new();
            let mut start = 0u64;
            for group in metadata.metadata().row_groups() {
                row_group_starts.push(start);
                start += u64::try_from(group.num_rows()).unwrap_or(0);
            }
            Some(ParquetPlan {
                metadata,
                mask,
                row_group_starts,
            })
        }
    };
    Prepared { raw, parquet }
}

/// The scan's inputs, owned so the scan can run on blocking threads.
pub struct Job {
    pub files: Arc<Vec<NativeFile>>,
    pub store: Arc<dyn ObjectStore>,
    pub local: bool,
    pub progress: Arc<dyn Progress>,
    pub threads: usize,
    pub runtime: tokio::runtime::Handle,
    /// Groups a pass may hold, every worker's together (an upper bound of the merged groups).
    pub group_limit: usize,
    /// The workers' strings, kept from pass to pass: a later pass finds the strings of its rows
    /// instead of adding them again (at millions of distinct strings, most of a pass's time).
    pub strings: StringPool,
}

/// Workers' [`Strings`] between passes.
#[derive(Default)]
pub struct StringPool(Mutex<Vec<Strings>>);

impl StringPool {
    fn take(&self) -> Strings {
        let taken = match self.0.lock() {
            Ok(mut pool) => pool.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        taken.unwrap_or_else(Strings::new)
    }

    fn give(&self, strings: Strings) {
        match self.0.lock() {
            Ok(mut pool) => pool.push(strings),
            Err(poisoned) => poisoned.into_inner().push(strings),
        }
    }
}

/// One piece of work: a Parquet row group, or a whole CSV file.
#[derive(Debug, Clone, Copy)]
struct Unit {
    file: usize,
    row_group: Option<usize>,
}

impl Job {
    /// Scans every file with `self.threads` workers for the groups whose key hash is in `[lo, hi)`
    /// and merges them. Past `self.group_limit` groups `hi` comes down ([`Pass`]): returns the groups
    /// and the `hi` they are complete to.
    pub fn run(&self, plan: &Compiled, lo: u64, hi: u64) -> Result<(Groups, u64), EngineError> {
        let prepared: Vec<Prepared> = self.files.iter().map(|f| prepare(plan, f)).collect();
        let mut units = Vec::new();
        for (file, p) in prepared.iter().enumerate() {
            match &p.parquet {
                Some(parquet) => units.extend((0..parquet.row_group_starts.len()).map(|g| Unit {
                    file,
                    row_group: Some(g),
                })),
                None => units.push(Unit {
                    file,
                    row_group: None,
                }),
            }
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let rows_read = AtomicU64::new(0);
        let errors: Mutex<Vec<(usize, EngineError)>> = Mutex::new(Vec::new());
        let workers = self.threads.min(units.len()).max(1);
        let pass = Arc::new(Pass {
            lo,
            hi: AtomicU64::new(hi),
            limit: (self.group_limit / workers).max(1),
        });
        let results: Vec<Groups> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let strings = self.strings.take();
                        let mut groups = Groups::for_pass(plan.slots.len() + 1, &pass, strings);
                        while !failed.load(Ordering::Relaxed) {
                            let at = next.fetch_add(1, Ordering::Relaxed);
                            let Some(unit) = units.get(at) else { break };
                            let outcome =
                                self.unit(plan, &prepared, *unit, &mut groups, &rows_read);
                            if let Err(error) = outcome {
                                failed.store(true, Ordering::Relaxed);
                                match errors.lock() {
                                    Ok(mut errors) => errors.push((at, error)),
                                    Err(poisoned) => poisoned.into_inner().push((at, error)),
                                }
                                break;
                            }
                        }
                        groups
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut errors = match errors.into_inner() {
            Ok(errors) => errors,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Units are handed out in file order: the first failing one is the one to report.
        errors.sort_by_key(|(at, _)| *at);
        if let Some((_, error)) = errors.into_iter().next() {
            return Err(error);
        }
        if results.len() != workers {
            return Err(EngineError::Execution {
                context: "scanning the CUR files".into(),
                source: "a scan thread panicked".into(),
            });
        }
        self.progress.rows_read(rows_read.load(Ordering::Relaxed));
        // A worker may have finished before another lowered `hi`.
        let hi = pass.hi.load(Ordering::Relaxed);
        let mut results = results;
        for groups in &mut results {
            if groups.hi > hi {
                groups.hi = hi;
                groups.compact(plan);
            }
        }
        Ok((merge(plan, results, &self.strings), hi))
    }

    fn unit(
        &self,
        plan: &Compiled,
        prepared: &[Prepared],
        unit: Unit,
        groups: &mut Groups,
        rows_read: &AtomicU64,
    ) -> Result<(), EngineError> {
        let file = &self.files[unit.file];
        let prepared = &prepared[unit.file];
        let mut report = |rows: usize| {
            let total = rows_read.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
            self.progress.rows_read(total);
        };
        match (&prepared.parquet, unit.row_group) {
            (Some(parquet), Some(row_group)) => {
                let unreadable = |e: &dyn std::fmt::Display| {
                    EngineError::Input(format!(
                        "cannot read `{}` row group {row_group}: {e}",
                        file.name
                    ))
                };
                let mut place = Place {
                    file,
                    row_group: Some(row_group),
                    first_row: parquet
                        .row_group_starts
                        .get(row_group)
                        .copied()
                        .unwrap_or(0),
                };
                let mut add = |batch: RecordBatch, place: &mut Place<'_>| {
                    let columns = batch_columns(&batch, &prepared.raw);
                    groups.add_batch(plan, &columns, batch.num_rows(), place, &prepared.raw)?;
                    place.first_row += batch.num_rows() as u64;
                    report(batch.num_rows());
                    Ok::<(), EngineError>(())
                };
                if self.local {
                    let path = local_path(&file.file)?;
                    let handle = std::fs::File::open(&path).map_err(|e| unreadable(&e))?;
                    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                        handle,
                        parquet.metadata.clone(),
                    )
                    .with_projection(parquet.mask.clone())
                    .with_row_groups(vec![row_group])
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| unreadable(&e))?;
                    for batch in reader {
                        add(batch.map_err(|e| unreadable(&e))?, &mut place)?;
                    }
                } else {
                    #[allow(deprecated)]
                    let reader = parquet::arrow::async_reader::ParquetObjectReader::new(
                        self.store.clone(),
                        file.file.meta.location.clone(),
                    )
                    .with_file_size(file.file.meta.size);
                    let mut stream =
                        parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder::new_with_metadata(
                            reader,
                            parquet.metadata.clone(),
                        )
                        .with_projection(parquet.mask.clone())
                        .with_row_groups(vec![row_group])
                        .with_batch_size(BATCH_ROWS)
                        .build()
                        .map_err(|e| unreadable(&e))?;
                    while let Some(batch) =
                        self.runtime.block_on(futures::StreamExt::next(&mut stream))
                    {
                        add(batch.map_err(|e| unreadable(&e))?, &mut place)?;
                    }
                }
                Ok(())
            }
            _ => self.csv(plan, file, prepared, groups, &mut report),
        }
    }

    fn csv(
        &self,
        plan: &Compiled,
        file: &NativeFile,
        prepared: &Prepared,
        groups: &mut Groups,
        report: &mut impl FnMut(usize),
    ) -> Result<(), EngineError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            EngineError::Input(format!("cannot read `{}`: {e}", file.name))
        };
        let gzip = matches!(file.encoding, Encoding::Csv { gzip: true });
        let bytes: Box<dyn std::io::Read> = if self.local {
            let path = local_path(&file.file)?;
            Box::new(std::fs::File::open(&path).map_err(|e| unreadable(&e))?)
        } else {
            let location = file.file.meta.location.clone();
            let data = self
                .runtime
                .block_on(async {
                    let got =
                        object_store::ObjectStoreExt::get(self.store.as_ref(), &location).await?;
                    got.bytes().await
                })
                .map_err(|e| EngineError::Storage {
                    context: format!("reading `{}`", file.name),
                    source: Box::new(e),
                })?;
            Box::new(std::io::Cursor::new(data))
        };
        let bytes: Box<dyn std::io::Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(bytes))
        } else {
            bytes
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(std::io::BufReader::with_capacity(1 << 20, bytes));
        let positions: Vec<Option<usize>> = plan.names.iter().map(|n| file.position(n)).collect();
        let wanted: Vec<(usize, usize)> = positions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| (i, p)))
            .collect();
        let mut builders: Vec<arrow_array::builder::StringBuilder> = wanted
            .iter()
            .map(|_| {
                arrow_array::builder::StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)
            })
            .collect();
        let mut place = Place {
            file,
            row_group: None,
            first_row: 0,
        };
        let mut record = csv::ByteRecord::new();
        let mut rows = 0usize;
        let mut flush = |builders: &mut Vec<arrow_array::builder::StringBuilder>,
                         rows: usize,
                         place: &mut Place<'_>|
         -> Result<(), EngineError> {
            if rows == 0 {
                return Ok(());
            }
            let mut columns: Vec<Option<ArrayRef>> = vec![None; plan.names.len()];
            for ((i, _), builder) in wanted.iter().zip(builders.iter_mut()) {
                columns[*i] = Some(Arc::new(builder.finish()) as ArrayRef);
            }
            groups.add_batch(plan, &columns, rows, place, &prepared.raw)?;
            place.first_row += rows as u64;
            report(rows);
            Ok(())
        };
        loop {
            let more = reader.read_byte_record(&mut record).map_err(|e| {
                EngineError::Input(format!(
                    "`{}` data row {}: {e}",
                    file.name,
                    place.first_row + rows as u64 + 1
                ))
            })?;
            if !more {
                break;
            }
            for ((i, position), builder) in wanted.iter().zip(builders.iter_mut()) {
                let field = record.get(*position).unwrap_or_default();
                let text = std::str::from_utf8(field).map_err(|_| {
                    EngineError::Input(format!(
                        "`{}` data row {}, column `{}`: not UTF-8 text",
                        file.name,
                        place.first_row + rows as u64 + 1,
                        plan.names[*i]
                    ))
                })?;
                builder.append_value(text);
            }
            rows += 1;
            if rows == BATCH_ROWS {
                flush(&mut builders, rows, &mut place)?;
                rows = 0;
            }
        }
        flush(&mut builders, rows, &mut place)
    }
}

/// The batch's array for each plan column (`None` where the file lacks it).
fn batch_columns(batch: &RecordBatch, raw: &[Option<String>]) -> Vec<Option<ArrayRef>> {
    let schema = batch.schema();
    raw.iter()
        .map(|name| {
            let name = name.as_deref()?;
            let at = schema.index_of(name).ok()?;
            Some(batch.column(at).clone())
        })
        .collect()
}

/// Merges the workers' groups into one set, each worker freed as soon as it is merged but its strings,
/// which go back to `pool`.
fn merge(plan: &Compiled, workers: Vec<Groups>, pool: &StringPool) -> Groups {
    let mut all = Groups::new(plan.slots.len() + 1);
    let counted = plan.counted.len();
    for mut worker in workers {
        // Only the strings of the groups kept are carried over (a worker has seen the strings of
        // every row of its files, most of them in other passes' groups).
        let mut remap: Vec<u32> = vec![u32::MAX; worker.strings.len()];
        let mut carry = |id: u32, all: &mut Groups| -> u32 {
            let Some(slot) = remap.get_mut(id as usize) else {
                return BLANK;
            };
            if *slot == u32::MAX {
                *slot = all.strings.intern(worker.strings.get(id));
            }
            *slot
        };
        let mut group_of = Vec::with_capacity(worker.len());
        let mut translated = vec![0u32; all.width];
        for g in 0..worker.len() {
            for (i, value) in worker.key(g).iter().enumerate() {
                translated[i] = match plan.slots.get(i) {
                    Some(Slot::Day) | None => *value,
                    Some(_) => carry(*value, &mut all),
                };
            }
            let to = all.group(&translated, counted);
            for (sum, add) in all.sums[to].iter_mut().zip(worker.sums[g]) {
                *sum += add;
            }
            all.line_items[to] += worker.line_items[g];
            for n in 0..counted {
                all.presence[to * counted + n] += worker.presence[g * counted + n];
            }
            all.unreadable[to] += worker.unreadable[g];
            group_of.push(to as u64);
        }
        for pair in &worker.resources {
            let (g, resource) = ((pair >> 32) as usize, (pair & 0xffff_ffff) as u32);
            if let Some(to) = group_of.get(g) {
                let id = carry(resource, &mut all);
                all.resources.insert((to << 32) | u64::from(id));
            }
        }
        pool.give(std::mem::replace(&mut worker.strings, Strings::empty()));
    }
    all
}

pub(super) fn sink_refused(reason: String) -> EngineError {
    EngineError::Execution {
        context: "reading the allocation result".into(),
        source: reason.into(),
    }
}

/// The merged groups in the order they are sent: by key (a stable order for people and tests; the SQL
/// engines return groups unordered), text keys as text, days by date (NULL first), then the allocated
/// flag. Built on the scan's blocking thread; [`emit`] then only builds and sends rows.
pub struct Sorted {
    all: Groups,
    order: Vec<u32>,
    /// Distinct resources per group.
    resources: Vec<u64>,
    /// Per group, its resources' hashes (when the plan asks for them).
    hashes: Vec<Vec<u64>>,
}

/// Counts each group's resources, frees what sending does not need (the key index and the resource
/// pairs: at millions of groups a large share of the peak) and sorts the group numbers.
pub fn sort(plan: &Compiled, mut all: Groups) -> Sorted {
    let groups = all.len();
    let mut resources = vec![0u64; groups];
    let mut hashes: Vec<Vec<u64>> = vec![Vec::new(); if plan.resource_ids { groups } else { 0 }];
    let mut hash_of: FxHashMap<u32, Option<u64>> = FxHashMap::default();
    for pair in &all.resources {
        let (g, resource) = ((pair >> 32) as usize, (pair & 0xffff_ffff) as u32);
        resources[g] += 1;
        if plan.resource_ids {
            let hash = *hash_of
                .entry(resource)
                .or_insert_with(|| resource_hash(all.strings.get(resource)));
            if let Some(hash) = hash {
                hashes[g].push(hash);
            }
        }
    }
    all.index = HashTable::new();
    all.resources = FxHashSet::default();
    let compare_keys = |a: &[u32], b: &[u32]| {
        plan.slots
            .iter()
            .zip(a.iter().zip(b))
            .map(|(slot, (&x, &y))| match slot {
                Slot::Day => (x as i32).cmp(&(y as i32)),
                _ => all.strings.get(x).cmp(all.strings.get(y)),
            })
            .find(|order| order.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.last().cmp(&b.last()))
    };
    let mut order: Vec<u32> = (0..groups as u32).collect();
    order.sort_unstable_by(|&a, &b| compare_keys(all.key(a as usize), all.key(b as usize)));
    Sorted {
        all,
        order,
        resources,
        hashes,
    }
}

/// The allocation query's columns, as the engine sends them.
pub fn columns(plan: &Compiled) -> Vec<String> {
    let mut columns: Vec<String> = plan.group_by.iter().map(|d| d.sql_alias()).collect();
    columns.push(ALLOCATED_COLUMN.into());
    columns.extend(CostMetric::ALL.iter().map(|m| m.sql_alias().to_string()));
    columns.push(
        if plan.resource_ids {
            RESOURCE_HASHES_COLUMN
        } else {
            RESOURCES_COLUMN
        }
        .into(),
    );
    columns.push(LINE_ITEMS_COLUMN.into());
    columns.extend((0..plan.counted.len()).map(|n| format!("{TAG_SOURCE_COLUMN_PREFIX}{n}")));
    if !plan.map_columns.is_empty() {
        columns.push(UNREADABLE_TAGS_COLUMN.into());
    }
    columns
}

/// Hands the sorted groups to `sink` as rows of the allocation query's result (after [`columns`]).
/// Each row's cells are built as it is sent, never the whole table.
pub fn emit(plan: &Compiled, sorted: Sorted, sink: &mut dyn ResultSink) -> Result<(), EngineError> {
    let Sorted {
        all,
        order,
        resources,
        mut hashes,
    } = sorted;
    let counted = plan.counted.len();
    let count_unreadable = !plan.map_columns.is_empty();
    let width = columns(plan).len();
    for g in order {
        let g = g as usize;
        let key = all.key(g);
        let mut row = Vec::with_capacity(width);
        row.extend(plan.slots.iter().zip(key).map(|(slot, &value)| match slot {
            Slot::Day => day_cell(value as i32),
            _ => Cell::Text(all.strings.get(value).to_string()),
        }));
        row.push(Cell::Integer(i64::from(key.last().copied().unwrap_or(0))));
        row.extend(all.sums[g].iter().map(|v| Cell::Number(amount(*v))));
        if plan.resource_ids {
            let mut set = std::mem::take(&mut hashes[g]);
            set.sort_unstable();
            set.dedup();
            row.push(if set.is_empty() {
                Cell::Null
            } else {
                Cell::Text(
                    set.iter()
                        .map(|h| format!("{h:016x}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            });
        } else {
            row.push(Cell::Integer(resources[g] as i64));
        }
        row.push(Cell::Integer(all.line_items[g] as i64));
        for n in 0..counted {
            row.push(Cell::Integer(all.presence[g * counted + n] as i64));
        }
        if count_unreadable {
            row.push(Cell::Integer(all.unreadable[g] as i64));
        }
        sink.row(row).map_err(sink_refused)?;
    }
    Ok(())
}

/// A day number as the SQL engines print a DATE; NULL for none.
fn day_cell(day: i32) -> Cell {
    if day == NO_DAY {
        return Cell::Null;
    }
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(day))))
        .map_or(Cell::Null, |d| Cell::Text(d.format("%Y-%m-%d").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_sums_do_not_depend_on_the_order_of_their_terms() {
        let terms = [0.1, 0.2, 0.3, -0.7, 2e-12];
        let forward = terms.iter().map(|&t| units(t)).sum::<i128>();
        let backward = terms.iter().rev().map(|&t| units(t)).sum::<i128>();
        assert_eq!(forward, backward);
        assert_eq!(amount(forward), -0.099_999_999_998);
        // As floats the same terms give two different sums.
        let float = |it: &mut dyn Iterator<Item = &f64>| it.fold(0.0, |a, b| a + b);
        assert_ne!(
            float(&mut terms.iter()).to_bits(),
            float(&mut terms.iter().rev()).to_bits()
        );
        assert_eq!(amount(units(6.89)), 6.89);
        assert_eq!(amount(units(-1e15)), -1e15);
        for cost in [1e7 + 0.25, 123_456.789_012, -98_765.43, 0.000_000_000_1] {
            assert_eq!(amount(units(cost)), cost, "{cost}");
        }
        assert_eq!(
            (units(0.5e-12), units(-0.5e-12), units(0.4e-12)),
            (1, -1, 0)
        );
    }

    #[test]
    fn days_print_as_dates_and_no_day_as_null() {
        assert_eq!(day_cell(19_875), Cell::Text("2024-06-01".into()));
        assert_eq!(day_cell(NO_DAY), Cell::Null);
    }

    #[test]
    fn parquet_text_columns_are_read_as_dictionaries_and_costs_stay_numbers() {
        use crate::adapters::files::{DataFile, FileKind};
        use crate::domain::columns::ColumnSet;
        use crate::domain::{AllocationRequest, Dimension};
        use arrow_array::{Array, Float64Array, StringArray, TimestampMillisecondArray};
        let rows = 3;
        let batch = RecordBatch::try_from_iter([
            (
                "line_item_usage_start_date",
                Arc::new(TimestampMillisecondArray::from(vec![
                    1_717_200_000_000;
                    rows
                ])) as ArrayRef,
            ),
            (
                "line_item_unblended_cost",
                Arc::new(Float64Array::from(vec![1.0; rows])) as ArrayRef,
            ),
            (
                "line_item_product_code",
                Arc::new(StringArray::from(vec![
                    "AmazonRDS",
                    "AmazonS3",
                    "AmazonRDS",
                ])) as ArrayRef,
            ),
            (
                "line_item_usage_account_id",
                Arc::new(StringArray::from(vec!["111122223333"; rows])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("part-00001.snappy.parquet");
        let file = std::fs::File::create(&path).expect("create");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let handle = std::fs::File::open(&path).expect("open");
        let metadata =
            ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new()).expect("footer");
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let native = NativeFile {
            file: DataFile {
                kind: FileKind::Parquet,
                url: format!("file://{}", path.display()),
                meta: object_store::ObjectMeta {
                    location: object_store::path::Path::from("part-00001.snappy.parquet"),
                    last_modified: Default::default(),
                    size: 0,
                    e_tag: None,
                    version: None,
                },
            },
            name: "part-00001.snappy.parquet".into(),
            encoding: Encoding::Parquet(metadata),
            canonical: names.iter().map(|n| (n.clone(), n.clone())).collect(),
        };
        let request = AllocationRequest {
            group_by: vec![Dimension::Service],
            ..AllocationRequest::default()
        };
        let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
        let compiled = Compiled::new(&plan).expect("compiles");
        let prepared = prepare(&compiled, &native);
        let parquet = prepared.parquet.expect("a Parquet plan");
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, parquet.metadata)
            .with_projection(parquet.mask)
            .build()
            .expect("reader");
        let read = reader
            .into_iter()
            .next()
            .expect("a batch")
            .expect("readable");
        let schema = read.schema();
        let type_of = |name: &str| {
            schema
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .expect("projected")
        };
        assert!(
            matches!(type_of("line_item_product_code"), DataType::Dictionary(..)),
            "{schema:?}"
        );
        assert_eq!(type_of("line_item_unblended_cost"), DataType::Float64);
        let columns = batch_columns(&read, &prepared.raw);
        assert!(columns
            .iter()
            .filter(|c| c.is_some())
            .all(|c| c.as_ref().is_some_and(|a| a.len() == rows)));
    }

    #[test]
    fn strings_reserve_blank_and_unallocated() {
        let mut strings = Strings::new();
        assert_eq!(strings.intern(""), BLANK);
        assert_eq!(strings.intern(UNALLOCATED), UNALLOCATED_ID);
        let id = strings.intern("payments");
        assert_eq!(strings.intern("payments"), id);
        assert_eq!(strings.get(id), "payments");
    }
}

//! A billing period's allocation as the pipeline stores and serves it: a *snapshot* of pre-aggregated
//! groups, each holding per-day figures, so any usage window inside the period is answered by summing
//! days, without a query engine. See `docs/dynamodb.md` for how the groups become DynamoDB items.

use super::allocation::{Allocation, AllocationRow, CostVector};
use super::dimension::Dimension;
use super::error::DomainError;
use super::flavour::Flavour;
use super::label::Label;
use super::named::named_enum;
use super::plan::Warning;
use super::resources::{ResourceSet, ResourceUnion, EXACT_LIMIT};
use super::window::{BillingPeriod, UsageWindow};
use super::UNALLOCATED;
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A pre-aggregated level of a snapshot. Requests are served from the coarsest level that holds every
/// dimension they group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// One group per namespace: the common request, kept small so it is one `Query` page.
    Namespace,
    /// One group per combination of every dimension but the day.
    Full,
}

named_enum!(Level { Namespace => "namespace", Full => "full" } parse: exact);

impl Level {
    /// The group key dimensions of this level, in key order.
    pub fn dimensions(self) -> &'static [Dimension] {
        match self {
            Level::Namespace => &[Dimension::Namespace],
            // Every dimension but the day, which is the per-group axis ([`Dimension::ALL`] starts with it).
            Level::Full => &Dimension::ALL[1..],
        }
    }

    /// The coarsest level holding every one of `dimensions` (the day is in every level).
    pub fn serving(dimensions: &[Dimension]) -> Level {
        if dimensions
            .iter()
            .all(|d| matches!(d, Dimension::Day | Dimension::Namespace))
        {
            Level::Namespace
        } else {
            Level::Full
        }
    }
}

/// One day of one group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DayFigures {
    pub costs: CostVector,
    pub line_items: u64,
    /// The resources seen that day (hashes of their ids; a sketch for very large groups), so that
    /// any window and regrouping counts each resource once.
    pub resources: ResourceSet,
}

/// One group of one level: its key, whether it carries a namespace tag, and its figures per usage day.
///
/// The days are fixed at construction ([`SnapshotGroup::new`]): the figures of all days together
/// ([`SnapshotGroup::all_days`]), which a window covering the whole period asks for, are summed once
/// per group and kept, so a store that keeps its groups (`kubecur serve`) answers the common request,
/// a month, without touching each day again.
#[derive(Debug, Clone)]
pub struct SnapshotGroup {
    pub level: Level,
    /// Values aligned with the level's dimensions, then its extra keys'.
    pub keys: Vec<String>,
    /// The extra keys a full-level group is also keyed by, after the level's dimensions: the labels
    /// (`KUBECUR_LABELS`), then [`Dimension::Resource`] when the run keyed resource ids (share rules
    /// select them); shared by every group of a snapshot.
    extras: Arc<[Dimension]>,
    pub allocated: bool,
    days: BTreeMap<NaiveDate, DayFigures>,
    /// The first and last day (kept: every request asks).
    span: Option<(NaiveDate, NaiveDate)>,
    all_days: std::sync::OnceLock<DayFigures>,
}

/// Equal keys and days (the kept sum follows from the days).
impl PartialEq for SnapshotGroup {
    fn eq(&self, other: &SnapshotGroup) -> bool {
        (
            self.level,
            &self.keys,
            &self.extras,
            self.allocated,
            &self.days,
        ) == (
            other.level,
            &other.keys,
            &other.extras,
            other.allocated,
            &other.days,
        )
    }
}

impl SnapshotGroup {
    pub fn new(
        level: Level,
        keys: Vec<String>,
        allocated: bool,
        days: BTreeMap<NaiveDate, DayFigures>,
    ) -> SnapshotGroup {
        let span = days.keys().next().zip(days.keys().next_back());
        SnapshotGroup {
            level,
            keys,
            extras: Arc::from(Vec::new()),
            allocated,
            span: span.map(|(first, last)| (*first, *last)),
            days,
            all_days: std::sync::OnceLock::new(),
        }
    }

    /// The same group keyed also by `extras` (labels, the resource; its keys must end with their
    /// values).
    pub fn with_extras(mut self, extras: Arc<[Dimension]>) -> SnapshotGroup {
        self.extras = extras;
        self
    }

    /// The extra keys the group is keyed by after its level's dimensions.
    pub fn extras(&self) -> &[Dimension] {
        &self.extras
    }

    /// Where `dimension`'s value is in [`SnapshotGroup::keys`], if the group is keyed by it.
    pub fn key_at(&self, dimension: Dimension) -> Option<usize> {
        let fixed = self.level.dimensions();
        match dimension {
            Dimension::Label(_) | Dimension::Resource => self
                .extras
                .iter()
                .position(|e| *e == dimension)
                .map(|p| fixed.len() + p),
            other => fixed.iter().position(|d| *d == other),
        }
    }

    /// The group's value of `dimension`: its key, or `__unallocated__` for a label the snapshot was
    /// computed without (before it was configured: its cost carries no known value), `''` for the
    /// resource when the run keyed none (as for a resource no rule names); `None` for a dimension the
    /// level does not hold.
    pub fn value(&self, dimension: Dimension) -> Option<&str> {
        match (self.key_at(dimension), dimension) {
            (Some(at), _) => Some(self.keys[at].as_str()),
            (None, Dimension::Label(_)) => Some(UNALLOCATED),
            (None, Dimension::Resource) => Some(""),
            (None, _) => None,
        }
    }

    /// The figures per usage day, in day order.
    pub fn days(&self) -> &BTreeMap<NaiveDate, DayFigures> {
        &self.days
    }

    /// Every day's figures summed (in day order) and their resources merged; computed on first use.
    pub fn all_days(&self) -> &DayFigures {
        self.all_days.get_or_init(|| {
            let mut costs = CostVector::default();
            let mut line_items = 0;
            let mut resources = ResourceUnion::default();
            for figures in self.days.values() {
                costs.add(&figures.costs);
                line_items += figures.line_items;
                resources.add(&figures.resources);
            }
            DayFigures {
                costs,
                line_items,
                resources: resources.finish(),
            }
        })
    }

    /// Whether `window` holds every day of the group.
    fn within(&self, window: UsageWindow) -> bool {
        self.span
            .is_none_or(|(first, last)| first >= window.from() && last < window.to())
    }
    /// A fixed-length identity of the group within its level (32 hex digits): tag values are free text
    /// and a full-level key can exceed DynamoDB's 1,024-byte sort key limit, so the key is hashed
    /// (FNV-1a, 128 bit) and stored in full beside it.
    pub fn id(&self) -> String {
        let mut hash = Fnv128::new();
        hash.write(&[u8::from(self.allocated)]);
        for key in &self.keys {
            hash.write(&(key.len() as u64).to_le_bytes());
            hash.write(key.as_bytes());
        }
        format!("{:032x}", hash.finish())
    }
}

/// FNV-1a (64 bit) for the request-local maps of [`answer`]: their keys come from the snapshot (the
/// operator's billing data), not from the request, and SipHash costs more than the lookup itself.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf29ce484222325)
    }
}

impl std::hash::Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }
}

type BuildFnv = std::hash::BuildHasherDefault<Fnv64>;

/// FNV-1a with 128-bit state: a stable, dependency-free hash for identities (not for security).
pub struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    pub fn new() -> Fnv128 {
        Fnv128(Self::OFFSET)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    pub fn finish(&self) -> u128 {
        self.0
    }
}

impl Default for Fnv128 {
    fn default() -> Self {
        Fnv128::new()
    }
}

/// What a snapshot is: the metadata the billing period's pointer carries, served by `GET /status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    pub period: BillingPeriod,
    /// Orders snapshots of one period: a newer delivery has a larger version.
    pub version: i64,
    /// The run that computed it (report, period, delivery identity).
    pub run_id: String,
    /// The delivery it was computed from: manifest `executionId` or status object ETag.
    pub source: String,
    pub flavour: Flavour,
    /// RFC 3339.
    pub computed_at: String,
    pub line_items: u64,
    /// Groups per level, in [`Level::ALL`] order: readers check they got them all.
    pub groups: Vec<u64>,
    /// The labels (`KUBECUR_LABELS` when it ran) the full level is also keyed by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// The resource ids (those the share rules selected when it ran) the full level is also keyed by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    pub warnings: Vec<Warning>,
}

impl SnapshotInfo {
    /// Tag columns the data lacks, from the warnings (what `GET /status` calls missing tag columns).
    pub fn missing_tags(&self) -> Vec<String> {
        self.warnings
            .iter()
            .filter_map(|w| match w {
                Warning::TagMissing { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// Describes the snapshot made of `groups`, built from `allocation` (one billing period).
    /// `resources` are the ids the allocation keyed ([`super::plan::AllocationRequest::resources`]).
    pub fn describe(
        allocation: &Allocation,
        resources: &[String],
        groups: &[SnapshotGroup],
        origin: SnapshotOrigin,
    ) -> SnapshotInfo {
        SnapshotInfo::describe_parts(
            allocation.flavour,
            allocation.warnings.clone(),
            (&allocation.group_by, resources),
            groups,
            origin,
        )
    }

    /// Describes the snapshot made of `groups`, from what the allocation was and warned about (the
    /// writer streams the result: it never holds the allocation's rows).
    /// `keyed` is the allocation's keys and the resource ids it keyed.
    pub fn describe_parts(
        flavour: Flavour,
        warnings: Vec<Warning>,
        keyed: (&[Dimension], &[String]),
        groups: &[SnapshotGroup],
        origin: SnapshotOrigin,
    ) -> SnapshotInfo {
        let (group_by, resources) = keyed;
        // Every line item is in exactly one group of each level.
        let line_items = groups
            .iter()
            .filter(|g| g.level == Level::Namespace)
            .flat_map(|g| g.days().values())
            .map(|d| d.line_items)
            .sum();
        SnapshotInfo {
            period: origin.period,
            version: origin.version,
            run_id: origin.run_id,
            source: origin.source,
            flavour,
            computed_at: origin.computed_at,
            line_items,
            groups: Level::ALL
                .iter()
                .map(|l| groups.iter().filter(|g| g.level == *l).count() as u64)
                .collect(),
            labels: labels_of(group_by),
            resources: if group_by.contains(&Dimension::Resource) {
                resources.to_vec()
            } else {
                Vec::new()
            },
            warnings,
        }
    }

    /// The extra keys the full level's groups carry after its dimensions (see [`SnapshotGroup`]).
    pub fn extras(&self) -> Vec<Dimension> {
        extras(self.labels.iter().copied(), !self.resources.is_empty())
    }

    pub fn expected_groups(&self, level: Level) -> u64 {
        let at = Level::ALL.iter().position(|l| *l == level).unwrap_or(0);
        self.groups.get(at).copied().unwrap_or(0)
    }
}

/// What publishing a snapshot of version `candidate` does to a pointer serving `serving`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerDecision {
    /// The candidate is newer (or nothing serves): it becomes the serving snapshot.
    Flip,
    /// The candidate already serves (a rerun after the flip).
    AlreadyServing,
    /// A newer version serves; the candidate must not.
    KeepNewer(i64),
}

/// The one rule of publishing: only a newer version replaces the serving snapshot, whatever order
/// runs finish in. Every store decides with it (DynamoDB renders it as its condition expression
/// `attribute_not_exists(version) OR version < :version` and classifies a refusal with it).
pub fn newer_wins(serving: Option<i64>, candidate: i64) -> PointerDecision {
    match serving {
        None => PointerDecision::Flip,
        Some(v) if v < candidate => PointerDecision::Flip,
        Some(v) if v == candidate => PointerDecision::AlreadyServing,
        Some(v) => PointerDecision::KeepNewer(v),
    }
}

/// Where a snapshot comes from: the fields of [`SnapshotInfo`] an allocation cannot tell.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotOrigin {
    pub period: BillingPeriod,
    pub version: i64,
    pub run_id: String,
    pub source: String,
    pub computed_at: String,
}

fn day_position(full: &Allocation) -> Result<usize, DomainError> {
    full.group_by
        .iter()
        .position(|d| *d == Dimension::Day)
        .ok_or_else(|| DomainError::InvalidWindow {
            what: "allocation result",
            given: format!("{:?}", full.group_by),
            reason: "splitting by billing period needs the day".into(),
        })
}

/// The rows of a full-grain allocation whose line items have no usage date (an empty day key: the CUR
/// cell was empty or NULL). Their line items and costs, for the warning.
pub fn undated(full: &Allocation) -> Result<(u64, CostVector), DomainError> {
    let day_at = day_position(full)?;
    let mut line_items = 0;
    let mut costs = CostVector::default();
    for row in full
        .rows
        .iter()
        .filter(|r| r.keys[day_at].trim().is_empty())
    {
        line_items += row.line_items;
        for (sum, value) in costs.0.iter_mut().zip(row.costs.0) {
            *sum += value;
        }
    }
    Ok((line_items, costs))
}

/// Splits a full-grain allocation (day included) into one allocation per billing period.
///
/// Line items without a usage date belong to no day, hence to no period: they are left out and every
/// period carries [`Warning::UndatedLineItems`] with their count ([`undated`] gives their cost), rather
/// than one bad line item stopping the whole split. A day that is present but malformed is an error.
pub fn split_by_period(
    full: &Allocation,
) -> Result<BTreeMap<BillingPeriod, Allocation>, DomainError> {
    let day_at = day_position(full)?;
    let mut out: BTreeMap<BillingPeriod, Allocation> = BTreeMap::new();
    for row in &full.rows {
        if row.keys[day_at].trim().is_empty() {
            continue;
        }
        let day = UsageWindow::parse_day("usage day", &row.keys[day_at])?;
        out.entry(BillingPeriod::of(day))
            .or_insert_with(|| full.clone_without_rows())
            .rows
            .push(row.clone());
    }
    let (line_items, _) = undated(full)?;
    if line_items > 0 {
        for allocation in out.values_mut() {
            allocation
                .warnings
                .push(Warning::UndatedLineItems { line_items });
        }
    }
    Ok(out)
}

/// The labels among `dimensions`, in order.
pub fn labels_of(dimensions: &[Dimension]) -> Vec<Label> {
    dimensions.iter().filter_map(|d| d.label()).collect()
}

/// The extra keys among `dimensions` (beyond [`Dimension::ALL`]): the labels in order, then the
/// resource. A snapshot's full level is keyed by them after its fixed dimensions.
pub fn extras_of(dimensions: &[Dimension]) -> Vec<Dimension> {
    extras(
        labels_of(dimensions),
        dimensions.contains(&Dimension::Resource),
    )
}

/// The one order of the extra keys: the labels, then the resource when there is one.
fn extras(labels: impl IntoIterator<Item = Label>, resource: bool) -> Vec<Dimension> {
    labels
        .into_iter()
        .map(Dimension::Label)
        .chain(resource.then_some(Dimension::Resource))
        .collect()
}

/// Builds every level's groups from a full-grain allocation (grouped by [`Dimension::ALL`], day included).
pub fn build_snapshot(full: &Allocation) -> Result<Vec<SnapshotGroup>, DomainError> {
    let mut builder = SnapshotBuilder::new(&full.group_by)?;
    for row in &full.rows {
        builder.add(row.clone())?;
    }
    Ok(builder.finish())
}

/// Builds a snapshot's groups from full-grain rows (grouped by [`Dimension::ALL`], day included) given
/// one at a time, so that the writer never holds the whole query result: only the full level is kept,
/// one figure per group and day, and the coarser levels are summed from it at the end.
///
/// Rows may come in any order (the engine's output is unordered): the full level is keyed by the rows'
/// keys, and the coarser levels sum it in key order, so the same data always gives bit-identical
/// snapshots.
#[derive(Debug)]
pub struct SnapshotBuilder {
    day_at: usize,
    /// Where each of [`Level::Full`]'s dimensions, then each extra key, is in a row's keys.
    full_at: Vec<usize>,
    extras: Arc<[Dimension]>,
    full: BTreeMap<(Vec<String>, bool), BTreeMap<NaiveDate, DayFigures>>,
}

impl SnapshotBuilder {
    /// A builder for rows grouped by `group_by`, which must hold every dimension (the full grain).
    pub fn new(group_by: &[Dimension]) -> Result<SnapshotBuilder, DomainError> {
        let extras = extras_of(group_by);
        let position = |d: Dimension| {
            group_by
                .iter()
                .position(|g| *g == d)
                .ok_or_else(|| DomainError::InvalidWindow {
                    what: "allocation result",
                    given: format!("{group_by:?}"),
                    reason: format!("a snapshot needs the full grain; `{d}` is missing"),
                })
        };
        Ok(SnapshotBuilder {
            day_at: position(Dimension::Day)?,
            full_at: Level::Full
                .dimensions()
                .iter()
                .copied()
                .chain(extras.iter().copied())
                .map(position)
                .collect::<Result<_, _>>()?,
            extras: extras.into(),
            full: BTreeMap::new(),
        })
    }

    /// Adds one row, taking its keys and resources (the writer calls this once per result row).
    /// Errors when its day is not a date or it lacks its resource ids.
    pub fn add(&mut self, mut row: AllocationRow) -> Result<(), DomainError> {
        let day = UsageWindow::parse_day("usage day", &row.keys[self.day_at])?;
        let resources = match row.resource_ids.take() {
            Some(set) => set,
            None if row.resources == 0 => ResourceSet::default(),
            None => return Err(DomainError::InvalidWindow {
                what: "allocation result",
                given: row.keys.join("/"),
                reason:
                    "a snapshot needs each group's resource ids (AllocationRequest::resource_ids)"
                        .into(),
            }),
        };
        let keys = self
            .full_at
            .iter()
            .map(|&p| std::mem::take(&mut row.keys[p]))
            .collect();
        let days = self.full.entry((keys, row.allocated)).or_default();
        match days.entry(day) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(DayFigures {
                    costs: row.costs,
                    line_items: row.line_items,
                    resources,
                });
            }
            // Two rows of one group and day (not from one GROUP BY; summed all the same).
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let figures = slot.get_mut();
                figures.costs.add(&row.costs);
                figures.line_items += row.line_items;
                figures.resources.union(&resources);
            }
        }
        Ok(())
    }

    /// Full-level groups so far (what the snapshot's memory grows with).
    pub fn full_groups(&self) -> usize {
        self.full.len()
    }

    /// Every level's groups, coarsest level first, each level in key order.
    pub fn finish(self) -> Vec<SnapshotGroup> {
        let mut out = Vec::new();
        for level in Level::ALL.into_iter().filter(|l| *l != Level::Full) {
            let full_dims = Level::Full.dimensions();
            let at: Vec<usize> = level
                .dimensions()
                .iter()
                .filter_map(|d| full_dims.iter().position(|f| f == d))
                .collect();
            // Each day's resources are collected and sorted once, when the group is complete.
            type Day<'r> = (CostVector, u64, ResourceUnion<'r>);
            let mut groups: BTreeMap<(Vec<&str>, bool), BTreeMap<NaiveDate, Day>> = BTreeMap::new();
            for ((keys, allocated), days) in &self.full {
                let group = groups
                    .entry((at.iter().map(|&p| keys[p].as_str()).collect(), *allocated))
                    .or_default();
                for (day, figures) in days {
                    let sum = group.entry(*day).or_default();
                    sum.0.add(&figures.costs);
                    sum.1 += figures.line_items;
                    sum.2.add(&figures.resources);
                }
            }
            out.extend(groups.into_iter().map(|((keys, allocated), days)| {
                let days = days
                    .into_iter()
                    .map(|(day, (costs, line_items, resources))| {
                        let figures = DayFigures {
                            costs,
                            line_items,
                            resources: resources.finish(),
                        };
                        (day, figures)
                    })
                    .collect();
                group(
                    level,
                    keys.into_iter().map(str::to_string).collect(),
                    allocated,
                    days,
                )
            }));
        }
        for ((keys, allocated), days) in self.full {
            out.push(group(Level::Full, keys, allocated, days).with_extras(self.extras.clone()));
        }
        out
    }
}

fn group(
    level: Level,
    keys: Vec<String>,
    allocated: bool,
    mut days: BTreeMap<NaiveDate, DayFigures>,
) -> SnapshotGroup {
    bound_resources(&mut days);
    SnapshotGroup::new(level, keys, allocated, days)
}

/// A group with more than [`EXACT_LIMIT`] distinct resources over the period keeps a sketch per day
/// instead of the hashes, so its item stays within DynamoDB's size limit (`docs/dynamodb.md`).
fn bound_resources(days: &mut BTreeMap<NaiveDate, DayFigures>) {
    let mut all = ResourceUnion::default();
    for figures in days.values() {
        all.add(&figures.resources);
    }
    if all.finish().len() > EXACT_LIMIT as u64 {
        for figures in days.values_mut() {
            figures.resources = figures.resources.to_sketch();
        }
    }
}

/// Answers a request from one level's groups: days inside `window`, regrouped to `group_by` (each
/// dimension must be the day or one of the level's), kept when `keep` accepts the group.
///
/// `resources` of a row is the number of distinct resources in the window over every group merged into
/// it (the union of the days' sets), as the allocation query counts them; the set is kept on the row so
/// that [`Allocation::display_rows`] can merge further.
///
/// This is the work of every API request, so it borrows: a group's keys are looked up once (not once
/// per day) as `&str`, and each row's resources are collected and sorted once ([`ResourceUnion`]).
/// Sums still run in the order the groups come in; rows come out sorted by keys, then the flag.
pub fn answer<'a>(
    groups: impl IntoIterator<Item = &'a SnapshotGroup>,
    window: UsageWindow,
    group_by: &[Dimension],
    keep: impl Fn(&SnapshotGroup) -> bool,
    flavour: Flavour,
    warnings: Vec<Warning>,
) -> Allocation {
    #[derive(Default)]
    struct Merged<'r> {
        costs: CostVector,
        line_items: u64,
        resources: ResourceUnion<'r>,
    }
    let by_day = group_by.contains(&Dimension::Day);
    // A row's keys but the day (left empty), and the flag → its figures per day (`None` without a day).
    type Slot<'a> = (
        (Vec<&'a str>, bool),
        BTreeMap<Option<NaiveDate>, Merged<'a>>,
    );
    let mut slots: Vec<Slot<'a>> = Vec::new();
    let mut index: HashMap<(Vec<&'a str>, bool), usize, BuildFnv> = HashMap::default();
    for group in groups.into_iter().filter(|g| keep(g)) {
        // A window over every day of the group, not split by day, takes the group's kept sum.
        let whole = !by_day && group.within(window);
        let mut days = group.days.range(window.from()..window.to()).peekable();
        if days.peek().is_none() {
            continue;
        }
        // The day is filled in per day below; a label the snapshot lacks is `__unallocated__`
        // ([`SnapshotGroup::value`]; the caller warns).
        let keys: Vec<&'a str> = group_by
            .iter()
            .map(|d| group.value(*d).unwrap_or(""))
            .collect();
        let at = *index
            .entry((keys, group.allocated))
            .or_insert_with_key(|key| {
                slots.push((key.clone(), BTreeMap::new()));
                slots.len() - 1
            });
        let per_day = &mut slots[at].1;
        let mut add = |day: Option<NaiveDate>, figures: &'a DayFigures| {
            let merged = per_day.entry(day).or_default();
            merged.costs.add(&figures.costs);
            merged.line_items += figures.line_items;
            merged.resources.add(&figures.resources);
        };
        if whole {
            add(None, group.all_days());
        } else {
            for (day, figures) in days {
                add(by_day.then_some(*day), figures);
            }
        }
    }
    let mut rows = Vec::new();
    for ((keys, allocated), per_day) in slots {
        for (day, merged) in per_day {
            let resources = merged.resources.finish();
            rows.push(AllocationRow {
                keys: group_by
                    .iter()
                    .zip(&keys)
                    .map(|(d, key)| match (d, day) {
                        (Dimension::Day, Some(day)) => day.to_string(),
                        _ => key.to_string(),
                    })
                    .collect(),
                allocated,
                costs: merged.costs,
                shared: Default::default(),
                resources: resources.len(),
                resource_ids: Some(resources),
                line_items: merged.line_items,
            });
        }
    }
    rows.sort_by(|a, b| (&a.keys, a.allocated).cmp(&(&b.keys, b.allocated)));
    Allocation {
        flavour,
        window: Some(window),
        group_by: group_by.to_vec(),
        rows,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(keys: [&str; 9], allocated: bool, cost: f64, resources: &[u64]) -> AllocationRow {
        AllocationRow {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            allocated,
            costs: CostVector([cost, cost, cost, cost]),
            shared: Default::default(),
            resources: resources.len() as u64,
            resource_ids: Some(ResourceSet::from_hashes(resources.iter().copied())),
            line_items: 2,
        }
    }

    fn full() -> Allocation {
        let u = crate::domain::UNALLOCATED;
        Allocation {
            flavour: Flavour::Cur2,
            window: None,
            group_by: Dimension::ALL.to_vec(),
            rows: vec![
                row(
                    ["2024-06-01", "c", "a", "web", u, u, u, "AmazonRDS", "1"],
                    true,
                    1.25,
                    &[1],
                ),
                row(
                    ["2024-06-02", "c", "a", "web", u, u, u, "AmazonRDS", "1"],
                    true,
                    2.5,
                    &[1],
                ),
                row(
                    ["2024-06-02", "c", "a", "api", u, u, u, "AmazonS3", "1"],
                    true,
                    0.25,
                    // Resource 1 is also in the `web` group that day (e.g. its data transfer).
                    &[1, 2],
                ),
                row(
                    ["2024-06-30", u, u, u, u, u, u, "AmazonEC2", "1"],
                    false,
                    10.0,
                    &[3, 4, 5],
                ),
            ],
            warnings: vec![],
        }
    }

    #[test]
    fn levels_hold_the_same_total_per_day() {
        let groups = build_snapshot(&full()).expect("full grain");
        for level in Level::ALL {
            let total: f64 = groups
                .iter()
                .filter(|g| g.level == level)
                .flat_map(|g| g.days.values())
                .map(|d| d.costs.0[0])
                .sum();
            assert_eq!(total, 14.0, "{level:?}");
        }
        let namespaces: Vec<_> = groups
            .iter()
            .filter(|g| g.level == Level::Namespace)
            .map(|g| (g.keys.clone(), g.allocated, g.days.len()))
            .collect();
        assert_eq!(
            namespaces,
            vec![
                (vec!["__unallocated__".to_string()], false, 1),
                (vec!["a".to_string()], true, 2)
            ]
        );
    }

    #[test]
    fn answer_sums_only_days_inside_the_window() {
        let groups = build_snapshot(&full()).expect("full grain");
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 6, d).expect("valid");
        let window = UsageWindow::new(day(2), day(30)).expect("window");
        let out = answer(
            &groups,
            window,
            &[Dimension::Namespace],
            |g| g.level == Level::Namespace,
            Flavour::Cur2,
            vec![],
        );
        assert_eq!(out.rows.len(), 1, "{out:?}");
        assert_eq!(out.rows[0].costs.0[0], 2.75);
        assert_eq!(out.rows[0].line_items, 4);
    }

    /// A window over a group's every day takes its kept sum ([`SnapshotGroup::all_days`]); it must
    /// answer exactly what summing the days one by one answers.
    #[test]
    fn a_whole_period_window_answers_as_its_days_summed() {
        let groups = build_snapshot(&full()).expect("full grain");
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 6, d).expect("valid");
        for window in [
            UsageWindow::new(day(1), day(30)).expect("window"),
            UsageWindow::new(day(1), NaiveDate::from_ymd_opt(2024, 7, 1).expect("valid"))
                .expect("window"),
        ] {
            for (level, by) in [
                (Level::Namespace, Dimension::Namespace),
                (Level::Full, Dimension::Service),
            ] {
                let keep = |g: &SnapshotGroup| g.level == level;
                let whole = answer(&groups, window, &[by], keep, Flavour::Cur2, vec![]);
                let by_day = answer(
                    &groups,
                    window,
                    &[Dimension::Day, by],
                    keep,
                    Flavour::Cur2,
                    vec![],
                )
                .regroup(&[by])
                .expect("regroupable");
                assert_eq!(whole.rows, by_day.rows, "{window:?} {level:?}");
            }
        }
        // The kept sum is the days' sum.
        let group = &groups[0];
        let mut costs = CostVector::default();
        for figures in group.days().values() {
            costs.add(&figures.costs);
        }
        assert_eq!(group.all_days().costs, costs);
    }

    /// The case: a resource in two full-grain groups on one day was counted twice.
    #[test]
    fn resources_are_distinct_over_the_window_and_the_merged_groups() {
        let groups = build_snapshot(&full()).expect("full grain");
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 6, d).expect("valid");
        for (from, to, level, expected) in [
            (2, 3, Level::Namespace, 2),
            (2, 3, Level::Full, 2),
            (1, 30, Level::Namespace, 2),
            (1, 2, Level::Full, 1),
        ] {
            let window = UsageWindow::new(day(from), day(to)).expect("window");
            let out = answer(
                &groups,
                window,
                &[Dimension::Namespace],
                |g| g.level == level && g.allocated,
                Flavour::Cur2,
                vec![],
            );
            assert_eq!(out.rows.len(), 1, "{out:?}");
            assert_eq!(out.rows[0].resources, expected, "{from}..{to} {level:?}");
        }
        // By service, one row per service: RDS holds resource 1 on two days, S3 resources 1 and 2.
        let window = UsageWindow::new(day(1), day(30)).expect("window");
        let by_service = answer(
            &groups,
            window,
            &[Dimension::Service],
            |g| g.level == Level::Full,
            Flavour::Cur2,
            vec![],
        );
        let counts: Vec<_> = by_service
            .rows
            .iter()
            .map(|r| (r.keys[0].as_str(), r.resources))
            .collect();
        assert_eq!(counts, [("AmazonRDS", 1), ("AmazonS3", 2)]);
    }

    #[test]
    fn a_group_with_too_many_resources_keeps_sketches_that_still_merge() {
        let u = crate::domain::UNALLOCATED;
        let many: Vec<u64> = (0..(EXACT_LIMIT as u64 + 1))
            .filter_map(|i| crate::domain::resources::resource_hash(&format!("i-{i}")))
            .collect();
        let mut big = full();
        big.rows = vec![
            row(
                ["2024-06-01", "c", "a", "web", u, u, u, "AmazonRDS", "1"],
                true,
                1.0,
                &many[..6_000],
            ),
            row(
                ["2024-06-02", "c", "a", "web", u, u, u, "AmazonRDS", "1"],
                true,
                1.0,
                &many[4_000..],
            ),
        ];
        let groups = build_snapshot(&big).expect("full grain");
        assert!(groups
            .iter()
            .flat_map(|g| g.days.values())
            .all(|d| !d.resources.is_exact()));
        let window = UsageWindow::billing_period(BillingPeriod {
            year: 2024,
            month: 6,
        });
        let out = answer(
            &groups,
            window,
            &[Dimension::Namespace],
            |g| g.level == Level::Namespace,
            Flavour::Cur2,
            vec![],
        );
        let error = (out.rows[0].resources as f64 - many.len() as f64).abs() / many.len() as f64;
        assert!(
            error < 0.049,
            "{} estimated for {}",
            out.rows[0].resources,
            many.len()
        );
    }

    #[test]
    fn answer_regroups_the_full_level_and_splits_days() {
        let groups = build_snapshot(&full()).expect("full grain");
        let window = UsageWindow::billing_period(BillingPeriod {
            year: 2024,
            month: 6,
        });
        let out = answer(
            &groups,
            window,
            &[Dimension::Day, Dimension::Service],
            |g| g.level == Level::Full,
            Flavour::Cur2,
            vec![],
        );
        let keys: Vec<_> = out.rows.iter().map(|r| r.keys.join("/")).collect();
        assert_eq!(
            keys,
            [
                "2024-06-01/AmazonRDS",
                "2024-06-02/AmazonRDS",
                "2024-06-02/AmazonS3",
                "2024-06-30/AmazonEC2"
            ]
        );
        assert_eq!(out.totals().0[1], 14.0);
    }

    #[test]
    fn a_coarser_allocation_cannot_become_a_snapshot() {
        let mut coarse = full();
        coarse.group_by = vec![Dimension::Namespace];
        assert!(build_snapshot(&coarse).is_err());
    }

    #[test]
    fn group_ids_are_fixed_length_and_tell_allocated_apart() {
        let mut group =
            SnapshotGroup::new(Level::Full, vec!["x".repeat(5000)], true, BTreeMap::new());
        let id = group.id();
        assert_eq!(id.len(), 32);
        group.allocated = false;
        assert_ne!(group.id(), id);
        // Length-prefixed keys: ["ab", "c"] and ["a", "bc"] differ.
        let a = SnapshotGroup {
            keys: vec!["ab".into(), "c".into()],
            ..group.clone()
        };
        let b = SnapshotGroup {
            keys: vec!["a".into(), "bc".into()],
            ..group
        };
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn the_full_level_holds_every_dimension_but_the_day() {
        assert!(!Level::Full.dimensions().contains(&Dimension::Day));
        assert_eq!(Level::Full.dimensions().len(), Dimension::ALL.len() - 1);
    }

    #[test]
    fn serving_level_is_the_coarsest_that_holds_the_request() {
        assert_eq!(Level::serving(&[Dimension::Namespace]), Level::Namespace);
        assert_eq!(
            Level::serving(&[Dimension::Day, Dimension::Namespace]),
            Level::Namespace
        );
        assert_eq!(
            Level::serving(&[Dimension::Namespace, Dimension::Pod]),
            Level::Full
        );
    }

    #[test]
    fn undated_line_items_are_counted_not_fatal() {
        let u = crate::domain::UNALLOCATED;
        let mut with_undated = full();
        with_undated.rows.push(row(
            ["", "c", "a", "web", u, u, u, "AmazonRDS", "1"],
            true,
            4.0,
            &[1],
        ));
        let periods = split_by_period(&with_undated).expect("an undated row is not fatal");
        let june = BillingPeriod::parse("2024-06").expect("valid");
        assert_eq!(periods.keys().copied().collect::<Vec<_>>(), vec![june]);
        assert_eq!(periods[&june].rows.len(), full().rows.len());
        assert!(periods[&june]
            .warnings
            .contains(&Warning::UndatedLineItems { line_items: 2 }));
        let (line_items, costs) = undated(&with_undated).expect("full grain");
        assert_eq!((line_items, costs.0[0]), (2, 4.0));
        build_snapshot(&periods[&june]).expect("the dated rows build a snapshot");
        let plain = split_by_period(&full()).expect("splits");
        assert!(plain[&june].warnings.is_empty());
    }
}

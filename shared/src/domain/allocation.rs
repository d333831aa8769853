//! The result model: allocation rows, their totals, re-aggregation and the summary line.

use super::dimension::Dimension;
use super::flavour::Flavour;
use super::metric::CostMetric;
use super::plan::Warning;
use super::resources::{ResourceSet, ResourceUnion};
use super::window::UsageWindow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The four metrics of one row, in [`CostMetric::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CostVector(pub [f64; 4]);

impl CostVector {
    pub fn get(&self, metric: CostMetric) -> f64 {
        self.0[metric.index()]
    }

    pub fn add(&mut self, other: &CostVector) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }
}

/// One group of the allocation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AllocationRow {
    /// Group key values, aligned with [`Allocation::group_by`].
    pub keys: Vec<String>,
    /// Whether the group's line items carry a namespace tag.
    pub allocated: bool,
    pub costs: CostVector,
    /// The part of `costs` this group received from shared sources ([`super::share`]); 0 without
    /// sharing.
    #[serde(default)]
    pub shared: CostVector,
    /// Distinct non-empty resource ids in the group.
    pub resources: u64,
    /// The group's resources as hashes, when the request asked for them
    /// ([`super::AllocationRequest::resource_ids`]): merging rows then counts each resource once.
    #[serde(skip)]
    pub resource_ids: Option<ResourceSet>,
    pub line_items: u64,
}

/// Rows being merged into one: sums as they come, and the union of their resource sets collected and
/// sorted once at the end (not merged pair by pair, which is quadratic in the number of rows).
struct RowMerge<'a> {
    row: AllocationRow,
    /// `None` once a row without its set was added: the count is then the sum of the rows' counts
    /// (an upper bound when a resource is in several).
    union: Option<ResourceUnion<'a>>,
}

impl<'a> RowMerge<'a> {
    fn new(keys: Vec<String>, allocated: bool) -> RowMerge<'a> {
        RowMerge {
            row: AllocationRow {
                keys,
                allocated,
                costs: CostVector::default(),
                shared: CostVector::default(),
                resources: 0,
                resource_ids: None,
                line_items: 0,
            },
            union: Some(ResourceUnion::default()),
        }
    }

    fn add(&mut self, other: &'a AllocationRow) {
        self.row.costs.add(&other.costs);
        self.row.shared.add(&other.shared);
        self.row.line_items += other.line_items;
        self.row.resources += other.resources;
        match (&mut self.union, &other.resource_ids) {
            (Some(union), Some(set)) => union.add(set),
            _ => self.union = None,
        }
    }

    fn finish(self) -> AllocationRow {
        let mut row = self.row;
        if let Some(union) = self.union {
            let set = union.finish();
            row.resources = set.len();
            row.resource_ids = Some(set);
        }
        row
    }
}

/// A whole allocation: rows plus what the user must know about how they were made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    pub flavour: Flavour,
    pub window: Option<UsageWindow>,
    pub group_by: Vec<Dimension>,
    pub rows: Vec<AllocationRow>,
    pub warnings: Vec<Warning>,
}

/// Totals for one metric: the numbers behind the summary line.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub metric: CostMetric,
    pub total: f64,
    pub allocated: f64,
    pub unallocated: f64,
    /// `allocated / total`, or `None` when the total is 0.
    pub allocated_share: Option<f64>,
    pub line_items: u64,
    pub rows: usize,
    pub warnings: usize,
}

impl Allocation {
    /// The same allocation without rows: flavour, window, grouping and warnings.
    pub fn clone_without_rows(&self) -> Allocation {
        Allocation {
            flavour: self.flavour,
            window: self.window,
            group_by: self.group_by.clone(),
            rows: Vec::new(),
            warnings: self.warnings.clone(),
        }
    }

    /// The sums of every row, in order.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for row in &self.rows {
            tally.add(row);
        }
        tally
    }

    /// The sum of every row: equals the CUR total of the window for each metric.
    pub fn totals(&self) -> CostVector {
        self.tally().totals
    }

    /// The sum of rows with a namespace tag.
    pub fn allocated_totals(&self) -> CostVector {
        self.tally().allocated
    }

    /// The sum of rows without one.
    pub fn unallocated_totals(&self) -> CostVector {
        self.tally().unallocated
    }

    /// The summary line's numbers for `metric`.
    pub fn summary(&self, metric: CostMetric) -> Summary {
        self.tally().summary(metric, self.warnings.len())
    }

    /// Keeps the rows whose value of each filtered dimension is one of its listed values (any of a
    /// dimension's values, every dimension); a dimension not among the keys keeps no row. The filter
    /// rule of the API's `filter*` parameters after sharing and of `kubecur allocate --filter-labels`.
    pub fn retain_values(&mut self, filters: &[(Dimension, Vec<String>)]) {
        let positions: Vec<Option<usize>> = filters
            .iter()
            .map(|(d, _)| self.group_by.iter().position(|g| g == d))
            .collect();
        self.rows.retain(|row| {
            filters.iter().zip(&positions).all(|((_, allowed), at)| {
                at.is_some_and(|at| allowed.iter().any(|a| *a == row.keys[at]))
            })
        });
    }

    /// Re-aggregates to `group_by` (each must be one of the current keys), summing metrics and line
    /// items and merging resources (exact when the rows carry their resource sets). Rows that differ only in the allocated flag stay apart so the summary stays exact.
    /// Returns `None` if a requested dimension is not among the current keys.
    pub fn regroup(&self, group_by: &[Dimension]) -> Option<Allocation> {
        let positions: Vec<usize> = group_by
            .iter()
            .map(|d| self.group_by.iter().position(|g| g == d))
            .collect::<Option<_>>()?;
        let mut merged: BTreeMap<(Vec<String>, bool), RowMerge> = BTreeMap::new();
        for row in &self.rows {
            let keys: Vec<String> = positions.iter().map(|&p| row.keys[p].clone()).collect();
            merged
                .entry((keys.clone(), row.allocated))
                .or_insert_with(|| RowMerge::new(keys, row.allocated))
                .add(row);
        }
        Some(Allocation {
            flavour: self.flavour,
            window: self.window,
            group_by: group_by.to_vec(),
            rows: merged.into_values().map(RowMerge::finish).collect(),
            warnings: self.warnings.clone(),
        })
    }

    /// Rows for display: those with equal keys merged (the allocated flag dropped), largest `metric` first,
    /// ties by key. A resource with tagged and untagged line items counts once when the rows carry their
    /// resource sets; `kubecur allocate` asks for them whenever such merging can happen.
    pub fn display_rows(&self, metric: CostMetric) -> Vec<AllocationRow> {
        let (order, starts) = runs_of_equal_keys(&self.rows);
        let mut rows: Vec<AllocationRow> = starts
            .windows(2)
            .map(|run| {
                let keys = self.rows[order[run[0]]].keys.clone();
                merge_run(keys, order[run[0]..run[1]].iter().map(|&at| &self.rows[at]))
            })
            .collect();
        sort_for_display(&mut rows, metric);
        rows
    }

    /// [`Allocation::display_rows`], consuming the allocation: each merged row takes its keys from the
    /// first row of its run instead of a copy (at millions of rows the keys are most of the memory).
    pub fn into_display_rows(self, metric: CostMetric) -> Vec<AllocationRow> {
        let mut all = self.rows;
        let (order, starts) = runs_of_equal_keys(&all);
        let mut rows: Vec<AllocationRow> = Vec::with_capacity(starts.len().saturating_sub(1));
        for run in starts.windows(2) {
            let keys = std::mem::take(&mut all[order[run[0]]].keys);
            rows.push(merge_run(
                keys,
                order[run[0]..run[1]].iter().map(|&at| &all[at]),
            ));
        }
        drop(all);
        sort_for_display(&mut rows, metric);
        rows
    }
}

/// The rows' positions sorted by key (a stable sort: rows with equal keys keep their order, hence the
/// sums'), and where each run of equal keys starts in that order, then its end. Positions are sorted,
/// not the rows (a stable sort's buffer).
fn runs_of_equal_keys(rows: &[AllocationRow]) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a].keys.cmp(&rows[b].keys));
    let mut starts: Vec<usize> = (0..order.len())
        .filter(|&i| i == 0 || rows[order[i - 1]].keys != rows[order[i]].keys)
        .collect();
    starts.push(order.len());
    (order, starts)
}

/// One display row from a run of rows with equal `keys` (the allocated flag: any of theirs).
fn merge_run<'a>(keys: Vec<String>, run: impl Iterator<Item = &'a AllocationRow>) -> AllocationRow {
    let mut merge = RowMerge::new(keys, false);
    for row in run {
        merge.row.allocated |= row.allocated;
        merge.add(row);
    }
    merge.finish()
}

/// Largest `metric` first, ties by key. Display keys are unique, so the order is total and an
/// unstable sort gives the same rows.
pub fn sort_for_display(rows: &mut [AllocationRow], metric: CostMetric) {
    rows.sort_unstable_by(|a, b| display_order(a, b, metric));
}

/// The display order of two display rows: largest `metric` first, ties by key.
pub fn display_order(a: &AllocationRow, b: &AllocationRow, metric: CostMetric) -> Ordering {
    b.costs
        .get(metric)
        .total_cmp(&a.costs.get(metric))
        .then_with(|| a.keys.cmp(&b.keys))
}

/// The summary's sums, kept as an allocation's rows pass (each added in the order given, so a tally of
/// an allocation's rows in order is its [`Allocation::summary`] to the bit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    totals: CostVector,
    allocated: CostVector,
    unallocated: CostVector,
    line_items: u64,
    rows: usize,
}

impl Tally {
    pub fn add(&mut self, row: &AllocationRow) {
        self.totals.add(&row.costs);
        if row.allocated {
            self.allocated.add(&row.costs);
        } else {
            self.unallocated.add(&row.costs);
        }
        self.line_items += row.line_items;
        self.rows += 1;
    }

    /// The number of rows added.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The sum of every row added.
    pub fn totals(&self) -> CostVector {
        self.totals
    }

    /// The summary line's numbers for `metric`, with the allocation's number of warnings.
    pub fn summary(&self, metric: CostMetric, warnings: usize) -> Summary {
        let total = self.totals.get(metric);
        let allocated = self.allocated.get(metric);
        Summary {
            metric,
            total,
            allocated,
            unallocated: self.unallocated.get(metric),
            allocated_share: (total.abs() > f64::EPSILON).then(|| allocated / total),
            line_items: self.line_items,
            rows: self.rows,
            warnings,
        }
    }
}

/// Display rows made from allocation rows that arrive in key order (the local engine's): a run of rows
/// with equal keys is merged as [`Allocation::display_rows`] merges it, as soon as the keys change.
#[derive(Debug, Default)]
pub struct KeyRuns {
    run: Vec<AllocationRow>,
}

impl KeyRuns {
    /// Adds a row; returns the display row of the run it ends, if any. Errors when the keys go back
    /// (rows out of key order would be merged wrongly: they are refused, not shown).
    pub fn push(&mut self, row: AllocationRow) -> Result<Option<AllocationRow>, String> {
        let ended = match self.run.last() {
            Some(last) if last.keys == row.keys => false,
            Some(last) if last.keys > row.keys => {
                return Err(format!(
                    "rows are not in key order ({:?} after {:?})",
                    row.keys, last.keys
                ))
            }
            Some(_) => true,
            None => false,
        };
        let done = if ended { self.flush() } else { None };
        self.run.push(row);
        Ok(done)
    }

    /// The display row of the last run, if any: every row of its keys has arrived.
    pub fn flush(&mut self) -> Option<AllocationRow> {
        let mut run = std::mem::take(&mut self.run);
        let first = run.first_mut()?;
        let keys = std::mem::take(&mut first.keys);
        Some(merge_run(keys, run.iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(keys: &[&str], allocated: bool, cost: f64) -> AllocationRow {
        AllocationRow {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            allocated,
            costs: CostVector([cost; 4]),
            shared: CostVector::default(),
            resources: 1,
            resource_ids: None,
            line_items: 2,
        }
    }

    fn held(rows: Vec<AllocationRow>) -> Allocation {
        Allocation {
            flavour: super::super::flavour::Flavour::Cur2,
            window: None,
            group_by: vec![],
            rows,
            warnings: vec![],
        }
    }

    #[test]
    fn key_runs_merge_rows_of_equal_keys_as_display_rows_do() {
        let rows = vec![
            row(&["a", "x"], false, 1.0),
            row(&["a", "x"], true, 2.0),
            row(&["a", "y"], true, 4.0),
            row(&["b", ""], false, 8.0),
        ];
        let mut runs = KeyRuns::default();
        let mut got = Vec::new();
        for r in rows.clone() {
            got.extend(runs.push(r).expect("in key order"));
        }
        got.extend(runs.flush());
        assert!(runs.flush().is_none(), "nothing left after a flush");
        let whole = held(rows);
        let mut expected = whole.display_rows(CostMetric::NetCost);
        expected.sort_by(|a, b| a.keys.cmp(&b.keys));
        assert_eq!(got, expected);
        assert_eq!(got[0].costs.0[0], 3.0);
        assert!(got[0].allocated, "any row of the run allocated");
    }

    #[test]
    fn key_runs_refuse_rows_out_of_key_order() {
        let mut runs = KeyRuns::default();
        assert!(runs.push(row(&["b"], true, 1.0)).expect("first").is_none());
        let err = runs.push(row(&["a"], true, 1.0)).expect_err("back");
        assert!(err.contains("not in key order"), "{err}");
        // After a flush (the end of a part) keys may start over.
        runs.flush();
        assert!(runs.push(row(&["a"], true, 1.0)).is_ok());
    }

    #[test]
    fn a_tally_of_the_rows_is_the_summary() {
        let rows = vec![row(&["a"], true, 0.1), row(&["b"], false, 0.2)];
        let whole = held(rows);
        let mut tally = Tally::default();
        whole.rows.iter().for_each(|r| tally.add(r));
        assert_eq!(tally, whole.tally());
        let summary = tally.summary(CostMetric::ListCost, 0);
        assert_eq!(summary, whole.summary(CostMetric::ListCost));
        assert_eq!((summary.rows, summary.line_items), (2, 4));
        assert_eq!(summary.unallocated, 0.2);
    }
}

//! The allocation use case: plan against the engine's columns, run the plan once, read the result.

use crate::domain::allocation::{
    display_order, sort_for_display, Allocation, AllocationRow, CostVector, KeyRuns, Summary, Tally,
};
use crate::domain::plan::Warning;
use crate::domain::plan::{AllocationPlan, Presence};
use crate::domain::resources::ResourceSet;
use crate::domain::sql::{
    ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCES_COLUMN, RESOURCE_HASHES_COLUMN,
    TAG_SOURCE_COLUMN_PREFIX, UNREADABLE_TAGS_COLUMN,
};
use crate::domain::{AllocationRequest, CostMetric, UNALLOCATED};
use crate::ports::{
    AllocationEngine, Cell, EngineError, ResultSink, ResultTable, RunRows, RunStore,
};
use std::collections::BinaryHeap;

/// Allocates `request` with `engine`: plans against its columns, runs the plan once, reads the result.
///
/// Errors: the data cannot be planned (not a CUR, a required column missing), the engine fails, or its
/// result lacks an expected column (a bug: named in the error). Missing tags are warnings in the result.
pub async fn allocate<E: AllocationEngine>(
    engine: &E,
    request: &AllocationRequest,
) -> Result<Allocation, EngineError> {
    let plan = AllocationPlan::new(engine.columns(), request)?;
    let started = std::time::Instant::now();
    let mut sink = AllocationSink::new(&plan);
    engine.run_allocation(&plan, &mut sink).await?;
    let allocation = sink.finish()?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        groups = allocation.rows.len(),
        "Allocation query finished."
    );
    Ok(allocation)
}

/// Allocates `request` with `engine` for display by `metric`, holding a bounded number of rows: the
/// engine's rows (which must come in key order, as the local engine's do, within each part it marks
/// complete) are merged into display rows as they arrive, sorted in runs of `run_rows` and, past one
/// run, kept in `store` and merged back in display order as they are read. The summary is kept as rows
/// pass. The answer is [`Allocation::into_display_rows`]'s, row for row.
pub async fn allocate_for_display<E: AllocationEngine>(
    engine: &E,
    request: &AllocationRequest,
    metric: CostMetric,
    store: Box<dyn RunStore>,
    run_rows: usize,
) -> Result<DisplayAllocation, EngineError> {
    let plan = AllocationPlan::new(engine.columns(), request)?;
    let mut sink = DisplaySink {
        rows: AllocationSink::new(&plan),
        tally: Tally::default(),
        runs: KeyRuns::default(),
        buffer: Vec::new(),
        run_rows: run_rows.max(1),
        metric,
        store,
        spilled: false,
    };
    let started = std::time::Instant::now();
    engine.run_allocation(&plan, &mut sink).await?;
    let shown = sink.finish()?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        groups = shown.tally.rows(),
        "Allocation query finished."
    );
    Ok(shown)
}

/// An allocation as display rows in display order, with its summary: made whole in memory
/// ([`DisplayAllocation::from_allocation`]) or merged from sorted runs ([`allocate_for_display`]).
pub struct DisplayAllocation {
    /// Flavour, window, grouping and warnings (no rows).
    pub about: Allocation,
    tally: Tally,
    rows: RunRows,
}

impl DisplayAllocation {
    /// An allocation held whole, for display by `metric`.
    pub fn from_allocation(allocation: Allocation, metric: CostMetric) -> DisplayAllocation {
        let tally = allocation.tally();
        let about = allocation.clone_without_rows();
        let rows = allocation.into_display_rows(metric);
        DisplayAllocation {
            about,
            tally,
            rows: Box::new(rows.into_iter().map(Ok)),
        }
    }

    /// The summary line's numbers for `metric`.
    pub fn summary(&self, metric: CostMetric) -> Summary {
        self.tally.summary(metric, self.about.warnings.len())
    }

    /// The sum of every row.
    pub fn totals(&self) -> CostVector {
        self.tally.totals()
    }

    /// Flavour, window, grouping and warnings (no rows), and the display rows in display order (a
    /// failure to read a run back is an error in its place).
    pub fn into_parts(self) -> (Allocation, RunRows) {
        (self.about, self.rows)
    }
}

/// The sink of [`allocate_for_display`].
struct DisplaySink {
    rows: AllocationSink,
    tally: Tally,
    runs: KeyRuns,
    /// Display rows not yet in a run.
    buffer: Vec<AllocationRow>,
    run_rows: usize,
    metric: CostMetric,
    store: Box<dyn RunStore>,
    /// Whether a run was written to the store.
    spilled: bool,
}

impl DisplaySink {
    fn display(&mut self, row: AllocationRow) -> Result<(), EngineError> {
        self.buffer.push(row);
        if self.buffer.len() >= self.run_rows {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), EngineError> {
        sort_for_display(&mut self.buffer, self.metric);
        self.store.write_run(&self.buffer)?;
        self.buffer.clear();
        self.spilled = true;
        Ok(())
    }

    fn finish(mut self) -> Result<DisplayAllocation, EngineError> {
        if let Some(row) = self.runs.flush() {
            self.display(row)?;
        }
        let rows: RunRows = if self.spilled {
            if !self.buffer.is_empty() {
                self.spill()?;
            }
            Box::new(MergedRuns::new(self.store.read_runs()?, self.metric)?)
        } else {
            sort_for_display(&mut self.buffer, self.metric);
            Box::new(std::mem::take(&mut self.buffer).into_iter().map(Ok))
        };
        Ok(DisplayAllocation {
            about: self.rows.finish()?,
            tally: self.tally,
            rows,
        })
    }
}

impl ResultSink for DisplaySink {
    fn columns(&mut self, columns: Vec<String>) -> Result<(), String> {
        self.rows.columns(columns)
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), String> {
        let row = self.rows.read(&cells).map_err(|e| e.to_string())?;
        self.tally.add(&row);
        if let Some(done) = self.runs.push(row)? {
            self.display(done).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn keys_complete(&mut self) -> Result<(), String> {
        match self.runs.flush() {
            Some(row) => self.display(row).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Sorted runs merged into one sequence in display order (a heap of each run's next row).
struct MergedRuns {
    runs: Vec<RunRows>,
    heap: BinaryHeap<Head>,
    metric: CostMetric,
    failed: bool,
}

/// A run's next row, ordered so the heap's top is the row displayed first.
struct Head {
    row: AllocationRow,
    run: usize,
    metric: CostMetric,
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> std::cmp::Ordering {
        display_order(&other.row, &self.row, self.metric)
    }
}

impl MergedRuns {
    fn new(mut runs: Vec<RunRows>, metric: CostMetric) -> Result<MergedRuns, EngineError> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (run, rows) in runs.iter_mut().enumerate() {
            if let Some(row) = rows.next() {
                heap.push(Head {
                    row: row?,
                    run,
                    metric,
                });
            }
        }
        Ok(MergedRuns {
            runs,
            heap,
            metric,
            failed: false,
        })
    }
}

impl Iterator for MergedRuns {
    type Item = Result<AllocationRow, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Head { row, run, .. } = self.heap.pop()?;
        match self.runs[run].next() {
            Some(Ok(next)) => self.heap.push(Head {
                row: next,
                run,
                metric: self.metric,
            }),
            Some(Err(e)) => {
                self.failed = true;
                return Some(Err(e));
            }
            None => {}
        }
        Some(Ok(row))
    }
}

/// Turns the allocation query's result into an [`Allocation`], row by row (as
/// [`allocate`] reads an engine's).
pub fn read_allocation(
    plan: &AllocationPlan,
    result: ResultTable,
) -> Result<Allocation, EngineError> {
    let mut sink = AllocationSink::new(plan);
    sink.start(&result.columns)?;
    for row in result.rows {
        sink.add(&row)?;
    }
    sink.finish()
}

/// The allocation query's result read into an [`Allocation`] as its rows arrive: each row of cells
/// becomes an [`AllocationRow`] at once, so the cells of every group are never held together.
pub struct AllocationSink {
    plan: AllocationPlan,
    reader: Option<AllocationReader>,
    rows: Vec<AllocationRow>,
}

impl AllocationSink {
    pub fn new(plan: &AllocationPlan) -> AllocationSink {
        AllocationSink {
            plan: plan.clone(),
            reader: None,
            rows: Vec::new(),
        }
    }

    /// The header: where each expected column is (an error names one that is missing).
    pub fn start(&mut self, columns: &[String]) -> Result<(), EngineError> {
        self.reader = Some(AllocationReader::new(&self.plan, columns)?);
        Ok(())
    }

    /// One row of cells, as wide as the header.
    pub fn add(&mut self, cells: &[Cell]) -> Result<(), EngineError> {
        let row = self.read(cells)?;
        self.rows.push(row);
        Ok(())
    }

    /// One row of cells read into an allocation row (counted for the warnings) and handed back, not
    /// kept.
    pub fn read(&mut self, cells: &[Cell]) -> Result<AllocationRow, EngineError> {
        let reader = self.reader.as_mut().ok_or_else(|| EngineError::Execution {
            context: "reading the allocation result".into(),
            source: "a row came before the header".into(),
        })?;
        reader.read(cells)
    }

    /// The allocation of every row read, with the warnings of what was read.
    pub fn finish(self) -> Result<Allocation, EngineError> {
        let reader = self.reader.ok_or_else(|| EngineError::Execution {
            context: "reading the allocation result".into(),
            source: "the result had no header row".into(),
        })?;
        let mut allocation = reader.finish();
        allocation.rows = self.rows;
        Ok(allocation)
    }
}

impl ResultSink for AllocationSink {
    fn columns(&mut self, columns: Vec<String>) -> Result<(), String> {
        self.start(&columns).map_err(|e| e.to_string())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), String> {
        self.add(&cells).map_err(|e| e.to_string())
    }
}

/// Reads the allocation query's result one row at a time (the writer streams a result it never holds
/// whole), counting what the warnings need on the way.
#[derive(Debug)]
pub struct AllocationReader {
    plan: AllocationPlan,
    columns: Vec<String>,
    keys: Vec<usize>,
    metrics: Vec<usize>,
    allocated: usize,
    resources: usize,
    line_items: usize,
    /// Where each tag source's presence count comes from: a counted column (`Ok`) or a group key.
    presence: Vec<Result<usize, usize>>,
    unreadable_tags: Option<usize>,
    unreadable_count: u64,
    tag_source_counts: Vec<u64>,
}

impl AllocationReader {
    /// A reader of a result with `columns`. Errors when an expected column is missing (a bug: named).
    pub fn new(plan: &AllocationPlan, columns: &[String]) -> Result<AllocationReader, EngineError> {
        let column = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| EngineError::Execution {
                    context: "reading the allocation result".into(),
                    source: format!("column `{name}` is missing; got {columns:?}").into(),
                })
        };
        let keys: Vec<usize> = plan
            .group_by
            .iter()
            .map(|d| column(&d.sql_alias()))
            .collect::<Result<_, _>>()?;
        let presence: Vec<Result<usize, usize>> = plan
            .presence()
            .into_iter()
            .map(|p| match p {
                Presence::Counted(n) => column(&format!("{TAG_SOURCE_COLUMN_PREFIX}{n}")).map(Ok),
                Presence::FromGroupKey(position) => Ok(Err(keys[position])),
            })
            .collect::<Result<_, _>>()?;
        Ok(AllocationReader {
            metrics: CostMetric::ALL
                .iter()
                .map(|m| column(m.sql_alias()))
                .collect::<Result<_, _>>()?,
            allocated: column(ALLOCATED_COLUMN)?,
            // Either the count or, when the plan asked for them, the set of resource hashes.
            resources: column(if plan.resource_ids {
                RESOURCE_HASHES_COLUMN
            } else {
                RESOURCES_COLUMN
            })?,
            line_items: column(LINE_ITEMS_COLUMN)?,
            tag_source_counts: vec![0; presence.len()],
            presence,
            // Only the local engine counts unreadable tag cells (Athena reads typed maps): optional.
            unreadable_tags: columns.iter().position(|c| c == UNREADABLE_TAGS_COLUMN),
            unreadable_count: 0,
            keys,
            plan: plan.clone(),
            columns: columns.to_vec(),
        })
    }

    fn number(&self, row: &[crate::ports::Cell], at: usize) -> Result<f64, EngineError> {
        row[at].as_f64().ok_or_else(|| EngineError::Execution {
            context: "reading the allocation result".into(),
            source: format!("`{}` is not a number: {:?}", self.columns[at], row[at]).into(),
        })
    }

    /// One row of the result (as wide as its columns).
    pub fn read(&mut self, row: &[crate::ports::Cell]) -> Result<AllocationRow, EngineError> {
        if row.len() != self.columns.len() {
            return Err(EngineError::Execution {
                context: "reading the allocation result".into(),
                source: format!(
                    "a row has {} cells for {} columns",
                    row.len(),
                    self.columns.len()
                )
                .into(),
            });
        }
        let mut costs = CostVector::default();
        for (slot, &at) in costs.0.iter_mut().zip(&self.metrics) {
            *slot = self.number(row, at)?;
        }
        for i in 0..self.presence.len() {
            let add = match self.presence[i] {
                Ok(at) => self.number(row, at)? as u64,
                Err(key) if row[key].as_text() != UNALLOCATED => {
                    self.number(row, self.line_items)? as u64
                }
                Err(_) => 0,
            };
            self.tag_source_counts[i] += add;
        }
        if let Some(at) = self.unreadable_tags {
            self.unreadable_count += self.number(row, at)? as u64;
        }
        let resource_ids = if self.plan.resource_ids {
            let set = ResourceSet::parse(&row[self.resources].as_text()).map_err(|reason| {
                EngineError::Execution {
                    context: "reading the allocation result".into(),
                    source: format!("`{RESOURCE_HASHES_COLUMN}`: {reason}").into(),
                }
            })?;
            Some(set)
        } else {
            None
        };
        Ok(AllocationRow {
            keys: self.keys.iter().map(|&at| row[at].as_text()).collect(),
            allocated: self.number(row, self.allocated)? != 0.0,
            costs,
            shared: Default::default(),
            resources: match &resource_ids {
                Some(set) => set.len(),
                None => self.number(row, self.resources)? as u64,
            },
            resource_ids,
            line_items: self.number(row, self.line_items)? as u64,
        })
    }

    /// The allocation without rows: flavour, window, grouping and the warnings of what was read.
    pub fn finish(self) -> Allocation {
        // A tag that no line item in the window carries is reported, never silently empty.
        let mut noted = self.plan;
        noted.note_tag_presence(&self.tag_source_counts);
        if self.unreadable_count > 0 {
            noted.warnings.push(Warning::UnreadableTags {
                line_items: self.unreadable_count,
            });
        }
        Allocation {
            flavour: noted.flavour,
            window: noted.window,
            group_by: noted.group_by,
            rows: Vec::new(),
            warnings: noted.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::columns::ColumnSet;
    use crate::domain::tags::Concept;
    use crate::domain::Dimension;
    use crate::ports::Cell;

    fn plan() -> AllocationPlan {
        let columns = ColumnSet::new([
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "line_item_product_code",
            "line_item_usage_account_id",
            "resource_tags_user_kubernetes_namespace",
        ]);
        let request = AllocationRequest {
            group_by: vec![Dimension::Namespace],
            ..AllocationRequest::default()
        };
        AllocationPlan::new(&columns, &request).expect("plannable")
    }

    fn result(namespaces: &[&str]) -> ResultTable {
        let columns = [
            "namespace",
            "allocated",
            "list_cost",
            "net_cost",
            "amortized_cost",
            "amortized_net_cost",
            "resources",
            "line_items",
        ];
        ResultTable {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: namespaces
                .iter()
                .map(|ns| {
                    let mut row = vec![
                        Cell::Text(ns.to_string()),
                        Cell::Integer(i64::from(*ns != UNALLOCATED)),
                    ];
                    row.extend([
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                        Cell::Number(1.5),
                    ]);
                    row.extend([Cell::Integer(1), Cell::Integer(3)]);
                    row
                })
                .collect(),
        }
    }

    #[test]
    fn a_grouped_single_source_tag_needs_no_counting_column() {
        assert_eq!(plan().presence(), vec![Presence::FromGroupKey(0)]);
    }

    #[test]
    fn tag_never_set_is_derived_from_the_group_keys() {
        let never = read_allocation(&plan(), result(&[UNALLOCATED])).expect("reads");
        let expected = Warning::TagNeverSet {
            concept: Concept::Namespace,
            key: "kubernetes_namespace".into(),
        };
        assert!(never.warnings.contains(&expected), "{:?}", never.warnings);
        let set = read_allocation(&plan(), result(&[UNALLOCATED, "payments"])).expect("reads");
        assert!(!set.warnings.contains(&expected), "{:?}", set.warnings);
        assert_eq!(set.rows.iter().map(|r| r.line_items).sum::<u64>(), 6);
    }

    #[test]
    fn a_result_missing_a_column_is_an_error_naming_it() {
        let mut table = result(&["payments"]);
        table.columns[2] = "something_else".into();
        let err = read_allocation(&plan(), table)
            .expect_err("list_cost is missing")
            .to_string();
        assert!(err.contains("`list_cost` is missing"), "{err}");
    }
}

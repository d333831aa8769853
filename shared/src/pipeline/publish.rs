//! Building a billing period's snapshot from its allocation and publishing it: the one owner of both,
//! for the writer function and `kubecur serve`.

use super::{EXPIRY_GRACE_SECONDS, SNAPSHOT_BYTES_PER_GROUP, SNAPSHOT_BYTES_PER_ROW};
use crate::domain::allocation::Allocation;
use crate::domain::error::DomainError;
use crate::domain::plan::AllocationPlan;
use crate::domain::run::check_row;
use crate::domain::snapshot::{
    build_snapshot, SnapshotBuilder, SnapshotGroup, SnapshotInfo, SnapshotOrigin,
};
use crate::ports::pipeline::{Flip, SnapshotWriter};
use crate::ports::{Cell, ResultSink, StoreError};
use crate::service::AllocationReader;

/// A snapshot ready to write: what the pointer will carry and the groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    pub groups: Vec<SnapshotGroup>,
}

/// Builds the snapshot of one billing period's full-grain allocation (`kubecur serve`); `resources`
/// are the ids it keyed ([`crate::domain::AllocationRequest::resources`]).
pub fn build(
    allocation: &Allocation,
    resources: &[String],
    origin: SnapshotOrigin,
) -> Result<Snapshot, DomainError> {
    let groups = build_snapshot(allocation)?;
    let info = SnapshotInfo::describe(allocation, resources, &groups, origin);
    Ok(Snapshot { info, groups })
}

/// The writer's way to the same snapshot: the query result streams in ([`ResultSink`]) and each row
/// is read, checked and added to the snapshot as it arrives, so the writer holds the snapshot being
/// built, never the result (`bench/writer_memory.sh` measures it).
#[derive(Debug)]
pub struct SnapshotStream {
    plan: AllocationPlan,
    reader: Option<AllocationReader>,
    builder: SnapshotBuilder,
    rows: usize,
    max_rows: usize,
    budget_bytes: u64,
}

impl SnapshotStream {
    /// A stream for a result of `plan` (full grain) of at most `max_rows` rows, whose snapshot may take
    /// about `budget_bytes` of memory ([`super::snapshot_budget_bytes`]).
    pub fn new(
        plan: AllocationPlan,
        max_rows: usize,
        budget_bytes: u64,
    ) -> Result<SnapshotStream, DomainError> {
        Ok(SnapshotStream {
            builder: SnapshotBuilder::new(&plan.group_by)?,
            plan,
            reader: None,
            rows: 0,
            max_rows,
            budget_bytes,
        })
    }

    /// The snapshot of every row read.
    pub fn finish(self, origin: SnapshotOrigin) -> Result<Snapshot, String> {
        let reader = self.reader.ok_or("the result has no header row")?;
        let read = reader.finish();
        let groups = self.builder.finish();
        let keyed = (
            self.plan.group_by.as_slice(),
            self.plan.resources.as_slice(),
        );
        let info =
            SnapshotInfo::describe_parts(read.flavour, read.warnings, keyed, &groups, origin);
        Ok(Snapshot { info, groups })
    }
}

impl ResultSink for SnapshotStream {
    fn columns(&mut self, columns: Vec<String>) -> Result<(), String> {
        self.reader = Some(AllocationReader::new(&self.plan, &columns).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), String> {
        self.rows += 1;
        if self.rows > self.max_rows {
            return Err(format!(
                "the result has more than {} rows, the most the writer takes",
                self.max_rows
            ));
        }
        let reader = self.reader.as_mut().ok_or("a row came before the header")?;
        let row = reader
            .read(&cells)
            .map_err(|e| format!("reading the result: {e}"))?;
        check_row(self.rows, &row).map_err(|bad| format!("an unusable figure: {bad}"))?;
        self.builder
            .add(row)
            .map_err(|e| format!("building the snapshot: {e}"))?;
        let groups = self.builder.full_groups() as u64;
        let need = groups * SNAPSHOT_BYTES_PER_GROUP + self.rows as u64 * SNAPSHOT_BYTES_PER_ROW;
        if need > self.budget_bytes {
            let mb = |bytes: u64| bytes / (1024 * 1024);
            return Err(format!(
                "the snapshot would need more than {} MB of memory to build ({groups} groups from {} rows so far), the writer's budget: give the writer function more memory (memory_size / MemorySize)",
                mb(self.budget_bytes),
                self.rows
            ));
        }
        Ok(())
    }
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub flip: Flip,
    /// The versions given a time to live: replaced ones, or this one when a newer serves.
    pub expired: Vec<i64>,
}

/// Writes the snapshot's groups, flips the period's pointer to it unless a newer version serves, and
/// sets a time to live on every snapshot that no longer serves: this one when a newer serves, and
/// every version on the pointer's `retiring` set (the one this flip replaced, and any a crashed
/// publication left behind). Every step is idempotent, so a rerun after a crash anywhere completes
/// the publication.
pub async fn publish<S: SnapshotWriter>(
    store: &S,
    snapshot: Snapshot,
    now_epoch_seconds: i64,
) -> Result<Published, StoreError> {
    let Snapshot { info, groups } = snapshot;
    let period = info.period;
    store.write_groups(&info, groups).await?;
    let expire_at = now_epoch_seconds + EXPIRY_GRACE_SECONDS;
    let flip = store.flip(&info).await?;
    let mut expired = Vec::new();
    if let Flip::Newer { .. } = flip {
        store.expire(period, info.version, expire_at).await?;
        expired.push(info.version);
    }
    let retiring = store
        .pointers(&[period])
        .await?
        .into_iter()
        .next()
        .map(|p| p.retiring)
        .unwrap_or_default();
    for version in retiring {
        let items = store.expire(period, version, expire_at).await?;
        store.retired(period, version).await?;
        tracing::info!(period = %period.label(), version, items, "Snapshot no longer serving expires.");
        expired.push(version);
    }
    Ok(Published { flip, expired })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::Presence;
    use crate::domain::sql::{
        ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCE_HASHES_COLUMN, TAG_SOURCE_COLUMN_PREFIX,
    };
    use crate::domain::window::BillingPeriod;
    use crate::domain::{CostMetric, TagMapping};
    use crate::ports::{ResultTable, TableSink};

    fn june() -> BillingPeriod {
        BillingPeriod {
            year: 2024,
            month: 6,
        }
    }

    fn origin() -> SnapshotOrigin {
        SnapshotOrigin {
            period: june(),
            version: 7,
            run_id: "run".into(),
            source: "exec".into(),
            computed_at: "2024-07-01T00:00:00Z".into(),
        }
    }

    /// The run plan of a legacy CUR and a result of it: `groups` groups over 3 days, as Athena's CSV.
    fn result(groups: usize) -> (AllocationPlan, ResultTable) {
        let columns: Vec<String> = [
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "line_item_product_code",
            "line_item_usage_account_id",
            "line_item_line_item_type",
            "line_item_resource_id",
            "resource_tags_user_kubernetes_namespace",
            "resource_tags_user_kubernetes_pod",
        ]
        .map(String::from)
        .to_vec();
        let plan = super::super::run_plan(&columns, june(), &TagMapping::default()).expect("plan");
        let mut header: Vec<String> = plan.group_by.iter().map(|d| d.sql_alias()).collect();
        header.extend(CostMetric::ALL.iter().map(|m| m.sql_alias().to_string()));
        header.extend(
            [ALLOCATED_COLUMN, RESOURCE_HASHES_COLUMN, LINE_ITEMS_COLUMN].map(String::from),
        );
        for presence in plan.presence() {
            if let Presence::Counted(n) = presence {
                header.push(format!("{TAG_SOURCE_COLUMN_PREFIX}{n}"));
            }
        }
        let mut rows = Vec::new();
        for group in 0..groups {
            for day in 1..=3 {
                let cell = |column: &str| match column {
                    "day" => format!("2024-06-0{day}"),
                    "namespace" => format!("ns-{}", group % 3),
                    "pod" => format!("pod-{group}"),
                    "allocated" => "1".into(),
                    "resource_hashes" => format!("{:016x} {:016x}", group, group + 1),
                    "line_items" => "2".into(),
                    c if c.starts_with(TAG_SOURCE_COLUMN_PREFIX) => "2".into(),
                    c if CostMetric::ALL.iter().any(|m| m.sql_alias() == c) => {
                        // Figures whose sum depends on the order they are added in.
                        format!("{}", 0.1 * (group * 3 + day) as f64 + 1e-9)
                    }
                    _ => "x".into(),
                };
                rows.push(header.iter().map(|c| Cell::Text(cell(c))).collect());
            }
        }
        (
            plan,
            ResultTable {
                columns: header,
                rows,
            },
        )
    }

    fn stream(
        plan: &AllocationPlan,
        table: &ResultTable,
        max_rows: usize,
    ) -> Result<Snapshot, String> {
        let mut stream = SnapshotStream::new(plan.clone(), max_rows, u64::MAX).expect("full grain");
        stream.columns(table.columns.clone())?;
        for row in &table.rows {
            stream.row(row.clone())?;
        }
        stream.finish(origin())
    }

    /// The writer streams the result; `kubecur serve` builds from the whole allocation. Both must give
    /// the same snapshot, bit for bit, whatever order the engine returned the rows in.
    #[test]
    fn a_streamed_result_gives_the_snapshot_the_whole_allocation_gives_in_any_order() {
        let (plan, table) = result(40);
        let whole = crate::service::read_allocation(&plan, table.clone()).expect("readable");
        let built = build(&whole, &[], origin()).expect("built");
        assert_eq!(built.info.line_items, 240);
        let mut reversed = table.clone();
        reversed.rows.reverse();
        for table in [&table, &reversed] {
            let streamed = stream(&plan, table, 1_000).expect("streamed");
            assert_eq!(streamed, built);
        }
        // Rows interleaved: every group's days apart.
        let mut interleaved = table.clone();
        interleaved.rows.sort_by_key(|row| format!("{:?}", row[0]));
        assert_eq!(stream(&plan, &interleaved, 1_000), Ok(built));
    }

    #[test]
    fn a_result_over_the_limit_or_with_an_unusable_figure_is_refused_with_the_reason() {
        let (plan, table) = result(2);
        let err = stream(&plan, &table, 5).expect_err("6 rows, 5 allowed");
        assert!(err.contains("more than 5 rows"), "{err}");
        let mut bad = table.clone();
        let at = bad
            .columns
            .iter()
            .position(|c| c == CostMetric::ALL[2].sql_alias())
            .expect("metric column");
        bad.rows[3][at] = Cell::Text("NaN".into());
        let err = stream(&plan, &bad, 1_000).expect_err("NaN");
        assert!(
            err.contains(CostMetric::ALL[2].sql_alias()) && err.contains("row 4"),
            "{err}"
        );
        let mut sink = TableSink::default();
        assert!(sink.columns(vec!["a".into()]).is_ok());
        let mut tight = SnapshotStream::new(plan.clone(), 1_000, 3_000).expect("full grain");
        tight.columns(table.columns.clone()).expect("header");
        let err = table
            .rows
            .iter()
            .try_for_each(|row| tight.row(row.clone()))
            .expect_err("over budget");
        assert!(err.contains("memory") && err.contains("MB"), "{err}");
        assert_eq!(
            super::super::snapshot_budget_from_env(|_| Some("1024".into())),
            874 * 1024 * 1024
        );
        assert_eq!(
            super::super::snapshot_budget_from_env(|_| None),
            super::super::snapshot_budget_bytes(Some(1_024))
        );
        let headless = SnapshotStream::new(plan, 10, u64::MAX).expect("full grain");
        assert!(headless.finish(origin()).is_err(), "no header, no snapshot");
    }
}

//! The store in memory: runs, pointers and snapshots. `kubecur serve` fills it from the local engine
//! through the same publishing code as the writer; the tests and the pipeline's fault simulation use
//! it in place of DynamoDB.

use crate::domain::run::{LatestRun, Run, RunState};
use crate::domain::snapshot::{newer_wins, Level, PointerDecision, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::pipeline::{Claim, Flip, RunStore, SnapshotWriter};
use crate::ports::{PeriodStatus, RunFailure, SnapshotReader, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Debug, Default)]
struct State {
    pointers: BTreeMap<BillingPeriod, PeriodStatus>,
    /// (period, version, level) → group id → group, shared with the readers (a request takes
    /// references, not copies).
    groups: BTreeMap<(BillingPeriod, i64, Level), BTreeMap<String, Arc<SnapshotGroup>>>,
    /// (period, version) → time to live, epoch seconds.
    expiry: BTreeMap<(BillingPeriod, i64), i64>,
    runs: BTreeMap<(BillingPeriod, String), Run>,
    queries: BTreeMap<String, (BillingPeriod, String)>,
}

/// Runs, pointers and snapshots in memory. Clones share the same data.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
}

fn poisoned() -> StoreError {
    StoreError::Backend {
        context: "using the memory store".into(),
        source: "a writer panicked while holding the lock".into(),
    }
}

fn empty(period: BillingPeriod) -> PeriodStatus {
    PeriodStatus {
        period,
        serving: None,
        last_failure: None,
        latest: None,
        retiring: Vec::new(),
    }
}

fn note(pointer: &mut PeriodStatus, run: &Run) {
    if pointer
        .latest
        .as_ref()
        .is_none_or(|l| l.version <= run.version)
    {
        pointer.latest = Some(LatestRun::of(run));
    }
}

impl MemoryStore {
    /// Makes `groups` the serving snapshot of `info.period`, unless a newer version already serves.
    /// Returns whether it was published.
    pub fn publish(&self, info: SnapshotInfo, groups: Vec<SnapshotGroup>) -> bool {
        let Ok(mut state) = self.state.write() else {
            return false;
        };
        put_groups(&mut state, &info, groups);
        matches!(flip(&mut state, &info), Flip::Flipped { .. })
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>, StoreError> {
        self.state.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, State>, StoreError> {
        self.state.write().map_err(|_| poisoned())
    }

    /// Every snapshot version stored for `period`, with its time to live if one is set (tests).
    pub fn stored_versions(&self, period: BillingPeriod) -> Vec<(i64, Option<i64>)> {
        let Ok(state) = self.read() else {
            return Vec::new();
        };
        let mut versions: Vec<i64> = state
            .groups
            .keys()
            .filter(|(p, _, _)| *p == period)
            .map(|(_, v, _)| *v)
            .collect();
        versions.dedup();
        versions
            .into_iter()
            .map(|v| (v, state.expiry.get(&(period, v)).copied()))
            .collect()
    }
}

fn put_groups(state: &mut State, info: &SnapshotInfo, groups: Vec<SnapshotGroup>) {
    for group in groups {
        state
            .groups
            .entry((info.period, info.version, group.level))
            .or_default()
            .insert(group.id(), Arc::new(group));
    }
}

fn flip(state: &mut State, info: &SnapshotInfo) -> Flip {
    let pointer = state
        .pointers
        .entry(info.period)
        .or_insert_with(|| empty(info.period));
    match newer_wins(pointer.serving.as_ref().map(|s| s.version), info.version) {
        PointerDecision::Flip => {
            let previous = pointer.serving.replace(info.clone());
            if let Some(previous) = &previous {
                if !pointer.retiring.contains(&previous.version) {
                    pointer.retiring.push(previous.version);
                }
            }
            Flip::Flipped { previous }
        }
        PointerDecision::AlreadyServing => Flip::AlreadyServing,
        PointerDecision::KeepNewer(serving) => Flip::Newer { serving },
    }
}

impl SnapshotReader for MemoryStore {
    async fn pointers(&self, periods: &[BillingPeriod]) -> Result<Vec<PeriodStatus>, StoreError> {
        let state = self.read()?;
        Ok(periods
            .iter()
            .filter_map(|p| state.pointers.get(p).cloned())
            .collect())
    }

    async fn all_pointers(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        Ok(self.read()?.pointers.values().cloned().collect())
    }

    async fn groups(
        &self,
        info: &SnapshotInfo,
        level: Level,
    ) -> Result<Vec<Arc<SnapshotGroup>>, StoreError> {
        Ok(self
            .read()?
            .groups
            .get(&(info.period, info.version, level))
            .map(|groups| groups.values().map(Arc::clone).collect())
            .unwrap_or_default())
    }
}

impl SnapshotWriter for MemoryStore {
    async fn write_groups(
        &self,
        info: &SnapshotInfo,
        groups: Vec<SnapshotGroup>,
    ) -> Result<(), StoreError> {
        put_groups(&mut *self.write()?, info, groups);
        Ok(())
    }

    async fn flip(&self, info: &SnapshotInfo) -> Result<Flip, StoreError> {
        Ok(flip(&mut *self.write()?, info))
    }

    async fn expire(
        &self,
        period: BillingPeriod,
        version: i64,
        at_epoch_seconds: i64,
    ) -> Result<u64, StoreError> {
        let mut state = self.write()?;
        let items = Level::ALL
            .iter()
            .filter_map(|l| state.groups.get(&(period, version, *l)))
            .map(|g| g.len() as u64)
            .sum();
        state.expiry.insert((period, version), at_epoch_seconds);
        Ok(items)
    }

    async fn retired(&self, period: BillingPeriod, version: i64) -> Result<(), StoreError> {
        if let Some(pointer) = self.write()?.pointers.get_mut(&period) {
            pointer.retiring.retain(|v| *v != version);
        }
        Ok(())
    }
}

impl RunStore for MemoryStore {
    async fn claim_run(&self, run: &Run) -> Result<Claim, StoreError> {
        let mut state = self.write()?;
        let key = (run.period, run.id.clone());
        if let Some(existing) = state.runs.get(&key) {
            return Ok(Claim::Existing(Box::new(existing.clone())));
        }
        state.runs.insert(key, run.clone());
        Ok(Claim::New)
    }

    async fn run(&self, period: BillingPeriod, run_id: &str) -> Result<Option<Run>, StoreError> {
        Ok(self
            .read()?
            .runs
            .get(&(period, run_id.to_string()))
            .cloned())
    }

    async fn runs(&self, period: BillingPeriod) -> Result<Vec<Run>, StoreError> {
        Ok(self
            .read()?
            .runs
            .iter()
            .filter(|((p, _), _)| *p == period)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn run_by_query(&self, query_id: &str) -> Result<Option<Run>, StoreError> {
        let state = self.read()?;
        Ok(state
            .queries
            .get(query_id)
            .and_then(|key| state.runs.get(key))
            .cloned())
    }

    async fn index_query(&self, run: &Run, query_id: &str) -> Result<(), StoreError> {
        self.write()?
            .queries
            .insert(query_id.to_string(), (run.period, run.id.clone()));
        Ok(())
    }

    async fn put_run(&self, run: &Run, from: RunState) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let key = (run.period, run.id.clone());
        match state.runs.get(&key) {
            Some(stored) if stored.state == from => {
                state.runs.insert(key, run.clone());
                Ok(())
            }
            stored => Err(StoreError::Conflict {
                key: run.id.clone(),
                reason: format!(
                    "expected state {}, found {}",
                    from.name(),
                    stored.map_or("no run", |r| r.state.name())
                ),
            }),
        }
    }

    async fn note_latest(&self, run: &Run) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let pointer = state
            .pointers
            .entry(run.period)
            .or_insert_with(|| empty(run.period));
        note(pointer, run);
        Ok(())
    }

    async fn record_failure(&self, run: &Run, failure: &RunFailure) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let pointer = state
            .pointers
            .entry(run.period)
            .or_insert_with(|| empty(run.period));
        pointer.last_failure = Some(failure.clone());
        note(pointer, run);
        Ok(())
    }
}

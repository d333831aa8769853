//! A snapshot store in memory: `kubecur serve` fills it from the local engine, tests use it as a fake.

use crate::domain::snapshot::{Level, SnapshotGroup, SnapshotInfo};
use crate::domain::window::BillingPeriod;
use crate::ports::{PeriodStatus, SnapshotReader, StoreError};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Each billing period's serving snapshot.
type Periods = BTreeMap<BillingPeriod, (SnapshotInfo, Vec<SnapshotGroup>)>;

/// Serving snapshots keyed by billing period.
#[derive(Debug, Default)]
pub struct MemoryStore {
    periods: RwLock<BTreeMap<BillingPeriod, (SnapshotInfo, Vec<SnapshotGroup>)>>,
}

impl MemoryStore {
    /// Makes `groups` the serving snapshot of `info.period`, unless a newer version already serves.
    /// Returns whether it was published.
    pub fn publish(&self, info: SnapshotInfo, groups: Vec<SnapshotGroup>) -> bool {
        let Ok(mut periods) = self.periods.write() else {
            return false;
        };
        match periods.get(&info.period) {
            Some((current, _)) if current.version >= info.version => false,
            _ => {
                periods.insert(info.period, (info, groups));
                true
            }
        }
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Periods>, StoreError> {
        self.periods.read().map_err(|_| StoreError::Backend {
            context: "reading the memory store".into(),
            source: "a writer panicked while holding the lock".into(),
        })
    }
}

fn status(info: &SnapshotInfo) -> PeriodStatus {
    PeriodStatus {
        period: info.period,
        serving: Some(info.clone()),
        last_failure: None,
    }
}

impl SnapshotReader for MemoryStore {
    async fn pointers(&self, periods: &[BillingPeriod]) -> Result<Vec<PeriodStatus>, StoreError> {
        let stored = self.read()?;
        Ok(periods
            .iter()
            .filter_map(|p| stored.get(p).map(|(info, _)| status(info)))
            .collect())
    }

    async fn all_pointers(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        Ok(self
            .read()?
            .values()
            .map(|(info, _)| status(info))
            .collect())
    }

    async fn groups(
        &self,
        info: &SnapshotInfo,
        level: Level,
    ) -> Result<Vec<SnapshotGroup>, StoreError> {
        let stored = self.read()?;
        Ok(stored
            .get(&info.period)
            .filter(|(serving, _)| serving.version == info.version)
            .map(|(_, groups)| {
                groups
                    .iter()
                    .filter(|g| g.level == level)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

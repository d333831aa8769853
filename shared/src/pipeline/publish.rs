//! Building a billing period's snapshot from its allocation and publishing it: the one owner of both,
//! for the writer function and `kubecur serve`.

use super::EXPIRY_GRACE_SECONDS;
use crate::domain::allocation::Allocation;
use crate::domain::error::DomainError;
use crate::domain::snapshot::{build_snapshot, SnapshotGroup, SnapshotInfo, SnapshotOrigin};
use crate::ports::pipeline::{Flip, SnapshotWriter};
use crate::ports::StoreError;

/// A snapshot ready to write: what the pointer will carry and the groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    pub groups: Vec<SnapshotGroup>,
}

/// Builds the snapshot of one billing period's full-grain allocation.
pub fn build(allocation: &Allocation, origin: SnapshotOrigin) -> Result<Snapshot, DomainError> {
    let groups = build_snapshot(allocation)?;
    let info = SnapshotInfo::describe(allocation, &groups, origin);
    Ok(Snapshot { info, groups })
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

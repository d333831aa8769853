//! Request counters, for the benchmark and for tests that hold the access patterns to their budget.

use std::sync::atomic::{AtomicU64, Ordering};

/// DynamoDB requests made by one store.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub batch_writes: AtomicU64,
    pub queries: AtomicU64,
    pub other: AtomicU64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.batch_writes.load(Ordering::Relaxed)
            + self.queries.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

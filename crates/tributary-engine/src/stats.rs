//! Counters the engine keeps while it runs, for progress bars and summaries.

use std::sync::atomic::{AtomicU64, Ordering};

use tributary_store::CompletionReport;

/// Live counters of one engine (cheap atomics; read with [`EngineStats::snapshot`]).
#[derive(Debug, Default)]
pub struct EngineStats {
    jobs_completed: AtomicU64,
    jobs_retried: AtomicU64,
    jobs_failed: AtomicU64,
    items_inserted: AtomicU64,
    items_updated: AtomicU64,
    items_deleted: AtomicU64,
    items_unchanged: AtomicU64,
    item_errors: AtomicU64,
    leases_lost: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Jobs whose effects were committed.
    pub jobs_completed: u64,
    /// Failed attempts that will be retried.
    pub jobs_retried: u64,
    /// Jobs that ended failed or dead, or paused their account.
    pub jobs_failed: u64,
    /// New items stored.
    pub items_inserted: u64,
    /// Items whose content changed or that were restored.
    pub items_updated: u64,
    /// Items soft-deleted.
    pub items_deleted: u64,
    /// Items fetched again with unchanged content.
    pub items_unchanged: u64,
    /// Outputs reporting a failure for one item (not stored).
    pub item_errors: u64,
    /// Jobs whose lease was lost before commit (their effects were discarded).
    pub leases_lost: u64,
}

impl EngineStats {
    pub(crate) fn record_completion(&self, report: &CompletionReport) {
        if !report.applied {
            self.leases_lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.jobs_completed.fetch_add(1, Ordering::Relaxed);
        self.items_inserted
            .fetch_add(report.inserted, Ordering::Relaxed);
        self.items_updated
            .fetch_add(report.updated, Ordering::Relaxed);
        self.items_deleted
            .fetch_add(report.deleted, Ordering::Relaxed);
        self.items_unchanged
            .fetch_add(report.unchanged, Ordering::Relaxed);
    }

    pub(crate) fn record_item_errors(&self, n: u64) {
        self.item_errors.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.jobs_retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        self.jobs_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            jobs_completed: g(&self.jobs_completed),
            jobs_retried: g(&self.jobs_retried),
            jobs_failed: g(&self.jobs_failed),
            items_inserted: g(&self.items_inserted),
            items_updated: g(&self.items_updated),
            items_deleted: g(&self.items_deleted),
            items_unchanged: g(&self.items_unchanged),
            item_errors: g(&self.item_errors),
            leases_lost: g(&self.leases_lost),
        }
    }
}

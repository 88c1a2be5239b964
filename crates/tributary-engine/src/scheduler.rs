//! The scheduler: enqueues each active account's `start` job every
//! `schedule.startEverySeconds`, and its history check every
//! `schedule.historyEverySeconds` where the manifest declares one.
//!
//! A tick is one store call that works in SQL (no per-row loop here): each account's
//! next due time lives in its row and moves to `now + interval` when its job is
//! enqueued, so missed ticks collapse into one, and any number of processes ticking
//! against one PostgreSQL database enqueue each due job once. A tick enqueues at most
//! `TICK_ENQUEUE_LIMIT` jobs of a kind; a due account beyond that is turned into a job
//! by the next claim (see `Store::schedule_due`), so a tick stays short at any number
//! of accounts and no due account waits for the next one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};
use tributary_sdk::Registry;
use tributary_store::{DomainSchedule, ScheduleReport, Store, StoreError};

use crate::Clock;

/// The schedules of every registered integration.
pub fn domain_schedules(registry: &Registry, max_attempts: i32) -> Vec<DomainSchedule> {
    registry
        .iter()
        .map(|r| {
            let m = &r.manifest;
            let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
            DomainSchedule {
                domain: m.domain.clone(),
                start_every_ms: secs(m.schedule.start_every_seconds),
                history: m
                    .schedule
                    .history_task
                    .clone()
                    .zip(m.history_every_seconds().map(secs)),
                max_attempts,
            }
        })
        .collect()
}

/// Ticks the schedule.
pub struct Scheduler {
    store: Arc<dyn Store>,
    schedules: Vec<DomainSchedule>,
    clock: Arc<dyn Clock>,
}

impl Scheduler {
    /// A scheduler for the given domain schedules.
    pub fn new(
        store: Arc<dyn Store>,
        schedules: Vec<DomainSchedule>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Scheduler {
            store,
            schedules,
            clock,
        }
    }

    /// One tick: enqueues every due `start` and history job.
    pub async fn tick(&self) -> Result<ScheduleReport, StoreError> {
        self.store
            .schedule_due(&self.schedules, self.clock.now_ms())
            .await
    }

    /// Ticks every `every` until `shutdown` fires. Errors are logged and the next tick
    /// tries again (a database that went away comes back).
    pub async fn run(&self, every: Duration, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = interval.tick() => {}
            }
            match self.tick().await {
                Ok(report) if report.starts + report.histories > 0 => {
                    debug!(
                        starts = report.starts,
                        histories = report.histories,
                        left_to_claims = report.left_to_claims,
                        "scheduler tick"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "scheduler tick failed; will retry"),
            }
        }
    }
}

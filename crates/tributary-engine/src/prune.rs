//! The pruner: deletes completed jobs once they are older than a retention window, so
//! the jobs table stops growing.
//!
//! Every account adds thousands of completed jobs a day from its `start` and history
//! timers alone, and every claim and index pays for them. A completed job is only a
//! record: nothing in the queue reads it again (deduplication looks at pending jobs,
//! fairness and due times live in their own rows), so once it is older than the
//! retention it goes. Failed and dead jobs are never pruned: they wait for
//! `tributary jobs retry` or the operator.
//!
//! A round deletes in batches of at most [`PrunerConfig::batch`] rows (one short
//! statement each, `Store::prune_completed`), with a pause between batches so the
//! workers' commits never queue behind the pruner, until a batch comes back short;
//! then the pruner sleeps for [`PrunerConfig::every`]. Any number of processes may
//! prune one PostgreSQL database at once (their batches skip each other's rows).
//! The cutoff comes from the engine's [`Clock`], so tests drive it with a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};
use tributary_store::{Store, StoreError};

use crate::Clock;

/// How the [`Pruner`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunerConfig {
    /// How long a completed job is kept after it finished (`--keep-completed`).
    /// Zero keeps nothing that finished before the round began.
    pub keep_completed: Duration,
    /// The most jobs one statement deletes.
    pub batch: u64,
    /// The pause between two batches of one round.
    pub pause: Duration,
    /// The sleep between rounds.
    pub every: Duration,
}

impl Default for PrunerConfig {
    /// Keeps a day of completed jobs; batches of 500, 50 ms apart; a round a minute.
    ///
    /// A deleted job takes its entry out of each of its indexes, and on SQLite the
    /// entries of one account's jobs sit together, so a batch across many accounts
    /// writes about one index page per job: 500 jobs are 10–25 ms of SQLite's write
    /// lock on the project's machine (a WAL checkpoint falling in it adds tens of
    /// milliseconds), and still some 8,000 jobs a second when there is a backlog.
    fn default() -> Self {
        PrunerConfig {
            keep_completed: Duration::from_secs(24 * 3600),
            batch: 500,
            pause: Duration::from_millis(50),
            every: Duration::from_secs(60),
        }
    }
}

/// What one round of the pruner did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneRound {
    /// Jobs deleted.
    pub deleted: u64,
    /// Statements run (the last one came back short, or the round was stopped).
    pub batches: u64,
    /// The longest of those statements.
    pub longest_batch: Duration,
}

/// Deletes completed jobs older than the retention, in bounded batches.
pub struct Pruner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: PrunerConfig,
}

impl Pruner {
    /// A pruner of `store` on `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: PrunerConfig) -> Self {
        Pruner {
            store,
            clock,
            config,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &PrunerConfig {
        &self.config
    }

    /// The cutoff of a round starting now: jobs that finished before it go.
    pub fn cutoff(&self) -> i64 {
        let keep = i64::try_from(self.config.keep_completed.as_millis()).unwrap_or(i64::MAX);
        self.clock.now_ms().saturating_sub(keep)
    }

    /// One round: deletes completed jobs that finished before [`Pruner::cutoff`],
    /// batch after batch (pausing between them) until a batch comes back short.
    pub async fn prune_once(&self) -> Result<PruneRound, StoreError> {
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        self.round(never).await.map(|(round, _)| round)
    }

    /// A round that stops between two batches when `shutdown` fires. Returns what it
    /// did and whether it stopped early.
    async fn round<F: Future<Output = ()>>(
        &self,
        mut shutdown: Pin<&mut F>,
    ) -> Result<(PruneRound, bool), StoreError> {
        let cutoff = self.cutoff();
        let batch = self.config.batch.max(1);
        let mut round = PruneRound::default();
        loop {
            let began = std::time::Instant::now();
            let n = self.store.prune_completed(cutoff, batch).await?;
            round.longest_batch = round.longest_batch.max(began.elapsed());
            round.batches += 1;
            round.deleted = round.deleted.saturating_add(n);
            if n < batch {
                return Ok((round, false));
            }
            tokio::select! {
                () = shutdown.as_mut() => return Ok((round, true)),
                () = tokio::time::sleep(self.config.pause) => {}
            }
        }
    }

    /// Prunes at once, then every [`PrunerConfig::every`], until `shutdown` fires
    /// (between two batches at the latest). Errors are logged and the next round tries
    /// again (a database that went away comes back).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            match self.round(shutdown.as_mut()).await {
                Ok((round, stopped)) => {
                    if round.deleted > 0 {
                        debug!(
                            deleted = round.deleted,
                            batches = round.batches,
                            longest_batch_ms = round.longest_batch.as_millis(),
                            "pruned completed jobs"
                        );
                    }
                    if stopped {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "pruning completed jobs failed; will retry"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.every) => {}
            }
        }
    }
}

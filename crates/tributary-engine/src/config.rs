//! [`EngineConfig`]: the worker pool's knobs, with defaults that suit one process on a
//! small machine.

use std::collections::HashMap;
use std::time::Duration;

/// How an [`crate::Engine`] runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This process's worker name (stored as `locked_by`); unique per process.
    pub worker_id: String,
    /// Jobs run at once.
    pub workers: usize,
    /// Most jobs claimed per query. Each claim takes about `claim_window` of work
    /// (from the recent completion rate), at least `workers` and at most this.
    pub claim_batch: usize,
    /// How much work one claim takes, in time: claimed jobs are only ever as many as
    /// free worker slots plus one claim, so a newly queued priority-1 job waits about
    /// this long behind jobs already claimed. Zero claims `claim_batch` every time.
    pub claim_window: Duration,
    /// Finished jobs committed per transaction, at most.
    pub commit_batch: usize,
    /// How long a claim holds a job before another worker may take it back; renewed
    /// every third of it while the job runs.
    pub lease: Duration,
    /// How long to wait before polling again when nothing was claimable.
    pub idle_poll: Duration,
    /// Attempts per job before it is dead.
    pub max_attempts: i32,
    /// First retry delay; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Jobs of one account running at once, unless the manifest says otherwise.
    pub per_account_concurrency: usize,
    /// Requests per second per domain, overriding the manifests' limits
    /// (`0` removes a limit).
    pub domain_rates: HashMap<String, u32>,
    /// Whether requests are charged to the manifests' quota budgets (`limits.budgets`).
    /// On by default; off only against a stand-in service that enforces no quota (a
    /// benchmark or test of the engine's own speed against a fake).
    pub enforce_budgets: bool,
    /// How much faster than real time the budgets' windows pass: 1 in production; a
    /// test or benchmark against a fake whose rate clock runs N times faster sets N,
    /// so the budgets keep the fake's limits in a fraction of the time.
    pub budget_time_scale: f64,
    /// How long shutdown waits for in-flight jobs before releasing them.
    pub shutdown_grace: Duration,
    /// The largest content (as JSON) stored for one item; larger content is replaced by
    /// a marker `{"oversized": true, "contentSize": N, "limit": L}` so the item is known
    /// (never fetched again in a loop) and the database never holds a runaway row.
    pub max_content_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: default_worker_id(),
            workers: 4,
            claim_batch: 256,
            claim_window: Duration::from_millis(100),
            commit_batch: 256,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(200),
            max_attempts: 5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            per_account_concurrency: 8,
            domain_rates: HashMap::new(),
            enforce_budgets: true,
            budget_time_scale: 1.0,
            shutdown_grace: Duration::from_secs(10),
            max_content_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `hostname-pid-random`: unique per process, readable in `jobs` listings.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

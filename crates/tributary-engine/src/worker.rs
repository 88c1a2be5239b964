//! The worker pool.
//!
//! One loop per process owns the queue side; jobs run in their own tasks:
//!
//! 1. **claim** up to the free capacity (`workers + claim_batch` jobs held at most),
//!    loading the claimed jobs' accounts in one query;
//! 2. **run** each job's lifecycle (construct, `initialize`, `run_task`, `shutdown`
//!    always) in a task, under the global worker semaphore, the account's slot cap and
//!    the domain's request rate, inside a tracing span carrying the job's fields;
//! 3. **commit** everything that finished since the last round in one transaction
//!    (`Store::complete_jobs`): content, sync state, credentials, children and the
//!    job's completion together, so a crash at any instant loses and duplicates nothing;
//! 4. **renew** the leases of held jobs every third of the lease, and return expired
//!    leases of dead workers to the queue.
//!
//! Failed attempts become queue actions through [`crate::retry`]. On shutdown the loop
//! stops claiming, lets running jobs finish for a grace period, commits them, and
//! releases whatever is still running so another worker can take it at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};
use tributary_sdk::http::HttpClient;
use tributary_sdk::oauth::TokenCache;
use tributary_sdk::serde_json::{self, json};
use tributary_sdk::{
    ContentExists, IntegrationContext, IntegrationError, ItemRef, LOWEST_PRIORITY, Output,
    Registration, Registry, Task, TaskResult,
};
use tributary_store::{
    DedupeKey, FailureAction, Job, JobCompletion, JobFailure, JobLease, JobState, NewJob, Store,
    StoreError, UserIntegration,
};

use crate::gate::{RunOrder, WorkerGate};
use crate::limits::DomainGates;
use crate::run_loop::{Committed, Held, HeldJobs, Run, RunLoop, Stage};
use crate::stats::EngineStats;
use crate::{Clock, EngineConfig, SystemClock};

/// When [`Engine::run`] returns (besides its shutdown future firing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunUntil {
    /// Only when the shutdown future fires (`tributary run`).
    Shutdown,
    /// When no job of the scope is pending (available or running) any more, waiting
    /// for retries that are not yet due (`tributary sync --until-idle`). `Some(id)`
    /// claims only that account's jobs; `None` scopes to the whole queue.
    Idle(Option<i64>),
    /// As soon as nothing is claimable now and nothing is in flight (tests that move a
    /// manual clock themselves).
    NothingClaimable,
}

/// An error that stops the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed in a way the loop cannot ride out.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("failed to start the engine: {0}")]
    Setup(String),
}

/// The worker pool of one process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    /// Access tokens shared by the jobs of each account (OAuth grant) in this process.
    tokens: TokenCache,
    gates: DomainGates,
    /// Who runs next among the claimed jobs (priority-aware, with the per-account cap).
    gate: WorkerGate,
    /// Claim order of jobs in this process, for the gate.
    claimed_seq: std::sync::atomic::AtomicU64,
    stats: Arc<EngineStats>,
}

/// What a job task hands back to the loop.
pub(crate) enum Finished {
    Completed {
        completion: JobCompletion,
        item_errors: u64,
    },
    Failed(JobFailure),
}

impl Engine {
    /// An engine over `store` running the integrations of `registry`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        Self::with_clock(store, registry, config, Arc::new(SystemClock))
    }

    /// The same with an explicit clock (tests use a manual one).
    pub fn with_clock(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        let http = HttpClient::new().map_err(|e| EngineError::Setup(e.to_string()))?;
        // On PostgreSQL every process shares the budgets through the database.
        let shared = (store.backend() == tributary_store::Backend::Postgres)
            .then(|| store.clone() as Arc<dyn tributary_store::BudgetStore>);
        let gates = DomainGates::new(&registry, &config, shared);
        let gate = WorkerGate::new(config.workers.max(1));
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                registry,
                config,
                clock,
                http,
                tokens: TokenCache::new(),
                gates,
                gate,
                claimed_seq: std::sync::atomic::AtomicU64::new(0),
                stats: Arc::new(EngineStats::default()),
            }),
        })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<EngineStats> {
        self.inner.stats.clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Runs jobs until `until` says so or `shutdown` fires; then finishes or releases
    /// what is in flight and returns.
    pub async fn run(
        &self,
        until: RunUntil,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EngineError> {
        RunLoop::new(self, until).run(shutdown).await
    }

    /// Returns expired leases of dead workers to the queue.
    pub(crate) async fn requeue_expired(&self) {
        match self
            .inner
            .store
            .requeue_expired(self.inner.clock.now_ms())
            .await
        {
            Ok(0) => {}
            Ok(n) => debug!(jobs = n, "returned expired leases to the queue"),
            Err(e) => warn!(error = %e, "failed to requeue expired leases"),
        }
    }

    /// Releases every held job (aborting its task), so another worker can take it now.
    pub(crate) async fn release(&self, held: &mut HeldJobs) {
        if held.is_empty() {
            return;
        }
        let mut leases = Vec::with_capacity(held.len());
        for (_, h) in held.drain() {
            h.handle.abort();
            leases.push(h.lease);
        }
        let worker = &self.inner.config.worker_id;
        match self
            .inner
            .store
            .release_jobs(worker, &leases, self.inner.clock.now_ms())
            .await
        {
            Ok(n) => debug!(jobs = n, "released unfinished jobs"),
            Err(e) => warn!(error = %e, "failed to release jobs; their leases will expire"),
        }
    }

    /// Commits finished jobs as they come, merging what queued up meanwhile into one
    /// transaction, while the loop goes on claiming. Reports each committed batch's ids,
    /// and whether its jobs queued new work (children), so the loop claims it soon.
    pub(crate) async fn committer(
        self,
        mut rx: mpsc::UnboundedReceiver<Vec<(Run, Finished)>>,
        committed: mpsc::UnboundedSender<Committed>,
    ) {
        let limit = self.inner.config.commit_batch.max(1);
        while let Some(mut batch) = rx.recv().await {
            while batch.len() < limit {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let mut runs: Vec<Run> = batch.iter().map(|(run, _)| *run).collect();
            let mut completions = Vec::with_capacity(batch.len());
            let mut failures = Vec::new();
            let mut item_errors = 0;
            for (_, finished) in batch {
                match finished {
                    Finished::Completed {
                        completion,
                        item_errors: n,
                    } => {
                        completions.push(completion);
                        item_errors += n;
                    }
                    Finished::Failed(failure) => failures.push(failure),
                }
            }
            // Jobs that queue children (list pages, starts) commit first, on their own:
            // the work they queue is claimable without waiting for a batch of downloads.
            let split = completions.iter().any(|c| c.children.is_empty())
                && completions.iter().any(|c| !c.children.is_empty());
            if split {
                let (parents, rest): (Vec<_>, Vec<_>) = completions
                    .into_iter()
                    .partition(|c| !c.children.is_empty());
                if let Ok(queued_work) = self.commit_batch(&parents, 0, &[]).await {
                    // Parents are few (list pages, starts): a linear lookup is fine.
                    // A batch holds one run per job: the next run of a job is claimed
                    // only after this one's commit.
                    let parent_ids: HashSet<i64> = parents.iter().map(|c| c.lease.job_id).collect();
                    let (parent_runs, rest_runs) = runs
                        .into_iter()
                        .partition(|run| parent_ids.contains(&run.job_id));
                    runs = rest_runs;
                    if committed
                        .send(Committed {
                            runs: parent_runs,
                            committed: true,
                            queued_work,
                        })
                        .is_err()
                    {
                        return;
                    }
                    completions = rest;
                } else {
                    // Committed together with the rest below, retried there.
                    completions = parents.into_iter().chain(rest).collect();
                }
            }
            let mut attempt = 0u32;
            let outcome = loop {
                match self
                    .commit_batch(&completions, item_errors, &failures)
                    .await
                {
                    Ok(queued) => break Some(queued),
                    Err(e) => {
                        // A database that went away is reconnected by the pool: keep the
                        // jobs held (their leases renewed) and try again. Once shutting
                        // down, give up after a few tries: the loop releases the jobs
                        // (or, if the database stays away, their leases expire) and they
                        // run again.
                        attempt += 1;
                        warn!(error = %e, jobs = runs.len(), attempt, "failed to commit finished jobs; will retry");
                        if rx.is_closed() && attempt >= 5 {
                            break None;
                        }
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25))))
                            .await;
                    }
                }
            };
            let done = Committed {
                runs,
                committed: outcome.is_some(),
                queued_work: outcome.unwrap_or(false),
            };
            if committed.send(done).is_err() {
                return;
            }
        }
    }

    /// Commits one batch: completions in one transaction, then failures one by one.
    /// Fails only when the completions could not be committed; says whether the
    /// completions queued any child job.
    async fn commit_batch(
        &self,
        completions: &[JobCompletion],
        item_errors: u64,
        failures: &[JobFailure],
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut queued_work = false;
        if !completions.is_empty() {
            for report in inner.store.complete_jobs(completions, now).await? {
                queued_work |= report.enqueued > 0;
                inner.stats.record_completion(&report);
            }
            inner.stats.record_item_errors(item_errors);
        }
        for failure in failures {
            match inner.store.fail_job(failure, now).await {
                Ok(_) => match failure.action {
                    FailureAction::Retry { .. } => inner.stats.record_retry(),
                    _ => inner.stats.record_failure(),
                },
                Err(e) => warn!(error = %e, job_id = failure.lease.job_id,
                    "failed to record a job failure; its lease will expire and it will run again"),
            }
        }
        Ok(queued_work)
    }

    pub(crate) async fn claim(
        &self,
        limit: usize,
        scope: Option<i64>,
    ) -> Result<Vec<Job>, StoreError> {
        let inner = &self.inner;
        let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(60_000);
        inner
            .store
            .claim_scoped(
                &inner.config.worker_id,
                limit,
                lease_ms,
                inner.clock.now_ms(),
                scope,
            )
            .await
    }

    pub(crate) async fn pending_jobs(&self, scope: Option<i64>) -> Result<i64, StoreError> {
        let counts = self.inner.store.job_counts(scope).await?;
        Ok(counts
            .iter()
            .filter(|c| matches!(c.state, JobState::Available | JobState::Running))
            .map(|c| c.count)
            .sum())
    }

    pub(crate) async fn renew(&self, held: &HeldJobs) {
        let inner = &self.inner;
        let leases: Vec<JobLease> = held.values().map(|h| h.lease).collect();
        let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(60_000);
        match inner
            .store
            .renew_leases(
                &inner.config.worker_id,
                &leases,
                lease_ms,
                inner.clock.now_ms(),
            )
            .await
        {
            Ok(lost) if !lost.is_empty() => {
                warn!(jobs = ?lost, "leases lost; those jobs' results will be discarded")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "failed to renew leases"),
        }
    }

    /// Starts a task per claimed job.
    pub(crate) async fn dispatch(
        &self,
        jobs: Vec<Job>,
        done_tx: &mpsc::UnboundedSender<(Run, Finished)>,
        held: &mut HeldJobs,
    ) {
        if jobs.is_empty() {
            return;
        }
        let ids: Vec<i64> = jobs
            .iter()
            .map(|j| j.user_integration_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // One copy of each account's sync state per claim, shared by its jobs (a large
        // state, such as Drive's folder map, is not copied for every job).
        let accounts: HashMap<i64, ClaimedAccount> =
            match self.inner.store.get_user_integrations(&ids).await {
                Ok(list) => list
                    .into_iter()
                    .map(|u| {
                        let sync_state = Arc::new(u.sync_state.clone());
                        (
                            u.id,
                            ClaimedAccount {
                                account: Arc::new(u),
                                sync_state,
                            },
                        )
                    })
                    .collect(),
                Err(e) => {
                    // Without the accounts nothing can run: give the jobs back.
                    warn!(error = %e, "failed to load accounts of claimed jobs; releasing them");
                    let leases: Vec<JobLease> = jobs.iter().map(Job::lease).collect();
                    let _ = self
                        .inner
                        .store
                        .release_jobs(
                            &self.inner.config.worker_id,
                            &leases,
                            self.inner.clock.now_ms(),
                        )
                        .await;
                    return;
                }
            };
        for job in jobs {
            let lease = job.lease();
            let account = accounts.get(&job.user_integration_id).cloned();
            let engine = self.clone();
            let tx = done_tx.clone();
            let order = RunOrder {
                priority: job.priority,
                kind: job.kind(),
                seq: self
                    .inner
                    .claimed_seq
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            };
            let run = Run {
                job_id: job.id,
                seq: order.seq,
            };
            let handle = tokio::spawn(async move {
                let finished = engine.execute(job, account, order).await;
                // The loop may have stopped listening during shutdown; then the lease
                // is released or expires, and the job runs again.
                let _ = tx.send((run, finished));
            });
            held.insert(
                run,
                Held {
                    lease,
                    handle,
                    stage: Stage::Running,
                },
            );
        }
    }

    /// Runs one job's lifecycle and turns the outcome into what the loop commits.
    async fn execute(
        &self,
        job: Job,
        claimed: Option<ClaimedAccount>,
        order: RunOrder,
    ) -> Finished {
        let sync_state = claimed.as_ref().map(|c| c.sync_state.clone());
        let account = claimed.map(|c| c.account);
        let inner = &self.inner;
        let lease = job.lease();
        let span = info_span!(
            "job",
            job_id = job.id,
            domain = account.as_ref().map(|a| a.integration_domain.as_str()).unwrap_or("?"),
            user_integration_id = job.user_integration_id,
            task_type = %job.task_type,
            attempt = job.attempts,
        );
        let outcome = async {
            let Some(account) = account else {
                return Err(IntegrationError::permanent(format!(
                    "user integration {} no longer exists",
                    job.user_integration_id
                )));
            };
            let registration = inner
                .registry
                .get(&account.integration_domain)
                .map_err(|e| IntegrationError::permanent(e.to_string()))?;
            let cap = registration
                .manifest
                .limits
                .concurrent_jobs_per_account
                .map_or(inner.config.per_account_concurrency, |n| n as usize);
            let _worker = inner.gate.acquire(order, account.id, cap).await;
            let sync_state = sync_state.unwrap_or_default();
            let result =
                AssertUnwindSafe(self.run_lifecycle(&job, &account, sync_state, registration))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(IntegrationError::permanent(format!(
                            "integration panicked: {what}"
                        )))
                    })?;
            self.completion(&job, &account, registration, result)
        }
        .instrument(span.clone())
        .await;

        let _entered = span.enter();
        match outcome {
            Ok((completion, item_errors)) => {
                debug!(
                    outputs = completion.outputs.len(),
                    children = completion.children.len(),
                    "job finished"
                );
                Finished::Completed {
                    completion,
                    item_errors,
                }
            }
            Err(error) => {
                let action = crate::retry::failure_action(
                    &error,
                    job.attempts,
                    job.max_attempts,
                    &inner.config,
                    inner.clock.now_ms(),
                );
                warn!(error = %error, class = %error.class(), action = ?action, "job failed");
                Finished::Failed(JobFailure {
                    lease,
                    user_integration_id: job.user_integration_id,
                    error_class: error.class().as_str().to_owned(),
                    message: error.message().to_owned(),
                    action,
                })
            }
        }
    }

    /// construct → initialize → run_task → shutdown (always).
    async fn run_lifecycle(
        &self,
        job: &Job,
        account: &UserIntegration,
        sync_state: Arc<tributary_sdk::serde_json::Map<String, tributary_sdk::serde_json::Value>>,
        registration: &Registration,
    ) -> Result<TaskResult, IntegrationError> {
        let inner = &self.inner;
        if !registration.manifest.has_task_type(&job.task_type) {
            return Err(IntegrationError::permanent(format!(
                "unknown task type `{}` for integration `{}`; known task types: {}",
                job.task_type,
                registration.manifest.domain,
                registration.manifest.task_types.join(", ")
            )));
        }
        let http = match inner.gates.gate(&account.integration_domain, account.id) {
            Some(gate) => inner.http.with_gate(gate),
            None => inner.http.clone(),
        };
        let context = IntegrationContext {
            user_integration_id: account.id,
            credentials: account.credentials.clone(),
            settings: account.settings.clone(),
            sync_state,
            content_exists: Arc::new(StoreContentIndex {
                store: inner.store.clone(),
                user_integration_id: account.id,
            }),
            http,
            tokens: inner.tokens.clone(),
            credential_sink: Some(Arc::new(StoreCredentials {
                store: inner.store.clone(),
                user_integration_id: account.id,
            })),
        };
        let mut integration = (registration.construct)(context)?;
        let result = match integration.initialize().await {
            Ok(()) => integration.run_task(&job.task()).await,
            Err(e) => Err(e),
        };
        if result.is_err()
            && let Some(credentials) = integration.credentials_after_failure()
        {
            // Not part of the job's commit (the job failed), but a rotated token must
            // not be lost with it.
            if let Err(e) = inner
                .store
                .update_credentials(account.id, &credentials)
                .await
            {
                warn!(error = %e, "failed to persist credentials refreshed before a failure");
            }
        }
        integration.shutdown().await;
        result
    }

    /// Builds the commit of a successful run: children get the parent's priority + 1
    /// (capped) and their dedupe keys.
    fn completion(
        &self,
        job: &Job,
        account: &UserIntegration,
        registration: &Registration,
        result: TaskResult,
    ) -> Result<(JobCompletion, u64), IntegrationError> {
        let manifest = &registration.manifest;
        let now = self.inner.clock.now_ms();
        let priority = (job.priority + 1).min(LOWEST_PRIORITY);
        let mut children = Vec::with_capacity(result.tasks.len());
        for task in result.tasks {
            if !manifest.has_task_type(&task.task_type) {
                return Err(IntegrationError::permanent(format!(
                    "task `{}` returned a child of undeclared type `{}`; declared: {}",
                    job.task_type,
                    task.task_type,
                    manifest.task_types.join(", ")
                )));
            }
            let dedupe_key = dedupe_key(&task, manifest.schedule.history_task.as_deref());
            children.push(NewJob {
                user_integration_id: job.user_integration_id,
                task,
                priority,
                dedupe_key,
                max_attempts: self.inner.config.max_attempts,
                run_at: now,
            });
        }
        let limit = self.inner.config.max_content_bytes;
        let mut failed = 0u64;
        let outputs = result
            .outputs
            .into_iter()
            .map(|output| stored_output(output, limit, &mut failed))
            .collect();
        Ok((
            JobCompletion {
                lease: job.lease(),
                user_integration_id: account.id,
                user_id: account.user_id,
                integration_domain: account.integration_domain.clone(),
                outputs,
                children,
                sync_state_patch: result.sync_state,
                credentials: result.credentials,
            },
            failed,
        ))
    }
}

/// What the store gets for one output: failures become marker items (the integration
/// could not fetch or decode the item: the marker keeps the code and what it said, so
/// the item is known, a listing does not queue it again and again, and a reader sees
/// why it has no content), and content larger than `limit` bytes (as JSON) becomes a
/// marker saying so. Counts the failures in `failed`.
fn stored_output(output: Output, limit: usize, failed: &mut u64) -> Output {
    let (id, timestamp, content, version) = match output {
        Output::Deleted { .. } => return output,
        Output::Failed {
            id,
            code,
            error,
            version,
        } => {
            warn!(external_id = %id, code, "item failed; storing a failure marker");
            *failed += 1;
            let marker = json!({ "failed": true, "code": code, "error": { "error": error } });
            (id, None, marker, version)
        }
        Output::Item {
            id,
            timestamp,
            content,
            version,
        } => (id, timestamp, content, version),
    };
    // Serializing to count is cheap next to fetching the content over the network.
    let size = serde_json::to_vec(&content).map_or(0, |v| v.len());
    let content = if size > limit {
        warn!(external_id = %id, size, limit, "content over the limit; storing a marker");
        json!({ "oversized": true, "contentSize": size, "limit": limit })
    } else {
        content
    };
    let stored = Output::item(id, timestamp, content);
    match version {
        Some(version) => stored.with_version(version),
        None => stored,
    }
}

/// The dedupe key of a task: one pending job per item, per key the integration gave
/// the task, per account's `start`, per account's history check.
pub fn dedupe_key(task: &Task, history_task: Option<&str>) -> Option<String> {
    if let Some(item) = &task.item_id {
        Some(DedupeKey::item(item).into())
    } else if let Some(key) = &task.dedupe_key {
        Some(DedupeKey::task(key).into())
    } else if task.task_type == "start" {
        Some(DedupeKey::start().into())
    } else if Some(task.task_type.as_str()) == history_task {
        Some(DedupeKey::history().into())
    } else {
        None
    }
}

/// A claimed job's account, and its sync state as of the claim, shared by the jobs of
/// the claim.
#[derive(Clone)]
struct ClaimedAccount {
    account: Arc<UserIntegration>,
    sync_state: Arc<tributary_sdk::serde_json::Map<String, tributary_sdk::serde_json::Value>>,
}

/// Saves one account's rotated credentials in the store the moment they are issued.
struct StoreCredentials {
    store: Arc<dyn Store>,
    user_integration_id: i64,
}

#[tributary_sdk::async_trait]
impl tributary_sdk::CredentialSink for StoreCredentials {
    async fn save(&self, credentials: &tributary_sdk::Credentials) -> Result<(), IntegrationError> {
        self.store
            .update_credentials(self.user_integration_id, credentials)
            .await
            .map_err(|e| {
                IntegrationError::transient(format!("saving rotated credentials failed: {e}"))
            })
    }
}

/// The store-backed `content_exists` of one account.
struct StoreContentIndex {
    store: Arc<dyn Store>,
    user_integration_id: i64,
}

#[tributary_sdk::async_trait]
impl ContentExists for StoreContentIndex {
    async fn known(
        &self,
        items: &[ItemRef],
    ) -> Result<std::collections::HashSet<String>, IntegrationError> {
        self.store
            .known_items(self.user_integration_id, items)
            .await
            .map_err(|e| IntegrationError::transient(format!("content_exists failed: {e}")))
    }

    async fn stored_at(
        &self,
        items: &[ItemRef],
    ) -> Result<std::collections::HashSet<String>, IntegrationError> {
        self.store
            .stored_items(self.user_integration_id, items)
            .await
            .map_err(|e| IntegrationError::transient(format!("content_exists failed: {e}")))
    }

    async fn stored_ids(&self) -> Result<Vec<String>, IntegrationError> {
        self.store
            .stored_external_ids(self.user_integration_id)
            .await
            .map_err(|e| IntegrationError::transient(format!("listing stored ids failed: {e}")))
    }

    async fn stored_between(
        &self,
        from: &str,
        until: &str,
    ) -> Result<Vec<ItemRef>, IntegrationError> {
        self.store
            .stored_items_between(self.user_integration_id, from, until)
            .await
            .map_err(|e| IntegrationError::transient(format!("listing stored ids failed: {e}")))
    }
}

/// A history check (`history_task`, the manifest's `schedule.historyTask`) for one
/// account, due at `now`: deduplicated like the scheduler's, at the highest priority.
pub fn history_job(
    user_integration_id: i64,
    history_task: &str,
    max_attempts: i32,
    now: i64,
) -> NewJob {
    NewJob {
        user_integration_id,
        task: Task::new(history_task, tributary_sdk::serde_json::Value::Null),
        priority: tributary_sdk::HIGHEST_PRIORITY,
        dedupe_key: Some(DedupeKey::history().into()),
        max_attempts,
        run_at: now,
    }
}

/// What "sync this account now" enqueues: its `start` (new items) and, when the
/// integration has one, its history check (edits and deletions, or the full
/// comparison when the cursor has expired), so the database equals the source when
/// the jobs are done.
pub fn sync_now_jobs(
    user_integration_id: i64,
    manifest: &tributary_sdk::Manifest,
    max_attempts: i32,
    now: i64,
) -> Vec<NewJob> {
    let mut jobs = vec![start_job(user_integration_id, max_attempts, now)];
    if let Some(history_task) = manifest.schedule.history_task.as_deref() {
        jobs.push(history_job(
            user_integration_id,
            history_task,
            max_attempts,
            now,
        ));
    }
    jobs
}

/// A `start` job for one account, due now (`tributary sync`).
pub fn start_job(user_integration_id: i64, max_attempts: i32, now: i64) -> NewJob {
    NewJob {
        user_integration_id,
        task: Task::start(),
        priority: tributary_sdk::HIGHEST_PRIORITY,
        dedupe_key: Some(DedupeKey::start().into()),
        max_attempts,
        run_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_content_becomes_a_marker() {
        let mut failed = 0;
        let big = Output::item("a", None, json!({"body": "x".repeat(2000)}));
        let capped = stored_output(big, 1000, &mut failed);
        let content = capped.content();
        assert_eq!(content["oversized"], json!(true));
        assert_eq!(content["limit"], json!(1000));
        assert!(content["contentSize"].as_u64().unwrap_or(0) > 2000);
        let small = Output::item("b", None, json!({"body": "short"}));
        assert_eq!(stored_output(small.clone(), 1000, &mut failed), small);
        let gone = Output::deleted("c");
        assert_eq!(stored_output(gone.clone(), 1, &mut failed), gone);
        assert_eq!(failed, 0);
    }

    #[test]
    fn markers_keep_the_version() {
        let mut failed = 0;
        let marker = stored_output(
            Output::failed("a", 502, "bad").with_version("4"),
            1000,
            &mut failed,
        );
        assert_eq!(marker.version(), Some("4"));
        let big = Output::item("b", None, json!({"body": "x".repeat(2000)})).with_version("5");
        assert_eq!(stored_output(big, 1000, &mut failed).version(), Some("5"));
    }

    #[test]
    fn failures_become_counted_markers() {
        let mut failed = 0;
        let marker = stored_output(Output::failed("a", 502, "bad body"), 1000, &mut failed);
        assert_eq!(failed, 1);
        assert_eq!(
            marker,
            Output::item(
                "a",
                None,
                json!({"failed": true, "code": 502, "error": {"error": "bad body"}})
            )
        );
    }

    #[test]
    fn dedupe_keys_by_task_kind() {
        let mut fetch = Task::new("downloadEmail", tributary_sdk::serde_json::Value::Null);
        fetch.item_id = Some("m1".into());
        assert_eq!(
            dedupe_key(&fetch, Some("checkHistory")).as_deref(),
            Some("item:m1")
        );
        assert_eq!(dedupe_key(&Task::start(), None).as_deref(), Some("start"));
        let history = Task::new("checkHistory", tributary_sdk::serde_json::Value::Null);
        assert_eq!(
            dedupe_key(&history, Some("checkHistory")).as_deref(),
            Some("history")
        );
        let list = Task::new("getEmailList", tributary_sdk::serde_json::Value::Null);
        assert_eq!(dedupe_key(&list, Some("checkHistory")), None);
        let mut poll = Task::new("pollChannel", tributary_sdk::serde_json::Value::Null);
        poll.dedupe_key = Some("poll:C1".into());
        assert_eq!(
            dedupe_key(&poll, Some("checkHistory")).as_deref(),
            Some("task:poll:C1")
        );
    }
}

//! [`Harness`]: a fresh migrated database (SQLite or PostgreSQL), the subject's
//! registry, and engines on a manual clock, with the helpers the scenarios share.
//!
//! The engine runs with [`tributary_engine::RunUntil::NothingClaimable`]: it returns
//! as soon as no job is due and none is running. Retries are scheduled in the future
//! on the manual clock, so [`Harness::settle`] alternates running with moving the clock
//! to the next due job, until the account has nothing pending. Nothing sleeps to let
//! time pass.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tributary_engine::{
    Clock, Engine, EngineConfig, ManualClock, RunUntil, Scheduler, domain_schedules,
};
use tributary_sdk::Registry;
use tributary_store::{
    ContentItem, ContentQuery, Job, JobFilter, JobState, Store, UserIntegration,
    UserIntegrationStatus,
};

use crate::ConformanceSubject;

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// Where the manual clock starts (epoch ms, in 2027).
pub const START_MS: i64 = 1_800_000_000_000;

/// Attempts per job. Generous, so that the fault scenario's 10% of failed requests
/// never exhausts a job by bad luck (0.1^8 per job); a job that does end dead fails
/// the scenario's "no failed jobs" check.
pub const MAX_ATTEMPTS: i32 = 8;

/// How many times [`Harness::settle`] moves the clock before it gives up.
const MAX_CLOCK_MOVES: usize = 10_000;

/// How long one engine run may take before the scenario fails (a hung engine).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// A migrated store, the registry of one integration, a manual clock, and what keeps
/// the database alive (dropped with the harness).
pub struct Harness {
    /// The store.
    pub store: Arc<dyn Store>,
    /// A registry holding the subject's integration only.
    pub registry: Arc<Registry>,
    /// The engine's time.
    pub clock: ManualClock,
    /// The backend.
    pub backend: Backend,
    /// The subject's integration domain.
    pub domain: String,
    /// The subject's history task type (from its manifest), if it has one.
    pub history_task: Option<String>,
    _guard: Box<dyn Any + Send>,
}

impl Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("backend", &self.backend)
            .field("domain", &self.domain)
            .field("now_ms", &self.clock.now_ms())
            .finish_non_exhaustive()
    }
}

/// Runs one scenario for subject `S` on `backend`, on a multi-threaded runtime of
/// two workers (what the [`crate::conformance_tests!`] tests call).
///
/// Returns without running the scenario only when PostgreSQL is unreachable and `CI`
/// is not `true` (the store's test helper prints why).
///
/// # Panics
/// When the scenario fails, or the runtime cannot be built.
pub fn run_scenario<S, F, Fut>(backend: Backend, scenario: F)
where
    S: ConformanceSubject,
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the test runtime");
    runtime.block_on(async move {
        match Harness::new::<S>(backend).await {
            Some(harness) => scenario(harness).await,
            None => eprintln!("skipped: no PostgreSQL server for tests"),
        }
    });
}

/// Engine settings for the scenarios: `workers` workers, a short backoff, and a lease
/// long enough that moving the manual clock never takes a running job back.
pub fn engine_config(workers: usize) -> EngineConfig {
    EngineConfig {
        worker_id: "conformance".into(),
        workers,
        idle_poll: Duration::from_millis(10),
        max_attempts: MAX_ATTEMPTS,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        lease: Duration::from_secs(7 * 24 * 3600),
        // The fakes' scenarios test behaviour, not quotas (`quota` tests those).
        enforce_budgets: false,
        ..EngineConfig::default()
    }
}

impl Harness {
    /// A fresh migrated database on `backend` and a registry of `S`'s integration.
    /// `None` when PostgreSQL is asked for and unreachable outside CI.
    ///
    /// # Panics
    /// When the subject's manifest is invalid, or declares a history task while the
    /// subject declares no [`crate::Capabilities::history`] (or the other way round).
    pub async fn new<S: ConformanceSubject>(backend: Backend) -> Option<Harness> {
        tributary_sdk::http::install_crypto_provider();
        let registration = S::registration().expect("the subject's manifest is valid");
        let domain = registration.manifest.domain.clone();
        let history_task = registration.manifest.schedule.history_task.clone();
        assert_eq!(
            history_task.is_some(),
            S::CAPABILITIES.history,
            "`{domain}`'s manifest names history task {history_task:?}, but its subject \
             declares history: {}",
            S::CAPABILITIES.history
        );
        let registry = Arc::new(Registry::new([Ok(registration)]).expect("registry"));
        let (store, guard): (Arc<dyn Store>, Box<dyn Any + Send>) = match backend {
            Backend::Sqlite => {
                let (store, guard) = tributary_store::testing::sqlite_test_store().await;
                (store, Box::new(guard))
            }
            Backend::Postgres => {
                let db = tributary_store::testing::postgres_test_store().await?;
                (db.store.clone(), Box::new(db))
            }
        };
        Some(Harness {
            store,
            registry,
            clock: ManualClock::new(START_MS),
            backend,
            domain,
            history_task,
            _guard: guard,
        })
    }

    /// An engine with `workers` workers on the harness's clock.
    pub fn engine(&self, workers: usize) -> Engine {
        self.engine_with(engine_config(workers))
    }

    /// An engine with this configuration on the harness's clock.
    pub fn engine_with(&self, config: EngineConfig) -> Engine {
        Engine::with_clock(
            self.store.clone(),
            self.registry.clone(),
            config,
            Arc::new(self.clock.clone()) as Arc<dyn Clock>,
        )
        .expect("engine")
    }

    /// The scheduler of the subject's integration (its manifest's intervals) on the
    /// harness's clock.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.store.clone(),
            domain_schedules(&self.registry, MAX_ATTEMPTS),
            Arc::new(self.clock.clone()) as Arc<dyn Clock>,
        )
    }

    /// The longest of the integration's schedule intervals (`start` and history
    /// check), in ms: moving the clock this far makes both due.
    pub fn schedule_period_ms(&self) -> i64 {
        domain_schedules(&self.registry, MAX_ATTEMPTS)
            .iter()
            .flat_map(|s| [Some(s.start_every_ms), s.history.as_ref().map(|h| h.1)])
            .flatten()
            .max()
            .unwrap_or(60_000)
    }

    /// Creates a user and links its account to `subject`, validating the credentials
    /// against the fake as `tributary link` does.
    pub async fn link<S: ConformanceSubject>(&self, subject: &S, user: &str) -> UserIntegration {
        let user = self.store.create_user(user).await.expect("create user");
        tributary_app::App::new(self.store.clone(), self.registry.clone())
            .link(
                user.id,
                &self.domain,
                subject.credentials(),
                subject.settings(),
            )
            .await
            .unwrap_or_else(|e| panic!("linking a {} account failed: {e}", self.domain))
    }

    /// Enqueues a `start` job for account `ui`, due now (deduplicated as the
    /// scheduler's are).
    pub async fn enqueue_start(&self, ui: i64) {
        let now = self.clock.now_ms();
        let job = tributary_engine::worker::start_job(ui, MAX_ATTEMPTS, now);
        self.store
            .enqueue(&[job], now)
            .await
            .expect("enqueue start");
    }

    /// Enqueues a history check for account `ui`, due now.
    ///
    /// # Panics
    /// When the integration has no history task (a scenario that checks the history
    /// must require [`crate::Capability::History`]).
    pub async fn enqueue_history(&self, ui: i64) {
        let now = self.clock.now_ms();
        let task = self
            .history_task
            .as_deref()
            .expect("a history check needs the History capability");
        let job = tributary_engine::worker::history_job(ui, task, MAX_ATTEMPTS, now);
        self.store
            .enqueue(&[job], now)
            .await
            .expect("enqueue history check");
    }

    /// Runs `engine` until no job is due and none is running (the clock stands still).
    pub async fn run_claimable(&self, engine: &Engine) {
        tokio::time::timeout(
            RUN_TIMEOUT,
            engine.run(RunUntil::NothingClaimable, std::future::pending()),
        )
        .await
        .unwrap_or_else(|_| panic!("the engine did not go idle within {RUN_TIMEOUT:?}"))
        .expect("engine run");
    }

    /// Runs `engine` until account `ui` has no pending job, moving the clock to the
    /// next due job whenever nothing is due now (retries after failures). Stops early
    /// when the account is no longer active (its jobs wait for re-authorization).
    /// Returns how many times the clock moved.
    pub async fn settle(&self, engine: &Engine, ui: i64) -> usize {
        let mut moves = 0;
        loop {
            self.run_claimable(engine).await;
            if self.account(ui).await.status != UserIntegrationStatus::Active {
                return moves;
            }
            let waiting = self.jobs(ui, JobState::Available).await;
            let Some(next) = waiting.iter().map(|job| job.run_at).min() else {
                return moves;
            };
            assert!(
                moves < MAX_CLOCK_MOVES,
                "account {ui} still has {} jobs waiting after {moves} clock moves",
                waiting.len()
            );
            self.clock.advance_ms((next - self.clock.now_ms()).max(1));
            moves += 1;
        }
    }

    /// A `start`, then [`Harness::settle`].
    pub async fn sync(&self, engine: &Engine, ui: i64) -> usize {
        self.enqueue_start(ui).await;
        self.settle(engine, ui).await
    }

    /// A history check, then [`Harness::settle`].
    pub async fn check_history(&self, engine: &Engine, ui: i64) -> usize {
        self.enqueue_history(ui).await;
        self.settle(engine, ui).await
    }

    /// Links `subject` for a new user, then a `start` until nothing is pending; checks
    /// that nothing failed and that the database equals the truth. Returns the
    /// account's id.
    pub async fn synced<S: ConformanceSubject>(
        &self,
        subject: &S,
        engine: &Engine,
        user: &str,
    ) -> i64 {
        let ui = self.link(subject, user).await.id;
        self.sync(engine, ui).await;
        self.assert_no_failed_jobs(ui).await;
        self.assert_matches_truth(subject, ui, "after the first sync")
            .await;
        ui
    }

    /// Moves the clock by `ms` (a scheduler interval), then a history check until
    /// nothing is pending; checks that nothing failed.
    pub async fn history_after(&self, engine: &Engine, ui: i64, ms: i64) {
        self.clock.advance_ms(ms);
        self.check_history(engine, ui).await;
        self.assert_no_failed_jobs(ui).await;
    }

    /// `updated_at` of every stored item of account `ui` (deleted ones included), in
    /// epoch ms, by external id.
    pub async fn updated_at(&self, ui: i64) -> BTreeMap<String, i64> {
        self.content(ui, true)
            .await
            .into_iter()
            .map(|(id, item)| (id, item.updated_at.timestamp_millis()))
            .collect()
    }

    /// The string at `key` of account `ui`'s stored sync state.
    pub async fn sync_state_str(&self, ui: i64, key: &str) -> Option<String> {
        self.account(ui)
            .await
            .sync_state
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// The account as stored now.
    pub async fn account(&self, ui: i64) -> UserIntegration {
        self.store
            .get_user_integration(ui)
            .await
            .expect("load the account")
    }

    /// Every content item of account `ui` by external id (deleted ones too when
    /// `include_deleted`).
    ///
    /// # Panics
    /// When two rows carry the same external id.
    pub async fn content(&self, ui: i64, include_deleted: bool) -> BTreeMap<String, ContentItem> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_content(&ContentQuery {
                    user_integration_id: Some(ui),
                    include_deleted,
                    since: None,
                    after_id: after,
                    limit: Some(1000),
                })
                .await
                .expect("list content");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for item in page {
                let id = item.external_id.clone();
                assert!(
                    out.insert(id.clone(), item).is_none(),
                    "two content rows for external id {id}"
                );
            }
        }
        out
    }

    /// Jobs of account `ui` in `state`, newest first.
    pub async fn jobs(&self, ui: i64, state: JobState) -> Vec<Job> {
        self.store
            .list_jobs(&JobFilter {
                state: Some(state),
                user_integration_id: Some(ui),
                limit: Some(i64::MAX / 2),
            })
            .await
            .expect("list jobs")
    }

    /// Fails when any job of account `ui` ended failed or dead.
    pub async fn assert_no_failed_jobs(&self, ui: i64) {
        for state in [JobState::Failed, JobState::Dead] {
            let jobs = self.jobs(ui, state).await;
            let shown: Vec<String> = jobs
                .iter()
                .take(5)
                .map(|j| {
                    format!(
                        "{} {:?} after {} attempts: {}",
                        j.task_type,
                        j.item_id,
                        j.attempts,
                        j.last_error.as_deref().unwrap_or("")
                    )
                })
                .collect();
            assert!(
                jobs.is_empty(),
                "{} jobs ended {state:?}: {shown:#?}",
                jobs.len()
            );
        }
    }

    /// The stored, non-deleted items of account `ui` as external id → projection.
    pub async fn stored<S: ConformanceSubject>(&self, ui: i64) -> BTreeMap<String, S::Projection> {
        self.content(ui, false)
            .await
            .into_iter()
            .map(|(id, item)| (id, S::project(&item.content)))
            .collect()
    }

    /// Fails, with the differences, unless the stored, non-deleted items of account
    /// `ui` equal the subject's truth exactly, and the store's counts agree.
    pub async fn assert_matches_truth<S: ConformanceSubject>(
        &self,
        subject: &S,
        ui: i64,
        when: &str,
    ) {
        let truth = subject.truth();
        let stored = self.stored::<S>(ui).await;
        if let Some(diff) = describe_differences(&truth, &stored) {
            panic!(
                "{when}: the database differs from the fake's truth ({} items): {diff}",
                truth.len()
            );
        }
        let counts = self.store.content_counts(ui).await.expect("content counts");
        assert_eq!(
            usize::try_from(counts.items).ok(),
            Some(truth.len()),
            "{when}: content_counts disagrees with the listed content"
        );
    }
}

/// An engine running in the background until [`Background::stop`]: for scenarios that
/// change the fake while jobs are in flight (a held response, a change, then the
/// release).
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    runner: tokio::task::JoinHandle<Result<(), tributary_engine::worker::EngineError>>,
}

impl Background {
    /// Starts `engine` running until stopped.
    pub fn run(engine: &Engine) -> Background {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = engine.clone();
        let runner = tokio::spawn(async move {
            engine
                .run(RunUntil::Shutdown, async {
                    let _ = stopped.await;
                })
                .await
        });
        Background { stop, runner }
    }

    /// Waits until account `ui` has no job available or running, then stops the
    /// engine.
    ///
    /// # Panics
    /// When the account does not go idle within the harness's timeout, or the engine
    /// failed.
    pub async fn stop_when_idle(self, h: &Harness, ui: i64) {
        wait_until("the account has nothing pending", || async {
            h.jobs(ui, JobState::Available).await.is_empty()
                && h.jobs(ui, JobState::Running).await.is_empty()
        })
        .await;
        let _ = self.stop.send(());
        self.runner
            .await
            .expect("join the engine")
            .expect("engine run");
    }
}

/// Polls `condition` every 5 ms until it holds (a condition on the fake or the
/// database, never the passing of time); fails after `RUN_TIMEOUT` with `what`.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The differences between the truth and the stored projections, or `None` when they
/// are equal (at most ten of each kind are shown).
pub fn describe_differences<P: Debug + PartialEq>(
    truth: &BTreeMap<String, P>,
    stored: &BTreeMap<String, P>,
) -> Option<String> {
    let missing: Vec<&String> = truth
        .keys()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    let extra: Vec<&String> = stored
        .keys()
        .filter(|id| !truth.contains_key(*id))
        .collect();
    let changed: Vec<String> = truth
        .iter()
        .filter_map(|(id, want)| match stored.get(id) {
            Some(got) if got != want => Some(format!("{id}: stored {got:?}, truth {want:?}")),
            _ => None,
        })
        .collect();
    if missing.is_empty() && extra.is_empty() && changed.is_empty() {
        return None;
    }
    let head = |v: Vec<String>| v.into_iter().take(10).collect::<Vec<_>>();
    Some(format!(
        "{} missing {:?}; {} not in the truth {:?}; {} differ {:#?}",
        missing.len(),
        head(missing.iter().map(|s| (*s).clone()).collect()),
        extra.len(),
        head(extra.iter().map(|s| (*s).clone()).collect()),
        changed.len(),
        head(changed),
    ))
}

/// The ids in `ids` as a set (for readable assertions).
pub fn id_set<'a>(ids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    ids.into_iter().cloned().collect()
}

//! The harness of the engine conformance suite: one scenario body, run on SQLite and on
//! PostgreSQL (see the `on_both_backends!` macro).

#![allow(dead_code)]

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tributary_engine::{Clock, Engine, EngineConfig, ManualClock, RunUntil};
use tributary_sdk::Registry;
use tributary_store::{
    ContentItem, ContentQuery, JobFilter, JobState, NewUserIntegration, Store, UserIntegration,
};
use tributary_testkit::synthetic::{SourceConfig, SourceServer};

/// Which backend a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store plus what keeps its database alive.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub clock: ManualClock,
    _guard: Box<dyn Any + Send>,
}

/// Runs a scenario on one backend; returns without running it only when PostgreSQL
/// is unreachable outside CI (the store's test helper panics under CI=true).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(h) = $crate::common::Harness::new($crate::common::Backend::Sqlite).await {
                        super::$name(h).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(h) = $crate::common::Harness::new($crate::common::Backend::Postgres).await {
                        super::$name(h).await;
                    }
                }
            )*
        }
    };
}

pub const START_MS: i64 = 1_800_000_000_000;

impl Harness {
    pub async fn new(backend: Backend) -> Option<Harness> {
        tributary_sdk::http::install_crypto_provider();
        let registry = Arc::new(
            Registry::new([
                tributary_synthetic::registration(),
                tributary_testkit::noop::registration(),
            ])
            .expect("test registry"),
        );
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
            _guard: guard,
        })
    }

    /// An engine on the harness's manual clock.
    pub fn engine(&self, config: EngineConfig) -> Engine {
        Engine::with_clock(
            self.store.clone(),
            self.registry.clone(),
            config,
            Arc::new(self.clock.clone()) as Arc<dyn Clock>,
        )
        .expect("engine")
    }

    /// Links a new user's synthetic account to `server`.
    pub async fn link(&self, server: &SourceServer, name: &str) -> UserIntegration {
        let user = self.store.create_user(name).await.expect("user");
        self.store
            .create_user_integration(NewUserIntegration {
                user_id: user.id,
                integration_domain: "synthetic".into(),
                credentials: server.credentials(),
                settings: server.settings(),
            })
            .await
            .expect("link")
    }

    /// Enqueues a `start` for the account now.
    pub async fn start(&self, ui: i64) -> u64 {
        self.store
            .enqueue(
                &[tributary_engine::worker::start_job(
                    ui,
                    5,
                    self.clock.now_ms(),
                )],
                self.clock.now_ms(),
            )
            .await
            .expect("enqueue start")
    }

    /// Runs `engine` until nothing is claimable now (the manual clock does not move).
    pub async fn run_claimable(&self, engine: &Engine) {
        tokio::time::timeout(
            Duration::from_secs(600),
            engine.run(RunUntil::NothingClaimable, std::future::pending()),
        )
        .await
        .expect("engine did not go idle within 10 minutes")
        .expect("engine run");
    }

    /// All content of an account (deleted included when asked), by external id.
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
                assert!(
                    out.insert(item.external_id.clone(), item).is_none(),
                    "duplicate content row"
                );
            }
        }
        out
    }

    /// The stored (non-deleted) items as id → version, comparable to the source's snapshot.
    pub async fn versions(&self, ui: i64) -> BTreeMap<String, u64> {
        self.content(ui, false)
            .await
            .into_iter()
            .map(|(id, item)| {
                let version = item.content["version"]
                    .as_u64()
                    .expect("version in content");
                (id, version)
            })
            .collect()
    }

    /// Jobs of an account in a state.
    pub async fn jobs(&self, ui: i64, state: JobState) -> Vec<tributary_store::Job> {
        self.store
            .list_jobs(&JobFilter {
                state: Some(state),
                user_integration_id: Some(ui),
                limit: Some(1_000_000),
            })
            .await
            .expect("list jobs")
    }
}

/// A synthetic source with `items` items.
pub async fn source(items: usize, seed: u64) -> SourceServer {
    SourceServer::start(SourceConfig::new(items, seed, format!("token-{seed}")))
        .await
        .expect("start synthetic source")
}

/// Engine settings for tests: short backoff, `workers` workers claiming one job at a time.
pub fn config(workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        idle_poll: Duration::from_millis(20),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        max_attempts: 5,
        // Long enough that moving the manual clock never expires a held lease.
        lease: Duration::from_secs(24 * 3600),
        ..EngineConfig::default()
    }
}

//! Gmail's per-user quota, end to end: the fake enforces it (a sliding window, 403
//! `userRateLimitExceeded` over it), the manifest declares it, and the engine's
//! budgets keep a whole sync under it at close to its rate. The quota is small here
//! (300 units per 2 s, Google's being 15,000 per minute) so the test takes seconds;
//! the figures are the fake's counts, not wall time.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

use std::sync::Arc;
use std::time::Duration;

use tributary_app::App;
use tributary_engine::{Engine, EngineConfig, RunUntil};
use tributary_gmail_fake::{Counters, FakeGmail, GmailConfig, UserQuota};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{BudgetScope, Credentials, Registry};
use tributary_store::Store;

const MESSAGES: usize = 200;

const QUOTA: UserQuota = UserQuota {
    capacity: 300,
    window: Duration::from_secs(2),
};

/// Gmail's registration with its per-user budget shrunk to [`QUOTA`].
fn registry() -> Arc<Registry> {
    let mut registration = tributary_gmail::registration().unwrap();
    for budget in &mut registration.manifest.limits.budgets {
        if budget.scope == BudgetScope::Account {
            budget.capacity = QUOTA.capacity;
            budget.window_seconds = QUOTA.window.as_secs();
        }
    }
    Arc::new(Registry::new([Ok(registration)]).unwrap())
}

/// Syncs a fake mailbox of [`MESSAGES`] enforcing [`QUOTA`] with `engines` engines
/// (as many processes would) of 16 workers each on `store`, and returns the fake's
/// counts of the sync.
async fn sync_under_quota(store: Arc<dyn Store>, engines: usize) -> Counters {
    tributary_sdk::http::install_crypto_provider();
    let fake = FakeGmail::start(GmailConfig {
        messages: MESSAGES,
        ..GmailConfig::default()
    })
    .await
    .unwrap();
    let registry = registry();
    let user = store.create_user("quota@example.com").await.unwrap();
    let issued = fake.credentials();
    let mut credentials = Credentials::default();
    credentials.set("clientId", issued.client_id);
    credentials.set("clientSecret", issued.client_secret);
    credentials.set("refreshToken", issued.refresh_token);
    let mut settings = Map::new();
    settings.insert("baseUrl".into(), Value::String(fake.base_url()));
    settings.insert("tokenUrl".into(), Value::String(fake.token_url()));
    let account = App::new(store.clone(), registry.clone())
        .link(user.id, "gmail", credentials, settings)
        .await
        .unwrap();
    // The quota starts now, with an empty window (linking spent a unit outside it).
    fake.set_quota(Some(QUOTA));
    fake.reset_counters();
    let now = chrono::Utc::now().timestamp_millis();
    store
        .enqueue(
            &[tributary_engine::worker::start_job(account.id, 5, now)],
            now,
        )
        .await
        .unwrap();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..engines {
        let config = EngineConfig {
            worker_id: format!("quota-{i}"),
            workers: 16,
            per_account_concurrency: 16,
            idle_poll: Duration::from_millis(10),
            ..EngineConfig::default()
        };
        let engine = Engine::new(store.clone(), registry.clone(), config).unwrap();
        runs.spawn(async move {
            engine
                .run(RunUntil::Idle(Some(account.id)), std::future::pending())
                .await
        });
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(run) = runs.join_next().await {
            run.unwrap().unwrap();
        }
    })
    .await
    .expect("the sync finishes");
    let counts = store.content_counts(account.id).await.unwrap();
    // Messages in spam or trash are not synced (Gmail's own listing leaves them out).
    let synced = fake
        .snapshot()
        .values()
        .filter(|m| !m.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .count();
    assert_eq!(counts.items as usize, synced);
    fake.counters()
}

/// No rate-limit answer, and the busiest window came close to the quota: the
/// budget's bucket allows its burst plus one window of refill, 98 % of the capacity.
fn assert_close_under_the_quota(counters: &Counters) {
    assert_eq!(counters.quota_exceeded, 0, "{counters:?}");
    assert_eq!(counters.faults, 0, "{counters:?}");
    assert!(counters.quota_units >= MESSAGES as u64 * 4, "{counters:?}");
    assert!(counters.quota_peak <= QUOTA.capacity, "{counters:?}");
    assert!(
        counters.quota_peak as f64 >= 0.9 * QUOTA.capacity as f64,
        "the sync never came near the quota: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sync_at_16_workers_stays_under_the_per_user_quota_near_its_rate() {
    let (store, _guard) = tributary_store::testing::sqlite_test_store().await;
    let counters = sync_under_quota(store, 1).await;
    assert_close_under_the_quota(&counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_on_one_postgres_database_share_the_per_user_quota() {
    let Some(db) = tributary_store::testing::postgres_test_store().await else {
        println!("skipped: PostgreSQL is not reachable");
        return;
    };
    let counters = sync_under_quota(db.store.clone(), 4).await;
    assert_close_under_the_quota(&counters);
}

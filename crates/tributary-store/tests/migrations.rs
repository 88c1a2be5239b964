//! Migrations are frozen once released, and a database made by the release upgrades.
//!
//! - `released_migrations_never_change`: the checksums of the released migration files
//!   (what sqlx records in `_sqlx_migrations` and checks on every start) are written
//!   here; editing a released file fails this test (and would fail every deployed
//!   database's start-up). A schema change is a new numbered file.
//! - `upgrade::{sqlite,postgres}`: a database built exactly as the release builds it
//!   (its migrations, the released files that the first test holds frozen, then rows written
//!   by plain SQL: accounts, encrypted credentials, live and soft-deleted content, jobs
//!   in every state) is opened by this code, migrated, and used through the `Store`
//!   API: content, accounts and queue are intact and work.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};
use tributary_sdk::{Credentials, Output};
use tributary_store::prelude::*;
use tributary_store::{
    Backend, Cipher, ContentQuery, JobCompletion, JobFilter, JobState, UserIntegrationStatus,
};

/// A released migration: version, description, SHA-384 of the file (sqlx's checksum).
type Released = (i64, &'static str, &'static str);

/// The released migrations, per backend.
const RELEASED: [(&str, [Released; 2]); 2] = [
    (
        "sqlite",
        [
            (
                1,
                "init",
                "a5c625ca4dd1ba0c926ff80ce78699190d2596f775a0b26b899f191aa33e2e4b\
                 adb8c827b33de630d19361d1fd9fc0ac",
            ),
            (
                2,
                "given up fetches are known",
                "5d4f47169229f40286ccf746e11ca70954f5d924fb0b87c9796bf56df697a219\
                 4d175394a86e775f82ab66c4aa7daee3",
            ),
        ],
    ),
    (
        "postgres",
        [
            (
                1,
                "init",
                "fd5d5d9a065a84231af792de144a7aaaa2ba3d4cf96d2e7cb6d3dc72791b3c59\
                 566aa720af1db2af0336f24b3dd1d228",
            ),
            (
                2,
                "given up fetches are known",
                "5d4f47169229f40286ccf746e11ca70954f5d924fb0b87c9796bf56df697a219\
                 4d175394a86e775f82ab66c4aa7daee3",
            ),
        ],
    ),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn migrator_of(backend: &str) -> Migrator {
    match backend {
        "sqlite" => tributary_store::sqlite::migrator(),
        _ => tributary_store::postgres::migrator(),
    }
}

/// The release's migrations: the released files themselves, which
/// `released_migrations_never_change` holds to the checksums the release recorded.
fn released_migrator(backend: &str) -> Migrator {
    let files = match backend {
        "sqlite" => [
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_given_up_fetches_are_known.sql"),
        ],
        _ => [
            include_str!("../migrations/postgres/0001_init.sql"),
            include_str!("../migrations/postgres/0002_given_up_fetches_are_known.sql"),
        ],
    };
    let released = RELEASED.iter().find(|(b, _)| *b == backend).unwrap().1;
    Migrator::with_migrations(
        released
            .iter()
            .zip(files)
            .map(|(&(version, description, _), sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[test]
fn released_migrations_never_change() {
    for (backend, released) in RELEASED {
        let current = migrator_of(backend);
        let fixture = released_migrator(backend);
        for (version, description, checksum) in released {
            let find = |m: &Migrator| {
                m.iter()
                    .find(|m| m.version == version)
                    .map(|m| (m.description.to_string(), hex(&m.checksum)))
            };
            assert_eq!(
                find(&current),
                Some((description.to_owned(), checksum.to_owned())),
                "{backend} migration {version} ({description}) was released and has changed: \
                 a released migration never changes (deployed databases recorded its \
                 checksum and refuse to start); put the change in a new numbered file \
                 (migrations/{backend}/000N_what_it_does.sql) and list it in \
                 `crate::shared::migrations!` instead"
            );
            assert_eq!(
                find(&fixture),
                Some((description.to_owned(), checksum.to_owned())),
                "the release's migrator must hold the released files as they were"
            );
        }
        // New migrations come after the released ones, numbered in order.
        let versions: Vec<i64> = current.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=i64::try_from(versions.len()).unwrap()).collect();
        assert_eq!(
            versions, expected,
            "{backend} migrations are numbered 1, 2, 3, ..."
        );
    }
}

/// What the release's database holds, written by plain SQL as the release wrote it
/// (ids are 1, 2, ... in insertion order on a fresh database). Times are text in the
/// release's SQLite form, which PostgreSQL reads as `timestamptz`; `$1` and `$2` are the
/// two accounts' sealed credentials.
const RELEASE_ROWS: &[&str] = &[
    "INSERT INTO users (external_ref, created_at) VALUES ('alice', '2025-01-02T03:04:05.006Z')",
    "INSERT INTO user_integrations (user_id, integration_domain, credentials, settings, status,
         sync_state, last_synced_at, created_at, updated_at, next_start_at, next_history_at)
     VALUES (1, 'gmail', $1, '{\"label\":\"INBOX\"}', 'active', '{\"lastHistoryId\":\"77\"}',
         '2025-01-02T03:05:00.000Z', '2025-01-02T03:04:05.006Z', '2025-01-02T03:05:00.000Z',
         9000000000000, 9000000000000)",
    "INSERT INTO user_integrations (user_id, integration_domain, credentials, status,
         last_error, created_at, updated_at)
     VALUES (1, 'gmail', $2, 'paused', 'paused by the operator',
         '2025-01-02T03:04:05.006Z', '2025-01-02T03:04:05.006Z')",
    "INSERT INTO user_integration_content (user_id, user_integration_id, integration_domain,
         external_id, external_timestamp, content, content_size, created_at, updated_at,
         deleted_at, is_deleted)
     VALUES (1, 1, 'gmail', 'm1', '2024-12-31T23:00:00.000Z', '{\"subject\":\"hello\"}', 19,
             '2025-01-02T03:05:00.000Z', '2025-01-02T03:05:00.000Z', NULL, FALSE),
            (1, 1, 'gmail', 'm2', NULL, '{\"subject\":\"gone\"}', 18,
             '2025-01-02T03:05:00.000Z', '2025-01-02T03:06:00.000Z',
             '2025-01-02T03:06:00.000Z', TRUE)",
    "INSERT INTO jobs (user_integration_id, task_type, payload, item_id, dedupe_key, priority,
         state, attempts, max_attempts, run_at, fair_seq, locked_by, lease_expires_at,
         error_class, last_error, created_at, finished_at)
     VALUES (1, 'start', 'null', NULL, 'start', 1, 'completed', 1, 5, 1000, 0, NULL, NULL,
             NULL, NULL, 1000, 2000),
            (1, 'fetchMessage', '{\"id\":\"m3\"}', 'm3', 'item:m3', 2, 'available', 0, 5, 1000,
             1, NULL, NULL, NULL, NULL, 1000, NULL),
            (1, 'fetchMessage', '{\"id\":\"m4\"}', 'm4', 'item:m4', 2, 'running', 1, 5, 1000, 2,
             'old-worker', 5000, NULL, NULL, 1000, NULL),
            (1, 'fetchMessage', '{\"id\":\"m5\"}', 'm5', 'item:m5', 2, 'dead', 5, 5, 1000, 3,
             NULL, NULL, 'transient', 'server said 503', 1000, 3000),
            (2, 'fetchMessage', '{\"id\":\"p1\"}', 'p1', 'item:p1', 2, 'available', 0, 5, 1000,
             1, NULL, NULL, NULL, NULL, 1000, NULL)",
    "INSERT INTO job_fair_counters (user_integration_id, priority, next_seq)
     VALUES (1, 2, 4), (2, 2, 2)",
    "INSERT INTO job_fair_frontier (priority, seq) VALUES (1, 0), (2, 0)",
    "INSERT INTO job_schedules (integration_domain, start_every_ms, history_task,
         history_every_ms, max_attempts)
     VALUES ('gmail', 60000, 'checkHistory', 10000, 5)",
];

fn creds(token: &str) -> Credentials {
    let mut c = Credentials::default();
    c.set("refreshToken", token);
    c
}

/// Builds the release's database at `url` (migrations from the fixtures, then rows).
async fn build_release_database(backend: &str, url: &str, cipher: &Cipher) {
    let sealed = [
        cipher.encrypt_credentials(&creds("token-one")).unwrap(),
        cipher.encrypt_credentials(&creds("token-two")).unwrap(),
    ];
    macro_rules! build {
        ($pool:expr) => {{
            let pool = $pool;
            released_migrator(backend).run(&pool).await.unwrap();
            for sql in RELEASE_ROWS {
                let mut q = sqlx::query(AssertSqlSafe(*sql));
                if sql.contains("$2") {
                    q = q.bind(&sealed[0]).bind(&sealed[1]);
                } else if sql.contains("$1") {
                    q = q.bind(&sealed[0]);
                }
                q.execute(&pool).await.unwrap();
            }
            pool.close().await;
        }};
    }
    match backend {
        "sqlite" => {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                .unwrap()
                .create_if_missing(true);
            build!(sqlx::SqlitePool::connect_with(options).await.unwrap())
        }
        _ => build!(sqlx::PgPool::connect(url).await.unwrap()),
    }
}

/// Opens the release's database with this code and uses it through the API.
async fn upgrade_and_use(store: &dyn Store, backend: Backend) {
    assert_eq!(store.backend(), backend);
    store.migrate().await.unwrap();

    // Accounts: rows, settings, sync state, status and credentials (decrypted).
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].external_ref, "alice");
    let accounts = store
        .list_user_integrations(Some(users[0].id))
        .await
        .unwrap();
    assert_eq!(accounts.len(), 2);
    let (one, two) = (&accounts[0], &accounts[1]);
    assert_eq!(one.credentials.get("refreshToken"), Some("token-one"));
    assert_eq!(two.credentials.get("refreshToken"), Some("token-two"));
    assert_eq!(one.settings.get("label"), Some(&json!("INBOX")));
    assert_eq!(one.sync_state.get("lastHistoryId"), Some(&json!("77")));
    assert_eq!(one.status, UserIntegrationStatus::Active);
    assert_eq!(two.status, UserIntegrationStatus::Paused);
    assert_eq!(two.last_error.as_deref(), Some("paused by the operator"));
    assert_eq!(store.check_key(10).await.unwrap().accounts, 2);

    // Content: the live item and the soft-deleted one.
    let counts = store.content_counts(one.id).await.unwrap();
    assert_eq!((counts.items, counts.deleted), (1, 1));
    let all = store
        .list_content(&ContentQuery {
            user_integration_id: Some(one.id),
            include_deleted: true,
            ..ContentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].external_id, "m1");
    assert_eq!(all[0].content, json!({"subject": "hello"}));
    assert!(!all[0].is_deleted);
    assert!(all[1].is_deleted && all[1].deleted_at.is_some());
    let known = store
        .content_exists(
            one.id,
            &["m1".into(), "m2".into(), "m3".into(), "m5".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        known,
        HashSet::from(["m1".to_owned(), "m3".to_owned(), "m5".to_owned()]),
        "stored, queued and given-up items are known; the deleted one is not"
    );

    // Queue: every state as the release left it.
    let count = |state: JobState| async move {
        store
            .job_counts(None)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!(count(JobState::Available).await, 2);
    assert_eq!(count(JobState::Running).await, 1);
    assert_eq!(count(JobState::Completed).await, 1);
    assert_eq!(count(JobState::Dead).await, 1);

    // The dead worker's job comes back; the queue works: claim, complete, read.
    assert_eq!(store.requeue_expired(10_000).await.unwrap(), 1);
    let claimed = store.claim("new-worker", 10, 60_000, 20_000).await.unwrap();
    let items: HashSet<&str> = claimed
        .iter()
        .filter_map(|j| j.item_id.as_deref())
        .collect();
    // m4 came back at a random moment within 2 s of 10 s; p1's account is paused.
    assert_eq!(items, HashSet::from(["m3", "m4"]), "{claimed:?}");
    let m3 = claimed
        .iter()
        .find(|j| j.item_id.as_deref() == Some("m3"))
        .unwrap();
    let reports = store
        .complete_jobs(
            &[JobCompletion {
                lease: m3.lease(),
                user_integration_id: one.id,
                user_id: one.user_id,
                integration_domain: one.integration_domain.clone(),
                outputs: vec![Output::item("m3", None, json!({"subject": "new"}))],
                children: Vec::new(),
                sync_state_patch: None,
                credentials: None,
            }],
            21_000,
        )
        .await
        .unwrap();
    assert!(reports[0].applied);
    assert_eq!(reports[0].inserted, 1);
    let m3_item = store
        .list_content(&ContentQuery {
            user_integration_id: Some(one.id),
            ..ContentQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.external_id == "m3")
        .unwrap();
    assert_eq!(
        store.get_content(m3_item.id).await.unwrap().content["subject"],
        "new"
    );

    // The dead job is retried; the paused account resumes and its job is claimed.
    let dead = store
        .list_jobs(&JobFilter {
            state: Some(JobState::Dead),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    store.retry_job(dead[0].id, 22_000).await.unwrap();
    store
        .set_user_integration_status(two.id, UserIntegrationStatus::Active, None)
        .await
        .unwrap();
    let claimed = store.claim("new-worker", 10, 60_000, 23_000).await.unwrap();
    let items: HashSet<&str> = claimed
        .iter()
        .filter_map(|j| j.item_id.as_deref())
        .collect();
    assert!(items.contains("m5") && items.contains("p1"), "{claimed:?}");
}

mod upgrade {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        let guard = tributary_store::testing::sqlite_test_database();
        build_release_database("sqlite", &guard.url(), &guard.cipher()).await;
        let store = tributary_store::sqlite::SqliteStore::connect(&guard.url(), guard.cipher())
            .await
            .unwrap();
        upgrade_and_use(&store, Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(guard) = tributary_store::testing::postgres_test_database().await else {
            println!("skipped: PostgreSQL is not reachable");
            return;
        };
        build_release_database("postgres", guard.url(), &guard.cipher()).await;
        let store = tributary_store::postgres::PgStore::connect(guard.url(), guard.cipher())
            .await
            .unwrap();
        upgrade_and_use(&store, Backend::Postgres).await;
        drop(store);
    }
}

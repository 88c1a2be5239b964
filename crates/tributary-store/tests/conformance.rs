//! The conformance suite: every scenario runs on SQLite (`sqlite::<name>`) and on
//! PostgreSQL (`postgres::<name>`), through the `Store` trait only (plus raw reads of
//! the credentials column to prove they are encrypted).
//!
//! PostgreSQL tests need a server (`TRIBUTARY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without one they print that they
//! skipped, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sqlx::Row;
use tributary_sdk::{Credentials, ItemRef, Output, Task};
use tributary_store::{
    AccountScope, Backend, Cipher, ContentQuery, DomainSchedule, FailureAction, Job, JobCompletion,
    JobFailure, JobFilter, JobLease, JobState, NewJob, NewUserIntegration, Store, StoreError,
    UserIntegrationStatus,
};

/// What a scenario gets: the store, plus the database URL and key for raw access and
/// for opening more connections.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
    cipher: Cipher,
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, guard) = tributary_store::testing::sqlite_test_store().await;
                    let ctx = super::Ctx { store, url: guard.url(), cipher: guard.cipher() };
                    super::$name(&ctx).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = tributary_store::testing::postgres_test_store().await else {
                        println!("skipped: PostgreSQL is not reachable");
                        return;
                    };
                    let ctx = super::Ctx {
                        store: db.store.clone(),
                        url: db.url.clone(),
                        cipher: db.cipher(),
                    };
                    super::$name(&ctx).await;
                }
            )*
        }
    };
}

conformance!(
    migrate_twice,
    rate_budgets_refill_take_and_share,
    users,
    link_and_encrypted_credentials,
    status_changes,
    upsert_is_idempotent_and_restores,
    content_listing_and_counts,
    content_exists_counts_pending_item_jobs,
    known_items_compare_versions,
    enqueue_dedupes_pending_keys,
    asking_again_during_a_run_reruns_once,
    claims_can_be_scoped_to_one_account,
    claim_orders_by_priority_then_fairness_then_age,
    fairness_idle_account_does_not_jump_ahead,
    resumed_account_does_not_monopolise_the_queue,
    nul_characters_are_stored_safely,
    nul_characters_are_replaced_alike_in_every_text,
    paused_accounts_are_not_claimed,
    leases_renew_expire_and_die,
    stale_attempts_are_fenced,
    complete_jobs_commits_everything_at_once,
    complete_jobs_applies_a_batch_in_order,
    deletes_and_items_of_one_batch_keep_their_order,
    fail_job_actions,
    release_returns_jobs_uncounted,
    retry_dead_and_failed_jobs,
    schedule_due_enqueues_once_and_collapses_ticks,
    concurrent_schedulers_enqueue_exactly_once,
    claims_take_the_due_accounts_a_tick_left,
    a_tick_enqueues_at_most_its_limit,
    concurrent_claims_never_share_a_job,
    job_listing_counts_and_prune,
    account_overview_counts_every_account_at_once,
    pruning_removes_only_old_completed_jobs,
    pruned_space_is_reused,
    unknown_ids_are_not_found,
);

// ---------------------------------------------------------------------------
// helpers

const SECRET: &str = "s3cr3t-refresh-token-value";

fn creds(secret: &str) -> Credentials {
    let mut c = Credentials::default();
    c.set("refreshToken", secret);
    c.set("clientId", "client-1");
    c
}

async fn account(ctx: &Ctx, user_ref: &str, domain: &str) -> (i64, i64) {
    let user = ctx.store.create_user(user_ref).await.unwrap();
    let ui = ctx
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: domain.into(),
            credentials: creds(SECRET),
            settings: Map::new(),
        })
        .await
        .unwrap();
    (user.id, ui.id)
}

fn new_job(uid: i64, task_type: &str, priority: i16) -> NewJob {
    NewJob {
        user_integration_id: uid,
        task: Task::new(task_type, Value::Null),
        priority,
        dedupe_key: None,
        max_attempts: 3,
        run_at: 0,
    }
}

fn item_job(uid: i64, item: &str, priority: i16) -> NewJob {
    let mut job = new_job(uid, "fetchItem", priority);
    job.task = Task {
        task_type: "fetchItem".into(),
        payload: json!({ "id": item }),
        item_id: Some(item.into()),
        dedupe_key: None,
    };
    job
}

fn keyed_job(uid: i64, task_type: &str, key: &str) -> NewJob {
    let mut job = new_job(uid, task_type, 1);
    job.dedupe_key = Some(key.into());
    job
}

fn completion(job: &Job, user_id: i64, domain: &str, outputs: Vec<Output>) -> JobCompletion {
    JobCompletion {
        lease: job.lease(),
        user_integration_id: job.user_integration_id,
        user_id,
        integration_domain: domain.into(),
        outputs,
        children: Vec::new(),
        sync_state_patch: None,
        credentials: None,
    }
}

/// Enqueues one job, claims it (the queue must hold nothing else claimable) and
/// completes it with `outputs` at `now`.
async fn run_outputs(
    ctx: &Ctx,
    user_id: i64,
    uid: i64,
    outputs: Vec<Output>,
    now: i64,
) -> tributary_store::CompletionReport {
    ctx.store
        .enqueue(&[new_job(uid, "list", 2)], now)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 10, 60_000, now).await.unwrap();
    assert_eq!(claimed.len(), 1, "the queue must hold only this job");
    let reports = ctx
        .store
        .complete_jobs(&[completion(&claimed[0], user_id, "gmail", outputs)], now)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].applied);
    reports[0]
}

fn ms(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t).unwrap()
}

async fn raw_credentials(ctx: &Ctx, uid: i64) -> Vec<u8> {
    match ctx.store.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            let row = sqlx::query("SELECT credentials FROM user_integrations WHERE id = ?1")
                .bind(uid)
                .fetch_one(&pool)
                .await
                .unwrap();
            let bytes = row.get::<Vec<u8>, _>("credentials");
            pool.close().await;
            bytes
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            let row = sqlx::query("SELECT credentials FROM user_integrations WHERE id = $1")
                .bind(uid)
                .fetch_one(&pool)
                .await
                .unwrap();
            let bytes = row.get::<Vec<u8>, _>("credentials");
            pool.close().await;
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn jobs_of(ctx: &Ctx, uid: i64, state: Option<JobState>) -> Vec<Job> {
    ctx.store
        .list_jobs(&JobFilter {
            state,
            user_integration_id: Some(uid),
            limit: Some(10_000),
        })
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------
// scenarios

async fn migrate_twice(ctx: &Ctx) {
    ctx.store.migrate().await.unwrap();
    ctx.store.migrate().await.unwrap();
    assert!(ctx.store.list_users().await.unwrap().is_empty());
}

async fn users(ctx: &Ctx) {
    let a = ctx.store.create_user("alice").await.unwrap();
    let b = ctx.store.create_user("bob").await.unwrap();
    assert_eq!(a.external_ref, "alice");
    assert!(b.id > a.id);
    let e = ctx.store.create_user("alice").await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains("alice"), "{e}");
    let all = ctx.store.list_users().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|u| u.external_ref.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(ctx.store.get_user(a.id).await.unwrap(), a);
}

async fn link_and_encrypted_credentials(ctx: &Ctx) {
    let user = ctx.store.create_user("u").await.unwrap();
    let mut settings = Map::new();
    settings.insert("apiBaseUrl".into(), json!("http://127.0.0.1:1234"));
    let ui = ctx
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "gmail".into(),
            credentials: creds(SECRET),
            settings: settings.clone(),
        })
        .await
        .unwrap();
    assert_eq!(ui.status, UserIntegrationStatus::Active);
    assert_eq!(ui.credentials, creds(SECRET));
    assert_eq!(ui.settings, settings);
    assert!(ui.sync_state.is_empty());
    assert_eq!(ui.last_synced_at, None);
    assert!(!format!("{ui:?}").contains(SECRET));

    let got = ctx.store.get_user_integration(ui.id).await.unwrap();
    assert_eq!(got.credentials.get("refreshToken"), Some(SECRET));
    assert_eq!(got.settings, settings);

    let raw = raw_credentials(ctx, ui.id).await;
    assert!(!contains(&raw, SECRET), "plaintext secret stored");
    assert!(
        !contains(&raw, "refreshToken"),
        "plaintext field name stored"
    );
    assert!(ctx.cipher.decrypt(&raw).is_ok());
    assert!(Cipher::random_for_tests().decrypt(&raw).is_err());

    // Re-authorization replaces the credentials.
    ctx.store
        .update_credentials(ui.id, &creds("new-secret-value"))
        .await
        .unwrap();
    let got = ctx.store.get_user_integration(ui.id).await.unwrap();
    assert_eq!(
        got.credentials.get("refreshToken"),
        Some("new-secret-value")
    );
    assert!(!contains(
        &raw_credentials(ctx, ui.id).await,
        "new-secret-value"
    ));

    // Listing.
    let other = ctx.store.create_user("v").await.unwrap();
    let (_, ui2) = (
        other.id,
        ctx.store
            .create_user_integration(NewUserIntegration {
                user_id: other.id,
                integration_domain: "slack".into(),
                credentials: creds("x"),
                settings: Map::new(),
            })
            .await
            .unwrap(),
    );
    let mine = ctx
        .store
        .list_user_integrations(Some(user.id))
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|u| u.id).collect::<Vec<_>>(), [ui.id]);
    let all = ctx.store.list_user_integrations(None).await.unwrap();
    assert_eq!(
        all.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ui.id, ui2.id]
    );
    let some = ctx
        .store
        .get_user_integrations(&[ui2.id, 99_999, ui.id])
        .await
        .unwrap();
    let mut ids: Vec<i64> = some.iter().map(|u| u.id).collect();
    ids.sort();
    assert_eq!(ids, [ui.id, ui2.id]);
    assert!(
        ctx.store
            .get_user_integrations(&[])
            .await
            .unwrap()
            .is_empty()
    );

    // Linking to an unknown user.
    let e = ctx
        .store
        .create_user_integration(NewUserIntegration {
            user_id: 99_999,
            integration_domain: "gmail".into(),
            credentials: creds("x"),
            settings: Map::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound { what: "user", .. }),
        "{e:?}"
    );
}

async fn status_changes(ctx: &Ctx) {
    let (_, uid) = account(ctx, "u", "gmail").await;
    ctx.store
        .set_user_integration_status(
            uid,
            UserIntegrationStatus::NeedsReauth,
            Some("token revoked"),
        )
        .await
        .unwrap();
    let ui = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(ui.status, UserIntegrationStatus::NeedsReauth);
    assert_eq!(ui.last_error.as_deref(), Some("token revoked"));
    for status in [
        UserIntegrationStatus::Paused,
        UserIntegrationStatus::Error,
        UserIntegrationStatus::Unlinked,
        UserIntegrationStatus::Active,
    ] {
        ctx.store
            .set_user_integration_status(uid, status, None)
            .await
            .unwrap();
        let ui = ctx.store.get_user_integration(uid).await.unwrap();
        assert_eq!(ui.status, status);
        assert_eq!(ui.last_error, None);
    }

    // Unlinking drops the account's waiting jobs (content stays); others keep theirs.
    let (_, other) = account(ctx, "v", "gmail").await;
    ctx.store
        .enqueue(&[item_job(uid, "m1", 3), item_job(other, "m1", 3)], 0)
        .await
        .unwrap();
    ctx.store
        .set_user_integration_status(uid, UserIntegrationStatus::Unlinked, None)
        .await
        .unwrap();
    assert!(
        jobs_of(ctx, uid, Some(JobState::Available))
            .await
            .is_empty()
    );
    assert_eq!(
        jobs_of(ctx, other, Some(JobState::Available)).await.len(),
        1
    );
}

async fn upsert_is_idempotent_and_restores(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let ts = ms(1_600_000_000_123);
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![
            Output::item("a", Some(ts), json!({"subject": "hello", "body": "wörld"})),
            Output::item("b", None, json!({"subject": "second"})),
            Output::failed("c", 500, "fetch failed"),
            Output::deleted("never-stored"),
        ],
        1_000,
    )
    .await;
    assert_eq!(
        (r.inserted, r.updated, r.deleted, r.unchanged),
        (2, 0, 0, 0)
    );

    let items = ctx
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(uid),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        items.len(),
        2,
        "the failed output and the unknown delete store nothing"
    );
    let a = items.iter().find(|i| i.external_id == "a").unwrap().clone();
    assert_eq!(a.user_id, user_id);
    assert_eq!(a.integration_domain, "gmail");
    assert_eq!(a.external_timestamp, Some(ts));
    assert_eq!(a.content, json!({"subject": "hello", "body": "wörld"}));
    assert_eq!(
        a.content_size,
        json!({"subject": "hello", "body": "wörld"})
            .to_string()
            .len() as i64
    );
    assert_eq!(a.created_at, ms(1_000));
    assert_eq!(a.updated_at, ms(1_000));
    assert!(!a.is_deleted);

    // The same content again: nothing written.
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![
            Output::item("a", Some(ts), json!({"body": "wörld", "subject": "hello"})),
            Output::item("b", None, json!({"subject": "second"})),
        ],
        2_000,
    )
    .await;
    assert_eq!(
        (r.inserted, r.updated, r.deleted, r.unchanged),
        (0, 0, 0, 2)
    );
    assert_eq!(ctx.store.get_content(a.id).await.unwrap(), a);

    // An edit.
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item(
            "a",
            Some(ts),
            json!({"subject": "hello again"}),
        )],
        3_000,
    )
    .await;
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 0));
    let edited = ctx.store.get_content(a.id).await.unwrap();
    assert_eq!(edited.content, json!({"subject": "hello again"}));
    assert_eq!(
        edited.content_size,
        json!({"subject": "hello again"}).to_string().len() as i64
    );
    assert_eq!(edited.created_at, ms(1_000));
    assert_eq!(edited.updated_at, ms(3_000));

    // A deletion (soft), then a second one (no-op).
    let r = run_outputs(ctx, user_id, uid, vec![Output::deleted("a")], 4_000).await;
    assert_eq!(r.deleted, 1);
    let deleted = ctx.store.get_content(a.id).await.unwrap();
    assert!(deleted.is_deleted);
    assert_eq!(deleted.deleted_at, Some(ms(4_000)));
    assert_eq!(
        deleted.content,
        json!({"subject": "hello again"}),
        "soft delete keeps content"
    );
    let r = run_outputs(ctx, user_id, uid, vec![Output::deleted("a")], 5_000).await;
    assert_eq!(r.deleted, 0);
    assert_eq!(
        ctx.store.get_content(a.id).await.unwrap().deleted_at,
        Some(ms(4_000))
    );

    // The item reappears with its old content: restored.
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item(
            "a",
            Some(ts),
            json!({"subject": "hello again"}),
        )],
        6_000,
    )
    .await;
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 0));
    let restored = ctx.store.get_content(a.id).await.unwrap();
    assert!(!restored.is_deleted);
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.id, a.id, "restored in place, never duplicated");
    assert_eq!(
        ctx.store.content_counts(uid).await.unwrap(),
        tributary_store::ContentCounts {
            items: 2,
            deleted: 0
        }
    );
}

async fn content_listing_and_counts(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let (user2, uid2) = account(ctx, "v", "gmail").await;
    let outputs: Vec<Output> = (0..5)
        .map(|i| Output::item(format!("m{i}"), None, json!({"n": i})))
        .collect();
    run_outputs(ctx, user_id, uid, outputs, 1_000).await;
    run_outputs(
        ctx,
        user2,
        uid2,
        vec![Output::item("x", None, json!(1))],
        1_000,
    )
    .await;
    run_outputs(ctx, user_id, uid, vec![Output::deleted("m1")], 2_000).await;
    run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item("m4", None, json!({"n": 44}))],
        3_000,
    )
    .await;

    let q = |include_deleted, since, after_id, limit| ContentQuery {
        user_integration_id: Some(uid),
        include_deleted,
        since,
        after_id,
        limit,
    };
    let ids = |items: Vec<tributary_store::ContentItem>| {
        items.into_iter().map(|i| i.external_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(ctx
            .store
            .list_content(&q(false, None, None, None))
            .await
            .unwrap()),
        ["m0", "m2", "m3", "m4"]
    );
    assert_eq!(
        ids(ctx
            .store
            .list_content(&q(true, None, None, None))
            .await
            .unwrap()),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    assert_eq!(
        ids(ctx
            .store
            .list_content(&q(true, Some(ms(2_000)), None, None))
            .await
            .unwrap()),
        ["m1", "m4"]
    );
    let page1 = ctx
        .store
        .list_content(&q(false, None, None, Some(2)))
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    let page2 = ctx
        .store
        .list_content(&q(false, None, Some(page1[1].id), Some(2)))
        .await
        .unwrap();
    assert_eq!(ids(page2), ["m3", "m4"]);
    let everyone = ctx
        .store
        .list_content(&ContentQuery::default())
        .await
        .unwrap();
    assert_eq!(everyone.len(), 5);

    assert_eq!(
        ctx.store.content_counts(uid).await.unwrap(),
        tributary_store::ContentCounts {
            items: 4,
            deleted: 1
        }
    );
    let mut stored = ctx.store.stored_external_ids(uid).await.unwrap();
    stored.sort();
    assert_eq!(stored, ["m0", "m2", "m3", "m4"]);
    // A range leaves out the deleted m1, includes its start and excludes its end.
    let between: Vec<String> = ctx
        .store
        .stored_items_between(uid, "m1", "m4")
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.id)
        .collect();
    assert_eq!(between, ["m2", "m3"]);
    assert!(
        ctx.store
            .stored_items_between(uid, "m4", "m4")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn content_exists_counts_pending_item_jobs(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let (_, other) = account(ctx, "v", "gmail").await;
    run_outputs(
        ctx,
        user_id,
        uid,
        vec![
            Output::item("stored", None, json!(1)),
            Output::item("gone", None, json!(2)),
        ],
        1_000,
    )
    .await;
    run_outputs(ctx, user_id, uid, vec![Output::deleted("gone")], 1_500).await;
    // Pending fetches: one available, one running (claimed), one by dedupe key only;
    // a fetch for another account does not count.
    ctx.store
        .enqueue(
            &[item_job(uid, "queued", 3), item_job(uid, "running", 2)],
            2_000,
        )
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 1, 60_000, 2_000).await.unwrap();
    assert_eq!(claimed[0].item_id.as_deref(), Some("running"));
    ctx.store
        .enqueue(
            &[
                keyed_job(uid, "fetchItem", "item:keyed"),
                item_job(other, "elsewhere", 3),
            ],
            2_000,
        )
        .await
        .unwrap();

    let ask: Vec<String> = [
        "stored",
        "gone",
        "queued",
        "running",
        "keyed",
        "elsewhere",
        "new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let known = ctx.store.content_exists(uid, &ask).await.unwrap();
    let expected: HashSet<String> = ["stored", "queued", "running", "keyed"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(known, expected);
    assert!(ctx.store.content_exists(uid, &[]).await.unwrap().is_empty());

    // A completed fetch no longer counts by itself.
    ctx.store
        .complete_jobs(&[completion(&claimed[0], user_id, "gmail", vec![])], 3_000)
        .await
        .unwrap();
    let known = ctx
        .store
        .content_exists(uid, &["running".into()])
        .await
        .unwrap();
    assert!(known.is_empty());

    // A fetch given up on (failed for good, or dead) stays known, so listings do not
    // queue a poison item again; one that will be retried is pending anyway.
    ctx.store
        .enqueue(
            &[
                item_job(uid, "failed", 3),
                item_job(uid, "dead", 3),
                item_job(uid, "retried", 3),
            ],
            4_000,
        )
        .await
        .unwrap();
    let claimed = ctx
        .store
        .claim_scoped("w", 10, 60_000, 4_000, Some(uid))
        .await
        .unwrap();
    let actions = [
        ("queued", FailureAction::Retry { run_at: 9_000 }),
        ("failed", FailureAction::Failed),
        ("dead", FailureAction::Dead),
        ("retried", FailureAction::Retry { run_at: 9_000 }),
    ];
    for (item, action) in actions {
        let job = claimed
            .iter()
            .find(|j| j.item_id.as_deref() == Some(item))
            .unwrap_or_else(|| panic!("{item} was not claimed"));
        let failure = JobFailure {
            lease: job.lease(),
            user_integration_id: uid,
            error_class: "permanent".into(),
            message: format!("{item} went wrong"),
            action,
        };
        assert!(ctx.store.fail_job(&failure, 4_100).await.unwrap());
    }
    let ask: Vec<String> = ["failed", "dead", "retried", "queued", "running"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let known = ctx.store.content_exists(uid, &ask).await.unwrap();
    let expected: HashSet<String> = ["failed", "dead", "retried", "queued"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(known, expected);
}

/// Known at a version: a stored item asked about at another version is unknown (an
/// edit to fetch again); one asked about without a version is known at any version; a
/// pending fetch is known at every version; storing a new version of the same content
/// is an update, and the store reports the version back.
async fn known_items_compare_versions(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "google-drive").await;
    run_outputs(
        ctx,
        user_id,
        uid,
        vec![
            Output::item("doc", None, json!({"name": "a"})).with_version("7"),
            Output::item("plain", None, json!({"name": "b"})),
            // A failure as the engine stores it: a marker at the version that failed.
            Output::item("broken", None, json!({"failed": true, "code": 502})).with_version("3"),
        ],
        1_000,
    )
    .await;
    let ask = [
        ItemRef::at("doc", "7"),
        ItemRef::at("plain", "1"),
        ItemRef::new("broken"),
        ItemRef::at("new", "1"),
    ];
    let known = ctx.store.known_items(uid, &ask).await.unwrap();
    let expected: HashSet<String> = ["doc", "broken"].iter().map(|s| s.to_string()).collect();
    assert_eq!(known, expected, "asked at the stored versions");
    let ask = [
        ItemRef::at("doc", "8"),
        ItemRef::new("doc2"),
        ItemRef::at("broken", "4"),
    ];
    let known = ctx.store.known_items(uid, &ask).await.unwrap();
    assert!(known.is_empty(), "other versions: {known:?}");
    let known = ctx
        .store
        .known_items(uid, &[ItemRef::at("broken", "3")])
        .await
        .unwrap();
    assert_eq!(
        known.len(),
        1,
        "a failure is known at the version that failed"
    );
    let unversioned = ctx
        .store
        .content_exists(uid, &["doc".into()])
        .await
        .unwrap();
    assert_eq!(unversioned.len(), 1, "any version without one");

    // The same content at a new version is an update, and known at the new version.
    let report = run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item("doc", None, json!({"name": "a"})).with_version("8")],
        3_000,
    )
    .await;
    assert_eq!((report.inserted, report.updated), (0, 1));
    let known = ctx
        .store
        .known_items(uid, &[ItemRef::at("doc", "8"), ItemRef::at("plain", "1")])
        .await
        .unwrap();
    assert_eq!(known, HashSet::from(["doc".to_string()]));
    let stored = ctx
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(uid),
            ..ContentQuery::default()
        })
        .await
        .unwrap();
    let versions: Vec<(&str, Option<&str>)> = stored
        .iter()
        .map(|c| (c.external_id.as_str(), c.version.as_deref()))
        .collect();
    assert!(versions.contains(&("doc", Some("8"))), "{versions:?}");
    assert!(versions.contains(&("plain", None)), "{versions:?}");
    assert!(versions.contains(&("broken", Some("3"))), "{versions:?}");

    // A pending fetch is known at every version: it reads the item when it runs.
    ctx.store
        .enqueue(
            &[item_job(uid, "queued", 3), item_job(uid, "doc", 3)],
            4_000,
        )
        .await
        .unwrap();
    let known = ctx
        .store
        .known_items(uid, &[ItemRef::at("queued", "99"), ItemRef::at("doc", "9")])
        .await
        .unwrap();
    assert_eq!(known.len(), 2, "{known:?}");
}

async fn enqueue_dedupes_pending_keys(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let (_, other) = account(ctx, "v", "gmail").await;
    let n = ctx
        .store
        .enqueue(
            &[
                keyed_job(uid, "start", "start"),
                keyed_job(uid, "start", "start"),
                keyed_job(uid, "history", "history"),
                item_job(uid, "m1", 3),
                item_job(uid, "m1", 3),
                new_job(uid, "list", 2),
                new_job(uid, "list", 2),
                keyed_job(other, "start", "start"),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(n, 6);
    assert_eq!(
        ctx.store
            .enqueue(
                &[
                    keyed_job(uid, "start", "start"),
                    keyed_job(uid, "history", "history"),
                    item_job(uid, "m1", 3)
                ],
                0
            )
            .await
            .unwrap(),
        0
    );
    let item = jobs_of(ctx, uid, None)
        .await
        .into_iter()
        .find(|j| j.item_id.as_deref() == Some("m1"))
        .unwrap();
    assert_eq!(item.dedupe_key.as_deref(), Some("item:m1"));
    assert_eq!(item.payload, json!({"id": "m1"}));

    // Still deduplicated while running; free again once completed.
    let claimed = ctx.store.claim("w", 100, 60_000, 0).await.unwrap();
    assert_eq!(claimed.len(), 6);
    assert_eq!(
        ctx.store
            .enqueue(&[keyed_job(uid, "start", "start")], 1)
            .await
            .unwrap(),
        0
    );
    let start = claimed
        .iter()
        .find(|j| j.user_integration_id == uid && j.task_type == "start")
        .unwrap();
    ctx.store
        .complete_jobs(&[completion(start, user_id, "gmail", vec![])], 2)
        .await
        .unwrap();
    // Asked for again while it ran: it runs once more, then the key is free.
    let rerun = ctx.store.get_job(start.id).await.unwrap();
    assert_eq!(rerun.state, JobState::Available);
    let claimed = ctx.store.claim("w", 100, 60_000, 2).await.unwrap();
    let start = claimed.iter().find(|j| j.id == start.id).unwrap();
    ctx.store
        .complete_jobs(&[completion(start, user_id, "gmail", vec![])], 2)
        .await
        .unwrap();
    assert_eq!(
        ctx.store
            .enqueue(&[keyed_job(uid, "start", "start")], 3)
            .await
            .unwrap(),
        1
    );
    assert!(ctx.store.enqueue(&[], 3).await.unwrap() == 0);
}

async fn claim_orders_by_priority_then_fairness_then_age(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "gmail").await;
    let (_, b) = account(ctx, "b", "gmail").await;
    // A backfills first: 10 jobs at priority 3; then B enqueues 10; then a start of B
    // at priority 1 and a future job that is not due.
    let a_jobs: Vec<NewJob> = (0..10).map(|i| item_job(a, &format!("a{i}"), 3)).collect();
    let b_jobs: Vec<NewJob> = (0..10).map(|i| item_job(b, &format!("b{i}"), 3)).collect();
    ctx.store.enqueue(&a_jobs, 0).await.unwrap();
    ctx.store.enqueue(&b_jobs, 1).await.unwrap();
    ctx.store
        .enqueue(&[keyed_job(b, "start", "start")], 2)
        .await
        .unwrap();
    let mut later = new_job(a, "later", 1);
    later.run_at = 1_000;
    ctx.store.enqueue(&[later], 2).await.unwrap();

    let claimed = ctx.store.claim("w", 21, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 21);
    assert_eq!(claimed[0].task_type, "start", "priority 1 first");
    let order: Vec<&str> = claimed[1..]
        .iter()
        .map(|j| j.item_id.as_deref().unwrap())
        .collect();
    // Fair: the two accounts alternate, each oldest first.
    for pair in order.chunks(2) {
        let accounts: HashSet<char> = pair.iter().map(|s| s.chars().next().unwrap()).collect();
        assert_eq!(accounts.len(), 2, "accounts must alternate: {order:?}");
    }
    let a_order: Vec<&str> = order
        .iter()
        .copied()
        .filter(|s| s.starts_with('a'))
        .collect();
    assert_eq!(
        a_order,
        (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
    let b_order: Vec<&str> = order
        .iter()
        .copied()
        .filter(|s| s.starts_with('b'))
        .collect();
    assert_eq!(
        b_order,
        (0..10).map(|i| format!("b{i}")).collect::<Vec<_>>()
    );
    for j in &claimed {
        assert_eq!(j.state, JobState::Running);
        assert_eq!(j.attempts, 1);
        assert_eq!(j.locked_by.as_deref(), Some("w"));
        assert_eq!(j.lease_expires_at, Some(60_010));
    }
    // The future job is not due yet.
    assert!(
        ctx.store
            .claim("w", 10, 60_000, 999)
            .await
            .unwrap()
            .is_empty()
    );
    let due = ctx.store.claim("w", 10, 60_000, 1_000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].task_type, "later");
    assert!(
        ctx.store
            .claim("w", 0, 60_000, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn fairness_idle_account_does_not_jump_ahead(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "gmail").await;
    let (_, b) = account(ctx, "b", "gmail").await;
    let (_, c) = account(ctx, "c", "gmail").await;
    // C runs a little job long ago, then goes idle.
    ctx.store.enqueue(&[new_job(c, "old", 3)], 0).await.unwrap();
    assert_eq!(ctx.store.claim("w", 1, 60_000, 0).await.unwrap().len(), 1);
    // A and B backfill; half of it is done.
    let backfill = |uid: i64, p: &str| -> Vec<NewJob> {
        (0..20)
            .map(|i| item_job(uid, &format!("{p}{i}"), 3))
            .collect()
    };
    ctx.store.enqueue(&backfill(a, "a"), 1).await.unwrap();
    ctx.store.enqueue(&backfill(b, "b"), 1).await.unwrap();
    assert_eq!(ctx.store.claim("w", 20, 60_000, 2).await.unwrap().len(), 20);
    // C wakes up with 4 jobs: they interleave with the rest, not all first.
    let c_jobs: Vec<NewJob> = (0..4).map(|i| item_job(c, &format!("c{i}"), 3)).collect();
    ctx.store.enqueue(&c_jobs, 3).await.unwrap();
    let next = ctx.store.claim("w", 12, 60_000, 4).await.unwrap();
    let owners: Vec<i64> = next.iter().map(|j| j.user_integration_id).collect();
    let c_count = owners.iter().filter(|&&o| o == c).count();
    assert!(
        (2..=4).contains(&c_count),
        "an idle account gets its fair share, no more: {owners:?}"
    );
    assert_ne!(
        &owners[..4],
        &[c, c, c, c],
        "C must not jump the queue: {owners:?}"
    );
    assert!(owners.contains(&a) && owners.contains(&b));
}

async fn resumed_account_does_not_monopolise_the_queue(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "gmail").await;
    let (_, b) = account(ctx, "b", "gmail").await;
    let a_jobs: Vec<NewJob> = (0..10).map(|i| item_job(a, &format!("a{i}"), 3)).collect();
    let b_jobs: Vec<NewJob> = (0..40).map(|i| item_job(b, &format!("b{i}"), 3)).collect();
    ctx.store.enqueue(&a_jobs, 0).await.unwrap();
    ctx.store.enqueue(&b_jobs, 0).await.unwrap();
    // A is paused while B's backlog moves on.
    ctx.store
        .set_user_integration_status(a, UserIntegrationStatus::Paused, None)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 20, 60_000, 1).await.unwrap();
    assert!(claimed.iter().all(|j| j.user_integration_id == b));
    // Resumed, A's waiting jobs share the queue with B's instead of all going first.
    ctx.store
        .set_user_integration_status(a, UserIntegrationStatus::Active, None)
        .await
        .unwrap();
    let next = ctx.store.claim("w", 10, 60_000, 2).await.unwrap();
    let owners: Vec<i64> = next.iter().map(|j| j.user_integration_id).collect();
    let a_count = owners.iter().filter(|&&o| o == a).count();
    assert!(
        (3..=7).contains(&a_count),
        "A and B must interleave: {owners:?}"
    );
    // A's own jobs keep their order.
    let a_items: Vec<&str> = next
        .iter()
        .filter(|j| j.user_integration_id == a)
        .map(|j| j.item_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        a_items,
        (0..a_count).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
}

async fn nul_characters_are_stored_safely(ctx: &Ctx) {
    // PostgreSQL cannot store NUL in text or jsonb; both backends replace it with
    // U+FFFD instead of failing the whole commit.
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item("m\0", None, json!({"body": "a\0b", "k\0": 1}))],
        1_000,
    )
    .await;
    assert_eq!(r.inserted, 1);
    let items = ctx
        .store
        .list_content(&ContentQuery::default())
        .await
        .unwrap();
    assert_eq!(
        items[0].content,
        json!({"body": "a\u{FFFD}b", "k\u{FFFD}": 1})
    );
    assert_eq!(items[0].external_id, "m\u{FFFD}");
    let known = ctx
        .store
        .content_exists(uid, &["m\0".into()])
        .await
        .unwrap();
    assert!(known.contains("m\0"), "asked ids are reported as asked");

    ctx.store.enqueue(&[new_job(uid, "t", 2)], 0).await.unwrap();
    let job = ctx
        .store
        .claim("w", 1, 60_000, 2_000)
        .await
        .unwrap()
        .remove(0);
    let failure = JobFailure {
        lease: job.lease(),
        user_integration_id: uid,
        error_class: "permanent".into(),
        message: "server said \0".into(),
        action: FailureAction::Failed,
    };
    assert!(ctx.store.fail_job(&failure, 2_000).await.unwrap());
    let j = ctx.store.get_job(job.id).await.unwrap();
    assert_eq!(j.last_error.as_deref(), Some("server said \u{FFFD}"));
}

/// The NUL rule, checked on every text the store accepts: each backend must store
/// exactly U+FFFD where a caller's text had NUL (PostgreSQL cannot store NUL; SQLite
/// could, and must not differ).
async fn nul_characters_are_replaced_alike_in_every_text(ctx: &Ctx) {
    const R: char = '\u{FFFD}';
    let user = ctx.store.create_user("u\0r").await.unwrap();
    assert_eq!(user.external_ref, format!("u{R}r"));
    let mut settings = Map::new();
    settings.insert("k\0".into(), json!(["v\0"]));
    let ui = ctx
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "do\0main".into(),
            credentials: creds(SECRET),
            settings,
        })
        .await
        .unwrap();
    let uid = ui.id;
    let stored = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(stored.integration_domain, format!("do{R}main"));
    assert_eq!(
        Value::Object(stored.settings),
        json!({ format!("k{R}"): [format!("v{R}")] })
    );

    // A schedule names the domain as the caller spells it: it still finds the account.
    let schedule = DomainSchedule {
        domain: "do\0main".into(),
        start_every_ms: 60_000,
        history: Some(("check\0History".into(), 10_000)),
        max_attempts: 3,
    };
    let report = ctx.store.schedule_due(&[schedule], 1_000).await.unwrap();
    assert_eq!((report.starts, report.histories), (1, 1));

    let claimed = ctx.store.claim("w\0", 10, 60_000, 1_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for job in &claimed {
        assert_eq!(job.locked_by.as_deref(), Some(format!("w{R}").as_str()));
    }
    let history = claimed
        .iter()
        .find(|j| j.task_type != "start")
        .unwrap()
        .clone();
    assert_eq!(history.task_type, format!("check{R}History"));
    let start = claimed.iter().find(|j| j.task_type == "start").unwrap();
    let leases: Vec<JobLease> = claimed.iter().map(Job::lease).collect();
    let lost = ctx
        .store
        .renew_leases("w\0", &leases, 60_000, 2_000)
        .await
        .unwrap();
    assert!(lost.is_empty(), "the worker's leases are its own: {lost:?}");

    let mut child = item_job(uid, "x\0", 2);
    child.task.task_type = "fetch\0".into();
    child.task.payload = json!({ "p\0": "\0" });
    let mut patch = Map::new();
    patch.insert("c\0".into(), json!("d\0"));
    let mut done = completion(
        start,
        user.id,
        "do\0main",
        vec![Output::item("m\0", None, json!({"a\0": "b\0"}))],
    );
    done.children = vec![child];
    done.sync_state_patch = Some(patch);
    let reports = ctx.store.complete_jobs(&[done], 2_000).await.unwrap();
    assert!(reports[0].applied);
    assert_eq!((reports[0].inserted, reports[0].enqueued), (1, 1));

    let items = ctx
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(uid),
            ..ContentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].integration_domain, format!("do{R}main"));
    assert_eq!(items[0].external_id, format!("m{R}"));
    assert_eq!(
        items[0].content,
        json!({ format!("a{R}"): format!("b{R}") })
    );
    let stored = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(
        Value::Object(stored.sync_state),
        json!({ format!("c{R}"): format!("d{R}") })
    );
    let fetch = jobs_of(ctx, uid, Some(JobState::Available))
        .await
        .into_iter()
        .find(|j| j.item_id.is_some())
        .unwrap();
    assert_eq!(fetch.task_type, format!("fetch{R}"));
    assert_eq!(fetch.item_id, Some(format!("x{R}")));
    assert_eq!(fetch.dedupe_key, Some(format!("item:x{R}")));
    assert_eq!(fetch.payload, json!({ format!("p{R}"): R.to_string() }));
    let known = ctx
        .store
        .content_exists(uid, &["x\0".into(), "m\0".into(), "y\0".into()])
        .await
        .unwrap();
    assert_eq!(
        known,
        HashSet::from(["x\0".to_owned(), "m\0".to_owned()]),
        "asked ids are reported as asked"
    );

    let released = ctx
        .store
        .release_jobs("w\0", &[history.lease()], 3_000)
        .await
        .unwrap();
    assert_eq!(released, 1);
    ctx.store
        .set_user_integration_status(uid, UserIntegrationStatus::Error, Some("bad\0"))
        .await
        .unwrap();
    let stored = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(stored.last_error, Some(format!("bad{R}")));
}

async fn paused_accounts_are_not_claimed(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "gmail").await;
    let (_, b) = account(ctx, "b", "gmail").await;
    let (_, c) = account(ctx, "c", "gmail").await;
    ctx.store
        .enqueue(
            &[new_job(a, "t", 2), new_job(b, "t", 2), new_job(c, "t", 2)],
            0,
        )
        .await
        .unwrap();
    ctx.store
        .set_user_integration_status(a, UserIntegrationStatus::Paused, None)
        .await
        .unwrap();
    ctx.store
        .set_user_integration_status(b, UserIntegrationStatus::NeedsReauth, Some("401"))
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 10, 60_000, 0).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|j| j.user_integration_id)
            .collect::<Vec<_>>(),
        [c]
    );
    ctx.store
        .set_user_integration_status(a, UserIntegrationStatus::Active, None)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 10, 60_000, 0).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|j| j.user_integration_id)
            .collect::<Vec<_>>(),
        [a]
    );
    assert_eq!(jobs_of(ctx, b, Some(JobState::Available)).await.len(), 1);
}

async fn leases_renew_expire_and_die(ctx: &Ctx) {
    let (_, uid) = account(ctx, "u", "gmail").await;
    let mut job = new_job(uid, "t", 2);
    job.max_attempts = 2;
    ctx.store.enqueue(&[job], 0).await.unwrap();
    let claimed = ctx.store.claim("w1", 1, 1_000, 0).await.unwrap();
    let lease = claimed[0].lease();
    assert_eq!(lease.attempt, 1);

    // Renewed at 500: the lease now ends at 1_500.
    assert!(
        ctx.store
            .renew_leases("w1", &[lease], 1_000, 500)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ctx.store
            .get_job(lease.job_id)
            .await
            .unwrap()
            .lease_expires_at,
        Some(1_500)
    );
    // Another worker cannot renew it.
    assert_eq!(
        ctx.store
            .renew_leases("w2", &[lease], 1_000, 600)
            .await
            .unwrap(),
        [lease.job_id]
    );
    assert_eq!(ctx.store.requeue_expired(1_200).await.unwrap(), 0);
    assert_eq!(ctx.store.requeue_expired(1_501).await.unwrap(), 1);
    let j = ctx.store.get_job(lease.job_id).await.unwrap();
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.locked_by, None);
    assert_eq!(j.error_class.as_deref(), Some("lease_expired"));
    assert_eq!(
        j.last_error.as_deref(),
        Some(tributary_store::PROCESS_DIED_ERROR)
    );
    // Back at a random moment within the spread, not all at once.
    assert!(
        (1_501..1_501 + tributary_store::EXPIRED_SPREAD_MS).contains(&j.run_at),
        "{}",
        j.run_at
    );
    // The old holder learns it lost the lease.
    assert_eq!(
        ctx.store
            .renew_leases("w1", &[lease], 1_000, 1_600)
            .await
            .unwrap(),
        [lease.job_id]
    );

    // Second (last) attempt also expires: dead.
    let again = ctx.store.claim("w2", 1, 1_000, 3_600).await.unwrap();
    assert_eq!(again[0].attempts, 2);
    assert_eq!(ctx.store.requeue_expired(4_601).await.unwrap(), 1);
    let j = ctx.store.get_job(lease.job_id).await.unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert_eq!(j.error_class.as_deref(), Some("lease_expired"));
    assert_eq!(
        j.last_error.as_deref(),
        Some(tributary_store::PROCESS_DIED_ERROR)
    );
    assert_eq!(j.finished_at, Some(4_601));
    assert!(
        ctx.store
            .claim("w2", 1, 1_000, 8_000)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stale_attempts_are_fenced(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    ctx.store.enqueue(&[new_job(uid, "t", 2)], 0).await.unwrap();
    let first = ctx.store.claim("w1", 1, 100, 0).await.unwrap().remove(0);
    assert_eq!(ctx.store.requeue_expired(200).await.unwrap(), 1);
    let second = ctx
        .store
        .claim("w2", 1, 100, 2_300)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);

    // The first worker finishes late: nothing of it is applied.
    let mut stale = completion(
        &first,
        user_id,
        "gmail",
        vec![Output::item("x", None, json!(1))],
    );
    stale.sync_state_patch = Some(json!({"cursor": "stale"}).as_object().cloned().unwrap());
    stale.children = vec![new_job(uid, "child", 3)];
    stale.credentials = Some(creds("stale-secret"));
    let r = ctx.store.complete_jobs(&[stale], 2_350).await.unwrap();
    assert!(!r[0].applied);
    assert_eq!(r[0].job_id, first.id);
    assert_eq!((r[0].inserted, r[0].enqueued), (0, 0));
    assert!(ctx.store.stored_external_ids(uid).await.unwrap().is_empty());
    let ui = ctx.store.get_user_integration(uid).await.unwrap();
    assert!(ui.sync_state.is_empty());
    assert_eq!(ui.credentials, creds(SECRET));
    assert_eq!(ui.last_synced_at, None);
    assert_eq!(jobs_of(ctx, uid, None).await.len(), 1);
    let failure = JobFailure {
        lease: first.lease(),
        user_integration_id: uid,
        error_class: "transient".into(),
        message: "late".into(),
        action: FailureAction::Dead,
    };
    assert!(!ctx.store.fail_job(&failure, 2_360).await.unwrap());
    assert_eq!(
        ctx.store
            .release_jobs("w1", &[first.lease()], 2_360)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        ctx.store.get_job(first.id).await.unwrap().state,
        JobState::Running
    );

    // The current holder completes; a second completion of the same lease is refused.
    let ok = completion(
        &second,
        user_id,
        "gmail",
        vec![Output::item("x", None, json!(2))],
    );
    let r = ctx
        .store
        .complete_jobs(&[ok.clone(), ok], 2_400)
        .await
        .unwrap();
    assert!(r[0].applied);
    assert!(!r[1].applied);
    assert_eq!(r[0].inserted, 1);
    assert_eq!(
        ctx.store.get_job(first.id).await.unwrap().state,
        JobState::Completed
    );
}

async fn complete_jobs_commits_everything_at_once(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let (user2, uid2) = account(ctx, "v", "gmail").await;
    ctx.store
        .enqueue(&[new_job(uid, "list", 2), new_job(uid2, "list", 2)], 0)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 2, 60_000, 0).await.unwrap();
    let job1 = claimed
        .iter()
        .find(|j| j.user_integration_id == uid)
        .unwrap();
    let job2 = claimed
        .iter()
        .find(|j| j.user_integration_id == uid2)
        .unwrap();

    let mut c1 = completion(
        job1,
        user_id,
        "gmail",
        vec![Output::item("m1", None, json!({"a": 1}))],
    );
    c1.children = vec![
        item_job(uid, "m2", 3),
        item_job(uid, "m3", 3),
        item_job(uid, "m3", 3),
    ];
    c1.sync_state_patch = Some(
        json!({"historyId": "100", "nested": {"x": 1}, "keep": true})
            .as_object()
            .cloned()
            .unwrap(),
    );
    c1.credentials = Some(creds("rotated-secret-value"));
    let c2 = completion(
        job2,
        user2,
        "gmail",
        vec![Output::item("z", None, json!(0))],
    );
    let reports = ctx.store.complete_jobs(&[c2, c1], 5_000).await.unwrap();
    assert_eq!(reports[0].job_id, job2.id, "reports follow the input order");
    assert_eq!(reports[1].job_id, job1.id);
    assert_eq!((reports[1].inserted, reports[1].enqueued), (1, 2));
    assert_eq!(reports[0].inserted, 1);

    let ui = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(
        ui.credentials.get("refreshToken"),
        Some("rotated-secret-value")
    );
    assert_eq!(ui.last_synced_at, Some(ms(5_000)));
    assert_eq!(
        Value::Object(ui.sync_state.clone()),
        json!({"historyId": "100", "nested": {"x": 1}, "keep": true})
    );
    let raw = raw_credentials(ctx, uid).await;
    assert!(!contains(&raw, "rotated-secret-value"));
    assert_eq!(
        ctx.cipher.decrypt_credentials(&raw).unwrap(),
        creds("rotated-secret-value")
    );

    let children = jobs_of(ctx, uid, Some(JobState::Available)).await;
    let mut items: Vec<&str> = children
        .iter()
        .filter_map(|j| j.item_id.as_deref())
        .collect();
    items.sort();
    assert_eq!(items, ["m2", "m3"]);
    assert!(children.iter().all(|j| j.priority == 3 && j.attempts == 0));
    let known = ctx
        .store
        .content_exists(uid, &["m1".into(), "m2".into(), "m3".into(), "m4".into()])
        .await
        .unwrap();
    assert_eq!(known.len(), 3);
    assert_eq!(
        ctx.store.get_job(job1.id).await.unwrap().finished_at,
        Some(5_000)
    );

    // A second patch merges at the top level: `nested` is replaced, not deep-merged.
    ctx.store
        .enqueue(&[new_job(uid, "list", 2)], 6_000)
        .await
        .unwrap();
    let job = ctx
        .store
        .claim("w", 10, 60_000, 6_000)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.task_type == "list")
        .unwrap();
    let mut c = completion(&job, user_id, "gmail", vec![]);
    c.sync_state_patch = Some(
        json!({"nested": {"y": 2}, "historyId": "200", "gone": null})
            .as_object()
            .cloned()
            .unwrap(),
    );
    ctx.store.complete_jobs(&[c], 7_000).await.unwrap();
    let ui = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(
        Value::Object(ui.sync_state),
        json!({"historyId": "200", "nested": {"y": 2}, "keep": true, "gone": null})
    );
    assert_eq!(
        ui.credentials.get("refreshToken"),
        Some("rotated-secret-value")
    );
    assert_eq!(ui.last_synced_at, Some(ms(7_000)));
}

async fn complete_jobs_applies_a_batch_in_order(ctx: &Ctx) {
    let (user_a, a) = account(ctx, "a", "gmail").await;
    let (user_b, b) = account(ctx, "b", "gmail").await;
    ctx.store
        .enqueue(
            &[
                new_job(a, "one", 2),
                new_job(b, "b", 2),
                new_job(a, "two", 2),
            ],
            0,
        )
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 3, 60_000, 0).await.unwrap();
    let find = |t: &str| claimed.iter().find(|j| j.task_type == t).unwrap();
    let patch = |v: Value| Some(v.as_object().cloned().unwrap());
    // Within an account, the caller's order decides what comes last, whatever the
    // job ids; completions of other accounts in between change nothing.
    let mut two = completion(
        find("two"),
        user_a,
        "gmail",
        vec![Output::item("x", None, json!("v2"))],
    );
    two.sync_state_patch = patch(json!({"cursor": "2", "fromTwo": true}));
    two.credentials = Some(creds("from-two"));
    let mut one = completion(
        find("one"),
        user_a,
        "gmail",
        vec![Output::item("x", None, json!("v1"))],
    );
    one.sync_state_patch = patch(json!({"cursor": "1"}));
    let mut other = completion(
        find("b"),
        user_b,
        "gmail",
        vec![Output::item("x", None, json!("b"))],
    );
    other.sync_state_patch = patch(json!({"cursor": "b"}));
    let reports = ctx
        .store
        .complete_jobs(&[two.clone(), other, one, two], 100)
        .await
        .unwrap();
    assert_eq!(
        reports.iter().map(|r| r.applied).collect::<Vec<_>>(),
        [true, true, true, false],
        "a lease completed twice in one batch applies once"
    );
    assert_eq!((reports[0].inserted, reports[2].updated), (1, 1));
    let ui = ctx.store.get_user_integration(a).await.unwrap();
    assert_eq!(
        Value::Object(ui.sync_state),
        json!({"cursor": "1", "fromTwo": true})
    );
    assert_eq!(ui.credentials.get("refreshToken"), Some("from-two"));
    let items = ctx
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(a),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].content, json!("v1"));
    let ui_b = ctx.store.get_user_integration(b).await.unwrap();
    assert_eq!(Value::Object(ui_b.sync_state), json!({"cursor": "b"}));
    assert_eq!(ui_b.credentials, creds(SECRET));
}

/// Items are written in segments (`ContentSegment`) while deletes apply at once: a
/// delete and an item naming the same id in one batch must still apply in the batch's
/// order, whichever comes first.
async fn deletes_and_items_of_one_batch_keep_their_order(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "a", "gmail").await;
    let r = run_outputs(
        ctx,
        user_id,
        uid,
        vec![Output::item("kept", None, json!("old"))],
        0,
    )
    .await;
    assert_eq!(r.inserted, 1);
    ctx.store
        .enqueue(&[new_job(uid, "one", 2), new_job(uid, "two", 2)], 10)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 2, 60_000, 10).await.unwrap();
    let find = |t: &str| claimed.iter().find(|j| j.task_type == t).unwrap();
    // One deletes "kept" and adds "gone"; two (later in the batch) restores "kept" and
    // deletes "gone".
    let one = completion(
        find("one"),
        user_id,
        "gmail",
        vec![
            Output::deleted("kept"),
            Output::item("gone", None, json!("short-lived")),
            Output::item("plain", None, json!("p")),
        ],
    );
    let two = completion(
        find("two"),
        user_id,
        "gmail",
        vec![
            Output::item("kept", None, json!("new")),
            Output::deleted("gone"),
        ],
    );
    let reports = ctx.store.complete_jobs(&[one, two], 20).await.unwrap();
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.inserted, r.updated, r.deleted))
            .collect::<Vec<_>>(),
        [(2, 0, 1), (0, 1, 1)]
    );
    let items = ctx
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(uid),
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let state: Vec<(String, Value, bool)> = {
        let mut v: Vec<_> = items
            .into_iter()
            .map(|i| (i.external_id, i.content, i.is_deleted))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        state,
        [
            ("gone".to_owned(), json!("short-lived"), true),
            ("kept".to_owned(), json!("new"), false),
            ("plain".to_owned(), json!("p"), false),
        ]
    );
}

async fn fail_job_actions(ctx: &Ctx) {
    let (_, uid) = account(ctx, "u", "gmail").await;
    ctx.store
        .enqueue(
            &[
                new_job(uid, "retry", 2),
                new_job(uid, "dead", 2),
                new_job(uid, "failed", 2),
                new_job(uid, "auth", 2),
            ],
            0,
        )
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 4, 60_000, 0).await.unwrap();
    let by_type: HashMap<&str, &Job> = claimed.iter().map(|j| (j.task_type.as_str(), j)).collect();
    let fail = |t: &str, class: &str, action| JobFailure {
        lease: by_type[t].lease(),
        user_integration_id: uid,
        error_class: class.into(),
        message: format!("{t} went wrong"),
        action,
    };

    assert!(
        ctx.store
            .fail_job(
                &fail("retry", "transient", FailureAction::Retry { run_at: 5_000 }),
                10
            )
            .await
            .unwrap()
    );
    let j = ctx.store.get_job(by_type["retry"].id).await.unwrap();
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.run_at, 5_000);
    assert_eq!(j.attempts, 1);
    assert_eq!(j.error_class.as_deref(), Some("transient"));
    assert_eq!(j.last_error.as_deref(), Some("retry went wrong"));
    assert_eq!(j.locked_by, None);

    assert!(
        ctx.store
            .fail_job(&fail("dead", "transient", FailureAction::Dead), 20)
            .await
            .unwrap()
    );
    let j = ctx.store.get_job(by_type["dead"].id).await.unwrap();
    assert_eq!((j.state, j.finished_at), (JobState::Dead, Some(20)));
    assert_eq!(j.last_error.as_deref(), Some("dead went wrong"));

    assert!(
        ctx.store
            .fail_job(&fail("failed", "permanent", FailureAction::Failed), 30)
            .await
            .unwrap()
    );
    let j = ctx.store.get_job(by_type["failed"].id).await.unwrap();
    assert_eq!((j.state, j.finished_at), (JobState::Failed, Some(30)));
    assert_eq!(j.error_class.as_deref(), Some("permanent"));

    assert!(
        ctx.store
            .fail_job(&fail("auth", "auth", FailureAction::PauseAccount), 40)
            .await
            .unwrap()
    );
    let j = ctx.store.get_job(by_type["auth"].id).await.unwrap();
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempts, 0, "the attempt is not counted");
    let ui = ctx.store.get_user_integration(uid).await.unwrap();
    assert_eq!(ui.status, UserIntegrationStatus::NeedsReauth);
    assert_eq!(ui.last_error.as_deref(), Some("auth went wrong"));
    // Nothing of the paused account runs, not even the due retry.
    assert!(
        ctx.store
            .claim("w", 10, 60_000, 10_000)
            .await
            .unwrap()
            .is_empty()
    );
    ctx.store
        .set_user_integration_status(uid, UserIntegrationStatus::Active, None)
        .await
        .unwrap();
    let again = ctx.store.claim("w", 10, 60_000, 10_000).await.unwrap();
    let mut types: Vec<&str> = again.iter().map(|j| j.task_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["auth", "retry"]);
    assert_eq!(
        again
            .iter()
            .find(|j| j.task_type == "auth")
            .unwrap()
            .attempts,
        1
    );
    // Failing twice is refused by the fence.
    assert!(
        !ctx.store
            .fail_job(&fail("dead", "transient", FailureAction::Dead), 50)
            .await
            .unwrap()
    );
}

async fn asking_again_during_a_run_reruns_once(ctx: &Ctx) {
    let (user_id, uid) = account(ctx, "u", "gmail").await;
    let (_, other) = account(ctx, "v", "gmail").await;
    ctx.store
        .enqueue(&[item_job(uid, "m1", 3), item_job(other, "m1", 3)], 0)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w1", 2, 60_000, 0).await.unwrap();
    let mine = claimed
        .iter()
        .find(|j| j.user_integration_id == uid)
        .unwrap();
    let theirs = claimed
        .iter()
        .find(|j| j.user_integration_id == other)
        .unwrap();
    // Asked for twice while it runs: nothing new is queued, one re-run is noted.
    for _ in 0..2 {
        assert_eq!(
            ctx.store
                .enqueue(&[item_job(uid, "m1", 3)], 5)
                .await
                .unwrap(),
            0
        );
    }
    let reports = ctx
        .store
        .complete_jobs(
            &[
                completion(
                    mine,
                    user_id,
                    "gmail",
                    vec![Output::item("m1", None, json!({"v": 1}))],
                ),
                completion(theirs, user_id, "gmail", Vec::new()),
            ],
            10,
        )
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.applied));
    // The attempt count goes on (a lease is never handed out twice) and the re-run
    // gets a whole budget of attempts of its own.
    let again = ctx.store.get_job(mine.id).await.unwrap();
    assert_eq!(
        (
            again.state,
            again.attempts,
            again.max_attempts,
            again.run_at,
            again.finished_at
        ),
        (JobState::Available, 1, 4, 10, None)
    );
    let untouched = ctx.store.get_job(theirs.id).await.unwrap();
    assert_eq!(
        untouched.state,
        JobState::Completed,
        "another account's twin re-ran"
    );

    // The re-run completes for good.
    let claimed = ctx.store.claim("w1", 5, 60_000, 20).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![mine.id]
    );
    let rerun = &claimed[0];
    assert_eq!(rerun.attempts, 2);
    // A late commit of the first run (its worker thought it still held the job) is
    // fenced off: it read the source before the change that asked for the re-run.
    let late = ctx
        .store
        .complete_jobs(
            &[completion(
                mine,
                user_id,
                "gmail",
                vec![Output::item("m1", None, json!({"v": "stale"}))],
            )],
            25,
        )
        .await
        .unwrap();
    assert!(
        late.iter().all(|r| !r.applied),
        "the first run committed twice"
    );
    ctx.store
        .complete_jobs(&[completion(rerun, user_id, "gmail", Vec::new())], 30)
        .await
        .unwrap();
    let done = ctx.store.get_job(mine.id).await.unwrap();
    assert_eq!(
        (done.state, done.finished_at),
        (JobState::Completed, Some(30))
    );
    assert!(
        ctx.store
            .claim("w1", 5, 60_000, 40)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn claims_can_be_scoped_to_one_account(ctx: &Ctx) {
    let (_, a) = account(ctx, "u", "gmail").await;
    let (_, b) = account(ctx, "v", "gmail").await;
    ctx.store
        .enqueue(
            &[
                new_job(b, "first", 1),
                new_job(a, "x", 5),
                new_job(a, "y", 5),
            ],
            0,
        )
        .await
        .unwrap();
    let only_a = ctx
        .store
        .claim_scoped("w", 10, 60_000, 0, Some(a))
        .await
        .unwrap();
    assert_eq!(only_a.len(), 2);
    assert!(only_a.iter().all(|j| j.user_integration_id == a));
    let rest = ctx.store.claim("w", 10, 60_000, 0).await.unwrap();
    assert_eq!(
        rest.iter()
            .map(|j| j.user_integration_id)
            .collect::<Vec<_>>(),
        vec![b]
    );
}

async fn release_returns_jobs_uncounted(ctx: &Ctx) {
    let (_, uid) = account(ctx, "u", "gmail").await;
    ctx.store
        .enqueue(&[new_job(uid, "a", 2), new_job(uid, "b", 2)], 0)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w1", 2, 60_000, 0).await.unwrap();
    let leases: Vec<JobLease> = claimed.iter().map(Job::lease).collect();
    assert_eq!(
        ctx.store.release_jobs("w2", &leases, 10).await.unwrap(),
        0,
        "not w2's jobs"
    );
    assert_eq!(ctx.store.release_jobs("w1", &leases, 10).await.unwrap(), 2);
    for l in &leases {
        let j = ctx.store.get_job(l.job_id).await.unwrap();
        assert_eq!(
            (j.state, j.attempts, j.locked_by.clone()),
            (JobState::Available, 0, None)
        );
    }
    let again = ctx.store.claim("w2", 2, 60_000, 20).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|j| j.attempts == 1));
}

async fn retry_dead_and_failed_jobs(ctx: &Ctx) {
    let (_, uid) = account(ctx, "u", "gmail").await;
    ctx.store
        .enqueue(
            &[keyed_job(uid, "start", "start"), new_job(uid, "other", 2)],
            0,
        )
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 2, 60_000, 0).await.unwrap();
    for j in &claimed {
        ctx.store
            .fail_job(
                &JobFailure {
                    lease: j.lease(),
                    user_integration_id: uid,
                    error_class: "permanent".into(),
                    message: "bad".into(),
                    action: if j.task_type == "start" {
                        FailureAction::Dead
                    } else {
                        FailureAction::Failed
                    },
                },
                10,
            )
            .await
            .unwrap();
    }
    let start = claimed.iter().find(|j| j.task_type == "start").unwrap();
    let other = claimed.iter().find(|j| j.task_type == "other").unwrap();

    ctx.store.retry_job(other.id, 100).await.unwrap();
    let j = ctx.store.get_job(other.id).await.unwrap();
    assert_eq!(
        (j.state, j.attempts, j.run_at, j.finished_at),
        (JobState::Available, 0, 100, None)
    );
    let e = ctx.store.retry_job(other.id, 100).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains("available"), "{e}");

    // A dead start cannot come back while another start is pending.
    ctx.store
        .enqueue(&[keyed_job(uid, "start", "start")], 50)
        .await
        .unwrap();
    let e = ctx.store.retry_job(start.id, 100).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(
        ctx.store.get_job(start.id).await.unwrap().state,
        JobState::Dead
    );

    let e = ctx.store.retry_job(99_999, 100).await.unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound { what: "job", .. }),
        "{e:?}"
    );
}

fn gmail_schedule() -> DomainSchedule {
    DomainSchedule {
        domain: "gmail".into(),
        start_every_ms: 60_000,
        history: Some(("checkHistory".into(), 10_000)),
        max_attempts: 5,
    }
}

fn slack_schedule() -> DomainSchedule {
    DomainSchedule {
        domain: "slack".into(),
        start_every_ms: 30_000,
        history: None,
        max_attempts: 4,
    }
}

async fn schedule_due_enqueues_once_and_collapses_ticks(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "gmail").await;
    let (_, paused) = account(ctx, "p", "gmail").await;
    let (_, s) = account(ctx, "s", "slack").await;
    let (_, unknown) = account(ctx, "x", "ftp").await;
    ctx.store
        .set_user_integration_status(paused, UserIntegrationStatus::Paused, None)
        .await
        .unwrap();
    let schedules = [gmail_schedule(), slack_schedule()];

    let r = ctx.store.schedule_due(&schedules, 0).await.unwrap();
    assert_eq!((r.starts, r.histories), (2, 1));
    let a_jobs = jobs_of(ctx, a, None).await;
    let start = a_jobs.iter().find(|j| j.task_type == "start").unwrap();
    assert_eq!(
        (
            start.priority,
            start.dedupe_key.as_deref(),
            start.max_attempts,
            &start.payload
        ),
        (1, Some("start"), 5, &Value::Null)
    );
    let history = a_jobs
        .iter()
        .find(|j| j.task_type == "checkHistory")
        .unwrap();
    assert_eq!(
        (history.priority, history.dedupe_key.as_deref()),
        (1, Some("history"))
    );
    assert_eq!(jobs_of(ctx, s, None).await[0].max_attempts, 4);
    assert!(jobs_of(ctx, paused, None).await.is_empty());
    assert!(jobs_of(ctx, unknown, None).await.is_empty());

    // Same tick again, and before the intervals: nothing.
    let r = ctx.store.schedule_due(&schedules, 0).await.unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));
    let r = ctx.store.schedule_due(&schedules, 9_999).await.unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));
    // The history interval passes while its job is still pending: deduplicated.
    let r = ctx.store.schedule_due(&schedules, 10_000).await.unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));

    // Run everything, then let many ticks pass: one job each, not one per missed tick.
    let claimed = ctx.store.claim("w", 10, 60_000, 10_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let done: Vec<JobCompletion> = claimed
        .iter()
        .map(|j| completion(j, 0, "x", vec![]))
        .collect();
    ctx.store.complete_jobs(&done, 10_001).await.unwrap();
    let r = ctx.store.schedule_due(&schedules, 1_000_000).await.unwrap();
    assert_eq!((r.starts, r.histories), (2, 1));
    assert_eq!(jobs_of(ctx, a, Some(JobState::Available)).await.len(), 2);
    // The next start is due one interval after this tick.
    let claimed = ctx.store.claim("w", 10, 60_000, 1_000_000).await.unwrap();
    let done: Vec<JobCompletion> = claimed
        .iter()
        .map(|j| completion(j, 0, "x", vec![]))
        .collect();
    ctx.store.complete_jobs(&done, 1_000_001).await.unwrap();
    let r = ctx
        .store
        .schedule_due(&[gmail_schedule()], 1_009_999)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));
    let r = ctx
        .store
        .schedule_due(&[gmail_schedule()], 1_010_000)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories), (0, 1));
    let r = ctx
        .store
        .schedule_due(&[gmail_schedule()], 1_060_000)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories), (1, 0));
    // No schedules: nothing to do.
    let r = ctx.store.schedule_due(&[], 2_000_000).await.unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));
}

/// Accounts that became due after the last tick (linked, resumed) are turned into jobs
/// by the claims, once; a scoped claim looks at its own account only; a domain the last
/// tick did not name is no longer scheduled.
async fn claims_take_the_due_accounts_a_tick_left(ctx: &Ctx) {
    let (_, a) = account(ctx, "a", "slack").await;
    // Before any tick the store knows no schedule: nothing becomes a job.
    assert!(
        ctx.store
            .claim("w", 10, 60_000, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let r = ctx
        .store
        .schedule_due(&[slack_schedule()], 0)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories, r.left_to_claims), (1, 0, 0));

    // Linked after the tick: due at once, and the next claim takes its start.
    let (_, b) = account(ctx, "b", "slack").await;
    let (_, c) = account(ctx, "c", "slack").await;
    let claimed = ctx
        .store
        .claim_scoped("w", 10, 60_000, 0, Some(b))
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|j| (j.user_integration_id, j.task_type.as_str()))
            .collect::<Vec<_>>(),
        [(b, "start")],
        "a scoped claim turns only its own account into a job"
    );
    // (A claim looks for due accounts at most every `DUE_CHECK_EVERY_MS`, but linking
    // an account makes the next claim look.)
    let claimed = ctx.store.claim("w", 10, 60_000, 1).await.unwrap();
    let mut accounts: Vec<i64> = claimed.iter().map(|j| j.user_integration_id).collect();
    accounts.sort_unstable();
    assert_eq!(accounts, [a, c], "the tick's start of a, and c's start");
    let start = claimed.iter().find(|j| j.user_integration_id == c).unwrap();
    assert_eq!(
        (
            start.task_type.as_str(),
            start.priority,
            start.dedupe_key.as_deref(),
            start.max_attempts
        ),
        ("start", 1, Some("start"), 4)
    );
    // Exactly once: neither the next tick nor a later claim enqueues them again before
    // the interval.
    let r = ctx
        .store
        .schedule_due(&[slack_schedule()], 1_000)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories), (0, 0));
    assert!(
        ctx.store
            .claim("w", 10, 60_000, 2_000)
            .await
            .unwrap()
            .is_empty()
    );
    let mut running = Vec::new();
    for uid in [a, b, c] {
        let jobs = jobs_of(ctx, uid, None).await;
        assert_eq!(jobs.len(), 1);
        running.push(completion(&jobs[0], 0, "slack", vec![]));
    }
    ctx.store.complete_jobs(&running, 3_000).await.unwrap();
    // A paused account is not turned into a job; one interval later the others are.
    ctx.store
        .set_user_integration_status(c, UserIntegrationStatus::Paused, None)
        .await
        .unwrap();
    let claimed = ctx.store.claim("w", 10, 60_000, 31_000).await.unwrap();
    let mut accounts: Vec<i64> = claimed.iter().map(|j| j.user_integration_id).collect();
    accounts.sort_unstable();
    assert_eq!(accounts, [a, b]);
    // A tick that no longer names slack ends its schedule.
    ctx.store
        .schedule_due(&[gmail_schedule()], 62_000)
        .await
        .unwrap();
    assert!(
        ctx.store
            .claim("w", 10, 60_000, 200_000)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A tick over more due accounts than [`TICK_ENQUEUE_LIMIT`] enqueues that many, the
/// most overdue first, and leaves the rest to the claims, which take each once.
async fn a_tick_enqueues_at_most_its_limit(ctx: &Ctx) {
    let limit = usize::try_from(tributary_store::TICK_ENQUEUE_LIMIT).unwrap();
    let total = limit + 7;
    let mut accounts = Vec::with_capacity(total);
    for i in 0..total {
        accounts.push(account(ctx, &format!("u{i}"), "slack").await.1);
    }
    let r = ctx
        .store
        .schedule_due(&[slack_schedule()], 0)
        .await
        .unwrap();
    assert_eq!(
        (r.starts, r.histories, r.left_to_claims),
        (tributary_store::TICK_ENQUEUE_LIMIT, 0, 7)
    );
    let queued: i64 = ctx
        .store
        .job_counts(None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(queued, i64::try_from(limit).unwrap());
    // The claims take the queued starts and the 7 left, each once.
    let mut started = std::collections::HashSet::new();
    loop {
        let claimed = ctx.store.claim("w", 256, 60_000, 5).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        for job in claimed {
            assert_eq!(job.task_type, "start");
            assert!(
                started.insert(job.user_integration_id),
                "account {} started twice",
                job.user_integration_id
            );
        }
    }
    assert_eq!(started.len(), total);
    let r = ctx
        .store
        .schedule_due(&[slack_schedule()], 10)
        .await
        .unwrap();
    assert_eq!((r.starts, r.histories, r.left_to_claims), (0, 0, 0));
}

async fn concurrent_schedulers_enqueue_exactly_once(ctx: &Ctx) {
    let mut accounts = Vec::new();
    for i in 0..40 {
        let domain = if i % 2 == 0 { "gmail" } else { "slack" };
        accounts.push(account(ctx, &format!("u{i}"), domain).await.1);
    }
    // Four schedulers, each with its own connection pool, hammering ticks that all fall
    // within one interval, while a worker completes whatever they enqueue (so that the
    // pending-job deduplication cannot hide a second scheduling of an account).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let store = tributary_store::connect(&ctx.url, ctx.cipher.clone())
            .await
            .unwrap();
        let done = done.clone();
        tokio::spawn(async move {
            let mut completed = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let jobs = store.claim("w", 50, 60_000, 10).await.unwrap();
                let completions: Vec<JobCompletion> =
                    jobs.iter().map(|j| completion(j, 0, "x", vec![])).collect();
                completed += completions.len();
                store.complete_jobs(&completions, 10).await.unwrap();
                if finished && jobs.is_empty() {
                    break completed;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            tributary_store::connect(&ctx.url, ctx.cipher.clone())
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for store in stores {
        tasks.push(tokio::spawn(async move {
            let mut total = (0, 0);
            for tick in 0..25 {
                let r = store
                    .schedule_due(&[gmail_schedule(), slack_schedule()], tick / 5)
                    .await
                    .unwrap();
                total.0 += r.starts;
                total.1 += r.histories;
                tokio::task::yield_now().await;
            }
            total
        }));
    }
    let mut starts = 0;
    let mut histories = 0;
    for t in tasks {
        let (s, h) = t.await.unwrap();
        starts += s;
        histories += h;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let completed = worker.await.unwrap();
    // The worker's claims may turn due accounts into jobs too (the claims' share of
    // the due accounts), so the ticks' own counts are at most the totals; what must
    // hold is one job of each kind per account, whoever enqueued it.
    assert!(starts <= 40, "{starts} starts from the ticks");
    assert!(histories <= 20, "{histories} history checks from the ticks");
    assert_eq!(
        completed, 60,
        "one start per account, one history check per gmail account"
    );
    for (i, uid) in accounts.into_iter().enumerate() {
        let jobs = jobs_of(ctx, uid, None).await;
        assert_eq!(jobs.iter().filter(|j| j.task_type == "start").count(), 1);
        let history = jobs
            .iter()
            .filter(|j| j.task_type == "checkHistory")
            .count();
        assert_eq!(
            history,
            usize::from(i % 2 == 0),
            "history checks of account {uid}"
        );
    }
}

async fn concurrent_claims_never_share_a_job(ctx: &Ctx) {
    let mut all = Vec::new();
    for i in 0..4 {
        let (_, uid) = account(ctx, &format!("u{i}"), "gmail").await;
        all.extend((0..60).map(|n| item_job(uid, &format!("m{n}"), 2 + (n % 3) as i16)));
    }
    ctx.store.enqueue(&all, 0).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        // Half the workers share the test's pool, half have their own.
        let store = if w % 2 == 0 {
            ctx.store.clone()
        } else {
            tributary_store::connect(&ctx.url, ctx.cipher.clone())
                .await
                .unwrap()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(&format!("w{w}"), 3, 60_000, 1).await.unwrap();
                if got.is_empty() {
                    break;
                }
                assert!(
                    got.iter()
                        .all(|j| j.locked_by.as_deref() == Some(format!("w{w}").as_str()))
                );
                mine.extend(got.into_iter().map(|j| j.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} was handed out twice");
        }
    }
    assert_eq!(total, 240);
}

async fn account_overview_counts_every_account_at_once(ctx: &Ctx) {
    let (user_a, a) = account(ctx, "a", "gmail").await;
    let (user_b, b) = account(ctx, "b", "gmail").await;
    // Two accounts of user b sealed with another key (a key change): one active, one
    // unlinked.
    let other_key =
        tributary_store::KeySource::Base64(tributary_store::crypto::generate_base64_key());
    let other = tributary_store::connect(&ctx.url, Cipher::load(&other_key).unwrap())
        .await
        .unwrap();
    let sealed_elsewhere = |settings: Map<String, Value>| NewUserIntegration {
        user_id: user_b,
        integration_domain: "gmail".into(),
        credentials: creds(SECRET),
        settings,
    };
    let c = other
        .create_user_integration(sealed_elsewhere(Map::new()))
        .await
        .unwrap()
        .id;
    let d = other
        .create_user_integration(sealed_elsewhere(Map::new()))
        .await
        .unwrap()
        .id;
    other
        .set_user_integration_status(d, UserIntegrationStatus::Unlinked, None)
        .await
        .unwrap();

    // Account a: two items stored, one of them deleted since; pending jobs at
    // priorities 1 and 3 (one of them running), one failed job, one completed.
    let item = |id: &str| Output::item(id, None, json!({"id": id}));
    run_outputs(ctx, user_a, a, vec![item("x"), item("y")], 1_000).await;
    run_outputs(ctx, user_a, a, vec![Output::deleted("y")], 2_000).await;
    ctx.store
        .enqueue(
            &[
                new_job(a, "p1", 1),
                new_job(a, "p3", 3),
                new_job(a, "p3-again", 3),
                new_job(b, "b1", 2),
                new_job(a, "doomed", 1),
            ],
            3_000,
        )
        .await
        .unwrap();
    let claimed = ctx
        .store
        .claim_scoped("w", 2, 60_000, 3_000, Some(a))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let doomed = claimed.iter().find(|j| j.priority == 1).unwrap();
    ctx.store
        .fail_job(
            &JobFailure {
                lease: doomed.lease(),
                user_integration_id: a,
                error_class: "permanent".into(),
                message: "bad request".into(),
                action: FailureAction::Failed,
            },
            3_000,
        )
        .await
        .unwrap();
    ctx.store
        .set_user_integration_status(b, UserIntegrationStatus::NeedsReauth, Some("revoked"))
        .await
        .unwrap();

    let all = ctx.store.account_overview(AccountScope::All).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.id).collect::<Vec<_>>(),
        [a, b, c, d],
        "every account, by id, even those whose credentials do not decrypt"
    );
    let oa = &all[0];
    assert_eq!((oa.user_id, oa.domain.as_str()), (user_a, "gmail"));
    assert_eq!((oa.items, oa.deleted_items), (1, 1));
    let pending_a: Vec<(i16, i64)> = oa.pending_jobs.iter().map(|(&p, &n)| (p, n)).collect();
    assert_eq!(
        pending_a,
        [(1, 1), (3, 2)],
        "one running, pending by priority"
    );
    assert_eq!(oa.dead_or_failed_jobs, 1);
    assert!(oa.last_synced_at.is_some());
    assert!(!oa.credentials_unreadable);
    let ob = &all[1];
    assert_eq!(ob.status, UserIntegrationStatus::NeedsReauth);
    assert_eq!(ob.last_error.as_deref(), Some("revoked"));
    assert_eq!(
        (ob.items, ob.deleted_items, ob.dead_or_failed_jobs),
        (0, 0, 0)
    );
    assert_eq!(
        ob.pending_jobs
            .iter()
            .map(|(&p, &n)| (p, n))
            .collect::<Vec<_>>(),
        [(2, 1)]
    );
    assert!(!ob.credentials_unreadable);
    assert!(all[2].credentials_unreadable, "sealed with another key");
    assert!(all[2].pending_jobs.is_empty());
    assert!(
        !all[3].credentials_unreadable,
        "an unlinked account's credentials are no longer used"
    );
    // What the overview agrees with: the per-account counts.
    let counts = ctx.store.content_counts(a).await.unwrap();
    assert_eq!((counts.items, counts.deleted), (oa.items, oa.deleted_items));

    let of_b: Vec<i64> = ctx
        .store
        .account_overview(AccountScope::User(user_b))
        .await
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(of_b, [b, c, d]);
    let one = ctx
        .store
        .account_overview(AccountScope::Account(a))
        .await
        .unwrap();
    assert_eq!(one.as_slice(), std::slice::from_ref(oa));
    assert!(
        ctx.store
            .account_overview(AccountScope::Account(d + 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ctx.store
            .account_overview(AccountScope::User(user_b + 100))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn job_listing_counts_and_prune(ctx: &Ctx) {
    let (user_id, a) = account(ctx, "a", "gmail").await;
    let (_, b) = account(ctx, "b", "gmail").await;
    ctx.store
        .enqueue(
            &[
                new_job(a, "one", 2),
                new_job(a, "two", 3),
                new_job(b, "three", 3),
            ],
            0,
        )
        .await
        .unwrap();
    let all = ctx.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.task_type.as_str()).collect::<Vec<_>>(),
        ["three", "two", "one"],
        "newest first"
    );
    assert_eq!(
        ctx.store
            .list_jobs(&JobFilter {
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    let one = all.iter().find(|j| j.task_type == "one").unwrap();
    assert_eq!(
        ctx.store.get_job(one.id).await.unwrap().task(),
        Task::new("one", Value::Null)
    );

    let claimed = ctx.store.claim("w", 1, 60_000, 0).await.unwrap();
    assert_eq!(claimed[0].id, one.id);
    ctx.store
        .complete_jobs(&[completion(&claimed[0], user_id, "gmail", vec![])], 100)
        .await
        .unwrap();
    let counts = ctx.store.job_counts(None).await.unwrap();
    let get = |counts: &[tributary_store::JobCount], s: JobState, p: i16| {
        counts
            .iter()
            .find(|c| c.state == s && c.priority == p)
            .map_or(0, |c| c.count)
    };
    assert_eq!(get(&counts, JobState::Completed, 2), 1);
    assert_eq!(get(&counts, JobState::Available, 3), 2);
    let counts_a = ctx.store.job_counts(Some(a)).await.unwrap();
    assert_eq!(get(&counts_a, JobState::Available, 3), 1);
    assert_eq!(
        ctx.store
            .list_jobs(&JobFilter {
                state: Some(JobState::Completed),
                user_integration_id: Some(a),
                limit: None
            })
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(ctx.store.prune_completed(100, 10).await.unwrap(), 0);
    assert_eq!(ctx.store.prune_completed(101, 0).await.unwrap(), 0);
    assert_eq!(ctx.store.prune_completed(101, 10).await.unwrap(), 1);
    assert!(matches!(
        ctx.store.get_job(one.id).await,
        Err(StoreError::NotFound { what: "job", .. })
    ));
    assert_eq!(
        ctx.store
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // A pruned id is never handed out again, even the newest one (a stale lease on it
    // must never match a new job).
    let newest = all.iter().map(|j| j.id).max().unwrap();
    let rest = ctx.store.claim("w", 10, 60_000, 200).await.unwrap();
    assert_eq!(rest.len(), 2);
    let done: Vec<JobCompletion> = rest
        .iter()
        .map(|j| completion(j, user_id, "gmail", vec![]))
        .collect();
    ctx.store.complete_jobs(&done, 300).await.unwrap();
    assert_eq!(ctx.store.prune_completed(301, 10).await.unwrap(), 2);
    ctx.store
        .enqueue(&[new_job(a, "after", 2)], 400)
        .await
        .unwrap();
    let after = ctx.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(
        after[0].id > newest,
        "id {} was handed out again",
        after[0].id
    );
}

/// What one run of [`prune_script`] saw, as JSON (compared between a store that
/// pruned and one that did not).
type Observations = Vec<Value>;

/// Jobs in every state, then (when `prune`) pruning in batches of 2 with a cutoff
/// that only the five old completed jobs are older than, then the same requests on
/// both stores: enqueues with pending and pruned dedupe keys, the completion of a job
/// asked for again while it ran, and claims across three accounts. Returns what the
/// requests after the pruning saw and the ids of the jobs pruned.
async fn prune_script(ctx: &Ctx, prune: bool) -> (Observations, Vec<i64>) {
    let store = &ctx.store;
    let (ua, a) = account(ctx, "a", "gmail").await;
    let (ub, b) = account(ctx, "b", "gmail").await;
    let (_, c) = account(ctx, "c", "gmail").await;
    let done_at = |job: &Job, at: i64| {
        let user = if job.user_integration_id == a { ua } else { ub };
        let c = completion(job, user, "gmail", vec![]);
        async move { store.complete_jobs(&[c], at).await.unwrap() }
    };
    let claim_only = |n: usize, at: i64| async move {
        let jobs = store.claim("w", n + 1, 600_000, at).await.unwrap();
        assert_eq!(jobs.len(), n, "the queue must hold only these jobs");
        jobs
    };

    // Old completed jobs: A's start (t=10) and four downloads (t=100..300).
    store
        .enqueue(&[keyed_job(a, "start", "start")], 0)
        .await
        .unwrap();
    let start = claim_only(1, 0).await.remove(0);
    done_at(&start, 10).await;
    let items: Vec<NewJob> = ["a0", "a1", "a2", "a3"]
        .iter()
        .map(|i| item_job(a, i, 3))
        .chain([item_job(b, "b0", 3)])
        .collect();
    store.enqueue(&items, 20).await.unwrap();
    let claimed = claim_only(5, 20).await;
    let by_item: HashMap<&str, &Job> = claimed
        .iter()
        .map(|j| (j.item_id.as_deref().unwrap(), j))
        .collect();
    done_at(by_item["a0"], 100).await;
    done_at(by_item["b0"], 150).await;
    done_at(by_item["a1"], 200).await;
    done_at(by_item["a2"], 300).await;
    // Running, and asked for again while it runs: it is to run once more.
    let running = by_item["a3"];
    assert_eq!(store.enqueue(&[item_job(a, "a3", 3)], 30).await.unwrap(), 0);

    // Failed and dead long ago.
    store
        .enqueue(&[new_job(a, "bad", 2), new_job(b, "doomed", 2)], 30)
        .await
        .unwrap();
    let failing = claim_only(2, 30).await;
    for j in &failing {
        let action = if j.task_type == "bad" {
            FailureAction::Failed
        } else {
            FailureAction::Dead
        };
        let failure = JobFailure {
            lease: j.lease(),
            user_integration_id: j.user_integration_id,
            error_class: "permanent".into(),
            message: format!("{} went wrong", j.task_type),
            action,
        };
        assert!(store.fail_job(&failure, 40).await.unwrap());
    }

    // Completed recently (after the cutoff).
    store.enqueue(&[item_job(b, "b1", 3)], 450).await.unwrap();
    let recent = claim_only(1, 450).await.remove(0);
    done_at(&recent, 5_000).await;
    // A's next start: available, with the dedupe key of the completed one.
    assert_eq!(
        store
            .enqueue(&[keyed_job(a, "start", "start")], 500)
            .await
            .unwrap(),
        1
    );
    // Waiting: backlogs of A and B, and a job of C that is not due yet.
    let backlog: Vec<NewJob> = (4..8)
        .map(|i| item_job(a, &format!("a{i}"), 3))
        .chain((2..6).map(|i| item_job(b, &format!("b{i}"), 3)))
        .collect();
    store.enqueue(&backlog, 700).await.unwrap();
    let mut later = new_job(c, "later", 2);
    later.run_at = 10_000;
    store.enqueue(&[later], 700).await.unwrap();

    let before = store.list_jobs(&JobFilter::default()).await.unwrap();
    let old_completed: Vec<i64> = [
        start.id,
        by_item["a0"].id,
        by_item["b0"].id,
        by_item["a1"].id,
        by_item["a2"].id,
    ]
    .to_vec();
    let mut pruned: Vec<i64> = Vec::new();
    if prune {
        // Batches of at most 2, oldest first, until a batch comes back short.
        let mut batches = Vec::new();
        loop {
            let n = store.prune_completed(1_000, 2).await.unwrap();
            batches.push(n);
            let mut now_gone = Vec::new();
            for &id in old_completed.iter().filter(|&id| !pruned.contains(id)) {
                if matches!(store.get_job(id).await, Err(StoreError::NotFound { .. })) {
                    now_gone.push(id);
                }
            }
            assert_eq!(now_gone.len() as u64, n, "batch {batches:?}");
            // Oldest first: what is gone is always a prefix of the finishing order.
            pruned.extend(now_gone);
            assert_eq!(pruned[..], old_completed[..pruned.len()], "oldest first");
            if n < 2 {
                break;
            }
        }
        assert_eq!(batches, [2, 2, 1]);
        assert_eq!(store.prune_completed(1_000, 2).await.unwrap(), 0);
        // Everything else is untouched, field by field.
        let after = store.list_jobs(&JobFilter::default()).await.unwrap();
        let kept: Vec<Value> = before
            .iter()
            .filter(|j| !old_completed.contains(&j.id))
            .map(|j| serde_json::to_value(j).unwrap())
            .collect();
        let after: Vec<Value> = after
            .iter()
            .map(|j| serde_json::to_value(j).unwrap())
            .collect();
        assert_eq!(after, kept);
        let states: HashSet<JobState> = before
            .iter()
            .filter(|j| !old_completed.contains(&j.id))
            .map(|j| j.state)
            .collect();
        assert_eq!(
            states,
            HashSet::from([
                JobState::Available,
                JobState::Running,
                JobState::Completed,
                JobState::Failed,
                JobState::Dead
            ]),
            "every state is kept but old completed"
        );
    }

    // The same requests on both stores.
    let mut seen: Observations = Vec::new();
    // A's start is pending: deduplicated. a0's key is free (its job completed). a3 is
    // running: asked again, nothing is queued.
    for job in [
        keyed_job(a, "start", "start"),
        item_job(a, "a0", 3),
        item_job(a, "a3", 3),
    ] {
        seen.push(json!(store.enqueue(&[job], 6_000).await.unwrap()));
    }
    // The running job asked for again completes into one more run.
    done_at(running, 6_100).await;
    let rerun = store.get_job(running.id).await.unwrap();
    assert_eq!(rerun.state, JobState::Available, "the re-run was lost");
    seen.push(serde_json::to_value(&rerun).unwrap());
    // C wakes up with three downloads; then everything due is claimed, 3 at a time.
    let c_items: Vec<NewJob> = (0..3).map(|i| item_job(c, &format!("c{i}"), 3)).collect();
    store.enqueue(&c_items, 6_200).await.unwrap();
    let mut order = Vec::new();
    loop {
        let jobs = store.claim("w", 3, 600_000, 7_000).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        order.extend(jobs.iter().map(|j| {
            json!([
                j.id,
                j.user_integration_id,
                j.task_type,
                j.item_id,
                j.attempts
            ])
        }));
    }
    let later = store.claim("w", 3, 600_000, 10_000).await.unwrap();
    order.extend(later.iter().map(|j| json!([j.id, j.task_type])));
    seen.push(Value::Array(order));
    seen.push(json!(
        store
            .job_counts(None)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state != JobState::Completed)
            .map(|c| json!([c.state, c.priority, c.count]))
            .collect::<Vec<_>>()
    ));
    (seen, pruned)
}

async fn pruning_removes_only_old_completed_jobs(ctx: &Ctx) {
    // The same script on a twin database that never prunes.
    let (twin, _guards): (Ctx, Box<dyn std::any::Any + Send>) = match ctx.store.backend() {
        Backend::Sqlite => {
            let (store, guard) = tributary_store::testing::sqlite_test_store().await;
            let twin = Ctx {
                store,
                url: guard.url(),
                cipher: guard.cipher(),
            };
            (twin, Box::new(guard))
        }
        Backend::Postgres => {
            let db = tributary_store::testing::postgres_test_store()
                .await
                .unwrap();
            let twin = Ctx {
                store: db.store.clone(),
                url: db.url.clone(),
                cipher: db.cipher(),
            };
            (twin, Box::new(db))
        }
    };
    let (pruned_saw, pruned) = prune_script(ctx, true).await;
    let (twin_saw, none) = prune_script(&twin, false).await;
    assert_eq!(pruned.len(), 5);
    assert!(none.is_empty());
    assert_eq!(
        pruned_saw, twin_saw,
        "pruning changed what enqueues, completions or claims do"
    );
    // And what they did is what the queue promises.
    assert_eq!(pruned_saw[..3], [json!(0), json!(1), json!(0)]);
    let order = pruned_saw[4].as_array().unwrap();
    assert_eq!(order[0][2], "start", "priority 1 first");
    let accounts: Vec<i64> = order[1..order.len() - 1]
        .iter()
        .map(|j| j[1].as_i64().unwrap())
        .collect();
    assert_ne!(
        accounts[..3],
        [accounts[0]; 3],
        "accounts interleave: {accounts:?}"
    );
    assert_eq!(order.last().unwrap()[1], "later");
}

async fn pruned_space_is_reused(ctx: &Ctx) {
    let (user_id, a) = account(ctx, "a", "gmail").await;
    // 10,000 jobs run and are pruned: enough for PostgreSQL's store to vacuum.
    let run = |from: usize, at: i64, finish: bool| async move {
        let jobs: Vec<NewJob> = (from..from + 10_000)
            .map(|i| item_job(a, &format!("m{i}"), 3))
            .collect();
        ctx.store.enqueue(&jobs, at).await.unwrap();
        if !finish {
            return;
        }
        loop {
            let claimed = ctx.store.claim("w", 1_000, 600_000, at).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            let done: Vec<JobCompletion> = claimed
                .iter()
                .map(|j| completion(j, user_id, "gmail", vec![]))
                .collect();
            ctx.store.complete_jobs(&done, at).await.unwrap();
        }
        let mut pruned = 0;
        loop {
            let n = ctx.store.prune_completed(at + 1, 1_000).await.unwrap();
            assert!(n <= 1_000);
            pruned += n;
            if n < 1_000 {
                break;
            }
        }
        assert_eq!(pruned, 10_000);
    };
    run(0, 1_000, true).await;
    match ctx.store.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            let free = |pool: sqlx::SqlitePool| async move {
                sqlx::query_scalar::<_, i64>("PRAGMA freelist_count")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            };
            let freed = free(pool.clone()).await;
            assert!(freed > 0, "pruning freed no pages");
            // The next jobs take their pages from the free list.
            run(10_000, 2_000, false).await;
            assert!(
                free(pool.clone()).await < freed,
                "the freed pages were not reused"
            );
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            let server_vacuums: bool = sqlx::query_scalar(
                "SELECT current_setting('autovacuum')::boolean
                        AND current_setting('track_counts')::boolean",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if server_vacuums {
                println!("the server's autovacuum is on: the store leaves vacuuming to it");
                return;
            }
            // The store's background VACUUM of `jobs` (the wait is bounded; no timing
            // is asserted).
            let mut vacuums = 0;
            for _ in 0..600 {
                vacuums = sqlx::query_scalar::<_, i64>(
                    "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                if vacuums > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert!(
                vacuums > 0,
                "jobs was not vacuumed after 10,000 pruned rows"
            );
            pool.close().await;
        }
    }
}

async fn unknown_ids_are_not_found(ctx: &Ctx) {
    let nf = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::NotFound { what: w, .. }) if w == what => {}
        other => panic!("expected {what} not found, got {other:?}"),
    };
    nf(ctx.store.get_user(42).await.map(|_| ()), "user");
    nf(
        ctx.store.get_user_integration(42).await.map(|_| ()),
        "user integration",
    );
    nf(
        ctx.store
            .set_user_integration_status(42, UserIntegrationStatus::Paused, None)
            .await,
        "user integration",
    );
    nf(
        ctx.store.update_credentials(42, &creds("x")).await,
        "user integration",
    );
    nf(ctx.store.get_content(42).await.map(|_| ()), "content item");
    nf(ctx.store.get_job(42).await.map(|_| ()), "job");
    nf(
        ctx.store
            .enqueue(&[new_job(42, "t", 2)], 0)
            .await
            .map(|_| ()),
        "user integration",
    );
    let e = ctx.store.get_user(42).await.unwrap_err();
    assert_eq!(e.to_string(), "user 42 not found");
}

/// Rate budgets: a key's first use is a full bucket; units come out while they are
/// there, the shortfall is told when they are not (nothing taken), and the bucket
/// refills from the time elapsed, capped at its burst. Keys are independent, and a
/// second store on the same database (another process) sees the same bucket.
async fn rate_budgets_refill_take_and_share(ctx: &Ctx) {
    let store = &ctx.store;
    let key = "gmail/perUser/account/1";
    // burst 10 units, 2 units a second.
    let take = |units: u64, now: i64| store.take_budget_units(key, units, 10, 2.0, now);
    assert_eq!(take(6, 1_000).await.unwrap(), None);
    assert_eq!(take(4, 1_000).await.unwrap(), None);
    let missing = take(3, 1_000).await.unwrap().unwrap();
    assert!((missing - 3.0).abs() < 1e-9, "{missing}");
    // Half a second refills one unit: 2 of 3 still missing, and nothing was taken.
    let missing = take(3, 1_500).await.unwrap().unwrap();
    assert!((missing - 2.0).abs() < 1e-9, "{missing}");
    assert_eq!(take(3, 2_500).await.unwrap(), None);
    // A clock behind the row refills nothing (and takes nothing back).
    assert!(take(1, 2_000).await.unwrap().is_some());
    // A long pause refills only up to the burst.
    assert_eq!(take(10, 100_000).await.unwrap(), None);
    assert!(take(1, 100_000).await.unwrap().is_some());
    // Another key is its own full bucket.
    let other = store
        .take_budget_units("gmail/perProject/project", 10, 10, 2.0, 100_000)
        .await
        .unwrap();
    assert_eq!(other, None);
    // Another process on the same database shares the bucket.
    let second = tributary_store::connect(&ctx.url, ctx.cipher.clone())
        .await
        .unwrap();
    assert!(
        second
            .take_budget_units(key, 1, 10, 2.0, 100_000)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        second
            .take_budget_units(key, 2, 10, 2.0, 101_000)
            .await
            .unwrap(),
        None
    );
}

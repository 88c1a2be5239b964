//! The engine conformance suite: each scenario runs on SQLite and on PostgreSQL.
//!
//! Time is a manual clock: nothing here sleeps to let time pass; retries become due when
//! a test moves the clock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Harness, config, source};
use tributary_engine::{Clock, Pruner, PrunerConfig, RunUntil, Scheduler, domain_schedules};
use tributary_sdk::{Task, serde_json::json};
use tributary_store::{JobState, NewJob, UserIntegrationStatus};
use tributary_testkit::synthetic::Fault;

on_both_backends!(
    full_sync_then_resync_writes_nothing,
    new_item_overtakes_a_running_backfill,
    transient_failures_then_success,
    retry_after_is_honoured,
    auth_failure_pauses_only_that_account,
    permanent_error_is_not_retried,
    always_failing_job_ends_dead,
    accounts_share_one_worker_fairly,
    deletions_soft_delete_and_restore,
    credentials_are_secret,
    bad_tasks_fail_permanently_with_clear_errors,
    graceful_shutdown_commits_what_finished,
    credentials_refreshed_before_a_failure_are_kept,
    a_panic_fails_only_its_job,
    undecodable_items_are_stored_as_markers,
    pruner_removes_completed_jobs_past_retention,
);

/// (a) 10,000 items, 50 per page, sync to exactly 10,000 rows; a second sync with
/// nothing new makes at most 4 list calls and writes nothing.
async fn full_sync_then_resync_writes_nothing(h: Harness) {
    let server = source(10_000, 1).await;
    let ui = h.link(&server, "alice").await;
    h.start(ui.id).await;
    let engine = h.engine(config(4));
    h.run_claimable(&engine).await;

    let stored = h.content(ui.id, false).await;
    assert_eq!(stored.len(), 10_000);
    assert_eq!(h.versions(ui.id).await, server.source().snapshot());
    let fetches = server.source().fetch_counts();
    assert!(
        fetches.values().all(|&n| n == 1),
        "an item was fetched twice"
    );

    server.source().reset_counters();
    h.clock.advance_ms(60_000);
    h.start(ui.id).await;
    let engine = h.engine(config(4));
    h.run_claimable(&engine).await;
    let counts = server.source().counts();
    assert!(
        counts.list_calls <= 4,
        "re-sync made {} list calls",
        counts.list_calls
    );
    assert_eq!(counts.item_fetches, 0);
    let stats = engine.stats().snapshot();
    assert_eq!((stats.items_inserted, stats.items_updated), (0, 0));
    let after = h.content(ui.id, false).await;
    let updated_at = |m: &BTreeMap<String, tributary_store::ContentItem>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.updated_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        updated_at(&stored),
        updated_at(&after),
        "a re-sync rewrote content"
    );
}

/// (b) During a 10,000-item backfill with one worker, an item added at the source is
/// stored after the next `start` tick and before the backfill finishes, and that `start`
/// makes at most 4 list calls though thousands of items are queued, not yet stored.
async fn new_item_overtakes_a_running_backfill(h: Harness) {
    let server = source(10_000, 2).await;
    // Every request takes a network round trip, as with a real service: one list call
    // queues 50 downloads, so the listing runs far ahead of them.
    server.source().set_latency(Some(Duration::from_millis(2)));
    let ui = h.link(&server, "bob").await;
    let scheduler = Scheduler::new(
        h.store.clone(),
        domain_schedules(&h.registry, 5),
        std::sync::Arc::new(h.clock.clone()),
    );
    assert_eq!(scheduler.tick().await.expect("tick").starts, 1);

    let engine = h.engine(config(1));
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(RunUntil::Idle(None), std::future::pending())
                .await
        })
    };
    // Wait until the backfill is well under way: items stored, and its listing ahead
    // of its downloads by thousands of queued fetches.
    wait_until(|| async {
        let stored = h.store.content_counts(ui.id).await.expect("counts").items;
        let queued: i64 = h
            .store
            .job_counts(Some(ui.id))
            .await
            .expect("job counts")
            .iter()
            .filter(|c| c.state == JobState::Available)
            .map(|c| c.count)
            .sum();
        stored >= 500 && queued >= 2000
    })
    .await;

    // A new item arrives; the next start tick is due a minute later.
    let fresh = server.source().add_items(1).remove(0);
    let lists_before = server.source().list_log().len();
    h.clock.advance_ms(60_000);
    // The tick enqueues the start, unless one of the running engine's claims turned the
    // due account into its start first (claims take due accounts too): one or the
    // other, never both.
    let by_tick = scheduler.tick().await.expect("tick").starts;
    assert!(
        by_tick <= 1,
        "the tick enqueued {by_tick} starts for one account"
    );

    wait_until(|| async { h.content(ui.id, false).await.contains_key(&fresh) }).await;
    let stored_when_fresh = h.store.content_counts(ui.id).await.expect("counts").items;
    assert!(
        stored_when_fresh < 10_001,
        "the new item was only stored once the backfill had finished"
    );
    let queued = h.jobs(ui.id, JobState::Available).await.len();
    assert!(queued > 1000, "only {queued} jobs were still queued");

    runner.await.expect("join").expect("engine");
    assert_eq!(h.versions(ui.id).await, server.source().snapshot());
    let starts = h
        .jobs(ui.id, JobState::Completed)
        .await
        .iter()
        .filter(|j| j.task_type == "start")
        .count();
    assert_eq!(
        starts, 2,
        "the first start and the one a minute later, once each"
    );

    // The start walked the newest pages only: list calls near the top of the mailbox
    // (the backfill's own list calls are thousands of items deep by then).
    let log = server.source().list_log();
    let top_calls = log[lists_before..]
        .iter()
        .filter(|call| call.depth < 400)
        .count();
    assert!(
        (1..=4).contains(&top_calls),
        "the start made {top_calls} list calls"
    );
}

/// (e) Three transient failures, then success.
async fn transient_failures_then_success(h: Harness) {
    let server = source(1, 3).await;
    let ui = h.link(&server, "carol").await;
    let id = server.source().ids().remove(0);
    server
        .source()
        .fail_next_on(format!("/items/{id}"), 3, Fault::internal_error());
    h.start(ui.id).await;
    let engine = h.engine(config(2));
    for _ in 0..4 {
        h.run_claimable(&engine).await;
        h.clock.advance_ms(60_000);
    }
    assert_eq!(h.content(ui.id, false).await.len(), 1);
    let done = h.jobs(ui.id, JobState::Completed).await;
    let fetch = done
        .iter()
        .find(|j| j.item_id.as_deref() == Some(id.as_str()))
        .expect("fetch job");
    assert_eq!(fetch.attempts, 4);
    assert_eq!(server.source().fetches_of(&id), 4);
}

/// (e) A 429 with `Retry-After: 2` is not retried before 2 s have passed.
async fn retry_after_is_honoured(h: Harness) {
    let server = source(1, 4).await;
    let ui = h.link(&server, "dave").await;
    let id = server.source().ids().remove(0);
    server
        .source()
        .fail_next_on(format!("/items/{id}"), 1, Fault::rate_limited(2));
    h.start(ui.id).await;
    let engine = h.engine(config(1));
    h.run_claimable(&engine).await;
    let waiting = h.jobs(ui.id, JobState::Available).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].run_at,
        h.clock.now_ms() + 2000,
        "retry not scheduled at Retry-After"
    );

    h.clock.advance_ms(1999);
    h.run_claimable(&engine).await;
    assert_eq!(
        server.source().fetches_of(&id),
        1,
        "retried before Retry-After"
    );
    assert!(h.content(ui.id, false).await.is_empty());

    h.clock.advance_ms(1);
    h.run_claimable(&engine).await;
    assert_eq!(server.source().fetches_of(&id), 2);
    assert_eq!(h.content(ui.id, false).await.len(), 1);
}

/// (e) A 401 sets the account to `needs_reauth` and pauses its jobs; another account
/// goes on.
async fn auth_failure_pauses_only_that_account(h: Harness) {
    let revoked = source(30, 5).await;
    let healthy = source(30, 6).await;
    let a = h.link(&revoked, "erin").await;
    let b = h.link(&healthy, "frank").await;
    revoked.source().revoke_token();
    h.start(a.id).await;
    h.start(b.id).await;
    let engine = h.engine(config(2));
    h.run_claimable(&engine).await;

    let a_now = h.store.get_user_integration(a.id).await.expect("a");
    assert_eq!(a_now.status, UserIntegrationStatus::NeedsReauth);
    assert!(
        a_now.last_error.as_deref().unwrap_or("").contains("401"),
        "{:?}",
        a_now.last_error
    );
    assert_eq!(h.content(b.id, false).await.len(), 30);
    assert!(h.content(a.id, false).await.is_empty());
    // A's start waits, neither failed nor dead.
    assert_eq!(h.jobs(a.id, JobState::Available).await.len(), 1);
    h.clock.advance_ms(3_600_000);
    h.run_claimable(&engine).await;
    assert_eq!(
        revoked.source().counts().rejected_auth,
        1,
        "paused jobs still ran"
    );

    // Re-authorized: the same job runs and the account syncs.
    revoked.source().set_token(format!("token-{}", 5));
    h.store
        .set_user_integration_status(a.id, UserIntegrationStatus::Active, None)
        .await
        .expect("resume");
    h.run_claimable(&engine).await;
    assert_eq!(h.content(a.id, false).await.len(), 30);
}

/// (e) A permanent error ends the job as failed and is never retried.
async fn permanent_error_is_not_retried(h: Harness) {
    let server = source(1, 7).await;
    let ui = h.link(&server, "grace").await;
    let id = server.source().ids().remove(0);
    server
        .source()
        .fail_next_on(format!("/items/{id}"), 1, Fault::status(400));
    h.start(ui.id).await;
    let engine = h.engine(config(1));
    h.run_claimable(&engine).await;
    h.clock.advance_ms(3_600_000);
    h.run_claimable(&engine).await;
    let failed = h.jobs(ui.id, JobState::Failed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 1);
    assert_eq!(failed[0].error_class.as_deref(), Some("permanent"));
    assert_eq!(server.source().fetches_of(&id), 1);
}

/// (e) A job that always fails ends dead after its last attempt, and can be re-run.
async fn always_failing_job_ends_dead(h: Harness) {
    let server = source(1, 8).await;
    let ui = h.link(&server, "heidi").await;
    let id = server.source().ids().remove(0);
    server.source().fail_item_always(id.clone());
    h.start(ui.id).await;
    let engine = h.engine(config(1));
    for _ in 0..10 {
        h.run_claimable(&engine).await;
        h.clock.advance_ms(60_000);
    }
    let dead = h.jobs(ui.id, JobState::Dead).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 5);
    assert!(dead[0].last_error.as_deref().unwrap_or("").contains("500"));
    assert_eq!(server.source().fetches_of(&id), 5);

    h.store
        .retry_job(dead[0].id, h.clock.now_ms())
        .await
        .expect("retry");
    server.source().clear_faults();
    h.run_claimable(&engine).await;
    assert_eq!(h.content(ui.id, false).await.len(), 1);
}

/// (f) Two 5,000-item backfills on one worker: after the first 500 jobs neither account
/// has completed more than twice the other's count.
async fn accounts_share_one_worker_fairly(h: Harness) {
    let one = source(5_000, 9).await;
    let two = source(5_000, 10).await;
    let a = h.link(&one, "ivan").await;
    let b = h.link(&two, "judy").await;
    h.start(a.id).await;
    h.start(b.id).await;
    let engine = h.engine(config(1));
    h.run_claimable(&engine).await;
    assert_eq!(h.content(a.id, false).await.len(), 5_000);
    assert_eq!(h.content(b.id, false).await.len(), 5_000);

    let mut done = h.jobs(a.id, JobState::Completed).await;
    done.extend(h.jobs(b.id, JobState::Completed).await);
    done.sort_by_key(|j| (j.finished_at, j.id));
    let (mut na, mut nb) = (0u64, 0u64);
    for (i, job) in done.iter().enumerate() {
        if job.user_integration_id == a.id {
            na += 1;
        } else {
            nb += 1;
        }
        if i + 1 >= 500 && na.max(nb) < 5_000 {
            assert!(
                na <= 2 * nb && nb <= 2 * na,
                "after {} jobs: {na} vs {nb}",
                i + 1
            );
        }
    }
}

/// (g) A delete output soft-deletes; content queries exclude deleted items; an item that
/// reappears is restored.
async fn deletions_soft_delete_and_restore(h: Harness) {
    let server = source(100, 11).await;
    let ui = h.link(&server, "ken").await;
    h.start(ui.id).await;
    let engine = h.engine(config(2));
    h.run_claimable(&engine).await;
    assert_eq!(h.content(ui.id, false).await.len(), 100);

    let ids = server.source().ids();
    let gone: Vec<String> = ids[..3].to_vec();
    for id in &gone {
        assert!(server.source().delete(id));
    }
    let edited = ids[10].clone();
    server.source().edit(&edited);
    check_changes(&h, ui.id).await;
    h.run_claimable(&engine).await;

    let visible = h.content(ui.id, false).await;
    assert_eq!(visible.len(), 97);
    let all = h.content(ui.id, true).await;
    assert_eq!(all.len(), 100);
    for id in &gone {
        assert!(all[id].is_deleted && all[id].deleted_at.is_some());
        assert!(!visible.contains_key(id));
    }
    assert_eq!(h.versions(ui.id).await, server.source().snapshot());

    assert!(server.source().add_item_with_id(&gone[0]));
    check_changes(&h, ui.id).await;
    h.run_claimable(&engine).await;
    let restored = &h.content(ui.id, false).await[&gone[0]];
    assert!(!restored.is_deleted && restored.deleted_at.is_none());
    assert_eq!(h.versions(ui.id).await, server.source().snapshot());
}

async fn check_changes(h: &Harness, ui: i64) {
    let task = Task::new("checkChanges", json!(null));
    let job = NewJob {
        user_integration_id: ui,
        task,
        priority: 1,
        dedupe_key: Some("history".into()),
        max_attempts: 5,
        run_at: h.clock.now_ms(),
    };
    assert_eq!(
        h.store
            .enqueue(&[job], h.clock.now_ms())
            .await
            .expect("enqueue"),
        1
    );
}

/// (h) Credentials never show in `Debug` output of what the store returns.
async fn credentials_are_secret(h: Harness) {
    let server = source(1, 12).await;
    let ui = h.link(&server, "leo").await;
    let secret = "token-12";
    let loaded = h.store.get_user_integration(ui.id).await.expect("load");
    assert_eq!(loaded.credentials.get("token"), Some(secret));
    let printed = format!("{loaded:?} {:?}", loaded.credentials);
    assert!(!printed.contains(secret), "Debug printed the secret");
    let listed = serde_json_string(&loaded);
    assert!(!listed.contains(secret), "serialization exposed the secret");
}

fn serde_json_string<T: serde::Serialize>(value: &T) -> String {
    tributary_sdk::serde_json::to_string(value).expect("serialize")
}

/// (i) An unknown task type or a malformed payload ends the job as failed with a clear
/// error, without retries.
async fn bad_tasks_fail_permanently_with_clear_errors(h: Harness) {
    let server = source(1, 13).await;
    let ui = h.link(&server, "mia").await;
    let now = h.clock.now_ms();
    let job = |task: Task| NewJob {
        user_integration_id: ui.id,
        task,
        priority: 5,
        dedupe_key: None,
        max_attempts: 5,
        run_at: now,
    };
    h.store
        .enqueue(
            &[
                job(Task::new("explode", json!({}))),
                job(Task::new("fetchItem", json!({"id": 42}))),
            ],
            now,
        )
        .await
        .expect("enqueue");
    let engine = h.engine(config(1));
    h.run_claimable(&engine).await;
    h.clock.advance_ms(3_600_000);
    h.run_claimable(&engine).await;
    let failed = h.jobs(ui.id, JobState::Failed).await;
    assert_eq!(failed.len(), 2);
    for job in &failed {
        assert_eq!(job.attempts, 1);
        assert_eq!(job.error_class.as_deref(), Some("permanent"));
        let error = job.last_error.as_deref().unwrap_or("");
        match job.task_type.as_str() {
            "explode" => assert!(error.contains("unknown task type `explode`"), "{error}"),
            _ => assert!(error.contains("fetchItem"), "{error}"),
        }
    }
}

/// Shutdown mid-backfill: every job that finished is committed (nothing fetched is
/// thrown away), nothing is left running, and a restart completes the sync.
async fn graceful_shutdown_commits_what_finished(h: Harness) {
    let server = source(3_000, 14).await;
    let ui = h.link(&server, "nina").await;
    h.start(ui.id).await;
    let engine = h.engine(config(4));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(RunUntil::Shutdown, async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    wait_until(|| async { h.store.content_counts(ui.id).await.expect("counts").items >= 300 })
        .await;
    let _ = stop_tx.send(());
    runner.await.expect("join").expect("engine");

    assert!(
        h.jobs(ui.id, JobState::Running).await.is_empty(),
        "jobs left running"
    );
    let stored = h.content(ui.id, false).await.len();
    let fetched = server.source().fetch_counts().len();
    assert_eq!(
        stored, fetched,
        "fetched items were not committed at shutdown"
    );
    assert_eq!(engine.stats().snapshot().items_inserted as usize, stored);
    assert!(stored < 3_000, "the sync finished before the shutdown");

    h.run_claimable(&h.engine(config(4))).await;
    assert_eq!(h.versions(ui.id).await, server.source().snapshot());
}

/// An integration whose every run refreshes its token, then fails.
struct RotatesThenFails;

#[tributary_sdk::async_trait]
impl tributary_sdk::Integration for RotatesThenFails {
    async fn validate_authentication(&mut self) -> Result<(), tributary_sdk::IntegrationError> {
        Ok(())
    }

    async fn run_task(
        &mut self,
        _task: &Task,
    ) -> Result<tributary_sdk::TaskResult, tributary_sdk::IntegrationError> {
        Err(tributary_sdk::IntegrationError::transient(
            "boom after a refresh",
        ))
    }

    fn credentials_after_failure(&self) -> Option<tributary_sdk::Credentials> {
        tributary_sdk::Credentials::from_json_str(r#"{"token": "rotated"}"#).ok()
    }
}

/// A token rotated before a failure is persisted, though the job's commit is not.
async fn credentials_refreshed_before_a_failure_are_kept(h: Harness) {
    let registration = tributary_sdk::Registration::new(
        "test/manifest.json",
        r#"{"domain": "rotator", "name": "Rotator", "version": "1", "taskTypes": ["start"]}"#,
        |_| Ok(Box::new(RotatesThenFails)),
    );
    let registry =
        std::sync::Arc::new(tributary_sdk::Registry::new([registration]).expect("registry"));
    let user = h.store.create_user("olga").await.expect("user");
    let ui = h
        .store
        .create_user_integration(tributary_store::NewUserIntegration {
            user_id: user.id,
            integration_domain: "rotator".into(),
            credentials: tributary_sdk::Credentials::from_json_str(r#"{"token": "old"}"#)
                .expect("credentials"),
            settings: Default::default(),
        })
        .await
        .expect("link");
    h.start(ui.id).await;
    let engine = tributary_engine::Engine::with_clock(
        h.store.clone(),
        registry,
        config(1),
        std::sync::Arc::new(h.clock.clone()),
    )
    .expect("engine");
    h.run_claimable(&engine).await;
    let stored = h.store.get_user_integration(ui.id).await.expect("account");
    assert_eq!(stored.credentials.get("token"), Some("rotated"));
    assert_eq!(
        h.jobs(ui.id, JobState::Available).await.len(),
        1,
        "the job retries"
    );
}

/// An integration whose `start` queues a fetch of each of `ITEMS` items; a fetch
/// stores the item, except that `POISON` panics and `UNDECODABLE` reports a failed
/// output (content the integration could not decode).
struct Poisoned;

impl Poisoned {
    const ITEMS: usize = 1_000;
    const POISON: &str = "item-537";
    const UNDECODABLE: &str = "item-42";

    fn registry() -> std::sync::Arc<tributary_sdk::Registry> {
        let registration = tributary_sdk::Registration::new(
            "test/manifest.json",
            r#"{"domain": "poisoned", "name": "Poisoned", "version": "1",
                "taskTypes": ["start", "fetch"]}"#,
            |_| Ok(Box::new(Poisoned)),
        );
        std::sync::Arc::new(tributary_sdk::Registry::new([registration]).expect("registry"))
    }
}

#[tributary_sdk::async_trait]
impl tributary_sdk::Integration for Poisoned {
    async fn validate_authentication(&mut self) -> Result<(), tributary_sdk::IntegrationError> {
        Ok(())
    }

    async fn run_task(
        &mut self,
        task: &Task,
    ) -> Result<tributary_sdk::TaskResult, tributary_sdk::IntegrationError> {
        let mut result = tributary_sdk::TaskResult::new();
        match task.item_id.as_deref() {
            None => {
                for n in 0..Poisoned::ITEMS {
                    let mut fetch = Task::new("fetch", json!({}));
                    fetch.item_id = Some(format!("item-{n}"));
                    result.tasks.push(fetch);
                }
            }
            Some(Poisoned::POISON) => panic!("poison item {} hit", Poisoned::POISON),
            Some(Poisoned::UNDECODABLE) => result.push_output(tributary_sdk::Output::failed(
                Poisoned::UNDECODABLE,
                502,
                "the body is not the documented JSON",
            )),
            // Content whose top-level `action` says "delete" is content like any
            // other (a Slack or Graph payload can look like that).
            Some(id) => result.push_output(tributary_sdk::Output::item(
                id,
                None,
                json!({"id": id, "action": "delete"}),
            )),
        }
        Ok(result)
    }
}

/// Links an account of the [`Poisoned`] integration, starts it and runs it to the end.
async fn run_poisoned(h: &Harness, name: &str) -> i64 {
    let user = h.store.create_user(name).await.expect("user");
    let ui = h
        .store
        .create_user_integration(tributary_store::NewUserIntegration {
            user_id: user.id,
            integration_domain: "poisoned".into(),
            credentials: tributary_sdk::Credentials::default(),
            settings: Default::default(),
        })
        .await
        .expect("link");
    h.start(ui.id).await;
    let engine = tributary_engine::Engine::with_clock(
        h.store.clone(),
        Poisoned::registry(),
        config(8),
        std::sync::Arc::new(h.clock.clone()),
    )
    .expect("engine");
    h.run_claimable(&engine).await;
    ui.id
}

/// (b) Integration code panics in one job: that job ends `failed` with the panic's
/// message; the other 999 fetches (and the start) complete and store their items.
async fn a_panic_fails_only_its_job(h: Harness) {
    let ui = run_poisoned(&h, "petra").await;
    let failed = h.jobs(ui, JobState::Failed).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].item_id.as_deref(), Some(Poisoned::POISON));
    let error = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("poison item item-537 hit"),
        "{error}"
    );
    let completed = h.jobs(ui, JobState::Completed).await;
    assert_eq!(
        completed.len(),
        Poisoned::ITEMS,
        "999 fetches and the start"
    );
    let stored = h.content(ui, false).await;
    assert_eq!(stored.len(), Poisoned::ITEMS - 1);
    assert!(!stored.contains_key(Poisoned::POISON));
    let item = &stored["item-1"];
    assert!(
        !item.is_deleted,
        "content with action: delete was taken for a deletion"
    );
    assert_eq!(item.content["action"], "delete");
    for state in [JobState::Available, JobState::Running, JobState::Dead] {
        assert!(h.jobs(ui, state).await.is_empty(), "jobs left {state:?}");
    }
    // Known now (failed, kept for the operator): a new start does not queue it again.
    assert!(
        h.store
            .content_exists(ui, &[Poisoned::POISON.to_owned()])
            .await
            .expect("content_exists")
            .contains(Poisoned::POISON)
    );
}

/// An item the integration could not decode is stored as a failure marker with its
/// code and message: its page goes on, the account stays active, and the item is known.
async fn undecodable_items_are_stored_as_markers(h: Harness) {
    let ui = run_poisoned(&h, "quentin").await;
    let stored = h.content(ui, false).await;
    let marker = &stored[Poisoned::UNDECODABLE].content;
    assert_eq!(
        marker,
        &json!({"failed": true, "code": 502, "error": {"error": "the body is not the documented JSON"}})
    );
    assert_eq!(
        stored["item-41"].content,
        json!({"id": "item-41", "action": "delete"})
    );
    let account = h.store.get_user_integration(ui).await.expect("account");
    assert_eq!(account.status, UserIntegrationStatus::Active);
    let completed = h.jobs(ui, JobState::Completed).await;
    assert!(
        completed
            .iter()
            .any(|j| j.item_id.as_deref() == Some(Poisoned::UNDECODABLE)),
        "the undecodable item's fetch completed"
    );
}

/// Polls `condition` (a database or source query) until it holds; fails after 5 minutes.
/// The pruner deletes completed jobs once they are older than the retention, keeps the
/// recent ones, never touches failed or dead jobs, and nothing is fetched again
/// because the jobs that fetched it are gone.
async fn pruner_removes_completed_jobs_past_retention(h: Harness) {
    const HOUR: i64 = 3_600_000;
    let server = source(30, 14).await;
    let ui = h.link(&server, "nina").await;
    let doomed = server.source().ids().remove(0);
    server.source().fail_item_always(doomed.clone());
    let now = h.clock.now_ms();
    h.store
        .enqueue(
            &[NewJob {
                user_integration_id: ui.id,
                task: Task::new("explode", json!({})),
                priority: 5,
                dedupe_key: None,
                max_attempts: 5,
                run_at: now,
            }],
            now,
        )
        .await
        .expect("enqueue");
    h.start(ui.id).await;
    let engine = h.engine(config(2));
    for _ in 0..7 {
        h.run_claimable(&engine).await;
        h.clock.advance_ms(60_000);
    }
    assert_eq!(h.content(ui.id, false).await.len(), 29);
    let old: Vec<i64> = h
        .jobs(ui.id, JobState::Completed)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert!(old.len() >= 30, "{} completed jobs", old.len());
    let mut failures = h.jobs(ui.id, JobState::Failed).await;
    failures.extend(h.jobs(ui.id, JobState::Dead).await);
    assert_eq!(failures.len(), 2, "one failed job and one dead job");
    let failures: Vec<(i64, JobState)> = failures.iter().map(|j| (j.id, j.state)).collect();
    let kept_failures = || async {
        for &(id, state) in &failures {
            let job = h
                .store
                .get_job(id)
                .await
                .expect("a failed or dead job went");
            assert_eq!(job.state, state);
        }
    };

    // An hour later, a start that finds nothing new.
    h.clock.advance_ms(HOUR);
    server.source().reset_counters();
    h.start(ui.id).await;
    h.run_claimable(&engine).await;
    let recent: Vec<i64> = h
        .jobs(ui.id, JobState::Completed)
        .await
        .iter()
        .map(|j| j.id)
        .filter(|id| !old.contains(id))
        .collect();
    assert_eq!(recent.len(), 1, "the second start");

    // Two hours' retention: nothing is old enough yet.
    let config = PrunerConfig {
        keep_completed: Duration::from_millis(2 * HOUR as u64),
        batch: 7,
        pause: Duration::from_millis(1),
        every: Duration::from_millis(10),
    };
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(h.clock.clone());
    let pruner = Pruner::new(h.store.clone(), clock.clone(), config);
    assert_eq!(pruner.prune_once().await.expect("prune").deleted, 0);
    // An hour on, the first jobs are past it (in batches of 7); the second start is not.
    h.clock.advance_ms(HOUR);
    let round = pruner.prune_once().await.expect("prune");
    assert_eq!(round.deleted, old.len() as u64);
    assert_eq!(round.batches, old.len() as u64 / 7 + 1, "batches of 7");
    let left: Vec<i64> = h
        .jobs(ui.id, JobState::Completed)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, recent);
    kept_failures().await;

    // Nothing stored is fetched again: known items are the stored ones, not the jobs
    // that fetched them. (The item that always fails is not stored: it is asked for
    // again.)
    server.source().reset_counters();
    h.start(ui.id).await;
    h.run_claimable(&engine).await;
    let fetched: Vec<String> = server.source().fetch_counts().into_keys().collect();
    assert!(
        fetched.iter().all(|id| *id == doomed),
        "stored items were fetched again: {fetched:?}"
    );

    // The loop: it prunes the rest once it is past the retention, then stops on
    // shutdown.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let looping = Pruner::new(h.store.clone(), clock, config);
    let runner = tokio::spawn(async move {
        looping
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    h.clock.advance_ms(3 * HOUR);
    wait_until(|| async { h.jobs(ui.id, JobState::Completed).await.is_empty() }).await;
    kept_failures().await;
    let _ = stop.send(());
    runner.await.expect("the pruner stops on shutdown");
}

async fn wait_until<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

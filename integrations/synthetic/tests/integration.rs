//! The synthetic integration end to end, without an engine: tasks run by hand through
//! the in-memory driver against the real synthetic source over loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tributary_sdk::{ErrorClass, IntegrationError, MAX_EMPTY_PAGES, Output, Task, TaskResult};
use tributary_synthetic::{CURSOR_KEY, SyntheticTask, registration};
use tributary_testkit::driver::Driver;
use tributary_testkit::synthetic::{Fault, SourceConfig, SourceServer};

const TOKEN: &str = "syn-token-77c1";
const MAX_RUNS: usize = 20_000;

async fn server(items: usize) -> SourceServer {
    SourceServer::start(SourceConfig::new(items, 42, TOKEN))
        .await
        .expect("server starts")
}

fn driver(server: &SourceServer) -> Driver {
    driver_with(server, server.settings())
}

fn driver_with(server: &SourceServer, settings: Map<String, Value>) -> Driver {
    Driver::new(
        registration().expect("valid manifest"),
        server.credentials(),
        settings,
    )
    .expect("driver")
}

/// The stored copy as id → version, to compare with the source's snapshot.
fn stored_versions(driver: &Driver) -> BTreeMap<String, u64> {
    driver
        .content()
        .live()
        .into_iter()
        .map(|(id, content)| {
            let version = content["version"].as_u64().expect("version in content");
            (id, version)
        })
        .collect()
}

fn list_task(page_token: Option<&str>, empty_pages: u32) -> Task {
    Task::from_typed(&SyntheticTask::ListItems {
        page_token: page_token.map(str::to_owned),
        empty_pages,
    })
    .expect("task")
}

fn fetch_ids(result: &TaskResult) -> BTreeSet<String> {
    result
        .tasks
        .iter()
        .filter(|t| t.task_type == "fetchItem")
        .map(|t| t.item_id.clone().expect("fetchItem names its item"))
        .collect()
}

fn deleted_ids(result: &TaskResult) -> BTreeSet<String> {
    result
        .outputs
        .iter()
        .filter(|o| o.is_delete())
        .map(|o| o.id().to_owned())
        .collect()
}

async fn backfill(server: &SourceServer, driver: &mut Driver) {
    let summary = driver.sync(Task::start(), MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert!(summary.idle);
    assert_eq!(stored_versions(driver), server.snapshot());
}

#[tokio::test]
async fn full_backfill_produces_every_item_once_then_resync_stops_early() {
    let server = server(1_000).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;

    assert_eq!(driver.produced().len(), 1_000);
    assert!(driver.produced().values().all(|n| *n == 1));
    let counts = server.counts();
    assert_eq!(counts.item_fetches, 1_000);
    assert_eq!(counts.list_calls, 20, "1,000 items in pages of 50");
    assert_eq!(counts.cursor_calls, 1);
    assert_eq!(server.max_concurrent_fetches(), 1);
    assert!(server.fetch_counts().values().all(|n| *n == 1));
    assert_eq!(driver.content().existing_calls(), 20, "one query per page");
    assert_eq!(
        driver.sync_state().get(CURSOR_KEY),
        Some(&Value::String(server.cursor()))
    );
    let item = driver.content().get("item-0000500").expect("stored");
    let truth = server.item("item-0000500").expect("exists");
    assert_eq!(item.content["title"], truth.title.as_str());
    assert_eq!(item.content["body"], truth.body.as_str());
    assert_eq!(item.timestamp, Some(truth.created_at));

    // Nothing new: the walk stops after MAX_EMPTY_PAGES pages.
    server.reset_counters();
    let summary = driver.sync(Task::start(), MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    let counts = server.counts();
    assert!(counts.list_calls <= 4, "{counts:?}");
    assert_eq!(counts.list_calls, u64::from(MAX_EMPTY_PAGES));
    assert_eq!(counts.item_fetches, 0);
    assert_eq!(counts.cursor_calls, 0, "the cursor is kept, not retaken");
    assert!(driver.produced().values().all(|n| *n == 1));

    // New items: only they are fetched, still within 4 list calls.
    server.reset_counters();
    let new = server.add_items(7);
    let summary = driver.sync(Task::start(), MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(server.counts().item_fetches, 7);
    assert!(server.counts().list_calls <= 4);
    for id in &new {
        assert_eq!(driver.produced().get(id), Some(&1));
    }
    assert_eq!(stored_versions(&driver), server.snapshot());
}

#[tokio::test]
async fn change_log_turns_edits_and_deletes_into_outputs() {
    let server = server(120).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;

    assert!(server.edit("item-0000010"));
    assert!(server.edit("item-0000011"));
    assert!(server.edit("item-0000010"));
    assert!(server.delete("item-0000020"));
    assert!(server.delete("item-0000021"));
    let added = server.add_items(1);
    // Added then deleted before the check: only a deletion.
    let transient = server.add_items(1);
    assert!(server.delete(&transient[0]));

    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("checkChanges succeeds");
    let expected_fetches: BTreeSet<String> = ["item-0000010", "item-0000011", added[0].as_str()]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(fetch_ids(&result), expected_fetches);
    let expected_deletes: BTreeSet<String> =
        ["item-0000020", "item-0000021", transient[0].as_str()]
            .into_iter()
            .map(str::to_owned)
            .collect();
    assert_eq!(deleted_ids(&result), expected_deletes);
    assert_eq!(
        result.sync_state.as_ref().and_then(|s| s.get(CURSOR_KEY)),
        Some(&Value::String(server.cursor()))
    );

    let summary = driver.run_until_idle(MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(stored_versions(&driver), server.snapshot());
    assert_eq!(
        driver
            .content()
            .get("item-0000010")
            .map(|i| i.content["version"].clone()),
        Some(json!(3))
    );
    assert!(
        driver
            .content()
            .get("item-0000020")
            .is_some_and(|i| i.deleted)
    );

    // Nothing changed since: an empty result that keeps the cursor.
    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("checkChanges succeeds");
    assert!(result.outputs.is_empty() && result.tasks.is_empty());
    assert_eq!(
        driver.sync_state().get(CURSOR_KEY),
        Some(&Value::String(server.cursor()))
    );
}

#[tokio::test]
async fn check_changes_without_a_cursor_does_nothing() {
    let server = server(10).await;
    let mut driver = driver(&server);
    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("ok");
    assert!(result.outputs.is_empty() && result.tasks.is_empty());
    assert!(result.sync_state.is_none());
    assert_eq!(server.counts().total, 0);
}

#[tokio::test]
async fn check_changes_follows_has_more_within_one_run() {
    let config = SourceConfig {
        max_changes_per_response: 2,
        ..SourceConfig::new(10, 3, TOKEN)
    };
    let server = SourceServer::start(config).await.expect("server");
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;
    server.reset_counters();
    let added = server.add_items(5);
    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("ok");
    assert_eq!(server.counts().change_calls, 3);
    assert_eq!(fetch_ids(&result), added.into_iter().collect());
}

#[tokio::test]
async fn changes_made_during_the_backfill_are_caught_by_the_next_check() {
    let server = server(300).await;
    let mut driver = driver(&server);
    // The start job alone: cursor taken, first page listed, 50 fetches queued.
    let start = driver.run(&Task::start()).await.expect("start");
    assert!(
        start
            .sync_state
            .as_ref()
            .is_some_and(|s| s.contains_key(CURSOR_KEY))
    );
    assert_eq!(fetch_ids(&start).len(), 50);
    assert_eq!(
        start
            .tasks
            .iter()
            .filter(|t| t.task_type == "listItems")
            .count(),
        1
    );

    // Meanwhile at the source: a queued item vanishes, an unlisted one vanishes,
    // one is edited, new ones arrive (newer than the walk's position).
    assert!(server.delete("item-0000299"));
    assert!(server.delete("item-0000010"));
    assert!(server.edit("item-0000005"));
    server.add_items(4);

    let summary = driver.run_until_idle(MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    // The fetch of the vanished queued item produced a deletion, not an item.
    assert!(!driver.produced().contains_key("item-0000299"));

    let summary = driver
        .sync(SyntheticTask::check_changes().expect("task"), MAX_RUNS)
        .await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(stored_versions(&driver), server.snapshot());
}

#[tokio::test]
async fn an_expired_cursor_falls_back_to_an_id_comparison_and_converges() {
    let server = server(700).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;

    let added = server.add_items(3);
    for id in [
        "item-0000001",
        "item-0000350",
        "item-0000699",
        "item-0000700",
    ] {
        assert!(server.delete(id));
    }
    server.expire_cursors();
    server.reset_counters();

    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("the fallback succeeds");
    let expected_deletes: BTreeSet<String> = [
        "item-0000001",
        "item-0000350",
        "item-0000699",
        "item-0000700",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(deleted_ids(&result), expected_deletes);
    assert_eq!(fetch_ids(&result), added.iter().cloned().collect());
    let counts = server.counts();
    assert_eq!(counts.change_calls, 1);
    assert_eq!(counts.cursor_calls, 1);
    assert_eq!(counts.list_calls, 2, "699 ids in pages of 500");
    assert_eq!(driver.content().stored_ids_calls(), 1);
    assert_eq!(
        driver.sync_state().get(CURSOR_KEY),
        Some(&Value::String(server.cursor()))
    );

    let summary = driver.run_until_idle(MAX_RUNS).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(stored_versions(&driver), server.snapshot());

    // The fresh cursor works: later changes come through the log again.
    server.reset_counters();
    assert!(server.edit("item-0000002"));
    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("ok");
    assert_eq!(server.counts().list_calls, 0, "no second fallback");
    assert_eq!(
        fetch_ids(&result),
        BTreeSet::from(["item-0000002".to_owned()])
    );
}

#[tokio::test]
async fn the_fallback_skips_items_whose_fetch_is_already_pending() {
    let server = server(30).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;
    let added = server.add_items(2);
    assert!(driver.enqueue(SyntheticTask::fetch(added[0].clone()).expect("task")));
    server.expire_cursors();
    let result = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect("ok");
    assert_eq!(fetch_ids(&result), BTreeSet::from([added[1].clone()]));
}

#[tokio::test]
async fn a_page_with_pending_items_counts_as_known() {
    let server = server(100).await;
    let mut driver = driver(&server);
    // Start lists page 1 and queues 50 fetches; a second start before they run
    // finds nothing new on that page.
    driver.run(&Task::start()).await.expect("start");
    let second = driver.run(&Task::start()).await.expect("start again");
    assert!(fetch_ids(&second).is_empty());
    let next_list: Vec<&Task> = second
        .tasks
        .iter()
        .filter(|t| t.task_type == "listItems")
        .collect();
    assert_eq!(next_list.len(), 1);
    assert_eq!(next_list[0].payload["emptyPages"], 1);
}

#[tokio::test]
async fn list_items_stops_after_max_empty_pages() {
    let server = server(500).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;
    server.reset_counters();

    let result = driver
        .run(&list_task(None, MAX_EMPTY_PAGES - 1))
        .await
        .expect("ok");
    assert!(
        result.tasks.is_empty(),
        "the last empty page enqueues nothing"
    );
    assert_eq!(server.counts().list_calls, 1);
}

#[tokio::test]
async fn a_page_size_setting_is_used() {
    let server = server(100).await;
    let mut settings = server.settings();
    settings.insert("pageSize".into(), json!(10));
    let mut driver = driver_with(&server, settings);
    backfill(&server, &mut driver).await;
    assert_eq!(server.counts().list_calls, 10);

    for bad in [json!(0), json!(501), json!("many"), json!(-3)] {
        let mut settings = server.settings();
        settings.insert("pageSize".into(), bad.clone());
        let err = driver_with(&server, settings)
            .run(&Task::start())
            .await
            .expect_err("bad pageSize");
        assert_eq!(err.class(), ErrorClass::Permanent, "{bad}");
        assert!(err.message().contains("pageSize"), "{}", err.message());
    }
}

#[tokio::test]
async fn a_missing_base_url_is_a_clear_permanent_error() {
    let server = server(1).await;
    for settings in [Map::new(), {
        let mut m = Map::new();
        m.insert("baseUrl".into(), json!("  "));
        m
    }] {
        let mut driver = driver_with(&server, settings);
        let err = driver.run(&Task::start()).await.expect_err("no baseUrl");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.message().contains("baseUrl"), "{}", err.message());
    }
    assert_eq!(server.counts().total, 0);
}

#[tokio::test]
async fn an_item_deleted_between_list_and_fetch_becomes_a_deletion() {
    let server = server(5).await;
    let mut driver = driver(&server);
    assert!(server.delete("item-0000003"));
    let result = driver
        .run(&SyntheticTask::fetch("item-0000003").expect("task"))
        .await
        .expect("a 404 is not an error");
    assert_eq!(result.outputs, vec![Output::deleted("item-0000003")]);
}

#[tokio::test]
async fn odd_item_ids_are_escaped_in_the_path() {
    let server = server(0).await;
    let id = "weird id/with?chars#and%";
    assert!(server.add_item_with_id(id));
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;
    assert_eq!(driver.produced().get(id), Some(&1));
}

async fn fetch_error(server: &SourceServer, fault: Fault) -> IntegrationError {
    server.fail_next(1, fault);
    driver(server)
        .run(&SyntheticTask::fetch("item-0000001").expect("task"))
        .await
        .expect_err("the fault surfaces")
}

#[tokio::test]
async fn http_failures_map_to_error_classes() {
    let server = server(3).await;

    let err = fetch_error(&server, Fault::unauthorized()).await;
    assert_eq!(err.class(), ErrorClass::Auth);

    match fetch_error(&server, Fault::rate_limited(7)).await {
        IntegrationError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }

    for fault in [
        Fault::unavailable(),
        Fault::internal_error(),
        Fault::truncated(),
    ] {
        let err = fetch_error(&server, fault.clone()).await;
        assert_eq!(err.class(), ErrorClass::Transient, "{fault:?}: {err}");
        assert!(err.message().contains("item-0000001"), "{}", err.message());
    }

    let err = fetch_error(&server, Fault::status(403)).await;
    assert_eq!(err.class(), ErrorClass::Permanent);

    server.fail_next_on("/items", 1, Fault::unavailable());
    let err = driver(&server)
        .run(&Task::start())
        .await
        .expect_err("listing fails");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(err.message().contains("list"), "{}", err.message());

    let err = driver(&server)
        .run(&list_task(Some("not-a-token"), 0))
        .await
        .expect_err("bad page token");
    assert_eq!(err.class(), ErrorClass::Permanent);

    // Credentials taken while the token was valid, then revoked at the source.
    let mut revoked = driver(&server);
    server.revoke_token();
    let err = revoked.run(&Task::start()).await.expect_err("revoked");
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(!err.message().contains(TOKEN));

    // No token at all in the credentials: a permanent error naming the field.
    let err = driver(&server)
        .run(&Task::start())
        .await
        .expect_err("no token");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("token"), "{}", err.message());
}

#[tokio::test]
async fn a_failed_start_records_no_cursor() {
    let server = server(60).await;
    let mut driver = driver(&server);
    server.fail_next_on("/items", 1, Fault::unavailable());
    assert!(driver.run(&Task::start()).await.is_err());
    assert!(driver.sync_state().get(CURSOR_KEY).is_none());
    assert_eq!(server.counts().cursor_calls, 1);
}

#[tokio::test]
async fn an_always_failing_item_fails_alone() {
    let server = server(40).await;
    server.fail_item_always("item-0000017");
    let mut driver = driver(&server);
    let summary = driver.sync(Task::start(), MAX_RUNS).await;
    assert_eq!(summary.failures.len(), 1);
    let (task, err) = &summary.failures[0];
    assert_eq!(task.item_id.as_deref(), Some("item-0000017"));
    assert_eq!(err.class(), ErrorClass::Transient);
    let mut expected = server.snapshot();
    expected.remove("item-0000017");
    assert_eq!(stored_versions(&driver), expected);
}

#[tokio::test]
async fn a_check_changes_fault_keeps_the_old_cursor() {
    let server = server(20).await;
    let mut driver = driver(&server);
    backfill(&server, &mut driver).await;
    let before = driver.sync_state().get(CURSOR_KEY).cloned();
    server.add_items(2);
    server.fail_next_on("/changes", 1, Fault::rate_limited(3));
    let err = driver
        .run(&SyntheticTask::check_changes().expect("task"))
        .await
        .expect_err("rate limited");
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(driver.sync_state().get(CURSOR_KEY).cloned(), before);
}

#[tokio::test]
async fn validate_authentication_makes_one_cursor_call() {
    let server = server(2).await;
    let driver = driver(&server);
    driver.validate().await.expect("valid token");
    assert_eq!(server.counts().cursor_calls, 1);
    assert_eq!(server.counts().total, 1);

    server.set_token("rotated");
    let err = driver.validate().await.expect_err("old token refused");
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(!err.message().contains(TOKEN));
}

#[tokio::test]
async fn unknown_task_types_and_bad_payloads_are_permanent_errors_naming_the_type() {
    let server = server(2).await;
    let mut driver = driver(&server);
    let err = driver
        .run(&Task::new("explode", Value::Null))
        .await
        .expect_err("unknown type");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("explode"), "{}", err.message());

    let err = driver
        .run(&Task::new("fetchItem", json!({"id": 5})))
        .await
        .expect_err("bad payload");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("fetchItem"), "{}", err.message());

    let err = driver
        .run(&Task::new("listItems", json!({"emptyPages": "three"})))
        .await
        .expect_err("bad payload");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.message().contains("listItems"), "{}", err.message());
    assert_eq!(server.counts().total, 0);
}

#[test]
fn tasks_have_the_stored_shape() {
    let fetch = SyntheticTask::fetch("item-0000001").expect("task");
    assert_eq!(fetch.task_type, "fetchItem");
    assert_eq!(fetch.item_id.as_deref(), Some("item-0000001"));
    assert_eq!(
        fetch.to_json(),
        json!({"type": "fetchItem", "payload": {"id": "item-0000001"}})
    );
    let list = list_task(Some("pt1.a"), 2);
    assert_eq!(
        list.to_json(),
        json!({"type": "listItems", "payload": {"pageToken": "pt1.a", "emptyPages": 2}})
    );
    assert_eq!(list.item_id, None);
    assert_eq!(
        Task::new("listItems", Value::Null)
            .decode::<SyntheticTask>()
            .ok(),
        Some(SyntheticTask::ListItems {
            page_token: None,
            empty_pages: 0
        })
    );
    assert_eq!(
        SyntheticTask::check_changes().expect("task").task_type,
        "checkChanges"
    );
}

#[test]
fn manifest_is_valid() {
    let synthetic = registration().expect("synthetic manifest").manifest;
    assert_eq!(synthetic.domain, "synthetic");
    assert_eq!(
        synthetic.task_types,
        ["start", "listItems", "fetchItem", "checkChanges"]
    );
    assert_eq!(synthetic.secret_fields().collect::<Vec<_>>(), ["token"]);
    assert_eq!(
        synthetic.schedule.history_task.as_deref(),
        Some("checkChanges")
    );
    assert_eq!(synthetic.schedule.start_every_seconds, 60);
}

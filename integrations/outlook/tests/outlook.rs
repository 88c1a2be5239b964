//! Outlook through the whole engine on SQLite and PostgreSQL, against the fake: the
//! acceptance of issue 14's mail half.
//!
//! - (a) a mailbox of 10,000 messages in 8 folders syncs exactly, each message fetched
//!   once, every request asking for immutable ids and every delta page for a page
//!   size; a re-sync with nothing new fetches and writes nothing;
//! - (b) a message moved between folders stays one item with the same id (whichever
//!   `@removed` reason the source folder's round gives), no delete and re-add; deleted
//!   in Outlook it is a message of Deleted Items, deleted there it is soft-deleted; a
//!   flag or read-state change updates the item; replayed delta entries are harmless;
//! - (c) a forgotten delta token (410, `syncStateNotFound` or `resyncRequired`) in one
//!   folder: that folder is compared in full, what vanished is soft-deleted, a message
//!   moved into it meanwhile is not, and the other folders keep their delta links;
//! - (d) no more than 4 requests at once ever reach the mailbox (the fake's
//!   concurrency limit off, so it measures what is sent), and a sync under throttling
//!   (the mailbox's rate limit on a fast clock with the engine's budget on the same
//!   clock, 429s and 503s injected) converges without the rate limit ever refusing;
//! - refresh tokens that die on use are rotated through many refreshes, and the stored
//!   one is the live one;
//! - a message whose JSON cannot be decoded is stored as a failure, and the account
//!   goes on.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::OutlookSubject;
use tributary_conformance::{ConformanceSubject, FaultRates, Harness};
use tributary_engine::{Engine, EngineConfig};
use tributary_msgraph_fake::ThrottleConfig;
use tributary_outlook_fake::{Deleted, Fault, FlagStatus, RefreshRotation, RemovedReason};
use tributary_sdk::serde_json::Value;
use tributary_store::JobState;

const TICK_MS: i64 = 61_000;

tributary_conformance::backend_tests!(
    OutlookSubject;
    a_ten_thousand_message_mailbox_syncs_exactly_and_a_resync_writes_nothing,
    moves_keep_the_item_deletions_soft_delete_and_edits_update,
    a_forgotten_delta_token_compares_that_folder_only,
    never_more_than_four_requests_at_once_and_throttling_converges,
    rotated_refresh_tokens_survive_many_refreshes,
    an_undecodable_message_is_a_failure_and_the_account_goes_on,
);

/// Links `subject`, then a `start` and a history check, each until nothing is pending.
async fn synced(h: &Harness, subject: &OutlookSubject, engine: &Engine) -> i64 {
    let ui = h.link(subject, "outlook-user").await.id;
    h.sync(engine, ui).await;
    h.check_history(engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(subject, ui, "after the first sync")
        .await;
    ui
}

/// A message of folder `folder` (well-known name or id), the `n`-th by id.
fn message_in(subject: &OutlookSubject, folder: &str, n: usize) -> String {
    let folder_id = subject.fake.folder_id(folder).unwrap();
    let ids: Vec<String> = subject
        .fake
        .messages()
        .into_iter()
        .filter(|(_, m)| m.folder_id == folder_id)
        .map(|(id, _)| id)
        .collect();
    assert!(!ids.is_empty(), "no message in {folder}");
    ids[n % ids.len()].clone()
}

/// (a) 10,000 messages over Inbox, Sent Items, Archive, Drafts and 4 user folders.
async fn a_ten_thousand_message_mailbox_syncs_exactly_and_a_resync_writes_nothing(h: Harness) {
    let subject = OutlookSubject::with_config(OutlookSubject::config(10_000, 4, 21)).await;
    subject.set("pageSize", Value::from(100));
    let with_messages = subject
        .fake
        .folders()
        .iter()
        .filter(|f| f.messages > 0)
        .count();
    assert_eq!(with_messages, 8, "folders holding messages");
    let engine = h.engine(8);
    let ui = h.link(&subject, "outlook-user").await.id;
    subject.reset_counters();
    h.sync(&engine, ui).await;
    h.check_history(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;

    let truth = subject.truth();
    assert_eq!(truth.len(), 10_000);
    let all = h.content(ui, true).await;
    assert_eq!(all.len(), 10_000, "stored rows, deleted ones included");
    assert!(
        all.values().all(|item| !item.is_deleted),
        "a full sync deleted"
    );
    h.assert_matches_truth(&subject, ui, "after the full sync")
        .await;
    assert_eq!(
        subject.fetch_calls(),
        10_000,
        "each message fetched exactly once"
    );
    assert_eq!(
        subject.probe.without_immutable_ids(),
        0,
        "requests without Prefer: IdType=\"ImmutableId\""
    );
    assert!(!subject.probe.deltas().is_empty());
    assert_eq!(
        subject.probe.deltas_without_page_size(),
        0,
        "delta requests without Prefer: odata.maxpagesize"
    );
    // Each stored message names its folder as the fake's tree does, and its timestamp
    // is its receivedDateTime.
    let messages = subject.fake.messages();
    for (id, item) in all.iter().take(200) {
        let truth = &messages[id];
        assert_eq!(item.content["folder"]["id"], truth.folder_id.as_str());
        assert_eq!(
            item.external_timestamp
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Some(truth.received.clone())
        );
    }
    let state = h.account(ui).await.sync_state;
    for folder in subject
        .fake
        .folders()
        .iter()
        .filter(|f| f.parent_id.is_some())
    {
        assert!(
            state
                .get(&format!("deltaLink:{}", folder.id))
                .and_then(Value::as_str)
                .is_some_and(|l| l.contains("deltatoken")),
            "no delta link stored for {}",
            folder.path
        );
    }

    // Nothing new: a start and a history check fetch and write nothing.
    let before = h.updated_at(ui).await;
    let stats = engine.stats().snapshot();
    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    h.enqueue_start(ui).await;
    h.enqueue_history(ui).await;
    h.settle(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    let after = engine.stats().snapshot();
    assert_eq!(
        (
            after.items_inserted - stats.items_inserted,
            after.items_updated - stats.items_updated,
            after.items_deleted - stats.items_deleted,
        ),
        (0, 0, 0),
        "the re-sync wrote content"
    );
    assert_eq!(subject.fetch_calls(), 0, "the re-sync fetched messages");
    assert!(
        subject.list_calls() <= 3,
        "the re-sync's start listed {} pages",
        subject.list_calls()
    );
    assert_eq!(h.updated_at(ui).await, before, "updated_at moved");
}

/// (b) moves, deletions and edits, with both `@removed` reasons a move may give.
async fn moves_keep_the_item_deletions_soft_delete_and_edits_update(h: Harness) {
    for (n, reason) in [RemovedReason::Changed, RemovedReason::Deleted]
        .into_iter()
        .enumerate()
    {
        let mut config = OutlookSubject::config(300, 2, 30 + n as u64);
        config.move_out_reason = reason;
        let subject = OutlookSubject::with_config(config).await;
        let engine = h.engine(4);
        let ui = h.link(&subject, &format!("outlook-user-{n}")).await.id;
        h.sync(&engine, ui).await;
        h.check_history(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, "after the first sync")
            .await;
        let rows_before = h.content(ui, true).await;

        // A move, its delta entries replayed: one item, the same row, its new folder.
        let moved = message_in(&subject, "inbox", 3);
        let stats = engine.stats().snapshot();
        subject.fake.move_message(&moved, "archive").unwrap();
        subject.fake.replay_next_delta_pages(4);
        h.history_after(&engine, ui, TICK_MS).await;
        let rows = h.content(ui, true).await;
        let row = &rows[&moved];
        assert_eq!(
            row.id, rows_before[&moved].id,
            "the moved message got a new row"
        );
        assert!(
            !row.is_deleted && row.deleted_at.is_none(),
            "{reason:?}: the move deleted"
        );
        assert_eq!(row.content["folder"]["path"], "/Archive");
        assert_eq!(row.content["id"], moved.as_str());
        assert_eq!(
            engine.stats().snapshot().items_deleted - stats.items_deleted,
            0,
            "{reason:?}: a move was stored as a deletion"
        );
        assert_eq!(rows.len(), rows_before.len(), "rows after the move");
        h.assert_matches_truth(&subject, ui, "after a move").await;

        // Deleted in Outlook: a message of Deleted Items; deleted there: soft-deleted.
        let Deleted::MovedToDeletedItems(_) = subject.fake.delete_message(&moved).unwrap() else {
            panic!("the first deletion purged");
        };
        h.history_after(&engine, ui, TICK_MS).await;
        let row = &h.content(ui, true).await[&moved];
        assert!(!row.is_deleted, "a message in Deleted Items was deleted");
        assert_eq!(row.content["folder"]["path"], "/Deleted Items");
        assert_eq!(
            subject.fake.delete_message(&moved).unwrap(),
            Deleted::Purged
        );
        h.history_after(&engine, ui, TICK_MS).await;
        let rows = h.content(ui, true).await;
        let row = &rows[&moved];
        assert!(
            row.is_deleted && row.deleted_at.is_some(),
            "purged, not soft-deleted"
        );
        assert_eq!(row.id, rows_before[&moved].id);
        assert!(!h.content(ui, false).await.contains_key(&moved));

        // A flag and a read-state change update their items, and nothing else.
        let flagged = message_in(&subject, "sentitems", 1);
        let read = message_in(&subject, "inbox", 7);
        let was_read = subject.fake.message(&read).unwrap().is_read;
        let before = h.updated_at(ui).await;
        subject
            .fake
            .set_flag(&flagged, FlagStatus::Flagged)
            .unwrap();
        subject.fake.set_read(&read, !was_read).unwrap();
        h.history_after(&engine, ui, TICK_MS).await;
        let rows = h.content(ui, false).await;
        assert_eq!(rows[&flagged].content["flag"], "flagged");
        assert_eq!(rows[&read].content["isRead"], !was_read);
        let after = h.updated_at(ui).await;
        let written: Vec<&String> = after
            .iter()
            .filter(|(id, at)| before.get(*id) != Some(*at))
            .map(|(id, _)| id)
            .collect();
        let mut expected = vec![&flagged, &read];
        expected.sort();
        assert_eq!(written, expected, "items written by two edits");
        h.assert_matches_truth(&subject, ui, "after edits").await;
    }
}

/// (c) one folder's delta tokens forgotten, with both resync codes.
async fn a_forgotten_delta_token_compares_that_folder_only(h: Harness) {
    for (n, code) in ["syncStateNotFound", "resyncRequired"]
        .into_iter()
        .enumerate()
    {
        let mut config = OutlookSubject::config(600, 2, 40 + n as u64);
        config.resync_code = code;
        let subject = OutlookSubject::with_config(config).await;
        let engine = h.engine(4);
        let ui = h.link(&subject, &format!("outlook-user-{n}")).await.id;
        h.sync(&engine, ui).await;
        h.check_history(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        let archive = subject.fake.folder_id("archive").unwrap();
        let links_before: BTreeMap<String, Option<String>> = {
            let mut links = BTreeMap::new();
            for f in subject
                .fake
                .folders()
                .iter()
                .filter(|f| f.parent_id.is_some())
            {
                links.insert(
                    f.id.clone(),
                    h.sync_state_str(ui, &format!("deltaLink:{}", f.id)).await,
                );
            }
            links
        };
        assert!(
            links_before.values().all(Option::is_some),
            "a folder without a delta link"
        );

        // While the archive's tokens are lost: two of its messages purged, one moved in
        // from the Inbox, one delivered to it; one Inbox message purged.
        let gone = [
            message_in(&subject, "archive", 1),
            message_in(&subject, "archive", 5),
        ];
        for id in &gone {
            subject.fake.purge_message(id).unwrap();
        }
        let moved_in = message_in(&subject, "inbox", 2);
        subject.fake.move_message(&moved_in, "archive").unwrap();
        let mut new = tributary_outlook_fake::NewMessage::new(
            "filed straight away",
            tributary_outlook_fake::Recipient::new("Rule", "rule@example.com"),
            "sorted by a rule",
        );
        new.folder = Some("archive".into());
        let delivered = subject.fake.deliver(new).unwrap().immutable_id;
        let inbox_gone = message_in(&subject, "inbox", 9);
        subject.fake.purge_message(&inbox_gone).unwrap();
        assert!(subject.fake.forget_delta_tokens("archive"));

        let stats = engine.stats().snapshot();
        let rows_before = h.content(ui, true).await;
        subject.reset_counters();
        h.history_after(&engine, ui, TICK_MS).await;
        h.assert_matches_truth(&subject, ui, "after the archive's comparison")
            .await;
        let deltas = subject.probe.deltas();
        assert!(
            deltas
                .iter()
                .any(|d| d.folder == archive && !d.from_delta_link),
            "{code}: the archive was not read in full"
        );
        let others: Vec<_> = deltas.iter().filter(|d| d.folder != archive).collect();
        assert!(!others.is_empty(), "no other folder was checked");
        assert!(
            others.iter().all(|d| d.from_delta_link),
            "{code}: another folder lost its delta link: {others:?}"
        );
        let rows = h.content(ui, true).await;
        for id in gone.iter().chain([&inbox_gone]) {
            assert!(rows[id].is_deleted, "{id} vanished but is not soft-deleted");
        }
        assert!(
            !rows[&moved_in].is_deleted,
            "the message moved in was deleted"
        );
        assert_eq!(rows[&moved_in].id, rows_before[&moved_in].id);
        assert_eq!(rows[&moved_in].content["folder"]["path"], "/Archive");
        assert!(!rows[&delivered].is_deleted);
        assert_eq!(
            engine.stats().snapshot().items_deleted - stats.items_deleted,
            3,
            "{code}: deletions (the moved message must not be one)"
        );
        let archive_link = h.sync_state_str(ui, &format!("deltaLink:{archive}")).await;
        assert!(archive_link.is_some() && archive_link != links_before[&archive]);

        // The new link works: a change in the archive comes through its round, no
        // folder is read in full.
        subject.reset_counters();
        let edited = message_in(&subject, "archive", 3);
        subject
            .fake
            .set_flag(&edited, FlagStatus::Complete)
            .unwrap();
        h.history_after(&engine, ui, TICK_MS).await;
        assert!(
            subject.probe.deltas().iter().all(|d| d.from_delta_link),
            "{code}: a folder was read in full after the fallback"
        );
        assert_eq!(
            h.content(ui, false).await[&edited].content["flag"],
            "complete"
        );
        h.assert_matches_truth(&subject, ui, "after a change on the new link")
            .await;
    }
}

/// (d) what reaches the mailbox at once, and a sync under throttling.
async fn never_more_than_four_requests_at_once_and_throttling_converges(h: Harness) {
    // The fake measures without refusing; latency makes requests overlap.
    let mut config = OutlookSubject::config(1_500, 4, 50);
    config.graph.throttle = ThrottleConfig {
        enforce_rate: false,
        enforce_concurrency: false,
        ..ThrottleConfig::default()
    };
    config.graph.latency = Duration::from_millis(3);
    let subject = OutlookSubject::with_config(config).await;
    let engine = h.engine(16);
    let ui = synced(&h, &subject, &engine).await;
    let peak = subject.fake.graph().peak_concurrency(&subject.user_id());
    assert!(peak <= 4, "{peak} requests reached the mailbox at once");
    assert!(
        peak >= 2,
        "requests never overlapped ({peak}): the check proves nothing"
    );
    drop(engine);
    let _ = ui;

    // Throttled: the mailbox's limits on (the rate window on a clock 12 times faster:
    // 10,000 requests per 50 s), the engine's budget on the same clock, and 429s and
    // 503s injected.
    const SCALE: f64 = 12.0;
    let mut config = OutlookSubject::config(1_500, 4, 51);
    config.graph.throttle = ThrottleConfig {
        time_scale: SCALE,
        ..ThrottleConfig::default()
    };
    let subject = OutlookSubject::with_config(config).await;
    let ui = h.link(&subject, "outlook-throttled").await.id;
    let graph = subject.fake.graph();
    // Queued faults: at most a few for any one job (a job has 8 attempts).
    graph.fail_next(
        "",
        3,
        Fault::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    graph.fail_next(
        "/delta",
        3,
        Fault::Unavailable {
            retry_after_secs: Some(1),
        },
    );
    graph.fail_next(
        "/me/messages/",
        12,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    subject.set_fault_rates(FaultRates {
        rate_limited: 0.05,
        server_error: 0.03,
        seed: 51,
    });
    let engine = h.engine_with(EngineConfig {
        enforce_budgets: true,
        budget_time_scale: SCALE,
        ..tributary_conformance::harness::engine_config(16)
    });
    h.sync(&engine, ui).await;
    h.check_history(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a throttled sync")
        .await;
    assert_eq!(graph.pending_faults(), 0, "injected faults left unanswered");
    assert!(
        subject.faults_injected() > 0,
        "no random fault was injected"
    );
    assert!(
        engine.stats().snapshot().jobs_retried > 0,
        "nothing was retried"
    );
    let counters = graph.mailbox_counters(&subject.user_id());
    assert_eq!(
        counters.concurrency_limited, 0,
        "over the mailbox's concurrency limit"
    );
    assert_eq!(
        counters.rate_limited, 0,
        "the engine's budget let the mailbox's rate limit refuse"
    );
    assert!(counters.peak_attempted <= 4);
    assert!(
        h.jobs(ui, JobState::Dead).await.is_empty(),
        "jobs gave up under throttling"
    );
}

/// Refresh tokens that die on use, refreshed many times during a sync.
async fn rotated_refresh_tokens_survive_many_refreshes(h: Harness) {
    let mut config = OutlookSubject::config(800, 2, 60);
    config.graph.refresh_rotation = RefreshRotation::RevokeOnUse;
    let mut subject = OutlookSubject::with_config(config).await;
    // Linked with the grant's access token: the link's check needs no refresh.
    subject.with_access_token = true;
    subject.set("pageSize", Value::from(25));
    // Every access token dies at each 50th request (counted in requests, not time, so
    // that the refreshes do not depend on the machine's speed).
    subject.fake.graph().expire_access_tokens_every(Some(50));
    let engine = h.engine(4);
    let ui = synced(&h, &subject, &engine).await;
    let refreshes = subject.fake.graph().refreshes();
    assert!(refreshes >= 5, "only {refreshes} refreshes");
    assert_eq!(
        h.account(ui).await.status,
        tributary_store::UserIntegrationStatus::Active
    );
    let stored = h.account(ui).await.credentials;
    let token = stored.get("refreshToken").unwrap().to_owned();
    assert!(
        subject.fake.graph().is_current_refresh_token(&token),
        "the stored refresh token is not the grant's newest"
    );
    // Every access token expired: the next check refreshes with the stored one.
    subject.fake.graph().expire_access_tokens_every(None);
    subject.fake.graph().expire_access_tokens();
    let before = subject.fake.graph().refreshes();
    subject.add_item();
    h.history_after(&engine, ui, TICK_MS).await;
    assert!(
        subject.fake.graph().refreshes() > before,
        "no refresh after expiry"
    );
    assert_eq!(
        h.account(ui).await.status,
        tributary_store::UserIntegrationStatus::Active
    );
    h.assert_matches_truth(&subject, ui, "after a refresh with the stored token")
        .await;
}

/// A message whose JSON is not a message: a failure marker, and the rest syncs.
async fn an_undecodable_message_is_a_failure_and_the_account_goes_on(h: Harness) {
    let subject = OutlookSubject::start(120, 70).await;
    let engine = h.engine(4);
    let ui = synced(&h, &subject, &engine).await;
    let bad = subject.add_item();
    let good = subject.add_item();
    subject.probe.corrupt_message(&bad);
    h.history_after(&engine, ui, TICK_MS).await;
    let rows = h.content(ui, false).await;
    assert_eq!(
        rows[&bad].content["failed"], true,
        "{:?}",
        rows[&bad].content
    );
    assert_eq!(rows[&bad].content["code"], 502);
    assert_eq!(
        rows[&good].content["subject"],
        subject.fake.message(&good).unwrap().subject.as_str()
    );
    assert_eq!(
        h.account(ui).await.status,
        tributary_store::UserIntegrationStatus::Active
    );
    // Known as failed: the next start does not fetch it again.
    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;
    assert_eq!(
        subject.fetch_calls(),
        0,
        "the failed message was fetched again"
    );
}

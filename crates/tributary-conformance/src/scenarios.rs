//! The scenarios (DESIGN.md, "Testing"): each is an async function taking a fresh
//! [`Harness`] and running one behaviour end to end through the engine, the store and
//! the integration against the subject's fake.
//!
//! | scenario | needs | checks |
//! |---|---|---|
//! | [`full_sync`] | | every item stored once, equal to the truth; each fetched once (with item fetches) |
//! | [`resync_nothing_new`] | | a second `start` makes ≤ 4 list calls (the subject may allow more), no fetch, no write; a same-content fetch writes nothing (with item fetches) |
//! | [`new_item_appears`] | history | a new item arrives through `start` and through the history |
//! | [`edit_updates_content`] | history, edits | an edit reaches the stored content through the history |
//! | [`change_burst`] | history, edits | hundreds of changes between two checks (history pages) converge |
//! | [`deletion_soft_deletes`] | history | a deletion soft-deletes, visible only with `include_deleted`; with restore, a restore revives the row |
//! | [`edit_during_fetch`] | history, edits | an edit made while the item's fetch is in flight is not lost |
//! | [`expired_cursor_falls_back`] | history | an expired cursor falls back, converges, and a fresh cursor works |
//! | [`token_expiry_mid_sync`] | history, expiring tokens | an access token that expires mid-sync is refreshed |
//! | [`token_reuse`] | expiring tokens | twice the full-sync items at 16 workers, tokens expiring halfway: at most 2 token requests |
//! | [`faults_converge`] | history | 5% 429 and 5% 5xx: everything still converges |
//! | [`revoked_credentials_need_reauth`] | history | `needs_reauth`, jobs wait, resume after re-authorization |
//! | [`convergence`] | history | 20 rounds of random changes: the database equals the truth |
//!
//! "Needs" is what [`crate::conformance_tests!`] checks before running a scenario
//! (see [`crate::stamp`]). Edits and restores made in passing (a round of random
//! changes, the last step of a scenario) happen only when the subject declares them.
//!
//! None depends on the order in which jobs of one priority run (listing and downloads
//! may interleave either way): each runs until the account has nothing pending.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tributary_engine::{Clock as _, Engine};
use tributary_store::{JobState, NewJob, UserIntegrationStatus};

use crate::harness::{Background, wait_until};
use crate::{ConformanceSubject, FaultRates, Harness};

/// Workers of the full-sync engine.
pub const FULL_SYNC_WORKERS: usize = 8;
/// Workers of the other scenarios' engines.
pub const WORKERS: usize = 4;
/// How far the clock moves between a change at the fake and the next sync (a
/// scheduler interval).
const TICK_MS: i64 = 60_000;

/// An account synced once with a subject.
struct Synced<S> {
    subject: S,
    ui: i64,
    engine: Engine,
}

/// Starts a subject with `items` items, links it, syncs it fully and checks the
/// result against the truth.
async fn synced<S: ConformanceSubject>(h: &Harness, items: usize, seed: u64) -> Synced<S> {
    let subject = S::start(items, seed).await;
    let ui = h.link(&subject, "conformance-user").await.id;
    let engine = h.engine(WORKERS);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after the first sync")
        .await;
    Synced {
        subject,
        ui,
        engine,
    }
}

/// Edits `id` when the subject declares edits (which it must then make); nothing
/// otherwise. Returns whether it edited.
fn edit<S: ConformanceSubject>(subject: &S, id: &str) -> bool {
    if !S::CAPABILITIES.edits {
        return false;
    }
    assert!(
        subject.edit_item(id),
        "the subject declares edits but refused to edit {id}"
    );
    true
}

/// The id at `position` (wrapping) among the truth's ids, in id order.
fn pick<S: ConformanceSubject>(subject: &S, position: usize) -> String {
    let truth = subject.truth();
    assert!(!truth.is_empty(), "the fake holds no item to pick");
    truth
        .keys()
        .nth(position % truth.len())
        .cloned()
        .unwrap_or_default()
}

/// Full sync: every item stored exactly once and equal to the truth; each item fetched
/// exactly once; nothing failed; nothing deleted.
pub async fn full_sync<S: ConformanceSubject>(h: Harness) {
    let subject = S::start(S::FULL_SYNC_ITEMS, 1).await;
    let ui = h.link(&subject, "conformance-user").await.id;
    subject.reset_counters();
    let engine = h.engine(FULL_SYNC_WORKERS);
    h.sync(&engine, ui).await;

    h.assert_no_failed_jobs(ui).await;
    let truth = subject.truth();
    let all = h.content(ui, true).await;
    assert_eq!(all.len(), truth.len(), "stored rows (deleted included)");
    assert!(
        all.values().all(|item| !item.is_deleted),
        "a full sync deleted items"
    );
    h.assert_matches_truth(&subject, ui, "after the full sync")
        .await;

    if S::CAPABILITIES.item_fetches {
        let fetches = subject.fetch_calls();
        assert_eq!(
            usize::try_from(fetches).ok(),
            Some(truth.len()),
            "item fetches: each item must be fetched exactly once"
        );
        let downloads = h.jobs(ui, JobState::Completed).await;
        let mut per_item: BTreeMap<String, usize> = BTreeMap::new();
        for job in &downloads {
            if let Some(item) = &job.item_id {
                *per_item.entry(item.clone()).or_default() += 1;
            }
        }
        assert_eq!(
            per_item.len(),
            truth.len(),
            "items with a completed fetch job"
        );
        let twice: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(twice.is_empty(), "items fetched by two jobs: {twice:?}");
    }

    let account = h.account(ui).await;
    assert_eq!(account.status, UserIntegrationStatus::Active);
    assert!(account.last_synced_at.is_some(), "last_synced_at not set");
    assert!(!account.sync_state.is_empty(), "no history cursor recorded");
}

/// Re-sync with nothing new: a second `start` makes at most 4 list calls, fetches
/// nothing and writes nothing (`updated_at` unchanged everywhere). Then fetching
/// stored items again (their fetch jobs re-enqueued as they were) writes nothing
/// either: same content, no write.
pub async fn resync_nothing_new<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::RESYNC_ITEMS, 2).await;
    let before = h.updated_at(ui).await;
    let stats_before = engine.stats().snapshot();

    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;

    let lists = subject.list_calls();
    let allowed = subject.resync_list_calls();
    assert!(lists >= 1, "the re-sync listed nothing");
    assert!(
        lists <= allowed,
        "the re-sync made {lists} list calls (at most {allowed} allowed)"
    );
    assert_eq!(subject.fetch_calls(), 0, "the re-sync fetched items");
    let stats = engine.stats().snapshot();
    assert_eq!(
        (
            stats.items_inserted - stats_before.items_inserted,
            stats.items_updated - stats_before.items_updated,
            stats.items_deleted - stats_before.items_deleted,
        ),
        (0, 0, 0),
        "the re-sync wrote content (inserted, updated, deleted)"
    );
    assert_eq!(
        h.updated_at(ui).await,
        before,
        "the re-sync moved updated_at"
    );

    if !S::CAPABILITIES.item_fetches {
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, "after the re-sync")
            .await;
        return;
    }
    // The same content fetched again: no write.
    h.clock.advance_ms(TICK_MS);
    let refetch: Vec<NewJob> = h
        .jobs(ui, JobState::Completed)
        .await
        .into_iter()
        .filter(|job| job.item_id.is_some())
        .take(10)
        .map(|job| NewJob {
            user_integration_id: ui,
            task: job.task(),
            priority: job.priority,
            dedupe_key: job.dedupe_key.clone(),
            max_attempts: job.max_attempts,
            run_at: h.clock.now_ms(),
        })
        .collect();
    assert_eq!(refetch.len(), 10, "fewer than 10 completed fetch jobs");
    let enqueued = h
        .store
        .enqueue(&refetch, h.clock.now_ms())
        .await
        .expect("enqueue fetches");
    assert_eq!(
        enqueued, 10,
        "fetches of stored items were deduplicated away"
    );
    let stats_before = engine.stats().snapshot();
    h.settle(&engine, ui).await;
    let stats = engine.stats().snapshot();
    assert_eq!(subject.fetch_calls(), 10, "fetches of stored items");
    assert_eq!(
        (
            stats.items_unchanged - stats_before.items_unchanged,
            stats.items_inserted - stats_before.items_inserted,
            stats.items_updated - stats_before.items_updated,
        ),
        (10, 0, 0),
        "fetching stored items again (unchanged, inserted, updated)"
    );
    assert_eq!(
        h.updated_at(ui).await,
        before,
        "a same-content fetch moved updated_at"
    );
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after the re-sync")
        .await;
}

/// A new item appears: through the history check (no list call, one fetch), and
/// through the next `start` (at most 4 list calls, one fetch).
///
/// The history check comes first, so that the history it reads holds only its own
/// item: whether a history check fetches again an item that a `start` already stored
/// is left to the integration.
pub async fn new_item_appears<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 3).await;

    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    let by_history = subject.add_item();
    h.check_history(&engine, ui).await;
    assert!(
        h.content(ui, false).await.contains_key(&by_history),
        "the new item {by_history} was not stored by the history check"
    );
    assert_eq!(subject.list_calls(), 0, "the history check listed items");
    assert_eq!(
        subject.fetch_calls(),
        1,
        "fetches for one new item through the history"
    );
    h.assert_matches_truth(&subject, ui, "after a new item and a history check")
        .await;

    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    let by_start = subject.add_item();
    h.sync(&engine, ui).await;
    assert!(
        h.content(ui, false).await.contains_key(&by_start),
        "the new item {by_start} was not stored by the next start"
    );
    assert!(
        subject.list_calls() <= 4,
        "start made {} list calls",
        subject.list_calls()
    );
    assert_eq!(
        subject.fetch_calls(),
        1,
        "fetches for one new item through start"
    );
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a new item and a start")
        .await;
}

/// An edit (for Gmail a label change) reaches the stored content through the history
/// check: that item's content and `updated_at` change, no other item is written.
pub async fn edit_updates_content<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 4).await;
    let id = pick(&subject, S::ITEMS / 2);
    let before = h.updated_at(ui).await;
    let stored_before = h.stored::<S>(ui).await[&id].clone();

    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    edit(&subject, &id);
    let want = subject.truth()[&id].clone();
    assert_ne!(
        want, stored_before,
        "the subject's edit did not change the projection"
    );
    h.check_history(&engine, ui).await;

    assert_eq!(
        h.stored::<S>(ui).await.get(&id),
        Some(&want),
        "edited item {id}"
    );
    let after = h.updated_at(ui).await;
    assert!(
        after[&id] > before[&id],
        "updated_at of the edited item did not move"
    );
    let rewritten: Vec<&String> = after
        .iter()
        .filter(|(other, at)| **other != id && before.get(*other) != Some(*at))
        .map(|(other, _)| other)
        .take(5)
        .collect();
    assert!(
        rewritten.is_empty(),
        "items written though unchanged: {rewritten:?}"
    );
    assert_eq!(subject.fetch_calls(), 1, "fetches for one edited item");
    assert_eq!(subject.list_calls(), 0, "the history check listed items");
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after an edit").await;
}

/// A burst of changes between two history checks, more than one page of history for
/// most services (every item edited four times, plus additions and deletions): one
/// history check and one `start` bring the database to the truth.
pub async fn change_burst<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 12).await;
    h.clock.advance_ms(TICK_MS);
    let ids: Vec<String> = subject.truth().into_keys().collect();
    for _ in 0..4 {
        for id in &ids {
            edit(&subject, id);
        }
    }
    for i in 0..20 {
        subject.add_item();
        subject.delete_item(&pick(&subject, i * 7));
    }
    subject.reset_counters();
    h.enqueue_history(ui).await;
    h.enqueue_start(ui).await;
    h.settle(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a burst of changes")
        .await;
}

/// Deletions found through the history soft-delete: the rows stay with `is_deleted`
/// and `deleted_at`, hidden by default and listed with `include_deleted`.
pub async fn deletion_soft_deletes<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 5).await;
    let count_before = h.content(ui, false).await.len();
    let gone: Vec<String> = (0..3).map(|i| pick(&subject, 7 + i * 31)).collect();
    h.clock.advance_ms(TICK_MS);
    for id in &gone {
        subject.delete_item(id);
    }
    assert!(
        gone.iter().all(|id| !subject.truth().contains_key(id)),
        "the subject's deletion left the item in the truth"
    );
    h.check_history(&engine, ui).await;

    let visible = h.content(ui, false).await;
    let all = h.content(ui, true).await;
    assert_eq!(visible.len(), count_before - gone.len(), "visible items");
    assert_eq!(
        all.len(),
        count_before,
        "rows with deleted ones: deletion must be soft"
    );
    for id in &gone {
        assert!(
            !visible.contains_key(id),
            "deleted item {id} still listed by default"
        );
        let row = &all[id];
        assert!(row.is_deleted, "item {id} not marked deleted");
        assert!(row.deleted_at.is_some(), "item {id} has no deleted_at");
    }
    let counts = h.store.content_counts(ui).await.expect("counts");
    assert_eq!(counts.deleted, 3, "content_counts.deleted");
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after deletions")
        .await;

    // A deleted item that comes back is restored: the same row, no longer deleted.
    if !S::CAPABILITIES.restore {
        assert_eq!(
            subject.restore_item(),
            None,
            "the subject declares no restore but restored an item"
        );
        return;
    }
    h.clock.advance_ms(TICK_MS);
    let back = subject
        .restore_item()
        .expect("the subject can restore none of the deleted items");
    assert!(
        gone.contains(&back),
        "restored {back}, which was not deleted"
    );
    h.check_history(&engine, ui).await;
    h.sync(&engine, ui).await;
    let rows = h.content(ui, true).await;
    let row = &rows[&back];
    assert!(!row.is_deleted, "item {back} still marked deleted");
    assert!(row.deleted_at.is_none(), "item {back} kept its deleted_at");
    assert_eq!(row.id, all[&back].id, "the restored item got a new row");
    assert_eq!(rows.len(), count_before, "rows after the restore");
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a restore")
        .await;
}

/// An edit made while the item's fetch is in flight is not lost: the fetch has read
/// the item before the edit, the history check that reports the edit runs before that
/// fetch commits, and still the stored content ends equal to the truth.
///
/// The race, step by step: an edit; a history check enqueues the item's fetch; the
/// fake answers the fetch, whose response the [`tributary_testkit::serving::ResponseGate`] holds;
/// a second edit; a second history check runs to completion; the held response goes
/// and its (older) content commits; the engine runs until nothing is pending.
///
/// The store keeps this safe by re-running a fetch that was asked for again while it
/// ran (`Store::enqueue`): without that, the second fetch is deduplicated against the
/// running one and the older content stays.
pub async fn edit_during_fetch<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 11).await;
    let id = pick(&subject, S::ITEMS / 3);
    let gate = subject.response_gate();

    h.clock.advance_ms(TICK_MS);
    edit(&subject, &id);
    gate.hold(subject.fetch_path(&id));
    h.enqueue_history(ui).await;
    let background = Background::run(&engine);
    wait_until("the fetch of the edited item reaches the fake", || async {
        gate.held() >= 1
    })
    .await;

    // The fetch has read the first edit; a second edit and its history check now.
    edit(&subject, &id);
    let histories = |jobs: Vec<tributary_store::Job>| {
        jobs.iter()
            .filter(|j| Some(&j.task_type) == h.history_task.as_ref())
            .count()
    };
    let checks_before = histories(h.jobs(ui, JobState::Completed).await);
    h.enqueue_history(ui).await;
    wait_until("the second history check completes", || async {
        histories(h.jobs(ui, JobState::Completed).await) > checks_before
    })
    .await;
    gate.release();
    background.stop_when_idle(&h, ui).await;
    h.settle(&engine, ui).await;

    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after an edit during the item's fetch")
        .await;
}

/// An expired history cursor: the history check falls back to comparing ids, which
/// stores what was added, soft-deletes what vanished and records a fresh cursor; the
/// next check works from that cursor without listing.
///
/// Only additions and deletions happen before the expiry: an id comparison cannot see
/// an edit made while the history was lost (DESIGN.md: "fall back to a full id
/// comparison").
pub async fn expired_cursor_falls_back<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 6).await;
    let cursor_before = h.account(ui).await.sync_state;

    h.clock.advance_ms(TICK_MS);
    let gone = [pick(&subject, 11), pick(&subject, 97)];
    let added = [subject.add_item(), subject.add_item()];
    for id in &gone {
        subject.delete_item(id);
    }
    subject.expire_history_cursor();
    subject.reset_counters();
    h.check_history(&engine, ui).await;

    assert!(
        subject.list_calls() >= 1,
        "the expired cursor did not fall back to listing"
    );
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after the fallback")
        .await;
    let all = h.content(ui, true).await;
    for id in &gone {
        assert!(
            all[id].is_deleted,
            "vanished item {id} not soft-deleted by the fallback"
        );
    }
    for id in &added {
        assert!(
            !all[id].is_deleted,
            "added item {id} missing after the fallback"
        );
    }
    let cursor_after = h.account(ui).await.sync_state;
    assert_ne!(
        cursor_after, cursor_before,
        "the fallback did not store a fresh cursor"
    );

    // The fresh cursor works: edits, additions and deletions through the history only.
    h.clock.advance_ms(TICK_MS);
    subject.reset_counters();
    subject.add_item();
    edit(&subject, &pick(&subject, 23));
    subject.delete_item(&pick(&subject, 57));
    h.check_history(&engine, ui).await;
    assert_eq!(
        subject.list_calls(),
        0,
        "the fresh cursor was refused: listed again"
    );
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after changes on the fresh cursor")
        .await;
}

/// One account's jobs share its access token: a sync of twice the full-sync items at
/// [`TOKEN_REUSE_WORKERS`] workers, with every token expiring halfway, asks the token
/// endpoint at most twice: once at the start, once after the expiry (the goal is one
/// token per hour of sync per account, plus one per process start).
pub async fn token_reuse<S: ConformanceSubject>(h: Harness) {
    let items = S::FULL_SYNC_ITEMS * 2;
    let subject = S::start(items, 11).await;
    let ui = h.link(&subject, "conformance-user").await.id;
    // Linking validated the credentials (one token, not stored): count the sync alone.
    subject.reset_counters();
    let before = subject.tokens_issued();
    // Halfway through, every access token expires (as after an hour of sync): the jobs
    // in flight then, each holding the old token, must share one new token too.
    let halfway = u64::try_from(items / 2).unwrap_or(u64::MAX);
    assert!(
        subject.expire_tokens_after_calls(halfway),
        "the subject declares expiring tokens but cannot expire them"
    );
    let engine = h.engine(TOKEN_REUSE_WORKERS);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after the sync").await;
    let issued = subject.tokens_issued() - before;
    let fetches = subject.fetch_calls();
    assert!(
        issued <= 2,
        "the token endpoint was asked {issued} times for {fetches} item fetches of one \
         account: its jobs must share one access token"
    );
}

/// Workers of the token-reuse sync: enough jobs of one account at once that tokens
/// not shared would be asked for many times.
pub const TOKEN_REUSE_WORKERS: usize = 16;

/// Access tokens expire in the middle of a backfill, and again before a history
/// check: the integration refreshes and carries on; nothing is missing, the account
/// stays active.
pub async fn token_expiry_mid_sync<S: ConformanceSubject>(h: Harness) {
    let subject = S::start(S::ITEMS, 7).await;
    let ui = h.link(&subject, "conformance-user").await.id;
    let engine = h.engine(WORKERS);
    let calls = u64::try_from(S::ITEMS / 2).unwrap_or(u64::MAX);
    assert!(
        subject.expire_tokens_after_calls(calls),
        "the subject declares expiring tokens but cannot expire them"
    );
    let issued_before = subject.tokens_issued();
    h.sync(&engine, ui).await;

    h.assert_no_failed_jobs(ui).await;
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
    h.assert_matches_truth(&subject, ui, "after a backfill with a token expiry")
        .await;
    let issued = subject.tokens_issued() - issued_before;
    assert!(
        issued >= 2,
        "{issued} tokens issued: the expired token was not refreshed"
    );

    // The stored token expires before the next history check.
    h.clock.advance_ms(TICK_MS);
    subject.add_item();
    edit(&subject, &pick(&subject, 3));
    let issued_before = subject.tokens_issued();
    subject.expire_tokens_after_calls(0);
    h.check_history(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
    assert!(
        subject.tokens_issued() > issued_before,
        "the stored, expired token was not refreshed"
    );
    h.assert_matches_truth(&subject, ui, "after a history check with an expired token")
        .await;
}

/// 5% of requests answered 429 and 5% 500/503, during a full sync and during three
/// rounds of changes: every job is retried until it succeeds (moving the manual clock
/// to each retry), and the database equals the truth.
pub async fn faults_converge<S: ConformanceSubject>(h: Harness) {
    let subject = S::start(S::ITEMS * 2, 8).await;
    let ui = h.link(&subject, "conformance-user").await.id;
    let engine = h.engine(WORKERS);
    subject.set_fault_rates(FaultRates {
        rate_limited: 0.05,
        server_error: 0.05,
        seed: 8,
    });
    let moves = h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a full sync with faults")
        .await;
    assert!(subject.faults_injected() > 0, "no fault was injected");
    assert!(moves > 0, "no retry was ever waiting");
    assert!(
        engine.stats().snapshot().jobs_retried > 0,
        "no job was retried"
    );

    let mut rng = StdRng::seed_from_u64(8);
    for round in 1..=3 {
        h.clock.advance_ms(TICK_MS);
        for _ in 0..3 {
            subject.add_item();
            edit(&subject, &pick(&subject, rng.random_range(0..1000)));
            subject.delete_item(&pick(&subject, rng.random_range(0..1000)));
        }
        h.enqueue_history(ui).await;
        h.enqueue_start(ui).await;
        h.settle(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(
            &subject,
            ui,
            &format!("after change round {round} with faults"),
        )
        .await;
    }
    subject.set_fault_rates(FaultRates::NONE);
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
}

/// Revoked credentials: the account becomes `needs_reauth`, its jobs wait (neither
/// failed nor run again, however much time passes), and after re-authorization the
/// same jobs run and the account catches up.
pub async fn revoked_credentials_need_reauth<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 9).await;

    subject.revoke_credentials();
    h.clock.advance_ms(TICK_MS);
    let fresh = subject.add_item();
    h.enqueue_history(ui).await;
    h.enqueue_start(ui).await;
    h.settle(&engine, ui).await;

    let account = h.account(ui).await;
    assert_eq!(account.status, UserIntegrationStatus::NeedsReauth);
    assert!(
        account.last_error.is_some(),
        "needs_reauth without an error message"
    );
    h.assert_no_failed_jobs(ui).await;
    let waiting = h.jobs(ui, JobState::Available).await;
    assert!(!waiting.is_empty(), "no job waits for re-authorization");
    assert!(!h.content(ui, false).await.contains_key(&fresh));

    // However much time passes, paused jobs do not run.
    let requests = (
        subject.list_calls(),
        subject.fetch_calls(),
        subject.tokens_issued(),
    );
    h.clock.advance_ms(24 * 3600 * 1000);
    h.run_claimable(&engine).await;
    assert_eq!(
        (
            subject.list_calls(),
            subject.fetch_calls(),
            subject.tokens_issued()
        ),
        requests,
        "jobs of a needs_reauth account ran"
    );
    assert_eq!(h.jobs(ui, JobState::Available).await.len(), waiting.len());

    // Re-authorized: the waiting jobs run and the account catches up.
    let credentials = subject.reauthorize();
    h.store
        .update_credentials(ui, &credentials)
        .await
        .expect("store new credentials");
    h.store
        .set_user_integration_status(ui, UserIntegrationStatus::Active, None)
        .await
        .expect("resume the account");
    h.settle(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
    h.assert_matches_truth(&subject, ui, "after re-authorization")
        .await;
}

/// Convergence: 20 rounds of random additions, edits, deletions and restores of
/// deleted items (a seeded RNG), each followed by a scheduler tick (which enqueues the
/// `start` and the history check, both due) and a run until nothing is pending; after
/// every round the stored, non-deleted items equal the truth exactly.
pub async fn convergence<S: ConformanceSubject>(h: Harness) {
    let Synced {
        subject,
        ui,
        engine,
    } = synced::<S>(&h, S::ITEMS, 10).await;
    let scheduler = h.scheduler();
    let period = h.schedule_period_ms();
    let mut rng = StdRng::seed_from_u64(10);
    let (mut added, mut edited, mut deleted, mut restored) = (0, 0, 0, 0);
    for round in 1..=20 {
        h.clock.advance_ms(period);
        let changes = rng.random_range(1..=8);
        for _ in 0..changes {
            match rng.random_range(0..4) {
                0 => {
                    subject.add_item();
                    added += 1;
                }
                1 => {
                    if edit(&subject, &pick(&subject, rng.random_range(0..100_000))) {
                        edited += 1;
                    }
                }
                2 => {
                    if subject.restore_item().is_some() {
                        restored += 1;
                    }
                }
                _ => {
                    subject.delete_item(&pick(&subject, rng.random_range(0..100_000)));
                    deleted += 1;
                }
            }
        }
        let report = scheduler.tick().await.expect("scheduler tick");
        assert_eq!(
            (report.starts, report.histories),
            (1, 1),
            "round {round}: the scheduler tick (starts, history checks)"
        );
        h.settle(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, &format!("after convergence round {round}"))
            .await;
    }
    let edits = edited > 0 || !S::CAPABILITIES.edits;
    let restores = restored > 0 || !S::CAPABILITIES.restore;
    assert!(
        added > 0 && edits && deleted > 0 && restores,
        "a kind of change never happened: {added} added, {edited} edited, {deleted} deleted, \
         {restored} restored"
    );
}

//! Slack through the whole engine on SQLite and PostgreSQL, against the fake (rate
//! limits on a fast clock, the engine's budgets on the same clock): a generated
//! workspace syncs exactly and a re-sync writes nothing; each kind of change is
//! reflected by the read that finds it; every rate profile stays within the fake's
//! limits; token rotation survives many refreshes; a token without `groups:history`
//! syncs the rest and reports what it skipped; random rounds of changes converge.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{SlackSubject, engine, fast_settings, profile_setting};
use tributary_conformance::{ConformanceSubject, Harness};
use tributary_engine::{Clock, Engine};
use tributary_sdk::serde_json::Value;
use tributary_sdk::{LOWEST_PRIORITY, Task};
use tributary_slack::SlackTask;
use tributary_slack_fake::{ALL_SCOPES, ConversationKind, RateProfile, SlackConfig};
use tributary_store::NewJob;

const TICK_MS: i64 = 61_000;

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    tributary_conformance::run_scenario::<super::SlackSubject, _, _>(
                        tributary_conformance::Backend::Sqlite,
                        super::$name,
                    );
                }
            )+
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    tributary_conformance::run_scenario::<super::SlackSubject, _, _>(
                        tributary_conformance::Backend::Postgres,
                        super::$name,
                    );
                }
            )+
        }
    };
}

both_backends!(
    a_workspace_syncs_exactly_and_a_resync_writes_nothing,
    each_change_is_found_by_its_read,
    every_rate_profile_stays_within_the_limits,
    rotation_survives_many_refreshes,
    a_token_without_private_history_syncs_the_rest,
    random_rounds_converge,
);

/// Links `subject` with the fast settings and syncs it once.
async fn synced(h: &Harness, subject: &SlackSubject, workers: usize) -> (i64, Engine) {
    let ui = h.link(subject, "slack-user").await.id;
    let engine = engine(h, workers);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    (ui, engine)
}

/// Runs one task for account `ui` (as the planner would queue it) until the account
/// is idle again.
async fn run_task(h: &Harness, engine: &Engine, ui: i64, task: &SlackTask) {
    let now = h.clock.now_ms();
    let job = NewJob {
        user_integration_id: ui,
        task: Task::from_typed(task).unwrap(),
        priority: LOWEST_PRIORITY,
        dedupe_key: None,
        max_attempts: 5,
        run_at: now,
    };
    h.store.enqueue(&[job], now).await.unwrap();
    h.settle(engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
}

/// A reconcile of `channel` from `oldest` (`"0"`: its whole history).
fn reconcile(channel: &str, oldest: &str) -> SlackTask {
    SlackTask::Reconcile {
        channel: channel.into(),
        oldest: oldest.into(),
        cursor: None,
        upper: None,
    }
}

/// The reconcile window's start for a window of `days`.
fn window_start(days: i64) -> String {
    format!("{}.000000", chrono::Utc::now().timestamp() - days * 86_400)
}

/// (a) 50 channels, 20,000 messages and 3,000 replies sync exactly; a re-sync with
/// nothing new writes nothing and makes at most 4 history calls per channel (here 1).
/// (c, Tier 3) No call was rate limited.
async fn a_workspace_syncs_exactly_and_a_resync_writes_nothing(h: Harness) {
    let subject = SlackSubject::with_config(SlackSubject::config(50, 20_000, 3_000, 31)).await;
    fast_settings(&subject);
    subject.set("pageSize", Value::from(999));
    let (ui, engine) = synced(&h, &subject, 8).await;
    let truth = subject.truth();
    assert_eq!(truth.len(), 23_000, "the fake's messages and replies");
    h.assert_matches_truth(&subject, ui, "after the first sync")
        .await;
    let stored = h.content(ui, true).await;
    assert_eq!(stored.len(), truth.len(), "rows, deleted included");
    assert_eq!(subject.fake.total_rate_limited(), 0, "429s during the sync");

    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    let before = engine.stats().snapshot();
    h.sync(&engine, ui).await;
    let channels = subject.readable().len() as u64;
    let history = subject.fake.calls("conversations.history");
    assert!(
        history <= 4 * channels,
        "the re-sync made {history} history calls for {channels} channels"
    );
    assert_eq!(subject.fake.calls("conversations.replies"), 0);
    let after = engine.stats().snapshot();
    assert_eq!(
        (
            after.items_inserted - before.items_inserted,
            after.items_updated - before.items_updated,
            after.items_deleted - before.items_deleted,
        ),
        (0, 0, 0),
        "the re-sync wrote content"
    );
}

/// (b) Each change, one at a time, reflected by the read that finds it: a new
/// message by the next poll; an edit, a deletion and a tombstoned parent by the
/// reconcile window; a reply to a thread older than the window and a deleted reply by
/// the full read; an archived channel leaves the plan and keeps its messages.
async fn each_change_is_found_by_its_read(h: Harness) {
    let subject = SlackSubject::with_config(SlackSubject::config(4, 400, 80, 32)).await;
    fast_settings(&subject);
    let (ui, engine) = synced(&h, &subject, 4).await;
    let fake = &subject.fake;
    let me = fake.installer();
    let now = chrono::Utc::now().timestamp();
    let age = |ts: &str| now - ts.split('.').next().unwrap().parse::<i64>().unwrap();
    let snapshot = fake.snapshot();
    let recent_top = |channel: &str| {
        snapshot
            .iter()
            .filter(|m| m.channel == channel && !m.is_reply && age(&m.ts) < 6 * 86_400)
            .map(|m| m.ts.clone())
            .collect::<Vec<_>>()
    };
    // A channel with recent messages, and threads recent and old.
    let channel = subject
        .readable()
        .into_iter()
        .max_by_key(|c| recent_top(c).len())
        .unwrap();
    let window = window_start(7);

    // A new message: the next start's poll.
    let ts = fake.post(&channel, &me, "hello again").unwrap();
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;
    let id = format!("{channel}:{ts}");
    assert_eq!(
        h.content(ui, false).await[&id].content["text"],
        "hello again"
    );

    // An edit and a deletion in the window: the reconcile.
    let top = recent_top(&channel);
    let plain: Vec<&String> = top
        .iter()
        .filter(|ts| snapshot.iter().any(|m| &m.ts == *ts && m.reply_count == 0))
        .collect();
    assert!(plain.len() >= 2, "recent messages without replies");
    fake.edit(&channel, plain[0], "edited in place").unwrap();
    fake.delete(&channel, plain[1]).unwrap();
    run_task(&h, &engine, ui, &reconcile(&channel, &window)).await;
    let content = h.content(ui, true).await;
    let edited = &content[&format!("{channel}:{}", plain[0])];
    assert_eq!(edited.content["text"], "edited in place");
    assert!(edited.content["edited"]["ts"].is_string());
    assert!(content[&format!("{channel}:{}", plain[1])].is_deleted);
    h.assert_matches_truth(&subject, ui, "after an edit and a deletion")
        .await;

    // A parent with replies deleted in the window: a tombstone; the replies stay.
    let snapshot = fake.snapshot();
    let parent = snapshot
        .iter()
        .find(|m| m.reply_count > 0 && !m.is_reply && age(&m.ts) < 6 * 86_400)
        .cloned()
        .expect("a recent thread");
    fake.delete(&parent.channel, &parent.ts).unwrap();
    run_task(&h, &engine, ui, &reconcile(&parent.channel, &window)).await;
    let content = h.content(ui, true).await;
    assert!(content[&format!("{}:{}", parent.channel, parent.ts)].is_deleted);
    let replies = content
        .values()
        .filter(|item| {
            item.content["threadTs"] == parent.ts.as_str() && item.content["isReply"] == true
        })
        .collect::<Vec<_>>();
    assert_eq!(replies.len(), parent.reply_count as usize);
    assert!(
        replies.iter().all(|r| !r.is_deleted),
        "the replies were kept"
    );
    h.assert_matches_truth(&subject, ui, "after a tombstone")
        .await;

    // A reply to a thread older than the window, and a deleted reply of another old
    // thread: not in the window, found by the full read through `latest_reply`.
    let snapshot = fake.snapshot();
    let mut old_threads = snapshot
        .iter()
        .filter(|m| m.reply_count > 1 && !m.is_reply && age(&m.ts) > 8 * 86_400)
        .cloned();
    let old = old_threads.next().expect("an old thread");
    let other = old_threads.next().expect("another old thread");
    let reply = fake
        .reply(&old.channel, &old.ts, &me, "late reply")
        .unwrap();
    let doomed = other.latest_reply.clone().unwrap();
    fake.delete(&other.channel, &doomed).unwrap();
    run_task(&h, &engine, ui, &reconcile(&old.channel, &window)).await;
    let reply_id = format!("{}:{reply}", old.channel);
    assert!(
        !h.content(ui, false).await.contains_key(&reply_id),
        "the window read found a reply outside it"
    );
    for channel in BTreeSet::from([old.channel.clone(), other.channel.clone()]) {
        run_task(&h, &engine, ui, &reconcile(&channel, "0")).await;
    }
    let content = h.content(ui, true).await;
    assert_eq!(content[&reply_id].content["text"], "late reply");
    assert!(content[&format!("{}:{doomed}", other.channel)].is_deleted);
    h.assert_matches_truth(&subject, ui, "after the full reads")
        .await;

    // An archived channel leaves the plan; what was stored of it stays.
    let stored_before = h.content(ui, false).await.len();
    fake.archive(&channel).unwrap();
    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;
    let state = h.account(ui).await.sync_state;
    assert!(state["conversations"].get(&channel).is_none());
    assert_eq!(h.content(ui, false).await.len(), stored_before);
    h.assert_matches_truth(&subject, ui, "after archiving")
        .await;
}

/// (c) Under each rate profile the sync completes and the fake served no 429; under
/// `limited-2025` pages hold 15 messages and each history method is called at most
/// once per window.
async fn every_rate_profile_stays_within_the_limits(h: Harness) {
    for (profile, seed) in [
        (RateProfile::Internal, 41),
        (RateProfile::Marketplace, 42),
        (RateProfile::Limited2025, 43),
    ] {
        let subject = SlackSubject::with_config(SlackConfig {
            profile,
            ..SlackSubject::config(2, 150, 12, seed)
        })
        .await;
        fast_settings(&subject);
        subject.set("rateProfile", profile_setting(profile));
        let ui = h.link(&subject, &format!("user-{seed}")).await.id;
        let engine = engine(&h, 4);
        h.sync(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, profile.as_str()).await;
        assert_eq!(
            subject.fake.total_rate_limited(),
            0,
            "429s under {}",
            profile.as_str()
        );
        if profile == RateProfile::Limited2025 {
            let calls = subject.fake.calls("conversations.history");
            assert!(
                calls >= 150 / 15,
                "{calls} history calls for 150 messages at 15 a page"
            );
        }
    }
}

/// (d) Access tokens that live a moment: dozens of refreshes during one sync, each
/// handing out a new refresh token and revoking the old one; the account ends with
/// the live refresh token (a new process could carry on), and nothing is missing.
async fn rotation_survives_many_refreshes(h: Harness) {
    let subject = SlackSubject::with_config(SlackConfig {
        rotation: true,
        access_token_lifetime: Duration::from_millis(150),
        ..SlackSubject::config(6, 3_000, 400, 51)
    })
    .await;
    fast_settings(&subject);
    subject.set("pageSize", Value::from(20));
    let (ui, engine) = synced(&h, &subject, 4).await;
    h.assert_matches_truth(&subject, ui, "after a sync with rotation")
        .await;
    let refreshes = subject.fake.refreshes();
    assert!(refreshes >= 20, "only {refreshes} refreshes");
    let account = h.account(ui).await;
    assert_eq!(
        account.status,
        tributary_store::UserIntegrationStatus::Active
    );
    // The stored refresh token is the live one: one more sync, after every access
    // token expired, refreshes with it.
    subject.fake.expire_access_tokens();
    let before = subject.fake.refreshes();
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    assert!(subject.fake.refreshes() > before, "no refresh after expiry");
    assert_eq!(
        h.account(ui).await.status,
        tributary_store::UserIntegrationStatus::Active
    );
    // A rotation is saved the moment it happens, before the job that refreshed goes
    // on (and long before it commits): with that job held at its next call, the
    // database already holds the live refresh token.
    // (Access tokens live 150 ms here: the start refreshes before its first call.)
    let before = subject.fake.refreshes();
    subject.response_gate().hold("conversations.list");
    h.clock.advance_ms(TICK_MS);
    let check = async {
        tributary_conformance::harness::wait_until("the start held at its listing", || async {
            subject.response_gate().held() > 0
        })
        .await;
        let stored = h.account(ui).await.credentials;
        let live = stored
            .get("refreshToken")
            .is_some_and(|token| subject.fake.is_live_refresh_token(token));
        subject.response_gate().release();
        live
    };
    let (_, live) = tokio::join!(h.sync(&engine, ui), check);
    assert!(
        subject.fake.refreshes() > before,
        "the start did not refresh"
    );
    assert!(
        live,
        "the refresh token stored while the job ran is not the live one"
    );
    h.assert_no_failed_jobs(ui).await;

    // A brand-new engine (as after a restart) starts from the stored credentials.
    let fresh = support::engine(&h, 2);
    subject.fake.expire_access_tokens();
    h.clock.advance_ms(TICK_MS);
    h.sync(&fresh, ui).await;
    h.assert_no_failed_jobs(ui).await;
    assert_eq!(
        h.account(ui).await.status,
        tributary_store::UserIntegrationStatus::Active
    );
}

/// (e) A token without `groups:history` syncs the public channels and DMs, and the
/// sync state names the private channels it skipped.
async fn a_token_without_private_history_syncs_the_rest(h: Harness) {
    let scopes: Vec<&str> = ALL_SCOPES
        .iter()
        .copied()
        .filter(|s| *s != "groups:history")
        .collect();
    let subject = SlackSubject::with_scopes(SlackSubject::config(8, 600, 60, 61), &scopes).await;
    let private = subject
        .fake
        .create_conversation(ConversationKind::Private, "secret");
    subject
        .fake
        .post(&private, &subject.fake.installer(), "psst")
        .unwrap();
    fast_settings(&subject);
    let (ui, _engine) = synced(&h, &subject, 4).await;
    let privates: BTreeSet<String> = subject
        .fake
        .conversations()
        .into_iter()
        .filter(|c| c.kind == ConversationKind::Private && c.is_member)
        .map(|c| c.id)
        .collect();
    assert!(privates.contains(&private));
    let content = h.content(ui, false).await;
    let truth = subject.truth();
    let readable: BTreeSet<&String> = truth
        .keys()
        .filter(|id| !privates.contains(id.split(':').next().unwrap()))
        .collect();
    let stored: BTreeSet<&String> = content.keys().collect();
    assert_eq!(stored, readable, "everything but the private channels");
    let skipped = tributary_slack::integration::skipped(&h.account(ui).await.sync_state);
    for id in &privates {
        let reason = skipped
            .get(id)
            .unwrap_or_else(|| panic!("{id} not reported"));
        assert!(reason.contains("groups:history"), "{reason}");
    }
    assert!(subject.fake.calls("conversations.history") > 0);
}

/// (f) Twenty rounds of random posts, edits, deletions and replies, each followed by
/// the next start and a full read of the changed channels: the database converges
/// on the fake's truth.
async fn random_rounds_converge(h: Harness) {
    let subject = SlackSubject::with_config(SlackSubject::config(5, 300, 60, 71)).await;
    fast_settings(&subject);
    let (ui, engine) = synced(&h, &subject, 4).await;
    let fake = &subject.fake;
    let me = fake.installer();
    let mut rng = StdRng::seed_from_u64(71);
    for round in 0..20 {
        let snapshot = fake.snapshot();
        let channels = subject.readable();
        let mut touched = BTreeSet::new();
        for _ in 0..rng.random_range(1..6) {
            let channel = &channels[rng.random_range(0..channels.len())];
            let in_channel: Vec<_> = snapshot.iter().filter(|m| &m.channel == channel).collect();
            let pick =
                (!in_channel.is_empty()).then(|| in_channel[rng.random_range(0..in_channel.len())]);
            let done = match (rng.random_range(0..4), pick) {
                (0, _) | (_, None) => fake.post(channel, &me, &format!("round {round}")).map(drop),
                (1, Some(m)) => fake.edit(channel, &m.ts, &format!("edit {round}")),
                (2, Some(m)) => fake.delete(channel, &m.ts),
                (_, Some(m)) => {
                    let thread = m.thread_ts.clone().unwrap_or_else(|| m.ts.clone());
                    fake.reply(channel, &thread, &me, &format!("reply {round}"))
                        .map(drop)
                }
            };
            if done.is_ok() {
                touched.insert(channel.clone());
            }
        }
        h.clock.advance_ms(TICK_MS);
        h.sync(&engine, ui).await;
        for channel in &touched {
            run_task(&h, &engine, ui, &reconcile(channel, "0")).await;
        }
    }
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after 20 random rounds")
        .await;
}

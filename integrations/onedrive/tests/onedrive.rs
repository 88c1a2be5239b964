//! OneDrive through the whole engine on SQLite and PostgreSQL, against the fake: the
//! acceptance of issue 14's drive half.
//!
//! - (a) a drive of 3,000 items (a shuffled first round: children often before their
//!   folders) syncs exactly, paths included, each item fetched once, page by page,
//!   and no download carries the bearer token; a re-sync with nothing new fetches and
//!   writes nothing;
//! - (b) after one history check each: a folder deleted with what it holds, a folder
//!   renamed (the paths below it follow), a file and a folder moved, a file edited
//!   (its new text, nothing else written), on a business and on a personal drive;
//! - (c) a forgotten delta token (410 with either resync code, reported three ways):
//!   the drive is compared in full, what vanished is soft-deleted, a fresh delta link
//!   works;
//! - (d) no more than 4 requests at once reach the drive, and a sync under throttling
//!   (the drive's rate limit on a fast clock with the engine's budget on the same
//!   clock, 429s and 503s queued and injected, download failures) converges;
//! - (e) a text beyond `maxTextBytes` is cut (on a character) and marked truncated; a
//!   large binary is stored as metadata, its content never asked for;
//! - refresh tokens that die on use are rotated through many refreshes (access tokens
//!   expiring every 50 requests);
//! - an item whose JSON cannot be decoded is stored as a failure and the account goes
//!   on; an item gone between its listing and its fetch is soft-deleted.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::time::Duration;

use support::{OneDriveSubject, expected_text};
use tributary_conformance::harness::{Background, wait_until};
use tributary_conformance::{ConformanceSubject, FaultRates, Harness};
use tributary_engine::{Engine, EngineConfig};
use tributary_msgraph_fake::ThrottleConfig;
use tributary_onedrive_fake::{
    DeltaOrder, DriveType, Fault, NewFile, RefreshRotation, ResyncKind, ResyncReport,
};
use tributary_sdk::serde_json::Value;
use tributary_store::{JobState, UserIntegrationStatus};

const TICK_MS: i64 = 61_000;

tributary_conformance::backend_tests!(
    OneDriveSubject;
    a_three_thousand_item_drive_syncs_exactly_and_a_resync_writes_nothing,
    folder_and_file_changes_are_reflected_after_one_check,
    a_forgotten_delta_token_compares_the_drive_in_full,
    never_more_than_four_requests_at_once_and_throttling_converges,
    a_large_text_is_cut_and_a_large_binary_is_metadata_only,
    rotated_refresh_tokens_survive_many_refreshes,
    an_undecodable_item_is_a_failure_and_the_account_goes_on,
    an_item_gone_between_listing_and_fetch_is_soft_deleted,
);

/// Folders below the root holding at least `children` items, by id.
fn folders_with(subject: &OneDriveSubject, children: usize) -> Vec<String> {
    let root = subject.fake.root_id();
    subject
        .fake
        .folder_ids()
        .into_iter()
        .filter(|id| *id != root && subject.children_of(id).len() >= children)
        .collect()
}

/// The ids of every item below folder `id` (not the folder itself).
fn below(subject: &OneDriveSubject, id: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut queue = vec![id.to_owned()];
    while let Some(folder) = queue.pop() {
        for child in subject.children_of(&folder) {
            queue.push(child.clone());
            all.push(child);
        }
    }
    all
}

/// (a) 3,000 items: 2,850 files in 150 folders, listed in a shuffled first round.
async fn a_three_thousand_item_drive_syncs_exactly_and_a_resync_writes_nothing(h: Harness) {
    let mut config = OneDriveSubject::config(2_850, 150, 21);
    config.delta_order = DeltaOrder::Shuffled;
    let subject = OneDriveSubject::with_config(config).await;
    subject.set("pageSize", Value::from(200));
    let engine = h.engine(8);
    let ui = h.link(&subject, "onedrive-user").await.id;
    subject.reset_counters();
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;

    let truth = subject.truth();
    assert_eq!(truth.len(), 3_000, "items below the root");
    let all = h.content(ui, true).await;
    assert_eq!(all.len(), 3_000, "stored rows, deleted ones included");
    assert!(
        all.values().all(|item| !item.is_deleted),
        "a full sync deleted"
    );
    h.assert_matches_truth(&subject, ui, "after the full sync")
        .await;
    assert_eq!(
        subject.fetch_calls(),
        3_000,
        "each item fetched exactly once"
    );
    // Paths, as the fake's own tree gives them, and the content's other fields.
    let items = subject.fake.items();
    for (id, item) in all.iter().step_by(7) {
        let truth = &items[id];
        assert_eq!(item.content["path"], truth.path.as_str());
        assert_eq!(
            item.content["parentId"].as_str(),
            truth.parent_id.as_deref()
        );
        assert_eq!(item.content["name"], truth.name.as_str());
        if !truth.is_folder {
            assert_eq!(item.content["size"], truth.size);
            assert_eq!(
                item.content["hashes"]["quickXorHash"].as_str(),
                truth.quick_xor_hash.as_deref()
            );
            assert_eq!(item.content["cTag"], truth.ctag.as_str());
            let status = if truth.is_text { "complete" } else { "none" };
            assert_eq!(item.content["textStatus"], status, "{}", truth.path);
        }
    }
    // The first round, page by page: one job per page, the delta link stored at the end.
    let pages = subject.probe.delta_listings();
    assert!(
        pages >= 15,
        "{pages} first-round pages for 3,000 items at 200"
    );
    assert_eq!(subject.probe.deltas_without_page_size(), 0);
    let page_jobs = h
        .jobs(ui, JobState::Completed)
        .await
        .iter()
        .filter(|j| j.task_type == "syncDelta")
        .count();
    assert_eq!(
        page_jobs as u64, pages,
        "delta pages and the jobs that read them"
    );
    let link = h.sync_state_str(ui, "deltaLink").await.unwrap();
    assert!(link.contains("token="), "{link}");
    // Text downloads went to the download host, never with the token.
    let counters = subject.fake.counters();
    assert!(counters.download_requests > 1_000, "{counters:?}");
    assert_eq!(
        counters.download_requests_with_authorization, 0,
        "the bearer token reached the download host"
    );

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
    assert_eq!(subject.fetch_calls(), 0, "the re-sync fetched items");
    assert_eq!(
        subject.probe.delta_listings(),
        0,
        "the re-sync listed the drive"
    );
    assert_eq!(h.updated_at(ui).await, before, "updated_at moved");
}

/// (b) one change of each kind, each followed by one history check, on a business
/// drive and on a personal one (other ids, hashes and delta omissions).
async fn folder_and_file_changes_are_reflected_after_one_check(h: Harness) {
    for (n, drive_type) in [DriveType::Business, DriveType::Personal]
        .into_iter()
        .enumerate()
    {
        let mut config = OneDriveSubject::config(400, 24, 30 + n as u64);
        config.drive_type = drive_type;
        let subject = OneDriveSubject::with_config(config).await;
        let engine = h.engine(4);
        let user = format!("onedrive-changes-{}", drive_type.as_str());
        let ui = h.synced(&subject, &engine, &user).await;
        changes_are_reflected(&h, &subject, &engine, ui).await;
    }
}

/// The changes of (b) on one synced drive.
async fn changes_are_reflected(h: &Harness, subject: &OneDriveSubject, engine: &Engine, ui: i64) {
    // A folder deleted with everything below it: all soft-deleted, rows kept.
    let doomed = folders_with(subject, 3)[0].clone();
    let gone = subject.fake.delete(&doomed).unwrap();
    assert!(gone.len() >= 4, "{gone:?}");
    let rows_before = h.content(ui, true).await.len();
    h.history_after(engine, ui, TICK_MS).await;
    let rows = h.content(ui, true).await;
    assert_eq!(rows.len(), rows_before, "a deletion must be soft");
    for id in &gone {
        assert!(
            rows[id].is_deleted && rows[id].deleted_at.is_some(),
            "{id} not soft-deleted"
        );
    }
    let state = h.account(ui).await.sync_state;
    assert!(
        state["folders"].get(&doomed).is_none(),
        "the deleted folder stays in the map"
    );
    h.assert_matches_truth(subject, ui, "after a folder deletion")
        .await;

    // A folder renamed: the paths below it follow.
    let renamed = folders_with(subject, 2)[0].clone();
    let descendants = below(subject, &renamed);
    assert!(!descendants.is_empty());
    subject.fake.rename(&renamed, "Renamed Folder ü").unwrap();
    h.history_after(engine, ui, TICK_MS).await;
    let prefix = subject.fake.item(&renamed).unwrap().path;
    assert!(prefix.ends_with("/Renamed Folder ü"), "{prefix}");
    let rows = h.content(ui, false).await;
    assert_eq!(rows[&renamed].content["path"], prefix.as_str());
    for id in &descendants {
        let path = rows[id].content["path"].as_str().unwrap();
        assert!(path.starts_with(&format!("{prefix}/")), "{id}: {path}");
    }
    h.assert_matches_truth(subject, ui, "after a folder rename")
        .await;

    // A file and a folder moved (the folder into another folder), where their names
    // are free.
    let fits = |id: &str, target: &str| {
        let item = subject.fake.item(id).unwrap();
        item.parent_id.as_deref() != Some(target)
            && id != target
            && !below(subject, id).iter().any(|below| below == target)
            && subject.children_of(target).iter().all(|child| {
                !subject
                    .fake
                    .item(child)
                    .unwrap()
                    .name
                    .eq_ignore_ascii_case(&item.name)
            })
    };
    let folders = folders_with(subject, 1);
    let (target, moved_folder) = folders
        .iter()
        .flat_map(|t| folders.iter().map(move |m| (t.clone(), m.clone())))
        .find(|(t, m)| fits(m, t) && !below(subject, m).is_empty())
        .expect("a folder to move into another");
    let moved_file = subject
        .fake
        .file_ids()
        .into_iter()
        .find(|id| fits(id, &target))
        .unwrap();
    subject.fake.move_item(&moved_file, &target).unwrap();
    subject.fake.move_item(&moved_folder, &target).unwrap();
    let under_moved = below(subject, &moved_folder);
    h.history_after(engine, ui, TICK_MS).await;
    let rows = h.content(ui, false).await;
    assert_eq!(
        rows[&moved_file].content["parentId"],
        target.as_str(),
        "the moved file's folder"
    );
    let moved_path = subject.fake.item(&moved_folder).unwrap().path;
    for id in &under_moved {
        let path = rows[id].content["path"].as_str().unwrap();
        assert!(path.starts_with(&format!("{moved_path}/")), "{id}: {path}");
    }
    h.assert_matches_truth(subject, ui, "after moves").await;

    // A text file edited: its new text, and no other item written.
    let edited = subject
        .fake
        .file_ids()
        .into_iter()
        .find(|id| subject.fake.item(id).unwrap().is_text)
        .unwrap();
    let before = h.updated_at(ui).await;
    subject
        .fake
        .edit_file(&edited, "brand new text, ünïcode\n")
        .unwrap();
    h.history_after(engine, ui, TICK_MS).await;
    let rows = h.content(ui, false).await;
    assert_eq!(rows[&edited].content["text"], "brand new text, ünïcode\n");
    assert_eq!(rows[&edited].content["textStatus"], "complete");
    let after = h.updated_at(ui).await;
    let written: Vec<&String> = after
        .iter()
        .filter(|(id, at)| before.get(*id) != Some(*at))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(written, [&edited], "items written by one edit");
    h.assert_matches_truth(subject, ui, "after an edit").await;
}

/// (c) forgotten delta tokens, with both resync codes and the ways they are reported.
async fn a_forgotten_delta_token_compares_the_drive_in_full(h: Harness) {
    let cases = [
        (ResyncKind::ApplyDifferences, ResyncReport::Nested),
        (ResyncKind::UploadDifferences, ResyncReport::TopLevel),
        (ResyncKind::ApplyDifferences, ResyncReport::CodeOnly),
    ];
    for (n, (kind, report)) in cases.into_iter().enumerate() {
        let mut config = OneDriveSubject::config(300, 12, 40 + n as u64);
        config.resync = kind;
        config.resync_report = report;
        let subject = OneDriveSubject::with_config(config).await;
        let engine = h.engine(4);
        let ui = h
            .synced(&subject, &engine, &format!("onedrive-resync-{n}"))
            .await;
        let link_before = h.sync_state_str(ui, "deltaLink").await;

        // While the tokens are lost: two files deleted, one added, one folder renamed.
        let files: Vec<String> = subject.fake.file_ids().into_iter().collect();
        let gone = [files[3].clone(), files[77].clone()];
        for id in &gone {
            subject.fake.delete(id).unwrap();
        }
        let added = subject.add_item();
        let folder = folders_with(&subject, 2)[0].clone();
        subject.fake.rename(&folder, "Renamed While Lost").unwrap();
        subject.fake.forget_delta_tokens();
        let stats = engine.stats().snapshot();
        subject.reset_counters();
        h.history_after(&engine, ui, TICK_MS).await;
        h.assert_matches_truth(
            &subject,
            ui,
            &format!("{kind:?}/{report:?}: after the comparison"),
        )
        .await;
        assert!(subject.fake.counters().resyncs >= 1, "no 410 was answered");
        assert!(
            subject.probe.delta_listings() >= 1,
            "the drive was not read in full"
        );
        let rows = h.content(ui, true).await;
        for id in &gone {
            assert!(rows[id].is_deleted, "{id} vanished but is not soft-deleted");
        }
        assert!(!rows[&added].is_deleted);
        assert_eq!(
            engine.stats().snapshot().items_deleted - stats.items_deleted,
            2,
            "{kind:?}: deletions"
        );
        let link_after = h.sync_state_str(ui, "deltaLink").await;
        assert!(link_after.is_some() && link_after != link_before);

        // The new link works: a change comes through it, the drive is not listed.
        subject.reset_counters();
        let edited = subject.add_item();
        h.history_after(&engine, ui, TICK_MS).await;
        assert_eq!(
            subject.probe.delta_listings(),
            0,
            "listed again after the fallback"
        );
        assert!(h.content(ui, false).await.contains_key(&edited));
        h.assert_matches_truth(&subject, ui, "after a change on the new link")
            .await;
    }
}

/// (d) what reaches the drive at once, and a sync under throttling.
async fn never_more_than_four_requests_at_once_and_throttling_converges(h: Harness) {
    // The fake measures without refusing; latency makes requests overlap.
    let mut config = OneDriveSubject::config(600, 20, 50);
    config.graph.throttle = ThrottleConfig {
        enforce_rate: false,
        enforce_concurrency: false,
        ..ThrottleConfig::default()
    };
    config.graph.latency = Duration::from_millis(3);
    let subject = OneDriveSubject::with_config(config).await;
    let engine = h.engine(16);
    h.synced(&subject, &engine, "onedrive-concurrency").await;
    let peak = subject.fake.graph().peak_concurrency(&subject.user_id());
    assert!(peak <= 4, "{peak} requests reached the drive at once");
    assert!(
        peak >= 2,
        "requests never overlapped ({peak}): the check proves nothing"
    );
    drop(engine);

    // Throttled: the drive's limits on (on a clock 12 times faster), the engine's
    // budget on the same clock, 429s and 503s queued and injected, downloads failing.
    const SCALE: f64 = 12.0;
    let mut config = OneDriveSubject::config(600, 20, 51);
    config.graph.throttle = ThrottleConfig {
        time_scale: SCALE,
        ..ThrottleConfig::default()
    };
    let subject = OneDriveSubject::with_config(config).await;
    let ui = h.link(&subject, "onedrive-throttled").await.id;
    let graph = subject.fake.graph();
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
        "/me/drive/items/",
        12,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    subject.fake.fail_next_downloads(
        4,
        Fault::Unavailable {
            retry_after_secs: Some(1),
        },
    );
    subject.fake.fail_next_downloads(2, Fault::InternalError);
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
    assert_eq!(graph.pending_faults(), 0, "queued faults left unanswered");
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
        "over the drive's concurrency limit"
    );
    assert_eq!(
        counters.rate_limited, 0,
        "the budget let the drive's rate limit refuse"
    );
    assert!(h.jobs(ui, JobState::Dead).await.is_empty(), "jobs gave up");
    assert_eq!(
        subject.fake.counters().download_requests_with_authorization,
        0
    );
}

/// (e) limits on text, and binaries as metadata.
async fn a_large_text_is_cut_and_a_large_binary_is_metadata_only(h: Harness) {
    let subject = OneDriveSubject::with_config(OneDriveSubject::config(40, 3, 60)).await;
    subject.set("maxTextBytes", Value::from(1000));
    let engine = h.engine(4);
    let ui = h.synced(&subject, &engine, "onedrive-limits").await;
    // 2,998 bytes, mostly two-byte characters: the cut at 1,000 falls inside one.
    let long = "a".to_owned() + &"é".repeat(1_497) + "end";
    let exact = "x".repeat(1_000);
    let binary: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let long_id = subject
        .fake
        .create_file(NewFile::new("long.md", long.clone()))
        .unwrap();
    let exact_id = subject
        .fake
        .create_file(NewFile::new("exact.txt", exact.clone()))
        .unwrap();
    let binary_id = subject
        .fake
        .create_file(NewFile::new("video.bin", binary.clone()))
        .unwrap();
    subject.reset_counters();
    h.history_after(&engine, ui, TICK_MS).await;
    let rows = h.content(ui, false).await;
    let cut = &rows[&long_id].content;
    assert_eq!(cut["textStatus"], "truncated", "{cut}");
    let text = cut["text"].as_str().unwrap();
    assert_eq!(text, expected_text(long.as_bytes(), 1000));
    assert_eq!(text.len(), 999, "cut on a character boundary");
    assert_eq!(cut["size"], long.len());
    let whole = &rows[&exact_id].content;
    assert_eq!(
        (whole["textStatus"].as_str(), whole["text"].as_str()),
        (Some("complete"), Some(exact.as_str()))
    );
    let meta = &rows[&binary_id].content;
    assert_eq!(meta["textStatus"], "none");
    assert!(meta["text"].is_null());
    assert_eq!(meta["size"], binary.len());
    assert_eq!(meta["mimeType"], "application/octet-stream");
    assert!(meta["hashes"]["quickXorHash"].is_string());
    let asked = subject.probe.content_requests();
    assert!(asked.contains(&long_id) && asked.contains(&exact_id));
    assert!(
        !asked.contains(&binary_id),
        "the binary's content was asked for"
    );
    assert_eq!(
        subject.fake.counters().download_requests_with_authorization,
        0
    );
    h.assert_matches_truth(&subject, ui, "after large files")
        .await;
}

/// Refresh tokens that die on use, refreshed many times during a sync.
async fn rotated_refresh_tokens_survive_many_refreshes(h: Harness) {
    let mut config = OneDriveSubject::config(500, 10, 70);
    config.graph.refresh_rotation = RefreshRotation::RevokeOnUse;
    let mut subject = OneDriveSubject::with_config(config).await;
    // Linked with the grant's access token: the link's check needs no refresh.
    subject.with_access_token = true;
    subject.set("pageSize", Value::from(25));
    // About 800 requests: every access token dies after each 50 (counted in requests,
    // not time, so that the number of refreshes does not depend on the machine).
    subject.fake.graph().expire_access_tokens_every(Some(50));
    let engine = h.engine(4);
    let ui = h.synced(&subject, &engine, "onedrive-rotation").await;
    let refreshes = subject.fake.graph().refreshes();
    assert!(refreshes >= 5, "only {refreshes} refreshes");
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
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
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
    h.assert_matches_truth(&subject, ui, "after a refresh with the stored token")
        .await;
}

/// An item whose JSON is not a drive item: a failure marker, and the rest syncs.
async fn an_undecodable_item_is_a_failure_and_the_account_goes_on(h: Harness) {
    let subject = OneDriveSubject::start(120, 80).await;
    let engine = h.engine(4);
    let ui = h.synced(&subject, &engine, "onedrive-corrupt").await;
    let bad = subject.add_item();
    let good = subject.add_item();
    subject.probe.corrupt_item(&bad);
    h.history_after(&engine, ui, TICK_MS).await;
    let rows = h.content(ui, false).await;
    assert_eq!(
        rows[&bad].content["failed"], true,
        "{:?}",
        rows[&bad].content
    );
    assert_eq!(rows[&bad].content["code"], 502);
    assert_eq!(
        rows[&good].content["path"],
        subject.fake.item(&good).unwrap().path.as_str()
    );
    assert_eq!(h.account(ui).await.status, UserIntegrationStatus::Active);
    // Known as failed at its version: the next check does not fetch it again.
    subject.reset_counters();
    h.history_after(&engine, ui, TICK_MS).await;
    h.clock.advance_ms(TICK_MS);
    h.sync(&engine, ui).await;
    assert_eq!(
        subject.fetch_calls(),
        0,
        "the failed item was fetched again"
    );
}

/// An edited file deleted after the delta page listed it and before its fetch: the
/// fetch's 404 soft-deletes it.
async fn an_item_gone_between_listing_and_fetch_is_soft_deleted(h: Harness) {
    let subject = OneDriveSubject::start(100, 90).await;
    let engine = h.engine(4);
    let ui = h.synced(&subject, &engine, "onedrive-vanish").await;
    let id = subject.fake.file_ids().into_iter().nth(5).unwrap();
    subject.fake.edit_file(&id, "changed, then gone").unwrap();
    let gate = subject.response_gate();
    gate.hold("/root/delta");
    h.clock.advance_ms(TICK_MS);
    h.enqueue_history(ui).await;
    let background = Background::run(&engine);
    wait_until("the delta page reaches the fake", || async {
        gate.held() >= 1
    })
    .await;
    // The page lists the edit; the item goes before its fetch.
    subject.fake.delete(&id).unwrap();
    subject.reset_counters();
    gate.release();
    background.stop_when_idle(&h, ui).await;
    h.settle(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    assert!(
        subject.fetch_calls() >= 1,
        "the listed item was not fetched"
    );
    let row = &h.content(ui, true).await[&id];
    assert!(
        row.is_deleted && row.deleted_at.is_some(),
        "not soft-deleted"
    );
    h.assert_matches_truth(&subject, ui, "after a vanished item")
        .await;
}

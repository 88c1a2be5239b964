//! What only Google Drive has, through the whole engine on SQLite and PostgreSQL,
//! against the fake: a generated tree with paths over My Drive and shared drives;
//! trash, untrash, delete, unshare, rename, move and edit each reflected after one
//! changes check; exports Drive refuses and files too large to read; a long changes
//! walk committed page by page; and random tree changes converging.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::DriveSubject;
use tributary_conformance::{ConformanceSubject, Harness};
use tributary_google_drive_fake::{DriveMethod, FileBody, NewFile};

const TICK_MS: i64 = 61_000;

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    tributary_conformance::run_scenario::<super::DriveSubject, _, _>(
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
                    tributary_conformance::run_scenario::<super::DriveSubject, _, _>(
                        tributary_conformance::Backend::Postgres,
                        super::$name,
                    );
                }
            )+
        }
    };
}

both_backends!(
    a_generated_drive_syncs_with_paths,
    each_change_is_applied_after_one_check,
    refused_exports_and_large_files_keep_their_metadata,
    a_long_changes_walk_commits_page_by_page,
    random_tree_changes_converge,
);

/// A fake drive, linked and synced once.
async fn synced(h: &Harness, files: usize, folders: usize, seed: u64) -> (DriveSubject, i64) {
    let subject = DriveSubject::with_tree(files, folders, seed).await;
    let ui = h.link(&subject, "drive-user").await.id;
    let engine = h.engine(4);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    (subject, ui)
}

/// (a) 5,000 files in 300 folders across My Drive and two shared drives: exactly the
/// visible, untrashed files and folders, with their paths; a second sync with nothing
/// new makes at most 4 list calls and writes nothing.
async fn a_generated_drive_syncs_with_paths(h: Harness) {
    let (subject, ui) = synced(&h, 5_000, 300, 21).await;
    let truth = subject.truth();
    assert_eq!(truth.len(), 5_300, "the fake's visible files and folders");
    h.assert_matches_truth(&subject, ui, "after the first sync")
        .await;
    let stored = h.content(ui, true).await;
    assert_eq!(stored.len(), truth.len(), "rows, deleted included");
    let drives: std::collections::BTreeSet<&str> = stored
        .values()
        .filter_map(|item| item.content["driveId"].as_str())
        .collect();
    assert_eq!(drives.len(), 2, "items of both shared drives");
    assert!(
        stored.values().any(|item| item.content["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/My Drive/"))),
        "items in My Drive"
    );

    subject.reset_counters();
    let engine = h.engine(4);
    h.clock.advance_ms(TICK_MS);
    let before = engine.stats().snapshot();
    h.enqueue_history(ui).await;
    h.sync(&engine, ui).await;
    let lists = subject.list_calls() + subject.fake.calls(DriveMethod::ChangesList);
    assert!(lists <= 4, "the second sync made {lists} list calls");
    assert_eq!(subject.fetch_calls(), 0, "the second sync fetched files");
    let after = engine.stats().snapshot();
    assert_eq!(
        (
            after.items_inserted - before.items_inserted,
            after.items_updated - before.items_updated,
            after.items_deleted - before.items_deleted,
        ),
        (0, 0, 0),
        "the second sync wrote content"
    );
}

/// One change made at the fake.
type Step<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;

/// (b) Each kind of change, one at a time, after one changes check.
async fn each_change_is_applied_after_one_check(h: Harness) {
    let (subject, ui) = synced(&h, 300, 30, 22).await;
    let engine = h.engine(4);
    let fake = &subject.fake;
    let snapshot = fake.snapshot();
    let files: Vec<&str> = snapshot
        .values()
        .filter(|f| !f.is_folder)
        .map(|f| f.id.as_str())
        .collect();
    // A folder that holds files and a subfolder, and another folder to move it into.
    let folders: Vec<&str> = snapshot
        .values()
        .filter(|f| f.is_folder)
        .map(|f| f.id.as_str())
        .collect();
    let holder = folders
        .iter()
        .copied()
        .max_by_key(|id| {
            snapshot
                .values()
                .filter(|f| f.parents.iter().any(|p| p == id))
                .count()
        })
        .expect("a folder");
    let target = folders
        .iter()
        .copied()
        .find(|id| *id != holder && !snapshot[*id].path.starts_with(&snapshot[holder].path))
        .expect("a second folder");
    let doc = fake
        .create_file(NewFile {
            name: "Meeting notes".into(),
            mime_type: "application/vnd.google-apps.document".into(),
            parent: Some(holder.to_owned()),
            body: FileBody::Bytes(b"first draft".to_vec()),
        })
        .expect("create a doc");
    h.clock.advance_ms(TICK_MS);
    h.check_history(&engine, ui).await;
    h.assert_matches_truth(&subject, ui, "after creating a doc")
        .await;

    let steps: Vec<(&str, Step<'_>)> = vec![
        (
            "trash",
            Box::new(|| fake.trash(files[0]).map_err(|e| e.to_string())),
        ),
        (
            "untrash",
            Box::new(|| fake.untrash(files[0]).map_err(|e| e.to_string())),
        ),
        (
            "delete",
            Box::new(|| fake.delete(files[1]).map_err(|e| e.to_string())),
        ),
        (
            "unshare",
            Box::new(|| fake.unshare(files[2]).map_err(|e| e.to_string())),
        ),
        (
            "rename a file",
            Box::new(|| {
                fake.rename(files[3], "renamed.txt")
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "rename a folder",
            Box::new(|| {
                fake.rename(holder, "Renamed folder")
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "move a folder",
            Box::new(|| fake.move_to(holder, target).map_err(|e| e.to_string())),
        ),
        (
            "edit a doc",
            Box::new(|| {
                fake.edit(&doc, FileBody::Bytes(b"second draft, longer".to_vec()))
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "trash a folder",
            Box::new(|| fake.trash(target).map_err(|e| e.to_string())),
        ),
        (
            "untrash a folder",
            Box::new(|| fake.untrash(target).map_err(|e| e.to_string())),
        ),
    ];
    for (what, step) in steps {
        step().unwrap_or_else(|e| panic!("{what}: {e}"));
        h.clock.advance_ms(TICK_MS);
        h.check_history(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, &format!("after: {what}"))
            .await;
    }
    let rows = h.content(ui, true).await;
    assert!(
        rows[files[1]].is_deleted && rows[files[2]].is_deleted,
        "soft deletes"
    );
    assert!(!rows[files[0]].is_deleted, "the untrashed file is back");
    assert_eq!(
        rows[&doc].content["text"].as_str(),
        Some("second draft, longer"),
        "the edited doc's text"
    );
}

/// (d) A Doc whose export Drive refuses as too large, a 50 MB binary and a 5 MB text
/// file: metadata stored with markers, the sync completes, and the binary's bytes are
/// never asked for (the text file's only up to `maxTextBytes`).
async fn refused_exports_and_large_files_keep_their_metadata(h: Harness) {
    let subject = DriveSubject::with_tree(20, 3, 23).await;
    let fake = &subject.fake;
    let big_doc = fake
        .create_file(NewFile {
            name: "Huge report".into(),
            mime_type: "application/vnd.google-apps.document".into(),
            parent: None,
            body: FileBody::Generated {
                len: 11 * 1024 * 1024,
                seed: 1,
            },
        })
        .expect("create a huge doc");
    let binary = fake
        .create_file(NewFile {
            name: "video.mp4".into(),
            mime_type: "video/mp4".into(),
            parent: None,
            body: FileBody::Generated {
                len: 50 * 1024 * 1024,
                seed: 2,
            },
        })
        .expect("create a large binary");
    let log = fake
        .create_file(NewFile {
            name: "server.log".into(),
            mime_type: "text/plain".into(),
            parent: None,
            body: FileBody::Generated {
                len: 5 * 1024 * 1024,
                seed: 3,
            },
        })
        .expect("create a large text file");
    let ui = h.link(&subject, "drive-user").await.id;
    let engine = h.engine(4);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    let rows = h.content(ui, false).await;
    let doc = &rows[&big_doc].content;
    assert_eq!(doc["textStatus"], "exportTooLarge", "{doc}");
    assert!(doc["text"].is_null());
    assert_eq!(doc["name"], "Huge report");
    let video = &rows[&binary].content;
    assert_eq!(video["textStatus"], "none");
    assert_eq!(video["size"], 50 * 1024 * 1024);
    let text = &rows[&log].content;
    assert_eq!(text["textStatus"], "truncated");
    let kept = text["text"].as_str().expect("the log's text").len();
    assert!(
        kept <= 1024 * 1024 && kept > 1024 * 1024 - 4,
        "kept {kept} bytes of the log"
    );
    // The binary is never asked for, and the log only up to about its first MiB (what
    // the connection buffered before it was dropped may be served too).
    let served = fake.media_bytes_served();
    assert!(
        served < 8 * 1024 * 1024,
        "{served} bytes of content served: the 50 MB binary or the whole log was read"
    );
}

/// (c, in-process) A walk of 20 changes pages commits each page with the next page's
/// cursor: each page is read once, and every change is applied.
async fn a_long_changes_walk_commits_page_by_page(h: Harness) {
    // 20 pages of 1,000 changes at the default page size would need 20,000 changes:
    // the account reads 10 changes a page instead.
    let subject = DriveSubject::with_tree(200, 10, 24).await;
    support_settings(&subject, "changesPageSize", 10);
    let ui = h.link(&subject, "drive-user").await.id;
    let engine = h.engine(2);
    h.sync(&engine, ui).await;
    let ids: Vec<String> = subject.truth().keys().cloned().collect();
    for (i, id) in ids.iter().take(200).enumerate() {
        if subject
            .fake
            .snapshot()
            .get(id)
            .is_some_and(|f| !f.is_folder)
        {
            subject
                .fake
                .edit(id, FileBody::Bytes(format!("edit {i}").into_bytes()))
                .expect("edit");
        }
    }
    subject.reset_counters();
    h.clock.advance_ms(TICK_MS);
    h.check_history(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    h.assert_matches_truth(&subject, ui, "after a long walk")
        .await;
    let pages = subject.fake.calls(DriveMethod::ChangesList);
    assert!(
        (19..=21).contains(&pages),
        "{pages} changes pages for ~190 changes"
    );
}

fn support_settings(subject: &DriveSubject, key: &str, value: i64) {
    subject
        .extra_settings
        .lock()
        .expect("settings lock")
        .insert(key.into(), value.into());
}

/// (f) 20 rounds of random creates, edits, renames, moves, trashes, untrashes and
/// deletions, a scheduler-like start and changes check after each: the database
/// equals the fake's truth after every round.
async fn random_tree_changes_converge(h: Harness) {
    let (subject, ui) = synced(&h, 150, 12, 25).await;
    let engine = h.engine(4);
    let fake = &subject.fake;
    let mut rng = StdRng::seed_from_u64(25);
    for round in 1..=20 {
        for _ in 0..rng.random_range(1..=8) {
            let truth = fake.snapshot();
            let ids: Vec<&String> = truth.keys().collect();
            let folders: Vec<&String> = truth
                .values()
                .filter(|f| f.is_folder)
                .map(|f| &f.id)
                .collect();
            let id = ids[rng.random_range(0..ids.len())].clone();
            let result: Result<(), String> = match rng.random_range(0..7) {
                0 => {
                    fake.generate_file();
                    Ok(())
                }
                1 if !truth[&id].is_folder => fake
                    .edit(&id, FileBody::Bytes(format!("r{round}").into_bytes()))
                    .map_err(|e| e.to_string()),
                2 => fake
                    .rename(&id, &format!("renamed {round}"))
                    .map_err(|e| e.to_string()),
                3 if !folders.is_empty() => {
                    let to = folders[rng.random_range(0..folders.len())].clone();
                    // Never into itself or below itself.
                    if to == id
                        || truth[&to]
                            .path
                            .starts_with(&format!("{}/", truth[&id].path))
                    {
                        Ok(())
                    } else {
                        fake.move_to(&id, &to).map_err(|e| e.to_string())
                    }
                }
                4 => subject.trash_for_later(&id),
                5 => {
                    subject.restore_item();
                    Ok(())
                }
                _ => fake.delete(&id).map_err(|e| e.to_string()),
            };
            result.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        h.clock.advance_ms(TICK_MS);
        h.enqueue_history(ui).await;
        h.sync(&engine, ui).await;
        h.assert_no_failed_jobs(ui).await;
        h.assert_matches_truth(&subject, ui, &format!("after round {round}"))
            .await;
    }
}

//! SQLite's write-ahead log stays bounded while a reader keeps reading: after each
//! commit batch the writer checkpoints once the `-wal` file passed its threshold
//! ([`WalLimits`]). Small limits keep it fast; nothing here is timed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::Connection;
use tributary_sdk::{Credentials, Output, Task};
use tributary_store::prelude::*;
use tributary_store::sqlite::{SqliteStore, WalLimits};
use tributary_store::{Cipher, JobCompletion, NewJob, NewUserIntegration};

const LIMIT: u64 = 256 << 10;
/// SQLite's own automatic checkpoint waits for 1,000 pages (4 MiB) of log.
const AUTO_CHECKPOINT: u64 = 1000 * 4096;

fn temp_db() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tributary-wal-test-{}-{:016x}.db",
        std::process::id(),
        rand::random::<u64>()
    ))
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn wal_len(path: &Path) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
}

/// Commits `rounds` batches of 10 items of about 4 KiB while another connection reads
/// all along, in short transactions a moment apart; returns the largest `-wal` size seen right
/// after a commit batch, and the database file's size at the end.
async fn write_while_reading(limits: WalLimits, rounds: usize) -> (u64, u64) {
    let path = temp_db();
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect_with(&url, Cipher::random_for_tests(), limits)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let user = store.create_user("u").await.unwrap();
    let account = store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "gmail".into(),
            credentials: Credentials::default(),
            settings: Map::new(),
        })
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, url) = (stop.clone(), reads.clone(), url.clone());
        tokio::spawn(async move {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            while !stop.load(Ordering::SeqCst) {
                // A snapshot held across a moment: the log cannot restart under it.
                let mut tx = conn.begin().await.unwrap();
                let _: i64 = sqlx::query_scalar("SELECT count(*) FROM user_integration_content")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.commit().await.unwrap();
                reads.fetch_add(1, Ordering::SeqCst);
                // Then the next look a moment later, as a poller does. (A reader that
                // starts its next snapshot the instant it ends the last can make
                // SQLite's checkpoint wait out its whole timeout; the writer then
                // retries after later commits.)
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let body = "x".repeat(4096);
    let mut largest = 0;
    for round in 0..rounds {
        let now = 1_700_000_000_000 + round as i64;
        let jobs: Vec<NewJob> = (0..10)
            .map(|i| NewJob {
                user_integration_id: account.id,
                task: Task::new("fetch", Value::Null),
                priority: 2,
                dedupe_key: Some(format!("{round}-{i}")),
                max_attempts: 3,
                run_at: 0,
            })
            .collect();
        store.enqueue(&jobs, now).await.unwrap();
        let claimed = store.claim("w", 10, 60_000, now).await.unwrap();
        assert_eq!(claimed.len(), 10);
        let completions: Vec<JobCompletion> = claimed
            .iter()
            .enumerate()
            .map(|(i, job)| JobCompletion {
                lease: job.lease(),
                user_integration_id: account.id,
                user_id: user.id,
                integration_domain: "gmail".into(),
                outputs: vec![Output::item(
                    format!("item-{round}-{i}"),
                    None,
                    json!({ "body": body, "n": round }),
                )],
                children: Vec::new(),
                sync_state_patch: None,
                credentials: None,
            })
            .collect();
        let reports = store.complete_jobs(&completions, now).await.unwrap();
        assert!(reports.iter().all(|r| r.applied));
        largest = largest.max(wal_len(&path));
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    assert!(
        reads.load(Ordering::SeqCst) > 0,
        "the reader never read: the scenario did not run"
    );
    let db_len = std::fs::metadata(&path).unwrap().len();
    drop(store);
    remove(&path);
    (largest, db_len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_keeps_the_wal_bounded_under_constant_reads() {
    let limits = WalLimits {
        journal_size_limit: LIMIT,
        checkpoint_at: LIMIT / 4,
        checkpoint_wait: Duration::from_secs(2),
        retry_after: Duration::ZERO,
    };
    let (largest, db_len) = write_while_reading(limits, 150).await;
    assert!(
        db_len > 10 * LIMIT,
        "too little was written ({db_len} bytes) for the bound to mean anything"
    );
    assert!(
        largest <= LIMIT,
        "the WAL reached {largest} bytes after a commit batch, over the {LIMIT}-byte limit"
    );
}

/// The same work without the writer's checkpoints: the log grows to SQLite's own
/// automatic checkpoint and beyond, far over the limit (the scenario above would
/// fail without them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_checkpoints_the_same_work_outgrows_the_limit() {
    let limits = WalLimits {
        journal_size_limit: LIMIT,
        checkpoint_at: u64::MAX,
        checkpoint_wait: Duration::from_secs(2),
        retry_after: Duration::ZERO,
    };
    let (largest, _) = write_while_reading(limits, 150).await;
    assert!(
        largest >= AUTO_CHECKPOINT.min(4 * LIMIT),
        "the WAL stayed at {largest} bytes"
    );
}

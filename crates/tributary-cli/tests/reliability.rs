//! Reliability with real processes and real databases (no mock of either): the
//! `tributary` binary runs as worker processes against the synthetic source while the
//! database fails under it.
//!
//! - PostgreSQL restart: a private cluster (`initdb` / `pg_ctl`, see
//!   `support/pg_cluster.rs`) is stopped with an immediate shutdown mid-sync, kept down
//!   a few seconds and started again. The workers (`tributary run`, and
//!   `tributary sync --until-idle`) ride it out: the sync ends with every source item
//!   stored once and every job completed (none lost, failed or dead).
//! - SQLite disk full: the database lives on a small tmpfs that is filled mid-sync.
//!   The worker reports `database or disk is full`, keeps running, the database stays
//!   intact (`PRAGMA integrity_check`), and the sync completes once space returns.
//!
//! Without the PostgreSQL server binaries, or without root for the tmpfs, the tests
//! skip with a message; under `CI=true` they fail instead.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::pg_cluster::PgCluster;
use support::tmpfs::Tmpfs;
use support::{
    Db, TempDir, Worker, assert_all_jobs_completed, link, now_ms, stored, stored_count,
    try_pending, wait_for_idle, wait_until, worker_command,
};
use tributary_testkit::synthetic::{SourceConfig, SourceServer};

/// The longest any phase of a test may take before it fails.
const PHASE: Duration = Duration::from_secs(120);

/// A worker process with warnings logged to `log`.
fn logged_worker(db: &Db, workers: usize, log: &Path) -> Worker {
    let mut command = worker_command(&db.url, &db.key, workers, 10);
    command.env("TRIBUTARY_LOG", "warn");
    Worker::spawn(command, log)
}

/// A synthetic source of `items` items (each answer delayed `latency`, so the sync
/// lasts long enough to fail in the middle), an account linked to it, and its start
/// job queued.
async fn synthetic_account(db: &Db, items: usize, latency_ms: u64) -> (SourceServer, i64) {
    tributary_sdk::http::install_crypto_provider();
    let server = SourceServer::start(SourceConfig::new(items, 31, "reliability-token"))
        .await
        .expect("source");
    server
        .source()
        .set_latency(Some(Duration::from_millis(latency_ms)));
    let ui = link(db.store.as_ref(), &server).await;
    db.store
        .enqueue(
            &[tributary_engine::worker::start_job(ui, 5, now_ms())],
            now_ms(),
        )
        .await
        .expect("start");
    (server, ui)
}

/// Waits until at least `items` items are stored while jobs are still pending.
async fn wait_for_progress(db: &Db, ui: i64, items: i64) {
    let store = db.store.clone();
    wait_until(
        &format!("{items} items stored with jobs still pending"),
        PHASE,
        move || {
            let store = store.clone();
            async move {
                stored_count(store.as_ref(), ui).await.unwrap_or(0) >= items
                    && try_pending(store.as_ref()).await.unwrap_or(0) > 0
            }
        },
    )
    .await;
}

/// The end of every test: the database holds the source's items once each, and every
/// job of the account completed.
async fn assert_synced(db: &Db, ui: i64, server: &SourceServer) {
    assert_eq!(
        stored(db.store.as_ref(), ui).await,
        server.source().snapshot(),
        "the stored items are not the source's"
    );
    assert_all_jobs_completed(db.store.as_ref(), ui).await;
}

/// `PRAGMA integrity_check` of the SQLite file, from a read-only connection of our own.
async fn integrity_check(path: &Path, immutable: bool) -> String {
    use sqlx::{ConnectOptions as _, Connection as _};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(immutable)
        .connect()
        .await
        .expect("open the database for the integrity check");
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity check");
    let _ = conn.close().await;
    rows.join("; ")
}

// ---- PostgreSQL restart ----

const PG_ITEMS: usize = 4_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_sync_run_loses_nothing() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let db = Db::at(cluster.url(), Box::new(())).await;
    let (server, ui) = synthetic_account(&db, PG_ITEMS, 3).await;
    let logs = TempDir::new("pg-restart-logs");
    let mut workers: Vec<Worker> = (0..2)
        .map(|i| logged_worker(&db, 4, &logs.path().join(format!("worker-{i}.log"))))
        .collect();

    wait_for_progress(&db, ui, (PG_ITEMS / 5) as i64).await;
    cluster.stop_immediate();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for w in &mut workers {
        w.assert_running("while PostgreSQL was down");
    }
    cluster.restart();

    wait_for_idle(db.store.as_ref(), PHASE).await;
    for w in &mut workers {
        w.assert_running("after PostgreSQL came back");
        let status = w.terminate(PHASE).await;
        assert!(status.success(), "worker exit: {status}\n{}", w.output());
    }
    assert_synced(&db, ui, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_sync_until_idle_loses_nothing() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let db = Db::at(cluster.url(), Box::new(())).await;
    let (server, ui) = synthetic_account(&db, PG_ITEMS, 3).await;
    let logs = TempDir::new("pg-restart-logs");
    let mut command = Command::new(support::BIN);
    command
        .args(["sync", &ui.to_string(), "--until-idle", "--workers", "4"])
        .env("DATABASE_URL", &db.url)
        .env("TRIBUTARY_SECRET_KEY", &db.key)
        .env("TRIBUTARY_LOG", "warn");
    let mut sync = Worker::spawn(command, &logs.path().join("sync.log"));

    wait_for_progress(&db, ui, (PG_ITEMS / 5) as i64).await;
    cluster.stop_immediate();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sync.assert_running("while PostgreSQL was down");
    cluster.restart();

    let status = sync.wait(PHASE).await;
    assert!(status.success(), "sync exit: {status}\n{}", sync.output());
    assert_synced(&db, ui, &server).await;
}

// ---- SQLite disk full ----

/// SQLite's message for SQLITE_FULL, which the worker must log.
const FULL: &str = "database or disk is full";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_mid_sync_then_space_returns() {
    let Some(fs) = Tmpfs::mount(64) else {
        return;
    };
    let path = fs.path().join("full.db");
    let db = Db::at(format!("sqlite://{}", path.display()), Box::new(())).await;
    let (server, ui) = synthetic_account(&db, 10_000, 1).await;
    let logs = TempDir::new("disk-full-logs");
    let mut worker = logged_worker(&db, 4, &logs.path().join("worker.log"));

    wait_for_progress(&db, ui, 1_000).await;
    let filler = fs.fill();
    let deadline = tokio::time::Instant::now() + PHASE;
    while !worker.output().contains(FULL) {
        worker.assert_running("with the disk full");
        assert!(
            try_pending(db.store.as_ref()).await.unwrap_or(1) > 0,
            "the sync finished before the disk filled up; make the source bigger"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not report the full disk within {PHASE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Some more rounds on the full disk: claims, commits and lease renewals all fail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.assert_running("with the disk full");
    assert_eq!(integrity_check(&path, false).await, "ok");

    std::fs::remove_file(&filler).expect("remove the filler");
    wait_for_idle(db.store.as_ref(), PHASE).await;
    worker.assert_running("after space returned");
    let status = worker.terminate(PHASE).await;
    assert!(
        status.success(),
        "worker exit: {status}\n{}",
        worker.output()
    );
    assert_synced(&db, ui, &server).await;
    assert_eq!(integrity_check(&path, false).await, "ok");
}

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
//! - SQLite read-only: the tmpfs is remounted read-only between two runs (the kernel
//!   refuses a read-only remount while a process has a file open for writing, so a
//!   running worker cannot be put on a read-only filesystem), a worker is started on
//!   it, and the filesystem is made writable again. With the -wal and -shm files a
//!   killed worker leaves, the worker keeps running, reports each failed write and
//!   completes the sync once the database is writable; without them SQLite cannot
//!   open the database at all, and the worker stops at once with one line saying the
//!   database is read-only. Either way the file stays intact and nothing stored before
//!   changes.
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
        .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
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

// ---- SQLite disk full and read-only ----

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

/// A first worker stores part of the backfill and stops: cleanly (`kill_first`
/// false: SQLite removes its -wal and -shm files) or by SIGKILL (they stay). The
/// filesystem then goes read-only (the kernel refuses that while any file on it is open
/// for writing, hence between two runs), a second worker is started on it and `check`
/// looks at it; then the filesystem becomes writable again and the sync must complete
/// with every item once, the items stored before unchanged, and the file intact.
async fn read_only_between_runs(kill_first: bool, check: impl AsyncFnOnce(&mut Worker, &Path)) {
    let Some(fs) = Tmpfs::mount(64) else {
        return;
    };
    let path = fs.path().join("ro.db");
    let url = format!("sqlite://{}", path.display());
    let key = tributary_store::crypto::generate_base64_key();
    let cipher = tributary_store::Cipher::load(&tributary_store::KeySource::Base64(key.clone()))
        .expect("cipher");
    // A store of our own type, so that the test can close its connections.
    let sqlite = tributary_store::sqlite::SqliteStore::connect(&url, cipher)
        .await
        .expect("open");
    tributary_store::Store::migrate(&sqlite)
        .await
        .expect("migrate");
    let db = Db::with_store(url, key, std::sync::Arc::new(sqlite.clone()));
    let (server, ui) = synthetic_account(&db, 3_000, 2).await;
    let logs = TempDir::new("read-only-logs");

    let mut first = logged_worker(&db, 4, &logs.path().join("first.log"));
    wait_for_progress(&db, ui, 500).await;
    // The last connection to close removes the -wal and -shm files: ours closes first
    // when the worker is to leave them behind.
    let before = if kill_first {
        sqlite.pool().close().await;
        first.kill();
        None
    } else {
        let status = first.terminate(PHASE).await;
        assert!(
            status.success(),
            "worker exit: {status}\n{}",
            first.output()
        );
        let before = stored(db.store.as_ref(), ui).await;
        sqlite.pool().close().await;
        Some(before)
    };
    let wal = fs.path().join("ro.db-wal");
    assert_eq!(
        wal.exists(),
        kill_first,
        "the -wal file after the first run"
    );

    fs.set_read_only(true);
    assert!(
        std::fs::write(fs.path().join("probe"), b"x").is_err(),
        "the filesystem is still writable"
    );
    let before = match before {
        Some(before) => before,
        None => {
            // Reads work on a read-only database that has its -wal and -shm files.
            let cipher =
                tributary_store::Cipher::load(&tributary_store::KeySource::Base64(db.key.clone()))
                    .expect("cipher");
            let reader = tributary_store::sqlite::SqliteStore::connect(&db.url, cipher)
                .await
                .expect("open the read-only database");
            let before = stored(&reader, ui).await;
            reader.pool().close().await;
            before
        }
    };
    assert!(
        (500..3_000).contains(&before.len()),
        "{} items stored by the first run",
        before.len()
    );
    let mut second = logged_worker(&db, 4, &logs.path().join("second.log"));
    check(&mut second, &path).await;

    // Writable again: the sync completes from where the first worker stopped, by the
    // second worker if it still runs, by a third otherwise.
    fs.set_read_only(false);
    let store = support::open(&db.url, &db.key).await;
    let db = Db::with_store(db.url.clone(), db.key.clone(), store);
    let mut third = if second.is_running() {
        second
    } else {
        logged_worker(&db, 4, &logs.path().join("third.log"))
    };
    wait_for_idle(db.store.as_ref(), PHASE).await;
    third.assert_running("after the database became writable");
    let status = third.terminate(PHASE).await;
    assert!(
        status.success(),
        "worker exit: {status}\n{}",
        third.output()
    );
    let after = stored(db.store.as_ref(), ui).await;
    assert!(
        before.iter().all(|(id, v)| after.get(id) == Some(v)),
        "items stored before the read-only phase changed"
    );
    assert_synced(&db, ui, &server).await;
    assert_eq!(integrity_check(&path, false).await, "ok");
}

/// SQLite's message for SQLITE_READONLY.
const READ_ONLY: &str = "attempt to write a readonly database";

/// With its -wal and -shm files left by a killed worker, SQLite opens a read-only
/// database read-only: the worker keeps running, says why each write fails, reads
/// still work, and once the filesystem is writable the same worker finishes the sync
/// (its read-only connections are not kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_only_database_then_writable_again() {
    read_only_between_runs(true, async |worker: &mut Worker, path: &Path| {
        let deadline = tokio::time::Instant::now() + PHASE;
        while !worker.output().contains(READ_ONLY) {
            worker.assert_running("on the read-only database");
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not report the read-only database within {PHASE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Some more rounds on the read-only database.
        tokio::time::sleep(Duration::from_secs(2)).await;
        worker.assert_running("on the read-only database");
        assert_eq!(integrity_check(path, false).await, "ok");
    })
    .await;
}

/// Without -wal and -shm files SQLite cannot open a read-only WAL database at all: the
/// worker stops at once with one line saying the database is read-only, and a worker
/// started once it is writable finishes the sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_only_database_file_is_refused_clearly() {
    read_only_between_runs(false, async |worker: &mut Worker, path: &Path| {
        let status = worker.wait(PHASE).await;
        let out = worker.output();
        assert_eq!(
            status.code(),
            Some(1),
            "worker on a read-only database:\n{out}"
        );
        let error = out
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line:\n{out}"));
        assert!(
            error.contains("the database is read-only")
                && error.contains(path.to_str().unwrap_or("?")),
            "unclear error: {error}"
        );
        assert_eq!(integrity_check(path, true).await, "ok");
    })
    .await;
}

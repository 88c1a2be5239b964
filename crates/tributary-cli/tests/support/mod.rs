//! What the tests that drive the real `tributary` binary as worker processes share
//! (`processes.rs`, `reliability.rs`): throw-away databases, spawning and stopping
//! workers, waiting for the queue to drain, and the end-of-sync checks (every source
//! item stored once, no job left running, failed or dead).
//!
//! - [`pg_cluster`]: a private PostgreSQL cluster (`initdb` / `pg_ctl`) a test can stop
//!   and start again.
//! - [`tmpfs`]: a small tmpfs mounted by the test (disk full, read-only).
//! - [`rotation`]: refresh-token rotation through SIGKILLed workers.
//!
//! Each test binary uses part of it, hence `dead_code` allowed here.
#![allow(dead_code)]

pub mod pg_cluster;
pub mod rotation;
pub mod tmpfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tributary_store::{
    Cipher, ContentQuery, JobFilter, JobState, KeySource, NewUserIntegration, Store,
};
use tributary_testkit::synthetic::SourceServer;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// Whether the environment says this is CI (`CI=true`): then a test that cannot set
/// up what it needs fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test (returns `None`) with a message saying why, or fails it under
/// `CI=true`.
pub fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "{why}; CI=true, so this fails instead of skipping"
    );
    eprintln!("skipped: {why}");
    None
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // The second field of `Uid:` is the effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A database the test and its worker processes share.
pub struct Db {
    /// The database URL handed to the workers.
    pub url: String,
    /// The test's own connection to it.
    pub store: Arc<dyn Store>,
    /// The secret key (base64) credentials are encrypted with.
    pub key: String,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Db {
    /// A database at `url` the test already has a store of.
    pub fn with_store(url: String, key: String, store: Arc<dyn Store>) -> Db {
        Db {
            url,
            store,
            key,
            _guard: Box::new(()),
        }
    }

    /// A database at `url` (created and migrated), kept alive by `guard`.
    pub async fn at(url: String, guard: Box<dyn std::any::Any + Send>) -> Db {
        let key = tributary_store::crypto::generate_base64_key();
        let store = open(&url, &key).await;
        Db {
            url,
            store,
            key,
            _guard: guard,
        }
    }
}

/// A fresh SQLite database in a temp directory removed afterwards.
pub async fn sqlite_db() -> Db {
    let dir = TempDir::new("proc");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    Db::at(url, Box::new(dir)).await
}

/// A fresh database on the shared test PostgreSQL server, or `None` (skipped).
pub async fn postgres_db() -> Option<Db> {
    let db = tributary_store::testing::postgres_test_store().await?;
    let url = db.url.clone();
    Some(Db::at(url, Box::new(db)).await)
}

/// Opens and migrates the store at `url`.
pub async fn open(url: &str, key: &str) -> Arc<dyn Store> {
    let cipher = Cipher::load(&KeySource::Base64(key.to_owned())).expect("cipher");
    let store = tributary_store::connect(url, cipher)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// A temp directory, removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `what`.
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tributary-{what}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `tributary run` against `url`, not yet spawned. Short leases bring the jobs of a
/// killed worker back quickly; a live worker renews its leases every third of one.
pub fn worker_command(url: &str, key: &str, workers: usize, lease_seconds: u64) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "run",
            "--workers",
            &workers.to_string(),
            "--lease-seconds",
            &lease_seconds.to_string(),
            "--tick-seconds",
            "3600",
        ])
        .env("DATABASE_URL", url)
        .env("TRIBUTARY_SECRET_KEY", key)
        // The accounts are `synthetic`, a test double the binary knows only with this.
        .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
        .env("TRIBUTARY_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Starts `tributary run` against the database, its output discarded.
pub fn spawn_worker(db: &Db, workers: usize, lease_seconds: u64) -> Child {
    worker_command(&db.url, &db.key, workers, lease_seconds)
        .spawn()
        .expect("spawn tributary run")
}

/// A worker process whose stderr goes to a file, killed (SIGKILL) if still running
/// when dropped, so a failing test leaves no process behind; when the test is
/// failing, the end of its output is printed.
pub struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Spawns `command` with stderr (and stdout) appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Worker {
        let file = |what: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("cannot open {what} log {}: {e}", log.display()))
        };
        let child = command
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("spawn tributary");
        Worker {
            child,
            log: log.to_owned(),
        }
    }

    /// What the process has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics (with the process's output) when the process has exited.
    pub fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the worker exited {when} ({status}); its output:\n{}",
                tail(&self.output())
            );
        }
    }

    /// Waits at most `limit` for the process to exit by itself; its exit status.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the process did not exit within {limit:?}; its output:\n{}",
                tail(&self.output())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process with SIGTERM (the graceful path) and waits at most `limit`
    /// for it to exit; its exit status.
    pub async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(limit).await
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "output of the worker ({}), last lines:\n{}",
                self.log.display(),
                tail(&self.output())
            );
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last 40 lines of a process's output, for failure messages.
pub fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Stops a child with SIGTERM (the graceful path: finish or release in-flight jobs)
/// and reaps it.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Links an account of the synthetic source; its id.
pub async fn link(store: &dyn Store, server: &SourceServer) -> i64 {
    let user = store.create_user("crash-test").await.expect("user");
    let ui = store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "synthetic".into(),
            credentials: server.credentials(),
            settings: server.settings(),
        })
        .await
        .expect("link");
    ui.id
}

/// Jobs available or running.
pub async fn try_pending(store: &dyn Store) -> Result<i64, tributary_store::StoreError> {
    Ok(store
        .job_counts(None)
        .await?
        .iter()
        .filter(|c| matches!(c.state, JobState::Available | JobState::Running))
        .map(|c| c.count)
        .sum())
}

/// Jobs available or running (panics on a store error).
pub async fn pending(store: &dyn Store) -> i64 {
    try_pending(store).await.expect("counts")
}

/// Waits until no job is available or running, at most `limit`. Store errors count as
/// not idle (the database may be coming back).
pub async fn wait_for_idle(store: &dyn Store, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    // Idle twice in a row, a moment apart, so a job between claim and commit counts.
    let mut idle_seen = 0;
    let mut last = String::new();
    while idle_seen < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not finish within {limit:?} (last look: {last})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        idle_seen = match try_pending(store).await {
            Ok(0) => idle_seen + 1,
            Ok(n) => {
                last = format!("{n} jobs pending");
                0
            }
            Err(e) => {
                last = e.to_string();
                0
            }
        };
    }
}

/// Waits until `ready` holds, at most `limit`; `what` names it in the failure message.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The account's stored items (external id → version); panics on a duplicate row or
/// a deletion.
pub async fn stored(store: &dyn Store, ui: i64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_content(&ContentQuery {
                user_integration_id: Some(ui),
                include_deleted: true,
                after_id: after,
                limit: Some(1000),
                ..ContentQuery::default()
            })
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for item in page {
            assert!(
                !item.is_deleted,
                "unexpected deletion of {}",
                item.external_id
            );
            let version = item.content["version"].as_u64().expect("version");
            assert!(
                out.insert(item.external_id, version).is_none(),
                "duplicate row"
            );
        }
    }
    out
}

/// Items stored for the account (live ones), or `None` on a store error.
pub async fn stored_count(store: &dyn Store, ui: i64) -> Option<i64> {
    store.content_counts(ui).await.ok().map(|c| c.items)
}

/// Panics unless every job of the account is completed (none available, running,
/// failed or dead).
pub async fn assert_all_jobs_completed(store: &dyn Store, ui: i64) {
    for state in [
        JobState::Available,
        JobState::Running,
        JobState::Failed,
        JobState::Dead,
    ] {
        let jobs = store
            .list_jobs(&JobFilter {
                state: Some(state),
                user_integration_id: Some(ui),
                limit: Some(10),
            })
            .await
            .expect("jobs");
        assert!(jobs.is_empty(), "jobs left {state:?}: {jobs:?}");
    }
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

//! The SQLite backend: the embedded default, for one process.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`, foreign keys on and a
//! 30 s busy timeout. The write-ahead log is kept bounded ([`WalLimits`]): SQLite
//! reuses the `-wal` file from its start only once a checkpoint has copied all of it
//! into the database while no reader still reads from it, and with readers always
//! at work (the engine's look-ups, progress polls) its own passive checkpoints never
//! get there, so the file grew with every commit (640 MiB beside a 124 MiB database
//! after a 100,000-message backfill over 200 accounts). So, after a commit batch,
//! the writer checkpoints with `TRUNCATE` once the file passed a threshold, waiting at
//! most a moment for readers; and `journal_size_limit` truncates the file back
//! whenever the log restarts. Every write that reads before it writes runs in a
//! `BEGIN IMMEDIATE` transaction, which takes the write lock up front: two writers
//! never both hold a read lock and then deadlock trying to upgrade it. Reads run on
//! the pool without a transaction (WAL readers never block the writer).
//!
//! Timestamps are stored as fixed-width UTC text with millisecond precision, so that
//! text order is time order; JSON is stored as text.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tributary_sdk::Credentials;

use crate::common::{
    ContentRow, DueGate, DueKind, FairGroup, account_effects, applied_completions, blank_reports,
    chunk_rows, clean_text, completion_order, distinct_leases, merge_top_level, ms_to_dt,
    object_from_text, prepare_jobs, sqlite_time, value_from_text,
};
use crate::shared::store_flows;
use crate::{
    Backend, Cipher, CompletionReport, ContentCounts, ContentItem, ContentQuery, DomainSchedule,
    FailureAction, Job, JobCompletion, JobCount, JobFailure, JobFilter, JobLease, JobState, Millis,
    NewJob, NewUserIntegration, ScheduleReport, StoreError, TICK_ENQUEUE_LIMIT, User,
    UserIntegration, UserIntegrationStatus,
};

/// SQLite's default limit on bound parameters is 32766; stay well below it.
const MAX_BINDS: usize = 10_000;
/// How long a statement waits for another connection's lock (milliseconds).
const BUSY_TIMEOUT_MS: u64 = 30_000;
/// Sets [`BUSY_TIMEOUT_MS`] again.
const RESTORE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 30000";
/// The most document bytes one multi-row content insert carries.
const INSERT_BYTES: usize = 1 << 20;

/// Claims in (priority, fair_seq, id) order; `?1` worker, `?2` lease end, `?3` now,
/// `?4` limit, `?5` the one account to claim for, if any.
///
/// It walks `jobs_claim_idx` in order and stops at the limit, whatever the queue's
/// length: the few accounts whose jobs must wait (paused, needing re-auth, ...) come
/// from their own partial index. Both indexes are named (`INDEXED BY`): without
/// statistics SQLite's planner may prefer another index and sort every available job,
/// as the join on the account this replaces did (34 ms a claim at 50,000 queued).
const SQL_CLAIM: &str = concat!(
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = ?1, \
     lease_expires_at = ?2 \
     WHERE id IN (SELECT j.id FROM jobs j INDEXED BY jobs_claim_idx \
                  WHERE j.state = 'available' AND j.run_at <= ?3 \
                    AND j.user_integration_id NOT IN ( \
                        SELECT ui.id FROM user_integrations ui \
                            INDEXED BY user_integrations_inactive_idx \
                        WHERE ui.status <> 'active') \
                    AND (?5 IS NULL OR j.user_integration_id = ?5) \
                  ORDER BY j.priority, j.fair_seq, j.id LIMIT ?4) \
     RETURNING ",
    crate::shared::job_columns!()
);

/// Deletes the oldest `?2` completed jobs finished before `?1`. The index is named
/// (`INDEXED BY`), as the claim's are: the statement then reads the oldest entries of
/// the pruning index and nothing else, whatever the planner would guess without
/// statistics.
const SQL_PRUNE: &str = "DELETE FROM jobs \
     WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_completed_idx \
                  WHERE state = 'completed' AND finished_at < ?1 \
                  ORDER BY finished_at LIMIT ?2) \
       AND state = 'completed'";

/// Whether a connection coming back to the pool may be used again.
///
/// - Not when it is still inside a transaction once the rollback a dropped transaction
///   queued has run. A COMMIT that fails with SQLITE_FULL (disk full) can leave SQLite
///   having rolled the transaction back by itself while the driver still counts it
///   open; the driver's ROLLBACK then fails too, and every later `BEGIN` on that
///   connection fails with "attempted to call begin_with at non-zero transaction
///   depth". Kept in the pool, such connections stalled the engine for good once the
///   disk had space again.
/// - Not when it was opened read-only (see [`mark_read_only`]); `read_only` counts
///   such connections, so the check costs nothing while there are none.
async fn keep_connection(
    conn: &mut SqliteConnection,
    read_only: &AtomicUsize,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    if conn.is_in_transaction() {
        // Runs what is queued on the connection (the rollback) first.
        conn.ping().await?;
        if conn.is_in_transaction() {
            return Ok(false);
        }
    }
    if read_only.load(Ordering::Relaxed) > 0 {
        let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
            .fetch_one(&mut *conn)
            .await?;
        if query_only != 0 {
            let _ =
                read_only.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            return Ok(false);
        }
    }
    Ok(true)
}

/// Marks a connection SQLite opened read-only (`PRAGMA query_only`, counted in
/// `read_only`), so that it is closed when it comes back to the pool. SQLite opens a
/// connection read-only, silently, when the file or its filesystem is not writable
/// but the -wal and -shm files exist, and such a connection stays read-only for its
/// whole life: kept in the pool, every write on it failed with "attempt to write a
/// readonly database" long after the database was writable again. Marked, it serves
/// its one use (reads work; writes fail with that clear error) and the pool opens a
/// fresh connection for the next.
///
/// The probe writes the header's `user_version` inside a transaction it rolls back (a
/// read-only connection even begins `BEGIN IMMEDIATE`; only a page write fails), and
/// does not wait for the write lock: "busy" means another connection is writing, so
/// this one could too.
async fn mark_read_only(
    conn: &mut SqliteConnection,
    read_only: &AtomicUsize,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("PRAGMA busy_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let mut probe = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await;
    if probe.is_ok() {
        probe = sqlx::raw_sql("PRAGMA user_version = 0")
            .execute(&mut *conn)
            .await;
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
    }
    sqlx::raw_sql(RESTORE_BUSY_TIMEOUT)
        .execute(&mut *conn)
        .await?;
    if probe.as_ref().is_err_and(is_read_only) {
        sqlx::raw_sql("PRAGMA query_only = 1")
            .execute(&mut *conn)
            .await?;
        read_only.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether SQLite answered SQLITE_READONLY (or one of its extended codes).
fn is_read_only(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 8),
        _ => false,
    }
}

/// The error of a database file that could not be opened; when the reason is that the
/// file or its directory cannot be written, it says so (SQLite itself only says
/// "unable to open database file").
fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    match read_only_reason(path) {
        Some(why) => StoreError::ReadOnly(format!(
            "{why}; SQLite must write {} and create its -wal and -shm files next to it \
             ({error})",
            path.display()
        )),
        None => StoreError::Database(error),
    }
}

/// Why the database file at `path` cannot be written, if it cannot: the file is not
/// writable, or no file can be created in its directory (checked with a probe file,
/// removed at once). Only looked at once opening failed.
fn read_only_reason(path: &Path) -> Option<String> {
    use std::io::ErrorKind;
    let denied = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
        )
    };
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().write(true).open(path)
        && denied(&e)
    {
        return Some(format!("cannot write {}: {e}", path.display()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".tributary-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if denied(&e) => Some(format!("cannot create files in {}: {e}", dir.display())),
        Err(_) => None,
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    cipher: Cipher,
    due: Arc<DueGate>,
    /// Keeps the write-ahead log small (file databases only).
    wal: Option<Arc<WalKeeper>>,
}

/// How large SQLite's write-ahead log (the `-wal` file) may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalLimits {
    /// `PRAGMA journal_size_limit` on every connection: when the log restarts, the
    /// file is truncated to this (bytes).
    pub journal_size_limit: u64,
    /// After a commit batch ([`Store::complete_jobs`]) the writer checkpoints the log
    /// (`wal_checkpoint(TRUNCATE)`, which empties the file) once the file is this large
    /// (bytes).
    pub checkpoint_at: u64,
    /// How long the checkpoint waits for readers and writers to finish, at most; the
    /// other writers wait meanwhile, so this stays short.
    pub checkpoint_wait: Duration,
    /// After a checkpoint that could not finish (a reader held its snapshot longer
    /// than `checkpoint_wait`), how long the writer leaves the log alone before trying
    /// again (so a long read does not make every commit wait).
    pub retry_after: Duration,
}

impl Default for WalLimits {
    /// A 64 MiB `journal_size_limit`, a checkpoint from 16 MiB, waiting up to 250 ms,
    /// again after 1 s when that was not enough.
    fn default() -> Self {
        WalLimits {
            journal_size_limit: 64 << 20,
            checkpoint_at: 16 << 20,
            checkpoint_wait: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Checkpoints the write-ahead log after commits once it passed its threshold, on a
/// connection of its own (with a short busy timeout: the pool's 30 s would let a
/// checkpoint waiting for a reader hold up every writer).
struct WalKeeper {
    wal_path: std::path::PathBuf,
    limits: WalLimits,
    options: SqliteConnectOptions,
    /// The connection, and when a busy checkpoint may be retried. Locked by the one
    /// checkpoint in progress; a commit that finds it locked leaves the log alone.
    state: tokio::sync::Mutex<(Option<SqliteConnection>, Option<std::time::Instant>)>,
}

impl std::fmt::Debug for WalKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalKeeper")
            .field("wal_path", &self.wal_path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WalKeeper {
    /// Checkpoints when the log file passed the threshold. Never fails: the commit
    /// before it is done, and a checkpoint that does not happen now happens later.
    async fn after_commit(&self) {
        let size = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if size < self.limits.checkpoint_at {
            return;
        }
        let Ok(mut state) = self.state.try_lock() else {
            return; // a checkpoint is under way
        };
        let (conn, retry_at) = &mut *state;
        if retry_at.is_some_and(|at| std::time::Instant::now() < at) {
            return;
        }
        match self.checkpoint(conn).await {
            Ok(Checkpoint::Done) => {
                *retry_at = None;
                tracing::debug!(wal_bytes = size, "checkpointed the write-ahead log");
            }
            // Nothing waited: the next commit tries again.
            Ok(Checkpoint::Collided) => *retry_at = None,
            Ok(Checkpoint::Busy) => {
                *retry_at = Some(std::time::Instant::now() + self.limits.retry_after);
                tracing::debug!(
                    wal_bytes = size,
                    "write-ahead log checkpoint postponed: readers still at work"
                );
            }
            Err(e) => {
                *conn = None;
                *retry_at = Some(std::time::Instant::now() + self.limits.retry_after);
                tracing::warn!(error = %e, "write-ahead log checkpoint failed");
            }
        }
    }

    /// A passive checkpoint first (it copies what it can without blocking anyone),
    /// then `TRUNCATE` (it waits for the writers and readers, then empties the file).
    async fn checkpoint(
        &self,
        conn: &mut Option<SqliteConnection>,
    ) -> Result<Checkpoint, sqlx::Error> {
        let conn = match conn {
            Some(conn) => conn,
            None => conn.insert(sqlx::ConnectOptions::connect(&self.options).await?),
        };
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *conn)
            .await?;
        let began = std::time::Instant::now();
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        Ok(if busy == 0 {
            Checkpoint::Done
        } else if began.elapsed() < self.limits.checkpoint_wait / 2 {
            // Refused without waiting: another connection was checkpointing (SQLite's
            // automatic passive checkpoint after a commit), which SQLite never waits
            // for. The next commit tries again.
            Checkpoint::Collided
        } else {
            Checkpoint::Busy
        })
    }
}

/// How a checkpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoint {
    /// The log was emptied.
    Done,
    /// Another checkpoint was running: nothing waited.
    Collided,
    /// Readers or writers held on longer than the checkpoint waits.
    Busy,
}

/// The migrations of the SQLite schema, embedded in the binary.
pub fn migrator() -> Migrator {
    crate::shared::migrations!("sqlite")
}

impl SqliteStore {
    /// Opens (creating the file when missing) the SQLite database at `url`
    /// (`sqlite://PATH`, `sqlite:PATH`, or `sqlite::memory:` for a private in-memory
    /// database), with the default [`WalLimits`]. Does not migrate.
    pub async fn connect(url: &str, cipher: Cipher) -> Result<SqliteStore, StoreError> {
        Self::connect_with(url, cipher, WalLimits::default()).await
    }

    /// [`SqliteStore::connect`] with these bounds on the write-ahead log.
    pub async fn connect_with(
        url: &str,
        cipher: Cipher,
        wal_limits: WalLimits,
    ) -> Result<SqliteStore, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .synchronous(SqliteSynchronous::Normal);
        if !in_memory {
            // Create the file's directory too, not only the file.
            if let Some(dir) = options
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Database(sqlx::Error::Configuration(
                        format!(
                            "cannot create the database directory {}: {e}",
                            dir.display()
                        )
                        .into(),
                    ))
                })?;
            }
        }
        let mut wal = None;
        let pool = if in_memory {
            // An in-memory database lives as long as its connection: keep exactly one,
            // forever. Every method runs its statements on one connection (its
            // transaction's), so one connection cannot deadlock.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            let path = options.get_filename().to_owned();
            let read_only = Arc::new(AtomicUsize::new(0));
            options = options.journal_mode(SqliteJournalMode::Wal).pragma(
                "journal_size_limit",
                wal_limits.journal_size_limit.to_string(),
            );
            let mut wal_path = options.get_filename().as_os_str().to_owned();
            wal_path.push("-wal");
            wal = Some(Arc::new(WalKeeper {
                wal_path: wal_path.into(),
                limits: wal_limits,
                options: options.clone().busy_timeout(wal_limits.checkpoint_wait),
                state: tokio::sync::Mutex::new((None, None)),
            }));
            SqlitePoolOptions::new()
                .max_connections(8)
                .after_connect({
                    let read_only = read_only.clone();
                    move |conn, _| {
                        let read_only = read_only.clone();
                        Box::pin(async move { mark_read_only(conn, &read_only).await })
                    }
                })
                .after_release(move |conn, _| {
                    let read_only = read_only.clone();
                    Box::pin(async move { keep_connection(conn, &read_only).await })
                })
                .connect_with(options)
                .await
                .map_err(|e| open_error(&path, e))?
        };
        Ok(SqliteStore {
            pool,
            cipher,
            due: Arc::default(),
            wal,
        })
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// A JSON array of strings, for `json_each(?)` (one bind for any number of ids).
fn json_array<S: AsRef<str>>(items: &[S]) -> String {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String(s.as_ref().to_owned()))
            .collect(),
    )
    .to_string()
}

/// Enqueues `jobs` on `conn` (inside the caller's write transaction): assigns
/// fair-queueing tags, then inserts in multi-row statements, skipping duplicates of a
/// pending dedupe key. Returns how many were inserted.
async fn enqueue_in(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
    now: Millis,
) -> Result<u64, StoreError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let (prepared, groups) = prepare_jobs(jobs);
    let bases = fair_bases(&mut *conn, &groups).await?;
    let frontiers = frontiers_of(&mut *conn, &prepared).await?;
    let mut inserted = 0;
    for chunk in prepared.chunks(chunk_rows(12, MAX_BINDS)) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO jobs (user_integration_id, task_type, payload, item_id, dedupe_key, \
             priority, state, attempts, max_attempts, run_at, fair_seq, created_at) ",
        );
        qb.push_values(chunk, |mut row, job| {
            row.push_bind(job.user_integration_id)
                .push_bind(job.task_type.clone())
                .push_bind(job.payload_text.clone())
                .push_bind(job.item_id.clone())
                .push_bind(job.dedupe_key.clone())
                .push_bind(job.priority)
                .push_bind("available")
                .push_bind(0_i32)
                .push_bind(job.max_attempts)
                .push_bind(job.run_at)
                .push_bind(job.tag(&bases, &frontiers))
                .push_bind(now);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        let accounts: Vec<i64> = chunk.iter().map(|j| j.user_integration_id).collect();
        inserted += qb
            .build()
            .execute(&mut *conn)
            .await
            .map_err(|e| crate::common::unknown_account(e, &accounts))?
            .rows_affected();
    }
    if usize::try_from(inserted).unwrap_or(usize::MAX) < prepared.len() {
        // Some keys were already pending: a running job with such a key may have read
        // its source before the change that asked for it again, so it runs once more.
        for job in prepared.iter().filter(|j| j.dedupe_key.is_some()) {
            sqlx::query(
                "UPDATE jobs SET rerun = 1
                 WHERE user_integration_id = ?1 AND dedupe_key = ?2
                   AND state = 'running' AND NOT rerun",
            )
            .bind(job.user_integration_id)
            .bind(&job.dedupe_key)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(inserted)
}

/// Writes `rows` (distinct account and external id) inside the caller's write
/// transaction, counting inserted, updated and unchanged items per job: what is stored
/// already is read in one query per account, the new items are inserted in multi-row
/// statements, and each changed item is updated on its own (rare: a re-sync that
/// found an edit).
async fn write_content_in(
    conn: &mut SqliteConnection,
    rows: &[ContentRow<'_>],
    now: &str,
    reports: &mut [CompletionReport],
) -> Result<(), StoreError> {
    let mut accounts: Vec<i64> = rows.iter().map(|r| r.account).collect();
    accounts.sort_unstable();
    accounts.dedup();
    type Stored = (String, bool, Option<DateTime<Utc>>, Option<String>);
    let mut existing: HashMap<i64, HashMap<String, Stored>> = HashMap::new();
    for account in accounts {
        let ids: Vec<&str> = rows
            .iter()
            .filter(|r| r.account == account)
            .map(|r| r.item.external_id.as_str())
            .collect();
        let stored = sqlx::query(
            "SELECT external_id, content, is_deleted, external_timestamp, version
             FROM user_integration_content
             WHERE user_integration_id = ?1
               AND external_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(account)
        .bind(json_array(&ids))
        .fetch_all(&mut *conn)
        .await?;
        let of_account = existing.entry(account).or_default();
        for row in &stored {
            of_account.insert(
                row.try_get("external_id")?,
                (
                    row.try_get("content")?,
                    row.try_get("is_deleted")?,
                    row.try_get("external_timestamp")?,
                    row.try_get("version")?,
                ),
            );
        }
    }
    let mut new_rows: Vec<&ContentRow<'_>> = Vec::new();
    for r in rows {
        let item = r.item;
        let Some((stored_text, is_deleted, stored_ts, stored_version)) = existing
            .get(&r.account)
            .and_then(|of_account| of_account.get(item.external_id.as_str()))
        else {
            new_rows.push(r);
            continue;
        };
        let same_content = stored_text == &item.text
            || serde_json::from_str::<Value>(stored_text)
                .is_ok_and(|stored| stored == *item.content);
        let same_ts = item.timestamp.is_none() || item.timestamp == *stored_ts;
        let same_version = item.version == *stored_version;
        if same_content && same_ts && same_version && !is_deleted {
            reports[r.job].unchanged += 1;
            continue;
        }
        sqlx::query(
            "UPDATE user_integration_content
             SET content = ?1, content_size = ?2,
                 external_timestamp = COALESCE(?3, external_timestamp),
                 updated_at = ?4, is_deleted = 0, deleted_at = NULL, version = ?7
             WHERE user_integration_id = ?5 AND external_id = ?6",
        )
        .bind(&item.text)
        .bind(item.size())
        .bind(item.timestamp.map(sqlite_time))
        .bind(now)
        .bind(r.account)
        .bind(&item.external_id)
        .bind(item.version.as_deref())
        .execute(&mut *conn)
        .await?;
        reports[r.job].updated += 1;
    }
    // The write transaction is the only writer: none of these can have appeared since
    // the read above, so every row inserts. A statement carries at most
    // `INSERT_BYTES` of documents (the bound copies of a whole batch of large
    // messages would otherwise all be alive at once).
    let max_rows = chunk_rows(11, MAX_BINDS);
    let mut chunks: Vec<&[&ContentRow<'_>]> = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in new_rows.iter().enumerate() {
        if i > start && (i - start >= max_rows || bytes + r.item.text.len() > INSERT_BYTES) {
            chunks.push(&new_rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += r.item.text.len();
    }
    if start < new_rows.len() {
        chunks.push(&new_rows[start..]);
    }
    for chunk in chunks {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO user_integration_content (user_id, user_integration_id, \
             integration_domain, external_id, external_timestamp, content, content_size, \
             created_at, updated_at, is_deleted, version) ",
        );
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.user_id)
                .push_bind(r.account)
                .push_bind(r.domain.as_ref())
                .push_bind(r.item.external_id.as_str())
                .push_bind(r.item.timestamp.map(sqlite_time))
                .push_bind(r.item.text.as_str())
                .push_bind(r.item.size())
                .push_bind(now)
                .push_bind(now)
                .push_bind(false)
                .push_bind(r.item.version.as_deref());
        });
        qb.build().execute(&mut *conn).await?;
        for r in chunk {
            reports[r.job].inserted += 1;
        }
    }
    Ok(())
}

/// Soft-deletes the account's live items `ids` inside the caller's write transaction;
/// returns how many were live.
/// The soft-delete of a list of ids. `+is_deleted` keeps it off
/// `user_integration_content_deleted_idx`, which would walk every live row of the
/// account; the unique (account, id) index finds each id.
const SQL_SOFT_DELETE_IDS: &str = "UPDATE user_integration_content
         SET is_deleted = 1, deleted_at = ?1, updated_at = ?1
         WHERE user_integration_id = ?2 AND +is_deleted = 0
           AND external_id IN (SELECT value FROM json_each(?3))";

async fn soft_delete_in(
    conn: &mut SqliteConnection,
    account: i64,
    ids: &[String],
    now: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(SQL_SOFT_DELETE_IDS)
        .bind(now)
        .bind(account)
        .bind(json_array(ids))
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// One row of `job_schedules`: domain, start interval, history task and interval,
/// attempts.
type Schedule = (String, i64, Option<String>, Option<i64>, i32);

/// The schedules the last tick recorded, read once per look for due accounts.
async fn schedules_in(conn: &mut SqliteConnection) -> Result<Vec<Schedule>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT integration_domain, start_every_ms, history_task, history_every_ms,
             max_attempts
         FROM job_schedules ORDER BY integration_domain",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Turns up to `limit` due accounts into jobs of `kind`, most overdue first, inside the
/// caller's write transaction; `scope` limits it to one account. Returns how many
/// accounts were due (at most `limit`) and how many jobs were inserted (an account with
/// one still pending gets none: its due time moves all the same).
async fn enqueue_due_in(
    conn: &mut SqliteConnection,
    schedules: &[Schedule],
    kind: DueKind,
    now: Millis,
    limit: u64,
    scope: Option<i64>,
) -> Result<(u64, u64), StoreError> {
    let (select_due, move_due, dedupe) = match kind {
        DueKind::Start => (
            "SELECT id, next_start_at FROM user_integrations
                 INDEXED BY user_integrations_start_due_idx
             WHERE integration_domain = ?1 AND status = 'active' AND next_start_at <= ?2
               AND (?3 IS NULL OR id = ?3)
             ORDER BY next_start_at LIMIT ?4",
            "UPDATE user_integrations SET next_start_at = ?1
             WHERE id IN (SELECT value FROM json_each(?2))",
            "start",
        ),
        DueKind::History => (
            "SELECT id, next_history_at FROM user_integrations
                 INDEXED BY user_integrations_history_due_idx
             WHERE integration_domain = ?1 AND status = 'active' AND next_history_at <= ?2
               AND (?3 IS NULL OR id = ?3)
             ORDER BY next_history_at LIMIT ?4",
            "UPDATE user_integrations SET next_history_at = ?1
             WHERE id IN (SELECT value FROM json_each(?2))",
            "history",
        ),
    };
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    // (due at, account, index of its schedule)
    let mut due: Vec<(i64, i64, usize)> = Vec::new();
    for (n, (domain, _, history_task, history_every, _)) in schedules.iter().enumerate() {
        if kind == DueKind::History && (history_task.is_none() || history_every.is_none()) {
            continue;
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as(select_due)
            .bind(domain)
            .bind(now)
            .bind(scope)
            .bind(limit_sql)
            .fetch_all(&mut *conn)
            .await?;
        due.extend(rows.into_iter().map(|(id, at)| (at, id, n)));
    }
    due.sort_unstable();
    due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    if due.is_empty() {
        return Ok((0, 0));
    }
    due.sort_unstable_by_key(|&(_, id, _)| id);
    let frontier: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM job_fair_frontier WHERE priority = 1")
            .fetch_optional(&mut *conn)
            .await?;
    let mut inserted = 0;
    for chunk in due.chunks(chunk_rows(12, MAX_BINDS)) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO jobs (user_integration_id, task_type, payload, item_id, dedupe_key, \
             priority, state, attempts, max_attempts, run_at, fair_seq, created_at) ",
        );
        qb.push_values(chunk, |mut row, &(_, id, n)| {
            let (_, _, history_task, _, max_attempts) = &schedules[n];
            let task_type = match kind {
                DueKind::Start => "start",
                DueKind::History => history_task.as_deref().unwrap_or_default(),
            };
            row.push_bind(id)
                .push_bind(task_type.to_owned())
                .push_bind("null")
                .push_bind(None::<String>)
                .push_bind(dedupe)
                .push_bind(1_i16)
                .push_bind("available")
                .push_bind(0_i32)
                .push_bind(*max_attempts)
                .push_bind(now)
                .push_bind(frontier.unwrap_or(0))
                .push_bind(now);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        inserted += qb.build().execute(&mut *conn).await?.rows_affected();
    }
    // Each account's next due time: one statement per schedule.
    for (n, (_, start_every, _, history_every, _)) in schedules.iter().enumerate() {
        let ids: Vec<i64> = due
            .iter()
            .filter(|&&(_, _, m)| m == n)
            .map(|&(_, id, _)| id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let every = match kind {
            DueKind::Start => *start_every,
            DueKind::History => history_every.unwrap_or(*start_every),
        };
        sqlx::query(move_due)
            .bind(now.saturating_add(every))
            .bind(Value::from(ids).to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok((u64::try_from(due.len()).unwrap_or(u64::MAX), inserted))
}

// ---- the dialect the shared flows (`crate::shared`) run on ----

type Db = Sqlite;
const BACKEND: Backend = Backend::Sqlite;

/// Timestamps are bound as fixed-width UTC text.
type Stamp = String;

fn stamp(dt: DateTime<Utc>) -> Stamp {
    sqlite_time(dt)
}

/// JSON is stored as its compact text.
fn json_param(value: &Value) -> String {
    value.to_string()
}

fn json_col(row: &sqlx::sqlite::SqliteRow, column: &str, what: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(column)?;
    value_from_text(&text, what)
}

/// A list of ids as one JSON array, for `json_each`.
fn ids_param(ids: &[i64]) -> String {
    Value::Array(ids.iter().map(|&i| Value::from(i)).collect()).to_string()
}

const SQL_UI_BY_IDS: &str = concat!(
    "SELECT ",
    crate::shared::ui_columns!(),
    " FROM user_integrations WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id"
);
// Writes run in `BEGIN IMMEDIATE` transactions: a read in one is already locked.
/// An account's stored items in an id range, compared byte by byte.
const SQL_STORED_ITEMS_BETWEEN: &str = "SELECT external_id, version FROM user_integration_content
     WHERE is_deleted = FALSE AND user_integration_id = $1
       AND external_id COLLATE BINARY >= $2 AND external_id COLLATE BINARY < $3
     ORDER BY external_id COLLATE BINARY";

const SQL_STATUS_FOR_UPDATE: &str = "SELECT status FROM user_integrations WHERE id = $1";
const SQL_JOB_STATE_FOR_UPDATE: &str = "SELECT state FROM jobs WHERE id = $1";
const SQL_REQUEUE_EXPIRED: &str = "UPDATE jobs SET
         state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'available' END,
         finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
         run_at = $1 + abs(random()) % ($4 * max(attempts, 1)),
         error_class = $2, last_error = $3,
         locked_by = NULL, lease_expires_at = NULL
     WHERE state = 'running' AND lease_expires_at < $1";
/// Takes an account's fairness counter at a priority forward by `$3` (never behind
/// the queue's virtual time) and returns where it ends.
const SQL_FAIR_COUNTERS: &str =
    "INSERT INTO job_fair_counters (user_integration_id, priority, next_seq)
     VALUES ($1, $2, COALESCE((SELECT seq FROM job_fair_frontier WHERE priority = $2), 0) + $3)
     ON CONFLICT (user_integration_id, priority) DO UPDATE SET
         next_seq = MAX(next_seq,
             COALESCE((SELECT seq FROM job_fair_frontier WHERE priority = $2), 0)) + $3
     RETURNING next_seq";

store_flows!(SqliteStore);

// ---- what only SQLite does: the fast paths behind the shared flows ----

/// What makes ids known (see `SqliteStore::known_ids`). CROSS JOIN keeps the ids
/// outside: with a plain JOIN SQLite may walk the account's live rows
/// (`user_integration_content_deleted_idx`) and scan the ids for each, a lookup as
/// slow as the account is large.
const SQL_KNOWN_IDS: &str = "SELECT c.external_id, c.version, 0 FROM json_each(?2) AS ids
             CROSS JOIN user_integration_content c
               ON c.user_integration_id = ?1 AND c.external_id = ids.value
                  AND c.is_deleted = 0
             UNION ALL
             SELECT ids.value, NULL, 1 FROM json_each(?2) AS ids
             WHERE EXISTS (SELECT 1 FROM jobs j
                           WHERE j.user_integration_id = ?1 AND j.item_id = ids.value
                             AND j.item_id IS NOT NULL
                             AND j.state IN ('available', 'running', 'failed', 'dead'))
                OR EXISTS (SELECT 1 FROM jobs j
                           WHERE j.user_integration_id = ?1 AND j.dedupe_key = 'item:' || ids.value
                             AND j.dedupe_key IS NOT NULL AND j.state IN ('available', 'running'))";

impl SqliteStore {
    /// What makes the ids of `lookup` (cleaned) known for the account (see
    /// `known_items`): their live stored rows with versions, and their pending or
    /// given-up fetches; one statement over `json_each`.
    async fn known_ids(
        &self,
        user_integration_id: i64,
        lookup: &[String],
    ) -> Result<Vec<crate::common::KnownRow>, StoreError> {
        Ok(sqlx::query_as(SQL_KNOWN_IDS)
            .bind(user_integration_id)
            .bind(json_array(lookup))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn enqueue_jobs(&self, jobs: &[NewJob], now: Millis) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = enqueue_in(&mut tx, jobs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One write transaction: the due accounts the ticks left become jobs, then the
    /// claim walks `jobs_claim_idx` and the virtual time moves to the largest tag taken.
    async fn claim_jobs(
        &self,
        worker: &str,
        limit: usize,
        lease_ms: i64,
        now: Millis,
        scope: Option<i64>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.write_tx().await?;
        if self.due.should_look(now, scope) {
            let wanted = u64::try_from(limit).unwrap_or(u64::MAX);
            let schedules = schedules_in(&mut tx).await?;
            let (due_starts, _) =
                enqueue_due_in(&mut tx, &schedules, DueKind::Start, now, wanted, scope).await?;
            let (due_histories, _) =
                enqueue_due_in(&mut tx, &schedules, DueKind::History, now, wanted, scope).await?;
            self.due
                .looked_for(now, scope, due_starts.max(due_histories) >= wanted);
        }
        let rows = sqlx::query(SQL_CLAIM)
            .bind(worker)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(scope)
            .fetch_all(&mut *tx)
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push((job_from_row(row)?, row.try_get::<i64, _>("fair_seq")?));
        }
        jobs.sort_by_key(|(j, seq)| (j.priority, *seq, j.id));
        // Advance the virtual time of each priority to the largest tag claimed.
        let mut frontier: HashMap<i16, i64> = HashMap::new();
        for (job, seq) in &jobs {
            let e = frontier.entry(job.priority).or_insert(*seq);
            *e = (*e).max(*seq);
        }
        for (priority, seq) in frontier {
            sqlx::query(
                "INSERT INTO job_fair_frontier (priority, seq) VALUES (?1, ?2)
                 ON CONFLICT (priority) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            )
            .bind(priority)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(jobs.into_iter().map(|(j, _)| j).collect())
    }

    /// Extends each lease in one write transaction; returns the ids whose lease was lost.
    async fn renew_held(
        &self,
        worker: &str,
        jobs: &[JobLease],
        until: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut lost = Vec::new();
        for lease in jobs {
            let done = sqlx::query(
                "UPDATE jobs SET lease_expires_at = ?1
                 WHERE id = ?2 AND attempts = ?3 AND state = 'running' AND locked_by = ?4",
            )
            .bind(until)
            .bind(lease.job_id)
            .bind(lease.attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                lost.push(lease.job_id);
            }
        }
        tx.commit().await?;
        Ok(lost)
    }

    /// The commit of a batch, in one write transaction; then the WAL upkeep.
    async fn commit_completions(
        &self,
        completions: &[JobCompletion],
        now: Millis,
    ) -> Result<Vec<CompletionReport>, StoreError> {
        let now_text = sqlite_time(ms_to_dt(now)?);
        // `last_synced_at` moves at most once a second when nothing else changes, which
        // keeps the account row out of most commits.
        let second_ago_text = sqlite_time(ms_to_dt(now.saturating_sub(1000))?);
        let order = completion_order(completions);
        let mut reports = blank_reports(completions);
        let mut tx = self.write_tx().await?;

        // 1. Fence: only jobs still running under the attempt they were claimed as, in
        // one statement for the whole batch. `id IN ids` walks the primary key;
        // `(id << 32) + attempts IN keys` checks the attempt against an ephemeral index
        // SQLite builds for the list.
        let leases = distinct_leases(completions);
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let keys: Vec<i64> = leases
            .iter()
            .map(|l| (l.job_id << 32) + i64::from(l.attempt))
            .collect();
        let rows: Vec<(i64, i32, i64)> = sqlx::query_as(
            "UPDATE jobs SET
                 state = CASE WHEN rerun THEN 'available' ELSE 'completed' END,
                 finished_at = CASE WHEN rerun THEN NULL ELSE ?1 END,
                 run_at = CASE WHEN rerun THEN ?1 ELSE run_at END,
                 max_attempts = CASE WHEN rerun THEN max_attempts + attempts
                                ELSE max_attempts END,
                 rerun = 0, locked_by = NULL, lease_expires_at = NULL
             WHERE id IN (SELECT value FROM json_each(?2))
               AND (id << 32) + attempts IN (SELECT value FROM json_each(?3))
               AND state = 'running'
             RETURNING id, attempts, user_integration_id",
        )
        .bind(now)
        .bind(ids_param(&ids))
        .bind(ids_param(&keys))
        .fetch_all(&mut *tx)
        .await?;
        let fenced = rows
            .into_iter()
            .map(|(id, a, uid)| ((id, a), uid))
            .collect();
        let applied = applied_completions(completions, &order, fenced, &mut reports)?;

        // 2. The accounts: sync state (patches merged in order), rotated credentials,
        //    last sync.
        for effects in account_effects(completions, &applied) {
            let mut sync_state_text: Option<String> = None;
            if let Some(patch) = &effects.patch {
                let stored: Option<String> =
                    sqlx::query_scalar("SELECT sync_state FROM user_integrations WHERE id = ?1")
                        .bind(effects.user_integration_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let mut state = match stored {
                    Some(text) => object_from_text(&text, "sync_state")?,
                    None => Map::new(),
                };
                merge_top_level(&mut state, patch);
                sync_state_text = Some(Value::Object(state).to_string());
            }
            let sealed = match effects.credentials {
                Some(creds) => Some(self.cipher.encrypt_credentials(creds)?),
                None => None,
            };
            let touched = sync_state_text.is_some() || sealed.is_some();
            sqlx::query(
                "UPDATE user_integrations
                 SET last_synced_at = ?1,
                     sync_state = COALESCE(?2, sync_state),
                     credentials = COALESCE(?3, credentials),
                     updated_at = CASE WHEN ?4 THEN ?1 ELSE updated_at END
                 WHERE id = ?5
                   AND (?4 OR last_synced_at IS NULL OR last_synced_at < ?6)",
            )
            .bind(&now_text)
            .bind(sync_state_text)
            .bind(sealed)
            .bind(touched)
            .bind(effects.user_integration_id)
            .bind(&second_ago_text)
            .execute(&mut *tx)
            .await?;
        }

        // 3. Content and children.
        apply_outputs_in(&mut tx, completions, &applied, now, &mut reports).await?;
        tx.commit().await?;
        if let Some(wal) = &self.wal {
            wal.after_commit().await;
        }
        Ok(reports)
    }

    async fn release_held(&self, worker: &str, jobs: &[JobLease]) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut released = 0;
        for lease in jobs {
            released += sqlx::query(
                "UPDATE jobs SET state = 'available', attempts = attempts - 1,
                     locked_by = NULL, lease_expires_at = NULL
                 WHERE id = ?1 AND attempts = ?2 AND state = 'running' AND locked_by = ?3",
            )
            .bind(lease.job_id)
            .bind(lease.attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(released)
    }

    /// One tick in one write transaction: the schedules, then the due accounts.
    async fn tick(
        &self,
        schedules: &[DomainSchedule],
        now: Millis,
    ) -> Result<ScheduleReport, StoreError> {
        let mut tx = self.write_tx().await?;
        // The schedules as this tick sees them: other domains' rows go.
        let domains: Vec<&str> = schedules.iter().map(|s| s.domain.as_str()).collect();
        sqlx::query(
            "DELETE FROM job_schedules
             WHERE integration_domain NOT IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_array(&domains))
        .execute(&mut *tx)
        .await?;
        for s in schedules {
            sqlx::query(
                "INSERT INTO job_schedules (integration_domain, start_every_ms, history_task,
                     history_every_ms, max_attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (integration_domain) DO UPDATE SET
                     start_every_ms = excluded.start_every_ms,
                     history_task = excluded.history_task,
                     history_every_ms = excluded.history_every_ms,
                     max_attempts = excluded.max_attempts
                 WHERE (start_every_ms, history_task, history_every_ms, max_attempts)
                     IS NOT (excluded.start_every_ms, excluded.history_task,
                             excluded.history_every_ms, excluded.max_attempts)",
            )
            .bind(&s.domain)
            .bind(s.start_every_ms)
            .bind(s.history.as_ref().map(|(t, _)| t.as_str()))
            .bind(s.history.as_ref().map(|(_, e)| *e))
            .bind(s.max_attempts)
            .execute(&mut *tx)
            .await?;
        }

        let limit = TICK_ENQUEUE_LIMIT;
        let schedules = schedules_in(&mut tx).await?;
        let (due_starts, starts) =
            enqueue_due_in(&mut tx, &schedules, DueKind::Start, now, limit, None).await?;
        let (due_histories, histories) =
            enqueue_due_in(&mut tx, &schedules, DueKind::History, now, limit, None).await?;
        let mut report = ScheduleReport {
            starts,
            histories,
            left_to_claims: 0,
        };
        if due_starts.max(due_histories) >= limit {
            report.left_to_claims = count_due(&mut *tx, now).await?;
            self.due.reopen();
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn prune(&self, before: Millis, limit: i64) -> Result<u64, StoreError> {
        // One statement, one short write lock: the oldest `limit` entries of the
        // pruning index, then their rows by primary key. Freed pages go to SQLite's
        // free list and are reused by the next inserts, so the file stops growing.
        let done = sqlx::query(SQL_PRUNE)
            .bind(before)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use tributary_sdk::Task;

    #[test]
    fn the_busy_timeout_is_restored_to_its_value() {
        assert_eq!(
            RESTORE_BUSY_TIMEOUT,
            format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        );
    }

    /// A connection opened read-only is marked and not kept; a writable one is left
    /// as it was (no transaction, the busy timeout back) and kept.
    #[tokio::test]
    async fn read_only_connections_are_marked_and_not_kept() {
        use sqlx::{ConnectOptions as _, Connection as _};
        // The store stays open, idle (an idle WAL connection holds no lock): dropping
        // it would close its connections in the background, and a closing connection
        // checkpoints, holding the lock the probe does not wait for.
        let (_store, guard) = crate::testing::sqlite_test_store().await;
        let options = || SqliteConnectOptions::new().filename(guard.path());
        let count = AtomicUsize::new(0);

        let mut ro = options().read_only(true).connect().await.unwrap();
        mark_read_only(&mut ro, &count).await.unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 1);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&mut ro)
            .await
            .unwrap();
        assert_eq!(n, 0, "reads work on a marked connection");
        assert!(!keep_connection(&mut ro, &count).await.unwrap());
        assert_eq!(count.load(Ordering::Relaxed), 0);
        ro.close().await.unwrap();

        let mut rw = options().connect().await.unwrap();
        mark_read_only(&mut rw, &count).await.unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 0);
        assert!(!rw.is_in_transaction());
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut rw)
            .await
            .unwrap();
        assert_eq!(timeout, i64::try_from(BUSY_TIMEOUT_MS).unwrap());
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut rw)
            .await
            .unwrap();
        assert_eq!(version, 0, "the probe's write is rolled back");
        sqlx::raw_sql("PRAGMA user_version = 7")
            .execute(&mut rw)
            .await
            .unwrap();
        mark_read_only(&mut rw, &count).await.unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut rw)
            .await
            .unwrap();
        assert_eq!(version, 7, "the probe's write is rolled back");
        assert!(keep_connection(&mut rw, &count).await.unwrap());
        rw.close().await.unwrap();
    }

    /// The lookups by id go through the unique (account, id) index, one search per id,
    /// and never walk the account's rows: SQLite's plan of each names the index and no
    /// scan of the content table.
    #[tokio::test]
    async fn lookups_by_id_search_the_unique_index() {
        let store = SqliteStore::connect("sqlite::memory:", Cipher::random_for_tests())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for sql in [SQL_KNOWN_IDS, SQL_SOFT_DELETE_IDS] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind("2026-01-01T00:00:00Z")
                    .bind(1_i64)
                    .bind("[\"a\"]")
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
            let content: Vec<&&str> = steps
                .iter()
                .filter(|step| step.contains("user_integration_content") || step.contains(" c "))
                .collect();
            assert!(!content.is_empty(), "no content step in {steps:?}");
            assert!(
                content.iter().all(|step| step.starts_with("SEARCH")
                    && step.contains("sqlite_autoindex_user_integration_content_1")
                    && step.contains("external_id=?")),
                "a lookup by id walks the content table: {steps:?}"
            );
        }
    }

    #[tokio::test]
    async fn in_memory_urls_work_with_write_transactions() {
        let store = SqliteStore::connect("sqlite::memory:", Cipher::random_for_tests())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let user = store.create_user("u").await.unwrap();
        let ui = store
            .create_user_integration(NewUserIntegration {
                user_id: user.id,
                integration_domain: "gmail".into(),
                credentials: Credentials::default(),
                settings: Map::new(),
            })
            .await
            .unwrap();
        let job = NewJob {
            user_integration_id: ui.id,
            task: Task::start(),
            priority: 1,
            dedupe_key: Some("start".into()),
            max_attempts: 3,
            run_at: 0,
        };
        // Concurrent writers on the single connection queue up instead of deadlocking.
        let jobs = [job];
        let (a, b) = tokio::join!(store.enqueue(&jobs, 0), store.claim("w", 5, 10, 0));
        a.unwrap();
        b.unwrap();
        assert_eq!(store.list_users().await.unwrap().len(), 1);
        // Another store on `sqlite::memory:` is another, empty database.
        let other = SqliteStore::connect("sqlite::memory:", Cipher::random_for_tests())
            .await
            .unwrap();
        other.migrate().await.unwrap();
        assert!(other.list_users().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn file_and_directory_are_created() {
        let dir = std::env::temp_dir().join(format!(
            "tributary-sqlite-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let path = dir.join("nested").join("db.sqlite");
        let url = format!("sqlite://{}", path.display());
        let store = crate::connect(&url, Cipher::random_for_tests())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(path.exists());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused() {
        let e = crate::connect("mysql://localhost/x", Cipher::random_for_tests())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::UnsupportedUrl(_)), "{e:?}");
    }
}

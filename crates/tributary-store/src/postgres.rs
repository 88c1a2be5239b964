//! The PostgreSQL backend: any number of processes share one database.
//!
//! - Jobs are claimed with `FOR UPDATE OF jobs SKIP LOCKED` in one statement, so
//!   concurrent claimers never wait for each other and never get the same job.
//! - Scheduled jobs: a due account is its own pending job. A tick (`schedule_due`) and
//!   the claims turn due accounts into `start` and history jobs in one statement each:
//!   the chosen account rows are locked in id order, checked again, their due time
//!   moved and their jobs inserted, so of several processes at once exactly one
//!   enqueues each due account. A tick waits for a row a commit holds (a busy
//!   backfill commits many times a second, and its account must still get its `start`
//!   on this tick); a claim skips it (`SKIP LOCKED`), the next look takes it. A tick
//!   takes at most `TICK_ENQUEUE_LIMIT` of a kind and stays short with any number of
//!   accounts. Commits touch the account row
//!   only when its sync state or credentials change, or at most once a second for
//!   `last_synced_at`.
//! - Batches bind arrays (`UNNEST`), so a page of outputs or children is one statement.
//! - Transactions take row locks in a fixed order (completions by account then job,
//!   content by external id, fairness counters by account then priority), and a
//!   transaction that PostgreSQL still aborts as a deadlock or serialization failure is
//!   retried a few times.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row};
use tributary_sdk::Credentials;

use crate::common::{
    ContentRow, DueGate, DueKind, FairGroup, account_effects, applied_completions, blank_reports,
    clean_text, completion_order, distinct_leases, ms_to_dt, prepare_jobs,
};
use crate::shared::store_flows;
use crate::{
    Backend, Cipher, CompletionReport, ContentCounts, ContentItem, ContentQuery, DomainSchedule,
    FailureAction, Job, JobCompletion, JobCount, JobFailure, JobFilter, JobLease, JobState, Millis,
    NewJob, NewUserIntegration, ScheduleReport, StoreError, TICK_ENQUEUE_LIMIT, User,
    UserIntegration, UserIntegrationStatus,
};

/// How often a transaction aborted by a deadlock or serialization failure is retried.
const TRANSIENT_RETRIES: u32 = 4;

/// Whether PostgreSQL aborted the transaction in a way that succeeds when retried
/// (deadlock detected, serialization failure).
fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Runs `$body` (an expression yielding `Result<_, StoreError>`) again when it fails
/// with a transient error, up to [`TRANSIENT_RETRIES`] times.
macro_rules! retry_transient {
    ($what:literal, $body:expr) => {{
        let mut attempt = 0;
        loop {
            match $body {
                Err(e) if is_transient(&e) && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(operation = $what, attempt, error = %e, "retrying a transaction");
                }
                other => break other,
            }
        }
    }};
}

/// Claims in (priority, fair_seq, id) order and advances the fairness frontier;
/// `$1` worker, `$2` lease end, `$3` now, `$4` limit.
const SQL_CLAIM: &str = concat!(
    "WITH picked AS ( \
         SELECT j.id FROM jobs j \
         WHERE j.state = 'available' AND j.run_at <= $3 \
           AND j.user_integration_id NOT IN ( \
               SELECT ui.id FROM user_integrations ui WHERE ui.status <> 'active') \
           AND ($5::bigint IS NULL OR j.user_integration_id = $5) \
         ORDER BY j.priority, j.fair_seq, j.id \
         LIMIT $4 \
         FOR UPDATE OF j SKIP LOCKED \
     ), claimed AS ( \
         UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, locked_by = $1, \
             lease_expires_at = $2 \
         FROM picked WHERE jobs.id = picked.id \
         RETURNING jobs.* \
     ), frontier AS ( \
         INSERT INTO job_fair_frontier (priority, seq) \
         SELECT priority, MAX(fair_seq) FROM claimed GROUP BY priority ORDER BY priority \
         ON CONFLICT (priority) DO UPDATE \
             SET seq = GREATEST(job_fair_frontier.seq, excluded.seq) \
     ) \
     SELECT ",
    crate::shared::job_columns!(),
    " FROM claimed ORDER BY priority, fair_seq, id"
);

/// Turns up to `$2` due accounts into jobs of one kind, most overdue first: `$1` now,
/// `$3` the one account to look at, if any. Each domain's due accounts come from its
/// range of the due index (`LATERAL`); the chosen rows are locked in id order and
/// checked again, so of several ticks and claims at once exactly one enqueues each
/// account. A tick waits for a row a commit holds (its account must still get its job
/// on this tick); a claim skips it (`SKIP LOCKED`: the next look takes it). Returns how
/// many accounts were due (up to `$2`) and how many jobs were inserted (an account with
/// one still pending gets none: its due time moves all the same).
macro_rules! sql_enqueue_due {
    ($next:literal, $every:literal, $task:literal, $dedupe:literal, $has:literal,
     $lock:literal) => {
        concat!(
            "WITH due AS ( \
                 SELECT a.id, a.",
            $next,
            " AS due_at, s.",
            $every,
            " AS every_ms, \
                     ",
            $task,
            " AS task_type, s.max_attempts \
                 FROM job_schedules s \
                 CROSS JOIN LATERAL ( \
                     SELECT ui.id, ui.",
            $next,
            " FROM user_integrations ui \
                     WHERE ui.integration_domain = s.integration_domain \
                       AND ui.status = 'active' AND ui.",
            $next,
            " <= $1 \
                       AND ($3::bigint IS NULL OR ui.id = $3) \
                     ORDER BY ui.",
            $next,
            " LIMIT $2) a \
                 WHERE ",
            $has,
            " \
                 ORDER BY a.",
            $next,
            ", a.id LIMIT $2 \
             ), locked AS ( \
                 SELECT ui.id, due.every_ms, due.task_type, due.max_attempts \
                 FROM user_integrations ui JOIN due ON due.id = ui.id \
                 WHERE ui.status = 'active' AND ui.",
            $next,
            " <= $1 \
                 ORDER BY ui.id \
                 FOR NO KEY UPDATE OF ui ",
            $lock,
            " \
             ), moved AS ( \
                 UPDATE user_integrations ui SET ",
            $next,
            " = $1 + locked.every_ms \
                 FROM locked WHERE ui.id = locked.id \
                 RETURNING ui.id, locked.task_type, locked.max_attempts \
             ), ins AS ( \
                 INSERT INTO jobs (user_integration_id, task_type, payload, item_id, \
                     dedupe_key, priority, state, attempts, max_attempts, run_at, fair_seq, \
                     created_at) \
                 SELECT moved.id, moved.task_type, 'null'::jsonb, NULL, '",
            $dedupe,
            "', 1, \
                     'available', 0, moved.max_attempts, $1, \
                     COALESCE((SELECT seq FROM job_fair_frontier WHERE priority = 1), 0), $1 \
                 FROM moved ORDER BY moved.id \
                 ON CONFLICT DO NOTHING \
                 RETURNING 1 \
             ) \
             SELECT (SELECT COUNT(*) FROM due) AS due, (SELECT COUNT(*) FROM ins) AS inserted"
        )
    };
}
const SQL_TICK_STARTS: &str = sql_enqueue_due!(
    "next_start_at",
    "start_every_ms",
    "'start'",
    "start",
    "TRUE",
    ""
);
const SQL_TICK_HISTORIES: &str = sql_enqueue_due!(
    "next_history_at",
    "history_every_ms",
    "s.history_task",
    "history",
    "s.history_task IS NOT NULL AND s.history_every_ms IS NOT NULL",
    ""
);
const SQL_CLAIM_STARTS: &str = sql_enqueue_due!(
    "next_start_at",
    "start_every_ms",
    "'start'",
    "start",
    "TRUE",
    "SKIP LOCKED"
);
const SQL_CLAIM_HISTORIES: &str = sql_enqueue_due!(
    "next_history_at",
    "history_every_ms",
    "s.history_task",
    "history",
    "s.history_task IS NOT NULL AND s.history_every_ms IS NOT NULL",
    "SKIP LOCKED"
);
/// Deletes the oldest `$2` completed jobs finished before `$1`. The batch is chosen
/// from the partial index `jobs_completed_idx` in `finished_at` order (an index scan
/// that stops at the limit) and locked `SKIP LOCKED`, so concurrent pruners take
/// different rows and never wait for each other; the rows are then deleted by primary
/// key (`= ANY` of the chosen ids: no join for the planner to get wrong). A locked row
/// cannot change state before the delete, so the state is not checked twice.
const SQL_PRUNE: &str = "DELETE FROM jobs \
     WHERE id = ANY(ARRAY( \
         SELECT id FROM jobs \
         WHERE state = 'completed' AND finished_at < $1 \
         ORDER BY finished_at LIMIT $2 \
         FOR UPDATE SKIP LOCKED))";

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    cipher: Cipher,
    stats: Arc<StatsRefresh>,
    vacuum: Arc<QueueVacuum>,
    due: Arc<DueGate>,
}

/// Vacuums the queue's tables from here once pruning deleted enough rows, when the
/// server's autovacuum does not (it may be off, as on the project's own machine).
///
/// A deleted row's space, and that of a row's old versions, is reused only after
/// `VACUUM` has seen it: without one, `jobs` and its indexes grow by every job ever run
/// even though pruning keeps the row count flat, and `user_integrations` by every due
/// time a scheduled job moved (thousands of versions of each account's row a day). So
/// rows deleted by [`crate::QueueAdmin::prune_completed`] are counted, and once [`VACUUM_FIRST`]
/// were deleted, then a fifth of the table's rows (autovacuum's own default share),
/// `jobs`, `user_integrations` and the fairness tables are vacuumed in the background
/// (the churn of all of them follows the jobs run). It is the plain kind: reads and
/// writes go on meanwhile (its lock only excludes other vacuums, `ANALYZE` and DDL on
/// the table, and it waits for those rather than skip: a vacuum skipped while the
/// store's own `ANALYZE` ran would leave the next one 10,000 deletions away), and
/// `TRUNCATE false` keeps it from taking the exclusive lock that shortening a file
/// needs (the freed pages are reused instead).
#[derive(Debug, Default)]
struct QueueVacuum {
    deleted: AtomicU64,
    next: AtomicU64,
    running: AtomicBool,
}

/// The first vacuum comes after this many pruned rows, and later ones at least this
/// many apart.
const VACUUM_FIRST: u64 = 10_000;

/// Whether the server vacuums the tables itself: autovacuum on, with the statistics
/// it decides from, and not disabled for `jobs`.
const SQL_AUTOVACUUM_ON: &str = "SELECT current_setting('autovacuum')::boolean \
     AND current_setting('track_counts')::boolean \
     AND COALESCE((SELECT o.option_value::boolean \
                   FROM pg_class c, pg_options_to_table(c.reloptions) o \
                   WHERE c.oid = 'jobs'::regclass AND o.option_name = 'autovacuum_enabled'), \
                  TRUE)";

/// The vacuum itself (`VACUUM` cannot run in a transaction or as a prepared
/// statement: it is sent as a simple query).
const SQL_VACUUM_QUEUE: &str =
    "VACUUM (TRUNCATE false) jobs, user_integrations, job_fair_counters, job_fair_frontier";

impl QueueVacuum {
    /// Counts `rows` pruned; vacuums in the background when due.
    fn deleted(self: &Arc<Self>, pool: &PgPool, rows: u64) {
        if rows == 0 {
            return;
        }
        let deleted = self.deleted.fetch_add(rows, Ordering::Relaxed) + rows;
        let next = self.next.load(Ordering::Relaxed).max(VACUUM_FIRST);
        if deleted < next || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next
            .store(deleted.saturating_add(VACUUM_FIRST), Ordering::Relaxed);
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            match this.vacuum(&pool).await {
                Ok(rows) => {
                    let every = (rows / 5).max(VACUUM_FIRST);
                    this.next
                        .store(deleted.saturating_add(every), Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e,
                        "VACUUM of the queue's tables failed; tried again 10,000 pruned rows later"
                    );
                }
            }
            this.running.store(false, Ordering::Release);
        });
    }

    /// Vacuums unless the server does; returns the estimated rows of `jobs`.
    async fn vacuum(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let server_does: bool = sqlx::query_scalar(SQL_AUTOVACUUM_ON)
            .fetch_one(pool)
            .await?;
        if !server_does {
            sqlx::raw_sql(SQL_VACUUM_QUEUE).execute(pool).await?;
        }
        let rows: f64 = sqlx::query_scalar(
            "SELECT reltuples::float8 FROM pg_class WHERE oid = 'jobs'::regclass",
        )
        .fetch_one(pool)
        .await?;
        // `reltuples` is -1 for a table never vacuumed or analyzed.
        Ok(if rows > 0.0 { rows as u64 } else { 0 })
    }
}

/// Keeps the planner's statistics of the growing tables fresh from here, whatever the
/// server's autovacuum does (it may be off, and runs once a minute at best).
///
/// Without statistics PostgreSQL takes a table for a few hundred rows. On a queue grown
/// to 100,000 jobs it then claimed by sorting every available job (90 ms per claim), and
/// `content_exists` scanned an account's whole content instead of its unique index. So
/// rows written are counted, and `ANALYZE` runs in the background once 5,000 were
/// written, then each time the count doubles (at most every 50,000 rows later on): a
/// handful of runs per backfill, each sampling at most 30,000 rows.
#[derive(Debug, Default)]
struct StatsRefresh {
    written: AtomicU64,
    next: AtomicU64,
    running: AtomicBool,
}

/// The refresh: the columns the store's queries filter, join and sort on. Sampling the
/// content column too would decompress some 30,000 documents on each run (it made the
/// five refreshes of a 10,000-message backfill cost the server 0.6 s).
const SQL_ANALYZE: &str = "ANALYZE jobs, job_schedules, \
     user_integration_content (user_integration_id, external_id, is_deleted, updated_at), \
     user_integrations (user_id, integration_domain, status, next_start_at, next_history_at)";

/// The first refresh comes after this many written rows.
const ANALYZE_FIRST: u64 = 5_000;
/// Later refreshes come at least this often (in written rows).
const ANALYZE_EVERY_AT_MOST: u64 = 50_000;

impl StatsRefresh {
    /// Counts `rows` written; runs `ANALYZE` in the background when due.
    fn wrote(self: &Arc<Self>, pool: &PgPool, rows: u64) {
        if rows == 0 {
            return;
        }
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        let next = self.next.load(Ordering::Relaxed).max(ANALYZE_FIRST);
        if written < next || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next.store(
            written + written.min(ANALYZE_EVERY_AT_MOST),
            Ordering::Relaxed,
        );
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::query(SQL_ANALYZE).execute(&pool).await {
                tracing::debug!(error = %e, "ANALYZE failed; the planner keeps its old statistics");
            }
            this.running.store(false, Ordering::Release);
        });
    }
}

/// The migrations of the PostgreSQL schema, embedded in the binary.
pub fn migrator() -> Migrator {
    crate::shared::migrations!("postgres")
}

impl PgStore {
    /// Connects to the PostgreSQL database at `url` (`postgres://...`). Does not migrate.
    ///
    /// Sessions run with `jit = off`: the queue's statements touch a few hundred rows
    /// through indexes, but their cost estimates cross PostgreSQL's JIT threshold, and
    /// compiling them took 150–500 ms per statement (see BENCHMARKS.md).
    pub async fn connect(url: &str, cipher: Cipher) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(PgStore {
            due: Arc::default(),
            pool,
            cipher,
            stats: Arc::default(),
            vacuum: Arc::default(),
        })
    }

    /// The connection pool (for tools and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    // ---- what only PostgreSQL does: the fast paths behind the shared flows ----

    /// What makes the ids of `lookup` (cleaned) known for the account (see
    /// `known_items`): their live stored rows with versions, and their pending or
    /// given-up fetches.
    async fn known_ids(
        &self,
        user_integration_id: i64,
        lookup: &[String],
    ) -> Result<Vec<crate::common::KnownRow>, StoreError> {
        let keys: Vec<String> = lookup
            .iter()
            .map(|id| crate::DedupeKey::item(id).into())
            .collect();
        // Three index lookups by `= ANY`: the planner cannot turn them into a hash of
        // the account's whole content (as it did with `EXISTS` per id), so a call costs
        // the ids asked about, however large the mailbox.
        Ok(sqlx::query_as(
            "SELECT c.external_id, c.version, FALSE FROM user_integration_content c
             WHERE c.user_integration_id = $1 AND c.external_id = ANY($2::text[])
               AND NOT c.is_deleted
             UNION ALL
             SELECT j.item_id, NULL, TRUE FROM jobs j
             WHERE j.user_integration_id = $1 AND j.item_id = ANY($2::text[])
               AND j.item_id IS NOT NULL AND j.state IN ('available', 'running', 'failed', 'dead')
             UNION ALL
             SELECT substr(j.dedupe_key, 6), NULL, TRUE FROM jobs j
             WHERE j.user_integration_id = $1 AND j.dedupe_key = ANY($3::text[])
               AND j.state IN ('available', 'running')",
        )
        .bind(user_integration_id)
        .bind(lookup)
        .bind(&keys)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn enqueue_jobs(&self, jobs: &[NewJob], now: Millis) -> Result<u64, StoreError> {
        let inserted = retry_transient!(
            "enqueue",
            async {
                let mut tx = self.pool.begin().await?;
                let n = enqueue_in(&mut tx, jobs, now).await?;
                tx.commit().await?;
                Ok(n)
            }
            .await
        )?;
        self.stats.wrote(&self.pool, inserted);
        Ok(inserted)
    }

    /// The due accounts the ticks left become jobs, then one `SKIP LOCKED` statement
    /// claims and moves the virtual time.
    async fn claim_jobs(
        &self,
        worker: &str,
        limit: usize,
        lease_ms: i64,
        now: Millis,
        scope: Option<i64>,
    ) -> Result<Vec<Job>, StoreError> {
        retry_transient!(
            "enqueue due accounts",
            self.enqueue_due_for_claim(limit, now, scope).await
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        retry_transient!(
            "claim",
            async {
                let rows = sqlx::query(SQL_CLAIM)
                    .bind(worker)
                    .bind(now.saturating_add(lease_ms))
                    .bind(now)
                    .bind(limit)
                    .bind(scope)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()
            }
            .await
        )
    }

    /// Extends every lease in one statement; returns the ids whose lease was lost.
    async fn renew_held(
        &self,
        worker: &str,
        jobs: &[JobLease],
        until: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<i64> = jobs.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = jobs.iter().map(|l| l.attempt).collect();
        let renewed: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $1
             FROM UNNEST($2::bigint[], $3::int[]) AS l(id, attempt)
             WHERE jobs.id = l.id AND jobs.attempts = l.attempt
               AND jobs.state = 'running' AND jobs.locked_by = $4
             RETURNING jobs.id",
        )
        .bind(until)
        .bind(&ids)
        .bind(&attempts)
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        let renewed: HashSet<i64> = renewed.into_iter().collect();
        Ok(ids.into_iter().filter(|id| !renewed.contains(id)).collect())
    }

    /// The commit of a batch, retried when PostgreSQL aborts it as a deadlock.
    async fn commit_completions(
        &self,
        completions: &[JobCompletion],
        now: Millis,
    ) -> Result<Vec<CompletionReport>, StoreError> {
        let reports = retry_transient!(
            "complete_jobs",
            self.complete_jobs_once(completions, now).await
        )?;
        let written = reports
            .iter()
            .map(|r| 1 + r.inserted + r.updated + r.enqueued)
            .sum();
        self.stats.wrote(&self.pool, written);
        Ok(reports)
    }

    async fn release_held(&self, worker: &str, jobs: &[JobLease]) -> Result<u64, StoreError> {
        let ids: Vec<i64> = jobs.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = jobs.iter().map(|l| l.attempt).collect();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'available', attempts = jobs.attempts - 1,
                 locked_by = NULL, lease_expires_at = NULL
             FROM UNNEST($1::bigint[], $2::int[]) AS l(id, attempt)
             WHERE jobs.id = l.id AND jobs.attempts = l.attempt
               AND jobs.state = 'running' AND jobs.locked_by = $3",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn tick(
        &self,
        schedules: &[DomainSchedule],
        now: Millis,
    ) -> Result<ScheduleReport, StoreError> {
        retry_transient!("schedule_due", self.schedule_due_once(schedules, now).await)
    }

    async fn prune(&self, before: Millis, limit: i64) -> Result<u64, StoreError> {
        let deleted = retry_transient!(
            "prune_completed",
            sqlx::query(SQL_PRUNE)
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from)
        )?
        .rows_affected();
        self.vacuum.deleted(&self.pool, deleted);
        Ok(deleted)
    }

    async fn complete_jobs_once(
        &self,
        completions: &[JobCompletion],
        now: Millis,
    ) -> Result<Vec<CompletionReport>, StoreError> {
        let now_dt = ms_to_dt(now)?;
        let order = completion_order(completions);
        let mut reports = blank_reports(completions);
        let mut tx = self.pool.begin().await?;

        // 1. Fence every job in one statement: only jobs still running under the
        //    attempt they were claimed as are completed.
        let leases = distinct_leases(completions);
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
        let rows: Vec<(i64, i32, i64)> = sqlx::query_as(
            "UPDATE jobs SET
                 state = CASE WHEN jobs.rerun THEN 'available' ELSE 'completed' END,
                 finished_at = CASE WHEN jobs.rerun THEN NULL ELSE $1 END,
                 run_at = CASE WHEN jobs.rerun THEN $1 ELSE jobs.run_at END,
                 max_attempts = CASE WHEN jobs.rerun THEN jobs.max_attempts + jobs.attempts
                                ELSE jobs.max_attempts END,
                 rerun = FALSE, locked_by = NULL, lease_expires_at = NULL
             FROM UNNEST($2::bigint[], $3::int[]) AS l(id, attempt)
             WHERE jobs.id = l.id AND jobs.attempts = l.attempt AND jobs.state = 'running'
             RETURNING jobs.id, l.attempt, jobs.user_integration_id",
        )
        .bind(now)
        .bind(&ids)
        .bind(&attempts)
        .fetch_all(&mut *tx)
        .await?;
        let fenced = rows
            .into_iter()
            .map(|(id, a, uid)| ((id, a), uid))
            .collect();
        let applied = applied_completions(completions, &order, fenced, &mut reports)?;
        if applied.is_empty() {
            tx.commit().await?;
            return Ok(reports);
        }

        // 2. The accounts: lock their rows in id order, then set sync state, rotated
        //    credentials and the last sync in one statement.
        let effects = account_effects(completions, &applied);
        let accounts: Vec<i64> = effects.iter().map(|e| e.user_integration_id).collect();
        sqlx::query(
            "SELECT id FROM user_integrations WHERE id = ANY($1) ORDER BY id
             FOR NO KEY UPDATE",
        )
        .bind(&accounts)
        .fetch_all(&mut *tx)
        .await?;
        let mut patches: Vec<Option<String>> = Vec::with_capacity(effects.len());
        let mut sealed: Vec<Option<Vec<u8>>> = Vec::with_capacity(effects.len());
        for e in &effects {
            patches.push(
                e.patch
                    .as_ref()
                    .map(|p| Value::Object(p.clone()).to_string()),
            );
            sealed.push(match e.credentials {
                Some(creds) => Some(self.cipher.encrypt_credentials(creds)?),
                None => None,
            });
        }
        sqlx::query(
            "UPDATE user_integrations ui
             SET last_synced_at = $1,
                 sync_state = CASE WHEN u.patch IS NULL THEN ui.sync_state
                                   ELSE ui.sync_state || u.patch::jsonb END,
                 credentials = COALESCE(u.credentials, ui.credentials),
                 updated_at = CASE WHEN u.patch IS NULL AND u.credentials IS NULL
                                   THEN ui.updated_at ELSE $1 END
             FROM UNNEST($2::bigint[], $3::text[], $4::bytea[]) AS u(id, patch, credentials)
             WHERE ui.id = u.id
               AND (u.patch IS NOT NULL OR u.credentials IS NOT NULL
                    OR ui.last_synced_at IS NULL
                    OR ui.last_synced_at < $1 - interval '1 second')",
        )
        .bind(now_dt)
        .bind(&accounts)
        .bind(&patches)
        .bind(&sealed)
        .execute(&mut *tx)
        .await?;

        // 3. Content and children: the content of consecutive jobs goes in one upsert
        //    statement (`write_content_in`).
        apply_outputs_in(&mut tx, completions, &applied, now, &mut reports).await?;
        tx.commit().await?;
        Ok(reports)
    }

    async fn schedule_due_once(
        &self,
        schedules: &[DomainSchedule],
        now: Millis,
    ) -> Result<ScheduleReport, StoreError> {
        // The schedules as this tick sees them: other domains' rows go.
        let domains: Vec<&str> = schedules.iter().map(|s| s.domain.as_str()).collect();
        let every: Vec<i64> = schedules.iter().map(|s| s.start_every_ms).collect();
        let history_tasks: Vec<Option<&str>> = schedules
            .iter()
            .map(|s| s.history.as_ref().map(|(t, _)| t.as_str()))
            .collect();
        let history_every: Vec<Option<i64>> = schedules
            .iter()
            .map(|s| s.history.as_ref().map(|(_, e)| *e))
            .collect();
        let attempts: Vec<i32> = schedules.iter().map(|s| s.max_attempts).collect();
        sqlx::query(
            "WITH d AS (
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[],
                                      $5::int[])
                     AS d(domain, start_every_ms, history_task, history_every_ms,
                          max_attempts)
             ), gone AS (
                 DELETE FROM job_schedules WHERE integration_domain <> ALL($1)
             )
             INSERT INTO job_schedules (integration_domain, start_every_ms, history_task,
                 history_every_ms, max_attempts)
             SELECT * FROM d ORDER BY domain
             ON CONFLICT (integration_domain) DO UPDATE SET
                 start_every_ms = excluded.start_every_ms,
                 history_task = excluded.history_task,
                 history_every_ms = excluded.history_every_ms,
                 max_attempts = excluded.max_attempts
             WHERE (job_schedules.start_every_ms, job_schedules.history_task,
                    job_schedules.history_every_ms, job_schedules.max_attempts)
                 IS DISTINCT FROM (excluded.start_every_ms, excluded.history_task,
                                   excluded.history_every_ms, excluded.max_attempts)",
        )
        .bind(&domains)
        .bind(&every)
        .bind(&history_tasks)
        .bind(&history_every)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;

        let limit = TICK_ENQUEUE_LIMIT;
        let (due_starts, starts) =
            enqueue_due(&self.pool, true, DueKind::Start, now, limit, None).await?;
        let (due_histories, histories) =
            enqueue_due(&self.pool, true, DueKind::History, now, limit, None).await?;
        let mut report = ScheduleReport {
            starts,
            histories,
            left_to_claims: 0,
        };
        if due_starts.max(due_histories) >= limit {
            report.left_to_claims = count_due(&self.pool, now).await?;
            self.due.reopen();
        }
        self.stats.wrote(&self.pool, starts + histories);
        Ok(report)
    }

    /// Turns due accounts into jobs before a claim of `limit` (see [`Store::claim`]).
    async fn enqueue_due_for_claim(
        &self,
        limit: usize,
        now: Millis,
        scope: Option<i64>,
    ) -> Result<(), StoreError> {
        if !self.due.should_look(now, scope) {
            return Ok(());
        }
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        let (due_starts, starts) =
            enqueue_due(&self.pool, false, DueKind::Start, now, limit, scope).await?;
        let (due_histories, histories) =
            enqueue_due(&self.pool, false, DueKind::History, now, limit, scope).await?;
        self.due
            .looked_for(now, scope, due_starts.max(due_histories) >= limit);
        self.stats.wrote(&self.pool, starts + histories);
        Ok(())
    }
}

/// Turns up to `limit` due accounts into jobs of `kind` (see `sql_enqueue_due!`), for a
/// tick (`by_tick`, waiting for locked rows) or a claim. Returns how many accounts were
/// due (at most `limit`) and how many jobs were inserted.
async fn enqueue_due<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    by_tick: bool,
    kind: DueKind,
    now: Millis,
    limit: u64,
    scope: Option<i64>,
) -> Result<(u64, u64), StoreError> {
    let sql = match (kind, by_tick) {
        (DueKind::Start, true) => SQL_TICK_STARTS,
        (DueKind::History, true) => SQL_TICK_HISTORIES,
        (DueKind::Start, false) => SQL_CLAIM_STARTS,
        (DueKind::History, false) => SQL_CLAIM_HISTORIES,
    };
    let (due, inserted): (i64, i64) = sqlx::query_as(sql)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(scope)
        .fetch_one(executor)
        .await?;
    Ok((
        u64::try_from(due).unwrap_or(0),
        u64::try_from(inserted).unwrap_or(0),
    ))
}

/// Enqueues `jobs` inside the caller's transaction (see `enqueue`).
async fn enqueue_in(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    now: Millis,
) -> Result<u64, StoreError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let (prepared, groups) = prepare_jobs(jobs);
    let accounts: Vec<i64> = groups.iter().map(|(g, _)| g.user_integration_id).collect();
    let bases = fair_bases(&mut *conn, &groups).await?;
    let frontiers = frontiers_of(&mut *conn, &prepared).await?;
    let mut uid = Vec::with_capacity(prepared.len());
    let mut task_type = Vec::with_capacity(prepared.len());
    let mut payload = Vec::with_capacity(prepared.len());
    let mut item = Vec::with_capacity(prepared.len());
    let mut dedupe = Vec::with_capacity(prepared.len());
    let mut priority = Vec::with_capacity(prepared.len());
    let mut max_attempts = Vec::with_capacity(prepared.len());
    let mut run_at = Vec::with_capacity(prepared.len());
    let mut seq = Vec::with_capacity(prepared.len());
    for job in prepared {
        seq.push(job.tag(&bases, &frontiers));
        uid.push(job.user_integration_id);
        task_type.push(job.task_type);
        payload.push(job.payload_text);
        item.push(job.item_id);
        dedupe.push(job.dedupe_key);
        priority.push(job.priority);
        max_attempts.push(job.max_attempts);
        run_at.push(job.run_at);
    }
    let done = sqlx::query(
        "INSERT INTO jobs (user_integration_id, task_type, payload, item_id, dedupe_key,
             priority, state, attempts, max_attempts, run_at, fair_seq, created_at)
         SELECT u.uid, u.task_type, u.payload::jsonb, u.item, u.dedupe, u.priority,
             'available', 0, u.max_attempts, u.run_at, u.seq, $10
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::smallint[], $7::int[], $8::bigint[], $9::bigint[])
             WITH ORDINALITY
             AS u(uid, task_type, payload, item, dedupe, priority, max_attempts, run_at, seq, ord)
         ORDER BY u.ord
         ON CONFLICT DO NOTHING",
    )
    .bind(&uid)
    .bind(&task_type)
    .bind(&payload)
    .bind(&item)
    .bind(&dedupe)
    .bind(&priority)
    .bind(&max_attempts)
    .bind(&run_at)
    .bind(&seq)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| crate::common::unknown_account(e, &accounts))?;
    let inserted = done.rows_affected();
    if usize::try_from(inserted).unwrap_or(usize::MAX) < uid.len() {
        // Some keys were already pending: a running job with such a key may have read
        // its source before the change that asked for it again, so it runs once more.
        sqlx::query(
            "UPDATE jobs SET rerun = TRUE
             FROM UNNEST($1::bigint[], $2::text[]) AS k(uid, dedupe)
             WHERE jobs.user_integration_id = k.uid AND jobs.dedupe_key = k.dedupe
               AND jobs.state = 'running' AND NOT jobs.rerun",
        )
        .bind(&uid)
        .bind(&dedupe)
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

/// Upserts `rows` (distinct account and external id) in one statement inside the
/// caller's transaction, counting inserted, updated and unchanged items per job.
async fn write_content_in(
    conn: &mut PgConnection,
    rows: &[ContentRow<'_>],
    now: &DateTime<Utc>,
    reports: &mut [CompletionReport],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = rows.iter().map(|r| r.user_id).collect();
    let accounts: Vec<i64> = rows.iter().map(|r| r.account).collect();
    let domains: Vec<&str> = rows.iter().map(|r| r.domain.as_ref()).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.item.external_id.as_str()).collect();
    let stamps: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.item.timestamp).collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.item.text.as_str()).collect();
    let sizes: Vec<i64> = rows.iter().map(|r| r.item.size()).collect();
    let versions: Vec<Option<&str>> = rows.iter().map(|r| r.item.version.as_deref()).collect();
    // Rows the WHERE of DO UPDATE rejects (same content) are not returned. Rows are
    // written in (account, id) order: a fixed lock order across transactions.
    let written: Vec<(i64, String, bool)> = sqlx::query_as(
        "INSERT INTO user_integration_content AS c (user_id, user_integration_id,
             integration_domain, external_id, external_timestamp, content, content_size,
             created_at, updated_at, is_deleted, version)
         SELECT u.user_id, u.account, u.domain, u.external_id, u.stamp, u.body::jsonb,
             u.size, $8, $8, FALSE, u.version
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                     $5::timestamptz[], $6::text[], $7::bigint[], $9::text[])
             AS u(user_id, account, domain, external_id, stamp, body, size, version)
         ORDER BY u.account, u.external_id
         ON CONFLICT (user_integration_id, external_id) DO UPDATE SET
             content = excluded.content,
             content_size = excluded.content_size,
             external_timestamp = COALESCE(excluded.external_timestamp,
                                           c.external_timestamp),
             updated_at = excluded.updated_at,
             is_deleted = FALSE,
             deleted_at = NULL,
             version = excluded.version
         WHERE c.is_deleted
            OR c.content IS DISTINCT FROM excluded.content
            OR c.version IS DISTINCT FROM excluded.version
            OR (excluded.external_timestamp IS NOT NULL
                AND excluded.external_timestamp IS DISTINCT FROM c.external_timestamp)
         RETURNING c.user_integration_id, c.external_id, (xmax = 0)",
    )
    .bind(&users)
    .bind(&accounts)
    .bind(&domains)
    .bind(&ids)
    .bind(&stamps)
    .bind(&texts)
    .bind(&sizes)
    .bind(now)
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await?;
    let job_of: HashMap<(i64, &str), usize> = rows
        .iter()
        .map(|r| ((r.account, r.item.external_id.as_str()), r.job))
        .collect();
    for r in rows {
        reports[r.job].unchanged += 1;
    }
    for (account, id, inserted) in &written {
        let Some(&job) = job_of.get(&(*account, id.as_str())) else {
            continue;
        };
        let report = &mut reports[job];
        report.unchanged = report.unchanged.saturating_sub(1);
        if *inserted {
            report.inserted += 1;
        } else {
            report.updated += 1;
        }
    }
    Ok(())
}

/// Soft-deletes the account's items `ids` inside the caller's transaction; returns how
/// many were live.
async fn soft_delete_in(
    conn: &mut PgConnection,
    account: i64,
    ids: &[String],
    now: &DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE user_integration_content
         SET is_deleted = TRUE, deleted_at = $1, updated_at = $1
         WHERE user_integration_id = $2 AND NOT is_deleted AND external_id = ANY($3)",
    )
    .bind(now)
    .bind(account)
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

// ---- the dialect the shared flows (`crate::shared`) run on ----

type Db = Postgres;
const BACKEND: Backend = Backend::Postgres;

/// Timestamps are bound as `timestamptz`.
type Stamp = DateTime<Utc>;

fn stamp(dt: DateTime<Utc>) -> Stamp {
    dt
}

/// JSON is bound as `jsonb`.
fn json_param(value: &Value) -> sqlx::types::Json<&Value> {
    sqlx::types::Json(value)
}

fn json_col(row: &PgRow, column: &str, _what: &str) -> Result<Value, StoreError> {
    Ok(row.try_get(column)?)
}

/// A list of ids as one `bigint[]`.
fn ids_param(ids: &[i64]) -> &[i64] {
    ids
}

const SQL_UI_BY_IDS: &str = concat!(
    "SELECT ",
    crate::shared::ui_columns!(),
    " FROM user_integrations WHERE id = ANY($1) ORDER BY id"
);
/// An account's stored items in an id range, compared byte by byte.
const SQL_STORED_ITEMS_BETWEEN: &str = "SELECT external_id, version FROM user_integration_content
     WHERE is_deleted = FALSE AND user_integration_id = $1
       AND external_id COLLATE \"C\" >= $2 AND external_id COLLATE \"C\" < $3
     ORDER BY external_id COLLATE \"C\"";

const SQL_STATUS_FOR_UPDATE: &str =
    "SELECT status FROM user_integrations WHERE id = $1 FOR NO KEY UPDATE";
const SQL_JOB_STATE_FOR_UPDATE: &str = "SELECT state FROM jobs WHERE id = $1 FOR NO KEY UPDATE";
const SQL_REQUEUE_EXPIRED: &str = "UPDATE jobs SET
         state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'available' END,
         finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
         run_at = $1 + floor(random() * $4 * greatest(attempts, 1))::bigint,
         error_class = $2, last_error = $3,
         locked_by = NULL, lease_expires_at = NULL
     WHERE state = 'running' AND lease_expires_at < $1";
/// Takes an account's fairness counter at a priority forward by `$3` (never behind
/// the queue's virtual time) and returns where it ends.
const SQL_FAIR_COUNTERS: &str =
    "INSERT INTO job_fair_counters (user_integration_id, priority, next_seq)
     VALUES ($1, $2, COALESCE((SELECT seq FROM job_fair_frontier WHERE priority = $2), 0) + $3)
     ON CONFLICT (user_integration_id, priority) DO UPDATE SET
         next_seq = GREATEST(job_fair_counters.next_seq,
             COALESCE((SELECT seq FROM job_fair_frontier WHERE priority = $2), 0)) + $3
     RETURNING next_seq";

store_flows!(PgStore);

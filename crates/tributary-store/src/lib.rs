//! Tributary's storage: users, linked accounts (user integrations), content items and
//! the durable job queue, behind one [`Store`] trait with two backends. [`Store`] is
//! the union of role traits that say what they touch: [`AccountStore`],
//! [`ContentStore`], [`JobQueue`], [`ScheduleStore`], [`QueueAdmin`], [`BudgetStore`].
//!
//! - [`sqlite::SqliteStore`]: the embedded default, one process.
//! - [`postgres::PgStore`]: any number of processes share one database; jobs are
//!   claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! The queue lives in the same database as the content so that a job's effects
//! (content, sync state, rotated credentials, child jobs) and its completion commit in
//! one transaction: a process killed at any instant loses nothing and duplicates
//! nothing ([`JobQueue::complete_jobs`]).
//!
//! Times in the `jobs` table are epoch milliseconds ([`Millis`]) passed in by the
//! caller, so tests control the clock; the other tables use timestamps.
//!
//! Semantics both backends share (the conformance suite checks them):
//! - timestamps are kept to the millisecond;
//! - `content_size` is the byte length of the content's compact JSON text;
//! - "same content" means equal JSON values (key order does not matter); a soft
//!   deletion or a restore moves `updated_at`, a re-sync of the same content does not;
//! - a sync-state patch is merged at the top level (`jsonb ||` semantics: the patch's
//!   keys replace stored ones, a `null` value is stored as `null`);
//! - a job naming an item without a dedupe key is deduplicated as `item:<id>`;
//! - NUL characters, which PostgreSQL cannot store in text, are replaced with U+FFFD
//!   in every text and JSON value the store accepts, on both backends, by one rule
//!   applied in the shared layer (`shared.rs`, `common::clean_text`).
//!
//! Module map: [`model`] (the rows and requests), [`crypto`] (credentials encrypted at
//! rest), `shared` (the flows both backends run, written once), [`sqlite`] and
//! [`postgres`] (each backend's dialect and fast paths), [`testing`] (throw-away
//! databases for tests). Both backends pass one shared conformance suite, `tests/conformance.rs`,
//! which runs every scenario on SQLite and on PostgreSQL. How the queue shares work
//! fairly between accounts is described in the `fairness` notes of the source
//! (`src/common.rs`).

mod common;
pub mod crypto;
pub mod model;
pub mod postgres;
mod shared;
pub mod sqlite;
pub mod testing;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use tributary_sdk::{Credentials, ItemRef};

pub use crypto::{Cipher, CreatedKey, KeyCheck, KeySource, LoadedKey, NewKeyFile};
pub use model::*;

/// Epoch milliseconds.
pub type Millis = i64;

/// The most `start` jobs, and the most history jobs, one scheduler tick enqueues. The
/// due accounts beyond them are turned into jobs by the claims as workers ask for work
/// (see [`ScheduleStore::schedule_due`]).
pub const TICK_ENQUEUE_LIMIT: u64 = 1_000;

/// How often a store's claims look for due accounts, at most (milliseconds), unless
/// the last look found more than it could take.
pub const DUE_CHECK_EVERY_MS: Millis = 100;

/// The error recorded on a job whose lease expired: the process running it died (or
/// stalled past its lease). The attempt counts, so a job that kills its process each
/// time it runs ends `dead` with this error after its last attempt instead of
/// crash-looping the deployment.
pub const PROCESS_DIED_ERROR: &str = "the process died while running this job (or stalled \
     past its lease): the lease expired before the worker finished";

/// Jobs whose lease expired come back spread over up to this many milliseconds times
/// their attempts so far, each at a random moment: the jobs a dead process held come
/// back one by one instead of all in the same claim, so jobs that merely shared a
/// process with a job that kills it do not die with it attempt after attempt.
pub const EXPIRED_SPREAD_MS: i64 = 2_000;

/// The error class recorded with [`PROCESS_DIED_ERROR`].
pub const PROCESS_DIED_CLASS: &str = "lease_expired";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of row (`user`, `user integration`, `job`, `content item`).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The request conflicts with what is stored (a duplicate user reference, retrying a
    /// job that is not dead).
    #[error("{0}")]
    Conflict(String),
    /// The database failed or could not be reached. (The sqlx error is the message,
    /// not a `source`, so an error chain prints it once.)
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Credentials could not be encrypted or decrypted (wrong key, corrupt row).
    #[error("credentials: {0}")]
    Crypto(String),
    /// A stored value did not decode (corrupt JSON, unknown state).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database cannot be written: its file, its directory or its filesystem is
    /// read-only.
    #[error("the database is read-only: {0}")]
    ReadOnly(String),
    /// The database URL is not one we support.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded, one process).
    Sqlite,
    /// PostgreSQL (shared by many processes).
    Postgres,
}

/// Everything Tributary stores: the union of the role traits below, plus what a store
/// as a whole does. Both backends implement it and pass the conformance suite in
/// `tests/conformance.rs`; `Arc<dyn Store>` reaches every method of every role (a
/// caller holding a concrete store imports the role traits it calls, or [`prelude`]).
#[async_trait]
pub trait Store:
    AccountStore
    + ContentStore
    + JobQueue
    + ScheduleStore
    + QueueAdmin
    + BudgetStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies pending migrations (idempotent).
    async fn migrate(&self) -> Result<(), StoreError>;
}

/// Users and their linked accounts (`users`, `user_integrations`): creation, status,
/// credentials (encrypted at rest) and the start-up key check.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user; a duplicate `external_ref` is a [`StoreError::Conflict`].
    async fn create_user(&self, external_ref: &str) -> Result<User, StoreError>;
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// One user.
    async fn get_user(&self, id: i64) -> Result<User, StoreError>;

    /// Links an account: stores it `active` with encrypted credentials.
    async fn create_user_integration(
        &self,
        new: NewUserIntegration,
    ) -> Result<UserIntegration, StoreError>;
    /// One linked account, credentials decrypted.
    async fn get_user_integration(&self, id: i64) -> Result<UserIntegration, StoreError>;
    /// Several linked accounts in one query (missing ids are left out).
    async fn get_user_integrations(&self, ids: &[i64]) -> Result<Vec<UserIntegration>, StoreError>;
    /// Linked accounts, optionally of one user, by id.
    async fn list_user_integrations(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<UserIntegration>, StoreError>;
    /// Sets the status (and the last error, `None` clears it). Jobs of accounts that
    /// are not `active` are never claimed.
    async fn set_user_integration_status(
        &self,
        id: i64,
        status: UserIntegrationStatus,
        last_error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Replaces the stored credentials (re-authorization).
    async fn update_credentials(
        &self,
        id: i64,
        credentials: &Credentials,
    ) -> Result<(), StoreError>;
    /// Tries this store's key on the stored credentials of the `sample` newest
    /// accounts that are not unlinked, and counts those accounts (start-up check: a
    /// missing or wrong key is then one clear error, not one failure per job).
    async fn check_key(&self, sample: usize) -> Result<KeyCheck, StoreError>;
}

/// The synced content of the linked accounts (`user_integration_content`): what is
/// known, listings and counts. Content is written only by [`JobQueue::complete_jobs`].
#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// The ids of the subset of `items` that is known for the account: stored and not
    /// deleted at the version asked about (any version when the item names none; see
    /// [`tributary_sdk::ItemRef`]), or with a pending (available or running) job naming
    /// it as its item, or whose fetch was given up on (a failed or dead job, kept for
    /// the operator to retry: a listing must not queue a poison item again and again).
    /// A pending or given-up fetch counts at every version. One query.
    async fn known_items(
        &self,
        user_integration_id: i64,
        items: &[ItemRef],
    ) -> Result<HashSet<String>, StoreError>;
    /// The ids of the subset of `items` stored and not deleted at the version asked
    /// about (any version when the item names none), whatever jobs name them. One
    /// query.
    async fn stored_items(
        &self,
        user_integration_id: i64,
        items: &[ItemRef],
    ) -> Result<HashSet<String>, StoreError>;
    /// The subset of `external_ids` that is known for the account at any version (see
    /// [`ContentStore::known_items`]). One query.
    async fn content_exists(
        &self,
        user_integration_id: i64,
        external_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let items: Vec<ItemRef> = external_ids
            .iter()
            .map(|id| ItemRef::new(id.as_str()))
            .collect();
        self.known_items(user_integration_id, &items).await
    }
    /// Every stored, non-deleted external id of the account.
    async fn stored_external_ids(
        &self,
        user_integration_id: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// The stored, non-deleted items of the account (ids and versions) whose external
    /// id is from `from` (included) to `until` (excluded), compared byte by byte, in
    /// that order.
    async fn stored_items_between(
        &self,
        user_integration_id: i64,
        from: &str,
        until: &str,
    ) -> Result<Vec<tributary_sdk::ItemRef>, StoreError>;
    /// Content items matching the query, by id.
    async fn list_content(&self, query: &ContentQuery) -> Result<Vec<ContentItem>, StoreError>;
    /// One content item.
    async fn get_content(&self, id: i64) -> Result<ContentItem, StoreError>;
    /// Stored and deleted item counts of an account.
    async fn content_counts(&self, user_integration_id: i64) -> Result<ContentCounts, StoreError>;
}

/// The job queue as workers use it (`jobs` and the fairness tables): enqueue, claim,
/// lease, commit, fail, release, and taking back the jobs of dead workers.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Enqueues jobs, skipping any whose `dedupe_key` already has a pending (available
    /// or running) job for the same account. Returns how many were inserted.
    ///
    /// A skipped job whose pending twin is *running* marks that twin to run once more
    /// when it completes (instead of ending): it may have read its source before the
    /// change that asked for the work again (an edit during a download), and the
    /// re-run picks the change up. Requests during one run collapse into one re-run.
    async fn enqueue(&self, jobs: &[NewJob], now: Millis) -> Result<u64, StoreError>;

    /// Claims up to `limit` available jobs whose `run_at <= now`, of `active` accounts,
    /// lowest priority number first, then fairly across accounts within a priority,
    /// then oldest first. Each is marked running, its attempt counted, and leased to
    /// `worker` until `now + lease_ms`.
    ///
    /// Accounts whose `start` or history check is due and that the scheduler's tick
    /// left for later (see [`ScheduleStore::schedule_due`]) are turned into jobs first, up to
    /// `limit` of them, so they are claimed as any queued job is. (A store checks for
    /// them at most every [`DUE_CHECK_EVERY_MS`] unless the last check found more.)
    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease_ms: i64,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        self.claim_scoped(worker, limit, lease_ms, now, None).await
    }

    /// [`JobQueue::claim`], optionally only among the jobs of one account (a `sync` of one
    /// account works its queue alone).
    async fn claim_scoped(
        &self,
        worker: &str,
        limit: usize,
        lease_ms: i64,
        now: Millis,
        user_integration_id: Option<i64>,
    ) -> Result<Vec<Job>, StoreError>;

    /// Extends the leases of jobs still held by `worker`. Returns the ids whose lease
    /// was lost (taken back or finished elsewhere).
    async fn renew_leases(
        &self,
        worker: &str,
        jobs: &[JobLease],
        lease_ms: i64,
        now: Millis,
    ) -> Result<Vec<i64>, StoreError>;

    /// Commits finished jobs in one transaction: for each job whose lease is still held
    /// (`state = running`, same attempt), applies its outputs, sync-state patch and
    /// credentials, enqueues its children and marks it completed. A job whose lease was
    /// lost has no effect and is reported as not applied.
    async fn complete_jobs(
        &self,
        completions: &[JobCompletion],
        now: Millis,
    ) -> Result<Vec<CompletionReport>, StoreError>;

    /// Records a failed attempt as the engine decided (retry later, dead, failed, or
    /// pause the account). Returns false when the lease was already lost.
    async fn fail_job(&self, failure: &JobFailure, now: Millis) -> Result<bool, StoreError>;

    /// Returns held jobs to the queue without counting the attempt (graceful shutdown).
    async fn release_jobs(
        &self,
        worker: &str,
        jobs: &[JobLease],
        now: Millis,
    ) -> Result<u64, StoreError>;

    /// Returns running jobs whose lease expired to the queue (their worker died), each
    /// due at a random moment within [`EXPIRED_SPREAD_MS`] × its attempts; a job that
    /// has used all its attempts becomes dead with [`PROCESS_DIED_ERROR`]. Returns how
    /// many were touched.
    async fn requeue_expired(&self, now: Millis) -> Result<u64, StoreError>;
}

/// Periodic work (`job_schedules` and the accounts' due times): the scheduler's tick.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// One scheduler tick. Records `schedules` as the schedules of the registered
    /// domains (those of other domains are dropped), then enqueues a `start` job
    /// (priority 1) for the active accounts whose start is due, and a history job for
    /// those whose history check is due, most overdue first, and moves their next due
    /// time to `now + interval` (missed ticks collapse into one).
    ///
    /// A tick enqueues at most [`TICK_ENQUEUE_LIMIT`] jobs of each kind; the accounts
    /// beyond that stay due and the claims turn them into jobs as workers ask for
    /// work (see [`JobQueue::claim`]). So a tick stays short whatever the number of
    /// accounts, and no due account waits for the next tick. Safe to call from many
    /// processes at once, as the claims are: each due account becomes one job, once.
    async fn schedule_due(
        &self,
        schedules: &[DomainSchedule],
        now: Millis,
    ) -> Result<ScheduleReport, StoreError>;
}

/// What operators and maintenance do with the queue: listings, counts, re-running
/// failed and dead jobs, pruning completed ones.
#[async_trait]
pub trait QueueAdmin: Send + Sync + 'static {
    /// Jobs matching the filter, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// One job.
    async fn get_job(&self, id: i64) -> Result<Job, StoreError>;
    /// Makes a dead or failed job available again with its attempts reset.
    async fn retry_job(&self, id: i64, now: Millis) -> Result<(), StoreError>;
    /// Job counts by state and priority, optionally for one account.
    async fn job_counts(
        &self,
        user_integration_id: Option<i64>,
    ) -> Result<Vec<JobCount>, StoreError>;
    /// The linked accounts of `scope`, by id, each with its item counts, its pending
    /// jobs by priority, its dead and failed jobs and its last error, in one query
    /// whatever the number of accounts. Credentials are tried, not returned: an
    /// account whose credentials do not decrypt is listed with
    /// [`AccountOverview::credentials_unreadable`] set instead of failing the listing.
    /// An unknown user or account yields an empty list.
    async fn account_overview(
        &self,
        scope: AccountScope,
    ) -> Result<Vec<AccountOverview>, StoreError>;
    /// Deletes at most `limit` completed jobs that finished before `before`, oldest
    /// first, in one short statement: it walks the partial index `jobs_completed_idx`
    /// from its oldest entry, so a call reads about `limit` rows whatever the size of
    /// the table. Returns how many were deleted; fewer than `limit` means nothing older
    /// is left. Available, running, failed and dead jobs are never deleted (failed and
    /// dead jobs stay until retried or removed by the operator).
    ///
    /// Nothing depends on a completed job's row: deduplication looks at pending jobs
    /// only, fairness lives in its own tables, the due times in the accounts' rows, and
    /// job ids are never reused (a pruned job's id is never handed out again, so a
    /// stale lease can never match a new job).
    ///
    /// Safe to call from many processes at once: on PostgreSQL the batch is locked
    /// `FOR UPDATE SKIP LOCKED`, so concurrent pruners take different rows and never
    /// wait for each other. There, once pruning deleted enough rows (at least
    /// 10,000, then a fifth of the table), the store also vacuums `jobs` and
    /// `user_integrations` (whose rows every scheduled job updates) in the background
    /// when the server's autovacuum is off, so the space of deleted rows and old row
    /// versions is reused instead of the tables growing.
    async fn prune_completed(&self, before: Millis, limit: u64) -> Result<u64, StoreError>;
}

/// Rate budgets shared by every process on the database (`rate_budgets`): one token
/// bucket per budget key, refilled from the time elapsed by the statement that takes
/// units from it, so processes on one PostgreSQL database share a service's quota.
#[async_trait]
pub trait BudgetStore: Send + Sync + 'static {
    /// Takes `units` from the bucket `key`, after refilling it at `per_second` for the
    /// time since it was last touched (capped at `burst`; a key's first use makes it
    /// full). Returns `None` when they were taken, or `Some(missing)` when the bucket
    /// holds too few: nothing was taken, and `missing` (more than zero) units must
    /// refill first. One `UPDATE` when the units are there; safe from many processes
    /// at once (the row's lock orders them). `now` is epoch milliseconds.
    async fn take_budget_units(
        &self,
        key: &str,
        units: u64,
        burst: u64,
        per_second: f64,
        now: Millis,
    ) -> Result<Option<f64>, StoreError>;
}

/// The store's traits, for callers that hold a concrete store
/// (`use tributary_store::prelude::*`).
pub mod prelude {
    pub use crate::{
        AccountStore, BudgetStore, ContentStore, JobQueue, QueueAdmin, ScheduleStore, Store,
    };
}

/// Opens the store named by `url` (`sqlite://PATH` creates the file when missing;
/// `postgres://...`), with `cipher` for credentials. Does not migrate.
pub async fn connect(url: &str, cipher: Cipher) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, cipher).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, cipher).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

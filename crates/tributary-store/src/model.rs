//! The rows the store keeps and the requests it takes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tributary_sdk::{Credentials, Output, Task};

use crate::Millis;

/// An owner of content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// The caller's own reference for this user (unique).
    pub external_ref: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// The status of a linked account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIntegrationStatus {
    /// Syncing.
    Active,
    /// Paused by an operator; nothing runs until resumed.
    Paused,
    /// The credentials were refused; nothing runs until the user authorizes again.
    NeedsReauth,
    /// Stopped by an error that needs an operator.
    Error,
    /// Unlinked: content kept, never synced again.
    Unlinked,
}

impl UserIntegrationStatus {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::NeedsReauth => "needs_reauth",
            Self::Error => "error",
            Self::Unlinked => "unlinked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "needs_reauth" => Self::NeedsReauth,
            "error" => Self::Error,
            "unlinked" => Self::Unlinked,
            _ => return None,
        })
    }
}

/// A request to link an account.
#[derive(Debug, Clone)]
pub struct NewUserIntegration {
    /// The owning user.
    pub user_id: i64,
    /// The integration's domain (`gmail`).
    pub integration_domain: String,
    /// Credentials, encrypted by the store.
    pub credentials: Credentials,
    /// Non-secret settings.
    pub settings: Map<String, Value>,
}

/// A linked account.
#[derive(Debug, Clone, Serialize)]
pub struct UserIntegration {
    /// Database id.
    pub id: i64,
    /// The owning user.
    pub user_id: i64,
    /// The integration's domain.
    pub integration_domain: String,
    /// Decrypted credentials (`Debug` and `Serialize` never show values).
    #[serde(skip)]
    pub credentials: Credentials,
    /// Non-secret settings.
    pub settings: Map<String, Value>,
    /// Status.
    pub status: UserIntegrationStatus,
    /// Cursors kept by the integration (`lastHistoryId`, ...).
    pub sync_state: Map<String, Value>,
    /// When a job of this account last completed.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The last error that changed the status, if any.
    pub last_error: Option<String>,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which accounts an [`AccountOverview`] listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountScope {
    /// Every linked account.
    All,
    /// The accounts of one user.
    User(i64),
    /// One account.
    Account(i64),
}

/// One linked account as an operator sees it: its row (never its credentials), what
/// it holds and what its queue holds. Read for many accounts in one query
/// ([`crate::QueueAdmin::account_overview`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountOverview {
    /// The user integration id.
    pub id: i64,
    /// The owning user.
    pub user_id: i64,
    /// The integration.
    pub domain: String,
    /// `active`, `paused`, `needs_reauth`, `error` or `unlinked`.
    pub status: UserIntegrationStatus,
    /// Non-secret settings.
    pub settings: Map<String, Value>,
    /// When a job of this account last completed.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Stored, non-deleted items.
    pub items: i64,
    /// Soft-deleted items.
    pub deleted_items: i64,
    /// Jobs waiting or running, by priority (1 runs first); priorities without any
    /// are absent.
    pub pending_jobs: std::collections::BTreeMap<i16, i64>,
    /// Jobs that ended dead or failed (re-runnable).
    pub dead_or_failed_jobs: i64,
    /// The last error that changed the status.
    pub last_error: Option<String>,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
    /// The stored credentials do not decrypt with this store's key (a key changed or
    /// lost): the account cannot sync until the key is restored or it is linked again.
    /// Never set on an unlinked account, whose credentials are no longer used.
    pub credentials_unreadable: bool,
}

/// A stored content item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentItem {
    /// Database id.
    pub id: i64,
    /// The owning user.
    pub user_id: i64,
    /// The account it came from.
    pub user_integration_id: i64,
    /// The integration's domain.
    pub integration_domain: String,
    /// The item's id in the external system.
    pub external_id: String,
    /// When the item was created in the external system.
    pub external_timestamp: Option<DateTime<Utc>>,
    /// The integration-defined content.
    pub content: Value,
    /// Size of `content` as stored JSON, in bytes.
    pub content_size: i64,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When its content last changed (unchanged by a re-sync of the same content).
    pub updated_at: DateTime<Utc>,
    /// When it was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Whether it is soft-deleted.
    pub is_deleted: bool,
    /// The version stored, for a service with versions (see
    /// [`tributary_sdk::ItemRef`]).
    pub version: Option<String>,
}

/// A content listing request.
#[derive(Debug, Clone, Default)]
pub struct ContentQuery {
    /// Only this account's items.
    pub user_integration_id: Option<i64>,
    /// Include soft-deleted items (excluded by default).
    pub include_deleted: bool,
    /// Only items updated at or after this time (a soft deletion and a restore also
    /// move `updated_at`, so incremental readers see them).
    pub since: Option<DateTime<Utc>>,
    /// Only items with a database id greater than this (keyset paging).
    pub after_id: Option<i64>,
    /// At most this many (default 100 when `None`).
    pub limit: Option<i64>,
}

/// Item counts of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ContentCounts {
    /// Stored, non-deleted items.
    pub items: i64,
    /// Soft-deleted items.
    pub deleted: i64,
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run at or after `run_at`.
    Available,
    /// Claimed by a worker holding a lease.
    Running,
    /// Done; its effects are committed.
    Completed,
    /// Ended by a permanent error; kept, re-runnable.
    Failed,
    /// Ended after its last attempt; kept, re-runnable.
    Dead,
}

impl JobState {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "available" => Self::Available,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The account it runs for.
    pub user_integration_id: i64,
    /// The task (its `item_id` is stored and counted by `content_exists`).
    pub task: Task,
    /// 1 (first) to 10 (last).
    pub priority: i16,
    /// At most one pending job per account and key (`start`, `history`,
    /// `item:<external id>`). `None` means no deduplication, except for a task that
    /// names an item (`task.item_id`): it is stored with the key `item:<external id>`,
    /// so that an item never has two pending fetches.
    pub dedupe_key: Option<String>,
    /// Attempts before the job is dead.
    pub max_attempts: i32,
    /// Not claimed before this time.
    pub run_at: Millis,
}

impl NewJob {
    /// Whether it discovers work or fetches one item.
    pub fn kind(&self) -> JobKind {
        JobKind::of_task(&self.task)
    }

    /// The dedupe key it is stored with: its own, or [`DedupeKey::item`] for a fetch
    /// without one (an item is never fetched by two pending jobs).
    pub fn effective_dedupe_key(&self) -> Option<String> {
        self.dedupe_key.clone().or_else(|| {
            self.task
                .item_id
                .as_deref()
                .map(|id| DedupeKey::item(id).into())
        })
    }
}

/// A job row.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Database id.
    pub id: i64,
    /// The account it runs for.
    pub user_integration_id: i64,
    /// The task type.
    pub task_type: String,
    /// The task payload.
    pub payload: Value,
    /// The external id of the one item it fetches, if any.
    pub item_id: Option<String>,
    /// Deduplication key, if any.
    pub dedupe_key: Option<String>,
    /// 1 (first) to 10 (last).
    pub priority: i16,
    /// State.
    pub state: JobState,
    /// Attempts started so far (the current one included while running); also the
    /// lease token that fences a worker whose lease was taken back.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Not claimed before this time.
    pub run_at: Millis,
    /// The worker holding it, while running.
    pub locked_by: Option<String>,
    /// Until when the worker holds it, while running.
    pub lease_expires_at: Option<Millis>,
    /// The last error's class (`transient`, `rate_limited`, `auth`, `permanent`, `lease_expired`).
    pub error_class: Option<String>,
    /// The last error's message.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: Millis,
    /// When it completed, failed or died.
    pub finished_at: Option<Millis>,
}

impl Job {
    /// The job's task.
    pub fn task(&self) -> Task {
        Task {
            task_type: self.task_type.clone(),
            payload: self.payload.clone(),
            item_id: self.item_id.clone(),
            // Only read at enqueue time; the stored key is the job's `dedupe_key`.
            dedupe_key: None,
        }
    }

    /// Whether it discovers work or fetches one item.
    pub fn kind(&self) -> JobKind {
        JobKind::of_item(self.item_id.as_deref())
    }

    /// The lease this job was claimed under.
    pub fn lease(&self) -> JobLease {
        JobLease {
            job_id: self.id,
            attempt: self.attempts,
        }
    }
}

/// A claimed job's identity and attempt, which fences a worker whose lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    /// The job.
    pub job_id: i64,
    /// The attempt it was claimed as ([`Job::attempts`] at claim).
    pub attempt: i32,
}

/// A finished job's effects, to commit with its completion.
#[derive(Debug, Clone)]
pub struct JobCompletion {
    /// Which claimed job.
    pub lease: JobLease,
    /// Its account.
    pub user_integration_id: i64,
    /// The account's user (stored with content).
    pub user_id: i64,
    /// The account's integration domain (stored with content).
    pub integration_domain: String,
    /// Outputs to apply: items are upserted, deletions soft-delete; failures (which
    /// the engine turns into marker items first) are skipped.
    pub outputs: Vec<Output>,
    /// Children to enqueue (with deduplication as in [`crate::JobQueue::enqueue`]).
    pub children: Vec<NewJob>,
    /// Keys to merge into the account's sync state.
    pub sync_state_patch: Option<Map<String, Value>>,
    /// Rotated credentials to persist.
    pub credentials: Option<Credentials>,
}

/// What committing one job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompletionReport {
    /// The job.
    pub job_id: i64,
    /// False when its lease was lost and nothing was applied.
    pub applied: bool,
    /// New items stored.
    pub inserted: u64,
    /// Items whose content changed (or that were restored).
    pub updated: u64,
    /// Items soft-deleted.
    pub deleted: u64,
    /// Items whose content was already stored as is.
    pub unchanged: u64,
    /// Children enqueued (after deduplication).
    pub enqueued: u64,
}

/// What to do with a failed attempt (decided by the engine from the error class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Back to available, not before `run_at`.
    Retry {
        /// The earliest next attempt.
        run_at: Millis,
    },
    /// End the job as dead (attempts exhausted).
    Dead,
    /// End the job as failed (permanent error).
    Failed,
    /// Set the account to `needs_reauth` and put the job back (attempt not counted):
    /// it runs again once the account is re-authorized.
    PauseAccount,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct JobFailure {
    /// Which claimed job.
    pub lease: JobLease,
    /// Its account.
    pub user_integration_id: i64,
    /// The error class's stable name.
    pub error_class: String,
    /// The error message.
    pub message: String,
    /// What to do.
    pub action: FailureAction,
}

/// The schedule of one integration domain.
#[derive(Debug, Clone)]
pub struct DomainSchedule {
    /// The domain.
    pub domain: String,
    /// Milliseconds between `start` jobs.
    pub start_every_ms: i64,
    /// The history-check task type and its interval, if the integration has one.
    pub history: Option<(String, i64)>,
    /// Attempts allowed for scheduled jobs.
    pub max_attempts: i32,
}

/// What one scheduler tick enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScheduleReport {
    /// `start` jobs enqueued.
    pub starts: u64,
    /// History jobs enqueued.
    pub histories: u64,
    /// Due accounts (`start` and history checks) beyond the tick's limit, left for the
    /// claims to turn into jobs. Counted only when the tick reached its limit.
    pub left_to_claims: u64,
}

/// A job listing request.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this account's jobs.
    pub user_integration_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// A count of jobs in one state and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobCount {
    /// State.
    pub state: JobState,
    /// Priority.
    pub priority: i16,
    /// How many.
    pub count: i64,
}

/// What a job does, as far as the queue is concerned: discover work or fetch one item.
/// Stored implicitly: a job with an `item_id` is a fetch, any other a discovery job.
/// Ordered as they run among held jobs of one priority: discovery first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// Lists, walks or checks for changes (a `start`, a list page, a history check):
    /// it names no single item. Discovery runs ahead of the fetches at its priority
    /// (fair tag at the queue's virtual time; first among held jobs in the gate).
    Discovery,
    /// Fetches the one item it names. Takes a place at the end of its account's line.
    Fetch,
}

impl JobKind {
    /// The kind of a job naming `item_id` (or none).
    pub fn of_item(item_id: Option<&str>) -> JobKind {
        match item_id {
            Some(_) => JobKind::Fetch,
            None => JobKind::Discovery,
        }
    }

    /// The kind of a job running `task`.
    pub fn of_task(task: &Task) -> JobKind {
        JobKind::of_item(task.item_id.as_deref())
    }
}

/// The key that keeps at most one pending job of a kind per account: the account's
/// `start`, its history check, or the fetch of one item. Stored as its text
/// ([`DedupeKey::as_str`]): `start`, `history`, `item:<external id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupeKey(String);

impl DedupeKey {
    /// The prefix of an item fetch's key.
    const ITEM_PREFIX: &'static str = "item:";

    /// The key of an account's `start` job.
    pub fn start() -> DedupeKey {
        DedupeKey("start".to_owned())
    }

    /// The key of an account's history check.
    pub fn history() -> DedupeKey {
        DedupeKey("history".to_owned())
    }

    /// The key of the fetch of item `external_id`.
    pub fn item(external_id: &str) -> DedupeKey {
        DedupeKey(format!("{}{external_id}", Self::ITEM_PREFIX))
    }

    /// The key an integration gave a task ([`Task::dedupe_key`]).
    pub fn task(key: &str) -> DedupeKey {
        DedupeKey(format!("task:{key}"))
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The item a fetch's key names, if it is one.
    pub fn item_id(&self) -> Option<&str> {
        self.0.strip_prefix(Self::ITEM_PREFIX)
    }
}

impl From<DedupeKey> for String {
    fn from(key: DedupeKey) -> String {
        key.0
    }
}

impl std::fmt::Display for DedupeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

//! The [`Integration`] trait and what the engine hands an integration for one job.
//!
//! Lifecycle of one job, driven by the engine:
//! 1. construct, from an [`IntegrationContext`] (credentials, settings, sync state,
//!    the `content_exists` checker, an HTTP client);
//! 2. [`Integration::initialize`];
//! 3. [`Integration::run_task`];
//! 4. [`Integration::shutdown`], always, also after an error in 2 or 3.
//!
//! When a user links an account, the engine constructs the integration, initializes it
//! and calls [`Integration::validate_authentication`] instead of running a task.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::http::HttpClient;
use crate::oauth::TokenCache;
use crate::{Credentials, IntegrationError, Task, TaskResult};

/// One integration instance, living for one job.
#[async_trait::async_trait]
pub trait Integration: Send {
    /// Prepares the instance (build API clients, refresh a token). Called once per job
    /// before `run_task`.
    async fn initialize(&mut self) -> Result<(), IntegrationError> {
        Ok(())
    }

    /// Checks that the credentials work by making one cheap, authenticated call.
    /// Returns `Err(IntegrationError::Auth)` when they are refused.
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError>;

    /// Runs one task.
    async fn run_task(&mut self, task: &Task) -> Result<TaskResult, IntegrationError>;

    /// Releases what the instance holds. Always called, also after an error.
    async fn shutdown(&mut self) {}

    /// Credentials to persist although `run_task` failed: a token refresh that rotated
    /// them happened before the failure. A successful run returns them in
    /// [`TaskResult::credentials`] instead. The engine asks after every failed run;
    /// an integration whose service rotates refresh tokens must answer, or the account
    /// is left with a revoked token.
    fn credentials_after_failure(&self) -> Option<Credentials> {
        None
    }
}

/// An item as a listing names it: its external id and, when the service reports one,
/// the version it listed (Drive's `version`, an ETag, a size and modification time).
///
/// Asked about with a version, an item is known only when it is stored *at that
/// version*: an edited file is fetched again, an unchanged one never is. Without a
/// version, any stored version will do (Gmail's messages never change in place).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemRef {
    /// The item's id in the external system.
    pub id: String,
    /// The version the service listed, if it has versions.
    pub version: Option<String>,
}

impl ItemRef {
    /// An item of a service without versions.
    pub fn new(id: impl Into<String>) -> ItemRef {
        ItemRef {
            id: id.into(),
            version: None,
        }
    }

    /// An item listed at `version`.
    pub fn at(id: impl Into<String>, version: impl Into<String>) -> ItemRef {
        ItemRef {
            id: id.into(),
            version: Some(version.into()),
        }
    }
}

impl From<String> for ItemRef {
    fn from(id: String) -> ItemRef {
        ItemRef::new(id)
    }
}

impl From<&str> for ItemRef {
    fn from(id: &str) -> ItemRef {
        ItemRef::new(id)
    }
}

/// Answers "which of these items do we already know?" for one account.
///
/// Known means stored (and not deleted) at the version asked about ([`ItemRef`]),
/// already queued for fetching, or given up on (its fetch failed for good or died, and
/// waits for an operator's retry): a list task creates download tasks only for the ids
/// this does not return. A queued fetch reads the item as it is when it runs, and a
/// given-up one is not retried by listings whatever its version, so both count as known
/// at every version. One call is one batched query, so call it once per page with all
/// the page's items.
#[async_trait::async_trait]
pub trait ContentExists: Send + Sync {
    /// The ids of the subset of `items` that is already known.
    async fn known(&self, items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError>;

    /// The ids of the subset of `items` stored (not deleted) at the version asked about,
    /// leaving out what is only queued or given up on: for a change feed, which must
    /// queue a fetch of a changed item even while an older fetch of it is queued or
    /// running (the queue then runs that fetch once more). The default asks
    /// [`ContentExists::known`], which is stricter; stores answer exactly.
    async fn stored_at(&self, items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError> {
        self.known(items).await
    }

    /// The subset of `ids` that is already known at any version.
    async fn existing(&self, ids: &[String]) -> Result<HashSet<String>, IntegrationError> {
        let items: Vec<ItemRef> = ids.iter().map(|id| ItemRef::new(id.as_str())).collect();
        self.known(&items).await
    }

    /// Every stored, non-deleted external id of the account. Only for the rare full
    /// comparison after a history cursor expired (to soft-delete what vanished): it
    /// reads the whole account's id list.
    async fn stored_ids(&self) -> Result<Vec<String>, IntegrationError>;

    /// The stored, non-deleted items (ids and versions) whose id is from `from`
    /// (included) to `until` (excluded), compared byte by byte, in that order: the
    /// items of one range of a source whose ids sort by position
    /// (`C024BE91L:1712345678.000200`, a channel's messages by time), to find which of
    /// them vanished. The default knows no versions and filters
    /// [`ContentExists::stored_ids`]; stores answer with one range query.
    async fn stored_between(
        &self,
        from: &str,
        until: &str,
    ) -> Result<Vec<ItemRef>, IntegrationError> {
        let mut ids: Vec<String> = self
            .stored_ids()
            .await?
            .into_iter()
            .filter(|id| id.as_str() >= from && id.as_str() < until)
            .collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(ItemRef::from).collect())
    }
}

/// Where credentials that changed in the middle of a job are saved at once: a refresh
/// token the service rotated (Slack revokes the old one as it hands out the new one),
/// which must not wait for the job's commit, or a process killed in between would
/// leave the account with a dead grant.
#[async_trait::async_trait]
pub trait CredentialSink: Send + Sync {
    /// Replaces the account's stored credentials with `credentials`.
    async fn save(&self, credentials: &Credentials) -> Result<(), IntegrationError>;
}

/// Everything an integration instance is constructed from.
#[derive(Clone)]
pub struct IntegrationContext {
    /// The linked account's id (for log fields; never needed for storage).
    pub user_integration_id: i64,
    /// Decrypted credentials. `Debug` redacts them.
    pub credentials: Credentials,
    /// Non-secret settings given at link time (for example `baseUrl`).
    pub settings: Map<String, Value>,
    /// The account's sync state (cursors such as `lastHistoryId`) as of the job's claim,
    /// shared by the jobs claimed together (read it; changes go in the task's result).
    pub sync_state: Arc<Map<String, Value>>,
    /// The known-id checker for this account.
    pub content_exists: Arc<dyn ContentExists>,
    /// An HTTP client sharing the engine's connection pool and per-domain rate limit.
    pub http: HttpClient,
    /// The process's access tokens, shared by the jobs of each OAuth grant (see
    /// [`crate::oauth::BearerSession`]).
    pub tokens: TokenCache,
    /// Where a rotated refresh token is saved the moment it is issued (`None`: only
    /// with the job's commit; for validation and tests without a store).
    pub credential_sink: Option<Arc<dyn CredentialSink>>,
}

impl std::fmt::Debug for IntegrationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationContext")
            .field("user_integration_id", &self.user_integration_id)
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .field("sync_state", &self.sync_state)
            .finish_non_exhaustive()
    }
}

impl IntegrationContext {
    /// A string setting, if present.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(Value::as_str)
    }

    /// A string sync-state value, if present.
    pub fn sync_state_str(&self, key: &str) -> Option<&str> {
        self.sync_state.get(key).and_then(Value::as_str)
    }

    /// Filters `ids` down to those not yet known, preserving their order; one query.
    pub async fn new_ids(&self, ids: Vec<String>) -> Result<Vec<String>, IntegrationError> {
        let items = ids.into_iter().map(ItemRef::from).collect();
        Ok(self
            .unknown(items)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect())
    }

    /// Filters `items` (reported by a change feed) down to those not stored at the
    /// version reported, preserving their order; one query. Unlike
    /// [`IntegrationContext::unknown`], an item whose fetch is queued or running is
    /// kept: fetching it again is how a change made during that fetch is not lost.
    pub async fn changed(&self, items: Vec<ItemRef>) -> Result<Vec<ItemRef>, IntegrationError> {
        if items.is_empty() {
            return Ok(items);
        }
        let stored = self.content_exists.stored_at(&items).await?;
        Ok(items
            .into_iter()
            .filter(|item| !stored.contains(&item.id))
            .collect())
    }

    /// Filters `items` down to those not known at the version listed (new, or changed
    /// since stored), preserving their order; one query.
    pub async fn unknown(&self, items: Vec<ItemRef>) -> Result<Vec<ItemRef>, IntegrationError> {
        if items.is_empty() {
            return Ok(items);
        }
        let known = self.content_exists.known(&items).await?;
        Ok(items
            .into_iter()
            .filter(|item| !known.contains(&item.id))
            .collect())
    }
}

/// A checker that knows nothing (every id is new): for validation and simple tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NothingExists;

#[async_trait::async_trait]
impl ContentExists for NothingExists {
    async fn known(&self, _items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError> {
        Ok(HashSet::new())
    }

    async fn stored_ids(&self) -> Result<Vec<String>, IntegrationError> {
        Ok(Vec::new())
    }
}

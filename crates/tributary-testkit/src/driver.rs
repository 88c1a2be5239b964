//! A tiny in-memory stand-in for the engine, to run an integration's tasks by hand.
//!
//! [`Driver`] keeps a FIFO queue of tasks, a [`MemoryContent`] store (which is also the
//! `content_exists` checker) and the account's sync state. For each job it follows the
//! SDK lifecycle (construct, `initialize`, `run_task`, `shutdown`) and applies the
//! result the way the engine does: outputs upserted or soft-deleted, the sync-state
//! patch merged, child tasks enqueued unless their item already has a pending task.
//! There are no retries and no priorities: a failed task is recorded and dropped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};
use tributary_sdk::chrono::{DateTime, Utc};
use tributary_sdk::http::HttpClient;
use tributary_sdk::oauth::TokenCache;
use tributary_sdk::{
    ContentExists, Credentials, IntegrationContext, IntegrationError, ItemRef, Output,
    Registration, Task, TaskResult,
};

/// One stored content item.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    /// The output's content.
    pub content: Value,
    /// The output's timestamp.
    pub timestamp: Option<DateTime<Utc>>,
    /// The output's version.
    pub version: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// How many times the row was written (same content again is not a write).
    pub writes: u32,
}

#[derive(Default)]
struct ContentState {
    items: HashMap<String, StoredItem>,
    pending: HashSet<String>,
    existing_calls: u64,
    stored_ids_calls: u64,
}

/// Stored content of one account, and the `content_exists` checker over it: an id is
/// known when it is stored and not deleted, or has a pending fetch.
#[derive(Default)]
pub struct MemoryContent {
    state: Mutex<ContentState>,
}

impl std::fmt::Debug for MemoryContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryContent")
            .field("items", &state.items.len())
            .field("pending", &state.pending.len())
            .finish()
    }
}

impl MemoryContent {
    fn lock(&self) -> MutexGuard<'_, ContentState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one output as the engine would: an item is upserted (restoring a deleted
    /// one), a deletion soft-deletes, a failure is ignored.
    pub fn apply(&self, output: &Output) {
        let mut state = self.lock();
        let (id, timestamp, content, version) = match output {
            Output::Failed { .. } => return,
            Output::Deleted { id } => {
                if let Some(item) = state.items.get_mut(id)
                    && !item.deleted
                {
                    item.deleted = true;
                    item.writes += 1;
                }
                return;
            }
            Output::Item {
                id,
                timestamp,
                content,
                version,
            } => (id, *timestamp, content, version),
        };
        let item = state.items.entry(id.clone()).or_insert_with(|| StoredItem {
            content: Value::Null,
            timestamp: None,
            version: None,
            deleted: true,
            writes: 0,
        });
        if item.deleted
            || item.content != *content
            || item.timestamp != timestamp
            || item.version != *version
        {
            item.content = content.clone();
            item.timestamp = timestamp;
            item.version = version.clone();
            item.deleted = false;
            item.writes += 1;
        }
    }

    /// Marks `id` as having a pending fetch; false when it already had one.
    pub fn add_pending(&self, id: &str) -> bool {
        self.lock().pending.insert(id.to_owned())
    }

    /// Clears the pending mark of `id`.
    pub fn remove_pending(&self, id: &str) {
        self.lock().pending.remove(id);
    }

    /// The ids with a pending fetch.
    pub fn pending(&self) -> HashSet<String> {
        self.lock().pending.clone()
    }

    /// Every stored, non-deleted item: id → content.
    pub fn live(&self) -> BTreeMap<String, Value> {
        self.lock()
            .items
            .iter()
            .filter(|(_, item)| !item.deleted)
            .map(|(id, item)| (id.clone(), item.content.clone()))
            .collect()
    }

    /// One stored row (also a deleted one).
    pub fn get(&self, id: &str) -> Option<StoredItem> {
        self.lock().items.get(id).cloned()
    }

    /// How many times [`ContentExists::existing`] was called.
    pub fn existing_calls(&self) -> u64 {
        self.lock().existing_calls
    }

    /// How many times [`ContentExists::stored_ids`] was called.
    pub fn stored_ids_calls(&self) -> u64 {
        self.lock().stored_ids_calls
    }
}

#[async_trait::async_trait]
impl ContentExists for MemoryContent {
    async fn known(&self, items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError> {
        let mut state = self.lock();
        state.existing_calls += 1;
        Ok(items
            .iter()
            .filter(|asked| {
                state.pending.contains(&asked.id)
                    || state.items.get(&asked.id).is_some_and(|item| {
                        !item.deleted && (asked.version.is_none() || item.version == asked.version)
                    })
            })
            .map(|asked| asked.id.clone())
            .collect())
    }

    async fn stored_at(&self, items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError> {
        let mut state = self.lock();
        state.existing_calls += 1;
        Ok(items
            .iter()
            .filter(|asked| {
                state.items.get(&asked.id).is_some_and(|item| {
                    !item.deleted && (asked.version.is_none() || item.version == asked.version)
                })
            })
            .map(|asked| asked.id.clone())
            .collect())
    }

    async fn stored_ids(&self) -> Result<Vec<String>, IntegrationError> {
        let mut state = self.lock();
        state.stored_ids_calls += 1;
        let mut ids: Vec<String> = state
            .items
            .iter()
            .filter(|(_, item)| !item.deleted)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// What [`Driver::run_until_idle`] did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Tasks run.
    pub runs: usize,
    /// Tasks that failed, with their errors (not retried).
    pub failures: Vec<(Task, IntegrationError)>,
    /// Whether the queue is empty (false when the run limit stopped the loop).
    pub idle: bool,
}

/// Runs one account's tasks against an integration, in memory.
pub struct Driver {
    registration: Registration,
    credentials: Credentials,
    settings: Map<String, Value>,
    sync_state: Map<String, Value>,
    content: Arc<MemoryContent>,
    http: HttpClient,
    /// Shared by the driver's jobs, as the engine shares it between an account's jobs.
    tokens: TokenCache,
    queue: VecDeque<Task>,
    produced: HashMap<String, u32>,
    runs_by_type: HashMap<String, u64>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("registration", &self.registration)
            .field("credentials", &self.credentials)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for one account of `registration`, with an empty store and sync state.
    pub fn new(
        registration: Registration,
        credentials: Credentials,
        settings: Map<String, Value>,
    ) -> Result<Driver, IntegrationError> {
        Ok(Driver {
            registration,
            credentials,
            settings,
            sync_state: Map::new(),
            content: Arc::new(MemoryContent::default()),
            http: HttpClient::new()?,
            tokens: TokenCache::new(),
            queue: VecDeque::new(),
            produced: HashMap::new(),
            runs_by_type: HashMap::new(),
        })
    }

    /// The account's sync state.
    pub fn sync_state(&self) -> &Map<String, Value> {
        &self.sync_state
    }

    /// Replaces the account's sync state.
    pub fn set_sync_state(&mut self, sync_state: Map<String, Value>) {
        self.sync_state = sync_state;
    }

    /// Replaces the credentials.
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// The stored content.
    pub fn content(&self) -> &Arc<MemoryContent> {
        &self.content
    }

    /// How many item outputs (2xx, not deletions) each id received.
    pub fn produced(&self) -> &HashMap<String, u32> {
        &self.produced
    }

    /// How many times each task type ran.
    pub fn runs_by_type(&self) -> &HashMap<String, u64> {
        &self.runs_by_type
    }

    /// How many tasks wait in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The tasks waiting in the queue, first to run first.
    pub fn queue(&self) -> impl Iterator<Item = &Task> {
        self.queue.iter()
    }

    /// Enqueues a task; false (and not enqueued) when its item already has a pending
    /// task.
    pub fn enqueue(&mut self, task: Task) -> bool {
        if let Some(id) = &task.item_id
            && !self.content.add_pending(id)
        {
            return false;
        }
        self.queue.push_back(task);
        true
    }

    fn context(&self) -> IntegrationContext {
        IntegrationContext {
            user_integration_id: 1,
            credentials: self.credentials.clone(),
            settings: self.settings.clone(),
            sync_state: std::sync::Arc::new(self.sync_state.clone()),
            content_exists: self.content.clone(),
            http: self.http.clone(),
            credential_sink: None,
            tokens: self.tokens.clone(),
        }
    }

    /// Constructs an instance and calls `validate_authentication`.
    pub async fn validate(&self) -> Result<(), IntegrationError> {
        let mut integration = (self.registration.construct)(self.context())?;
        let mut outcome = integration.initialize().await;
        if outcome.is_ok() {
            outcome = integration.validate_authentication().await;
        }
        integration.shutdown().await;
        outcome
    }

    /// Runs one task as one job (construct, initialize, run, shutdown) and, on
    /// success, applies its result; returns the result. The task's item, if any,
    /// stops being pending either way.
    pub async fn run(&mut self, task: &Task) -> Result<TaskResult, IntegrationError> {
        *self.runs_by_type.entry(task.task_type.clone()).or_default() += 1;
        let outcome = self.run_job(task).await;
        if let Some(id) = &task.item_id {
            self.content.remove_pending(id);
        }
        let result = outcome?;
        self.apply(&result);
        Ok(result)
    }

    async fn run_job(&self, task: &Task) -> Result<TaskResult, IntegrationError> {
        let mut integration = (self.registration.construct)(self.context())?;
        let mut outcome = integration.initialize().await.map(|()| TaskResult::new());
        if outcome.is_ok() {
            outcome = integration.run_task(task).await;
        }
        integration.shutdown().await;
        outcome
    }

    fn apply(&mut self, result: &TaskResult) {
        for output in &result.outputs {
            if let Output::Item { id, .. } = output {
                *self.produced.entry(id.clone()).or_default() += 1;
            }
            self.content.apply(output);
        }
        if let Some(patch) = &result.sync_state {
            self.sync_state
                .extend(patch.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(credentials) = &result.credentials {
            self.credentials = credentials.clone();
        }
        for task in &result.tasks {
            self.enqueue(task.clone());
        }
    }

    /// Runs queued tasks, first in first out, until the queue is empty or `max_runs`
    /// tasks ran.
    pub async fn run_until_idle(&mut self, max_runs: usize) -> RunSummary {
        let mut summary = RunSummary::default();
        while summary.runs < max_runs {
            let Some(task) = self.queue.pop_front() else {
                break;
            };
            summary.runs += 1;
            if let Err(e) = self.run(&task).await {
                summary.failures.push((task, e));
            }
        }
        summary.idle = self.queue.is_empty();
        summary
    }

    /// Enqueues `task` and runs until idle (at most `max_runs` tasks).
    pub async fn sync(&mut self, task: Task, max_runs: usize) -> RunSummary {
        self.enqueue(task);
        self.run_until_idle(max_runs).await
    }
}

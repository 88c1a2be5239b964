//! [`TaskResult`]: everything one task run hands back to the engine, committed in one
//! transaction together with the job's completion.

use serde_json::{Map, Value};

use crate::{Credentials, IntegrationError, Output, Task, TaskType};

/// What a task produced.
#[derive(Debug, Default, Clone)]
pub struct TaskResult {
    /// Content items and deletion markers to store.
    pub outputs: Vec<Output>,
    /// Child tasks to enqueue, at the parent's priority + 1 (capped).
    pub tasks: Vec<Task>,
    /// Keys to merge into the account's `sync_state` (top-level merge: a key here
    /// replaces the stored key; keys not named are kept).
    pub sync_state: Option<Map<String, Value>>,
    /// Credentials to persist, when a token refresh rotated them.
    pub credentials: Option<Credentials>,
}

impl TaskResult {
    /// An empty result.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an output.
    pub fn push_output(&mut self, output: Output) {
        self.outputs.push(output);
    }

    /// Adds a child task given in its typed form.
    pub fn push_task<T: TaskType>(&mut self, task: &T) -> Result<(), IntegrationError> {
        self.tasks.push(Task::from_typed(task)?);
        Ok(())
    }

    /// Sets one sync-state key.
    pub fn set_sync_state(&mut self, key: impl Into<String>, value: Value) {
        self.sync_state
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
    }

    /// Merges another result into this one (for a task that delegates to another
    /// handler and adds its own outputs).
    pub fn merge(&mut self, other: TaskResult) {
        self.outputs.extend(other.outputs);
        self.tasks.extend(other.tasks);
        if let Some(patch) = other.sync_state {
            self.sync_state.get_or_insert_with(Map::new).extend(patch);
        }
        if other.credentials.is_some() {
            self.credentials = other.credentials;
        }
    }
}

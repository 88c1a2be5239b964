//! The `noop` integration: every task does nothing and returns an empty result, so a
//! benchmark measures the queue and the engine, not a service.

use serde::{Deserialize, Serialize};
use tributary_sdk::{
    Integration, IntegrationContext, IntegrationError, ManifestError, Registration, Task,
    TaskResult, TaskType,
};

/// The integration's registration (manifest and constructor).
pub fn registration() -> Result<Registration, ManifestError> {
    Registration::new(
        "crates/tributary-testkit/src/noop/manifest.json",
        include_str!("manifest.json"),
        NoopIntegration::construct,
    )
}

/// The tasks of the `noop` integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum NoopTask {
    /// Does nothing.
    Start,
    /// Does nothing; `id`, when given, is the task's item id (so a benchmark can
    /// exercise the engine's one-pending-task-per-item rule).
    Noop {
        /// The item id this task claims to fetch.
        #[serde(default)]
        id: Option<String>,
    },
}

impl TaskType for NoopTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            NoopTask::Noop { id } => id.as_deref(),
            NoopTask::Start => None,
        }
    }
}

impl NoopTask {
    /// The stored form of a `noop` task, optionally naming an item.
    pub fn task(id: Option<String>) -> Result<Task, IntegrationError> {
        Task::from_typed(&NoopTask::Noop { id })
    }
}

/// An instance of the `noop` integration.
#[derive(Debug, Default)]
pub struct NoopIntegration;

impl NoopIntegration {
    /// Builds an instance; it ignores credentials, settings and sync state.
    pub fn construct(_ctx: IntegrationContext) -> Result<Box<dyn Integration>, IntegrationError> {
        Ok(Box::new(NoopIntegration))
    }
}

#[async_trait::async_trait]
impl Integration for NoopIntegration {
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        Ok(())
    }

    async fn run_task(&mut self, task: &Task) -> Result<TaskResult, IntegrationError> {
        task.decode::<NoopTask>()?;
        Ok(TaskResult::new())
    }
}

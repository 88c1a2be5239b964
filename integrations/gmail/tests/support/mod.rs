//! Shared test support: an RFC 822 → Gmail API converter, a Gmail API stub, and the
//! plumbing to run one task the way the engine does.

#![allow(dead_code)] // each test binary uses its own subset

pub mod rfc822;
pub mod stub;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tributary_gmail::GmailTask;
use tributary_sdk::http::HttpClient;
use tributary_sdk::{
    ContentExists, Credentials, IntegrationContext, IntegrationError, ItemRef, Task, TaskResult,
};

use stub::Stub;

/// A `content_exists` checker over a fixed set of ids that counts its lookups.
#[derive(Debug, Default)]
pub struct Known {
    ids: Mutex<HashSet<String>>,
    lookups: AtomicUsize,
}

impl Known {
    pub fn new(ids: &[&str]) -> Arc<Known> {
        Arc::new(Known {
            ids: Mutex::new(ids.iter().map(|id| (*id).to_owned()).collect()),
            lookups: AtomicUsize::new(0),
        })
    }

    /// How many batched `existing` lookups were made.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ContentExists for Known {
    async fn known(&self, items: &[ItemRef]) -> Result<HashSet<String>, IntegrationError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let known = self.ids.lock().unwrap();
        Ok(items
            .iter()
            .filter(|item| known.contains(&item.id))
            .map(|item| item.id.clone())
            .collect())
    }

    async fn stored_ids(&self) -> Result<Vec<String>, IntegrationError> {
        let mut ids: Vec<String> = self.ids.lock().unwrap().iter().cloned().collect();
        ids.sort();
        Ok(ids)
    }
}

/// Credentials with an optional stored access token.
pub fn credentials(access_token: Option<&str>, refresh_token: &str) -> Value {
    let mut credentials = json!({
        "clientId": "client-id",
        "clientSecret": "client-secret",
        "refreshToken": refresh_token,
    });
    if let Some(token) = access_token {
        credentials["accessToken"] = json!(token);
    }
    credentials
}

/// A job context for an account on `stub`.
pub fn context(
    stub: &Stub,
    credentials: Value,
    sync_state: Value,
    known: Arc<Known>,
) -> IntegrationContext {
    context_with_settings(stub, credentials, sync_state, known, json!({}))
}

/// A job context with extra settings.
pub fn context_with_settings(
    stub: &Stub,
    credentials: Value,
    sync_state: Value,
    known: Arc<Known>,
    settings: Value,
) -> IntegrationContext {
    let mut all_settings = json!({"baseUrl": stub.base_url, "tokenUrl": stub.token_url});
    if let (Some(all), Value::Object(extra)) = (all_settings.as_object_mut(), settings) {
        all.extend(extra);
    }
    IntegrationContext {
        user_integration_id: 7,
        credentials: Credentials::from_json_str(&credentials.to_string()).unwrap(),
        settings: object(all_settings),
        sync_state: std::sync::Arc::new(object(sync_state)),
        content_exists: known,
        http: HttpClient::new().unwrap(),
        credential_sink: None,
        tokens: tributary_sdk::oauth::TokenCache::new(),
    }
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected a JSON object, got {other}"),
    }
}

/// Runs one task through the lifecycle the engine drives: construct, initialize,
/// run, shutdown.
pub async fn run(ctx: IntegrationContext, task: &Task) -> Result<TaskResult, IntegrationError> {
    let registration = tributary_gmail::registration().unwrap();
    let mut integration = (registration.construct)(ctx)?;
    let result = match integration.initialize().await {
        Ok(()) => integration.run_task(task).await,
        Err(e) => Err(e),
    };
    integration.shutdown().await;
    result
}

/// The child tasks of a result, typed.
pub fn child_tasks(result: &TaskResult) -> Vec<GmailTask> {
    result
        .tasks
        .iter()
        .map(|t| t.decode::<GmailTask>().unwrap())
        .collect()
}

/// The stored form of a typed task.
pub fn task(typed: GmailTask) -> Task {
    Task::from_typed(&typed).unwrap()
}

/// Download tasks for these ids.
pub fn downloads(ids: &[&str]) -> Vec<GmailTask> {
    ids.iter().map(|id| GmailTask::download(*id)).collect()
}

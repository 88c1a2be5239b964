//! The synthetic integration (domain `synthetic`), written against the SDK only, as a
//! real integration would be. Its fake is the testkit's synthetic source
//! (`tributary_testkit::synthetic`), a loopback HTTP server with hooks.
//!
//! It is the tutorial's worked example (`docs/tutorial.md`): a typed integration on the
//! SDK's kit, whose manifest declares its settings and whose kit helpers own the
//! early-stop rule and the full comparison.
//!
//! Settings: `baseUrl` (required), `pageSize` (optional, 1 to 500).
//! Credentials: `token` (secret).
//! Sync state: `cursor`, the change-log position up to which changes were applied.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tributary_sdk::chrono::{DateTime, Utc};
use tributary_sdk::http::{HttpClient, HttpResponse};
use tributary_sdk::kit::delta::FullComparison;
use tributary_sdk::kit::listing;
use tributary_sdk::{
    IntegrationContext, IntegrationError, Job, ManifestError, Output, Registration, Task,
    TaskResult, TaskType, TypedIntegration,
};

/// The sync-state key holding the change-log cursor.
pub const CURSOR_KEY: &str = "cursor";

/// Page size used for the full id comparison after a cursor expired.
const FULL_SCAN_PAGE_SIZE: u32 = 500;

/// The integration's registration (manifest and constructor).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<SyntheticIntegration>(
        "integrations/synthetic/manifest.json",
        include_str!("../manifest.json"),
    )
}

/// The account's settings (declared, with their ranges, in the manifest).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyntheticSettings {
    /// The source's URL.
    pub base_url: String,
    /// Items per list page; the source's default when absent.
    pub page_size: Option<u32>,
}

/// The account's credentials.
#[derive(Clone, Deserialize)]
pub struct SyntheticCredentials {
    /// The source's bearer token.
    pub token: String,
}

/// The tasks of the synthetic integration, stored as `{type, payload}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum SyntheticTask {
    /// Record a cursor if there is none yet, then list the newest page.
    Start,
    /// List one page of ids and enqueue fetches for the new ones.
    #[serde(rename_all = "camelCase")]
    ListItems {
        /// The page to list; `None` is the newest page.
        #[serde(default)]
        page_token: Option<String>,
        /// How many pages in a row before this one had nothing new.
        #[serde(default)]
        empty_pages: u32,
    },
    /// Fetch one item.
    FetchItem {
        /// The item's external id.
        id: String,
    },
    /// Apply the change log since the stored cursor.
    CheckChanges,
}

impl TaskType for SyntheticTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            SyntheticTask::FetchItem { id } => Some(id),
            _ => None,
        }
    }
}

impl SyntheticTask {
    /// The stored form of a `fetchItem` task (with its item id set).
    pub fn fetch(id: impl Into<String>) -> Result<Task, IntegrationError> {
        Task::from_typed(&SyntheticTask::FetchItem { id: id.into() })
    }

    /// The stored form of the `checkChanges` task.
    pub fn check_changes() -> Result<Task, IntegrationError> {
        Task::from_typed(&SyntheticTask::CheckChanges)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    items: Vec<ListEntry>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListEntry {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    id: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    title: Value,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    version: Value,
}

#[derive(Deserialize)]
struct ChangesPage {
    changes: Vec<Change>,
    cursor: String,
    #[serde(default, rename = "hasMore")]
    has_more: bool,
}

#[derive(Deserialize)]
struct Change {
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct CursorBody {
    cursor: String,
}

/// One synthetic-integration instance, living for one job.
pub struct SyntheticIntegration {
    ctx: IntegrationContext,
    base_url: String,
    token: String,
    page_size: Option<u32>,
}

impl std::fmt::Debug for SyntheticIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticIntegration")
            .field("base_url", &self.base_url)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[async_trait::async_trait]
impl TypedIntegration for SyntheticIntegration {
    type Task = SyntheticTask;
    type Settings = SyntheticSettings;
    type Credentials = SyntheticCredentials;

    fn new(job: Job<SyntheticSettings, SyntheticCredentials>) -> Result<Self, IntegrationError> {
        Ok(SyntheticIntegration {
            base_url: job.settings.base_url.trim_end_matches('/').to_owned(),
            page_size: job.settings.page_size,
            token: job.credentials.token,
            ctx: job.ctx,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.current_cursor().await.map(|_| ())
    }

    async fn run(&mut self, task: SyntheticTask) -> Result<TaskResult, IntegrationError> {
        match task {
            SyntheticTask::Start => self.start().await,
            SyntheticTask::ListItems {
                page_token,
                empty_pages,
            } => self.list_items(page_token, empty_pages).await,
            SyntheticTask::FetchItem { id } => self.fetch_item(&id).await,
            SyntheticTask::CheckChanges => self.check_changes().await,
        }
    }
}

impl SyntheticIntegration {
    fn http(&self) -> &HttpClient {
        &self.ctx.http
    }

    /// One authenticated GET; any status is returned, a network failure is transient.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<HttpResponse, IntegrationError> {
        let request = self
            .http()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .query(query);
        self.http().send(request).await
    }

    /// One authenticated GET that must answer 2xx with a JSON body.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, IntegrationError> {
        let response = self.get(path, query).await?;
        if !response.status.is_success() {
            return Err(response.error_for_status());
        }
        response.json()
    }

    async fn current_cursor(&self) -> Result<String, IntegrationError> {
        let body: CursorBody = self
            .get_json("/cursor", &[])
            .await
            .map_err(|e| e.context("failed to read the change-log cursor"))?;
        Ok(body.cursor)
    }

    async fn list_page(
        &self,
        page_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<ListPage, IntegrationError> {
        let size = page_size.map(|n| n.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(size) = &size {
            query.push(("pageSize", size));
        }
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        self.get_json("/items", &query)
            .await
            .map_err(|e| e.context("failed to list items"))
    }

    async fn start(&self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        // Take the cursor before the first listing, so that whatever changes while the
        // backfill runs is replayed by the next `checkChanges`.
        if self.ctx.sync_state_str(CURSOR_KEY).is_none() {
            let cursor = self.current_cursor().await?;
            result.set_sync_state(CURSOR_KEY, Value::String(cursor));
        }
        result.merge(self.list_items(None, 0).await?);
        Ok(result)
    }

    async fn list_items(
        &self,
        page_token: Option<String>,
        empty_pages: u32,
    ) -> Result<TaskResult, IntegrationError> {
        let page = self
            .list_page(page_token.as_deref(), self.page_size)
            .await?;
        let ids = page.items.into_iter().map(|entry| entry.id).collect();
        let step = listing::page(&self.ctx, ids, page.next_page_token, empty_pages).await?;
        let mut result = TaskResult::new();
        for id in step.new_ids {
            result.push_task(&SyntheticTask::FetchItem { id })?;
        }
        if let Some(next) = step.next {
            result.push_task(&SyntheticTask::ListItems {
                page_token: Some(next.token),
                empty_pages: next.consecutive_empty_pages,
            })?;
        }
        Ok(result)
    }

    async fn fetch_item(&self, id: &str) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let response = self
            .get(&format!("/items/{}", encode_segment(id)), &[])
            .await
            .map_err(|e| e.context(format!("failed to fetch item {id}")))?;
        if response.status.as_u16() == 404 {
            // Deleted between the listing and this fetch.
            result.push_output(Output::deleted(id));
            return Ok(result);
        }
        if !response.status.is_success() {
            return Err(response
                .error_for_status()
                .context(format!("failed to fetch item {id}")));
        }
        let item: ItemBody = response
            .json()
            .map_err(|e| e.context(format!("failed to read item {id}")))?;
        if item.id != id {
            return Err(IntegrationError::transient(format!(
                "asked for item {id}, the source answered item {}",
                item.id
            )));
        }
        result.push_output(Output::item(
            item.id,
            item.created_at,
            json!({ "title": item.title, "body": item.body, "version": item.version }),
        ));
        Ok(result)
    }

    async fn check_changes(&self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let Some(mut cursor) = self.ctx.sync_state_str(CURSOR_KEY).map(str::to_owned) else {
            // No backfill has recorded a cursor yet: nothing to compare against.
            return Ok(result);
        };
        // The last change per id wins (added then deleted is a deletion).
        let mut order: Vec<String> = Vec::new();
        let mut last: HashMap<String, String> = HashMap::new();
        loop {
            let response = self
                .get("/changes", &[("cursor", cursor.as_str())])
                .await
                .map_err(|e| e.context("failed to read changes"))?;
            if response.status.as_u16() == 410 {
                return self.full_comparison().await;
            }
            if !response.status.is_success() {
                return Err(response
                    .error_for_status()
                    .context("failed to read changes"));
            }
            let page: ChangesPage = response
                .json()
                .map_err(|e| e.context("failed to read changes"))?;
            for change in page.changes {
                if last.insert(change.id.clone(), change.kind).is_none() {
                    order.push(change.id);
                }
            }
            let advanced = page.cursor != cursor;
            cursor = page.cursor;
            if !page.has_more || !advanced {
                break;
            }
        }
        for id in order {
            match last.get(&id).map(String::as_str) {
                Some("deleted") => result.push_output(Output::deleted(id)),
                Some("added" | "edited") => {
                    result.push_task(&SyntheticTask::FetchItem { id })?;
                }
                Some(other) => {
                    tracing::warn!(kind = other, "synthetic: ignoring unknown change kind");
                }
                None => {}
            }
        }
        result.set_sync_state(CURSOR_KEY, Value::String(cursor));
        Ok(result)
    }

    /// The cursor expired: compare every id at the source with the stored ones, in
    /// the kit's order (a fresh cursor first, then the stored ids, then the listing).
    async fn full_comparison(&self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let cursor = self.current_cursor().await?;
        let mut comparison = FullComparison::begin(&self.ctx).await?;
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .list_page(page_token.as_deref(), Some(FULL_SCAN_PAGE_SIZE))
                .await?;
            let ids = page.items.into_iter().map(|entry| entry.id).collect();
            for id in comparison.listed(&self.ctx, ids).await? {
                result.push_task(&SyntheticTask::FetchItem { id })?;
            }
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => break,
            }
        }
        comparison.finish(&mut result, CURSOR_KEY, Value::String(cursor));
        Ok(result)
    }
}

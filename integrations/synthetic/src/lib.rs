//! The synthetic integration (domain `synthetic`), written against the SDK only, as a
//! real integration would be. Its fake is the testkit's synthetic source
//! (`tributary_testkit::synthetic`), a loopback HTTP server with hooks.
//!
//! Settings: `baseUrl` (required), `pageSize` (optional, 1 to 500).
//! Credentials: `token` (secret).
//! Sync state: `cursor`, the change-log position up to which changes were applied.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tributary_sdk::chrono::{DateTime, Utc};
use tributary_sdk::http::{HttpClient, HttpResponse};
use tributary_sdk::{
    Integration, IntegrationContext, IntegrationError, MAX_EMPTY_PAGES, ManifestError, Output,
    Registration, Task, TaskResult, TaskType,
};

/// The sync-state key holding the change-log cursor.
pub const CURSOR_KEY: &str = "cursor";

/// Page size used for the full id comparison after a cursor expired.
const FULL_SCAN_PAGE_SIZE: u32 = 500;

/// The integration's registration (manifest and constructor).
pub fn registration() -> Result<Registration, ManifestError> {
    Registration::new(
        "integrations/synthetic/manifest.json",
        include_str!("../manifest.json"),
        SyntheticIntegration::construct,
    )
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

impl SyntheticIntegration {
    /// Builds an instance; a missing `baseUrl`, a bad `pageSize` or a missing `token`
    /// is a permanent error naming the field.
    pub fn construct(ctx: IntegrationContext) -> Result<Box<dyn Integration>, IntegrationError> {
        Ok(Box::new(SyntheticIntegration::new(ctx)?))
    }

    /// Like [`SyntheticIntegration::construct`], returning the concrete type.
    pub fn new(ctx: IntegrationContext) -> Result<SyntheticIntegration, IntegrationError> {
        let base_url = match ctx.setting("baseUrl").map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => {
                return Err(IntegrationError::permanent(
                    "setting `baseUrl` is missing: the synthetic integration needs the source's URL",
                ));
            }
        };
        let page_size = match ctx.settings.get("pageSize") {
            None | Some(Value::Null) => None,
            Some(value) => {
                let n = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
                match n {
                    Some(n @ 1..=500) => u32::try_from(n).ok(),
                    _ => {
                        return Err(IntegrationError::permanent(format!(
                            "setting `pageSize` must be an integer from 1 to 500, found {value}"
                        )));
                    }
                }
            }
        };
        let token = ctx.credentials.require("token")?.to_owned();
        Ok(SyntheticIntegration {
            ctx,
            base_url,
            token,
            page_size,
        })
    }

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
        let mut result = TaskResult::new();
        if empty_pages >= MAX_EMPTY_PAGES {
            return Ok(result);
        }
        let page = self
            .list_page(page_token.as_deref(), self.page_size)
            .await?;
        let ids: Vec<String> = page.items.into_iter().map(|entry| entry.id).collect();
        let new_ids = self.ctx.new_ids(ids).await?;
        let empty_pages = if new_ids.is_empty() {
            empty_pages + 1
        } else {
            0
        };
        for id in new_ids {
            result.push_task(&SyntheticTask::FetchItem { id })?;
        }
        if let Some(next) = page.next_page_token
            && empty_pages < MAX_EMPTY_PAGES
        {
            result.push_task(&SyntheticTask::ListItems {
                page_token: Some(next),
                empty_pages,
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

    /// The cursor expired: compare every id at the source with the stored ones.
    async fn full_comparison(&self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        // A fresh cursor first: changes made during the walk are replayed next time.
        let cursor = self.current_cursor().await?;
        let mut remote: Vec<String> = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .list_page(page_token.as_deref(), Some(FULL_SCAN_PAGE_SIZE))
                .await?;
            let ids: Vec<String> = page.items.into_iter().map(|entry| entry.id).collect();
            // One batched query per page, as in a listing; pending fetches count as known.
            for id in self.ctx.new_ids(ids.clone()).await? {
                result.push_task(&SyntheticTask::FetchItem { id })?;
            }
            remote.extend(ids);
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => break,
            }
        }
        let remote: HashSet<String> = remote.into_iter().collect();
        let mut vanished: Vec<String> = self
            .ctx
            .content_exists
            .stored_ids()
            .await?
            .into_iter()
            .filter(|id| !remote.contains(id))
            .collect();
        vanished.sort();
        for id in vanished {
            result.push_output(Output::deleted(id));
        }
        result.set_sync_state(CURSOR_KEY, Value::String(cursor));
        Ok(result)
    }
}

#[async_trait::async_trait]
impl Integration for SyntheticIntegration {
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.current_cursor().await.map(|_| ())
    }

    async fn run_task(&mut self, task: &Task) -> Result<TaskResult, IntegrationError> {
        match task.decode::<SyntheticTask>()? {
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

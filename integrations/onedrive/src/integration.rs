//! The task handlers: what each OneDrive task does, in terms of Graph and the SDK.
//!
//! # The first round is the backfill
//! The drive's delta query (`GET /me/drive/root/delta`) without a token lists every
//! item of the drive, page by page; its last page hands out the `@odata.deltaLink`
//! from which the next round reports what changed. The first `start` queues that first
//! round (`?token=latest` would hand out a link for now and skip every existing
//! file). Each page is one `syncDelta` job: it updates the folder map (see
//! [`tributary_sdk::kit::folders`]) with the page's folders, queues a `fetchItem` for
//! each item not stored at the version listed (first rounds skip items whose fetch is
//! already queued, as listings do), and queues the page of its `@odata.nextLink`. The
//! delta link is stored (`deltaLink`) only by the job of the round's last page,
//! together with that page's work, so a crash resumes from the last committed page.
//! A round in progress is marked (`deltaRound`, the time of its last page) so that no
//! second round starts from the same link meanwhile; a mark older than
//! [`ROUND_STALE_SECS`] belongs to a round that died.
//!
//! # Freshness
//! After the first round, the history check (`checkChanges`, every minute) opens a
//! round from the stored delta link: one request when nothing changed. `start` (every
//! minute too) does the same and lists the first page of the root folder (the top of
//! the drive), fetching what is not stored at the version listed. Both only queue the
//! opening (`syncDelta` without a link, deduplicated: at most one is pending, so the
//! two never read one link at once). During a long first round, a change to an item
//! the round has not reached yet is listed by the round itself, in its new state; a
//! change to one it already listed comes with the first round after it (the round's
//! start fixes where the next one begins), a minute after the backfill ends at most;
//! meanwhile each `start` stores new and changed items of the root folder at once.
//!
//! # Changes
//! A later round reports each changed item once in its latest state, with the
//! folders above it. An item not stored at its version (its `eTag`, see
//! [`crate::content`]) is fetched again even while an older fetch of it is queued or
//! running ([`IntegrationContext::changed`]), so that an edit made during that fetch
//! is not lost; the folders above an edited file keep their eTag and are not fetched.
//! An item with the `deleted` facet is soft-deleted; a deleted folder is reported with
//! everything below it, and the page soft-deletes the folders after what they held
//! (deepest first). A folder renamed or moved changes the path of everything below
//! it, which delta does not report: the folder map tells, and a `refreshFolder` walks
//! the folder's children (`GET /me/drive/items/{id}/children`) and fetches each again
//! (subfolders through their own `refreshFolder`, at most
//! [`tributary_sdk::kit::folders::MAX_DEPTH`] deep).
//!
//! # Fetches
//! `fetchItem` reads the item (`GET /me/drive/items/{id}`) and, for a text-like file
//! ([`tributary_sdk::kit::text::is_text`]), at most `maxTextBytes` of its content
//! (`GET /me/drive/items/{id}/content`: a 302 to a pre-authenticated download URL on
//! another host, followed without the bearer token by `tributary-msgraph`). Binaries
//! are stored as metadata; their content is never read. A 404 (`itemNotFound`) on the
//! item or its content soft-deletes it; an answer that is not a drive item is stored
//! as a failure at the version read, and the account goes on. The item's path comes
//! from the folder map; a parent the map does not hold yet (a first round lists
//! children before their folders when it likes) is taken from the item's
//! `parentReference.path`.
//!
//! # An expired delta link
//! A 410 Gone (`resyncRequired`, `resyncChangesApplyDifferences`,
//! `resyncChangesUploadDifferences`: [`GraphError::ResyncRequired`]) starts a new first
//! round at its `Location` and reads it whole in the job, in the kit's
//! [`FullComparison`] order: the stored ids before anything is listed, every listed
//! item not stored at its version fetched, what was stored and not listed
//! soft-deleted, the folder map rebuilt from the round, and the new delta link last,
//! all in one commit. Both resync codes are handled the same way: this sync never
//! writes to the drive, so there are no local changes to upload, and the drive's
//! state wins.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tributary_msgraph::{
    DeltaItem, DeltaPage, GraphClient, GraphError, GraphSettings, Page, Prefer, RemovedReason,
    RoundProgress,
};
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::kit::delta::FullComparison;
use tributary_sdk::kit::folders::{Folder, FolderMap, MAX_DEPTH, Walk};
use tributary_sdk::kit::text::{self, FileText};
use tributary_sdk::{
    ErrorClass, IntegrationContext, IntegrationError, ItemRef, Job, Output, TaskResult,
    TypedIntegration,
};

use crate::content::{self, CHILDREN_SELECT, DELTA_SELECT, DriveItem, ITEM_SELECT};
use crate::task::OneDriveTask;

/// The sync-state key of the `@odata.deltaLink` of the last round.
pub const DELTA_LINK: &str = "deltaLink";

/// The sync-state key of the round-in-progress mark: the RFC 3339 time of the round's
/// last page (`null` once the round ended).
pub const DELTA_ROUND: &str = "deltaRound";

/// The sync-state key of the folder map.
pub const FOLDERS: &str = "folders";

/// How old a round's mark may be before the round counts as dead.
pub const ROUND_STALE_SECS: i64 = 15 * 60;

/// The most pages one job reads of a round (a full comparison): 10 million items at
/// 1,000 a page. A server that never ends a round is an error, not an endless loop.
const MAX_ROUND_PAGES: usize = 10_000;

/// The code of a failed fetch's output: Graph answered, but not with an item that can
/// be stored.
pub const FAILED_FETCH_CODE: u16 = 502;

/// The account's settings; their defaults and ranges are in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OneDriveSettings {
    /// The Graph root.
    pub base_url: String,
    /// The token endpoint, when not the tenant's.
    pub token_url: Option<String>,
    /// The identity platform's tenant.
    pub tenant: String,
    /// Items per delta page and per folder listing page.
    pub page_size: u32,
    /// The most bytes of a file's text stored.
    pub max_text_bytes: u64,
}

impl OneDriveSettings {
    /// The settings the Graph client takes.
    pub fn graph(&self) -> GraphSettings {
        GraphSettings {
            base_url: self.base_url.clone(),
            token_url: self.token_url.clone(),
            tenant: self.tenant.clone(),
            page_size: self.page_size,
        }
    }
}

/// The OneDrive integration instance of one job.
#[derive(Debug)]
pub struct OneDriveIntegration {
    ctx: IntegrationContext,
    graph: GraphClient,
    page_size: u32,
    max_text_bytes: usize,
    /// The folder map as of the job's claim (updated by the delta pages).
    folders: FolderMap,
}

#[async_trait::async_trait]
impl TypedIntegration for OneDriveIntegration {
    type Task = OneDriveTask;
    type Settings = OneDriveSettings;
    type Credentials = OAuthCredentials;

    fn new(job: Job<OneDriveSettings, OAuthCredentials>) -> Result<Self, IntegrationError> {
        let settings = job.settings.graph();
        // Drive item ids do not change when an item moves: no immutable ids needed.
        let graph = GraphClient::connect(&job, &job.credentials, &settings)?;
        Ok(OneDriveIntegration {
            page_size: settings.clamped_page_size(),
            max_text_bytes: usize::try_from(job.settings.max_text_bytes).unwrap_or(usize::MAX),
            folders: FolderMap::from_sync_state(&job.ctx.sync_state, FOLDERS),
            ctx: job.ctx,
            graph,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.graph
            .get_json::<Value>("me/drive", &[("$select", "id,driveType")])
            .await
            .map(drop)
            .map_err(IntegrationError::from)
    }

    async fn run(&mut self, task: OneDriveTask) -> Result<TaskResult, IntegrationError> {
        match task {
            OneDriveTask::Start => one_task(&OneDriveTask::open_round(true)),
            OneDriveTask::CheckChanges => self.check_changes(),
            OneDriveTask::SyncDelta {
                next_link,
                initial_round,
                list_root,
            } => match next_link {
                Some(link) => self.round_page(link, initial_round).await,
                None => self.open_round(list_root).await,
            },
            OneDriveTask::FetchItem { item_id } => self.fetch(&item_id).await,
            OneDriveTask::RefreshFolder {
                folder_id,
                next_link,
                depth,
            } => {
                self.refresh_folder(&folder_id, next_link.as_deref(), depth)
                    .await
            }
        }
    }
}

/// A result queueing `task` alone.
fn one_task(task: &OneDriveTask) -> Result<TaskResult, IntegrationError> {
    let mut result = TaskResult::new();
    result.push_task(task)?;
    Ok(result)
}

/// The id of an entry (`""` when it has none).
fn entry_id(entry: &Value) -> &str {
    entry.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// An item as the store is asked about it: at its version.
fn versioned(item: &DriveItem) -> ItemRef {
    match item.version() {
        Some(version) => ItemRef::at(&item.id, version),
        None => ItemRef::new(&item.id),
    }
}

/// A folder's entry in the map (the root's name leaves no segment in paths).
fn folder_entry(item: &DriveItem) -> Folder {
    Folder {
        name: if item.is_root() {
            String::new()
        } else {
            item.name()
        },
        parent: item.parent_id().map(str::to_owned),
    }
}

/// What one delta page asks for, once its entries are read.
#[derive(Debug, Default)]
struct PageWork {
    /// Live items below the root, at their versions.
    listed: Vec<ItemRef>,
    /// Items to fetch whatever the store holds (entries that did not decode, or left
    /// the feed by `@removed`).
    refetch: Vec<String>,
    /// Items with the deleted facet.
    deleted: Vec<String>,
}

impl OneDriveIntegration {
    /// Whether a round is in progress (marked, and not stale).
    fn round_in_progress(&self, now: DateTime<Utc>) -> bool {
        let Some(at) = self
            .ctx
            .sync_state_str(DELTA_ROUND)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            return false;
        };
        let age = now
            .signed_duration_since(at.with_timezone(&Utc))
            .num_seconds();
        // A mark from the future (another host's clock) counts for as long.
        age.abs() < ROUND_STALE_SECS
    }

    /// `checkChanges`: queue the opening of a round from the stored delta link,
    /// unless one is in progress. Without a delta link yet, nothing: the first round
    /// is `start`'s.
    fn check_changes(&self) -> Result<TaskResult, IntegrationError> {
        if self.ctx.sync_state_str(DELTA_LINK).is_none() {
            tracing::debug!("no onedrive delta link yet: the first start opens the first round");
            return Ok(TaskResult::new());
        }
        if self.round_in_progress(Utc::now()) {
            tracing::debug!("onedrive delta round in progress: the history check waits");
            return Ok(TaskResult::new());
        }
        one_task(&OneDriveTask::open_round(false))
    }

    /// The URL of a first round.
    fn initial_delta_url(&self) -> String {
        self.graph
            .url(
                &["me", "drive", "root", "delta"],
                &[("$select", DELTA_SELECT)],
            )
            .to_string()
    }

    /// `syncDelta` without a link: a round from the stored delta link (or the first
    /// round), unless one is in progress; with `list_root`, the root's first page too.
    async fn open_round(&mut self, list_root: bool) -> Result<TaskResult, IntegrationError> {
        let in_progress = self.round_in_progress(Utc::now());
        let stored = self.ctx.sync_state_str(DELTA_LINK).map(str::to_owned);
        let mut result = TaskResult::new();
        let mut fetches = Vec::new();
        if list_root && (stored.is_some() || in_progress) {
            fetches = self.list_root().await?;
        }
        if in_progress {
            tracing::debug!("onedrive delta round in progress: no second one");
            push_fetches(&mut result, fetches, Vec::new())?;
            return Ok(result);
        }
        let (link, initial) = match stored {
            Some(link) => (link, false),
            None => (self.initial_delta_url(), true),
        };
        let page = self.page_result(&link, initial).await?;
        let (page, more) = page;
        push_fetches(&mut result, fetches, more)?;
        result.merge(page);
        Ok(result)
    }

    /// `syncDelta` with a link: the next page of a round.
    async fn round_page(
        &mut self,
        link: String,
        initial: bool,
    ) -> Result<TaskResult, IntegrationError> {
        let (mut result, fetches) = self.page_result(&link, initial).await?;
        push_fetches(&mut result, Vec::new(), fetches)?;
        Ok(result)
    }

    /// One page of a round from `link`: the result without its fetches, and the ids
    /// to fetch (for the caller to merge with others, each once).
    async fn page_result(
        &mut self,
        link: &str,
        initial: bool,
    ) -> Result<(TaskResult, Vec<String>), IntegrationError> {
        let page = match self.delta_page(link).await {
            Ok(page) => page,
            Err(GraphError::ResyncRequired(resync)) => {
                tracing::info!(
                    code = resync.code.as_deref().unwrap_or(""),
                    "onedrive delta link no longer valid: comparing the drive in full"
                );
                let restart = resync.restart_link(&self.initial_delta_url()).to_owned();
                return Ok((self.full_comparison(&restart).await?, Vec::new()));
            }
            Err(error) => return Err(error.into()),
        };
        let before = self.folders.clone();
        let progress = page.progress.clone();
        let work = self.read_entries(page.latest_by_id(entry_id));
        let mut result = TaskResult::new();
        self.delete_in_order(&before, work.deleted, &mut result);
        let found = if initial {
            self.ctx.unknown(work.listed).await?
        } else {
            self.ctx.changed(work.listed).await?
        };
        let mut fetches: Vec<String> = found.into_iter().map(|item| item.id).collect();
        fetches.extend(work.refetch);
        self.refresh_moved(&before, &mut result)?;
        if !self.folders.changed_since(&before).is_empty() {
            result.set_sync_state(FOLDERS, self.folders.to_value());
        }
        match progress {
            RoundProgress::Continues { next_link } => {
                result.push_task(&OneDriveTask::SyncDelta {
                    next_link: Some(next_link),
                    initial_round: initial,
                    list_root: false,
                })?;
                result.set_sync_state(DELTA_ROUND, Value::String(Utc::now().to_rfc3339()));
            }
            RoundProgress::Ended { delta_link } => {
                result.set_sync_state(DELTA_LINK, Value::String(delta_link));
                result.set_sync_state(DELTA_ROUND, Value::Null);
            }
        }
        Ok((result, fetches))
    }

    /// One page of a delta round; every entry is kept as a value, to be decoded one
    /// by one (an odd entry must not cost the page).
    async fn delta_page(&mut self, link: &str) -> Result<DeltaPage<Value>, GraphError> {
        let page = self
            .graph
            .get_page::<Value>(link, &[], Prefer::page_size(self.page_size))
            .await?;
        let items = page
            .items
            .into_iter()
            .filter_map(|entry| {
                if entry.get("@removed").is_none() {
                    return Some(DeltaItem::Item(entry));
                }
                let id = entry_id(&entry);
                (!id.is_empty()).then(|| DeltaItem::Removed {
                    id: id.to_owned(),
                    reason: RemovedReason::Deleted,
                })
            })
            .collect();
        DeltaPage::from_page(Page {
            items,
            next_link: page.next_link,
            delta_link: page.delta_link,
        })
    }

    /// Reads a page's entries: the folder map updated, and what to fetch and delete.
    fn read_entries(&mut self, entries: Vec<DeltaItem<Value>>) -> PageWork {
        let mut work = PageWork::default();
        for entry in entries {
            let value = match entry {
                // Drive delta reports deletions with the deleted facet; an `@removed`
                // entry is fetched again (a 404 then soft-deletes it).
                DeltaItem::Removed { id, .. } => {
                    work.refetch.push(id);
                    continue;
                }
                DeltaItem::Item(value) => value,
            };
            let id = entry_id(&value).to_owned();
            if id.is_empty() {
                tracing::warn!("onedrive delta entry without an id; skipped");
                continue;
            }
            match serde_json::from_value::<DriveItem>(value) {
                Err(error) => {
                    // Its fetch stores it, or stores it as a failure.
                    tracing::warn!(item_id = %id, %error, "onedrive delta entry is not a drive item");
                    work.refetch.push(id);
                }
                Ok(item) if item.is_deleted() => work.deleted.push(id),
                Ok(item) => {
                    if item.is_folder() {
                        self.folders.insert(&item.id, folder_entry(&item));
                    } else if self.folders.get(&item.id).is_some() {
                        // No longer a folder (OneDrive does not do this; hostile data).
                        self.folders.remove(&item.id);
                    }
                    if !item.is_root() {
                        work.listed.push(versioned(&item));
                    }
                }
            }
        }
        work
    }

    /// Soft-deletes `deleted` in [`deletion_order`], each folder leaving the map.
    fn delete_in_order(
        &mut self,
        before: &FolderMap,
        deleted: Vec<String>,
        result: &mut TaskResult,
    ) {
        for id in deletion_order(before, &self.folders, deleted) {
            if self.folders.get(&id).is_some() {
                self.folders.remove(&id);
            }
            result.push_output(Output::deleted(id));
        }
    }

    /// Queues a refresh of every folder renamed or moved since `before`.
    fn refresh_moved(
        &self,
        before: &FolderMap,
        result: &mut TaskResult,
    ) -> Result<(), IntegrationError> {
        for id in self.folders.moved_since(before) {
            tracing::debug!(folder_id = %id, "onedrive folder renamed or moved: refreshing below it");
            result.push_task(&OneDriveTask::RefreshFolder {
                folder_id: id,
                next_link: None,
                depth: 0,
            })?;
        }
        Ok(())
    }

    /// The first page of the root folder's children: the ids not stored at the
    /// version listed.
    async fn list_root(&mut self) -> Result<Vec<String>, IntegrationError> {
        let target = self
            .graph
            .url(&["me", "drive", "root", "children"], &[])
            .to_string();
        let top = self.page_size.to_string();
        let page = self
            .graph
            .get_page::<Value>(
                &target,
                &[("$select", CHILDREN_SELECT), ("$top", top.as_str())],
                Prefer::page_size(self.page_size),
            )
            .await?;
        let listed: Vec<ItemRef> = page
            .items
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<DriveItem>(entry).ok())
            .map(|item| versioned(&item))
            .collect();
        Ok(self
            .ctx
            .unknown(listed)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect())
    }

    /// The fallback for an expired delta link (see the module docs): the whole new
    /// round from `restart`, compared with what is stored.
    async fn full_comparison(&mut self, restart: &str) -> Result<TaskResult, IntegrationError> {
        let mut comparison = FullComparison::begin(&self.ctx).await?;
        let before = std::mem::take(&mut self.folders);
        let mut result = TaskResult::new();
        let mut link = restart.to_owned();
        for _ in 0..MAX_ROUND_PAGES {
            let page = match self.delta_page(&link).await {
                Ok(page) => page,
                Err(GraphError::ResyncRequired(_)) => {
                    return Err(IntegrationError::transient(
                        "the new onedrive delta round expired while it was read",
                    ));
                }
                Err(error) => return Err(error.into()),
            };
            let progress = page.progress.clone();
            let work = self.read_entries(page.latest_by_id(entry_id));
            // Deleted entries are not listed: the comparison soft-deletes them if stored.
            let mut fetches = comparison.listed(&self.ctx, work.listed).await?;
            fetches.extend(work.refetch);
            push_fetches(&mut result, Vec::new(), fetches)?;
            match progress {
                RoundProgress::Continues { next_link } => link = next_link,
                RoundProgress::Ended { delta_link } => {
                    self.refresh_moved(&before, &mut result)?;
                    result.set_sync_state(FOLDERS, self.folders.to_value());
                    result.set_sync_state(DELTA_ROUND, Value::Null);
                    comparison.finish(&mut result, DELTA_LINK, Value::String(delta_link));
                    return Ok(result);
                }
            }
        }
        Err(IntegrationError::permanent(format!(
            "the onedrive delta round handed out more than {MAX_ROUND_PAGES} pages"
        )))
    }

    /// `fetchItem`: one item, and a text-like file's text, stored at its version; a
    /// 404 is its deletion.
    async fn fetch(&mut self, id: &str) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let target = self
            .graph
            .url(&["me", "drive", "items", id], &[])
            .to_string();
        let value = match self
            .graph
            .get_json::<Value>(&target, &[("$select", ITEM_SELECT)])
            .await
        {
            Ok(value) => value,
            Err(GraphError::NotFound(_)) => {
                tracing::debug!(item_id = id, "onedrive item gone: soft-deleted");
                result.push_output(Output::deleted(id));
                return Ok(result);
            }
            Err(error) => return failed_or_retried(id, error, None, result),
        };
        // The version is read leniently, so that an item that cannot be decoded is
        // failed at the version read: fetched again only once it changes.
        let read_version = value.get("eTag").and_then(Value::as_str).map(str::to_owned);
        let mut item = match serde_json::from_value::<DriveItem>(value) {
            Ok(item) => item,
            Err(error) => {
                tracing::warn!(item_id = id, %error, "onedrive item cannot be decoded");
                let failed = Output::failed(
                    id,
                    FAILED_FETCH_CODE,
                    format!(
                        "microsoft graph GET /me/drive/items/{{id}}: not a drive item: {error}"
                    ),
                );
                result.push_output(with_version(failed, read_version.as_deref()));
                return Ok(result);
            }
        };
        // The output is the item asked for.
        id.clone_into(&mut item.id);
        if item.is_deleted() {
            result.push_output(Output::deleted(id));
            return Ok(result);
        }
        if item.is_root() {
            // The root is the drive, not an item.
            return Ok(result);
        }
        let text = match self.text_of(&item).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                tracing::debug!(
                    item_id = id,
                    "onedrive item gone before its content: soft-deleted"
                );
                result.push_output(Output::deleted(id));
                return Ok(result);
            }
            Err(error) => return failed_or_retried(id, error, item.version(), result),
        };
        let path = self.path_of(&item);
        let content = content::item_content(&item, &path, text);
        let output = Output::item(id, item.created(), content);
        result.push_output(with_version(output, item.version()));
        Ok(result)
    }

    /// The text of `item` (none for folders and binaries); `None` when it vanished
    /// before its content was read.
    async fn text_of(&mut self, item: &DriveItem) -> Result<Option<FileText>, GraphError> {
        if item.is_folder() || !text::is_text(item.mime_type(), &item.name()) {
            return Ok(Some(FileText::None));
        }
        if self.max_text_bytes == 0 {
            return Ok(Some(FileText::Truncated(String::new())));
        }
        let target = self
            .graph
            .url(&["me", "drive", "items", &item.id, "content"], &[])
            .to_string();
        match self
            .graph
            .get_bytes(&target, &[], self.max_text_bytes)
            .await
        {
            Ok(download) => Ok(Some(FileText::from_bytes(
                &download.bytes,
                download.truncated,
            ))),
            Err(GraphError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The path of `item`: from the folder map, else from its `parentReference.path`,
    /// else as far up as the map goes.
    fn path_of(&self, item: &DriveItem) -> String {
        let none = BTreeMap::new();
        let name = item.name();
        match self.folders.walk(&none, item.parent_id(), &name, false) {
            Walk::Path(path) => path,
            Walk::Missing(_) => item.path_from_reference().unwrap_or_else(|| {
                match self.folders.walk(&none, item.parent_id(), &name, true) {
                    Walk::Path(path) | Walk::Missing(path) => path,
                }
            }),
        }
    }

    /// `refreshFolder`: fetch again one page of what lies in a folder whose path
    /// changed, and queue a refresh of each subfolder.
    async fn refresh_folder(
        &mut self,
        folder_id: &str,
        next_link: Option<&str>,
        depth: u32,
    ) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        if usize::try_from(depth).unwrap_or(usize::MAX) >= MAX_DEPTH {
            tracing::warn!(
                folder_id,
                depth,
                "onedrive folders nested too deeply; refresh stops here"
            );
            return Ok(result);
        }
        let prefer = Prefer::page_size(self.page_size);
        let answer = match next_link {
            Some(link) => self.graph.get_page::<Value>(link, &[], prefer).await,
            None => {
                let target = self
                    .graph
                    .url(&["me", "drive", "items", folder_id, "children"], &[])
                    .to_string();
                let top = self.page_size.to_string();
                let query = [("$select", CHILDREN_SELECT), ("$top", top.as_str())];
                self.graph.get_page::<Value>(&target, &query, prefer).await
            }
        };
        let page = match answer {
            Ok(page) => page,
            Err(GraphError::NotFound(_)) => {
                tracing::debug!(folder_id, "onedrive folder gone before its refresh");
                return Ok(result);
            }
            Err(error) => return Err(error.into()),
        };
        let mut seen = HashSet::new();
        for child in &page.items {
            let id = entry_id(child);
            if id.is_empty() || !seen.insert(id.to_owned()) {
                continue;
            }
            result.push_task(&OneDriveTask::fetch(id))?;
            if child.get("folder").is_some_and(|f| !f.is_null()) {
                result.push_task(&OneDriveTask::RefreshFolder {
                    folder_id: id.to_owned(),
                    next_link: None,
                    depth: depth + 1,
                })?;
            }
        }
        if let Some(next) = page.next_link {
            result.push_task(&OneDriveTask::RefreshFolder {
                folder_id: folder_id.to_owned(),
                next_link: Some(next),
                depth,
            })?;
        }
        Ok(result)
    }
}

/// The order deletions are stored in: files first, then folders (known as folders to
/// the map `before` the page or `now`), deepest first, so that a folder goes after
/// everything it held.
fn deletion_order(before: &FolderMap, now: &FolderMap, deleted: Vec<String>) -> Vec<String> {
    let is_folder = |id: &str| now.get(id).is_some() || before.get(id).is_some();
    let (mut folders, files): (Vec<String>, Vec<String>) =
        deleted.into_iter().partition(|id| is_folder(id));
    folders.sort_by_cached_key(|id| std::cmp::Reverse(now.depth(id).max(before.depth(id))));
    files.into_iter().chain(folders).collect()
}

/// Queues one fetch per id of `first` then `second`, each id once.
fn push_fetches(
    result: &mut TaskResult,
    first: Vec<String>,
    second: Vec<String>,
) -> Result<(), IntegrationError> {
    let mut queued = HashSet::new();
    for id in first.into_iter().chain(second) {
        if queued.insert(id.clone()) {
            result.push_task(&OneDriveTask::fetch(id))?;
        }
    }
    Ok(())
}

/// `output` at `version`, when there is one.
fn with_version(output: Output, version: Option<&str>) -> Output {
    match version {
        Some(version) => output.with_version(version),
        None => output,
    }
}

/// A failed fetch: a permanent error is stored as the item's failure (at `version`),
/// anything else is the engine's to retry.
fn failed_or_retried(
    id: &str,
    error: GraphError,
    version: Option<&str>,
    mut result: TaskResult,
) -> Result<TaskResult, IntegrationError> {
    let error = error.into_integration();
    if error.class() != ErrorClass::Permanent {
        return Err(error);
    }
    tracing::warn!(item_id = id, %error, "onedrive item cannot be fetched");
    let failed = Output::failed(id, FAILED_FETCH_CODE, error.message());
    result.push_output(with_version(failed, version));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_asked_about_at_their_etag() {
        let item: DriveItem =
            serde_json::from_value(json!({"id": "i", "eTag": "e1", "lastModifiedDateTime": "t"}))
                .unwrap();
        assert_eq!(versioned(&item), ItemRef::at("i", "e1"));
        let bare: DriveItem = serde_json::from_value(json!({"id": "j"})).unwrap();
        assert_eq!(versioned(&bare), ItemRef::new("j"));
        assert_eq!(entry_id(&json!({"id": 3})), "");
    }

    #[test]
    fn folders_are_deleted_after_what_they_held_deepest_first() {
        let mut map = FolderMap::default();
        let folder = |name: &str, parent: &str| Folder {
            name: name.into(),
            parent: Some(parent.into()),
        };
        map.insert(
            "root",
            Folder {
                name: String::new(),
                parent: None,
            },
        );
        map.insert("a", folder("A", "root"));
        map.insert("b", folder("B", "a"));
        map.insert("c", folder("C", "b"));
        let deleted = ["a", "f1", "c", "b", "f2"].map(String::from).to_vec();
        assert_eq!(
            deletion_order(&map, &FolderMap::default(), deleted),
            ["f1", "f2", "c", "b", "a"]
        );
    }

    #[test]
    fn the_root_leaves_no_segment_in_paths() {
        let root: DriveItem =
            serde_json::from_value(json!({"id": "r", "name": "root", "root": {}})).unwrap();
        assert_eq!(folder_entry(&root).name, "");
        let docs: DriveItem = serde_json::from_value(
            json!({"id": "d", "name": "Docs", "folder": {}, "parentReference": {"id": "r"}}),
        )
        .unwrap();
        assert_eq!(folder_entry(&docs).parent.as_deref(), Some("r"));
    }
}

//! The task handlers: what each Drive task does, in terms of the client and the SDK.
//!
//! # Finding new and changed files
//! `start` (every minute) lists the most recently modified files over every drive;
//! each `listFiles` page asks the store once which of its files are stored *at the
//! version listed* ([`ItemRef`]), queues a `downloadFile` for the others (folders
//! too: they are items, with a path and no text), and queues the next page
//! unless this was the third page in a row with nothing new. An edited file moves to
//! the top of the listing with a new version and is fetched again; an unchanged one
//! never is.
//!
//! # Following changes
//! The first `start` records the changes cursor (`changes.getStartPageToken`) *before*
//! it lists anything, and the folder tree (see [`crate::folders`]). `checkChanges`
//! (every minute) reads one page of `changes.list` from the stored cursor and commits
//! it with the cursor of the next page, queueing itself again until Drive's last page
//! hands out `newStartPageToken`: a crash in the middle of a long walk resumes at the
//! last committed page, applying nothing twice and skipping nothing. A change that is
//! `removed` (deleted, or access lost) or `trashed` soft-deletes; any other is fetched
//! again when its version is not the stored one (so an untrashed file is restored and
//! a renamed one gets its new path); a folder that was renamed or moved updates the
//! folder map and refreshes everything under it (`refreshFolder`), whose paths
//! changed. When Drive no longer accepts the cursor (400 or 404), the kit's
//! [`FullComparison`] lists everything instead and starts a new cursor.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::kit::delta::FullComparison;
use tributary_sdk::kit::listing;
use tributary_sdk::{
    ErrorClass, IntegrationContext, IntegrationError, ItemRef, Job, Output, TaskResult,
    TypedIntegration,
};

use crate::client::{DriveClient, Export, FOLDER_MIME, File, MAX_PAGE_SIZE};
use crate::content::{self, FileText, TextSource};
use crate::folders::{FOLDERS, Folder, FolderMap, MAX_DEPTH, Walk};
use crate::task::DriveTask;

/// The sync-state key of the changes cursor: a `changes.list` page token (the next
/// page of a walk in progress, or the `newStartPageToken` of the last one).
pub const CHANGES_PAGE_TOKEN: &str = "changesPageToken";

/// The files a sync holds: everything outside the trash.
const FILES_QUERY: &str = "trashed = false";

/// The most pages one task reads when it must read a whole listing (the folder tree,
/// a full comparison): 10 million entries at 1,000 a page. A service that never stops
/// handing out next pages is an error, not an endless loop.
const MAX_PAGES: usize = 10_000;

/// The code of a failed download's output: Drive answered, but not with a file we can
/// store.
pub const FAILED_DOWNLOAD_CODE: u16 = 502;

/// The account's settings; their defaults and ranges are in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriveSettings {
    /// Where the Drive API lives.
    pub base_url: String,
    /// The OAuth token endpoint, when not the manifest's.
    pub token_url: Option<String>,
    /// Files on the first list page of a `start`.
    pub page_size: u32,
    /// Files on the later pages of a listing.
    pub backfill_page_size: u32,
    /// Changes per `changes.list` page.
    pub changes_page_size: u32,
    /// The most bytes of a file's text stored.
    pub max_text_bytes: u64,
}

/// The Google Drive integration instance of one job.
#[derive(Debug)]
pub struct DriveIntegration {
    ctx: IntegrationContext,
    client: DriveClient,
    settings: DriveSettings,
    /// The folder tree as of the job's claim (updated by the tasks that write it).
    folders: FolderMap,
    /// Folders the map lacks, as Drive answered for them during this job.
    looked_up: BTreeMap<String, Option<Folder>>,
}

#[async_trait::async_trait]
impl TypedIntegration for DriveIntegration {
    type Task = DriveTask;
    type Settings = DriveSettings;
    type Credentials = OAuthCredentials;

    fn new(job: Job<DriveSettings, OAuthCredentials>) -> Result<Self, IntegrationError> {
        let token_url = job.token_url(job.settings.token_url.as_deref())?;
        let api = job.bearer_client(&token_url, &job.credentials);
        let client = DriveClient::new(api, &job.settings.base_url)?;
        let folders = FolderMap::from_sync_state(&job.ctx.sync_state, FOLDERS);
        Ok(DriveIntegration {
            ctx: job.ctx,
            client,
            settings: job.settings,
            folders,
            looked_up: BTreeMap::new(),
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.client.root_folder().await.map(|_| ())
    }

    async fn run(&mut self, task: DriveTask) -> Result<TaskResult, IntegrationError> {
        match task {
            DriveTask::Start => self.start().await,
            DriveTask::ListFiles {
                page_token,
                consecutive_empty_pages,
            } => {
                self.list_page(page_token.as_deref(), consecutive_empty_pages)
                    .await
            }
            DriveTask::DownloadFile { file_id } => self.download(&file_id).await,
            DriveTask::RefreshFolder {
                folder_id,
                page_token,
                depth,
            } => {
                self.refresh_folder(&folder_id, page_token.as_deref(), depth)
                    .await
            }
            DriveTask::CheckChanges => self.check_changes().await,
        }
    }
}

impl DriveIntegration {
    /// `start`: on the first run record the cursor, then the folder tree; then list
    /// the first page.
    async fn start(&mut self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let first = self.ctx.sync_state_str(CHANGES_PAGE_TOKEN).is_none()
            || !FolderMap::stored(&self.ctx.sync_state, FOLDERS);
        if first {
            // The cursor first: a change made while the tree is read is found after it.
            let token = self.client.start_page_token().await?;
            let tree = self.read_tree().await?;
            tracing::info!(
                folders = tree.len(),
                "recorded the google drive changes cursor and folder tree"
            );
            self.folders = tree;
            result.set_sync_state(CHANGES_PAGE_TOKEN, Value::String(token));
            result.set_sync_state(FOLDERS, self.folders.to_value());
        }
        result.merge(self.list_page(None, 0).await?);
        Ok(result)
    }

    /// `listFiles`: store the page's folders and download its files that are not
    /// stored at the version listed; queue the next page.
    async fn list_page(
        &mut self,
        page_token: Option<&str>,
        empty_pages_before: u32,
    ) -> Result<TaskResult, IntegrationError> {
        let size = match page_token {
            None => self.settings.page_size,
            Some(_) => self.settings.backfill_page_size,
        };
        let page = self
            .client
            .list_files(FILES_QUERY, size, page_token)
            .await?;
        let items = page.files.iter().map(versioned).collect();
        let step =
            listing::page(&self.ctx, items, page.next_page_token, empty_pages_before).await?;
        let new: HashSet<&str> = step.new_ids.iter().map(String::as_str).collect();
        let mut result = TaskResult::new();
        for file in page.files.iter().filter(|f| new.contains(f.id.as_str())) {
            result.push_task(&DriveTask::download(&file.id))?;
        }
        if let Some(next) = step.next {
            result.push_task(&DriveTask::ListFiles {
                page_token: Some(next.token),
                consecutive_empty_pages: next.consecutive_empty_pages,
            })?;
        }
        Ok(result)
    }

    /// `downloadFile`: the file's metadata and text, or its deletion when it is gone
    /// or in the trash. A file that cannot be fetched or decoded for good becomes a
    /// failed output (stored as a marker at its version, so listings do not queue it
    /// again until it changes).
    async fn download(&mut self, id: &str) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let file = match self.client.get_file(id).await {
            Ok(Some(file)) if !file.trashed => file,
            Ok(_) => {
                tracing::debug!(
                    file_id = id,
                    "drive file gone or trashed before its download"
                );
                result.push_output(Output::deleted(id));
                return Ok(result);
            }
            Err(error) if error.class() == ErrorClass::Permanent => {
                tracing::warn!(file_id = id, %error, "drive file cannot be downloaded");
                result.push_output(Output::failed(id, FAILED_DOWNLOAD_CODE, error.message()));
                return Ok(result);
            }
            Err(error) => return Err(error),
        };
        let output = match self.file_output(&file).await {
            Ok(Some(output)) => output,
            Ok(None) => Output::deleted(id),
            Err(error) if error.class() == ErrorClass::Permanent => {
                tracing::warn!(file_id = id, %error, "drive file content cannot be read");
                let failed = Output::failed(id, FAILED_DOWNLOAD_CODE, error.message());
                match &file.version {
                    Some(version) => failed.with_version(version),
                    None => failed,
                }
            }
            Err(error) => return Err(error),
        };
        result.push_output(output);
        Ok(result)
    }

    /// The stored form of a fetched file with its text; `None` when it vanished while
    /// its content was read.
    async fn file_output(&mut self, file: &File) -> Result<Option<Output>, IntegrationError> {
        let path = self.path_of(file).await?;
        let limit = usize::try_from(self.settings.max_text_bytes).unwrap_or(usize::MAX);
        let text = match content::text_source(&file.mime_type, &file.name) {
            TextSource::None => FileText::None,
            _ if limit == 0 => FileText::Truncated(String::new()),
            TextSource::Export(mime) => match self.client.export(&file.id, mime, limit).await? {
                Export::Text(text) => FileText::from_bytes(&text.bytes, text.truncated),
                Export::TooLarge => {
                    tracing::info!(file_id = %file.id, "drive refused the export as too large");
                    content::EXPORT_TOO_LARGE
                }
                Export::Gone => return Ok(None),
            },
            TextSource::Media => match self.client.download(&file.id, limit).await? {
                Some(text) => FileText::from_bytes(&text.bytes, text.truncated),
                None => return Ok(None),
            },
        };
        Ok(Some(item(file, content::file_content(file, &path, text))))
    }

    /// The path of `file`, looking up the folders the map lacks (at most
    /// [`MAX_DEPTH`] of them).
    async fn path_of(&mut self, file: &File) -> Result<String, IntegrationError> {
        let parent = file.parents.first().map(String::as_str);
        for _ in 0..MAX_DEPTH {
            match self
                .folders
                .walk(&self.looked_up, parent, &file.name, false)
            {
                Walk::Path(path) => return Ok(path),
                Walk::Missing(id) => {
                    let found = self.client.get_parent(&id).await?.map(|f| Folder {
                        name: f.name,
                        parent: f.parents.into_iter().next(),
                    });
                    self.looked_up.insert(id, found);
                }
            }
        }
        match self.folders.walk(&self.looked_up, parent, &file.name, true) {
            Walk::Path(path) | Walk::Missing(path) => Ok(path),
        }
    }

    /// `refreshFolder`: store again one page of what lies in a folder whose path
    /// changed (files through downloads, subfolders from the listing, each with a
    /// refresh of its own).
    async fn refresh_folder(
        &mut self,
        folder_id: &str,
        page_token: Option<&str>,
        depth: u32,
    ) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        if usize::try_from(depth).unwrap_or(usize::MAX) >= MAX_DEPTH {
            tracing::warn!(
                folder_id,
                depth,
                "drive folders nested too deeply; refresh stops here"
            );
            return Ok(result);
        }
        let q = format!("'{}' in parents and trashed = false", quote(folder_id));
        let page = self
            .client
            .list_files(&q, self.settings.backfill_page_size, page_token)
            .await?;
        for file in &page.files {
            result.push_task(&DriveTask::download(&file.id))?;
            if file.is_folder() {
                result.push_task(&DriveTask::RefreshFolder {
                    folder_id: file.id.clone(),
                    page_token: None,
                    depth: depth + 1,
                })?;
            }
        }
        if let Some(next) = page.next_page_token {
            result.push_task(&DriveTask::RefreshFolder {
                folder_id: folder_id.to_owned(),
                page_token: Some(next),
                depth,
            })?;
        }
        Ok(result)
    }

    /// `checkChanges`: apply one page of changes after the stored cursor.
    async fn check_changes(&mut self) -> Result<TaskResult, IntegrationError> {
        let Some(cursor) = self
            .ctx
            .sync_state_str(CHANGES_PAGE_TOKEN)
            .map(str::to_owned)
        else {
            tracing::debug!("no google drive changes cursor yet: the first start records one");
            return Ok(TaskResult::new());
        };
        let Some(page) = self
            .client
            .list_changes(&cursor, self.settings.changes_page_size)
            .await?
        else {
            tracing::info!("google drive changes cursor no longer valid: comparing everything");
            return self.full_comparison().await;
        };
        let before = self.folders.clone();
        // One action per file, the page's last change winning (Drive already sends
        // only each file's latest change, but a page must not depend on it).
        let mut latest: BTreeMap<String, Option<File>> = BTreeMap::new();
        for change in page.changes {
            if change.change_type == "drive" {
                continue;
            }
            let Some(id) = change
                .file_id
                .or_else(|| change.file.as_ref().map(|f| f.id.clone()))
            else {
                continue;
            };
            let live = change.file.filter(|f| !change.removed && !f.trashed);
            latest.insert(id, live);
        }
        let mut result = TaskResult::new();
        let mut live = Vec::new();
        for (id, file) in latest {
            match file {
                None => {
                    self.folders.remove(&id);
                    result.push_output(Output::deleted(id));
                }
                Some(file) => {
                    if file.is_folder() {
                        self.folders.insert(&file.id, folder_entry(&file));
                    } else if self.folders.get(&file.id).is_some() {
                        // No longer a folder (Drive does not do this; a hostile answer).
                        self.folders.remove(&file.id);
                    }
                    live.push(file);
                }
            }
        }
        // Changed means not stored at the version reported: a file whose fetch is
        // queued or running is fetched again (the queue runs that fetch once more), so
        // an edit made while it ran is not lost.
        let items = live.iter().map(versioned).collect();
        let new: HashSet<String> = self
            .ctx
            .changed(items)
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        for file in live.iter().filter(|f| new.contains(&f.id)) {
            result.push_task(&DriveTask::download(&file.id))?;
        }
        self.refresh_moved(&before, &mut result)?;
        if !self.folders.changed_since(&before).is_empty() {
            result.set_sync_state(FOLDERS, self.folders.to_value());
        }
        match (page.next_page_token, page.new_start_page_token) {
            (Some(next), _) => {
                result.set_sync_state(CHANGES_PAGE_TOKEN, Value::String(next));
                result.push_task(&DriveTask::CheckChanges)?;
            }
            (None, Some(new_start)) => {
                result.set_sync_state(CHANGES_PAGE_TOKEN, Value::String(new_start));
            }
            (None, None) => {
                tracing::warn!(
                    "google drive changes page without a next or new start token; keeping the cursor"
                );
            }
        }
        Ok(result)
    }

    /// Queues a refresh of every folder that was renamed or moved since `before` (the
    /// paths under it changed).
    fn refresh_moved(
        &self,
        before: &FolderMap,
        result: &mut TaskResult,
    ) -> Result<(), IntegrationError> {
        for id in self.folders.moved_since(before) {
            result.push_task(&DriveTask::RefreshFolder {
                folder_id: id,
                page_token: None,
                depth: 0,
            })?;
        }
        Ok(())
    }

    /// The fallback for a cursor Drive refused: a new cursor first, the tree, then
    /// every file compared with what is stored (in the order the kit's
    /// [`FullComparison`] explains).
    async fn full_comparison(&mut self) -> Result<TaskResult, IntegrationError> {
        let token = self.client.start_page_token().await?;
        let mut comparison = FullComparison::begin(&self.ctx).await?;
        let before = std::mem::take(&mut self.folders);
        let tree = self.read_tree().await?;
        self.folders = tree;
        let mut result = TaskResult::new();
        self.refresh_moved(&before, &mut result)?;
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_files(FILES_QUERY, MAX_PAGE_SIZE, page_token.as_deref())
                .await?;
            let items: Vec<ItemRef> = page.files.iter().map(versioned).collect();
            let new: HashSet<String> = comparison
                .listed(&self.ctx, items)
                .await?
                .into_iter()
                .collect();
            for file in page.files.iter().filter(|f| new.contains(&f.id)) {
                result.push_task(&DriveTask::download(&file.id))?;
            }
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => {
                    result.set_sync_state(FOLDERS, self.folders.to_value());
                    comparison.finish(&mut result, CHANGES_PAGE_TOKEN, Value::String(token));
                    return Ok(result);
                }
            }
        }
        Err(too_many_pages("files.list"))
    }

    /// Every folder the account can see (with My Drive's root and each shared drive's
    /// root, named).
    async fn read_tree(&mut self) -> Result<FolderMap, IntegrationError> {
        let mut tree = FolderMap::default();
        let root = self.client.root_folder().await?;
        let root_name = if root.name.is_empty() {
            "My Drive".to_owned()
        } else {
            root.name
        };
        tree.insert(
            &root.id,
            Folder {
                name: root_name,
                parent: None,
            },
        );
        let mut page_token: Option<String> = None;
        let mut drives_done = false;
        for _ in 0..MAX_PAGES {
            let page = self.client.list_drives(page_token.as_deref()).await?;
            for drive in page.drives {
                tree.insert(
                    &drive.id,
                    Folder {
                        name: drive.name,
                        parent: None,
                    },
                );
            }
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => {
                    drives_done = true;
                    break;
                }
            }
        }
        if !drives_done {
            return Err(too_many_pages("drives.list"));
        }
        let q = format!("mimeType = '{FOLDER_MIME}' and trashed = false");
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_files(&q, MAX_PAGE_SIZE, page_token.as_deref())
                .await?;
            for folder in page.files.iter().filter(|f| f.is_folder()) {
                tree.insert(&folder.id, folder_entry(folder));
            }
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => return Ok(tree),
            }
        }
        Err(too_many_pages("files.list"))
    }
}

/// A file as the store is asked about it: at its version (or, lacking one, its
/// modification time).
fn versioned(file: &File) -> ItemRef {
    match file.version.as_deref().or(file.modified_time.as_deref()) {
        Some(version) => ItemRef::at(&file.id, version),
        None => ItemRef::new(&file.id),
    }
}

/// A stored item of `file` with `content`, at the file's version.
fn item(file: &File, content: Value) -> Output {
    let output = Output::item(&file.id, content::created(file), content);
    match &file.version {
        Some(version) => output.with_version(version),
        None => output,
    }
}

/// A folder's entry in the map.
fn folder_entry(folder: &File) -> Folder {
    Folder {
        name: folder.name.clone(),
        parent: folder.parents.first().cloned(),
    }
}

/// `value` quoted for Drive's query language (inside single quotes).
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn too_many_pages(method: &str) -> IntegrationError {
    IntegrationError::permanent(format!(
        "google drive {method} handed out more than {MAX_PAGES} pages"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_their_values() {
        assert_eq!(quote("a'b\\c"), "a\\'b\\\\c");
    }

    #[test]
    fn files_are_asked_about_at_their_version() {
        let file = File {
            id: "f".into(),
            version: Some("9".into()),
            modified_time: Some("2026-01-01T00:00:00.000Z".into()),
            ..File::default()
        };
        assert_eq!(versioned(&file), ItemRef::at("f", "9"));
        let older = File {
            version: None,
            ..file.clone()
        };
        assert_eq!(
            versioned(&older),
            ItemRef::at("f", "2026-01-01T00:00:00.000Z")
        );
        assert_eq!(item(&file, Value::Null).version(), Some("9"));
    }
}

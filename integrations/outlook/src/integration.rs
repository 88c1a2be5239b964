//! The task handlers: what each Outlook task does, in terms of Graph and the SDK.
//!
//! # New mail first
//! After the first one (below), `start` (every minute) lists the Inbox newest first (`GET
//! /me/mailFolders/{id}/messages?$orderby=receivedDateTime desc&$top=pageSize`), one
//! page per `listMessages` task; each page asks the store once which of its messages
//! are known at the version listed ([`ItemRef`], see [`crate::content`]) and queues a
//! `fetchMessage` for the others. When a folder ends, the listing goes on with the next
//! folder of the tree, carrying the count of pages in a row with nothing new; it stops
//! after three such pages (the kit's [`listing`] rule). A routine `start` costs one to
//! three requests, and a `start` during a backfill queues the newest mail ahead of
//! the backlog.
//!
//! # Following changes: a delta round per folder
//! Graph's mail delta is per folder. The first `start` reads the folder tree and opens
//! a round in every folder: the first page of `GET
//! /me/mailFolders/{id}/messages/delta` (with `Prefer: odata.maxpagesize`) fixes the
//! point after which the next round reports changes, so whatever changes while the
//! backfill runs is found by the next round. These first rounds, which list every
//! message as it is, are the backfill: that `start` lists nothing else, so that no
//! message is found by two listings at once (a fetch asked for again while it runs
//! runs twice). Each page is one job (`syncFolder`): its
//! messages not known at the version listed are fetched, and it queues the page of its
//! `@odata.nextLink`. The `@odata.deltaLink` is stored (`deltaLink:{folderId}`) only
//! by the job of the round's last page, together with that page's work, so a crash
//! resumes from the last committed round. A round in progress is marked
//! (`deltaRound:{folderId}`, the time of its last page) so that the history check
//! (`checkMail`, every minute) starts no second one in that folder; a mark older than
//! [`ROUND_STALE_SECS`] belongs to a round that died, and a new one starts.
//!
//! A folder's first round lists every message in it: its pages skip messages whose
//! fetch is queued, as a listing does ([`IntegrationContext::unknown`]). Later rounds
//! report changes: a message not stored at the version reported is fetched again even
//! while an older fetch of it is queued or running ([`IntegrationContext::changed`]),
//! so that an edit made during that fetch is not lost.
//!
//! # Moves and deletions
//! Requests carry `Prefer: IdType="ImmutableId"` (delta links included), so a message
//! keeps its id when it moves between folders: one item, whose `folder` changes.
//! A round reports a message that left its folder as `@removed`, with the reason
//! `deleted` or `changed`; Graph does not say which a move gives, and a move may show
//! up in the destination's round before or after the source's. So `@removed` never
//! deletes by itself: **the message is fetched again by its immutable id**. A 404
//! (`ErrorItemNotFound`) soft-deletes it; a message found (in another folder, or back
//! in the same one) is stored as it is now, with its new folder. Two rounds that name
//! one message queue one fetch; a replay (one message twice in a round) counts once.
//! Deleting in Outlook moves a message to Deleted Items (a move); deleting it there
//! removes it for good (a 404, a soft delete).
//!
//! # An expired delta link
//! A delta link Graph no longer knows (410 Gone, `syncStateNotFound`,
//! `resyncRequired`) is replaced for that folder only, by the kit's
//! [`FullComparison`] scoped to the folder ([`FullComparison::of`]): the new round's
//! link first (the 410's `Location`), then the stored messages of that folder (the
//! folder is in each stored version), then the whole new round read (messages not
//! stored at their version are fetched), then what vanished (stored in the folder,
//! not listed) is fetched again (the move/delete rule: gone → soft delete, moved →
//! updated), and the new delta link last, all in the one commit. Other folders keep
//! their links.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tributary_msgraph::{
    DeltaItem, DeltaPage, GraphClient, GraphError, GraphSettings, Page, Prefer, RoundProgress,
};
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::kit::delta::FullComparison;
use tributary_sdk::kit::listing;
use tributary_sdk::{
    ErrorClass, IntegrationContext, IntegrationError, ItemRef, Job, MAX_EMPTY_PAGES, Output,
    TaskResult, TypedIntegration,
};

use crate::content::{
    self, ATTACHMENT_SELECT, Attachment, FolderInfo, LISTING_SELECT, MESSAGE_SELECT, Message,
};
use crate::folders::{self, FOLDERS, FolderMap};
use crate::task::OutlookTask;

/// The prefix of a folder's delta link in the sync state: `deltaLink:{folderId}`.
pub const DELTA_LINK_PREFIX: &str = "deltaLink:";

/// The prefix of a folder's round-in-progress mark: `deltaRound:{folderId}`, the RFC
/// 3339 time of the round's last page (`null` once the round ended).
pub const DELTA_ROUND_PREFIX: &str = "deltaRound:";

/// How old a round's mark may be before the round counts as dead.
pub const ROUND_STALE_SECS: i64 = 15 * 60;

/// The most pages one job reads of a round (a full comparison): 10 million messages at
/// 1,000 a page. A server that never ends a round is an error, not an endless loop.
const MAX_ROUND_PAGES: usize = 10_000;

/// The most pages of one message's attachment listing.
const MAX_ATTACHMENT_PAGES: usize = 10;

/// The code of a failed fetch's output: Graph answered, but not with a message that
/// can be stored.
pub const FAILED_FETCH_CODE: u16 = 502;

/// Above every external id, for a range over the whole account.
const IDS_END: &str = "\u{10FFFF}";

/// The sync-state key of folder `id`'s delta link.
pub fn delta_link_key(folder_id: &str) -> String {
    format!("{DELTA_LINK_PREFIX}{folder_id}")
}

/// The sync-state key of folder `id`'s round mark.
pub fn delta_round_key(folder_id: &str) -> String {
    format!("{DELTA_ROUND_PREFIX}{folder_id}")
}

/// The account's settings; their defaults and ranges are in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlookSettings {
    /// The Graph root.
    pub base_url: String,
    /// The token endpoint, when not the tenant's.
    pub token_url: Option<String>,
    /// The identity platform's tenant.
    pub tenant: String,
    /// Messages per listing page and per delta page.
    pub page_size: u32,
    /// The most bytes of a text body stored.
    pub max_body_bytes: u64,
}

impl OutlookSettings {
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

/// Where a round's page comes from.
#[derive(Debug, Clone)]
enum Round {
    /// The stored delta link, or a first round when there is none.
    Stored,
    /// A first round.
    First,
    /// A next link of a round in progress.
    Next {
        /// The `@odata.nextLink`.
        link: String,
        /// Whether the round is a first one.
        initial: bool,
    },
}

/// The Outlook integration instance of one job.
#[derive(Debug)]
pub struct OutlookIntegration {
    ctx: IntegrationContext,
    graph: GraphClient,
    page_size: u32,
    max_body_bytes: usize,
}

#[async_trait::async_trait]
impl TypedIntegration for OutlookIntegration {
    type Task = OutlookTask;
    type Settings = OutlookSettings;
    type Credentials = OAuthCredentials;

    fn new(job: Job<OutlookSettings, OAuthCredentials>) -> Result<Self, IntegrationError> {
        let settings = job.settings.graph();
        let graph = GraphClient::connect(&job, &job.credentials, &settings)?.with_immutable_ids();
        Ok(OutlookIntegration {
            page_size: settings.clamped_page_size(),
            max_body_bytes: usize::try_from(job.settings.max_body_bytes).unwrap_or(usize::MAX),
            ctx: job.ctx,
            graph,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.graph
            .get_json::<Value>("me/mailFolders/inbox", &[("$select", "id")])
            .await
            .map(drop)
            .map_err(IntegrationError::from)
    }

    async fn run(&mut self, task: OutlookTask) -> Result<TaskResult, IntegrationError> {
        match task {
            OutlookTask::Start => self.start().await,
            OutlookTask::ListMessages {
                folder_id,
                next_link,
                consecutive_empty_pages,
            } => {
                self.list_messages(
                    &folder_id,
                    next_link.as_deref(),
                    consecutive_empty_pages,
                    None,
                )
                .await
            }
            OutlookTask::SyncFolder {
                folder_id,
                next_link,
                initial_round,
            } => {
                let round = match next_link {
                    Some(link) => Round::Next {
                        link,
                        initial: initial_round,
                    },
                    None => Round::Stored,
                };
                self.folder_page(&folder_id, round).await
            }
            OutlookTask::FetchMessage { message_id } => self.fetch(&message_id).await,
            OutlookTask::CheckMail => self.check_mail().await,
        }
    }
}

/// The id of a delta entry (`""` when it has none; such entries are skipped).
fn entry_id(entry: &Value) -> &str {
    entry.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// A listed or delta entry as the store is asked about it.
fn entry_ref(entry: &Value, folder_id: &str) -> Option<ItemRef> {
    let id = entry_id(entry);
    if id.is_empty() {
        tracing::warn!(folder_id, "outlook listed a message without an id; skipped");
        return None;
    }
    Some(ItemRef::at(id, content::version_of_entry(entry, folder_id)))
}

impl OutlookIntegration {
    /// `start`: on the first run, the folder tree and a delta round opened in every
    /// folder (its first page, newest first: the backfill); later, the first page of
    /// the Inbox.
    async fn start(&mut self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let Some(map) = FolderMap::from_sync_state(&self.ctx.sync_state) else {
            let tree = folders::read_tree(&mut self.graph).await?;
            // The rounds are the backfill: each first page fixes where its next
            // round's changes begin, before anything of its folder is fetched. The
            // first start lists nothing else, so that no message is found by two
            // listings at once (and fetched twice).
            for folder in &tree.folders {
                result.merge(self.folder_page(&folder.id, Round::First).await?);
            }
            tracing::info!(
                folders = tree.folders.len(),
                "recorded the outlook folder tree and opened a delta round in every folder"
            );
            result.set_sync_state(FOLDERS, tree.to_value());
            return Ok(result);
        };
        let Some(first) = map.folders.first().map(|f| f.id.clone()) else {
            return Ok(result);
        };
        result.merge(self.list_messages(&first, None, 0, Some(&map)).await?);
        Ok(result)
    }

    /// `listMessages`: one page of a folder, newest first; the next page, or the next
    /// folder's first (from `map`, else the stored tree), unless the early stop says
    /// the listing is over.
    async fn list_messages(
        &mut self,
        folder_id: &str,
        next_link: Option<&str>,
        empty_pages_before: u32,
        map: Option<&FolderMap>,
    ) -> Result<TaskResult, IntegrationError> {
        let prefer = Prefer::page_size(self.page_size);
        let answer = match next_link {
            Some(link) => self.graph.get_page::<Value>(link, &[], prefer).await,
            None => {
                let target = self
                    .graph
                    .url(&["me", "mailFolders", folder_id, "messages"], &[])
                    .to_string();
                let top = self.page_size.to_string();
                let query = [
                    ("$orderby", "receivedDateTime desc"),
                    ("$top", top.as_str()),
                    ("$select", LISTING_SELECT),
                ];
                self.graph.get_page::<Value>(&target, &query, prefer).await
            }
        };
        let page = match answer {
            Ok(page) => page,
            Err(GraphError::NotFound(_)) => {
                tracing::info!(folder_id, "outlook folder gone before its listing");
                Page {
                    items: Vec::new(),
                    next_link: None,
                    delta_link: None,
                }
            }
            Err(other) => return Err(other.into()),
        };
        let refs: Vec<ItemRef> = page
            .items
            .iter()
            .filter_map(|entry| entry_ref(entry, folder_id))
            .collect();
        let had_next = page.next_link.is_some();
        let step = listing::page(&self.ctx, refs, page.next_link, empty_pages_before).await?;
        let mut result = TaskResult::new();
        for id in &step.new_ids {
            result.push_task(&OutlookTask::fetch(id))?;
        }
        match step.next {
            Some(next) => result.push_task(&OutlookTask::ListMessages {
                folder_id: folder_id.to_owned(),
                next_link: Some(next.token),
                consecutive_empty_pages: next.consecutive_empty_pages,
            })?,
            // Stopped by the rule: three pages in a row with nothing new.
            None if had_next => {}
            // The folder ended: the next folder, carrying the count.
            None => {
                let empty = if step.new_ids.is_empty() {
                    empty_pages_before.saturating_add(1)
                } else {
                    0
                };
                let following = match map {
                    Some(map) => map.after(folder_id).map(|f| f.id.clone()),
                    None => FolderMap::from_sync_state(&self.ctx.sync_state)
                        .and_then(|map| map.after(folder_id).map(|f| f.id.clone())),
                };
                if let Some(following) = following.filter(|_| empty < MAX_EMPTY_PAGES) {
                    result.push_task(&OutlookTask::ListMessages {
                        folder_id: following,
                        next_link: None,
                        consecutive_empty_pages: empty,
                    })?;
                }
            }
        }
        Ok(result)
    }

    /// The URL of a first delta round of `folder_id`.
    fn initial_delta_url(&self, folder_id: &str) -> String {
        self.graph
            .url(
                &["me", "mailFolders", folder_id, "messages", "delta"],
                &[("$select", LISTING_SELECT)],
            )
            .to_string()
    }

    /// One page of a delta round; an entry that is not a message nor a removal is
    /// skipped (logged), never the page.
    async fn delta_page(&mut self, link: &str) -> Result<DeltaPage<Value>, GraphError> {
        let page = self
            .graph
            .get_page::<Value>(link, &[], Prefer::page_size(self.page_size))
            .await?;
        let items = page
            .items
            .into_iter()
            .filter_map(
                |entry| match serde_json::from_value::<DeltaItem<Value>>(entry) {
                    Ok(item) => Some(item),
                    Err(error) => {
                        tracing::warn!(%error, "outlook delta entry skipped");
                        None
                    }
                },
            )
            .collect();
        DeltaPage::from_page(Page {
            items,
            next_link: page.next_link,
            delta_link: page.delta_link,
        })
    }

    /// `syncFolder` (and the rounds `start` and `checkMail` open): one page of
    /// `folder_id`'s round.
    async fn folder_page(
        &mut self,
        folder_id: &str,
        round: Round,
    ) -> Result<TaskResult, IntegrationError> {
        let initial_url = self.initial_delta_url(folder_id);
        let (link, initial) = match round {
            Round::Stored => match self.ctx.sync_state_str(&delta_link_key(folder_id)) {
                Some(link) => (link.to_owned(), false),
                None => (initial_url.clone(), true),
            },
            Round::First => (initial_url.clone(), true),
            Round::Next { link, initial } => (link, initial),
        };
        let mut result = TaskResult::new();
        let page = match self.delta_page(&link).await {
            Ok(page) => page,
            Err(GraphError::ResyncRequired(resync)) => {
                tracing::info!(
                    folder_id,
                    code = resync.code.as_deref().unwrap_or(""),
                    "outlook delta link no longer valid: comparing the folder in full"
                );
                let restart = resync.restart_link(&initial_url).to_owned();
                return self.compare_folder(folder_id, &restart).await;
            }
            Err(GraphError::NotFound(_)) => {
                tracing::info!(folder_id, "outlook folder gone: its round ends");
                end_round(&mut result, folder_id, Value::Null);
                return Ok(result);
            }
            Err(GraphError::Failed(error)) => return Err(error),
        };
        let progress = page.progress.clone();
        let mut listed = Vec::new();
        for entry in page.latest_by_id(entry_id) {
            match entry {
                DeltaItem::Item(message) => listed.extend(entry_ref(&message, folder_id)),
                // The move/delete rule: fetched again, gone or found elsewhere.
                DeltaItem::Removed { id, .. } => result.push_task(&OutlookTask::fetch(id))?,
            }
        }
        let fetch = if initial {
            self.ctx.unknown(listed).await?
        } else {
            self.ctx.changed(listed).await?
        };
        for item in fetch {
            result.push_task(&OutlookTask::fetch(item.id))?;
        }
        match progress {
            RoundProgress::Continues { next_link } => {
                result.push_task(&OutlookTask::SyncFolder {
                    folder_id: folder_id.to_owned(),
                    next_link: Some(next_link),
                    initial_round: initial,
                })?;
                mark_round(&mut result, folder_id, Utc::now());
            }
            RoundProgress::Ended { delta_link } => {
                end_round(&mut result, folder_id, Value::String(delta_link));
            }
        }
        Ok(result)
    }

    /// The stored (not deleted) messages whose stored version puts them in one of
    /// `folder_ids`: one read of the account's ids and versions.
    async fn stored_in(&self, folder_ids: &HashSet<&str>) -> Result<Vec<String>, IntegrationError> {
        let stored = self.ctx.content_exists.stored_between("", IDS_END).await?;
        Ok(stored
            .into_iter()
            .filter(|item| {
                item.version
                    .as_deref()
                    .and_then(content::folder_of_version)
                    .is_some_and(|folder| folder_ids.contains(folder))
            })
            .map(|item| item.id)
            .collect())
    }

    /// The fallback for an expired delta link of `folder_id` (see the module docs):
    /// the whole new round from `restart`, compared with what is stored in the folder.
    async fn compare_folder(
        &mut self,
        folder_id: &str,
        restart: &str,
    ) -> Result<TaskResult, IntegrationError> {
        // The stored messages of the folder before anything is listed: a message
        // stored meanwhile by another job is not taken for one that vanished.
        let stored = self.stored_in(&HashSet::from([folder_id])).await?;
        let mut comparison = FullComparison::of(stored.clone());
        let mut result = TaskResult::new();
        let mut link = restart.to_owned();
        for _ in 0..MAX_ROUND_PAGES {
            let page = match self.delta_page(&link).await {
                Ok(page) => page,
                Err(GraphError::ResyncRequired(_)) => {
                    return Err(IntegrationError::transient(format!(
                        "the new delta round of outlook folder {folder_id} expired while it was read"
                    )));
                }
                Err(GraphError::NotFound(_)) => {
                    tracing::info!(folder_id, "outlook folder gone during its comparison");
                    for id in stored {
                        result.push_task(&OutlookTask::fetch(id))?;
                    }
                    end_round(&mut result, folder_id, Value::Null);
                    return Ok(result);
                }
                Err(GraphError::Failed(error)) => return Err(error),
            };
            let progress = page.progress.clone();
            let mut refs = Vec::new();
            for entry in page.latest_by_id(entry_id) {
                match entry {
                    DeltaItem::Item(message) => refs.extend(entry_ref(&message, folder_id)),
                    DeltaItem::Removed { id, .. } => result.push_task(&OutlookTask::fetch(id))?,
                }
            }
            for id in comparison.listed(&self.ctx, refs).await? {
                result.push_task(&OutlookTask::fetch(id))?;
            }
            match progress {
                RoundProgress::Continues { next_link } => link = next_link,
                RoundProgress::Ended { delta_link } => {
                    let (listed, fetches) = (comparison.listed_count(), comparison.fetches());
                    // What vanished is fetched again: gone is a soft delete, moved to
                    // another folder an update (the move rule), never a delete here.
                    let vanished = comparison.vanished();
                    tracing::info!(
                        folder_id,
                        listed,
                        fetches,
                        vanished = vanished.len(),
                        "outlook folder compared in full; a new delta round recorded"
                    );
                    for id in vanished {
                        result.push_task(&OutlookTask::fetch(id))?;
                    }
                    end_round(&mut result, folder_id, Value::String(delta_link));
                    return Ok(result);
                }
            }
        }
        Err(IntegrationError::permanent(format!(
            "the delta round of outlook folder {folder_id} handed out more than {MAX_ROUND_PAGES} pages"
        )))
    }

    /// Whether a round of `folder_id` is in progress (marked, and not stale).
    fn round_in_progress(&self, folder_id: &str, now: DateTime<Utc>) -> bool {
        let Some(at) = self
            .ctx
            .sync_state_str(&delta_round_key(folder_id))
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

    /// `checkMail`: the tree read again; a round started in every folder that has
    /// none in progress; the messages of vanished folders fetched again.
    async fn check_mail(&mut self) -> Result<TaskResult, IntegrationError> {
        let Some(stored) = FolderMap::from_sync_state(&self.ctx.sync_state) else {
            tracing::debug!("no outlook folder tree yet: the first start records it");
            return Ok(TaskResult::new());
        };
        let tree = folders::read_tree(&mut self.graph).await?;
        let now = Utc::now();
        let mut result = TaskResult::new();
        let mut started = 0usize;
        for folder in &tree.folders {
            if self.round_in_progress(&folder.id, now) {
                continue;
            }
            started += 1;
            if self
                .ctx
                .sync_state_str(&delta_link_key(&folder.id))
                .is_some()
            {
                result.push_task(&OutlookTask::SyncFolder {
                    folder_id: folder.id.clone(),
                    next_link: None,
                    initial_round: false,
                })?;
                mark_round(&mut result, &folder.id, now);
            } else {
                // A new folder (or one whose link was dropped): its first page here, in
                // the commit that adds it to the tree.
                result.merge(self.folder_page(&folder.id, Round::First).await?);
            }
        }
        let present = tree.ids();
        let vanished: HashSet<&str> = stored
            .folders
            .iter()
            .map(|f| f.id.as_str())
            .filter(|id| !present.contains(id))
            .collect();
        if !vanished.is_empty() {
            let orphans = self.stored_in(&vanished).await?;
            tracing::info!(
                folders = vanished.len(),
                messages = orphans.len(),
                "outlook folders gone: their messages are fetched again"
            );
            for id in orphans {
                result.push_task(&OutlookTask::fetch(id))?;
            }
            for id in &vanished {
                end_round(&mut result, id, Value::Null);
            }
        }
        if tree != stored {
            result.set_sync_state(FOLDERS, tree.to_value());
        }
        tracing::debug!(
            folders = tree.folders.len(),
            started,
            "outlook history check"
        );
        Ok(result)
    }

    /// `fetchMessage`: one message, its attachments when it has any, stored at its
    /// version; a 404 is its deletion.
    async fn fetch(&mut self, id: &str) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let target = self.graph.url(&["me", "messages", id], &[]).to_string();
        let prefer = Prefer::default().with_text_body();
        let answer = self
            .graph
            .get_json_with::<Value>(&target, &[("$select", MESSAGE_SELECT)], prefer)
            .await;
        let value = match answer {
            Ok(value) => value,
            Err(GraphError::NotFound(_)) => {
                tracing::debug!(message_id = id, "outlook message gone: soft-deleted");
                result.push_output(Output::deleted(id));
                return Ok(result);
            }
            Err(error) => {
                let error = error.into_integration();
                if error.class() != ErrorClass::Permanent {
                    return Err(error);
                }
                tracing::warn!(message_id = id, %error, "outlook message cannot be fetched");
                result.push_output(Output::failed(id, FAILED_FETCH_CODE, error.message()));
                return Ok(result);
            }
        };
        // The version is read leniently, so that a message that cannot be decoded is
        // failed at the version listed: fetched again only once it changes.
        let listed_version = content::version_of_entry(&value, "");
        let mut message = match serde_json::from_value::<Message>(value) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(message_id = id, %error, "outlook message cannot be decoded");
                let failed = Output::failed(
                    id,
                    FAILED_FETCH_CODE,
                    format!("microsoft graph GET /me/messages/{{id}}: not a message: {error}"),
                );
                result.push_output(failed.with_version(listed_version));
                return Ok(result);
            }
        };
        // The output is the item asked for (Graph answers the same immutable id).
        id.clone_into(&mut message.id);
        let folder_id = message.parent_folder_id.clone().unwrap_or_default();
        let version = message.version(&folder_id);
        let attachments = if message.has_attachments == Some(true) {
            match self.attachments(id).await {
                Ok(list) => list,
                Err(GraphError::NotFound(_)) => {
                    result.push_output(Output::deleted(id));
                    return Ok(result);
                }
                Err(error) => {
                    let error = error.into_integration();
                    if error.class() != ErrorClass::Permanent {
                        return Err(error);
                    }
                    tracing::warn!(message_id = id, %error, "outlook attachments cannot be listed");
                    let failed = Output::failed(id, FAILED_FETCH_CODE, error.message());
                    result.push_output(failed.with_version(version));
                    return Ok(result);
                }
            }
        } else {
            Vec::new()
        };
        let folder = self.folder_info(&folder_id).await?;
        let content =
            content::message_content(&message, &folder, &attachments, self.max_body_bytes);
        result.push_output(Output::item(id, message.received(), content).with_version(version));
        Ok(result)
    }

    /// The folder `folder_id` as stored content names it: from the stored tree, else
    /// looked up.
    async fn folder_info(&mut self, folder_id: &str) -> Result<FolderInfo, IntegrationError> {
        let state = self.ctx.sync_state.clone();
        if let Some(folder) = folders::lookup(&state, folder_id) {
            return Ok(folder);
        }
        if folder_id.is_empty() {
            return Ok(FolderInfo {
                id: String::new(),
                name: String::new(),
                path: String::new(),
            });
        }
        let root = folders::stored_root(&state);
        folders::look_up(
            &mut self.graph,
            folder_id,
            |id| folders::lookup(&state, id),
            root,
        )
        .await
    }

    /// The attachments of message `id` (names, sizes, types; no content).
    async fn attachments(&mut self, id: &str) -> Result<Vec<Attachment>, GraphError> {
        let target = self
            .graph
            .url(&["me", "messages", id, "attachments"], &[])
            .to_string();
        let mut page = self
            .graph
            .get_page::<Attachment>(
                &target,
                &[("$select", ATTACHMENT_SELECT)],
                Prefer::default(),
            )
            .await?;
        let mut all = Vec::new();
        for _ in 0..MAX_ATTACHMENT_PAGES {
            all.append(&mut page.items);
            all.truncate(content::MAX_ATTACHMENTS);
            let Some(next) = page.next_link.take() else {
                break;
            };
            if all.len() >= content::MAX_ATTACHMENTS {
                break;
            }
            page = self
                .graph
                .get_page::<Attachment>(&next, &[], Prefer::default())
                .await?;
        }
        Ok(all)
    }
}

/// Marks a round of `folder_id` in progress at `at`.
fn mark_round(result: &mut TaskResult, folder_id: &str, at: DateTime<Utc>) {
    result.set_sync_state(delta_round_key(folder_id), Value::String(at.to_rfc3339()));
}

/// Ends a round of `folder_id`: its delta link (`null` to drop it) and no mark.
fn end_round(result: &mut TaskResult, folder_id: &str, delta_link: Value) {
    result.set_sync_state(delta_link_key(folder_id), delta_link);
    result.set_sync_state(delta_round_key(folder_id), Value::Null);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_are_asked_about_at_their_version() {
        let entry = json!({"id": "m1", "changeKey": "ck", "parentFolderId": "f2"});
        assert_eq!(entry_ref(&entry, "f1"), Some(ItemRef::at("m1", "ck|f2")));
        assert_eq!(entry_ref(&json!({"changeKey": "ck"}), "f1"), None);
        assert_eq!(entry_id(&json!({"id": 3})), "");
    }

    #[test]
    fn rounds_mark_and_end_in_the_sync_state() {
        let mut result = TaskResult::new();
        mark_round(&mut result, "f", DateTime::UNIX_EPOCH);
        end_round(&mut result, "g", Value::String("https://g/d".into()));
        let state = result.sync_state.unwrap();
        assert_eq!(state["deltaRound:f"], "1970-01-01T00:00:00+00:00");
        assert_eq!(state["deltaLink:g"], "https://g/d");
        assert_eq!(state["deltaRound:g"], Value::Null);
    }
}

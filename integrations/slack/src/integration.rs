//! The task handlers: what each Slack task does, in terms of the client and the SDK.
//!
//! # Finding new messages
//! Slack has no change feed a poller can read, and a finite budget of history calls
//! per workspace (see [`crate::plan`]). `start` (every minute) reads the token's scopes
//! (`auth.test`), the conversation list, now and then the member names, and queues a
//! `pollConversation` for each conversation the planner chooses. A poll reads the
//! conversation's newest messages down to the newest one it saw before
//! (`oldest` = that ts): usually one call that finds nothing or a few messages. The
//! first poll of a conversation has no such bound and walks the whole history, newest
//! first, page by page (with the early stop after three pages in a row with nothing
//! new, should the bound be lost). A message is stored when it is not stored at the
//! version listed ([`crate::content::version`]), so an unchanged message is never
//! written twice.
//!
//! # Threads
//! `conversations.history` lists top-level messages only. A parent whose version
//! changed (new, or its `reply_count` / `latest_reply` moved) queues a `fetchReplies`
//! of its thread, which stores the replies not stored at their version; when the
//! thread was stored before it also soft-deletes the replies that vanished (for threads
//! that fit on one page). A deleted parent that still has replies comes back as a
//! `tombstone`: the parent is soft-deleted and its replies are kept.
//!
//! # Edits and deletions
//! Nothing tells a poller that an old message changed. A `reconcile` re-reads the last
//! `reconcileDays` of a conversation every `reconcileEverySeconds`, and its whole history
//! every `fullReadEveryHours`: an edited message (or one with new reactions or
//! replies) has a new version and is stored again, and a message of the range read that
//! is stored but no longer listed is soft-deleted. Each page compares only its own time
//! range, read from the store before the page is listed (so a message stored meanwhile
//! by a poll is never taken for a vanished one).
//!
//! # Conversations that cannot be read
//! A conversation type whose scopes were not granted, a conversation the token's user
//! is not a member of, and one Slack answers `missing_scope` or `not_in_channel` for
//! are skipped, not failed: the sync state's `skipped` says which and why. Archived
//! conversations and deleted ones (`channel_not_found`) leave the plan; what was
//! stored of them stays.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::{
    IntegrationContext, IntegrationError, ItemRef, Job, MAX_EMPTY_PAGES, Output, TaskResult,
    TypedIntegration,
};

use crate::client::{Conversation, SlackClient, SlackError, Window};
use crate::content::{self, ChannelInfo, USERS};
use crate::plan::{self, CREDIT, Candidate, Credit, PLAN, Rules};
use crate::settings::SlackSettings;
use crate::task::SlackTask;

/// The sync-state key of the conversations being synced (`{id: [name, type]}`).
pub const CONVERSATIONS: &str = "conversations";

/// The sync-state key of the conversations skipped, and why (`{id: reason}`).
pub const SKIPPED: &str = "skipped";

/// The prefix of the sync-state key holding a conversation's newest ts seen
/// (`newest.C024BE91L`), written by its polls.
pub const NEWEST_PREFIX: &str = "newest.";

/// The prefix of the sync-state key saying why a poll could not read a conversation
/// (`skip.C024BE91L`), cleared by its next successful poll.
pub const SKIP_PREFIX: &str = "skip.";

/// The sync-state key of the workspace's URL (for permalinks).
pub const WORKSPACE_URL: &str = "workspaceUrl";

/// The sync-state key of when the member names were read (unix seconds).
pub const USERS_READ_AT: &str = "usersReadAt";

/// The most pages one task reads of a list it must read whole (conversations,
/// members): a million entries at 1,000 a page. A service that never stops handing
/// out cursors is an error, not an endless loop.
const MAX_PAGES: usize = 1_000;

/// The scopes a conversation type needs to be listed and to be read.
fn scopes_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "private_channel" => ("groups:read", "groups:history"),
        "mpim" => ("mpim:read", "mpim:history"),
        "im" => ("im:read", "im:history"),
        _ => ("channels:read", "channels:history"),
    }
}

/// The account's credentials: the access token, and with token rotation the refresh
/// token and the app's client.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackCredentials {
    /// The user token.
    pub access_token: String,
    /// The refresh token (token rotation on).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The app's client id (token rotation on).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app's client secret (token rotation on).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// When the access token expires (RFC 3339), when it does.
    #[serde(default)]
    pub access_token_expires_at: Option<Value>,
}

impl std::fmt::Debug for SlackCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackCredentials")
            .field("client_id", &self.client_id)
            .field("rotation", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl SlackCredentials {
    /// The kit's OAuth form: without rotation there is no refresh token, and a refused
    /// token is an auth error at once.
    fn oauth(&self) -> OAuthCredentials {
        let expires = self
            .access_token_expires_at
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        OAuthCredentials {
            client_id: self.client_id.clone().unwrap_or_default(),
            client_secret: self.client_secret.clone().unwrap_or_default(),
            refresh_token: self.refresh_token.clone().unwrap_or_default(),
            access_token: Some(self.access_token.clone()),
            access_token_expires_at: expires,
        }
    }
}

/// The Slack integration instance of one job.
#[derive(Debug)]
pub struct SlackIntegration {
    ctx: IntegrationContext,
    client: SlackClient,
    settings: SlackSettings,
}

#[async_trait::async_trait]
impl TypedIntegration for SlackIntegration {
    type Task = SlackTask;
    type Settings = SlackSettings;
    type Credentials = SlackCredentials;

    fn new(job: Job<SlackSettings, SlackCredentials>) -> Result<Self, IntegrationError> {
        let credentials = job.credentials.oauth();
        let token_url = job.token_url(job.settings.token_url.as_deref())?;
        let api = job.bearer_client(&token_url, &credentials);
        let client = SlackClient::new(api, &job.settings.base_url, job.settings.rate_profile)?;
        Ok(SlackIntegration {
            ctx: job.ctx,
            client,
            settings: job.settings,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.client.auth_test().await.map(|_| ())
    }

    async fn run(&mut self, task: SlackTask) -> Result<TaskResult, IntegrationError> {
        match task {
            SlackTask::Start => self.start().await,
            SlackTask::PollConversation {
                channel,
                oldest,
                cursor,
                consecutive_empty_pages,
            } => {
                self.poll(&channel, oldest, cursor.as_deref(), consecutive_empty_pages)
                    .await
            }
            SlackTask::FetchReplies {
                channel,
                thread_ts,
                cursor,
                reread,
            } => {
                self.fetch_replies(&channel, &thread_ts, cursor.as_deref(), reread)
                    .await
            }
            SlackTask::Reconcile {
                channel,
                oldest,
                cursor,
                upper,
            } => {
                self.reconcile(&channel, &oldest, cursor.as_deref(), upper.as_deref())
                    .await
            }
        }
    }
}

impl SlackIntegration {
    /// `start`: scopes, conversations, names; then the planner's polls and reconciles.
    async fn start(&mut self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let now = Utc::now().timestamp();
        let identity = self.client.auth_test().await?;
        if let Some(url) = &identity.url
            && self.ctx.sync_state_str(WORKSPACE_URL) != Some(url.as_str())
        {
            result.set_sync_state(WORKSPACE_URL, Value::String(url.clone()));
        }
        let granted = |scope: &str| {
            identity
                .scopes
                .as_ref()
                .is_none_or(|scopes| scopes.iter().any(|s| s == scope))
        };

        let mut skipped = Map::new();
        let mut listable = Vec::new();
        for kind in self.settings.types() {
            let (read, _) = scopes_of(kind);
            if granted(read) {
                listable.push(kind);
            } else {
                skipped.insert(
                    format!("type:{kind}"),
                    Value::String(format!("missing_scope: needs {read}")),
                );
            }
        }
        let conversations = if listable.is_empty() {
            Vec::new()
        } else {
            self.list_conversations(&listable.join(",")).await?
        };

        let mut synced = Map::new();
        let mut candidates = Vec::new();
        for conversation in &conversations {
            let kind = conversation.kind();
            let (_, history) = scopes_of(kind);
            if !granted(history) {
                skipped.insert(
                    conversation.id.clone(),
                    Value::String(format!("missing_scope: needs {history}")),
                );
                continue;
            }
            if !conversation.is_member && !conversation.is_im {
                skipped.insert(
                    conversation.id.clone(),
                    Value::String("not_in_channel: the token's user is not a member".into()),
                );
                continue;
            }
            let name = conversation
                .name
                .clone()
                .or_else(|| conversation.user.clone())
                .unwrap_or_else(|| conversation.id.clone());
            synced.insert(conversation.id.clone(), json!([name, kind]));
            let skip_key = format!("{SKIP_PREFIX}{}", conversation.id);
            let newest = match self.ctx.sync_state.get(&skip_key) {
                Some(Value::String(reason)) => {
                    skipped.insert(conversation.id.clone(), Value::String(reason.clone()));
                    // Tried again at the slowest rate, in case it was fixed.
                    None
                }
                _ => self
                    .ctx
                    .sync_state_str(&format!("{NEWEST_PREFIX}{}", conversation.id))
                    .and_then(content::timestamp)
                    .map(|t| t.timestamp()),
            };
            candidates.push(Candidate {
                id: conversation.id.clone(),
                newest,
            });
        }
        if !skipped.is_empty() {
            tracing::info!(
                skipped = skipped.len(),
                "some slack conversations cannot be read with this token's scopes or membership"
            );
        }

        if self.users_due(now) && granted("users:read") {
            let users = self.list_users().await?;
            result.set_sync_state(USERS, Value::Object(users));
            result.set_sync_state(USERS_READ_AT, json!(now));
        }

        let rules = Rules {
            polls_per_start: self.settings.polls_per_start(),
            min_interval: self.settings.poll_every_seconds as i64,
            max_interval: self.settings.idle_poll_seconds as i64,
            reconcile_every: self.settings.reconcile_every_seconds as i64,
            full_every: self.settings.full_read_every_hours as i64 * 3600,
        };
        let mut planned = plan::plan_from_value(self.ctx.sync_state.get(PLAN));
        let mut credit = Credit::from_value(self.ctx.sync_state.get(CREDIT));
        let choice = plan::choose(&rules, &candidates, &mut planned, &mut credit, now);
        for channel in &choice.polls {
            result.push_task(&SlackTask::poll(channel))?;
        }
        let window_start = now - i64::from(self.settings.reconcile_days) * 86_400;
        for (channel, full) in &choice.reconciles {
            let oldest = if *full {
                "0".to_owned()
            } else {
                format!("{}.000000", window_start.max(0))
            };
            result.push_task(&SlackTask::Reconcile {
                channel: channel.clone(),
                oldest,
                cursor: None,
                upper: None,
            })?;
        }
        tracing::debug!(
            conversations = synced.len(),
            polls = choice.polls.len(),
            reconciles = choice.reconciles.len(),
            "planned slack reads"
        );
        result.set_sync_state(CONVERSATIONS, Value::Object(synced));
        result.set_sync_state(SKIPPED, Value::Object(skipped));
        result.set_sync_state(PLAN, plan::plan_to_value(&planned));
        result.set_sync_state(CREDIT, credit.to_value());
        Ok(result)
    }

    fn users_due(&self, now: i64) -> bool {
        let read_at = self
            .ctx
            .sync_state
            .get(USERS_READ_AT)
            .and_then(Value::as_i64);
        read_at.is_none_or(|at| now - at >= self.settings.users_refresh_hours as i64 * 3600)
    }

    async fn list_conversations(
        &mut self,
        types: &str,
    ) -> Result<Vec<Conversation>, IntegrationError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.client.conversations(types, cursor.as_deref()).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
        Err(too_many_pages("conversations.list"))
    }

    async fn list_users(&mut self) -> Result<Map<String, Value>, IntegrationError> {
        let mut names = Map::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.client.users(cursor.as_deref()).await?;
            for user in page.items {
                names.insert(user.id.clone(), Value::String(user.shown_name()));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(names),
            }
        }
        Err(too_many_pages("users.list"))
    }

    /// The conversation as the content names it, if it is being synced.
    fn channel_info(&self, channel: &str) -> Option<ChannelInfo> {
        let entry = self.ctx.sync_state.get(CONVERSATIONS)?.get(channel)?;
        Some(ChannelInfo {
            id: channel.to_owned(),
            name: entry.get(0)?.as_str()?.to_owned(),
            kind: entry.get(1)?.as_str()?.to_owned(),
        })
    }

    /// `pollConversation`: one page of the newest messages.
    async fn poll(
        &mut self,
        channel: &str,
        oldest: Option<String>,
        cursor: Option<&str>,
        empty_pages_before: u32,
    ) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let Some(info) = self.channel_info(channel) else {
            // Left the plan between planning and now (archived, deleted, unreadable).
            return Ok(result);
        };
        let newest_key = format!("{NEWEST_PREFIX}{channel}");
        let first = cursor.is_none();
        let oldest = if first {
            self.ctx.sync_state_str(&newest_key).map(str::to_owned)
        } else {
            oldest
        };
        let window = Window {
            oldest: oldest.as_deref(),
            latest: None,
            cursor,
        };
        let page = match self
            .client
            .history(channel, &window, self.settings.page_size)
            .await
        {
            Ok(page) => page,
            Err(e) => return self.unreadable(channel, "conversations.history", e),
        };
        let skip_key = format!("{SKIP_PREFIX}{channel}");
        if first
            && self
                .ctx
                .sync_state
                .get(&skip_key)
                .is_some_and(|v| !v.is_null())
        {
            result.set_sync_state(skip_key, Value::Null);
        }
        if first
            && let Some(newest) = page.items.iter().filter_map(content::ts_of).max()
            && oldest.as_deref().is_none_or(|old| newest > old)
        {
            result.set_sync_state(newest_key, Value::String(newest.to_owned()));
        }
        let changed = self
            .apply_page(&info, &page.items, &Threads::Changed, &mut result)
            .await?;
        if let Some(next) = page.next_cursor {
            // Bounded by the newest ts seen before: read down to it. Unbounded (the
            // first read): the early stop, in case the bound was lost.
            let empty = if changed == 0 {
                empty_pages_before.saturating_add(1)
            } else {
                0
            };
            if oldest.is_some() || empty < MAX_EMPTY_PAGES {
                result.push_task(&SlackTask::PollConversation {
                    channel: channel.to_owned(),
                    oldest,
                    cursor: Some(next),
                    consecutive_empty_pages: empty,
                })?;
            }
        }
        Ok(result)
    }

    /// Stores what is new or changed among `messages` (a history page), soft-deletes
    /// stored parents that became tombstones, and queues the thread reads `threads`
    /// asks for. Returns how many messages were new or changed.
    async fn apply_page(
        &self,
        info: &ChannelInfo,
        messages: &[Map<String, Value>],
        threads: &Threads<'_>,
        result: &mut TaskResult,
    ) -> Result<usize, IntegrationError> {
        let mut refs = Vec::new();
        let mut tombstones = Vec::new();
        for message in messages {
            let Some(ts) = content::ts_of(message) else {
                tracing::warn!(channel = %info.id, "skipped a message without a valid ts");
                continue;
            };
            if content::reply_parent(message).is_some() {
                // A reply also sent to the channel: its thread read stores it.
                continue;
            }
            if content::is_tombstone(message) {
                tombstones.push((ts, message));
            } else {
                refs.push(ItemRef::at(
                    content::item_id(&info.id, ts),
                    content::version(message),
                ));
            }
        }
        let changed: HashSet<String> = self
            .ctx
            .unknown(refs)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect();

        // Which parents and latest replies are stored at all: one query.
        let mut ask = Vec::new();
        for (ts, message) in &tombstones {
            ask.push(content::item_id(&info.id, ts));
            if let Some(latest) = message.get("latest_reply").and_then(Value::as_str) {
                ask.push(content::item_id(&info.id, latest));
            }
        }
        for message in messages {
            if let Some(ts) = content::ts_of(message)
                && changed.contains(&content::item_id(&info.id, ts))
            {
                ask.push(content::item_id(&info.id, ts));
            }
        }
        let existing = if ask.is_empty() {
            HashSet::new()
        } else {
            self.ctx.content_exists.existing(&ask).await?
        };

        let users = self.ctx.sync_state.get(USERS).and_then(Value::as_object);
        let workspace = self.ctx.sync_state_str(WORKSPACE_URL);
        for message in messages {
            let Some(ts) = content::ts_of(message) else {
                continue;
            };
            let id = content::item_id(&info.id, ts);
            if content::is_tombstone(message) || content::reply_parent(message).is_some() {
                continue;
            }
            let is_changed = changed.contains(&id);
            if is_changed {
                let body = content::message_content(message, info, users, workspace);
                result.push_output(
                    Output::item(id.clone(), content::timestamp(ts), body)
                        .with_version(content::version(message)),
                );
            }
            if content::reply_count(message) == 0 {
                if is_changed && existing.contains(&id) {
                    // A stored message changed and has no replies now: if it had some,
                    // they were deleted (its last reply gone); the re-read says.
                    result.push_task(&SlackTask::replies(&info.id, ts, true))?;
                }
            } else {
                let latest = message.get("latest_reply").and_then(Value::as_str);
                let reread = match threads {
                    Threads::Changed => false,
                    Threads::ActiveSince(floor) => latest.is_some_and(|l| l > *floor),
                    Threads::All => true,
                };
                if is_changed {
                    result.push_task(&SlackTask::replies(&info.id, ts, existing.contains(&id)))?;
                } else if reread {
                    // Stored at this version: only its replies may have changed.
                    result.push_task(&SlackTask::replies(&info.id, ts, true))?;
                }
            }
        }
        for (ts, message) in tombstones {
            let id = content::item_id(&info.id, ts);
            if existing.contains(&id) {
                result.push_output(Output::deleted(id));
            }
            let latest = message.get("latest_reply").and_then(Value::as_str);
            if latest.is_some_and(|l| !existing.contains(&content::item_id(&info.id, l))) {
                result.push_task(&SlackTask::replies(&info.id, ts, false))?;
            }
        }
        Ok(changed.len())
    }

    /// `fetchReplies`: one page of a thread.
    async fn fetch_replies(
        &mut self,
        channel: &str,
        thread_ts: &str,
        cursor: Option<&str>,
        reread: bool,
    ) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let Some(info) = self.channel_info(channel) else {
            return Ok(result);
        };
        if !content::valid_ts(thread_ts) {
            return Err(IntegrationError::permanent(format!(
                "slack fetchReplies: `{thread_ts}` is not a message ts"
            )));
        }
        // What is stored of the thread, read before listing it.
        let compare = reread && cursor.is_none();
        let stored: Vec<String> = if compare {
            self.ctx
                .content_exists
                .stored_between(&content::item_id(channel, thread_ts), &range_end(channel))
                .await?
                .into_iter()
                .filter(|item| content::is_reply_version_of(item.version.as_deref(), thread_ts))
                .map(|item| item.id)
                .collect()
        } else {
            Vec::new()
        };
        let page = match self
            .client
            .replies(channel, thread_ts, cursor, self.settings.page_size)
            .await
        {
            Ok(page) => page,
            Err(SlackError::Conversation { code, .. }) if code == "thread_not_found" => {
                // The parent was deleted with no replies left; a reconcile removes it.
                return Ok(result);
            }
            Err(e) => return self.unreadable(channel, "conversations.replies", e),
        };
        let replies: Vec<&Map<String, Value>> = page
            .items
            .iter()
            .filter(|m| content::reply_parent(m) == Some(thread_ts))
            .collect();
        let refs = replies
            .iter()
            .filter_map(|m| {
                let ts = content::ts_of(m)?;
                Some(ItemRef::at(
                    content::item_id(channel, ts),
                    content::version(m),
                ))
            })
            .collect();
        let changed: HashSet<String> = self
            .ctx
            .unknown(refs)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect();
        let users = self.ctx.sync_state.get(USERS).and_then(Value::as_object);
        let workspace = self.ctx.sync_state_str(WORKSPACE_URL);
        let mut listed = HashSet::new();
        for reply in &replies {
            let Some(ts) = content::ts_of(reply) else {
                continue;
            };
            let id = content::item_id(channel, ts);
            listed.insert(id.clone());
            if changed.contains(&id) {
                let body = content::message_content(reply, &info, users, workspace);
                result.push_output(
                    Output::item(id, content::timestamp(ts), body)
                        .with_version(content::version(reply)),
                );
            }
        }
        match page.next_cursor {
            Some(next) => result.push_task(&SlackTask::FetchReplies {
                channel: channel.to_owned(),
                thread_ts: thread_ts.to_owned(),
                cursor: Some(next),
                reread: false,
            })?,
            None if compare => {
                for id in stored.into_iter().filter(|id| !listed.contains(id)) {
                    result.push_output(Output::deleted(id));
                }
            }
            None => {}
        }
        Ok(result)
    }

    /// `reconcile`: one page of a time range, compared with what is stored of it.
    async fn reconcile(
        &mut self,
        channel: &str,
        oldest: &str,
        cursor: Option<&str>,
        upper: Option<&str>,
    ) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        let Some(info) = self.channel_info(channel) else {
            return Ok(result);
        };
        if oldest != "0" && !content::valid_ts(oldest)
            || upper.is_some_and(|u| !content::valid_ts(u))
        {
            return Err(IntegrationError::permanent(format!(
                "slack reconcile: bad range ({oldest}, {upper:?})"
            )));
        }
        // What is stored of the range not yet compared, read before listing it.
        let until = upper.map_or_else(|| range_end(channel), |u| content::item_id(channel, u));
        let stored: Vec<ItemRef> = self
            .ctx
            .content_exists
            .stored_between(&content::item_id(channel, oldest), &until)
            .await?
            .into_iter()
            .filter(|item| content::is_top_level_version(item.version.as_deref()))
            .collect();
        let window = Window {
            oldest: Some(oldest),
            latest: None,
            cursor,
        };
        let page = match self
            .client
            .history(channel, &window, self.settings.page_size)
            .await
        {
            Ok(page) => page,
            Err(e) => return self.unreadable(channel, "conversations.history", e),
        };
        let threads = if oldest == "0" {
            Threads::All
        } else {
            Threads::ActiveSince(oldest)
        };
        self.apply_page(&info, &page.items, &threads, &mut result)
            .await?;

        let listed: HashSet<String> = page
            .items
            .iter()
            .filter(|m| !content::is_tombstone(m))
            .filter_map(|m| content::ts_of(m).map(|ts| content::item_id(channel, ts)))
            .collect();
        // The page covers from its oldest message up to where the last one ended; the
        // last page reaches down to `oldest`.
        let lower = match &page.next_cursor {
            Some(_) => page.items.iter().filter_map(content::ts_of).min(),
            None => None,
        };
        let floor = content::item_id(channel, oldest);
        let from = match (&page.next_cursor, lower) {
            (Some(_), Some(lower)) => Some(content::item_id(channel, lower)),
            // An empty page that says there is more covers no range at all.
            (Some(_), None) => None,
            (None, _) => Some(floor.clone()),
        };
        let mut deleted = 0usize;
        for item in stored {
            let inside = match &from {
                Some(from) if *from == floor => item.id > floor,
                Some(from) => item.id >= *from,
                None => false,
            };
            if inside && !listed.contains(&item.id) {
                result.push_output(Output::deleted(item.id));
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::debug!(channel, deleted, "reconcile found vanished messages");
        }
        if let Some(next) = page.next_cursor {
            match lower {
                Some(lower) => result.push_task(&SlackTask::Reconcile {
                    channel: channel.to_owned(),
                    oldest: oldest.to_owned(),
                    cursor: Some(next),
                    upper: Some(lower.to_owned()),
                })?,
                None => tracing::warn!(
                    channel,
                    "slack answered an empty history page with a next cursor; the reconcile stops"
                ),
            }
        }
        Ok(result)
    }

    /// A conversation Slack will not let this token read: recorded in the sync state
    /// (and in `skipped` at the next start), not a failure.
    fn unreadable(
        &self,
        channel: &str,
        method: &str,
        error: SlackError,
    ) -> Result<TaskResult, IntegrationError> {
        match error {
            SlackError::Conversation { code, needed } => {
                let reason = match needed {
                    Some(scope) => format!("{code}: needs {scope}"),
                    None => code,
                };
                tracing::info!(channel, method, %reason, "skipping a slack conversation");
                let mut result = TaskResult::new();
                result.set_sync_state(format!("{SKIP_PREFIX}{channel}"), Value::String(reason));
                Ok(result)
            }
            SlackError::Failed(e) => Err(e),
        }
    }
}

/// Which threads a history page's read re-reads besides those whose parent changed.
enum Threads<'a> {
    /// None (a poll: a new reply moves its parent's `latest_reply`).
    Changed,
    /// Those with a reply after this ts (a window reconcile: an edited or deleted
    /// reply does not change its parent).
    ActiveSince(&'a str),
    /// All (a full read).
    All,
}

/// The end of a conversation's id range (after every `<channel>:<ts>`).
fn range_end(channel: &str) -> String {
    format!("{channel}:~")
}

fn too_many_pages(method: &str) -> IntegrationError {
    IntegrationError::permanent(format!(
        "slack {method} handed out more than {MAX_PAGES} pages; giving up"
    ))
}

/// The skipped conversations recorded in a sync state, by id, with the reason.
pub fn skipped(sync_state: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = sync_state
        .get(SKIPPED)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(id, reason)| Some((id.clone(), reason.as_str()?.to_owned())))
        .collect();
    for (key, value) in sync_state {
        if let (Some(id), Some(reason)) = (key.strip_prefix(SKIP_PREFIX), value.as_str()) {
            all.insert(id.to_owned(), reason.to_owned());
        }
    }
    all
}

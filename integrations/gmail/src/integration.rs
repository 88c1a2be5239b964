//! The task handlers: what each Gmail task does, in terms of the client and the SDK.
//!
//! # Finding new mail
//! `start` (every minute, priority 1) lists the newest page; each `getEmailList` page
//! asks `content_exists` once about all its ids, creates `downloadEmail` tasks only for
//! the unknown ones, and queues the next page unless this was the third page in a row
//! with nothing new. A full backfill therefore walks the whole mailbox once, and a
//! routine `start` costs one to three list calls.
//!
//! # Following changes
//! Listing alone never sees deletions or label changes, so the integration keeps a
//! Gmail history cursor, `lastHistoryId`, in the sync state. The first `start` records
//! it from the profile *before* listing anything, so changes made while the backfill
//! runs are not missed. `checkHistory` (its own schedule, priority 1) reads every
//! history page since the cursor and reduces them to one action per message:
//! deleted → a delete output; labels changed → a fresh download (labels are content);
//! added → a download, if not known yet. Moving to trash or spam is a label change,
//! and a download that finds those labels yields a delete output: the synced mailbox
//! is what `messages.list` returns without `includeSpamTrash`.
//!
//! When Gmail no longer has history that old (404), `checkHistory` compares instead:
//! every id Gmail lists against every id stored, deleting what vanished and
//! downloading what is unknown, then stores a fresh cursor.
//!
//! # Tokens and settings
//! The kit does both: requests carry the account's shared access token through its
//! bearer client (refreshed when needed, persisted with the commit, also after a
//! failure), and the settings arrive decoded into [`GmailSettings`], defaults from the
//! manifest.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::kit::delta::FullComparison;
use tributary_sdk::kit::listing;
use tributary_sdk::{
    ErrorClass, IntegrationContext, IntegrationError, Job, Output, TaskResult, TypedIntegration,
};

use crate::client::{GmailClient, History, MAX_PAGE_SIZE};
use crate::mapping;
use crate::task::GmailTask;

/// The sync-state key of the Gmail history cursor.
pub const LAST_HISTORY_ID: &str = "lastHistoryId";

/// The account's settings; their defaults and ranges are in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GmailSettings {
    /// Where the Gmail API lives.
    pub base_url: String,
    /// The OAuth token endpoint, when not the manifest's.
    pub token_url: Option<String>,
    /// Messages on the first list page of a `start`: small, so a start that finds
    /// nothing new is cheap.
    pub page_size: u32,
    /// Messages on the later pages of a listing: large, so a backfill makes one list
    /// call per 500 messages and each page queues enough downloads to keep the workers
    /// busy while the next page is listed.
    pub backfill_page_size: u32,
}

/// The Gmail integration instance of one job.
#[derive(Debug)]
pub struct GmailIntegration {
    ctx: IntegrationContext,
    client: GmailClient,
    settings: GmailSettings,
}

#[async_trait::async_trait]
impl TypedIntegration for GmailIntegration {
    type Task = GmailTask;
    type Settings = GmailSettings;
    type Credentials = OAuthCredentials;

    fn new(job: Job<GmailSettings, OAuthCredentials>) -> Result<Self, IntegrationError> {
        let token_url = job.token_url(job.settings.token_url.as_deref())?;
        let api = job.bearer_client(&token_url, &job.credentials);
        let client = GmailClient::new(api, &job.settings.base_url)?;
        Ok(GmailIntegration {
            ctx: job.ctx,
            client,
            settings: job.settings,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.client.list_labels().await
    }

    async fn run(&mut self, task: GmailTask) -> Result<TaskResult, IntegrationError> {
        match task {
            GmailTask::Start => self.start().await,
            GmailTask::GetEmailList {
                page_token,
                consecutive_empty_pages,
            } => {
                self.list_page(page_token.as_deref(), consecutive_empty_pages)
                    .await
            }
            GmailTask::DownloadEmail { email_id } => self.download(&email_id).await,
            GmailTask::CheckHistory => self.check_history().await,
        }
    }
}

impl GmailIntegration {
    /// `start`: record a history cursor if there is none, then list the newest page.
    async fn start(&mut self) -> Result<TaskResult, IntegrationError> {
        let mut result = TaskResult::new();
        if self.ctx.sync_state_str(LAST_HISTORY_ID).is_none() {
            let profile = self.client.get_profile().await?;
            tracing::info!(history_id = %profile.history_id, "recorded the first gmail history cursor");
            result.set_sync_state(LAST_HISTORY_ID, Value::String(profile.history_id));
        }
        result.merge(self.list_page(None, 0).await?);
        Ok(result)
    }

    /// `getEmailList`: download the unknown messages of one page and queue the next.
    async fn list_page(
        &mut self,
        page_token: Option<&str>,
        empty_pages_before: u32,
    ) -> Result<TaskResult, IntegrationError> {
        // The first page is small (a start that finds nothing new stops early and
        // cheaply); the pages after it are a backfill's, and large.
        let size = match page_token {
            None => self.settings.page_size,
            Some(_) => self.settings.backfill_page_size,
        };
        let page = self.client.list_messages(size, page_token).await?;
        let listed = page.messages.into_iter().map(|m| m.id).collect();
        let step =
            listing::page(&self.ctx, listed, page.next_page_token, empty_pages_before).await?;
        let mut result = TaskResult::new();
        for id in &step.new_ids {
            result.push_task(&GmailTask::download(id))?;
        }
        if let Some(next) = step.next {
            result.push_task(&GmailTask::GetEmailList {
                page_token: Some(next.token),
                consecutive_empty_pages: next.consecutive_empty_pages,
            })?;
        }
        Ok(result)
    }

    /// `downloadEmail`: one message as content, or as a deletion when it is gone or
    /// in the trash or spam. A message that cannot be fetched or decoded for good (a
    /// permanent error: a body that is not the documented JSON, too deeply nested to
    /// parse, a 400 for this id) becomes a failed output, stored as a marker by the
    /// engine: retrying would not help, and the message stays known, so listings do
    /// not queue it again. Transient, rate-limit and auth errors fail the job as usual.
    async fn download(&mut self, id: &str) -> Result<TaskResult, IntegrationError> {
        let fetched = match self.client.get_message(id).await {
            Ok(fetched) => fetched,
            Err(error) if error.class() == ErrorClass::Permanent => {
                tracing::warn!(email_id = id, %error, "gmail message cannot be downloaded");
                return Ok(failed_download(id, &error));
            }
            Err(error) => return Err(error),
        };
        let output = match fetched {
            None => {
                tracing::debug!(email_id = id, "gmail message deleted before its download");
                Output::deleted(id)
            }
            Some(fetched) if mapping::is_excluded(&fetched.message) => Output::deleted(id),
            Some(fetched) => match mapping::fetched_output(&fetched) {
                Ok(output) => output,
                Err(error) => return Ok(failed_download(id, &error)),
            },
        };
        let mut result = TaskResult::new();
        result.push_output(output);
        Ok(result)
    }

    /// `checkHistory`: apply the changes since `lastHistoryId`.
    async fn check_history(&mut self) -> Result<TaskResult, IntegrationError> {
        let Some(start) = self.ctx.sync_state_str(LAST_HISTORY_ID).map(str::to_owned) else {
            tracing::debug!("no gmail history cursor yet: the first start records one");
            return Ok(TaskResult::new());
        };
        let mut changes = MailboxChanges::default();
        let mut page_token: Option<String> = None;
        let latest_history_id = loop {
            let page = self
                .client
                .list_history(&start, page_token.as_deref())
                .await?;
            let Some(page) = page else {
                tracing::info!(start_history_id = %start, "gmail history cursor expired: comparing all ids");
                return self.full_comparison().await;
            };
            changes.record(&page.history);
            match page.next_page_token {
                Some(token) => page_token = Some(token),
                None => break page.history_id,
            }
        };

        let mut result = TaskResult::new();
        for id in changes.with(Change::Deleted) {
            result.push_output(Output::deleted(id));
        }
        let mut downloads = changes.with(Change::Relabelled);
        downloads.extend(self.ctx.new_ids(changes.with(Change::Added)).await?);
        for id in &downloads {
            result.push_task(&GmailTask::download(id))?;
        }
        result.set_sync_state(LAST_HISTORY_ID, Value::String(latest_history_id));
        Ok(result)
    }

    /// The fallback for an expired cursor: delete what Gmail no longer lists, download
    /// what it lists and we do not know, and start a new cursor (in the order the kit's
    /// [`FullComparison`] explains).
    async fn full_comparison(&mut self) -> Result<TaskResult, IntegrationError> {
        let profile = self.client.get_profile().await?;
        let mut comparison = FullComparison::begin(&self.ctx).await?;
        let mut result = TaskResult::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_messages(MAX_PAGE_SIZE, page_token.as_deref())
                .await?;
            let ids = page.messages.into_iter().map(|m| m.id).collect();
            for id in comparison.listed(&self.ctx, ids).await? {
                result.push_task(&GmailTask::download(id))?;
            }
            match page.next_page_token {
                Some(token) => page_token = Some(token),
                None => break,
            }
        }
        comparison.finish(
            &mut result,
            LAST_HISTORY_ID,
            Value::String(profile.history_id),
        );
        Ok(result)
    }
}

/// The result of a download that failed for good: one failed output for the message.
fn failed_download(id: &str, error: &IntegrationError) -> TaskResult {
    let mut result = TaskResult::new();
    result.push_output(Output::failed(id, FAILED_DOWNLOAD_CODE, error.message()));
    result
}

/// The code of a failed download's output: the service answered, but not with a
/// message we can store (502, a bad answer from upstream).
pub const FAILED_DOWNLOAD_CODE: u16 = 502;

/// What to do about one message after reading the history, in increasing precedence:
/// a label change on a new message still means "download it", and a deletion trumps
/// everything that happened before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Added,
    Relabelled,
    Deleted,
}

/// The history reduced to one [`Change`] per message id.
#[derive(Debug, Default)]
struct MailboxChanges(BTreeMap<String, Change>);

impl MailboxChanges {
    fn record(&mut self, history: &[History]) {
        for record in history {
            let events = [
                (Change::Added, &record.messages_added),
                (Change::Relabelled, &record.labels_added),
                (Change::Relabelled, &record.labels_removed),
                (Change::Deleted, &record.messages_deleted),
            ];
            for (change, messages) in events {
                for entry in messages {
                    let slot = self.0.entry(entry.message.id.clone()).or_insert(change);
                    *slot = (*slot).max(change);
                }
            }
        }
    }

    /// The ids whose final change is `change`, sorted.
    fn with(&self, change: Change) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, c)| **c == change)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{HistoryMessage, MessageRef};

    fn entries(ids: &[&str]) -> Vec<HistoryMessage> {
        ids.iter()
            .map(|id| HistoryMessage {
                message: MessageRef { id: (*id).into() },
            })
            .collect()
    }

    #[test]
    fn history_reduces_to_the_strongest_change() {
        let mut changes = MailboxChanges::default();
        changes.record(&[
            History {
                messages_added: entries(&["new", "gone", "relabelled-new"]),
                messages_deleted: vec![],
                labels_added: entries(&["old"]),
                labels_removed: vec![],
            },
            History {
                messages_added: vec![],
                messages_deleted: entries(&["gone", "old-gone"]),
                labels_added: vec![],
                labels_removed: entries(&["relabelled-new", "old-gone"]),
            },
            // Out-of-order records cannot weaken a change: a deletion is final, and a
            // relabelled message is downloaded even if known.
            History {
                messages_added: entries(&["old"]),
                messages_deleted: vec![],
                labels_added: entries(&["gone"]),
                labels_removed: vec![],
            },
        ]);
        assert_eq!(changes.with(Change::Added), ["new"]);
        assert_eq!(changes.with(Change::Relabelled), ["old", "relabelled-new"]);
        assert_eq!(changes.with(Change::Deleted), ["gone", "old-gone"]);
    }
}

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
//! # Tokens
//! The account's jobs in one process share an access token through the SDK's
//! [`BearerSession`]: it is refreshed when there is none, shortly before it expires, or
//! when Gmail refuses it with 401, by one job while the others wait. The job that
//! refreshed returns the updated credentials (the new access token and its expiry, and
//! the new refresh token if Google rotated it) for the engine to persist, also when it
//! fails afterwards.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tributary_sdk::oauth::{BearerSession, RefreshTokenGrant, StoredToken};
use tributary_sdk::{
    Credentials, ErrorClass, Integration, IntegrationContext, IntegrationError, MAX_EMPTY_PAGES,
    Output, Task, TaskResult,
};

use crate::client::{DEFAULT_BASE_URL, DEFAULT_TOKEN_URL, GmailClient, History, MAX_PAGE_SIZE};
use crate::mapping;
use crate::task::GmailTask;

/// The credential field holding the current access token.
pub const ACCESS_TOKEN: &str = "accessToken";

/// The credential field holding when [`ACCESS_TOKEN`] expires (RFC 3339), so a process
/// that starts after it does not send it only to be refused.
pub const ACCESS_TOKEN_EXPIRES_AT: &str = "accessTokenExpiresAt";

/// The sync-state key of the Gmail history cursor.
pub const LAST_HISTORY_ID: &str = "lastHistoryId";

/// Messages on the first list page of a `start` unless the `pageSize` setting says
/// otherwise: small, so a start that finds nothing new is cheap.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Messages on the later pages of a listing unless the `backfillPageSize` setting says
/// otherwise: Gmail's largest page, so a backfill makes one list call (5 quota units)
/// per 500 messages and each page queues enough downloads to keep the workers busy
/// while the next page is listed.
pub const DEFAULT_BACKFILL_PAGE_SIZE: u32 = MAX_PAGE_SIZE;

/// The Gmail integration instance of one job.
#[derive(Debug)]
pub struct GmailIntegration {
    ctx: IntegrationContext,
    client: GmailClient,
    page_size: u32,
    backfill_page_size: u32,
}

impl GmailIntegration {
    /// Builds the instance from the account's credentials (`clientId`, `clientSecret`,
    /// `refreshToken`, optional `accessToken`) and settings (`baseUrl`, `tokenUrl`,
    /// `pageSize`, `backfillPageSize`). Missing credentials or invalid settings are
    /// permanent errors.
    pub fn new(ctx: IntegrationContext) -> Result<GmailIntegration, IntegrationError> {
        let credentials = &ctx.credentials;
        let grant = RefreshTokenGrant {
            token_url: token_url(ctx.setting("tokenUrl").unwrap_or(DEFAULT_TOKEN_URL))?,
            client_id: credentials.require("clientId")?.to_owned(),
            client_secret: credentials.require("clientSecret")?.to_owned(),
            refresh_token: credentials.require("refreshToken")?.to_owned(),
        };
        let stored = credentials.get(ACCESS_TOKEN).map(|token| StoredToken {
            access_token: token.to_owned(),
            // An unreadable expiry is treated as unknown: the token is tried, and a 401
            // refreshes it.
            expires_at: credentials
                .get(ACCESS_TOKEN_EXPIRES_AT)
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&Utc)),
        });
        let client = GmailClient::new(
            ctx.http.clone(),
            ctx.setting("baseUrl").unwrap_or(DEFAULT_BASE_URL),
            BearerSession::new(&ctx.tokens, grant, stored),
        )?;
        let first_page = page_size(&ctx.settings, "pageSize", DEFAULT_PAGE_SIZE)?;
        let backfill_page = page_size(
            &ctx.settings,
            "backfillPageSize",
            DEFAULT_BACKFILL_PAGE_SIZE,
        )?;
        Ok(GmailIntegration {
            ctx,
            client,
            page_size: first_page,
            backfill_page_size: backfill_page,
        })
    }

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
            None => self.page_size,
            Some(_) => self.backfill_page_size,
        };
        let page = self.client.list_messages(size, page_token).await?;
        let listed = page.messages.into_iter().map(|m| m.id).collect();
        let new_ids = self.ctx.new_ids(listed).await?;
        let mut result = TaskResult::new();
        for id in &new_ids {
            result.push_task(&GmailTask::download(id))?;
        }
        let empty_pages = if new_ids.is_empty() {
            empty_pages_before.saturating_add(1)
        } else {
            0
        };
        match page.next_page_token {
            Some(token) if empty_pages < MAX_EMPTY_PAGES => {
                result.push_task(&GmailTask::GetEmailList {
                    page_token: Some(token),
                    consecutive_empty_pages: empty_pages,
                })?;
            }
            Some(_) => tracing::debug!(empty_pages, "gmail listing stopped: nothing new"),
            None => {}
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
    /// what it lists and we do not know, and start a new cursor.
    async fn full_comparison(&mut self) -> Result<TaskResult, IntegrationError> {
        // Order matters. The new cursor comes first, so a change made while we list is
        // either seen by the listing or found in the history after the cursor. The
        // stored ids are read before listing, so a message stored meanwhile by another
        // job is not mistaken for one that vanished.
        let profile = self.client.get_profile().await?;
        let stored = self.ctx.content_exists.stored_ids().await?;
        let mut listed = HashSet::new();
        let mut result = TaskResult::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_messages(MAX_PAGE_SIZE, page_token.as_deref())
                .await?;
            let ids: Vec<String> = page.messages.into_iter().map(|m| m.id).collect();
            listed.extend(ids.iter().cloned());
            for id in self.ctx.new_ids(ids).await? {
                result.push_task(&GmailTask::download(id))?;
            }
            match page.next_page_token {
                Some(token) => page_token = Some(token),
                None => break,
            }
        }
        for id in stored.into_iter().filter(|id| !listed.contains(id)) {
            result.push_output(Output::deleted(id));
        }
        tracing::info!(
            listed = listed.len(),
            deleted = result.outputs.len(),
            downloads = result.tasks.len(),
            "gmail full comparison done"
        );
        result.set_sync_state(LAST_HISTORY_ID, Value::String(profile.history_id));
        Ok(result)
    }

    /// The credentials to persist when this job refreshed the access token.
    fn refreshed_credentials(&self) -> Option<Credentials> {
        let token = self.client.refreshed_token()?;
        let mut credentials = self.ctx.credentials.clone();
        credentials.set(ACCESS_TOKEN, token.access_token.clone());
        match token.expires_at {
            Some(at) => credentials.set(ACCESS_TOKEN_EXPIRES_AT, at.to_rfc3339()),
            None => credentials.remove(ACCESS_TOKEN_EXPIRES_AT),
        }
        if let Some(rotated) = &token.rotated_refresh_token {
            credentials.set("refreshToken", rotated.clone());
        }
        Some(credentials)
    }
}

#[async_trait::async_trait]
impl Integration for GmailIntegration {
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.client.list_labels().await
    }

    async fn run_task(&mut self, task: &Task) -> Result<TaskResult, IntegrationError> {
        let mut result = match task.decode::<GmailTask>()? {
            GmailTask::Start => self.start().await?,
            GmailTask::GetEmailList {
                page_token,
                consecutive_empty_pages,
            } => {
                self.list_page(page_token.as_deref(), consecutive_empty_pages)
                    .await?
            }
            GmailTask::DownloadEmail { email_id } => self.download(&email_id).await?,
            GmailTask::CheckHistory => self.check_history().await?,
        };
        result.credentials = self.refreshed_credentials();
        Ok(result)
    }

    fn credentials_after_failure(&self) -> Option<Credentials> {
        self.refreshed_credentials()
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

/// Validates the `tokenUrl` setting, so a typo fails the job once instead of being
/// retried as a network error.
fn token_url(url: &str) -> Result<String, IntegrationError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(url.to_owned()),
        _ => Err(IntegrationError::permanent(format!(
            "invalid gmail token url `{url}`: expected an absolute http(s) url"
        ))),
    }
}

/// A page-size setting (`name`): an integer from 1 to 500, `default` when absent.
fn page_size(
    settings: &Map<String, Value>,
    name: &str,
    default: u32,
) -> Result<u32, IntegrationError> {
    match settings.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                IntegrationError::permanent(format!(
                    "setting `{name}` must be an integer from 1 to {MAX_PAGE_SIZE}, found {value}"
                ))
            }),
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

    #[test]
    fn page_size_settings_are_validated() {
        for name in ["pageSize", "backfillPageSize"] {
            let settings = |v: Value| Map::from_iter([(name.to_owned(), v)]);
            assert_eq!(page_size(&Map::new(), name, 7).unwrap(), 7);
            assert_eq!(
                page_size(&settings(Value::from(500)), name, 7).unwrap(),
                500
            );
            for bad in [
                Value::from(0),
                Value::from(501),
                Value::from("50"),
                Value::from(-1),
            ] {
                let e = page_size(&settings(bad), name, 7).unwrap_err();
                assert!(e.to_string().contains(name), "{e}");
            }
        }
    }

    #[test]
    fn token_url_must_be_http() {
        assert!(token_url(DEFAULT_TOKEN_URL).is_ok());
        assert!(token_url("oauth2.googleapis.com/token").is_err());
        assert!(token_url("file:///etc/passwd").is_err());
    }
}

//! A thin typed client for the five Gmail API v1 methods this integration calls.
//!
//! The client follows Google's discovery document (vendored as `integrations/gmail/
//! spec/gmail-v1-discovery.json`) field by field: the paths, the query parameter names and
//! the response structs below carry the discovery names, and the crate's `discovery`
//! test checks them against the document. It speaks HTTP and OAuth and maps errors;
//! it knows nothing about tasks or storage.
//!
//! # Access tokens
//! Requests go through the kit's [`BearerClient`]: it sends the account's shared access
//! token, refreshes it when needed, retries once on 401, and reports what it refreshed
//! for the kit to persist.
//!
//! # Errors
//! Failures are classified by Google's error body ([`tributary_google::classify_error`]).
//!
//! A 404 is an answer, not a failure, for two calls, which therefore return `Option`:
//! [`GmailClient::get_message`] (the message was deleted after it was listed) and
//! [`GmailClient::list_history`] (the start history id has expired).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{HttpResponse, MAX_JSON_DEPTH, json_depth};
use tributary_sdk::kit::bearer::BearerClient;
use url::Url;

/// The largest page `messages.list` and `history.list` accept (`maxResults`).
pub const MAX_PAGE_SIZE: u32 = 500;

/// The history record types the integration acts on (`historyTypes`).
const HISTORY_TYPES: [&str; 4] = [
    "messageAdded",
    "messageDeleted",
    "labelAdded",
    "labelRemoved",
];

/// A Gmail API client for the authenticated user (`userId=me`), living for one job.
#[derive(Debug)]
pub struct GmailClient {
    api: BearerClient,
    /// `{baseUrl}gmail/v1/users/me/`, the prefix of every method's path.
    users_me: Url,
}

impl GmailClient {
    /// A client for the API at `base_url` (`https://gmail.googleapis.com/` in
    /// production, a loopback fake in tests), authorized by `api`.
    pub fn new(api: BearerClient, base_url: &str) -> Result<GmailClient, IntegrationError> {
        Ok(GmailClient {
            api: api.with_error_hook(tributary_google::classify_error),
            users_me: tributary_google::api_base("gmail", base_url, "gmail/v1/users/me/")?,
        })
    }

    /// `users.getProfile`: the mailbox's current history id.
    pub async fn get_profile(&mut self) -> Result<Profile, IntegrationError> {
        let url = self.url(&["profile"], &[]);
        self.get_json("users.getProfile", url)
            .await?
            .ok_or_else(|| not_found("users.getProfile"))
    }

    /// `users.labels.list`: the cheapest authenticated call, used to validate
    /// credentials. The labels themselves are not needed.
    pub async fn list_labels(&mut self) -> Result<(), IntegrationError> {
        let url = self.url(&["labels"], &[]);
        self.get_json::<IgnoredAny>("users.labels.list", url)
            .await?
            .map(|_| ())
            .ok_or_else(|| not_found("users.labels.list"))
    }

    /// `users.messages.list`: one page of message ids, newest first, outside spam and
    /// trash.
    pub async fn list_messages(
        &mut self,
        max_results: u32,
        page_token: Option<&str>,
    ) -> Result<ListMessagesResponse, IntegrationError> {
        let max_results = max_results.clamp(1, MAX_PAGE_SIZE).to_string();
        let mut query = vec![
            ("maxResults", max_results.as_str()),
            ("includeSpamTrash", "false"),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let url = self.url(&["messages"], &query);
        self.get_json("users.messages.list", url)
            .await?
            .ok_or_else(|| not_found("users.messages.list"))
    }

    /// `users.messages.get` with `format=full`: the parsed MIME tree, labels and
    /// attachment ids in one request. `None` when the message no longer exists.
    ///
    /// A MIME tree nested deeper than JSON decoding allows (see [`MAX_JSON_DEPTH`]: a
    /// hostile or broken message) is fetched again with `format=metadata`, which has the
    /// headers and labels but no parts; the result says how many parts it left out.
    pub async fn get_message(
        &mut self,
        id: &str,
    ) -> Result<Option<FetchedMessage>, IntegrationError> {
        const METHOD: &str = "users.messages.get";
        let url = self.url(&["messages", id], &[("format", "full")]);
        let Some(response) = self.get_ok(METHOD, url).await? else {
            return Ok(None);
        };
        if json_depth(&response.body) <= MAX_JSON_DEPTH {
            let message = response
                .json()
                .map_err(|e| e.context(format!("gmail {METHOD}")))?;
            return Ok(Some(FetchedMessage {
                message,
                parts_left_out: 0,
            }));
        }
        let parts = count_parts(&response.body);
        tracing::warn!(
            email_id = id,
            parts,
            "gmail message nested too deeply to decode; storing its headers"
        );
        let url = self.url(&["messages", id], &[("format", "metadata")]);
        Ok(self
            .get_json::<Message>(METHOD, url)
            .await?
            .map(|message| FetchedMessage {
                message,
                parts_left_out: parts,
            }))
    }

    /// `users.history.list`: one page of changes after `start_history_id`. `None` when
    /// that id is too old for Gmail to answer (HTTP 404): the caller must fall back to
    /// a full comparison.
    pub async fn list_history(
        &mut self,
        start_history_id: &str,
        page_token: Option<&str>,
    ) -> Result<Option<ListHistoryResponse>, IntegrationError> {
        let max_results = MAX_PAGE_SIZE.to_string();
        let mut query = vec![
            ("startHistoryId", start_history_id),
            ("maxResults", max_results.as_str()),
        ];
        query.extend(HISTORY_TYPES.map(|t| ("historyTypes", t)));
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let url = self.url(&["history"], &query);
        self.get_json("users.history.list", url).await
    }

    /// The URL of a method under `users/me/`, with path segments escaped.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        tributary_google::method_url(&self.users_me, segments, query)
    }

    /// GETs `url` and decodes a 2xx JSON body; `None` on 404.
    async fn get_json<T: DeserializeOwned>(
        &mut self,
        method: &str,
        url: Url,
    ) -> Result<Option<T>, IntegrationError> {
        match self.get_ok(method, url).await? {
            Some(response) => response
                .json()
                .map(Some)
                .map_err(|e| e.context(format!("gmail {method}"))),
            None => Ok(None),
        }
    }

    /// GETs `url`: a 2xx response, `None` on 404, else the classified error.
    async fn get_ok(
        &mut self,
        method: &str,
        url: Url,
    ) -> Result<Option<HttpResponse>, IntegrationError> {
        let response = self.api.send(method, |http| http.get(url.clone())).await?;
        if response.status.as_u16() == 404 {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(self.api.error(method, &response));
        }
        Ok(Some(response))
    }
}

/// A downloaded message, and how many of its MIME parts were left out because the
/// tree was too deep to decode (0 for any real message).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedMessage {
    /// The message (with only its headers when parts were left out).
    pub message: Message,
    /// Parts left out.
    pub parts_left_out: usize,
}

/// How many MIME parts a `messages.get` body holds: its `"partId"` keys. Inside a
/// string the quotes would be escaped, and a value `"partId"` is never followed by a
/// colon, so each match followed by one is a key.
fn count_parts(body: &[u8]) -> usize {
    const KEY: &[u8] = b"\"partId\"";
    (0..body.len().saturating_sub(KEY.len() - 1))
        .filter(|&at| body[at..].starts_with(KEY))
        .filter(|&at| {
            body[at + KEY.len()..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                == Some(&b':')
        })
        .count()
}

fn not_found(method: &str) -> IntegrationError {
    IntegrationError::permanent(format!("gmail {method}: http 404: not found"))
}

// Response schemas: each struct names its discovery schema and holds only the fields
// the integration reads. `Serialize` lets the discovery test walk them.

/// Discovery schema `Profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The mailbox's current history id (a uint64 sent as a string).
    pub history_id: String,
}

/// Discovery schema `ListMessagesResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMessagesResponse {
    /// The page's messages, holding only their ids.
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    /// The next page, if there is one.
    pub next_page_token: Option<String>,
}

/// Discovery schema `Message`, as it appears in lists and history records: an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    /// The immutable message id.
    pub id: String,
}

/// Discovery schema `Message`, as `messages.get` with `format=full` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The immutable message id.
    pub id: String,
    /// The thread the message belongs to.
    #[serde(default)]
    pub thread_id: String,
    /// The labels on the message (`INBOX`, `UNREAD`, `TRASH`, user labels...).
    #[serde(default)]
    pub label_ids: Vec<String>,
    /// A short part of the message text, HTML-escaped by Gmail.
    #[serde(default)]
    pub snippet: String,
    /// When Gmail accepted the message, in epoch milliseconds (an int64 string).
    pub internal_date: Option<String>,
    /// The parsed MIME tree.
    pub payload: Option<MessagePart>,
}

/// Discovery schema `MessagePart`: one node of the MIME tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePart {
    /// The part's position in the tree (`""` for the root, `0`, `1.0`, ...).
    #[serde(default)]
    pub part_id: String,
    /// The part's MIME type, e.g. `text/plain`.
    #[serde(default)]
    pub mime_type: String,
    /// The attachment's file name; empty for parts that are not attachments.
    #[serde(default)]
    pub filename: String,
    /// The part's headers, values as written in the message (not decoded).
    #[serde(default)]
    pub headers: Vec<MessagePartHeader>,
    /// The part's body.
    #[serde(default)]
    pub body: MessagePartBody,
    /// The child parts of a multipart or message/rfc822 part.
    #[serde(default)]
    pub parts: Vec<MessagePart>,
}

/// Discovery schema `MessagePartHeader`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagePartHeader {
    /// The header name, e.g. `Subject`.
    #[serde(default)]
    pub name: String,
    /// The raw header value.
    #[serde(default)]
    pub value: String,
}

/// Discovery schema `MessagePartBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePartBody {
    /// Set when the body is fetched separately (`messages.attachments.get`).
    pub attachment_id: Option<String>,
    /// The body's size in bytes, after transfer decoding.
    #[serde(default)]
    pub size: u64,
    /// The body after transfer decoding (still in the part's charset), base64url.
    pub data: Option<String>,
}

/// Discovery schema `ListHistoryResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListHistoryResponse {
    /// The change records of this page, oldest first.
    #[serde(default)]
    pub history: Vec<History>,
    /// The mailbox's current history id: the cursor to store once all pages are read.
    pub history_id: String,
    /// The next page, if there is one.
    pub next_page_token: Option<String>,
}

/// Discovery schema `History`: the changes of one history record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Messages added to the mailbox.
    #[serde(default)]
    pub messages_added: Vec<HistoryMessage>,
    /// Messages deleted from the mailbox for good.
    #[serde(default)]
    pub messages_deleted: Vec<HistoryMessage>,
    /// Messages that got labels (moving to trash is adding `TRASH`).
    #[serde(default)]
    pub labels_added: Vec<HistoryMessage>,
    /// Messages that lost labels.
    #[serde(default)]
    pub labels_removed: Vec<HistoryMessage>,
}

/// Discovery schemas `HistoryMessageAdded`, `HistoryMessageDeleted`,
/// `HistoryLabelAdded` and `HistoryLabelRemoved`, of which only the message is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// The message the change is about.
    pub message: MessageRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_counted_by_their_keys() {
        assert_eq!(
            count_parts(br#"{"partId": "", "parts": [{"partId": "0", "x": "partId"}]}"#),
            2
        );
    }
}

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
//! Google explains a failure in its body, `{"error": {"code", "message", "errors":
//! [{"reason", ...}], "status"}}`, and the reason matters more than the status:
//!
//! | response | class |
//! |---|---|
//! | 429, or a 403 whose reason is `rateLimitExceeded`, `userRateLimitExceeded`, `dailyLimitExceeded` or `quotaExceeded` | rate limited, after `Retry-After` when given |
//! | 401 (after the one refresh), any other 403 (missing scope, domain policy) | auth: the user must grant access again |
//! | 408, 5xx | transient |
//! | other 4xx | permanent |
//!
//! A 404 is an answer, not a failure, for two calls, which therefore return `Option`:
//! [`GmailClient::get_message`] (the message was deleted after it was listed) and
//! [`GmailClient::list_history`] (the start history id has expired).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{HttpResponse, classify_status};
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

/// The 403 reasons that mean "slow down" rather than "forbidden".
const RATE_LIMIT_REASONS: [&str; 4] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "dailyLimitExceeded",
    "quotaExceeded",
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
            api: api.with_error_hook(classify_error),
            users_me: users_me(base_url)?,
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
        method_url(&self.users_me, segments, query)
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

/// The deepest JSON nesting a response may have to be decoded: serde_json refuses
/// documents nested deeper than 128 levels (its guard against stack overflows), and
/// each MIME level of a message takes two (the part object and its `parts` array).
pub const MAX_JSON_DEPTH: usize = 120;

/// A downloaded message, and how many of its MIME parts were left out because the
/// tree was too deep to decode (0 for any real message).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedMessage {
    /// The message (with only its headers when parts were left out).
    pub message: Message,
    /// Parts left out.
    pub parts_left_out: usize,
}

/// The deepest nesting of objects and arrays in a JSON document, by one pass over its
/// bytes (strings skipped, escapes honoured); malformed input just gives some number.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
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

/// `{baseUrl}gmail/v1/users/me/`, the prefix of every method's path.
fn users_me(base_url: &str) -> Result<Url, IntegrationError> {
    parse_base_url(base_url)?
        .join("gmail/v1/users/me/")
        .map_err(|e| {
            IntegrationError::permanent(format!("invalid gmail base url `{base_url}`: {e}"))
        })
}

/// The URL of a method under `users_me`, with path segments escaped.
fn method_url(users_me: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = users_me.clone();
    // `parse_base_url` accepts only http(s) URLs, which always have path segments.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// Parses the `baseUrl` setting: an absolute http(s) URL, read as a directory (a
/// missing trailing slash is added, so `http://host/prefix` keeps its prefix).
fn parse_base_url(base_url: &str) -> Result<Url, IntegrationError> {
    let invalid = |why: String| {
        IntegrationError::permanent(format!("invalid gmail base url `{base_url}`: {why}"))
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn not_found(method: &str) -> IntegrationError {
    IntegrationError::permanent(format!("gmail {method}: http 404: not found"))
}

/// Google's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorReason>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct ErrorReason {
    #[serde(default)]
    reason: String,
}

/// Classifies a non-2xx response by Google's error body (see the module table),
/// falling back to the status alone when the body is not Google's.
fn classify_error(response: &HttpResponse) -> IntegrationError {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return response.error_for_status();
    };
    let status = response.status.as_u16();
    let reasons: Vec<&str> = error
        .errors
        .iter()
        .map(|e| e.reason.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    let message = if reasons.is_empty() {
        format!("http {status}: {}", error.message)
    } else {
        format!("http {status} ({}): {}", reasons.join(", "), error.message)
    };
    let rate_limited = status == 429
        || error.status == "RESOURCE_EXHAUSTED"
        || reasons.iter().any(|r| RATE_LIMIT_REASONS.contains(r));
    if rate_limited {
        return IntegrationError::rate_limited(message, response.retry_after());
    }
    match status {
        401 | 403 => IntegrationError::auth(message),
        _ => classify_status(response.status, response.retry_after(), message),
    }
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

    fn url(base_url: &str, segments: &[&str], query: &[(&str, &str)]) -> String {
        method_url(&users_me(base_url).unwrap(), segments, query).to_string()
    }

    #[test]
    fn base_url_is_a_directory_and_keeps_its_prefix() {
        assert_eq!(
            url(
                "http://127.0.0.1:9000/fake/gmail-api",
                &["messages", "m 1"],
                &[("format", "full")]
            ),
            "http://127.0.0.1:9000/fake/gmail-api/gmail/v1/users/me/messages/m%201?format=full"
        );
        assert_eq!(
            url("https://gmail.googleapis.com/", &["profile"], &[]),
            "https://gmail.googleapis.com/gmail/v1/users/me/profile"
        );
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[{{{"}], "c": "\"{"}"#), 3);
        assert_eq!(json_depth(b"not json"), 0);
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(json_depth(deep.as_bytes()), 500);
        assert_eq!(
            count_parts(br#"{"partId": "", "parts": [{"partId": "0", "x": "partId"}]}"#),
            2
        );
    }

    #[test]
    fn bad_base_urls_are_permanent_errors() {
        for bad in [
            "",
            "gmail.googleapis.com",
            "mailto:me@example.com",
            "ftp://host/",
        ] {
            let error = users_me(bad).unwrap_err();
            assert_eq!(error.class(), tributary_sdk::ErrorClass::Permanent, "{bad}");
        }
    }
}

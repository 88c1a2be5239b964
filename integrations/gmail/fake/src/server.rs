//! The HTTP surface: Gmail's REST paths under `gmail/v1/`, the media upload paths
//! under `upload/gmail/v1/`, and the OAuth endpoints.
//!
//! Every API request goes through [`GmailHandle::gate`]: counted, delayed, maybe
//! faulted, then authenticated and charged to the per-user quota. Handlers never panic on request data: a bad id,
//! parameter, page token or body is a Google-style 400.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::GmailHandle;
use super::error::ApiError;
use super::faults::GmailMethod;
use super::mailbox::{HistoryExpired, HistoryTypes, ListFilter, format_id, parse_id};
use super::mime;

/// The default and largest `maxResults` of `messages.list` and `history.list`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// The router for a fake mailbox.
pub(crate) fn router(handle: GmailHandle) -> Router {
    let limit = handle.shared.max_upload_bytes;
    let users = "/gmail/v1/users/{user}";
    Router::new()
        .route(&format!("{users}/profile"), get(get_profile))
        .route(&format!("{users}/labels"), get(list_labels))
        .route(
            &format!("{users}/messages"),
            get(list_messages).post(insert_json),
        )
        .route(&format!("{users}/messages/import"), post(import_json))
        .route(
            &format!("{users}/messages/{{id}}"),
            get(get_message).delete(delete_message),
        )
        .route(
            &format!("{users}/messages/{{id}}/modify"),
            post(modify_message),
        )
        .route(
            &format!("{users}/messages/{{id}}/trash"),
            post(trash_message),
        )
        .route(
            &format!("{users}/messages/{{id}}/untrash"),
            post(untrash_message),
        )
        .route(
            &format!("{users}/messages/{{message_id}}/attachments/{{id}}"),
            get(get_attachment),
        )
        .route(&format!("{users}/history"), get(list_history))
        .route(
            "/upload/gmail/v1/users/{user}/messages",
            post(insert_upload),
        )
        .route(
            "/upload/gmail/v1/users/{user}/messages/import",
            post(import_upload),
        )
        .merge(tributary_google_fake::endpoints::oauth_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(handle)
}

async fn not_found() -> Response {
    ApiError::not_found("no such resource").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed().into_response()
}

use tributary_google_fake::gate::json_response;

fn ok(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

use tributary_google_fake::gate::Query;

/// The Gmail parameters' readings of a query string.
trait GmailQuery {
    fn flag(&self, name: &str) -> Result<bool, ApiError>;
    fn page_size(&self) -> Result<usize, ApiError>;
}

impl GmailQuery for Query {
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(value) if value.eq_ignore_ascii_case("true") || value == "1" => Ok(true),
            Some(value) if value.eq_ignore_ascii_case("false") || value == "0" => Ok(false),
            Some(value) => Err(ApiError::invalid_argument(format!(
                "invalid value for boolean parameter {name}: {value}"
            ))),
        }
    }

    fn page_size(&self) -> Result<usize, ApiError> {
        match self.get("maxResults") {
            None => Ok(DEFAULT_PAGE),
            Some(value) => match value.parse::<u32>() {
                Ok(0) => Ok(DEFAULT_PAGE),
                Ok(n) => Ok((n as usize).min(MAX_PAGE)),
                Err(_) => Err(ApiError::invalid_argument(format!(
                    "invalid value for maxResults: {value}"
                ))),
            },
        }
    }
}

impl GmailHandle {
    /// What every API request goes through: count, latency, injected faults, then the
    /// access token and the user id. Returns whether the body is to be truncated.
    async fn gate(
        &self,
        method: GmailMethod,
        headers: &HeaderMap,
        query: &Query,
        user: &str,
    ) -> Result<bool, ApiError> {
        let truncate = tributary_google_fake::gate::admit(
            &self.shared.faults,
            &self.shared.tokens,
            method,
            headers,
            query.get("access_token"),
        )
        .await?;
        if user != "me" && !user.eq_ignore_ascii_case(&self.shared.email) {
            return Err(ApiError::forbidden(format!("delegation denied for {user}")));
        }
        let units = method.quota_units();
        let in_window = self.shared.quota().charge(units, std::time::Instant::now());
        let counters = &mut self.shared.faults().counters;
        let Some(in_window) = in_window else {
            counters.quota_exceeded += 1;
            return Err(ApiError::user_quota_exceeded());
        };
        counters.quota_units += units;
        counters.quota_peak = counters.quota_peak.max(in_window);
        Ok(truncate)
    }

    /// Runs `handler` behind the gate.
    async fn api(
        &self,
        method: GmailMethod,
        headers: &HeaderMap,
        query: &Query,
        user: &str,
        handler: impl FnOnce(&GmailHandle) -> Result<Response, ApiError>,
    ) -> Response {
        match self.gate(method, headers, query, user).await {
            Err(error) => error.into_response(),
            Ok(truncate) => {
                let response = handler(self).unwrap_or_else(IntoResponse::into_response);
                if truncate {
                    truncate_body(response).await
                } else {
                    response
                }
            }
        }
    }
}

/// The same status and headers, half the body: a connection cut mid-response as the
/// client's JSON parser sees it.
async fn truncate_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    let half = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, axum::body::Body::from(half))
}

fn message_id(id: &str) -> Result<u64, ApiError> {
    parse_id(id).ok_or_else(|| ApiError::invalid_argument(format!("invalid id value: {id}")))
}

fn mailbox_error(error: super::GmailFakeError) -> ApiError {
    match error {
        super::GmailFakeError::NotFound(_) => ApiError::not_found("requested message not found"),
        super::GmailFakeError::UnknownLabel(label) => {
            ApiError::invalid_argument(format!("invalid label: {label}"))
        }
        other => ApiError::invalid_argument(other.to_string()),
    }
}

async fn get_profile(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::GetProfile, &headers, &query, &user, |h| {
            Ok(ok(&h.shared.mailbox().profile()))
        })
        .await
}

async fn list_labels(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::LabelsList, &headers, &query, &user, |h| {
            Ok(ok(&h.shared.mailbox().labels_json()))
        })
        .await
}

/// Page tokens: base64url of a version tag and the keyset position, plus a
/// fingerprint of the query so a token is not used with another query.
fn encode_token(fields: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(fields.join("."))
}

fn decode_token(token: &str, tag: &str, len: usize) -> Option<Vec<String>> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let fields: Vec<String> = text.split('.').map(str::to_owned).collect();
    (fields.len() == len && fields.first().map(String::as_str) == Some(tag)).then_some(fields)
}

fn invalid_page_token() -> ApiError {
    ApiError::invalid_argument("invalid pageToken")
}

async fn list_messages(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::MessagesList, &headers, &query, &user, |h| {
            let max = query.page_size()?;
            let include_spam_trash = query.flag("includeSpamTrash")?;
            let mailbox = h.shared.mailbox();
            let required = mailbox
                .label_set(&query.all("labelIds"))
                .map_err(mailbox_error)?;
            let filter = ListFilter {
                required,
                include_spam_trash,
            };
            let fingerprint = format!("{required:x}-{}", u8::from(include_spam_trash));
            let after = match query.get("pageToken") {
                None | Some("") => None,
                Some(token) => {
                    let fields = decode_token(token, "m1", 4).ok_or_else(invalid_page_token)?;
                    if fields[3] != fingerprint {
                        return Err(invalid_page_token());
                    }
                    let date = fields[1].parse::<i64>().map_err(|_| invalid_page_token())?;
                    let id = parse_id(&fields[2]).ok_or_else(invalid_page_token)?;
                    Some((date, id))
                }
            };
            let page = mailbox.list(filter, max, after);
            let mut body = json!({ "resultSizeEstimate": mailbox.estimate(filter) });
            drop(mailbox);
            if !page.items.is_empty() {
                body["messages"] = page
                    .items
                    .iter()
                    .map(|(id, thread)| json!({"id": format_id(*id), "threadId": format_id(*thread)}))
                    .collect();
            }
            if let Some((date, id)) = page.next_after {
                body["nextPageToken"] = json!(encode_token(&[
                    "m1".to_owned(),
                    date.to_string(),
                    format_id(id),
                    fingerprint,
                ]));
            }
            Ok(ok(&body))
        })
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Full,
    Raw,
    Metadata,
    Minimal,
}

async fn get_message(
    State(handle): State<GmailHandle>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::MessagesGet, &headers, &query, &user, |h| {
            let numeric = message_id(&id)?;
            let format = match query.get("format").map(str::to_ascii_lowercase).as_deref() {
                None | Some("full") => Format::Full,
                Some("raw") => Format::Raw,
                Some("metadata") => Format::Metadata,
                Some("minimal") => Format::Minimal,
                Some(other) => {
                    return Err(ApiError::invalid_argument(format!(
                        "invalid value for format: {other}"
                    )));
                }
            };
            let (mut body, source) = {
                let mailbox = h.shared.mailbox();
                let message = mailbox
                    .get(numeric)
                    .ok_or_else(|| ApiError::not_found("requested message not found"))?;
                let mut body = mailbox.reference_json(message.id, message.thread, message.labels);
                if !message.snippet.is_empty() {
                    body["snippet"] = json!(message.snippet);
                }
                body["historyId"] = json!(message.history_id.to_string());
                body["internalDate"] = json!(message.internal_date.to_string());
                (body, mailbox.source(message))
            };
            // Generated sources are written again here, outside the mailbox lock.
            let bytes = source.bytes();
            body["sizeEstimate"] = json!(bytes.len());
            match format {
                Format::Minimal => {}
                Format::Raw => {
                    body["raw"] = json!(mime::encode_base64url(&bytes));
                }
                Format::Full => {
                    body["payload"] = mime::full_payload(&bytes, &format_id(numeric));
                }
                Format::Metadata => {
                    let only: Vec<String> = query
                        .all("metadataHeaders")
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    body["payload"] = mime::metadata_payload(&bytes, &only);
                }
            }
            Ok(ok(&body))
        })
        .await
}

/// `internalDateSource`: the time of the request or the `Date` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateSource {
    ReceivedTime,
    DateHeader,
}

fn date_source(query: &Query, default: DateSource) -> Result<DateSource, ApiError> {
    match query.get("internalDateSource") {
        None => Ok(default),
        Some(value) if value.eq_ignore_ascii_case("receivedTime") => Ok(DateSource::ReceivedTime),
        Some(value) if value.eq_ignore_ascii_case("dateHeader") => Ok(DateSource::DateHeader),
        Some(value) => Err(ApiError::invalid_argument(format!(
            "invalid value for internalDateSource: {value}"
        ))),
    }
}

/// Message metadata sent with an insert (`labelIds`, `threadId`).
#[derive(Debug, Default)]
struct InsertMetadata {
    raw: Option<Vec<u8>>,
    label_ids: Vec<String>,
    thread_id: Option<String>,
}

/// Base64 as Google's JSON reader takes `format: byte`: either alphabet, padded or
/// not, whitespace ignored.
fn decode_bytes_field(value: &str) -> Option<Vec<u8>> {
    let cleaned: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let engine = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(cleaned).ok()
}

fn parse_metadata(bytes: &[u8]) -> Result<InsertMetadata, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(InsertMetadata::default());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_argument(format!("invalid json payload: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::invalid_argument("the request body must be a json object"))?;
    let raw = match object.get("raw") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => Some(
            decode_bytes_field(raw)
                .ok_or_else(|| ApiError::invalid_argument("invalid value for raw: not base64"))?,
        ),
        Some(_) => return Err(ApiError::invalid_argument("raw must be a string")),
    };
    let label_ids = string_list(object.get("labelIds"), "labelIds")?;
    let thread_id = match object.get("threadId") {
        None | Some(Value::Null) => None,
        Some(Value::String(thread)) => Some(thread.clone()),
        Some(_) => return Err(ApiError::invalid_argument("threadId must be a string")),
    };
    Ok(InsertMetadata {
        raw,
        label_ids,
        thread_id,
    })
}

fn string_list(value: Option<&Value>, name: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid_argument(format!("{name} must hold strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_argument(format!("{name} must be a list"))),
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("failed to read the request body: {rejection}"))
        }
    })
}

/// Stores a message from its source: the common end of insert and import.
fn store_message(
    handle: &GmailHandle,
    metadata: InsertMetadata,
    default_date: DateSource,
    query: &Query,
) -> Result<Response, ApiError> {
    let date_source = date_source(query, default_date)?;
    let raw = metadata
        .raw
        .filter(|raw| !raw.is_empty())
        .ok_or_else(|| ApiError::missing_parameter("raw"))?;
    let thread = match metadata.thread_id.as_deref() {
        None | Some("") => None,
        Some(thread) => Some(parse_id(thread).ok_or_else(|| {
            ApiError::invalid_argument(format!("invalid thread id value: {thread}"))
        })?),
    };
    let labels: Vec<&str> = metadata.label_ids.iter().map(String::as_str).collect();
    let use_date_header = date_source == DateSource::DateHeader;
    let value = handle
        .store_raw(raw, &labels, thread, use_date_header, None)
        .map_err(mailbox_error)?;
    Ok(ok(&value))
}

async fn insert_json(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    json_upload(
        handle,
        user,
        headers,
        raw,
        body,
        GmailMethod::MessagesInsert,
    )
    .await
}

async fn import_json(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    json_upload(
        handle,
        user,
        headers,
        raw,
        body,
        GmailMethod::MessagesImport,
    )
    .await
}

async fn json_upload(
    handle: GmailHandle,
    user: String,
    headers: HeaderMap,
    raw: Option<String>,
    body: Result<Bytes, BytesRejection>,
    method: GmailMethod,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let limit = handle.shared.max_upload_bytes;
    handle
        .api(method, &headers, &query, &user, |h| {
            let bytes = body_bytes(body, limit)?;
            let metadata = parse_metadata(&bytes)?;
            store_message(h, metadata, default_date_source(method), &query)
        })
        .await
}

fn default_date_source(method: GmailMethod) -> DateSource {
    if method == GmailMethod::MessagesImport {
        DateSource::DateHeader
    } else {
        DateSource::ReceivedTime
    }
}

async fn insert_upload(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    media_upload(
        handle,
        user,
        headers,
        raw,
        body,
        GmailMethod::MessagesInsert,
    )
    .await
}

async fn import_upload(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    media_upload(
        handle,
        user,
        headers,
        raw,
        body,
        GmailMethod::MessagesImport,
    )
    .await
}

/// The simple upload protocol: `uploadType=media` (the body is the message) or
/// `uploadType=multipart` (a `multipart/related` body: JSON metadata, then the
/// message).
async fn media_upload(
    handle: GmailHandle,
    user: String,
    headers: HeaderMap,
    raw: Option<String>,
    body: Result<Bytes, BytesRejection>,
    method: GmailMethod,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let limit = handle.shared.max_upload_bytes;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    handle
        .api(method, &headers, &query, &user, |h| {
            let bytes = body_bytes(body, limit)?;
            let metadata = match query.get("uploadType") {
                Some("media") => {
                    let media_type = content_type.split(';').next().unwrap_or_default().trim();
                    if !media_type.to_ascii_lowercase().starts_with("message/") {
                        return Err(ApiError::bad_request(format!(
                            "media type {media_type:?} is not supported: use message/rfc822"
                        )));
                    }
                    InsertMetadata {
                        raw: Some(bytes.to_vec()),
                        ..InsertMetadata::default()
                    }
                }
                Some("multipart") => parse_multipart_upload(&content_type, &bytes)?,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "upload type {other} is not supported by this server"
                    )));
                }
                None => return Err(ApiError::missing_parameter("uploadType")),
            };
            store_message(h, metadata, default_date_source(method), &query)
        })
        .await
}

/// A `multipart/related` upload body: the first part is the JSON metadata, the second
/// the message.
fn parse_multipart_upload(content_type: &str, body: &[u8]) -> Result<InsertMetadata, ApiError> {
    let boundary = content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad_request("multipart upload without a boundary"))?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let start = find(rest, delimiter.as_bytes())
        .ok_or_else(|| ApiError::bad_request("multipart upload without parts"))?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())
            .or_else(|| find(rest, format!("\n{delimiter}").as_bytes()))
            .ok_or_else(|| ApiError::bad_request("multipart upload is not terminated"))?;
        let part = strip_line_break(&rest[..end]);
        parts.push(part);
        let after = &rest[end..];
        let skip = find(after, delimiter.as_bytes()).unwrap_or(0) + delimiter.len();
        rest = &after[skip.min(after.len())..];
    }
    let [metadata_part, media_part] = parts.as_slice() else {
        return Err(ApiError::bad_request(
            "a multipart upload needs exactly two parts: metadata and media",
        ));
    };
    let mut metadata = parse_metadata(part_body(metadata_part))?;
    metadata.raw = Some(part_body(media_part).to_vec());
    Ok(metadata)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn strip_line_break(part: &[u8]) -> &[u8] {
    part.strip_prefix(b"\r\n")
        .or_else(|| part.strip_prefix(b"\n"))
        .unwrap_or(part)
}

/// A MIME part's body: what follows the blank line after its headers.
fn part_body(part: &[u8]) -> &[u8] {
    if let Some(at) = find(part, b"\r\n\r\n") {
        &part[at + 4..]
    } else if let Some(at) = find(part, b"\n\n") {
        &part[at + 2..]
    } else {
        &[]
    }
}

async fn delete_message(
    State(handle): State<GmailHandle>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::MessagesDelete, &headers, &query, &user, |h| {
            let numeric = message_id(&id)?;
            h.shared.mailbox().delete(numeric).map_err(mailbox_error)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

async fn trash_message(
    State(handle): State<GmailHandle>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::MessagesTrash, &headers, &query, &user, |h| {
            let numeric = message_id(&id)?;
            let value = h.shared.mailbox().trash(numeric).map_err(mailbox_error)?;
            Ok(ok(&value))
        })
        .await
}

async fn untrash_message(
    State(handle): State<GmailHandle>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::MessagesUntrash, &headers, &query, &user, |h| {
            let numeric = message_id(&id)?;
            let value = h.shared.mailbox().untrash(numeric).map_err(mailbox_error)?;
            Ok(ok(&value))
        })
        .await
}

async fn modify_message(
    State(handle): State<GmailHandle>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let limit = handle.shared.max_upload_bytes;
    handle
        .api(GmailMethod::MessagesModify, &headers, &query, &user, |h| {
            let numeric = message_id(&id)?;
            let bytes = body_bytes(body, limit)?;
            let request: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::invalid_argument(format!("invalid json payload: {e}")))?
            };
            let add = string_list(request.get("addLabelIds"), "addLabelIds")?;
            let remove = string_list(request.get("removeLabelIds"), "removeLabelIds")?;
            let mut mailbox = h.shared.mailbox();
            let add = mailbox.label_set(&add).map_err(mailbox_error)?;
            let remove = mailbox.label_set(&remove).map_err(mailbox_error)?;
            let value = mailbox
                .modify(numeric, add, remove)
                .map_err(mailbox_error)?;
            Ok(ok(&value))
        })
        .await
}

async fn get_attachment(
    State(handle): State<GmailHandle>,
    Path((user, message, attachment)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::AttachmentsGet, &headers, &query, &user, |h| {
            let numeric = message_id(&message)?;
            let (owner, part) = mime::parse_attachment_id(&attachment)
                .ok_or_else(|| ApiError::invalid_argument("invalid attachment id"))?;
            let source = {
                let mailbox = h.shared.mailbox();
                let stored = mailbox
                    .get(numeric)
                    .ok_or_else(|| ApiError::not_found("requested message not found"))?;
                mailbox.source(stored)
            };
            if parse_id(&owner) != Some(numeric) {
                return Err(ApiError::not_found("requested attachment not found"));
            }
            let bytes = mime::part_body(&source.bytes(), &part)
                .ok_or_else(|| ApiError::not_found("requested attachment not found"))?;
            Ok(ok(&json!({
                "size": bytes.len(),
                "data": mime::encode_base64url(&bytes),
            })))
        })
        .await
}

fn history_types(query: &Query) -> Result<HistoryTypes, ApiError> {
    let requested = query.all("historyTypes");
    if requested.is_empty() {
        return Ok(HistoryTypes::ALL);
    }
    let mut types = HistoryTypes {
        added: false,
        deleted: false,
        labels_added: false,
        labels_removed: false,
    };
    for value in requested {
        match value.to_ascii_lowercase().as_str() {
            "messageadded" => types.added = true,
            "messagedeleted" => types.deleted = true,
            "labeladded" => types.labels_added = true,
            "labelremoved" => types.labels_removed = true,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "invalid value for historyTypes: {value}"
                )));
            }
        }
    }
    Ok(types)
}

async fn list_history(
    State(handle): State<GmailHandle>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    handle
        .api(GmailMethod::HistoryList, &headers, &query, &user, |h| {
            let start = query
                .get("startHistoryId")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::missing_parameter("startHistoryId"))?;
            let start = start.parse::<u64>().map_err(|_| {
                ApiError::invalid_argument(format!("invalid startHistoryId: {start}"))
            })?;
            let max = query.page_size()?;
            let types = history_types(&query)?;
            let mailbox = h.shared.mailbox();
            let label = match query.get("labelId") {
                None | Some("") => None,
                Some(label) => Some(mailbox.label_set(&[label]).map_err(mailbox_error)?),
            };
            let fingerprint = format!(
                "{start}-{}{}{}{}-{:x}",
                u8::from(types.added),
                u8::from(types.deleted),
                u8::from(types.labels_added),
                u8::from(types.labels_removed),
                label.unwrap_or(0)
            );
            let after = match query.get("pageToken") {
                None | Some("") => None,
                Some(token) => {
                    let fields = decode_token(token, "h1", 3).ok_or_else(invalid_page_token)?;
                    if fields[2] != fingerprint {
                        return Err(invalid_page_token());
                    }
                    Some(fields[1].parse::<u64>().map_err(|_| invalid_page_token())?)
                }
            };
            let page =
                mailbox
                    .history(start, after, types, label, max)
                    .map_err(|HistoryExpired| {
                        ApiError::not_found("the start history id is too old or not valid")
                    })?;
            let mut body = json!({ "historyId": mailbox.history_id().to_string() });
            drop(mailbox);
            if !page.records.is_empty() {
                body["history"] = Value::Array(page.records);
            }
            if let Some(after) = page.next_after {
                body["nextPageToken"] = json!(encode_token(&[
                    "h1".to_owned(),
                    after.to_string(),
                    fingerprint,
                ]));
            }
            Ok(ok(&body))
        })
        .await
}

//! The HTTP surface: Drive's REST paths under `drive/v3/` and the OAuth endpoints.
//!
//! Every API request goes through [`DriveHandle::gate`]: counted, delayed, maybe
//! faulted, then authenticated. Handlers never panic on request data: a bad id,
//! parameter, page token or query is Google's 400.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tributary_google_fake::ApiError;

use crate::drive::{Drive, Node, rfc3339};
use crate::{DriveHandle, DriveMethod, FileBody, fields, query};

/// `files.list` and `changes.list`: the default and largest `pageSize`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The router for a fake drive.
pub(crate) fn router(handle: DriveHandle) -> Router {
    Router::new()
        .route("/drive/v3/files", get(list_files))
        .route("/drive/v3/files/{id}", get(get_file))
        .route("/drive/v3/files/{id}/export", get(export_file))
        .route("/drive/v3/changes/startPageToken", get(start_page_token))
        .route("/drive/v3/changes", get(list_changes))
        .route("/drive/v3/drives", get(list_drives))
        .route("/drive/v3/drives/{id}", get(get_drive))
        .route("/drive/v3/about", get(about))
        .merge(tributary_google_fake::endpoints::oauth_routes())
        .fallback(|| async { ApiError::not_found("Not Found").into_response() })
        .with_state(handle)
}

fn json_response(value: &Value) -> Response {
    tributary_google_fake::gate::json_response(StatusCode::OK, value)
}

use tributary_google_fake::gate::Query;

/// The Drive parameters' readings of a query string.
trait DriveQuery {
    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ApiError>;
    fn page_size(&self, default: usize, max: usize) -> Result<usize, ApiError>;
    fn fields(&self) -> Result<Option<fields::Selection>, ApiError>;
}

impl DriveQuery for Query {
    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(invalid(name)),
        }
    }

    fn page_size(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("pageSize") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid("pageSize")),
            },
        }
    }

    /// The `fields` selection, if given.
    fn fields(&self) -> Result<Option<fields::Selection>, ApiError> {
        self.get("fields")
            .map(|f| fields::parse(f).map_err(|_| invalid_field_selection(f)))
            .transpose()
    }
}

/// 400 `invalid` for parameter `name`, as Google answers a bad value.
fn invalid(name: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "global",
        "invalid",
        "Invalid Value",
    )
    .at(name, "parameter")
}

fn invalid_field_selection(fields: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "global",
        "invalidParameter",
        format!("Invalid field selection {fields}"),
    )
    .at("fields", "parameter")
}

fn file_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "global",
        "notFound",
        format!("File not found: {id}."),
    )
    .at("fileId", "parameter")
}

impl DriveHandle {
    /// What every API request goes through: count, latency, injected faults, then the
    /// access token.
    async fn gate(
        &self,
        method: DriveMethod,
        headers: &HeaderMap,
        query: &Query,
    ) -> Result<(), ApiError> {
        tributary_google_fake::gate::admit(
            &self.shared.faults,
            &self.shared.tokens,
            method,
            headers,
            query.get("access_token"),
        )
        .await
        .map(|_| ())
    }
}

/// Runs `handler` behind the gate.
async fn api(
    handle: &DriveHandle,
    method: DriveMethod,
    headers: &HeaderMap,
    query: &Query,
    handler: impl FnOnce(&DriveHandle) -> Result<Response, ApiError>,
) -> Response {
    match handle.gate(method, headers, query).await {
        Err(error) => error.into_response(),
        Ok(()) => handler(handle).unwrap_or_else(IntoResponse::into_response),
    }
}

/// The whole `File` resource of `node`.
fn file_json(drive: &Drive, node: &Node) -> Value {
    let (trashed, _) = drive.state(&node.id).unwrap_or((false, true));
    let mut file = json!({
        "kind": "drive#file",
        "id": node.id,
        "name": node.name,
        "mimeType": node.mime_type,
        "createdTime": rfc3339(node.created_ms),
        "modifiedTime": rfc3339(node.modified_ms),
        "version": node.version.to_string(),
        "trashed": trashed,
        "explicitlyTrashed": node.explicitly_trashed,
        "starred": false,
        "spaces": ["drive"],
        "webViewLink": web_view_link(node),
    });
    if let Some(parent) = &node.parent {
        file["parents"] = json!([parent]);
    }
    match &node.drive_id {
        Some(drive_id) => file["driveId"] = json!(drive_id),
        None => {
            file["owners"] = json!([{
                "kind": "drive#user",
                "displayName": drive.owner_name,
                "emailAddress": drive.owner_email,
                "me": true,
                "permissionId": "00000000000000000001",
            }]);
        }
    }
    if let (Some(size), Some(md5)) = (node.size, &node.md5) {
        file["size"] = json!(size.to_string());
        file["md5Checksum"] = json!(md5);
        file["headRevisionId"] = json!(format!("0B{}", &md5[..16]));
    }
    file
}

fn web_view_link(node: &Node) -> String {
    match node.mime_type.as_str() {
        "application/vnd.google-apps.folder" => {
            format!("https://drive.google.com/drive/folders/{}", node.id)
        }
        "application/vnd.google-apps.document" => {
            format!(
                "https://docs.google.com/document/d/{}/edit?usp=drivesdk",
                node.id
            )
        }
        "application/vnd.google-apps.spreadsheet" => {
            format!(
                "https://docs.google.com/spreadsheets/d/{}/edit?usp=drivesdk",
                node.id
            )
        }
        "application/vnd.google-apps.presentation" => {
            format!(
                "https://docs.google.com/presentation/d/{}/edit?usp=drivesdk",
                node.id
            )
        }
        _ => format!(
            "https://drive.google.com/file/d/{}/view?usp=drivesdk",
            node.id
        ),
    }
}

/// A file with only the fields asked for, or Drive v3's defaults.
fn select_file(file: Value, selection: Option<&fields::Selection>) -> Value {
    match selection {
        Some(selection) => selection.apply(&file),
        None => json!({
            "kind": file["kind"], "id": file["id"], "name": file["name"], "mimeType": file["mimeType"],
        }),
    }
}

/// One part of a sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Str(String),
    RevStr(Reverse<String>),
}

/// The sort key of `node` for `order_by` (then its id, so keys are unique).
fn sort_key(node: &Node, order_by: &[(String, bool)]) -> Vec<Key> {
    let mut key: Vec<Key> = order_by
        .iter()
        .map(|(field, desc)| {
            let int = |v: i64| Key::Int(if *desc { -v } else { v });
            let text = |v: String| {
                if *desc {
                    Key::RevStr(Reverse(v))
                } else {
                    Key::Str(v)
                }
            };
            match field.as_str() {
                "modifiedTime" => int(node.modified_ms),
                "createdTime" => int(node.created_ms),
                "folder" => int(i64::from(!node.is_folder())),
                _ => text(node.name.to_lowercase()),
            }
        })
        .collect();
    key.push(Key::Str(node.id.clone()));
    key
}

/// Parses `orderBy` (`modifiedTime desc,name`).
fn parse_order_by(raw: Option<&str>) -> Result<Vec<(String, bool)>, ApiError> {
    let Some(raw) = raw else {
        return Ok(vec![
            ("folder".into(), false),
            ("modifiedTime".into(), true),
            ("name".into(), false),
        ]);
    };
    raw.split(',')
        .map(|part| {
            let mut words = part.split_whitespace();
            let field = words.next().ok_or_else(|| invalid("orderBy"))?;
            let desc = match words.next() {
                None => false,
                Some("desc") => true,
                Some(_) => return Err(invalid("orderBy")),
            };
            if words.next().is_some()
                || !matches!(
                    field,
                    "modifiedTime" | "createdTime" | "name" | "folder" | "name_natural"
                )
            {
                return Err(invalid("orderBy"));
            }
            Ok((field.to_owned(), desc))
        })
        .collect()
}

/// A keyset page token: the sort key of the last item served.
fn encode_key(key: &[Key]) -> String {
    let parts: Vec<Value> = key
        .iter()
        .map(|k| match k {
            Key::Int(v) => json!({"i": v}),
            Key::Str(s) => json!({"s": s}),
            Key::RevStr(Reverse(s)) => json!({"r": s}),
        })
        .collect();
    URL_SAFE_NO_PAD.encode(Value::Array(parts).to_string())
}

fn decode_key(token: &str) -> Option<Vec<Key>> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let parts: Vec<Value> = serde_json::from_slice(&bytes).ok()?;
    parts
        .iter()
        .map(|p| {
            if let Some(v) = p.get("i").and_then(Value::as_i64) {
                Some(Key::Int(v))
            } else if let Some(s) = p.get("s").and_then(Value::as_str) {
                Some(Key::Str(s.to_owned()))
            } else {
                p.get("r")
                    .and_then(Value::as_str)
                    .map(|s| Key::RevStr(Reverse(s.to_owned())))
            }
        })
        .collect()
}

/// Which drives a listing covers.
fn shared_drives_included(query: &Query) -> Result<bool, ApiError> {
    Ok(
        query.flag("includeItemsFromAllDrives", false)?
            && query.flag("supportsAllDrives", false)?,
    )
}

async fn list_files(
    State(handle): State<DriveHandle>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(&handle, DriveMethod::FilesList, &headers, &query, |handle| {
        let size = query.page_size(DEFAULT_PAGE, MAX_PAGE)?;
        let selection = query.fields()?;
        let order_by = parse_order_by(query.get("orderBy"))?;
        let q = match query.get("q") {
            Some(q) => Some(query::parse(q).map_err(|_| invalid("q"))?),
            None => None,
        };
        let all_drives = shared_drives_included(&query)?;
        let corpora = query.get("corpora").unwrap_or("user");
        let drive_filter: Option<Option<String>> = match corpora {
            // My Drive (and, with the all-drives flags, the shared drives too).
            "user" if all_drives => None,
            "user" => Some(None),
            "allDrives" if all_drives => None,
            "drive" if all_drives => match query.get("driveId") {
                Some(id) => Some(Some(id.to_owned())),
                None => return Err(ApiError::missing_parameter("driveId")),
            },
            "allDrives" | "drive" => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "global",
                    "teamDrivesParameterRequired",
                    "The includeItemsFromAllDrives and supportsAllDrives parameters must be set to true",
                ));
            }
            _ => return Err(invalid("corpora")),
        };
        if query.get("spaces").is_some_and(|s| !s.split(',').any(|s| s.trim() == "drive")) {
            let empty = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": []});
            return Ok(json_response(&select_list(empty, selection.as_ref())));
        }
        let after = match query.get("pageToken") {
            Some(token) => Some(decode_key(token).ok_or_else(|| invalid("pageToken"))?),
            None => None,
        };
        let drive = handle.drive();
        let mut matching: Vec<(Vec<Key>, &Node)> = drive
            .listable()
            .filter(|n| match &drive_filter {
                None => true,
                Some(wanted) => n.drive_id == *wanted,
            })
            .filter_map(|n| {
                let (trashed, visible) = drive.state(&n.id)?;
                if !visible {
                    return None;
                }
                let subject = query::Subject {
                    trashed,
                    parent: n.parent.as_deref(),
                    mime_type: &n.mime_type,
                    name: &n.name,
                    modified_ms: n.modified_ms,
                    created_ms: n.created_ms,
                };
                q.as_ref().is_none_or(|q| q.matches(&subject)).then(|| (sort_key(n, &order_by), n))
            })
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let more = matching.len() > size;
        matching.truncate(size);
        let files: Vec<Value> = matching.iter().map(|(_, n)| file_json(&drive, n)).collect();
        let mut list = json!({"kind": "drive#fileList", "incompleteSearch": false});
        if more && let Some((key, _)) = matching.last() {
            list["nextPageToken"] = json!(encode_key(key));
        }
        list["files"] = Value::Array(
            files.into_iter().map(|f| match &selection {
                Some(_) => f,
                None => select_file(f, None),
            }).collect(),
        );
        Ok(json_response(&select_list(list, selection.as_ref())))
    })
    .await
}

/// A listing with only the fields asked for (its items selected by the same
/// selection's sub-fields).
fn select_list(list: Value, selection: Option<&fields::Selection>) -> Value {
    match selection {
        Some(selection) => selection.apply(&list),
        None => list,
    }
}

/// The node `id` as a request may see it (`root` is My Drive's root).
fn visible<'a>(drive: &'a Drive, id: &str, query: &Query) -> Result<&'a Node, ApiError> {
    let id = if id == "root" {
        drive.root_id.as_str()
    } else {
        id
    };
    let node = drive.nodes.get(id).ok_or_else(|| file_not_found(id))?;
    let (_, visible) = drive.state(id).ok_or_else(|| file_not_found(id))?;
    if !visible || (node.drive_id.is_some() && !query.flag("supportsAllDrives", false)?) {
        return Err(file_not_found(id));
    }
    Ok(node)
}

async fn get_file(
    State(handle): State<DriveHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let media = query.get("alt") == Some("media");
    let method = if media {
        DriveMethod::FilesGetMedia
    } else {
        DriveMethod::FilesGet
    };
    if !media && id != "root" && id != handle.root_folder_id() {
        handle.shared.item_gets.fetch_add(1, Ordering::Relaxed);
    }
    api(&handle, method, &headers, &query, |handle| {
        let drive = handle.drive();
        let node = visible(&drive, &id, &query)?;
        if !media {
            let selection = query.fields()?;
            return Ok(json_response(&select_file(file_json(&drive, node), selection.as_ref())));
        }
        query.flag("acknowledgeAbuse", false)?;
        if node.is_google_type() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "global",
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            )
            .at("alt", "parameter"));
        }
        Ok(stream_body(handle, node.body.clone(), &node.mime_type))
    })
    .await
}

/// A response streaming `body` in chunks (never building it whole).
fn stream_body(handle: &DriveHandle, body: FileBody, mime_type: &str) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let len = body.len();
    let counter = handle.clone();
    let chunks = futures::stream::unfold(0u64, move |at| {
        let body = body.clone();
        let counter = counter.clone();
        async move {
            if at >= len {
                return None;
            }
            let bytes = body.bytes(at, CHUNK);
            let n = bytes.len() as u64;
            counter.shared.media_bytes.fetch_add(n, Ordering::Relaxed);
            Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), at + n.max(1)))
        }
    });
    let mut response = Response::new(Body::from_stream(chunks));
    if let Ok(value) = HeaderValue::from_str(mime_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// The export formats of each Google type (Drive's export formats table, the text
/// ones and the common others).
fn export_formats(mime_type: &str) -> &'static [&'static str] {
    match mime_type {
        "application/vnd.google-apps.document" => &[
            "text/plain",
            "text/html",
            "text/markdown",
            "application/rtf",
            "application/pdf",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/epub+zip",
            "application/zip",
        ],
        "application/vnd.google-apps.spreadsheet" => &[
            "text/csv",
            "text/tab-separated-values",
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/x-vnd.oasis.opendocument.spreadsheet",
            "application/zip",
        ],
        "application/vnd.google-apps.presentation" => &[
            "text/plain",
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.oasis.opendocument.presentation",
        ],
        "application/vnd.google-apps.drawing" => &[
            "image/png",
            "image/jpeg",
            "image/svg+xml",
            "application/pdf",
        ],
        _ => &[],
    }
}

async fn export_file(
    State(handle): State<DriveHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(
        &handle,
        DriveMethod::FilesExport,
        &headers,
        &query,
        |handle| {
            let mime = query
                .get("mimeType")
                .ok_or_else(|| ApiError::missing_parameter("mimeType"))?
                .to_owned();
            let drive = handle.drive();
            // Export finds shared-drive files without `supportsAllDrives` (it has no such
            // parameter in the discovery document).
            let node = drive
                .nodes
                .get(&id)
                .filter(|_| drive.state(&id).is_some_and(|(_, visible)| visible))
                .ok_or_else(|| file_not_found(&id))?;
            if !node.is_google_type() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "global",
                    "fileNotExportable",
                    "Export only supports Docs Editors files.",
                ));
            }
            if !export_formats(&node.mime_type).contains(&mime.as_str()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "global",
                    "badRequest",
                    "The requested conversion is not supported.",
                )
                .at("convertTo", "parameter"));
            }
            if node.body.len() > handle.shared.export_limit {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "global",
                    "exportSizeLimitExceeded",
                    "This file is too large to be exported.",
                ));
            }
            Ok(stream_body(handle, node.body.clone(), &mime))
        },
    )
    .await
}

async fn start_page_token(
    State(handle): State<DriveHandle>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(
        &handle,
        DriveMethod::ChangesGetStartPageToken,
        &headers,
        &query,
        |handle| {
            query.flag("supportsAllDrives", false)?;
            let selection = query.fields()?;
            let token =
                json!({"kind": "drive#startPageToken", "startPageToken": handle.page_token()});
            Ok(json_response(&select_list(token, selection.as_ref())))
        },
    )
    .await
}

async fn list_changes(
    State(handle): State<DriveHandle>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(
        &handle,
        DriveMethod::ChangesList,
        &headers,
        &query,
        |handle| {
            let token = query
                .get("pageToken")
                .ok_or_else(|| ApiError::missing_parameter("pageToken"))?;
            let size = query.page_size(DEFAULT_PAGE, MAX_PAGE)?;
            let selection = query.fields()?;
            let include_removed = query.flag("includeRemoved", true)?;
            let all_drives = shared_drives_included(&query)?;
            let my_drive_only = query.flag("restrictToMyDrive", false)?;
            let drive = handle.drive();
            // A token is a change sequence number handed out by this fake; one from before
            // `expire_page_tokens`, or never handed out, is refused as Google refuses an
            // invalid `pageToken`.
            let seq = token
                .parse::<u64>()
                .ok()
                .filter(|seq| *seq >= drive.valid_from && *seq <= drive.next_seq)
                .ok_or_else(|| invalid("pageToken"))?;
            let mut changes = Vec::new();
            let mut last_seq = None;
            let mut more = false;
            for (record, id) in drive.changes_since(seq) {
                let node = drive.nodes.get(&id);
                let removed = !drive.state(&id).is_some_and(|(_, visible)| visible);
                if let Some(node) = node
                    && node.drive_id.is_some()
                    && (!all_drives || my_drive_only)
                {
                    continue;
                }
                if removed && !include_removed {
                    continue;
                }
                if changes.len() == size {
                    more = true;
                    break;
                }
                let mut change = json!({
                    "kind": "drive#change",
                    "changeType": "file",
                    "time": rfc3339(record.time_ms),
                    "removed": removed,
                    "fileId": id,
                });
                if let Some(node) = node.filter(|_| !removed) {
                    change["file"] = file_json(&drive, node);
                    if let Some(drive_id) = &node.drive_id {
                        change["driveId"] = json!(drive_id);
                    }
                }
                changes.push(change);
                last_seq = Some(record.seq);
            }
            let mut list = json!({"kind": "drive#changeList", "changes": changes});
            if more {
                let next = last_seq.map_or(seq, |s| s + 1);
                list["nextPageToken"] = json!(next.to_string());
            } else {
                list["newStartPageToken"] = json!(drive.next_seq.to_string());
            }
            Ok(json_response(&match &selection {
                Some(selection) => selection.apply(&list),
                None => list,
            }))
        },
    )
    .await
}

async fn list_drives(
    State(handle): State<DriveHandle>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(&handle, DriveMethod::DrivesList, &headers, &query, |handle| {
        let size = query.page_size(10, 100)?;
        let selection = query.fields()?;
        let offset = match query.get("pageToken") {
            Some(t) => t.parse::<usize>().map_err(|_| invalid("pageToken"))?,
            None => 0,
        };
        let drive = handle.drive();
        let all: Vec<Value> = drive
            .drives
            .iter()
            .map(|(id, name)| json!({"kind": "drive#drive", "id": id, "name": name, "createdTime": rfc3339(0)}))
            .collect();
        let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
        let mut list = json!({"kind": "drive#driveList", "drives": page});
        if offset + size < all.len() {
            list["nextPageToken"] = json!((offset + size).to_string());
        }
        Ok(json_response(&select_list(list, selection.as_ref())))
    })
    .await
}

async fn get_drive(
    State(handle): State<DriveHandle>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(
        &handle,
        DriveMethod::DrivesGet,
        &headers,
        &query,
        |handle| {
            let selection = query.fields()?;
            let drive = handle.drive();
            let name = drive.drives.get(&id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "global",
                    "notFound",
                    format!("Shared drive not found: {id}"),
                )
                .at("driveId", "parameter")
            })?;
            let value =
                json!({"kind": "drive#drive", "id": id, "name": name, "createdTime": rfc3339(0)});
            Ok(json_response(&select_list(value, selection.as_ref())))
        },
    )
    .await
}

async fn about(
    State(handle): State<DriveHandle>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    api(&handle, DriveMethod::AboutGet, &headers, &query, |handle| {
        // `about.get` answers only the fields asked for, and insists on being asked.
        let selection = query.fields()?.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "global",
                "required",
                "The 'fields' parameter is required for this method.",
            )
            .at("fields", "parameter")
        })?;
        let drive = handle.drive();
        let about = json!({
            "kind": "drive#about",
            "user": {"kind": "drive#user", "displayName": drive.owner_name,
                     "emailAddress": drive.owner_email, "me": true,
                     "permissionId": "00000000000000000001"},
            "storageQuota": {"limit": "16106127360", "usage": "0", "usageInDrive": "0"},
        });
        Ok(json_response(&selection.apply(&about)))
    })
    .await
}

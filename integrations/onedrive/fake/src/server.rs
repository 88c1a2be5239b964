//! The drive routes: the drive, items (by id and by path), children, content and the
//! delta function.

use std::collections::HashMap;
use std::sync::MutexGuard;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tributary_msgraph_fake::odata::{self, QueryOptions, collection, json_response};
use tributary_msgraph_fake::pipeline::GraphRequest;
use tributary_msgraph_fake::{Applied, Caller, GraphError, GraphRoutes};

use crate::delta::{self, Entry, Kind, Token};
use crate::download::{Minter, none_match};
use crate::drive::{Drive, Key};
use crate::json::{self, Base, DRIVE_PROPERTIES, ITEM_PROPERTIES, View, encode_segment};
use crate::{DeltaLinkStyle, DriveType, Inner, OneDriveHandle, ResyncKind, ResyncReport};

/// The largest page of children and delta.
const MAX_PAGE: usize = 1000;

/// The default page of children and delta.
const DEFAULT_PAGE: usize = 200;

/// The deepest path `root:/…:` takes, in segments.
const MAX_PATH_SEGMENTS: usize = 16;

/// The scopes that let a token read the drive.
const FILES_READ: &[&str] = &[
    "Files.Read",
    "Files.ReadWrite",
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
];

type Answer = Result<Response, GraphError>;

/// A drive route's drive, caller and query.
type DriveRequest = GraphRequest<OneDriveHandle>;

/// The route's path parameters, read as a map (none for `/me/drive`).
type Params = Result<Path<HashMap<String, String>>, PathRejection>;

pub(crate) fn routes(handle: &OneDriveHandle) -> GraphRoutes {
    // (operation, path under the drive, handler); `/items/{item}` also as `/root`.
    let by_item: [(&str, &str, MethodRouter<OneDriveHandle>); 3] = [
        ("driveItem.get", "", get(get_item)),
        ("driveItem.children", "/children", get(list_children)),
        ("driveItem.content", "/content", get(get_content)),
    ];
    let mut table = vec![
        ("drive.get", String::new(), get(get_drive)),
        (
            "driveItem.delta",
            "/root/{function}".to_owned(),
            get(delta_function),
        ),
    ];
    for (operation, tail, route) in by_item {
        table.push((operation, format!("/root{tail}"), route.clone()));
        table.push((operation, format!("/items/{{item}}{tail}"), route));
    }
    for depth in 1..=MAX_PATH_SEGMENTS {
        let segments: String = (1..=depth).map(|i| format!("/{{p{i}}}")).collect();
        table.push((
            "driveItem.byPath",
            format!("/root:{segments}"),
            get(by_path),
        ));
    }
    let mut routes = GraphRoutes::new();
    for prefix in ["/v1.0/me/drive", "/v1.0/drives/{drive}"] {
        for (operation, path, route) in &table {
            let route = route.clone().with_state(handle.clone());
            routes = routes.route(*operation, format!("{prefix}{path}"), route);
        }
    }
    routes
}

fn invalid_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "invalidRequest", message)
}

fn item_not_found() -> GraphError {
    GraphError::not_found("itemNotFound", "The resource could not be found.")
}

fn no_content() -> GraphError {
    GraphError::not_found(
        "itemNotFound",
        "The specified item does not exist, or does not have content.",
    )
}

fn access_denied() -> GraphError {
    GraphError::new(StatusCode::FORBIDDEN, "accessDenied", "Access denied")
}

fn unknown_segment(segment: &str) -> GraphError {
    GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
}

/// The route's parameters (none for `/me/drive`).
fn params(path: Params) -> Result<HashMap<String, String>, GraphError> {
    match path {
        Ok(Path(params)) => Ok(params),
        Err(PathRejection::MissingPathParams(_)) => Ok(HashMap::new()),
        Err(_) => Err(GraphError::invalid_path()),
    }
}

fn base_of(params: &HashMap<String, String>) -> Base {
    match params.get("drive") {
        Some(id) => Base::Drive(id.clone()),
        None => Base::Me,
    }
}

/// Decodes `%XX` escapes (not `+`), as paths are written.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl OneDriveHandle {
    /// The drive, for a caller allowed to read it through `base`.
    fn open(&self, caller: &Caller, base: &Base) -> Result<MutexGuard<'_, Inner>, GraphError> {
        if !caller.has_any_scope(FILES_READ) {
            return Err(access_denied());
        }
        let owner = caller.user.id == self.shared.owner.id;
        let inner = self.inner();
        match base {
            Base::Me if !owner => Err(GraphError::not_found(
                "ResourceNotFound",
                "User's mysite not found.",
            )),
            Base::Drive(id) if !same_drive(&inner.drive, id) => Err(GraphError::not_found(
                "itemNotFound",
                "The provided drive id does not match a drive.",
            )),
            Base::Drive(_) if !owner => Err(access_denied()),
            _ => Ok(inner),
        }
    }
}

fn same_drive(drive: &Drive, id: &str) -> bool {
    match drive.drive_type {
        DriveType::Business => drive.drive_id == id,
        DriveType::Personal => drive.drive_id.eq_ignore_ascii_case(id),
    }
}

/// The drive, opened for the caller through the route's base, and the item the route
/// names (`{item}`; the root when it names none).
fn open_item<'a>(
    handle: &'a OneDriveHandle,
    caller: &Caller,
    path: Params,
) -> Result<(Base, MutexGuard<'a, Inner>, Key), GraphError> {
    let params = params(path)?;
    let base = base_of(&params);
    let inner = handle.open(caller, &base)?;
    let key = match params.get("item") {
        Some(id) => find_item(&inner.drive, id)?,
        None => inner.drive.root,
    };
    Ok((base, inner, key))
}

/// The key of `id` (`root` is the root).
fn find_item(drive: &Drive, id: &str) -> Result<Key, GraphError> {
    if id.eq_ignore_ascii_case("root") {
        return Ok(drive.root);
    }
    drive.key_of(id).ok_or_else(item_not_found)
}

/// `@odata.context` of an item answer.
fn item_context(caller: &Caller, base: &Base, root: bool) -> String {
    let entity = if root { "root" } else { "items" };
    match base {
        Base::Me => caller.url(&format!(
            "/$metadata#users('{}')/drive/{entity}/$entity",
            caller.user.id
        )),
        Base::Drive(id) => caller.url(&format!("/$metadata#drives('{id}')/{entity}/$entity")),
    }
}

async fn get_drive(GraphRequest(handle, caller, query): DriveRequest, path: Params) -> Answer {
    let base = base_of(&params(path)?);
    let select = query.select(DRIVE_PROPERTIES, "microsoft.graph.drive")?;
    query.refuse(&["expand"])?;
    let inner = handle.open(&caller, &base)?;
    let object = json::drive(
        &inner.drive,
        &handle.shared.owner,
        handle.shared.quota_total,
    );
    let mut object = odata::select_fields(object, select.as_deref(), &["id"]);
    let context = match base {
        Base::Me => caller.url(&format!(
            "/$metadata#users('{}')/drive/$entity",
            caller.user.id
        )),
        Base::Drive(_) => caller.url("/$metadata#drives/$entity"),
    };
    object.insert("@odata.context".into(), Value::String(context));
    Ok(json_response(StatusCode::OK, &Value::Object(object)))
}

/// How items are written: in a delta page (no paths, download URLs only when
/// selected) or not (download URLs unless `$select` leaves them out).
fn view<'a>(
    handle: &'a OneDriveHandle,
    base: &'a Base,
    select: Option<&'a [&'static str]>,
    minter: &'a Minter,
    delta: bool,
) -> View<'a> {
    View {
        base,
        owner: &handle.shared.owner,
        delta,
        select,
        minter: Some(minter),
        download_by_default: !delta,
    }
}

/// One item as `GET` answers it.
fn item_answer(
    handle: &OneDriveHandle,
    caller: &Caller,
    inner: &Inner,
    base: &Base,
    key: Key,
    query: &QueryOptions,
) -> Answer {
    let select = query.select(ITEM_PROPERTIES, "microsoft.graph.driveItem")?;
    query.refuse(&["expand"])?;
    let drive = &inner.drive;
    let item = drive.items.get(&key).ok_or_else(item_not_found)?;
    let minter = handle.minter(inner, &caller.graph_root);
    let view = view(handle, base, select.as_deref(), &minter, false);
    let mut body = json::item(drive, item, &view);
    body["@odata.context"] = Value::String(item_context(caller, base, key == drive.root));
    Ok(json_response(StatusCode::OK, &body))
}

async fn get_item(GraphRequest(handle, caller, query): DriveRequest, path: Params) -> Answer {
    let (base, inner, key) = open_item(&handle, &caller, path)?;
    item_answer(&handle, &caller, &inner, &base, key, &query)
}

/// A children page's position: after (lowercase name, key).
struct ChildrenToken {
    parent: Key,
    descending: bool,
    name: String,
    key: Key,
}

impl ChildrenToken {
    fn encode(&self, tag: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "c1\n{tag}\n{}\n{}\n{}\n{}",
            self.parent,
            u8::from(self.descending),
            self.key,
            self.name
        ))
    }

    fn decode(raw: &str, tag: &str) -> Option<ChildrenToken> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let mut parts = raw.splitn(6, '\n');
        if parts.next()? != "c1" || parts.next()? != tag {
            return None;
        }
        let parent = parts.next()?.parse().ok()?;
        let descending = parts.next()? == "1";
        let key = parts.next()?.parse().ok()?;
        let name = parts.next()?.to_owned();
        Some(ChildrenToken {
            parent,
            descending,
            name,
            key,
        })
    }
}

/// `$orderby` of children: true for descending names.
fn descending(query: &QueryOptions) -> Result<bool, GraphError> {
    let descending = query.order_by("name", |raw| {
        format!("The $orderby '{raw}' is not supported by this fake: only name asc or desc.")
    })?;
    Ok(descending.unwrap_or(false))
}

/// A page of a folder's children.
fn children_answer(
    handle: &OneDriveHandle,
    caller: &Caller,
    inner: &mut Inner,
    base: &Base,
    key: Key,
    query: &QueryOptions,
) -> Answer {
    query.refuse(&["expand", "filter", "search"])?;
    let select = query.select(ITEM_PROPERTIES, "microsoft.graph.driveItem")?;
    let descending = descending(query)?;
    let default = caller.prefer.max_page_size.unwrap_or(DEFAULT_PAGE);
    let top = query.top(default, MAX_PAGE)?.max(1);
    let drive = &inner.drive;
    let parent = drive.items.get(&key).ok_or_else(item_not_found)?;
    let Some(children) = parent.children() else {
        // A file has no children: Graph answers an empty collection.
        let context = caller.url("/$metadata#Collection(driveItem)");
        return Ok(json_response(
            StatusCode::OK,
            &collection(&context, Vec::new(), None),
        ));
    };
    let after = match query.system("skiptoken")? {
        None => None,
        Some(raw) => Some(
            ChildrenToken::decode(raw, &drive.tag)
                .filter(|t| t.parent == key && t.descending == descending)
                .ok_or_else(|| invalid_request("The skip token is not valid for this folder."))?,
        ),
    };
    let mut sorted: Vec<(String, Key)> = children
        .iter()
        .filter_map(|k| drive.items.get(k).map(|c| (c.name.to_lowercase(), *k)))
        .collect();
    sorted.sort();
    if descending {
        sorted.reverse();
    }
    let rest = sorted.into_iter().filter(|(name, k)| match &after {
        None => true,
        Some(t) if descending => (name.as_str(), *k) < (t.name.as_str(), t.key),
        Some(t) => (name.as_str(), *k) > (t.name.as_str(), t.key),
    });
    let (page, last) = odata::keyset_page(rest, top, |(name, k)| (name.clone(), *k));
    let minter = handle.minter(inner, &caller.graph_root);
    let view = view(handle, base, select.as_deref(), &minter, false);
    let value = page
        .iter()
        .filter_map(|(_, k)| drive.items.get(k))
        .map(|child| json::item(drive, child, &view))
        .collect();
    let next = last.map(|(name, k)| {
        let token = ChildrenToken {
            parent: key,
            descending,
            name,
            key: k,
        };
        let mut pairs = query.pairs_without(&["top", "skiptoken"]);
        pairs.push(("$top".into(), top.to_string()));
        pairs.push(("$skiptoken".into(), token.encode(&drive.tag)));
        let path = format!(
            "{}/items/{}/children",
            base.prefix(),
            encode_segment(&parent.id)
        );
        odata::link_with_query(&caller.url(&path), &pairs)
    });
    let context = match base {
        Base::Me => caller.url(&format!(
            "/$metadata#users('{}')/drive/items('{}')/children",
            caller.user.id, parent.id
        )),
        Base::Drive(id) => caller.url(&format!(
            "/$metadata#drives('{id}')/items('{}')/children",
            parent.id
        )),
    };
    Ok(json_response(
        StatusCode::OK,
        &collection(&context, value, next),
    ))
}

async fn list_children(GraphRequest(handle, caller, query): DriveRequest, path: Params) -> Answer {
    let (base, mut inner, key) = open_item(&handle, &caller, path)?;
    children_answer(&handle, &caller, &mut inner, &base, key, &query)
}

/// `/content`: a redirect to the file's download URL.
fn content_answer(
    handle: &OneDriveHandle,
    caller: &Caller,
    inner: &mut Inner,
    key: Key,
    headers: &HeaderMap,
) -> Answer {
    let item = inner.drive.items.get(&key).ok_or_else(no_content)?;
    if item.file().is_none() {
        return Err(no_content());
    }
    let etag = item.etag();
    if none_match(headers, &[etag.clone(), item.ctag()]) {
        inner.counters.not_modified += 1;
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return Ok(response);
    }
    let url = handle.minter(inner, &caller.graph_root).url(item);
    inner.counters.content_redirects += 1;
    let mut response = StatusCode::FOUND.into_response();
    let location = HeaderValue::from_str(&url).map_err(|_| GraphError::internal())?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

async fn get_content(
    GraphRequest(handle, caller, _): DriveRequest,
    path: Params,
    headers: HeaderMap,
) -> Answer {
    let (_, mut inner, key) = open_item(&handle, &caller, path)?;
    content_answer(&handle, &caller, &mut inner, key, &headers)
}

/// `GET …/root:/{path}:[/children|/content]`.
async fn by_path(
    GraphRequest(handle, caller, query): DriveRequest,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let full = uri.path();
    let (prefix, rest) = full
        .split_once("/root:")
        .ok_or_else(GraphError::invalid_path)?;
    let base = match prefix.strip_prefix("/v1.0/drives/") {
        Some(id) => Base::Drive(
            percent_decode(id)
                .ok_or_else(|| GraphError::bad_request("The drive id is not valid."))?,
        ),
        None => Base::Me,
    };
    let (path_part, tail) = rest.split_once(':').unwrap_or((rest, ""));
    let names = path_part
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| GraphError::bad_request("The item path is not valid."))?;
    let mut inner = handle.open(&caller, &base)?;
    let key = inner.drive.resolve(&names).ok_or_else(item_not_found)?;
    match tail {
        "" | "/" => item_answer(&handle, &caller, &inner, &base, key, &query),
        "/children" => children_answer(&handle, &caller, &mut inner, &base, key, &query),
        "/content" => content_answer(&handle, &caller, &mut inner, key, &headers),
        other => Err(unknown_segment(other.trim_start_matches('/'))),
    }
}

/// The `token` of a delta function segment (`delta`, `delta()`, `delta(token='…')`,
/// with or without `microsoft.graph.`).
fn parse_delta_segment(segment: &str) -> Result<Option<String>, GraphError> {
    let name = segment.strip_prefix("microsoft.graph.").unwrap_or(segment);
    let rest = name
        .strip_prefix("delta")
        .ok_or_else(|| unknown_segment(segment))?;
    if rest.is_empty() || rest == "()" {
        return Ok(None);
    }
    let arguments = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| unknown_segment(segment))?;
    let (parameter, value) = arguments
        .split_once('=')
        .ok_or_else(|| unknown_segment(segment))?;
    if !parameter.trim().eq_ignore_ascii_case("token") {
        return Err(GraphError::bad_request(format!(
            "The delta function has no parameter '{}'.",
            parameter.trim()
        )));
    }
    let value = value.trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map_or_else(|| value.to_owned(), |v| v.replace("''", "'"));
    Ok(Some(value))
}

/// What a delta request asks for.
enum Start {
    /// A round (first or later), from this token.
    Round(Token),
    /// `token=latest`: no items, a deltaLink for now.
    Latest(Token),
}

/// The link of a token, in the configured style.
fn delta_link(handle: &OneDriveHandle, caller: &Caller, base: &Base, token: &Token) -> String {
    let function = caller.url(&format!("{}/root/delta", base.prefix()));
    match handle.shared.link_style {
        DeltaLinkStyle::Query => format!("{function}?token={}", token.encode()),
        DeltaLinkStyle::Function => format!("{function}(token='{}')", token.encode()),
    }
}

/// 410 Gone for a forgotten token, in Graph's envelope with the configured codes.
fn resync(handle: &OneDriveHandle, location: String) -> GraphError {
    let kind = handle.shared.resync;
    let (code, inner_code) = match handle.shared.resync_report {
        ResyncReport::Nested => ("resyncRequired", Some(kind.code())),
        ResyncReport::TopLevel => (kind.code(), None),
        ResyncReport::CodeOnly => ("resyncRequired", None),
    };
    let message = match kind {
        ResyncKind::ApplyDifferences => {
            "This delta token can no longer be used. List the drive again from the Location URL and take the items it returns, deletions included, as the truth."
        }
        ResyncKind::UploadDifferences => {
            "This delta token can no longer be used. List the drive again from the Location URL; keep local items it does not return and both copies of files that differ."
        }
    };
    let gone = GraphError::gone(code, message, location);
    match inner_code {
        Some(inner_code) => gone.with_inner_code(inner_code),
        None => gone,
    }
}

fn malformed_token() -> GraphError {
    invalid_request("Provided sync token is malformed.")
}

/// `GET …/root/delta` in every spelling.
async fn delta_function(
    GraphRequest(handle, caller, query): DriveRequest,
    path: Params,
    headers: HeaderMap,
) -> Answer {
    let params = params(path)?;
    let base = base_of(&params);
    let segment = params.get("function").map_or("", String::as_str);
    let in_path = parse_delta_segment(segment)?;
    let in_query = query.get("token").map(str::to_owned);
    let token = match (in_path, in_query) {
        (Some(_), Some(_)) => {
            return Err(GraphError::bad_request(
                "The token is given twice: in the function and in the query.",
            ));
        }
        (Some(t), None) | (None, Some(t)) => Some(t),
        (None, None) => None,
    };
    let mut inner = handle.open(&caller, &base)?;
    inner.counters.delta_requests += 1;
    let drive = &inner.drive;
    let start = match token.as_deref() {
        None => Start::Round(first_request(
            drive,
            &query,
            Kind::Initial { after: None },
            drive.seq,
        )?),
        Some(latest) if latest.eq_ignore_ascii_case("latest") => {
            Start::Latest(first_request(drive, &query, Kind::Delta, drive.seq)?)
        }
        Some(raw) if chrono::DateTime::parse_from_rfc3339(raw).is_ok() => {
            if drive.drive_type != DriveType::Business {
                return Err(invalid_request(
                    "Timestamp tokens are supported on OneDrive for Business only.",
                ));
            }
            let at = chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default();
            Start::Round(first_request(drive, &query, Kind::Delta, drive.seq_at(at))?)
        }
        Some(raw) => {
            let token = Token::decode(raw, ITEM_PROPERTIES)
                .filter(|t| t.tag == drive.tag && t.from <= drive.seq)
                .filter(|t| match t.kind {
                    Kind::Changes { to, .. } => t.from <= to && to <= drive.seq,
                    _ => true,
                })
                .ok_or_else(malformed_token)?;
            if token.epoch != drive.epoch {
                let fresh = Token {
                    epoch: drive.epoch,
                    from: drive.seq,
                    kind: Kind::Initial { after: None },
                    ..token
                };
                inner.counters.resyncs += 1;
                let location = delta_link(&handle, &caller, &base, &fresh);
                return Err(resync(&handle, location));
            }
            Start::Round(token)
        }
    };
    let mut applied = Applied::new();
    applied.push_max_page_size(&caller.prefer, MAX_PAGE);
    let exclude_parents = headers
        .get("deltaexcludeparent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("false"));
    let drive = &inner.drive;
    let (entries, link, select) = match start {
        Start::Latest(token) => {
            let select = token.select.clone();
            (Vec::new(), Link::Delta(token), select)
        }
        Start::Round(token) => {
            let size = caller.prefer.page_size(token.top, DEFAULT_PAGE, MAX_PAGE);
            let (entries, link) = page(drive, &token, size, exclude_parents);
            (entries, link, token.select)
        }
    };
    let minter = handle.minter(&inner, &caller.graph_root);
    let drive = &inner.drive;
    let view = view(&handle, &base, select.as_deref(), &minter, true);
    let value: Vec<Value> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Live(key) => drive
                .items
                .get(key)
                .map(|item| json::item(drive, item, &view)),
            Entry::Deleted(key) => drive
                .deleted
                .get(key)
                .map(|tombstone| json::deleted(drive, tombstone, &view)),
        })
        .collect();
    let mut body = collection(&caller.url("/$metadata#Collection(driveItem)"), value, None);
    match link {
        Link::Next(token) => {
            body["@odata.nextLink"] = Value::String(delta_link(&handle, &caller, &base, &token));
        }
        Link::Delta(token) => {
            body["@odata.deltaLink"] = Value::String(delta_link(&handle, &caller, &base, &token));
        }
    }
    Ok(applied.apply(json_response(StatusCode::OK, &body)))
}

/// The link that ends a page.
enum Link {
    /// More of this round.
    Next(Token),
    /// The round is over: the changes after it, later.
    Delta(Token),
}

/// One page of the round `token` is in, and its link.
fn page(drive: &Drive, token: &Token, size: usize, exclude_parents: bool) -> (Vec<Entry>, Link) {
    match token.kind {
        Kind::Initial { after } => {
            let (entries, next) = delta::initial_page(drive, after, size);
            let link = match next {
                Some(position) => Link::Next(Token {
                    kind: Kind::Initial {
                        after: Some(position),
                    },
                    ..token.clone()
                }),
                // What changed since the round started comes in the next one.
                None => Link::Delta(Token {
                    kind: Kind::Delta,
                    ..token.clone()
                }),
            };
            (entries, link)
        }
        Kind::Delta | Kind::Changes { .. } => {
            let (to, after) = match token.kind {
                Kind::Changes { to, after } => (to, after),
                _ => (drive.seq, None),
            };
            let (entries, next) =
                delta::changes_page(drive, token.from, to, after, size, exclude_parents);
            let link = match next {
                Some(seq) => Link::Next(Token {
                    kind: Kind::Changes {
                        to,
                        after: Some(seq),
                    },
                    ..token.clone()
                }),
                None => Link::Delta(Token {
                    kind: Kind::Delta,
                    from: to,
                    ..token.clone()
                }),
            };
            (entries, link)
        }
    }
}

/// The token of a first request (no token, `latest` or a timestamp): its options,
/// checked, and where it starts.
fn first_request(
    drive: &Drive,
    query: &QueryOptions,
    kind: Kind,
    from: u64,
) -> Result<Token, GraphError> {
    query.refuse(&["expand", "filter", "search", "orderby"])?;
    let select = query.select(ITEM_PROPERTIES, "microsoft.graph.driveItem")?;
    let top = query.first_top(MAX_PAGE)?;
    Ok(Token {
        tag: drive.tag.clone(),
        epoch: drive.epoch,
        from,
        kind,
        select,
        top,
    })
}

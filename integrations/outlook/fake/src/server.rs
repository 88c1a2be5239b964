//! The mail routes: folders, messages, attachments and the delta function.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use rand::Rng as _;
use serde_json::Value;
use tributary_msgraph_fake::odata::{self, QueryOptions, collection, json_response};
use tributary_msgraph_fake::pipeline::{GraphPath, GraphRequest};
use tributary_msgraph_fake::{Applied, BodyType, Caller, GraphError, GraphRoutes};

use crate::delta::{self, Item, Kind, Token};
use crate::json::{self, ATTACHMENT_PROPERTIES, FOLDER_PROPERTIES, MESSAGE_PROPERTIES, View};
use crate::mailbox::{FolderKey, Mailbox, Message};
use crate::{ChangeType, Inner, OutlookHandle};

/// The largest page Graph gives for messages and folders.
const MAX_PAGE: usize = 1000;

/// The default page of lists and delta.
const DEFAULT_PAGE: usize = 10;

/// The scopes that let a token read mail.
const MAIL_READ: &[&str] = &["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"];

/// The spellings of the delta function after `…/messages/`.
const DELTA_SPELLINGS: [&str; 4] = [
    "delta",
    "delta()",
    "microsoft.graph.delta",
    "microsoft.graph.delta()",
];

pub(crate) fn routes(handle: &OutlookHandle) -> GraphRoutes {
    // (operation, path under /v1.0/me, handler)
    let table: [(&str, &str, MethodRouter<OutlookHandle>); 9] = [
        ("mailFolder.list", "/mailFolders", get(list_folders)),
        ("mailFolder.get", "/mailFolders/{folder}", get(get_folder)),
        (
            "mailFolder.childFolders",
            "/mailFolders/{folder}/childFolders",
            get(child_folders),
        ),
        (
            "message.list",
            "/mailFolders/{folder}/messages",
            get(folder_messages),
        ),
        ("message.listAll", "/messages", get(all_messages)),
        ("message.get", "/messages/{message}", get(get_message)),
        (
            "message.value",
            "/messages/{message}/$value",
            get(message_value),
        ),
        (
            "attachment.list",
            "/messages/{message}/attachments",
            get(list_attachments),
        ),
        (
            "attachment.get",
            "/messages/{message}/attachments/{attachment}",
            get(get_attachment),
        ),
    ];
    let delta = DELTA_SPELLINGS.map(|spelling| {
        let path = format!("/mailFolders/{{folder}}/messages/{spelling}");
        ("message.delta", path, get(message_delta))
    });
    let table = table
        .into_iter()
        .map(|(operation, path, route)| (operation, path.to_owned(), route));
    table
        .chain(delta)
        .fold(GraphRoutes::new(), |routes, (operation, path, route)| {
            routes.route(
                operation,
                format!("/v1.0/me{path}"),
                route.with_state(handle.clone()),
            )
        })
}

type Answer = Result<Response, GraphError>;

/// A mail route's mailbox, caller and query.
type MailRequest = GraphRequest<OutlookHandle>;

impl OutlookHandle {
    /// The mailbox, for a caller allowed to read it.
    fn open(&self, caller: &Caller) -> Result<std::sync::MutexGuard<'_, Inner>, GraphError> {
        if caller.user.id != self.shared.owner.id {
            return Err(GraphError::not_found(
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        }
        caller.require_any_scope(MAIL_READ)?;
        Ok(self.inner())
    }
}

fn malformed_id() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidIdMalformed",
        "Id is malformed.",
    )
}

fn item_not_found() -> GraphError {
    GraphError::not_found(
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn find_folder(mailbox: &Mailbox, id: &str) -> Result<FolderKey, GraphError> {
    match mailbox.folder_key(id) {
        Some(key) => Ok(key),
        None if mailbox.looks_like_id(id) => Err(item_not_found()),
        None => Err(malformed_id()),
    }
}

fn find_message<'a>(mailbox: &'a Mailbox, id: &str) -> Result<&'a Message, GraphError> {
    match mailbox.message(id) {
        Some(message) => Ok(message),
        None if mailbox.looks_like_id(id) => Err(item_not_found()),
        None => Err(malformed_id()),
    }
}

/// The request's rendering options, and the preferences that honours.
fn view(caller: &Caller, query: &QueryOptions) -> Result<(View, Applied), GraphError> {
    let select = query.select(MESSAGE_PROPERTIES, "microsoft.graph.message")?;
    let expand_attachments = match query.system("expand")? {
        None => false,
        Some(e) if e.trim().eq_ignore_ascii_case("attachments") => true,
        Some(e) => {
            return Err(GraphError::unknown_property(
                e.trim(),
                "microsoft.graph.message",
            ));
        }
    };
    let mut applied = Applied::new();
    let body_type = caller.prefer.body_content_type.unwrap_or(BodyType::Html);
    if let Some(asked) = caller.prefer.body_content_type {
        applied.push(format!("outlook.body-content-type=\"{}\"", asked.as_str()));
    }
    if caller.prefer.immutable_ids {
        applied.push("IdType=\"ImmutableId\"");
    }
    Ok((
        View {
            immutable_ids: caller.prefer.immutable_ids,
            body_type,
            select,
            expand_attachments,
        },
        applied,
    ))
}

/// The query options the fake does not evaluate.
const UNSUPPORTED: &[&str] = &["filter", "search"];

/// `$orderby` of a message list: true for newest first (the default).
fn newest_first(query: &QueryOptions) -> Result<bool, GraphError> {
    let descending = query.order_by("receivedDateTime", |raw| {
        format!("The $orderby '{raw}' is not supported: only receivedDateTime asc or desc.")
    })?;
    Ok(descending.unwrap_or(true))
}

/// The next page's link of a `$top`/`$skip` list.
fn next_link(caller: &Caller, path: &str, query: &QueryOptions, top: usize, skip: usize) -> String {
    let mut pairs = query.pairs_without(&["top", "skip"]);
    pairs.push(("$top".into(), top.to_string()));
    pairs.push(("$skip".into(), (skip + top).to_string()));
    odata::link_with_query(&caller.url(path), &pairs)
}

/// A `$top`/`$skip` page of `items` (already sorted): the page and whether there is
/// more.
fn page_of<T: Copy>(items: impl Iterator<Item = T>, skip: usize, top: usize) -> (Vec<T>, bool) {
    let (page, next) = odata::keyset_page(items.skip(skip), top, |_| ());
    (page, next.is_some())
}

fn folder_page(
    caller: &Caller,
    inner: &Inner,
    children: &[FolderKey],
    path: &str,
    query: &QueryOptions,
) -> Answer {
    let select = query.select(FOLDER_PROPERTIES, "microsoft.graph.mailFolder")?;
    let top = query.top(DEFAULT_PAGE, MAX_PAGE)?;
    let skip = query.skip()?;
    let count = query.count()?;
    let mailbox = &inner.mailbox;
    let (page, more) = page_of(children.iter().copied(), skip, top);
    let value = page
        .into_iter()
        .map(|key| json::folder(mailbox, key, select.as_deref()))
        .collect();
    let context = caller.url(&format!(
        "/$metadata#users('{}')/mailFolders",
        caller.user.id
    ));
    let next = more.then(|| next_link(caller, path, query, top, skip));
    let mut body = collection(&context, value, next);
    if count {
        body["@odata.count"] = Value::from(children.len());
    }
    Ok(json_response(StatusCode::OK, &body))
}

async fn list_folders(GraphRequest(handle, caller, query): MailRequest) -> Answer {
    let inner = handle.open(&caller)?;
    let children = inner.mailbox.folders[0].children.clone();
    folder_page(&caller, &inner, &children, "/me/mailFolders", &query)
}

async fn child_folders(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(folder): GraphPath<String>,
) -> Answer {
    let inner = handle.open(&caller)?;
    let key = find_folder(&inner.mailbox, &folder)?;
    let children = inner.mailbox.folders[key].children.clone();
    let path = format!(
        "/me/mailFolders/{}/childFolders",
        inner.mailbox.folders[key].id
    );
    folder_page(&caller, &inner, &children, &path, &query)
}

async fn get_folder(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(folder): GraphPath<String>,
) -> Answer {
    let select = query.select(FOLDER_PROPERTIES, "microsoft.graph.mailFolder")?;
    let inner = handle.open(&caller)?;
    let key = find_folder(&inner.mailbox, &folder)?;
    let mut body = json::folder(&inner.mailbox, key, select.as_deref());
    body["@odata.context"] = Value::String(caller.url(&format!(
        "/$metadata#users('{}')/mailFolders/$entity",
        caller.user.id
    )));
    Ok(json_response(StatusCode::OK, &body))
}

/// A `$top`/`$skip` page of messages.
fn message_page(
    caller: &Caller,
    mailbox: &Mailbox,
    keys: Vec<u64>,
    path: &str,
    context: &str,
    query: &QueryOptions,
) -> Answer {
    query.refuse(UNSUPPORTED)?;
    let (view, mut applied) = view(caller, query)?;
    let default = caller.prefer.max_page_size.unwrap_or(DEFAULT_PAGE);
    if query.system("top")?.is_none() {
        applied.push_max_page_size(&caller.prefer, MAX_PAGE);
    }
    let top = query.top(default, MAX_PAGE)?;
    let skip = query.skip()?;
    let count = query.count()?;
    let total = keys.len();
    let (page, more) = page_of(keys.into_iter(), skip, top);
    let value = page
        .into_iter()
        .filter_map(|key| mailbox.messages.get(&key))
        .map(|m| json::message(mailbox, m, &view))
        .collect();
    let next = more.then(|| next_link(caller, path, query, top, skip));
    let mut body = collection(context, value, next);
    if count {
        body["@odata.count"] = Value::from(total);
    }
    Ok(applied.apply(json_response(StatusCode::OK, &body)))
}

async fn folder_messages(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(folder): GraphPath<String>,
) -> Answer {
    let inner = handle.open(&caller)?;
    let mailbox = &inner.mailbox;
    let key = find_folder(mailbox, &folder)?;
    let newest = newest_first(&query)?;
    let set = &mailbox.folders[key].messages;
    let keys: Vec<u64> = if newest {
        set.iter().map(|(_, k)| k.0).collect()
    } else {
        set.iter().rev().map(|(_, k)| k.0).collect()
    };
    let folder_id = &mailbox.folders[key].id;
    let context = caller.url(&format!(
        "/$metadata#users('{}')/mailFolders('{folder_id}')/messages",
        caller.user.id
    ));
    let path = format!("/me/mailFolders/{folder_id}/messages");
    message_page(&caller, mailbox, keys, &path, &context, &query)
}

async fn all_messages(GraphRequest(handle, caller, query): MailRequest) -> Answer {
    let inner = handle.open(&caller)?;
    let mailbox = &inner.mailbox;
    let newest = newest_first(&query)?;
    let mut sorted: Vec<_> = mailbox.messages.values().map(Message::sort_key).collect();
    sorted.sort_unstable();
    if !newest {
        sorted.reverse();
    }
    let keys = sorted.into_iter().map(|(_, k)| k.0).collect();
    let context = caller.url(&format!("/$metadata#users('{}')/messages", caller.user.id));
    message_page(&caller, mailbox, keys, "/me/messages", &context, &query)
}

async fn get_message(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(id): GraphPath<String>,
) -> Answer {
    let (view, applied) = view(&caller, &query)?;
    let inner = handle.open(&caller)?;
    let message = find_message(&inner.mailbox, &id)?;
    let mut body = json::message(&inner.mailbox, message, &view);
    body["@odata.context"] = Value::String(caller.url(&format!(
        "/$metadata#users('{}')/messages/$entity",
        caller.user.id
    )));
    Ok(applied.apply(json_response(StatusCode::OK, &body)))
}

async fn message_value(
    GraphRequest(handle, caller, _): MailRequest,
    GraphPath(id): GraphPath<String>,
) -> Answer {
    let inner = handle.open(&caller)?;
    let message = find_message(&inner.mailbox, &id)?;
    let mut response = (StatusCode::OK, json::mime(message)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

async fn list_attachments(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(id): GraphPath<String>,
) -> Answer {
    let select = query.select(ATTACHMENT_PROPERTIES, "microsoft.graph.attachment")?;
    let inner = handle.open(&caller)?;
    let message = find_message(&inner.mailbox, &id)?;
    let value = message
        .attachments
        .iter()
        .map(|a| json::attachment(message, a, select.as_deref()))
        .collect();
    let context = caller.url(&format!(
        "/$metadata#users('{}')/messages('{id}')/attachments",
        caller.user.id
    ));
    Ok(json_response(
        StatusCode::OK,
        &collection(&context, value, None),
    ))
}

async fn get_attachment(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath((id, attachment)): GraphPath<(String, String)>,
) -> Answer {
    let select = query.select(ATTACHMENT_PROPERTIES, "microsoft.graph.attachment")?;
    let inner = handle.open(&caller)?;
    let message = find_message(&inner.mailbox, &id)?;
    let found = message
        .attachments
        .iter()
        .find(|a| a.id == attachment)
        .ok_or_else(item_not_found)?;
    let mut body = json::attachment(message, found, select.as_deref());
    body["@odata.context"] = Value::String(caller.url(&format!(
        "/$metadata#users('{}')/messages('{id}')/attachments/$entity",
        caller.user.id
    )));
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET .../messages/delta`.
async fn message_delta(
    GraphRequest(handle, caller, query): MailRequest,
    GraphPath(folder): GraphPath<String>,
) -> Answer {
    let mut inner = handle.open(&caller)?;
    let key = find_folder(&inner.mailbox, &folder)?;
    let token = match (query.system("skiptoken")?, query.system("deltatoken")?) {
        (Some(_), Some(_)) => {
            return Err(GraphError::bad_request(
                "A request cannot carry both $skiptoken and $deltatoken.",
            ));
        }
        (Some(raw), None) | (None, Some(raw)) => {
            let token = Token::decode(raw, MESSAGE_PROPERTIES)
                .filter(|t| t.tag == inner.mailbox.tag && t.folder == key)
                .filter(|t| t.from <= inner.mailbox.seq)
                .ok_or_else(|| {
                    GraphError::bad_request("The delta or skip token is not valid for this folder.")
                })?;
            if token.epoch != inner.mailbox.folders[key].epoch {
                return Err(gone(&handle, &caller, &inner.mailbox, key, &token));
            }
            token
        }
        (None, None) => first_request(&inner.mailbox, key, &query)?,
    };
    let size = caller.prefer.page_size(token.top, DEFAULT_PAGE, MAX_PAGE);
    let immutable = caller.prefer.immutable_ids;
    let (mut items, next) = match token.kind {
        Kind::Initial => {
            let (items, next) = delta::initial_page(&inner.mailbox, key, token.position, size);
            let next = next.map(|position| Token {
                position: Some(position),
                ..token.clone()
            });
            (items, next)
        }
        Kind::Delta | Kind::Changes { .. } => {
            let to = match token.kind {
                Kind::Changes { to } => to,
                _ => inner.mailbox.seq,
            };
            let entries = delta::changes(
                &inner.mailbox,
                key,
                token.from,
                to,
                token.change_type,
                immutable,
            );
            let position = token
                .position
                .map(|(seq, k)| (u64::try_from(seq).unwrap_or(0), k));
            let (items, next) = delta::changes_page(entries, position, size);
            let next = next.map(|(seq, k)| Token {
                kind: Kind::Changes { to },
                position: Some((i64::try_from(seq).unwrap_or(i64::MAX), k)),
                ..token.clone()
            });
            (items, next)
        }
    };
    replay(&mut inner, &mut items);
    let (view, mut applied) = view(&caller, &QueryOptions::default())?;
    let view = View {
        select: token.select.clone(),
        ..view
    };
    applied.push_max_page_size(&caller.prefer, MAX_PAGE);
    if caller.prefer.track_changes {
        applied.push("odata.track-changes");
    }
    let mailbox = &inner.mailbox;
    let value: Vec<Value> = items
        .iter()
        .filter_map(|item| match item {
            Item::Message(k) => mailbox.messages.get(k).map(|m| {
                let mut v = json::message(mailbox, m, &view);
                v["@odata.type"] = Value::String("#microsoft.graph.message".to_owned());
                v
            }),
            Item::Removed { id, reason } => Some(json::removed(id, reason)),
        })
        .collect();
    let link_base = caller.url(&format!(
        "/me/mailFolders/{}/messages/delta",
        mailbox.folders[key].id
    ));
    let mut body = collection(&caller.url("/$metadata#Collection(message)"), value, None);
    match next {
        Some(next) => {
            body["@odata.nextLink"] = Value::String(odata::link_with_query(
                &link_base,
                &[("$skiptoken".to_owned(), next.encode())],
            ));
        }
        None => {
            let from = match token.kind {
                Kind::Initial => token.from,
                Kind::Changes { to } => to,
                Kind::Delta => mailbox.seq,
            };
            let delta = Token {
                kind: Kind::Delta,
                from,
                position: None,
                ..token
            };
            body["@odata.deltaLink"] = Value::String(odata::link_with_query(
                &link_base,
                &[("$deltatoken".to_owned(), delta.encode())],
            ));
        }
    }
    Ok(applied.apply(json_response(StatusCode::OK, &body)))
}

/// The first request of a first round: its options, checked.
fn first_request(
    mailbox: &Mailbox,
    folder: FolderKey,
    query: &QueryOptions,
) -> Result<Token, GraphError> {
    query.refuse(UNSUPPORTED)?;
    if !newest_first(query)? {
        return Err(GraphError::bad_request(
            "The delta function supports $orderby=receivedDateTime desc only.",
        ));
    }
    let select = query.select(MESSAGE_PROPERTIES, "microsoft.graph.message")?;
    let change_type = match query.get("changeType") {
        None => None,
        Some(raw) => Some(ChangeType::parse(raw).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Invalid changeType '{raw}': created, updated or deleted."
            ))
        })?),
    };
    let top = query.first_top(MAX_PAGE)?;
    Ok(Token {
        tag: mailbox.tag.clone(),
        folder,
        epoch: mailbox.folders[folder].epoch,
        kind: Kind::Initial,
        from: mailbox.seq,
        position: None,
        select,
        change_type,
        top,
    })
}

/// 410 for a forgotten token, with a fresh initial delta URL of the folder.
fn gone(
    handle: &OutlookHandle,
    caller: &Caller,
    mailbox: &Mailbox,
    folder: FolderKey,
    token: &Token,
) -> GraphError {
    let mut pairs = Vec::new();
    if let Some(select) = &token.select {
        pairs.push(("$select".to_owned(), select.join(",")));
    }
    if let Some(change_type) = token.change_type {
        pairs.push(("changeType".to_owned(), change_type.as_str().to_owned()));
    }
    if let Some(top) = token.top {
        pairs.push(("$top".to_owned(), top.to_string()));
    }
    let location = odata::link_with_query(
        &caller.url(&format!(
            "/me/mailFolders/{}/messages/delta",
            mailbox.folders[folder].id
        )),
        &pairs,
    );
    GraphError::gone(
        handle.shared.resync_code,
        "The sync state generation is not found: the delta token expired. Start a new round from the Location URL.",
        location,
    )
}

/// Sends some messages of a page twice, as configured.
fn replay(inner: &mut Inner, items: &mut Vec<Item>) {
    let mut out = Vec::with_capacity(items.len() + 1);
    let mut forced =
        inner.forced_replays > 0 && items.iter().any(|i| matches!(i, Item::Message(_)));
    if forced {
        inner.forced_replays -= 1;
    }
    let rate = inner.replay_rate.clamp(0.0, 1.0);
    for item in items.drain(..) {
        let again = matches!(item, Item::Message(_))
            && (std::mem::take(&mut forced) || (rate > 0.0 && inner.mailbox.rng.random_bool(rate)));
        out.push(item.clone());
        if again {
            out.push(item);
        }
    }
    *items = out;
}

//! A small in-process stand-in for the Gmail API and Google's token endpoint, in the
//! wire format of the discovery document, with the knobs the handler tests need:
//! mailbox contents, a history log (or an expired cursor), token outcomes, injected
//! faults, and a log of every request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::rfc822::api_message_json;

/// A running stub.
pub struct Stub {
    /// The `baseUrl` setting pointing at the stub.
    pub base_url: String,
    /// The `tokenUrl` setting pointing at the stub.
    pub token_url: String,
    state: Arc<Mutex<StubState>>,
}

/// What a refresh token gets from the token endpoint. Unknown refresh tokens get
/// `invalid_grant`.
#[derive(Debug, Clone)]
pub enum Refresh {
    /// A new access token.
    Issue,
    /// A new access token and this new refresh token.
    Rotate(String),
}

/// An error response served instead of the next API call.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<&'static str>,
}

/// One API request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The stub's state, open to the tests.
#[derive(Debug, Default)]
pub struct StubState {
    /// Full `Message` objects, newest first (the order `messages.list` uses).
    pub messages: Vec<Value>,
    /// The mailbox's current history id.
    pub history_id: u64,
    /// The history records after the client's start id; `None`: the id expired (404).
    pub history: Option<Vec<Value>>,
    /// Records per `history.list` page.
    pub history_page_size: usize,
    /// Access tokens the API accepts.
    pub access_tokens: HashSet<String>,
    /// How the token endpoint answers each refresh token.
    pub refresh_tokens: HashMap<String, Refresh>,
    /// Responses to serve instead of the next API calls.
    pub faults: VecDeque<Fault>,
    /// Every API request (not token requests), in order.
    pub requests: Vec<Request>,
    /// How many token requests were made.
    pub token_requests: usize,
}

impl StubState {
    /// Adds a message (newest) built from an RFC 822 source.
    pub fn add_message(&mut self, id: &str, labels: &[&str]) {
        let raw = format!(
            "From: Sender <sender@example.com>\r\nTo: me@example.com\r\nSubject: Message {id}\r\n\
             Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nBody of {id}.\r\n"
        );
        let mut message = api_message_json(id, raw.as_bytes());
        message["labelIds"] = json!(labels);
        self.messages.insert(0, message);
    }

    /// Adds `count` messages `m{first}` .. newest last.
    pub fn add_messages(&mut self, first: usize, count: usize) {
        for n in first..first + count {
            self.add_message(&format!("m{n}"), &["INBOX"]);
        }
    }

    /// Removes a message for good.
    pub fn delete_message(&mut self, id: &str) {
        self.messages.retain(|m| m["id"] != id);
    }

    /// The API requests whose path ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Request> {
        self.requests
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    fn token(&mut self, body: &[u8]) -> Response {
        self.token_requests += 1;
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let refresh = form
            .get("refresh_token")
            .and_then(|t| self.refresh_tokens.get(t));
        let (grant_ok, rotated) = match refresh {
            Some(Refresh::Issue) => (true, None),
            Some(Refresh::Rotate(new)) => (true, Some(new.clone())),
            None => (false, None),
        };
        if form.get("grant_type").map(String::as_str) != Some("refresh_token") || !grant_ok {
            let body = json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        let access_token = format!("at-{}", self.token_requests);
        self.access_tokens.insert(access_token.clone());
        let mut body =
            json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"});
        if let Some(rotated) = rotated {
            body["refresh_token"] = json!(rotated);
        }
        axum::Json(body).into_response()
    }

    fn list_messages(&self, request: &Request) -> Response {
        let max: usize = request
            .param("maxResults")
            .and_then(|m| m.parse().ok())
            .unwrap_or(100);
        let offset: usize = request
            .param("pageToken")
            .and_then(|t| t.strip_prefix("offset-")?.parse().ok())
            .unwrap_or(0);
        let include_spam_trash = request.param("includeSpamTrash") == Some("true");
        let visible: Vec<&Value> = self
            .messages
            .iter()
            .filter(|m| {
                include_spam_trash
                    || !m["labelIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|l| l == "TRASH" || l == "SPAM")
            })
            .collect();
        let page: Vec<Value> = visible
            .iter()
            .skip(offset)
            .take(max)
            .map(|m| json!({"id": m["id"], "threadId": m["threadId"]}))
            .collect();
        let mut body = json!({"resultSizeEstimate": visible.len()});
        if !page.is_empty() {
            body["messages"] = json!(page);
        }
        if offset + max < visible.len() {
            body["nextPageToken"] = json!(format!("offset-{}", offset + max));
        }
        axum::Json(body).into_response()
    }

    /// `messages.get`: `format=metadata` keeps the id, labels and the top-level
    /// headers and drops the parts and bodies (Google's reference for the parameter).
    fn get_message(&self, id: &str, request: &Request) -> Response {
        match self.messages.iter().find(|m| m["id"] == id) {
            Some(message) if request.param("format") == Some("metadata") => {
                let mut metadata = message.clone();
                if let Some(payload) = metadata.get_mut("payload").and_then(Value::as_object_mut) {
                    payload.remove("parts");
                    payload.remove("body");
                }
                axum::Json(metadata).into_response()
            }
            Some(message) => axum::Json(message.clone()).into_response(),
            None => google_error(
                404,
                "NOT_FOUND",
                "notFound",
                "Requested entity was not found.",
            ),
        }
    }

    fn list_history(&self, request: &Request) -> Response {
        let Some(history) = &self.history else {
            return google_error(
                404,
                "NOT_FOUND",
                "notFound",
                "Requested entity was not found.",
            );
        };
        let size = self.history_page_size.max(1);
        let offset: usize = request
            .param("pageToken")
            .and_then(|t| t.strip_prefix("history-")?.parse().ok())
            .unwrap_or(0);
        let page: Vec<&Value> = history.iter().skip(offset).take(size).collect();
        let mut body = json!({"historyId": self.history_id.to_string()});
        if !page.is_empty() {
            body["history"] = json!(page);
        }
        if offset + size < history.len() {
            body["nextPageToken"] = json!(format!("history-{}", offset + size));
        }
        axum::Json(body).into_response()
    }
}

/// Google's error body.
pub fn google_error(code: u16, status: &str, reason: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": status,
    }});
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

impl Fault {
    /// A fault with Google's error body.
    pub fn google(
        code: u16,
        status: &str,
        reason: &str,
        retry_after: Option<&'static str>,
    ) -> Fault {
        Fault {
            status: code,
            body: json!({"error": {
                "code": code,
                "message": format!("{reason} (injected)"),
                "errors": [{"message": "injected", "domain": "usageLimits", "reason": reason}],
                "status": status,
            }})
            .to_string(),
            retry_after,
        }
    }

    /// A fault with any body.
    pub fn raw(status: u16, body: &str) -> Fault {
        Fault {
            status,
            body: body.to_owned(),
            retry_after: None,
        }
    }
}

async fn handle(
    State(state): State<Arc<Mutex<StubState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    if uri.path() == "/token" {
        return state.token(&body);
    }
    let request = Request {
        path: uri.path().to_owned(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
    };
    state.requests.push(request.clone());
    if let Some(fault) = state.faults.pop_front() {
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, fault.body).into_response();
        if let Some(wait) = fault.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(wait));
        }
        return response;
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| state.access_tokens.contains(token)) {
        return google_error(401, "UNAUTHENTICATED", "authError", "Invalid Credentials");
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["gmail", "v1", "users", "me", "profile"] => axum::Json(json!({
            "emailAddress": "me@example.com",
            "messagesTotal": state.messages.len(),
            "threadsTotal": state.messages.len(),
            "historyId": state.history_id.to_string(),
        }))
        .into_response(),
        ["gmail", "v1", "users", "me", "labels"] => axum::Json(json!({"labels": [
            {"id": "INBOX", "name": "INBOX", "type": "system"}
        ]}))
        .into_response(),
        ["gmail", "v1", "users", "me", "messages"] => state.list_messages(&request),
        ["gmail", "v1", "users", "me", "messages", id] => state.get_message(id, &request),
        ["gmail", "v1", "users", "me", "history"] => state.list_history(&request),
        _ => google_error(404, "NOT_FOUND", "notFound", "Not Found"),
    }
}

impl Stub {
    /// Starts a stub on a loopback port. It accepts access token `at-0`, and refresh
    /// token `rt` issues new access tokens.
    pub async fn start() -> Stub {
        let state = Arc::new(Mutex::new(StubState {
            history_id: 1000,
            history_page_size: 100,
            access_tokens: HashSet::from(["at-0".to_owned()]),
            refresh_tokens: HashMap::from([("rt".to_owned(), Refresh::Issue)]),
            ..StubState::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub {
            base_url: format!("http://{address}/"),
            token_url: format!("http://{address}/token"),
            state,
        }
    }

    /// The stub's state (do not hold across an await).
    pub fn state(&self) -> MutexGuard<'_, StubState> {
        self.state.lock().unwrap()
    }
}

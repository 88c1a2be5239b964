//! The HTTP side: the Web API methods, auth, rate limits, faults, and the OAuth v2
//! endpoints.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::rate::{limit_per_window, page_limits, retry_after};
use crate::workspace::{Conversation, Workspace, parse_ts};
use crate::{AuthCode, ConversationKind, Fault, SlackHandle, State as Inner};

/// The methods served.
pub(crate) const METHODS: [&str; 9] = [
    "auth.test",
    "conversations.list",
    "conversations.history",
    "conversations.replies",
    "conversations.info",
    "conversations.members",
    "users.list",
    "users.info",
    "oauth.v2.access",
];

pub(crate) fn router(handle: SlackHandle) -> Router {
    Router::new()
        .route("/api/{method}", any(api))
        .route("/oauth/v2/authorize", get(authorize))
        .with_state(handle)
}

type Params = HashMap<String, String>;

/// A computed answer.
struct Answer {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(mut fields: Map<String, Value>) -> Answer {
        let mut body = Map::new();
        body.insert("ok".into(), Value::Bool(true));
        body.append(&mut fields);
        Answer {
            status: StatusCode::OK,
            body: Value::Object(body),
            headers: Vec::new(),
        }
    }

    fn error(error: &str) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: json!({"ok": false, "error": error}),
            headers: Vec::new(),
        }
    }

    fn rate_limited(retry_after_secs: u64) -> Answer {
        Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({"ok": false, "error": "ratelimited"}),
            headers: vec![("retry-after", retry_after_secs.to_string())],
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        (self.status, headers, axum::Json(self.body)).into_response()
    }
}

/// A method's failure.
struct ApiError {
    error: &'static str,
    needed: Option<String>,
}

fn fail(error: &'static str) -> ApiError {
    ApiError {
        error,
        needed: None,
    }
}

fn missing_scope(needed: String) -> ApiError {
    ApiError {
        error: "missing_scope",
        needed: Some(needed),
    }
}

type ApiResult = Result<Map<String, Value>, ApiError>;

fn params_of(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let mut params = Params::new();
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    if body.is_empty() {
        return params;
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in o {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(k, v);
            }
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    params
}

async fn api(
    State(handle): State<SlackHandle>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = params_of(query, &headers, &body);
    let answer = handle.answer(&method, &params, &headers);
    let latency = handle.config().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    answer.into_response()
}

fn authorization(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim().to_owned())
}

fn nonempty<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

fn flag(params: &Params, name: &str) -> bool {
    matches!(nonempty(params, name), Some("true" | "1"))
}

fn page_size(params: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match nonempty(params, "limit") {
        None => Ok(default),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err(fail("invalid_limit")),
        },
    }
}

fn encode_cursor(prefix: &str, value: &str) -> String {
    STANDARD.encode(format!("{prefix}:{value}"))
}

fn decode_cursor(params: &Params, prefix: &str) -> Result<Option<String>, ApiError> {
    let Some(cursor) = nonempty(params, "cursor") else {
        return Ok(None);
    };
    let bytes = STANDARD
        .decode(cursor)
        .map_err(|_| fail("invalid_cursor"))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("invalid_cursor"))?;
    match text.split_once(':') {
        Some((p, value)) if p == prefix && !value.is_empty() => Ok(Some(value.to_owned())),
        _ => Err(fail("invalid_cursor")),
    }
}

fn metadata(next: Option<String>) -> Value {
    json!({"next_cursor": next.unwrap_or_default()})
}

/// `oldest`/`latest`/`inclusive` as an inclusive microsecond range, `None` when empty.
fn bounds(params: &Params) -> Result<Option<(u64, u64)>, ApiError> {
    let inclusive = flag(params, "inclusive");
    let oldest = nonempty(params, "oldest")
        .map(|s| parse_ts(s).ok_or(fail("invalid_ts_oldest")))
        .transpose()?;
    let latest = nonempty(params, "latest")
        .map(|s| parse_ts(s).ok_or(fail("invalid_ts_latest")))
        .transpose()?;
    let lo = match oldest {
        None => 0,
        Some(t) if inclusive => t,
        Some(t) => match t.checked_add(1) {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    let hi = match latest {
        None => u64::MAX,
        Some(t) if inclusive => t,
        Some(0) => return Ok(None),
        Some(t) => t - 1,
    };
    Ok((lo <= hi).then_some((lo, hi)))
}

fn has_scope(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

fn accepted_scopes(method: &str) -> &'static str {
    match method {
        "conversations.list" | "conversations.info" | "conversations.members" => {
            "channels:read,groups:read,mpim:read,im:read"
        }
        "conversations.history" | "conversations.replies" => {
            "channels:history,groups:history,mpim:history,im:history"
        }
        "users.list" | "users.info" => "users:read",
        _ => "",
    }
}

impl SlackHandle {
    fn answer(&self, method: &str, params: &Params, headers: &HeaderMap) -> Answer {
        if !METHODS.contains(&method) {
            return Answer::error("unknown_method");
        }
        let mut state = self.state();
        *state.counters.calls.entry(method.to_owned()).or_default() += 1;
        match state.expire_after.filter(|_| method != "oauth.v2.access") {
            Some(0) => {
                state.expire_after = None;
                for token in state.access.values_mut() {
                    token.expired = true;
                }
            }
            Some(n) => state.expire_after = Some(n - 1),
            None => {}
        }
        if let Some(fault) = state.faults.get_mut(method).and_then(|q| q.pop_front()) {
            return match fault {
                Fault::Status(status) => Answer {
                    status: StatusCode::from_u16(status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body: json!({}),
                    headers: Vec::new(),
                },
                Fault::Error(error) => Answer::error(error),
                Fault::RateLimited { retry_after_secs } => {
                    *state
                        .counters
                        .rate_limited
                        .entry(method.to_owned())
                        .or_default() += 1;
                    Answer::rate_limited(retry_after_secs)
                }
            };
        }
        if method == "oauth.v2.access" {
            if let Err(limited) = self.admit(&mut state, method) {
                return limited;
            }
            return self.oauth_access(&mut state, params, headers);
        }
        let token = authorization(headers, "Bearer")
            .or_else(|| params.get("token").cloned())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Answer::error("not_authed");
        };
        let grant = match self.authenticate(&state, &token) {
            Ok(grant) => grant,
            Err(error) => return Answer::error(error),
        };
        let scopes = state.grants[grant].scopes.clone();
        let scope_headers = vec![
            ("x-oauth-scopes", scopes.join(",")),
            (
                "x-accepted-oauth-scopes",
                accepted_scopes(method).to_owned(),
            ),
        ];
        if let Err(mut limited) = self.admit(&mut state, method) {
            limited.headers.extend(scope_headers);
            return limited;
        }
        let ws = &state.ws;
        let profile = self.config().profile;
        let result = match method {
            "auth.test" => self.auth_test(&state, &token, grant),
            "conversations.list" => conversations_list(ws, params, &scopes),
            "conversations.history" => history(ws, params, &scopes, profile),
            "conversations.replies" => replies(ws, params, &scopes, profile),
            "conversations.info" => info(ws, params, &scopes),
            "conversations.members" => members(ws, params, &scopes),
            "users.list" => users_list(ws, params, &scopes),
            "users.info" => users_info(ws, params, &scopes),
            _ => Err(fail("unknown_method")),
        };
        let mut answer = match result {
            Ok(fields) => Answer::ok(fields),
            Err(e) => {
                let mut answer = Answer::error(e.error);
                if let (Some(needed), Value::Object(o)) = (e.needed, &mut answer.body) {
                    o.insert("needed".into(), json!(needed));
                    o.insert("provided".into(), json!(scopes.join(",")));
                }
                answer
            }
        };
        answer.headers.extend(scope_headers);
        answer
    }

    /// The grant of a live token, or the error its use answers.
    fn authenticate(&self, state: &Inner, token: &str) -> Result<usize, &'static str> {
        let access = state.access.get(token).ok_or("invalid_auth")?;
        let grant = state.grants.get(access.grant).ok_or("invalid_auth")?;
        if grant.revoked {
            return Err("token_revoked");
        }
        let now = self.token_now(state);
        if access.expired || access.expires_at.is_some_and(|at| at <= now) {
            return Err("token_expired");
        }
        Ok(access.grant)
    }

    /// Counts the call in its rate window, or the 429 it gets.
    fn admit(&self, state: &mut Inner, method: &str) -> Result<(), Answer> {
        if !self.config().enforce_limits {
            return Ok(());
        }
        let Some(limit) = limit_per_window(self.config().profile, method) else {
            return Ok(());
        };
        let now = self.rate_now(state);
        match state.rates.admit(method, limit, now) {
            Ok(()) => Ok(()),
            Err(wait) => {
                *state
                    .counters
                    .rate_limited
                    .entry(method.to_owned())
                    .or_default() += 1;
                Err(Answer::rate_limited(retry_after(wait, self.time_scale())))
            }
        }
    }

    fn auth_test(&self, state: &Inner, token: &str, grant: usize) -> ApiResult {
        let ws = &state.ws;
        let user = ws.users.get(&ws.installer);
        let mut o = Map::new();
        o.insert(
            "url".into(),
            json!(format!("https://{}.slack.com/", ws.domain)),
        );
        o.insert("team".into(), json!(ws.team_name));
        o.insert("user".into(), json!(user.map(|u| u.name.clone())));
        o.insert("team_id".into(), json!(ws.team_id));
        o.insert("user_id".into(), json!(ws.installer));
        if state.grants.get(grant).is_some_and(|g| g.bot) {
            o.insert("bot_id".into(), json!(self.bot_id()));
        }
        o.insert("is_enterprise_install".into(), json!(false));
        if let Some(at) = state.access.get(token).and_then(|t| t.expires_at) {
            let left = (at - self.token_now(state)).max(0.0).floor() as u64;
            o.insert("expires_in".into(), json!(left));
        }
        Ok(o)
    }

    fn bot_id(&self) -> String {
        format!("B{}", self.shared.app_id.get(1..).unwrap_or_default())
    }

    fn bot_user_id(&self) -> String {
        format!("U{}", self.shared.app_id.get(1..).unwrap_or_default())
    }

    fn oauth_access(&self, state: &mut Inner, params: &Params, headers: &HeaderMap) -> Answer {
        let basic = authorization(headers, "Basic")
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
            });
        let (client_id, client_secret) = match basic {
            Some(pair) => pair,
            None => (
                params.get("client_id").cloned().unwrap_or_default(),
                params.get("client_secret").cloned().unwrap_or_default(),
            ),
        };
        if client_id != self.shared.client_id {
            return Answer::error("invalid_client_id");
        }
        if client_secret != self.shared.client_secret {
            return Answer::error("bad_client_secret");
        }
        match nonempty(params, "grant_type") {
            None | Some("authorization_code") => self.code_grant(state, params),
            Some("refresh_token") if self.config().rotation => self.refresh_grant(state, params),
            Some(_) => Answer::error("invalid_grant_type"),
        }
    }

    fn team_json(state: &Inner) -> Value {
        json!({"id": state.ws.team_id, "name": state.ws.team_name})
    }

    fn lifetime_secs(&self) -> u64 {
        self.config().access_token_lifetime.as_secs()
    }

    fn code_grant(&self, state: &mut Inner, params: &Params) -> Answer {
        let Some(code) = nonempty(params, "code") else {
            return Answer::error("invalid_code");
        };
        let Some(auth) = state.codes.get(code).filter(|c| !c.used).cloned() else {
            return Answer::error("invalid_code");
        };
        if let Some(expected) = &auth.redirect_uri
            && nonempty(params, "redirect_uri") != Some(expected.as_str())
        {
            return Answer::error("bad_redirect_uri");
        }
        if let Some((challenge, method)) = &auth.challenge {
            let Some(verifier) = nonempty(params, "code_verifier") else {
                return Answer::error("invalid_code_verifier");
            };
            let computed = if method == "plain" {
                verifier.to_owned()
            } else {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
            };
            if &computed != challenge {
                return Answer::error("invalid_code_verifier");
            }
        }
        if let Some(c) = state.codes.get_mut(code) {
            c.used = true;
        }
        let mut o = Map::new();
        o.insert("app_id".into(), json!(self.shared.app_id));
        let mut user = Map::new();
        user.insert("id".into(), json!(state.ws.installer));
        if !auth.user_scopes.is_empty() {
            let (access, refresh) = self.issue(state, auth.user_scopes.clone(), false);
            user.insert("scope".into(), json!(auth.user_scopes.join(",")));
            user.insert("access_token".into(), json!(access));
            user.insert("token_type".into(), json!("user"));
            if let Some(refresh) = refresh {
                user.insert("refresh_token".into(), json!(refresh));
                user.insert("expires_in".into(), json!(self.lifetime_secs()));
            }
        }
        o.insert("authed_user".into(), Value::Object(user));
        if !auth.bot_scopes.is_empty() {
            let (access, refresh) = self.issue(state, auth.bot_scopes.clone(), true);
            o.insert("scope".into(), json!(auth.bot_scopes.join(",")));
            o.insert("token_type".into(), json!("bot"));
            o.insert("access_token".into(), json!(access));
            o.insert("bot_user_id".into(), json!(self.bot_user_id()));
            if let Some(refresh) = refresh {
                o.insert("refresh_token".into(), json!(refresh));
                o.insert("expires_in".into(), json!(self.lifetime_secs()));
            }
        }
        o.insert("team".into(), SlackHandle::team_json(state));
        o.insert("enterprise".into(), Value::Null);
        o.insert("is_enterprise_install".into(), json!(false));
        Answer::ok(o)
    }

    fn refresh_grant(&self, state: &mut Inner, params: &Params) -> Answer {
        let Some(old) = nonempty(params, "refresh_token") else {
            return Answer::error("invalid_refresh_token");
        };
        let Some((grant, true)) = state.refresh.get(old).copied() else {
            return Answer::error("invalid_refresh_token");
        };
        let Some(g) = state.grants.get(grant).filter(|g| !g.revoked).cloned() else {
            return Answer::error("invalid_refresh_token");
        };
        if let Some(entry) = state.refresh.get_mut(old) {
            entry.1 = false;
        }
        let access = self.new_access_token(state, grant);
        let refresh = format!(
            "xoxe-1-{}",
            crate::workspace::alnum(&mut state.token_rng, 40)
        );
        state.refresh.insert(refresh.clone(), (grant, true));
        state.counters.refreshes += 1;
        let mut o = Map::new();
        o.insert("app_id".into(), json!(self.shared.app_id));
        o.insert("access_token".into(), json!(access));
        o.insert(
            "token_type".into(),
            json!(if g.bot { "bot" } else { "user" }),
        );
        o.insert("scope".into(), json!(g.scopes.join(",")));
        o.insert("expires_in".into(), json!(self.lifetime_secs()));
        o.insert("refresh_token".into(), json!(refresh));
        if g.bot {
            o.insert("bot_user_id".into(), json!(self.bot_user_id()));
        }
        o.insert("team".into(), SlackHandle::team_json(state));
        o.insert("enterprise".into(), Value::Null);
        o.insert("is_enterprise_install".into(), json!(false));
        Answer::ok(o)
    }
}

/// The conversation `params.channel` names, when `scopes` may read it (its messages
/// when `history`).
fn readable<'a>(
    ws: &'a Workspace,
    params: &Params,
    scopes: &[String],
    history: bool,
) -> Result<&'a Conversation, ApiError> {
    let c = nonempty(params, "channel")
        .and_then(|id| ws.conversations.get(id))
        .filter(|c| !c.removed)
        .ok_or(fail("channel_not_found"))?;
    let scope = if history {
        c.kind.history_scope()
    } else {
        c.kind.read_scope()
    };
    if !has_scope(scopes, scope) {
        return Err(missing_scope(scope.to_owned()));
    }
    let member = c.members.contains(&ws.installer);
    if c.kind != ConversationKind::Public && !member {
        return Err(fail("channel_not_found"));
    }
    if history && !member {
        return Err(fail("not_in_channel"));
    }
    Ok(c)
}

fn conversations_list(ws: &Workspace, params: &Params, scopes: &[String]) -> ApiResult {
    let types = nonempty(params, "types").unwrap_or("public_channel");
    let mut kinds = Vec::new();
    for name in types.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = ConversationKind::from_slack_type(name).ok_or(fail("invalid_types"))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        kinds.push(ConversationKind::Public);
    }
    let missing: Vec<&str> = kinds
        .iter()
        .map(|k| k.read_scope())
        .filter(|s| !has_scope(scopes, s))
        .collect();
    if !missing.is_empty() {
        return Err(missing_scope(missing.join(",")));
    }
    let exclude_archived = flag(params, "exclude_archived");
    let limit = page_size(params, 100, 1000)?;
    let start = decode_cursor(params, "team")?.unwrap_or_default();
    let page: Vec<&Conversation> = ws
        .conversations
        .range(start..)
        .map(|(_, c)| c)
        .filter(|c| kinds.contains(&c.kind) && c.visible_to(&ws.installer))
        .filter(|c| !(exclude_archived && c.archived))
        .take(limit + 1)
        .collect();
    let next = page.get(limit).map(|c| encode_cursor("team", &c.id));
    let channels: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|c| ws.conversation_json(c, &ws.installer))
        .collect();
    let mut o = Map::new();
    o.insert("channels".into(), Value::Array(channels));
    o.insert("response_metadata".into(), metadata(next));
    Ok(o)
}

fn ts_cursor(params: &Params) -> Result<Option<u64>, ApiError> {
    decode_cursor(params, "next_ts")?
        .map(|v| v.parse::<u64>().map_err(|_| fail("invalid_cursor")))
        .transpose()
}

fn history(
    ws: &Workspace,
    params: &Params,
    scopes: &[String],
    profile: crate::RateProfile,
) -> ApiResult {
    let c = readable(ws, params, scopes, true)?;
    let (default, max) = page_limits(profile, "conversations.history");
    let limit = page_size(params, default, max)?;
    let range = bounds(params)?;
    let cursor = ts_cursor(params)?;
    let mut page: Vec<u64> = Vec::new();
    if let Some((lo, hi)) = range {
        let hi = cursor.map_or(hi, |c| c.min(hi));
        if lo <= hi {
            page = c
                .top
                .range(lo..=hi)
                .rev()
                .take(limit + 1)
                .map(|(ts, _)| *ts)
                .collect();
        }
    }
    let next = page
        .get(limit)
        .map(|ts| encode_cursor("next_ts", &ts.to_string()));
    let messages: Vec<Value> = page
        .iter()
        .take(limit)
        .filter_map(|ts| c.top.get(ts))
        .map(|m| ws.top_json(c, m))
        .collect();
    let mut o = Map::new();
    o.insert("messages".into(), Value::Array(messages));
    o.insert("has_more".into(), json!(next.is_some()));
    o.insert("pin_count".into(), json!(0));
    o.insert("channel_actions_ts".into(), Value::Null);
    o.insert("channel_actions_count".into(), json!(0));
    if let Some(latest) = nonempty(params, "latest") {
        o.insert("latest".into(), json!(latest));
    }
    o.insert("response_metadata".into(), metadata(next));
    Ok(o)
}

fn replies(
    ws: &Workspace,
    params: &Params,
    scopes: &[String],
    profile: crate::RateProfile,
) -> ApiResult {
    let c = readable(ws, params, scopes, true)?;
    let ts = nonempty(params, "ts").ok_or(fail("invalid_arguments"))?;
    let ts = parse_ts(ts).ok_or(fail("thread_not_found"))?;
    let parent = if c.top.contains_key(&ts) {
        ts
    } else {
        c.reply_parent
            .get(&ts)
            .copied()
            .ok_or(fail("thread_not_found"))?
    };
    let (default, max) = page_limits(profile, "conversations.replies");
    let limit = page_size(params, default, max)?;
    let range = bounds(params)?;
    let cursor = ts_cursor(params)?;
    let mut messages = Vec::new();
    if cursor.is_none()
        && let Some(p) = c.top.get(&parent)
    {
        messages.push(ws.top_json(c, p));
    }
    let mut next = None;
    if let (Some((lo, hi)), Some(thread)) = (range, c.replies.get(&parent)) {
        let lo = cursor.map_or(lo, |cur| cur.max(lo));
        if lo <= hi {
            let room = limit.saturating_sub(messages.len());
            let page: Vec<_> = thread.range(lo..=hi).take(room + 1).collect();
            next = page
                .get(room)
                .map(|(ts, _)| encode_cursor("next_ts", &ts.to_string()));
            for (_, m) in page.into_iter().take(room) {
                messages.push(ws.reply_json(c, parent, m));
            }
        }
    }
    let mut o = Map::new();
    o.insert("messages".into(), Value::Array(messages));
    o.insert("has_more".into(), json!(next.is_some()));
    o.insert("response_metadata".into(), metadata(next));
    Ok(o)
}

fn info(ws: &Workspace, params: &Params, scopes: &[String]) -> ApiResult {
    let c = readable(ws, params, scopes, false)?;
    let mut o = Map::new();
    o.insert("channel".into(), ws.conversation_json(c, &ws.installer));
    Ok(o)
}

fn members(ws: &Workspace, params: &Params, scopes: &[String]) -> ApiResult {
    let c = readable(ws, params, scopes, false)?;
    let limit = page_size(params, 100, 1000)?;
    let start = decode_cursor(params, "user")?.unwrap_or_default();
    let page: Vec<&String> = c.members.range(start..).take(limit + 1).collect();
    let next = page.get(limit).map(|id| encode_cursor("user", id));
    let mut o = Map::new();
    o.insert(
        "members".into(),
        json!(page.into_iter().take(limit).collect::<Vec<_>>()),
    );
    o.insert("response_metadata".into(), metadata(next));
    Ok(o)
}

fn users_list(ws: &Workspace, params: &Params, scopes: &[String]) -> ApiResult {
    if !has_scope(scopes, "users:read") {
        return Err(missing_scope("users:read".into()));
    }
    let limit = page_size(params, usize::MAX, 1000)?;
    let start = decode_cursor(params, "user")?.unwrap_or_default();
    let page: Vec<_> = ws
        .users
        .range(start..)
        .take(limit.saturating_add(1))
        .map(|(_, u)| u)
        .collect();
    let next = page.get(limit).map(|u| encode_cursor("user", &u.id));
    let members: Vec<Value> = page.iter().take(limit).map(|u| ws.user_json(u)).collect();
    let mut o = Map::new();
    o.insert("members".into(), Value::Array(members));
    o.insert("cache_ts".into(), json!(crate::now_micros() / 1_000_000));
    o.insert("response_metadata".into(), metadata(next));
    Ok(o)
}

fn users_info(ws: &Workspace, params: &Params, scopes: &[String]) -> ApiResult {
    if !has_scope(scopes, "users:read") {
        return Err(missing_scope("users:read".into()));
    }
    let user = nonempty(params, "user")
        .and_then(|id| ws.users.get(id))
        .ok_or(fail("user_not_found"))?;
    let mut o = Map::new();
    o.insert("user".into(), ws.user_json(user));
    Ok(o)
}

/// `GET /oauth/v2/authorize`: approves at once and redirects with a code.
async fn authorize(State(handle): State<SlackHandle>, RawQuery(query): RawQuery) -> Response {
    let params = params_of(query, &HeaderMap::new(), &Bytes::new());
    match handle.approve(&params) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error).into_response(),
    }
}

fn scope_list(params: &Params, name: &str) -> Vec<String> {
    nonempty(params, name)
        .map(|s| {
            s.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl SlackHandle {
    fn approve(&self, params: &Params) -> Result<String, &'static str> {
        if nonempty(params, "client_id") != Some(self.shared.client_id.as_str()) {
            return Err("invalid_client_id");
        }
        let user_scopes = scope_list(params, "user_scope");
        let bot_scopes = scope_list(params, "scope");
        if user_scopes.is_empty() && bot_scopes.is_empty() {
            return Err("invalid_scope");
        }
        let redirect = nonempty(params, "redirect_uri").ok_or("bad_redirect_uri")?;
        let mut location = url::Url::parse(redirect).map_err(|_| "bad_redirect_uri")?;
        let challenge = nonempty(params, "code_challenge").map(|c| {
            let method = nonempty(params, "code_challenge_method").unwrap_or("plain");
            (c.to_owned(), method.to_owned())
        });
        if challenge
            .as_ref()
            .is_some_and(|(_, m)| m != "S256" && m != "plain")
        {
            return Err("invalid_code_challenge_method");
        }
        let mut state = self.state();
        let code = format!(
            "{}.{}.{}",
            rand::Rng::random_range(&mut state.token_rng, 1_000_000_000u64..9_999_999_999),
            rand::Rng::random_range(&mut state.token_rng, 1_000_000_000u64..9_999_999_999),
            crate::workspace::hex(&mut state.token_rng, 64)
        );
        state.codes.insert(
            code.clone(),
            AuthCode {
                user_scopes,
                bot_scopes,
                redirect_uri: Some(redirect.to_owned()),
                challenge,
                used: false,
            },
        );
        {
            let mut pairs = location.query_pairs_mut();
            pairs.append_pair("code", &code);
            if let Some(s) = params.get("state") {
                pairs.append_pair("state", s);
            }
        }
        Ok(location.to_string())
    }
}

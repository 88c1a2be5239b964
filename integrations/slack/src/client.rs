//! A thin client for the Slack Web API methods this integration calls.
//!
//! It follows Slack's method reference and the vendored API description
//! (`integrations/slack/spec/`): every method is `<baseUrl><method>` (GET with a
//! query), the token goes in `Authorization: Bearer`, and every answer is a JSON object
//! whose `ok` says whether the call worked. Slack answers nearly every failure with
//! HTTP 200 and `{"ok": false, "error": "<code>"}`; only 429 (rate limited, with
//! `Retry-After`) is a meaningful status. Cursors are `response_metadata.next_cursor`,
//! empty or absent on the last page; `ts` values stay strings (they are identifiers,
//! and a float would lose their last digits).
//!
//! Failures are classified here ([`SlackError`]):
//! - `invalid_auth`, `not_authed`, `token_revoked`, `token_expired`,
//!   `account_inactive`: auth (an expired or refused token is first retried once with a
//!   refreshed one by the kit, see [`is_token_refused`]);
//! - `ratelimited` and 429: rate limited, with the `Retry-After` wait;
//! - `missing_scope`, `not_in_channel`, `channel_not_found`, `thread_not_found`:
//!   answers about one conversation ([`SlackError::Conversation`]), which the caller
//!   turns into a skip rather than a failed sync;
//! - `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout` and 5xx:
//!   transient; any other code: permanent.

use serde::Deserialize;
use serde_json::{Map, Value};
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{HttpResponse, MAX_JSON_DEPTH, json_depth};
use tributary_sdk::kit::bearer::BearerClient;
use url::Url;

use crate::settings::RateProfile;

/// The largest `limit` `conversations.history` and `conversations.replies` accept.
pub const MAX_HISTORY_LIMIT: u32 = 999;

/// The largest `limit` of `conversations.list` and `users.list`.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Why a call did not return what was asked.
#[derive(Debug)]
pub enum SlackError {
    /// Slack's answer about one conversation or thread: `missing_scope` (with the
    /// scope needed), `not_in_channel`, `channel_not_found`, `thread_not_found`.
    Conversation {
        /// The error code.
        code: String,
        /// The scope Slack says is needed (`missing_scope`).
        needed: Option<String>,
    },
    /// Anything else, classified for the engine.
    Failed(IntegrationError),
}

impl From<IntegrationError> for SlackError {
    fn from(e: IntegrationError) -> Self {
        SlackError::Failed(e)
    }
}

impl SlackError {
    /// The error for the engine: a conversation answer where none was expected is
    /// permanent.
    pub fn into_integration(self, method: &str) -> IntegrationError {
        match self {
            SlackError::Failed(e) => e,
            SlackError::Conversation { code, needed } => {
                let needed = needed.map(|n| format!(" (needs {n})")).unwrap_or_default();
                IntegrationError::permanent(format!("slack {method}: {code}{needed}"))
            }
        }
    }
}

/// Whether an answer says the token was refused (expired, revoked or unknown): the
/// kit then retries once with a refreshed token, when there is a refresh token.
pub fn is_token_refused(response: &HttpResponse) -> bool {
    if response.status.as_u16() == 401 {
        return true;
    }
    if !response.status.is_success() {
        return false;
    }
    matches!(
        envelope_error(&response.body).as_deref(),
        Some("token_expired" | "invalid_auth")
    )
}

/// The `error` of an `ok: false` body, if it is one.
fn envelope_error(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    (!envelope.ok).then(|| envelope.error.unwrap_or_else(|| "unknown_error".into()))
}

/// One page of a cursor-paged method.
#[derive(Debug, Default)]
pub struct Page<T> {
    /// The page's entries, in Slack's order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A conversation as `conversations.list` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    /// `C…`, `G…` or `D…`.
    pub id: String,
    /// The channel's name (absent for direct messages).
    #[serde(default)]
    pub name: Option<String>,
    /// A public or private channel.
    #[serde(default)]
    pub is_channel: bool,
    /// A private channel (old style) or a multi-person DM.
    #[serde(default)]
    pub is_group: bool,
    /// A direct message.
    #[serde(default)]
    pub is_im: bool,
    /// A multi-person direct message.
    #[serde(default)]
    pub is_mpim: bool,
    /// Private (a private channel, or any DM).
    #[serde(default)]
    pub is_private: bool,
    /// Archived: readable, but nothing new arrives.
    #[serde(default)]
    pub is_archived: bool,
    /// Whether the token's user is a member.
    #[serde(default)]
    pub is_member: bool,
    /// A DM's other user.
    #[serde(default)]
    pub user: Option<String>,
}

impl Conversation {
    /// The conversation type as Slack's `types` parameter names it.
    pub fn kind(&self) -> &'static str {
        if self.is_im {
            "im"
        } else if self.is_mpim {
            "mpim"
        } else if self.is_private || self.is_group {
            "private_channel"
        } else {
            "public_channel"
        }
    }
}

/// A workspace member, as `users.list` describes one.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// `U…` or `W…`.
    pub id: String,
    /// The handle.
    #[serde(default)]
    pub name: Option<String>,
    /// The full name.
    #[serde(default)]
    pub real_name: Option<String>,
    /// The profile, with the display name.
    #[serde(default)]
    pub profile: Option<Profile>,
}

/// The part of a user's profile used for names.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    /// The name shown in Slack (may be empty).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The full name.
    #[serde(default)]
    pub real_name: Option<String>,
}

impl User {
    /// The name to show: the display name, else the real name, else the handle, else
    /// the id.
    pub fn shown_name(&self) -> String {
        let profile = self.profile.as_ref();
        [
            profile.and_then(|p| p.display_name.as_deref()),
            profile.and_then(|p| p.real_name.as_deref()),
            self.real_name.as_deref(),
            self.name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find(|name| !name.trim().is_empty())
        .unwrap_or(&self.id)
        .to_owned()
    }
}

/// Who the token belongs to (`auth.test`), and which scopes it was granted.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The workspace's URL (`https://acme.slack.com/`).
    pub url: Option<String>,
    /// The workspace id.
    pub team_id: Option<String>,
    /// The token's user.
    pub user_id: Option<String>,
    /// The scopes granted (the `x-oauth-scopes` header), when Slack says.
    pub scopes: Option<Vec<String>>,
}

/// A history page's window.
#[derive(Debug, Clone, Default)]
pub struct Window<'a> {
    /// Only messages after this ts.
    pub oldest: Option<&'a str>,
    /// Only messages before this ts.
    pub latest: Option<&'a str>,
    /// The page to read.
    pub cursor: Option<&'a str>,
}

/// A Slack Web API client for one job.
#[derive(Debug)]
pub struct SlackClient {
    api: BearerClient,
    base: Url,
    profile: RateProfile,
}

impl SlackClient {
    /// A client for the API at `base_url` (`https://slack.com/api/`), authorized by
    /// `api`; its requests are rate-classed for `profile`.
    pub fn new(
        api: BearerClient,
        base_url: &str,
        profile: RateProfile,
    ) -> Result<SlackClient, IntegrationError> {
        let mut base = Url::parse(base_url).map_err(|e| {
            IntegrationError::permanent(format!("slack baseUrl `{base_url}` is not a URL: {e}"))
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(SlackClient {
            api: api.with_rejection_check(is_token_refused),
            base,
            profile,
        })
    }

    /// `auth.test`: who the token is, and its scopes.
    pub async fn auth_test(&mut self) -> Result<Identity, IntegrationError> {
        let (body, response) = self
            .call("auth.test", &[])
            .await
            .map_err(|e| e.into_integration("auth.test"))?;
        let scopes = response
            .headers
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(Identity {
            url: text("url"),
            team_id: text("team_id"),
            user_id: text("user_id"),
            scopes,
        })
    }

    /// `conversations.list`: one page of the conversations of `types` (a comma list)
    /// that are not archived.
    pub async fn conversations(
        &mut self,
        types: &str,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, IntegrationError> {
        let limit = MAX_LIST_LIMIT.to_string();
        let mut query = vec![
            ("types", types),
            ("exclude_archived", "true"),
            ("limit", limit.as_str()),
        ];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let (body, _) = self
            .call("conversations.list", &query)
            .await
            .map_err(|e| e.into_integration("conversations.list"))?;
        page_of(&body, "channels", "conversations.list")
    }

    /// `users.list`: one page of the workspace's members.
    pub async fn users(&mut self, cursor: Option<&str>) -> Result<Page<User>, IntegrationError> {
        let limit = MAX_LIST_LIMIT.to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let (body, _) = self
            .call("users.list", &query)
            .await
            .map_err(|e| e.into_integration("users.list"))?;
        page_of(&body, "members", "users.list")
    }

    /// `conversations.history`: one page of a conversation's top-level messages,
    /// newest first, as Slack sent them.
    pub async fn history(
        &mut self,
        channel: &str,
        window: &Window<'_>,
        limit: u32,
    ) -> Result<Page<Map<String, Value>>, SlackError> {
        self.timeline("conversations.history", channel, None, window, limit)
            .await
    }

    /// `conversations.replies`: one page of a thread, the parent first and then its
    /// replies, oldest first.
    pub async fn replies(
        &mut self,
        channel: &str,
        thread_ts: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Map<String, Value>>, SlackError> {
        let window = Window {
            cursor,
            ..Window::default()
        };
        self.timeline(
            "conversations.replies",
            channel,
            Some(thread_ts),
            &window,
            limit,
        )
        .await
    }

    async fn timeline(
        &mut self,
        method: &str,
        channel: &str,
        thread_ts: Option<&str>,
        window: &Window<'_>,
        limit: u32,
    ) -> Result<Page<Map<String, Value>>, SlackError> {
        let limit = limit.clamp(1, self.profile.max_history_limit()).to_string();
        let mut query = vec![("channel", channel), ("limit", limit.as_str())];
        if let Some(ts) = thread_ts {
            query.push(("ts", ts));
        }
        if let Some(oldest) = window.oldest {
            query.push(("oldest", oldest));
        }
        if let Some(latest) = window.latest {
            query.push(("latest", latest));
        }
        if let Some(cursor) = window.cursor {
            query.push(("cursor", cursor));
        }
        let (body, _) = self.call(method, &query).await?;
        Ok(page_of(&body, "messages", method)?)
    }

    /// Calls `method` with `query`; the body of an `ok: true` answer, or the error.
    async fn call(
        &mut self,
        method: &str,
        query: &[(&str, &str)],
    ) -> Result<(Map<String, Value>, HttpResponse), SlackError> {
        let mut url = self.base.join(method).map_err(|e| {
            IntegrationError::permanent(format!("slack method url for {method}: {e}"))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let class = self.profile.class(method);
        let response = self.api.send(&class, |http| http.get(url.clone())).await?;
        let body = answer(method, &response)?;
        Ok((body, response))
    }
}

/// The class a call of `method` is rate limited as: the method, or under the 2025
/// limits the method's limited quota.
impl RateProfile {
    /// The request class of `method` for the engine's rate budgets (see the manifest's
    /// `limits.budgets`).
    pub fn class(self, method: &str) -> String {
        match self {
            RateProfile::Limited2025
                if matches!(method, "conversations.history" | "conversations.replies") =>
            {
                format!("{method} (limited-2025)")
            }
            _ => method.to_owned(),
        }
    }
}

/// Reads an answer: the body of `ok: true`, or the classified failure.
fn answer(method: &str, response: &HttpResponse) -> Result<Map<String, Value>, SlackError> {
    let status = response.status.as_u16();
    if status == 429 {
        return Err(IntegrationError::rate_limited(
            format!("slack {method}: rate limited (429)"),
            response.retry_after(),
        )
        .into());
    }
    if !response.status.is_success() {
        return Err(response
            .error_for_status()
            .context(format!("slack {method}"))
            .into());
    }
    if json_depth(&response.body) > MAX_JSON_DEPTH {
        return Err(IntegrationError::permanent(format!(
            "slack {method}: the answer nests deeper than {MAX_JSON_DEPTH} levels"
        ))
        .into());
    }
    let body: Map<String, Value> = serde_json::from_slice(&response.body).map_err(|e| {
        IntegrationError::transient(format!("slack {method}: the answer is not JSON: {e}"))
    })?;
    if body.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(body);
    }
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_owned();
    let message = format!("slack {method}: {code}");
    Err(match code.as_str() {
        "missing_scope" | "not_in_channel" | "channel_not_found" | "thread_not_found" => {
            SlackError::Conversation {
                needed: body
                    .get("needed")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                code,
            }
        }
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive"
        | "no_permission" | "org_login_required" => IntegrationError::auth(message).into(),
        "ratelimited" => IntegrationError::rate_limited(message, response.retry_after()).into(),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            IntegrationError::transient(message).into()
        }
        _ => IntegrationError::permanent(message).into(),
    })
}

/// The entries under `key` and the next cursor; entries that do not decode are
/// skipped with a warning (one bad entry never stops a page).
fn page_of<T: serde::de::DeserializeOwned>(
    body: &Map<String, Value>,
    key: &str,
    method: &str,
) -> Result<Page<T>, IntegrationError> {
    let entries = match body.get(key) {
        Some(Value::Array(entries)) => entries.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            return Err(IntegrationError::permanent(format!(
                "slack {method}: `{key}` is not a list"
            )));
        }
    };
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        match serde_json::from_value::<T>(entry.clone()) {
            Ok(item) => items.push(item),
            Err(e) => {
                tracing::warn!(method, error = %e, "skipped an entry Slack sent that does not decode")
            }
        }
    }
    let next_cursor = body
        .get("response_metadata")
        .and_then(|m| m.get("next_cursor"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_sdk::ErrorClass;
    use tributary_sdk::http::{HeaderMap, StatusCode};

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn class_of(body: &str) -> ErrorClass {
        match answer("m", &response(200, body)) {
            Err(SlackError::Failed(e)) => e.class(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_are_classified_by_their_code() {
        for code in [
            "invalid_auth",
            "token_revoked",
            "token_expired",
            "account_inactive",
        ] {
            assert_eq!(
                class_of(&format!(r#"{{"ok":false,"error":"{code}"}}"#)),
                ErrorClass::Auth
            );
        }
        assert_eq!(
            class_of(r#"{"ok":false,"error":"ratelimited"}"#),
            ErrorClass::RateLimited
        );
        assert_eq!(
            class_of(r#"{"ok":false,"error":"internal_error"}"#),
            ErrorClass::Transient
        );
        assert_eq!(
            class_of(r#"{"ok":false,"error":"invalid_arguments"}"#),
            ErrorClass::Permanent
        );
        assert_eq!(class_of(r#"{"ok":false}"#), ErrorClass::Permanent);
        match answer(
            "m",
            &response(
                200,
                r#"{"ok":false,"error":"missing_scope","needed":"groups:history"}"#,
            ),
        ) {
            Err(SlackError::Conversation { code, needed }) => {
                assert_eq!(code, "missing_scope");
                assert_eq!(needed.as_deref(), Some("groups:history"));
            }
            other => panic!("{other:?}"),
        }
        let limited = answer("m", &response(429, "")).unwrap_err();
        assert!(matches!(limited, SlackError::Failed(e) if e.class() == ErrorClass::RateLimited));
        let down = answer("m", &response(503, "")).unwrap_err();
        assert!(matches!(down, SlackError::Failed(e) if e.class() == ErrorClass::Transient));
    }

    #[test]
    fn refused_tokens_are_recognised_in_the_envelope() {
        assert!(is_token_refused(&response(
            200,
            r#"{"ok":false,"error":"token_expired"}"#
        )));
        assert!(is_token_refused(&response(401, "")));
        assert!(!is_token_refused(&response(
            200,
            r#"{"ok":false,"error":"token_revoked"}"#
        )));
        assert!(!is_token_refused(&response(200, r#"{"ok":true}"#)));
    }

    #[test]
    fn pages_end_on_an_empty_cursor_and_skip_bad_entries() {
        let body: Map<String, Value> = serde_json::from_str(
            r#"{"ok":true,"channels":[{"id":"C1","name":"general","is_channel":true},{"name":7}],
                "response_metadata":{"next_cursor":""}}"#,
        )
        .unwrap();
        let page: Page<Conversation> = page_of(&body, "channels", "conversations.list").unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].kind(), "public_channel");
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn limited_profile_classes_only_history_and_replies() {
        assert_eq!(
            RateProfile::Limited2025.class("conversations.history"),
            "conversations.history (limited-2025)"
        );
        assert_eq!(RateProfile::Limited2025.class("users.list"), "users.list");
        assert_eq!(
            RateProfile::Internal.class("conversations.history"),
            "conversations.history"
        );
    }
}

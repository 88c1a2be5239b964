//! Graph's error envelope and what each failure means for a sync.
//!
//! A failed Graph request carries `{"error": {"code", "message", "innerError": {...}}}`;
//! the inner error may hold a more specific `code` and nest further (OneDrive's
//! detailed codes), and error codes compare without regard to case. The decision is
//! made on the status and the codes, never on the message, which is for people:
//!
//! | response | outcome |
//! |---|---|
//! | 401 (`InvalidAuthenticationToken`...) | auth, after the kit's one refresh and retry |
//! | any status whose codes hold `activityLimitReached` or `ApplicationThrottled`, any 429, a 503 with `Retry-After` | rate limited, after the `Retry-After` wait when given |
//! | a 4xx whose codes hold `resyncRequired`, `syncStateNotFound`, `resyncChangesApplyDifferences` or `resyncChangesUploadDifferences` (or OneDrive's `resyncApplyDifferences` / `resyncUploadDifferences`), or a 410 with `Location` | [`GraphError::ResyncRequired`]: the delta link expired |
//! | 404 `itemNotFound` / `ErrorItemNotFound` | [`GraphError::NotFound`]: the item is gone |
//! | 403 (`accessDenied`, `ErrorAccessDenied`, anything else) | permanent: this resource is not readable, the account still works |
//! | 408, other 5xx | transient |
//! | other 4xx, a 404 with another code or none | permanent |
//!
//! A 404 counts as "the item is gone" only with one of the two item codes: a 404
//! `MailboxNotEnabledForRESTAPI` or a proxy's HTML 404 says nothing about the item, and
//! a caller that soft-deletes on [`GraphError::NotFound`] must not delete on them.
//!
//! Bodies are read with care: at most [`MAX_ERROR_BODY_BYTES`] are parsed, only when
//! nested no deeper than the SDK's [`MAX_JSON_DEPTH`], inner errors are followed
//! [`MAX_INNER_ERRORS`] levels deep, and codes and messages are cut short. A body that
//! is not Graph's (HTML from a proxy, nothing at all) is classified by its status.

use serde_json::Value;
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{HttpResponse, MAX_JSON_DEPTH, classify_status, json_depth};

/// The largest error body that is parsed; a longer one is classified by its status.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How many nested `innerError` objects are read for codes.
pub const MAX_INNER_ERRORS: usize = 8;

/// Codes longer than this are dropped (no code Graph documents comes close).
const MAX_CODE_CHARS: usize = 128;

/// Messages and ids are cut to this many characters in errors.
const MAX_TEXT_CHARS: usize = 300;

/// The codes that mean "slow down", whatever the status.
pub const THROTTLE_CODES: [&str; 2] = ["activityLimitReached", "ApplicationThrottled"];

/// The codes of a 404 that mean the item itself no longer exists.
pub const NOT_FOUND_CODES: [&str; 2] = ["itemNotFound", "ErrorItemNotFound"];

/// The codes that mean the delta token is no longer valid, and what each asks for.
const RESYNC_CODES: [(&str, ResyncKind); 6] = [
    ("resyncRequired", ResyncKind::Reset),
    ("syncStateNotFound", ResyncKind::Reset),
    (
        "resyncChangesApplyDifferences",
        ResyncKind::ApplyServerDifferences,
    ),
    ("resyncApplyDifferences", ResyncKind::ApplyServerDifferences),
    (
        "resyncChangesUploadDifferences",
        ResyncKind::UploadLocalDifferences,
    ),
    (
        "resyncUploadDifferences",
        ResyncKind::UploadLocalDifferences,
    ),
];

/// What a Graph error body says, bounded (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error.code`.
    pub code: Option<String>,
    /// The codes of the nested inner errors, outermost first.
    pub inner_codes: Vec<String>,
    /// `error.message`, cut short: for logs and error messages, never for decisions.
    pub message: Option<String>,
    /// `innerError.request-id`, the id Microsoft support asks for.
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// Reads Graph's envelope from `body`; `None` when it is not one (or too large,
    /// too deep, or not JSON).
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        if body.len() > MAX_ERROR_BODY_BYTES || json_depth(body) > MAX_JSON_DEPTH {
            return None;
        }
        let value: Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?.as_object()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| cut(s, MAX_TEXT_CHARS));
        let code = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_CHARS)
                .map(str::to_owned)
        };
        let mut parsed = ErrorBody {
            code: code(error.get("code")),
            inner_codes: Vec::new(),
            message: text(error.get("message")),
            request_id: None,
        };
        let mut inner = inner_error(error);
        for _ in 0..MAX_INNER_ERRORS {
            let Some(object) = inner else { break };
            if parsed.request_id.is_none() {
                parsed.request_id = text(object.get("request-id"));
            }
            parsed.inner_codes.extend(code(object.get("code")));
            inner = inner_error(object);
        }
        Some(parsed)
    }

    /// Every code, outermost first.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.code
            .iter()
            .chain(self.inner_codes.iter())
            .map(String::as_str)
    }

    /// Whether one of the codes is one of `wanted` (compared without regard to case).
    pub fn has_code(&self, wanted: &[&str]) -> bool {
        self.codes()
            .any(|code| wanted.iter().any(|w| w.eq_ignore_ascii_case(code)))
    }

    /// What a resync code among the codes asks for, if there is one.
    pub fn resync_kind(&self) -> Option<ResyncKind> {
        self.codes().find_map(|code| {
            RESYNC_CODES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(code))
                .map(|(_, kind)| *kind)
        })
    }

    /// The most specific code: the innermost one, else `error.code`.
    pub fn detailed_code(&self) -> Option<&str> {
        self.inner_codes
            .last()
            .or(self.code.as_ref())
            .map(String::as_str)
    }

    /// `http 404 (ErrorItemNotFound): message [request-id …]`, for error messages.
    fn describe(&self, status: u16) -> String {
        let codes: Vec<&str> = self.codes().collect();
        let mut text = format!("http {status}");
        if !codes.is_empty() {
            text.push_str(&format!(" ({})", codes.join(" / ")));
        }
        if let Some(message) = &self.message {
            text.push_str(&format!(": {message}"));
        }
        if let Some(id) = &self.request_id {
            text.push_str(&format!(" [request-id {id}]"));
        }
        text
    }
}

/// `innerError` (Graph's spelling) or `innererror` (OneDrive's).
fn inner_error(object: &serde_json::Map<String, Value>) -> Option<&serde_json::Map<String, Value>> {
    object
        .get("innerError")
        .or_else(|| object.get("innererror"))
        .and_then(Value::as_object)
}

/// `text` cut to at most `max` characters, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// What the server asked for when it refused a delta token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResyncKind {
    /// `resyncRequired` / `syncStateNotFound` (or a bare 410 with `Location`): drop the
    /// delta link and compare everything again.
    Reset,
    /// `resyncChangesApplyDifferences`: take the server's version of every item
    /// (deletions included), then keep local changes the server lacks.
    ApplyServerDifferences,
    /// `resyncChangesUploadDifferences`: keep local items the server did not return
    /// (both copies when unsure).
    UploadLocalDifferences,
}

/// A refused delta token: the round must start again, and the caller reconciles by a
/// full comparison (see `tributary_sdk::kit::delta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    /// What the server asked for.
    pub kind: ResyncKind,
    /// The resync code it answered with, if any.
    pub code: Option<String>,
    /// The `Location` header: a fresh initial delta URL of the same resource, with the
    /// round's query options. Absolute, and on the base URL's origin (a foreign one is
    /// dropped); absent when the server gave none.
    pub location: Option<String>,
    /// The status it came with (410, or another 4xx for an expired token).
    pub status: u16,
}

impl Resync {
    /// Where the new round starts: the server's `Location`, else `initial` (the
    /// caller's own initial delta URL).
    pub fn restart_link<'a>(&'a self, initial: &'a str) -> &'a str {
        self.location.as_deref().unwrap_or(initial)
    }
}

/// A Graph request that did not return what was asked, as the sync must handle it.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// 404 `itemNotFound` / `ErrorItemNotFound`: the item no longer exists (a caller
    /// fetching one item records a soft delete).
    #[error("not found: {}", .0.describe(404))]
    NotFound(ErrorBody),
    /// The delta link expired (see [`Resync`]): start a new round and compare.
    #[error("resync required: the delta link is no longer valid (http {}{})", .0.status, .0.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    ResyncRequired(Resync),
    /// Anything else, classified for the engine.
    #[error(transparent)]
    Failed(IntegrationError),
}

impl From<IntegrationError> for GraphError {
    fn from(e: IntegrationError) -> GraphError {
        GraphError::Failed(e)
    }
}

impl From<GraphError> for IntegrationError {
    /// The engine's view: an unexpected "not found" or "resync" is permanent (a caller
    /// that can handle them matches on [`GraphError`] first).
    fn from(e: GraphError) -> IntegrationError {
        match e {
            GraphError::Failed(e) => e,
            other => IntegrationError::permanent(other.to_string()),
        }
    }
}

impl GraphError {
    /// The error for the engine (see the `From` conversion).
    pub fn into_integration(self) -> IntegrationError {
        self.into()
    }

    /// The same error with `context` before the message of a [`GraphError::Failed`].
    pub fn context(self, context: impl std::fmt::Display) -> GraphError {
        match self {
            GraphError::Failed(e) => GraphError::Failed(e.context(context)),
            other => other,
        }
    }
}

/// Classifies a non-2xx Graph response (see the module docs). The `Location` of a
/// resync is given as the server sent it; [`crate::GraphClient`] resolves it and
/// checks its origin.
pub fn classify(response: &HttpResponse) -> GraphError {
    let status = response.status.as_u16();
    let retry_after = response.retry_after();
    let body = ErrorBody::parse(&response.body);
    let message = match &body {
        Some(body) => body.describe(status),
        None => response.error_for_status().message().to_owned(),
    };
    let has = |codes: &[&str]| body.as_ref().is_some_and(|b| b.has_code(codes));
    if status == 401 {
        return GraphError::Failed(IntegrationError::auth(message));
    }
    if status == 429 || has(&THROTTLE_CODES) || (status == 503 && retry_after.is_some()) {
        return GraphError::Failed(IntegrationError::rate_limited(message, retry_after));
    }
    let location = response
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resync = body.as_ref().and_then(ErrorBody::resync_kind);
    if ((400..500).contains(&status) && resync.is_some()) || (status == 410 && location.is_some()) {
        return GraphError::ResyncRequired(Resync {
            kind: resync.unwrap_or(ResyncKind::Reset),
            code: body
                .as_ref()
                .and_then(|b| {
                    b.codes()
                        .find(|c| RESYNC_CODES.iter().any(|(k, _)| k.eq_ignore_ascii_case(c)))
                })
                .map(str::to_owned),
            location,
            status,
        });
    }
    if status == 404
        && let Some(body) = body.filter(|b| b.has_code(&NOT_FOUND_CODES))
    {
        return GraphError::NotFound(body);
    }
    if status == 403 {
        return GraphError::Failed(IntegrationError::permanent(format!(
            "access denied to this resource: {message}"
        )));
    }
    GraphError::Failed(classify_status(response.status, retry_after, message))
}

/// [`classify`] as the engine sees it: the error hook of the kit's bearer client.
pub fn classify_error(response: &HttpResponse) -> IntegrationError {
    classify(response).into_integration()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tributary_sdk::ErrorClass;
    use tributary_sdk::http::{HeaderMap, StatusCode};

    fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().expect("a header value"));
        }
        HttpResponse {
            status: StatusCode::from_u16(status).expect("a status"),
            headers: map,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn graph(status: u16, code: &str) -> HttpResponse {
        graph_with(status, code, &[])
    }

    fn graph_with(status: u16, code: &str, headers: &[(&'static str, &str)]) -> HttpResponse {
        let body = serde_json::json!({"error": {"code": code, "message": "m",
            "innerError": {"date": "2026-01-05T10:00:00", "request-id": "rid-1",
                           "client-request-id": "rid-1"}}});
        response(status, headers, &body.to_string())
    }

    fn class(e: &GraphError) -> Option<ErrorClass> {
        match e {
            GraphError::Failed(e) => Some(e.class()),
            _ => None,
        }
    }

    fn retry_after(e: &GraphError) -> Option<Duration> {
        match e {
            GraphError::Failed(IntegrationError::RateLimited { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    #[test]
    fn statuses_and_codes_decide_never_messages() {
        use ErrorClass::*;
        let cases = [
            (graph(401, "InvalidAuthenticationToken"), Auth),
            (graph(401, "unauthenticated"), Auth),
            (response(401, &[], ""), Auth),
            (graph(403, "accessDenied"), Permanent),
            (graph(403, "ErrorAccessDenied"), Permanent),
            (graph(403, "activityLimitReached"), RateLimited),
            (graph(400, "ApplicationThrottled"), RateLimited),
            (graph(429, "TooManyRequests"), RateLimited),
            (response(429, &[], "slow down"), RateLimited),
            (
                graph_with(503, "serviceNotAvailable", &[("retry-after", "3")]),
                RateLimited,
            ),
            (graph(503, "serviceNotAvailable"), Transient),
            (graph(500, "generalException"), Transient),
            (graph(504, "gatewayTimeout"), Transient),
            (response(502, &[], "<html>bad gateway</html>"), Transient),
            (graph(400, "invalidRequest"), Permanent),
            (graph(404, "MailboxNotEnabledForRESTAPI"), Permanent),
            (response(404, &[], "<html>not found</html>"), Permanent),
            (graph(410, "itemGone"), Permanent),
        ];
        for (response, expected) in cases {
            let error = classify(&response);
            assert_eq!(
                class(&error),
                Some(expected),
                "{} → {error}",
                response.text()
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_in_seconds() {
        let e = classify(&graph_with(
            429,
            "activityLimitReached",
            &[("retry-after", "7")],
        ));
        assert_eq!(retry_after(&e), Some(Duration::from_secs(7)));
        let e = classify(&graph_with(
            503,
            "serviceNotAvailable",
            &[("retry-after", "120")],
        ));
        assert_eq!(retry_after(&e), Some(Duration::from_secs(120)));
        let e = classify(&graph(429, "activityLimitReached"));
        assert_eq!(class(&e), Some(ErrorClass::RateLimited));
        assert_eq!(retry_after(&e), None);
    }

    #[test]
    fn item_codes_are_not_found_and_nothing_else_is() {
        for code in ["itemNotFound", "ErrorItemNotFound", "ITEMNOTFOUND"] {
            match classify(&graph(404, code)) {
                GraphError::NotFound(body) => {
                    assert_eq!(body.request_id.as_deref(), Some("rid-1"));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        // The item code on another status is no deletion either.
        assert_eq!(
            class(&classify(&graph(400, "ErrorItemNotFound"))),
            Some(ErrorClass::Permanent)
        );
    }

    #[test]
    fn resync_codes_and_location_ask_for_a_new_round() {
        let location = "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta";
        let cases = [
            (
                graph_with(410, "syncStateNotFound", &[("location", location)]),
                ResyncKind::Reset,
                true,
            ),
            (graph(410, "resyncRequired"), ResyncKind::Reset, false),
            (graph(400, "syncStateNotFound"), ResyncKind::Reset, false),
            (
                graph(410, "resyncChangesApplyDifferences"),
                ResyncKind::ApplyServerDifferences,
                false,
            ),
            (
                graph(410, "resyncChangesUploadDifferences"),
                ResyncKind::UploadLocalDifferences,
                false,
            ),
            (
                response(410, &[("location", location)], ""),
                ResyncKind::Reset,
                true,
            ),
        ];
        for (response, kind, has_location) in cases {
            match classify(&response) {
                GraphError::ResyncRequired(resync) => {
                    assert_eq!(resync.kind, kind, "{}", response.text());
                    assert_eq!(resync.location.is_some(), has_location);
                    assert_eq!(resync.status, response.status.as_u16());
                }
                other => panic!("{}: {other:?}", response.text()),
            }
        }
        // A resync code on a 5xx is the server failing, not the token.
        assert_eq!(
            class(&classify(&graph(500, "resyncRequired"))),
            Some(ErrorClass::Transient)
        );
    }

    #[test]
    fn nested_inner_codes_count_and_the_innermost_is_detailed() {
        let body = serde_json::json!({"error": {"code": "invalidRequest", "message": "m",
            "innererror": {"code": "resyncRequired",
                           "innererror": {"code": "resyncApplyDifferences"}}}});
        let parsed = ErrorBody::parse(body.to_string().as_bytes()).expect("an envelope");
        assert_eq!(parsed.code.as_deref(), Some("invalidRequest"));
        assert_eq!(
            parsed.inner_codes,
            ["resyncRequired", "resyncApplyDifferences"]
        );
        assert_eq!(parsed.detailed_code(), Some("resyncApplyDifferences"));
        let e = classify(&response(410, &[], &body.to_string()));
        assert!(matches!(e, GraphError::ResyncRequired(_)), "{e:?}");
    }

    #[test]
    fn hostile_bodies_fall_back_to_the_status() {
        // Too deep for the SDK's guard, far too long, not an object, wrong types.
        let deep = format!("{}{}", "{\"error\":".repeat(300), "}".repeat(300));
        let long = format!(
            "{{\"error\":{{\"code\":\"itemNotFound\",\"message\":\"{}\"}}}}",
            "x".repeat(MAX_ERROR_BODY_BYTES)
        );
        for body in [
            deep.as_str(),
            long.as_str(),
            "[1,2]",
            r#"{"error": {"code": 404}}"#,
            "\u{0}\u{1}",
        ] {
            let e = classify(&response(404, &[], body));
            assert_eq!(class(&e), Some(ErrorClass::Permanent), "{e}");
        }
        // Inner errors nested beyond the limit are not followed.
        let mut inner = serde_json::json!({"code": "itemNotFound"});
        for _ in 0..MAX_INNER_ERRORS + 2 {
            inner = serde_json::json!({"code": "x", "innerError": inner});
        }
        let body = serde_json::json!({"error": {"code": "generalException", "innerError": inner}});
        let parsed = ErrorBody::parse(body.to_string().as_bytes()).expect("an envelope");
        assert_eq!(parsed.inner_codes.len(), MAX_INNER_ERRORS);
        assert!(!parsed.has_code(&NOT_FOUND_CODES));
    }

    #[test]
    fn messages_are_cut_and_keep_the_request_id() {
        let body = serde_json::json!({"error": {"code": "generalException",
            "message": "é".repeat(1000), "innerError": {"request-id": "rid-9"}}});
        let e = classify(&response(500, &[], &body.to_string()));
        let text = e.to_string();
        assert!(
            text.contains("generalException") && text.contains("rid-9"),
            "{text}"
        );
        assert!(text.chars().count() < 400, "{text}");
    }

    #[test]
    fn the_engine_sees_not_found_and_resync_as_permanent() {
        let e: IntegrationError = classify(&graph(404, "itemNotFound")).into();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = classify_error(&graph(410, "resyncRequired"));
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().contains("resync"), "{e}");
        assert_eq!(classify_error(&graph(401, "x")).class(), ErrorClass::Auth);
    }
}

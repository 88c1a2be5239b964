//! What every API request to a Google fake goes through before its handler: counted
//! under its method, delayed by the configured latency, maybe answered with an injected
//! fault, then authenticated by its access token (`Authorization: Bearer`, or the
//! `access_token` parameter), as Google's front end does.

use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::faults::{Fault, Faults};
use crate::oauth::TokenStore;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Admits one request to `method`: `Ok(true)` when its answer's body is to be cut in
/// half (an injected [`Fault::TruncatedBody`]), `Ok(false)` for a normal answer, or the
/// error to answer with (an injected fault, or 401 for a missing, unknown or expired
/// token). `query_token` is the request's `access_token` parameter.
pub async fn admit<M: Ord + Copy>(
    faults: &Mutex<Faults<M>>,
    tokens: &Mutex<TokenStore>,
    method: M,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<bool, ApiError> {
    let decision = lock(faults).decide(method);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if decision.expire_tokens_now {
        lock(tokens).expire_access_tokens();
    }
    let truncate = match decision.fault {
        Some(Fault::ServerError) => return Err(ApiError::backend_error()),
        Some(Fault::Unavailable) => return Err(ApiError::unavailable()),
        Some(Fault::RateLimited) => return Err(ApiError::rate_limited(decision.retry_after_secs)),
        Some(Fault::UserRateLimited) => {
            return Err(ApiError::user_rate_limited(decision.retry_after_secs));
        }
        Some(Fault::TruncatedBody) => true,
        None => false,
    };
    let token = bearer_token(headers).or_else(|| query_token.map(str::to_owned));
    let valid = token
        .as_deref()
        .is_some_and(|token| lock(tokens).is_valid(token));
    if !valid {
        lock(faults).counters.unauthorized += 1;
        let message = if token.is_some() {
            "the access token is invalid, expired or revoked"
        } else {
            "the request is missing a valid oauth 2 access token"
        };
        return Err(ApiError::unauthenticated(message));
    }
    Ok(truncate)
}

/// The bearer token of `Authorization`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// A JSON answer, typed as Google types them.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// A request's query string, with repeated parameters kept (`labelIds=A&labelIds=B`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (none: empty).
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.map(|raw| {
                url::form_urlencoded::parse(raw.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

//! Google's OAuth 2.0 endpoints as routes any Google API fake merges into its router
//! (`/token`, `/authorize` and Google's `/o/oauth2/v2/auth`, `/revoke`), over the
//! fake's [`TokenStore`]: see [`crate::oauth`] for what they accept.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::oauth::{ClientCredentials, OAuthError, TokenStore};

/// A fake that serves the OAuth endpoints: where its token store is, and where it counts
/// the tokens it issued.
pub trait OAuthHost: Clone + Send + Sync + 'static {
    /// Runs `f` on the fake's token store.
    fn with_tokens<R>(&self, f: impl FnOnce(&mut TokenStore) -> R) -> R;
    /// Called after each successful grant at the token endpoint.
    fn token_issued(&self);
}

/// The OAuth routes, for a router whose state is the fake `H`.
pub fn oauth_routes<H: OAuthHost>() -> Router<H> {
    Router::new()
        .route("/token", post(token::<H>))
        .route("/authorize", get(authorize::<H>))
        .route("/o/oauth2/v2/auth", get(authorize::<H>))
        .route("/revoke", post(revoke::<H>))
}

/// A 200 with a JSON body.
fn json_ok(value: &Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// A form body and a query string as one map (the body wins).
pub fn form_map(bytes: &[u8], query: Option<&str>) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    map.extend(url::form_urlencoded::parse(bytes).into_owned());
    map
}

async fn token<H: OAuthHost>(
    State(host): State<H>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => return (rejection.status(), rejection.body_text()).into_response(),
    };
    let form = form_map(&bytes, None);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client = ClientCredentials::from_request(authorization, &form);
    let result = host.with_tokens(|tokens| {
        tokens
            .token(&form, &client)
            .map(|issued| (issued, tokens.scope().to_owned()))
    });
    match result {
        Ok((issued, scope)) => {
            host.token_issued();
            let mut body = json!({
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "scope": scope,
                "token_type": "Bearer",
            });
            if let Some(refresh) = issued.refresh_token {
                body["refresh_token"] = json!(refresh);
            }
            let mut response = json_ok(&body);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
                .headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn authorize<H: OAuthHost>(State(host): State<H>, RawQuery(raw): RawQuery) -> Response {
    let query = form_map(&[], raw.as_deref());
    let result = host.with_tokens(|tokens| tokens.authorize(&query));
    match result {
        Ok(target) => match HeaderValue::from_str(target.as_str()) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => {
                ApiError::bad_request("redirect target is not a valid header").into_response()
            }
        },
        Err(error) => error.into_response(),
    }
}

async fn revoke<H: OAuthHost>(
    State(host): State<H>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = body.unwrap_or_default();
    let form = form_map(&bytes, raw.as_deref());
    let Some(token) = form.get("token") else {
        return OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: "missing token".to_owned(),
        }
        .into_response();
    };
    let result = host.with_tokens(|tokens| tokens.revoke(token));
    match result {
        Ok(()) => json_ok(&json!({})),
        Err(error) => error.into_response(),
    }
}

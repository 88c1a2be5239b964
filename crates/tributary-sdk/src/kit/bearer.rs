//! An HTTP client that authorizes every request with an OAuth 2.0 bearer token.
//!
//! [`BearerClient::send`] takes the token from the job's [`BearerSession`] (the token the
//! account's jobs in the process share while it is valid, else the stored one, else a
//! fresh one from the refresh-token grant), sends, and on 401 retries once with a newer
//! token (another job's, or its own refresh; at most one refresh per job). Whatever the
//! session refreshed is reported to the kit, which persists it with the job's commit,
//! on success and on failure alike: an author cannot forget to.
//!
//! Failures are classified by an [`ErrorHook`]: the service's own reading of its error
//! bodies (Google's 403 `rateLimitExceeded` is a rate limit, not a refusal), falling
//! back to the status code.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use reqwest::RequestBuilder;
use serde::Deserialize;

use crate::http::{BodyLimit, HttpClient, HttpResponse};
use crate::oauth::{
    AccessToken, BearerSession, RefreshTokenGrant, RotationSink, StoredToken, TokenCache,
};
use crate::{CredentialSink, Credentials, IntegrationError};

/// The credential field holding the current access token.
pub const ACCESS_TOKEN: &str = "accessToken";

/// The credential field holding when [`ACCESS_TOKEN`] expires (RFC 3339), so a process
/// that starts after it does not send it only to be refused.
pub const ACCESS_TOKEN_EXPIRES_AT: &str = "accessTokenExpiresAt";

/// The credential field holding the refresh token.
pub const REFRESH_TOKEN: &str = "refreshToken";

/// The credentials of an OAuth 2.0 integration, by their standard field names: a typed
/// `Credentials` type of its own, or part of one (`#[serde(flatten)]`).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthCredentials {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The refresh token the user granted.
    pub refresh_token: String,
    /// The last access token, if one was stored.
    #[serde(default)]
    pub access_token: Option<String>,
    /// When that token expires. An unreadable value counts as unknown: the token is
    /// tried, and a 401 refreshes it.
    #[serde(default, deserialize_with = "lenient_time")]
    pub access_token_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for OAuthCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = Option::<serde_json::Value>::deserialize(d)?;
    Ok(text
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Classifies a non-2xx response of the service.
pub type ErrorHook = fn(&HttpResponse) -> IntegrationError;

/// Says whether a response means the service refused the access token (by default a
/// 401; Slack answers 200 with `{"ok": false, "error": "token_expired"}`).
pub type RejectionCheck = fn(&HttpResponse) -> bool;

fn is_unauthorized(response: &HttpResponse) -> bool {
    response.status.as_u16() == 401
}

/// Where the kit learns what the job's session refreshed.
pub(crate) type RefreshedSlot = Arc<Mutex<Option<AccessToken>>>;

/// An HTTP client whose requests carry the account's bearer token (see the module docs).
#[derive(Debug)]
pub struct BearerClient {
    http: HttpClient,
    session: BearerSession,
    on_error: ErrorHook,
    rejected: RejectionCheck,
    refreshed: RefreshedSlot,
    service: String,
}

impl BearerClient {
    pub(crate) fn new(
        http: HttpClient,
        tokens: &TokenCache,
        token_url: &str,
        credentials: &OAuthCredentials,
        refreshed: RefreshedSlot,
        service: &str,
        saving: Option<(Arc<dyn CredentialSink>, Credentials)>,
    ) -> BearerClient {
        let grant = RefreshTokenGrant {
            token_url: token_url.to_owned(),
            client_id: credentials.client_id.clone(),
            client_secret: credentials.client_secret.clone(),
            refresh_token: credentials.refresh_token.clone(),
        };
        let stored = credentials.access_token.as_ref().map(|token| StoredToken {
            access_token: token.clone(),
            expires_at: credentials.access_token_expires_at,
        });
        let mut session = BearerSession::new(tokens, grant, stored);
        if let Some((sink, stored)) = saving {
            session = session.with_rotation_sink(Arc::new(SaveRotation { sink, stored }));
        }
        BearerClient {
            http,
            session,
            on_error: HttpResponse::error_for_status,
            rejected: is_unauthorized,
            refreshed,
            service: service.to_owned(),
        }
    }

    /// The same client classifying failures with `hook`.
    pub fn with_error_hook(mut self, hook: ErrorHook) -> BearerClient {
        self.on_error = hook;
        self
    }

    /// The same client recognising a refused token with `check` instead of by a 401.
    pub fn with_rejection_check(mut self, check: RejectionCheck) -> BearerClient {
        self.rejected = check;
        self
    }

    /// The underlying HTTP client (for requests that need no token).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends the request `build` makes, authorized; `class` names the kind of call for
    /// the rate budgets and in errors (`users.messages.get`). Returns any status (a
    /// refused token only after the retry with a newer one).
    pub async fn send(
        &mut self,
        class: &str,
        build: impl Fn(&HttpClient) -> RequestBuilder,
    ) -> Result<HttpResponse, IntegrationError> {
        self.send_limited(class, BodyLimit::Whole, build).await
    }

    /// [`BearerClient::send`], reading the body as `limit` says (see
    /// [`HttpClient::send_limited`]): for a download kept only up to a size.
    pub async fn send_limited(
        &mut self,
        class: &str,
        limit: BodyLimit,
        build: impl Fn(&HttpClient) -> RequestBuilder,
    ) -> Result<HttpResponse, IntegrationError> {
        let service = self.service.clone();
        let context = |e: IntegrationError| e.context(format!("{service} {class}"));
        let token = self.token().await.map_err(context)?;
        let response = self
            .http
            .send_limited(class, build(&self.http).bearer_auth(&token), limit)
            .await
            .map_err(context)?;
        if !(self.rejected)(&response) {
            return Ok(response);
        }
        tracing::debug!(service = %self.service, "access token refused; retrying with a newer one");
        let newer = self.session.token_rejected(&self.http, &token).await;
        self.note_refresh();
        match newer.map_err(|e| context(refresh_failed(e)))? {
            Some(newer) => self
                .http
                .send_limited(class, build(&self.http).bearer_auth(&newer), limit)
                .await
                .map_err(context),
            None => Ok(response),
        }
    }

    /// Like [`BearerClient::send`], but a non-2xx status is the hook's error.
    pub async fn send_ok(
        &mut self,
        class: &str,
        build: impl Fn(&HttpClient) -> RequestBuilder,
    ) -> Result<HttpResponse, IntegrationError> {
        let response = self.send(class, build).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(self.error(class, &response))
        }
    }

    /// The hook's error for a failed response of a `class` call.
    pub fn error(&self, class: &str, response: &HttpResponse) -> IntegrationError {
        (self.on_error)(response).context(format!("{} {class}", self.service))
    }

    async fn token(&mut self) -> Result<String, IntegrationError> {
        let token = self.session.access_token(&self.http).await;
        self.note_refresh();
        token.map_err(refresh_failed)
    }

    fn note_refresh(&self) {
        let mut slot = self
            .refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.session.rotation_saved() {
            // Saved when it happened; a later commit of this job's older view of the
            // credentials could only undo a newer rotation of another job.
            *slot = None;
        } else if let Some(token) = self.session.refreshed() {
            *slot = Some(token.clone());
        }
    }
}

/// Saves a rotation through the engine's [`CredentialSink`], as the account's stored
/// credentials with the new tokens applied.
struct SaveRotation {
    sink: Arc<dyn CredentialSink>,
    stored: Credentials,
}

#[async_trait::async_trait]
impl RotationSink for SaveRotation {
    async fn rotated(&self, token: &AccessToken) -> Result<(), IntegrationError> {
        self.sink
            .save(&super::with_refresh(&self.stored, token))
            .await
    }
}

fn refresh_failed(e: IntegrationError) -> IntegrationError {
    e.context("failed to refresh the access token")
}

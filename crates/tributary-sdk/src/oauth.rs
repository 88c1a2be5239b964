//! The OAuth2 refresh-token grant (RFC 6749 §6) against a configurable token URL, and
//! the access tokens an account's jobs share.
//!
//! Error responses follow RFC 6749 §5.2: `invalid_grant` (a revoked or expired refresh
//! token) and `invalid_client` mean the user must authorize again, so they are
//! [`IntegrationError::Auth`], never retried; so do OpenID Connect's
//! `interaction_required`, `login_required` and `consent_required` (the Microsoft
//! identity platform's answer when a policy or a new permission needs the user). 5xx
//! and network failures are transient.
//!
//! # Sharing access tokens
//! An integration instance lives for one job, but an access token is good for about an
//! hour and a backfill runs thousands of jobs. A [`TokenCache`] (one per engine, handed
//! to every job in [`IntegrationContext::tokens`](crate::IntegrationContext::tokens))
//! keeps the current token of each grant, and a [`BearerSession`] (one per job) takes
//! its token from there:
//! - a cached token still valid is used as it is, without a token request;
//! - when there is none, or it is about to expire, one job refreshes while the account's
//!   other jobs wait for its answer (one request, not one per job);
//! - after a 401, the session refreshes unless another job already replaced the refused
//!   token, and at most once per job: a token refused right after it was issued means
//!   the grant itself is no longer good.
//!
//! The job that refreshed reports the new token ([`BearerSession::refreshed`]) so it is
//! persisted with its commit (and a rotated refresh token with it); the cache follows a
//! rotation at once, so jobs that were claimed with the old refresh token use the new
//! one. Entries are keyed by the grant (token URL, client id, refresh token), never by
//! the account alone, so an account linked again with other credentials never gets the
//! old grant's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::IntegrationError;
use crate::http::HttpClient;

/// What is needed to refresh an access token.
#[derive(Clone)]
pub struct RefreshTokenGrant {
    /// The token endpoint, e.g. `https://oauth2.googleapis.com/token`.
    pub token_url: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The refresh token.
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A fresh access token.
#[derive(Clone, PartialEq)]
pub struct AccessToken {
    /// The bearer token.
    pub access_token: String,
    /// When it expires (with a safety margin already subtracted), if the server said.
    pub expires_at: Option<DateTime<Utc>>,
    /// A new refresh token, when the server rotated it: persist it.
    pub rotated_refresh_token: Option<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .field("rotated", &self.rotated_refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Whether the token is still usable at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl RefreshTokenGrant {
    /// Exchanges the refresh token for an access token.
    pub async fn refresh(&self, http: &HttpClient) -> Result<AccessToken, IntegrationError> {
        let request = http.post(&self.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ]);
        let response = http
            .send(request)
            .await
            .map_err(|e| e.context("failed to refresh oauth2 token"))?;
        if response.status.is_success()
            && let Some(refused) = envelope_error(&response.body)
        {
            return Err(refused);
        }
        if response.status.is_success() {
            let token: TokenResponse = response
                .json()
                .map_err(|e| e.context("failed to refresh oauth2 token"))?;
            let now = Utc::now();
            return Ok(AccessToken {
                access_token: token.access_token,
                // Refresh early so a token never expires mid-request: a minute, or a
                // tenth of a short lifetime (a token of seconds is not stale at once).
                expires_at: token.expires_in.map(|s| {
                    let margin = (s / 10).clamp(0, 60);
                    now + ChronoDuration::seconds((s - margin).max(0))
                }),
                rotated_refresh_token: token.refresh_token.filter(|t| *t != self.refresh_token),
            });
        }
        if let Ok(body) = serde_json::from_slice::<TokenErrorResponse>(&response.body) {
            let detail = match &body.error_description {
                Some(d) => format!("{}: {d}", body.error),
                None => body.error.clone(),
            };
            let message = format!("token endpoint refused the refresh token ({detail})");
            return Err(match body.error.as_str() {
                "invalid_grant"
                | "invalid_client"
                | "unauthorized_client"
                | "interaction_required"
                | "login_required"
                | "consent_required" => IntegrationError::auth(message),
                "temporarily_unavailable" | "server_error" => IntegrationError::transient(message),
                _ if response.status.is_server_error() => IntegrationError::transient(message),
                _ => IntegrationError::permanent(message),
            });
        }
        Err(response
            .error_for_status()
            .context("failed to refresh oauth2 token"))
    }
}

/// The refusal inside a 2xx answer, for token endpoints that answer every call with
/// 200 and an `ok` flag (Slack's `oauth.v2.access`: `{"ok": false, "error":
/// "invalid_refresh_token"}`).
fn envelope_error(body: &[u8]) -> Option<IntegrationError> {
    #[derive(Deserialize)]
    struct Envelope {
        ok: Option<bool>,
        #[serde(default)]
        error: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    if envelope.ok != Some(false) {
        return None;
    }
    let error = envelope.error.unwrap_or_else(|| "unknown error".into());
    let message = format!("token endpoint refused the refresh token ({error})");
    Some(match error.as_str() {
        "ratelimited" => IntegrationError::rate_limited(message, None),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            IntegrationError::transient(message)
        }
        // A refused grant or client: only the user can fix it by authorizing again.
        _ => IntegrationError::auth(message),
    })
}

/// The access tokens of a process, shared by the jobs of each grant (see the module
/// docs). Cloning is cheap and clones share the tokens.
#[derive(Clone, Default)]
pub struct TokenCache {
    slots: Arc<SyncMutex<HashMap<GrantKey, Arc<Mutex<Slot>>>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grants = self.slots.lock().map_or(0, |slots| slots.len());
        f.debug_struct("TokenCache")
            .field("grants", &grants)
            .finish()
    }
}

/// A cache holds at most this many grants' entries before it drops the expired ones.
const CACHE_SOFT_LIMIT: usize = 4096;

/// Identifies a grant. Held in memory only, never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct GrantKey {
    token_url: String,
    client_id: String,
    refresh_token: String,
}

impl GrantKey {
    fn of(grant: &RefreshTokenGrant, refresh_token: &str) -> GrantKey {
        GrantKey {
            token_url: grant.token_url.clone(),
            client_id: grant.client_id.clone(),
            refresh_token: refresh_token.to_owned(),
        }
    }
}

/// The shared state of one grant.
#[derive(Default)]
struct Slot {
    /// The current access token, if any.
    token: Option<AccessToken>,
    /// The newest refresh token known for the grant (after rotations).
    refresh_token: Option<String>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// The slot of `grant`, created when missing.
    fn slot(&self, grant: &RefreshTokenGrant) -> Arc<Mutex<Slot>> {
        let key = GrantKey::of(grant, &grant.refresh_token);
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        if slots.len() >= CACHE_SOFT_LIMIT {
            // Drop the entries whose token has expired (and that no job holds now).
            let now = Utc::now();
            slots.retain(|_, slot| {
                slot.try_lock().map_or(true, |s| {
                    s.token.as_ref().is_some_and(|t| t.is_valid_at(now))
                })
            });
        }
        slots.entry(key).or_default().clone()
    }

    /// Makes `rotated` (a new refresh token of the grant behind `slot`) find the same
    /// slot, so jobs claimed with either refresh token share it.
    fn alias(&self, grant: &RefreshTokenGrant, rotated: &str, slot: &Arc<Mutex<Slot>>) {
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.insert(GrantKey::of(grant, rotated), slot.clone());
    }
}

/// A stored access token to start from, with its expiry when known.
#[derive(Clone, PartialEq)]
pub struct StoredToken {
    /// The bearer token.
    pub access_token: String,
    /// When it stops being usable, if known.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Saves a refresh-token rotation the moment the token endpoint hands it out, before
/// the new token is used (see [`crate::CredentialSink`]).
#[async_trait::async_trait]
pub trait RotationSink: Send + Sync {
    /// Persists `token` (its `rotated_refresh_token` is the new refresh token).
    async fn rotated(&self, token: &AccessToken) -> Result<(), IntegrationError>;
}

/// One job's view of a grant's access token (see the module docs).
pub struct BearerSession {
    grant: RefreshTokenGrant,
    cache: TokenCache,
    slot: Arc<Mutex<Slot>>,
    /// The token stored with the account, offered to the cache when it has none.
    stored: Option<StoredToken>,
    /// The token this job sends.
    current: Option<AccessToken>,
    /// The token this job obtained from the token endpoint, if it refreshed.
    refreshed: Option<AccessToken>,
    /// Where a rotation is saved at once, if anywhere.
    sink: Option<Arc<dyn RotationSink>>,
    /// Whether this job's rotation was saved by the sink.
    rotation_saved: bool,
}

impl std::fmt::Debug for BearerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerSession")
            .field("grant", &self.grant)
            .field("has_token", &self.current.is_some())
            .field("refreshed", &self.refreshed.is_some())
            .finish_non_exhaustive()
    }
}

impl BearerSession {
    /// A session for `grant`, sharing tokens through `cache`, starting from the token
    /// stored with the account (if any).
    pub fn new(
        cache: &TokenCache,
        grant: RefreshTokenGrant,
        stored: Option<StoredToken>,
    ) -> BearerSession {
        let slot = cache.slot(&grant);
        BearerSession {
            grant,
            cache: cache.clone(),
            slot,
            stored: stored.filter(|t| !t.access_token.is_empty()),
            current: None,
            refreshed: None,
            sink: None,
            rotation_saved: false,
        }
    }

    /// The same session saving a rotated refresh token through `sink` while the
    /// grant's other jobs wait for the refresh (so rotations are saved in the order
    /// they happen).
    pub fn with_rotation_sink(mut self, sink: Arc<dyn RotationSink>) -> BearerSession {
        self.sink = Some(sink);
        self
    }

    /// Whether this job's refresh rotated the refresh token and the rotation was
    /// saved already (the job's commit must then not write its older view of the
    /// credentials).
    pub fn rotation_saved(&self) -> bool {
        self.rotation_saved
    }

    /// A token to send: the one this job holds while valid, else the shared one, else a
    /// new one from the token endpoint (one job refreshes; the others wait for it).
    pub async fn access_token(&mut self, http: &HttpClient) -> Result<String, IntegrationError> {
        let now = Utc::now();
        if let Some(token) = self.current.as_ref().filter(|t| t.is_valid_at(now)) {
            return Ok(token.access_token.clone());
        }
        let slot = self.slot.clone();
        let mut slot = slot.lock().await;
        if slot.token.is_none()
            && let Some(stored) = self.stored.take()
        {
            slot.token = Some(AccessToken {
                access_token: stored.access_token,
                expires_at: stored.expires_at,
                rotated_refresh_token: None,
            });
        }
        match slot.token.as_ref().filter(|t| t.is_valid_at(Utc::now())) {
            Some(token) => self.current = Some(token.clone()),
            None => self.refresh_locked(&mut slot, http).await?,
        }
        Ok(self.current_token())
    }

    /// After the service refused `rejected` (HTTP 401): the token to retry with once,
    /// or `None` when this job already refreshed (the grant is no longer good: an auth
    /// error for the caller). Another job's newer token is taken without a refresh.
    pub async fn token_rejected(
        &mut self,
        http: &HttpClient,
        rejected: &str,
    ) -> Result<Option<String>, IntegrationError> {
        if self.refreshed.is_some() {
            return Ok(None);
        }
        let slot = self.slot.clone();
        let mut slot = slot.lock().await;
        let newer = slot
            .token
            .as_ref()
            .filter(|t| t.access_token != rejected && t.is_valid_at(Utc::now()));
        match newer {
            Some(token) => self.current = Some(token.clone()),
            None => self.refresh_locked(&mut slot, http).await?,
        }
        Ok(Some(self.current_token()))
    }

    /// The token this job obtained by refreshing, if it refreshed: credentials to
    /// persist (with the rotated refresh token, if any).
    pub fn refreshed(&self) -> Option<&AccessToken> {
        self.refreshed.as_ref()
    }

    fn current_token(&self) -> String {
        self.current
            .as_ref()
            .map(|t| t.access_token.clone())
            .unwrap_or_default()
    }

    /// Refreshes while holding the grant's slot, so the grant's other jobs wait for
    /// this answer instead of asking too.
    async fn refresh_locked(
        &mut self,
        slot: &mut Slot,
        http: &HttpClient,
    ) -> Result<(), IntegrationError> {
        let mut grant = self.grant.clone();
        if let Some(newest) = &slot.refresh_token {
            grant.refresh_token = newest.clone();
        }
        if grant.refresh_token.is_empty() {
            // A long-lived token without a grant behind it (a Slack token without
            // rotation): once refused or expired, only the user can replace it.
            return Err(IntegrationError::auth(
                "the access token was refused or expired and no refresh token is stored: authorize again",
            ));
        }
        let mut token = grant.refresh(http).await?;
        if let Some(rotated) = &token.rotated_refresh_token {
            self.cache.alias(&self.grant, rotated, &self.slot);
            slot.refresh_token = Some(rotated.clone());
            if let Some(sink) = &self.sink {
                match sink.rotated(&token).await {
                    Ok(()) => self.rotation_saved = true,
                    Err(e) => tracing::warn!(
                        error = %e,
                        "failed to save a rotated refresh token at once; it is saved with the job's commit"
                    ),
                }
            }
        } else if grant.refresh_token != self.grant.refresh_token {
            // Another job's refresh rotated the token this job was claimed with: the
            // newest one is what the account must keep.
            token.rotated_refresh_token = Some(grant.refresh_token.clone());
        }
        slot.token = Some(AccessToken {
            rotated_refresh_token: None,
            ..token.clone()
        });
        self.current = Some(token.clone());
        self.refreshed = Some(token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use axum::extract::Form;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::collections::HashMap;

    async fn token_endpoint(Form(form): Form<HashMap<String, String>>) -> axum::response::Response {
        if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        match form.get("refresh_token").map(String::as_str) {
            Some("good") => axum::Json(serde_json::json!({
                "access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"
            }))
            .into_response(),
            Some("rotate") => axum::Json(serde_json::json!({
                "access_token": "at-2", "expires_in": 3600, "token_type": "Bearer", "refresh_token": "rotated"
            }))
            .into_response(),
            Some("flaky") => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
            // The Microsoft identity platform when a policy needs the user again.
            Some("needs-user") => (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({
                    "error": "interaction_required",
                    "error_description": "AADSTS50076: multi-factor authentication is required.",
                    "error_codes": [50076]
                })),
            )
                .into_response(),
            // Slack's convention: 200 with `ok: false`.
            Some("envelope-refused") => axum::Json(serde_json::json!({
                "ok": false, "error": "invalid_refresh_token"
            }))
            .into_response(),
            Some("envelope-ok") => axum::Json(serde_json::json!({
                "ok": true, "access_token": "xoxe.xoxp-1", "expires_in": 43200,
                "refresh_token": "xoxe-1-next", "token_type": "user"
            }))
            .into_response(),
            _ => (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
            )
                .into_response(),
        }
    }

    async fn grant(refresh_token: &str) -> Result<AccessToken, IntegrationError> {
        let app = axum::Router::new().route("/token", axum::routing::post(token_endpoint));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let g = RefreshTokenGrant {
            token_url: format!("http://{addr}/token"),
            client_id: "cid".into(),
            client_secret: "csecret".into(),
            refresh_token: refresh_token.into(),
        };
        g.refresh(&HttpClient::new().unwrap()).await
    }

    #[tokio::test]
    async fn refresh_succeeds_and_reports_rotation() {
        let t = grant("good").await.unwrap();
        assert_eq!(t.access_token, "at-1");
        assert!(t.rotated_refresh_token.is_none());
        assert!(t.is_valid_at(Utc::now()));
        let t = grant("rotate").await.unwrap();
        assert_eq!(t.rotated_refresh_token.as_deref(), Some("rotated"));
    }

    #[tokio::test]
    async fn revoked_token_is_auth_error() {
        let e = grant("revoked").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(e.message().contains("invalid_grant"));
        assert!(!e.message().contains("revoked\""));
    }

    #[tokio::test]
    async fn a_token_endpoint_asking_for_the_user_is_auth() {
        let e = grant("needs-user").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(e.message().contains("interaction_required"));
    }

    #[tokio::test]
    async fn an_ok_false_envelope_is_a_refusal_and_ok_true_a_token() {
        let e = grant("envelope-refused").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(e.message().contains("invalid_refresh_token"), "{e}");
        let t = grant("envelope-ok").await.unwrap();
        assert_eq!(t.access_token, "xoxe.xoxp-1");
        assert_eq!(t.rotated_refresh_token.as_deref(), Some("xoxe-1-next"));
    }

    #[tokio::test]
    async fn without_a_refresh_token_a_refresh_is_an_auth_error_without_a_request() {
        let cache = TokenCache::new();
        let grant = RefreshTokenGrant {
            // Nothing listens here: a request would be a transient error.
            token_url: "http://127.0.0.1:9/token".into(),
            client_id: String::new(),
            client_secret: String::new(),
            refresh_token: String::new(),
        };
        let mut session = BearerSession::new(&cache, grant, None);
        let e = session
            .access_token(&HttpClient::new().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
    }

    #[tokio::test]
    async fn server_error_is_transient() {
        assert_eq!(
            grant("flaky").await.unwrap_err().class(),
            ErrorClass::Transient
        );
    }

    /// A token endpoint that counts its calls and issues `at-N` tokens valid for an
    /// hour, rotating the refresh token `rotate-me` into `rotated`.
    async fn counting_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |Form(form): Form<HashMap<String, String>>| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    // Slow enough that concurrent sessions overlap with the refresh.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let refresh = form.get("refresh_token").cloned().unwrap_or_default();
                    let mut body = serde_json::json!({
                        "access_token": format!("at-{n}-{refresh}"), "expires_in": 3600,
                        "token_type": "Bearer"
                    });
                    if refresh == "rotate-me" {
                        body["refresh_token"] = "rotated".into();
                    }
                    axum::Json(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), calls)
    }

    fn grant_at(token_url: &str, refresh_token: &str) -> RefreshTokenGrant {
        RefreshTokenGrant {
            token_url: token_url.into(),
            client_id: "cid".into(),
            client_secret: "csecret".into(),
            refresh_token: refresh_token.into(),
        }
    }

    #[tokio::test]
    async fn concurrent_jobs_of_a_grant_share_one_refresh() {
        let (url, calls) = counting_endpoint().await;
        let cache = TokenCache::new();
        let http = HttpClient::new().unwrap();
        let mut sessions: Vec<BearerSession> = (0..20)
            .map(|_| BearerSession::new(&cache, grant_at(&url, "good"), None))
            .collect();
        let tokens = futures::future::join_all(sessions.iter_mut().map(|s| {
            let http = http.clone();
            async move { s.access_token(&http).await.unwrap() }
        }))
        .await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
        // Exactly one job refreshed: only it reports credentials to persist.
        assert_eq!(
            sessions.iter().filter(|s| s.refreshed().is_some()).count(),
            1
        );
        // A later job reuses the token too.
        let mut later = BearerSession::new(&cache, grant_at(&url, "good"), None);
        assert_eq!(later.access_token(&http).await.unwrap(), tokens[0]);
        assert!(later.refreshed().is_none());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_valid_stored_token_is_used_and_an_expired_one_is_not() {
        let (url, calls) = counting_endpoint().await;
        let http = HttpClient::new().unwrap();
        let stored = |expires_at| StoredToken {
            access_token: "stored".into(),
            expires_at,
        };
        let cache = TokenCache::new();
        let later = Utc::now() + ChronoDuration::minutes(30);
        let mut s = BearerSession::new(&cache, grant_at(&url, "good"), Some(stored(Some(later))));
        assert_eq!(s.access_token(&http).await.unwrap(), "stored");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);

        let cache = TokenCache::new();
        let past = Utc::now() - ChronoDuration::minutes(1);
        let mut s = BearerSession::new(&cache, grant_at(&url, "good"), Some(stored(Some(past))));
        assert_ne!(s.access_token(&http).await.unwrap(), "stored");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rejected_token_is_refreshed_once_per_job_unless_another_job_did() {
        let (url, calls) = counting_endpoint().await;
        let http = HttpClient::new().unwrap();
        let cache = TokenCache::new();
        let stored = StoredToken {
            access_token: "revoked-at".into(),
            expires_at: None,
        };
        let mut a = BearerSession::new(&cache, grant_at(&url, "good"), Some(stored.clone()));
        let mut b = BearerSession::new(&cache, grant_at(&url, "good"), Some(stored));
        let old = a.access_token(&http).await.unwrap();
        assert_eq!(b.access_token(&http).await.unwrap(), old);
        let new = a.token_rejected(&http, &old).await.unwrap().unwrap();
        assert_ne!(new, old);
        // b's 401 on the old token takes a's new one: no second refresh.
        assert_eq!(
            b.token_rejected(&http, &old).await.unwrap(),
            Some(new.clone())
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(b.refreshed().is_none());
        // a already refreshed: a second refusal is the caller's auth error.
        assert_eq!(a.token_rejected(&http, &new).await.unwrap(), None);
    }

    #[tokio::test]
    async fn rotation_is_followed_and_other_grants_are_apart() {
        let (url, calls) = counting_endpoint().await;
        let http = HttpClient::new().unwrap();
        let cache = TokenCache::new();
        let mut first = BearerSession::new(&cache, grant_at(&url, "rotate-me"), None);
        let token = first.access_token(&http).await.unwrap();
        let refreshed = first.refreshed().unwrap();
        assert_eq!(refreshed.rotated_refresh_token.as_deref(), Some("rotated"));
        // A job claimed after the commit (new refresh token) shares the token.
        let mut after = BearerSession::new(&cache, grant_at(&url, "rotated"), None);
        assert_eq!(after.access_token(&http).await.unwrap(), token);
        // A job claimed before it, whose token is refused, refreshes with the newest
        // refresh token and reports it to persist.
        let mut before = BearerSession::new(&cache, grant_at(&url, "rotate-me"), None);
        assert_eq!(before.access_token(&http).await.unwrap(), token);
        let renewed = before.token_rejected(&http, &token).await.unwrap().unwrap();
        assert!(renewed.ends_with("-rotated"), "{renewed}");
        assert_eq!(
            before.refreshed().unwrap().rotated_refresh_token.as_deref(),
            Some("rotated")
        );
        // The same account linked again with another grant never sees these tokens.
        let mut relinked = BearerSession::new(&cache, grant_at(&url, "good"), None);
        let other = relinked.access_token(&http).await.unwrap();
        assert!(other.ends_with("-good"), "{other}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn debug_hides_secrets() {
        let g = RefreshTokenGrant {
            token_url: "u".into(),
            client_id: "cid".into(),
            client_secret: "topsecret".into(),
            refresh_token: "rt-secret".into(),
        };
        let s = format!("{g:?}");
        assert!(!s.contains("topsecret") && !s.contains("rt-secret"));
    }
}

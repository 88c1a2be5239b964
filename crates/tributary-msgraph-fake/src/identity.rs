//! The Microsoft identity platform (v2.0 endpoints) as far as a web app that reads
//! mail and files uses it.
//!
//! - `GET /{tenant}/oauth2/v2.0/authorize`: the signed-in user consents at once; the
//!   browser is sent back (302) to the loopback `redirect_uri` with `code` and `state`,
//!   or with `error`/`error_description` (`access_denied` when a test says the user
//!   declined, `unsupported_response_type`, `invalid_request`). An unknown client or a
//!   `redirect_uri` that is not an `http` loopback address gets an error page (a 400
//!   with the JSON error body) instead: there is no safe place to redirect to.
//! - `POST /{tenant}/oauth2/v2.0/token`, form-encoded, client credentials in the form
//!   (`client_id`, `client_secret`) or as HTTP Basic:
//!   - `grant_type=authorization_code` with `code`, `redirect_uri` (the authorize
//!     request's), optional `scope`, and `code_verifier` when the authorize request
//!     had a PKCE `code_challenge` (`S256` or `plain`); a code is good for one
//!     redemption within 10 minutes;
//!   - `grant_type=refresh_token` with `refresh_token` and an optional `scope` (the
//!     grant's scopes or fewer).
//!
//!   Success: `{token_type: "Bearer", scope, expires_in, ext_expires_in,
//!   access_token, refresh_token}`; `refresh_token` only when the grant holds
//!   `offline_access` (asked for at authorization or redemption). `expires_in` is the
//!   configured access-token lifetime (default 3599 s). `{tenant}` is `common`,
//!   `organizations`, `consumers` or the configured tenant id.
//!
//! # Refresh-token rotation
//!
//! Every refresh answers a new refresh token, which becomes the grant's current one.
//! What happens to the old one is [`RefreshRotation`]: Microsoft does not revoke a
//! refresh token when it is used ([`RefreshRotation::KeepOld`]), but the fake's
//! default is [`RefreshRotation::RevokeOnUse`]: the used token dies at once (400
//! `invalid_grant`, `AADSTS70008`), so a test proves that a client saved the new one.
//!
//! # Errors
//!
//! The identity platform's shape: `{error, error_description, error_codes[],
//! timestamp, trace_id, correlation_id}`; `error_description` starts with
//! `AADSTS<code>: ` and ends with the trace id, correlation id and timestamp, and
//! `correlation_id` echoes the request's `client-request-id` header when there is
//! one. 401 for `invalid_client`, 400 for everything else:
//!
//! | case | `error` | code |
//! |---|---|---|
//! | a parameter is missing | `invalid_request` | 900144 |
//! | unknown tenant | `invalid_request` | 90002 |
//! | unknown `client_id` | `unauthorized_client` | 700016 |
//! | no client secret | `invalid_client` (401) | 7000218 |
//! | wrong client secret | `invalid_client` (401) | 7000215 |
//! | unknown grant type | `unsupported_grant_type` | 70003 |
//! | unknown or malformed code or refresh token | `invalid_grant` | 9002313 |
//! | expired code, or refresh token replaced by rotation | `invalid_grant` | 70008 |
//! | code already redeemed | `invalid_grant` | 54005 |
//! | `redirect_uri` differs from the authorize request's | `invalid_grant` | 70000 |
//! | PKCE verifier does not match | `invalid_grant` | 501481 |
//! | revoked grant ([`crate::GraphHandle::revoke_grant`]) | `invalid_grant` | 50173 |
//! | `scope` beyond what the grant holds | `invalid_grant` | 65001 |

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::GraphHandle;

/// How long an authorization code stays redeemable.
const CODE_LIFETIME_SECS: f64 = 600.0;

/// Access tokens kept before expired ones are dropped.
const ACCESS_TOKENS_KEPT: usize = 10_000;

/// What becomes of a refresh token once it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RefreshRotation {
    /// The used token dies: only the newest refresh token of a grant works (the
    /// fake's default, to prove clients store the new one).
    #[default]
    RevokeOnUse,
    /// The used token keeps working, as Microsoft's do (until revoked or expired).
    KeepOld,
}

/// A grant minted for a test ([`crate::GraphHandle::mint_grant`]) or by the token
/// endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant's number, for [`crate::GraphHandle::current_refresh_token`].
    pub grant_id: usize,
    /// The user (mailbox) the tokens act for.
    pub user_id: String,
    /// A live access token.
    pub access_token: String,
    /// Its refresh token (with `offline_access`).
    pub refresh_token: Option<String>,
    /// The scopes granted, as given (`Mail.Read`), without `offline_access`.
    pub scopes: Vec<String>,
    /// The access token's lifetime in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("grant_id", &self.grant_id)
            .field("user_id", &self.user_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A token-endpoint (or authorize-endpoint) error, in the identity platform's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityError {
    /// 401 for `invalid_client`, else 400.
    pub status: StatusCode,
    /// The OAuth 2.0 error (`invalid_grant`...).
    pub error: &'static str,
    /// The `AADSTS` number.
    pub code: u32,
    /// What went wrong, without the `AADSTS` prefix.
    pub description: String,
}

impl IdentityError {
    fn new(error: &'static str, code: u32, description: impl Into<String>) -> IdentityError {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        IdentityError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn missing(parameter: &str) -> IdentityError {
        IdentityError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn malformed() -> IdentityError {
        IdentityError::new(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    }

    /// The JSON body; `correlation_id` is the request's `client-request-id`, if any.
    pub fn body(&self, correlation_id: Option<&str>) -> Value {
        let trace_id = crate::new_guid();
        let correlation_id = correlation_id.map_or_else(crate::new_guid, str::to_owned);
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        })
    }

    fn render(&self, correlation_id: Option<&str>) -> Response {
        no_store_json(self.status, &self.body(correlation_id))
    }
}

#[derive(Debug)]
struct GrantState {
    user: usize,
    scopes: Vec<String>,
    offline: bool,
    revoked: bool,
    current_refresh: Option<String>,
}

#[derive(Debug)]
struct AccessState {
    grant: usize,
    expires_at: f64,
    expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    Live,
    Superseded,
    Revoked,
}

#[derive(Debug)]
struct RefreshState {
    grant: usize,
    status: RefreshStatus,
}

#[derive(Debug)]
struct CodeState {
    user: usize,
    scopes: Vec<String>,
    offline: bool,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    expires_at: f64,
    used: bool,
}

/// What the pipeline learns from a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid { user: usize, scopes: Vec<String> },
    Missing,
    Unknown,
    Expired,
    Revoked,
}

/// A successful token-endpoint answer.
#[derive(Debug)]
pub(crate) struct Issued {
    access_token: String,
    refresh_token: Option<String>,
    scopes: Vec<String>,
    expires_in: u64,
    refreshed: bool,
}

/// The client the endpoints know, and what `.default` means.
#[derive(Debug, Clone)]
pub(crate) struct ClientApp {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) default_scopes: Vec<String>,
}

/// The authorization server's state.
#[derive(Debug)]
pub(crate) struct Identity {
    grants: Vec<GrantState>,
    access: HashMap<String, AccessState>,
    refresh: HashMap<String, RefreshState>,
    codes: HashMap<String, CodeState>,
    rng: StdRng,
    pub(crate) lifetime: Duration,
    pub(crate) rotation: RefreshRotation,
    pub(crate) deny_consent: bool,
    pub(crate) signed_in: usize,
}

/// Whether `scopes` holds `scope`, ignoring case.
fn holds(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s.eq_ignore_ascii_case(scope))
}

/// Splits a `scope` parameter: Graph's resource prefix dropped, `.default` replaced by
/// the app's configured scopes, duplicates dropped.
pub(crate) fn parse_scopes(raw: &str, default_scopes: &[String]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for item in raw.split_whitespace() {
        let short = strip_resource(item);
        let expanded: Vec<String> = if short == ".default" {
            default_scopes.to_vec()
        } else {
            vec![short.to_owned()]
        };
        for scope in expanded {
            if !holds(&scopes, &scope) {
                scopes.push(scope);
            }
        }
    }
    scopes
}

fn strip_resource(scope: &str) -> &str {
    const PREFIX: &str = "https://graph.microsoft.com/";
    match scope.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &scope[PREFIX.len()..],
        _ => scope,
    }
}

/// The scopes that name a permission (not `offline_access`).
fn resource_scopes(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| !s.eq_ignore_ascii_case("offline_access"))
        .cloned()
        .collect()
}

impl Identity {
    pub(crate) fn new(seed: u64, lifetime: Duration, rotation: RefreshRotation) -> Identity {
        Identity {
            grants: Vec::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x6964_656e_7469_7479),
            lifetime,
            rotation,
            deny_consent: false,
            signed_in: 0,
        }
    }

    fn random(&mut self, prefix: &str, bytes: usize) -> String {
        let raw: Vec<u8> = (0..bytes).map(|_| self.rng.random::<u8>()).collect();
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// A new grant of `user` with its first access (and refresh) token.
    pub(crate) fn create_grant(
        &mut self,
        user: usize,
        scopes: Vec<String>,
        offline: bool,
        now: f64,
    ) -> (usize, String, Option<String>) {
        self.grants.push(GrantState {
            user,
            scopes: resource_scopes(&scopes),
            offline,
            revoked: false,
            current_refresh: None,
        });
        let grant = self.grants.len() - 1;
        let access = self.new_access_token(grant, now);
        let refresh = offline.then(|| self.new_refresh_token(grant));
        (grant, access, refresh)
    }

    fn new_access_token(&mut self, grant: usize, now: f64) -> String {
        if self.access.len() >= ACCESS_TOKENS_KEPT {
            self.access
                .retain(|_, token| !token.expired && token.expires_at > now);
        }
        let token = self.random("EwBfake.", 40);
        self.access.insert(
            token.clone(),
            AccessState {
                grant,
                expires_at: now + self.lifetime.as_secs_f64(),
                expired: false,
            },
        );
        token
    }

    fn new_refresh_token(&mut self, grant: usize) -> String {
        let token = self.random("M.C5fake_", 48);
        self.refresh.insert(
            token.clone(),
            RefreshState {
                grant,
                status: RefreshStatus::Live,
            },
        );
        if let Some(state) = self.grants.get_mut(grant) {
            state.current_refresh = Some(token.clone());
        }
        token
    }

    pub(crate) fn grant_user(&self, grant: usize) -> Option<usize> {
        self.grants.get(grant).map(|g| g.user)
    }

    pub(crate) fn grant_scopes(&self, grant: usize) -> Vec<String> {
        self.grants
            .get(grant)
            .map(|g| g.scopes.clone())
            .unwrap_or_default()
    }

    pub(crate) fn current_refresh_token(&self, grant: usize) -> Option<String> {
        self.grants
            .get(grant)
            .filter(|g| !g.revoked)
            .and_then(|g| g.current_refresh.clone())
    }

    pub(crate) fn is_live_refresh_token(&self, token: &str) -> bool {
        self.refresh.get(token).is_some_and(|state| {
            state.status == RefreshStatus::Live
                && self.grants.get(state.grant).is_some_and(|g| !g.revoked)
        })
    }

    pub(crate) fn is_current_refresh_token(&self, token: &str) -> bool {
        self.is_live_refresh_token(token)
            && self
                .refresh
                .get(token)
                .and_then(|state| self.grants.get(state.grant))
                .is_some_and(|g| g.current_refresh.as_deref() == Some(token))
    }

    /// Revokes the grant behind an access or refresh token; false when unknown.
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        let grant = self
            .access
            .get(token)
            .map(|a| a.grant)
            .or_else(|| self.refresh.get(token).map(|r| r.grant));
        let Some(grant) = grant else { return false };
        if let Some(state) = self.grants.get_mut(grant) {
            state.revoked = true;
        }
        for state in self.refresh.values_mut() {
            if state.grant == grant {
                state.status = RefreshStatus::Revoked;
            }
        }
        true
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        for token in self.access.values_mut() {
            token.expired = true;
        }
    }

    /// What a bearer token is worth at `now`.
    pub(crate) fn check(&self, token: Option<&str>, now: f64) -> TokenCheck {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return TokenCheck::Missing;
        };
        let Some(access) = self.access.get(token) else {
            return TokenCheck::Unknown;
        };
        let Some(grant) = self.grants.get(access.grant) else {
            return TokenCheck::Unknown;
        };
        if grant.revoked {
            TokenCheck::Revoked
        } else if access.expired || now >= access.expires_at {
            TokenCheck::Expired
        } else {
            TokenCheck::Valid {
                user: grant.user,
                scopes: grant.scopes.clone(),
            }
        }
    }

    fn check_client(
        &self,
        app: &ClientApp,
        client: &ClientCredentials,
    ) -> Result<(), IdentityError> {
        let id = client
            .id
            .as_deref()
            .ok_or_else(|| IdentityError::missing("client_id"))?;
        if !id.eq_ignore_ascii_case(&app.client_id) {
            return Err(IdentityError::new(
                "unauthorized_client",
                700016,
                format!("Application with identifier '{id}' was not found in the directory."),
            ));
        }
        match client.secret.as_deref() {
            None | Some("") => Err(IdentityError::new(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
            Some(secret) if secret == app.client_secret => Ok(()),
            Some(_) => Err(IdentityError::new(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )),
        }
    }

    /// `POST /{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token(
        &mut self,
        app: &ClientApp,
        form: &HashMap<String, String>,
        client: &ClientCredentials,
        now: f64,
    ) -> Result<Issued, IdentityError> {
        let grant_type = required(form, "grant_type")?;
        match grant_type.as_str() {
            "authorization_code" => {
                self.check_client(app, client)?;
                self.redeem_code(app, form, now)
            }
            "refresh_token" => {
                self.check_client(app, client)?;
                self.redeem_refresh_token(app, form, now)
            }
            other => Err(IdentityError::new(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            )),
        }
    }

    fn redeem_code(
        &mut self,
        app: &ClientApp,
        form: &HashMap<String, String>,
        now: f64,
    ) -> Result<Issued, IdentityError> {
        let code = required(form, "code")?;
        let redirect_uri = required(form, "redirect_uri")?;
        let state = self
            .codes
            .get_mut(code)
            .ok_or_else(IdentityError::malformed)?;
        if state.used {
            return Err(IdentityError::new(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        // A code is good for one attempt, successful or not.
        state.used = true;
        if now >= state.expires_at {
            return Err(IdentityError::new(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ));
        }
        if *redirect_uri != state.redirect_uri {
            return Err(IdentityError::new(
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'redirect_uri' is not valid: it differs from the authorization request's.",
            ));
        }
        if let Some((challenge, method)) = &state.challenge {
            let verifier = required(form, "code_verifier")?;
            let computed = if method == "S256" {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
            } else {
                verifier.clone()
            };
            if computed != *challenge {
                return Err(IdentityError::new(
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        }
        let (user, mut scopes, mut offline) = (state.user, state.scopes.clone(), state.offline);
        if let Some(asked) = form.get("scope") {
            let asked = parse_scopes(asked, &app.default_scopes);
            offline |= holds(&asked, "offline_access");
            for scope in resource_scopes(&asked) {
                if !holds(&scopes, &scope) {
                    scopes.push(scope);
                }
            }
        }
        let (_, access, refresh) = self.create_grant(user, scopes.clone(), offline, now);
        Ok(Issued {
            access_token: access,
            refresh_token: refresh,
            scopes: resource_scopes(&scopes),
            expires_in: self.lifetime.as_secs(),
            refreshed: false,
        })
    }

    fn redeem_refresh_token(
        &mut self,
        app: &ClientApp,
        form: &HashMap<String, String>,
        now: f64,
    ) -> Result<Issued, IdentityError> {
        let token = required(form, "refresh_token")?;
        let state = self
            .refresh
            .get(token)
            .ok_or_else(IdentityError::malformed)?;
        let grant = state.grant;
        let revoked = self.grants.get(grant).is_none_or(|g| g.revoked);
        if revoked || state.status == RefreshStatus::Revoked {
            return Err(IdentityError::new(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
            ));
        }
        if state.status == RefreshStatus::Superseded {
            return Err(IdentityError::new(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired: this refresh token was replaced by the one issued when it was used.",
            ));
        }
        let granted = self.grant_scopes(grant);
        let scopes = match form.get("scope") {
            None => granted,
            Some(asked) => {
                let asked = resource_scopes(&parse_scopes(asked, &app.default_scopes));
                if let Some(extra) = asked.iter().find(|s| !holds(&granted, s)) {
                    return Err(IdentityError::new(
                        "invalid_grant",
                        65001,
                        format!(
                            "The user or administrator has not consented to use the application for the scope '{extra}'."
                        ),
                    ));
                }
                if asked.is_empty() { granted } else { asked }
            }
        };
        if self.rotation == RefreshRotation::RevokeOnUse
            && let Some(state) = self.refresh.get_mut(token)
        {
            state.status = RefreshStatus::Superseded;
        }
        let offline = self.grants.get(grant).is_some_and(|g| g.offline);
        let access = self.new_access_token(grant, now);
        let refresh = offline.then(|| self.new_refresh_token(grant));
        Ok(Issued {
            access_token: access,
            refresh_token: refresh,
            scopes,
            expires_in: self.lifetime.as_secs(),
            refreshed: true,
        })
    }

    /// `GET /{tenant}/oauth2/v2.0/authorize`: where to send the browser, or an error
    /// page when there is no safe place to send it.
    pub(crate) fn authorize(
        &mut self,
        app: &ClientApp,
        query: &HashMap<String, String>,
        now: f64,
    ) -> Result<url::Url, IdentityError> {
        let client_id = required(query, "client_id")?;
        if !client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(IdentityError::new(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            ));
        }
        let redirect_uri = required(query, "redirect_uri")?;
        let mut target = url::Url::parse(redirect_uri)
            .ok()
            .filter(is_loopback)
            .ok_or_else(|| {
                IdentityError::new(
                    "invalid_request",
                    50011,
                    "The redirect URI specified in the request does not match the redirect URIs configured for the application: the fake accepts http loopback addresses.",
                )
            })?;
        let refusal = if query.get("response_type").map(String::as_str) != Some("code") {
            Some((
                "unsupported_response_type",
                70015,
                "The requested response type is not supported.",
            ))
        } else if query.get("scope").is_none_or(|s| s.trim().is_empty()) {
            Some((
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            ))
        } else if self.deny_consent {
            Some((
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            ))
        } else {
            None
        };
        let challenge = match (
            query.get("code_challenge"),
            query.get("code_challenge_method").map(String::as_str),
        ) {
            (None, _) => Ok(None),
            (Some(c), None | Some("plain")) => Ok(Some((c.clone(), "plain".to_owned()))),
            (Some(c), Some("S256")) => Ok(Some((c.clone(), "S256".to_owned()))),
            (Some(_), Some(_)) => Err(()),
        };
        let code = match (refusal, challenge) {
            (Some(refusal), _) => Err(refusal),
            (None, Err(())) => Err((
                "invalid_request",
                501491,
                "Invalid code_challenge_method: S256 and plain are supported.",
            )),
            (None, Ok(challenge)) => {
                let scopes = parse_scopes(
                    query.get("scope").map_or("", String::as_str),
                    &app.default_scopes,
                );
                let code = self.random("0.AXfake-code.", 32);
                if self.codes.len() >= ACCESS_TOKENS_KEPT {
                    self.codes.retain(|_, c| !c.used && c.expires_at > now);
                }
                self.codes.insert(
                    code.clone(),
                    CodeState {
                        user: self.signed_in,
                        offline: holds(&scopes, "offline_access"),
                        scopes: resource_scopes(&scopes),
                        redirect_uri: redirect_uri.clone(),
                        challenge,
                        expires_at: now + CODE_LIFETIME_SECS,
                        used: false,
                    },
                );
                Ok(code)
            }
        };
        {
            let mut pairs = target.query_pairs_mut();
            match code {
                Ok(code) => {
                    pairs.append_pair("code", &code);
                }
                Err((error, number, description)) => {
                    pairs.append_pair("error", error);
                    pairs.append_pair(
                        "error_description",
                        &format!("AADSTS{number}: {description}"),
                    );
                }
            }
            if let Some(state) = query.get("state") {
                pairs.append_pair("state", state);
            }
        }
        Ok(target)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(domain)) => domain == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// Client credentials from HTTP Basic (`client_secret_basic`) or the form.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientCredentials {
    id: Option<String>,
    secret: Option<String>,
}

impl ClientCredentials {
    fn from_request(headers: &HeaderMap, form: &HashMap<String, String>) -> ClientCredentials {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|value| {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
            })
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                let (id, secret) = pair.split_once(':')?;
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((decode(id)?, decode(secret)?))
            });
        match basic {
            Some((id, secret)) => ClientCredentials {
                id: Some(id),
                secret: Some(secret),
            },
            None => ClientCredentials {
                id: form.get("client_id").cloned(),
                secret: form.get("client_secret").cloned(),
            },
        }
    }
}

/// The parameter `name` of a form or query, or `invalid_request` 900144.
fn required<'a>(
    parameters: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a String, IdentityError> {
    parameters
        .get(name)
        .ok_or_else(|| IdentityError::missing(name))
}

fn tenant_known(app: &ClientApp, tenant: &str) -> bool {
    ["common", "organizations", "consumers"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant))
        || tenant.eq_ignore_ascii_case(&app.tenant_id)
}

fn unknown_tenant(tenant: &str) -> IdentityError {
    IdentityError::new(
        "invalid_request",
        90002,
        format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."),
    )
}

/// A JSON answer of the identity platform: UTF-8 JSON that must not be cached.
fn no_store_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

fn correlation(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The token endpoint's handler.
pub(crate) async fn token_endpoint(
    State(graph): State<GraphHandle>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let correlation = correlation(&headers);
    let app = graph.client_app();
    if !tenant_known(&app, &tenant) {
        return unknown_tenant(&tenant).render(correlation.as_deref());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let client = ClientCredentials::from_request(&headers, &form);
    let result = graph.with_identity(|identity, now| identity.token(&app, &form, &client, now));
    match result {
        Ok(issued) => {
            graph.count_token_grant(issued.refreshed);
            let mut body = json!({
                "token_type": "Bearer",
                "scope": issued.scopes.join(" "),
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            });
            if let Some(refresh) = issued.refresh_token {
                body["refresh_token"] = json!(refresh);
            }
            let mut response = no_store_json(StatusCode::OK, &body);
            response
                .headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => {
            graph.count_token_error();
            error.render(correlation.as_deref())
        }
    }
}

/// The authorize endpoint's handler.
pub(crate) async fn authorize_endpoint(
    State(graph): State<GraphHandle>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let correlation = correlation(&headers);
    let app = graph.client_app();
    if !tenant_known(&app, &tenant) {
        return unknown_tenant(&tenant).render(correlation.as_deref());
    }
    let query: HashMap<String, String> = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    match graph.with_identity(|identity, now| identity.authorize(&app, &query, now)) {
        Ok(target) => match HeaderValue::from_str(target.as_str()) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => IdentityError::missing("redirect_uri").render(correlation.as_deref()),
        },
        Err(error) => error.render(correlation.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_lose_the_resource_prefix_and_default_expands() {
        let default = vec!["Mail.Read".to_owned(), "User.Read".to_owned()];
        assert_eq!(
            parse_scopes(
                "offline_access https://graph.microsoft.com/Mail.Read mail.read",
                &default
            ),
            vec!["offline_access", "Mail.Read"]
        );
        assert_eq!(
            parse_scopes("https://graph.microsoft.com/.default", &default),
            default
        );
    }

    #[test]
    fn the_error_body_has_the_identity_platform_fields() {
        let body = IdentityError::new("invalid_grant", 70008, "expired").body(Some("corr-1"));
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_codes"], json!([70008]));
        assert_eq!(body["correlation_id"], "corr-1");
        assert!(body["trace_id"].as_str().is_some_and(|t| t.len() == 36));
        let description = body["error_description"].as_str().unwrap_or("");
        assert!(
            description.starts_with("AADSTS70008: expired\r\nTrace ID: "),
            "{description}"
        );
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

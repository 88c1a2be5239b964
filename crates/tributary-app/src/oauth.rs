//! The OAuth 2.0 authorization-code flow (RFC 6749 §4.1) with PKCE (RFC 7636), driven
//! by an integration's manifest (`oauth`: endpoints, scopes, extra parameters, the
//! credential field names), without the front end's part:
//!
//! 1. [`start`] (or [`App::oauth_start`]): the consent URL for a redirect URI the front
//!    end serves, with an `S256` challenge and a random `state`. The front end sends
//!    the user's browser there and keeps the [`PendingAuthorization`].
//! 2. The browser comes back to the redirect URI with `code` and `state`; the front
//!    end checks that `state` is [`PendingAuthorization::state`] (a loopback listener
//!    for the CLI, a callback route for an HTTP API).
//! 3. [`finish`] (or [`App::oauth_finish`]): exchanges the code and the PKCE verifier at
//!    the token endpoint and builds the account's credentials under the manifest's
//!    field names: client id, client secret, refresh token, and the access token when
//!    the manifest declares a field for it. They link with [`App::link`].
//!
//! No token or secret appears in an error or in `Debug`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tributary_sdk::kit::bearer::ACCESS_TOKEN;
use tributary_sdk::manifest::OAuthCredentialFields;
use tributary_sdk::{Credentials, IntegrationError, Registry};

use crate::App;
use crate::error::AppError;

/// Why a step of the OAuth flow failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The integration's manifest declares no OAuth flow: its credentials are given
    /// directly.
    #[error("{name} does not use OAuth; link it with its credentials ({}) directly", fields.join(", "))]
    NotOAuth {
        /// The integration's display name.
        name: String,
        /// Its domain.
        domain: String,
        /// Its credential fields.
        fields: Vec<String>,
    },
    /// The OAuth client's id or secret is empty.
    #[error("the OAuth client {0} must not be empty")]
    EmptyClient(ClientField),
    /// An endpoint (from the manifest or an override) does not parse.
    #[error("the {endpoint} url `{url}` is not a URL")]
    BadUrl {
        /// `authorization` or `token`.
        endpoint: &'static str,
        /// The text given.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client: {0}")]
    Http(IntegrationError),
    /// The token endpoint could not be reached.
    #[error("failed to reach the token endpoint {url}: {source}")]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// What the HTTP client reported.
        source: IntegrationError,
    },
    /// The token endpoint refused the code (RFC 6749 §5.2: `error` and its
    /// description, or the HTTP status).
    #[error("the token endpoint refused the authorization code: {0}")]
    Refused(String),
    /// The token endpoint's answer does not decode.
    #[error("the token endpoint's answer is not a token response: {0}")]
    BadResponse(String),
    /// The token endpoint granted no refresh token (the service remembered an earlier
    /// grant).
    #[error(
        "the token endpoint returned no refresh token; revoke Tributary's access in your {name} account and authorize again"
    )]
    NoRefreshToken {
        /// The integration's display name.
        name: String,
    },
}

/// Which half of the OAuth client is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientField {
    /// The client id.
    Id,
    /// The client secret.
    Secret,
}

impl std::fmt::Display for ClientField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientField::Id => "id",
            ClientField::Secret => "secret",
        })
    }
}

/// The OAuth client registered with the service (for Google, a client of the
/// operator's Cloud project).
#[derive(Clone)]
pub struct OAuthClient {
    /// The client id.
    pub id: String,
    /// The client secret.
    pub secret: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Replacements for the manifest's endpoints and scopes (a self-hosted service, a
/// fake, a narrower grant). Empty: the manifest's.
#[derive(Debug, Clone, Default)]
pub struct FlowOverrides {
    /// The authorization endpoint.
    pub authorization_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
}

/// A started authorization, waiting for the browser to come back with a code.
pub struct PendingAuthorization {
    name: String,
    consent_url: url::Url,
    state: String,
    verifier: String,
    token_url: url::Url,
    redirect_uri: String,
    client: OAuthClient,
    fields: OAuthCredentialFields,
    access_token_field: bool,
    /// Whether a grant without a refresh token is an error (a service whose tokens
    /// do not expire unless rotation is on, like Slack's, may grant none).
    refresh_token_required: bool,
    /// Where in the token endpoint's answer the tokens are (the manifest's
    /// `oauth.tokenField`).
    token_field: Option<String>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("integration", &self.name)
            .field("token_url", &self.token_url.as_str())
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl PendingAuthorization {
    /// Where to send the user's browser.
    pub fn consent_url(&self) -> &url::Url {
        &self.consent_url
    }

    /// The `state` the redirect must carry back: a redirect with another one is not
    /// the answer to this request.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The redirect URI the flow was started with.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The integration's display name.
    pub fn integration_name(&self) -> &str {
        &self.name
    }
}

/// A finished authorization.
#[derive(Debug)]
pub struct Authorized {
    /// The account's credentials under the manifest's field names, ready to link.
    pub credentials: Credentials,
    /// The scopes the service granted, when it says.
    pub scope: Option<String>,
}

/// Starts the flow of `domain` (see the module docs) for a browser coming back to
/// `redirect_uri`.
pub fn start(
    registry: &Registry,
    domain: &str,
    client: OAuthClient,
    overrides: &FlowOverrides,
    redirect_uri: &str,
) -> Result<PendingAuthorization, AppError> {
    let manifest = &registry.get(domain)?.manifest;
    let Some(oauth) = &manifest.oauth else {
        return Err(OAuthError::NotOAuth {
            name: manifest.name.clone(),
            domain: manifest.domain.clone(),
            fields: manifest
                .credentials
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        }
        .into());
    };
    if client.id.trim().is_empty() {
        return Err(OAuthError::EmptyClient(ClientField::Id).into());
    }
    if client.secret.trim().is_empty() {
        return Err(OAuthError::EmptyClient(ClientField::Secret).into());
    }
    let parse = |endpoint, url: &str| {
        url::Url::parse(url).map_err(|source| OAuthError::BadUrl {
            endpoint,
            url: url.to_owned(),
            source,
        })
    };
    let token_url = parse(
        "token",
        overrides.token_url.as_deref().unwrap_or(&oauth.token_url),
    )?;
    let mut consent_url = parse(
        "authorization",
        overrides
            .authorization_url
            .as_deref()
            .unwrap_or(&oauth.authorization_url),
    )?;
    let scopes = if overrides.scopes.is_empty() {
        &oauth.scopes
    } else {
        &overrides.scopes
    };
    let (verifier, challenge) = pkce_pair();
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    consent_url
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair(&oauth.scope_parameter, &scopes.join(&oauth.scope_separator))
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(&oauth.authorization_params);
    Ok(PendingAuthorization {
        name: manifest.name.clone(),
        consent_url,
        state,
        verifier,
        token_url,
        redirect_uri: redirect_uri.to_owned(),
        client,
        fields: oauth.credential_fields.clone(),
        access_token_field: manifest.credentials.iter().any(|c| c.name == ACCESS_TOKEN),
        refresh_token_required: manifest
            .credentials
            .iter()
            .find(|c| c.name == oauth.credential_fields.refresh_token)
            .is_none_or(|c| c.required),
        token_field: oauth.token_field.clone(),
    })
}

/// Finishes the flow with the `code` the browser brought back (its `state` already
/// checked against [`PendingAuthorization::state`]).
pub async fn finish(pending: PendingAuthorization, code: &str) -> Result<Authorized, AppError> {
    let tokens = exchange_code(&pending, code).await?;
    let refresh_token = tokens.refresh_token.filter(|t| !t.is_empty());
    if refresh_token.is_none() && pending.refresh_token_required {
        return Err(OAuthError::NoRefreshToken { name: pending.name }.into());
    }
    let mut credentials = Credentials::default();
    credentials.set(pending.fields.client_id, pending.client.id);
    credentials.set(pending.fields.client_secret, pending.client.secret);
    if let Some(refresh_token) = refresh_token {
        credentials.set(pending.fields.refresh_token, refresh_token);
    }
    if pending.access_token_field {
        credentials.set(ACCESS_TOKEN, tokens.access_token);
    }
    Ok(Authorized {
        credentials,
        scope: tokens.scope,
    })
}

impl App {
    /// [`start`] with this application's registry.
    pub fn oauth_start(
        &self,
        domain: &str,
        client: OAuthClient,
        overrides: &FlowOverrides,
        redirect_uri: &str,
    ) -> Result<PendingAuthorization, AppError> {
        start(&self.registry, domain, client, overrides, redirect_uri)
    }

    /// [`finish`].
    pub async fn oauth_finish(
        &self,
        pending: PendingAuthorization,
        code: &str,
    ) -> Result<Authorized, AppError> {
        finish(pending, code).await
    }
}

/// A PKCE verifier and its `S256` challenge.
fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    (verifier.clone(), s256(&verifier))
}

/// The `S256` challenge of a verifier.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// The token endpoint's error (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

async fn exchange_code(
    pending: &PendingAuthorization,
    code: &str,
) -> Result<TokenResponse, OAuthError> {
    let http = tributary_sdk::http::HttpClient::new().map_err(OAuthError::Http)?;
    let request = http.post(pending.token_url.clone()).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("client_id", pending.client.id.as_str()),
        ("client_secret", pending.client.secret.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ]);
    let response = http
        .send(request)
        .await
        .map_err(|source| OAuthError::Unreachable {
            url: pending.token_url.to_string(),
            source,
        })?;
    if !response.status.is_success() {
        let detail = match serde_json::from_slice::<TokenError>(&response.body) {
            Ok(e) => match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            },
            Err(_) => format!("status {}", response.status.as_u16()),
        };
        return Err(OAuthError::Refused(detail));
    }
    let body: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| OAuthError::BadResponse(e.to_string()))?;
    // Slack answers a refused code with 200 and `{"ok": false, "error": ...}`.
    if body.get("ok") == Some(&serde_json::Value::Bool(false)) {
        let error = body.get("error").and_then(serde_json::Value::as_str);
        return Err(OAuthError::Refused(error.unwrap_or("ok: false").to_owned()));
    }
    let tokens = match &pending.token_field {
        Some(field) => body.get(field).cloned().ok_or_else(|| {
            OAuthError::BadResponse(format!("the answer has no `{field}` object"))
        })?,
        None => body,
    };
    serde_json::from_value(tokens).map_err(|e| OAuthError::BadResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(challenge, s256(&verifier));
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

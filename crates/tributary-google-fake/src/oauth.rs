//! Google's OAuth 2.0 endpoints, as far as an installed app uses them.
//!
//! - `GET /authorize` (also at Google's path `/o/oauth2/v2/auth`): the user "consents"
//!   at once; the browser is sent back to the loopback `redirect_uri` with `code` and
//!   `state` (or `error=access_denied` when a test says the user declined).
//! - `POST /token` (form-encoded, RFC 6749 §4.1.3 and §6): `authorization_code` with
//!   PKCE (RFC 7636, `S256` or `plain`) and `refresh_token`. Client credentials come in
//!   the form or as HTTP Basic. Answers `{access_token, expires_in, scope,
//!   token_type: "Bearer"}` (plus `refresh_token` for a code); errors are RFC 6749
//!   §5.2 bodies: `invalid_request`, `invalid_client` (401), `invalid_grant`,
//!   `unsupported_grant_type`.
//! - `POST /revoke` (`token=` in the form or the query): revokes the grant, that is
//!   the refresh token and every access token issued from it.
//!
//! Access tokens expire after a configurable lifetime measured on Tokio's clock, so
//! tests can move time with `tokio::time::pause`/`advance` as well as with the hooks.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tokio::time::Instant;

/// How long an authorization code stays redeemable.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// An RFC 6749 §5.2 error from the token (or revocation) endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status (401 for `invalid_client`, else 400).
    pub status: StatusCode,
    /// The RFC 6749 error code.
    pub error: &'static str,
    /// The `error_description`.
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        (
            self.status,
            [("content-type", "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }
}

#[derive(Debug, Clone)]
struct AccessGrant {
    expires_at: Instant,
    refresh_token: Option<String>,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    redirect_uri: String,
    challenge: Option<(String, String)>,
    expires_at: Instant,
}

/// A successful token response.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The refresh token, for an authorization code grant.
    pub refresh_token: Option<String>,
}

/// The authorization server's state.
#[derive(Debug)]
pub struct TokenStore {
    client_id: String,
    client_secret: String,
    scope: String,
    lifetime: Duration,
    refresh_tokens: HashMap<String, bool>,
    access_tokens: HashMap<String, AccessGrant>,
    codes: HashMap<String, CodeGrant>,
    deny_consent: bool,
    rng: StdRng,
}

impl TokenStore {
    /// A server that knows one client and one refresh token.
    pub fn new(
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        scope: &str,
        lifetime: Duration,
        seed: u64,
    ) -> TokenStore {
        TokenStore {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            scope: scope.to_owned(),
            lifetime,
            refresh_tokens: HashMap::from([(refresh_token.to_owned(), true)]),
            access_tokens: HashMap::new(),
            codes: HashMap::new(),
            deny_consent: false,
            rng: StdRng::seed_from_u64(seed ^ 0x006f_6175_7468),
        }
    }

    /// The granted scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    fn random_token(&mut self, prefix: &str, bytes: usize) -> String {
        let raw: Vec<u8> = (0..bytes).map(|_| self.rng.random::<u8>()).collect();
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Whether `token` is a live access token.
    pub fn is_valid(&self, token: &str) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|grant| Instant::now() < grant.expires_at)
    }

    /// Issues an access token (for the refresh token `refresh`, if any).
    pub fn issue_access_token(&mut self, refresh: Option<&str>) -> IssuedToken {
        let now = Instant::now();
        if self.access_tokens.len() > 10_000 {
            self.access_tokens.retain(|_, grant| grant.expires_at > now);
        }
        let token = self.random_token("ya29.fake-", 32);
        self.access_tokens.insert(
            token.clone(),
            AccessGrant {
                expires_at: now + self.lifetime,
                refresh_token: refresh.map(str::to_owned),
            },
        );
        IssuedToken {
            access_token: token,
            expires_in: self.lifetime.as_secs(),
            refresh_token: None,
        }
    }

    /// Issues a new refresh token.
    pub fn issue_refresh_token(&mut self) -> String {
        let token = self.random_token("1//fake-", 32);
        self.refresh_tokens.insert(token.clone(), true);
        token
    }

    /// Revokes a refresh token and the access tokens issued from it. Returns whether it
    /// was live (known and not yet revoked).
    pub fn revoke_refresh_token(&mut self, token: &str) -> bool {
        match self.refresh_tokens.get_mut(token) {
            Some(live) if *live => *live = false,
            _ => return false,
        }
        self.access_tokens
            .retain(|_, grant| grant.refresh_token.as_deref() != Some(token));
        true
    }

    /// Makes every access token issued so far expired.
    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for grant in self.access_tokens.values_mut() {
            grant.expires_at = grant.expires_at.min(now);
        }
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    /// Makes `/authorize` answer `access_denied` (or consent again).
    pub fn set_deny_consent(&mut self, deny: bool) {
        self.deny_consent = deny;
    }

    fn check_client(&self, client: &ClientCredentials) -> Result<(), OAuthError> {
        match (&client.id, &client.secret) {
            (Some(id), _) if *id != self.client_id => Err(OAuthError::new(
                "invalid_client",
                "the oauth client was not found",
            )),
            (Some(_), Some(secret)) if *secret == self.client_secret => Ok(()),
            (None, _) => Err(OAuthError::new("invalid_client", "no client id was given")),
            _ => Err(OAuthError::new(
                "invalid_client",
                "client authentication failed",
            )),
        }
    }

    /// `POST /token`.
    pub fn token(
        &mut self,
        form: &HashMap<String, String>,
        client: &ClientCredentials,
    ) -> Result<IssuedToken, OAuthError> {
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::new("invalid_request", "missing grant_type"))?;
        match grant_type.as_str() {
            "refresh_token" => {
                self.check_client(client)?;
                let refresh = form
                    .get("refresh_token")
                    .ok_or_else(|| OAuthError::new("invalid_request", "missing refresh_token"))?;
                if self.refresh_tokens.get(refresh) != Some(&true) {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "the refresh token is expired, revoked or unknown",
                    ));
                }
                Ok(self.issue_access_token(Some(refresh)))
            }
            "authorization_code" => {
                self.check_client(client)?;
                let code = form
                    .get("code")
                    .ok_or_else(|| OAuthError::new("invalid_request", "missing code"))?;
                // A code is good for one attempt, successful or not.
                let grant = self
                    .codes
                    .remove(code)
                    .filter(|grant| Instant::now() < grant.expires_at)
                    .ok_or_else(|| {
                        OAuthError::new("invalid_grant", "the code is unknown, used or expired")
                    })?;
                if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                    return Err(OAuthError::new("invalid_grant", "redirect_uri mismatch"));
                }
                if let Some((challenge, method)) = &grant.challenge {
                    let verifier = form
                        .get("code_verifier")
                        .ok_or_else(|| OAuthError::new("invalid_grant", "missing code verifier"))?;
                    let computed = if method == "S256" {
                        URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
                    } else {
                        verifier.clone()
                    };
                    if computed != *challenge {
                        return Err(OAuthError::new(
                            "invalid_grant",
                            "the code verifier does not match the challenge",
                        ));
                    }
                }
                let refresh = self.issue_refresh_token();
                let mut issued = self.issue_access_token(Some(&refresh));
                issued.refresh_token = Some(refresh);
                Ok(issued)
            }
            other => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant type {other} is not supported"),
            )),
        }
    }

    /// `GET /authorize`: the URL to redirect the browser to, or an error to show when
    /// there is no safe place to redirect to.
    pub fn authorize(&mut self, query: &HashMap<String, String>) -> Result<url::Url, OAuthError> {
        let client_id = query
            .get("client_id")
            .ok_or_else(|| OAuthError::new("invalid_request", "missing client_id"))?;
        if *client_id != self.client_id {
            return Err(OAuthError::new(
                "invalid_client",
                "the oauth client was not found",
            ));
        }
        let redirect_uri = query
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::new("invalid_request", "missing redirect_uri"))?;
        let mut target = url::Url::parse(redirect_uri)
            .ok()
            .filter(is_loopback)
            .ok_or_else(|| {
                OAuthError::new(
                    "redirect_uri_mismatch",
                    "redirect_uri must be an http loopback address",
                )
            })?;
        let state = query.get("state").cloned();
        let error = if query.get("response_type").map(String::as_str) != Some("code") {
            Some("unsupported_response_type")
        } else if self.deny_consent {
            Some("access_denied")
        } else {
            None
        };
        let challenge = match (
            query.get("code_challenge"),
            query.get("code_challenge_method").map(String::as_str),
        ) {
            (None, _) => Ok(None),
            (Some(challenge), None | Some("plain")) => {
                Ok(Some((challenge.clone(), "plain".to_owned())))
            }
            (Some(challenge), Some("S256")) => Ok(Some((challenge.clone(), "S256".to_owned()))),
            (Some(_), Some(_)) => Err("invalid_request"),
        };
        {
            let mut pairs = target.query_pairs_mut();
            match (error, challenge) {
                (Some(error), _) | (None, Err(error)) => {
                    pairs.append_pair("error", error);
                }
                (None, Ok(challenge)) => {
                    let code = format!(
                        "4/fake-{}",
                        URL_SAFE_NO_PAD.encode(self.rng.random::<[u8; 24]>())
                    );
                    self.codes.insert(
                        code.clone(),
                        CodeGrant {
                            redirect_uri: redirect_uri.clone(),
                            challenge,
                            expires_at: Instant::now() + CODE_LIFETIME,
                        },
                    );
                    pairs.append_pair("code", &code);
                    pairs.append_pair("scope", &self.scope);
                }
            }
            if let Some(state) = &state {
                pairs.append_pair("state", state);
            }
        }
        Ok(target)
    }

    /// `POST /revoke`: revokes the grant behind a refresh or access token.
    pub fn revoke(&mut self, token: &str) -> Result<(), OAuthError> {
        if self.revoke_refresh_token(token) {
            return Ok(());
        }
        match self.access_tokens.remove(token) {
            Some(grant) => {
                if let Some(refresh) = grant.refresh_token {
                    self.revoke_refresh_token(&refresh);
                }
                Ok(())
            }
            None => Err(OAuthError::new(
                "invalid_token",
                "the token is expired or revoked",
            )),
        }
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

/// Client credentials from the form (`client_secret_post`) or from HTTP Basic
/// (`client_secret_basic`, RFC 6749 §2.3.1).
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// The client id, from HTTP Basic or the form.
    pub id: Option<String>,
    /// The client secret, from HTTP Basic or the form.
    pub secret: Option<String>,
}

impl ClientCredentials {
    /// Reads them from an `Authorization: Basic` value and the form.
    pub fn from_request(
        authorization: Option<&str>,
        form: &HashMap<String, String>,
    ) -> ClientCredentials {
        let basic = authorization
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

/// SHA-256 (FIPS 180-4), for PKCE's `S256`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vectors() {
        let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Longer than one block.
        assert_eq!(
            hex(sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_client_credentials_are_read() {
        let value = format!("Basic {}", STANDARD.encode("my%20client:s3cret"));
        let credentials = ClientCredentials::from_request(Some(&value), &HashMap::new());
        assert_eq!(credentials.id.as_deref(), Some("my client"));
        assert_eq!(credentials.secret.as_deref(), Some("s3cret"));
    }
}

/// The credentials a client of a fake needs: its OAuth client and a refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct TestCredentials {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// A refresh token the fake accepts.
    pub refresh_token: String,
}

impl std::fmt::Debug for TestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

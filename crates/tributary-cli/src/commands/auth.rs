//! `tributary auth <domain>`: the OAuth 2.0 flow for installed apps (RFC 8252) of any
//! integration whose manifest declares one (`oauth`: endpoints, scopes, extra
//! parameters), producing a credentials file for `tributary link <domain>`.
//!
//! 1. Listen on `127.0.0.1` at a free port: the loopback redirect URI.
//! 2. Print the consent URL, with a PKCE `S256` challenge (RFC 7636) and a random
//!    `state`. Nothing is launched: the user opens it in any browser on this machine.
//! 3. The browser comes back to the listener with `code` and `state`; a `state` that
//!    does not match ends the flow (it is not our request).
//! 4. Exchange the code and the PKCE verifier at the token endpoint.
//! 5. Write the client id, client secret and refresh token (and the access token, when
//!    the manifest has a field for it) under the manifest's credential field names, to
//!    a file created with mode 0600. No token is ever printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tributary_sdk::Manifest;
use tributary_sdk::kit::bearer::ACCESS_TOKEN;
use tributary_sdk::manifest::OAuthEndpoints;

use crate::app::GlobalArgs;

/// `tributary auth <domain>`
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The integration to authorize (see `tributary integrations`); its manifest
    /// gives the endpoints and scopes.
    pub domain: String,
    /// OAuth client id of your app registered with the service (for Google, a
    /// "Desktop app" client of your Google Cloud project).
    #[arg(long, env = "TRIBUTARY_OAUTH_CLIENT_ID")]
    pub client_id: String,
    /// OAuth client secret of that client.
    #[arg(long, env = "TRIBUTARY_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// The authorization endpoint (default: the manifest's).
    #[arg(long)]
    pub auth_url: Option<String>,
    /// The token endpoint (default: the manifest's).
    #[arg(long)]
    pub token_url: Option<String>,
    /// A scope to ask for, instead of the manifest's (repeat for several).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Where to write the credentials (created with mode 0600, replaced if present;
    /// default `<domain>-credentials.json`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How long to wait for the browser to come back, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
}

/// The flow's parameters: the manifest's, overridden by the flags.
struct Flow<'a> {
    manifest: &'a Manifest,
    oauth: &'a OAuthEndpoints,
    auth_url: String,
    token_url: String,
    scopes: Vec<String>,
}

/// Runs `tributary auth <domain>`.
pub async fn run(global: &GlobalArgs, args: AuthArgs) -> Result<()> {
    let registry = crate::app::registry()?;
    let manifest = &registry.get(&args.domain)?.manifest;
    let Some(oauth) = &manifest.oauth else {
        let fields: Vec<&str> = manifest
            .credentials
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        bail!(
            "{} does not use OAuth; give its credentials ({}) to `tributary link {}` directly",
            manifest.name,
            fields.join(", "),
            manifest.domain
        );
    };
    let flow = Flow {
        manifest,
        oauth,
        auth_url: args
            .auth_url
            .clone()
            .unwrap_or_else(|| oauth.authorization_url.clone()),
        token_url: args
            .token_url
            .clone()
            .unwrap_or_else(|| oauth.token_url.clone()),
        scopes: if args.scopes.is_empty() {
            oauth.scopes.clone()
        } else {
            args.scopes.clone()
        },
    };
    authorize(global, &args, &flow).await
}

/// A PKCE verifier and its `S256` challenge.
fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The consent URL.
fn consent_url(
    args: &AuthArgs,
    flow: &Flow<'_>,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<url::Url> {
    let mut url = url::Url::parse(&flow.auth_url)
        .with_context(|| format!("the authorization url `{}` is not a URL", flow.auth_url))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &flow.scopes.join(" "))
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(&flow.oauth.authorization_params);
    Ok(url)
}

async fn authorize(global: &GlobalArgs, args: &AuthArgs, flow: &Flow<'_>) -> Result<()> {
    for (flag, value) in [
        ("--client-id", &args.client_id),
        ("--client-secret", &args.client_secret),
    ] {
        if value.trim().is_empty() {
            bail!("{flag} must not be empty");
        }
    }
    let token_url = url::Url::parse(&flow.token_url)
        .with_context(|| format!("the token url `{}` is not a URL", flow.token_url))?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("failed to listen on a loopback port for the redirect")?;
    let port = listener
        .local_addr()
        .context("failed to read the redirect listener's address")?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let (verifier, challenge) = pkce_pair();
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let url = consent_url(args, flow, &redirect_uri, &state, &challenge)?;

    eprintln!("Open this address in a browser on this machine and allow access:\n");
    eprintln!("{url}\n");
    eprintln!(
        "Waiting for the browser to come back to {redirect_uri} (up to {} s; Ctrl-C to cancel)...",
        args.timeout_seconds
    );
    let code = wait_for_code(listener, &state, Duration::from_secs(args.timeout_seconds)).await?;

    let tokens = exchange_code(args, token_url, &code, &redirect_uri, &verifier).await?;
    let Some(refresh_token) = tokens.refresh_token.filter(|t| !t.is_empty()) else {
        bail!(
            "the token endpoint returned no refresh token; revoke Tributary's access in your {} account and authorize again",
            flow.manifest.name
        );
    };
    let fields = &flow.oauth.credential_fields;
    let mut credentials = serde_json::Map::new();
    credentials.insert(fields.client_id.clone(), args.client_id.clone().into());
    credentials.insert(
        fields.client_secret.clone(),
        args.client_secret.clone().into(),
    );
    credentials.insert(fields.refresh_token.clone(), refresh_token.into());
    if flow
        .manifest
        .credentials
        .iter()
        .any(|c| c.name == ACCESS_TOKEN)
    {
        credentials.insert(ACCESS_TOKEN.to_owned(), tokens.access_token.into());
    }
    let domain = &flow.manifest.domain;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{domain}-credentials.json")));
    write_private(&out, &serde_json::Value::Object(credentials))?;
    if global.json {
        crate::output::print_json(&serde_json::json!({
            "credentials_file": out,
            "scope": tokens.scope,
        }))?;
    } else {
        println!(
            "wrote {} credentials to {} (mode 0600)",
            flow.manifest.name,
            out.display()
        );
        println!(
            "link them with: tributary link {domain} --user <user id> --credentials {}",
            out.display()
        );
    }
    Ok(())
}

/// What the loopback listener heard from the browser.
enum Redirect {
    /// The authorization code.
    Code(String),
    /// The authorization server's error (`access_denied`, ...).
    Denied(String),
    /// A request carrying another `state`: not the answer to our request.
    WrongState,
}

/// Serves the loopback redirect until the browser brings a code (or an error), or the
/// timeout passes. Stray requests (`/favicon.ico`, idle pre-connections) are answered
/// and ignored.
async fn wait_for_code(listener: TcpListener, state: &str, timeout: Duration) -> Result<String> {
    let (tx, mut rx) = mpsc::channel::<Redirect>(4);
    let state = state.to_owned();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (tx, state) = (tx.clone(), state.clone());
            tokio::spawn(async move {
                if let Ok(Ok(Some(redirect))) =
                    tokio::time::timeout(Duration::from_secs(10), answer(stream, &state)).await
                {
                    let _ = tx.send(redirect).await;
                }
            });
        }
    });
    let outcome = tokio::time::timeout(timeout, rx.recv()).await;
    server.abort();
    match outcome {
        Err(_) => bail!("no answer from the browser within {} s", timeout.as_secs()),
        Ok(None) => bail!("the redirect listener stopped unexpectedly"),
        Ok(Some(Redirect::Code(code))) => Ok(code),
        Ok(Some(Redirect::Denied(error))) => bail!("authorization was not granted: {error}"),
        Ok(Some(Redirect::WrongState)) => {
            bail!("the redirect carried an unexpected state parameter; authorization aborted")
        }
    }
}

/// Reads one request, answers it with a small page, and says what it carried.
async fn answer(mut stream: TcpStream, state: &str) -> std::io::Result<Option<Redirect>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/" {
        respond(&mut stream, "404 Not Found", "Not found.").await?;
        return Ok(None);
    }
    let mut code = None;
    let mut error = None;
    let mut got_state = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "state" => got_state = Some(value.into_owned()),
            _ => {}
        }
    }
    let redirect = if got_state.as_deref() != Some(state) {
        respond(
            &mut stream,
            "400 Bad Request",
            "This request did not come from Tributary's authorization; it was ignored.",
        )
        .await?;
        if code.is_none() && error.is_none() {
            return Ok(None);
        }
        Redirect::WrongState
    } else if let Some(error) = error {
        respond(
            &mut stream,
            "200 OK",
            "Authorization was not granted. You can close this tab.",
        )
        .await?;
        Redirect::Denied(error)
    } else if let Some(code) = code {
        respond(
            &mut stream,
            "200 OK",
            "Tributary is authorized. You can close this tab and return to the terminal.",
        )
        .await?;
        Redirect::Code(code)
    } else {
        respond(
            &mut stream,
            "400 Bad Request",
            "The redirect carried neither a code nor an error.",
        )
        .await?;
        return Ok(None);
    };
    Ok(Some(redirect))
}

async fn respond(stream: &mut TcpStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tributary</title></head><body><p>{message}</p></body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
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
    args: &AuthArgs,
    token_url: url::Url,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse> {
    let http = tributary_sdk::http::HttpClient::new()
        .map_err(|e| anyhow::anyhow!("failed to build the HTTP client: {e}"))?;
    let request = http.post(token_url.clone()).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", args.client_id.as_str()),
        ("client_secret", args.client_secret.as_str()),
        ("code_verifier", verifier),
    ]);
    let response = http
        .send(request)
        .await
        .map_err(|e| anyhow::anyhow!("failed to reach the token endpoint {token_url}: {e}"))?;
    if !response.status.is_success() {
        let detail = match serde_json::from_slice::<TokenError>(&response.body) {
            Ok(e) => match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            },
            Err(_) => format!("status {}", response.status.as_u16()),
        };
        bail!("the token endpoint refused the authorization code: {detail}");
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| anyhow::anyhow!("the token endpoint's answer is not a token response: {e}"))
}

/// Writes JSON to `path`, readable by the owner only.
fn write_private(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("failed to encode the credentials")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        // A file that existed keeps its mode on open: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).with_context(
                || format!("failed to restrict the permissions of {}", path.display()),
            )?;
        }
    }
    use std::io::Write as _;
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        );
        // RFC 7636 appendix B.
        let rfc = URL_SAFE_NO_PAD.encode(Sha256::digest(
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(rfc, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}

//! `tributary auth <domain>`: the OAuth 2.0 flow for installed apps (RFC 8252) of any
//! integration whose manifest declares one, producing a credentials file for
//! `tributary link <domain>`. The flow itself (consent URL with PKCE, code exchange,
//! credentials under the manifest's field names) is the App's
//! ([`tributary_app::oauth`]); this command adds the loopback listener and the output:
//!
//! 1. Listen on `127.0.0.1` at a free port: the loopback redirect URI.
//! 2. Print the consent URL. Nothing is launched: the user opens it in any browser on
//!    this machine.
//! 3. The browser comes back to the listener with `code` and `state`; a `state` that
//!    does not match ends the flow (it is not our request).
//! 4. The App exchanges the code; the credentials are written to a file created with
//!    mode 0600. No token is ever printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tributary_app::AppError;
use tributary_app::oauth::{self, ClientField, FlowOverrides, OAuthClient, OAuthError};

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
    /// The loopback port of the redirect URI `http://127.0.0.1:<port>/` (0: any free
    /// port; services that match redirect URIs exactly, like Slack, need the
    /// registered one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Runs `tributary auth <domain>`.
pub async fn run(global: &GlobalArgs, args: AuthArgs) -> Result<()> {
    let registry = crate::app::registry()?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| {
            format!(
                "failed to listen on loopback port {} for the redirect",
                args.port
            )
        })?;
    let port = listener
        .local_addr()
        .context("failed to read the redirect listener's address")?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let client = OAuthClient {
        id: args.client_id.clone(),
        secret: args.client_secret.clone(),
    };
    let overrides = FlowOverrides {
        authorization_url: args.auth_url.clone(),
        token_url: args.token_url.clone(),
        scopes: args.scopes.clone(),
    };
    let pending = oauth::start(&registry, &args.domain, client, &overrides, &redirect_uri)
        .map_err(cli_error)?;
    let name = pending.integration_name().to_owned();

    eprintln!("Open this address in a browser on this machine and allow access:\n");
    eprintln!("{}\n", pending.consent_url());
    eprintln!(
        "Waiting for the browser to come back to {redirect_uri} (up to {} s; Ctrl-C to cancel)...",
        args.timeout_seconds
    );
    let code = wait_for_code(
        listener,
        pending.state(),
        Duration::from_secs(args.timeout_seconds),
    )
    .await?;
    let authorized = oauth::finish(pending, &code).await?;

    let domain = &args.domain;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{domain}-credentials.json")));
    write_private(
        &out,
        &serde_json::Value::Object(authorized.credentials.as_map().clone()),
    )?;
    if global.json {
        crate::output::print_json(&serde_json::json!({
            "credentials_file": out,
            "scope": authorized.scope,
        }))?;
    } else {
        println!("wrote {name} credentials to {} (mode 0600)", out.display());
        println!(
            "link them with: tributary link {domain} --user <user id> --credentials {}",
            out.display()
        );
    }
    Ok(())
}

/// The App's errors in the words of this command (its flags, `tributary link`).
fn cli_error(error: AppError) -> anyhow::Error {
    match error {
        AppError::OAuth(OAuthError::NotOAuth {
            name,
            domain,
            fields,
        }) => anyhow::anyhow!(
            "{name} does not use OAuth; give its credentials ({}) to `tributary link {domain}` directly",
            fields.join(", ")
        ),
        AppError::OAuth(OAuthError::EmptyClient(field)) => {
            let flag = match field {
                ClientField::Id => "--client-id",
                ClientField::Secret => "--client-secret",
            };
            anyhow::anyhow!("{flag} must not be empty")
        }
        other => other.into(),
    }
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

//! What every command shares: the database and key options, opening (and migrating)
//! the store, the integration registry, and the shutdown signal.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tributary_sdk::Registry;
use tributary_store::{Cipher, KeySource, Store, StoreError};

/// The database used when neither `--database-url` nor `DATABASE_URL` names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tributary.db";

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database URL: `sqlite://PATH` (embedded, created when missing) or `postgres://...`
    /// [default: sqlite://tributary.db].
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// File holding the credentials encryption key (created with mode 0600 on first
    /// use) when TRIBUTARY_SECRET_KEY is not set
    /// [default: ~/.config/tributary/secret.key].
    #[arg(long, env = "TRIBUTARY_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of tables and text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr: `text` (coloured only on a terminal, never with NO_COLOR)
    /// or `json` (one object per line, for log shippers). TRIBUTARY_LOG filters.
    #[arg(
        long,
        env = "TRIBUTARY_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl GlobalArgs {
    /// The database URL in use.
    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }
}

/// Opens the store at `url` and applies pending migrations (every command that touches
/// data migrates first, so a fresh database just works).
pub async fn open_store(url: &str, key_file: Option<&PathBuf>) -> Result<Arc<dyn Store>> {
    let key_file = key_file.cloned().unwrap_or_else(default_key_file);
    let cipher = Cipher::load(&KeySource::from_env_or_file(key_file))
        .context("failed to load the credentials key")?;
    check_reachable(url).await?;
    let store = tributary_store::connect(url, cipher)
        .await
        .with_context(|| format!("failed to open database {}", redact_url(url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("failed to migrate database {}", redact_url(url)))?;
    Ok(store)
}

/// Fails fast, naming the server, when a PostgreSQL server does not accept TCP
/// connections (the connection pool would otherwise wait for its whole acquire
/// timeout before reporting a bare "pool timed out").
async fn check_reachable(url: &str) -> Result<()> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(());
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // the store reports malformed URLs itself
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Ok(()); // a Unix socket (host in the query) or the default host
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(5432);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => anyhow::bail!(
            "failed to open database {}: cannot reach {host}:{port}: {e}",
            redact_url(url)
        ),
        Err(_) => anyhow::bail!(
            "failed to open database {}: no answer from {host}:{port} within 10 s",
            redact_url(url)
        ),
    }
}

/// Opens the store named by the global options.
pub async fn open(global: &GlobalArgs) -> Result<Arc<dyn Store>> {
    open_store(global.database_url(), global.key_file.as_ref()).await
}

/// Every built-in integration, with its manifest validated.
pub fn registry() -> Result<Arc<Registry>> {
    Ok(Arc::new(
        crate::registry::builtin_integrations().context("failed to load the integrations")?,
    ))
}

/// `~/.config/tributary/secret.key` (or `./tributary.key` without a home directory).
pub fn default_key_file() -> PathBuf {
    match std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
    {
        Some(dir) => dir.join("tributary").join("secret.key"),
        None => PathBuf::from("tributary.key"),
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The file of a `sqlite://PATH` or `sqlite:PATH` URL (`None` for other backends and
/// in-memory databases).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Turns a store's "not found" into a plain message naming what was asked for, and
/// keeps other errors with context.
pub fn not_found_or(error: StoreError, context: impl FnOnce() -> String) -> anyhow::Error {
    match error {
        StoreError::NotFound { what, id } => anyhow::anyhow!("{what} {id} not found"),
        other => anyhow::Error::new(other).context(context()),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A stop flag that many tasks can wait on: `stop()` once, every `stopped()` resolves.
#[derive(Debug, Clone)]
pub struct StopSignal {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl StopSignal {
    /// Sets the flag.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once the flag is set.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://tributary.db"), "sqlite://tributary.db");
    }

    #[test]
    fn finds_sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://a/b.db"),
            Some(PathBuf::from("a/b.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[tokio::test]
    async fn stop_signal_wakes_every_waiter() {
        let stop = StopSignal::default();
        let a = tokio::spawn(stop.stopped());
        let b = tokio::spawn(stop.stopped());
        stop.stop();
        a.await.unwrap();
        b.await.unwrap();
        // A waiter that comes after the stop resolves at once.
        stop.stopped().await;
    }
}

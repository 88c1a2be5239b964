//! What every command shares: the database, key and log options, opening (and
//! migrating) the store with its key checked, the integration registry, and the
//! shutdown signal.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tributary_sdk::Registry;
use tributary_store::crypto::SECRET_KEY_ENV;
use tributary_store::{Cipher, KeySource, LoadedKey, Store, StoreError};

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

/// What a command does with stored credentials, which decides what a missing or a
/// wrong key means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The command reads or writes credentials (`link`, `sync`, `run`, `links`,
    /// `pause`, `resume`, `demo`). The key is checked at start-up against the stored
    /// credentials; a missing key file is created only while the database holds none.
    Credentials,
    /// The command never reads credentials (`migrate`, `users`, `content`, `jobs`,
    /// `unlink`): it runs when the key file is missing, and never creates one.
    NoCredentials,
}

/// How many of the newest accounts' credentials the start-up key check decrypts.
const KEY_CHECK_SAMPLE: usize = 16;
/// How many account ids a key error lists.
const IDS_LISTED: usize = 10;

/// Opens the store at `url` and applies pending migrations (every command that touches
/// data migrates first, so a fresh database just works), with the credentials key
/// checked as `key_use` asks:
///
/// - key file missing, database holding credentials of accounts that are not
///   unlinked: an error naming the file and how to restore it; no key is created (a
///   new one would leave every stored account undecryptable);
/// - key file missing, no such credentials: the key file is created (mode 0600) for a
///   command that uses credentials; one that does not runs without a key;
/// - a key that decrypts none of the newest accounts' credentials: an error naming
///   where the key came from; one that decrypts some of them: a warning naming the
///   others.
pub async fn open_store(
    url: &str,
    key_file: Option<&PathBuf>,
    key_use: KeyUse,
) -> Result<Arc<dyn Store>> {
    let key_file = key_file.cloned().unwrap_or_else(default_key_file);
    let source = KeySource::from_env_or_file(key_file);
    let loaded = source
        .load()
        .context("failed to load the credentials key")?;
    check_reachable(url).await?;
    match (loaded, key_use) {
        (LoadedKey::Ready(cipher), KeyUse::NoCredentials) => connect_and_migrate(url, cipher).await,
        (LoadedKey::Missing(new), KeyUse::NoCredentials) => {
            let reason = format!(
                "no credentials key: the {} does not exist (put it back or set {SECRET_KEY_ENV})",
                source.describe()
            );
            drop(new);
            connect_and_migrate(url, Cipher::without_key(reason)).await
        }
        (LoadedKey::Ready(cipher), KeyUse::Credentials) => {
            let store = connect_and_migrate(url, cipher).await?;
            check_key(store.as_ref(), &source).await?;
            Ok(store)
        }
        (LoadedKey::Missing(new), KeyUse::Credentials) => {
            // Opened with the new key before it is written, to look for credentials
            // sealed with the lost one first.
            let store = connect_and_migrate(url, new.cipher()).await?;
            let check = store
                .check_key(KEY_CHECK_SAMPLE)
                .await
                .with_context(|| format!("failed to read database {}", redact_url(url)))?;
            if !check.no_credentials() {
                anyhow::bail!("{}", missing_key_message(new.path(), &check));
            }
            let created = new
                .create()
                .context("failed to create the credentials key")?;
            if created.created {
                return Ok(store);
            }
            // Another process created the key file meanwhile: use its key.
            drop(store);
            let store = connect_and_migrate(url, created.cipher).await?;
            check_key(store.as_ref(), &source).await?;
            Ok(store)
        }
    }
}

async fn connect_and_migrate(url: &str, cipher: Cipher) -> Result<Arc<dyn Store>> {
    let store = tributary_store::connect(url, cipher)
        .await
        .with_context(|| format!("failed to open database {}", redact_url(url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("failed to migrate database {}", redact_url(url)))?;
    Ok(store)
}

/// Fails when the key decrypts none of the newest accounts' credentials; warns when
/// it decrypts only some.
async fn check_key(store: &dyn Store, source: &KeySource) -> Result<()> {
    let check = store
        .check_key(KEY_CHECK_SAMPLE)
        .await
        .context("failed to check the credentials key against the database")?;
    if check.wrong_key() {
        anyhow::bail!("{}", wrong_key_message(source, &check));
    }
    if !check.undecryptable.is_empty() {
        tracing::warn!(
            key = %source.describe(),
            user_integrations = %id_list(&check.undecryptable),
            "the credentials of these accounts do not decrypt with this key: their jobs fail until they are unlinked and linked again"
        );
    }
    Ok(())
}

/// `3, 2, 1` (at most [`IDS_LISTED`], then `...`).
fn id_list(ids: &[i64]) -> String {
    let mut text = ids
        .iter()
        .take(IDS_LISTED)
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > IDS_LISTED {
        text.push_str(", ...");
    }
    text
}

fn accounts(n: u64) -> String {
    if n == 1 {
        "1 linked account".to_owned()
    } else {
        format!("{n} linked accounts")
    }
}

fn missing_key_message(path: &Path, check: &tributary_store::KeyCheck) -> String {
    format!(
        "the key file {path} does not exist, but the database holds the encrypted credentials of {} (user integration {}); no new key was created: put the old key file back at {path} or set {SECRET_KEY_ENV} to the old key, or, if it is lost, unlink those accounts (`tributary unlink ID`) and link them again",
        accounts(check.accounts),
        id_list(&check.checked),
        path = path.display(),
    )
}

fn wrong_key_message(source: &KeySource, check: &tributary_store::KeyCheck) -> String {
    format!(
        "the credentials key from {} does not decrypt the stored credentials of {} (user integration {} tried): it is not the key they were stored with; restore that key (the old key file, or {SECRET_KEY_ENV}), or unlink those accounts (`tributary unlink ID`) and link them again",
        source.describe(),
        accounts(check.accounts),
        id_list(&check.checked),
    )
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

/// Opens the store named by the global options, for a command that uses credentials
/// (see [`KeyUse::Credentials`]).
pub async fn open(global: &GlobalArgs) -> Result<Arc<dyn Store>> {
    open_store(
        global.database_url(),
        global.key_file.as_ref(),
        KeyUse::Credentials,
    )
    .await
}

/// Opens the store named by the global options, for a command that never reads
/// credentials (see [`KeyUse::NoCredentials`]).
pub async fn open_without_credentials(global: &GlobalArgs) -> Result<Arc<dyn Store>> {
    open_store(
        global.database_url(),
        global.key_file.as_ref(),
        KeyUse::NoCredentials,
    )
    .await
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

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled, so a signal that arrives after the
/// call (say, right after the process said it is ready) is never the default
/// action's (an exit by signal).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match handlers {
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
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
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

    #[test]
    fn key_errors_name_the_source_the_accounts_and_the_ways_out() {
        let check = tributary_store::KeyCheck {
            accounts: 12,
            checked: (1..=12).rev().collect(),
            undecryptable: (1..=12).rev().collect(),
        };
        let missing = missing_key_message(Path::new("/k/secret.key"), &check);
        assert_eq!(
            missing,
            "the key file /k/secret.key does not exist, but the database holds the encrypted \
             credentials of 12 linked accounts (user integration 12, 11, 10, 9, 8, 7, 6, 5, 4, \
             3, ...); no new key was created: put the old key file back at /k/secret.key or \
             set TRIBUTARY_SECRET_KEY to the old key, or, if it is lost, unlink those accounts \
             (`tributary unlink ID`) and link them again"
        );
        let wrong = wrong_key_message(&KeySource::Base64("c2VjcmV0".into()), &check);
        assert!(
            wrong.starts_with("the credentials key from TRIBUTARY_SECRET_KEY does not decrypt"),
            "{wrong}"
        );
        assert!(!wrong.contains("c2VjcmV0"), "{wrong}");
        let file = wrong_key_message(&KeySource::File("/k/secret.key".into()), &check);
        assert!(file.contains("from key file /k/secret.key"), "{file}");
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

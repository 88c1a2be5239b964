//! `tributary`: the command line that wires the store, the engine and the integrations
//! together.

mod registry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tributary_engine::{Engine, EngineConfig, RunUntil, Scheduler, SystemClock, domain_schedules};
use tributary_store::{Cipher, KeySource, Store};

/// Keeps each user's content from the services they use fresh in your database.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Database URL: `sqlite://PATH` (embedded, created when missing) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://tributary.db", global = true)]
    database_url: String,
    /// File holding the credentials encryption key (created with mode 0600 on first
    /// use) when TRIBUTARY_SECRET_KEY is not set.
    #[arg(long, env = "TRIBUTARY_KEY_FILE", global = true)]
    key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies the database migrations.
    Migrate,
    /// Runs the scheduler and the workers until SIGINT or SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Jobs claimed per query (held beyond the running ones at most).
    #[arg(long)]
    claim_batch: Option<usize>,
    /// Seconds a claimed job stays leased without renewal before another worker may
    /// take it back.
    #[arg(long, default_value_t = 60)]
    lease_seconds: u64,
    /// Seconds between scheduler ticks.
    #[arg(long, default_value_t = 1)]
    tick_seconds: u64,
    /// Do not run the scheduler in this process (workers only).
    #[arg(long)]
    no_scheduler: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    tributary_sdk::http::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Migrate => {
            let store = open_store(&cli.db).await?;
            store.migrate().await.context("failed to migrate")?;
            println!("migrations applied to {}", redact_url(&cli.db.database_url));
            Ok(())
        }
        Command::Run(args) => run_engine(&cli.db, args).await,
    }
}

/// Opens the store and applies migrations (both commands that touch data migrate first).
async fn open_store(db: &DbArgs) -> Result<Arc<dyn Store>> {
    let key = match &db.key_file {
        Some(path) => KeySource::from_env_or_file(path.clone()),
        None => KeySource::from_env_or_file(default_key_file()),
    };
    let cipher = Cipher::load(&key).context("failed to load the credentials key")?;
    let store = tributary_store::connect(&db.database_url, cipher)
        .await
        .with_context(|| format!("failed to open database {}", redact_url(&db.database_url)))?;
    store.migrate().await.context("failed to migrate the database")?;
    Ok(store)
}

/// `~/.config/tributary/secret.key` (or `./tributary.key` without a home directory).
fn default_key_file() -> std::path::PathBuf {
    match std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))
    {
        Some(dir) => dir.join("tributary").join("secret.key"),
        None => std::path::PathBuf::from("tributary.key"),
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
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

async fn run_engine(db: &DbArgs, args: RunArgs) -> Result<()> {
    let store = open_store(db).await?;
    let registry = Arc::new(registry::builtin_integrations()?);
    let config = EngineConfig {
        workers: args.workers.max(1),
        claim_batch: args.claim_batch.unwrap_or(args.workers.max(1)),
        lease: Duration::from_secs(args.lease_seconds.max(1)),
        ..EngineConfig::default()
    };
    let max_attempts = config.max_attempts;
    let engine = Engine::new(store.clone(), registry.clone(), config)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let scheduler = (!args.no_scheduler).then(|| {
        let scheduler = Scheduler::new(
            store.clone(),
            domain_schedules(&registry, max_attempts),
            Arc::new(SystemClock),
        );
        let every = Duration::from_secs(args.tick_seconds.max(1));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { scheduler.run(every, stop).await })
    });
    eprintln!(
        "tributary running: {} workers on {}; Ctrl-C to stop",
        args.workers,
        redact_url(&db.database_url)
    );
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    engine.run(RunUntil::Shutdown, stopped(stop_rx)).await?;
    if let Some(handle) = scheduler {
        let _ = handle.await;
    }
    eprintln!("tributary stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
fn shutdown_signal() -> impl Future<Output = ()> {
    async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://tributary.db"), "sqlite://tributary.db");
    }
}

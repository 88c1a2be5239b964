//! `tributary`: the command line that wires the store, the engine and the integrations
//! together.
//!
//! Module map:
//! - [`app`]: the global options, opening and migrating the store, the registry, the
//!   shutdown signal.
//! - [`commands`]: one module per command.
//! - [`demo`]: `tributary demo`, the one-command tour.
//! - [`output`]: tables and JSON.
//! - [`progress`]: progress bars and the periodic progress log.
//! - [`registry`]: the one list of built-in integrations.
//!
//! Every error ends the process with one line on stderr (`error: ...`, or one JSON
//! object with `--log-format json`) and exit status 1; usage errors exit with status 2.

mod app;
mod commands;
mod demo;
mod output;
mod progress;
mod registry;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::app::{GlobalArgs, LogFormat};
use tributary_app::StatusChange;

/// Keeps each user's content from the services they use fresh in your database.
#[derive(Debug, Parser)]
#[command(name = "tributary", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a self-contained demo: a fake Gmail mailbox, a fresh SQLite database, a
    /// full backfill while new mail arrives.
    Demo(demo::DemoArgs),
    /// Applies the database migrations.
    Migrate,
    /// Lists the built-in integrations, their task types and credential fields.
    Integrations,
    /// Manages users, the owners of content.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Links a user's account after validating its credentials; prints its id.
    Link(commands::links::LinkArgs),
    /// Unlinks an account: its content is kept, it is never synced again.
    Unlink {
        /// The user integration id (see `tributary links`).
        id: i64,
    },
    /// Pauses an account's syncing.
    Pause {
        /// The user integration id (see `tributary links`).
        id: i64,
    },
    /// Resumes a paused (or stopped) account's syncing.
    Resume {
        /// The user integration id (see `tributary links`).
        id: i64,
    },
    /// Lists linked accounts: status, last sync, items, pending jobs, last error.
    Links(commands::links::LinksArgs),
    /// Obtains credentials with an integration's OAuth flow (from its manifest).
    Auth(commands::auth::AuthArgs),
    /// Syncs one account now.
    Sync(commands::sync::SyncArgs),
    /// Runs the scheduler and the workers until SIGINT or SIGTERM.
    Run(commands::run::RunArgs),
    /// Lists or shows stored content.
    #[command(subcommand)]
    Content(commands::content::ContentCommand),
    /// Lists jobs, or retries a dead or failed one.
    Jobs(commands::jobs::JobsArgs),
    /// Serves an integration's fake service (e.g. `fake gmail`) until Ctrl-C, for
    /// trying Tributary without an account.
    Fake(commands::fake::FakeArgs),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let database_url_given = matches!(
        matches.value_source("database_url"),
        Some(clap::parser::ValueSource::CommandLine)
    );
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    registry::init_from_env();
    let log_format = cli.global.log_format;
    init_logging(log_format);
    tributary_sdk::http::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, database_url_given)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report_error(log_format, &one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The log filter when `TRIBUTARY_LOG` is unset or does not parse.
const DEFAULT_LOG_FILTER: &str = "warn";

/// Installs the stderr logger: `TRIBUTARY_LOG` filters (default `warn`); `text` logs
/// are coloured only when stderr is a terminal and `NO_COLOR` is unset or empty;
/// `json` logs are one object per line (timestamp, level, target, message and the
/// other event fields at the top level, the current span's fields under `span`, every
/// enclosing span under `spans`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A failed write (stderr closed or full) is dropped: reporting it with
        // `eprintln!` would panic the thread that logged, and a dead SQLite worker
        // thread left the command waiting forever.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(colour_stderr()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// Whether text logs on stderr may carry ANSI colours: stderr is a terminal and
/// `NO_COLOR` (<https://no-color.org>) is not set to a non-empty value.
fn colour_stderr() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Prints the error that ends the process: `error: ...` on one line, or with
/// `--log-format json` one JSON object like the logs' (level `ERROR`), so that a log
/// shipper reading stderr parses every line.
fn report_error(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => eprintln!("{}", error_json(message, chrono::Utc::now())),
    }
}

/// The JSON line of [`report_error`].
fn error_json(message: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "target": "tributary",
        "message": format!("error: {message}"),
    })
    .to_string()
}

/// The error and its causes on one line, joined with `: `, leaving out a cause whose
/// text the previous message already includes (many errors print their source).
fn one_line(error: &anyhow::Error) -> String {
    let mut message = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !previous.is_empty() && previous.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
        previous = text;
    }
    message.replace(['\n', '\r'], " ")
}

async fn run(cli: Cli, database_url_given: bool) -> Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Migrate => {
            app::open_without_credentials(global).await?;
            println!(
                "migrations applied to {}",
                app::redact_url(global.database_url())
            );
            Ok(())
        }
        Command::Integrations => commands::integrations::run(global),
        Command::Users(command) => commands::users::run(global, command).await,
        Command::Link(args) => commands::links::link(global, args).await,
        Command::Unlink { id } => {
            commands::links::change_status(global, id, StatusChange::Unlink).await
        }
        Command::Pause { id } => {
            commands::links::change_status(global, id, StatusChange::Pause).await
        }
        Command::Resume { id } => {
            commands::links::change_status(global, id, StatusChange::Resume).await
        }
        Command::Links(args) => commands::links::list(global, args).await,
        Command::Auth(args) => commands::auth::run(global, args).await,
        Command::Sync(args) => commands::sync::run(global, args).await,
        Command::Run(args) => commands::run::run(global, args).await,
        Command::Content(command) => commands::content::run(global, command).await,
        Command::Jobs(args) => commands::jobs::run(global, args).await,
        Command::Fake(args) => commands::fake::run(global, args).await,
        Command::Demo(args) => {
            let database_url = database_url_given.then(|| global.database_url().to_owned());
            demo::run(global, args, database_url)
                .await
                .context("the demo failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_skips_repeated_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "database error: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(Outer(inner)).context("failed to open database x");
        assert_eq!(
            one_line(&e),
            "failed to open database x: database error: connection refused"
        );
        let e = anyhow::anyhow!("two\nlines").context("outer");
        assert_eq!(one_line(&e), "outer: two lines");
    }

    #[test]
    fn json_errors_are_one_parseable_line() {
        let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let line = error_json("a \"quoted\"\nthing", now);
        assert!(!line.contains('\n'), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "ERROR");
        assert_eq!(value["message"], "error: a \"quoted\"\nthing");
        assert_eq!(value["timestamp"], "2023-11-14T22:13:20.123000Z");
    }
}

//! `tributary fake gmail`: the Gmail fake from the testkit, standalone, so that anyone
//! can link and sync an account without a Google account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tributary_testkit::gmail::{FakeGmail, GmailConfig};

use crate::app::{GlobalArgs, shutdown_signal};

/// `tributary fake ...`
#[derive(Debug, Subcommand)]
pub enum FakeCommand {
    /// Serves a fake Gmail API (and its OAuth endpoints) until Ctrl-C.
    Gmail(FakeGmailArgs),
}

/// `tributary fake gmail`
#[derive(Debug, Args)]
pub struct FakeGmailArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Generated messages the mailbox starts with.
    #[arg(long, default_value_t = 1000)]
    pub emails: usize,
    /// Seed of the generated mailbox.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Deliver a new message every this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub deliver_every: u64,
    /// Also write the test credentials to this file, for `tributary link`.
    #[arg(long)]
    pub credentials_out: Option<PathBuf>,
}

/// Runs a `fake` subcommand.
pub async fn run(global: &GlobalArgs, command: FakeCommand) -> Result<()> {
    match command {
        FakeCommand::Gmail(args) => gmail(global, args).await,
    }
}

async fn gmail(global: &GlobalArgs, args: FakeGmailArgs) -> Result<()> {
    let fake = FakeGmail::start_on(
        args.listen,
        GmailConfig {
            messages: args.emails,
            seed: args.seed,
            ..GmailConfig::default()
        },
    )
    .await
    .with_context(|| format!("failed to start the Gmail fake on {}", args.listen))?;
    let info = fake.standalone_info();
    if let Some(path) = &args.credentials_out {
        std::fs::write(path, format!("{:#}\n", info["credentials"]))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if global.json {
        // One line, so that a script can read it before the server is stopped.
        println!("{info}");
    } else {
        let settings = &info["settings"];
        let setting = |k: &str| settings[k].as_str().unwrap_or_default().to_owned();
        println!(
            "fake Gmail serving {} messages for {}",
            args.emails,
            fake.email()
        );
        println!("  base URL:      {}", fake.base_url());
        println!("  token URL:     {}", fake.token_url());
        println!("  authorize URL: {}", fake.authorize_url());
        println!("test credentials (the fake accepts nothing else):");
        println!("{:#}", info["credentials"]);
        let credentials = match &args.credentials_out {
            Some(path) => path.display().to_string(),
            None => "CREDENTIALS.json".to_owned(),
        };
        println!("link an account against it:");
        println!(
            "  tributary link gmail --user <user id> --credentials {credentials} --setting baseUrl={} --setting tokenUrl={}",
            setting("baseUrl"),
            setting("tokenUrl")
        );
        if args.deliver_every > 0 {
            println!("delivering a new message every {} s", args.deliver_every);
        }
        println!("Ctrl-C to stop");
    }
    let deliver_every = args.deliver_every;
    let handle = fake.handle().clone();
    let delivery = (deliver_every > 0).then(|| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(deliver_every));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let handle = handle.clone();
                let _ = tokio::task::spawn_blocking(move || handle.generate(1)).await;
            }
        })
    });
    shutdown_signal().await;
    if let Some(task) = delivery {
        task.abort();
    }
    fake.stop().await.context("the Gmail fake failed")?;
    Ok(())
}

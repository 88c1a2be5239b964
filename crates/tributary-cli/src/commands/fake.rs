//! `tributary fake <domain>`: an integration's fake, standalone, so that anyone can
//! link and sync an account without an account at the service. The fake is found
//! through the registry (`Registration::with_fake`), so any integration that ships one
//! has the command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use tributary_sdk::FakeOptions;

use crate::app::{GlobalArgs, shutdown_signal};

/// `tributary fake <domain>`
#[derive(Debug, Args)]
pub struct FakeArgs {
    /// The integration whose fake to serve (e.g. `gmail`).
    pub domain: String,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Generated items the fake starts with (`--emails` for Gmail's messages).
    #[arg(long, visible_alias = "emails", default_value_t = 1000)]
    pub items: usize,
    /// Seed of the generated items.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Deliver a new item every this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub deliver_every: u64,
    /// Also write the test credentials to this file, for `tributary link`.
    #[arg(long)]
    pub credentials_out: Option<PathBuf>,
}

/// Serves a fake until SIGINT or SIGTERM.
pub async fn run(global: &GlobalArgs, args: FakeArgs) -> Result<()> {
    // Before anything is printed: a SIGTERM right after "Ctrl-C to stop" is a stop.
    let signal = shutdown_signal();
    let registry = crate::app::registry()?;
    let fake = registry.fake(&args.domain)?;
    let fake = fake
        .start(FakeOptions {
            listen: args.listen,
            seed: args.seed,
            items: args.items,
            deliver_every: (args.deliver_every > 0)
                .then(|| Duration::from_secs(args.deliver_every)),
            ..FakeOptions::default()
        })
        .await
        .with_context(|| {
            format!(
                "failed to start the {} fake on {}",
                args.domain, args.listen
            )
        })?;
    let link = fake.link();
    let credentials = Value::Object(link.credentials.as_map().clone());
    if let Some(path) = &args.credentials_out {
        std::fs::write(path, format!("{credentials:#}\n"))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if global.json {
        // One line, so that a script can read it before the server is stopped;
        // `items`: how many items a full sync of it stores.
        println!(
            "{}",
            json!({
                "credentials": credentials,
                "settings": link.settings,
                "items": fake.truth().synced.len(),
            })
        );
    } else {
        println!("fake {}", fake.describe());
        let label = |name: &str| format!("{name}:");
        println!("  {:<15}{}", label("base URL"), link.base_url);
        for (name, url) in &link.endpoints {
            println!("  {:<15}{url}", label(name));
        }
        println!("test credentials (the fake accepts nothing else):");
        println!("{credentials:#}");
        let credentials = match &args.credentials_out {
            Some(path) => path.display().to_string(),
            None => "CREDENTIALS.json".to_owned(),
        };
        let settings: String = link
            .settings
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => format!(" --setting {key}={text}"),
                other => format!(" --setting {key}={other}"),
            })
            .collect();
        println!("link an account against it:");
        println!(
            "  tributary link {} --user <user id> --credentials {credentials}{settings}",
            args.domain
        );
        if args.deliver_every > 0 {
            println!(
                "delivering a new {} every {} s",
                fake.item_name(),
                args.deliver_every
            );
        }
        println!("Ctrl-C to stop");
    }
    signal.await;
    fake.stop()
        .await
        .with_context(|| format!("the {} fake failed", args.domain))?;
    Ok(())
}

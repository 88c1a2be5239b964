//! `tributary users add|ls`: the owners of content.

use anyhow::{Context, Result};
use clap::Subcommand;
use tributary_store::StoreError;

use crate::app::GlobalArgs;
use crate::output::{Table, print_json, time};

/// `tributary users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates a user and prints its id.
    Add {
        /// Your own reference for this user (unique), such as an account id or email.
        external_ref: String,
    },
    /// Lists the users.
    Ls,
}

/// Runs a `users` subcommand.
pub async fn run(global: &GlobalArgs, command: UsersCommand) -> Result<()> {
    let store = crate::app::open_without_credentials(global).await?;
    match command {
        UsersCommand::Add { external_ref } => {
            if external_ref.trim().is_empty() {
                anyhow::bail!("the user reference must not be empty");
            }
            let user = match store.create_user(&external_ref).await {
                Ok(user) => user,
                Err(StoreError::Conflict(_)) => {
                    anyhow::bail!("a user with reference `{external_ref}` already exists")
                }
                Err(e) => return Err(e).context("failed to create the user"),
            };
            if global.json {
                print_json(&user)
            } else {
                println!("{}", user.id);
                Ok(())
            }
        }
        UsersCommand::Ls => {
            let users = store.list_users().await.context("failed to list users")?;
            if global.json {
                return print_json(&users);
            }
            let mut table = Table::new(["id", "external ref", "created"]);
            for u in &users {
                table.row([
                    u.id.to_string(),
                    u.external_ref.clone(),
                    time(&u.created_at),
                ]);
            }
            table.print_or("no users");
            Ok(())
        }
    }
}

//! Linked accounts: `link`, `unlink`, `pause`, `resume` and the `links` listing.
//!
//! Linking reads a credentials file (or stdin), checks it against the manifest's
//! credential fields (so a typo names the field), then the App validates it with
//! the service (`validate_authentication`) before anything is stored. Nothing here ever
//! prints a credential value.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Map, Value};
use tributary_app::{AccountOverview, App, StatusChange, check_credentials};
use tributary_sdk::{Credentials, Manifest};
use tributary_store::{Store, StoreError, UserIntegration, UserIntegrationStatus};

use crate::app::{GlobalArgs, not_found_or};
use crate::output::{Table, opt_time, print_json, short};

/// `tributary link`
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The integration (see `tributary integrations`).
    pub domain: String,
    /// The user who owns the account (see `tributary users ls`).
    #[arg(long)]
    pub user: i64,
    /// A JSON file of credential fields, or `-` to read them from stdin.
    #[arg(long)]
    pub credentials: PathBuf,
    /// A non-secret setting, `key=value` (repeatable). Values that are JSON numbers or
    /// booleans are stored as such, anything else as a string.
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, Value)>,
}

/// Parses `key=value`.
fn parse_setting(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not key=value"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    let value = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(value.to_owned()),
    };
    Ok((key.to_owned(), value))
}

/// Reads and checks credentials for `manifest`: a JSON object whose fields are the
/// manifest's, every value a string, every required field present and non-empty.
/// Messages name the source and the field, never a value.
pub fn read_credentials(source: &std::path::Path, manifest: &Manifest) -> Result<Credentials> {
    let (name, text) = if source.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read credentials from stdin")?;
        ("stdin".to_owned(), text)
    } else {
        let name = format!("credentials file {}", source.display());
        let text =
            std::fs::read_to_string(source).with_context(|| format!("failed to read {name}"))?;
        (name, text)
    };
    parse_credentials(&name, &text, manifest)
}

/// Checks credential text (see [`read_credentials`]); `name` says where it came from.
pub fn parse_credentials(name: &str, text: &str, manifest: &Manifest) -> Result<Credentials> {
    let value: Value = serde_json::from_str(text)
        // serde_json's message gives line and column, never the content.
        .map_err(|e| anyhow::anyhow!("{name} is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        bail!("{name} must hold a JSON object of credential fields");
    };
    check_credentials(manifest, &fields).map_err(|e| anyhow::anyhow!("{}", e.describe(name)))?;
    Ok(Credentials::new(fields))
}

/// Links an account after validating its credentials; prints the new id.
pub async fn link(global: &GlobalArgs, args: LinkArgs) -> Result<()> {
    let registry = crate::app::registry()?;
    let manifest = &registry.get(&args.domain)?.manifest;
    let credentials = read_credentials(&args.credentials, manifest)?;
    let settings: Map<String, Value> = args.settings.into_iter().collect();
    let app = App::new(crate::app::open(global).await?, registry.clone());
    let linked = app
        .link(args.user, &args.domain, credentials, settings)
        .await?;
    if global.json {
        print_json(&app.account(linked.id).await?)
    } else {
        println!("{}", linked.id);
        eprintln!(
            "linked {} for user {} as user integration {}; `tributary sync {} --until-idle` syncs it now",
            args.domain, args.user, linked.id, linked.id
        );
        Ok(())
    }
}

/// Loads one linked account, or says it does not exist.
pub async fn load(store: &dyn Store, id: i64) -> Result<UserIntegration> {
    store
        .get_user_integration(id)
        .await
        .map_err(|e| not_found_or(e, || format!("failed to load user integration {id}")))
}

/// Fails unless the account exists. Its credentials need not be readable (a command
/// that never uses them runs with a missing or wrong key).
pub async fn ensure_exists(store: &dyn Store, id: i64) -> Result<()> {
    match store.get_user_integration(id).await {
        Ok(_) | Err(StoreError::Crypto(_)) => Ok(()),
        Err(e) => Err(not_found_or(e, || {
            format!("failed to load user integration {id}")
        })),
    }
}

/// Changes an account's status (the rules are the App's: [`tributary_app::status`]).
pub async fn change_status(global: &GlobalArgs, id: i64, change: StatusChange) -> Result<()> {
    let store = if change == StatusChange::Unlink {
        // Unlinking reads no credentials: it is how accounts sealed with a lost key
        // are retired (see `crate::app::open_store`).
        crate::app::open_without_credentials(global).await?
    } else {
        crate::app::open(global).await?
    };
    let app = App::new(store, crate::app::registry()?);
    let done = app.change_status(id, change).await?;
    if global.json {
        return print_json(&app.account(id).await?);
    }
    if !done.changed() {
        println!("user integration {id} is already {}", done.after.as_str());
        return Ok(());
    }
    match change {
        StatusChange::Unlink => println!(
            "user integration {id} unlinked: its content is kept and it is no longer synced"
        ),
        StatusChange::Pause => {
            println!("user integration {id} paused: no job runs until `tributary resume {id}`")
        }
        StatusChange::Resume => {
            let note = if done.before == UserIntegrationStatus::NeedsReauth {
                " (it was waiting for re-authorization: if the credentials are still refused it stops again)"
            } else {
                ""
            };
            println!("user integration {id} resumed{note}")
        }
    }
    Ok(())
}

/// `tributary links`
#[derive(Debug, Args)]
pub struct LinksArgs {
    /// Only this user's accounts.
    #[arg(long)]
    pub user: Option<i64>,
}

/// Lists linked accounts with their sync state (one query for all of them); an
/// account whose credentials do not decrypt is listed with a marker in `last error`.
pub async fn list(global: &GlobalArgs, args: LinksArgs) -> Result<()> {
    let app = App::new(crate::app::open(global).await?, crate::app::registry()?);
    let views = app.overview(args.user).await?;
    if global.json {
        return print_json(&views);
    }
    let mut table = Table::new([
        "id",
        "user",
        "domain",
        "status",
        "last sync",
        "items",
        "deleted",
        "pending jobs (priority:count)",
        "dead/failed",
        "last error",
    ]);
    for v in &views {
        let pending = if v.pending_jobs.is_empty() {
            "-".to_owned()
        } else {
            v.pending_jobs
                .iter()
                .map(|(p, n)| format!("p{p}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        table.row([
            v.id.to_string(),
            v.user_id.to_string(),
            v.domain.clone(),
            v.status.as_str().to_owned(),
            opt_time(v.last_synced_at.as_ref()),
            v.items.to_string(),
            v.deleted_items.to_string(),
            pending,
            v.dead_or_failed_jobs.to_string(),
            last_error(v),
        ]);
    }
    table.print_or("no linked accounts");
    Ok(())
}

/// The `last error` column: the account's last error, after a marker when its
/// credentials do not decrypt with this key.
fn last_error(account: &AccountOverview) -> String {
    let error = match (
        account.credentials_unreadable,
        account.last_error.as_deref(),
    ) {
        (true, Some(e)) => format!("{UNREADABLE}; {e}"),
        (true, None) => UNREADABLE.to_owned(),
        (false, Some(e)) => e.to_owned(),
        (false, None) => String::new(),
    };
    short(&error, 80)
}

/// The `last error` marker of an account whose credentials do not decrypt.
const UNREADABLE: &str = "credentials do not decrypt with this key";

#[cfg(test)]
mod tests {
    use super::*;

    fn gmail() -> Manifest {
        tributary_gmail::registration().unwrap().manifest
    }

    #[test]
    fn settings_keep_numbers_and_strings() {
        assert_eq!(
            parse_setting("pageSize=500").unwrap(),
            ("pageSize".into(), Value::from(500))
        );
        assert_eq!(
            parse_setting("baseUrl=http://h/?a=b").unwrap(),
            ("baseUrl".into(), Value::from("http://h/?a=b"))
        );
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("=x").is_err());
    }

    #[test]
    fn credentials_errors_name_the_field_not_the_value() {
        let m = gmail();
        let ok = r#"{"clientId":"id","clientSecret":"s3cret","refreshToken":"r"}"#;
        assert!(parse_credentials("f", ok, &m).is_ok());
        let missing = r#"{"clientId":"id","clientSecret":"s3cret"}"#;
        let e = parse_credentials("f", missing, &m).unwrap_err().to_string();
        assert!(e.contains("`refreshToken`"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let typo = r#"{"clientId":"id","clientSecret":"s3cret","refresh_token":"r"}"#;
        let e = parse_credentials("f", typo, &m).unwrap_err().to_string();
        assert!(
            e.contains("`refresh_token`") && !e.contains("s3cret"),
            "{e}"
        );
        let number = r#"{"clientId":1,"clientSecret":"s","refreshToken":"r"}"#;
        let e = parse_credentials("f", number, &m).unwrap_err().to_string();
        assert!(e.contains("`clientId` must be a string"), "{e}");
        let e = parse_credentials("f", "{oops", &m).unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = parse_credentials("f", "[]", &m).unwrap_err().to_string();
        assert!(e.contains("JSON object"), "{e}");
    }
}

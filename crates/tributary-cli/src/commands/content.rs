//! `tributary content ls|show`: what was stored.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use serde_json::Value;
use tributary_store::{ContentItem, ContentQuery};

use crate::app::{GlobalArgs, not_found_or};
use crate::output::{Table, bytes, opt_time, print_json, short, time};

/// `tributary content ...`
#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Lists the items of one linked account, oldest first.
    Ls(ContentLsArgs),
    /// Prints one item with its content.
    Show {
        /// The item's id (the first column of `content ls`).
        id: i64,
    },
}

/// `tributary content ls`
#[derive(Debug, Args)]
pub struct ContentLsArgs {
    /// The linked account (see `tributary links`).
    pub user_integration_id: i64,
    /// Include soft-deleted items.
    #[arg(long)]
    pub include_deleted: bool,
    /// Only items updated at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many items.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Only items with an id greater than this (to page through a listing).
    #[arg(long)]
    pub after_id: Option<i64>,
}

/// Parses an RFC 3339 time or a date (midnight UTC).
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

/// A one-line title for an item: the first of its content's usual title fields.
fn title(content: &Value) -> String {
    ["subject", "title", "name", "text", "snippet"]
        .iter()
        .find_map(|k| content.get(k).and_then(Value::as_str))
        .map(|t| short(t, 60))
        .unwrap_or_default()
}

/// Runs a `content` subcommand.
pub async fn run(global: &GlobalArgs, command: ContentCommand) -> Result<()> {
    let store = crate::app::open_without_credentials(global).await?;
    match command {
        ContentCommand::Ls(args) => {
            if args.limit < 1 {
                anyhow::bail!("--limit must be at least 1");
            }
            let id = args.user_integration_id;
            super::links::ensure_exists(store.as_ref(), id).await?;
            let items = store
                .list_content(&ContentQuery {
                    user_integration_id: Some(id),
                    include_deleted: args.include_deleted,
                    since: args.since,
                    after_id: args.after_id,
                    limit: Some(args.limit),
                })
                .await
                .with_context(|| format!("failed to list the content of user integration {id}"))?;
            if global.json {
                return print_json(&items);
            }
            print_items(&items, args.limit);
            Ok(())
        }
        ContentCommand::Show { id } => {
            let item = store
                .get_content(id)
                .await
                .map_err(|e| not_found_or(e, || format!("failed to load content item {id}")))?;
            if global.json {
                return print_json(&item);
            }
            println!("id:                 {}", item.id);
            println!("user integration:   {}", item.user_integration_id);
            println!("domain:             {}", item.integration_domain);
            println!("external id:        {}", item.external_id);
            println!(
                "external timestamp: {}",
                opt_time(item.external_timestamp.as_ref())
            );
            println!("size:               {}", bytes(item.content_size));
            println!("created:            {}", time(&item.created_at));
            println!("updated:            {}", time(&item.updated_at));
            if item.is_deleted {
                println!("deleted:            {}", opt_time(item.deleted_at.as_ref()));
            }
            let content =
                serde_json::to_string_pretty(&item.content).context("failed to encode content")?;
            println!("content:\n{content}");
            Ok(())
        }
    }
}

fn print_items(items: &[ContentItem], limit: i64) {
    let mut table = Table::new([
        "id",
        "external id",
        "external time",
        "size",
        "updated",
        "deleted",
        "title",
    ]);
    for item in items {
        table.row([
            item.id.to_string(),
            item.external_id.clone(),
            opt_time(item.external_timestamp.as_ref()),
            bytes(item.content_size),
            time(&item.updated_at),
            if item.is_deleted { "yes" } else { "" }.to_owned(),
            title(&item.content),
        ]);
    }
    table.print_or("no items");
    if let Some(last) = items.last().filter(|_| items.len() as i64 >= limit) {
        eprintln!("(next page: --after-id {})", last.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_dates() {
        assert_eq!(
            parse_since("2024-05-06").unwrap(),
            parse_since("2024-05-06T00:00:00Z").unwrap()
        );
        assert!(parse_since("2024-05-06T01:00:00+01:00").is_ok());
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn title_prefers_subject() {
        assert_eq!(
            title(&serde_json::json!({"subject": "Hi", "name": "x"})),
            "Hi"
        );
        assert_eq!(title(&serde_json::json!({"n": 1})), "");
    }
}

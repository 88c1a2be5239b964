//! `outlook-sync` and `outlook-freshness`: the Outlook integration end to end, against
//! its fake.
//!
//! `outlook-sync`: messages per second from the fake into SQLite and PostgreSQL, beside
//! the fake's own ceiling measured in the same run: the same requests the integration
//! makes (the folder tree; per folder a delta round of pages of the integration's
//! page size selecting [`LISTING_SELECT`]; per message one `GET /me/messages/{id}`
//! selecting [`MESSAGE_SELECT`] with the text body, and its attachment listing when it
//! has attachments; every request with `Prefer: IdType="ImmutableId"`), sent straight
//! to the fake with the SDK's `HttpClient`, no engine. Graph allows 4 requests of one
//! mailbox at once and the manifest caps the account's jobs at 4, so the ceiling's
//! concurrency is the smaller of the workers and 4; the fake's rate limit (10,000
//! requests per 10 minutes) and the engine's budgets are off, its concurrency limit
//! on.
//!
//! `outlook-freshness`: the shared freshness run ([`crate::freshness`]) with messages
//! delivered to the fake's Inbox every second during a backfill.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tributary_outlook::content::{ATTACHMENT_SELECT, LISTING_SELECT, MESSAGE_SELECT};
use tributary_outlook_fake::{FakeOutlook, MailboxConfig, OutlookConfig, RefreshRotation};
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::Value;
use tributary_sdk::{Credentials, Registry};
use tributary_store::{NewUserIntegration, Store};

use crate::freshness::Mailbox;
use crate::util::{Backend, FreshDb};

/// The integration's default page size (the manifest's `pageSize`; a test checks
/// they agree).
pub const PAGE_SIZE: u32 = 100;

/// Graph's limit of requests of one mailbox at once (the manifest's
/// `concurrentJobsPerAccount`; a test checks they agree).
pub const MAILBOX_CONCURRENCY: usize = 4;

/// User folders of a generated mailbox of `messages` (4 for 10,000: with Inbox, Sent
/// Items, Archive and Drafts, 8 folders hold messages).
fn folders_for(messages: usize) -> usize {
    (messages / 2_500).clamp(1, 60)
}

/// Starts the fake: `messages` messages, each request taking `latency`, Graph's
/// rate limit off (its concurrency limit on) and Microsoft's refresh tokens.
pub async fn start_fake(messages: usize, latency: Duration) -> Result<FakeOutlook> {
    let mut config = OutlookConfig {
        mailbox: MailboxConfig {
            folders: folders_for(messages),
            messages,
            seed: 14,
            ..MailboxConfig::default()
        },
        ..OutlookConfig::default()
    };
    config.graph.refresh_rotation = RefreshRotation::KeepOld;
    config.graph.throttle.enforce_rate = false;
    config.graph.latency = latency;
    Ok(FakeOutlook::start(config).await?)
}

/// A registry holding the Outlook integration.
pub fn outlook_registry() -> Result<Arc<Registry>> {
    Ok(Arc::new(Registry::new(
        [tributary_outlook::registration()],
    )?))
}

/// Links the fake's mailbox to a new user; the account id.
pub async fn link_outlook(store: &dyn Store, fake: &FakeOutlook) -> Result<i64> {
    let graph = fake.handle().graph();
    let grant = fake.handle().mail_grant();
    let mut credentials = Credentials::default();
    credentials.set("clientId", graph.client_id());
    credentials.set("clientSecret", graph.client_secret());
    credentials.set(
        "refreshToken",
        grant
            .refresh_token
            .ok_or_else(|| anyhow!("the fake granted no refresh token"))?,
    );
    credentials.set("accessToken", grant.access_token);
    let user = store.create_user("bench-user").await?;
    Ok(store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "outlook".into(),
            credentials,
            settings: fake.urls().settings(),
        })
        .await?
        .id)
}

/// Runs `outlook-sync`.
pub async fn outlook_sync(
    messages: &[usize],
    workers: &[usize],
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "outlook-sync benchmark: Outlook fake (Graph's rate limit off, 4 requests at once per mailbox) -> engine (budgets off) -> store; ceiling = the same requests (folder tree, per-folder delta pages of {PAGE_SIZE}, one message GET per message and an attachment listing for those with attachments, at min(workers, {MAILBOX_CONCURRENCY}) at once) straight to the fake with the SDK's HttpClient, no engine"
    );
    println!();
    println!(
        "| backend | messages | folders | workers | stored | seconds | engine messages/s | ceiling messages/s | engine / ceiling |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in messages {
        let fake = start_fake(n, Duration::ZERO).await?;
        let expected = fake.handle().message_count();
        let folders = fake
            .handle()
            .folders()
            .iter()
            .filter(|f| f.messages > 0)
            .count();
        for &backend in backends {
            for &w in workers {
                let label = format!("outlook_{n}_{w}");
                let run = async {
                    let db = FreshDb::create(backend, postgres, &label).await?;
                    let run = full_sync(&db, &fake, w).await;
                    db.remove().await?;
                    run
                }
                .await;
                let cells = format!("{} | {expected} | {folders} | {w} | ", backend.name());
                crate::util::throughput_row(&cells, expected, run, ceiling(&fake, w)).await;
            }
        }
        fake.stop().await?;
    }
    Ok(())
}

/// One full sync from nothing to idle (the first `start`, then a history check, as
/// `tributary sync --until-idle` runs them): messages stored and the time taken.
async fn full_sync(db: &FreshDb, fake: &FakeOutlook, workers: usize) -> Result<(i64, Duration)> {
    let account = link_outlook(db.store.as_ref(), fake).await?;
    crate::util::sync_until_idle(db, outlook_registry()?, account, workers).await
}

/// The fake's own ceiling (see the module docs): messages fetched and the time taken.
async fn ceiling(fake: &FakeOutlook, workers: usize) -> Result<(u64, Duration)> {
    let http = HttpClient::new().map_err(|e| anyhow!("{e}"))?;
    let token = fake.handle().mail_grant().access_token;
    let base = fake.urls().base_url();
    let get = move |url: String, query: Vec<(&'static str, String)>, prefer: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let request = http
                .get(url)
                .bearer_auth(&token)
                .header("Prefer", prefer)
                .query(&query);
            let answer: Value = http
                .send_ok(request)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .json()
                .map_err(|e| anyhow!("{e}"))?;
            Ok::<Value, anyhow::Error>(answer)
        }
    };
    const IMMUTABLE: &str = "IdType=\"ImmutableId\"";
    let paged = format!("{IMMUTABLE}, odata.maxpagesize={PAGE_SIZE}");
    let text = format!("{IMMUTABLE}, outlook.body-content-type=\"text\"");
    let started = Instant::now();
    // The folder tree: the Inbox's id, the top-level folders, every folder's children.
    let select = || {
        (
            "$select",
            "id,displayName,parentFolderId,childFolderCount".to_owned(),
        )
    };
    get(
        format!("{base}/me/mailFolders/inbox"),
        vec![("$select", "id".to_owned())],
        IMMUTABLE.to_owned(),
    )
    .await?;
    get(
        format!("{base}/me/mailFolders"),
        vec![("$top", "100".to_owned()), select()],
        IMMUTABLE.to_owned(),
    )
    .await?;
    let folders = fake.handle().folders();
    let parents: std::collections::BTreeSet<String> =
        folders.iter().filter_map(|f| f.parent_id.clone()).collect();
    let root = folders.first().map(|f| f.id.clone());
    for parent in parents.iter().filter(|p| Some(*p) != root.as_ref()) {
        get(
            format!("{base}/me/mailFolders/{parent}/childFolders"),
            vec![("$top", "100".to_owned()), select()],
            IMMUTABLE.to_owned(),
        )
        .await?;
    }
    // Every folder's delta round, one page after another, each message fetched
    // `concurrency` at a time.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let lister = {
        let (get, base, paged) = (get.clone(), base.clone(), paged.clone());
        let folder_ids: Vec<String> = folders.iter().skip(1).map(|f| f.id.clone()).collect();
        tokio::spawn(async move {
            for folder in folder_ids {
                let mut url = format!("{base}/me/mailFolders/{folder}/messages/delta");
                let mut query = vec![("$select", LISTING_SELECT.to_owned())];
                loop {
                    let page = get(url.clone(), query.clone(), paged.clone()).await?;
                    for m in page["value"].as_array().into_iter().flatten() {
                        if let Some(id) = m["id"].as_str() {
                            let _ = tx.send(id.to_owned());
                        }
                    }
                    match page["@odata.nextLink"].as_str() {
                        Some(next) => {
                            url = next.to_owned();
                            query.clear();
                        }
                        None => break,
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        })
    };
    let slots = Arc::new(Semaphore::new(workers.clamp(1, MAILBOX_CONCURRENCY)));
    let mut fetches = JoinSet::new();
    let mut fetched = 0u64;
    while let Some(id) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await?;
        let (get, base, text) = (get.clone(), base.clone(), text.clone());
        fetches.spawn(async move {
            let message = get(
                format!("{base}/me/messages/{id}"),
                vec![("$select", MESSAGE_SELECT.to_owned())],
                text,
            )
            .await?;
            if message["hasAttachments"].as_bool() == Some(true) {
                get(
                    format!("{base}/me/messages/{id}/attachments"),
                    vec![("$select", ATTACHMENT_SELECT.to_owned())],
                    IMMUTABLE.to_owned(),
                )
                .await?;
            }
            drop(permit);
            Ok::<(), anyhow::Error>(())
        });
        fetched += 1;
        while let Some(done) = fetches.try_join_next() {
            done??;
        }
    }
    lister.await??;
    while let Some(done) = fetches.join_next().await {
        done??;
    }
    Ok((fetched, started.elapsed()))
}

impl Mailbox for FakeOutlook {
    fn registry(&self) -> Result<Arc<Registry>> {
        outlook_registry()
    }

    async fn link(&self, store: &dyn Store) -> Result<i64> {
        link_outlook(store, self).await
    }

    fn backlog(&self) -> i64 {
        self.handle().message_count() as i64
    }

    async fn deliver(&self, _n: usize) -> Result<String> {
        Ok(self.handle().generate_message().immutable_id)
    }

    async fn stop(self) -> Result<()> {
        Ok(FakeOutlook::stop(self).await?)
    }
}

/// Runs `outlook-freshness`.
pub async fn outlook_freshness(
    messages: usize,
    start_every: &[u64],
    workers: usize,
    latency: Duration,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "outlook-freshness benchmark: delay from delivery to stored of a message delivered to the Inbox every second during a {messages}-message backfill, {workers} workers, {} ms per fake request (Graph's rate limit and the budgets off, 4 requests at once per mailbox); goal: max <= start interval + {} s",
        latency.as_millis(),
        crate::freshness::GOAL_MARGIN_SECS
    );
    crate::freshness::table(start_every, workers, backends, postgres, || {
        start_fake(messages, latency)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ceiling's page size and concurrency are the manifest's.
    #[test]
    fn page_size_and_concurrency_are_the_manifests() {
        let manifest = tributary_outlook::registration().unwrap().manifest;
        let page_size = manifest
            .settings
            .iter()
            .find(|s| s.name == "pageSize")
            .and_then(|s| s.default.as_ref())
            .and_then(Value::as_u64);
        assert_eq!(page_size, Some(u64::from(PAGE_SIZE)));
        assert_eq!(
            manifest.limits.concurrent_jobs_per_account,
            Some(MAILBOX_CONCURRENCY as u32)
        );
    }
}

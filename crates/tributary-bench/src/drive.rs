//! `drive-sync` and `drive-freshness`: the Google Drive integration end to end, against
//! its fake.
//!
//! `drive-sync`: items (files and folders) per second from the fake into SQLite and
//! PostgreSQL, beside the fake's own ceiling measured in the same run: the same
//! requests the integration makes (the first sync's cursor, root, shared drives and
//! folder listing; `files.list` pages of the integration's page sizes with its
//! `fields`; per item one `files.get` with the stored fields, then `files.export` or
//! `alt=media` for the items with text, as `content::text_source` decides), sent
//! straight to the fake with the SDK's `HttpClient` at the same concurrency, no engine.
//!
//! `drive-freshness`: while a backfill runs, an already-stored file is edited at the
//! fake every two seconds; the delay until the store holds it at its new version
//! (asked with `stored_items` at that version every 100 ms). A scheduler ticks every
//! 250 ms with the given changes-check interval. Goal (issue 12): the max delay is at
//! most the interval plus 2 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, domain_schedules};
use tributary_google_drive::client::FILE_FIELDS;
use tributary_google_drive::content::{TextSource, text_source};
use tributary_google_drive_fake::{DriveConfig, FakeDrive, FaultConfig, FileBody};
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ItemRef, Registry};
use tributary_store::{NewUserIntegration, Store};

use crate::sync::engine_config;
use crate::util::{Backend, FreshDb};

/// The integration's default first page and later pages (the manifest's `pageSize`
/// and `backfillPageSize` defaults; a test checks they agree).
pub const PAGE_SIZE: u32 = 100;
/// See [`PAGE_SIZE`].
pub const BACKFILL_PAGE_SIZE: u32 = 1000;

/// Folders per generated drive: one for every 16 files and a bit (300 for 5,000).
fn folders_for(files: usize) -> usize {
    (files * 3 / 50).max(1)
}

/// Starts the fake: `files` files in `folders` folders ([`folders_for`] when `None`)
/// over My Drive and two shared drives, each request taking `latency`.
pub async fn start_fake(
    files: usize,
    folders: Option<usize>,
    latency: Duration,
) -> Result<FakeDrive> {
    Ok(FakeDrive::start(DriveConfig {
        files,
        folders: folders.unwrap_or_else(|| folders_for(files)),
        shared_drives: 2,
        faults: FaultConfig {
            latency,
            ..FaultConfig::default()
        },
        ..DriveConfig::default()
    })
    .await?)
}

/// A registry holding the Drive integration.
pub fn drive_registry() -> Result<Arc<Registry>> {
    Ok(Arc::new(Registry::new([
        tributary_google_drive::registration(),
    ])?))
}

/// Links one account to the fake.
pub async fn link_drive(store: &dyn Store, fake: &FakeDrive, user: &str) -> Result<i64> {
    let issued = fake.handle().credentials();
    let mut credentials = Credentials::default();
    credentials.set("clientId", issued.client_id);
    credentials.set("clientSecret", issued.client_secret);
    credentials.set("refreshToken", issued.refresh_token);
    let mut settings = Map::new();
    settings.insert("baseUrl".into(), Value::String(fake.base_url()));
    settings.insert("tokenUrl".into(), Value::String(fake.token_url()));
    let user = store.create_user(user).await?;
    Ok(store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "google-drive".into(),
            credentials,
            settings,
        })
        .await?
        .id)
}

/// Runs `drive-sync`.
pub async fn drive_sync(
    files: &[usize],
    folders: Option<usize>,
    workers: &[usize],
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "drive-sync benchmark: Google Drive fake -> engine -> store; ceiling = the same requests (first-sync tree, files.list pages of {PAGE_SIZE} then {BACKFILL_PAGE_SIZE}, one files.get per item, an export or media read per item with text, same concurrency) straight to the fake with the SDK's HttpClient, no engine"
    );
    println!();
    println!(
        "| backend | items | workers | stored | seconds | engine items/s | ceiling items/s | engine / ceiling |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in files {
        let fake = start_fake(n, folders, Duration::ZERO).await?;
        let expected = fake.handle().snapshot().len();
        for &backend in backends {
            for &w in workers {
                let label = format!("drive_{n}_{w}");
                let run = async {
                    let db = FreshDb::create(backend, postgres, &label).await?;
                    let run = full_sync(&db, &fake, w).await;
                    db.remove().await?;
                    run
                }
                .await;
                let cells = format!("{} | {expected} | {w} | ", backend.name());
                crate::util::throughput_row(&cells, expected, run, ceiling(&fake, w)).await;
            }
        }
        fake.stop().await?;
    }
    Ok(())
}

/// One full sync from nothing to idle: items stored and the time taken.
async fn full_sync(db: &FreshDb, fake: &FakeDrive, workers: usize) -> Result<(i64, Duration)> {
    let account = link_drive(db.store.as_ref(), fake, "bench-user").await?;
    crate::util::sync_until_idle(db, drive_registry()?, account, workers).await
}

/// The query of the all-drives listings.
fn listing(q: &str, page_size: u32, fields: &str) -> Vec<(String, String)> {
    [
        ("q", q.to_owned()),
        ("orderBy", "modifiedTime desc".to_owned()),
        ("pageSize", page_size.to_string()),
        ("corpora", "allDrives".to_owned()),
        ("includeItemsFromAllDrives", "true".to_owned()),
        ("supportsAllDrives", "true".to_owned()),
        ("fields", fields.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The fake's own ceiling (see the module docs): items fetched and the time taken.
async fn ceiling(fake: &FakeDrive, workers: usize) -> Result<(u64, Duration)> {
    let http = HttpClient::new().map_err(|e| anyhow!("{e}"))?;
    let token = fake.handle().issue_access_token();
    let base = format!("{}drive/v3/", fake.base_url());
    let get = move |path: String, query: Vec<(String, String)>| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let request = http.get(path).bearer_auth(&token).query(&query);
            http.send_ok(request).await.map_err(|e| anyhow!("{e}"))
        }
    };
    let started = Instant::now();
    // The first sync's tree: cursor, root, shared drives, every folder.
    get(
        format!("{base}changes/startPageToken"),
        vec![("supportsAllDrives".into(), "true".into())],
    )
    .await?;
    get(
        format!("{base}files/root"),
        vec![("fields".into(), "id,name".into())],
    )
    .await?;
    get(
        format!("{base}drives"),
        vec![("pageSize".into(), "100".into())],
    )
    .await?;
    let folders_q = "mimeType = 'application/vnd.google-apps.folder' and trashed = false";
    let mut token_page: Option<String> = None;
    loop {
        let mut query = listing(
            folders_q,
            1000,
            &format!("nextPageToken,files({FILE_FIELDS})"),
        );
        if let Some(t) = &token_page {
            query.push(("pageToken".into(), t.clone()));
        }
        let page: Value = get(format!("{base}files"), query)
            .await?
            .json()
            .map_err(|e| anyhow!("{e}"))?;
        match page["nextPageToken"].as_str() {
            Some(t) => token_page = Some(t.to_owned()),
            None => break,
        }
    }
    // The listing, one page after another, each item fetched `workers` at a time.
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String, String)>();
    let lister = {
        let (get_base, get) = (base.clone(), get.clone());
        tokio::spawn(async move {
            let mut page_token: Option<String> = None;
            loop {
                let size = if page_token.is_some() {
                    BACKFILL_PAGE_SIZE
                } else {
                    PAGE_SIZE
                };
                let mut query = listing(
                    "trashed = false",
                    size,
                    &format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})"),
                );
                if let Some(t) = &page_token {
                    query.push(("pageToken".into(), t.clone()));
                }
                let page: Value = get(format!("{get_base}files"), query)
                    .await?
                    .json()
                    .map_err(|e| anyhow!("{e}"))?;
                for f in page["files"].as_array().into_iter().flatten() {
                    let field = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                    let _ = tx.send((field("id"), field("mimeType"), field("name")));
                }
                match page["nextPageToken"].as_str() {
                    Some(t) => page_token = Some(t.to_owned()),
                    None => return Ok::<(), anyhow::Error>(()),
                }
            }
        })
    };
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut fetches = JoinSet::new();
    let mut fetched = 0u64;
    while let Some((id, mime, name)) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await?;
        let (get, base) = (get.clone(), base.clone());
        fetches.spawn(async move {
            let file = format!("{base}files/{id}");
            get(
                file.clone(),
                vec![
                    ("fields".into(), FILE_FIELDS.into()),
                    ("supportsAllDrives".into(), "true".into()),
                ],
            )
            .await?;
            match text_source(&mime, &name) {
                TextSource::Export(to) => {
                    get(
                        format!("{file}/export"),
                        vec![("mimeType".into(), to.into())],
                    )
                    .await?;
                }
                TextSource::Media => {
                    get(
                        file,
                        vec![
                            ("alt".into(), "media".into()),
                            ("supportsAllDrives".into(), "true".into()),
                        ],
                    )
                    .await?;
                }
                TextSource::None => {}
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

/// The goal's margin over the changes-check interval.
const GOAL_MARGIN_SECS: u64 = 2;
/// Edits go on after the backfill until at least this many were made.
const MIN_EDITS: usize = 3;

/// Runs `drive-freshness`.
pub async fn drive_freshness(
    files: usize,
    history_every: &[u64],
    workers: usize,
    latency: Duration,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "drive-freshness benchmark: delay from an edit of a stored file to the store holding its new version, an edit every 2 s during a {files}-file backfill, {workers} workers, {} ms per fake request; goal: max <= changes-check interval + {GOAL_MARGIN_SECS} s",
        latency.as_millis()
    );
    println!();
    println!(
        "| backend | check every (s) | edits | stored | p50 (s) | max (s) | backfill seconds | goal | met |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for &backend in backends {
        for &every in history_every {
            if let Err(e) = freshness_one(backend, files, every, workers, latency, postgres).await {
                println!("| {} | {every} | n/a ({e:#}) | | | | | | |", backend.name());
            }
        }
    }
    Ok(())
}

async fn freshness_one(
    backend: Backend,
    files: usize,
    every: u64,
    workers: usize,
    latency: Duration,
    postgres: &str,
) -> Result<()> {
    let fake = start_fake(files, None, latency).await?;
    let backlog = fake.handle().snapshot().len() as i64;
    let db = FreshDb::create(backend, postgres, &format!("drive_fresh_{every}")).await?;
    let result = async {
        let store = db.store.clone();
        let registry = drive_registry()?;
        let account = link_drive(store.as_ref(), &fake, "bench-user").await?;
        let engine = Engine::new(store.clone(), registry.clone(), engine_config(workers))?;
        let mut schedules = domain_schedules(&registry, engine.config().max_attempts);
        for s in &mut schedules {
            if let Some((_, ms)) = &mut s.history {
                *ms = i64::try_from(every.saturating_mul(1000))?;
            }
        }
        let began = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        store
            .enqueue(
                &[start_job(account, engine.config().max_attempts, now)],
                now,
            )
            .await?;
        let running = crate::util::Running::start(
            &engine,
            store.clone(),
            schedules,
            Duration::from_millis(250),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut pending: HashMap<String, (String, Instant)> = HashMap::new();
        let mut delays: Vec<f64> = Vec::new();
        let mut edits = 0usize;
        let mut next_edit = Instant::now() + Duration::from_secs(2);
        let mut backfill_seconds: Option<f64> = None;
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            anyhow::ensure!(Instant::now() < deadline, "the run took over 900 s");
            let editing = backfill_seconds.is_none() || edits < MIN_EDITS;
            if editing && Instant::now() >= next_edit {
                next_edit += Duration::from_secs(2);
                // A file stored at its current version, edited now.
                let snapshot = fake.handle().snapshot();
                let candidates: Vec<ItemRef> = snapshot
                    .values()
                    .filter(|f| !f.is_folder && !pending.contains_key(&f.id))
                    .map(|f| ItemRef::at(&f.id, f.version.to_string()))
                    .collect();
                let stored = store.stored_items(account, &candidates).await?;
                let stored: Vec<&String> = stored.iter().collect();
                if !stored.is_empty() {
                    let id = stored[rng.random_range(0..stored.len())].clone();
                    fake.handle()
                        .edit(&id, FileBody::Bytes(format!("edit {edits}\n").into_bytes()))?;
                    let version = fake
                        .handle()
                        .snapshot()
                        .get(&id)
                        .map(|f| f.version.to_string())
                        .unwrap_or_default();
                    pending.insert(id, (version, Instant::now()));
                    edits += 1;
                }
            }
            if !pending.is_empty() {
                let asked: Vec<ItemRef> = pending
                    .iter()
                    .map(|(id, (v, _))| ItemRef::at(id, v))
                    .collect();
                for id in store.stored_items(account, &asked).await? {
                    if let Some((_, at)) = pending.remove(&id) {
                        delays.push(at.elapsed().as_secs_f64());
                    }
                }
            }
            if backfill_seconds.is_none() {
                let stored = crate::util::stored_items(store.as_ref(), account).await?;
                if stored >= backlog {
                    backfill_seconds = Some(began.elapsed().as_secs_f64());
                }
            }
            if backfill_seconds.is_some() && edits >= MIN_EDITS && pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running.stop().await?;
        delays.sort_by(f64::total_cmp);
        let at = |p: f64| -> String {
            if delays.is_empty() {
                "n/a".to_owned()
            } else {
                let i = ((delays.len() as f64 - 1.0) * p).round() as usize;
                format!("{:.1}", delays[i.min(delays.len() - 1)])
            }
        };
        let goal = every.saturating_add(GOAL_MARGIN_SECS);
        let met = match delays.last() {
            Some(&max) if max <= goal as f64 => "yes",
            Some(_) => "no",
            None => "n/a",
        };
        println!(
            "| {} | {every} | {edits} | {} | {} | {} | {:.1} | {goal} | {met} |",
            backend.name(),
            delays.len(),
            at(0.5),
            at(1.0),
            backfill_seconds.unwrap_or(f64::NAN),
        );
        Ok(())
    }
    .await;
    db.remove().await?;
    fake.stop().await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ceiling's page sizes are the integration's defaults.
    #[test]
    fn page_sizes_are_the_manifests_defaults() {
        let manifest = tributary_google_drive::registration().unwrap().manifest;
        let default = |name: &str| {
            manifest
                .settings
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.default.as_ref())
                .and_then(Value::as_u64)
        };
        assert_eq!(default("pageSize"), Some(u64::from(PAGE_SIZE)));
        assert_eq!(
            default("backfillPageSize"),
            Some(u64::from(BACKFILL_PAGE_SIZE))
        );
    }
}

//! `sync` and `early-stop`: the Gmail integration end to end, against the Gmail fake.
//!
//! `sync`: messages per second from the fake into SQLite and PostgreSQL, beside the
//! fake's own ceiling measured in the same run: the same requests (list pages of the
//! integration's page size, one `messages.get?format=full` per listed message, at the
//! same concurrency) sent straight to the fake with the SDK's `HttpClient`, no engine.
//!
//! `early-stop`: `messages.list` calls and wall time of (a) a `start` on a fully synced
//! mailbox with nothing new, and (b) a `start` while a backfill is still mostly queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, EngineConfig, RunUntil};
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::Value;
use tributary_store::{JobFilter, JobState, Store};
use tributary_testkit::gmail::{FakeGmail, GmailConfig, GmailMethod};

use crate::util::{Backend, FreshDb, gmail_registry, link_gmail, stored_items};

/// The Gmail integration's default `messages.list` page size (no `pageSize` setting).
pub const PAGE_SIZE: u32 = 50;

/// Starts the fake with `messages` generated messages (off the async workers).
pub async fn start_fake(messages: usize) -> Result<FakeGmail> {
    Ok(FakeGmail::start(GmailConfig {
        messages,
        ..GmailConfig::default()
    })
    .await?)
}

/// Messages the integration syncs: those outside spam and trash (the generator files
/// about 2 % there, and `messages.list` leaves them out).
pub fn syncable(fake: &FakeGmail) -> usize {
    fake.snapshot()
        .values()
        .filter(|t| !t.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .count()
}

/// The engine settings of every Gmail run: `workers` jobs at once, all on the one
/// account, claiming one job per worker (the binary's default).
pub fn engine_config(workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        claim_batch: workers,
        per_account_concurrency: workers,
        idle_poll: Duration::from_millis(10),
        ..EngineConfig::default()
    }
}

/// One full sync from nothing to idle.
pub struct SyncRun {
    /// The account synced.
    pub account: i64,
    /// Messages stored at the end.
    pub stored: i64,
    /// From enqueueing the first `start` to an idle queue.
    pub elapsed: Duration,
}

/// Links the fake's mailbox (`info`: `FakeGmail::standalone_info`) in `db`, enqueues
/// its first `start` and runs an engine until the queue is idle.
pub async fn full_sync(db: &FreshDb, info: &Value, workers: usize) -> Result<SyncRun> {
    let account = link_gmail(db.store.as_ref(), info, "bench-user").await?;
    let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    db.store
        .enqueue(
            &[start_job(account, engine.config().max_attempts, now)],
            now,
        )
        .await?;
    engine
        .run(RunUntil::Idle(None), std::future::pending())
        .await?;
    let elapsed = started.elapsed();
    let stored = stored_items(db.store.as_ref(), account).await?;
    Ok(SyncRun {
        account,
        stored,
        elapsed,
    })
}

/// Runs the `sync` scenario.
pub async fn sync(
    messages: &[usize],
    workers: &[usize],
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "sync benchmark: Gmail fake -> engine -> store; ceiling = the same requests (list pages of {PAGE_SIZE}, one messages.get per message, same concurrency) straight to the fake with the SDK's HttpClient, no engine"
    );
    println!();
    println!(
        "| backend | messages | workers | stored | seconds | engine msg/s | ceiling msg/s | engine / ceiling |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in messages {
        let fake = start_fake(n).await?;
        let expected = syncable(&fake);
        let info = fake.standalone_info();
        for &backend in backends {
            for &w in workers {
                let label = format!("sync_{n}_{w}");
                let run = async {
                    let db = FreshDb::create(backend, postgres, &label).await?;
                    let run = full_sync(&db, &info, w).await;
                    db.remove().await?;
                    run
                }
                .await;
                let run = match run {
                    Ok(run) => run,
                    Err(e) => {
                        println!(
                            "| {} | {expected} | {w} | n/a ({e:#}) | | | | |",
                            backend.name()
                        );
                        continue;
                    }
                };
                let engine_rate = crate::util::rate(run.stored as f64, run.elapsed);
                let (ceiling_text, ratio_text) = match fake_ceiling(&fake, w, PAGE_SIZE).await {
                    Ok((fetched, elapsed)) => {
                        let ceiling = crate::util::rate(fetched as f64, elapsed);
                        (
                            format!("{ceiling:.0}"),
                            format!("{:.2}", engine_rate / ceiling),
                        )
                    }
                    Err(e) => (format!("n/a ({e:#})"), "n/a".to_owned()),
                };
                let stored = if run.stored as usize == expected {
                    run.stored.to_string()
                } else {
                    format!("{} (of {expected}: incomplete)", run.stored)
                };
                println!(
                    "| {} | {expected} | {w} | {stored} | {:.1} | {engine_rate:.0} | {ceiling_text} | {ratio_text} |",
                    backend.name(),
                    run.elapsed.as_secs_f64(),
                );
            }
        }
        fake.stop().await?;
    }
    Ok(())
}

/// The fake's own ceiling: every page of `messages.list` (one after another, as the
/// integration's chain of list jobs does) and one `messages.get?format=full` per listed
/// message, `workers` at a time, decoded as JSON. Returns messages fetched and the
/// time taken.
pub async fn fake_ceiling(
    fake: &FakeGmail,
    workers: usize,
    page_size: u32,
) -> Result<(u64, Duration)> {
    let http = HttpClient::new().map_err(|e| anyhow!("{e}"))?;
    let token = fake.issue_access_token();
    let base = fake.base_url();
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let lister = {
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        tokio::spawn(async move {
            let mut page_token: Option<String> = None;
            loop {
                let mut request = http
                    .get(format!("{base}gmail/v1/users/me/messages"))
                    .bearer_auth(&token)
                    .query(&[
                        ("maxResults", page_size.to_string()),
                        ("includeSpamTrash", "false".to_owned()),
                    ]);
                if let Some(t) = &page_token {
                    request = request.query(&[("pageToken", t)]);
                }
                let page: Value = http
                    .send_json(request)
                    .await
                    .map_err(|e| anyhow!("messages.list: {e}"))?;
                for m in page["messages"].as_array().into_iter().flatten() {
                    if let Some(id) = m["id"].as_str() {
                        let _ = tx.send(id.to_owned());
                    }
                }
                match page["nextPageToken"].as_str() {
                    Some(t) => page_token = Some(t.to_owned()),
                    None => return Ok::<(), anyhow::Error>(()),
                }
            }
        })
    };
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut gets = JoinSet::new();
    let mut fetched = 0u64;
    while let Some(id) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await?;
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        gets.spawn(async move {
            let request = http
                .get(format!("{base}gmail/v1/users/me/messages/{id}"))
                .bearer_auth(&token)
                .query(&[("format", "full")]);
            let result = http.send_json::<Value>(request).await;
            drop(permit);
            result.map(|_| ()).map_err(|e| anyhow!("messages.get: {e}"))
        });
        fetched += 1;
        while let Some(done) = gets.try_join_next() {
            done??;
        }
    }
    lister.await??;
    while let Some(done) = gets.join_next().await {
        done??;
    }
    Ok((fetched, started.elapsed()))
}

/// Pending (available or running) listing jobs of an account (`start` and
/// `getEmailList`) with an id above `after`. They are the newest jobs of the account
/// while a listing runs, so the newest few hundred of each state are enough to look at.
async fn pending_listing(store: &dyn Store, account: i64, after: i64) -> Result<usize> {
    let mut n = 0;
    for state in [JobState::Available, JobState::Running] {
        let jobs = store
            .list_jobs(&JobFilter {
                state: Some(state),
                user_integration_id: Some(account),
                limit: Some(500),
            })
            .await?;
        n += jobs
            .iter()
            .filter(|j| j.id > after && (j.task_type == "start" || j.task_type == "getEmailList"))
            .count();
    }
    Ok(n)
}

/// An engine running in the background until stopped.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tributary_engine::worker::EngineError>>,
}

impl Running {
    fn start(engine: &Engine) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let engine = engine.clone();
        let task = tokio::spawn(async move {
            engine
                .run(RunUntil::Shutdown, async {
                    let _ = stopped.await;
                })
                .await
        });
        Running { stop, task }
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// Runs the `early-stop` scenario.
pub async fn early_stop(
    messages: &[usize],
    workers: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "early-stop benchmark: messages.list calls (counted by the fake) and wall time of one `start` chain, {workers} workers, page size {PAGE_SIZE}"
    );
    println!();
    println!(
        "| backend | messages | case | list calls | messages.get calls | seconds | state when the start was enqueued |"
    );
    println!("|---|---:|---|---:|---:|---:|---|");
    for &n in messages {
        let fake = start_fake(n).await?;
        let expected = syncable(&fake);
        let info = fake.standalone_info();
        for &backend in backends {
            let name = backend.name();
            match resync_nothing_new(&fake, &info, backend, postgres, n, workers).await {
                Ok(row) => println!(
                    "| {name} | {expected} | (a) re-sync, nothing new | {} | {} | {:.3} | {} |",
                    row.lists,
                    row.gets,
                    row.elapsed.as_secs_f64(),
                    row.state
                ),
                Err(e) => println!(
                    "| {name} | {expected} | (a) re-sync, nothing new | n/a ({e:#}) | | | |"
                ),
            }
            match start_during_backfill(&fake, &info, backend, postgres, n, workers).await {
                Ok(row) => println!(
                    "| {name} | {expected} | (b) start during backfill | {} | {} | {:.3} | {} |",
                    row.lists,
                    row.gets,
                    row.elapsed.as_secs_f64(),
                    row.state
                ),
                Err(e) => println!(
                    "| {name} | {expected} | (b) start during backfill | n/a ({e:#}) | | | |"
                ),
            }
        }
        fake.stop().await?;
    }
    Ok(())
}

struct EarlyStopRow {
    lists: u64,
    gets: u64,
    elapsed: Duration,
    state: String,
}

/// (a): a full sync, then one `start` run to idle; counts its calls.
async fn resync_nothing_new(
    fake: &FakeGmail,
    info: &Value,
    backend: Backend,
    postgres: &str,
    n: usize,
    workers: usize,
) -> Result<EarlyStopRow> {
    let db = FreshDb::create(backend, postgres, &format!("early_a_{n}")).await?;
    let result = async {
        let synced = full_sync(&db, info, workers).await?;
        let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
        fake.reset_counters();
        let started = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        db.store
            .enqueue(
                &[start_job(synced.account, engine.config().max_attempts, now)],
                now,
            )
            .await?;
        engine
            .run(RunUntil::Idle(None), std::future::pending())
            .await?;
        Ok(EarlyStopRow {
            lists: fake.calls(GmailMethod::MessagesList),
            gets: fake.calls(GmailMethod::MessagesGet),
            elapsed: started.elapsed(),
            state: format!("{} messages stored, queue idle", synced.stored),
        })
    }
    .await;
    db.remove().await?;
    result
}

/// (b): a backfill stopped once its listing is done (or, if the listing does not run
/// ahead, once half the downloads are done); then one `start`, timed until its chain
/// of list jobs is done.
async fn start_during_backfill(
    fake: &FakeGmail,
    info: &Value,
    backend: Backend,
    postgres: &str,
    n: usize,
    workers: usize,
) -> Result<EarlyStopRow> {
    let db = FreshDb::create(backend, postgres, &format!("early_b_{n}")).await?;
    let result = async {
        let store = db.store.as_ref();
        let account = link_gmail(store, info, "bench-user").await?;
        let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
        let max_attempts = engine.config().max_attempts;
        fake.reset_counters();
        let now = chrono::Utc::now().timestamp_millis();
        store
            .enqueue(&[start_job(account, max_attempts, now)], now)
            .await?;
        let running = Running::start(&engine);
        // Stop once the listing is done; if it does not run ahead of the downloads,
        // stop at 90 % of the downloads anyway (the state column then says so).
        let most = (n as u64 * 9) / 10;
        crate::util::wait_until(Duration::from_millis(10), || async {
            let listed = fake.calls(GmailMethod::MessagesList) > 0
                && pending_listing(store, account, 0).await? == 0;
            Ok(listed || fake.calls(GmailMethod::MessagesGet) >= most)
        })
        .await?;
        running.stop().await?;
        let stored = stored_items(store, account).await?;
        let pending_before = pending_listing(store, account, 0).await?;
        let state = format!(
            "{stored} of {} stored, {} backfill list jobs still pending{}",
            syncable(fake),
            pending_before,
            if pending_before > 0 {
                " (the listing had not run ahead; its calls are counted too)"
            } else {
                ""
            }
        );
        let newest_before = store
            .list_jobs(&JobFilter {
                state: None,
                user_integration_id: Some(account),
                limit: Some(1),
            })
            .await?
            .first()
            .map_or(0, |j| j.id);

        let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
        fake.reset_counters();
        let started = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        let enqueued = store
            .enqueue(&[start_job(account, max_attempts, now)], now)
            .await?;
        if enqueued != 1 {
            anyhow::bail!("the start was not enqueued (a start was still pending)");
        }
        let running = Running::start(&engine);
        crate::util::wait_until(Duration::from_millis(5), || async {
            Ok(pending_listing(store, account, newest_before).await? == 0)
        })
        .await?;
        let elapsed = started.elapsed();
        let (lists, gets) = (
            fake.calls(GmailMethod::MessagesList),
            fake.calls(GmailMethod::MessagesGet),
        );
        running.stop().await?;
        Ok(EarlyStopRow {
            lists,
            gets,
            elapsed,
            state,
        })
    }
    .await;
    db.remove().await?;
    result
}

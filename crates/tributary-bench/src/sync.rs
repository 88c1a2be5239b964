//! `sync` and `early-stop`: the Gmail integration end to end, against the Gmail fake.
//!
//! `sync`: messages per second from the fake into SQLite and PostgreSQL, beside the
//! fake's own ceiling measured in the same run: the same requests (list pages of the
//! integration's page size, one `messages.get?format=full` per listed message, at the
//! same concurrency) sent straight to the fake with the SDK's `HttpClient`, no engine.
//!
//! `early-stop`: `messages.list` calls and time of (a) a `start` on a fully synced
//! mailbox with nothing new, and (b) `start`s while a backfill is still mostly queued:
//! enqueued only once the backfill's listing is complete (every list page committed,
//! its downloads still queued), so that the fake's list calls during each one are that
//! start's alone; several of them, spaced through the backfill's downloads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, EngineConfig, RunUntil};
use tributary_gmail_fake::{FakeGmail, GmailConfig, GmailMethod};
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::Value;
use tributary_store::{JobFilter, JobState, Store};

use crate::util::{Backend, FreshDb, gmail_registry, link_gmail, stored_items};

/// The Gmail integration's default size of a listing's first page (the manifest's
/// `pageSize` default; a test checks they agree).
pub const PAGE_SIZE: u32 = 50;
/// The Gmail integration's default size of a listing's later pages (the manifest's
/// `backfillPageSize` default; a test checks they agree).
pub const BACKFILL_PAGE_SIZE: u32 = 500;

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
/// account; claims sized as the binary sizes them (about 100 ms of work each).
pub fn engine_config(workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        per_account_concurrency: workers,
        idle_poll: Duration::from_millis(10),
        // The engine's own speed: the fake enforces no quota here (`quota` measures
        // a sync within Gmail's).
        enforce_budgets: false,
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
        "sync benchmark: Gmail fake -> engine -> store; ceiling = the same requests (a first list page of {PAGE_SIZE}, then pages of {BACKFILL_PAGE_SIZE}, one messages.get per message, same concurrency) straight to the fake with the SDK's HttpClient, no engine"
    );
    println!();
    println!(
        "| backend | messages | workers | stored | seconds | engine msg/s | ceiling msg/s | engine / ceiling | token requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in messages {
        let fake = start_fake(n).await?;
        let expected = syncable(&fake);
        let info = fake.standalone_info();
        for &backend in backends {
            for &w in workers {
                let label = format!("sync_{n}_{w}");
                // The token endpoint's grants during the sync (one account, one process).
                let tokens_before = fake.handle().counters().tokens_issued;
                let run = async {
                    let db = FreshDb::create(backend, postgres, &label).await?;
                    let run = full_sync(&db, &info, w).await;
                    db.remove().await?;
                    run
                }
                .await;
                let tokens = fake.handle().counters().tokens_issued - tokens_before;
                let run = match run {
                    Ok(run) => run,
                    Err(e) => {
                        println!(
                            "| {} | {expected} | {w} | n/a ({e:#}) | | | | | |",
                            backend.name()
                        );
                        continue;
                    }
                };
                let engine_rate = crate::util::rate(run.stored as f64, run.elapsed);
                let (ceiling_text, ratio_text) = match fake_ceiling(&fake, w).await {
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
                    "| {} | {expected} | {w} | {stored} | {:.1} | {engine_rate:.0} | {ceiling_text} | {ratio_text} | {tokens} |",
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
/// integration's chain of list jobs does, with its page sizes) and one
/// `messages.get?format=full` per listed message, `workers` at a time, decoded as JSON.
/// Returns messages fetched and the time taken.
pub async fn fake_ceiling(fake: &FakeGmail, workers: usize) -> Result<(u64, Duration)> {
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
                        (
                            "maxResults",
                            if page_token.is_some() {
                                BACKFILL_PAGE_SIZE
                            } else {
                                PAGE_SIZE
                            }
                            .to_string(),
                        ),
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

/// The task types that list: `start` lists the newest page itself, each
/// `getEmailList` one further page.
const LISTING_TASKS: [&str; 2] = ["start", "getEmailList"];

/// How many of an account's newest jobs [`chain_after`] looks at while polling. A list
/// page enqueues at most one page of downloads and the next page, and downloads
/// enqueue nothing, so the newest listing job is always among the newest
/// `BACKFILL_PAGE_SIZE + 1` jobs. (Kept small: the poll competes with the engine for the
/// CPU.)
const CHAIN_LOOKBACK: i64 = 2 * BACKFILL_PAGE_SIZE as i64;

/// How many jobs the final count of a chain looks at (the start's own downloads, if
/// it queued any, are counted up to this).
const CHAIN_COUNT_LIMIT: i64 = 20_000;

fn is_finished(state: JobState) -> bool {
    matches!(
        state,
        JobState::Completed | JobState::Failed | JobState::Dead
    )
}

/// The jobs of an account enqueued after job `after`, as one snapshot.
struct Chain {
    /// `start` and `getEmailList` jobs.
    listing: usize,
    /// Listing jobs that failed or died (the listing then stopped there).
    listing_failed: usize,
    /// Other jobs: the downloads the listing queued.
    downloads: usize,
    /// The newest listing job has finished. A job's children are committed in the
    /// same transaction as its completion, so nothing of the listing is left to run.
    done: bool,
    /// From the oldest listing job's enqueueing to the newest one's commit (store
    /// timestamps; `None` unless done and the oldest one is a `start`).
    elapsed: Option<Duration>,
    /// The snapshot was cut at its limit: `downloads` is a lower bound.
    truncated: bool,
}

/// Reads the account's newest `limit` jobs (one statement, so one consistent
/// snapshot) and sums up those with an id above `after`.
async fn chain_after(store: &dyn Store, account: i64, after: i64, limit: i64) -> Result<Chain> {
    let jobs = store
        .list_jobs(&JobFilter {
            state: None,
            user_integration_id: Some(account),
            limit: Some(limit),
        })
        .await?;
    // Newest first.
    let truncated = jobs.len() as i64 >= limit && jobs.last().is_some_and(|j| j.id > after);
    let jobs: Vec<_> = jobs.into_iter().filter(|j| j.id > after).collect();
    let listing: Vec<_> = jobs
        .iter()
        .filter(|j| LISTING_TASKS.contains(&j.task_type.as_str()))
        .collect();
    let done = listing.first().is_some_and(|tip| is_finished(tip.state));
    let elapsed = match (listing.last(), listing.first()) {
        (Some(first), Some(tip)) if done && first.task_type == "start" => tip
            .finished_at
            .map(|end| Duration::from_millis(u64::try_from(end - first.created_at).unwrap_or(0))),
        _ => None,
    };
    Ok(Chain {
        listing: listing.len(),
        listing_failed: listing
            .iter()
            .filter(|j| matches!(j.state, JobState::Failed | JobState::Dead))
            .count(),
        downloads: jobs.len() - listing.len(),
        done,
        elapsed,
        truncated,
    })
}

/// The id of the account's newest job (0 if none).
async fn newest_job(store: &dyn Store, account: i64) -> Result<i64> {
    Ok(store
        .list_jobs(&JobFilter {
            state: None,
            user_integration_id: Some(account),
            limit: Some(1),
        })
        .await?
        .first()
        .map_or(0, |j| j.id))
}

/// Pending (available or running) jobs of an account.
async fn pending_jobs(store: &dyn Store, account: i64) -> Result<i64> {
    Ok(store
        .job_counts(Some(account))
        .await?
        .iter()
        .filter(|c| matches!(c.state, JobState::Available | JobState::Running))
        .map(|c| c.count)
        .sum())
}

/// Enqueues one `start` for `account` while `engine` runs (or is about to), waits
/// until its listing is done, and measures it: the list calls the fake counted
/// meanwhile (nothing else may be listing), the downloads it queued, and its time
/// from enqueueing to the commit of its last list page.
async fn measured_start(
    store: &dyn Store,
    fake: &FakeGmail,
    account: i64,
    max_attempts: i32,
    run: impl std::future::Future<Output = Result<()>>,
) -> Result<Measured> {
    let after = newest_job(store, account).await?;
    let lists_before = fake.calls(GmailMethod::MessagesList);
    let now = chrono::Utc::now().timestamp_millis();
    let enqueued = store
        .enqueue(&[start_job(account, max_attempts, now)], now)
        .await?;
    if enqueued != 1 {
        anyhow::bail!("the start was not enqueued (a start was still pending)");
    }
    run.await?;
    crate::util::wait_until(Duration::from_millis(10), || async {
        Ok(chain_after(store, account, after, CHAIN_LOOKBACK)
            .await?
            .done)
    })
    .await?;
    let lists = fake.calls(GmailMethod::MessagesList) - lists_before;
    let chain = chain_after(store, account, after, CHAIN_COUNT_LIMIT).await?;
    Ok(Measured { lists, chain })
}

struct Measured {
    /// `messages.list` calls counted by the fake.
    lists: u64,
    chain: Chain,
}

impl Measured {
    fn row(&self, state: String) -> EarlyStopRow {
        let mut notes = Vec::new();
        if self.chain.listing as u64 != self.lists {
            notes.push(format!(
                "{} listing jobs for {} list calls",
                self.chain.listing, self.lists
            ));
        }
        if self.chain.listing_failed > 0 {
            notes.push(format!("{} listing jobs failed", self.chain.listing_failed));
        }
        let downloads = format!(
            "{}{}",
            if self.chain.truncated { ">= " } else { "" },
            self.chain.downloads
        );
        let state = if notes.is_empty() {
            state
        } else {
            format!("{state} ({})", notes.join("; "))
        };
        EarlyStopRow {
            lists: self.lists,
            downloads,
            elapsed: self.chain.elapsed,
            state,
        }
    }
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
    starts: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "early-stop benchmark: messages.list calls (counted by the fake) and time (from enqueueing the `start` to the commit of its last list page) of one `start`, {workers} workers, page size {PAGE_SIZE}; (b): {starts} starts spaced through the downloads of a backfill whose listing is complete, so nothing else lists while they run"
    );
    println!();
    println!(
        "| backend | messages | case | list calls | downloads queued by the start | seconds | state when the start was enqueued |"
    );
    println!("|---|---:|---|---:|---:|---:|---|");
    for &n in messages {
        let fake = start_fake(n).await?;
        let expected = syncable(&fake);
        let info = fake.standalone_info();
        for &backend in backends {
            let name = backend.name();
            let print = |case: &str, row: &EarlyStopRow| {
                println!(
                    "| {name} | {expected} | {case} | {} | {} | {} | {} |",
                    row.lists,
                    row.downloads,
                    row.elapsed
                        .map_or("n/a".to_owned(), |d| format!("{:.3}", d.as_secs_f64())),
                    row.state
                );
            };
            let case_a = "(a) re-sync, nothing new";
            match resync_nothing_new(&fake, &info, backend, postgres, n, workers).await {
                Ok(row) => print(case_a, &row),
                Err(e) => println!("| {name} | {expected} | {case_a} | n/a ({e:#}) | | | |"),
            }
            match starts_during_backfill(&fake, &info, backend, postgres, n, workers, starts).await
            {
                Ok(rows) => {
                    for (i, row) in rows.iter().enumerate() {
                        print(
                            &format!("(b) start {} of {starts} during backfill", i + 1),
                            row,
                        );
                    }
                }
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
    downloads: String,
    elapsed: Option<Duration>,
    state: String,
}

/// (a): a full sync, then one `start` run to idle.
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
        let measured = measured_start(
            db.store.as_ref(),
            fake,
            synced.account,
            engine.config().max_attempts,
            async {
                engine
                    .run(RunUntil::Idle(None), std::future::pending())
                    .await?;
                Ok(())
            },
        )
        .await?;
        Ok(measured.row(format!("{} messages stored, queue idle", synced.stored)))
    }
    .await;
    db.remove().await?;
    result
}

/// (b): a backfill runs; once its listing is complete (every list page committed, so
/// nothing lists any more and the downloads are still queued), `starts` starts, one
/// after another, spaced evenly through the downloads left at that point: the first
/// right away, the next ones after each further share of them is fetched. Each is
/// measured alone ([`measured_start`]) while the backfill's downloads go on.
async fn starts_during_backfill(
    fake: &FakeGmail,
    info: &Value,
    backend: Backend,
    postgres: &str,
    n: usize,
    workers: usize,
    starts: usize,
) -> Result<Vec<EarlyStopRow>> {
    let db = FreshDb::create(backend, postgres, &format!("early_b_{n}")).await?;
    let result = async {
        let store = db.store.as_ref();
        let account = link_gmail(store, info, "bench-user").await?;
        let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
        let max_attempts = engine.config().max_attempts;
        let expected = syncable(fake);
        let lists_before = fake.calls(GmailMethod::MessagesList);
        let began = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        store
            .enqueue(&[start_job(account, max_attempts, now)], now)
            .await?;
        let running = Running::start(&engine);
        let rows = async {
            crate::util::wait_until(Duration::from_millis(20), || async {
                Ok(chain_after(store, account, 0, CHAIN_LOOKBACK).await?.done)
            })
            .await?;
            let listed_in = began.elapsed();
            let backfill_lists = fake.calls(GmailMethod::MessagesList) - lists_before;
            let stored_then = stored_items(store, account).await?;
            let queued_then = pending_jobs(store, account).await?;
            let gets_then = fake.calls(GmailMethod::MessagesGet);
            let mut rows = Vec::new();
            for k in 0..starts {
                // The k-th start waits until k shares of the downloads left when the
                // listing finished are fetched (the fake's counter: cheap to poll), or
                // until the backfill is over (some of those pending jobs had fetched
                // already and were waiting for their commit): counted only when the
                // fake saw no fetch since the last poll.
                let share = u64::try_from(queued_then)? * k as u64 / starts as u64;
                let mut last = None;
                loop {
                    let gets = fake.calls(GmailMethod::MessagesGet);
                    if gets - gets_then >= share
                        || (last == Some(gets) && pending_jobs(store, account).await? == 0)
                    {
                        break;
                    }
                    last = Some(gets);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let stored = stored_items(store, account).await?;
                let queued = pending_jobs(store, account).await?;
                let state = format!(
                    "{stored} of {expected} stored, {queued} downloads queued; the backfill's listing ({backfill_lists} list calls) was complete {:.1} s after its start, {stored_then} stored then",
                    listed_in.as_secs_f64()
                );
                if queued == 0 {
                    rows.push(EarlyStopRow {
                        lists: 0,
                        downloads: "n/a".to_owned(),
                        elapsed: None,
                        state: format!("not run: the backfill was over ({state})"),
                    });
                    break;
                }
                let measured =
                    measured_start(store, fake, account, max_attempts, async { Ok(()) }).await?;
                rows.push(measured.row(state));
            }
            Ok::<_, anyhow::Error>(rows)
        }
        .await;
        running.stop().await?;
        rows
    }
    .await;
    db.remove().await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_the_manifest_defaults() {
        let manifest = tributary_gmail::registration().unwrap().manifest;
        let default = |name: &str| {
            manifest
                .setting(name)
                .and_then(|f| f.default.as_ref())
                .and_then(|v| v.as_u64())
        };
        assert_eq!(default("pageSize"), Some(u64::from(PAGE_SIZE)));
        assert_eq!(
            default("backfillPageSize"),
            Some(u64::from(BACKFILL_PAGE_SIZE))
        );
    }
}

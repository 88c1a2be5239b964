//! `freshness` (Gmail) and `outlook-freshness`: how long a newly delivered message
//! takes to be stored while a backfill runs. A new message arrives in the inbox every
//! second for the whole backfill (Gmail: `insert_raw` with `INBOX`, as
//! `messages.insert` would: never filed in spam or trash, so every one must be stored;
//! Outlook: a message delivered to the Inbox); the scheduler ticks every 250 ms with
//! the given `start` interval (the manifest's history schedule unchanged); the store is
//! polled every 50 ms for new rows. Deliveries go on after the backfill only until at
//! least three were made (a short backfill, as in `--smoke`, would otherwise see
//! none). The goal (issue 5, scenario 2; issue 14, g): the max delay is at most the
//! start interval plus 2 s, whatever the backlog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, domain_schedules};
use tributary_gmail_fake::FakeGmail;
use tributary_sdk::Registry;
use tributary_store::{ContentQuery, Store};

use crate::sync::{engine_config, start_fake, syncable};
use crate::util::{Backend, FreshDb, gmail_registry, link_gmail};

/// Deliveries go on after the backfill until at least this many were made (a short
/// backfill, as in `--smoke`, would otherwise see none).
const MIN_DELIVERIES: usize = 3;

/// The goal's margin over the start interval.
pub const GOAL_MARGIN_SECS: u64 = 2;

/// The run gives up when nothing new is stored for this long during the backfill.
const STALL: Duration = Duration::from_secs(300);

/// A fake mailbox a freshness run delivers to, with its integration.
pub trait Mailbox {
    /// The registry holding the mailbox's integration.
    fn registry(&self) -> Result<Arc<Registry>>;
    /// Links the mailbox to a new user in `store`; the account id.
    fn link(&self, store: &dyn Store) -> impl Future<Output = Result<i64>>;
    /// Messages a full sync stores.
    fn backlog(&self) -> i64;
    /// Delivers the `n`-th new message to the inbox; its external id.
    fn deliver(&self, n: usize) -> impl Future<Output = Result<String>>;
    /// Stops the fake's server.
    fn stop(self) -> impl Future<Output = Result<()>>;
}

impl Mailbox for FakeGmail {
    fn registry(&self) -> Result<Arc<Registry>> {
        gmail_registry()
    }

    async fn link(&self, store: &dyn Store) -> Result<i64> {
        link_gmail(store, &self.standalone_info(), "bench-user").await
    }

    fn backlog(&self) -> i64 {
        syncable(self) as i64
    }

    async fn deliver(&self, n: usize) -> Result<String> {
        let handle = self.handle().clone();
        let raw = delivery(n);
        let id = tokio::task::spawn_blocking(move || handle.insert_raw(&raw, &["INBOX", "UNREAD"]))
            .await??;
        Ok(id)
    }

    async fn stop(self) -> Result<()> {
        Ok(FakeGmail::stop(self).await?)
    }
}

/// The `n`-th delivered message: a small plain-text mail (RFC 5322).
fn delivery(n: usize) -> Vec<u8> {
    let date = chrono::Utc::now().to_rfc2822();
    format!(
        "From: Sender {n} <sender{n}@example.org>\r\n\
         To: tester@example.com\r\n\
         Subject: freshness delivery {n}\r\n\
         Date: {date}\r\n\
         Message-ID: <freshness-{n}-{pid}@bench.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Delivery {n} of the freshness benchmark.\r\n",
        pid = std::process::id()
    )
    .into_bytes()
}

/// Runs the `freshness` scenario (Gmail).
pub async fn freshness(
    messages: usize,
    start_every: &[u64],
    workers: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "freshness benchmark: delay from delivery to stored of a message delivered every second during a {messages}-message backfill, {workers} workers; goal: max <= start interval + {GOAL_MARGIN_SECS} s"
    );
    table(start_every, workers, backends, postgres, || {
        start_fake(messages)
    })
    .await
}

/// The table of a freshness scenario: a row per backend and start interval, each run
/// on a new fake from `start`.
pub async fn table<M, F, Fut>(
    start_every: &[u64],
    workers: usize,
    backends: &[Backend],
    postgres: &str,
    start: F,
) -> Result<()>
where
    M: Mailbox,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<M>>,
{
    println!();
    println!(
        "| backend | start every (s) | delivered | stored | p50 (s) | p99 (s) | max (s) | backfill seconds | goal: interval+2 s | met |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for &backend in backends {
        for &every in start_every {
            let run = async {
                let fake = start().await?;
                let result = one(&fake, backend, every, workers, postgres).await;
                fake.stop().await?;
                result
            };
            if let Err(e) = run.await {
                println!(
                    "| {} | {every} | n/a ({e:#}) | | | | | | | |",
                    backend.name()
                );
            }
        }
    }
    Ok(())
}

async fn one(
    fake: &impl Mailbox,
    backend: Backend,
    every: u64,
    workers: usize,
    postgres: &str,
) -> Result<()> {
    let backlog = fake.backlog();
    let db = FreshDb::create(backend, postgres, &format!("fresh_{every}")).await?;
    let result = async {
        let store = db.store.clone();
        let registry = fake.registry()?;
        let account = fake.link(store.as_ref()).await?;
        let engine = Engine::new(store.clone(), registry.clone(), engine_config(workers))?;
        let mut schedules = domain_schedules(&registry, engine.config().max_attempts);
        for s in &mut schedules {
            s.start_every_ms = i64::try_from(every.saturating_mul(1000))?;
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

        let mut delivered: HashMap<String, Instant> = HashMap::new();
        let mut delays: Vec<f64> = Vec::new();
        let mut stored_total = 0i64;
        let mut after_id = 0i64;
        let mut next_delivery = Instant::now() + Duration::from_secs(1);
        let mut backfill_seconds = None;
        let mut last_progress = Instant::now();
        // After the backfill, wait for the last deliveries: two start intervals more.
        let grace = Duration::from_secs(every.saturating_mul(2) + 5);
        loop {
            let delivering = backfill_seconds.is_none() || delivered.len() < MIN_DELIVERIES;
            if delivering && Instant::now() >= next_delivery {
                next_delivery += Duration::from_secs(1);
                let id = fake.deliver(delivered.len() + 1).await?;
                delivered.insert(id, Instant::now());
            }
            let rows = store
                .list_content(&ContentQuery {
                    user_integration_id: Some(account),
                    after_id: Some(after_id),
                    limit: Some(5_000),
                    ..ContentQuery::default()
                })
                .await?;
            if !rows.is_empty() {
                last_progress = Instant::now();
            } else if backfill_seconds.is_none() && last_progress.elapsed() > STALL {
                anyhow::bail!(
                    "nothing stored for {} s ({stored_total} rows of {backlog} + {} delivered)",
                    STALL.as_secs(),
                    delivered.len()
                );
            }
            for row in &rows {
                after_id = after_id.max(row.id);
                stored_total += 1;
                if let Some(at) = delivered.get(&row.external_id) {
                    delays.push(at.elapsed().as_secs_f64());
                }
            }
            if backfill_seconds.is_none() && stored_total - delays.len() as i64 >= backlog {
                backfill_seconds = Some(began.elapsed().as_secs_f64());
            }
            if let Some(done) = backfill_seconds
                && delivered.len() >= MIN_DELIVERIES
                && (delays.len() == delivered.len()
                    || began.elapsed().as_secs_f64() > done + grace.as_secs_f64())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running.stop().await?;

        delays.sort_by(f64::total_cmp);
        let pct = |p: f64| -> String {
            if delays.is_empty() {
                "n/a (none stored)".to_owned()
            } else {
                let i = ((delays.len() as f64 - 1.0) * p).round() as usize;
                format!("{:.1}", delays[i.min(delays.len() - 1)])
            }
        };
        let goal = every.saturating_add(GOAL_MARGIN_SECS);
        let missing = delivered.len() - delays.len();
        let met = match delays.last() {
            _ if missing > 0 => format!("no ({missing} never stored)"),
            Some(&max) if max <= goal as f64 => "yes".to_owned(),
            Some(_) => "no".to_owned(),
            None => "n/a".to_owned(),
        };
        println!(
            "| {} | {every} | {} | {} | {} | {} | {} | {:.1} | {goal} | {met} |",
            backend.name(),
            delivered.len(),
            delays.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            backfill_seconds.unwrap_or(f64::NAN),
        );
        Ok(())
    }
    .await;
    db.remove().await?;
    result
}

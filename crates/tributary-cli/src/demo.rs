//! `tributary demo`: what Tributary does, in one command and without any account.
//!
//! 1. Starts the fake of `--integration` (Gmail unless told otherwise), found through
//!    the registry, on loopback with `--emails` generated items to sync (Gmail's fake
//!    also files about 2% of its generated mail in spam and trash, which a Gmail
//!    client leaves out, as Gmail's own listing does). The fake answers each API
//!    request after `--latency-ms`, as a remote service would; without latency a
//!    loopback backfill is over before any new mail could arrive.
//! 2. Recreates a SQLite database (`tributary-demo.db` unless `--database-url` names
//!    another `sqlite://` file), creates a demo user and links the fake's account,
//!    validating the credentials as `tributary link` does.
//! 3. Runs a node (`tributary_engine::Node`), as `tributary run` does: the engine
//!    (`--workers`), the scheduler, whose `start` interval is shortened to
//!    `--start-every` seconds, from the moment the account is linked, and the pruner of
//!    completed jobs (`--keep-completed`).
//! 4. While the backfill runs, delivers a new message every `--deliver-every`
//!    seconds on average, at random moments (as mail arrives, and so that deliveries
//!    do not fall in step with the scheduler's ticks). It stops delivering when the
//!    backfill is about to finish (less than one and a half start intervals and a
//!    second left at the current rate), because new mail is found by the next
//!    `start`: mail delivered after that would be stored after the backfill, which is
//!    not what the demo is about.
//! 5. When every message is stored, it stops the engine and reads the database back:
//!    messages stored, duplicates (rows against distinct external ids), agreement with
//!    the fake's own snapshot, how long the backfill took (until the last message of
//!    the original mailbox was stored), and for each message delivered during the
//!    backfill, the delay from delivery to stored.
//!
//! The summary is printed as text, or as one JSON document ([`DemoSummary`]) with
//! `--json`; progress goes to stderr.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, EngineConfig, Node, NodeConfig, PrunerConfig};
use tributary_sdk::{FakeOptions, RunningFake};
use tributary_store::{ContentQuery, Store};

use crate::app::{GlobalArgs, StopSignal, shutdown_signal, sqlite_path};

/// The database the demo recreates unless `--database-url` names another.
pub const DEMO_DATABASE_URL: &str = "sqlite://tributary-demo.db";

/// `tributary demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The integration whose fake the demo syncs (one with a fake; see `tributary
    /// fake`).
    #[arg(long, default_value = "gmail")]
    pub integration: String,
    /// Items to sync in the generated fake (`--emails`: Gmail's messages).
    #[arg(long, visible_alias = "items", default_value_t = 5000)]
    pub emails: usize,
    /// Jobs run at once.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Seconds between two scheduled `start` jobs: how soon new mail is found.
    #[arg(long, default_value_t = 2.0)]
    pub start_every: f64,
    /// Average seconds between two deliveries of new mail during the backfill (each
    /// gap drawn between half and one and a half times this).
    #[arg(long, default_value_t = 2.0)]
    pub deliver_every: f64,
    /// Milliseconds the fake takes to answer each API request. Gmail answers in tens
    /// to hundreds of milliseconds; without latency a loopback backfill would be over
    /// before any new mail could arrive.
    #[arg(long, default_value_t = 40)]
    pub latency_ms: u64,
    /// Seed of the generated items.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Give up when nothing is stored for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub stall_seconds: u64,
    /// How long completed jobs are kept (as `tributary run --keep-completed`).
    #[arg(long, value_name = "DURATION", default_value = "24h",
          value_parser = crate::commands::run::parse_retention)]
    pub keep_completed: Duration,
}

/// A message delivered during the backfill, and when it was stored.
#[derive(Debug, Clone, Serialize)]
pub struct FreshMessage {
    /// The item's id at the service (the stored external id).
    pub external_id: String,
    /// When it was delivered, in epoch milliseconds.
    pub delivered_at_ms: i64,
    /// When it was stored (the row's `created_at`), in epoch milliseconds.
    pub stored_at_ms: Option<i64>,
    /// Milliseconds from delivery to stored.
    pub delay_ms: Option<i64>,
    /// Whether it was stored before the last message of the original mailbox.
    pub stored_before_backfill_finished: bool,
}

/// What the demo prints at the end (`--json` prints exactly this).
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    /// The database, to browse with the other commands.
    pub database_url: String,
    /// The demo account.
    pub user_integration_id: i64,
    /// Items to sync the fake started with (for Gmail, messages in the mailbox).
    pub mailbox_messages: usize,
    /// Messages delivered during the backfill.
    pub delivered: usize,
    /// Items to sync in the fake at the end (for Gmail, outside spam and trash).
    pub fake_messages: usize,
    /// Items the fake holds at the end that a sync leaves out (for Gmail, spam and
    /// trash, as in Gmail's own listing).
    pub spam_or_trash: usize,
    /// Items added during the backfill that a sync leaves out (for Gmail, new mail
    /// filed straight in spam or trash).
    pub delivered_to_spam: usize,
    /// Rows stored for the account.
    pub stored: usize,
    /// Distinct external ids among them.
    pub distinct_external_ids: usize,
    /// `stored - distinct_external_ids`.
    pub duplicates: usize,
    /// Messages to sync of the fake that are not stored.
    pub missing: usize,
    /// Stored ids the fake does not have.
    pub unexpected: usize,
    /// When the account was linked and its first sync enqueued, in epoch milliseconds.
    pub linked_at_ms: i64,
    /// When the last message of the original mailbox was stored, in epoch milliseconds.
    pub backfill_finished_ms: i64,
    /// Seconds from linking until the last message of the original mailbox was stored.
    pub backfill_seconds: f64,
    /// The messages delivered during the backfill.
    pub fresh: Vec<FreshMessage>,
    /// The longest delivery-to-stored delay, in milliseconds.
    pub max_fresh_delay_ms: Option<i64>,
    /// Whether every delivered message was stored before the backfill finished.
    pub all_fresh_stored_before_backfill_finished: bool,
    /// Requests the fake answered, by API method (Gmail: `users.messages.list`...).
    pub api_calls: BTreeMap<String, u64>,
    /// Jobs that ended failed or dead, and items reported as failed.
    pub errors: u64,
    /// Jobs run.
    pub jobs_completed: u64,
    /// Seconds the whole demo took, from start to summary.
    pub wall_seconds: f64,
}

/// Runs the demo. `database_url` is the one given on the command line, if any (the
/// `DATABASE_URL` environment variable is deliberately not used: the demo deletes
/// its database first).
pub async fn run(global: &GlobalArgs, args: DemoArgs, database_url: Option<String>) -> Result<()> {
    if args.emails == 0 {
        bail!("--emails must be at least 1");
    }
    if !(args.start_every > 0.0 && args.deliver_every > 0.0) {
        bail!("--start-every and --deliver-every must be positive");
    }
    let began = Instant::now();
    let url = database_url.unwrap_or_else(|| DEMO_DATABASE_URL.to_owned());
    let path = sqlite_path(&url).with_context(|| {
        format!("the demo needs a sqlite:// database file it can recreate, not `{url}`")
    })?;
    let path = recreate(&path)?;
    let url = format!("sqlite://{}", path.display());
    let say = |line: String| eprintln!("{line}");
    say(format!("database: {url} (recreated)"));

    let registry = crate::app::registry()?;
    let domain = args.integration.as_str();
    let fake = registry
        .fake(domain)?
        .start(FakeOptions {
            items: args.emails,
            seed: args.seed,
            latency: Duration::from_millis(args.latency_ms),
            ..FakeOptions::default()
        })
        .await
        .with_context(|| format!("failed to start the {domain} fake"))?;
    let truth = fake.truth();
    let original = truth.synced;
    let left_out_at_start = truth.left_out;
    let link = fake.link();
    say(format!(
        "fake {} at {}, answering in {} ms (it also holds {left_out_at_start} that a sync leaves out)",
        fake.describe(),
        link.base_url,
        args.latency_ms
    ));

    let store = crate::app::open_store(
        &url,
        global.key_file.as_ref(),
        crate::app::KeyUse::Credentials,
    )
    .await?;
    let user = store
        .create_user("demo-user")
        .await
        .context("failed to create the demo user")?;
    let account = tributary_app::App::new(store.clone(), registry.clone())
        .link(user.id, domain, link.credentials, link.settings)
        .await
        .context("failed to link the demo account")?;
    let id = account.id;
    say(format!(
        "linked the fake's account as user integration {id} (credentials validated)"
    ));

    let workers = args.workers.max(1);
    let config = NodeConfig {
        engine: EngineConfig {
            workers,
            per_account_concurrency: workers,
            idle_poll: Duration::from_millis(50),
            // The demo's service is a fake that enforces no quota: the demo shows the
            // engine's own speed. Against the real service, `run` and `sync` keep to
            // the quotas the manifest declares (Gmail: 15,000 units per user per
            // minute, about 3,000 messages).
            enforce_budgets: false,
            ..EngineConfig::default()
        },
        scheduler_tick: Some(Duration::from_millis(250)),
        // (`max`: a NaN becomes 0; the node takes at least 100 ms.)
        start_every: Some(
            Duration::try_from_secs_f64(args.start_every.max(0.0)).unwrap_or(Duration::MAX),
        ),
        pruner: Some(PrunerConfig {
            keep_completed: args.keep_completed,
            ..PrunerConfig::default()
        }),
    };
    let max_attempts = config.engine.max_attempts;
    let node =
        Node::new(store.clone(), registry.clone(), config).context("failed to start the engine")?;
    let engine = node.engine();
    let linked_at_ms = Utc::now().timestamp_millis();
    store
        .enqueue(&[start_job(id, max_attempts, linked_at_ms)], linked_at_ms)
        .await
        .context("failed to enqueue the first sync")?;
    say(format!(
        "syncing with {workers} workers; a scheduled `start` every {} s finds new mail; a new message arrives about every {} s during the backfill",
        args.start_every, args.deliver_every
    ));

    // The node runs until the watch is over (or the engine stops on an error).
    let stop = StopSignal::default();
    let (watched, engine_result) = tokio::join!(
        async {
            let watched = watch(
                &args,
                fake.as_ref(),
                store.as_ref(),
                id,
                engine,
                global.json,
            )
            .await;
            stop.stop();
            watched
        },
        node.run(stop.stopped()),
    );
    let deliveries = watched?;
    engine_result.context("the engine stopped")?;

    let summary = summarize(Summarize {
        store: store.as_ref(),
        fake: fake.as_ref(),
        url: &url,
        id,
        original: &original,
        deliveries,
        left_out_at_start,
        linked_at_ms,
        began,
        engine,
    })
    .await?;
    fake.stop()
        .await
        .with_context(|| format!("the {domain} fake failed"))?;
    if global.json {
        crate::output::print_json(&summary)?;
    } else {
        print_summary(&summary);
    }
    if summary.duplicates > 0 || summary.missing > 0 || summary.unexpected > 0 {
        bail!(
            "the database does not match the fake: {} duplicates, {} missing, {} unexpected",
            summary.duplicates,
            summary.missing,
            summary.unexpected
        );
    }
    Ok(())
}

/// Deletes the SQLite database and its journal files; returns its absolute path.
fn recreate(path: &std::path::Path) -> Result<PathBuf> {
    let path = std::path::absolute(path)
        .with_context(|| format!("failed to resolve the path {}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "failed to remove the old demo database {}",
                        PathBuf::from(file).display()
                    )
                });
            }
        }
    }
    Ok(path)
}

/// A message delivered by the demo.
struct Delivery {
    external_id: String,
    delivered_at_ms: i64,
}

/// Shows progress, delivers new mail while the backfill has time left, and returns
/// once every message is stored.
async fn watch(
    args: &DemoArgs,
    fake: &dyn RunningFake,
    store: &dyn Store,
    id: i64,
    engine: &Engine,
    quiet: bool,
) -> Result<Vec<Delivery>> {
    let bars = Bars::new(args.emails as u64, quiet);
    let total = |delivered: usize| (args.emails + delivered) as i64;
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut delivering = true;
    let deliver_every = Duration::from_secs_f64(args.deliver_every);
    let mut next_delivery: Option<Instant> = None;
    let mut first_stored: Option<Instant> = None;
    let mut last_progress = (0i64, Instant::now());
    let mut last_plain_line = Instant::now();
    let started = Instant::now();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => bail!("interrupted"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let stored = store
            .content_counts(id)
            .await
            .context("failed to count the stored messages")?
            .items;
        let now = Instant::now();
        if stored > 0 && first_stored.is_none() {
            first_stored = Some(now);
            next_delivery = Some(now);
        }
        if stored != last_progress.0 {
            last_progress = (stored, now);
        } else if now.duration_since(last_progress.1).as_secs() >= args.stall_seconds {
            let s = engine.stats().snapshot();
            bail!(
                "nothing was stored for {} s ({stored} of {} messages stored, {} jobs failed); see `tributary --database-url ... jobs`",
                args.stall_seconds,
                total(deliveries.len()),
                s.jobs_failed
            );
        }

        // Deliver while the backfill has clearly more than a start interval left.
        if delivering
            && let (Some(due), Some(first)) = (next_delivery, first_stored)
            && now >= due
        {
            let remaining = (total(deliveries.len()) - stored).max(0) as f64;
            let rate = stored as f64 / now.duration_since(first).as_secs_f64().max(0.1);
            let seconds_left = remaining / rate.max(1.0);
            if seconds_left > 1.5 * args.start_every + 1.0 {
                if let Some(external_id) = fake.add_item() {
                    deliveries.push(Delivery {
                        external_id,
                        delivered_at_ms: Utc::now().timestamp_millis(),
                    });
                }
                next_delivery = Some(due + deliver_every.mul_f64(rand::random_range(0.5..1.5)));
            } else {
                delivering = false;
            }
        }

        let s = engine.stats().snapshot();
        bars.update(stored, total(deliveries.len()), deliveries.len(), &s);
        if quiet || bars.visible() {
            last_plain_line = now;
        } else if now.duration_since(last_plain_line) >= Duration::from_secs(5) {
            last_plain_line = now;
            eprintln!(
                "[{:>5.1} s] {stored} of {} messages stored, {} new messages delivered, {} jobs done",
                started.elapsed().as_secs_f64(),
                total(deliveries.len()),
                deliveries.len(),
                s.jobs_completed
            );
        }
        if !delivering && stored >= total(deliveries.len()) {
            bars.finish();
            return Ok(deliveries);
        }
    }
}

/// The demo's progress bars (hidden when stderr is not a terminal, or with `--json`).
struct Bars {
    _multi: MultiProgress,
    backfill: ProgressBar,
    fresh: ProgressBar,
}

impl Bars {
    fn new(emails: u64, quiet: bool) -> Bars {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let backfill = multi.add(ProgressBar::new(emails));
        backfill.set_style(
            ProgressStyle::with_template(
                "stored [{bar:30.cyan/blue}] {pos}/{len} messages  {msg}  {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let fresh = multi.add(ProgressBar::new_spinner());
        fresh.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        fresh.enable_steady_tick(Duration::from_millis(120));
        Bars {
            _multi: multi,
            backfill,
            fresh,
        }
    }

    fn visible(&self) -> bool {
        !self.backfill.is_hidden()
    }

    fn update(
        &self,
        stored: i64,
        total: i64,
        delivered: usize,
        s: &tributary_engine::StatsSnapshot,
    ) {
        self.backfill.set_length(total.max(0) as u64);
        self.backfill.set_position(stored.max(0) as u64);
        let rate = crate::progress::rate(stored.max(0) as u64, self.backfill.elapsed());
        self.backfill.set_message(format!("{rate:.0} messages/s"));
        self.fresh.set_message(format!(
            "{delivered} new messages delivered; {} jobs done, {} retried, {} failed",
            s.jobs_completed, s.jobs_retried, s.jobs_failed
        ));
    }

    fn finish(&self) {
        self.backfill.finish();
        self.fresh.finish_and_clear();
    }
}

/// Inputs of [`summarize`].
struct Summarize<'a> {
    store: &'a dyn Store,
    fake: &'a dyn RunningFake,
    url: &'a str,
    id: i64,
    original: &'a BTreeSet<String>,
    deliveries: Vec<Delivery>,
    left_out_at_start: usize,
    linked_at_ms: i64,
    began: Instant,
    engine: &'a Engine,
}

/// Reads every stored row back and compares it with the fake.
async fn summarize(input: Summarize<'_>) -> Result<DemoSummary> {
    let Summarize {
        store,
        fake,
        url,
        id,
        original,
        deliveries,
        left_out_at_start,
        linked_at_ms,
        began,
        engine,
    } = input;
    let mut stored_at: HashMap<String, i64> = HashMap::new();
    let mut rows = 0usize;
    let mut after_id = None;
    loop {
        let page = store
            .list_content(&ContentQuery {
                user_integration_id: Some(id),
                include_deleted: true,
                since: None,
                after_id,
                limit: Some(1000),
            })
            .await
            .context("failed to read the stored messages back")?;
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        rows += page.len();
        for item in page {
            let at = item.created_at.timestamp_millis();
            stored_at
                .entry(item.external_id)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    let truth = fake.truth();
    let (truth, spam_or_trash) = (truth.synced, truth.left_out);
    let missing = truth.iter().filter(|i| !stored_at.contains_key(*i)).count();
    let unexpected = stored_at.keys().filter(|i| !truth.contains(*i)).count();
    let backfill_finished_ms = original
        .iter()
        .filter_map(|i| stored_at.get(i))
        .max()
        .copied()
        .unwrap_or(linked_at_ms);
    let fresh: Vec<FreshMessage> = deliveries
        .into_iter()
        .map(|d| {
            let stored = stored_at.get(&d.external_id).copied();
            FreshMessage {
                delay_ms: stored.map(|s| s - d.delivered_at_ms),
                stored_before_backfill_finished: stored.is_some_and(|s| s <= backfill_finished_ms),
                stored_at_ms: stored,
                external_id: d.external_id,
                delivered_at_ms: d.delivered_at_ms,
            }
        })
        .collect();
    let s = engine.stats().snapshot();
    Ok(DemoSummary {
        database_url: url.to_owned(),
        user_integration_id: id,
        mailbox_messages: original.len(),
        delivered: fresh.len(),
        fake_messages: truth.len(),
        spam_or_trash,
        delivered_to_spam: spam_or_trash.saturating_sub(left_out_at_start),
        stored: rows,
        distinct_external_ids: stored_at.len(),
        duplicates: rows - stored_at.len(),
        missing,
        unexpected,
        linked_at_ms,
        backfill_finished_ms,
        backfill_seconds: (backfill_finished_ms - linked_at_ms) as f64 / 1000.0,
        max_fresh_delay_ms: fresh.iter().filter_map(|f| f.delay_ms).max(),
        all_fresh_stored_before_backfill_finished: fresh
            .iter()
            .all(|f| f.stored_before_backfill_finished),
        fresh,
        api_calls: fake.request_counts(),
        errors: s.jobs_failed + s.item_errors,
        jobs_completed: s.jobs_completed,
        wall_seconds: began.elapsed().as_secs_f64(),
    })
}

fn print_summary(s: &DemoSummary) {
    let secs = |ms: i64| ms as f64 / 1000.0;
    println!();
    println!("Tributary demo: done in {:.1} s", s.wall_seconds);
    println!(
        "  messages stored:   {} ({} in the mailbox at the start + {} delivered during the backfill; the fake holds {}, and {} that a sync leaves out)",
        s.stored, s.mailbox_messages, s.delivered, s.fake_messages, s.spam_or_trash
    );
    println!(
        "  duplicates:        {} ({} rows, {} distinct message ids); missing: {}, unexpected: {}",
        s.duplicates, s.stored, s.distinct_external_ids, s.missing, s.unexpected
    );
    println!(
        "  backfill:          {} messages in {:.1} s ({:.0} messages/s), {} jobs, {} errors",
        s.mailbox_messages,
        s.backfill_seconds,
        s.mailbox_messages as f64 / s.backfill_seconds.max(0.001),
        s.jobs_completed,
        s.errors
    );
    let calls: Vec<String> = s
        .api_calls
        .iter()
        .map(|(m, n)| format!("{n} {m}"))
        .collect();
    println!("  API calls:         {}", calls.join(", "));
    if s.fresh.is_empty() {
        println!(
            "  new mail:          none delivered (the backfill was too short; try more --emails)"
        );
    } else {
        println!("  new mail delivered during the backfill, from delivery to stored:");
        for f in &s.fresh {
            let delivered = secs(f.delivered_at_ms - s.linked_at_ms);
            match f.delay_ms {
                Some(delay) => println!(
                    "    {}  delivered at {:>5.1} s, stored {:.2} s later{}",
                    f.external_id,
                    delivered,
                    secs(delay),
                    if f.stored_before_backfill_finished {
                        "  (before the backfill finished)"
                    } else {
                        "  (after the backfill finished)"
                    }
                ),
                None => println!(
                    "    {}  delivered at {delivered:>5.1} s, not stored",
                    f.external_id
                ),
            }
        }
        if let Some(max) = s.max_fresh_delay_ms {
            println!(
                "    longest: {:.2} s, while the whole backfill took {:.1} s",
                secs(max),
                s.backfill_seconds
            );
        }
    }
    let db = &s.database_url;
    let id = s.user_integration_id;
    println!();
    println!("Browse what was stored:");
    println!("  tributary --database-url {db} links");
    println!("  tributary --database-url {db} content ls {id} --limit 20");
    println!("  tributary --database-url {db} content show <item id>");
    println!("  tributary --database-url {db} jobs --user-integration {id} --limit 20");
    println!("(from the repository: cargo run --release -- --database-url {db} ...)");
}

//! `slack-sync` and `slack-freshness`: the Slack integration end to end, against its
//! fake.
//!
//! `slack-sync`: messages (and replies) per second from the fake into SQLite and
//! PostgreSQL with the fake's rate limits and the engine's budgets off (the engine's
//! own speed), beside the fake's ceiling measured in the same run: the same requests
//! the integration makes (`conversations.history` pages of the same size per
//! conversation, one `conversations.replies` per thread), sent straight to the fake
//! with the SDK's `HttpClient` at the same concurrency, no engine. It also prints the
//! calls the sync made and how long they take at Slack's Tier 3 (50 a minute per
//! method): the bound a real workspace sets.
//!
//! `slack-freshness`: 500 conversations (a generated workspace), a few of them active:
//! a message is posted in one of the active ones every few seconds while the planner
//! shares Tier 3's 50 history calls a minute among all of them; the delay until the
//! store holds each message. Everything time-based runs `time_scale` times faster than
//! Slack's clock: the fake's rate windows, the engine's budgets, the `start` interval
//! (60 s), the planner's intervals (`pollEverySeconds`, `idlePollSeconds`) and the
//! posting rate; delays are reported in Slack time (real seconds × the scale). Goal
//! (issue 13): a new message in an active conversation is stored within 2 minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, EngineConfig, RunUntil, domain_schedules};
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ItemRef, Registry};
use tributary_slack_fake::{ALL_SCOPES, FakeSlack, RateProfile, SlackConfig};
use tributary_store::{NewUserIntegration, Store};

use crate::sync::engine_config;
use crate::util::{Backend, FreshDb};

/// Messages per history page in `slack-sync` (the largest Slack allows).
const PAGE: u32 = 999;

/// A registry holding the Slack integration.
fn slack_registry() -> Result<Arc<Registry>> {
    Ok(Arc::new(Registry::new([tributary_slack::registration()])?))
}

/// Links one account to the fake with `settings` on top of the fake's address.
async fn link_slack(
    store: &dyn Store,
    fake: &FakeSlack,
    settings: &[(&str, Value)],
) -> Result<i64> {
    let grant = fake.handle().grant(ALL_SCOPES);
    let mut credentials = Credentials::default();
    credentials.set("accessToken", grant.access_token);
    let mut all = Map::new();
    all.insert("baseUrl".into(), Value::String(fake.base_url()));
    all.insert("tokenUrl".into(), Value::String(fake.token_url()));
    for (key, value) in settings {
        all.insert((*key).into(), value.clone());
    }
    let user = store.create_user("bench-user").await?;
    Ok(store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "slack".into(),
            credentials,
            settings: all,
        })
        .await?
        .id)
}

/// Runs `slack-sync`.
pub async fn slack_sync(
    messages: usize,
    channels: usize,
    workers: &[usize],
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    let replies = messages * 3 / 20;
    println!(
        "slack-sync benchmark: Slack fake ({channels} channels, {messages} messages, {replies} replies; rate limits off) -> engine (budgets off) -> store; ceiling = the same requests (history pages of {PAGE} per conversation, one conversations.replies per thread, same concurrency) straight to the fake with the SDK's HttpClient, no engine"
    );
    println!();
    println!(
        "| backend | items | workers | stored | seconds | engine items/s | ceiling items/s | engine / ceiling | history + replies calls | at Tier 3 (min) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fake = FakeSlack::start(SlackConfig {
        channels,
        messages,
        replies,
        users: 50,
        enforce_limits: false,
        ..SlackConfig::default()
    })
    .await?;
    let expected = fake.handle().snapshot().len();
    for &backend in backends {
        for &w in workers {
            fake.handle().reset_counters();
            let run = async {
                let db = FreshDb::create(backend, postgres, &format!("slack_{w}")).await?;
                let run = full_sync(&db, &fake, w).await;
                db.remove().await?;
                run
            }
            .await;
            let (stored, elapsed) = match run {
                Ok(run) => run,
                Err(e) => {
                    println!(
                        "| {} | {expected} | {w} | n/a ({e:#}) | | | | | | |",
                        backend.name()
                    );
                    continue;
                }
            };
            let history = fake.handle().calls("conversations.history");
            let thread_calls = fake.handle().calls("conversations.replies");
            // Each method has its own 50 a minute: the slower of the two bounds.
            let tier3_minutes = history.max(thread_calls) as f64 / 50.0;
            let engine_rate = crate::util::rate(stored as f64, elapsed);
            let (ceiling_text, ratio_text) = match ceiling(&fake, w).await {
                Ok((items, took)) => {
                    let ceiling = crate::util::rate(items as f64, took);
                    (
                        format!("{ceiling:.0}"),
                        format!("{:.2}", engine_rate / ceiling),
                    )
                }
                Err(e) => (format!("n/a ({e:#})"), "n/a".to_owned()),
            };
            let stored_text = if stored as usize == expected {
                stored.to_string()
            } else {
                format!("{stored} (of {expected}: incomplete)")
            };
            println!(
                "| {} | {expected} | {w} | {stored_text} | {:.1} | {engine_rate:.0} | {ceiling_text} | {ratio_text} | {history} + {thread_calls} | {tier3_minutes:.1} |",
                backend.name(),
                elapsed.as_secs_f64()
            );
        }
    }
    fake.stop().await?;
    Ok(())
}

/// The settings of a sync that reads every conversation at once.
fn eager_settings(page: u32) -> Vec<(&'static str, Value)> {
    vec![
        ("pageSize", Value::from(page)),
        ("pollEverySeconds", Value::from(0)),
        ("idlePollSeconds", Value::from(0)),
        ("pollsPerStart", Value::from(100_000)),
    ]
}

async fn full_sync(db: &FreshDb, fake: &FakeSlack, workers: usize) -> Result<(i64, Duration)> {
    let account = link_slack(db.store.as_ref(), fake, &eager_settings(PAGE)).await?;
    crate::util::sync_until_idle(db, slack_registry()?, account, workers).await
}

/// The fake's ceiling: items read and the time taken (see the module docs).
async fn ceiling(fake: &FakeSlack, workers: usize) -> Result<(u64, Duration)> {
    let http = HttpClient::new().map_err(|e| anyhow!("{e}"))?;
    let token = fake.handle().grant(ALL_SCOPES).access_token;
    let base = fake.base_url();
    let call = move |method: &'static str, query: Vec<(String, String)>| {
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        async move {
            let request = http
                .get(format!("{base}{method}"))
                .bearer_auth(&token)
                .query(&query);
            let body: Value = http
                .send_ok(request)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .json()
                .map_err(|e| anyhow!("{e}"))?;
            anyhow::ensure!(body["ok"] == true, "{method}: {}", body["error"]);
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let started = Instant::now();
    let list = call(
        "conversations.list",
        vec![
            (
                "types".into(),
                "public_channel,private_channel,mpim,im".into(),
            ),
            ("limit".into(), "1000".into()),
        ],
    )
    .await?;
    let channels: Vec<String> = list["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["is_member"] == true || c["is_im"] == true)
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut tasks = JoinSet::new();
    for channel in channels {
        let call = call.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let mut items = 0u64;
            let mut threads = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let permit = slots.acquire().await?;
                let mut query = vec![
                    ("channel".to_owned(), channel.clone()),
                    ("limit".to_owned(), PAGE.to_string()),
                ];
                if let Some(c) = &cursor {
                    query.push(("cursor".into(), c.clone()));
                }
                let page = call("conversations.history", query).await?;
                drop(permit);
                for m in page["messages"].as_array().into_iter().flatten() {
                    items += 1;
                    if m["reply_count"].as_u64().unwrap_or(0) > 0
                        && let Some(ts) = m["ts"].as_str()
                    {
                        threads.push(ts.to_owned());
                    }
                }
                match page["response_metadata"]["next_cursor"].as_str() {
                    Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                    _ => break,
                }
            }
            for ts in threads {
                let permit = slots.acquire().await?;
                let page = call(
                    "conversations.replies",
                    vec![
                        ("channel".into(), channel.clone()),
                        ("ts".into(), ts.clone()),
                        ("limit".into(), PAGE.to_string()),
                    ],
                )
                .await?;
                drop(permit);
                items += page["messages"]
                    .as_array()
                    .map_or(0, |m| m.len().saturating_sub(1) as u64);
            }
            Ok::<u64, anyhow::Error>(items)
        });
    }
    let mut items = 0;
    while let Some(done) = tasks.join_next().await {
        items += done??;
    }
    Ok((items, started.elapsed()))
}

/// Runs `slack-freshness`.
pub async fn slack_freshness(
    channels: usize,
    active: usize,
    minutes: u64,
    time_scale: f64,
    workers: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "slack-freshness benchmark: {channels} conversations at Tier 3 (50 history calls a minute), {active} of them active, a message posted in one of those every 3 s, for {minutes} min; Slack's clock runs {time_scale}x (the fake's windows, the budgets, the start interval, the planner's intervals); delays in Slack seconds; goal: max <= 120 s for a post in an active conversation (one whose previous post of the run is stored: the planner has seen it busy); a post in a quiet conversation, and every post after it until one is stored, waits for its idle poll (idlePollSeconds, 1 h)"
    );
    println!();
    println!(
        "| backend | posts | stored | in active conversations | p50 (s) | max (s) | posts while quiet (before its first post is stored) | their max (s) | first reads done (min) | 429s | goal | met |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for &backend in backends {
        if let Err(e) = freshness_one(
            backend, channels, active, minutes, time_scale, workers, postgres,
        )
        .await
        {
            println!("| {} | n/a ({e:#}) | | | | | | | | | | |", backend.name());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn freshness_one(
    backend: Backend,
    channels: usize,
    active: usize,
    minutes: u64,
    scale: f64,
    workers: usize,
    postgres: &str,
) -> Result<()> {
    let fake = FakeSlack::start(SlackConfig {
        channels,
        messages: channels * 20,
        replies: channels,
        users: 50,
        profile: RateProfile::Internal,
        time_scale: scale,
        latency: Duration::from_millis(20),
        ..SlackConfig::default()
    })
    .await?;
    let db = FreshDb::create(backend, postgres, "slack_fresh").await?;
    let result = async {
        let store = db.store.clone();
        let registry = slack_registry()?;
        let scaled = |secs: f64| Value::from((secs / scale).round().max(1.0) as u64);
        let account = link_slack(
            store.as_ref(),
            &fake,
            &[
                ("pollEverySeconds", scaled(60.0)),
                ("idlePollSeconds", scaled(3600.0)),
                ("reconcileEverySeconds", Value::from(604_800)),
                ("fullReadEveryHours", Value::from(0)),
            ],
        )
        .await?;
        let engine = Engine::new(
            store.clone(),
            registry.clone(),
            EngineConfig {
                enforce_budgets: true,
                budget_time_scale: scale,
                ..engine_config(workers)
            },
        )?;
        let mut schedules = domain_schedules(&registry, engine.config().max_attempts);
        for s in &mut schedules {
            s.start_every_ms = (60_000.0 / scale) as i64;
        }
        let began = Instant::now();
        let running = crate::util::Running::start(
            &engine,
            store.clone(),
            schedules,
            Duration::from_millis(100),
        );
        // The active conversations: a spread over the list.
        let readable: Vec<String> = fake
            .handle()
            .conversations()
            .into_iter()
            .filter(|c| c.is_member && !c.archived && !c.removed)
            .map(|c| c.id)
            .collect();
        let step = (readable.len() / active.max(1)).max(1);
        let hot: Vec<String> = readable
            .iter()
            .step_by(step)
            .take(active)
            .cloned()
            .collect();
        let me = fake.handle().installer();
        let post_every = Duration::from_secs_f64(3.0 / scale);
        let run_for = Duration::from_secs_f64(minutes as f64 * 60.0 / scale);
        let mut next_post = Instant::now() + post_every;
        // id -> (posted at, channel, the conversation was active: an earlier post of
        // the run stored, so the planner had seen it busy)
        let mut pending: HashMap<String, (Instant, String, bool)> = HashMap::new();
        let mut active_seen: HashSet<String> = HashSet::new();
        let (mut steady, mut early): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        let mut posts = 0usize;
        let mut first_reads_done: Option<f64> = None;
        loop {
            let now = Instant::now();
            let posting = now.duration_since(began) < run_for;
            if posting && now >= next_post {
                next_post += post_every;
                let channel = &hot[posts % hot.len()];
                let active = active_seen.contains(channel);
                let ts = fake
                    .handle()
                    .post(channel, &me, &format!("fresh {posts}"))?;
                pending.insert(
                    format!("{channel}:{ts}"),
                    (Instant::now(), channel.clone(), active),
                );
                posts += 1;
            }
            if first_reads_done.is_none() {
                let state = store.get_user_integration(account).await?.sync_state;
                let read = readable
                    .iter()
                    .filter(|c| state.contains_key(&format!("newest.{c}")))
                    .count();
                if read == readable.len() {
                    first_reads_done = Some(began.elapsed().as_secs_f64() * scale / 60.0);
                }
            }
            if !pending.is_empty() {
                let asked: Vec<ItemRef> = pending.keys().map(ItemRef::new).collect();
                for id in store.stored_items(account, &asked).await? {
                    if let Some((at, channel, active)) = pending.remove(&id) {
                        let delay = at.elapsed().as_secs_f64() * scale;
                        active_seen.insert(channel);
                        if active {
                            steady.push(delay);
                        } else {
                            early.push(delay);
                        }
                    }
                }
            }
            if !posting && pending.is_empty() {
                break;
            }
            anyhow::ensure!(
                began.elapsed() < run_for * 3 + Duration::from_secs(120),
                "{} posts still not stored",
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.stop().await?;
        steady.sort_by(f64::total_cmp);
        early.sort_by(f64::total_cmp);
        let pick = |v: &[f64], p: f64| -> String {
            if v.is_empty() {
                return "n/a".into();
            }
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            format!("{:.0}", v[i.min(v.len() - 1)])
        };
        let met = match steady.last() {
            Some(&max) if max <= 120.0 => "yes",
            Some(_) => "no",
            None => "n/a",
        };
        println!(
            "| {} | {posts} | {} | {} | {} | {} | {} | {} | {} | {} | 120 | {met} |",
            backend.name(),
            steady.len() + early.len(),
            steady.len(),
            pick(&steady, 0.5),
            pick(&steady, 1.0),
            early.len(),
            pick(&early, 1.0),
            first_reads_done.map_or("not within the run".to_owned(), |m| format!("{m:.0}")),
            fake.handle().total_rate_limited(),
        );
        Ok(())
    }
    .await;
    db.remove().await?;
    fake.stop().await?;
    result
}

/// Runs `slack-limited`: one conversation of `messages` messages (and `replies`
/// replies) under the `limited-2025` profile (1 history and 1 replies call a minute,
/// 15 messages a page), the fake enforcing it and the engine's budgets on, everything
/// `time_scale` times faster than Slack's clock. The bound is what the profile allows:
/// one call a minute of the busier method, so `calls - 1` minutes at the least.
pub async fn slack_limited(
    messages: usize,
    replies: usize,
    time_scale: f64,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "slack-limited benchmark: one conversation of {messages} messages and {replies} replies under limited-2025 (1 conversations.history and 1 conversations.replies call a minute, 15 messages a page), limits enforced by the fake and budgeted by the engine; Slack's clock runs {time_scale}x; minutes in Slack time; bound = (calls of the busier method - 1) minutes"
    );
    println!();
    println!(
        "| backend | items | stored | history + replies calls | Slack minutes | bound (min) | bound / taken | 429s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &backend in backends {
        let fake = FakeSlack::start(SlackConfig {
            channels: 1,
            messages,
            replies,
            users: 10,
            profile: RateProfile::Limited2025,
            time_scale,
            ..SlackConfig::default()
        })
        .await?;
        let expected = fake.handle().snapshot().len();
        let run = async {
            let db = FreshDb::create(backend, postgres, "slack_limited").await?;
            let run = async {
                let mut settings = eager_settings(15);
                settings.push(("rateProfile", Value::from("limited-2025")));
                settings.push(("reconcileEverySeconds", Value::from(604_800)));
                settings.push(("fullReadEveryHours", Value::from(0)));
                let account = link_slack(db.store.as_ref(), &fake, &settings).await?;
                let engine = Engine::new(
                    db.store.clone(),
                    slack_registry()?,
                    EngineConfig {
                        enforce_budgets: true,
                        budget_time_scale: time_scale,
                        ..engine_config(4)
                    },
                )?;
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
                let stored = crate::util::stored_items(db.store.as_ref(), account).await?;
                Ok::<_, anyhow::Error>((stored, elapsed))
            }
            .await;
            db.remove().await?;
            run
        }
        .await;
        match run {
            Ok((stored, elapsed)) => {
                let history = fake.handle().calls("conversations.history");
                let thread_calls = fake.handle().calls("conversations.replies");
                let taken = elapsed.as_secs_f64() * time_scale / 60.0;
                let bound = history.max(thread_calls).saturating_sub(1) as f64;
                println!(
                    "| {} | {expected} | {stored} | {history} + {thread_calls} | {taken:.1} | {bound:.0} | {:.2} | {} |",
                    backend.name(),
                    if taken > 0.0 { bound / taken } else { 0.0 },
                    fake.handle().total_rate_limited(),
                );
            }
            Err(e) => println!(
                "| {} | {expected} | n/a ({e:#}) | | | | | |",
                backend.name()
            ),
        }
        fake.stop().await?;
    }
    Ok(())
}

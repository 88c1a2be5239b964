//! `queue`: no-op jobs per second (claim + run + commit) on SQLite and PostgreSQL at
//! several concurrencies, next to the machine's own ceiling measured in the same run
//! (`pgbench -N` TPS for PostgreSQL; single-row insert + commit for SQLite).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use tributary_engine::{Engine, EngineConfig, RunUntil};
use tributary_sdk::{Credentials, Registry, Task};
use tributary_store::{Cipher, NewJob, NewUserIntegration, Store};

use crate::util::ScratchDb;

/// Runs the `queue` scenario.
pub async fn queue(
    jobs: usize,
    concurrency: &[usize],
    batch: usize,
    postgres: Option<&str>,
    smoke: bool,
) -> Result<()> {
    println!("queue benchmark: {jobs} no-op jobs per run, claim/commit batch {batch}");
    println!();
    println!("| backend | concurrency | jobs/s | ceiling | ceiling measure |");
    println!("|---|---:|---:|---:|---|");

    let dir = std::env::temp_dir().join(format!("tributary-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite_ceiling = sqlite_ceiling(&dir, if smoke { 1 } else { 3 }).await?;
    for &c in concurrency {
        let url = format!("sqlite://{}", dir.join(format!("queue-{c}.db")).display());
        let rate = run_noop(&url, jobs, c, batch).await?;
        println!(
            "| SQLite | {c} | {rate:.0} | {sqlite_ceiling:.0} | single-row insert + commit/s (WAL, synchronous=NORMAL) |"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    if let Some(server) = postgres {
        let ceiling = pgbench_ceiling(server, if smoke { 2 } else { 10 }).await;
        let ceiling_text = match &ceiling {
            Ok(tps) => format!("{tps:.0}"),
            Err(e) => format!("n/a ({e})"),
        };
        for &c in concurrency {
            let db = ScratchDb::create(server, &format!("queue_{c}")).await?;
            let rate = run_noop(&db.url, jobs, c, batch).await;
            db.drop_now().await?;
            println!(
                "| PostgreSQL | {c} | {:.0} | {ceiling_text} | pgbench -N TPS (4 clients) |",
                rate?
            );
        }
    }
    Ok(())
}

/// Enqueues `jobs` no-op jobs over 16 accounts and times the engine draining them;
/// returns jobs per second. Also `peer`'s Tributary side.
pub(crate) async fn run_noop(
    url: &str,
    jobs: usize,
    concurrency: usize,
    batch: usize,
) -> Result<f64> {
    let store = tributary_store::connect(url, Cipher::random_for_tests()).await?;
    store.migrate().await?;
    let registry = Arc::new(Registry::new([tributary_testkit::noop::registration()])?);
    let accounts = enqueue_noops(store.as_ref(), jobs, 16).await?;
    let config = EngineConfig {
        workers: concurrency,
        claim_batch: batch,
        commit_batch: batch,
        per_account_concurrency: concurrency,
        idle_poll: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = Engine::new(store.clone(), registry, config)?;
    let started = Instant::now();
    engine
        .run(RunUntil::Idle(None), std::future::pending())
        .await?;
    let elapsed = started.elapsed();
    let done = engine.stats().snapshot().jobs_completed;
    if done != jobs as u64 {
        bail!("expected {jobs} completed jobs, engine reports {done} ({accounts} accounts)");
    }
    Ok(jobs as f64 / elapsed.as_secs_f64())
}

async fn enqueue_noops(store: &dyn Store, jobs: usize, accounts: usize) -> Result<usize> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::new();
    for i in 0..accounts {
        let user = store.create_user(&format!("bench-{i}")).await?;
        let ui = store
            .create_user_integration(NewUserIntegration {
                user_id: user.id,
                integration_domain: "noop".into(),
                credentials: Credentials::default(),
                settings: Default::default(),
            })
            .await?;
        ids.push(ui.id);
    }
    let all: Vec<NewJob> = (0..jobs)
        .map(|i| NewJob {
            user_integration_id: ids[i % ids.len()],
            task: Task::new("noop", tributary_sdk::serde_json::Value::Null),
            priority: 5,
            dedupe_key: None,
            max_attempts: 3,
            run_at: now,
        })
        .collect();
    for chunk in all.chunks(5_000) {
        store.enqueue(chunk, now).await?;
    }
    Ok(ids.len())
}

/// Single-row insert + commit per second on SQLite (WAL, synchronous=NORMAL).
async fn sqlite_ceiling(dir: &std::path::Path, seconds: u64) -> Result<f64> {
    let path = dir.join("ceiling.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    sqlx::query("PRAGMA journal_mode=WAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("PRAGMA synchronous=NORMAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mut tx = conn.begin().await?;
        sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind("x")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `pgbench -N` TPS on a scratch database of the same server.
async fn pgbench_ceiling(server: &str, seconds: u64) -> Result<f64> {
    let db = ScratchDb::create(server, "pgbench").await?;
    let run = |args: &[&str]| {
        std::process::Command::new("pgbench")
            .args(args)
            .arg(&db.url)
            .output()
            .context("pgbench not found (Debian package postgresql-contrib or postgresql-client)")
    };
    let init = run(&["-i", "-s", "1", "-q"])?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr).trim()
        );
    }
    let t = seconds.to_string();
    let out = run(&["-N", "-c", "4", "-j", "2", "-T", &t])?;
    db.drop_now().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no tps line in pgbench output: {text}"))
}

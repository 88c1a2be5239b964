//! `prune`: the jobs table over a simulated day of scheduled work, with the pruner on
//! (and, with `--no-prune`, off for contrast).
//!
//! `accounts` synthetic accounts (one synthetic source of a few items, shared) are
//! linked, then a manual clock moves in steps of `step` (a minute by default): each
//! step runs one scheduler tick, the engine until nothing is claimable, and one round
//! of the pruner (the pruner's own interval is a minute). The synthetic manifest's
//! timers are the real ones (`start` every 60 s, history every 120 s: 2,160 jobs per
//! account and day), so a simulated day of 1,000 accounts is 2.2 million jobs. The
//! retention is simulated too (`--keep-minutes`, two hours by default, so the day
//! shows the table levelling off well before its end; the binary's default is 24 h).
//!
//! Each report (every simulated hour) prints the rows of `jobs` by state, the rows it
//! would hold without pruning (rows now plus rows pruned so far: nothing else deletes
//! jobs here), the database's size (SQLite: the file and its WAL; PostgreSQL:
//! `pg_database_size` and `pg_total_relation_size('jobs')`), and the pruner's work
//! since the last report (rows deleted, its longest statement: on SQLite, the longest
//! it held the write lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::Connection;
use tributary_engine::{
    Clock, Engine, EngineConfig, ManualClock, Pruner, PrunerConfig, RunUntil, Scheduler,
    domain_schedules,
};
use tributary_sdk::Registry;
use tributary_store::{JobState, NewUserIntegration};
use tributary_testkit::synthetic::{SourceConfig, SourceServer};

use crate::util::{Backend, FreshDb};

/// What one run simulates.
#[derive(Debug, Clone, Copy)]
pub struct PruneRun {
    /// Linked accounts.
    pub accounts: usize,
    /// Items of the (shared) synthetic source.
    pub items: usize,
    /// Simulated duration.
    pub hours: u64,
    /// Retention of completed jobs, simulated minutes.
    pub keep_minutes: u64,
    /// Manual-clock step, seconds.
    pub step_seconds: u64,
    /// Simulated minutes between two reported rows.
    pub report_minutes: u64,
    /// Workers of the engine.
    pub workers: usize,
    /// Jobs per pruning statement.
    pub batch: u64,
}

/// Runs the `prune` scenario on each backend, pruning on and, when asked, off.
pub async fn prune(
    run: PruneRun,
    modes: &[bool],
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    let per_day = 2_160 * run.accounts;
    println!(
        "prune benchmark: {} synthetic accounts ({} items each), {} simulated hours in steps of {} s \
         (about {per_day} scheduled jobs a simulated day), completed jobs kept {} simulated minutes, \
         pruned {} per statement, {} workers",
        run.accounts,
        run.items,
        run.hours,
        run.step_seconds,
        run.keep_minutes,
        run.batch,
        run.workers
    );
    println!();
    println!(
        "| backend | pruning | simulated time | available | running | completed | failed + dead | rows | rows without pruning | pruned since the last row | longest prune statement ms | database MiB | WAL MiB | jobs table MiB | wall s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &backend in backends {
        for &pruning in modes {
            if let Err(e) = one(backend, pruning, run, postgres).await {
                println!(
                    "| {} | {} | n/a ({e:#}) | | | | | | | | | | | | |",
                    backend.name(),
                    on_off(pruning)
                );
            }
        }
    }
    Ok(())
}

fn on_off(pruning: bool) -> &'static str {
    if pruning { "on" } else { "off" }
}

async fn one(backend: Backend, pruning: bool, run: PruneRun, postgres: &str) -> Result<()> {
    let label = if pruning { "prune_on" } else { "prune_off" };
    let db = FreshDb::create(backend, postgres, label).await?;
    let result = simulate(&db, backend, pruning, run).await;
    db.remove().await?;
    result
}

async fn simulate(db: &FreshDb, backend: Backend, pruning: bool, run: PruneRun) -> Result<()> {
    let server = SourceServer::start(SourceConfig::new(run.items, 7, "bench-token"))
        .await
        .context("cannot start the synthetic source")?;
    for n in 0..run.accounts {
        let user = db.store.create_user(&format!("prune-{n}")).await?;
        db.store
            .create_user_integration(NewUserIntegration {
                user_id: user.id,
                integration_domain: "synthetic".into(),
                credentials: server.credentials(),
                settings: server.settings(),
            })
            .await?;
    }
    let registry = Arc::new(Registry::new([tributary_synthetic::registration()])?);
    // A fixed simulated midnight; every queue time comes from this clock.
    let clock = ManualClock::new(1_800_000_000_000);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let config = EngineConfig {
        workers: run.workers,
        idle_poll: Duration::from_millis(5),
        // Never expires while the manual clock moves: jobs finish within a step.
        lease: Duration::from_secs(24 * 3600),
        ..EngineConfig::default()
    };
    let max_attempts = config.max_attempts;
    let engine = Engine::with_clock(db.store.clone(), registry.clone(), config, shared.clone())?;
    let scheduler = Scheduler::new(
        db.store.clone(),
        domain_schedules(&registry, max_attempts),
        shared.clone(),
    );
    let pruner = Pruner::new(
        db.store.clone(),
        shared,
        PrunerConfig {
            keep_completed: Duration::from_secs(run.keep_minutes * 60),
            batch: run.batch,
            ..PrunerConfig::default()
        },
    );

    let began = Instant::now();
    let step_ms = i64::try_from(run.step_seconds.max(1) * 1000).unwrap_or(60_000);
    let total_ms = i64::try_from(run.hours * 3_600_000).unwrap_or(i64::MAX);
    let report_ms = i64::try_from(run.report_minutes.max(1) * 60_000).unwrap_or(3_600_000);
    let (mut elapsed_ms, mut next_report) = (0_i64, report_ms);
    let (mut pruned_total, mut pruned_since, mut longest) = (0_u64, 0_u64, Duration::ZERO);
    while elapsed_ms < total_ms {
        scheduler.tick().await?;
        engine
            .run(RunUntil::NothingClaimable, std::future::pending())
            .await?;
        if pruning {
            let round = pruner.prune_once().await?;
            longest = longest.max(round.longest_batch);
            pruned_total += round.deleted;
            pruned_since += round.deleted;
        }
        clock.advance_ms(step_ms);
        elapsed_ms += step_ms;
        if elapsed_ms >= next_report || elapsed_ms >= total_ms {
            let sample = measure(db, backend).await?;
            let minutes = elapsed_ms / 60_000;
            println!(
                "| {} | {} | {:02}:{:02} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {:.0} |",
                backend.name(),
                on_off(pruning),
                minutes / 60,
                minutes % 60,
                sample.available,
                sample.running,
                sample.completed,
                sample.failed_or_dead,
                sample.rows,
                sample.rows + pruned_total,
                if pruning {
                    pruned_since.to_string()
                } else {
                    "-".into()
                },
                if pruning {
                    format!("{:.1}", longest.as_secs_f64() * 1000.0)
                } else {
                    "-".into()
                },
                mib(sample.database_bytes),
                sample
                    .wal_bytes
                    .map_or("-".into(), |b| format!("{:.1}", mib(b))),
                sample
                    .jobs_bytes
                    .map_or("-".into(), |b| format!("{:.1}", mib(b))),
                began.elapsed().as_secs_f64(),
            );
            (pruned_since, longest) = (0, Duration::ZERO);
            next_report += report_ms;
        }
    }
    let stats = engine.stats().snapshot();
    println!(
        "<!-- {} pruning {}: {} jobs completed, {} failed, {} pruned, {:.0} s -->",
        backend.name(),
        on_off(pruning),
        stats.jobs_completed,
        stats.jobs_failed,
        pruned_total,
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One report's figures.
struct Sample {
    available: i64,
    running: i64,
    completed: i64,
    failed_or_dead: i64,
    rows: u64,
    database_bytes: u64,
    wal_bytes: Option<u64>,
    jobs_bytes: Option<u64>,
}

async fn measure(db: &FreshDb, backend: Backend) -> Result<Sample> {
    let counts = db.store.job_counts(None).await?;
    let of = |states: &[JobState]| -> i64 {
        counts
            .iter()
            .filter(|c| states.contains(&c.state))
            .map(|c| c.count)
            .sum()
    };
    let all = of(&[
        JobState::Available,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Dead,
    ]);
    let mut sample = Sample {
        available: of(&[JobState::Available]),
        running: of(&[JobState::Running]),
        completed: of(&[JobState::Completed]),
        failed_or_dead: of(&[JobState::Failed, JobState::Dead]),
        rows: u64::try_from(all).unwrap_or(0),
        database_bytes: 0,
        wal_bytes: None,
        jobs_bytes: None,
    };
    match backend {
        Backend::Sqlite => {
            let path = db
                .url
                .strip_prefix("sqlite://")
                .context("a SQLite URL without sqlite://")?;
            let size = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            sample.database_bytes = size(path.to_owned());
            sample.wal_bytes = Some(size(format!("{path}-wal")));
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await?;
            let (database, jobs): (i64, i64) = sqlx::query_as(
                "SELECT pg_database_size(current_database()), pg_total_relation_size('jobs')",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            sample.database_bytes = u64::try_from(database).unwrap_or(0);
            sample.jobs_bytes = Some(u64::try_from(jobs).unwrap_or(0));
        }
    }
    Ok(sample)
}

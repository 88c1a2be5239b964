//! `quota`: a Gmail sync against a fake that enforces Google's per-user quota (15,000
//! units per user per minute, 5 per `messages.get` and `messages.list`): how many
//! requests the quota refused, and how close the sync ran to the quota's rate.
//!
//! One engine of 16 workers per backend, then (PostgreSQL) four engines of 16 workers
//! on one database, each with its own in-process buckets as four processes have: only
//! the database's shared budget rows keep them together under the quota.

use std::time::Instant;

use anyhow::{Context, Result};
use tributary_engine::{Engine, RunUntil};
use tributary_gmail_fake::UserQuota;

use crate::sync::{engine_config, start_fake, syncable};
use crate::util::{Backend, FreshDb, gmail_registry, link_gmail, stored_items};

/// One measured sync.
struct Measured {
    seconds: f64,
    stored: i64,
    units: u64,
    peak: u64,
    refused: u64,
}

/// Runs the scenario for `messages` on `backends` and prints the table.
pub async fn run(messages: usize, backends: &[Backend], postgres: &str) -> Result<()> {
    let quota = UserQuota::GOOGLE;
    println!(
        "quota benchmark: a {messages}-message Gmail sync against the fake enforcing {} units per user per {} s; \
         units are the fake's count of what it accepted; % of the quota's rate = units per minute / {}",
        quota.capacity,
        quota.window.as_secs(),
        quota.capacity
    );
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>10} {:>9} {:>13} {:>8}",
        "backend",
        "engines",
        "workers",
        "stored",
        "seconds",
        "units",
        "units/min",
        "busiest window",
        "refused"
    );
    for &backend in backends {
        let mut shapes = vec![1];
        if backend == Backend::Postgres {
            shapes.push(4);
        }
        for engines in shapes {
            let m = one(backend, messages, engines, postgres).await?;
            let per_minute = m.units as f64 / m.seconds.max(1e-9) * 60.0;
            println!(
                "{:<10} {:>8} {:>9} {:>9} {:>9.1} {:>10} {:>9.0} {:>13} {:>8}   ({:.1} % of the quota's rate)",
                backend.name(),
                engines,
                16,
                m.stored,
                m.seconds,
                m.units,
                per_minute,
                m.peak,
                m.refused,
                per_minute / quota.capacity as f64 * 100.0
            );
        }
    }
    Ok(())
}

async fn one(
    backend: Backend,
    messages: usize,
    engines: usize,
    postgres: &str,
) -> Result<Measured> {
    let fake = start_fake(messages).await?;
    let expected = syncable(&fake) as i64;
    let db = FreshDb::create(backend, postgres, &format!("quota_{engines}")).await?;
    let result = async {
        let store = db.store.clone();
        let registry = gmail_registry()?;
        let account = link_gmail(store.as_ref(), &fake.standalone_info(), "quota-user").await?;
        fake.set_quota(Some(UserQuota::GOOGLE));
        fake.reset_counters();
        let began = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        store
            .enqueue(&[tributary_engine::worker::start_job(account, 5, now)], now)
            .await?;
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..engines {
            let config = tributary_engine::EngineConfig {
                worker_id: format!("quota-{i}"),
                enforce_budgets: true,
                ..engine_config(16)
            };
            let engine = Engine::new(store.clone(), registry.clone(), config)?;
            runs.spawn(async move {
                engine
                    .run(RunUntil::Idle(Some(account)), std::future::pending())
                    .await
            });
        }
        while let Some(run) = runs.join_next().await {
            run.context("an engine panicked")??;
        }
        let seconds = began.elapsed().as_secs_f64();
        let stored = stored_items(store.as_ref(), account).await?;
        anyhow::ensure!(stored == expected, "stored {stored} of {expected} messages");
        let counters = fake.counters();
        Ok(Measured {
            seconds,
            stored,
            units: counters.quota_units,
            peak: counters.quota_peak,
            refused: counters.quota_exceeded,
        })
    }
    .await;
    db.remove().await?;
    result
}

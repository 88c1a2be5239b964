//! `scheduler`: one `Scheduler::tick` over many linked accounts that are all due, then
//! the claims that take every due job.
//!
//! The accounts are inserted in bulk SQL: one Gmail account is linked through the
//! store (so its credentials are encrypted as usual), then copied N-1 times in one
//! `INSERT ... SELECT` (same user, same encrypted credentials; the scheduler reads
//! neither). The first tick is timed with the `start` schedule only; a tick enqueues at
//! most `TICK_ENQUEUE_LIMIT` jobs of a kind and leaves the other due accounts to the
//! claims, so the claims that follow (256 jobs each, as a busy engine asks) are timed
//! until every account's `start` was claimed. A second tick at the same instant (starts
//! no longer due) then does the same for the history checks.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use sqlx::Connection;
use tributary_engine::{Clock, ManualClock, Scheduler, domain_schedules};
use tributary_sdk::serde_json::json;

use crate::util::{Backend, FreshDb, gmail_registry, link_gmail};

/// Jobs asked for per claim, as the engine's claims at most are by default.
const CLAIM_BATCH: usize = 256;

/// Runs the `scheduler` scenario.
pub async fn scheduler(accounts: usize, backends: &[Backend], postgres: &str) -> Result<()> {
    println!(
        "scheduler benchmark: one Scheduler::tick over {accounts} due Gmail accounts (bulk-inserted)"
    );
    println!();
    println!(
        "| backend | accounts | insert seconds | tick | tick seconds | enqueued by the tick | left to the claims | claims | claim seconds | jobs claimed | claimed jobs/s |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &backend in backends {
        if let Err(e) = one(backend, accounts, postgres).await {
            println!("| {} | {accounts} | n/a ({e:#}) | | | | |", backend.name());
        }
    }
    Ok(())
}

async fn one(backend: Backend, accounts: usize, postgres: &str) -> Result<()> {
    let name = backend.name();
    let db = FreshDb::create(backend, postgres, "scheduler").await?;
    let result = async {
        let inserted_in = Instant::now();
        let info = json!({"credentials": {"clientId": "c", "clientSecret": "s", "refreshToken": "r"},
                          "settings": {}});
        let template = link_gmail(db.store.as_ref(), &info, "bench-user").await?;
        let copies = accounts.saturating_sub(1) as i64;
        let copy_columns = "user_id, integration_domain, credentials, settings, status, sync_state, created_at, updated_at";
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) \
                     INSERT INTO user_integrations ({copy_columns}) \
                     SELECT {copy_columns} FROM user_integrations, s WHERE id = ? AND ? > 0"
                )))
                .bind(copies)
                .bind(template)
                .bind(copies)
                .execute(&mut conn)
                .await?;
                conn.close().await?;
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO user_integrations ({copy_columns}) \
                     SELECT {copy_columns} FROM user_integrations CROSS JOIN generate_series(1, $1) \
                     WHERE id = $2"
                )))
                .bind(copies)
                .bind(template)
                .execute(&mut conn)
                .await?;
                sqlx::query("ANALYZE").execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        let linked = db.store.list_user_integrations(None).await?.len();
        let insert_seconds = inserted_in.elapsed().as_secs_f64();

        let registry = gmail_registry()?;
        let schedules = domain_schedules(&registry, 5);
        let starts_only: Vec<_> = schedules
            .iter()
            .cloned()
            .map(|mut s| {
                s.history = None;
                s
            })
            .collect();
        let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp_millis()));
        for (label, schedules) in [
            ("1st: starts only", starts_only),
            ("2nd: history checks (starts not due)", schedules),
        ] {
            let scheduler = Scheduler::new(db.store.clone(), schedules, clock.clone());
            let began = Instant::now();
            let report = scheduler.tick().await?;
            let tick = began.elapsed();
            let enqueued = report.starts + report.histories;
            // Claim until nothing is left: the queued jobs and the due accounts the
            // tick left, which the claims turn into jobs.
            let began = Instant::now();
            let (mut claims, mut claimed) = (0_u64, 0_u64);
            loop {
                let jobs = db
                    .store
                    .claim("bench", CLAIM_BATCH, 600_000, clock.now_ms())
                    .await?;
                claims += 1;
                if jobs.is_empty() {
                    break;
                }
                claimed += jobs.len() as u64;
            }
            let claiming = began.elapsed();
            println!(
                "| {name} | {linked} | {insert_seconds:.1} | {label} | {:.3} | {enqueued} | {} | {claims} | {:.2} | {claimed} | {:.0} |",
                tick.as_secs_f64(),
                report.left_to_claims,
                claiming.as_secs_f64(),
                crate::util::rate(claimed as f64, claiming),
            );
        }
        Ok(())
    }
    .await;
    db.remove().await?;
    result
}

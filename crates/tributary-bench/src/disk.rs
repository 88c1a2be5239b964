//! `disk`: what a backfill leaves on disk. N messages are synced from the Gmail fake,
//! as in `sync`, into one account or spread over K accounts (each linked to a mailbox
//! of N / K messages: many accounts mean many concurrent readers, the engine's
//! per-account look-ups), while a sampler reads the sizes and the stored count every
//! 250 ms on its own connection (a concurrent reader, as a progress bar is): on SQLite
//! the database file and its write-ahead log (`-wal`), on PostgreSQL
//! `pg_total_relation_size` and `pg_indexes_size` of `user_integration_content` and
//! `jobs`. Rows at a quarter, half and three quarters of the backfill, at its end
//! (queue idle), and after a re-sync (one `start` per account with nothing new: the
//! steady state's small commits).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::Connection;
use tokio::sync::Mutex;
use tributary_engine::worker::start_job;
use tributary_engine::{Engine, RunUntil};
use tributary_sdk::serde_json::Value;
use tributary_store::Store;

use crate::sync::{engine_config, start_fake, syncable};
use crate::util::{Backend, FreshDb, gmail_registry, link_gmail};

/// How often the sampler looks.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Sizes at one moment, bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Sizes {
    /// SQLite: the database file. PostgreSQL: `user_integration_content`, all of it.
    a: u64,
    /// SQLite: the `-wal` file. PostgreSQL: the indexes of `user_integration_content`.
    b: u64,
    /// PostgreSQL: `jobs`, all of it.
    c: u64,
    /// PostgreSQL: the indexes of `jobs`.
    d: u64,
}

/// Where the sizes come from.
enum Probe {
    Sqlite {
        db: PathBuf,
        wal: PathBuf,
        conn: Mutex<sqlx::SqliteConnection>,
    },
    Postgres(Mutex<sqlx::PgConnection>),
}

impl Probe {
    async fn new(db: &FreshDb, backend: Backend) -> Result<Probe> {
        Ok(match backend {
            Backend::Sqlite => {
                let path = db
                    .url
                    .strip_prefix("sqlite://")
                    .context("a SQLite URL")?
                    .to_owned();
                Probe::Sqlite {
                    wal: PathBuf::from(format!("{path}-wal")),
                    db: PathBuf::from(path),
                    conn: Mutex::new(sqlx::SqliteConnection::connect(&db.url).await?),
                }
            }
            Backend::Postgres => {
                Probe::Postgres(Mutex::new(sqlx::PgConnection::connect(&db.url).await?))
            }
        })
    }

    /// Messages stored (not deleted), in every account.
    async fn stored(&self) -> Result<i64> {
        const SQL: &str = "SELECT count(*) FROM user_integration_content WHERE is_deleted = false";
        Ok(match self {
            Probe::Sqlite { conn, .. } => {
                sqlx::query_scalar(SQL)
                    .fetch_one(&mut *conn.lock().await)
                    .await?
            }
            Probe::Postgres(conn) => {
                sqlx::query_scalar(SQL)
                    .fetch_one(&mut *conn.lock().await)
                    .await?
            }
        })
    }

    async fn sizes(&self) -> Result<Sizes> {
        match self {
            Probe::Sqlite { db, wal, .. } => Ok(Sizes {
                a: file_len(db),
                b: file_len(wal),
                ..Sizes::default()
            }),
            Probe::Postgres(conn) => {
                let (a, b, c, d): (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT pg_total_relation_size('user_integration_content'), \
                            pg_indexes_size('user_integration_content'), \
                            pg_total_relation_size('jobs'), pg_indexes_size('jobs')",
                )
                .fetch_one(&mut *conn.lock().await)
                .await?;
                let u = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok(Sizes {
                    a: u(a),
                    b: u(b),
                    c: u(c),
                    d: u(d),
                })
            }
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// One printed row.
struct Row {
    when: String,
    stored: i64,
    sizes: Sizes,
    /// The largest `-wal` seen so far (SQLite).
    wal_peak: u64,
}

/// Runs the `disk` scenario.
pub async fn disk(
    messages: &[usize],
    accounts: &[usize],
    workers: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "disk benchmark: N messages backfilled from the Gmail fake into 1 or K accounts (each linked to a mailbox of N / K), {workers} workers; sizes and the stored count read every {} ms on a connection of their own (a concurrent reader)",
        SAMPLE_EVERY.as_millis()
    );
    for &backend in backends {
        println!();
        match backend {
            Backend::Sqlite => {
                println!(
                    "| backend | messages | accounts | when | stored | database (MiB) | WAL (MiB) | largest WAL so far (MiB) |"
                );
                println!("|---|---:|---:|---|---:|---:|---:|---:|");
            }
            Backend::Postgres => {
                println!(
                    "| backend | messages | accounts | when | stored | user_integration_content (MiB) | of which indexes (MiB) | jobs (MiB) | of which indexes (MiB) |"
                );
                println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
            }
        }
        for &n in messages {
            for &k in accounts {
                let k = k.max(1);
                let fake = start_fake(n.div_ceil(k)).await?;
                let expected = syncable(&fake) * k;
                let info = fake.standalone_info();
                let print = |row: &Row| match backend {
                    Backend::Sqlite => println!(
                        "| SQLite | {expected} | {k} | {} | {} | {} | {} | {} |",
                        row.when,
                        row.stored,
                        mib(row.sizes.a),
                        mib(row.sizes.b),
                        mib(row.wal_peak)
                    ),
                    Backend::Postgres => println!(
                        "| PostgreSQL | {expected} | {k} | {} | {} | {} | {} | {} | {} |",
                        row.when,
                        row.stored,
                        mib(row.sizes.a),
                        mib(row.sizes.b),
                        mib(row.sizes.c),
                        mib(row.sizes.d)
                    ),
                };
                let db = FreshDb::create(backend, postgres, &format!("disk_{n}_{k}")).await?;
                let result = backfill(&db, backend, &info, k, workers, expected, &print).await;
                db.remove().await?;
                fake.stop().await?;
                if let Err(e) = result {
                    println!(
                        "| {} | {expected} | {k} | n/a ({e:#}) | | | | |",
                        backend.name()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Links `accounts` accounts to the mailbox, backfills them with a sampler running,
/// then re-syncs each once.
async fn backfill(
    db: &FreshDb,
    backend: Backend,
    info: &Value,
    accounts: usize,
    workers: usize,
    expected: usize,
    print: &dyn Fn(&Row),
) -> Result<()> {
    let store: &dyn Store = db.store.as_ref();
    let probe = Probe::new(db, backend).await?;
    let mut ids = Vec::with_capacity(accounts);
    for i in 0..accounts {
        ids.push(link_gmail(store, info, &format!("bench-user-{i}")).await?);
    }
    let engine = Engine::new(db.store.clone(), gmail_registry()?, engine_config(workers))?;
    let max_attempts = engine.config().max_attempts;
    let starts = |now| -> Vec<_> {
        ids.iter()
            .map(|&id| start_job(id, max_attempts, now))
            .collect()
    };
    let mut wal_peak = 0u64;

    let began = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    store.enqueue(&starts(now), now).await?;
    let done = Arc::new(AtomicBool::new(false));
    let run = {
        let engine = engine.clone();
        let done = done.clone();
        async move {
            let result = engine
                .run(RunUntil::Idle(None), std::future::pending())
                .await;
            done.store(true, Ordering::SeqCst);
            result
        }
    };
    let sample = async {
        let mut next_quarter = 1usize;
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let sizes = probe.sizes().await?;
            wal_peak = wal_peak.max(sizes.b);
            let stored = probe.stored().await?;
            // The last quarter reached, once (a fast backfill skips some).
            let quarter = (usize::try_from(stored).unwrap_or(0) * 4 / expected.max(1)).min(3);
            if quarter >= next_quarter {
                print(&Row {
                    when: format!(
                        "backfill {quarter}/4 ({:.0} s)",
                        began.elapsed().as_secs_f64()
                    ),
                    stored,
                    sizes,
                    wal_peak,
                });
                next_quarter = quarter + 1;
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    let (ran, sampled) = tokio::join!(run, sample);
    ran?;
    sampled?;
    let elapsed = began.elapsed();
    let sizes = probe.sizes().await?;
    wal_peak = wal_peak.max(sizes.b);
    print(&Row {
        when: format!("end of backfill ({:.0} s)", elapsed.as_secs_f64()),
        stored: probe.stored().await?,
        sizes,
        wal_peak,
    });

    // The steady state: a `start` per account that finds nothing new, small commits.
    let now = chrono::Utc::now().timestamp_millis();
    store.enqueue(&starts(now), now).await?;
    engine
        .run(RunUntil::Idle(None), std::future::pending())
        .await?;
    let sizes = probe.sizes().await?;
    wal_peak = wal_peak.max(sizes.b);
    print(&Row {
        when: "after a re-sync (nothing new)".to_owned(),
        stored: probe.stored().await?,
        sizes,
        wal_peak,
    });
    Ok(())
}

//! What the scenarios share: scratch databases on both backends, a Gmail account
//! linked to the fake, and reading the process's peak memory.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Connection;
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, Registry};
use tributary_store::{Cipher, NewUserIntegration, Store};

/// The default PostgreSQL server of every scenario.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A backend to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file in the temp directory.
    Sqlite,
    /// A scratch database on the given server.
    Postgres,
}

impl Backend {
    /// The name printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// SQLite, then PostgreSQL, each unless skipped.
    pub fn selected(no_sqlite: bool, no_postgres: bool) -> Vec<Backend> {
        let mut backends = Vec::new();
        if !no_sqlite {
            backends.push(Backend::Sqlite);
        }
        if !no_postgres {
            backends.push(Backend::Postgres);
        }
        backends
    }
}

/// A fresh, migrated database of one backend, removed by [`FreshDb::remove`].
pub struct FreshDb {
    /// Its URL.
    pub url: String,
    /// The store over it.
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Scratch(ScratchDb),
}

impl FreshDb {
    /// Creates a fresh database named after `label` (unique per process).
    pub async fn create(backend: Backend, postgres: &str, label: &str) -> Result<FreshDb> {
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir()
                    .join(format!("tributary-bench-{}-{label}.db", std::process::id()));
                remove_sqlite_files(&path);
                (format!("sqlite://{}", path.display()), Cleanup::File(path))
            }
            Backend::Postgres => {
                let db = ScratchDb::create(postgres, label).await?;
                (db.url.clone(), Cleanup::Scratch(db))
            }
        };
        let store = tributary_store::connect(&url, Cipher::random_for_tests())
            .await
            .with_context(|| format!("cannot open {url}"))?;
        store.migrate().await?;
        Ok(FreshDb {
            url,
            store,
            cleanup,
        })
    }

    /// Closes and deletes the database.
    pub async fn remove(self) -> Result<()> {
        drop(self.store);
        match self.cleanup {
            Cleanup::File(path) => {
                remove_sqlite_files(&path);
                Ok(())
            }
            Cleanup::Scratch(db) => db.drop_now().await,
        }
    }
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
}

/// A scratch PostgreSQL database, dropped by `drop_now`.
pub struct ScratchDb {
    server: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl ScratchDb {
    /// Creates (or re-creates) `tributary_bench_<label>_<pid>` on `server`.
    pub async fn create(server: &str, label: &str) -> Result<ScratchDb> {
        let name = format!("tributary_bench_{label}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {server}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        Ok(ScratchDb {
            server: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// Drops the database.
    pub async fn drop_now(self) -> Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// The registry of the Gmail integration.
pub fn gmail_registry() -> Result<Arc<Registry>> {
    Ok(Arc::new(Registry::new([tributary_gmail::registration()])?))
}

/// Links a Gmail account whose credentials and settings are `info` (the shape of
/// `FakeGmail::standalone_info`) to a new user; returns the account id.
pub async fn link_gmail(store: &dyn Store, info: &Value, user_ref: &str) -> Result<i64> {
    let object = |v: &Value| -> Map<String, Value> { v.as_object().cloned().unwrap_or_default() };
    let user = store.create_user(user_ref).await?;
    let account = store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "gmail".into(),
            credentials: Credentials::new(object(&info["credentials"])),
            settings: object(&info["settings"]),
        })
        .await?;
    Ok(account.id)
}

/// Messages stored (not deleted) for an account.
pub async fn stored_items(store: &dyn Store, account: i64) -> Result<i64> {
    Ok(store.content_counts(account).await?.items)
}

/// A field of `/proc/self/status` in kB (`VmHWM`, `VmRSS`), if readable.
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Waits until `done` returns true, polling every `every`.
pub async fn wait_until<F, Fut>(every: Duration, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    loop {
        if done().await? {
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}

/// One full sync of `account` from nothing to idle: its first `start` enqueued, an
/// engine of `workers` ([`crate::sync::engine_config`]) over `registry` run until the
/// queue is idle. Items stored and the time taken.
pub async fn sync_until_idle(
    db: &FreshDb,
    registry: Arc<Registry>,
    account: i64,
    workers: usize,
) -> Result<(i64, Duration)> {
    let engine = tributary_engine::Engine::new(
        db.store.clone(),
        registry,
        crate::sync::engine_config(workers),
    )?;
    let started = std::time::Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    db.store
        .enqueue(
            &[tributary_engine::worker::start_job(
                account,
                engine.config().max_attempts,
                now,
            )],
            now,
        )
        .await?;
    engine
        .run(
            tributary_engine::RunUntil::Idle(None),
            std::future::pending(),
        )
        .await?;
    let elapsed = started.elapsed();
    Ok((stored_items(db.store.as_ref(), account).await?, elapsed))
}

/// Prints one row of a sync-throughput table: `cells` (the row's first columns, each
/// followed by ` | `), then what the engine stored (beside `expected`), its seconds and
/// rate, the ceiling's rate (measured by `ceiling`, only when the run worked) and the
/// ratio of the two. A run that failed prints its error in the stored column.
pub async fn throughput_row<F>(
    cells: &str,
    expected: usize,
    run: Result<(i64, Duration)>,
    ceiling: F,
) where
    F: std::future::Future<Output = Result<(u64, Duration)>>,
{
    let (stored, elapsed) = match run {
        Ok(run) => run,
        Err(e) => {
            println!("| {cells}n/a ({e:#}) | | | | |");
            return;
        }
    };
    let engine_rate = rate(stored as f64, elapsed);
    let (ceiling_text, ratio_text) = match ceiling.await {
        Ok((fetched, took)) => {
            let ceiling = rate(fetched as f64, took);
            (
                format!("{ceiling:.0}"),
                format!("{:.2}", engine_rate / ceiling),
            )
        }
        Err(e) => (format!("n/a ({e:#})"), "n/a".to_owned()),
    };
    let stored_text = if usize::try_from(stored).is_ok_and(|s| s == expected) {
        stored.to_string()
    } else {
        format!("{stored} (of {expected}: incomplete)")
    };
    println!(
        "| {cells}{stored_text} | {:.1} | {engine_rate:.0} | {ceiling_text} | {ratio_text} |",
        elapsed.as_secs_f64()
    );
}

/// Formats a rate.
pub fn rate(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

/// An engine and a scheduler running in the background, as `tributary run` runs them,
/// for the scenarios that measure freshness while a backfill goes on.
pub struct Running {
    stop_engine: tokio::sync::oneshot::Sender<()>,
    stop_scheduler: tokio::sync::oneshot::Sender<()>,
    engine: tokio::task::JoinHandle<Result<(), tributary_engine::worker::EngineError>>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts `engine` until shut down, and a scheduler of `schedules` on `store`
    /// ticking every `tick` on the system clock.
    pub fn start(
        engine: &tributary_engine::Engine,
        store: Arc<dyn Store>,
        schedules: Vec<tributary_store::DomainSchedule>,
        tick: Duration,
    ) -> Running {
        let (stop_engine, engine_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_scheduler, scheduler_stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .run(tributary_engine::RunUntil::Shutdown, async {
                        let _ = engine_stopped.await;
                    })
                    .await
            })
        };
        let scheduler = {
            let scheduler = tributary_engine::Scheduler::new(
                store,
                schedules,
                Arc::new(tributary_engine::SystemClock),
            );
            tokio::spawn(async move {
                scheduler
                    .run(tick, async {
                        let _ = scheduler_stopped.await;
                    })
                    .await
            })
        };
        Running {
            stop_engine,
            stop_scheduler,
            engine,
            scheduler,
        }
    }

    /// Stops the scheduler, then the engine, and waits for both.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop_scheduler.send(());
        let _ = self.stop_engine.send(());
        self.engine.await??;
        self.scheduler.await?;
        Ok(())
    }
}

//! `memory`: peak resident memory of a full Gmail sync. Each run is a fresh child
//! process of this binary (`memory-child`), so the peaks of different sizes do not
//! mix; the Gmail fake runs in the parent, so the child's peak is the engine's and
//! the store client's (for PostgreSQL the server's memory is not included).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use tributary_sdk::serde_json::{self, Value, json};

use crate::sync::{full_sync, start_fake, syncable};
use crate::util::{Backend, FreshDb, proc_status_kb};

/// The environment variable carrying the fake's credentials and settings to the child.
const INFO_ENV: &str = "TRIBUTARY_BENCH_GMAIL_INFO";

/// Runs the `memory` scenario.
pub async fn memory(
    messages: &[usize],
    workers: usize,
    backends: &[Backend],
    postgres: &str,
) -> Result<()> {
    println!(
        "memory benchmark: peak resident memory (VmHWM) of a child process running one full sync, {workers} workers; the Gmail fake runs in the parent"
    );
    println!();
    println!(
        "| backend | messages | stored | seconds | RSS before sync (MiB) | peak RSS (MiB) | peak - before (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().context("cannot find this binary")?;
    for &n in messages {
        let fake = start_fake(n).await?;
        let expected = syncable(&fake);
        let info = fake.standalone_info().to_string();
        for &backend in backends {
            let name = backend.name();
            let output = tokio::process::Command::new(&exe)
                .arg("memory-child")
                .arg("--backend")
                .arg(match backend {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                })
                .arg("--workers")
                .arg(workers.to_string())
                .arg("--postgres-url")
                .arg(postgres)
                .arg("--label")
                .arg(format!("memory_{n}"))
                .env(INFO_ENV, &info)
                .output()
                .await
                .context("failed to run the child process")?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report = stdout
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Value>(l).ok());
            match (output.status.success(), report) {
                (true, Some(r)) => {
                    let mib = |v: &Value| {
                        v.as_u64()
                            .map_or("n/a (not in /proc/self/status)".to_owned(), |kb| {
                                format!("{:.1}", kb as f64 / 1024.0)
                            })
                    };
                    let diff = match (r["before_kb"].as_u64(), r["peak_kb"].as_u64()) {
                        (Some(b), Some(p)) => format!("{:.1}", p.saturating_sub(b) as f64 / 1024.0),
                        _ => "n/a".to_owned(),
                    };
                    println!(
                        "| {name} | {expected} | {} | {:.1} | {} | {} | {diff} |",
                        r["stored"],
                        r["seconds"].as_f64().unwrap_or(f64::NAN),
                        mib(&r["before_kb"]),
                        mib(&r["peak_kb"]),
                    );
                }
                _ => {
                    let why = String::from_utf8_lossy(&output.stderr);
                    let why = why.trim().lines().last().unwrap_or("no output").to_owned();
                    println!(
                        "| {name} | {expected} | n/a (child failed: {}: {why}) | | | | |",
                        output.status
                    );
                }
            }
        }
        fake.stop().await?;
    }
    Ok(())
}

/// The child: one full sync of the mailbox described in the environment, then one
/// JSON line with the memory figures.
pub async fn child(backend: Backend, workers: usize, postgres: &str, label: &str) -> Result<()> {
    let info: Value = serde_json::from_str(
        &std::env::var(INFO_ENV).with_context(|| format!("{INFO_ENV} is not set"))?,
    )?;
    let db = FreshDb::create(backend, postgres, label).await?;
    let before_kb = proc_status_kb("VmRSS");
    let began = Instant::now();
    let run = full_sync(&db, &info, workers).await;
    let seconds = began.elapsed().as_secs_f64();
    let peak_kb = proc_status_kb("VmHWM");
    db.remove().await?;
    let run = run?;
    if run.stored == 0 {
        bail!("nothing was stored");
    }
    println!(
        "{}",
        json!({
            "stored": run.stored,
            "seconds": seconds,
            "before_kb": before_kb,
            "peak_kb": peak_kb,
        })
    );
    Ok(())
}

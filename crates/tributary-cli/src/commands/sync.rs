//! `tributary sync <id> [--until-idle]`: sync one account now.
//!
//! It enqueues the account's `start` job and, when the integration has one, its history
//! check, both due now (deduplicated: at most one of each pending per account): the
//! start brings new items, the history check edits and deletions (or, when the cursor
//! has expired, a full comparison that soft-deletes what vanished). Without
//! `--until-idle` that is all, and a running `tributary run` picks them up; with it,
//! this process works until the account's queue is empty, with a progress bar, and
//! prints what it did: when it returns, the database equals the source.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use tributary_engine::worker::sync_now_jobs;
use tributary_engine::{Engine, EngineConfig, RunUntil};
use tributary_store::{Store, UserIntegrationStatus};

use crate::app::{GlobalArgs, StopSignal, shutdown_signal};

/// `tributary sync`
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The linked account (see `tributary links`).
    pub user_integration_id: i64,
    /// Work here until the account has no job waiting or running (otherwise only
    /// enqueue the sync for a running `tributary run`).
    #[arg(long)]
    pub until_idle: bool,
    /// Jobs run at once.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
}

/// What a sync did, as printed.
#[derive(Debug, Serialize)]
struct SyncSummary {
    user_integration_id: i64,
    /// Whether new jobs were enqueued (false: the start and history check were
    /// already pending).
    start_enqueued: bool,
    /// Whether this process worked until idle.
    until_idle: bool,
    added: u64,
    updated: u64,
    deleted: u64,
    unchanged: u64,
    /// Jobs that ended failed or dead, plus items the service reported as failed.
    errors: u64,
    /// Failed attempts that were retried.
    retries: u64,
    jobs_completed: u64,
    /// Stored, non-deleted items of the account afterwards.
    items: i64,
    /// Soft-deleted items of the account afterwards.
    deleted_items: i64,
    elapsed_seconds: f64,
}

/// Syncs one account.
pub async fn run(global: &GlobalArgs, args: SyncArgs) -> Result<()> {
    let id = args.user_integration_id;
    let store = crate::app::open(global).await?;
    let registry = crate::app::registry()?;
    let account = super::links::load(store.as_ref(), id).await?;
    check_active(id, account.status, account.last_error.as_deref())?;
    let config = EngineConfig {
        workers: args.workers.max(1),
        ..EngineConfig::default()
    };
    let started = Instant::now();
    let manifest = &registry.get(&account.integration_domain)?.manifest;
    let now = chrono::Utc::now().timestamp_millis();
    let enqueued = store
        .enqueue(&sync_now_jobs(id, manifest, config.max_attempts, now), now)
        .await
        .with_context(|| format!("failed to enqueue a sync of user integration {id}"))?;
    if !args.until_idle {
        if global.json {
            return crate::output::print_json(&serde_json::json!({
                "user_integration_id": id,
                "start_enqueued": enqueued > 0,
                "until_idle": false,
            }));
        }
        if enqueued > 0 {
            println!(
                "enqueued a sync of user integration {id}; a running `tributary run` picks it up (or add --until-idle to work here)"
            );
        } else {
            println!("a sync of user integration {id} is already pending");
        }
        return Ok(());
    }

    let engine =
        Engine::new(store.clone(), registry, config).context("failed to start the engine")?;
    let stop = StopSignal::default();
    let watcher = {
        let (stop, store) = (stop.clone(), store.clone());
        tokio::spawn(async move { watch(store, id, stop).await })
    };
    let bar = crate::progress::spawn_sync_bar(engine.stats(), store.clone(), id, stop.clone());
    let result = engine.run(RunUntil::Idle(Some(id)), stop.stopped()).await;
    stop.stop();
    let _ = bar.await;
    let stopped_because = watcher.await.unwrap_or(None);
    result.context("the engine stopped")?;

    let s = engine.stats().snapshot();
    let counts = store
        .content_counts(id)
        .await
        .with_context(|| format!("failed to count the items of user integration {id}"))?;
    let summary = SyncSummary {
        user_integration_id: id,
        start_enqueued: enqueued > 0,
        until_idle: true,
        added: s.items_inserted,
        updated: s.items_updated,
        deleted: s.items_deleted,
        unchanged: s.items_unchanged,
        errors: s.jobs_failed + s.item_errors,
        retries: s.jobs_retried,
        jobs_completed: s.jobs_completed,
        items: counts.items,
        deleted_items: counts.deleted,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    if global.json {
        crate::output::print_json(&summary)?;
    } else {
        println!(
            "synced user integration {id} in {:.1} s: {} added, {} updated, {} deleted, {} errors ({} jobs, {} retries); {} items stored, {} deleted",
            summary.elapsed_seconds,
            summary.added,
            summary.updated,
            summary.deleted,
            summary.errors,
            summary.jobs_completed,
            summary.retries,
            summary.items,
            summary.deleted_items,
        );
    }
    if let Some(reason) = stopped_because {
        bail!("{reason}");
    }
    if s.jobs_failed > 0 {
        bail!(
            "{} jobs of user integration {id} failed; see `tributary jobs --user-integration {id} --state dead` (and `--state failed`)",
            s.jobs_failed
        );
    }
    Ok(())
}

/// Refuses to sync an account that is not active (its jobs would never be claimed).
fn check_active(id: i64, status: UserIntegrationStatus, last_error: Option<&str>) -> Result<()> {
    let detail = last_error.map(|e| format!(" ({e})")).unwrap_or_default();
    match status {
        UserIntegrationStatus::Active => Ok(()),
        UserIntegrationStatus::Paused => {
            bail!("user integration {id} is paused; `tributary resume {id}` first")
        }
        UserIntegrationStatus::Unlinked => bail!("user integration {id} is unlinked"),
        UserIntegrationStatus::NeedsReauth => bail!(
            "user integration {id} needs re-authorization{detail}; link the account again with fresh credentials"
        ),
        UserIntegrationStatus::Error => {
            bail!(
                "user integration {id} is stopped by an error{detail}; `tributary resume {id}` to try again"
            )
        }
    }
}

/// Stops the sync on Ctrl-C, or when the account stops being active (a refused token
/// parks its jobs, and the queue would never empty). Returns why it stopped the sync.
async fn watch(store: std::sync::Arc<dyn Store>, id: i64, stop: StopSignal) -> Option<String> {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return None,
            () = &mut signal => {
                stop.stop();
                return Some("sync interrupted; what was stored is kept, and the rest runs on the next sync".to_owned());
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Ok(account) = store.get_user_integration(id).await
            && let Err(e) = check_active(id, account.status, account.last_error.as_deref())
        {
            stop.stop();
            return Some(format!("sync stopped: {e}"));
        }
    }
}

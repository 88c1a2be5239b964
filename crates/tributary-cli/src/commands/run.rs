//! `tributary run`: the scheduler and the workers until SIGINT or SIGTERM, with a
//! periodic progress line on stderr.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tributary_engine::{Engine, EngineConfig, RunUntil, Scheduler, SystemClock, domain_schedules};

use crate::app::{GlobalArgs, StopSignal, redact_url, shutdown_signal};

/// `tributary run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Most jobs claimed per query; each claim takes about `--claim-window-ms` of work
    /// (at least one job per worker).
    #[arg(long, default_value_t = EngineConfig::default().claim_batch)]
    pub claim_batch: usize,
    /// Milliseconds of work one claim takes (from the recent completion rate): a newly
    /// queued `start` waits about this long behind jobs already claimed. 0 always
    /// claims `--claim-batch`.
    #[arg(long, default_value_t = 100)]
    pub claim_window_ms: u64,
    /// Seconds a claimed job stays leased without renewal before another worker may
    /// take it back.
    #[arg(long, default_value_t = 60)]
    pub lease_seconds: u64,
    /// Seconds between scheduler ticks.
    #[arg(long, default_value_t = 1)]
    pub tick_seconds: u64,
    /// Do not run the scheduler in this process (workers only).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 10)]
    pub progress_seconds: u64,
}

/// Runs the engine until a signal.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> Result<()> {
    let store = crate::app::open(global).await?;
    let registry = crate::app::registry()?;
    let workers = args.workers.max(1);
    let config = EngineConfig {
        workers,
        claim_batch: args.claim_batch.max(1),
        claim_window: Duration::from_millis(args.claim_window_ms),
        lease: Duration::from_secs(args.lease_seconds.max(1)),
        ..EngineConfig::default()
    };
    let max_attempts = config.max_attempts;
    let engine = Engine::new(store.clone(), registry.clone(), config)
        .context("failed to start the engine")?;
    let stop = StopSignal::default();
    let scheduler = (!args.no_scheduler).then(|| {
        let scheduler = Scheduler::new(
            store.clone(),
            domain_schedules(&registry, max_attempts),
            Arc::new(SystemClock),
        );
        let every = Duration::from_secs(args.tick_seconds.max(1));
        let stopped = stop.stopped();
        tokio::spawn(async move { scheduler.run(every, stopped).await })
    });
    let log = (args.progress_seconds > 0).then(|| {
        crate::progress::spawn_run_log(
            engine.stats(),
            store.clone(),
            Duration::from_secs(args.progress_seconds),
            stop.clone(),
        )
    });
    eprintln!(
        "tributary running: {workers} workers on {}; Ctrl-C to stop",
        redact_url(global.database_url())
    );
    let signal = shutdown_signal();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        signal.await;
        on_signal.stop();
    });
    let result = engine.run(RunUntil::Shutdown, stop.stopped()).await;
    stop.stop();
    for handle in [scheduler, log].into_iter().flatten() {
        let _ = handle.await;
    }
    result.context("the engine stopped")?;
    let s = engine.stats().snapshot();
    eprintln!(
        "tributary stopped: {} jobs done, {} items added, {} updated, {} deleted, {} failed",
        s.jobs_completed, s.items_inserted, s.items_updated, s.items_deleted, s.jobs_failed
    );
    Ok(())
}

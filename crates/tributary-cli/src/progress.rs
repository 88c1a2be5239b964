//! Progress display while the engine works: the periodic one-line log of `run`, and
//! the progress bars of `sync` and `demo` (indicatif, on stderr, hidden when stderr is
//! not a terminal).

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tributary_engine::{EngineStats, StatsSnapshot};
use tributary_store::{JobCount, JobState, Store};

use crate::app::StopSignal;

/// Jobs waiting or running among `counts`.
pub fn pending(counts: &[JobCount]) -> i64 {
    counts
        .iter()
        .filter(|c| matches!(c.state, JobState::Available | JobState::Running))
        .map(|c| c.count)
        .sum()
}

/// A spinner-style bar on stderr, drawn only when stderr is a terminal.
pub fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Items per second between two snapshots.
pub fn rate(items: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { items as f64 / secs } else { 0.0 }
}

/// Items written (inserted, updated, deleted) in a snapshot.
pub fn items_written(s: &StatsSnapshot) -> u64 {
    s.items_inserted + s.items_updated + s.items_deleted
}

/// Logs one line of progress to stderr every `every` until `stop`: jobs done and items
/// written since start, the rate over the last period, and the jobs pending in the
/// whole queue.
pub fn spawn_run_log(
    stats: Arc<EngineStats>,
    store: Arc<dyn Store>,
    every: Duration,
    stop: StopSignal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous = stats.snapshot();
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => return,
                _ = ticker.tick() => {}
            }
            let now = stats.snapshot();
            let pending = match store.job_counts(None).await {
                Ok(counts) => pending(&counts).to_string(),
                Err(_) => "?".to_owned(),
            };
            let written = items_written(&now) - items_written(&previous);
            eprintln!(
                "progress: {} jobs done, {} items added, {} updated, {} deleted ({:.0} items/s), {} retried, {} failed; {} jobs pending",
                now.jobs_completed,
                now.items_inserted,
                now.items_updated,
                now.items_deleted,
                rate(written, every),
                now.jobs_retried,
                now.jobs_failed,
                pending,
            );
            previous = now;
        }
    })
}

/// The live bar of `tributary sync`: items stored by the account, its pending jobs,
/// the write rate and the elapsed time.
pub fn spawn_sync_bar(
    stats: Arc<EngineStats>,
    store: Arc<dyn Store>,
    user_integration_id: i64,
    stop: StopSignal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = spinner("{spinner} [{elapsed_precise}] {msg}");
        let started = Instant::now();
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        loop {
            let items = store
                .content_counts(user_integration_id)
                .await
                .map(|c| c.items.to_string())
                .unwrap_or_else(|_| "?".into());
            let pending = store
                .job_counts(Some(user_integration_id))
                .await
                .map(|c| pending(&c).to_string())
                .unwrap_or_else(|_| "?".into());
            let s = stats.snapshot();
            bar.set_message(format!(
                "{items} items stored, {pending} jobs pending, {:.0} items/s",
                rate(items_written(&s), started.elapsed())
            ));
            tokio::select! {
                () = &mut stopped => break,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        bar.finish_and_clear();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_available_and_running_only() {
        let c = |state, count| JobCount {
            state,
            priority: 1,
            count,
        };
        let counts = [
            c(JobState::Available, 3),
            c(JobState::Running, 2),
            c(JobState::Completed, 10),
            c(JobState::Dead, 1),
        ];
        assert_eq!(pending(&counts), 5);
    }

    #[test]
    fn rate_of_nothing_is_zero() {
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_secs(2)), 5.0);
    }
}

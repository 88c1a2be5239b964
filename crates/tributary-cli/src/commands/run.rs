//! `tributary run`: the scheduler, the workers and the pruner of completed jobs until
//! SIGINT or SIGTERM, with a periodic progress line on stderr.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tributary_engine::{EngineConfig, Node, NodeConfig, PrunerConfig};

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
    /// How long completed jobs are kept before they are deleted: `24h`, `30m`, `7d`,
    /// `1h30m`, or `0` (nothing older than now). Failed and dead jobs are always kept.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_retention)]
    pub keep_completed: Duration,
}

/// Parses a retention: one or more `<number><unit>` (units `s`, `m`, `h`, `d`, `w`,
/// added up: `1h30m`), or `0`.
pub fn parse_retention(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let example = "e.g. 24h, 30m, 7d, 1h30m, or 0";
    if text.is_empty() {
        return Err(format!("give a duration, {example}"));
    }
    let mut seconds: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)))
                .ok_or_else(|| format!("`{text}` is too long"))?;
            number = Some(n);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("`{text}`: unknown unit `{c}` ({example})")),
        };
        let n = number
            .take()
            .ok_or_else(|| format!("`{text}`: a number must come before `{c}` ({example})"))?;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    if number.is_some() {
        return Err(format!("`{text}`: the last number has no unit ({example})"));
    }
    // Kept within what the queue's millisecond times can subtract.
    if seconds > i64::MAX as u64 / 1_000 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_secs(seconds))
}

/// A retention as the flag would take it: `24h`, `7d`, `1h30m`, `0` (whole days from
/// two days up, hours, minutes and seconds below).
fn format_retention(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0".to_owned();
    }
    if secs >= 2 * 86_400 && secs.is_multiple_of(86_400) {
        return format!("{}d", secs / 86_400);
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// The environment variable that makes the rate budgets' windows pass faster, for
/// process tests against a fake whose rate clock runs as much faster. Read only
/// together with the test doubles switch ([`crate::registry::TEST_INTEGRATIONS_ENV`]);
/// for tests only, not documented for operators.
pub const TEST_BUDGET_TIME_SCALE_ENV: &str = "TRIBUTARY_TEST_BUDGET_TIME_SCALE";

fn test_budget_time_scale() -> f64 {
    if !crate::registry::init_from_env() {
        return 1.0;
    }
    std::env::var(TEST_BUDGET_TIME_SCALE_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|scale| scale.is_finite() && *scale > 0.0)
        .unwrap_or(1.0)
}

/// Runs the engine until a signal.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> Result<()> {
    let store = crate::app::open(global).await?;
    let registry = crate::app::registry()?;
    let workers = args.workers.max(1);
    let config = NodeConfig {
        engine: EngineConfig {
            workers,
            claim_batch: args.claim_batch.max(1),
            claim_window: Duration::from_millis(args.claim_window_ms),
            lease: Duration::from_secs(args.lease_seconds.max(1)),
            budget_time_scale: test_budget_time_scale(),
            ..EngineConfig::default()
        },
        scheduler_tick: (!args.no_scheduler).then(|| Duration::from_secs(args.tick_seconds.max(1))),
        start_every: None,
        // Every process prunes: on PostgreSQL their batches skip each other's rows.
        pruner: Some(PrunerConfig {
            keep_completed: args.keep_completed,
            ..PrunerConfig::default()
        }),
    };
    let node = Node::new(store.clone(), registry, config).context("failed to start the engine")?;
    let engine = node.engine();
    let stop = StopSignal::default();
    let log = (args.progress_seconds > 0).then(|| {
        crate::progress::spawn_run_log(
            engine.stats(),
            store.clone(),
            Duration::from_secs(args.progress_seconds),
            stop.clone(),
        )
    });
    eprintln!(
        "tributary running: {workers} workers on {}; completed jobs kept {}; Ctrl-C to stop",
        redact_url(global.database_url()),
        format_retention(args.keep_completed)
    );
    let signal = shutdown_signal();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        signal.await;
        on_signal.stop();
    });
    let result = node.run(stop.stopped()).await;
    stop.stop();
    if let Some(log) = log {
        let _ = log.await;
    }
    result.context("the engine stopped")?;
    let s = engine.stats().snapshot();
    eprintln!(
        "tributary stopped: {} jobs done, {} items added, {} updated, {} deleted, {} failed",
        s.jobs_completed, s.items_inserted, s.items_updated, s.items_deleted, s.jobs_failed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_parse() {
        let h = |n: u64| Duration::from_secs(n * 3_600);
        assert_eq!(parse_retention("24h"), Ok(h(24)));
        assert_eq!(parse_retention("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_retention("7d"), Ok(h(7 * 24)));
        assert_eq!(parse_retention("2w"), Ok(h(14 * 24)));
        assert_eq!(parse_retention(" 1h30m "), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_retention("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_retention("0"), Ok(Duration::ZERO));
        assert_eq!(parse_retention("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_retentions_say_why() {
        let e = |t: &str| parse_retention(t).unwrap_err();
        assert!(e("24").contains("no unit"), "{}", e("24"));
        assert!(e("h").contains("number must come before"), "{}", e("h"));
        assert!(e("3y").contains("unknown unit `y`"), "{}", e("3y"));
        assert!(e("-1h").contains("unknown unit `-`"), "{}", e("-1h"));
        assert!(e("").contains("give a duration"), "{}", e(""));
        assert!(e("99999999999999999999d").contains("too long"));
        assert!(e("999999999999999w").contains("too long"));
    }

    #[test]
    fn retentions_print_as_the_flag_takes_them() {
        for text in ["24h", "30m", "26h", "1h30m15s", "7d", "0"] {
            let d = parse_retention(text).unwrap();
            assert_eq!(format_retention(d), text);
            assert_eq!(parse_retention(&format_retention(d)), Ok(d));
        }
        assert_eq!(format_retention(parse_retention("1d2h").unwrap()), "26h");
        assert_eq!(format_retention(parse_retention("1w").unwrap()), "7d");
    }
}

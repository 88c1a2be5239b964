//! Sizing claims: each claim takes about as many jobs as the workers finish in a short
//! window, so cheap jobs are claimed (and committed) hundreds at a time while slow ones
//! are claimed a few at a time.
//!
//! Why it matters: a job claimed but not yet started sits in front of anything queued
//! after it. A newly queued priority-1 `start` therefore waits, at worst, for the
//! claimed backlog to drain: about one window. With a fixed batch, the choice was
//! between many round trips per job (small batches: cheap jobs are bound by the
//! database's latency) and a long wait for fresh work (large batches of slow jobs).

use std::time::{Duration, Instant};

/// How often the completion rate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Weight of the newest sample in the moving average.
const NEW_WEIGHT: f64 = 0.3;

/// Follows the completion rate and sizes claims to `window` of it.
#[derive(Debug)]
pub(crate) struct ClaimSizer {
    min: usize,
    max: usize,
    window: Duration,
    /// Jobs finished per second, smoothed.
    rate: f64,
    finished_since: u64,
    since: Instant,
}

impl ClaimSizer {
    /// Claims between `min` and `max` jobs, about `window` of work each; a zero window
    /// always claims `max`.
    pub(crate) fn new(min: usize, max: usize, window: Duration, now: Instant) -> Self {
        let min = min.max(1);
        ClaimSizer {
            min,
            max: max.max(min),
            window,
            rate: 0.0,
            finished_since: 0,
            since: now,
        }
    }

    /// Counts `n` finished jobs.
    pub(crate) fn finished(&mut self, n: usize, now: Instant) {
        self.finished_since += n as u64;
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= SAMPLE_EVERY {
            let sample = self.finished_since as f64 / elapsed.as_secs_f64();
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                NEW_WEIGHT * sample + (1.0 - NEW_WEIGHT) * self.rate
            };
            self.finished_since = 0;
            self.since = now;
        }
    }

    /// The next claim's size.
    pub(crate) fn size(&self) -> usize {
        if self.window.is_zero() {
            return self.max;
        }
        let want = (self.rate * self.window.as_secs_f64()).ceil();
        if want.is_finite() && want > 0.0 {
            (want as usize).clamp(self.min, self.max)
        } else {
            self.min
        }
    }

    /// The largest claim it may ask for.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `per_sample` finished jobs every 50 ms, `samples` times.
    fn feed(s: &mut ClaimSizer, start: Instant, per_sample: usize, samples: u32) -> Instant {
        let mut now = start;
        for _ in 0..samples {
            now += SAMPLE_EVERY;
            s.finished(per_sample, now);
        }
        now
    }

    #[test]
    fn starts_at_the_minimum() {
        let s = ClaimSizer::new(4, 512, Duration::from_millis(100), Instant::now());
        assert_eq!(s.size(), 4);
    }

    #[test]
    fn cheap_jobs_grow_the_batch_to_the_maximum() {
        let t = Instant::now();
        let mut s = ClaimSizer::new(4, 512, Duration::from_millis(100), t);
        // 1,000 jobs per 50 ms = 20,000/s: a 100 ms window is 2,000 jobs, capped.
        feed(&mut s, t, 1_000, 20);
        assert_eq!(s.size(), 512);
    }

    #[test]
    fn slow_jobs_keep_the_batch_at_a_window_of_work() {
        let t = Instant::now();
        let mut s = ClaimSizer::new(4, 512, Duration::from_millis(100), t);
        // 10 jobs per 50 ms = 200/s: a 100 ms window is 20 jobs.
        feed(&mut s, t, 10, 40);
        assert_eq!(s.size(), 20);
    }

    #[test]
    fn follows_a_slowdown() {
        let t = Instant::now();
        let mut s = ClaimSizer::new(4, 512, Duration::from_millis(100), t);
        let t = feed(&mut s, t, 1_000, 20);
        assert_eq!(s.size(), 512);
        // Now 1 job per 50 ms (20/s): the batch falls back to the minimum.
        feed(&mut s, t, 1, 40);
        assert_eq!(s.size(), 4);
    }

    #[test]
    fn a_zero_window_always_claims_the_maximum() {
        let s = ClaimSizer::new(4, 64, Duration::ZERO, Instant::now());
        assert_eq!(s.size(), 64);
    }

    #[test]
    fn the_maximum_is_never_below_the_minimum() {
        let s = ClaimSizer::new(16, 4, Duration::from_millis(100), Instant::now());
        assert_eq!(s.size(), 16);
        assert_eq!(s.max(), 16);
    }
}

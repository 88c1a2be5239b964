//! Outlook's per-mailbox throttling: a request budget over a sliding window and a
//! limit on concurrent requests, both per mailbox (the authenticated user of the
//! token), as Exchange Online applies them to one app and one mailbox.
//!
//! - **Rate.** At most [`ThrottleConfig::requests_per_window`] admitted requests
//!   (default 10,000) within any [`ThrottleConfig::window`] (default 10 minutes) of
//!   the *throttle clock*: real time × [`ThrottleConfig::time_scale`], plus
//!   [`crate::GraphHandle::advance`]. Over it: 429 with
//!   [`ThrottleConfig::rate_limit_code`] (default `ApplicationThrottled`) and
//!   `Retry-After`: the real seconds, rounded up and at least 1, until the oldest
//!   request of the window leaves it.
//! - **Concurrency.** At most [`ThrottleConfig::max_concurrent`] requests (default 4)
//!   of one mailbox in flight at once; one more is answered at once with 429
//!   `ApplicationThrottled` and `Retry-After: 1` (a wait that only helps once a request
//!   in flight has finished). A request is in flight from its admission until its
//!   answer is computed, injected latency and a held [`crate::GraphHandle::gate`]
//!   included.
//!
//! Refused requests are not executed and take no place in the rate window. Graph's
//! documentation says usage keeps counting while a client is throttled; the fake does
//! not count them, so that a client that waits `Retry-After` is admitted. Concurrency
//! is checked first, so a request refused for concurrency spends no budget.
//!
//! Counters ([`MailboxCounters`]) keep, per mailbox, the requests admitted and refused
//! and two peaks: `peak_in_flight` (the most requests admitted at once, never above
//! the limit while it is enforced) and `peak_attempted` (the most requests that were
//! at the mailbox at once, the refused one included: what a test asserts to prove a
//! client never sent more than 4 at a time).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// The limits, per mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// Whether the rate budget refuses requests (the counters count either way).
    pub enforce_rate: bool,
    /// Admitted requests per window (Outlook: 10,000 per 10 minutes).
    pub requests_per_window: u32,
    /// The window, in throttle-clock time.
    pub window: Duration,
    /// Whether the concurrency limit refuses requests (the peaks are measured either
    /// way).
    pub enforce_concurrency: bool,
    /// Requests of one mailbox in flight at once (Outlook: 4).
    pub max_concurrent: u32,
    /// How much faster than real time the throttle clock runs (60 makes a 10 minute
    /// window pass in 10 s).
    pub time_scale: f64,
    /// The `error.code` of a 429 for the rate budget: `ApplicationThrottled` (what
    /// Exchange answers) or `activityLimitReached` (Graph's generic code).
    pub rate_limit_code: &'static str,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            enforce_rate: true,
            requests_per_window: 10_000,
            window: Duration::from_secs(600),
            enforce_concurrency: true,
            max_concurrent: 4,
            time_scale: 1.0,
            rate_limit_code: "ApplicationThrottled",
        }
    }
}

impl ThrottleConfig {
    /// The time scale, 1 when it is not a positive finite number.
    pub fn effective_time_scale(&self) -> f64 {
        if self.time_scale.is_finite() && self.time_scale > 0.0 {
            self.time_scale
        } else {
            1.0
        }
    }
}

/// What happened at one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxCounters {
    /// Authenticated requests that reached the throttle.
    pub requests: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// 429s for the rate budget.
    pub rate_limited: u64,
    /// 429s for the concurrency limit.
    pub concurrency_limited: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// The most requests admitted and in flight at once.
    pub peak_in_flight: u32,
    /// The most requests at the mailbox at once, counting each arrival (refused or
    /// not) with the ones in flight.
    pub peak_attempted: u32,
}

/// Why the throttle refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the rate budget; retry after this many real seconds.
    Rate { retry_after_secs: u64 },
    /// Over the concurrency limit.
    Concurrency,
}

#[derive(Debug, Default)]
struct Window {
    admitted: VecDeque<f64>,
}

/// The throttle's state.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) config: ThrottleConfig,
    windows: HashMap<String, Window>,
    pub(crate) counters: BTreeMap<String, MailboxCounters>,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            windows: HashMap::new(),
            counters: BTreeMap::new(),
        }
    }

    /// Admits a request of `mailbox` at `now` (throttle-clock seconds), or says why
    /// not. An admitted request must be [`Throttle::release`]d.
    pub(crate) fn admit(&mut self, mailbox: &str, now: f64) -> Result<(), Refusal> {
        let config = &self.config;
        let counters = self.counters.entry(mailbox.to_owned()).or_default();
        counters.requests += 1;
        counters.peak_attempted = counters.peak_attempted.max(counters.in_flight + 1);
        if config.enforce_concurrency && counters.in_flight >= config.max_concurrent {
            counters.concurrency_limited += 1;
            return Err(Refusal::Concurrency);
        }
        let window_secs = config.window.as_secs_f64();
        let window = self.windows.entry(mailbox.to_owned()).or_default();
        while window
            .admitted
            .front()
            .is_some_and(|t| *t <= now - window_secs)
        {
            window.admitted.pop_front();
        }
        if config.enforce_rate && window.admitted.len() >= config.requests_per_window as usize {
            let oldest = window.admitted.front().copied().unwrap_or(now);
            let wait = (oldest + window_secs - now).max(0.0) / config.effective_time_scale();
            counters.rate_limited += 1;
            return Err(Refusal::Rate {
                retry_after_secs: whole_seconds(wait),
            });
        }
        window.admitted.push_back(now);
        // Without enforcement the window would grow without bound: keep what the
        // budget can see.
        let cap = (config.requests_per_window as usize).max(1);
        while window.admitted.len() > cap {
            window.admitted.pop_front();
        }
        counters.admitted += 1;
        counters.in_flight += 1;
        counters.peak_in_flight = counters.peak_in_flight.max(counters.in_flight);
        Ok(())
    }

    /// The end of an admitted request.
    pub(crate) fn release(&mut self, mailbox: &str) {
        if let Some(counters) = self.counters.get_mut(mailbox) {
            counters.in_flight = counters.in_flight.saturating_sub(1);
        }
    }

    /// Forgets the counts (keeps the requests in flight and the windows).
    pub(crate) fn reset_counters(&mut self) {
        for counters in self.counters.values_mut() {
            *counters = MailboxCounters {
                in_flight: counters.in_flight,
                ..MailboxCounters::default()
            };
        }
    }

    /// Empties every rate window.
    pub(crate) fn clear_windows(&mut self) {
        self.windows.clear();
    }
}

/// Real seconds for `Retry-After`: rounded up, at least 1.
fn whole_seconds(secs: f64) -> u64 {
    let up = secs.ceil();
    if up.is_finite() && up >= 1.0 {
        up as u64
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(rate: u32, concurrent: u32) -> Throttle {
        Throttle::new(ThrottleConfig {
            requests_per_window: rate,
            window: Duration::from_secs(60),
            max_concurrent: concurrent,
            ..ThrottleConfig::default()
        })
    }

    #[test]
    fn the_budget_refuses_until_the_oldest_leaves() {
        let mut throttle = small(2, 10);
        assert!(throttle.admit("a", 0.0).is_ok());
        throttle.release("a");
        assert!(throttle.admit("a", 10.0).is_ok());
        throttle.release("a");
        assert_eq!(
            throttle.admit("a", 20.5),
            Err(Refusal::Rate {
                retry_after_secs: 40
            })
        );
        // Another mailbox has its own budget.
        assert!(throttle.admit("b", 20.5).is_ok());
        assert!(throttle.admit("a", 60.0).is_ok());
        assert_eq!(throttle.counters["a"].rate_limited, 1);
        assert_eq!(throttle.counters["a"].admitted, 3);
    }

    #[test]
    fn concurrency_is_limited_and_peaks_are_kept() {
        let mut throttle = small(100, 2);
        assert!(throttle.admit("a", 0.0).is_ok());
        assert!(throttle.admit("a", 0.0).is_ok());
        assert_eq!(throttle.admit("a", 0.0), Err(Refusal::Concurrency));
        throttle.release("a");
        assert!(throttle.admit("a", 0.0).is_ok());
        let counters = &throttle.counters["a"];
        assert_eq!(counters.peak_in_flight, 2);
        assert_eq!(counters.peak_attempted, 3);
        assert_eq!(counters.concurrency_limited, 1);
        assert_eq!(counters.in_flight, 2);
    }
}

//! Slack's rate tiers and the sliding windows that apply them.

use std::collections::{HashMap, VecDeque};

use crate::RateProfile;

/// The rate window, in seconds of the rate clock.
pub(crate) const WINDOW_SECS: f64 = 60.0;

/// How many calls of `method` the workspace may make per 60 s window under
/// `profile`; `None` for a method the fake does not serve.
///
/// Tier 2 (20): `conversations.list`, `users.list`; Tier 3 (50):
/// `conversations.history`, `conversations.replies`, `conversations.info`,
/// `conversations.members`; Tier 4 (100): `users.info`; `auth.test` and
/// `oauth.v2.access` (Special / Tier 4 on Slack's pages): 100. Under
/// [`RateProfile::Limited2025`], `conversations.history` and `conversations.replies`
/// take 1. [`RateProfile::Marketplace`] is [`RateProfile::Internal`] for all of them.
pub fn limit_per_window(profile: RateProfile, method: &str) -> Option<u32> {
    let limited = profile == RateProfile::Limited2025;
    Some(match method {
        "conversations.list" | "users.list" => 20,
        "conversations.history" | "conversations.replies" if limited => 1,
        "conversations.history"
        | "conversations.replies"
        | "conversations.info"
        | "conversations.members" => 50,
        "users.info" | "auth.test" | "oauth.v2.access" => 100,
        _ => return None,
    })
}

/// The default and the largest `limit` of a paged method under `profile`.
pub(crate) fn page_limits(profile: RateProfile, method: &str) -> (usize, usize) {
    let limited = profile == RateProfile::Limited2025;
    match method {
        "conversations.history" | "conversations.replies" if limited => (15, 15),
        "conversations.history" => (100, 999),
        "conversations.replies" => (1000, 1000),
        _ => (100, 1000),
    }
}

/// The calls in the current window, per method.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    windows: HashMap<String, VecDeque<f64>>,
}

impl Rates {
    /// Records a call at `now` (rate clock seconds) when the window has room; else
    /// the rate-clock seconds until it has.
    pub(crate) fn admit(&mut self, method: &str, limit: u32, now: f64) -> Result<(), f64> {
        let window = self.windows.entry(method.to_owned()).or_default();
        while window.front().is_some_and(|t| *t <= now - WINDOW_SECS) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            let oldest = window.front().copied().unwrap_or(now);
            return Err((oldest + WINDOW_SECS - now).max(0.0));
        }
        window.push_back(now);
        Ok(())
    }
}

/// `Retry-After` for a wait of `scaled` rate-clock seconds: real seconds, rounded up,
/// at least 1.
pub(crate) fn retry_after(scaled: f64, time_scale: f64) -> u64 {
    let real = (scaled / time_scale).ceil();
    if real.is_finite() && real >= 1.0 {
        real as u64
    } else {
        1
    }
}

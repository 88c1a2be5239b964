//! Gmail's per-user rate limit, as Google's usage-limits page states it: every method
//! costs quota units (`messages.get` 5, `history.list` 2, ...), and a user may spend
//! at most 15,000 units per minute. Over it, Gmail answers 403 with reason
//! `userRateLimitExceeded` (domain `usageLimits`), and the client is to back off.
//!
//! The fake checks a sliding window: a request is refused when the units of the
//! requests it accepted within the last `window`, plus its own, would exceed the
//! capacity. Refused requests cost nothing. Off unless configured
//! ([`crate::GmailConfig::quota`], [`crate::GmailHandle::set_quota`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::GmailMethod;

/// A per-user quota: at most `capacity` units within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserQuota {
    /// Units per window.
    pub capacity: u64,
    /// The window's length.
    pub window: Duration,
}

impl UserQuota {
    /// Google's: 15,000 units per user per minute.
    pub const GOOGLE: UserQuota = UserQuota {
        capacity: 15_000,
        window: Duration::from_secs(60),
    };
}

impl GmailMethod {
    /// The quota units a call costs (Google's per-method table).
    pub fn quota_units(self) -> u64 {
        match self {
            GmailMethod::GetProfile | GmailMethod::LabelsList => 1,
            GmailMethod::HistoryList => 2,
            GmailMethod::MessagesList
            | GmailMethod::MessagesGet
            | GmailMethod::MessagesTrash
            | GmailMethod::MessagesUntrash
            | GmailMethod::MessagesModify
            | GmailMethod::AttachmentsGet => 5,
            GmailMethod::MessagesDelete => 10,
            GmailMethod::MessagesInsert | GmailMethod::MessagesImport => 25,
        }
    }
}

/// The units accepted within the window, and when.
#[derive(Debug, Default)]
pub(crate) struct QuotaWindow {
    quota: Option<UserQuota>,
    accepted: VecDeque<(Instant, u64)>,
    in_window: u64,
}

impl QuotaWindow {
    pub(crate) fn new(quota: Option<UserQuota>) -> QuotaWindow {
        QuotaWindow {
            quota,
            ..QuotaWindow::default()
        }
    }

    /// Replaces the quota (and forgets what was spent).
    pub(crate) fn set(&mut self, quota: Option<UserQuota>) {
        *self = QuotaWindow::new(quota);
    }

    /// Charges `units` at `now` and returns the units now in the window (0 without a
    /// quota), or refuses them (`None`) when the window would overflow.
    pub(crate) fn charge(&mut self, units: u64, now: Instant) -> Option<u64> {
        let Some(quota) = self.quota else {
            return Some(0);
        };
        while let Some(&(at, spent)) = self.accepted.front() {
            if now.saturating_duration_since(at) < quota.window {
                break;
            }
            self.accepted.pop_front();
            self.in_window -= spent;
        }
        if self.in_window + units > quota.capacity {
            return None;
        }
        self.accepted.push_back((now, units));
        self.in_window += units;
        Some(self.in_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliding_window_refuses_what_would_overflow_it() {
        let mut window = QuotaWindow::new(Some(UserQuota {
            capacity: 10,
            window: Duration::from_secs(2),
        }));
        let t0 = Instant::now();
        assert_eq!(window.charge(5, t0), Some(5));
        assert_eq!(window.charge(5, t0 + Duration::from_secs(1)), Some(10));
        assert_eq!(window.charge(1, t0 + Duration::from_millis(1999)), None);
        // The first 5 left the window; the refused unit cost nothing.
        assert_eq!(window.charge(5, t0 + Duration::from_secs(2)), Some(10));
        assert_eq!(window.charge(1, t0 + Duration::from_millis(2999)), None);
        assert_eq!(window.charge(5, t0 + Duration::from_secs(3)), Some(10));
    }

    #[test]
    fn no_quota_accepts_everything() {
        let mut window = QuotaWindow::new(None);
        assert_eq!(window.charge(u64::MAX, Instant::now()), Some(0));
    }
}

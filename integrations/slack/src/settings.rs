//! The account's settings and the rate profiles (their defaults and ranges are in
//! `manifest.json`).

use serde::Deserialize;

/// Which of Slack's rate-limit regimes the app is under, for the history methods.
///
/// Slack limits each Web API method per workspace and app, by tier: Tier 2 about 20
/// calls a minute (`conversations.list`, `users.list`), Tier 3 about 50
/// (`conversations.history`, `conversations.replies`), Tier 4 about 100. Since
/// 2025-05-29 a commercially distributed app that is not approved for the Slack
/// Marketplace gets 1 call a minute on `conversations.history` and
/// `conversations.replies`, with at most 15 messages a page. The manifest's budgets
/// hold each regime's numbers; the profile picks the request classes charged to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RateProfile {
    /// An app built by the workspace's own organisation (not distributed): the
    /// published tiers.
    #[serde(rename = "internal")]
    Internal,
    /// An app approved for the Slack Marketplace: the published tiers (the 2025 limits
    /// do not apply to it).
    #[serde(rename = "marketplace")]
    Marketplace,
    /// A distributed app not approved for the Marketplace, under the 2025 limits.
    #[serde(rename = "limited-2025")]
    Limited2025,
}

impl RateProfile {
    /// The largest `limit` the history methods accept under this profile.
    pub fn max_history_limit(self) -> u32 {
        match self {
            RateProfile::Limited2025 => 15,
            _ => crate::client::MAX_HISTORY_LIMIT,
        }
    }

    /// `conversations.history` calls a minute under this profile (what the planner
    /// shares out between polls, reconciles and backfill pages).
    pub fn history_calls_per_minute(self) -> f64 {
        match self {
            RateProfile::Limited2025 => 1.0,
            _ => 50.0,
        }
    }

    /// The profile's name as the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RateProfile::Internal => "internal",
            RateProfile::Marketplace => "marketplace",
            RateProfile::Limited2025 => "limited-2025",
        }
    }
}

/// The account's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackSettings {
    /// Where the Web API lives (`https://slack.com/api/`).
    pub base_url: String,
    /// The token endpoint for rotation, when not the manifest's `oauth.v2.access`.
    pub token_url: Option<String>,
    /// The app's rate-limit regime.
    pub rate_profile: RateProfile,
    /// The conversation types to sync (Slack's `types`: a comma list of
    /// `public_channel`, `private_channel`, `mpim`, `im`).
    pub conversation_types: String,
    /// Messages per history and replies page (at most 999; 15 under `limited-2025`).
    pub page_size: u32,
    /// The shortest time between two polls of one conversation.
    pub poll_every_seconds: u64,
    /// The longest time between two polls of a quiet conversation.
    pub idle_poll_seconds: u64,
    /// The most polls one `start` queues; 0: as the rate profile allows.
    pub polls_per_start: u32,
    /// How far back the reconcile window reaches, in days.
    pub reconcile_days: u32,
    /// How often each conversation's reconcile window is read again.
    pub reconcile_every_seconds: u64,
    /// How often each conversation's whole history is read again (0: never).
    pub full_read_every_hours: u64,
    /// How often the member list (author names) is read again.
    pub users_refresh_hours: u64,
}

impl SlackSettings {
    /// The conversation types asked for, trimmed, known ones only.
    pub fn types(&self) -> Vec<&str> {
        self.conversation_types
            .split(',')
            .map(str::trim)
            .filter(|t| matches!(*t, "public_channel" | "private_channel" | "mpim" | "im"))
            .collect()
    }

    /// The polls one `start` may queue, on average (a fraction carries over to the
    /// next start: under `limited-2025` one poll every other minute).
    pub fn polls_per_start(&self) -> f64 {
        if self.polls_per_start > 0 {
            return f64::from(self.polls_per_start);
        }
        // Half of a minute's history calls (a start runs every minute): the rest is
        // for reconciles and backfill pages.
        self.rate_profile.history_calls_per_minute() * 0.5
    }
}

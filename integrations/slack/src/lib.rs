//! The Slack integration: every message and thread reply of the conversations a user
//! token may read (public and private channels, multi-person and direct messages),
//! kept fresh within Slack's per-method rate limits.
//!
//! Module map:
//! - [`task`]: the task types (`start`, `pollConversation`, `fetchReplies`,
//!   `reconcile`) as a serde enum, in their stored form.
//! - [`integration`]: the handlers, and how new messages, threads, edits and
//!   deletions are found without a change feed.
//! - [`plan`]: the budget planner that decides which conversations to read when the
//!   rate limits cannot cover all of them every minute.
//! - [`client`]: a thin client for the Web API methods used (the `ok` envelope, error
//!   codes, cursors, rate classes).
//! - [`content`]: a message as stored content, its id and version.
//! - [`settings`]: the settings and the rate profiles.
//!
//! # Configuration
//! - Credentials: `accessToken` (a user token), and with token rotation on
//!   `refreshToken`, `clientId`, `clientSecret` (and `accessTokenExpiresAt`, kept up to
//!   date by the kit: a rotated refresh token is stored in the same commit as the
//!   work done with it).
//! - Settings (declared with their defaults and ranges in `manifest.json`): `baseUrl`,
//!   `tokenUrl`, `rateProfile`, `conversationTypes`, `pageSize`, `pollEverySeconds`,
//!   `idlePollSeconds`, `pollsPerStart`, `reconcileDays`, `reconcileEverySeconds`,
//!   `fullReadEveryHours`, `usersRefreshHours`.
//! - Sync state: `conversations`, `skipped`, `plan`, `planCredit`, `users`,
//!   `usersReadAt`, `workspaceUrl`, and per conversation `newest.<id>` and `skip.<id>`.
//!
//! # Content
//! One item per message and per reply, keyed `<channel id>:<ts>`, timestamped by its
//! `ts`, stored at a version that changes with the message (see [`content`]).
//!
//! The crate depends on the SDK only. The binary registers it with one line,
//! `tributary_slack::registration()`.

pub mod client;
pub mod content;
pub mod integration;
pub mod plan;
pub mod settings;
pub mod task;

pub use integration::SlackIntegration;
pub use task::SlackTask;

use tributary_sdk::{ManifestError, Registration};

/// The Slack manifest and constructor, for the registry (checked against the task
/// enum and the settings type).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<SlackIntegration>(
        "integrations/slack/manifest.json",
        include_str!("../manifest.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_registers_with_per_method_budgets_and_secrets() {
        let manifest = registration().unwrap().manifest;
        assert_eq!(manifest.domain, "slack");
        assert_eq!(manifest.schedule.history_task, None);
        let secrets: Vec<&str> = manifest.secret_fields().collect();
        assert_eq!(secrets, ["accessToken", "refreshToken", "clientSecret"]);
        let budgets = &manifest.limits.budgets;
        assert!(budgets.iter().all(|b| b.per_class));
        let tier3 = budgets.iter().find(|b| b.name == "tier3").unwrap();
        assert_eq!(tier3.cost("conversations.history"), 1);
        assert_eq!(tier3.cost("conversations.list"), 0);
        let limited = budgets.iter().find(|b| b.name == "limited2025").unwrap();
        let class = settings::RateProfile::Limited2025.class("conversations.history");
        assert_eq!(limited.cost(&class), 1);
        assert_eq!(tier3.cost(&class), 0);
        let oauth = manifest.oauth.as_ref().unwrap();
        assert_eq!(oauth.scope_parameter, "user_scope");
        assert_eq!(oauth.token_field.as_deref(), Some("authed_user"));
    }
}

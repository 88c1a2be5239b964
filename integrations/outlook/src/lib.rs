//! The Outlook mail integration through Microsoft Graph (issue 14): every message of
//! every mail folder of a mailbox (Outlook.com or Microsoft 365), as content items,
//! kept fresh by a delta query per folder.
//!
//! Module map:
//! - [`task`]: the task types (`start`, `listMessages`, `syncFolder`, `fetchMessage`,
//!   `checkMail`) as a serde enum, in their stored form.
//! - [`integration`]: the handlers, and why they list, follow delta rounds, treat
//!   moves and deletions, and fall back after an expired delta link the way they do.
//! - [`folders`]: the mail folder tree in the sync state, and the folders' paths.
//! - [`content`]: a message as Graph sends it, its version, and its stored shape.
//!
//! Graph itself (the bearer client with `Prefer` headers, pages, delta rounds, error
//! classes, the identity platform's token endpoint) is `tributary-msgraph`'s, shared
//! with the OneDrive integration.
//!
//! # Configuration
//! - Credentials: `clientId`, `clientSecret`, `refreshToken` (OAuth 2.0 with the
//!   Microsoft identity platform, scopes `offline_access Mail.Read`), and optionally
//!   `accessToken` and `accessTokenExpiresAt`, which the kit keeps up to date. Refresh
//!   tokens rotate: the kit saves each new one the moment it is issued.
//! - Settings (declared with their defaults and ranges in `manifest.json`): `baseUrl`,
//!   `tokenUrl`, `tenant`, `pageSize`, `maxBodyBytes`.
//! - Sync state: `folders` (the tree, see [`folders`]), and per folder
//!   `deltaLink:{folderId}` (the `@odata.deltaLink` of its last round) and
//!   `deltaRound:{folderId}` (when its round in progress last read a page).
//!
//! # Content
//! One item per message, keyed by its immutable id (`Prefer: IdType="ImmutableId"`
//! on every request: a message moved between folders keeps it), timestamped with
//! `receivedDateTime`, stored at the version `"{changeKey}|{parentFolderId}"` (see
//! [`content`] for the fields). A message deleted for good becomes a deletion marker;
//! one moved to Deleted Items is a message in that folder.
//!
//! The crate depends on the SDK and `tributary-msgraph` only. The binary registers it
//! with one line, `tributary_outlook::registration()` (with
//! `.with_fake(tributary_outlook_fake::fake())`).

pub mod content;
pub mod folders;
pub mod integration;
pub mod task;

pub use integration::{OutlookIntegration, OutlookSettings};
pub use task::OutlookTask;

use tributary_sdk::{ManifestError, Registration};

/// The Outlook manifest and constructor, for the registry (checked against the task
/// enum and the settings type).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<OutlookIntegration>(
        "integrations/outlook/manifest.json",
        include_str!("../manifest.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_registers_with_its_schedule_scopes_limits_and_secrets() {
        let manifest = registration().unwrap().manifest;
        assert_eq!(manifest.domain, "outlook");
        assert_eq!(manifest.schedule.history_task.as_deref(), Some("checkMail"));
        let secrets: Vec<&str> = manifest.secret_fields().collect();
        assert_eq!(secrets, ["clientSecret", "refreshToken", "accessToken"]);
        let oauth = manifest.oauth.as_ref().unwrap();
        assert_eq!(oauth.scopes, ["offline_access", "Mail.Read"]);
        assert_eq!(
            oauth.authorization_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
        assert_eq!(
            oauth.token_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(manifest.limits.concurrent_jobs_per_account, Some(4));
        let budget = &manifest.limits.budgets[0];
        assert_eq!((budget.capacity, budget.window_seconds), (10_000, 600));
    }
}

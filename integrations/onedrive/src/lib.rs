//! The OneDrive integration through Microsoft Graph (issue 14): every file and
//! folder of a user's drive (OneDrive personal or OneDrive for Business), as content
//! items with their paths and the text of text-like files, kept fresh by the drive's
//! delta query.
//!
//! Module map:
//! - [`task`]: the task types (`start`, `syncDelta`, `fetchItem`, `refreshFolder`,
//!   `checkChanges`) as a serde enum, in their stored form.
//! - [`integration`]: the handlers, and why they follow delta rounds, fetch, treat
//!   renames and deletions, and fall back after an expired delta link the way they do.
//! - [`content`]: a drive item as Graph sends it, its version, and its stored shape.
//!
//! Graph itself (the bearer client with `Prefer` headers, pages, delta rounds, error
//! classes, downloads that never carry the token to another host, the identity
//! platform's token endpoint) is `tributary-msgraph`'s, shared with the Outlook
//! integration. The folder map with its bounded path walks, and which files are text,
//! are the SDK kit's ([`tributary_sdk::kit::folders`], [`tributary_sdk::kit::text`]),
//! shared with the Google Drive integration.
//!
//! # Configuration
//! - Credentials: `clientId`, `clientSecret`, `refreshToken` (OAuth 2.0 with the
//!   Microsoft identity platform, scopes `offline_access Files.Read`), and optionally
//!   `accessToken` and `accessTokenExpiresAt`, which the kit keeps up to date. Refresh
//!   tokens rotate: the kit saves each new one the moment it is issued.
//! - Settings (declared with their defaults and ranges in `manifest.json`): `baseUrl`,
//!   `tokenUrl`, `tenant`, `pageSize`, `maxTextBytes`.
//! - Sync state: `deltaLink` (the `@odata.deltaLink` of the last round), `deltaRound`
//!   (when the round in progress last read a page) and `folders` (the folder map).
//!
//! # Content
//! One item per file and folder below the root, keyed by its item id, timestamped
//! with `createdDateTime`, stored at its `eTag` (see [`content`] for the fields).
//! Deleted items become deletion markers.
//!
//! The crate depends on the SDK and `tributary-msgraph` only. The binary registers it
//! with one line, `tributary_onedrive::registration()` (with
//! `.with_fake(tributary_onedrive_fake::fake())`).

pub mod content;
pub mod integration;
pub mod task;

pub use integration::{OneDriveIntegration, OneDriveSettings};
pub use task::OneDriveTask;

use tributary_sdk::{ManifestError, Registration};

/// The OneDrive manifest and constructor, for the registry (checked against the task
/// enum and the settings type).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<OneDriveIntegration>(
        "integrations/onedrive/manifest.json",
        include_str!("../manifest.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_registers_with_its_schedule_scopes_limits_and_secrets() {
        let manifest = registration().unwrap().manifest;
        assert_eq!(manifest.domain, "onedrive");
        assert_eq!(
            manifest.schedule.history_task.as_deref(),
            Some("checkChanges")
        );
        assert_eq!(manifest.history_every_seconds(), Some(60));
        let secrets: Vec<&str> = manifest.secret_fields().collect();
        assert_eq!(secrets, ["clientSecret", "refreshToken", "accessToken"]);
        let oauth = manifest.oauth.as_ref().unwrap();
        assert_eq!(oauth.scopes, ["offline_access", "Files.Read"]);
        assert_eq!(
            oauth.token_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(manifest.limits.concurrent_jobs_per_account, Some(4));
        let budget = &manifest.limits.budgets[0];
        assert_eq!((budget.capacity, budget.window_seconds), (10_000, 600));
    }
}

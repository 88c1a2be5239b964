//! The Google Drive integration: the files a user can see in My Drive and in shared
//! drives, as content items, kept fresh through the Drive changes API.
//!
//! Module map:
//! - [`task`]: the task types (`start`, `listFiles`, `downloadFile`, `refreshFolder`,
//!   `checkChanges`) as a serde enum, in their stored form.
//! - [`integration`]: the handlers, and why they list, download and follow the changes
//!   the way they do.
//! - [`client`]: a thin typed client for the Drive API v3 (base URL configurable,
//!   errors classified by Google's error body, tokens through the kit).
//! - [`folders`]: the folder tree in the sync state, and paths resolved from it.
//! - [`content`]: a file as stored content, and which files have text.
//!
//! # Configuration
//! - Credentials: `clientId`, `clientSecret`, `refreshToken` (OAuth 2.0, scope
//!   `drive.readonly`; the same Google client can serve Gmail), and optionally
//!   `accessToken` and `accessTokenExpiresAt`, which the kit keeps up to date.
//! - Settings (declared with their defaults and ranges in `manifest.json`): `baseUrl`,
//!   `tokenUrl`, `pageSize`, `backfillPageSize`, `changesPageSize`, `maxTextBytes`.
//! - Sync state: `changesPageToken` (the changes cursor) and `folders` (the tree).
//!
//! # Content
//! One item per file and per folder, keyed by the Drive file id, timestamped with
//! `createdTime`, stored at Drive's `version` (see [`content::file_content`] for the
//! fields). Files trashed, deleted, or no longer shared with the user become deletion
//! markers.
//!
//! The crate depends on the SDK and the shared Google code only. The binary registers
//! it with one line, `tributary_google_drive::registration()`.

pub mod client;
pub mod content;
pub mod folders;
pub mod integration;
pub mod task;

pub use integration::DriveIntegration;
pub use task::DriveTask;

use tributary_sdk::{ManifestError, Registration};

/// The Google Drive manifest and constructor, for the registry (checked against the
/// task enum and the settings type).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<DriveIntegration>(
        "integrations/google-drive/manifest.json",
        include_str!("../manifest.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_registers_with_its_schedule_scope_and_secrets() {
        let manifest = registration().unwrap().manifest;
        assert_eq!(manifest.domain, "google-drive");
        assert_eq!(
            manifest.schedule.history_task.as_deref(),
            Some("checkChanges")
        );
        assert_eq!(manifest.history_every_seconds(), Some(60));
        let secrets: Vec<&str> = manifest.secret_fields().collect();
        assert_eq!(secrets, ["clientSecret", "refreshToken", "accessToken"]);
        let oauth = manifest.oauth.as_ref().unwrap();
        assert_eq!(
            oauth.scopes,
            ["https://www.googleapis.com/auth/drive.readonly"]
        );
    }
}

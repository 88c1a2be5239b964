//! The Gmail integration: a user's Gmail mailbox as content items, one per message.
//!
//! It is the reference integration: later ones copy its shape. Module map:
//! - [`task`]: the task types (`start`, `getEmailList`, `downloadEmail`,
//!   `checkHistory`) as a serde enum, in their stored form.
//! - [`integration`]: the handlers, and why they list, download and follow the history
//!   the way they do.
//! - [`client`]: a thin typed client for the Gmail API (base URL configurable, errors
//!   classified, tokens refreshed), following Google's discovery document.
//! - [`mime`]: decoding headers (RFC 2047) and bodies (charsets, HTML) of the MIME tree
//!   Gmail returns.
//! - [`mapping`]: a Gmail message as stored content.
//!
//! # Configuration
//! - Credentials: `clientId`, `clientSecret`, `refreshToken` (OAuth 2.0, scope
//!   `gmail.readonly`), and optionally `accessToken` and `accessTokenExpiresAt`, which
//!   the kit keeps up to date.
//! - Settings (declared, with their defaults and ranges, in `manifest.json`): `baseUrl`,
//!   `tokenUrl` (the manifest's `oauth.tokenUrl` when absent), `pageSize` and
//!   `backfillPageSize`.
//! - Sync state: `lastHistoryId`, the Gmail history cursor.
//!
//! # Content
//! One item per message, keyed by the Gmail message id and timestamped with
//! `internalDate`; the fields are those of [`mapping::EmailContent`] (`subject`,
//! `from`, `to`, `cc`, `date`, `body`, `skippedParts`, `threadId`, `labelIds`,
//! `snippet`, `hasAttachments`, `attachmentCount`, `attachments`). Messages deleted in Gmail, or
//! moved to the trash or spam, become deletion markers.
//!
//! The crate depends on the SDK only. The binary registers it with one line,
//! `tributary_gmail::registration()`.

pub mod client;
pub mod integration;
pub mod mapping;
pub mod mime;
pub mod task;

pub use integration::GmailIntegration;
pub use task::GmailTask;

use tributary_sdk::{ManifestError, Registration};

/// The Gmail manifest and constructor, for the registry (checked against the task enum
/// and the settings type).
pub fn registration() -> Result<Registration, ManifestError> {
    tributary_sdk::kit::registration::<GmailIntegration>(
        "integrations/gmail/manifest.json",
        include_str!("../manifest.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_registers_with_its_schedule_and_secrets() {
        let manifest = registration().unwrap().manifest;
        assert_eq!(manifest.domain, "gmail");
        assert_eq!(manifest.task_types[0], "start");
        assert_eq!(
            manifest.schedule.history_task.as_deref(),
            Some("checkHistory")
        );
        assert_eq!(manifest.history_every_seconds(), Some(120));
        let secrets: Vec<&str> = manifest.secret_fields().collect();
        assert_eq!(secrets, ["clientSecret", "refreshToken", "accessToken"]);
    }

    /// Google's published quota page (Gmail API, usage limits): 15,000 units per user
    /// and 1,200,000 per project per minute; the methods the client calls cost these.
    #[test]
    fn manifest_budgets_are_googles_quotas() {
        use tributary_sdk::BudgetScope;
        let manifest = registration().unwrap().manifest;
        let budgets = &manifest.limits.budgets;
        assert_eq!(budgets.len(), 2);
        for (budget, scope, capacity) in [
            (&budgets[0], BudgetScope::Account, 15_000),
            (&budgets[1], BudgetScope::Project, 1_200_000),
        ] {
            assert_eq!((budget.scope, budget.capacity), (scope, capacity));
            assert_eq!(budget.window_seconds, 60);
            for (method, units) in [
                ("users.getProfile", 1),
                ("users.labels.list", 1),
                ("users.messages.list", 5),
                ("users.messages.get", 5),
                ("users.history.list", 2),
            ] {
                assert_eq!(budget.cost(method), units, "{method}");
            }
        }
    }
}

//! Pausing, resuming and unlinking an account, and the rules between them:
//!
//! - each is idempotent: asking for the status an account already has changes nothing
//!   and says so ([`StatusChanged::changed`] is false);
//! - an unlinked account stays unlinked: pausing or resuming it is refused
//!   ([`AppError::Unlinked`]); linking the account again makes a new one;
//! - unlinking reads no credentials, so an account whose credentials no longer decrypt
//!   (a lost key) can always be retired; its content is kept and its waiting jobs go;
//! - resuming an account that waited for re-authorization lets its jobs run again: if
//!   the service still refuses the credentials it stops again;
//! - an account whose credentials do not decrypt with the store's key is not resumed
//!   ([`AppError::CredentialsUnreadable`]): its jobs could not run.

use tributary_store::UserIntegrationStatus;

use crate::App;
use crate::error::AppError;

/// What a status change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Stop syncing until resumed.
    Pause,
    /// Sync again.
    Resume,
    /// Stop syncing for good; content is kept.
    Unlink,
}

/// What a status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChanged {
    /// The account.
    pub id: i64,
    /// What was asked for.
    pub change: StatusChange,
    /// Its status before.
    pub before: UserIntegrationStatus,
    /// Its status now.
    pub after: UserIntegrationStatus,
}

impl StatusChanged {
    /// Whether the status changed (false: it already was the one asked for).
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

impl App {
    /// Pauses an account: no job of it runs until it is resumed.
    pub async fn pause(&self, id: i64) -> Result<StatusChanged, AppError> {
        self.change_status(id, StatusChange::Pause).await
    }

    /// Resumes a paused or stopped account.
    pub async fn resume(&self, id: i64) -> Result<StatusChanged, AppError> {
        self.change_status(id, StatusChange::Resume).await
    }

    /// Unlinks an account: it never syncs again, its content is kept.
    pub async fn unlink(&self, id: i64) -> Result<StatusChanged, AppError> {
        self.change_status(id, StatusChange::Unlink).await
    }

    /// Applies `change` to account `id` under the rules of the module docs.
    pub async fn change_status(
        &self,
        id: i64,
        change: StatusChange,
    ) -> Result<StatusChanged, AppError> {
        use UserIntegrationStatus as S;
        // The overview reads the status without needing the credentials.
        let account = self.account(id).await?;
        let before = account.status;
        let after = match (change, before) {
            (StatusChange::Unlink, _) => S::Unlinked,
            (_, S::Unlinked) => return Err(AppError::Unlinked { id }),
            (StatusChange::Pause, _) => S::Paused,
            (StatusChange::Resume, S::Active) => S::Active,
            (StatusChange::Resume, _) if account.credentials_unreadable => {
                return Err(AppError::CredentialsUnreadable { id });
            }
            (StatusChange::Resume, _) => S::Active,
        };
        if after != before {
            self.store
                .set_user_integration_status(id, after, None)
                .await
                .map_err(|e| {
                    AppError::store(e, || format!("failed to update user integration {id}"))
                })?;
        }
        Ok(StatusChanged {
            id,
            change,
            before,
            after,
        })
    }
}

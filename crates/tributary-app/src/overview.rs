//! The account overview: every linked account with its counts, in one store query
//! ([`tributary_store::QueueAdmin::account_overview`]).

use tributary_store::{AccountOverview, AccountScope};

use crate::App;
use crate::error::AppError;

impl App {
    /// The linked accounts, of one user when `user` is given (which must exist), by
    /// id. An account whose credentials do not decrypt is listed, marked
    /// [`AccountOverview::credentials_unreadable`].
    pub async fn overview(&self, user: Option<i64>) -> Result<Vec<AccountOverview>, AppError> {
        let scope = match user {
            Some(user) => {
                self.store
                    .get_user(user)
                    .await
                    .map_err(|e| AppError::store(e, || format!("failed to load user {user}")))?;
                AccountScope::User(user)
            }
            None => AccountScope::All,
        };
        self.store
            .account_overview(scope)
            .await
            .map_err(|e| AppError::store(e, || "failed to list linked accounts".to_owned()))
    }

    /// One linked account's overview.
    pub async fn account(&self, id: i64) -> Result<AccountOverview, AppError> {
        self.store
            .account_overview(AccountScope::Account(id))
            .await
            .map_err(|e| AppError::store(e, || format!("failed to load user integration {id}")))?
            .pop()
            .ok_or(AppError::NotFound {
                what: "user integration",
                id,
            })
    }
}

//! What can go wrong in the application layer, as types a caller renders itself: the
//! CLI as one line on stderr, an HTTP API as a status code and a body.
//!
//! No message carries a credential's value: credential problems name the field only.

use tributary_sdk::{IntegrationError, UnknownDomain};
use tributary_store::StoreError;

/// Why an application operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No integration has this domain (HTTP: 404 or 400, depending on where the domain
    /// came from).
    #[error(transparent)]
    UnknownDomain(#[from] UnknownDomain),
    /// The user or linked account asked for does not exist (HTTP: 404).
    #[error("{what} {id} not found")]
    NotFound {
        /// `user` or `user integration`.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The credentials do not match the manifest's credential fields (HTTP: 400).
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The integration cannot be set up with these settings or credentials: its
    /// constructor refused them before any request (HTTP: 400).
    #[error("the account for `{domain}` cannot be set up: {source}")]
    Invalid {
        /// The integration.
        domain: String,
        /// What the integration reported (it names the field).
        source: IntegrationError,
    },
    /// The service refused the credentials, or could not be reached to check them
    /// (HTTP: 422, or 502 when the service was unreachable).
    #[error("credentials for `{domain}` were not accepted: {source}")]
    Rejected {
        /// The integration.
        domain: String,
        /// What the integration reported.
        source: IntegrationError,
    },
    /// The account is unlinked: it cannot be paused or resumed, only linked again
    /// (HTTP: 409).
    #[error("user integration {id} is unlinked; link the account again to sync it")]
    Unlinked {
        /// The account.
        id: i64,
    },
    /// The account's credentials do not decrypt with the store's key, so it cannot
    /// sync (HTTP: 409). Restore the key it was stored with, or unlink it and link it
    /// again.
    #[error(
        "the credentials of user integration {id} do not decrypt with this key: restore the key they were stored with, or unlink it and link the account again"
    )]
    CredentialsUnreadable {
        /// The account.
        id: i64,
    },
    /// A step of the OAuth code flow failed.
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
    /// The store failed (HTTP: 500, or 503 when the database is unreachable).
    #[error("{context}")]
    Store {
        /// What was being done (`failed to store the linked account`).
        context: String,
        /// The store's error.
        source: StoreError,
    },
}

impl AppError {
    /// A store error while doing `context`; a "not found" becomes [`AppError::NotFound`].
    pub(crate) fn store(source: StoreError, context: impl FnOnce() -> String) -> AppError {
        match source {
            StoreError::NotFound { what, id } => match (what, id.parse()) {
                ("user", Ok(id)) => AppError::NotFound { what: "user", id },
                ("user integration", Ok(id)) => AppError::NotFound {
                    what: "user integration",
                    id,
                },
                _ => AppError::Store {
                    context: context(),
                    source: StoreError::NotFound { what, id },
                },
            },
            source => AppError::Store {
                context: context(),
                source,
            },
        }
    }
}

/// Credentials that do not match an integration's manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe("the credentials object"))]
pub struct CredentialsError {
    /// The integration.
    pub domain: String,
    /// What is wrong.
    pub problem: CredentialProblem,
}

/// What is wrong with credentials, by field (never by value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialProblem {
    /// A field the manifest does not declare (a typo, usually).
    UnknownField {
        /// The field given.
        field: String,
        /// The manifest's credential fields.
        expected: Vec<String>,
    },
    /// A field whose value is not a string.
    NotAString {
        /// The field.
        field: String,
    },
    /// A required field given as an empty (or blank) string.
    Empty {
        /// The field.
        field: String,
    },
    /// A required field that is absent.
    Missing {
        /// The field.
        field: String,
    },
}

impl CredentialsError {
    /// The message, naming where the credentials came from (`source`: "credentials
    /// file creds.json", "stdin", "the request body").
    pub fn describe(&self, source: &str) -> String {
        let domain = &self.domain;
        match &self.problem {
            CredentialProblem::UnknownField { field, expected } => format!(
                "{source} has an unknown field `{field}` for {domain}; expected fields: {}",
                expected.join(", ")
            ),
            CredentialProblem::NotAString { field } => {
                format!("{source}: field `{field}` must be a string")
            }
            CredentialProblem::Empty { field } => format!("{source}: field `{field}` is empty"),
            CredentialProblem::Missing { field } => {
                format!("{source} lacks the required field `{field}` for {domain}")
            }
        }
    }
}

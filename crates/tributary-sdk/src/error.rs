//! The error type of an integration, classified by what the engine should do next.
//!
//! The class is decided where the facts are (the integration knows that Google's 403
//! `rateLimitExceeded` is a rate limit, not a permission problem), so the engine never
//! sniffs error strings: it maps each variant to one action.
//!
//! | variant | engine action |
//! |---|---|
//! | [`IntegrationError::Transient`] | retry with exponential backoff and jitter |
//! | [`IntegrationError::RateLimited`] | retry no earlier than `retry_after` |
//! | [`IntegrationError::Auth`] | mark the account `needs_reauth`, pause its jobs |
//! | [`IntegrationError::Permanent`] | record the error, never retry |

use std::time::Duration;

/// What went wrong while running a task, and therefore what the engine does about it.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// A passing failure (network error, 5xx, timeout): retried with backoff.
    #[error("transient error: {message}")]
    Transient {
        /// What failed, with context.
        message: String,
    },
    /// The service asked us to slow down (429, quota 403): retried after `retry_after`
    /// when the service said how long, else with backoff.
    #[error("rate limited: {message}")]
    RateLimited {
        /// How long the service asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// What was rate limited.
        message: String,
    },
    /// The credentials no longer work (401, revoked refresh token): the account needs
    /// its user to authorize again. Its jobs pause; retrying would not help.
    #[error("authentication failed: {message}")]
    Auth {
        /// Why the credentials were refused.
        message: String,
    },
    /// The task can never succeed (bad request, unknown task type, malformed payload):
    /// recorded and not retried.
    #[error("permanent error: {message}")]
    Permanent {
        /// Why the task cannot succeed.
        message: String,
    },
}

/// The class of an [`IntegrationError`], as stored with a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// See [`IntegrationError::Transient`].
    Transient,
    /// See [`IntegrationError::RateLimited`].
    RateLimited,
    /// See [`IntegrationError::Auth`].
    Auth,
    /// See [`IntegrationError::Permanent`].
    Permanent,
}

impl ErrorClass {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IntegrationError {
    /// A transient error with this message.
    pub fn transient(message: impl Into<String>) -> Self {
        IntegrationError::Transient {
            message: message.into(),
        }
    }

    /// A rate-limit error, optionally with the wait the service asked for.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        IntegrationError::RateLimited {
            retry_after,
            message: message.into(),
        }
    }

    /// An authentication error with this message.
    pub fn auth(message: impl Into<String>) -> Self {
        IntegrationError::Auth {
            message: message.into(),
        }
    }

    /// A permanent error with this message.
    pub fn permanent(message: impl Into<String>) -> Self {
        IntegrationError::Permanent {
            message: message.into(),
        }
    }

    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            IntegrationError::Transient { .. } => ErrorClass::Transient,
            IntegrationError::RateLimited { .. } => ErrorClass::RateLimited,
            IntegrationError::Auth { .. } => ErrorClass::Auth,
            IntegrationError::Permanent { .. } => ErrorClass::Permanent,
        }
    }

    /// The message without the class prefix.
    pub fn message(&self) -> &str {
        match self {
            IntegrationError::Transient { message }
            | IntegrationError::RateLimited { message, .. }
            | IntegrationError::Auth { message }
            | IntegrationError::Permanent { message } => message,
        }
    }

    /// The same error with `context` put in front of its message, keeping its class.
    ///
    /// ```
    /// # use tributary_sdk::IntegrationError;
    /// let e = IntegrationError::transient("connection reset").context("failed to list messages");
    /// assert_eq!(e.message(), "failed to list messages: connection reset");
    /// ```
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let prefix = |m: String| format!("{context}: {m}");
        match self {
            IntegrationError::Transient { message } => IntegrationError::Transient {
                message: prefix(message),
            },
            IntegrationError::RateLimited {
                retry_after,
                message,
            } => IntegrationError::RateLimited {
                retry_after,
                message: prefix(message),
            },
            IntegrationError::Auth { message } => IntegrationError::Auth {
                message: prefix(message),
            },
            IntegrationError::Permanent { message } => IntegrationError::Permanent {
                message: prefix(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_class_and_retry_after() {
        let e = IntegrationError::rate_limited("slow down", Some(Duration::from_secs(2)))
            .context("listing page 3");
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.message(), "listing page 3: slow down");
        match e {
            IntegrationError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

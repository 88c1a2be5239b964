//! Injected faults: "answer the next N requests whose path contains this fragment
//! with that error".
//!
//! Rules are kept in the order they were added; a request (after authentication and
//! throttling, see [`crate::pipeline`]) takes the first rule whose fragment occurs in
//! its path and query string (`""` matches every request) and that has answers left.
//! A faulted request is never routed: the mailbox's state does not change.

use crate::error::GraphError;

/// A fault the fake can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 503 `serviceNotAvailable`, with `Retry-After` when given.
    Unavailable {
        /// The `Retry-After` seconds.
        retry_after_secs: Option<u64>,
    },
    /// 500 `generalException`.
    InternalError,
    /// 429 `activityLimitReached` with `Retry-After`.
    TooManyRequests {
        /// The `Retry-After` seconds.
        retry_after_secs: u64,
    },
    /// This error.
    Error(GraphError),
}

impl Fault {
    /// The error the fault answers with.
    pub fn to_error(&self) -> GraphError {
        match self {
            Fault::Unavailable { retry_after_secs } => {
                GraphError::service_unavailable(*retry_after_secs)
            }
            Fault::InternalError => GraphError::internal(),
            Fault::TooManyRequests { retry_after_secs } => GraphError::throttled(
                "activityLimitReached",
                "The request has been throttled.",
                *retry_after_secs,
            ),
            Fault::Error(error) => error.clone(),
        }
    }
}

#[derive(Debug)]
struct Rule {
    fragment: String,
    remaining: usize,
    fault: Fault,
}

/// The queued faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Rule>,
}

impl Faults {
    pub(crate) fn push(&mut self, fragment: &str, count: usize, fault: Fault) {
        if count > 0 {
            self.rules.push(Rule {
                fragment: fragment.to_owned(),
                remaining: count,
                fault,
            });
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The fault for a request to `target` (path and query), if one is queued.
    pub(crate) fn take(&mut self, target: &str) -> Option<Fault> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.remaining > 0 && target.contains(&rule.fragment))?;
        let rule = &mut self.rules[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }

    /// Answers still queued, over every rule.
    pub(crate) fn pending(&self) -> usize {
        self.rules.iter().map(|rule| rule.remaining).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_fragment_and_run_out() {
        let mut faults = Faults::default();
        faults.push("/delta", 2, Fault::InternalError);
        faults.push(
            "",
            1,
            Fault::Unavailable {
                retry_after_secs: Some(3),
            },
        );
        assert_eq!(
            faults.take("/v1.0/me/mailFolders/inbox/messages/delta"),
            Some(Fault::InternalError)
        );
        assert_eq!(
            faults.take("/v1.0/me/messages/x"),
            Some(Fault::Unavailable {
                retry_after_secs: Some(3)
            })
        );
        assert_eq!(faults.take("/v1.0/me/messages/x"), None);
        assert_eq!(faults.take("/x/delta"), Some(Fault::InternalError));
        assert_eq!(faults.take("/x/delta"), None);
        assert_eq!(faults.pending(), 0);
    }
}

//! How a failed attempt becomes a queue action, by error class (DESIGN.md, "errors are
//! classified, and the engine acts on the class").
//!
//! | class | action |
//! |---|---|
//! | transient | retry after `base * 2^(attempt-1)` (capped), with jitter; dead after the last attempt |
//! | rate limited | retry no earlier than the service's `Retry-After` (else as transient); dead after the last attempt |
//! | auth | pause the account (`needs_reauth`); the job waits for re-authorization |
//! | permanent | failed, never retried |

use std::time::Duration;

use rand::Rng;
use tributary_sdk::IntegrationError;
use tributary_store::FailureAction;

use crate::EngineConfig;

/// The action for a failed attempt number `attempt` (1-based) at time `now` (ms).
pub fn failure_action(
    error: &IntegrationError,
    attempt: i32,
    max_attempts: i32,
    config: &EngineConfig,
    now: i64,
) -> FailureAction {
    let last_attempt = attempt >= max_attempts;
    match error {
        IntegrationError::Permanent { .. } => FailureAction::Failed,
        IntegrationError::Auth { .. } => FailureAction::PauseAccount,
        IntegrationError::Transient { .. } | IntegrationError::RateLimited { .. }
            if last_attempt =>
        {
            FailureAction::Dead
        }
        IntegrationError::RateLimited {
            retry_after: Some(wait),
            ..
        } => FailureAction::Retry {
            run_at: now + millis(*wait),
        },
        IntegrationError::Transient { .. } | IntegrationError::RateLimited { .. } => {
            FailureAction::Retry {
                run_at: now + millis(backoff(attempt, config)),
            }
        }
    }
}

/// The delay before retry number `attempt`: exponential, capped, with "equal jitter"
/// (between half and all of the exponential delay) so that many jobs failing together
/// do not retry together.
pub fn backoff(attempt: i32, config: &EngineConfig) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = config
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(config.backoff_max);
    let half = full / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EngineConfig {
        EngineConfig {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ..EngineConfig::default()
        }
    }

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let c = config();
        for _ in 0..100 {
            let d1 = backoff(1, &c);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
            let d4 = backoff(4, &c);
            assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8));
            let d30 = backoff(30, &c);
            assert!(d30 >= Duration::from_secs(30) && d30 <= Duration::from_secs(60));
        }
    }

    #[test]
    fn classes_map_to_actions() {
        let c = config();
        let now = 1_000_000;
        assert_eq!(
            failure_action(&IntegrationError::permanent("x"), 1, 5, &c, now),
            FailureAction::Failed
        );
        assert_eq!(
            failure_action(&IntegrationError::auth("x"), 1, 5, &c, now),
            FailureAction::PauseAccount
        );
        assert_eq!(
            failure_action(
                &IntegrationError::rate_limited("x", Some(Duration::from_secs(2))),
                1,
                5,
                &c,
                now
            ),
            FailureAction::Retry { run_at: now + 2000 }
        );
        assert_eq!(
            failure_action(&IntegrationError::transient("x"), 5, 5, &c, now),
            FailureAction::Dead
        );
        match failure_action(&IntegrationError::transient("x"), 2, 5, &c, now) {
            FailureAction::Retry { run_at } => {
                assert!((now + 1000..=now + 2000).contains(&run_at), "{run_at}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

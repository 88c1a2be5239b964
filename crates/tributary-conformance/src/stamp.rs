//! What a test stamped by [`crate::conformance_tests!`] runs: the scenario when the
//! subject declares every capability it needs, otherwise a check that each missing
//! capability is truly absent, and a line on stderr saying the scenario was skipped
//! and why. A subject cannot make a scenario vanish by leaving it out, nor skip one by
//! declaring away a capability its service has: the absence check would fail.
//!
//! | capability | absent means, checked |
//! |---|---|
//! | history | the manifest names no history task |
//! | edits | [`ConformanceSubject::edit_item`] refuses, and the truth is unchanged |
//! | restore | after a deletion, [`ConformanceSubject::restore_item`] brings nothing back |
//! | expiring tokens | [`ConformanceSubject::expire_tokens_after_calls`] refuses, and linking plus a full sync ask no token endpoint |

use std::future::Future;

use crate::harness::run_scenario;
use crate::{Backend, Capability, ConformanceSubject, Harness};

/// Items the absence checks start the subject with.
const CHECK_ITEMS: usize = 20;

/// Runs `scenario` for `S` on `backend` if `S` declares every capability in
/// `requires`; otherwise checks that the missing ones are absent and prints that
/// `name` was skipped.
///
/// # Panics
/// When the scenario fails, or a capability declared absent is present.
pub fn run_stamped<S, F, Fut>(backend: Backend, name: &str, requires: &[Capability], scenario: F)
where
    S: ConformanceSubject,
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    let missing: Vec<Capability> = requires
        .iter()
        .copied()
        .filter(|c| !S::CAPABILITIES.has(*c))
        .collect();
    if missing.is_empty() {
        run_scenario::<S, _, _>(backend, scenario);
        return;
    }
    run_scenario::<S, _, _>(backend, |h| async move {
        for capability in &missing {
            assert_absent::<S>(&h, *capability).await;
        }
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        eprintln!(
            "skipped {name} for {}: it needs {}, which the subject declares absent \
             (checked: absent indeed)",
            std::any::type_name::<S>(),
            names.join(" and ")
        );
    });
}

/// Checks that `capability` is absent from `S`'s service.
async fn assert_absent<S: ConformanceSubject>(h: &Harness, capability: Capability) {
    match capability {
        Capability::History => {
            // The harness already checked the manifest against the declaration.
            assert!(
                h.history_task.is_none(),
                "history declared absent, but the manifest names a history task"
            );
        }
        Capability::Edits => {
            let subject = S::start(CHECK_ITEMS, 1).await;
            let truth = subject.truth();
            let id = truth.keys().next().cloned().unwrap_or_default();
            assert!(
                !subject.edit_item(&id),
                "edits declared absent, but the subject edited {id}"
            );
            assert_eq!(
                subject.truth(),
                truth,
                "edits declared absent, but a refused edit changed the truth"
            );
        }
        Capability::Restore => {
            let subject = S::start(CHECK_ITEMS, 1).await;
            for id in subject.truth().keys().take(3) {
                subject.delete_item(id);
            }
            assert_eq!(
                subject.restore_item(),
                None,
                "restore declared absent, but the subject restored a deleted item"
            );
        }
        Capability::ExpiringTokens => {
            let subject = S::start(CHECK_ITEMS, 1).await;
            assert!(
                !subject.expire_tokens_after_calls(0),
                "expiring tokens declared absent, but the subject can expire its tokens"
            );
            let ui = h.link(&subject, "absence-check").await.id;
            let engine = h.engine(crate::scenarios::WORKERS);
            h.sync(&engine, ui).await;
            h.assert_no_failed_jobs(ui).await;
            assert_eq!(
                subject.tokens_issued(),
                0,
                "expiring tokens declared absent, but linking and syncing asked for tokens"
            );
        }
    }
}

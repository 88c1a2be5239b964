//! The integration conformance harness: one set of sync scenarios that every
//! integration runs against its fake, on SQLite and on PostgreSQL (DESIGN.md,
//! "Testing"; in the manner of vector's source compliance runner).
//!
//! An integration's test (`integrations/<domain>/tests/conformance.rs`) implements
//! [`ConformanceSubject`] over its fake (start a fake with N items, mutate it, read its
//! truth, inject faults, expire tokens and cursors), declares its [`Capabilities`], and
//! stamps out every scenario with [`conformance_tests!`]:
//!
//! ```text
//! tributary_conformance::conformance_tests!(GmailSubject);
//! ```
//!
//! which yields `sqlite::full_sync`, `postgres::full_sync`, ... for every scenario of
//! [`scenarios`], on both backends. No scenario can be left out: one that needs a
//! capability the subject declares absent checks that the capability is truly absent
//! (a manifest without a history task, an edit or a restore the fake refuses, a sync
//! that never asks a token endpoint) and prints that it was skipped, and why. Each
//! test builds a fresh migrated database ([`Harness`]), an engine on a manual clock,
//! and runs one scenario through the real engine, store and integration, talking HTTP
//! to the fake.
//!
//! Module map:
//! - [`subject`]: [`ConformanceSubject`], what an integration provides, and its
//!   [`Capabilities`].
//! - [`harness`]: [`Harness`], a store plus engines on a manual clock, and the helpers
//!   the scenarios share (run until settled, read content, compare with the truth).
//! - [`scenarios`]: the scenarios, one async function each.
//! - [`stamp`]: what a stamped test runs: the scenario, or the absence checks of the
//!   capabilities it needs.
//!
//! The fakes are served through the testkit's `serving` (a loopback server, and a
//! [`tributary_testkit::serving::ResponseGate`] that holds a fetch's answer while a
//! scenario changes the item) and `fault_layer` (random 429 and 5xx answers in front
//! of a fake without fault injection of its own).
//!
//! Time never passes by sleeping: retries become due when a scenario moves the manual
//! clock ([`Harness::settle`] moves it to the next due retry).

pub mod harness;
pub mod scenarios;
pub mod stamp;
pub mod subject;

pub use harness::{Backend, Harness, run_scenario};
pub use stamp::run_stamped;
pub use subject::{Capabilities, Capability, ConformanceSubject};
pub use tributary_testkit::fault_layer::FaultRates;

/// Stamps out one `#[test]` per scenario of [`scenarios`] and backend for a
/// [`ConformanceSubject`]: `sqlite::<scenario>` and `postgres::<scenario>`, each
/// through [`run_stamped`] with the capabilities the scenario needs.
///
/// The argument is the subject type (in scope where the macro is called). A
/// PostgreSQL test returns early, printing why, when no server is reachable and `CI`
/// is not `true` (see `tributary_store::testing::postgres_test_store`).
#[macro_export]
macro_rules! conformance_tests {
    ($subject:ty $(,)?) => {
        /// The scenarios on SQLite.
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_scenarios!($subject, Sqlite);
        }
        /// The scenarios on PostgreSQL.
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_scenarios!($subject, Postgres);
        }
    };
}

/// Stamps out one `#[test]` per function and backend for an integration's own
/// acceptance tests: `sqlite::<name>` and `postgres::<name>`, each running
/// `async fn name(h: Harness)` (in scope where the macro is called) through
/// [`run_scenario`] with the subject's registration.
///
/// ```text
/// tributary_conformance::backend_tests!(OneDriveSubject; a_drive_syncs, renames_follow);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($subject:ty; $($name:ident),+ $(,)?) => {
        /// The tests on SQLite.
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    $crate::run_scenario::<$subject, _, _>($crate::Backend::Sqlite, super::$name);
                }
            )+
        }
        /// The tests on PostgreSQL.
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    $crate::run_scenario::<$subject, _, _>($crate::Backend::Postgres, super::$name);
                }
            )+
        }
    };
}

/// The list of every scenario and the capabilities it needs (used by
/// [`conformance_tests!`]; a new scenario is added here and in [`scenarios`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_scenarios {
    ($subject:ty, $backend:ident) => {
        $crate::__conformance_scenarios!(@stamp $subject, $backend;
            full_sync: [],
            resync_nothing_new: [],
            new_item_appears: [History],
            edit_updates_content: [History, Edits],
            edit_during_fetch: [History, Edits],
            change_burst: [History, Edits],
            deletion_soft_deletes: [History],
            expired_cursor_falls_back: [History],
            token_expiry_mid_sync: [History, ExpiringTokens],
            token_reuse: [ExpiringTokens],
            faults_converge: [History],
            revoked_credentials_need_reauth: [History],
            convergence: [History],
        );
    };
    (@stamp $subject:ty, $backend:ident; $($scenario:ident: [$($capability:ident),*]),+ $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                $crate::run_stamped::<$subject, _, _>(
                    $crate::Backend::$backend,
                    stringify!($scenario),
                    &[$($crate::Capability::$capability),*],
                    $crate::scenarios::$scenario::<$subject>,
                );
            }
        )+
    };
}

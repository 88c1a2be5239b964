//! The integration conformance harness: one set of sync scenarios that every
//! integration runs against its fake, on SQLite and on PostgreSQL (DESIGN.md,
//! "Testing"; in the manner of vector's source compliance runner).
//!
//! An integration's test crate implements [`ConformanceSubject`] over its fake (start a
//! fake with N items, mutate it, read its truth, inject faults, expire tokens and
//! cursors) and stamps out the tests with [`conformance_tests!`]:
//!
//! ```text
//! tributary_conformance::conformance_tests!(GmailSubject;
//!     full_sync, resync_nothing_new, new_item_appears, edit_updates_content,
//!     deletion_soft_deletes, expired_cursor_falls_back, token_expiry_mid_sync,
//!     faults_converge, revoked_credentials_need_reauth, convergence,
//! );
//! ```
//!
//! which yields `sqlite::full_sync`, `postgres::full_sync`, ... Each test builds a
//! fresh migrated database ([`Harness`]), an engine on a manual clock, and runs one
//! scenario of [`scenarios`] through the real engine, store and integration, talking
//! HTTP to the fake.
//!
//! Module map:
//! - [`subject`]: [`ConformanceSubject`], what an integration provides.
//! - [`harness`]: [`Harness`], a store plus engines on a manual clock, and the helpers
//!   the scenarios share (run until settled, read content, compare with the truth).
//! - [`scenarios`]: the scenarios, one async function each.
//! - [`serving`]: serving a fake's router on a loopback port behind the harness's
//!   layers, such as [`serving::ResponseGate`], which holds a fetch's answer while a
//!   scenario changes the item.
//! - [`fault_layer`]: random 429 and 5xx answers in front of any axum fake that has no
//!   fault injection of its own.
//!
//! Time never passes by sleeping: retries become due when a scenario moves the manual
//! clock ([`Harness::settle`] moves it to the next due retry).

pub mod fault_layer;
pub mod harness;
pub mod scenarios;
pub mod serving;
pub mod subject;

pub use harness::{Backend, Harness, run_scenario};
pub use subject::{ConformanceSubject, FaultRates};

/// Stamps out one `#[test]` per scenario and backend for a [`ConformanceSubject`]:
/// `sqlite::<scenario>` and `postgres::<scenario>`.
///
/// The first argument is the subject type (in scope where the macro is called), then
/// the names of functions in [`scenarios`]. A PostgreSQL test returns early, printing
/// why, when no server is reachable and `CI` is not `true` (see
/// `tributary_store::testing::postgres_test_store`).
#[macro_export]
macro_rules! conformance_tests {
    ($subject:ty; $($scenario:ident),+ $(,)?) => {
        /// The scenarios on SQLite.
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $scenario() {
                    $crate::run_scenario::<$subject, _, _>(
                        $crate::Backend::Sqlite,
                        $crate::scenarios::$scenario::<$subject>,
                    );
                }
            )+
        }
        /// The scenarios on PostgreSQL.
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $scenario() {
                    $crate::run_scenario::<$subject, _, _>(
                        $crate::Backend::Postgres,
                        $crate::scenarios::$scenario::<$subject>,
                    );
                }
            )+
        }
    };
}

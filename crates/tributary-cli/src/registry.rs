//! The one list of integrations this binary knows: one line per integration.
//!
//! A line attaches the integration's fake when it ships one
//! (`Registration::with_fake`): `tributary fake <domain>` and the demo find it here.
//!
//! The test doubles, `synthetic` (the integration of the testkit's synthetic source)
//! and `noop` (jobs that do nothing, for queue benchmarks), are not integrations a user
//! can link: a normal run neither lists nor accepts them. Tests that drive the real
//! binary with them set [`TEST_INTEGRATIONS_ENV`] to `1`, which the binary reads once
//! at start-up ([`init_from_env`]); it is meant for tests only and is not documented
//! for operators.
//!
//! Why a runtime switch rather than a cargo feature: cargo unifies features across a
//! workspace build, so a feature that some test or benchmark crate enabled would leak
//! into the `tributary` binary that `cargo nextest run --workspace` builds (and the
//! one the CLI's own tests run), and the binary's behaviour would then depend on which
//! crates were built together. An environment variable keeps every build of the
//! binary the same: without the variable, `synthetic` and `noop` do not exist.

use std::sync::OnceLock;

use tributary_sdk::{ManifestError, Registration, Registry};

/// The environment variable that adds the test doubles (`synthetic`, `noop`) to the
/// registry when set to `1`. For tests only.
pub const TEST_INTEGRATIONS_ENV: &str = "TRIBUTARY_TEST_INTEGRATIONS";

/// Whether the test doubles are registered, decided once.
static TEST_INTEGRATIONS: OnceLock<bool> = OnceLock::new();

/// Reads [`TEST_INTEGRATIONS_ENV`] (once; later calls keep the first answer).
pub fn init_from_env() -> bool {
    *TEST_INTEGRATIONS
        .get_or_init(|| std::env::var_os(TEST_INTEGRATIONS_ENV).is_some_and(|v| v == "1"))
}

/// Every built-in integration, plus the test doubles when the switch is on.
pub fn builtin_integrations() -> Result<Registry, ManifestError> {
    integrations(init_from_env())
}

/// The real integrations, and the test doubles if `test_doubles`.
fn integrations(test_doubles: bool) -> Result<Registry, ManifestError> {
    let mut all: Vec<Result<Registration, ManifestError>> = vec![
        tributary_gmail::registration().map(|r| r.with_fake(tributary_gmail_fake::fake())),
        tributary_google_drive::registration()
            .map(|r| r.with_fake(tributary_google_drive_fake::fake())),
        tributary_slack::registration().map(|r| r.with_fake(tributary_slack_fake::fake())),
        tributary_outlook::registration().map(|r| r.with_fake(tributary_outlook_fake::fake())),
        tributary_onedrive::registration().map(|r| r.with_fake(tributary_onedrive_fake::fake())),
        // One line per integration.
    ];
    if test_doubles {
        all.push(
            tributary_synthetic::registration()
                .map(|r| r.with_fake(tributary_testkit::synthetic::fake())),
        );
        all.push(tributary_testkit::noop::registration());
    }
    Registry::new(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(registry: &Registry) -> Vec<&str> {
        registry.domains().collect()
    }

    #[test]
    fn test_doubles_only_behind_the_switch() {
        let normal = integrations(false).unwrap();
        assert_eq!(
            domains(&normal),
            ["gmail", "google-drive", "onedrive", "outlook", "slack"]
        );
        assert!(normal.get("synthetic").is_err());
        let with_doubles = integrations(true).unwrap();
        assert_eq!(
            domains(&with_doubles),
            [
                "gmail",
                "google-drive",
                "noop",
                "onedrive",
                "outlook",
                "slack",
                "synthetic"
            ]
        );
    }

    #[test]
    fn fakes_are_registered_with_their_integrations() {
        let registry = integrations(true).unwrap();
        assert!(registry.fake("gmail").is_ok());
        assert!(registry.fake("google-drive").is_ok());
        assert!(registry.fake("onedrive").is_ok());
        assert!(registry.fake("outlook").is_ok());
        assert!(registry.fake("slack").is_ok());
        assert!(registry.fake("synthetic").is_ok());
        let error = registry.fake("noop").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "the `noop` integration has no fake; integrations with a fake: gmail, google-drive, onedrive, outlook, slack, synthetic"
            )
        );
    }
}

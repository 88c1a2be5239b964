//! The one list of integrations this binary knows: one line per integration.

use tributary_sdk::{ManifestError, Registry};

/// Every built-in integration.
pub fn builtin_integrations() -> Result<Registry, ManifestError> {
    Registry::new([
        tributary_gmail::registration(),
        // Test and benchmark integrations: a deterministic synthetic source and no-ops.
        tributary_testkit::synthetic::registration(),
        tributary_testkit::noop::registration(),
    ])
}

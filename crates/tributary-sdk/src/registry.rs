//! The registry of known integrations.
//!
//! Each integration crate exposes one function returning its [`Registration`]
//! (manifest text plus constructor), and the binary lists those functions in one place,
//! one line per integration. The registry validates every manifest when it is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Integration, IntegrationContext, IntegrationError, Manifest, ManifestError};

/// Builds an integration instance for one job.
pub type Constructor =
    Arc<dyn Fn(IntegrationContext) -> Result<Box<dyn Integration>, IntegrationError> + Send + Sync>;

/// An integration's manifest and constructor.
#[derive(Clone)]
pub struct Registration {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Builds an instance.
    pub construct: Constructor,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("domain", &self.manifest.domain)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Parses and validates `manifest_text` (read from `manifest_file`, named in errors)
    /// and pairs it with the constructor.
    ///
    /// Integrations written with the kit register with
    /// [`crate::kit::registration`] instead, which also checks the manifest against
    /// their task enum and settings type.
    pub fn new(
        manifest_file: &str,
        manifest_text: &str,
        construct: fn(IntegrationContext) -> Result<Box<dyn Integration>, IntegrationError>,
    ) -> Result<Registration, ManifestError> {
        Ok(Registration {
            manifest: Manifest::parse(manifest_file, manifest_text)?,
            construct: Arc::new(construct),
        })
    }
}

/// An unknown integration domain, with the known ones for the error message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown integration `{domain}`; known integrations: {}", known.join(", "))]
pub struct UnknownDomain {
    /// The domain asked for.
    pub domain: String,
    /// The registered domains, sorted.
    pub known: Vec<String>,
}

/// The known integrations, by domain.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_domain: BTreeMap<String, Registration>,
}

impl Registry {
    /// Builds the registry; fails on the first invalid manifest or a domain registered
    /// twice.
    pub fn new(
        registrations: impl IntoIterator<Item = Result<Registration, ManifestError>>,
    ) -> Result<Registry, ManifestError> {
        let mut by_domain = BTreeMap::new();
        for registration in registrations {
            let registration = registration?;
            let domain = registration.manifest.domain.clone();
            if by_domain.contains_key(&domain) {
                return Err(ManifestError {
                    file: format!("integration `{domain}`"),
                    field: "domain".into(),
                    problem: format!("`{domain}` is registered twice"),
                });
            }
            by_domain.insert(domain, registration);
        }
        Ok(Registry { by_domain })
    }

    /// The registration for `domain`, or an error listing the known domains.
    pub fn get(&self, domain: &str) -> Result<&Registration, UnknownDomain> {
        self.by_domain.get(domain).ok_or_else(|| UnknownDomain {
            domain: domain.to_owned(),
            known: self.domains().map(str::to_owned).collect(),
        })
    }

    /// The registered domains, sorted.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.by_domain.keys().map(String::as_str)
    }

    /// Every registration, sorted by domain.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.by_domain.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Task, TaskResult};

    struct Nop;
    #[async_trait::async_trait]
    impl Integration for Nop {
        async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
            Ok(())
        }
        async fn run_task(&mut self, _task: &Task) -> Result<TaskResult, IntegrationError> {
            Ok(TaskResult::new())
        }
    }
    fn construct(_: IntegrationContext) -> Result<Box<dyn Integration>, IntegrationError> {
        Ok(Box::new(Nop))
    }
    fn reg(domain: &str) -> Result<Registration, ManifestError> {
        let text =
            format!(r#"{{"domain":"{domain}","name":"N","version":"1","taskTypes":["start"]}}"#);
        Registration::new("m.json", &text, construct)
    }

    #[test]
    fn unknown_domain_lists_known_ones() {
        let r = Registry::new([reg("beta"), reg("alpha")]).unwrap();
        let e = r.get("gamma").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown integration `gamma`; known integrations: alpha, beta"
        );
        assert!(r.get("alpha").is_ok());
    }

    #[test]
    fn duplicate_domain_rejected() {
        let e = Registry::new([reg("a"), reg("a")]).unwrap_err();
        assert!(e.to_string().contains("registered twice"));
    }

    #[test]
    fn invalid_manifest_rejected_at_build() {
        let bad = Registration::new("bad/manifest.json", "{}", construct);
        let e = Registry::new([reg("a"), bad]).unwrap_err();
        assert!(e.to_string().contains("bad/manifest.json"), "{e}");
    }
}

//! The registry of known integrations.
//!
//! Each integration crate exposes one function returning its [`Registration`]
//! (manifest text plus constructor), and the binary lists those functions in one place,
//! one line per integration. The registry validates every manifest when it is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fake::{Fake, SharedFake};
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
    /// The integration's fake, if it ships one ([`Registration::with_fake`]).
    pub fake: Option<SharedFake>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("domain", &self.manifest.domain)
            .field("fake", &self.fake.is_some())
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
            fake: None,
        })
    }

    /// This registration with its integration's fake (`tributary fake <domain>`, the
    /// demo): `tributary_x::registration().map(|r| r.with_fake(tributary_x_fake::fake()))`.
    #[must_use]
    pub fn with_fake(mut self, fake: impl Fake) -> Registration {
        self.fake = Some(Arc::new(fake));
        self
    }
}

/// A domain without a fake, with the domains that have one for the error message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}; integrations with a fake: {}", reason(domain, *known_domain), if with_fake.is_empty() { "none".to_owned() } else { with_fake.join(", ") })]
pub struct NoFake {
    /// The domain asked for.
    pub domain: String,
    /// Whether the domain is a registered integration (one without a fake).
    pub known_domain: bool,
    /// The domains with a fake, sorted.
    pub with_fake: Vec<String>,
}

fn reason(domain: &str, known: bool) -> String {
    if known {
        format!("the `{domain}` integration has no fake")
    } else {
        format!("unknown integration `{domain}`")
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

    /// The fake of `domain`'s integration, or an error naming the domains that have one.
    pub fn fake(&self, domain: &str) -> Result<SharedFake, NoFake> {
        let registration = self.by_domain.get(domain);
        registration
            .and_then(|r| r.fake.clone())
            .ok_or_else(|| NoFake {
                domain: domain.to_owned(),
                known_domain: registration.is_some(),
                with_fake: self
                    .iter()
                    .filter(|r| r.fake.is_some())
                    .map(|r| r.manifest.domain.clone())
                    .collect(),
            })
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

    struct NoService;
    #[async_trait::async_trait]
    impl Fake for NoService {
        async fn start(
            &self,
            _: crate::fake::FakeOptions,
        ) -> std::io::Result<Box<dyn crate::fake::RunningFake>> {
            Err(std::io::Error::other("nothing to serve"))
        }
    }

    #[test]
    fn fakes_are_found_by_domain() {
        let r = Registry::new([
            reg("beta").map(|r| r.with_fake(NoService)),
            reg("alpha"),
            reg("gamma").map(|r| r.with_fake(NoService)),
        ])
        .unwrap();
        assert!(r.fake("beta").is_ok());
        assert_eq!(
            r.fake("alpha").err().map(|e| e.to_string()).as_deref(),
            Some("the `alpha` integration has no fake; integrations with a fake: beta, gamma")
        );
        assert_eq!(
            r.fake("delta").err().map(|e| e.to_string()).as_deref(),
            Some("unknown integration `delta`; integrations with a fake: beta, gamma")
        );
        let none = Registry::new([reg("alpha")]).unwrap();
        assert!(
            none.fake("alpha")
                .err()
                .is_some_and(|e| e.to_string().ends_with("integrations with a fake: none"))
        );
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

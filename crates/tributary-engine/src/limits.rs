//! Limits per service (DESIGN.md invariant 8): a request rate per integration domain,
//! applied to every HTTP request an integration sends. The cap on the jobs of one
//! account running at once is kept by the worker gate (`crate::gate`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tributary_sdk::Registry;
use tributary_sdk::http::RequestGate;

use crate::EngineConfig;

/// A token-bucket gate for one domain.
pub struct DomainGate(DefaultDirectRateLimiter);

impl std::fmt::Debug for DomainGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DomainGate")
    }
}

#[tributary_sdk::async_trait]
impl RequestGate for DomainGate {
    async fn acquire(&self, _class: &str) {
        self.0.until_ready().await;
    }
}

/// The rate gates of every rate-limited domain.
#[derive(Debug, Default, Clone)]
pub struct DomainGates(HashMap<String, Arc<DomainGate>>);

impl DomainGates {
    /// Gates from the manifests' `limits.requestsPerSecond`, overridden by the config's
    /// `domain_rates` (where `0` means no limit).
    pub fn new(registry: &Registry, config: &EngineConfig) -> DomainGates {
        let mut gates = HashMap::new();
        for registration in registry.iter() {
            let domain = &registration.manifest.domain;
            let rate = config
                .domain_rates
                .get(domain)
                .copied()
                .or(registration.manifest.limits.requests_per_second);
            if let Some(rate) = rate.and_then(NonZeroU32::new) {
                let gate = DomainGate(RateLimiter::direct(Quota::per_second(rate)));
                gates.insert(domain.clone(), Arc::new(gate));
            }
        }
        DomainGates(gates)
    }

    /// The gate of `domain`, if it is rate limited.
    pub fn get(&self, domain: &str) -> Option<Arc<DomainGate>> {
        self.0.get(domain).cloned()
    }
}

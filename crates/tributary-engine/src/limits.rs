//! Limits per service and per account (DESIGN.md invariant 8): a request rate per
//! integration domain, applied to every HTTP request an integration sends, and a cap on
//! the jobs of one account running at once.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    async fn acquire(&self) {
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

/// Per-account semaphores capping the jobs of one account that run at once.
#[derive(Debug, Default)]
pub struct AccountSlots {
    semaphores: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl AccountSlots {
    /// Waits for a free slot of account `user_integration_id`, whose cap is `cap`.
    pub async fn acquire(&self, user_integration_id: i64, cap: usize) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut map = self
                .semaphores
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(user_integration_id)
                .or_insert_with(|| Arc::new(Semaphore::new(cap.max(1))))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("account semaphores are never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn account_slots_cap_concurrency() {
        let slots = AccountSlots::default();
        let a = slots.acquire(1, 2).await;
        let _b = slots.acquire(1, 2).await;
        // A third slot of account 1 is not free, account 2 is independent.
        let third = tokio::time::timeout(std::time::Duration::ZERO, slots.acquire(1, 2)).await;
        assert!(third.is_err());
        let _other = slots.acquire(2, 2).await;
        drop(a);
        let _c = slots.acquire(1, 2).await;
    }
}

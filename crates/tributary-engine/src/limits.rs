//! Limits per service (DESIGN.md invariant 8): a request rate per integration domain
//! and the service's quota budgets, applied to every request an integration sends. The
//! cap on the jobs of one account running at once is kept by the worker gate
//! (`crate::gate`).
//!
//! # Budgets
//! A manifest's `limits.budgets` ([`tributary_sdk::Budget`]) become one token bucket
//! per (domain, budget, key), the key being the account for an account-scoped budget
//! and nothing for a project-scoped one, plus the request's class for a per-class
//! (per-method) budget; a class a budget does not charge (cost 0) skips it. The bucket holds [`Budget::burst`] units and
//! refills [`Budget::refill_per_window`] per window, so whatever the timing, the units
//! sent within any window stay under the capacity, and a steady sync runs at about
//! 93 % of it. A request reserves its cost from every budget before it goes, in order
//! (the request rate, then project budgets, then account budgets: the narrowest last,
//! so its reservation is the moment the request leaves). A reservation is taken at
//! once, in arrival order, and the request sleeps until the units it borrowed have
//! refilled: no polling, no lock held while waiting, no way for a later request to
//! overtake an earlier one.
//!
//! Each process keeps its own buckets, unless a [`BudgetStore`] is given (PostgreSQL,
//! where several processes share the service's quotas): then every budget's units come
//! from one row per key in the database ([`SharedBucket`]), taken request by request
//! in one `UPDATE` that refills the row from the time elapsed, so all processes
//! together keep the bound.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;
use tributary_sdk::http::RequestGate;
use tributary_sdk::{Budget, BudgetScope, Registry};
use tributary_store::BudgetStore;

use crate::EngineConfig;

/// A token-bucket gate for one domain's request rate.
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

/// Where a budget's units come from.
#[tributary_sdk::async_trait]
pub trait UnitSource: Send + Sync {
    /// Returns once `units` may be spent now.
    async fn charge(&self, units: u64);
}

/// A token bucket over quota units, in this process (see the module docs).
#[derive(Debug)]
pub struct UnitBucket {
    burst: f64,
    per_second: f64,
    state: Mutex<BucketLevel>,
}

#[derive(Debug)]
struct BucketLevel {
    /// Units in the bucket at `at`; below zero while reservations wait for refill.
    level: f64,
    at: Instant,
}

impl UnitBucket {
    /// A full bucket of `burst` units refilling `per_second` (more than zero).
    pub fn new(burst: u64, per_second: f64) -> UnitBucket {
        UnitBucket {
            burst: burst as f64,
            per_second: per_second.max(f64::MIN_POSITIVE),
            state: Mutex::new(BucketLevel {
                level: burst as f64,
                at: Instant::now(),
            }),
        }
    }

    /// The bucket of `budget` (its burst and refill).
    pub fn for_budget(budget: &Budget) -> UnitBucket {
        UnitBucket::new(budget.burst(), budget.refill_per_second())
    }

    /// Takes `units` now and says how long to wait before spending them (zero when
    /// the bucket held them).
    pub fn reserve(&self, units: u64) -> Duration {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.level = (state.level + elapsed * self.per_second).min(self.burst) - units as f64;
        state.at = state.at.max(now);
        wait_for(-state.level, self.per_second)
    }
}

/// How long `missing` units take to refill at `per_second`, rounded up to the
/// microsecond (never early).
fn wait_for(missing: f64, per_second: f64) -> Duration {
    if missing <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_micros((missing / per_second * 1e6).ceil() as u64)
}

#[tributary_sdk::async_trait]
impl UnitSource for UnitBucket {
    async fn charge(&self, units: u64) {
        let wait = self.reserve(units);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A budget's units taken from the database's row for its key, shared by every
/// process on the database: each reservation is one `UPDATE` of that row
/// ([`BudgetStore::take_budget_units`]), which refills it from the time elapsed.
pub struct SharedBucket {
    store: Arc<dyn BudgetStore>,
    key: String,
    burst: u64,
    per_second: f64,
    /// One reservation at a time from this process, in arrival order.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SharedBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBucket")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// How long a shared bucket waits before asking the database again after it failed.
const SHARED_RETRY: Duration = Duration::from_millis(200);

impl SharedBucket {
    /// The shared bucket of `budget` under `key`.
    pub fn new(store: Arc<dyn BudgetStore>, key: String, budget: &Budget) -> SharedBucket {
        SharedBucket {
            store,
            key,
            burst: budget.burst(),
            per_second: budget.refill_per_second(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// The same bucket refilling `per_second` (a scaled clock, see
    /// [`EngineConfig::budget_time_scale`]).
    fn with_refill(mut self, per_second: f64) -> SharedBucket {
        self.per_second = per_second.max(f64::MIN_POSITIVE);
        self
    }
}

#[tributary_sdk::async_trait]
impl UnitSource for SharedBucket {
    async fn charge(&self, units: u64) {
        let _turn = self.turn.lock().await;
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            let taken = self
                .store
                .take_budget_units(&self.key, units, self.burst, self.per_second, now)
                .await;
            let wait = match taken {
                Ok(None) => return,
                Ok(Some(missing)) => {
                    wait_for(missing, self.per_second).max(Duration::from_millis(1))
                }
                Err(e) => {
                    // Spending without the database's word could break the quota; wait
                    // for the database instead (the job's lease is renewed meanwhile).
                    tracing::warn!(error = %e, key = %self.key, "rate budget unavailable; waiting");
                    SHARED_RETRY
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Where a job's charges to one budget go.
enum Charge {
    /// One bucket for every class.
    Bucket(Arc<dyn UnitSource>),
    /// A bucket per class (a per-method budget), found under `key` plus the class.
    PerClass { buckets: Arc<Buckets>, key: String },
}

/// What one job's requests pass: its domain's request rate, then every budget that
/// charges their class.
struct JobGate {
    rate: Option<Arc<DomainGate>>,
    budgets: Vec<(Arc<Budget>, Charge)>,
}

#[tributary_sdk::async_trait]
impl RequestGate for JobGate {
    async fn acquire(&self, class: &str) {
        if let Some(rate) = &self.rate {
            rate.acquire(class).await;
        }
        for (budget, charge) in &self.budgets {
            let units = budget.cost(class);
            if units == 0 {
                continue;
            }
            match charge {
                Charge::Bucket(source) => source.charge(units).await,
                Charge::PerClass { buckets, key } => {
                    let source = buckets.get(&format!("{key}/{class}"), budget);
                    source.charge(units).await;
                }
            }
        }
    }
}

/// The budget buckets of a process, by key, created on first use.
struct Buckets {
    map: Mutex<HashMap<String, Arc<dyn UnitSource>>>,
    shared: Option<Arc<dyn BudgetStore>>,
    /// [`EngineConfig::budget_time_scale`].
    time_scale: f64,
}

impl Buckets {
    fn get(&self, key: &str, budget: &Budget) -> Arc<dyn UnitSource> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = map.get(key) {
            return bucket.clone();
        }
        let per_second = budget.refill_per_second() * self.time_scale;
        let bucket: Arc<dyn UnitSource> = match &self.shared {
            Some(store) => Arc::new(
                SharedBucket::new(store.clone(), key.to_owned(), budget).with_refill(per_second),
            ),
            None => Arc::new(UnitBucket::new(budget.burst(), per_second)),
        };
        map.insert(key.to_owned(), bucket.clone());
        bucket
    }
}

/// The request rates and budget buckets of every domain.
pub struct DomainGates {
    rates: HashMap<String, Arc<DomainGate>>,
    /// Each domain's budgets, project-scoped first.
    budgets: HashMap<String, Vec<Arc<Budget>>>,
    buckets: Arc<Buckets>,
}

impl std::fmt::Debug for DomainGates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainGates")
            .field("rates", &self.rates.keys().collect::<Vec<_>>())
            .field("budgets", &self.budgets.keys().collect::<Vec<_>>())
            .field("shared", &self.buckets.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl DomainGates {
    /// Gates from the manifests' `limits.requestsPerSecond`, overridden by the config's
    /// `domain_rates` (where `0` means no limit), and their `limits.budgets` (unless the
    /// config's `enforce_budgets` is off), kept in `shared` when given (else in this
    /// process).
    pub fn new(
        registry: &Registry,
        config: &EngineConfig,
        shared: Option<Arc<dyn BudgetStore>>,
    ) -> DomainGates {
        let mut rates = HashMap::new();
        let mut budgets = HashMap::new();
        for registration in registry.iter() {
            let manifest = &registration.manifest;
            let domain = &manifest.domain;
            let rate = config
                .domain_rates
                .get(domain)
                .copied()
                .or(manifest.limits.requests_per_second);
            if let Some(rate) = rate.and_then(NonZeroU32::new) {
                let gate = DomainGate(RateLimiter::direct(Quota::per_second(rate)));
                rates.insert(domain.clone(), Arc::new(gate));
            }
            if config.enforce_budgets && !manifest.limits.budgets.is_empty() {
                let mut list: Vec<Arc<Budget>> = manifest
                    .limits
                    .budgets
                    .iter()
                    .cloned()
                    .map(Arc::new)
                    .collect();
                list.sort_by_key(|b| b.scope != BudgetScope::Project);
                budgets.insert(domain.clone(), list);
            }
        }
        DomainGates {
            rates,
            budgets,
            buckets: Arc::new(Buckets {
                map: Mutex::new(HashMap::new()),
                shared,
                time_scale: if config.budget_time_scale.is_finite()
                    && config.budget_time_scale > 0.0
                {
                    config.budget_time_scale
                } else {
                    1.0
                },
            }),
        }
    }

    /// The gate for the requests of a job of `account` in `domain`, if any limit
    /// applies.
    pub fn gate(&self, domain: &str, account: i64) -> Option<Arc<dyn RequestGate>> {
        let rate = self.rates.get(domain).cloned();
        let budgets: Vec<_> = self
            .budgets
            .get(domain)
            .into_iter()
            .flatten()
            .map(|budget| {
                let key = budget_key(domain, budget, account);
                let charge = if budget.per_class {
                    Charge::PerClass {
                        buckets: self.buckets.clone(),
                        key,
                    }
                } else {
                    Charge::Bucket(self.buckets.get(&key, budget))
                };
                (budget.clone(), charge)
            })
            .collect();
        if rate.is_none() && budgets.is_empty() {
            return None;
        }
        Some(Arc::new(JobGate { rate, budgets }))
    }
}

/// The key of a budget's bucket: `gmail/perUser/account/7`, `gmail/perProject/project`
/// (a per-class budget's buckets add `/<class>`: `slack/tier3/account/7/conversations.history`).
pub fn budget_key(domain: &str, budget: &Budget, account: i64) -> String {
    match budget.scope {
        BudgetScope::Account => format!("{domain}/{}/account/{account}", budget.name),
        BudgetScope::Project => format!("{domain}/{}/project", budget.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn budget(capacity: u64, window_seconds: u64, cost: u64) -> Budget {
        Budget {
            name: "perUser".into(),
            scope: BudgetScope::Account,
            window_seconds,
            capacity,
            costs: [("users.messages.get".to_owned(), cost)].into(),
            default_cost: 1,
            per_class: false,
        }
    }

    /// Sends `requests` requests of `cost` from `tasks` concurrent tasks through one
    /// bucket (paused time) and returns when each went, in milliseconds from the start.
    async fn send_times(
        bucket: Arc<UnitBucket>,
        tasks: usize,
        requests: usize,
        cost: u64,
    ) -> Vec<u128> {
        let start = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let left = Arc::new(Mutex::new(requests));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (bucket, sent, left) = (bucket.clone(), sent.clone(), left.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    {
                        let mut left = left.lock().unwrap();
                        if *left == 0 {
                            return;
                        }
                        *left -= 1;
                    }
                    bucket.charge(cost).await;
                    sent.lock().unwrap().push(start.elapsed().as_millis());
                    // Some work between requests, as a job does.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let mut times = sent.lock().unwrap().clone();
        times.sort_unstable();
        times
    }

    /// The most units sent within any `window_ms` (a provider's sliding window).
    fn busiest_window(times: &[u128], cost: u64, window_ms: u128) -> u64 {
        let mut inside = VecDeque::new();
        let mut most = 0;
        for &t in times {
            inside.push_back(t);
            while inside.front().is_some_and(|&first| first + window_ms <= t) {
                inside.pop_front();
            }
            most = most.max(inside.len() as u64 * cost);
        }
        most
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_never_exceeds_the_capacity_in_any_window_and_runs_near_it() {
        // Gmail's per-user quota: 15,000 units a minute, 5 per message.
        let quota = budget(15_000, 60, 5);
        let bucket = Arc::new(UnitBucket::for_budget(&quota));
        let requests = 10_000;
        let times = send_times(bucket, 16, requests, 5).await;
        assert_eq!(times.len(), requests);
        let busiest = busiest_window(&times, 5, 60_000);
        assert!(busiest <= 15_000, "{busiest} units in one window");
        // The rate: 50,000 units at the quota's 250 units/s would take 200 s.
        let took_s = *times.last().unwrap() as f64 / 1000.0;
        let rate = (requests as f64 * 5.0) / took_s;
        assert!(rate <= 250.0, "{rate} units/s");
        assert!(rate >= 0.9 * 250.0, "{rate} units/s");
        assert!(
            busiest as f64 >= 0.9 * 15_000.0,
            "{busiest} units in the busiest window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_quota_with_large_costs_still_keeps_the_bound() {
        // 300 units per 2 s, 40 units a request: the burst is the largest cost.
        let quota = budget(300, 2, 40);
        assert_eq!(quota.burst(), 40);
        let bucket = Arc::new(UnitBucket::for_budget(&quota));
        let times = send_times(bucket, 8, 200, 40).await;
        assert!(busiest_window(&times, 40, 2_000) <= 300);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_reservations_go_in_arrival_order() {
        let bucket = UnitBucket::new(10, 10.0);
        assert_eq!(bucket.reserve(10), Duration::ZERO);
        assert_eq!(bucket.reserve(5), Duration::from_millis(500));
        assert_eq!(bucket.reserve(5), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(bucket.reserve(10), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_job_gate_charges_every_budget_its_class_cost() {
        let project = Budget {
            name: "perProject".into(),
            scope: BudgetScope::Project,
            ..budget(1_000, 1, 5)
        };
        let user = budget(200, 1, 5);
        let (p, u) = (
            Arc::new(UnitBucket::for_budget(&project)),
            Arc::new(UnitBucket::for_budget(&user)),
        );
        let gate = JobGate {
            rate: None,
            budgets: vec![
                (
                    Arc::new(project),
                    Charge::Bucket(p.clone() as Arc<dyn UnitSource>),
                ),
                (
                    Arc::new(user),
                    Charge::Bucket(u.clone() as Arc<dyn UnitSource>),
                ),
            ],
        };
        gate.acquire("users.messages.get").await;
        gate.acquire("other").await;
        // 6 units gone from each full bucket: 5 for the get, 1 for the default.
        assert_eq!(p.reserve(44), Duration::ZERO);
        assert!(p.reserve(1) > Duration::ZERO);
        assert_eq!(u.reserve(5 - 1), Duration::ZERO);
        assert!(u.reserve(1) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_class_budget_keeps_each_class_apart_and_skips_the_others() {
        // Slack's Tier 1: one call a minute per method, nothing for other methods.
        let tier = Budget {
            name: "tier1".into(),
            costs: [
                ("conversations.history".to_owned(), 1),
                ("conversations.replies".to_owned(), 1),
            ]
            .into(),
            default_cost: 0,
            per_class: true,
            ..budget(1, 60, 1)
        };
        let buckets = Arc::new(Buckets {
            map: Mutex::new(HashMap::new()),
            shared: None,
            time_scale: 1.0,
        });
        let gate = JobGate {
            rate: None,
            budgets: vec![(
                Arc::new(tier),
                Charge::PerClass {
                    buckets: buckets.clone(),
                    key: "slack/tier1/account/7".into(),
                },
            )],
        };
        let start = Instant::now();
        // One of each method at once, any number of uncharged ones.
        gate.acquire("conversations.history").await;
        gate.acquire("conversations.replies").await;
        for _ in 0..100 {
            gate.acquire("users.list").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // The second history call waits more than a whole window.
        gate.acquire("conversations.history").await;
        let waited = start.elapsed();
        assert!(waited > Duration::from_secs(60), "{waited:?}");
        assert!(waited < Duration::from_secs(70), "{waited:?}");
        let keys: Vec<String> = {
            let mut keys: Vec<String> = buckets.map.lock().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys,
            [
                "slack/tier1/account/7/conversations.history",
                "slack/tier1/account/7/conversations.replies"
            ]
        );
    }

    #[test]
    fn keys_name_the_account_only_for_account_budgets() {
        let user = budget(100, 1, 5);
        assert_eq!(budget_key("gmail", &user, 7), "gmail/perUser/account/7");
        let project = Budget {
            name: "perProject".into(),
            scope: BudgetScope::Project,
            ..user
        };
        assert_eq!(budget_key("gmail", &project, 7), "gmail/perProject/project");
    }
}

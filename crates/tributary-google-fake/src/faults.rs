//! Fault injection and call counters, for any Google API fake (`M` is the fake's enum
//! of methods).
//!
//! Every API request (not the OAuth endpoints) passes here first: it is counted under
//! its method, delayed by the configured latency, and may then be answered with a
//! fault instead of its result. Queued faults ([`Faults::fail_next`]) come first; then
//! each request draws once from a seeded RNG against the configured rates, so a client
//! that sends its requests one after another meets the same faults on every run.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// A fault the fake can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with reason `backendError`.
    ServerError,
    /// 503 with reason `backendError`.
    Unavailable,
    /// 429 `rateLimitExceeded` with `Retry-After`.
    RateLimited,
    /// 403 `userRateLimitExceeded` with `Retry-After`, Google's other quota answer.
    UserRateLimited,
    /// A 200 whose JSON body is cut in half.
    TruncatedBody,
}

/// Rates and timings of injected faults. Rates are probabilities per request in
/// `[0, 1]`, checked in the order of the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Share of requests answered 500 or 503 (`backendError`).
    pub server_error_rate: f64,
    /// Share of requests answered 429 (`rateLimitExceeded`).
    pub rate_limit_rate: f64,
    /// Share of requests answered 403 (`userRateLimitExceeded`).
    pub user_rate_limit_rate: f64,
    /// Share of requests answered 200 with a truncated body.
    pub truncate_rate: f64,
    /// The `Retry-After` sent with 429 and 403 quota errors.
    pub retry_after: Duration,
    /// Added to every API request before it is answered.
    pub latency: Duration,
}

impl Default for FaultConfig {
    fn default() -> FaultConfig {
        FaultConfig {
            server_error_rate: 0.0,
            rate_limit_rate: 0.0,
            user_rate_limit_rate: 0.0,
            truncate_rate: 0.0,
            retry_after: Duration::from_secs(1),
            latency: Duration::ZERO,
        }
    }
}

/// Counters of what clients did, for assertions such as "a re-sync with nothing new
/// makes at most 4 list calls".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters<M: Ord> {
    /// Requests per method, faulted or not.
    pub calls: BTreeMap<M, u64>,
    /// Requests answered with an injected fault.
    pub faults: u64,
    /// Requests refused for a missing, unknown or expired access token.
    pub unauthorized: u64,
    /// Successful token endpoint grants.
    pub tokens_issued: u64,
    /// Requests refused for the per-user quota (403 `userRateLimitExceeded`).
    pub quota_exceeded: u64,
    /// Quota units spent by the requests the quota accepted.
    pub quota_units: u64,
    /// The most units the quota's window ever held (how close clients came to it).
    pub quota_peak: u64,
}

impl<M: Ord> Default for Counters<M> {
    fn default() -> Counters<M> {
        Counters {
            calls: BTreeMap::new(),
            faults: 0,
            unauthorized: 0,
            tokens_issued: 0,
            quota_exceeded: 0,
            quota_units: 0,
            quota_peak: 0,
        }
    }
}

impl<M: Ord> Counters<M> {
    /// Requests to `method`.
    pub fn calls(&self, method: M) -> u64 {
        self.calls.get(&method).copied().unwrap_or(0)
    }

    /// Requests to any method.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// The fault injector's state.
#[derive(Debug)]
pub struct Faults<M: Ord> {
    config: FaultConfig,
    queued: VecDeque<Fault>,
    rng: StdRng,
    expire_tokens_after: Option<u64>,
    /// What was counted so far.
    pub counters: Counters<M>,
}

/// What the injector decided for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// How long to wait before answering.
    pub latency: Duration,
    /// The fault to answer with, if any.
    pub fault: Option<Fault>,
    /// The `Retry-After` of a quota fault.
    pub retry_after_secs: u64,
    /// Whether every access token expires now (before this request is checked).
    pub expire_tokens_now: bool,
}

impl<M: Ord + Copy> Faults<M> {
    /// An injector with `config`, drawing from a RNG seeded with `seed`.
    pub fn new(config: FaultConfig, seed: u64) -> Faults<M> {
        Faults {
            config,
            queued: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x6661_756c_7473),
            expire_tokens_after: None,
            counters: Counters::default(),
        }
    }

    /// Replaces the rates and timings.
    pub fn set_config(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// Reseeds the RNG.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed ^ 0x6661_756c_7473);
    }

    /// Answers the next `count` API requests with `fault`.
    pub fn fail_next(&mut self, count: usize, fault: Fault) {
        self.queued.extend(std::iter::repeat_n(fault, count));
    }

    /// After `calls` more API requests, every access token expires.
    pub fn expire_tokens_after(&mut self, calls: u64) {
        self.expire_tokens_after = Some(calls);
    }

    /// Counts a request to `method` and decides its fate.
    pub fn decide(&mut self, method: M) -> Decision {
        *self.counters.calls.entry(method).or_insert(0) += 1;
        let expire_tokens_now = match self.expire_tokens_after {
            Some(0) => {
                self.expire_tokens_after = None;
                true
            }
            Some(left) => {
                self.expire_tokens_after = Some(left - 1);
                false
            }
            None => false,
        };
        let fault = self.queued.pop_front().or_else(|| self.draw());
        if fault.is_some() {
            self.counters.faults += 1;
        }
        Decision {
            latency: self.config.latency,
            fault,
            retry_after_secs: self.config.retry_after.as_secs().max(1),
            expire_tokens_now,
        }
    }

    fn draw(&mut self) -> Option<Fault> {
        let config = &self.config;
        if config.server_error_rate <= 0.0
            && config.rate_limit_rate <= 0.0
            && config.user_rate_limit_rate <= 0.0
            && config.truncate_rate <= 0.0
        {
            return None;
        }
        let roll: f64 = self.rng.random();
        let mut threshold = config.server_error_rate;
        if roll < threshold {
            return Some(if self.rng.random_bool(0.5) {
                Fault::ServerError
            } else {
                Fault::Unavailable
            });
        }
        threshold += config.rate_limit_rate;
        if roll < threshold {
            return Some(Fault::RateLimited);
        }
        threshold += config.user_rate_limit_rate;
        if roll < threshold {
            return Some(Fault::UserRateLimited);
        }
        threshold += config.truncate_rate;
        (roll < threshold).then_some(Fault::TruncatedBody)
    }
}

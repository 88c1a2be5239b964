//! Random 429 and 5xx answers in front of an axum fake that has no fault injection of
//! its own (or only one kind), at [`FaultRates`] (what the conformance harness's
//! `set_fault_rates` asks for).
//!
//! Each request draws once from a seeded generator: with probability
//! `rate_limited` it is answered 429 with `Retry-After: 1`, with probability
//! `server_error` 500 or 503, otherwise it reaches the fake. Bodies follow the common
//! `{"error": {"code", "message"}}` shape. Faulted requests never reach the fake, so
//! the fake's own counters do not see them.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Shares of API requests a fake answers with a fault, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// Share answered 429 Too Many Requests, with a short `Retry-After`.
    pub rate_limited: f64,
    /// Share answered 500 or 503.
    pub server_error: f64,
    /// Seed of the fault draws.
    pub seed: u64,
}

impl FaultRates {
    /// No faults.
    pub const NONE: FaultRates = FaultRates {
        rate_limited: 0.0,
        server_error: 0.0,
        seed: 0,
    };
}

/// A fault injector shared by a router's requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    state: Arc<Mutex<InjectorState>>,
}

#[derive(Debug)]
struct InjectorState {
    rates: FaultRates,
    rng: StdRng,
    injected: u64,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector::new()
    }
}

impl FaultInjector {
    /// An injector that injects nothing until [`FaultInjector::set_rates`].
    pub fn new() -> FaultInjector {
        FaultInjector {
            state: Arc::new(Mutex::new(InjectorState {
                rates: FaultRates::NONE,
                rng: StdRng::seed_from_u64(0),
                injected: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Injects faults at these rates from now on, drawing from a generator seeded with
    /// `rates.seed`.
    pub fn set_rates(&self, rates: FaultRates) {
        let mut state = self.lock();
        state.rates = rates;
        state.rng = StdRng::seed_from_u64(rates.seed);
    }

    /// Requests answered with a fault so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// `router` with this injector in front of every route.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), inject))
    }

    /// Draws the fate of one request: a status to answer with, or `None`.
    fn draw(&self) -> Option<StatusCode> {
        let mut state = self.lock();
        let FaultRates {
            rate_limited,
            server_error,
            ..
        } = state.rates;
        if rate_limited <= 0.0 && server_error <= 0.0 {
            return None;
        }
        let roll: f64 = state.rng.random();
        let status = if roll < rate_limited {
            StatusCode::TOO_MANY_REQUESTS
        } else if roll < rate_limited + server_error {
            if state.rng.random_bool(0.5) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        } else {
            return None;
        };
        state.injected += 1;
        Some(status)
    }
}

async fn inject(State(injector): State<FaultInjector>, request: Request, next: Next) -> Response {
    let Some(status) = injector.draw() else {
        return next.run(request).await;
    };
    let body = serde_json::json!({
        "error": {"code": status.as_u16(), "message": "injected fault"}
    });
    let json = [(header::CONTENT_TYPE, "application/json")];
    if status == StatusCode::TOO_MANY_REQUESTS {
        (status, [(header::RETRY_AFTER, "1")], json, body.to_string()).into_response()
    } else {
        (status, json, body.to_string()).into_response()
    }
}

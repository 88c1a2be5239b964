//! Generic test doubles for Tributary, depending on the SDK only. Integrations' own
//! fakes live in their folders (`integrations/<domain>/fake/`) and build on this.
//!
//! - [`synthetic`]: a deterministic synthetic source (a loopback HTTP server with
//!   hooks, fault injection and counters); the `synthetic` integration
//!   (`integrations/synthetic/`) syncs it.
//! - [`noop`]: an integration whose tasks do nothing, for queue benchmarks.
//! - [`driver`]: a tiny in-memory stand-in for the engine (a FIFO queue and a content
//!   map) to run an integration's tasks by hand in tests.
//! - [`serving`]: a router on a loopback port ([`serving::LoopbackServer`]), a gate
//!   that holds chosen responses, and periodic deliveries.
//! - [`fault_layer`]: random 429 and 5xx answers in front of any axum fake.

pub mod driver;
pub mod fault_layer;
pub mod noop;
pub mod serving;
pub mod synthetic;

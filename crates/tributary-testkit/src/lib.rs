//! Test doubles for Tributary.
//!
//! - [`synthetic`]: a deterministic synthetic source (a loopback HTTP server with
//!   hooks, fault injection and counters) and the `synthetic` integration that syncs it.
//! - [`noop`]: an integration whose tasks do nothing, for queue benchmarks.
//! - [`driver`]: a tiny in-memory stand-in for the engine (a FIFO queue and a content
//!   map) to run an integration's tasks by hand in tests.
//!
//! Fakes of cloud APIs live in their own modules, one per provider.

pub mod driver;
pub mod noop;
pub mod synthetic;

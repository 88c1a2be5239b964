//! Test doubles for Tributary: a synthetic integration with its source, and faithful
//! fakes of cloud APIs.
//!
//! - [`synthetic`]: a deterministic synthetic source (a loopback HTTP server with
//!   hooks, fault injection and counters) and the `synthetic` integration that syncs it.
//! - [`noop`]: an integration whose tasks do nothing, for queue benchmarks.
//! - [`driver`]: a tiny in-memory stand-in for the engine (a FIFO queue and a content
//!   map) to run an integration's tasks by hand in tests.
//! - [`gmail`]: a stateful fake of the Gmail API.

pub mod driver;
pub mod gmail;
pub mod noop;
pub mod synthetic;

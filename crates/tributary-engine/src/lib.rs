//! Tributary's engine: runs jobs from the store's queue through integrations, and
//! schedules the periodic `start` and history jobs.
//!
//! Data flows one way: scheduler → queue → worker → `Integration::run_task` → one
//! commit (content + sync state + credentials + child jobs + job done) → queue.
//!
//! Module map:
//! - [`node`]: [`Node`], one process's engine, scheduler and pruner from one config.
//! - [`worker`]: [`Engine`], the worker pool: claims jobs in batches, runs each job's
//!   lifecycle under a per-account concurrency cap and a per-domain request rate,
//!   commits finished jobs in batched transactions, renews leases, shuts down
//!   gracefully; its loop's state is `run_loop`.
//! - [`retry`]: how an error class becomes a queue action (retry with backoff and
//!   jitter, wait for `Retry-After`, pause the account, give up).
//! - [`scheduler`]: [`Scheduler`], one SQL statement per tick for all due accounts.
//! - [`prune`]: [`Pruner`], deletes completed jobs older than the retention window
//!   (bounded batches; failed and dead jobs are kept).
//! - [`limits`]: per-domain rate gates and the quota budgets' token buckets.
//! - [`clock`]: the time source (a manual clock in tests).
//! - [`config`]: the engine settings, [`EngineConfig`].
//! - [`stats`]: counters for progress display.

mod batch;
pub mod clock;
pub mod config;
mod gate;
pub mod limits;
pub mod node;
pub mod prune;
pub mod retry;
mod run_loop;
pub mod scheduler;
pub mod stats;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EngineConfig;
pub use node::{Node, NodeConfig};
pub use prune::{PruneRound, Pruner, PrunerConfig};
pub use scheduler::{Scheduler, domain_schedules};
pub use stats::{EngineStats, StatsSnapshot};
pub use worker::{Engine, RunUntil};

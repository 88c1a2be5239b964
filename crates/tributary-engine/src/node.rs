//! A [`Node`]: one process's engine, scheduler and pruner, wired from one
//! [`NodeConfig`] and stopped by one shutdown future.
//!
//! Every program that runs Tributary (`tributary run`, the demo, the freshness
//! benchmark, tests that run a whole deployment) builds a node instead of wiring the
//! three parts by hand. The scheduler and the pruner are optional: several worker
//! processes may share one scheduler, and every process may prune (on PostgreSQL
//! their batches skip each other's rows).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tributary_sdk::Registry;
use tributary_store::Store;

use crate::prune::{Pruner, PrunerConfig};
use crate::scheduler::{Scheduler, domain_schedules};
use crate::worker::{Engine, EngineError, RunUntil};
use crate::{Clock, EngineConfig, SystemClock};

/// What a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The workers.
    pub engine: EngineConfig,
    /// The scheduler's tick, or `None` for a node without a scheduler.
    pub scheduler_tick: Option<Duration>,
    /// Every domain's `start` interval instead of its manifest's (at least 100 ms),
    /// or `None` for the manifests' (the demo shortens it to show fresh items).
    pub start_every: Option<Duration>,
    /// The pruner of completed jobs, or `None` for a node that does not prune.
    pub pruner: Option<PrunerConfig>,
}

impl Default for NodeConfig {
    /// Default workers, a scheduler ticking every second, and the default pruning.
    fn default() -> Self {
        NodeConfig {
            engine: EngineConfig::default(),
            scheduler_tick: Some(Duration::from_secs(1)),
            start_every: None,
            pruner: Some(PrunerConfig::default()),
        }
    }
}

/// One process's engine, scheduler and pruner (see the module docs).
pub struct Node {
    engine: Engine,
    scheduler: Option<(Arc<Scheduler>, Duration)>,
    pruner: Option<Arc<Pruner>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("scheduler", &self.scheduler.as_ref().map(|(_, tick)| tick))
            .field("prunes", &self.pruner.is_some())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node over `store` running `registry`'s integrations, on the system clock.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: NodeConfig,
    ) -> Result<Node, EngineError> {
        Node::with_clock(store, registry, config, Arc::new(SystemClock))
    }

    /// The same with an explicit clock.
    pub fn with_clock(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: NodeConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Node, EngineError> {
        let max_attempts = config.engine.max_attempts;
        let scheduler = config.scheduler_tick.map(|tick| {
            let mut schedules = domain_schedules(&registry, max_attempts);
            if let Some(every) = config.start_every {
                let ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
                for schedule in &mut schedules {
                    schedule.start_every_ms = ms.max(100);
                }
            }
            let scheduler = Scheduler::new(store.clone(), schedules, clock.clone());
            (Arc::new(scheduler), tick.max(Duration::from_millis(1)))
        });
        let pruner = config
            .pruner
            .map(|pruner| Arc::new(Pruner::new(store.clone(), clock.clone(), pruner)));
        let engine = Engine::with_clock(store, registry, config.engine, clock)?;
        Ok(Node {
            engine,
            scheduler,
            pruner,
        })
    }

    /// The node's engine (its statistics, `sync_now` and the like).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs the workers, the scheduler and the pruner until `shutdown` fires; then
    /// stops the scheduler and the pruner, lets the workers finish (see
    /// [`Engine::run`]) and returns when all three have stopped.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), EngineError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let mut helpers = Vec::new();
        if let Some((scheduler, tick)) = &self.scheduler {
            let (scheduler, tick, stop) = (scheduler.clone(), *tick, stopped());
            helpers.push(tokio::spawn(async move { scheduler.run(tick, stop).await }));
        }
        if let Some(pruner) = &self.pruner {
            let (pruner, stop) = (pruner.clone(), stopped());
            helpers.push(tokio::spawn(async move { pruner.run(stop).await }));
        }
        let result = self
            .engine
            .run(RunUntil::Shutdown, async {
                shutdown.await;
                stop_tx.send_replace(true);
            })
            .await;
        // The engine may also stop on an error: the others stop with it.
        stop_tx.send_replace(true);
        for helper in helpers {
            let _ = helper.await;
        }
        result
    }
}

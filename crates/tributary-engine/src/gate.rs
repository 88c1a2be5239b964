//! The worker gate: which claimed job runs next in this process.
//!
//! A process holds more jobs than it has workers (one claim's worth waits locally), so
//! the order in which they take a worker matters as much as the queue's order. The
//! gate hands a free worker to the best waiting job by [`RunOrder`]: lower priority
//! number first, then jobs that discover work (list pages, history checks: no single
//! item) before downloads, then the order they were claimed in. A `start` or a next
//! list page claimed behind a batch of downloads therefore runs at the next free
//! worker instead of after the batch: the listing never starves the workers, and new
//! content never waits for a local backlog.
//!
//! It also keeps the cap on jobs of one account running at once: a waiting job whose
//! account is at its cap lets the next one by.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tributary_store::JobKind;

/// Where a waiting job stands: lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RunOrder {
    /// The job's priority (1 runs before 10).
    pub priority: i16,
    /// Discovery (no single item) runs before the fetch of one item.
    pub kind: JobKind,
    /// Claim order within this process.
    pub seq: u64,
}

#[derive(Debug)]
struct Waiter {
    account: i64,
    cap: usize,
    tx: oneshot::Sender<WorkerPermit>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    per_account: HashMap<i64, usize>,
    waiting: BTreeMap<RunOrder, Waiter>,
}

/// The gate: `workers` jobs at once, at most `cap` of one account.
#[derive(Debug, Clone)]
pub(crate) struct WorkerGate {
    workers: usize,
    state: Arc<Mutex<State>>,
}

/// A worker slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct WorkerPermit {
    gate: Option<WorkerGate>,
    account: i64,
}

impl WorkerGate {
    /// A gate with `workers` slots.
    pub(crate) fn new(workers: usize) -> Self {
        WorkerGate {
            workers: workers.max(1),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a worker for a job of `account` (whose cap is `cap`) standing at
    /// `order`.
    pub(crate) async fn acquire(&self, order: RunOrder, account: i64, cap: usize) -> WorkerPermit {
        let cap = cap.max(1);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            state.waiting.insert(order, Waiter { account, cap, tx });
            self.hand_out(&mut state);
        }
        // The gate answers every waiter; only a gate dropped with its engine does not,
        // and then nothing is left to share.
        rx.await.unwrap_or(WorkerPermit {
            gate: None,
            account,
        })
    }

    fn permit(&self, account: i64) -> WorkerPermit {
        WorkerPermit {
            gate: Some(self.clone()),
            account,
        }
    }

    /// Gives a slot back and hands free slots to the best waiters that fit.
    fn release(&self, account: i64) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        if let Some(n) = state.per_account.get_mut(&account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_account.remove(&account);
            }
        }
        self.hand_out(&mut state);
    }

    fn hand_out(&self, state: &mut State) {
        while state.running < self.workers {
            let next = state.waiting.iter().find_map(|(order, w)| {
                let busy = state.per_account.get(&w.account).copied().unwrap_or(0);
                (busy < w.cap).then_some(*order)
            });
            let Some(order) = next else {
                return;
            };
            let Some(waiter) = state.waiting.remove(&order) else {
                return;
            };
            state.running += 1;
            *state.per_account.entry(waiter.account).or_insert(0) += 1;
            if let Err(mut permit) = waiter.tx.send(self.permit(waiter.account)) {
                // The waiting task was aborted: take the slot back here (dropping the
                // permit would lock the state again).
                permit.gate = None;
                state.running -= 1;
                if let Some(n) = state.per_account.get_mut(&waiter.account) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }
}

impl Drop for WorkerPermit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release(self.account);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn order(priority: i16, downloads: bool, seq: u64) -> RunOrder {
        RunOrder {
            priority,
            kind: if downloads {
                JobKind::Fetch
            } else {
                JobKind::Discovery
            },
            seq,
        }
    }

    /// Whether the waiting task got its worker (within a moment).
    async fn granted(task: &tokio::task::JoinHandle<WorkerPermit>) -> bool {
        tokio::time::sleep(Duration::from_millis(30)).await;
        task.is_finished()
    }

    #[tokio::test]
    async fn the_best_waiter_gets_the_next_worker() {
        let gate = WorkerGate::new(1);
        let running = gate.acquire(order(10, true, 0), 1, 8).await;
        let g = gate.clone();
        let download = tokio::spawn(async move { g.acquire(order(10, true, 1), 1, 8).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let g = gate.clone();
        let listing = tokio::spawn(async move { g.acquire(order(10, false, 2), 1, 8).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let g = gate.clone();
        let start = tokio::spawn(async move { g.acquire(order(1, false, 3), 1, 8).await });
        tokio::time::sleep(Duration::from_millis(10)).await;

        // One worker: the `start` (priority 1) goes first, then the list page (it
        // discovers work), then the download claimed before both.
        drop(running);
        assert!(granted(&start).await);
        assert!(!granted(&listing).await);
        drop(start.await.unwrap());
        assert!(granted(&listing).await);
        assert!(!granted(&download).await);
        drop(listing.await.unwrap());
        assert!(granted(&download).await);
    }

    #[tokio::test]
    async fn an_account_at_its_cap_lets_others_by() {
        let gate = WorkerGate::new(3);
        let a1 = gate.acquire(order(5, true, 0), 1, 2).await;
        let _a2 = gate.acquire(order(5, true, 1), 1, 2).await;
        // Account 1 is at its cap of 2: its next job waits although a worker is free,
        // and account 2's job, claimed after it, runs.
        let g = gate.clone();
        let a3 = tokio::spawn(async move { g.acquire(order(5, true, 2), 1, 2).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let g = gate.clone();
        let b1 = tokio::spawn(async move { g.acquire(order(5, true, 3), 2, 2).await });
        assert!(granted(&b1).await);
        assert!(!granted(&a3).await);
        drop(a1);
        assert!(granted(&a3).await);
    }

    #[tokio::test]
    async fn an_aborted_waiter_gives_its_slot_on() {
        let gate = WorkerGate::new(1);
        let running = gate.acquire(order(5, true, 0), 1, 8).await;
        let g = gate.clone();
        let aborted = tokio::spawn(async move { g.acquire(order(1, true, 1), 1, 8).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let g = gate.clone();
        let next = tokio::spawn(async move { g.acquire(order(5, true, 2), 1, 8).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        aborted.abort();
        let _ = aborted.await;
        drop(running);
        assert!(granted(&next).await);
    }

    #[tokio::test]
    async fn never_more_than_the_workers() {
        let gate = WorkerGate::new(2);
        let _a = gate.acquire(order(5, true, 0), 1, 8).await;
        let _b = gate.acquire(order(5, true, 1), 2, 8).await;
        let g = gate.clone();
        let c = tokio::spawn(async move { g.acquire(order(1, false, 2), 3, 8).await });
        assert!(!granted(&c).await);
    }
}

//! The state of one [`Engine::run`](crate::worker::Engine::run): what this process
//! holds, and the rounds of claim, hand over to the committer, renew and wait.
//!
//! Every job the loop holds is in [`HeldJobs`] with its [`Stage`]: `Running` from its
//! claim until its task finishes, then `AwaitingCommit` until the committer says what
//! became of it. A committed job is forgotten. A job whose commit was given up (the
//! database stayed away while shutting down) stays held, and the end of the run
//! releases it with the running ones, so another worker can take it at once; the run
//! says so in its log instead of counting it as committed.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};
use tributary_store::JobLease;

use crate::batch::ClaimSizer;
use crate::worker::{Engine, EngineError, Finished, RunUntil};

/// One run of a job in this process: the job's id and the dispatch's sequence number.
///
/// A job id alone does not name a run: a job committed as "run again" or retried at
/// once can be claimed again (same id) before the loop hears that its previous run
/// committed, and forgetting that previous run must not forget the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Run {
    pub(crate) job_id: i64,
    pub(crate) seq: u64,
}

/// Where a held job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Its task runs (or waits for a worker slot).
    Running,
    /// Its task finished; the committer has its outcome.
    AwaitingCommit,
}

/// A job claimed by this process and not yet committed or released.
pub(crate) struct Held {
    pub(crate) lease: JobLease,
    pub(crate) handle: JoinHandle<()>,
    pub(crate) stage: Stage,
}

/// The jobs this process holds, by run.
pub(crate) type HeldJobs = HashMap<Run, Held>;

/// What the committer reports of one batch.
pub(crate) struct Committed {
    /// The batch's runs.
    pub(crate) runs: Vec<Run>,
    /// Whether the batch was committed; `false` when the committer gave up on it.
    pub(crate) committed: bool,
    /// Some job of the batch queued children.
    pub(crate) queued_work: bool,
}

/// The loop's state (see the module docs).
pub(crate) struct RunLoop<'e> {
    engine: &'e Engine,
    until: RunUntil,
    held: HeldJobs,
    /// Finished runs come back from their tasks here...
    done_tx: mpsc::UnboundedSender<(Run, Finished)>,
    done_rx: mpsc::UnboundedReceiver<(Run, Finished)>,
    /// ...go to the committer here (closed when the run ends)...
    commit_tx: Option<mpsc::UnboundedSender<Vec<(Run, Finished)>>>,
    /// ...which reports each batch here.
    committed_rx: mpsc::UnboundedReceiver<Committed>,
    committer: Option<JoinHandle<()>>,
    /// Sizes claims to about `claim_window` of work.
    sizer: ClaimSizer,
    workers: usize,
    /// Held jobs beyond which nothing is claimed (a slow database holds claims back).
    commit_backlog: usize,
    renew_every: Duration,
    last_renew: Instant,
    last_requeue: Option<Instant>,
    /// A commit queued children: claim again at once.
    new_work: bool,
    /// When a claim last came back short (the queue was drained).
    drained_at: Option<Instant>,
}

impl<'e> RunLoop<'e> {
    /// A loop for `engine`, its committer started.
    pub(crate) fn new(engine: &'e Engine, until: RunUntil) -> RunLoop<'e> {
        let config = engine.config();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        let committer = tokio::spawn(engine.clone().committer(commit_rx, committed_tx));
        // Jobs claimed and not yet finished: at most the workers plus one claim batch,
        // so a newly queued priority-1 job waits at most one batch's run time, and a
        // batch is about `claim_window` of work (crate::batch). Finished jobs waiting
        // for their commit do not count (the committer works in parallel), but their
        // number is bounded too.
        let workers = config.workers.max(1);
        let sizer = ClaimSizer::new(
            workers,
            config.claim_batch,
            config.claim_window,
            std::time::Instant::now(),
        );
        let commit_backlog = (workers + sizer.max()).max(config.commit_batch.max(1)) * 2;
        RunLoop {
            engine,
            until,
            held: HashMap::new(),
            done_tx,
            done_rx,
            commit_tx: Some(commit_tx),
            committed_rx,
            committer: Some(committer),
            sizer,
            workers,
            commit_backlog,
            renew_every: (config.lease / 3).max(Duration::from_millis(50)),
            last_renew: Instant::now(),
            last_requeue: None,
            new_work: false,
            drained_at: None,
        }
    }

    /// Runs rounds until `until` says so or `shutdown` fires, then ends the run.
    pub(crate) async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EngineError> {
        tokio::pin!(shutdown);
        loop {
            self.absorb();
            self.maintain().await;
            let (claimed, free) = self.claim().await;
            if claimed == 0 && self.held.is_empty() && self.done().await {
                break;
            }
            if self.wait(claimed, free, &mut shutdown).await {
                self.absorb();
                break;
            }
        }
        self.end().await;
        Ok(())
    }

    /// Hands what finished to the committer, and takes in what it reported.
    fn absorb(&mut self) {
        self.forward_finished(None);
        while let Ok(done) = self.committed_rx.try_recv() {
            self.on_committed(done);
        }
    }

    /// Sends `first` and whatever else already finished to the committer as one batch.
    fn forward_finished(&mut self, first: Option<(Run, Finished)>) {
        let mut batch: Vec<(Run, Finished)> = first.into_iter().collect();
        while let Ok(item) = self.done_rx.try_recv() {
            batch.push(item);
        }
        if batch.is_empty() {
            return;
        }
        for (run, _) in &batch {
            if let Some(held) = self.held.get_mut(run) {
                held.stage = Stage::AwaitingCommit;
            }
        }
        self.sizer.finished(batch.len(), std::time::Instant::now());
        if let Some(tx) = &self.commit_tx {
            // The committer outlives the rounds, so this cannot fail while they run.
            let _ = tx.send(batch);
        }
    }

    /// A committed batch frees its slots; a batch given up on stays held, to be
    /// released at the end of the run.
    fn on_committed(&mut self, done: Committed) {
        self.new_work |= done.queued_work;
        if done.committed {
            for run in &done.runs {
                self.held.remove(run);
            }
        } else {
            warn!(
                jobs = done.runs.len(),
                "finished jobs could not be committed; releasing them to run again"
            );
        }
    }

    /// Returns the expired leases of dead workers now and then, and renews ours.
    async fn maintain(&mut self) {
        let engine = self.engine;
        if self
            .last_requeue
            .is_none_or(|t| t.elapsed() >= self.renew_every)
        {
            self.last_requeue = Some(Instant::now());
            engine.requeue_expired().await;
        }
        if self.last_renew.elapsed() >= self.renew_every && !self.held.is_empty() {
            self.last_renew = Instant::now();
            engine.renew(&self.held).await;
        }
    }

    /// Jobs whose task has not finished.
    fn unfinished(&self) -> usize {
        self.held
            .values()
            .filter(|h| h.stage == Stage::Running)
            .count()
    }

    /// Claims up to the free capacity; returns how many were claimed and how many
    /// could have been.
    async fn claim(&mut self) -> (usize, usize) {
        let config = self.engine.config();
        let batch = self.sizer.size();
        let capacity = self.workers + batch;
        let unfinished = self.unfinished();
        // Claim again once half a batch is left waiting for a worker (one round trip
        // per half batch, and the workers never wait for a claim), or at once when our
        // own commits queued work: a next list page or a start's children are claimed
        // now, and the gate runs them before the downloads held here. A claim that came
        // back short found the queue drained: the next one waits for the poll interval
        // (or for work we queued), not for the next job to finish, so an idle queue is
        // not asked again for every finished job.
        let low_water = self.workers + batch / 2;
        let polled = self
            .drained_at
            .is_none_or(|t| t.elapsed() >= config.idle_poll);
        let wanted = self.new_work || (unfinished <= low_water && polled);
        let free = if self.held.len() >= capacity + self.commit_backlog || !wanted {
            0
        } else {
            capacity.saturating_sub(unfinished)
        };
        if free == 0 {
            return (0, 0);
        }
        let scope = match self.until {
            RunUntil::Idle(scope) => scope,
            RunUntil::Shutdown | RunUntil::NothingClaimable => None,
        };
        self.new_work = false;
        let asked = free.min(batch);
        match self.engine.claim(asked, scope).await {
            Ok(jobs) => {
                let claimed = jobs.len();
                self.drained_at = (claimed < asked).then(Instant::now);
                self.engine
                    .dispatch(jobs, &self.done_tx, &mut self.held)
                    .await;
                (claimed, free)
            }
            Err(e) => {
                warn!(error = %e, "failed to claim jobs; retrying");
                (0, free)
            }
        }
    }

    /// With nothing held and nothing claimed: whether the run is over.
    async fn done(&self) -> bool {
        match self.until {
            RunUntil::Shutdown => false,
            RunUntil::NothingClaimable => true,
            RunUntil::Idle(scope) => match self.engine.pending_jobs(scope).await {
                Ok(pending) => pending == 0,
                Err(e) => {
                    warn!(error = %e, "failed to count pending jobs");
                    false
                }
            },
        }
    }

    /// Waits for something to do: a job finishing, a commit, the next poll, or
    /// shutdown (then returns true).
    async fn wait(
        &mut self,
        claimed: usize,
        free: usize,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let config = self.engine.config();
        let wait = if claimed > 0 && free > claimed {
            Duration::ZERO
        } else if self.held.is_empty() {
            config.idle_poll
        } else {
            config.idle_poll.min(self.renew_every)
        };
        if wait.is_zero() {
            return false;
        }
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return true,
            item = self.done_rx.recv() => {
                if let Some(item) = item {
                    self.forward_finished(Some(item));
                }
            }
            done = self.committed_rx.recv() => {
                if let Some(done) = done {
                    self.on_committed(done);
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
        false
    }

    /// The graceful end: lets running jobs finish for the grace period, has everything
    /// finished committed, and releases the rest (running, or given up by the
    /// committer).
    async fn end(mut self) {
        let deadline = Instant::now() + self.engine.config().shutdown_grace;
        while self.unfinished() > 0 {
            match tokio::time::timeout_at(deadline, self.done_rx.recv()).await {
                Ok(Some(item)) => self.forward_finished(Some(item)),
                Ok(None) | Err(_) => break,
            }
        }
        self.commit_tx = None;
        while let Some(done) = self.committed_rx.recv().await {
            self.on_committed(done);
        }
        if let Some(committer) = self.committer.take() {
            let _ = committer.await;
        }
        let released = self.held.len();
        self.engine.release(&mut self.held).await;
        if released > 0 {
            debug!(jobs = released, "released what was still held");
        }
    }
}

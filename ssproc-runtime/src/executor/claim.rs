//! The claim loop and the notification listener that wakes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::attempt::{millis, Attempt, End};
use super::commit::Writer;
use super::heartbeat::Leases;
use super::{step_name, token_prefix, Shared};
use crate::job::{Failure, FailureKind, JobStatus, RunType};
use crate::process::Process;
use crate::storage::{Claimed, Store, Transition, Unreadable};

/// Longest pause after a failed claim or listener connection.
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// The first pause after a failure, doubled per failure in a row.
const FIRST_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Claims jobs into idle workers and spawns their attempts.
pub(super) struct Claimer<P: Process> {
    pub(super) shared: Arc<Shared<P>>,
    pub(super) store: Store,
    pub(super) writer: Writer,
    pub(super) leases: Arc<Leases>,
    pub(super) workers: Arc<Semaphore>,
    /// Attempts whose last write is queued but not yet committed, having
    /// handed their worker back; as many as there are workers.
    pub(super) finishing: Arc<Semaphore>,
    pub(super) wake: Arc<Notify>,
    pub(super) tracker: TaskTracker,
    /// Parent of every attempt's cancellation; shutdown cancels it.
    pub(super) attempts: CancellationToken,
    /// Set when the last claim filled every idle worker, so a finishing
    /// worker should wake the loop: more jobs may be due.
    pub(super) more: Arc<AtomicBool>,
}

impl<P: Process> Claimer<P> {
    pub(super) async fn run(self, stop: CancellationToken) {
        let config = &self.shared.config;
        let mut next_sweep = Instant::now();
        let mut failures = 0u32;
        loop {
            tokio::select! {
                // Shutdown wins over a wake that came with it.
                biased;
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(next_sweep) => {
                    let jitter = config.sweep_jitter.mul_f64(fastrand::f64());
                    next_sweep = Instant::now() + config.sweep_interval + jitter;
                    tracing::trace!(process_id = P::ID, "sweep");
                }
            }
            match self.claim_while_idle(&stop).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    let pause = error_pause(failures).min(config.sweep_interval);
                    tracing::warn!(%error, failures, pause_ms = millis(pause), "claim failed, will retry");
                    next_sweep = next_sweep.min(Instant::now() + pause);
                }
            }
        }
    }

    /// Claims until the workers are full, no more jobs are due, or shutdown
    /// has begun.
    async fn claim_while_idle(&self, stop: &CancellationToken) -> Result<(), sqlx::Error> {
        let config = &self.shared.config;
        while !stop.is_cancelled() {
            let idle = self
                .workers
                .available_permits()
                .min(config.max_jobs_per_sweep);
            if idle == 0 {
                self.more.store(true, Ordering::SeqCst);
                return Ok(());
            }
            let prefix = token_prefix(&self.shared);
            let claimed = self
                .store
                .job_claim_many(P::ID, idle, &prefix, config.lease_duration)
                .await?;
            let full = claimed.len() == idle;
            self.more.store(full, Ordering::SeqCst);
            if !claimed.is_empty() {
                tracing::debug!(process_id = P::ID, count = claimed.len(), "jobs claimed");
            }
            for job in claimed {
                match job {
                    Ok(job) => self.spawn(job),
                    Err(unreadable) => self.end_unreadable(unreadable),
                }
            }
            if !full {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Ends a claimed job no attempt can run in `error`, with the reason:
    /// claimed again after every lease, it would never end otherwise. Its
    /// run type becomes `normal`; the failure keeps the value found.
    fn end_unreadable(&self, job: Unreadable) {
        let failure = Failure {
            step: job.next_step,
            step_name: step_name::<P>(job.next_step).to_owned(),
            run_type: RunType::Normal,
            attempt: 0,
            message: job.source.to_string(),
            kind: FailureKind::Data,
        };
        let transition = Transition {
            data: None,
            next_step: job.next_step,
            status: JobStatus::Error,
            run_type: RunType::Normal,
            bump_comp_count: false,
            release_after: None,
            failure: Some(failure),
        };
        let writer = self.writer.clone();
        self.tracker.spawn(async move {
            let job_id = job.job_id.as_str();
            match writer.apply(job_id, &job.token, transition).await {
                Ok(true) => tracing::error!(
                    job_id,
                    process_id = P::ID,
                    error = %job.source,
                    "claimed job unreadable, ended in error"
                ),
                Ok(false) => tracing::warn!(
                    job_id,
                    process_id = P::ID,
                    "unreadable job not ended, its lease was lost"
                ),
                Err(error) => tracing::warn!(
                    job_id,
                    process_id = P::ID,
                    %error,
                    "unreadable job not ended, left to its lease"
                ),
            }
        });
    }

    fn spawn(&self, job: Claimed) {
        let Ok(permit) = Arc::clone(&self.workers).try_acquire_owned() else {
            // Unreachable while only this loop takes permits; the job's
            // lease runs out and another attempt takes it.
            tracing::error!(job_id = job.job_id, "no idle worker for a claimed job");
            return;
        };
        let cancel = self.attempts.child_token();
        self.leases.insert(&job.token, &job.job_id, cancel.clone());
        let span = attempt_span::<P>(&job);
        let shared = Arc::clone(&self.shared);
        let store = self.store.clone();
        let writer = self.writer.clone();
        let leases = Arc::clone(&self.leases);
        let wake = Arc::clone(&self.wake);
        let slot = WorkerSlot {
            held: Mutex::new((Some(permit), None)),
            finishing: Arc::clone(&self.finishing),
            wake: Arc::clone(&self.wake),
            more: Arc::clone(&self.more),
        };
        self.tracker.spawn(
            async move {
                let token = job.token.clone();
                let attempt = Attempt {
                    process: &shared.process,
                    config: &shared.config,
                    store: &store,
                    writer: &writer,
                    cancel,
                    slot: Some(&slot),
                };
                let end = attempt.run(job).await;
                tracing::debug!(?end, "attempt ended");
                leases.remove(&token);
                if let End::Retry(delay) = end {
                    // Due before the next sweep: come back for it on time.
                    if delay < shared.config.sweep_interval {
                        let wake = Arc::clone(&wake);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            wake.notify_one();
                        });
                    }
                }
                slot.release();
            }
            .instrument(span),
        );
    }
}

/// The worker permit, then the finishing permit that replaces it.
type Held = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// An attempt's hold on a worker.
///
/// The worker goes back to the pool as soon as the attempt's last write is
/// queued, so the claim of the next jobs overlaps that write's commit rather
/// than waiting for it. The job stays leased and heartbeated until the write
/// lands; at most as many attempts as there are workers wait so, and any
/// beyond that keep their worker until their write is committed.
pub(crate) struct WorkerSlot {
    held: Mutex<Held>,
    finishing: Arc<Semaphore>,
    wake: Arc<Notify>,
    more: Arc<AtomicBool>,
}

impl WorkerSlot {
    /// Hands the worker back before the attempt's last write commits, when
    /// a finishing permit is free.
    pub(crate) fn release_early(&self) {
        let mut held = self.lock();
        if held.0.is_none() {
            return;
        }
        let Ok(finishing) = Arc::clone(&self.finishing).try_acquire_owned() else {
            return;
        };
        *held = (None, Some(finishing));
        drop(held);
        self.wake_claimer();
    }

    /// Hands everything back at the end of the attempt.
    fn release(&self) {
        let (worker, finishing) = std::mem::take(&mut *self.lock());
        drop(finishing);
        if worker.is_some() {
            drop(worker);
            self.wake_claimer();
        }
    }

    fn wake_claimer(&self) {
        if self.more.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Each operation replaces the pair whole, so a poisoned lock still
        // holds a consistent value.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The span every event of an attempt carries, user steps' included.
pub(super) fn attempt_span<P: Process>(job: &Claimed) -> tracing::Span {
    let attempt = match job.run_type {
        crate::RunType::Normal => job.exec_count,
        crate::RunType::Compensation => job.comp_count,
    };
    tracing::info_span!(
        "ssproc.attempt",
        job_id = %job.job_id,
        process_id = P::ID,
        run_type = %job.run_type,
        attempt,
        token = %job.token,
    )
}

/// Listens for registrations of `process_id` and wakes the claim loop.
///
/// Notifications sent before the listener listens, at start or while its
/// connection is down, are lost, so the loop is woken to sweep each time the
/// listener is (back) in place.
pub(super) async fn listen(
    store: Store,
    process_id: &'static str,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let mut listener = match connect(&store).await {
            Ok(listener) => listener,
            Err(error) => {
                failures += 1;
                let pause = error_pause(failures);
                tracing::warn!(%error, failures, "notification listener failed to connect, will retry");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        // Jobs registered before LISTEN took effect, at start or while the
        // connection was down, notified nobody: sweep for them now.
        wake.notify_one();
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) if notification.payload() == process_id => {
                    tracing::trace!(process_id, "job notification");
                    wake.notify_one();
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Connect anew here rather than inside `try_recv`, so
                    // that the sweep above follows the new LISTEN.
                    tracing::warn!("notification connection lost, reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "notification listener failed, reconnecting");
                    failures = 1;
                    break;
                }
            }
        }
    }
}

async fn connect(store: &Store) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(store.channel()).await?;
    Ok(listener)
}

pub(super) fn error_pause(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_ERROR_PAUSE
        .saturating_mul(1 << doublings)
        .min(MAX_ERROR_PAUSE)
}

//! Stopping a running executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt::millis;
use super::heartbeat::Leases;
use crate::storage::Store;

/// A running executor; [`shutdown`](ExecutorHandle::shutdown) stops it.
///
/// Dropping the handle without calling `shutdown` begins the same shutdown
/// in the background, without waiting for it.
#[derive(Debug)]
pub struct ExecutorHandle {
    pub(super) process_id: &'static str,
    pub(super) running: Arc<AtomicBool>,
    pub(super) grace: Duration,
    pub(super) stop_claiming: CancellationToken,
    pub(super) stop_heartbeat: CancellationToken,
    pub(super) attempts: CancellationToken,
    pub(super) leases: Arc<Leases>,
    pub(super) tracker: TaskTracker,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) heartbeat: Option<JoinHandle<()>>,
    pub(super) store: Store,
}

impl ExecutorHandle {
    /// Stops the executor gracefully.
    ///
    /// Stops claiming at once; waits up to the shutdown grace period for
    /// running attempts; then cancels the rest (their step futures are
    /// dropped, their writes fenced) and releases their leases in one
    /// statement, so other executors take those jobs over at once rather
    /// than after the lease. Heartbeats go on until then.
    ///
    /// A cancelled attempt still counts as an attempt of its job.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, attempts may be left running until
    /// their leases are lost.
    pub async fn shutdown(mut self) {
        self.stop_claiming.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.tracker.close();
        let finished = tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_ok();
        if !finished {
            let (job_ids, tokens) = self.leases.snapshot();
            self.attempts.cancel();
            self.tracker.wait().await;
            match self.store.job_release_many(&job_ids, &tokens).await {
                Ok(count) => tracing::info!(count, "leases released at shutdown"),
                Err(error) => {
                    tracing::warn!(%error, count = tokens.len(), "leases not released at shutdown, they will expire")
                }
            }
        }
        self.stop_heartbeat.cancel();
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.await;
        }
        self.running.store(false, Ordering::SeqCst);
        tracing::info!(
            process_id = self.process_id,
            grace_ms = millis(self.grace),
            "executor stopped"
        );
    }

    /// Stops claiming jobs at once, leaving running attempts alone: the
    /// first half of [`shutdown`](ExecutorHandle::shutdown), for a service
    /// that stops taking work before it drains what it has. A claim
    /// statement already in flight still hands its jobs to workers; no new
    /// one starts. Notifications and cleanup stop too; heartbeats go on.
    /// There is no resuming: start a new executor for that.
    pub fn stop_claiming(&self) {
        self.stop_claiming.cancel();
    }

    /// Whether this executor holds no lease at the moment.
    pub fn is_idle(&self) -> bool {
        self.leases.is_empty()
    }
}

impl Drop for ExecutorHandle {
    fn drop(&mut self) {
        if self.heartbeat.is_none() {
            return;
        }
        // Not shut down explicitly: stop claiming, and leave the attempts to
        // finish under the heartbeat, which stops once they have.
        self.stop_claiming.cancel();
        self.tracker.close();
        let tracker = self.tracker.clone();
        let stop_heartbeat = self.stop_heartbeat.clone();
        let running = Arc::clone(&self.running);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tracker.wait().await;
                stop_heartbeat.cancel();
                running.store(false, Ordering::SeqCst);
            });
        }
    }
}

//! The leases an executor holds, and the loop that renews them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::storage::Store;

/// The attempts running on this executor, by token.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Held>>,
}

#[derive(Debug)]
struct Held {
    job_id: String,
    cancel: CancellationToken,
}

/// `(job_ids, tokens)` side by side, as the batch statements take them.
pub(crate) type Snapshot = (Vec<String>, Vec<String>);

impl Leases {
    pub(crate) fn insert(&self, token: &str, job_id: &str, cancel: CancellationToken) {
        let held = Held {
            job_id: job_id.to_owned(),
            cancel,
        };
        self.lock().insert(token.to_owned(), held);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.lock()
            .iter()
            .map(|(token, held)| (held.job_id.clone(), token.clone()))
            .unzip()
    }

    /// Cancels the attempts holding `tokens` that are still running.
    pub(crate) fn cancel<'a>(&self, tokens: impl IntoIterator<Item = &'a String>) -> usize {
        let held = self.lock();
        let mut count = 0;
        for token in tokens {
            if let Some(held) = held.get(token) {
                held.cancel.cancel();
                count += 1;
            }
        }
        count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // The map stays consistent even if a holder panicked mid-operation:
        // every operation is a single insert, remove or read.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Renews every lease in `leases` each `interval` until `stop` fires.
///
/// An attempt whose job is missing from the statement's result has lost its
/// lease and is cancelled. After `max_failures` failed heartbeats in a row,
/// the attempts they should have renewed are cancelled as well: their leases
/// may have run out meanwhile.
pub(crate) async fn run(
    store: Store,
    leases: &Leases,
    interval: Duration,
    lease: Duration,
    max_failures: u32,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let patience = lease.saturating_sub(interval).max(interval);
    let mut failures = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (job_ids, tokens) = leases.snapshot();
        if tokens.is_empty() {
            continue;
        }
        // A heartbeat stuck on a dead connection is as bad as a failed one,
        // but a busy database may take longer than an interval to answer.
        let renewal = store.job_heartbeat_many(&job_ids, &tokens, lease);
        let result = match tokio::time::timeout(patience, renewal).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {patience:?}")),
        };
        match result {
            Ok(renewed) => {
                failures = 0;
                tracing::trace!(count = renewed.len(), "leases renewed");
                if renewed.len() < tokens.len() {
                    let renewed: HashSet<&String> = renewed.iter().collect();
                    let lost = tokens.iter().filter(|token| !renewed.contains(token));
                    let count = leases.cancel(lost);
                    if count > 0 {
                        tracing::warn!(count, "leases lost, attempts cancelled");
                    }
                }
            }
            Err(error) => {
                failures += 1;
                if failures >= max_failures {
                    let count = leases.cancel(&tokens);
                    tracing::warn!(
                        error,
                        failures,
                        count,
                        "heartbeats keep failing, attempts cancelled"
                    );
                    failures = 0;
                } else {
                    tracing::warn!(error, failures, "heartbeat failed, will retry");
                }
            }
        }
    }
}

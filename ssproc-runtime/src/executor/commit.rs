//! Group commit: the step outcomes of many attempts written in one
//! statement.
//!
//! Each attempt hands its fenced write to the committer and waits for the
//! answer about its own row before running its next step, so progress stays
//! durable per step. What is shared is the statement, and so the commit and
//! its WAL flush. A few statements run at once, each on its own connection;
//! while they are all in flight, the next batch gathers. Nothing waits on a
//! timer, so a lone write goes out at once.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::storage::{is_unreachable, Store, Transition};

/// Most writes in one statement.
const MAX_BATCH: usize = 1000;

/// Most job data in one statement, far below the 1 GB PostgreSQL takes in
/// one message.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// Most batch statements in flight at once. One alone leaves the executor
/// waiting on each round trip; a few keep the database busy without taking
/// more than a few of the pool's connections.
const MAX_FLUSHES: usize = 3;

/// Why a write did not land.
pub(crate) type WriteError = Arc<sqlx::Error>;

/// Applies attempts' writes: in batches through the committer task of a
/// running executor, or one statement each.
#[derive(Debug, Clone)]
pub(crate) enum Writer {
    Direct(Store),
    Batched(mpsc::UnboundedSender<Request>),
}

#[derive(Debug)]
pub(crate) struct Request {
    job_id: String,
    token: String,
    transition: Transition,
    reply: oneshot::Sender<Result<bool, WriteError>>,
}

impl Writer {
    /// A writer batching through a new committer task on `store`. The task
    /// ends once every clone of the writer is dropped.
    pub(crate) fn spawn_batched(store: Store) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(store, receiver));
        Self::Batched(sender)
    }

    /// Applies `transition` to `job_id` fenced by `token`; `Ok(false)` when
    /// the attempt no longer holds the job.
    pub(crate) async fn apply(
        &self,
        job_id: &str,
        token: &str,
        transition: Transition,
    ) -> Result<bool, WriteError> {
        match self {
            Self::Direct(store) => store
                .job_transition(job_id, token, &transition)
                .await
                .map_err(Arc::new),
            Self::Batched(sender) => {
                let (reply, answer) = oneshot::channel();
                let request = Request {
                    job_id: job_id.to_owned(),
                    token: token.to_owned(),
                    transition,
                    reply,
                };
                if sender.send(request).is_err() {
                    return Err(Arc::new(sqlx::Error::PoolClosed));
                }
                answer
                    .await
                    .unwrap_or_else(|_| Err(Arc::new(sqlx::Error::PoolClosed)))
            }
        }
    }
}

async fn run(store: Store, mut receiver: mpsc::UnboundedReceiver<Request>) {
    let in_flight = Arc::new(Semaphore::new(MAX_FLUSHES));
    loop {
        // Waiting for a free flush before receiving lets the next batch
        // grow while every flush is busy.
        let Ok(flushing) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let store = store.clone();
        // Not tracked by the executor: every request's sender awaits its
        // reply, and the attempts that send are tracked.
        tokio::spawn(async move {
            for mut chunk in split_by_size(batch, MAX_BATCH_BYTES) {
                flush(&store, &mut chunk).await;
            }
            drop(flushing);
        });
    }
}

/// Splits `batch` so that no statement carries more than `max_bytes` of
/// job data (a single larger write goes alone).
fn split_by_size(batch: Vec<Request>, max_bytes: usize) -> Vec<Vec<Request>> {
    let mut chunks = vec![Vec::new()];
    let mut bytes = 0;
    for request in batch {
        let size = request.transition.data.as_ref().map_or(0, String::len);
        let current = chunks.last().map_or(0, Vec::len);
        if current > 0 && bytes + size > max_bytes {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(request);
        }
    }
    chunks
}

/// Writes `batch` in one statement and answers every request. When the
/// statement fails, each write is retried alone, so that one bad row (or a
/// batch too large for one message) cannot fail the others; when the
/// database cannot be reached, every write fails at once rather than
/// waiting out a connection per row.
async fn flush(store: &Store, batch: &mut Vec<Request>) {
    let updates: Vec<(&str, &str, &Transition)> = batch
        .iter()
        .map(|r| (r.job_id.as_str(), r.token.as_str(), &r.transition))
        .collect();
    let result = store.job_transition_many(&updates).await;
    drop(updates);
    match result {
        Ok(moved) => {
            let moved: HashSet<(String, String)> = moved.into_iter().collect();
            tracing::trace!(count = batch.len(), "job writes committed");
            for request in batch.drain(..) {
                let landed = moved.contains(&(request.job_id, request.token));
                let _ = request.reply.send(Ok(landed));
            }
        }
        Err(error) if batch.len() > 1 && !is_unreachable(&error) => {
            tracing::debug!(%error, count = batch.len(), "batched job write failed, writing one by one");
            for request in batch.drain(..) {
                let result = store
                    .job_transition(&request.job_id, &request.token, &request.transition)
                    .await
                    .map_err(Arc::new);
                let _ = request.reply.send(result);
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(Arc::clone(&error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobStatus, RunType};

    fn request(job_id: &str, data: Option<usize>) -> Request {
        Request {
            job_id: job_id.to_owned(),
            token: "t".to_owned(),
            transition: Transition {
                data: data.map(|len| "x".repeat(len)),
                next_step: 1,
                status: JobStatus::Ready,
                run_type: RunType::Normal,
                bump_comp_count: false,
                release_after: None,
                failure: None,
            },
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn batches_split_where_their_data_outgrows_the_limit() {
        let batch = vec![
            request("a", Some(6)),
            request("b", Some(4)),
            request("c", None),
            request("d", Some(1)),
            request("e", Some(25)),
            request("f", Some(2)),
        ];
        let chunks: Vec<Vec<String>> = split_by_size(batch, 10)
            .into_iter()
            .map(|chunk| chunk.into_iter().map(|r| r.job_id).collect())
            .collect();
        assert_eq!(
            chunks,
            [vec!["a", "b", "c"], vec!["d"], vec!["e"], vec!["f"]]
        );
    }
}

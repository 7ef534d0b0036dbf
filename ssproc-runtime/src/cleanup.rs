//! Deleting finished jobs once they are old enough.

use std::num::NonZeroUsize;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::CleanupError;
use crate::storage::Store;

/// Deletes `done` and `compensated` jobs of `process_id` that ended more
/// than `threshold` ago, batch by batch until a batch comes back short
/// (a batch is at least one row, so one that deletes nothing ends the run).
pub(crate) async fn run_once(
    store: &Store,
    process_id: &str,
    threshold: Duration,
    batch_size: NonZeroUsize,
) -> Result<u64, CleanupError> {
    let batch = batch_size.get();
    let mut deleted = 0;
    loop {
        let count = store
            .job_cleanup_batch(process_id, threshold, batch)
            .await
            .map_err(|source| CleanupError::Database {
                process_id: process_id.to_owned(),
                deleted,
                source,
            })?;
        deleted += count;
        if count < batch as u64 {
            return Ok(deleted);
        }
    }
}

/// Runs [`run_once`] every `interval` until `stop` fires. Logs at info only
/// when it deleted something.
pub(crate) async fn run(
    store: Store,
    process_id: &'static str,
    interval: Duration,
    threshold: Duration,
    batch_size: NonZeroUsize,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match run_once(&store, process_id, threshold, batch_size).await {
            Ok(0) => tracing::trace!(process_id, "cleanup found nothing"),
            Ok(count) => tracing::info!(process_id, count, "cleanup deleted finished jobs"),
            Err(CleanupError::Database {
                deleted, source, ..
            }) => {
                tracing::warn!(process_id, count = deleted, error = %source, "cleanup failed, will retry");
            }
            Err(error) => tracing::warn!(process_id, %error, "cleanup failed, will retry"),
        }
    }
}

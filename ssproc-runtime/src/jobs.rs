//! The operator's handle: list, inspect, retry, cancel and delete jobs of
//! any process, and count them.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::JobTable;
use crate::error::{AdminError, CleanupError, ReadError};
use crate::filter::{Cursor, CursorPage, JobFilter, JobPage};
use crate::job::{Job, JobStatus};
use crate::storage::{SchemaInfo, Store};

/// Jobs of every process in one table, for operators and tools.
///
/// Reads (listing, counting, statistics) go to the replica pools given to
/// [`with_replicas`](Jobs::with_replicas), round robin, or to the primary
/// pool when there are none; [`job`](Jobs::job) and every action use the
/// primary, so they see their own writes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: Store,
    replicas: Arc<Replicas>,
}

#[derive(Debug, Default)]
struct Replicas {
    pools: Vec<PgPool>,
    next: AtomicUsize,
}

/// Counts of one process's jobs by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// The process.
    pub process_id: String,
    /// Jobs waiting or running.
    pub ready: i64,
    /// Jobs done.
    pub done: i64,
    /// Jobs compensated.
    pub compensated: i64,
    /// Jobs in error.
    pub error: i64,
    /// Jobs in a status ssproc does not write.
    pub other: i64,
    /// How long the ready job that has been due the longest has been due:
    /// the database's `now()` minus its `start_after_ts`. Jobs due later
    /// (scheduled, or waiting out a retry's backoff) do not count; a job
    /// being executed does, since it is still ready. `None` when no ready
    /// job is due.
    pub oldest_ready_age: Option<Duration>,
}

impl Jobs {
    /// A handle on `table` through `pool`, the primary.
    pub fn new(pool: PgPool, table: JobTable) -> Self {
        let store = Store::new(pool, table, SchemaInfo::default());
        Self {
            store,
            replicas: Arc::default(),
        }
    }

    /// Sends listing, counting and statistics to `replicas`, round robin.
    /// A replica may lag the primary: a job just written may not be listed
    /// yet.
    pub fn with_replicas(mut self, replicas: Vec<PgPool>) -> Self {
        self.replicas = Arc::new(Replicas {
            pools: replicas,
            next: AtomicUsize::new(0),
        });
        self
    }

    fn reader(&self) -> &PgPool {
        let pools = &self.replicas.pools;
        if pools.is_empty() {
            return self.store.pool();
        }
        let next = self.replicas.next.fetch_add(1, Ordering::Relaxed);
        &pools[next % pools.len()]
    }

    /// Reads one job from the primary.
    ///
    /// # Errors
    ///
    /// [`ReadError::Database`] when the query failed, [`ReadError::Corrupt`]
    /// when the row holds a status or run type ssproc does not write.
    pub async fn job(&self, job_id: &str) -> Result<Option<Job>, ReadError> {
        self.store.job_get(job_id).await
    }

    /// Page `page` (from 0) of `page_size` jobs matching `filter`, newest
    /// first, with the total count. Both queries go to the same pool.
    ///
    /// The page is read in newest-first order through the listing index
    /// that [`migrate`](crate::migrate) creates, but an offset still costs
    /// as much as the rows it skips, and the total counts every matching
    /// job (without a process filter, by reading the whole table). For deep
    /// listings use [`list_after`](Jobs::list_after).
    ///
    /// # Errors
    ///
    /// As [`job`](Jobs::job).
    pub async fn list(
        &self,
        filter: &JobFilter,
        page: u32,
        page_size: u32,
    ) -> Result<JobPage, ReadError> {
        let pool = self.reader();
        let offset = i64::from(page) * i64::from(page_size);
        let jobs = self
            .store
            .job_list(pool, filter, offset, i64::from(page_size))
            .await?;
        let total = self.store.job_count(pool, filter).await?;
        Ok(JobPage { jobs, total })
    }

    /// Up to `limit` jobs matching `filter`, newest first, after `cursor`
    /// (from the newest when `None`); pass the returned `next` to get the
    /// following batch.
    ///
    /// Each batch reads the listing index that [`migrate`](crate::migrate)
    /// creates from the cursor on, so its cost does not grow with its depth.
    /// It grows with how rare matching jobs are: filters on process, one
    /// status, job id and creation time are checked on index entries, so
    /// the jobs in between cost an index entry each; the other filters, and
    /// several statuses before PostgreSQL 17, read the row of every job in
    /// between. A table without the listing index (made by the reference DDL
    /// alone) sorts every matching job per batch.
    ///
    /// # Errors
    ///
    /// As [`job`](Jobs::job).
    pub async fn list_after(
        &self,
        filter: &JobFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<CursorPage, ReadError> {
        let pool = self.reader();
        let jobs = self
            .store
            .job_list_after(pool, filter, cursor, i64::from(limit))
            .await?;
        let next = match jobs.last() {
            Some(last) if jobs.len() == limit as usize => Some(Cursor::after(last)),
            _ => None,
        };
        Ok(CursorPage { jobs, next })
    }

    /// Job counts per process and status, with how long the ready job due
    /// the longest has been due (see
    /// [`oldest_ready_age`](ProcessStats::oldest_ready_age)).
    ///
    /// # Errors
    ///
    /// [`ReadError::Database`] when the query failed.
    pub async fn stats(&self) -> Result<Vec<ProcessStats>, ReadError> {
        let pool = self.reader();
        let groups = self.store.job_count_by_status(pool).await?;
        let mut stats: Vec<ProcessStats> = Vec::new();
        for group in groups {
            if stats.last().map(|s| s.process_id.as_str()) != Some(group.process_id.as_str()) {
                stats.push(ProcessStats {
                    process_id: group.process_id.clone(),
                    ..ProcessStats::default()
                });
            }
            let Some(entry) = stats.last_mut() else {
                continue;
            };
            match group.status.parse::<JobStatus>() {
                Ok(JobStatus::Ready) => {
                    entry.ready += group.count;
                    entry.oldest_ready_age = group.oldest_due;
                }
                Ok(JobStatus::Done) => entry.done += group.count,
                Ok(JobStatus::Compensated) => entry.compensated += group.count,
                Ok(JobStatus::Error) => entry.error += group.count,
                Err(_) => entry.other += group.count,
            }
        }
        Ok(stats)
    }

    /// Puts a job in `error` back to `ready` at the step where it stopped,
    /// in the run (normal or compensation) it stopped in, with both attempt
    /// counts reset and due now. The last failure is kept.
    ///
    /// # Errors
    ///
    /// [`AdminError::NotFound`], [`AdminError::WrongState`] when the job is
    /// not in `error`, [`AdminError::Database`].
    pub async fn retry(&self, job_id: &str) -> Result<(), AdminError> {
        if self.store.job_retry(job_id).await? {
            tracing::info!(job_id, "job retried by operator");
            return Ok(());
        }
        Err(self.refusal(job_id, "retry", "error").await)
    }

    /// Stops retrying a `ready` job in its normal run and compensates it,
    /// as a permanent failure would: compensation starts at the step the
    /// job is at. A process with no compensation ends the job in `error`
    /// instead. Where the table has the `last_failure` column, the
    /// cancellation becomes the job's last failure, of kind
    /// [`FailureKind::Cancelled`](crate::FailureKind::Cancelled).
    ///
    /// A job that no attempt holds is compensated at once. A live attempt
    /// is fenced: its token is replaced, so its next write or heartbeat
    /// finds the job gone and it stops before another step. Its lease keeps
    /// its expiry and is no longer renewed, and the compensation is claimed
    /// only after it ends (at the next sweep after that), so that it does
    /// not run beside the step body still running. A body that ignores its
    /// cancellation and outlives the lease (on a stalled executor, say) can
    /// still overlap the compensation, as with any lease that runs out.
    ///
    /// Returns when that lease ends, on the database clock, if one was live;
    /// `None` when the compensation can start at once.
    ///
    /// # Errors
    ///
    /// [`AdminError::NotFound`], [`AdminError::WrongState`] when the job is
    /// terminal or already compensating, [`AdminError::Database`].
    pub async fn cancel(&self, job_id: &str) -> Result<Option<DateTime<Utc>>, AdminError> {
        let fence = format!("cancelled:{}", uuid::Uuid::new_v4().simple());
        let message = "cancelled by an operator";
        if let Some(lease) = self.store.job_cancel(job_id, &fence, message).await? {
            tracing::info!(job_id, "job cancelled by operator");
            return Ok(lease);
        }
        Err(self.refusal(job_id, "cancel", "ready, normal run").await)
    }

    /// Deletes a job in `done`, `compensated` or `error`.
    ///
    /// # Errors
    ///
    /// [`AdminError::NotFound`], [`AdminError::WrongState`] when the job is
    /// `ready`, [`AdminError::Database`].
    pub async fn delete(&self, job_id: &str) -> Result<(), AdminError> {
        if self.store.job_delete(job_id).await? {
            tracing::info!(job_id, "job deleted by operator");
            return Ok(());
        }
        Err(self
            .refusal(job_id, "delete", "done, compensated or error")
            .await)
    }

    /// Deletes `done` and `compensated` jobs of `process_id` that ended more
    /// than `threshold` ago, `batch_size` rows per statement, skipping rows
    /// locked by others, until a batch deletes fewer. Returns how many were
    /// deleted.
    ///
    /// # Errors
    ///
    /// [`CleanupError::ZeroBatchSize`] when `batch_size` is zero, before
    /// anything is sent; [`CleanupError::Database`] when a batch failed,
    /// with how many earlier batches deleted (they stay deleted).
    pub async fn cleanup(
        &self,
        process_id: &str,
        threshold: Duration,
        batch_size: usize,
    ) -> Result<u64, CleanupError> {
        let batch_size = NonZeroUsize::new(batch_size).ok_or(CleanupError::ZeroBatchSize)?;
        crate::cleanup::run_once(&self.store, process_id, threshold, batch_size).await
    }

    /// Why an action matched no row: no such job, or the wrong state.
    async fn refusal(
        &self,
        job_id: &str,
        action: &'static str,
        expected: &'static str,
    ) -> AdminError {
        match self.store.job_get(job_id).await {
            Ok(None) => AdminError::NotFound {
                job_id: job_id.to_owned(),
            },
            Ok(Some(job)) => AdminError::WrongState {
                job_id: job_id.to_owned(),
                action,
                status: job.status,
                run_type: job.run_type,
                expected,
            },
            Err(ReadError::Database(error)) => AdminError::Database(error),
            Err(error @ ReadError::Corrupt { .. }) => AdminError::Read(error),
        }
    }
}

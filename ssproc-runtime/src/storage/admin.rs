//! Statements behind the operator's actions and the cleanup: retry, cancel,
//! delete, statistics, and deleting old finished jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Store;

/// One `(process, status)` group of the statistics.
#[derive(Debug)]
pub(crate) struct StatusCount {
    pub(crate) process_id: String,
    pub(crate) status: String,
    pub(crate) count: i64,
    /// Registration time of the oldest job in the group.
    pub(crate) oldest_created: Option<DateTime<Utc>>,
}

impl Store {
    /// Puts an `error` job back to `ready` where it stopped, attempt counts
    /// reset, lease cleared, due now; notifies its executors. `false` when
    /// no `error` job has this id.
    pub(crate) async fn job_retry(&self, job_id: &str) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "WITH retried AS (
    UPDATE {table}
    SET status = 'ready',
        exec_count = 0,
        comp_count = 0,
        goroutine_lease_expire_ts = NULL,
        start_after_ts = now(),
        end_ts = NULL,
        last_update_ts = now()
    WHERE job_id = $1
        AND status = 'error'
    RETURNING process_id
)
SELECT retried.process_id::text
FROM retried
CROSS JOIN LATERAL pg_notify($2, retried.process_id::text) AS notified",
            table = self.inner.quoted
        );
        let retried: Option<String> = sqlx::query_scalar(&sql)
            .bind(job_id)
            .bind(self.channel())
            .fetch_optional(self.pool())
            .await?;
        Ok(retried.is_some())
    }

    /// Switches a `ready` job in its normal run to compensation, due now.
    /// The token is replaced by `fence`, so a live attempt's next write
    /// finds the job gone and stops. `false` when no such job exists.
    pub(crate) async fn job_cancel(&self, job_id: &str, fence: &str) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "WITH cancelled AS (
    UPDATE {table}
    SET run_type = 'compensation',
        goroutine_id = $2,
        goroutine_lease_expire_ts = NULL,
        start_after_ts = now(),
        last_update_ts = now()
    WHERE job_id = $1
        AND status = 'ready'
        AND run_type = 'normal'
    RETURNING process_id
)
SELECT cancelled.process_id::text
FROM cancelled
CROSS JOIN LATERAL pg_notify($3, cancelled.process_id::text) AS notified",
            table = self.inner.quoted
        );
        let cancelled: Option<String> = sqlx::query_scalar(&sql)
            .bind(job_id)
            .bind(fence)
            .bind(self.channel())
            .fetch_optional(self.pool())
            .await?;
        Ok(cancelled.is_some())
    }

    /// Deletes a job in a terminal status; `false` when none has this id.
    pub(crate) async fn job_delete(&self, job_id: &str) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table}
WHERE job_id = $1
    AND status IN ('done', 'compensated', 'error')",
            table = self.inner.quoted
        );
        let result = sqlx::query(&sql).bind(job_id).execute(self.pool()).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes up to `batch` `done` or `compensated` jobs of `process_id`
    /// that ended more than `threshold` ago, skipping rows locked by others.
    pub(crate) async fn job_cleanup_batch(
        &self,
        process_id: &str,
        threshold: Duration,
        batch: usize,
    ) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "WITH doomed AS (
    SELECT job_id
    FROM {table}
    WHERE process_id = $1
        AND status IN ('done', 'compensated')
        AND end_ts < now() - $2 * interval '1 second'
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {table} AS t
USING doomed
WHERE t.job_id = doomed.job_id",
            table = self.inner.quoted
        );
        let result = sqlx::query(&sql)
            .bind(process_id)
            .bind(threshold.as_secs_f64())
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }

    /// Job counts per process and status.
    pub(crate) async fn job_count_by_status(
        &self,
        pool: &PgPool,
    ) -> Result<Vec<StatusCount>, sqlx::Error> {
        let sql = format!(
            "SELECT process_id::text, status::text, count(*), min(created_ts)
FROM {table}
GROUP BY process_id, status
ORDER BY process_id, status",
            table = self.inner.quoted
        );
        let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> =
            sqlx::query_as(&sql).fetch_all(pool).await?;
        Ok(rows
            .into_iter()
            .map(|(process_id, status, count, oldest_created)| StatusCount {
                process_id,
                status,
                count,
                oldest_created,
            })
            .collect())
    }

    /// The database clock, so that ages are measured on one clock.
    pub(crate) async fn now(&self, pool: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
        sqlx::query_scalar("SELECT now()").fetch_one(pool).await
    }
}

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
    /// For ready jobs, how long the one due longest has been due; `None`
    /// for other statuses and when every ready job is due later.
    pub(crate) oldest_due: Option<Duration>,
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

    /// Switches a `ready` job in its normal run to compensation, due now,
    /// and records the cancellation as its last failure where the table has
    /// the `last_failure` column. `None` when no such job exists, else when
    /// the fenced attempt's lease ends, if it was live.
    ///
    /// The token is replaced by `fence`, so a live attempt's next write or
    /// heartbeat finds the job gone and stops. A live lease keeps its
    /// expiry, which that heartbeat no longer renews, so no compensation is
    /// claimed while the old attempt may still run; an expired lease is
    /// cleared.
    pub(crate) async fn job_cancel(
        &self,
        job_id: &str,
        fence: &str,
        message: &str,
    ) -> Result<Option<Option<DateTime<Utc>>>, sqlx::Error> {
        let (has_failure, has_registry): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_attribute
        WHERE attrelid = to_regclass($1)
            AND attname = 'last_failure'
            AND atttypid = 'jsonb'::regtype
            AND NOT attisdropped
    ),
    to_regclass($2) IS NOT NULL",
        )
        .bind(&self.inner.quoted)
        .bind(&self.inner.steps_table)
        .fetch_one(self.pool())
        .await?;
        // The step's name as the process last recorded it, when it did.
        let step_name = if has_registry {
            format!(
                "(
                SELECT s.steps[t.next_subprocess + 1]::text
                FROM {steps} AS s
                WHERE s.process_id = t.process_id
            )",
                steps = self.inner.steps_table
            )
        } else {
            "NULL".to_owned()
        };
        // A `Failure` as serde writes it: kind `FailureKind::Cancelled`.
        let set_failure = if has_failure {
            format!(
                ",
        last_failure = jsonb_build_object(
            'step', t.next_subprocess,
            'step_name', coalesce({step_name}, ''),
            'run_type', 'normal',
            'attempt', t.exec_count,
            'message', $4::text,
            'kind', 'cancelled'
        )"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "WITH cancelled AS (
    UPDATE {table} AS t
    SET run_type = 'compensation',
        goroutine_id = $2,
        goroutine_lease_expire_ts = CASE
            WHEN t.goroutine_lease_expire_ts > now() THEN t.goroutine_lease_expire_ts
        END,
        start_after_ts = now(),
        last_update_ts = now(){set_failure}
    WHERE t.job_id = $1
        AND t.status = 'ready'
        AND t.run_type = 'normal'
    RETURNING t.process_id, t.goroutine_lease_expire_ts
)
SELECT cancelled.goroutine_lease_expire_ts
FROM cancelled
CROSS JOIN LATERAL pg_notify($3, cancelled.process_id::text) AS notified",
            table = self.inner.quoted
        );
        let mut query = sqlx::query_scalar::<_, Option<DateTime<Utc>>>(&sql)
            .bind(job_id)
            .bind(fence)
            .bind(self.channel());
        if has_failure {
            query = query.bind(message);
        }
        query.fetch_optional(self.pool()).await
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

    /// Job counts per process and status, and for ready jobs how long the
    /// one due longest has been due, on the database clock.
    pub(crate) async fn job_count_by_status(
        &self,
        pool: &PgPool,
    ) -> Result<Vec<StatusCount>, sqlx::Error> {
        let sql = format!(
            "SELECT process_id::text,
    status::text,
    count(*),
    EXTRACT(EPOCH FROM now() - min(start_after_ts) FILTER (
        WHERE status = 'ready'
            AND start_after_ts <= now()
    ))::float8
FROM {table}
GROUP BY process_id, status
ORDER BY process_id, status",
            table = self.inner.quoted
        );
        let rows: Vec<(String, String, i64, Option<f64>)> =
            sqlx::query_as(&sql).fetch_all(pool).await?;
        Ok(rows
            .into_iter()
            .map(|(process_id, status, count, due_secs)| StatusCount {
                process_id,
                status,
                count,
                oldest_due: due_secs.and_then(|secs| Duration::try_from_secs_f64(secs).ok()),
            })
            .collect())
    }
}

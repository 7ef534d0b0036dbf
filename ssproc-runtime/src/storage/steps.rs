//! The step-list registry: the step names each process ran with last, so
//! that a change that would move open jobs is caught at start.

use super::Store;

impl Store {
    /// The step list recorded for `process_id`; `Ok(None)` when none is, or
    /// when the registry table does not exist (a table made by the reference
    /// DDL alone).
    pub(crate) async fn process_steps_get(
        &self,
        process_id: &str,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&self.inner.steps_table)
            .fetch_one(self.pool())
            .await?;
        if !exists {
            return Ok(None);
        }
        let sql = format!(
            "SELECT steps::text[]
FROM {steps}
WHERE process_id = $1",
            steps = self.inner.steps_table
        );
        sqlx::query_scalar(&sql)
            .bind(process_id)
            .fetch_optional(self.pool())
            .await
    }

    /// Records `steps` as the step list of `process_id`, when the registry
    /// table exists.
    pub(crate) async fn process_steps_put(
        &self,
        process_id: &str,
        steps: &[&str],
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO {steps} (process_id, steps, updated_ts)
VALUES ($1, $2, now())
ON CONFLICT (process_id) DO UPDATE
SET steps = excluded.steps,
    updated_ts = excluded.updated_ts",
            steps = self.inner.steps_table
        );
        let result = sqlx::query(&sql)
            .bind(process_id)
            .bind(steps)
            .execute(self.pool())
            .await;
        match result {
            Ok(_) => Ok(()),
            // No registry table: the table was made by the reference DDL.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P01") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The distinct steps at which jobs of `process_id` are still open.
    pub(crate) async fn job_open_steps(&self, process_id: &str) -> Result<Vec<i32>, sqlx::Error> {
        let sql = format!(
            "SELECT DISTINCT next_subprocess
FROM {table}
WHERE process_id = $1
    AND status = 'ready'
ORDER BY next_subprocess",
            table = self.inner.quoted
        );
        sqlx::query_scalar(&sql)
            .bind(process_id)
            .fetch_all(self.pool())
            .await
    }
}

//! The filtered listing statements, built per filter with bound values.

use sqlx::{PgPool, Postgres, QueryBuilder};

use super::queries::{job_from_row, JOB_COLUMNS};
use super::Store;
use crate::error::ReadError;
use crate::filter::{Cursor, JobFilter, TimeRange};
use crate::job::Job;

impl Store {
    /// One page of jobs matching `filter`, newest first: the order of the
    /// listing index (see [`ddl`](super::ddl)), so no sort is needed.
    pub(crate) async fn job_list(
        &self,
        pool: &PgPool,
        filter: &JobFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Job>, ReadError> {
        let mut query = self.select(JOB_COLUMNS, filter);
        query.push("\nORDER BY t.created_ts DESC, t.job_id DESC\nLIMIT ");
        query.push_bind(limit);
        query.push(" OFFSET ");
        query.push_bind(offset);
        let rows = query.build().fetch_all(pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Up to `limit` jobs matching `filter` after `cursor`, newest first.
    /// The row comparison bounds a backward scan of the listing index (see
    /// [`ddl`](super::ddl)) on `(created_ts, job_id)`, so a batch starts at
    /// the cursor instead of reading the jobs before it.
    pub(crate) async fn job_list_after(
        &self,
        pool: &PgPool,
        filter: &JobFilter,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<Job>, ReadError> {
        let mut query = self.select(JOB_COLUMNS, filter);
        if let Some(cursor) = cursor {
            query.push("\n    AND (t.created_ts, t.job_id) < (");
            query.push_bind(cursor.created_at);
            query.push(", ");
            query.push_bind(cursor.job_id.clone());
            query.push(")");
        }
        query.push("\nORDER BY t.created_ts DESC, t.job_id DESC\nLIMIT ");
        query.push_bind(limit);
        let rows = query.build().fetch_all(pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// How many jobs match `filter`.
    pub(crate) async fn job_count(
        &self,
        pool: &PgPool,
        filter: &JobFilter,
    ) -> Result<i64, ReadError> {
        let mut query = self.select("count(*)", filter);
        Ok(query.build_query_scalar().fetch_one(pool).await?)
    }

    /// `SELECT {columns} FROM table AS t WHERE {filter}`.
    fn select<'a>(&self, columns: &str, filter: &'a JobFilter) -> QueryBuilder<'a, Postgres> {
        let mut query = QueryBuilder::new(format!(
            "SELECT {columns}\nFROM {} AS t\nWHERE true",
            self.inner.quoted
        ));
        if let Some(process_id) = &filter.process_id {
            query
                .push("\n    AND t.process_id = ")
                .push_bind(process_id.as_str());
        }
        // One status as `=`: before PostgreSQL 17, `= ANY` on a column after
        // the first of an index that gives the order is checked on the row,
        // not on the index entry.
        match filter.statuses.as_slice() {
            [] => {}
            [status] => {
                query
                    .push("\n    AND t.status = ")
                    .push_bind(status.as_str());
            }
            statuses => {
                let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                query
                    .push("\n    AND t.status = ANY(")
                    .push_bind(statuses)
                    .push(")");
            }
        }
        if let Some(run_type) = filter.run_type {
            query
                .push("\n    AND t.run_type = ")
                .push_bind(run_type.as_str());
        }
        if let Some(job_id) = &filter.job_id {
            query
                .push("\n    AND t.job_id = ")
                .push_bind(job_id.as_str());
        }
        let counts = [
            ("t.exec_count >= ", filter.min_exec_count),
            ("t.exec_count <= ", filter.max_exec_count),
            ("t.comp_count >= ", filter.min_comp_count),
            ("t.comp_count <= ", filter.max_comp_count),
        ];
        for (condition, value) in counts {
            if let Some(value) = value {
                query.push("\n    AND ").push(condition).push_bind(value);
            }
        }
        let ranges = [
            ("t.created_ts", &filter.created),
            ("t.started_ts", &filter.started),
            ("t.end_ts", &filter.ended),
            ("t.last_update_ts", &filter.updated),
        ];
        for (column, range) in ranges {
            push_range(&mut query, column, range);
        }
        query
    }
}

fn push_range(query: &mut QueryBuilder<'_, Postgres>, column: &str, range: &TimeRange) {
    if let Some(from) = range.from {
        query
            .push(format!("\n    AND {column} >= "))
            .push_bind(from);
    }
    if let Some(until) = range.until {
        query
            .push(format!("\n    AND {column} < "))
            .push_bind(until);
    }
}

//! Every statement the runtime runs against the jobs table, named noun then
//! verb, and the store methods that run them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{SchemaInfo, Store};
use crate::error::ReadError;
use crate::job::{Failure, Job, JobStatus, RunType, UnknownValue};

/// Statement texts for one table, built once per store.
pub(super) struct Statements {
    job_insert: String,
    job_insert_many: String,
    job_insert_claimed: String,
    job_claim_many: String,
    job_save: String,
    job_transition_many: String,
    job_heartbeat_many: String,
    job_release_many: String,
    job_get: String,
}

/// The columns a [`Job`] is read from. `last_failure` is read through
/// `to_jsonb(t)`, so that tables without the column read as "no failure".
pub(super) const JOB_COLUMNS: &str = "t.job_id::text,
    t.job_data::text,
    t.process_id::text,
    t.goroutine_id::text,
    t.goroutine_heart_beat_ts,
    t.goroutine_lease_expire_ts,
    t.status::text,
    t.next_subprocess,
    t.run_type::text,
    t.goroutine_ids::text[],
    t.exec_count,
    t.comp_count,
    t.created_ts,
    t.start_after_ts,
    t.started_ts,
    t.end_ts,
    t.last_update_ts,
    to_jsonb(t) -> 'last_failure' AS last_failure";

/// How many attempt tokens `goroutine_ids` keeps, newest last.
const TOKEN_HISTORY: i32 = 100;

impl Statements {
    pub(super) fn new(table: &str, info: SchemaInfo) -> Self {
        let set_failure = if info.last_failure {
            ",\n    last_failure = coalesce(u.failure::jsonb, t.last_failure)"
        } else {
            ""
        };
        let keep_from = TOKEN_HISTORY - 1;
        Self {
            job_insert: format!(
                "WITH inserted AS (
    INSERT INTO {table} (job_id, job_data, process_id, created_ts, start_after_ts, last_update_ts)
    VALUES ($1, $2, $3, now(), coalesce($4, now() + $5 * interval '1 second'), now())
    ON CONFLICT (job_id) DO NOTHING
    RETURNING job_id, process_id
)
SELECT inserted.job_id::text
FROM inserted
CROSS JOIN LATERAL pg_notify($6, inserted.process_id::text) AS notified"
            ),
            job_insert_many: format!(
                "WITH input AS (
    SELECT *
    FROM unnest($1::text[], $2::text[]) AS i(job_id, job_data)
),
existing AS (
    SELECT t.job_id::text
    FROM {table} AS t
    JOIN input ON input.job_id = t.job_id
    LIMIT 1
),
inserted AS (
    INSERT INTO {table} (job_id, job_data, process_id, created_ts, start_after_ts, last_update_ts)
    SELECT job_id, job_data, $3, now(), coalesce($4, now() + $5 * interval '1 second'), now()
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (job_id) DO NOTHING
    RETURNING 1
),
notified AS (
    SELECT pg_notify($6, $3)
    WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT (SELECT job_id FROM existing),
    (SELECT count(*) FROM inserted),
    (SELECT count(*) FROM notified)"
            ),
            job_insert_claimed: format!(
                "INSERT INTO {table} (
    job_id, job_data, process_id, goroutine_id, goroutine_heart_beat_ts,
    goroutine_lease_expire_ts, goroutine_ids, exec_count, created_ts,
    start_after_ts, started_ts, last_update_ts
)
VALUES (
    $1, $2, $3, $4, now(),
    now() + $5 * interval '1 second', ARRAY[$4::text], 1, now(),
    now(), now(), now()
)
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id::text"
            ),
            job_claim_many: format!(
                "WITH picked AS (
    SELECT job_id
    FROM {table}
    WHERE process_id = $1
        AND status = 'ready'
        AND start_after_ts <= now()
        AND (goroutine_lease_expire_ts IS NULL OR goroutine_lease_expire_ts <= now())
    ORDER BY start_after_ts
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
numbered AS (
    SELECT job_id, $3 || row_number() OVER () AS token
    FROM picked
)
UPDATE {table} AS t
SET goroutine_id = numbered.token,
    goroutine_heart_beat_ts = now(),
    goroutine_lease_expire_ts = now() + $4 * interval '1 second',
    exec_count = t.exec_count + (t.run_type = 'normal')::int,
    comp_count = t.comp_count + (t.run_type = 'compensation')::int,
    goroutine_ids = (t.goroutine_ids || numbered.token)
        [greatest(1, cardinality(t.goroutine_ids) + 1 - {keep_from}):],
    started_ts = coalesce(t.started_ts, now()),
    last_update_ts = now()
FROM numbered
WHERE t.job_id = numbered.job_id
RETURNING t.job_id::text,
    t.job_data::text,
    t.goroutine_id::text,
    t.next_subprocess,
    t.run_type::text,
    t.exec_count,
    t.comp_count"
            ),
            job_save: format!(
                "UPDATE {table}
SET job_data = $3,
    last_update_ts = now()
WHERE job_id = $1
    AND goroutine_id = $2
    AND status = 'ready'"
            ),
            job_transition_many: format!(
                "UPDATE {table} AS t
SET job_data = coalesce(u.data, t.job_data),
    next_subprocess = u.next_step,
    status = u.status,
    run_type = u.run_type,
    comp_count = t.comp_count + u.bump,
    goroutine_lease_expire_ts = CASE
        WHEN u.status = 'ready' AND u.release_after IS NULL THEN t.goroutine_lease_expire_ts
    END,
    start_after_ts = CASE
        WHEN u.release_after IS NULL THEN t.start_after_ts
        ELSE now() + u.release_after * interval '1 second'
    END,
    end_ts = CASE WHEN u.status = 'ready' THEN NULL ELSE now() END,
    last_update_ts = now(){set_failure}
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::int4[], $5::text[],
    $6::text[], $7::int4[], $8::float8[], $9::text[]
) AS u(job_id, token, data, next_step, status, run_type, bump, release_after, failure)
WHERE t.job_id = ANY($1::text[])
    AND t.job_id = u.job_id
    AND t.goroutine_id = u.token
    AND t.status = 'ready'
RETURNING t.job_id::text, t.goroutine_id::text"
            ),
            job_heartbeat_many: format!(
                "UPDATE {table} AS t
SET goroutine_heart_beat_ts = now(),
    goroutine_lease_expire_ts = now() + $3 * interval '1 second'
FROM unnest($1::text[], $2::text[]) AS held(job_id, token)
WHERE t.job_id = held.job_id
    AND t.goroutine_id = held.token
    AND t.status = 'ready'
    AND t.goroutine_lease_expire_ts IS NOT NULL
RETURNING t.goroutine_id::text"
            ),
            job_release_many: format!(
                "UPDATE {table} AS t
SET goroutine_lease_expire_ts = NULL,
    last_update_ts = now()
FROM unnest($1::text[], $2::text[]) AS held(job_id, token)
WHERE t.job_id = held.job_id
    AND t.goroutine_id = held.token
    AND t.status = 'ready'"
            ),
            job_get: format!(
                "SELECT {JOB_COLUMNS}
FROM {table} AS t
WHERE t.job_id = $1"
            ),
        }
    }
}

/// A job claimed by an attempt.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) job_id: String,
    pub(crate) job_data: String,
    pub(crate) token: String,
    pub(crate) next_step: i32,
    pub(crate) run_type: RunType,
    pub(crate) exec_count: i32,
    pub(crate) comp_count: i32,
}

/// A claimed row whose run type ssproc does not write (a hand edit, say):
/// no attempt can run it.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) job_id: String,
    pub(crate) token: String,
    pub(crate) next_step: i32,
    pub(crate) source: UnknownValue,
}

/// One fenced write that moves a job: the outcome of a step, a failure or
/// a switch to compensation.
#[derive(Debug)]
pub(crate) struct Transition {
    /// New job data; `None` keeps what is stored.
    pub(crate) data: Option<String>,
    pub(crate) next_step: i32,
    pub(crate) status: JobStatus,
    pub(crate) run_type: RunType,
    /// Counts the attempt that goes on into compensation.
    pub(crate) bump_comp_count: bool,
    /// Releases the lease and makes the job due after this delay.
    pub(crate) release_after: Option<Duration>,
    pub(crate) failure: Option<Failure>,
}

/// Transitions laid out column by column, as `unnest` takes them.
#[derive(Default)]
struct TransitionColumns<'a> {
    job_ids: Vec<&'a str>,
    tokens: Vec<&'a str>,
    data: Vec<Option<&'a str>>,
    next_steps: Vec<i32>,
    statuses: Vec<&'static str>,
    run_types: Vec<&'static str>,
    bumps: Vec<i32>,
    release_after: Vec<Option<f64>>,
    failures: Vec<Option<String>>,
}

impl<'a> TransitionColumns<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            job_ids: Vec::with_capacity(capacity),
            tokens: Vec::with_capacity(capacity),
            data: Vec::with_capacity(capacity),
            next_steps: Vec::with_capacity(capacity),
            statuses: Vec::with_capacity(capacity),
            run_types: Vec::with_capacity(capacity),
            bumps: Vec::with_capacity(capacity),
            release_after: Vec::with_capacity(capacity),
            failures: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, job_id: &'a str, token: &'a str, transition: &'a Transition) {
        self.job_ids.push(job_id);
        self.tokens.push(token);
        self.data.push(transition.data.as_deref());
        self.next_steps.push(transition.next_step);
        self.statuses.push(transition.status.as_str());
        self.run_types.push(transition.run_type.as_str());
        self.bumps.push(i32::from(transition.bump_comp_count));
        self.release_after
            .push(transition.release_after.map(seconds));
        // A failure always serializes: strings, numbers and unit variants.
        self.failures.push(
            transition
                .failure
                .as_ref()
                .and_then(|f| serde_json::to_string(f).ok()),
        );
    }
}

/// Seconds as PostgreSQL multiplies them into intervals.
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// When a registered job becomes due.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    At(DateTime<Utc>),
    After(Duration),
}

impl Store {
    /// Inserts a ready job and notifies listeners on commit; `false` when the
    /// id exists already (the existing row is untouched).
    pub(crate) async fn job_insert(
        &self,
        conn: &mut PgConnection,
        job_id: &str,
        data: &str,
        process_id: &str,
        due: Due,
    ) -> Result<bool, sqlx::Error> {
        let (at, after) = match due {
            Due::At(at) => (Some(at), 0.0),
            Due::After(delay) => (None, seconds(delay)),
        };
        let inserted: Option<String> = sqlx::query_scalar(&self.inner.sql.job_insert)
            .bind(job_id)
            .bind(data)
            .bind(process_id)
            .bind(at)
            .bind(after)
            .bind(self.channel())
            .fetch_optional(conn)
            .await?;
        Ok(inserted.is_some())
    }

    /// Inserts many ready jobs in one statement and notifies listeners once
    /// on commit. Returns an id that exists already (then nothing was
    /// inserted) and how many rows were inserted.
    pub(crate) async fn job_insert_many(
        &self,
        conn: &mut PgConnection,
        job_ids: &[String],
        data: &[String],
        process_id: &str,
        due: Due,
    ) -> Result<(Option<String>, i64), sqlx::Error> {
        let (at, after) = match due {
            Due::At(at) => (Some(at), 0.0),
            Due::After(delay) => (None, seconds(delay)),
        };
        let (existing, inserted, _notified): (Option<String>, i64, i64) =
            sqlx::query_as(&self.inner.sql.job_insert_many)
                .bind(job_ids)
                .bind(data)
                .bind(process_id)
                .bind(at)
                .bind(after)
                .bind(self.channel())
                .fetch_one(conn)
                .await?;
        Ok((existing, inserted))
    }

    /// Inserts a job already claimed by the attempt `token`; `false` when the
    /// id exists already.
    pub(crate) async fn job_insert_claimed(
        &self,
        job_id: &str,
        data: &str,
        process_id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let inserted: Option<String> = sqlx::query_scalar(&self.inner.sql.job_insert_claimed)
            .bind(job_id)
            .bind(data)
            .bind(process_id)
            .bind(token)
            .bind(seconds(lease))
            .fetch_optional(self.pool())
            .await?;
        Ok(inserted.is_some())
    }

    /// Claims up to `limit` due jobs of `process_id`; each gets the token
    /// `token_prefix` followed by its position in the batch.
    pub(crate) async fn job_claim_many(
        &self,
        process_id: &str,
        limit: usize,
        token_prefix: &str,
        lease: Duration,
    ) -> Result<Vec<Result<Claimed, Unreadable>>, sqlx::Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(&self.inner.sql.job_claim_many)
            .bind(process_id)
            .bind(limit)
            .bind(token_prefix)
            .bind(seconds(lease))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(claimed_from_row).collect()
    }

    /// Persists data mid-step; `false` when the attempt lost the job.
    pub(crate) async fn job_save(
        &self,
        job_id: &str,
        token: &str,
        data: &str,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(&self.inner.sql.job_save)
            .bind(job_id)
            .bind(token)
            .bind(data)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Applies `transition` fenced by `token`; `false` when the attempt lost
    /// the job (the row is then untouched).
    pub(crate) async fn job_transition(
        &self,
        job_id: &str,
        token: &str,
        transition: &Transition,
    ) -> Result<bool, sqlx::Error> {
        let update = [(job_id, token, transition)];
        Ok(!self.job_transition_many(&update).await?.is_empty())
    }

    /// Applies every `(job_id, token, transition)` in one statement, each
    /// fenced by its token; returns the `(job_id, token)` pairs that moved.
    /// A job may appear twice (a stale attempt beside the current one): only
    /// the write whose token holds the job lands.
    pub(crate) async fn job_transition_many(
        &self,
        updates: &[(&str, &str, &Transition)],
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let mut columns = TransitionColumns::with_capacity(updates.len());
        for (job_id, token, transition) in updates {
            columns.push(job_id, token, transition);
        }
        sqlx::query_as(&self.inner.sql.job_transition_many)
            .bind(columns.job_ids)
            .bind(columns.tokens)
            .bind(columns.data)
            .bind(columns.next_steps)
            .bind(columns.statuses)
            .bind(columns.run_types)
            .bind(columns.bumps)
            .bind(columns.release_after)
            .bind(columns.failures)
            .fetch_all(self.pool())
            .await
    }

    /// Renews the leases of every `(job_id, token)` pair in one statement;
    /// returns the tokens still held.
    pub(crate) async fn job_heartbeat_many(
        &self,
        job_ids: &[String],
        tokens: &[String],
        lease: Duration,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(&self.inner.sql.job_heartbeat_many)
            .bind(job_ids)
            .bind(tokens)
            .bind(seconds(lease))
            .fetch_all(self.pool())
            .await
    }

    /// Releases the leases of every `(job_id, token)` pair still held, so
    /// other executors can claim those jobs at once.
    pub(crate) async fn job_release_many(
        &self,
        job_ids: &[String],
        tokens: &[String],
    ) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(&self.inner.sql.job_release_many)
            .bind(job_ids)
            .bind(tokens)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }

    /// Reads one job.
    pub(crate) async fn job_get(&self, job_id: &str) -> Result<Option<Job>, ReadError> {
        let row = sqlx::query(&self.inner.sql.job_get)
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }
}

fn claimed_from_row(row: &PgRow) -> Result<Result<Claimed, Unreadable>, sqlx::Error> {
    let job_id: String = row.try_get(0)?;
    let token: String = row.try_get(2)?;
    let next_step: i32 = row.try_get(3)?;
    let run_type: String = row.try_get(4)?;
    let run_type = match run_type.parse() {
        Ok(run_type) => run_type,
        Err(source) => {
            return Ok(Err(Unreadable {
                job_id,
                token,
                next_step,
                source,
            }))
        }
    };
    Ok(Ok(Claimed {
        job_id,
        job_data: row.try_get(1)?,
        token,
        next_step,
        run_type,
        exec_count: row.try_get(5)?,
        comp_count: row.try_get(6)?,
    }))
}

pub(super) fn job_from_row(row: &PgRow) -> Result<Job, ReadError> {
    let job_id: String = row.try_get(0)?;
    let corrupt = |source| ReadError::Corrupt {
        job_id: job_id.clone(),
        source,
    };
    let status: String = row.try_get(6)?;
    let run_type: String = row.try_get(8)?;
    let status = status.parse().map_err(corrupt)?;
    let run_type = run_type.parse().map_err(corrupt)?;
    // A failure that does not parse (written by hand, or by a newer version)
    // reads as none rather than failing the whole read.
    let last_failure: Option<sqlx::types::JsonValue> = row.try_get(17)?;
    let last_failure = last_failure.and_then(|value| serde_json::from_value::<Failure>(value).ok());
    Ok(Job {
        job_data: row.try_get(1)?,
        process_id: row.try_get(2)?,
        token: row.try_get(3)?,
        heartbeat_at: row.try_get(4)?,
        lease_expires_at: row.try_get(5)?,
        status,
        next_step: row.try_get(7)?,
        run_type,
        tokens: row.try_get(9)?,
        exec_count: row.try_get(10)?,
        comp_count: row.try_get(11)?,
        created_at: row.try_get(12)?,
        start_after: row.try_get(13)?,
        started_at: row.try_get(14)?,
        ended_at: row.try_get(15)?,
        updated_at: row.try_get(16)?,
        last_failure,
        job_id,
    })
}

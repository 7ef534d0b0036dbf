//! Registering jobs and reading them back.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::config::JobTable;
use crate::error::{ReadError, RegisterError};
use crate::job::{Job, JobData};
use crate::process::Process;
use crate::storage::{Due, SchemaInfo, Store};

/// When a registered job may first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartAt {
    /// As soon as an executor is free.
    #[default]
    Now,
    /// Not before this instant. Stored at microsecond precision.
    At(DateTime<Utc>),
    /// Not before this long after registration, measured on the database
    /// clock.
    After(Duration),
}

/// Registers jobs of process `P` and reads jobs back.
///
/// Cheap to clone; holds the pool the user passed in.
pub struct Client<P: Process> {
    store: Store,
    process: PhantomData<fn() -> P>,
}

impl<P: Process> Clone for Client<P> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            process: PhantomData,
        }
    }
}

impl<P: Process> std::fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("process_id", &P::ID)
            .field("store", &self.store)
            .finish()
    }
}

impl<P: Process> Client<P> {
    /// A client for jobs of `P` in `table`.
    pub fn new(pool: PgPool, table: JobTable) -> Self {
        Self {
            store: Store::new(pool, table, SchemaInfo::default()),
            process: PhantomData,
        }
    }

    /// Registers `data` as a new job, due now.
    ///
    /// # Errors
    ///
    /// See [`register_in`](Client::register_in).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, the job may or may not exist.
    pub async fn register(&self, data: &P::Data) -> Result<(), RegisterError> {
        self.register_at(data, StartAt::Now).await
    }

    /// Registers `data` as a new job, due at `start`.
    ///
    /// # Errors
    ///
    /// See [`register_in`](Client::register_in).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, the job may or may not exist.
    pub async fn register_at(&self, data: &P::Data, start: StartAt) -> Result<(), RegisterError> {
        let job_id = data.job_id();
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(|source| RegisterError::Database { job_id, source })?;
        self.register_in(&mut conn, data, start).await
    }

    /// Registers `data` as a new job on `conn`, typically the caller's own
    /// transaction (`&mut *tx`).
    ///
    /// The job exists exactly when that transaction commits; on commit, a
    /// notification sent in the same transaction wakes the executors of `P`.
    /// A duplicate id does not abort the transaction: the insert does nothing
    /// and the error says so.
    ///
    /// # Errors
    ///
    /// [`RegisterError::InvalidJobId`] for an empty id or one with a NUL
    /// character; [`RegisterError::Serialize`] when the data does not
    /// serialize; [`RegisterError::DuplicateJobId`] when the id exists
    /// (the existing job is untouched); [`RegisterError::Database`] when the
    /// insert failed. In every case nothing was written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, the job may or may not exist.
    pub async fn register_in(
        &self,
        conn: &mut PgConnection,
        data: &P::Data,
        start: StartAt,
    ) -> Result<(), RegisterError> {
        let (job_id, text) = prepare(data)?;
        let due = match start {
            StartAt::Now => Due::After(Duration::ZERO),
            StartAt::At(at) => Due::At(at),
            StartAt::After(delay) => Due::After(delay),
        };
        match self
            .store
            .job_insert(conn, &job_id, &text, P::ID, due)
            .await
        {
            Ok(true) => {
                tracing::debug!(job_id, process_id = P::ID, "job registered");
                Ok(())
            }
            Ok(false) => Err(RegisterError::DuplicateJobId { job_id }),
            Err(source) => Err(RegisterError::Database { job_id, source }),
        }
    }

    /// Registers every job of `data` in one statement, all due at `start`:
    /// all of them, or none.
    ///
    /// Much faster than one [`register`](Client::register) per job: one
    /// round trip, one commit and one notification for the whole batch.
    ///
    /// # Errors
    ///
    /// As [`register_in`](Client::register_in), for the first offending
    /// job; [`RegisterError::DuplicateJobId`] also when an id appears twice
    /// in `data`. Nothing was written.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, all jobs may or may not exist.
    pub async fn register_many(
        &self,
        data: &[P::Data],
        start: StartAt,
    ) -> Result<(), RegisterError> {
        let first = data.first().map(JobData::job_id).unwrap_or_default();
        let mut conn =
            self.store
                .pool()
                .acquire()
                .await
                .map_err(|source| RegisterError::Database {
                    job_id: first,
                    source,
                })?;
        self.register_many_in(&mut conn, data, start).await
    }

    /// [`register_many`](Client::register_many) on `conn`, typically the
    /// caller's own transaction. The batch runs in a savepoint inside it, so
    /// a refused batch leaves the transaction usable.
    ///
    /// # Errors
    ///
    /// As [`register_many`](Client::register_many).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, all jobs may or may not exist.
    pub async fn register_many_in(
        &self,
        conn: &mut PgConnection,
        data: &[P::Data],
        start: StartAt,
    ) -> Result<(), RegisterError> {
        if data.is_empty() {
            return Ok(());
        }
        let mut job_ids = Vec::with_capacity(data.len());
        let mut texts = Vec::with_capacity(data.len());
        let mut seen = std::collections::HashSet::with_capacity(data.len());
        for item in data {
            let (job_id, text) = prepare(item)?;
            if !seen.insert(job_id.clone()) {
                return Err(RegisterError::DuplicateJobId { job_id });
            }
            job_ids.push(job_id);
            texts.push(text);
        }
        let first = job_ids[0].clone();
        let database = |source| RegisterError::Database {
            job_id: first.clone(),
            source,
        };
        let mut savepoint = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(database)?;
        let (existing, inserted) = self
            .store
            .job_insert_many(&mut savepoint, &job_ids, &texts, P::ID, start.into())
            .await
            .map_err(database)?;
        if let Some(job_id) = existing {
            savepoint.rollback().await.map_err(database)?;
            return Err(RegisterError::DuplicateJobId { job_id });
        }
        if inserted != job_ids.len() as i64 {
            // Another transaction inserted one of these ids meanwhile.
            savepoint.rollback().await.map_err(database)?;
            let job_id = first.clone();
            return Err(RegisterError::DuplicateJobId { job_id });
        }
        savepoint.commit().await.map_err(database)?;
        tracing::debug!(process_id = P::ID, count = inserted, "jobs registered");
        Ok(())
    }

    /// Reads one job, of any process.
    ///
    /// # Errors
    ///
    /// [`ReadError::Database`] when the query failed, [`ReadError::Corrupt`]
    /// when the row holds a status or run type ssproc does not write.
    pub async fn job(&self, job_id: &str) -> Result<Option<Job>, ReadError> {
        self.store.job_get(job_id).await
    }
}

impl From<StartAt> for Due {
    fn from(start: StartAt) -> Self {
        match start {
            StartAt::Now => Due::After(Duration::ZERO),
            StartAt::At(at) => Due::At(at),
            StartAt::After(delay) => Due::After(delay),
        }
    }
}

/// Checks the id and serializes the data, before anything is written.
pub(crate) fn prepare<D: JobData>(data: &D) -> Result<(String, String), RegisterError> {
    let job_id = data.job_id();
    let reason = if job_id.is_empty() {
        Some("it is empty")
    } else if job_id.contains('\0') {
        Some("it contains a NUL character, which PostgreSQL text cannot store")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(RegisterError::InvalidJobId { job_id, reason });
    }
    // serde_json escapes NUL characters inside strings as \u0000, so any
    // serializable data is storable as text.
    match serde_json::to_string(data) {
        Ok(text) => Ok((job_id, text)),
        Err(source) => Err(RegisterError::Serialize { job_id, source }),
    }
}

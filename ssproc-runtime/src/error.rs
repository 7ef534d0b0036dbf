//! Typed errors, one enum per failure domain.

use std::time::Duration;

/// A configuration value the runtime cannot work with; returned at
/// construction, before anything touches the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A schema or table name that is not a plain identifier.
    #[error("{what} name {name:?} is not a plain identifier: {reason}")]
    Identifier {
        /// `"schema"` or `"table"`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The executor name is longer than
    /// [`ExecutorConfig::MAX_NAME_LEN`](crate::ExecutorConfig::MAX_NAME_LEN)
    /// bytes.
    #[error("executor name is {len} bytes long, at most {max} fit in a token")]
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// The executor name contains a NUL character, which PostgreSQL text
    /// cannot hold.
    #[error("executor name {name:?} contains a NUL character")]
    NameNul {
        /// The name given.
        name: String,
    },
    /// A duration setting that must be positive is zero.
    #[error("{field} must be greater than zero")]
    ZeroDuration {
        /// The config field.
        field: &'static str,
    },
    /// A count setting that must be positive is zero.
    #[error("{field} must be greater than zero")]
    ZeroCount {
        /// The config field.
        field: &'static str,
    },
    /// The lease is not longer than the heartbeat interval, so a healthy
    /// attempt could lose its job between two heartbeats.
    #[error("lease duration {lease:?} must exceed heartbeat interval {heartbeat:?}")]
    LeaseNotAboveHeartbeat {
        /// `lease_duration`.
        lease: Duration,
        /// `heartbeat_interval`.
        heartbeat: Duration,
    },
    /// The backoff cap is below its base.
    #[error("retry backoff max {max:?} is below its base {base:?}")]
    BackoffMaxBelowBase {
        /// `retry_backoff_base`.
        base: Duration,
        /// `retry_backoff_max`.
        max: Duration,
    },
    /// A duration too large to hand to PostgreSQL or the timer.
    #[error("{field} of {value:?} is too large")]
    DurationTooLarge {
        /// The config field.
        field: &'static str,
        /// The value given.
        value: Duration,
    },
    /// Cleanup is enabled but one of its settings is missing.
    #[error("cleanup is enabled but {field} is not set")]
    CleanupUnset {
        /// The config field.
        field: &'static str,
    },
    /// The process has an empty id.
    #[error("process id is empty")]
    EmptyProcessId,
    /// The process id holds a character PostgreSQL text cannot store.
    #[error("process id {process_id:?} contains a NUL character")]
    ProcessIdNul {
        /// The process id.
        process_id: String,
    },
    /// The process has no steps.
    #[error("process {process_id:?} has no steps")]
    NoSteps {
        /// The process id.
        process_id: String,
    },
    /// The process lists a different number of compensation flags than steps.
    #[error("process {process_id:?} has {steps} steps but {compensated} compensation flags")]
    CompensationMismatch {
        /// The process id.
        process_id: String,
        /// `STEPS.len()`.
        steps: usize,
        /// `COMPENSATED.len()`.
        compensated: usize,
    },
}

/// The jobs table does not have the shape the runtime needs.
///
/// Each variant names one problem and `table` as `schema.table`; validation
/// reports the first problem in a fixed order (table, columns in DDL order,
/// primary key, indexes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The table does not exist.
    #[error("table {table} does not exist")]
    MissingTable {
        /// `schema.table`.
        table: String,
    },
    /// A required column is missing.
    #[error("table {table}: column {column} is missing (expected {expected})")]
    MissingColumn {
        /// `schema.table`.
        table: String,
        /// The column.
        column: &'static str,
        /// Its expected type and constraints.
        expected: &'static str,
    },
    /// A column has the wrong type.
    #[error("table {table}: column {column} has type {found}, expected {expected}")]
    ColumnType {
        /// `schema.table`.
        table: String,
        /// The column.
        column: &'static str,
        /// The expected type.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A column that must be `NOT NULL` is nullable.
    #[error("table {table}: column {column} is nullable, expected NOT NULL")]
    ColumnNullable {
        /// `schema.table`.
        table: String,
        /// The column.
        column: &'static str,
    },
    /// A column is too short to hold what the runtime writes.
    #[error(
        "table {table}: column {column} holds {found} characters, expected at least {expected}"
    )]
    ColumnTooShort {
        /// `schema.table`.
        table: String,
        /// The column.
        column: &'static str,
        /// The minimum length.
        expected: i32,
        /// The length found.
        found: i32,
    },
    /// A column lacks a default the runtime relies on when inserting.
    #[error("table {table}: column {column} has default {found}, expected {expected}")]
    ColumnDefault {
        /// `schema.table`.
        table: String,
        /// The column.
        column: &'static str,
        /// The expected default.
        expected: &'static str,
        /// The default found, or `none`.
        found: String,
    },
    /// The primary key is missing or is not exactly `(job_id)`.
    #[error("table {table}: primary key is {found}, expected (job_id)")]
    PrimaryKey {
        /// `schema.table`.
        table: String,
        /// The key found, or `none`.
        found: String,
    },
    /// No valid index leads with the required columns.
    #[error("table {table}: no index on {expected}")]
    MissingIndex {
        /// `schema.table`.
        table: String,
        /// The leading columns required.
        expected: &'static str,
    },
    /// The database could not be read.
    #[error("could not read the schema of {table}")]
    Database {
        /// `schema.table`.
        table: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
}

/// A job could not be registered. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A job with this id already exists; it is untouched. Inside a caller's
    /// transaction, PostgreSQL has aborted that transaction.
    #[error("job {job_id:?} already exists")]
    DuplicateJobId {
        /// The id.
        job_id: String,
    },
    /// The job id is empty or holds a character PostgreSQL text cannot store.
    #[error("job id {job_id:?} is not valid: {reason}")]
    InvalidJobId {
        /// The id.
        job_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The job data did not serialize to JSON.
    #[error("job data of {job_id:?} does not serialize")]
    Serialize {
        /// The id.
        job_id: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The database refused or failed the insert.
    #[error("could not register job {job_id:?}")]
    Database {
        /// The id.
        job_id: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
}

/// A step's mid-step [`save`](crate::StepContext::save) did not land.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The attempt no longer holds the job: the lease was taken over or the
    /// job is terminal.
    #[error("attempt no longer holds job {job_id:?}")]
    LeaseLost {
        /// The id.
        job_id: String,
    },
    /// The data did not serialize to JSON.
    #[error("job data does not serialize")]
    Serialize(#[source] serde_json::Error),
    /// The write failed.
    #[error("could not save job data")]
    Database(#[from] sqlx::Error),
}

/// An executor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration or the process was refused before starting
    /// ([`Process::spawn_executor`](crate::Process::spawn_executor) only:
    /// [`Executor::new`](crate::Executor::new) returns it as it is).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The jobs table failed validation.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The process's step list changed since it last ran in a way that
    /// would move open jobs to other steps. Set
    /// [`ExecutorConfig::allow_step_changes`](crate::ExecutorConfig) to
    /// start anyway.
    #[error(
        "steps of process {process_id:?} changed from {recorded:?} to {current:?}, \
         moving open jobs at steps {positions:?}"
    )]
    StepsChanged {
        /// The process id.
        process_id: String,
        /// Steps at which open jobs stand whose step, or a step before it,
        /// changed.
        positions: Vec<i32>,
        /// The step list recorded when the process last started.
        recorded: Vec<String>,
        /// The step list now.
        current: Vec<String>,
    },
    /// The step list could not be checked or recorded.
    #[error("could not check the step list of process {process_id:?}")]
    Database {
        /// The process id.
        process_id: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The executor is already running.
    #[error("executor for process {process_id:?} is already running")]
    AlreadyRunning {
        /// The process id.
        process_id: String,
    },
}

/// Execute-and-wait could not run the job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError {
    /// Registration failed; nothing was written.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The jobs table failed validation.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The job was registered and attempted, but its row could not be read
    /// back. It is durable and will be finished by an executor.
    #[error("job {job_id:?} was registered but could not be read back")]
    Database {
        /// The id.
        job_id: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The job ran, but its row holds a value ssproc does not write.
    #[error("job {job_id:?} ran but its row is not readable")]
    Corrupt {
        /// The id.
        job_id: String,
        /// The cause.
        #[source]
        source: ReadError,
    },
    /// The job ran, but its stored data no longer deserializes as the
    /// process's data type.
    #[error("job {job_id:?} ran but its stored data does not deserialize")]
    Deserialize {
        /// The id.
        job_id: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The job was registered, but its row no longer exists (deleted by
    /// someone else meanwhile).
    #[error("job {job_id:?} vanished")]
    Vanished {
        /// The id.
        job_id: String,
    },
}

/// A job could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The query failed.
    #[error("could not read jobs")]
    Database(#[from] sqlx::Error),
    /// A row held a status or run type ssproc does not write.
    #[error("job {job_id:?} holds an unknown value")]
    Corrupt {
        /// The id.
        job_id: String,
        /// What was unknown.
        #[source]
        source: crate::job::UnknownValue,
    },
}

/// A cleanup run of [`Jobs::cleanup`](crate::Jobs::cleanup) was refused or
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The batch size is zero, so no batch could delete anything. Nothing
    /// was sent to the database.
    #[error("cleanup batch size must be greater than zero")]
    ZeroBatchSize,
    /// A batch failed. The batches before it stay deleted.
    #[error("cleanup of process {process_id:?} failed after deleting {deleted} jobs")]
    Database {
        /// The process whose jobs were being deleted.
        process_id: String,
        /// How many jobs the earlier batches deleted.
        deleted: u64,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
}

/// An operator's action on a job was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No job has this id.
    #[error("job {job_id:?} does not exist")]
    NotFound {
        /// The id.
        job_id: String,
    },
    /// The job is not in a state the action applies to; it is unchanged.
    #[error(
        "cannot {action} job {job_id:?}: it is {status} ({run_type} run), expected {expected}"
    )]
    WrongState {
        /// The id.
        job_id: String,
        /// `retry`, `cancel` or `delete`.
        action: &'static str,
        /// The job's status.
        status: crate::job::JobStatus,
        /// The job's run type.
        run_type: crate::job::RunType,
        /// The states the action applies to.
        expected: &'static str,
    },
    /// The job could not be read back to explain a refusal.
    #[error(transparent)]
    Read(ReadError),
    /// The statement failed.
    #[error("job action failed")]
    Database(#[from] sqlx::Error),
}

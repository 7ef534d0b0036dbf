//! The job model: the data a job carries and the row that holds it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The data of one job: a serde type that knows its own job id.
///
/// Registration stores the value as JSON text in `job_data`; every step gets
/// it back as `&mut Self` and the runtime persists it after each successful
/// step. Usually derived with `#[derive(JobData)]` on a struct with one
/// `#[job_id]` field; by hand it is one method:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// # use ssproc_runtime as ssproc;
///
/// #[derive(Serialize, Deserialize)]
/// struct Order {
///     order_id: String,
///     amount_cents: i64,
/// }
///
/// impl ssproc::JobData for Order {
///     fn job_id(&self) -> String {
///         self.order_id.clone()
///     }
/// }
/// ```
///
/// # What can be stored
///
/// Any value that serializes to JSON. Strings may hold any character: JSON
/// escapes NUL as `\u0000`, so the text PostgreSQL stores never holds one.
/// ssproc sets no size limit of its own; PostgreSQL's limit for one text
/// value is 1 GB. Large values are accepted and round-trip (10 MB is
/// tested), but cost in proportion: every step commit rewrites the whole
/// value, and it is serialized and deserialized on the executor's runtime
/// threads, which also renew its leases. Keep payloads small and store bulk
/// data elsewhere, by reference.
///
/// Stored data that no longer deserializes as `Self` (the type changed
/// incompatibly) ends its job in `error` at its next attempt, without
/// retries, with [`FailureKind::Data`] and the serde error as the reason;
/// the stored text is kept, to be fixed and retried by an operator.
///
/// The job id is stored as it is: an empty id, or one holding NUL, is
/// [`RegisterError::InvalidJobId`].
///
/// [`RegisterError::InvalidJobId`]: crate::RegisterError::InvalidJobId
pub trait JobData: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job's id: the primary key of its row, unique across the table.
    fn job_id(&self) -> String;
}

/// Where a job stands; stored in the `status` column.
///
/// A job that is being executed is still [`Ready`](JobStatus::Ready): it is a
/// ready row whose lease is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting for, or held by, an attempt; in normal or compensation run.
    Ready,
    /// Every step succeeded, or a step exited early as done.
    Done,
    /// Compensation ran down to step 0 (or exited early as done).
    Compensated,
    /// The job gave up: compensation failed, an early exit as error, or no
    /// compensation to run when attempts ran out.
    Error,
}

impl JobStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Done => "done",
            Self::Compensated => "compensated",
            Self::Error => "error",
        }
    }

    /// Whether no attempt will ever move a job in this status again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Ready)
    }
}

/// Which kind of run a ready job is in; stored in the `run_type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunType {
    /// Steps run forward from `next_subprocess`.
    Normal,
    /// Compensations run backward from `next_subprocess` down to step 0.
    Compensation,
}

impl RunType {
    /// The value stored in the `run_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Compensation => "compensation",
        }
    }
}

/// A stored value that is not one ssproc writes, found in a status or run
/// type column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {column} value {value:?}")]
pub struct UnknownValue {
    /// The column that held the value.
    pub column: &'static str,
    /// The value found.
    pub value: String,
}

impl FromStr for JobStatus {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ready" => Ok(Self::Ready),
            "done" => Ok(Self::Done),
            "compensated" => Ok(Self::Compensated),
            "error" => Ok(Self::Error),
            _ => Err(UnknownValue {
                column: "status",
                value: s.to_owned(),
            }),
        }
    }
}

impl FromStr for RunType {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "compensation" => Ok(Self::Compensation),
            _ => Err(UnknownValue {
                column: "run_type",
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for RunType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why the last failed attempt of a job failed.
///
/// Stored as JSON in the optional `last_failure` column, which the DDL of
/// [`migrate`](crate::migrate) creates. A table made without that column
/// works, and its jobs report no failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// Index of the step (or of the step whose compensation) that failed.
    pub step: i32,
    /// Name of that step, as the process declared it.
    pub step_name: String,
    /// The run the failure happened in.
    pub run_type: RunType,
    /// The attempt number within that run type (`exec_count` or
    /// `comp_count` at the time).
    pub attempt: i32,
    /// What failed: the error's display text, or the panic message.
    pub message: String,
    /// How the step failed.
    pub kind: FailureKind,
}

/// How a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The step returned a retryable error.
    Error,
    /// The step returned a permanent error: no retry.
    Permanent,
    /// The step panicked.
    Panic,
    /// The attempt ran past the execution timeout.
    Timeout,
    /// The step exited early as error.
    EarlyExit,
    /// The stored job data did not deserialize: no retry.
    Data,
    /// An operator cancelled the job.
    Cancelled,
    /// Attempts stopped without recording an outcome (their executor
    /// crashed or lost the lease) until the attempt limit was spent.
    Abandoned,
}

/// One stored job, as read back from the table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// Primary key, from [`JobData::job_id`].
    pub job_id: String,
    /// The job data as stored: JSON text.
    pub job_data: String,
    /// The process the job belongs to.
    pub process_id: String,
    /// Fencing token of the current or last attempt; empty before the first.
    pub token: String,
    /// Last heartbeat of the current or last attempt (database clock).
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When the current lease ends (database clock); `None` when released.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Where the job stands.
    pub status: JobStatus,
    /// The step to run next (normal run) or compensate next (compensation
    /// run); `-1` once fully compensated.
    pub next_step: i32,
    /// Which kind of run the job is in.
    pub run_type: RunType,
    /// Tokens of the attempts that started work, oldest first, bounded.
    pub tokens: Vec<String>,
    /// Attempts of normal runs, for the whole job.
    pub exec_count: i32,
    /// Attempts of compensation runs.
    pub comp_count: i32,
    /// When the job was registered.
    pub created_at: DateTime<Utc>,
    /// The job is not claimed before this time.
    pub start_after: DateTime<Utc>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// Why the last failed attempt failed; `None` when none failed, or when
    /// the table has no `last_failure` column.
    pub last_failure: Option<Failure>,
}

impl Job {
    /// Deserializes the stored job data.
    ///
    /// # Errors
    ///
    /// The JSON error when the stored text does not deserialize as `D`.
    pub fn data<D: JobData>(&self) -> Result<D, serde_json::Error> {
        serde_json::from_str(&self.job_data)
    }
}

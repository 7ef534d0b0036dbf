//! What a step gets and what it returns.

use std::error::Error as StdError;
use std::fmt;

use tokio_util::sync::CancellationToken;

use crate::error::SaveError;
use crate::job::{JobData, RunType};
use crate::storage::Store;

/// What a step or compensation returns.
///
/// `?` works on any error that implements [`std::error::Error`]: it becomes a
/// retryable [`StepError`].
pub type StepResult = Result<StepOutcome, StepError>;

/// How a step that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepOutcome {
    /// The step did its work: the data and the next step index are persisted
    /// in one statement, and the attempt goes on with the next step. After the
    /// last step (or, in a compensation run, after step 0's compensation) the
    /// job ends `done` (or `compensated`).
    Success,
    /// End the job as `done` now; later steps never run and nothing is
    /// compensated. In a compensation run, end it as `compensated` now.
    EarlyExitDone,
    /// End the job as `error` now, with the reason recorded; nothing is
    /// compensated.
    EarlyExitError {
        /// Why the step gave up; stored as the job's last failure.
        reason: String,
    },
}

impl StepOutcome {
    /// An [`EarlyExitError`](StepOutcome::EarlyExitError) with this reason.
    pub fn early_exit_error(reason: impl Into<String>) -> Self {
        Self::EarlyExitError {
            reason: reason.into(),
        }
    }
}

/// A failed step: retryable unless made [`permanent`](StepError::permanent).
///
/// A retryable failure releases the job, which is retried after a backoff
/// while attempts remain, then compensated. A permanent failure (a declined
/// card) skips the retries and goes straight to compensation.
///
/// `StepError` deliberately does not implement [`std::error::Error`], so that
/// it can convert from every type that does, which is what lets `?` work in a
/// step.
pub struct StepError {
    permanent: bool,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl StepError {
    /// A retryable failure caused by `error`.
    pub fn retry(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self {
            permanent: false,
            source: error.into(),
        }
    }

    /// A permanent failure caused by `error`: no retry, compensation now.
    pub fn permanent(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self {
            permanent: true,
            source: error.into(),
        }
    }

    /// Whether this failure skips the remaining retries.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The error that caused the failure.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// The failure message stored with the job: the error and its sources.
    pub(crate) fn message(&self) -> String {
        let mut message = self.source.to_string();
        let mut next = self.source.source();
        while let Some(cause) = next {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            next = cause.source();
        }
        message
    }
}

impl<E> From<E> for StepError
where
    E: StdError + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("permanent", &self.permanent)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// What the runtime tells a step about the attempt running it.
///
/// Besides the attempt's identity, the context carries its cancellation
/// signal and a way to persist the job data before the step returns.
#[derive(Debug)]
pub struct StepContext {
    pub(crate) job_id: String,
    pub(crate) step: usize,
    pub(crate) step_name: &'static str,
    pub(crate) run_type: RunType,
    pub(crate) attempt: i32,
    pub(crate) token: String,
    pub(crate) cancel: CancellationToken,
    pub(crate) store: Store,
}

impl StepContext {
    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Index of the step being run (or compensated), from 0.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Name of the step being run (or compensated).
    pub fn step_name(&self) -> &'static str {
        self.step_name
    }

    /// Whether this is a normal or a compensation run.
    pub fn run_type(&self) -> RunType {
        self.run_type
    }

    /// The attempt number within the run type, from 1: `exec_count` in a
    /// normal run, `comp_count` in a compensation run.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// The attempt's fencing token, unique per attempt. Useful as an
    /// idempotency key towards other systems.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the attempt has been cancelled: its lease was lost, the
    /// execution timeout passed or the executor is shutting down.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the attempt is cancelled.
    ///
    /// A step that does long work can race this against it and return early.
    /// The runtime does not rely on it: a cancelled attempt's step future is
    /// dropped at its next await point and its writes are fenced.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Persists `data` now, without moving to the next step.
    ///
    /// What a step saves survives a later failure of the same attempt: the
    /// retry sees the saved data. Data changed but not saved is discarded when
    /// the step fails. The write is fenced by the attempt's token.
    ///
    /// # Errors
    ///
    /// [`SaveError::LeaseLost`] when the attempt no longer holds the job,
    /// [`SaveError::Serialize`] when the data does not serialize,
    /// [`SaveError::Database`] when the write failed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, the save may or may not have landed.
    pub async fn save<D: JobData>(&self, data: &D) -> Result<(), SaveError> {
        let text = serde_json::to_string(data).map_err(SaveError::Serialize)?;
        if self
            .store
            .job_save(&self.job_id, &self.token, &text)
            .await?
        {
            Ok(())
        } else {
            Err(SaveError::LeaseLost {
                job_id: self.job_id.clone(),
            })
        }
    }
}

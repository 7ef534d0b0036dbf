//! Execute-and-wait: register a job already claimed by the caller and run
//! its first attempt in the caller's task.

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::attempt::Attempt;
use super::claim::attempt_span;
use super::commit::Writer;
use super::heartbeat::{self, Leases};
use super::Executor;
use crate::client::prepare;
use crate::error::{ExecuteError, RegisterError};
use crate::job::{Failure, Job, JobStatus, RunType};
use crate::process::Process;
use crate::storage::Claimed;

/// Where a job stands after [`Executor::execute_and_wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every step succeeded, or one exited early as done.
    Done,
    /// The job failed and its compensations ran; `failure` is why.
    Compensated {
        /// The last failure, when the table stores failures.
        failure: Option<Failure>,
    },
    /// The job ended in `error`.
    Error {
        /// The last failure, when the table stores failures.
        failure: Option<Failure>,
    },
    /// The attempt did not finish the job: it failed and will be retried
    /// (or its compensation will be), or it lost its lease. Running
    /// executors of the process finish it.
    WillRetry {
        /// The run the job is in now.
        run_type: RunType,
        /// The last failure, when the table stores failures.
        failure: Option<Failure>,
    },
}

/// What [`Executor::execute_and_wait`] returns: the job's latest stored data,
/// its outcome and the full row.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Executed<D> {
    /// The job data as last stored.
    pub data: D,
    /// Where the job stands.
    pub outcome: Outcome,
    /// The row as read back after the attempt.
    pub job: Job,
}

impl<P: Process> Executor<P> {
    /// Registers `data` as a job claimed by the caller, runs its first
    /// attempt in the caller's task, and returns the latest stored data with
    /// the outcome.
    ///
    /// The insert counts the attempt and takes the lease, so a crash right
    /// after it leaves a job that an executor picks up once the lease runs
    /// out. The attempt renews its own lease while it runs, whether or not
    /// the executor was started, and is bounded by the execution timeout.
    /// When it fails with attempts left, the outcome is
    /// [`Outcome::WillRetry`] and running executors finish the job later.
    /// Compensation, when due, runs within the same attempt.
    ///
    /// # Errors
    ///
    /// [`ExecuteError::Schema`] when the table does not validate;
    /// [`ExecuteError::Register`] when the job could not be registered
    /// (nothing was written); [`ExecuteError::Database`] or
    /// [`ExecuteError::Vanished`] when the job ran but could not be read
    /// back.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped mid-way, the job is registered and its
    /// attempt stops; an executor resumes it after the lease.
    pub async fn execute_and_wait(
        &self,
        data: &P::Data,
    ) -> Result<Executed<P::Data>, ExecuteError> {
        let store = self.store().await?;
        let (job_id, text) = prepare(data)?;
        let token = format!("{}0", self.token_prefix());
        let config = &self.shared.config;
        let inserted = store
            .job_insert_claimed(&job_id, &text, P::ID, &token, config.lease_duration)
            .await
            .map_err(|source| RegisterError::Database {
                job_id: job_id.clone(),
                source,
            })?;
        if !inserted {
            return Err(RegisterError::DuplicateJobId { job_id }.into());
        }

        let claimed = Claimed {
            job_id: job_id.clone(),
            job_data: text,
            token: token.clone(),
            next_step: 0,
            run_type: RunType::Normal,
            exec_count: 1,
            comp_count: 0,
        };
        let span = attempt_span::<P>(&claimed);
        let cancel = CancellationToken::new();
        let leases = Leases::default();
        leases.insert(&token, &job_id, cancel.clone());
        let writer = Writer::Direct(store.clone());
        let attempt = Attempt {
            process: &self.shared.process,
            config,
            store,
            writer: &writer,
            cancel,
            slot: None,
        };
        let stop_heartbeat = CancellationToken::new();
        let renew = heartbeat::run(
            store.clone(),
            &leases,
            config.heartbeat_interval,
            config.lease_duration,
            config.max_heartbeat_failures,
            stop_heartbeat.clone(),
        );
        let run = async {
            let end = attempt.run(claimed).await;
            stop_heartbeat.cancel();
            end
        };
        let (end, ()) = tokio::join!(run.instrument(span), renew);
        tracing::debug!(job_id, ?end, "execute-and-wait attempt ended");

        let job = match store.job_get(&job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => return Err(ExecuteError::Vanished { job_id }),
            Err(crate::error::ReadError::Database(source)) => {
                return Err(ExecuteError::Database { job_id, source })
            }
            Err(error @ crate::error::ReadError::Corrupt { .. }) => {
                return Err(ExecuteError::Corrupt {
                    job_id,
                    source: error,
                })
            }
        };
        let data = job
            .data::<P::Data>()
            .map_err(|source| ExecuteError::Deserialize {
                job_id: job_id.clone(),
                source,
            })?;
        let failure = job.last_failure.clone();
        let outcome = match job.status {
            JobStatus::Done => Outcome::Done,
            JobStatus::Compensated => Outcome::Compensated { failure },
            JobStatus::Error => Outcome::Error { failure },
            JobStatus::Ready => Outcome::WillRetry {
                run_type: job.run_type,
                failure,
            },
        };
        Ok(Executed { data, outcome, job })
    }
}

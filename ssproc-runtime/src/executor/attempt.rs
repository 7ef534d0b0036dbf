//! One attempt: run a claimed job's steps (or compensations) until it ends,
//! fails, or loses its lease.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::claim::WorkerSlot;
use super::commit::Writer;
use crate::backoff::retry_delay;
use crate::config::ExecutorConfig;
use crate::job::{Failure, FailureKind, JobStatus, RunType};
use crate::process::{Process, StepFuture};
use crate::step::{StepContext, StepOutcome};
use crate::storage::{Claimed, Store, Transition};

/// How an attempt ended, from the executor's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The job reached a terminal status.
    Terminal(JobStatus),
    /// The job was released for a retry after this backoff.
    Retry(Duration),
    /// The attempt was cancelled, or a write found the lease gone; the job
    /// was not moved by this attempt's last step.
    Stopped,
    /// A write failed; the job stays as it was and is retried after its lease.
    WriteFailed,
}

/// Everything one attempt needs besides the process.
pub(crate) struct Attempt<'a, P: Process> {
    pub(crate) process: &'a P,
    pub(crate) config: &'a ExecutorConfig,
    pub(crate) store: &'a Store,
    pub(crate) writer: &'a Writer,
    pub(crate) cancel: CancellationToken,
    /// The worker this attempt runs on; `None` for execute-and-wait, which
    /// runs in the caller's task.
    pub(crate) slot: Option<&'a WorkerSlot>,
}

/// How one step or compensation call ended.
enum Call {
    Outcome(StepOutcome),
    Failed { kind: FailureKind, message: String },
    Cancelled,
}

impl<P: Process> Attempt<'_, P> {
    /// Runs `job` until the attempt ends.
    pub(crate) async fn run(&self, job: Claimed) -> End {
        let deadline = Instant::now() + self.config.execution_timeout;
        let mut data: P::Data = match serde_json::from_str(&job.job_data) {
            Ok(data) => data,
            Err(error) => {
                let failure =
                    self.failure(&job, job.next_step, FailureKind::Data, error.to_string());
                return self.give_up(&job, None, job.next_step, &failure).await;
            }
        };
        match job.run_type {
            RunType::Normal => self.run_forward(&job, &mut data, deadline).await,
            RunType::Compensation => {
                let attempt = job.comp_count;
                self.run_backward(&job, &mut data, job.next_step, attempt, deadline)
                    .await
            }
        }
    }

    async fn run_forward(&self, job: &Claimed, data: &mut P::Data, deadline: Instant) -> End {
        let steps = P::STEPS.len();
        let Some(first) = step_index(job.next_step, steps) else {
            let message = format!("next step {} is outside the {steps} steps", job.next_step);
            let failure = self.failure(job, job.next_step, FailureKind::Data, message);
            return self.give_up(job, None, job.next_step, &failure).await;
        };
        if job.exec_count > self.config.max_exec_count {
            // Earlier attempts died without recording an outcome (a crash,
            // a lost lease): the attempt budget is spent all the same.
            let message = format!("{} attempts started, none finished", job.exec_count - 1);
            let failure = self.failure(job, job.next_step, FailureKind::Abandoned, message);
            return self
                .start_compensation(job, data, first, &failure, deadline)
                .await;
        }

        for step in first..steps {
            let ctx = self.context(job, step, RunType::Normal, job.exec_count);
            let call = match start(|| self.process.run_step(step, &ctx, data)) {
                Ok(future) => self.call(future, deadline).await,
                Err(panicked) => panicked,
            };
            let index = step as i32;
            let (transition, end) = match call {
                Call::Cancelled => return End::Stopped,
                Call::Outcome(StepOutcome::Success) if step + 1 < steps => {
                    let advance = Transition {
                        data: None,
                        next_step: index + 1,
                        status: JobStatus::Ready,
                        run_type: RunType::Normal,
                        bump_comp_count: false,
                        release_after: None,
                        failure: None,
                    };
                    (advance, None)
                }
                Call::Outcome(StepOutcome::Success | StepOutcome::EarlyExitDone) => {
                    let done = terminal(JobStatus::Done, RunType::Normal, index + 1, None);
                    (done, Some(End::Terminal(JobStatus::Done)))
                }
                Call::Outcome(StepOutcome::EarlyExitError { reason }) => {
                    let failure = self.failure(job, index, FailureKind::EarlyExit, reason);
                    tracing::error!(
                        step = P::STEPS[step],
                        error = %failure.message,
                        "job ended in error by its step"
                    );
                    let end = self.finish_error(job, Some(data), index, RunType::Normal, &failure);
                    return end.await;
                }
                Call::Failed { kind, message } => {
                    let failure = self.failure(job, index, kind, message);
                    let exhausted = job.exec_count >= self.config.max_exec_count;
                    if kind == FailureKind::Permanent || exhausted {
                        return self
                            .start_compensation(job, data, step, &failure, deadline)
                            .await;
                    }
                    tracing::info!(step = P::STEPS[step], error = %failure.message, "step failed, will retry");
                    return self
                        .retry(job, index, RunType::Normal, job.exec_count, &failure)
                        .await;
                }
            };
            let text = match self.serialize(job, index, data) {
                Ok(text) => text,
                Err(failure) => return self.give_up(job, None, index, &failure).await,
            };
            let transition = Transition {
                data: Some(text),
                ..transition
            };
            match self.write(job, transition).await {
                Some(()) => {}
                None => return End::Stopped,
            }
            tracing::debug!(step = P::STEPS[step], "step committed");
            if let Some(end) = end {
                return end;
            }
        }
        End::Terminal(JobStatus::Done)
    }

    /// Moves a job whose normal run has failed for good into compensation,
    /// within this attempt; or into `error` when the process has nothing to
    /// compensate.
    async fn start_compensation(
        &self,
        job: &Claimed,
        data: &mut P::Data,
        step: usize,
        failure: &Failure,
        deadline: Instant,
    ) -> End {
        let index = step as i32;
        if !P::COMPENSATED.iter().any(|&c| c) {
            tracing::error!(step = failure.step_name, error = %failure.message, "job failed, nothing to compensate");
            return self
                .finish_error(job, None, index, RunType::Normal, failure)
                .await;
        }
        tracing::warn!(step = failure.step_name, error = %failure.message, "compensation started");
        // An attempt past its execution timeout hands the compensation to a
        // fresh attempt, with a budget of its own, at once.
        let hand_over = self.cancel.is_cancelled();
        let switch = Transition {
            data: None,
            next_step: index,
            status: JobStatus::Ready,
            run_type: RunType::Compensation,
            bump_comp_count: !hand_over,
            release_after: hand_over.then_some(Duration::ZERO),
            failure: Some(failure.clone()),
        };
        match self.write(job, switch).await {
            Some(()) if hand_over => return End::Retry(Duration::ZERO),
            Some(()) => {}
            None => return End::Stopped,
        }
        // The stored data is what the last successful step saved: compensate
        // from that, not from what the failed step left in memory.
        match serde_json::from_str(&self.reload(job).await) {
            Ok(saved) => *data = saved,
            Err(_) => return End::WriteFailed,
        }
        self.run_backward(job, data, index, job.comp_count + 1, deadline)
            .await
    }

    /// Runs compensations from step `from` down to step 0.
    async fn run_backward(
        &self,
        job: &Claimed,
        data: &mut P::Data,
        from: i32,
        attempt: i32,
        deadline: Instant,
    ) -> End {
        let steps = P::STEPS.len();
        if from < 0 {
            let done = terminal(JobStatus::Compensated, RunType::Compensation, -1, None);
            return self.write_end(job, done, JobStatus::Compensated).await;
        }
        let Some(first) = step_index(from, steps) else {
            let message = format!("next step {from} is outside the {steps} steps");
            let failure = self.failure(job, from, FailureKind::Data, message);
            return self
                .finish_error(job, None, from, RunType::Compensation, &failure)
                .await;
        };
        if !P::COMPENSATED.contains(&true) {
            // Cancelled by an operator: there is nothing to undo.
            let message = "compensation requested, but the process has no compensation";
            let failure = self.failure_in(
                RunType::Compensation,
                attempt,
                from,
                FailureKind::Cancelled,
                message.to_owned(),
            );
            return self
                .finish_error(job, None, from, RunType::Compensation, &failure)
                .await;
        }
        if attempt > self.config.max_comp_count {
            let message = format!(
                "{} compensation attempts started, none finished",
                attempt - 1
            );
            let failure = self.failure_in(
                RunType::Compensation,
                attempt,
                from,
                FailureKind::Abandoned,
                message,
            );
            tracing::error!(error = %failure.message, "compensation failed for good");
            return self
                .finish_error(job, None, from, RunType::Compensation, &failure)
                .await;
        }

        let mut step = next_compensated::<P>(first + 1);
        while let Some(current) = step {
            let index = current as i32;
            let ctx = self.context(job, current, RunType::Compensation, attempt);
            let call = match start(|| self.process.run_compensation(current, &ctx, data)) {
                Ok(Some(future)) => self.call(future, deadline).await,
                Ok(None) => {
                    step = next_compensated::<P>(current);
                    continue;
                }
                Err(panicked) => panicked,
            };
            let (status, next) = match call {
                Call::Cancelled => return End::Stopped,
                Call::Outcome(StepOutcome::Success) => match next_compensated::<P>(current) {
                    Some(lower) => (JobStatus::Ready, lower as i32),
                    None => (JobStatus::Compensated, -1),
                },
                Call::Outcome(StepOutcome::EarlyExitDone) => (JobStatus::Compensated, index - 1),
                Call::Outcome(StepOutcome::EarlyExitError { reason }) => {
                    let failure = self.failure_in(
                        RunType::Compensation,
                        attempt,
                        index,
                        FailureKind::EarlyExit,
                        reason,
                    );
                    tracing::error!(
                        step = P::STEPS[current],
                        error = %failure.message,
                        "job ended in error by its compensation"
                    );
                    let end =
                        self.finish_error(job, Some(data), index, RunType::Compensation, &failure);
                    return end.await;
                }
                Call::Failed { kind, message } => {
                    let failure =
                        self.failure_in(RunType::Compensation, attempt, index, kind, message);
                    if attempt >= self.config.max_comp_count {
                        tracing::error!(step = P::STEPS[current], error = %failure.message, "compensation failed for good");
                        return self
                            .finish_error(job, None, index, RunType::Compensation, &failure)
                            .await;
                    }
                    tracing::info!(step = P::STEPS[current], error = %failure.message, "compensation failed, will retry");
                    return self
                        .retry(job, index, RunType::Compensation, attempt, &failure)
                        .await;
                }
            };
            let text = match self.serialize(job, index, data) {
                Ok(text) => text,
                Err(failure) => {
                    return self
                        .finish_error(job, None, index, RunType::Compensation, &failure)
                        .await
                }
            };
            let transition = match status {
                JobStatus::Ready => Transition {
                    data: Some(text),
                    next_step: next,
                    status,
                    run_type: RunType::Compensation,
                    bump_comp_count: false,
                    release_after: None,
                    failure: None,
                },
                _ => terminal(status, RunType::Compensation, next, Some(text)),
            };
            if self.write(job, transition).await.is_none() {
                return End::Stopped;
            }
            tracing::debug!(step = P::STEPS[current], "compensation committed");
            if status != JobStatus::Ready {
                return End::Terminal(status);
            }
            step = Some(next as usize);
        }
        let done = terminal(JobStatus::Compensated, RunType::Compensation, -1, None);
        self.write_end(job, done, JobStatus::Compensated).await
    }

    /// Runs one step future with the attempt's cancellation, the execution
    /// deadline, and panic capture.
    async fn call(&self, future: StepFuture<'_>, deadline: Instant) -> Call {
        let guarded = AssertUnwindSafe(future).catch_unwind();
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Call::Cancelled,
            () = tokio::time::sleep_until(deadline) => {
                self.cancel.cancel();
                let timeout = self.config.execution_timeout;
                Call::Failed {
                    kind: FailureKind::Timeout,
                    message: format!("attempt ran past its execution timeout of {timeout:?}"),
                }
            }
            result = guarded => match result {
                Ok(Ok(outcome)) => Call::Outcome(outcome),
                Ok(Err(error)) => Call::Failed {
                    kind: if error.is_permanent() { FailureKind::Permanent } else { FailureKind::Error },
                    message: error.message(),
                },
                Err(panic) => panicked(&*panic),
            },
        }
    }

    fn context(&self, job: &Claimed, step: usize, run_type: RunType, attempt: i32) -> StepContext {
        StepContext {
            job_id: job.job_id.clone(),
            step,
            step_name: P::STEPS[step],
            run_type,
            attempt,
            token: job.token.clone(),
            cancel: self.cancel.clone(),
            store: self.store.clone(),
        }
    }

    /// A failure of the attempt that claimed `job`, counted in its run type.
    fn failure(&self, job: &Claimed, step: i32, kind: FailureKind, message: String) -> Failure {
        let attempt = match job.run_type {
            RunType::Normal => job.exec_count,
            RunType::Compensation => job.comp_count,
        };
        self.failure_in(job.run_type, attempt, step, kind, message)
    }

    fn failure_in(
        &self,
        run_type: RunType,
        attempt: i32,
        step: i32,
        kind: FailureKind,
        message: String,
    ) -> Failure {
        Failure {
            step,
            step_name: super::step_name::<P>(step).to_owned(),
            run_type,
            attempt,
            message,
            kind,
        }
    }

    fn serialize(&self, job: &Claimed, step: i32, data: &P::Data) -> Result<String, Failure> {
        serde_json::to_string(data).map_err(|error| {
            let message = format!("job data no longer serializes: {error}");
            self.failure(job, step, FailureKind::Data, message)
        })
    }

    /// Releases the job for another attempt after the backoff.
    async fn retry(
        &self,
        job: &Claimed,
        step: i32,
        run_type: RunType,
        attempt: i32,
        failure: &Failure,
    ) -> End {
        let delay = retry_delay(
            self.config.retry_backoff_base,
            self.config.retry_backoff_max,
            attempt,
        );
        let release = Transition {
            data: None,
            next_step: step,
            status: JobStatus::Ready,
            run_type,
            bump_comp_count: false,
            release_after: Some(delay),
            failure: Some(failure.clone()),
        };
        match self.write(job, release).await {
            Some(()) => End::Retry(delay),
            None => End::Stopped,
        }
    }

    /// Ends the job in `error` for a reason no retry can fix.
    async fn give_up(
        &self,
        job: &Claimed,
        data: Option<&P::Data>,
        step: i32,
        failure: &Failure,
    ) -> End {
        tracing::error!(error = %failure.message, "job failed for good");
        self.finish_error(job, data, step, job.run_type, failure)
            .await
    }

    async fn finish_error(
        &self,
        job: &Claimed,
        data: Option<&P::Data>,
        step: i32,
        run_type: RunType,
        failure: &Failure,
    ) -> End {
        let text = data.and_then(|data| serde_json::to_string(data).ok());
        let mut transition = terminal(JobStatus::Error, run_type, step, text);
        transition.failure = Some(failure.clone());
        self.write_end(job, transition, JobStatus::Error).await
    }

    async fn write_end(&self, job: &Claimed, transition: Transition, status: JobStatus) -> End {
        match self.write(job, transition).await {
            Some(()) => End::Terminal(status),
            None => End::Stopped,
        }
    }

    /// Applies a fenced write. `None` when the attempt must stop: the lease
    /// is gone, or the write failed (the lease then runs out and another
    /// attempt takes over from the last committed step).
    async fn write(&self, job: &Claimed, transition: Transition) -> Option<()> {
        let last = transition.status != JobStatus::Ready || transition.release_after.is_some();
        if let (true, Some(slot)) = (last, self.slot) {
            slot.release_early();
        }
        match self.writer.apply(&job.job_id, &job.token, transition).await {
            Ok(true) => Some(()),
            Ok(false) => {
                tracing::warn!("lease lost, attempt stopped");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "job write failed, attempt stopped");
                None
            }
        }
    }

    /// The job data as stored now; the claimed text when it cannot be read.
    async fn reload(&self, job: &Claimed) -> String {
        match self.store.job_get(&job.job_id).await {
            Ok(Some(stored)) => stored.job_data,
            _ => job.job_data.clone(),
        }
    }
}

/// A write that ends the job in `status`.
fn terminal(
    status: JobStatus,
    run_type: RunType,
    next_step: i32,
    data: Option<String>,
) -> Transition {
    Transition {
        data,
        next_step,
        status,
        run_type,
        bump_comp_count: false,
        release_after: None,
        failure: None,
    }
}

/// The highest step below `below` that has a compensation.
fn next_compensated<P: Process>(below: usize) -> Option<usize> {
    (0..below.min(P::COMPENSATED.len()))
        .rev()
        .find(|&step| P::COMPENSATED[step])
}

/// `index` as a step position when it names one of `steps` steps.
fn step_index(index: i32, steps: usize) -> Option<usize> {
    usize::try_from(index).ok().filter(|&index| index < steps)
}

/// Calls a dispatch method of the process, catching a panic: a process
/// written by hand may panic before it returns its future.
fn start<T>(dispatch: impl FnOnce() -> T) -> Result<T, Call> {
    catch_unwind(AssertUnwindSafe(dispatch)).map_err(|panic| panicked(&*panic))
}

/// A step that panicked, as a failure of its attempt.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Call {
    Call::Failed {
        kind: FailureKind::Panic,
        message: panic_message(panic),
    }
}

/// The message of a caught panic: its `&str` or `String` payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        format!("panicked: {message}")
    } else if let Some(message) = panic.downcast_ref::<String>() {
        format!("panicked: {message}")
    } else {
        "panicked with a non-string payload".to_owned()
    }
}

/// Durations in logs are whole milliseconds.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

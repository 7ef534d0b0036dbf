//! The process contract: what `#[process]` implements.

use std::future::Future;
use std::pin::Pin;

use sqlx::PgPool;

use crate::config::{ExecutorConfig, JobTable};
use crate::error::{ConfigError, StartError};
use crate::executor::{Executor, ExecutorHandle};
use crate::job::JobData;
use crate::step::{StepContext, StepResult};

/// The future of one step or compensation, borrowing the process, the
/// context and the data.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;

/// A multi-step process: steps run in order, each with an optional
/// compensation.
///
/// `#[process]` implements this trait for an annotated impl block. By hand,
/// the runtime needs the id, the step names in order, which steps have a
/// compensation, and two dispatch methods on the persisted step index:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// # use ssproc_runtime as ssproc;
/// use ssproc::{JobData, Process, StepContext, StepFuture, StepOutcome};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greeting {
///     id: String,
/// }
///
/// impl JobData for Greeting {
///     fn job_id(&self) -> String {
///         self.id.clone()
///     }
/// }
///
/// struct Greeter;
///
/// impl Greeter {
///     async fn greet(&self, _ctx: &StepContext, _data: &mut Greeting) -> ssproc::StepResult {
///         Ok(StepOutcome::Success)
///     }
/// }
///
/// impl Process for Greeter {
///     type Data = Greeting;
///     const ID: &'static str = "greeter";
///     const STEPS: &'static [&'static str] = &["greet"];
///     const COMPENSATED: &'static [bool] = &[false];
///
///     fn run_step<'a>(
///         &'a self,
///         step: usize,
///         ctx: &'a StepContext,
///         data: &'a mut Greeting,
///     ) -> StepFuture<'a> {
///         match step {
///             0 => Box::pin(self.greet(ctx, data)),
///             _ => Box::pin(async move { Err(ssproc::step_out_of_range(step)) }),
///         }
///     }
///
///     fn run_compensation<'a>(
///         &'a self,
///         step: usize,
///         _ctx: &'a StepContext,
///         _data: &'a mut Greeting,
///     ) -> Option<StepFuture<'a>> {
///         let _ = step;
///         None
///     }
/// }
/// ```
pub trait Process: Send + Sync + 'static {
    /// The job data every step receives.
    type Data: JobData;

    /// The process id, stored in `process_id`. Executors only claim jobs of
    /// their own process id.
    const ID: &'static str;

    /// The step names in execution order. A job's `next_subprocess` is an
    /// index into this list, so reordering or removing steps moves open jobs.
    const STEPS: &'static [&'static str];

    /// For each step, whether it has a compensation. Same length as
    /// [`STEPS`](Process::STEPS).
    const COMPENSATED: &'static [bool];

    /// Runs step `step`, an index into [`STEPS`](Process::STEPS).
    fn run_step<'a>(
        &'a self,
        step: usize,
        ctx: &'a StepContext,
        data: &'a mut Self::Data,
    ) -> StepFuture<'a>;

    /// Runs the compensation of step `step`, or returns `None` when that step
    /// has none.
    fn run_compensation<'a>(
        &'a self,
        step: usize,
        ctx: &'a StepContext,
        data: &'a mut Self::Data,
    ) -> Option<StepFuture<'a>>;

    /// An executor running this process on `table`, checked but not
    /// started: the same as `Executor::new(pool, table, self, config)`.
    ///
    /// # Errors
    ///
    /// As [`Executor::new`]: any [`ConfigError`] of
    /// [`ExecutorConfig::validate`], and [`ConfigError::EmptyProcessId`],
    /// [`ConfigError::ProcessIdNul`], [`ConfigError::NoSteps`] or
    /// [`ConfigError::CompensationMismatch`] for a process that cannot run.
    fn into_executor(
        self,
        pool: PgPool,
        table: JobTable,
        config: ExecutorConfig,
    ) -> Result<Executor<Self>, ConfigError>
    where
        Self: Sized,
    {
        Executor::new(pool, table, self, config)
    }

    /// Builds an executor running this process on `table` and starts it:
    /// the same as `Executor::new(pool, table, self, config)?.start().await`.
    ///
    /// ```no_run
    /// # use ssproc_runtime as ssproc;
    /// # async fn run<P: ssproc::Process>(pool: sqlx::PgPool, process: P) -> Result<(), ssproc::StartError> {
    /// use ssproc::Process;
    ///
    /// let handle = process
    ///     .spawn_executor(pool, ssproc::JobTable::default(), ssproc::ExecutorConfig::default())
    ///     .await?;
    /// // ... register jobs, serve requests ...
    /// handle.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] for what [`Executor::new`] refuses, and any
    /// other [`StartError`] of [`Executor::start`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Executor::start`]: dropped before it returns,
    /// nothing has been started.
    fn spawn_executor(
        self,
        pool: PgPool,
        table: JobTable,
        config: ExecutorConfig,
    ) -> impl Future<Output = Result<ExecutorHandle, StartError>> + Send
    where
        Self: Sized,
    {
        async move { Executor::new(pool, table, self, config)?.start().await }
    }
}

/// The failure a process returns for a step index it does not have.
///
/// The runtime never asks for one: it checks the persisted index against
/// [`Process::STEPS`] first. Dispatch code needs an answer all the same.
pub fn step_out_of_range(step: usize) -> crate::StepError {
    crate::StepError::permanent(format!("step index {step} out of range"))
}

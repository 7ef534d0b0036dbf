//! The runtime of [ssproc](https://docs.rs/ssproc): job model, storage,
//! client and executor.
//!
//! Applications depend on the `ssproc` crate, which re-exports everything
//! here together with the `#[process]` and `#[derive(JobData)]` macros and
//! holds the user guide.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backoff;
mod cleanup;
mod client;
mod config;
mod error;
mod executor;
mod filter;
mod job;
mod jobs;
mod process;
mod step;
mod storage;

pub use client::{Client, StartAt};
pub use config::{ExecutorConfig, JobTable};
pub use error::{
    AdminError, CleanupError, ConfigError, ExecuteError, ReadError, RegisterError, SaveError,
    SchemaError, StartError,
};
pub use executor::{Executed, Executor, ExecutorHandle, Outcome};
pub use filter::{Cursor, CursorPage, JobFilter, JobPage, TimeRange};
pub use job::{Failure, FailureKind, Job, JobData, JobStatus, RunType, UnknownValue};
pub use jobs::{Jobs, ProcessStats};
pub use process::{step_out_of_range, Process, StepFuture};
pub use step::{StepContext, StepError, StepOutcome, StepResult};
pub use storage::{ddl, migrate, schema_problems, validate_schema};

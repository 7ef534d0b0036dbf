//! Durable multi-step business processes (sagas) on PostgreSQL.
//!
//! An operation that spans several steps (reserve stock, charge a card,
//! ship) must finish even when servers crash halfway, and must be undone
//! cleanly when a step keeps failing. ssproc stores each such operation as a
//! *job* in one PostgreSQL table; *executors* in any number of processes
//! claim jobs through leases in that table, run their *steps* in order,
//! commit progress after every step, retry failures with backoff and, when
//! retries run out, run the *compensations* of the steps already attempted,
//! newest first. PostgreSQL is the only moving part.
//!
//! # A process
//!
//! A process is an impl block whose `#[step]` methods run in declaration
//! order; `#[compensate(step)]` methods undo a step. The job data is a serde
//! type that names its id with `#[job_id]`.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use ssproc::{process, JobData, Process, StepContext, StepError, StepOutcome, StepResult};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, JobData)]
//! struct Order {
//!     #[job_id]
//!     order_id: String,
//!     amount_cents: i64,
//!     charge_id: Option<String>,
//! }
//!
//! struct Fulfilment {
//!     shop: sqlx::PgPool,
//! }
//!
//! #[process(id = "order-fulfilment")]
//! impl Fulfilment {
//!     #[step]
//!     async fn reserve_stock(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
//!         sqlx::query("UPDATE orders SET status = 'reserved' WHERE id = $1")
//!             .bind(&order.order_id)
//!             .execute(&self.shop)
//!             .await?;
//!         Ok(StepOutcome::Success)
//!     }
//!
//!     #[compensate(reserve_stock)]
//!     async fn release_stock(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
//!         sqlx::query("UPDATE orders SET status = 'released' WHERE id = $1")
//!             .bind(&order.order_id)
//!             .execute(&self.shop)
//!             .await?;
//!         Ok(StepOutcome::Success)
//!     }
//!
//!     #[step]
//!     async fn charge(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
//!         if order.amount_cents > 100_000 {
//!             return Err(StepError::permanent("amount over the card limit"));
//!         }
//!         // The token is unique per attempt: a fine idempotency key.
//!         order.charge_id = Some(format!("charge-{}", ctx.token()));
//!         Ok(StepOutcome::Success)
//!     }
//!
//!     #[compensate(charge)]
//!     async fn refund(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
//!         order.charge_id = None;
//!         Ok(StepOutcome::Success)
//!     }
//!
//!     #[step]
//!     async fn ship(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
//!         Ok(StepOutcome::Success)
//!     }
//! }
//!
//! # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! let table = ssproc::JobTable::default();
//! ssproc::migrate(&pool, &table).await?;
//!
//! // `spawn_executor` comes with `#[process]` (through the `Process` trait):
//! // it is `Executor::new(pool, table, process, config)?.start().await`.
//! let process = Fulfilment { shop: pool.clone() };
//! let config = ssproc::ExecutorConfig::default();
//! let handle = process.spawn_executor(pool.clone(), table.clone(), config).await?;
//!
//! let client = ssproc::Client::<Fulfilment>::new(pool.clone(), table);
//! let order = Order { order_id: "o-1".into(), amount_cents: 1999, charge_id: None };
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(&order.order_id).execute(&mut *tx).await?;
//! client.register_in(&mut tx, &order, ssproc::StartAt::Now).await?;
//! tx.commit().await?;
//!
//! // ... serve requests; on the way out:
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The macro checks at compile time that the block has a step, that every
//! compensation names a step of the block and no step has two, that names
//! are unique, and that every signature has the shape above; see
//! [`process`] for the full list and a sketch of the generated code. The
//! [`Process`] trait it implements can also be implemented by hand.
//!
//! # Registering jobs
//!
//! [`Client`] registers jobs of one process: [`Client::register`] now,
//! [`Client::register_at`] with a [`StartAt`] time or delay,
//! [`Client::register_in`] on your own connection or transaction, and
//! [`Client::register_many`] for a batch in one statement. Registration
//! inside your transaction is atomic with it: rolled back, the job never
//! existed; committed, a notification sent in the same transaction wakes the
//! executors at once. A duplicate id is
//! [`RegisterError::DuplicateJobId`], and leaves the first job untouched.
//!
//! [`Executor::execute_and_wait`] registers a job already claimed by the
//! caller, runs its first attempt in the caller's task and returns the
//! latest stored data with an [`Outcome`]. It validates the table, but does
//! not check the step list as [`Executor::start`] does: start an executor of
//! the process (as you need one anyway for retries) to have it checked.
//!
//! # How a step ends
//!
//! | a step returns | the job |
//! | --- | --- |
//! | `Ok(StepOutcome::Success)` | data and next step committed in one statement; after the last step, `done` |
//! | `Err(error)`, or `?` on any error, or a panic | retried after a backoff while attempts remain, then compensated |
//! | `Err(StepError::permanent(..))` | compensated now, without retries |
//! | `Ok(StepOutcome::EarlyExitDone)` | `done` now; later steps never run |
//! | `Ok(StepOutcome::EarlyExitError { .. })` | `error` now; nothing is compensated |
//!
//! A step sees the data as the previous step committed it. Changes a failed
//! step made are discarded, unless it saved them with
//! [`StepContext::save`].
//!
//! # Retries and compensation
//!
//! `exec_count` counts the attempts of a job's normal run, whole job, not
//! per step. After [`ExecutorConfig::max_exec_count`] attempts, or at once
//! on a permanent failure, the job switches to its compensation run within
//! the same attempt: compensations run from the failed step itself (its
//! effect may have partly applied) down to step 0, skipping steps that have
//! none. A compensation that keeps failing ends the job in `error` after
//! [`ExecutorConfig::max_comp_count`] attempts; one that succeeds all the
//! way ends it `compensated`. A process with no compensation at all goes
//! to `error` when its attempts run out. The delay before a retry doubles
//! per attempt from [`ExecutorConfig::retry_backoff_base`], with jitter, up
//! to [`ExecutorConfig::retry_backoff_max`]. The reason of the last failure
//! is stored with the job ([`Job::last_failure`]).
//!
//! Stored data that no longer deserializes into the job data type (a field
//! renamed without `#[serde(alias)]`, say) ends the job in `error` at once,
//! with a [`FailureKind::Data`] reason naming the serde error: no retry can
//! change it, and no compensation can run without the data it reads. Fix
//! the type or the row, then retry the job ([`Jobs::retry`]).
//!
//! # Leases, heartbeats and fencing
//!
//! A job is being executed when its row is `ready` and its lease, set from
//! the database clock, has not run out. Each attempt gets a fresh token and
//! every write it makes is fenced by that token: once another executor has
//! taken the job over, the stale attempt's next write matches no row, and it
//! stops before its next step. Executors renew all their leases in one
//! statement every [`ExecutorConfig::heartbeat_interval`]; an attempt whose
//! job is missing from the renewal, or whose heartbeats keep failing, is
//! cancelled ([`StepContext::cancelled`]). An executor that crashes loses
//! nothing: its jobs are claimed again once their leases run out, from the
//! last committed step. Steps therefore run *at least once*; make them
//! idempotent, for example with [`StepContext::token`] or the job id as an
//! idempotency key.
//!
//! # Batching and what each batch guarantees
//!
//! An executor claims at most as many jobs as it has idle workers, in one
//! statement. The step outcomes of its workers are written by one committer
//! in one statement per batch, with up to three such statements in flight
//! at once: while they are, the next batch gathers, with no timer, so a lone
//! write goes out at once. Each attempt waits for the answer about its own
//! row before it runs its next step, so progress is durable per step exactly
//! as with one statement per step; a batch only shares the commit. An
//! attempt whose last write (the job's end, or its release for a retry) is
//! queued hands its worker back at once, so the next claim overlaps that
//! commit; the job stays leased and heartbeated until the write lands, and
//! at most as many attempts as there are workers wait so. Each row of a
//! batch is fenced by its own
//! token; when the database refuses a batch, its writes are retried one by
//! one, so one bad row cannot fail the others, and when it cannot be
//! reached they all fail at once (each attempt stops; its job goes on from
//! its last committed step once the lease runs out). A batch carries at
//! most 64 MiB of job data. [`Client::register_many`] writes all its jobs
//! or none.
//!
//! The executor's connections come from the pool you pass in: one for
//! notifications, held for as long as the executor runs, and at the same
//! time up to one each for claiming, heartbeats and cleanup and up to three
//! for batch writes, besides what your steps take. Size the pool for that
//! (sqlx's default of 10 leaves room for a few connections of your own),
//! or heartbeats may wait for a connection past their lease.
//!
//! # Shutdown
//!
//! [`ExecutorHandle::shutdown`] stops claiming at once, waits up to
//! [`ExecutorConfig::shutdown_grace_period`] for running attempts, then
//! cancels the rest and releases their leases, so other executors continue
//! those jobs at once. [`ExecutorHandle::stop_claiming`] is its first half
//! alone, for a service that stops taking work before it drains.
//!
//! # The table
//!
//! [`migrate`] creates the table (under any schema and table name, see
//! [`JobTable`]) with its indexes; [`ddl`] returns the SQL for your own
//! migration tool. The table has the shape of the Go library ssproc descends
//! from, plus an optional `last_failure` column and a small
//! `<table>_processes` table recording each process's step names. A table
//! made from the Go library's DDL alone works, without failure reasons and
//! step-list checks. [`Executor::start`] validates the table and refuses to
//! start with a [`SchemaError`] naming `schema.table`, the column or index,
//! and what was expected and found. It also refuses a changed step list that
//! would move open jobs to other steps ([`StartError::StepsChanged`]):
//! `next_subprocess` is an index into the step list.
//!
//! # Operations
//!
//! [`Jobs`] is the operator's handle: filtered listing ([`JobFilter`]) in
//! pages with totals or by cursor, statistics, and the actions retry,
//! cancel and delete. Reads can go to replica pools. Executors delete old
//! `done` and `compensated` jobs when cleanup is enabled; [`Jobs::cleanup`]
//! does the same once, on demand.
//!
//! # Errors
//!
//! Each failure domain has its own `#[non_exhaustive]` enum whose variants
//! carry the data to act on: [`ConfigError`] (at construction),
//! [`SchemaError`] and [`StartError`] (at start), [`RegisterError`],
//! [`ExecuteError`], [`SaveError`], [`ReadError`], [`AdminError`] and
//! [`CleanupError`].
//!
//! # Logging
//!
//! ssproc logs through [`tracing`](https://docs.rs/tracing) and installs no
//! subscriber. Events carry fields (`job_id`, `process_id`, `step`,
//! `run_type`, `attempt`, `token`, `error`, `count`); every attempt runs in
//! a span `ssproc.attempt` with the job's fields, so events your steps emit
//! carry them too. Job data is never logged. Levels: `error` when a job ends
//! in `error`; `warn` when compensation starts, a lease is lost or a
//! heartbeat, claim or cleanup fails and will be retried; `info` when an
//! executor starts or stops, a step failed and will be retried, or cleanup
//! deleted rows; `debug` for claims and commits; `trace` for polls.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[doc(inline)]
pub use ssproc_runtime::*;

/// A process written with the macros, and the executor that runs it:
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use ssproc::{process, JobData, Process, StepContext, StepOutcome, StepResult};
///
/// #[derive(Debug, Clone, Serialize, Deserialize, JobData)]
/// struct Order {
///     #[job_id]
///     order_id: String,
///     amount_cents: i64,
/// }
///
/// struct Fulfilment;
///
/// #[process(id = "order-fulfilment")]
/// impl Fulfilment {
///     #[step]
///     async fn reserve_stock(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
///         Ok(StepOutcome::Success)
///     }
///
///     #[compensate(reserve_stock)]
///     async fn release_stock(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
///         Ok(StepOutcome::Success)
///     }
///
///     #[step]
///     async fn charge(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
///         if order.amount_cents <= 0 {
///             return Ok(StepOutcome::early_exit_error("nothing to charge"));
///         }
///         Ok(StepOutcome::Success)
///     }
/// }
///
/// assert_eq!(Fulfilment::STEPS, ["reserve_stock", "charge"]);
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// // The process value builds and starts the executor that runs its jobs;
/// // by hand: `ssproc::Executor::new(pool, table, Fulfilment, config)?.start().await`.
/// use ssproc::Process;
/// let table = ssproc::JobTable::default();
/// let config = ssproc::ExecutorConfig::default();
/// let handle = Fulfilment.spawn_executor(pool, table, config).await?;
/// // ... register jobs, serve requests ...
/// handle.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[doc(inline)]
pub use ssproc_macros::process;

#[doc(inline)]
pub use ssproc_macros::JobData;

/// Support for code generated by `#[process]` and `#[derive(JobData)]`.
/// Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use ssproc_runtime;

    pub use ssproc_runtime::{step_out_of_range, JobData, Process, StepContext, StepFuture};
    pub use std::boxed::Box;
    pub use std::option::Option::{self, None, Some};
    pub use std::result::Result::Err;
    pub use std::string::String;

    /// The job id of a `#[job_id]` field: its `Display` text. A function
    /// rather than `ToString`, so that a field that does not display gets an
    /// error naming `Display`.
    pub fn display_id<T: ?Sized + std::fmt::Display>(id: &T) -> String {
        id.to_string()
    }
}

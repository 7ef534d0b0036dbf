//! Procedural macros of [ssproc](https://docs.rs/ssproc): `#[process]` and
//! `#[derive(JobData)]`.
//!
//! Do not depend on this crate directly: depend on `ssproc`, which
//! re-exports both macros, holds the runtime their generated code calls, and
//! documents how to register and execute jobs. The generated code names
//! `::ssproc`, so it only compiles where that crate is reachable (or where
//! the `crate` argument points at a re-export of it).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod args;
mod check;
mod diag;
mod expand;
mod job_data;
mod model;

use proc_macro::TokenStream;

/// Turns an inherent impl block into a process: its `#[step]` methods run
/// in declaration order, and its `#[compensate(step)]` methods undo a step
/// when the process gives up.
///
/// ```text
/// use ssproc::{process, StepContext, StepOutcome, StepResult};
///
/// struct Fulfilment { /* clients the steps use */ }
///
/// #[process(id = "order-fulfilment")]
/// impl Fulfilment {
///     #[step]
///     async fn reserve_stock(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
///         Ok(StepOutcome::Success)
///     }
///
///     #[compensate(reserve_stock)]
///     async fn release_stock(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
///         Ok(StepOutcome::Success)
///     }
///
///     #[step]
///     async fn charge(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
///         Ok(StepOutcome::Success)
///     }
/// }
/// ```
///
/// The block stays as written, minus the `#[step]` and `#[compensate]`
/// markers, so its methods can still be called directly; other items in it
/// pass through untouched. The type gains an implementation of
/// `ssproc::Process`, and with it the methods that build and start the
/// executor from the value itself:
///
/// ```text
/// use ssproc::Process;
///
/// let handle = Fulfilment { .. }.spawn_executor(pool, table, config).await?;
/// ```
///
/// which is, written by hand:
///
/// ```text
/// let executor = ssproc::Executor::new(pool, table, Fulfilment { .. }, config)?;
/// let handle = executor.start().await?;
/// ```
///
/// (`into_executor(pool, table, config)` stops before `start`.)
///
/// # Arguments
///
/// - `id = "..."` (required): the process id, stored with every job of the
///   process; executors only claim jobs of their own id. A non-empty string
///   literal without NUL characters. Changing it orphans open jobs.
/// - `crate = path` (optional, default `::ssproc`): the path the generated
///   code names the `ssproc` crate by, for crates that re-export it, as in
///   `#[process(id = "billing", crate = my_platform::ssproc)]`.
///
/// # Steps and compensations
///
/// A step or a compensation is a method of this exact shape:
///
/// ```text
/// async fn name(&self, ctx: &ssproc::StepContext, data: &mut Data) -> ssproc::StepResult
/// ```
///
/// The paths may be written in any form that ends in `StepContext` and
/// `StepResult` (or `Result<StepOutcome, StepError>`); argument patterns are
/// free. `Data` is the job data type, which implements `ssproc::JobData`;
/// every step and compensation of the block takes the same one, and it
/// becomes `Process::Data`.
///
/// - `#[step]` marks a step. Its name is the method's name (without `r#`
///   for a raw identifier), and its index is its position among the steps
///   of the block. Jobs store that index, so reordering, inserting or
///   removing steps moves jobs that are under way.
/// - `#[compensate(step)]` marks the compensation of the step named `step`,
///   declared anywhere in the block; `step` may be written plain or raw
///   (`#[compensate(r#move)]`). A step has at most one compensation; steps
///   without one are skipped when compensating.
///
/// # Compile errors
///
/// Every mistake in the block is reported at once, each on the tokens at
/// fault, and the block is still emitted so that the rest of the crate keeps
/// compiling (with a placeholder `Process` implementation where the job data
/// type is known). The errors:
///
/// - on the attribute: a missing `id`; an `id` that is not a string literal,
///   is empty or contains a NUL character; an unknown or repeated argument;
/// - on the item: `#[process]` on anything but an impl block, or on a trait
///   impl (on the trait's path);
/// - on the block's type: no `#[step]` method in the block;
/// - on markers: `#[step]` with arguments; `#[compensate]` without a step
///   name or with something else than one name; a second marker on one
///   method (a duplicate `#[step]`, two `#[compensate]`, or a method that is
///   both a step and a compensation); a marker on something else than a
///   method;
/// - on names: two steps with the same name (on the second); a
///   `#[compensate(x)]` where `x` is no step of the block; a second
///   compensation of one step;
/// - on signatures, for steps and compensations alike: not `async` (on
///   `fn`); `const`, `unsafe` or `extern`; generic parameters or a `where`
///   clause; no receiver or one other than `&self`; missing or extra
///   arguments; a context argument that is not `&StepContext`; job data not
///   taken as `&mut`; a job data type that differs from the first step's; no
///   return type or one other than `StepResult`.
///
/// # Generated code
///
/// For the block above, roughly:
///
/// ```text
/// impl Fulfilment { /* the methods, markers removed */ }
///
/// const _: () = {
///     #[automatically_derived]
///     impl ::ssproc::Process for Fulfilment {
///         type Data = Order;
///         const ID: &'static str = "order-fulfilment";
///         const STEPS: &'static [&'static str] = &["reserve_stock", "charge"];
///         const COMPENSATED: &'static [bool] = &[true, false];
///
///         fn run_step<'a>(&'a self, step: usize, ctx: &'a StepContext, data: &'a mut Order)
///             -> StepFuture<'a>
///         {
///             match step {
///                 0 => Box::pin(Self::reserve_stock(self, ctx, data)),
///                 1 => Box::pin(Self::charge(self, ctx, data)),
///                 _ => Box::pin(async move { Err(step_out_of_range(step)) }),
///             }
///         }
///
///         fn run_compensation<'a>(&'a self, step: usize, ctx: &'a StepContext,
///             data: &'a mut Order) -> Option<StepFuture<'a>>
///         {
///             match step {
///                 0 => Some(Box::pin(Self::release_stock(self, ctx, data))),
///                 _ => None,
///             }
///         }
///     }
/// };
/// ```
///
/// The step futures are boxed as `Send`: a step that holds something not
/// `Send` across an `.await` fails to compile, with the error on its name.
/// Step names in order are readable as `<Fulfilment as Process>::STEPS`.
#[proc_macro_attribute]
pub fn process(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::process(args.into(), item.into()).into()
}

/// Implements `ssproc::JobData` for a struct whose `#[job_id]` field holds
/// the job id.
///
/// ```text
/// #[derive(Debug, Clone, Serialize, Deserialize, JobData)]
/// struct Order {
///     #[job_id]
///     order_id: String,
///     amount_cents: i64,
/// }
/// ```
///
/// The job id is the field's `Display` text, so any type that implements
/// `Display` works (a `String`, a `Uuid`, a number). The struct still needs
/// serde's `Serialize` and `Deserialize`, which `JobData` requires.
///
/// # Attributes
///
/// - `#[job_id]` on exactly one named field: the field holding the job id.
/// - `#[ssproc(crate = path)]` on the struct (optional, default `::ssproc`):
///   the path the generated code names the `ssproc` crate by.
///
/// # Compile errors
///
/// - on the type: derived for an enum, a union, a tuple struct or a unit
///   struct; no field marked `#[job_id]` (on the struct's name);
/// - on the second `#[job_id]` when two fields have one; `#[job_id]` with
///   arguments; a malformed `#[ssproc(...)]`;
/// - on the field's type, from the compiler, when it does not implement
///   `Display`;
/// - from the compiler, when the struct does not implement serde's
///   `Serialize` and `Deserialize`.
///
/// # Generated code
///
/// ```text
/// const _: () = {
///     #[automatically_derived]
///     impl ::ssproc::JobData for Order {
///         fn job_id(&self) -> String {
///             display_id(&self.order_id) // the field's `to_string()`
///         }
///     }
/// };
/// ```
#[proc_macro_derive(JobData, attributes(job_id, ssproc))]
pub fn derive_job_data(input: TokenStream) -> TokenStream {
    job_data::derive(input.into()).into()
}

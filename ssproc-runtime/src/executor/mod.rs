//! The executor: claims jobs of one process, runs them, and keeps their
//! leases alive.

mod attempt;
mod claim;
mod commit;
mod heartbeat;
mod shutdown;
mod steps;
mod wait;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ExecutorConfig, JobTable};
use crate::error::{ConfigError, SchemaError, StartError};
use crate::process::Process;
use crate::storage::{self, is_unreachable, Store};

pub use shutdown::ExecutorHandle;
pub use wait::{Executed, Outcome};

/// Runs jobs of one process: claims due jobs into its workers, runs their
/// steps, renews their leases, retries and compensates.
///
/// Any number of executors, in any number of processes, may run the same
/// process on the same table: they coordinate through leases in the table
/// alone. Cheap to clone; clones share one executor.
///
/// ```no_run
/// # use ssproc_runtime as ssproc;
/// # async fn run<P: ssproc::Process>(pool: sqlx::PgPool, process: P) -> Result<(), Box<dyn std::error::Error>> {
/// let table = ssproc::JobTable::default();
/// ssproc::migrate(&pool, &table).await?;
/// let executor = ssproc::Executor::new(pool, table, process, ssproc::ExecutorConfig::default())?;
/// let handle = executor.start().await?;
/// // ... register jobs, serve requests ...
/// handle.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Executor<P: Process> {
    shared: Arc<Shared<P>>,
}

impl<P: Process> Clone for Executor<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P: Process> std::fmt::Debug for Executor<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("process_id", &P::ID)
            .field("table", &self.shared.table)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// State shared by the executor's tasks.
pub(crate) struct Shared<P: Process> {
    process: P,
    config: ExecutorConfig,
    pool: PgPool,
    table: JobTable,
    /// Set once the schema validated; statements depend on its columns.
    store: OnceCell<Store>,
    /// Random per executor instance, so tokens never repeat across
    /// executors or restarts.
    instance: String,
    batches: AtomicU64,
    running: Arc<AtomicBool>,
}

impl<P: Process> Executor<P> {
    /// An executor for `process` on `table`, checked but not started.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`] from [`ExecutorConfig::validate`], and
    /// [`ConfigError::EmptyProcessId`], [`ConfigError::ProcessIdNul`],
    /// [`ConfigError::NoSteps`] or [`ConfigError::CompensationMismatch`]
    /// for a process that cannot run.
    pub fn new(
        pool: PgPool,
        table: JobTable,
        process: P,
        config: ExecutorConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        validate_process::<P>()?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let shared = Shared {
            process,
            config,
            pool,
            table,
            store: OnceCell::new(),
            instance: instance[..12].to_owned(),
            batches: AtomicU64::new(0),
            running: Arc::new(AtomicBool::new(false)),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The process this executor runs.
    pub fn process(&self) -> &P {
        &self.shared.process
    }

    /// The configuration this executor was built with.
    pub fn config(&self) -> &ExecutorConfig {
        &self.shared.config
    }

    /// Validates the table, then starts claiming and running jobs in the
    /// background on the current Tokio runtime.
    ///
    /// Starts three tasks: the claim loop (woken by notifications for new
    /// jobs, by workers finishing, and by the sweep interval, with a first
    /// sweep at once), the heartbeat loop, and the notification listener.
    ///
    /// With cleanup enabled, a fourth task deletes old finished jobs of the
    /// process.
    ///
    /// While the database cannot be reached, `start` waits for it, retrying
    /// with backoff and logging a warning per try.
    ///
    /// # Errors
    ///
    /// [`StartError::Schema`] when the table does not validate,
    /// [`StartError::StepsChanged`] when the step list changed in a way
    /// that would move open jobs, [`StartError::Database`] when the step
    /// list could not be checked, [`StartError::AlreadyRunning`] when this
    /// executor runs already.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, nothing has been started.
    pub async fn start(&self) -> Result<ExecutorHandle, StartError> {
        if self.shared.running.swap(true, Ordering::SeqCst) {
            return Err(StartError::AlreadyRunning {
                process_id: P::ID.to_owned(),
            });
        }
        let store = match self.prepare().await {
            Ok(store) => store,
            Err(error) => {
                self.shared.running.store(false, Ordering::SeqCst);
                return Err(error);
            }
        };
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let stop_claiming = CancellationToken::new();
        let stop_heartbeat = CancellationToken::new();
        let attempts = CancellationToken::new();
        let leases = Arc::new(heartbeat::Leases::default());
        let workers = Arc::new(Semaphore::new(config.max_workers));
        let wake = Arc::new(Notify::new());
        let tracker = TaskTracker::new();

        let listener = tokio::spawn(claim::listen(
            store.clone(),
            P::ID,
            Arc::clone(&wake),
            stop_claiming.clone(),
        ));
        let heartbeat = {
            let store = store.clone();
            let leases = Arc::clone(&leases);
            let (interval, lease) = (config.heartbeat_interval, config.lease_duration);
            let max_failures = config.max_heartbeat_failures;
            let stop = stop_heartbeat.clone();
            tokio::spawn(async move {
                heartbeat::run(store, &leases, interval, lease, max_failures, stop).await;
            })
        };
        let mut tasks = Vec::new();
        // Validation at construction refused a zero batch size.
        if let (true, Some(interval), Some(threshold), Some(batch_size)) = (
            config.cleanup_enabled,
            config.cleanup_interval,
            config.cleanup_threshold,
            std::num::NonZeroUsize::new(config.cleanup_batch_size),
        ) {
            tasks.push(tokio::spawn(crate::cleanup::run(
                store.clone(),
                P::ID,
                interval,
                threshold,
                batch_size,
                stop_claiming.clone(),
            )));
        }
        let claimer_store = store.clone();
        let claimer = claim::Claimer {
            shared: Arc::clone(&shared),
            writer: commit::Writer::spawn_batched(store.clone()),
            store,
            leases: Arc::clone(&leases),
            workers,
            finishing: Arc::new(Semaphore::new(config.max_workers)),
            wake,
            tracker: tracker.clone(),
            attempts: attempts.clone(),
            more: Arc::new(AtomicBool::new(false)),
        };
        tasks.push(tokio::spawn(claimer.run(stop_claiming.clone())));
        tasks.push(listener);
        tracing::info!(
            process_id = P::ID,
            workers = config.max_workers,
            table = %shared.table.display_name(),
            "executor started"
        );
        Ok(ExecutorHandle {
            process_id: P::ID,
            running: Arc::clone(&shared.running),
            grace: shared.config.shutdown_grace_period,
            stop_claiming,
            stop_heartbeat,
            attempts,
            leases,
            tracker,
            tasks,
            heartbeat: Some(heartbeat),
            store: claimer_store,
        })
    }

    /// Validates the table and checks the step list, waiting for the
    /// database while it cannot be reached: an executor started before its
    /// database comes up waits for it, warning, instead of failing.
    async fn prepare(&self) -> Result<Store, StartError> {
        let mut failures = 0u32;
        loop {
            let result = match self.store().await {
                Ok(store) => steps::check::<P>(store, self.shared.config.allow_step_changes)
                    .await
                    .map(|()| store.clone()),
                Err(error) => Err(error.into()),
            };
            let unreachable = match &result {
                Err(StartError::Schema(SchemaError::Database { source, .. }))
                | Err(StartError::Database { source, .. }) => is_unreachable(source),
                _ => false,
            };
            if !unreachable {
                return result;
            }
            failures += 1;
            let pause = claim::error_pause(failures);
            if let Err(error) = &result {
                tracing::warn!(%error, failures, pause_ms = attempt::millis(pause), "database unreachable at start, will retry");
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The store, after validating the table once.
    async fn store(&self) -> Result<&Store, SchemaError> {
        let shared = &self.shared;
        shared
            .store
            .get_or_try_init(|| async {
                let info = storage::inspect(&shared.pool, &shared.table).await?;
                Ok(Store::new(shared.pool.clone(), shared.table.clone(), info))
            })
            .await
    }

    /// A token prefix unique to one claim batch; each claimed job appends
    /// its position in the batch.
    fn token_prefix(&self) -> String {
        token_prefix(&self.shared)
    }
}

pub(crate) fn token_prefix<P: Process>(shared: &Shared<P>) -> String {
    let batch = shared.batches.fetch_add(1, Ordering::Relaxed);
    let separator = if shared.config.name.is_empty() {
        ""
    } else {
        ":"
    };
    format!(
        "{}{separator}{}-{batch}.",
        shared.config.name, shared.instance
    )
}

/// The name of step `index` of `P`; empty for an index it does not have.
fn step_name<P: Process>(index: i32) -> &'static str {
    usize::try_from(index)
        .ok()
        .and_then(|step| P::STEPS.get(step))
        .copied()
        .unwrap_or("")
}

fn validate_process<P: Process>() -> Result<(), ConfigError> {
    if P::ID.is_empty() {
        return Err(ConfigError::EmptyProcessId);
    }
    if P::ID.contains('\0') {
        return Err(ConfigError::ProcessIdNul {
            process_id: P::ID.to_owned(),
        });
    }
    if P::STEPS.is_empty() {
        return Err(ConfigError::NoSteps {
            process_id: P::ID.to_owned(),
        });
    }
    if P::STEPS.len() != P::COMPENSATED.len() {
        return Err(ConfigError::CompensationMismatch {
            process_id: P::ID.to_owned(),
            steps: P::STEPS.len(),
            compensated: P::COMPENSATED.len(),
        });
    }
    Ok(())
}

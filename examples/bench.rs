//! The benchmark: ssproc's executor beside PostgreSQL's own commit ceiling.
//!
//! One run measures, each phase on its own table in the schema `bench`
//! (dropped and created again at the start of every run):
//!
//! - `ceiling`: single-row `UPDATE ... WHERE job_id = $1` commits per second
//!   from 16 connections on a table made by `ssproc::migrate`, through a pool
//!   built like the executors' pools: what PostgreSQL can commit here;
//! - `drain`: jobs of one no-op step, registered in bulk, then drained by one
//!   executor; jobs per second;
//! - `steps`: the same with three no-op steps, each committed before the
//!   next starts; jobs per second, and `steps_ratio`, that rate against a
//!   third of the ceiling;
//! - `latency`: jobs registered one at a time to an idle executor; time from
//!   the start of the register call to the start of the step, measured with
//!   one clock in this process;
//! - `scale`: the same single-job latency on an empty table and on a table
//!   holding a million finished jobs of the same process;
//! - `memory`: the peak resident memory of an executor running alone in a
//!   child process (this binary again, in a hidden mode) while it drains its
//!   jobs, read from `/proc/<pid>/status`.
//!
//! Every figure is printed on stdout as one `key=value` line, after the
//! machine's facts. Run it with `cargo run --release --example bench`; add
//! `-- --help` for the options that scale each phase. Without
//! `DATABASE_URL` it starts a throwaway PostgreSQL (durability off) on this
//! machine and removes it afterwards. It exits non-zero when a phase fails
//! to finish its jobs.

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::error::Error;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use ssproc::{
    process, Client, Executor, ExecutorConfig, ExecutorHandle, JobData, JobTable, Jobs, Process,
    StartAt, StepContext, StepOutcome, StepResult,
};
use tokio::io::{AsyncBufReadExt, BufReader};

type BoxError = Box<dyn Error + Send + Sync>;

/// The schema every phase's table lives in.
const SCHEMA: &str = "bench";

/// Connections per pool, for the ceiling and for every executor alike.
const POOL_SIZE: u32 = 24;

/// Jobs per `register_many` call.
const REGISTER_CHUNK: usize = 10_000;

/// Rows the ceiling's updates pick from at random.
const CEILING_ROWS: i64 = 10_000;

/// How often a drain checks whether any job is still ready.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Longest wait for any one phase to finish its jobs.
const PHASE_DEADLINE: Duration = Duration::from_secs(600);

const USAGE: &str = "\
usage: cargo run --release --example bench -- [options]

  --ceiling-secs S     how long the commit ceiling runs (default 5)
  --connections N      connections of the ceiling (default 16)
  --workers N          executor workers (default 16)
  --drain-jobs N       one-step jobs of the drain phase (default 20000)
  --steps-jobs N       three-step jobs of the steps phase (default 5000)
  --latency-jobs N     jobs registered one at a time (default 200)
  --latency-gap-ms MS  pause between those registrations (default 10)
  --scale-rows N       finished jobs of the scale phase (default 1000000)
  --scale-samples N    single jobs timed per scale table (default 50)
  --memory-jobs N      jobs the child executor drains (default 100000)
  --help               this text

Figures go to stdout as key=value lines. DATABASE_URL, when set, names the
database to use; its schema `bench` is dropped and created again.";

/// What one run does; every count can be scaled from the command line.
#[derive(Debug, Clone)]
struct Options {
    ceiling_secs: u64,
    connections: usize,
    workers: usize,
    drain_jobs: usize,
    steps_jobs: usize,
    latency_jobs: usize,
    latency_gap_ms: u64,
    scale_rows: i64,
    scale_samples: usize,
    memory_jobs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ceiling_secs: 5,
            connections: 16,
            workers: 16,
            drain_jobs: 20_000,
            steps_jobs: 5_000,
            latency_jobs: 200,
            latency_gap_ms: 10,
            scale_rows: 1_000_000,
            scale_samples: 50,
            memory_jobs: 100_000,
        }
    }
}

/// How the binary was asked to run.
enum Mode {
    Help,
    Bench(Options),
    /// The child of the memory phase: drain `table`, report, wait for the
    /// parent to close stdin.
    ExecutorOnly {
        table: String,
        workers: usize,
        jobs: usize,
    },
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut options = Options::default();
    let mut executor_only = None;
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(Mode::Help);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a whole number, not `{value}`"))
        };
        match flag.as_str() {
            "--ceiling-secs" => options.ceiling_secs = number()?,
            "--connections" => options.connections = number()? as usize,
            "--workers" => options.workers = number()? as usize,
            "--drain-jobs" => options.drain_jobs = number()? as usize,
            "--steps-jobs" => options.steps_jobs = number()? as usize,
            "--latency-jobs" => options.latency_jobs = number()? as usize,
            "--latency-gap-ms" => options.latency_gap_ms = number()?,
            "--scale-rows" => options.scale_rows = number()? as i64,
            "--scale-samples" => options.scale_samples = number()? as usize,
            "--memory-jobs" => options.memory_jobs = number()? as usize,
            "--executor-only" => executor_only = Some(value),
            _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
        }
    }
    let counts = [
        options.connections,
        options.workers,
        options.drain_jobs,
        options.steps_jobs,
        options.latency_jobs,
        options.scale_samples,
        options.memory_jobs,
    ];
    if counts.contains(&0) || options.ceiling_secs == 0 {
        return Err("every count and duration must be at least 1".to_owned());
    }
    Ok(match executor_only {
        Some(table) => Mode::ExecutorOnly {
            table,
            workers: options.workers,
            jobs: options.memory_jobs,
        },
        None => Mode::Bench(options),
    })
}

/// The data of every benchmark job: its id alone.
#[derive(Debug, Clone, Serialize, Deserialize, JobData)]
struct BenchJob {
    #[job_id]
    id: String,
}

/// What the steps report to the benchmark: how many jobs reached their last
/// step, and for timed jobs how long after registration their first step
/// started.
#[derive(Debug, Default)]
struct Probe {
    finished: AtomicUsize,
    registered: Mutex<HashMap<String, Instant>>,
    waits: Mutex<Vec<Duration>>,
}

impl Probe {
    /// Notes that a timed job is about to be registered, now.
    fn register_now(&self, job_id: &str) {
        let mut registered = self.registered.lock().expect("registration map poisoned");
        registered.insert(job_id.to_owned(), Instant::now());
    }

    fn first_step_started(&self, job_id: &str, at: Instant) {
        let registered = self
            .registered
            .lock()
            .expect("registration map poisoned")
            .remove(job_id);
        if let Some(registered) = registered {
            let mut waits = self.waits.lock().expect("wait list poisoned");
            waits.push(at.duration_since(registered));
        }
    }

    fn take_waits(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.waits.lock().expect("wait list poisoned"))
    }
}

/// One no-op step.
struct OneStep {
    probe: Arc<Probe>,
}

#[process(id = "bench-one-step")]
impl OneStep {
    #[step]
    async fn only(&self, _ctx: &StepContext, job: &mut BenchJob) -> StepResult {
        self.probe.first_step_started(&job.id, Instant::now());
        self.probe.finished.fetch_add(1, Ordering::Relaxed);
        Ok(StepOutcome::Success)
    }
}

/// Three no-op steps, each committed before the next starts.
struct ThreeSteps {
    probe: Arc<Probe>,
}

#[process(id = "bench-three-steps")]
impl ThreeSteps {
    #[step]
    async fn first(&self, _ctx: &StepContext, _job: &mut BenchJob) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn second(&self, _ctx: &StepContext, _job: &mut BenchJob) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn third(&self, _ctx: &StepContext, _job: &mut BenchJob) -> StepResult {
        self.probe.finished.fetch_add(1, Ordering::Relaxed);
        Ok(StepOutcome::Success)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // The fills of the scale phase are slow on purpose.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx::query=error".into()),
        )
        .init();
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let result = match mode {
        Mode::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Mode::Bench(options) => bench(&options).await,
        Mode::ExecutorOnly {
            table,
            workers,
            jobs,
        } => executor_only(&table, workers, jobs).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(options: &Options) -> Result<(), BoxError> {
    let url = postgres::database_url().await;
    let admin = connect(&url).await?;
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
    ))
    .execute(&admin)
    .await?;
    print_facts(&admin, options).await?;

    let ceiling = ceiling(&url, options).await?;
    drain(&url, options).await?;
    let steps = steps(&url, options).await?;
    figure("steps_ratio", format!("{:.2}", steps / (ceiling / 3.0)));
    latency(&url, options).await?;
    scale(&url, options).await?;
    memory(&url, &admin, options).await?;
    figure("loadavg_end", loadavg());
    admin.close().await;
    Ok(())
}

/// Prints one figure.
fn figure(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

/// A pool as every phase gets it: the ceiling's connections and each
/// executor's alike.
async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
}

async fn print_facts(admin: &PgPool, options: &Options) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    figure("cores", cores);
    figure("loadavg_start", loadavg());
    let database = if std::env::var_os("DATABASE_URL").is_some() {
        "DATABASE_URL"
    } else {
        "throwaway"
    };
    figure("database", database);
    for setting in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "shared_buffers",
        "max_connections",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(admin)
            .await?;
        figure(&format!("pg_{setting}"), value);
    }
    figure("workers", options.workers);
    figure("pool_size", POOL_SIZE);
    Ok(())
}

/// The 1, 5 and 15 minute load averages, joined by `/`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A fresh jobs table in the benchmark's schema.
async fn fresh_table(pool: &PgPool, name: &str) -> Result<JobTable, BoxError> {
    let table = JobTable::new(SCHEMA, name)?;
    ssproc::migrate(pool, &table).await?;
    Ok(table)
}

fn executor_config(workers: usize) -> ExecutorConfig {
    let mut config = ExecutorConfig::default();
    config.name = "bench".to_owned();
    config.max_workers = workers;
    config
}

/// The commit ceiling: each connection updates one random row per
/// statement, each statement its own transaction, for the set time.
async fn ceiling(url: &str, options: &Options) -> Result<f64, BoxError> {
    let pool = connect(url).await?;
    let table = fresh_table(&pool, "ceiling").await?;
    let name = format!("{SCHEMA}.{}", table.table());
    sqlx::query(&format!(
        "INSERT INTO {name} (job_id, job_data, process_id)
SELECT 'row-' || g, '{{}}', 'bench-ceiling'
FROM generate_series(1, $1) AS g"
    ))
    .bind(CEILING_ROWS)
    .execute(&pool)
    .await?;
    let update = format!(
        "UPDATE {name}
SET exec_count = exec_count + 1,
    last_update_ts = now()
WHERE job_id = $1"
    );

    let run_for = Duration::from_secs(options.ceiling_secs);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..options.connections {
        let pool = pool.clone();
        let update = update.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut commits = 0u64;
            while started.elapsed() < run_for {
                let row = fastrand::i64(1..=CEILING_ROWS);
                sqlx::query(&update)
                    .bind(format!("row-{row}"))
                    .execute(&mut *conn)
                    .await?;
                commits += 1;
            }
            Ok::<u64, sqlx::Error>(commits)
        }));
    }
    let mut commits = 0;
    for client in clients {
        commits += client.await??;
    }
    let tps = commits as f64 / started.elapsed().as_secs_f64();
    figure("ceiling_connections", options.connections);
    figure("ceiling_tps", format!("{tps:.0}"));
    pool.close().await;
    Ok(tps)
}

fn jobs(prefix: &str, count: usize) -> Vec<BenchJob> {
    (0..count)
        .map(|n| BenchJob {
            id: format!("{prefix}-{n}"),
        })
        .collect()
}

/// Registers `data` in chunks of [`REGISTER_CHUNK`], one statement each.
async fn register_all<P>(client: &Client<P>, data: &[BenchJob]) -> Result<Duration, BoxError>
where
    P: Process<Data = BenchJob>,
{
    let started = Instant::now();
    for chunk in data.chunks(REGISTER_CHUNK) {
        client.register_many(chunk, StartAt::Now).await?;
    }
    Ok(started.elapsed())
}

/// Waits until `count` jobs ran their last step in this process, without
/// asking the database, so that waiting adds no load to the phase.
async fn wait_finished(probe: &Probe, count: usize) -> Result<(), BoxError> {
    let deadline = Instant::now() + PHASE_DEADLINE;
    while probe.finished.load(Ordering::Relaxed) < count {
        if Instant::now() > deadline {
            return Err(format!("not every job finished within {PHASE_DEADLINE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Waits until no job of `process_id` in `table` is ready any more.
async fn wait_none_ready(
    pool: &PgPool,
    table: &JobTable,
    process_id: &str,
) -> Result<(), BoxError> {
    let name = format!("{SCHEMA}.{}", table.table());
    let pending = format!(
        "SELECT EXISTS (
    SELECT 1
    FROM {name}
    WHERE process_id = $1
        AND status = 'ready'
)"
    );
    let deadline = Instant::now() + PHASE_DEADLINE;
    loop {
        let any_ready: bool = sqlx::query_scalar(&pending)
            .bind(process_id)
            .fetch_one(pool)
            .await?;
        if !any_ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{name}: jobs still ready after {PHASE_DEADLINE:?}").into());
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Waits until no job is ready any more, then checks that all `expected`
/// ended done.
async fn wait_drained(
    pool: &PgPool,
    table: &JobTable,
    process_id: &str,
    expected: usize,
) -> Result<(), BoxError> {
    wait_none_ready(pool, table, process_id).await?;
    let stats = Jobs::new(pool.clone(), table.clone()).stats().await?;
    let done: i64 = stats
        .iter()
        .filter(|s| s.process_id == process_id)
        .map(|s| s.done)
        .sum();
    if done != expected as i64 {
        let name = table.display_name();
        return Err(format!("{name}: {done} jobs done, {expected} expected: {stats:?}").into());
    }
    Ok(())
}

/// Starts an executor for `process` on `table` with its own pool.
async fn start<P: Process>(
    url: &str,
    table: &JobTable,
    process: P,
    workers: usize,
) -> Result<(ExecutorHandle, PgPool), BoxError> {
    let pool = connect(url).await?;
    let executor = Executor::new(
        pool.clone(),
        table.clone(),
        process,
        executor_config(workers),
    )?;
    let handle = executor.start().await?;
    Ok((handle, pool))
}

async fn drain(url: &str, options: &Options) -> Result<(), BoxError> {
    let pool = connect(url).await?;
    let table = fresh_table(&pool, "drain").await?;
    let client = Client::<OneStep>::new(pool.clone(), table.clone());
    let data = jobs("drain", options.drain_jobs);
    let registering = register_all(&client, &data).await?;
    figure("drain_jobs", options.drain_jobs);
    figure(
        "drain_register_jobs_per_s",
        format!("{:.0}", rate(options.drain_jobs, registering)),
    );

    let started = Instant::now();
    let probe = Arc::new(Probe::default());
    let process = OneStep {
        probe: Arc::clone(&probe),
    };
    let (handle, executor_pool) = start(url, &table, process, options.workers).await?;
    wait_finished(&probe, options.drain_jobs).await?;
    wait_drained(&pool, &table, OneStep::ID, options.drain_jobs).await?;
    let elapsed = started.elapsed();
    handle.shutdown().await;
    executor_pool.close().await;
    pool.close().await;
    let per_s = rate(options.drain_jobs, elapsed);
    figure("drain_secs", format!("{:.2}", elapsed.as_secs_f64()));
    figure("drain_jobs_per_s", format!("{per_s:.0}"));
    Ok(())
}

async fn steps(url: &str, options: &Options) -> Result<f64, BoxError> {
    let pool = connect(url).await?;
    let table = fresh_table(&pool, "steps").await?;
    let client = Client::<ThreeSteps>::new(pool.clone(), table.clone());
    register_all(&client, &jobs("steps", options.steps_jobs)).await?;
    figure("steps_jobs", options.steps_jobs);

    let started = Instant::now();
    let probe = Arc::new(Probe::default());
    let process = ThreeSteps {
        probe: Arc::clone(&probe),
    };
    let (handle, executor_pool) = start(url, &table, process, options.workers).await?;
    wait_finished(&probe, options.steps_jobs).await?;
    wait_drained(&pool, &table, ThreeSteps::ID, options.steps_jobs).await?;
    let elapsed = started.elapsed();
    handle.shutdown().await;
    executor_pool.close().await;
    pool.close().await;
    let per_s = rate(options.steps_jobs, elapsed);
    figure("steps_secs", format!("{:.2}", elapsed.as_secs_f64()));
    figure("steps_jobs_per_s", format!("{per_s:.0}"));
    figure("steps_commits_per_s", format!("{:.0}", per_s * 3.0));
    Ok(per_s)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Registers `count` jobs one at a time, `gap` apart, to an executor that
/// is idle, and returns how long after each register call began its step
/// started, and how long each register call took. `done_before` jobs of the
/// table were done already.
async fn timed_registrations(
    url: &str,
    table: &JobTable,
    done_before: usize,
    prefix: &str,
    count: usize,
    gap: Duration,
    workers: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BoxError> {
    let pool = connect(url).await?;
    let probe = Arc::new(Probe::default());
    let process = OneStep {
        probe: Arc::clone(&probe),
    };
    let (handle, executor_pool) = start(url, table, process, workers).await?;
    let client = Client::<OneStep>::new(pool.clone(), table.clone());
    // Let the executor's first sweep and its listener settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut ticks = tokio::time::interval(gap);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut calls = Vec::with_capacity(count);
    for job in jobs(prefix, count) {
        ticks.tick().await;
        probe.register_now(&job.id);
        let called = Instant::now();
        client.register(&job).await?;
        calls.push(called.elapsed());
    }
    wait_finished(&probe, count).await?;
    wait_drained(&pool, table, OneStep::ID, done_before + count).await?;
    handle.shutdown().await;
    executor_pool.close().await;
    pool.close().await;
    Ok((probe.take_waits(), calls))
}

/// The nearest-rank percentile `p` (0 to 100) of sorted `values`, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

async fn latency(url: &str, options: &Options) -> Result<(), BoxError> {
    let admin = connect(url).await?;
    let table = fresh_table(&admin, "latency").await?;
    admin.close().await;
    let gap = Duration::from_millis(options.latency_gap_ms.max(1));
    let (mut waits, mut calls) = timed_registrations(
        url,
        &table,
        0,
        "latency",
        options.latency_jobs,
        gap,
        options.workers,
    )
    .await?;
    waits.sort();
    figure("latency_jobs", waits.len());
    for p in [50.0, 95.0, 99.0] {
        figure(
            &format!("latency_p{p:.0}_ms"),
            format!("{:.2}", percentile_ms(&waits, p)),
        );
    }
    figure(
        "latency_max_ms",
        format!("{:.2}", percentile_ms(&waits, 100.0)),
    );
    // The register call alone: its insert, notification and commit.
    calls.sort();
    figure(
        "latency_register_call_p50_ms",
        format!("{:.2}", percentile_ms(&calls, 50.0)),
    );
    Ok(())
}

/// Claim latency, as register-to-start of single jobs 20 ms apart, on an
/// empty table and on one holding `scale_rows` finished jobs of the same
/// process.
async fn scale(url: &str, options: &Options) -> Result<(), BoxError> {
    let admin = connect(url).await?;
    let empty = fresh_table(&admin, "scale_empty").await?;
    let full = fresh_table(&admin, "scale_full").await?;

    let started = Instant::now();
    let name = format!("{SCHEMA}.{}", full.table());
    sqlx::query(&format!(
        "INSERT INTO {name} (
    job_id, job_data, process_id, status, next_subprocess, exec_count,
    started_ts, end_ts
)
SELECT 'finished-' || g, '{{\"id\":\"finished-' || g || '\"}}', $1, 'done', 1, 1,
    now(), now()
FROM generate_series(1, $2) AS g"
    ))
    .bind(OneStep::ID)
    .bind(options.scale_rows)
    .execute(&admin)
    .await?;
    // As autovacuum would, sooner or later: the planner sees the real table.
    sqlx::query(&format!("VACUUM ANALYZE {name}"))
        .execute(&admin)
        .await?;
    figure("scale_rows", options.scale_rows);
    figure(
        "scale_fill_secs",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    admin.close().await;

    let gap = Duration::from_millis(20);
    let mut medians = Vec::new();
    let full_rows = usize::try_from(options.scale_rows)?;
    for (table, done_before, prefix) in [(&empty, 0, "empty"), (&full, full_rows, "full")] {
        let (mut waits, _) = timed_registrations(
            url,
            table,
            done_before,
            prefix,
            options.scale_samples,
            gap,
            options.workers,
        )
        .await?;
        waits.sort();
        medians.push(percentile_ms(&waits, 50.0));
    }
    figure("scale_samples", options.scale_samples);
    figure("claim_empty_ms", format!("{:.2}", medians[0]));
    figure("claim_1m_ms", format!("{:.2}", medians[1]));
    figure("claim_ratio", format!("{:.2}", medians[1] / medians[0]));
    Ok(())
}

/// The memory phase: registers the jobs here, then runs the executor alone
/// in a child process and reads its peak resident set once it drained.
async fn memory(url: &str, admin: &PgPool, options: &Options) -> Result<(), BoxError> {
    let table = fresh_table(admin, "memory").await?;
    let client = Client::<OneStep>::new(admin.clone(), table.clone());
    register_all(&client, &jobs("memory", options.memory_jobs)).await?;

    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--executor-only", table.table()])
        .args(["--memory-jobs", &options.memory_jobs.to_string()])
        .args(["--workers", &options.workers.to_string()])
        .env("DATABASE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the executor child exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout from the child")?;
    let mut lines = BufReader::new(stdout).lines();
    let report = lines
        .next_line()
        .await?
        .ok_or("the executor child exited before it drained")?;
    let elapsed = started.elapsed();
    if report != "drained" {
        return Err(format!("the executor child said `{report}`").into());
    }
    let peak_kb = peak_rss_kb(pid)?;
    drop(child.stdin.take());
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("the executor child ended with {status}").into());
    }
    wait_drained(admin, &table, OneStep::ID, options.memory_jobs).await?;
    figure("memory_jobs", options.memory_jobs);
    figure(
        "memory_drain_jobs_per_s",
        format!("{:.0}", rate(options.memory_jobs, elapsed)),
    );
    figure("peak_rss_mb", format!("{:.1}", peak_kb as f64 / 1024.0));
    Ok(())
}

/// `VmHWM` of a process, in kB.
fn peak_rss_kb(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("no VmHWM line in /proc/<pid>/status")?;
    let kb = line
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse().ok())
        .ok_or_else(|| format!("unreadable `{line}`"))?;
    Ok(kb)
}

/// The child of the memory phase: drains the table's `jobs` jobs, prints `drained`, and
/// stops once the parent closes stdin, so that the parent can read its peak
/// memory while it still runs.
async fn executor_only(table: &str, workers: usize, jobs: usize) -> Result<(), BoxError> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "--executor-only needs DATABASE_URL")?;
    let table = JobTable::new(SCHEMA, table)?;
    let probe = Arc::new(Probe::default());
    let process = OneStep {
        probe: Arc::clone(&probe),
    };
    let (handle, pool) = start(&url, &table, process, workers).await?;
    wait_finished(&probe, jobs).await?;
    wait_none_ready(&pool, &table, OneStep::ID).await?;
    println!("drained");
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest)
    })
    .await??;
    handle.shutdown().await;
    pool.close().await;
    Ok(())
}

//! The chaos run: real faults on real processes, and proof afterwards that
//! no registered job was lost and no stale executor moved a job.
//!
//! Run it with `cargo run --release --example chaos`, or with `-- --short`
//! for a version of about half a minute (CI runs that one). Without
//! `DATABASE_URL` it starts a throwaway PostgreSQL on 127.0.0.1 and removes
//! it afterwards; with it, the schema `chaos` of that database is dropped
//! and created again, and the server restart is skipped (it cannot be done
//! to a server this program did not start).
//!
//! # What happens
//!
//! - Three executor processes run the three-step saga `chaos-saga`
//!   (`reserve`, `charge`, `ship`; `reserve` and `charge` have
//!   compensations). They are this binary again, in a hidden mode
//!   (`--executor NAME`). Each has 12 workers, a lease of 2 s and a heartbeat
//!   of 500 ms. Steps fail at random (10 %, retried with backoff, 5
//!   attempts); one job in 20 is declined at `charge` (a permanent failure:
//!   compensated); one in 50 fails for good at `ship` and then cannot undo
//!   `reserve` (its compensation always fails: the job ends in `error`).
//! - The parent registers the jobs (10 000 by default) in small batches
//!   while everything below goes on, retrying a batch while the server is
//!   down.
//! - Every few seconds it kills a random executor with SIGKILL and starts a
//!   new one. Once it stops PostgreSQL with `pg_ctl stop -m immediate` and
//!   starts it again. Once it freezes an executor with SIGSTOP while that
//!   executor holds jobs mid-step, just after it renewed their leases,
//!   waits until other executors have taken every one of those jobs over
//!   (past the lease), and resumes it at once, while the new holders are
//!   still running most of them.
//! - Then it waits, up to a deadline, until every job is terminal, kills
//!   every child, checks the records below and prints one summary line.
//!
//! # What is recorded
//!
//! - The ledger (`chaos.ledger`): every step and compensation execution
//!   inserts a row as it starts (job id, step, kind, token, attempt,
//!   executor, the outcome it is about to return, and the database's
//!   `clock_timestamp()`), on its own connection, so the row stays even when
//!   the step's result never commits.
//! - The audit (`chaos.audit`): a trigger on the jobs table records every
//!   update that changes the token, status, run type, step, data or last
//!   failure of a row, with the row before and after, in the transaction of
//!   the update itself. A claim changes the token; every other write keeps
//!   it, so the token before the write is the holder's.
//! - The authors: a successful step appends `s<step>@<token>` (`c` for a
//!   compensation) to the job data's `trail`, and a failing one puts
//!   `[<token>]` in its error message, so the audit knows which attempt
//!   wrote each change. Failures the runtime writes itself (attempts
//!   abandoned, a timeout) carry the run type and attempt number of their
//!   writer instead, which must match the row's current counts.
//! - The executors' testimony: each child prints a line on stdout whenever
//!   the runtime logs that a write or a lease renewal of one of its attempts
//!   was refused, so the parent counts the frozen executor's refused
//!   writes.
//!
//! # The summary
//!
//! `registered` jobs confirmed registered; `done`, `compensated`, `error`:
//! their final statuses; `lost`: registered jobs that are missing or not
//! terminal by the deadline; `skipped`: step executions (ledger rows of a
//! step `i > 0`) with no committed advance from step `i - 1` to `i` before
//! them, or no successful execution of step `i - 1` before them;
//! `fenced_landed`: audited writes whose author was not the row's holder,
//! or that changed a row no longer `ready`; `stolen`: claims of a row whose
//! lease was still live; `duplicates`: successful executions of a step
//! beyond the first (allowed: steps run at least once);
//! `takeover_p50_ms` / `takeover_max_ms`: for every job a killed executor
//! held, the time from the SIGKILL to the first ledger row of that job by
//! another executor, beside `lease_ms` (the floor, counted from the last
//! claim or renewal, which came before the kill); `frozen_ms`: how long the
//! executor was stopped (until every job it held was taken over, and at
//! least the lease); `frozen_held`: jobs it held when stopped,
//! `frozen_mid_step` those it had started a step of, `frozen_taken_over`
//! those other executors took before it was resumed, `frozen_contested`
//! those still running under their new holder at the resume (where only
//! the token, not the status, fences the stale attempt), `frozen_refused` its
//! writes and lease renewals refused from the resume to the end of the run,
//! `frozen_write_errors` its writes that failed instead (a pooled
//! connection wait that timed out while it was stopped); `unattributed`:
//! audited writes without an author (expected 0); `crashed`: executors
//! that exited without being killed; `panics`: panic messages in the
//! executors' logs; `canary`: whether the checks caught the faults planted
//! on purpose (below).
//!
//! The run exits non-zero unless `lost`, `skipped`, `fenced_landed`,
//! `stolen`, `crashed` and `panics` are 0, the canary was caught, the freeze
//! caught the executor holding jobs and resumed it while at least one of
//! them was still running under its new holder, the executor then told of
//! a refused or failed write, and (on the throwaway server) the restart
//! happened. That testimony relies on the runtime's log messages for a
//! lost lease; should they change, the run fails here rather than count
//! nothing.
//!
//! # Checks that can fail
//!
//! Before the executors start, the parent plants one of each fault on a
//! canary row of another process id: a write by a token that does not hold
//! the row, a claim of a live lease, and a ledger row of step 2 with no
//! committed step 1. The same queries that count the run's faults must find
//! exactly those three on the canary, or the run fails.
//!
//! The throwaway server runs with `synchronous_commit = off`, which after
//! an immediate stop loses the last acknowledged commits: that would show
//! as jobs lost by the database, not by ssproc. Every connection of this
//! program therefore asks for `synchronous_commit = on`.
//!
//! Times compare the ledger's database timestamps with the database clock
//! read just before each SIGKILL. Every wait is a poll with a deadline; the
//! pauses between faults are the schedule. The whole run has a deadline,
//! and every child is killed at the end, also when the parent fails: the
//! children are killed when their handles drop, and a child exits by itself
//! once its stdin (a pipe from the parent) closes. The executors' logs go to
//! a temporary directory, kept and named when the run fails.

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use ssproc::{
    process, Client, Executor, ExecutorConfig, JobData, JobTable, StartAt, StepContext, StepError,
    StepOutcome, StepResult,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

type BoxError = Box<dyn Error + Send + Sync>;

const SCHEMA: &str = "chaos";
const TABLE: &str = "jobs";
const PROCESS_ID: &str = "chaos-saga";

const LEASE: Duration = Duration::from_secs(2);
const HEARTBEAT: Duration = Duration::from_millis(500);
const SWEEP: Duration = Duration::from_millis(500);

/// Executors running at any time.
const EXECUTORS: usize = 3;

/// How long the server stays down.
const PG_DOWN: Duration = Duration::from_secs(3);

/// Chance that one step or compensation execution fails (retryable).
const FAILURE_RATE: f64 = 0.10;

/// Longest wait for the frozen executor's jobs to be taken over.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(30);

const USAGE: &str = "\
usage: cargo run --release --example chaos -- [--short] [--jobs N] [--logs DIR]

  --short     about half a minute: fewer jobs and kills, still one
              server restart and one frozen executor
  --jobs N    jobs to register (default 10000, 3000 with --short)
  --logs DIR  write the executors' logs to DIR and keep them (by default a
              temporary directory, removed when the run passes)
  --help      this text

Prints one summary line on stdout; exits non-zero when a job was lost, a
step skipped, a fenced write landed, or a check did not run.";

/// How the binary was asked to run.
enum Mode {
    Help,
    Chaos(Options),
    /// A child: run an executor named `name` until killed.
    Executor {
        name: String,
    },
}

/// The shape of one chaos run.
#[derive(Debug, Clone)]
struct Options {
    jobs: usize,
    /// Fault slots, each followed by a pause of `pause`: a kill, or the
    /// server restart at slot `restart_slot`, or the freeze at
    /// `freeze_slot`.
    slots: usize,
    restart_slot: usize,
    freeze_slot: usize,
    pause: Duration,
    /// Longest wait, after the faults, for every job to be terminal.
    drain_deadline: Duration,
    /// Where the executors' logs go, kept; `None`: a temporary directory.
    logs: Option<PathBuf>,
}

impl Options {
    fn full() -> Self {
        Self {
            jobs: 10_000,
            slots: 16,
            restart_slot: 6,
            freeze_slot: 11,
            pause: Duration::from_secs(4),
            drain_deadline: Duration::from_secs(300),
            logs: None,
        }
    }

    fn short() -> Self {
        Self {
            jobs: 3_000,
            slots: 8,
            restart_slot: 3,
            freeze_slot: 6,
            pause: Duration::from_secs(3),
            drain_deadline: Duration::from_secs(90),
            logs: None,
        }
    }

    /// How long registration is spread over: about as long as the faults
    /// take, so that every fault meets executors at work.
    fn register_over(&self) -> Duration {
        let slots = u32::try_from(self.slots).unwrap_or(u32::MAX);
        self.pause * slots + 2 * LEASE + PG_DOWN
    }

    /// The deadline of the whole run: faults, drain and set-up.
    fn deadline(&self) -> Duration {
        let slots = u32::try_from(self.slots).unwrap_or(u32::MAX);
        // Each slot: its pause, plus at most a freeze's takeover wait.
        self.pause * slots + TAKEOVER_DEADLINE + self.drain_deadline + Duration::from_secs(120)
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut options = Options::full();
    let mut jobs = None;
    let mut logs = None;
    let mut executor = None;
    let mut args = args;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Mode::Help),
            "--short" => options = Options::short(),
            "--jobs" => {
                let text = value()?;
                let n: usize = text
                    .parse()
                    .map_err(|_| format!("--jobs: `{text}` is not a count"))?;
                if n == 0 {
                    return Err("--jobs must be at least 1".to_owned());
                }
                jobs = Some(n);
            }
            "--logs" => logs = Some(PathBuf::from(value()?)),
            "--executor" => executor = Some(value()?),
            _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
        }
    }
    if let Some(name) = executor {
        return Ok(Mode::Executor { name });
    }
    if let Some(jobs) = jobs {
        options.jobs = jobs;
    }
    options.logs = logs;
    Ok(Mode::Chaos(options))
}

/// What becomes of a job, fixed at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fate {
    /// Steps fail at random and are retried; done, unless the attempts run
    /// out.
    Flaky,
    /// `charge` fails permanently: compensated.
    Declined,
    /// `ship` fails permanently and `release` always fails: error.
    Stuck,
}

impl Fate {
    fn of(n: usize) -> Self {
        if n % 50 == 13 {
            Self::Stuck
        } else if n % 20 == 7 {
            Self::Declined
        } else {
            Self::Flaky
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JobData)]
struct Task {
    #[job_id]
    id: String,
    fate: Fate,
    /// `s<step>@<token>` per committed step, `c<step>@<token>` per
    /// committed compensation: who wrote each version of the data.
    trail: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Step,
    Compensation,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::Compensation => "compensation",
        }
    }

    fn letter(self) -> char {
        match self {
            Self::Step => 's',
            Self::Compensation => 'c',
        }
    }
}

/// What one execution is about to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Fail,
    Permanent,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Permanent => "permanent",
        }
    }
}

/// The saga: every execution writes the ledger first, then works a little.
struct Saga {
    ledger: PgPool,
    executor: String,
}

#[process(id = "chaos-saga")]
impl Saga {
    #[step]
    async fn reserve(&self, ctx: &StepContext, task: &mut Task) -> StepResult {
        self.execute(ctx, task, Kind::Step).await
    }

    #[compensate(reserve)]
    async fn release(&self, ctx: &StepContext, task: &mut Task) -> StepResult {
        self.execute(ctx, task, Kind::Compensation).await
    }

    #[step]
    async fn charge(&self, ctx: &StepContext, task: &mut Task) -> StepResult {
        self.execute(ctx, task, Kind::Step).await
    }

    #[compensate(charge)]
    async fn refund(&self, ctx: &StepContext, task: &mut Task) -> StepResult {
        self.execute(ctx, task, Kind::Compensation).await
    }

    #[step]
    async fn ship(&self, ctx: &StepContext, task: &mut Task) -> StepResult {
        self.execute(ctx, task, Kind::Step).await
    }
}

impl Saga {
    async fn execute(&self, ctx: &StepContext, task: &mut Task, kind: Kind) -> StepResult {
        let step = ctx.step();
        let token = ctx.token();
        let verdict = match (task.fate, kind, step) {
            (Fate::Declined, Kind::Step, 1) | (Fate::Stuck, Kind::Step, 2) => Verdict::Permanent,
            (Fate::Stuck, Kind::Compensation, 0) => Verdict::Fail,
            _ if fastrand::f64() < FAILURE_RATE => Verdict::Fail,
            _ => Verdict::Ok,
        };
        sqlx::query(
            "INSERT INTO chaos.ledger (job_id, step, kind, token, attempt, executor, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&task.id)
        .bind(i32::try_from(step).unwrap_or(i32::MAX))
        .bind(kind.as_str())
        .bind(token)
        .bind(ctx.attempt())
        .bind(&self.executor)
        .bind(verdict.as_str())
        .execute(&self.ledger)
        .await
        .map_err(|error| StepError::retry(format!("ledger insert failed [{token}]: {error}")))?;

        // The work: long enough that a frozen executor is caught mid-step.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(10..=60))).await;
        match verdict {
            Verdict::Ok => {
                task.trail.push(format!("{}{step}@{token}", kind.letter()));
                Ok(StepOutcome::Success)
            }
            Verdict::Fail => Err(StepError::retry(format!("random failure [{token}]"))),
            Verdict::Permanent => Err(StepError::permanent(format!("declined [{token}]"))),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match mode {
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Executor { name } => match executor_child(&name).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("executor {name} failed: {error}");
                ExitCode::FAILURE
            }
        },
        Mode::Chaos(options) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "error".into()),
                )
                .init();
            let deadline = options.deadline();
            // Returning, however early, drops the runtime and with it every
            // child's handle, which kills the child.
            let run = tokio::time::timeout(deadline, chaos(options));
            let result = tokio::select! {
                result = run => result,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("chaos failed: interrupted");
                    return ExitCode::FAILURE;
                }
            };
            match result {
                Ok(Ok(true)) => ExitCode::SUCCESS,
                Ok(Ok(false)) => ExitCode::FAILURE,
                Ok(Err(error)) => {
                    eprintln!("chaos failed: {error}");
                    ExitCode::FAILURE
                }
                Err(_) => {
                    eprintln!("chaos failed: the run passed its deadline of {deadline:?}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Connection options for every pool of this program: named, and with
/// durable commits (see the module docs).
fn connect_options(url: &str, name: &str) -> Result<PgConnectOptions, BoxError> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options
        .application_name(name)
        .options([("synchronous_commit", "on")]))
}

async fn executor_child(name: &str) -> Result<(), BoxError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(Testimony)
        .init();

    // The parent holds the other end of stdin: once it is gone, so is this
    // executor, however the parent ended.
    std::thread::spawn(|| {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
        std::process::exit(0);
    });

    let url = std::env::var("DATABASE_URL").map_err(|_| "--executor needs DATABASE_URL")?;
    // Lazy, so that an executor started while the server is down waits for
    // it in `start`; a short acquire timeout, so that statements fail fast
    // while it is down instead of queueing behind a dead server.
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(connect_options(&url, name)?);
    let table = JobTable::new(SCHEMA, TABLE)?;
    let saga = Saga {
        ledger: pool.clone(),
        executor: name.to_owned(),
    };
    let mut config = ExecutorConfig::default();
    config.name = name.to_owned();
    config.max_workers = 12;
    config.lease_duration = LEASE;
    config.heartbeat_interval = HEARTBEAT;
    config.sweep_interval = SWEEP;
    config.sweep_jitter = Duration::from_millis(100);
    config.max_exec_count = 5;
    config.max_comp_count = 4;
    config.retry_backoff_base = Duration::from_millis(50);
    config.retry_backoff_max = Duration::from_secs(1);
    config.execution_timeout = Duration::from_secs(60);
    let executor = Executor::new(pool, table, saga, config)?;
    let _handle = executor.start().await?;
    std::future::pending::<()>().await;
    Ok(())
}

/// A tracing layer that tells the parent, one stdout line each, when the
/// runtime reports a refused write or lease renewal.
struct Testimony;

#[derive(Default)]
struct EventFields {
    message: String,
    count: u64,
}

impl tracing::field::Visit for EventFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "count" {
            self.count = value;
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "count" {
            self.count = u64::try_from(value).unwrap_or(0);
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Testimony {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        match fields.message.as_str() {
            "lease lost, attempt stopped" => println!("refused 1"),
            "leases lost, attempts cancelled" => println!("refused {}", fields.count),
            "job write failed, attempt stopped" => println!("write_failed 1"),
            _ => {}
        }
    }
}

const SETUP: &str = "
CREATE TABLE chaos.ledger (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    step INT NOT NULL,
    kind TEXT NOT NULL,
    token TEXT NOT NULL,
    attempt INT NOT NULL,
    executor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_job ON chaos.ledger (job_id, at);

CREATE TABLE chaos.audit (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    old_token TEXT NOT NULL,
    new_token TEXT NOT NULL,
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    old_run_type TEXT NOT NULL,
    new_run_type TEXT NOT NULL,
    old_next INT NOT NULL,
    new_next INT NOT NULL,
    old_exec_count INT NOT NULL,
    old_comp_count INT NOT NULL,
    lease_live BOOLEAN NOT NULL,
    data_changed BOOLEAN NOT NULL,
    trail_last TEXT,
    failure_changed BOOLEAN NOT NULL,
    failure JSONB
);
CREATE INDEX audit_job ON chaos.audit (job_id, at);

CREATE FUNCTION chaos.audit_job() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO chaos.audit (
        job_id, at, old_token, new_token, old_status, new_status,
        old_run_type, new_run_type, old_next, new_next,
        old_exec_count, old_comp_count, lease_live,
        data_changed, trail_last, failure_changed, failure
    )
    VALUES (
        NEW.job_id, clock_timestamp(), OLD.goroutine_id, NEW.goroutine_id,
        OLD.status, NEW.status, OLD.run_type, NEW.run_type,
        OLD.next_subprocess, NEW.next_subprocess,
        OLD.exec_count, OLD.comp_count,
        coalesce(OLD.goroutine_lease_expire_ts > now(), false),
        OLD.job_data IS DISTINCT FROM NEW.job_data,
        NEW.job_data::jsonb -> 'trail' ->> -1,
        OLD.last_failure IS DISTINCT FROM NEW.last_failure,
        NEW.last_failure
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER audit
AFTER UPDATE ON chaos.jobs
FOR EACH ROW
WHEN (
    OLD.goroutine_id IS DISTINCT FROM NEW.goroutine_id
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.run_type IS DISTINCT FROM NEW.run_type
    OR OLD.next_subprocess IS DISTINCT FROM NEW.next_subprocess
    OR OLD.job_data IS DISTINCT FROM NEW.job_data
    OR OLD.last_failure IS DISTINCT FROM NEW.last_failure
)
EXECUTE FUNCTION chaos.audit_job();
";

/// One fault of each kind, planted on the canary row: a write by a token
/// that does not hold the row, a claim of a live lease, and a ledger row of
/// step 2 with no committed step 1.
const CANARY_FAULTS: &str = "
INSERT INTO chaos.jobs (
    job_id, job_data, process_id, goroutine_id, goroutine_heart_beat_ts,
    goroutine_lease_expire_ts, created_ts, start_after_ts, last_update_ts
)
VALUES (
    'chaos-canary', '{\"trail\":[]}', 'chaos-canary', 'canary-holder', now(),
    now() + interval '1 hour', now(), now(), now()
);
UPDATE chaos.jobs
SET job_data = '{\"trail\":[\"s0@canary-intruder\"]}',
    next_subprocess = 1
WHERE job_id = 'chaos-canary';
UPDATE chaos.jobs
SET goroutine_id = 'canary-thief'
WHERE job_id = 'chaos-canary';
INSERT INTO chaos.ledger (job_id, step, kind, token, attempt, executor, outcome)
VALUES ('chaos-canary', 2, 'step', 'canary-thief', 1, 'canary', 'ok');
";

/// The whole run; `true` when every check passed.
async fn chaos(options: Options) -> Result<bool, BoxError> {
    let started = Instant::now();
    let url = postgres::database_url().await;
    let throwaway = std::env::var_os("DATABASE_URL").is_none();
    let admin = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect_options(&url, "chaos-parent")?)
        .await?;
    sqlx::raw_sql("DROP SCHEMA IF EXISTS chaos CASCADE; CREATE SCHEMA chaos")
        .execute(&admin)
        .await?;
    let table = JobTable::new(SCHEMA, TABLE)?;
    ssproc::migrate(&admin, &table).await?;
    sqlx::raw_sql(SETUP).execute(&admin).await?;
    sqlx::raw_sql(CANARY_FAULTS).execute(&admin).await?;

    let log_dir = options.logs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ssproc-chaos-{}", std::process::id()))
    });
    std::fs::create_dir_all(&log_dir)?;
    let mut fleet = Fleet::new(url.clone(), log_dir.clone())?;
    for _ in 0..EXECUTORS {
        fleet.spawn()?;
    }

    let client = Client::<Saga>::new(admin.clone(), table.clone());
    let registering = tokio::spawn(register(client, admin.clone(), options.clone()));

    let mut faults = Faults::default();
    for slot in 1..=options.slots {
        tokio::time::sleep(options.pause).await;
        let at = started.elapsed().as_secs_f64();
        if slot == options.restart_slot && throwaway {
            restart_server().await?;
            faults.pg_restarts += 1;
            eprintln!("chaos: {at:.1} s: server stopped for {PG_DOWN:?} and started");
        } else if slot == options.freeze_slot {
            let freeze = freeze(&admin, &mut fleet).await?;
            eprintln!(
                "chaos: {at:.1} s: froze {} for {} ms, jobs held: {}",
                freeze.name,
                freeze.frozen_for.as_millis(),
                freeze.held
            );
            faults.freeze = Some(freeze);
        } else {
            let kill = kill(&admin, &mut fleet).await?;
            eprintln!(
                "chaos: {at:.1} s: killed {}, jobs held: {}",
                kill.name,
                kill.held.len()
            );
            faults.kills.push(kill);
        }
    }
    let registered = registering.await??;

    let drained = wait_terminal(&admin, options.drain_deadline).await?;
    fleet.kill_all().await;
    let checks = check(&admin, &faults, registered).await?;
    let panics = count_panics(&log_dir);
    let crashed = fleet.crashed();
    let canary = canary(&admin).await?;

    let freeze = faults.freeze.clone().unwrap_or_default();
    let resumed = fleet.testified(&freeze.name).since(freeze.before);
    let pass = checks.lost == 0
        && checks.skipped == 0
        && checks.landed == 0
        && checks.stolen == 0
        && crashed == 0
        && panics == 0
        && canary
        && freeze.held > 0
        && freeze.contested > 0
        && resumed.total() > 0
        && (faults.pg_restarts == 1 || !throwaway);
    println!(
        "chaos registered={} done={} compensated={} error={} lost={} skipped={} \
         fenced_landed={} duplicates={} takeover_p50_ms={} takeover_max_ms={} lease_ms={} \
         kills={} pg_restarts={} frozen_ms={} frozen_held={} frozen_mid_step={} \
         frozen_taken_over={} frozen_contested={} frozen_refused={} frozen_write_errors={} stolen={} unattributed={} crashed={} \
         panics={} canary={} drained={} wall_s={:.1} result={}",
        registered,
        checks.done,
        checks.compensated,
        checks.error,
        checks.lost,
        checks.skipped,
        checks.landed,
        checks.duplicates,
        ms(checks.takeover_p50),
        ms(checks.takeover_max),
        LEASE.as_millis(),
        faults.kills.len(),
        faults.pg_restarts,
        freeze.frozen_for.as_millis(),
        freeze.held,
        freeze.mid_step,
        freeze.taken_over,
        freeze.contested,
        resumed.refused,
        resumed.write_errors,
        checks.stolen,
        checks.unattributed,
        crashed,
        panics,
        if canary { "caught" } else { "missed" },
        drained,
        started.elapsed().as_secs_f64(),
        if pass { "pass" } else { "FAIL" },
    );
    if pass && options.logs.is_none() {
        let _ = std::fs::remove_dir_all(&log_dir);
    } else {
        eprintln!("chaos: the executors' logs are in {}", log_dir.display());
    }
    admin.close().await;
    Ok(pass)
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string())
}

/// Registers `options.jobs` jobs in batches spread over
/// `options.register_over()`, retrying a batch while the server is down.
/// Returns how many were registered.
async fn register(
    client: Client<Saga>,
    admin: PgPool,
    options: Options,
) -> Result<usize, BoxError> {
    const GAP: Duration = Duration::from_millis(100);
    let ticks = (options.register_over().as_millis() / GAP.as_millis()).max(1) as usize;
    let batch = options.jobs.div_ceil(ticks).max(1);
    let tasks: Vec<Task> = (0..options.jobs)
        .map(|n| Task {
            id: format!("job-{n:05}"),
            fate: Fate::of(n),
            trail: Vec::new(),
        })
        .collect();
    let mut ticker = tokio::time::interval(GAP);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = 0;
    for chunk in tasks.chunks(batch) {
        ticker.tick().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let error = match client.register_many(chunk, StartAt::Now).await {
                Ok(()) => break,
                Err(error) => error,
            };
            // All or none: after a failure (even of the commit) either every
            // id of the batch exists or none does.
            let ids: Vec<&str> = chunk.iter().map(|t| t.id.as_str()).collect();
            let existing = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM chaos.jobs WHERE job_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_one(&admin)
            .await;
            match existing {
                Ok(n) if n == ids.len() as i64 => break,
                Ok(0) | Err(_) => {}
                Ok(n) => return Err(format!("a batch registered {n} of {} jobs", ids.len()).into()),
            }
            if Instant::now() > deadline {
                return Err(format!("registration kept failing: {error}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        registered += chunk.len();
    }
    Ok(registered)
}

async fn restart_server() -> Result<(), BoxError> {
    let cluster = postgres::cluster();
    tokio::task::spawn_blocking(|| cluster.stop()).await?;
    tokio::time::sleep(PG_DOWN).await;
    tokio::task::spawn_blocking(|| cluster.start()).await?;
    Ok(())
}

#[derive(Debug, Default)]
struct Faults {
    kills: Vec<Kill>,
    pg_restarts: usize,
    freeze: Option<Freeze>,
}

/// One SIGKILL: who, when (database clock), and the jobs it held.
#[derive(Debug)]
struct Kill {
    name: String,
    at: DateTime<Utc>,
    held: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct Freeze {
    name: String,
    held: usize,
    mid_step: usize,
    taken_over: usize,
    /// Jobs it held that were still running under their new holder when it
    /// was resumed.
    contested: usize,
    /// The executor's testimony when it was resumed.
    before: Testified,
    frozen_for: Duration,
}

async fn db_now(admin: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(admin)
        .await
}

/// Jobs whose lease `name`'s attempts held at `at`, with their tokens.
async fn held_by(
    admin: &PgPool,
    name: &str,
    at: DateTime<Utc>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job_id, goroutine_id::text
FROM chaos.jobs
WHERE process_id = $1
    AND status = 'ready'
    AND goroutine_id LIKE $2 || ':%'
    AND goroutine_lease_expire_ts > $3",
    )
    .bind(PROCESS_ID)
    .bind(name)
    .bind(at)
    .fetch_all(admin)
    .await
}

/// Kills a random executor and starts another.
async fn kill(admin: &PgPool, fleet: &mut Fleet) -> Result<Kill, BoxError> {
    let victim = fastrand::usize(..fleet.running.len());
    let at = db_now(admin).await?;
    let child = fleet.running.swap_remove(victim);
    child.signal("KILL").await?;
    let held = held_by(admin, &child.name, at).await?;
    fleet.spawn()?;
    Ok(Kill {
        name: child.name,
        at,
        held: held.into_iter().map(|(job_id, _)| job_id).collect(),
    })
}

/// Freezes an executor while it holds jobs, waits until they are all
/// taken over, resumes it and counts its refused writes.
async fn freeze(admin: &PgPool, fleet: &mut Fleet) -> Result<Freeze, BoxError> {
    let index = fastrand::usize(..fleet.running.len());
    let name = fleet.running[index].name.clone();
    // Stop it while it holds several jobs, just after it renewed (or took)
    // their leases: then they run out a lease's length into the freeze.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (held, renewed_s): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*),
    extract(epoch FROM clock_timestamp() - min(goroutine_heart_beat_ts))::float8
FROM chaos.jobs
WHERE process_id = $1
    AND status = 'ready'
    AND goroutine_id LIKE $2 || ':%'
    AND goroutine_lease_expire_ts > clock_timestamp()",
        )
        .bind(PROCESS_ID)
        .bind(&name)
        .fetch_one(admin)
        .await?;
        let fresh = renewed_s.is_some_and(|s| s < 0.1);
        if (held >= 4 && fresh) || (held >= 1 && Instant::now() > deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fleet.running[index].signal("STOP").await?;
    let frozen = Instant::now();
    let stopped_at = db_now(admin).await?;
    let held = held_by(admin, &name, stopped_at).await?;
    let tokens: Vec<&str> = held.iter().map(|(_, token)| token.as_str()).collect();
    let mid_step: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT token) FROM chaos.ledger WHERE token = ANY($1)")
            .bind(&tokens)
            .fetch_one(admin)
            .await?;

    // Resume it as soon as every job it held has another holder (and not
    // before a lease's length), so that its stale attempts meet jobs their
    // new holders are still running: those only the token fences off.
    let deadline = frozen + TAKEOVER_DEADLINE;
    let job_ids: Vec<&str> = held.iter().map(|(job_id, _)| job_id.as_str()).collect();
    let (taken_over, contested) = loop {
        let (still, contested): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE goroutine_id = ANY($2)),
    count(*) FILTER (WHERE status = 'ready' AND goroutine_id <> ALL($2))
FROM chaos.jobs
WHERE job_id = ANY($1)",
        )
        .bind(&job_ids)
        .bind(&tokens)
        .fetch_one(admin)
        .await?;
        let long_enough = frozen.elapsed() >= LEASE;
        if (still == 0 && long_enough) || Instant::now() > deadline {
            let taken_over = held.len() - usize::try_from(still)?;
            break (taken_over, usize::try_from(contested)?);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let before = fleet.testified(&name);
    fleet.running[index].signal("CONT").await?;
    let frozen_for = frozen.elapsed();

    // Its attempts learn at their next write or renewal that they are
    // fenced out; wait for that testimony, briefly, before the next fault.
    // The figures are read at the end of the run.
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected = held.len() as u64;
    while fleet.testified(&name).since(before).total() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Freeze {
        name,
        held: held.len(),
        mid_step: usize::try_from(mid_step)?,
        taken_over,
        contested,
        before,
        frozen_for,
    })
}

/// Waits until no job of the saga is ready; `false` when the deadline came
/// first.
async fn wait_terminal(admin: &PgPool, deadline: Duration) -> Result<bool, BoxError> {
    let deadline = Instant::now() + deadline;
    loop {
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM chaos.jobs WHERE process_id = $1 AND status = 'ready'",
        )
        .bind(PROCESS_ID)
        .fetch_one(admin)
        .await?;
        if ready == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Default)]
struct Checks {
    done: i64,
    compensated: i64,
    error: i64,
    lost: i64,
    skipped: i64,
    landed: i64,
    stolen: i64,
    unattributed: i64,
    duplicates: i64,
    takeover_p50: Option<Duration>,
    takeover_max: Option<Duration>,
}

/// Audited writes by a non-holder or to a row no longer ready, and writes
/// without an author, of the canary (`true`) or of the run (`false`).
const LANDED: &str = "
WITH writes AS (
    SELECT a.*,
        CASE
            WHEN a.data_changed THEN split_part(a.trail_last, '@', 2)
            WHEN a.failure_changed THEN substring(a.failure ->> 'message' FROM '\\[([^]]+)\\]')
        END AS author
    FROM chaos.audit AS a
    WHERE a.old_token = a.new_token
        AND (a.job_id = 'chaos-canary') = $1
)
SELECT count(*) FILTER (
        WHERE old_status <> 'ready'
            OR author <> old_token
            OR (author IS NULL AND failure_changed AND NOT (
                failure ->> 'run_type' = old_run_type
                AND (failure ->> 'attempt')::int = CASE
                    WHEN old_run_type = 'normal' THEN old_exec_count
                    ELSE old_comp_count
                END))
    ),
    count(*) FILTER (WHERE author IS NULL AND NOT failure_changed)
FROM writes";

/// Claims of a live lease or of a row no longer ready.
const STOLEN: &str = "
SELECT count(*)
FROM chaos.audit AS a
WHERE a.old_token <> a.new_token
    AND (a.lease_live OR a.old_status <> 'ready')
    AND (a.job_id = 'chaos-canary') = $1";

/// Step executions with no committed advance into them, or no successful
/// execution of the step before, earlier.
const SKIPPED: &str = "
SELECT count(*)
FROM chaos.ledger AS l
WHERE l.kind = 'step'
    AND l.step > 0
    AND (l.job_id = 'chaos-canary') = $1
    AND (
        NOT EXISTS (
            SELECT 1
            FROM chaos.audit AS a
            WHERE a.job_id = l.job_id
                AND a.old_next = l.step - 1
                AND a.new_next = l.step
                AND a.new_run_type = 'normal'
                AND a.at < l.at
        )
        OR NOT EXISTS (
            SELECT 1
            FROM chaos.ledger AS p
            WHERE p.job_id = l.job_id
                AND p.kind = 'step'
                AND p.step = l.step - 1
                AND p.outcome = 'ok'
                AND p.at < l.at
        )
    )";

async fn check(admin: &PgPool, faults: &Faults, registered: usize) -> Result<Checks, BoxError> {
    let mut checks = Checks::default();
    let (total, done, compensated, error): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
    count(*) FILTER (WHERE status = 'done'),
    count(*) FILTER (WHERE status = 'compensated'),
    count(*) FILTER (WHERE status = 'error')
FROM chaos.jobs
WHERE process_id = $1",
    )
    .bind(PROCESS_ID)
    .fetch_one(admin)
    .await?;
    checks.done = done;
    checks.compensated = compensated;
    checks.error = error;
    let missing = (registered as i64 - total).max(0);
    checks.lost = missing + (total - done - compensated - error);

    (checks.landed, checks.unattributed) =
        sqlx::query_as(LANDED).bind(false).fetch_one(admin).await?;
    checks.stolen = sqlx::query_scalar(STOLEN)
        .bind(false)
        .fetch_one(admin)
        .await?;
    checks.skipped = sqlx::query_scalar(SKIPPED)
        .bind(false)
        .fetch_one(admin)
        .await?;
    checks.duplicates = sqlx::query_scalar(
        "SELECT coalesce(sum(n - 1), 0)::bigint
FROM (
    SELECT count(*) AS n
    FROM chaos.ledger
    WHERE outcome = 'ok'
        AND job_id <> 'chaos-canary'
    GROUP BY job_id, kind, step
) AS executions",
    )
    .fetch_one(admin)
    .await?;

    let mut takeovers = Vec::new();
    for kill in &faults.kills {
        let waits: Vec<Option<f64>> = sqlx::query_scalar(
            "SELECT extract(epoch FROM min(l.at) - $3)::float8
FROM unnest($1::text[]) AS held(job_id)
LEFT JOIN chaos.ledger AS l
    ON l.job_id = held.job_id
    AND l.executor <> $2
    AND l.at > $3
GROUP BY held.job_id",
        )
        .bind(&kill.held)
        .bind(&kill.name)
        .bind(kill.at)
        .fetch_all(admin)
        .await?;
        takeovers.extend(waits.into_iter().flatten().map(Duration::from_secs_f64));
    }
    takeovers.sort();
    checks.takeover_p50 = takeovers
        .get(takeovers.len().saturating_sub(1) / 2)
        .copied();
    checks.takeover_max = takeovers.last().copied();
    Ok(checks)
}

/// Whether the checks find exactly the faults planted on the canary: one
/// landed write, one stolen claim, one skipped step.
async fn canary(admin: &PgPool) -> Result<bool, BoxError> {
    let (landed, _unattributed): (i64, i64) =
        sqlx::query_as(LANDED).bind(true).fetch_one(admin).await?;
    let stolen: i64 = sqlx::query_scalar(STOLEN)
        .bind(true)
        .fetch_one(admin)
        .await?;
    let skipped: i64 = sqlx::query_scalar(SKIPPED)
        .bind(true)
        .fetch_one(admin)
        .await?;
    Ok(landed == 1 && stolen == 1 && skipped == 1)
}

/// Lines of the executors' logs that report a panic.
fn count_panics(log_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| text.lines().filter(|l| l.contains("panicked")).count())
        .sum()
}

/// The running executor processes, and what they said.
struct Fleet {
    exe: PathBuf,
    url: String,
    log_dir: PathBuf,
    next: usize,
    running: Vec<Child>,
    /// What each executor reported, by name.
    testimony: Arc<Mutex<HashMap<String, Testified>>>,
    /// Executors that exited without being killed, with how they exited.
    crashes: Arc<Mutex<Vec<String>>>,
    watchers: Vec<JoinHandle<()>>,
}

/// What one executor said on stdout so far.
#[derive(Debug, Default, Clone, Copy)]
struct Testified {
    /// Writes and lease renewals of its attempts refused by the fence.
    refused: u64,
    /// Writes of its attempts that failed (the database did not answer).
    write_errors: u64,
}

impl Testified {
    fn since(self, earlier: Self) -> Self {
        Self {
            refused: self.refused - earlier.refused,
            write_errors: self.write_errors - earlier.write_errors,
        }
    }

    fn total(self) -> u64 {
        self.refused + self.write_errors
    }
}

/// One executor process. The process itself is owned by its watcher task,
/// which kills it when dropped.
struct Child {
    name: String,
    pid: u32,
    /// Set before this program kills it, so its exit is not a crash.
    killed: Arc<AtomicBool>,
    /// The child exits once this closes.
    _stdin: tokio::process::ChildStdin,
}

impl Child {
    async fn signal(&self, signal: &str) -> Result<(), BoxError> {
        if signal == "KILL" {
            self.killed.store(true, Ordering::SeqCst);
        }
        let status = tokio::process::Command::new("kill")
            .args(["-s", signal, &self.pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            return Err(format!("kill -s {signal} {} ({}) failed", self.pid, self.name).into());
        }
        Ok(())
    }
}

impl Fleet {
    fn new(url: String, log_dir: PathBuf) -> Result<Self, BoxError> {
        Ok(Self {
            exe: std::env::current_exe()?,
            url,
            log_dir,
            next: 1,
            running: Vec::new(),
            testimony: Arc::default(),
            crashes: Arc::default(),
            watchers: Vec::new(),
        })
    }

    /// Starts one more executor, named `exec-<n>`.
    fn spawn(&mut self) -> Result<(), BoxError> {
        let name = format!("exec-{}", self.next);
        self.next += 1;
        let log = std::fs::File::create(self.log_dir.join(format!("{name}.log")))?;
        let mut process = tokio::process::Command::new(&self.exe)
            .args(["--executor", &name])
            .env("DATABASE_URL", &self.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = process.id().ok_or("the executor exited at once")?;
        let stdin = process.stdin.take().ok_or("no stdin to the executor")?;
        let stdout = process.stdout.take().ok_or("no stdout from the executor")?;
        let killed = Arc::new(AtomicBool::new(false));

        let testimony = Arc::clone(&self.testimony);
        let crashes = Arc::clone(&self.crashes);
        let watched = Arc::clone(&killed);
        let who = name.clone();
        self.watchers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some((what, count)) = line.split_once(' ') else {
                    continue;
                };
                let count: u64 = count.parse().unwrap_or(0);
                let mut testimony = testimony.lock().expect("testimony poisoned");
                let testified = testimony.entry(who.clone()).or_default();
                match what {
                    "refused" => testified.refused += count,
                    "write_failed" => testified.write_errors += count,
                    _ => {}
                }
            }
            let status = process.wait().await;
            if !watched.load(Ordering::SeqCst) {
                let mut crashes = crashes.lock().expect("crash list poisoned");
                crashes.push(format!("{who}: {status:?}"));
            }
        }));
        self.running.push(Child {
            name,
            pid,
            killed,
            _stdin: stdin,
        });
        Ok(())
    }

    fn testified(&self, name: &str) -> Testified {
        let testimony = self.testimony.lock().expect("testimony poisoned");
        testimony.get(name).copied().unwrap_or_default()
    }

    fn crashed(&self) -> usize {
        let crashes = self.crashes.lock().expect("crash list poisoned");
        for crash in crashes.iter() {
            eprintln!("chaos: executor exited without being killed: {crash}");
        }
        crashes.len()
    }

    /// Kills every executor (a frozen one included) and waits for each.
    async fn kill_all(&mut self) {
        for child in self.running.drain(..) {
            if let Err(error) = child.signal("KILL").await {
                eprintln!("chaos: {error}");
            }
        }
        for watcher in self.watchers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), watcher).await;
        }
    }
}

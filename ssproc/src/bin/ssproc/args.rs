//! The command line: global options, commands and their arguments.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect and operate the jobs of ssproc processes in PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "ssproc",
    version,
    after_help = "Exit status: 0 on success, 1 when the command failed (the reason is \
                  printed as one line starting with `error:`), 2 on a usage error."
)]
pub(crate) struct Cli {
    /// The database, as a PostgreSQL URL (postgres://user:password@host/db).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub(crate) database_url: Option<String>,

    /// Schema of the jobs table.
    #[arg(long, default_value = "public", global = true)]
    pub(crate) schema: String,

    /// Name of the jobs table.
    #[arg(long, default_value = "ssproc_jobs", global = true)]
    pub(crate) table: String,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the jobs table and its indexes; running it again is harmless.
    Migrate,
    /// Check that the jobs table has every column, key and index ssproc needs.
    ///
    /// Reports every problem found, in this order: the table, each column
    /// in DDL order, the primary key, the indexes. A missing table is the
    /// only problem reported for it.
    Check,
    /// List, inspect and act on jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Count jobs by process and status, with how long the oldest due ready
    /// job has been due.
    ///
    /// OLDEST READY is measured from the time a ready job became due (its
    /// start-after time), so jobs scheduled for later or waiting out a
    /// retry's backoff do not count; a job being executed does.
    Stats(StatsArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List jobs matching the filters, newest first.
    List(Box<ListArgs>),
    /// Show every field of one job, its data and its last failure.
    Show(ShowArgs),
    /// Put a job in `error` back to `ready` at the step where it stopped.
    Retry(JobIdArg),
    /// Stop retrying a `ready` job and run its compensations.
    ///
    /// A job no attempt holds is compensated at once. A running attempt is
    /// fenced: it stops at its next write or heartbeat, and the
    /// compensation starts once its lease ends. The cancellation is
    /// recorded as the job's last failure.
    Cancel(JobIdArg),
    /// Delete a job in `done`, `compensated` or `error`.
    Delete(JobIdArg),
}

#[derive(Debug, Args)]
pub(crate) struct JobIdArg {
    /// The job id.
    pub(crate) job_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The job id.
    pub(crate) job_id: String,

    /// Print the job as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print the counts as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only jobs of this process.
    #[arg(long, value_name = "ID")]
    pub(crate) process: Option<String>,

    /// Only jobs in these statuses (repeat the flag or separate by commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) status: Vec<StatusArg>,

    /// Only jobs in this run type.
    #[arg(long, value_enum)]
    pub(crate) run_type: Option<RunTypeArg>,

    /// Only the job with this id.
    #[arg(long, value_name = "ID")]
    pub(crate) job_id: Option<String>,

    /// Only jobs with at least this many normal attempts.
    #[arg(long, value_name = "N")]
    pub(crate) min_exec: Option<i32>,

    /// Only jobs with at most this many normal attempts.
    #[arg(long, value_name = "N")]
    pub(crate) max_exec: Option<i32>,

    /// Only jobs with at least this many compensation attempts.
    #[arg(long, value_name = "N")]
    pub(crate) min_comp: Option<i32>,

    /// Only jobs with at most this many compensation attempts.
    #[arg(long, value_name = "N")]
    pub(crate) max_comp: Option<i32>,

    #[command(flatten)]
    pub(crate) times: TimeArgs,

    /// Page to show, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page: u32,

    /// Jobs per page (or per batch with --after).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) page_size: u32,

    /// List the jobs that come after this job in newest-first order, instead
    /// of a page: stays fast however deep. The listing ends with the id to
    /// pass for the next batch.
    #[arg(long, value_name = "JOB_ID", conflicts_with = "page")]
    pub(crate) after: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Time ranges: `FROM` is inclusive, `UNTIL` exclusive, both RFC 3339
/// timestamps such as 2024-05-01T12:00:00Z.
#[derive(Debug, Args)]
pub(crate) struct TimeArgs {
    /// Only jobs registered at or after this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) created_from: Option<DateTime<Utc>>,

    /// Only jobs registered before this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) created_until: Option<DateTime<Utc>>,

    /// Only jobs first started at or after this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) started_from: Option<DateTime<Utc>>,

    /// Only jobs first started before this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) started_until: Option<DateTime<Utc>>,

    /// Only jobs that ended at or after this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) ended_from: Option<DateTime<Utc>>,

    /// Only jobs that ended before this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) ended_until: Option<DateTime<Utc>>,

    /// Only jobs last updated at or after this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) updated_from: Option<DateTime<Utc>>,

    /// Only jobs last updated before this time.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub(crate) updated_until: Option<DateTime<Utc>>,
}

/// A job status, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Ready,
    Done,
    Compensated,
    Error,
}

/// A run type, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RunTypeArg {
    Normal,
    Compensation,
}

impl From<StatusArg> for ssproc::JobStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Ready => Self::Ready,
            StatusArg::Done => Self::Done,
            StatusArg::Compensated => Self::Compensated,
            StatusArg::Error => Self::Error,
        }
    }
}

impl From<RunTypeArg> for ssproc::RunType {
    fn from(run_type: RunTypeArg) -> Self {
        match run_type {
            RunTypeArg::Normal => Self::Normal,
            RunTypeArg::Compensation => Self::Compensation,
        }
    }
}

fn timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("{error}: expected an RFC 3339 time such as 2024-05-01T12:00:00Z"))
}

//! `ssproc`: inspect and operate the jobs table of ssproc from a shell.
//!
//! Build it with `cargo install --path ssproc --features cli`; run
//! `ssproc --help` for the commands. Every command connects through
//! `--database-url` (or `DATABASE_URL`) to the table named by `--schema` and
//! `--table`, does one thing, prints its result on stdout and exits 0; on
//! failure it prints one line starting with `error:` on stderr and exits 1
//! (2 for a usage error).

mod args;
mod connect;
mod error;
mod jobs;
mod render;
mod schema;
mod stats;

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser as _;
use ssproc::{JobTable, Jobs};

use crate::args::{Cli, Command, JobsCommand};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::from_error(Some("could not start"), &error)),
    };
    match runtime.block_on(run(cli)) {
        Ok(output) => {
            // A closed stdout (`ssproc jobs list | head`) is no failure.
            let _ = std::io::stdout().write_all(output.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

async fn run(cli: Cli) -> Result<String, CliError> {
    let table =
        JobTable::new(cli.schema, cli.table).map_err(|error| CliError::from_error(None, &error))?;
    let pool = connect::connect(cli.database_url.as_deref()).await?;
    let jobs = Jobs::new(pool.clone(), table.clone());

    let output = match &cli.command {
        Command::Migrate => schema::migrate(&pool, &table).await,
        Command::Check => schema::check(&pool, &table).await,
        Command::Jobs(JobsCommand::List(args)) => jobs::list(&jobs, args).await,
        Command::Jobs(JobsCommand::Show(args)) => jobs::show(&jobs, args).await,
        Command::Jobs(JobsCommand::Retry(arg)) => jobs::retry(&jobs, &arg.job_id).await,
        Command::Jobs(JobsCommand::Cancel(arg)) => jobs::cancel(&jobs, &arg.job_id).await,
        Command::Jobs(JobsCommand::Delete(arg)) => jobs::delete(&jobs, &arg.job_id).await,
        Command::Stats(args) => stats::stats(&jobs, args.json).await,
    };
    pool.close().await;
    output
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// Help and version go to stdout in full; a usage error is cut to its first
/// line, which names the problem.
fn usage(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = error.render().to_string();
            let line = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}

//! `jobs`: list, show, retry, cancel and delete.

use std::fmt::Write as _;

use serde_json::{json, Value};
use ssproc::{Cursor, Job, JobFilter, Jobs, TimeRange};

use crate::args::{ListArgs, ShowArgs};
use crate::error::CliError;
use crate::render;

/// One page, or with `--after` one batch, of the jobs matching the filters.
pub(crate) async fn list(jobs: &Jobs, args: &ListArgs) -> Result<String, CliError> {
    let filter = filter(args);

    if let Some(after) = &args.after {
        let Some(last_seen) = jobs.job(after).await? else {
            return Err(CliError::new(format!(
                "job {after:?} given to --after does not exist"
            )));
        };
        let cursor = Cursor::after(&last_seen);
        let batch = jobs
            .list_after(&filter, Some(&cursor), args.page_size)
            .await?;
        let next = batch
            .next
            .as_ref()
            .and(batch.jobs.last())
            .map(|job| job.job_id.as_str());
        if args.json {
            let jobs: Vec<Value> = batch.jobs.iter().map(render::job_json).collect();
            return Ok(format!(
                "{:#}\n",
                json!({ "jobs": jobs, "next_after": next })
            ));
        }
        let mut out = jobs_table(&batch.jobs);
        match next {
            Some(next) => {
                let _ = writeln!(
                    out,
                    "{}; next batch: --after {}",
                    count(batch.jobs.len()),
                    render::cell(next)
                );
            }
            None => {
                let _ = writeln!(out, "{}; no more", count(batch.jobs.len()));
            }
        }
        return Ok(out);
    }

    let page = jobs.list(&filter, args.page - 1, args.page_size).await?;
    if args.json {
        let jobs: Vec<Value> = page.jobs.iter().map(render::job_json).collect();
        let listing = json!({
            "jobs": jobs,
            "total": page.total,
            "page": args.page,
            "page_size": args.page_size,
        });
        return Ok(format!("{listing:#}\n"));
    }
    if page.total == 0 {
        return Ok("no jobs match\n".to_owned());
    }
    let pages = u64::try_from(page.total)
        .unwrap_or(0)
        .div_ceil(u64::from(args.page_size));
    if page.jobs.is_empty() {
        return Ok(format!(
            "page {} of {pages} is empty: {} jobs match\n",
            args.page, page.total
        ));
    }
    let first = u64::from(args.page - 1) * u64::from(args.page_size) + 1;
    let last = first + page.jobs.len() as u64 - 1;
    let mut out = jobs_table(&page.jobs);
    let _ = writeln!(
        out,
        "page {} of {pages}: jobs {first}-{last} of {}",
        args.page, page.total
    );
    Ok(out)
}

/// Every field of one job.
pub(crate) async fn show(jobs: &Jobs, args: &ShowArgs) -> Result<String, CliError> {
    let job_id = &args.job_id;
    let Some(job) = jobs.job(job_id).await? else {
        return Err(CliError::new(format!("job {job_id:?} does not exist")));
    };
    if args.json {
        return Ok(format!("{:#}\n", render::job_json(&job)));
    }

    let fields = [
        ("job id", render::cell(&job.job_id)),
        ("process", render::cell(&job.process_id)),
        ("status", job.status.to_string()),
        ("run type", job.run_type.to_string()),
        ("next step", job.next_step.to_string()),
        ("exec count", job.exec_count.to_string()),
        ("comp count", job.comp_count.to_string()),
        ("created", render::time(job.created_at)),
        ("start after", render::time(job.start_after)),
        ("started", render::maybe_time(job.started_at)),
        ("ended", render::maybe_time(job.ended_at)),
        ("updated", render::time(job.updated_at)),
        ("token", token(&job.token)),
        ("heartbeat", render::maybe_time(job.heartbeat_at)),
        ("lease expires", render::maybe_time(job.lease_expires_at)),
        ("tokens", tokens(&job)),
        (
            "last failure",
            job.last_failure
                .as_ref()
                .map_or_else(|| "-".to_owned(), render::failure),
        ),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{:<15}{value}", format!("{name}:"));
    }
    let _ = writeln!(out, "data:\n{}", render::pretty_data(&job));
    Ok(out)
}

/// Puts a job in `error` back to work.
pub(crate) async fn retry(jobs: &Jobs, job_id: &str) -> Result<String, CliError> {
    jobs.retry(job_id).await?;
    Ok(format!(
        "job {job_id:?} is ready again at the step where it stopped\n"
    ))
}

/// Stops retrying a ready job and compensates it; says when compensation
/// waits for a running attempt's lease.
pub(crate) async fn cancel(jobs: &Jobs, job_id: &str) -> Result<String, CliError> {
    Ok(match jobs.cancel(job_id).await? {
        Some(until) => format!(
            "job {job_id:?} is cancelled and will be compensated once the running \
             attempt's lease ends, at {}\n",
            render::time(until)
        ),
        None => format!("job {job_id:?} is cancelled and will be compensated now\n"),
    })
}

/// `1 job`, `2 jobs`.
fn count(jobs: usize) -> String {
    match jobs {
        1 => "1 job".to_owned(),
        n => format!("{n} jobs"),
    }
}

/// Deletes a finished job.
pub(crate) async fn delete(jobs: &Jobs, job_id: &str) -> Result<String, CliError> {
    jobs.delete(job_id).await?;
    Ok(format!("job {job_id:?} is deleted\n"))
}

fn filter(args: &ListArgs) -> JobFilter {
    let mut filter = JobFilter::new();
    if let Some(process) = &args.process {
        filter = filter.process_id(process.clone());
    }
    filter = filter.statuses(args.status.iter().map(|status| (*status).into()));
    if let Some(run_type) = args.run_type {
        filter = filter.run_type(run_type.into());
    }
    if let Some(job_id) = &args.job_id {
        filter = filter.job_id(job_id.clone());
    }
    if let Some(count) = args.min_exec {
        filter = filter.min_exec_count(count);
    }
    if let Some(count) = args.max_exec {
        filter = filter.max_exec_count(count);
    }
    if let Some(count) = args.min_comp {
        filter = filter.min_comp_count(count);
    }
    if let Some(count) = args.max_comp {
        filter = filter.max_comp_count(count);
    }
    let times = &args.times;
    filter
        .created(TimeRange::new(times.created_from, times.created_until))
        .started(TimeRange::new(times.started_from, times.started_until))
        .ended(TimeRange::new(times.ended_from, times.ended_until))
        .updated(TimeRange::new(times.updated_from, times.updated_until))
}

fn jobs_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                render::cell(&job.job_id),
                render::cell(&job.process_id),
                job.status.to_string(),
                job.run_type.to_string(),
                job.next_step.to_string(),
                job.exec_count.to_string(),
                job.comp_count.to_string(),
                render::time(job.created_at),
                render::time(job.updated_at),
            ]
        })
        .collect();
    let header = [
        "JOB ID", "PROCESS", "STATUS", "RUN", "STEP", "EXEC", "COMP", "CREATED", "UPDATED",
    ];
    render::table(&header, &rows)
}

fn token(token: &str) -> String {
    if token.is_empty() {
        "-".to_owned()
    } else {
        render::cell(token)
    }
}

fn tokens(job: &Job) -> String {
    if job.tokens.is_empty() {
        return "-".to_owned();
    }
    job.tokens
        .iter()
        .map(|token| render::cell(token))
        .collect::<Vec<_>>()
        .join(", ")
}

//! `stats`: counts by process and status.

use serde_json::{json, Value};
use ssproc::Jobs;

use crate::error::CliError;
use crate::render;

/// Counts per process, as a table or JSON.
pub(crate) async fn stats(jobs: &Jobs, json: bool) -> Result<String, CliError> {
    let stats = jobs.stats().await?;
    if json {
        let processes: Vec<Value> = stats
            .iter()
            .map(|process| {
                json!({
                    "process_id": process.process_id,
                    "ready": process.ready,
                    "done": process.done,
                    "compensated": process.compensated,
                    "error": process.error,
                    "other": process.other,
                    "oldest_ready_age_seconds": process
                        .oldest_ready_age
                        .map(|age| age.as_secs_f64()),
                })
            })
            .collect();
        return Ok(format!("{:#}\n", Value::Array(processes)));
    }

    if stats.is_empty() {
        return Ok("no jobs\n".to_owned());
    }
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|process| {
            vec![
                render::cell(&process.process_id),
                process.ready.to_string(),
                process.done.to_string(),
                process.compensated.to_string(),
                process.error.to_string(),
                process.other.to_string(),
                process
                    .oldest_ready_age
                    .map_or_else(|| "-".to_owned(), render::age),
            ]
        })
        .collect();
    let header = [
        "PROCESS",
        "READY",
        "DONE",
        "COMPENSATED",
        "ERROR",
        "OTHER",
        "OLDEST READY",
    ];
    Ok(render::table(&header, &rows))
}

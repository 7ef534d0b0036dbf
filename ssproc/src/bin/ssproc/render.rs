//! How jobs and counts look on a terminal and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use ssproc::{Failure, Job};

/// Columns padded to their widest cell, two spaces apart; the last column
/// is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        out.push('\n');
    }
    out
}

/// A timestamp as RFC 3339 in UTC, to the second: the form the filters take.
pub(crate) fn time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional timestamp, `-` when unset.
pub(crate) fn maybe_time(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(|| "-".to_owned(), self::time)
}

/// A timestamp as RFC 3339 with microseconds, for JSON.
fn precise_time(time: DateTime<Utc>) -> Value {
    Value::String(time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// An age in its two largest units: `3d 4h`, `5m 12s`, `40s`.
pub(crate) fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    let seconds = seconds % 60;
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Text from the database made safe for one table cell: control
/// characters escaped.
pub(crate) fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The failure on one line: `step 1 (charge), normal attempt 3, error: ...`;
/// without the parentheses when the step's name is not known.
pub(crate) fn failure(failure: &Failure) -> String {
    let name = match failure.step_name.as_str() {
        "" => String::new(),
        name => format!(" ({})", cell(name)),
    };
    format!(
        "step {}{name}, {} attempt {}, {}: {}",
        failure.step,
        failure.run_type,
        failure.attempt,
        failure_kind(failure),
        cell(&failure.message)
    )
}

fn failure_kind(failure: &Failure) -> String {
    match serde_json::to_value(failure.kind) {
        Ok(Value::String(kind)) => kind,
        _ => "unknown".to_owned(),
    }
}

/// The stored job data as JSON, or as a string when it does not parse.
fn data(job: &Job) -> Value {
    serde_json::from_str(&job.job_data).unwrap_or_else(|_| Value::String(job.job_data.clone()))
}

/// The job data pretty-printed, or as stored when it does not parse.
pub(crate) fn pretty_data(job: &Job) -> String {
    match serde_json::from_str::<Value>(&job.job_data) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| job.job_data.clone()),
        Err(_) => job.job_data.clone(),
    }
}

/// Every field of `job` as one JSON object.
pub(crate) fn job_json(job: &Job) -> Value {
    let optional = |time: Option<DateTime<Utc>>| time.map_or(Value::Null, precise_time);
    json!({
        "job_id": job.job_id,
        "process_id": job.process_id,
        "status": job.status.as_str(),
        "run_type": job.run_type.as_str(),
        "next_step": job.next_step,
        "exec_count": job.exec_count,
        "comp_count": job.comp_count,
        "created_at": precise_time(job.created_at),
        "start_after": precise_time(job.start_after),
        "started_at": optional(job.started_at),
        "ended_at": optional(job.ended_at),
        "updated_at": precise_time(job.updated_at),
        "token": job.token,
        "heartbeat_at": optional(job.heartbeat_at),
        "lease_expires_at": optional(job.lease_expires_at),
        "tokens": job.tokens,
        "last_failure": serde_json::to_value(&job.last_failure).unwrap_or(Value::Null),
        "data": data(job),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{age, cell, table};

    #[test]
    fn ages_keep_two_units() {
        assert_eq!(age(Duration::from_secs(42)), "42s");
        assert_eq!(age(Duration::from_secs(5 * 60 + 12)), "5m 12s");
        assert_eq!(age(Duration::from_secs(2 * 3_600 + 61)), "2h 1m");
        assert_eq!(age(Duration::from_secs(3 * 86_400 + 4 * 3_600)), "3d 4h");
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![vec!["a-long-id".to_owned(), "x".to_owned()]];
        assert_eq!(table(&["ID", "V"], &rows), "ID         V\na-long-id  x\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(cell("a\nb\tc"), "a\\nb\\tc");
    }
}

//! Selecting jobs: filters, pages and cursors.

use chrono::{DateTime, Utc};

use crate::job::{Job, JobStatus, RunType};

/// Which jobs to list. Every condition set must hold; an empty filter
/// matches every job of the table.
///
/// ```
/// # use ssproc_runtime as ssproc;
/// use ssproc::{JobFilter, JobStatus};
///
/// let failed = JobFilter::new()
///     .process_id("order-fulfilment")
///     .statuses([JobStatus::Error, JobStatus::Compensated])
///     .min_exec_count(2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs of this process.
    pub process_id: Option<String>,
    /// Only jobs in one of these statuses; empty means any.
    pub statuses: Vec<JobStatus>,
    /// Only jobs in this run type.
    pub run_type: Option<RunType>,
    /// Only the job with this id.
    pub job_id: Option<String>,
    /// Only jobs with at least this many normal attempts.
    pub min_exec_count: Option<i32>,
    /// Only jobs with at most this many normal attempts.
    pub max_exec_count: Option<i32>,
    /// Only jobs with at least this many compensation attempts.
    pub min_comp_count: Option<i32>,
    /// Only jobs with at most this many compensation attempts.
    pub max_comp_count: Option<i32>,
    /// Only jobs registered within this range.
    pub created: TimeRange,
    /// Only jobs first started within this range (never started: excluded
    /// once either bound is set).
    pub started: TimeRange,
    /// Only jobs that ended within this range (not ended: excluded once
    /// either bound is set).
    pub ended: TimeRange,
    /// Only jobs last updated within this range.
    pub updated: TimeRange,
}

/// A half-open time range, `from <= t < until`; either side may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// The range `from <= t < until`, either side open when `None`.
    pub fn new(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        Self { from, until }
    }

    /// Whether neither bound is set.
    pub fn is_open(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }
}

impl JobFilter {
    /// A filter that matches every job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only jobs of `process_id`.
    pub fn process_id(mut self, process_id: impl Into<String>) -> Self {
        self.process_id = Some(process_id.into());
        self
    }

    /// Only jobs in `status` (added to any statuses set before).
    pub fn status(mut self, status: JobStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only jobs in one of `statuses`.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = JobStatus>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// Only jobs in `run_type`.
    pub fn run_type(mut self, run_type: RunType) -> Self {
        self.run_type = Some(run_type);
        self
    }

    /// Only the job `job_id`.
    pub fn job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }

    /// Only jobs with at least `count` normal attempts.
    pub fn min_exec_count(mut self, count: i32) -> Self {
        self.min_exec_count = Some(count);
        self
    }

    /// Only jobs with at most `count` normal attempts.
    pub fn max_exec_count(mut self, count: i32) -> Self {
        self.max_exec_count = Some(count);
        self
    }

    /// Only jobs with at least `count` compensation attempts.
    pub fn min_comp_count(mut self, count: i32) -> Self {
        self.min_comp_count = Some(count);
        self
    }

    /// Only jobs with at most `count` compensation attempts.
    pub fn max_comp_count(mut self, count: i32) -> Self {
        self.max_comp_count = Some(count);
        self
    }

    /// Only jobs registered within `range`.
    pub fn created(mut self, range: TimeRange) -> Self {
        self.created = range;
        self
    }

    /// Only jobs first started within `range`.
    pub fn started(mut self, range: TimeRange) -> Self {
        self.started = range;
        self
    }

    /// Only jobs that ended within `range`.
    pub fn ended(mut self, range: TimeRange) -> Self {
        self.ended = range;
        self
    }

    /// Only jobs last updated within `range`.
    pub fn updated(mut self, range: TimeRange) -> Self {
        self.updated = range;
        self
    }
}

/// One page of a filtered listing, newest first, with the total count.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs on this page, newest first (by `created_ts`, then `job_id`).
    pub jobs: Vec<Job>,
    /// How many jobs match the filter on all pages.
    pub total: i64,
}

/// Where a cursor listing resumes: just after the last job of the previous
/// batch, in newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) job_id: String,
}

impl Cursor {
    /// The cursor that resumes after `job`.
    pub fn after(job: &Job) -> Self {
        Self {
            created_at: job.created_at,
            job_id: job.job_id.clone(),
        }
    }
}

/// One batch of a cursor listing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CursorPage {
    /// The jobs of this batch, newest first.
    pub jobs: Vec<Job>,
    /// Where the next batch starts; `None` after the last batch.
    pub next: Option<Cursor>,
}

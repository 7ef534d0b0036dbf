//! Where jobs live and how an executor runs them.

use std::time::Duration;

use crate::error::ConfigError;

/// The longest identifier PostgreSQL keeps without truncating it.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The jobs table: a schema and a table name.
///
/// Both must be plain identifiers: an ASCII letter or underscore, then ASCII
/// letters, digits, underscores or `$`, at most 63 bytes. They are quoted in
/// every statement all the same, so upper-case letters are kept as written.
/// The default is `public.ssproc_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobTable {
    schema: String,
    table: String,
}

impl JobTable {
    /// The table `schema.table`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Identifier`] when either name is not a plain identifier.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Result<Self, ConfigError> {
        let schema = schema.into();
        let table = table.into();
        check_identifier("schema", &schema)?;
        check_identifier("table", &table)?;
        Ok(Self { schema, table })
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `schema.table`, unquoted, as errors and logs show it.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl Default for JobTable {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            table: "ssproc_jobs".to_owned(),
        }
    }
}

fn check_identifier(what: &'static str, name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some("it is longer than 63 bytes")
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        Some("it must start with an ASCII letter or an underscore")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        Some("it may hold only ASCII letters, digits, underscores and $")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::Identifier {
            what,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// How an executor claims and runs jobs.
///
/// Defaults follow the Go library this one descends from. Start from
/// [`ExecutorConfig::default`] and set the fields you need (the struct is
/// `#[non_exhaustive]`, so struct update syntax works only inside this
/// crate); it is checked by [`Executor::new`](crate::Executor::new).
///
/// ```
/// # use ssproc_runtime as ssproc;
/// use std::time::Duration;
///
/// let mut config = ssproc::ExecutorConfig::default();
/// config.name = "billing-eu".to_owned();
/// config.max_workers = 16;
/// config.heartbeat_interval = Duration::from_secs(10);
/// config.lease_duration = Duration::from_secs(30);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecutorConfig {
    /// Prefix of every attempt token, to tell executors apart in the
    /// `goroutine_id` column. Default: empty. At most
    /// [`MAX_NAME_LEN`](ExecutorConfig::MAX_NAME_LEN) bytes, without NUL
    /// characters. The token is the prefix, a random executor instance id
    /// and two counters, and stays within 130 bytes.
    pub name: String,
    /// Jobs run at once by this executor. Default: the number of CPUs.
    /// Must be at least 1.
    pub max_workers: usize,
    /// Most jobs claimed by one claim statement. Default: 100. Must be at
    /// least 1; a claim takes at most the idle workers anyway.
    pub max_jobs_per_sweep: usize,
    /// How often leases are renewed. Default: 45 s. Must be positive and
    /// below `lease_duration`.
    pub heartbeat_interval: Duration,
    /// How long a claim or a heartbeat holds a job, measured on the
    /// database clock. Default: 60 s. Another executor takes a job over once
    /// its lease has run out.
    pub lease_duration: Duration,
    /// How often the executor looks for due jobs when nothing wakes it.
    /// Notifications wake it for new jobs; the sweep finds jobs whose start
    /// time or backoff has come, and jobs whose lease expired. Default: 50 s.
    pub sweep_interval: Duration,
    /// Up to this much random time is added to each sweep interval, so that
    /// executors started together do not sweep together. Default: 1 s; zero
    /// is allowed.
    pub sweep_jitter: Duration,
    /// The longest one attempt may run, all its steps together. The attempt
    /// is then cancelled and counts as a failure of the step it was in.
    /// Default: 5 min.
    pub execution_timeout: Duration,
    /// Attempts of normal runs before the job is compensated (or ends in
    /// `error` when the process has no compensation). Default: 5. Must be at
    /// least 1.
    pub max_exec_count: i32,
    /// Attempts of compensation runs before the job ends in `error`.
    /// Default: 5. Must be at least 1.
    pub max_comp_count: i32,
    /// Delay before the first retry; doubled per attempt, with up to half of
    /// it added as random jitter. Default: 1 s.
    pub retry_backoff_base: Duration,
    /// The longest delay between retries. Default: 5 min. Must not be below
    /// `retry_backoff_base`.
    pub retry_backoff_max: Duration,
    /// How long shutdown waits for running attempts before cancelling them.
    /// Default: 30 s; zero cancels at once.
    pub shutdown_grace_period: Duration,
    /// Consecutive failed heartbeats after which the attempts they should
    /// have renewed are cancelled, since their leases may be running out.
    /// Default: 3. Must be at least 1.
    pub max_heartbeat_failures: u32,
    /// Whether the executor deletes old `done` and `compensated` jobs of its
    /// process. Default: `false`. When `true`, `cleanup_interval` and
    /// `cleanup_threshold` must be set. `ready` and `error` jobs are never
    /// deleted.
    pub cleanup_enabled: bool,
    /// How often cleanup runs. Default: unset; required with cleanup.
    pub cleanup_interval: Option<Duration>,
    /// How long after its end a finished job is kept. Default: unset;
    /// required with cleanup.
    pub cleanup_threshold: Option<Duration>,
    /// Rows deleted per statement. Default: 500. Must be at least 1.
    pub cleanup_batch_size: usize,
    /// Start even when the process's step list changed in a way that moves
    /// open jobs to other steps (a step removed, reordered or inserted
    /// before where they stand). Default: `false`: such a change is refused
    /// at start with [`StartError::StepsChanged`](crate::StartError).
    /// Appending steps is always allowed.
    pub allow_step_changes: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            max_workers: std::thread::available_parallelism().map_or(1, usize::from),
            max_jobs_per_sweep: 100,
            heartbeat_interval: Duration::from_secs(45),
            lease_duration: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(50),
            sweep_jitter: Duration::from_secs(1),
            execution_timeout: Duration::from_secs(5 * 60),
            max_exec_count: 5,
            max_comp_count: 5,
            retry_backoff_base: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(5 * 60),
            shutdown_grace_period: Duration::from_secs(30),
            max_heartbeat_failures: 3,
            cleanup_enabled: false,
            cleanup_interval: None,
            cleanup_threshold: None,
            cleanup_batch_size: 500,
            allow_step_changes: false,
        }
    }
}

/// Durations handed to PostgreSQL (as seconds) must fit comfortably.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

impl ExecutorConfig {
    /// The longest [`name`](ExecutorConfig::name), in bytes.
    pub const MAX_NAME_LEN: usize = 64;

    /// Checks every field; the first problem found is returned.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NameTooLong`], [`ConfigError::NameNul`],
    /// [`ConfigError::ZeroCount`], [`ConfigError::ZeroDuration`],
    /// [`ConfigError::DurationTooLarge`], [`ConfigError::CleanupUnset`],
    /// [`ConfigError::LeaseNotAboveHeartbeat`] or
    /// [`ConfigError::BackoffMaxBelowBase`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The name goes into every token: one the column cannot store would
        // fail every claim.
        if self.name.len() > Self::MAX_NAME_LEN {
            return Err(ConfigError::NameTooLong {
                len: self.name.len(),
                max: Self::MAX_NAME_LEN,
            });
        }
        if self.name.contains('\0') {
            return Err(ConfigError::NameNul {
                name: self.name.clone(),
            });
        }
        let counts = [
            ("max_workers", self.max_workers as i64),
            ("max_jobs_per_sweep", self.max_jobs_per_sweep as i64),
            ("max_exec_count", i64::from(self.max_exec_count)),
            ("max_comp_count", i64::from(self.max_comp_count)),
            (
                "max_heartbeat_failures",
                i64::from(self.max_heartbeat_failures),
            ),
            ("cleanup_batch_size", self.cleanup_batch_size as i64),
        ];
        for (field, value) in counts {
            if value <= 0 {
                return Err(ConfigError::ZeroCount { field });
            }
        }
        let positive = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("lease_duration", self.lease_duration),
            ("sweep_interval", self.sweep_interval),
            ("execution_timeout", self.execution_timeout),
            ("retry_backoff_base", self.retry_backoff_base),
            ("retry_backoff_max", self.retry_backoff_max),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.cleanup_enabled {
            for (field, value) in [
                ("cleanup_interval", self.cleanup_interval),
                ("cleanup_threshold", self.cleanup_threshold),
            ] {
                match value {
                    None => return Err(ConfigError::CleanupUnset { field }),
                    Some(value) if value.is_zero() => {
                        return Err(ConfigError::ZeroDuration { field })
                    }
                    Some(value) if value > MAX_DURATION => {
                        return Err(ConfigError::DurationTooLarge { field, value })
                    }
                    Some(_) => {}
                }
            }
        }
        let bounded = positive
            .into_iter()
            .chain([("sweep_jitter", self.sweep_jitter)])
            .chain([("shutdown_grace_period", self.shutdown_grace_period)]);
        for (field, value) in bounded {
            if value > MAX_DURATION {
                return Err(ConfigError::DurationTooLarge { field, value });
            }
        }
        if self.lease_duration <= self.heartbeat_interval {
            return Err(ConfigError::LeaseNotAboveHeartbeat {
                lease: self.lease_duration,
                heartbeat: self.heartbeat_interval,
            });
        }
        if self.retry_backoff_max < self.retry_backoff_base {
            return Err(ConfigError::BackoffMaxBelowBase {
                base: self.retry_backoff_base,
                max: self.retry_backoff_max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        ExecutorConfig::default().validate().unwrap();
    }

    #[test]
    fn lease_must_exceed_heartbeat() {
        let config = ExecutorConfig {
            heartbeat_interval: Duration::from_secs(60),
            ..ExecutorConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::LeaseNotAboveHeartbeat { .. })
        ));
    }

    #[test]
    fn zero_workers_rejected() {
        let config = ExecutorConfig {
            max_workers: 0,
            ..ExecutorConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroCount {
                field: "max_workers"
            })
        );
    }

    #[test]
    fn names_that_tokens_cannot_carry_rejected() {
        let mut config = ExecutorConfig {
            name: "n".repeat(ExecutorConfig::MAX_NAME_LEN),
            ..ExecutorConfig::default()
        };
        config.validate().unwrap();
        config.name.push('n');
        assert_eq!(
            config.validate(),
            Err(ConfigError::NameTooLong { len: 65, max: 64 })
        );
        config.name = "a\0b".to_owned();
        assert_eq!(
            config.validate(),
            Err(ConfigError::NameNul {
                name: "a\0b".to_owned()
            })
        );
    }

    #[test]
    fn identifiers_must_be_plain() {
        for bad in ["", "a b", "x\"y", "t;drop", "1abc", &"a".repeat(64)] {
            assert!(JobTable::new("public", bad).is_err(), "{bad:?} accepted");
        }
        let table = JobTable::new("Jobs_2", "ssproc$jobs").unwrap();
        assert_eq!(table.display_name(), "Jobs_2.ssproc$jobs");
    }
}

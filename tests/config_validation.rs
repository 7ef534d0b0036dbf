//! Every invalid configuration is refused with its typed error
//! (BEHAVIOUR.md scenario 24).

use std::time::Duration;

use ssproc::{ConfigError, Executor, ExecutorConfig, JobTable, Process, StepContext, StepFuture};

use crate::common::harness::{fast_config, with};
use crate::common::scripted::{Script, Single, Trail};
use crate::common::test_db;

fn refused<P: Process>(pool: &sqlx::PgPool, process: P, config: ExecutorConfig) -> ConfigError {
    Executor::new(pool.clone(), JobTable::default(), process, config).unwrap_err()
}

#[tokio::test]
async fn invalid_settings_are_typed_errors() {
    let db = test_db("config_invalid").await;
    let single = || Single::new(&Script::succeed());
    let cases: Vec<(ExecutorConfig, ConfigError)> = vec![
        (
            with(|c| c.lease_duration = Duration::from_millis(200)),
            ConfigError::LeaseNotAboveHeartbeat {
                lease: Duration::from_millis(200),
                heartbeat: Duration::from_millis(200),
            },
        ),
        (
            with(|c| c.heartbeat_interval = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "heartbeat_interval",
            },
        ),
        (
            with(|c| c.sweep_interval = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "sweep_interval",
            },
        ),
        (
            with(|c| c.execution_timeout = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "execution_timeout",
            },
        ),
        (
            with(|c| c.max_workers = 0),
            ConfigError::ZeroCount {
                field: "max_workers",
            },
        ),
        (
            with(|c| c.max_jobs_per_sweep = 0),
            ConfigError::ZeroCount {
                field: "max_jobs_per_sweep",
            },
        ),
        (
            with(|c| c.max_exec_count = -1),
            ConfigError::ZeroCount {
                field: "max_exec_count",
            },
        ),
        (
            with(|c| c.max_comp_count = 0),
            ConfigError::ZeroCount {
                field: "max_comp_count",
            },
        ),
        (
            with(|c| {
                c.retry_backoff_base = Duration::from_secs(2);
                c.retry_backoff_max = Duration::from_secs(1);
            }),
            ConfigError::BackoffMaxBelowBase {
                base: Duration::from_secs(2),
                max: Duration::from_secs(1),
            },
        ),
        (
            with(|c| c.lease_duration = Duration::MAX),
            ConfigError::DurationTooLarge {
                field: "lease_duration",
                value: Duration::MAX,
            },
        ),
        (
            with(|c| c.lease_duration = Duration::from_millis(100)),
            ConfigError::LeaseNotAboveHeartbeat {
                lease: Duration::from_millis(100),
                heartbeat: Duration::from_millis(200),
            },
        ),
        (
            with(|c| c.lease_duration = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "lease_duration",
            },
        ),
        (
            with(|c| c.retry_backoff_base = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "retry_backoff_base",
            },
        ),
        (
            with(|c| c.retry_backoff_max = Duration::ZERO),
            ConfigError::ZeroDuration {
                field: "retry_backoff_max",
            },
        ),
        (
            with(|c| c.max_exec_count = 0),
            ConfigError::ZeroCount {
                field: "max_exec_count",
            },
        ),
        (
            with(|c| c.max_comp_count = i32::MIN),
            ConfigError::ZeroCount {
                field: "max_comp_count",
            },
        ),
        (
            with(|c| c.max_heartbeat_failures = 0),
            ConfigError::ZeroCount {
                field: "max_heartbeat_failures",
            },
        ),
        (
            with(|c| {
                c.heartbeat_interval = Duration::MAX;
                c.lease_duration = Duration::MAX;
            }),
            ConfigError::DurationTooLarge {
                field: "heartbeat_interval",
                value: Duration::MAX,
            },
        ),
        (
            with(|c| c.execution_timeout = Duration::MAX),
            ConfigError::DurationTooLarge {
                field: "execution_timeout",
                value: Duration::MAX,
            },
        ),
        (
            with(|c| c.sweep_jitter = Duration::MAX),
            ConfigError::DurationTooLarge {
                field: "sweep_jitter",
                value: Duration::MAX,
            },
        ),
        (
            with(|c| c.shutdown_grace_period = Duration::MAX),
            ConfigError::DurationTooLarge {
                field: "shutdown_grace_period",
                value: Duration::MAX,
            },
        ),
    ];
    let cleanup = |c: &mut ExecutorConfig| c.cleanup_enabled = true;
    let cases = cases.into_iter().chain([
        (
            with(cleanup),
            ConfigError::CleanupUnset {
                field: "cleanup_interval",
            },
        ),
        (
            with(|c| {
                cleanup(c);
                c.cleanup_interval = Some(Duration::from_secs(1));
            }),
            ConfigError::CleanupUnset {
                field: "cleanup_threshold",
            },
        ),
        (
            with(|c| c.cleanup_batch_size = 0),
            ConfigError::ZeroCount {
                field: "cleanup_batch_size",
            },
        ),
        (
            with(|c| {
                cleanup(c);
                c.cleanup_interval = Some(Duration::ZERO);
                c.cleanup_threshold = Some(Duration::from_secs(1));
            }),
            ConfigError::ZeroDuration {
                field: "cleanup_interval",
            },
        ),
        (
            with(|c| {
                cleanup(c);
                c.cleanup_interval = Some(Duration::from_secs(1));
                c.cleanup_threshold = Some(Duration::ZERO);
            }),
            ConfigError::ZeroDuration {
                field: "cleanup_threshold",
            },
        ),
        (
            with(|c| {
                cleanup(c);
                c.cleanup_interval = Some(Duration::MAX);
                c.cleanup_threshold = Some(Duration::from_secs(1));
            }),
            ConfigError::DurationTooLarge {
                field: "cleanup_interval",
                value: Duration::MAX,
            },
        ),
        (
            with(|c| {
                cleanup(c);
                c.cleanup_interval = Some(Duration::from_secs(1));
                c.cleanup_threshold = Some(Duration::MAX);
            }),
            ConfigError::DurationTooLarge {
                field: "cleanup_threshold",
                value: Duration::MAX,
            },
        ),
    ]);
    for (config, expected) in cases {
        assert_eq!(refused(&db.pool, single(), config), expected);
    }
    assert_eq!(
        refused(&db.pool, single(), with(|c| c.max_heartbeat_failures = 0)).to_string(),
        "max_heartbeat_failures must be greater than zero"
    );

    // The edges that are allowed: no jitter, no grace period, cleanup
    // settings left unset while cleanup is off.
    let edges = with(|c| {
        c.sweep_jitter = Duration::ZERO;
        c.shutdown_grace_period = Duration::ZERO;
        c.cleanup_enabled = false;
        c.cleanup_interval = None;
        c.retry_backoff_max = c.retry_backoff_base;
    });
    Executor::new(db.pool.clone(), JobTable::default(), single(), edges).unwrap();
}

#[tokio::test]
async fn processes_that_cannot_run_are_refused() {
    let db = test_db("config_process").await;

    struct Empty<const NO_ID: bool>;
    impl<const NO_ID: bool> Process for Empty<NO_ID> {
        type Data = Trail;
        const ID: &'static str = if NO_ID { "" } else { "empty" };
        const STEPS: &'static [&'static str] = &[];
        const COMPENSATED: &'static [bool] = &[];
        fn run_step<'a>(
            &'a self,
            step: usize,
            _: &'a StepContext,
            _: &'a mut Trail,
        ) -> StepFuture<'a> {
            Box::pin(async move { Err(ssproc::step_out_of_range(step)) })
        }
        fn run_compensation<'a>(
            &'a self,
            _: usize,
            _: &'a StepContext,
            _: &'a mut Trail,
        ) -> Option<StepFuture<'a>> {
            None
        }
    }
    assert_eq!(
        refused(&db.pool, Empty::<true>, fast_config()),
        ConfigError::EmptyProcessId
    );
    assert_eq!(
        refused(&db.pool, Empty::<false>, fast_config()),
        ConfigError::NoSteps {
            process_id: "empty".to_owned()
        }
    );

    /// One step; `NUL` puts a NUL character in the id, `!NUL` lists no
    /// compensation flag for the step.
    struct Odd<const NUL: bool>;
    impl<const NUL: bool> Process for Odd<NUL> {
        type Data = Trail;
        const ID: &'static str = if NUL { "odd\0id" } else { "odd" };
        const STEPS: &'static [&'static str] = &["only"];
        const COMPENSATED: &'static [bool] = if NUL { &[false] } else { &[] };
        fn run_step<'a>(
            &'a self,
            step: usize,
            _: &'a StepContext,
            _: &'a mut Trail,
        ) -> StepFuture<'a> {
            Box::pin(async move { Err(ssproc::step_out_of_range(step)) })
        }
        fn run_compensation<'a>(
            &'a self,
            _: usize,
            _: &'a StepContext,
            _: &'a mut Trail,
        ) -> Option<StepFuture<'a>> {
            None
        }
    }
    assert_eq!(
        refused(&db.pool, Odd::<true>, fast_config()),
        ConfigError::ProcessIdNul {
            process_id: "odd\0id".to_owned()
        }
    );
    assert_eq!(
        refused(&db.pool, Odd::<false>, fast_config()),
        ConfigError::CompensationMismatch {
            process_id: "odd".to_owned(),
            steps: 1,
            compensated: 0,
        }
    );
}

#[test]
fn table_names_must_be_plain_identifiers() {
    for (schema, table) in [
        ("public", "jobs\"; DROP TABLE x; --"),
        ("my schema", "jobs"),
        ("", "jobs"),
    ] {
        let error = JobTable::new(schema, table).unwrap_err();
        assert!(matches!(error, ConfigError::Identifier { .. }), "{error:?}");
        assert!(
            error.to_string().contains("is not a plain identifier"),
            "{error}"
        );
    }
}

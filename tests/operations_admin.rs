//! Operator actions, cleanup and statistics (BEHAVIOUR.md scenario 21).

use std::time::Duration;

use ssproc::{AdminError, CleanupError, FailureKind, JobStatus, Jobs, RunType, StartAt};

use crate::common::harness::{fast_config, start, wait_terminal, with};
use crate::common::scripted::{Act, Plain, Saga, Script, Trail};
use crate::common::{test_db, wait_until};

#[tokio::test]
async fn retry_brings_an_error_job_back_where_it_stopped() {
    let db = test_db("admin_retry").await;
    let script = Script::new(|call| match (call.step, call.earlier) {
        (1, 0..=2) => Act::Fail,
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Plain::new(&script), fast_config()).await;
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    client.register(&Trail::new("j1")).await.unwrap();
    let failed = wait_terminal(&client, "j1", Duration::from_secs(20)).await;
    assert_eq!((failed.status, failed.exec_count), (JobStatus::Error, 3));

    jobs.retry("j1").await.unwrap();
    let job = wait_terminal(&client, "j1", Duration::from_secs(20)).await;
    handle.shutdown().await;
    assert_eq!(
        (job.status, job.exec_count, job.next_step),
        (JobStatus::Done, 1, 3)
    );
    assert_eq!(script.step_calls("j1", 3), [1, 4, 1], "resumed at step 1");
    assert_eq!(
        job.last_failure.unwrap().message,
        "s1 failed",
        "failure kept"
    );

    let error = jobs.retry("j1").await.unwrap_err();
    assert!(
        matches!(
            error,
            AdminError::WrongState {
                status: JobStatus::Done,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(
        jobs.retry("nope").await.unwrap_err(),
        AdminError::NotFound { .. }
    ));
}

#[tokio::test]
async fn cancel_fences_a_running_attempt_and_compensates() {
    let db = test_db("admin_cancel").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 1) => Act::WaitForCancel,
        _ => Act::Succeed,
    });
    // A lease long enough to watch it run out after the cancel.
    let config = with(|c| {
        c.lease_duration = Duration::from_secs(3);
        c.heartbeat_interval = Duration::from_millis(300);
    });
    let (client, handle) = start(&db, Saga::new(&script), config).await;
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    client.register(&Trail::new("j1")).await.unwrap();
    wait_until(Duration::from_secs(10), "step 1 runs", || async {
        script.step_calls("j1", 3)[1] == 1
    })
    .await;

    let lease = jobs.cancel("j1").await.unwrap().expect("a live lease");
    let cancelled = jobs.job("j1").await.unwrap().unwrap();
    assert!(cancelled.token.starts_with("cancelled:"), "fenced");
    assert_eq!(cancelled.lease_expires_at, Some(lease), "lease kept");
    assert_eq!(cancelled.run_type, RunType::Compensation);
    let failure = cancelled
        .last_failure
        .expect("the cancel is the last failure");
    assert_eq!(
        (failure.kind, failure.step, failure.step_name.as_str()),
        (FailureKind::Cancelled, 1, "s1")
    );
    assert_eq!(
        (failure.run_type, failure.attempt, failure.message.as_str()),
        (RunType::Normal, 1, "cancelled by an operator")
    );

    // No compensation while the fenced attempt's lease lasts, on the
    // database clock.
    let left: f64 = sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM $1 - now())::float8")
        .bind(lease)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(left > 1.0, "{left} s of lease left");
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs_f64(left - 0.2);
    while tokio::time::Instant::now() < quiet_until {
        assert_eq!(
            script.compensations("j1"),
            Vec::<usize>::new(),
            "compensation ran under the old lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let job = wait_terminal(&client, "j1", Duration::from_secs(20)).await;
    handle.shutdown().await;
    assert_eq!(job.status, JobStatus::Compensated);
    assert_eq!(
        job.last_failure.as_ref().unwrap().kind,
        FailureKind::Cancelled
    );
    assert_eq!(script.compensations("j1"), [1, 0]);
    assert_eq!(
        script.step_calls("j1", 3),
        [1, 1, 0],
        "the fenced attempt ran no further step"
    );
    assert_eq!(job.data::<Trail>().unwrap().trail, ["s0", "c1", "c0"]);

    let error = jobs.cancel("j1").await.unwrap_err();
    assert!(
        matches!(
            error,
            AdminError::WrongState {
                action: "cancel",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn cancel_without_compensation_ends_in_error() {
    let db = test_db("admin_cancel_plain").await;
    let client = ssproc::Client::<Plain>::new(db.pool.clone(), db.table.clone());
    client
        .register_at(&Trail::new("j1"), StartAt::After(Duration::from_secs(1)))
        .await
        .unwrap();
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    assert_eq!(
        jobs.cancel("j1").await.unwrap(),
        None,
        "no lease to wait for"
    );
    let cancelled = jobs.job("j1").await.unwrap().unwrap();
    assert_eq!(
        cancelled.last_failure.map(|f| (f.kind, f.message)),
        Some((
            FailureKind::Cancelled,
            "cancelled by an operator".to_owned()
        ))
    );

    // An expired lease is no lease: it is cleared, nothing waits for it.
    client.register(&Trail::new("j2")).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {}.jobs
        SET goroutine_id = 'crashed', goroutine_lease_expire_ts = now() - interval '1 second'
        WHERE job_id = 'j2'",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs.cancel("j2").await.unwrap(), None);
    assert_eq!(
        jobs.job("j2").await.unwrap().unwrap().lease_expires_at,
        None
    );

    let (_, handle) = start(&db, Plain::new(&Script::succeed()), fast_config()).await;
    for job_id in ["j1", "j2"] {
        let job = wait_terminal(&client, job_id, Duration::from_secs(20)).await;
        assert_eq!(job.status, JobStatus::Error);
        assert_eq!(job.last_failure.unwrap().kind, FailureKind::Cancelled);
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn cancel_works_on_a_table_without_the_optional_parts() {
    let db = test_db("admin_cancel_bare").await;
    // What the reference DDL lacks: the failure column, the step registry.
    sqlx::raw_sql(&format!(
        "ALTER TABLE {schema}.jobs DROP COLUMN last_failure;
        DROP TABLE {schema}.jobs_processes;
        INSERT INTO {schema}.jobs (job_id, job_data, process_id) VALUES ('j1', '{{}}', 'p')",
        schema = db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    assert_eq!(jobs.cancel("j1").await.unwrap(), None);
    let job = jobs.job("j1").await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.run_type, job.last_failure),
        (JobStatus::Ready, RunType::Compensation, None)
    );
}

#[tokio::test]
async fn delete_only_touches_terminal_jobs() {
    let db = test_db("admin_delete").await;
    let client = ssproc::Client::<Plain>::new(db.pool.clone(), db.table.clone());
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    client.register(&Trail::new("open")).await.unwrap();
    let error = jobs.delete("open").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot delete job \"open\": it is ready (normal run), expected done, compensated or error"
    );
    let (_, handle) = start(&db, Plain::new(&Script::succeed()), fast_config()).await;
    wait_terminal(&client, "open", Duration::from_secs(20)).await;
    handle.shutdown().await;
    jobs.delete("open").await.unwrap();
    assert!(jobs.job("open").await.unwrap().is_none());
    assert!(matches!(
        jobs.delete("open").await.unwrap_err(),
        AdminError::NotFound { .. }
    ));
}

#[tokio::test]
async fn cleanup_removes_old_done_and_compensated_jobs_only() {
    let db = test_db("admin_cleanup").await;
    let schema = &db.schema;
    // Rows in every state, ended an hour ago, plus a recent done job and a
    // done job of another process.
    sqlx::raw_sql(&format!(
        "INSERT INTO {schema}.jobs (job_id, job_data, process_id, status, run_type, end_ts) VALUES
            ('done_old', '{{}}', 'scripted', 'done', 'normal', now() - interval '1 hour'),
            ('comp_old', '{{}}', 'scripted', 'compensated', 'compensation', now() - interval '1 hour'),
            ('error_old', '{{}}', 'scripted', 'error', 'normal', now() - interval '1 hour'),
            ('ready_comp', '{{}}', 'scripted', 'ready', 'compensation', NULL),
            ('done_new', '{{}}', 'scripted', 'done', 'normal', now()),
            ('other_old', '{{}}', 'other', 'done', 'normal', now() - interval '1 hour');
        INSERT INTO {schema}.jobs (job_id, job_data, process_id, status, end_ts)
        SELECT 'bulk' || i, '{{}}', 'scripted', 'done', now() - interval '2 hours'
        FROM generate_series(1, 1200) AS i;"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    // A locked old row is skipped, not waited for.
    let mut locker = db.pool.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM {schema}.jobs WHERE job_id = 'bulk7' FOR UPDATE"
    ))
    .execute(&mut *locker)
    .await
    .unwrap();

    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    let deleted = jobs
        .cleanup("scripted", Duration::from_secs(600), 500)
        .await
        .unwrap();
    assert_eq!(deleted, 2 + 1199);
    locker.rollback().await.unwrap();
    let left: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT job_id FROM {schema}.jobs WHERE job_id NOT LIKE 'bulk%' ORDER BY job_id"
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, ["done_new", "error_old", "other_old", "ready_comp"]);

    // The executor's own cleanup task takes the locked row once it is free.
    let config = with(|c| {
        c.cleanup_enabled = true;
        c.cleanup_interval = Some(Duration::from_millis(100));
        c.cleanup_threshold = Some(Duration::from_secs(600));
    });
    let (_, handle) = start(&db, Plain::new(&Script::succeed()), config).await;
    wait_until(
        Duration::from_secs(10),
        "cleanup deletes the unlocked row",
        || async { jobs.job("bulk7").await.unwrap().is_none() },
    )
    .await;
    handle.shutdown().await;
}

#[tokio::test]
async fn cleanup_refuses_a_zero_batch_and_stops_on_a_short_one() {
    let db = test_db("admin_cleanup_batches").await;
    sqlx::query(&format!(
        "INSERT INTO {}.jobs (job_id, job_data, process_id, status, end_ts)
        SELECT 'old' || i, '{{}}', 'scripted', 'done', now() - interval '1 hour'
        FROM generate_series(1, 5) AS i",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());
    let threshold = Duration::from_secs(600);
    let bounded = Duration::from_secs(10);

    let refused = tokio::time::timeout(bounded, jobs.cleanup("scripted", threshold, 0))
        .await
        .expect("a zero batch size returns at once");
    assert!(
        matches!(refused, Err(CleanupError::ZeroBatchSize)),
        "{refused:?}"
    );
    let left = jobs.list(&ssproc::JobFilter::new(), 0, 10).await.unwrap();
    assert_eq!(left.total, 5, "nothing deleted");

    // Five full batches of one, then an empty one ends the run.
    let deleted = tokio::time::timeout(bounded, jobs.cleanup("scripted", threshold, 1))
        .await
        .expect("cleanup ends")
        .unwrap();
    assert_eq!(deleted, 5);

    let missing = ssproc::JobTable::new(&db.schema, "absent").unwrap();
    let error = Jobs::new(db.pool.clone(), missing)
        .cleanup("scripted", threshold, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            CleanupError::Database { process_id, deleted: 0, .. } if process_id == "scripted"
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn stats_count_by_process_and_status() {
    let db = test_db("admin_stats").await;
    sqlx::raw_sql(&format!(
        "INSERT INTO {}.jobs (job_id, job_data, process_id, status, created_ts, start_after_ts)
        VALUES
            ('a', '{{}}', 'p1', 'ready', now() - interval '2 hours', now() + interval '1 hour'),
            ('b', '{{}}', 'p1', 'ready', now() - interval '1 hour', now() - interval '90 seconds'),
            ('c', '{{}}', 'p1', 'ready', now(), now()),
            ('d', '{{}}', 'p1', 'done', now() - interval '3 hours', now() - interval '3 hours'),
            ('e', '{{}}', 'p2', 'error', now(), now()),
            ('f', '{{}}', 'p3', 'ready', now() - interval '1 day', now() + interval '1 day')",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let stats = Jobs::new(db.pool.clone(), db.table.clone())
        .stats()
        .await
        .unwrap();
    assert_eq!(stats.len(), 3);
    assert_eq!(
        (stats[0].process_id.as_str(), stats[0].ready, stats[0].done),
        ("p1", 3, 1)
    );
    // Measured from when b became due; a, scheduled, and d, done, are older.
    let age = stats[0].oldest_ready_age.unwrap();
    assert!(
        age >= Duration::from_secs(90) && age < Duration::from_secs(120),
        "{age:?}"
    );
    assert_eq!(
        (stats[1].process_id.as_str(), stats[1].error, stats[1].ready),
        ("p2", 1, 0)
    );
    assert_eq!(stats[1].oldest_ready_age, None);
    assert_eq!((stats[2].process_id.as_str(), stats[2].ready), ("p3", 1));
    assert_eq!(stats[2].oldest_ready_age, None, "f is not due yet");
}

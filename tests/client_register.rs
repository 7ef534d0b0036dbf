//! Registration: transactions, duplicates, start times, execute-and-wait
//! (BEHAVIOUR.md scenarios 11, 18, 19 and 20).

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ssproc::{Client, JobStatus, Outcome, RegisterError, RunType, StartAt};

use crate::common::harness::{executor, fast_config, start, wait_terminal, with};
use crate::common::scripted::{Act, Plain, Saga, Script, Single, Trail};
use crate::common::test_db;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn rolled_back_registration_never_runs_and_commit_runs_at_once() {
    let db = test_db("register_tx").await;
    let script = Script::succeed();
    // A sweep interval far beyond the deadline: only the notification sent
    // on commit can wake the executor in time.
    let config = with(|c| c.sweep_interval = Duration::from_secs(600));
    let (client, handle) = start(&db, Single::new(&script), config).await;
    // Once a first job is done, the start-up sweep is behind us: what picks
    // up the next job can only be a notification.
    client.register(&Trail::new("warm_up")).await.unwrap();
    wait_terminal(&client, "warm_up", Duration::from_secs(5)).await;

    let mut tx = db.pool.begin().await.unwrap();
    client
        .register_in(&mut tx, &Trail::new("rolled_back"), StartAt::Now)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    client
        .register_in(&mut tx, &Trail::new("committed"), StartAt::Now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = wait_terminal(&client, "committed", Duration::from_secs(5)).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    assert!(
        client.job("rolled_back").await.unwrap().is_none(),
        "rolled back job exists"
    );
    assert!(script.calls().iter().all(|c| c.job_id != "rolled_back"));
}

#[tokio::test]
async fn duplicate_job_id_is_refused_and_first_job_untouched() {
    let db = test_db("register_duplicate").await;
    let client = Client::<Single>::new(db.pool.clone(), db.table.clone());
    let first = Trail {
        value: 1,
        ..Trail::new("j1")
    };
    client.register(&first).await.unwrap();
    let before = client.job("j1").await.unwrap().unwrap();

    let second = Trail {
        value: 2,
        ..Trail::new("j1")
    };
    let error = client.register(&second).await.unwrap_err();
    assert!(
        matches!(&error, RegisterError::DuplicateJobId { job_id } if job_id == "j1"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "job \"j1\" already exists");

    // Inside a transaction the duplicate does not abort the transaction.
    let mut tx = db.pool.begin().await.unwrap();
    let error = client
        .register_in(&mut tx, &second, StartAt::Now)
        .await
        .unwrap_err();
    assert!(matches!(error, RegisterError::DuplicateJobId { .. }));
    client
        .register_in(&mut tx, &Trail::new("j2"), StartAt::Now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let after = client.job("j1").await.unwrap().unwrap();
    assert_eq!(before, after);
    assert_eq!(after.data::<Trail>().unwrap().value, 1);
    assert!(client.job("j2").await.unwrap().is_some());
}

#[tokio::test]
async fn invalid_job_ids_are_refused_before_writing() {
    let db = test_db("register_bad_id").await;
    let client = Client::<Single>::new(db.pool.clone(), db.table.clone());
    for id in ["", "a\0b"] {
        let error = client.register(&Trail::new(id)).await.unwrap_err();
        assert!(
            matches!(error, RegisterError::InvalidJobId { .. }),
            "{id:?}: {error:?}"
        );
    }
    // NUL inside the data is fine: JSON escapes it.
    let data = Trail {
        trail: vec!["nul\0inside".to_owned()],
        ..Trail::new("nul")
    };
    client.register(&data).await.unwrap();
    let stored: Trail = client.job("nul").await.unwrap().unwrap().data().unwrap();
    assert_eq!(stored, data);
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}.jobs", db.schema))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn start_times_are_stored_precisely_and_honoured() {
    let db = test_db("register_start_after").await;
    let script = Script::succeed();
    let (client, handle) = start(&db, Single::new(&script), fast_config()).await;

    let later: DateTime<Utc> = Utc::now().round_subsecs(6) + chrono::Duration::seconds(7);
    client
        .register_at(&Trail::new("soon"), StartAt::After(Duration::from_secs(3)))
        .await
        .unwrap();
    client
        .register_at(&Trail::new("later"), StartAt::At(later))
        .await
        .unwrap();
    assert_eq!(
        client.job("later").await.unwrap().unwrap().start_after,
        later
    );

    let soon = wait_terminal(&client, "soon", DEADLINE).await;
    let waited = soon.started_at.unwrap() - soon.created_at;
    assert!(
        waited >= chrono::Duration::seconds(3),
        "started after {waited}"
    );
    let untouched = client.job("later").await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.exec_count),
        (JobStatus::Ready, 0)
    );
    assert!(untouched.token.is_empty() && untouched.started_at.is_none());

    let later_job = wait_terminal(&client, "later", DEADLINE).await;
    handle.shutdown().await;
    assert!(later_job.started_at.unwrap() >= later, "{later_job:?}");
}

#[tokio::test]
async fn execute_and_wait_returns_final_data_and_outcome() {
    let db = test_db("execute_wait").await;
    let script = Script::succeed();
    let executor = executor(&db, Plain::new(&script), fast_config());
    let executed = executor.execute_and_wait(&Trail::new("j1")).await.unwrap();
    assert_eq!(executed.outcome, Outcome::Done);
    assert_eq!(executed.data.trail, ["s0", "s1", "s2"]);
    assert_eq!((executed.job.exec_count, executed.job.next_step), (1, 3));

    let error = executor
        .execute_and_wait(&Trail::new("j1"))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ssproc::ExecuteError::Register(RegisterError::DuplicateJobId { .. })
    ));
}

#[tokio::test]
async fn execute_and_wait_reports_a_retry_and_executors_finish_it() {
    let db = test_db("execute_wait_retry").await;
    let script = Script::new(|call| match (call.step, call.earlier) {
        (1, 0) => Act::Fail,
        _ => Act::Succeed,
    });
    let executor = executor(&db, Saga::new(&script), fast_config());
    let executed = executor.execute_and_wait(&Trail::new("j1")).await.unwrap();
    match &executed.outcome {
        Outcome::WillRetry {
            run_type: RunType::Normal,
            failure: Some(failure),
        } => {
            assert_eq!((failure.step, failure.message.as_str()), (1, "s1 failed"));
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    assert_eq!(executed.data.trail, ["s0"], "latest stored data");

    let handle = executor.start().await.unwrap();
    let client = Client::<Saga>::new(db.pool.clone(), db.table.clone());
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(script.step_calls("j1", 3), [1, 2, 1]);
}

#[tokio::test]
async fn execute_and_wait_compensates_a_permanent_failure_in_place() {
    let db = test_db("execute_wait_comp").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 1) => Act::FailPermanently,
        _ => Act::Succeed,
    });
    let executor = executor(&db, Saga::new(&script), fast_config());
    let executed = executor.execute_and_wait(&Trail::new("j1")).await.unwrap();
    assert!(
        matches!(&executed.outcome, Outcome::Compensated { failure: Some(f) } if f.step == 1),
        "{:?}",
        executed.outcome
    );
    assert_eq!(executed.data.trail, ["s0", "c1", "c0"]);
}

#[tokio::test]
async fn register_many_inserts_all_or_nothing() {
    let db = test_db("register_many").await;
    let client = Client::<Single>::new(db.pool.clone(), db.table.clone());
    let batch: Vec<Trail> = (0..500).map(|i| Trail::new(format!("m{i}"))).collect();
    client.register_many(&batch, StartAt::Now).await.unwrap();
    let count = || async {
        let sql = format!("SELECT count(*) FROM {}.jobs", db.schema);
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 500);

    // One id exists already: nothing of the batch is written, and the
    // caller's transaction goes on.
    let clash: Vec<Trail> = ["n1", "m7", "n2"].into_iter().map(Trail::new).collect();
    let mut tx = db.pool.begin().await.unwrap();
    let error = client
        .register_many_in(&mut tx, &clash, StartAt::Now)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegisterError::DuplicateJobId { job_id } if job_id == "m7"),
        "{error:?}"
    );
    client
        .register_in(&mut tx, &Trail::new("n3"), StartAt::Now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count().await, 501);

    let twice: Vec<Trail> = ["p1", "p1"].into_iter().map(Trail::new).collect();
    let error = client
        .register_many(&twice, StartAt::Now)
        .await
        .unwrap_err();
    assert!(matches!(error, RegisterError::DuplicateJobId { .. }));
    assert_eq!(count().await, 501);

    let script = Script::succeed();
    let (client, handle) = start(&db, Single::new(&script), fast_config()).await;
    wait_terminal(&client, "m499", DEADLINE).await;
    wait_terminal(&client, "m0", DEADLINE).await;
    handle.shutdown().await;
}

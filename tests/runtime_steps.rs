//! Steps run in order, commit per step, and end the job as they say
//! (BEHAVIOUR.md scenarios 1, 4, 5 and 6).

use std::time::Duration;

use ssproc::{JobStatus, RunType};

use crate::common::harness::{fast_config, start, wait_terminal};
use crate::common::scripted::{Act, Plain, Script, Single, Trail};
use crate::common::test_db;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn one_step_job_succeeds() {
    let db = test_db("steps_one").await;
    let script = Script::succeed();
    let (client, handle) = start(&db, Single::new(&script), fast_config()).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.run_type, RunType::Normal);
    assert_eq!((job.exec_count, job.comp_count, job.next_step), (1, 0, 1));
    assert_eq!(job.tokens, vec![job.token.clone()]);
    assert!(job.token.starts_with("test:"), "{}", job.token);
    let started = job.started_at.expect("started_ts set");
    let ended = job.ended_at.expect("end_ts set");
    assert!(job.created_at <= started && started <= ended, "{job:?}");
    assert_eq!(job.lease_expires_at, None, "a finished job holds no lease");
    assert_eq!(job.data::<Trail>().unwrap().trail, ["s0"]);
    assert_eq!(script.step_calls("j1", 1), [1]);
}

#[tokio::test]
async fn step_failing_twice_then_succeeding_finishes() {
    let db = test_db("steps_flaky").await;
    let script = Script::new(|call| match (call.step, call.earlier) {
        (1, 0 | 1) => Act::Fail,
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Plain::new(&script), fast_config()).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    assert_eq!((job.exec_count, job.next_step), (3, 3));
    assert_eq!(script.step_calls("j1", 3), [1, 3, 1]);
    assert_eq!(
        job.tokens.len(),
        3,
        "one token per attempt: {:?}",
        job.tokens
    );
    assert_eq!(job.data::<Trail>().unwrap().trail, ["s0", "s1", "s2"]);
    let failure = job.last_failure.expect("failure kept after success");
    assert_eq!((failure.step, failure.attempt), (1, 2));
    assert_eq!(failure.message, "s1 failed");
}

#[tokio::test]
async fn saved_data_survives_failures_and_composes() {
    let db = test_db("steps_saves").await;
    // Step 1 saves +1 then fails on its first two calls; every step sees
    // what the earlier ones committed; unsaved changes (+1000) vanish.
    let script = Script::new(|call| match (call.step, call.earlier) {
        (1, 0) => Act::SaveThenFail(1),
        (1, 1) => Act::SaveThenFail(10),
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Plain::new(&script), fast_config()).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    let data: Trail = job.data().unwrap();
    assert_eq!(data.value, 11, "exactly the two saves: {data:?}");
    assert_eq!(
        data.trail,
        ["s0", "s1", "s2"],
        "s0 committed once, then s1 and s2"
    );
    assert_eq!(script.step_calls("j1", 3), [1, 3, 1]);
}

#[tokio::test]
async fn early_exit_done_skips_later_steps() {
    let db = test_db("steps_exit_done").await;
    let script = Script::exit_at(Act::ExitDone);
    let (client, handle) = start(&db, Plain::new(&script), fast_config()).await;
    for step in 0..3 {
        client
            .register(&Trail::new(format!("d{step}")))
            .await
            .unwrap();
    }
    for step in 0..3 {
        let id = format!("d{step}");
        let job = wait_terminal(&client, &id, DEADLINE).await;
        assert_eq!(job.status, JobStatus::Done, "{id}");
        assert_eq!(job.next_step, step as i32 + 1, "{id}");
        let mut expected = vec![0; 3];
        expected[..=step].fill(1);
        assert_eq!(script.step_calls(&id, 3), expected, "{id}");
        assert!(script.compensations(&id).is_empty());
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn early_exit_error_ends_in_error_without_compensation() {
    let db = test_db("steps_exit_error").await;
    let script = Script::exit_at(Act::ExitError);
    let (client, handle) = start(
        &db,
        crate::common::scripted::Saga::new(&script),
        fast_config(),
    )
    .await;
    for step in 0..3 {
        client
            .register(&Trail::new(format!("e{step}")))
            .await
            .unwrap();
    }
    for step in 0..3 {
        let id = format!("e{step}");
        let job = wait_terminal(&client, &id, DEADLINE).await;
        assert_eq!(job.status, JobStatus::Error, "{id}");
        assert_eq!(job.next_step, step, "{id}");
        assert_eq!(job.exec_count, 1, "{id}");
        assert!(script.compensations(&id).is_empty(), "{id} compensated");
        let failure = job.last_failure.expect("reason stored");
        assert_eq!(failure.message, format!("s{step} gave up"));
        assert_eq!(failure.kind, ssproc::FailureKind::EarlyExit);
    }
    handle.shutdown().await;
}

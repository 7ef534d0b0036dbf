//! Retries, compensation in reverse order, and the error status
//! (BEHAVIOUR.md scenarios 2, 3, 7, 8, 9 and 10).

use std::time::Duration;

use ssproc::{ExecutorConfig, FailureKind, JobStatus, RunType};

use crate::common::harness::{start, wait_terminal, with};
use crate::common::scripted::{Act, Plain, Saga, Script, SkipMiddle, Trail};
use crate::common::test_db;

const DEADLINE: Duration = Duration::from_secs(20);

fn limits(exec: i32, comp: i32) -> ExecutorConfig {
    with(|c| {
        c.max_exec_count = exec;
        c.max_comp_count = comp;
    })
}

#[tokio::test]
async fn always_failing_step_without_compensation_ends_in_error() {
    let db = test_db("fail_no_comp").await;
    let script = Script::new(|call| {
        if call.step == 1 {
            Act::Fail
        } else {
            Act::Succeed
        }
    });
    let (client, handle) = start(&db, Plain::new(&script), limits(3, 3)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Error);
    assert_eq!((job.exec_count, job.comp_count, job.next_step), (3, 0, 1));
    assert_eq!(job.run_type, RunType::Normal);
    assert_eq!(script.step_calls("j1", 3), [1, 3, 0]);
    let failure = job.last_failure.expect("reason stored");
    assert_eq!(
        (failure.step, failure.attempt, failure.kind),
        (1, 3, FailureKind::Error)
    );
    assert_eq!(failure.step_name, "s1");
}

#[tokio::test]
async fn panicking_step_is_a_failure_with_its_message() {
    let db = test_db("fail_panic").await;
    let script = Script::new(|call| {
        if call.step == 1 {
            Act::Panic
        } else {
            Act::Succeed
        }
    });
    let (client, handle) = start(&db, Plain::new(&script), limits(3, 3)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    client.register(&Trail::new("j2")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    wait_terminal(&client, "j2", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Error);
    assert_eq!((job.exec_count, job.next_step), (3, 1));
    assert_eq!(script.step_calls("j1", 3), [1, 3, 0]);
    assert_eq!(
        script.step_calls("j2", 3),
        [1, 3, 0],
        "the executor survived the panics"
    );
    let failure = job.last_failure.expect("reason stored");
    assert_eq!(failure.kind, FailureKind::Panic);
    assert!(
        failure.message.contains("s1 exploded"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn exhausted_retries_compensate_in_reverse_order() {
    let db = test_db("fail_compensate").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 2) => Act::Fail,
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Saga::new(&script), limits(2, 2)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Compensated);
    assert_eq!(job.run_type, RunType::Compensation);
    assert_eq!((job.exec_count, job.comp_count, job.next_step), (2, 1, -1));
    assert_eq!(script.step_calls("j1", 3), [1, 1, 2]);
    assert_eq!(script.compensations("j1"), [2, 1, 0]);
    let data: Trail = job.data().unwrap();
    assert_eq!(data.trail, ["s0", "s1", "c2", "c1", "c0"]);
    assert!(job.ended_at.is_some());
}

#[tokio::test]
async fn steps_without_compensation_are_skipped() {
    let db = test_db("fail_skip_comp").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 2) => Act::Fail,
        _ => Act::Succeed,
    });
    // Steps 0 and 2 have compensations, step 1 has none.
    let (client, handle) = start(&db, SkipMiddle::new(&script), limits(2, 2)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Compensated);
    assert_eq!(job.next_step, -1);
    assert_eq!(script.compensations("j1"), [2, 0]);
}

#[tokio::test]
async fn failing_compensation_ends_in_error() {
    let db = test_db("fail_comp_fails").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 2) | (RunType::Compensation, 2) => Act::Fail,
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Saga::new(&script), limits(2, 2)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(job.run_type, RunType::Compensation);
    assert_eq!((job.exec_count, job.comp_count, job.next_step), (2, 2, 2));
    assert_eq!(
        script.compensations("j1"),
        [2, 2],
        "lower compensations never ran"
    );
    let failure = job.last_failure.expect("reason stored");
    assert_eq!(
        (failure.run_type, failure.attempt),
        (RunType::Compensation, 2)
    );
}

#[tokio::test]
async fn permanent_failure_skips_retries() {
    let db = test_db("fail_permanent").await;
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 1) => Act::FailPermanently,
        _ => Act::Succeed,
    });
    let (client, handle) = start(&db, Saga::new(&script), limits(5, 2)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Compensated);
    assert_eq!(job.exec_count, 1, "no retry after a permanent failure");
    assert_eq!(script.step_calls("j1", 3), [1, 1, 0]);
    assert_eq!(script.compensations("j1"), [1, 0]);
    let failure = job.last_failure.expect("reason stored");
    assert_eq!(failure.kind, FailureKind::Permanent);
    assert_eq!(failure.message, "s1 declined");
}

#[tokio::test]
async fn execution_timeout_is_a_failure_then_compensation_runs_afresh() {
    let db = test_db("fail_timeout").await;
    // Step 1 ignores cancellation and outlives the execution timeout.
    let script = Script::new(|call| match (call.run_type, call.step) {
        (RunType::Normal, 1) => Act::Sleep(Duration::from_secs(30)),
        _ => Act::Succeed,
    });
    let config = with(|c| {
        c.execution_timeout = Duration::from_millis(500);
        c.max_exec_count = 2;
    });
    let (client, handle) = start(&db, Saga::new(&script), config).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Compensated);
    assert_eq!((job.exec_count, job.comp_count), (2, 1));
    assert_eq!(script.step_calls("j1", 3), [1, 2, 0]);
    assert_eq!(script.compensations("j1"), [1, 0]);
    let failure = job.last_failure.expect("reason stored");
    assert_eq!((failure.kind, failure.step), (FailureKind::Timeout, 1));
}

/// A process written by hand whose dispatch panics before it returns a
/// future, on its first call only.
struct PanicsBeforeFuture {
    calls: std::sync::atomic::AtomicU32,
}

impl ssproc::Process for PanicsBeforeFuture {
    type Data = Trail;
    const ID: &'static str = "scripted";
    const STEPS: &'static [&'static str] = &["s0"];
    const COMPENSATED: &'static [bool] = &[false];

    fn run_step<'a>(
        &'a self,
        step: usize,
        _ctx: &'a ssproc::StepContext,
        _data: &'a mut Trail,
    ) -> ssproc::StepFuture<'a> {
        let earlier = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(earlier > 0, "dispatch of step {step} exploded");
        Box::pin(async { Ok(ssproc::StepOutcome::Success) })
    }

    fn run_compensation<'a>(
        &'a self,
        _step: usize,
        _ctx: &'a ssproc::StepContext,
        _data: &'a mut Trail,
    ) -> Option<ssproc::StepFuture<'a>> {
        None
    }
}

#[tokio::test]
async fn panic_before_the_step_future_is_a_failure_and_frees_the_lease() {
    let db = test_db("fail_panic_dispatch").await;
    let process = PanicsBeforeFuture {
        calls: std::sync::atomic::AtomicU32::new(0),
    };
    let (client, handle) = start(&db, process, limits(3, 3)).await;
    client.register(&Trail::new("j1")).await.unwrap();
    let job = wait_terminal(&client, "j1", DEADLINE).await;
    handle.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.exec_count, 2, "retried once after the panic");
    let failure = job.last_failure.expect("the panic is recorded");
    assert_eq!((failure.kind, failure.attempt), (FailureKind::Panic, 1));
    assert!(
        failure.message.contains("dispatch of step 0 exploded"),
        "{}",
        failure.message
    );
}

//! Executors sharing a table: exactly-once steps under load, leases held
//! across long steps, and other processes left alone (BEHAVIOUR.md
//! scenarios 12, 13, 14 and 17).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssproc::{Client, JobStatus, StartAt};

use crate::common::harness::{fast_config, start, wait_terminal, with};
use crate::common::scripted::{Act, Plain, Script, Single, Trail};
use crate::common::{test_db, wait_until, TestDb};

const JOBS: usize = 1000;

async fn count_where(db: &TestDb, predicate: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}.jobs WHERE {predicate}", db.schema);
    sqlx::query_scalar(&sql).fetch_one(&db.pool).await.unwrap()
}

/// Registers `count` jobs, a hundred per transaction.
async fn register_many(db: &TestDb, client: &Client<Plain>, count: usize) {
    for start in (0..count).step_by(100) {
        let mut tx = db.pool.begin().await.unwrap();
        for i in start..(start + 100).min(count) {
            let data = Trail::new(format!("j{i:04}"));
            client
                .register_in(&mut tx, &data, StartAt::Now)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// Settings for tests that count executions exactly: a lease far beyond
/// any stall of a busy machine, so that no job is taken over.
fn patient(workers: usize) -> ssproc::ExecutorConfig {
    with(|c| {
        c.max_workers = workers;
        c.heartbeat_interval = Duration::from_secs(1);
        c.lease_duration = Duration::from_secs(30);
    })
}

async fn wait_all_done(db: &TestDb, count: usize) {
    let what = format!("all {count} jobs done");
    wait_until(Duration::from_secs(120), &what, || async {
        count_where(db, "status = 'done'").await == count as i64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_run_every_step_exactly_once() {
    let db = test_db("concurrency_exact").await;
    let script = Script::succeed();
    let config = patient(16);
    let (client, first) = start(&db, Plain::new(&script), config.clone()).await;
    let (_, second) = start(&db, Plain::new(&script), config).await;
    register_many(&db, &client, JOBS).await;
    wait_all_done(&db, JOBS).await;
    first.shutdown().await;
    second.shutdown().await;

    let counts = script.counts();
    assert_eq!(counts.len(), JOBS * 3);
    assert!(counts.values().all(|&n| n == 1), "a step ran twice");
    assert_eq!(
        count_where(&db, "exec_count = 1 AND next_subprocess = 3").await,
        JOBS as i64
    );
    let tokens: HashSet<String> = script.calls().into_iter().map(|c| c.token).collect();
    assert_eq!(tokens.len(), JOBS, "one token per attempt, none shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_failures_still_finish_every_job_exactly() {
    let db = test_db("concurrency_random").await;
    // A call fails with 30 % probability. Which calls failed is recorded,
    // so that every other call is known to have succeeded.
    let failed = Arc::new(Mutex::new(HashSet::new()));
    let script = {
        let failed = Arc::clone(&failed);
        Script::new(move |call| {
            if fastrand::u8(0..10) < 3 {
                failed
                    .lock()
                    .unwrap()
                    .insert(call.token.clone() + "/" + &call.step.to_string());
                Act::Fail
            } else {
                Act::Succeed
            }
        })
    };
    // No attempt may lose its job here, so every attempt but the last ends
    // in one failed call.
    let mut config = patient(16);
    config.max_exec_count = 100;
    let (client, first) = start(&db, Plain::new(&script), config.clone()).await;
    let (_, second) = start(&db, Plain::new(&script), config).await;
    register_many(&db, &client, JOBS).await;
    wait_all_done(&db, JOBS).await;
    first.shutdown().await;
    second.shutdown().await;

    let failed = failed.lock().unwrap().clone();
    let mut successes: HashMap<(String, usize), u32> = HashMap::new();
    let mut failures: HashMap<String, i32> = HashMap::new();
    for call in script.calls() {
        if failed.contains(&(call.token.clone() + "/" + &call.step.to_string())) {
            *failures.entry(call.job_id).or_default() += 1;
        } else {
            *successes.entry((call.job_id, call.step)).or_default() += 1;
        }
    }
    assert_eq!(successes.len(), JOBS * 3);
    assert!(
        successes.values().all(|&n| n == 1),
        "a step that succeeded ran again"
    );
    let rows: Vec<(String, i32)> = sqlx::query_as(&format!(
        "SELECT job_data, exec_count FROM {}.jobs",
        db.schema
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut retried = 0;
    for (text, exec_count) in rows {
        let data: Trail = serde_json::from_str(&text).unwrap();
        assert_eq!(data.trail, ["s0", "s1", "s2"], "{}", data.id);
        let failed_calls = failures.get(&data.id).copied().unwrap_or(0);
        assert_eq!(
            failed_calls,
            exec_count - 1,
            "{}: one failed call per retry",
            data.id
        );
        if exec_count > 1 {
            retried += 1;
        }
    }
    assert!(retried > 100, "only {retried} jobs were retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_step_from_being_stolen() {
    let db = test_db("concurrency_long_step").await;
    // The step outlives the lease (3 s) twice over; heartbeats every 300 ms
    // leave room for a busy machine.
    let script = Script::new(|_| Act::Sleep(Duration::from_secs(7)));
    let config = with(|c| {
        c.heartbeat_interval = Duration::from_millis(300);
        c.lease_duration = Duration::from_secs(3);
    });
    let (client, first) = start(&db, Single::new(&script), config.clone()).await;
    client.register(&Trail::new("long")).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the first executor claims the job",
        || async { !script.calls().is_empty() },
    )
    .await;
    let (_, second) = start(&db, Single::new(&script), config).await;
    let job = wait_terminal(&client, "long", Duration::from_secs(30)).await;
    first.shutdown().await;
    second.shutdown().await;

    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.exec_count, 1);
    assert_eq!(job.tokens.len(), 1, "{:?}", job.tokens);
    assert_eq!(script.calls().len(), 1);
}

#[tokio::test]
async fn jobs_of_other_processes_are_untouched() {
    let db = test_db("concurrency_other_process").await;
    // Both processes share the table; `Other` differs from `Single` only in
    // its id.
    struct Other;
    impl ssproc::Process for Other {
        type Data = Trail;
        const ID: &'static str = "other";
        const STEPS: &'static [&'static str] = &["s0"];
        const COMPENSATED: &'static [bool] = &[false];
        fn run_step<'a>(
            &'a self,
            step: usize,
            _: &'a ssproc::StepContext,
            _: &'a mut Trail,
        ) -> ssproc::StepFuture<'a> {
            Box::pin(async move { Err(ssproc::step_out_of_range(step)) })
        }
        fn run_compensation<'a>(
            &'a self,
            _: usize,
            _: &'a ssproc::StepContext,
            _: &'a mut Trail,
        ) -> Option<ssproc::StepFuture<'a>> {
            None
        }
    }
    let others = Client::<Other>::new(db.pool.clone(), db.table.clone());
    for i in 0..50 {
        others
            .register(&Trail::new(format!("other{i}")))
            .await
            .unwrap();
    }
    let script = Script::succeed();
    let (client, handle) = start(&db, Single::new(&script), fast_config()).await;
    for i in 0..20 {
        client
            .register(&Trail::new(format!("mine{i}")))
            .await
            .unwrap();
    }
    for i in 0..20 {
        wait_terminal(&client, &format!("mine{i}"), Duration::from_secs(20)).await;
    }
    handle.shutdown().await;

    let untouched = "process_id = 'other' AND status = 'ready' AND exec_count = 0 \
        AND goroutine_id = '' AND started_ts IS NULL";
    assert_eq!(count_where(&db, untouched).await, 50);
    assert!(script.calls().iter().all(|c| c.job_id.starts_with("mine")));
}

//! Real faults while a job runs: heartbeats that cannot reach the database
//! (BEHAVIOUR.md scenario 15).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use ssproc::{Executor, JobStatus};

use crate::common::harness::{fast_config, start, wait_terminal};
use crate::common::scripted::{Act, Plain, Script, Trail};
use crate::common::{test_db, wait_until};

const ROLE: &str = "ssproc_heartbeat_fault";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_heartbeats_cancel_the_attempt_and_another_finishes() {
    let db = test_db("faults_heartbeat").await;
    // The first executor connects as its own role, so that its connections
    // alone can be terminated and refused.
    let setup = [
        format!(
            "DO $$ BEGIN CREATE ROLE {ROLE}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ),
        format!("ALTER ROLE {ROLE} LOGIN PASSWORD 'fault'"),
        format!("GRANT USAGE ON SCHEMA {} TO {ROLE}", db.schema),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {ROLE}", db.schema),
    ];
    for statement in &setup {
        sqlx::query(statement).execute(&db.pool).await.unwrap();
    }
    let options = PgConnectOptions::from_str(&db.url)
        .unwrap()
        .username(ROLE)
        .password("fault")
        .application_name(ROLE);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect_with(options)
        .await
        .unwrap();

    // The first call of step 0 blocks until its attempt is cancelled.
    let script = Script::new(|call| match (call.step, call.earlier) {
        (0, 0) => Act::WaitForCancel,
        _ => Act::Succeed,
    });
    let executor =
        Executor::new(pool, db.table.clone(), Plain::new(&script), fast_config()).unwrap();
    let first = executor.start().await.unwrap();
    let client = ssproc::Client::<Plain>::new(db.pool.clone(), db.table.clone());
    client.register(&Trail::new("j1")).await.unwrap();
    wait_until(Duration::from_secs(10), "step 0 starts", || async {
        !script.calls().is_empty()
    })
    .await;

    sqlx::query(&format!("ALTER ROLE {ROLE} NOLOGIN"))
        .execute(&db.pool)
        .await
        .unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
    )
    .bind(ROLE)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        !terminated.is_empty(),
        "the executor had connections to terminate"
    );

    wait_until(
        Duration::from_secs(10),
        "the attempt is cancelled",
        || async { first.is_idle() },
    )
    .await;
    let (_, second) = start(&db, Plain::new(&script), fast_config()).await;
    let job = wait_terminal(&client, "j1", Duration::from_secs(20)).await;
    second.shutdown().await;
    first.shutdown().await;
    sqlx::query(&format!("ALTER ROLE {ROLE} LOGIN"))
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.exec_count, 2);
    let calls = script.calls();
    let first_token = &calls[0].token;
    assert!(
        calls.iter().skip(1).all(|c| &c.token != first_token),
        "the cancelled attempt ran another step: {calls:?}"
    );
    assert_eq!(script.step_calls("j1", 3), [2, 1, 1]);
    assert_eq!(job.data::<Trail>().unwrap().trail, ["s0", "s1", "s2"]);
}

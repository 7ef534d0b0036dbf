//! The database going away: an executor started while PostgreSQL is down
//! waits for it, and one whose server crashes and restarts mid-run finishes
//! its jobs (BEHAVIOUR.md invariant 1).
//!
//! Each test stops a private cluster of its own, never the shared one. With
//! `DATABASE_URL` set they cannot control the server, and skip.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use ssproc::{Client, Executor, JobStatus, JobTable};
use tracing::Level;

use crate::common::harness::{fast_config, wait_terminal, with};
use crate::common::logs::{capture, panics_on, watch_panics, Logs};
use crate::common::postgres::{private_cluster, Auth, Cluster};
use crate::common::scripted::{Act, Plain, Script, Trail};
use crate::common::wait_until;

/// A pool on `url` that connects lazily and gives up on a connection after
/// `patience`.
fn lazy_pool(url: &str, patience: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(patience)
        .connect_lazy(url)
        .expect("the cluster URL parses")
}

/// Stops the server off the runtime's thread, so the executor's tasks keep
/// running meanwhile.
async fn stop(cluster: &Arc<Cluster>) {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("pg_ctl stop panicked");
}

/// Starts the server again off the runtime's thread.
async fn start(cluster: &Arc<Cluster>) {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || cluster.start())
        .await
        .expect("pg_ctl start panicked");
}

/// Events of ssproc at `level`.
fn ssproc_events(logs: &Logs, level: Level) -> Vec<String> {
    logs.records()
        .into_iter()
        .filter(|r| r.level == level && r.target.starts_with("ssproc"))
        .map(|r| r.text)
        .collect()
}

async fn count_where(pool: &PgPool, predicate: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM public.jobs WHERE {predicate}"
    ))
    .fetch_one(pool)
    .await
    .expect("count jobs")
}

#[tokio::test]
async fn an_executor_started_while_the_database_is_down_waits_then_works() {
    let Some(cluster) = private_cluster("faults_database_down", Auth::Trust).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    watch_panics();
    let (logs, _guard) = capture();
    let table = JobTable::new("public", "jobs").unwrap();
    let setup = lazy_pool(&cluster.url, Duration::from_secs(30));
    ssproc::migrate(&setup, &table).await.unwrap();
    setup.close().await;
    stop(&cluster).await;

    // Every try against the stopped server fails after half a second.
    let pool = lazy_pool(&cluster.url, Duration::from_millis(500));
    let script = Script::succeed();
    let executor = Executor::new(
        pool.clone(),
        table.clone(),
        Plain::new(&script),
        fast_config(),
    )
    .unwrap();
    let starting = tokio::spawn(async move { executor.start().await });
    let warning = "database unreachable at start, will retry";
    wait_until(Duration::from_secs(30), "three start-up warnings", || {
        let seen = logs.with_message(warning).len();
        async move { seen >= 3 }
    })
    .await;
    assert!(
        !starting.is_finished(),
        "start returned while the server was down"
    );
    let warnings = logs.with_message(warning);
    for (n, warned) in warnings.iter().take(3).enumerate() {
        assert_eq!(warned.level, Level::WARN);
        assert_eq!(warned.field("failures"), Some((n + 1).to_string().as_str()));
        // The pause doubles from 100 ms: backoff, not a busy loop.
        let pause = 100 << n;
        assert_eq!(warned.field("pause_ms"), Some(pause.to_string().as_str()));
        assert!(warned.field("error").is_some(), "{warned:?}");
    }

    start(&cluster).await;
    let handle = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("start returns once the server is up")
        .expect("start did not panic")
        .expect("the executor starts");
    let client = Client::<Plain>::new(pool.clone(), table);
    for id in ["after1", "after2", "after3"] {
        client.register(&Trail::new(id)).await.unwrap();
    }
    for id in ["after1", "after2", "after3"] {
        let job = wait_terminal(&client, id, Duration::from_secs(20)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(job.data::<Trail>().unwrap().trail, ["s0", "s1", "s2"]);
    }
    handle.shutdown().await;
    pool.close().await;

    assert_eq!(panics_on(std::thread::current().id()), 0);
    assert_eq!(ssproc_events(&logs, Level::ERROR), Vec::<String>::new());
}

#[tokio::test]
async fn a_database_restart_mid_run_is_survived() {
    let Some(cluster) = private_cluster("faults_database_restart", Auth::Trust).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    watch_panics();
    let (logs, _guard) = capture();
    let table = JobTable::new("public", "jobs").unwrap();
    // Patient enough that a busy machine does not starve the executor of
    // connections while the server is up.
    let pool = lazy_pool(&cluster.url, Duration::from_secs(2));
    ssproc::migrate(&pool, &table).await.unwrap();

    // Every step takes a while, so that the eight workers are always in the
    // middle of one when the server goes away.
    const JOBS: usize = 60;
    let script = Script::new(|_| Act::Sleep(Duration::from_millis(100)));
    let client = Client::<Plain>::new(pool.clone(), table.clone());
    let batch: Vec<Trail> = (0..JOBS).map(|i| Trail::new(format!("r{i:02}"))).collect();
    client
        .register_many(&batch, ssproc::StartAt::Now)
        .await
        .unwrap();
    let executor = Executor::new(
        pool.clone(),
        table.clone(),
        Plain::new(&script),
        // Leases a busy machine cannot outlast, yet short enough that the
        // jobs of attempts the crash cut short are claimed again soon after
        // the restart. Those attempts count: more than three must not end a
        // job.
        with(|c| {
            c.heartbeat_interval = Duration::from_millis(500);
            c.lease_duration = Duration::from_secs(5);
            c.max_exec_count = 100;
        }),
    )
    .unwrap();
    let handle = executor.start().await.unwrap();
    let running = "goroutine_lease_expire_ts > now() \
        AND (SELECT count(*) FROM public.jobs WHERE status = 'done') >= 10";
    wait_until(
        Duration::from_secs(60),
        "ten jobs are done and others running",
        || async { count_where(&pool, running).await > 0 },
    )
    .await;

    stop(&cluster).await;
    // Attempts fail their next write and stop, leaving their leases to run
    // out; restart at the first failed write.
    wait_until(Duration::from_secs(60), "a write fails", || {
        let failed = logs.with_message("job write failed, attempt stopped").len();
        async move { failed > 0 }
    })
    .await;
    start(&cluster).await;

    let ids: Vec<String> = batch.iter().map(|t| t.id.clone()).collect();
    let mut retried = 0;
    for id in &ids {
        let job = wait_terminal(&client, id, Duration::from_secs(60)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!(
            job.data::<Trail>().unwrap().trail,
            ["s0", "s1", "s2"],
            "{id}: each step's data committed exactly once"
        );
        if job.exec_count > 1 {
            retried += 1;
        }
    }
    assert!(retried > 0, "no job was interrupted by the restart");
    // The executor is still the one that runs new jobs.
    client.register(&Trail::new("after")).await.unwrap();
    let after = wait_terminal(&client, "after", Duration::from_secs(20)).await;
    assert_eq!(after.status, JobStatus::Done);
    handle.shutdown().await;
    pool.close().await;

    assert_eq!(panics_on(std::thread::current().id()), 0);
    assert_eq!(ssproc_events(&logs, Level::ERROR), Vec::<String>::new());
}

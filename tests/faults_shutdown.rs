//! Graceful shutdown under load: an executor in a child process gets
//! SIGTERM, stops claiming, finishes or cancels its attempts within the
//! grace period, releases its leases and exits 0; another executor takes
//! those jobs over at once (BEHAVIOUR.md §5, shutdown).
//!
//! The child is this test binary run again with a filter naming
//! [`child_executor_until_sigterm`] and an environment variable saying where
//! the jobs are; without that variable the child test does nothing.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use ssproc::{
    process, Client, Executor, JobData, JobStatus, JobTable, StartAt, StepContext, StepError,
    StepOutcome, StepResult,
};
use tokio::sync::watch;

use crate::common::harness::{patient_config, start, wait_terminal, with};
use crate::common::{test_db, wait_until, TestDb};

/// Tells the child test where the jobs are: `<database URL> <schema>`.
const CHILD_ENV: &str = "SSPROC_SHUTDOWN_CHILD";
const CHILD_TEST: &str = "faults_shutdown::child_executor_until_sigterm";
/// What the child prints once its handle has shut down.
const CHILD_DONE: &str = "child: shutdown finished";

const JOBS: usize = 16;
const CHILD_WORKERS: usize = 8;
/// Far longer than the takeover the test allows, so that a lease left
/// behind would fail it.
const CHILD_LEASE: Duration = Duration::from_secs(60);
/// Room for the finishing attempts to commit on a busy machine.
const CHILD_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize, JobData)]
struct Parcel {
    #[job_id]
    id: String,
    trail: Vec<String>,
}

/// What the child's second step does, call by call: even calls hold their
/// worker until the attempt is dropped, odd calls finish once shutdown has
/// begun.
struct Hold {
    calls: AtomicUsize,
    stopping: watch::Sender<bool>,
}

/// Two steps; in the child, the second holds its worker as [`Hold`] says.
struct Drain {
    hold: Option<Arc<Hold>>,
}

#[process(id = "drain")]
impl Drain {
    #[step]
    async fn pack(&self, _ctx: &StepContext, parcel: &mut Parcel) -> StepResult {
        parcel.trail.push("pack".to_owned());
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn ship(&self, _ctx: &StepContext, parcel: &mut Parcel) -> StepResult {
        if let Some(hold) = &self.hold {
            if hold.calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                // Outlives the grace period and ignores cancellation: only
                // the runtime dropping the attempt ends it.
                std::future::pending::<()>().await;
            }
            let mut stopping = hold.stopping.subscribe();
            if stopping.wait_for(|stopping| *stopping).await.is_err() {
                return Err(StepError::retry("the child's shutdown signal vanished"));
            }
        }
        parcel.trail.push("ship".to_owned());
        Ok(StepOutcome::Success)
    }
}

/// The child: an executor that runs until SIGTERM, whose handler calls the
/// handle's shutdown. Run by the test below; does nothing on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of sigterm_stops_claiming_releases_leases_and_another_takes_over"]
async fn child_executor_until_sigterm() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (url, schema) = spec.split_once(' ').expect("`<url> <schema>`");
    // Installed before the executor starts, so no SIGTERM the parent sends
    // can find the default action (death by signal) in place.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect(url)
        .await
        .expect("the child connects");
    let hold = Arc::new(Hold {
        calls: AtomicUsize::new(0),
        stopping: watch::Sender::new(false),
    });
    let config = with(|c| {
        c.name = "child".to_owned();
        c.max_workers = CHILD_WORKERS;
        c.lease_duration = CHILD_LEASE;
        c.heartbeat_interval = Duration::from_secs(1);
        c.shutdown_grace_period = CHILD_GRACE;
        c.execution_timeout = Duration::from_secs(300);
    });
    let table = JobTable::new(schema, "jobs").expect("the parent's schema is plain");
    let process = Drain {
        hold: Some(Arc::clone(&hold)),
    };
    let handle = Executor::new(pool, table, process, config)
        .expect("valid config")
        .start()
        .await
        .expect("the child's executor starts");

    sigterm.recv().await;
    let began = tokio::time::Instant::now();
    // Shutdown begins before the odd attempts may finish, so the workers
    // they free cannot claim more jobs.
    handle.stop_claiming();
    hold.stopping.send_replace(true);
    handle.shutdown().await;
    println!("{CHILD_DONE} in {} ms", began.elapsed().as_millis());
}

/// Job ids matching `predicate`, sorted.
async fn ids_where(db: &TestDb, predicate: &str) -> Vec<String> {
    let sql = format!(
        "SELECT job_id FROM {}.jobs WHERE {predicate} ORDER BY job_id",
        db.schema
    );
    sqlx::query_scalar(&sql).fetch_all(&db.pool).await.unwrap()
}

/// Whether an attempt token starting with `prefix` ever held the job.
fn touched_by(prefix: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM unnest(goroutine_ids) AS t(token) WHERE t.token LIKE '{prefix}:%')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_claiming_releases_leases_and_another_takes_over() {
    let db = test_db("faults_shutdown").await;
    let client = Client::<Drain>::new(db.pool.clone(), db.table.clone());
    let parcels: Vec<Parcel> = (0..JOBS)
        .map(|i| Parcel {
            id: format!("p{i:02}"),
            trail: Vec::new(),
        })
        .collect();
    client.register_many(&parcels, StartAt::Now).await.unwrap();

    let test_exe = std::env::current_exe().expect("locate the test binary");
    let child = tokio::process::Command::new(test_exe)
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{} {}", db.url, db.schema))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child executor");

    // Every worker of the child holds a job in its second step, so the
    // child can claim nothing more until shutdown frees a worker.
    let in_ship = "goroutine_id LIKE 'child:%' AND status = 'ready' AND next_subprocess = 1 \
         AND goroutine_lease_expire_ts > now()";
    wait_until(
        Duration::from_secs(60),
        "the child holds a job per worker",
        || async { ids_where(&db, in_ship).await.len() == CHILD_WORKERS },
    )
    .await;
    let held = ids_where(&db, &touched_by("child")).await;
    assert_eq!(held.len(), CHILD_WORKERS, "{held:?}");

    let pid = child.id().expect("the child runs").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the child exits after SIGTERM")
        .expect("wait for the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "child exit\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let took_ms: u64 = stdout
        .lines()
        .find_map(|line| line.split_once(CHILD_DONE))
        .and_then(|(_, rest)| rest.trim().strip_prefix("in "))
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no shutdown time in stdout:\n{stdout}"));
    // The holders kept it for the whole grace period, and no longer: then
    // they were cancelled.
    let took = Duration::from_millis(took_ms);
    assert!(
        took >= CHILD_GRACE && took < CHILD_GRACE + Duration::from_secs(10),
        "shutdown took {took:?}"
    );
    assert!(stdout.contains("1 passed"), "stdout:\n{stdout}");

    // It stopped claiming: no job but the eight it held ever had its token.
    assert_eq!(ids_where(&db, &touched_by("child")).await, held);
    // Half its attempts finished within the grace period...
    let finished = ids_where(&db, "status = 'done'").await;
    assert_eq!(finished.len(), CHILD_WORKERS / 2, "{finished:?}");
    assert!(finished.iter().all(|id| held.contains(id)));
    // ...the other half were cancelled, and their leases released: they are
    // claimable now, with fifty-odd seconds of the child's lease unspent.
    let released = ids_where(
        &db,
        &format!(
            "{} AND status = 'ready' AND next_subprocess = 1 AND exec_count = 1 \
             AND goroutine_lease_expire_ts IS NULL AND start_after_ts <= now()",
            touched_by("child")
        ),
    )
    .await;
    assert_eq!(released.len(), CHILD_WORKERS / 2, "{released:?}");

    // A lease no busy machine outlasts, so that attempts count exactly.
    let mut config = patient_config();
    config.name = "second".to_owned();
    config.max_workers = JOBS;
    let (client, second) = start(&db, Drain { hold: None }, config).await;
    let taken_over = format!(
        "{} AND {} AND job_id = ANY(ARRAY['{}'])",
        touched_by("child"),
        touched_by("second"),
        released.join("','")
    );
    // Far below the 60 s lease, so only released leases can be taken over;
    // the room above a second is for a busy machine.
    wait_until(
        Duration::from_secs(3),
        "the second executor has taken over the released jobs",
        || async { ids_where(&db, &taken_over).await.len() == released.len() },
    )
    .await;

    for parcel in &parcels {
        let job = wait_terminal(&client, &parcel.id, Duration::from_secs(20)).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        let expected_runs = if released.contains(&parcel.id) { 2 } else { 1 };
        assert_eq!(job.exec_count, expected_runs, "{job:?}");
        assert_eq!(job.data::<Parcel>().unwrap().trail, ["pack", "ship"]);
    }
    second.shutdown().await;
}

//! Executor settings for tests, and waits on job state.

use std::time::Duration;

use ssproc::{Client, ExecutorConfig, Job, Process};

use super::scripted::Trail;

/// Settings small enough for a fast suite: short leases and intervals,
/// millisecond backoff.
pub fn fast_config() -> ExecutorConfig {
    let mut config = ExecutorConfig::default();
    config.name = "test".to_owned();
    config.max_workers = 8;
    config.heartbeat_interval = Duration::from_millis(200);
    config.lease_duration = Duration::from_secs(1);
    config.sweep_interval = Duration::from_millis(200);
    config.sweep_jitter = Duration::from_millis(20);
    config.execution_timeout = Duration::from_secs(30);
    config.max_exec_count = 3;
    config.max_comp_count = 3;
    config.retry_backoff_base = Duration::from_millis(10);
    config.retry_backoff_max = Duration::from_millis(50);
    config.shutdown_grace_period = Duration::from_secs(5);
    config
}

/// [`fast_config`] with a lease no busy machine can outlast (30 s, renewed
/// every second), for tests that count attempts exactly.
pub fn patient_config() -> ExecutorConfig {
    with(|c| {
        c.heartbeat_interval = Duration::from_secs(1);
        c.lease_duration = Duration::from_secs(30);
    })
}

/// [`fast_config`] with the changes `change` makes.
pub fn with(change: impl FnOnce(&mut ExecutorConfig)) -> ExecutorConfig {
    let mut config = fast_config();
    change(&mut config);
    config
}

/// Polls `job_id` until it is terminal; panics after `deadline`.
pub async fn wait_terminal<P: Process>(
    client: &Client<P>,
    job_id: &str,
    deadline: Duration,
) -> Job {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let job = client
            .job(job_id)
            .await
            .expect("read job")
            .expect("job exists");
        if job.status.is_terminal() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "job {job_id} not terminal after {deadline:?}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An executor of `process` on the test's table, not started.
pub fn executor<P: Process>(
    db: &super::TestDb,
    process: P,
    config: ExecutorConfig,
) -> ssproc::Executor<P> {
    ssproc::Executor::new(db.pool.clone(), db.table.clone(), process, config).expect("valid config")
}

/// Starts an executor of `process` on the test's table, and a client.
pub async fn start<P: Process>(
    db: &super::TestDb,
    process: P,
    config: ExecutorConfig,
) -> (Client<P>, ssproc::ExecutorHandle) {
    let handle = executor(db, process, config)
        .start()
        .await
        .expect("executor starts");
    (Client::new(db.pool.clone(), db.table.clone()), handle)
}

/// Jobs that ran to their end before a bad-input case, and the executor
/// that ran them, still running: what the case must leave alone.
pub struct Bystanders<P: Process> {
    pub client: Client<P>,
    handle: Option<ssproc::ExecutorHandle>,
    before: Vec<Job>,
    probes: usize,
}

impl<P: Process<Data = Trail>> Bystanders<P> {
    /// Starts an executor of `process` on the test's table, registers jobs
    /// `ids` and waits until they are terminal.
    pub async fn start(
        db: &super::TestDb,
        process: P,
        config: ExecutorConfig,
        ids: &[&str],
    ) -> Self {
        let (client, handle) = start(db, process, config).await;
        let mut before = Vec::new();
        for id in ids {
            client
                .register(&Trail::new(*id))
                .await
                .expect("register a bystander");
        }
        for id in ids {
            before.push(wait_terminal(&client, id, Duration::from_secs(20)).await);
        }
        Self {
            client,
            handle: Some(handle),
            before,
            probes: 0,
        }
    }

    /// Asserts that every bystander job is exactly as it was, and that the
    /// executor still runs a new job to its end.
    pub async fn assert_unaffected(&mut self, case: &str) {
        for before in &self.before {
            let now = self
                .client
                .job(&before.job_id)
                .await
                .expect("read a bystander");
            assert_eq!(
                now.as_ref(),
                Some(before),
                "{case}: bystander {} changed",
                before.job_id
            );
        }
        self.probes += 1;
        let probe = format!("probe{}", self.probes);
        self.client
            .register(&Trail::new(probe.clone()))
            .await
            .unwrap_or_else(|error| panic!("{case}: probe not registered: {error:?}"));
        let job = wait_terminal(&self.client, &probe, Duration::from_secs(20)).await;
        assert!(job.status.is_terminal(), "{case}: {job:?}");
        assert_eq!(
            job.exec_count, 1,
            "{case}: the probe needed retries: {job:?}"
        );
    }

    /// Shuts the executor down.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

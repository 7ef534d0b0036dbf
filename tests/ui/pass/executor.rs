//! A process value goes straight into `Executor::new`, or builds and starts
//! its executor itself.

#![deny(warnings)]

use serde::{Deserialize, Serialize};
use ssproc::{
    process, Executor, ExecutorConfig, JobData, JobTable, Process, StepContext, StepOutcome,
    StepResult,
};

#[derive(Serialize, Deserialize, JobData)]
struct Mail {
    #[job_id]
    id: String,
}

struct Mailer;

#[process(id = "mailer")]
impl Mailer {
    #[step]
    async fn send(&self, _ctx: &StepContext, _mail: &mut Mail) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

#[allow(dead_code)]
async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    let executor = Executor::new(
        pool.clone(),
        JobTable::default(),
        Mailer,
        ExecutorConfig::default(),
    )?;
    let handle = executor.start().await?;
    handle.shutdown().await;

    let handle = Mailer
        .spawn_executor(pool.clone(), JobTable::default(), ExecutorConfig::default())
        .await?;
    handle.shutdown().await;
    let _executor: Executor<Mailer> =
        Mailer.into_executor(pool, JobTable::default(), ExecutorConfig::default())?;
    Ok(())
}

fn main() {}

//! A process value goes straight into `Executor::new`.

#![deny(warnings)]

use serde::{Deserialize, Serialize};
use ssproc::{
    process, Executor, ExecutorConfig, JobData, JobTable, StepContext, StepOutcome, StepResult,
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
    let executor = Executor::new(pool, JobTable::default(), Mailer, ExecutorConfig::default())?;
    let handle = executor.start().await?;
    handle.shutdown().await;
    Ok(())
}

fn main() {}

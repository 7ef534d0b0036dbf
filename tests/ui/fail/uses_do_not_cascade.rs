//! Code using a process with a broken block sees only the block's error.

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    id: String,
}

struct Shop;

#[process(id = "shop")]
impl Shop {
    #[step]
    fn reserve(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

#[allow(dead_code)]
fn build(pool: sqlx::PgPool) -> Result<ssproc::Executor<Shop>, ssproc::ConfigError> {
    let config = ssproc::ExecutorConfig::default();
    ssproc::Executor::new(pool, ssproc::JobTable::default(), Shop, config)
}

fn main() {}

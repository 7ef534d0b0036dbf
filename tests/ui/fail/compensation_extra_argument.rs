//! A compensation with an argument beyond the context and the job data.

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
    async fn reserve(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[compensate(reserve)]
    async fn release(&self, _ctx: &StepContext, _order: &mut Order, _why: &str) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

fn main() {}

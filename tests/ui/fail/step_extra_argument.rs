//! A step with an argument too many.

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
    async fn reserve(&self, _ctx: &StepContext, _order: &mut Order, _retries: u32) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

fn main() {}

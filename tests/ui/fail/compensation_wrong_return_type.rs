//! A compensation returning something else than `StepResult`.

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
    async fn release(&self, _ctx: &StepContext, _order: &mut Order) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}

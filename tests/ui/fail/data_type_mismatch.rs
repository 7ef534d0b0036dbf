//! Steps disagreeing on the job data type.

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

    #[step]
    async fn charge(&self, _ctx: &StepContext, _invoice: &mut Invoice) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

#[derive(Serialize, Deserialize, JobData)]
struct Invoice {
    #[job_id]
    id: String,
}

fn main() {}

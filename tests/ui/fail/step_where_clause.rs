//! A step with a `where` clause.

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
    async fn reserve(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult
    where
        Self: Sized,
    {
        Ok(StepOutcome::Success)
    }
}

fn main() {}

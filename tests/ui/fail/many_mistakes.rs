//! Several mistakes in one block are all reported at once.

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    id: String,
}

struct Shop;

#[process(id = "")]
impl Shop {
    #[step]
    fn reserve(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[compensate(charge)]
    async fn release(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn ship(&mut self, _ctx: &StepContext, _order: &mut Order) {}
}

fn main() {}

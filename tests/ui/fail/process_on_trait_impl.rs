//! `#[process]` on a trait impl.

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    id: String,
}

struct Shop;

#[process(id = "shop")]
impl Default for Shop {
    fn default() -> Self {
        Shop
    }
}

#[allow(dead_code)]
async fn step(_ctx: &StepContext, _order: &mut Order) -> StepResult {
    Ok(StepOutcome::Success)
}

fn main() {}

//! Job data that does not implement `JobData`.

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
    async fn reserve(&self, _ctx: &StepContext, _cart: &mut Cart) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

struct Cart;

#[allow(dead_code)]
fn uses(order: Order) -> String {
    order.job_id()
}

fn main() {}

//! A step returning something else than `StepResult`.

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, StepContext};

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    id: String,
}

struct Shop;

#[process(id = "shop")]
impl Shop {
    #[step]
    async fn reserve(&self, _ctx: &StepContext, _order: &mut Order) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}

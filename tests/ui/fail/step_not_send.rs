//! A step whose future is not `Send`.

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
    async fn reserve(&self, ctx: &StepContext, _order: &mut Order) -> StepResult {
        let here = std::rc::Rc::new(());
        ctx.cancelled().await;
        drop(here);
        Ok(StepOutcome::Success)
    }
}

fn main() {}

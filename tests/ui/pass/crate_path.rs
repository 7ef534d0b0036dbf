//! The `crate` arguments: generated code names `ssproc` through a re-export.

#![deny(warnings)]

mod platform {
    pub use ssproc as saga;
}

use serde::{Deserialize, Serialize};
use ssproc::{Process, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, ssproc::JobData)]
#[ssproc(crate = platform::saga)]
struct Invoice {
    #[job_id]
    id: String,
}

struct Billing;

#[ssproc::process(crate = platform::saga, id = "billing")]
impl Billing {
    #[step]
    async fn send(&self, _ctx: &StepContext, _invoice: &mut Invoice) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

fn main() {
    assert_eq!(Billing::ID, "billing");
    assert_eq!(Billing::STEPS, ["send"]);
}

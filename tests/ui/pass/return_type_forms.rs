//! Every accepted way of naming the context and the result type, patterns
//! in argument position, and a receiver written as `self: &Self`.

#![deny(warnings)]

use serde::{Deserialize, Serialize};
use ssproc::{Process, StepError, StepOutcome};

#[derive(Serialize, Deserialize, ssproc::JobData)]
struct Ticket {
    #[job_id]
    number: u64,
}

struct Desk;

#[ssproc::process(id = "desk")]
impl Desk {
    #[step]
    async fn open(&self, _: &ssproc::StepContext, _ticket: &mut Ticket) -> ssproc::StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn close(
        self: &Self,
        _ctx: &ssproc::StepContext,
        Ticket { number }: &mut Ticket,
    ) -> Result<StepOutcome, StepError> {
        *number += 1;
        Ok(StepOutcome::EarlyExitDone)
    }

    #[compensate(open)]
    async fn reopen(
        &self,
        _ctx: &ssproc::StepContext,
        _ticket: &mut Ticket,
    ) -> std::result::Result<ssproc::StepOutcome, ssproc::StepError> {
        Ok(StepOutcome::Success)
    }
}

fn main() {
    assert_eq!(Desk::STEPS, ["open", "close"]);
    assert_eq!(Desk::COMPENSATED, [true, false]);
    assert_eq!(ssproc::JobData::job_id(&Ticket { number: 7 }), "7");
}

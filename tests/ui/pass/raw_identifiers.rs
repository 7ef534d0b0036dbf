//! Step names written as raw identifiers are stored without `r#`, and a
//! compensation may name its step either way.

#![deny(warnings)]

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, Process, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, JobData)]
struct Parcel {
    #[job_id]
    r#ref: String,
}

struct Courier;

#[process(id = "courier")]
impl Courier {
    #[step]
    async fn r#move(&self, _ctx: &StepContext, _parcel: &mut Parcel) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[compensate(r#move)]
    async fn r#return(&self, _ctx: &StepContext, _parcel: &mut Parcel) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn r#type(&self, _ctx: &StepContext, _parcel: &mut Parcel) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[compensate(type)]
    async fn untype(&self, _ctx: &StepContext, _parcel: &mut Parcel) -> StepResult {
        Ok(StepOutcome::Success)
    }
}

fn main() {
    assert_eq!(Courier::STEPS, ["move", "type"]);
    assert_eq!(Courier::COMPENSATED, [true, true]);
}

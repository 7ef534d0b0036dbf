//! A generic impl block becomes a generic process implementation.

#![deny(warnings)]

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, Process, StepContext, StepOutcome, StepResult};

#[derive(Serialize, Deserialize, JobData)]
struct Payload {
    #[job_id]
    key: String,
}

struct Relay<T> {
    sink: PhantomData<fn() -> T>,
}

#[process(id = "relay")]
impl<T: Default + 'static> Relay<T> {
    #[step]
    async fn forward(&self, _ctx: &StepContext, _payload: &mut Payload) -> StepResult {
        let _ = T::default();
        Ok(StepOutcome::Success)
    }
}

fn main() {
    assert_eq!(<Relay<u8> as Process>::STEPS, ["forward"]);
    let relay = Relay::<u8> { sink: PhantomData };
    let _ = relay.sink;
}

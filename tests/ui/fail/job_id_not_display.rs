//! A `#[job_id]` field whose type does not display.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    order_id: Vec<u8>,
}

fn main() {}

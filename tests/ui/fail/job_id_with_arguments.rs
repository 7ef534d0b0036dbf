//! `#[job_id]` takes no arguments.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id(prefix = "o-")]
    order_id: String,
}

fn main() {}

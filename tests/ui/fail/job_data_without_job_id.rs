//! `JobData` with no `#[job_id]` field.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    order_id: String,
}

fn main() {}

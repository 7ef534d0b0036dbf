//! `JobData` with two `#[job_id]` fields.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    order_id: String,
    #[job_id]
    customer_id: String,
}

fn main() {}

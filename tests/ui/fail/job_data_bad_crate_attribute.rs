//! A malformed `#[ssproc(...)]` on a `JobData` type.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
#[ssproc(krate = ssproc)]
struct Order {
    #[job_id]
    order_id: String,
}

fn main() {}

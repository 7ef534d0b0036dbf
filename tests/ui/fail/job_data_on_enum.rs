//! `JobData` on an enum.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
enum Order {
    Open { order_id: String },
}

fn main() {}

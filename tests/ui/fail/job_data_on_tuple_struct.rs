//! `JobData` on a tuple struct.

use serde::{Deserialize, Serialize};
use ssproc::JobData;

#[derive(Serialize, Deserialize, JobData)]
struct Order(#[job_id] String);

fn main() {}

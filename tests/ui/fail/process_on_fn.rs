//! `#[process]` on a function.

use ssproc::process;

#[process(id = "shop")]
async fn reserve() {}

fn main() {
    let _ = reserve();
}

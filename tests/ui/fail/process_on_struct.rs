//! `#[process]` on something else than an impl block.

use ssproc::process;

#[process(id = "shop")]
struct Shop;

fn main() {
    let _ = Shop;
}

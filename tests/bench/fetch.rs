//! Fetch benchmark: being written.
fn main() {}

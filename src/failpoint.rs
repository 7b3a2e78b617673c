//! Crash injection for the crash tests: `POSTROOM_FAILPOINT=NAME` (or `NAME:N` for the
//! Nth time the point is reached) makes the process abort there, as a `kill -9` or a power
//! cut would stop it.
//!
//! Owns: the named points and the counter. Must not: do anything when the variable is
//! unset (one cached environment read per process).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("POSTROOM_FAILPOINT").ok()?;
        match v.split_once(':') {
            Some((name, n)) => Some((name.to_owned(), n.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    })
}

/// Aborts the process if `name` is the armed failpoint and this is its Nth hit.
pub fn hit(name: &str) {
    if let Some((armed, n)) = target()
        && armed == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("postroom: failpoint {name} reached, aborting");
        std::process::abort();
    }
}

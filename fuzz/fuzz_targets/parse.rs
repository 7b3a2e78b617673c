//! The parse stage on arbitrary bytes: it must return a message, with bounded fields,
//! and neither let a panic escape, overflow a 2 MB thread stack (what the pipeline's
//! parse threads get), nor run out of memory or time (libFuzzer's `-rss_limit_mb` and
//! `-timeout`).
//!
//! Panics *inside* mail-parser are expected and caught by `parse` (the message is then
//! kept as unparseable); only the abort-on-panic hook of libfuzzer-sys is replaced so
//! that they do not count as crashes. A panic that escapes `parse` still aborts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom::model::MsgFlags;
use postroom::pipeline::parse::parse;
use std::sync::Once;

/// The stack of the pipeline's parse threads (Rust's default for spawned threads).
const STACK: usize = 2 << 20;

static QUIET_CAUGHT_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET_CAUGHT_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, || check(data))
            .expect("spawn the parse thread");
        if worker.join().is_err() {
            // An escaped panic or a failed invariant: make libFuzzer record the input.
            std::process::abort();
        }
    });
});

fn check(data: &[u8]) {
    let p = parse(data);
    if p.flags.has(MsgFlags::UNPARSEABLE) {
        assert!(!p.warnings.is_empty(), "unparseable without a warning");
    }
    if data.is_empty() {
        assert!(!p.warnings.is_empty(), "an empty message without a warning");
    }
    assert!(p.subject.chars().count() <= 1001);
    assert!(p.preview.chars().count() <= 161);
    assert!(p.to.len() <= 100 && p.cc.len() <= 100);
    assert!(p.references.len() <= 100 && p.in_reply_to.len() <= 100);
    assert!(p.warnings.len() <= 50);
    assert!(p.warnings.iter().all(|w| w.len() <= 2000));
}

//! Helpers shared by the integration tests: temporary data dirs and running the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use tempfile::TempDir;

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> TempDir {
    tempfile::Builder::new()
        .prefix("postroom-test-")
        .tempdir()
        .expect("temp dir")
}

/// The `postroom` binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postroom"))
}

/// A `postroom --data DATA ARGS...` command with a clean environment.
pub fn cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data").arg(data).args(args);
    c.env_remove("POSTROOM_DATA")
        .env_remove("POSTROOM_FAILPOINT")
        .env("RUST_LOG", "warn");
    c
}

/// Runs the binary and returns its output, whatever the exit status.
pub fn run(data: &Path, args: &[&str]) -> Output {
    cmd(data, args).output().expect("run postroom")
}

/// Runs the binary, asserts success, returns stdout.
pub fn run_ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "postroom {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `postroom conversations --json --limit 0` parsed.
pub fn conversations_json(data: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(data, &["conversations", "--json", "--limit", "0"])).expect("json")
}

/// Writes `name` with `bytes` under `dir` and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, bytes).expect("write");
    p
}

//! Helpers shared by the integration tests: temporary data dirs and running the binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        // `serve` takes any free port, so tests can run side by side.
        .env("POSTROOM_LISTEN", "127.0.0.1:0")
        .env("POSTROOM_HTTPS_LISTEN", "127.0.0.1:0")
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

/// `postroom serve` with its log lines (RUST_LOG=info) arriving on a channel.
pub struct Serve {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

/// A test that fails half-way leaves no service running behind it.
impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Serve {
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Serve {
        Serve::start_with(data, &[], env)
    }

    /// `postroom serve ARGS...` with extra environment variables.
    pub fn start_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        let mut c = cmd(data, &argv);
        c.env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`; panics with the log after `timeout`.
    pub fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within {timeout:?}; serve said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, and it must stop cleanly.
    pub fn stop(mut self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        assert!(
            status.success(),
            "serve did not stop cleanly ({status}):\n{}",
            self.seen.join("\n")
        );
    }
}

/// The web port from serve's "ready ... web on http://ADDR:PORT/" line.
pub fn web_port(ready_line: &str) -> u16 {
    let at = ready_line
        .find("web on http://")
        .expect("web address in the ready line");
    let rest = &ready_line[at + "web on http://".len()..];
    let hostport = rest.split('/').next().unwrap();
    hostport.rsplit(':').next().unwrap().parse().expect("port")
}

/// A plain HTTP/1.0 request to 127.0.0.1:`port`; returns (status, headers, body).
pub fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    request(port, method, path, &[], b"")
}

/// One HTTP/1.0 request with headers and a body: (status, head, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The HTTPS port from serve's "ready ... https on https://ADDR:PORT/" line.
pub fn https_port(ready_line: &str) -> u16 {
    let at = ready_line
        .find("https on https://")
        .expect("https address in the ready line");
    let rest = &ready_line[at + "https on https://".len()..];
    let hostport = rest.split('/').next().unwrap();
    hostport.rsplit(':').next().unwrap().parse().expect("port")
}

/// The certificate fingerprint from serve's "... (certificate SHA-256 AB:CD:...)" note.
pub fn https_fingerprint(ready_line: &str) -> String {
    let at = ready_line
        .find("certificate SHA-256 ")
        .expect("fingerprint in the ready line");
    ready_line[at + "certificate SHA-256 ".len()..]
        .split(')')
        .next()
        .unwrap()
        .to_owned()
}

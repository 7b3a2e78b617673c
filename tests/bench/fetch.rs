//! Fetch benchmark: `cargo bench --bench fetch`.
//!
//! Starts a private Dovecot (`tests/support/dovecot.rs`), delivers the cached seed-2,
//! 10,000-message Maildir of the import bench (`tests/support/genmail.rs`, ~430 MB with
//! attachments, under `target/bench-data/`) into a user's INBOX with IMAP APPEND (timed,
//! not counted), then, over loopback plain IMAP:
//!
//! 1. the peer: `mbsync` (Debian's `isync`, default `FSync yes`) pulls the mailbox into a
//!    fresh local Maildir;
//! 2. `postroom fetch` (bench profile binary, fresh data dir, keep mode) takes the same
//!    mailbox into conversations, durably; the conversations are checked against the
//!    truth through the library;
//! 3. IDLE latency: `postroom serve` on a fresh user with a 600 s poll interval; 20 times
//!    one APPEND, timed until the pipeline worker logs that it stored it; then SIGTERM,
//!    which must end serve with status 0.
//!
//! Both downloads run under `/usr/bin/time -v` (wall, CPU, peak RSS). Never fails on
//! slowness: it prints figures and the targets (time at most 1.0x mbsync's, peak RSS at
//! most 40 MB, IDLE median under 1 s). A failed run is reported in the table and the
//! rest still runs. Corpus overrides as in the import bench: `POSTROOM_BENCH_SEED`,
//! `POSTROOM_BENCH_COUNT`, `POSTROOM_BENCH_ATTACH_MIN`, `POSTROOM_BENCH_ATTACH_MAX`;
//! `POSTROOM_BENCH_IDLE_ROUNDS` (default 20); `POSTROOM_BENCH_BIN` runs another build of
//! the binary (e.g. the static musl one from `cross/build x86_64`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../support/genmail.rs"]
#[allow(dead_code)]
mod genmail;

#[path = "../support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;

#[path = "common.rs"]
mod common;

use common::{
    Cost, Res, Row, TIME, bench_options, conversations, dir_size, env_num, fmt_opt, have_gnu_time,
    maildir, measured, print_table, target_dir,
};
use dovecot::Dovecot;
use genmail::Truth;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TARGET_RATIO: f64 = 1.0;
const TARGET_RSS_MB: f64 = 40.0;
const TARGET_IDLE_S: f64 = 1.0;
const USER: &str = "bench";
const IDLE_USER: &str = "idle";
const PASSWORD: &str = "bench-pw-1";
/// How long one IDLE probe may take before it counts as lost.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The Maildir's messages in name order (= generation order).
fn message_files(maildir: &Path) -> Res<Vec<PathBuf>> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(maildir.join(sub))? {
            let p = e?.path();
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn count_files(dir: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .filter_map(|s| std::fs::read_dir(dir.join(s)).ok())
        .map(|rd| rd.flatten().filter(|e| e.path().is_file()).count())
        .sum()
}

fn tail(text: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(text);
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The stderr of a `measured` run without `/usr/bin/time`'s report.
fn own_stderr(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let end = s.find("\tCommand being timed:").unwrap_or(s.len());
    s[..end].trim_end().to_owned()
}

fn run_mbsync(work: &Path, d: &Dovecot, count: usize) -> Res<Option<Row>> {
    let version = match Command::new("mbsync").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            eprintln!("mbsync not found: no peer figures (apt-get install -y isync to compare)");
            return Ok(None);
        }
    };
    let local = work.join("mbsync-maildir");
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local)?;
    let config = work.join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n\
             SSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore bench-far\nAccount bench\n\n\
             MaildirStore bench-near\nPath {local}/\nInbox {local}/INBOX\n\n\
             Channel bench\nFar :bench-far:\nNear :bench-near:\n\
             Sync Pull\nCreate Near\nExpunge None\nSyncState *\n",
            port = d.imap_port,
            local = local.display()
        ),
    )?;
    let mut cmd = Command::new("mbsync");
    cmd.arg("-c").arg(&config).args(["-q", "bench"]);
    let (out, cost) = measured(cmd)?;
    let got = count_files(&local.join("INBOX"));
    let size_mb = dir_size(&local) as f64 / 1e6;
    let said = own_stderr(&out.stderr);
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_file(&config);
    if !out.status.success() {
        eprintln!("mbsync failed ({}):\n{said}", out.status);
    } else if !said.is_empty() {
        eprintln!("mbsync said on stderr:\n{}", tail(said.as_bytes(), 20));
    }
    let mut note = format!("{got} messages; Maildir {size_mb:.0} MB; FSync yes");
    if !out.status.success() {
        note = format!("FAILED ({}); {note}", out.status);
    }
    if got != count {
        note += &format!("; expected {count}");
    }
    Ok(Some(Row {
        name: version,
        cost,
        convs: None,
        note,
    }))
}

/// The binary under test: cargo's build, or `POSTROOM_BENCH_BIN` (e.g. the static musl
/// binary `cross/build x86_64` makes, the allocator the appliance ships with).
fn postroom(data: &Path) -> Command {
    let bin = std::env::var_os("POSTROOM_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_postroom").into());
    let mut c = Command::new(bin);
    c.arg("--data")
        .arg(data)
        .env_remove("POSTROOM_DATA")
        .env_remove("POSTROOM_FAILPOINT")
        .env_remove("POSTROOM_KEY_FILE")
        .env("POSTROOM_LISTEN", "127.0.0.1:0")
        .env("POSTROOM_HTTPS_LISTEN", "127.0.0.1:0");
    c
}

/// `postroom account add` for `user` on the plain IMAP port (keep mode).
fn add_account(data: &Path, work: &Path, d: &Dovecot, user: &str, extra: &[&str]) -> Res<()> {
    let pwfile = work.join(format!("{user}.password"));
    std::fs::write(&pwfile, format!("{PASSWORD}\n"))?;
    let out = postroom(data)
        .args(["account", "add", "bench", "--protocol", "imap"])
        .args(["--host", "127.0.0.1", "--port"])
        .arg(d.imap_port.to_string())
        .args(["--security", "none", "--user", user, "--password-file"])
        .arg(&pwfile)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        return Err(format!(
            "postroom account add failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

fn run_postroom(work: &Path, d: &Dovecot, truth: &Truth) -> Res<Row> {
    let data = work.join("postroom-fetch-data");
    let _ = std::fs::remove_dir_all(&data);
    add_account(&data, work, d, USER, &[])?;
    let mut cmd = postroom(&data);
    cmd.args(["fetch", "bench"]).env("RUST_LOG", "warn");
    let (out, cost) = measured(cmd)?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let said = own_stderr(&out.stderr);
    let mut row = Row {
        name: "postroom fetch".into(),
        cost,
        convs: None,
        note: String::new(),
    };
    if !out.status.success() {
        eprintln!("postroom fetch failed ({}):\n{said}", out.status);
        row.note = format!(
            "FAILED ({}): {}",
            out.status,
            tail(said.as_bytes(), 1).trim()
        );
    } else if !said.is_empty() {
        eprintln!(
            "postroom fetch said on stderr:\n{}",
            tail(said.as_bytes(), 20)
        );
    }
    // What is in the store, even after a failure.
    match conversations(&data, truth) {
        Ok((n, exact)) => {
            let store_mb = dir_size(&data) as f64 / 1e6;
            row.convs = Some(n);
            let sep = if row.note.is_empty() { "" } else { "; " };
            row.note += &format!(
                "{sep}store {store_mb:.0} MB; partition {}",
                if exact {
                    "= truth"
                } else {
                    "DIFFERS from truth"
                }
            );
        }
        Err(e) => row.note += &format!("; cannot read the store: {e}"),
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(row)
}

/// A `postroom serve` child, killed (by its pid) if still running when dropped.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Everything it said so far, for diagnostics.
    said: Vec<String>,
}

impl Serve {
    fn start(data: &Path) -> Res<Serve> {
        let mut child = postroom(data)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Serve {
            child,
            lines: rx,
            said: Vec::new(),
        })
    }

    /// Waits for a line for which `want` returns Some; returns when it was read.
    fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&str) -> Option<T>,
    ) -> Option<(Instant, T)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = want(&line);
                    self.said.push(line);
                    if let Some(v) = hit {
                        return Some((at, v));
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn said_tail(&self, n: usize) -> String {
        self.said[self.said.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `N` from a pipeline worker line `... pipeline: N messages, ...`.
fn pipeline_messages(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("pipeline: ")?;
    let mut words = rest.split_whitespace();
    let n = words.next()?.parse().ok()?;
    (words.next()? == "messages,").then_some(n)
}

fn probe(i: usize) -> Vec<u8> {
    format!(
        "From: Probe Customer {i} <probe{i}@customer.example>\r\n\
         To: Support <support@helpdesk.example>\r\n\
         Subject: IDLE probe {i}\r\n\
         Date: Thu, 28 May 2026 10:{:02}:00 +0000\r\n\
         Message-ID: <idle-probe-{i}-{}@bench.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello, this is probe {i}.\r\n",
        i % 60,
        std::process::id()
    )
    .into_bytes()
}

struct IdleResult {
    latencies: Vec<f64>,
    lost: usize,
    exit: String,
    exit_ok: bool,
    convs: Option<usize>,
}

fn run_idle(work: &Path, d: &Dovecot, rounds: usize) -> Res<IdleResult> {
    d.add_user(IDLE_USER, PASSWORD);
    let data = work.join("postroom-idle-data");
    let _ = std::fs::remove_dir_all(&data);
    add_account(&data, work, d, IDLE_USER, &["--poll-secs", "600"])?;
    let mut serve = Serve::start(&data)?;
    if serve
        .wait_for(Duration::from_secs(60), |l| {
            l.contains("postroom: ready").then_some(())
        })
        .is_none()
    {
        return Err(format!(
            "postroom serve did not say \"ready\" within 60 s:\n{}",
            serve.said_tail(30)
        )
        .into());
    }
    // Warm-up, not counted: proves the account task is connected and idling.
    d.append(IDLE_USER, PASSWORD, "INBOX", &probe(0));
    if serve.wait_for(IDLE_TIMEOUT, pipeline_messages).is_none() {
        return Err(format!(
            "the warm-up message was not stored within {IDLE_TIMEOUT:?}:\n{}",
            serve.said_tail(30)
        )
        .into());
    }
    let mut latencies = Vec::new();
    let mut lost = 0;
    for i in 1..=rounds {
        // Let the fetcher finish its pass and go back to IDLE, then drain old lines.
        std::thread::sleep(Duration::from_millis(500));
        while let Ok((_, l)) = serve.lines.try_recv() {
            serve.said.push(l);
        }
        let started = Instant::now();
        d.append(IDLE_USER, PASSWORD, "INBOX", &probe(i));
        match serve.wait_for(IDLE_TIMEOUT, pipeline_messages) {
            Some((at, _)) => latencies.push(at.duration_since(started).as_secs_f64()),
            None => {
                lost += 1;
                eprintln!(
                    "IDLE probe {i}: not stored within {IDLE_TIMEOUT:?}:\n{}",
                    serve.said_tail(10)
                );
            }
        }
    }
    let pid = serve.child.id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = serve.child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Collect what it said while stopping.
    let _ = serve.wait_for(Duration::from_millis(300), |_| None::<()>);
    let (exit, exit_ok) = match status {
        _ if !killed.success() => (format!("kill -TERM {pid} failed: {killed}"), false),
        Some(s) => (
            format!("SIGTERM -> {s}"),
            s.success() && serve.said.iter().any(|l| l.contains("stopped cleanly")),
        ),
        None => ("did not exit within 60 s of SIGTERM".into(), false),
    };
    if !exit_ok {
        eprintln!("postroom serve while stopping:\n{}", serve.said_tail(15));
    }
    drop(serve);
    let convs = postroom::store::Store::open(
        &data.join(postroom::app::STORE_FILE),
        &postroom::store::StoreOptions::default(),
    )
    .and_then(|s| s.read().and_then(|r| r.conversations()))
    .map(|c| c.len())
    .ok();
    let _ = std::fs::remove_dir_all(&data);
    Ok(IdleResult {
        latencies,
        lost,
        exit,
        exit_ok,
        convs,
    })
}

fn main() -> Res<()> {
    // `cargo bench` passes `--bench`; a filter that does not name us skips the run.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "fetch".contains(a.as_str())) {
        return Ok(());
    }
    let opts = bench_options()?;
    let (seed, count) = (opts.seed, opts.count);
    let rounds = usize::try_from(env_num("POSTROOM_BENCH_IDLE_ROUNDS", 20))?;
    let (maildir, truth) = maildir(&opts)?;
    let work = target_dir().join("bench-data").join("work");
    std::fs::create_dir_all(&work)?;
    if !have_gnu_time() {
        eprintln!(
            "{TIME} not found: wall time only, no peak RSS (apt-get install -y time to measure it)"
        );
    }

    let d = Dovecot::start();
    d.add_user(USER, PASSWORD);
    let files = message_files(&maildir)?;
    let started = Instant::now();
    let appended = d.append_many(
        USER,
        PASSWORD,
        "INBOX",
        files.iter().map(|p| std::fs::read(p).unwrap()),
    );
    let append_s = started.elapsed().as_secs_f64();
    let on_server = d.count(USER, PASSWORD, "INBOX");

    println!(
        "\nfetch benchmark: {count} messages, seed {seed}, {:.0} MB ({} new, {} follow-ups, {} auto-replies, {} attachments)",
        truth.bytes as f64 / 1e6,
        truth.new,
        truth.reply,
        truth.auto,
        truth.attachments
    );
    println!(
        "server setup (not counted): APPEND of {appended} messages into Dovecot in {append_s:.1} s; INBOX holds {on_server}; IMAP 127.0.0.1:{} plain",
        d.imap_port
    );

    let mut rows = Vec::new();
    match run_mbsync(&work, &d, count) {
        Ok(Some(r)) => rows.push(r),
        Ok(None) => {}
        Err(e) => eprintln!("mbsync run failed: {e}"),
    }
    let ours = match run_postroom(&work, &d, &truth) {
        Ok(r) => r,
        Err(e) => Row {
            name: "postroom fetch".into(),
            cost: Cost::default(),
            convs: None,
            note: format!("FAILED: {e}"),
        },
    };
    let idle = run_idle(&work, &d, rounds);

    println!();
    let peer = rows.first().map(|r| r.cost.wall_s);
    rows.push(ours);
    print_table(
        &rows,
        count,
        truth.conversations(),
        [
            &format!("<={TARGET_RATIO:.1}x"),
            "",
            &format!("<={TARGET_RSS_MB:.0}"),
        ],
    );

    let ours = rows.last().expect("postroom row");
    let ratio = peer.map(|p| ours.cost.wall_s / p.max(1e-3));
    println!(
        "\npostroom: {:.2} s = {} mbsync's time ({}), peak RSS {} MB ({}), {} conversations vs {} true",
        ours.cost.wall_s,
        ratio
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "n/a x".into()),
        match ratio {
            Some(r) if r <= TARGET_RATIO => "meets the 1.0x target",
            Some(_) => "SLOWER than the 1.0x target",
            None => "no peer",
        },
        fmt_opt(ours.cost.peak_rss_mb, 1),
        match ours.cost.peak_rss_mb {
            Some(m) if m <= TARGET_RSS_MB => "meets the 40 MB target",
            Some(_) => "ABOVE the 40 MB target",
            None => "not measured",
        },
        ours.convs.map(|c| c.to_string()).unwrap_or_default(),
        truth.conversations()
    );
    match idle {
        Ok(r) => {
            let mut l = r.latencies.clone();
            l.sort_by(f64::total_cmp);
            let median = if l.is_empty() {
                None
            } else if l.len() % 2 == 1 {
                Some(l[l.len() / 2])
            } else {
                Some((l[l.len() / 2 - 1] + l[l.len() / 2]) / 2.0)
            };
            let ms = |v: Option<f64>| {
                v.map(|s| format!("{:.0} ms", s * 1000.0))
                    .unwrap_or_else(|| "n/a".into())
            };
            println!(
                "IDLE: APPEND -> stored, {} of {rounds} probes: median {}, min {}, max {} ({}){}; serve: {} ({}); {} conversations in its store (expected {})",
                l.len(),
                ms(median),
                ms(l.first().copied()),
                ms(l.last().copied()),
                match median {
                    Some(m) if m < TARGET_IDLE_S => "meets the < 1 s target",
                    Some(_) => "ABOVE the 1 s target",
                    None => "not measured",
                },
                if r.lost > 0 {
                    format!("; {} LOST (not stored within {IDLE_TIMEOUT:?})", r.lost)
                } else {
                    String::new()
                },
                r.exit,
                if r.exit_ok {
                    "exit 0, stopped cleanly"
                } else {
                    "NOT a clean exit"
                },
                r.convs
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "n/a".into()),
                rounds + 1
            );
        }
        Err(e) => println!("IDLE: FAILED: {e}"),
    }
    drop(d);
    Ok(())
}

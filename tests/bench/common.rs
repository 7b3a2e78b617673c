//! Helpers shared by the benchmarks (`#[path = "common.rs"] mod common;`): the cached
//! generated Maildir, running a command under `/usr/bin/time -v`, and reading the
//! conversations back through the library. The including crate declares
//! `mod genmail` (`tests/support/genmail.rs`) at its root.

use crate::genmail::{self, GenOptions, Truth};
use postroom::app::STORE_FILE;
use postroom::model::Status;
use postroom::store::{Store, StoreOptions};
use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

pub type Res<T> = Result<T, Box<dyn Error>>;

pub const TIME: &str = "/usr/bin/time";

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The corpus options from `POSTROOM_BENCH_SEED` (default 2), `POSTROOM_BENCH_COUNT`
/// (10,000), `POSTROOM_BENCH_ATTACH_MIN` and `POSTROOM_BENCH_ATTACH_MAX` (bytes).
pub fn bench_options() -> Res<GenOptions> {
    let seed = env_num("POSTROOM_BENCH_SEED", 2);
    let count = usize::try_from(env_num("POSTROOM_BENCH_COUNT", 10_000))?;
    let defaults = GenOptions::default();
    Ok(GenOptions {
        count,
        seed,
        attach_min: usize::try_from(env_num(
            "POSTROOM_BENCH_ATTACH_MIN",
            defaults.attach_min as u64,
        ))?,
        attach_max: usize::try_from(env_num(
            "POSTROOM_BENCH_ATTACH_MAX",
            defaults.attach_max as u64,
        ))?,
        ..defaults
    })
}

/// The cached Maildir and its truth, generated on first use.
pub fn maildir(opts: &GenOptions) -> Res<(PathBuf, Truth)> {
    let (seed, count) = (opts.seed, opts.count);
    let defaults = GenOptions::default();
    let mut key = format!("genmail-v{}-seed{seed}-n{count}", genmail::VERSION);
    if (opts.attach_min, opts.attach_max) != (defaults.attach_min, defaults.attach_max) {
        key += &format!("-att{}-{}", opts.attach_min, opts.attach_max);
    }
    let dir = target_dir().join("bench-data").join(key);
    let maildir = dir.join("Maildir");
    let truth_file = dir.join("truth.txt");
    if let Ok(text) = std::fs::read_to_string(&truth_file)
        && let Some(t) = Truth::from_text(&text)
        && t.count() == count
        && maildir.join("new").is_dir()
    {
        eprintln!("using cached {}", maildir.display());
        return Ok((maildir, t));
    }
    // Incomplete or missing: start over. truth.txt is written last, as the marker.
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "generating {count} messages (seed {seed}) into {} ...",
        maildir.display()
    );
    let started = Instant::now();
    let t = genmail::write_maildir(&maildir, opts)?;
    std::fs::write(&truth_file, t.to_text())?;
    eprintln!(
        "generated {:.0} MB in {:.1} s (new={} reply={} auto={})",
        t.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        t.new,
        t.reply,
        t.auto
    );
    Ok((maildir, t))
}

/// What one measured run cost.
#[derive(Debug, Default)]
pub struct Cost {
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub peak_rss_mb: Option<f64>,
}

pub fn have_gnu_time() -> bool {
    Command::new(TIME)
        .args(["-v", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd` under `/usr/bin/time -v` when it is there (peak RSS), else only timed.
pub fn measured(mut cmd: Command) -> Res<(Output, Cost)> {
    let gnu = have_gnu_time();
    let mut run = if gnu {
        let mut c = Command::new(TIME);
        c.arg("-v").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c
    } else {
        std::mem::replace(&mut cmd, Command::new("true"))
    };
    let started = Instant::now();
    let out = run.output()?;
    let mut cost = Cost {
        wall_s: started.elapsed().as_secs_f64(),
        ..Cost::default()
    };
    if gnu {
        let err = String::from_utf8_lossy(&out.stderr);
        let field = |name: &str| {
            err.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let secs = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (secs("User time (seconds):"), secs("System time (seconds):")) {
            cost.cpu_s = Some(u + s);
        }
        cost.peak_rss_mb = field("Maximum resident set size (kbytes):")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0);
        if let Some(w) = field("Elapsed (wall clock) time (h:mm:ss or m:ss):").and_then(|v| {
            v.split(':')
                .try_fold(0.0, |acc, p| p.parse::<f64>().ok().map(|x| acc * 60.0 + x))
        }) {
            cost.wall_s = w;
        }
    }
    Ok((out, cost))
}

/// Conversations (not merged) and whether they are exactly the true partition.
pub fn conversations(data: &Path, truth: &Truth) -> Res<(usize, bool)> {
    let store = Store::open(&data.join(STORE_FILE), &StoreOptions::default())?;
    let r = store.read()?;
    let mut partition = BTreeSet::new();
    for c in r.conversations()? {
        if c.status == Status::Merged {
            continue;
        }
        let ids: BTreeSet<String> = r
            .conversation_messages(c.id)?
            .into_iter()
            .filter_map(|m| m.message_id)
            .collect();
        partition.insert(ids);
    }
    let n = partition.len();
    Ok((n, partition == truth.partition()))
}

pub fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    };
    rd.flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

pub fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "n/a".into())
}

/// One line of a benchmark's results table.
pub struct Row {
    pub name: String,
    pub cost: Cost,
    pub convs: Option<usize>,
    pub note: String,
}

/// The results table both benchmarks print: a row per run, the truth, the targets
/// (wall, messages/s and peak RSS columns).
pub fn print_table(rows: &[Row], count: usize, true_convs: usize, targets: [&str; 3]) {
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>12} {:>14}  notes",
        "run", "wall s", "cpu s", "msgs/s", "peak RSS MB", "conversations"
    );
    for r in rows {
        println!(
            "{:<22} {:>8.2} {:>8} {:>9.0} {:>12} {:>14}  {}",
            r.name,
            r.cost.wall_s,
            fmt_opt(r.cost.cpu_s, 2),
            count as f64 / r.cost.wall_s.max(1e-3),
            fmt_opt(r.cost.peak_rss_mb, 1),
            r.convs
                .map(|c| c.to_string())
                .unwrap_or_else(|| "n/a".into()),
            r.note
        );
    }
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>12} {:>14}  new + auto-replies",
        "truth", "", "", "", "", true_convs
    );
    let [wall, rate, rss] = targets;
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>12} {:>14}",
        "target (postroom)", wall, "", rate, rss, ""
    );
}

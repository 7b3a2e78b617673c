//! Import benchmark: `cargo bench --bench import`.
//!
//! Generates the seed-2, 10,000-message Maildir (`tests/support/genmail.rs`, full-size
//! attachments, ~430 MB; cached under `target/bench-data/` keyed by seed and count so
//! reruns skip generation), imports it with the `postroom` binary of the bench profile
//! into a fresh data dir under `/usr/bin/time -v`, and prints messages/s, peak RSS and
//! the conversation count against the truth. As the peer in the same run, `notmuch new`
//! indexes the same Maildir (throwaway config and database) when notmuch is installed.
//!
//! Never fails on slowness: it prints figures and the targets, nothing more. Override
//! the corpus with `POSTROOM_BENCH_SEED`, `POSTROOM_BENCH_COUNT`,
//! `POSTROOM_BENCH_ATTACH_MIN` and `POSTROOM_BENCH_ATTACH_MAX` (bytes).

#[path = "../support/genmail.rs"]
#[allow(dead_code)]
mod genmail;

use genmail::{GenOptions, Truth};
use postroom::app::STORE_FILE;
use postroom::model::Status;
use postroom::store::{Store, StoreOptions};
use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

const TARGET_RATE: f64 = 1500.0;
const TARGET_RSS_MB: f64 = 40.0;
const TIME: &str = "/usr/bin/time";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The cached Maildir and its truth, generated on first use.
fn maildir(opts: &GenOptions) -> Res<(PathBuf, Truth)> {
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
struct Cost {
    wall_s: f64,
    cpu_s: Option<f64>,
    peak_rss_mb: Option<f64>,
}

fn have_gnu_time() -> bool {
    Command::new(TIME)
        .args(["-v", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd` under `/usr/bin/time -v` when it is there (peak RSS), else only timed.
fn measured(mut cmd: Command) -> Res<(Output, Cost)> {
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
fn conversations(data: &Path, truth: &Truth) -> Res<(usize, bool)> {
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

fn dir_size(p: &Path) -> u64 {
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

struct Row {
    name: String,
    cost: Cost,
    convs: Option<usize>,
    note: String,
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "n/a".into())
}

fn run_postroom(work: &Path, maildir: &Path, truth: &Truth) -> Res<Row> {
    let data = work.join("postroom-data");
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postroom"));
    cmd.arg("--data")
        .arg(&data)
        .args(["import", "--quiet"])
        .arg(maildir)
        .env_remove("POSTROOM_DATA")
        .env_remove("POSTROOM_FAILPOINT")
        .env("RUST_LOG", "warn");
    let (out, cost) = measured(cmd)?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err(format!("postroom import failed: {}", out.status).into());
    }
    let (n, exact) = conversations(&data, truth)?;
    let store_mb = dir_size(&data) as f64 / 1e6;
    let _ = std::fs::remove_dir_all(&data);
    Ok(Row {
        name: "postroom import".into(),
        cost,
        convs: Some(n),
        note: format!(
            "store {store_mb:.0} MB; partition {}",
            if exact {
                "= truth"
            } else {
                "DIFFERS from truth"
            }
        ),
    })
}

fn run_notmuch(work: &Path, maildir: &Path) -> Res<Option<Row>> {
    let version = match Command::new("notmuch").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            eprintln!("notmuch not found: no peer figures (apt-get install -y notmuch to compare)");
            return Ok(None);
        }
    };
    let db = work.join("notmuch-db");
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db)?;
    let config = work.join("notmuch-config");
    std::fs::write(
        &config,
        format!(
            "[database]\npath={}\nmail_root={}\n\n[user]\nname=Support\nprimary_email=support@helpdesk.example\n\n[new]\ntags=inbox;unread;\nignore=\n\n[maildir]\nsynchronize_flags=false\n",
            db.display(),
            maildir.display()
        ),
    )?;
    let notmuch = |args: &[&str]| {
        let mut c = Command::new("notmuch");
        c.args(args)
            .env("NOTMUCH_CONFIG", &config)
            .env_remove("NOTMUCH_PROFILE")
            .env_remove("NOTMUCH_DATABASE");
        c
    };
    let (out, cost) = measured(notmuch(&["new", "--quiet"]))?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err(format!("notmuch new failed: {}", out.status).into());
    }
    let threads = notmuch(&["count", "--output=threads", "*"]).output()?;
    let convs = String::from_utf8_lossy(&threads.stdout).trim().parse().ok();
    let msgs = notmuch(&["count", "--output=messages", "*"]).output()?;
    let msgs = String::from_utf8_lossy(&msgs.stdout).trim().to_owned();
    let db_mb = dir_size(&db) as f64 / 1e6;
    let _ = std::fs::remove_dir_all(&db);
    let _ = std::fs::remove_file(&config);
    Ok(Some(Row {
        name: format!("{version} new"),
        cost,
        convs,
        note: format!("{msgs} messages; database {db_mb:.0} MB; full-text index"),
    }))
}

fn main() -> Res<()> {
    // `cargo bench` passes `--bench`; a filter that does not name us skips the run.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "import".contains(a.as_str())) {
        return Ok(());
    }
    let seed = env_num("POSTROOM_BENCH_SEED", 2);
    let count = usize::try_from(env_num("POSTROOM_BENCH_COUNT", 10_000))?;
    let defaults = GenOptions::default();
    let opts = GenOptions {
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
    };
    let (maildir, truth) = maildir(&opts)?;
    let work = target_dir().join("bench-data").join("work");
    std::fs::create_dir_all(&work)?;
    if !have_gnu_time() {
        eprintln!(
            "{TIME} not found: wall time only, no peak RSS (apt-get install -y time to measure it)"
        );
    }

    println!(
        "\nimport benchmark: {count} messages, seed {seed}, {:.0} MB Maildir ({} new, {} follow-ups, {} auto-replies, {} attachments)",
        truth.bytes as f64 / 1e6,
        truth.new,
        truth.reply,
        truth.auto,
        truth.attachments
    );
    let mut rows = vec![run_postroom(&work, &maildir, &truth)?];
    if let Some(r) = run_notmuch(&work, &maildir)? {
        rows.push(r);
    }

    println!();
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>12} {:>14}  notes",
        "run", "wall s", "cpu s", "msgs/s", "peak RSS MB", "conversations"
    );
    for r in &rows {
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
        "truth",
        "",
        "",
        "",
        "",
        truth.conversations()
    );
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>12} {:>14}",
        "target (postroom)",
        "",
        "",
        format!(">={TARGET_RATE:.0}"),
        format!("<={TARGET_RSS_MB:.0}"),
        ""
    );
    let Some(ours) = rows.first() else {
        return Ok(());
    };
    let rate = count as f64 / ours.cost.wall_s.max(1e-3);
    println!(
        "\npostroom: {:.0} messages/s ({} the {TARGET_RATE:.0} target), peak RSS {} MB ({}), {} conversations vs {} true",
        rate,
        if rate >= TARGET_RATE {
            "meets"
        } else {
            "BELOW"
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
    Ok(())
}

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

#[path = "common.rs"]
mod common;

use common::{
    Res, Row, TIME, bench_options, conversations, dir_size, fmt_opt, have_gnu_time, maildir,
    measured, print_table, target_dir,
};
use genmail::Truth;
use std::path::Path;
use std::process::Command;

const TARGET_RATE: f64 = 1500.0;
const TARGET_RSS_MB: f64 = 40.0;

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
    let opts = bench_options()?;
    let (seed, count) = (opts.seed, opts.count);
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
    print_table(
        &rows,
        count,
        truth.conversations(),
        [
            "",
            &format!(">={TARGET_RATE:.0}"),
            &format!("<={TARGET_RSS_MB:.0}"),
        ],
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

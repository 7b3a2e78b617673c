//! The command line as people and scripts use it: help, serve's start/stop and its
//! single-instance lock, the read commands and their JSON, error messages.

use crate::support::{cmd, run, run_ok, tmp, write_file};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand_with_a_sentence() {
    let t = tmp();
    let out = run_ok(t.path(), &["--help"]);
    for sub in [
        "serve",
        "import",
        "conversations",
        "conversation",
        "raw",
        "log",
        "settings",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(sub) && l.split_whitespace().count() > 2),
            "{sub} missing in:\n{out}"
        );
    }
    let import = run_ok(t.path(), &["import", "--help"]);
    assert!(
        import.contains("mbox") && import.contains("Maildir") && import.contains("--mailbox"),
        "{import}"
    );
}

/// Starts `postroom serve` and waits until it says it is ready.
fn start_serve(data: &std::path::Path) -> Child {
    let mut child = cmd(data, &["serve"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("serve exited before it was ready")
            .unwrap();
        if line.contains("ready") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn serve_creates_the_data_dir_refuses_a_second_service_and_stops_on_sigterm() {
    let t = tmp();
    let data = t.path().join("new/data");
    let mut first = start_serve(&data);
    assert!(
        data.join("postroom.redb").exists(),
        "data dir and store created on first run"
    );
    let second = run(&data, &["serve"]);
    assert!(!second.status.success());
    let msg = stderr_of(&second);
    assert!(
        msg.contains("in use by another postroom process")
            && msg.contains(&format!("pid {}", first.id())),
        "{msg}"
    );
    signal(&first, "-TERM");
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM must stop serve cleanly, got {status}"
    );
    // The lock is gone with the process.
    run_ok(&data, &["conversations"]);
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    let t = tmp();
    let mut child = start_serve(t.path());
    signal(&child, "-INT");
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_data_dir_comes_from_postroom_data_when_no_flag_is_given() {
    let t = tmp();
    let data = t.path().join("from-env");
    let out = std::process::Command::new(crate::support::bin())
        .arg("conversations")
        .env("POSTROOM_DATA", &data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(data.join("postroom.redb").exists());
}

const MAIL: &[u8] = b"From: Zo\xc3\xab <zoe@customer.example>\nTo: support@helpdesk.example\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a question\nDate: Mon, 2 Nov 2026 09:00:00 +0100\nMessage-ID: <cli1@customer.example>\n\nHow do I reset my password?\n";

#[test]
fn conversations_list_shows_and_json_carries_every_field() {
    let t = tmp();
    let mail = write_file(t.path(), "in/one.eml", MAIL);
    let data = t.path().join("data");
    let summary = run_ok(&data, &["import", mail.to_str().unwrap()]);
    assert!(
        summary.contains("imported 1 messages") && summary.contains("1 new conversations"),
        "{summary}"
    );
    let table = run_ok(&data, &["conversations"]);
    assert!(
        table.contains("Grüße and a question")
            && table.contains("zoe@customer.example")
            && table.contains("active"),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(&data, &["conversations", "--json"])).unwrap();
    let c = &v[0];
    assert_eq!(c["id"], 1);
    assert_eq!(c["status"], "active");
    assert_eq!(c["subject"], "Grüße and a question");
    assert_eq!(c["customer"]["email"], "zoe@customer.example");
    assert_eq!(c["customer"]["name"], "Zoë");
    assert_eq!(c["messages"], 1);
    assert_eq!(c["last_activity"], "2026-11-02T08:00:00Z");
    let one: serde_json::Value =
        serde_json::from_str(&run_ok(&data, &["conversation", "1", "--json"])).unwrap();
    assert_eq!(one["thread"][0]["message_id"], "cli1@customer.example");
    assert_eq!(one["thread"][0]["preview"], "How do I reset my password?");
    let text = run_ok(&data, &["conversation", "1"]);
    assert!(
        text.contains("#1 Grüße and a question")
            && text.contains("Message-ID: <cli1@customer.example>"),
        "{text}"
    );
    // The raw message comes back byte for byte.
    let raw = run(&data, &["raw", "1"]);
    assert_eq!(raw.stdout, MAIL);
    let active = run_ok(&data, &["conversations", "--status", "closed"]);
    assert!(!active.contains("Grüße"));
}

#[test]
fn errors_say_what_failed_and_what_to_do() {
    let t = tmp();
    let missing = run(t.path(), &["import", "/nonexistent/mail.mbox"]);
    assert!(!missing.status.success());
    assert!(
        stderr_of(&missing).contains("/nonexistent/mail.mbox does not exist"),
        "{}",
        stderr_of(&missing)
    );
    let none = run(t.path(), &["conversation", "42"]);
    assert!(
        stderr_of(&none).contains("there is no conversation 42")
            && stderr_of(&none).contains("postroom conversations")
    );
    let bad = run(t.path(), &["conversations", "--status", "open"]);
    assert!(stderr_of(&bad).contains("unknown status \"open\""));
    let setting = run(t.path(), &["settings", "subject_tag_prefix", "a b"]);
    assert!(!setting.status.success());
    assert!(
        stderr_of(&setting).contains("subject_tag_prefix cannot be \"a b\""),
        "{}",
        stderr_of(&setting)
    );
    let unknown = run(t.path(), &["settings", "colour"]);
    assert!(stderr_of(&unknown).contains("known settings: subject_tag_prefix"));
}

#[test]
fn settings_round_trip() {
    let t = tmp();
    assert!(run_ok(t.path(), &["settings"]).contains("subject_tag_prefix = \"#\" (default)"));
    run_ok(t.path(), &["settings", "subject_tag_prefix", "Ticket#"]);
    assert_eq!(
        run_ok(t.path(), &["settings", "subject_tag_prefix"]).trim(),
        "Ticket#"
    );
}

#[test]
fn import_into_a_named_mailbox_and_log_tells_what_happened() {
    let t = tmp();
    let mail = write_file(t.path(), "in/one.eml", MAIL);
    let data = t.path().join("data");
    run_ok(
        &data,
        &["import", "--mailbox", "Sales", mail.to_str().unwrap()],
    );
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(&data, &["conversations", "--json"])).unwrap();
    assert_eq!(
        v[0]["mailbox"], 2,
        "Sales is a new mailbox next to the default Inbox"
    );
    let log = run_ok(&data, &["log"]);
    assert!(
        log.contains("new conversation #1 from Zoë <zoe@customer.example>"),
        "{log}"
    );
}

#[test]
fn a_closed_stdout_ends_the_listing_quietly_instead_of_panicking() {
    let t = tmp();
    let mail = t.path().join("Maildir");
    let opts = crate::genmail::GenOptions {
        count: 1500,
        seed: 5,
        attach_min: 1000,
        attach_max: 2000,
        ..Default::default()
    };
    crate::genmail::write_maildir(&mail, &opts).unwrap();
    let data = t.path().join("data");
    run_ok(&data, &["import", "--quiet", mail.to_str().unwrap()]);
    // Far more than a pipe buffer of JSON; read one line and close the pipe.
    let mut child = cmd(&data, &["conversations", "--json", "--limit", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "[");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// While `serve` holds the data dir, every other command runs inside it through the
/// control socket: same output, same exit codes, relative paths from the caller's
/// directory, and errors on stderr.
#[test]
fn commands_run_inside_a_running_service() {
    let t = tmp();
    let data = t.path().join("data");
    let mut serve = crate::support::Serve::start(&data, &[]);
    serve.wait_for("ready", std::time::Duration::from_secs(30));
    let sock = data.join("postroom.sock");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the service's user may use the socket");
    }
    write_file(t.path(), "in/one.eml", MAIL);
    // A relative path, resolved against the caller's directory, not the service's.
    let out = cmd(&data, &["import", "in/one.eml"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported 1 messages from 1 files"),
        "{stdout}"
    );
    serve.wait_for(
        "control socket: running `import in/one.eml`",
        std::time::Duration::from_secs(5),
    );
    let list = run_ok(&data, &["conversations"]);
    assert!(list.contains("Grüße and a question"), "{list}");
    // Binary output (raw bytes) arrives unchanged.
    let raw = run(&data, &["raw", "1"]);
    assert_eq!(raw.stdout, MAIL);
    // A failing command fails the caller with the service's message.
    let none = run(&data, &["conversation", "42"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr_of(&none).contains("there is no conversation 42"),
        "{}",
        stderr_of(&none)
    );
    // Settings changed through the service are the service's settings.
    run_ok(&data, &["settings", "subject_tag_prefix", "Ticket#"]);
    serve.stop();
    assert_eq!(
        run_ok(&data, &["settings", "subject_tag_prefix"]).trim(),
        "Ticket#"
    );
    assert!(
        !data.join("postroom.sock").exists(),
        "a clean stop removes the socket"
    );
}

/// A service killed with SIGKILL leaves its socket behind: the next command runs
/// locally, and the next service replaces the socket.
#[test]
fn a_stale_socket_after_a_kill_is_harmless() {
    let t = tmp();
    let mut serve = crate::support::Serve::start(t.path(), &[]);
    serve.wait_for("ready", std::time::Duration::from_secs(30));
    serve.child.kill().unwrap();
    serve.child.wait().unwrap();
    assert!(t.path().join("postroom.sock").exists());
    run_ok(t.path(), &["conversations"]);
    let mut again = crate::support::Serve::start(t.path(), &[]);
    again.wait_for("ready", std::time::Duration::from_secs(30));
    run_ok(t.path(), &["conversations"]);
    again.stop();
}

/// root opening a data dir that belongs to the service's user would leave root-owned
/// files behind that lock the service out: refused, saying what to do. A user opening
/// their own data dir is not affected. (As a normal user only the second half can run:
/// chown needs root.)
#[test]
fn root_is_refused_a_data_dir_that_belongs_to_another_user() {
    let t = tmp();
    let data = t.path().join("data");
    run_ok(&data, &["conversations"]);
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap();
    if !root {
        return;
    }
    let ok = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(ok.success());
    let out = run(&data, &["conversations"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("belongs to user id 65534") && err.contains("sudo -u postroom"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&data).unwrap().all(|e| {
            use std::os::unix::fs::MetadataExt;
            e.unwrap().metadata().unwrap().uid() == 65534
        }),
        "root wrote nothing into it"
    );
}

/// SIGTERM while control connections are still open (one that never sent its command,
/// one right after a command while it still brings the account tasks in line) stops the
/// service cleanly and promptly, every time.
#[test]
fn serve_stops_promptly_with_control_connections_in_flight() {
    let t = tmp();
    for round in 0..5 {
        let mut serve = crate::support::Serve::start(t.path(), &[]);
        serve.wait_for("ready", std::time::Duration::from_secs(30));
        let _idle =
            std::os::unix::net::UnixStream::connect(t.path().join("postroom.sock")).unwrap();
        run_ok(t.path(), &["account", "list"]);
        signal(&serve.child, "-TERM");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = serve.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < until,
                "round {round}: serve did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "round {round}: {status}");
    }
}

//! Scripted fake IMAP/POP3 servers for what a real Dovecot will not do: a STARTTLS/STLS
//! that has been stripped on the way, a POP3 server without UIDL, one with duplicate UIDLs.

use crate::support::{run, run_ok, tmp};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A line-based server on 127.0.0.1 that answers each received line with `respond`
/// and records every line it got; serves connections one after the other.
struct Fake {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(
        greeting: &'static str,
        respond: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                if conn.write_all(greeting.as_bytes()).is_err() {
                    continue;
                }
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let l = line.trim_end().to_owned();
                    log.lock().unwrap().push(l.clone());
                    let answer = respond(&l);
                    if conn.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                    if l.eq_ignore_ascii_case("QUIT") || l.ends_with("LOGOUT") {
                        break;
                    }
                    line.clear();
                }
            }
        });
        Fake { port, received }
    }

    fn got(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

fn add(data: &std::path::Path, name: &str, proto: &str, port: u16, security: &str, extra: &[&str]) {
    let port = port.to_string();
    let mut args = vec![
        "account",
        "add",
        name,
        "--protocol",
        proto,
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        security,
        "--user",
        "u",
        "--password",
        "secret-pw",
    ];
    args.extend_from_slice(extra);
    run_ok(data, &args);
}

#[test]
fn imap_starttls_refused_by_the_server_never_sends_the_password_in_clear() {
    let fake = Fake::start(
        "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] fake ready\r\n",
        |l| {
            let tag = l.split_whitespace().next().unwrap_or("*");
            if l.to_ascii_uppercase().contains("STARTTLS") {
                format!("{tag} BAD STARTTLS not available\r\n")
            } else {
                format!("{tag} OK done\r\n")
            }
        },
    );
    let t = tmp();
    add(t.path(), "strip", "imap", fake.port, "starttls", &[]);
    let out = run(t.path(), &["fetch", "strip"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("STARTTLS")
            && err.contains("BAD STARTTLS not available")
            && err.contains("will not send the password in clear"),
        "{err}"
    );
    let got = fake.got();
    assert!(got.iter().any(|l| l.contains("STARTTLS")), "{got:?}");
    assert!(
        !got.iter()
            .any(|l| l.contains("LOGIN") || l.contains("secret-pw")),
        "the password went out in clear: {got:?}"
    );
}

#[test]
fn pop3_stls_refused_by_the_server_never_sends_the_password_in_clear() {
    let fake = Fake::start("+OK fake POP3\r\n", |l| {
        if l.eq_ignore_ascii_case("STLS") {
            "-ERR STLS not available\r\n".into()
        } else {
            "+OK\r\n".into()
        }
    });
    let t = tmp();
    add(t.path(), "strip", "pop3", fake.port, "starttls", &[]);
    let out = run(t.path(), &["fetch", "strip"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("-ERR STLS not available")
            && err.contains("will not send the password in clear"),
        "{err}"
    );
    assert!(
        !fake
            .got()
            .iter()
            .any(|l| l.starts_with("USER") || l.contains("secret-pw")),
        "{:?}",
        fake.got()
    );
}

const M1: &str =
    "From: a@example.com\r\nSubject: one\r\nMessage-ID: <one@example.com>\r\n\r\nfirst\r\n";
const M2: &str = "From: b@example.com\r\nSubject: two\r\nMessage-ID: <two@example.com>\r\n\r\n..dot-stuffed line\r\n";

/// A POP3 server with two messages; `uidl` is the UIDL answer (None: not supported).
fn pop3_server(uidl: Option<&'static str>) -> Fake {
    Fake::start("+OK fake POP3\r\n", move |l| {
        let upper = l.to_ascii_uppercase();
        let arg = l.split_whitespace().nth(1).unwrap_or("");
        match upper.split_whitespace().next().unwrap_or("") {
            "LIST" => format!(
                "+OK 2 messages\r\n1 {}\r\n2 {}\r\n.\r\n",
                M1.len(),
                M2.len() - 1
            ),
            "UIDL" => match uidl {
                Some(list) => format!("+OK\r\n{list}.\r\n"),
                None => "-ERR UIDL not supported\r\n".into(),
            },
            "RETR" => format!("+OK\r\n{}.\r\n", if arg == "1" { M1 } else { M2 }),
            "STAT" => format!("+OK 2 {}\r\n", M1.len() + M2.len()),
            _ => "+OK\r\n".into(),
        }
    })
}

fn count_raws(data: &std::path::Path) -> u64 {
    let store =
        postroom::store::Store::open(&data.join(postroom::app::STORE_FILE), &Default::default())
            .unwrap();
    store.read().unwrap().raw_count().unwrap()
}

#[test]
fn pop3_without_uidl_in_keep_mode_stores_each_message_once_and_says_why_it_downloads_again() {
    let fake = pop3_server(None);
    let t = tmp();
    add(t.path(), "nouidl", "pop3", fake.port, "none", &[]);
    let first = run_ok(t.path(), &["fetch", "nouidl"]);
    assert!(first.contains("2 new messages stored"), "{first}");
    assert!(first.contains("no UIDL"), "{first}");
    let second = run_ok(t.path(), &["fetch", "nouidl"]);
    assert!(
        second.contains("0 new messages stored, 2 already stored"),
        "{second}"
    );
    assert_eq!(count_raws(t.path()), 2);
    assert!(
        !fake.got().iter().any(|l| l.starts_with("DELE")),
        "keep mode deleted: {:?}",
        fake.got()
    );
    // Dot-stuffing was undone: the stored bytes are the message, not the transport form.
    let raw = run(t.path(), &["raw", "2"]);
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("\r\n.dot-stuffed line"),
        "{:?}",
        String::from_utf8_lossy(&raw.stdout)
    );
}

#[test]
fn pop3_without_uidl_in_delete_mode_deletes_in_the_same_session_after_storing() {
    let fake = pop3_server(None);
    let t = tmp();
    add(
        t.path(),
        "nouidl",
        "pop3",
        fake.port,
        "none",
        &["--after", "delete"],
    );
    let out = run_ok(t.path(), &["fetch", "nouidl"]);
    assert!(out.contains("2 new messages stored"), "{out}");
    let got = fake.got();
    let pos = |p: &str| {
        got.iter()
            .position(|l| l == p)
            .unwrap_or_else(|| panic!("{p} not sent: {got:?}"))
    };
    assert!(
        pos("RETR 1") < pos("DELE 1")
            && pos("RETR 2") < pos("DELE 2")
            && pos("DELE 2") < pos("QUIT"),
        "{got:?}"
    );
    assert_eq!(count_raws(t.path()), 2);
}

#[test]
fn pop3_with_duplicate_uidls_stores_both_and_never_deletes_them() {
    let fake = pop3_server(Some("1 SAME\r\n2 SAME\r\n"));
    let t = tmp();
    add(
        t.path(),
        "dupes",
        "pop3",
        fake.port,
        "none",
        &["--after", "delete"],
    );
    let out = run_ok(t.path(), &["fetch", "dupes"]);
    assert!(out.contains("2 new messages stored"), "{out}");
    assert!(out.contains("share a UIDL"), "the admin is told: {out}");
    assert!(
        !fake.got().iter().any(|l| l.starts_with("DELE")),
        "ambiguous messages were deleted: {:?}",
        fake.got()
    );
    assert_eq!(count_raws(t.path()), 2);
    let again = run_ok(t.path(), &["fetch", "dupes"]);
    assert!(again.contains("0 new messages stored"), "{again}");
}

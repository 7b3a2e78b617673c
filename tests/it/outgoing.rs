//! Outgoing mail against a real SMTP server on 127.0.0.1 (aiosmtpd, `tests/support/
//! smtpd.rs`): SMTP server settings, `postroom smtp test` through STARTTLS with AUTH and
//! through implicit TLS, and each failure named with the server's reply.

use crate::smtpd::Smtpd;
use crate::support::{run, run_ok, tmp};
use std::path::Path;
use std::time::Duration;

const USER: &str = "agent@example.org";
const PASS: &str = "s3cret pässword";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `smtp add NAME` for the harness with the given security and extra flags.
fn add_smtp(data: &Path, s: &Smtpd, name: &str, security: &str, extra: &[&str]) {
    let port = match security {
        "tls" => s.smtps_port(),
        "starttls" => s.submission_port(),
        _ => s.open_port(),
    }
    .to_string();
    let mut args = vec![
        "smtp",
        "add",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        security,
    ];
    args.extend_from_slice(extra);
    run_ok(data, &args);
}

#[test]
fn smtp_test_delivers_through_starttls_with_auth_and_through_implicit_tls() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = tmp();
    let pin = s.cert_sha256();
    let pw = data.path().join("pw");
    std::fs::write(&pw, format!("{PASS}\n")).unwrap();
    let pw = pw.to_string_lossy().into_owned();
    for (name, security) in [("submission", "starttls"), ("smtps", "tls")] {
        add_smtp(
            data.path(),
            &s,
            name,
            security,
            &["--user", USER, "--password-file", &pw, "--pin-cert", &pin],
        );
    }
    for (i, (name, listener)) in [("submission", "submission"), ("smtps", "smtps")]
        .into_iter()
        .enumerate()
    {
        let out = run_ok(
            data.path(),
            &["smtp", "test", name, "--to", "customer@example.net"],
        );
        for step in [
            "DNS",
            "TLS certificate",
            "AUTH PLAIN as agent@example.org",
            "MAIL FROM:<agent@example.org>",
            "RCPT TO:<customer@example.net>",
            "DATA",
        ] {
            assert!(
                out.contains(&format!("ok   {step}")),
                "{name}: step {step} missing:\n{out}"
            );
        }
        assert!(out.contains("the pinned certificate"), "{out}");
        assert!(
            out.contains("the server accepted the test message: 250"),
            "{out}"
        );
        let got = s.wait_for(i + 1, Duration::from_secs(10));
        let m = &got[i];
        assert_eq!(m.listener, listener);
        assert!(m.tls, "{name}: sent over TLS");
        assert_eq!(m.auth_user.as_deref(), Some(USER));
        assert_eq!(m.mail_from, USER);
        assert_eq!(m.rcpt_tos, vec!["customer@example.net".to_owned()]);
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            text.contains(&format!("Subject: Postroom test message through {name}")),
            "{text}"
        );
    }
    let list = run_ok(data.path(), &["smtp", "list"]);
    assert!(
        list.contains("last test") && list.contains("passed"),
        "{list}"
    );
    // Secrets never show.
    assert!(!list.contains(PASS));
    let json = run_ok(data.path(), &["smtp", "list", "--json"]);
    assert!(
        !json.contains(PASS) && json.contains("\"ok\": true"),
        "{json}"
    );
}

#[test]
fn smtp_failures_name_the_step_and_the_servers_reply() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = tmp();
    let pin = s.cert_sha256();
    // Wrong password: the server's 535 reply, and what to do.
    add_smtp(
        data.path(),
        &s,
        "wrongpw",
        "starttls",
        &["--user", USER, "--password", "nope", "--pin-cert", &pin],
    );
    let o = run(
        data.path(),
        &["smtp", "test", "wrongpw", "--to", "c@example.net"],
    );
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("FAIL AUTH PLAIN") && out.contains("535"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("the test message was not sent"),
        "{}",
        stderr(&o)
    );
    let list = run_ok(data.path(), &["smtp", "list"]);
    assert!(
        list.contains("FAILED"),
        "the failed test is remembered: {list}"
    );
    // A self-signed certificate without a pin: refused, with its fingerprint to pin.
    add_smtp(
        data.path(),
        &s,
        "nopin",
        "tls",
        &["--user", USER, "--password", PASS],
    );
    let o = run(
        data.path(),
        &["smtp", "test", "nopin", "--to", "c@example.net"],
    );
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("FAIL TLS certificate"), "{out}");
    assert!(
        out.replace(':', "")
            .to_lowercase()
            .contains(&pin.to_lowercase()),
        "the fingerprint {pin} is shown: {out}"
    );
    assert!(
        !out.contains("AUTH"),
        "no login is tried with an untrusted server: {out}"
    );
    // STARTTLS asked of a server that does not offer it: never continues in clear.
    add_smtp(data.path(), &s, "stripped", "none", &["--auth", "none"]);
    run_ok(
        data.path(),
        &[
            "smtp",
            "edit",
            "stripped",
            "--security",
            "starttls",
            "--port",
            &s.open_port().to_string(),
        ],
    );
    let o = run(
        data.path(),
        &[
            "smtp",
            "test",
            "stripped",
            "--to",
            "c@example.net",
            "--from",
            USER,
        ],
    );
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("does not offer STARTTLS"),
        "{}",
        stdout(&o)
    );
    // A recipient the relay refuses for good: the 5xx text.
    s.set_fault(crate::smtpd::Fault::Reply {
        at: crate::smtpd::Stage::Rcpt,
        reply: "550 5.1.1 no such user here".into(),
        count: None,
    });
    add_smtp(data.path(), &s, "open", "none", &["--auth", "none"]);
    let o = run(
        data.path(),
        &[
            "smtp",
            "test",
            "open",
            "--to",
            "gone@example.net",
            "--from",
            USER,
        ],
    );
    assert!(!o.status.success());
    assert!(stdout(&o).contains("no such user here"), "{}", stdout(&o));
    // Nothing was delivered by any of these.
    assert!(s.received().is_empty());
}

#[test]
fn smtp_settings_are_validated_and_servers_in_use_are_kept() {
    let data = tmp();
    let o = run(
        data.path(),
        &[
            "smtp",
            "add",
            "x",
            "--host",
            "bad host",
            "--port",
            "0",
            "--security",
            "ssl3",
        ],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    for field in ["host:", "port:", "security:", "username:"] {
        assert!(e.contains(field), "{field} in {e}");
    }
    run_ok(
        data.path(),
        &[
            "smtp",
            "add",
            "lan",
            "--host",
            "10.0.0.2",
            "--security",
            "none",
            "--auth",
            "none",
        ],
    );
    assert!(run_ok(data.path(), &["smtp", "list"]).contains("10.0.0.2:25"));
    run_ok(data.path(), &["smtp", "remove", "lan"]);
    assert!(run_ok(data.path(), &["smtp", "list"]).contains("no SMTP servers yet"));
}

#[test]
fn mailboxes_have_unique_addresses_that_are_never_deleted() {
    let data = tmp();
    let d = data.path();
    run_ok(
        d,
        &[
            "smtp",
            "add",
            "relay",
            "--host",
            "10.0.0.2",
            "--security",
            "none",
            "--auth",
            "none",
        ],
    );
    let out = run_ok(
        d,
        &[
            "mailbox",
            "add",
            "support",
            "--address",
            "Support@Example.org",
            "--name",
            "Support",
            "--smtp",
            "relay",
            "--alias",
            "help@example.org",
            "--auto-reply",
            "on",
        ],
    );
    assert!(
        out.contains("support@example.org, help@example.org, auto-reply on"),
        "{out}"
    );
    // An address belongs to one mailbox only.
    let o = run(
        d,
        &["mailbox", "add", "sales", "--address", "HELP@example.org"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already belongs to the mailbox \"support\""),
        "{}",
        stderr(&o)
    );
    // Header injection through any field is refused, naming the field.
    let o = run(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--name",
            "Support\r\nBcc: all@evil.example",
        ],
    );
    assert!(
        stderr(&o).contains("display_name") && stderr(&o).contains("carriage return"),
        "{}",
        stderr(&o)
    );
    let o = run(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--alias",
            "x@example.org, y@example.org",
        ],
    );
    assert!(!o.status.success(), "two addresses in one alias");
    // Invalidated, commented, and a new main address keeps the old one as an alias.
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--validity",
            "help@example.org=temporarily-invalid",
            "--comment",
            "help@example.org=old flyer",
        ],
    );
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--address",
            "service@example.org",
        ],
    );
    let j: serde_json::Value =
        serde_json::from_str(&run_ok(d, &["mailbox", "list", "--json"])).unwrap();
    let m = j
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "support")
        .unwrap()
        .clone();
    assert_eq!(m["address"], "service@example.org");
    let aliases: Vec<(String, String, String)> = m["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().into(),
                a["validity"].as_str().unwrap().into(),
                a["comment"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        aliases,
        vec![
            (
                "help@example.org".into(),
                "temporarily-invalid".into(),
                "old flyer".into()
            ),
            ("support@example.org".into(), "valid".into(), String::new()),
        ]
    );
    assert_eq!(m["smtp"], "relay");
    assert!(
        m["auto_reply_body"].as_str().unwrap().contains("{{ tag }}"),
        "a default template"
    );
    // The SMTP server is in use and cannot be removed.
    let o = run(d, &["smtp", "remove", "relay"]);
    assert!(
        stderr(&o).contains("is used by the mailboxes support"),
        "{}",
        stderr(&o)
    );
}

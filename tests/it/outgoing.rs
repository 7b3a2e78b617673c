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

const CUSTOMER_MAIL: &str = "From: Zoe Customer <zoe@customer.example>\r\nTo: Support <support@example.org>\r\nSubject: Printer jams\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\nMessage-ID: <q1@customer.example>\r\n\r\nThe printer jams on every page.\r\nCan you help?\r\n";

/// A data dir with a `support` mailbox (support@example.org, alias help@) sending through
/// the harness with `security`, and the customer's first mail as conversation 1.
fn setup(s: &Smtpd, security: &str) -> crate::support::TempDir {
    let data = tmp();
    let d = data.path();
    let pin = s.cert_sha256();
    add_smtp(
        d,
        s,
        "relay",
        security,
        &["--user", USER, "--password", PASS, "--pin-cert", &pin],
    );
    let mail = crate::support::write_file(d, "q1.eml", CUSTOMER_MAIL.as_bytes());
    run_ok(
        d,
        &["import", "--mailbox", "support", &mail.to_string_lossy()],
    );
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--address",
            "support@example.org",
            "--alias",
            "help@example.org",
            "--name",
            "Example Support",
            "--smtp",
            "relay",
            "--signature",
            "{{ agent }}, {{ mailbox_name }}",
        ],
    );
    data
}

fn reply(d: &Path, args: &[&str], body: &str) -> std::process::Output {
    use std::io::Write;
    let mut c = crate::support::cmd(d, &[&["reply"], args].concat());
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn outbox(d: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&run_ok(d, &["outbox", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn a_reply_arrives_byte_exact_and_the_answers_thread_back() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    let attachment = crate::support::write_file(d, "report.pdf", b"%PDF-1.4 not really\x00\xff");
    let o = reply(
        d,
        &[
            "1",
            "--attach",
            &attachment.to_string_lossy(),
            "--quote",
            "--agent",
            "Anna",
        ],
        "Please try the rear tray.\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("sent: the relay said 250"),
        "{}",
        stdout(&o)
    );
    let got = s.wait_for(1, Duration::from_secs(10));
    let m = &got[0];
    assert!(
        m.tls && m.auth_user.as_deref() == Some(USER),
        "STARTTLS + AUTH"
    );
    assert_eq!(m.mail_from, "support@example.org");
    assert_eq!(m.rcpt_tos, vec!["zoe@customer.example".to_owned()]);
    // Byte-exact: what the relay got is what the store holds.
    let ob = outbox(d);
    assert_eq!(ob.len(), 1);
    assert_eq!(ob[0]["state"], "sent");
    let raw_id = ob[0]["raw"].as_u64().unwrap().to_string();
    let stored = crate::support::cmd(d, &["raw", &raw_id])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        stored, m.data,
        "the relay received exactly the stored bytes"
    );
    let text = String::from_utf8_lossy(&m.data).into_owned();
    assert_eq!(
        header(&text, "From"),
        Some("\"Example Support\" <support@example.org>"),
        "{text}"
    );
    assert_eq!(
        header(&text, "To"),
        Some("<zoe@customer.example>"),
        "{text}"
    );
    assert_eq!(
        header(&text, "Subject"),
        Some("Re: Printer jams [#1]"),
        "{text}"
    );
    assert_eq!(
        header(&text, "In-Reply-To"),
        Some("<q1@customer.example>"),
        "{text}"
    );
    assert_eq!(
        header(&text, "References"),
        Some("<q1@customer.example>"),
        "{text}"
    );
    assert_eq!(
        header(&text, "Thread-Topic"),
        Some("Printer jams"),
        "{text}"
    );
    assert!(
        header(&text, "Thread-Index").is_some_and(|t| t.len() == 32),
        "{text}"
    );
    let our_id = header(&text, "Message-ID")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    assert!(our_id.ends_with("@example.org"), "{our_id}");
    assert!(text.contains("Please try the rear tray."), "{text}");
    assert!(
        text.contains("Anna, Example Support"),
        "signature rendered: {text}"
    );
    assert!(
        text.contains("> The printer jams on every page."),
        "quoted: {text}"
    );
    assert!(text.contains("filename=\"report.pdf\""), "{text}");
    // The customer answers our Message-ID; another mail keeps only the tag.
    let a1 = format!(
        "From: zoe@customer.example\r\nTo: support@example.org\r\nSubject: Re: Printer jams [#1]\r\nMessage-ID: <a1@customer.example>\r\nIn-Reply-To: <{our_id}>\r\n\r\nStill jams.\r\n"
    );
    let a2 = "From: zoe@customer.example\r\nTo: help@example.org\r\nSubject: about [#1] again\r\nMessage-ID: <a2@customer.example>\r\n\r\nAnd now?\r\n";
    let p1 = crate::support::write_file(d, "a1.eml", a1.as_bytes());
    let p2 = crate::support::write_file(d, "a2.eml", a2.as_bytes());
    run_ok(d, &["import", &p1.to_string_lossy(), &p2.to_string_lossy()]);
    let list = crate::support::conversations_json(d);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "all in one conversation: {list}"
    );
    assert_eq!(list[0]["messages"], 4);
    // A reply to the alias's mail leaves from the alias.
    let o = reply(d, &["1"], "Answered from the alias.\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = s.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[1].mail_from, "help@example.org");
    // A note stays inside.
    run_ok(
        d,
        &[
            "note",
            "1",
            "--body",
            "Customer has the old model.",
            "--agent",
            "Anna",
        ],
    );
    let conv = run_ok(d, &["conversation", "1"]);
    assert!(
        conv.contains("##") && conv.contains("Customer has the old model."),
        "{conv}"
    );
    assert!(conv.contains("outbox: sent"), "{conv}");
    assert_eq!(s.received().len(), 2, "the note was not mailed");
}

#[test]
fn a_reply_through_implicit_tls_arrives() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "tls");
    let o = reply(data.path(), &["1"], "Over implicit TLS.\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = s.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].listener, "smtps");
    assert!(String::from_utf8_lossy(&got[0].data).contains("Over implicit TLS."));
}

#[test]
fn temporary_failures_wait_and_permanent_ones_show_on_the_conversation() {
    use crate::smtpd::{Fault, Stage};
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    // Down, then 451: the replies wait, with the reason.
    s.set_fault(Fault::Down);
    let o = reply(d, &["1"], "First, while the relay is down.\n");
    assert!(o.status.success(), "queued is success: {}", stderr(&o));
    assert!(stdout(&o).contains("not sent yet"), "{}", stdout(&o));
    s.set_fault(Fault::Reply {
        at: Stage::Rcpt,
        reply: "451 4.7.1 greylisted, try later".into(),
        count: None,
    });
    run_ok(d, &["outbox", "--retry-now"]);
    let ob = outbox(d);
    assert_eq!(ob[0]["state"], "queued");
    assert!(
        ob[0]["last_error"].as_str().unwrap().contains("greylisted"),
        "{ob:?}"
    );
    assert_eq!(ob[0]["attempts"], 2);
    // Back: delivered.
    s.set_fault(Fault::None);
    let out = run_ok(d, &["outbox", "--retry-now"]);
    assert!(out.contains("1 sent"), "{out}");
    assert_eq!(s.wait_for(1, Duration::from_secs(10)).len(), 1);
    // 5xx: failed for good, shown on the conversation with the server's text.
    s.set_fault(Fault::Reply {
        at: Stage::Data,
        reply: "554 5.7.1 message refused as spam".into(),
        count: None,
    });
    let o = reply(d, &["1"], "This one is refused.\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refused as spam"), "{}", stderr(&o));
    let conv = run_ok(d, &["conversation", "1"]);
    assert!(
        conv.contains("outbox: FAILED")
            && conv.contains("554")
            && conv.contains("5.7.1 message refused as spam"),
        "{conv}"
    );
    let log = run_ok(d, &["log"]);
    assert!(log.contains("refused for good"), "{log}");
    assert_eq!(s.received().len(), 1);
}

#[test]
fn replies_are_checked_before_anything_is_queued() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    let o = reply(d, &["1", "--from", "someone@else.example"], "x\n");
    assert!(
        stderr(&o).contains("is not a valid address of the mailbox \"support\""),
        "{}",
        stderr(&o)
    );
    let o = reply(
        d,
        &["1", "--cc", "a@b.example\r\nBcc: all@evil.example"],
        "x\n",
    );
    assert!(
        stderr(&o).contains("Cc") && stderr(&o).contains("carriage return"),
        "{}",
        stderr(&o)
    );
    let many: Vec<String> = (0..10).map(|i| format!("c{i}@example.net")).collect();
    let mut args = vec!["1".to_owned()];
    for a in &many {
        args.push("--cc".into());
        args.push(a.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = reply(d, &args, "x\n");
    assert!(
        stderr(&o).contains("11 recipients is more than the 10"),
        "{}",
        stderr(&o)
    );
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--validity",
            "support@example.org=invalid",
            "--validity",
            "help@example.org=invalid",
        ],
    );
    let o = reply(d, &["1"], "x\n");
    assert!(
        stderr(&o).contains("has no valid address"),
        "{}",
        stderr(&o)
    );
    assert!(outbox(d).is_empty(), "nothing was queued");
    assert!(s.received().is_empty());
}

/// Crash loop on the outbox: 200 replies queued, `serve` killed with SIGKILL at random
/// moments while it sends, restarted each time. Every reply reaches the relay at least
/// once; a reply sent twice (killed between the relay's 250 and our commit) is the same
/// bytes, so the same Message-ID; none is lost.
#[test]
fn outbox_crash_loop_loses_nothing_and_resends_with_the_same_message_id() {
    use crate::smtpd::Fault;
    const REPLIES: usize = 200;
    const MID_KILLS: usize = 8;
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    // Queue them while the relay is down: each fails once and waits.
    s.set_fault(Fault::Down);
    for i in 0..REPLIES {
        let o = reply(d, &["1"], &format!("Reply number {i}.\n"));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let queued = outbox(d);
    assert_eq!(queued.len(), REPLIES);
    assert!(queued.iter().all(|o| o["state"] == "queued"));
    s.set_fault(Fault::None);
    let sent_count = |d: &Path| outbox(d).iter().filter(|o| o["state"] == "sent").count();
    // First, three runs that abort right after the relay accepted a message and before
    // the outbox recorded it: each such message must be sent again, identically.
    let mut forced_resends = 0;
    for k in [3u32, 5, 7] {
        let mut serve = crate::support::Serve::start(
            d,
            &[("POSTROOM_FAILPOINT", &format!("after-outbox-send:{k}"))],
        );
        serve.wait_for("ready", Duration::from_secs(30));
        if k == 3 {
            // Through the running service: everything waiting is due now.
            let out = run_ok(d, &["outbox", "--retry-now"]);
            assert!(out.contains("the running service sends"), "{out}");
        }
        serve.wait_for(
            "failpoint after-outbox-send reached",
            Duration::from_secs(60),
        );
        let _ = serve.child.wait();
        forced_resends += 1;
    }
    let mut rng = crate::genmail::Rng::new(0x0b0c);
    let mut mid_kills = 0;
    let mut runs = 0;
    let mut window_ms = 40u64;
    loop {
        let before = sent_count(d);
        if before == REPLIES {
            break;
        }
        runs += 1;
        assert!(
            runs < 200,
            "the outbox never drained: {before} of {REPLIES} sent"
        );
        let mut serve = crate::support::Serve::start(d, &[]);
        serve.wait_for("ready", Duration::from_secs(30));
        let enough = mid_kills >= MID_KILLS;
        if enough {
            // Let it finish.
            let until = std::time::Instant::now() + Duration::from_secs(120);
            while sent_count_live(&s) < REPLIES && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            serve.stop();
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.below(window_ms) + 1));
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        let after = sent_count(d);
        if after > before && after < REPLIES {
            mid_kills += 1;
        } else if after == before {
            window_ms = (window_ms * 3 / 2).min(5_000);
        } else {
            window_ms = (window_ms / 2).max(5);
        }
    }
    assert!(
        mid_kills >= MID_KILLS,
        "only {mid_kills} kills landed mid-sending"
    );
    // Every reply arrived; duplicates are byte-identical (same Message-ID).
    let ours: std::collections::BTreeSet<String> = outbox(d)
        .iter()
        .map(|o| o["message"].as_u64().unwrap().to_string())
        .collect();
    assert_eq!(ours.len(), REPLIES);
    let mut by_id: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
    for m in s.received() {
        let text = String::from_utf8_lossy(&m.data).into_owned();
        let id = header(&text, "Message-ID").expect("Message-ID").to_owned();
        by_id.entry(id).or_default().push(m.data);
    }
    assert_eq!(by_id.len(), REPLIES, "every reply reached the relay");
    let dups: usize = by_id.values().map(|v| v.len() - 1).sum();
    assert!(
        dups >= forced_resends,
        "each abort between the relay's 250 and our commit resends that message ({dups} duplicates)"
    );
    for (id, copies) in &by_id {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{id}: a resend differs"
        );
    }
    eprintln!(
        "outbox crash loop: {runs} runs, {mid_kills} kills mid-sending, {dups} duplicates (same bytes)"
    );
}

/// Messages the relay holds, without touching the data dir (serve owns it).
fn sent_count_live(s: &Smtpd) -> usize {
    s.received().len()
}

const DPASS: &str = "dovecot-pass";

/// A data dir whose mailbox `name` (address `addr`, auto-reply on) fetches from the
/// Dovecot user `user` over IMAP and sends through the harness's open relay.
fn autoreply_instance(
    d: &crate::dovecot::Dovecot,
    s: &Smtpd,
    user: &str,
    addr: &str,
) -> crate::support::TempDir {
    let data = tmp();
    let p = data.path();
    add_smtp(p, s, "relay", "none", &["--auth", "none"]);
    run_ok(
        p,
        &[
            "mailbox",
            "add",
            "desk",
            "--address",
            addr,
            "--smtp",
            "relay",
            "--auto-reply",
            "on",
        ],
    );
    run_ok(
        p,
        &[
            "account",
            "add",
            "in",
            "--protocol",
            "imap",
            "--host",
            "127.0.0.1",
            "--port",
            &d.imap_port.to_string(),
            "--security",
            "none",
            "--user",
            user,
            "--password",
            DPASS,
            "--mailbox",
            "desk",
            "--after",
            "delete",
        ],
    );
    data
}

fn now_date() -> String {
    // RFC 5322 date of now, so the mail counts as just arrived.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let (y, m, dd) = {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rem = secs.rem_euclid(86_400);
    format!(
        "{wd}, {dd} {} {y} {:02}:{:02}:{:02} +0000",
        months[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn plain(from: &str, to: &str, subject: &str, id: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello.\r\n",
        now_date()
    )
    .into_bytes()
}

/// The RFC 3834 matrix: every kind of automatic mail gets no auto-reply; a person's
/// mail gets exactly one, with our automatic headers and an empty envelope sender, and
/// their second mail the same day gets none.
#[test]
fn auto_replies_go_to_people_only_and_once_a_day() {
    let d = crate::dovecot::Dovecot::start();
    d.add_user("desk", DPASS);
    let s = Smtpd::start();
    let data = autoreply_instance(&d, &s, "desk", "support@example.org");
    let p = data.path();
    let to = "support@example.org";
    let dsn = "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n";
    let cases: Vec<(String, String)> = vec![
        (
            "a1@x.example".into(),
            "Auto-Submitted: auto-replied\r\n".into(),
        ),
        (
            "a2@x.example".into(),
            "Auto-Submitted: auto-generated\r\n".into(),
        ),
        ("a3@x.example".into(), "Precedence: bulk\r\n".into()),
        ("a4@x.example".into(), "Precedence: junk\r\n".into()),
        ("a5@x.example".into(), "Precedence: list\r\n".into()),
        (
            "a6@x.example".into(),
            "List-Id: <news.x.example>\r\n".into(),
        ),
        (
            "a7@x.example".into(),
            "X-Auto-Response-Suppress: All\r\n".into(),
        ),
        ("a8@x.example".into(), "Return-Path: <>\r\n".into()),
        (
            "a9@x.example".into(),
            "X-Loop: postroom; other@example.net\r\n".into(),
        ),
        ("a10@x.example".into(), dsn.into()),
        ("MAILER-DAEMON@x.example".into(), String::new()),
        ("noreply@x.example".into(), String::new()),
        ("support@example.org".into(), String::new()),
    ];
    for (i, (from, extra)) in cases.iter().enumerate() {
        d.append(
            "desk",
            DPASS,
            "INBOX",
            &plain(
                from,
                to,
                &format!("auto {i}"),
                &format!("m{i}@x.example"),
                extra,
            ),
        );
    }
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &plain(
            "Zoe <zoe@customer.example>",
            to,
            "A question",
            "control1@customer.example",
            "",
        ),
    );
    run_ok(p, &["fetch", "in"]);
    run_ok(p, &["outbox", "--send"]);
    let got = s.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let got_all = s.received();
    assert_eq!(
        got_all.len(),
        1,
        "exactly one auto-reply: {:?}",
        got_all
            .iter()
            .map(|m| m.rcpt_tos.clone())
            .collect::<Vec<_>>()
    );
    let m = &got[0];
    assert_eq!(m.rcpt_tos, vec!["zoe@customer.example".to_owned()]);
    assert_eq!(m.mail_from, "", "RFC 3834: an empty envelope sender");
    let text = String::from_utf8_lossy(&m.data).into_owned();
    assert_eq!(
        header(&text, "Auto-Submitted"),
        Some("auto-replied"),
        "{text}"
    );
    assert_eq!(header(&text, "X-Auto-Response-Suppress"), Some("All"));
    assert_eq!(
        header(&text, "X-Loop"),
        Some("postroom; support@example.org")
    );
    assert_eq!(
        header(&text, "In-Reply-To"),
        Some("<control1@customer.example>")
    );
    assert!(header(&text, "Subject").unwrap().contains("[#"), "{text}");
    assert!(
        text.contains("Hello zoe") || text.contains("Hello Zoe"),
        "{text}"
    );
    // Why each was skipped is in the log.
    let log = run_ok(p, &["log", "--limit", "0"]);
    for why in [
        "auto-submitted",
        "bulk precedence",
        "mailing-list mail",
        "a delivery report",
        "system or no-reply address",
        "one of our own addresses",
        "loop marker",
    ] {
        assert!(log.contains(why), "{why} missing in the log:\n{log}");
    }
    // The same person again today: no second auto-reply.
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &plain(
            "zoe@customer.example",
            to,
            "Another question",
            "control2@customer.example",
            "",
        ),
    );
    run_ok(p, &["fetch", "in"]);
    run_ok(p, &["outbox", "--send"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.received().len(), 1);
    assert!(run_ok(p, &["log"]).contains("already got an auto-reply"));
}

/// Two Postroom installations whose mailboxes auto-reply, mail routed between them
/// through the relay into each other's Dovecot mailbox, and an autoresponder that sets
/// no headers at all: over many poll cycles at most 4 messages are exchanged.
#[test]
fn two_instances_and_a_dumb_autoresponder_do_not_loop() {
    let d = crate::dovecot::Dovecot::start();
    for u in ["alpha", "beta", "bot"] {
        d.add_user(u, DPASS);
    }
    for u in ["alpha", "beta", "bot"] {
        // The Maildir exists once the user has logged in: routing delivers into it.
        d.count(u, DPASS, "INBOX");
    }
    let s = Smtpd::start();
    s.route("alpha@example.org", &d.maildir("alpha"));
    s.route("beta@example.org", &d.maildir("beta"));
    let a = autoreply_instance(&d, &s, "alpha", "alpha@example.org");
    let b = autoreply_instance(&d, &s, "beta", "beta@example.org");
    // Beta writes to alpha (as a person would), and the bot writes to alpha too.
    d.append(
        "alpha",
        DPASS,
        "INBOX",
        &plain(
            "beta@example.org",
            "alpha@example.org",
            "Hello alpha",
            "start1@example.org",
            "",
        ),
    );
    d.append(
        "alpha",
        DPASS,
        "INBOX",
        &plain(
            "bot@example.org",
            "alpha@example.org",
            "Question from the bot",
            "start2@example.org",
            "",
        ),
    );
    let mut bot_sent = 0;
    let mut seen_by_bot = 0;
    for cycle in 0..8 {
        for inst in [a.path(), b.path()] {
            run_ok(inst, &["fetch", "in"]);
            run_ok(inst, &["outbox", "--send"]);
        }
        // The bot answers everything addressed to it, without any automatic header and
        // without threading headers, with a fresh subject.
        let received = s.received();
        for m in received.iter().skip(seen_by_bot) {
            if m.rcpt_tos.iter().any(|r| r == "bot@example.org") {
                let from = String::from_utf8_lossy(&m.data);
                let reply_to = header(&from, "From")
                    .and_then(|f| f.split('<').nth(1))
                    .map(|f| f.trim_end_matches('>').to_owned())
                    .unwrap();
                let user = reply_to.split('@').next().unwrap().to_owned();
                d.append(
                    &user,
                    DPASS,
                    "INBOX",
                    &plain(
                        "bot@example.org",
                        &reply_to,
                        "I am away this week",
                        &format!("bot{cycle}-{bot_sent}@example.org"),
                        "",
                    ),
                );
                bot_sent += 1;
            }
        }
        seen_by_bot = received.len();
    }
    let relayed = s.received().len();
    let total = relayed + bot_sent;
    eprintln!("loop test: {relayed} messages through the relay, {bot_sent} from the bot");
    assert!(
        total <= 4,
        "{total} messages exchanged: {:?}",
        s.received()
            .iter()
            .map(|m| (m.mail_from.clone(), m.rcpt_tos.clone()))
            .collect::<Vec<_>>()
    );
    assert!(relayed >= 2, "alpha answered beta and the bot once each");
}

/// Mail is dispatched to the mailbox owning the address it was sent to (envelope
/// recipients first, then To/Cc, aliases included), else to the account's mailbox; an
/// account set to `--dispatch mailbox` puts everything into its own.
#[test]
fn incoming_mail_is_dispatched_by_the_address_it_was_sent_to() {
    let d = crate::dovecot::Dovecot::start();
    d.add_user("shared", DPASS);
    d.add_user("other", DPASS);
    let data = tmp();
    let p = data.path();
    run_ok(
        p,
        &["mailbox", "add", "sales", "--address", "sales@example.org"],
    );
    run_ok(
        p,
        &[
            "mailbox",
            "add",
            "support",
            "--address",
            "support@example.org",
            "--alias",
            "help@example.org",
        ],
    );
    run_ok(p, &["mailbox", "add", "catchall"]);
    for (name, user, dispatch) in [("in", "shared", "address"), ("flat", "other", "mailbox")] {
        run_ok(
            p,
            &[
                "account",
                "add",
                name,
                "--protocol",
                "imap",
                "--host",
                "127.0.0.1",
                "--port",
                &d.imap_port.to_string(),
                "--security",
                "none",
                "--user",
                user,
                "--password",
                DPASS,
                "--mailbox",
                "catchall",
                "--dispatch",
                dispatch,
            ],
        );
    }
    let m = |id: &str, to: &str, extra: &str| {
        plain(
            "c@customer.example",
            to,
            id,
            &format!("{id}@customer.example"),
            extra,
        )
    };
    d.append(
        "shared",
        DPASS,
        "INBOX",
        &m("to-sales", "Sales <SALES@example.org>", ""),
    );
    d.append(
        "shared",
        DPASS,
        "INBOX",
        &m(
            "to-alias",
            "x@elsewhere.example",
            "Cc: help@example.org\r\n",
        ),
    );
    d.append(
        "shared",
        DPASS,
        "INBOX",
        &m(
            "envelope",
            "undisclosed-recipients:;",
            "Delivered-To: support@example.org\r\n",
        ),
    );
    d.append(
        "shared",
        DPASS,
        "INBOX",
        &m("unknown", "nobody@example.org", ""),
    );
    d.append("other", DPASS, "INBOX", &m("flat", "sales@example.org", ""));
    run_ok(p, &["fetch", "in"]);
    run_ok(p, &["fetch", "flat"]);
    let mailboxes: serde_json::Value =
        serde_json::from_str(&run_ok(p, &["mailbox", "list", "--json"])).unwrap();
    let id_of = |n: &str| {
        mailboxes
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == n)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let convs = crate::support::conversations_json(p);
    let mailbox_of = |subject: &str| {
        convs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["subject"] == subject)
            .unwrap_or_else(|| panic!("{subject} in {convs}"))["mailbox"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(mailbox_of("to-sales"), id_of("sales"));
    assert_eq!(mailbox_of("to-alias"), id_of("support"));
    assert_eq!(mailbox_of("envelope"), id_of("support"));
    assert_eq!(mailbox_of("unknown"), id_of("catchall"));
    assert_eq!(
        mailbox_of("flat"),
        id_of("catchall"),
        "--dispatch mailbox: all into one"
    );
}

/// With a Sent folder set, each sent reply is APPENDed there with \Seen, so the office's
/// mail client shows the whole exchange.
#[test]
fn a_sent_reply_is_copied_to_the_dovecot_sent_folder() {
    let d = crate::dovecot::Dovecot::start();
    d.add_user("desk", DPASS);
    let s = Smtpd::start();
    let data = autoreply_instance(&d, &s, "desk", "support@example.org");
    let p = data.path();
    run_ok(
        p,
        &[
            "mailbox",
            "edit",
            "desk",
            "--auto-reply",
            "off",
            "--sent-folder",
            "in:Sent",
        ],
    );
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &plain(
            "zoe@customer.example",
            "support@example.org",
            "Invoice",
            "inv1@customer.example",
            "",
        ),
    );
    run_ok(p, &["fetch", "in"]);
    let o = reply(p, &["1"], "Here it is.\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let sent = s.wait_for(1, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&sent[0].data).into_owned();
    let our_id = header(&text, "Message-ID")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    assert!(
        d.folders("desk", DPASS).iter().any(|f| f == "Sent"),
        "Sent created"
    );
    assert_eq!(
        d.message_ids("desk", DPASS, "Sent"),
        vec![format!("<{our_id}>")]
    );
    let flags = d.flags("desk", DPASS, "Sent");
    assert!(flags[0].iter().any(|f| f == "\\Seen"), "{flags:?}");
    assert!(run_ok(p, &["log"]).contains("copy saved in \"Sent\""));
}

/// A bounce (DSN) that comes back for a reply joins its conversation and marks the reply
/// failed, with the report's text.
#[test]
fn a_bounce_marks_the_reply_failed_on_its_conversation() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    let o = reply(d, &["1"], "This will bounce.\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let sent = s.wait_for(1, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&sent[0].data).into_owned();
    let our_id = header(&text, "Message-ID").unwrap().to_owned();
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\nTo: support@example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nUser unknown: zoe@customer.example does not exist here.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n\
         Final-Recipient: rfc822; zoe@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.org\r\nMessage-ID: {our_id}\r\n\
         Subject: Re: Printer jams [#1]\r\n\r\n--B--\r\n"
    );
    let path = crate::support::write_file(d, "dsn.eml", dsn.as_bytes());
    run_ok(d, &["import", &path.to_string_lossy()]);
    let convs = crate::support::conversations_json(d);
    assert_eq!(
        convs.as_array().unwrap().len(),
        1,
        "the bounce joined: {convs}"
    );
    let conv = run_ok(d, &["conversation", "1"]);
    assert!(
        conv.contains("outbox: FAILED") && conv.contains("bounced"),
        "{conv}"
    );
    assert!(conv.contains("User unknown"), "{conv}");
    let ob = outbox(d);
    assert_eq!(ob[0]["state"], "failed");
    // The bounce does not reopen anything or get an answer.
    assert_eq!(s.received().len(), 1);
}

/// The header-injection matrix end to end: CR, LF, NUL and encoded-word tricks in names,
/// subjects and addresses either are refused before anything is queued, or travel as
/// inert text: the relay's transcript shows exactly one MAIL, one RCPT per recipient
/// and one DATA, and the message has no header nobody asked for.
#[test]
fn header_injection_never_yields_an_extra_header_or_smtp_command() {
    let s = Smtpd::start();
    s.add_user(USER, PASS);
    let data = setup(&s, "starttls");
    let d = data.path();
    let refused: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "mailbox",
                "edit",
                "support",
                "--name",
                "Support\rBcc: x@evil.example",
            ],
            "carriage return",
        ),
        (
            vec![
                "mailbox",
                "edit",
                "support",
                "--name",
                "Support\nBcc: x@evil.example",
            ],
            "line feed",
        ),
        (
            vec![
                "mailbox",
                "edit",
                "support",
                "--alias",
                "a@example.org>\r\nRCPT TO:<x@evil.example",
            ],
            "carriage return",
        ),
        (
            vec![
                "mailbox",
                "edit",
                "support",
                "--bcc",
                "a@example.org,x@evil.example",
            ],
            "commas",
        ),
    ];
    for (args, why) in refused {
        let o = run(d, &args);
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    }
    for (flag, value) in [
        ("--to", "x@evil.example\r\nBcc: y@evil.example"),
        ("--to", "x@evil.example>\nRCPT TO:<y@evil.example"),
        ("--from", "support@example.org\r\nBcc: y@evil.example"),
    ] {
        let o = reply(d, &["1", flag, value], "x\n");
        assert!(!o.status.success(), "{flag} {value:?} accepted");
    }
    // NUL cannot travel in a command line; it can in a file.
    let sig = crate::support::write_file(d, "sig.txt", b"Support\0Team");
    let o = run(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--signature-file",
            &sig.to_string_lossy(),
        ],
    );
    assert!(stderr(&o).contains("NUL"), "{}", stderr(&o));
    assert!(
        outbox(d).is_empty(),
        "nothing was queued by the refused attempts"
    );
    // What is allowed is inert: an encoded word that decodes to CRLF + Bcc stays text.
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "support",
            "--name",
            "=?utf-8?q?Support=0D=0ABcc:_x@evil.example?=",
        ],
    );
    let o = reply(
        d,
        &["1"],
        "Hello.\r\n.\r\nRCPT TO:<x@evil.example>\r\nA line with a lone dot above.\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got = s.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["zoe@customer.example".to_owned()]);
    let text = String::from_utf8_lossy(&got[0].data).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
    assert!(
        text.contains("RCPT TO:<x@evil.example>"),
        "the body line arrived as text"
    );
    let t = s.transcript();
    let commands: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_once("C: ").map(|(_, c)| c))
        .filter(|c| {
            let u = c.to_ascii_uppercase();
            u.starts_with("MAIL") || u.starts_with("RCPT") || u.starts_with("DATA")
        })
        .collect();
    assert_eq!(
        commands,
        vec![
            "MAIL FROM:<support@example.org>",
            "RCPT TO:<zoe@customer.example>",
            "DATA"
        ],
        "transcript:\n{t}"
    );
}

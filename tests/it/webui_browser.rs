//! The web UI in a real headless Chromium (`tests/support/browser.rs`) against the real
//! `postroom serve`, over HTTPS with its self-signed certificate:
//!
//! - the team's main flow: mail fetched from a real Dovecot, the first administrator
//!   created with the setup code, a reply that reaches a real SMTP server, a note, an
//!   assignment, closing (screenshots in `target/screenshots/`);
//! - unread marks are per agent;
//! - the collision guard keeps a reply when someone else wrote in the meantime;
//! - hostile mail (an XSS corpus) runs no script and loads nothing remote until "Load
//!   images" is clicked; attachments are downloads;
//! - keyboard shortcuts.
//!
//! Every wait is on a condition (never on wall time), with generous deadlines for a
//! loaded machine.

use crate::browser::Browser;
use crate::dovecot::Dovecot;
use crate::smtpd::Smtpd;
use crate::support::{Serve, conversations_json, https_port, run_ok, tmp, write_file};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
/// How long a test waits for something the service does in the background.
const SLOW: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------
// Helpers

/// `postroom serve` on loopback with HTTPS; returns it and the HTTPS base URL.
fn serve(data: &Path) -> (Serve, String) {
    let mut s = Serve::start_with(
        data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--no-mdns",
        ],
        &[],
    );
    let ready = s.wait_for("ready (data dir", Duration::from_secs(60));
    let base = format!("https://127.0.0.1:{}", https_port(&ready));
    (s, base)
}

/// The setup code from serve's first-start line.
fn setup_code(s: &mut Serve) -> String {
    let line = s.wait_for("enter the setup code", Duration::from_secs(30));
    let rest = line.split("enter the setup code ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_owned()
}

/// `postroom user add LOGIN` with the test password.
fn add_user(data: &Path, login: &str, name: &str, role: &str, mailbox: Option<&str>) {
    let pw = write_file(
        data.parent().unwrap(),
        &format!("pw-{login}"),
        format!("{PASSWORD}\n").as_bytes(),
    );
    let pw = pw.to_string_lossy().into_owned();
    let mut args = vec![
        "user",
        "add",
        login,
        "--name",
        name,
        "--role",
        role,
        "--password-file",
        &pw,
    ];
    if let Some(m) = mailbox {
        args.extend(["--mailbox", m]);
    }
    run_ok(data, &args);
}

/// Logs in on the login page and waits for the inbox.
fn login(b: &Browser, base: &str, login: &str) {
    b.goto(&format!("{base}/login"));
    b.wait_for("#login").send_keys(login);
    b.find("#password").send_keys(PASSWORD);
    b.find("#submit").click();
    b.wait_until("the inbox after logging in", |b| on_page(b, "/inbox"));
}

/// Clicks `css`, which loads a new page, and waits until the new page has loaded (so a
/// condition that already held on the old page cannot be mistaken for the result).
fn click_and_load(b: &Browser, css: &str) {
    b.exec("window.__oldPage = true;", vec![]);
    b.find(css).click();
    b.wait_until(&format!("a new page after clicking {css}"), |b| {
        let v = b.cmd(
            "POST",
            "~/execute/sync",
            Some(&json!({"script": "return document.readyState === 'complete' && !window.__oldPage;", "args": []})),
        );
        v.is_ok_and(|v| v == json!(true))
    });
}

/// Whether the browser shows `path` (the URL's path starts with it).
fn on_page(b: &Browser, path: &str) -> bool {
    let url = b.url();
    let after_host = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("/{after_host}").starts_with(path)
}

/// The text of the first element matching `css`, "" if there is none (read in one
/// script, so a page being replaced cannot make a stale element).
fn text_of(b: &Browser, css: &str) -> String {
    let v = b.exec(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        vec![json!(css)],
    );
    v.as_str().unwrap_or_default().to_owned()
}

/// The `data-id`s of the inbox rows, in order.
fn row_ids(b: &Browser) -> Vec<String> {
    let v = b.exec(
        "return Array.from(document.querySelectorAll('tr.conv[data-id]')).map(r => r.dataset.id);",
        vec![],
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Whether inbox row `id` carries the class `class`; None when the row is not listed.
fn row_has_class(b: &Browser, id: &str, class: &str) -> Option<bool> {
    let v = b.exec(
        "var r = document.querySelector('tr.conv[data-id=\"' + arguments[0] + '\"]'); \
         return r ? r.classList.contains(arguments[1]) : null;",
        vec![json!(id), json!(class)],
    );
    v.as_bool()
}

/// Presses and releases one key on whatever has the focus (WebDriver actions).
fn press(b: &Browser, key: &str) {
    // The page's script listens from its load on.
    b.wait_until("the page loaded", |b| {
        b.exec("return document.readyState", vec![]) == json!("complete")
    });
    let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
        {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
    b.cmd("POST", "~/actions", Some(&actions))
        .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
}
const ENTER: &str = "\u{E007}";

/// Polls `cond` until it holds, panicking with `what` after [`SLOW`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + SLOW;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {SLOW:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where screenshots go: `target/screenshots/` of this worktree.
fn screenshot(b: &Browser, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    b.screenshot(&path);
    // Straight to the process's stderr: libtest's capture would hide a println.
    let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
    path
}

/// A small customer message.
fn customer_mail(tag: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer {tag} <{tag}@customer.example>\r\nTo: support@example.org\r\n\
         Subject: {subject}\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n\
         Message-ID: <{tag}@customer.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\
         \r\n{body}\r\n"
    )
    .into_bytes()
}

/// `smtp add out` for the test server's open listener, and mailbox Support using it.
fn mailbox_with_smtp(data: &Path, smtpd: &Smtpd) {
    run_ok(
        data,
        &[
            "smtp",
            "add",
            "out",
            "--host",
            "127.0.0.1",
            "--port",
            &smtpd.open_port().to_string(),
            "--security",
            "none",
            "--auth",
            "none",
        ],
    );
    run_ok(
        data,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
            "--smtp",
            "out",
        ],
    );
}

/// Imports `mails` into mailbox Support; returns the data dir's conversations as JSON.
fn import(data: &Path, dir: &Path, mails: &[(&str, Vec<u8>)]) -> Value {
    let mut args = vec!["import".to_owned()];
    for (name, bytes) in mails {
        args.push(write_file(dir, name, bytes).to_string_lossy().into_owned());
    }
    args.extend(["--mailbox".to_owned(), "Support".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(data, &args);
    conversations_json(data)
}

/// The id of the conversation whose subject contains `part`.
fn conv_with_subject(convs: &Value, part: &str) -> String {
    convs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"].as_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("no conversation {part:?} in {convs}"))["id"]
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 1. The main flow

#[test]
fn the_team_works_a_conversation_in_the_browser() {
    const IMAP_PASS: &str = "imap pass";
    let d = Dovecot::start();
    d.add_user("support", IMAP_PASS);
    let subjects = [
        "Printer on fire",
        "Invoice 2026-113 missing",
        "Cannot log in",
    ];
    d.append_many(
        "support",
        IMAP_PASS,
        "INBOX",
        subjects.iter().enumerate().map(|(i, s)| {
            customer_mail(&format!("c{i}"), s, &format!("Hello, about {s}. Thanks."))
        }),
    );
    let smtpd = Smtpd::start();
    let t = tmp();
    let data = t.path().join("data");
    mailbox_with_smtp(&data, &smtpd);
    run_ok(
        &data,
        &[
            "account",
            "add",
            "support",
            "--protocol",
            "imap",
            "--host",
            "127.0.0.1",
            "--port",
            &d.imap_port.to_string(),
            "--security",
            "none",
            "--user",
            "support",
            "--password",
            IMAP_PASS,
            "--mailbox",
            "Support",
            "--poll-secs",
            "600",
        ],
    );
    let (mut s, base) = serve(&data);
    let code = setup_code(&mut s);

    let b = Browser::start();
    // Any page leads to the setup page while there is no user.
    b.goto(&format!("{base}/inbox"));
    b.wait_until("the setup page", |b| on_page(b, "/setup"));
    b.wait_for("#code").send_keys(&code);
    b.find("#login").send_keys("anna");
    b.find("#name").send_keys("Anna Admin");
    b.find("#email").send_keys("anna@example.org");
    b.find("#password").send_keys(PASSWORD);
    b.find("#password2").send_keys(PASSWORD);
    b.find("#create").click();
    b.wait_until("the inbox after the setup", |b| on_page(b, "/inbox"));
    assert!(b.url().starts_with("https://"), "{}", b.url());
    let session = b.cookies().into_iter().find(|c| c.http_only && c.secure);
    assert!(session.is_some(), "a Secure HttpOnly session cookie");

    // The fetched mail shows up (the page reloads itself when mail arrives; reloading
    // here too keeps the test independent of that).
    eventually("the three fetched messages in the inbox", || {
        if row_ids(&b).len() >= subjects.len() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
        b.refresh();
        false
    });
    let listed = text_of(&b, "#convs");
    for subject in subjects {
        assert!(listed.contains(subject), "{subject} in {listed}");
    }
    screenshot(&b, "inbox.png");
    // The header's `.who` style once turned the inbox's `td.who` into a flex box.
    assert_eq!(
        b.exec(
            "return getComputedStyle(document.querySelector('td.who')).display",
            vec![]
        ),
        json!("table-cell")
    );

    // Open one conversation from the list.
    let target = b
        .find_all("tr.conv a.subject")
        .into_iter()
        .find(|a| a.text() == "Printer on fire")
        .expect("the row of the printer");
    target.click();
    b.wait_until("the conversation page", |b| {
        text_of(b, "#subject") == "Printer on fire"
    });
    let conv_url = b.url();
    let conv_id = conv_url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(b.find_all("article.msg.in").len(), 1);
    assert!(text_of(&b, "article.msg.in").contains("Hello, about Printer on fire."));
    assert_eq!(
        b.find("#reply-to").prop("value"),
        json!("c0@customer.example")
    );

    // Reply: it reaches the SMTP server.
    let reply = "We are sending a technician this afternoon.";
    b.find("#reply-body").send_keys(reply);
    click_and_load(&b, "#send");
    b.wait_for("article.msg.out");
    assert!(
        b.try_find("#notice").is_none(),
        "{}",
        text_of(&b, "#notice")
    );
    let got = smtpd.wait_for(1, SLOW);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.rcpt_tos, vec!["c0@customer.example".to_owned()]);
    assert_eq!(m.mail_from, "support@example.org");
    let text = String::from_utf8_lossy(&m.data).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.lines().any(|l| l == "To: c0@customer.example"
            || l.starts_with("To: ") && l.contains("<c0@customer.example>")),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.starts_with("Subject: Re: Printer on fire")),
        "{head}"
    );
    assert!(body.contains(reply), "{body}");
    screenshot(&b, "conversation.png");

    // A note: shown as a note, never mailed.
    b.find("#tab-note").click();
    let note = "Technician booked for 15:00.";
    b.wait_for("#note-body").send_keys(note);
    click_and_load(&b, "#add-note");
    b.wait_until("the note", |b| {
        text_of(b, "article.msg.note").contains(note)
    });

    // The reply assigned it to its author; unassigned, then assigned to me, then closed.
    assert!(text_of(&b, ".conv-head .meta").contains("Assigned to Anna Admin"));
    b.exec(
        "document.getElementById('assign-to').value = 'none';",
        vec![],
    );
    click_and_load(&b, "#assign");
    assert!(text_of(&b, ".conv-head .meta").contains("Unassigned"));
    click_and_load(&b, "#assign-me");
    b.wait_until("assigned to Anna", |b| {
        text_of(b, ".conv-head .meta").contains("Assigned to Anna Admin")
    });
    click_and_load(&b, "#close");
    b.wait_until("the status Closed", |b| text_of(b, "#status") == "Closed");
    screenshot(&b, "conversation-closed.png");

    b.goto(&format!("{base}/inbox?folder=closed"));
    b.wait_for("#folder-closed");
    assert_eq!(row_ids(&b), vec![conv_id.clone()], "only it is closed");
    b.find("#folder-unassigned").click();
    b.wait_until("the unassigned folder", |b| b.url().contains("unassigned"));
    let open = row_ids(&b);
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(!open.contains(&conv_id));
    assert_eq!(smtpd.received().len(), 1, "the note was not mailed");
    drop(b);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 2. Unread marks

#[test]
fn unread_is_per_agent() {
    let t = tmp();
    let data = t.path().join("data");
    run_ok(
        &data,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
        ],
    );
    let convs = import(
        &data,
        t.path(),
        &[
            ("a.eml", customer_mail("u1", "First question", "One.")),
            ("b.eml", customer_mail("u2", "Second question", "Two.")),
        ],
    );
    let first = conv_with_subject(&convs, "First");
    let second = conv_with_subject(&convs, "Second");
    add_user(&data, "alice", "Alice", "agent", Some("Support"));
    add_user(&data, "bob", "Bob", "agent", Some("Support"));
    let (s, base) = serve(&data);

    let a = Browser::start();
    let bb = Browser::start();
    login(&a, &base, "alice");
    login(&bb, &base, "bob");
    for (who, b) in [("alice", &a), ("bob", &bb)] {
        for id in [&first, &second] {
            assert_eq!(
                row_has_class(b, id, "unread"),
                Some(true),
                "#{id} unread for {who}"
            );
        }
    }

    // Alice reads the first one.
    a.goto(&format!("{base}/c/{first}"));
    a.wait_until("the first conversation", |b| {
        text_of(b, "#subject") == "First question"
    });
    a.goto(&format!("{base}/inbox"));
    a.wait_for("tr.conv");
    assert_eq!(
        row_has_class(&a, &first, "unread"),
        Some(false),
        "read by alice"
    );
    assert_eq!(row_has_class(&a, &second, "unread"), Some(true));
    // Bob has read nothing.
    bb.refresh();
    bb.wait_for("tr.conv");
    assert_eq!(
        row_has_class(&bb, &first, "unread"),
        Some(true),
        "not by bob"
    );
    assert_eq!(row_has_class(&bb, &second, "unread"), Some(true));

    // Bob reads the second one: Alice's marks stay as they were.
    bb.goto(&format!("{base}/c/{second}"));
    bb.wait_until("the second conversation", |b| {
        text_of(b, "#subject") == "Second question"
    });
    bb.goto(&format!("{base}/inbox"));
    bb.wait_for("tr.conv");
    assert_eq!(row_has_class(&bb, &first, "unread"), Some(true));
    assert_eq!(row_has_class(&bb, &second, "unread"), Some(false));
    a.refresh();
    a.wait_for("tr.conv");
    assert_eq!(row_has_class(&a, &first, "unread"), Some(false));
    assert_eq!(row_has_class(&a, &second, "unread"), Some(true));

    // "Mark as unread" brings it back for Alice only.
    a.goto(&format!("{base}/c/{first}"));
    a.wait_for("#mark-unread").click();
    a.wait_until("back in the inbox", |b| on_page(b, "/inbox"));
    a.wait_for("tr.conv");
    assert_eq!(row_has_class(&a, &first, "unread"), Some(true));
    drop((a, bb));
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 3. The collision guard

#[test]
fn the_collision_guard_stops_a_reply_when_someone_else_wrote() {
    let smtpd = Smtpd::start();
    let t = tmp();
    let data = t.path().join("data");
    mailbox_with_smtp(&data, &smtpd);
    let convs = import(
        &data,
        t.path(),
        &[(
            "a.eml",
            customer_mail("k1", "Broken keyboard", "Keys stick."),
        )],
    );
    let id = conv_with_subject(&convs, "Broken keyboard");
    add_user(&data, "alice", "Alice", "agent", Some("Support"));
    let (s, base) = serve(&data);

    let b = Browser::start();
    login(&b, &base, "alice");
    b.goto(&format!("{base}/c/{id}"));
    b.wait_until("the conversation", |b| {
        text_of(b, "#subject") == "Broken keyboard"
    });
    let mine = "Please try another USB port.";
    b.find("#reply-body").send_keys(mine);

    // Meanwhile Bob writes a note (the CLI forwards it to the running service).
    let bobs = "I already sent a new keyboard, do not reply yet.";
    run_ok(&data, &["note", &id, "--body", bobs, "--agent", "Bob"]);

    click_and_load(&b, "#send");
    b.wait_for("#notice");
    let notice = text_of(&b, "#notice");
    assert!(
        notice.contains("Bob") && notice.contains("NOT sent"),
        "{notice}"
    );
    assert_eq!(b.find("#reply-body").prop("value"), json!(mine), "kept");
    assert!(text_of(&b, "article.msg.note").contains(bobs), "shown");
    assert!(b.try_find("article.msg.out").is_none(), "no reply stored");

    // Sent again, now knowing about the note: it goes out.
    click_and_load(&b, "#send");
    b.wait_for("article.msg.out");
    assert!(
        b.try_find("#notice").is_none(),
        "{}",
        text_of(&b, "#notice")
    );
    let got = smtpd.wait_for(1, SLOW);
    assert!(String::from_utf8_lossy(&got[0].data).contains(mine));
    // Only the second attempt produced mail: once it arrived, the first would have too.
    assert_eq!(b.find_all("article.msg.out").len(), 1);
    assert_eq!(smtpd.received().len(), 1);
    drop(b);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 4. Hostile mail

/// A local HTTP server that records every connection and request line (the "tracker").
struct Tracker {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Tracker {
    fn start() -> Tracker {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let h = h.clone();
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut first = String::new();
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let _ = r.read_line(&mut first);
                    // Recorded whatever it is: even a TLS hello counts as a leak.
                    h.lock().unwrap().push(first.trim_end().to_owned());
                    let mut line = String::new();
                    while r.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                        line.clear();
                    }
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 43\r\n\
                          Connection: close\r\n\r\nGIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\
                          \x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\
                          \x00\x00\x02\x02D\x01\x00;",
                    );
                });
            }
        });
        Tracker { port, hits }
    }
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

/// The corpus: each payload would set `__xss`, fetch `/js-N` from the tracker and open an
/// alert if it ran; `/leak-*` must never be fetched; `/pixel.png`, `/bg.png` and `/img-*`
/// are remote images, allowed only after "Load images".
fn hostile_corpus(port: u16) -> Vec<(&'static str, Vec<u8>)> {
    let t = format!("http://127.0.0.1:{port}");
    let js = |n: u32| {
        format!("fetch('{t}/js-{n}');window.__xss=1;try{{top.__xss=1}}catch(e){{}};alert({n})")
    };
    let head = |n: u32, from_name: &str, subject: &str| {
        format!(
            "From: \"{from_name}\" <evil{n}@attacker.example>\r\nTo: support@example.org\r\n\
             Subject: {subject}\r\nDate: Mon, 2 Nov 2026 10:0{n}:00 +0000\r\n\
             Message-ID: <evil{n}@attacker.example>\r\nMIME-Version: 1.0\r\n"
        )
    };
    let mut out = Vec::new();

    // 1: payloads in the headers and a plain text body.
    let m = format!(
        "{}Content-Type: text/plain; charset=utf-8\r\n\r\n\
         <script>{}</script>\r\n\"><script>{}</script>\r\n<img src=x onerror=\"{}\">\r\n\
         javascript:{}\r\n<a href=\"javascript:{}\">click</a>\r\n{t}/leak-textlink\r\n",
        head(
            1,
            &format!("<img src=x onerror={}>", js(1)),
            &format!("\"><script>{}</script> plain", js(2))
        ),
        js(3),
        js(4),
        js(5),
        js(6),
        js(7),
    );
    out.push(("evil1.eml", m.into_bytes()));

    // 2: an HTML body with everything, and remote images.
    let html = format!(
        r#"<html><head><meta http-equiv="refresh" content="0;url={t}/leak-meta">
<base href="{t}/leak-base/">
<link rel="stylesheet" href="{t}/leak-css">
<style>@import url({t}/leak-import); body {{ background: url(javascript:{j10}) }} .x {{ width: expression({j11}) }}</style>
<script>{j12}</script>
<script src="{t}/leak-script.js"></script>
</head>
<body onload="{j13}">
<p id="hello">Hostile HTML for the tests.</p>
<img src=x onerror="{j14}">
<img id="pixel" src="{t}/pixel.png" width="1" height="1">
<div style="background:url({t}/bg.png);width:50px;height:50px">bg</div>
<div style="width:expression({j15});background-image:url(javascript:{j16})">css</div>
<svg onload="{j17}"><script>{j18}</script><a xlink:href="javascript:{j19}"><text y="10">svg</text></a></svg>
<svg><animate onbegin="{j20}" attributeName="x" dur="1s"/></svg>
<a href="javascript:{j21}" id="jslink">js link</a>
<a href="  JaVaScRiPt:{j22}">js link 2</a>
<a href="jav&#x09;ascript:{j23}">js link 3</a>
<iframe src="javascript:{j24}"></iframe>
<iframe src="{t}/leak-iframe"></iframe>
<iframe srcdoc="<script>{j25}</script>"></iframe>
<object data="{t}/leak-object"></object>
<embed src="{t}/leak-embed">
<form action="{t}/leak-form"><input autofocus onfocus="{j26}"><button>go</button></form>
<details open ontoggle="{j27}">d</details>
<video poster="{t}/img-poster"><source src="{t}/leak-video"></video>
<audio src="{t}/leak-audio" autoplay></audio>
<scr<script>ipt>{j28}</scr</script>ipt>
"><script>{j29}</script>
<math><mtext><table><mglyph><style><img src=x onerror="{j30}"></style></mglyph></table></mtext></math>
<noscript><p title="</noscript><img src=x onerror={j31}>"></noscript>
<table background="{t}/img-tablebg"><tr><td>t</td></tr></table>
<img src="x" onerror="{j32}"
"#,
        j10 = js(10),
        j11 = js(11),
        j12 = js(12),
        j13 = js(13),
        j14 = js(14),
        j15 = js(15),
        j16 = js(16),
        j17 = js(17),
        j18 = js(18),
        j19 = js(19),
        j20 = js(20),
        j21 = js(21),
        j22 = js(22),
        j23 = js(23),
        j24 = js(24),
        j25 = js(25),
        j26 = js(26),
        j27 = js(27),
        j28 = js(28),
        j29 = js(29),
        j30 = js(30),
        j31 = js(31),
        j32 = js(32),
    );
    let m = format!(
        "{}Content-Type: text/html; charset=utf-8\r\n\r\n{html}",
        head(
            2,
            "<svg onload=alert(1)>",
            "Tracking pixel and <script>alert(1)</script>"
        ),
    );
    out.push(("evil2.eml", m.into_bytes()));

    // 3: attachments with hostile names and contents, one of them "inline".
    let enc: String = format!("\"><script>{}</script>.svg", js(40))
        .bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b".-_".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" onload="{}"><script>{}</script><image href="{t}/leak-svgimg"/></svg>"#,
        js(41),
        js(42)
    );
    let m = format!(
        "{}Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>See the attachments.</p><a href=\"data:text/html,<script>{}</script>\">data link</a>\r\n\
         --b1\r\nContent-Type: text/html; name=\"page.html\"\r\n\
         Content-Disposition: attachment; filename=\"<img src=x onerror={}>.html\"\r\n\r\n\
         <script>{}</script>\r\n\
         --b1\r\nContent-Type: image/svg+xml\r\n\
         Content-Disposition: inline; filename*=utf-8''{enc}\r\n\r\n{svg}\r\n\
         --b1\r\nContent-Type: image/svg+xml\r\n\
         Content-Disposition: inline; filename=\"evil.svg\"\r\n\r\n{svg}\r\n\
         --b1--\r\n",
        head(3, "Attachment sender", "Attachments <b>bold</b>"),
        js(43),
        js(44),
        js(45),
    );
    out.push(("evil3.eml", m.into_bytes()));

    // 4: broken markup and tricks against the CSS and URL filters.
    let html = format!(
        r#"<p>broken<style></style><script>{j50}</script>
<a href="javascript&colon;{j51}">colon</a>
<div style="background:u\72l({t}/leak-escaped-url)">escaped</div>
<div style="behavior:url({t}/leak-htc);-moz-binding:url({t}/leak-xbl)">binding</div>
<p style="background-image: url('{t}/img-quoted')">quoted</p>
<svg><use href="{t}/leak-use#x"/></svg>
<img src="{t}/img-broken" onerror="{j52}
<p>unterminated <b><i>"#,
        j50 = js(50),
        j51 = js(51),
        j52 = js(52),
    );
    let m = format!(
        "{}Content-Type: text/html; charset=utf-8\r\n\r\n{html}",
        head(
            4,
            "\\\"><img src=x onerror=alert(4)>",
            "<iframe src=javascript:alert(4)> broken"
        ),
    );
    out.push(("evil4.eml", m.into_bytes()));
    out
}

#[test]
fn hostile_mail_runs_no_script_and_loads_nothing_remote_before_load_images() {
    let tracker = Tracker::start();
    let t = tmp();
    let data = t.path().join("data");
    run_ok(
        &data,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
        ],
    );
    let convs = import(&data, t.path(), &hostile_corpus(tracker.port));
    let ids: Vec<String> = convs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 4, "{convs}");
    add_user(&data, "admin", "Admin", "admin", None);
    let (s, base) = serve(&data);

    let b = Browser::start();
    let no_script_ran = |b: &Browser, where_: &str| {
        assert_eq!(b.alert_text(), None, "an alert opened at {where_}");
        assert_eq!(
            b.exec("return typeof window.__xss", vec![]),
            json!("undefined"),
            "script ran at {where_}"
        );
    };
    login(&b, &base, "admin");
    b.wait_for("tr.conv");
    assert_eq!(row_ids(&b).len(), 4);
    // The payloads are shown as text.
    assert!(text_of(&b, "#convs").contains("\"><script>"));
    no_script_ran(&b, "the inbox");

    let mut frames_seen = 0;
    for id in &ids {
        b.goto(&format!("{base}/c/{id}"));
        b.wait_for("#subject");
        no_script_ran(&b, &format!("#{id}"));
        let n = b.find_all("iframe.body-frame").len();
        for i in 0..n {
            let frame = &b.find_all("iframe.body-frame")[i];
            assert_eq!(
                frame.attr("sandbox").as_deref(),
                Some("allow-popups allow-popups-to-escape-sandbox")
            );
            b.switch_to_frame(frame);
            b.wait_until("the frame loaded", |b| {
                b.exec("return document.readyState", vec![]) == json!("complete")
            });
            no_script_ran(&b, &format!("#{id} frame {i}"));
            frames_seen += 1;
            b.switch_to_parent();
        }
        no_script_ran(&b, &format!("#{id} after its frames"));
        // Attachments are download links, never shown inline.
        for a in b.find_all("ul.parts a") {
            assert!(a.attr("download").is_some(), "a download link");
            assert!(a.attr("href").unwrap().contains("/part/"));
        }
        let inline = b.exec(
            "return Array.from(document.querySelectorAll('img,iframe,object,embed,video,audio'))\
             .map(e => e.src || e.data || '').filter(s => s.includes('/part/')).length",
            vec![],
        );
        assert_eq!(inline, json!(0), "#{id}: an attachment shown inline");
    }
    assert_eq!(frames_seen, 3, "three HTML bodies were opened");

    // The attachments of #3: names shown as text, served as downloads.
    let att = conv_with_subject(&convs, "Attachments");
    b.goto(&format!("{base}/c/{att}"));
    let links = b.find_all("ul.parts a");
    assert_eq!(links.len(), 3, "three attachments");
    let names: Vec<String> = links.iter().map(|a| a.text()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("<img src=x onerror=")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("\"><script>")),
        "{names:?}"
    );
    for a in &links {
        let href = a.attr("href").unwrap();
        let v = b.exec(
            "return fetch(arguments[0], {credentials: 'same-origin'}).then(r => \
             [r.status, r.headers.get('content-type'), r.headers.get('content-disposition')]);",
            vec![json!(href)],
        );
        assert_eq!(v[0], json!(200), "{href}: {v}");
        assert_eq!(v[1], json!("application/octet-stream"), "{href}: {v}");
        assert!(
            v[2].as_str().unwrap().starts_with("attachment;"),
            "{href}: {v}"
        );
    }
    no_script_ran(&b, "the attachments page");

    // Everything was loaded: nothing at all reached the tracker.
    assert_eq!(
        tracker.hits(),
        Vec::<String>::new(),
        "remote content was fetched"
    );

    // "Load images" on the hostile HTML body: the images come, scripts still do not run.
    let pix = conv_with_subject(&convs, "Tracking pixel");
    b.goto(&format!("{base}/c/{pix}"));
    b.wait_for("a.load-images").click();
    eventually("the pixel after Load images", || {
        tracker
            .hits()
            .iter()
            .any(|h| h.starts_with("GET /pixel.png "))
    });
    let frame = b.find("iframe.body-frame");
    b.switch_to_frame(&frame);
    b.wait_until("the frame with images", |b| {
        b.exec("return document.readyState + ' ' + location.search", vec![])
            == json!("complete ?images=1")
    });
    no_script_ran(&b, "the frame with images");
    assert!(text_of(&b, "#hello").contains("Hostile HTML"));
    b.switch_to_parent();
    no_script_ran(&b, "the page after Load images");
    let hits = tracker.hits();
    for h in &hits {
        let path = h.split_whitespace().nth(1).unwrap_or(h);
        assert!(
            path.starts_with("/pixel.png")
                || path.starts_with("/bg.png")
                || path.starts_with("/img-"),
            "only images after Load images: {hits:?}"
        );
    }
    drop(b);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 5. Keyboard shortcuts

#[test]
fn keyboard_shortcuts_move_through_the_inbox() {
    let t = tmp();
    let data = t.path().join("data");
    run_ok(
        &data,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
        ],
    );
    import(
        &data,
        t.path(),
        &[
            ("a.eml", customer_mail("s1", "Alpha", "a")),
            ("b.eml", customer_mail("s2", "Bravo", "b")),
            ("c.eml", customer_mail("s3", "Charlie", "c")),
        ],
    );
    add_user(&data, "kim", "Kim Keys", "agent", Some("Support"));
    let (s, base) = serve(&data);
    let b = Browser::start();
    login(&b, &base, "kim");
    b.wait_for("tr.conv");
    let rows = row_ids(&b);
    assert_eq!(rows.len(), 3);
    let selected = |b: &Browser| {
        b.exec(
            "return Array.from(document.querySelectorAll('tr.conv.sel')).map(r => r.dataset.id);",
            vec![],
        )
    };
    assert_eq!(selected(&b), json!([]));
    press(&b, "j");
    assert_eq!(selected(&b), json!([rows[0]]));
    press(&b, "j");
    press(&b, "j");
    assert_eq!(selected(&b), json!([rows[2]]));
    press(&b, "j");
    assert_eq!(selected(&b), json!([rows[2]]), "stays on the last");
    press(&b, "k");
    assert_eq!(selected(&b), json!([rows[1]]));

    press(&b, ENTER);
    let id = rows[1].clone();
    b.wait_until("the selected conversation", |b| {
        b.url().ends_with(&format!("/c/{id}"))
    });
    b.wait_for("#subject");
    press(&b, "a");
    b.wait_until("assigned to Kim", |b| {
        text_of(b, ".conv-head .meta").contains("Assigned to Kim Keys")
    });
    press(&b, "c");
    b.wait_until("closed", |b| text_of(b, "#status") == "Closed");
    press(&b, "u");
    b.wait_until("back in the inbox", |b| on_page(b, "/inbox"));
    b.wait_for("tr.conv");
    let left = row_ids(&b);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        !left.contains(&id),
        "assigned and closed: gone from unassigned"
    );
    drop(b);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 6. A phone, and a file from the browser

#[test]
fn on_a_phone_screen_the_pages_fit_and_a_reply_carries_an_uploaded_file() {
    let smtpd = Smtpd::start();
    let t = tmp();
    let data = t.path().join("data");
    mailbox_with_smtp(&data, &smtpd);
    let convs = import(
        &data,
        t.path(),
        &[(
            "p.eml",
            customer_mail(
                "p1",
                "A rather long subject line about the invoice for the new office chairs",
                "Could you send the invoice again? The first one got lost somewhere.",
            ),
        )],
    );
    let id = conv_with_subject(&convs, "office chairs");
    add_user(&data, "alice", "Alice", "agent", Some("Support"));
    let (s, base) = serve(&data);
    let b = Browser::start();
    // A phone: 390 CSS pixels wide.
    b.cmd(
        "POST",
        "~/window/rect",
        Some(&json!({"width": 390, "height": 844})),
    )
    .unwrap();
    login(&b, &base, "alice");
    let width = b.exec("return window.innerWidth;", vec![]);
    assert!(
        width.as_u64().is_some_and(|w| w <= 400),
        "the window is phone-sized: {width}"
    );
    let fits = |b: &Browser| {
        b.exec(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        ) == json!(true)
    };
    b.wait_for("tr.conv");
    assert!(fits(&b), "the inbox needs no sideways scrolling");
    let inbox_shot = screenshot(&b, "phone-inbox");
    b.goto(&format!("{base}/c/{id}"));
    b.wait_for("#reply-body");
    assert!(fits(&b), "the conversation needs no sideways scrolling");
    screenshot(&b, "phone-conversation");
    assert!(inbox_shot.exists());

    // A file chosen in the browser goes out with the reply.
    let file = write_file(
        t.path(),
        "invoice-2026-11.txt",
        b"Invoice 2026-11: 1,980 EUR\n",
    );
    b.find("#reply-body").send_keys("Here it is again.");
    b.find("#reply-form input[type=file]")
        .send_keys(&file.to_string_lossy());
    click_and_load(&b, "#send");
    b.wait_for("article.msg.out");
    let got = smtpd.wait_for(1, SLOW);
    let text = String::from_utf8_lossy(&got[0].data).into_owned();
    assert!(text.contains("Here it is again."), "{text}");
    assert!(
        text.contains("invoice-2026-11.txt"),
        "the file went along: {text}"
    );
    // And the sent message lists it as an attachment on the page.
    assert!(
        text_of(&b, "article.msg.out .parts").contains("invoice-2026-11.txt"),
        "{}",
        text_of(&b, "article.msg.out")
    );
    drop(b);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 7. Drafts

#[test]
fn a_draft_saves_itself_and_survives_a_closed_browser() {
    let t = tmp();
    let data = t.path().join("data");
    let convs = import(
        &data,
        t.path(),
        &[(
            "d.eml",
            customer_mail("d1", "Lost password", "I cannot log in."),
        )],
    );
    let id = conv_with_subject(&convs, "Lost password");
    add_user(&data, "alice", "Alice", "admin", None);
    let (s, base) = serve(&data);
    let typed = "Dear customer, I have reset your password; the new one is on its way";
    {
        let b = Browser::start();
        login(&b, &base, "alice");
        b.goto(&format!("{base}/c/{id}"));
        b.wait_for("#reply-body").send_keys(typed);
        // Saved by itself a moment after typing stops: the page says so.
        b.wait_until("the draft saved", |b| {
            !text_of(b, "#reply-form .saved").is_empty()
        });
        // The browser is closed without sending.
    }
    let b = Browser::start();
    login(&b, &base, "alice");
    let drafts = text_of(&b, "#folder-drafts");
    assert!(
        drafts.contains('1'),
        "the Drafts folder counts it: {drafts}"
    );
    click_and_load(&b, "#folder-drafts");
    assert_eq!(row_ids(&b), vec![id.clone()], "listed under Drafts");
    b.goto(&format!("{base}/c/{id}"));
    b.wait_for("#reply-body");
    assert_eq!(
        b.find("#reply-body").prop("value"),
        json!(typed),
        "the text is back"
    );
    drop(b);
    s.stop();
}

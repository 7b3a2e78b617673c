//! The communication log in the browser (`/admin` and `/admin/log`) against a real
//! `postroom serve` fetching from a real Dovecot: a failed login is an error entry with
//! the server's exact reply, on the dashboard and in the detail view; a priority filter
//! shows that priority and everything above it, never below; the account filter and the
//! keyword narrow the list.

use crate::dovecot::Dovecot;
use crate::support::{Serve, run_ok, tmp, web_port, write_file};
use crate::webui::{PW, login};
use std::time::{Duration, Instant};

/// The `class="lvl-..."` of every row of the log list.
fn levels_listed(page: &str) -> Vec<String> {
    page.split("<tr class=\"lvl-")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn a_failed_login_is_an_error_entry_and_priority_filters_show_that_and_above() {
    let d = Dovecot::start();
    d.add_user("support", "the right password");
    let t = tmp();
    let data = t.path();
    run_ok(
        data,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
        ],
    );
    run_ok(
        data,
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
            "a wrong password",
            "--mailbox",
            "Support",
        ],
    );
    // Some routine entries too: an imported message makes a conversation (info).
    let mail = write_file(
        data,
        "m.eml",
        b"From: Anna <anna@customer.example>\r\nTo: support@example.org\r\n\
          Subject: Printer jammed\r\nMessage-ID: <p1@customer.example>\r\n\r\nHelp.\r\n",
    );
    run_ok(
        data,
        &["import", mail.to_str().unwrap(), "--mailbox", "Support"],
    );
    let pw = write_file(data, "pw", format!("{PW}\n").as_bytes());
    run_ok(
        data,
        &[
            "user",
            "add",
            "boss",
            "--role",
            "admin",
            "--name",
            "Boss",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    let mut serve = Serve::start_with(data, &["--no-https", "--no-mdns"], &[]);
    let port = web_port(&serve.wait_for("ready", Duration::from_secs(60)));
    let boss = login(port, "boss", PW);

    // The fetcher fails to log in; the error entry shows up with Dovecot's reply.
    let reply = "NO [AUTHENTICATIONFAILED] Authentication failed.";
    let deadline = Instant::now() + Duration::from_secs(60);
    let errors = loop {
        let (status, _, page) = boss.get("/admin/log?level=error");
        assert_eq!(status, 200, "{page}");
        if page.contains(reply) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "no error entry with {reply:?}:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(errors.contains("imap:support"), "{errors}");
    let lv = levels_listed(&errors);
    assert!(!lv.is_empty() && lv.iter().all(|l| l == "error"), "{lv:?}");

    // The detail view of that entry names the account and the reply; never the password.
    let seq = errors
        .split("<tr class=\"lvl-error\" data-seq=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, entry) = boss.get(&format!("/admin/log/{seq}"));
    assert_eq!(status, 200);
    assert!(
        entry.contains(reply) && entry.contains("imap:support"),
        "{entry}"
    );
    assert!(entry.contains("id=\"entry-level\">Error"), "{entry}");
    assert!(!entry.contains("a wrong password"));

    // The dashboard shows the account failing with its last error.
    let (_, _, dash) = boss.get("/admin");
    let row = dash
        .split("id=\"acct-support\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        row.contains("failing") || dash.contains("class=\"failing\""),
        "{dash}"
    );
    assert!(
        row.contains(reply),
        "the last error on the dashboard: {row}"
    );
    assert!(
        dash.contains("id=\"in-day\">1<"),
        "one message in today: {dash}"
    );

    // No filter: routine entries are there.
    let (_, _, all) = boss.get("/admin/log");
    let lv = levels_listed(&all);
    assert!(
        lv.iter().any(|l| l == "info") && lv.iter().any(|l| l == "error"),
        "{lv:?}"
    );
    assert!(all.contains("new conversation #"), "{all}");
    // "Warning and above": errors stay, info goes.
    let (_, _, warn) = boss.get("/admin/log?level=warn");
    let lv = levels_listed(&warn);
    assert!(lv.iter().any(|l| l == "error"), "{lv:?}");
    assert!(lv.iter().all(|l| l == "warn" || l == "error"), "{lv:?}");
    // "Info and above" is everything.
    let (_, _, info) = boss.get("/admin/log?level=info");
    assert!(levels_listed(&info).len() >= levels_listed(&all).len());
    // The account filter and the keyword narrow the list.
    let (_, _, pipeline) = boss.get("/admin/log?account=pipeline");
    assert!(
        pipeline.contains("new conversation #") && !pipeline.contains(reply),
        "{pipeline}"
    );
    let (_, _, imap) = boss.get("/admin/log?account=imap");
    assert!(imap.contains(reply) && !imap.contains("new conversation #"));
    let (_, _, kw) = boss.get("/admin/log?q=printer");
    assert!(kw.contains("Printer jammed") && !kw.contains(reply));
    // A time window before anything happened is empty.
    let (_, _, old) = boss.get("/admin/log?from=2000-01-01&to=2000-01-02");
    assert!(levels_listed(&old).is_empty(), "{old}");
    // The log is for admins only.
    let (status, _, _) =
        crate::support::request(port, "GET", &format!("/admin/log/{seq}"), &[], b"");
    assert_ne!(status, 200);
    serve.stop();
}

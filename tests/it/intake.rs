//! Mail intake against a real Dovecot on 127.0.0.1 (`tests/support/dovecot.rs`): every
//! transport (IMAP plain, STARTTLS, IMAPS; POP3 plain, STLS, POP3S) imports a generated
//! mailbox completely in each after-fetch mode, exactly once, without touching `\Seen`;
//! `\Deleted` mail of other clients survives; `\Seen` mail is imported; `--only-new`
//! leaves old mail alone; a UIDVALIDITY reset imports nothing twice; oversize mail stays
//! and is reported (and is fetched once the limit is raised); long lines and dots
//! survive; connection failures name the account, the server's reply and what to do;
//! IDLE delivers without waiting for the poll; a connection cut mid-FETCH, a crash right
//! after a commit (failpoint) and 20 `kill -9` during intake lose and duplicate nothing.
//!
//! Everything runs the real `postroom` binary; results are read through the library's
//! `Reader` once no process holds the data dir. The crash loop goes through a small
//! throttling proxy so that an intake lasts long enough for kills to land in it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::dovecot::Dovecot;
use crate::genmail::{GenOptions, Generator, Mail, Truth};
use crate::support::{Serve, cmd, run, run_ok, tmp};
use postroom::app::STORE_FILE;
use postroom::model::Status;
use postroom::store::{Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// A password with a space and a quote: LOGIN must quote it, POP3 PASS take it whole.
const PASS: &str = "s3cret \"pw";

/// `count` generated messages (the full mix, small attachments), deterministic per seed.
fn mails(count: usize, seed: u64) -> Vec<Mail> {
    Generator::new(GenOptions {
        count,
        seed,
        attach_min: 2_000,
        attach_max: 20_000,
        ..GenOptions::default()
    })
    .collect()
}

fn ids_of(mails: &[Mail]) -> BTreeSet<String> {
    mails.iter().map(|m| m.message_id.clone()).collect()
}

/// A small hand-made message.
fn small(tag: &str) -> Vec<u8> {
    format!(
        "From: Customer <c-{tag}@customer.example>\r\nTo: support@helpdesk.example\r\n\
         Subject: intake {tag}\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n\
         Message-ID: <{tag}@customer.example>\r\n\r\nPlease help with {tag}.\r\n"
    )
    .into_bytes()
}

/// A message of about `size` bytes (a long text body in 76-character lines).
fn big(tag: &str, size: usize) -> Vec<u8> {
    let mut m = small(tag);
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n";
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

fn hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a test reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    ImapPlain,
    ImapStartTls,
    Imaps,
    Pop3Plain,
    Pop3Stls,
    Pop3s,
}

impl Transport {
    fn is_imap(self) -> bool {
        matches!(
            self,
            Transport::ImapPlain | Transport::ImapStartTls | Transport::Imaps
        )
    }

    /// `account add` flags for this transport (pinned certificate where TLS is used).
    fn flags(self, d: &Dovecot) -> Vec<String> {
        let (proto, port, security) = match self {
            Transport::ImapPlain => ("imap", d.imap_port, "none"),
            Transport::ImapStartTls => ("imap", d.imap_port, "starttls"),
            Transport::Imaps => ("imap", d.imaps_port, "tls"),
            Transport::Pop3Plain => ("pop3", d.pop3_port, "none"),
            Transport::Pop3Stls => ("pop3", d.pop3_port, "starttls"),
            Transport::Pop3s => ("pop3", d.pop3s_port, "tls"),
        };
        let mut f: Vec<String> = [
            "--protocol",
            proto,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--security",
            security,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if security != "none" {
            f.push("--pin-cert".into());
            f.push(hex(&d.cert_sha256));
        }
        f
    }
}

/// `postroom account add NAME` for `user` on `d` over `t`, with extra flags.
fn add_account(data: &Path, d: &Dovecot, t: Transport, name: &str, user: &str, extra: &[&str]) {
    let mut args: Vec<String> = vec!["account".into(), "add".into(), name.into()];
    args.extend(t.flags(d));
    args.extend([
        "--user".into(),
        user.into(),
        "--password".into(),
        PASS.into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(data, &args);
}

/// The figures `postroom fetch` prints.
#[derive(Debug, PartialEq, Eq)]
struct Fetched {
    stored: u64,
    already: u64,
    removed: u64,
    oversize: u64,
}

fn number_before(text: &str, what: &str) -> u64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} not in {text:?}"));
    text[..at]
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {what:?} in {text:?}"))
}

fn fetch(data: &Path, name: &str) -> Output {
    run(data, &["fetch", name])
}

/// `postroom fetch NAME`, which must succeed; its figures.
fn fetch_ok(data: &Path, name: &str) -> Fetched {
    let out = run_ok(data, &["fetch", name]);
    let line = out
        .lines()
        .find(|l| l.contains("new messages stored"))
        .unwrap_or_else(|| panic!("no summary in {out:?}"));
    Fetched {
        stored: number_before(line, "new messages stored"),
        already: number_before(line, "already stored"),
        removed: number_before(line, "removed on the server"),
        oversize: number_before(line, "left there"),
    }
}

fn fetched(stored: u64, already: u64, removed: u64, oversize: u64) -> Fetched {
    Fetched {
        stored,
        already,
        removed,
        oversize,
    }
}

/// What the store holds.
#[derive(Debug)]
struct Stored {
    raws: u64,
    messages: u64,
    pending: u64,
    /// Message-ID -> how many messages carry it.
    ids: BTreeMap<String, u32>,
    /// Conversations (not merged) as sets of Message-IDs.
    partition: BTreeSet<BTreeSet<String>>,
}

fn stored(data: &Path) -> Stored {
    let store = Store::open(&data.join(STORE_FILE), &StoreOptions::default()).unwrap();
    let r = store.read().unwrap();
    let mut ids = BTreeMap::new();
    let mut partition = BTreeSet::new();
    for c in r.conversations().unwrap() {
        if c.status == Status::Merged {
            continue;
        }
        let mut set = BTreeSet::new();
        for m in r.conversation_messages(c.id).unwrap() {
            let id = m.message_id.unwrap_or_else(|| format!("(none {})", m.id));
            *ids.entry(id.clone()).or_insert(0) += 1;
            set.insert(id);
        }
        partition.insert(set);
    }
    Stored {
        raws: r.raw_count().unwrap(),
        messages: r.message_count().unwrap(),
        pending: r.pending_count().unwrap(),
        ids,
        partition,
    }
}

/// Every generated message is stored exactly once, in its true conversation.
fn assert_stored_exactly(data: &Path, expected: &[Mail], what: &str) {
    let s = stored(data);
    let want = ids_of(expected);
    let got: BTreeSet<String> = s.ids.keys().cloned().collect();
    let missing: Vec<&String> = want.difference(&got).take(5).collect();
    let extra: Vec<&String> = got.difference(&want).take(5).collect();
    let twice: Vec<(&String, &u32)> = s.ids.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "{what}: {} expected, {} stored; missing {missing:?}, unexpected {extra:?}, more than once {twice:?}",
        want.len(),
        got.len()
    );
    assert_eq!(
        (s.raws, s.messages, s.pending),
        (expected.len() as u64, expected.len() as u64, 0),
        "{what}: raw messages, messages, still queued"
    );
    assert_eq!(
        s.partition,
        Truth::of(expected).partition(),
        "{what}: conversations differ from the true ones"
    );
}

/// Flags without `\Recent` (which the first session to see a message takes).
fn flags_without_recent(d: &Dovecot, user: &str, folder: &str) -> Vec<Vec<String>> {
    d.flags(user, PASS, folder)
        .into_iter()
        .map(|f| f.into_iter().filter(|f| f != "\\Recent").collect())
        .collect()
}

fn with_brackets(ids: &BTreeSet<String>) -> Vec<String> {
    ids.iter().map(|i| format!("<{i}>")).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// One transport in every mode it supports: a fresh user and data dir per mode, a
/// generated mailbox with two messages already `\Seen`, one pass, then a second pass
/// that must find nothing new.
fn import_in_every_mode(t: Transport) {
    let d = Dovecot::start();
    let modes: &[&str] = if t.is_imap() {
        &["keep", "delete", "move:Done"]
    } else {
        &["keep", "delete"]
    };
    // All users first: Dovecot notices a changed passwd file by its mtime (1 s steps).
    for i in 0..modes.len() {
        d.add_user(&format!("u{i}"), PASS);
    }
    for (i, mode) in modes.iter().enumerate() {
        let what = format!("{t:?} {mode}");
        let user = format!("u{i}");
        let mail = mails(60, 10 + i as u64);
        let n = mail.len() as u64;
        d.append_many(&user, PASS, "INBOX", mail.iter().map(|m| &m.bytes));
        d.flag_seen(&user, PASS, "INBOX", 1);
        d.flag_seen(&user, PASS, "INBOX", 7);
        let flags_before = flags_without_recent(&d, &user, "INBOX");
        let data = tmp();
        add_account(data.path(), &d, t, "support", &user, &["--after", mode]);

        let removed = if *mode == "keep" { 0 } else { n };
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(n, 0, removed, 0),
            "{what}: first pass"
        );
        assert_stored_exactly(data.path(), &mail, &what);

        let want = with_brackets(&ids_of(&mail));
        match *mode {
            "keep" => {
                assert_eq!(
                    sorted(d.message_ids(&user, PASS, "INBOX")),
                    want,
                    "{what}: every message stays on the server"
                );
                if t.is_imap() {
                    assert_eq!(
                        flags_without_recent(&d, &user, "INBOX"),
                        flags_before,
                        "{what}: keep must not change flags (\\Seen stays as it was)"
                    );
                }
            }
            "delete" => {
                assert_eq!(d.count(&user, PASS, "INBOX"), 0, "{what}: server emptied");
                if !t.is_imap() {
                    assert_eq!(d.pop3_stat(&user, PASS).0, 0, "{what}: POP3 STAT");
                }
            }
            _ => {
                assert_eq!(d.count(&user, PASS, "INBOX"), 0, "{what}: INBOX emptied");
                assert_eq!(
                    sorted(d.message_ids(&user, PASS, "Done")),
                    want,
                    "{what}: every message moved to Done"
                );
            }
        }

        // Nothing new: nothing downloaded, stored or removed again.
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(0, 0, 0, 0),
            "{what}: second pass"
        );
        assert_stored_exactly(
            data.path(),
            &mail,
            &format!("{what}, after the second pass"),
        );
        // New mail after that is taken too.
        let later = small(&format!("later-{i}"));
        d.append(&user, PASS, "INBOX", &later);
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(1, 0, removed.min(1), 0),
            "{what}: third pass with one new message"
        );
        assert_eq!(
            stored(data.path()).raws,
            n + 1,
            "{what}: after the third pass"
        );
    }
}

#[test]
fn imap_plain_imports_everything_once_in_keep_delete_and_move_mode() {
    import_in_every_mode(Transport::ImapPlain);
}

#[test]
fn imap_starttls_imports_everything_once_in_keep_delete_and_move_mode() {
    import_in_every_mode(Transport::ImapStartTls);
}

#[test]
fn imaps_with_a_pinned_certificate_imports_everything_once_in_keep_delete_and_move_mode() {
    import_in_every_mode(Transport::Imaps);
}

#[test]
fn pop3_plain_imports_everything_once_in_keep_and_delete_mode() {
    import_in_every_mode(Transport::Pop3Plain);
}

#[test]
fn pop3_stls_imports_everything_once_in_keep_and_delete_mode() {
    import_in_every_mode(Transport::Pop3Stls);
}

#[test]
fn pop3s_with_a_pinned_certificate_imports_everything_once_in_keep_and_delete_mode() {
    import_in_every_mode(Transport::Pop3s);
}

#[test]
fn a_message_another_client_flagged_deleted_survives_our_delete_cycle() {
    // The account takes only new mail, so the three messages already there are not ours;
    // another client has marked the second one \Deleted without expunging. Our delete
    // cycle for the new mail must expunge by UID: a plain EXPUNGE (or CLOSE) would take
    // the other client's message with it.
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let old: Vec<Vec<u8>> = (1..=3).map(|i| small(&format!("old-{i}"))).collect();
    d.append_many("support", PASS, "INBOX", &old);
    d.flag_deleted("support", PASS, "INBOX", 2);
    let data = tmp();
    add_account(
        data.path(),
        &d,
        Transport::ImapPlain,
        "support",
        "support",
        &["--after", "delete", "--only-new"],
    );
    assert_eq!(
        fetch_ok(data.path(), "support"),
        fetched(0, 0, 0, 0),
        "first pass with --only-new leaves existing mail alone"
    );
    let new: Vec<Vec<u8>> = (1..=4).map(|i| small(&format!("new-{i}"))).collect();
    d.append_many("support", PASS, "INBOX", &new);
    assert_eq!(fetch_ok(data.path(), "support"), fetched(4, 0, 4, 0));
    assert_eq!(
        d.message_ids("support", PASS, "INBOX"),
        [
            "<old-1@customer.example>",
            "<old-2@customer.example>",
            "<old-3@customer.example>"
        ],
        "only our own messages are expunged"
    );
    let flags = d.flags("support", PASS, "INBOX");
    assert!(
        flags[1].iter().any(|f| f == "\\Deleted") && !flags[0].iter().any(|f| f == "\\Deleted"),
        "the other client's \\Deleted flag is untouched: {flags:?}"
    );
    let s = stored(data.path());
    assert_eq!(
        s.ids.keys().cloned().collect::<Vec<_>>(),
        (1..=4)
            .map(|i| format!("new-{i}@customer.example"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_message_flagged_deleted_by_another_client_survives_a_keep_pass_and_is_imported() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let msgs: Vec<Vec<u8>> = (1..=3).map(|i| small(&format!("k-{i}"))).collect();
    d.append_many("support", PASS, "INBOX", &msgs);
    d.flag_deleted("support", PASS, "INBOX", 3);
    let data = tmp();
    add_account(
        data.path(),
        &d,
        Transport::ImapPlain,
        "support",
        "support",
        &[],
    );
    assert_eq!(fetch_ok(data.path(), "support"), fetched(3, 0, 0, 0));
    assert_eq!(
        d.count("support", PASS, "INBOX"),
        3,
        "nothing expunged in keep mode"
    );
    assert!(
        d.flags("support", PASS, "INBOX")[2]
            .iter()
            .any(|f| f == "\\Deleted")
    );
}

#[test]
fn messages_already_seen_are_imported_and_stay_seen() {
    let d = Dovecot::start();
    d.add_user("imap", PASS);
    d.add_user("pop", PASS);
    let mail = mails(12, 40);
    for user in ["imap", "pop"] {
        d.append_many(user, PASS, "INBOX", mail.iter().map(|m| &m.bytes));
        for seq in 1..=12 {
            d.flag_seen(user, PASS, "INBOX", seq);
        }
    }
    for (t, user) in [
        (Transport::ImapPlain, "imap"),
        (Transport::Pop3Plain, "pop"),
    ] {
        let data = tmp();
        add_account(data.path(), &d, t, "support", user, &[]);
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(12, 0, 0, 0),
            "{t:?}"
        );
        assert_stored_exactly(data.path(), &mail, &format!("{t:?}, all \\Seen"));
        assert!(
            d.flags(user, PASS, "INBOX")
                .iter()
                .all(|f| f.iter().any(|f| f == "\\Seen")),
            "{t:?}: still \\Seen"
        );
    }
}

#[test]
fn a_uidvalidity_reset_imports_nothing_twice_and_new_mail_after_it() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let mail = mails(40, 50);
    let (first, rest) = mail.split_at(30);
    d.append_many("support", PASS, "INBOX", first.iter().map(|m| &m.bytes));
    // A gap in the UIDs, so the renumbering moves messages to UIDs that held others.
    d.append("support", PASS, "INBOX", &small("gone"));
    let data = tmp();
    add_account(
        data.path(),
        &d,
        Transport::ImapPlain,
        "support",
        "support",
        &[],
    );
    assert_eq!(fetch_ok(data.path(), "support"), fetched(31, 0, 0, 0));

    // Another client removes one message, more mail arrives, then the server renumbers.
    let c = d.count("support", PASS, "INBOX");
    d.flag_deleted("support", PASS, "INBOX", c);
    expunge_all(&d, "support");
    d.append_many("support", PASS, "INBOX", rest[..5].iter().map(|m| &m.bytes));
    let before = d.uidvalidity("support", PASS, "INBOX");
    let after = d.reset_uidvalidity("support", "INBOX");
    assert_ne!(before, after);
    d.append_many("support", PASS, "INBOX", rest[5..].iter().map(|m| &m.bytes));

    // The 30 known messages are re-mapped (not downloaded again); the 10 new ones are
    // stored, even those whose new UIDs are lower than the old cursor.
    assert_eq!(fetch_ok(data.path(), "support"), fetched(10, 0, 0, 0));
    let s = stored(data.path());
    assert_eq!(s.raws, 41);
    let mut want = ids_of(&mail);
    want.insert("gone@customer.example".into());
    assert_eq!(s.ids.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(s.ids.values().all(|n| *n == 1), "stored once each");
    let log = run_ok(data.path(), &["log", "--limit", "1000"]);
    assert!(log.contains("UIDVALIDITY changed"), "{log}");
    // And the pass after that finds nothing.
    assert_eq!(fetch_ok(data.path(), "support"), fetched(0, 0, 0, 0));
}

/// Another client expunges every `\Deleted` message of INBOX.
fn expunge_all(d: &Dovecot, user: &str) {
    // The harness has no EXPUNGE helper: a tiny IMAP session does it.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.imap_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let quoted = PASS.replace('\\', "\\\\").replace('"', "\\\"");
    let script =
        format!("a LOGIN {user} \"{quoted}\"\r\nb SELECT INBOX\r\nc EXPUNGE\r\nd LOGOUT\r\n");
    s.write_all(script.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.contains("c OK"), "EXPUNGE by another client: {out}");
}

#[test]
fn an_oversize_message_stays_on_the_server_and_is_reported() {
    let d = Dovecot::start();
    d.add_user("imap", PASS);
    d.add_user("pop", PASS);
    let huge = big("huge", 200_000);
    for (t, user) in [
        (Transport::ImapPlain, "imap"),
        (Transport::Pop3Plain, "pop"),
    ] {
        d.append(user, PASS, "INBOX", &small(&format!("{user}-a")));
        d.append(user, PASS, "INBOX", &huge);
        d.append(user, PASS, "INBOX", &small(&format!("{user}-b")));
        let data = tmp();
        add_account(
            data.path(),
            &d,
            t,
            "support",
            user,
            &["--after", "delete", "--max-message-bytes", "65536"],
        );
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(2, 0, 2, 1),
            "{t:?}: two stored and deleted, one left there"
        );
        assert_eq!(
            d.message_ids(user, PASS, "INBOX"),
            ["<huge@customer.example>"],
            "{t:?}: the oversize message stays on the server"
        );
        let log = run_ok(data.path(), &["log", "--limit", "1000"]);
        assert!(
            log.lines()
                .any(|l| l.contains("support") && l.contains("over the limit of 65536 bytes")),
            "{t:?}: reported in the log:\n{log}"
        );
        let s = stored(data.path());
        assert_eq!(s.raws, 2, "{t:?}: never half-stored");
        assert!(!s.ids.contains_key("huge@customer.example"));
        // Reported once, not at every pass; still left alone.
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(0, 0, 0, 0),
            "{t:?}"
        );
        assert_eq!(d.count(user, PASS, "INBOX"), 1, "{t:?}");
        // Raising the limit fetches it.
        run_ok(
            data.path(),
            &[
                "account",
                "edit",
                "support",
                "--max-message-bytes",
                "1000000",
            ],
        );
        let _ = fetch_ok(data.path(), "support");
        assert_eq!(
            stored(data.path()).raws,
            3,
            "{t:?}: fetched once the limit allows"
        );
        assert_eq!(d.count(user, PASS, "INBOX"), 0, "{t:?}");
    }
}

#[test]
fn only_new_leaves_existing_mail_alone_and_takes_what_arrives_later() {
    let d = Dovecot::start();
    d.add_user("imap", PASS);
    d.add_user("pop", PASS);
    for (t, user) in [
        (Transport::ImapPlain, "imap"),
        (Transport::Pop3Plain, "pop"),
    ] {
        d.append_many(
            user,
            PASS,
            "INBOX",
            (1..=3).map(|i| small(&format!("{user}-old-{i}"))),
        );
        let data = tmp();
        add_account(
            data.path(),
            &d,
            t,
            "support",
            user,
            &["--only-new", "--after", "delete"],
        );
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(0, 0, 0, 0),
            "{t:?}"
        );
        d.append_many(
            user,
            PASS,
            "INBOX",
            (1..=2).map(|i| small(&format!("{user}-new-{i}"))),
        );
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(2, 0, 2, 0),
            "{t:?}"
        );
        let s = stored(data.path());
        assert_eq!(
            s.ids.keys().cloned().collect::<Vec<_>>(),
            [1, 2].map(|i| format!("{user}-new-{i}@customer.example")),
            "{t:?}"
        );
        assert_eq!(
            d.message_ids(user, PASS, "INBOX"),
            [1, 2, 3].map(|i| format!("<{user}-old-{i}@customer.example>")),
            "{t:?}: the old mail is still there"
        );
    }
}

#[test]
fn a_message_with_a_line_of_200_kb_is_fetched_whole_over_imap_and_pop3() {
    // RFC 5322 says 998 characters, but HTML mailers send whole bodies on one line.
    let d = Dovecot::start();
    d.add_user("imap", PASS);
    d.add_user("pop", PASS);
    let mut long = small("long-line");
    long.extend_from_slice(b"<p>");
    long.extend(std::iter::repeat_n(b'x', 200_000));
    long.extend_from_slice(b"</p>\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n");
    for (t, user) in [
        (Transport::ImapPlain, "imap"),
        (Transport::Pop3Plain, "pop"),
    ] {
        d.append(user, PASS, "INBOX", &long);
        let data = tmp();
        add_account(data.path(), &d, t, "support", user, &[]);
        assert_eq!(
            fetch_ok(data.path(), "support"),
            fetched(1, 0, 0, 0),
            "{t:?}"
        );
        let raw = run_ok(data.path(), &["raw", "1"]);
        assert_eq!(
            raw.as_bytes(),
            &long[..],
            "{t:?}: the exact bytes, dots and all"
        );
    }
}

/// Runs `postroom fetch support`, which must fail; returns its error output.
fn fetch_err(data: &Path) -> String {
    let out = fetch(data, "support");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "fetch should fail:\n{err}");
    assert!(
        err.contains("error: account \"support\":"),
        "the error names the account:\n{err}"
    );
    err
}

fn assert_has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{p:?} missing in:\n{text}");
    }
}

#[test]
fn a_wrong_password_gives_the_servers_reply_and_what_to_do() {
    for t in [
        Transport::ImapPlain,
        Transport::Imaps,
        Transport::Pop3Plain,
        Transport::Pop3s,
    ] {
        // A fresh server each time: Dovecot delays repeated failures from one address.
        let d = Dovecot::start();
        d.add_user("support", PASS);
        let data = tmp();
        add_account(data.path(), &d, t, "support", "support", &[]);
        run_ok(
            data.path(),
            &["account", "edit", "support", "--password", "wrong"],
        );
        let err = fetch_err(data.path());
        let reply = if t.is_imap() {
            "server said \"NO [AUTHENTICATIONFAILED] Authentication failed.\""
        } else {
            "server said \"-ERR [AUTH] Authentication failed.\""
        };
        assert_has(&err, &[reply, "login", "Check the user name and password"]);
        assert!(
            !err.contains("wrong"),
            "{t:?}: the password is never shown:\n{err}"
        );
        let log = run_ok(data.path(), &["log", "--limit", "100"]);
        assert!(
            log.contains("Authentication failed"),
            "{t:?}: in the log:\n{log}"
        );
    }
}

#[test]
fn a_wrong_port_says_nothing_listens_there() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for proto in ["imap", "pop3"] {
        let data = tmp();
        run_ok(
            data.path(),
            &[
                "account",
                "add",
                "support",
                "--protocol",
                proto,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--security",
                "none",
                "--user",
                "support",
                "--password",
                PASS,
            ],
        );
        let err = fetch_err(data.path());
        assert_has(
            &err,
            &[
                &format!("cannot connect to 127.0.0.1:{port}"),
                "refused",
                "Check the host and port",
            ],
        );
    }
}

#[test]
fn tls_to_a_plain_port_says_the_port_is_plain_text() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    for (proto, port) in [("imap", d.imap_port), ("pop3", d.pop3_port)] {
        let data = tmp();
        run_ok(
            data.path(),
            &[
                "account",
                "add",
                "support",
                "--protocol",
                proto,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--security",
                "tls",
                "--user",
                "support",
                "--password",
                PASS,
                "--pin-cert",
                &hex(&d.cert_sha256),
            ],
        );
        let err = fetch_err(data.path());
        assert_has(
            &err,
            &[
                &format!("TLS with 127.0.0.1:{port} failed"),
                "did not answer in TLS",
                "plain-text port",
                "starttls",
            ],
        );
    }
}

#[test]
fn an_untrusted_certificate_is_refused_with_its_fingerprint_and_how_to_pin_it() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let colon_hex = d
        .cert_sha256
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    for (proto, port, security) in [
        ("imap", d.imaps_port, "tls"),
        ("imap", d.imap_port, "starttls"),
        ("pop3", d.pop3s_port, "tls"),
        ("pop3", d.pop3_port, "starttls"),
    ] {
        let data = tmp();
        run_ok(
            data.path(),
            &[
                "account",
                "add",
                "support",
                "--protocol",
                proto,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--security",
                security,
                "--user",
                "support",
                "--password",
                PASS,
            ],
        );
        let err = fetch_err(data.path());
        assert_has(
            &err,
            &[
                "not trusted",
                &format!("fingerprint {colon_hex}"),
                "--pin-cert",
            ],
        );
        // A wrong pin is refused too, and says so.
        run_ok(
            data.path(),
            &["account", "edit", "support", "--pin-cert", &"ab".repeat(32)],
        );
        let err = fetch_err(data.path());
        assert_has(&err, &["not the pinned one", &colon_hex]);
        // The right pin works.
        run_ok(
            data.path(),
            &["account", "edit", "support", "--pin-cert", &colon_hex],
        );
        fetch_ok(data.path(), "support");
    }
}

#[test]
fn idle_turns_an_appended_message_into_a_conversation_without_waiting_for_the_poll() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    d.append_many(
        "support",
        PASS,
        "INBOX",
        (1..=3).map(|i| small(&format!("before-{i}"))),
    );
    let data = tmp();
    // With a poll interval of 10 minutes, only IDLE can bring the mail in during the test.
    add_account(
        data.path(),
        &d,
        Transport::ImapStartTls,
        "support",
        "support",
        &["--poll-secs", "600"],
    );
    let started = Instant::now();
    let mut serve = Serve::start(data.path(), &[]);
    serve.wait_for("IDLE available", Duration::from_secs(30));
    serve.wait_for("3 new messages stored", Duration::from_secs(30));
    serve.wait_for("pipeline: 3 messages", Duration::from_secs(30));
    // One message while serve idles, then one right after that one was stored (while
    // serve goes from its pass back into IDLE, the window where a change is easy to miss).
    for tag in ["idle-1", "idle-2"] {
        d.append("support", PASS, "INBOX", &small(tag));
        serve.wait_for("1 new messages stored", Duration::from_secs(60));
        serve.wait_for(
            "pipeline: 1 messages, 1 new conversations",
            Duration::from_secs(30),
        );
    }
    serve.stop();
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the test must finish before the first poll would have happened"
    );
    let s = stored(data.path());
    assert_eq!(s.raws, 5);
    for tag in ["idle-1", "idle-2"] {
        assert!(
            s.partition
                .contains(&BTreeSet::from([format!("{tag}@customer.example")])),
            "{tag} is a conversation: {:?}",
            s.partition
        );
    }
}

/// Accounts changed on the command line while `serve` runs take effect at once, through
/// the control socket: an added account starts fetching, a disabled one stops, `fetch`
/// runs a pass inside the service, and `account list` shows each account's live state.
#[test]
fn accounts_added_and_changed_while_serve_runs_take_effect_at_once() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    d.append("support", PASS, "INBOX", &small("live-1"));
    let data = tmp();
    let mut serve = Serve::start(data.path(), &[]);
    serve.wait_for("ready (data dir", Duration::from_secs(30));
    add_account(
        data.path(),
        &d,
        Transport::ImapPlain,
        "support",
        "support",
        &["--poll-secs", "600"],
    );
    serve.wait_for("account \"support\": starting", Duration::from_secs(10));
    serve.wait_for("IDLE available", Duration::from_secs(30));
    serve.wait_for("1 new messages stored", Duration::from_secs(30));
    let list = run_ok(data.path(), &["account", "list"]);
    assert!(list.contains("now: "), "live state shown: {list}");
    // Disabled: the task stops; mail that arrives is not fetched.
    run_ok(data.path(), &["account", "disable", "support"]);
    serve.wait_for(
        "account \"support\": stopped (disabled)",
        Duration::from_secs(30),
    );
    assert!(run_ok(data.path(), &["account", "list"]).contains("now: disabled"));
    d.append("support", PASS, "INBOX", &small("live-2"));
    // `fetch` runs one pass inside the service even for a disabled account.
    let out = run_ok(data.path(), &["fetch", "support"]);
    assert!(out.contains("1 new messages stored"), "{out}");
    // Enabled again with a changed setting: started afresh.
    run_ok(data.path(), &["account", "enable", "support"]);
    serve.wait_for("account \"support\": starting", Duration::from_secs(10));
    run_ok(
        data.path(),
        &["account", "edit", "support", "--poll-secs", "300"],
    );
    serve.wait_for(
        "account \"support\": stopped (changed)",
        Duration::from_secs(30),
    );
    serve.wait_for("account \"support\": starting", Duration::from_secs(10));
    d.append("support", PASS, "INBOX", &small("live-3"));
    serve.wait_for("1 new messages stored", Duration::from_secs(60));
    serve.wait_for("pipeline: 1 messages", Duration::from_secs(30));
    run_ok(data.path(), &["account", "remove", "support"]);
    serve.wait_for(
        "account \"support\": stopped (removed)",
        Duration::from_secs(30),
    );
    serve.stop();
    let s = stored(data.path());
    assert_eq!(s.raws, 3, "each message stored once");
}

#[test]
fn killed_right_after_a_commit_the_next_pass_stores_nothing_twice_and_deletes_everything() {
    // POSTROOM_FAILPOINT aborts the process right after the Nth intake commit: the
    // messages are durable but not yet deleted on the server (IMAP: not flagged; POP3:
    // no DELE sent, no QUIT). The next pass must delete them without storing them again.
    let d = Dovecot::start();
    let cases = [
        (Transport::ImapPlain, 1),
        (Transport::ImapPlain, 2),
        (Transport::Pop3Plain, 1),
        (Transport::Pop3Plain, 2),
    ];
    for i in 0..cases.len() {
        d.add_user(&format!("u{i}"), PASS);
    }
    for (i, (t, n)) in cases.into_iter().enumerate() {
        let what = format!("{t:?}, abort after commit {n}");
        let user = format!("u{i}");
        let mail = mails(450, 60 + i as u64); // three batches of up to 200
        d.append_many(&user, PASS, "INBOX", mail.iter().map(|m| &m.bytes));
        let data = tmp();
        add_account(data.path(), &d, t, "support", &user, &["--after", "delete"]);
        let out = cmd(data.path(), &["fetch", "support"])
            .env("POSTROOM_FAILPOINT", format!("after-fetch-commit:{n}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("failpoint after-fetch-commit reached"),
            "{what}: the failpoint must abort the pass:\n{err}"
        );
        let left = d.count(&user, PASS, "INBOX");
        assert!(
            left as usize > mail.len() - 200 * n,
            "{what}: the last committed batch cannot have been deleted yet ({left} left)"
        );
        let after = fetch_ok(data.path(), "support");
        assert_eq!(
            (after.stored as usize, after.already, after.removed),
            (mail.len() - 200 * n, 0, u64::from(left)),
            "{what}: the second pass"
        );
        assert_stored_exactly(data.path(), &mail, &what);
        assert_eq!(d.count(&user, PASS, "INBOX"), 0, "{what}: server emptied");
    }
}

/// A TCP proxy on 127.0.0.1 to `target` that passes the server's bytes at about
/// `rate` bytes per second (the client's unthrottled), so that an intake lasts long
/// enough for random kills to land in it; and that can cut the first connection after
/// the server sent `cut_first_after` bytes, as a network failure mid-FETCH would.
/// Stops accepting when dropped.
struct SlowProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SlowProxy {
    fn start(target: u16, rate: u64) -> SlowProxy {
        SlowProxy::with_cut(target, rate, None)
    }

    fn with_cut(target: u16, rate: u64, cut_first_after: Option<usize>) -> SlowProxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        fn pipe(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>, cut: Option<usize>) {
            use std::io::{Read, Write};
            let mut buf = vec![0u8; 32 * 1024];
            let mut passed = 0usize;
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let n = match cut {
                    Some(cut) if passed + n >= cut => {
                        let _ = to.write_all(&buf[..cut - passed]);
                        break;
                    }
                    _ => n,
                };
                passed += n;
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(rate) = rate {
                    std::thread::sleep(Duration::from_micros(n as u64 * 1_000_000 / rate));
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        }
        std::thread::spawn(move || {
            let mut cut = cut_first_after;
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                // Without this, Nagle and delayed ACKs stall every POP3 round trip.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let this_cut = cut.take();
                std::thread::spawn(move || pipe(client, server, None, None));
                std::thread::spawn(move || pipe(s2, c2, Some(rate), this_cut));
            }
        });
        SlowProxy { port, stop }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn a_connection_cut_mid_fetch_loses_nothing_and_stores_nothing_twice() {
    let d = Dovecot::start();
    d.add_user("imap", PASS);
    d.add_user("pop", PASS);
    // Two batches (200 + 50 messages): the cut lands in the second one, after the first
    // was committed (IMAP: and deleted; POP3: DELE comes only at the end).
    let mail = mails(250, 90);
    let total: usize = mail.iter().map(|m| m.bytes.len()).sum();
    for (proto, user, port) in [("imap", "imap", d.imap_port), ("pop3", "pop", d.pop3_port)] {
        d.append_many(user, PASS, "INBOX", mail.iter().map(|m| &m.bytes));
        let proxy = SlowProxy::with_cut(port, 1 << 40, Some(total * 9 / 10));
        let data = tmp();
        run_ok(
            data.path(),
            &[
                "account",
                "add",
                "support",
                "--protocol",
                proto,
                "--host",
                "127.0.0.1",
                "--port",
                &proxy.port.to_string(),
                "--security",
                "none",
                "--user",
                user,
                "--password",
                PASS,
                "--after",
                "delete",
            ],
        );
        let err = fetch_err(data.path());
        assert_has(&err, &["broke during", "Nothing was lost"]);
        let s = stored(data.path());
        assert!(
            s.raws >= 200 && s.raws < 250,
            "{proto}: the first batch is stored, the cut one is not ({} stored)",
            s.raws
        );
        fetch_ok(data.path(), "support");
        assert_stored_exactly(data.path(), &mail, &format!("{proto}, after a cut"));
        assert_eq!(d.count(user, PASS, "INBOX"), 0, "{proto}: server emptied");
    }
}

/// Where a `kill -9` landed, judged from the server and from what serve had logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// There was nothing to fetch.
    Idle,
    /// Before this run committed anything.
    Early,
    /// After at least one intake commit and before the pass finished.
    MidIntake,
    /// After the pass finished.
    Late,
}

/// 500 messages (half with attachments, about 180 KB on average) arrive in waves of 50
/// whenever fewer than 100 wait on the server, so every run has several 8 MB commits
/// of work; `postroom serve`
/// (delete mode, through a throttling proxy) is killed with SIGKILL 20 times, each at a
/// random moment after it started, and restarted. The kill window adapts to what the
/// previous run got done, so that most kills land during intake. Afterwards one more
/// pass runs, and every message must be stored exactly once, in its true conversation,
/// with the server mailbox empty.
fn crash_loop(t: Transport) {
    const KILLS: usize = 20;
    const MID_KILLS: usize = 3;
    const MAX_RUNS: usize = 40;
    const WAVE: usize = 50;
    const BACKLOG: u32 = 100;
    let started = Instant::now();
    let d = Dovecot::start();
    d.add_user("support", PASS);
    let mail: Vec<Mail> = Generator::new(GenOptions {
        count: 500,
        seed: 80,
        attach_ratio: 0.5,
        attach_min: 30_000,
        attach_max: 400_000,
        ..GenOptions::default()
    })
    .collect();
    let port = if t.is_imap() {
        d.imap_port
    } else {
        d.pop3_port
    };
    let proxy = SlowProxy::start(port, 16 << 20);
    let proto = if t.is_imap() { "imap" } else { "pop3" };
    let data = tmp();
    run_ok(
        data.path(),
        &[
            "account",
            "add",
            "support",
            "--protocol",
            proto,
            "--host",
            "127.0.0.1",
            "--port",
            &proxy.port.to_string(),
            "--security",
            "none",
            "--user",
            "support",
            "--password",
            PASS,
            "--after",
            "delete",
        ],
    );
    let mut rng = crate::genmail::Rng::new(0x5eed);
    let mut window_ms = 600u64;
    let mut landed = Vec::new();
    let mut waves = mail.chunks(WAVE);
    let count = |landed: &[(u64, Landed)], which: Landed| {
        landed.iter().filter(|(_, l)| *l == which).count()
    };
    // At least KILLS kills while there was mail to take, and at least MID_KILLS of them
    // between a commit and the end of a pass; the window adapts, so this rarely needs
    // more than KILLS runs.
    while landed.len() - count(&landed, Landed::Idle) < KILLS
        || count(&landed, Landed::MidIntake) < MID_KILLS
    {
        // Keep a backlog of several commits' worth on the server.
        while d.count("support", PASS, "INBOX") < BACKLOG
            && let Some(w) = waves.next()
        {
            d.append_many("support", PASS, "INBOX", w.iter().map(|m| &m.bytes));
        }
        let work = d.count("support", PASS, "INBOX") > 0;
        let mut serve = Serve::start(data.path(), &[("RUST_LOG", "info,postroom=debug")]);
        serve.wait_for("ready", Duration::from_secs(30));
        let delay = window_ms / 2 + rng.below(window_ms / 2 + 1);
        std::thread::sleep(Duration::from_millis(delay));
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        while let Ok(l) = serve.lines.recv_timeout(Duration::from_secs(5)) {
            serve.seen.push(l);
        }
        let committed = serve.seen.iter().any(|l| l.contains("committed"));
        let finished = serve.seen.iter().any(|l| l.contains("new messages stored"));
        let l = match (work, committed, finished) {
            (false, _, _) => Landed::Idle,
            (_, _, true) => Landed::Late,
            (_, true, false) => Landed::MidIntake,
            (_, false, false) => Landed::Early,
        };
        landed.push((delay, l));
        // Aim at about two kills before the first commit of a run for one after it:
        // each kill after a commit takes a batch (about 44 messages) off the backlog,
        // and the mail must last for all the kills.
        window_ms = match l {
            Landed::Late => (window_ms * 3 / 5).max(20),
            Landed::MidIntake => (window_ms * 4 / 5).max(20),
            Landed::Early => (window_ms * 11 / 10).min(10_000),
            Landed::Idle => window_ms,
        };
        if landed.len() >= MAX_RUNS || (l == Landed::Idle && waves.len() == 0) {
            break;
        }
    }
    eprintln!("{t:?}: kills {landed:?} in {:?}", started.elapsed());
    // The test means something only if the kills hit intake.
    assert!(
        landed.len() - count(&landed, Landed::Idle) >= KILLS
            && count(&landed, Landed::MidIntake) >= MID_KILLS,
        "{t:?}: too few kills landed during intake: {landed:?}"
    );
    for w in waves {
        d.append_many("support", PASS, "INBOX", w.iter().map(|m| &m.bytes));
    }
    // One more pass, uninterrupted, finishes the work.
    fetch_ok(data.path(), "support");
    assert_stored_exactly(
        data.path(),
        &mail,
        &format!("{t:?} after {KILLS} kills {landed:?}"),
    );
    assert_eq!(
        d.count("support", PASS, "INBOX"),
        0,
        "{t:?}: server mailbox emptied"
    );
    // And nothing is taken again.
    assert_eq!(
        fetch_ok(data.path(), "support"),
        fetched(0, 0, 0, 0),
        "{t:?}"
    );
    eprintln!("{t:?}: done in {:?}", started.elapsed());
}

#[test]
fn imap_delete_mode_survives_20_kills_during_intake_storing_each_message_once() {
    crash_loop(Transport::ImapPlain);
}

#[test]
fn pop3_delete_mode_survives_20_kills_during_intake_storing_each_message_once() {
    crash_loop(Transport::Pop3Plain);
}

#[test]
fn pop3_keep_mode_forgets_what_another_client_deleted() {
    let d = Dovecot::start();
    d.add_user("support", PASS);
    d.append_many(
        "support",
        PASS,
        "INBOX",
        (1..=5).map(|i| small(&format!("f-{i}"))),
    );
    let data = tmp();
    add_account(
        data.path(),
        &d,
        Transport::Pop3Plain,
        "support",
        "support",
        &[],
    );
    assert_eq!(fetch_ok(data.path(), "support"), fetched(5, 0, 0, 0));
    d.flag_deleted("support", PASS, "INBOX", 2);
    d.flag_deleted("support", PASS, "INBOX", 4);
    expunge_all(&d, "support");
    assert_eq!(fetch_ok(data.path(), "support"), fetched(0, 0, 0, 0));
    let list = run_ok(data.path(), &["account", "list"]);
    assert!(
        list.contains("(3 messages remembered)"),
        "only what is still on the server is remembered:\n{list}"
    );
}

/// `postroom account check NAME`: output and exit status.
fn check(data: &Path, name: &str) -> (bool, String) {
    let out = run(data, &["account", "check", name]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn account_check_shows_every_step_with_the_certificate_and_folder_counts() {
    let d = Dovecot::start();
    d.add_user("chk", PASS);
    d.append_many("chk", PASS, "INBOX", [small("c1"), small("c2")]);
    d.append("chk", PASS, "Archive", &small("c3"));
    let t = tmp();
    let fp = postroom::net::Fingerprint(d.cert_sha256).to_string();
    for (tr, name) in [
        (Transport::Imaps, "imaps"),
        (Transport::ImapStartTls, "starttls"),
        (Transport::Pop3Stls, "pop3"),
    ] {
        add_account(t.path(), &d, tr, name, "chk", &[]);
        let (ok, text) = check(t.path(), name);
        assert!(ok, "{text}");
        assert_has(
            &text,
            &[
                "ok   DNS",
                "ok   TCP",
                "ok   TLS",
                "CN=localhost",
                &fp,
                "pinned certificate",
                "ok   login",
            ],
        );
        if tr.is_imap() {
            assert_has(
                &text,
                &[
                    "ok   capabilities",
                    "IDLE",
                    "UIDPLUS",
                    "ok   folders",
                    "INBOX (2)",
                    "Archive (1)",
                ],
            );
        } else {
            assert_has(&text, &["ok   mailbox", "2 messages"]);
        }
    }
    // Checking changed nothing on the server and stored nothing.
    assert_eq!(d.count("chk", PASS, "INBOX"), 2);
    assert_eq!(stored(t.path()).raws, 0);
}

#[test]
fn account_check_names_the_failing_step_and_the_servers_reply() {
    let d = Dovecot::start();
    d.add_user("chk2", PASS);
    let t = tmp();
    add_account(t.path(), &d, Transport::ImapPlain, "wrongpw", "chk2", &[]);
    run_ok(
        t.path(),
        &["account", "edit", "wrongpw", "--password", "not-it"],
    );
    let (ok, text) = check(t.path(), "wrongpw");
    assert!(!ok);
    assert_has(
        &text,
        &[
            "ok   TCP",
            "FAIL login",
            "AUTHENTICATIONFAILED",
            "does not work yet",
        ],
    );
    assert!(
        !text.contains("not-it"),
        "the password must never be shown: {text}"
    );
    add_account(
        t.path(),
        &d,
        Transport::Imaps,
        "nofolder",
        "chk2",
        &["--folder", "Missing"],
    );
    let (ok, text) = check(t.path(), "nofolder");
    assert!(!ok);
    assert_has(
        &text,
        &[
            "FAIL folders",
            "\"Missing\" configured but not on the server",
            "INBOX (0)",
            "postroom account edit nofolder --folder",
        ],
    );
}

#[test]
fn the_communication_log_has_a_line_per_message_and_per_pass() {
    let d = Dovecot::start();
    d.add_user("logu", PASS);
    d.append_many(
        "logu",
        PASS,
        "INBOX",
        [small("l1"), small("l2"), small("l3")],
    );
    let t = tmp();
    add_account(t.path(), &d, Transport::ImapPlain, "logimap", "logu", &[]);
    add_account(t.path(), &d, Transport::Pop3Plain, "logpop", "logu", &[]);
    fetch_ok(t.path(), "logimap");
    fetch_ok(t.path(), "logpop");
    let log = run_ok(t.path(), &["log", "--limit", "0"]);
    for uid in 1..=3 {
        assert!(
            log.contains(&format!("imap:logimap INBOX UID {uid} (UIDVALIDITY")),
            "{log}"
        );
    }
    assert_eq!(log.matches("bytes stored as raw").count(), 3, "{log}");
    // POP3 saw the same bytes: recorded, not stored again.
    assert_eq!(
        log.matches("bytes already stored (identical bytes) as raw")
            .count(),
        3,
        "{log}"
    );
    assert!(log.contains("3 new messages stored"), "{log}");
}

#[test]
fn non_ascii_folder_names_travel_in_modified_utf7() {
    let d = Dovecot::start();
    d.add_user("intl", PASS);
    // The harness speaks the wire form: "Entwürfe" is "Entw&APw-rfe".
    d.append("intl", PASS, "Entw&APw-rfe", &small("u1"));
    let t = tmp();
    add_account(
        t.path(),
        &d,
        Transport::ImapPlain,
        "intl",
        "intl",
        &["--folder", "Entwürfe", "--after", "move:Ärger"],
    );
    let (ok, text) = check(t.path(), "intl");
    assert!(ok, "{text}");
    assert_has(&text, &["Entwürfe (1)"]);
    let f = fetch_ok(t.path(), "intl");
    assert_eq!(f, fetched(1, 0, 1, 0));
    assert_eq!(d.count("intl", PASS, "Entw&APw-rfe"), 0);
    assert_eq!(d.count("intl", PASS, "&AMQ-rger"), 1, "moved into Ärger");
}

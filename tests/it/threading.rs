//! Threading golden tests: fixture mails under `tests/fixtures/threading/CASE/` arrive in
//! file-name order; `expect` lists which files share a conversation. Plus the cases that
//! need more than files: replies to mail we sent, status rules, bounces, the tag prefix.

use crate::support::tmp;
use postroom::app::DataDir;
use postroom::config::{self, Settings};
use postroom::import;
use postroom::model::{Addr, ConvId, FixedClock, MailboxId, MsgFlags, RawId, Status};
use postroom::pipeline::{self, thread::format_tag};
use postroom::store::{NewRaw, Store, content_hash};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CLOCK: FixedClock = FixedClock(1_795_000_000_000);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/threading")
}

/// Conversations as sets of fixture names (file stems), merged ones left out.
fn partition(store: &Store) -> BTreeSet<BTreeSet<String>> {
    let r = store.read().unwrap();
    let mut out = BTreeSet::new();
    for c in r.conversations().unwrap() {
        if c.status == Status::Merged {
            assert_eq!(
                c.message_count, 0,
                "a merged conversation keeps no messages"
            );
            assert!(r.conversation_messages(c.id).unwrap().is_empty());
            continue;
        }
        let mut set = BTreeSet::new();
        for m in r.conversation_messages(c.id).unwrap() {
            let raw = r.raw(m.raw).unwrap().unwrap();
            let src = &raw.sources[0];
            let stem = Path::new(src)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            set.insert(stem);
        }
        assert_eq!(
            set.len() as u32,
            c.message_count,
            "message count of #{}",
            c.id
        );
        out.insert(set);
    }
    out
}

fn expected(case: &Path) -> BTreeSet<BTreeSet<String>> {
    std::fs::read_to_string(case.join("expect"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Imports the case's files one at a time, in name order, as separate arrivals.
fn import_case(dir: &DataDir, case: &Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    let settings = dir.settings().unwrap();
    for f in files {
        import::import(
            &dir.store,
            &[f],
            MailboxId(1),
            &settings,
            &CLOCK,
            &mut |_| {},
        )
        .unwrap();
    }
}

fn open(data: &Path) -> DataDir {
    DataDir::open(data, &CLOCK).unwrap()
}

/// A data dir and the temporary directory holding it (dropped in this order).
struct Case {
    dir: DataDir,
    _tmp: crate::support::TempDir,
}

fn check_case(name: &str) -> Case {
    let case = fixtures().join(name);
    let t = tmp();
    let dir = open(&t.path().join("data"));
    import_case(&dir, &case);
    assert_eq!(partition(&dir.store), expected(&case), "case {name}");
    // The whole case imported again, as one directory, adds nothing.
    let settings = dir.settings().unwrap();
    let again = import::import(
        &dir.store,
        std::slice::from_ref(&case),
        MailboxId(1),
        &settings,
        &CLOCK,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.stored, 0, "case {name}: re-import stored something");
    assert_eq!(
        partition(&dir.store),
        expected(&case),
        "case {name} after re-import"
    );
    Case { dir, _tmp: t }
}

#[test]
fn golden_in_order_replies() {
    check_case("in-order");
}

#[test]
fn golden_out_of_order_replies_merge_when_the_original_arrives() {
    let case = check_case("out-of-order");
    let r = case.dir.store.read().unwrap();
    let live: Vec<_> = r
        .conversations()
        .unwrap()
        .into_iter()
        .filter(|c| c.status != Status::Merged)
        .collect();
    assert_eq!(live.len(), 1);
    // The original names the conversation once it is there.
    assert_eq!(live[0].subject, "Invoice 4711 lists VAT twice");
    assert_eq!(
        live[0].customer.as_ref().unwrap().email,
        "anna@customer.example"
    );
    // Messages are shown in date order, original first.
    let subjects: Vec<String> = r
        .conversation_messages(live[0].id)
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(subjects[0], "Invoice 4711 lists VAT twice");
}

#[test]
fn golden_references_chains_with_gaps() {
    check_case("references-gap");
}

#[test]
fn golden_subject_tag_only_and_tag_wins_over_headers() {
    check_case("subject-tag");
}

#[test]
fn golden_forwarded_mail() {
    check_case("forwarded");
}

#[test]
fn golden_reply_with_changed_subject() {
    check_case("changed-subject");
}

#[test]
fn golden_same_subject_stays_apart() {
    check_case("same-subject");
}

#[test]
fn golden_auto_replies_and_lists() {
    let case = check_case("auto-replies");
    let r = case.dir.store.read().unwrap();
    let mut flags = Vec::new();
    for c in r.conversations().unwrap() {
        for m in r.conversation_messages(c.id).unwrap() {
            flags.push((m.subject.clone(), m.flags));
        }
    }
    let f = |s: &str| flags.iter().find(|(subj, _)| subj == s).unwrap().1;
    assert!(f("Out of Office: Heating broken").has(MsgFlags::AUTO_REPLY));
    assert!(f("Automatic reply: Your newsletter").has(MsgFlags::AUTO_REPLY));
    assert!(f("November newsletter").has(MsgFlags::LIST));
    assert!(!f("Heating broken").is_automatic());
}

fn ingest(store: &Store, bytes: &[u8]) -> RawId {
    let raws = [NewRaw {
        bytes,
        hash: content_hash(bytes),
        source: "test".into(),
        mailbox: MailboxId(1),
    }];
    let out = store.commit_raws(&raws, CLOCK.0).unwrap();
    let settings = Settings::load(&store.read().unwrap()).unwrap();
    pipeline::process_pending(store, &settings, &CLOCK).unwrap();
    match out[0] {
        postroom::store::RawOutcome::New(id) | postroom::store::RawOutcome::SameBytes(id) => id,
    }
}

fn conv_of(store: &Store, raw: RawId) -> ConvId {
    let r = store.read().unwrap();
    let m = r
        .message_of_raw(raw)
        .unwrap()
        .expect("raw became a message");
    r.message(m).unwrap().unwrap().conv
}

fn set_status(store: &Store, conv: ConvId, status: Status) {
    store
        .write(|tx| {
            let mut c = tx.conversation(conv)?.unwrap();
            c.status = status;
            tx.put_conversation(&c)
        })
        .unwrap();
}

fn status(store: &Store, conv: ConvId) -> Status {
    store
        .read()
        .unwrap()
        .conversation(conv)
        .unwrap()
        .unwrap()
        .status
}

const ORIGINAL: &[u8] = b"From: Anna <anna@customer.example>\nTo: support@helpdesk.example\nSubject: Broken chair\nDate: Mon, 2 Nov 2026 09:00:00 +0100\nMessage-ID: <chair1@customer.example>\n\nMy chair is broken.\n";

fn send_reply(store: &Store, conv: ConvId, message_id: &str) {
    store
        .write(|tx| {
            pipeline::record_sent(
                tx,
                conv,
                message_id,
                &format!("Re: {} Broken chair", format_tag("#", conv.0)),
                Addr {
                    name: "Support".into(),
                    email: "support@helpdesk.example".into(),
                },
                vec![Addr {
                    name: "Anna".into(),
                    email: "anna@customer.example".into(),
                }],
                1_793_610_000,
            )
        })
        .unwrap();
}

#[test]
fn a_reply_to_a_message_we_sent_threads_by_its_message_id() {
    let t = tmp();
    let dir = open(t.path());
    let conv = conv_of(&dir.store, ingest(&dir.store, ORIGINAL));
    send_reply(&dir.store, conv, "sent-1@helpdesk.example");
    // The customer's answer carries no tag, only In-Reply-To our sent message.
    let answer = b"From: Anna <anna@customer.example>\nTo: support@helpdesk.example\nSubject: Thanks, but\nDate: Mon, 2 Nov 2026 11:00:00 +0100\nMessage-ID: <chair2@customer.example>\nIn-Reply-To: <sent-1@helpdesk.example>\n\nStill broken.\n";
    assert_eq!(conv_of(&dir.store, ingest(&dir.store, answer)), conv);
    let msgs = dir
        .store
        .read()
        .unwrap()
        .conversation_messages(conv)
        .unwrap();
    assert_eq!(msgs.len(), 3);
}

#[test]
fn auto_replies_join_without_reopening_but_customer_replies_reopen() {
    let t = tmp();
    let dir = open(t.path());
    let conv = conv_of(&dir.store, ingest(&dir.store, ORIGINAL));
    send_reply(&dir.store, conv, "sent-2@helpdesk.example");
    set_status(&dir.store, conv, Status::Closed);
    let ooo = b"From: Anna <anna@customer.example>\nTo: support@helpdesk.example\nSubject: Out of office\nDate: Mon, 2 Nov 2026 10:00:00 +0100\nMessage-ID: <ooo@customer.example>\nIn-Reply-To: <sent-2@helpdesk.example>\nAuto-Submitted: auto-replied\n\nAway.\n";
    assert_eq!(conv_of(&dir.store, ingest(&dir.store, ooo)), conv);
    assert_eq!(
        status(&dir.store, conv),
        Status::Closed,
        "an auto-reply must not reopen"
    );
    let human = b"From: Anna <anna@customer.example>\nTo: support@helpdesk.example\nSubject: Re: [#1] Broken chair\nDate: Mon, 2 Nov 2026 12:00:00 +0100\nMessage-ID: <chair3@customer.example>\n\nIt broke again.\n";
    assert_eq!(conv_of(&dir.store, ingest(&dir.store, human)), conv);
    assert_eq!(
        status(&dir.store, conv),
        Status::Active,
        "a customer reply reopens"
    );
}

#[test]
fn a_bounce_of_our_reply_joins_its_conversation_flagged_and_without_reopening() {
    let t = tmp();
    let dir = open(t.path());
    let conv = conv_of(&dir.store, ingest(&dir.store, ORIGINAL));
    send_reply(&dir.store, conv, "sent-3@helpdesk.example");
    set_status(&dir.store, conv, Status::Pending);
    let dsn = b"From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\nTo: support@helpdesk.example\nSubject: Undelivered Mail Returned to Sender\nDate: Mon, 2 Nov 2026 10:05:00 +0100\nMessage-ID: <dsn1@mx.customer.example>\nReturn-Path: <>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\n\n--BB\nContent-Type: text/plain\n\nDelivery failed.\n--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.example\n\nFinal-Recipient: rfc822; anna@customer.example\nAction: failed\nStatus: 5.1.1\n--BB\nContent-Type: text/rfc822-headers\n\nFrom: support@helpdesk.example\nTo: anna@customer.example\nSubject: Re: Broken chair\nMessage-ID: <sent-3@helpdesk.example>\n--BB--\n";
    let raw = ingest(&dir.store, dsn);
    assert_eq!(conv_of(&dir.store, raw), conv);
    let r = dir.store.read().unwrap();
    let m = r
        .message(r.message_of_raw(raw).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert!(m.flags.has(MsgFlags::BOUNCE));
    assert_eq!(status(&dir.store, conv), Status::Pending);
}

#[test]
fn the_tag_prefix_is_configurable() {
    let t = tmp();
    let dir = open(t.path());
    dir.store
        .write(|tx| {
            config::set(tx, "subject_tag_prefix", "Ticket#")
                .map_err(postroom::app::AppError::Setting)
        })
        .unwrap();
    let conv = conv_of(&dir.store, ingest(&dir.store, ORIGINAL));
    let tagged = b"From: Anna <anna@customer.example>\nSubject: AW: [Ticket#1] Broken chair\nMessage-ID: <p1@customer.example>\n\nx\n";
    assert_eq!(conv_of(&dir.store, ingest(&dir.store, tagged)), conv);
    let old_style = b"From: Anna <anna@customer.example>\nSubject: AW: [#1] Broken chair\nMessage-ID: <p2@customer.example>\n\nx\n";
    assert_ne!(
        conv_of(&dir.store, ingest(&dir.store, old_style)),
        conv,
        "[#1] is not a tag under prefix Ticket#"
    );
}

#[test]
fn same_message_id_through_two_accounts_is_one_message_with_two_sources() {
    let t = tmp();
    let dir = open(t.path());
    let first = ingest(&dir.store, ORIGINAL);
    let mut second =
        b"Received: from mx2.helpdesk.example by imap2; Mon, 2 Nov 2026 09:00:05 +0100\n".to_vec();
    second.extend_from_slice(ORIGINAL);
    let second = ingest(&dir.store, &second);
    assert_ne!(first, second, "different bytes are two raws");
    let r = dir.store.read().unwrap();
    assert_eq!(r.message_count().unwrap(), 1);
    let m = r
        .message(r.message_of_raw(second).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(m.raw, first);
    assert_eq!(m.also_raw, vec![second]);
}

#[test]
fn a_reused_message_id_with_other_content_is_kept_apart_with_a_warning() {
    let t = tmp();
    let dir = open(t.path());
    ingest(&dir.store, ORIGINAL);
    let other = b"From: Ben <ben@other.example>\nSubject: Something else\nDate: Tue, 3 Nov 2026 09:00:00 +0100\nMessage-ID: <chair1@customer.example>\n\nx\n";
    let raw = ingest(&dir.store, other);
    let r = dir.store.read().unwrap();
    assert_eq!(r.message_count().unwrap(), 2);
    let m = r
        .message(r.message_of_raw(raw).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        m.warnings.iter().any(|w| w.contains("already used")),
        "{:?}",
        m.warnings
    );
}

//! Import at scale: 10,000 generated messages (`tests/support/genmail.rs`, seed 2) from a
//! Maildir, a shuffled Maildir, a directory of .eml files and an mbox file must all end
//! in exactly the true partition into conversations; importing again adds nothing; a
//! second delivery of a Message-ID is recorded once with two raw sources.
//!
//! The import runs the real binary; the result is read through the library's `Reader`
//! (fast, and independent of how the CLI prints).

// Helpers below are test code too (clippy only exempts `#[test]` functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::genmail::{self, GenOptions, Generator, Kind, Mail, Truth};
use crate::support::{run_ok, tmp, write_file};
use postroom::app::STORE_FILE;
use postroom::model::{MsgFlags, Status};
use postroom::store::{Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

const COUNT: usize = 10_000;
const SEED: u64 = 2;

/// The full mix with small attachments (2-20 KB) to keep disk and time low.
fn options(count: usize) -> GenOptions {
    GenOptions {
        count,
        seed: SEED,
        attach_min: 2_000,
        attach_max: 20_000,
        ..GenOptions::default()
    }
}

/// The 10,000 messages, generated once per test binary.
fn corpus() -> &'static [Mail] {
    static MAILS: OnceLock<Vec<Mail>> = OnceLock::new();
    MAILS.get_or_init(|| Generator::new(options(COUNT)).collect())
}

/// What the store holds after an import.
struct Imported {
    /// Conversations (not merged) as sets of Message-IDs.
    partition: BTreeSet<BTreeSet<String>>,
    /// Message-ID -> (conversation number, flags, attachments).
    messages: BTreeMap<String, (u64, MsgFlags, u32)>,
    /// Conversations that are not merged.
    conversations: usize,
    /// Messages without a Message-ID (there should be none).
    without_id: usize,
}

fn imported(data: &Path) -> Imported {
    let store = Store::open(&data.join(STORE_FILE), &StoreOptions::default()).unwrap();
    let r = store.read().unwrap();
    let mut out = Imported {
        partition: BTreeSet::new(),
        messages: BTreeMap::new(),
        conversations: 0,
        without_id: 0,
    };
    for c in r.conversations().unwrap() {
        let msgs = r.conversation_messages(c.id).unwrap();
        if c.status == Status::Merged {
            assert!(
                msgs.is_empty(),
                "merged conversation #{} still holds messages",
                c.id
            );
            assert_eq!(c.message_count, 0, "merged conversation #{}", c.id);
            continue;
        }
        out.conversations += 1;
        assert_eq!(
            msgs.len() as u32,
            c.message_count,
            "message count of conversation #{}",
            c.id
        );
        // The earliest message names the conversation, whatever the arrival order.
        if let Some(first) = msgs.first() {
            assert_eq!(
                c.subject, first.subject,
                "subject of conversation #{}",
                c.id
            );
            assert_eq!(c.customer, first.from, "customer of conversation #{}", c.id);
        }
        let mut set = BTreeSet::new();
        for m in msgs {
            assert_eq!(
                m.conv, c.id,
                "message {} links to #{} but says #{}",
                m.id, c.id, m.conv
            );
            match m.message_id {
                Some(id) => {
                    out.messages
                        .insert(id.clone(), (c.id.0, m.flags, m.attachments));
                    set.insert(id);
                }
                None => out.without_id += 1,
            }
        }
        out.partition.insert(set);
    }
    out
}

/// Asserts that the store's conversations are exactly the true ones, and explains the
/// first differences in terms of Message-IDs and kinds when they are not.
fn assert_true_partition(got: &Imported, truth: &Truth) {
    assert_eq!(got.without_id, 0, "messages lost their Message-ID");
    assert_eq!(
        got.messages.len(),
        truth.count(),
        "messages stored vs generated"
    );
    let expected = truth.partition();
    if got.partition == expected {
        assert_eq!(got.conversations, truth.conversations());
        return;
    }
    let mut problems = Vec::new();
    for group in expected.iter().filter(|g| !got.partition.contains(*g)) {
        let placed: Vec<String> = group
            .iter()
            .map(|id| {
                let kind = truth.kind_of.get(id).map(|k| k.as_str()).unwrap_or("?");
                match got.messages.get(id) {
                    Some((conv, _, _)) => format!("{kind} <{id}> in #{conv}"),
                    None => format!("{kind} <{id}> missing"),
                }
            })
            .collect();
        problems.push(format!(
            "true conversation split or joined: {}",
            placed.join(", ")
        ));
        if problems.len() >= 5 {
            break;
        }
    }
    panic!(
        "{} conversations imported, {} true ({} new + {} auto-replies); first differences:\n  {}",
        got.conversations,
        truth.conversations(),
        truth.new,
        truth.auto,
        problems.join("\n  ")
    );
}

/// Checks the flags the pipeline gives: every auto-reply is flagged and alone, no
/// customer mail is flagged as automatic, attachments are counted.
fn assert_flags(got: &Imported, truth: &Truth) {
    let mut size_of_conv: BTreeMap<u64, usize> = BTreeMap::new();
    for (conv, _, _) in got.messages.values() {
        *size_of_conv.entry(*conv).or_default() += 1;
    }
    let mut autos = 0;
    for (id, kind) in &truth.kind_of {
        let (conv, flags, _) = got.messages.get(id).unwrap();
        let auto = flags.has(MsgFlags::AUTO_REPLY);
        match kind {
            Kind::Auto => {
                autos += 1;
                assert!(
                    auto,
                    "auto-reply <{id}> is not flagged: {:?}",
                    flags.names()
                );
                assert_eq!(
                    size_of_conv[conv], 1,
                    "auto-reply <{id}> does not stand alone in #{conv}"
                );
            }
            _ => assert!(
                !flags.is_automatic() && !flags.has(MsgFlags::BULK),
                "customer mail <{id}> flagged {:?}",
                flags.names()
            ),
        }
        assert!(
            !flags.has(MsgFlags::UNPARSEABLE) && !flags.has(MsgFlags::NO_DATE),
            "<{id}> flagged {:?}",
            flags.names()
        );
    }
    assert_eq!(autos, truth.auto);
    assert!(
        truth.auto > 100,
        "the corpus should hold auto-replies: {}",
        truth.auto
    );
    let attachments: u64 = got.messages.values().map(|(_, _, a)| u64::from(*a)).sum();
    assert_eq!(attachments, truth.attachments, "attachments counted");
}

/// The figures of the import summary the CLI prints.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    messages: u64,
    stored: u64,
    duplicates: u64,
    same_bytes: u64,
    same_msgid: u64,
    warnings: u64,
    new_conversations: u64,
    joined: u64,
    merged: u64,
}

/// Pulls the numbers out of `postroom import` output, in the order they are printed.
fn summary(out: &str) -> Summary {
    let nums: Vec<u64> = out
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|w| !w.is_empty() && !w.contains('.'))
        .map(|w| w.parse().unwrap())
        .collect();
    // imported M messages from F files in S s (R messages/s)
    //   A stored, D duplicates (B identical bytes, I same Message-ID), W with warnings
    //   N new conversations, J messages joined existing ones, G conversations merged
    let tail = &nums[nums.len() - 9..];
    let s = Summary {
        messages: nums[0],
        stored: tail[1],
        duplicates: tail[2],
        same_bytes: tail[3],
        same_msgid: tail[4],
        warnings: tail[5],
        new_conversations: tail[6],
        joined: tail[7],
        merged: tail[8],
    };
    assert!(
        out.contains(&format!("{} stored, {} duplicates", s.stored, s.duplicates)),
        "{out}"
    );
    s
}

fn import(data: &Path, path: &Path) -> Summary {
    summary(&run_ok(
        data,
        &["import", "--quiet", path.to_str().unwrap()],
    ))
}

#[test]
fn import_of_10k_generated_messages_from_a_maildir_gives_the_true_conversations() {
    let t = tmp();
    let mails = corpus();
    let order: Vec<usize> = (0..mails.len()).collect();
    let truth = genmail::deliver_in_order(&t.path().join("Maildir"), mails, &order).unwrap();
    assert_eq!(truth.count(), COUNT);
    let data = t.path().join("data");
    let s = import(&data, &t.path().join("Maildir"));
    assert_eq!(s.messages, COUNT as u64, "{s:?}");
    assert_eq!(s.stored, COUNT as u64, "{s:?}");
    assert_eq!(s.warnings, 0, "generated mail is well-formed: {s:?}");
    assert_eq!(s.new_conversations, truth.conversations() as u64, "{s:?}");
    assert_eq!(s.merged, 0, "in date order nothing needs merging: {s:?}");
    let got = imported(&data);
    assert_eq!(got.conversations, truth.conversations());
    assert_true_partition(&got, &truth);
    assert_flags(&got, &truth);
}

#[test]
fn import_in_shuffled_order_with_replies_before_originals_converges_to_the_true_conversations() {
    let t = tmp();
    let mails = corpus();
    // Chains by true conversation, in date order.
    let mut chains: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for m in mails {
        chains.entry(m.conv).or_default().push(m.index);
    }
    // A follow-up carries only the last 10 Message-IDs of its chain, so the two ends of a
    // longer chain know nothing of each other: delivered first, they start two
    // conversations that must merge when a message linking them arrives. Everything
    // else arrives in a seeded shuffle.
    let mut order: Vec<usize> = Vec::new();
    for chain in chains.values().filter(|c| c.len() > 11) {
        order.extend([chain[11], chain[0]]);
    }
    let long_chains = order.len() / 2;
    assert!(
        long_chains > 0,
        "the corpus has no conversation of more than 11 messages"
    );
    let pinned: BTreeSet<usize> = order.iter().copied().collect();
    order.extend(
        genmail::permutation(mails.len(), 7)
            .into_iter()
            .filter(|k| !pinned.contains(k)),
    );
    // The premise: many follow-ups arrive before the message they answer.
    let mut rank = vec![0; mails.len()];
    for (r, &k) in order.iter().enumerate() {
        rank[k] = r;
    }
    let early = mails
        .iter()
        .filter(|m| m.kind == Kind::Reply && rank[m.index] < rank[chains[&m.conv][0]])
        .count();
    assert!(
        early > 500,
        "only {early} replies arrive before their original"
    );

    let truth = genmail::deliver_in_order(&t.path().join("Maildir"), mails, &order).unwrap();
    let data = t.path().join("data");
    let s = import(&data, &t.path().join("Maildir"));
    assert_eq!(s.stored, COUNT as u64, "{s:?}");
    assert!(
        s.merged >= long_chains as u64,
        "{long_chains} long chains delivered ends first, but only {} merges: {s:?}",
        s.merged
    );
    // Originals that arrive after their replies join the replies' conversation.
    let store = Store::open(&data.join(STORE_FILE), &StoreOptions::default()).unwrap();
    let late_originals = store
        .read()
        .unwrap()
        .log(usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| e.text.contains("earlier-arrived replies"))
        .count();
    drop(store);
    assert!(
        late_originals > 100,
        "only {late_originals} originals joined their earlier replies"
    );
    let got = imported(&data);
    assert_true_partition(&got, &truth);
    assert_flags(&got, &truth);
}

#[test]
fn importing_the_same_maildir_twice_adds_nothing() {
    let t = tmp();
    let maildir = t.path().join("Maildir");
    let truth = genmail::write_maildir(&maildir, &options(COUNT)).unwrap();
    assert_eq!(
        truth,
        Truth::of(corpus()),
        "streaming and in-memory generation agree"
    );
    let data = t.path().join("data");
    let first = import(&data, &maildir);
    assert_eq!(first.stored, COUNT as u64, "{first:?}");
    let before = imported(&data);
    assert_eq!(before.conversations, truth.conversations());

    let out = run_ok(&data, &["import", "--quiet", maildir.to_str().unwrap()]);
    let second = summary(&out);
    assert_eq!(
        second,
        Summary {
            messages: COUNT as u64,
            duplicates: COUNT as u64,
            same_bytes: COUNT as u64,
            ..Summary::default()
        },
        "second import: {out}"
    );
    assert!(
        out.contains(&format!("  0 stored, {COUNT} duplicates")),
        "{out}"
    );
    let after = imported(&data);
    assert_eq!(after.conversations, before.conversations);
    assert_eq!(after.partition, before.partition);
    let store = Store::open(&data.join(STORE_FILE), &StoreOptions::default()).unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.raw_count().unwrap(), COUNT as u64);
    assert_eq!(r.message_count().unwrap(), COUNT as u64);
    assert_eq!(r.pending_count().unwrap(), 0);
}

#[test]
fn eml_directory_and_mbox_file_give_the_same_conversations_as_the_maildir() {
    let t = tmp();
    let mails = corpus();
    let eml_truth = genmail::eml_dir_from(&t.path().join("eml"), mails).unwrap();
    let mbox = t.path().join("support.mbox");
    let mbox_truth = genmail::mbox_from(&mbox, mails).unwrap();
    assert_eq!(eml_truth, mbox_truth);
    // The mbox really needs its mboxrd escaping: bodies have lines starting "From ".
    let escaped = std::fs::read(&mbox)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b">From "))
        .count();
    assert!(escaped > 100, "only {escaped} escaped From_ lines");

    let eml_data = t.path().join("data-eml");
    let s = import(&eml_data, &t.path().join("eml"));
    assert_eq!(
        (s.messages, s.stored, s.warnings),
        (COUNT as u64, COUNT as u64, 0),
        "{s:?}"
    );
    let from_eml = imported(&eml_data);
    assert_true_partition(&from_eml, &eml_truth);

    let mbox_data = t.path().join("data-mbox");
    let s = import(&mbox_data, &mbox);
    assert_eq!(
        (s.messages, s.stored, s.warnings),
        (COUNT as u64, COUNT as u64, 0),
        "{s:?}"
    );
    let from_mbox = imported(&mbox_data);
    assert_eq!(from_mbox.partition, from_eml.partition);
    assert_true_partition(&from_mbox, &mbox_truth);

    // mboxrd round trip is byte-exact: the mbox adds nothing to the .eml import.
    let again = import(&eml_data, &mbox);
    assert_eq!(
        (again.stored, again.same_bytes),
        (0, COUNT as u64),
        "mbox messages differ from the .eml bytes: {again:?}"
    );
}

#[test]
fn a_second_delivery_of_a_message_id_with_other_bytes_is_one_message_with_two_raw_sources() {
    let t = tmp();
    let mails = &corpus()[..1000];
    let truth = genmail::eml_dir_from(&t.path().join("eml"), mails).unwrap();
    let data = t.path().join("data");
    import(&data, &t.path().join("eml"));
    let before = imported(&data);
    assert_true_partition(&before, &truth);

    // A follow-up in a conversation of several messages, delivered again through a second
    // account: same message, one more Received line.
    let victim = mails.iter().rev().find(|m| m.kind == Kind::Reply).unwrap();
    let conv = before.messages[&victim.message_id].0;
    let mut again = b"Received: from mx2.backup.example (mx2.backup.example [203.0.113.9])\n\tby imap.helpdesk.example with LMTP; Mon, 25 May 2026 10:00:00 +0000\n".to_vec();
    again.extend_from_slice(&victim.bytes);
    let second = write_file(&t.path().join("account2"), "copy.eml", &again);
    let s = import(&data, &second);
    assert_eq!(
        (
            s.stored,
            s.same_bytes,
            s.same_msgid,
            s.new_conversations,
            s.joined
        ),
        (1, 0, 1, 0, 0),
        "{s:?}"
    );

    let after = imported(&data);
    assert_eq!(after.partition, before.partition, "nothing moved");
    let v: serde_json::Value = serde_json::from_str(&run_ok(
        &data,
        &["conversation", &conv.to_string(), "--json"],
    ))
    .unwrap();
    let thread = v["thread"].as_array().unwrap();
    let ours: Vec<&serde_json::Value> = thread
        .iter()
        .filter(|m| m["message_id"] == victim.message_id.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "recorded once: {v:#}");
    let also = ours[0]["also_raw"].as_array().unwrap();
    assert_eq!(also.len(), 1, "second raw source: {v:#}");
    let (raw1, raw2) = (ours[0]["raw"].as_u64().unwrap(), also[0].as_u64().unwrap());
    assert_ne!(raw1, raw2);
    // Both deliveries are kept byte for byte.
    let bytes = |id: u64| {
        let out = crate::support::run(&data, &["raw", &id.to_string()]);
        assert!(out.status.success(), "postroom raw {id}");
        out.stdout
    };
    assert_eq!(bytes(raw1), victim.bytes);
    assert_eq!(bytes(raw2), again);
}

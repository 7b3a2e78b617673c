//! "Parsing never fails": the malformed-mail corpus (`tests/corpus/**/*.eml`) and a set
//! of generated bombs go through the parse stage and through `postroom import` without a
//! panic, a stack overflow or runaway memory, and each one becomes a message whose raw
//! bytes are kept exactly.
//!
//! The bombs are built at test time (never committed): 5,000-deep multipart nesting, a
//! 1 MB header line, NUL bytes everywhere, 8-bit garbage, unknown and lying charsets,
//! 100,000 MIME parts, no headers at all, 1,000-deep `message/rfc822` nesting, 10,000
//! addresses in `To`, 100,000 header lines and an empty message; and the regressions they
//! found (see `pipeline::parse`).

// Helpers below are test code too (clippy only exempts `#[test]` functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::support::{run, run_ok, tmp, write_file};
use postroom::model::{MsgFlags, RawId};
use postroom::pipeline::parse::{Parsed, parse};
use postroom::store::{Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Address space for importing all the bombs (`ulimit -v`). The import peaks at about
/// 60 MB resident and runs under 128 MB of address space; before the parse guards one
/// encoded-forward bomb alone could ask for gigabytes.
const BOMB_IMPORT_MAX_KB: u64 = 512 << 10;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn collect_eml(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_eml(&p, out);
        } else if p.extension().is_some_and(|e| e == "eml") {
            out.push(p);
        }
    }
}

/// Every corpus message as (path relative to the corpus dir, bytes).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = corpus_dir();
    let mut paths = Vec::new();
    collect_eml(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap().display().to_string();
            let bytes = std::fs::read(&p).unwrap();
            (name, bytes)
        })
        .collect()
}

/// What every parse result must satisfy, whatever the input.
fn check_parsed(name: &str, raw: &[u8], p: &Parsed) {
    if p.flags.has(MsgFlags::UNPARSEABLE) {
        assert!(
            !p.warnings.is_empty(),
            "{name}: flagged unparseable without saying why"
        );
        assert!(!p.subject.is_empty(), "{name}: unparseable needs a subject");
    }
    if raw.is_empty() {
        assert!(
            p.warnings.iter().any(|w| w.contains("empty")),
            "{name}: an empty message must say so: {:?}",
            p.warnings
        );
    }
    // Whatever the input, what we keep is bounded (it goes into the store and the UI) and
    // free of control characters (it is printed on terminals).
    let shown = [&p.subject, &p.preview].into_iter().chain(
        p.from
            .iter()
            .chain(&p.to)
            .chain(&p.cc)
            .flat_map(|a| [&a.name, &a.email]),
    );
    for s in shown {
        assert!(
            !s.chars().any(char::is_control),
            "{name}: control character in {s:?}"
        );
    }
    assert!(
        p.subject.chars().count() <= 1001,
        "{name}: subject not clipped"
    );
    assert!(
        p.preview.chars().count() <= 161,
        "{name}: preview not clipped"
    );
    assert!(
        p.to.len() <= 100 && p.cc.len() <= 100,
        "{name}: addresses not capped"
    );
    assert!(p.references.len() <= 100, "{name}: references not capped");
    assert!(
        p.warnings.len() <= 50,
        "{name}: {} warnings",
        p.warnings.len()
    );
    for w in &p.warnings {
        assert!(w.len() <= 2000, "{name}: warning of {} bytes", w.len());
    }
}

#[test]
fn corpus_is_there() {
    let c = corpus();
    let cpython = c.iter().filter(|(n, _)| n.starts_with("cpython")).count();
    let own = c.iter().filter(|(n, _)| n.starts_with("own")).count();
    assert!(cpython >= 45, "only {cpython} CPython messages");
    assert!(own >= 8, "only {own} own messages");
    assert!(
        c.iter().any(|(_, b)| b.is_empty()),
        "the corpus keeps a 0-byte file"
    );
}

#[test]
fn every_corpus_file_parses_into_a_message() {
    for (name, raw) in corpus() {
        let p = parse(&raw);
        check_parsed(&name, &raw, &p);
    }
}

/// Deterministic xorshift, so that a failing mutation can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of MIME syntax that mutations splice in, where parsers have state.
const SPLICES: &[&[u8]] = &[
    b"--",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"\0",
    b":",
    b"=?utf-8?B?",
    b"?=",
    b"=\r\n",
    b"\"",
    b"(",
    b"<",
    b";",
    b"\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n",
    b"\r\nContent-Type: message/rfc822\r\n\r\n",
    b"\r\nContent-Transfer-Encoding: base64\r\n",
    b"\r\nContent-Type: text/plain; charset=\"x-\xff\"\r\n",
    b"\xc3",
    b"\xff\xfe",
];

/// One random edit of `raw`: flip bytes, splice MIME syntax in, cut, repeat a slice, or
/// graft the start of `other` (another corpus file).
fn mutate(rng: &mut Rng, raw: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = raw.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let s = SPLICES[rng.below(SPLICES.len())];
                v.splice(at..at, s.iter().copied());
            }
            2 => v.truncate(at),
            3 if !v.is_empty() => {
                let len = rng.below(64.min(v.len() - at.min(v.len())) + 1);
                let piece: Vec<u8> = v[at.min(v.len())..(at + len).min(v.len())].to_vec();
                for _ in 0..rng.below(50) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            4 => {
                let cut = rng.below(other.len() + 1);
                v.splice(at..at, other[..cut].iter().copied());
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

/// A small, always-on fuzz pass: every corpus file mutated a few dozen ways still parses
/// into a message (cargo-fuzz in `fuzz/` runs the open-ended version).
#[test]
fn mutated_corpus_files_parse_into_messages() {
    let files = corpus();
    let mut rng = Rng(0x5eed_cafe_f00d_beef);
    let mut n = 0;
    for (i, (name, raw)) in files.iter().enumerate() {
        let other = &files[(i * 7 + 3) % files.len()].1;
        for round in 0..MUTATIONS_PER_FILE {
            let m = mutate(&mut rng, raw, other);
            let p = parse(&m);
            check_parsed(&format!("{name} mutation {round}"), &m, &p);
            n += 1;
        }
    }
    eprintln!("{n} mutated messages parsed");
}

/// Mutations per corpus file in the always-on fuzz pass.
const MUTATIONS_PER_FILE: usize = 40;

/// The hand-written files are there for a reason: check that each one is understood
/// as far as it can be, and warned about where it is broken.
#[test]
fn own_corpus_files_are_understood_or_warned_about() {
    let get = |n: &str| {
        let raw = std::fs::read(corpus_dir().join("own").join(n)).unwrap();
        let p = parse(&raw);
        check_parsed(n, &raw, &p);
        p
    };
    let p = get("lying-charset-utf8-is-latin1.eml");
    assert_eq!(p.message_id.as_deref(), Some("lying-1@example.de"));
    assert!(p.subject.starts_with("Rechnung f"), "{:?}", p.subject);
    assert!(
        p.warnings.iter().any(|w| w.contains("8-bit")),
        "{:?}",
        p.warnings
    );

    let p = get("unknown-charset.eml");
    assert_eq!(p.message_id.as_deref(), Some("unknown-charset@example.net"));
    assert!(p.date.is_some());

    let p = get("broken-rfc2047.eml");
    assert_eq!(p.message_id.as_deref(), Some("broken-2047@example.com"));
    assert!(!p.subject.is_empty());

    let p = get("header-without-colon.eml");
    assert_eq!(
        p.from.as_ref().map(|a| a.email.as_str()),
        Some("nocolon@example.com")
    );

    // mail-parser ends lines only at LF; the parse stage reads bare CRs as CRLF.
    let p = get("bare-cr-line-endings.eml");
    assert_eq!(p.subject, "old Mac line endings");
    assert_eq!(p.message_id.as_deref(), Some("bare-cr@example.com"));
    assert_eq!(p.preview, "line one line two");
    assert!(
        p.warnings.iter().any(|w| w.contains("bare CR")),
        "{:?}",
        p.warnings
    );

    let p = get("mixed-line-endings.eml");
    assert!(!p.subject.contains('\r'), "{:?}", p.subject);

    // Regression: the last header of a headers-only message was dropped.
    let p = get("headers-only-no-eol.eml");
    assert_eq!(p.message_id.as_deref(), Some("headers-only@example.com"));
    assert_eq!(p.subject, "no body, no final newline");

    let p = get("unclosed-boundary.eml");
    assert_eq!(p.message_id.as_deref(), Some("unclosed@example.com"));
    assert!(p.preview.contains("text part"), "{:?}", p.preview);

    let p = get("base64-garbage.eml");
    assert_eq!(p.message_id.as_deref(), Some("b64-garbage@example.com"));
    // The encoded word lacks its padding; mail-parser drops the incomplete last group.
    assert!(p.subject.starts_with("Base64 garba"), "{:?}", p.subject);

    let p = get("empty.eml");
    assert!(p.message_id.is_none());

    // Control characters never reach a terminal or a log line.
    let p = get("nul-and-controls.eml");
    assert!(!p.subject.chars().any(char::is_control), "{:?}", p.subject);
    assert!(!p.preview.chars().any(char::is_control), "{:?}", p.preview);
    assert!(
        p.warnings.iter().any(|w| w.contains("control characters")),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("NUL")),
        "{:?}",
        p.warnings
    );

    let p = get("truncated-rfc822.eml");
    assert!(p.flags.has(MsgFlags::BOUNCE));
}

/// The data dir's store, opened by the library once the binary has exited.
fn open_store(data: &Path) -> Store {
    Store::open(
        &data.join(postroom::app::STORE_FILE),
        &StoreOptions::default(),
    )
    .unwrap()
}

/// Checks that every raw in the store became exactly one message (its own or, for a
/// same-Message-ID duplicate, an existing one that lists it), that the raws are exactly
/// `expected` (distinct contents), and returns raw id -> bytes.
fn check_store(data: &Path, expected: &BTreeSet<Vec<u8>>) -> BTreeMap<u64, Vec<u8>> {
    let store = open_store(data);
    let r = store.read().unwrap();
    assert_eq!(
        r.raw_count().unwrap(),
        expected.len() as u64,
        "one raw per distinct content"
    );
    assert_eq!(r.pending_count().unwrap(), 0, "nothing left in the queue");
    let mut stored = BTreeMap::new();
    let mut own_messages = 0u64;
    for id in 1..=r.raw_count().unwrap() {
        let raw = RawId(id);
        let bytes = r
            .raw_bytes(raw)
            .unwrap()
            .unwrap_or_else(|| panic!("raw {id} has no bytes"));
        let msg = r
            .message_of_raw(raw)
            .unwrap()
            .unwrap_or_else(|| panic!("raw {id} did not become a message"));
        let m = r
            .message(msg)
            .unwrap()
            .unwrap_or_else(|| panic!("raw {id}: message {msg} is missing"));
        assert!(
            m.raw == raw || m.also_raw.contains(&raw),
            "raw {id}: message {msg} does not list it"
        );
        if m.raw == raw {
            own_messages += 1;
        }
        assert!(
            r.conversation(m.conv).unwrap().is_some(),
            "raw {id}: message {msg} is in no conversation"
        );
        stored.insert(id, bytes);
    }
    assert_eq!(
        r.message_count().unwrap(),
        own_messages,
        "every message belongs to one raw"
    );
    let stored_set: BTreeSet<Vec<u8>> = stored.values().cloned().collect();
    assert!(
        stored_set == *expected,
        "the stored bytes are not exactly the imported contents"
    );
    stored
}

/// The message a raw became, as `postroom conversation ID --json` shows it.
fn shown_message(data: &Path, raw: u64) -> serde_json::Value {
    let conv = {
        let store = open_store(data);
        let r = store.read().unwrap();
        let msg = r.message_of_raw(RawId(raw)).unwrap().unwrap();
        r.message(msg).unwrap().unwrap().conv
    };
    let conv = conv.0.to_string();
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(data, &["conversation", &conv, "--json"])).unwrap();
    v["thread"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["raw"].as_u64() == Some(raw)
                || m["also_raw"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r.as_u64() == Some(raw)))
        })
        .cloned()
        .unwrap_or_else(|| panic!("raw {raw} is not shown in conversation {conv}: {v}"))
}

#[test]
fn importing_the_corpus_keeps_every_message_byte_exact() {
    let data = tmp();
    let out = run_ok(
        data.path(),
        &["import", "--quiet", corpus_dir().to_str().unwrap()],
    );
    let files = corpus();
    let distinct: BTreeSet<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    assert!(
        out.contains(&format!("imported {} messages", files.len())),
        "{out}"
    );
    let stored = check_store(data.path(), &distinct);

    // Unparseable messages are shown, flagged, with a warning; every message is shown.
    let unparseable: Vec<&u64> = stored
        .keys()
        .filter(|id| {
            let m = shown_message(data.path(), **id);
            let flagged = m["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "unparseable");
            if flagged {
                assert!(!m["warnings"].as_array().unwrap().is_empty(), "{m}");
            }
            flagged
        })
        .collect();
    eprintln!("{} unparseable corpus messages", unparseable.len());

    // `postroom raw` gives back the exact bytes: the empty file, bare CRs, NULs, 8-bit,
    // and every fifth of the rest.
    let special = |b: &[u8]| b.is_empty() || b.contains(&0) || b.contains(&b'\r') || !b.is_ascii();
    for (id, bytes) in &stored {
        if !(special(bytes) || id % 5 == 0) {
            continue;
        }
        let out = run(data.path(), &["raw", &id.to_string()]);
        assert!(out.status.success(), "postroom raw {id} failed");
        assert!(out.stdout == *bytes, "postroom raw {id} changed the bytes");
    }

    // Importing again adds nothing.
    run_ok(
        data.path(),
        &["import", "--quiet", corpus_dir().to_str().unwrap()],
    );
    let store = open_store(data.path());
    assert_eq!(
        store.read().unwrap().raw_count().unwrap(),
        distinct.len() as u64
    );
}

// ---------------------------------------------------------------------------------------
// Bombs
// ---------------------------------------------------------------------------------------

/// A generated hostile message: what its parse must warn about (a substring of one
/// warning each), whether it is flagged unparseable, and further checks.
struct Bomb {
    name: &'static str,
    bytes: Vec<u8>,
    warns: &'static [&'static str],
    unparseable: bool,
    check: fn(&Parsed),
}

const HEAD: &str = "From: bomber@example.com\r\nTo: support@example.org\r\nDate: Mon, 16 Mar 2026 10:00:00 +0000\r\n";

fn deep_multipart(depth: usize) -> Vec<u8> {
    let mut s = format!(
        "{HEAD}Subject: deep multipart\r\nMessage-ID: <deep-multipart@example.com>\r\nMIME-Version: 1.0\r\n"
    );
    for i in 0..depth {
        s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    s.push_str("Content-Type: text/plain\r\n\r\nthe bottom\r\n");
    for i in (0..depth).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

fn deep_rfc822(depth: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..depth {
        s.push_str(&format!(
            "From: level{i}@example.com\r\nSubject: level {i}\r\nMessage-ID: <rfc822-{depth}-{i}@example.com>\r\nContent-Type: message/rfc822\r\n\r\n"
        ));
    }
    s.push_str("From: bottom@example.com\r\nSubject: bottom\r\n\r\nthe bottom\r\n");
    s.into_bytes()
}

fn huge_header_line() -> Vec<u8> {
    let mut v = format!("{HEAD}Message-ID: <huge-line@example.com>\r\nSubject: ").into_bytes();
    v.extend(std::iter::repeat_n(b'x', 1 << 20));
    v.extend_from_slice(b"\r\nX-Also-Long: ");
    v.extend(std::iter::repeat_n(b'=', 1 << 20));
    v.extend_from_slice(b"\r\n\r\nbody\r\n");
    v
}

fn nul_everywhere() -> Vec<u8> {
    let plain = format!(
        "{HEAD}Subject: nul\r\nMessage-ID: <nul@example.com>\r\n\r\n{}",
        "body line\r\n".repeat(2000)
    );
    let mut v = Vec::with_capacity(plain.len() * 2);
    for b in plain.bytes() {
        v.push(b);
        v.push(0);
    }
    v.extend(std::iter::repeat_n(0u8, 64 << 10));
    v
}

/// Deterministic pseudo-random bytes (xorshift), all 256 values.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn eight_bit_garbage() -> Vec<u8> {
    // Garbage that looks like a header block first, then pure noise.
    let mut v = b"Subject: \xff\xfe\x80\x81 garbage \xc3\x28 \xed\xa0\x80\r\nFrom: \xf8\x88\x80\x80\x80@\xc0\xaf\r\n".to_vec();
    let noise = garbage(1 << 20, 0x9e37_79b9_7f4a_7c15);
    v.extend(noise.iter().map(|b| b | 0x80));
    v
}

fn charset_zoo() -> Vec<u8> {
    let mut v = format!(
        "{HEAD}Message-ID: <charsets@example.com>\r\nSubject: =?x-unknown?Q?caf=E9?= =?utf-8?B?/w==?= =?iso-2022-jp?B?GyRCJDMbKEI?= =?utf-16?Q?=00?= =?utf-7?Q?+AGEA-?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n"
    )
    .into_bytes();
    let parts: [(&[u8], &str, &[u8]); 10] = [
        (b"x-unknown-8bit", "8bit", b"\xff\xfe\xfd unknown"),
        (b"utf-8", "8bit", b"latin-1 pretending: \xe9\xe8\xe0"),
        (b"us-ascii", "8bit", b"utf-8 pretending ascii: \xc3\xa9"),
        (b"utf-16", "8bit", b"\xff\xfeodd length\x00\x00\xd8"),
        (b"utf-16be", "base64", b"2D3YPQ=="),
        (b"iso-2022-jp", "7bit", b"\x1b$B broken escape \x1b(Q\x1b"),
        (b"shift_jis", "8bit", b"\x81\x81\x82\xa0\xff\xfe"),
        (b"gb18030", "quoted-printable", b"=81=30=81=FF=FE=FF"),
        (b"", "8bit", b"empty charset \xff"),
        (b"\"\xff\xfe\"", "8bit", b"charset name is garbage"),
    ];
    for (cs, cte, body) in parts {
        v.extend_from_slice(b"--z\r\nContent-Type: text/plain; charset=");
        v.extend_from_slice(cs);
        v.extend_from_slice(b"\r\nContent-Transfer-Encoding: ");
        v.extend_from_slice(cte.as_bytes());
        v.extend_from_slice(b"\r\n\r\n");
        v.extend_from_slice(body);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"--z--\r\n");
    v
}

fn many_parts(n: usize) -> Vec<u8> {
    let mut s = format!(
        "{HEAD}Subject: many parts\r\nMessage-ID: <many-parts@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    s.push_str("--p--\r\n");
    s.into_bytes()
}

fn no_headers() -> Vec<u8> {
    "Hello, this message has no header block at all.\r\nJust text.\r\n"
        .repeat(100)
        .into_bytes()
}

fn many_addresses(n: usize) -> Vec<u8> {
    let to: Vec<String> = (0..n)
        .map(|i| format!("\"Person {i}\" <person{i}@example.com>"))
        .collect();
    format!(
        "From: bomber@example.com\r\nTo: {}\r\nCc: {}\r\nSubject: many addresses\r\nMessage-ID: <many-addresses@example.com>\r\nDate: Mon, 16 Mar 2026 10:00:00 +0000\r\n\r\nbody\r\n",
        to.join(",\r\n "),
        to.join(", ")
    )
    .into_bytes()
}

fn many_header_lines(n: usize) -> Vec<u8> {
    let mut s =
        format!("{HEAD}Subject: many header lines\r\nMessage-ID: <many-headers@example.com>\r\n");
    for i in 0..n {
        s.push_str(&format!("X-Header-{i}: value {i}\r\n"));
        if i % 10 == 0 {
            s.push_str(&format!("Received: from hop{i}.example.com\r\n"));
        }
    }
    s.push_str("\r\nbody\r\n");
    s.into_bytes()
}

/// A forwarded message sent base64-encoded whose text nests `depth` more messages: before
/// the guard, 3,000 levels overflowed the stack in mail-parser and 1,000 took 80 MB.
fn encoded_forward_nest(depth: usize) -> Vec<u8> {
    format!(
        "{HEAD}Subject: encoded forward nest\r\nMessage-ID: <encoded-nest@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nsee the attached mail\r\n--f\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--f--\r\n",
        crate::genmail::base64_crlf(&deep_rfc822(depth))
    )
    .into_bytes()
}

/// A digest (whose parts are messages by default) of base64 parts without a Content-Type.
fn encoded_digest_nest(depth: usize) -> Vec<u8> {
    format!(
        "{HEAD}Subject: encoded digest\r\nMessage-ID: <encoded-digest@example.com>\r\nContent-Type: multipart/digest; boundary=\"d\"\r\n\r\n--d\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--d--\r\n",
        crate::genmail::base64_crlf(&deep_rfc822(depth))
    )
    .into_bytes()
}

/// mail-parser finds a boundary anywhere in a line, so one line can open 200,000 parts.
fn boundaries_in_one_line() -> Vec<u8> {
    format!(
        "{HEAD}Subject: one-line parts\r\nMessage-ID: <one-line@example.com>\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n{}\r\n",
        "--a x".repeat(200_000)
    )
    .into_bytes()
}

fn none(_: &Parsed) {}

fn bombs() -> Vec<Bomb> {
    vec![
        Bomb {
            name: "deep-multipart-5000",
            bytes: deep_multipart(5000),
            warns: &["nested 5000 levels deep"],
            unparseable: false,
            check: |p| {
                assert_eq!(p.message_id.as_deref(), Some("deep-multipart@example.com"));
                assert_eq!(p.preview, "the bottom");
            },
        },
        Bomb {
            name: "header-line-1mb",
            bytes: huge_header_line(),
            warns: &["longer than 998"],
            unparseable: false,
            check: |p| {
                assert_eq!(p.subject.chars().count(), 1001, "clipped to 1000 + '…'");
                assert_eq!(p.preview, "body");
            },
        },
        Bomb {
            name: "nul-everywhere",
            bytes: nul_everywhere(),
            warns: &["NUL"],
            unparseable: false,
            check: none,
        },
        Bomb {
            name: "eight-bit-garbage",
            bytes: eight_bit_garbage(),
            warns: &["8-bit"],
            unparseable: false,
            check: none,
        },
        Bomb {
            name: "charset-zoo",
            bytes: charset_zoo(),
            warns: &[
                "unknown charset \"x-unknown-8bit\"",
                "not valid in its declared charset",
            ],
            unparseable: false,
            check: |p| assert_eq!(p.message_id.as_deref(), Some("charsets@example.com")),
        },
        Bomb {
            name: "parts-100000",
            bytes: many_parts(100_000),
            warns: &["too many MIME parts"],
            unparseable: false,
            check: |p| {
                assert_eq!(p.message_id.as_deref(), Some("many-parts@example.com"));
                assert_eq!(p.preview, "part 0");
            },
        },
        Bomb {
            name: "no-headers",
            bytes: no_headers(),
            warns: &["kept as received"],
            unparseable: true,
            check: |p| assert!(p.preview.starts_with("Hello, this message has no header")),
        },
        Bomb {
            name: "deep-rfc822-1000",
            bytes: deep_rfc822(1000),
            warns: &["nested 1000 levels deep"],
            unparseable: false,
            check: |p| assert_eq!(p.subject, "level 0"),
        },
        Bomb {
            name: "to-10000-addresses",
            bytes: many_addresses(10_000),
            warns: &["To has 10000 addresses", "Cc has 10000 addresses"],
            unparseable: false,
            check: |p| {
                assert_eq!(p.to.len(), 100);
                assert_eq!(p.cc.len(), 100);
                assert_eq!(p.to[0].email, "person0@example.com");
            },
        },
        Bomb {
            name: "header-lines-100000",
            bytes: many_header_lines(100_000),
            warns: &["the header block has"],
            unparseable: false,
            check: |p| {
                assert_eq!(p.subject, "many header lines");
                assert_eq!(p.preview, "body");
            },
        },
        Bomb {
            name: "empty",
            bytes: Vec::new(),
            warns: &["empty"],
            unparseable: true,
            check: none,
        },
        // Regressions found by this corpus (they crashed or ate memory before the guards
        // in `pipeline::parse`).
        Bomb {
            name: "deep-rfc822-20000",
            bytes: deep_rfc822(20_000),
            warns: &["nested 20000 levels deep"],
            unparseable: false,
            check: |p| assert_eq!(p.message_id.as_deref(), Some("rfc822-20000-0@example.com")),
        },
        Bomb {
            name: "deep-rfc822-100000",
            bytes: deep_rfc822(100_000),
            warns: &["too many MIME parts", "levels deep"],
            unparseable: false,
            check: |p| assert_eq!(p.subject, "level 0"),
        },
        Bomb {
            name: "encoded-forward-nest-3000",
            bytes: encoded_forward_nest(3000),
            warns: &["only the headers were read"],
            unparseable: false,
            check: |p| assert_eq!(p.subject, "encoded forward nest"),
        },
        Bomb {
            name: "encoded-digest-nest-200",
            bytes: encoded_digest_nest(200),
            warns: &["only the headers were read"],
            unparseable: false,
            check: |p| assert_eq!(p.subject, "encoded digest"),
        },
        Bomb {
            name: "boundaries-in-one-line",
            bytes: boundaries_in_one_line(),
            warns: &["too many MIME parts"],
            unparseable: false,
            check: |p| assert_eq!(p.preview, "first part"),
        },
    ]
}

fn check_bomb(b: &Bomb, p: &Parsed) {
    check_parsed(b.name, &b.bytes, p);
    for w in b.warns {
        assert!(
            p.warnings.iter().any(|x| x.contains(w)),
            "{}: expected a warning about {w:?}, got {:?}",
            b.name,
            p.warnings
        );
    }
    assert_eq!(
        p.flags.has(MsgFlags::UNPARSEABLE),
        b.unparseable,
        "{}: unparseable flag; warnings {:?}",
        b.name,
        p.warnings
    );
    (b.check)(p);
}

#[test]
fn bombs_parse_directly() {
    for b in bombs() {
        let t = Instant::now();
        let p = parse(&b.bytes);
        eprintln!(
            "{}: {} bytes parsed in {:?}: {:?}",
            b.name,
            b.bytes.len(),
            t.elapsed(),
            p.warnings
        );
        check_bomb(&b, &p);
    }
}

/// Runs `postroom` with its address space capped (`ulimit -v`, in KB): runaway memory
/// makes the import fail instead of swapping the machine to death.
fn run_capped(data: &Path, args: &[&str], max_kb: u64) -> String {
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v \"$0\" 2>/dev/null; exec \"$@\"")
        .arg(max_kb.to_string())
        .arg(crate::support::bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("POSTROOM_DATA")
        .env_remove("POSTROOM_FAILPOINT")
        .env("RUST_LOG", "warn");
    let out = c.output().expect("run postroom under sh");
    assert!(
        out.status.success(),
        "postroom {args:?} under ulimit -v {max_kb} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bombs_import_through_the_binary() {
    let dir = tmp();
    let bombs = bombs();
    for b in &bombs {
        write_file(dir.path(), &format!("{}.eml", b.name), &b.bytes);
    }
    let data = tmp();
    let t = Instant::now();
    let out = run_capped(
        data.path(),
        &["import", "--quiet", dir.path().to_str().unwrap()],
        BOMB_IMPORT_MAX_KB,
    );
    eprintln!("bomb import took {:?}: {out}", t.elapsed());
    assert!(
        out.contains(&format!("imported {} messages", bombs.len())),
        "{out}"
    );
    let expected: BTreeSet<Vec<u8>> = bombs.iter().map(|b| b.bytes.clone()).collect();
    let stored = check_store(data.path(), &expected);
    for (id, bytes) in &stored {
        let b = bombs.iter().find(|b| b.bytes == *bytes).unwrap();
        let m = shown_message(data.path(), *id);
        assert_eq!(
            m["raw"].as_u64(),
            Some(*id),
            "{}: became its own message",
            b.name
        );
        let warnings: Vec<&str> = m["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        for w in b.warns {
            assert!(
                warnings.iter().any(|x| x.contains(w)),
                "{}: expected a warning about {w:?}: {m}",
                b.name
            );
        }
        let flagged = m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "unparseable");
        assert_eq!(flagged, b.unparseable, "{}: {m}", b.name);
    }
    // The biggest bombs come back byte for byte.
    for (id, bytes) in stored.iter().filter(|(_, b)| b.len() > 1 << 20) {
        let out = run(data.path(), &["raw", &id.to_string()]);
        assert!(out.status.success() && out.stdout == *bytes, "raw {id}");
    }
}

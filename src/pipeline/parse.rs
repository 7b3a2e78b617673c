//! Parse stage: any byte string becomes a `Parsed` plus warnings. Never an error, never a
//! panic that escapes: mail-parser runs behind `catch_unwind`, and whatever it cannot make
//! sense of is kept as an "unparseable" message that shows its raw text.
//!
//! Owns: turning raw bytes into the header facts the later stages need, and classifying
//! machine-sent mail (auto-replies, bounces, lists).
//! Must not: touch the store or the network, or decide threading.
//!
//! Hostile mail is bounded before mail-parser sees it (the raw bytes are always kept whole
//! by the store; only what we *read* from them is limited):
//! - **Part count.** mail-parser spends about 1 KB per MIME part and four bytes of input
//!   can open one, so a 4 MB message could take a gigabyte. `shape` counts the markers
//!   parts need (`--` pairs, `Content-Type` names) and mail-parser reads only the bytes
//!   before the one past `MAX_STRUCTURE`.
//! - **Encoded forwarded messages.** mail-parser unpacks a base64/quoted-printable
//!   `message/rfc822` part by parsing it again (three levels deep) and then copies the whole
//!   unpacked text once for every message nested in it, recursively: a 100 KB attachment
//!   nesting 1,000 messages costs 100 MB, and a few thousand overflow the stack.
//!   `check_encoded` measures that first with a parser that unpacks nothing; too costly
//!   means a headers-only parse.
//! - **Deep nesting.** A parsed message is a tree of nested messages whose `Drop` recurses
//!   (20,000 nested `message/rfc822` levels overflowed a 2 MB thread stack); `dismantle`
//!   takes it apart iteratively.
//!
//! And what we keep is fit to show: bare-CR line ends and an unterminated header block are
//! `normalize`d first, fields are clipped, control characters (ESC, NUL, ...) never
//! reach a terminal (`clean`), and odd mail says so in `warnings` (unknown or lying
//! charsets, nesting, address floods, huge header blocks). `tests/it/corpus.rs` holds the
//! corpus and the bombs that keep all of this true; `fuzz/` fuzzes [`parse`].

use crate::model::{Addr, MsgFlags};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Longest subject we keep (characters); hostile mail can carry megabytes.
const MAX_SUBJECT: usize = 1000;
/// Longest Message-ID we keep as an identifier (bytes).
const MAX_MSGID: usize = 2000;
/// How many addresses of one header we keep.
const MAX_ADDRS: usize = 100;
/// How many references we keep (the newest ones).
const MAX_REFS: usize = 100;
/// Bytes of a `text/rfc822-headers` part read for the reported Message-ID.
const MAX_REPORTED_HEADERS: usize = 64 << 10;
/// Characters of body text kept for lists.
const PREVIEW_CHARS: usize = 160;
/// MIME structure markers (`--` pairs and `Content-Type` names) read from one message:
/// roughly 10,000 parts, about 10 MB of parser memory.
const MAX_STRUCTURE: usize = 25_000;
/// Messages nested inside one encoded forwarded message; each costs a copy of it.
const MAX_ENCODED_NESTED: u64 = 100;
/// Bytes mail-parser may copy while unpacking encoded forwarded messages, on top of eight
/// times the message size.
const ENCODED_COPY_BUDGET: u64 = 64 << 20;
/// How many times mail-parser unpacks an encoded forwarded message inside another one
/// (its `MAX_NESTED_ENCODED`).
const ENCODED_LEVELS: u32 = 3;
/// MIME nesting deeper than this gets a warning (real mail stays under ten).
const WARN_DEPTH: u32 = 32;
/// A top-level header block with more lines than this gets a warning.
const WARN_HEADER_LINES: usize = 1000;
/// The names of UTF-8, which mail-parser decodes without a charset decoder.
const UTF8_NAMES: [&str; 6] = [
    "utf-8",
    "utf8",
    "unicode-1-1-utf-8",
    "unicode11utf8",
    "unicode20utf8",
    "x-unicode20utf8",
];

/// What the parse stage learned about one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Message-IDs of mail this one reports on (the original inside a bounce).
    pub reported_ids: Vec<String>,
    pub subject: String,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    /// Unix seconds from `Date:`, if it had a valid one.
    pub date: Option<i64>,
    pub flags: MsgFlags,
    pub attachments: u32,
    pub preview: String,
    pub warnings: Vec<String>,
    /// The `X-Loop` header: a Postroom installation marks its automatic mail with one.
    pub x_loop: Option<String>,
    /// Addresses from `Delivered-To` and `X-Original-To` (the envelope recipients a
    /// server recorded), for dispatch to a mailbox.
    pub delivered_to: Vec<String>,
}

/// How much of a message mail-parser gets to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Headers and body.
    Full,
    /// The top-level headers only: the body would cost too much to take apart.
    HeadersOnly,
}

/// Parses raw bytes. Always returns something usable.
pub fn parse(raw: &[u8]) -> Parsed {
    let mut warnings = scan_raw(raw);
    let norm = normalize(raw, &mut warnings);
    let norm: &[u8] = &norm;
    let shape = shape(norm, MAX_STRUCTURE);
    let (input, plan) = match shape.cut {
        None => (norm, Plan::Full),
        Some(cut) if find_header_end(norm).is_some_and(|end| cut > end) => {
            warnings.push(format!(
                "too many MIME parts (more than {MAX_STRUCTURE} boundaries and part headers); only the first {cut} of {} bytes were read for content",
                raw.len()
            ));
            (norm.get(..cut).unwrap_or(norm), Plan::Full)
        }
        Some(_) => {
            warnings.push(format!(
                "too many MIME parts (more than {MAX_STRUCTURE} boundaries and part headers); only the headers were read"
            ));
            (norm, Plan::HeadersOnly)
        }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut plan = plan;
        let mut notes = Vec::new();
        if plan == Plan::Full
            && let Err(why) = check_encoded(input, &shape)
        {
            notes.push(format!("{why}; only the headers were read"));
            plan = Plan::HeadersOnly;
        }
        let parser = MessageParser::default();
        let m = match plan {
            Plan::Full => parser.parse(input),
            Plan::HeadersOnly => parser.parse_headers(input),
        }?;
        let mut p = from_message(&m);
        notes.append(&mut p.warnings);
        if plan == Plan::Full {
            notes.extend(structure_warnings(&m));
            notes.extend(charset_warnings(&m));
        }
        p.warnings = notes;
        dismantle(m);
        Some(p)
    }));
    let mut parsed = match result {
        Ok(Some(p)) => p,
        Ok(None) => unparseable(raw, "the MIME parser found no message in these bytes"),
        Err(_) => unparseable(raw, "the MIME parser crashed on this message"),
    };
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    if parsed.message_id.is_none() && !parsed.flags.has(MsgFlags::UNPARSEABLE) {
        parsed.warnings.push("no Message-ID header".into());
    }
    if parsed.date.is_none() {
        parsed.flags.set(MsgFlags::NO_DATE);
        if !parsed.flags.has(MsgFlags::UNPARSEABLE) {
            parsed
                .warnings
                .push("no valid Date header; the arrival time is used".into());
        }
    }
    parsed
}

/// Longest body text handed out by `body_text` (quoting, display).
pub const MAX_BODY_TEXT: usize = 256 * 1024;

/// The first text body of a message (the HTML part rendered to text when there is no
/// plain one), under the same guards as `parse`; `None` when there is none or the message
/// is too odd to take apart. Capped at `MAX_BODY_TEXT` bytes.
pub fn body_text(raw: &[u8]) -> Option<String> {
    with_message(raw, |m| {
        m.body_text(0)
            .map(|t| cut_to(t.into_owned(), MAX_BODY_TEXT))
    })
    .flatten()
}

/// Longest HTML body handed to the web view (bytes); longer ones are cut.
pub const MAX_BODY_HTML: usize = 2 * 1024 * 1024;

/// One MIME part an agent can download (or see inline through its Content-ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// mail-parser's part number, stable for the same bytes.
    pub index: u32,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Content-ID without angle brackets.
    pub content_id: Option<String>,
}

/// What the conversation page shows of a message body.
#[derive(Clone, Debug, Default)]
pub struct BodyView {
    pub text: Option<String>,
    pub html: Option<String>,
    pub parts: Vec<PartInfo>,
}

/// Parses `raw` under the same guards as `parse` (normalized, bombs refused, behind
/// `catch_unwind`, taken apart iteratively) and runs `f` on the message; None when the
/// message is too odd to take apart.
fn with_message<T>(raw: &[u8], f: impl FnOnce(&Message<'_>) -> T) -> Option<T> {
    let mut warnings = Vec::new();
    let norm = normalize(raw, &mut warnings);
    let norm: &[u8] = &norm;
    let shape = shape(norm, MAX_STRUCTURE);
    if shape.cut.is_some() || check_encoded(norm, &shape).is_err() {
        return None;
    }
    catch_unwind(AssertUnwindSafe(|| {
        let m = MessageParser::default().parse(norm)?;
        let out = f(&m);
        dismantle(m);
        Some(out)
    }))
    .ok()
    .flatten()
}

fn cut_to(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// `type/subtype` of a part, lower-cased; `application/octet-stream` when it has none.
fn part_type(p: &mail_parser::MessagePart<'_>) -> String {
    p.content_type()
        .map(|c| match c.subtype() {
            Some(st) => format!("{}/{}", c.ctype(), st),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase()
}

/// The text and HTML bodies and the attachments of `raw`.
pub fn body_view(raw: &[u8]) -> Option<BodyView> {
    with_message(raw, |m| {
        let html = m
            .html_body
            .first()
            .and_then(|_| m.body_html(0))
            .filter(|_| {
                // mail-parser makes HTML from a text-only message; only real HTML counts.
                m.html_body.iter().any(|i| {
                    m.part(*i)
                        .is_some_and(|p| matches!(p.body, PartType::Html(_)))
                })
            })
            .map(|h| cut_to(h.into_owned(), MAX_BODY_HTML));
        let text = m
            .body_text(0)
            .map(|t| cut_to(t.into_owned(), MAX_BODY_TEXT));
        let parts = m
            .attachments
            .iter()
            .filter_map(|i| {
                let p = m.part(*i)?;
                let ct = part_type(p);
                Some(PartInfo {
                    index: *i,
                    name: clean(p.attachment_name().unwrap_or("attachment"), 200, &mut false),
                    content_type: ct,
                    size: p.len() as u64,
                    content_id: p
                        .content_id()
                        .map(|c| c.trim().trim_matches(['<', '>']).to_owned()),
                })
            })
            .collect();
        BodyView { text, html, parts }
    })
}

/// The decoded bytes of part `index` of `raw` (an attachment or inline image).
pub fn part_bytes(raw: &[u8], index: u32) -> Option<Vec<u8>> {
    with_message(raw, |m| {
        if !m.attachments.contains(&index) {
            return None;
        }
        m.part(index).map(|p| p.contents().to_vec())
    })
    .flatten()
}

/// Longest header value a postmaster filter sees (characters).
const MAX_FILTER_HEADER: usize = 4000;
/// Most header fields a postmaster filter sees.
const MAX_FILTER_HEADERS: usize = 500;

/// What postmaster filters test (`crate::filters::Mail`): the top-level header fields in
/// order (value unfolded, encoded words decoded, control characters replaced), the text
/// body (at most `MAX_BODY_TEXT` bytes) and the attachments' names. Under the same guards
/// as `parse`; a message too odd to take apart gives its headers only.
pub fn filter_mail(raw: &[u8]) -> crate::filters::Mail {
    let full = with_message(raw, |m| crate::filters::Mail {
        headers: filter_headers(m),
        body: m
            .body_text(0)
            .map(|t| cut_to(t.into_owned(), MAX_BODY_TEXT))
            .unwrap_or_default(),
        attachments: m
            .attachments
            .iter()
            .filter_map(|i| m.part(*i))
            .map(|p| clean(p.attachment_name().unwrap_or(""), 200, &mut false))
            .collect(),
    });
    if let Some(mail) = full {
        return mail;
    }
    let mut warnings = Vec::new();
    let norm = normalize(raw, &mut warnings);
    let norm: &[u8] = &norm;
    let headers = catch_unwind(AssertUnwindSafe(|| {
        let m = MessageParser::default().parse_headers(norm)?;
        let h = filter_headers(&m);
        dismantle(m);
        Some(h)
    }))
    .ok()
    .flatten()
    .unwrap_or_default();
    crate::filters::Mail {
        headers,
        ..Default::default()
    }
}

fn filter_headers(m: &Message<'_>) -> Vec<(String, String)> {
    let Some(top) = m.parts.first() else {
        return Vec::new();
    };
    top.headers
        .iter()
        .take(MAX_FILTER_HEADERS)
        .map(|h| {
            let bytes = m
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let value = match MessageStream::new(bytes).parse_unstructured() {
                HeaderValue::Text(t) => clean(&t, MAX_FILTER_HEADER, &mut false),
                _ => String::new(),
            };
            (clean(h.name.as_str(), 200, &mut false), value)
        })
        .collect()
}

/// One field of a `multipart/form-data` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormPart {
    pub name: String,
    /// Set for file uploads.
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Most fields read from one form.
const MAX_FORM_PARTS: usize = 200;

/// The fields of a `multipart/form-data` body (RFC 7578 is MIME: mail-parser reads it).
pub fn multipart_form(content_type: &str, body: &[u8]) -> Vec<FormPart> {
    if content_type.contains(['\r', '\n']) {
        return Vec::new();
    }
    let mut doc = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
    doc.extend_from_slice(body);
    catch_unwind(AssertUnwindSafe(|| {
        let Some(m) = MessageParser::default().parse(&doc) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in m.parts.iter().skip(1).take(MAX_FORM_PARTS) {
            let Some(cd) = p.content_disposition() else {
                continue;
            };
            let Some(name) = cd.attribute("name") else {
                continue;
            };
            let content_type = part_type(p);
            let bytes = match &p.body {
                PartType::Text(t) | PartType::Html(t) => t.as_bytes().to_vec(),
                PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
                _ => p.contents().to_vec(),
            };
            out.push(FormPart {
                name: name.to_owned(),
                filename: cd.attribute("filename").map(|f| clean(f, 200, &mut false)),
                content_type,
                bytes,
            });
        }
        dismantle(m);
        out
    }))
    .unwrap_or_default()
}

/// The bytes as mail-parser should read them. Line ends that are all bare CR (old Mac
/// mail) become CRLF, since mail-parser only ends lines at LF; a header block that runs to
/// the end of the message is closed with a blank line, since mail-parser drops an
/// unterminated last header (a headers-only message loses its last header, often the
/// Message-ID).
fn normalize<'a>(raw: &'a [u8], warnings: &mut Vec<String>) -> Cow<'a, [u8]> {
    let mut out = Cow::Borrowed(raw);
    if !raw.contains(&b'\n') && raw.contains(&b'\r') {
        let mut v = Vec::with_capacity(raw.len() + raw.len() / 16);
        for &b in raw {
            v.push(b);
            if b == b'\r' {
                v.push(b'\n');
            }
        }
        warnings.push("lines end in a bare CR (old Mac format); they were read as CRLF".into());
        out = Cow::Owned(v);
    }
    if starts_with_header_field(&out) && find_header_end(&out).is_none() {
        out.to_mut().extend_from_slice(b"\r\n\r\n");
    }
    out
}

/// Whether the first line looks like `Name: value` (a name of printable ASCII).
fn starts_with_header_field(bytes: &[u8]) -> bool {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    match line.iter().position(|b| *b == b':') {
        Some(colon) => {
            let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
            !name.is_empty() && name.iter().all(|b| (33..=126).contains(b))
        }
        None => false,
    }
}

/// Cheap byte-level checks that mail-parser does not report.
fn scan_raw(raw: &[u8]) -> Vec<String> {
    let mut w = Vec::new();
    if raw.is_empty() {
        w.push("the message is empty (0 bytes)".into());
        return w;
    }
    if raw.contains(&0) {
        w.push("contains NUL bytes".into());
    }
    let header_end = find_header_end(raw).unwrap_or(raw.len());
    let head = raw.get(..header_end).unwrap_or(raw);
    let mut lines = 0usize;
    let mut long_line = false;
    for l in head.split(|b| *b == b'\n') {
        lines += 1;
        long_line |= l.len() > 998;
    }
    if long_line {
        w.push("a header line is longer than 998 characters (RFC 5322 limit)".into());
    }
    if lines > WARN_HEADER_LINES {
        w.push(format!(
            "the header block has {lines} lines; mail rarely has more than a hundred"
        ));
    }
    if std::str::from_utf8(head).is_err() {
        w.push("headers contain raw 8-bit bytes that are not UTF-8".into());
    }
    w
}

fn find_header_end(raw: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = raw.get(i..)?.iter().position(|b| *b == b'\n') {
        let line_start = i + pos + 1;
        match raw.get(line_start..) {
            Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => return Some(line_start),
            Some(_) => i = line_start,
            None => return None,
        }
    }
    None
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some(first) = needle.first().map(u8::to_ascii_lowercase) else {
        return true;
    };
    hay.iter().enumerate().any(|(i, b)| {
        b.to_ascii_lowercase() == first && hay.get(i..).is_some_and(|h| starts_with_ci(h, needle))
    })
}

/// The end of a header value that starts at `from`: the first line end not followed by
/// folding white space (as mail-parser unfolds).
fn header_value_end(raw: &[u8], from: usize) -> usize {
    let mut j = from;
    while let Some(p) = raw
        .get(j..)
        .and_then(|r| r.iter().position(|b| *b == b'\n'))
    {
        let nl = j + p;
        match raw.get(nl + 1) {
            Some(b' ' | b'\t') => j = nl + 1,
            _ => return nl,
        }
    }
    raw.len()
}

/// What one pass over raw bytes tells about the work mail-parser will do with them.
#[derive(Debug, Default)]
struct Shape {
    /// MIME structure markers: `--` pairs (every boundary starts with one, and mail-parser
    /// finds boundaries anywhere in a line) and `Content-Type` names (every nested message
    /// needs one).
    markers: usize,
    /// Where the marker past the limit starts: mail-parser should read only the bytes
    /// before it, so that the parts before still end at their boundary.
    cut: Option<usize>,
    /// A `Content-Type` value mentions `message` or `digest` (a digest's parts are
    /// messages by default): without one, mail-parser nests no message.
    nests: bool,
    /// `base64`, `quoted-printable` or an RFC 2047 word (which could spell either) occurs;
    /// only looked for when `nests`.
    encodes: bool,
}

/// One pass over `bytes` (up to the marker past `max_markers`). Only `-` and line feeds
/// stop the scan (base64 has neither `-` nor long lines, so encoded attachments fly by);
/// `Content-Type` counts where a header name can stand: at the start of a line.
fn shape(bytes: &[u8], max_markers: usize) -> Shape {
    let mut sh = Shape::default();
    let mut values_seen_to = 0usize;
    let mut i = 0usize;
    let mut at_line_start = true;
    loop {
        let rest = bytes.get(i..).unwrap_or_default();
        if rest.first() == Some(&b'\n') {
            i += 1;
            at_line_start = true;
            continue;
        }
        let marker = if rest.starts_with(b"--") {
            2
        } else if at_line_start && starts_with_ci(rest, b"content-type") {
            let start = i + b"content-type".len();
            if !sh.nests && start >= values_seen_to {
                let end = header_value_end(bytes, start);
                let value = bytes.get(start..end).unwrap_or_default();
                sh.nests = contains_ci(value, b"message") || contains_ci(value, b"digest");
                values_seen_to = end;
            }
            b"content-type".len()
        } else {
            match rest.iter().skip(1).position(|b| *b == b'-' || *b == b'\n') {
                Some(at) => {
                    i += at + 1;
                    at_line_start = false;
                    if bytes.get(i) == Some(&b'\n') {
                        i += 1;
                        at_line_start = true;
                    }
                    continue;
                }
                None => break,
            }
        };
        if sh.markers == max_markers {
            sh.cut = Some(i);
            break;
        }
        sh.markers += 1;
        i += marker;
        at_line_start = false;
    }
    if sh.nests {
        let read = bytes.get(..sh.cut.unwrap_or(bytes.len())).unwrap_or(bytes);
        sh.encodes = contains_ci(read, b"base64")
            || contains_ci(read, b"quoted-printable")
            || read.windows(2).any(|w| w == b"=?");
    }
    sh
}

/// How a part's body is transfer-encoded, when mail-parser would decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoded {
    Base64,
    QuotedPrintable,
}

/// What [`probe`] found in one parsed message (and the messages nested in it as text).
#[derive(Default)]
struct Forwarded<'c> {
    /// Messages nested as plain text: mail-parser copies the unpacked text once for each.
    nested: u64,
    /// Bodies of encoded forwarded messages, which mail-parser unpacks and parses again.
    encoded: Vec<(Encoded, &'c [u8])>,
}

/// What unpacking encoded forwarded messages would cost, summed over all of them.
struct Cost {
    copied: u64,
    budget: u64,
    parts: usize,
}

/// A parser that reads the MIME structure but decodes no transfer encoding, so it never
/// unpacks a forwarded message: `Content-Transfer-Encoding` is read as a date, which is
/// never the text "base64".
fn probe_parser() -> MessageParser {
    MessageParser::new()
        .header_content_type(HeaderName::ContentType)
        .header_date(HeaderName::ContentTransferEncoding)
}

/// Checks that mail-parser can unpack the encoded forwarded messages in `raw` (if any)
/// without copying absurd amounts or recursing too deep; `Err` says why not.
fn check_encoded(raw: &[u8], shape: &Shape) -> Result<(), String> {
    // An encoded forwarded message needs a `message/...` type (or a digest) and a transfer
    // encoding: most mail has no such part and is not probed.
    if !(shape.nests && shape.encodes) {
        return Ok(());
    }
    let mut cost = Cost {
        copied: 0,
        budget: ENCODED_COPY_BUDGET.saturating_add((raw.len() as u64).saturating_mul(8)),
        parts: 0,
    };
    probe(raw, ENCODED_LEVELS, true, &mut cost)
}

/// Measures what mail-parser will do with `content` when it parses it `levels` levels
/// above its limit for unpacking; `top` is the message itself, which mail-parser borrows
/// instead of copying.
fn probe(content: &[u8], levels: u32, top: bool, cost: &mut Cost) -> Result<(), String> {
    if !top {
        let sh = shape(content, MAX_STRUCTURE.saturating_sub(cost.parts));
        if sh.cut.is_some() {
            return Err(format!(
                "the forwarded messages inside encoded parts have more than {MAX_STRUCTURE} MIME boundaries and part headers"
            ));
        }
        cost.parts += sh.markers;
        if !sh.nests {
            return Ok(()); // nothing nested, nothing copied
        }
    }
    let Some(m) = probe_parser().parse(content) else {
        return Ok(());
    };
    let found = find_forwarded(&m, content);
    dismantle(m);
    if !top {
        if found.nested > MAX_ENCODED_NESTED {
            return Err(format!(
                "an encoded forwarded message nests {} more messages (at most {MAX_ENCODED_NESTED} are unpacked)",
                found.nested
            ));
        }
        cost.copied = cost
            .copied
            .saturating_add(found.nested.saturating_mul(content.len() as u64));
        if cost.copied > cost.budget {
            return Err(format!(
                "unpacking the encoded forwarded messages would copy more than {} MB",
                cost.budget >> 20
            ));
        }
    }
    if levels == 0 {
        return Ok(()); // mail-parser keeps deeper encoded messages as attachments
    }
    for (enc, body) in found.encoded {
        let decoded = match enc {
            Encoded::Base64 => decode_base64(body),
            Encoded::QuotedPrintable => decode_qp(body),
        };
        probe(&decoded, levels - 1, false, cost)?;
    }
    Ok(())
}

/// Walks a message parsed by [`probe_parser`] (and the messages nested in it as text),
/// counting nested messages and collecting the bodies of encoded forwarded messages.
fn find_forwarded<'c>(m: &Message<'_>, content: &'c [u8]) -> Forwarded<'c> {
    let mut found = Forwarded::default();
    let mut stack = vec![m];
    while let Some(msg) = stack.pop() {
        // Parts of a multipart/digest without a Content-Type are messages. Where the
        // structure is broken the parent is unclear: then any such part may be one.
        let digest = msg.parts.iter().any(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("multipart")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
            })
        });
        for part in &msg.parts {
            let is_message = match part.content_type() {
                Some(ct) => {
                    ct.ctype().eq_ignore_ascii_case("message")
                        && ct.subtype().is_some_and(|s| {
                            s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
                        })
                }
                None => digest,
            };
            if is_message && let Some(enc) = transfer_encoding(part, content) {
                let (start, end) = (part.offset_body as usize, part.offset_end as usize);
                let body = content
                    .get(start..end)
                    .filter(|b| !b.is_empty())
                    .or_else(|| content.get(start..))
                    .unwrap_or_default();
                found.encoded.push((enc, body));
                continue;
            }
            if let PartType::Message(inner) = &part.body {
                found.nested += 1;
                stack.push(inner);
            }
        }
    }
    found
}

/// The transfer encoding mail-parser would decode for `part`: its header value read the
/// way mail-parser reads it (RFC 2047 words included).
fn transfer_encoding(part: &mail_parser::MessagePart<'_>, content: &[u8]) -> Option<Encoded> {
    part.headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentTransferEncoding)
        .find_map(|h| {
            let value = content.get(h.offset_start as usize..h.offset_end as usize)?;
            match MessageStream::new(value).parse_unstructured() {
                HeaderValue::Text(t) if t.trim().eq_ignore_ascii_case("base64") => {
                    Some(Encoded::Base64)
                }
                HeaderValue::Text(t) if t.trim().eq_ignore_ascii_case("quoted-printable") => {
                    Some(Encoded::QuotedPrintable)
                }
                _ => None,
            }
        })
}

/// Base64 as mail-parser decodes a MIME body: whitespace skipped, `=` ends a group, and
/// `--` (a boundary) or any other byte ends the body.
fn decode_base64(body: &[u8]) -> Vec<u8> {
    fn flush(out: &mut Vec<u8>, acc: u32, n: u8) {
        match n {
            2 => out.push((acc >> 4) as u8),
            3 => out.extend([(acc >> 10) as u8, (acc >> 2) as u8]),
            4 => out.extend([(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let mut acc = 0u32;
    let mut n = 0u8;
    let mut prev = 0u8;
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                flush(&mut out, acc, n);
                (acc, n, prev) = (0, 0, c);
                continue;
            }
            b'\r' | b'\n' | b' ' | b'\t' => {
                prev = c;
                continue;
            }
            b'-' if prev != b'-' => {
                prev = c;
                continue;
            }
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            flush(&mut out, acc, n);
            (acc, n) = (0, 0);
        }
        prev = c;
    }
    flush(&mut out, acc, n);
    out
}

/// Quoted-printable: `=XX` is a byte, `=` at a line end joins lines, anything else stays.
fn decode_qp(body: &[u8]) -> Vec<u8> {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&c) = body.get(i) {
        if c == b'=' {
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(a), Some(b)) = (hex(a), hex(b)) {
                        out.push(a << 4 | b);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Drops a parsed message without recursion: mail-parser nests forwarded messages as
/// values, so the derived `Drop` recurses once per level and 20,000 levels overflow a
/// 2 MB thread stack.
fn dismantle(m: Message<'_>) {
    let mut stack = vec![m];
    while let Some(mut msg) = stack.pop() {
        for part in &mut msg.parts {
            if matches!(part.body, PartType::Message(_)) {
                let body = std::mem::replace(&mut part.body, PartType::Binary(Cow::Borrowed(&[])));
                if let PartType::Message(inner) = body {
                    stack.push(inner);
                }
            }
        }
    }
}

/// Warnings about the shape of a fully parsed message: nesting depth.
fn structure_warnings(m: &Message<'_>) -> Vec<String> {
    let mut deepest = 0u32;
    let mut stack = vec![(m, 0u32)];
    while let Some((msg, base)) = stack.pop() {
        // Part ids grow from parents to children, so one pass in id order sees every
        // parent's depth before its children.
        let mut depth = vec![base; msg.parts.len()];
        for (i, part) in msg.parts.iter().enumerate() {
            let d = depth.get(i).copied().unwrap_or(base);
            deepest = deepest.max(d);
            match &part.body {
                PartType::Multipart(children) => {
                    for &c in children {
                        let c = c as usize;
                        if c > i
                            && let Some(slot) = depth.get_mut(c)
                        {
                            *slot = (*slot).max(d + 1);
                        }
                    }
                }
                PartType::Message(inner) => stack.push((inner, d + 1)),
                _ => {}
            }
        }
    }
    let mut w = Vec::new();
    if deepest > WARN_DEPTH {
        w.push(format!(
            "MIME parts are nested {deepest} levels deep; mail rarely goes past ten"
        ));
    }
    w
}

/// Warnings about text that could not be decoded as its charset says.
fn charset_warnings(m: &Message<'_>) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let mut replaced = false;
    for part in &m.parts {
        let (PartType::Text(text) | PartType::Html(text)) = &part.body else {
            continue;
        };
        if let Some(cs) = part.content_type().and_then(|ct| ct.attribute("charset")) {
            let name = cs.trim();
            let known = charset_decoder(name.as_bytes()).is_some()
                || UTF8_NAMES.iter().any(|u| name.eq_ignore_ascii_case(u));
            let name = clip_chars(name, 40);
            if !known && unknown.len() < 3 && !unknown.contains(&name) {
                unknown.push(name);
            }
        }
        replaced |= text.contains('\u{FFFD}');
    }
    let mut w = Vec::new();
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
        w.push(format!(
            "unknown charset {}; the text is shown as UTF-8",
            names.join(", ")
        ));
    }
    // U+FFFD that the sender did not write: bytes that are not valid in the declared charset.
    if replaced && !m.raw_message.windows(3).any(|x| x == "\u{FFFD}".as_bytes()) {
        w.push(
            "some text is not valid in its declared charset; the unreadable characters are shown as \u{FFFD}"
                .into(),
        );
    }
    w
}

fn unparseable(raw: &[u8], why: &str) -> Parsed {
    let mut flags = MsgFlags::default();
    flags.set(MsgFlags::UNPARSEABLE);
    let text = String::from_utf8_lossy(raw.get(..4096).unwrap_or(raw));
    Parsed {
        subject: "(message could not be parsed)".into(),
        preview: clean(
            text.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .as_str(),
            PREVIEW_CHARS,
            &mut false,
        ),
        flags,
        warnings: vec![format!("{why}; the raw message is kept as received")],
        ..Parsed::default()
    }
}

/// `s` trimmed and clipped to `max` characters, with control characters replaced: line
/// breaks and tabs by a space, the others (NUL, ESC, ...) by U+FFFD, so that no terminal
/// or log line is steered by mail. Sets `replaced` when it replaced one of the others.
fn clean(s: &str, max: usize, replaced: &mut bool) -> String {
    let clipped = clip_chars(s.trim(), max);
    if !clipped.chars().any(char::is_control) {
        return clipped;
    }
    clipped
        .chars()
        .map(|c| match c {
            '\t' | '\r' | '\n' => ' ',
            c if c.is_control() => {
                *replaced = true;
                '\u{FFFD}'
            }
            c => c,
        })
        .collect()
}

fn clip_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or(s)),
        None => s.to_owned(),
    }
}

/// Strips angle brackets and whitespace from a Message-ID; empty or oversized ids are
/// not identifiers.
pub fn clean_msgid(s: &str) -> Option<String> {
    let t = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if t.is_empty() || t.len() > MAX_MSGID || t.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        None
    } else {
        Some(t.to_owned())
    }
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(clean_msgid).collect(),
        HeaderValue::TextList(l) => l
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(clean_msgid)
            .collect(),
        _ => Vec::new(),
    };
    out.dedup();
    if out.len() > MAX_REFS {
        out.drain(..out.len() - MAX_REFS);
    }
    out
}

fn addrs(a: Option<&Address<'_>>, replaced: &mut bool) -> Vec<Addr> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .take(MAX_ADDRS)
        .map(|x| Addr {
            name: clean(x.name().unwrap_or(""), 200, replaced),
            email: clean(x.address().unwrap_or(""), 320, replaced),
        })
        .filter(|x| !x.name.is_empty() || !x.email.is_empty())
        .collect()
}

fn header_text<'a>(m: &'a Message<'_>, name: &'a str) -> Option<&'a str> {
    m.header(name).and_then(|v| match v {
        HeaderValue::Text(t) => Some(t.as_ref()),
        HeaderValue::TextList(l) => l.first().map(|t| t.as_ref()),
        _ => None,
    })
}

fn from_message(m: &Message<'_>) -> Parsed {
    let mut warnings = Vec::new();
    let message_id = m.message_id().and_then(clean_msgid);
    let date = m.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp());
    if m.date().is_some() && date.is_none() {
        warnings.push("the Date header is not a valid date".into());
    }
    let mut replaced = false;
    let subject = m
        .subject()
        .map(|s| clean(s, MAX_SUBJECT, &mut replaced))
        .unwrap_or_default();
    let from = addrs(m.from(), &mut replaced).into_iter().next();
    if from.is_none() {
        warnings.push("no usable From address".into());
    }
    for (name, a) in [("To", m.to()), ("Cc", m.cc())] {
        let n = a.map_or(0, |a| a.iter().count());
        if n > MAX_ADDRS {
            warnings.push(format!(
                "{name} has {n} addresses; only the first {MAX_ADDRS} are kept"
            ));
        }
    }
    let flags = classify(m);
    let reported_ids = if flags.has(MsgFlags::BOUNCE) {
        reported_message_ids(m)
    } else {
        Vec::new()
    };
    let preview = m
        .body_preview(PREVIEW_CHARS * 2)
        .map(|p| {
            clean(
                p.split_whitespace().collect::<Vec<_>>().join(" ").as_str(),
                PREVIEW_CHARS,
                &mut replaced,
            )
        })
        .unwrap_or_default();
    let to = addrs(m.to(), &mut replaced);
    let cc = addrs(m.cc(), &mut replaced);
    if replaced {
        warnings.push(
            "control characters (such as NUL or ESC) in the subject, addresses or preview are shown as \u{FFFD}"
                .into(),
        );
    }
    Parsed {
        message_id,
        in_reply_to: id_list(m.in_reply_to()),
        references: id_list(m.references()),
        reported_ids,
        subject,
        from,
        to,
        cc,
        date,
        flags,
        attachments: u32::try_from(m.attachment_count()).unwrap_or(u32::MAX),
        preview,
        warnings,
        x_loop: header_text(m, "X-Loop").map(|v| v.trim().to_owned()),
        delivered_to: envelope_recipients(m),
    }
}

fn envelope_recipients(m: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["Delivered-To", "X-Original-To"] {
        for v in m.header_values(name) {
            let texts: Vec<&str> = match v {
                HeaderValue::Text(t) => vec![t.as_ref()],
                HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
                _ => Vec::new(),
            };
            for t in texts {
                let a = t
                    .trim()
                    .trim_matches(['<', '>'])
                    .trim()
                    .to_ascii_lowercase();
                if a.contains('@') && a.len() < 320 && !out.contains(&a) && out.len() < 20 {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Recognises mail sent by machines: RFC 3834 auto-replies, vendor auto-reply headers,
/// bulk precedence, delivery reports (bounces), and mailing lists.
fn classify(m: &Message<'_>) -> MsgFlags {
    let mut f = MsgFlags::default();
    if let Some(v) = header_text(m, "Auto-Submitted")
        && !v.trim().eq_ignore_ascii_case("no")
        && !v.trim().is_empty()
    {
        f.set(MsgFlags::AUTO_REPLY);
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Auto-Response-Suppress",
        "X-Autogenerated",
    ] {
        if header_text(m, name).is_some_and(|v| !v.trim().is_empty()) {
            f.set(MsgFlags::AUTO_REPLY);
        }
    }
    if let Some(p) = header_text(m, "Precedence") {
        match p.trim().to_ascii_lowercase().as_str() {
            "bulk" | "junk" => f.set(MsgFlags::BULK),
            "list" => f.set(MsgFlags::LIST),
            "auto_reply" | "auto-reply" => f.set(MsgFlags::AUTO_REPLY),
            _ => {}
        }
    }
    if !m.list_id().is_empty() {
        f.set(MsgFlags::LIST);
    }
    let is_report = m.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    let from_daemon = m
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .is_some_and(|a| {
            let local = a.split('@').next().unwrap_or("").to_ascii_lowercase();
            local == "mailer-daemon" || local == "postmaster"
        });
    if is_report || from_daemon {
        f.set(MsgFlags::BOUNCE);
    } else if return_path_is_null(m) {
        // RFC 3834 section 3.3: automatic responses go out with a null sender.
        f.set(MsgFlags::AUTO_REPLY);
    }
    f
}

fn return_path_is_null(m: &Message<'_>) -> bool {
    match m.return_path() {
        HeaderValue::Text(t) => t
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .is_empty(),
        HeaderValue::TextList(l) => l.iter().any(|t| {
            t.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .is_empty()
        }),
        HeaderValue::Empty => m.header_raw("Return-Path").is_some_and(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .is_empty()
        }),
        _ => false,
    }
}

/// The Message-IDs of the original mail quoted inside a delivery report
/// (`message/rfc822` or `text/rfc822-headers` parts).
fn reported_message_ids(m: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for part in m.parts.iter().skip(1).take(50) {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(id) = inner.message_id().and_then(clean_msgid) {
                    out.push(id);
                }
            }
            PartType::Text(t) | PartType::Html(t)
                if part.content_type().is_some_and(|ct| {
                    ct.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                }) =>
            {
                // The part ends where its boundary starts, usually right after the last
                // header: without the blank line mail-parser drops the unterminated block.
                let text = t.as_bytes();
                let mut block = text.get(..MAX_REPORTED_HEADERS).unwrap_or(text).to_vec();
                block.extend_from_slice(b"\r\n\r\n");
                let h = MessageParser::default().parse_headers(&block);
                if let Some(id) = h
                    .as_ref()
                    .and_then(|h| h.message_id().and_then(clean_msgid))
                {
                    out.push(id);
                }
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_is_understood() {
        let p = parse(b"From: Anna <anna@example.com>\r\nTo: support@example.org\r\nSubject: Hi\r\nMessage-ID: <a1@example.com>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nReferences: <r1@x> <r2@x>\r\nIn-Reply-To: <r2@x>\r\n\r\nHello there\r\n");
        assert_eq!(p.message_id.as_deref(), Some("a1@example.com"));
        assert_eq!(p.subject, "Hi");
        assert_eq!(
            p.from.as_ref().map(|a| a.email.as_str()),
            Some("anna@example.com")
        );
        assert_eq!(p.references, vec!["r1@x", "r2@x"]);
        assert_eq!(p.in_reply_to, vec!["r2@x"]);
        assert_eq!(p.date, Some(1_795_341_600));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.flags, MsgFlags::default());
        assert_eq!(p.preview, "Hello there");
    }

    #[test]
    fn machine_mail_is_flagged() {
        let ar = parse(
            b"From: a@b.c\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nx",
        );
        assert!(ar.flags.has(MsgFlags::AUTO_REPLY));
        let no = parse(b"From: a@b.c\r\nAuto-Submitted: no\r\nSubject: x\r\n\r\nx");
        assert!(!no.flags.has(MsgFlags::AUTO_REPLY));
        let bulk = parse(b"From: a@b.c\r\nPrecedence: bulk\r\n\r\nx");
        assert!(bulk.flags.has(MsgFlags::BULK));
        let list = parse(b"From: a@b.c\r\nList-Id: <dev.lists.example>\r\n\r\nx");
        assert!(list.flags.has(MsgFlags::LIST));
        let null = parse(b"Return-Path: <>\r\nFrom: a@b.c\r\n\r\nx");
        assert!(null.flags.has(MsgFlags::AUTO_REPLY));
        let xar = parse(b"From: a@b.c\r\nX-Auto-Response-Suppress: All\r\n\r\nx");
        assert!(xar.flags.has(MsgFlags::AUTO_REPLY));
    }

    #[test]
    fn bounce_names_the_original() {
        let dsn = b"From: MAILER-DAEMON@mx.example\r\nTo: support@helpdesk.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@helpdesk.example\r\nMessage-ID: <reply-77@helpdesk.example>\r\nSubject: Re: [#4] Help\r\n--B--\r\n";
        let p = parse(dsn);
        assert!(p.flags.has(MsgFlags::BOUNCE));
        assert_eq!(p.reported_ids, vec!["reply-77@helpdesk.example"]);
    }

    /// Regression: the reported headers end where the boundary starts, so the last header
    /// (here the Message-ID) has no blank line after it and was dropped.
    #[test]
    fn bounce_whose_last_reported_header_is_the_message_id() {
        let dsn = b"From: MAILER-DAEMON@mx.example\nSubject: Undelivered\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\n\n--BB\nContent-Type: text/plain\n\nDelivery failed.\n--BB\nContent-Type: text/rfc822-headers\n\nFrom: support@helpdesk.example\nSubject: Re: Broken chair\nMessage-ID: <sent-3@helpdesk.example>\n--BB--\n";
        assert_eq!(parse(dsn).reported_ids, vec!["sent-3@helpdesk.example"]);
    }

    #[test]
    fn bare_cr_and_unterminated_headers_are_read() {
        let p = parse(b"From: a@example.com\rSubject: old Mac\rMessage-ID: <cr@x>\r\rbody\r");
        assert_eq!(p.subject, "old Mac");
        assert_eq!(p.message_id.as_deref(), Some("cr@x"));
        assert_eq!(p.preview, "body");
        assert!(
            p.warnings.iter().any(|w| w.contains("bare CR")),
            "{:?}",
            p.warnings
        );
        // Regression: the last header of a headers-only message was dropped.
        let p = parse(b"From: a@example.com\r\nSubject: s\r\nMessage-ID: <last@x>");
        assert_eq!(p.message_id.as_deref(), Some("last@x"));
        assert_eq!(p.subject, "s");
    }

    #[test]
    fn control_characters_do_not_reach_terminals() {
        let p = parse(b"From: \"Eve\x1b]0;pwned\x07\" <eve@example.com>\r\nSubject: red \x1b[31malert\x00\r\n\r\nbody\x00\x08 text\r\n");
        assert_eq!(p.subject, "red \u{FFFD}[31malert\u{FFFD}");
        assert!(!p.preview.chars().any(char::is_control), "{:?}", p.preview);
        let from = p.from.unwrap_or_default();
        assert!(!from.name.chars().any(char::is_control), "{from:?}");
        assert!(
            p.warnings.iter().any(|w| w.contains("control characters")),
            "{:?}",
            p.warnings
        );
        // Tabs and folded line breaks are just spaces, not worth a warning.
        let p = parse(b"From: a@example.com\r\nSubject: tab\there\r\n\r\nx");
        assert_eq!(p.subject, "tab here");
        assert!(
            !p.warnings.iter().any(|w| w.contains("control")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn garbage_is_kept_with_warnings() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"\xff\xfe garbage",
            b"no headers at all",
        ] {
            let p = parse(raw);
            assert!(!p.warnings.is_empty(), "{raw:?}");
        }
    }

    fn b64(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (i, c) in data.chunks(3).enumerate() {
            let n = u32::from(c[0]) << 16
                | u32::from(*c.get(1).unwrap_or(&0)) << 8
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                out.push(if k <= c.len() {
                    T[(n >> (18 - 6 * k)) as usize & 63] as char
                } else {
                    '='
                });
            }
            if i % 19 == 18 {
                out.push_str("\r\n");
            }
        }
        out
    }

    fn nested_rfc822(depth: usize) -> String {
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(&format!(
                "From: l{i}@example.com\r\nSubject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n"
            ));
        }
        s.push_str("From: bottom@example.com\r\nSubject: bottom\r\n\r\nthe bottom\r\n");
        s
    }

    fn forwarding(inner: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nSubject: fwd\r\nMessage-ID: <fwd@example.com>\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(inner.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn base64_and_qp_decode_like_mail_parser() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\xff\x00\x10 binary",
        ] {
            assert_eq!(decode_base64(b64(data).as_bytes()), data, "{data:?}");
        }
        assert_eq!(decode_base64(b"YWJj\r\nZA==\r\n--b--\r\nZZZZ"), b"abcd");
        assert_eq!(
            decode_qp(b"caf=C3=A9 =\r\nsoft=\nbreak =ZZ"),
            "caf\u{e9} softbreak =ZZ".as_bytes()
        );
    }

    /// Regression: 20,000 nested message/rfc822 levels overflowed a 2 MB stack when the
    /// parsed message was dropped (mail-parser's `Drop` recurses).
    #[test]
    fn deeply_nested_forwards_do_not_overflow_the_stack() {
        let p = parse(nested_rfc822(60_000).as_bytes());
        assert_eq!(p.subject, "level 0");
        assert!(!p.flags.has(MsgFlags::UNPARSEABLE));
        assert!(
            p.warnings.iter().any(|w| w.contains("nested")),
            "{:?}",
            p.warnings
        );
    }

    /// Regression: a base64 message/rfc822 nesting 3,000 messages overflowed the stack in
    /// mail-parser (`into_owned` recurses) and 1,000 took 80 MB (one copy per level).
    #[test]
    fn encoded_forward_bomb_is_read_headers_only() {
        for depth in [3_000, 101] {
            let p = parse(&forwarding(&nested_rfc822(depth)));
            assert_eq!(p.subject, "fwd");
            assert!(
                p.warnings
                    .iter()
                    .any(|w| w.contains("only the headers were read")),
                "{depth}: {:?}",
                p.warnings
            );
        }
    }

    #[test]
    fn encoded_forwards_within_limits_are_unpacked() {
        let p = parse(&forwarding(&nested_rfc822(3)));
        assert_eq!(p.subject, "fwd");
        assert_eq!(p.preview, "see attached");
        assert_eq!(p.attachments, 1);
        assert!(
            !p.warnings.iter().any(|w| w.contains("headers were read")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn too_many_parts_are_cut_and_the_start_kept() {
        let mut s = String::from(
            "From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n",
        );
        for i in 0..30_000 {
            s.push_str(&format!(
                "--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
            ));
        }
        s.push_str("--p--\r\n");
        let p = parse(s.as_bytes());
        assert_eq!(p.preview, "part 0");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("were read for content")),
            "{:?}",
            p.warnings
        );

        // mail-parser finds boundaries anywhere in a line: one line can hold all the parts.
        let one_line = format!(
            "From: a@example.com\r\nSubject: one line\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n{}\r\n",
            "--a x".repeat(200_000)
        );
        let p = parse(one_line.as_bytes());
        assert_eq!(p.subject, "one line");
        assert!(
            p.warnings.iter().any(|w| w.contains("were read")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn odd_charsets_and_address_floods_are_warned_about() {
        let p = parse(
            b"From: a@example.com\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nQapla'",
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("unknown charset \"x-klingon\"")),
            "{:?}",
            p.warnings
        );
        let p =
            parse(b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("not valid in its declared charset")),
            "{:?}",
            p.warnings
        );
        let p = parse(
            b"From: a@example.com\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\ncaf\xc3\xa9",
        );
        assert!(
            !p.warnings.iter().any(|w| w.contains("charset")),
            "{:?}",
            p.warnings
        );
        let to: Vec<String> = (0..150).map(|i| format!("p{i}@example.com")).collect();
        let p = parse(format!("From: a@example.com\r\nTo: {}\r\n\r\nx", to.join(", ")).as_bytes());
        assert_eq!(p.to.len(), MAX_ADDRS);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("To has 150 addresses")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn msgid_cleaning() {
        assert_eq!(clean_msgid(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(clean_msgid("<>"), None);
        assert_eq!(clean_msgid("a b@c"), None);
    }
}

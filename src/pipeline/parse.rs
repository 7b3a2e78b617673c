//! Parse stage: any byte string becomes a `Parsed` plus warnings. Never an error, never a
//! panic that escapes: mail-parser runs behind `catch_unwind`, and whatever it cannot make
//! sense of is kept as an "unparseable" message that shows its raw text.
//!
//! Owns: turning raw bytes into the header facts the later stages need, and classifying
//! machine-sent mail (auto-replies, bounces, lists).
//! Must not: touch the store or the network, or decide threading.

use crate::model::{Addr, MsgFlags};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Longest subject we keep (characters); hostile mail can carry megabytes.
const MAX_SUBJECT: usize = 1000;
/// Longest Message-ID we keep as an identifier (bytes).
const MAX_MSGID: usize = 2000;
/// How many addresses of one header we keep.
const MAX_ADDRS: usize = 100;
/// How many references we keep (the newest ones).
const MAX_REFS: usize = 100;
/// Characters of body text kept for lists.
const PREVIEW_CHARS: usize = 160;

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
}

/// Parses raw bytes. Always returns something usable.
pub fn parse(raw: &[u8]) -> Parsed {
    let mut warnings = scan_raw(raw);
    let result = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::default()
            .parse(raw)
            .map(|m| from_message(&m))
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
    if head.split(|b| *b == b'\n').any(|l| l.len() > 998) {
        w.push("a header line is longer than 998 characters (RFC 5322 limit)".into());
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

fn unparseable(raw: &[u8], why: &str) -> Parsed {
    let mut flags = MsgFlags::default();
    flags.set(MsgFlags::UNPARSEABLE);
    let text = String::from_utf8_lossy(raw.get(..4096).unwrap_or(raw));
    Parsed {
        subject: "(message could not be parsed)".into(),
        preview: clip_chars(
            text.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .as_str(),
            PREVIEW_CHARS,
        ),
        flags,
        warnings: vec![format!("{why}; the raw message is kept as received")],
        ..Parsed::default()
    }
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

fn addrs(a: Option<&Address<'_>>) -> Vec<Addr> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .take(MAX_ADDRS)
        .map(|x| Addr {
            name: clip_chars(x.name().unwrap_or("").trim(), 200),
            email: clip_chars(x.address().unwrap_or("").trim(), 320),
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
    let subject = m
        .subject()
        .map(|s| clip_chars(s.trim(), MAX_SUBJECT))
        .unwrap_or_default();
    let from = addrs(m.from()).into_iter().next();
    if from.is_none() {
        warnings.push("no usable From address".into());
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
            clip_chars(
                p.split_whitespace().collect::<Vec<_>>().join(" ").as_str(),
                PREVIEW_CHARS,
            )
        })
        .unwrap_or_default();
    Parsed {
        message_id,
        in_reply_to: id_list(m.in_reply_to()),
        references: id_list(m.references()),
        reported_ids,
        subject,
        from,
        to: addrs(m.to()),
        cc: addrs(m.cc()),
        date,
        flags,
        attachments: u32::try_from(m.attachment_count()).unwrap_or(u32::MAX),
        preview,
        warnings,
    }
}

/// Recognises mail sent by machines: RFC 3834 auto-replies, vendor auto-reply headers,
/// bulk precedence, delivery reports (bounces), and mailing lists.
fn classify(m: &Message<'_>) -> MsgFlags {
    let mut f = MsgFlags::default();
    if let Some(v) = header_text(m, "Auto-Submitted") {
        if !v.trim().eq_ignore_ascii_case("no") && !v.trim().is_empty() {
            f.set(MsgFlags::AUTO_REPLY);
        }
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
                if let Some(id) = MessageParser::default()
                    .parse_headers(t.as_bytes())
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

    #[test]
    fn msgid_cleaning() {
        assert_eq!(clean_msgid(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(clean_msgid("<>"), None);
        assert_eq!(clean_msgid("a b@c"), None);
    }
}

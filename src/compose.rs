//! Composing the mail Postroom sends (mail-builder): replies that thread in every client,
//! test messages, and the checks that make header injection impossible.
//!
//! Owns: Message-ID generation, the threading headers (In-Reply-To, References,
//! Thread-Index/Thread-Topic), the subject tag on outgoing subjects, and refusing any
//! field that could smuggle a header or an SMTP command (CR, LF, NUL, other controls).
//! Must not: send, queue or store anything (that is `outbox`), or read the network.

use crate::model::Clock;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use std::fmt;

/// A field that cannot go into a message, with its value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} cannot be used: {}",
            self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for ComposeError {}

fn refuse(field: &str, value: &str, reason: &str) -> ComposeError {
    ComposeError {
        field: field.to_owned(),
        value: value.chars().take(200).collect(),
        reason: reason.to_owned(),
    }
}

/// A header value people typed (a name, a subject): any control character but TAB is
/// refused, so no CR/LF can start a header of its own and no NUL can cut one short.
pub fn check_text(field: &str, value: &str) -> Result<(), ComposeError> {
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        let what = match c {
            '\r' => "carriage return (CR)",
            '\n' => "line feed (LF)",
            '\0' => "NUL",
            _ => "control character",
        };
        return Err(refuse(
            field,
            value,
            &format!("it contains a {what}; header fields are one line of text"),
        ));
    }
    if value.len() > 998 {
        return Err(refuse(field, value, "it is longer than 998 bytes"));
    }
    Ok(())
}

/// An e-mail address: one `local@domain`, no display name, no controls or spaces, no
/// angle brackets, commas or semicolons that could add a recipient.
pub fn check_address(field: &str, addr: &str) -> Result<(), ComposeError> {
    check_text(field, addr)?;
    if addr
        .chars()
        .any(|c| c.is_whitespace() || "<>,;\"()[]\\".contains(c))
    {
        return Err(refuse(
            field,
            addr,
            "an address is local@domain with no spaces, brackets, quotes, commas or semicolons",
        ));
    }
    if addr.parse::<lettre::Address>().is_err() {
        return Err(refuse(field, addr, "it is not an e-mail address"));
    }
    Ok(())
}

/// A new Message-ID (without angle brackets) in the domain of `from`.
pub fn new_message_id(from: &str, clock: &dyn Clock) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("postroom.invalid");
    let mut rnd = [0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd);
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}@{domain}", clock.now_ms())
}

/// The test message of `postroom smtp test`.
pub fn test_message(
    from: &str,
    to: &str,
    server: &str,
    clock: &dyn Clock,
) -> Result<Vec<u8>, ComposeError> {
    check_address("sender", from)?;
    check_address("recipient", to)?;
    check_text("server name", server)?;
    let id = new_message_id(from, clock);
    MessageBuilder::new()
        .from(MbAddress::new_address(Some("Postroom"), from.to_owned()))
        .to(to.to_owned())
        .subject(format!("Postroom test message through {server}"))
        .date(clock.now_ms() / 1000)
        .message_id(MessageId::new(id))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .text_body(format!(
            "This is a test message from Postroom, sent through the SMTP server {server:?}.\n\
             If you can read it, replies from Postroom can leave through this server.\n"
        ))
        .write_to_vec()
        .map_err(|e| refuse("message", "", &e.to_string()))
}

/// A file attached to outgoing mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The content type of a file name's extension (attachments from the command line).
pub fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

/// Everything an outgoing message is made of; every field is checked by `build`.
#[derive(Clone, Debug, Default)]
pub struct Mail {
    pub from_name: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Recipients that appear in no header (auto-BCC): envelope only.
    pub bcc: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Outlook's threading: the conversation's topic and index.
    pub thread_topic: String,
    pub thread_index: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Unix seconds.
    pub date: i64,
    /// Automatic mail (auto-replies): RFC 3834 headers and our loop id.
    pub automatic: bool,
    /// Our `X-Loop` value (identifies this installation's automatic mail).
    pub loop_id: String,
}

impl Mail {
    /// Every envelope recipient: To, Cc and BCC.
    pub fn recipients(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for a in self.to.iter().chain(&self.cc).chain(&self.bcc) {
            if !v.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                v.push(a.clone());
            }
        }
        v
    }
}

fn check_msgid(field: &str, id: &str) -> Result<(), ComposeError> {
    check_text(field, id)?;
    if id.is_empty()
        || id
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(refuse(
            field,
            id,
            "a Message-ID has no spaces or angle brackets",
        ));
    }
    Ok(())
}

/// The exact bytes of an outgoing message. Every name, subject and address is checked
/// first: a CR, LF or NUL anywhere is refused with the field named, so no value can
/// start a header or an SMTP command of its own.
pub fn build(m: &Mail) -> Result<Vec<u8>, ComposeError> {
    check_text("sender name", &m.from_name)?;
    check_address("sender", &m.from)?;
    for a in &m.to {
        check_address("recipient", a)?;
    }
    for a in &m.cc {
        check_address("Cc", a)?;
    }
    for a in &m.bcc {
        check_address("BCC", a)?;
    }
    if m.to.is_empty() && m.cc.is_empty() {
        return Err(refuse(
            "recipient",
            "",
            "a message needs at least one recipient",
        ));
    }
    check_text("subject", &m.subject)?;
    check_msgid("Message-ID", &m.message_id)?;
    if let Some(r) = &m.in_reply_to {
        check_msgid("In-Reply-To", r)?;
    }
    for r in &m.references {
        check_msgid("References", r)?;
    }
    check_text("thread topic", &m.thread_topic)?;
    check_text("thread index", &m.thread_index)?;
    check_text("loop id", &m.loop_id)?;
    for a in &m.attachments {
        check_text("attachment name", &a.name)?;
        check_text("attachment type", &a.content_type)?;
        if !a.content_type.contains('/') || a.content_type.contains([';', '"']) {
            return Err(refuse(
                "attachment type",
                &a.content_type,
                "a content type is type/subtype",
            ));
        }
    }
    let mut b = MessageBuilder::new()
        .from(MbAddress::new_address(
            (!m.from_name.is_empty()).then_some(m.from_name.as_str()),
            m.from.as_str(),
        ))
        .subject(m.subject.as_str())
        .date(m.date)
        .message_id(MessageId::new(m.message_id.as_str()));
    if !m.to.is_empty() {
        b = b.to(MbAddress::new_list(
            m.to.iter().map(|a| MbAddress::from(a.as_str())).collect(),
        ));
    }
    if !m.cc.is_empty() {
        b = b.cc(MbAddress::new_list(
            m.cc.iter().map(|a| MbAddress::from(a.as_str())).collect(),
        ));
    }
    if let Some(r) = &m.in_reply_to {
        b = b.in_reply_to(MessageId::new(r.as_str()));
    }
    if !m.references.is_empty() {
        b = b.references(MessageId::new_list(m.references.iter().map(String::as_str)));
    }
    if !m.thread_topic.is_empty() {
        b = b.header(
            "Thread-Topic",
            mail_builder::headers::text::Text::new(m.thread_topic.as_str()),
        );
    }
    if !m.thread_index.is_empty() {
        b = b.header("Thread-Index", Raw::new(m.thread_index.as_str()));
    }
    if m.automatic {
        b = b
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .header("X-Auto-Response-Suppress", Raw::new("All"));
    }
    if !m.loop_id.is_empty() {
        b = b.header("X-Loop", Raw::new(m.loop_id.as_str()));
    }
    b = b.text_body(m.body.as_str());
    for a in &m.attachments {
        if a.content_type.eq_ignore_ascii_case("message/rfc822")
            && let Some((cte, bytes)) = embeddable_message(&a.bytes)
        {
            // RFC 2046 5.2.1: a message/rfc822 part is 7bit, 8bit or binary, never
            // base64; clients show it as a message only then.
            b.attachments.get_or_insert_with(Vec::new).push(
                mail_builder::mime::MimePart::new(a.content_type.as_str(), bytes)
                    .attachment(a.name.as_str())
                    .transfer_encoding(cte),
            );
            continue;
        }
        b = b.attachment(a.content_type.as_str(), a.name.as_str(), a.bytes.as_slice());
    }
    let mut bytes = b
        .write_to_vec()
        .map_err(|e| refuse("message", "", &e.to_string()))?;
    // SMTP ends DATA with CRLF.CRLF: a message that does not end in CRLF would get one
    // added on the wire, and the relay would no longer hold exactly the stored bytes.
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    Ok(bytes)
}

/// A message to attach whole as `message/rfc822`: its lines ended with CRLF, and the
/// transfer encoding that fits (`7bit` or `8bit`). None when a line is longer than SMTP
/// allows (998 bytes) or holds NUL: then it goes as an ordinary (base64) attachment.
fn embeddable_message(raw: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut eight = false;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 998 || line.contains(&0) || line.contains(&b'\r') {
            return None;
        }
        eight |= line.iter().any(|b| *b >= 0x80);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    // The split gives one empty piece after a final LF: drop the CRLF it added.
    if raw.ends_with(b"\n") {
        out.truncate(out.len().saturating_sub(2));
    }
    Some((if eight { "8bit" } else { "7bit" }, out))
}

/// Child blocks in a `Thread-Index` at most.
const MAX_THREAD_DEPTH: u32 = 30;

/// Outlook's `Thread-Index` for our message number `n` (0 = the first) in a
/// conversation: the 22-byte header derived from the conversation (so every message of
/// ours in it shares it) plus one 5-byte block per reply, base64.
pub fn thread_index(conv: u64, created_secs: i64, n: u32) -> String {
    // FILETIME: 100 ns since 1601-01-01.
    let filetime = (created_secs.max(0) as u64 + 11_644_473_600).saturating_mul(10_000_000);
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("postroom-conversation-{conv}-{created_secs}").as_bytes(),
    );
    // Deep threads stop growing the header (it stays one short line).
    let n = n.min(MAX_THREAD_DEPTH);
    let mut bytes = Vec::with_capacity(22 + 5 * n as usize);
    bytes.push(0x01);
    bytes.extend_from_slice(&filetime.to_be_bytes()[1..6]);
    bytes.extend_from_slice(digest.as_ref().get(..16).unwrap_or_default());
    for i in 0..n {
        // Child blocks: a growing time offset; Outlook reads order from them.
        let offset: u32 = (i + 1).saturating_mul(0x0100_0000 / 64);
        bytes.extend_from_slice(&offset.to_be_bytes());
        bytes.push(0x00);
    }
    base64(&bytes)
}

/// Standard base64 with padding (also the SASL PLAIN response of `fetch`).
pub(crate) fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(A.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quotes a text for a reply: an attribution line, then every line prefixed with "> ".
pub fn quote(attribution: &str, text: &str) -> String {
    let mut out = format!("\n\n{attribution}\n");
    for line in text.lines() {
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FixedClock;

    #[test]
    fn a_forwarded_message_is_embedded_verbatim_when_smtp_can_carry_it() {
        let (cte, out) = embeddable_message(b"Subject: a\nFrom: b\n\nbody\n").unwrap_or_default();
        assert_eq!(cte, "7bit");
        assert_eq!(out, b"Subject: a\r\nFrom: b\r\n\r\nbody\r\n");
        let (cte, _) = embeddable_message("Subject: é\r\n\r\nx".as_bytes()).unwrap_or_default();
        assert_eq!(cte, "8bit");
        let long = format!("Subject: a\r\n\r\n{}\r\n", "x".repeat(999));
        assert!(
            embeddable_message(long.as_bytes()).is_none(),
            "too long for SMTP"
        );
        assert!(embeddable_message(b"a\0b\r\n").is_none(), "NUL");
    }

    #[test]
    fn control_characters_are_refused_in_text_and_addresses() {
        for bad in ["a\rb", "a\nBcc: x@y", "a\0b", "x\u{7f}"] {
            assert!(check_text("subject", bad).is_err(), "{bad:?}");
            assert!(check_address("to", &format!("u{bad}@example.org")).is_err());
        }
        assert!(check_text("subject", "Grüße\tand tabs").is_ok());
        for bad in [
            "a@b.org, c@d.org",
            "<a@b.org>",
            "a b@c.org",
            "a@b.org;c@d.org",
            "no-at-sign",
            "Name <a@b.org>",
        ] {
            assert!(check_address("to", bad).is_err(), "{bad:?}");
        }
        assert!(check_address("to", "anna.b+tag@example.org").is_ok());
    }

    #[test]
    fn base64_and_thread_index_have_the_outlook_shape() {
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"M"), "TQ==");
        let first = thread_index(7, 1_780_000_000, 0);
        let second = thread_index(7, 1_780_000_000, 1);
        assert_eq!(first.len(), 32, "22 bytes");
        assert_eq!(second.len(), 36, "27 bytes");
        assert_ne!(thread_index(8, 1_780_000_000, 0), first, "per conversation");
        assert!(
            thread_index(7, 1_780_000_000, 100_000).len() < 300,
            "bounded"
        );
    }

    #[test]
    fn build_refuses_injection_in_every_field() {
        let ok = Mail {
            from_name: "Support".into(),
            from: "support@example.org".into(),
            to: vec!["c@example.net".into()],
            subject: "Re: hello [#1]".into(),
            message_id: "1.abc@example.org".into(),
            body: "hi".into(),
            date: 1_780_000_000,
            ..Mail::default()
        };
        assert!(build(&ok).is_ok());
        let evil = "x\r\nBcc: victim@example.com";
        let cases: Vec<(&str, Mail)> = vec![
            (
                "sender name",
                Mail {
                    from_name: evil.into(),
                    ..ok.clone()
                },
            ),
            (
                "subject",
                Mail {
                    subject: evil.into(),
                    ..ok.clone()
                },
            ),
            (
                "recipient",
                Mail {
                    to: vec![format!("c@example.net{evil}")],
                    ..ok.clone()
                },
            ),
            (
                "Cc",
                Mail {
                    cc: vec!["a@b.org\nRCPT TO:<x@y.org>".into()],
                    ..ok.clone()
                },
            ),
            (
                "Message-ID",
                Mail {
                    message_id: "a@b\r\nX: y".into(),
                    ..ok.clone()
                },
            ),
            (
                "In-Reply-To",
                Mail {
                    in_reply_to: Some("<a@b> <c@d>".into()),
                    ..ok.clone()
                },
            ),
            (
                "attachment name",
                Mail {
                    attachments: vec![Attachment {
                        name: "a\r\n.pdf".into(),
                        content_type: "application/pdf".into(),
                        bytes: vec![],
                    }],
                    ..ok.clone()
                },
            ),
            (
                "subject",
                Mail {
                    subject: "nul\0byte".into(),
                    ..ok.clone()
                },
            ),
        ];
        for (field, m) in cases {
            let e = build(&m).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        // An encoded word in a name is just text: it is encoded again, never decoded.
        let m = Mail {
            from_name: "=?utf-8?q?a=0D=0ABcc:_x@y.org?=".into(),
            ..ok
        };
        let text = String::from_utf8(build(&m).unwrap()).unwrap();
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{headers}"
        );
    }

    #[test]
    fn the_test_message_has_our_headers_and_one_line_each() {
        let clock = FixedClock(1_780_000_000_000);
        let m = test_message("a@example.org", "b@example.net", "relay", &clock).unwrap();
        let text = String::from_utf8(m).unwrap();
        assert!(
            text.contains("From: \"Postroom\" <a@example.org>\r\n"),
            "{text}"
        );
        assert!(text.contains("To: <b@example.net>\r\n"), "{text}");
        assert!(text.contains("Message-ID: <1780000000000."), "{text}");
        assert!(text.contains("@example.org>\r\n"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(test_message("a@example.org", "b@example.net\r\nBcc: c@d", "r", &clock).is_err());
    }
}

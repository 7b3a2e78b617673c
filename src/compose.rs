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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FixedClock;

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

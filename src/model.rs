//! Plain types shared by every stage: newtype ids, records, statuses and flags.
//!
//! Owns: the vocabulary of the program (what a raw message, a message, a conversation,
//! a mailbox and a log entry are).
//! Must not: do I/O, know redb, HTTP or sockets, or encode itself for storage (that is
//! `store::codec`). Fixed-width integers only (`u32`/`u64`/`i64`), never `usize`, so the
//! records mean the same on a 32-bit Pi.

use serde::Serialize;
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// One stored raw message (unique bytes), numbered in arrival order.
    RawId
);
id_type!(
    /// One message in a conversation (received or sent).
    MsgId
);
id_type!(
    /// One conversation; its number is what the subject tag `[#N]` carries.
    ConvId
);
id_type!(
    /// One mailbox (a shared inbox such as "Support").
    MailboxId
);
id_type!(
    /// One person who logs in to the web UI (an admin or an agent).
    UserId
);

/// SHA-256 of the exact bytes of a raw message: the key of the content-addressed store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Where a raw message came from, e.g. `import:/home/a/mail.mbox#12` or
/// `imap:support/INBOX/uidvalidity 7/uid 123`.
pub type SourceLabel = String;

/// Metadata of one stored raw message (the bytes themselves live in the blob table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub hash: ContentHash,
    pub size: u64,
    /// Unix milliseconds when the bytes were first committed.
    pub received_at: i64,
    /// Every place these exact bytes were seen, first one first (capped, see `sources_dropped`).
    pub sources: Vec<SourceLabel>,
    /// How many further sightings were not listed because the list was full.
    pub sources_dropped: u32,
    /// The mailbox the source asked for (import `--mailbox`, an account's target mailbox).
    pub mailbox: MailboxId,
}

/// Direction of a message as seen from the office.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received from outside (a customer, a mailer daemon).
    In,
    /// Sent by Postroom (a reply, an auto-reply, a notification copy).
    Out,
    /// An internal note of the team: never mailed to the customer.
    Note,
}

/// Conversation status, as agents see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Pending,
    Closed,
    Spam,
    /// Folded into another conversation; `merged_into` says which one.
    Merged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Closed => "closed",
            Status::Spam => "spam",
            Status::Merged => "merged",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "active" => Status::Active,
            "pending" => Status::Pending,
            "closed" => Status::Closed,
            "spam" => Status::Spam,
            "merged" => Status::Merged,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Message flags, a bit set stored as `u32`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgFlags(pub u32);

impl MsgFlags {
    /// Auto-reply or out-of-office (RFC 3834 `Auto-Submitted`, `X-Autoreply`, ...).
    pub const AUTO_REPLY: u32 = 1;
    /// Delivery status notification / bounce.
    pub const BOUNCE: u32 = 1 << 1;
    /// Mailing-list mail (`List-Id`).
    pub const LIST: u32 = 1 << 2;
    /// Bulk/junk precedence.
    pub const BULK: u32 = 1 << 3;
    /// The MIME parser could not make sense of the bytes; the raw is kept and shown as is.
    pub const UNPARSEABLE: u32 = 1 << 4;
    /// No usable `Date:` header; the arrival time stands in.
    pub const NO_DATE: u32 = 1 << 5;

    pub const NAMES: [(u32, &'static str); 6] = [
        (Self::AUTO_REPLY, "auto-reply"),
        (Self::BOUNCE, "bounce"),
        (Self::LIST, "list"),
        (Self::BULK, "bulk"),
        (Self::UNPARSEABLE, "unparseable"),
        (Self::NO_DATE, "no-date"),
    ];

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    pub fn set(&mut self, bit: u32) {
        self.0 |= bit;
    }

    /// True for anything a machine sent on its own: such mail never reopens a conversation
    /// and never gets an auto-reply of ours.
    pub fn is_automatic(self) -> bool {
        self.has(Self::AUTO_REPLY) || self.has(Self::BOUNCE)
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// A mail address with its display name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Addr {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub email: String,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name.is_empty(), self.email.is_empty()) {
            (true, _) => f.write_str(&self.email),
            (false, true) => f.write_str(&self.name),
            (false, false) => write!(f, "{} <{}>", self.name, self.email),
        }
    }
}

/// One message of a conversation, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: MsgId,
    pub conv: ConvId,
    /// The raw message this record was built from; further deliveries of the same
    /// Message-ID (another account, another copy) are listed in `also_raw`.
    pub raw: RawId,
    pub also_raw: Vec<RawId>,
    pub direction: Direction,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    /// Unix seconds from the `Date:` header, or the arrival time when it has none.
    pub date: i64,
    pub flags: MsgFlags,
    pub attachments: u32,
    /// First characters of the text, for lists.
    pub preview: String,
    /// What the parser found odd; the message is kept regardless.
    pub warnings: Vec<String>,
}

/// One conversation (a ticket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationRecord {
    pub id: ConvId,
    pub mailbox: MailboxId,
    pub status: Status,
    pub subject: String,
    pub customer: Option<Addr>,
    /// Date of the earliest message (unix seconds).
    pub created: i64,
    /// Date of the newest message (unix seconds).
    pub last_activity: i64,
    pub message_count: u32,
    pub merged_into: Option<ConvId>,
    /// The agent working on it (None: unassigned).
    pub assignee: Option<UserId>,
    /// Agents who asked to be told about it.
    pub followers: Vec<UserId>,
    /// Set by postmaster filters, trusted X-headers or an agent; `Normal` by default.
    pub priority: Priority,
    /// Free labels (filters' "add tags"), in the order they were added, no duplicates.
    pub tags: Vec<String>,
    /// Custom fields `name -> value` (filters' "set a custom field", X-OTRS-DynamicField-*).
    pub fields: std::collections::BTreeMap<String, String>,
}

/// How urgent a conversation is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl ConversationRecord {
    /// Active or pending: work in hand (the Unassigned, Mine and Assigned folders).
    pub fn is_open(&self) -> bool {
        matches!(self.status, Status::Active | Status::Pending)
    }

    /// The inbox bucket this conversation is listed under (see `store::schema::INBOX`).
    pub fn bucket(&self) -> Option<u8> {
        match self.status {
            Status::Active => Some(0),
            Status::Pending => Some(1),
            Status::Closed => Some(2),
            Status::Spam => Some(3),
            Status::Merged => None,
        }
    }
}

/// A mailbox: a shared inbox the team works on, with its system addresses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MailboxRecord {
    pub id: MailboxId,
    pub name: String,
    /// The mailbox's own address (From of replies), once configured.
    pub address: Option<String>,
    /// Whether the main address may be used; addresses are never deleted.
    pub address_validity: Validity,
    /// The admin's note on the main address.
    pub address_comment: String,
    /// Display name in From (empty: the mailbox name).
    pub display_name: String,
    /// Further addresses: mail to them lands here, replies may go from them.
    pub aliases: Vec<AliasAddress>,
    pub from_policy: FromPolicy,
    /// Signature template appended to replies (minijinja).
    pub signature: String,
    /// A copy of every reply goes here too.
    pub auto_bcc: Option<String>,
    pub auto_reply: bool,
    pub auto_reply_subject: String,
    pub auto_reply_body: String,
    /// The SMTP server replies leave through.
    pub smtp: Option<SmtpId>,
    /// IMAP account and folder that get a copy of each sent reply.
    pub sent_copy: Option<(AccountId, String)>,
}

impl MailboxRecord {
    /// A new mailbox with only a name (as `import --mailbox` creates them).
    pub fn named(id: MailboxId, name: &str) -> MailboxRecord {
        MailboxRecord {
            id,
            name: name.to_owned(),
            ..MailboxRecord::default()
        }
    }

    /// Every address of the mailbox, the main one first, with its validity.
    pub fn addresses(&self) -> Vec<(&str, Validity)> {
        let mut out: Vec<(&str, Validity)> = self
            .address
            .iter()
            .map(|a| (a.as_str(), self.address_validity))
            .collect();
        out.extend(
            self.aliases
                .iter()
                .map(|a| (a.address.as_str(), a.validity)),
        );
        out
    }
}

/// Whether an address may be used. Addresses are never deleted, only made invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    #[default]
    Valid,
    Invalid,
    TemporarilyInvalid,
}

impl Validity {
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::TemporarilyInvalid => "temporarily-invalid",
        }
    }
    pub fn parse(s: &str) -> Option<Validity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "valid" => Validity::Valid,
            "invalid" => Validity::Invalid,
            "temporarily-invalid" | "temporarily_invalid" | "temporary" => {
                Validity::TemporarilyInvalid
            }
            _ => return None,
        })
    }
}

/// An alias address of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasAddress {
    pub address: String,
    pub validity: Validity,
    pub comment: String,
}

/// Whose name a reply's From carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromPolicy {
    /// "Support <support@example.org>"
    #[default]
    Mailbox,
    /// "Anna via Support <support@example.org>"
    AgentViaMailbox,
}

id_type!(
    /// One SMTP server replies are sent through.
    SmtpId
);

/// How Postroom logs in to an SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpAuth {
    /// No login (a relay that trusts the LAN).
    #[default]
    None,
    Plain,
    Login,
}

impl SmtpAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpAuth::None => "none",
            SmtpAuth::Plain => "plain",
            SmtpAuth::Login => "login",
        }
    }
    pub fn parse(s: &str) -> Option<SmtpAuth> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => SmtpAuth::None,
            "plain" => SmtpAuth::Plain,
            "login" => SmtpAuth::Login,
            _ => return None,
        })
    }
}

/// An SMTP server as stored; the password is sealed like account passwords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRecord {
    pub id: SmtpId,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub auth: SmtpAuth,
    pub username: String,
    pub password_sealed: Vec<u8>,
    /// Name sent in EHLO (empty: this machine's host name).
    pub helo: String,
    pub pinned_cert: Option<[u8; 32]>,
    /// Outcome of the last `smtp test`: when (unix ms), whether it worked, a summary.
    pub last_test: Option<(i64, bool, String)>,
}

/// Where an outgoing message stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for its next attempt at `due` (unix ms).
    Queued { due: i64 },
    /// The relay accepted it (its reply).
    Sent { at: i64, reply: String },
    /// Refused for good (5xx), or retried for too long; the reply or reason.
    Failed { at: i64, reply: String },
}

/// One message in the outbox: the exact bytes are a raw message of our own (so a
/// resend after a crash sends the same bytes and Message-ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: u64,
    pub raw: RawId,
    pub msg: MsgId,
    pub conv: ConvId,
    pub mailbox: MailboxId,
    pub smtp: SmtpId,
    /// Envelope sender; empty for automatic mail (RFC 3834: no bounces to auto-replies).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub created: i64,
    pub attempts: u32,
    /// The last reply or error, for people.
    pub last_error: String,
    pub state: OutboxState,
}

/// Severity of a communication-log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// What happened, routinely: a message stored, a connection made.
    Info,
    /// Worth a look but nothing went wrong: a duplicate, a message left on the server by
    /// choice, an automatic reply not sent.
    Notice,
    /// Something is off and may need the admin: a retry, an odd server answer.
    Warn,
    /// Something failed: a login, a delivery.
    Error,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::Info, Level::Notice, Level::Warn, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "notice" => Some(Level::Notice),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// One entry of the communication log: what happened to mail, for the admin. The first
/// line of `text` is the summary shown in lists; further lines are the details (the
/// server's replies, a transcript) shown when the entry is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub level: Level,
    /// Which part spoke: `import`, `pipeline`, `imap:support`, ...
    pub component: String,
    pub raw: Option<RawId>,
    pub conv: Option<ConvId>,
    pub text: String,
}

/// Milliseconds and seconds since the Unix epoch, from an injected clock.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that always says the same time (tests, replays).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// `2026-11-22 15:04` (UTC) for a unix-seconds timestamp; for people, not machines.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// RFC 3339 (`2026-11-22T15:04:05Z`) for a unix-seconds timestamp.
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_in_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(format_utc(951_782_400 + 3_661), "2000-02-29 01:01");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn account_words_parse() {
        assert_eq!(Security::parse("STARTTLS"), Some(Security::StartTls));
        assert_eq!(Security::parse("maybe"), None);
        assert_eq!(Protocol::parse("POP3"), Some(Protocol::Pop3));
        assert_eq!(
            AfterFetch::parse("move:Archive/2026"),
            Some(AfterFetch::Move("Archive/2026".into()))
        );
        assert_eq!(AfterFetch::parse("move:"), None);
        assert_eq!(AfterFetch::parse("delete"), Some(AfterFetch::Delete));
        assert_eq!(AfterFetch::Move("X".into()).to_string(), "move:X");
    }

    #[test]
    fn flags_name_themselves() {
        let mut f = MsgFlags::default();
        f.set(MsgFlags::AUTO_REPLY);
        f.set(MsgFlags::LIST);
        assert_eq!(f.names(), vec!["auto-reply", "list"]);
        assert!(f.is_automatic());
    }
}

id_type!(
    /// One mail account (an IMAP or POP3 login Postroom fetches from).
    AccountId
);

/// Which protocol an account fetches with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "imap" => Some(Protocol::Imap),
            "pop3" | "pop" => Some(Protocol::Pop3),
            _ => None,
        }
    }
}

/// How a connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// No TLS at all (only sensible on a trusted LAN or loopback).
    None,
    /// Plain connect, then STARTTLS/STLS; refuses to continue in clear.
    StartTls,
    /// TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465).
    Tls,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }
    pub fn parse(s: &str) -> Option<Security> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" | "plain" => Security::None,
            "starttls" | "stls" => Security::StartTls,
            "tls" | "ssl" | "implicit" => Security::Tls,
            _ => return None,
        })
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What to do with a message on the server once its bytes are durably stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFetch {
    /// Leave it and remember what was taken (mail stays usable in other clients).
    Keep,
    /// Delete it (only our own UIDs, with UID EXPUNGE).
    Delete,
    /// Move it to this folder (IMAP), created if missing.
    Move(String),
}

impl AfterFetch {
    pub fn parse(s: &str) -> Option<AfterFetch> {
        match s.split_once(':') {
            Some((m, folder)) if m.eq_ignore_ascii_case("move") && !folder.trim().is_empty() => {
                Some(AfterFetch::Move(folder.trim().to_owned()))
            }
            None if s.eq_ignore_ascii_case("keep") => Some(AfterFetch::Keep),
            None if s.eq_ignore_ascii_case("delete") => Some(AfterFetch::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for AfterFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfterFetch::Keep => f.write_str("keep"),
            AfterFetch::Delete => f.write_str("delete"),
            AfterFetch::Move(folder) => write!(f, "move:{folder}"),
        }
    }
}

/// How an account logs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMethod {
    /// SASL PLAIN when the server offers it and the password (or an authorization
    /// identity) needs it, else the plain LOGIN / USER+PASS commands.
    #[default]
    Auto,
    /// IMAP `LOGIN` / POP3 `USER` + `PASS`.
    Login,
    /// SASL `AUTHENTICATE PLAIN` / POP3 `AUTH PLAIN` (UTF-8 passwords, authorization id).
    Plain,
}

impl LoginMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Auto => "auto",
            LoginMethod::Login => "login",
            LoginMethod::Plain => "plain",
        }
    }
    pub fn parse(s: &str) -> Option<LoginMethod> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "automatic" => Some(LoginMethod::Auto),
            "login" | "user" => Some(LoginMethod::Login),
            "plain" | "sasl" | "sasl-plain" => Some(LoginMethod::Plain),
            _ => None,
        }
    }
}

/// A mail account as stored. The password is sealed (see `secret`), never in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password_sealed: Vec<u8>,
    /// IMAP folders to read (POP3 has only the one mailbox).
    pub folders: Vec<String>,
    pub after: AfterFetch,
    pub mailbox: MailboxId,
    pub enabled: bool,
    /// Import only mail arriving after the account was added.
    pub only_new: bool,
    /// SHA-256 of the one certificate to trust, for self-signed office servers.
    pub pinned_cert: Option<[u8; 32]>,
    pub poll_secs: u32,
    /// Larger messages stay on the server and are reported.
    pub max_message_bytes: u64,
    /// Put new conversations in the mailbox owning the address the mail was sent to
    /// (Delivered-To, X-Original-To, To, Cc), falling back to `mailbox`; else all in
    /// `mailbox`.
    pub dispatch_by_address: bool,
    /// Mail from this account may steer itself with `X-Postroom-*` (and `X-OTOBO-*`,
    /// `X-OTRS-*`) headers; on other accounts those headers are ignored.
    pub trusted: bool,
    pub login: LoginMethod,
    /// SASL authorization identity: log in as `username`, act as this user (a shared
    /// mailbox); empty: none.
    pub authzid: String,
    /// Only a valid account is fetched.
    pub validity: Validity,
    /// A note for the admins.
    pub comment: String,
    /// How this account's mail makes conversations (issue 6, item 8).
    pub creation: Creation,
}

/// The ticket-creation options of a mail account. The default: mail creates
/// conversations, no customer records, no defaults, no bundling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Creation {
    /// Only replies that thread to an existing conversation are accepted; other mail is
    /// kept as a raw message, logged and (with `answer_refused`) answered.
    pub no_new: bool,
    /// With `no_new`: answer refused mail with the template below (else only the log).
    pub answer_refused: bool,
    /// The answer's subject and body (minijinja, like the mailbox auto-reply).
    pub refused_subject: String,
    pub refused_body: String,
    /// Unknown senders get a customer record with their domain as the company.
    pub create_customers: bool,
    /// Defaults for new conversations (filters run after them and override them).
    pub default_assignee: Option<UserId>,
    pub default_priority: Priority,
    pub default_tags: Vec<String>,
    /// Mail of the same sender and subject within `poll_secs` joins one conversation.
    pub bundle: bool,
}

/// A customer known by address (made from an unknown sender when the account that
/// brought their mail creates customers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Lower-cased address (the key).
    pub email: String,
    pub name: String,
    /// The sender's domain when the record was made, e.g. "example.com".
    pub company: String,
    /// Unix ms.
    pub created: i64,
}

impl AccountRecord {
    /// Whether the service fetches from it: enabled and valid.
    pub fn fetched(&self) -> bool {
        self.enabled && self.validity == Validity::Valid
    }
}

/// Where an account's folder stands: the IMAP cursor `(UIDVALIDITY, last UID taken)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderCursor {
    pub uidvalidity: u32,
    /// Every UID up to this one has been stored (or deliberately skipped).
    pub last_uid: u32,
}

/// One message taken from a server, remembered so that it is never taken twice, and so
/// that a delete can check the UID still holds what we stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenRecord {
    pub hash: ContentHash,
    pub size: u64,
    pub message_id: Option<String>,
    /// Stored, but not yet deleted/moved on the server (delete and move modes).
    pub pending_removal: bool,
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, every mailbox, the administration.
    Admin,
    /// Works on the conversations of the mailboxes they were given.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

/// A person who logs in to the web UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    /// Lower-case login name, unique.
    pub login: String,
    pub name: String,
    /// Personal address (notifications); may be empty.
    pub email: String,
    pub role: Role,
    /// PHC string of the argon2id hash; empty = cannot log in until a password is set.
    pub password_hash: String,
    /// Mailboxes an agent may see (admins see all).
    pub mailboxes: Vec<MailboxId>,
    pub disabled: bool,
    pub created: i64,
    /// Unix seconds of the last password change: sessions older than this are dead.
    pub password_changed: i64,
    /// UI language ("" = the browser's).
    pub language: String,
    pub signature: String,
}

impl UserRecord {
    pub fn may_see(&self, mailbox: MailboxId) -> bool {
        self.role == Role::Admin || self.mailboxes.contains(&mailbox)
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A logged-in browser. Stored under the SHA-256 of the cookie's token, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: UserId,
    pub created: i64,
    pub last_seen: i64,
    /// The form token of this session (random, hex).
    pub csrf: String,
}

/// An invitation (or a password reset) link of a user: lets whoever holds the link set
/// the user's password once before `expires`. Stored under the SHA-256 of the link's
/// token, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteRecord {
    pub user: UserId,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
    /// A password reset (the user existed and had a password) rather than an invitation.
    pub reset: bool,
}

/// What a user wants to be told by mail (to `UserRecord::email`). A user without a
/// stored record has `NotifyPrefs::default()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyPrefs {
    /// A new conversation in a mailbox the user may see.
    pub new_conversation: bool,
    /// A customer wrote in a conversation assigned to the user or that they follow.
    pub customer_reply: bool,
    /// Someone else assigned a conversation to the user.
    pub assigned: bool,
    /// Someone else mentioned the user (`@login`) in a note.
    pub mentioned: bool,
}

impl Default for NotifyPrefs {
    fn default() -> Self {
        NotifyPrefs {
            new_conversation: false,
            customer_reply: true,
            assigned: true,
            mentioned: true,
        }
    }
}

/// A notification mail's secret: whoever answers the notification from `user`'s address
/// with it in In-Reply-To/References answers the customer of `conv`. Stored under the
/// SHA-256 of the token (the token is in the notification's Message-ID only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyTokenRecord {
    pub user: UserId,
    pub conv: ConvId,
    /// Unix seconds.
    pub created: i64,
}

/// An API token of a user. Stored under the SHA-256 of the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub user: UserId,
    pub name: String,
    pub created: i64,
    pub last_used: i64,
}

/// A reply being written, saved as the agent types.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct DraftRecord {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub body: String,
    /// "reply" or "note".
    pub kind: String,
    pub updated: i64,
}

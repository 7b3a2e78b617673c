//! Byte encodings of the stored records.
//!
//! Owns: how each record of `model` is laid out in a redb value. Every record starts with
//! a format byte; lengths are `u32` little-endian, integers fixed-width little-endian.
//! No `usize` ever reaches the disk, so an armv7 Pi and an x86_64 laptop read the same file.
//! Must not: hold business rules, or panic on a damaged value (decoding returns an error
//! that names the record).

use crate::model::{
    AccountId, AccountRecord, Addr, AfterFetch, AliasAddress, ContentHash, ConvId,
    ConversationRecord, Creation, Direction, FolderCursor, FromPolicy, Level, LogEntry,
    LoginMethod, MailboxId, MailboxRecord, MessageRecord, MsgFlags, MsgId, OutboxRecord,
    OutboxState, Priority, Protocol, RawId, RawRecord, Security, SmtpAuth, SmtpId, SmtpRecord,
    Status, TakenRecord, Validity,
};
use crate::model::{
    ApiTokenRecord, DraftRecord, InviteRecord, NotifyPrefs, NotifyTokenRecord, Role, SessionRecord,
    UserId, UserRecord,
};
use std::fmt;

/// A stored value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub record: &'static str,
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored {} record is damaged: {}", self.record, self.what)
    }
}

impl std::error::Error for DecodeError {}

/// Appends fixed-width little-endian fields.
#[derive(Default)]
pub struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    pub fn new(format: u8) -> Enc {
        Enc { buf: vec![format] }
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Fixed-size bytes, no length prefix (hashes).
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Length-prefixed bytes. Values longer than `u32::MAX` are cut (never happens for
    /// the strings we store: headers are capped long before that).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend(v.iter().take(len as usize));
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.u8(1).u64(n),
            None => self.u8(0),
        }
    }
    fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }
    pub fn strs(&mut self, v: &[String]) -> &mut Self {
        self.count(v.len());
        for s in v.iter().take(u32::MAX as usize) {
            self.str(s);
        }
        self
    }
    pub fn u64s(&mut self, v: &[u64]) -> &mut Self {
        self.count(v.len());
        for n in v.iter().take(u32::MAX as usize) {
            self.u64(*n);
        }
        self
    }
    pub fn addr(&mut self, a: &Addr) -> &mut Self {
        self.str(&a.name).str(&a.email)
    }
    pub fn opt_addr(&mut self, a: Option<&Addr>) -> &mut Self {
        match a {
            Some(a) => self.u8(1).addr(a),
            None => self.u8(0),
        }
    }
    pub fn addrs(&mut self, v: &[Addr]) -> &mut Self {
        self.count(v.len());
        for a in v.iter().take(u32::MAX as usize) {
            self.addr(a);
        }
        self
    }
}

/// Reads what `Enc` wrote; every read is bounds-checked.
pub struct Dec<'a> {
    buf: &'a [u8],
    record: &'static str,
}

impl<'a> Dec<'a> {
    /// Starts decoding `buf`, checking its format byte against `format`.
    pub fn new(buf: &'a [u8], record: &'static str, format: u8) -> Result<Dec<'a>, DecodeError> {
        let mut d = Dec { buf, record };
        let got = d.u8()?;
        if got != format {
            return Err(d.err(format!("format {got}, expected {format}")));
        }
        Ok(d)
    }
    pub fn err(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            record: self.record,
            what: what.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err(format!("needs {n} more bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("text is not UTF-8"))
    }
    pub fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(self.err(format!("presence byte {n}"))),
        }
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }
    /// A count followed by that many items; the count is checked against what is left so a
    /// damaged length cannot make us allocate gigabytes.
    fn list<T>(
        &mut self,
        min_item: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(self.err(format!("list of {n} items is longer than the value")));
        }
        (0..n).map(|_| item(self)).collect()
    }
    pub fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        self.list(4, |d| d.str())
    }
    pub fn u64s(&mut self) -> Result<Vec<u64>, DecodeError> {
        self.list(8, |d| d.u64())
    }
    pub fn addr(&mut self) -> Result<Addr, DecodeError> {
        Ok(Addr {
            name: self.str()?,
            email: self.str()?,
        })
    }
    pub fn opt_addr(&mut self) -> Result<Option<Addr>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.addr()?)
        } else {
            None
        })
    }
    pub fn addrs(&mut self) -> Result<Vec<Addr>, DecodeError> {
        self.list(8, |d| d.addr())
    }
    /// Ends decoding; trailing bytes mean the value is not what we think it is.
    pub fn end(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} unexpected trailing bytes", self.buf.len())))
        }
    }
}

const RAW_V1: u8 = 1;
const MSG_V1: u8 = 1;
const CONV_V1: u8 = 1;
const MAILBOX_V1: u8 = 1;
const LOG_V1: u8 = 1;

pub fn encode_raw(r: &RawRecord) -> Vec<u8> {
    let mut e = Enc::new(RAW_V1);
    e.fixed(&r.hash.0)
        .u64(r.size)
        .i64(r.received_at)
        .u64(r.mailbox.0)
        .u32(r.sources_dropped)
        .strs(&r.sources);
    e.finish()
}

pub fn decode_raw(v: &[u8]) -> Result<RawRecord, DecodeError> {
    let mut d = Dec::new(v, "raw message", RAW_V1)?;
    let hash = ContentHash(d.array()?);
    let r = RawRecord {
        hash,
        size: d.u64()?,
        received_at: d.i64()?,
        mailbox: MailboxId(d.u64()?),
        sources_dropped: d.u32()?,
        sources: d.strs()?,
    };
    d.end()?;
    Ok(r)
}

fn direction_byte(d: Direction) -> u8 {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
        Direction::Note => 2,
    }
}

pub fn encode_message(m: &MessageRecord) -> Vec<u8> {
    let also: Vec<u64> = m.also_raw.iter().map(|r| r.0).collect();
    let mut e = Enc::new(MSG_V1);
    e.u64(m.id.0)
        .u64(m.conv.0)
        .u64(m.raw.0)
        .u64s(&also)
        .u8(direction_byte(m.direction))
        .opt_str(m.message_id.as_deref())
        .strs(&m.in_reply_to)
        .strs(&m.references)
        .str(&m.subject)
        .opt_addr(m.from.as_ref())
        .addrs(&m.to)
        .addrs(&m.cc)
        .i64(m.date)
        .u32(m.flags.0)
        .u32(m.attachments)
        .str(&m.preview)
        .strs(&m.warnings);
    e.finish()
}

pub fn decode_message(v: &[u8]) -> Result<MessageRecord, DecodeError> {
    let mut d = Dec::new(v, "message", MSG_V1)?;
    let m = MessageRecord {
        id: MsgId(d.u64()?),
        conv: ConvId(d.u64()?),
        raw: RawId(d.u64()?),
        also_raw: d.u64s()?.into_iter().map(RawId).collect(),
        direction: match d.u8()? {
            0 => Direction::In,
            1 => Direction::Out,
            2 => Direction::Note,
            n => return Err(d.err(format!("direction {n}"))),
        },
        message_id: d.opt_str()?,
        in_reply_to: d.strs()?,
        references: d.strs()?,
        subject: d.str()?,
        from: d.opt_addr()?,
        to: d.addrs()?,
        cc: d.addrs()?,
        date: d.i64()?,
        flags: MsgFlags(d.u32()?),
        attachments: d.u32()?,
        preview: d.str()?,
        warnings: d.strs()?,
    };
    d.end()?;
    Ok(m)
}

fn status_byte(s: Status) -> u8 {
    match s {
        Status::Active => 0,
        Status::Pending => 1,
        Status::Closed => 2,
        Status::Spam => 3,
        Status::Merged => 4,
    }
}

const CONV_V2: u8 = 2;
/// Format 3: + priority, tags, custom fields (postmaster filters).
const CONV_V3: u8 = 3;

fn priority_byte(p: Priority) -> u8 {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

pub fn encode_conversation(c: &ConversationRecord) -> Vec<u8> {
    let mut e = Enc::new(CONV_V3);
    e.u64(c.id.0)
        .u64(c.mailbox.0)
        .u8(status_byte(c.status))
        .str(&c.subject)
        .opt_addr(c.customer.as_ref())
        .i64(c.created)
        .i64(c.last_activity)
        .u32(c.message_count)
        .opt_u64(c.merged_into.map(|c| c.0))
        .opt_u64(c.assignee.map(|u| u.0))
        .u64s(&c.followers.iter().map(|u| u.0).collect::<Vec<_>>())
        .u8(priority_byte(c.priority))
        .strs(&c.tags);
    let (names, values): (Vec<String>, Vec<String>) =
        c.fields.iter().map(|(k, v)| (k.clone(), v.clone())).unzip();
    e.strs(&names).strs(&values);
    e.finish()
}

pub fn decode_conversation(v: &[u8]) -> Result<ConversationRecord, DecodeError> {
    let format = v.first().copied().unwrap_or(0);
    let mut d = Dec::new(
        v,
        "conversation",
        match format {
            CONV_V1 | CONV_V2 => format,
            _ => CONV_V3,
        },
    )?;
    let mut c = ConversationRecord {
        id: ConvId(d.u64()?),
        mailbox: MailboxId(d.u64()?),
        status: match d.u8()? {
            0 => Status::Active,
            1 => Status::Pending,
            2 => Status::Closed,
            3 => Status::Spam,
            4 => Status::Merged,
            n => return Err(d.err(format!("status {n}"))),
        },
        subject: d.str()?,
        customer: d.opt_addr()?,
        created: d.i64()?,
        last_activity: d.i64()?,
        message_count: d.u32()?,
        merged_into: d.opt_u64()?.map(ConvId),
        assignee: None,
        followers: Vec::new(),
        priority: Priority::Normal,
        tags: Vec::new(),
        fields: Default::default(),
    };
    if format >= CONV_V2 {
        c.assignee = d.opt_u64()?.map(UserId);
        c.followers = d.u64s()?.into_iter().map(UserId).collect();
    }
    if format >= CONV_V3 {
        c.priority = match d.u8()? {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            3 => Priority::Urgent,
            n => return Err(d.err(format!("priority {n}"))),
        };
        c.tags = d.strs()?;
        let names = d.strs()?;
        let values = d.strs()?;
        if names.len() != values.len() {
            return Err(d.err("custom field names and values differ in number"));
        }
        c.fields = names.into_iter().zip(values).collect();
    }
    d.end()?;
    Ok(c)
}

const MAILBOX_V2: u8 = 2;

fn validity_u8(v: Validity) -> u8 {
    match v {
        Validity::Valid => 0,
        Validity::Invalid => 1,
        Validity::TemporarilyInvalid => 2,
    }
}

fn u8_validity(d: &mut Dec<'_>) -> Result<Validity, DecodeError> {
    Ok(match d.u8()? {
        0 => Validity::Valid,
        1 => Validity::Invalid,
        2 => Validity::TemporarilyInvalid,
        n => return Err(d.err(format!("validity {n}"))),
    })
}

pub fn encode_mailbox(m: &MailboxRecord) -> Vec<u8> {
    let mut e = Enc::new(MAILBOX_V2);
    e.u64(m.id.0)
        .str(&m.name)
        .opt_str(m.address.as_deref())
        .u8(validity_u8(m.address_validity))
        .str(&m.address_comment)
        .str(&m.display_name)
        .u32(u32::try_from(m.aliases.len()).unwrap_or(u32::MAX));
    for a in &m.aliases {
        e.str(&a.address)
            .u8(validity_u8(a.validity))
            .str(&a.comment);
    }
    e.u8(match m.from_policy {
        FromPolicy::Mailbox => 0,
        FromPolicy::AgentViaMailbox => 1,
    })
    .str(&m.signature)
    .opt_str(m.auto_bcc.as_deref())
    .u8(u8::from(m.auto_reply))
    .str(&m.auto_reply_subject)
    .str(&m.auto_reply_body)
    .opt_u64(m.smtp.map(|s| s.0));
    match &m.sent_copy {
        Some((acct, folder)) => e.u8(1).u64(acct.0).str(folder),
        None => e.u8(0),
    };
    e.finish()
}

/// Reads both formats: 1 (name and address only, schema 1-2) and 2.
pub fn decode_mailbox(v: &[u8]) -> Result<MailboxRecord, DecodeError> {
    if v.first() == Some(&MAILBOX_V1) {
        let mut d = Dec::new(v, "mailbox", MAILBOX_V1)?;
        let m = MailboxRecord {
            id: MailboxId(d.u64()?),
            name: d.str()?,
            address: d.opt_str()?,
            ..MailboxRecord::default()
        };
        d.end()?;
        return Ok(m);
    }
    let mut d = Dec::new(v, "mailbox", MAILBOX_V2)?;
    let id = MailboxId(d.u64()?);
    let name = d.str()?;
    let address = d.opt_str()?;
    let address_validity = u8_validity(&mut d)?;
    let address_comment = d.str()?;
    let display_name = d.str()?;
    let n = d.u32()?;
    let mut aliases = Vec::new();
    for _ in 0..n {
        aliases.push(AliasAddress {
            address: d.str()?,
            validity: u8_validity(&mut d)?,
            comment: d.str()?,
        });
    }
    let from_policy = match d.u8()? {
        0 => FromPolicy::Mailbox,
        1 => FromPolicy::AgentViaMailbox,
        n => return Err(d.err(format!("from policy {n}"))),
    };
    let m = MailboxRecord {
        id,
        name,
        address,
        address_validity,
        address_comment,
        display_name,
        aliases,
        from_policy,
        signature: d.str()?,
        auto_bcc: d.opt_str()?,
        auto_reply: d.u8()? != 0,
        auto_reply_subject: d.str()?,
        auto_reply_body: d.str()?,
        smtp: d.opt_u64()?.map(SmtpId),
        sent_copy: if d.flag()? {
            Some((AccountId(d.u64()?), d.str()?))
        } else {
            None
        },
    };
    d.end()?;
    Ok(m)
}

const SMTP_V1: u8 = 1;

pub fn encode_smtp(s: &SmtpRecord) -> Vec<u8> {
    let mut e = Enc::new(SMTP_V1);
    e.u64(s.id.0)
        .str(&s.name)
        .str(&s.host)
        .u32(u32::from(s.port))
        .u8(security_u8(s.security))
        .u8(match s.auth {
            SmtpAuth::None => 0,
            SmtpAuth::Plain => 1,
            SmtpAuth::Login => 2,
        })
        .str(&s.username)
        .bytes(&s.password_sealed)
        .str(&s.helo);
    match &s.pinned_cert {
        Some(fp) => e.u8(1).fixed(fp),
        None => e.u8(0),
    };
    match &s.last_test {
        Some((at, ok, summary)) => e.u8(1).i64(*at).u8(u8::from(*ok)).str(summary),
        None => e.u8(0),
    };
    e.finish()
}

pub fn decode_smtp(v: &[u8]) -> Result<SmtpRecord, DecodeError> {
    let mut d = Dec::new(v, "smtp server", SMTP_V1)?;
    let id = SmtpId(d.u64()?);
    let name = d.str()?;
    let host = d.str()?;
    let port = u16::try_from(d.u32()?).map_err(|_| d.err("port out of range"))?;
    let security = u8_security(&mut d)?;
    let auth = match d.u8()? {
        0 => SmtpAuth::None,
        1 => SmtpAuth::Plain,
        2 => SmtpAuth::Login,
        n => return Err(d.err(format!("auth {n}"))),
    };
    let s = SmtpRecord {
        id,
        name,
        host,
        port,
        security,
        auth,
        username: d.str()?,
        password_sealed: d.bytes()?.to_vec(),
        helo: d.str()?,
        pinned_cert: if d.flag()? { Some(d.array()?) } else { None },
        last_test: if d.flag()? {
            Some((d.i64()?, d.u8()? != 0, d.str()?))
        } else {
            None
        },
    };
    d.end()?;
    Ok(s)
}

const OUTBOX_V1: u8 = 1;

pub fn encode_outbox(o: &OutboxRecord) -> Vec<u8> {
    let mut e = Enc::new(OUTBOX_V1);
    e.u64(o.id)
        .u64(o.raw.0)
        .u64(o.msg.0)
        .u64(o.conv.0)
        .u64(o.mailbox.0)
        .u64(o.smtp.0)
        .str(&o.mail_from)
        .strs(&o.rcpt_to)
        .i64(o.created)
        .u32(o.attempts)
        .str(&o.last_error);
    match &o.state {
        OutboxState::Queued { due } => e.u8(0).i64(*due),
        OutboxState::Sent { at, reply } => e.u8(1).i64(*at).str(reply),
        OutboxState::Failed { at, reply } => e.u8(2).i64(*at).str(reply),
    };
    e.finish()
}

pub fn decode_outbox(v: &[u8]) -> Result<OutboxRecord, DecodeError> {
    let mut d = Dec::new(v, "outbox entry", OUTBOX_V1)?;
    let o = OutboxRecord {
        id: d.u64()?,
        raw: RawId(d.u64()?),
        msg: MsgId(d.u64()?),
        conv: ConvId(d.u64()?),
        mailbox: MailboxId(d.u64()?),
        smtp: SmtpId(d.u64()?),
        mail_from: d.str()?,
        rcpt_to: d.strs()?,
        created: d.i64()?,
        attempts: d.u32()?,
        last_error: d.str()?,
        state: match d.u8()? {
            0 => OutboxState::Queued { due: d.i64()? },
            1 => OutboxState::Sent {
                at: d.i64()?,
                reply: d.str()?,
            },
            2 => OutboxState::Failed {
                at: d.i64()?,
                reply: d.str()?,
            },
            n => return Err(d.err(format!("outbox state {n}"))),
        },
    };
    d.end()?;
    Ok(o)
}

pub fn encode_log(l: &LogEntry) -> Vec<u8> {
    let level = match l.level {
        Level::Info => 0,
        Level::Warn => 1,
        Level::Error => 2,
        Level::Notice => 3,
    };
    let mut e = Enc::new(LOG_V1);
    e.i64(l.at)
        .u8(level)
        .str(&l.component)
        .opt_u64(l.raw.map(|r| r.0))
        .opt_u64(l.conv.map(|c| c.0))
        .str(&l.text);
    e.finish()
}

pub fn decode_log(v: &[u8]) -> Result<LogEntry, DecodeError> {
    let mut d = Dec::new(v, "log entry", LOG_V1)?;
    let l = LogEntry {
        at: d.i64()?,
        level: match d.u8()? {
            0 => Level::Info,
            1 => Level::Warn,
            2 => Level::Error,
            3 => Level::Notice,
            n => return Err(d.err(format!("level {n}"))),
        },
        component: d.str()?,
        raw: d.opt_u64()?.map(RawId),
        conv: d.opt_u64()?.map(ConvId),
        text: d.str()?,
    };
    d.end()?;
    Ok(l)
}

const ACCOUNT_V1: u8 = 1;
const ACCOUNT_V2: u8 = 2;
const ACCOUNT_V3: u8 = 3;

fn security_u8(s: Security) -> u8 {
    match s {
        Security::None => 0,
        Security::StartTls => 1,
        Security::Tls => 2,
    }
}

fn u8_security(d: &mut Dec<'_>) -> Result<Security, DecodeError> {
    Ok(match d.u8()? {
        0 => Security::None,
        1 => Security::StartTls,
        2 => Security::Tls,
        n => return Err(d.err(format!("security {n}"))),
    })
}
const CURSOR_V1: u8 = 1;
const TAKEN_V1: u8 = 1;

pub fn encode_account(a: &AccountRecord) -> Vec<u8> {
    let (after, folder) = match &a.after {
        AfterFetch::Keep => (0, ""),
        AfterFetch::Delete => (1, ""),
        AfterFetch::Move(f) => (2, f.as_str()),
    };
    let mut e = Enc::new(ACCOUNT_V3);
    e.u64(a.id.0)
        .str(&a.name)
        .u8(match a.protocol {
            Protocol::Imap => 0,
            Protocol::Pop3 => 1,
        })
        .str(&a.host)
        .u32(u32::from(a.port))
        .u8(security_u8(a.security))
        .str(&a.username)
        .bytes(&a.password_sealed)
        .strs(&a.folders)
        .u8(after)
        .str(folder)
        .u64(a.mailbox.0)
        .u8(u8::from(a.enabled))
        .u8(u8::from(a.only_new));
    match &a.pinned_cert {
        Some(fp) => e.u8(1).fixed(fp),
        None => e.u8(0),
    };
    e.u32(a.poll_secs)
        .u64(a.max_message_bytes)
        .u8(u8::from(a.dispatch_by_address))
        .u8(u8::from(a.trusted))
        .u8(match a.login {
            LoginMethod::Auto => 0,
            LoginMethod::Login => 1,
            LoginMethod::Plain => 2,
        })
        .str(&a.authzid)
        .u8(match a.validity {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::TemporarilyInvalid => 2,
        })
        .str(&a.comment);
    // Format 3 continues with the ticket-creation options (issue 6, not released yet).
    let c = &a.creation;
    let flags = u8::from(c.no_new)
        | u8::from(c.answer_refused) << 1
        | u8::from(c.create_customers) << 2
        | u8::from(c.bundle) << 3;
    e.u8(flags)
        .str(&c.refused_subject)
        .str(&c.refused_body)
        .opt_u64(c.default_assignee.map(|u| u.0))
        .u8(priority_byte(c.default_priority))
        .strs(&c.default_tags);
    e.finish()
}

/// The ticket-creation options at the end of format 3; a format-3 value written before
/// they existed (none was released) reads as the defaults.
fn decode_creation(d: &mut Dec<'_>) -> Result<Creation, DecodeError> {
    if d.buf.is_empty() {
        return Ok(Creation::default());
    }
    let flags = d.u8()?;
    Ok(Creation {
        no_new: flags & 1 != 0,
        answer_refused: flags & 2 != 0,
        create_customers: flags & 4 != 0,
        bundle: flags & 8 != 0,
        refused_subject: d.str()?,
        refused_body: d.str()?,
        default_assignee: d.opt_u64()?.map(UserId),
        default_priority: match d.u8()? {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            3 => Priority::Urgent,
            n => return Err(d.err(format!("priority {n}"))),
        },
        default_tags: d.strs()?,
    })
}

/// Reads every format: 1 (schema 2), 2 (adds dispatch by address), 3 (schema 5: adds
/// the administration's fields).
pub fn decode_account(v: &[u8]) -> Result<AccountRecord, DecodeError> {
    let version = match v.first() {
        Some(&ACCOUNT_V1) => ACCOUNT_V1,
        Some(&ACCOUNT_V2) => ACCOUNT_V2,
        _ => ACCOUNT_V3,
    };
    let mut d = Dec::new(v, "account", version)?;
    let id = AccountId(d.u64()?);
    let name = d.str()?;
    let protocol = match d.u8()? {
        0 => Protocol::Imap,
        1 => Protocol::Pop3,
        n => return Err(d.err(format!("protocol {n}"))),
    };
    let host = d.str()?;
    let port = u16::try_from(d.u32()?).map_err(|_| d.err("port out of range"))?;
    let security = u8_security(&mut d)?;
    let username = d.str()?;
    let password_sealed = d.bytes()?.to_vec();
    let folders = d.strs()?;
    let after_kind = d.u8()?;
    let folder = d.str()?;
    let after = match after_kind {
        0 => AfterFetch::Keep,
        1 => AfterFetch::Delete,
        2 => AfterFetch::Move(folder),
        n => return Err(d.err(format!("after-fetch {n}"))),
    };
    let mailbox = MailboxId(d.u64()?);
    let enabled = d.u8()? != 0;
    let only_new = d.u8()? != 0;
    let pinned_cert = if d.flag()? { Some(d.array()?) } else { None };
    let a = AccountRecord {
        id,
        name,
        protocol,
        host,
        port,
        security,
        username,
        password_sealed,
        folders,
        after,
        mailbox,
        enabled,
        only_new,
        pinned_cert,
        poll_secs: d.u32()?,
        max_message_bytes: d.u64()?,
        dispatch_by_address: version >= ACCOUNT_V2 && d.u8()? != 0,
        trusted: version >= ACCOUNT_V3 && d.u8()? != 0,
        login: LoginMethod::Auto,
        authzid: String::new(),
        validity: Validity::Valid,
        comment: String::new(),
        creation: Creation::default(),
    };
    let a = if version >= ACCOUNT_V3 {
        AccountRecord {
            login: match d.u8()? {
                0 => LoginMethod::Auto,
                1 => LoginMethod::Login,
                2 => LoginMethod::Plain,
                n => return Err(d.err(format!("login method {n}"))),
            },
            authzid: d.str()?,
            validity: match d.u8()? {
                0 => Validity::Valid,
                1 => Validity::Invalid,
                2 => Validity::TemporarilyInvalid,
                n => return Err(d.err(format!("validity {n}"))),
            },
            comment: d.str()?,
            creation: decode_creation(&mut d)?,
            ..a
        }
    } else {
        a
    };
    d.end()?;
    Ok(a)
}

pub fn encode_cursor(c: &FolderCursor) -> Vec<u8> {
    let mut e = Enc::new(CURSOR_V1);
    e.u32(c.uidvalidity).u32(c.last_uid);
    e.finish()
}

pub fn decode_cursor(v: &[u8]) -> Result<FolderCursor, DecodeError> {
    let mut d = Dec::new(v, "folder cursor", CURSOR_V1)?;
    let c = FolderCursor {
        uidvalidity: d.u32()?,
        last_uid: d.u32()?,
    };
    d.end()?;
    Ok(c)
}

pub fn encode_taken(t: &TakenRecord) -> Vec<u8> {
    let mut e = Enc::new(TAKEN_V1);
    e.fixed(&t.hash.0)
        .u64(t.size)
        .opt_str(t.message_id.as_deref())
        .u8(u8::from(t.pending_removal));
    e.finish()
}

pub fn decode_taken(v: &[u8]) -> Result<TakenRecord, DecodeError> {
    let mut d = Dec::new(v, "taken message", TAKEN_V1)?;
    let t = TakenRecord {
        hash: ContentHash(d.array()?),
        size: d.u64()?,
        message_id: d.opt_str()?,
        pending_removal: d.u8()? != 0,
    };
    d.end()?;
    Ok(t)
}

const USER_V1: u8 = 1;

pub fn encode_user(u: &UserRecord) -> Vec<u8> {
    let mut e = Enc::new(USER_V1);
    e.u64(u.id.0)
        .str(&u.login)
        .str(&u.name)
        .str(&u.email)
        .u8(match u.role {
            Role::Admin => 0,
            Role::Agent => 1,
        })
        .str(&u.password_hash)
        .u64s(&u.mailboxes.iter().map(|m| m.0).collect::<Vec<_>>())
        .u8(u8::from(u.disabled))
        .i64(u.created)
        .i64(u.password_changed)
        .str(&u.language)
        .str(&u.signature);
    e.finish()
}

pub fn decode_user(v: &[u8]) -> Result<UserRecord, DecodeError> {
    let mut d = Dec::new(v, "user", USER_V1)?;
    let u = UserRecord {
        id: UserId(d.u64()?),
        login: d.str()?,
        name: d.str()?,
        email: d.str()?,
        role: match d.u8()? {
            0 => Role::Admin,
            1 => Role::Agent,
            n => return Err(d.err(format!("role {n}"))),
        },
        password_hash: d.str()?,
        mailboxes: d.u64s()?.into_iter().map(MailboxId).collect(),
        disabled: d.flag()?,
        created: d.i64()?,
        password_changed: d.i64()?,
        language: d.str()?,
        signature: d.str()?,
    };
    d.end()?;
    Ok(u)
}

const SESSION_V1: u8 = 1;

pub fn encode_session(s: &SessionRecord) -> Vec<u8> {
    let mut e = Enc::new(SESSION_V1);
    e.u64(s.user.0).i64(s.created).i64(s.last_seen).str(&s.csrf);
    e.finish()
}

pub fn decode_session(v: &[u8]) -> Result<SessionRecord, DecodeError> {
    let mut d = Dec::new(v, "session", SESSION_V1)?;
    let s = SessionRecord {
        user: UserId(d.u64()?),
        created: d.i64()?,
        last_seen: d.i64()?,
        csrf: d.str()?,
    };
    d.end()?;
    Ok(s)
}

const INVITE_V1: u8 = 1;

pub fn encode_invite(i: &InviteRecord) -> Vec<u8> {
    let mut e = Enc::new(INVITE_V1);
    e.u64(i.user.0)
        .i64(i.created)
        .i64(i.expires)
        .u8(u8::from(i.reset));
    e.finish()
}

pub fn decode_invite(v: &[u8]) -> Result<InviteRecord, DecodeError> {
    let mut d = Dec::new(v, "invite", INVITE_V1)?;
    let i = InviteRecord {
        user: UserId(d.u64()?),
        created: d.i64()?,
        expires: d.i64()?,
        reset: d.flag()?,
    };
    d.end()?;
    Ok(i)
}

const NOTIFY_PREFS_V1: u8 = 1;

pub fn encode_notify_prefs(p: &NotifyPrefs) -> Vec<u8> {
    let mut e = Enc::new(NOTIFY_PREFS_V1);
    e.u8(u8::from(p.new_conversation))
        .u8(u8::from(p.customer_reply))
        .u8(u8::from(p.assigned))
        .u8(u8::from(p.mentioned));
    e.finish()
}

pub fn decode_notify_prefs(v: &[u8]) -> Result<NotifyPrefs, DecodeError> {
    let mut d = Dec::new(v, "notify prefs", NOTIFY_PREFS_V1)?;
    let p = NotifyPrefs {
        new_conversation: d.flag()?,
        customer_reply: d.flag()?,
        assigned: d.flag()?,
        mentioned: d.flag()?,
    };
    d.end()?;
    Ok(p)
}

const NOTIFY_TOKEN_V1: u8 = 1;

pub fn encode_notify_token(t: &NotifyTokenRecord) -> Vec<u8> {
    let mut e = Enc::new(NOTIFY_TOKEN_V1);
    e.u64(t.user.0).u64(t.conv.0).i64(t.created);
    e.finish()
}

pub fn decode_notify_token(v: &[u8]) -> Result<NotifyTokenRecord, DecodeError> {
    let mut d = Dec::new(v, "notify token", NOTIFY_TOKEN_V1)?;
    let t = NotifyTokenRecord {
        user: UserId(d.u64()?),
        conv: ConvId(d.u64()?),
        created: d.i64()?,
    };
    d.end()?;
    Ok(t)
}

const TOKEN_V1: u8 = 1;

pub fn encode_api_token(t: &ApiTokenRecord) -> Vec<u8> {
    let mut e = Enc::new(TOKEN_V1);
    e.u64(t.user.0).str(&t.name).i64(t.created).i64(t.last_used);
    e.finish()
}

pub fn decode_api_token(v: &[u8]) -> Result<ApiTokenRecord, DecodeError> {
    let mut d = Dec::new(v, "api token", TOKEN_V1)?;
    let t = ApiTokenRecord {
        user: UserId(d.u64()?),
        name: d.str()?,
        created: d.i64()?,
        last_used: d.i64()?,
    };
    d.end()?;
    Ok(t)
}

const DRAFT_V1: u8 = 1;

pub fn encode_draft(x: &DraftRecord) -> Vec<u8> {
    let mut e = Enc::new(DRAFT_V1);
    e.str(&x.from)
        .str(&x.to)
        .str(&x.cc)
        .str(&x.body)
        .str(&x.kind)
        .i64(x.updated);
    e.finish()
}

pub fn decode_draft(v: &[u8]) -> Result<DraftRecord, DecodeError> {
    let mut d = Dec::new(v, "draft", DRAFT_V1)?;
    let x = DraftRecord {
        from: d.str()?,
        to: d.str()?,
        cc: d.str()?,
        body: d.str()?,
        kind: d.str()?,
        updated: d.i64()?,
    };
    d.end()?;
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_records_round_trip() {
        let a = AccountRecord {
            id: AccountId(3),
            name: "support".into(),
            protocol: Protocol::Pop3,
            host: "mail.example.com".into(),
            port: 995,
            security: Security::Tls,
            username: "DOMAIN\\user\\shared".into(),
            password_sealed: vec![1, 2, 3],
            folders: vec!["INBOX".into(), "Lists/Ärger".into()],
            after: AfterFetch::Move("Done".into()),
            mailbox: MailboxId(2),
            enabled: true,
            only_new: true,
            pinned_cert: Some([9; 32]),
            poll_secs: 60,
            max_message_bytes: 25 << 20,
            dispatch_by_address: true,
            trusted: true,
            login: LoginMethod::Plain,
            authzid: "shared@example.com".into(),
            validity: Validity::TemporarilyInvalid,
            comment: "the old box, until March".into(),
            creation: Creation {
                no_new: true,
                answer_refused: true,
                refused_subject: "Re: {{ subject }}".into(),
                refused_body: "Only replies, please.".into(),
                create_customers: true,
                default_assignee: Some(UserId(7)),
                default_priority: Priority::High,
                default_tags: vec!["new".into(), "web shop".into()],
                bundle: true,
            },
        };
        assert_eq!(decode_account(&encode_account(&a)).unwrap(), a);
        // Format 3 as written before the ticket-creation options: their defaults.
        let plain = AccountRecord {
            creation: Creation::default(),
            ..a.clone()
        };
        // The default options take 15 bytes: flags, two empty texts, no assignee,
        // priority, no tags.
        let mut v3 = encode_account(&plain);
        v3.truncate(v3.len() - 15);
        assert_eq!(decode_account(&v3).unwrap(), plain);
        // Format 2 (schema 4) still reads, untrusted, valid, automatic login, and with
        // the default creation options.
        let mut v2 = v3.clone();
        v2[0] = ACCOUNT_V2;
        // Without format 3's fields: trusted, login, authzid, validity, comment.
        let tail = 1 + 1 + (4 + a.authzid.len()) + 1 + (4 + a.comment.len());
        v2.truncate(v2.len() - tail);
        let old = decode_account(&v2).unwrap();
        assert_eq!(
            (
                old.login,
                old.validity,
                old.authzid.as_str(),
                old.comment.as_str()
            ),
            (LoginMethod::Auto, Validity::Valid, "", "")
        );
        assert_eq!(old.creation, Creation::default());
        let old = decode_account(&v2).unwrap();
        assert!(old.dispatch_by_address && !old.trusted);
        // Format 1 (schema 2) still reads, dispatching all into one mailbox.
        v2[0] = ACCOUNT_V1;
        v2.pop();
        let old = decode_account(&v2).unwrap();
        assert!(!old.dispatch_by_address);
        assert_eq!(old.name, "support");
        // Mailbox format 1 too.
        let mut mb = Enc::new(MAILBOX_V1);
        mb.u64(4).str("Sales").opt_str(Some("sales@example.org"));
        let m = decode_mailbox(&mb.finish()).unwrap();
        assert_eq!(
            (m.name.as_str(), m.address.as_deref()),
            ("Sales", Some("sales@example.org"))
        );
        assert!(m.aliases.is_empty() && !m.auto_reply);
        let c = FolderCursor {
            uidvalidity: 7,
            last_uid: 99,
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        let t = TakenRecord {
            hash: ContentHash([1; 32]),
            size: 5,
            message_id: Some("a@b".into()),
            pending_removal: true,
        };
        assert_eq!(decode_taken(&encode_taken(&t)).unwrap(), t);
    }

    fn sample_message() -> MessageRecord {
        MessageRecord {
            id: MsgId(7),
            conv: ConvId(3),
            raw: RawId(9),
            also_raw: vec![RawId(11)],
            direction: Direction::In,
            message_id: Some("a@b".into()),
            in_reply_to: vec!["x@y".into()],
            references: vec!["w@y".into(), "x@y".into()],
            subject: "Grüße".into(),
            from: Some(Addr {
                name: "Zoë".into(),
                email: "z@example.com".into(),
            }),
            to: vec![Addr {
                name: String::new(),
                email: "support@example.com".into(),
            }],
            cc: vec![],
            date: -5,
            flags: MsgFlags(MsgFlags::AUTO_REPLY),
            attachments: 2,
            preview: "hello".into(),
            warnings: vec!["odd".into()],
        }
    }

    #[test]
    fn records_round_trip() {
        let m = sample_message();
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
        let r = RawRecord {
            hash: ContentHash([7; 32]),
            size: 1 << 40,
            received_at: 123,
            sources: vec!["import:a".into(), "import:b".into()],
            sources_dropped: 4,
            mailbox: MailboxId(1),
        };
        assert_eq!(decode_raw(&encode_raw(&r)).unwrap(), r);
        let c = ConversationRecord {
            id: ConvId(1),
            mailbox: MailboxId(1),
            status: Status::Merged,
            subject: "s".into(),
            customer: None,
            created: 1,
            last_activity: 2,
            message_count: 3,
            merged_into: Some(ConvId(9)),
            assignee: Some(UserId(4)),
            followers: vec![UserId(4), UserId(7)],
            priority: Priority::Urgent,
            tags: vec!["vip".into(), "école".into()],
            fields: [("Contract".to_string(), "A-17".to_string())].into(),
        };
        assert_eq!(decode_conversation(&encode_conversation(&c)).unwrap(), c);
        // Bytes of format 3 added after format 2: priority, tags, field names, values.
        let v3_tail = 1 + (4 + 4 + 3 + 4 + 6) + (4 + 4 + 8) + (4 + 4 + 4);
        // Format 2 (before filters) still reads: normal priority, no tags, no fields.
        let mut v2 = encode_conversation(&c);
        v2[0] = CONV_V2;
        v2.truncate(v2.len() - v3_tail);
        let old = decode_conversation(&v2).unwrap();
        assert_eq!(old.assignee, Some(UserId(4)));
        assert_eq!(
            (old.priority, old.tags.len(), old.fields.len()),
            (Priority::Normal, 0, 0)
        );
        // Format 1 (before users existed) still reads, unassigned.
        let mut v1 = encode_conversation(&c);
        v1[0] = CONV_V1;
        v1.truncate(v1.len() - v3_tail - (1 + 8) - (4 + 16));
        let old = decode_conversation(&v1).unwrap();
        assert_eq!((old.assignee, old.followers.len()), (None, 0));
        assert_eq!(old.merged_into, Some(ConvId(9)));
        let u = UserRecord {
            id: UserId(3),
            login: "ann".into(),
            name: "Ann".into(),
            email: "ann@example.com".into(),
            role: Role::Agent,
            password_hash: "$argon2id$x".into(),
            mailboxes: vec![MailboxId(1), MailboxId(5)],
            disabled: true,
            created: 10,
            password_changed: 11,
            language: "fr".into(),
            signature: "-- Ann".into(),
        };
        assert_eq!(decode_user(&encode_user(&u)).unwrap(), u);
        let s = SessionRecord {
            user: UserId(3),
            created: 1,
            last_seen: 2,
            csrf: "abc".into(),
        };
        assert_eq!(decode_session(&encode_session(&s)).unwrap(), s);
        let t = ApiTokenRecord {
            user: UserId(3),
            name: "script".into(),
            created: 1,
            last_used: 0,
        };
        assert_eq!(decode_api_token(&encode_api_token(&t)).unwrap(), t);
        let d = DraftRecord {
            from: "a@b".into(),
            to: "c@d".into(),
            cc: String::new(),
            body: "hi".into(),
            kind: "reply".into(),
            updated: 9,
        };
        assert_eq!(decode_draft(&encode_draft(&d)).unwrap(), d);
        let l = LogEntry {
            at: 5,
            level: Level::Warn,
            component: "pipeline".into(),
            raw: Some(RawId(1)),
            conv: None,
            text: "t".into(),
        };
        assert_eq!(decode_log(&encode_log(&l)).unwrap(), l);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_message(&sample_message());
        for cut in 0..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_message(&longer).is_err());
    }

    #[test]
    fn a_huge_damaged_count_does_not_allocate() {
        let mut e = Enc::new(1);
        e.u32(u32::MAX);
        let bytes = e.finish();
        let mut d = Dec::new(&bytes, "test", 1).unwrap();
        assert!(d.strs().is_err());
    }

    #[test]
    fn invitation_and_notification_records_round_trip() {
        let i = InviteRecord {
            user: UserId(4),
            created: 1_800_000_000,
            expires: 1_800_604_800,
            reset: true,
        };
        assert_eq!(decode_invite(&encode_invite(&i)).unwrap(), i);
        let p = NotifyPrefs {
            new_conversation: true,
            customer_reply: false,
            assigned: true,
            mentioned: false,
        };
        assert_eq!(decode_notify_prefs(&encode_notify_prefs(&p)).unwrap(), p);
        let t = NotifyTokenRecord {
            user: UserId(2),
            conv: ConvId(77),
            created: 1_800_000_000,
        };
        assert_eq!(decode_notify_token(&encode_notify_token(&t)).unwrap(), t);
        assert!(decode_invite(&encode_notify_token(&t)[..5]).is_err());
    }
}

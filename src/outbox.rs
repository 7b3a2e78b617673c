//! The outbox: replies and notes written by the team, and the sender that delivers queued
//! mail through each mailbox's SMTP server, exactly as written, however often the relay or
//! the power fails.
//!
//! Owns: turning a reply request into exact bytes and committing them (raw bytes, the
//! message on its conversation, the outbox entry) in ONE transaction; internal notes; the
//! delivery loop with retries (exponential backoff up to `GIVE_UP_AFTER_MS`) and the
//! sorting of outcomes (sent, temporary failure, permanent failure shown on the
//! conversation). A message resent after a crash is the same bytes, so the same
//! Message-ID.
//! Must not: speak SMTP itself (`smtp` does), parse incoming mail, or send anything that
//! is not committed first.

use crate::compose::{self, Attachment, ComposeError, Mail};
use crate::config::Settings;
use crate::model::{
    Clock, ConvId, ConversationRecord, Direction, Level, LogEntry, MailboxRecord, MessageRecord,
    MsgFlags, MsgId, OutboxRecord, OutboxState, SmtpRecord, Validity,
};
use crate::pipeline::{self, parse};
use crate::secret::Keyring;
use crate::store::{NewRaw, RawOutcome, Store, StoreError, content_hash};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A temporary failure is retried for this long, then the message is marked failed.
pub const GIVE_UP_AFTER_MS: i64 = 5 * 86_400_000;
/// Most References kept in a reply (the newest ones).
const MAX_REFERENCES: usize = 20;

/// What an agent asks to send.
#[derive(Clone, Debug, Default)]
pub struct ReplyRequest {
    pub conv: ConvId,
    pub body: String,
    /// One of the mailbox's valid addresses; default: the address the customer wrote to.
    pub from: Option<String>,
    /// Default: the customer.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub attachments: Vec<Attachment>,
    /// Quote the message being answered.
    pub quote: bool,
    /// The agent's name (From policy "agent via mailbox", signature).
    pub agent: String,
    /// Forward the newest message (attached whole as `message/rfc822`, subject `Fwd:`)
    /// to `to` instead of answering the customer.
    pub forward: bool,
}

/// A reply committed to the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub outbox: u64,
    pub msg: MsgId,
    pub conv: ConvId,
    pub message_id: String,
    pub subject: String,
    pub from: String,
    pub recipients: Vec<String>,
}

/// Why a reply or note was not accepted.
#[derive(Debug)]
pub enum OutboxError {
    NoConversation(u64),
    Compose(ComposeError),
    /// The mailbox cannot send yet (no address or no SMTP server).
    Mailbox {
        mailbox: String,
        what: String,
    },
    NotOurAddress {
        from: String,
        mailbox: String,
        allowed: Vec<String>,
    },
    TooManyRecipients {
        n: usize,
        max: u32,
    },
    NoRecipient(u64),
    Template(String),
    Store(StoreError),
}

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboxError::NoConversation(n) => write!(
                f,
                "there is no conversation {n}; list them with: postroom conversations"
            ),
            OutboxError::Compose(e) => e.fmt(f),
            OutboxError::Mailbox { mailbox, what } => {
                write!(f, "the mailbox {mailbox:?} cannot send yet: {what}")
            }
            OutboxError::NotOurAddress {
                from,
                mailbox,
                allowed,
            } => write!(
                f,
                "{from} is not a valid address of the mailbox {mailbox:?}; use one of: {}",
                allowed.join(", ")
            ),
            OutboxError::TooManyRecipients { n, max } => write!(
                f,
                "{n} recipients is more than the {max} one message may have (setting max_recipients, a guard against bulk sending)"
            ),
            OutboxError::NoRecipient(n) => write!(
                f,
                "conversation {n} has no customer address to answer; give one with --to"
            ),
            OutboxError::Template(e) => write!(f, "the signature template does not work: {e}"),
            OutboxError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OutboxError {}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        OutboxError::Store(e)
    }
}

impl From<ComposeError> for OutboxError {
    fn from(e: ComposeError) -> Self {
        OutboxError::Compose(e)
    }
}

/// Our `X-Loop` id: this installation's automatic mail carries it, and mail that comes
/// back with it is never answered automatically.
pub fn loop_id(mailbox: &MailboxRecord) -> String {
    format!(
        "postroom; {}",
        mailbox.address.as_deref().unwrap_or("postroom.invalid")
    )
}

/// Renders a (signature or auto-reply) template with the given variables. Templates
/// are the admin's; fuel bounds a runaway loop.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(50_000));
    env.add_template("t", template).map_err(|e| e.to_string())?;
    let ctx: std::collections::BTreeMap<&str, minijinja::Value> = vars
        .iter()
        .map(|(k, v)| (*k, minijinja::Value::from(v.as_str())))
        .collect();
    env.get_template("t")
        .and_then(|t| t.render(minijinja::Value::from(ctx)))
        .map_err(|e| e.to_string())
}

/// The subject of a reply: "Re: " once, and the conversation tag.
pub fn reply_subject(subject: &str, conv: ConvId, prefix: &str) -> String {
    let trimmed = subject.trim();
    let mut s = if trimmed.to_ascii_lowercase().starts_with("re:") {
        trimmed.to_owned()
    } else {
        format!("Re: {trimmed}")
    };
    if pipeline::thread::subject_tag(&s, prefix) != Some(conv.0) {
        s.push_str(&format!(" [{prefix}{}]", conv.0));
    }
    s
}

/// What composing a reply reads: a read snapshot, or the write transaction of commit 2
/// (an agent's answer to a notification by mail becomes a reply there).
pub trait ReplySource {
    fn conversation(&self, id: ConvId) -> Result<Option<ConversationRecord>, StoreError>;
    fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError>;
    /// The messages of `conv`, oldest first.
    fn messages_of(&self, conv: ConvId) -> Result<Vec<MessageRecord>, StoreError>;
    /// The stored bytes of a raw message (for quoting); `None` when not at hand.
    fn raw_bytes(&self, raw: crate::model::RawId) -> Result<Option<Vec<u8>>, StoreError>;
}

impl ReplySource for crate::store::Reader {
    fn conversation(&self, id: ConvId) -> Result<Option<ConversationRecord>, StoreError> {
        crate::store::Reader::conversation(self, id)
    }
    fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError> {
        crate::store::Reader::mailboxes(self)
    }
    fn messages_of(&self, conv: ConvId) -> Result<Vec<MessageRecord>, StoreError> {
        self.conversation_messages(conv)
    }
    fn raw_bytes(&self, raw: crate::model::RawId) -> Result<Option<Vec<u8>>, StoreError> {
        crate::store::Reader::raw_bytes(self, raw)
    }
}

impl ReplySource for crate::store::Tx<'_> {
    fn conversation(&self, id: ConvId) -> Result<Option<ConversationRecord>, StoreError> {
        crate::store::Tx::conversation(self, id)
    }
    fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError> {
        crate::store::Tx::mailboxes(self)
    }
    fn messages_of(&self, conv: ConvId) -> Result<Vec<MessageRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.conversation_messages(conv)? {
            if let Some(m) = self.message(id)? {
                out.push(m);
            }
        }
        Ok(out)
    }
    /// Inside a transaction nothing is quoted (answers by mail carry their own text).
    fn raw_bytes(&self, _raw: crate::model::RawId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}

/// The conversation, followed through merges.
fn live_conversation(
    r: &impl ReplySource,
    id: ConvId,
) -> Result<Option<ConversationRecord>, StoreError> {
    let mut id = id;
    for _ in 0..64 {
        match r.conversation(id)? {
            Some(c) => match c.merged_into {
                Some(next) => id = next,
                None => return Ok(Some(c)),
            },
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Which address of the mailbox a reply leaves from.
fn pick_from(
    mailbox: &MailboxRecord,
    wanted: Option<&str>,
    answered: Option<&MessageRecord>,
) -> Result<String, OutboxError> {
    let valid: Vec<&str> = mailbox
        .addresses()
        .into_iter()
        .filter(|(_, v)| *v == Validity::Valid)
        .map(|(a, _)| a)
        .collect();
    if let Some(w) = wanted {
        return valid
            .iter()
            .find(|a| a.eq_ignore_ascii_case(w.trim()))
            .map(|a| (*a).to_owned())
            .ok_or_else(|| OutboxError::NotOurAddress {
                from: w.to_owned(),
                mailbox: mailbox.name.clone(),
                allowed: valid.iter().map(|a| (*a).to_owned()).collect(),
            });
    }
    // The address the customer wrote to, when it is one of ours and valid.
    if let Some(m) = answered {
        for a in m.to.iter().chain(&m.cc) {
            if let Some(v) = valid.iter().find(|v| v.eq_ignore_ascii_case(&a.email)) {
                return Ok((*v).to_owned());
            }
        }
    }
    valid
        .first()
        .map(|a| (*a).to_owned())
        .ok_or_else(|| OutboxError::Mailbox {
            mailbox: mailbox.name.clone(),
            what: "it has no valid address; give it one with: postroom mailbox edit NAME --address ADDRESS".into(),
        })
}

/// Composes a reply and commits it with its outbox entry in one transaction.
pub fn queue_reply(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    req: &ReplyRequest,
) -> Result<Queued, OutboxError> {
    let r = store.read()?;
    let (conv, mailbox, smtp, mail) = build_reply(&r, settings, clock, req)?;
    drop(r);
    commit_mail(store, settings, clock, &conv, &mailbox, smtp, &mail, false)
}

/// A composed reply: the conversation, its mailbox, the SMTP server, the mail.
pub type BuiltReply = (
    ConversationRecord,
    MailboxRecord,
    crate::model::SmtpId,
    Mail,
);

/// Composes a reply (From address, recipients, signature, quote, threading headers)
/// from what `r` holds; commits nothing.
pub fn build_reply(
    r: &impl ReplySource,
    settings: &Settings,
    clock: &dyn Clock,
    req: &ReplyRequest,
) -> Result<BuiltReply, OutboxError> {
    let conv = live_conversation(r, req.conv)?.ok_or(OutboxError::NoConversation(req.conv.0))?;
    let mailbox = r
        .mailboxes()?
        .into_iter()
        .find(|m| m.id == conv.mailbox)
        .ok_or(OutboxError::NoConversation(req.conv.0))?;
    let smtp = mailbox.smtp.ok_or_else(|| OutboxError::Mailbox {
        mailbox: mailbox.name.clone(),
        what: "no SMTP server is set; set one with: postroom mailbox edit NAME --smtp SERVER"
            .into(),
    })?;
    let messages = r.messages_of(conv.id)?;
    // The message answered: the newest from the customer, else the newest of all.
    let answered = messages
        .iter()
        .rev()
        .find(|m| m.direction == Direction::In && !m.flags.is_automatic())
        .or_else(|| {
            messages
                .iter()
                .rev()
                .find(|m| m.direction != Direction::Note)
        });
    let from = pick_from(&mailbox, req.from.as_deref(), answered)?;
    let mut to = req.to.clone();
    if req.forward && to.is_empty() {
        return Err(OutboxError::NoRecipient(conv.id.0));
    }
    if to.is_empty() {
        let customer = answered
            .filter(|m| m.direction == Direction::In)
            .and_then(|m| m.from.clone())
            .or_else(|| conv.customer.clone());
        match customer {
            Some(a) if !crate::mailboxes::is_ours(&r.mailboxes()?, &a.email) => to.push(a.email),
            _ => return Err(OutboxError::NoRecipient(conv.id.0)),
        }
    }
    let display = if mailbox.display_name.is_empty() {
        mailbox.name.clone()
    } else {
        mailbox.display_name.clone()
    };
    let from_name = match mailbox.from_policy {
        crate::model::FromPolicy::Mailbox => display.clone(),
        crate::model::FromPolicy::AgentViaMailbox if !req.agent.is_empty() => {
            format!("{} via {display}", req.agent)
        }
        crate::model::FromPolicy::AgentViaMailbox => display.clone(),
    };
    let mut body = req.body.trim_end().to_owned();
    if !mailbox.signature.trim().is_empty() {
        let sig = render(
            &mailbox.signature,
            &[
                ("agent", req.agent.clone()),
                ("mailbox_name", display.clone()),
                ("mailbox_address", from.clone()),
            ],
        )
        .map_err(OutboxError::Template)?;
        body.push_str("\n\n-- \n");
        body.push_str(sig.trim_end());
    }
    if req.quote
        && let Some(m) = answered
        && let Some(bytes) = r.raw_bytes(m.raw)?
        && let Some(text) = parse::body_text(&bytes)
    {
        let who = m
            .from
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "the customer".into());
        body.push_str(&compose::quote(
            &format!("On {} UTC, {who} wrote:", crate::model::format_utc(m.date)),
            &text,
        ));
    }
    body.push('\n');
    let (in_reply_to, references) = match answered.and_then(|m| m.message_id.clone()) {
        Some(id) => {
            let mut refs: Vec<String> = answered.map(|m| m.references.clone()).unwrap_or_default();
            refs.retain(|x| x != &id);
            refs.push(id.clone());
            let skip = refs.len().saturating_sub(MAX_REFERENCES);
            (Some(id), refs.into_iter().skip(skip).collect())
        }
        None => (None, Vec::new()),
    };
    let ours = messages
        .iter()
        .filter(|m| m.direction == Direction::Out)
        .count();
    let mut subject = reply_subject(&conv.subject, conv.id, &settings.subject_tag_prefix);
    let mut attachments = req.attachments.clone();
    if req.forward {
        let plain = subject.strip_prefix("Re: ").unwrap_or(&subject).to_owned();
        subject = format!("Fwd: {plain}");
        if let Some(m) = answered
            && let Some(bytes) = r.raw_bytes(m.raw)?
        {
            attachments.push(compose::Attachment {
                name: "forwarded-message.eml".into(),
                content_type: "message/rfc822".into(),
                bytes,
            });
        }
    }
    let mail = Mail {
        from_name,
        from: from.clone(),
        to,
        cc: req.cc.clone(),
        bcc: mailbox.auto_bcc.iter().cloned().collect(),
        subject,
        message_id: compose::new_message_id(&from, clock),
        in_reply_to,
        references,
        thread_topic: conv.subject.clone(),
        thread_index: compose::thread_index(
            conv.id.0,
            conv.created,
            u32::try_from(ours).unwrap_or(u32::MAX),
        ),
        body,
        attachments,
        date: clock.now_ms() / 1000,
        automatic: false,
        loop_id: String::new(),
    };
    Ok((conv, mailbox, smtp, mail))
}

/// Checks, composes and commits a message to send: the raw bytes, the message on the
/// conversation and the outbox entry, in one transaction. Shared by replies and
/// automatic replies.
#[allow(clippy::too_many_arguments)]
pub fn commit_mail(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    conv: &ConversationRecord,
    mailbox: &MailboxRecord,
    smtp: crate::model::SmtpId,
    mail: &Mail,
    automatic: bool,
) -> Result<Queued, OutboxError> {
    let recipients = mail.recipients();
    if recipients.len() > settings.max_recipients as usize {
        return Err(OutboxError::TooManyRecipients {
            n: recipients.len(),
            max: settings.max_recipients,
        });
    }
    let bytes = compose::build(mail)?;
    let q =
        store.write(|tx| queue_in(tx, clock, conv.id, mailbox, smtp, mail, &bytes, automatic))?;
    Ok(q)
}

/// Inside a transaction: stores composed bytes, files them on the conversation and
/// queues them (the pipeline uses this for auto-replies, in the transaction that creates
/// the conversation).
#[allow(clippy::too_many_arguments)]
pub fn queue_in(
    tx: &mut crate::store::Tx<'_>,
    clock: &dyn Clock,
    conv: ConvId,
    mailbox: &MailboxRecord,
    smtp: crate::model::SmtpId,
    mail: &Mail,
    bytes: &[u8],
    automatic: bool,
) -> Result<Queued, StoreError> {
    let recipients = mail.recipients();
    let parsed = parse::parse(bytes);
    let now = clock.now_ms();
    let hash = content_hash(bytes);
    {
        let raw = match tx.add_raw(
            &NewRaw {
                bytes,
                hash,
                source: format!("outbox:{}", mailbox.name),
                mailbox: mailbox.id,
            },
            now,
        )? {
            RawOutcome::New(id) | RawOutcome::SameBytes(id) => id,
        };
        let mut m = pipeline::record_own(tx, conv, raw, &parsed, Direction::Out, clock)?;
        if automatic {
            m.flags.set(MsgFlags::AUTO_REPLY);
            tx.put_message(&m)?;
        }
        let id = tx.next_id("outbox")?;
        tx.put_outbox(&OutboxRecord {
            id,
            raw,
            msg: m.id,
            conv: m.conv,
            mailbox: mailbox.id,
            smtp,
            mail_from: if automatic {
                String::new()
            } else {
                mail.from.clone()
            },
            rcpt_to: recipients.clone(),
            created: now,
            attempts: 0,
            last_error: String::new(),
            state: OutboxState::Queued { due: now },
        })?;
        tx.log(&LogEntry {
            at: now,
            level: Level::Info,
            component: "outbox".into(),
            raw: Some(raw),
            conv: Some(m.conv),
            text: format!(
                "{} queued from {} to {} (Message-ID <{}>)",
                if automatic { "auto-reply" } else { "reply" },
                mail.from,
                recipients.join(", "),
                mail.message_id
            ),
        })?;
        Ok(Queued {
            outbox: id,
            msg: m.id,
            conv: m.conv,
            message_id: mail.message_id.clone(),
            subject: mail.subject.clone(),
            from: mail.from.clone(),
            recipients: recipients.clone(),
        })
    }
}

/// Adds an internal note (never mailed) to a conversation.
pub fn add_note(
    store: &Store,
    clock: &dyn Clock,
    conv: ConvId,
    agent: &str,
    body: &str,
) -> Result<MessageRecord, OutboxError> {
    note(store, clock, conv, agent, None, body)
}

/// Adds an internal note by the user `author`; the users it mentions (`@login`) are
/// notified (per their settings) in the same transaction.
pub fn add_note_as(
    store: &Store,
    clock: &dyn Clock,
    conv: ConvId,
    author: &crate::model::UserRecord,
    body: &str,
) -> Result<MessageRecord, OutboxError> {
    note(store, clock, conv, &author.name, Some(author), body)
}

fn note(
    store: &Store,
    clock: &dyn Clock,
    conv: ConvId,
    agent: &str,
    by: Option<&crate::model::UserRecord>,
    body: &str,
) -> Result<MessageRecord, OutboxError> {
    let r = store.read()?;
    let c = live_conversation(&r, conv)?.ok_or(OutboxError::NoConversation(conv.0))?;
    drop(r);
    compose::check_text("agent", agent)?;
    let author = if agent.is_empty() { "agent" } else { agent };
    let note = Mail {
        from_name: author.to_owned(),
        from: "note@postroom.invalid".into(),
        to: vec!["note@postroom.invalid".into()],
        subject: format!("Note on #{}: {}", c.id, c.subject),
        message_id: compose::new_message_id("note@postroom.invalid", clock),
        body: format!("{}\n", body.trim_end()),
        date: clock.now_ms() / 1000,
        ..Mail::default()
    };
    let bytes = compose::build(&note)?;
    let parsed = parse::parse(&bytes);
    let now = clock.now_ms();
    let hash = content_hash(&bytes);
    Ok(store.write(|tx| {
        let raw = match tx.add_raw(
            &NewRaw {
                bytes: &bytes,
                hash,
                source: "note".into(),
                mailbox: c.mailbox,
            },
            now,
        )? {
            RawOutcome::New(id) | RawOutcome::SameBytes(id) => id,
        };
        let m = pipeline::record_own(tx, c.id, raw, &parsed, Direction::Note, clock)?;
        tx.log(&LogEntry {
            at: now,
            level: Level::Info,
            component: "notes".into(),
            raw: Some(raw),
            conv: Some(c.id),
            text: format!("note by {author} added to conversation #{}", c.id),
        })?;
        if let Some(by) = by {
            let who = crate::notify::mentions(body, &tx.users()?);
            if !who.is_empty()
                && let Some(conv) = tx.conversation(m.conv)?
            {
                let event = crate::notify::Event::Mentioned { by: by.id, who };
                crate::notify::notify_in(tx, clock, &event, &conv, body, None, &by.name)?;
            }
        }
        Ok::<_, StoreError>(m)
    })?)
}

/// Backoff after `attempts` failed tries: 1, 2, 4 ... minutes, at most an hour.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    let minutes = 1i64 << attempts.saturating_sub(1).min(6);
    minutes.min(60) * 60_000
}

/// Makes every waiting message due now (the admin's "retry now"); returns how many.
pub fn retry_now(tx: &mut crate::store::Tx<'_>, now: i64) -> Result<u64, StoreError> {
    let mut n = 0;
    for mut o in tx.outbox()? {
        if let OutboxState::Queued { due } = o.state
            && due > now
        {
            o.state = OutboxState::Queued { due: now };
            tx.put_outbox(&o)?;
            n += 1;
        }
    }
    Ok(n)
}

/// What the sender needs.
#[derive(Clone)]
pub struct SenderCtx {
    pub store: Arc<Store>,
    pub keys: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
}

/// Figures of one sender pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
    /// When the next queued entry is due (unix ms), if any.
    pub next_due: Option<i64>,
}

/// Delivers every due entry once (blocking; the service calls it from the blocking pool,
/// `postroom outbox send` directly).
pub fn send_due(ctx: &SenderCtx) -> Result<SendReport, StoreError> {
    send_where(ctx, |_| true)
}

/// Tries one entry now if it is due (a reply just queued from the command line).
pub fn send_one(ctx: &SenderCtx, id: u64) -> Result<SendReport, StoreError> {
    send_where(ctx, |o| o.id == id)
}

fn send_where(
    ctx: &SenderCtx,
    pick: impl Fn(&OutboxRecord) -> bool,
) -> Result<SendReport, StoreError> {
    let mut report = SendReport::default();
    let now = ctx.clock.now_ms();
    let r = ctx.store.read()?;
    let due: Vec<OutboxRecord> = r
        .outbox()?
        .into_iter()
        .filter(|o| matches!(o.state, OutboxState::Queued { due } if due <= now) && pick(o))
        .collect();
    let servers = r.smtp_servers()?;
    drop(r);
    for o in due {
        let outcome = deliver_one(ctx, &o, &servers);
        if outcome.is_ok() {
            // Crash tests: the relay has it, our record does not say so yet.
            crate::failpoint::hit("after-outbox-send");
        }
        let now = ctx.clock.now_ms();
        let mut next = o.clone();
        next.attempts = next.attempts.saturating_add(1);
        let (level, text) = match &outcome {
            Ok(reply) => {
                report.sent += 1;
                next.state = OutboxState::Sent {
                    at: now,
                    reply: reply.clone(),
                };
                next.last_error.clear();
                (
                    Level::Info,
                    format!(
                        "message {} sent to {}: relay said {reply:?}",
                        o.msg,
                        o.rcpt_to.join(", ")
                    ),
                )
            }
            Err(e) if e.is_permanent() => {
                report.failed += 1;
                next.state = OutboxState::Failed {
                    at: now,
                    reply: e.to_string(),
                };
                next.last_error = e.to_string();
                (
                    Level::Error,
                    format!("message {} NOT sent, refused for good: {e}", o.msg),
                )
            }
            Err(e) if now - o.created >= GIVE_UP_AFTER_MS => {
                report.failed += 1;
                let why = format!("gave up after 5 days of retrying; last error: {e}");
                next.state = OutboxState::Failed {
                    at: now,
                    reply: why.clone(),
                };
                next.last_error = e.to_string();
                (Level::Error, format!("message {} NOT sent: {why}", o.msg))
            }
            Err(e) => {
                report.retrying += 1;
                let wait = retry_delay_ms(next.attempts);
                next.state = OutboxState::Queued { due: now + wait };
                next.last_error = e.to_string();
                (
                    Level::Warn,
                    format!(
                        "message {} not sent yet (attempt {}): {e}; retrying in {} min",
                        o.msg,
                        next.attempts,
                        wait / 60_000
                    ),
                )
            }
        };
        match level {
            Level::Error => log::error!("outbox: {text}"),
            Level::Warn => log::warn!("outbox: {text}"),
            Level::Info | Level::Notice => log::info!("outbox: {text}"),
        }
        ctx.store.write(|tx| {
            tx.put_outbox(&next)?;
            tx.log(&log_entry(&o, now, level, text))
        })?;
        crate::failpoint::hit("after-outbox-commit");
        // Postroom's own mail (invitations, notifications: message 0) is not copied to
        // the mailbox's Sent folder.
        if outcome.is_ok() && o.msg.0 != 0 {
            sent_copy(ctx, &o);
        }
    }
    report.next_due = ctx
        .store
        .read()?
        .outbox()?
        .iter()
        .filter_map(|o| match o.state {
            OutboxState::Queued { due } => Some(due),
            _ => None,
        })
        .min();
    Ok(report)
}

/// A communication-log line about an outbox entry.
fn log_entry(o: &OutboxRecord, at: i64, level: Level, text: String) -> LogEntry {
    LogEntry {
        at,
        level,
        component: "outbox".into(),
        raw: Some(o.raw),
        conv: Some(o.conv),
        text,
    }
}

/// Copies a sent message to the mailbox's Sent folder, if it names one. A failure is
/// logged (the message itself went out); the copy is not retried.
fn sent_copy(ctx: &SenderCtx, o: &OutboxRecord) {
    let found = ctx.store.read().and_then(|r| {
        let Some(mb) = r.mailboxes()?.into_iter().find(|m| m.id == o.mailbox) else {
            return Ok(None);
        };
        let Some((acct_id, folder)) = mb.sent_copy else {
            return Ok(None);
        };
        let acct = r.accounts()?.into_iter().find(|a| a.id == acct_id);
        let bytes = r.raw_bytes(o.raw)?;
        Ok(acct.zip(bytes).map(|(a, b)| (a, folder, b)))
    });
    let (acct, folder, bytes) = match found {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            log::error!(
                "outbox: cannot read the Sent copy of message {}: {e}",
                o.msg
            );
            return;
        }
    };
    let fctx = crate::fetch::FetchCtx {
        store: ctx.store.clone(),
        keys: ctx.keys.clone(),
        clock: ctx.clock.clone(),
        waker: pipeline::Waker::detached(),
        states: Arc::default(),
    };
    let result = smol::block_on(crate::fetch::imap::save_sent_copy(
        &fctx, &acct, &folder, &bytes,
    ));
    let (level, text) = match result {
        Ok(()) => (
            Level::Info,
            format!(
                "message {}: copy saved in {folder:?} of account {:?}",
                o.msg, acct.name
            ),
        ),
        Err(e) => (
            Level::Warn,
            format!(
                "message {} was sent, but its copy could not be saved in {folder:?}: {e}",
                o.msg
            ),
        ),
    };
    if level == Level::Warn {
        log::warn!("outbox: {text}");
    }
    let now = ctx.clock.now_ms();
    if let Err(e) = ctx
        .store
        .write(|tx| tx.log(&log_entry(o, now, level, text)))
    {
        log::error!("outbox: {e}");
    }
}

fn deliver_one(
    ctx: &SenderCtx,
    o: &OutboxRecord,
    servers: &[SmtpRecord],
) -> Result<String, crate::smtp::SmtpError> {
    use crate::smtp::SmtpError;
    let server = servers
        .iter()
        .find(|s| s.id == o.smtp)
        .ok_or_else(|| SmtpError::Temporary {
            server: format!("SMTP server {}", o.smtp),
            step: "finding the SMTP server".into(),
            detail: "it was removed; set the mailbox's SMTP server again".into(),
        })?;
    let bytes = ctx
        .store
        .read()
        .and_then(|r| r.raw_bytes(o.raw))
        .map_err(|e| SmtpError::Temporary {
            server: server.name.clone(),
            step: "reading the message".into(),
            detail: e.to_string(),
        })?
        .ok_or_else(|| SmtpError::Invalid {
            detail: format!("the bytes of raw message {} are missing", o.raw),
        })?;
    let password =
        crate::smtp::servers::password(&ctx.keys, server).map_err(|e| SmtpError::Temporary {
            server: server.name.clone(),
            step: "opening the password".into(),
            detail: e.to_string(),
        })?;
    crate::smtp::deliver(
        server,
        password.as_ref(),
        &crate::smtp::Outgoing {
            mail_from: &o.mail_from,
            rcpt_to: &o.rcpt_to,
            bytes: &bytes,
        },
        &mut |s| log::debug!("outbox: {}: {} {}", server.name, s.what, s.detail),
    )
}

/// The service's sender: delivers due mail, sleeps until the next is due or `wake`
/// fires (a new reply), until `stop` closes.
pub async fn run_sender(
    ctx: SenderCtx,
    wake: smol::channel::Receiver<()>,
    stop: smol::channel::Receiver<()>,
) {
    use smol::future::FutureExt;
    loop {
        let c = ctx.clone();
        let next = match smol::unblock(move || send_due(&c)).await {
            Ok(r) => r.next_due,
            Err(e) => {
                log::error!("outbox: {e}");
                Some(ctx.clock.now_ms() + 30_000)
            }
        };
        let wait = next
            .map(|due| (due - ctx.clock.now_ms()).clamp(0, 3_600_000))
            .unwrap_or(3_600_000);
        let stopped = async {
            let _ = stop.recv().await;
            true
        }
        .or(async {
            let _ = wake.recv().await;
            while wake.try_recv().is_ok() {}
            false
        })
        .or(async {
            smol::Timer::after(Duration::from_millis(wait.unsigned_abs())).await;
            false
        })
        .await;
        if stopped {
            return;
        }
    }
}

/// The outbox state of each of our messages, for showing on conversations.
pub fn states(r: &crate::store::Reader) -> Result<Vec<(MsgId, OutboxRecord)>, StoreError> {
    Ok(r.outbox()?.into_iter().map(|o| (o.msg, o)).collect())
}

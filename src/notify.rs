//! Who is told what by mail, as outbox rows: invitations and password-reset links to
//! users, and notifications to agents (a new conversation in their mailboxes, a customer
//! reply in a conversation assigned to them or that they follow, assigned to them, a
//! mention in a note), each per the agent's settings and never to the agent who caused
//! it. And the way back: an agent's answer to a notification, from their own address and
//! carrying the notification's secret token, becomes a reply to the customer.
//!
//! Owns: which mailbox can send Postroom's own mail (a valid address and an SMTP server),
//! who is told what (`recipients`, `mentions`: pure functions), the text of those mails,
//! committing them as outbox rows (the exact bytes, kept as a raw message that is never
//! filed on a conversation, and an outbox entry) inside the caller's write transaction
//! so the event and its mail are one commit, the per-notification tokens (only their
//! SHA-256 is stored), recognising an answer (`agent_answer`) and stripping the quoted
//! notification from it (`strip_quoted`).
//! Must not: send anything itself (the outbox sender delivers the rows), speak SMTP, or
//! log a link's or a notification's token.

use crate::compose::{self, ComposeError, Mail};
use crate::config::Settings;
use crate::model::{
    Clock, ConvId, ConversationRecord, Direction, Level, LogEntry, MailboxRecord, MsgId,
    NotifyPrefs, NotifyTokenRecord, OutboxRecord, OutboxState, RawId, SmtpId, UserId, UserRecord,
    Validity,
};
use crate::pipeline::parse::Parsed;
use crate::store::{NewRaw, RawOutcome, StoreError, Tx, content_hash};
use std::collections::BTreeMap;

/// The Message-ID of a notification is `pr-notify.TOKEN@DOMAIN`.
pub const TOKEN_PREFIX: &str = "pr-notify.";
/// How long an answer by mail to a notification is sent on to the customer (seconds).
/// An older notification's answer is kept as an internal note instead: a stolen or
/// long-forgotten notification cannot speak for the team for ever.
pub const ANSWER_TTL_SECS: i64 = 30 * 24 * 3600;
/// Most characters of the new text a notification carries.
const MAX_TEXT: usize = 4000;

/// A mailbox that can send Postroom's own mail: its id, name, address and SMTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    pub mailbox: crate::model::MailboxId,
    pub name: String,
    pub display: String,
    pub address: String,
    pub smtp: SmtpId,
}

/// The mailboxes that can send (a valid main address and an SMTP server), in the
/// mailboxes' order; the first is the default sender of invitations.
pub fn senders(mailboxes: &[MailboxRecord]) -> Vec<Sender> {
    mailboxes
        .iter()
        .filter_map(|m| {
            let address = m.address.clone()?;
            let smtp = m.smtp?;
            (m.address_validity == Validity::Valid).then(|| Sender {
                mailbox: m.id,
                name: m.name.clone(),
                display: if m.display_name.is_empty() {
                    m.name.clone()
                } else {
                    m.display_name.clone()
                },
                address,
                smtp,
            })
        })
        .collect()
}

/// What an invitation mail is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Invitation,
    PasswordReset,
}

/// The invitation (or reset) mail to `user` with the absolute `link`.
pub fn invitation_mail(
    kind: LinkKind,
    user: &UserRecord,
    invited_by: &str,
    link: &str,
    from: &Sender,
    clock: &dyn Clock,
) -> Mail {
    let (subject, body) = match kind {
        LinkKind::Invitation => (
            format!("Your Postroom account at {}", from.display),
            format!(
                "Hello {},\n\n{invited_by} invited you to Postroom, the shared mailbox of {}.\nYour login is: {}\n\nChoose your password here (the link works once, for 7 days):\n{link}\n\nIf you did not expect this mail, ignore it.\n",
                user.name, from.display, user.login
            ),
        ),
        LinkKind::PasswordReset => (
            format!("New Postroom password for {}", user.login),
            format!(
                "Hello {},\n\n{invited_by} reset your Postroom password; the old one no longer works.\nYour login is: {}\n\nChoose a new password here (the link works once, for 7 days):\n{link}\n",
                user.name, user.login
            ),
        ),
    };
    Mail {
        from_name: from.display.clone(),
        from: from.address.clone(),
        to: vec![user.email.clone()],
        subject,
        message_id: compose::new_message_id(&from.address, clock),
        body,
        date: clock.now_ms() / 1000,
        // Automatic mail: RFC 3834 headers, so vacation replies do not answer it.
        automatic: true,
        loop_id: format!("postroom; {}", from.address),
        ..Mail::default()
    }
}

/// Why a mail could not be queued.
#[derive(Debug)]
pub enum NotifyError {
    Compose(ComposeError),
    Store(StoreError),
}

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyError::Compose(e) => e.fmt(f),
            NotifyError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NotifyError {}

impl From<StoreError> for NotifyError {
    fn from(e: StoreError) -> Self {
        NotifyError::Store(e)
    }
}

impl From<ComposeError> for NotifyError {
    fn from(e: ComposeError) -> Self {
        NotifyError::Compose(e)
    }
}

/// Commits `mail` as an outbox row inside `tx`: its exact bytes as a raw message that is
/// never filed on a conversation (`conv` only says what it is about: the log links it),
/// and the outbox entry (message 0: no message of a conversation). `what` names it in the
/// communication log. Returns the outbox id.
pub fn queue_in(
    tx: &mut Tx<'_>,
    clock: &dyn Clock,
    from: &Sender,
    mail: &Mail,
    conv: Option<ConvId>,
    what: &str,
) -> Result<u64, NotifyError> {
    let bytes = compose::build(mail)?;
    let now = clock.now_ms();
    let raw = match tx.add_raw(
        &NewRaw {
            bytes: &bytes,
            hash: content_hash(&bytes),
            source: format!("notify:{}", from.name),
            mailbox: from.mailbox,
        },
        now,
    )? {
        RawOutcome::New(id) | RawOutcome::SameBytes(id) => id,
    };
    // Our own mail: never through the intake pipeline.
    tx.finish_raw(raw, None)?;
    let recipients = mail.recipients();
    let id = tx.next_id("outbox")?;
    tx.put_outbox(&OutboxRecord {
        id,
        raw,
        msg: MsgId(0),
        conv: conv.unwrap_or(ConvId(0)),
        mailbox: from.mailbox,
        smtp: from.smtp,
        // Automatic mail: no bounces (RFC 3834).
        mail_from: String::new(),
        rcpt_to: recipients.clone(),
        created: now,
        attempts: 0,
        last_error: String::new(),
        state: OutboxState::Queued { due: now },
    })?;
    tx.log(&LogEntry {
        at: now,
        level: Level::Info,
        component: "notify".into(),
        raw: Some(raw),
        conv,
        text: format!(
            "{what} queued from {} to {} (Message-ID <{}>)",
            mail.from,
            recipients.join(", "),
            mail.message_id
        ),
    })?;
    Ok(id)
}

/// What happened, for `recipients`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new conversation (from mail that just arrived).
    NewConversation,
    /// A customer's mail joined the conversation.
    CustomerReply,
    /// `by` assigned the conversation to `to`.
    Assigned { by: UserId, to: UserId },
    /// `by` mentioned `who` in a note.
    Mentioned { by: UserId, who: Vec<UserId> },
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::NewConversation => "new conversation",
            Event::CustomerReply => "customer reply",
            Event::Assigned { .. } => "assignment",
            Event::Mentioned { .. } => "mention",
        }
    }
}

/// Who is told about `event` on `conv`: enabled users with a personal address who may
/// see the conversation's mailbox and asked for this kind of event, never the one who
/// caused it (`by` of the event, or the user whose address sent the mail `sender`).
pub fn recipients(
    event: &Event,
    conv: &ConversationRecord,
    users: &[UserRecord],
    prefs: &BTreeMap<UserId, NotifyPrefs>,
    sender: Option<&str>,
) -> Vec<UserId> {
    users
        .iter()
        .filter(|u| !u.disabled && !u.email.is_empty() && u.may_see(conv.mailbox))
        .filter(|u| sender.is_none_or(|s| !s.trim().eq_ignore_ascii_case(u.email.trim())))
        .filter(|u| {
            let p = prefs.get(&u.id).copied().unwrap_or_default();
            match event {
                Event::NewConversation => p.new_conversation,
                Event::CustomerReply => {
                    p.customer_reply
                        && (conv.assignee == Some(u.id) || conv.followers.contains(&u.id))
                }
                Event::Assigned { by, to } => p.assigned && u.id == *to && u.id != *by,
                Event::Mentioned { by, who } => p.mentioned && who.contains(&u.id) && u.id != *by,
            }
        })
        .map(|u| u.id)
        .collect()
}

/// The users `@login` names in `text` (a login after `@` at the start or after a
/// character that is not part of a word), each once, in order.
pub fn mentions(text: &str, users: &[UserRecord]) -> Vec<UserId> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let word = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+');
    let mut i = 0;
    while i < chars.len() {
        let at = chars.get(i).copied() == Some('@');
        let before_ok = i == 0 || chars.get(i - 1).is_none_or(|c| !word(*c) && *c != '@');
        if at && before_ok {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|c| word(*c)) {
                j += 1;
            }
            let name: String = chars.get(i + 1..j).unwrap_or_default().iter().collect();
            let name = name.trim_end_matches(['.', '-']).to_lowercase();
            if let Some(u) = users.iter().find(|u| u.login == name)
                && !out.contains(&u.id)
            {
                out.push(u.id);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The text an agent wrote above the quoted notification: everything before the first
/// quoted line (`>`) or a mail client's "original message" separator, without the
/// "On ... wrote:" line that introduces the quote, trailing blank lines removed.
pub fn strip_quoted(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('>')
            || t.starts_with("-----Original Message-----")
            || t.starts_with("-----Ursprüngliche Nachricht-----")
            || t.starts_with("-------- Message d'origine --------")
            || t.starts_with("-------- Original Message --------")
            || t.starts_with("________________________________")
        {
            break;
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    // "On <date>, <who> wrote:" (possibly broken over two lines), in a few languages.
    let intro = |l: &str| {
        let l = l.trim_end();
        l.ends_with("wrote:")
            || l.ends_with("écrit :")
            || l.ends_with("écrit:")
            || l.ends_with("schrieb:")
    };
    if kept.last().is_some_and(|l| intro(l)) {
        let last = kept.pop().unwrap_or_default();
        if last.trim() == "wrote:"
            && kept
                .last()
                .is_some_and(|l| l.trim_start().starts_with("On "))
        {
            kept.pop();
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    kept.join("\n")
}

/// The tokens of notifications that the ids (In-Reply-To, References) name.
fn tokens_in<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    ids.filter_map(|id| {
        let rest = id.trim_matches(['<', '>']).strip_prefix(TOKEN_PREFIX)?;
        let token = rest.split('@').next()?;
        (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| token.to_ascii_lowercase())
    })
    .collect()
}

/// Whether `p` is an agent's answer to one of their notifications: it names a
/// notification's Message-ID whose token is stored, AND comes from the address of the
/// (enabled) user the notification went to. Anything else is not (a forged answer is
/// customer mail like any other). Also returns when the notification was made (Unix s).
pub fn agent_answer(
    tx: &Tx<'_>,
    p: &Parsed,
) -> Result<Option<(UserRecord, ConvId, i64)>, StoreError> {
    let Some(from) = p.from.as_ref() else {
        return Ok(None);
    };
    for token in tokens_in(p.in_reply_to.iter().chain(&p.references)) {
        let Some(t) = tx.notify_token(&crate::users::token_key(&token))? else {
            continue;
        };
        if let Some(u) = tx.user(t.user)?
            && !u.disabled
            && !u.email.is_empty()
            && u.email.trim().eq_ignore_ascii_case(from.email.trim())
        {
            return Ok(Some((u, t.conv, t.created)));
        }
    }
    Ok(None)
}

/// Inside commit 2: turns an agent's answer (see `agent_answer`) into a reply to the
/// customer through the normal reply path (the mailbox's address, signature, threading),
/// with the quoted notification removed. The agent's mail itself is kept as a raw
/// message and never filed as customer mail. When no reply can be made (nothing written
/// above the quote, the mailbox cannot send, the notification made at `token_created`
/// is older than `ANSWER_TTL_SECS`), the answer is filed as an internal note on the
/// conversation and the log says why. Returns whether a reply was queued.
#[allow(clippy::too_many_arguments)]
pub fn answer_by_mail(
    tx: &mut Tx<'_>,
    clock: &dyn Clock,
    settings: &Settings,
    raw: RawId,
    p: &Parsed,
    bytes: &[u8],
    agent: &UserRecord,
    conv: ConvId,
    token_created: i64,
) -> Result<bool, StoreError> {
    let text = crate::pipeline::parse::body_text(bytes).unwrap_or_else(|| p.preview.clone());
    let body = strip_quoted(&text);
    let req = crate::outbox::ReplyRequest {
        conv,
        body: body.clone(),
        agent: agent.name.clone(),
        quote: false,
        ..Default::default()
    };
    let age = clock.now_secs() - token_created;
    let built = if age > ANSWER_TTL_SECS {
        Err(format!(
            "the notification is {} days old, and answers by mail are sent on for {} days only; answer in the web UI",
            age / 86_400,
            ANSWER_TTL_SECS / 86_400
        ))
    } else if body.trim().is_empty() {
        Err("nothing was written above the quoted notification".to_owned())
    } else {
        crate::outbox::build_reply(&*tx, settings, clock, &req)
            .map_err(|e| e.to_string())
            .and_then(|(c, mb, smtp, mail)| {
                if mail.recipients().len() > settings.max_recipients as usize {
                    return Err(format!(
                        "{} recipients is more than the {} allowed",
                        mail.recipients().len(),
                        settings.max_recipients
                    ));
                }
                compose::build(&mail)
                    .map(|b| (c, mb, smtp, mail, b))
                    .map_err(|e| e.to_string())
            })
    };
    let now = clock.now_ms();
    match built {
        Ok((c, mb, smtp, mail, out)) => {
            crate::outbox::queue_in(tx, clock, c.id, &mb, smtp, &mail, &out, false)?;
            tx.finish_raw(raw, None)?;
            tx.log(&LogEntry {
                at: now,
                level: Level::Info,
                component: "notify".into(),
                raw: Some(raw),
                conv: Some(c.id),
                text: format!(
                    "{} answered a notification by mail: sent to the customer as a reply from {} (Message-ID <{}>)",
                    agent.login, mail.from, mail.message_id
                ),
            })?;
            Ok(true)
        }
        Err(why) => {
            let m = crate::pipeline::record_own(tx, conv, raw, p, Direction::Note, clock)?;
            tx.log(&LogEntry {
                at: now,
                level: Level::Warn,
                component: "notify".into(),
                raw: Some(raw),
                conv: Some(m.conv),
                text: format!(
                    "{} answered a notification by mail, but it was NOT sent to the customer: {why}; it is kept as an internal note (message {})",
                    agent.login, m.id
                ),
            })?;
            Ok(false)
        }
    }
}

/// Inside the event's transaction: queues a notification about `event` on `conv` to
/// every recipient (see `recipients`); `text` is the new text (mail body or note),
/// `sender` the address the event came from (never notified). Returns how many.
pub fn notify_in(
    tx: &mut Tx<'_>,
    clock: &dyn Clock,
    event: &Event,
    conv: &ConversationRecord,
    text: &str,
    sender: Option<&str>,
    by_name: &str,
) -> Result<u64, StoreError> {
    let users = tx.users()?;
    let mut prefs = BTreeMap::new();
    for u in &users {
        prefs.insert(u.id, tx.notify_prefs(u.id)?);
    }
    let to = recipients(event, conv, &users, &prefs, sender);
    if to.is_empty() {
        return Ok(0);
    }
    let mailboxes = tx.mailboxes()?;
    let all = senders(&mailboxes);
    let now = clock.now_ms();
    let Some(from) = all
        .iter()
        .find(|s| s.mailbox == conv.mailbox)
        .or_else(|| all.first())
    else {
        tx.log(&LogEntry {
            at: now,
            level: Level::Warn,
            component: "notify".into(),
            raw: None,
            conv: Some(conv.id),
            text: format!(
                "{} notification(s) about #{} not sent: no mailbox can send mail (none has both an address and an SMTP server)",
                to.len(),
                conv.id
            ),
        })?;
        return Ok(0);
    };
    let mailbox_name = mailboxes
        .iter()
        .find(|m| m.id == conv.mailbox)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let web = tx
        .setting("web_url")?
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "https://postroom.local".into());
    let prefix = tx
        .setting("subject_tag_prefix")?
        .unwrap_or_else(|| "#".into());
    let mut n = 0;
    for id in to {
        let Some(u) = users.iter().find(|u| u.id == id) else {
            continue;
        };
        let (token, key) = crate::users::new_token();
        tx.put_notify_token(
            &key,
            &NotifyTokenRecord {
                user: u.id,
                conv: conv.id,
                created: now / 1000,
            },
        )?;
        let mail = notification_mail(&NotificationText {
            event,
            conv,
            mailbox: &mailbox_name,
            text,
            by: by_name,
            web: web.trim_end_matches('/'),
            prefix: &prefix,
            to: u,
            from,
            token: &token,
            clock,
        });
        let what = format!(
            "{} notification about #{} to {}",
            event.kind(),
            conv.id,
            u.login
        );
        match queue_in(tx, clock, from, &mail, Some(conv.id), &what) {
            Ok(_) => n += 1,
            Err(NotifyError::Store(e)) => return Err(e),
            Err(NotifyError::Compose(e)) => tx.log(&LogEntry {
                at: now,
                level: Level::Warn,
                component: "notify".into(),
                raw: None,
                conv: Some(conv.id),
                text: format!("{what} not sent: {e}"),
            })?,
        }
    }
    Ok(n)
}

/// Inside the assignment's transaction: tells `to` that `by` assigned `conv` to them
/// (with the newest message's beginning), per their settings.
pub fn notify_assigned(
    tx: &mut Tx<'_>,
    clock: &dyn Clock,
    conv: &ConversationRecord,
    by: &UserRecord,
    to: UserId,
) -> Result<u64, StoreError> {
    let mut text = String::new();
    if let Some(last) = tx.conversation_messages(conv.id)?.last()
        && let Some(m) = tx.message(*last)?
    {
        text = m.preview;
    }
    let event = Event::Assigned { by: by.id, to };
    notify_in(tx, clock, &event, conv, &text, None, &by.name)
}

struct NotificationText<'a> {
    event: &'a Event,
    conv: &'a ConversationRecord,
    mailbox: &'a str,
    text: &'a str,
    by: &'a str,
    web: &'a str,
    prefix: &'a str,
    to: &'a UserRecord,
    from: &'a Sender,
    token: &'a str,
    clock: &'a dyn Clock,
}

fn notification_mail(n: &NotificationText<'_>) -> Mail {
    let id = n.conv.id;
    let headline = match n.event {
        Event::NewConversation => format!("New conversation in {}", n.mailbox),
        Event::CustomerReply => "The customer wrote again".to_owned(),
        Event::Assigned { .. } => format!("{} assigned a conversation to you", n.by),
        Event::Mentioned { .. } => format!("{} mentioned you in a note", n.by),
    };
    let customer = n
        .conv
        .customer
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "(no address)".into());
    let mut text: String = n.text.trim().chars().take(MAX_TEXT).collect();
    if n.text.trim().chars().count() > MAX_TEXT {
        text.push_str("\n[...]");
    }
    let body = format!(
        "{headline}\n\nConversation: #{id} {}\nMailbox: {}\nCustomer: {customer}\n\n{text}\n\n-- \nOpen it: {}/c/{id}\nAnswer this mail to reply to the customer from {}: only what you write above the quoted text is sent.\n",
        n.conv.subject, n.mailbox, n.web, n.from.address
    );
    let domain = n
        .from
        .address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("postroom.invalid");
    Mail {
        from_name: format!("{} (Postroom)", n.from.display),
        from: n.from.address.clone(),
        to: vec![n.to.email.clone()],
        subject: format!("{headline}: {} [{}{id}]", n.conv.subject, n.prefix),
        message_id: format!("{TOKEN_PREFIX}{}@{domain}", n.token),
        body,
        date: n.clock.now_ms() / 1000,
        automatic: true,
        loop_id: format!("postroom; {}", n.from.address),
        ..Mail::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{FixedClock, MailboxId, Role};

    fn mailbox(id: u64, address: Option<&str>, smtp: Option<u64>) -> MailboxRecord {
        MailboxRecord {
            id: MailboxId(id),
            name: format!("m{id}"),
            address: address.map(str::to_owned),
            smtp: smtp.map(SmtpId),
            ..MailboxRecord::default()
        }
    }

    #[test]
    fn only_mailboxes_with_a_valid_address_and_a_server_send() {
        let mut invalid = mailbox(4, Some("d@example.org"), Some(1));
        invalid.address_validity = Validity::Invalid;
        let all = [
            mailbox(1, None, Some(1)),
            mailbox(2, Some("b@example.org"), None),
            mailbox(3, Some("c@example.org"), Some(7)),
            invalid,
        ];
        let s = senders(&all);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].address.as_str(), s[0].smtp),
            ("c@example.org", SmtpId(7))
        );
    }

    #[test]
    fn the_invitation_carries_the_link_and_the_login() {
        let u = UserRecord {
            id: UserId(3),
            login: "zoe".into(),
            name: "Zoé".into(),
            email: "zoe@home.example".into(),
            role: Role::Agent,
            password_hash: String::new(),
            mailboxes: Vec::new(),
            disabled: false,
            created: 0,
            password_changed: 0,
            language: String::new(),
            signature: String::new(),
        };
        let from = senders(&[mailbox(1, Some("support@example.org"), Some(1))])
            .pop()
            .unwrap();
        let m = invitation_mail(
            LinkKind::Invitation,
            &u,
            "Boss",
            "https://pr.example/invite/abc",
            &from,
            &FixedClock(1_000_000),
        );
        assert_eq!(m.to, vec!["zoe@home.example".to_string()]);
        assert!(
            m.body.contains("https://pr.example/invite/abc"),
            "{}",
            m.body
        );
        assert!(m.body.contains("zoe"), "{}", m.body);
        let bytes = compose::build(&m).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("Auto-Submitted"));
    }

    fn user(id: u64, login: &str, email: &str, mailboxes: &[u64]) -> UserRecord {
        UserRecord {
            id: UserId(id),
            login: login.into(),
            name: login.into(),
            email: email.into(),
            role: Role::Agent,
            password_hash: String::new(),
            mailboxes: mailboxes.iter().map(|m| MailboxId(*m)).collect(),
            disabled: false,
            created: 0,
            password_changed: 0,
            language: String::new(),
            signature: String::new(),
        }
    }

    fn conv(mailbox: u64, assignee: Option<u64>, followers: &[u64]) -> ConversationRecord {
        ConversationRecord {
            id: ConvId(9),
            mailbox: MailboxId(mailbox),
            status: crate::model::Status::Active,
            subject: "Printer".into(),
            customer: None,
            created: 0,
            last_activity: 0,
            message_count: 1,
            merged_into: None,
            assignee: assignee.map(UserId),
            followers: followers.iter().map(|f| UserId(*f)).collect(),
            priority: Default::default(),
            tags: Vec::new(),
            fields: Default::default(),
        }
    }

    #[test]
    fn recipients_follow_settings_mailboxes_and_never_the_actor() {
        let mut disabled = user(5, "eve", "eve@x.example", &[1]);
        disabled.disabled = true;
        let users = vec![
            user(1, "anna", "anna@x.example", &[1]),
            user(2, "bob", "bob@x.example", &[2]),
            user(3, "carl", "carl@x.example", &[1]),
            user(4, "dora", "", &[1]),
            disabled,
        ];
        let all_on = NotifyPrefs {
            new_conversation: true,
            customer_reply: true,
            assigned: true,
            mentioned: true,
        };
        let mut prefs: BTreeMap<UserId, NotifyPrefs> =
            (1..=5).map(|i| (UserId(i), all_on)).collect();
        prefs.insert(
            UserId(3),
            NotifyPrefs {
                new_conversation: false,
                ..all_on
            },
        );
        let ids = |v: Vec<UserId>| v.into_iter().map(|u| u.0).collect::<Vec<_>>();
        let c = conv(1, None, &[]);
        // New conversation: who may see mailbox 1, asked for it, has an address, enabled.
        assert_eq!(
            ids(recipients(
                &Event::NewConversation,
                &c,
                &users,
                &prefs,
                None
            )),
            [1]
        );
        // The sender (an agent's own address) is never told.
        assert!(
            recipients(
                &Event::NewConversation,
                &c,
                &users,
                &prefs,
                Some("ANNA@x.example")
            )
            .is_empty()
        );
        // The defaults do not ask for new conversations.
        assert!(recipients(&Event::NewConversation, &c, &users, &BTreeMap::new(), None).is_empty());
        // A customer reply: the assignee and followers only.
        let c = conv(1, Some(3), &[1, 2]);
        assert_eq!(
            ids(recipients(&Event::CustomerReply, &c, &users, &prefs, None)),
            [1, 3]
        );
        // Assigned: only the assignee, never by themself.
        let by_anna = Event::Assigned {
            by: UserId(1),
            to: UserId(3),
        };
        assert_eq!(ids(recipients(&by_anna, &c, &users, &prefs, None)), [3]);
        let self_assigned = Event::Assigned {
            by: UserId(3),
            to: UserId(3),
        };
        assert!(recipients(&self_assigned, &c, &users, &prefs, None).is_empty());
        // Mentioned: those named who may see the mailbox, not the author.
        let m = Event::Mentioned {
            by: UserId(1),
            who: vec![UserId(1), UserId(2), UserId(3)],
        };
        assert_eq!(ids(recipients(&m, &c, &users, &prefs, None)), [3]);
        prefs.insert(
            UserId(3),
            NotifyPrefs {
                mentioned: false,
                ..all_on
            },
        );
        assert!(recipients(&m, &c, &users, &prefs, None).is_empty());
    }

    #[test]
    fn mentions_are_logins_after_an_at_sign() {
        let users = vec![
            user(1, "anna", "", &[]),
            user(2, "bob.b", "", &[]),
            user(3, "carl", "", &[]),
        ];
        let ids = |t: &str| {
            mentions(t, &users)
                .into_iter()
                .map(|u| u.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("@anna please look, and @Bob.B."), [1, 2]);
        assert_eq!(ids("mail carl@example.org or @nobody"), Vec::<u64>::new());
        assert_eq!(ids("(@carl) @anna @anna"), [3, 1]);
    }

    #[test]
    fn the_quoted_notification_is_stripped_from_an_answer() {
        let t = "We will send a technician.\n\nBest, Anna\n\nOn Mon, 23 Nov 2026 at 10:00, Support wrote:\n> New conversation\n> text\n";
        assert_eq!(strip_quoted(t), "We will send a technician.\n\nBest, Anna");
        let t = "Yes.\nOn Mon, 23 Nov 2026 at 10:00, Support <s@x>\nwrote:\n\n> quoted";
        assert_eq!(strip_quoted(t), "Yes.");
        let t = "Oui.\n\nLe lun. 23 nov. 2026, Support a écrit :\n> cité";
        assert_eq!(strip_quoted(t), "Oui.");
        let t = "Done.\n-----Original Message-----\nFrom: Support";
        assert_eq!(strip_quoted(t), "Done.");
        assert_eq!(strip_quoted("> only a quote"), "");
    }

    #[test]
    fn only_well_formed_notification_ids_carry_a_token() {
        let good = format!("{TOKEN_PREFIX}{}@example.org", "ab".repeat(32));
        let ids = [
            "x@y".to_string(),
            format!("{TOKEN_PREFIX}short@example.org"),
            good.clone(),
            format!("<{good}>"),
        ];
        assert_eq!(
            tokens_in(ids.iter()),
            vec!["ab".repeat(32), "ab".repeat(32)]
        );
    }
}

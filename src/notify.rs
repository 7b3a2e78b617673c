//! Who is told what by mail, as outbox rows: invitations and password-reset links to
//! users.
//!
//! Owns: which mailbox can send Postroom's own mail (a valid address and an SMTP server),
//! the text of those mails, and committing them as outbox rows (the exact bytes, kept as
//! a raw message that is never filed on a conversation, and an outbox entry) inside the
//! caller's write transaction, so the event and its mail are one commit.
//! Must not: send anything itself (the outbox sender delivers the rows), speak SMTP, or
//! log a link's token.

use crate::compose::{self, ComposeError, Mail};
use crate::model::{
    Clock, ConvId, Level, LogEntry, MailboxRecord, MsgId, OutboxRecord, OutboxState, SmtpId,
    UserRecord, Validity,
};
use crate::store::{NewRaw, RawOutcome, StoreError, Tx, content_hash};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{FixedClock, MailboxId, Role, UserId};

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
}

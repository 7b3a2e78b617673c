//! Auto-replies that never loop: when mail starts a new conversation in a mailbox that
//! answers automatically, one acknowledgement goes back, unless anything suggests a
//! machine is on the other side.
//!
//! Owns: the decision (`decide`, pure: RFC 3834 and vendor headers as parsed, bulk and
//! list mail, bounces, null senders, mailer-daemon/noreply senders, our own addresses,
//! any Postroom `X-Loop`, one per sender and mailbox per 24 hours, at most
//! `MAX_AUTO_PER_SENDER_PER_DAY` automatic messages per sender per day), rendering the
//! templates, and queueing the answer in the transaction that creates the conversation.
//! Must not: send (the outbox does), or answer anything but a new conversation.

use crate::compose::{self, Mail};
use crate::config::Settings;
use crate::model::{
    Clock, ConvId, Level, LogEntry, MailboxId, MailboxRecord, MessageRecord, MsgFlags, Validity,
};
use crate::pipeline::parse::Parsed;
use crate::store::{StoreError, Tx};

/// OTOBO's limit: at most this many automatic messages to one sender per day.
pub const MAX_AUTO_PER_SENDER_PER_DAY: usize = 40;
const DAY_MS: i64 = 86_400_000;

/// Why no auto-reply goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    Off,
    /// The mailbox has no valid address or no SMTP server.
    NotReady,
    /// The mail is automatic itself (the flag names why).
    Automatic(String),
    NoSender,
    /// mailer-daemon, postmaster, noreply and the like.
    Daemon(String),
    /// One of our own addresses.
    Ours(String),
    /// It carries a Postroom `X-Loop`.
    Loop(String),
    AlreadyToday,
    DailyCap,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Off => f.write_str("auto-reply is off for this mailbox"),
            Skip::NotReady => f.write_str("the mailbox has no valid address or SMTP server"),
            Skip::Automatic(why) => write!(f, "the mail is automatic ({why})"),
            Skip::NoSender => f.write_str("the mail has no sender address"),
            Skip::Daemon(a) => write!(f, "{a} is a system or no-reply address"),
            Skip::Ours(a) => write!(f, "{a} is one of our own addresses"),
            Skip::Loop(v) => write!(f, "it carries our loop marker X-Loop: {v}"),
            Skip::AlreadyToday => f.write_str(
                "this sender already got an auto-reply from this mailbox in the last 24 hours",
            ),
            Skip::DailyCap => write!(
                f,
                "this sender already got {MAX_AUTO_PER_SENDER_PER_DAY} automatic messages today"
            ),
        }
    }
}

fn is_daemon(address: &str) -> bool {
    let local = address
        .split('@')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace(['-', '_', '.'], "");
    [
        "mailerdaemon",
        "postmaster",
        "noreply",
        "donotreply",
        "noanswer",
        "bounce",
        "bounces",
        "autoreply",
        "listserv",
        "majordomo",
    ]
    .iter()
    .any(|d| local == *d || local.starts_with(&format!("{d}+")))
        || local.starts_with("owner") && local.contains("list")
}

/// Whether a new conversation's first message gets an auto-reply. `recent` is every
/// automatic message sent to this sender in the last 24 hours: (when, mailbox).
pub fn decide(
    mailbox: &MailboxRecord,
    ready: bool,
    p: &Parsed,
    mailboxes: &[MailboxRecord],
    recent: &[(i64, MailboxId)],
) -> Result<String, Skip> {
    if !mailbox.auto_reply {
        return Err(Skip::Off);
    }
    if !ready {
        return Err(Skip::NotReady);
    }
    let auto = [
        (MsgFlags::AUTO_REPLY, "auto-submitted"),
        (MsgFlags::BOUNCE, "a delivery report"),
        (MsgFlags::BULK, "bulk precedence"),
        (MsgFlags::LIST, "mailing-list mail"),
    ];
    if let Some((_, why)) = auto.iter().find(|(f, _)| p.flags.has(*f)) {
        return Err(Skip::Automatic((*why).to_owned()));
    }
    if let Some(l) = &p.x_loop
        && l.to_ascii_lowercase().starts_with("postroom")
    {
        return Err(Skip::Loop(l.clone()));
    }
    let sender = p
        .from
        .as_ref()
        .map(|a| a.email.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or(Skip::NoSender)?;
    if is_daemon(&sender) {
        return Err(Skip::Daemon(sender));
    }
    if crate::mailboxes::is_ours(mailboxes, &sender) {
        return Err(Skip::Ours(sender));
    }
    if recent.len() >= MAX_AUTO_PER_SENDER_PER_DAY {
        return Err(Skip::DailyCap);
    }
    if recent.iter().any(|(_, m)| *m == mailbox.id) {
        return Err(Skip::AlreadyToday);
    }
    Ok(sender)
}

/// Called by the pipeline in the transaction that created conversation `conv` from
/// message `m`: queues the auto-reply or logs why not. Template errors are logged, never
/// fatal to intake. Returns whether one was queued.
pub fn on_new_conversation(
    tx: &mut Tx<'_>,
    conv: ConvId,
    m: &MessageRecord,
    p: &Parsed,
    settings: &Settings,
    clock: &dyn Clock,
) -> Result<bool, StoreError> {
    let mailboxes = tx.mailboxes()?;
    let Some(conv_rec) = tx.conversation(conv)? else {
        return Ok(false);
    };
    let Some(mailbox) = mailboxes.iter().find(|x| x.id == conv_rec.mailbox).cloned() else {
        return Ok(false);
    };
    if !mailbox.auto_reply {
        return Ok(false);
    }
    let smtp = mailbox.smtp.filter(|id| {
        tx.smtp_servers()
            .is_ok_and(|l| l.iter().any(|s| s.id == *id))
    });
    let from = mailbox
        .address
        .clone()
        .filter(|_| mailbox.address_validity == Validity::Valid);
    let now = clock.now_ms();
    let sender_key = p
        .from
        .as_ref()
        .map(|a| a.email.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let recent = if sender_key.is_empty() {
        Vec::new()
    } else {
        tx.auto_sent_since(&sender_key, now - DAY_MS)?
    };
    let log = |tx: &mut Tx<'_>, level: Level, text: String| {
        tx.log(&LogEntry {
            at: now,
            level,
            component: "auto-reply".into(),
            raw: Some(m.raw),
            conv: Some(conv),
            text,
        })
    };
    let (Some(smtp), Some(from)) = (smtp, from) else {
        log(
            tx,
            Level::Warn,
            format!("no auto-reply for conversation #{conv}: {}", Skip::NotReady),
        )?;
        return Ok(false);
    };
    let sender = match decide(&mailbox, true, p, &mailboxes, &recent) {
        Ok(s) => s,
        Err(why) => {
            log(
                tx,
                Level::Info,
                format!("no auto-reply for conversation #{conv}: {why}"),
            )?;
            return Ok(false);
        }
    };
    let display = if mailbox.display_name.is_empty() {
        mailbox.name.clone()
    } else {
        mailbox.display_name.clone()
    };
    let tag = format!("{}{}", settings.subject_tag_prefix, conv.0);
    let vars = [
        ("tag", tag.clone()),
        ("conversation", conv.0.to_string()),
        ("subject", conv_rec.subject.clone()),
        (
            "customer_name",
            p.from
                .as_ref()
                .map(|a| a.name.clone())
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| sender.clone()),
        ),
        ("customer_address", sender.clone()),
        ("mailbox_name", display.clone()),
        ("mailbox_address", from.clone()),
    ];
    let rendered = crate::outbox::render(&mailbox.auto_reply_subject, &vars)
        .and_then(|s| crate::outbox::render(&mailbox.auto_reply_body, &vars).map(|b| (s, b)));
    let (subject, body) = match rendered {
        Ok((s, b)) => (s.replace(['\r', '\n'], " ").trim().to_owned(), b),
        Err(e) => {
            log(
                tx,
                Level::Error,
                format!(
                    "no auto-reply for conversation #{conv}: the template of mailbox {:?} does not work: {e}",
                    mailbox.name
                ),
            )?;
            return Ok(false);
        }
    };
    let mail = Mail {
        from_name: display,
        from: from.clone(),
        to: vec![sender.clone()],
        subject: if pipeline_tag(&subject, &settings.subject_tag_prefix) == Some(conv.0) {
            subject
        } else {
            format!("{subject} [{tag}]")
        },
        message_id: compose::new_message_id(&from, clock),
        in_reply_to: m.message_id.clone(),
        references: m.message_id.iter().cloned().collect(),
        body,
        date: now / 1000,
        automatic: true,
        loop_id: crate::outbox::loop_id(&mailbox),
        ..Mail::default()
    };
    let bytes = match compose::build(&mail) {
        Ok(b) => b,
        Err(e) => {
            log(
                tx,
                Level::Warn,
                format!("no auto-reply for conversation #{conv}: {e}"),
            )?;
            return Ok(false);
        }
    };
    crate::outbox::queue_in(tx, clock, conv, &mailbox, smtp, &mail, &bytes, true)?;
    tx.note_auto_sent(&sender, now, mailbox.id)?;
    Ok(true)
}

fn pipeline_tag(subject: &str, prefix: &str) -> Option<u64> {
    crate::pipeline::thread::subject_tag(subject, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Addr;

    fn mailbox() -> MailboxRecord {
        MailboxRecord {
            id: MailboxId(2),
            name: "support".into(),
            address: Some("support@example.org".into()),
            auto_reply: true,
            ..MailboxRecord::default()
        }
    }

    fn mail(from: &str) -> Parsed {
        Parsed {
            from: Some(Addr {
                name: String::new(),
                email: from.into(),
            }),
            ..Parsed::default()
        }
    }

    #[test]
    fn a_person_gets_one_and_machines_get_none() {
        let mb = [mailbox()];
        assert_eq!(
            decide(&mb[0], true, &mail("zoe@customer.example"), &mb, &[]),
            Ok("zoe@customer.example".into())
        );
        for flag in [
            MsgFlags::AUTO_REPLY,
            MsgFlags::BOUNCE,
            MsgFlags::BULK,
            MsgFlags::LIST,
        ] {
            let mut p = mail("zoe@customer.example");
            p.flags.set(flag);
            assert!(matches!(
                decide(&mb[0], true, &p, &mb, &[]),
                Err(Skip::Automatic(_))
            ));
        }
        for daemon in [
            "MAILER-DAEMON@example.net",
            "no-reply@shop.example",
            "noreply@shop.example",
            "do_not_reply@bank.example",
            "postmaster@example.net",
        ] {
            assert!(
                matches!(
                    decide(&mb[0], true, &mail(daemon), &mb, &[]),
                    Err(Skip::Daemon(_))
                ),
                "{daemon}"
            );
        }
        assert!(matches!(
            decide(&mb[0], true, &mail("Support@Example.org"), &mb, &[]),
            Err(Skip::Ours(_))
        ));
        let mut looped = mail("zoe@customer.example");
        looped.x_loop = Some("postroom; other@example.net".into());
        assert!(matches!(
            decide(&mb[0], true, &looped, &mb, &[]),
            Err(Skip::Loop(_))
        ));
        assert_eq!(
            decide(
                &mb[0],
                true,
                &mail("zoe@customer.example"),
                &mb,
                &[(1, MailboxId(2))]
            ),
            Err(Skip::AlreadyToday)
        );
        assert!(
            decide(
                &mb[0],
                true,
                &mail("zoe@customer.example"),
                &mb,
                &[(1, MailboxId(3))]
            )
            .is_ok()
        );
        let many: Vec<(i64, MailboxId)> = (0..40).map(|i| (i, MailboxId(9))).collect();
        assert_eq!(
            decide(&mb[0], true, &mail("zoe@customer.example"), &mb, &many),
            Err(Skip::DailyCap)
        );
        let mut off = mailbox();
        off.auto_reply = false;
        assert_eq!(
            decide(&off, true, &mail("zoe@customer.example"), &mb, &[]),
            Err(Skip::Off)
        );
        assert_eq!(
            decide(&mb[0], false, &mail("zoe@customer.example"), &mb, &[]),
            Err(Skip::NotReady)
        );
    }
}

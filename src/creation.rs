//! Ticket-creation options per mail account (i-net HelpDesk's): "mail creates no new
//! conversations" (refused mail is kept, logged and, as chosen, answered with a
//! template), customer records with the sender's domain as the company, default
//! assignee, priority and tags for new conversations, and bundling mail of the same
//! sender and subject within one polling interval into one conversation.
//!
//! Owns: the rules of these options (checking what the admin typed, for the CLI and the
//! admin form through `accounts`), the account a raw message came from, the normalized
//! subject used for bundling, the company of an address, picking the conversation a mail
//! is bundled into (through the customer index, never a scan), applying the defaults to
//! a new conversation, making customer records, and queueing the answer to refused mail
//! under the auto-reply's loop guards and rate limits.
//! Must not: send anything (the outbox does), thread by subject outside bundling, or
//! delete a raw message (refused means kept, with no conversation).

use crate::accounts::{Msg, Problem};
use crate::compose::{self, Mail};
use crate::model::{
    AccountRecord, Clock, ConvId, ConversationRecord, Creation, CustomerRecord, MailboxId,
    MailboxRecord, Priority, RawRecord, Status,
};
use crate::pipeline::parse::Parsed;
use crate::store::{StoreError, Tx};

/// The answer to refused mail, until the admin writes their own.
pub const DEFAULT_REFUSED_SUBJECT: &str = "Not accepted: {{ subject }}";
pub const DEFAULT_REFUSED_BODY: &str = "Hello {{ customer_name }},\n\nthis address only takes answers to conversations we already have with you, so your message \"{{ subject }}\" was not accepted.\nPlease answer one of our mails, or write to us at the address on our website.\n\n{{ mailbox_name }}\n";
/// Most default tags, and the longest one (characters).
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 100;
/// Most of a sender's newest conversations looked at when bundling.
const BUNDLE_LOOKBACK: usize = 32;

/// What the admin typed for the options; `None` leaves an option as it is.
#[derive(Clone, Debug, Default)]
pub struct CreationInput {
    pub no_new: Option<bool>,
    /// `drop` (only the log) or `answer` (the template).
    pub refused: Option<String>,
    pub refused_subject: Option<String>,
    pub refused_body: Option<String>,
    pub create_customers: Option<bool>,
    /// A user's login; `Some("")` removes the default assignee.
    pub default_assignee: Option<String>,
    pub default_priority: Option<String>,
    /// Comma-separated; `Some("")` removes them.
    pub default_tags: Option<String>,
    pub bundle: Option<bool>,
}

/// The sample values a refused-mail template is checked with.
fn sample_vars() -> Vec<(&'static str, String)> {
    vec![
        ("subject", "Question about my order".into()),
        ("customer_name", "Zoe Example".into()),
        ("customer_address", "zoe@example.com".into()),
        ("mailbox_name", "Support".into()),
        ("mailbox_address", "support@example.org".into()),
        ("account", "support".into()),
    ]
}

/// Applies `input` over `c` and checks it (everything but the assignee, which needs the
/// users: `resolve_assignee`). Problems go to `err`.
pub fn merge(c: &mut Creation, input: &CreationInput, err: &mut dyn FnMut(&'static str, Msg)) {
    if let Some(v) = input.no_new {
        c.no_new = v;
    }
    if let Some(r) = &input.refused {
        match r.trim().to_ascii_lowercase().as_str() {
            "drop" | "log" => c.answer_refused = false,
            "answer" | "reply" => c.answer_refused = true,
            _ => err(
                "refused",
                Msg::value(
                    "{value} is neither drop (only the log) nor answer (with the template).",
                    r,
                ),
            ),
        }
    }
    if let Some(s) = &input.refused_subject {
        let s = s.trim();
        if s.contains(['\r', '\n']) {
            err("refused_subject", Msg::new("The subject must be one line."));
        } else if let Err(e) = crate::mailboxes::check_template(s, &sample_vars()) {
            err(
                "refused_subject",
                Msg {
                    key: "The template does not work: {error}",
                    args: vec![("error", e)],
                },
            );
        } else {
            c.refused_subject = s.to_owned();
        }
    }
    if let Some(b) = &input.refused_body {
        match crate::mailboxes::check_template(b, &sample_vars()) {
            Ok(()) => c.refused_body = b.replace("\r\n", "\n"),
            Err(e) => err(
                "refused_body",
                Msg {
                    key: "The template does not work: {error}",
                    args: vec![("error", e)],
                },
            ),
        }
    }
    if c.no_new && c.answer_refused {
        if c.refused_subject.trim().is_empty() {
            c.refused_subject = DEFAULT_REFUSED_SUBJECT.into();
        }
        if c.refused_body.trim().is_empty() {
            c.refused_body = DEFAULT_REFUSED_BODY.into();
        }
    }
    if let Some(v) = input.create_customers {
        c.create_customers = v;
    }
    if let Some(p) = &input.default_priority {
        match Priority::parse(p.trim()) {
            Some(p) => c.default_priority = p,
            None => err(
                "default_priority",
                Msg::value(
                    "{value} is not a priority; use low, normal, high or urgent.",
                    p,
                ),
            ),
        }
    }
    if let Some(t) = &input.default_tags {
        let tags = crate::filters::split_tags(t);
        if tags.len() > MAX_TAGS {
            err(
                "default_tags",
                Msg {
                    key: "At most {n} tags.",
                    args: vec![("n", MAX_TAGS.to_string())],
                },
            );
        } else if let Some(bad) = tags
            .iter()
            .find(|t| t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control))
        {
            err(
                "default_tags",
                Msg {
                    key: "{value} is not a usable tag: at most {n} characters, no control characters.",
                    args: vec![
                        ("value", format!("{bad:?}")),
                        ("n", MAX_TAG_CHARS.to_string()),
                    ],
                },
            );
        } else {
            c.default_tags = tags;
        }
    }
    if let Some(v) = input.bundle {
        c.bundle = v;
    }
}

/// The options in words (`postroom account list`); `None` for the defaults.
pub fn describe(c: &Creation, assignee_login: Option<&str>) -> Option<String> {
    let mut w = Vec::new();
    if c.no_new {
        w.push(if c.answer_refused {
            "no new conversations (other mail is answered with the template)".to_owned()
        } else {
            "no new conversations (other mail only logged)".to_owned()
        });
    }
    if c.create_customers {
        w.push("create customers".into());
    }
    if let Some(u) = c.default_assignee {
        w.push(format!(
            "assign to {}",
            assignee_login.map_or_else(|| format!("user {u}"), str::to_owned)
        ));
    }
    if c.default_priority != Priority::Normal {
        w.push(format!("priority {}", c.default_priority));
    }
    if !c.default_tags.is_empty() {
        w.push(format!("tags {}", c.default_tags.join(", ")));
    }
    if c.bundle {
        w.push("bundle by sender and subject within the poll interval".into());
    }
    (!w.is_empty()).then(|| w.join("; "))
}

/// Resolves the default assignee typed as a login: the user must exist, be enabled and
/// may see the account's mailbox, else the problem is reported against the field.
pub fn resolve_assignee(
    tx: &Tx<'_>,
    a: &mut AccountRecord,
    input: &CreationInput,
) -> Result<Vec<Problem>, StoreError> {
    let mut problems = Vec::new();
    let user = match input.default_assignee.as_deref().map(str::trim) {
        Some("") => {
            a.creation.default_assignee = None;
            return Ok(problems);
        }
        Some(login) => match tx.user_by_login(login)? {
            Some(u) => u,
            None => {
                problems.push(Problem {
                    field: "default_assignee",
                    msg: Msg::value("There is no user {value}.", login),
                });
                return Ok(problems);
            }
        },
        // Unchanged: the stored one must still see the (maybe changed) mailbox.
        None => match a.creation.default_assignee {
            Some(id) => match tx.user(id)? {
                Some(u) => u,
                None => {
                    a.creation.default_assignee = None;
                    return Ok(problems);
                }
            },
            None => return Ok(problems),
        },
    };
    let mailbox = tx
        .mailbox(a.mailbox)?
        .map(|m| m.name)
        .unwrap_or_else(|| a.mailbox.to_string());
    if user.disabled {
        problems.push(Problem {
            field: "default_assignee",
            msg: Msg::value("The user {value} is disabled.", &user.login),
        });
    } else if !user.may_see(a.mailbox) {
        problems.push(Problem {
            field: "default_assignee",
            msg: Msg {
                key: "{user} may not see the mailbox {mailbox}; give them the mailbox or choose another user.",
                args: vec![("user", user.login.clone()), ("mailbox", mailbox)],
            },
        });
    } else {
        a.creation.default_assignee = Some(user.id);
    }
    Ok(problems)
}

/// The account a raw message came from: its first source `imap:NAME/...` or
/// `pop3:NAME/...` (the way the filter stage finds it); imported files have none.
pub fn account_of_raw(tx: &Tx<'_>, rec: &RawRecord) -> Result<Option<AccountRecord>, StoreError> {
    let Some(name) = rec
        .sources
        .first()
        .and_then(|s| crate::pipeline::filter::account_of(s))
    else {
        return Ok(None);
    };
    Ok(tx.accounts()?.into_iter().find(|a| a.name == name))
}

/// A subject as bundling compares it: `Re:`/`Fwd:`/`Fw:`/`AW:`/`WG:` prefixes (repeated,
/// any case) and surrounding whitespace removed, lower-cased.
pub fn normalize_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let cut = ["re:", "fwd:", "fw:", "aw:", "wg:"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len());
        match cut.and_then(|n| s.get(n..)) {
            Some(rest) => s = rest.trim_start(),
            None => break,
        }
    }
    s.trim().to_lowercase()
}

/// The company of an address: its domain, lower-cased ("" without one).
pub fn company_of(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('>').to_ascii_lowercase())
        .unwrap_or_default()
}

/// When a conversation started arriving: the arrival (intake time) of its first message,
/// or its date when that raw message is gone. Unix ms.
fn arrival_of(tx: &Tx<'_>, c: &ConversationRecord) -> Result<i64, StoreError> {
    if let Some(first) = tx.conversation_messages(c.id)?.into_iter().min()
        && let Some(m) = tx.message(first)?
        && let Some(raw) = tx.raw(m.raw)?
    {
        return Ok(raw.received_at);
    }
    Ok(c.created.saturating_mul(1000))
}

/// The conversation a mail that would start a new one joins instead, when its account
/// bundles: one of the same mailbox, from the same sender, with the same normalized
/// subject, that started arriving less than `poll_secs` before this mail arrived
/// (`arrival`, unix ms). Found through the customer index (the sender's newest
/// conversations), not by scanning conversations.
pub fn bundle_target(
    tx: &Tx<'_>,
    a: &AccountRecord,
    mailbox: MailboxId,
    p: &Parsed,
    arrival: i64,
) -> Result<Option<ConvId>, StoreError> {
    if !a.creation.bundle {
        return Ok(None);
    }
    let Some(sender) = p
        .from
        .as_ref()
        .map(|f| f.email.trim())
        .filter(|e| !e.is_empty())
    else {
        return Ok(None);
    };
    let subject = normalize_subject(&p.subject);
    let window = i64::from(a.poll_secs).saturating_mul(1000);
    for id in tx
        .customer_conversations(sender)?
        .into_iter()
        .take(BUNDLE_LOOKBACK)
    {
        let Some(c) = tx.conversation(id)? else {
            continue;
        };
        if c.status == Status::Merged
            || c.mailbox != mailbox
            || !c
                .customer
                .as_ref()
                .is_some_and(|x| x.email.eq_ignore_ascii_case(sender))
            || normalize_subject(&c.subject) != subject
        {
            continue;
        }
        let age = arrival.saturating_sub(arrival_of(tx, &c)?);
        if (0..window).contains(&age) {
            return Ok(Some(c.id));
        }
    }
    Ok(None)
}

/// Applies the account's defaults to a conversation being created (before the filters,
/// which override them). Returns notes for the log (an assignee who may not see the
/// conversation's mailbox stays unassigned).
pub fn apply_defaults(
    tx: &Tx<'_>,
    c: &mut ConversationRecord,
    creation: &Creation,
) -> Result<Vec<String>, StoreError> {
    let mut notes = Vec::new();
    c.priority = creation.default_priority;
    for t in &creation.default_tags {
        if !c.tags.contains(t) {
            c.tags.push(t.clone());
        }
    }
    if let Some(u) = creation.default_assignee {
        match tx.user(u)? {
            Some(user) if !user.disabled && user.may_see(c.mailbox) => c.assignee = Some(u),
            Some(user) if !user.disabled => notes.push(format!(
                "default assignee {} may not see mailbox {}; left unassigned",
                user.login, c.mailbox
            )),
            _ => notes.push(format!(
                "default assignee (user {u}) does not exist or is disabled; left unassigned"
            )),
        }
    }
    Ok(notes)
}

/// Makes a customer record for the sender of `p` when there is none: their name and
/// their domain as the company. Never for our own addresses. Returns the new record.
pub fn note_customer(
    tx: &mut Tx<'_>,
    p: &Parsed,
    clock: &dyn Clock,
) -> Result<Option<CustomerRecord>, StoreError> {
    let Some(from) = p.from.as_ref().filter(|f| f.email.contains('@')) else {
        return Ok(None);
    };
    let email = from.email.trim().to_lowercase();
    if crate::mailboxes::is_ours(&tx.mailboxes()?, &email) || tx.customer(&email)?.is_some() {
        return Ok(None);
    }
    let c = CustomerRecord {
        company: company_of(&email),
        name: from.name.trim().to_owned(),
        email,
        created: clock.now_ms(),
    };
    tx.put_customer(&c)?;
    Ok(Some(c))
}

/// Queues the answer to mail the account refused, in the transaction that refuses it,
/// under the auto-reply's guards (no answer to automatic mail, bounces, lists, our own
/// addresses, our loop marker; one automatic message per sender and mailbox per day, the
/// daily cap). `Ok(Err(why))`: nothing was queued, and why.
pub fn answer_refused(
    tx: &mut Tx<'_>,
    a: &AccountRecord,
    mailbox: MailboxId,
    p: &Parsed,
    clock: &dyn Clock,
) -> Result<Result<String, String>, StoreError> {
    let mailboxes = tx.mailboxes()?;
    let Some(mb) = mailboxes.iter().find(|m| m.id == mailbox).cloned() else {
        return Ok(Err(format!("mailbox {mailbox} does not exist")));
    };
    let Some(sender) = crate::notify::senders(std::slice::from_ref(&mb))
        .into_iter()
        .next()
        .filter(|s| {
            tx.smtp_servers()
                .is_ok_and(|l| l.iter().any(|x| x.id == s.smtp))
        })
    else {
        return Ok(Err(crate::autoreply::Skip::NotReady.to_string()));
    };
    let now = clock.now_ms();
    let key = p
        .from
        .as_ref()
        .map(|f| f.email.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let recent = if key.is_empty() {
        Vec::new()
    } else {
        tx.auto_sent_since(&key, now - 86_400_000)?
    };
    // The auto-reply's decision, as if the mailbox answered automatically.
    let as_auto = MailboxRecord {
        auto_reply: true,
        ..mb.clone()
    };
    let to = match crate::autoreply::decide(&as_auto, true, p, &mailboxes, &recent) {
        Ok(to) => to,
        Err(why) => return Ok(Err(why.to_string())),
    };
    let vars = [
        ("subject", p.subject.clone()),
        (
            "customer_name",
            p.from
                .as_ref()
                .map(|f| f.name.clone())
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| to.clone()),
        ),
        ("customer_address", to.clone()),
        ("mailbox_name", sender.display.clone()),
        ("mailbox_address", sender.address.clone()),
        ("account", a.name.clone()),
    ];
    let (subject, body) = if a.creation.refused_subject.trim().is_empty() {
        (DEFAULT_REFUSED_SUBJECT, DEFAULT_REFUSED_BODY)
    } else {
        (
            a.creation.refused_subject.as_str(),
            a.creation.refused_body.as_str(),
        )
    };
    let rendered = crate::outbox::render(subject, &vars)
        .and_then(|s| crate::outbox::render(body, &vars).map(|b| (s, b)));
    let (subject, body) = match rendered {
        Ok((s, b)) => (s.replace(['\r', '\n'], " ").trim().to_owned(), b),
        Err(e) => {
            return Ok(Err(format!(
                "the template of account {:?} does not work: {e}",
                a.name
            )));
        }
    };
    let mail = Mail {
        from_name: sender.display.clone(),
        from: sender.address.clone(),
        to: vec![to.clone()],
        subject,
        message_id: compose::new_message_id(&sender.address, clock),
        in_reply_to: p.message_id.clone(),
        references: p.message_id.iter().cloned().collect(),
        body,
        date: now / 1000,
        automatic: true,
        loop_id: crate::outbox::loop_id(&mb),
        ..Mail::default()
    };
    match crate::notify::queue_in(
        tx,
        clock,
        &sender,
        &mail,
        None,
        &format!("answer to mail refused by account {:?}", a.name),
    ) {
        Ok(_) => {}
        Err(crate::notify::NotifyError::Store(e)) => return Err(e),
        Err(crate::notify::NotifyError::Compose(e)) => return Ok(Err(e.to_string())),
    }
    tx.note_auto_sent(&to, now, mb.id)?;
    Ok(Ok(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_reply_and_forward_prefixes_and_case() {
        assert_eq!(normalize_subject("  Re: AW: fwd:  Order 17 "), "order 17");
        assert_eq!(normalize_subject("WG: Fw: RE:Order 17"), "order 17");
        assert_eq!(normalize_subject("Order 17"), normalize_subject("ORDER 17"));
        assert_ne!(normalize_subject("Order 17"), normalize_subject("Order 18"));
        assert_eq!(normalize_subject("Reorder"), "reorder");
    }

    #[test]
    fn the_company_is_the_domain() {
        assert_eq!(company_of("Zoe@Example.COM"), "example.com");
        assert_eq!(company_of("nobody"), "");
    }

    #[test]
    fn options_are_checked_and_the_answer_gets_a_default_template() {
        let mut c = Creation::default();
        let mut errs = Vec::new();
        merge(
            &mut c,
            &CreationInput {
                refused: Some("shout".into()),
                default_priority: Some("asap".into()),
                refused_body: Some("{% if %}".into()),
                default_tags: Some(format!("ok, {}", "x".repeat(101))),
                ..CreationInput::default()
            },
            &mut |f, m| errs.push((f, m)),
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "refused",
                "refused_body",
                "default_priority",
                "default_tags"
            ]
        );
        let mut c = Creation::default();
        merge(
            &mut c,
            &CreationInput {
                no_new: Some(true),
                refused: Some("answer".into()),
                default_priority: Some("high".into()),
                default_tags: Some("web, shop, web".into()),
                bundle: Some(true),
                ..CreationInput::default()
            },
            &mut |f, m| panic!("{f}: {m}"),
        );
        assert!(c.no_new && c.answer_refused && c.bundle);
        assert_eq!(c.refused_subject, DEFAULT_REFUSED_SUBJECT);
        assert_eq!(c.default_priority, Priority::High);
        assert_eq!(c.default_tags, ["web", "shop"]);
    }
}

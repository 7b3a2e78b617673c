//! Filter stage: runs the postmaster filters (`crate::filters`) and, for mail from a
//! trusted account, its `X-Postroom-*` / `X-OTOBO-*` / `X-OTRS-*` headers, and applies
//! the outcome to the conversation.
//!
//! Owns: loading the filters and the names they refer to once per batch, deciding whether
//! a raw message came from a trusted account (its first source `imap:NAME/...` or
//! `pop3:NAME/...` names an account marked trusted; imported files never are), and what
//! an outcome does to a conversation:
//! - a NEW conversation gets everything: mailbox (when it exists), status, priority,
//!   assignee (when the user exists, is not disabled and may see the mailbox), tags,
//!   custom fields; spam makes
//!   its status spam;
//! - a reply joining an EXISTING conversation adds its tags, sets its priority and custom
//!   fields, and nothing else: it does not move the conversation to another mailbox,
//!   change its status (the thread rules reopen it), reassign it, or mark the whole
//!   conversation spam because of one message;
//! - "ignore" stores nothing but the raw mail and a log line (the orchestrator does it).
//!
//! Must not: parse MIME itself (`parse::filter_mail` does), or write outside the
//! orchestrator's transaction.

use super::parse;
use crate::filters::{Directory, Engine, Filter, Mail, Outcome, Trace, evaluate};
use crate::model::{ConversationRecord, RawRecord, Status};
use crate::store::{Reader, StoreError, Tx};
use std::collections::BTreeSet;

/// What the filter stage decided for one raw message.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub outcome: Outcome,
    pub trace: Trace,
}

/// The filters and names of one batch.
pub struct Stage {
    engine: Engine,
    dir: Directory,
    trusted: BTreeSet<String>,
}

/// The account a source label names: `imap:NAME/...` or `pop3:NAME/...`.
pub fn account_of(source: &str) -> Option<&str> {
    source
        .strip_prefix("imap:")
        .or_else(|| source.strip_prefix("pop3:"))
        .and_then(|rest| rest.split('/').next())
}

impl Stage {
    /// Reads the filters, mailboxes, users and trusted accounts (once per batch).
    pub fn load(r: &Reader) -> Result<Stage, StoreError> {
        Ok(Stage {
            engine: Engine::new(r.filters()?),
            dir: Directory {
                mailboxes: r.mailboxes()?.into_iter().map(|m| (m.id, m.name)).collect(),
                users: r
                    .users()?
                    .into_iter()
                    .filter(|u| !u.disabled)
                    .map(|u| (u.id, u.login, u.email))
                    .collect(),
            },
            trusted: r
                .accounts()?
                .into_iter()
                .filter(|a| a.trusted)
                .map(|a| a.name)
                .collect(),
        })
    }

    /// The same stage with `f` in place of the stored filter of the same id (added when
    /// new): the admin page tests a filter before it is saved.
    pub fn with_filter(self, r: &Reader, f: Filter) -> Result<Stage, StoreError> {
        let mut all: Vec<Filter> = r
            .filters()?
            .into_iter()
            .filter(|x| x.id != f.id || f.id == 0)
            .collect();
        all.push(f);
        Ok(Stage {
            engine: Engine::new(all),
            ..self
        })
    }

    /// Whether the raw message came from a trusted account.
    pub fn is_trusted(&self, rec: &RawRecord) -> bool {
        rec.sources
            .first()
            .and_then(|s| account_of(s))
            .is_some_and(|a| self.trusted.contains(a))
    }

    /// Runs the filters (and the trusted headers) on one raw message; `None` when there
    /// is nothing to run, so the message is not parsed a second time for nothing.
    pub fn decide(&self, rec: &RawRecord, bytes: &[u8]) -> Option<Decision> {
        let trusted = self.is_trusted(rec);
        if !trusted && !self.engine.is_active() {
            return None;
        }
        Some(self.run(&parse::filter_mail(bytes), trusted))
    }

    /// Runs everything on a `Mail` (the "Test filter" page uses this directly).
    pub fn run(&self, mail: &Mail, trusted: bool) -> Decision {
        let (outcome, trace) = evaluate(&self.engine, &self.dir, mail, trusted);
        Decision { outcome, trace }
    }

    /// The names the trusted headers and the test page's report refer to.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }
}

/// Applies an outcome to a conversation being created (before it is first written).
pub fn apply_new(
    tx: &Tx<'_>,
    c: &mut ConversationRecord,
    o: &Outcome,
) -> Result<Vec<String>, StoreError> {
    let mut notes = Vec::new();
    if let Some(m) = o.mailbox {
        if tx.mailbox(m)?.is_some() {
            c.mailbox = m;
        } else {
            notes.push(format!(
                "mailbox {m} no longer exists; left in mailbox {}",
                c.mailbox
            ));
        }
    }
    if let Some(s) = o.status.filter(|s| *s != Status::Merged) {
        c.status = s;
    }
    if o.spam {
        c.status = Status::Spam;
    }
    if let Some(p) = o.priority {
        c.priority = p;
    }
    if let Some(u) = o.assignee {
        match tx.user(u)? {
            Some(user) if !user.disabled && user.may_see(c.mailbox) => c.assignee = Some(u),
            Some(user) if !user.disabled => notes.push(format!(
                "user {} may not see mailbox {}; left unassigned",
                user.login, c.mailbox
            )),
            _ => notes.push(format!(
                "user {u} does not exist or is disabled; left unassigned"
            )),
        }
    }
    add_tags_fields(c, o);
    Ok(notes)
}

/// Applies what makes sense for a reply to an existing conversation: tags, priority,
/// custom fields. Returns whether anything changed.
pub fn apply_existing(c: &mut ConversationRecord, o: &Outcome) -> bool {
    let before = (c.priority, c.tags.len(), c.fields.clone());
    if let Some(p) = o.priority {
        c.priority = p;
    }
    add_tags_fields(c, o);
    before != (c.priority, c.tags.len(), c.fields.clone())
}

fn add_tags_fields(c: &mut ConversationRecord, o: &Outcome) {
    for t in &o.tags {
        if !c.tags.contains(t) {
            c.tags.push(t.clone());
        }
    }
    for (k, v) in &o.fields {
        c.fields.insert(k.clone(), v.clone());
    }
}

/// One log line saying which filters matched and what they decided; `None` when nothing
/// matched and no trusted header was used.
pub fn describe(d: &Decision) -> Option<String> {
    let matched = d.trace.matched();
    if matched.is_empty() && d.trace.x_headers.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !matched.is_empty() {
        parts.push(format!(
            "filters {}",
            matched
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !d.trace.x_headers.is_empty() {
        parts.push(format!(
            "trusted headers {}",
            d.trace
                .x_headers
                .iter()
                .map(|(h, v, did)| format!("{h}: {v} ({did})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Some(format!("{} -> {}", parts.join("; "), summary(&d.outcome)))
}

/// What an outcome asks for, in words (log lines, the test page).
pub fn summary(o: &Outcome) -> String {
    let mut w = Vec::new();
    if o.ignore {
        w.push("ignore".to_owned());
    }
    if let Some(m) = o.mailbox {
        w.push(format!("mailbox {m}"));
    }
    if let Some(s) = o.status {
        w.push(format!("status {s}"));
    }
    if let Some(p) = o.priority {
        w.push(format!("priority {p}"));
    }
    if let Some(u) = o.assignee {
        w.push(format!("assign to user {u}"));
    }
    if !o.tags.is_empty() {
        w.push(format!("tags {}", o.tags.join(", ")));
    }
    for (k, v) in &o.fields {
        w.push(format!("field {k}={v}"));
    }
    if o.spam {
        w.push("spam".into());
    }
    if o.no_auto_reply {
        w.push("no auto-reply".into());
    }
    if w.is_empty() {
        "no change".into()
    } else {
        w.join(", ")
    }
}

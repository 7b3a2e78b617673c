//! Mailboxes and their system addresses as the admin edits them: validation of every
//! field, unique addresses across mailboxes, and finding the mailbox an address belongs to.
//!
//! Owns: the rules for mailbox settings (main address and aliases with validity and
//! comment, display name, From policy, signature, auto-BCC, auto-reply templates, SMTP
//! server, Sent copy), and address lookup for dispatch and for "is this our own address".
//! Must not: send mail, render templates for sending, or delete an address (addresses are
//! only ever made invalid).

use crate::accounts::FieldError;
use crate::compose::{check_address, check_text};
use crate::model::{AliasAddress, FromPolicy, MailboxId, MailboxRecord, Protocol, Validity};
use crate::store::{StoreError, Tx};
use std::fmt;

/// Everything the admin can set; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MailboxInput {
    pub name: Option<String>,
    pub address: Option<String>,
    pub display_name: Option<String>,
    /// Aliases to add (existing ones stay).
    pub add_aliases: Vec<String>,
    /// `(address, validity)` for the main address or an alias.
    pub validity: Vec<(String, String)>,
    /// `(address, comment)` for the main address or an alias.
    pub comments: Vec<(String, String)>,
    pub from_policy: Option<String>,
    pub signature: Option<String>,
    /// `Some("")` removes it.
    pub auto_bcc: Option<String>,
    pub auto_reply: Option<bool>,
    pub auto_reply_subject: Option<String>,
    pub auto_reply_body: Option<String>,
    /// SMTP server by name; `Some("")` removes it.
    pub smtp: Option<String>,
    /// `ACCOUNT:FOLDER`; `Some("")` removes it.
    pub sent_copy: Option<String>,
}

/// Why a mailbox could not be saved or found.
#[derive(Debug)]
pub enum MailboxError {
    Invalid(Vec<FieldError>),
    NotFound(String),
    Store(StoreError),
}

impl fmt::Display for MailboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxError::Invalid(errs) => {
                let parts: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                write!(f, "the mailbox cannot be saved: {}", parts.join("; "))
            }
            MailboxError::NotFound(name) => write!(
                f,
                "there is no mailbox {name:?}; list them with: postroom mailbox list"
            ),
            MailboxError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MailboxError {}

impl From<StoreError> for MailboxError {
    fn from(e: StoreError) -> Self {
        MailboxError::Store(e)
    }
}

/// Default auto-reply subject and body (minijinja templates).
pub const DEFAULT_AUTO_SUBJECT: &str = "Re: {{ subject }} [{{ tag }}]";
pub const DEFAULT_AUTO_BODY: &str = "Hello {{ customer_name }},\n\nthank you for your message. We have received it and will answer as soon as we can.\nYour reference is {{ tag }}: please keep it in the subject when you write to us about this.\n\n{{ mailbox_name }}\n{{ mailbox_address }}\n";

fn normalize(a: &str) -> String {
    a.trim().to_ascii_lowercase()
}

/// Applies `input` over `base` and checks every field against the store.
fn merge(
    tx: &Tx<'_>,
    base: &MailboxRecord,
    input: &MailboxInput,
    others: &[MailboxRecord],
) -> Result<MailboxRecord, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, message: String| errs.push(FieldError { field, message });
    let mut m = base.clone();
    if let Some(n) = &input.name {
        let n = n.trim();
        if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
            err(
                "name",
                format!("{n:?} is not usable: 1 to 64 characters, no control characters"),
            );
        } else if others
            .iter()
            .any(|o| o.id != m.id && o.name.eq_ignore_ascii_case(n))
        {
            err("name", format!("a mailbox named {n:?} already exists"));
        } else {
            m.name = n.to_owned();
        }
    }
    // Addresses are unique across all mailboxes (mail to one lands in exactly one).
    let taken_elsewhere = |a: &str| {
        others
            .iter()
            .filter(|o| o.id != m.id)
            .find(|o| o.addresses().iter().any(|(x, _)| x.eq_ignore_ascii_case(a)))
    };
    if let Some(a) = &input.address {
        let a = normalize(a);
        if let Err(e) = check_address("address", &a) {
            err("address", e.to_string());
        } else if let Some(o) = taken_elsewhere(&a) {
            err(
                "address",
                format!("{a} already belongs to the mailbox {:?}", o.name),
            );
        } else if m.address.as_deref() != Some(a.as_str()) {
            // The old main address is kept as an alias: addresses are never deleted.
            if let Some(old) = m.address.take()
                && !m.aliases.iter().any(|x| x.address == old)
            {
                m.aliases.push(AliasAddress {
                    address: old,
                    validity: m.address_validity,
                    comment: std::mem::take(&mut m.address_comment),
                });
            }
            m.aliases.retain(|x| x.address != a);
            m.address = Some(a);
            m.address_validity = Validity::Valid;
        }
    }
    for a in &input.add_aliases {
        let a = normalize(a);
        if let Err(e) = check_address("alias", &a) {
            err("alias", e.to_string());
        } else if let Some(o) = taken_elsewhere(&a) {
            err(
                "alias",
                format!("{a} already belongs to the mailbox {:?}", o.name),
            );
        } else if m.address.as_deref() != Some(a.as_str())
            && !m.aliases.iter().any(|x| x.address == a)
        {
            m.aliases.push(AliasAddress {
                address: a,
                validity: Validity::Valid,
                comment: String::new(),
            });
        }
    }
    for (a, v) in &input.validity {
        let a = normalize(a);
        let Some(v) = Validity::parse(v.trim()) else {
            err(
                "validity",
                format!("{v:?} is not valid, invalid or temporarily-invalid"),
            );
            continue;
        };
        if m.address.as_deref() == Some(a.as_str()) {
            m.address_validity = v;
        } else if let Some(x) = m.aliases.iter_mut().find(|x| x.address == a) {
            x.validity = v;
        } else {
            err("validity", format!("{a} is not an address of this mailbox"));
        }
    }
    for (a, c) in &input.comments {
        let a = normalize(a);
        if let Err(e) = check_text("comment", c) {
            err("comment", e.to_string());
        } else if m.address.as_deref() == Some(a.as_str()) {
            m.address_comment = c.trim().to_owned();
        } else if let Some(x) = m.aliases.iter_mut().find(|x| x.address == a) {
            x.comment = c.trim().to_owned();
        } else {
            err("comment", format!("{a} is not an address of this mailbox"));
        }
    }
    if let Some(d) = &input.display_name {
        match check_text("display name", d) {
            Ok(()) => m.display_name = d.trim().to_owned(),
            Err(e) => err("display_name", e.to_string()),
        }
    }
    if let Some(p) = &input.from_policy {
        match p.trim().to_ascii_lowercase().as_str() {
            "mailbox" => m.from_policy = FromPolicy::Mailbox,
            "agent" | "agent-via-mailbox" => m.from_policy = FromPolicy::AgentViaMailbox,
            _ => err(
                "from_policy",
                format!("{p:?} is not mailbox or agent-via-mailbox"),
            ),
        }
    }
    if let Some(s) = &input.signature {
        if s.contains('\0') {
            err("signature", "must not contain NUL characters".into());
        } else if let Err(e) = check_template(s, &sample_signature_vars(&m)) {
            err("signature", format!("the template does not work: {e}"));
        } else {
            m.signature = s.clone();
        }
    }
    if let Some(b) = &input.auto_bcc {
        let b = normalize(b);
        if b.is_empty() {
            m.auto_bcc = None;
        } else if let Err(e) = check_address("auto-BCC", &b) {
            err("auto_bcc", e.to_string());
        } else {
            m.auto_bcc = Some(b);
        }
    }
    if let Some(on) = input.auto_reply {
        m.auto_reply = on;
    }
    if let Some(s) = &input.auto_reply_subject {
        match check_text("auto-reply subject", s)
            .map_err(|e| e.to_string())
            .and_then(|()| check_template(s, &sample_auto_reply_vars(&m)))
        {
            Ok(()) => m.auto_reply_subject = s.clone(),
            Err(e) => err(
                "auto_reply_subject",
                format!("the template does not work: {e}"),
            ),
        }
    }
    if let Some(b) = &input.auto_reply_body {
        match check_template(b, &sample_auto_reply_vars(&m)) {
            Ok(()) => m.auto_reply_body = b.clone(),
            Err(e) => err(
                "auto_reply_body",
                format!("the template does not work: {e}"),
            ),
        }
    }
    if m.auto_reply {
        if m.auto_reply_subject.is_empty() {
            m.auto_reply_subject = DEFAULT_AUTO_SUBJECT.into();
        }
        if m.auto_reply_body.is_empty() {
            m.auto_reply_body = DEFAULT_AUTO_BODY.into();
        }
    }
    match &input.smtp {
        Some(s) if s.trim().is_empty() => m.smtp = None,
        Some(s) => match tx.smtp_servers().ok().and_then(|l| {
            l.into_iter()
                .find(|x| x.name.eq_ignore_ascii_case(s.trim()))
        }) {
            Some(x) => m.smtp = Some(x.id),
            None => err(
                "smtp",
                format!("there is no SMTP server {s:?}; add it with: postroom smtp add"),
            ),
        },
        None => {}
    }
    match &input.sent_copy {
        Some(s) if s.trim().is_empty() => m.sent_copy = None,
        Some(s) => match s.split_once(':') {
            Some((acct, folder)) if !folder.trim().is_empty() => {
                match tx
                    .accounts()
                    .ok()
                    .and_then(|l| l.into_iter().find(|a| a.name.eq_ignore_ascii_case(acct)))
                {
                    Some(a) if a.protocol == Protocol::Imap => {
                        if folder.chars().any(|c| c.is_control() || c == '"') {
                            err("sent_folder", format!("{folder:?} is not a usable folder"));
                        } else {
                            m.sent_copy = Some((a.id, folder.trim().to_owned()));
                        }
                    }
                    Some(_) => err(
                        "sent_folder",
                        format!("{acct:?} is a POP3 account; a Sent copy needs IMAP"),
                    ),
                    None => err(
                        "sent_folder",
                        format!("there is no account {acct:?}; give ACCOUNT:FOLDER"),
                    ),
                }
            }
            _ => err(
                "sent_folder",
                format!("{s:?} is not ACCOUNT:FOLDER (e.g. support:Sent)"),
            ),
        },
        None => {}
    }
    if m.auto_reply && m.address.is_none() {
        err(
            "auto_reply",
            "needs the mailbox's address (--address) to answer from".into(),
        );
    }
    if errs.is_empty() { Ok(m) } else { Err(errs) }
}

/// Whether a (signature or auto-reply) template compiles and renders with sample values.
pub fn check_template(template: &str, vars: &[(&str, String)]) -> Result<(), String> {
    if template.contains('\0') {
        return Err("it contains a NUL character".into());
    }
    crate::outbox::render(template, vars).map(|_| ())
}

/// The sample values of a signature preview (what `outbox` passes when sending).
pub fn sample_signature_vars(m: &MailboxRecord) -> Vec<(&'static str, String)> {
    let display = if m.display_name.is_empty() {
        m.name.clone()
    } else {
        m.display_name.clone()
    };
    vec![
        ("agent", "Anna Agent".into()),
        ("mailbox_name", display),
        (
            "mailbox_address",
            m.address
                .clone()
                .unwrap_or_else(|| "support@example.org".into()),
        ),
    ]
}

/// The sample values of an auto-reply preview (the variables `autoreply` passes).
pub fn sample_auto_reply_vars(m: &MailboxRecord) -> Vec<(&'static str, String)> {
    let display = if m.display_name.is_empty() {
        m.name.clone()
    } else {
        m.display_name.clone()
    };
    vec![
        ("tag", "PR-1234".into()),
        ("conversation", "1234".into()),
        ("subject", "Printer jammed".into()),
        ("customer_name", "Chris Customer".into()),
        ("customer_address", "chris@customer.example".into()),
        ("mailbox_name", display),
        (
            "mailbox_address",
            m.address
                .clone()
                .unwrap_or_else(|| "support@example.org".into()),
        ),
    ]
}

/// The auto-reply of `m` rendered with the sample values: (subject, body) or why not.
pub fn preview_auto_reply(m: &MailboxRecord) -> Result<(String, String), String> {
    let vars = sample_auto_reply_vars(m);
    let subject = if m.auto_reply_subject.is_empty() {
        DEFAULT_AUTO_SUBJECT
    } else {
        &m.auto_reply_subject
    };
    let body = if m.auto_reply_body.is_empty() {
        DEFAULT_AUTO_BODY
    } else {
        &m.auto_reply_body
    };
    let s = crate::outbox::render(subject, &vars)?;
    let b = crate::outbox::render(body, &vars)?;
    Ok((s.replace(['\r', '\n'], " ").trim().to_owned(), b))
}

/// What a user may do with a mailbox beyond seeing it (stored per mailbox and user in
/// `MAILBOX_PERMS`; seeing is `UserRecord.mailboxes`). Admins may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MailboxPerms(pub u32);

impl MailboxPerms {
    /// Change the mailbox's settings (addresses, names, SMTP server, Sent copy, ...).
    pub const EDIT: u32 = 1;
    /// Change who may see the mailbox and these permissions.
    pub const MANAGE: u32 = 2;
    /// Change the signature and the auto-reply.
    pub const TEXTS: u32 = 4;
    /// Not offered in the mailbox's assign lists.
    pub const HIDDEN: u32 = 8;
    /// Every bit in use.
    pub const ALL: u32 = 15;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
    /// Whether the bits open the mailbox's admin page.
    pub fn manages(self) -> bool {
        self.0 & (Self::EDIT | Self::MANAGE | Self::TEXTS) != 0
    }
}

/// Adds a mailbox.
pub fn add(tx: &mut Tx<'_>, input: &MailboxInput) -> Result<MailboxRecord, MailboxError> {
    let others = tx.mailboxes()?;
    if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(MailboxError::Invalid(vec![FieldError {
            field: "name",
            message: "is required".into(),
        }]));
    }
    let base = MailboxRecord::named(MailboxId(0), "");
    let mut m = merge(tx, &base, input, &others).map_err(MailboxError::Invalid)?;
    m.id = MailboxId(tx.next_id("mailbox")?);
    tx.put_mailbox(&m)?;
    Ok(m)
}

/// Finds a mailbox by name (case-insensitive).
pub fn find(tx: &Tx<'_>, name: &str) -> Result<MailboxRecord, MailboxError> {
    tx.mailboxes()?
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| MailboxError::NotFound(name.to_owned()))
}

/// Changes a mailbox.
pub fn edit(
    tx: &mut Tx<'_>,
    name: &str,
    input: &MailboxInput,
) -> Result<MailboxRecord, MailboxError> {
    let current = find(tx, name)?;
    let others = tx.mailboxes()?;
    let m = merge(tx, &current, input, &others).map_err(MailboxError::Invalid)?;
    tx.put_mailbox(&m)?;
    Ok(m)
}

/// The mailbox an address belongs to (main address or alias, any validity).
pub fn owner_of<'a>(mailboxes: &'a [MailboxRecord], address: &str) -> Option<&'a MailboxRecord> {
    mailboxes.iter().find(|m| {
        m.addresses()
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case(address.trim()))
    })
}

/// Whether `address` is one of ours (never auto-reply to ourselves).
pub fn is_ours(mailboxes: &[MailboxRecord], address: &str) -> bool {
    owner_of(mailboxes, address).is_some()
}

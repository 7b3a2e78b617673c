//! Mail accounts as the admin edits them: validation of every field, sealing the
//! password, and adding/changing/removing accounts in the store.
//!
//! Owns: the rules for account settings (one place for the CLI today and the admin form
//! later), each violation reported against its field with the value and what to do.
//! Must not: connect anywhere (that is `fetch`), or keep a password in clear.

use crate::model::{
    AccountId, AccountRecord, AfterFetch, LoginMethod, MailboxId, Protocol, Security, Validity,
};
use crate::net::Fingerprint;
use crate::secret::{Keyring, Secret, SecretError};
use crate::store::{StoreError, Tx};
use std::fmt;

/// Default poll interval when the server has no IDLE, or as a fallback.
pub const DEFAULT_POLL_SECS: u32 = 60;
/// Default size limit: larger messages stay on the server and are reported.
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// Everything the admin can set; `None` leaves a field as it is (edit) or takes the
/// default (add).
#[derive(Clone, Debug, Default)]
pub struct AccountInput {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub folders: Option<Vec<String>>,
    pub after: Option<String>,
    pub mailbox: Option<MailboxId>,
    pub enabled: Option<bool>,
    pub only_new: Option<bool>,
    /// `Some("")` removes the pin.
    pub pinned_cert: Option<String>,
    pub poll_secs: Option<u32>,
    pub max_message_bytes: Option<u64>,
    /// `address` (by the address the mail was sent to) or `mailbox` (all into one).
    pub dispatch: Option<String>,
    pub trusted: Option<bool>,
    /// auto, login or plain.
    pub login: Option<String>,
    /// SASL authorization identity; `Some("")` removes it.
    pub authzid: Option<String>,
    /// valid, invalid or temporarily-invalid.
    pub validity: Option<String>,
    pub comment: Option<String>,
    /// The ticket-creation options (`crate::creation`).
    pub creation: crate::creation::CreationInput,
}

/// One field that cannot be accepted (users, mailboxes, SMTP servers: English text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A message for people: a catalog key (the English text with `{placeholders}`) and the
/// values; the command line prints it in English, the browser in the user's language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub key: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl Msg {
    pub fn new(key: &'static str) -> Msg {
        Msg {
            key,
            args: Vec::new(),
        }
    }
    /// A message about a value as typed (shown quoted).
    pub fn value(key: &'static str, v: impl fmt::Debug) -> Msg {
        Msg {
            key,
            args: vec![("value", format!("{v:?}"))],
        }
    }
    /// The English text.
    pub fn english(&self) -> String {
        let mut out = self.key.to_owned();
        for (k, v) in &self.args {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.english())
    }
}

/// One account field that cannot be accepted, with a translatable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub msg: Msg,
}

/// Why an account could not be saved.
#[derive(Debug)]
pub enum AccountError {
    Invalid(Vec<Problem>),
    NotFound(String),
    Secret(SecretError),
    Store(StoreError),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::Invalid(errs) => {
                let parts: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.msg.english()))
                    .collect();
                write!(f, "the account cannot be saved: {}", parts.join("; "))
            }
            AccountError::NotFound(name) => {
                write!(
                    f,
                    "there is no account {name:?}; list them with: postroom account list"
                )
            }
            AccountError::Secret(e) => e.fmt(f),
            AccountError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e)
    }
}

impl From<SecretError> for AccountError {
    fn from(e: SecretError) -> Self {
        AccountError::Secret(e)
    }
}

/// The sealing context of an account's password (binds the ciphertext to the account).
pub fn password_context(id: AccountId) -> String {
    format!("account:{id}")
}

pub(crate) fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

/// A record name (account, SMTP server): 1 to 64 characters, no '/' or controls, and
/// not taken by another record of the same `kind` (`taken`).
pub(crate) fn check_name(kind: &str, n: &str, taken: bool) -> Result<String, String> {
    let n = n.trim();
    if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!(
            "{n:?} is not usable: 1 to 64 characters, no '/' or control characters"
        ));
    }
    if taken {
        return Err(format!(
            "{kind} named {n:?} already exists; choose another name"
        ));
    }
    Ok(n.to_owned())
}

pub(crate) fn parse_security(s: &str) -> Result<Security, String> {
    security_msg(s).map_err(|m| m.english())
}

fn security_msg(s: &str) -> Result<Security, Msg> {
    Security::parse(s.trim()).ok_or_else(|| {
        Msg::value(
            "{value} is not a security mode; use none, starttls or tls.",
            s,
        )
    })
}

pub(crate) fn check_host(h: &str) -> Result<String, String> {
    host_msg(h).map_err(|m| m.english())
}

fn host_msg(h: &str) -> Result<String, Msg> {
    let h = h.trim();
    if valid_host(h) {
        Ok(h.to_owned())
    } else {
        Err(Msg::value("{value} is not a host name or IP address.", h))
    }
}

pub(crate) fn check_port(p: u32) -> Result<u16, String> {
    port_msg(p).map_err(|m| m.english())
}

fn port_msg(p: u32) -> Result<u16, Msg> {
    u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| Msg {
        key: "{value} is not a port (1-65535).",
        args: vec![("value", p.to_string())],
    })
}

pub(crate) fn check_password(p: &Secret) -> Result<(), String> {
    password_msg(p).map_err(|m| m.english())
}

fn password_msg(p: &Secret) -> Result<(), Msg> {
    if p.expose().contains(['\r', '\n', '\0']) {
        return Err(Msg::new("Must not contain line breaks or NUL characters."));
    }
    Ok(())
}

/// A certificate pin as typed: "" removes it.
pub(crate) fn parse_pin(pin: &str) -> Result<Option<[u8; 32]>, String> {
    pin_msg(pin).map_err(|m| m.english())
}

fn pin_msg(pin: &str) -> Result<Option<[u8; 32]>, Msg> {
    if pin.trim().is_empty() {
        return Ok(None);
    }
    Fingerprint::parse(pin.trim())
        .map(|fp| Some(fp.0))
        .ok_or_else(|| {
            Msg::value(
                "{value} is not a SHA-256 fingerprint (64 hex digits, colons allowed).",
                pin.trim(),
            )
        })
}

/// The largest comment kept with an account.
pub const MAX_COMMENT: usize = 2000;

/// Applies `input` over `base` (an existing account, or defaults for a new one) and
/// checks every field; all problems are reported at once.
fn merge(
    base: &AccountRecord,
    input: &AccountInput,
    is_new: bool,
    others: &[AccountRecord],
) -> Result<AccountRecord, Vec<Problem>> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, msg: Msg| errs.push(Problem { field, msg });
    let mut a = base.clone();
    if let Some(n) = &input.name {
        let t = n.trim();
        if t.is_empty() && is_new {
            err("name", Msg::new("Required."));
        } else if t.is_empty()
            || t.chars().count() > 64
            || t.chars().any(|c| c.is_control() || c == '/')
        {
            err(
                "name",
                Msg::value(
                    "{value} is not usable: 1 to 64 characters, no '/' or control characters.",
                    t,
                ),
            );
        } else if others
            .iter()
            .any(|o| o.id != a.id && o.name.eq_ignore_ascii_case(t))
        {
            err(
                "name",
                Msg::value(
                    "An account named {value} already exists; choose another name.",
                    t,
                ),
            );
        } else {
            a.name = t.to_owned();
        }
    } else if is_new {
        err("name", Msg::new("Required."));
    }
    if let Some(p) = &input.protocol {
        match Protocol::parse(p.trim()) {
            Some(p) => a.protocol = p,
            None => err(
                "protocol",
                Msg::value("{value} is not a protocol; use imap or pop3.", p),
            ),
        }
    }
    if let Some(s) = &input.security {
        match security_msg(s) {
            Ok(s) => a.security = s,
            Err(m) => err("security", m),
        }
    }
    match input.host.as_deref().map(str::trim) {
        Some("") if is_new => err("host", Msg::new("Required (e.g. imap.example.com).")),
        Some(h) => match host_msg(h) {
            Ok(h) => a.host = h,
            Err(m) => err("host", m),
        },
        None if is_new => err("host", Msg::new("Required (e.g. imap.example.com).")),
        None => {}
    }
    match input.port.map(port_msg) {
        Some(Ok(p)) => a.port = p,
        Some(Err(m)) => err("port", m),
        // No port given: a port that was the default keeps following the defaults.
        None if is_new || a.port == default_port(base.protocol, base.security) => {
            a.port = default_port(a.protocol, a.security);
        }
        None => {}
    }
    if let Some(u) = &input.username {
        if u.is_empty() && is_new {
            err("username", Msg::new("Required."));
        } else if u.is_empty() || u.chars().any(|c| c.is_control()) {
            err(
                "username",
                Msg::new("Must not be empty or contain control characters."),
            );
        } else {
            a.username = u.clone();
        }
    } else if is_new {
        err("username", Msg::new("Required."));
    }
    match &input.password {
        Some(p) if p.expose().is_empty() && is_new => {
            err("password", Msg::new("Required for a new account."))
        }
        Some(p) => {
            if let Err(m) = password_msg(p) {
                err("password", m);
            }
        }
        None if is_new => err("password", Msg::new("Required for a new account.")),
        None => {}
    }
    if let Some(l) = &input.login {
        match LoginMethod::parse(l) {
            Some(l) => a.login = l,
            None => err(
                "login",
                Msg::value(
                    "{value} is not a login method; use auto, login or plain.",
                    l,
                ),
            ),
        }
    }
    if let Some(z) = &input.authzid {
        if z.chars().any(|c| c.is_control()) {
            err("authzid", Msg::new("Must not contain control characters."));
        } else {
            a.authzid = z.trim().to_owned();
        }
    }
    if !a.authzid.is_empty() && a.login == LoginMethod::Login {
        err(
            "authzid",
            Msg::new("An authorization identity needs the login method SASL PLAIN (or automatic)."),
        );
    }
    if let Some(folders) = &input.folders {
        let cleaned: Vec<String> = folders
            .iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        if cleaned.is_empty() {
            err(
                "folders",
                Msg::new("At least one folder is needed (INBOX)."),
            );
        } else if let Some(bad) = cleaned
            .iter()
            .find(|f| f.chars().any(|c| c.is_control() || c == '"'))
        {
            err(
                "folders",
                Msg::value("{value} is not a usable folder name.", bad),
            );
        } else {
            a.folders = cleaned;
        }
    }
    if let Some(s) = &input.after {
        match AfterFetch::parse(s.trim()) {
            Some(x) => a.after = x,
            None => err(
                "after",
                Msg::value("{value} is not keep, delete or move:FOLDER.", s),
            ),
        }
    }
    if a.protocol == Protocol::Pop3 {
        if let AfterFetch::Move(_) = a.after {
            err(
                "after",
                Msg::new("POP3 has no folders; use keep or delete."),
            );
        }
        if a.folders != ["INBOX"] && input.folders.is_some() {
            err(
                "folders",
                Msg::new("POP3 has only the one mailbox; leave the folders at INBOX."),
            );
        }
    }
    if let AfterFetch::Move(target) = &a.after
        && a.folders.iter().any(|f| f == target)
    {
        err(
            "after",
            Msg::value(
                "Cannot move into {value}, which is also read; choose another folder.",
                target,
            ),
        );
    }
    if let Some(m) = input.mailbox {
        a.mailbox = m;
    }
    if let Some(e) = input.enabled {
        a.enabled = e;
    }
    if let Some(o) = input.only_new {
        a.only_new = o;
    }
    if let Some(pin) = &input.pinned_cert {
        match pin_msg(pin) {
            Ok(p) => a.pinned_cert = p,
            Err(m) => err("pinned_cert", m),
        }
    }
    if let Some(p) = input.poll_secs {
        if (10..=86_400).contains(&p) {
            a.poll_secs = p;
        } else {
            err(
                "poll_secs",
                Msg {
                    key: "{value} s is out of range (10 s to 1 day).",
                    args: vec![("value", p.to_string())],
                },
            );
        }
    }
    if let Some(m) = input.max_message_bytes {
        if m >= 64 * 1024 {
            a.max_message_bytes = m;
        } else {
            err(
                "max_message_bytes",
                Msg {
                    key: "{value} bytes is too small (at least 64 KiB).",
                    args: vec![("value", m.to_string())],
                },
            );
        }
    }
    if let Some(x) = &input.dispatch {
        match x.trim().to_ascii_lowercase().as_str() {
            "address" | "by-address" => a.dispatch_by_address = true,
            "mailbox" | "all" => a.dispatch_by_address = false,
            _ => err(
                "dispatch",
                Msg::value(
                    "{value} is not address (by the address mail was sent to) or mailbox (all into one).",
                    x,
                ),
            ),
        }
    }
    if let Some(t) = input.trusted {
        a.trusted = t;
    }
    if let Some(v) = &input.validity {
        match Validity::parse(v.trim()) {
            Some(v) => a.validity = v,
            None => err(
                "validity",
                Msg::value(
                    "{value} is not a validity; use valid, invalid or temporarily-invalid.",
                    v,
                ),
            ),
        }
    }
    if let Some(c) = &input.comment {
        let c = c.trim();
        if c.chars().count() > MAX_COMMENT {
            err(
                "comment",
                Msg {
                    key: "Longer than {n} characters.",
                    args: vec![("n", MAX_COMMENT.to_string())],
                },
            );
        } else if c
            .chars()
            .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\r' | '\t'))
        {
            err("comment", Msg::new("Must not contain control characters."));
        } else {
            a.comment = c.replace("\r\n", "\n");
        }
    }
    crate::creation::merge(&mut a.creation, &input.creation, &mut err);
    if errs.is_empty() { Ok(a) } else { Err(errs) }
}

/// The result of `merge` with the default assignee resolved against the users (who must
/// exist and may see the account's mailbox); every problem reported at once.
fn finish(
    tx: &Tx<'_>,
    merged: Result<AccountRecord, Vec<Problem>>,
    base: &AccountRecord,
    input: &AccountInput,
) -> Result<AccountRecord, AccountError> {
    match merged {
        Ok(mut a) => {
            let problems = crate::creation::resolve_assignee(tx, &mut a, &input.creation)?;
            if problems.is_empty() {
                Ok(a)
            } else {
                Err(AccountError::Invalid(problems))
            }
        }
        Err(mut problems) => {
            let mut a = base.clone();
            if let Some(m) = input.mailbox {
                a.mailbox = m;
            }
            problems.extend(crate::creation::resolve_assignee(
                tx,
                &mut a,
                &input.creation,
            )?);
            Err(AccountError::Invalid(problems))
        }
    }
}

/// The account `input` describes, checked but not stored: over `base` (an edit) or the
/// defaults (a new account). For "check connection" on a form not saved yet.
pub fn draft(
    base: Option<&AccountRecord>,
    input: &AccountInput,
    others: &[AccountRecord],
) -> Result<AccountRecord, Vec<Problem>> {
    match base {
        Some(b) => merge(b, input, false, others),
        None => merge(&defaults(), input, true, others),
    }
}

/// The usual port for a protocol and security mode.
pub fn default_port(p: Protocol, s: Security) -> u16 {
    match (p, s) {
        (Protocol::Imap, Security::Tls) => 993,
        (Protocol::Imap, _) => 143,
        (Protocol::Pop3, Security::Tls) => 995,
        (Protocol::Pop3, _) => 110,
    }
}

fn defaults() -> AccountRecord {
    AccountRecord {
        id: AccountId(0),
        name: String::new(),
        protocol: Protocol::Imap,
        host: String::new(),
        port: 0,
        security: Security::Tls,
        username: String::new(),
        password_sealed: Vec::new(),
        folders: vec!["INBOX".into()],
        after: AfterFetch::Keep,
        mailbox: MailboxId(1),
        enabled: true,
        only_new: false,
        pinned_cert: None,
        poll_secs: DEFAULT_POLL_SECS,
        max_message_bytes: DEFAULT_MAX_BYTES,
        dispatch_by_address: true,
        trusted: false,
        login: LoginMethod::Auto,
        authzid: String::new(),
        validity: Validity::Valid,
        comment: String::new(),
        creation: Default::default(),
    }
}

fn check_mailbox(tx: &Tx<'_>, a: &AccountRecord) -> Result<(), AccountError> {
    if tx.mailbox(a.mailbox)?.is_none() {
        return Err(AccountError::Invalid(vec![Problem {
            field: "mailbox",
            msg: Msg::value("Mailbox {value} does not exist.", a.mailbox.0),
        }]));
    }
    Ok(())
}

/// Adds an account.
pub fn add(
    tx: &mut Tx<'_>,
    keys: &Keyring,
    input: &AccountInput,
) -> Result<AccountRecord, AccountError> {
    let others = tx.accounts()?;
    let mut base = defaults();
    // The size limit new accounts start with (Settings > max_message_mb).
    if let Some(mb) = tx
        .setting("max_message_mb")?
        .and_then(|v| v.parse::<u64>().ok())
    {
        base.max_message_bytes = mb << 20;
    }
    let mut a = finish(tx, merge(&base, input, true, &others), &base, input)?;
    check_mailbox(tx, &a)?;
    a.id = AccountId(tx.next_id("account")?);
    if let Some(p) = &input.password {
        a.password_sealed = keys.seal(p, &password_context(a.id))?;
    }
    tx.put_account(&a)?;
    Ok(a)
}

/// Finds an account by name (case-insensitive).
pub fn find(tx: &Tx<'_>, name: &str) -> Result<AccountRecord, AccountError> {
    tx.accounts()?
        .into_iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| AccountError::NotFound(name.to_owned()))
}

/// Changes an account.
pub fn edit(
    tx: &mut Tx<'_>,
    keys: &Keyring,
    name: &str,
    input: &AccountInput,
) -> Result<AccountRecord, AccountError> {
    let current = find(tx, name)?;
    let others = tx.accounts()?;
    let mut a = finish(tx, merge(&current, input, false, &others), &current, input)?;
    check_mailbox(tx, &a)?;
    // An empty password on an edit keeps the stored one.
    if let Some(p) = &input.password
        && !p.expose().is_empty()
    {
        a.password_sealed = keys.seal(p, &password_context(a.id))?;
    }
    tx.put_account(&a)?;
    Ok(a)
}

/// Removes an account; the conversations it brought in stay.
pub fn remove(tx: &mut Tx<'_>, name: &str) -> Result<AccountRecord, AccountError> {
    let a = find(tx, name)?;
    tx.remove_account(a.id)?;
    Ok(a)
}

/// The account's password in clear, for the login.
pub fn password(keys: &Keyring, a: &AccountRecord) -> Result<Secret, SecretError> {
    keys.open(&a.password_sealed, &password_context(a.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AccountInput {
        AccountInput {
            name: Some("support".into()),
            host: Some("imap.example.com".into()),
            username: Some("support@example.com".into()),
            password: Some(Secret::new("pw")),
            ..AccountInput::default()
        }
    }

    #[test]
    fn defaults_follow_protocol_and_security() {
        let a = merge(&defaults(), &input(), true, &[]).unwrap();
        assert_eq!(
            (a.protocol, a.security, a.port),
            (Protocol::Imap, Security::Tls, 993)
        );
        let mut i = input();
        i.protocol = Some("pop3".into());
        i.security = Some("starttls".into());
        let a = merge(&defaults(), &i, true, &[]).unwrap();
        assert_eq!(a.port, 110);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let i = AccountInput {
            name: Some("".into()),
            protocol: Some("smtp".into()),
            port: Some(70000),
            after: Some("archive".into()),
            pinned_cert: Some("abc".into()),
            poll_secs: Some(1),
            ..AccountInput::default()
        };
        let errs = merge(&defaults(), &i, true, &[]).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
        for f in [
            "name",
            "protocol",
            "port",
            "after",
            "pinned_cert",
            "poll_secs",
            "host",
            "username",
            "password",
        ] {
            assert!(fields.contains(&f), "{f} not reported: {errs:?}");
        }
    }

    #[test]
    fn pop3_cannot_move_and_names_are_unique() {
        let mut i = input();
        i.protocol = Some("pop3".into());
        i.after = Some("move:Done".into());
        assert!(
            merge(&defaults(), &i, true, &[])
                .unwrap_err()
                .iter()
                .any(|e| e.field == "after")
        );
        let mut existing = defaults();
        existing.id = AccountId(1);
        existing.name = "Support".into();
        assert!(
            merge(&defaults(), &input(), true, &[existing])
                .unwrap_err()
                .iter()
                .any(|e| e.field == "name")
        );
    }
}

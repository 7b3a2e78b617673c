//! Mail accounts as the admin edits them: validation of every field, sealing the
//! password, and adding/changing/removing accounts in the store.
//!
//! Owns: the rules for account settings (one place for the CLI today and the admin form
//! later), each violation reported against its field with the value and what to do.
//! Must not: connect anywhere (that is `fetch`), or keep a password in clear.

use crate::model::{AccountId, AccountRecord, AfterFetch, MailboxId, Protocol, Security};
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
}

/// One field that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Why an account could not be saved.
#[derive(Debug)]
pub enum AccountError {
    Invalid(Vec<FieldError>),
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
                    .map(|e| format!("{}: {}", e.field, e.message))
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
    Security::parse(s)
        .ok_or_else(|| format!("{s:?} is not a security mode; use none, starttls or tls"))
}

pub(crate) fn check_host(h: &str) -> Result<String, String> {
    let h = h.trim();
    if valid_host(h) {
        Ok(h.to_owned())
    } else {
        Err(format!("{h:?} is not a host name or IP address"))
    }
}

pub(crate) fn check_port(p: u32) -> Result<u16, String> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{p} is not a port (1-65535)"))
}

pub(crate) fn check_password(p: &Secret) -> Result<(), String> {
    if p.expose().contains(['\r', '\n', '\0']) {
        return Err("must not contain line breaks or NUL characters".into());
    }
    Ok(())
}

/// A certificate pin as typed: "" removes it.
pub(crate) fn parse_pin(pin: &str) -> Result<Option<[u8; 32]>, String> {
    if pin.trim().is_empty() {
        return Ok(None);
    }
    Fingerprint::parse(pin.trim())
        .map(|fp| Some(fp.0))
        .ok_or_else(|| {
            format!("{pin:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
        })
}

/// Applies `input` over `base` (an existing account, or defaults for a new one) and
/// checks every field; all problems are reported at once.
fn merge(
    base: &AccountRecord,
    input: &AccountInput,
    is_new: bool,
    others: &[AccountRecord],
) -> Result<AccountRecord, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, message: String| errs.push(FieldError { field, message });
    let mut a = base.clone();
    if let Some(n) = &input.name {
        let taken = others
            .iter()
            .any(|o| o.id != a.id && o.name.eq_ignore_ascii_case(n.trim()));
        match check_name("an account", n, taken) {
            Ok(n) => a.name = n,
            Err(m) => err("name", m),
        }
    } else if is_new {
        err("name", "is required".into());
    }
    if let Some(p) = &input.protocol {
        match Protocol::parse(p) {
            Some(p) => a.protocol = p,
            None => err(
                "protocol",
                format!("{p:?} is not a protocol; use imap or pop3"),
            ),
        }
    }
    if let Some(s) = &input.security {
        match parse_security(s) {
            Ok(s) => a.security = s,
            Err(m) => err("security", m),
        }
    }
    if let Some(h) = &input.host {
        match check_host(h) {
            Ok(h) => a.host = h,
            Err(m) => err("host", m),
        }
    } else if is_new {
        err("host", "is required (e.g. imap.example.com)".into());
    }
    match input.port.map(check_port) {
        Some(Ok(p)) => a.port = p,
        Some(Err(m)) => err("port", m),
        // No port given: a port that was the default keeps following the defaults.
        None if is_new || a.port == default_port(base.protocol, base.security) => {
            a.port = default_port(a.protocol, a.security);
        }
        None => {}
    }
    if let Some(u) = &input.username {
        if u.is_empty() || u.chars().any(|c| c.is_control()) {
            err(
                "username",
                "must not be empty or contain control characters".into(),
            );
        } else {
            a.username = u.clone();
        }
    } else if is_new {
        err("username", "is required".into());
    }
    if let Some(p) = &input.password {
        if let Err(m) = check_password(p) {
            err("password", m);
        }
    } else if is_new {
        err(
            "password",
            "is required (--password or --password-file)".into(),
        );
    }
    if let Some(folders) = &input.folders {
        let cleaned: Vec<String> = folders
            .iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        if cleaned.is_empty() {
            err("folders", "at least one folder is needed (INBOX)".into());
        } else if let Some(bad) = cleaned
            .iter()
            .find(|f| f.chars().any(|c| c.is_control() || c == '"'))
        {
            err("folders", format!("{bad:?} is not a usable folder name"));
        } else {
            a.folders = cleaned;
        }
    }
    if let Some(s) = &input.after {
        match AfterFetch::parse(s.trim()) {
            Some(x) => a.after = x,
            None => err("after", format!("{s:?} is not keep, delete or move:FOLDER")),
        }
    }
    if a.protocol == Protocol::Pop3 {
        if let AfterFetch::Move(_) = a.after {
            err("after", "POP3 has no folders; use keep or delete".into());
        }
        if a.folders != ["INBOX"] && input.folders.is_some() {
            err(
                "folders",
                "POP3 has only the one mailbox; leave the folders at INBOX".into(),
            );
        }
    }
    if let AfterFetch::Move(target) = &a.after
        && a.folders.iter().any(|f| f == target)
    {
        err(
            "after",
            format!("cannot move into {target:?}, which is also read; choose another folder"),
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
        match parse_pin(pin) {
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
                format!("{p} s is out of range (10 s to 1 day)"),
            );
        }
    }
    if let Some(m) = input.max_message_bytes {
        if m >= 64 * 1024 {
            a.max_message_bytes = m;
        } else {
            err(
                "max_message_bytes",
                format!("{m} bytes is too small (at least 64 KiB)"),
            );
        }
    }
    if let Some(x) = &input.dispatch {
        match x.trim().to_ascii_lowercase().as_str() {
            "address" | "by-address" => a.dispatch_by_address = true,
            "mailbox" | "all" => a.dispatch_by_address = false,
            _ => err(
                "dispatch",
                format!(
                    "{x:?} is not address (by the address mail was sent to) or mailbox (all into one)"
                ),
            ),
        }
    }
    if let Some(t) = input.trusted {
        a.trusted = t;
    }
    if errs.is_empty() { Ok(a) } else { Err(errs) }
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
    }
}

fn check_mailbox(tx: &Tx<'_>, a: &AccountRecord) -> Result<(), AccountError> {
    if tx.mailbox(a.mailbox)?.is_none() {
        return Err(AccountError::Invalid(vec![FieldError {
            field: "mailbox",
            message: format!("mailbox {} does not exist", a.mailbox),
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
    let mut a = merge(&base, input, true, &others).map_err(AccountError::Invalid)?;
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
    let mut a = merge(&current, input, false, &others).map_err(AccountError::Invalid)?;
    check_mailbox(tx, &a)?;
    if let Some(p) = &input.password {
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

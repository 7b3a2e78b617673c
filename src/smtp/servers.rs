//! SMTP servers as the admin edits them: validation of every field, sealing the password,
//! adding/changing/removing them in the store.
//!
//! Owns: the rules for SMTP server settings (the CLI now, the admin page later).
//! Must not: connect anywhere (`smtp::deliver` does), or keep a password in clear.

use crate::accounts::{
    FieldError, check_host, check_name, check_password, check_port, parse_pin, parse_security,
    valid_host,
};
use crate::model::{Security, SmtpAuth, SmtpId, SmtpRecord};
use crate::secret::{Keyring, Secret, SecretError};
use crate::store::{StoreError, Tx};
use std::fmt;

/// Everything the admin can set; `None` leaves a field as it is (edit) or takes the
/// default (add).
#[derive(Clone, Debug, Default)]
pub struct SmtpInput {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub security: Option<String>,
    pub auth: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub helo: Option<String>,
    /// `Some("")` removes the pin.
    pub pinned_cert: Option<String>,
}

/// Why an SMTP server could not be saved or found.
#[derive(Debug)]
pub enum SmtpConfigError {
    Invalid(Vec<FieldError>),
    NotFound(String),
    InUse {
        name: String,
        mailboxes: Vec<String>,
    },
    Secret(SecretError),
    Store(StoreError),
}

impl fmt::Display for SmtpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpConfigError::Invalid(errs) => {
                let parts: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                write!(f, "the SMTP server cannot be saved: {}", parts.join("; "))
            }
            SmtpConfigError::NotFound(name) => write!(
                f,
                "there is no SMTP server {name:?}; list them with: postroom smtp list"
            ),
            SmtpConfigError::InUse { name, mailboxes } => write!(
                f,
                "the SMTP server {name:?} is used by the mailboxes {}; point them at another server first (postroom mailbox edit NAME --smtp OTHER)",
                mailboxes.join(", ")
            ),
            SmtpConfigError::Secret(e) => e.fmt(f),
            SmtpConfigError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SmtpConfigError {}

impl From<StoreError> for SmtpConfigError {
    fn from(e: StoreError) -> Self {
        SmtpConfigError::Store(e)
    }
}

impl From<SecretError> for SmtpConfigError {
    fn from(e: SecretError) -> Self {
        SmtpConfigError::Secret(e)
    }
}

/// The sealing context of an SMTP server's password.
pub fn password_context(id: SmtpId) -> String {
    format!("smtp:{id}")
}

/// The usual port for a security mode: 465 implicit TLS, 587 submission with STARTTLS,
/// 25 for a plain LAN relay.
pub fn default_port(s: Security) -> u16 {
    match s {
        Security::Tls => 465,
        Security::StartTls => 587,
        Security::None => 25,
    }
}

fn defaults() -> SmtpRecord {
    SmtpRecord {
        id: SmtpId(0),
        name: String::new(),
        host: String::new(),
        port: 0,
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username: String::new(),
        password_sealed: Vec::new(),
        helo: String::new(),
        pinned_cert: None,
        last_test: None,
    }
}

fn merge(
    base: &SmtpRecord,
    input: &SmtpInput,
    is_new: bool,
    others: &[SmtpRecord],
) -> Result<SmtpRecord, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, message: String| errs.push(FieldError { field, message });
    let mut s = base.clone();
    if let Some(n) = &input.name {
        let taken = others
            .iter()
            .any(|o| o.id != s.id && o.name.eq_ignore_ascii_case(n.trim()));
        match check_name("an SMTP server", n, taken) {
            Ok(n) => s.name = n,
            Err(m) => err("name", m),
        }
    } else if is_new {
        err("name", "is required".into());
    }
    if let Some(x) = &input.security {
        match parse_security(x) {
            Ok(x) => s.security = x,
            Err(m) => err("security", m),
        }
    }
    if let Some(h) = &input.host {
        match check_host(h) {
            Ok(h) => s.host = h,
            Err(m) => err("host", m),
        }
    } else if is_new {
        err("host", "is required (e.g. smtp.example.com)".into());
    }
    match input.port.map(check_port) {
        Some(Ok(p)) => s.port = p,
        Some(Err(m)) => err("port", m),
        None if is_new || s.port == default_port(base.security) => {
            s.port = default_port(s.security);
        }
        None => {}
    }
    if let Some(a) = &input.auth {
        match SmtpAuth::parse(a) {
            Some(a) => s.auth = a,
            None => err(
                "auth",
                format!("{a:?} is not a login method; use none, plain or login"),
            ),
        }
    }
    if let Some(u) = &input.username {
        if u.chars().any(|c| c.is_control()) {
            err("username", "must not contain control characters".into());
        } else {
            s.username = u.clone();
        }
    }
    if let Some(p) = &input.password
        && let Err(m) = check_password(p)
    {
        err("password", m);
    }
    if s.auth != SmtpAuth::None {
        if s.username.is_empty() {
            err(
                "username",
                "is required with a login (or set --auth none for a relay without login)".into(),
            );
        }
        if is_new && input.password.is_none() {
            err(
                "password",
                "is required with a login (--password or --password-file)".into(),
            );
        }
    }
    if let Some(h) = &input.helo {
        let h = h.trim();
        if !h.is_empty() && !valid_host(h) {
            err("helo", format!("{h:?} is not a host name"));
        } else {
            s.helo = h.to_owned();
        }
    }
    if let Some(pin) = &input.pinned_cert {
        match parse_pin(pin) {
            Ok(p) => s.pinned_cert = p,
            Err(m) => err("pinned_cert", m),
        }
    }
    if errs.is_empty() { Ok(s) } else { Err(errs) }
}

/// Adds an SMTP server.
pub fn add(
    tx: &mut Tx<'_>,
    keys: &Keyring,
    input: &SmtpInput,
) -> Result<SmtpRecord, SmtpConfigError> {
    let others = tx.smtp_servers()?;
    let mut s = merge(&defaults(), input, true, &others).map_err(SmtpConfigError::Invalid)?;
    s.id = SmtpId(tx.next_id("smtp")?);
    if let Some(p) = &input.password {
        s.password_sealed = keys.seal(p, &password_context(s.id))?;
    }
    tx.put_smtp(&s)?;
    Ok(s)
}

/// Finds an SMTP server by name (case-insensitive).
pub fn find(tx: &Tx<'_>, name: &str) -> Result<SmtpRecord, SmtpConfigError> {
    tx.smtp_servers()?
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| SmtpConfigError::NotFound(name.to_owned()))
}

/// Changes an SMTP server; a changed connection setting forgets the last test.
pub fn edit(
    tx: &mut Tx<'_>,
    keys: &Keyring,
    name: &str,
    input: &SmtpInput,
) -> Result<SmtpRecord, SmtpConfigError> {
    let current = find(tx, name)?;
    let others = tx.smtp_servers()?;
    let mut s = merge(&current, input, false, &others).map_err(SmtpConfigError::Invalid)?;
    if let Some(p) = &input.password {
        s.password_sealed = keys.seal(p, &password_context(s.id))?;
    }
    let connection = |r: &SmtpRecord| {
        (
            r.host.clone(),
            r.port,
            r.security,
            r.auth,
            r.username.clone(),
            r.pinned_cert,
            r.helo.clone(),
        )
    };
    if connection(&s) != connection(&current) || input.password.is_some() {
        s.last_test = None;
    }
    tx.put_smtp(&s)?;
    Ok(s)
}

/// Removes an SMTP server no mailbox uses.
pub fn remove(tx: &mut Tx<'_>, name: &str) -> Result<SmtpRecord, SmtpConfigError> {
    let s = find(tx, name)?;
    let users: Vec<String> = tx
        .mailboxes()?
        .into_iter()
        .filter(|m| m.smtp == Some(s.id))
        .map(|m| m.name)
        .collect();
    if !users.is_empty() {
        return Err(SmtpConfigError::InUse {
            name: s.name,
            mailboxes: users,
        });
    }
    tx.remove_smtp(s.id)?;
    Ok(s)
}

/// The server's password in clear, for the login (`None` without a login).
pub fn password(keys: &Keyring, s: &SmtpRecord) -> Result<Option<Secret>, SecretError> {
    if s.auth == SmtpAuth::None || s.password_sealed.is_empty() {
        return Ok(None);
    }
    keys.open(&s.password_sealed, &password_context(s.id))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> SmtpInput {
        SmtpInput {
            name: Some(name.into()),
            host: Some("smtp.example.org".into()),
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            ..SmtpInput::default()
        }
    }

    #[test]
    fn defaults_follow_the_security_mode() {
        let s = merge(&defaults(), &input("relay"), true, &[]).unwrap();
        assert_eq!(
            (s.port, s.security, s.auth),
            (587, Security::StartTls, SmtpAuth::Plain)
        );
        let mut i = input("relay");
        i.security = Some("tls".into());
        assert_eq!(merge(&defaults(), &i, true, &[]).unwrap().port, 465);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let i = SmtpInput {
            name: Some("a/b".into()),
            host: Some("bad host".into()),
            port: Some(0),
            security: Some("ssl3".into()),
            auth: Some("ntlm".into()),
            pinned_cert: Some("xyz".into()),
            password: Some(Secret::new("a\r\nb")),
            ..SmtpInput::default()
        };
        let errs = merge(&defaults(), &i, true, &[]).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
        for f in [
            "name",
            "host",
            "port",
            "security",
            "auth",
            "pinned_cert",
            "password",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
    }

    #[test]
    fn a_relay_without_login_needs_no_password() {
        let i = SmtpInput {
            name: Some("lan".into()),
            host: Some("10.0.0.2".into()),
            security: Some("none".into()),
            auth: Some("none".into()),
            ..SmtpInput::default()
        };
        let s = merge(&defaults(), &i, true, &[]).unwrap();
        assert_eq!((s.port, s.auth), (25, SmtpAuth::None));
    }
}

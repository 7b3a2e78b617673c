//! The people who log in: users, passwords, sessions, API tokens, the first-run setup
//! code and login throttling.
//!
//! Owns: the rules for user fields (login, name, address, role, mailboxes), password
//! hashing (argon2id, 19 MiB, 2 passes), checking a login with the same work and the same
//! answer whether the user exists or not, session and API tokens (random 256-bit values;
//! only their SHA-256 is stored), and how many failed logins an account or an address may
//! make before it has to wait.
//! Must not: speak HTTP, set cookies or render pages (that is `web`), or log a password,
//! a token or a setup code's guess.

use crate::accounts::FieldError;
use crate::model::{
    ApiTokenRecord, InviteRecord, MailboxId, Role, SessionRecord, UserId, UserRecord,
};
use crate::secret::Secret;
use crate::store::{StoreError, Tx};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 1024;
/// A session not used for this long is gone (seconds).
pub const SESSION_IDLE_SECS: i64 = 14 * 86_400;
/// Invitation and password-reset links live this long (seconds): 7 days.
pub const INVITE_SECS: i64 = 7 * 86_400;
/// Setup codes live this long (seconds).
pub const SETUP_CODE_SECS: i64 = 3600;

/// argon2id with OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane.
fn argon() -> argon2::Argon2<'static> {
    // The numbers are constants within argon2's limits; `new` cannot fail on them, but a
    // failure would fall back to the (stronger) library default.
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// `n` random bytes from the system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system generator does not fail on Linux; if it did, refuse rather than use zeros.
    if SystemRandom::new().fill(&mut b).is_err() {
        panic!("the system random number generator failed");
    }
    b
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (64 hex digits) and the key it is stored under.
pub fn new_token() -> (String, [u8; 32]) {
    let token = hex(&random_bytes::<32>());
    let key = token_key(&token);
    (token, key)
}

/// The store key of a token: its SHA-256.
pub fn token_key(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// Hashes a password for storage (PHC string).
pub fn hash_password(password: &Secret) -> Result<String, UserError> {
    let salt = random_bytes::<16>();
    argon()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`. A damaged hash never matches.
pub fn verify_password(hash: &str, password: &Secret) -> bool {
    !hash.is_empty()
        && argon()
            .verify_password(password.expose().as_bytes(), hash)
            .is_ok()
}

/// A hash nobody's password matches, verified for unknown users so that a wrong login
/// costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password(&Secret::new(hex(&random_bytes::<32>()))).unwrap_or_default())
}

/// What the admin (or the setup page) gives for a user; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct UserInput {
    pub login: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    /// Mailbox names an agent may see (replaces the list).
    pub mailboxes: Option<Vec<String>>,
    pub password: Option<Secret>,
    pub disabled: Option<bool>,
    pub language: Option<String>,
    pub signature: Option<String>,
}

/// Why a user could not be saved, found or logged in.
#[derive(Debug)]
pub enum UserError {
    Invalid(Vec<FieldError>),
    NotFound(String),
    Hash(String),
    Store(StoreError),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Invalid(errs) => {
                let parts: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                write!(f, "the user cannot be saved: {}", parts.join("; "))
            }
            UserError::NotFound(login) => write!(
                f,
                "no user {login:?}; `postroom user list` shows the users there are"
            ),
            UserError::Hash(e) => write!(f, "the password could not be hashed: {e}"),
            UserError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for UserError {}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        UserError::Store(e)
    }
}

/// Checks a password against the rules; the message says what to change.
pub fn check_password(password: &Secret) -> Result<(), String> {
    let n = password.expose().chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "is too short ({n} characters); use at least {MIN_PASSWORD}, a few words make a good one"
        ));
    }
    if password.expose().len() > MAX_PASSWORD {
        return Err(format!("is longer than {MAX_PASSWORD} bytes"));
    }
    if password.expose().chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

fn check_login(login: &str) -> Result<String, String> {
    let l = login.trim().to_lowercase();
    if l.is_empty() {
        return Err("is empty".into());
    }
    if l.len() > 64 {
        return Err("is longer than 64 characters".into());
    }
    if !l
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+'))
    {
        return Err("may hold only letters, digits and . - _ @ +".into());
    }
    Ok(l)
}

/// Applies `input` to `u` (a new or an existing user), collecting every field's error.
fn apply(tx: &Tx<'_>, u: &mut UserRecord, input: &UserInput, now: i64) -> Result<(), UserError> {
    let mut errs = Vec::new();
    let mut bad = |field: &'static str, message: String| errs.push(FieldError { field, message });
    if let Some(l) = &input.login {
        match check_login(l) {
            Ok(l) => match tx.user_by_login(&l)? {
                Some(other) if other.id != u.id => bad("login", "is taken".into()),
                _ => u.login = l,
            },
            Err(m) => bad("login", m),
        }
    }
    if let Some(n) = &input.name {
        match crate::compose::check_text("name", n.trim()) {
            Ok(()) if n.trim().chars().count() <= 200 => u.name = n.trim().to_owned(),
            Ok(()) => bad("name", "is longer than 200 characters".into()),
            Err(_) => bad("name", "contains a control character".into()),
        }
    }
    if let Some(e) = &input.email {
        let e = e.trim();
        if e.is_empty() {
            u.email.clear();
        } else {
            match crate::compose::check_address("email", e) {
                Ok(()) => u.email = e.to_owned(),
                Err(_) => bad("email", "is not a valid e-mail address".into()),
            }
        }
    }
    if let Some(r) = &input.role {
        match Role::parse(r) {
            Some(r) => u.role = r,
            None => bad("role", "is not admin or agent".into()),
        }
    }
    if let Some(names) = &input.mailboxes {
        let all = tx.mailboxes()?;
        let mut ids: Vec<MailboxId> = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match all.iter().find(|m| m.name.eq_ignore_ascii_case(n)) {
                Some(m) if !ids.contains(&m.id) => ids.push(m.id),
                Some(_) => {}
                None => bad("mailboxes", format!("names no mailbox there is: {n}")),
            }
        }
        u.mailboxes = ids;
    }
    if let Some(p) = &input.password {
        match check_password(p) {
            Ok(()) => {
                u.password_hash = hash_password(p)?;
                u.password_changed = now;
            }
            Err(m) => bad("password", m),
        }
    }
    if let Some(d) = input.disabled {
        u.disabled = d;
    }
    if let Some(l) = &input.language {
        let l = l.trim();
        if l.is_empty() || crate::web::i18n::is_supported(l) {
            u.language = l.to_owned();
        } else {
            bad(
                "language",
                "is not one of the languages offered (en, fr)".into(),
            );
        }
    }
    if let Some(s) = &input.signature {
        u.signature = s.clone();
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(UserError::Invalid(errs))
    }
}

/// Creates a user. Login, name and password are required.
pub fn add(tx: &mut Tx<'_>, input: &UserInput, now: i64) -> Result<UserRecord, UserError> {
    let mut missing = Vec::new();
    for (field, given) in [
        ("login", input.login.is_some()),
        ("password", input.password.is_some()),
    ] {
        if !given {
            missing.push(FieldError {
                field,
                message: "is required".into(),
            });
        }
    }
    if !missing.is_empty() {
        return Err(UserError::Invalid(missing));
    }
    let mut u = UserRecord {
        id: UserId(0),
        login: String::new(),
        name: String::new(),
        email: String::new(),
        role: Role::Agent,
        password_hash: String::new(),
        mailboxes: Vec::new(),
        disabled: false,
        created: now,
        password_changed: now,
        language: String::new(),
        signature: String::new(),
    };
    apply(tx, &mut u, input, now)?;
    if u.name.is_empty() {
        u.name = u.login.clone();
    }
    u.id = UserId(tx.next_id("user")?);
    tx.put_user(&u)?;
    Ok(u)
}

/// Changes a user. A new password or disabling ends every session of the user.
pub fn edit(
    tx: &mut Tx<'_>,
    login: &str,
    input: &UserInput,
    now: i64,
) -> Result<UserRecord, UserError> {
    let mut u = tx
        .user_by_login(login)?
        .ok_or_else(|| UserError::NotFound(login.to_owned()))?;
    apply(tx, &mut u, input, now)?;
    if input.password.is_some() || u.disabled {
        tx.remove_sessions_of(u.id)?;
    }
    tx.put_user(&u)?;
    Ok(u)
}

/// A new single-use link token for `user` (an invitation, or a reset when `reset`);
/// the user's older links stop working. Returns the token (shown or mailed once; only its
/// hash is stored).
fn new_invite(tx: &mut Tx<'_>, user: UserId, reset: bool, now: i64) -> Result<String, StoreError> {
    tx.remove_invites_of(user)?;
    let (token, key) = new_token();
    tx.put_invite(
        &key,
        &InviteRecord {
            user,
            created: now,
            expires: now + INVITE_SECS,
            reset,
        },
    )?;
    Ok(token)
}

/// Invites a user: creates them without a password (they cannot log in yet) and returns
/// the user and the link's token. Login and e-mail address are required (the link is
/// mailed there).
pub fn invite(
    tx: &mut Tx<'_>,
    input: &UserInput,
    now: i64,
) -> Result<(UserRecord, String), UserError> {
    let mut missing = Vec::new();
    for (field, given) in [
        ("login", input.login.as_deref()),
        ("email", input.email.as_deref()),
    ] {
        if given.is_none_or(|v| v.trim().is_empty()) {
            missing.push(FieldError {
                field,
                message: "is required".into(),
            });
        }
    }
    let mut u = UserRecord {
        id: UserId(0),
        login: String::new(),
        name: String::new(),
        email: String::new(),
        role: Role::Agent,
        password_hash: String::new(),
        mailboxes: Vec::new(),
        disabled: false,
        created: now,
        password_changed: now,
        language: String::new(),
        signature: String::new(),
    };
    let input = UserInput {
        password: None,
        ..input.clone()
    };
    match apply(tx, &mut u, &input, now) {
        Ok(()) if missing.is_empty() => {}
        Ok(()) => return Err(UserError::Invalid(missing)),
        Err(UserError::Invalid(mut errs)) => {
            errs.retain(|e| !missing.iter().any(|m| m.field == e.field));
            missing.extend(errs);
            return Err(UserError::Invalid(missing));
        }
        Err(e) => return Err(e),
    }
    if u.name.is_empty() {
        u.name = u.login.clone();
    }
    u.id = UserId(tx.next_id("user")?);
    tx.put_user(&u)?;
    let token = new_invite(tx, u.id, false, now)?;
    Ok((u, token))
}

/// Resets `login`'s password: the old one stops working at once, every session ends, and
/// a new link (returned token) lets the user choose a new one.
pub fn reset_password(
    tx: &mut Tx<'_>,
    login: &str,
    now: i64,
) -> Result<(UserRecord, String), UserError> {
    let mut u = tx
        .user_by_login(login)?
        .ok_or_else(|| UserError::NotFound(login.to_owned()))?;
    u.password_hash.clear();
    u.password_changed = now;
    tx.remove_sessions_of(u.id)?;
    tx.put_user(&u)?;
    let token = new_invite(tx, u.id, true, now)?;
    Ok((u, token))
}

/// The store key of a link token as it appears in a URL (64 hex digits), else None.
pub fn invite_key(token: &str) -> Option<[u8; 32]> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| token_key(&token.to_ascii_lowercase()))
}

/// The user an invitation or reset link is for, while it is usable: known, not expired,
/// and the user not disabled.
pub fn open_invite(
    r: &crate::store::Reader,
    token: &str,
    now: i64,
) -> Result<Option<(InviteRecord, UserRecord)>, StoreError> {
    let Some(key) = invite_key(token) else {
        return Ok(None);
    };
    let Some(i) = r.invite(&key)? else {
        return Ok(None);
    };
    if now >= i.expires {
        return Ok(None);
    }
    Ok(r.user(i.user)?.filter(|u| !u.disabled).map(|u| (i, u)))
}

/// Uses a link: sets the password (checked like any other) and ends the link. `Ok(None)`:
/// the link is unknown, used, expired, or its user disabled.
pub fn accept_invite(
    tx: &mut Tx<'_>,
    token: &str,
    password: &Secret,
    now: i64,
) -> Result<Option<UserRecord>, UserError> {
    let Some(key) = invite_key(token) else {
        return Ok(None);
    };
    let Some(i) = tx.invite(&key)? else {
        return Ok(None);
    };
    if now >= i.expires {
        return Ok(None);
    }
    let Some(u) = tx.user(i.user)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let input = UserInput {
        password: Some(password.clone()),
        ..Default::default()
    };
    let u = edit(tx, &u.login, &input, now)?;
    tx.remove_invites_of(u.id)?;
    Ok(Some(u))
}

/// Starts a session for `user`: returns the cookie token (stored only as its hash).
pub fn start_session(tx: &mut Tx<'_>, user: UserId, now: i64) -> Result<String, StoreError> {
    let (token, key) = new_token();
    tx.put_session(
        &key,
        &SessionRecord {
            user,
            created: now,
            last_seen: now,
            csrf: hex(&random_bytes::<32>()),
        },
    )?;
    Ok(token)
}

/// Creates an API token named `name` for `user`; the token is shown once.
pub fn create_api_token(
    tx: &mut Tx<'_>,
    user: UserId,
    name: &str,
    now: i64,
) -> Result<String, UserError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(UserError::Invalid(vec![FieldError {
            field: "name",
            message: "give the token a name of 1 to 100 characters".into(),
        }]));
    }
    let (token, key) = new_token();
    tx.put_api_token(
        &key,
        &ApiTokenRecord {
            user,
            name: name.to_owned(),
            created: now,
            last_used: 0,
        },
    )?;
    Ok(format!("pr_{token}"))
}

/// The store key of an API token as given (`pr_` + 64 hex digits).
pub fn api_token_key(token: &str) -> Option<[u8; 32]> {
    let t = token.trim().strip_prefix("pr_")?;
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token_key(t))
}

/// The answer to a login attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok(UserId),
    /// Wrong login or password (the same for both, and for a disabled user).
    Refused,
    /// Too many failures: try again in this many seconds.
    Wait(i64),
}

/// Failed logins per account name and per client address.
#[derive(Default)]
pub struct Throttle {
    fails: Mutex<HashMap<String, (u32, i64)>>,
}

/// Failures allowed before waiting.
const FREE_FAILS: u32 = 5;
/// A quiet period after which failures are forgotten (seconds).
const FORGET_SECS: i64 = 3600;

impl Throttle {
    fn wait_for(&self, key: &str, now: i64) -> i64 {
        let Ok(m) = self.fails.lock() else { return 0 };
        match m.get(key) {
            Some(&(n, last)) if n >= FREE_FAILS && now - last < FORGET_SECS => {
                // 30 s after the fifth failure, doubling up to 15 minutes.
                let delay = (30i64 << (n - FREE_FAILS).min(5)).min(900);
                (last + delay - now).max(0)
            }
            _ => 0,
        }
    }

    fn fail(&self, key: &str, now: i64) {
        if let Ok(mut m) = self.fails.lock() {
            if m.len() > 10_000 {
                m.retain(|_, (_, last)| now - *last < FORGET_SECS);
            }
            let e = m.entry(key.to_owned()).or_insert((0, now));
            if now - e.1 >= FORGET_SECS {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = now;
        }
    }

    fn clear(&self, key: &str) {
        if let Ok(mut m) = self.fails.lock() {
            m.remove(key);
        }
    }

    /// Checks `login`/`password` from `addr`. Unknown users cost the same argon2 work
    /// and get the same answer as a wrong password.
    pub fn login(
        &self,
        user: Option<&UserRecord>,
        login: &str,
        password: &Secret,
        addr: &str,
        now: i64,
    ) -> LoginOutcome {
        let lkey = format!("login:{}", login.trim().to_lowercase());
        let akey = format!("addr:{addr}");
        let wait = self.wait_for(&lkey, now).max(self.wait_for(&akey, now));
        if wait > 0 {
            return LoginOutcome::Wait(wait);
        }
        let hash = user
            .filter(|u| !u.disabled)
            .map(|u| u.password_hash.as_str())
            .unwrap_or_else(|| dummy_hash());
        let ok = verify_password(hash, password) && user.is_some_and(|u| !u.disabled);
        match user {
            Some(u) if ok => {
                self.clear(&lkey);
                LoginOutcome::Ok(u.id)
            }
            _ => {
                self.fail(&lkey, now);
                self.fail(&akey, now);
                log::warn!("web: failed login for {login:?} from {addr}");
                LoginOutcome::Refused
            }
        }
    }
}

/// The one-time code printed on the console at first start, which lets the first admin
/// be created in the browser.
#[derive(Default)]
pub struct SetupCode {
    code: Mutex<Option<(String, i64)>>,
}

impl SetupCode {
    /// Makes a new code valid for an hour and returns it (for the console).
    pub fn issue(&self, now: i64) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let raw = random_bytes::<12>();
        let mut code = String::new();
        for (i, b) in raw.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            let c = ALPHABET
                .get(usize::from(*b) % ALPHABET.len())
                .copied()
                .unwrap_or(b'A');
            code.push(char::from(c));
        }
        if let Ok(mut m) = self.code.lock() {
            *m = Some((code.clone(), now + SETUP_CODE_SECS));
        }
        code
    }

    /// Whether a code is waiting to be used.
    pub fn is_open(&self, now: i64) -> bool {
        self.code
            .lock()
            .map(|m| m.as_ref().is_some_and(|(_, exp)| now < *exp))
            .unwrap_or(false)
    }

    /// Uses the code: true once for the right code before it expires.
    pub fn redeem(&self, guess: &str, now: i64) -> bool {
        let Ok(mut m) = self.code.lock() else {
            return false;
        };
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let ok = match m.as_ref() {
            Some((code, exp)) if now < *exp => {
                let (a, b) = (norm(code), norm(guess));
                a.len() == b.len()
                    && a.bytes()
                        .zip(b.bytes())
                        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                        == 0
            }
            _ => false,
        };
        if ok {
            *m = None;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash_password(&Secret::new("correct horse battery")).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, &Secret::new("correct horse battery")));
        assert!(!verify_password(&h, &Secret::new("correct horse batterY")));
        assert!(!verify_password("", &Secret::new("")));
        assert!(!verify_password("$argon2id$garbage", &Secret::new("x")));
    }

    #[test]
    fn the_setup_code_works_once_and_expires() {
        let s = SetupCode::default();
        let code = s.issue(1000);
        assert_eq!(code.len(), 14, "{code}");
        assert!(s.is_open(1000));
        assert!(!s.redeem("AAAA-AAAA-AAAA", 1001));
        assert!(s.redeem(&code.to_lowercase().replace('-', " "), 1001));
        assert!(!s.redeem(&code, 1002), "single use");
        let code = s.issue(2000);
        assert!(!s.redeem(&code, 2000 + SETUP_CODE_SECS), "expired");
    }

    #[test]
    fn throttling_is_per_login_and_per_address_and_says_the_same_for_unknown_users() {
        let t = Throttle::default();
        let pw = Secret::new("wrong password");
        for i in 0..FREE_FAILS {
            assert_eq!(
                t.login(None, "ghost", &pw, "10.0.0.1", 100 + i64::from(i)),
                LoginOutcome::Refused
            );
        }
        // The account name now waits, from any address.
        assert!(matches!(
            t.login(None, "ghost", &pw, "10.0.0.2", 106),
            LoginOutcome::Wait(_)
        ));
        // And so does the address, for any name.
        assert!(matches!(
            t.login(None, "other", &pw, "10.0.0.1", 106),
            LoginOutcome::Wait(_)
        ));
        // Another name from another address is not held up.
        assert_eq!(
            t.login(None, "other", &pw, "10.0.0.3", 106),
            LoginOutcome::Refused
        );
        // After the delay the name may try again.
        assert_eq!(
            t.login(None, "ghost", &pw, "10.0.0.4", 106 + 31),
            LoginOutcome::Refused
        );
    }

    #[test]
    fn api_tokens_have_a_recognisable_shape() {
        let (t, k) = new_token();
        assert_eq!(api_token_key(&format!("pr_{t}")), Some(k));
        assert_eq!(api_token_key(&t), None);
        assert_eq!(api_token_key("pr_xyz"), None);
    }
}

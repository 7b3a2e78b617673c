//! Mail intake from IMAP and POP3 accounts.
//!
//! Owns: the only code that speaks IMAP or POP3; one supervised task per account
//! (connect, pass, IDLE or poll, back off on failure), the per-folder cursors, commit 1
//! for fetched mail (raw bytes + taken record + cursor in one durable transaction), and
//! removing messages on the server only after that commit.
//! Must not: parse MIME or create conversations (it wakes the pipeline), or delete
//! anything on a server that it has not durably stored and checked first.

pub mod check;
pub mod imap;
pub mod mutf7;
pub mod pop3;

use crate::model::{AccountRecord, Clock, FolderCursor, Level, LogEntry, Protocol, TakenRecord};
use crate::net::{Endpoint, Fingerprint, NetError};
use crate::pipeline::Waker;
use crate::secret::{Keyring, SecretError};
use crate::store::{ItemKey, NewRaw, RawOutcome, Store, StoreError, content_hash};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes fetched per commit: one fsync per batch, memory stays flat.
pub const BATCH_BYTES: u64 = 4 << 20;
/// Messages fetched per commit.
pub const BATCH_ITEMS: usize = 200;
/// The size recorded for a message skipped because the account takes only new mail:
/// larger than any limit, so it is never fetched (and never deleted).
pub const LEFT_ALONE: u64 = u64::MAX;
/// A connection that lasted this long counts as healthy: its failure resets the backoff.
pub const HEALTHY_RUN: Duration = Duration::from_secs(300);
/// Network timeout for one step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The login method actually used, once the server's offer is known: `Auto` picks SASL
/// PLAIN when the password is not ASCII (LOGIN/USER+PASS carry it badly) and the server
/// offers PLAIN (`offers_plain`: `None` when not asked), or when an authorization
/// identity is set (only PLAIN carries one); else the plain LOGIN / USER+PASS.
pub fn pick_login(
    method: crate::model::LoginMethod,
    authzid: &str,
    password: &str,
    offers_plain: Option<bool>,
) -> crate::model::LoginMethod {
    use crate::model::LoginMethod;
    match method {
        LoginMethod::Auto if !authzid.is_empty() => LoginMethod::Plain,
        LoginMethod::Auto if !password.is_ascii() && offers_plain == Some(true) => {
            LoginMethod::Plain
        }
        LoginMethod::Auto => LoginMethod::Login,
        m => m,
    }
}

/// Whether `pick_login` needs to know if the server offers SASL PLAIN.
pub fn needs_offer(method: crate::model::LoginMethod, authzid: &str, password: &str) -> bool {
    method == crate::model::LoginMethod::Auto && authzid.is_empty() && !password.is_ascii()
}

/// The SASL PLAIN message (RFC 4616): `authzid NUL authcid NUL password`, UTF-8, before
/// base64. The user name goes as typed: `DOMAIN\user\alias` needs no quoting here.
pub fn sasl_plain(authzid: &str, user: &str, password: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(authzid.len() + user.len() + password.len() + 2);
    v.extend_from_slice(authzid.as_bytes());
    v.push(0);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(password.as_bytes());
    v
}

/// What the intake tasks share.
#[derive(Clone)]
pub struct FetchCtx {
    pub store: Arc<Store>,
    pub keys: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
    pub waker: Waker,
    /// Live state per account, for the UI and `account list`.
    pub states: Arc<Mutex<std::collections::BTreeMap<String, AccountState>>>,
}

/// What an account's task is doing, for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    Connecting,
    Fetching,
    Idle,
    Polling { next_in_secs: u64 },
    Error { message: String, retry_in_secs: u64 },
    Disabled,
}

impl fmt::Display for AccountState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountState::Connecting => f.write_str("connecting"),
            AccountState::Fetching => f.write_str("fetching"),
            AccountState::Idle => f.write_str("idle (push)"),
            AccountState::Polling { next_in_secs } => {
                write!(f, "polling every {next_in_secs} s")
            }
            AccountState::Error {
                message,
                retry_in_secs,
            } => write!(f, "error, retrying in {retry_in_secs} s: {message}"),
            AccountState::Disabled => f.write_str("disabled"),
        }
    }
}

/// Why fetching from an account failed; rendered with the account and server named.
#[derive(Debug)]
pub enum FetchError {
    Net {
        account: String,
        error: NetError,
    },
    /// The server answered NO/BAD or something we cannot use.
    Server {
        account: String,
        proto: &'static str,
        step: String,
        server: String,
        reply: String,
        hint: &'static str,
    },
    /// The connection broke mid-way.
    Lost {
        account: String,
        proto: &'static str,
        step: String,
        server: String,
        detail: String,
    },
    Secret {
        account: String,
        error: SecretError,
    },
    Store(StoreError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Net { account, error } => write!(f, "account {account:?}: {error}"),
            FetchError::Server {
                account,
                proto,
                step,
                server,
                reply,
                hint,
            } => write!(
                f,
                "account {account:?}: {proto} {step} on {server} failed: server said {reply:?}. {hint}"
            ),
            FetchError::Lost {
                account,
                proto,
                step,
                server,
                detail,
            } => write!(
                f,
                "account {account:?}: {proto} connection to {server} broke during {step}: {detail}. Nothing was lost; it will be retried"
            ),
            FetchError::Secret { account, error } => write!(f, "account {account:?}: {error}"),
            FetchError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        FetchError::Store(e)
    }
}

/// Figures of one pass over an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// New raw messages stored.
    pub stored: u64,
    /// Taken again but the exact bytes were already stored.
    pub same_bytes: u64,
    /// Removed (deleted or moved) on the server.
    pub removed: u64,
    /// Left on the server because they are over the size limit.
    pub oversize: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Things the admin should know (kept short).
    pub notes: Vec<String>,
}

/// Where to connect for an account.
pub fn endpoint(a: &AccountRecord) -> Endpoint {
    Endpoint {
        host: a.host.clone(),
        port: a.port,
        security: a.security,
        pinned: a.pinned_cert.map(Fingerprint),
        timeout: STEP_TIMEOUT,
    }
}

/// One message taken from a server, ready for commit 1.
pub struct Taken {
    pub key: ItemKey,
    pub bytes: Vec<u8>,
    pub message_id: Option<String>,
    pub source: String,
}

/// Commit 1 for fetched mail: the raw bytes, what was taken (so it is never taken twice
/// and can be removed later), and the folder cursor, in one durable transaction.
pub fn commit_taken(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    items: &[Taken],
    cursor: Option<(&str, FolderCursor)>,
) -> Result<Vec<RawOutcome>, FetchError> {
    let now = ctx.clock.now_ms();
    let removal = !matches!(acct.after, crate::model::AfterFetch::Keep);
    let out = ctx.store.write(|tx| {
        let mut out = Vec::with_capacity(items.len());
        let component = format!("{}:{}", acct.protocol.as_str(), acct.name);
        for t in items {
            let hash = content_hash(&t.bytes);
            let outcome = tx.add_raw(
                &NewRaw {
                    bytes: &t.bytes,
                    hash,
                    source: t.source.clone(),
                    mailbox: acct.mailbox,
                },
                now,
            )?;
            // One line per message, in the same transaction (no extra fsync).
            let (raw, result) = match outcome {
                RawOutcome::New(id) => (id, "stored"),
                RawOutcome::SameBytes(id) => (id, "already stored (identical bytes)"),
            };
            let which = match t.key.uid() {
                Some(uid) if acct.protocol == Protocol::Imap => {
                    format!(
                        "{} UID {uid} (UIDVALIDITY {})",
                        t.key.folder, t.key.uidvalidity
                    )
                }
                _ => format!("message {}", t.key.item),
            };
            tx.log(&LogEntry {
                at: now,
                level: Level::Info,
                component: component.clone(),
                raw: Some(raw),
                conv: None,
                text: format!("{which}: {} bytes {result} as raw {raw}", t.bytes.len()),
            })?;
            out.push(outcome);
            tx.put_taken(
                &t.key,
                &TakenRecord {
                    hash,
                    size: t.bytes.len() as u64,
                    message_id: t.message_id.clone(),
                    pending_removal: removal,
                },
            )?;
        }
        if let Some((folder, c)) = cursor {
            tx.put_cursor(acct.id, folder, &c)?;
        }
        Ok::<_, StoreError>(out)
    })?;
    if !items.is_empty() {
        log::debug!(
            "account {:?}: committed {} messages ({} bytes)",
            acct.name,
            items.len(),
            items.iter().map(|t| t.bytes.len()).sum::<usize>()
        );
        // Counts commits that stored messages, not cursor-only ones.
        crate::failpoint::hit("after-fetch-commit");
    }
    ctx.waker.wake();
    Ok(out)
}

/// Adds a line to the communication log (errors there are only logged: the log must
/// never stop intake). The write (an fsync) runs on the blocking pool, so a slow SD card
/// never stalls the other accounts' tasks.
pub async fn comm_log(ctx: &FetchCtx, acct: &AccountRecord, level: Level, text: String) {
    let entry = LogEntry {
        at: ctx.clock.now_ms(),
        level,
        component: format!("{}:{}", acct.protocol.as_str(), acct.name),
        raw: None,
        conv: None,
        text,
    };
    match level {
        Level::Error => log::error!("{}: {}", entry.component, entry.text),
        Level::Warn => log::warn!("{}: {}", entry.component, entry.text),
        Level::Info | Level::Notice => log::info!("{}: {}", entry.component, entry.text),
    }
    let store = ctx.store.clone();
    if let Err(e) = smol::unblock(move || store.write(|tx| tx.log(&entry))).await {
        log::error!("cannot write the communication log: {e}");
    }
}

fn set_state(ctx: &FetchCtx, acct: &AccountRecord, s: AccountState) {
    if let Ok(mut m) = ctx.states.lock() {
        m.insert(acct.name.clone(), s);
    }
}

/// One pass over an account now (the `postroom fetch` command, and every poll).
/// A failure is written to the communication log too (the supervisor logs its own).
pub async fn pass(ctx: &FetchCtx, acct: &AccountRecord) -> Result<PassReport, FetchError> {
    let result = match acct.protocol {
        Protocol::Imap => imap::pass(ctx, acct).await,
        Protocol::Pop3 => pop3::pass(ctx, acct).await,
    };
    if let Err(e) = &result {
        comm_log(ctx, acct, Level::Error, e.to_string()).await;
    }
    result
}

/// Exponential backoff with jitter: 5 s, 10 s, 20 s ... up to 15 minutes.
pub fn backoff(failures: u32, jitter_seed: u64) -> Duration {
    let base = 5u64
        .saturating_mul(1u64 << failures.saturating_sub(1).min(8))
        .min(900);
    let jitter = jitter_seed % (base / 4 + 1);
    Duration::from_secs(base - base / 8 + jitter)
}

/// Runs one account until `stop` fires: IDLE where the server offers it, polling
/// otherwise, backing off on failure. Never returns an error: failures are logged, shown
/// in the account state, and retried.
pub async fn run_account(ctx: FetchCtx, acct: AccountRecord, stop: smol::channel::Receiver<()>) {
    use smol::future::FutureExt;
    let mut failures = 0u32;
    loop {
        set_state(&ctx, &acct, AccountState::Connecting);
        let started = std::time::Instant::now();
        let result = match acct.protocol {
            Protocol::Imap => imap::run(&ctx, &acct, &stop).await,
            Protocol::Pop3 => pop3::run(&ctx, &acct, &stop).await,
        };
        let wait = match result {
            Ok(()) => return, // stopped
            Err(e) => {
                // A connection that worked for a while starts the backoff over: a blip
                // after days of service is retried in seconds, not in 15 minutes.
                if started.elapsed() >= HEALTHY_RUN {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let wait = backoff(failures, ctx.clock.now_ms().unsigned_abs());
                comm_log(
                    &ctx,
                    &acct,
                    Level::Error,
                    format!("{e} (retrying in {} s)", wait.as_secs()),
                )
                .await;
                set_state(
                    &ctx,
                    &acct,
                    AccountState::Error {
                        message: e.to_string(),
                        retry_in_secs: wait.as_secs(),
                    },
                );
                wait
            }
        };
        let stopped = async {
            let _ = stop.recv().await;
            true
        }
        .or(async {
            smol::Timer::after(wait).await;
            false
        })
        .await;
        if stopped {
            return;
        }
    }
}

/// The running account tasks of `serve`: one per enabled account, started, stopped and
/// restarted to match the stored accounts (`reconcile`), so an account added, changed,
/// disabled or removed while the service runs takes effect at once.
pub struct Fleet {
    ctx: FetchCtx,
    ex: Arc<smol::Executor<'static>>,
    running: std::collections::BTreeMap<crate::model::AccountId, Running>,
}

struct Running {
    acct: AccountRecord,
    /// Dropping it stops the task (its receiver sees the channel close).
    stop: smol::channel::Sender<()>,
    task: smol::Task<()>,
}

impl Fleet {
    pub fn new(ctx: FetchCtx, ex: Arc<smol::Executor<'static>>) -> Fleet {
        Fleet {
            ctx,
            ex,
            running: Default::default(),
        }
    }

    /// How many account tasks run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Starts, stops and restarts tasks so that exactly the enabled accounts run, each
    /// with its current settings. A task whose account did not change keeps running.
    pub async fn reconcile(&mut self) -> Result<(), StoreError> {
        let store = self.ctx.store.clone();
        let accounts = smol::unblock(move || store.read()?.accounts()).await?;
        let wanted: std::collections::BTreeMap<_, _> = accounts
            .iter()
            .filter(|a| a.fetched())
            .map(|a| (a.id, a))
            .collect();
        let stale: Vec<_> = self
            .running
            .iter()
            .filter(|(id, r)| wanted.get(id).is_none_or(|a| **a != r.acct))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let why = match accounts.iter().find(|a| a.id == id) {
                None => "removed",
                Some(a) if !a.enabled => "disabled",
                Some(a) if !a.fetched() => "made invalid",
                Some(_) => "changed",
            };
            if let Some(name) = self.stop(id).await {
                log::info!("account {name:?}: stopped ({why})");
            }
        }
        if let Ok(mut m) = self.ctx.states.lock() {
            m.retain(|name, _| accounts.iter().any(|a| &a.name == name));
        }
        for acct in &accounts {
            if !acct.fetched() {
                set_state(&self.ctx, acct, AccountState::Disabled);
                continue;
            }
            if self.running.contains_key(&acct.id) {
                continue;
            }
            log::info!(
                "account {:?}: starting ({} {}:{}, {})",
                acct.name,
                acct.protocol.as_str(),
                acct.host,
                acct.port,
                acct.security
            );
            let (stop, rx) = smol::channel::bounded::<()>(1);
            let task = self
                .ex
                .spawn(run_account(self.ctx.clone(), acct.clone(), rx));
            self.running.insert(
                acct.id,
                Running {
                    acct: acct.clone(),
                    stop,
                    task,
                },
            );
        }
        Ok(())
    }

    /// The running account of that name (case-insensitive), if any.
    pub fn find(&self, name: &str) -> Option<crate::model::AccountId> {
        self.running
            .iter()
            .find(|(_, r)| r.acct.name.eq_ignore_ascii_case(name))
            .map(|(id, _)| *id)
    }

    /// Stops one account's task and waits until it has logged out; returns its name.
    pub async fn stop(&mut self, id: crate::model::AccountId) -> Option<String> {
        let r = self.running.remove(&id)?;
        drop(r.stop);
        r.task.await;
        Some(r.acct.name)
    }

    /// Stops every task and waits for each.
    pub async fn stop_all(&mut self) {
        let ids: Vec<_> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Waits `secs` or until stopped; returns true when stopped.
pub async fn sleep_or_stop(secs: u64, stop: &smol::channel::Receiver<()>) -> bool {
    use smol::future::FutureExt;
    async {
        let _ = stop.recv().await;
        true
    }
    .or(async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        false
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let a = backoff(1, 0).as_secs();
        let b = backoff(3, 0).as_secs();
        let c = backoff(30, 12345).as_secs();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(
            (4..=6).contains(&a),
            "the first retry comes after about 5 s: {a}"
        );
        assert!(c <= 900 + 225);
    }

    #[test]
    fn sasl_plain_is_authzid_user_password_with_nuls() {
        use crate::model::LoginMethod;
        let v = sasl_plain("shared@example.com", "DOMAIN\\agent\\shared", "pässwörd");
        assert_eq!(
            v,
            b"shared@example.com\0DOMAIN\\agent\\shared\0p\xc3\xa4ssw\xc3\xb6rd".to_vec()
        );
        assert_eq!(
            crate::compose::base64(&sasl_plain("", "tim", "tanstaaftanstaaf")),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm" // RFC 4616's example
        );
        // Automatic: PLAIN only when needed and offered (or for an authorization id).
        assert_eq!(
            pick_login(LoginMethod::Auto, "", "ascii", Some(true)),
            LoginMethod::Login
        );
        assert_eq!(
            pick_login(LoginMethod::Auto, "", "pässwörd", Some(true)),
            LoginMethod::Plain
        );
        assert_eq!(
            pick_login(LoginMethod::Auto, "", "pässwörd", Some(false)),
            LoginMethod::Login
        );
        assert_eq!(
            pick_login(LoginMethod::Auto, "boss", "x", None),
            LoginMethod::Plain
        );
        assert_eq!(
            pick_login(LoginMethod::Login, "", "pässwörd", Some(true)),
            LoginMethod::Login
        );
        assert!(needs_offer(LoginMethod::Auto, "", "pässwörd"));
        assert!(!needs_offer(LoginMethod::Auto, "", "ascii"));
    }
}

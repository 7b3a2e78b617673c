//! POP3 intake (RFC 1939 with STLS from RFC 2595 and CAPA from RFC 2449).
//!
//! UIDL says which messages are new; RETR downloads them; they are committed durably and
//! only then marked with DELE, which the server carries out at QUIT. A server without
//! UIDL, or with duplicate UIDLs, is handled without loss: ambiguous messages are never
//! deleted, identical bytes are stored once, and the admin is told.
//! An account that takes only new mail marks what is there at its first pass as left
//! alone (never downloaded, never deleted). A message over the size limit is left
//! there and reported once; raising the limit fetches it at the next pass.
//! There is no maintained async POP3 client crate, so the protocol (a dozen line-based
//! commands) is spoken here.
//!
//! Owns: the POP3 conversation. Must not: parse MIME or touch conversations.

use super::{
    AccountState, BATCH_BYTES, BATCH_ITEMS, FetchCtx, FetchError, LEFT_ALONE, PassReport, Taken,
    comm_log, commit_taken, endpoint, set_state, sleep_or_stop,
};
use crate::accounts;
use crate::model::{AccountRecord, AfterFetch, FolderCursor, Level, LoginMethod};
use crate::net::{self, Conn, Endpoint, Security};
use crate::store::{ItemKey, RawOutcome, content_hash};
use smol::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const PROTO: &str = "POP3";
/// Longest status line we accept from a server (RFC 1939 says 512; be generous).
const MAX_LINE: usize = 64 * 1024;
/// Largest UIDL or LIST answer we accept (about a million messages).
const LISTING_MAX: u64 = 64 << 20;

/// A POP3 connection.
pub struct Pop3<'a> {
    acct: &'a AccountRecord,
    ep: Endpoint,
    server: String,
    io: BufReader<Conn>,
    /// How it logged in (for `account check`).
    pub(crate) login_used: LoginMethod,
}

impl<'a> Pop3<'a> {
    fn lost(&self, step: &str, detail: impl Into<String>) -> FetchError {
        FetchError::Lost {
            account: self.acct.name.clone(),
            proto: PROTO,
            step: step.into(),
            server: self.server.clone(),
            detail: detail.into(),
        }
    }

    fn refused(&self, step: &str, reply: &str, hint: &'static str) -> FetchError {
        FetchError::Server {
            account: self.acct.name.clone(),
            proto: PROTO,
            step: step.into(),
            server: self.server.clone(),
            reply: reply.into(),
            hint,
        }
    }

    /// Reads one line (with its line ending), at most `max` bytes long. Lines are cut
    /// from the read buffer directly: one timeout per buffer fill, not per line.
    async fn line_max(&mut self, step: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let mut line = Vec::new();
        let ep = self.ep.clone();
        loop {
            if self.io.buffer().is_empty() {
                let n = net::with_timeout(&ep, "waiting for the server", async {
                    self.io.fill_buf().await.map(|b| b.len())
                })
                .await
                .map_err(|error| FetchError::Net {
                    account: self.acct.name.clone(),
                    error,
                })?
                .map_err(|e| self.lost(step, e.to_string()))?;
                if n == 0 {
                    return Err(self.lost(
                        step,
                        if line.is_empty() {
                            "the server closed the connection".to_owned()
                        } else {
                            "the server closed the connection in the middle of a line".to_owned()
                        },
                    ));
                }
            }
            let buf = self.io.buffer();
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(buf.get(..take).unwrap_or_default());
            self.io.consume(take);
            if line.len() > max {
                return Err(self.lost(step, format!("a line longer than {max} bytes")));
            }
            if done {
                return Ok(line);
            }
        }
    }

    /// Reads one status or listing line.
    async fn line(&mut self, step: &str) -> Result<Vec<u8>, FetchError> {
        self.line_max(step, MAX_LINE).await
    }

    /// Reads a status line: `Ok(text)` for `+OK`, `Err(reply)` for `-ERR`.
    async fn status(&mut self, step: &str) -> Result<Result<String, String>, FetchError> {
        let line = self.line(step).await?;
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if text.starts_with("+OK") {
            Ok(Ok(text.get(3..).unwrap_or("").trim().to_owned()))
        } else if text.starts_with("-ERR") {
            Ok(Err(text))
        } else {
            Err(self.lost(step, format!("unexpected reply {text:?}")))
        }
    }

    async fn send(&mut self, step: &str, cmd: &str) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let mut data = cmd.as_bytes().to_vec();
        data.extend_from_slice(b"\r\n");
        net::with_timeout(&ep, "sending a command", async {
            let w = self.io.get_mut();
            w.write_all(&data).await?;
            w.flush().await
        })
        .await
        .map_err(|error| FetchError::Net {
            account: self.acct.name.clone(),
            error,
        })?
        .map_err(|e| self.lost(step, e.to_string()))
    }

    /// Sends a command and requires `+OK`.
    async fn command(
        &mut self,
        step: &str,
        cmd: &str,
        hint: &'static str,
    ) -> Result<String, FetchError> {
        self.send(step, cmd).await?;
        match self.status(step).await? {
            Ok(t) => Ok(t),
            Err(reply) => Err(self.refused(step, &reply, hint)),
        }
    }

    /// Reads a multi-line body up to the lone `.`, undoing dot-stuffing; line endings are
    /// kept as the server sent them. A line may be as long as the whole message may be
    /// (mail with one long HTML line exists); `max` bounds the body.
    async fn multiline(&mut self, step: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let max = usize::try_from(max).unwrap_or(usize::MAX).max(MAX_LINE);
        let mut out = Vec::new();
        loop {
            let line = self.line_max(step, max.saturating_add(5)).await?;
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
            match line.strip_prefix(b".") {
                Some(rest) => out.extend_from_slice(rest),
                None => out.extend_from_slice(&line),
            }
            if out.len() > max {
                return Err(self.lost(step, format!("more than {max} bytes")));
            }
        }
    }

    /// Connects, upgrades with STLS if asked, logs in with USER/PASS or AUTH PLAIN.
    pub async fn connect(ctx: &FetchCtx, acct: &'a AccountRecord) -> Result<Pop3<'a>, FetchError> {
        let ep = endpoint(acct);
        let server = format!("{}:{}", ep.host, ep.port);
        let conn = net::connect(&ep).await.map_err(|error| FetchError::Net {
            account: acct.name.clone(),
            error,
        })?;
        let mut p = Pop3 {
            acct,
            ep: ep.clone(),
            server,
            io: BufReader::with_capacity(64 * 1024, conn),
            login_used: LoginMethod::Login,
        };
        if let Err(reply) = p.status("greeting").await? {
            return Err(p.refused(
                "greeting",
                &reply,
                "The server refuses connections right now; it will be retried",
            ));
        }
        if ep.security == Security::StartTls {
            p.command("STLS", "STLS", "The server does not offer STLS, so Postroom will not send the password in clear. Use security tls (port 995), or none on a trusted network only").await?;
            let tcp = match p.io.into_inner() {
                Conn::Plain(t) => t,
                Conn::Tls(_) => {
                    return Err(FetchError::Lost {
                        account: acct.name.clone(),
                        proto: PROTO,
                        step: "STLS".into(),
                        server: format!("{}:{}", ep.host, ep.port),
                        detail: "already encrypted".into(),
                    });
                }
            };
            let tls = net::tls_handshake(&ep, tcp)
                .await
                .map_err(|error| FetchError::Net {
                    account: acct.name.clone(),
                    error,
                })?;
            p = Pop3 {
                acct,
                ep: ep.clone(),
                server: format!("{}:{}", ep.host, ep.port),
                io: BufReader::with_capacity(64 * 1024, tls),
                login_used: LoginMethod::Login,
            };
        }
        let password = accounts::password(&ctx.keys, acct).map_err(|error| FetchError::Secret {
            account: acct.name.clone(),
            error,
        })?;
        let user = acct.username.replace(['\r', '\n'], "");
        let hint = "Check the user name and password in the account settings (postroom account edit NAME --password-file FILE)";
        let offers_plain = if super::needs_offer(acct.login, &acct.authzid, password.expose()) {
            Some(p.offers_sasl_plain().await?)
        } else {
            None
        };
        p.login_used =
            super::pick_login(acct.login, &acct.authzid, password.expose(), offers_plain);
        match p.login_used {
            LoginMethod::Plain => {
                let plain = super::sasl_plain(&acct.authzid, &user, password.expose());
                // RFC 5034: the command, the server's "+", then the base64 message.
                p.send("login (AUTH PLAIN)", "AUTH PLAIN").await?;
                let line = p.line("login (AUTH PLAIN)").await?;
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if !text.starts_with('+') || text.starts_with("+OK") {
                    return Err(p.refused(
                        "login (AUTH PLAIN)",
                        &text,
                        "The server does not take SASL PLAIN; choose the login method USER/PASS",
                    ));
                }
                p.send("login (AUTH PLAIN)", &crate::compose::base64(&plain))
                    .await?;
                if let Err(reply) = p.status("login (AUTH PLAIN)").await? {
                    return Err(p.refused("login (AUTH PLAIN)", &reply, hint));
                }
            }
            _ => {
                p.command(
                    "login (USER)",
                    &format!("USER {user}"),
                    "Check the user name in the account settings",
                )
                .await?;
                p.send("login (PASS)", &format!("PASS {}", password.expose()))
                    .await?;
                if let Err(reply) = p.status("login (PASS)").await? {
                    return Err(p.refused("login", &reply, hint));
                }
            }
        }
        Ok(p)
    }

    /// `CAPA`: whether the server lists `SASL ... PLAIN` (false when it has no CAPA).
    async fn offers_sasl_plain(&mut self) -> Result<bool, FetchError> {
        self.send("CAPA", "CAPA").await?;
        if self.status("CAPA").await?.is_err() {
            return Ok(false);
        }
        let body = self.multiline("CAPA", LISTING_MAX).await?;
        Ok(String::from_utf8_lossy(&body).lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|k| k.eq_ignore_ascii_case("SASL"))
                && w.any(|m| m.eq_ignore_ascii_case("PLAIN"))
        }))
    }

    /// The connection, for `account check` (TLS facts).
    pub(crate) fn conn(&self) -> &Conn {
        self.io.get_ref()
    }

    /// `STAT`: messages and octets in the mailbox.
    pub(crate) async fn stat(&mut self) -> Result<(u32, u64), FetchError> {
        let text = self.command("STAT", "STAT", "").await?;
        let mut it = text.split_whitespace();
        let n = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let size = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok((n, size))
    }

    /// Logs out without deleting anything.
    pub(crate) async fn close(mut self) -> Result<(), FetchError> {
        self.quit().await
    }

    /// `UIDL`: message number -> unique id; `None` when the server has no UIDL.
    async fn uidl(&mut self) -> Result<Option<Vec<(u32, String)>>, FetchError> {
        self.send("UIDL", "UIDL").await?;
        if self.status("UIDL").await?.is_err() {
            return Ok(None);
        }
        let body = self.multiline("UIDL", LISTING_MAX).await?;
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut it = line.split_whitespace();
            if let (Some(n), Some(id)) = (it.next().and_then(|n| n.parse().ok()), it.next()) {
                out.push((n, id.to_owned()));
            }
        }
        Ok(Some(out))
    }

    /// `LIST`: message number -> size in octets.
    async fn list(&mut self) -> Result<BTreeMap<u32, u64>, FetchError> {
        self.command("LIST", "LIST", "").await?;
        let body = self.multiline("LIST", LISTING_MAX).await?;
        let mut out = BTreeMap::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut it = line.split_whitespace();
            if let (Some(n), Some(s)) = (
                it.next().and_then(|n| n.parse().ok()),
                it.next().and_then(|s| s.parse().ok()),
            ) {
                out.insert(n, s);
            }
        }
        Ok(out)
    }

    /// Downloads message `n`; `size` is what LIST announced (the body may be a little
    /// larger when the server counts differently, never by much).
    async fn retr(&mut self, n: u32, size: u64) -> Result<Vec<u8>, FetchError> {
        self.command("RETR", &format!("RETR {n}"), "").await?;
        self.multiline("RETR", size.saturating_mul(2).saturating_add(64 * 1024))
            .await
    }

    async fn quit(&mut self) -> Result<(), FetchError> {
        self.command("QUIT", "QUIT", "The server did not confirm; messages marked for deletion stay and are deleted at the next pass").await.map(|_| ())
    }
}

/// The Message-ID of a raw message, from its top-level header (for the removal check).
fn raw_message_id(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(bytes.len());
    super::imap::header_message_id(bytes.get(..end).unwrap_or(bytes))
}

/// One pass: take every new message, delete what was stored if the account says so.
pub async fn pass(ctx: &FetchCtx, acct: &AccountRecord) -> Result<PassReport, FetchError> {
    let started = Instant::now();
    let mut report = PassReport::default();
    let mut p = Pop3::connect(ctx, acct).await?;
    let delete = matches!(acct.after, AfterFetch::Delete);
    let sizes = p.list().await?;
    let uidl = p.uidl().await?;
    // Number -> item id; duplicate UIDLs are ambiguous.
    let (ids, ambiguous): (BTreeMap<u32, String>, BTreeSet<String>) = match &uidl {
        Some(list) => {
            let mut count: BTreeMap<&str, u32> = BTreeMap::new();
            for (_, id) in list {
                *count.entry(id.as_str()).or_default() += 1;
            }
            let amb: BTreeSet<String> = count
                .iter()
                .filter(|(_, c)| **c > 1)
                .map(|(id, _)| (*id).to_owned())
                .collect();
            if !amb.is_empty() {
                report.notes.push(format!(
                    "{} messages share a UIDL; they are fetched by content and never deleted",
                    amb.len()
                ));
            }
            (list.iter().map(|(n, id)| (*n, id.clone())).collect(), amb)
        }
        None => {
            report.notes.push(if delete {
                "the server has no UIDL; messages are deleted in the same session they are stored".into()
            } else {
                "the server has no UIDL: every pass downloads every message (stored once by content); consider delete mode or IMAP".into()
            });
            (BTreeMap::new(), BTreeSet::new())
        }
    };
    first_pass(ctx, acct, &ids, &ambiguous, uidl.is_some(), &mut report).await?;
    let (id, known_ids) = (acct.id, ids.values().cloned().collect::<Vec<_>>());
    let store = ctx.store.clone();
    let known = smol::unblock(move || {
        let r = store.read()?;
        let mut known = BTreeMap::new();
        for item in known_ids {
            let k = ItemKey::pop3(id, &item);
            if let Some(t) = r.taken(&k)? {
                known.insert(item, Ok(t));
            } else if let Some(size) = r.skipped(&k)? {
                known.insert(item, Err(size));
            }
        }
        Ok::<_, crate::store::StoreError>(known)
    })
    .await?;
    let mut to_delete: Vec<(u32, ItemKey)> = Vec::new();
    // Each taken message with the number to DELE once it is durable (None: keep it).
    let mut batch: Vec<(Taken, Option<u32>)> = Vec::new();
    let mut batch_bytes = 0u64;
    for (&n, &size) in &sizes {
        let item = ids.get(&n).cloned();
        let is_ambiguous = item.as_ref().is_some_and(|i| ambiguous.contains(i));
        if let Some(i) = &item
            && !is_ambiguous
        {
            match known.get(i) {
                Some(Ok(t)) => {
                    if delete && t.pending_removal && t.size == size {
                        to_delete.push((n, ItemKey::pop3(acct.id, i)));
                    }
                    continue;
                }
                // Over the size limit, reported before (unless the limit was raised since).
                Some(Err(skipped)) if *skipped > acct.max_message_bytes => continue,
                Some(Err(_)) | None => {}
            }
        }
        if size > acct.max_message_bytes {
            if let Some(i) = item.as_ref().filter(|_| !is_ambiguous) {
                let (store, key) = (ctx.store.clone(), ItemKey::pop3(acct.id, i));
                smol::unblock(move || store.write(|tx| tx.put_skipped(&key, size))).await?;
            }
            report.oversize += 1;
            comm_log(
                ctx,
                acct,
                Level::Warn,
                format!(
                    "message {n}: {size} bytes is over the limit of {} bytes; left on the server",
                    acct.max_message_bytes
                ),
            )
            .await;
            continue;
        }
        let bytes = p.retr(n, size).await?;
        report.bytes += bytes.len() as u64;
        let key_item = match (&item, is_ambiguous) {
            (Some(i), false) => i.clone(),
            _ => format!("sha256:{}", content_hash(&bytes)),
        };
        batch_bytes += bytes.len() as u64;
        // Safe to delete: a unique UIDL, or no UIDL at all (numbers are stable within the session).
        let dele = (delete && !is_ambiguous).then_some(n);
        batch.push((
            Taken {
                key: ItemKey::pop3(acct.id, &key_item),
                message_id: raw_message_id(&bytes),
                source: format!(
                    "pop3:{}/{}",
                    acct.name,
                    item.as_deref().unwrap_or("no-uidl")
                ),
                bytes,
            },
            dele,
        ));
        if batch_bytes >= BATCH_BYTES || batch.len() >= BATCH_ITEMS {
            commit_batch(ctx, acct, &mut batch, &mut to_delete, &mut report).await?;
            batch_bytes = 0;
        }
    }
    commit_batch(ctx, acct, &mut batch, &mut to_delete, &mut report).await?;
    for (n, _) in &to_delete {
        p.command("DELE", &format!("DELE {n}"), "").await?;
    }
    p.quit().await?;
    // QUIT confirmed: the deletions happened. Forget them, and (when the server has
    // UIDLs) whatever is no longer there, deleted by us earlier or by another client.
    let done: Vec<ItemKey> = to_delete.iter().map(|(_, k)| k.clone()).collect();
    report.removed += done.len() as u64;
    let present: BTreeSet<String> = ids.values().cloned().collect();
    let has_uidl = uidl.is_some();
    let gone =
        move |k: &ItemKey| has_uidl && !present.contains(&k.item) && !k.item.starts_with("sha256:");
    let (store, id, check) = (ctx.store.clone(), acct.id, gone.clone());
    let stale = smol::unblock(move || {
        let taken = store.read()?.taken_in_folder(id, "INBOX")?;
        Ok::<_, crate::store::StoreError>(taken.iter().any(|(k, _)| check(k)))
    })
    .await?;
    if !done.is_empty() || stale {
        let (store, id) = (ctx.store.clone(), acct.id);
        smol::unblock(move || {
            store.write(|tx| {
                for k in &done {
                    tx.remove_taken(k)?;
                }
                for (k, _) in tx.taken_in_folder(id, "INBOX")? {
                    if gone(&k) {
                        tx.remove_taken(&k)?;
                    }
                }
                Ok::<_, crate::store::StoreError>(())
            })
        })
        .await?;
    }
    if report.stored + report.same_bytes + report.removed + report.oversize > 0
        || !report.notes.is_empty()
    {
        comm_log(
            ctx,
            acct,
            Level::Info,
            format!(
                "{} new messages stored ({} KB), {} already stored, {} deleted on the server, {} left there (too large), in {:.1} s{}",
                report.stored,
                report.bytes / 1024,
                report.same_bytes,
                report.removed,
                report.oversize,
                started.elapsed().as_secs_f64(),
                report
                    .notes
                    .iter()
                    .map(|n| format!("; {n}"))
                    .collect::<String>()
            ),
        ).await;
    }
    Ok(report)
}

/// At the first pass over an account, remembers that it happened (a cursor for INBOX),
/// and for an account that takes only new mail, marks every message there now as left
/// alone: never downloaded, never deleted.
async fn first_pass(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    ids: &BTreeMap<u32, String>,
    ambiguous: &BTreeSet<String>,
    has_uidl: bool,
    report: &mut PassReport,
) -> Result<(), FetchError> {
    let (store, id) = (ctx.store.clone(), acct.id);
    let seen = smol::unblock(move || store.read()?.cursor(id, "INBOX")).await?;
    if seen.is_some() {
        return Ok(());
    }
    let left: Vec<ItemKey> = if acct.only_new {
        ids.values()
            .filter(|i| !ambiguous.contains(*i))
            .map(|i| ItemKey::pop3(acct.id, i))
            .collect()
    } else {
        Vec::new()
    };
    let n = left.len();
    let store = ctx.store.clone();
    smol::unblock(move || {
        store.write(|tx| {
            for k in &left {
                tx.put_skipped(k, LEFT_ALONE)?;
            }
            tx.put_cursor(
                id,
                "INBOX",
                &FolderCursor {
                    uidvalidity: 0,
                    last_uid: 0,
                },
            )
        })
    })
    .await?;
    if acct.only_new {
        if !has_uidl || !ambiguous.is_empty() {
            report.notes.push(
                "without unique UIDLs the server cannot tell old mail from new, so the mail already there is imported too".into(),
            );
        }
        comm_log(
            ctx,
            acct,
            Level::Info,
            format!("first pass: {n} messages there, left alone (only new mail is imported)"),
        )
        .await;
    }
    Ok(())
}

async fn commit_batch(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    batch: &mut Vec<(Taken, Option<u32>)>,
    to_delete: &mut Vec<(u32, ItemKey)>,
    report: &mut PassReport,
) -> Result<(), FetchError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (items, nums): (Vec<Taken>, Vec<Option<u32>>) = std::mem::take(batch).into_iter().unzip();
    let keys: Vec<ItemKey> = items.iter().map(|t| t.key.clone()).collect();
    let (c, a) = (ctx.clone(), acct.clone());
    let outcomes = smol::unblock(move || commit_taken(&c, &a, &items, None)).await?;
    for o in outcomes {
        match o {
            RawOutcome::New(_) => report.stored += 1,
            RawOutcome::SameBytes(_) => report.same_bytes += 1,
        }
    }
    // Only now, with the bytes durable, may they be marked for deletion.
    for (n, key) in nums.into_iter().zip(keys) {
        if let Some(n) = n {
            to_delete.push((n, key));
        }
    }
    Ok(())
}

/// Polls the account until `stop` fires (POP3 has no push).
pub async fn run(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    stop: &smol::channel::Receiver<()>,
) -> Result<(), FetchError> {
    loop {
        set_state(ctx, acct, AccountState::Fetching);
        pass(ctx, acct).await?;
        set_state(
            ctx,
            acct,
            AccountState::Polling {
                next_in_secs: u64::from(acct.poll_secs),
            },
        );
        if sleep_or_stop(u64::from(acct.poll_secs), stop).await {
            return Ok(());
        }
    }
}

//! IMAP intake (async-imap over our rustls connection).
//!
//! Per folder: a cursor `(UIDVALIDITY, last UID)`; new UIDs are fetched in batches with
//! `BODY.PEEK[]` (never relying on or changing `\Seen`), committed durably with the cursor,
//! and only then removed on the server (delete: `UID STORE \Deleted` + `UID EXPUNGE` of our
//! own UIDs; move: `UID MOVE`), after checking that each UID still holds the message we
//! stored (size and Message-ID). A plain `EXPUNGE` is only sent when the server lacks
//! UIDPLUS *and* no other message is marked `\Deleted`. On a UIDVALIDITY change, known
//! messages are re-mapped by Message-ID and size; only the rest is fetched (and identical
//! bytes are stored once anyway). IDLE on the first folder when offered, polling otherwise.
//!
//! Owns: the IMAP conversation. Must not: parse MIME or touch conversations.

use super::{
    AccountState, BATCH_BYTES, BATCH_ITEMS, FetchCtx, FetchError, PassReport, Taken, comm_log,
    commit_taken, endpoint, set_state, sleep_or_stop,
};
use crate::accounts;
use crate::model::{AccountRecord, AfterFetch, FolderCursor, Level, LoginMethod};
use crate::net::{self, Conn, Endpoint, Security};
use crate::store::{ItemKey, RawOutcome};
use async_imap::error::Error as ImapError;
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::Fetch;
use async_imap::{Client, Session};
use smol::stream::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const PROTO: &str = "IMAP";
/// UIDs per FETCH/STORE command, so command lines stay short.
const UIDS_PER_COMMAND: usize = 500;

/// A logged-in IMAP connection and what the server can do.
pub struct Imap<'a> {
    ctx: &'a FetchCtx,
    acct: &'a AccountRecord,
    ep: Endpoint,
    session: Session<Conn>,
    uidplus: bool,
    move_cmd: bool,
    pub idle: bool,
    server: String,
    created_target: bool,
    /// UIDNEXT of the IDLE folder when the last pass selected it.
    idle_uidnext: Option<u32>,
    /// How it logged in (for `account check`).
    pub(crate) login_used: LoginMethod,
}

fn imap_err(
    acct: &AccountRecord,
    server: &str,
    step: &str,
    e: ImapError,
    hint: &'static str,
) -> FetchError {
    let account = acct.name.clone();
    let (server, step) = (server.to_owned(), step.to_owned());
    match e {
        ImapError::No(s) => FetchError::Server {
            account,
            proto: PROTO,
            step,
            server,
            reply: server_reply("NO", &s),
            hint,
        },
        ImapError::Bad(s) => FetchError::Server {
            account,
            proto: PROTO,
            step,
            server,
            reply: server_reply("BAD", &s),
            hint,
        },
        ImapError::ConnectionLost => FetchError::Lost {
            account,
            proto: PROTO,
            step,
            server,
            detail: "the server closed the connection".into(),
        },
        ImapError::Io(e) => FetchError::Lost {
            account,
            proto: PROTO,
            step,
            server,
            detail: e.to_string(),
        },
        other => FetchError::Server {
            account,
            proto: PROTO,
            step,
            server,
            reply: other.to_string(),
            hint: "The server's answer does not follow IMAP; if it persists, report it with the communication log",
        },
    }
}

/// The server's reply as it was on the wire (`NO [CODE] text`), rebuilt from what
/// async-imap gives for a NO/BAD: the `Debug` form of the parsed outcome, such as
/// `code: Some(TryCreate), info: Some("Mailbox doesn't exist: X")` or
/// `outcome: Outcome { code: None, information: Some("[AUTHENTICATIONFAILED] ...") }`.
/// Falls back to that text when it has another shape.
pub fn server_reply(status: &str, debug: &str) -> String {
    let text = ["info: Some(\"", "information: Some(\""]
        .iter()
        .find_map(|key| debug.find(key).map(|at| at + key.len()))
        .and_then(|start| debug.get(start..))
        .and_then(unescape_debug_str);
    let code = debug
        .find("code: Some(")
        .and_then(|at| debug.get(at + "code: Some(".len()..))
        .and_then(|rest| rest.split_once(')'))
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(|c| c.to_ascii_uppercase());
    match (code, text) {
        (Some(c), Some(t)) => format!("{status} [{c}] {t}"),
        (Some(c), None) => format!("{status} [{c}]"),
        (None, Some(t)) => format!("{status} {t}"),
        (None, None) => format!("{status} {}", debug.trim()),
    }
}

/// The contents of a Rust `Debug` string literal up to its closing quote.
fn unescape_debug_str(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let rest: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let hex = rest.strip_prefix('{')?;
                    out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Moves the cursor up to `uid`, but never to or past `hold` (a message left on the
/// server for its size, which a raised limit must still find).
fn advance(cursor: &mut FolderCursor, hold: Option<u32>, uid: u32) {
    let to = match hold {
        Some(h) => uid.min(h.saturating_sub(1)),
        None => uid,
    };
    cursor.last_uid = cursor.last_uid.max(to);
}

/// Sends a command that answers with a stream of responses, within the step timeout.
async fn started<S>(
    acct: &AccountRecord,
    server: &str,
    ep: &Endpoint,
    step: &str,
    what: &'static str,
    command: impl std::future::Future<Output = Result<S, ImapError>>,
) -> Result<S, FetchError> {
    match net::with_timeout(ep, what, command).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(imap_err(acct, server, step, e, "")),
        Err(error) => Err(FetchError::Net {
            account: acct.name.clone(),
            error,
        }),
    }
}

/// Reads every response of a command, each within the step timeout.
async fn drain<T>(
    acct: &AccountRecord,
    server: &str,
    ep: &Endpoint,
    step: &str,
    what: &'static str,
    stream: impl smol::stream::Stream<Item = Result<T, ImapError>>,
    mut each: impl FnMut(T),
) -> Result<(), FetchError> {
    let mut stream = std::pin::pin!(stream);
    while let Some(r) = net::with_timeout(ep, what, stream.next())
        .await
        .map_err(|error| FetchError::Net {
            account: acct.name.clone(),
            error,
        })?
    {
        each(r.map_err(|e| imap_err(acct, server, step, e, ""))?);
    }
    Ok(())
}

/// Compact UID set: `1:5,7,9:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = uids.get(i) {
        let mut end = start;
        while uids.get(i + 1) == Some(&end.saturating_add(1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The Message-ID in a `BODY[HEADER.FIELDS (MESSAGE-ID)]` answer.
pub fn header_message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let unfolded = text
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .replace("\n ", " ");
    for line in unfolded.lines() {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            return crate::pipeline::parse::clean_msgid(value);
        }
    }
    None
}

/// SASL PLAIN for `AUTHENTICATE PLAIN`: the one message, sent at the first "+".
struct SaslPlain(Option<Vec<u8>>);

impl async_imap::Authenticator for SaslPlain {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.0.take().unwrap_or_default()
    }
}

fn caps_offer_plain(caps: &[imap_proto::Capability<'_>]) -> bool {
    caps.iter().any(|c| match c {
        imap_proto::Capability::Auth(a) => a.eq_ignore_ascii_case("PLAIN"),
        _ => false,
    })
}

/// Asks `CAPABILITY` before logging in: whether the server offers `AUTH=PLAIN`.
async fn pre_login_offers_plain(
    client: &mut Client<Conn>,
    ep: &Endpoint,
) -> Result<bool, net::NetError> {
    let (tx, rx) = smol::channel::bounded(16);
    let asked = net::with_timeout(
        ep,
        "reading capabilities",
        client.run_command_and_check_ok("CAPABILITY", Some(tx)),
    )
    .await?;
    let mut plain = false;
    while let Ok(resp) = rx.try_recv() {
        if let async_imap::types::UnsolicitedResponse::Other(r) = resp
            && let imap_proto::Response::Capabilities(caps) = r.parsed()
        {
            plain |= caps_offer_plain(caps);
        }
    }
    // A server that refuses CAPABILITY before login: assume it offers nothing more.
    Ok(asked.is_ok() && plain)
}

impl<'a> Imap<'a> {
    /// Connects, upgrades with STARTTLS if asked (refusing to go on in clear), logs in
    /// with LOGIN or SASL PLAIN (see `pick_login`).
    pub async fn connect(
        ctx: &'a FetchCtx,
        acct: &'a AccountRecord,
    ) -> Result<Imap<'a>, FetchError> {
        let ep = endpoint(acct);
        let server = format!("{}:{}", ep.host, ep.port);
        let neterr = |error| FetchError::Net {
            account: acct.name.clone(),
            error,
        };
        let conn = net::connect(&ep).await.map_err(neterr)?;
        let mut client = Client::new(conn);
        let greeting = net::with_timeout(&ep, "waiting for the greeting", client.read_response())
            .await
            .map_err(neterr)?;
        let mut greeting_plain = None;
        match greeting {
            Ok(Some(r)) => {
                if let imap_proto::Response::Data { outcome, .. } = r.parsed()
                    && let Some(imap_proto::ResponseCode::Capabilities(caps)) = &outcome.code
                {
                    greeting_plain = Some(caps_offer_plain(caps));
                }
                if let imap_proto::Response::Data {
                    status: imap_proto::Status::Bye,
                    ..
                } = r.parsed()
                {
                    return Err(FetchError::Server {
                        account: acct.name.clone(),
                        proto: PROTO,
                        step: "greeting".into(),
                        server,
                        reply: format!("{:?}", r.parsed()),
                        hint: "The server refuses connections right now; it will be retried",
                    });
                }
            }
            Ok(None) => {
                return Err(FetchError::Lost {
                    account: acct.name.clone(),
                    proto: PROTO,
                    step: "greeting".into(),
                    server,
                    detail: "closed before greeting".into(),
                });
            }
            Err(e) => {
                return Err(FetchError::Lost {
                    account: acct.name.clone(),
                    proto: PROTO,
                    step: "greeting".into(),
                    server,
                    detail: format!("{e}; if this port speaks TLS, set security to tls"),
                });
            }
        }
        if ep.security == Security::StartTls {
            net::with_timeout(&ep, "asking for STARTTLS", client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(neterr)?
                .map_err(|e| {
                    imap_err(acct, &server, "STARTTLS", e, "The server does not offer STARTTLS, so Postroom will not send the password in clear. Use security tls (port 993), or none on a trusted network only")
                })?;
            let tcp = match client.into_inner() {
                Conn::Plain(tcp) => tcp,
                Conn::Tls(_) => {
                    return Err(FetchError::Lost {
                        account: acct.name.clone(),
                        proto: PROTO,
                        step: "STARTTLS".into(),
                        server,
                        detail: "already encrypted".into(),
                    });
                }
            };
            client = Client::new(net::tls_handshake(&ep, tcp).await.map_err(neterr)?);
        }
        let password = accounts::password(&ctx.keys, acct).map_err(|error| FetchError::Secret {
            account: acct.name.clone(),
            error,
        })?;
        let mut offers_plain = greeting_plain.filter(|_| ep.security != Security::StartTls);
        if offers_plain.is_none()
            && super::needs_offer(acct.login, &acct.authzid, password.expose())
        {
            offers_plain = Some(
                pre_login_offers_plain(&mut client, &ep)
                    .await
                    .map_err(neterr)?,
            );
        }
        let method = super::pick_login(acct.login, &acct.authzid, password.expose(), offers_plain);
        let hint = "Check the user name and password in the account settings (postroom account edit NAME --password-file FILE)";
        let login = async {
            match method {
                LoginMethod::Plain => {
                    let plain = super::sasl_plain(&acct.authzid, &acct.username, password.expose());
                    client.authenticate("PLAIN", SaslPlain(Some(plain))).await
                }
                _ => client.login(&acct.username, password.expose()).await,
            }
        };
        let step = match method {
            LoginMethod::Plain => "login (AUTHENTICATE PLAIN)",
            _ => "login (LOGIN)",
        };
        let mut session = match net::with_timeout(&ep, "logging in", login)
            .await
            .map_err(neterr)?
        {
            Ok(s) => s,
            Err((e, _)) => return Err(imap_err(acct, &server, step, e, hint)),
        };
        let caps = net::with_timeout(&ep, "reading capabilities", session.capabilities())
            .await
            .map_err(neterr)?
            .map_err(|e| {
                imap_err(
                    acct,
                    &server,
                    "CAPABILITY",
                    e,
                    "The server did not list its capabilities",
                )
            })?;
        let imap = Imap {
            ctx,
            acct,
            uidplus: caps.has_str("UIDPLUS"),
            move_cmd: caps.has_str("MOVE"),
            idle: caps.has_str("IDLE"),
            ep,
            session,
            server,
            created_target: false,
            idle_uidnext: None,
            login_used: method,
        };
        Ok(imap)
    }

    fn err(&self, step: &str, e: ImapError, hint: &'static str) -> FetchError {
        imap_err(self.acct, &self.server, step, e, hint)
    }

    fn neterr(&self, error: net::NetError) -> FetchError {
        FetchError::Net {
            account: self.acct.name.clone(),
            error,
        }
    }

    /// Runs a command that answers with FETCH responses and collects them.
    async fn fetch(
        &mut self,
        step: &str,
        set: &str,
        query: &str,
    ) -> Result<Vec<Fetch>, FetchError> {
        let mut out = Vec::new();
        self.fetch_each(step, set, query, |f| out.push(f)).await?;
        Ok(out)
    }

    /// Like `fetch`, handing each response to `each` as it arrives, so a batch of message
    /// bodies is never held twice (the response buffers and our copies).
    async fn fetch_each(
        &mut self,
        step: &str,
        set: &str,
        query: &str,
        mut each: impl FnMut(Fetch),
    ) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let stream = started(
            self.acct,
            &self.server,
            &ep,
            step,
            "sending FETCH",
            self.session.uid_fetch(set, query),
        )
        .await?;
        drain(
            self.acct,
            &self.server,
            &ep,
            step,
            "receiving messages",
            stream,
            &mut each,
        )
        .await
    }

    /// `UID STORE`: run and drain the responses.
    async fn store_flags(&mut self, set: &str, flags: &str) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let step = format!("UID STORE {flags}");
        let stream = started(
            self.acct,
            &self.server,
            &ep,
            &step,
            "storing flags",
            self.session.uid_store(set, flags),
        )
        .await?;
        drain(
            self.acct,
            &self.server,
            &ep,
            &step,
            "storing flags",
            stream,
            |_| {},
        )
        .await
    }

    async fn uid_expunge(&mut self, set: &str) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let stream = started(
            self.acct,
            &self.server,
            &ep,
            "UID EXPUNGE",
            "expunging",
            self.session.uid_expunge(set),
        )
        .await?;
        drain(
            self.acct,
            &self.server,
            &ep,
            "UID EXPUNGE",
            "expunging",
            stream,
            |_| {},
        )
        .await
    }

    /// Expunges without UIDPLUS, but only when every `\Deleted` message is one of ours.
    async fn careful_expunge(&mut self, ours: &[u32]) -> Result<bool, FetchError> {
        let ep = self.ep.clone();
        let deleted = net::with_timeout(&ep, "searching", self.session.uid_search("DELETED"))
            .await
            .map_err(|e| self.neterr(e))?
            .map_err(|e| self.err("UID SEARCH DELETED", e, ""))?;
        let ours: BTreeSet<u32> = ours.iter().copied().collect();
        if deleted.iter().all(|u| ours.contains(u)) {
            let stream = started(
                self.acct,
                &self.server,
                &ep,
                "EXPUNGE",
                "expunging",
                self.session.expunge(),
            )
            .await?;
            drain(
                self.acct,
                &self.server,
                &ep,
                "EXPUNGE",
                "expunging",
                stream,
                |_| {},
            )
            .await?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// One pass over every folder of the account.
    pub async fn sync_all(&mut self, report: &mut PassReport) -> Result<(), FetchError> {
        for folder in self.acct.folders.clone() {
            self.sync_folder(&folder, report).await?;
        }
        Ok(())
    }

    async fn store_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, FetchError> {
        let store = self.ctx.store.clone();
        Ok(smol::unblock(move || f(&store)).await?)
    }

    async fn sync_folder(
        &mut self,
        folder: &str,
        report: &mut PassReport,
    ) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let mb = net::with_timeout(&ep, "selecting the folder", self.session.select(super::mutf7::encode(folder)))
            .await
            .map_err(|e| self.neterr(e))?
            .map_err(|e| self.err(&format!("SELECT {folder:?}"), e, "Check the folder name in the account settings (postroom account check NAME lists the folders)"))?;
        let uidvalidity = mb.uid_validity.unwrap_or(0);
        if self.acct.folders.first().map(String::as_str) == Some(folder) {
            self.idle_uidnext = mb.uid_next;
        }
        let (id, f) = (self.acct.id, folder.to_owned());
        let stored = self.store_read(move |s| s.read()?.cursor(id, &f)).await?;
        let mut cursor = match stored {
            None => {
                let last = if self.acct.only_new {
                    mb.uid_next.unwrap_or(1).saturating_sub(1)
                } else {
                    0
                };
                let c = FolderCursor {
                    uidvalidity,
                    last_uid: last,
                };
                let (ctx, acct, f) = (self.ctx.clone(), self.acct.clone(), folder.to_owned());
                smol::unblock(move || commit_taken(&ctx, &acct, &[], Some((&f, c)))).await?;
                comm_log(
                    self.ctx,
                    self.acct,
                    Level::Info,
                    format!(
                        "first pass over {folder:?}: {} messages there, {}",
                        mb.exists,
                        if self.acct.only_new {
                            "left alone (only new mail is imported)"
                        } else {
                            "all imported"
                        }
                    ),
                )
                .await;
                c
            }
            Some(c) if c.uidvalidity != uidvalidity => {
                self.resync(folder, c, uidvalidity, mb.exists, report)
                    .await?
            }
            Some(c) => c,
        };
        if !matches!(self.acct.after, AfterFetch::Keep) {
            let (id, f) = (self.acct.id, folder.to_owned());
            let pending: Vec<u32> = self
                .store_read(move |s| s.read()?.taken_in_folder(id, &f))
                .await?
                .into_iter()
                .filter(|(k, t)| t.pending_removal && k.uidvalidity == uidvalidity)
                .filter_map(|(k, _)| k.uid())
                .collect();
            if !pending.is_empty() {
                self.remove(folder, uidvalidity, &pending, report).await?;
            }
        }
        if mb.exists == 0 {
            return Ok(());
        }
        let found = net::with_timeout(
            &ep,
            "searching",
            self.session
                .uid_search(format!("UID {}:*", cursor.last_uid.saturating_add(1))),
        )
        .await
        .map_err(|e| self.neterr(e))?
        .map_err(|e| self.err("UID SEARCH", e, ""))?;
        let mut uids: Vec<u32> = found.into_iter().filter(|u| *u > cursor.last_uid).collect();
        uids.sort_unstable();
        if uids.is_empty() {
            return Ok(());
        }
        // Skip what is already taken, and what was left there for its size unless the
        // limit has been raised since.
        let max = self.acct.max_message_bytes;
        let (id, f, check) = (self.acct.id, folder.to_owned(), uids.clone());
        let (known, oversize): (BTreeSet<u32>, BTreeSet<u32>) = self
            .store_read(move |s| {
                let r = s.read()?;
                let (mut known, mut oversize) = (BTreeSet::new(), BTreeSet::new());
                for u in check {
                    let k = ItemKey::imap(id, &f, uidvalidity, u);
                    if r.taken(&k)?.is_some() {
                        known.insert(u);
                    } else if r.skipped(&k)?.is_some_and(|size| size > max) {
                        oversize.insert(u);
                    }
                }
                Ok((known, oversize))
            })
            .await?;
        // Sizes first: oversize mail stays on the server, and batches stay small.
        let unknown: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !known.contains(u) && !oversize.contains(u))
            .collect();
        let mut sizes = BTreeMap::new();
        for chunk in unknown.chunks(UIDS_PER_COMMAND) {
            for f in self
                .fetch(
                    "UID FETCH RFC822.SIZE",
                    &uid_set(chunk),
                    "(UID RFC822.SIZE)",
                )
                .await?
            {
                if let (Some(u), Some(s)) = (f.uid, f.size) {
                    sizes.insert(u, u64::from(s));
                }
            }
        }
        // The cursor never passes a message left there for its size, so that raising the
        // limit fetches it (those below the cursor are recognised as taken or skipped).
        let persisted = cursor.last_uid;
        let mut hold: Option<u32> = None;
        let mut batch: Vec<(u32, u64)> = Vec::new();
        let mut batch_bytes = 0u64;
        for &uid in &uids {
            if known.contains(&uid) {
                advance(&mut cursor, hold, uid);
                continue;
            }
            if oversize.contains(&uid) {
                hold.get_or_insert(uid);
                continue;
            }
            let Some(&size) = sizes.get(&uid) else {
                continue; // expunged by another client in the meantime
            };
            if size > max {
                self.skip_oversize(folder, uidvalidity, uid, size, report)
                    .await?;
                hold.get_or_insert(uid);
                continue;
            }
            if !batch.is_empty() && (batch_bytes + size > BATCH_BYTES || batch.len() >= BATCH_ITEMS)
            {
                self.fetch_batch(folder, uidvalidity, &mut cursor, hold, &batch, report)
                    .await?;
                batch.clear();
                batch_bytes = 0;
            }
            batch.push((uid, size));
            batch_bytes += size;
        }
        if !batch.is_empty() {
            self.fetch_batch(folder, uidvalidity, &mut cursor, hold, &batch, report)
                .await?;
        } else if cursor.last_uid > persisted {
            // Only known messages moved the cursor: remember it, so they are not looked
            // up again at every pass.
            let (ctx, acct, f, c) = (
                self.ctx.clone(),
                self.acct.clone(),
                folder.to_owned(),
                cursor,
            );
            smol::unblock(move || commit_taken(&ctx, &acct, &[], Some((&f, c)))).await?;
        }
        Ok(())
    }

    async fn skip_oversize(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        size: u64,
        report: &mut PassReport,
    ) -> Result<(), FetchError> {
        let key = ItemKey::imap(self.acct.id, folder, uidvalidity, uid);
        let store = self.ctx.store.clone();
        smol::unblock(move || store.write(|tx| tx.put_skipped(&key, size))).await?;
        report.oversize += 1;
        comm_log(
            self.ctx,
            self.acct,
            Level::Warn,
            format!(
                "{folder:?} UID {uid}: {size} bytes is over the limit of {} bytes; left on the server. Raise the limit (postroom account edit {} --max-message-bytes N) to fetch it",
                self.acct.max_message_bytes, self.acct.name
            ),
        ).await;
        Ok(())
    }

    async fn fetch_batch(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        cursor: &mut FolderCursor,
        hold: Option<u32>,
        batch: &[(u32, u64)],
        report: &mut PassReport,
    ) -> Result<(), FetchError> {
        let uids: Vec<u32> = batch.iter().map(|(u, _)| *u).collect();
        let mut items = Vec::with_capacity(uids.len());
        let mut odd_sizes = Vec::new();
        let (acct_id, acct_name) = (self.acct.id, self.acct.name.clone());
        self.fetch_each(
            "UID FETCH BODY.PEEK[]",
            &uid_set(&uids),
            "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[])",
            |f| {
                let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                    return;
                };
                if !uids.contains(&uid) {
                    return; // an unsolicited FETCH (flag change by another client)
                }
                if let Some(size) = f.size
                    && body.len() as u64 != u64::from(size)
                {
                    odd_sizes.push(format!(
                        "{folder:?} UID {uid}: the server announced {size} bytes but sent {}; stored as sent",
                        body.len()
                    ));
                }
                items.push(Taken {
                    key: ItemKey::imap(acct_id, folder, uidvalidity, uid),
                    bytes: body.to_vec(),
                    message_id: f.header().and_then(header_message_id),
                    source: format!("imap:{acct_name}/{folder}/{uidvalidity}/{uid}"),
                });
            },
        )
        .await?;
        for text in odd_sizes {
            comm_log(self.ctx, self.acct, Level::Warn, text).await;
        }
        if let Some(&max) = uids.iter().max() {
            advance(cursor, hold, max);
        }
        let got: Vec<u32> = items.iter().filter_map(|t| t.key.uid()).collect();
        report.bytes += items.iter().map(|t| t.bytes.len() as u64).sum::<u64>();
        let (ctx, acct, f, c) = (
            self.ctx.clone(),
            self.acct.clone(),
            folder.to_owned(),
            *cursor,
        );
        let outcomes =
            smol::unblock(move || commit_taken(&ctx, &acct, &items, Some((&f, c)))).await?;
        for o in outcomes {
            match o {
                RawOutcome::New(_) => report.stored += 1,
                RawOutcome::SameBytes(_) => report.same_bytes += 1,
            }
        }
        if !matches!(self.acct.after, AfterFetch::Keep) && !got.is_empty() {
            self.remove(folder, uidvalidity, &got, report).await?;
        }
        Ok(())
    }

    /// Deletes or moves stored messages on the server, after checking each UID still
    /// holds what we stored.
    async fn remove(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        report: &mut PassReport,
    ) -> Result<(), FetchError> {
        let (id, f, want) = (self.acct.id, folder.to_owned(), uids.to_vec());
        let records = self
            .store_read(move |s| {
                let r = s.read()?;
                let mut out = BTreeMap::new();
                for u in want {
                    if let Some(t) = r.taken(&ItemKey::imap(id, &f, uidvalidity, u))? {
                        out.insert(u, t);
                    }
                }
                Ok(out)
            })
            .await?;
        let mut ok = Vec::new();
        let mut seen = BTreeSet::new();
        let mut mismatched = Vec::new();
        for chunk in uids.chunks(UIDS_PER_COMMAND) {
            for f in self
                .fetch(
                    "UID FETCH (check before removal)",
                    &uid_set(chunk),
                    "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                )
                .await?
            {
                let Some(uid) = f.uid else { continue };
                let Some(rec) = records.get(&uid) else {
                    continue;
                };
                seen.insert(uid);
                let same_size = f.size.map(u64::from) == Some(rec.size);
                let same_id = f.header().and_then(header_message_id) == rec.message_id;
                if same_size && same_id {
                    ok.push(uid);
                } else {
                    mismatched.push(uid);
                }
            }
        }
        ok.sort_unstable();
        ok.dedup();
        if !ok.is_empty() {
            for chunk in ok.chunks(UIDS_PER_COMMAND) {
                let set = uid_set(chunk);
                match self.acct.after.clone() {
                    AfterFetch::Keep => {}
                    AfterFetch::Delete => {
                        self.store_flags(&set, "+FLAGS.SILENT (\\Deleted)").await?;
                        if self.uidplus {
                            self.uid_expunge(&set).await?;
                        } else if !self.careful_expunge(chunk).await? {
                            comm_log(
                                self.ctx,
                                self.acct,
                                Level::Warn,
                                format!(
                                    "{folder:?}: the server has no UIDPLUS and another client left messages marked deleted; ours are marked \\Deleted and will be expunged when that clears"
                                ),
                            ).await;
                        }
                    }
                    AfterFetch::Move(target) => {
                        if !self.created_target {
                            let ep = self.ep.clone();
                            // Ignore "already exists"; a real problem shows at MOVE.
                            let _ = net::with_timeout(
                                &ep,
                                "creating the folder",
                                self.session.create(super::mutf7::encode(&target)),
                            )
                            .await;
                            self.created_target = true;
                        }
                        if self.move_cmd {
                            let ep = self.ep.clone();
                            net::with_timeout(
                                &ep,
                                "moving",
                                self.session.uid_mv(&set, super::mutf7::encode(&target)),
                            )
                            .await
                            .map_err(|e| self.neterr(e))?
                            .map_err(|e| {
                                self.err(
                                    &format!("UID MOVE to {target:?}"),
                                    e,
                                    "Check that the target folder can be created on the server",
                                )
                            })?;
                        } else {
                            let ep = self.ep.clone();
                            net::with_timeout(
                                &ep,
                                "copying",
                                self.session.uid_copy(&set, super::mutf7::encode(&target)),
                            )
                            .await
                            .map_err(|e| self.neterr(e))?
                            .map_err(|e| {
                                self.err(
                                    &format!("UID COPY to {target:?}"),
                                    e,
                                    "Check that the target folder can be created on the server",
                                )
                            })?;
                            self.store_flags(&set, "+FLAGS.SILENT (\\Deleted)").await?;
                            if self.uidplus {
                                self.uid_expunge(&set).await?;
                            } else {
                                self.careful_expunge(chunk).await?;
                            }
                        }
                    }
                }
            }
            report.removed += ok.len() as u64;
        }
        for &u in &mismatched {
            comm_log(
                self.ctx,
                self.acct,
                Level::Error,
                format!(
                    "{folder:?} UID {u} no longer holds the message we stored (size or Message-ID differ); not removed. Check the server"
                ),
            ).await;
        }
        // Forget what is done: removed, gone already, or not ours any more.
        let (id, f) = (self.acct.id, folder.to_owned());
        let forget: Vec<u32> = ok
            .iter()
            .copied()
            .chain(uids.iter().copied().filter(|u| !seen.contains(u)))
            .collect();
        let keep_but_stop: Vec<u32> = mismatched.clone();
        self.store_read(move |s| {
            s.write(|tx| {
                for u in forget {
                    tx.remove_taken(&ItemKey::imap(id, &f, uidvalidity, u))?;
                }
                for u in keep_but_stop {
                    let k = ItemKey::imap(id, &f, uidvalidity, u);
                    if let Some(mut t) = tx.taken(&k)? {
                        t.pending_removal = false;
                        tx.put_taken(&k, &t)?;
                    }
                }
                Ok(())
            })
        })
        .await?;
        Ok(())
    }

    /// UIDVALIDITY changed: re-map what we took by Message-ID and size, start the
    /// cursor over; the rest is fetched (identical bytes are stored once anyway).
    async fn resync(
        &mut self,
        folder: &str,
        old: FolderCursor,
        uidvalidity: u32,
        exists: u32,
        report: &mut PassReport,
    ) -> Result<FolderCursor, FetchError> {
        comm_log(
            self.ctx,
            self.acct,
            Level::Warn,
            format!(
                "{folder:?}: UIDVALIDITY changed from {} to {uidvalidity}; re-mapping known messages by Message-ID and size",
                old.uidvalidity
            ),
        ).await;
        let (id, f) = (self.acct.id, folder.to_owned());
        let known = self
            .store_read(move |s| s.read()?.taken_in_folder(id, &f))
            .await?;
        let mut by_id: BTreeMap<(String, u64), Vec<crate::model::TakenRecord>> = BTreeMap::new();
        for (k, t) in &known {
            if k.uidvalidity != uidvalidity
                && let Some(mid) = &t.message_id
            {
                by_id
                    .entry((mid.clone(), t.size))
                    .or_default()
                    .push(t.clone());
            }
        }
        let mut remapped = Vec::new();
        if exists > 0 {
            for f in self
                .fetch(
                    "UID FETCH (re-map)",
                    "1:*",
                    "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                )
                .await?
            {
                let (Some(uid), Some(size)) = (f.uid, f.size) else {
                    continue;
                };
                let Some(mid) = f.header().and_then(header_message_id) else {
                    continue;
                };
                if let Some(list) = by_id.get_mut(&(mid, u64::from(size)))
                    && let Some(t) = list.pop()
                {
                    remapped.push((uid, t));
                }
            }
        }
        let n = remapped.len();
        let cursor = FolderCursor {
            uidvalidity,
            last_uid: 0,
        };
        let (id, f) = (self.acct.id, folder.to_owned());
        let old_keys: Vec<ItemKey> = known
            .into_iter()
            .filter(|(k, _)| k.uidvalidity != uidvalidity)
            .map(|(k, _)| k)
            .collect();
        self.store_read(move |s| {
            s.write(|tx| {
                for k in &old_keys {
                    tx.remove_taken(k)?;
                }
                for (uid, t) in &remapped {
                    tx.put_taken(&ItemKey::imap(id, &f, uidvalidity, *uid), t)?;
                }
                tx.put_cursor(id, &f, &cursor)
            })
        })
        .await?;
        report.notes.push(format!(
            "{folder}: UIDVALIDITY changed; {n} known messages re-mapped"
        ));
        Ok(cursor)
    }

    /// The connection, for `account check` (TLS facts).
    pub(crate) fn conn(&self) -> &Conn {
        self.session.get_ref()
    }

    /// The server's capabilities, as it lists them.
    pub(crate) async fn capability_names(&mut self) -> Result<Vec<String>, FetchError> {
        let ep = self.ep.clone();
        let caps = net::with_timeout(&ep, "reading capabilities", self.session.capabilities())
            .await
            .map_err(|e| self.neterr(e))?
            .map_err(|e| self.err("CAPABILITY", e, ""))?;
        let mut names: Vec<String> = caps
            .iter()
            .map(|c| match c {
                async_imap::types::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                async_imap::types::Capability::Auth(a) => format!("AUTH={a}"),
                async_imap::types::Capability::Atom(a) => a.clone(),
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every selectable folder with its message count (`None` when STATUS failed).
    pub(crate) async fn folder_counts(&mut self) -> Result<Vec<(String, Option<u32>)>, FetchError> {
        let ep = self.ep.clone();
        let mut names = Vec::new();
        {
            let stream = net::with_timeout(
                &ep,
                "listing folders",
                self.session.list(Some(""), Some("*")),
            )
            .await
            .map_err(|e| FetchError::Net {
                account: self.acct.name.clone(),
                error: e,
            })?
            .map_err(|e| imap_err(self.acct, &self.server, "LIST", e, ""))?;
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = net::with_timeout(&ep, "listing folders", stream.next())
                .await
                .map_err(|e| FetchError::Net {
                    account: self.acct.name.clone(),
                    error: e,
                })?
            {
                let n = item.map_err(|e| imap_err(self.acct, &self.server, "LIST", e, ""))?;
                let selectable = !n
                    .attributes()
                    .iter()
                    .any(|a| matches!(a, imap_proto::NameAttribute::NoSelect));
                if selectable {
                    names.push(n.name().to_owned()); // wire form; decoded for people below
                }
            }
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let count = match net::with_timeout(
                &ep,
                "reading folder status",
                self.session.status(&name, "(MESSAGES)"),
            )
            .await
            {
                Ok(Ok(mb)) => Some(mb.exists),
                _ => None,
            };
            out.push((super::mutf7::decode(&name), count));
        }
        out.sort();
        Ok(out)
    }

    /// APPENDs a message we sent to `folder` with `\Seen` (the mailbox's Sent copy),
    /// creating the folder when it is missing.
    pub async fn append_seen(&mut self, folder: &str, bytes: &[u8]) -> Result<(), FetchError> {
        let ep = self.ep.clone();
        let name = super::mutf7::encode(folder);
        // Ignore "already exists"; a real problem shows at APPEND.
        let _ = net::with_timeout(&ep, "creating the folder", self.session.create(&name)).await;
        net::with_timeout(
            &ep,
            "appending the Sent copy",
            self.session.append(&name, Some("(\\Seen)"), None, bytes),
        )
        .await
        .map_err(|e| self.neterr(e))?
        .map_err(|e| {
            self.err(
                &format!("APPEND to {folder:?}"),
                e,
                "Check that the account may create and write that folder",
            )
        })
    }

    pub async fn logout(mut self) {
        let ep = self.ep.clone();
        let _ = net::with_timeout(&ep, "logging out", self.session.logout()).await;
    }

    /// Waits in IDLE on the first folder until the server reports a change, the poll
    /// interval passes, or `stop` fires (returns true then). Returns at once when mail
    /// arrived after the last pass looked (UIDNEXT moved, or the server said so while
    /// IDLE started): IDLE only reports changes the session has not seen yet.
    async fn idle(
        self,
        stop: &smol::channel::Receiver<()>,
    ) -> Result<(Imap<'a>, bool), FetchError> {
        use async_imap::types::UnsolicitedResponse;
        use smol::future::FutureExt;
        let Imap {
            ctx,
            acct,
            ep,
            mut session,
            uidplus,
            move_cmd,
            idle,
            server,
            created_target,
            idle_uidnext,
            login_used,
        } = self;
        let rebuild = |session| Imap {
            ctx,
            acct,
            ep: ep.clone(),
            session,
            uidplus,
            move_cmd,
            idle,
            server: server.clone(),
            created_target,
            idle_uidnext,
            login_used,
        };
        let folder = acct
            .folders
            .first()
            .cloned()
            .unwrap_or_else(|| "INBOX".into());
        let mb = net::with_timeout(
            &ep,
            "selecting the folder",
            session.select(super::mutf7::encode(&folder)),
        )
        .await
        .map_err(|error| FetchError::Net {
            account: acct.name.clone(),
            error,
        })?
        .map_err(|e| imap_err(acct, &server, "SELECT", e, ""))?;
        if idle_uidnext.is_some() && mb.uid_next != idle_uidnext {
            log::debug!("account {:?}: mail arrived during the pass", acct.name);
            return Ok((rebuild(session), false));
        }
        // Only what the server says from now on counts.
        let unsolicited = session.unsolicited_responses.clone();
        while unsolicited.try_recv().is_ok() {}
        let mut handle = session.idle();
        net::with_timeout(&ep, "starting IDLE", handle.init())
            .await
            .map_err(|error| FetchError::Net {
                account: acct.name.clone(),
                error,
            })?
            .map_err(|e| imap_err(acct, &server, "IDLE", e, ""))?;
        let announced = std::iter::from_fn(|| unsolicited.try_recv().ok()).any(|r| {
            matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            )
        });
        let outcome = if announced {
            Some(Ok(IdleResponse::ManualInterrupt))
        } else {
            let wait = Duration::from_secs(u64::from(acct.poll_secs).clamp(10, 29 * 60));
            let (fut, interrupt) = handle.wait_with_timeout(wait);
            let outcome = async { Some(fut.await) }
                .or(async {
                    let _ = stop.recv().await;
                    None
                })
                .await;
            drop(interrupt);
            outcome
        };
        let stopped = outcome.is_none();
        if let Some(Err(e)) = outcome {
            return Err(imap_err(acct, &server, "IDLE", e, ""));
        }
        if let Some(Ok(IdleResponse::NewData(_))) = &outcome {
            log::debug!("account {:?}: the server reported a change", acct.name);
        }
        let session = net::with_timeout(&ep, "ending IDLE", handle.done())
            .await
            .map_err(|error| FetchError::Net {
                account: acct.name.clone(),
                error,
            })?
            .map_err(|e| imap_err(acct, &server, "DONE", e, ""))?;
        Ok((rebuild(session), stopped))
    }
}

async fn log_pass(ctx: &FetchCtx, acct: &AccountRecord, r: &PassReport, started: Instant) {
    if r.stored + r.same_bytes + r.removed + r.oversize > 0 || !r.notes.is_empty() {
        let mut text = format!(
            "{} new messages stored ({} KB), {} already stored, {} removed on the server, {} left there (too large), in {:.1} s",
            r.stored,
            r.bytes / 1024,
            r.same_bytes,
            r.removed,
            r.oversize,
            started.elapsed().as_secs_f64()
        );
        for n in &r.notes {
            text.push_str("; ");
            text.push_str(n);
        }
        comm_log(ctx, acct, Level::Info, text).await;
    }
}

/// One pass now: connect, take every new message of every folder, log out.
pub async fn pass(ctx: &FetchCtx, acct: &AccountRecord) -> Result<PassReport, FetchError> {
    let started = Instant::now();
    let mut imap = Imap::connect(ctx, acct).await?;
    let mut report = PassReport::default();
    imap.sync_all(&mut report).await?;
    imap.logout().await;
    log_pass(ctx, acct, &report, started).await;
    Ok(report)
}

/// Keeps an account in sync until `stop` fires: pass, then IDLE (or sleep), again.
pub async fn run(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    stop: &smol::channel::Receiver<()>,
) -> Result<(), FetchError> {
    let mut imap = Imap::connect(ctx, acct).await?;
    comm_log(
        ctx,
        acct,
        Level::Info,
        format!(
            "connected to {}:{} ({}){}",
            acct.host,
            acct.port,
            acct.security,
            if imap.idle {
                ", IDLE available"
            } else {
                ", polling"
            }
        ),
    )
    .await;
    loop {
        let started = Instant::now();
        set_state(ctx, acct, AccountState::Fetching);
        let mut report = PassReport::default();
        imap.sync_all(&mut report).await?;
        log_pass(ctx, acct, &report, started).await;
        if imap.idle {
            set_state(ctx, acct, AccountState::Idle);
            let (back, stopped) = imap.idle(stop).await?;
            imap = back;
            if stopped {
                imap.logout().await;
                return Ok(());
            }
        } else {
            set_state(
                ctx,
                acct,
                AccountState::Polling {
                    next_in_secs: u64::from(acct.poll_secs),
                },
            );
            if sleep_or_stop(u64::from(acct.poll_secs), stop).await {
                imap.logout().await;
                return Ok(());
            }
        }
    }
}

/// Saves a copy of a sent message in `folder` of the account (with `\Seen`), so the
/// office's normal mail client shows the whole exchange.
pub async fn save_sent_copy(
    ctx: &FetchCtx,
    acct: &AccountRecord,
    folder: &str,
    bytes: &[u8],
) -> Result<(), FetchError> {
    let mut imap = Imap::connect(ctx, acct).await?;
    let result = imap.append_seen(folder, bytes).await;
    imap.logout().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn server_replies_are_rebuilt_from_async_imap_errors() {
        assert_eq!(
            server_reply(
                "NO",
                "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")"
            ),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(
            server_reply(
                "NO",
                "outcome: Outcome { code: Some(TryCreate), information: Some(\"Mailbox doesn't exist: \\\"X\\\" \\u{e9}\") }"
            ),
            "NO [TRYCREATE] Mailbox doesn't exist: \"X\" \u{e9}"
        );
        assert_eq!(server_reply("BAD", "odd"), "BAD odd");
    }

    #[test]
    fn message_id_from_header_fields() {
        assert_eq!(
            header_message_id(b"Message-ID: <a@b>\r\n\r\n").as_deref(),
            Some("a@b")
        );
        assert_eq!(
            header_message_id(b"message-id:\r\n <x@y>\r\n\r\n").as_deref(),
            Some("x@y")
        );
        assert_eq!(header_message_id(b"\r\n"), None);
    }
}

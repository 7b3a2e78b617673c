//! The web server: HTTP on the LAN, on its own threads (tiny_http), beside the smol
//! executor that runs intake.
//!
//! Owns: listening, reading requests (bounded), routing them to handlers, response
//! headers common to every answer, and `/healthz` (no login: store, pipeline backlog,
//! every account's state, the outbox's queued/failed/sent counts). The pages are in
//! `pages`, the JSON API in `api`, sessions and CSRF in `auth`, templates in `views`,
//! mail bodies made safe in `sanitize`, HTTPS in `tls`.
//! Must not: block on the network or the mail servers (handlers read and write the store
//! and wake the outbox; they never talk IMAP/POP3/SMTP themselves).

pub mod admin;
pub mod api;
pub mod auth;
pub mod i18n;
pub mod pages;
pub mod sanitize;
pub mod views;

pub mod tls;

use crate::fetch::AccountState;
use crate::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Default address: every interface, port 8080 (the appliance is reached on the LAN).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// What request handlers may use.
#[derive(Clone)]
pub struct WebCtx {
    pub store: Arc<Store>,
    pub states: Arc<Mutex<BTreeMap<String, AccountState>>>,
    pub started: Instant,
    /// Wakes the outbox sender after a reply was queued.
    pub outbox_wake: Option<smol::channel::Sender<()>>,
    /// The first-run code; open only while no user exists.
    pub setup: Arc<crate::users::SetupCode>,
    pub throttle: Arc<crate::users::Throttle>,
    /// The HTTPS port once the TLS front runs (0: none); plain HTTP then redirects.
    pub https_port: Arc<std::sync::atomic::AtomicU16>,
    /// Bumped by every change made through the web, for the pages' live refresh.
    pub changes: Arc<std::sync::atomic::AtomicU64>,
    pub clock: Arc<dyn crate::model::Clock>,
    /// The HTTPS certificate once the TLS front runs: its fingerprint is shown on the
    /// setup and settings pages; the settings page replaces it.
    pub cert: Arc<std::sync::OnceLock<Arc<tls::CertSlot>>>,
    /// Set once a user exists (they are never deleted), so the check costs nothing after.
    pub has_users: Arc<std::sync::atomic::AtomicBool>,
    /// What the fetchers use (keys, clock, live states), when the service runs: the
    /// account pages seal passwords and run "check connection" with it.
    pub fetch: Option<crate::fetch::FetchCtx>,
    /// Tells the service that accounts changed: its account tasks restart to match.
    pub accounts_changed: Option<smol::channel::Sender<()>>,
}

impl WebCtx {
    /// A context over `store` with nothing running around it (tests, tools).
    pub fn new(store: Arc<Store>) -> WebCtx {
        WebCtx {
            store,
            states: Arc::default(),
            started: Instant::now(),
            outbox_wake: None,
            setup: Arc::default(),
            throttle: Arc::default(),
            https_port: Arc::default(),
            changes: Arc::default(),
            clock: Arc::new(crate::model::SystemClock),
            cert: Arc::default(),
            has_users: Arc::default(),
            fetch: None,
            accounts_changed: None,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Something changed: pages refresh, the outbox may have work.
    pub fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn wake_outbox(&self) {
        if let Some(w) = &self.outbox_wake {
            let _ = w.try_send(());
        }
    }
}

/// Real client addresses of connections the HTTPS front made to the internal listener:
/// `local port of the front's connection -> the browser's address`. The front inserts
/// before it forwards a byte and removes when the connection ends.
pub type PeerMap = Arc<Mutex<std::collections::HashMap<u16, SocketAddr>>>;

/// Where a request came from, as the handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The browser's address (through the HTTPS front: the real one, not loopback).
    pub addr: Option<SocketAddr>,
    /// The request arrived over HTTPS (the TLS front), so cookies get `Secure`.
    pub https: bool,
}

/// A running web server; `stop` ends its threads.
pub struct Web {
    servers: Vec<Arc<tiny_http::Server>>,
    threads: Vec<JoinHandle<()>>,
    /// The address actually bound (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The loopback listener only the HTTPS front connects to; every request on it is
    /// an HTTPS request.
    pub tls_backend: SocketAddr,
    /// The front records each connection's real peer here.
    pub peers: PeerMap,
}

/// Why the web server could not start.
#[derive(Debug)]
pub struct ListenError {
    pub listen: String,
    pub detail: String,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot serve the web interface on {}: {}. Another program may use that port: \
             stop it, or choose another address with --listen (or POSTROOM_LISTEN), e.g. --listen 0.0.0.0:8081",
            self.listen, self.detail
        )
    }
}

impl std::error::Error for ListenError {}

impl Web {
    /// Binds `listen` and starts `workers` threads answering requests.
    pub fn start(listen: &str, ctx: WebCtx, workers: usize) -> Result<Web, ListenError> {
        let err = |detail: String| ListenError {
            listen: listen.to_owned(),
            detail,
        };
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| err(format!("not an address:port ({e})")))?;
        let server = tiny_http::Server::http(addr).map_err(|e| err(e.to_string()))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| err("no IP address bound".into()))?;
        let backend = tiny_http::Server::http("127.0.0.1:0").map_err(|e| err(e.to_string()))?;
        let tls_backend = backend
            .server_addr()
            .to_ip()
            .ok_or_else(|| err("no IP address bound".into()))?;
        let peers = PeerMap::default();
        let servers = [Arc::new(server), Arc::new(backend)];
        let mut threads = Vec::new();
        for (n, server) in servers.iter().enumerate() {
            let https = n == 1;
            // The HTTPS side gets fewer threads: browsers there are the same people.
            let count = if https { workers.div_ceil(2) } else { workers };
            for i in 0..count.max(1) {
                let (server, ctx, peers) = (server.clone(), ctx.clone(), peers.clone());
                let t = std::thread::Builder::new()
                    .name(format!("web-{}{i}", if https { "s" } else { "" }))
                    .spawn(move || {
                        for req in server.incoming_requests() {
                            let peer = peer_of(&req, https, &peers);
                            respond(&ctx, req, peer);
                        }
                    })
                    .map_err(|e| err(format!("cannot start a thread: {e}")))?;
                threads.push(t);
            }
        }
        log::info!("web: listening on http://{addr}/");
        Ok(Web {
            servers: servers.to_vec(),
            threads,
            addr,
            tls_backend,
            peers,
        })
    }

    /// Stops accepting, lets each thread finish its request, and joins them.
    pub fn stop(self) {
        for _ in &self.threads {
            for s in &self.servers {
                s.unblock();
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Who sent `req`: on the internal HTTPS listener the front's map gives the browser's
/// real address (None for a loopback connection the front did not make).
fn peer_of(req: &tiny_http::Request, https: bool, peers: &PeerMap) -> Peer {
    let direct = req.remote_addr().copied();
    if !https {
        return Peer {
            addr: direct,
            https: false,
        };
    }
    let real = direct.and_then(|a| peers.lock().ok()?.get(&a.port()).copied());
    Peer {
        addr: real,
        https: true,
    }
}

/// Largest request body read (multipart replies with attachments).
pub const MAX_BODY: usize = 30 * 1024 * 1024;

/// A request as the handlers see it: read whole, headers lower-cased.
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Peer,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        form_decode(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The client's address as text (for throttling and the log).
    pub fn client(&self) -> String {
        self.peer
            .addr
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    pub fn is_get(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            match c {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = b
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                _ => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(p), String::new()),
        })
        .collect()
}

/// Encodes a query or form value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer before it is sent.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply::bytes(
            status,
            "application/json",
            serde_json::to_vec_pretty(v).unwrap_or_default(),
        )
    }

    pub fn text(status: u16, s: &str) -> Reply {
        Reply::bytes(status, "text/plain; charset=utf-8", s.as_bytes().to_vec())
    }

    pub fn html(status: u16, s: String) -> Reply {
        Reply::bytes(status, "text/html; charset=utf-8", s.into_bytes())
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: content_type.to_owned(),
            body,
            headers: Vec::new(),
        }
    }

    /// 303 See Other: after a form, the browser GETs `to`.
    pub fn redirect(to: &str) -> Reply {
        Reply::bytes(303, "text/plain; charset=utf-8", Vec::new()).with("Location", to)
    }

    pub fn with(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// The security headers of every page; `frame-ancestors` lets our own pages show a mail
/// body in an iframe, nothing else may frame us.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'";

fn respond(ctx: &WebCtx, mut req: tiny_http::Request, peer: Peer) {
    let started = Instant::now();
    let method = req.method().to_string().to_ascii_uppercase();
    let url = req.url().to_owned();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (url.clone(), String::new()),
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let declared = req.body_length().unwrap_or(0);
    let reply = if declared > MAX_BODY {
        Reply::text(413, "request too large\n")
    } else {
        let mut body = Vec::new();
        use std::io::Read;
        match req
            .as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
        {
            Ok(n) if n > MAX_BODY => Reply::text(413, "request too large\n"),
            Ok(_) => {
                let r = Req {
                    method: method.clone(),
                    path: path.clone(),
                    query,
                    headers,
                    body,
                    peer,
                };
                route(ctx, &r)
            }
            Err(e) => Reply::text(400, &format!("could not read the request: {e}\n")),
        }
    };
    let status = reply.status;
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(status);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    };
    add("Content-Type", &reply.content_type);
    let own_csp = reply
        .headers
        .iter()
        .any(|(k, _)| k == "Content-Security-Policy");
    let own_frame = reply.headers.iter().any(|(k, _)| k == "X-Frame-Options");
    let own_referrer = reply.headers.iter().any(|(k, _)| k == "Referrer-Policy");
    for (k, v) in [
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ] {
        add(k, v);
    }
    // Not "no-referrer": with it browsers send `Origin: null` on form posts, and the
    // same-origin check refuses every form. "same-origin" sends nothing to other sites.
    if !own_referrer {
        add("Referrer-Policy", "same-origin");
    }
    if !reply.headers.iter().any(|(k, _)| k == "Cache-Control") {
        add("Cache-Control", "no-store");
    }
    if !own_frame {
        add("X-Frame-Options", "DENY");
    }
    if !own_csp {
        add("Content-Security-Policy", PAGE_CSP);
    }
    if peer.https {
        add("Strict-Transport-Security", "max-age=31536000");
    }
    for (k, v) in &reply.headers {
        add(k, v);
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("web: {method} {path}: client went away: {e}");
    }
    log::debug!(
        "web: {method} {path} -> {status} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn route(ctx: &WebCtx, req: &Req) -> Reply {
    if req.path == "/healthz" {
        return if req.is_get() {
            healthz(ctx)
        } else {
            Reply::text(405, "method not allowed\n")
        };
    }
    // Once HTTPS runs and a user exists, plain HTTP only redirects (cookies and passwords
    // never cross the LAN in clear).
    let https_port = ctx.https_port.load(std::sync::atomic::Ordering::Relaxed);
    if !req.peer.https && https_port != 0 && auth::has_users(ctx) {
        let host = req.header("host").unwrap_or("localhost");
        let host = host_without_port(host);
        let q = if req.query.is_empty() {
            String::new()
        } else {
            format!("?{}", req.query)
        };
        let to = format!("https://{host}:{https_port}{}{q}", req.path);
        return Reply::bytes(308, "text/plain; charset=utf-8", Vec::new()).with("Location", &to);
    }
    if req.path.starts_with("/api/") {
        return api::route(ctx, req);
    }
    pages::route(ctx, req)
}

/// `host` of a Host header (`[::1]:8080`, `postroom.local:8080`, `10.0.0.5`).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// `/healthz`: 200 with `"status": "ok"` when the store answers and no account is in
/// error, 200 with `"degraded"` when an account is failing (mail is still safe, intake
/// of that account waits), 503 when the store cannot be read. The outbox counts show
/// mail waiting to be sent and mail that failed for good.
fn healthz(ctx: &WebCtx) -> Reply {
    let store = ctx.store.read().and_then(|r| {
        let (mut queued, mut failed, mut sent) = (0u64, 0u64, 0u64);
        for o in r.outbox()? {
            match o.state {
                crate::model::OutboxState::Queued { .. } => queued += 1,
                crate::model::OutboxState::Failed { .. } => failed += 1,
                crate::model::OutboxState::Sent { .. } => sent += 1,
            }
        }
        Ok((
            r.pending_count()?,
            r.message_count()?,
            (queued, failed, sent),
        ))
    });
    let states: Vec<(String, AccountState)> = ctx
        .states
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let failing = states
        .iter()
        .filter(|(_, s)| matches!(s, AccountState::Error { .. }))
        .count();
    let fetchers: Vec<serde_json::Value> = states
        .iter()
        .map(|(name, s)| {
            serde_json::json!({
                "account": name,
                "state": s.to_string(),
                "ok": !matches!(s, AccountState::Error { .. }),
            })
        })
        .collect();
    let uptime = ctx.started.elapsed().as_secs();
    match store {
        Ok((pending, messages, (queued, failed, sent))) => Reply::json(
            200,
            &serde_json::json!({
                "status": if failing == 0 { "ok" } else { "degraded" },
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": uptime,
                "store": { "ok": true, "messages": messages, "pipeline_pending": pending },
                "fetchers": fetchers,
                "outbox": { "queued": queued, "failed": failed, "sent": sent },
            }),
        ),
        Err(e) => Reply::json(
            503,
            &serde_json::json!({
                "status": "error",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": uptime,
                "store": { "ok": false, "error": e.to_string() },
                "fetchers": fetchers,
            }),
        ),
    }
}

/// The office's time zone (Settings > time zone), read from the system once per name.
pub fn zone(r: &crate::store::Reader) -> Arc<crate::timezone::TimeZone> {
    type Cached = Option<(String, Arc<crate::timezone::TimeZone>)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let name = crate::config::Settings::load(r)
        .map(|s| s.time_zone)
        .unwrap_or_else(|_| "UTC".into());
    let mut cache = match CACHE.lock() {
        Ok(c) => c,
        Err(p) => p.into_inner(),
    };
    match cache.as_ref() {
        Some((n, tz)) if *n == name => tz.clone(),
        _ => {
            let tz = Arc::new(crate::timezone::TimeZone::load_or_utc(&name));
            *cache = Some((name, tz.clone()));
            tz
        }
    }
}

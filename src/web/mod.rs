//! The web server: HTTP on the LAN, on its own threads (tiny_http), beside the smol
//! executor that runs intake.
//!
//! Owns: listening, routing requests to handlers, response headers common to every
//! answer, and `/healthz` (no login: store, pipeline backlog, every account's state,
//! the outbox's queued/failed/sent counts).
//! Must not: block on the network or the mail servers (handlers read the store and the
//! shared state only), or talk IMAP/POP3/SMTP itself.

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

/// An answer before it is sent.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(v).unwrap_or_default(),
        }
    }

    fn text(status: u16, s: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: s.as_bytes().to_vec(),
        }
    }
}

fn respond(ctx: &WebCtx, req: tiny_http::Request, _peer: Peer) {
    let started = Instant::now();
    let method = req.method().to_string();
    let url = req.url().to_owned();
    let path = url.split('?').next().unwrap_or("/");
    let reply = route(ctx, req.method(), path);
    let status = reply.status;
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(status);
    for (k, v) in [
        ("Content-Type", reply.content_type),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ] {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("web: {method} {path}: client went away: {e}");
    }
    log::debug!(
        "web: {method} {path} -> {status} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn route(ctx: &WebCtx, method: &tiny_http::Method, path: &str) -> Reply {
    use tiny_http::Method::{Get, Head};
    match (method, path) {
        (Get | Head, "/healthz") => healthz(ctx),
        (Get | Head, "/") => Reply::text(
            200,
            &format!(
                "Postroom {} is running. Health: /healthz\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        (Get | Head, _) => Reply::text(404, "not found\n"),
        _ => Reply::text(405, "method not allowed\n"),
    }
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

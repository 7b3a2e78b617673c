//! HTTPS for the web UI: a self-signed certificate kept in the data dir, and a small TLS
//! front that decrypts browser connections and hands them to the web server's internal
//! loopback listener.
//!
//! Owns: creating and loading `https-cert.pem` / `https-key.pem` (ECDSA P-256, made with
//! rcgen on first run, the same fingerprint on every later run), the rustls server
//! configuration (the binary's one rustls, ring provider), and the front: its own thread
//! and smol executor, accepting, the TLS handshake, forwarding bytes both ways to
//! `Web::tls_backend`, and recording each connection's real browser address in the
//! `PeerMap` before the first byte is forwarded.
//! Must not: parse HTTP or answer requests (the web server does, behind it), log
//! ordinary connection failures above debug (browsers drop connections all the time),
//! or let one connection hold up the others or the shutdown.

use super::{ListenError, PeerMap};
use crate::net::{Fingerprint, provider};
use futures_rustls::TlsAcceptor;
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::ServerConfig;
use futures_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use futures_rustls::rustls::sign::CertifiedKey;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default HTTPS address: every interface, port 8443.
pub const DEFAULT_HTTPS_LISTEN: &str = "0.0.0.0:8443";
/// The certificate, in the data dir (PEM, mode 0644).
pub const CERT_FILE: &str = "https-cert.pem";
/// Its private key, in the data dir (PEM, mode 0600).
pub const KEY_FILE: &str = "https-key.pem";

/// How long a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; newer ones are closed straight away.
const MAX_CONNECTIONS: usize = 512;
/// How long a new certificate is valid (about ten years).
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The certificate the service presents, as people check it in the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the certificate (DER), `AB:CD:...` (uppercase hex pairs).
    pub fingerprint: String,
    /// End of validity, unix seconds.
    pub not_after: i64,
    pub cert_path: PathBuf,
}

/// The certificate or its key could not be made or read; says which file and what to do.
#[derive(Debug)]
pub struct TlsError {
    pub path: PathBuf,
    /// What failed, e.g. "cannot read the HTTPS certificate".
    pub what: String,
    pub detail: String,
    /// The next step for people.
    pub hint: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}. {}",
            self.what,
            self.path.display(),
            self.detail,
            self.hint
        )
    }
}

impl std::error::Error for TlsError {}

/// What to do when the files exist but cannot be used.
fn remake_hint(dir: &Path) -> String {
    format!(
        "Delete both {} and {} to make a new certificate at the next start \
         (browsers will then show a new fingerprint), or restore them from a backup",
        dir.join(CERT_FILE).display(),
        dir.join(KEY_FILE).display()
    )
}

/// The certificate the front presents, swappable while it runs (the settings page
/// uploads or regenerates one; new connections get the new one at once).
pub struct CertSlot {
    data_dir: PathBuf,
    names: Vec<String>,
    current: std::sync::RwLock<(Arc<CertifiedKey>, CertInfo)>,
}

impl fmt::Debug for CertSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSlot")
            .field("info", &self.info())
            .finish()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

impl CertSlot {
    /// What the front presents now.
    pub fn info(&self) -> CertInfo {
        match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    fn swap(&self, key: Arc<CertifiedKey>, info: CertInfo) {
        match self.current.write() {
            Ok(mut c) => *c = (key, info),
            Err(p) => *p.into_inner() = (key, info),
        }
    }

    /// Installs an uploaded certificate (PEM, the chain: server certificate first) and
    /// its private key (PEM): both are checked to belong together before anything is
    /// written; then the key (0600) and the certificate replace the files in the data
    /// dir and the front presents them to new connections.
    pub fn install_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, TlsError> {
        let cert_path = self.data_dir.join(CERT_FILE);
        let key_path = self.data_dir.join(KEY_FILE);
        let bad = |what: &str, detail: String, hint: &str| TlsError {
            path: cert_path.clone(),
            what: what.into(),
            detail,
            hint: hint.into(),
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                bad(
                    "the uploaded certificate cannot be read:",
                    format!("not a PEM certificate ({e})"),
                    "Upload the certificate file in PEM form (it starts with -----BEGIN CERTIFICATE-----)",
                )
            })?;
        if chain.is_empty() {
            return Err(bad(
                "the uploaded certificate cannot be read:",
                "the file holds no certificate".into(),
                "Upload the certificate file in PEM form (it starts with -----BEGIN CERTIFICATE-----)",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            bad(
                "the uploaded private key cannot be read:",
                format!("not a PEM private key ({e})"),
                "Upload the private key in PEM form (-----BEGIN PRIVATE KEY----- or -----BEGIN EC/RSA PRIVATE KEY-----), without a password",
            )
        })?;
        let certified = certified_key(chain.clone(), key.clone_key()).map_err(|detail| {
            bad(
                "the uploaded certificate and key cannot be used together:",
                detail,
                "Upload the private key that belongs to this certificate",
            )
        })?;
        let info = self.info_of(chain.first())?;
        let mut pem = String::new();
        for c in &chain {
            pem.push_str(&pem_block("CERTIFICATE", c.as_ref()));
        }
        write_atomic(&key_path, key_pem, 0o600).map_err(|e| TlsError {
            path: key_path.clone(),
            what: "cannot write the HTTPS key".into(),
            detail: e.to_string(),
            hint: "Check that the data directory is writable".into(),
        })?;
        write_atomic(&cert_path, pem.as_bytes(), 0o644).map_err(|e| TlsError {
            path: cert_path.clone(),
            what: "cannot write the HTTPS certificate".into(),
            detail: e.to_string(),
            hint: "Check that the data directory is writable".into(),
        })?;
        log::info!(
            "https: installed an uploaded certificate with SHA-256 fingerprint {}",
            info.fingerprint
        );
        self.swap(Arc::new(certified), info.clone());
        Ok(info)
    }

    /// Makes a new self-signed certificate and key, replacing the files, and presents it.
    pub fn regenerate(&self) -> Result<CertInfo, TlsError> {
        let cert_path = self.data_dir.join(CERT_FILE);
        let key_path = self.data_dir.join(KEY_FILE);
        let (cert, key) = create(&self.data_dir, &self.names, &cert_path, &key_path)?;
        let info = self.info_of(Some(&cert))?;
        let certified = certified_key(vec![cert], key).map_err(|detail| TlsError {
            path: key_path.clone(),
            what: "cannot use the new HTTPS certificate with its key".into(),
            detail,
            hint: remake_hint(&self.data_dir),
        })?;
        log::info!(
            "https: made a new certificate with SHA-256 fingerprint {}",
            info.fingerprint
        );
        self.swap(Arc::new(certified), info.clone());
        Ok(info)
    }

    fn info_of(&self, cert: Option<&CertificateDer<'_>>) -> Result<CertInfo, TlsError> {
        let cert_path = self.data_dir.join(CERT_FILE);
        let Some(cert) = cert else {
            return Err(TlsError {
                path: cert_path,
                what: "no certificate".into(),
                detail: String::new(),
                hint: String::new(),
            });
        };
        let facts = crate::net::cert_facts(cert.as_ref());
        Ok(CertInfo {
            fingerprint: Fingerprint::of(cert.as_ref()).to_string(),
            not_after: facts.not_after,
            cert_path,
        })
    }
}

/// A PEM block of `der` under `label`.
fn pem_block(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                b64.push(char::from(B64.get(idx).copied().unwrap_or(b'A')));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    let bytes = b64.as_bytes();
    for line in bytes.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate chain and its key as rustls serves them; refuses a key that does not
/// belong to the certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key is not usable ({e})"))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(e) => Err(format!("the key does not belong to the certificate ({e})")),
    }
}

/// Loads the certificate and key from `data_dir`, or makes them on first run: a
/// self-signed ECDSA P-256 certificate for `names` (e.g. `postroom.local`, `localhost`)
/// and 127.0.0.1, valid about ten years. The key is written with mode 0600 from the
/// start and renamed into place; the certificate is written last, so a crash half-way
/// leaves no certificate and the next start makes a new pair.
pub fn load_or_create(
    data_dir: &Path,
    names: &[String],
) -> Result<(Arc<ServerConfig>, Arc<CertSlot>), TlsError> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    let (chain, key_der) = match std::fs::read(&cert_path) {
        Ok(cert_pem) => load(data_dir, &cert_path, &cert_pem, &key_path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (c, k) = create(data_dir, names, &cert_path, &key_path)?;
            (vec![c], k)
        }
        Err(e) => {
            return Err(TlsError {
                path: cert_path,
                what: "cannot read the HTTPS certificate".into(),
                detail: e.to_string(),
                hint: "Check the file's permissions: the service's user must be able to read it"
                    .into(),
            });
        }
    };
    let first = chain.first().cloned();
    let certified = certified_key(chain, key_der).map_err(|detail| TlsError {
        path: key_path.clone(),
        what: "cannot use the HTTPS certificate with its key".into(),
        detail,
        hint: remake_hint(data_dir),
    })?;
    let slot = CertSlot {
        data_dir: data_dir.to_owned(),
        names: names.to_vec(),
        current: std::sync::RwLock::new((
            Arc::new(certified),
            CertInfo {
                fingerprint: String::new(),
                not_after: 0,
                cert_path: cert_path.clone(),
            },
        )),
    };
    let info = slot.info_of(first.as_ref())?;
    if let Ok(mut c) = slot.current.write() {
        c.1 = info.clone();
    }
    let now = unix_now();
    if info.not_after > 0 && info.not_after < now {
        log::warn!(
            "the HTTPS certificate {} expired on {} UTC; browsers will refuse it. {}",
            cert_path.display(),
            crate::model::format_utc(info.not_after),
            remake_hint(data_dir)
        );
    }
    let slot = Arc::new(slot);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            path: key_path.clone(),
            what: "cannot set up TLS".into(),
            detail: e.to_string(),
            hint: remake_hint(data_dir),
        })?
        .with_no_client_auth()
        .with_cert_resolver(slot.clone());
    // The web server behind the front speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), slot))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type Pair = (CertificateDer<'static>, PrivateKeyDer<'static>);

fn load(
    data_dir: &Path,
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let damaged = |detail: String| TlsError {
        path: cert_path.to_owned(),
        what: "the HTTPS certificate is damaged:".into(),
        detail,
        hint: remake_hint(data_dir),
    };
    // The whole chain (an uploaded certificate may come with intermediates).
    let cert: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| damaged(format!("no PEM certificate could be read from it ({e})")))?;
    if cert.is_empty() {
        return Err(damaged("no PEM certificate could be read from it".into()));
    }
    let key_pem = std::fs::read(key_path).map_err(|e| TlsError {
        path: key_path.to_owned(),
        what: "cannot read the HTTPS certificate's private key".into(),
        detail: e.to_string(),
        hint: if e.kind() == std::io::ErrorKind::NotFound {
            remake_hint(data_dir)
        } else {
            "Check the file's permissions: the service's user must be able to read it".into()
        },
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError {
        path: key_path.to_owned(),
        what: "the HTTPS certificate's private key is damaged:".into(),
        detail: format!("no PEM private key could be read from it ({e})"),
        hint: remake_hint(data_dir),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(key_path)
            && m.permissions().mode() & 0o077 != 0
        {
            log::warn!(
                "the HTTPS key {} is readable by others; fixing its mode to 0600",
                key_path.display()
            );
            let _ = std::fs::set_permissions(key_path, std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok((cert, key))
}

fn create(
    data_dir: &Path,
    names: &[String],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Pair, TlsError> {
    let fail = |detail: String| TlsError {
        path: cert_path.to_owned(),
        what: "cannot make the HTTPS certificate".into(),
        detail,
        hint: format!(
            "Check that the data directory {} is writable, or start with --no-https",
            data_dir.display()
        ),
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(format!("no key could be generated ({e})")))?;
    let mut sans: Vec<String> = names.to_vec();
    sans.push("127.0.0.1".into());
    sans.dedup();
    let mut params = rcgen::CertificateParams::new(sans)
        .map_err(|e| fail(format!("{names:?} are not usable host names ({e})")))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().map_or("postroom", String::as_str),
    );
    dn.push(rcgen::DnType::OrganizationName, "Postroom (self-signed)");
    params.distinguished_name = dn;
    // A day of slack for clocks that are a little behind.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = Duration::from_secs(u64::try_from(unix_now()).unwrap_or(0));
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(86_400));
    params.not_after = epoch + now + VALIDITY;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(format!("signing failed ({e})")))?;
    // Key first, certificate last: the certificate's presence means the pair is complete.
    write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600).map_err(|e| TlsError {
        path: key_path.to_owned(),
        ..fail(e.to_string())
    })?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    log::info!(
        "made a new self-signed HTTPS certificate {} for {}",
        cert_path.display(),
        names.join(", ")
    );
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| fail(format!("the new key cannot be used ({e})")))?;
    Ok((cert.der().clone(), key_der))
}

/// Writes `path` through a temporary file created with `mode` and renamed into place.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The running TLS front; `stop` ends it.
pub struct HttpsFront {
    /// The address actually bound (port 0 picks a free one).
    pub addr: SocketAddr,
    stop: smol::channel::Sender<()>,
    thread: JoinHandle<()>,
}

impl HttpsFront {
    /// Binds `listen` and starts the front on its own thread: each browser connection
    /// is decrypted and forwarded to `backend`, with its address recorded in `peers`.
    /// The error's `listen` is the HTTPS address (the caller words the hint).
    pub fn start(
        listen: &str,
        config: Arc<ServerConfig>,
        backend: SocketAddr,
        peers: PeerMap,
    ) -> Result<HttpsFront, ListenError> {
        let err = |detail: String| ListenError {
            listen: listen.to_owned(),
            detail,
        };
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| err(format!("not an address:port ({e})")))?;
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
        let addr = std_listener.local_addr().map_err(|e| err(e.to_string()))?;
        let listener = TcpListener::try_from(std_listener).map_err(|e| err(e.to_string()))?;
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let acceptor = TlsAcceptor::from(config);
        let thread = std::thread::Builder::new()
            .name("https".into())
            .spawn(move || run(listener, acceptor, backend, peers, stopped))
            .map_err(|e| err(format!("cannot start a thread: {e}")))?;
        log::info!("web: listening on https://{addr}/");
        Ok(HttpsFront { addr, stop, thread })
    }

    /// Stops accepting, cancels the open connections, and joins the thread.
    pub fn stop(self) {
        self.stop.close();
        let _ = self.thread.join();
    }
}

/// The front's thread: accept until told to stop, then cancel what is still open.
fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    peers: PeerMap,
    stopped: smol::channel::Receiver<()>,
) {
    let ex = smol::LocalExecutor::new();
    let active = Arc::new(AtomicUsize::new(0));
    let conns = std::cell::RefCell::new(Vec::<smol::Task<()>>::new());
    smol::block_on(ex.run(async {
        let mut warned: Option<Instant> = None;
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((tcp, browser)) => {
                        let count = Count::new(&active);
                        if count.0 > MAX_CONNECTIONS {
                            if warned.is_none_or(|w| w.elapsed() >= Duration::from_secs(60)) {
                                log::warn!(
                                    "https: {MAX_CONNECTIONS} connections open; closing new ones until some end"
                                );
                                warned = Some(Instant::now());
                            }
                            drop(tcp);
                            continue;
                        }
                        let task = ex.spawn(connection(
                            tcp,
                            browser,
                            acceptor.clone(),
                            backend,
                            peers.clone(),
                            count,
                        ));
                        let mut c = conns.borrow_mut();
                        c.retain(|t| !t.is_finished());
                        c.push(task);
                    }
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        log::warn!("https: cannot accept a connection: {e}");
                        smol::Timer::after(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        accept.or(async { while stopped.recv().await.is_ok() {} }).await;
        drop(listener);
        let open: Vec<smol::Task<()>> = conns.borrow_mut().drain(..).collect();
        for t in open {
            t.cancel().await;
        }
    }));
}

/// One open connection, counted while it lives.
struct Count(usize, Arc<AtomicUsize>);

impl Count {
    fn new(active: &Arc<AtomicUsize>) -> Count {
        let n = active.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        Count(n, active.clone())
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The map entry of one forwarded connection, removed when the connection ends (or is
/// cancelled).
struct PeerEntry(u16, PeerMap);

impl Drop for PeerEntry {
    fn drop(&mut self) {
        if let Ok(mut m) = self.1.lock() {
            m.remove(&self.0);
        }
    }
}

async fn connection(
    tcp: TcpStream,
    browser: SocketAddr,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    peers: PeerMap,
    _count: Count,
) {
    if let Err(e) = forward(tcp, browser, acceptor, backend, peers).await {
        log::debug!("https: {browser}: {e}");
    }
}

async fn forward(
    tcp: TcpStream,
    browser: SocketAddr,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    peers: PeerMap,
) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let tls = acceptor
        .accept(tcp)
        .or(async {
            smol::Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS handshake within 10 s",
            ))
        })
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
    let back = TcpStream::connect(backend)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("web server {backend}: {e}")))?;
    let _ = back.set_nodelay(true);
    let port = back.local_addr()?.port();
    let _entry = {
        let mut m = peers
            .lock()
            .map_err(|_| std::io::Error::other("the peer map is poisoned"))?;
        m.insert(port, browser);
        PeerEntry(port, peers.clone())
    };
    let (mut tls_r, mut tls_w) = smol::io::split(tls);
    let (mut back_r, mut back_w) = (back.clone(), back);
    // Web server -> browser: when the server is done, so is the connection.
    let down = async {
        let r = smol::io::copy(&mut back_r, &mut tls_w).await;
        let _ = tls_w.close().await;
        r.map(|_| ())
    };
    // Browser -> web server: when the browser stops sending, tell the server and keep
    // sending its answer; on an error, give up on both.
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match tls_r.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                // Closed without close_notify: the same as an end for a browser.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            back_w.write_all(buf.get(..n).unwrap_or_default()).await?;
        }
        let _ = back_w.close().await;
        std::future::pending::<std::io::Result<()>>().await
    };
    down.or(up).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_rustls::TlsConnector;
    use futures_rustls::pki_types::ServerName;
    use futures_rustls::rustls::{ClientConfig, RootCertStore};
    use std::io::{Read, Write};

    fn names() -> Vec<String> {
        vec!["postroom.local".into(), "localhost".into()]
    }

    /// A client that trusts exactly this certificate, with full webpki checks (names,
    /// validity, key usage).
    fn client(cert_path: &Path) -> TlsConnector {
        let pem = std::fs::read(cert_path).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&pem).unwrap())
            .unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    #[test]
    fn the_certificate_is_made_once_and_kept() {
        let t = tempfile::tempdir().unwrap();
        let (_, first) = load_or_create(t.path(), &names()).unwrap();
        let (_, again) = load_or_create(t.path(), &names()).unwrap();
        let (first, again) = (first.info(), again.info());
        assert_eq!(first, again);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(first.fingerprint, first.fingerprint.to_uppercase());
        let der = CertificateDer::from_pem_file(&first.cert_path).unwrap();
        assert_eq!(first.fingerprint, Fingerprint::of(der.as_ref()).to_string());
        let years = (first.not_after - unix_now()) / (365 * 86_400);
        assert!((9..=10).contains(&years), "{years}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert!(!t.path().join("https-key.pem.tmp").exists());
    }

    #[test]
    fn damaged_files_are_errors_that_say_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        load_or_create(t.path(), &names()).unwrap();
        let key = std::fs::read(t.path().join(KEY_FILE)).unwrap();
        std::fs::write(t.path().join(KEY_FILE), b"not a key").unwrap();
        let e = load_or_create(t.path(), &names()).unwrap_err().to_string();
        assert!(
            e.contains("private key is damaged") && e.contains(KEY_FILE),
            "{e}"
        );
        assert!(e.contains("Delete both"), "{e}");
        // Another certificate's key does not fit.
        let other = tempfile::tempdir().unwrap();
        load_or_create(other.path(), &names()).unwrap();
        std::fs::copy(other.path().join(KEY_FILE), t.path().join(KEY_FILE)).unwrap();
        let e = load_or_create(t.path(), &names()).unwrap_err().to_string();
        assert!(
            e.contains("cannot use the HTTPS certificate with its key"),
            "{e}"
        );
        std::fs::write(t.path().join(KEY_FILE), key).unwrap();
        std::fs::write(t.path().join(CERT_FILE), b"-----BEGIN GARBAGE").unwrap();
        let e = load_or_create(t.path(), &names()).unwrap_err().to_string();
        assert!(
            e.contains("certificate is damaged") && e.contains(CERT_FILE),
            "{e}"
        );
        std::fs::remove_file(t.path().join(CERT_FILE)).unwrap();
        std::fs::remove_file(t.path().join(KEY_FILE)).unwrap();
        load_or_create(t.path(), &names()).unwrap();
        std::fs::remove_file(t.path().join(KEY_FILE)).unwrap();
        let e = load_or_create(t.path(), &names()).unwrap_err().to_string();
        assert!(
            e.contains("private key") && e.contains("Delete both"),
            "{e}"
        );
    }

    #[test]
    fn an_uploaded_pair_replaces_the_certificate_and_a_wrong_key_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let (_, slot) = load_or_create(t.path(), &names()).unwrap();
        let before = slot.info();
        // Another pair, as an admin would upload it.
        let other = tempfile::tempdir().unwrap();
        let (_, other_slot) = load_or_create(other.path(), &names()).unwrap();
        let cert = std::fs::read(other.path().join(CERT_FILE)).unwrap();
        let key = std::fs::read(other.path().join(KEY_FILE)).unwrap();
        let own_key = std::fs::read(t.path().join(KEY_FILE)).unwrap();
        // A key of another certificate: refused, nothing written, nothing swapped.
        let e = slot.install_pem(&cert, &own_key).unwrap_err().to_string();
        assert!(e.contains("cannot be used together"), "{e}");
        assert_eq!(slot.info(), before);
        assert_eq!(std::fs::read(t.path().join(KEY_FILE)).unwrap(), own_key);
        let e = slot.install_pem(b"junk", &key).unwrap_err().to_string();
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
        // The right pair: presented at once, and kept for the next start.
        let info = slot.install_pem(&cert, &key).unwrap();
        assert_eq!(info.fingerprint, other_slot.info().fingerprint);
        assert_eq!(slot.info(), info);
        let (_, reloaded) = load_or_create(t.path(), &names()).unwrap();
        assert_eq!(reloaded.info().fingerprint, info.fingerprint);
        // Regenerating makes a new one, kept too.
        let fresh = slot.regenerate().unwrap();
        assert_ne!(fresh.fingerprint, info.fingerprint);
        assert_ne!(fresh.fingerprint, before.fingerprint);
        let (_, reloaded) = load_or_create(t.path(), &names()).unwrap();
        assert_eq!(reloaded.info().fingerprint, fresh.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A backend for one connection: once the first bytes arrive it reports the
    /// connection's remote port (the front's local one) and waits for the go, then
    /// echoes the bytes back and closes.
    fn backend() -> (
        SocketAddr,
        std::sync::mpsc::Receiver<u16>,
        std::sync::mpsc::Sender<()>,
        JoinHandle<()>,
    ) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let (mut s, peer) = l.accept().unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            tx.send(peer.port()).unwrap();
            wait.recv().unwrap();
            s.write_all(&buf[..n]).unwrap();
        });
        (addr, rx, go, t)
    }

    #[test]
    fn the_backend_learns_the_browsers_address_while_the_connection_lasts() {
        let t = tempfile::tempdir().unwrap();
        let (config, info) = load_or_create(t.path(), &names()).unwrap();
        let (backend_addr, ports, go, backend) = backend();
        let peers = PeerMap::default();
        let front = HttpsFront::start("127.0.0.1:0", config, backend_addr, peers.clone()).unwrap();
        let connector = client(&info.info().cert_path);
        smol::block_on(async {
            let tcp = TcpStream::connect(front.addr).await.unwrap();
            let me = tcp.local_addr().unwrap();
            // The certificate is valid for the names it was made for.
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"hello\n").await.unwrap();
            tls.flush().await.unwrap();
            let port = smol::unblock(move || ports.recv().unwrap()).await;
            assert_eq!(peers.lock().unwrap().get(&port), Some(&me));
            go.send(()).unwrap();
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello\n");
        });
        backend.join().unwrap();
        // The entry goes when the connection ends.
        let until = Instant::now() + Duration::from_secs(30);
        while !peers.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(peers.lock().unwrap().is_empty());
        front.stop();
    }

    #[test]
    fn stop_cancels_open_connections() {
        let t = tempfile::tempdir().unwrap();
        let (config, info) = load_or_create(t.path(), &names()).unwrap();
        // A backend that accepts and never answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peers = PeerMap::default();
        let front = HttpsFront::start(
            "127.0.0.1:0",
            config,
            l.local_addr().unwrap(),
            peers.clone(),
        )
        .unwrap();
        let connector = client(&info.info().cert_path);
        // One connection mid-request, one that never starts its handshake.
        let idle = std::net::TcpStream::connect(front.addr).unwrap();
        let mut tls = smol::block_on(async {
            let tcp = TcpStream::connect(front.addr).await.unwrap();
            let name = ServerName::try_from("postroom.local").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            tls.flush().await.unwrap();
            tls
        });
        let (_held, _) = l.accept().unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while peers.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < until,
                "the front never connected to the backend"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let addr = front.addr;
        front.stop();
        assert!(peers.lock().unwrap().is_empty());
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "no longer accepting"
        );
        // Both connections were closed (reading returns instead of waiting for ever).
        let mut buf = Vec::new();
        let _ = smol::block_on(tls.read_to_end(&mut buf));
        let mut idle = idle;
        let _ = idle.read_to_end(&mut buf);
    }
}

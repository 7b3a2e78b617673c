//! Network connections for the mail protocols: TCP with timeouts, TLS with rustls (ring
//! provider), STARTTLS upgrades, and the certificate policy.
//!
//! Owns: DNS + TCP connect, the TLS client configuration (system roots where present plus
//! the bundled Mozilla roots, or exactly one pinned certificate for a self-signed office
//! server), the certificate facts shown by `account check`, and errors that say which
//! server failed and what to do. Never a silent "accept anything".
//! Must not: speak a mail protocol (IMAP/POP3/SMTP live in `fetch` and `outbox`).

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use futures_rustls::rustls::client::WebPkiServerVerifier;
use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::crypto::{CryptoProvider, ring as ring_provider};
use futures_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

pub use crate::model::Security;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    /// Accepts `AB:CD:...`, `abcd...` or with spaces; 32 bytes.
    pub fn parse(s: &str) -> Option<Fingerprint> {
        let hex: Vec<u8> = s
            .bytes()
            .filter(|b| !matches!(b, b':' | b' ' | b'-'))
            .collect();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            *out.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&parts.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Where to connect and how to trust the server.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Trust exactly this certificate (and nothing else) for this server.
    pub pinned: Option<Fingerprint>,
    pub timeout: Duration,
}

/// A connection failed; says which server, what happened, and what to try.
#[derive(Debug)]
pub enum NetError {
    Dns {
        host: String,
        detail: String,
    },
    Connect {
        host: String,
        port: u16,
        detail: String,
    },
    Timeout {
        host: String,
        port: u16,
        what: &'static str,
        secs: u64,
    },
    Tls {
        host: String,
        port: u16,
        detail: String,
        hint: String,
        seen: Option<Fingerprint>,
    },
    Io {
        host: String,
        port: u16,
        detail: String,
    },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Dns { host, detail } => write!(
                f,
                "cannot find the server {host:?} in DNS ({detail}). Check the host name for typos and that this machine has a working network"
            ),
            NetError::Connect { host, port, detail } => write!(
                f,
                "cannot connect to {host}:{port} ({detail}). Check the host and port, and that no firewall blocks it"
            ),
            NetError::Timeout {
                host,
                port,
                what,
                secs,
            } => write!(
                f,
                "{host}:{port} did not answer within {secs} s while {what}. The server may be down or the port wrong"
            ),
            NetError::Tls {
                host,
                port,
                detail,
                hint,
                seen,
            } => {
                write!(f, "TLS with {host}:{port} failed: {detail}.")?;
                if let Some(fp) = seen {
                    write!(f, " The server's certificate has SHA-256 fingerprint {fp}.")?;
                }
                write!(f, " {hint}")
            }
            NetError::Io { host, port, detail } => {
                write!(f, "connection to {host}:{port} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for NetError {}

/// The plain or encrypted byte stream of a mail connection.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conn::Plain(_) => f.write_str("Conn::Plain"),
            Conn::Tls(_) => f.write_str("Conn::Tls"),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// `TLS 1.3, TLS13_AES_256_GCM_SHA384` on a TLS connection.
    pub fn tls_summary(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => {
                let c = s.get_ref().1;
                let version = match c.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
                    Some(v) => format!("{v:?}"),
                    None => "TLS".to_owned(),
                };
                let suite = c
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                Some(format!("{version}, {suite}"))
            }
        }
    }

    /// The server's certificate (DER), on a TLS connection.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec()),
        }
    }
}

/// Runs a future with a deadline.
pub async fn with_timeout<T>(
    ep: &Endpoint,
    what: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, NetError> {
    use smol::future::FutureExt;
    let secs = ep.timeout.as_secs();
    async { Ok(fut.await) }
        .or(async {
            smol::Timer::after(ep.timeout).await;
            Err(NetError::Timeout {
                host: ep.host.clone(),
                port: ep.port,
                what,
                secs,
            })
        })
        .await
}

/// The host without the brackets of an IPv6 literal (`[::1]` -> `::1`), as DNS
/// resolution and TLS server names want it.
pub fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// DNS and TCP, with the endpoint's timeout; tries every address the name has.
pub async fn connect_tcp(ep: &Endpoint) -> Result<TcpStream, NetError> {
    let addrs = with_timeout(
        ep,
        "looking up the host name",
        smol::net::resolve((bare_host(&ep.host), ep.port)),
    )
    .await?
    .map_err(|e| NetError::Dns {
        host: ep.host.clone(),
        detail: e.to_string(),
    })?;
    let mut last = String::from("no address found");
    for addr in addrs {
        match with_timeout(ep, "connecting", TcpStream::connect(addr)).await? {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(NetError::Connect {
        host: ep.host.clone(),
        port: ep.port,
        detail: last,
    })
}

/// The ring crypto provider (the one TLS stack in the binary).
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(ring_provider::default_provider()))
        .clone()
}

/// System roots where present, plus the bundled Mozilla roots.
pub fn root_store() -> Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        log::debug!(
            "TLS roots: {} bundled + {added} from the system",
            webpki_roots::TLS_SERVER_ROOTS.len()
        );
        Arc::new(roots)
    })
    .clone()
}

/// Verifies the server certificate (webpki against the roots, or the pin) and remembers
/// what the server presented, so errors and `account check` can show its fingerprint.
#[derive(Debug)]
struct Verifier {
    pinned: Option<Fingerprint>,
    webpki: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Fingerprint>>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of(end_entity.as_ref());
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fp);
        }
        match self.pinned {
            Some(pin) if pin == fp => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::General(
                "the certificate is not the pinned one".into(),
            )),
            None => {
                self.webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_error(ep: &Endpoint, e: &std::io::Error, seen: Option<Fingerprint>) -> NetError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    tls_error_of(ep, inner, &e.to_string(), seen)
}

fn tls_error_of(
    ep: &Endpoint,
    inner: Option<&rustls::Error>,
    e: &str,
    seen: Option<Fingerprint>,
) -> NetError {
    let (detail, hint) = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => (
            format!("the server's certificate is not trusted ({c:?})"),
            match c {
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } =>
                    format!("The certificate is for another name than {:?}; use the host name the certificate was made for.", ep.host),
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } =>
                    "The certificate has expired; renew it on the server, and check this machine's clock.".into(),
                _ => "If this is your office's own server with a self-signed certificate, pin the fingerprint above in the account's settings (--pin-cert).".into(),
            },
        ),
        Some(rustls::Error::General(g)) if g.contains("pinned") => (
            "the server's certificate is not the pinned one".into(),
            "If the server got a new certificate, pin its new fingerprint (shown above); otherwise someone may be intercepting the connection.".into(),
        ),
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::InappropriateMessage { .. }) => (
            format!("the server did not answer in TLS ({e})"),
            format!("Port {} may be a plain-text port: try security \"starttls\" or \"none\", or the TLS port (993 for IMAP, 995 for POP3).", ep.port),
        ),
        Some(other) => (other.to_string(), "Check the server's TLS configuration.".into()),
        None => (e.to_string(), "The server closed the connection during the TLS handshake; check the port and security setting.".into()),
    };
    NetError::Tls {
        host: ep.host.clone(),
        port: ep.port,
        detail,
        hint,
        seen,
    }
}

/// The fingerprint a verifier saw, readable after a failed handshake.
type Seen = Arc<Mutex<Option<Fingerprint>>>;

fn verifier(ep: &Endpoint) -> Result<(Arc<Verifier>, Seen), NetError> {
    let webpki = WebPkiServerVerifier::builder_with_provider(root_store(), provider())
        .build()
        .map_err(|e| NetError::Tls {
            host: ep.host.clone(),
            port: ep.port,
            detail: e.to_string(),
            hint: String::new(),
            seen: None,
        })?;
    let seen = Arc::new(Mutex::new(None));
    let verifier = Arc::new(Verifier {
        pinned: ep.pinned,
        webpki,
        seen: seen.clone(),
    });
    Ok((verifier, seen))
}

fn server_name(ep: &Endpoint) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(bare_host(&ep.host).to_owned()).map_err(|_| NetError::Tls {
        host: ep.host.clone(),
        port: ep.port,
        detail: format!("{:?} is not a valid host name for TLS", ep.host),
        hint: "Use the server's DNS name or IP address.".into(),
        seen: None,
    })
}

/// Checks a certificate chain (DER, server's own certificate first) a TLS library that
/// is not ours negotiated (the SMTP client), with exactly the policy of `tls_handshake`:
/// the system and bundled roots with the host name, or the one pinned certificate. Its
/// callers send nothing but EHLO before this passes. Returns the server's fingerprint.
pub fn verify_chain(ep: &Endpoint, chain: &[Vec<u8>]) -> Result<Fingerprint, NetError> {
    let (verifier, _) = verifier(ep)?;
    let Some((end, rest)) = chain.split_first() else {
        return Err(NetError::Tls {
            host: ep.host.clone(),
            port: ep.port,
            detail: "the server presented no certificate".into(),
            hint: "Check the server's TLS configuration.".into(),
            seen: None,
        });
    };
    let fp = Fingerprint::of(end);
    let end = CertificateDer::from(end.as_slice());
    let rest: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let name = server_name(ep)?;
    match verifier.verify_server_cert(&end, &rest, &name, &[], UnixTime::now()) {
        Ok(_) => Ok(fp),
        Err(e) => Err(tls_error_of(ep, Some(&e), &e.to_string(), Some(fp))),
    }
}

/// Wraps a connected stream in TLS, verifying the server per the endpoint's policy.
pub async fn tls_handshake(ep: &Endpoint, tcp: TcpStream) -> Result<Conn, NetError> {
    let (verifier, seen) = verifier(ep)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls {
            host: ep.host.clone(),
            port: ep.port,
            detail: e.to_string(),
            hint: String::new(),
            seen: None,
        })?
        .dangerous() // our own verifier: webpki, or exactly one pinned certificate
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = server_name(ep)?;
    let connector = TlsConnector::from(Arc::new(config));
    match with_timeout(ep, "negotiating TLS", connector.connect(name, tcp)).await? {
        Ok(s) => Ok(Conn::Tls(Box::new(s))),
        Err(e) => {
            let fp = seen.lock().ok().and_then(|s| *s);
            Err(tls_error(ep, &e, fp))
        }
    }
}

/// Connects per the endpoint: plain, or implicit TLS. STARTTLS is the protocol's job
/// (it must read the greeting and ask first); it then calls `tls_handshake`.
pub async fn connect(ep: &Endpoint) -> Result<Conn, NetError> {
    let tcp = connect_tcp(ep).await?;
    match ep.security {
        Security::Tls => tls_handshake(ep, tcp).await,
        Security::None | Security::StartTls => Ok(Conn::Plain(tcp)),
    }
}

/// What `account check` shows about a server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
    pub fingerprint: Fingerprint,
}

/// Reads subject, issuer and expiry of a DER certificate (x509-cert); the fingerprint is
/// always there, the names when the certificate can be decoded.
pub fn cert_facts(der: &[u8]) -> CertFacts {
    use x509_cert::der::Decode;
    let fingerprint = Fingerprint::of(der);
    match x509_cert::Certificate::from_der(der) {
        Ok(c) => {
            let tbs = c.tbs_certificate();
            CertFacts {
                subject: tbs.subject().to_string(),
                issuer: tbs.issuer().to_string(),
                not_after: i64::try_from(tbs.validity().not_after.to_unix_duration().as_secs())
                    .unwrap_or(i64::MAX),
                fingerprint,
            }
        }
        Err(e) => CertFacts {
            subject: format!("(undecodable: {e})"),
            issuer: String::new(),
            not_after: 0,
            fingerprint,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("::1"), "::1");
        assert_eq!(bare_host("imap.example.com"), "imap.example.com");
        assert!(ServerName::try_from(bare_host("[::1]").to_owned()).is_ok());
    }

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let fp = Fingerprint([0xab; 32]);
        let s = fp.to_string();
        assert_eq!(s.len(), 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&s), Some(fp));
        assert_eq!(Fingerprint::parse(&"ab".repeat(32)), Some(fp));
        assert_eq!(Fingerprint::parse("ab:cd"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }
}

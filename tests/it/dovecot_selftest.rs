//! Proves the Dovecot harness (`tests/support/dovecot.rs`) does what the fetcher tests
//! rely on: a real server per test, delivery by APPEND, counts, flags from "another
//! client", a UIDVALIDITY reset, quick IDLE wake-ups, a certificate that rustls accepts
//! on every TLS port, and no process left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::dovecot::{self, Dovecot};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "support";
// A space and a quote: the harness must quote it for LOGIN and POP3 must take it whole.
const PASS: &str = "s3cret \"pass";

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: Customer {n} <c{n}@example.com>\r\nTo: support@example.com\r\n\
         Subject: selftest {n}\r\nMessage-ID: <selftest-{n}@example.com>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn ids(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range
        .map(|n| format!("<selftest-{n}@example.com>"))
        .collect()
}

/// A raw line-based connection for the checks the harness does not offer.
struct Raw<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Raw<S> {
    fn new(s: S) -> Self {
        Raw {
            r: BufReader::new(s),
        }
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.r.read_line(&mut l).unwrap();
        assert!(n > 0, "server closed the connection");
        l.trim_end().to_string()
    }
    fn send(&mut self, s: &str) {
        let w = self.r.get_mut();
        w.write_all(s.as_bytes()).unwrap();
        w.write_all(b"\r\n").unwrap();
        w.flush().unwrap();
    }
    /// Sends `tag cmd` and returns all lines up to and including the tagged one.
    fn cmd(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.send(&format!("{tag} {cmd}"));
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }
}

fn plain(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn imap_login(d: &Dovecot) -> Raw<TcpStream> {
    let mut c = Raw::new(plain(d.imap_port));
    assert!(c.line().starts_with("* OK"));
    let login = c.cmd("a", &format!("LOGIN {USER} \"s3cret \\\"pass\""));
    assert!(login.last().unwrap().starts_with("a OK"), "{login:?}");
    c
}

#[test]
fn delivers_counts_lists_and_flags_like_another_client() {
    let d = Dovecot::start();
    d.add_user(USER, PASS);
    let uids: Vec<u32> = (1..=3)
        .map(|n| d.append(USER, PASS, "INBOX", &mail(n)))
        .collect();
    assert_eq!(uids, [1, 2, 3]);
    assert_eq!(d.count(USER, PASS, "INBOX"), 3);
    assert_eq!(d.message_ids(USER, PASS, "INBOX"), ids(1..=3));

    assert_eq!(d.append_many(USER, PASS, "Archive", (4..=10).map(mail)), 7);
    assert_eq!(d.count(USER, PASS, "Archive"), 7);
    assert_eq!(d.message_ids(USER, PASS, "Archive"), ids(4..=10));
    assert_eq!(d.folders(USER, PASS), ["Archive", "INBOX"]);
    assert_eq!(
        d.append(USER, PASS, "Archive", &mail(11)),
        8,
        "existing folder is reused"
    );

    let (messages, octets) = d.pop3_stat(USER, PASS);
    assert_eq!(messages, 3);
    assert!(octets > 0);

    d.flag_deleted(USER, PASS, "INBOX", 2);
    d.flag_seen(USER, PASS, "INBOX", 1);
    assert_eq!(
        d.count(USER, PASS, "INBOX"),
        3,
        "\\Deleted is set, never expunged"
    );
    let flags = d.flags(USER, PASS, "INBOX");
    assert_eq!(flags.len(), 3);
    assert!(flags[0].iter().any(|f| f == "\\Seen"), "{flags:?}");
    assert!(flags[1].iter().any(|f| f == "\\Deleted"), "{flags:?}");
    assert!(
        !flags[2].iter().any(|f| f == "\\Deleted" || f == "\\Seen"),
        "{flags:?}"
    );
}

/// TLS with only the generated certificate as a root: proves CN/SAN/CA:FALSE suit
/// webpki, and that `cert_sha256` is the pin of what the server presents.
fn tls_config(d: &Dovecot) -> Arc<ClientConfig> {
    let cert = CertificateDer::from_pem_file(&d.cert_pem).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls(d: &Dovecot, name: &str, tcp: TcpStream) -> Raw<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let conn = ClientConnection::new(tls_config(d), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    let der = s.conn.peer_certificates().unwrap()[0].to_vec();
    let fp = ring::digest::digest(&ring::digest::SHA256, &der);
    assert_eq!(
        fp.as_ref(),
        d.cert_sha256,
        "cert_sha256 pins the presented certificate"
    );
    Raw::new(s)
}

#[test]
fn every_tls_port_and_starttls_present_the_generated_certificate() {
    let d = Dovecot::start();
    d.add_user(USER, PASS);
    let fp_hex: String = d.cert_sha256.iter().map(|b| format!("{b:02x}")).collect();
    let der = CertificateDer::from_pem_file(&d.cert_pem).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    assert_eq!(digest.as_ref(), d.cert_sha256, "fingerprint {fp_hex}");

    // IMAPS, by name and by IP.
    for name in ["localhost", "127.0.0.1"] {
        let mut c = tls(&d, name, plain(d.imaps_port));
        assert!(c.line().starts_with("* OK"));
        let login = c.cmd("a", &format!("LOGIN {USER} \"s3cret \\\"pass\""));
        assert!(login.last().unwrap().starts_with("a OK"), "{login:?}");
    }

    // IMAP STARTTLS on the plain port.
    let mut c = Raw::new(plain(d.imap_port));
    assert!(c.line().starts_with("* OK"));
    let caps = c.cmd("a", "CAPABILITY");
    assert!(caps[0].contains(" STARTTLS"), "{caps:?}");
    let ok = c.cmd("b", "STARTTLS");
    assert!(ok.last().unwrap().starts_with("b OK"), "{ok:?}");
    let mut c = tls(&d, "localhost", c.r.into_inner());
    let caps = c.cmd("c", "CAPABILITY");
    assert!(!caps[0].contains("STARTTLS"), "{caps:?}");
    assert!(
        c.cmd("d", &format!("LOGIN {USER} \"s3cret \\\"pass\""))
            .last()
            .unwrap()
            .starts_with("d OK")
    );

    // POP3S, and POP3 STLS on the plain port.
    let mut p = tls(&d, "localhost", plain(d.pop3s_port));
    assert!(p.line().starts_with("+OK"));
    p.send("QUIT");
    assert!(p.line().starts_with("+OK"));
    let mut p = Raw::new(plain(d.pop3_port));
    assert!(p.line().starts_with("+OK"));
    p.send("STLS");
    assert!(p.line().starts_with("+OK"));
    let mut p = tls(&d, "localhost", p.r.into_inner());
    p.send(&format!("USER {USER}"));
    assert!(p.line().starts_with("+OK"));
    p.send(&format!("PASS {PASS}"));
    assert!(p.line().starts_with("+OK"));
}

#[test]
fn idle_wakes_within_a_second_and_uidvalidity_resets() {
    let d = Dovecot::start();
    d.add_user(USER, PASS);
    d.append_many(USER, PASS, "INBOX", (1..=2).map(mail));

    let mut idle = imap_login(&d);
    let sel = idle.cmd("s", "SELECT INBOX");
    assert!(sel.iter().any(|l| l == "* 2 EXISTS"), "{sel:?}");
    idle.send("i IDLE");
    assert!(idle.line().starts_with("+ "));
    let t = Instant::now();
    d.append(USER, PASS, "INBOX", &mail(3));
    loop {
        let l = idle.line();
        if l == "* 3 EXISTS" {
            break;
        }
    }
    let latency = t.elapsed();
    eprintln!("dovecot selftest: IDLE saw the APPEND after {latency:?}");
    // Not a timing assertion on speed, a guard against the 30 s default poll.
    assert!(latency < Duration::from_secs(10), "IDLE took {latency:?}");

    let old = d.uidvalidity(USER, PASS, "INBOX");
    let new = d.reset_uidvalidity(USER, "INBOX");
    assert_ne!(old, new);
    assert_eq!(d.uidvalidity(USER, PASS, "INBOX"), new);
    assert_eq!(d.count(USER, PASS, "INBOX"), 3, "messages are kept");
    assert_eq!(d.message_ids(USER, PASS, "INBOX"), ids(1..=3));
    // The session that had INBOX selected is told to go away when it next syncs.
    d.append(USER, PASS, "INBOX", &mail(4));
    let bye = loop {
        let l = idle.line();
        if l.starts_with("* BYE") {
            break l;
        }
    };
    eprintln!("dovecot selftest: the IDLE session got {bye:?}");
    // STATUS (served from Dovecot's list index) agrees with SELECT.
    let mut c = imap_login(&d);
    let status = c.cmd("a", "STATUS INBOX (UIDVALIDITY MESSAGES)");
    assert!(
        status[0].contains(&format!("UIDVALIDITY {new}")),
        "{status:?} want {new}"
    );
}

#[test]
fn drop_stops_every_process_and_removes_the_dir() {
    let d = Dovecot::start();
    d.add_user(USER, PASS);
    // A logged-in session keeps an imap process (and the login/auth chain) busy.
    let session = imap_login(&d);
    let name = d.instance_name().to_string();
    let master = d.master_pid();
    let dir = d.dir().to_path_buf();
    assert!(
        dovecot::instance_pids(&name).len() >= 4,
        "{:?}",
        dovecot::instance_pids(&name)
    );
    drop(d);
    assert_eq!(dovecot::instance_pids(&name), Vec::<u32>::new());
    let alive = std::fs::read_to_string(format!("/proc/{master}/cmdline")).unwrap_or_default();
    assert!(
        !alive.contains("dovecot"),
        "master {master} still runs: {alive}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    drop(session);
}

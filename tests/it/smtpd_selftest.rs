//! Proves the SMTP harness (`tests/support/smtpd.rs`) does what the outgoing-mail tests
//! rely on, with a raw SMTP client written here (not the product's): STARTTLS and AUTH
//! enforced on submission, implicit TLS, the open relay, byte-exact spooling, every
//! fault kind, routing into a Maildir and the transcript.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::dovecot::Dovecot;
use crate::smtpd::{Fault, Smtpd, Stage};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "agent@example.org";
// A space and non-ASCII: credentials travel base64-encoded, whole.
const PASS: &str = "s3cret pässword";
const WAIT: Duration = Duration::from_secs(10);

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A minimal SMTP client: one command, one (possibly multi-line) reply.
struct Client {
    r: BufReader<Stream>,
    /// The greeting (or whatever the server said first).
    greeting: String,
}

impl Client {
    fn plain(port: u16) -> Client {
        Client::start(Stream::Plain(tcp(port)))
    }

    /// Implicit TLS, checking the presented certificate against the harness's pin.
    fn tls(d: &Smtpd, port: u16) -> Client {
        Client::start(Stream::Tls(Box::new(handshake(d, tcp(port)))))
    }

    fn start(s: Stream) -> Client {
        let mut c = Client {
            r: BufReader::new(s),
            greeting: String::new(),
        };
        c.greeting = c.reply();
        c
    }

    /// Every line of one reply, joined by `\n`; `""` when the server closed.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            match self.r.read_line(&mut l) {
                Ok(0) => return lines.join("\n"),
                Ok(_) => {}
                Err(e) if closed_kind(e.kind()) => return lines.join("\n"),
                Err(e) => panic!("read: {e} after {lines:?}"),
            }
            let l = l.trim_end_matches(['\r', '\n']).to_string();
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let w = self.r.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends `line` and asserts the reply starts with `code`.
    fn ok(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with(code), "{line:?} -> {r:?}, expected {code}");
        r
    }

    fn starttls(mut self, d: &Smtpd) -> Client {
        self.ok("STARTTLS", "220");
        assert!(self.r.buffer().is_empty(), "data after the 220 to STARTTLS");
        let Stream::Plain(tcp) = self.r.into_inner() else {
            panic!("STARTTLS on a TLS stream")
        };
        Client {
            r: BufReader::new(Stream::Tls(Box::new(handshake(d, tcp)))),
            greeting: String::new(),
        }
    }

    fn auth_plain(&mut self, user: &str, pass: &str) -> String {
        self.cmd(&format!(
            "AUTH PLAIN {}",
            b64(format!("\0{user}\0{pass}").as_bytes())
        ))
    }

    /// MAIL, RCPT and DATA with `content` sent as given (already dot-stuffed, ending
    /// in CRLF); returns the final reply.
    fn mail(&mut self, from: &str, to: &[&str], content: &[u8]) -> String {
        self.ok(&format!("MAIL FROM:<{from}>"), "250");
        for t in to {
            self.ok(&format!("RCPT TO:<{t}>"), "250");
        }
        self.mail_data(content)
    }

    /// DATA with `content` as given, then the final dot; returns the final reply.
    fn mail_data(&mut self, content: &[u8]) -> String {
        self.ok("DATA", "354");
        self.send(content);
        self.send(b".\r\n");
        self.reply()
    }

    /// True when the server closed the connection (nothing more to read).
    fn closed(&mut self) -> bool {
        let mut buf = Vec::new();
        match self.r.read_to_end(&mut buf) {
            Ok(_) => buf.is_empty(),
            Err(e) => closed_kind(e.kind()),
        }
    }
}

/// A reset, or a TLS peer gone without close_notify.
fn closed_kind(k: io::ErrorKind) -> bool {
    matches!(
        k,
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
    )
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// TLS trusting only the harness's certificate, by name; asserts `cert_sha256` pins it.
fn handshake(d: &Smtpd, tcp: TcpStream) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(d.cert_pem()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    let der = s.conn.peer_certificates().unwrap()[0].to_vec();
    let fp: String = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(fp, d.cert_sha256(), "cert_sha256 pins the presented cert");
    s
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Support <support@example.org>\r\nTo: c{n}@example.com\r\n\
         Subject: [#{n}] selftest\r\nMessage-ID: <smtpd-selftest-{n}@example.org>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// Submission after STARTTLS and AUTH, ready for MAIL.
fn submission(d: &Smtpd) -> Client {
    let mut c = Client::plain(d.submission_port());
    c.ok("EHLO client.example.org", "250");
    let mut c = c.starttls(d);
    c.ok("EHLO client.example.org", "250");
    c.ok(&format!("AUTH LOGIN {}", b64(USER.as_bytes())), "334");
    c.ok(&b64(PASS.as_bytes()), "235");
    c
}

#[test]
fn submission_with_starttls_and_auth_delivers_and_records_user_and_tls() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    let mut c = Client::plain(d.submission_port());
    assert!(c.greeting.starts_with("220 "), "{:?}", c.greeting);
    let ehlo = c.ok("EHLO client.example.org", "250");
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");

    let mut c = c.starttls(&d);
    let ehlo = c.ok("EHLO client.example.org", "250");
    assert!(ehlo.contains("AUTH LOGIN PLAIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    // AUTH LOGIN with the standard challenges, username sent after the prompt.
    assert_eq!(c.cmd("AUTH LOGIN"), format!("334 {}", b64(b"Username:")));
    assert_eq!(
        c.cmd(&b64(USER.as_bytes())),
        format!("334 {}", b64(b"Password:"))
    );
    c.ok(&b64(PASS.as_bytes()), "235 2.7.0");
    let done = c.mail("support@example.org", &["c1@example.com"], &message(1));
    assert!(done.starts_with("250 2.0.0 OK queued as 000001"), "{done}");
    c.ok("QUIT", "221");

    let got = d.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, "support@example.org");
    assert_eq!(m.rcpt_tos, ["c1@example.com"]);
    assert_eq!(m.data, message(1));
    assert_eq!(m.auth_user.as_deref(), Some(USER));
    assert!(m.tls);
    assert_eq!(m.listener, "submission");
    assert_eq!(m.helo, "client.example.org");
    assert_eq!(m.seq, 1);

    // AUTH PLAIN with an initial response, and a user added while running.
    d.add_user("second", "pw2");
    let mut c = Client::plain(d.submission_port());
    c.ok("EHLO x", "250");
    let mut c = c.starttls(&d);
    c.ok("EHLO x", "250");
    assert!(c.auth_plain("second", "pw2").starts_with("235"));
    assert!(
        c.mail("a@example.org", &["b@example.org"], b"x\r\n")
            .starts_with("250")
    );
    assert_eq!(d.wait_for(2, WAIT)[1].auth_user.as_deref(), Some("second"));
}

#[test]
fn auth_before_starttls_is_refused() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    let mut c = Client::plain(d.submission_port());
    c.ok("EHLO client.example.org", "250");
    let r = c.auth_plain(USER, PASS);
    assert!(r.starts_with("530 "), "{r}");
    let r = c.cmd("AUTH LOGIN");
    assert!(r.starts_with("530 "), "{r}");
    c.ok("MAIL FROM:<a@example.org>", "530");
    assert!(d.received().is_empty());
}

#[test]
fn mail_without_auth_is_refused_on_submission() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    let mut c = Client::plain(d.submission_port());
    c.ok("EHLO client.example.org", "250");
    let mut c = c.starttls(&d);
    c.ok("EHLO client.example.org", "250");
    c.ok("MAIL FROM:<a@example.org>", "530 5.7.0");
    let wrong = c.auth_plain(USER, "wrong");
    assert!(wrong.starts_with("535 5.7.8"), "{wrong}");
    c.ok("MAIL FROM:<a@example.org>", "530 5.7.0");
    c.ok("RCPT TO:<b@example.org>", "530 5.7.0");
    c.ok("DATA", "530 5.7.0");
    assert!(d.received().is_empty());
}

#[test]
fn smtps_works_with_implicit_tls() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    let mut c = Client::tls(&d, d.smtps_port());
    assert!(c.greeting.starts_with("220 "), "{:?}", c.greeting);
    let ehlo = c.ok("EHLO client.example.org", "250");
    assert!(ehlo.contains("AUTH LOGIN PLAIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.ok("MAIL FROM:<a@example.org>", "530 5.7.0");
    assert!(c.auth_plain(USER, PASS).starts_with("235"));
    let done = c.mail("support@example.org", &["c2@example.com"], &message(2));
    assert!(done.starts_with("250"), "{done}");

    let m = &d.wait_for(1, WAIT)[0];
    assert_eq!(m.listener, "smtps");
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some(USER));
    assert_eq!(m.data, message(2));
}

#[test]
fn open_accepts_without_auth() {
    let d = Smtpd::start();
    let mut c = Client::plain(d.open_port());
    let ehlo = c.ok("EHLO client.example.org", "250");
    assert!(
        !ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    // The null reverse-path, as our automatic mail uses.
    let done = c.mail("", &["c3@example.com", "c4@example.com"], &message(3));
    assert!(done.starts_with("250"), "{done}");

    let m = &d.wait_for(1, WAIT)[0];
    assert_eq!(m.listener, "open");
    assert_eq!(m.mail_from, "");
    assert_eq!(m.rcpt_tos, ["c3@example.com", "c4@example.com"]);
    assert_eq!(m.auth_user, None);
    assert!(!m.tls);
}

#[test]
fn fault_451_at_rcpt_refuses_the_recipient() {
    let d = Smtpd::start();
    d.set_fault(Fault::Reply {
        at: Stage::Rcpt,
        reply: "451 4.3.0 try again later".into(),
        count: None,
    });
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    c.ok("MAIL FROM:<a@example.org>", "250");
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>"),
        "451 4.3.0 try again later"
    );
    assert_eq!(
        c.cmd("RCPT TO:<c@example.org>"),
        "451 4.3.0 try again later"
    );
    c.ok("DATA", "503");

    d.set_fault(Fault::None);
    c.ok("RCPT TO:<b@example.org>", "250");
    assert!(c.mail_data(b"x\r\n").starts_with("250"));
    assert_eq!(d.wait_for(1, WAIT)[0].rcpt_tos, ["b@example.org"]);
}

#[test]
fn fault_550_at_data_stores_nothing() {
    let d = Smtpd::start();
    d.set_fault(Fault::Reply {
        at: Stage::Data,
        reply: "550 5.7.1 rejected by policy".into(),
        count: None,
    });
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    let r = c.mail("a@example.org", &["b@example.org"], &message(5));
    assert_eq!(r, "550 5.7.1 rejected by policy");
    // The session goes on: a MAIL after the refused DATA is accepted.
    c.ok("MAIL FROM:<a@example.org>", "250");
    c.ok("QUIT", "221");
    assert!(d.received().is_empty());
    assert!(d.transcript().contains("S: 550 5.7.1 rejected by policy"));
}

#[test]
fn fault_drop_closes_after_data_without_reply() {
    let d = Smtpd::start();
    d.set_fault(Fault::Drop {
        count: None,
        deliver: false,
    });
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    assert_eq!(c.mail("a@example.org", &["b@example.org"], &message(6)), "");
    assert!(c.closed());
    assert!(d.received().is_empty());

    // With `deliver`, the message is stored, and still no reply.
    d.set_fault(Fault::Drop {
        count: None,
        deliver: true,
    });
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    assert_eq!(c.mail("a@example.org", &["b@example.org"], &message(7)), "");
    assert!(c.closed());
    assert_eq!(d.wait_for(1, WAIT)[0].data, message(7));
    let t = d.transcript();
    assert!(!t.contains("S: 250 2.0.0"), "{t}");
}

#[test]
fn fault_down_closes_every_connection() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    d.set_fault(Fault::Down);
    for _ in 0..3 {
        for port in [d.submission_port(), d.open_port()] {
            let mut c = Client::plain(port);
            assert_eq!(c.greeting, "", "port {port}");
            assert!(c.closed());
        }
        // Implicit TLS: the handshake completes, then the server closes unheard.
        let mut c = Client::tls(&d, d.smtps_port());
        assert_eq!(c.greeting, "");
        assert!(c.closed());
    }
    d.set_fault(Fault::None);
    let c = Client::plain(d.open_port());
    assert!(c.greeting.starts_with("220 "), "{:?}", c.greeting);
}

#[test]
fn fault_with_count_1_strikes_once_then_service_is_normal() {
    let d = Smtpd::start();
    d.set_fault(Fault::Reply {
        at: Stage::Connect,
        reply: "421 4.3.2 shutting down".into(),
        count: Some(1),
    });
    let mut c = Client::plain(d.open_port());
    assert_eq!(c.greeting, "421 4.3.2 shutting down");
    assert!(c.closed());
    let mut c = Client::plain(d.open_port());
    assert!(c.greeting.starts_with("220 "), "{:?}", c.greeting);
    c.ok("EHLO x", "250");

    d.set_fault(Fault::Reply {
        at: Stage::Mail,
        reply: "452 4.3.1 insufficient storage".into(),
        count: Some(1),
    });
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>"),
        "452 4.3.1 insufficient storage"
    );
    assert!(
        c.mail("a@example.org", &["b@example.org"], b"x\r\n")
            .starts_with("250")
    );

    d.set_fault(Fault::Drop {
        count: Some(1),
        deliver: false,
    });
    assert_eq!(c.mail("a@example.org", &["b@example.org"], b"y\r\n"), "");
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    assert!(
        c.mail("a@example.org", &["b@example.org"], b"z\r\n")
            .starts_with("250")
    );
    let got = d.wait_for(2, WAIT);
    assert_eq!(
        got.iter().map(|m| m.data.clone()).collect::<Vec<_>>(),
        [b"x\r\n".to_vec(), b"z\r\n".to_vec()]
    );
}

#[test]
fn routing_drops_a_copy_into_a_maildir_new() {
    let d = Smtpd::start();
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("Maildir");
    d.route("Customer@Example.COM", &maildir);
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    let done = c.mail(
        "support@example.org",
        &["customer@example.com", "other@example.com"],
        &message(8),
    );
    assert!(done.starts_with("250"), "{done}");
    assert_eq!(d.wait_for(1, WAIT).len(), 1);

    let new: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let mut want =
        b"Return-Path: <support@example.org>\r\nDelivered-To: customer@example.com\r\n".to_vec();
    want.extend_from_slice(&message(8));
    assert_eq!(std::fs::read(&new[0]).unwrap(), want);
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
}

/// The point of routing: two systems mailing each other through real servers.
#[test]
fn routing_into_a_dovecot_maildir_makes_the_message_readable_over_imap() {
    let dovecot = Dovecot::start();
    dovecot.add_user("customer", "pw");
    let d = Smtpd::start();
    d.route("customer@example.com", &dovecot.maildir("customer"));
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO x", "250");
    let done = c.mail(
        "support@example.org",
        &["customer@example.com"],
        &message(10),
    );
    assert!(done.starts_with("250"), "{done}");
    assert_eq!(
        dovecot.message_ids("customer", "pw", "INBOX"),
        ["<smtpd-selftest-10@example.org>"]
    );
}

#[test]
fn eml_bytes_are_exactly_what_was_sent() {
    let d = Smtpd::start();
    d.add_user(USER, PASS);
    // On the wire: dot-stuffed lines, an empty line, a bare LF and a bare CR inside
    // lines, 8-bit UTF-8, trailing spaces, and a 999-octet line (+CRLF = the limit).
    let long = "a".repeat(999);
    let wire = format!(
        "Subject: bytes\r\n\r\n..x\r\n..\r\n...\r\n\r\nbare\nlf and bare\rcr\r\nüñí \r\n{long}\r\nend\r\n"
    );
    let want = format!(
        "Subject: bytes\r\n\r\n.x\r\n.\r\n..\r\n\r\nbare\nlf and bare\rcr\r\nüñí \r\n{long}\r\nend\r\n"
    );
    let mut c = submission(&d);
    let done = c.mail("a@example.org", &["b@example.org"], wire.as_bytes());
    assert!(done.starts_with("250"), "{done}");
    assert_eq!(
        String::from_utf8(d.wait_for(1, WAIT)[0].data.clone()).unwrap(),
        want
    );
    let eml = std::fs::read(d.spool().join("000001.eml")).unwrap();
    assert_eq!(eml, want.as_bytes());
}

#[test]
fn transcript_shows_the_commands() {
    let d = Smtpd::start();
    let mut c = Client::plain(d.open_port());
    c.ok("EHLO client.example.org", "250");
    c.ok("MAIL FROM:<a@example.org> BODY=8BITMIME", "250");
    // A CR inside a command line (a header-injection attempt) is one command, shown.
    let r = c.cmd("RCPT TO:<b@example.org>\rDATA");
    assert!(r.starts_with('5'), "{r}");
    c.ok("RCPT TO:<b@example.org>", "250");
    assert!(c.mail_data(&message(9)).starts_with("250"));
    c.ok("QUIT", "221");
    assert_eq!(d.wait_for(1, WAIT)[0].mail_options, ["BODY=8BITMIME"]);

    let t = d.transcript();
    let commands: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_once(" C: ").map(|(_, c)| c))
        .collect();
    assert_eq!(
        commands,
        [
            "EHLO client.example.org",
            "MAIL FROM:<a@example.org> BODY=8BITMIME",
            "RCPT TO:<b@example.org>\\x0dDATA",
            "RCPT TO:<b@example.org>",
            "DATA",
            &format!("<DATA {} bytes>", message(9).len()),
            "QUIT",
        ],
        "{t}"
    );
    assert!(t.lines().all(|l| l.starts_with("0001 open ")), "{t}");
    assert!(
        t.contains("0001 open S: 250 2.0.0 OK queued as 000001"),
        "{t}"
    );
    assert!(t.contains("0001 open * accepted as 000001"), "{t}");
}

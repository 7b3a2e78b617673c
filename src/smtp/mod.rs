//! The only code that speaks SMTP: delivering one message to the office's relay, step by
//! step, with every reply kept for people (`postroom smtp test`, the outbox, the log).
//!
//! Owns: the SMTP client session (lettre's `SmtpConnection`, blocking, run on smol's
//! blocking pool by its callers), TLS policy on that session, and sorting failures into
//! "try again later" and "refused for good".
//! Must not: queue, retry or schedule (that is `outbox`), compose messages, or log secrets.
//!
//! TLS: lettre negotiates TLS with its own rustls client (the same rustls and ring as the
//! rest of the binary) and is told not to judge the certificate; this module then checks
//! the certificate chain with `net::verify_chain`, the exact policy of IMAP and POP3
//! (system and bundled roots and the host name, or exactly one pinned certificate),
//! before anything but EHLO is sent: no password, no address, no byte of mail goes to a
//! server that failed the check.

use crate::model::{Security, SmtpAuth, SmtpRecord};
use crate::net::{self, Endpoint, Fingerprint};
use crate::secret::Secret;
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use std::fmt;
use std::net::ToSocketAddrs;
use std::time::Duration;

pub mod servers;

/// How long one network step may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One step of a session, for people: what was done and what the server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    /// Worth trying again later: the network, a 4xx reply, a login or TLS problem the
    /// admin can fix while the message waits.
    Temporary {
        server: String,
        step: String,
        detail: String,
    },
    /// The relay refused this message for good (5xx to MAIL, RCPT or DATA).
    Permanent {
        server: String,
        step: String,
        reply: String,
    },
    /// The message itself cannot be sent (an address that is not one).
    Invalid { detail: String },
}

impl SmtpError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, SmtpError::Temporary { .. })
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Temporary {
                server,
                step,
                detail,
            } => write!(f, "SMTP {server}: {step} failed: {detail}"),
            SmtpError::Permanent {
                server,
                step,
                reply,
            } => write!(
                f,
                "SMTP {server} refused the message at {step}: server said {reply:?}"
            ),
            SmtpError::Invalid { detail } => f.write_str(detail),
        }
    }
}

impl std::error::Error for SmtpError {}

/// A server reply as one line: `250 2.0.0 Ok: queued as 123`.
pub fn reply_text(r: &Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" / "))
}

/// A message to deliver: the envelope and the exact bytes.
pub struct Outgoing<'a> {
    /// Envelope sender; empty for automatic mail (`MAIL FROM:<>`).
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    pub bytes: &'a [u8],
}

/// The endpoint of a server record (for TLS verification and messages).
pub fn endpoint(s: &SmtpRecord) -> Endpoint {
    Endpoint {
        host: s.host.clone(),
        port: s.port,
        security: s.security,
        pinned: s.pinned_cert.map(Fingerprint),
        timeout: TIMEOUT,
    }
}

/// The name sent in EHLO: the server's setting, else this machine's host name.
fn helo_name(s: &SmtpRecord) -> ClientId {
    let name = if s.helo.trim().is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "postroom".into())
    } else {
        s.helo.trim().to_owned()
    };
    ClientId::Domain(name)
}

fn address(a: &str, what: &str) -> Result<Address, SmtpError> {
    a.parse::<Address>().map_err(|e| SmtpError::Invalid {
        detail: format!("{what} {a:?} is not a usable e-mail address ({e})"),
    })
}

/// Delivers one message, reporting each step to `log` as it happens. Blocking: call it
/// from `smol::unblock`. `password` is the opened secret when the server wants a login.
pub fn deliver(
    server: &SmtpRecord,
    password: Option<&Secret>,
    msg: &Outgoing<'_>,
    log: &mut dyn FnMut(Step),
) -> Result<String, SmtpError> {
    // Addresses first: nothing goes on the wire for a message that cannot be sent.
    let from = if msg.mail_from.is_empty() {
        None
    } else {
        Some(address(msg.mail_from, "the sender")?)
    };
    let rcpts = msg
        .rcpt_to
        .iter()
        .map(|r| address(r, "the recipient"))
        .collect::<Result<Vec<_>, _>>()?;
    if rcpts.is_empty() {
        return Err(SmtpError::Invalid {
            detail: "the message has no recipient".into(),
        });
    }
    let mut conn = open(server, password, log)?;
    let label = format!("{}:{}", server.host, server.port);
    let result = transfer(&mut conn, &label, from, &rcpts, msg.bytes, log);
    match conn.quit() {
        Ok(r) => log(Step {
            what: "QUIT".into(),
            ok: true,
            detail: reply_text(&r),
        }),
        Err(_) => conn.abort(),
    }
    result
}

fn transfer(
    conn: &mut SmtpConnection,
    label: &str,
    from: Option<Address>,
    rcpts: &[Address],
    bytes: &[u8],
    log: &mut dyn FnMut(Step),
) -> Result<String, SmtpError> {
    let shown_from = from.as_ref().map(|a| a.to_string()).unwrap_or_default();
    command(
        conn,
        label,
        &format!("MAIL FROM:<{shown_from}>"),
        log,
        |c| c.command(Mail::new(from, vec![])),
    )?;
    for r in rcpts {
        command(conn, label, &format!("RCPT TO:<{r}>"), log, |c| {
            c.command(Rcpt::new(r.clone(), vec![]))
        })?;
    }
    command(conn, label, "DATA", log, |c| c.command(Data))?;
    // lettre always ends the data with CRLF "." CRLF; the first CRLF belongs to the
    // message (RFC 5321 4.1.1.4), so a message that already ends in CRLF is sent without
    // it and arrives byte for byte as stored.
    let body = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
    let reply = command(
        conn,
        label,
        &format!("message ({} bytes)", bytes.len()),
        log,
        |c| c.message(body),
    )?;
    Ok(reply)
}

/// Runs one command and sorts its failure: 5xx is permanent, anything else temporary.
fn command(
    conn: &mut SmtpConnection,
    label: &str,
    what: &str,
    log: &mut dyn FnMut(Step),
    f: impl FnOnce(&mut SmtpConnection) -> Result<Response, lettre::transport::smtp::Error>,
) -> Result<String, SmtpError> {
    match f(conn) {
        Ok(r) => {
            let text = reply_text(&r);
            log(Step {
                what: what.into(),
                ok: true,
                detail: text.clone(),
            });
            Ok(text)
        }
        Err(e) => {
            let detail = e.to_string();
            log(Step {
                what: what.into(),
                ok: false,
                detail: detail.clone(),
            });
            if e.is_permanent() {
                Err(SmtpError::Permanent {
                    server: label.into(),
                    step: what.into(),
                    reply: detail,
                })
            } else {
                Err(SmtpError::Temporary {
                    server: label.into(),
                    step: what.into(),
                    detail,
                })
            }
        }
    }
}

/// Connects, secures and logs in, reporting each step.
pub fn open(
    server: &SmtpRecord,
    password: Option<&Secret>,
    log: &mut dyn FnMut(Step),
) -> Result<SmtpConnection, SmtpError> {
    let label = format!("{}:{}", server.host, server.port);
    let temp = |step: &str, detail: String| SmtpError::Temporary {
        server: label.clone(),
        step: step.into(),
        detail,
    };
    let ep = endpoint(server);
    let host = net::bare_host(&server.host).to_owned();
    let addrs: Vec<std::net::SocketAddr> = match (host.as_str(), server.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            let d = format!(
                "cannot find {host:?} in DNS ({e}); check the host name for typos and the network"
            );
            log(Step {
                what: "DNS".into(),
                ok: false,
                detail: d.clone(),
            });
            return Err(temp("DNS", d));
        }
    };
    log(Step {
        what: "DNS".into(),
        ok: true,
        detail: format!(
            "{host} -> {}",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let tls = TlsParameters::builder(host.clone())
        // Judged by `net::verify_chain` right after the handshake (see the module doc).
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .map_err(|e| temp("TLS setup", e.to_string()))?;
    let hello = helo_name(server);
    let implicit = (server.security == Security::Tls).then_some(&tls);
    let connected = SmtpConnection::connect(&addrs[..], Some(TIMEOUT), &hello, implicit, None);
    let mut conn = match connected {
        Ok(c) => c,
        Err(e) => {
            let d = format!(
                "{e}. Check the host, the port ({}) and the security setting ({}): {}",
                server.port,
                server.security,
                match server.security {
                    Security::Tls => "implicit TLS is usually port 465",
                    Security::StartTls => "STARTTLS is usually port 587",
                    Security::None => "plain SMTP is usually port 25 on a LAN relay",
                }
            );
            log(Step {
                what: "connect".into(),
                ok: false,
                detail: d.clone(),
            });
            return Err(temp("connect", d));
        }
    };
    log(Step {
        what: "connect, greeting, EHLO".into(),
        ok: true,
        detail: format!("{}", conn.server_info()),
    });
    if server.security == Security::Tls {
        check_certificate(&conn, &ep, log).map_err(|d| temp("TLS certificate", d))?;
    }
    if server.security == Security::StartTls {
        if !conn.can_starttls() {
            let d = "the server does not offer STARTTLS (someone may be stripping it); refusing to continue in clear. Use security \"tls\" (port 465) or fix the server".to_owned();
            log(Step {
                what: "STARTTLS".into(),
                ok: false,
                detail: d.clone(),
            });
            conn.abort();
            return Err(temp("STARTTLS", d));
        }
        if let Err(e) = conn.starttls(&tls, &hello) {
            let d = e.to_string();
            log(Step {
                what: "STARTTLS".into(),
                ok: false,
                detail: d.clone(),
            });
            return Err(temp("STARTTLS", d));
        }
        log(Step {
            what: "STARTTLS, EHLO".into(),
            ok: true,
            detail: format!("{}", conn.server_info()),
        });
        check_certificate(&conn, &ep, log).map_err(|d| temp("TLS certificate", d))?;
    }
    if server.auth != SmtpAuth::None {
        let mech = match server.auth {
            SmtpAuth::Login => Mechanism::Login,
            _ => Mechanism::Plain,
        };
        let pass = password.map(|p| p.expose().to_owned()).unwrap_or_default();
        let creds = Credentials::new(server.username.clone(), pass);
        let what = format!(
            "AUTH {} as {}",
            server.auth.as_str().to_uppercase(),
            server.username
        );
        match conn.auth(&[mech], &creds) {
            Ok(r) => log(Step {
                what,
                ok: true,
                detail: reply_text(&r),
            }),
            Err(e) => {
                let d = format!(
                    "{e}. Check the user name and password (postroom smtp edit {} --user U --password-file F), and that the server allows {}",
                    server.name,
                    server.auth.as_str().to_uppercase()
                );
                log(Step {
                    what: what.clone(),
                    ok: false,
                    detail: d.clone(),
                });
                conn.abort();
                return Err(temp(&what, d));
            }
        }
    }
    Ok(conn)
}

fn check_certificate(
    conn: &SmtpConnection,
    ep: &Endpoint,
    log: &mut dyn FnMut(Step),
) -> Result<(), String> {
    let chain = conn.certificate_chain().map_err(|e| e.to_string())?;
    let facts = chain.first().map(|c| net::cert_facts(c));
    let result = net::verify_chain(ep, &chain);
    let shown = match &facts {
        Some(f) => format!(
            "subject {}, issuer {}, valid until {} UTC, SHA-256 {}",
            f.subject,
            f.issuer,
            crate::model::format_utc(f.not_after),
            f.fingerprint
        ),
        None => "no certificate".into(),
    };
    match result {
        Ok(_) => {
            log(Step {
                what: "TLS certificate".into(),
                ok: true,
                detail: format!(
                    "{shown} ({})",
                    if ep.pinned.is_some() {
                        "the pinned certificate"
                    } else {
                        "trusted"
                    }
                ),
            });
            Ok(())
        }
        Err(e) => {
            let d = e.to_string();
            log(Step {
                what: "TLS certificate".into(),
                ok: false,
                detail: format!("{shown}: {d}"),
            });
            Err(d)
        }
    }
}

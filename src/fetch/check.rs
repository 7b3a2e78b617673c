//! `account check`: connects to an account's server step by step and reports each step
//! (DNS, TCP, TLS with the certificate's subject, issuer, expiry and fingerprint, login,
//! capabilities, folders with message counts) with the server's exact reply on failure.
//!
//! Owns: the diagnosis sequence and its wording. Must not: take, change or delete mail
//! (it only reads counts), or print the password.

use super::{FetchCtx, endpoint, imap::Imap, pop3::Pop3};
use crate::model::{AccountRecord, LoginMethod, Protocol, Security, format_utc};
use crate::net::{self, Conn, cert_facts};
use std::time::Instant;

/// One step of the check, as shown to the admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub millis: u64,
}

fn tls_detail(conn: &Conn, acct: &AccountRecord, now_secs: i64) -> Option<(bool, String)> {
    let summary = conn.tls_summary()?;
    let der = conn.peer_certificate()?;
    let f = cert_facts(&der);
    let trust = if acct.pinned_cert.is_some() {
        "pinned certificate"
    } else {
        "trusted via the system and Mozilla roots"
    };
    let expires = if f.not_after > 0 {
        let days = (f.not_after - now_secs) / 86_400;
        format!("valid until {} UTC ({days} days)", format_utc(f.not_after))
    } else {
        "expiry unknown".into()
    };
    let soon = f.not_after > 0 && f.not_after - now_secs < 14 * 86_400;
    Some((
        !soon || f.not_after > now_secs,
        format!(
            "{summary}; certificate {}, issued by {}, {expires}{}; SHA-256 {}; {trust}",
            f.subject,
            f.issuer,
            if soon { " - renew it soon" } else { "" },
            f.fingerprint
        ),
    ))
}

fn logged_in(acct: &AccountRecord, used: LoginMethod, plain: &str, login: &str) -> String {
    let how = match used {
        LoginMethod::Plain => plain,
        _ => login,
    };
    if acct.authzid.is_empty() {
        format!("logged in as {:?} with {how}", acct.username)
    } else {
        format!(
            "logged in as {:?} for {:?} with {how}",
            acct.username, acct.authzid
        )
    }
}

/// Runs the check; calls `out` after each step; returns whether everything worked.
pub async fn check(ctx: &FetchCtx, acct: &AccountRecord, out: &mut dyn FnMut(&Step)) -> bool {
    let ep = endpoint(acct);
    let now = ctx.clock.now_secs();
    let mut step = |name: &'static str, ok: bool, detail: String, started: Instant| {
        out(&Step {
            name,
            ok,
            detail,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        ok
    };

    // DNS
    let t = Instant::now();
    let addrs = match net::with_timeout(
        &ep,
        "looking up the host name",
        smol::net::resolve((ep.host.as_str(), ep.port)),
    )
    .await
    {
        Ok(Ok(a)) if !a.is_empty() => a,
        Ok(Ok(_)) => return step("DNS", false, format!("{} has no address", ep.host), t),
        Ok(Err(e)) => {
            return step(
                "DNS",
                false,
                format!(
                    "cannot find {:?}: {e}. Check the host name for typos",
                    ep.host
                ),
                t,
            );
        }
        Err(e) => return step("DNS", false, e.to_string(), t),
    };
    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    step(
        "DNS",
        true,
        format!("{} is {}", ep.host, list.join(", ")),
        t,
    );

    // TCP (and TLS, for implicit TLS), on a connection of its own.
    let t = Instant::now();
    let tcp = match net::connect_tcp(&ep).await {
        Ok(s) => s,
        Err(e) => return step("TCP", false, e.to_string(), t),
    };
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    step("TCP", true, format!("connected to {peer}"), t);
    if ep.security == Security::Tls {
        let t = Instant::now();
        match net::tls_handshake(&ep, tcp).await {
            Ok(conn) => {
                if let Some((ok, detail)) = tls_detail(&conn, acct, now) {
                    step("TLS", ok, detail, t);
                }
            }
            Err(e) => return step("TLS", false, e.to_string(), t),
        }
    } else {
        drop(tcp);
    }

    // Protocol: greeting, STARTTLS if asked, login.
    let t = Instant::now();
    match acct.protocol {
        Protocol::Imap => {
            let mut imap = match Imap::connect(ctx, acct).await {
                Ok(i) => i,
                Err(e) => return step("login", false, e.to_string(), t),
            };
            if ep.security == Security::StartTls
                && let Some((ok, detail)) = tls_detail(imap.conn(), acct, now)
            {
                step("TLS", ok, format!("after STARTTLS: {detail}"), t);
            }
            step(
                "login",
                true,
                logged_in(acct, imap.login_used, "AUTHENTICATE PLAIN", "LOGIN"),
                t,
            );
            let t = Instant::now();
            match imap.capability_names().await {
                Ok(c) => {
                    let missing: Vec<&str> = ["IDLE", "UIDPLUS", "MOVE"]
                        .into_iter()
                        .filter(|x| !c.iter().any(|y| y == x))
                        .collect();
                    let note = if missing.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (no {}: {})",
                            missing.join(", "),
                            "Postroom falls back to polling and careful expunges"
                        )
                    };
                    step("capabilities", true, format!("{}{note}", c.join(" ")), t);
                }
                Err(e) => return step("capabilities", false, e.to_string(), t),
            }
            let t = Instant::now();
            let folders = match imap.folder_counts().await {
                Ok(f) => f,
                Err(e) => return step("folders", false, e.to_string(), t),
            };
            let shown: Vec<String> = folders
                .iter()
                .map(|(n, c)| match c {
                    Some(c) => format!("{n} ({c})"),
                    None => n.clone(),
                })
                .collect();
            let missing: Vec<&String> = acct
                .folders
                .iter()
                .filter(|f| !folders.iter().any(|(n, _)| n == *f))
                .collect();
            imap.logout().await;
            if missing.is_empty() {
                step("folders", true, shown.join(", "), t)
            } else {
                step(
                    "folders",
                    false,
                    format!(
                        "{} configured but not on the server; the server has: {}. Fix with: postroom account edit {} --folder NAME",
                        missing
                            .iter()
                            .map(|m| format!("{m:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        shown.join(", "),
                        acct.name
                    ),
                    t,
                )
            }
        }
        Protocol::Pop3 => {
            let mut pop = match Pop3::connect(ctx, acct).await {
                Ok(p) => p,
                Err(e) => return step("login", false, e.to_string(), t),
            };
            if ep.security == Security::StartTls
                && let Some((ok, detail)) = tls_detail(pop.conn(), acct, now)
            {
                step("TLS", ok, format!("after STLS: {detail}"), t);
            }
            step(
                "login",
                true,
                logged_in(acct, pop.login_used, "AUTH PLAIN", "USER/PASS"),
                t,
            );
            let t = Instant::now();
            let stat = pop.stat().await;
            let _ = pop.close().await;
            match stat {
                Ok((n, size)) => step(
                    "mailbox",
                    true,
                    format!("{n} messages, {} KB", size / 1024),
                    t,
                ),
                Err(e) => step("mailbox", false, e.to_string(), t),
            }
        }
    }
}

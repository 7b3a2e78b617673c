//! Who is asking: session cookies, API tokens, CSRF tokens and the Origin check.
//!
//! Owns: reading and writing the session cookie (HttpOnly, SameSite=Strict, Secure on
//! HTTPS; a new token at every login, so a planted cookie is useless), checking a
//! session against its user (disabled users and sessions older than the last password
//! change are dead), the form token of every state-changing request, and the check that
//! such a request comes from our own pages (`Origin`, else `Referer`).
//! Must not: decide what a user may see (handlers check `UserRecord::may_see`), or log a
//! token.

use super::{Reply, Req, WebCtx};
use crate::model::UserRecord;
use crate::users;
use std::sync::atomic::Ordering;

pub const SESSION_COOKIE: &str = "postroom_session";
/// The form token of the login and setup pages, before there is a session.
pub const PRE_COOKIE: &str = "postroom_pre";

/// A logged-in user with the session's form token.
pub struct Session {
    pub user: UserRecord,
    pub key: [u8; 32],
    pub csrf: String,
}

/// Whether any user exists (once true, stays true: users are disabled, never deleted).
pub fn has_users(ctx: &WebCtx) -> bool {
    if ctx.has_users.load(Ordering::Relaxed) {
        return true;
    }
    let any = ctx
        .store
        .read()
        .and_then(|r| r.users())
        .map(|u| !u.is_empty())
        .unwrap_or(false);
    if any {
        ctx.has_users.store(true, Ordering::Relaxed);
    }
    any
}

/// The value of cookie `name`.
pub fn cookie<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for `name=value`; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, https: bool, max_age: i64) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    )
}

/// The session of this request, if it has a live one.
pub fn current(ctx: &WebCtx, req: &Req) -> Option<Session> {
    let token = cookie(req, SESSION_COOKIE)?;
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = users::token_key(token);
    let now = ctx.now();
    let r = ctx.store.read().ok()?;
    let s = r.session(&key).ok()??;
    let user = r.user(s.user).ok()??;
    drop(r);
    let alive = !user.disabled
        && s.created >= user.password_changed
        && now - s.last_seen < users::SESSION_IDLE_SECS;
    if !alive {
        let _ = ctx.store.write(|tx| tx.remove_session(&key));
        return None;
    }
    if now - s.last_seen > 300 {
        let mut s2 = s.clone();
        s2.last_seen = now;
        let _ = ctx.store.write(|tx| tx.put_session(&key, &s2));
    }
    Some(Session {
        user,
        key,
        csrf: s.csrf,
    })
}

/// The user of an API request (`Authorization: Bearer pr_...`).
pub fn api_user(ctx: &WebCtx, req: &Req) -> Option<UserRecord> {
    let h = req.header("authorization")?;
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))?;
    let key = users::api_token_key(token)?;
    let r = ctx.store.read().ok()?;
    let mut t = r.api_token(&key).ok()??;
    let user = r.user(t.user).ok()??;
    drop(r);
    if user.disabled {
        return None;
    }
    let now = ctx.now();
    if now - t.last_used > 300 {
        t.last_used = now;
        let _ = ctx.store.write(|tx| tx.put_api_token(&key, &t));
    }
    Some(user)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a state-changing request comes from one of our pages: its `Origin` (or, when
/// a browser sent none, its `Referer`) must be this server as the browser reached it.
pub fn same_origin(req: &Req) -> bool {
    let Some(host) = req.header("host") else {
        return false;
    };
    let own = format!(
        "{}://{}",
        if req.peer.https { "https" } else { "http" },
        host
    );
    match (req.header("origin"), req.header("referer")) {
        (Some(o), _) => o == own,
        (None, Some(r)) => r == own || r.starts_with(&format!("{own}/")),
        (None, None) => false,
    }
}

/// Checks the form token `given` against `expected` and the origin; the refusal is a
/// 403 page that says what to do.
pub fn check_form(req: &Req, expected: &str, given: Option<&str>) -> Result<(), Reply> {
    if !same_origin(req) {
        log::warn!(
            "web: {} {} refused: from another site (Origin {:?})",
            req.method,
            req.path,
            req.header("origin")
        );
        return Err(Reply::text(
            403,
            "refused: this request did not come from a Postroom page. Reload the page and try again.\n",
        ));
    }
    match given {
        Some(g) if !expected.is_empty() && same(g, expected) => Ok(()),
        _ => {
            log::warn!(
                "web: {} {} refused: missing or wrong form token",
                req.method,
                req.path
            );
            Err(Reply::text(
                403,
                "refused: the form has expired or was not sent by Postroom. Reload the page and try again.\n",
            ))
        }
    }
}

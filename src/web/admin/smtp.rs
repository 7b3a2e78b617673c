//! `/admin/smtp`: the SMTP servers replies leave through.
//!
//! Owns: the list (filter box, sortable columns), adding, changing and removing a server
//! through `smtp::servers` (its rules), and "Send test message": one real delivery
//! through `smtp::deliver` on a thread of its own with a time limit, each step shown with
//! the server's exact reply, the outcome stored as the server's last test. The save
//! button warns while the last test failed or the settings changed since it passed.
//! Must not: show a password (only "set" / "not set"; an empty field keeps the stored
//! one), or hold a rule of a setting.

use super::mailboxes::field_message;
use super::{FieldErrors, render};
use crate::model::{SmtpId, SmtpRecord};
use crate::secret::{Keyring, Secret};
use crate::smtp::servers::{self, SmtpConfigError, SmtpInput};
use crate::smtp::{self as smtp_client, Step};
use crate::web::auth::Session;
use crate::web::pages::{Form, lang_of, not_found, store_error};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};
use std::time::Duration;

/// How long "Send test message" waits for the whole delivery.
pub const TEST_LIMIT: Duration = Duration::from_secs(45);

/// `/admin/smtp/...` (admins only, checked by `admin::route`).
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    let get = req.is_get();
    match rest {
        [] if get => list(ctx, req, s),
        ["new"] if get => edit_page(ctx, req, s, None, Shown::default()),
        ["new"] => save(ctx, req, s, None, form),
        [id, more @ ..] => {
            let Some(id) = id.parse::<u64>().ok().map(SmtpId) else {
                return not_found();
            };
            let server = match ctx.store.read().and_then(|r| r.smtp_servers()) {
                Ok(l) => match l.into_iter().find(|x| x.id == id) {
                    Some(x) => x,
                    None => return not_found(),
                },
                Err(e) => return store_error(e),
            };
            match more {
                [] if get => edit_page(ctx, req, s, Some(server), Shown::default()),
                [] => save(ctx, req, s, Some(server), form),
                ["remove"] if !get => remove(ctx, req, s, server),
                ["test"] if !get => test(ctx, req, s, server, form),
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// The keyring of the data directory the store lives in.
fn keyring(ctx: &WebCtx) -> Result<Keyring, String> {
    let dir = ctx
        .store
        .path()
        .parent()
        .ok_or_else(|| "the store has no data directory".to_owned())?;
    Keyring::load_or_create(&crate::secret::key_path(dir)).map_err(|e| e.to_string())
}

fn last_test_json(lang: &str, x: &SmtpRecord) -> Value {
    match &x.last_test {
        Some((at, ok, summary)) => json!({
            "at": crate::model::format_utc(at / 1000),
            "ok": ok,
            "summary": summary,
            "label": if *ok { i18n::tr(lang, "passed", &[]) } else { i18n::tr(lang, "failed", &[]) },
        }),
        None => Value::Null,
    }
}

fn list(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let run = || -> Result<Value, crate::store::StoreError> {
        let r = ctx.store.read()?;
        let mailboxes = r.mailboxes()?;
        let rows: Vec<Value> = r
            .smtp_servers()?
            .iter()
            .map(|x| {
                json!({
                    "id": x.id.0, "name": x.name, "host": x.host, "port": x.port,
                    "security": x.security.as_str(), "auth": x.auth.as_str(),
                    "username": x.username,
                    "password": if x.password_sealed.is_empty() { i18n::tr(lang, "not set", &[]) } else { i18n::tr(lang, "set", &[]) },
                    "last_test": last_test_json(lang, x),
                    "mailboxes": mailboxes.iter().filter(|m| m.smtp == Some(x.id)).map(|m| m.name.clone()).collect::<Vec<_>>().join(", "),
                })
            })
            .collect();
        Ok(json!({"rows": rows}))
    };
    match run() {
        Ok(v) => render(ctx, req, s, "admin_smtp.html", "smtp", v),
        Err(e) => store_error(e),
    }
}

#[derive(Default)]
struct Shown {
    values: Option<Value>,
    errors: FieldErrors,
    notice: Option<String>,
    error: Option<String>,
    steps: Option<Value>,
    test_to: String,
    test_from: String,
}

fn record_json(x: &SmtpRecord) -> Value {
    json!({
        "name": x.name, "host": x.host, "port": x.port.to_string(),
        "security": x.security.as_str(), "auth": x.auth.as_str(), "username": x.username,
        "helo": x.helo,
        "pinned_cert": x.pinned_cert.map(|p| p.iter().map(|b| format!("{b:02x}")).collect::<String>()).unwrap_or_default(),
    })
}

fn edit_page(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    server: Option<SmtpRecord>,
    shown: Shown,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let values = shown.values.clone().unwrap_or_else(|| match &server {
        Some(x) => record_json(x),
        None => json!({"security": "starttls", "auth": "plain", "port": ""}),
    });
    let warning = server.as_ref().and_then(|x| match &x.last_test {
        Some((_, true, _)) => None,
        Some((_, false, summary)) => Some(i18n::tr(
            lang,
            "The last test failed: {summary}",
            &[("summary", summary.clone())],
        )),
        None => Some(i18n::tr(
            lang,
            "Not tested since the settings changed: send a test message.",
            &[],
        )),
    });
    let used_by = match ctx.store.read().and_then(|r| r.mailboxes()) {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let from_default = server
        .as_ref()
        .map(|x| {
            if x.username.contains('@') {
                x.username.clone()
            } else {
                used_by
                    .iter()
                    .find(|m| m.smtp == Some(x.id))
                    .and_then(|m| m.address.clone())
                    .unwrap_or_default()
            }
        })
        .unwrap_or_default();
    let notice = shown
        .notice
        .clone()
        .or_else(|| req.param("saved").map(|_| i18n::tr(lang, "Saved.", &[])));
    // A test that ran is an answer, whatever its outcome.
    let status = if shown.errors.is_empty() && (shown.error.is_none() || shown.steps.is_some()) {
        200
    } else {
        400
    };
    let mut reply = render(
        ctx,
        req,
        s,
        "admin_smtp_edit.html",
        "smtp",
        json!({
            "new": server.is_none(),
            "id": server.as_ref().map(|x| x.id.0),
            "srv": values,
            "password_set": server.as_ref().is_some_and(|x| !x.password_sealed.is_empty()),
            "errors": shown.errors.to_json(),
            "notice": notice,
            "error": shown.error,
            "warning": warning,
            "last_test": server.as_ref().map(|x| last_test_json(lang, x)),
            "steps": shown.steps,
            "test_to": shown.test_to,
            "test_from": if shown.test_from.is_empty() { from_default } else { shown.test_from.clone() },
            "used_by": server.as_ref().map(|x| used_by.iter().filter(|m| m.smtp == Some(x.id)).map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")),
            "security_options": [["starttls", "STARTTLS"], ["tls", "TLS"], ["none", i18n::tr(lang, "none (trusted network only)", &[])]],
            "auth_options": [["plain", "PLAIN"], ["login", "LOGIN"], ["none", i18n::tr(lang, "no login (relay)", &[])]],
        }),
    );
    if reply.status == 200 {
        reply.status = status;
    }
    reply
}

fn form_values(form: &Form) -> Value {
    let mut v = serde_json::Map::new();
    for k in [
        "name",
        "host",
        "port",
        "security",
        "auth",
        "username",
        "helo",
        "pinned_cert",
    ] {
        v.insert(k.into(), json!(form.get(k).unwrap_or("")));
    }
    Value::Object(v)
}

fn save(ctx: &WebCtx, req: &Req, s: &Session, server: Option<SmtpRecord>, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let mut errors = FieldErrors::default();
    let port_text = form.text("port");
    let port = if port_text.is_empty() {
        None
    } else {
        match port_text.parse::<u32>() {
            Ok(p) => Some(p),
            Err(_) => {
                errors.add(
                    lang,
                    "port",
                    "{value} is not a port (1-65535).",
                    &[("value", port_text.clone())],
                );
                None
            }
        }
    };
    let password = form.get("password").unwrap_or("");
    let input = SmtpInput {
        name: Some(form.text("name")),
        host: Some(form.text("host")),
        port,
        security: Some(form.text("security")),
        auth: Some(form.text("auth")),
        username: Some(form.text("username")),
        password: (!password.is_empty()).then(|| Secret::new(password)),
        helo: Some(form.text("helo")),
        pinned_cert: Some(form.text("pinned_cert")),
    };
    let back = |errors: FieldErrors, error: Option<String>| {
        edit_page(
            ctx,
            req,
            s,
            server.clone(),
            Shown {
                values: Some(form_values(form)),
                errors,
                error,
                ..Shown::default()
            },
        )
    };
    if !errors.is_empty() {
        return back(errors, None);
    }
    let keys = match keyring(ctx) {
        Ok(k) => k,
        Err(e) => return back(errors, Some(e)),
    };
    let result = ctx.store.write(|tx| match &server {
        None => servers::add(tx, &keys, &input),
        Some(x) => servers::edit(tx, &keys, &x.name, &input),
    });
    match result {
        Ok(x) => Reply::redirect(&format!("/admin/smtp/{}?saved=1", x.id.0)),
        Err(SmtpConfigError::Invalid(errs)) => {
            for e in &errs {
                errors
                    .0
                    .entry(e.field.to_owned())
                    .or_insert_with(|| field_message(lang, e));
            }
            back(errors, None)
        }
        Err(e) => back(errors, Some(e.to_string())),
    }
}

fn remove(ctx: &WebCtx, req: &Req, s: &Session, server: SmtpRecord) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    match ctx.store.write(|tx| servers::remove(tx, &server.name)) {
        Ok(_) => Reply::redirect("/admin/smtp"),
        Err(SmtpConfigError::InUse { mailboxes, .. }) => {
            let msg = i18n::tr(
                lang,
                "This server is used by the mailboxes {mailboxes}: point them at another server first.",
                &[("mailboxes", mailboxes.join(", "))],
            );
            edit_page(
                ctx,
                req,
                s,
                Some(server),
                Shown {
                    error: Some(msg),
                    ..Shown::default()
                },
            )
        }
        Err(e) => store_error(e),
    }
}

/// One real delivery of a test message through `server`, each step shown.
fn test(ctx: &WebCtx, req: &Req, s: &Session, server: SmtpRecord, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let (to, from) = (form.text("to"), form.text("from"));
    let mut errors = FieldErrors::default();
    for (field, value) in [("to", &to), ("from", &from)] {
        if crate::compose::check_address(field, value).is_err() {
            errors.add(
                lang,
                field,
                "This is not an e-mail address (local@domain).",
                &[],
            );
        }
    }
    let shown = |errors: FieldErrors, steps: Option<Value>, notice, error, server| {
        edit_page(
            ctx,
            req,
            s,
            Some(server),
            Shown {
                errors,
                steps,
                notice,
                error,
                test_to: to.clone(),
                test_from: from.clone(),
                ..Shown::default()
            },
        )
    };
    if !errors.is_empty() {
        return shown(errors, None, None, None, server);
    }
    let password = match keyring(ctx)
        .and_then(|k| servers::password(&k, &server).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => return shown(errors, None, None, Some(e), server),
    };
    let bytes = match crate::compose::test_message(&from, &to, &server.name, ctx.clock.as_ref()) {
        Ok(b) => b,
        Err(e) => return shown(errors, None, None, Some(e.to_string()), server),
    };
    let steps = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Step>::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let (record, steps) = (server.clone(), steps.clone());
        let (from, to) = (from.clone(), to.clone());
        let spawned = std::thread::Builder::new()
            .name("smtp-test".into())
            .spawn(move || {
                let rcpts = [to];
                let msg = smtp_client::Outgoing {
                    mail_from: &from,
                    rcpt_to: &rcpts,
                    bytes: &bytes,
                };
                let r = smtp_client::deliver(&record, password.as_ref(), &msg, &mut |st| {
                    if let Ok(mut l) = steps.lock() {
                        l.push(st);
                    }
                });
                let _ = done_tx.send(r);
            });
        if let Err(e) = spawned {
            return shown(errors, None, None, Some(e.to_string()), server);
        }
    }
    let outcome = done_rx.recv_timeout(TEST_LIMIT);
    let (ok, summary) = match &outcome {
        Ok(Ok(reply)) => (true, format!("accepted: {reply}")),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (
            false,
            format!(
                "no answer within {} seconds; check the host, the port and the firewall",
                TEST_LIMIT.as_secs()
            ),
        ),
    };
    let now = ctx.clock.now_ms();
    let id = server.id;
    let stored = ctx.store.write(|tx| {
        let mut fresh = None;
        if let Some(mut x) = tx.smtp_servers()?.into_iter().find(|x| x.id == id) {
            x.last_test = Some((now, ok, summary.clone()));
            tx.put_smtp(&x)?;
            fresh = Some(x);
        }
        Ok::<_, crate::store::StoreError>(fresh)
    });
    let server = match stored {
        Ok(Some(x)) => x,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    log::info!(
        "web: {} sent a test message through SMTP server {:?} to {to}: {summary}",
        s.user.login,
        server.name
    );
    let list: Vec<Value> = steps
        .lock()
        .map(|l| {
            l.iter()
                .map(|st| json!({"what": st.what, "ok": st.ok, "detail": st.detail}))
                .collect()
        })
        .unwrap_or_default();
    if ok {
        let notice = i18n::tr(
            lang,
            "The server accepted the test message: {reply}",
            &[("reply", summary.trim_start_matches("accepted: ").to_owned())],
        );
        shown(errors, Some(json!(list)), Some(notice), None, server)
    } else {
        let error = i18n::tr(
            lang,
            "The test message was not sent: {reason}",
            &[("reason", summary)],
        );
        shown(errors, Some(json!(list)), None, Some(error), server)
    }
}

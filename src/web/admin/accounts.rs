//! The mail accounts page, `/admin/accounts`: the list (with the service's live state of
//! each account), the form with every IMAP/POP3 setting, "Check connection" (the same
//! step-by-step check as `postroom account check`, on the typed values, saved or not),
//! "Get folders", provider presets, enable/disable and remove.
//!
//! Owns: turning the form into an `accounts::AccountInput` and back, the provider presets,
//! and telling the running service that accounts changed.
//! Must not: hold the rules of an account (they live in `accounts`, shared with the CLI),
//! send a password back to the browser (the field is always empty; empty on an edit keeps
//! the stored one), or wait on a server longer than `NET_LIMIT`.

use super::{FieldErrors, render};
use crate::accounts::{self, AccountInput, Problem};
use crate::fetch::check::{Step, check};
use crate::fetch::imap::Imap;
use crate::model::{AccountId, AccountRecord, AfterFetch, MailboxId, Protocol};
use crate::secret::Secret;
use crate::web::auth::Session;
use crate::web::pages::{Form, lang_of, not_found, store_error};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};
use std::time::Duration;

/// The longest the web thread waits on a mail server for one button.
pub const NET_LIMIT: Duration = Duration::from_secs(30);

/// Provider presets: (key, label, IMAP host, port, security).
pub const PRESETS: &[(&str, &str, &str, u16, &str)] = &[
    (
        "gmail",
        "Gmail / Google Workspace",
        "imap.gmail.com",
        993,
        "tls",
    ),
    (
        "microsoft",
        "Microsoft 365 / Outlook.com / Hotmail",
        "outlook.office365.com",
        993,
        "tls",
    ),
    ("yahoo", "Yahoo Mail", "imap.mail.yahoo.com", 993, "tls"),
    ("icloud", "iCloud Mail", "imap.mail.me.com", 993, "tls"),
    ("gmx", "GMX", "imap.gmx.net", 993, "tls"),
    ("webde", "web.de", "imap.web.de", 993, "tls"),
    ("ionos", "IONOS (1&1)", "imap.ionos.de", 993, "tls"),
    ("fastmail", "Fastmail", "imap.fastmail.com", 993, "tls"),
    ("posteo", "Posteo", "posteo.de", 993, "tls"),
    ("mailboxorg", "mailbox.org", "imap.mailbox.org", 993, "tls"),
    ("ovh", "OVHcloud", "ssl0.ovh.net", 993, "tls"),
    ("tonline", "T-Online", "secureimap.t-online.de", 993, "tls"),
    ("strato", "Strato", "imap.strato.de", 993, "tls"),
    ("zoho", "Zoho Mail", "imap.zoho.eu", 993, "tls"),
];

/// The form's field for a field of `accounts` (the size limit is typed in MiB).
fn form_field(field: &str) -> &str {
    match field {
        "max_message_bytes" => "max_mb",
        f => f,
    }
}

/// `/admin/accounts...`: `rest` is the path after `/admin/accounts`.
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    match (req.is_get(), rest) {
        (true, []) => list(ctx, req, s),
        (true, ["new"]) => {
            let mut v = blank();
            if let Some(p) = req.param("preset") {
                apply_preset(&mut v, &p);
            }
            show_form(ctx, req, s, None, v, FieldErrors::default(), json!({}))
        }
        (false, ["new"]) => submit(ctx, req, s, form, None),
        (true, [id]) => match load(ctx, id) {
            Ok(Some(a)) => {
                let login = a
                    .creation
                    .default_assignee
                    .and_then(|u| ctx.store.read().and_then(|r| r.user(u)).ok().flatten())
                    .map(|u| u.login)
                    .unwrap_or_default();
                let v = values_of(&a, &login);
                show_form(ctx, req, s, Some(&a), v, FieldErrors::default(), json!({}))
            }
            Ok(None) => not_found(),
            Err(r) => r,
        },
        (false, [id]) => match load(ctx, id) {
            Ok(Some(a)) => submit(ctx, req, s, form, Some(a)),
            Ok(None) => not_found(),
            Err(r) => r,
        },
        (false, [id, action @ ("enable" | "disable" | "remove")]) => match load(ctx, id) {
            Ok(Some(a)) => act(ctx, &a, action),
            Ok(None) => not_found(),
            Err(r) => r,
        },
        _ => not_found(),
    }
}

fn load(ctx: &WebCtx, id: &str) -> Result<Option<AccountRecord>, Reply> {
    let Ok(id) = id.parse::<u64>() else {
        return Ok(None);
    };
    ctx.store
        .read()
        .and_then(|r| r.accounts())
        .map(|list| list.into_iter().find(|a| a.id == AccountId(id)))
        .map_err(store_error)
}

/// The running service restarts its account tasks to match the store.
fn accounts_changed(ctx: &WebCtx) {
    if let Some(tx) = &ctx.accounts_changed {
        // A full channel already holds a pending "changed": that one covers us too.
        let _ = tx.try_send(());
    }
    ctx.changed();
}

fn list(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let (accounts, mailboxes) = match (r.accounts(), r.mailboxes()) {
        (Ok(a), Ok(m)) => (a, m),
        (Err(e), _) | (_, Err(e)) => return store_error(e),
    };
    drop(r);
    let states = ctx.states.lock().map(|m| m.clone()).unwrap_or_default();
    let rows: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let state = states.get(&a.name).map(|st| st.to_string());
            let failing = matches!(
                states.get(&a.name),
                Some(crate::fetch::AccountState::Error { .. })
            );
            json!({
                "id": a.id.0,
                "name": a.name,
                "protocol": a.protocol.as_str().to_uppercase(),
                "host": format!("{}:{}", a.host, a.port),
                "security": a.security.as_str(),
                "user": a.username,
                "mailbox": mailboxes.iter().find(|m| m.id == a.mailbox).map(|m| m.name.clone()).unwrap_or_default(),
                "enabled": a.enabled,
                "validity": validity_label(lang, a.validity),
                "valid": a.validity == crate::model::Validity::Valid,
                "state": state,
                "failing": failing,
                "comment": a.comment,
            })
        })
        .collect();
    let notice = match req.param("done").as_deref() {
        Some("saved") => i18n::tr(lang, "The account is saved.", &[]),
        Some("removed") => i18n::tr(
            lang,
            "The account is removed; the conversations it brought in stay.",
            &[],
        ),
        Some("enabled") => i18n::tr(lang, "The account is enabled.", &[]),
        Some("disabled") => i18n::tr(lang, "The account is disabled.", &[]),
        _ => String::new(),
    };
    render(
        ctx,
        req,
        s,
        "admin_accounts.html",
        "accounts",
        json!({"accounts": rows, "notice": notice, "live": ctx.fetch.is_some()}),
    )
}

fn validity_label(lang: &str, v: crate::model::Validity) -> String {
    use crate::model::Validity;
    match v {
        Validity::Valid => i18n::tr(lang, "valid", &[]),
        Validity::Invalid => i18n::tr(lang, "invalid", &[]),
        Validity::TemporarilyInvalid => i18n::tr(lang, "temporarily invalid", &[]),
    }
}

/// The form's values for a new account.
fn blank() -> Value {
    json!({
        "name": "", "protocol": "imap", "host": "", "port": "", "security": "tls",
        "username": "", "login": "auto", "authzid": "", "folders": "INBOX",
        "after": "keep", "after_folder": "", "poll_secs": accounts::DEFAULT_POLL_SECS.to_string(),
        "mailbox": "1", "dispatch": "address", "trusted": false,
        "max_mb": (accounts::DEFAULT_MAX_BYTES >> 20).to_string(), "pinned_cert": "",
        "only_new": "all", "validity": "valid", "comment": "", "enabled": true,
        "no_new": false, "refused": "drop",
        "refused_subject": crate::creation::DEFAULT_REFUSED_SUBJECT,
        "refused_body": crate::creation::DEFAULT_REFUSED_BODY,
        "create_customers": false, "default_assignee": "", "default_priority": "normal",
        "default_tags": "", "bundle": false,
    })
}

/// The form's values for a stored account (never the password); `default_assignee_login`
/// is the login of its default assignee ("" none).
fn values_of(a: &AccountRecord, default_assignee_login: &str) -> Value {
    let (after, after_folder) = match &a.after {
        AfterFetch::Keep => ("keep", String::new()),
        AfterFetch::Delete => ("delete", String::new()),
        AfterFetch::Move(f) => ("move", f.clone()),
    };
    json!({
        "name": a.name, "protocol": a.protocol.as_str(), "host": a.host,
        "port": a.port.to_string(), "security": a.security.as_str(),
        "username": a.username, "login": a.login.as_str(), "authzid": a.authzid,
        "folders": a.folders.join("\n"), "after": after, "after_folder": after_folder,
        "poll_secs": a.poll_secs.to_string(), "mailbox": a.mailbox.0.to_string(),
        "dispatch": if a.dispatch_by_address { "address" } else { "mailbox" },
        "trusted": a.trusted,
        "max_mb": format_mb(a.max_message_bytes),
        "pinned_cert": a.pinned_cert.map(|p| crate::net::Fingerprint(p).to_string()).unwrap_or_default(),
        "only_new": if a.only_new { "new" } else { "all" },
        "validity": a.validity.as_str(), "comment": a.comment, "enabled": a.enabled,
        "no_new": a.creation.no_new,
        "refused": if a.creation.answer_refused { "answer" } else { "drop" },
        "refused_subject": if a.creation.refused_subject.is_empty() { crate::creation::DEFAULT_REFUSED_SUBJECT } else { a.creation.refused_subject.as_str() },
        "refused_body": if a.creation.refused_body.is_empty() { crate::creation::DEFAULT_REFUSED_BODY } else { a.creation.refused_body.as_str() },
        "create_customers": a.creation.create_customers,
        "default_assignee": default_assignee_login,
        "default_priority": a.creation.default_priority.as_str(),
        "default_tags": a.creation.default_tags.join(", "),
        "bundle": a.creation.bundle,
    })
}

fn format_mb(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        (bytes >> 20).to_string()
    } else {
        format!("{:.2}", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// The form's values as typed (to show the form again).
fn values_typed(form: &Form) -> Value {
    let mut v = blank();
    if let Some(o) = v.as_object_mut() {
        for k in [
            "name",
            "protocol",
            "host",
            "port",
            "security",
            "username",
            "login",
            "authzid",
            "after",
            "after_folder",
            "poll_secs",
            "mailbox",
            "dispatch",
            "max_mb",
            "pinned_cert",
            "only_new",
            "validity",
            "refused",
            "refused_subject",
            "default_assignee",
            "default_priority",
            "default_tags",
        ] {
            o.insert(k.into(), json!(form.text(k)));
        }
        o.insert("folders".into(), json!(folders_typed(form).join("\n")));
        o.insert(
            "comment".into(),
            json!(form.get("comment").unwrap_or("").trim()),
        );
        o.insert("trusted".into(), json!(form.get("trusted").is_some()));
        o.insert(
            "refused_body".into(),
            json!(form.get("refused_body").unwrap_or("")),
        );
        for k in ["no_new", "create_customers", "bundle"] {
            o.insert(k.into(), json!(form.get(k).is_some()));
        }
        o.insert("enabled".into(), json!(form.get("enabled").is_some()));
    }
    v
}

/// The folders typed (one per line) plus those ticked in the server's list.
fn folders_typed(form: &Form) -> Vec<String> {
    let mut out: Vec<String> = form
        .get("folders")
        .unwrap_or("")
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    for p in form.all("pick") {
        if !out.iter().any(|f| f == p) {
            out.push(p.to_owned());
        }
    }
    out
}

fn apply_preset(v: &mut Value, key: &str) {
    if let (Some((_, _, host, port, sec)), Some(o)) =
        (PRESETS.iter().find(|p| p.0 == key), v.as_object_mut())
    {
        o.insert("protocol".into(), json!("imap"));
        o.insert("host".into(), json!(host));
        o.insert("port".into(), json!(port.to_string()));
        o.insert("security".into(), json!(sec));
        o.insert("preset".into(), json!(key));
    }
}

/// The form as an `AccountInput`, with the errors of values that are not even numbers.
fn input_of(lang: &str, form: &Form, errs: &mut FieldErrors) -> AccountInput {
    let num = |errs: &mut FieldErrors, field: &str| -> Option<u64> {
        let t = form.text(field);
        if t.is_empty() {
            return None;
        }
        match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errs.add(
                    lang,
                    field,
                    "{value} is not a whole number.",
                    &[("value", format!("{t:?}"))],
                );
                None
            }
        }
    };
    let port = num(errs, "port").map(|p| u32::try_from(p).unwrap_or(u32::MAX));
    let poll_secs = num(errs, "poll_secs").map(|p| u32::try_from(p).unwrap_or(u32::MAX));
    let max_message_bytes = {
        let t = form.text("max_mb").replace(',', ".");
        if t.is_empty() {
            None
        } else {
            match t.parse::<f64>() {
                Ok(mb) if (0.0..1e9).contains(&mb) => Some((mb * f64::from(1u32 << 20)) as u64),
                _ => {
                    errs.add(
                        lang,
                        "max_mb",
                        "{value} is not a number.",
                        &[("value", format!("{t:?}"))],
                    );
                    None
                }
            }
        }
    };
    let mailbox = num(errs, "mailbox").map(MailboxId);
    let after = match form.text("after").as_str() {
        "move" => format!("move:{}", form.text("after_folder")),
        other => other.to_owned(),
    };
    let pw = form.get("password").unwrap_or("");
    AccountInput {
        name: Some(form.text("name")),
        protocol: Some(form.text("protocol")),
        host: Some(form.text("host")),
        port,
        security: Some(form.text("security")),
        username: Some(form.get("username").unwrap_or("").trim().to_owned()),
        password: if pw.is_empty() {
            None
        } else {
            Some(Secret::new(pw))
        },
        folders: Some(folders_typed(form)),
        after: Some(after),
        mailbox,
        enabled: Some(form.get("enabled").is_some()),
        only_new: Some(form.text("only_new") == "new"),
        pinned_cert: Some(form.text("pinned_cert")),
        poll_secs,
        max_message_bytes,
        dispatch: Some(form.text("dispatch")),
        trusted: Some(form.get("trusted").is_some()),
        login: Some(form.text("login")),
        authzid: Some(form.text("authzid")),
        validity: Some(form.text("validity")),
        comment: Some(form.get("comment").unwrap_or("").to_owned()),
        creation: crate::creation::CreationInput {
            no_new: Some(form.get("no_new").is_some()),
            refused: Some(form.text("refused")).filter(|r| !r.is_empty()),
            refused_subject: Some(form.text("refused_subject")),
            refused_body: Some(form.get("refused_body").unwrap_or("").to_owned()),
            create_customers: Some(form.get("create_customers").is_some()),
            default_assignee: Some(form.text("default_assignee")),
            default_priority: Some(form.text("default_priority")).filter(|p| !p.is_empty()),
            default_tags: Some(form.text("default_tags")),
            bundle: Some(form.get("bundle").is_some()),
        },
    }
}

fn add_problems(lang: &str, errs: &mut FieldErrors, problems: &[Problem]) {
    for p in problems {
        errs.add(lang, form_field(p.field), p.msg.key, &p.msg.args);
    }
}

fn submit(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    form: &Form,
    current: Option<AccountRecord>,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let action = form.text("do");
    let mut values = values_typed(form);
    let mut errs = FieldErrors::default();
    if action == "preset" {
        apply_preset(&mut values, &form.text("preset"));
        return show_form(ctx, req, s, current.as_ref(), values, errs, json!({}));
    }
    let input = input_of(lang, form, &mut errs);
    let Some(fetch) = ctx.fetch.clone() else {
        let msg = i18n::tr(
            lang,
            "Accounts can be changed only while the service runs (postroom serve).",
            &[],
        );
        return show_form(
            ctx,
            req,
            s,
            current.as_ref(),
            values,
            errs,
            json!({"error": msg}),
        );
    };
    match action.as_str() {
        "check" | "folders" => {
            let others = match ctx.store.read().and_then(|r| r.accounts()) {
                Ok(o) => o,
                Err(e) => return store_error(e),
            };
            // A new account's name does not matter for a check.
            let mut input = input;
            if current.is_none() && input.name.as_deref().is_none_or(str::is_empty) {
                input.name = Some("new".into());
            }
            let mut draft = match accounts::draft(current.as_ref(), &input, &others) {
                Ok(d) if errs.is_empty() => d,
                Ok(_) => return show_form(ctx, req, s, current.as_ref(), values, errs, json!({})),
                Err(problems) => {
                    add_problems(lang, &mut errs, &problems);
                    return show_form(ctx, req, s, current.as_ref(), values, errs, json!({}));
                }
            };
            if let Some(pw) = &input.password {
                match fetch.keys.seal(pw, &accounts::password_context(draft.id)) {
                    Ok(sealed) => draft.password_sealed = sealed,
                    Err(e) => return store_error(e),
                }
            }
            let extra = if action == "check" {
                run_check(lang, &fetch, &draft)
            } else {
                get_folders(lang, &fetch, &draft, &folders_typed(form))
            };
            show_form(ctx, req, s, current.as_ref(), values, errs, extra)
        }
        _ => {
            if !errs.is_empty() {
                // Still report every other field's problem at once.
                let others = ctx
                    .store
                    .read()
                    .and_then(|r| r.accounts())
                    .unwrap_or_default();
                if let Err(problems) = accounts::draft(current.as_ref(), &input, &others) {
                    add_problems(lang, &mut errs, &problems);
                }
                return show_form(ctx, req, s, current.as_ref(), values, errs, json!({}));
            }
            let keys = fetch.keys.clone();
            let result = ctx.store.write(|tx| match &current {
                None => accounts::add(tx, &keys, &input),
                Some(a) => accounts::edit(tx, &keys, &a.name, &input),
            });
            match result {
                Ok(a) => {
                    log::info!("web: {} saved account {:?}", s.user.login, a.name);
                    accounts_changed(ctx);
                    Reply::redirect("/admin/accounts?done=saved")
                }
                Err(accounts::AccountError::Invalid(problems)) => {
                    add_problems(lang, &mut errs, &problems);
                    show_form(ctx, req, s, current.as_ref(), values, errs, json!({}))
                }
                Err(accounts::AccountError::Store(e)) => store_error(e),
                Err(e) => {
                    let msg = e.to_string();
                    show_form(
                        ctx,
                        req,
                        s,
                        current.as_ref(),
                        values,
                        errs,
                        json!({"error": msg}),
                    )
                }
            }
        }
    }
}

/// Runs `fut` on this (web) thread for at most `NET_LIMIT`.
fn limited<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    use smol::future::FutureExt;
    smol::block_on(async { Some(fut.await) }.or(async {
        smol::Timer::after(NET_LIMIT).await;
        None
    }))
}

fn run_check(lang: &str, fetch: &crate::fetch::FetchCtx, acct: &AccountRecord) -> Value {
    let mut steps: Vec<Step> = Vec::new();
    let ok = limited(check(fetch, acct, &mut |st| steps.push(st.clone())));
    let mut shown: Vec<Value> = steps
        .iter()
        .map(|st| json!({"name": st.name, "ok": st.ok, "detail": st.detail, "millis": st.millis}))
        .collect();
    let ok = match ok {
        Some(ok) => ok,
        None => {
            shown.push(json!({
                "name": "time limit",
                "ok": false,
                "detail": i18n::tr(lang, "No answer within {n} seconds; the server may be down or a firewall may drop the connection.", &[("n", NET_LIMIT.as_secs().to_string())]),
                "millis": NET_LIMIT.as_millis() as u64,
            }));
            false
        }
    };
    json!({"check": {"ok": ok, "steps": shown}})
}

fn get_folders(
    lang: &str,
    fetch: &crate::fetch::FetchCtx,
    acct: &AccountRecord,
    chosen: &[String],
) -> Value {
    if acct.protocol == Protocol::Pop3 {
        return json!({"folders_error": i18n::tr(lang, "POP3 has only the one mailbox (INBOX).", &[])});
    }
    let got = limited(async {
        let mut imap = Imap::connect(fetch, acct).await?;
        let f = imap.folder_counts().await;
        imap.logout().await;
        f
    });
    match got {
        Some(Ok(list)) => {
            let items: Vec<Value> = list
                .iter()
                .map(|(n, c)| json!({"name": n, "count": c, "on": chosen.iter().any(|x| x == n)}))
                .collect();
            json!({"server_folders": items})
        }
        Some(Err(e)) => json!({"folders_error": e.to_string()}),
        None => {
            json!({"folders_error": i18n::tr(lang, "No answer within {n} seconds; the server may be down or a firewall may drop the connection.", &[("n", NET_LIMIT.as_secs().to_string())])})
        }
    }
}

fn act(ctx: &WebCtx, a: &AccountRecord, action: &str) -> Reply {
    let Some(fetch) = &ctx.fetch else {
        return Reply::text(
            503,
            "accounts can be changed only while the service runs (postroom serve)\n",
        );
    };
    let keys = fetch.keys.clone();
    let result = ctx.store.write(|tx| match action {
        "remove" => accounts::remove(tx, &a.name).map(|_| "removed"),
        on => {
            let input = AccountInput {
                enabled: Some(on == "enable"),
                ..AccountInput::default()
            };
            accounts::edit(tx, &keys, &a.name, &input).map(|_| {
                if on == "enable" {
                    "enabled"
                } else {
                    "disabled"
                }
            })
        }
    });
    match result {
        Ok(done) => {
            accounts_changed(ctx);
            Reply::redirect(&format!("/admin/accounts?done={done}"))
        }
        Err(accounts::AccountError::Store(e)) => store_error(e),
        Err(e) => Reply::text(400, &format!("{e}\n")),
    }
}

fn priority_label(p: crate::model::Priority) -> &'static str {
    use crate::model::Priority;
    match p {
        Priority::Low => "Low priority",
        Priority::Normal => "Normal priority",
        Priority::High => "High priority",
        Priority::Urgent => "Urgent",
    }
}

#[allow(clippy::too_many_arguments)]
fn show_form(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    current: Option<&AccountRecord>,
    values: Value,
    errs: FieldErrors,
    extra: Value,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let mailboxes: Vec<Value> = match ctx.store.read().and_then(|r| r.mailboxes()) {
        Ok(m) => m
            .iter()
            .map(|m| json!([m.id.0.to_string(), m.name]))
            .collect(),
        Err(e) => return store_error(e),
    };
    // Users a new conversation may be assigned to (whether they may see the mailbox is
    // checked when saved, with the reason next to the field).
    let mut user_options: Vec<Value> = vec![json!(["", i18n::tr(lang, "(nobody)", &[])])];
    match ctx.store.read().and_then(|r| r.users()) {
        Ok(users) => user_options.extend(
            users
                .iter()
                .filter(|u| !u.disabled)
                .map(|u| json!([u.login, format!("{} ({})", u.name, u.login)])),
        ),
        Err(e) => return store_error(e),
    }
    let priorities: Vec<Value> = crate::model::Priority::ALL
        .iter()
        .map(|p| json!([p.as_str(), i18n::tr(lang, priority_label(*p), &[])]))
        .collect();
    let presets: Vec<Value> = PRESETS
        .iter()
        .map(|(k, label, host, port, sec)| {
            json!({"key": k, "label": label, "host": host, "port": port, "security": sec})
        })
        .collect();
    let title = match current {
        Some(a) => i18n::tr(lang, "Account {name}", &[("name", a.name.clone())]),
        None => i18n::tr(lang, "New mail account", &[]),
    };
    let action = match current {
        Some(a) => format!("/admin/accounts/{}", a.id.0),
        None => "/admin/accounts/new".to_owned(),
    };
    let mut ctxv = json!({
        "val": values,
        "errors": errs.to_json(),
        "mailbox_options": mailboxes,
        "user_options": user_options,
        "priority_options": priorities,
        "presets": presets,
        "title": title,
        "action": action,
        "editing": current.map(|a| a.id.0),
        "password_set": current.is_some_and(|a| !a.password_sealed.is_empty()),
        "has_errors": !errs.is_empty(),
    });
    if let (Some(o), Value::Object(e)) = (ctxv.as_object_mut(), extra) {
        o.extend(e);
    }
    let status_bad = !errs.is_empty();
    let reply = render(ctx, req, s, "admin_accounts_form.html", "accounts", ctxv);
    if status_bad && reply.status == 200 {
        Reply {
            status: 400,
            ..reply
        }
    } else {
        reply
    }
}

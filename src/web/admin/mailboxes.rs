//! `/admin/mailboxes`: the mailboxes and their addresses, and who may do what with each.
//!
//! Owns: the list (filter box, sortable columns), adding a mailbox, its page (settings
//! with every address's validity and comment, signature and auto-reply with a preview
//! rendered from sample values, permissions), and the permission check of every request
//! to these pages: admins may do everything; a user with bits on a mailbox
//! (`mailboxes::MailboxPerms`) may open that mailbox's page and change only what the
//! bits allow; anyone else gets 404, exactly like a mailbox that does not exist.
//! Must not: hold a rule of a mailbox setting (`crate::mailboxes` does, so the CLI and
//! the browser refuse the same things), or make "may see" live anywhere but
//! `UserRecord.mailboxes`.

use super::{FieldErrors, render};
use crate::accounts::FieldError;
use crate::mailboxes::{self as rules, MailboxError, MailboxInput, MailboxPerms};
use crate::model::{FromPolicy, MailboxId, MailboxRecord, Protocol, UserId, Validity};
use crate::web::auth::Session;
use crate::web::pages::{Form, lang_of, not_found, store_error};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};

/// `/admin/mailboxes/...`; `rest` is the path after it.
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    let admin = s.user.is_admin();
    let get = req.is_get();
    match rest {
        [] if get => list(ctx, req, s),
        ["new"] if admin && get => new_page(ctx, req, s, json!({}), &FieldErrors::default()),
        ["new"] if admin => create(ctx, req, s, form),
        [id, more @ ..] => {
            let Some(id) = id.parse::<u64>().ok().map(MailboxId) else {
                return not_found();
            };
            let perms = match perms_of(ctx, s, id) {
                Ok(Some(p)) => p,
                Ok(None) => return not_found(),
                Err(e) => return store_error(e),
            };
            match more {
                [] if get => edit_page(ctx, req, s, id, perms, Shown::default()),
                ["settings"] if !get && perms.has(MailboxPerms::EDIT) => {
                    save_settings(ctx, req, s, id, perms, form)
                }
                ["texts"] if !get && perms.has(MailboxPerms::TEXTS) => {
                    save_texts(ctx, req, s, id, perms, form)
                }
                ["perms"] if !get && perms.has(MailboxPerms::MANAGE) => {
                    save_perms(ctx, s, id, form)
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// What `s.user` may do with mailbox `id`: None when the mailbox does not exist or the
/// user may not open its page.
fn perms_of(
    ctx: &WebCtx,
    s: &Session,
    id: MailboxId,
) -> Result<Option<MailboxPerms>, crate::store::StoreError> {
    let r = ctx.store.read()?;
    if r.mailboxes()?.iter().all(|m| m.id != id) {
        return Ok(None);
    }
    if s.user.is_admin() {
        return Ok(Some(MailboxPerms(MailboxPerms::ALL)));
    }
    let p = MailboxPerms(r.mailbox_perm(id, s.user.id)?);
    Ok(p.manages().then_some(p))
}

/// The admin menu a non-admin manager sees: only this section.
fn menu_override(lang: &str, s: &Session) -> Value {
    if s.user.is_admin() {
        return json!({});
    }
    json!({"admin_menu": [{"path": "mailboxes", "label": i18n::tr(lang, "Mailboxes and addresses", &[]), "on": true}]})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn validity_label(lang: &str, v: Validity) -> String {
    i18n::tr(
        lang,
        match v {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::TemporarilyInvalid => "temporarily invalid",
        },
        &[],
    )
}

fn list(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let run = || -> Result<Option<Value>, crate::store::StoreError> {
        let r = ctx.store.read()?;
        let smtp = r.smtp_servers()?;
        let users = r.users()?;
        let mut rows = Vec::new();
        for m in r.mailboxes()? {
            if !s.user.is_admin() && !MailboxPerms(r.mailbox_perm(m.id, s.user.id)?).manages() {
                continue;
            }
            let aliases: Vec<String> = m
                .aliases
                .iter()
                .map(|a| {
                    if a.validity == Validity::Valid {
                        a.address.clone()
                    } else {
                        format!("{} ({})", a.address, validity_label(lang, a.validity))
                    }
                })
                .collect();
            rows.push(json!({
                "id": m.id.0,
                "name": m.name,
                "address": m.address.clone().unwrap_or_default(),
                "address_validity": validity_label(lang, m.address_validity),
                "address_valid": m.address_validity == Validity::Valid,
                "aliases": aliases.join(", "),
                "smtp": m.smtp.and_then(|id| smtp.iter().find(|x| x.id == id)).map(|x| x.name.clone()).unwrap_or_default(),
                "auto_reply": m.auto_reply,
                "users": users.iter().filter(|u| !u.disabled && u.may_see(m.id)).count(),
            }));
        }
        if rows.is_empty() && !s.user.is_admin() {
            return Ok(None);
        }
        Ok(Some(json!({"rows": rows, "can_add": s.user.is_admin()})))
    };
    match run() {
        Ok(Some(v)) => render(
            ctx,
            req,
            s,
            "admin_mailboxes.html",
            "mailboxes",
            with(v, menu_override(lang, s)),
        ),
        Ok(None) => not_found(),
        Err(e) => store_error(e),
    }
}

/// The choices of the selects: SMTP servers, IMAP accounts (for the Sent copy), From
/// policies, validities.
fn choices(ctx: &WebCtx, lang: &str) -> Result<Value, crate::store::StoreError> {
    let r = ctx.store.read()?;
    let mut smtp = vec![json!(["", i18n::tr(lang, "(none)", &[])])];
    smtp.extend(
        r.smtp_servers()?
            .into_iter()
            .map(|x| json!([x.name, x.name])),
    );
    let mut accounts = vec![json!(["", i18n::tr(lang, "(no copy)", &[])])];
    accounts.extend(
        r.accounts()?
            .into_iter()
            .filter(|a| a.protocol == Protocol::Imap)
            .map(|a| json!([a.name, a.name])),
    );
    let validity: Vec<Value> = [
        Validity::Valid,
        Validity::Invalid,
        Validity::TemporarilyInvalid,
    ]
    .iter()
    .map(|v| json!([v.as_str(), validity_label(lang, *v)]))
    .collect();
    Ok(json!({
        "smtp_options": smtp,
        "account_options": accounts,
        "policy_options": [
            ["mailbox", i18n::tr(lang, "The mailbox's name (Support)", &[])],
            ["agent-via-mailbox", i18n::tr(lang, "The agent via the mailbox (Anna via Support)", &[])],
        ],
        "validity_options": validity,
    }))
}

/// A mailbox as the form shows it.
fn mailbox_json(m: &MailboxRecord, ctx: &WebCtx) -> Result<Value, crate::store::StoreError> {
    let r = ctx.store.read()?;
    let smtp = m
        .smtp
        .and_then(|id| r.smtp_servers().ok()?.into_iter().find(|x| x.id == id))
        .map(|x| x.name)
        .unwrap_or_default();
    let (sent_account, sent_folder) = match &m.sent_copy {
        Some((acct, folder)) => (
            r.accounts()?
                .into_iter()
                .find(|a| a.id == *acct)
                .map(|a| a.name)
                .unwrap_or_default(),
            folder.clone(),
        ),
        None => (String::new(), String::new()),
    };
    let mut addresses = Vec::new();
    if let Some(a) = &m.address {
        addresses.push(json!({"address": a, "validity": m.address_validity.as_str(), "comment": m.address_comment, "main": true}));
    }
    for a in &m.aliases {
        addresses.push(json!({"address": a.address, "validity": a.validity.as_str(), "comment": a.comment, "main": false}));
    }
    Ok(json!({
        "id": m.id.0,
        "name": m.name,
        "address": m.address.clone().unwrap_or_default(),
        "display_name": m.display_name,
        "from_policy": match m.from_policy { FromPolicy::Mailbox => "mailbox", FromPolicy::AgentViaMailbox => "agent-via-mailbox" },
        "auto_bcc": m.auto_bcc.clone().unwrap_or_default(),
        "smtp": smtp,
        "sent_account": sent_account,
        "sent_folder": sent_folder,
        "signature": m.signature,
        "auto_reply": m.auto_reply,
        "auto_reply_subject": m.auto_reply_subject,
        "auto_reply_body": m.auto_reply_body,
        "addresses": addresses,
    }))
}

/// The settings part of a submitted form (never the texts: those have their own bit).
fn settings_input(form: &Form) -> MailboxInput {
    let address = form.text("address");
    let sent_account = form.text("sent_account");
    let mut validity = Vec::new();
    let mut comments = Vec::new();
    for i in 0..form.all("addr").len() {
        let a = form
            .all("addr")
            .get(i)
            .map(|x| x.to_string())
            .unwrap_or_default();
        if let Some(v) = form.all("validity").get(i) {
            validity.push((a.clone(), (*v).to_owned()));
        }
        if let Some(c) = form.all("comment").get(i) {
            comments.push((a.clone(), (*c).to_owned()));
        }
    }
    MailboxInput {
        name: Some(form.text("name")),
        address: (!address.is_empty()).then_some(address),
        display_name: Some(form.text("display_name")),
        add_aliases: form
            .text("alias")
            .split([',', ' ', '\n', '\r', '\t', ';'])
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        validity,
        comments,
        from_policy: Some(form.text("from_policy")),
        signature: None,
        auto_bcc: Some(form.text("auto_bcc")),
        auto_reply: None,
        auto_reply_subject: None,
        auto_reply_body: None,
        smtp: Some(form.text("smtp")),
        sent_copy: Some(if sent_account.is_empty() {
            String::new()
        } else {
            format!("{sent_account}:{}", form.text("sent_folder"))
        }),
    }
}

/// The signature and auto-reply part of a submitted form.
fn texts_input(form: &Form) -> MailboxInput {
    let nl = |s: &str| s.replace("\r\n", "\n");
    MailboxInput {
        signature: Some(nl(form.get("signature").unwrap_or(""))),
        auto_reply: Some(form.get("auto_reply").is_some()),
        auto_reply_subject: Some(form.text("auto_reply_subject")),
        auto_reply_body: Some(nl(form.get("auto_reply_body").unwrap_or(""))),
        ..MailboxInput::default()
    }
}

/// A rule's message for a field, in the page's language (the rule's own words only as
/// the `{reason}` of a catalog message when there is no exact entry).
pub(super) fn field_message(lang: &str, e: &FieldError) -> String {
    let m = e.message.as_str();
    if let Some(reason) = m.strip_prefix("the template does not work: ") {
        return i18n::tr(
            lang,
            "The template does not work: {reason}",
            &[("reason", reason.to_owned())],
        );
    }
    if let Some((addr, owner)) = m.split_once(" already belongs to the mailbox ") {
        return i18n::tr(
            lang,
            "{address} already belongs to the mailbox {mailbox}.",
            &[
                ("address", addr.to_owned()),
                ("mailbox", owner.trim_matches('"').to_owned()),
            ],
        );
    }
    if let Some(rest) = m.strip_prefix("a mailbox named ") {
        return i18n::tr(
            lang,
            "A mailbox named {name} already exists.",
            &[(
                "name",
                rest.trim_end_matches(" already exists")
                    .trim_matches('"')
                    .to_owned(),
            )],
        );
    }
    if m == "is required" || m.starts_with("is required ") {
        return i18n::tr(lang, "This field is required.", &[]);
    }
    if m.ends_with("is not an e-mail address") || m.contains("an address is local@domain") {
        return i18n::tr(lang, "This is not an e-mail address (local@domain).", &[]);
    }
    if m.starts_with("needs the mailbox's address") {
        return i18n::tr(
            lang,
            "An auto-reply needs the mailbox's address to answer from.",
            &[],
        );
    }
    if m.ends_with("is not a usable folder") || m.contains("is not ACCOUNT:FOLDER") {
        return i18n::tr(lang, "Give the folder of the Sent copy (e.g. Sent).", &[]);
    }
    if m.ends_with("1 to 64 characters, no control characters") {
        return i18n::tr(lang, "Use 1 to 64 characters, no control characters.", &[]);
    }
    i18n::tr(lang, "Not accepted: {reason}", &[("reason", m.to_owned())])
}

fn errors_of(lang: &str, errs: &[FieldError]) -> FieldErrors {
    let mut out = FieldErrors::default();
    for e in errs {
        let field = if e.field == "alias" { "alias" } else { e.field };
        out.0
            .entry(field.to_owned())
            .or_insert_with(|| field_message(lang, e));
    }
    out
}

fn new_page(ctx: &WebCtx, req: &Req, s: &Session, values: Value, errors: &FieldErrors) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let c = match choices(ctx, lang) {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let status = if errors.is_empty() { 200 } else { 400 };
    let mut reply = render(
        ctx,
        req,
        s,
        "admin_mailbox.html",
        "mailboxes",
        with(
            c,
            json!({"new": true, "m": values, "errors": errors.to_json(),
                   "can": {"edit": true, "texts": false, "manage": false}}),
        ),
    );
    reply.status = status;
    reply
}

fn form_values(form: &Form) -> Value {
    let mut v = serde_json::Map::new();
    for k in [
        "name",
        "address",
        "display_name",
        "from_policy",
        "auto_bcc",
        "smtp",
        "sent_account",
        "sent_folder",
        "alias",
        "signature",
        "auto_reply_subject",
        "auto_reply_body",
    ] {
        v.insert(k.into(), json!(form.get(k).unwrap_or("")));
    }
    v.insert("auto_reply".into(), json!(form.get("auto_reply").is_some()));
    Value::Object(v)
}

fn create(ctx: &WebCtx, req: &Req, s: &Session, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let input = settings_input(form);
    match ctx.store.write(|tx| rules::add(tx, &input)) {
        Ok(m) => {
            bump(ctx);
            Reply::redirect(&format!("/admin/mailboxes/{}?saved=1", m.id.0))
        }
        Err(MailboxError::Invalid(errs)) => {
            new_page(ctx, req, s, form_values(form), &errors_of(lang, &errs))
        }
        Err(e) => store_error(e),
    }
}

fn bump(ctx: &WebCtx) {
    ctx.changes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// What an edit page shows beyond the stored mailbox.
#[derive(Default)]
struct Shown {
    /// Submitted values of the part that failed (shown instead of the stored ones).
    settings: Option<Value>,
    texts: Option<Value>,
    errors: FieldErrors,
    notice: Option<String>,
    preview: Option<Value>,
}

fn edit_page(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: MailboxId,
    perms: MailboxPerms,
    shown: Shown,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let run = || -> Result<Option<Value>, crate::store::StoreError> {
        let r = ctx.store.read()?;
        let Some(m) = r.mailboxes()?.into_iter().find(|m| m.id == id) else {
            return Ok(None);
        };
        drop(r);
        let mut mv = mailbox_json(&m, ctx)?;
        if let Some(Value::Object(over)) = &shown.settings
            && let Some(o) = mv.as_object_mut()
        {
            for (k, v) in over {
                if ![
                    "signature",
                    "auto_reply",
                    "auto_reply_subject",
                    "auto_reply_body",
                ]
                .contains(&k.as_str())
                {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(Value::Object(over)) = &shown.texts
            && let Some(o) = mv.as_object_mut()
        {
            for k in [
                "signature",
                "auto_reply",
                "auto_reply_subject",
                "auto_reply_body",
            ] {
                if let Some(v) = over.get(k) {
                    o.insert(k.into(), v.clone());
                }
            }
        }
        let users = if perms.has(MailboxPerms::MANAGE) {
            let r = ctx.store.read()?;
            let bits = r.mailbox_perms(id)?;
            r.users()?
                .into_iter()
                .filter(|u| !u.disabled)
                .map(|u| {
                    let b = MailboxPerms(
                        bits.iter()
                            .find(|(x, _)| *x == u.id)
                            .map(|(_, b)| *b)
                            .unwrap_or(0),
                    );
                    json!({
                        "id": u.id.0, "login": u.login, "name": u.name, "admin": u.is_admin(),
                        "see": u.may_see(id),
                        "edit": u.is_admin() || b.has(MailboxPerms::EDIT),
                        "manage": u.is_admin() || b.has(MailboxPerms::MANAGE),
                        "texts": u.is_admin() || b.has(MailboxPerms::TEXTS),
                        "hidden": b.has(MailboxPerms::HIDDEN),
                    })
                })
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let notice = shown
            .notice
            .clone()
            .or_else(|| req.param("saved").map(|_| i18n::tr(lang, "Saved.", &[])));
        let vars: Vec<String> = rules::sample_auto_reply_vars(&m)
            .iter()
            .map(|(k, v)| format!("{{{{ {k} }}}} = {v}"))
            .collect();
        let sig_vars: Vec<String> = rules::sample_signature_vars(&m)
            .iter()
            .map(|(k, _)| format!("{{{{ {k} }}}}"))
            .collect();
        Ok(Some(with(
            choices(ctx, lang)?,
            json!({
                "new": false, "m": mv, "errors": shown.errors.to_json(),
                "notice": notice, "preview": shown.preview,
                "can": {"edit": perms.has(MailboxPerms::EDIT), "texts": perms.has(MailboxPerms::TEXTS), "manage": perms.has(MailboxPerms::MANAGE)},
                "users": users,
                "sample_vars": vars.join(", "),
                "signature_vars": sig_vars.join(", "),
            }),
        )))
    };
    match run() {
        Ok(Some(v)) => {
            let status = if shown.errors.is_empty() { 200 } else { 400 };
            let mut reply = render(
                ctx,
                req,
                s,
                "admin_mailbox.html",
                "mailboxes",
                with(v, menu_override(lang, s)),
            );
            if reply.status == 200 {
                reply.status = status;
            }
            reply
        }
        Ok(None) => not_found(),
        Err(e) => store_error(e),
    }
}

fn name_of(ctx: &WebCtx, id: MailboxId) -> Result<Option<String>, crate::store::StoreError> {
    Ok(ctx
        .store
        .read()?
        .mailboxes()?
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.name))
}

fn save_settings(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: MailboxId,
    perms: MailboxPerms,
    form: &Form,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let name = match name_of(ctx, id) {
        Ok(Some(n)) => n,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    let input = settings_input(form);
    match ctx.store.write(|tx| rules::edit(tx, &name, &input)) {
        Ok(_) => {
            bump(ctx);
            Reply::redirect(&format!("/admin/mailboxes/{}?saved=1", id.0))
        }
        Err(MailboxError::Invalid(errs)) => {
            let mut v = form_values(form);
            if let Ok(Some(m)) = ctx
                .store
                .read()
                .and_then(|r| r.mailboxes())
                .map(|l| l.into_iter().find(|m| m.id == id))
                && let (Ok(stored), Some(o)) = (mailbox_json(&m, ctx), v.as_object_mut())
            {
                // The address rows as submitted.
                let addrs: Vec<Value> = form
                    .all("addr")
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        json!({
                            "address": a,
                            "validity": form.all("validity").get(i).copied().unwrap_or("valid"),
                            "comment": form.all("comment").get(i).copied().unwrap_or(""),
                            "main": stored.get("address").and_then(Value::as_str) == Some(*a),
                        })
                    })
                    .collect();
                o.insert("addresses".into(), json!(addrs));
            }
            edit_page(
                ctx,
                req,
                s,
                id,
                perms,
                Shown {
                    settings: Some(v),
                    errors: errors_of(lang, &errs),
                    ..Shown::default()
                },
            )
        }
        Err(e) => store_error(e),
    }
}

fn save_texts(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: MailboxId,
    perms: MailboxPerms,
    form: &Form,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let input = texts_input(form);
    if form.get("do") == Some("preview") {
        // Rendered from the submitted templates with sample values; nothing is saved.
        let current = match ctx
            .store
            .read()
            .and_then(|r| r.mailboxes())
            .map(|l| l.into_iter().find(|m| m.id == id))
        {
            Ok(Some(m)) => m,
            Ok(None) => return not_found(),
            Err(e) => return store_error(e),
        };
        let mut m = current;
        m.auto_reply_subject = input.auto_reply_subject.clone().unwrap_or_default();
        m.auto_reply_body = input.auto_reply_body.clone().unwrap_or_default();
        m.signature = input.signature.clone().unwrap_or_default();
        let preview = match rules::preview_auto_reply(&m) {
            Ok((subject, body)) => json!({"subject": subject, "body": body}),
            Err(e) => {
                json!({"error": i18n::tr(lang, "The template does not work: {reason}", &[("reason", e)])})
            }
        };
        let signature = if m.signature.trim().is_empty() {
            Value::Null
        } else {
            match crate::outbox::render(&m.signature, &rules::sample_signature_vars(&m)) {
                Ok(x) => json!(x),
                Err(e) => json!(i18n::tr(
                    lang,
                    "The template does not work: {reason}",
                    &[("reason", e)]
                )),
            }
        };
        let mut preview = preview;
        if let Some(o) = preview.as_object_mut() {
            o.insert("signature".into(), signature);
        }
        return edit_page(
            ctx,
            req,
            s,
            id,
            perms,
            Shown {
                texts: Some(form_values(form)),
                preview: Some(preview),
                ..Shown::default()
            },
        );
    }
    let name = match name_of(ctx, id) {
        Ok(Some(n)) => n,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    match ctx.store.write(|tx| rules::edit(tx, &name, &input)) {
        Ok(_) => {
            bump(ctx);
            Reply::redirect(&format!("/admin/mailboxes/{}?saved=1#texts", id.0))
        }
        Err(MailboxError::Invalid(errs)) => edit_page(
            ctx,
            req,
            s,
            id,
            perms,
            Shown {
                texts: Some(form_values(form)),
                errors: errors_of(lang, &errs),
                ..Shown::default()
            },
        ),
        Err(e) => store_error(e),
    }
}

/// Saves who may see the mailbox and each user's bits. `users` lists the rows the form
/// showed, so an unticked box means "no".
fn save_perms(ctx: &WebCtx, s: &Session, id: MailboxId, form: &Form) -> Reply {
    let listed: Vec<UserId> = form
        .all("users")
        .iter()
        .filter_map(|x| x.parse::<u64>().ok().map(UserId))
        .collect();
    let on = |what: &str, u: UserId| form.get(&format!("{what}_{}", u.0)).is_some();
    let result = ctx.store.write(|tx| {
        for uid in &listed {
            let Some(mut u) = tx.user(*uid)? else {
                continue;
            };
            let mut bits = 0;
            if on("hidden", u.id) {
                bits |= MailboxPerms::HIDDEN;
            }
            if !u.is_admin() {
                let see = on("see", u.id);
                if see && !u.mailboxes.contains(&id) {
                    u.mailboxes.push(id);
                    tx.put_user(&u)?;
                } else if !see && u.mailboxes.contains(&id) {
                    u.mailboxes.retain(|m| *m != id);
                    tx.put_user(&u)?;
                }
                for (name, bit) in [
                    ("edit", MailboxPerms::EDIT),
                    ("manage", MailboxPerms::MANAGE),
                    ("texts", MailboxPerms::TEXTS),
                ] {
                    if on(name, u.id) {
                        bits |= bit;
                    }
                }
            }
            tx.set_mailbox_perm(id, u.id, bits)?;
        }
        Ok::<_, crate::store::StoreError>(())
    });
    match result {
        Ok(()) => {
            bump(ctx);
            log::info!(
                "web: {} changed the permissions of mailbox {}",
                s.user.login,
                id.0
            );
            Reply::redirect(&format!("/admin/mailboxes/{}?saved=1#perms", id.0))
        }
        Err(e) => store_error(e),
    }
}

/// Whether `user` is hidden from the assign lists of `mailbox`.
pub fn hidden_from_assign(
    r: &crate::store::Reader,
    mailbox: MailboxId,
    user: UserId,
) -> Result<bool, crate::store::StoreError> {
    Ok(MailboxPerms(r.mailbox_perm(mailbox, user)?).has(MailboxPerms::HIDDEN))
}

//! The users page (`/admin/users`) and the invitation link (`/invite/TOKEN`).
//!
//! Owns: listing users, inviting one by e-mail (the link is mailed through the outbox from
//! a mailbox that can send, or shown to copy when none can), editing role, mailbox access
//! and disabled, resetting a password (a new link; the old password stops at once), and
//! the page where the link's holder chooses a password (no session: the form token comes
//! from the pre-session cookie, like `/login`).
//! Must not: hold the rules of a user field (`crate::users` checks them for the CLI and
//! the browser alike), send mail itself (`crate::notify` queues it, the sender delivers),
//! or show or log a link's token except to the admin who made it when no mail can carry
//! it.

use super::{FieldErrors, render};
use crate::model::{Role, UserRecord, format_utc};
use crate::notify::{self, LinkKind};
use crate::secret::Secret;
use crate::users::{self, UserError, UserInput};
use crate::web::auth::{self, Session};
use crate::web::pages::{Form, lang_of, not_found, page, pre_token, store_error, with_pre};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};

/// `/admin/users/...`: `rest` is the path after `/admin/users`.
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    match (req.is_get(), rest) {
        (true, []) => list(ctx, req, s, &FieldErrors::default(), &Form::default(), None),
        (false, []) => invite(ctx, req, s, form),
        (true, [login]) => edit_page(ctx, req, s, login, &FieldErrors::default(), None, None),
        (false, [login]) => save(ctx, req, s, login, form),
        (false, [login, "reset"]) => reset(ctx, req, s, login, form),
        _ => not_found(),
    }
}

/// The absolute link to `/invite/TOKEN` on the host the admin used (the Host header was
/// checked against the form's Origin before any POST got here).
fn link_for(req: &Req, token: &str) -> String {
    let host = req
        .header("host")
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("postroom.local");
    let scheme = if req.peer.https { "https" } else { "http" };
    format!("{scheme}://{host}/invite/{token}")
}

/// A user's field errors from `crate::users`, each next to its field.
fn field_errors(lang: &str, e: &UserError, errs: &mut FieldErrors) -> Option<String> {
    match e {
        UserError::Invalid(list) => {
            for f in list {
                if f.field == "password" {
                    errs.add(
                        lang,
                        "password",
                        "The password must have at least {n} characters and no control characters.",
                        &[("n", users::MIN_PASSWORD.to_string())],
                    );
                } else {
                    errs.add(lang, f.field, &f.message, &[]);
                }
            }
            None
        }
        other => Some(other.to_string()),
    }
}

/// Mails a link to `u`, from the sender the admin chose (else the first that can send).
/// Returns the notice for the admin: sent, or why not and the link to copy.
#[allow(clippy::too_many_arguments)]
fn mail_link(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    kind: LinkKind,
    u: &UserRecord,
    token: &str,
    chosen: Option<&str>,
    tx: &mut crate::store::Tx<'_>,
) -> Result<(bool, String), crate::store::StoreError> {
    let lang = lang_of(req, Some(&s.user));
    let link = link_for(req, token);
    let all = notify::senders(&tx.mailboxes()?);
    let from = chosen
        .and_then(|c| all.iter().find(|x| x.mailbox.0.to_string() == c))
        .or_else(|| all.first());
    let Some(from) = from else {
        return Ok((
            false,
            i18n::tr(
                lang,
                "No mailbox can send mail yet (none has both an address and an SMTP server), so no mail was sent. Give {login} this link yourself: {link}",
                &[("login", u.login.clone()), ("link", link)],
            ),
        ));
    };
    if u.email.is_empty() {
        return Ok((
            false,
            i18n::tr(
                lang,
                "{login} has no e-mail address, so no mail was sent. Give them this link yourself: {link}",
                &[("login", u.login.clone()), ("link", link)],
            ),
        ));
    }
    let inviter = if s.user.name.is_empty() {
        s.user.login.clone()
    } else {
        s.user.name.clone()
    };
    let mail = notify::invitation_mail(kind, u, &inviter, &link, from, ctx.clock.as_ref());
    let what = match kind {
        LinkKind::Invitation => format!("invitation of user {:?}", u.login),
        LinkKind::PasswordReset => format!("password reset link of user {:?}", u.login),
    };
    match notify::queue_in(tx, ctx.clock.as_ref(), from, &mail, None, &what) {
        Ok(_) => Ok((
            true,
            i18n::tr(
                lang,
                "A mail with the link was queued for {email} from {from}; the communication log shows when it is sent.",
                &[("email", u.email.clone()), ("from", from.address.clone())],
            ),
        )),
        Err(notify::NotifyError::Store(e)) => Err(e),
        Err(notify::NotifyError::Compose(e)) => Ok((
            false,
            i18n::tr(
                lang,
                "The mail could not be written ({error}). Give {login} this link yourself: {link}",
                &[
                    ("error", e.to_string()),
                    ("login", u.login.clone()),
                    ("link", link),
                ],
            ),
        )),
    }
}

fn list(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    errors: &FieldErrors,
    form: &Form,
    notice: Option<(bool, String)>,
) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let now = ctx.now();
    let lang = lang_of(req, Some(&s.user));
    let (users, mailboxes, seen, invites) = match (|| {
        Ok::<_, crate::store::StoreError>((
            r.users()?,
            r.mailboxes()?,
            r.last_seen_by_user()?,
            r.invites()?,
        ))
    })() {
        Ok(x) => x,
        Err(e) => return store_error(e),
    };
    let rows: Vec<Value> = users
        .iter()
        .map(|u| {
            let boxes: Vec<&str> = if u.is_admin() {
                vec![]
            } else {
                mailboxes
                    .iter()
                    .filter(|m| u.mailboxes.contains(&m.id))
                    .map(|m| m.name.as_str())
                    .collect()
            };
            let invited = u.password_hash.is_empty()
                && invites.iter().any(|i| i.user == u.id && i.expires > now);
            json!({
                "login": u.login, "name": u.name, "email": u.email,
                "role": u.role.as_str(),
                "mailboxes": if u.is_admin() { i18n::tr(lang, "all", &[]) } else { boxes.join(", ") },
                "disabled": u.disabled,
                "invited": invited,
                "last_seen": seen.get(&u.id).map(|t| format_utc(*t)).unwrap_or_default(),
                "last_seen_n": seen.get(&u.id).copied().unwrap_or(0),
            })
        })
        .collect();
    let senders = notify::senders(&mailboxes);
    let chosen: Vec<&str> = form.all("mailboxes");
    let (ok, text) = notice.unzip();
    render(
        ctx,
        req,
        s,
        "admin_users.html",
        "users",
        json!({
            "users": rows,
            "errors": errors.to_json(),
            "fv": {
                "login": form.text("login"), "name": form.text("name"),
                "email": form.text("email"),
                "role": if form.get("role").is_some() { form.text("role") } else { "agent".into() },
                "from": form.text("from"),
            },
            "all_mailboxes": mailboxes.iter().map(|m| json!({
                "name": m.name, "on": chosen.contains(&m.name.as_str()),
            })).collect::<Vec<_>>(),
            "senders": senders.iter().map(|x| vec![x.mailbox.0.to_string(), format!("{} <{}>", x.name, x.address)]).collect::<Vec<_>>(),
            "roles": [["agent", i18n::tr(lang, "Agent", &[])], ["admin", i18n::tr(lang, "Administrator", &[])]],
            "notice": if ok == Some(true) { text.clone() } else { None },
            "error": if ok == Some(false) { text } else { None },
        }),
    )
}

fn input_of(form: &Form) -> UserInput {
    UserInput {
        login: Some(form.text("login")),
        name: Some(form.text("name")),
        email: Some(form.text("email")),
        role: Some(form.text("role")),
        mailboxes: Some(
            form.all("mailboxes")
                .iter()
                .map(|m| m.to_string())
                .collect(),
        ),
        ..Default::default()
    }
}

fn invite(ctx: &WebCtx, req: &Req, s: &Session, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let now = ctx.now();
    let input = input_of(form);
    let chosen = form.get("from").filter(|f| !f.is_empty());
    let result = ctx.store.write(|tx| {
        let (u, token) = match users::invite(tx, &input, now) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let notice = mail_link(ctx, req, s, LinkKind::Invitation, &u, &token, chosen, tx)
            .map_err(UserError::Store)?;
        Ok::<_, UserError>(Ok((u, notice)))
    });
    match result {
        Ok(Ok((u, notice))) => {
            log::info!(
                "web: {} invited user {:?} ({})",
                s.user.login,
                u.login,
                u.email
            );
            ctx.changed();
            ctx.wake_outbox();
            list(
                ctx,
                req,
                s,
                &FieldErrors::default(),
                &Form::default(),
                Some(notice),
            )
        }
        Ok(Err(e)) | Err(e) => {
            let mut errs = FieldErrors::default();
            match field_errors(lang, &e, &mut errs) {
                None => list(ctx, req, s, &errs, form, None),
                Some(other) => store_error(other),
            }
        }
    }
}

fn edit_page(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    login: &str,
    errors: &FieldErrors,
    form: Option<&Form>,
    notice: Option<(bool, String)>,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let (u, mailboxes) = match (r.user_by_login(login), r.mailboxes()) {
        (Ok(Some(u)), Ok(m)) => (u, m),
        (Ok(None), _) => return not_found(),
        (Err(e), _) | (_, Err(e)) => return store_error(e),
    };
    let senders = notify::senders(&mailboxes);
    // After a refused save the form shows what was typed.
    let (name, email, role, disabled, chosen): (String, String, String, bool, Vec<String>) =
        match form {
            Some(f) => (
                f.text("name"),
                f.text("email"),
                f.text("role"),
                f.get("disabled").is_some(),
                f.all("mailboxes").iter().map(|m| m.to_string()).collect(),
            ),
            None => (
                u.name.clone(),
                u.email.clone(),
                u.role.as_str().to_owned(),
                u.disabled,
                mailboxes
                    .iter()
                    .filter(|m| u.mailboxes.contains(&m.id))
                    .map(|m| m.name.clone())
                    .collect(),
            ),
        };
    let (ok, text) = notice.unzip();
    render(
        ctx,
        req,
        s,
        "admin_user.html",
        "users",
        json!({
            "u": {"login": u.login, "password_set": !u.password_hash.is_empty()},
            "fv": {"name": name, "email": email, "role": role, "disabled": disabled},
            "errors": errors.to_json(),
            "all_mailboxes": mailboxes.iter().map(|m| json!({
                "name": m.name, "on": chosen.contains(&m.name),
            })).collect::<Vec<_>>(),
            "senders": senders.iter().map(|x| vec![x.mailbox.0.to_string(), format!("{} <{}>", x.name, x.address)]).collect::<Vec<_>>(),
            "roles": [["agent", i18n::tr(lang, "Agent", &[])], ["admin", i18n::tr(lang, "Administrator", &[])]],
            "notice": if ok == Some(true) { text.clone() } else { None },
            "error": if ok == Some(false) { text } else { None },
        }),
    )
}

fn save(ctx: &WebCtx, req: &Req, s: &Session, login: &str, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let now = ctx.now();
    let mut input = input_of(form);
    input.login = None;
    input.disabled = Some(form.get("disabled").is_some());
    let mut errs = FieldErrors::default();
    // An admin does not lock themself out.
    if login.eq_ignore_ascii_case(&s.user.login) {
        if input.disabled == Some(true) {
            errs.add(
                lang,
                "disabled",
                "You cannot disable your own account.",
                &[],
            );
        }
        if Role::parse(&form.text("role")) == Some(Role::Agent) {
            errs.add(
                lang,
                "role",
                "You cannot take away your own administrator role.",
                &[],
            );
        }
    }
    if !errs.is_empty() {
        return edit_page(ctx, req, s, login, &errs, Some(form), None);
    }
    match ctx.store.write(|tx| users::edit(tx, login, &input, now)) {
        Ok(u) => {
            log::info!(
                "web: {} saved user {:?}{}",
                s.user.login,
                u.login,
                if u.disabled {
                    " (disabled: sessions ended)"
                } else {
                    ""
                }
            );
            ctx.changed();
            let notice = i18n::tr(lang, "Saved.", &[]);
            edit_page(ctx, req, s, login, &errs, None, Some((true, notice)))
        }
        Err(UserError::NotFound(_)) => not_found(),
        Err(e) => match field_errors(lang, &e, &mut errs) {
            None => edit_page(ctx, req, s, login, &errs, Some(form), None),
            Some(other) => store_error(other),
        },
    }
}

fn reset(ctx: &WebCtx, req: &Req, s: &Session, login: &str, form: &Form) -> Reply {
    let now = ctx.now();
    let chosen = form.get("from").filter(|f| !f.is_empty());
    let result = ctx.store.write(|tx| {
        let (u, token) = users::reset_password(tx, login, now)?;
        let notice = mail_link(ctx, req, s, LinkKind::PasswordReset, &u, &token, chosen, tx)
            .map_err(UserError::Store)?;
        Ok::<_, UserError>((u, notice))
    });
    match result {
        Ok((u, notice)) => {
            log::info!(
                "web: {} reset the password of user {:?} (sessions ended)",
                s.user.login,
                u.login
            );
            ctx.changed();
            ctx.wake_outbox();
            edit_page(
                ctx,
                req,
                s,
                login,
                &FieldErrors::default(),
                None,
                Some(notice),
            )
        }
        Err(UserError::NotFound(_)) => not_found(),
        Err(e) => store_error(e),
    }
}

/// `/invite/TOKEN`: the holder of an invitation or reset link chooses a password. No
/// session; unknown, used or expired links answer 404.
pub fn invite_page(ctx: &WebCtx, req: &Req, token: &str) -> Reply {
    let lang = lang_of(req, None);
    let now = ctx.now();
    let gone = || {
        Reply::text(
            404,
            &i18n::tr(
                lang,
                "This link is unknown, was already used, or has expired (links work once, for 7 days). Ask your administrator for a new one.",
                &[],
            ),
        )
    };
    let found = match ctx
        .store
        .read()
        .and_then(|r| users::open_invite(&r, token, now))
    {
        Ok(Some(x)) => x,
        Ok(None) => return gone(),
        Err(e) => return store_error(e),
    };
    let (cookie, csrf) = pre_token(req);
    let (invite, user) = found;
    let show = |errors: &FieldErrors| {
        with_pre(
            page(
                "invite.html",
                json!({
                    "lang": lang, "csrf": csrf, "errors": errors.to_json(),
                    "login": user.login, "name": user.name, "reset": invite.reset,
                }),
            ),
            cookie.clone(),
        )
    };
    if req.is_get() {
        return show(&FieldErrors::default());
    }
    let form = Form::parse(req);
    if let Err(r) = auth::check_form(req, &csrf, form.get("csrf")) {
        return r;
    }
    let mut errs = FieldErrors::default();
    let pw = Secret::new(form.get("password").unwrap_or(""));
    if form.get("password") != form.get("password2") {
        errs.add(lang, "password2", "The two passwords differ.", &[]);
    }
    if users::check_password(&pw).is_err() {
        errs.add(
            lang,
            "password",
            "The password must have at least {n} characters and no control characters.",
            &[("n", users::MIN_PASSWORD.to_string())],
        );
    }
    if !errs.is_empty() {
        return show(&errs);
    }
    match ctx
        .store
        .write(|tx| users::accept_invite(tx, token, &pw, now))
    {
        Ok(Some(u)) => {
            log::info!("web: user {:?} set their password with a link", u.login);
            ctx.changed();
            Reply::redirect("/login?next=/inbox")
        }
        Ok(None) => gone(),
        Err(e) => match field_errors(lang, &e, &mut errs) {
            None => show(&errs),
            Some(other) => store_error(other),
        },
    }
}

//! The pages of the team's inbox: setup, login, the inbox, a conversation and its
//! actions, customers, the user's profile.
//!
//! Owns: what each page shows and what each form does, the per-mailbox permission check
//! of every request (a conversation, message or attachment of a mailbox the user may not
//! see answers 404, exactly like one that does not exist), the collision guard on
//! replies, drafts, read marks.
//! Must not: speak SMTP (replies go to the outbox, which is woken), render a mail body
//! without `sanitize`, or serve an attachment inline (downloads only; inline images only
//! as images, inside the sandboxed body frame).

use super::auth::{self, Session};
use super::{Reply, Req, WebCtx, i18n, sanitize, views};
use crate::config::Settings;
use crate::model::{
    ConvId, ConversationRecord, Direction, DraftRecord, MailboxId, MailboxRecord, MessageRecord,
    MsgId, OutboxState, Status, UserId, UserRecord, Validity,
};
use crate::secret::Secret;
use crate::store::{Reader, StoreError};
use crate::users::{self, LoginOutcome, UserInput};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Conversations per inbox page.
pub const PAGE_SIZE: usize = 50;

/// A submitted form: fields and uploaded files.
#[derive(Default)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<crate::compose::Attachment>,
    /// The form field of each file in `files` (same order).
    pub file_fields: Vec<String>,
}

impl Form {
    pub fn parse(req: &Req) -> Form {
        let ct = req.header("content-type").unwrap_or("");
        if ct.to_ascii_lowercase().starts_with("multipart/form-data") {
            let mut f = Form::default();
            for p in crate::pipeline::parse::multipart_form(ct, &req.body) {
                match p.filename {
                    Some(name) if !name.is_empty() && !p.bytes.is_empty() => {
                        f.file_fields.push(p.name.clone());
                        f.files.push(crate::compose::Attachment {
                            name,
                            content_type: p.content_type,
                            bytes: p.bytes,
                        })
                    }
                    Some(_) => {}
                    None => f
                        .fields
                        .push((p.name, String::from_utf8_lossy(&p.bytes).into_owned())),
                }
            }
            f
        } else {
            Form {
                fields: super::form_decode(&String::from_utf8_lossy(&req.body)),
                ..Form::default()
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_owned()
    }

    /// The file uploaded in field `name`.
    pub fn file(&self, name: &str) -> Option<&crate::compose::Attachment> {
        let i = self.file_fields.iter().position(|f| f == name)?;
        self.files.get(i)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A user's fields as the pages name them (catalog messages).
const USER_FIELDS: &[(&str, &str)] = &[
    ("login", "Login"),
    ("name", "Your name"),
    ("email", "Your e-mail address (for notifications)"),
    ("password", "Password"),
    ("language", "Language"),
    ("role", "Role"),
    ("mailboxes", "Mailboxes"),
];

/// Why a user could not be saved, in the page's language: each field with its message.
fn user_error_text(lang: &str, e: &users::UserError) -> String {
    match e {
        users::UserError::Invalid(errs) => errs
            .iter()
            .map(|f| {
                let field = USER_FIELDS
                    .iter()
                    .find(|(k, _)| *k == f.field)
                    .map(|(_, v)| i18n::tr(lang, v, &[]))
                    .unwrap_or_else(|| f.field.to_owned());
                let message = if f.field == "password" {
                    i18n::tr(
                        lang,
                        "The password must have at least {n} characters and no control characters.",
                        &[("n", users::MIN_PASSWORD.to_string())],
                    )
                } else {
                    i18n::tr(lang, &f.message, &[])
                };
                format!("{field}: {message}")
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The page language: the user's choice, else the browser's.
pub fn lang_of(req: &Req, user: Option<&UserRecord>) -> &'static str {
    if let Some(u) = user
        && let Some((code, _)) = i18n::LANGUAGES.iter().find(|(c, _)| *c == u.language)
    {
        return code;
    }
    i18n::negotiate(req.header("accept-language").unwrap_or(""))
}

pub(super) fn page(name: &str, mut ctx: Value) -> Reply {
    if let Some(o) = ctx.as_object_mut() {
        o.insert("v".into(), json!(views::asset_version()));
        o.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    }
    match views::render(name, &ctx) {
        Ok(html) => Reply::html(200, html),
        Err(e) => {
            log::error!("web: {e}");
            Reply::text(500, "the page could not be rendered; the log says why\n")
        }
    }
}

pub(super) fn store_error(e: impl std::fmt::Display) -> Reply {
    log::error!("web: {e}");
    Reply::text(
        500,
        &format!("the store could not be read or written: {e}. The service log has details.\n"),
    )
}

pub(super) fn not_found() -> Reply {
    Reply::text(404, "not found\n")
}

pub fn route(ctx: &WebCtx, req: &Req) -> Reply {
    let segs: Vec<&str> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get = req.is_get();
    match segs.as_slice() {
        ["assets", name] if get => {
            return match views::asset(name) {
                Some((ct, body)) => Reply::bytes(200, ct, body.into_owned())
                    .with("Cache-Control", "public, max-age=31536000, immutable"),
                None => not_found(),
            };
        }
        ["setup"] => return setup(ctx, req),
        ["login"] => return login(ctx, req),
        ["invite", token] => return super::admin::users::invite_page(ctx, req, token),
        _ => {}
    }
    if !auth::has_users(ctx) {
        return Reply::redirect("/setup");
    }
    let Some(s) = auth::current(ctx, req) else {
        if get {
            let next = super::url_encode(&req.path);
            return Reply::redirect(&format!("/login?next={next}"));
        }
        return Reply::text(
            403,
            "refused: you are not logged in. Log in and try again.\n",
        );
    };
    let form = if get {
        Form::default()
    } else {
        Form::parse(req)
    };
    if !get && let Err(r) = auth::check_form(req, &s.csrf, form.get("csrf")) {
        return r;
    }
    let conv_id = |s: &str| s.parse::<u64>().ok().map(ConvId);
    match (get, segs.as_slice()) {
        (true, []) => Reply::redirect("/inbox"),
        (true, ["inbox"]) => inbox(ctx, req, &s),
        (false, ["inbox", "bulk"]) => bulk(ctx, &s, &form),
        (false, ["logout"]) => logout(ctx, req, &s),
        (true, ["stamp"]) => stamp(ctx),
        (true, ["c", id]) => match conv_id(id) {
            Some(id) => conversation(ctx, req, &s, id, None),
            None => not_found(),
        },
        (true, ["c", id, "m", msg, what, rest @ ..]) => {
            match (conv_id(id), msg.parse::<u64>().ok().map(MsgId)) {
                (Some(c), Some(m)) => message_part(ctx, req, &s, c, m, what, rest),
                _ => not_found(),
            }
        }
        (false, ["c", id, action]) => match conv_id(id) {
            Some(id) => conversation_action(ctx, req, &s, id, action, &form),
            None => not_found(),
        },
        (true, ["customer"]) => customer(ctx, req, &s),
        (true, ["profile"]) => profile(ctx, req, &s, None, None),
        (false, ["profile", what]) => profile_action(ctx, req, &s, what, &form),
        (_, ["admin", rest @ ..]) => super::admin::route(ctx, req, &s, &form, rest),
        _ => not_found(),
    }
}

// ---------------------------------------------------------------------------------------
// Setup, login, logout

/// The login and setup forms carry a token from a cookie of their own (there is no
/// session yet); returns (cookie header or None when it is already set, token).
pub(super) fn pre_token(req: &Req) -> (Option<String>, String) {
    match auth::cookie(req, auth::PRE_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (None, t.to_owned())
        }
        _ => {
            let t = users::hex(&users::random_bytes::<32>());
            (
                Some(auth::set_cookie(auth::PRE_COOKIE, &t, req.peer.https, 3600)),
                t,
            )
        }
    }
}

pub(super) fn with_pre(reply: Reply, cookie: Option<String>) -> Reply {
    match cookie {
        Some(c) => reply.with("Set-Cookie", &c),
        None => reply,
    }
}

/// Logs `user` in on this browser: a fresh session token, the old one (if any) ended.
fn start_session(ctx: &WebCtx, req: &Req, user: UserId, to: &str) -> Reply {
    let now = ctx.now();
    let old = auth::cookie(req, auth::SESSION_COOKIE).map(users::token_key);
    let token = ctx.store.write(|tx| {
        if let Some(k) = &old {
            tx.remove_session(k)?;
        }
        tx.prune_sessions(now - users::SESSION_IDLE_SECS)?;
        users::start_session(tx, user, now)
    });
    match token {
        Ok(t) => Reply::redirect(to)
            .with(
                "Set-Cookie",
                &auth::set_cookie(
                    auth::SESSION_COOKIE,
                    &t,
                    req.peer.https,
                    users::SESSION_IDLE_SECS,
                ),
            )
            .with(
                "Set-Cookie",
                &auth::set_cookie(auth::PRE_COOKIE, "", req.peer.https, 0),
            ),
        Err(e) => store_error(e),
    }
}

fn setup(ctx: &WebCtx, req: &Req) -> Reply {
    let lang = lang_of(req, None);
    if auth::has_users(ctx) {
        return Reply::redirect("/login");
    }
    let (cookie, token) = pre_token(req);
    let now = ctx.now();
    let show = |errors: Vec<(&str, String)>, form: &Form| {
        let errs: BTreeMap<&str, String> = errors.into_iter().collect();
        with_pre(
            page(
                "setup.html",
                json!({
                    "lang": lang, "csrf": token, "errors": errs,
                    "open": ctx.setup.is_open(now),
                    "fingerprint": ctx.cert.get().map(|c| c.info().fingerprint),
                    "https": req.peer.https,
                    "login": form.text("login"), "name": form.text("name"),
                    "email": form.text("email"),
                }),
            ),
            cookie.clone(),
        )
    };
    if req.is_get() {
        return show(Vec::new(), &Form::default());
    }
    let form = Form::parse(req);
    if let Err(r) = auth::check_form(req, &token, form.get("csrf")) {
        return r;
    }
    let mut errors = Vec::new();
    let pw = Secret::new(form.get("password").unwrap_or(""));
    if form.get("password") != form.get("password2") {
        errors.push((
            "password2",
            i18n::tr(lang, "The two passwords differ.", &[]),
        ));
    }
    if users::check_password(&pw).is_err() {
        errors.push((
            "password",
            i18n::tr(
                lang,
                "The password must have at least {n} characters and no control characters.",
                &[("n", users::MIN_PASSWORD.to_string())],
            ),
        ));
    }
    if !errors.is_empty() {
        return show(errors, &form);
    }
    // The code is checked last and only once everything else is right, so a typo in a
    // password does not burn it.
    if !ctx.setup.redeem(form.get("code").unwrap_or(""), now) {
        log::warn!("web: wrong or expired setup code from {}", req.client());
        errors.push((
            "code",
            i18n::tr(
                lang,
                "This code is wrong or has expired. Restart Postroom for a new one; it is printed on the console and in the log.",
                &[],
            ),
        ));
        return show(errors, &form);
    }
    let input = UserInput {
        login: Some(form.text("login")),
        name: Some(form.text("name")),
        email: Some(form.text("email")),
        role: Some("admin".into()),
        password: Some(pw),
        language: Some(lang.into()),
        ..Default::default()
    };
    match ctx.store.write(|tx| {
        if !tx.users()?.is_empty() {
            return Ok(None);
        }
        users::add(tx, &input, now).map(Some)
    }) {
        Ok(Some(u)) => {
            log::info!("web: first admin {:?} created with the setup code", u.login);
            ctx.changed();
            start_session(ctx, req, u.id, "/inbox")
        }
        Ok(None) => Reply::redirect("/login"),
        Err(users::UserError::Invalid(errs)) => {
            // The code was good: give a new one so the admin can fix the form.
            let code = ctx.setup.issue(now);
            eprintln!("postroom: new setup code (the form had errors): {code}");
            log::info!("setup code: {code}");
            let errs = errs
                .into_iter()
                .map(|e| (e.field, i18n::tr(lang, &e.message, &[])))
                .chain([(
                    "code",
                    i18n::tr(
                        lang,
                        "Fix the fields above; a new setup code was printed on the console.",
                        &[],
                    ),
                )])
                .collect();
            show(errs, &form)
        }
        Err(e) => store_error(e),
    }
}

fn login(ctx: &WebCtx, req: &Req) -> Reply {
    let lang = lang_of(req, None);
    if !auth::has_users(ctx) {
        return Reply::redirect("/setup");
    }
    let (cookie, token) = pre_token(req);
    let next = req
        .param("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/inbox".into());
    let show = |error: Option<String>, login: &str| {
        with_pre(
            page(
                "login.html",
                json!({"lang": lang, "csrf": token, "error": error, "login": login, "next": next}),
            ),
            cookie.clone(),
        )
    };
    if req.is_get() {
        return show(None, "");
    }
    let form = Form::parse(req);
    if let Err(r) = auth::check_form(req, &token, form.get("csrf")) {
        return r;
    }
    let login = form.text("login");
    let pw = Secret::new(form.get("password").unwrap_or(""));
    let user = ctx
        .store
        .read()
        .and_then(|r| r.user_by_login(&login))
        .unwrap_or(None);
    match ctx
        .throttle
        .login(user.as_ref(), &login, &pw, &req.client(), ctx.now())
    {
        LoginOutcome::Ok(id) => start_session(ctx, req, id, &next),
        LoginOutcome::Refused => show(
            Some(i18n::tr(lang, "Wrong login or password.", &[])),
            &login,
        ),
        LoginOutcome::Wait(secs) => show(
            Some(i18n::tr(
                lang,
                "Too many failed attempts. Try again in {n} seconds.",
                &[("n", secs.to_string())],
            )),
            &login,
        ),
    }
}

fn logout(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    if let Err(e) = ctx.store.write(|tx| tx.remove_session(&s.key)) {
        return store_error(e);
    }
    Reply::redirect("/login").with(
        "Set-Cookie",
        &auth::set_cookie(auth::SESSION_COOKIE, "", req.peer.https, 0),
    )
}

/// Changes the pages poll for (live refresh): messages stored and web actions.
fn stamp(ctx: &WebCtx) -> Reply {
    let messages = ctx
        .store
        .read()
        .and_then(|r| r.message_count())
        .unwrap_or(0);
    let changes = ctx.changes.load(std::sync::atomic::Ordering::Relaxed);
    Reply::json(200, &json!({ "stamp": format!("{messages}-{changes}") }))
}

// ---------------------------------------------------------------------------------------
// The inbox

/// The folders of the inbox, in sidebar order.
pub const FOLDERS: &[&str] = &["unassigned", "mine", "assigned", "drafts", "closed", "spam"];

/// The mailboxes `user` may see.
pub fn visible_mailboxes(r: &Reader, user: &UserRecord) -> Result<Vec<MailboxRecord>, StoreError> {
    Ok(r.mailboxes()?
        .into_iter()
        .filter(|m| user.may_see(m.id))
        .collect())
}

/// Whether `user` has not seen the latest activity of `c`.
pub fn is_unread(r: &Reader, user: UserId, c: &ConversationRecord) -> Result<bool, StoreError> {
    Ok(r.read_mark(user, c.id)?
        .is_none_or(|seen| seen < c.last_activity))
}

/// A listing: conversations of one folder over some mailboxes.
pub struct Listing {
    pub rows: Vec<ConversationRecord>,
    pub total: usize,
    /// folder -> (count, unread)
    pub counts: BTreeMap<&'static str, (usize, usize)>,
}

/// Builds the listing of `folder` over `mailboxes` for `user`, page `page` (0-based).
pub fn listing(
    r: &Reader,
    user: &UserRecord,
    mailboxes: &[MailboxId],
    folder: &str,
    page: usize,
    per_page: usize,
) -> Result<Listing, StoreError> {
    // The open folders and their unread counts come from the open index's keys alone
    // (time, id, assignee); only the rows of the page shown are read whole.
    let mut open = Vec::new();
    for mb in mailboxes {
        open.extend(r.open_conversations(*mb)?);
    }
    open.sort_by_key(|(t, id, _)| std::cmp::Reverse((*t, *id)));
    let marks = r.read_marks_of(user.id)?;
    let unread = |e: &&&(i64, ConvId, Option<UserId>)| {
        let (t, id, _) = ***e;
        marks.get(&id).is_none_or(|seen| *seen < t)
    };
    let pick = |f: &dyn Fn(Option<UserId>) -> bool| -> Vec<&(i64, ConvId, Option<UserId>)> {
        open.iter().filter(|(_, _, a)| f(*a)).collect()
    };
    let unassigned = pick(&|a| a.is_none());
    let mine = pick(&|a| a == Some(user.id));
    let assigned = pick(&|a| a.is_some());
    let mut counts = BTreeMap::new();
    for (name, list) in [
        ("unassigned", &unassigned),
        ("mine", &mine),
        ("assigned", &assigned),
    ] {
        counts.insert(name, (list.len(), list.iter().filter(unread).count()));
    }
    let drafts: Vec<ConvId> = r.drafts_of(user.id)?.into_iter().map(|(c, _)| c).collect();
    let mut draft_convs = Vec::new();
    for id in &drafts {
        if let Some(c) = r.conversation(*id)?
            && mailboxes.contains(&c.mailbox)
            && c.status != Status::Merged
        {
            draft_convs.push(c);
        }
    }
    counts.insert("drafts", (draft_convs.len(), 0));
    let mut closed_total = [0usize; 2];
    for mb in mailboxes {
        for (i, bucket) in [2u8, 3].into_iter().enumerate() {
            if let Some(t) = closed_total.get_mut(i) {
                *t += usize::try_from(r.inbox_count(*mb, bucket)?).unwrap_or(usize::MAX);
            }
        }
    }
    counts.insert("closed", (closed_total[0], 0));
    counts.insert("spam", (closed_total[1], 0));
    let skip = page.saturating_mul(per_page);
    let (rows, total) = match folder {
        "mine" | "assigned" | "unassigned" => {
            let list = match folder {
                "mine" => mine,
                "assigned" => assigned,
                _ => unassigned,
            };
            let total = list.len();
            let ids: Vec<ConvId> = list
                .into_iter()
                .skip(skip)
                .take(per_page)
                .map(|(_, id, _)| *id)
                .collect();
            (r.conversations_by_id(&ids)?, total)
        }
        "drafts" => {
            let total = draft_convs.len();
            (
                draft_convs.into_iter().skip(skip).take(per_page).collect(),
                total,
            )
        }
        _ => {
            let bucket = if folder == "spam" { 3u8 } else { 2 };
            let total = if bucket == 3 {
                closed_total[1]
            } else {
                closed_total[0]
            };
            // Newest first over every mailbox: each one's first skip+n, merged.
            let mut heads = Vec::new();
            for mb in mailboxes {
                heads.extend(r.inbox_all(*mb, bucket, Some(skip + per_page))?);
            }
            heads.sort_by_key(|(t, id)| std::cmp::Reverse((*t, *id)));
            let ids: Vec<ConvId> = heads
                .into_iter()
                .skip(skip)
                .take(per_page)
                .map(|(_, id)| id)
                .collect();
            (r.conversations_by_id(&ids)?, total)
        }
    };
    Ok(Listing {
        rows,
        total,
        counts,
    })
}

fn user_names(r: &Reader) -> Result<BTreeMap<UserId, String>, StoreError> {
    Ok(r.users()?.into_iter().map(|u| (u.id, u.name)).collect())
}

/// Labels shown for statuses and folders (catalog messages).
pub const LABELS: &[(&str, &str)] = &[
    ("active", "Active"),
    ("pending", "Pending"),
    ("closed", "Closed"),
    ("spam", "Spam"),
    ("merged", "Merged"),
    ("unassigned", "Unassigned"),
    ("mine", "Mine"),
    ("assigned", "Assigned"),
    ("drafts", "Drafts"),
];

fn label(lang: &str, key: &str) -> String {
    let en = LABELS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or(key);
    i18n::tr(lang, en, &[])
}

fn status_label(lang: &str, s: Status) -> String {
    label(lang, s.as_str())
}

fn folder_label(lang: &str, f: &str) -> String {
    label(lang, f)
}

/// The common context of every logged-in page.
pub(super) fn base_ctx(r: &Reader, req: &Req, s: &Session) -> Result<Value, StoreError> {
    let lang = lang_of(req, Some(&s.user));
    let mailboxes: Vec<Value> = visible_mailboxes(r, &s.user)?
        .iter()
        .map(|m| json!({"id": m.id.0, "name": m.name}))
        .collect();
    // A mailbox's managers (not admins) get a link to its page.
    let manages = !s.user.is_admin()
        && r.all_mailbox_perms()?
            .iter()
            .any(|(_, u, b)| *u == s.user.id && crate::mailboxes::MailboxPerms(*b).manages());
    Ok(json!({
        "lang": lang,
        "csrf": s.csrf,
        "me": {"id": s.user.id.0, "name": s.user.name, "login": s.user.login, "admin": s.user.is_admin(), "manages": manages},
        "mailboxes": mailboxes,
        "site": crate::config::Settings::load(r)?.site_name,
        "zone": super::zone(r).name,
    }))
}

pub(super) fn merge_ctx(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn conv_row(
    r: &Reader,
    lang: &str,
    user: UserId,
    c: &ConversationRecord,
    names: &BTreeMap<UserId, String>,
    mailbox_names: &BTreeMap<MailboxId, String>,
) -> Result<Value, StoreError> {
    let customer = c.customer.as_ref();
    Ok(json!({
        "id": c.id.0,
        "subject": if c.subject.is_empty() { i18n::tr(lang, "(no subject)", &[]) } else { c.subject.clone() },
        "customer": customer.map(|a| if a.name.is_empty() { a.email.clone() } else { a.name.clone() }).unwrap_or_default(),
        "customer_email": customer.map(|a| a.email.clone()).unwrap_or_default(),
        "when": super::zone(r).format(c.last_activity),
        "status": c.status.as_str(),
        "status_label": status_label(lang, c.status),
        "assignee": c.assignee.and_then(|a| names.get(&a).cloned()),
        "count": c.message_count,
        "unread": is_unread(r, user, c)?,
        "mailbox": mailbox_names.get(&c.mailbox).cloned().unwrap_or_default(),
    }))
}

/// The catalog label of a conversation's priority.
fn priority_label(p: crate::model::Priority) -> &'static str {
    match p {
        crate::model::Priority::Low => "Low priority",
        crate::model::Priority::Normal => "Normal priority",
        crate::model::Priority::High => "High priority",
        crate::model::Priority::Urgent => "Urgent",
    }
}

fn inbox(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let run = || -> Result<Reply, StoreError> {
        let lang = lang_of(req, Some(&s.user));
        let visible = visible_mailboxes(&r, &s.user)?;
        let chosen = req.param("mailbox").and_then(|m| m.parse::<u64>().ok());
        let mailboxes: Vec<MailboxId> = visible
            .iter()
            .filter(|m| chosen.is_none_or(|c| c == m.id.0))
            .map(|m| m.id)
            .collect();
        if chosen.is_some() && mailboxes.is_empty() {
            return Ok(not_found());
        }
        let folder = req
            .param("folder")
            .filter(|f| FOLDERS.contains(&f.as_str()))
            .unwrap_or_else(|| "unassigned".into());
        let page_no = req
            .param("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let l = listing(&r, &s.user, &mailboxes, &folder, page_no - 1, PAGE_SIZE)?;
        let names = user_names(&r)?;
        let mailbox_names: BTreeMap<MailboxId, String> =
            visible.iter().map(|m| (m.id, m.name.clone())).collect();
        let rows = l
            .rows
            .iter()
            .map(|c| conv_row(&r, lang, s.user.id, c, &names, &mailbox_names))
            .collect::<Result<Vec<_>, _>>()?;
        let folders: Vec<Value> = FOLDERS
            .iter()
            .map(|f| {
                let (n, unread) = l.counts.get(f).copied().unwrap_or((0, 0));
                json!({"id": f, "label": folder_label(lang, f), "count": n, "unread": unread})
            })
            .collect();
        // Hidden from the assign list: in every mailbox listed here.
        let hidden = r.all_mailbox_perms()?;
        let is_hidden = |u: &UserRecord| {
            !mailboxes.is_empty()
                && mailboxes.iter().all(|m| {
                    hidden.iter().any(|(hm, hu, b)| {
                        hm == m
                            && *hu == u.id
                            && crate::mailboxes::MailboxPerms(*b)
                                .has(crate::mailboxes::MailboxPerms::HIDDEN)
                    })
                })
        };
        let agents: Vec<Value> = r
            .users()?
            .into_iter()
            .filter(|u| !u.disabled && !is_hidden(u))
            .map(|u| json!({"id": u.id.0, "name": u.name}))
            .collect();
        let pages = l.total.div_ceil(PAGE_SIZE).max(1);
        let base = base_ctx(&r, req, s)?;
        Ok(page(
            "inbox.html",
            merge_ctx(
                base,
                json!({
                    "rows": rows, "folders": folders, "folder": folder,
                    "folder_label": folder_label(lang, &folder),
                    "mailbox": chosen, "page": page_no, "pages": pages, "total": l.total,
                    "agents": agents,
                }),
            ),
        ))
    };
    run().unwrap_or_else(store_error)
}

fn bulk(ctx: &WebCtx, s: &Session, form: &Form) -> Reply {
    let ids: Vec<ConvId> = form
        .all("ids")
        .into_iter()
        .filter_map(|i| i.parse().ok().map(ConvId))
        .collect();
    let action = form.text("action");
    let back = form
        .get("back")
        .filter(|b| b.starts_with("/inbox"))
        .unwrap_or("/inbox")
        .to_owned();
    let result = ctx.store.write(|tx| {
        for id in &ids {
            let Some(mut c) = tx.conversation(*id)? else {
                continue;
            };
            if !s.user.may_see(c.mailbox) || c.status == Status::Merged {
                continue;
            }
            match action.as_str() {
                "assign" => {
                    let before = c.assignee;
                    c.assignee = parse_assignee(tx, &form.text("assignee"), s, &c)?;
                    if c.assignee != before
                        && let Some(to) = c.assignee
                    {
                        crate::notify::notify_assigned(tx, ctx.clock.as_ref(), &c, &s.user, to)?;
                    }
                }
                "spam" => c.status = Status::Spam,
                a => match a.strip_prefix("status:").and_then(Status::parse) {
                    Some(st) if st != Status::Merged => c.status = st,
                    _ => continue,
                },
            }
            tx.put_conversation(&c)?;
        }
        Ok::<_, StoreError>(())
    });
    match result {
        Ok(()) => {
            ctx.changed();
            ctx.wake_outbox();
            Reply::redirect(&back)
        }
        Err(e) => store_error(e),
    }
}

/// "me", "" (nobody) or a user id who may see the conversation's mailbox.
fn parse_assignee(
    tx: &crate::store::Tx<'_>,
    value: &str,
    s: &Session,
    c: &ConversationRecord,
) -> Result<Option<UserId>, StoreError> {
    Ok(match value {
        "me" => Some(s.user.id),
        "" | "none" => None,
        v => match v.parse::<u64>().ok().map(UserId) {
            Some(id) => match tx.user(id)? {
                Some(u) if !u.disabled && u.may_see(c.mailbox) => Some(u.id),
                _ => c.assignee,
            },
            None => c.assignee,
        },
    })
}

// ---------------------------------------------------------------------------------------
// A conversation

/// The conversation `id` if `user` may see it (a merged one answers with the one it went
/// into); None for "not found", whatever the reason.
fn visible_conversation(
    r: &Reader,
    user: &UserRecord,
    id: ConvId,
) -> Result<Option<ConversationRecord>, StoreError> {
    match r.conversation(id)? {
        Some(c) if user.may_see(c.mailbox) => Ok(Some(c)),
        _ => Ok(None),
    }
}

fn origin_of(req: &Req) -> String {
    format!(
        "{}://{}",
        if req.peer.https { "https" } else { "http" },
        req.header("host").unwrap_or("localhost")
    )
}

/// Builds the page of conversation `id`; `notice` is a banner (collision, error).
fn conversation(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: ConvId,
    notice: Option<(String, Option<DraftRecord>)>,
) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let c = match visible_conversation(&r, &s.user, id) {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    if let (Status::Merged, Some(into)) = (c.status, c.merged_into) {
        return Reply::redirect(&format!("/c/{into}"));
    }
    let lang = lang_of(req, Some(&s.user));
    let was_unread = is_unread(&r, s.user.id, &c).unwrap_or(true);
    let run = || -> Result<Value, StoreError> {
        let msgs = r.conversation_messages(c.id)?;
        let outbox: BTreeMap<MsgId, crate::model::OutboxRecord> =
            crate::outbox::states(&r)?.into_iter().collect();
        let seen = r.read_mark(s.user.id, c.id)?;
        let mut items = Vec::new();
        for m in &msgs {
            items.push(message_view(&r, lang, &c, m, outbox.get(&m.id), seen)?);
        }
        let mailbox = r.mailboxes()?.into_iter().find(|m| m.id == c.mailbox);
        let from_choices: Vec<String> = mailbox
            .as_ref()
            .map(|m| {
                m.addresses()
                    .into_iter()
                    .filter(|(_, v)| *v == Validity::Valid)
                    .map(|(a, _)| a.to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let names = user_names(&r)?;
        let agents: Vec<Value> = r
            .users()?
            .into_iter()
            .filter(|u| !u.disabled && u.may_see(c.mailbox))
            .filter(|u| {
                !super::admin::mailboxes::hidden_from_assign(&r, c.mailbox, u.id).unwrap_or(false)
            })
            .map(|u| json!({"id": u.id.0, "name": u.name}))
            .collect();
        let mut others = Vec::new();
        if let Some(cust) = &c.customer {
            let mailbox_names: BTreeMap<MailboxId, String> =
                r.mailboxes()?.into_iter().map(|m| (m.id, m.name)).collect();
            for oid in r.customer_conversations(&cust.email)? {
                if oid == c.id {
                    continue;
                }
                if let Some(o) = visible_conversation(&r, &s.user, oid)?
                    && o.status != Status::Merged
                {
                    others.push(conv_row(&r, lang, s.user.id, &o, &names, &mailbox_names)?);
                }
                if others.len() >= 10 {
                    break;
                }
            }
        }
        let draft = match &notice {
            Some((_, Some(d))) => Some(d.clone()),
            _ => r.draft(s.user.id, c.id)?,
        };
        let last_in = msgs
            .iter()
            .rev()
            .find(|m| m.direction == Direction::In)
            .and_then(|m| m.from.as_ref().map(|a| a.email.clone()));
        let reply_to = last_in
            .or_else(|| c.customer.as_ref().map(|a| a.email.clone()))
            .unwrap_or_default();
        // Reply all: everyone else on the newest customer message, never our own addresses.
        let ours: Vec<String> = r
            .mailboxes()?
            .iter()
            .flat_map(|m| m.addresses().into_iter().map(|(a, _)| a.to_lowercase()))
            .collect();
        let mut all_cc: Vec<String> = Vec::new();
        if let Some(m) = msgs.iter().rev().find(|m| m.direction == Direction::In) {
            for a in m.to.iter().chain(m.cc.iter()) {
                let e = a.email.to_lowercase();
                if !e.is_empty()
                    && !ours.contains(&e)
                    && e != reply_to.to_lowercase()
                    && !all_cc.contains(&e)
                {
                    all_cc.push(e);
                }
            }
        }
        let statuses: Vec<Value> = [
            Status::Active,
            Status::Pending,
            Status::Closed,
            Status::Spam,
        ]
        .into_iter()
        .map(|st| json!({"id": st.as_str(), "label": status_label(lang, st)}))
        .collect();
        let mailboxes_to_move: Vec<Value> = visible_mailboxes(&r, &s.user)?
            .into_iter()
            .filter(|m| m.id != c.mailbox)
            .map(|m| json!({"id": m.id.0, "name": m.name}))
            .collect();
        Ok(json!({
            "conv": {
                "id": c.id.0,
                "subject": if c.subject.is_empty() { i18n::tr(lang, "(no subject)", &[]) } else { c.subject.clone() },
                "status": c.status.as_str(),
                "status_label": status_label(lang, c.status),
                "assignee": c.assignee.map(|a| a.0),
                "assignee_name": c.assignee.and_then(|a| names.get(&a).cloned()),
                "priority": c.priority.as_str(),
                "priority_label": i18n::tr(lang, priority_label(c.priority), &[]),
                "tags": c.tags,
                "fields": c.fields,
                "following": c.followers.contains(&s.user.id),
                "mailbox": mailbox.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
                "customer": c.customer.as_ref().map(|a| json!({"name": a.name, "email": a.email,
                    "company": r.customer(&a.email).ok().flatten().map(|x| x.company).unwrap_or_default()})),
                "count": c.message_count,
                "last_msg": msgs.iter().map(|m| m.id.0).max().unwrap_or(0),
            },
            "messages": items,
            "from_choices": from_choices,
            "reply_to": reply_to,
            "reply_all_cc": all_cc.join(", "),
            "agents": agents,
            "others": others,
            "move_to": mailboxes_to_move,
            "draft": draft,
            "notice": notice.as_ref().map(|(n, _)| n.clone()),
            "statuses": statuses,
            "priorities": crate::model::Priority::ALL.iter().map(|p| json!({
                "id": p.as_str(), "label": i18n::tr(lang, priority_label(*p), &[])
            })).collect::<Vec<_>>(),
        }))
    };
    let extra = match run() {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    let base = match base_ctx(&r, req, s) {
        Ok(b) => b,
        Err(e) => return store_error(e),
    };
    drop(r);
    if was_unread {
        let (uid, cid, at) = (s.user.id, c.id, c.last_activity);
        if let Err(e) = ctx.store.write(|tx| tx.set_read(uid, cid, at)) {
            log::warn!("web: could not mark #{cid} read: {e}");
        }
    }
    page("conversation.html", merge_ctx(base, extra))
}

fn message_view(
    r: &Reader,
    lang: &str,
    c: &ConversationRecord,
    m: &MessageRecord,
    outbox: Option<&crate::model::OutboxRecord>,
    seen: Option<i64>,
) -> Result<Value, StoreError> {
    let raw = r.raw_bytes(m.raw)?.unwrap_or_default();
    let view = crate::pipeline::parse::body_view(&raw).unwrap_or_default();
    let addr = |a: &crate::model::Addr| {
        if a.name.is_empty() {
            a.email.clone()
        } else {
            format!("{} <{}>", a.name, a.email)
        }
    };
    let list = |v: &[crate::model::Addr]| v.iter().map(addr).collect::<Vec<_>>().join(", ");
    let (kind, body_html, frame) = match (m.direction, &view.html) {
        (Direction::Note, _) | (_, None) => {
            let text = view
                .text
                .clone()
                .unwrap_or_else(|| String::from_utf8_lossy(&raw).into_owned());
            ("text", sanitize::text_to_html(&text), false)
        }
        (_, Some(_)) => ("html", String::new(), true),
    };
    let sending = outbox.map(|o| match &o.state {
        OutboxState::Queued { .. } => json!({"state": "queued", "label": i18n::tr(lang, "Waiting to be sent", &[]), "detail": o.last_error}),
        OutboxState::Sent { reply, .. } => json!({"state": "sent", "label": i18n::tr(lang, "Sent", &[]), "detail": reply}),
        OutboxState::Failed { reply, .. } => json!({"state": "failed", "label": i18n::tr(lang, "Not delivered", &[]), "detail": reply}),
    });
    let parts: Vec<Value> = view
        .parts
        .iter()
        .map(|p| {
            json!({
                "index": p.index, "name": p.name, "type": p.content_type,
                "size": human_size(p.size),
            })
        })
        .collect();
    Ok(json!({
        "id": m.id.0,
        "direction": match m.direction { Direction::In => "in", Direction::Out => "out", Direction::Note => "note" },
        "from": m.from.as_ref().map(addr).unwrap_or_default(),
        "from_name": m.from.as_ref().map(|a| if a.name.is_empty() { a.email.clone() } else { a.name.clone() }).unwrap_or_default(),
        "to": list(&m.to),
        "cc": list(&m.cc),
        "date": super::zone(r).format(m.date),
        "subject": m.subject,
        "kind": kind,
        "body": body_html,
        "frame": frame,
        "frame_url": format!("/c/{}/m/{}/body", c.id, m.id),
        "parts": parts,
        "sending": sending,
        "automatic": m.flags.is_automatic(),
        "new": seen.is_some_and(|s| m.date > s),
        "warnings": m.warnings,
    }))
}

fn human_size(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.0} KB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

/// The body frame, a download, or an inline image of one message.
fn message_part(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    conv: ConvId,
    msg: MsgId,
    what: &str,
    rest: &[&str],
) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let found = (|| -> Result<Option<Vec<u8>>, StoreError> {
        let Some(c) = visible_conversation(&r, &s.user, conv)? else {
            return Ok(None);
        };
        let Some(m) = r.message(msg)? else {
            return Ok(None);
        };
        if m.conv != c.id {
            return Ok(None);
        }
        r.raw_bytes(m.raw)
    })();
    let raw = match found {
        Ok(Some(raw)) => raw,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    drop(r);
    match (what, rest) {
        ("body", []) => {
            let Some(view) = crate::pipeline::parse::body_view(&raw) else {
                return not_found();
            };
            let images = req.param("images").as_deref() == Some("1");
            let cids: BTreeMap<String, u32> = view
                .parts
                .iter()
                .filter(|p| p.content_type.starts_with("image/"))
                .filter_map(|p| p.content_id.clone().map(|c| (c, p.index)))
                .collect();
            let base = format!("/c/{conv}/m/{msg}/cid");
            let cid_url = |cid: &str| cids.get(cid).map(|i| format!("{base}/{i}"));
            let html = view.html.unwrap_or_default();
            let safe = sanitize::mail_html(
                &html,
                &sanitize::HtmlOptions {
                    load_remote_images: images,
                    cid_url: &cid_url,
                },
            );
            let origin = origin_of(req);
            Reply::html(200, sanitize::frame_document(&safe.html, images, &origin))
                .with(
                    "Content-Security-Policy",
                    &sanitize::frame_csp(images, &origin),
                )
                .with("X-Frame-Options", "SAMEORIGIN")
                .with("Referrer-Policy", "no-referrer")
        }
        ("part", [n]) | ("cid", [n]) => {
            let Ok(index) = n.parse::<u32>() else {
                return not_found();
            };
            let view = crate::pipeline::parse::body_view(&raw).unwrap_or_default();
            let Some(info) = view.parts.iter().find(|p| p.index == index) else {
                return not_found();
            };
            let Some(bytes) = crate::pipeline::parse::part_bytes(&raw, index) else {
                return not_found();
            };
            if what == "cid" {
                // Inline images only as the image types browsers render safely.
                const SAFE: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
                if !SAFE.contains(&info.content_type.as_str()) {
                    return not_found();
                }
                return Reply::bytes(200, &info.content_type, bytes)
                    .with("Content-Security-Policy", "default-src 'none'; sandbox")
                    .with("Cache-Control", "private, max-age=3600");
            }
            let ascii: String = info
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Reply::bytes(200, "application/octet-stream", bytes)
                .with(
                    "Content-Disposition",
                    &format!(
                        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                        super::url_encode(&info.name)
                    ),
                )
                .with("Content-Security-Policy", "default-src 'none'; sandbox")
        }
        _ => not_found(),
    }
}

fn conversation_action(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: ConvId,
    action: &str,
    form: &Form,
) -> Reply {
    let c = match ctx
        .store
        .read()
        .and_then(|r| visible_conversation(&r, &s.user, id))
    {
        Ok(Some(c)) if c.status != Status::Merged => c,
        Ok(_) => return not_found(),
        Err(e) => return store_error(e),
    };
    let lang = lang_of(req, Some(&s.user));
    let now = ctx.now();
    let done = |r: Result<(), StoreError>| match r {
        Ok(()) => {
            ctx.changed();
            // An assignment may have queued a notification.
            ctx.wake_outbox();
            Reply::redirect(&format!("/c/{}", c.id))
        }
        Err(e) => store_error(e),
    };
    match action {
        "reply" | "note" | "forward" => {
            let draft = DraftRecord {
                from: form.text("from"),
                to: form.text("to"),
                cc: form.text("cc"),
                body: form.get("body").unwrap_or("").to_owned(),
                kind: action.to_owned(),
                updated: now,
            };
            if draft.body.trim().is_empty() {
                return conversation(
                    ctx,
                    req,
                    s,
                    c.id,
                    Some((i18n::tr(lang, "The message is empty.", &[]), Some(draft))),
                );
            }
            let seen_last = form
                .get("last_msg")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match collisions(ctx, c.id, seen_last) {
                Ok(Some(who)) => {
                    let _ = ctx.store.write(|tx| tx.put_draft(s.user.id, c.id, &draft));
                    return conversation(
                        ctx,
                        req,
                        s,
                        c.id,
                        Some((
                            i18n::tr(
                                lang,
                                "{who} wrote in this conversation since you opened it. Your message was NOT sent; it is kept below. Read the new message, then send again.",
                                &[("who", who)],
                            ),
                            Some(draft),
                        )),
                    );
                }
                Ok(None) => {}
                Err(e) => return store_error(e),
            }
            if action == "forward" && draft.to.is_empty() {
                return conversation(
                    ctx,
                    req,
                    s,
                    c.id,
                    Some((i18n::tr(lang, "Give the address to forward to.", &[]), None)),
                );
            }
            let sent = if action == "note" {
                crate::outbox::add_note_as(
                    &ctx.store,
                    ctx.clock.as_ref(),
                    c.id,
                    &s.user,
                    &draft.body,
                )
                .map(drop)
            } else {
                let split = |v: &str| -> Vec<String> {
                    v.split([',', ';'])
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect()
                };
                let settings = match ctx.store.read().and_then(|r| Settings::load(&r)) {
                    Ok(st) => st,
                    Err(e) => return store_error(e),
                };
                crate::outbox::queue_reply(
                    &ctx.store,
                    &settings,
                    ctx.clock.as_ref(),
                    &crate::outbox::ReplyRequest {
                        conv: c.id,
                        body: draft.body.clone(),
                        from: Some(draft.from.clone()).filter(|f| !f.is_empty()),
                        to: split(&draft.to),
                        cc: split(&draft.cc),
                        attachments: form.files.clone(),
                        quote: false,
                        agent: s.user.name.clone(),
                        forward: action == "forward",
                    },
                )
                .map(drop)
            };
            if let Err(e) = sent {
                return conversation(
                    ctx,
                    req,
                    s,
                    c.id,
                    Some((
                        i18n::tr(lang, "Not sent: {why}", &[("why", e.to_string())]),
                        Some(draft),
                    )),
                );
            }
            let uid = s.user.id;
            let r = ctx.store.write(|tx| {
                tx.remove_draft(uid, c.id)?;
                if let Some(mut now_c) = tx.conversation(c.id)? {
                    if action == "reply" && now_c.assignee.is_none() {
                        now_c.assignee = Some(uid);
                        tx.put_conversation(&now_c)?;
                    }
                    tx.set_read(uid, c.id, now_c.last_activity)?;
                }
                Ok(())
            });
            ctx.wake_outbox();
            done(r)
        }
        "draft" => {
            let draft = DraftRecord {
                from: form.text("from"),
                to: form.text("to"),
                cc: form.text("cc"),
                body: form.get("body").unwrap_or("").to_owned(),
                kind: form.text("kind"),
                updated: now,
            };
            let uid = s.user.id;
            let r = ctx.store.write(|tx| {
                if draft.body.trim().is_empty() {
                    tx.remove_draft(uid, c.id)
                } else {
                    tx.put_draft(uid, c.id, &draft)
                }
            });
            match r {
                Ok(()) => Reply::json(200, &json!({"saved": now})),
                Err(e) => store_error(e),
            }
        }
        "details" => {
            let details = match parse_details(lang, form) {
                Ok(d) => d,
                Err(why) => return conversation(ctx, req, s, c.id, Some((why, None))),
            };
            let r = ctx.store.write(|tx| {
                let Some(mut cur) = tx.conversation(c.id)? else {
                    return Ok(());
                };
                (cur.priority, cur.tags, cur.fields) = details;
                tx.put_conversation(&cur)
            });
            done(r)
        }
        "assign" | "status" | "follow" | "move" | "unread" | "merge" => {
            let value = form.text("value");
            let uid = s.user.id;
            let r = ctx.store.write(|tx| {
                let Some(mut cur) = tx.conversation(c.id)? else {
                    return Ok(());
                };
                match action {
                    "assign" => {
                        let before = cur.assignee;
                        cur.assignee = parse_assignee(tx, &value, s, &cur)?;
                        if cur.assignee != before
                            && let Some(to) = cur.assignee
                        {
                            crate::notify::notify_assigned(
                                tx,
                                ctx.clock.as_ref(),
                                &cur,
                                &s.user,
                                to,
                            )?;
                        }
                    }
                    "status" => match Status::parse(&value) {
                        Some(st) if st != Status::Merged => cur.status = st,
                        _ => return Ok(()),
                    },
                    "follow" => {
                        if cur.followers.contains(&uid) {
                            cur.followers.retain(|f| *f != uid);
                        } else {
                            cur.followers.push(uid);
                        }
                    }
                    "move" => match value.parse::<u64>().ok().map(MailboxId) {
                        Some(mb) if s.user.may_see(mb) && tx.mailbox(mb)?.is_some() => {
                            cur.mailbox = mb
                        }
                        _ => return Ok(()),
                    },
                    "unread" => return tx.clear_read(uid, c.id),
                    _ => {
                        let other = value
                            .trim_start_matches('#')
                            .parse::<u64>()
                            .ok()
                            .map(ConvId);
                        if let Some(o) = other
                            && let Some(oc) = tx.conversation(o)?
                            && s.user.may_see(oc.mailbox)
                            && oc.status != Status::Merged
                            && o != c.id
                        {
                            return crate::pipeline::merge(tx, c.id, o, ctx.clock.as_ref());
                        }
                        return Ok(());
                    }
                }
                tx.put_conversation(&cur)
            });
            if action == "merge"
                && let Some(o) = value.trim_start_matches('#').parse::<u64>().ok()
                && r.is_ok()
            {
                ctx.changed();
                return Reply::redirect(&format!("/c/{o}"));
            }
            if action == "unread" && r.is_ok() {
                ctx.changed();
                return Reply::redirect("/inbox");
            }
            done(r)
        }
        _ => not_found(),
    }
}

/// What an agent sets in a conversation's details form.
type Details = (
    crate::model::Priority,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
);

/// Reads the details form: a priority, comma-separated tags and `name=value` lines
/// (an empty value drops the field), with the filters' limits; the refusal says why.
fn parse_details(lang: &str, form: &Form) -> Result<Details, String> {
    use crate::filters::{MAX_ROWS, MAX_TEXT};
    let priority = crate::model::Priority::parse(&form.text("priority"))
        .ok_or_else(|| i18n::tr(lang, "Choose a priority.", &[]))?;
    let tags = crate::filters::split_tags(form.get("tags").unwrap_or(""));
    let too_long = |t: &str| t.chars().count() > MAX_TEXT;
    if tags.len() > MAX_ROWS || tags.iter().any(|t| too_long(t)) {
        return Err(i18n::tr(
            lang,
            "At most {n} tags of at most {max} characters each.",
            &[("n", MAX_ROWS.to_string()), ("max", MAX_TEXT.to_string())],
        ));
    }
    let mut fields = std::collections::BTreeMap::new();
    for line in form.get("fields").unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !too_long(k.trim()) && !too_long(v.trim()) => {
                (k.trim(), v.trim())
            }
            _ => {
                return Err(i18n::tr(
                    lang,
                    "Write each custom field as name=value on its own line (name not empty, at most {max} characters each): {line}",
                    &[("max", MAX_TEXT.to_string()), ("line", line.to_owned())],
                ));
            }
        };
        if !v.is_empty() {
            fields.insert(k.to_owned(), v.to_owned());
        }
    }
    if fields.len() > MAX_ROWS {
        return Err(i18n::tr(
            lang,
            "At most {n} custom fields.",
            &[("n", MAX_ROWS.to_string())],
        ));
    }
    Ok((priority, tags, fields))
}

/// Who replied or wrote a note in `conv` after message `seen_last` (the newest the page
/// showed), if anyone did.
fn collisions(ctx: &WebCtx, conv: ConvId, seen_last: u64) -> Result<Option<String>, StoreError> {
    let r = ctx.store.read()?;
    let msgs = r.conversation_messages(conv)?;
    Ok(msgs
        .iter()
        .filter(|m| m.id.0 > seen_last)
        .filter(|m| matches!(m.direction, Direction::Out | Direction::Note))
        .filter(|m| !m.flags.is_automatic())
        .map(|m| {
            m.from
                .as_ref()
                .map(|a| {
                    if a.name.is_empty() {
                        a.email.clone()
                    } else {
                        a.name.clone()
                    }
                })
                .unwrap_or_default()
        })
        .next())
}

// ---------------------------------------------------------------------------------------
// Customers and the profile

fn customer(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let email = req.param("email").unwrap_or_default();
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let run = || -> Result<Reply, StoreError> {
        let lang = lang_of(req, Some(&s.user));
        let names = user_names(&r)?;
        let mailbox_names: BTreeMap<MailboxId, String> =
            r.mailboxes()?.into_iter().map(|m| (m.id, m.name)).collect();
        let mut rows = Vec::new();
        let mut name = String::new();
        for id in r.customer_conversations(&email)? {
            if let Some(c) = visible_conversation(&r, &s.user, id)?
                && c.status != Status::Merged
            {
                if name.is_empty()
                    && let Some(a) = &c.customer
                {
                    name = a.name.clone();
                }
                rows.push(conv_row(&r, lang, s.user.id, &c, &names, &mailbox_names)?);
            }
        }
        if rows.is_empty() {
            return Ok(not_found());
        }
        let record = r.customer(&email)?;
        if name.is_empty()
            && let Some(c) = &record
        {
            name = c.name.clone();
        }
        let company = record.map(|c| c.company).unwrap_or_default();
        let base = base_ctx(&r, req, s)?;
        Ok(page(
            "customer.html",
            merge_ctx(
                base,
                json!({"customer": {"email": email, "name": name, "company": company}, "rows": rows}),
            ),
        ))
    };
    run().unwrap_or_else(store_error)
}

fn profile(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    notice: Option<String>,
    new_token: Option<String>,
) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let run = || -> Result<Reply, StoreError> {
        let tokens: Vec<Value> = r
            .api_tokens_of(s.user.id)?
            .into_iter()
            .map(|(k, t)| {
                json!({
                    "id": users::hex(k.get(..8).unwrap_or_default()),
                    "name": t.name, "created": super::zone(&r).format(t.created),
                    "last_used": if t.last_used == 0 { String::new() } else { super::zone(&r).format(t.last_used) },
                })
            })
            .collect();
        let langs: Vec<Value> = i18n::LANGUAGES
            .iter()
            .map(|(c, n)| json!({"code": c, "name": n}))
            .collect();
        let base = base_ctx(&r, req, s)?;
        let np = r.notify_prefs(s.user.id)?;
        Ok(page(
            "profile.html",
            merge_ctx(
                base,
                json!({
                    "user": {"name": s.user.name, "email": s.user.email, "language": s.user.language,
                             "signature": s.user.signature, "role": s.user.role.as_str()},
                    "tokens": tokens, "languages": langs, "notice": notice, "new_token": new_token,
                    "notify": {"new_conversation": np.new_conversation, "customer_reply": np.customer_reply,
                               "assigned": np.assigned, "mentioned": np.mentioned},
                }),
            ),
        ))
    };
    run().unwrap_or_else(store_error)
}

fn profile_action(ctx: &WebCtx, req: &Req, s: &Session, what: &str, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let now = ctx.now();
    let login = s.user.login.clone();
    match what {
        "notify" => {
            let p = crate::model::NotifyPrefs {
                new_conversation: form.get("new_conversation").is_some(),
                customer_reply: form.get("customer_reply").is_some(),
                assigned: form.get("assigned").is_some(),
                mentioned: form.get("mentioned").is_some(),
            };
            match ctx.store.write(|tx| tx.put_notify_prefs(s.user.id, &p)) {
                Ok(()) => Reply::redirect("/profile"),
                Err(e) => store_error(e),
            }
        }
        "save" => {
            let input = UserInput {
                name: Some(form.text("name")),
                email: Some(form.text("email")),
                language: Some(form.text("language")),
                signature: Some(form.get("signature").unwrap_or("").to_owned()),
                ..Default::default()
            };
            match ctx.store.write(|tx| users::edit(tx, &login, &input, now)) {
                Ok(_) => Reply::redirect("/profile"),
                Err(e) => profile(ctx, req, s, Some(user_error_text(lang, &e)), None),
            }
        }
        "password" => {
            let current = Secret::new(form.get("current").unwrap_or(""));
            if !users::verify_password(&s.user.password_hash, &current) {
                return profile(
                    ctx,
                    req,
                    s,
                    Some(i18n::tr(lang, "The current password is wrong.", &[])),
                    None,
                );
            }
            if form.get("new") != form.get("new2") {
                return profile(
                    ctx,
                    req,
                    s,
                    Some(i18n::tr(lang, "The two passwords differ.", &[])),
                    None,
                );
            }
            let input = UserInput {
                password: Some(Secret::new(form.get("new").unwrap_or(""))),
                ..Default::default()
            };
            match ctx.store.write(|tx| users::edit(tx, &login, &input, now)) {
                // Every session ended with the change, this one too: log in again here.
                Ok(u) => start_session(ctx, req, u.id, "/profile"),
                Err(e) => profile(ctx, req, s, Some(user_error_text(lang, &e)), None),
            }
        }
        "token" => {
            let name = form.text("name");
            match ctx
                .store
                .write(|tx| users::create_api_token(tx, s.user.id, &name, now))
            {
                Ok(t) => profile(ctx, req, s, None, Some(t)),
                Err(e) => profile(ctx, req, s, Some(user_error_text(lang, &e)), None),
            }
        }
        "revoke" => {
            let id = form.text("id");
            let uid = s.user.id;
            let r = ctx.store.write(|tx| {
                for (k, _) in tx.api_tokens_of(uid)? {
                    if users::hex(k.get(..8).unwrap_or_default()) == id {
                        tx.remove_api_token(&k)?;
                    }
                }
                Ok::<_, StoreError>(())
            });
            match r {
                Ok(()) => Reply::redirect("/profile"),
                Err(e) => store_error(e),
            }
        }
        _ => not_found(),
    }
}

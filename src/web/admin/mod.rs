//! The administration in the browser: mail accounts, mailboxes and addresses, SMTP
//! servers, users, postmaster filters, the communication log and the settings.
//!
//! Owns: the `/admin/...` routes, who may open them (admins; a mailbox's managers for the
//! pages of that mailbox, checked by the section), the shared pieces of every admin page
//! (the section menu, field errors shown next to their field, lists with a filter box
//! and sortable columns).
//! Must not: hold the rules of a setting (those live in `accounts`, `mailboxes`,
//! `smtp::servers`, `users`, ... so the CLI and the browser refuse the same things), speak
//! a mail protocol on the web thread without a time limit, or show a secret (passwords
//! are never sent back to the browser, only "set" / "not set").

pub mod accounts;
pub mod filters;
pub mod log;
pub mod settings;
pub mod users;

use super::auth::Session;
use super::pages::{Form, base_ctx, lang_of, merge_ctx, not_found, page, store_error};
use super::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The sections of the administration menu: (path segment, catalog label).
pub const SECTIONS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("accounts", "Mail accounts"),
    ("mailboxes", "Mailboxes and addresses"),
    ("smtp", "SMTP servers"),
    ("filters", "Filters"),
    ("users", "Users"),
    ("log", "Communication log"),
    ("settings", "Settings"),
];

pub mod mailboxes;
pub mod smtp;

/// `/admin/...`: `rest` is the path after `/admin`.
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    if let ["mailboxes", more @ ..] = rest {
        // A mailbox's managers may open its page: `mailboxes` checks every request.
        return mailboxes::route(ctx, req, s, form, more);
    }
    if !s.user.is_admin() {
        // Exactly like a page that does not exist: the admin area is not advertised.
        return not_found();
    }
    match (req.is_get(), rest) {
        (true, []) => log::dashboard(ctx, req, s),
        (true, ["log"]) => log::list(ctx, req, s),
        (true, ["log", seq]) => log::detail(ctx, req, s, seq),
        (true, ["settings"]) => settings::page(ctx, req, s),
        (false, ["settings", "save"]) => settings::save(ctx, req, s, form),
        (false, ["settings", "certificate"]) => settings::certificate(ctx, req, s, form),
        (_, ["accounts", more @ ..]) => accounts::route(ctx, req, s, form, more),
        (_, ["smtp", more @ ..]) => smtp::route(ctx, req, s, form, more),
        (_, ["filters", rest @ ..]) => filters::route(ctx, req, s, form, rest),
        (_, ["users", rest @ ..]) => users::route(ctx, req, s, form, rest),
        _ => not_found(),
    }
}

/// Renders an admin page: the common context, the menu with `section` marked, and `extra`.
pub fn render(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    template: &str,
    section: &str,
    extra: Value,
) -> Reply {
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let lang = lang_of(req, Some(&s.user));
    let base = match base_ctx(&r, req, s) {
        Ok(b) => b,
        Err(e) => return store_error(e),
    };
    let menu: Vec<Value> = SECTIONS
        .iter()
        .map(|(path, label)| {
            json!({"path": path, "label": i18n::tr(lang, label, &[]), "on": *path == section})
        })
        .collect();
    page(
        template,
        merge_ctx(
            base,
            merge_ctx(json!({"admin_menu": menu, "section": section}), extra),
        ),
    )
}

/// Field errors of a form, keyed by field name, in the page's language; the templates
/// show each next to its field (`admin_macros.html`).
#[derive(Default, Debug)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    /// Adds the catalog message `msg` (with `{name}` placeholders from `args`) for `field`.
    pub fn add(&mut self, lang: &str, field: &str, msg: &str, args: &[(&str, String)]) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| i18n::tr(lang, msg, args));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn to_json(&self) -> Value {
        json!(self.0)
    }
}

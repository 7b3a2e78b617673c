//! Templates and static assets of the web UI, compiled into the binary.
//!
//! Owns: the minijinja environment (HTML auto-escaping, the `t` translation function,
//! fuel so no template can loop for ever), the embedded files under `assets/`, and the
//! development switch `POSTROOM_ASSETS=DIR` that reads them from disk on every request.
//! Must not: read the store or decide what a page shows (handlers build the context).

use super::i18n;
use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, State};
use std::borrow::Cow;
use std::sync::OnceLock;

/// `(name, contents)` of every template, embedded at build time.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../assets/templates/base.html"),
    ),
    (
        "admin_accounts.html",
        include_str!("../../assets/templates/admin_accounts.html"),
    ),
    (
        "admin_accounts_form.html",
        include_str!("../../assets/templates/admin_accounts_form.html"),
    ),
    (
        "setup.html",
        include_str!("../../assets/templates/setup.html"),
    ),
    (
        "login.html",
        include_str!("../../assets/templates/login.html"),
    ),
    (
        "inbox.html",
        include_str!("../../assets/templates/inbox.html"),
    ),
    (
        "conversation.html",
        include_str!("../../assets/templates/conversation.html"),
    ),
    (
        "customer.html",
        include_str!("../../assets/templates/customer.html"),
    ),
    (
        "profile.html",
        include_str!("../../assets/templates/profile.html"),
    ),
    (
        "admin_mailboxes.html",
        include_str!("../../assets/templates/admin_mailboxes.html"),
    ),
    (
        "admin_mailbox.html",
        include_str!("../../assets/templates/admin_mailbox.html"),
    ),
    (
        "admin_smtp.html",
        include_str!("../../assets/templates/admin_smtp.html"),
    ),
    (
        "admin_smtp_edit.html",
        include_str!("../../assets/templates/admin_smtp_edit.html"),
    ),
    (
        "message.html",
        include_str!("../../assets/templates/message.html"),
    ),
    (
        "admin_base.html",
        include_str!("../../assets/templates/admin_base.html"),
    ),
    (
        "admin_macros.html",
        include_str!("../../assets/templates/admin_macros.html"),
    ),
    (
        "admin.html",
        include_str!("../../assets/templates/admin.html"),
    ),
    (
        "admin_log.html",
        include_str!("../../assets/templates/admin_log.html"),
    ),
    (
        "admin_log_entry.html",
        include_str!("../../assets/templates/admin_log_entry.html"),
    ),
    (
        "admin_settings.html",
        include_str!("../../assets/templates/admin_settings.html"),
    ),
    (
        "admin_filters.html",
        include_str!("../../assets/templates/admin_filters.html"),
    ),
    (
        "admin_filter.html",
        include_str!("../../assets/templates/admin_filter.html"),
    ),
    (
        "admin_filter_test.html",
        include_str!("../../assets/templates/admin_filter_test.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../assets/templates/admin_users.html"),
    ),
    (
        "admin_user.html",
        include_str!("../../assets/templates/admin_user.html"),
    ),
    (
        "invite.html",
        include_str!("../../assets/templates/invite.html"),
    ),
    (
        "admin_filter_report.html",
        include_str!("../../assets/templates/admin_filter_report.html"),
    ),
];

/// `(name, content type, contents)` of the static files under `/assets/`.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
];

/// The directory to read assets from instead of the embedded copies (development).
fn dev_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("POSTROOM_ASSETS").map(std::path::PathBuf::from)
}

/// `t("English text", name=value, ...)`: the message in the page's language.
fn translate(state: &State, msg: String, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let lang = state
        .lookup("lang")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "en".into());
    let mut args = Vec::new();
    for k in kwargs.args() {
        let v: minijinja::Value = kwargs.get(k)?;
        args.push((k, v.to_string()));
    }
    Ok(i18n::tr(&lang, &msg, &args))
}

fn environment(sources: Vec<(String, String)>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(5_000_000));
    env.add_function("t", translate);
    for (name, src) in sources {
        if let Err(e) = env.add_template_owned(name.clone(), src) {
            log::error!("web: template {name} does not compile: {e}");
        }
    }
    env
}

fn embedded() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        environment(
            TEMPLATES
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                .collect(),
        )
    })
}

/// Renders template `name` with `ctx` (a JSON object; `lang` picks the language).
pub fn render(name: &str, ctx: &serde_json::Value) -> Result<String, String> {
    let run = |env: &Environment<'_>| -> Result<String, String> {
        env.get_template(name)
            .and_then(|t| t.render(Serde(ctx)))
            .map_err(|e| format!("template {name}: {e:#}"))
    };
    match dev_dir() {
        Some(dir) => {
            let sources = TEMPLATES
                .iter()
                .map(|(n, s)| {
                    let disk = std::fs::read_to_string(dir.join("templates").join(n));
                    ((*n).to_owned(), disk.unwrap_or_else(|_| (*s).to_owned()))
                })
                .collect();
            run(&environment(sources))
        }
        None => run(embedded()),
    }
}

/// A static asset by file name: its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, Cow<'static, [u8]>)> {
    let (n, ct, body) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    if let Some(dir) = dev_dir()
        && let Ok(b) = std::fs::read(dir.join(n))
    {
        return Some((ct, Cow::Owned(b)));
    }
    Some((ct, Cow::Borrowed(body.as_bytes())))
}

/// A short fingerprint of the embedded assets, for cache-busting URLs.
pub fn asset_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (_, _, b) in ASSETS {
            ctx.update(b.as_bytes());
        }
        crate::users::hex(ctx.finish().as_ref().get(..6).unwrap_or_default())
    })
}

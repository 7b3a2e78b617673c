//! The settings page (`/admin/settings`): the site name, the conversation tag prefix,
//! the communication log's retention, the size limit new accounts start with, the
//! recipient limit, the web UI's address for links in mail, the time zone, and the HTTPS certificate (its fingerprint and validity; upload a
//! certificate with its key, or make a new self-signed one).
//!
//! Owns: the form and its messages. The rules of each setting are `config::SETTINGS`
//! (shared with `postroom config`); the certificate's handling is `web::tls::CertSlot`.
//! Must not: show or log the private key, or keep an uploaded key anywhere but the data
//! dir's key file (mode 0600).

use super::{FieldErrors, render};
use crate::config::{self, SettingError};
use crate::model::format_utc;
use crate::web::auth::Session;
use crate::web::pages::{Form, lang_of, store_error};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};

/// The settings the page edits, in order: (key, catalog label, catalog help).
pub const FIELDS: &[(&str, &str, &str)] = &[
    (
        "site_name",
        "Site name",
        "Shown in the browser's title bar and at the top of every page.",
    ),
    (
        "subject_tag_prefix",
        "Conversation tag prefix",
        "What stands before the conversation number in subjects: \"#\" gives [#1234], \"Ticket#\" gives [Ticket#1234].",
    ),
    (
        "comm_log_retention_days",
        "Keep the communication log (days)",
        "Older entries are removed; mail itself is never removed by this.",
    ),
    (
        "max_message_mb",
        "Size limit of new mail accounts (MB)",
        "Larger messages stay on the server and are reported. Each account can change its own.",
    ),
    (
        "max_recipients",
        "Most recipients per message",
        "To, Cc and BCC together: a guard against bulk sending.",
    ),
    (
        "web_url",
        "Address of this web UI",
        "Links in notification and invitation mails point here, e.g. https://postroom.local or https://helpdesk.example.org:8443.",
    ),
    (
        "time_zone",
        "Time zone",
        "Times on the pages are shown in it: UTC, an offset like +01:00, or a name like Europe/Paris.",
    ),
];

/// The validators' reasons (config.rs), as catalog messages.
pub const REASONS: &[&str] = &[
    "must be 1 to 20 characters",
    "must not contain spaces, brackets or digits",
    "must be a number of days from 1 to 3650",
    "must be a number from 1 to 100",
    "must be 1 to 60 characters, without control characters",
    "must be a number of megabytes from 1 to 1024",
    "is not a time zone: use UTC, an offset like +01:00, or a name like Europe/Paris",
    "is not a time zone this system knows (no zone file for it)",
    "has a damaged zone file",
    "must start with https:// or http://",
    "must be https://HOST or https://HOST:PORT, nothing after the host",
];

fn current(ctx: &WebCtx) -> Result<Vec<(String, String)>, crate::store::StoreError> {
    let r = ctx.store.read()?;
    let mut out = Vec::new();
    for (key, _, _) in FIELDS {
        let def = config::setting_def(key).map_err(|_| crate::store::StoreError::NotFound {
            what: "setting",
            id: 0,
        })?;
        out.push((
            (*key).to_owned(),
            r.setting(key)?.unwrap_or_else(|| def.default.to_owned()),
        ));
    }
    Ok(out)
}

fn show(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    values: &[(String, String)],
    errors: &FieldErrors,
    notice: Option<String>,
    error: Option<String>,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|(key, label, help)| {
            json!({
                "name": key,
                "label": i18n::tr(lang, label, &[]),
                "help": i18n::tr(lang, help, &[]),
                "value": values.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default(),
            })
        })
        .collect();
    let cert = ctx.cert.get().map(|c| {
        let info = c.info();
        json!({
            "fingerprint": info.fingerprint,
            "not_after": format_utc(info.not_after),
            "path": info.cert_path.display().to_string(),
        })
    });
    render(
        ctx,
        req,
        s,
        "admin_settings.html",
        "settings",
        json!({
            "fields": fields, "errors": errors.to_json(), "cert": cert,
            "notice": notice, "error": error,
        }),
    )
}

/// `GET /admin/settings`.
pub fn page(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    match current(ctx) {
        Ok(v) => show(ctx, req, s, &v, &FieldErrors::default(), None, None),
        Err(e) => store_error(e),
    }
}

/// `POST /admin/settings/save`: every field is checked; nothing is stored unless all
/// are valid.
pub fn save(ctx: &WebCtx, req: &Req, s: &Session, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let values: Vec<(String, String)> = FIELDS
        .iter()
        .map(|(k, _, _)| ((*k).to_owned(), form.text(k)))
        .collect();
    let mut errors = FieldErrors::default();
    for (k, v) in &values {
        match config::setting_def(k) {
            Ok(def) => {
                if let Err(why) = (def.validate)(v) {
                    errors.add(lang, k, &why, &[]);
                }
            }
            Err(e) => errors.add(lang, k, &e.to_string(), &[]),
        }
    }
    if !errors.is_empty() {
        return show(ctx, req, s, &values, &errors, None, None);
    }
    let saved = ctx.store.write(|tx| {
        for (k, v) in &values {
            config::set(tx, k, v)?;
        }
        Ok::<_, SettingError>(())
    });
    match saved {
        Ok(()) => {
            log::info!("settings changed by {:?} in the browser", s.user.login);
            show(
                ctx,
                req,
                s,
                &values,
                &errors,
                Some(i18n::tr(lang, "The settings are saved.", &[])),
                None,
            )
        }
        Err(e) => store_error(e),
    }
}

/// `POST /admin/settings/certificate`: upload (`cert` and `key` files) or `regenerate`.
pub fn certificate(ctx: &WebCtx, req: &Req, s: &Session, form: &Form) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let values = match current(ctx) {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    let none = FieldErrors::default();
    let Some(slot) = ctx.cert.get() else {
        return show(
            ctx,
            req,
            s,
            &values,
            &none,
            None,
            Some(i18n::tr(
                lang,
                "HTTPS is off (the service was started with --no-https), so there is no certificate to change.",
                &[],
            )),
        );
    };
    let result = if form.get("action") == Some("regenerate") {
        slot.regenerate()
    } else {
        match (form.file("cert"), form.file("key")) {
            (Some(c), Some(k)) => slot.install_pem(&c.bytes, &k.bytes),
            _ => {
                return show(
                    ctx,
                    req,
                    s,
                    &values,
                    &none,
                    None,
                    Some(i18n::tr(
                        lang,
                        "Choose both files: the certificate and its private key (PEM).",
                        &[],
                    )),
                );
            }
        }
    };
    match result {
        Ok(info) => {
            log::info!(
                "HTTPS certificate replaced by {:?} in the browser; new SHA-256 fingerprint {}",
                s.user.login,
                info.fingerprint
            );
            show(
                ctx,
                req,
                s,
                &values,
                &none,
                Some(i18n::tr(
                    lang,
                    "The new certificate is in use. Its SHA-256 fingerprint is {fp}; browsers will ask to accept it again.",
                    &[("fp", info.fingerprint)],
                )),
                None,
            )
        }
        Err(e) => show(ctx, req, s, &values, &none, None, Some(e.to_string())),
    }
}

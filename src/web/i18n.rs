//! The translation catalog: every string the UI shows goes through `tr`.
//!
//! Owns: the list of languages, picking one (the user's choice, else the browser's
//! `Accept-Language`, else English), and looking a message up. Messages are keyed by their
//! English text (gettext style); `assets/i18n/LANG.json` maps them to the translation.
//! A test checks that every message used in a template or in the code has an entry in
//! every shipped catalog.
//! Must not: format dates or numbers by locale (the UI shows ISO dates), or fail: a
//! missing entry shows the English text.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Languages shipped complete, the first is the default.
pub const LANGUAGES: &[(&str, &str)] = &[("en", "English"), ("fr", "Français")];

/// The French catalog, one file per area of the UI (`assets/i18n/fr*.json`).
pub const FR: &[&str] = &[
    include_str!("../../assets/i18n/fr.json"),
    include_str!("../../assets/i18n/fr-admin.json"),
    include_str!("../../assets/i18n/fr-accounts.json"),
    include_str!("../../assets/i18n/fr-mailboxes.json"),
    include_str!("../../assets/i18n/fr-filters.json"),
    include_str!("../../assets/i18n/fr-people.json"),
    include_str!("../../assets/i18n/fr-creation.json"),
];

fn catalog(lang: &str) -> Option<&'static HashMap<String, String>> {
    static FR_MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    match lang {
        "fr" => Some(FR_MAP.get_or_init(|| FR.iter().flat_map(|f| parse(f)).collect())),
        _ => None,
    }
}

/// A catalog file: a JSON object `{"English": "translation"}`. A damaged file reads as
/// empty (English shows) and is reported by the catalog test.
pub fn parse(json: &str) -> HashMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Whether `lang` is a shipped language.
pub fn is_supported(lang: &str) -> bool {
    LANGUAGES.iter().any(|(code, _)| *code == lang)
}

/// The best shipped language for an `Accept-Language` header.
pub fn negotiate(accept_language: &str) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for part in accept_language.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        if let Some((code, _)) = LANGUAGES.iter().find(|(c, _)| *c == primary)
            && best.is_none_or(|(_, bq)| q > bq)
        {
            best = Some((code, q));
        }
    }
    best.map(|(c, _)| c).unwrap_or("en")
}

/// `msg` in `lang`, with `{name}` placeholders replaced from `args`.
pub fn tr(lang: &str, msg: &str, args: &[(&str, String)]) -> String {
    let base = catalog(lang)
        .and_then(|c| c.get(msg))
        .map(String::as_str)
        .unwrap_or(msg);
    let mut out = base.to_owned();
    for (k, v) in args {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_browser_language_is_chosen_by_weight() {
        assert_eq!(negotiate("fr-CH, fr;q=0.9, en;q=0.8"), "fr");
        assert_eq!(negotiate("de-DE,de;q=0.9,en;q=0.5,fr;q=0.7"), "fr");
        assert_eq!(negotiate("de"), "en");
        assert_eq!(negotiate(""), "en");
    }

    #[test]
    fn placeholders_are_filled_and_missing_entries_show_english() {
        assert_eq!(
            tr("en", "{n} unread", &[("n", "3".into())]),
            "3 unread".to_string()
        );
        assert_eq!(
            tr("fr", "no such message in the catalog", &[]),
            "no such message in the catalog"
        );
        assert_eq!(tr("fr", "Inbox", &[]), "Boîte de réception");
    }
}

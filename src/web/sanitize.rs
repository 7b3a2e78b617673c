//! Mail bodies for the browser: hostile HTML becomes a sanitized fragment, plain text
//! becomes escaped HTML, and either is shown in a sandboxed iframe whose document and
//! Content-Security-Policy are made here.
//!
//! Owns: what of a mail body reaches the browser — the tag, attribute and URL allow-lists,
//! the CSS filter, remote-content blocking and counting, the frame document and its CSP.
//! Must not: do I/O, or know HTTP routes (URLs of inline parts come from the caller's
//! `cid_url`, our origin from the caller).
//!
//! Two layers, each enough against script on its own:
//! 1. **The fragment** ([`mail_html`]): ammonia (html5ever) with an allow-list of the
//!    formatting tags real mail uses. Every URL in an attribute or in CSS is classified
//!    here (`Target`) the way a browser would read it (WHATWG URL parsing, so entities,
//!    tabs, case and `\\host` tricks resolve first): links may be http, https, mailto or
//!    tel; images may be `cid:` (mapped to our server), `data:image/*`, or remote only
//!    when the agent asked for remote images. Relative URLs are dropped: they would
//!    resolve against our own server (`<img src="/logout">`).
//! 2. **The frame** ([`frame_document`], [`frame_csp`]): `default-src 'none'`, no script
//!    source at all, images only from `data:` and our origin (plus http/https when remote
//!    images are allowed), sandboxed without `allow-scripts` or `allow-same-origin`.
//!
//! Policy decisions:
//! - **`style` attributes are kept**, filtered by `css`: `url(...)` (also written with
//!   CSS escapes such as `u\72l(`) follows the image rules, strings holding a remote URL
//!   (`image-set("https://...")`, `@import "..."`) are emptied unless remote images are
//!   allowed, `expression(...)` becomes `none`, `@import` is renamed into an unknown
//!   at-rule, comments go. Layout tricks (position: fixed overlays) stay possible but are
//!   confined to the frame.
//! - **`<style>` elements are kept** (Outlook and newsletters lay out with them), filtered
//!   the same way. ammonia cannot filter stylesheet text (its property filter is for
//!   attributes only and panics if `<style>` is allowed with it), so `style_elements`
//!   rewrites the text of each `<style>` in ammonia's *serialized* output, whose shape is
//!   fixed: raw `<` only starts a tag, attribute values are double-quoted with `"` escaped,
//!   and a `<style>`'s raw text ends at the first `</style>`. The filtered CSS never
//!   contains `<` (written `\3c `), so it cannot end the element early.
//! - `class` and `id` are kept for those stylesheets (the frame has no script to confuse).
//! - `<a>` always gets `target="_blank"` and `rel="noopener noreferrer nofollow"`;
//!   protocol-relative links become https.
//! - `<title>`, `<script>`, `<noscript>`, `<template>`, `<iframe>`, `<noembed>`,
//!   `<noframes>`, `<object>`, `<applet>` go with their content; other unknown elements
//!   (`<form>`, `<button>`, `<select>`, ...) go but their text stays. Of `<svg>` and
//!   `<math>` only loose text stays: ammonia drops their elements with their content.
//! - `cid:` references are looked up with `cid_url` before ammonia runs (its attribute
//!   callback must be `Send + Sync + 'static`, the caller's closure is neither): a quick
//!   scan of the raw HTML collects candidates, and a reference spelled so that the scan
//!   missed it (entities) costs one more ammonia pass. At most [`MAX_CIDS`] distinct ones.
//! - A panic anywhere inside (html5ever on hostile input, the caller's `cid_url`) becomes
//!   a short notice instead of a dead web worker thread.
//!
//! ammonia behaviour worth knowing:
//! - Its attribute callback runs on the attributes of *every* element, also those it is
//!   about to drop, and *after* its own scheme check; relative URLs must be passed through
//!   (`UrlRelative::PassThrough`) for `//host` to reach the callback at all.
//! - It parses a fragment in a `<div>` context: `<html>`, `<head>`, `<body>` vanish, and
//!   what was in `<head>` (`<title>` text!) lands in the body.
//! - It strips elements it does not know but keeps their text, so raw-text elements
//!   (`<iframe>`, `<noscript>`) would show their markup as text unless listed as
//!   content-cleaning.

use ammonia::Url;
use ammonia::url::ParseError;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// How a mail's HTML may reach out.
pub struct HtmlOptions<'a> {
    /// Remote images (http/https/protocol-relative) are kept only when true.
    pub load_remote_images: bool,
    /// Maps a `cid:` reference (without the `cid:` prefix, angle brackets stripped,
    /// percent-decoded as RFC 2392 says) to a URL on our server for that inline part;
    /// None = drop the image.
    pub cid_url: &'a dyn Fn(&str) -> Option<String>,
}

/// A mail's HTML, fit for [`frame_document`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SafeHtml {
    /// The sanitized body fragment.
    pub html: String,
    /// Remote images (`<img>`, `background`, CSS `url(...)` and remote strings in CSS)
    /// removed because remote images were not allowed.
    pub remote_images_blocked: u32,
    /// The mail refers to remote content, whether it was loaded or not.
    pub has_remote_content: bool,
}

/// Distinct `cid:` references looked up for one mail.
pub const MAX_CIDS: usize = 1000;

/// Shown instead of a body whose sanitizing panicked.
const UNSHOWABLE: &str =
    "<p><em>This message&#39;s formatting cannot be shown safely. Its text part may help.</em></p>";

/// Elements kept. Whatever is not listed is dropped, its text kept.
#[rustfmt::skip]
const TAGS: &[&str] = &[
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img",
    "ins", "kbd", "label", "li", "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt",
    "ruby", "s", "samp", "section", "small", "span", "strike", "strong", "style", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt",
    "u", "ul", "var", "wbr",
];

/// Elements dropped together with everything inside them.
#[rustfmt::skip]
const DROP_WITH_CONTENT: &[&str] = &[
    "script", "title", "noscript", "template", "iframe", "noembed", "noframes", "object",
    "applet",
];

/// Attributes every kept element may carry.
const GENERIC_ATTRS: &[&str] = &["style", "class", "id", "dir", "lang", "title", "align"];

/// Attributes particular elements may carry. URL-valued ones (`href`, `src`,
/// `background`) are checked again by [`Shared::attribute`].
#[rustfmt::skip]
const TAG_ATTRS: &[(&str, &[&str])] = &[
    ("a", &["href", "name"]),
    ("img", &["src", "alt", "width", "height", "border", "hspace", "vspace", "valign"]),
    ("font", &["color", "face", "size"]),
    ("table", &[
        "width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "background",
        "frame", "rules", "summary", "valign",
    ]),
    ("td", &[
        "width", "height", "valign", "colspan", "rowspan", "bgcolor", "background",
        "nowrap", "scope", "abbr", "headers",
    ]),
    ("th", &[
        "width", "height", "valign", "colspan", "rowspan", "bgcolor", "background",
        "nowrap", "scope", "abbr", "headers",
    ]),
    ("tr", &["valign", "bgcolor", "height", "background"]),
    ("thead", &["valign"]),
    ("tbody", &["valign"]),
    ("tfoot", &["valign"]),
    ("col", &["span", "width", "valign"]),
    ("colgroup", &["span", "width", "valign"]),
    ("ol", &["start", "type", "reversed"]),
    ("ul", &["type"]),
    ("li", &["value", "type"]),
    ("hr", &["width", "size", "color", "noshade"]),
    ("blockquote", &["type"]),
    ("pre", &["width"]),
    ("time", &["datetime"]),
    ("del", &["datetime"]),
    ("ins", &["datetime"]),
    ("details", &["open"]),
    ("style", &["media", "type"]),
];

/// Elements whose `background` attribute is an image URL.
const BACKGROUND_TAGS: &[&str] = &["table", "td", "th", "tr"];

/// Schemes ammonia lets through to [`Shared::attribute`], which decides per element.
const URL_SCHEMES: &[&str] = &["http", "https", "mailto", "tel", "cid", "data"];

/// Relative references are resolved against this to tell `//host/x` (remote) from
/// `/x` (our own server).
const PROBE_HOST: &str = "postroom.invalid";
static PROBE_BASE: LazyLock<Result<Url, ParseError>> =
    LazyLock::new(|| Url::parse(&format!("https://{PROBE_HOST}/")));

/// Sanitizes a mail's HTML body into a fragment for [`frame_document`].
pub fn mail_html(html: &str, opts: &HtmlOptions) -> SafeHtml {
    catch_unwind(AssertUnwindSafe(|| sanitize(html, opts))).unwrap_or_else(|_| SafeHtml {
        html: UNSHOWABLE.to_owned(),
        remote_images_blocked: 0,
        has_remote_content: false,
    })
}

fn sanitize(html: &str, opts: &HtmlOptions) -> SafeHtml {
    let mut cids: HashMap<String, Option<String>> = HashMap::new();
    for key in cid_candidates(html) {
        let url = (opts.cid_url)(&key);
        cids.insert(key, url);
    }
    let mut round = 0;
    loop {
        let shared = Arc::new(Shared::new(opts.load_remote_images, cids));
        let out = builder(Arc::clone(&shared)).clean(html).to_string();
        let missed = shared.take_missed();
        cids = shared.cids.clone();
        let before = cids.len();
        if round == 0 {
            for key in missed {
                if cids.len() >= MAX_CIDS {
                    break;
                }
                let url = (opts.cid_url)(&key);
                cids.insert(key, url);
            }
        }
        if cids.len() > before {
            round += 1;
            continue;
        }
        let mut tally = Tally {
            blocked: shared.blocked.load(Ordering::Relaxed),
            remote: shared.remote.load(Ordering::Relaxed),
        };
        // Stylesheets are filtered after ammonia, with the same bounded lookups.
        let cids = RefCell::new(cids);
        let cid = |key: &str| {
            if let Some(url) = cids.borrow().get(key) {
                return url.clone();
            }
            let mut cids = cids.borrow_mut();
            if cids.len() >= MAX_CIDS {
                return None;
            }
            let url = (opts.cid_url)(key);
            cids.insert(key.to_owned(), url.clone());
            url
        };
        let policy = Policy {
            load_remote: opts.load_remote_images,
            cid: &cid,
        };
        let html = style_elements(out, &policy, &mut tally);
        return SafeHtml {
            html,
            remote_images_blocked: tally.blocked,
            has_remote_content: tally.remote,
        };
    }
}

fn builder(shared: Arc<Shared>) -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::empty();
    b.tags(TAGS.iter().copied().collect())
        .clean_content_tags(DROP_WITH_CONTENT.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRS.iter().copied().collect())
        .tag_attributes(
            TAG_ATTRS
                .iter()
                .map(|(tag, attrs)| (*tag, attrs.iter().copied().collect()))
                .collect(),
        )
        .tag_attribute_values(HashMap::new())
        .allowed_classes(HashMap::new())
        .url_schemes(URL_SCHEMES.iter().copied().collect())
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .id_prefix(None)
        .attribute_filter(move |tag, attr, value| shared.attribute(tag, attr, value));
    b
}

/// What the attribute callback needs; shared with ammonia, which wants `'static`.
struct Shared {
    load_remote: bool,
    tags: HashSet<&'static str>,
    cids: HashMap<String, Option<String>>,
    missed: Mutex<Vec<String>>,
    blocked: AtomicU32,
    remote: AtomicBool,
}

impl Shared {
    fn new(load_remote: bool, cids: HashMap<String, Option<String>>) -> Shared {
        Shared {
            load_remote,
            tags: TAGS.iter().copied().collect(),
            cids,
            missed: Mutex::new(Vec::new()),
            blocked: AtomicU32::new(0),
            remote: AtomicBool::new(false),
        }
    }

    fn cid(&self, key: &str) -> Option<String> {
        if let Some(url) = self.cids.get(key) {
            return url.clone();
        }
        if let Ok(mut missed) = self.missed.lock()
            && missed.len() < MAX_CIDS
        {
            missed.push(key.to_owned());
        }
        None
    }

    fn take_missed(&self) -> Vec<String> {
        self.missed
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// The final word on each attribute ammonia kept: None drops it.
    fn attribute<'u>(&self, tag: &str, attr: &str, value: &'u str) -> Option<Cow<'u, str>> {
        if !self.tags.contains(tag) {
            // ammonia drops the element anyway; its URLs must not be counted.
            return None;
        }
        let mut tally = Tally::default();
        let cid = |key: &str| self.cid(key);
        let policy = Policy {
            load_remote: self.load_remote,
            cid: &cid,
        };
        let out = match (tag, attr) {
            (_, "href") => link(value).map(Cow::Owned),
            ("img", "src") => image(value, &policy, &mut tally),
            (t, "background") if BACKGROUND_TAGS.contains(&t) => image(value, &policy, &mut tally),
            (_, "src" | "background") => None,
            (_, "style") => {
                let css = css(value, &policy, &mut tally);
                (!css.trim().is_empty()).then_some(Cow::Owned(css))
            }
            _ => Some(Cow::Borrowed(value)),
        };
        if tally.blocked > 0 {
            self.blocked.fetch_add(tally.blocked, Ordering::Relaxed);
        }
        if tally.remote {
            self.remote.store(true, Ordering::Relaxed);
        }
        out
    }
}

/// How URLs in one body resolve.
struct Policy<'p> {
    load_remote: bool,
    cid: &'p dyn Fn(&str) -> Option<String>,
}

/// Remote references seen while sanitizing.
#[derive(Default)]
struct Tally {
    blocked: u32,
    remote: bool,
}

/// What a URL points at, read as a browser reads it.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// http or https, absolute (protocol-relative made https).
    Remote(String),
    /// An inline part: the key for `cid_url`.
    Cid(String),
    /// `data:image/...`.
    DataImage,
    /// mailto or tel, normalized.
    Contact(String),
    /// Anything else: other schemes (javascript, vbscript, data:text/html, file, ...),
    /// references relative to our own server, unparseable text.
    Other,
}

fn classify(raw: &str) -> Target {
    // What browsers ignore in a URL: leading and trailing C0 controls and spaces, and
    // every tab and newline.
    let cleaned: String = raw
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if let Some(rest) = strip_prefix_ci(&cleaned, "cid:") {
        return Target::Cid(cid_key(rest));
    }
    match Url::parse(&cleaned) {
        Ok(u) => match u.scheme() {
            "http" | "https" => Target::Remote(u.into()),
            "mailto" | "tel" => Target::Contact(u.into()),
            "data"
                if u.path()
                    .get(..6)
                    .is_some_and(|m| m.eq_ignore_ascii_case("image/")) =>
            {
                Target::DataImage
            }
            _ => Target::Other,
        },
        Err(ParseError::RelativeUrlWithoutBase) => match PROBE_BASE
            .as_ref()
            .ok()
            .and_then(|base| base.join(&cleaned).ok())
        {
            Some(u) if u.host_str() != Some(PROBE_HOST) => Target::Remote(u.into()),
            _ => Target::Other,
        },
        Err(_) => Target::Other,
    }
}

/// A link target, or None to drop the `href`.
fn link(value: &str) -> Option<String> {
    match classify(value) {
        Target::Remote(url) | Target::Contact(url) => Some(url),
        _ => None,
    }
}

/// An image source (`src`, `background`, CSS `url()`), or None to drop it.
fn image<'u>(value: &'u str, policy: &Policy, tally: &mut Tally) -> Option<Cow<'u, str>> {
    match classify(value) {
        Target::Remote(url) => {
            tally.remote = true;
            if policy.load_remote {
                Some(Cow::Owned(url))
            } else {
                tally.blocked = tally.blocked.saturating_add(1);
                None
            }
        }
        Target::Cid(key) => (policy.cid)(&key).map(Cow::Owned),
        Target::DataImage => Some(Cow::Borrowed(value)),
        Target::Contact(_) | Target::Other => None,
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// `<part@host>` or `part%40host` -> `part@host`.
fn cid_key(rest: &str) -> String {
    let t = rest.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t);
    percent_decode(t)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `cid:` references in the raw HTML, as [`cid_key`] will name them; spellings this
/// misses (entities) are found by the attribute callback and cost a second pass.
fn cid_candidates(html: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(colon) = html.get(from..).and_then(|rest| rest.find(':')) {
        let i = from + colon;
        from = i + 1;
        if out.len() >= MAX_CIDS {
            break;
        }
        let is_cid = i
            .checked_sub(3)
            .and_then(|s| html.get(s..i))
            .is_some_and(|p| p.eq_ignore_ascii_case("cid"));
        if !is_cid {
            continue;
        }
        let rest = html.get(i + 1..).unwrap_or("");
        // At most 998 bytes, and the scan resumes after them: the work stays linear.
        let end = rest
            .char_indices()
            .find(|&(n, c)| n >= 998 || c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>'))
            .map_or(rest.len(), |(n, _)| n);
        from += end;
        let key = cid_key(rest.get(..end).unwrap_or(""));
        if !key.is_empty() && seen.insert(key.clone()) {
            out.push(key);
        }
    }
    out
}

/// Filters the text of each `<style>` element in ammonia's serialized output (see the
/// module doc for why this scan is exact on that output).
fn style_elements(html: String, policy: &Policy, tally: &mut Tally) -> String {
    if !html.contains("<style") {
        return html;
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html.as_str();
    while let Some(lt) = rest.find('<') {
        let (text, from_tag) = split(rest, lt);
        out.push_str(text);
        let (tag, after) = split(from_tag, tag_len(from_tag));
        out.push_str(tag);
        rest = after;
        let is_style = tag
            .strip_prefix("<style")
            .is_some_and(|r| r.starts_with(['>', ' ']));
        if is_style {
            let (sheet, after) = split(rest, rest.find("</style>").unwrap_or(rest.len()));
            out.push_str(&css(sheet, policy, tally));
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Length of the tag `s` starts with, up to its `>` outside a quoted value.
fn tag_len(s: &str) -> usize {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return i + 1,
            _ => {}
        }
    }
    s.len()
}

fn split(s: &str, at: usize) -> (&str, &str) {
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// A cursor over CSS source.
struct Cur<'s> {
    s: &'s str,
    i: usize,
}

impl<'s> Cur<'s> {
    fn rest(&self) -> &'s str {
        self.s.get(self.i..).unwrap_or("")
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }
    fn since(&self, start: usize) -> &'s str {
        self.s.get(start..self.i).unwrap_or("")
    }
    /// A backslash that starts an escape (CSS Syntax 4.3.8).
    fn at_escape(&self) -> bool {
        self.peek() == Some('\\') && !matches!(self.peek2(), None | Some('\n' | '\r' | '\x0c'))
    }
    /// The next token would be a name (ident or the unit of a number) or a number; we
    /// read them all alike, as CSS reads names: letters, digits, `-`, `_`, non-ASCII,
    /// escapes.
    fn at_name(&self) -> bool {
        self.peek().is_some_and(is_name_char) || self.at_escape()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_css_ws) {
            self.bump();
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '\0') || !c.is_ascii()
}

fn is_css_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// The character of an escape whose backslash was consumed.
fn escape(c: &mut Cur) -> char {
    let mut hex = String::new();
    while hex.len() < 6 {
        match c.peek() {
            Some(h) if h.is_ascii_hexdigit() => {
                c.bump();
                hex.push(h);
            }
            _ => break,
        }
    }
    if hex.is_empty() {
        return c.bump().unwrap_or('\u{fffd}');
    }
    if c.peek() == Some('\r') {
        c.bump();
        if c.peek() == Some('\n') {
            c.bump();
        }
    } else if c.peek().is_some_and(is_css_ws) {
        c.bump();
    }
    u32::from_str_radix(&hex, 16)
        .ok()
        .filter(|&n| n != 0)
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}')
}

/// A name with its escapes resolved.
fn name(c: &mut Cur) -> String {
    let mut v = String::new();
    loop {
        if c.at_escape() {
            c.bump();
            v.push(escape(c));
        } else if let Some(ch) = c.peek().filter(|&ch| is_name_char(ch)) {
            c.bump();
            v.push(ch);
        } else {
            return v;
        }
    }
}

/// A string token's value; the cursor is on the opening quote. An unescaped newline
/// ends it unconsumed (a bad string), as in CSS.
fn string(c: &mut Cur) -> String {
    let quote = c.bump();
    let mut v = String::new();
    while let Some(ch) = c.peek() {
        match ch {
            '\n' | '\r' | '\x0c' => break,
            '\\' => {
                c.bump();
                match c.peek() {
                    None => {}
                    Some('\n' | '\x0c') => {
                        c.bump();
                    }
                    Some('\r') => {
                        c.bump();
                        if c.peek() == Some('\n') {
                            c.bump();
                        }
                    }
                    Some(_) => v.push(escape(c)),
                }
            }
            _ => {
                c.bump();
                if Some(ch) == quote {
                    break;
                }
                v.push(ch);
            }
        }
    }
    v
}

/// The target of an unquoted `url(`; None for a bad url, whose rest is skipped.
fn unquoted_url(c: &mut Cur) -> Option<String> {
    let mut v = String::new();
    loop {
        match c.peek() {
            None => return Some(v),
            Some(')') => {
                c.bump();
                return Some(v);
            }
            Some(ch) if is_css_ws(ch) => {
                c.skip_ws();
                if matches!(c.peek(), Some(')') | None) {
                    c.bump();
                    return Some(v);
                }
                break;
            }
            Some('\\') if c.at_escape() => {
                c.bump();
                v.push(escape(c));
            }
            Some(ch) if matches!(ch, '"' | '\'' | '(' | '\\') || ch.is_control() => break,
            Some(ch) => {
                c.bump();
                v.push(ch);
            }
        }
    }
    // The remnants of a bad url.
    while let Some(ch) = c.bump() {
        match ch {
            ')' => break,
            '\\' => {
                c.bump();
            }
            _ => {}
        }
    }
    None
}

/// Skips to the `)` closing a block whose `(` was consumed.
fn skip_block(c: &mut Cur) {
    let mut depth = 1usize;
    while let Some(ch) = c.peek() {
        match ch {
            '"' | '\'' => {
                string(c);
            }
            '\\' => {
                c.bump();
                c.bump();
            }
            '(' => {
                c.bump();
                depth += 1;
            }
            ')' => {
                c.bump();
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {
                c.bump();
            }
        }
    }
}

/// Appends CSS source, with `<` escaped so that it can never close a `<style>`.
fn push_css(out: &mut String, src: &str) {
    for ch in src.chars() {
        if ch == '<' {
            out.push_str("\\3c ");
        } else {
            out.push(ch);
        }
    }
}

/// Appends `s` as the inside of a double-quoted CSS string.
fn push_css_string(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '<' => out.push_str("\\3c "),
            c if c.is_control() => out.push_str(&format!("\\{:x} ", u32::from(c))),
            c => out.push(c),
        }
    }
}

/// Filters CSS (a `style` attribute or a stylesheet): URLs follow the image rules,
/// strings holding remote URLs are emptied unless remote images are allowed,
/// `expression()` and `@import` are neutralized, comments removed, `<` escaped.
fn css(src: &str, policy: &Policy, tally: &mut Tally) -> String {
    let mut out = String::with_capacity(src.len());
    let mut c = Cur { s: src, i: 0 };
    while let Some(ch) = c.peek() {
        let before = c.i;
        if ch == '/' && c.peek2() == Some('*') {
            c.bump();
            c.bump();
            while c.peek().is_some() && !c.rest().starts_with("*/") {
                c.bump();
            }
            c.bump();
            c.bump();
            out.push(' ');
        } else if ch == '"' || ch == '\'' {
            let start = c.i;
            let value = string(&mut c);
            if matches!(classify(&value), Target::Remote(_)) {
                tally.remote = true;
                if policy.load_remote {
                    push_css(&mut out, c.since(start));
                } else {
                    tally.blocked = tally.blocked.saturating_add(1);
                    out.push_str("\"\"");
                }
            } else {
                push_css(&mut out, c.since(start));
            }
        } else if ch == '@' {
            c.bump();
            out.push('@');
            let start = c.i;
            if c.at_name() && name(&mut c).eq_ignore_ascii_case("import") {
                out.push_str("-postroom-blocked-import");
            } else {
                push_css(&mut out, c.since(start));
            }
        } else if c.at_name() {
            let start = c.i;
            let word = name(&mut c);
            if c.peek() == Some('(') && word.eq_ignore_ascii_case("url") {
                c.bump();
                c.skip_ws();
                let target = if matches!(c.peek(), Some('"' | '\'')) {
                    let v = string(&mut c);
                    c.skip_ws();
                    if c.peek() == Some(')') {
                        c.bump();
                        Some(v)
                    } else {
                        skip_block(&mut c);
                        None
                    }
                } else {
                    unquoted_url(&mut c)
                };
                match target.and_then(|t| image(&t, policy, tally).map(Cow::into_owned)) {
                    Some(url) => {
                        out.push_str("url(\"");
                        push_css_string(&mut out, &url);
                        out.push_str("\")");
                    }
                    None => out.push_str("none"),
                }
            } else if c.peek() == Some('(') && word.eq_ignore_ascii_case("expression") {
                c.bump();
                skip_block(&mut c);
                out.push_str("none");
            } else {
                push_css(&mut out, c.since(start));
            }
        } else {
            c.bump();
            if ch == '<' {
                out.push_str("\\3c ");
            } else {
                out.push(ch);
            }
        }
        if c.i == before {
            // Every branch consumes; should one ever not, skip a character rather than
            // loop forever.
            c.bump();
        }
    }
    out
}

/// Plain text as HTML: escaped, http/https/mailto URLs linked, quoted lines (`>`) in
/// `<span class="q">`, line breaks and runs of spaces kept (the page's stylesheet gives
/// `.plain` `white-space: pre-wrap`; no inline style, which the page CSP forbids).
pub fn text_to_html(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 96);
    out.push_str("<div class=\"plain\">");
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let quoted = line.trim_start_matches([' ', '\t']).starts_with('>');
        if quoted {
            out.push_str("<span class=\"q\">");
        }
        linkify(line, &mut out);
        if quoted {
            out.push_str("</span>");
        }
    }
    out.push_str("</div>");
    out
}

const LINK_SCHEMES: &[&str] = &["https://", "http://", "mailto:"];

fn linkify(line: &str, out: &mut String) {
    let mut rest = line;
    while let Some((start, scheme_len)) = link_start(rest) {
        let (before, from) = split(rest, start);
        push_escaped(out, before);
        let len = link_len(from);
        let url = from.get(..len).unwrap_or("");
        let href = (len > scheme_len)
            .then(|| Url::parse(url).ok())
            .flatten()
            .filter(|u| matches!(u.scheme(), "http" | "https" | "mailto"));
        match href {
            Some(href) => {
                out.push_str("<a href=\"");
                push_escaped(out, href.as_str());
                out.push_str("\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">");
                push_escaped(out, url);
                out.push_str("</a>");
                rest = from.get(len..).unwrap_or("");
            }
            None => {
                // Not a URL after all: its text as text. Skipping all of it (not just the
                // scheme) keeps a line of `http://[http://[...` linear.
                let (text, after) = split(from, len.max(scheme_len));
                push_escaped(out, text);
                rest = after;
            }
        }
    }
    push_escaped(out, rest);
}

/// Where the next link starts in `s` (not inside a word), and its scheme's length.
fn link_start(s: &str) -> Option<(usize, usize)> {
    let mut prev: Option<char> = None;
    for (i, ch) in s.char_indices() {
        if !prev.is_some_and(|p| p.is_alphanumeric()) && matches!(ch, 'h' | 'H' | 'm' | 'M') {
            let rest = s.get(i..).unwrap_or("");
            if let Some(scheme) = LINK_SCHEMES
                .iter()
                .find(|sch| strip_prefix_ci(rest, sch).is_some())
            {
                return Some((i, scheme.len()));
            }
        }
        prev = Some(ch);
    }
    None
}

/// Length of the URL `s` starts with: up to whitespace, `<`, `>` or `"`, without
/// trailing punctuation or a closing bracket it did not open.
fn link_len(s: &str) -> usize {
    let end = s
        .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        .unwrap_or(s.len());
    let mut url = s.get(..end).unwrap_or("");
    // Brackets opened and closed, counted once (a count per stripped character would be
    // quadratic on a line of a million `)`).
    let pairs = [('(', ')'), ('[', ']'), ('{', '}')];
    let mut balance = pairs
        .map(|(open, close)| url.matches(open).count() as i64 - url.matches(close).count() as i64);
    while let Some(last) = url.chars().next_back() {
        let closing = pairs.iter().position(|&(_, close)| close == last);
        let strip = match closing.and_then(|n| balance.get_mut(n)) {
            Some(b) if *b < 0 => {
                *b += 1;
                true
            }
            Some(_) => false,
            None => matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '*'),
        };
        if !strip {
            break;
        }
        url = url.get(..url.len() - last.len_utf8()).unwrap_or("");
    }
    url.len()
}

/// Appends text escaped for HTML content or a double-quoted attribute; C0 controls
/// other than tab (NUL included) are dropped.
fn push_escaped(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(ch),
            c if c < ' ' || c == '\u{7f}' => {}
            c => out.push(c),
        }
    }
}

/// The stylesheet of the frame: readable defaults that the mail's own styles override.
const FRAME_CSS: &str = "\
:root{color-scheme:light}\
body{margin:0;padding:12px 16px;background:#fff;color:#222;\
font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
overflow-wrap:break-word}\
img{max-width:100%;height:auto}\
pre{white-space:pre-wrap;font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}\
blockquote{margin:.5em 0 .5em .3em;padding-left:.8em;border-left:3px solid #ccd}\
.q{color:#5a5a6e}\
a{color:#1a56b0}";

/// The whole document for the sandboxed iframe. `body` must come from [`mail_html`] or
/// [`text_to_html`]: it is inserted as it is. The CSP is repeated in a `<meta>` (without
/// `frame-ancestors` and `sandbox`, which browsers ignore there) in case a response goes
/// out without the header.
pub fn frame_document(body: &str, load_remote_images: bool, own_origin: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<!doctype html>\n<html><head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    push_escaped(&mut out, &csp_fetches(load_remote_images, own_origin));
    out.push_str("\">\n<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str("<base target=\"_blank\">\n<style>");
    out.push_str(FRAME_CSS);
    out.push_str("</style>\n</head>\n<body>\n");
    out.push_str(body);
    out.push_str("\n</body></html>\n");
    out
}

/// The `Content-Security-Policy` header for [`frame_document`]. `own_origin` (like
/// `http://192.168.1.5:8080`) is where `cid:` images are served; the sandboxed frame has
/// an opaque origin, so `'self'` would not match it. An origin that is not http(s) is
/// left out.
pub fn frame_csp(load_remote_images: bool, own_origin: &str) -> String {
    format!(
        "{}; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox",
        csp_fetches(load_remote_images, own_origin)
    )
}

/// The fetch and document directives, also valid in a `<meta>`.
fn csp_fetches(load_remote_images: bool, own_origin: &str) -> String {
    let mut img = String::from("data:");
    if let Some(origin) = origin(own_origin) {
        img.push(' ');
        img.push_str(&origin);
    }
    if load_remote_images {
        img.push_str(" https: http:");
    }
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src {img}; font-src data:; \
         base-uri 'none'; form-action 'none'"
    )
}

fn origin(s: &str) -> Option<String> {
    let u = Url::parse(s.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let origin = u.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn no_cid(_: &str) -> Option<String> {
        None
    }

    fn clean(html: &str) -> SafeHtml {
        mail_html(
            html,
            &HtmlOptions {
                load_remote_images: false,
                cid_url: &no_cid,
            },
        )
    }

    fn with_remote(html: &str) -> SafeHtml {
        mail_html(
            html,
            &HtmlOptions {
                load_remote_images: true,
                cid_url: &no_cid,
            },
        )
    }

    /// Sanitizes each input and checks that none of the needles (lowercase) is in the
    /// lowercased output.
    fn assert_absent(cases: &[(&str, &[&str])]) {
        for (input, needles) in cases {
            let out = clean(input).html.to_lowercase();
            for needle in *needles {
                assert!(
                    !out.contains(needle),
                    "{needle:?} survived in {out:?} (input {input:?})"
                );
            }
        }
    }

    #[test]
    fn scripts_in_every_spelling_are_removed() {
        let gone: &[&str] = &["<script", "<scr", "alert(1)"];
        let tag: &[&str] = &["<script", "<scr"];
        assert_absent(&[
            ("<script>alert(1)</script>", gone),
            ("<SCRIPT>alert(1)</SCRIPT>", gone),
            ("<ScRiPt type=text/javascript>alert(1)</sCrIpT>", gone),
            ("<script/x>alert(1)</script>", gone),
            ("<script\n>alert(1)</script\n>", gone),
            (
                "<script src=//evil.example/x.js></script>",
                &["<script", "evil"],
            ),
            // the parser closes the odd tag at the inner `<script>`: text stays, escaped
            ("<scr<script>ipt>alert(1)</script>", tag),
            ("<<script>script>alert(1)<</script>/script>", tag),
            ("<!--<script>alert(1)</script>-->", gone),
            ("<!--><script>alert(1)</script>-->", gone),
            ("<![CDATA[<script>alert(1)</script>]]>", tag),
            ("<svg><script>alert(1)</script></svg>", gone),
            (
                "<svg><script xlink:href=data:,alert(1)></script></svg>",
                gone,
            ),
            ("<math><mi><script>alert(1)</script></mi></math>", gone),
            (
                "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>x</maction></math>",
                &["javascript", "xlink"],
            ),
            (
                "<noscript><p title=\"</noscript><script>alert(1)</script>\"></noscript>",
                gone,
            ),
            ("<template><script>alert(1)</script></template>", gone),
        ]);
    }

    #[test]
    fn event_handlers_are_removed() {
        let out = clean(
            "<div onclick=alert(1)>a</div><body onload=alert(1)><p ONMOUSEOVER=\"alert(1)\">b</p>\
             <img src=x onerror=alert(1)><a href=https://example.com/ onfocus=alert(1) autofocus>c</a>\
             <details open ontoggle=alert(1)><summary>d</summary></details>\
             <svg onload=alert(1)><animate onbegin=alert(1) attributeName=x dur=1s></svg>\
             <table background=x onerror=alert(1)><tr><td onmouseenter=alert(1)>e</td></tr></table>",
        )
        .html
        .to_lowercase();
        assert!(!out.contains(" on"), "{out}");
        assert!(!out.contains("alert"), "{out}");
        for text in ["a", "b", "c", "d", "e"] {
            assert!(out.contains(&format!(">{text}<")), "{text} lost: {out}");
        }
    }

    #[test]
    fn javascript_vbscript_and_data_links_are_removed() {
        for href in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " \t javascript:alert(1)",
            "java\tscript:alert(1)",
            "java&#x09;script:alert(1)",
            "java&#10;script:alert(1)",
            "&#106;avascript:alert(1)",
            "&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)",
            "&#0000106&#0000097vascript:alert(1)",
            "javascript&colon;alert(1)",
            "\u{1}javascript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "data:text/html,<script>alert(1)</script>",
            "data:image/png;base64,iVBORw0KGgo=",
            "file:///etc/passwd",
        ] {
            let out = clean(&format!("<a href=\"{href}\">click</a>")).html;
            assert!(!out.contains("href"), "{href:?} kept: {out}");
            assert!(out.contains(">click</a>"), "{href:?}: text lost: {out}");
        }
    }

    #[test]
    fn links_open_in_a_new_tab_without_referrer() {
        let out = clean(
            "<a href=\"https://example.com/x?a=1&amp;b=2\" target=\"_self\" rel=\"opener\">ok</a>\
             <a href=\"mailto:help@example.com\" target=_top>mail</a>",
        )
        .html;
        assert_eq!(
            out,
            "<a href=\"https://example.com/x?a=1&amp;b=2\" target=\"_blank\" \
             rel=\"noopener noreferrer nofollow\">ok</a>\
             <a href=\"mailto:help@example.com\" target=\"_blank\" \
             rel=\"noopener noreferrer nofollow\">mail</a>"
        );
    }

    #[test]
    fn relative_links_are_dropped_and_protocol_relative_ones_become_https() {
        let out = clean(
            "<a href=\"//evil.example/x\">a</a><a href=\"\\\\evil.example\\y\">b</a>\
             <a href=\"/logout\">c</a><a href=\"settings\">d</a><a href=\"#top\">e</a>",
        )
        .html;
        assert!(out.contains("href=\"https://evil.example/x\""), "{out}");
        assert!(out.contains("href=\"https://evil.example/y\""), "{out}");
        assert_eq!(out.matches("href=").count(), 2, "{out}");
        assert!(!out.contains("logout") && !out.contains("settings") && !out.contains("#top"));
    }

    #[test]
    fn document_and_active_elements_are_removed() {
        assert_absent(&[
            (
                "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">",
                &["<meta", "refresh", "evil"],
            ),
            ("<base href=\"https://evil.example/\">", &["<base", "evil"]),
            (
                "<link rel=stylesheet href=\"https://evil.example/x.css\">",
                &["<link", "evil"],
            ),
            (
                "<form action=\"https://evil.example/\" method=post><input name=pw type=password>\
                 <input type=image src=\"https://evil.example/i\">\
                 <button formaction=\"javascript:alert(1)\">Go</button></form>",
                &[
                    "<form",
                    "<input",
                    "<button",
                    "formaction",
                    "evil",
                    "javascript",
                ],
            ),
            (
                "<iframe srcdoc=\"<script>alert(1)</script>\" src=\"https://evil.example/\">x</iframe>",
                &["<iframe", "srcdoc", "alert", "evil"],
            ),
            (
                "<object data=\"https://evil.example/x.swf\"><param name=a value=b></object>",
                &["<object", "<param", "evil"],
            ),
            (
                "<embed src=\"https://evil.example/x.swf\">",
                &["<embed", "evil"],
            ),
            (
                "<frameset><frame src=\"https://evil.example/\"></frameset>",
                &["<frame", "evil"],
            ),
            (
                "<video poster=\"https://evil.example/p\"><source src=\"https://evil.example/v\"></video>",
                &["<video", "<source", "evil"],
            ),
        ]);
        // The text of a dropped form stays readable.
        assert_eq!(
            clean("<form><label>Name</label><button>Go</button></form>").html,
            "<label>Name</label>Go"
        );
    }

    #[test]
    fn head_title_is_not_shown_but_head_style_is_kept() {
        let out = clean(
            "<html><head><title>Newsletter 12</title><style>p{color:red}</style></head>\
             <body bgcolor=red><p>Hi</p></body></html>",
        )
        .html;
        assert_eq!(out, "<style>p{color:red}</style><p>Hi</p>");
    }

    #[test]
    fn images_with_relative_or_script_sources_lose_them() {
        for src in [
            "x",
            "/logout",
            "images/a.png",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://",
        ] {
            let s = clean(&format!(
                "<img src=\"{src}\" alt=\"pic\" onerror=\"alert(1)\">"
            ));
            assert_eq!(s.html, "<img alt=\"pic\">", "{src:?}");
            assert_eq!(
                (s.remote_images_blocked, s.has_remote_content),
                (0, false),
                "{src:?}"
            );
        }
    }

    #[test]
    fn style_attribute_dangers_are_neutralized() {
        let s = clean(
            "<p style=\"color:red; width:expression(alert(1)); \
             background-image:url(javascript:alert(1)); background:url(http://tracker.example/p.gif) \
             no-repeat; list-style:url('vbscript:x'); behavior:url(x.htc)\">s</p>",
        );
        let out = s.html.to_lowercase();
        for needle in [
            "expression",
            "alert",
            "javascript",
            "vbscript",
            "tracker",
            ".htc",
        ] {
            assert!(!out.contains(needle), "{needle} survived: {out}");
        }
        assert!(out.contains("color:red;"), "{out}");
        assert!(out.contains("background:none no-repeat"), "{out}");
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (1, true));
    }

    #[test]
    fn css_escapes_strings_and_comments_do_not_hide_remote_urls() {
        let s = clean(
            "<p style=\"a:u\\72l(http://t.example/1); b:URL( 'http://t.example/2' ); \
             c:url(//t.example/3); d:image-set('https://t.example/4' 1x); \
             e:\\75 \\52 \\4c (http://t.example/5); f:url(ht\\74p://t.example/6); \
             g:url(/*x*/http://t.example/7)\">x</p>",
        );
        assert!(!s.html.contains("t.example"), "{}", s.html);
        // 7 is a relative URL (the comment is part of it): dropped, not counted.
        assert_eq!(
            (s.remote_images_blocked, s.has_remote_content),
            (6, true),
            "{}",
            s.html
        );
    }

    #[test]
    fn style_element_is_kept_and_filtered() {
        let s = clean(
            "<style type=\"text/css\">@import url(https://evil.example/x.css); \
             @\\69mport 'https://evil.example/y.css'; @IMPORT \"a.css\"; /* note */ \
             .a{background:url(http://t.example/s)} .b{color:red} \
             .c{background:url(data:image/gif;base64,R0lGOD==)}</style><p class=\"b\">x</p>",
        );
        assert!(
            s.html.starts_with("<style type=\"text/css\">"),
            "{}",
            s.html
        );
        assert!(
            !s.html.to_lowercase().contains("@import") && !s.html.contains("@\\69mport"),
            "{}",
            s.html
        );
        assert!(
            !s.html.contains("evil") && !s.html.contains("t.example"),
            "{}",
            s.html
        );
        assert!(!s.html.contains("note"), "{}", s.html);
        assert!(s.html.contains(".b{color:red}"), "{}", s.html);
        assert!(
            s.html.contains("url(\"data:image/gif;base64,R0lGOD==\")"),
            "{}",
            s.html
        );
        assert!(s.html.contains("<p class=\"b\">x</p>"), "{}", s.html);
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (3, true));
    }

    #[test]
    fn style_element_cannot_be_closed_early() {
        // `</stylex>` does not end the element, so its text holds markup; the filter
        // escapes every `<` so that the browser cannot end it earlier than we did.
        let out = clean(
            "<style>a{}</stylex><img src=x onerror=alert(1)> b{content:\"</stylex><img src=y>\"} \
             @</stylex><img src=z></style><p>after</p>",
        )
        .html;
        assert!(!out.contains("<img") && !out.contains("</stylex"), "{out}");
        assert!(out.ends_with("</style><p>after</p>"), "{out}");
        assert_eq!(out.matches("</style>").count(), 1, "{out}");
        // A `</style>` inside a CSS string ends the element in the parser: what follows is
        // markup, sanitized as such.
        let out = clean("<style>a{content:\"</style><script>alert(1)</script>\"}</style>").html;
        assert!(!out.to_lowercase().contains("<script"), "{out}");
    }

    #[test]
    fn svg_and_math_namespace_tricks_are_removed() {
        assert_absent(&[
            (
                "<svg><style>&lt;img src=x onerror=alert(1)&gt;</style></svg>",
                &["<img", "onerror", "<style"],
            ),
            (
                "<svg><style><img src=x onerror=alert(1)></style></svg>",
                &["onerror", "alert"],
            ),
            (
                "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
                &["<img", "onerror"],
            ),
            // `<p>` leaves svg: an HTML `<style>` whose text is CSS, `<` escaped
            (
                "<svg><p><style><img src=x onerror=alert(1)></style></p></svg>",
                &["<img"],
            ),
            (
                // `<img>` leaves math: an HTML image, without its handler
                "<math><style><img src=x onerror=alert(1)></style></math>",
                &["onerror", "alert"],
            ),
            (
                "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
                &["onerror"],
            ),
            (
                "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
                &["javascript", "href"],
            ),
        ]);
    }

    #[test]
    fn tracking_pixels_are_blocked_and_counted() {
        let s = clean(
            "<img src=\"http://t.example/open.gif?id=42&amp;u=9\" width=1 height=1>\
             <img src=\"HTTPS://t.example/b.png\"><img src=\"//t.example/c.png\">\
             <table background=\"http://t.example/bg.png\"><tr><td background=\"//t.example/td\">x</td></tr></table>\
             <div style=\"background-image:url('https://t.example/d')\">y</div>\
             <a href=\"https://example.com/\">a link is not remote content</a>\
             <form style=\"background:url(http://t.example/f)\">a dropped element is not counted</form>",
        );
        assert!(!s.html.contains("t.example"), "{}", s.html);
        assert!(
            s.html.contains("<img height=\"1\" width=\"1\">"),
            "{}",
            s.html
        );
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (6, true));
    }

    #[test]
    fn remote_images_are_kept_when_allowed() {
        let s = with_remote(
            "<img src=\"http://t.example/a.gif\"><img src=\"//t.example/b.png\">\
             <td background=\"https://t.example/c\">x</td>\
             <p style=\"background:url(http://t.example/d)\">y</p>",
        );
        for kept in [
            "src=\"http://t.example/a.gif\"",
            "src=\"https://t.example/b.png\"",
            "url(&quot;http://t.example/d&quot;)",
        ] {
            assert!(s.html.contains(kept), "{kept} missing: {}", s.html);
        }
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (0, true));
    }

    #[test]
    fn mail_without_remote_references_says_so() {
        let s = clean(
            "<p>Hi <a href=\"https://example.com/\">there</a></p>\
             <img src=\"data:image/png;base64,iVBORw0KGgo=\"><img src=\"cid:logo\">",
        );
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (0, false));
    }

    #[test]
    fn cid_references_map_to_our_urls() {
        let calls = Cell::new(0);
        let cid = |c: &str| {
            calls.set(calls.get() + 1);
            (c != "unknown@x").then(|| format!("/m/7/part/{c}"))
        };
        let opts = HtmlOptions {
            load_remote_images: false,
            cid_url: &cid,
        };
        let s = mail_html(
            "<img src=\"cid:image001.png@01D9A1B2\"><img src=\"CID:<a@b>\">\
             <img src=\"cid:x%40y\"><img src=\"c&#105;d:ent@x\"><img src=\"cid:unknown@x\" alt=u>\
             <p style=\"background:url(cid:bg@x)\">p</p><style>.q{background:url('cid:sheet@x')}</style>",
            &opts,
        );
        assert_eq!(
            s.html,
            "<img src=\"/m/7/part/image001.png@01D9A1B2\"><img src=\"/m/7/part/a@b\">\
             <img src=\"/m/7/part/x@y\"><img src=\"/m/7/part/ent@x\"><img alt=\"u\">\
             <p style=\"background:url(&quot;/m/7/part/bg@x&quot;)\">p</p>\
             <style>.q{background:url(\"/m/7/part/sheet@x\")}</style>"
        );
        assert_eq!((s.remote_images_blocked, s.has_remote_content), (0, false));
        // Six distinct references in the raw text (the stylesheet's too), and the
        // entity-spelled one found by the second pass: each looked up once.
        assert_eq!(calls.get(), 7);
    }

    #[test]
    fn cid_lookups_are_bounded() {
        let calls = Cell::new(0);
        let cid = |_: &str| {
            calls.set(calls.get() + 1);
            Some("/p".to_owned())
        };
        let html: String = (0..3 * MAX_CIDS)
            .map(|n| format!("<img src=\"cid:{n}\"><img src=\"c&#105;d:e{n}\">"))
            .collect();
        let s = mail_html(
            &html,
            &HtmlOptions {
                load_remote_images: false,
                cid_url: &cid,
            },
        );
        assert_eq!(calls.get(), MAX_CIDS);
        assert_eq!(s.html.matches("src=\"/p\"").count(), MAX_CIDS);
    }

    #[test]
    fn data_images_are_kept_but_no_other_data() {
        let s = clean(
            "<img src=\"data:image/png;base64,iVBORw0KGgo=\"><img src=\"DATA:IMAGE/gif;base64,R0lG\">\
             <img src=\"data:image/svg+xml,%3Csvg%3E%3C/svg%3E\">\
             <img src=\"data:text/html;base64,PHNjcmlwdD4=\"><img src=\"data:;base64,AAAA\">",
        );
        assert_eq!(s.html.matches("src=").count(), 3, "{}", s.html);
        assert!(
            !s.html.contains("text/html") && !s.html.contains("data:;"),
            "{}",
            s.html
        );
    }

    #[test]
    fn srcset_and_other_loading_attributes_are_dropped() {
        assert_absent(&[
            (
                "<img srcset=\"http://t.example/a 1x\" src=\"cid:x\">",
                &["srcset", "t.example"],
            ),
            (
                "<img lowsrc=\"http://t.example/a\" dynsrc=\"http://t.example/b\">",
                &["t.example"],
            ),
            (
                "<picture><source srcset=\"http://t.example/a\"><img></picture>",
                &["srcset", "<source"],
            ),
            (
                "<a href=\"https://example.com/\" ping=\"https://t.example/p\">x</a>",
                &["ping", "t.example"],
            ),
            (
                "<blockquote cite=\"https://t.example/c\">q</blockquote>",
                &["cite", "t.example"],
            ),
            (
                "<p background=\"https://t.example/p\">x</p>",
                &["background", "t.example"],
            ),
            (
                "<body background=\"https://t.example/b\">x</body>",
                &["background", "t.example"],
            ),
        ]);
    }

    #[test]
    fn real_mail_formatting_survives() {
        let html = "<center><table width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"#ffffff\">\
            <colgroup><col width=\"200\"></colgroup><caption>Invoice</caption>\
            <thead><tr><th align=\"left\" valign=\"top\">Item</th></tr></thead>\
            <tbody><tr><td colspan=\"2\" rowspan=\"1\" height=\"20\" style=\"padding:4px\">\
            <font color=\"#333\" face=\"Arial\" size=\"2\">Text</font></td></tr></tbody>\
            <tfoot><tr><td>Total</td></tr></tfoot></table></center>\
            <h1>T</h1><ul><li>a</li></ul><ol start=\"3\"><li>b</li></ol><pre>  code</pre>\
            <blockquote type=\"cite\">q</blockquote><p><b>b</b><i>i</i><u>u</u><s>s</s><strong>st</strong>\
            <em>em</em><sup>1</sup><sub>2</sub><small>sm</small><big>bg</big><code>c</code><br><span class=\"x\" id=\"y\">sp</span></p><hr>";
        assert_eq!(clean(html).html, html);
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Runs on the test harness's thread (2 MiB stack unless RUST_MIN_STACK says more).
        let html = "<div>".repeat(10_000) + "deep" + &"</div>".repeat(10_000);
        let out = clean(&html).html;
        assert_eq!(out.matches("<div>").count(), 10_000);
        assert!(out.contains("deep"));
        let html = "<span style=\"color:red\"><b>".repeat(10_000) + "x";
        assert!(clean(&html).html.contains('x'));
    }

    #[test]
    fn a_two_megabyte_document_completes() {
        let chunk = "<p style=\"color:red\">Hello <b>world</b> <a href=\"https://example.com/?a=1&b=2\">link</a> \
                     <img src=\"http://t.example/x.gif\"> <script>alert(1)</script></p>\n";
        let html = chunk.repeat((2 << 20) / chunk.len() + 1) + "<p>the end</p>";
        assert!(html.len() > 2 << 20);
        let s = clean(&html);
        assert!(s.html.ends_with("<p>the end</p>"));
        assert!(!s.html.contains("<script"));
        assert_eq!(
            s.remote_images_blocked as usize,
            (2 << 20) / chunk.len() + 1
        );
    }

    #[test]
    fn malformed_and_unclosed_markup_is_closed() {
        let out = clean("<div><p>unclosed <b>bold <table><td>cell").html;
        assert_eq!(
            out,
            "<div><p>unclosed <b>bold </b></p><table><tbody><tr><td>cell</td></tr></tbody></table></div>"
        );
        let out = clean("<a href=\"https://example.com/ <b>x").html;
        assert!(
            !out.contains("<b"),
            "an unclosed attribute swallows the rest: {out}"
        );
        let out = clean("</p></div><p <p>>x<<<>>>&&&;&#xffffffff;&#0;<").html;
        assert!(!out.contains("<<"), "{out}");
        assert!(!out.contains('\0'), "{out}");
    }

    #[test]
    fn nul_bytes_never_reach_the_output() {
        let s = clean(
            "<div>\0a<scr\0ipt>b</scr\0ipt></div><img src=\"java\0script:alert(1)\">\
             <p style=\"color:r\0ed;background:u\0rl(http://t.example/x)\">c</p><style>\0p{}</style>",
        );
        assert!(!s.html.contains('\0'), "{:?}", s.html);
        assert!(
            !s.html.contains("javascript") && !s.html.contains("<scr"),
            "{:?}",
            s.html
        );
        assert!(s.html.contains('a') && s.html.contains('c'), "{:?}", s.html);
    }

    #[test]
    fn decoded_text_survives() {
        // The caller decodes charsets; what could not be decoded arrives as U+FFFD.
        let out =
            clean("<p>Grüße, 日本語, emoji 📬, broken \u{fffd}\u{fffd} &amp; &lt;tag&gt;</p>").html;
        assert_eq!(
            out,
            "<p>Grüße, 日本語, emoji 📬, broken \u{fffd}\u{fffd} &amp; &lt;tag&gt;</p>"
        );
    }

    #[test]
    fn comments_and_conditional_comments_are_stripped() {
        let out = clean("a<!-- secret --><!--[if mso]><p>mso</p><![endif]-->b<!--[if !mso]><!-->c<!--<![endif]-->").html;
        assert_eq!(out, "abc");
    }

    #[test]
    fn a_panic_inside_becomes_a_notice() {
        let boom = |_: &str| -> Option<String> { panic!("cid lookup failed") };
        let s = mail_html(
            "<img src=\"cid:x\"><script>alert(1)</script>",
            &HtmlOptions {
                load_remote_images: false,
                cid_url: &boom,
            },
        );
        assert_eq!(s.html, UNSHOWABLE);
    }

    #[test]
    fn urls_are_read_as_browsers_read_them() {
        let remote = |u: &str| Target::Remote(u.to_owned());
        for (raw, want) in [
            (" HTTPS://Example.COM/a ", remote("https://example.com/a")),
            ("//t.example/x", remote("https://t.example/x")),
            ("\\\\t.example\\x", remote("https://t.example/x")),
            ("/\\t.example/x", remote("https://t.example/x")),
            ("https:t.example", remote("https://t.example/")),
            ("h\ntt\tps://t.example/", remote("https://t.example/")),
            ("/x", Target::Other),
            ("x.png", Target::Other),
            ("?q", Target::Other),
            ("java\nscript:alert(1)", Target::Other),
            ("c\tid:<a@b>", Target::Cid("a@b".to_owned())),
            (
                "mailto:a@example.com",
                Target::Contact("mailto:a@example.com".to_owned()),
            ),
            ("data:image/png;base64,AA", Target::DataImage),
            ("data:text/plain,image/png", Target::Other),
        ] {
            assert_eq!(classify(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn text_markup_is_escaped() {
        assert_eq!(
            text_to_html("<script>alert(\"x\")</script> & 'y'"),
            "<div class=\"plain\">\
             &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;</div>"
        );
    }

    #[test]
    fn text_javascript_and_lookalikes_are_not_linked() {
        for text in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)//http",
            "data:text/html,x",
            "xhttp://example.com",
            "http://",
            "vbscript:x",
        ] {
            let out = text_to_html(text);
            assert!(!out.contains("<a"), "{text:?} linked: {out}");
        }
        // A URL right after a javascript: prefix is linked as the http URL it is.
        let out = text_to_html("javascript:http://example.com/");
        assert!(
            out.contains("javascript:<a href=\"http://example.com/\""),
            "{out}"
        );
    }

    #[test]
    fn text_urls_keep_ampersands_and_drop_trailing_punctuation() {
        let link = |href: &str, text: &str| {
            format!(
                "<a href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">{text}</a>"
            )
        };
        for (text, want) in [
            (
                "See https://example.com/a?b=1&c=2.",
                format!(
                    "See {}.",
                    link(
                        "https://example.com/a?b=1&amp;c=2",
                        "https://example.com/a?b=1&amp;c=2"
                    )
                ),
            ),
            (
                "(https://example.com/x), or",
                format!(
                    "({}), or",
                    link("https://example.com/x", "https://example.com/x")
                ),
            ),
            (
                "https://en.wikipedia.org/wiki/Foo_(bar)!",
                format!(
                    "{}!",
                    link(
                        "https://en.wikipedia.org/wiki/Foo_(bar)",
                        "https://en.wikipedia.org/wiki/Foo_(bar)"
                    )
                ),
            ),
            (
                "<https://example.com/q?x=\"y\">",
                format!(
                    "&lt;{}&quot;y&quot;&gt;",
                    link("https://example.com/q?x=", "https://example.com/q?x=")
                ),
            ),
            (
                "Mail MAILTO:help@example.com?",
                format!(
                    "Mail {}?",
                    link("mailto:help@example.com", "MAILTO:help@example.com")
                ),
            ),
        ] {
            let out = text_to_html(text);
            assert!(out.contains(&want), "{text:?}\n got {out}\nwant {want}");
        }
    }

    #[test]
    fn text_and_cid_floods_complete() {
        let text = "http://example.com/".to_owned()
            + &")".repeat(1 << 20)
            + " and "
            + &"(".repeat(1 << 20);
        let out = text_to_html(&text);
        assert!(
            out.contains("<a href=\"http://example.com/\""),
            "{}",
            &out[..200]
        );
        assert_eq!(out.matches(')').count(), 1 << 20);
        let out = text_to_html(&"http://[".repeat(1 << 17));
        assert!(!out.contains("<a "));
        let html = "cid:".repeat(1 << 19);
        assert!(clean(&html).html.starts_with("cid:"));
    }

    #[test]
    fn text_quoted_lines_are_marked() {
        let out = text_to_html("Thanks!\n> quoted\n>> deeper\n  > indented\nnot > quoted");
        assert!(
            out.contains("\n<span class=\"q\">&gt; quoted</span>\n"),
            "{out}"
        );
        assert!(
            out.contains("\n<span class=\"q\">&gt;&gt; deeper</span>\n"),
            "{out}"
        );
        assert!(
            out.contains("\n<span class=\"q\">  &gt; indented</span>\n"),
            "{out}"
        );
        assert!(out.contains("\nnot &gt; quoted</div>"), "{out}");
        assert_eq!(out.matches("class=\"q\"").count(), 3, "{out}");
    }

    #[test]
    fn text_line_breaks_are_kept_and_controls_dropped() {
        let out = text_to_html("a\r\nb\rc\n\n  d\0\u{1b}[31me\tf");
        assert!(out.contains(">a\nb\nc\n\n  d[31me\tf</div>"), "{out:?}");
        // The page's stylesheet gives `.plain` its `white-space: pre-wrap`; no inline
        // style, which the page's CSP (style-src 'self') would block.
        assert!(out.starts_with("<div class=\"plain\">"), "{out}");
        assert!(!out.contains("style="), "{out}");
    }

    #[test]
    fn csp_without_remote_images() {
        assert_eq!(
            frame_csp(false, "http://192.168.1.5:8080"),
            "default-src 'none'; style-src 'unsafe-inline'; img-src data: http://192.168.1.5:8080; \
             font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; \
             sandbox allow-popups allow-popups-to-escape-sandbox"
        );
    }

    #[test]
    fn csp_with_remote_images() {
        let csp = frame_csp(true, "https://postroom.local:8443/some/path");
        assert!(
            csp.contains("; img-src data: https://postroom.local:8443 https: http:; "),
            "{csp}"
        );
        assert!(!csp.contains("script"), "{csp}");
    }

    #[test]
    fn csp_leaves_out_an_origin_that_is_not_one() {
        for bad in [
            "x; script-src *",
            "javascript:alert(1)",
            "",
            "file:///tmp",
            "http://a b/",
        ] {
            let csp = frame_csp(false, bad);
            assert!(csp.contains("; img-src data:; "), "{bad:?}: {csp}");
            assert!(!csp.contains("script"), "{bad:?}: {csp}");
        }
    }

    #[test]
    fn frame_document_wraps_the_body() {
        let doc = frame_document("<p>Hello</p>", false, "http://192.168.1.5:8080");
        assert!(
            doc.starts_with("<!doctype html>\n<html><head>\n<meta charset=\"utf-8\">\n"),
            "{doc}"
        );
        assert!(doc.contains("<base target=\"_blank\">"), "{doc}");
        assert!(
            doc.contains(
                "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; \
                 style-src &#39;unsafe-inline&#39;; img-src data: http://192.168.1.5:8080; font-src data:; \
                 base-uri &#39;none&#39;; form-action &#39;none&#39;\">"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("<meta name=\"referrer\" content=\"no-referrer\">"),
            "{doc}"
        );
        assert!(
            doc.contains("<body>\n<p>Hello</p>\n</body></html>"),
            "{doc}"
        );
        assert!(!doc.contains("<script"), "{doc}");
        assert!(frame_document("", true, "http://h:1").contains("https: http:"));
    }
}

//! Postmaster filters (OTOBO's model): rules that look at an incoming mail and decide where
//! it goes and what its conversation gets, plus the `X-Postroom-*` / `X-OTOBO-*` /
//! `X-OTRS-*` headers a trusted account may carry.
//!
//! Owns: the filter vocabulary ([`Filter`], [`Condition`], [`Action`]), checking a filter
//! before it is saved (a regex that does not compile or is too big is refused with the
//! reason, per field), and evaluating filters and trusted headers on a [`Mail`] into an
//! [`Outcome`] with a [`Trace`] of what matched.
//! Must not: do I/O, touch the store, or apply an outcome (the pipeline's filter stage,
//! `pipeline::filter`, loads the filters and applies what they decided).
//!
//! Semantics, stated once:
//! - Filters run in name order (plain string order; name them `01 ...`, `02 ...` to order
//!   them). Disabled filters are skipped. A filter matches when ALL its conditions hold
//!   (a filter without conditions matches every mail). "Stop after match" ends the run
//!   after a matching filter.
//! - A condition tests one field with a regex: "matches" holds when at least one value of
//!   the field matches; "does not match" is exactly its negation. A header that is absent
//!   is one empty value (so `^$` finds mail without it); several headers of the same name
//!   are several values. The attachment count is its decimal number ("0", "3"); the
//!   attachment names are one value per attachment, or one empty value when there is none.
//! - Matching is case-insensitive unless the condition says case-sensitive. regex-lite
//!   folds case for ASCII letters only (`é` does not match `É`); documented for admins.
//! - Single-valued actions (mailbox, status, priority, assignee) and custom fields: the
//!   last matching filter wins. Tags accumulate. Spam, "do not auto-reply" and ignore are
//!   sticky once set. Trusted X-headers are applied first, so filters override them.

use crate::model::{MailboxId, Priority, Status, UserId};
use regex_lite::{Regex, RegexBuilder};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest regex accepted (bytes).
pub const MAX_PATTERN: usize = 1000;
/// regex-lite's compiled-size limit for one pattern (bytes): `a{1000}{1000}` is refused.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// regex-lite's nesting limit for one pattern.
pub const REGEX_NEST_LIMIT: u32 = 50;
/// Most conditions or actions in one filter.
pub const MAX_ROWS: usize = 50;
/// Longest filter name, tag, custom field name or value (characters).
pub const MAX_TEXT: usize = 200;

/// One stored filter.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Filter {
    /// Store key (0 before it is first saved).
    pub id: u64,
    /// Unique; filters run in name order.
    pub name: String,
    pub enabled: bool,
    /// No further filter runs after this one matched.
    pub stop: bool,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

/// What a condition looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A header by name (From, To, Cc, Subject, Reply-To, List-Id or any other), compared
    /// case-insensitively.
    Header(String),
    /// The text body (the HTML one rendered to text when there is no plain one).
    Body,
    AttachmentCount,
    AttachmentName,
}

/// The headers offered in the form's list; any other name can be typed.
pub const COMMON_HEADERS: [&str; 6] = ["From", "To", "Cc", "Subject", "Reply-To", "List-Id"];

impl Field {
    /// The form's value: a header's name, or `body`, `attachment-count`, `attachment-name`.
    pub fn key(&self) -> String {
        match self {
            Field::Header(h) => h.clone(),
            Field::Body => "body".into(),
            Field::AttachmentCount => "attachment-count".into(),
            Field::AttachmentName => "attachment-name".into(),
        }
    }

    /// Reads a form value; an empty one is `None`. A header name must be a valid field
    /// name (printable ASCII without `:` or spaces).
    pub fn from_key(s: &str) -> Option<Field> {
        let s = s.trim();
        match s {
            "" => None,
            "body" => Some(Field::Body),
            "attachment-count" => Some(Field::AttachmentCount),
            "attachment-name" => Some(Field::AttachmentName),
            h if h.len() <= 100 && h.bytes().all(|b| b.is_ascii_graphic() && b != b':') => {
                Some(Field::Header(
                    COMMON_HEADERS
                        .iter()
                        .find(|c| c.eq_ignore_ascii_case(h))
                        .map(|c| (*c).to_owned())
                        .unwrap_or_else(|| h.to_owned()),
                ))
            }
            _ => None,
        }
    }
}

/// One test on the mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub field: Field,
    pub pattern: String,
    /// "does not match".
    pub negate: bool,
    pub case_sensitive: bool,
}

/// What a matching filter does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put a new conversation in this mailbox.
    Mailbox(MailboxId),
    SetStatus(Status),
    SetPriority(Priority),
    Assign(UserId),
    /// Tags to add (each trimmed, non-empty).
    AddTags(Vec<String>),
    /// Custom field name and value.
    SetField(String, String),
    MarkSpam,
    NoAutoReply,
    /// Keep the raw mail, make no conversation, log it.
    Ignore,
}

impl Action {
    /// The form's value of the action kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Mailbox(_) => "mailbox",
            Action::SetStatus(_) => "status",
            Action::SetPriority(_) => "priority",
            Action::Assign(_) => "assign",
            Action::AddTags(_) => "tags",
            Action::SetField(..) => "field",
            Action::MarkSpam => "spam",
            Action::NoAutoReply => "no-auto-reply",
            Action::Ignore => "ignore",
        }
    }

    /// The form's value of the argument (ids as numbers, tags comma-separated,
    /// fields `name=value`).
    pub fn arg(&self) -> String {
        match self {
            Action::Mailbox(m) => m.0.to_string(),
            Action::SetStatus(s) => s.as_str().into(),
            Action::SetPriority(p) => p.as_str().into(),
            Action::Assign(u) => u.0.to_string(),
            Action::AddTags(t) => t.join(", "),
            Action::SetField(k, v) => format!("{k}={v}"),
            Action::MarkSpam | Action::NoAutoReply | Action::Ignore => String::new(),
        }
    }
}

/// The action kinds, in the form's order.
pub const ACTION_KINDS: [&str; 9] = [
    "mailbox",
    "status",
    "priority",
    "assign",
    "tags",
    "field",
    "spam",
    "no-auto-reply",
    "ignore",
];

/// Why a value was refused: a catalog message with `{placeholders}` and their values, so
/// the web UI can translate it and the CLI can print the English.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub msg: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(msg: &'static str, args: &[(&'static str, String)]) -> Refusal {
        Refusal {
            msg,
            args: args.to_vec(),
        }
    }

    /// The English text with its placeholders filled.
    pub fn english(&self) -> String {
        let mut out = self.msg.to_owned();
        for (k, v) in &self.args {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

/// Compiles a condition's pattern under the limits; the refusal says why not.
pub fn compile(pattern: &str, case_sensitive: bool) -> Result<Regex, Refusal> {
    if pattern.is_empty() {
        return Err(Refusal::new("Enter a regular expression.", &[]));
    }
    if pattern.len() > MAX_PATTERN {
        return Err(Refusal::new(
            "The regular expression is {len} bytes long; at most {max} are allowed.",
            &[
                ("len", pattern.len().to_string()),
                ("max", MAX_PATTERN.to_string()),
            ],
        ));
    }
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| {
            let why = e.to_string();
            if why.contains("size limit") || why.contains("nest") {
                Refusal::new(
                    "The regular expression is too big once compiled ({why}); simplify it, e.g. fewer repetitions.",
                    &[("why", why)],
                )
            } else {
                Refusal::new(
                    "The regular expression does not compile: {why}",
                    &[("why", why)],
                )
            }
        })
}

/// Checks a filter before it is saved: per form field (`name`, `cond-N-pattern`,
/// `cond-N-field`, `act-N-arg`, ...), why it is refused. `other_names` are the names of
/// the other filters (names are unique).
pub fn validate(f: &Filter, other_names: &[&str]) -> BTreeMap<String, Refusal> {
    let mut out = BTreeMap::new();
    let name = f.name.trim();
    if name.is_empty() {
        out.insert("name".into(), Refusal::new("Enter a name.", &[]));
    } else if name.chars().count() > MAX_TEXT {
        out.insert(
            "name".into(),
            Refusal::new(
                "At most {max} characters.",
                &[("max", MAX_TEXT.to_string())],
            ),
        );
    } else if other_names.iter().any(|o| o.trim() == name) {
        out.insert(
            "name".into(),
            Refusal::new(
                "Another filter is already named “{name}”.",
                &[("name", name.to_owned())],
            ),
        );
    }
    for (i, c) in f.conditions.iter().enumerate() {
        if let Err(r) = compile(&c.pattern, c.case_sensitive) {
            out.insert(format!("cond-{i}-pattern"), r);
        }
    }
    if f.actions.is_empty() {
        out.insert(
            "actions".into(),
            Refusal::new("Choose at least one action.", &[]),
        );
    }
    for (i, a) in f.actions.iter().enumerate() {
        let bad = match a {
            Action::AddTags(t) if t.is_empty() => {
                Some(Refusal::new("Enter at least one tag.", &[]))
            }
            Action::AddTags(t) if t.iter().any(|x| x.chars().count() > MAX_TEXT) => {
                Some(Refusal::new(
                    "At most {max} characters.",
                    &[("max", MAX_TEXT.to_string())],
                ))
            }
            Action::SetField(k, v)
                if k.trim().is_empty()
                    || k.chars().count() > MAX_TEXT
                    || v.chars().count() > MAX_TEXT =>
            {
                Some(Refusal::new(
                    "Write the custom field as name=value (name not empty, at most {max} characters each).",
                    &[("max", MAX_TEXT.to_string())],
                ))
            }
            _ => None,
        };
        if let Some(r) = bad {
            out.insert(format!("act-{i}-arg"), r);
        }
    }
    out
}

/// Splits `a, b,c` into trimmed, non-empty, distinct tags.
pub fn split_tags(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    out
}

/// What filters look at in a mail (built by `pipeline::parse::filter_mail`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// Top-level header fields in order: name as written, value unfolded and decoded.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// One name per attachment (possibly empty strings for unnamed ones).
    pub attachments: Vec<String>,
}

impl Mail {
    /// The values a condition on `field` tests (never empty: see the module docs).
    pub fn values(&self, field: &Field) -> Vec<Cow<'_, str>> {
        let out: Vec<Cow<'_, str>> = match field {
            Field::Header(h) => self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(h))
                .map(|(_, v)| Cow::Borrowed(v.as_str()))
                .collect(),
            Field::Body => vec![Cow::Borrowed(self.body.as_str())],
            Field::AttachmentCount => vec![Cow::Owned(self.attachments.len().to_string())],
            Field::AttachmentName => self
                .attachments
                .iter()
                .map(|a| Cow::Borrowed(a.as_str()))
                .collect(),
        };
        if out.is_empty() {
            vec![Cow::Borrowed("")]
        } else {
            out
        }
    }

    /// The first value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What filters and trusted headers decided for one mail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub mailbox: Option<MailboxId>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<UserId>,
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, String>,
    pub spam: bool,
    pub no_auto_reply: bool,
    pub ignore: bool,
}

impl Outcome {
    /// Whether nothing was decided.
    pub fn is_empty(&self) -> bool {
        *self == Outcome::default()
    }

    /// Applies one action (later ones override single values, tags accumulate).
    pub fn apply(&mut self, a: &Action) {
        match a {
            Action::Mailbox(m) => self.mailbox = Some(*m),
            Action::SetStatus(s) => self.status = Some(*s),
            Action::SetPriority(p) => self.priority = Some(*p),
            Action::Assign(u) => self.assignee = Some(*u),
            Action::AddTags(t) => {
                for x in t {
                    if !self.tags.contains(x) {
                        self.tags.push(x.clone());
                    }
                }
            }
            Action::SetField(k, v) => {
                self.fields.insert(k.clone(), v.clone());
            }
            Action::MarkSpam => self.spam = true,
            Action::NoAutoReply => self.no_auto_reply = true,
            Action::Ignore => self.ignore = true,
        }
    }
}

/// One condition as evaluated, for the "Test filter" page and the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConditionTrace {
    pub field: String,
    pub pattern: String,
    pub negate: bool,
    pub case_sensitive: bool,
    /// Whether the condition held (after negation).
    pub held: bool,
    /// The value that matched the regex, if one did (cut to 200 characters).
    pub matched_value: Option<String>,
}

/// One filter as evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FilterTrace {
    pub id: u64,
    pub name: String,
    pub enabled: bool,
    /// Conditions in order; evaluation of a filter stops at the first that fails, so
    /// later ones are absent.
    pub conditions: Vec<ConditionTrace>,
    pub matched: bool,
    /// The run stopped after this filter ("stop after match").
    pub stopped: bool,
    /// A stored pattern that no longer compiles: the filter was skipped.
    pub broken: Option<String>,
}

/// What happened, filter by filter, and which X-headers were used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub filters: Vec<FilterTrace>,
    /// `(header, value, what it did)` for every trusted X-header found.
    pub x_headers: Vec<(String, String, String)>,
}

impl Trace {
    /// Names of the filters that matched, in run order.
    pub fn matched(&self) -> Vec<&str> {
        self.filters
            .iter()
            .filter(|f| f.matched)
            .map(|f| f.name.as_str())
            .collect()
    }
}

struct CompiledCondition {
    cond: Condition,
    re: Result<Regex, Refusal>,
}

struct CompiledFilter {
    filter: Filter,
    conds: Vec<CompiledCondition>,
}

/// The filters of one batch, sorted into run order with their regexes compiled once.
pub struct Engine {
    filters: Vec<CompiledFilter>,
}

impl Engine {
    pub fn new(mut filters: Vec<Filter>) -> Engine {
        filters.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Engine {
            filters: filters
                .into_iter()
                .map(|filter| CompiledFilter {
                    conds: filter
                        .conditions
                        .iter()
                        .map(|c| CompiledCondition {
                            cond: c.clone(),
                            re: compile(&c.pattern, c.case_sensitive),
                        })
                        .collect(),
                    filter,
                })
                .collect(),
        }
    }

    /// Whether there is any enabled filter (else the pipeline need not build a `Mail`).
    pub fn is_active(&self) -> bool {
        self.filters.iter().any(|f| f.filter.enabled)
    }

    /// Runs the filters on `mail`, on top of `outcome` (the trusted headers' decisions).
    pub fn run(&self, mail: &Mail, outcome: &mut Outcome, trace: &mut Trace) {
        for cf in &self.filters {
            let f = &cf.filter;
            let mut ft = FilterTrace {
                id: f.id,
                name: f.name.clone(),
                enabled: f.enabled,
                conditions: Vec::new(),
                matched: false,
                stopped: false,
                broken: None,
            };
            if !f.enabled {
                trace.filters.push(ft);
                continue;
            }
            let mut all = true;
            for cc in &cf.conds {
                let re = match &cc.re {
                    Ok(re) => re,
                    Err(r) => {
                        ft.broken = Some(format!("/{}/: {}", cc.cond.pattern, r.english()));
                        all = false;
                        break;
                    }
                };
                let hit = mail
                    .values(&cc.cond.field)
                    .into_iter()
                    .find(|v| re.is_match(v));
                let held = hit.is_some() != cc.cond.negate;
                ft.conditions.push(ConditionTrace {
                    field: cc.cond.field.key(),
                    pattern: cc.cond.pattern.clone(),
                    negate: cc.cond.negate,
                    case_sensitive: cc.cond.case_sensitive,
                    held,
                    matched_value: hit.as_deref().map(|v| v.chars().take(200).collect()),
                });
                if !held {
                    all = false;
                    break;
                }
            }
            if all {
                ft.matched = true;
                for a in &f.actions {
                    outcome.apply(a);
                }
                ft.stopped = f.stop;
            }
            let stop = ft.stopped;
            trace.filters.push(ft);
            if stop {
                break;
            }
        }
    }
}

/// Names the trusted headers refer to: mailboxes by name, users by login or e-mail.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub mailboxes: Vec<(MailboxId, String)>,
    /// `(id, login, e-mail)`.
    pub users: Vec<(UserId, String, String)>,
}

/// What a trusted account's `X-Postroom-*`, `X-OTOBO-*` and `X-OTRS-*` headers ask for,
/// applied to `outcome` in header order. Unknown values (no such mailbox, a priority we
/// cannot read) are listed in the trace as ignored, never guessed.
pub fn x_headers(mail: &Mail, dir: &Directory, outcome: &mut Outcome, trace: &mut Trace) {
    for (name, value) in &mail.headers {
        let lower = name.to_ascii_lowercase();
        let Some(what) = ["x-postroom-", "x-otobo-", "x-otrs-"]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
        else {
            continue;
        };
        let v = value.trim();
        let custom = ["customfield-", "dynamicfield-"]
            .iter()
            .find_map(|p| what.strip_prefix(p))
            .map(|_| {
                // The field's name as written (after the prefix), not lower-cased.
                name.get(name.len() - what.len()..)
                    .and_then(|w| w.split_once('-'))
                    .map(|(_, n)| n.to_owned())
                    .unwrap_or_default()
            });
        let did: String = if let Some(field) = custom {
            if field.is_empty() || field.chars().count() > MAX_TEXT {
                "ignored: no field name".into()
            } else {
                let val: String = v.chars().take(MAX_TEXT).collect();
                outcome.apply(&Action::SetField(field.clone(), val.clone()));
                format!("custom field {field} = {val}")
            }
        } else {
            match what {
                "queue" | "mailbox" => match dir
                    .mailboxes
                    .iter()
                    .find(|(_, n)| n.trim().eq_ignore_ascii_case(v))
                {
                    Some((id, n)) => {
                        outcome.apply(&Action::Mailbox(*id));
                        format!("mailbox {n}")
                    }
                    None => format!("ignored: no mailbox named \"{v}\""),
                },
                "priority" => match priority_of(v) {
                    Some(p) => {
                        outcome.apply(&Action::SetPriority(p));
                        format!("priority {p}")
                    }
                    None => "ignored: unknown priority".into(),
                },
                "state" | "status" => match status_of(v) {
                    Some(Status::Spam) => {
                        outcome.apply(&Action::MarkSpam);
                        "spam".into()
                    }
                    Some(s) => {
                        outcome.apply(&Action::SetStatus(s));
                        format!("status {s}")
                    }
                    None => "ignored: unknown state".into(),
                },
                "assign" | "owner" | "responsible" => {
                    match dir.users.iter().find(|(_, login, email)| {
                        !v.is_empty()
                            && (login.eq_ignore_ascii_case(v) || email.eq_ignore_ascii_case(v))
                    }) {
                        Some((id, login, _)) => {
                            outcome.apply(&Action::Assign(*id));
                            format!("assigned to {login}")
                        }
                        None => format!("ignored: no user \"{v}\""),
                    }
                }
                "tag" | "tags" => {
                    let tags: Vec<String> = split_tags(v)
                        .into_iter()
                        .map(|t| t.chars().take(MAX_TEXT).collect())
                        .collect();
                    if tags.is_empty() {
                        "ignored: no tag".into()
                    } else {
                        let s = tags.join(", ");
                        outcome.apply(&Action::AddTags(tags));
                        format!("tags {s}")
                    }
                }
                "ignore" => {
                    if yes(v) {
                        outcome.apply(&Action::Ignore);
                        "ignore".into()
                    } else {
                        "ignored: not yes".into()
                    }
                }
                "loop" | "noautoreply" | "no-auto-reply" => {
                    if yes(v) {
                        outcome.apply(&Action::NoAutoReply);
                        "no auto-reply".into()
                    } else {
                        "ignored: not yes".into()
                    }
                }
                "spam" => {
                    if yes(v) {
                        outcome.apply(&Action::MarkSpam);
                        "spam".into()
                    } else {
                        "ignored: not yes".into()
                    }
                }
                _ => continue,
            }
        };
        trace
            .x_headers
            .push((name.clone(), v.chars().take(200).collect(), did));
    }
}

fn yes(v: &str) -> bool {
    ["yes", "true", "1", "y"]
        .iter()
        .any(|y| v.eq_ignore_ascii_case(y))
}

/// A priority in Postroom's words or OTOBO's ("3 normal", "5 very high", "2").
pub fn priority_of(v: &str) -> Option<Priority> {
    let v = v.trim().to_ascii_lowercase();
    if let Some(p) = Priority::parse(&v) {
        return Some(p);
    }
    let (num, word) = match v.split_once(' ') {
        Some((n, w)) => (n, w.trim()),
        None => (v.as_str(), ""),
    };
    let by_num = match num {
        "1" | "2" => Some(Priority::Low),
        "3" => Some(Priority::Normal),
        "4" => Some(Priority::High),
        "5" => Some(Priority::Urgent),
        _ => None,
    };
    by_num.or(match word {
        "very low" => Some(Priority::Low),
        "very high" => Some(Priority::Urgent),
        w => Priority::parse(w),
    })
}

/// A status in Postroom's words or an OTOBO state name.
pub fn status_of(v: &str) -> Option<Status> {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "active" | "new" | "open" => Some(Status::Active),
        "pending" => Some(Status::Pending),
        "closed" => Some(Status::Closed),
        "spam" => Some(Status::Spam),
        s if s.starts_with("pending ") => Some(Status::Pending),
        s if s.starts_with("closed ") => Some(Status::Closed),
        _ => None,
    }
}

/// Runs everything on one mail: the trusted headers first (when `trusted`), then the
/// filters.
pub fn evaluate(engine: &Engine, dir: &Directory, mail: &Mail, trusted: bool) -> (Outcome, Trace) {
    let mut outcome = Outcome::default();
    let mut trace = Trace::default();
    if trusted {
        x_headers(mail, dir, &mut outcome, &mut trace);
    }
    engine.run(mail, &mut outcome, &mut trace);
    (outcome, trace)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn mail() -> Mail {
        Mail {
            headers: vec![
                ("From".into(), "Zoë <zoe@example.com>".into()),
                ("To".into(), "support@office.example".into()),
                ("Cc".into(), "boss@office.example".into()),
                ("Subject".into(), "Invoice 42 overdue".into()),
                ("Reply-To".into(), "billing@example.com".into()),
                ("List-Id".into(), "<news.lists.example.com>".into()),
                ("X-Spam-Flag".into(), "YES".into()),
                ("Received".into(), "from a".into()),
                ("Received".into(), "from b".into()),
            ],
            body: "Hello,\nplease pay the invoice.\n".into(),
            attachments: vec!["invoice.pdf".into(), "Scan.EXE".into()],
        }
    }

    fn cond(field: Field, pattern: &str) -> Condition {
        Condition {
            field,
            pattern: pattern.into(),
            negate: false,
            case_sensitive: false,
        }
    }

    fn filter(name: &str, conds: Vec<Condition>, actions: Vec<Action>) -> Filter {
        Filter {
            id: 0,
            name: name.into(),
            enabled: true,
            stop: false,
            conditions: conds,
            actions,
        }
    }

    fn holds(c: Condition, m: &Mail) -> bool {
        let e = Engine::new(vec![filter("f", vec![c], vec![Action::MarkSpam])]);
        let (o, _) = evaluate(&e, &Directory::default(), m, false);
        o.spam
    }

    fn h(name: &str) -> Field {
        Field::Header(name.into())
    }

    #[test]
    fn every_header_condition() {
        let m = mail();
        assert!(holds(cond(h("From"), "zoe@example\\.com"), &m));
        assert!(!holds(cond(h("From"), "ann@"), &m));
        assert!(holds(cond(h("To"), "^support@"), &m));
        assert!(holds(cond(h("Cc"), "boss"), &m));
        assert!(holds(cond(h("Subject"), "invoice \\d+"), &m));
        assert!(holds(cond(h("Reply-To"), "billing"), &m));
        assert!(holds(cond(h("List-Id"), "news\\.lists"), &m));
        // Any named header, name case-insensitive.
        assert!(holds(cond(h("x-spam-flag"), "^yes$"), &m));
        // Several headers of one name: any value may match.
        assert!(holds(cond(h("Received"), "from b"), &m));
        // An absent header is one empty value.
        assert!(holds(cond(h("X-Absent"), "^$"), &m));
        assert!(!holds(cond(h("X-Absent"), "."), &m));
    }

    #[test]
    fn body_and_attachment_conditions() {
        let m = mail();
        assert!(holds(cond(Field::Body, "please pay"), &m));
        assert!(!holds(cond(Field::Body, "refund"), &m));
        assert!(holds(cond(Field::AttachmentCount, "^2$"), &m));
        assert!(!holds(cond(Field::AttachmentCount, "^0$"), &m));
        assert!(holds(cond(Field::AttachmentName, "\\.exe$"), &m));
        assert!(holds(cond(Field::AttachmentName, "^invoice"), &m));
        let none = Mail::default();
        assert!(holds(cond(Field::AttachmentCount, "^0$"), &none));
        let many = Mail {
            attachments: vec![String::new(); 25],
            ..Mail::default()
        };
        assert!(holds(cond(Field::AttachmentCount, "^25$"), &many));
        assert!(holds(cond(Field::AttachmentCount, "^[1-9][0-9]+$"), &many));
        assert!(!holds(cond(Field::AttachmentName, "."), &none));
    }

    #[test]
    fn negation_is_the_exact_opposite() {
        let m = mail();
        for (field, pat) in [
            (h("Subject"), "invoice"),
            (h("Subject"), "refund"),
            (h("X-Absent"), "x"),
            (h("Received"), "from a"),
            (Field::AttachmentName, "\\.zip$"),
        ] {
            let pos = holds(cond(field.clone(), pat), &m);
            let mut c = cond(field, pat);
            c.negate = true;
            assert_eq!(holds(c, &m), !pos, "{pat}");
        }
        // "does not match" over several values: none may match.
        let mut c = cond(h("Received"), "from b");
        c.negate = true;
        assert!(!holds(c, &m));
    }

    #[test]
    fn case_insensitive_by_default_sensitive_on_request() {
        let m = mail();
        assert!(holds(cond(h("Subject"), "INVOICE"), &m));
        let mut c = cond(h("Subject"), "INVOICE");
        c.case_sensitive = true;
        assert!(!holds(c, &m));
        let mut c = cond(h("Subject"), "Invoice");
        c.case_sensitive = true;
        assert!(holds(c, &m));
    }

    #[test]
    fn every_action() {
        let m = mail();
        let e = Engine::new(vec![filter(
            "all",
            vec![],
            vec![
                Action::Mailbox(MailboxId(3)),
                Action::SetStatus(Status::Pending),
                Action::SetPriority(Priority::High),
                Action::Assign(UserId(7)),
                Action::AddTags(vec!["a".into(), "b".into()]),
                Action::AddTags(vec!["b".into(), "c".into()]),
                Action::SetField("Contract".into(), "A-1".into()),
                Action::MarkSpam,
                Action::NoAutoReply,
                Action::Ignore,
            ],
        )]);
        let (o, t) = evaluate(&e, &Directory::default(), &m, false);
        assert_eq!(o.mailbox, Some(MailboxId(3)));
        assert_eq!(o.status, Some(Status::Pending));
        assert_eq!(o.priority, Some(Priority::High));
        assert_eq!(o.assignee, Some(UserId(7)));
        assert_eq!(o.tags, vec!["a", "b", "c"]);
        assert_eq!(o.fields.get("Contract").map(String::as_str), Some("A-1"));
        assert!(o.spam && o.no_auto_reply && o.ignore);
        assert_eq!(t.matched(), vec!["all"]);
    }

    #[test]
    fn filters_run_in_name_order_and_the_last_wins() {
        let m = mail();
        let e = Engine::new(vec![
            filter("20 b", vec![], vec![Action::SetPriority(Priority::Low)]),
            filter("10 a", vec![], vec![Action::SetPriority(Priority::Urgent)]),
            filter(
                "30 c",
                vec![cond(h("Subject"), "nothing like this")],
                vec![Action::SetPriority(Priority::High)],
            ),
        ]);
        let (o, t) = evaluate(&e, &Directory::default(), &m, false);
        assert_eq!(o.priority, Some(Priority::Low));
        let names: Vec<&str> = t.filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["10 a", "20 b", "30 c"]);
        assert_eq!(t.matched(), vec!["10 a", "20 b"]);
    }

    #[test]
    fn stop_after_match_ends_the_run_and_disabled_filters_are_skipped() {
        let m = mail();
        let mut first = filter("1", vec![], vec![Action::AddTags(vec!["one".into()])]);
        first.stop = true;
        let second = filter("2", vec![], vec![Action::AddTags(vec!["two".into()])]);
        let (o, t) = evaluate(
            &Engine::new(vec![second.clone(), first.clone()]),
            &Directory::default(),
            &m,
            false,
        );
        assert_eq!(o.tags, vec!["one"]);
        assert_eq!(t.filters.len(), 1);
        assert!(t.filters[0].stopped);
        // A stop filter that does not match does not stop.
        first.conditions = vec![cond(h("Subject"), "^nope$")];
        let (o, _) = evaluate(
            &Engine::new(vec![first.clone(), second.clone()]),
            &Directory::default(),
            &m,
            false,
        );
        assert_eq!(o.tags, vec!["two"]);
        // Disabled: skipped, listed.
        first.conditions.clear();
        first.enabled = false;
        let (o, t) = evaluate(
            &Engine::new(vec![first, second]),
            &Directory::default(),
            &m,
            false,
        );
        assert_eq!(o.tags, vec!["two"]);
        assert!(!t.filters[0].matched && !t.filters[0].enabled);
    }

    #[test]
    fn all_conditions_must_hold_and_the_trace_says_which() {
        let m = mail();
        let f = filter(
            "f",
            vec![
                cond(h("From"), "example\\.com"),
                cond(h("Subject"), "refund"),
            ],
            vec![Action::MarkSpam],
        );
        let (o, t) = evaluate(&Engine::new(vec![f]), &Directory::default(), &m, false);
        assert!(!o.spam);
        let c = &t.filters[0].conditions;
        assert_eq!(c.len(), 2);
        assert!(c[0].held && !c[1].held);
        assert_eq!(c[0].matched_value.as_deref(), Some("Zoë <zoe@example.com>"));
    }

    #[test]
    fn invalid_and_too_big_regexes_are_refused() {
        let r = compile("(unclosed", false).unwrap_err();
        assert!(r.msg.contains("does not compile"), "{r:?}");
        assert!(compile("", false).is_err());
        let long = "a".repeat(MAX_PATTERN + 1);
        let r = compile(&long, false).unwrap_err();
        assert!(r.english().contains(&(MAX_PATTERN + 1).to_string()));
        let r = compile("(a{1000}){1000}", false).unwrap_err();
        assert!(r.msg.contains("too big"), "{r:?}");
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(compile(&deep, false).is_err());
        assert!(compile("^ok$", true).is_ok());
        // validate names the field.
        let mut f = filter(
            "x",
            vec![cond(h("Subject"), "ok"), cond(h("From"), "[z-a]")],
            vec![Action::MarkSpam],
        );
        let errs = validate(&f, &["y"]);
        assert_eq!(errs.keys().collect::<Vec<_>>(), vec!["cond-1-pattern"]);
        f.name = "y".into();
        f.actions.clear();
        let errs = validate(&f, &["y"]);
        assert!(errs.contains_key("name") && errs.contains_key("actions"));
        // A stored filter whose pattern stopped compiling is skipped, with the reason.
        let (o, t) = evaluate(
            &Engine::new(vec![filter(
                "broken",
                vec![cond(h("Subject"), "(")],
                vec![Action::MarkSpam],
            )]),
            &Directory::default(),
            &mail(),
            false,
        );
        assert!(!o.spam && t.filters[0].broken.is_some());
    }

    fn dir() -> Directory {
        Directory {
            mailboxes: vec![
                (MailboxId(1), "Support".into()),
                (MailboxId(2), "Sales".into()),
            ],
            users: vec![(UserId(5), "ann".into(), "ann@office.example".into())],
        }
    }

    #[test]
    fn trusted_x_headers_act_like_actions() {
        let m = Mail {
            headers: vec![
                ("X-Postroom-Queue".into(), "sales".into()),
                ("X-Postroom-Priority".into(), "urgent".into()),
                ("X-Postroom-State".into(), "pending".into()),
                ("X-Postroom-Assign".into(), "ann".into()),
                ("X-Postroom-Tag".into(), "vip, b2b".into()),
                ("X-Postroom-CustomField-Contract".into(), "A-17".into()),
            ],
            ..Mail::default()
        };
        let e = Engine::new(vec![]);
        let (o, t) = evaluate(&e, &dir(), &m, true);
        assert_eq!(o.mailbox, Some(MailboxId(2)));
        assert_eq!(o.priority, Some(Priority::Urgent));
        assert_eq!(o.status, Some(Status::Pending));
        assert_eq!(o.assignee, Some(UserId(5)));
        assert_eq!(o.tags, vec!["vip", "b2b"]);
        assert_eq!(o.fields.get("Contract").map(String::as_str), Some("A-17"));
        assert_eq!(t.x_headers.len(), 6);
        // Untrusted: nothing.
        let (o, t) = evaluate(&e, &dir(), &m, false);
        assert!(o.is_empty() && t.x_headers.is_empty());
    }

    #[test]
    fn otrs_and_otobo_spellings_are_accepted() {
        let m = Mail {
            headers: vec![
                ("X-OTRS-Queue".into(), "Support".into()),
                ("X-OTRS-Priority".into(), "4 high".into()),
                ("X-OTRS-State".into(), "closed successful".into()),
                ("X-OTRS-Owner".into(), "ANN@office.example".into()),
                ("X-OTRS-DynamicField-TicketRef".into(), "T-9".into()),
                ("X-OTOBO-Ignore".into(), "Yes".into()),
                ("X-OTRS-Loop".into(), "yes".into()),
                ("X-OTRS-SenderType".into(), "customer".into()),
            ],
            ..Mail::default()
        };
        let (o, t) = evaluate(&Engine::new(vec![]), &dir(), &m, true);
        assert_eq!(o.mailbox, Some(MailboxId(1)));
        assert_eq!(o.priority, Some(Priority::High));
        assert_eq!(o.status, Some(Status::Closed));
        assert_eq!(o.assignee, Some(UserId(5)));
        assert_eq!(o.fields.get("TicketRef").map(String::as_str), Some("T-9"));
        assert!(o.ignore && o.no_auto_reply);
        // Unknown X-OTRS headers are not listed.
        assert_eq!(t.x_headers.len(), 7);
        assert_eq!(priority_of("3 normal"), Some(Priority::Normal));
        assert_eq!(priority_of("1 very low"), Some(Priority::Low));
        assert_eq!(priority_of("5 very high"), Some(Priority::Urgent));
        assert_eq!(priority_of("whenever"), None);
        assert_eq!(status_of("pending reminder"), Some(Status::Pending));
        assert_eq!(status_of("new"), Some(Status::Active));
    }

    #[test]
    fn unknown_values_in_x_headers_are_ignored_not_guessed_and_filters_override() {
        let m = Mail {
            headers: vec![
                ("X-Postroom-Mailbox".into(), "Nowhere".into()),
                ("X-Postroom-Assign".into(), "bob".into()),
                ("X-Postroom-Priority".into(), "low".into()),
            ],
            ..Mail::default()
        };
        let e = Engine::new(vec![filter(
            "f",
            vec![],
            vec![Action::SetPriority(Priority::High)],
        )]);
        let (o, t) = evaluate(&e, &dir(), &m, true);
        assert_eq!((o.mailbox, o.assignee), (None, None));
        assert_eq!(o.priority, Some(Priority::High));
        assert!(t.x_headers[0].2.starts_with("ignored"));
    }

    // ---- property test: the engine against a naive reference evaluator ----

    /// xorshift64*: small, seeded, deterministic.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
            &v[self.below(v.len())]
        }
    }

    const WORDS: [&str; 8] = [
        "invoice",
        "Invoice",
        "refund",
        "news",
        "urgent",
        "",
        "hello world",
        "PAY",
    ];
    const PATTERNS: [&str; 10] = [
        "invoice",
        "^$",
        ".",
        "^news",
        "pay",
        "refund|urgent",
        "\\d",
        "world$",
        "^PAY$",
        "x",
    ];
    const HEADERS: [&str; 5] = ["From", "Subject", "List-Id", "X-Custom", "Received"];

    fn random_mail(r: &mut Rng) -> Mail {
        let mut headers = Vec::new();
        for _ in 0..r.below(6) {
            let name = r.pick(&HEADERS).to_string();
            let name = if r.below(2) == 0 {
                name.to_ascii_lowercase()
            } else {
                name
            };
            let value = format!("{} {}", r.pick(&WORDS), r.below(3));
            headers.push((name, value.trim().to_owned()));
        }
        let attachments = (0..r.below(3))
            .map(|_| format!("{}.pdf", r.pick(&WORDS)))
            .collect();
        Mail {
            headers,
            body: r.pick(&WORDS).to_string(),
            attachments,
        }
    }

    fn random_filter(r: &mut Rng, id: u64) -> Filter {
        let fields = [
            Field::Body,
            Field::AttachmentCount,
            Field::AttachmentName,
            h(HEADERS[r.below(HEADERS.len())]),
        ];
        let conditions = (0..r.below(3))
            .map(|_| Condition {
                field: r.pick(&fields).clone(),
                pattern: r.pick(&PATTERNS).to_string(),
                negate: r.below(3) == 0,
                case_sensitive: r.below(3) == 0,
            })
            .collect();
        let all_actions = [
            Action::Mailbox(MailboxId(1 + r.below(3) as u64)),
            Action::SetStatus(*r.pick(&[Status::Pending, Status::Closed])),
            Action::SetPriority(*r.pick(&Priority::ALL)),
            Action::Assign(UserId(1 + r.below(3) as u64)),
            Action::AddTags(vec![r.pick(&["a", "b", "c"]).to_string()]),
            Action::SetField("F".into(), r.below(4).to_string()),
            Action::MarkSpam,
            Action::NoAutoReply,
            Action::Ignore,
        ];
        let actions = (0..1 + r.below(2))
            .map(|_| r.pick(&all_actions).clone())
            .collect();
        Filter {
            id,
            name: format!("{}", r.below(5)),
            enabled: r.below(5) != 0,
            stop: r.below(4) == 0,
            conditions,
            actions,
        }
    }

    /// The reference: the rules written as plainly as possible, with no shared code but
    /// regex-lite itself.
    fn reference(filters: &[Filter], m: &Mail) -> Outcome {
        let mut order: Vec<&Filter> = filters.iter().collect();
        order.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let mut o = Outcome::default();
        for f in order {
            if !f.enabled {
                continue;
            }
            let mut ok = true;
            for c in &f.conditions {
                let re = regex_lite::RegexBuilder::new(&c.pattern)
                    .case_insensitive(!c.case_sensitive)
                    .build()
                    .unwrap();
                let mut values: Vec<String> = Vec::new();
                match &c.field {
                    Field::Header(name) => {
                        for (n, v) in &m.headers {
                            if n.to_lowercase() == name.to_lowercase() {
                                values.push(v.clone());
                            }
                        }
                    }
                    Field::Body => values.push(m.body.clone()),
                    Field::AttachmentCount => values.push(m.attachments.len().to_string()),
                    Field::AttachmentName => values.extend(m.attachments.iter().cloned()),
                }
                if values.is_empty() {
                    values.push(String::new());
                }
                let mut any = false;
                for v in &values {
                    if re.is_match(v) {
                        any = true;
                    }
                }
                let held = if c.negate { !any } else { any };
                if !held {
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            for a in &f.actions {
                match a {
                    Action::Mailbox(x) => o.mailbox = Some(*x),
                    Action::SetStatus(x) => o.status = Some(*x),
                    Action::SetPriority(x) => o.priority = Some(*x),
                    Action::Assign(x) => o.assignee = Some(*x),
                    Action::AddTags(t) => {
                        for x in t {
                            if !o.tags.contains(x) {
                                o.tags.push(x.clone());
                            }
                        }
                    }
                    Action::SetField(k, v) => {
                        o.fields.insert(k.clone(), v.clone());
                    }
                    Action::MarkSpam => o.spam = true,
                    Action::NoAutoReply => o.no_auto_reply = true,
                    Action::Ignore => o.ignore = true,
                }
            }
            if f.stop {
                break;
            }
        }
        o
    }

    #[test]
    fn the_engine_agrees_with_a_naive_reference_on_random_rules_and_mails() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let mut matched_some = 0;
        for case in 0..4000 {
            let filters: Vec<Filter> = (0..r.below(5))
                .map(|i| random_filter(&mut r, i as u64))
                .collect();
            let m = random_mail(&mut r);
            let (got, _) = evaluate(
                &Engine::new(filters.clone()),
                &Directory::default(),
                &m,
                false,
            );
            let want = reference(&filters, &m);
            assert_eq!(got, want, "case {case}: {filters:#?}\n{m:#?}");
            if !want.is_empty() {
                matched_some += 1;
            }
        }
        // The generator is not degenerate: both outcomes occur often.
        assert!(matched_some > 1000 && matched_some < 3800, "{matched_some}");
    }
}

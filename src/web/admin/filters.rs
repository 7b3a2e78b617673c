//! `/admin/filters`: the postmaster filters in the browser.
//!
//! Owns: the list (run order, filter box, sortable), the form (conditions and actions as
//! rows; a fixed number of empty rows plus "Add rows" buttons that re-render, so it works
//! without JavaScript), saving (every regex compiled first; a refused one is shown next to
//! its field with the reason), enabling, deleting, and "Test filters", which runs the
//! saved filters on a pasted mail or a stored message and shows what matched and what
//! would happen, changing nothing.
//! Must not: decide what a filter means (`crate::filters`), or apply an outcome (only the
//! pipeline does).

use super::{FieldErrors, render};
use crate::filters::{self, Action, COMMON_HEADERS, Condition, Field, Filter};
use crate::model::{MailboxId, Priority, RawId, Status, UserId};
use crate::pipeline::filter::Stage;
use crate::web::auth::Session;
use crate::web::pages::{Form, lang_of, merge_ctx, not_found, store_error};
use crate::web::{Reply, Req, WebCtx, i18n};
use serde_json::{Value, json};

/// Empty rows offered below the filled ones, and how many "Add rows" adds.
const SPARE_ROWS: usize = 2;
/// Most bytes of a pasted mail the test reads.
const MAX_PASTE: usize = 4 << 20;

/// `/admin/filters/...`: `rest` is the path after `/admin/filters`.
pub fn route(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, rest: &[&str]) -> Reply {
    match (req.is_get(), rest) {
        (true, []) => list(ctx, req, s, None),
        (true, ["new"]) => edit_form(ctx, req, s, &Filter::default()),
        (false, ["new"]) => save(ctx, req, s, form, 0),
        (true, ["test"]) => test_page(ctx, req, s, None),
        (false, ["test"]) => test_page(ctx, req, s, Some(form)),
        (true, [id]) => match id.parse::<u64>() {
            Ok(id) => match ctx.store.read().and_then(|r| r.filter(id)) {
                Ok(Some(f)) => edit_form(ctx, req, s, &f),
                Ok(None) => not_found(),
                Err(e) => store_error(e),
            },
            Err(_) => not_found(),
        },
        (false, [id]) => match id.parse::<u64>() {
            Ok(id) if id > 0 => save(ctx, req, s, form, id),
            _ => not_found(),
        },
        (false, [id, "delete"]) => change(ctx, req, s, id, |tx, f| {
            tx.remove_filter(f.id)?;
            Ok("Filter “{name}” deleted.")
        }),
        (false, [id, "toggle"]) => change(ctx, req, s, id, |tx, f| {
            let mut f = f.clone();
            f.enabled = !f.enabled;
            tx.put_filter(&f)?;
            Ok(if f.enabled {
                "Filter “{name}” enabled."
            } else {
                "Filter “{name}” disabled."
            })
        }),
        _ => not_found(),
    }
}

/// Deletes or toggles a filter, then shows the list with a notice.
fn change(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: &str,
    f: impl FnOnce(&mut crate::store::Tx<'_>, &Filter) -> Result<&'static str, crate::store::StoreError>,
) -> Reply {
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    let lang = lang_of(req, Some(&s.user));
    let done = ctx.store.write(|tx| match tx.filter(id)? {
        Some(filter) => Ok(Some((f(tx, &filter)?, filter.name))),
        None => Ok::<_, crate::store::StoreError>(None),
    });
    match done {
        Ok(Some((msg, name))) => list(ctx, req, s, Some(i18n::tr(lang, msg, &[("name", name)]))),
        Ok(None) => not_found(),
        Err(e) => store_error(e),
    }
}

fn list(ctx: &WebCtx, req: &Req, s: &Session, notice: Option<String>) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let mut all = match r.filters() {
        Ok(f) => f,
        Err(e) => return store_error(e),
    };
    all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let names = match Names::load(&r) {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    let rows: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "id": f.id,
                "order": i + 1,
                "name": f.name,
                "enabled": f.enabled,
                "stop": f.stop,
                "conditions": f.conditions.iter().map(|c| describe_condition(lang, c)).collect::<Vec<_>>().join("; "),
                "actions": f.actions.iter().map(|a| names.action(lang, a)).collect::<Vec<_>>().join("; "),
            })
        })
        .collect();
    render(
        ctx,
        req,
        s,
        "admin_filters.html",
        "filters",
        json!({"filters": rows, "notice": notice}),
    )
}

fn describe_condition(lang: &str, c: &Condition) -> String {
    let field = field_label(lang, &c.field);
    let how = if c.negate {
        i18n::tr(lang, "does not match", &[])
    } else {
        i18n::tr(lang, "matches", &[])
    };
    let case = if c.case_sensitive {
        format!(" ({})", i18n::tr(lang, "case-sensitive", &[]))
    } else {
        String::new()
    };
    format!("{field} {how} /{}/{case}", c.pattern)
}

fn field_label(lang: &str, f: &Field) -> String {
    match f {
        Field::Header(h) => h.clone(),
        Field::Body => i18n::tr(lang, "Body", &[]),
        Field::AttachmentCount => i18n::tr(lang, "Attachment count", &[]),
        Field::AttachmentName => i18n::tr(lang, "Attachment name", &[]),
    }
}

/// Mailbox and user names for the form's choices and the descriptions.
struct Names {
    mailboxes: Vec<(MailboxId, String)>,
    users: Vec<(UserId, String)>,
}

impl Names {
    fn load(r: &crate::store::Reader) -> Result<Names, crate::store::StoreError> {
        Ok(Names {
            mailboxes: r.mailboxes()?.into_iter().map(|m| (m.id, m.name)).collect(),
            users: r
                .users()?
                .into_iter()
                .filter(|u| !u.disabled)
                .map(|u| {
                    let label = if u.name.is_empty() {
                        u.login
                    } else {
                        format!("{} ({})", u.name, u.login)
                    };
                    (u.id, label)
                })
                .collect(),
        })
    }

    fn mailbox(&self, id: MailboxId) -> String {
        self.mailboxes
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    fn user(&self, id: UserId) -> String {
        self.users
            .iter()
            .find(|(u, _)| *u == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    fn action(&self, lang: &str, a: &Action) -> String {
        let kind = i18n::tr(lang, kind_label(a.kind()), &[]);
        let arg = match a {
            Action::Mailbox(m) => self.mailbox(*m),
            Action::Assign(u) => self.user(*u),
            Action::SetStatus(st) => i18n::tr(lang, status_label(*st), &[]),
            Action::SetPriority(p) => i18n::tr(lang, priority_label(*p), &[]),
            other => other.arg(),
        };
        if arg.is_empty() {
            kind
        } else {
            format!("{kind}: {arg}")
        }
    }

    /// The choices of an action row's select: `m:ID`, `u:ID`, `s:status`, `p:priority`.
    fn choices(&self, lang: &str) -> Vec<Value> {
        let group = |label: &str, options: Vec<Value>| json!({"group": i18n::tr(lang, label, &[]), "options": options});
        let mailboxes = self
            .mailboxes
            .iter()
            .map(|(id, n)| json!([format!("m:{id}"), n]))
            .collect();
        let users = self
            .users
            .iter()
            .map(|(id, n)| json!([format!("u:{id}"), n]))
            .collect();
        let statuses = [Status::Active, Status::Pending, Status::Closed]
            .iter()
            .map(|st| {
                json!([
                    format!("s:{}", st.as_str()),
                    i18n::tr(lang, status_label(*st), &[])
                ])
            })
            .collect();
        let priorities = Priority::ALL
            .iter()
            .map(|p| {
                json!([
                    format!("p:{}", p.as_str()),
                    i18n::tr(lang, priority_label(*p), &[])
                ])
            })
            .collect();
        vec![
            group("Mailbox", mailboxes),
            group("Assign to", users),
            group("Status", statuses),
            group("Priority", priorities),
        ]
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "mailbox" => "Put in mailbox",
        "status" => "Set status",
        "priority" => "Set priority",
        "assign" => "Assign to",
        "tags" => "Add tags",
        "field" => "Set custom field",
        "spam" => "Mark as spam",
        "no-auto-reply" => "Do not auto-reply",
        "ignore" => "Ignore (keep the raw mail, no conversation)",
        _ => "",
    }
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Active => "Active",
        Status::Pending => "Pending",
        Status::Closed => "Closed",
        Status::Spam => "Spam",
        Status::Merged => "Merged",
    }
}

fn priority_label(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Low priority",
        Priority::Normal => "Normal priority",
        Priority::High => "High priority",
        Priority::Urgent => "Urgent",
    }
}

/// One condition row as the form shows it.
#[derive(Default, Clone)]
struct CondRow {
    field: String,
    header: String,
    negate: bool,
    case: bool,
    pattern: String,
}

/// One action row as the form shows it.
#[derive(Default, Clone)]
struct ActRow {
    kind: String,
    choice: String,
    arg: String,
}

fn rows_of(f: &Filter) -> (Vec<CondRow>, Vec<ActRow>) {
    let conds = f
        .conditions
        .iter()
        .map(|c| {
            let (field, header) = match &c.field {
                Field::Header(h) if COMMON_HEADERS.contains(&h.as_str()) => {
                    (h.clone(), String::new())
                }
                Field::Header(h) => ("header".to_owned(), h.clone()),
                other => (other.key(), String::new()),
            };
            CondRow {
                field,
                header,
                negate: c.negate,
                case: c.case_sensitive,
                pattern: c.pattern.clone(),
            }
        })
        .collect();
    let acts = f
        .actions
        .iter()
        .map(|a| {
            let (choice, arg) = match a {
                Action::Mailbox(m) => (format!("m:{m}"), String::new()),
                Action::Assign(u) => (format!("u:{u}"), String::new()),
                Action::SetStatus(st) => (format!("s:{}", st.as_str()), String::new()),
                Action::SetPriority(p) => (format!("p:{}", p.as_str()), String::new()),
                other => (String::new(), other.arg()),
            };
            ActRow {
                kind: a.kind().to_owned(),
                choice,
                arg,
            }
        })
        .collect();
    (conds, acts)
}

fn rows_of_form(form: &Form) -> (Vec<CondRow>, Vec<ActRow>) {
    let n = |name: &str| {
        form.text(name)
            .parse::<usize>()
            .unwrap_or(0)
            .min(filters::MAX_ROWS + SPARE_ROWS * 5)
    };
    let conds = (0..n("conds"))
        .map(|i| CondRow {
            field: form.text(&format!("cond-{i}-field")),
            header: form.text(&format!("cond-{i}-header")),
            negate: form.text(&format!("cond-{i}-match")) == "not",
            case: form.get(&format!("cond-{i}-case")).is_some(),
            pattern: form
                .get(&format!("cond-{i}-pattern"))
                .unwrap_or("")
                .to_owned(),
        })
        .collect();
    let acts = (0..n("acts"))
        .map(|i| ActRow {
            kind: form.text(&format!("act-{i}-kind")),
            choice: form.text(&format!("act-{i}-choice")),
            arg: form.text(&format!("act-{i}-arg")),
        })
        .collect();
    (conds, acts)
}

/// Reads the form into a filter; rows left empty are skipped, rows that make no sense get
/// an error next to their field.
fn filter_of_form(
    lang: &str,
    form: &Form,
    id: u64,
    others: &[&str],
    errors: &mut FieldErrors,
) -> Filter {
    let (conds, acts) = rows_of_form(form);
    let mut f = Filter {
        id,
        name: form.text("name"),
        enabled: form.get("enabled").is_some(),
        stop: form.get("stop").is_some(),
        conditions: Vec::new(),
        actions: Vec::new(),
    };
    // Field names keep the row numbers of the form, so errors land next to their row.
    let mut cond_rows = Vec::new();
    for (i, c) in conds.iter().enumerate() {
        if c.pattern.is_empty() && c.header.is_empty() {
            continue;
        }
        let key = if c.field == "header" {
            c.header.as_str()
        } else {
            c.field.as_str()
        };
        let Some(field) = Field::from_key(key) else {
            errors.add(
                lang,
                &format!("cond-{i}-header"),
                "Enter a header name (letters, digits and dashes, no colon).",
                &[],
            );
            continue;
        };
        cond_rows.push(i);
        f.conditions.push(Condition {
            field,
            pattern: c.pattern.clone(),
            negate: c.negate,
            case_sensitive: c.case,
        });
    }
    let mut act_rows = Vec::new();
    for (i, a) in acts.iter().enumerate() {
        let pick = |prefix: &str| a.choice.strip_prefix(prefix).map(str::to_owned);
        let action = match a.kind.as_str() {
            "" => continue,
            "mailbox" => pick("m:")
                .and_then(|v| v.parse().ok())
                .map(|v| Action::Mailbox(MailboxId(v))),
            "assign" => pick("u:")
                .and_then(|v| v.parse().ok())
                .map(|v| Action::Assign(UserId(v))),
            "status" => pick("s:")
                .and_then(|v| Status::parse(&v))
                .filter(|s| *s != Status::Merged)
                .map(Action::SetStatus),
            "priority" => pick("p:")
                .and_then(|v| Priority::parse(&v))
                .map(Action::SetPriority),
            "tags" => Some(Action::AddTags(filters::split_tags(&a.arg))),
            "field" => Some(match a.arg.split_once('=') {
                Some((k, v)) => Action::SetField(k.trim().to_owned(), v.trim().to_owned()),
                None => Action::SetField(String::new(), String::new()),
            }),
            "spam" => Some(Action::MarkSpam),
            "no-auto-reply" => Some(Action::NoAutoReply),
            "ignore" => Some(Action::Ignore),
            _ => None,
        };
        match action {
            Some(x) => {
                act_rows.push(i);
                f.actions.push(x);
            }
            None => errors.add(
                lang,
                &format!("act-{i}-choice"),
                "Choose the {what} in the list next to the action.",
                &[("what", i18n::tr(lang, kind_label(&a.kind), &[]))],
            ),
        }
    }
    for (field, refusal) in filters::validate(&f, others) {
        // Map the engine's row numbers (filled rows) back to the form's.
        let field = renumber(&field, "cond-", &cond_rows)
            .or_else(|| renumber(&field, "act-", &act_rows))
            .unwrap_or(field);
        errors.add(lang, &field, refusal.msg, &refusal.args);
    }
    f
}

fn renumber(field: &str, prefix: &str, rows: &[usize]) -> Option<String> {
    let rest = field.strip_prefix(prefix)?;
    let (n, tail) = rest.split_once('-')?;
    let row = rows.get(n.parse::<usize>().ok()?)?;
    Some(format!("{prefix}{row}-{tail}"))
}

fn save(ctx: &WebCtx, req: &Req, s: &Session, form: &Form, id: u64) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let existing = match ctx.store.read().and_then(|r| r.filters()) {
        Ok(f) => f,
        Err(e) => return store_error(e),
    };
    if id != 0 && !existing.iter().any(|f| f.id == id) {
        return not_found();
    }
    let op = form.text("op");
    if op == "add-cond" || op == "add-act" {
        // Re-render with more empty rows; nothing is saved, nothing is refused yet.
        let extra = if op == "add-cond" { 1 } else { 2 };
        return edit_form_rows(
            ctx,
            req,
            s,
            id,
            form,
            &FieldErrors::default(),
            extra,
            Value::Null,
        );
    }
    let others: Vec<&str> = existing
        .iter()
        .filter(|f| f.id != id)
        .map(|f| f.name.as_str())
        .collect();
    let mut errors = FieldErrors::default();
    let filter = filter_of_form(lang, form, id, &others, &mut errors);
    if op == "test" {
        // Run this filter as typed (with the saved others), save nothing.
        let report = if errors.is_empty() {
            match test_report(ctx, lang, form, Some(filter), &mut errors) {
                Ok(r) => r,
                Err(e) => return store_error(e),
            }
        } else {
            Value::Null
        };
        return edit_form_rows(ctx, req, s, id, form, &errors, 0, report);
    }
    if !errors.is_empty() {
        return edit_form_rows(ctx, req, s, id, form, &errors, 0, Value::Null);
    }
    match ctx.store.write(|tx| tx.put_filter(&filter)) {
        Ok(_) => list(
            ctx,
            req,
            s,
            Some(i18n::tr(
                lang,
                "Filter “{name}” saved.",
                &[("name", filter.name)],
            )),
        ),
        Err(e) => store_error(e),
    }
}

fn edit_form(ctx: &WebCtx, req: &Req, s: &Session, f: &Filter) -> Reply {
    let (conds, acts) = rows_of(f);
    let fields = json!({
        "id": f.id,
        "name": f.name,
        "enabled": f.enabled || f.id == 0,
        "stop": f.stop,
    });
    render_form(
        ctx,
        req,
        s,
        fields,
        (conds, acts),
        &FieldErrors::default(),
        0,
        json!({}),
    )
}

#[allow(clippy::too_many_arguments)]
fn edit_form_rows(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    id: u64,
    form: &Form,
    errors: &FieldErrors,
    extra: u8,
    report: Value,
) -> Reply {
    let (conds, acts) = rows_of_form(form);
    let fields = json!({
        "id": id,
        "name": form.text("name"),
        "enabled": form.get("enabled").is_some(),
        "stop": form.get("stop").is_some(),
    });
    let test = json!({
        "mail": form.get("mail").unwrap_or(""),
        "message": form.text("message"),
        "trusted": form.get("trusted").is_some(),
        "report": report,
    });
    render_form(ctx, req, s, fields, (conds, acts), errors, extra, test)
}

/// `extra`: 1 = more condition rows, 2 = more action rows.
#[allow(clippy::too_many_arguments)]
fn render_form(
    ctx: &WebCtx,
    req: &Req,
    s: &Session,
    fields: Value,
    (mut conds, mut acts): (Vec<CondRow>, Vec<ActRow>),
    errors: &FieldErrors,
    extra: u8,
    test: Value,
) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    // Keep the filled rows, then SPARE_ROWS empty ones (more after "Add rows").
    conds.retain(|c| !c.pattern.is_empty() || !c.header.is_empty());
    acts.retain(|a| !a.kind.is_empty());
    let spare = |more: bool| SPARE_ROWS + if more { SPARE_ROWS } else { 0 };
    let nc = (conds.len() + spare(extra == 1)).min(filters::MAX_ROWS);
    let na = (acts.len() + spare(extra == 2)).min(filters::MAX_ROWS);
    conds.resize(nc.max(conds.len()), CondRow::default());
    acts.resize(na.max(acts.len()), ActRow::default());
    let names = match ctx.store.read().and_then(|r| Names::load(&r)) {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    let mut field_opts: Vec<Value> = COMMON_HEADERS.iter().map(|h| json!([h, h])).collect();
    field_opts.push(json!([
        "header",
        i18n::tr(lang, "Other header (name below)", &[])
    ]));
    for f in [Field::Body, Field::AttachmentCount, Field::AttachmentName] {
        field_opts.push(json!([f.key(), field_label(lang, &f)]));
    }
    let kinds: Vec<Value> = std::iter::once(json!(["", "—"]))
        .chain(
            filters::ACTION_KINDS
                .iter()
                .map(|k| json!([k, i18n::tr(lang, kind_label(k), &[])])),
        )
        .collect();
    render(
        ctx,
        req,
        s,
        "admin_filter.html",
        "filters",
        merge_ctx(
            json!({
                "flt": fields,
                "errors": errors.to_json(),
                "conds": conds.iter().map(|c| json!({"field": if c.field.is_empty() { "Subject" } else { c.field.as_str() }, "header": c.header, "negate": c.negate, "case": c.case, "pattern": c.pattern})).collect::<Vec<_>>(),
                "acts": acts.iter().map(|a| json!({"kind": a.kind, "choice": a.choice, "arg": a.arg})).collect::<Vec<_>>(),
                "field_options": field_opts,
                "match_options": [["matches", i18n::tr(lang, "matches", &[])], ["not", i18n::tr(lang, "does not match", &[])]],
                "kinds": kinds,
                "choices": names.choices(lang),
            }),
            test,
        ),
    )
}

/// "Test filters": the saved filters on a pasted mail or a stored message.
fn test_page(ctx: &WebCtx, req: &Req, s: &Session, form: Option<&Form>) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let mut errors = FieldErrors::default();
    let pasted = form
        .map(|f| f.get("mail").unwrap_or("").to_owned())
        .unwrap_or_default();
    let message = form.map(|f| f.text("message")).unwrap_or_default();
    let trusted_box = form.is_some_and(|f| f.get("trusted").is_some());
    let report = match form {
        Some(f) => match test_report(ctx, lang, f, None, &mut errors) {
            Ok(r) => r,
            Err(e) => return store_error(e),
        },
        None => Value::Null,
    };
    render(
        ctx,
        req,
        s,
        "admin_filter_test.html",
        "filters",
        json!({
            "errors": errors.to_json(),
            "mail": pasted,
            "message": message,
            "trusted": trusted_box,
            "report": report,
        }),
    )
}

/// Runs the saved filters (with `candidate` in place of its saved version) on the mail
/// the form names (`mail` pasted, or `message` by number, `trusted`); errors go next to
/// those fields.
fn test_report(
    ctx: &WebCtx,
    lang: &str,
    form: &Form,
    candidate: Option<Filter>,
    errors: &mut FieldErrors,
) -> Result<Value, crate::store::StoreError> {
    let r = ctx.store.read()?;
    let pasted = form.get("mail").unwrap_or("");
    let message = form.text("message");
    let input: Option<(Vec<u8>, bool, String)> = if !message.is_empty() {
        match message.trim_start_matches('#').parse::<u64>() {
            Ok(n) => {
                let found = stored(&r, n)?;
                if found.is_none() {
                    errors.add(
                        lang,
                        "message",
                        "There is no stored message {id}.",
                        &[("id", n.to_string())],
                    );
                }
                found
            }
            Err(_) => {
                errors.add(lang, "message", "Enter a message number.", &[]);
                None
            }
        }
    } else if !pasted.trim().is_empty() {
        let bytes = pasted.as_bytes();
        let bytes = bytes.get(..bytes.len().min(MAX_PASTE)).unwrap_or(bytes);
        Some((bytes.to_vec(), form.get("trusted").is_some(), String::new()))
    } else {
        errors.add(
            lang,
            "mail",
            "Paste a mail or enter a stored message's number.",
            &[],
        );
        None
    };
    let Some((bytes, trusted, source)) = input else {
        return Ok(Value::Null);
    };
    let mut stage = Stage::load(&r)?;
    if let Some(f) = candidate {
        stage = stage.with_filter(&r, f)?;
    }
    let names = Names::load(&r)?;
    let mail = crate::pipeline::parse::filter_mail(&bytes);
    let d = stage.run(&mail, trusted);
    Ok(report_json(lang, &names, &d, trusted, &source))
}

/// The bytes of stored message `n` (its raw message), whether its account is trusted, and
/// its source.
fn stored(
    r: &crate::store::Reader,
    n: u64,
) -> Result<Option<(Vec<u8>, bool, String)>, crate::store::StoreError> {
    let Some(m) = r.message(crate::model::MsgId(n))? else {
        return Ok(None);
    };
    let raw = RawId(m.raw.0);
    let (Some(rec), Some(bytes)) = (r.raw(raw)?, r.raw_bytes(raw)?) else {
        return Ok(None);
    };
    let trusted = Stage::load(r)?.is_trusted(&rec);
    Ok(Some((
        bytes,
        trusted,
        rec.sources.first().cloned().unwrap_or_default(),
    )))
}

fn report_json(
    lang: &str,
    names: &Names,
    d: &crate::pipeline::filter::Decision,
    trusted: bool,
    source: &str,
) -> Value {
    let o = &d.outcome;
    let mut would: Vec<String> = Vec::new();
    if o.ignore {
        would.push(i18n::tr(
            lang,
            "Ignore: the raw mail is kept and logged, no conversation is created.",
            &[],
        ));
    }
    if let Some(m) = o.mailbox {
        would.push(names.action(lang, &Action::Mailbox(m)));
    }
    if let Some(st) = o.status {
        would.push(names.action(lang, &Action::SetStatus(st)));
    }
    if let Some(p) = o.priority {
        would.push(names.action(lang, &Action::SetPriority(p)));
    }
    if let Some(u) = o.assignee {
        would.push(names.action(lang, &Action::Assign(u)));
    }
    if !o.tags.is_empty() {
        would.push(names.action(lang, &Action::AddTags(o.tags.clone())));
    }
    for (k, v) in &o.fields {
        would.push(names.action(lang, &Action::SetField(k.clone(), v.clone())));
    }
    if o.spam {
        would.push(i18n::tr(lang, "Mark as spam", &[]));
    }
    if o.no_auto_reply {
        would.push(i18n::tr(lang, "Do not auto-reply", &[]));
    }
    let filters: Vec<Value> = d
        .trace
        .filters
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "enabled": f.enabled,
                "matched": f.matched,
                "stopped": f.stopped,
                "broken": f.broken,
                "conditions": f.conditions.iter().map(|c| json!({
                    "text": describe_condition(lang, &Condition {
                        field: Field::from_key(&c.field).unwrap_or(Field::Body),
                        pattern: c.pattern.clone(),
                        negate: c.negate,
                        case_sensitive: c.case_sensitive,
                    }),
                    "held": c.held,
                    "value": c.matched_value,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "trusted": trusted,
        "source": source,
        "filters": filters,
        "x_headers": d.trace.x_headers.iter().map(|(h, v, did)| json!({"header": h, "value": v, "did": did})).collect::<Vec<_>>(),
        "would": would,
    })
}

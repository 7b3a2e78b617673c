//! The JSON API under `/api/v1`, for scripts and other tools.
//!
//! Owns: token authentication (`Authorization: Bearer pr_...`, tokens made on the
//! profile page), the endpoints (list and search conversations, get one with its
//! messages, reply, note, assign, status, who am I), and errors as JSON objects with a
//! `error` message for people.
//! Must not: accept the session cookie (no CSRF exposure), or show a conversation of a
//! mailbox the token's user may not see (404, as if it did not exist).

use super::pages::{is_unread, visible_mailboxes};
use super::{Reply, Req, WebCtx};
use crate::config::Settings;
use crate::model::{
    Addr, ConvId, ConversationRecord, Direction, MailboxId, OutboxState, Status, UserId,
    UserRecord, format_rfc3339,
};
use crate::store::StoreError;
use serde_json::{Value, json};

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": message }))
}

fn store_error(e: StoreError) -> Reply {
    log::error!("api: {e}");
    error(500, &format!("the store could not be read or written: {e}"))
}

fn not_found() -> Reply {
    error(404, "no such conversation")
}

pub fn route(ctx: &WebCtx, req: &Req) -> Reply {
    let Some(rest) = req.path.strip_prefix("/api/v1/") else {
        return error(404, "unknown API path; the API is under /api/v1/");
    };
    let Some(user) = super::auth::api_user(ctx, req) else {
        return error(
            401,
            "missing or unknown API token: send `Authorization: Bearer pr_...` with a token made on your profile page",
        )
        .with("WWW-Authenticate", "Bearer");
    };
    let body: Value = if req.is_get() || req.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return error(400, &format!("the request body is not JSON: {e}")),
        }
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let id = |s: &str| s.parse::<u64>().ok().map(ConvId);
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["me"]) => Reply::json(
            200,
            &json!({"id": user.id.0, "login": user.login, "name": user.name, "role": user.role.as_str()}),
        ),
        ("GET", ["conversations"]) => list(ctx, req, &user),
        ("GET", ["conversations", c]) => match id(c) {
            Some(c) => get(ctx, &user, c),
            None => not_found(),
        },
        ("POST", ["conversations", c, action]) => match id(c) {
            Some(c) => act(ctx, &user, c, action, &body),
            None => not_found(),
        },
        (_, ["conversations", ..]) | (_, ["me"]) => error(405, "method not allowed here"),
        _ => error(404, "unknown API path"),
    }
}

fn addr(a: &Addr) -> Value {
    json!({"name": a.name, "email": a.email})
}

fn conv_json(
    r: &crate::store::Reader,
    user: &UserRecord,
    c: &ConversationRecord,
) -> Result<Value, StoreError> {
    Ok(json!({
        "id": c.id.0,
        "mailbox": c.mailbox.0,
        "status": c.status.as_str(),
        "subject": c.subject,
        "customer": c.customer.as_ref().map(addr),
        "created": format_rfc3339(c.created),
        "last_activity": format_rfc3339(c.last_activity),
        "messages": c.message_count,
        "assignee": c.assignee.map(|a| a.0),
        "followers": c.followers.iter().map(|f| f.0).collect::<Vec<_>>(),
        "priority": c.priority.as_str(),
        "tags": c.tags,
        "fields": c.fields,
        "unread": is_unread(r, user.id, c)?,
    }))
}

fn list(ctx: &WebCtx, req: &Req, user: &UserRecord) -> Reply {
    let run = || -> Result<Reply, StoreError> {
        let r = ctx.store.read()?;
        let visible: Vec<MailboxId> = visible_mailboxes(&r, user)?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let mailbox = match req.param("mailbox") {
            Some(m) => match m.parse::<u64>().ok().map(MailboxId) {
                Some(id) if visible.contains(&id) => Some(id),
                _ => return Ok(error(404, "no such mailbox")),
            },
            None => None,
        };
        let status = match req.param("status") {
            Some(s) => match Status::parse(&s) {
                Some(st) => Some(st),
                None => {
                    return Ok(error(
                        400,
                        &format!("status {s:?} is not one of active, pending, closed, spam"),
                    ));
                }
            },
            None => None,
        };
        let assignee = req.param("assignee");
        let q = req.param("q").map(|q| q.to_lowercase());
        let limit = req
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(50)
            .clamp(1, 500);
        let offset = req
            .param("offset")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0);
        let buckets: Vec<u8> = match status {
            Some(Status::Active) => vec![0],
            Some(Status::Pending) => vec![1],
            Some(Status::Closed) => vec![2],
            Some(Status::Spam) => vec![3],
            Some(Status::Merged) => vec![],
            None => vec![0, 1, 2, 3],
        };
        let mut ids = Vec::new();
        for mb in visible.iter().filter(|m| mailbox.is_none_or(|x| x == **m)) {
            for b in &buckets {
                ids.extend(r.inbox_all(*mb, *b, None)?);
            }
        }
        ids.sort_by_key(|(t, id)| std::cmp::Reverse((*t, *id)));
        let mut out = Vec::new();
        let mut total = 0usize;
        for (_, id) in ids {
            let Some(c) = r.conversation(id)? else {
                continue;
            };
            let who_ok = match assignee.as_deref() {
                None => true,
                Some("me") => c.assignee == Some(user.id),
                Some("none") => c.assignee.is_none(),
                Some(n) => n.parse::<u64>().ok().map(UserId) == c.assignee,
            };
            let q_ok = q.as_deref().is_none_or(|q| {
                c.subject.to_lowercase().contains(q)
                    || c.customer.as_ref().is_some_and(|a| {
                        a.email.to_lowercase().contains(q) || a.name.to_lowercase().contains(q)
                    })
                    || format!("#{}", c.id) == q
                    || c.id.0.to_string() == q
            });
            if !(who_ok && q_ok) {
                continue;
            }
            if total >= offset && out.len() < limit {
                out.push(conv_json(&r, user, &c)?);
            }
            total += 1;
        }
        Ok(Reply::json(
            200,
            &json!({"total": total, "offset": offset, "limit": limit, "conversations": out}),
        ))
    };
    run().unwrap_or_else(store_error)
}

fn visible(
    ctx: &WebCtx,
    user: &UserRecord,
    id: ConvId,
) -> Result<Option<ConversationRecord>, StoreError> {
    let r = ctx.store.read()?;
    Ok(r.conversation(id)?
        .filter(|c| user.may_see(c.mailbox) && c.status != Status::Merged))
}

fn get(ctx: &WebCtx, user: &UserRecord, id: ConvId) -> Reply {
    let run = || -> Result<Reply, StoreError> {
        let r = ctx.store.read()?;
        let Some(c) = r
            .conversation(id)?
            .filter(|c| user.may_see(c.mailbox) && c.status != Status::Merged)
        else {
            return Ok(not_found());
        };
        let outbox: std::collections::BTreeMap<_, _> =
            crate::outbox::states(&r)?.into_iter().collect();
        let mut msgs = Vec::new();
        for m in r.conversation_messages(c.id)? {
            let raw = r.raw_bytes(m.raw)?.unwrap_or_default();
            let view = crate::pipeline::parse::body_view(&raw).unwrap_or_default();
            let sending = outbox.get(&m.id).map(|o| match &o.state {
                OutboxState::Queued { .. } => {
                    json!({"state": "queued", "last_error": o.last_error})
                }
                OutboxState::Sent { reply, .. } => json!({"state": "sent", "reply": reply}),
                OutboxState::Failed { reply, .. } => json!({"state": "failed", "reply": reply}),
            });
            msgs.push(json!({
                "id": m.id.0,
                "direction": match m.direction { Direction::In => "in", Direction::Out => "out", Direction::Note => "note" },
                "message_id": m.message_id,
                "date": format_rfc3339(m.date),
                "subject": m.subject,
                "from": m.from.as_ref().map(addr),
                "to": m.to.iter().map(addr).collect::<Vec<_>>(),
                "cc": m.cc.iter().map(addr).collect::<Vec<_>>(),
                "text": view.text,
                "has_html": view.html.is_some(),
                "attachments": view.parts.iter().map(|p| json!({"name": p.name, "content_type": p.content_type, "size": p.size})).collect::<Vec<_>>(),
                "sending": sending,
            }));
        }
        let mut v = conv_json(&r, user, &c)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("thread".into(), Value::Array(msgs));
        }
        Ok(Reply::json(200, &v))
    };
    run().unwrap_or_else(store_error)
}

fn act(ctx: &WebCtx, user: &UserRecord, id: ConvId, action: &str, body: &Value) -> Reply {
    let c = match visible(ctx, user, id) {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let list = |k: &str| -> Vec<String> {
        match body.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let ok = |ctx: &WebCtx| -> Reply {
        ctx.changed();
        match visible(ctx, user, id).and_then(|c| {
            let r = ctx.store.read()?;
            c.map(|c| conv_json(&r, user, &c)).transpose()
        }) {
            Ok(Some(v)) => Reply::json(200, &v),
            Ok(None) => not_found(),
            Err(e) => store_error(e),
        }
    };
    match action {
        "reply" => {
            let b = text("body");
            if b.trim().is_empty() {
                return error(400, "\"body\" is required: the text of the reply");
            }
            let settings = match ctx.store.read().and_then(|r| Settings::load(&r)) {
                Ok(s) => s,
                Err(e) => return store_error(e),
            };
            let req = crate::outbox::ReplyRequest {
                conv: c.id,
                body: b,
                from: Some(text("from")).filter(|f| !f.is_empty()),
                to: list("to"),
                cc: list("cc"),
                attachments: Vec::new(),
                quote: body.get("quote").and_then(Value::as_bool).unwrap_or(false),
                agent: user.name.clone(),
                forward: false,
            };
            match crate::outbox::queue_reply(&ctx.store, &settings, ctx.clock.as_ref(), &req) {
                Ok(q) => {
                    let uid = user.id;
                    let _ = ctx.store.write(|tx| {
                        if let Some(mut cur) = tx.conversation(c.id)?
                            && cur.assignee.is_none()
                        {
                            cur.assignee = Some(uid);
                            tx.put_conversation(&cur)?;
                        }
                        Ok::<_, StoreError>(())
                    });
                    ctx.wake_outbox();
                    ctx.changed();
                    Reply::json(
                        202,
                        &json!({"queued": q.outbox, "message": q.msg.0, "message_id": q.message_id,
                                "from": q.from, "recipients": q.recipients, "subject": q.subject}),
                    )
                }
                Err(e) => error(422, &e.to_string()),
            }
        }
        "note" => {
            let b = text("body");
            if b.trim().is_empty() {
                return error(400, "\"body\" is required: the text of the note");
            }
            match crate::outbox::add_note_as(&ctx.store, ctx.clock.as_ref(), c.id, user, &b) {
                Ok(m) => {
                    ctx.changed();
                    ctx.wake_outbox();
                    Reply::json(201, &json!({"message": m.id.0}))
                }
                Err(e) => error(422, &e.to_string()),
            }
        }
        "assign" => {
            let target = match body.get("assignee") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s == "me" => Some(user.id),
                Some(v) => match v.as_u64() {
                    Some(n) => Some(UserId(n)),
                    None => {
                        return error(400, "\"assignee\" is a user id, \"me\", or null for nobody");
                    }
                },
            };
            let r = ctx.store.write(|tx| {
                if let Some(t) = target {
                    match tx.user(t)? {
                        Some(u) if !u.disabled && u.may_see(c.mailbox) => {}
                        _ => return Ok(false),
                    }
                }
                if let Some(mut cur) = tx.conversation(c.id)? {
                    let before = cur.assignee;
                    cur.assignee = target;
                    tx.put_conversation(&cur)?;
                    if before != target
                        && let Some(to) = target
                    {
                        crate::notify::notify_assigned(tx, ctx.clock.as_ref(), &cur, user, to)?;
                    }
                }
                Ok(true)
            });
            match r {
                Ok(true) => {
                    ctx.wake_outbox();
                    ok(ctx)
                }
                Ok(false) => error(
                    422,
                    "that user does not exist, is disabled, or may not see this mailbox",
                ),
                Err(e) => store_error(e),
            }
        }
        "status" => {
            let s = text("status");
            let Some(st) = Status::parse(&s).filter(|s| *s != Status::Merged) else {
                return error(
                    400,
                    &format!("\"status\" {s:?} is not one of active, pending, closed, spam"),
                );
            };
            let r = ctx.store.write(|tx| {
                if let Some(mut cur) = tx.conversation(c.id)? {
                    cur.status = st;
                    tx.put_conversation(&cur)?;
                }
                Ok::<_, StoreError>(())
            });
            match r {
                Ok(()) => ok(ctx),
                Err(e) => store_error(e),
            }
        }
        "details" => {
            use crate::filters::{MAX_ROWS, MAX_TEXT};
            let priority = match body.get("priority") {
                None => None,
                Some(v) => match v.as_str().and_then(crate::model::Priority::parse) {
                    Some(p) => Some(p),
                    None => {
                        return error(
                            400,
                            &format!("\"priority\" {v} is not one of low, normal, high, urgent"),
                        );
                    }
                },
            };
            let long = |t: &str| t.is_empty() || t.chars().count() > MAX_TEXT;
            let tags = match body.get("tags") {
                None => None,
                Some(Value::Array(a))
                    if a.len() <= MAX_ROWS
                        && a.iter()
                            .all(|t| t.as_str().is_some_and(|t| !long(t.trim()))) =>
                {
                    let joined: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                    Some(crate::filters::split_tags(&joined.join(",")))
                }
                Some(_) => {
                    return error(
                        400,
                        &format!(
                            "\"tags\" is a list of at most {MAX_ROWS} non-empty strings of at most {MAX_TEXT} characters"
                        ),
                    );
                }
            };
            let fields = match body.get("fields") {
                None => None,
                Some(Value::Object(o))
                    if o.len() <= MAX_ROWS
                        && o.iter().all(|(k, v)| {
                            !long(k.trim())
                                && v.as_str().is_some_and(|v| v.chars().count() <= MAX_TEXT)
                        }) =>
                {
                    Some(
                        o.iter()
                            .filter_map(|(k, v)| Some((k.trim().to_owned(), v.as_str()?.trim())))
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(k, v)| (k, v.to_owned()))
                            .collect::<std::collections::BTreeMap<_, _>>(),
                    )
                }
                Some(_) => {
                    return error(
                        400,
                        &format!(
                            "\"fields\" is an object of at most {MAX_ROWS} name: text pairs, names not empty, at most {MAX_TEXT} characters each (an empty text drops the field)"
                        ),
                    );
                }
            };
            let r = ctx.store.write(|tx| {
                if let Some(mut cur) = tx.conversation(c.id)? {
                    if let Some(p) = priority {
                        cur.priority = p;
                    }
                    if let Some(t) = tags.clone() {
                        cur.tags = t;
                    }
                    if let Some(f) = fields.clone() {
                        cur.fields = f;
                    }
                    tx.put_conversation(&cur)?;
                }
                Ok::<_, StoreError>(())
            });
            match r {
                Ok(()) => ok(ctx),
                Err(e) => store_error(e),
            }
        }
        _ => error(
            404,
            "unknown action; use reply, note, assign, status or details",
        ),
    }
}

//! The communication log in the browser (OTOBO's): the dashboard at `/admin` (each
//! account's state and last error, the outbox, messages in and out per hour, the average
//! time from arrival to conversation) and the entry list at `/admin/log` with its filters
//! (time, account or component, priority and above, keyword) and a detail view per entry.
//!
//! Owns: reading the log and the figures of the dashboard, bounded so that a big log
//! never makes a page slow (a search visits at most `SCAN_LIMIT` entries and says so).
//! Must not: write the log or change anything; show a secret (entries never hold one).

use super::render;
use crate::model::{Level, LogEntry, OutboxState};
use crate::store::{Reader, StoreError};
use crate::timezone::TimeZone;
use crate::web::auth::Session;
use crate::web::pages::{lang_of, not_found, store_error};
use crate::web::{Reply, Req, WebCtx, i18n, url_encode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Entries per page of the list.
pub const PAGE: usize = 200;
/// Most entries one search looks at before it stops and says so.
pub const SCAN_LIMIT: usize = 50_000;

/// The catalog names of the levels, lowest first.
pub const LEVEL_LABELS: &[(&str, &str)] = &[
    ("info", "Info"),
    ("notice", "Notice"),
    ("warn", "Warning"),
    ("error", "Error"),
];

fn level_label(lang: &str, l: Level) -> String {
    let en = LEVEL_LABELS
        .iter()
        .find(|(k, _)| *k == l.as_str())
        .map(|(_, v)| *v)
        .unwrap_or("Info");
    i18n::tr(lang, en, &[])
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (as the browser's date and datetime-local inputs
/// send them; UTC) as unix milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let mut it = t.split(':');
        let h: i64 = it.next()?.parse().ok()?;
        let min: i64 = it.next()?.parse().ok()?;
        let sec: i64 = match it.next() {
            Some(x) => x.parse().ok()?,
            None => 0,
        };
        if !(0..24).contains(&h) || !(0..60).contains(&min) || !(0..60).contains(&sec) {
            return None;
        }
        secs += h * 3600 + min * 60 + sec;
    }
    Some(secs * 1000)
}

/// What the list shows: every filter of the form.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// A component (`imap:support`, `outbox`, ...) or its kind (`imap`): exact or prefix.
    pub component: String,
    pub min_level: Option<Level>,
    pub keyword: String,
}

impl Filter {
    pub fn from_req(req: &Req) -> Filter {
        let p = |n: &str| req.param(n).unwrap_or_default();
        Filter {
            from_ms: parse_time(&p("from")),
            // A bare date as "to" means the end of that day.
            to_ms: parse_time(&p("to")).map(|t| {
                if p("to").contains(['T', ' ']) {
                    t + 60_000
                } else {
                    t + 86_400_000
                }
            }),
            component: p("account").trim().to_owned(),
            min_level: Level::parse(&p("level")),
            keyword: p("q").trim().to_lowercase(),
        }
    }

    /// Whether `e` passes every filter but the time (the walk handles time).
    pub fn matches(&self, e: &LogEntry) -> bool {
        if let Some(min) = self.min_level
            && e.level < min
        {
            return false;
        }
        if !self.component.is_empty()
            && e.component != self.component
            && !e
                .component
                .strip_prefix(self.component.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        {
            return false;
        }
        self.keyword.is_empty()
            || e.text.to_lowercase().contains(&self.keyword)
            || e.component.to_lowercase().contains(&self.keyword)
    }
}

/// The result of a search: newest first.
pub struct Found {
    pub entries: Vec<(u64, LogEntry)>,
    /// The sequence number to continue from for older entries, when there are more.
    pub older: Option<u64>,
    /// The search stopped after `SCAN_LIMIT` entries without filling the page.
    pub cut: bool,
}

/// Runs `f` over the log, newest first, from just before `before`.
pub fn search(r: &Reader, f: &Filter, before: Option<u64>) -> Result<Found, StoreError> {
    let mut out = Found {
        entries: Vec::new(),
        older: None,
        cut: false,
    };
    let mut seen = 0usize;
    let mut last = None;
    r.log_rev(before, |seq, e| {
        seen += 1;
        last = Some(seq);
        if f.to_ms.is_some_and(|to| e.at >= to) {
            return if seen >= SCAN_LIMIT {
                out.cut = true;
                out.older = Some(seq);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            };
        }
        if f.from_ms.is_some_and(|from| e.at < from) {
            return ControlFlow::Break(());
        }
        if f.matches(&e) {
            if out.entries.len() == PAGE {
                out.older = out.entries.last().map(|(s, _)| *s);
                return ControlFlow::Break(());
            }
            out.entries.push((seq, e));
        }
        if seen >= SCAN_LIMIT {
            out.cut = true;
            out.older = last;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

fn summary(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn entry_json(lang: &str, tz: &TimeZone, seq: u64, e: &LogEntry) -> Value {
    let (first, rest) = match e.text.split_once('\n') {
        Some((a, b)) => (a, b.trim_matches('\n')),
        None => (e.text.as_str(), ""),
    };
    json!({
        "seq": seq,
        "at": e.at,
        "when": tz.format(e.at.div_euclid(1000)),
        "level": e.level.as_str(),
        "level_label": level_label(lang, e.level),
        "rank": Level::ALL.iter().position(|l| *l == e.level).unwrap_or(0),
        "component": e.component,
        "summary": first,
        "detail": rest,
        "more": !rest.is_empty(),
        "raw": e.raw.map(|r| r.0),
        "conv": e.conv.map(|c| c.0),
    })
}

/// The choices of the account/component filter: every account, then the other parts.
fn components(r: &Reader, lang: &str) -> Result<Vec<Value>, StoreError> {
    let mut out = vec![json!(["", i18n::tr(lang, "All", &[])])];
    for a in r.accounts()? {
        let c = format!("{}:{}", a.protocol.as_str(), a.name);
        out.push(json!([c, c]));
    }
    for (c, label) in [
        ("imap", "All IMAP accounts"),
        ("pop3", "All POP3 accounts"),
        ("pipeline", "Processing (pipeline)"),
        ("outbox", "Outgoing mail (outbox)"),
        ("auto-reply", "Automatic replies"),
        ("notes", "Notes"),
    ] {
        out.push(json!([c, i18n::tr(lang, label, &[])]));
    }
    Ok(out)
}

/// `/admin/log`: the filtered list.
pub fn list(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let f = Filter::from_req(req);
    let before = req.param("before").and_then(|b| b.parse::<u64>().ok());
    let found = match search(&r, &f, before) {
        Ok(x) => x,
        Err(e) => return store_error(e),
    };
    let comps = match components(&r, lang) {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let tz = crate::web::zone(&r);
    drop(r);
    let p = |n: &str| req.param(n).unwrap_or_default();
    let older = found.older.map(|seq| {
        let q: Vec<String> = ["from", "to", "account", "level", "q"]
            .iter()
            .map(|k| format!("{k}={}", url_encode(&p(k))))
            .collect();
        format!("/admin/log?{}&before={seq}", q.join("&"))
    });
    let levels: Vec<Value> = std::iter::once(json!(["", i18n::tr(lang, "All", &[])]))
        .chain(Level::ALL.iter().map(|l| {
            json!([
                l.as_str(),
                i18n::tr(
                    lang,
                    "{level} and above",
                    &[("level", level_label(lang, *l))]
                )
            ])
        }))
        .collect();
    let entries: Vec<Value> = found
        .entries
        .iter()
        .map(|(seq, e)| entry_json(lang, &tz, *seq, e))
        .collect();
    render(
        ctx,
        req,
        s,
        "admin_log.html",
        "log",
        json!({
            "entries": entries, "older": older, "cut": found.cut, "scan_limit": SCAN_LIMIT,
            "components": comps, "levels": levels,
            "f": {"from": p("from"), "to": p("to"), "account": f.component,
                  "level": f.min_level.map(|l| l.as_str()).unwrap_or(""), "q": p("q")},
        }),
    )
}

/// `/admin/log/SEQ`: one entry with its details.
pub fn detail(ctx: &WebCtx, req: &Req, s: &Session, seq: &str) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let Ok(seq) = seq.parse::<u64>() else {
        return not_found();
    };
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let entry = match r.log_entry(seq) {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return store_error(e),
    };
    let raw = match entry.raw.map(|id| r.raw(id)).transpose() {
        Ok(x) => x.flatten(),
        Err(e) => return store_error(e),
    };
    let tz = crate::web::zone(&r);
    drop(r);
    render(
        ctx,
        req,
        s,
        "admin_log_entry.html",
        "log",
        json!({
            "e": entry_json(lang, &tz, seq, &entry),
            "raw_info": raw.map(|x| json!({
                "size": x.size,
                "received": tz.format(x.received_at.div_euclid(1000)),
                "sources": x.sources,
            })),
        }),
    )
}

/// Hours shown on the dashboard's chart.
const HOURS: i64 = 24;

/// `/admin`: how mail is flowing, at a glance.
pub fn dashboard(ctx: &WebCtx, req: &Req, s: &Session) -> Reply {
    let lang = lang_of(req, Some(&s.user));
    let now = ctx.clock.now_ms();
    let r = match ctx.store.read() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let states = ctx.states.lock().map(|m| m.clone()).unwrap_or_default();
    match dashboard_ctx(&r, lang, now, &states) {
        Ok(v) => {
            drop(r);
            render(ctx, req, s, "admin.html", "", v)
        }
        Err(e) => store_error(e),
    }
}

fn dashboard_ctx(
    r: &Reader,
    lang: &str,
    now: i64,
    states: &BTreeMap<String, crate::fetch::AccountState>,
) -> Result<Value, StoreError> {
    let since = now - HOURS * 3_600_000;
    let tz = crate::web::zone(r);
    // The last error of each component and the processing times, from the log's last
    // day (bounded).
    let mut last_error: BTreeMap<String, (u64, LogEntry)> = BTreeMap::new();
    let mut processed: Vec<(crate::model::RawId, i64)> = Vec::new();
    let mut seen = 0usize;
    r.log_rev(None, |seq, e| {
        seen += 1;
        if e.at < since || seen > SCAN_LIMIT {
            return ControlFlow::Break(());
        }
        if e.level == Level::Error && !last_error.contains_key(&e.component) {
            last_error.insert(e.component.clone(), (seq, e.clone()));
        }
        if e.component == "pipeline"
            && e.level == Level::Info
            && let Some(raw) = e.raw
            && processed.len() < 500
        {
            processed.push((raw, e.at));
        }
        ControlFlow::Continue(())
    })?;
    let mut delays = Vec::new();
    for (raw, at) in &processed {
        if let Some(rec) = r.raw(*raw)?
            && rec
                .sources
                .first()
                .is_some_and(|s| s.starts_with("imap:") || s.starts_with("pop3:"))
        {
            delays.push((at - rec.received_at).max(0));
        }
    }
    let avg_ms = if delays.is_empty() {
        None
    } else {
        Some(delays.iter().sum::<i64>() / delays.len() as i64)
    };
    // Messages in per hour: raw records of the last day that came from outside.
    let hour_of = |at: i64| ((now - at) / 3_600_000).clamp(0, HOURS - 1);
    let mut inbound = [0u64; HOURS as usize];
    let mut outbound = [0u64; HOURS as usize];
    r.raws_rev(|_, rec| {
        if rec.received_at < since {
            return ControlFlow::Break(());
        }
        if rec.sources.first().is_some_and(|s| {
            s.starts_with("imap:") || s.starts_with("pop3:") || s.starts_with("import:")
        }) && let Some(slot) = inbound.get_mut(hour_of(rec.received_at) as usize)
        {
            *slot += 1;
        }
        ControlFlow::Continue(())
    })?;
    let (mut queued, mut failed_day, mut oldest_queued) = (0u64, 0u64, None::<i64>);
    for o in r.outbox()? {
        match o.state {
            OutboxState::Queued { .. } => {
                queued += 1;
                oldest_queued = Some(oldest_queued.map_or(o.created, |x| x.min(o.created)));
            }
            OutboxState::Sent { at, .. } if at >= since => {
                if let Some(slot) = outbound.get_mut(hour_of(at) as usize) {
                    *slot += 1;
                }
            }
            OutboxState::Failed { at, .. } if at >= since => failed_day += 1,
            _ => {}
        }
    }
    let peak = inbound
        .iter()
        .chain(outbound.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    // Oldest hour first.
    let hours: Vec<Value> = (0..HOURS)
        .rev()
        .map(|h| {
            let i = h as usize;
            let (a, b) = (
                inbound.get(i).copied().unwrap_or(0),
                outbound.get(i).copied().unwrap_or(0),
            );
            let start = (now - (h + 1) * 3_600_000).div_euclid(1000);
            json!({
                "label": tz.format(start).get(11..16).unwrap_or("").to_owned(),
                "in": a, "out": b,
                "in_pct": a * 100 / peak, "out_pct": b * 100 / peak,
            })
        })
        .collect();
    let mailboxes: BTreeMap<u64, String> = r
        .mailboxes()?
        .into_iter()
        .map(|m| (m.id.0, m.name))
        .collect();
    let accounts: Vec<Value> = r
        .accounts()?
        .iter()
        .map(|a| {
            let comp = format!("{}:{}", a.protocol.as_str(), a.name);
            let state = if !a.enabled {
                i18n::tr(lang, "disabled", &[])
            } else {
                states
                    .get(&a.name)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| i18n::tr(lang, "not running", &[]))
            };
            let failing = matches!(
                states.get(&a.name),
                Some(crate::fetch::AccountState::Error { .. })
            );
            json!({
                "name": a.name, "component": comp, "protocol": a.protocol.as_str(),
                "host": format!("{}:{}", a.host, a.port),
                "mailbox": mailboxes.get(&a.mailbox.0).cloned().unwrap_or_default(),
                "enabled": a.enabled, "state": state, "failing": failing,
                "last_error": last_error.get(&comp).map(|(seq, e)| json!({
                    "seq": seq, "when": tz.format(e.at.div_euclid(1000)), "text": summary(&e.text),
                })),
            })
        })
        .collect();
    let outbox_error = last_error.get("outbox").map(|(seq, e)| {
        json!({"seq": seq, "when": tz.format(e.at.div_euclid(1000)), "text": summary(&e.text)})
    });
    Ok(json!({
        "accounts": accounts,
        "outbox": {
            "queued": queued,
            "oldest_queued": oldest_queued.map(|t| tz.format(t.div_euclid(1000))),
            "failed_day": failed_day,
            "sent_day": outbound.iter().sum::<u64>(),
            "last_error": outbox_error,
        },
        "in_day": inbound.iter().sum::<u64>(),
        "pending": r.pending_count()?,
        "hours": hours,
        "avg_processing": avg_ms.map(|ms| if ms < 10_000 {
            format!("{:.1} s", ms as f64 / 1000.0)
        } else {
            format!("{} s", ms / 1000)
        }),
        "avg_count": delays.len(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_from_the_browser_read_as_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2026-11-22"), Some(1_795_305_600_000));
        assert_eq!(
            parse_time("2026-11-22T10:30"),
            Some(1_795_305_600_000 + 37_800_000)
        );
        assert_eq!(parse_time("2024-02-29T00:00:01"), Some(1_709_164_801_000));
        for bad in ["", "2026-13-01", "2026-11", "yesterday", "2026-11-22T25:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_priority_shows_itself_and_everything_above() {
        let e = |level, component: &str, text: &str| LogEntry {
            at: 0,
            level,
            component: component.into(),
            raw: None,
            conv: None,
            text: text.into(),
        };
        let f = Filter {
            min_level: Some(Level::Notice),
            ..Default::default()
        };
        assert!(!f.matches(&e(Level::Info, "pipeline", "x")));
        for l in [Level::Notice, Level::Warn, Level::Error] {
            assert!(f.matches(&e(l, "pipeline", "x")));
        }
        let f = Filter {
            component: "imap".into(),
            keyword: "login".into(),
            ..Default::default()
        };
        assert!(f.matches(&e(Level::Error, "imap:support", "LOGIN failed")));
        assert!(!f.matches(&e(Level::Error, "imapx:support", "login failed")));
        assert!(!f.matches(&e(Level::Error, "pop3:support", "login failed")));
        assert!(!f.matches(&e(Level::Error, "imap:support", "connected")));
    }
}

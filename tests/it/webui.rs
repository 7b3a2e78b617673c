//! The web UI and the JSON API over plain HTTP against a real `postroom serve`:
//! permissions per mailbox, CSRF and Origin on every state-changing route, sessions
//! (fixation, logout, password change), login throttling, every API endpoint, and the
//! completeness of the French catalog. The browser-side checks (scripts, remote loads,
//! the team's flow) are in `webui_browser`.

use crate::smtpd::Smtpd;
use crate::support::{Serve, request, run_ok, tmp, web_port, write_file};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub(crate) const PW: &str = "a long enough password";

pub(crate) fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

pub(crate) fn cookie_value(head: &str, name: &str) -> Option<String> {
    header(head, "set-cookie")
        .into_iter()
        .filter_map(|c| c.split(';').next())
        .filter_map(|c| c.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// A logged-in browser, as far as HTTP goes.
pub(crate) struct Session {
    pub(crate) port: u16,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

impl Session {
    pub(crate) fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String, String) {
        let c = format!("postroom_session={}", self.cookie);
        request(self.port, "GET", path, &[("Cookie", &c)], b"")
    }

    /// A form POST as our pages send it (token and Origin).
    pub(crate) fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut f = vec![("csrf", self.csrf.as_str())];
        f.extend_from_slice(fields);
        self.post_raw(path, &form(&f), Some(&self.origin()))
    }

    pub(crate) fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        origin: Option<&str>,
    ) -> (u16, String, String) {
        let c = format!("postroom_session={}", self.cookie);
        let mut h = vec![
            ("Cookie", c.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        request(self.port, "POST", path, &h, body)
    }
}

pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("data-csrf=\"").expect("a page with a form token") + 11;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Logs in through the login form; `planted` is a session cookie an attacker set first.
pub(crate) fn login_with(
    port: u16,
    login: &str,
    pw: &str,
    planted: Option<&str>,
) -> (u16, String, String) {
    let (_, head, page) = request(port, "GET", "/login", &[], b"");
    let pre = cookie_value(&head, "postroom_pre").expect("login form cookie");
    let token = csrf_of(&page);
    let mut cookie = format!("postroom_pre={pre}");
    if let Some(p) = planted {
        cookie.push_str(&format!("; postroom_session={p}"));
    }
    let origin = format!("http://127.0.0.1:{port}");
    request(
        port,
        "POST",
        "/login",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[("csrf", &token), ("login", login), ("password", pw)]),
    )
}

pub(crate) fn login(port: u16, user: &str, pw: &str) -> Session {
    let (status, head, body) = login_with(port, user, pw, None);
    assert_eq!(status, 303, "login of {user}: {head}\n{body}");
    let cookie = cookie_value(&head, "postroom_session").expect("session cookie");
    let mut s = Session {
        port,
        cookie,
        csrf: String::new(),
    };
    let (_, _, page) = s.get("/inbox");
    s.csrf = csrf_of(&page);
    s
}

pub(crate) fn api(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, text) = request(port, method, path, &h, b.as_bytes());
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
    (status, v)
}

pub(crate) fn mail(from: &str, to: &str, subject: &str, id: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 2 Nov 2026 08:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello about {subject}\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n\r\n%PDF-1.4 not really\r\n--b--\r\n"
    )
}

/// Two mailboxes (Support, Sales) with one conversation each, an admin and an agent who
/// sees Sales only, an API token for each; serve runs with plain HTTP only.
pub(crate) struct Office {
    pub(crate) _data: tempfile::TempDir,
    pub(crate) serve: Serve,
    pub(crate) port: u16,
    pub(crate) admin_token: String,
    pub(crate) agent_token: String,
    /// Conversation ids: (support, sales).
    pub(crate) convs: (u64, u64),
}

pub(crate) fn office(smtp: Option<&Smtpd>) -> Office {
    let t = tmp();
    let d = t.path();
    if let Some(s) = smtp {
        run_ok(
            d,
            &[
                "smtp",
                "add",
                "relay",
                "--host",
                "127.0.0.1",
                "--port",
                &s.open_port().to_string(),
                "--security",
                "none",
                "--auth",
                "none",
            ],
        );
    }
    for (name, addr) in [
        ("Support", "support@example.org"),
        ("Sales", "sales@example.org"),
    ] {
        let mut args = vec!["mailbox", "add", name, "--address", addr];
        if smtp.is_some() {
            args.extend_from_slice(&["--smtp", "relay"]);
        }
        run_ok(d, &args);
    }
    let support = write_file(
        d,
        "support.eml",
        mail(
            "Anna <anna@customer.example>",
            "support@example.org",
            "Printer jammed",
            "s1@customer.example",
        )
        .as_bytes(),
    );
    let sales = write_file(
        d,
        "sales.eml",
        mail(
            "Ben <ben@customer.example>",
            "sales@example.org",
            "Quote for 20 chairs",
            "q1@customer.example",
        )
        .as_bytes(),
    );
    run_ok(
        d,
        &["import", support.to_str().unwrap(), "--mailbox", "Support"],
    );
    run_ok(
        d,
        &["import", sales.to_str().unwrap(), "--mailbox", "Sales"],
    );
    let pw = write_file(d, "pw", format!("{PW}\n").as_bytes());
    let pw = pw.to_str().unwrap();
    run_ok(
        d,
        &[
            "user",
            "add",
            "boss",
            "--role",
            "admin",
            "--name",
            "Boss",
            "--password-file",
            pw,
        ],
    );
    run_ok(
        d,
        &[
            "user",
            "add",
            "sam",
            "--mailbox",
            "Sales",
            "--name",
            "Sam Sales",
            "--password-file",
            pw,
        ],
    );
    // API tokens are made on the profile page; here through the library, before serve.
    let (admin_token, agent_token, convs) = {
        let dir = postroom::app::DataDir::open(d, &postroom::model::SystemClock).unwrap();
        let r = dir.store.read().unwrap();
        let (boss, sam) = (
            r.user_by_login("boss").unwrap().unwrap(),
            r.user_by_login("sam").unwrap().unwrap(),
        );
        let convs = r.conversations().unwrap();
        let id_of = |subject: &str| convs.iter().find(|c| c.subject == subject).unwrap().id.0;
        let ids = (id_of("Printer jammed"), id_of("Quote for 20 chairs"));
        drop(r);
        let tokens = dir
            .store
            .write(|tx| {
                let a = postroom::users::create_api_token(tx, boss.id, "admin script", 1).unwrap();
                let b = postroom::users::create_api_token(tx, sam.id, "sam script", 1).unwrap();
                Ok::<_, postroom::store::StoreError>((a, b))
            })
            .unwrap();
        (tokens.0, tokens.1, ids)
    };
    let mut serve = Serve::start_with(d, &["--no-https", "--no-mdns"], &[]);
    let ready = serve.wait_for("ready", Duration::from_secs(60));
    let port = web_port(&ready);
    Office {
        _data: t,
        serve,
        port,
        admin_token,
        agent_token,
        convs,
    }
}

#[test]
fn the_api_answers_every_endpoint_within_the_users_mailboxes() {
    let smtp = Smtpd::start();
    let o = office(Some(&smtp));
    let (support, sales) = o.convs;
    let (port, admin, agent) = (
        o.port,
        Some(o.admin_token.as_str()),
        Some(o.agent_token.as_str()),
    );

    // Who am I.
    let (s, me) = api(port, agent, "GET", "/api/v1/me", None);
    assert_eq!((s, me["login"].as_str()), (200, Some("sam")));
    // Without a token, with a wrong one, or with only a session cookie: 401 as JSON.
    for token in [None, Some("pr_0000"), Some("not-a-token")] {
        let (s, v) = api(port, token, "GET", "/api/v1/conversations", None);
        assert_eq!(s, 401, "{v}");
        assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    }
    let sess = login(port, "sam", PW);
    let (s, _, _) = sess.get("/api/v1/conversations");
    assert_eq!(s, 401, "the API never takes the session cookie");

    // The agent lists only Sales; the admin both; filters and search work.
    let (s, v) = api(port, agent, "GET", "/api/v1/conversations", None);
    assert_eq!(s, 200);
    let ids: Vec<u64> = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![sales]);
    let (_, v) = api(port, admin, "GET", "/api/v1/conversations?q=printer", None);
    assert_eq!(v["total"], 1);
    assert_eq!(v["conversations"][0]["id"], support);
    let (_, v) = api(
        port,
        admin,
        "GET",
        "/api/v1/conversations?status=closed",
        None,
    );
    assert_eq!(v["total"], 0);
    let (s, v) = api(
        port,
        admin,
        "GET",
        "/api/v1/conversations?status=nonsense",
        None,
    );
    assert_eq!(s, 400, "{v}");

    // Get one, with its messages and attachments.
    let (s, v) = api(
        port,
        agent,
        "GET",
        &format!("/api/v1/conversations/{sales}"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["thread"][0]["from"]["email"], "ben@customer.example");
    assert_eq!(v["thread"][0]["attachments"][0]["name"], "invoice.pdf");
    assert!(
        v["thread"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Hello about Quote")
    );
    // Another mailbox's conversation does not exist for the agent, for every endpoint.
    let (s, _) = api(
        port,
        agent,
        "GET",
        &format!("/api/v1/conversations/{support}"),
        None,
    );
    assert_eq!(s, 404);
    for action in ["reply", "note", "assign", "status"] {
        let (s, v) = api(
            port,
            agent,
            "POST",
            &format!("/api/v1/conversations/{support}/{action}"),
            Some(&serde_json::json!({"body": "x", "status": "closed", "assignee": "me"})),
        );
        assert_eq!(s, 404, "{action}: {v}");
    }

    // Note, assign, status.
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/note"),
        Some(&serde_json::json!({"body": "Called Ben back."})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/assign"),
        Some(&serde_json::json!({"assignee": "me"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"], me["id"]);
    // The admin cannot give a Support conversation to Sam: Sam may not see Support.
    let (s, v) = api(
        port,
        admin,
        "POST",
        &format!("/api/v1/conversations/{support}/assign"),
        Some(&serde_json::json!({"assignee": me["id"]})),
    );
    assert_eq!(s, 422, "{v}");
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/status"),
        Some(&serde_json::json!({"status": "pending"})),
    );
    assert_eq!((s, v["status"].as_str()), (200, Some("pending")), "{v}");
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/status"),
        Some(&serde_json::json!({"status": "merged"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/reply"),
        Some(&serde_json::json!({})),
    );
    assert_eq!(s, 400, "{v}");

    // A reply goes out through the relay to the customer.
    let (s, v) = api(
        port,
        agent,
        "POST",
        &format!("/api/v1/conversations/{sales}/reply"),
        Some(&serde_json::json!({"body": "Here is your quote."})),
    );
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["recipients"][0], "ben@customer.example");
    let got = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(got[0].rcpt_tos, vec!["ben@customer.example".to_owned()]);
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(text.contains("Here is your quote."), "{text}");
    assert!(
        text.contains("From: sales@example.org") || text.contains("<sales@example.org>"),
        "{text}"
    );
    let (_, v) = api(
        port,
        agent,
        "GET",
        &format!("/api/v1/conversations/{sales}"),
        None,
    );
    let dirs: Vec<&str> = v["thread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, vec!["in", "note", "out"], "{v}");
    o.serve.stop();
}

#[test]
fn an_agent_gets_404_for_every_url_of_a_mailbox_they_may_not_see() {
    let o = office(None);
    let (support, sales) = o.convs;
    let sam = login(o.port, "sam", PW);
    // Sales is visible, with its attachment.
    let (s, _, page) = sam.get(&format!("/c/{sales}"));
    assert_eq!(s, 200);
    let part = page
        .split("href=\"")
        .find(|p| p.contains("/part/"))
        .and_then(|p| p.split('"').next())
        .expect("an attachment link")
        .to_owned();
    let (s, head, body) = sam.get(&part);
    assert_eq!(s, 200);
    assert!(
        header(&head, "content-disposition")[0].starts_with("attachment"),
        "{head}"
    );
    assert_eq!(header(&head, "content-type")[0], "application/octet-stream");
    assert!(body.contains("%PDF-1.4"));
    // The same URLs for Support: 404, like a conversation that does not exist.
    let other_part = part.replace(&format!("/c/{sales}/"), &format!("/c/{support}/"));
    let (boss_msg, _) = {
        let boss = login(o.port, "boss", PW);
        let (_, _, page) = boss.get(&format!("/c/{support}"));
        let at = page.find("id=\"m").unwrap() + 5;
        (page[at..].split('"').next().unwrap().to_owned(), boss)
    };
    for url in [
        format!("/c/{support}"),
        format!("/c/{support}/m/{boss_msg}/body"),
        format!("/c/{support}/m/{boss_msg}/part/1"),
        format!("/c/{support}/m/{boss_msg}/cid/1"),
        other_part,
        "/c/999999".to_owned(),
    ] {
        let (s, _, _) = sam.get(&url);
        assert_eq!(s, 404, "GET {url}");
    }
    for action in [
        "reply", "note", "assign", "status", "follow", "move", "merge", "unread", "draft",
    ] {
        let (s, _, _) = sam.post(
            &format!("/c/{support}/{action}"),
            &[("body", "x"), ("value", "closed")],
        );
        assert_eq!(s, 404, "POST {action}");
    }
    // The inbox of Support is not there either, and bulk actions skip its conversations.
    let (s, _, _) = sam.get("/inbox?mailbox=1");
    assert_eq!(s, 404);
    let (s, _, _) = sam.post(
        "/inbox/bulk",
        &[("ids", &support.to_string()), ("action", "status:closed")],
    );
    assert_eq!(s, 303);
    let (_, v) = api(
        o.port,
        Some(&o.admin_token),
        "GET",
        &format!("/api/v1/conversations/{support}"),
        None,
    );
    assert_eq!(
        v["status"], "active",
        "the bulk action did not touch Support"
    );
    // On a conversation the agent may see, bulk actions work: assign to me, then spam.
    let (s, _, _) = sam.post(
        "/inbox/bulk",
        &[
            ("ids", &sales.to_string()),
            ("action", "assign"),
            ("assignee", "me"),
        ],
    );
    assert_eq!(s, 303);
    let (s, _, _) = sam.post(
        "/inbox/bulk",
        &[("ids", &sales.to_string()), ("action", "spam")],
    );
    assert_eq!(s, 303);
    let (_, v) = api(
        o.port,
        Some(&o.agent_token),
        "GET",
        &format!("/api/v1/conversations/{sales}"),
        None,
    );
    assert_eq!(v["status"], "spam", "{v}");
    assert!(v["assignee"].is_u64(), "{v}");
    let (_, _, page) = sam.get("/inbox?folder=spam");
    assert!(
        page.contains(&format!("data-id=\"{sales}\"")),
        "listed under Spam"
    );
    o.serve.stop();
}

/// An agent sets a conversation's priority, tags and custom fields on its page; the API
/// and the page show them; a bad line is refused with the reason and changes nothing;
/// a conversation the agent may not see cannot be changed.
#[test]
fn an_agent_edits_priority_tags_and_fields_on_the_conversation_page() {
    let o = office(None);
    let (support, sales) = o.convs;
    let sam = login(o.port, "sam", PW);
    let get = |id: u64| {
        api(
            o.port,
            Some(&o.admin_token),
            "GET",
            &format!("/api/v1/conversations/{id}"),
            None,
        )
        .1
    };
    let (s, _, _) = sam.post(
        &format!("/c/{sales}/details"),
        &[
            ("priority", "urgent"),
            ("tags", "billing, vip ,billing,, refund"),
            (
                "fields",
                "Contract = A-17\r\nCustomer no.=4711\r\n\r\nEmpty=\r\n",
            ),
        ],
    );
    assert_eq!(s, 303);
    let v = get(sales);
    assert_eq!(v["priority"], "urgent", "{v}");
    assert_eq!(v["tags"], serde_json::json!(["billing", "vip", "refund"]));
    assert_eq!(
        v["fields"],
        serde_json::json!({"Contract": "A-17", "Customer no.": "4711"}),
        "trimmed, and an empty value sets nothing"
    );
    let (_, _, page) = sam.get(&format!("/c/{sales}"));
    assert!(
        page.contains(r#"<option value="urgent" selected>"#),
        "the form shows it"
    );
    assert!(page.contains(r#"value="billing, vip, refund""#));
    assert!(page.contains("<dt>Contract</dt><dd>A-17</dd>"));
    // A field line without "=" is refused with the reason; nothing changes.
    let (s, _, page) = sam.post(
        &format!("/c/{sales}/details"),
        &[
            ("priority", "low"),
            ("tags", ""),
            ("fields", "no equals sign here"),
        ],
    );
    assert_eq!(s, 200);
    assert!(
        page.contains("Write each custom field as name=value on its own line")
            && page.contains("no equals sign here"),
        "{page}"
    );
    assert_eq!(
        get(sales)["priority"],
        "urgent",
        "unchanged after a refusal"
    );
    // Clearing: normal priority, no tags, no fields.
    let (s, _, _) = sam.post(
        &format!("/c/{sales}/details"),
        &[("priority", "normal"), ("tags", " "), ("fields", "")],
    );
    assert_eq!(s, 303);
    let v = get(sales);
    assert_eq!(
        (v["priority"].as_str(), v["tags"].as_array().map(Vec::len)),
        (Some("normal"), Some(0))
    );
    assert_eq!(v["fields"], serde_json::json!({}));
    // Sam sees Sales only: Support's conversation is not his to change.
    let (s, _, _) = sam.post(
        &format!("/c/{support}/details"),
        &[("priority", "urgent"), ("tags", "x"), ("fields", "")],
    );
    assert_eq!(s, 404);
    assert_eq!(get(support)["priority"], "normal");
    // The API: only what the body names changes; bad input is a 400 that changes nothing.
    let post = |id: u64, body: serde_json::Value| {
        api(
            o.port,
            Some(&o.agent_token),
            "POST",
            &format!("/api/v1/conversations/{id}/details"),
            Some(&body),
        )
    };
    let (s, v) = post(
        sales,
        serde_json::json!({"tags": ["a", " b ", "a"], "fields": {"K": "v", "Gone": ""}}),
    );
    assert_eq!(s, 200, "{v}");
    let v = get(sales);
    assert_eq!(v["priority"], "normal", "not named: unchanged");
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(v["fields"], serde_json::json!({"K": "v"}));
    let (s, v) = post(sales, serde_json::json!({"priority": "soon"}));
    assert_eq!(s, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("low, normal, high, urgent"),
        "{v}"
    );
    let (s, _) = post(
        sales,
        serde_json::json!({"priority": "high", "tags": "not a list"}),
    );
    assert_eq!(s, 400);
    assert_eq!(
        get(sales)["priority"],
        "normal",
        "a refused body changes nothing"
    );
    let (s, _) = post(support, serde_json::json!({"priority": "high"}));
    assert_eq!(s, 404, "the agent's token does not reach Support");
    o.serve.stop();
}

#[test]
fn every_state_changing_route_needs_the_form_token_and_our_origin() {
    let o = office(None);
    let (_, sales) = o.convs;
    let boss = login(o.port, "boss", PW);
    let routes = [
        "/inbox/bulk".to_owned(),
        format!("/c/{sales}/reply"),
        format!("/c/{sales}/note"),
        format!("/c/{sales}/draft"),
        format!("/c/{sales}/assign"),
        format!("/c/{sales}/status"),
        format!("/c/{sales}/follow"),
        format!("/c/{sales}/move"),
        format!("/c/{sales}/merge"),
        format!("/c/{sales}/unread"),
        format!("/c/{sales}/details"),
        "/profile/save".to_owned(),
        "/profile/password".to_owned(),
        "/profile/token".to_owned(),
        "/profile/revoke".to_owned(),
        "/logout".to_owned(),
    ];
    let fields = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            ("ids", &sales.to_string()),
            ("action", "status:closed"),
            ("value", "closed"),
            ("body", "forged"),
            ("name", "forged"),
        ])
    };
    let evil = "http://evil.example";
    for r in &routes {
        // No token.
        let (s, _, body) = boss.post_raw(r, &fields(""), Some(&boss.origin()));
        assert_eq!(s, 403, "{r} without a token: {body}");
        // A wrong token.
        let (s, _, _) = boss.post_raw(r, &fields(&"0".repeat(64)), Some(&boss.origin()));
        assert_eq!(s, 403, "{r} with a wrong token");
        // The right token from another site, and with no Origin nor Referer at all.
        let (s, _, _) = boss.post_raw(r, &fields(&boss.csrf), Some(evil));
        assert_eq!(s, 403, "{r} from another origin");
        let (s, _, _) = boss.post_raw(r, &fields(&boss.csrf), None);
        assert_eq!(s, 403, "{r} without Origin");
    }
    // Nothing changed, and the session still works.
    let (_, v) = api(
        o.port,
        Some(&o.admin_token),
        "GET",
        &format!("/api/v1/conversations/{sales}"),
        None,
    );
    assert_eq!(v["status"], "active");
    assert_eq!(
        v["thread"].as_array().unwrap().len(),
        1,
        "no forged note: {v}"
    );
    let (s, _, _) = boss.get("/inbox");
    assert_eq!(s, 200, "not logged out by a forged request");
    // The login form has its own token: a login from another site is refused.
    let (_, head, page) = request(o.port, "GET", "/login", &[], b"");
    let pre = cookie_value(&head, "postroom_pre").unwrap();
    let cookie = format!("postroom_pre={pre}");
    let body = form(&[
        ("csrf", &csrf_of(&page)),
        ("login", "boss"),
        ("password", PW),
    ]);
    let (s, _, _) = request(
        o.port,
        "POST",
        "/login",
        &[
            ("Cookie", &cookie),
            ("Origin", evil),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    );
    assert_eq!(s, 403);
    // And the real thing passes: the same request from our origin with the token.
    let (s, _, _) = boss.post(&format!("/c/{sales}/status"), &[("value", "closed")]);
    assert_eq!(s, 303);
    let (_, v) = api(
        o.port,
        Some(&o.admin_token),
        "GET",
        &format!("/api/v1/conversations/{sales}"),
        None,
    );
    assert_eq!(v["status"], "closed");
    o.serve.stop();
}

#[test]
fn login_makes_a_new_session_and_logout_and_password_change_end_them() {
    let o = office(None);
    let port = o.port;
    // A session id planted before login (fixation) is not the one the login gives.
    let planted = "ab".repeat(32);
    let (s, head, _) = login_with(port, "sam", PW, Some(&planted));
    assert_eq!(s, 303);
    let cookie = cookie_value(&head, "postroom_session").unwrap();
    assert_ne!(cookie, planted);
    let set = header(&head, "set-cookie").join("\n");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let planted_session = Session {
        port,
        cookie: planted,
        csrf: String::new(),
    };
    let (s, head, _) = planted_session.get("/inbox");
    assert_eq!(s, 303, "the planted id is no session");
    assert!(head.contains("Location: /login"), "{head}");
    // Logout ends the session on the server: the old cookie is dead.
    let sam = login(port, "sam", PW);
    let (s, _, _) = sam.post("/logout", &[]);
    assert_eq!(s, 303);
    let (s, _, _) = sam.get("/inbox");
    assert_eq!(s, 303, "logged out for good");
    // A password change ends the other sessions; the browser that changed it stays in.
    let a = login(port, "sam", PW);
    let b = login(port, "sam", PW);
    let new_pw = "another long password";
    let (s, head, _) = a.post(
        "/profile/password",
        &[("current", PW), ("new", new_pw), ("new2", new_pw)],
    );
    assert_eq!(s, 303, "{head}");
    let (s, _, _) = b.get("/inbox");
    assert_eq!(s, 303, "the other browser is logged out");
    let (s, _, _) = a.get("/inbox");
    assert_eq!(s, 303, "the old cookie of the changing browser too");
    let a2 = Session {
        port,
        cookie: cookie_value(&head, "postroom_session").expect("a new session"),
        csrf: String::new(),
    };
    let (s, _, _) = a2.get("/inbox");
    assert_eq!(s, 200, "the changing browser got a fresh session");
    let (s, _, _) = login_with(port, "sam", new_pw, None);
    assert_eq!(s, 303);
    o.serve.stop();
}

#[test]
fn failed_logins_wait_and_unknown_users_get_the_same_answers() {
    let o = office(None);
    let port = o.port;
    let answer = |user: &str, pw: &str| {
        let (s, _, body) = login_with(port, user, pw, None);
        let err = body
            .split("id=\"error\">")
            .nth(1)
            .map(|e| e.split('<').next().unwrap().to_owned());
        (s, err)
    };
    let (s1, known) = answer("sam", "wrong password!");
    let (s2, unknown) = answer("nobody", "wrong password!");
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(known, unknown, "the same words for an unknown user");
    assert_eq!(known.as_deref(), Some("Wrong login or password."));
    for _ in 0..4 {
        answer("sam", "wrong password!");
    }
    // Now even the right password waits.
    let (s, err) = answer("sam", PW);
    assert_eq!(s, 200);
    assert!(err.as_deref().unwrap_or("").contains("Too many"), "{err:?}");
    // An unknown name behaves the same way.
    for _ in 0..4 {
        answer("nobody", "wrong password!");
    }
    let (_, err2) = answer("nobody", PW);
    assert!(
        err2.as_deref().unwrap_or("").contains("Too many"),
        "{err2:?}"
    );
    o.serve.stop();
}

#[test]
fn the_setup_code_makes_the_first_admin_once() {
    let t = tmp();
    let mut serve = Serve::start_with(t.path(), &["--no-https", "--no-mdns"], &[]);
    let line = serve.wait_for("setup code", Duration::from_secs(60));
    let ready = serve
        .seen
        .iter()
        .find(|l| l.contains("ready"))
        .unwrap()
        .clone();
    let port = web_port(&ready);
    let code = line
        .split("setup code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let setup = |code: &str| {
        let (_, head, page) = request(port, "GET", "/setup", &[], b"");
        let pre = cookie_value(&head, "postroom_pre").unwrap();
        let cookie = format!("postroom_pre={pre}");
        let origin = format!("http://127.0.0.1:{port}");
        request(
            port,
            "POST",
            "/setup",
            &[
                ("Cookie", &cookie),
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &form(&[
                ("csrf", &csrf_of(&page)),
                ("code", code),
                ("login", "first"),
                ("password", PW),
                ("password2", PW),
            ]),
        )
    };
    let (s, _, body) = setup("WRNG-CODE-0000");
    assert_eq!(s, 200);
    assert!(body.contains("err-code"), "a wrong code is refused");
    let (s, head, _) = setup(&code);
    assert_eq!(s, 303, "{head}");
    assert!(cookie_value(&head, "postroom_session").is_some());
    // Used: the setup page now leads to the login, and the code does not work again.
    let (s, head, _) = request(port, "GET", "/setup", &[], b"");
    assert_eq!(s, 303);
    assert!(head.contains("Location: /login"));
    let pre = "cd".repeat(32);
    let cookie = format!("postroom_pre={pre}");
    let origin = format!("http://127.0.0.1:{port}");
    let (s, head, _) = request(
        port,
        "POST",
        "/setup",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[
            ("csrf", &pre),
            ("code", &code),
            ("login", "second"),
            ("password", PW),
            ("password2", PW),
        ]),
    );
    assert_eq!(s, 303);
    assert!(head.contains("Location: /login"), "{head}");
    assert!(cookie_value(&head, "postroom_session").is_none(), "{head}");
    serve.stop();
    let list = run_ok(t.path(), &["user", "list"]);
    assert!(list.contains("first (first, admin)"), "{list}");
}

/// Every message the templates and the web code show has a French translation.
#[test]
fn the_french_catalog_is_complete() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every `assets/i18n/fr*.json` (one file per area of the UI), as the binary merges them.
    let mut fr: std::collections::HashMap<String, String> = Default::default();
    for e in std::fs::read_dir(root.join("assets/i18n")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("fr") && name.ends_with(".json") {
            let part: std::collections::HashMap<String, String> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{name} is a JSON object: {e}"));
            for (k, v) in part {
                if let Some(before) = fr.get(&k) {
                    assert_eq!(
                        before, &v,
                        "{name} translates {k:?} differently from another catalog file"
                    );
                }
                fr.insert(k, v);
            }
        }
    }
    assert_eq!(
        postroom::web::i18n::FR.len(),
        std::fs::read_dir(root.join("assets/i18n"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("fr"))
            .count(),
        "every assets/i18n/fr*.json is compiled in (src/web/i18n.rs FR)"
    );
    let mut used = std::collections::BTreeSet::new();
    let mut grab = |text: &str, open: &str| {
        for (at, _) in text.match_indices(open) {
            // `t(` only as a name of its own (not the end of `f.input(`).
            if text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            {
                continue;
            }
            let part = &text[at + open.len()..];
            let Some(q) = part.chars().next() else {
                continue;
            };
            if q != '"' && q != '\'' {
                continue;
            }
            let rest = &part[1..];
            if let Some(end) = rest.find(q) {
                used.insert(rest[..end].to_owned());
            }
        }
    };
    for e in std::fs::read_dir(root.join("assets/templates")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        grab(&text, "t(");
    }
    let mut sources = Vec::new();
    let mut dirs = vec![root.join("src/web")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                sources.push(p);
            }
        }
    }
    for path in sources {
        let text = std::fs::read_to_string(path).unwrap();
        // `i18n::tr(lang, "..."` possibly broken over lines by rustfmt.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        grab(
            &flat
                .replace("tr( lang, ", "tr(lang, ")
                .replace("tr(lang, ", "TR("),
            "TR(",
        );
    }
    // The field messages of `users` (shown on the setup and profile pages): every
    // `"...".into()` literal before its tests.
    let users = std::fs::read_to_string(root.join("src/users.rs")).unwrap();
    let users = users.split("#[cfg(test)]").next().unwrap();
    for piece in users
        .split("\".into()")
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .skip(1)
    {
        if let Some(start) = piece.rfind('"') {
            used.insert(piece[start + 1..].to_owned());
        }
    }
    for (_, en) in postroom::web::pages::LABELS
        .iter()
        .chain(postroom::web::admin::SECTIONS)
        .chain(postroom::web::admin::log::LEVEL_LABELS)
    {
        used.insert((*en).to_owned());
    }
    for (_, label, help) in postroom::web::admin::settings::FIELDS {
        used.insert((*label).to_owned());
        used.insert((*help).to_owned());
    }
    for why in postroom::web::admin::settings::REASONS {
        used.insert((*why).to_owned());
    }
    assert!(
        used.len() > 80,
        "the scan found the messages: {}",
        used.len()
    );
    let missing: Vec<&String> = used.iter().filter(|m| !fr.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "not in any assets/i18n/fr*.json: {missing:#?}"
    );
    // And a French page really is French.
    assert_eq!(
        postroom::web::i18n::tr("fr", "Inbox", &[]),
        "Boîte de réception"
    );
}

#[test]
fn the_setup_page_shows_the_https_fingerprint() {
    let t = tmp();
    let mut serve = Serve::start_with(t.path(), &["--no-mdns"], &[]);
    let ready = serve.wait_for("ready", Duration::from_secs(60));
    let fp = crate::support::https_fingerprint(&ready);
    let (s, _, page) = request(web_port(&ready), "GET", "/setup", &[], b"");
    assert_eq!(s, 200);
    assert!(
        page.contains(&fp),
        "the fingerprint {fp} is on the setup page"
    );
    serve.stop();
}

#[test]
fn reply_all_offers_everyone_else_but_never_our_own_addresses() {
    let o = office(None);
    let d = o._data.path();
    let m = "From: Ben <ben@customer.example>\r\nTo: sales@example.org, Carla <carla@customer.example>\r\nCc: support@example.org, dan@customer.example\r\nSubject: Chairs for three\r\nMessage-ID: <c3@customer.example>\r\n\r\nAll of us want chairs.\r\n";
    let f = write_file(d, "all.eml", m.as_bytes());
    // The service runs: the import goes through it.
    run_ok(d, &["import", f.to_str().unwrap(), "--mailbox", "Sales"]);
    let (_, v) = api(
        o.port,
        Some(&o.admin_token),
        "GET",
        "/api/v1/conversations?q=three",
        None,
    );
    let id = v["conversations"][0]["id"].as_u64().unwrap();
    let boss = login(o.port, "boss", PW);
    let (_, _, page) = boss.get(&format!("/c/{id}"));
    let at = page.find("data-cc=\"").expect("a reply-all button") + 9;
    let cc = page[at..].split('"').next().unwrap();
    assert_eq!(cc, "carla@customer.example, dan@customer.example");
    o.serve.stop();
}

#[test]
fn a_reply_with_an_attachment_and_a_forward_leave_through_the_relay() {
    let smtp = Smtpd::start();
    let o = office(Some(&smtp));
    let (_, sales) = o.convs;
    let sam = login(o.port, "sam", PW);
    let (_, _, page) = sam.get(&format!("/c/{sales}"));
    let at = page.find("name=\"last_msg\" value=\"").unwrap() + 23;
    let last = page[at..].split('"').next().unwrap().to_owned();
    let multipart = |fields: &[(&str, &str)], file: Option<(&str, &[u8])>| {
        let mut b = Vec::new();
        for (k, v) in fields {
            b.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        if let Some((name, bytes)) = file {
            b.extend_from_slice(format!("--XyZ\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes());
            b.extend_from_slice(bytes);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    };
    let post = |path: &str, body: &[u8]| {
        let c = format!("postroom_session={}", sam.cookie);
        request(
            o.port,
            "POST",
            path,
            &[
                ("Cookie", &c),
                ("Origin", &sam.origin()),
                ("Content-Type", "multipart/form-data; boundary=XyZ"),
            ],
            body,
        )
    };
    let body = multipart(
        &[
            ("csrf", &sam.csrf),
            ("last_msg", &last),
            ("from", "sales@example.org"),
            ("to", ""),
            ("cc", ""),
            ("body", "The quote is attached."),
        ],
        Some(("quote-2026.txt", b"20 chairs: 1,980 EUR")),
    );
    let (s, head, _) = post(&format!("/c/{sales}/reply"), &body);
    assert_eq!(s, 303, "{head}");
    let got = smtp.wait_for(1, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&got[0].data).into_owned();
    assert_eq!(got[0].rcpt_tos, vec!["ben@customer.example".to_owned()]);
    assert!(text.contains("The quote is attached."), "{text}");
    assert!(
        text.contains("quote-2026.txt"),
        "the attachment went along: {text}"
    );
    // Forward the customer's message to a partner: Fwd: subject, the original attached.
    let (_, _, page) = sam.get(&format!("/c/{sales}"));
    let at = page.find("name=\"last_msg\" value=\"").unwrap() + 23;
    let last = page[at..].split('"').next().unwrap().to_owned();
    let body = multipart(
        &[
            ("csrf", &sam.csrf),
            ("last_msg", &last),
            ("to", "partner@supplier.example"),
            ("body", "Can you deliver these?"),
        ],
        None,
    );
    let (s, head, _) = post(&format!("/c/{sales}/forward"), &body);
    assert_eq!(s, 303, "{head}");
    let got = smtp.wait_for(2, Duration::from_secs(30));
    let fwd = String::from_utf8_lossy(&got[1].data).into_owned();
    assert_eq!(got[1].rcpt_tos, vec!["partner@supplier.example".to_owned()]);
    assert!(fwd.contains("Subject: Fwd: Quote for 20 chairs"), "{fwd}");
    assert!(fwd.contains("message/rfc822"), "{fwd}");
    assert!(
        fwd.contains("Content-Transfer-Encoding: 7bit"),
        "message/rfc822 is never base64 (RFC 2046): {fwd}"
    );
    assert!(
        fwd.contains("Hello about Quote for 20 chairs"),
        "the original inside: {fwd}"
    );
    // A forward without an address is refused on the page, nothing sent.
    let body = multipart(
        &[
            ("csrf", &sam.csrf),
            ("last_msg", &last),
            ("to", ""),
            ("body", "x"),
        ],
        None,
    );
    let (s, _, page) = post(&format!("/c/{sales}/forward"), &body);
    assert_eq!(s, 200);
    assert!(
        page.contains("id=\"notice\""),
        "the page says what is missing"
    );
    o.serve.stop();
    assert_eq!(smtp.received().len(), 2);
}

#[test]
fn a_refused_field_is_explained_in_the_users_language() {
    let o = office(None);
    let sam = login(o.port, "sam", PW);
    let (s, _, _) = sam.post("/profile/save", &[("name", "Sam"), ("language", "fr")]);
    assert_eq!(s, 303);
    let (s, _, page) = sam.post(
        "/profile/save",
        &[
            ("name", "Sam"),
            ("language", "fr"),
            ("email", "not an address"),
        ],
    );
    assert_eq!(s, 200);
    assert!(
        page.contains("n&#x27;est pas une adresse e-mail valide")
            || page.contains("n'est pas une adresse e-mail valide"),
        "{page}"
    );
    assert!(page.contains("Profil"), "the page itself is French");
    o.serve.stop();
}

/// The administration is for admins: the link shows only for them, and an agent gets the
/// same 404 as for a page that does not exist, for pages and forms alike.
#[test]
fn the_administration_is_only_for_admins() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let (status, _, page) = boss.get("/admin");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"admin-menu\""), "{page}");
    let (_, _, inbox) = boss.get("/inbox");
    assert!(inbox.contains("id=\"admin-link\""));
    let sam = login(o.port, "sam", PW);
    let (_, _, inbox) = sam.get("/inbox");
    assert!(!inbox.contains("id=\"admin-link\""));
    for path in ["/admin", "/admin/accounts", "/admin/users", "/admin/log"] {
        let (status, _, body) = sam.get(path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _, _) = sam.post("/admin/users/new", &[("login", "eve")]);
    assert_eq!(status, 404);
}

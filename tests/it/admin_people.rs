//! The users page (`/admin/users`) and invitation links over HTTP against a real
//! `postroom serve`: the list, field errors next to their fields, invitations mailed to
//! the real test SMTP server (or shown to copy when no mailbox can send), single use,
//! expiry after 7 days, wrong tokens, disabling a user (their sessions end), and password
//! resets (the old password stops at once).

use crate::smtpd::Smtpd;
use crate::support::{Serve, request, web_port};
use crate::webui::{PW, Session, cookie_value, csrf_of, form, login, login_with, office};
use std::time::Duration;

/// The `/invite/TOKEN` link in `text` (a page or a mail), as a path, and its token.
fn invite_link(text: &str) -> (String, String) {
    let text = &text.replace("&#x2f;", "/");
    let at = text.find("/invite/").expect("an invitation link");
    let token: String = text[at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 64, "a 256-bit token: {}", &text[at..]);
    (format!("/invite/{token}"), token)
}

/// Opens a link as a browser without a session would, and sets `pw` (twice `pw2`).
fn set_password(port: u16, path: &str, pw: &str, pw2: &str) -> (u16, String, String) {
    let (status, head, page) = request(port, "GET", path, &[], b"");
    if status != 200 {
        return (status, head, page);
    }
    let pre = cookie_value(&head, "postroom_pre").expect("the form's cookie");
    let token = csrf_of(&page);
    let origin = format!("http://127.0.0.1:{port}");
    request(
        port,
        "POST",
        path,
        &[
            ("Cookie", &format!("postroom_pre={pre}")),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[("csrf", &token), ("password", pw), ("password2", pw2)]),
    )
}

fn invite(s: &Session, fields: &[(&str, &str)]) -> String {
    let (status, _, page) = s.post("/admin/users", fields);
    assert_eq!(status, 200, "{page}");
    page
}

#[test]
fn the_users_page_lists_users_and_shows_errors_next_to_fields() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let (status, _, page) = boss.get("/admin/users");
    assert_eq!(status, 200, "{page}");
    for want in [
        "id=\"user-boss\"",
        "id=\"user-sam\"",
        "Sam Sales",
        "id=\"filter-users\"",
        "<th data-sort>",
        "data-sort=\"num\"",
        "href=\"/admin/users\"",
    ] {
        assert!(page.contains(want), "{want} missing:\n{page}");
    }
    // The agent's row names the one mailbox they see.
    let row = &page[page.find("id=\"user-sam\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("Sales") && !row.contains("Support"), "{row}");

    // An agent does not get in.
    let sam = login(o.port, "sam", PW);
    assert_eq!(sam.get("/admin/users").0, 404);
    assert_eq!(sam.post("/admin/users", &[("login", "x")]).0, 404);

    // Every wrong field is named next to itself, and what was typed stays.
    let page = invite(
        &boss,
        &[
            ("login", "bad login!"),
            ("name", "Zoé"),
            ("email", "not-an-address"),
            ("role", "king"),
            ("mailboxes", "Nowhere"),
        ],
    );
    for field in ["login", "email", "role", "mailboxes"] {
        assert!(
            page.contains(&format!("id=\"err-{field}\"")),
            "no error next to {field}:\n{page}"
        );
    }
    assert!(page.contains("value=\"Zoé\""), "{page}");
    // A login that is taken, and a missing e-mail address.
    let page = invite(&boss, &[("login", "SAM"), ("email", "")]);
    assert!(page.contains("id=\"err-login\""), "{page}");
    assert!(page.contains("id=\"err-email\""), "{page}");
    // The French page says it in French.
    let (_, _, page) = request(
        o.port,
        "GET",
        "/admin/users",
        &[
            ("Cookie", &format!("postroom_session={}", boss.cookie)),
            ("Accept-Language", "fr"),
        ],
        b"",
    );
    assert!(page.contains("Inviter"), "{page}");
    // Nothing was created by the refused forms.
    let (_, _, page) = boss.get("/admin/users");
    assert_eq!(page.matches("id=\"user-").count(), 2, "{page}");
}

#[test]
fn an_invitation_is_mailed_with_a_link_that_works_once() {
    let smtp = Smtpd::start();
    let o = office(Some(&smtp));
    let boss = login(o.port, "boss", PW);
    let (_, _, page) = boss.get("/admin/users");
    // The mailboxes that can send are offered, the first chosen by default.
    assert!(page.contains("support@example.org"), "{page}");
    let page = invite(
        &boss,
        &[
            ("login", "zoe"),
            ("name", "Zoé Zed"),
            ("email", "zoe@home.example"),
            ("role", "agent"),
            ("mailboxes", "Sales"),
        ],
    );
    assert!(page.contains("zoe@home.example"), "{page}");
    assert!(
        !page.contains("/invite/"),
        "the link is mailed, not shown:\n{page}"
    );
    let row = &page[page.find("id=\"user-zoe\"").expect("zoe listed")..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains("invited"),
        "{row}"
    );

    // The mail really arrives, from the first mailbox that can send, with an absolute
    // link on the host the admin used.
    let got = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(got[0].rcpt_tos, vec!["zoe@home.example".to_string()]);
    let head = String::from_utf8_lossy(&got[0].data).into_owned();
    assert!(
        head.contains("From: \"Support\" <support@example.org>"),
        "{head}"
    );
    let data = postroom::pipeline::parse::body_text(&got[0].data).unwrap();
    let (path, token) = invite_link(&data);
    assert!(
        data.contains(&format!("http://127.0.0.1:{}/invite/{token}", o.port)),
        "{data}"
    );
    // Not logged in, zoe cannot log in yet (no password).
    assert_eq!(login_with(o.port, "zoe", PW, None).0, 200);

    // The link page names the login; wrong tokens are 404 like any unknown page.
    let (status, _, page) = request(o.port, "GET", &path, &[], b"");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"invite-login\">zoe<"), "{page}");
    let mut wrong = token.clone();
    wrong.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
    for bad in [
        format!("/invite/{wrong}"),
        "/invite/abc".into(),
        "/invite/".into(),
    ] {
        let (status, _, _) = request(o.port, "GET", &bad, &[], b"");
        assert_eq!(status, if bad == "/invite/" { 303 } else { 404 }, "{bad}");
    }
    // Two different passwords: the error is next to the field, the link still works.
    let (status, _, page) = set_password(o.port, &path, PW, "something else entirely");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"err-password2\""), "{page}");
    let (status, _, page) = set_password(o.port, &path, "short", "short");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"err-password\""), "{page}");
    // The right way: on to the login page, and zoe logs in.
    let (status, head, _) = set_password(
        o.port,
        &path,
        "zoe's own long password",
        "zoe's own long password",
    );
    assert_eq!(status, 303, "{head}");
    assert!(
        crate::webui::header(&head, "location")[0].starts_with("/login"),
        "{head}"
    );
    let zoe = login(o.port, "zoe", "zoe's own long password");
    let (_, _, inbox) = zoe.get("/inbox");
    assert!(inbox.contains("Quote for 20 chairs"), "zoe sees Sales");
    assert!(
        !inbox.contains("Printer jammed"),
        "zoe does not see Support"
    );
    // Single use.
    assert_eq!(request(o.port, "GET", &path, &[], b"").0, 404);
    let (status, _, _) = set_password(
        o.port,
        &path,
        "another long password",
        "another long password",
    );
    assert_eq!(status, 404);
    let (_, _, page) = boss.get("/admin/users");
    let row = &page[page.find("id=\"user-zoe\"").unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains("active"),
        "{row}"
    );
}

#[test]
fn without_a_mailbox_that_can_send_the_link_is_shown_and_it_expires_after_7_days() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let page = invite(
        &boss,
        &[
            ("login", "yan"),
            ("email", "yan@home.example"),
            ("role", "admin"),
        ],
    );
    assert!(page.contains("id=\"error\""), "{page}");
    assert!(page.contains("No mailbox can send mail yet"), "{page}");
    let (path, token) = invite_link(&page);
    assert!(
        page.replace("&#x2f;", "/")
            .contains(&format!("http://127.0.0.1:{}{path}", o.port)),
        "{page}"
    );
    assert_eq!(request(o.port, "GET", &path, &[], b"").0, 200);

    // Seven days pass: the stored link's expiry is moved into the past while serve is
    // stopped, then the link answers 404 like a wrong one.
    let crate::webui::Office { _data, serve, .. } = o;
    serve.stop();
    {
        let dir =
            postroom::app::DataDir::open(_data.path(), &postroom::model::SystemClock).unwrap();
        let key = postroom::users::invite_key(&token).unwrap();
        dir.store
            .write(|tx| {
                let mut i = tx.invite(&key)?.expect("the stored link");
                assert_eq!(i.expires - i.created, postroom::users::INVITE_SECS);
                i.expires = i.created + 1;
                i.created -= postroom::users::INVITE_SECS;
                i.expires -= postroom::users::INVITE_SECS;
                tx.put_invite(&key, &i)
            })
            .unwrap();
    }
    let mut serve = Serve::start_with(_data.path(), &["--no-https", "--no-mdns"], &[]);
    let port = web_port(&serve.wait_for("ready", Duration::from_secs(60)));
    let (status, _, body) = request(port, "GET", &path, &[], b"");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (status, _, _) = set_password(port, &path, PW, PW);
    assert_eq!(status, 404);
    serve.stop();
}

#[test]
fn invitation_links_expire_after_exactly_seven_days() {
    let t = crate::support::tmp();
    let dir = postroom::app::DataDir::open(t.path(), &postroom::model::SystemClock).unwrap();
    let now = 1_800_000_000;
    let input = postroom::users::UserInput {
        login: Some("kim".into()),
        email: Some("kim@home.example".into()),
        ..Default::default()
    };
    let (_, token) = dir
        .store
        .write(|tx| postroom::users::invite(tx, &input, now))
        .unwrap();
    let week = postroom::users::INVITE_SECS;
    assert_eq!(week, 7 * 86_400);
    let r = dir.store.read().unwrap();
    assert!(
        postroom::users::open_invite(&r, &token, now + week - 1)
            .unwrap()
            .is_some()
    );
    assert!(
        postroom::users::open_invite(&r, &token, now + week)
            .unwrap()
            .is_none()
    );
    drop(r);
    let pw = postroom::secret::Secret::new(PW);
    let late = dir
        .store
        .write(|tx| postroom::users::accept_invite(tx, &token, &pw, now + week))
        .unwrap();
    assert!(late.is_none(), "an expired link sets no password");
    let ok = dir
        .store
        .write(|tx| postroom::users::accept_invite(tx, &token, &pw, now + week - 1))
        .unwrap();
    assert_eq!(ok.unwrap().login, "kim");
    let again = dir
        .store
        .write(|tx| postroom::users::accept_invite(tx, &token, &pw, now + week - 1))
        .unwrap();
    assert!(again.is_none(), "single use");
}

#[test]
fn disabling_a_user_ends_their_sessions_and_a_reset_stops_the_old_password() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let sam = login(o.port, "sam", PW);
    assert_eq!(sam.get("/inbox").0, 200);
    let (status, _, page) = boss.get("/admin/users/sam");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"Sam Sales\""), "{page}");
    assert_eq!(boss.get("/admin/users/nobody").0, 404);

    // The admin cannot lock themself out.
    let (_, _, page) = boss.post(
        "/admin/users/boss",
        &[("name", "Boss"), ("role", "agent"), ("disabled", "1")],
    );
    assert!(page.contains("id=\"err-disabled\""), "{page}");
    assert!(page.contains("id=\"err-role\""), "{page}");
    // A bad address is named next to its field; nothing is saved.
    let (_, _, page) = boss.post(
        "/admin/users/sam",
        &[
            ("name", "Sam"),
            ("email", "nope"),
            ("role", "agent"),
            ("mailboxes", "Sales"),
            ("disabled", "1"),
        ],
    );
    assert!(page.contains("id=\"err-email\""), "{page}");
    assert_eq!(sam.get("/inbox").0, 200, "the refused save changed nothing");

    // Disabled: the open session ends at once, and the password no longer logs in.
    let sam_fields = [
        ("name", "Sam Sales"),
        ("email", "sam@home.example"),
        ("role", "agent"),
        ("mailboxes", "Sales"),
        ("mailboxes", "Support"),
    ];
    let mut with_disabled = sam_fields.to_vec();
    with_disabled.push(("disabled", "1"));
    let (status, _, page) = boss.post("/admin/users/sam", &with_disabled);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"notice\""), "{page}");
    let (status, head, _) = sam.get("/inbox");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("/login"), "{head}");
    assert_eq!(login_with(o.port, "sam", PW, None).0, 200, "refused");
    let (_, _, page) = boss.get("/admin/users");
    let row = &page[page.find("id=\"user-sam\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("disabled") && row.contains("Support"), "{row}");
    // The conversations stay.
    let (_, _, inbox) = boss.get("/inbox");
    assert!(inbox.contains("Quote for 20 chairs"), "{inbox}");

    // Enabled again: the same password works, and sam sees both mailboxes now.
    boss.post("/admin/users/sam", &sam_fields);
    let sam = login(o.port, "sam", PW);
    let (_, _, inbox) = sam.get("/inbox");
    assert!(inbox.contains("Printer jammed"), "{inbox}");

    // Reset: the session ends and the old password stops at once; the link (shown, as
    // no mailbox can send here) sets a new one.
    let (status, _, page) = boss.post("/admin/users/sam/reset", &[]);
    assert_eq!(status, 200, "{page}");
    let (path, _) = invite_link(&page);
    assert_eq!(sam.get("/inbox").0, 303, "logged out");
    assert_eq!(
        login_with(o.port, "sam", PW, None).0,
        200,
        "old password refused"
    );
    let (status, _, page) = request(o.port, "GET", &path, &[], b"");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"invite-login\">sam<"), "{page}");
    // A second reset replaces the first link.
    let (_, _, page) = boss.post("/admin/users/sam/reset", &[]);
    let (path2, _) = invite_link(&page);
    assert_ne!(path, path2);
    assert_eq!(
        request(o.port, "GET", &path, &[], b"").0,
        404,
        "the older link ended"
    );
    let (status, _, _) = set_password(
        o.port,
        &path2,
        "sam's brand new password",
        "sam's brand new password",
    );
    assert_eq!(status, 303);
    login(o.port, "sam", "sam's brand new password");
}

// ---------------------------------------------------------------------------------------
// In a real browser

mod browser {
    use crate::browser::Browser;
    use crate::smtpd::Smtpd;
    use crate::support::{Serve, https_port, run_ok, tmp, write_file};
    use serde_json::json;
    use std::path::Path;
    use std::time::Duration;

    const ADMIN_PW: &str = "correct horse battery";
    const NEW_PW: &str = "my very own passphrase";

    fn on_page(b: &Browser, path: &str) -> bool {
        let url = b.url();
        let after_host = url.splitn(4, '/').nth(3).unwrap_or("");
        format!("/{after_host}").starts_with(path)
    }

    fn text_of(b: &Browser, css: &str) -> String {
        let v = b.exec(
            "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(css)],
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks `css`, which loads a new page, and waits until it has loaded.
    fn click_and_load(b: &Browser, css: &str) {
        b.exec("window.__oldPage = true;", vec![]);
        b.find(css).click();
        b.wait_until(&format!("a new page after clicking {css}"), |b| {
            let v = b.cmd(
                "POST",
                "~/execute/sync",
                Some(&json!({"script": "return document.readyState === 'complete' && !window.__oldPage;", "args": []})),
            );
            v.is_ok_and(|v| v == json!(true))
        });
    }

    fn screenshot(b: &Browser, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        b.screenshot(&dir.join(name));
    }

    fn login(b: &Browser, base: &str, login: &str, pw: &str) {
        b.goto(&format!("{base}/login"));
        b.wait_for("#login").send_keys(login);
        b.find("#password").send_keys(pw);
        b.find("#submit").click();
        b.wait_until("the inbox after logging in", |b| on_page(b, "/inbox"));
    }

    #[test]
    fn the_admin_invites_a_user_who_sets_a_password_from_the_mailed_link_and_logs_in() {
        let smtpd = Smtpd::start();
        let t = tmp();
        let data = t.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        run_ok(
            &data,
            &[
                "smtp",
                "add",
                "out",
                "--host",
                "127.0.0.1",
                "--port",
                &smtpd.open_port().to_string(),
                "--security",
                "none",
                "--auth",
                "none",
            ],
        );
        for (name, addr) in [
            ("Support", "support@example.org"),
            ("Sales", "sales@example.org"),
        ] {
            run_ok(
                &data,
                &["mailbox", "add", name, "--address", addr, "--smtp", "out"],
            );
        }
        let pw = write_file(t.path(), "pw", format!("{ADMIN_PW}\n").as_bytes());
        run_ok(
            &data,
            &[
                "user",
                "add",
                "boss",
                "--role",
                "admin",
                "--name",
                "Boss",
                "--password-file",
                pw.to_str().unwrap(),
            ],
        );
        let mut serve = Serve::start_with(
            &data,
            &[
                "--listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
                "--no-mdns",
            ],
            &[],
        );
        let ready = serve.wait_for("ready (data dir", Duration::from_secs(60));
        let base = format!("https://127.0.0.1:{}", https_port(&ready));

        let b = Browser::start();
        login(&b, &base, "boss", ADMIN_PW);
        b.goto(&format!("{base}/admin/users"));
        b.wait_for("#f-login").send_keys("nina");
        b.find("#f-name").send_keys("Nina Neu");
        b.find("#f-email").send_keys("nina@home.example");
        b.find("input[name=mailboxes][value=Sales]").click();
        // The second mailbox sends this one.
        b.exec(
            "document.querySelector('#f-from').value = Array.from(document.querySelectorAll('#f-from option')).find(o => o.textContent.includes('sales@')).value;",
            vec![],
        );
        screenshot(&b, "admin-users-invite-form.png");
        click_and_load(&b, "#invite");
        let notice = text_of(&b, "#notice");
        assert!(notice.contains("nina@home.example"), "{notice}");
        assert!(text_of(&b, "#user-nina").contains("invited"));
        screenshot(&b, "admin-users-invited.png");

        // The invitation really arrives at the SMTP server, from the chosen mailbox.
        let got = smtpd.wait_for(1, Duration::from_secs(90));
        assert_eq!(got[0].rcpt_tos, vec!["nina@home.example".to_string()]);
        let head = String::from_utf8_lossy(&got[0].data).into_owned();
        assert!(head.contains("sales@example.org>"), "{head}");
        let body = postroom::pipeline::parse::body_text(&got[0].data).unwrap();
        let at = body
            .find(&format!("{base}/invite/"))
            .unwrap_or_else(|| panic!("{body}"));
        let link: String = body[at..].split_whitespace().next().unwrap().to_owned();

        // Nina, in a browser without the admin's session, opens the link.
        b.delete_cookies();
        b.goto(&link);
        assert_eq!(text_of(&b, "#invite-login"), "nina");
        b.find("#f-password").send_keys(NEW_PW);
        b.find("#f-password2").send_keys(NEW_PW);
        screenshot(&b, "invite-set-password.png");
        click_and_load(&b, "#submit");
        assert!(on_page(&b, "/login"), "{}", b.url());
        login(&b, &base, "nina", NEW_PW);
        let page = b.source();
        assert!(
            page.contains("Sales") && page.contains("Nina Neu"),
            "{page}"
        );
        screenshot(&b, "invite-logged-in.png");
        // The link is spent.
        b.goto(&link);
        assert!(b.source().contains("already used"), "{}", b.source());
        drop(b);
        serve.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Notifications and answers by mail, with a real Dovecot (fetch) and SMTP server

mod notifications {
    use crate::dovecot::Dovecot;
    use crate::smtpd::{Received, Smtpd};
    use crate::support::{run_ok, tmp, write_file};
    use postroom::model::{Direction, NotifyPrefs};
    use std::path::Path;

    const DPASS: &str = "dovecot-pass";

    /// A mail without a Date header: it counts as just arrived.
    fn mail(from: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: support@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        )
        .into_bytes()
    }

    fn header(data: &[u8], name: &str) -> String {
        let text = String::from_utf8_lossy(data);
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    }

    fn body(r: &Received) -> String {
        postroom::pipeline::parse::body_text(&r.data).unwrap()
    }

    /// Fetches from Dovecot and sends what the outbox has; returns what the SMTP server
    /// got since `before` messages.
    fn fetch_and_send(p: &Path, s: &Smtpd, before: usize) -> Vec<Received> {
        run_ok(p, &["fetch", "in"]);
        run_ok(p, &["outbox", "--send"]);
        s.received().into_iter().skip(before).collect()
    }

    fn messages(p: &Path, conv: u64) -> Vec<postroom::model::MessageRecord> {
        let dir = postroom::app::DataDir::open(p, &postroom::model::SystemClock).unwrap();
        let r = dir.store.read().unwrap();
        r.conversation_messages(postroom::model::ConvId(conv))
            .unwrap()
    }

    #[test]
    fn agents_are_notified_and_answer_the_customer_by_mail_and_forged_answers_stay_customer_mail() {
        let d = Dovecot::start();
        d.add_user("desk", DPASS);
        let s = Smtpd::start();
        let data = tmp();
        let p = data.path();
        run_ok(
            p,
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
        for (name, addr) in [
            ("Support", "support@example.org"),
            ("Sales", "sales@example.org"),
        ] {
            run_ok(
                p,
                &["mailbox", "add", name, "--address", addr, "--smtp", "relay"],
            );
        }
        run_ok(
            p,
            &[
                "account",
                "add",
                "in",
                "--protocol",
                "imap",
                "--host",
                "127.0.0.1",
                "--port",
                &d.imap_port.to_string(),
                "--security",
                "none",
                "--user",
                "desk",
                "--password",
                DPASS,
                "--mailbox",
                "Support",
                "--after",
                "delete",
            ],
        );
        let pw = write_file(p, "pw", b"a long enough password\n");
        for (login, mailbox, email) in [
            ("anna", "Support", "anna@staff.example"),
            ("bob", "Sales", "bob@staff.example"),
            ("carl", "Support", "carl@staff.example"),
        ] {
            run_ok(
                p,
                &[
                    "user",
                    "add",
                    login,
                    "--mailbox",
                    mailbox,
                    "--email",
                    email,
                    "--password-file",
                    pw.to_str().unwrap(),
                ],
            );
        }
        // Anna and Bob want to hear of new conversations; Carl keeps the defaults (no).
        {
            let dir = postroom::app::DataDir::open(p, &postroom::model::SystemClock).unwrap();
            dir.store
                .write(|tx| {
                    for login in ["anna", "bob"] {
                        let u = tx.user_by_login(login)?.unwrap();
                        let prefs = NotifyPrefs {
                            new_conversation: true,
                            ..NotifyPrefs::default()
                        };
                        tx.put_notify_prefs(u.id, &prefs)?;
                    }
                    Ok::<_, postroom::store::StoreError>(())
                })
                .unwrap();
        }

        // 1. A customer writes: only Anna is told (Bob does not see Support, Carl did
        //    not ask), from the mailbox's address, with the text and a link.
        d.append(
            "desk",
            DPASS,
            "INBOX",
            &mail(
                "Zoe <zoe@customer.example>",
                "Printer on fire",
                "z1@customer.example",
                "",
                "The printer in room 4 is smoking.\r\n",
            ),
        );
        let got = fetch_and_send(p, &s, 0);
        assert_eq!(got.len(), 1, "{got:#?}");
        let n = &got[0];
        assert_eq!(n.rcpt_tos, vec!["anna@staff.example".to_string()]);
        assert!(header(&n.data, "From").contains("support@example.org"));
        let notif_id = header(&n.data, "Message-ID");
        assert!(notif_id.starts_with("<pr-notify."), "{notif_id}");
        let subject = header(&n.data, "Subject");
        let text = body(n);
        assert!(text.contains("The printer in room 4 is smoking."), "{text}");
        assert!(text.contains("zoe@customer.example"), "{text}");
        let conv: u64 = text
            .split("/c/")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        assert!(
            text.contains(&format!("https://postroom.local/c/{conv}")),
            "{text}"
        );
        assert!(subject.contains(&format!("[#{conv}]")), "{subject}");

        // 2. Anna answers from her own mail client: the customer gets a reply from the
        //    mailbox's address with only what Anna wrote; nothing is stored as customer
        //    mail.
        let quoted: String = text.lines().map(|l| format!("> {l}\r\n")).collect();
        d.append(
            "desk",
            DPASS,
            "INBOX",
            &mail(
                "Anna <anna@staff.example>",
                &format!("Re: {subject}"),
                "a1@staff.example",
                &format!("In-Reply-To: {notif_id}\r\nReferences: {notif_id}\r\n"),
                &format!("A technician comes at 2 pm.\r\n\r\nOn Mon, 23 Nov 2026, Support wrote:\r\n{quoted}"),
            ),
        );
        let got = fetch_and_send(p, &s, 1);
        assert_eq!(got.len(), 1, "{got:#?}");
        let reply = &got[0];
        assert_eq!(reply.rcpt_tos, vec!["zoe@customer.example".to_string()]);
        assert!(header(&reply.data, "From").contains("support@example.org"));
        assert_eq!(header(&reply.data, "In-Reply-To"), "<z1@customer.example>");
        let answer = body(reply);
        assert!(
            answer.starts_with("A technician comes at 2 pm."),
            "{answer}"
        );
        assert!(
            !answer.contains("smoking") && !answer.contains("wrote:"),
            "{answer}"
        );
        let msgs = messages(p, conv);
        let dirs: Vec<Direction> = msgs.iter().map(|m| m.direction).collect();
        assert_eq!(dirs, [Direction::In, Direction::Out], "{msgs:#?}");
        assert!(msgs.iter().all(|m| {
            m.from
                .as_ref()
                .is_none_or(|a| a.email != "anna@staff.example")
        }));

        // 3. Forged answers are customer mail: the right token from another address,
        //    and Anna's address without a valid token. Neither reaches the customer.
        let zeros = format!("<pr-notify.{}@example.org>", "0".repeat(64));
        for (from, id, irt) in [
            (
                "Mallory <mallory@evil.example>",
                "f1@evil.example",
                notif_id.as_str(),
            ),
            (
                "Anna <anna@staff.example>",
                "f2@staff.example",
                zeros.as_str(),
            ),
            ("Anna <anna@staff.example>", "f3@staff.example", ""),
        ] {
            let extra = if irt.is_empty() {
                String::new()
            } else {
                format!("In-Reply-To: {irt}\r\n")
            };
            d.append(
                "desk",
                DPASS,
                "INBOX",
                &mail(
                    from,
                    &format!("Re: {subject}"),
                    id,
                    &extra,
                    "Send the refund to my account.\r\n",
                ),
            );
        }
        let got = fetch_and_send(p, &s, 2);
        assert!(
            got.iter()
                .all(|r| r.rcpt_tos != vec!["zoe@customer.example".to_string()]),
            "a forged answer reached the customer: {got:#?}"
        );
        let msgs = messages(p, conv);
        let forged: Vec<&str> = msgs
            .iter()
            .filter(|m| m.direction == Direction::In)
            .filter_map(|m| m.message_id.as_deref())
            .collect();
        assert_eq!(
            forged,
            [
                "z1@customer.example",
                "f1@evil.example",
                "f2@staff.example",
                "f3@staff.example"
            ],
            "the forged answers joined the conversation as customer mail"
        );

        // 3b. A notification older than 30 days: Anna's answer is not sent to the
        //     customer; it is kept as an internal note and the log says why.
        let token = notif_id
            .trim_matches(['<', '>'])
            .strip_prefix("pr-notify.")
            .and_then(|t| t.split('@').next())
            .unwrap()
            .to_owned();
        {
            let dir = postroom::app::DataDir::open(p, &postroom::model::SystemClock).unwrap();
            dir.store
                .write(|tx| {
                    let key = postroom::users::token_key(&token);
                    let mut t = tx.notify_token(&key)?.expect("the notification's token");
                    t.created -= postroom::notify::ANSWER_TTL_SECS + 86_400;
                    tx.put_notify_token(&key, &t)
                })
                .unwrap();
        }
        let sent_before = s.received().len();
        d.append(
            "desk",
            DPASS,
            "INBOX",
            &mail(
                "Anna <anna@staff.example>",
                &format!("Re: {subject}"),
                "a2@staff.example",
                &format!("In-Reply-To: {notif_id}\r\nReferences: {notif_id}\r\n"),
                "Late answer from an old notification.\r\n",
            ),
        );
        let got = fetch_and_send(p, &s, sent_before);
        assert!(
            got.iter()
                .all(|r| r.rcpt_tos != vec!["zoe@customer.example".to_string()]),
            "an answer to a 31-day-old notification reached the customer: {got:#?}"
        );
        let msgs = messages(p, conv);
        let late = msgs
            .iter()
            .find(|m| m.message_id.as_deref() == Some("a2@staff.example"))
            .expect("the late answer is kept in the conversation");
        assert_eq!(late.direction, Direction::Note, "kept as an internal note");
        let log = run_ok(p, &["log", "--limit", "50"]);
        assert!(
            log.contains("NOT sent to the customer: the notification is 31 days old"),
            "{log}"
        );

        // 4. The customer writes again in a conversation assigned to Carl: Carl is told
        //    (the default setting), Anna (neither assignee nor follower) is not.
        {
            let dir = postroom::app::DataDir::open(p, &postroom::model::SystemClock).unwrap();
            dir.store
                .write(|tx| {
                    let carl = tx.user_by_login("carl")?.unwrap();
                    let mut c = tx.conversation(postroom::model::ConvId(conv))?.unwrap();
                    c.assignee = Some(carl.id);
                    tx.put_conversation(&c)
                })
                .unwrap();
        }
        let before = s.received().len();
        d.append(
            "desk",
            DPASS,
            "INBOX",
            &mail(
                "Zoe <zoe@customer.example>",
                &format!("Re: Printer on fire [#{conv}]"),
                "z2@customer.example",
                "In-Reply-To: <z1@customer.example>\r\n",
                "Thanks, 2 pm is fine.\r\n",
            ),
        );
        let got = fetch_and_send(p, &s, before);
        let to: Vec<&str> = got
            .iter()
            .flat_map(|r| r.rcpt_tos.iter().map(String::as_str))
            .collect();
        assert_eq!(to, ["carl@staff.example"], "{got:#?}");
        assert!(body(&got[0]).contains("Thanks, 2 pm is fine."));
    }
}

#[test]
fn assignments_and_mentions_notify_per_the_agents_settings() {
    let smtp = Smtpd::start();
    let o = office(Some(&smtp));
    let (_, sales) = o.convs;
    let boss = login(o.port, "boss", PW);
    let sam_id = crate::webui::api(o.port, Some(&o.agent_token), "GET", "/api/v1/me", None).1["id"]
        .as_u64()
        .unwrap()
        .to_string();
    let (status, _, page) = boss.post(
        "/admin/users/sam",
        &[
            ("name", "Sam Sales"),
            ("email", "sam@home.example"),
            ("role", "agent"),
            ("mailboxes", "Sales"),
        ],
    );
    assert_eq!(status, 200, "{page}");
    let sam = login(o.port, "sam", PW);
    // Assigning oneself tells nobody.
    sam.post(&format!("/c/{sales}/assign"), &[("value", "me")]);
    sam.post(&format!("/c/{sales}/assign"), &[("value", "")]);
    // The admin assigns the conversation to Sam: Sam is told, with a link.
    let (status, _, _) = boss.post(&format!("/c/{sales}/assign"), &[("value", &sam_id)]);
    assert_eq!(status, 303);
    let got = smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(got[0].rcpt_tos, vec!["sam@home.example".to_string()]);
    let text = postroom::pipeline::parse::body_text(&got[0].data).unwrap();
    assert!(
        text.contains("Boss assigned a conversation to you"),
        "{text}"
    );
    assert!(
        text.contains("Quote for 20 chairs") && text.contains(&format!("/c/{sales}")),
        "{text}"
    );
    // A note that mentions Sam tells Sam, with the note's text.
    boss.post(
        &format!("/c/{sales}/note"),
        &[("body", "@sam can you check the price?"), ("last_msg", "0")],
    );
    let got = smtp.wait_for(2, Duration::from_secs(60));
    assert_eq!(got[1].rcpt_tos, vec!["sam@home.example".to_string()]);
    let text = postroom::pipeline::parse::body_text(&got[1].data).unwrap();
    assert!(text.contains("Boss mentioned you in a note"), "{text}");
    assert!(text.contains("can you check the price?"), "{text}");

    // Sam turns mentions off on the profile page.
    let (_, _, page) = sam.get("/profile");
    assert!(
        page.contains("id=\"n-mentioned\" value=\"1\" checked"),
        "{page}"
    );
    let (status, _, _) = sam.post(
        "/profile/notify",
        &[("customer_reply", "1"), ("assigned", "1")],
    );
    assert_eq!(status, 303);
    let (_, _, page) = sam.get("/profile");
    assert!(
        !page.contains("id=\"n-mentioned\" value=\"1\" checked"),
        "{page}"
    );
    assert!(
        page.contains("id=\"n-assigned\" value=\"1\" checked"),
        "{page}"
    );
    boss.post(
        &format!("/c/{sales}/note"),
        &[("body", "@sam again"), ("last_msg", "999999")],
    );
    // Queued after the note: had the mention been queued, it would come first.
    boss.post(&format!("/c/{sales}/assign"), &[("value", "")]);
    boss.post(&format!("/c/{sales}/assign"), &[("value", &sam_id)]);
    let got = smtp.wait_for(3, Duration::from_secs(60));
    assert_eq!(got.len(), 3, "{got:#?}");
    let text = postroom::pipeline::parse::body_text(&got[2].data).unwrap();
    assert!(text.contains("assigned a conversation to you"), "{text}");
}

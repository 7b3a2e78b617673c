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

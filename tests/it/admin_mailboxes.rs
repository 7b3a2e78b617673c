//! The mailboxes, addresses, permissions and SMTP pages of the administration
//! (`/admin/mailboxes`, `/admin/smtp`), over HTTP against a real `postroom serve`:
//! validation next to each field, the per-mailbox permission check of every request,
//! users hidden from the assign lists, SMTP servers with a real test delivery. Then the
//! same in a real Chromium (adding a mailbox with an alias and an auto-reply preview,
//! an SMTP server with STARTTLS and AUTH whose test message really arrives, a user
//! restricted to one mailbox), with screenshots in `target/screenshots/`.

use crate::browser::Browser;
use crate::smtpd::Smtpd;
use crate::support::{Serve, https_port, run_ok, tmp, write_file};
use crate::webui::{PW, Session, login, office};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The id of the mailbox `name` from the admin list.
fn mailbox_id(admin: &Session, name: &str) -> u64 {
    let (s, _, page) = admin.get("/admin/mailboxes");
    assert_eq!(s, 200, "{page}");
    let needle = format!("\">{name}</a>");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("{name} is not listed: {page}"));
    let start = page[..at].rfind("/admin/mailboxes/").unwrap() + "/admin/mailboxes/".len();
    page[start..at].parse().unwrap()
}

/// The text of the element with `id` (up to its first `<`), if the page has it.
fn text_by_id(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\""))?;
    let rest = &page[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].to_owned())
}

fn location(head: &str) -> String {
    crate::webui::header(head, "location")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

#[test]
fn the_mailbox_pages_refuse_bad_values_next_to_each_field() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);

    // The list: both mailboxes, a filter box, sortable headings.
    let (s, _, page) = boss.get("/admin/mailboxes");
    assert_eq!(s, 200);
    for want in [
        "id=\"mailbox-list\"",
        "data-filter=\"mailbox-list\"",
        "<th data-sort>",
        "support@example.org",
        "sales@example.org",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }

    // A new mailbox with a taken name, a bad address and someone else's alias: each
    // error next to its field, nothing saved.
    let (s, _, page) = boss.post(
        "/admin/mailboxes/new",
        &[
            ("name", "support"),
            ("address", "not an address"),
            ("alias", "sales@example.org"),
            ("from_policy", "mailbox"),
            ("sent_account", ""),
        ],
    );
    assert_eq!(s, 400, "{page}");
    assert!(
        text_by_id(&page, "err-name").is_some_and(|t| t.contains("already exists")),
        "{page}"
    );
    assert!(
        text_by_id(&page, "err-address").is_some_and(|t| t.contains("not an e-mail address")),
        "{page}"
    );
    assert!(
        text_by_id(&page, "err-alias")
            .is_some_and(|t| t.contains("already belongs to the mailbox Sales")),
        "{page}"
    );
    // What was typed stays in the form.
    assert!(page.contains("value=\"not an address\""), "{page}");

    // A good one, with an alias.
    let (s, head, page) = boss.post(
        "/admin/mailboxes/new",
        &[
            ("name", "Billing"),
            ("address", "billing@example.org"),
            ("alias", "invoices@example.org"),
            ("display_name", "Billing team"),
            ("from_policy", "agent-via-mailbox"),
            ("auto_bcc", "archive@example.org"),
            ("sent_account", ""),
        ],
    );
    assert_eq!(s, 303, "{page}");
    let billing = mailbox_id(&boss, "Billing");
    assert_eq!(
        location(&head),
        format!("/admin/mailboxes/{billing}?saved=1")
    );
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{billing}"));
    for want in [
        "value=\"billing@example.org\"",
        "value=\"invoices@example.org\"",
        "value=\"Billing team\"",
        "value=\"archive@example.org\"",
        "<option value=\"agent-via-mailbox\" selected>",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }

    // The alias made temporarily invalid with a comment: kept, never deleted.
    let (s, _, page) = boss.post(
        &format!("/admin/mailboxes/{billing}/settings"),
        &[
            ("name", "Billing"),
            ("address", "billing@example.org"),
            ("display_name", "Billing team"),
            ("from_policy", "agent-via-mailbox"),
            ("auto_bcc", ""),
            ("smtp", ""),
            ("sent_account", ""),
            ("addr", "billing@example.org"),
            ("validity", "valid"),
            ("comment", ""),
            ("addr", "invoices@example.org"),
            ("validity", "temporarily-invalid"),
            ("comment", "moving to the new ERP"),
        ],
    );
    assert_eq!(s, 303, "{page}");
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{billing}"));
    assert!(
        page.contains("<option value=\"temporarily-invalid\" selected>"),
        "{page}"
    );
    assert!(page.contains("value=\"moving to the new ERP\""), "{page}");
    let (_, _, list) = boss.get("/admin/mailboxes");
    assert!(
        list.contains("invoices@example.org (temporarily invalid)"),
        "{list}"
    );

    // A signature template that does not compile is refused with the reason.
    let (s, _, page) = boss.post(
        &format!("/admin/mailboxes/{billing}/texts"),
        &[
            ("signature", "Regards, {{ agent"),
            ("auto_reply_subject", ""),
            ("auto_reply_body", ""),
            ("do", "save"),
        ],
    );
    assert_eq!(s, 400, "{page}");
    let err = text_by_id(&page, "err-signature").unwrap_or_default();
    assert!(err.starts_with("The template does not work:"), "{page}");
    assert!(
        page.contains("Regards, {{ agent"),
        "the typed text stays: {page}"
    );

    // The preview renders the typed templates with sample values and saves nothing.
    let (s, _, page) = boss.post(
        &format!("/admin/mailboxes/{billing}/texts"),
        &[
            ("signature", "{{ agent }} for {{ mailbox_name }}"),
            ("auto_reply", "1"),
            ("auto_reply_subject", "Got it: {{ subject }}"),
            (
                "auto_reply_body",
                "Hello {{ customer_name }}, your number is {{ tag }}.",
            ),
            ("do", "preview"),
        ],
    );
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        text_by_id(&page, "preview-subject").as_deref(),
        Some("Got it: Printer jammed")
    );
    assert_eq!(
        text_by_id(&page, "preview-body").as_deref(),
        Some("Hello Chris Customer, your number is PR-1234.")
    );
    assert_eq!(
        text_by_id(&page, "preview-signature").as_deref(),
        Some("Anna Agent for Billing team")
    );
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{billing}"));
    assert!(
        !page.contains("Got it: {{ subject }}"),
        "a preview saves nothing"
    );

    // In French, the messages next to the fields are French.
    let (s, _, _) = boss.post(
        "/profile/save",
        &[
            ("name", "Boss"),
            ("email", ""),
            ("language", "fr"),
            ("signature", ""),
        ],
    );
    assert_eq!(s, 303);
    let (s, _, page) = boss.post(
        "/admin/mailboxes/new",
        &[("name", ""), ("address", "x y"), ("sent_account", "")],
    );
    assert_eq!(s, 400, "{page}");
    assert_eq!(
        text_by_id(&page, "err-name").as_deref(),
        Some("Ce champ est obligatoire."),
        "{page}"
    );
}

#[test]
fn a_user_with_only_the_signature_permission_changes_the_signature_and_nothing_else() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let sam = login(o.port, "sam", PW);
    let (support, sales) = (mailbox_id(&boss, "Support"), mailbox_id(&boss, "Sales"));
    let sam_id = {
        let (_, _, page) = boss.get(&format!("/admin/mailboxes/{support}"));
        let at = page.find("id=\"see-sam\"").expect("sam in the permissions");
        let before = &page[..at];
        let n = before.rfind("name=\"see_").unwrap() + "name=\"see_".len();
        before[n..].split('"').next().unwrap().to_owned()
    };

    // Without a permission: no link, and every page and form of the section is 404,
    // like a mailbox that does not exist; the SMTP pages too.
    let (_, _, inbox) = sam.get("/inbox");
    assert!(!inbox.contains("id=\"admin-link\""), "{inbox}");
    for path in [
        "/admin/mailboxes".to_owned(),
        "/admin/mailboxes/new".to_owned(),
        format!("/admin/mailboxes/{support}"),
        format!("/admin/mailboxes/{sales}"),
        "/admin/smtp".to_owned(),
        "/admin/mailboxes/999".to_owned(),
    ] {
        let (s, _, _) = sam.get(&path);
        assert_eq!(s, 404, "GET {path}");
    }
    let (s, _, _) = sam.post(
        &format!("/admin/mailboxes/{support}/texts"),
        &[("signature", "hacked"), ("do", "save")],
    );
    assert_eq!(s, 404);

    // The admin gives sam "signature and auto-reply" on Support, and nothing else (sam
    // keeps seeing Sales only).
    let texts = format!("texts_{sam_id}");
    let (s, _, page) = boss.post(
        &format!("/admin/mailboxes/{support}/perms"),
        &[("users", sam_id.as_str()), (texts.as_str(), "1")],
    );
    assert_eq!(s, 303, "{page}");
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{support}"));
    assert!(
        page.contains(&format!(
            "name=\"{texts}\" id=\"texts-sam\" value=\"1\" checked"
        )),
        "{page}"
    );
    assert!(
        !page.contains(&format!(
            "name=\"see_{sam_id}\" id=\"see-sam\" value=\"1\" checked"
        )),
        "{page}"
    );

    // The header links to the section for sam now.
    let (_, _, inbox) = sam.get("/inbox");
    assert!(
        inbox.contains("<a href=\"/admin/mailboxes\" id=\"admin-link\">"),
        "{inbox}"
    );
    // Sam opens Support's page: only the signature and auto-reply form.
    let (s, _, page) = sam.get(&format!("/admin/mailboxes/{support}"));
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"texts\""), "{page}");
    assert!(!page.contains("id=\"settings-form\""), "{page}");
    assert!(!page.contains("id=\"perms\""), "{page}");
    // The menu offers only this section.
    assert!(!page.contains("href=\"/admin/smtp\""), "{page}");
    // The list shows Support only.
    let (s, _, list) = sam.get("/admin/mailboxes");
    assert_eq!(s, 200);
    assert!(
        list.contains(&format!("href=\"/admin/mailboxes/{support}\""))
            && !list.contains(&format!("href=\"/admin/mailboxes/{sales}\"")),
        "{list}"
    );

    // The signature changes.
    let (s, _, page) = sam.post(
        &format!("/admin/mailboxes/{support}/texts"),
        &[
            ("signature", "Sam for {{ mailbox_name }}"),
            ("auto_reply_subject", ""),
            ("auto_reply_body", ""),
            ("do", "save"),
        ],
    );
    assert_eq!(s, 303, "{page}");
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{support}"));
    assert!(page.contains("Sam for {{ mailbox_name }}"), "{page}");

    // Nothing else: settings and permissions answer 404 and change nothing.
    let (s, _, _) = sam.post(
        &format!("/admin/mailboxes/{support}/settings"),
        &[("name", "Taken over"), ("address", "support@example.org")],
    );
    assert_eq!(s, 404);
    let edit = format!("edit_{sam_id}");
    let see = format!("see_{sam_id}");
    let (s, _, _) = sam.post(
        &format!("/admin/mailboxes/{support}/perms"),
        &[
            ("users", sam_id.as_str()),
            (see.as_str(), "1"),
            (edit.as_str(), "1"),
            (texts.as_str(), "1"),
        ],
    );
    assert_eq!(s, 404);
    let (_, _, list) = boss.get("/admin/mailboxes");
    assert!(
        list.contains(">Support</a>") && !list.contains("Taken over"),
        "{list}"
    );
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{support}"));
    assert!(
        !page.contains(&format!(
            "name=\"{edit}\" id=\"edit-sam\" value=\"1\" checked"
        )),
        "{page}"
    );
    // Sam still cannot see Support's conversations: "may see" is a permission of its own.
    let (s, _, _) = sam.get(&format!("/c/{}", o.convs.0));
    assert_eq!(s, 404);
    // And Sales (no bits) stays closed.
    let (s, _, _) = sam.get(&format!("/admin/mailboxes/{sales}"));
    assert_eq!(s, 404);
}

#[test]
fn users_hidden_from_the_assign_list_are_not_offered() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let sales = mailbox_id(&boss, "Sales");
    let conv = format!("/c/{}", o.convs.1);
    let inbox = format!("/inbox?mailbox={sales}");
    for path in [&conv, &inbox] {
        let (_, _, page) = boss.get(path);
        assert!(page.contains(">Sam Sales</option>"), "{path}: {page}");
    }
    let (_, _, page) = boss.get(&format!("/admin/mailboxes/{sales}"));
    let at = page.find("id=\"hidden-sam\"").unwrap();
    let n = page[..at].rfind("name=\"hidden_").unwrap() + "name=\"hidden_".len();
    let sam_id = page[n..].split('"').next().unwrap().to_owned();
    let (see, hidden) = (format!("see_{sam_id}"), format!("hidden_{sam_id}"));
    let (s, _, _) = boss.post(
        &format!("/admin/mailboxes/{sales}/perms"),
        &[
            ("users", sam_id.as_str()),
            (see.as_str(), "1"),
            (hidden.as_str(), "1"),
        ],
    );
    assert_eq!(s, 303);
    for path in [&conv, &inbox] {
        let (s, _, page) = boss.get(path);
        assert_eq!(s, 200);
        assert!(!page.contains(">Sam Sales</option>"), "{path}: {page}");
        assert!(page.contains(">Boss</option>"), "{path}: {page}");
    }
    // Sam still sees Sales: hidden is only about the assign list.
    let sam = login(o.port, "sam", PW);
    let (s, _, _) = sam.get(&conv);
    assert_eq!(s, 200);
}

#[test]
fn smtp_servers_are_validated_tested_for_real_and_never_show_the_password() {
    let smtpd = Smtpd::start();
    smtpd.add_user("relay-user@example.org", "relay secret 42");
    let o = office(None);
    let boss = login(o.port, "boss", PW);

    // Bad values: each next to its field; the typed password never comes back.
    let (s, _, page) = boss.post(
        "/admin/smtp/new",
        &[
            ("name", "a/b"),
            ("host", "bad host"),
            ("port", "abc"),
            ("security", "starttls"),
            ("auth", "plain"),
            ("username", ""),
            ("password", "typed secret 77"),
            ("pinned_cert", "xyz"),
        ],
    );
    assert_eq!(s, 400, "{page}");
    assert!(
        text_by_id(&page, "err-port").is_some_and(|t| t.contains("abc is not a port")),
        "{page}"
    );
    assert!(!page.contains("typed secret 77"), "{page}");
    let (s, _, page) = boss.post(
        "/admin/smtp/new",
        &[
            ("name", "a/b"),
            ("host", "bad host"),
            ("port", "0"),
            ("security", "starttls"),
            ("auth", "plain"),
            ("username", ""),
            ("password", ""),
            ("pinned_cert", "xyz"),
        ],
    );
    assert_eq!(s, 400, "{page}");
    for f in [
        "name",
        "host",
        "port",
        "username",
        "password",
        "pinned_cert",
    ] {
        assert!(page.contains(&format!("id=\"err-{f}\"")), "{f}: {page}");
    }

    // A good one: STARTTLS with AUTH on the submission port, the certificate pinned.
    let port = smtpd.submission_port().to_string();
    let pin = smtpd.cert_sha256();
    let fields = |password: &'static str| {
        vec![
            ("name", "office relay"),
            ("host", "127.0.0.1"),
            ("port", port.as_str()),
            ("security", "starttls"),
            ("auth", "plain"),
            ("username", "relay-user@example.org"),
            ("password", password),
            ("helo", ""),
            ("pinned_cert", pin.as_str()),
        ]
    };
    let (s, head, page) = boss.post("/admin/smtp/new", &fields("relay secret 42"));
    assert_eq!(s, 303, "{page}");
    let path = location(&head).split('?').next().unwrap().to_owned();
    let (_, _, page) = boss.get(&path);
    assert!(!page.contains("relay secret 42"));
    assert!(page.contains("set: leave empty to keep it"), "{page}");
    // Never tested: the save button warns.
    assert!(
        text_by_id(&page, "save-warning").is_some_and(|t| t.contains("Not tested")),
        "{page}"
    );
    let (_, _, list) = boss.get("/admin/smtp");
    assert!(
        list.contains("office relay") && list.contains(">set<"),
        "{list}"
    );
    assert!(list.contains("data-filter=\"smtp-list\""), "{list}");

    // The test message really arrives, each step shown with the server's reply.
    let (s, _, page) = boss.post(
        &format!("{path}/test"),
        &[
            ("to", "someone@example.net"),
            ("from", "relay-user@example.org"),
        ],
    );
    assert_eq!(s, 200, "{page}");
    let got = smtpd.wait_for(1, Duration::from_secs(30));
    assert_eq!(got[0].rcpt_tos, vec!["someone@example.net".to_string()]);
    for want in [
        "id=\"test-steps\"",
        "STARTTLS",
        "AUTH",
        "RCPT TO:&lt;someone@example.net&gt;",
        "250",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    assert!(page.contains("id=\"notice\""), "{page}");
    // The form still shows the server's settings.
    assert!(page.contains("value=\"office relay\""), "{page}");
    assert!(page.contains("value=\"127.0.0.1\""), "{page}");
    assert!(
        !page.contains("id=\"save-warning\""),
        "a passing test: no warning: {page}"
    );

    // An edit with an empty password keeps it (the next test still passes).
    let (s, _, page) = boss.post(&path, &fields(""));
    assert_eq!(s, 303, "{page}");
    // ... but a changed setting forgets the passing test: the warning is back.
    let (_, _, page) = boss.get(&path);
    assert!(
        text_by_id(&page, "save-warning").is_none(),
        "the settings did not change: {page}"
    );
    let (s, _, page) = boss.post(
        &format!("{path}/test"),
        &[
            ("to", "two@example.net"),
            ("from", "relay-user@example.org"),
        ],
    );
    assert_eq!(s, 200, "{page}");
    smtpd.wait_for(2, Duration::from_secs(30));

    // A wrong password: the failed step with the server's reply, the save warning.
    let (s, _, _) = boss.post(&path, &fields("wrong password"));
    assert_eq!(s, 303);
    let (_, _, page) = boss.get(&path);
    assert!(
        text_by_id(&page, "save-warning").is_some(),
        "changed: {page}"
    );
    let (s, _, page) = boss.post(
        &format!("{path}/test"),
        &[
            ("to", "three@example.net"),
            ("from", "relay-user@example.org"),
        ],
    );
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("class=\"fail\"><strong>AUTH"), "{page}");
    assert!(page.contains("535"), "the server's reply: {page}");
    assert!(
        text_by_id(&page, "save-warning").is_some_and(|t| t.starts_with("The last test failed")),
        "{page}"
    );
    assert_eq!(smtpd.received().len(), 2);

    // In use by a mailbox: removing is refused with the reason; unused: removed.
    let support = mailbox_id(&boss, "Support");
    let (s, _, page) = boss.post(
        &format!("/admin/mailboxes/{support}/settings"),
        &[
            ("name", "Support"),
            ("address", "support@example.org"),
            ("from_policy", "mailbox"),
            ("smtp", "office relay"),
            ("sent_account", ""),
        ],
    );
    assert_eq!(s, 303, "{page}");
    let (s, _, page) = boss.post(&format!("{path}/remove"), &[]);
    assert_eq!(s, 400, "{page}");
    assert!(
        text_by_id(&page, "error").is_some_and(|t| t.contains("Support")),
        "{page}"
    );
    boss.post(
        &format!("/admin/mailboxes/{support}/settings"),
        &[
            ("name", "Support"),
            ("address", "support@example.org"),
            ("from_policy", "mailbox"),
            ("smtp", ""),
            ("sent_account", ""),
        ],
    );
    let (s, head, _) = boss.post(&format!("{path}/remove"), &[]);
    assert_eq!((s, location(&head).as_str()), (303, "/admin/smtp"));
    let (_, _, list) = boss.get("/admin/smtp");
    assert!(!list.contains("office relay"), "{list}");
}

// ---------------------------------------------------------------------------------------
// In a real browser

const BPASS: &str = "correct horse battery";
const SLOW: Duration = Duration::from_secs(90);

/// A data dir with the admin `boss`, the agent `ann` (both mailboxes) and the mailboxes
/// Support and Sales with one conversation each; serve over HTTPS.
fn browser_office() -> (tempfile::TempDir, PathBuf, Serve, String) {
    let t = tmp();
    let data = t.path().join("data");
    for (name, addr) in [
        ("Support", "support@example.org"),
        ("Sales", "sales@example.org"),
    ] {
        run_ok(&data, &["mailbox", "add", name, "--address", addr]);
    }
    for (subject, to, id) in [
        ("Printer jammed", "support@example.org", "p1@c.example"),
        ("Quote for chairs", "sales@example.org", "q1@c.example"),
    ] {
        let f = write_file(
            t.path(),
            &format!("{id}.eml"),
            crate::webui::mail("Cust <cust@c.example>", to, subject, id).as_bytes(),
        );
        let mbox = if to.starts_with("support") {
            "Support"
        } else {
            "Sales"
        };
        run_ok(&data, &["import", f.to_str().unwrap(), "--mailbox", mbox]);
    }
    let pw = write_file(t.path(), "pw", format!("{BPASS}\n").as_bytes());
    let pw = pw.to_string_lossy().into_owned();
    run_ok(
        &data,
        &[
            "user",
            "add",
            "boss",
            "--name",
            "Boss",
            "--role",
            "admin",
            "--password-file",
            &pw,
        ],
    );
    run_ok(
        &data,
        &[
            "user",
            "add",
            "ann",
            "--name",
            "Ann Agent",
            "--role",
            "agent",
            "--mailbox",
            "Support",
            "--mailbox",
            "Sales",
            "--password-file",
            &pw,
        ],
    );
    let mut s = Serve::start_with(
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
    let ready = s.wait_for("ready (data dir", Duration::from_secs(60));
    let base = format!("https://127.0.0.1:{}", https_port(&ready));
    (t, data, s, base)
}

fn blogin(b: &Browser, base: &str, who: &str) {
    b.goto(&format!("{base}/login"));
    b.wait_for("#login").send_keys(who);
    b.find("#password").send_keys(BPASS);
    b.find("#submit").click();
    b.wait_until("the inbox after logging in", |b| b.url().contains("/inbox"));
}

/// Clicks `css`, which loads a new page, and waits for the new page.
fn click_and_load(b: &Browser, css: &str) {
    b.exec("window.__oldPage = true;", vec![]);
    b.find(css).click();
    b.wait_until(&format!("a new page after clicking {css}"), |b| {
        b.cmd(
            "POST",
            "~/execute/sync",
            Some(&json!({"script": "return document.readyState === 'complete' && !window.__oldPage;", "args": []})),
        )
        .is_ok_and(|v| v == json!(true))
    });
}

fn text_of(b: &Browser, css: &str) -> String {
    b.exec(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        vec![json!(css)],
    )
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

fn fill(b: &Browser, css: &str, text: &str) {
    let e = b.find(css);
    e.clear();
    e.send_keys(text);
}

fn select(b: &Browser, css: &str, value: &str) {
    b.exec(
        "var s = document.querySelector(arguments[0]); s.value = arguments[1]; return s.value;",
        vec![json!(css), json!(value)],
    );
}

fn screenshot(b: &Browser, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    b.screenshot(&path);
    let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
}

#[test]
fn in_the_browser_an_admin_adds_a_mailbox_with_an_alias_and_an_auto_reply() {
    let (_t, _data, _serve, base) = browser_office();
    let b = Browser::start();
    blogin(&b, &base, "boss");
    b.goto(&format!("{base}/admin/mailboxes"));
    b.wait_for("#mailbox-list");
    click_and_load(&b, "#add-mailbox");
    fill(&b, "#f-name", "Billing");
    fill(&b, "#f-address", "billing@example.org");
    fill(&b, "#f-alias", "invoices@example.org");
    fill(&b, "#f-display_name", "Billing team");
    click_and_load(&b, "#save-settings");
    assert!(b.url().contains("/admin/mailboxes/"), "{}", b.url());
    assert!(text_of(&b, "#notice").contains("Saved"), "{}", b.source());
    assert!(text_of(&b, "#address-list").contains("invoices@example.org"));
    assert_eq!(b.find("#f-name").prop("value"), json!("Billing"));
    assert_eq!(
        b.find("#f-display_name").prop("value"),
        json!("Billing team")
    );

    // The auto-reply: on, with templates; the preview shows them with sample values.
    b.find("#f-auto_reply").click();
    fill(
        &b,
        "#f-auto_reply_subject",
        "We got your mail: {{ subject }}",
    );
    fill(
        &b,
        "#f-auto_reply_body",
        "Hello {{ customer_name }},\nyour reference is {{ tag }}.\n{{ mailbox_name }}",
    );
    click_and_load(&b, "#preview-button");
    b.wait_for("#preview");
    assert_eq!(
        text_of(&b, "#preview-subject"),
        "We got your mail: Printer jammed"
    );
    assert_eq!(
        text_of(&b, "#preview-body"),
        "Hello Chris Customer,\nyour reference is PR-1234.\nBilling team"
    );
    // The typed templates are still in the form after the preview.
    assert_eq!(
        b.find("#f-auto_reply_subject").prop("value"),
        json!("We got your mail: {{ subject }}")
    );
    b.exec(
        "document.querySelector('#preview').scrollIntoView();",
        vec![],
    );
    screenshot(&b, "admin-mailbox-preview.png");
    click_and_load(&b, "#save-texts");
    assert!(text_of(&b, "#notice").contains("Saved"));
    assert_eq!(b.find("#f-auto_reply").prop("checked"), json!(true));

    // The list shows it with its alias and the auto-reply on; the filter box finds it.
    b.goto(&format!("{base}/admin/mailboxes"));
    b.wait_for("#mailbox-list");
    b.find("#filter-mailbox-list").send_keys("invoices");
    b.wait_until("the filter hides the other rows", |b| {
        b.exec(
            "return Array.from(document.querySelectorAll('#mailbox-list tbody tr')).filter(r => r.offsetParent !== null).length;",
            vec![],
        ) == json!(1)
    });
    assert!(text_of(&b, "#mailbox-list tbody").contains("Billing"));
    screenshot(&b, "admin-mailboxes.png");
}

#[test]
fn in_the_browser_an_admin_adds_an_smtp_server_and_the_test_message_arrives() {
    let smtpd = Smtpd::start();
    smtpd.add_user("relay@example.org", "relay pass 9");
    let (_t, _data, _serve, base) = browser_office();
    let b = Browser::start();
    blogin(&b, &base, "boss");
    b.goto(&format!("{base}/admin/smtp"));
    click_and_load(&b, "#add-smtp");
    fill(&b, "#f-name", "Office relay");
    fill(&b, "#f-host", "127.0.0.1");
    select(&b, "#f-security", "starttls");
    fill(&b, "#f-port", &smtpd.submission_port().to_string());
    select(&b, "#f-auth", "plain");
    fill(&b, "#f-username", "relay@example.org");
    fill(&b, "#f-password", "relay pass 9");
    fill(&b, "#f-pinned_cert", &smtpd.cert_sha256());
    click_and_load(&b, "#save-smtp");
    assert!(text_of(&b, "#notice").contains("Saved"), "{}", b.source());
    assert!(text_of(&b, "#save-warning").contains("Not tested"));
    assert_eq!(b.find("#f-password").prop("value"), json!(""));
    assert!(!b.source().contains("relay pass 9"));

    fill(&b, "#f-to", "boss@example.net");
    fill(&b, "#f-from", "relay@example.org");
    click_and_load(&b, "#send-test");
    b.wait_for("#test-steps");
    let got = smtpd.wait_for(1, SLOW);
    assert_eq!(got[0].rcpt_tos, vec!["boss@example.net".to_string()]);
    let steps = text_of(&b, "#test-steps");
    for want in ["STARTTLS", "AUTH", "MAIL FROM:<relay@example.org>", "250"] {
        assert!(steps.contains(want), "{want}: {steps}");
    }
    assert!(
        text_of(&b, "#notice").contains("accepted"),
        "{}",
        b.source()
    );
    assert!(b.try_find("#save-warning").is_none());
    // The form still holds the server's settings (never the password).
    assert_eq!(b.find("#f-host").prop("value"), json!("127.0.0.1"));
    assert_eq!(b.find("#f-name").prop("value"), json!("Office relay"));
    assert_eq!(b.find("#f-password").prop("value"), json!(""));
    b.exec(
        "document.querySelector('#test-steps').scrollIntoView();",
        vec![],
    );
    screenshot(&b, "admin-smtp-test.png");
}

#[test]
fn in_the_browser_a_user_restricted_to_one_mailbox_cannot_see_the_other() {
    let (_t, _data, _serve, base) = browser_office();
    let b = Browser::start();
    // Ann sees both mailboxes at first.
    blogin(&b, &base, "ann");
    assert!(text_of(&b, "nav.mailboxes").contains("Sales"));
    b.delete_cookies();

    blogin(&b, &base, "boss");
    b.goto(&format!("{base}/admin/mailboxes"));
    b.wait_for("#mailbox-list");
    let sales_url = b
        .exec(
            "return Array.from(document.querySelectorAll('#mailbox-list a')).find(a => a.textContent === 'Sales').href;",
            vec![],
        )
        .as_str()
        .unwrap()
        .to_owned();
    let sales_id = sales_url.rsplit('/').next().unwrap().to_owned();
    b.goto(&sales_url);
    b.wait_for("#perms");
    b.exec("document.querySelector('#perms').scrollIntoView();", vec![]);
    b.find("#see-ann").click();
    assert_eq!(b.find("#see-ann").prop("checked"), json!(false));
    screenshot(&b, "admin-mailbox-permissions.png");
    click_and_load(&b, "#save-perms");
    assert_eq!(b.find("#see-ann").prop("checked"), json!(false));
    b.delete_cookies();

    // Ann: Support only, in the menu and in the inbox; Sales answers 404.
    blogin(&b, &base, "ann");
    let menu = text_of(&b, "nav.mailboxes");
    assert!(
        menu.contains("Support") && !menu.contains("Sales"),
        "{menu}"
    );
    assert!(!text_of(&b, "main").contains("Quote for chairs"));
    b.goto(&format!("{base}/inbox?mailbox={sales_id}"));
    b.wait_until("the 404 page", |b| b.source().contains("not found"));
    b.goto(&format!("{base}/admin/mailboxes/{sales_id}"));
    b.wait_until("the 404 page", |b| b.source().contains("not found"));
    screenshot(&b, "restricted-user-404.png");
}

#[test]
fn the_cli_refuses_a_template_that_does_not_work_like_the_page() {
    let t = tmp();
    let d = t.path();
    run_ok(
        d,
        &[
            "mailbox",
            "add",
            "Support",
            "--address",
            "support@example.org",
        ],
    );
    let o = crate::support::run(
        d,
        &["mailbox", "edit", "Support", "--signature", "Hi {{ agent"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the template does not work"), "{err}");
    run_ok(
        d,
        &[
            "mailbox",
            "edit",
            "Support",
            "--signature",
            "Hi {{ agent }}",
        ],
    );
}

//! The mail accounts page (`/admin/accounts`) and the login methods behind it:
//!
//! - over HTTP against a real `postroom serve`: every field error next to its field, in
//!   English and French; the password never in any page; the list's filter box and
//!   sortable columns; a running service picks up accounts added, disabled and removed
//!   in the browser;
//! - SASL PLAIN with a non-ASCII password against the real Dovecot (IMAP and POP3), and
//!   the exact bytes of PLAIN with an authorization identity and of LOGIN with an
//!   Exchange-style `DOMAIN\user\alias` name against a scripted fake server;
//! - in a real Chromium: an admin adds an IMAP account against Dovecot, "Check
//!   connection" fails with the server's exact reply for a wrong password and passes
//!   with the right one, saves it, and the mail arrives as a conversation.

use crate::browser::Browser;
use crate::dovecot::Dovecot;
use crate::support::{Serve, https_port, request, run, run_ok, tmp, write_file};
use crate::webui::{PW, Session, form, login, office};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The text of the element with id `id` in `page` (up to its closing tag), "" if none.
fn element(page: &str, id: &str) -> String {
    let Some(at) = page.find(&format!("id=\"{id}\"")) else {
        return String::new();
    };
    let rest = &page[at..];
    let start = rest.find('>').map(|i| i + 1).unwrap_or(0);
    let end = rest[start..]
        .find('<')
        .map(|i| start + i)
        .unwrap_or(rest.len());
    rest[start..end].to_owned()
}

/// The id of the account `name` in the list page.
fn id_of(page: &str, name: &str) -> String {
    let at = page
        .find(&format!(">{name}</a>"))
        .unwrap_or_else(|| panic!("{name} listed in {page}"));
    let before = &page[..at];
    let href = before.rfind("/admin/accounts/").unwrap();
    before[href + "/admin/accounts/".len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// Decodes the entities the templates write for text.
fn unescape(page: &str) -> String {
    page.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// A form POST like `Session::post`, with an `Accept-Language` header.
fn post_in(s: &Session, lang: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let mut f = vec![("csrf", s.csrf.as_str())];
    f.extend_from_slice(fields);
    let cookie = format!("postroom_session={}", s.cookie);
    let origin = s.origin();
    let (status, _, body) = request(
        s.port,
        "POST",
        path,
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("Accept-Language", lang),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&f),
    );
    (status, body)
}

/// A form with everything wrong that can be wrong.
const BAD_FORM: &[(&str, &str)] = &[
    ("do", "save"),
    ("name", "a/b"),
    ("protocol", "imap"),
    ("host", "not a host!"),
    ("port", "70000"),
    ("security", "tls"),
    ("username", ""),
    ("password", ""),
    ("login", "login"),
    ("authzid", "shared@example.org"),
    ("folders", "INBOX"),
    ("after", "move"),
    ("after_folder", "INBOX"),
    ("poll_secs", "5"),
    ("max_mb", "0.01"),
    ("pinned_cert", "abc"),
    ("mailbox", "1"),
    ("dispatch", "address"),
    ("only_new", "all"),
    ("validity", "sometimes"),
    ("comment", ""),
];

#[test]
fn every_account_field_error_shows_next_to_its_field_in_english_and_french() {
    let o = office(None);
    let s = login(o.port, "boss", PW);
    let (status, page) = post_in(&s, "en", "/admin/accounts/new", BAD_FORM);
    assert_eq!(status, 400, "{page}");
    let expect_en = [
        ("name", "\"a/b\" is not usable: 1 to 64 characters"),
        ("host", "\"not a host!\" is not a host name or IP address."),
        ("port", "70000 is not a port (1-65535)."),
        ("username", "Required."),
        ("password", "Required for a new account."),
        (
            "authzid",
            "An authorization identity needs the login method SASL PLAIN",
        ),
        ("after", "Cannot move into \"INBOX\", which is also read"),
        ("poll_secs", "5 s is out of range (10 s to 1 day)."),
        ("max_mb", "bytes is too small (at least 64 KiB)."),
        ("pinned_cert", "\"abc\" is not a SHA-256 fingerprint"),
        ("validity", "\"sometimes\" is not a validity"),
    ];
    let page = unescape(&page);
    for (field, text) in expect_en {
        let shown = element(&page, &format!("err-{field}"));
        assert!(
            shown.contains(text),
            "err-{field} should say {text:?}, says {shown:?}"
        );
        // Next to its field: inside the same label as the input.
        let input_at = page
            .find(&format!("id=\"f-{field}\""))
            .unwrap_or_else(|| panic!("field {field}"));
        let err_at = page.find(&format!("id=\"err-{field}\"")).unwrap();
        assert!(
            err_at > input_at && !page[input_at..err_at].contains("</label>"),
            "err-{field} sits in the label of its field"
        );
    }
    assert!(page.contains("id=\"form-errors\""));
    // The typed values come back (so nothing needs typing again).
    assert!(
        page.contains("value=\"not a host!\""),
        "{}",
        &page[page.find("f-host").unwrap()..][..300]
    );

    let (status, page) = post_in(&s, "fr", "/admin/accounts/new", BAD_FORM);
    assert_eq!(status, 400);
    let page = unescape(&page);
    let expect_fr = [
        ("name", "n'est pas utilisable : 1 à 64 caractères"),
        (
            "host",
            "\"not a host!\" n'est ni un nom d'hôte ni une adresse IP.",
        ),
        ("port", "70000 n'est pas un port (1-65535)."),
        ("username", "Obligatoire."),
        ("password", "Obligatoire pour un nouveau compte."),
        ("authzid", "Une identité d'autorisation demande"),
        ("after", "Impossible de déplacer vers \"INBOX\""),
        ("poll_secs", "5 s est hors limites"),
        ("max_mb", "octets, c'est trop petit"),
        ("pinned_cert", "\"abc\" n'est pas une empreinte SHA-256"),
        ("validity", "\"sometimes\" n'est pas une validité"),
    ];
    for (field, text) in expect_fr {
        let shown = element(&page, &format!("err-{field}"));
        assert!(
            shown.contains(text),
            "French err-{field} should say {text:?}, says {shown:?}"
        );
    }
    // Numbers that are not numbers, and a name already taken.
    let (status, page) = post_in(
        &s,
        "en",
        "/admin/accounts/new",
        &[
            ("do", "save"),
            ("name", "one"),
            ("host", "127.0.0.1"),
            ("port", "imap"),
            ("username", "u"),
            ("password", "p"),
            ("poll_secs", "soon"),
            ("mailbox", "1"),
        ],
    );
    assert_eq!(status, 400);
    let page = unescape(&page);
    assert!(element(&page, "err-port").contains("\"imap\" is not a whole number."));
    assert!(element(&page, "err-poll_secs").contains("\"soon\" is not a whole number."));

    // Presets without JavaScript: the "Fill in" button, or a link with ?preset=.
    let (status, page) = post_in(
        &s,
        "en",
        "/admin/accounts/new",
        &[("do", "preset"), ("preset", "gmail"), ("name", "kept")],
    );
    assert_eq!(status, 200);
    assert!(page.contains("value=\"imap.gmail.com\"") && page.contains("value=\"993\""));
    assert!(page.contains("value=\"kept\""), "the typed values stay");
    assert!(!page.contains("field-error"), "filling in is not saving");
    let (_, _, page) = s.get("/admin/accounts/new?preset=mailboxorg");
    assert!(page.contains("value=\"imap.mailbox.org\""));
    o.serve.stop();
}

/// Fields of a saved account on an unused loopback port.
fn account_fields<'a>(name: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("do", "save"),
        ("name", name),
        ("protocol", "imap"),
        ("host", "127.0.0.1"),
        ("port", "9"),
        ("security", "none"),
        ("username", "office"),
        ("password", password),
        ("login", "auto"),
        ("folders", "INBOX"),
        ("after", "keep"),
        ("poll_secs", "600"),
        ("max_mb", "25"),
        ("mailbox", "1"),
        ("dispatch", "address"),
        ("only_new", "all"),
        ("validity", "valid"),
        ("comment", "front desk"),
        ("enabled", "1"),
    ]
}

#[test]
fn the_account_password_never_appears_in_a_page() {
    const SECRET: &str = "Zebra-Pässwort-4711";
    let mut o = office(None);
    let s = login(o.port, "boss", PW);
    let mut pages = Vec::new();
    let (status, head, body) = s.post("/admin/accounts/new", &account_fields("desk", SECRET));
    assert_eq!(status, 303, "{head}\n{body}");
    pages.push(body);
    o.serve
        .wait_for("account \"desk\": starting", Duration::from_secs(30));
    let (_, _, list) = s.get("/admin/accounts");
    let id = id_of(&list, "desk");
    let edit_path = format!("/admin/accounts/{id}");
    let (status, _, edit) = s.get(&edit_path);
    assert_eq!(status, 200);
    assert!(edit.contains("Set. Leave empty to keep it."), "{edit}");
    assert!(
        edit.contains(">front desk<"),
        "{}",
        &edit[edit.find("f-comment").unwrap()..][..300]
    );
    pages.extend([list, edit]);
    // The form shown again with an error, a check (the port is closed), get folders.
    let mut bad = account_fields("desk", SECRET);
    bad.retain(|(k, _)| *k != "port");
    bad.push(("port", "0"));
    let (status, _, again) = s.post(&edit_path, &bad);
    assert_eq!(status, 400);
    pages.push(again);
    for action in ["check", "folders"] {
        let mut f = account_fields("desk", SECRET);
        f[0] = ("do", action);
        let (status, _, page) = s.post(&edit_path, &f);
        assert_eq!(status, 200);
        if action == "check" {
            assert!(page.contains("id=\"check-result\""), "{page}");
        }
        pages.push(page);
        // The same on a form not saved yet, with the typed values.
        let mut f = account_fields("other", SECRET);
        f[0] = ("do", action);
        let (status, _, new_page) = s.post("/admin/accounts/new", &f);
        assert_eq!(status, 200);
        if action == "check" {
            assert!(new_page.contains("id=\"check-result\""), "{new_page}");
        } else {
            assert!(new_page.contains("id=\"folders-error\""), "{new_page}");
        }
        pages.push(new_page);
    }
    for p in &pages {
        assert!(!p.contains(SECRET), "the password is in a page:\n{p}");
        assert!(!p.contains("Zebra"), "a part of the password is in a page");
    }
    o.serve.stop();
}

#[test]
fn the_accounts_list_filters_sorts_and_a_running_service_follows_every_change() {
    let mut o = office(None);
    let s = login(o.port, "boss", PW);
    let (_, _, empty) = s.get("/admin/accounts");
    assert!(empty.contains("id=\"no-accounts\""));
    for name in ["alpha", "beta"] {
        let (status, _, body) = s.post("/admin/accounts/new", &account_fields(name, "pw"));
        assert_eq!(status, 303, "{body}");
        // Without a restart: the service starts the account's task.
        o.serve.wait_for(
            &format!("account \"{name}\": starting"),
            Duration::from_secs(30),
        );
    }
    let (status, _, list) = s.get("/admin/accounts");
    assert_eq!(status, 200);
    assert!(list.contains("data-filter=\"accounts-list\""), "{list}");
    assert!(list.contains("<table class=\"admin-list\" id=\"accounts-list\">"));
    let sortable = list.matches("<th data-sort>").count();
    assert_eq!(sortable, 8, "every column but the actions sorts");
    assert!(list.contains(">alpha</a>") && list.contains(">beta</a>"));
    assert!(list.contains("127.0.0.1:9"));
    // The menu names the section.
    assert!(list.contains("href=\"/admin/accounts\" class=\"on\""));

    let beta = id_of(&list, "beta");
    let (status, head, _) = s.post(&format!("/admin/accounts/{beta}/disable"), &[]);
    assert_eq!(status, 303, "{head}");
    let to = crate::webui::header(&head, "location")[0].to_owned();
    o.serve.wait_for(
        "account \"beta\": stopped (disabled)",
        Duration::from_secs(30),
    );
    let (_, _, list) = s.get(&to);
    assert!(list.contains("The account is disabled."), "{to}");
    // Made invalid through the form: stopped too, although still enabled.
    let alpha = id_of(&list, "alpha");
    let mut f = account_fields("alpha", "");
    f.retain(|(k, _)| *k != "validity");
    f.push(("validity", "temporarily-invalid"));
    let (status, _, body) = s.post(&format!("/admin/accounts/{alpha}"), &f);
    assert_eq!(
        status, 303,
        "an empty password keeps the stored one: {body}"
    );
    o.serve.wait_for(
        "account \"alpha\": stopped (made invalid)",
        Duration::from_secs(30),
    );
    let (status, _, _) = s.post(&format!("/admin/accounts/{beta}/remove"), &[]);
    assert_eq!(status, 303);
    let (_, _, list) = s.get("/admin/accounts");
    assert!(!list.contains(">beta</a>") && list.contains(">alpha</a>"));
    assert!(list.contains("temporarily invalid"));
    // An agent does not see the page at all.
    let sam = login(o.port, "sam", PW);
    assert_eq!(sam.get("/admin/accounts").0, 404);
    assert_eq!(
        sam.post(&format!("/admin/accounts/{alpha}/remove"), &[]).0,
        404
    );
    o.serve.stop();
}

// ---------------------------------------------------------------------------------------
// Login methods against the real Dovecot

fn add_dovecot_account(
    data: &Path,
    name: &str,
    proto: &str,
    port: u16,
    user: &str,
    pw_file: &Path,
    login: &str,
) {
    run_ok(
        data,
        &[
            "account",
            "add",
            name,
            "--protocol",
            proto,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--security",
            "none",
            "--user",
            user,
            "--password-file",
            pw_file.to_str().unwrap(),
            "--login",
            login,
        ],
    );
}

#[test]
fn sasl_plain_logs_in_with_a_non_ascii_password_on_imap_and_pop3() {
    const UTF8_PW: &str = "Grüße-señor-密码";
    const ASCII_PW: &str = "plain ascii pw";
    let d = Dovecot::start();
    d.add_user("anna", UTF8_PW);
    d.add_user("ben", ASCII_PW);
    let t = tmp();
    let data = t.path().join("data");
    let utf8 = write_file(t.path(), "utf8", format!("{UTF8_PW}\n").as_bytes());
    let ascii = write_file(t.path(), "ascii", format!("{ASCII_PW}\n").as_bytes());
    let wrong = write_file(t.path(), "wrong", "Grüße-falsch\n".as_bytes());
    let cases = [
        (
            "imap-plain",
            "imap",
            d.imap_port,
            "anna",
            &utf8,
            "plain",
            "with AUTHENTICATE PLAIN",
        ),
        (
            "imap-auto",
            "imap",
            d.imap_port,
            "anna",
            &utf8,
            "auto",
            "with AUTHENTICATE PLAIN",
        ),
        (
            "imap-login",
            "imap",
            d.imap_port,
            "ben",
            &ascii,
            "login",
            "with LOGIN",
        ),
        (
            "imap-auto-ascii",
            "imap",
            d.imap_port,
            "ben",
            &ascii,
            "auto",
            "with LOGIN",
        ),
        (
            "pop-plain",
            "pop3",
            d.pop3_port,
            "anna",
            &utf8,
            "plain",
            "with AUTH PLAIN",
        ),
        (
            "pop-auto",
            "pop3",
            d.pop3_port,
            "anna",
            &utf8,
            "auto",
            "with AUTH PLAIN",
        ),
        (
            "pop-login",
            "pop3",
            d.pop3_port,
            "ben",
            &ascii,
            "login",
            "with USER/PASS",
        ),
    ];
    for (name, proto, port, user, pw, how, expect) in cases {
        add_dovecot_account(&data, name, proto, port, user, pw, how);
        let out = run(&data, &["account", "check", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {text}\n{}", d.log());
        assert!(
            text.contains(&format!("logged in as \"{user}\" {expect}")),
            "{name}: {text}"
        );
    }
    // A wrong non-ASCII password: the server's exact refusal, on the PLAIN step.
    add_dovecot_account(&data, "wrong", "imap", d.imap_port, "anna", &wrong, "plain");
    let out = run(&data, &["account", "check", "wrong"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(
        text.contains("login (AUTHENTICATE PLAIN)")
            && text.contains("server said \"NO [AUTHENTICATIONFAILED] Authentication failed.\""),
        "{text}"
    );
    // And the mail itself comes in over a PLAIN login.
    d.append(
        "anna",
        UTF8_PW,
        "INBOX",
        b"From: c@example.com\r\nTo: anna@example.org\r\nSubject: Umlaut login\r\nMessage-ID: <u1@example.com>\r\n\r\nHi\r\n",
    );
    let out = run_ok(&data, &["fetch", "imap-plain"]);
    assert!(out.contains("1 new messages stored"), "{out}");
}

// ---------------------------------------------------------------------------------------
// The exact bytes on the wire, against a scripted server

fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A scripted IMAP or POP3 server recording every line it got.
fn scripted(greeting: &'static str, imap: bool) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            conn.write_all(greeting.as_bytes()).unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let mut pending_tag: Option<String> = None;
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let l = line.trim_end().to_owned();
                log.lock().unwrap().push(l.clone());
                line.clear();
                let answer = if imap {
                    if let Some(tag) = pending_tag.take() {
                        format!("{tag} OK logged in\r\n")
                    } else {
                        let (tag, cmd) = l.split_once(' ').unwrap_or((&l, ""));
                        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "AUTHENTICATE" => {
                                pending_tag = Some(tag.to_owned());
                                "+ \r\n".to_owned()
                            }
                            "CAPABILITY" => {
                                format!("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n")
                            }
                            "LIST" => {
                                format!("* LIST (\\HasNoChildren) \"/\" INBOX\r\n{tag} OK done\r\n")
                            }
                            "STATUS" => format!("* STATUS INBOX (MESSAGES 0)\r\n{tag} OK done\r\n"),
                            "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
                            _ => format!("{tag} OK done\r\n"),
                        }
                    }
                } else if l == "AUTH PLAIN" {
                    "+ \r\n".to_owned()
                } else if l.starts_with("STAT") {
                    "+OK 0 0\r\n".to_owned()
                } else {
                    "+OK\r\n".to_owned()
                };
                if conn.write_all(answer.as_bytes()).is_err() {
                    break;
                }
                if l.ends_with("LOGOUT") || l == "QUIT" {
                    break;
                }
            }
        }
    });
    (port, got)
}

#[test]
fn sasl_plain_sends_authzid_user_and_password_exactly_and_login_quotes_backslashes() {
    const USER: &str = "OFFICE\\agent\\support-shared";
    const PASS: &str = "pä\"ss\\wörd";
    const AUTHZ: &str = "support@example.org";
    let t = tmp();
    let data = t.path().join("data");
    let pw = write_file(t.path(), "pw", format!("{PASS}\n").as_bytes());
    let expected = b64(format!("{AUTHZ}\0{USER}\0{PASS}").as_bytes());

    let (imap_port, imap_got) = scripted("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", true);
    let (pop_port, pop_got) = scripted("+OK ready\r\n", false);
    for (name, proto, port) in [("i", "imap", imap_port), ("p", "pop3", pop_port)] {
        run_ok(
            &data,
            &[
                "account",
                "add",
                name,
                "--protocol",
                proto,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--security",
                "none",
                "--user",
                USER,
                "--password-file",
                pw.to_str().unwrap(),
                "--authzid",
                AUTHZ,
            ],
        );
        let out = run_ok(&data, &["account", "check", name]);
        assert!(out.contains(&format!("for \"{AUTHZ}\"")), "{out}");
    }
    let imap = imap_got.lock().unwrap().clone();
    let at = imap
        .iter()
        .position(|l| l.ends_with("AUTHENTICATE PLAIN"))
        .unwrap_or_else(|| panic!("AUTHENTICATE PLAIN sent: {imap:?}"));
    assert_eq!(imap[at + 1], expected, "the PLAIN message: {imap:?}");
    let pop = pop_got.lock().unwrap().clone();
    let at = pop.iter().position(|l| l == "AUTH PLAIN").unwrap();
    assert_eq!(pop[at + 1], expected, "{pop:?}");
    assert!(!pop.iter().any(|l| l.starts_with("USER ")), "{pop:?}");

    // LOGIN: the quoted-string escapes of IMAP (RFC 3501) for '\' and '"'.
    run_ok(
        &data,
        &["account", "edit", "i", "--authzid", "", "--login", "login"],
    );
    imap_got.lock().unwrap().clear();
    run_ok(&data, &["account", "check", "i"]);
    let imap = imap_got.lock().unwrap().clone();
    let login = imap.iter().find(|l| l.contains(" LOGIN ")).unwrap();
    assert!(
        login.ends_with(" LOGIN \"OFFICE\\\\agent\\\\support-shared\" \"pä\\\"ss\\\\wörd\""),
        "{login}"
    );
    // LOGIN with an authorization identity is refused when saved, with the reason.
    let out = run(&data, &["account", "edit", "i", "--authzid", AUTHZ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authzid: An authorization identity needs")
    );
}

// ---------------------------------------------------------------------------------------
// In the browser

const SLOW: Duration = Duration::from_secs(90);

fn screenshot(b: &Browser, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    b.screenshot(&path);
    let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
    path
}

fn text_of(b: &Browser, css: &str) -> String {
    let v = b.exec(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        vec![json!(css)],
    );
    v.as_str().unwrap_or_default().to_owned()
}

/// Clicks `css`, which loads a new page, and waits for the new page.
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

fn set_value(b: &Browser, id: &str, value: &str) {
    b.exec(
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![json!(id), json!(value)],
    );
}

fn type_into(b: &Browser, id: &str, value: &str) {
    let e = b.find(&format!("#{id}"));
    e.clear();
    e.send_keys(value);
}

#[test]
fn an_admin_adds_an_imap_account_in_the_browser_checks_it_and_mail_arrives() {
    const IMAP_PASS: &str = "Brötchen & Kaffee";
    let d = Dovecot::start();
    d.add_user("frontdesk", IMAP_PASS);
    d.append(
        "frontdesk",
        IMAP_PASS,
        "INBOX",
        b"From: Carla <carla@customer.example>\r\nTo: desk@example.org\r\nSubject: Broken coffee machine\r\nMessage-ID: <coffee1@customer.example>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nIt leaks.\r\n",
    );
    let t = tmp();
    let data = t.path().join("data");
    run_ok(
        &data,
        &["mailbox", "add", "Desk", "--address", "desk@example.org"],
    );
    let pw = write_file(t.path(), "pw", b"correct horse battery\n");
    run_ok(
        &data,
        &[
            "user",
            "add",
            "anna",
            "--role",
            "admin",
            "--name",
            "Anna Admin",
            "--password-file",
            pw.to_str().unwrap(),
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

    let b = Browser::start();
    b.goto(&format!("{base}/login"));
    b.wait_for("#login").send_keys("anna");
    b.find("#password").send_keys("correct horse battery");
    b.find("#submit").click();
    b.wait_until("the inbox", |b| b.url().contains("/inbox"));

    b.goto(&format!("{base}/admin/accounts"));
    b.wait_for("#no-accounts");
    click_and_load(&b, "#add-account");
    // A preset fills the server fields in the page (the script), then we type our own.
    set_value(&b, "f-preset", "fastmail");
    b.exec(
        "document.getElementById('f-preset').dispatchEvent(new Event('change'));",
        vec![],
    );
    assert_eq!(
        b.find("#f-host").prop("value"),
        json!("imap.fastmail.com"),
        "the preset filled the host"
    );
    set_value(&b, "f-preset", "");
    type_into(&b, "f-name", "frontdesk");
    type_into(&b, "f-host", "127.0.0.1");
    type_into(&b, "f-port", &d.imap_port.to_string());
    set_value(&b, "f-security", "none");
    type_into(&b, "f-username", "frontdesk");
    type_into(&b, "f-password", "wrong password");
    type_into(&b, "f-poll_secs", "600");
    let desk = b.exec(
        "return Array.from(document.getElementById('f-mailbox').options).find(o => o.text === 'Desk').value;",
        vec![],
    );
    set_value(&b, "f-mailbox", desk.as_str().unwrap());

    // A wrong password: the check fails at the login with the server's exact reply.
    click_and_load(&b, "#check-account");
    b.wait_for("#check-result");
    let result = text_of(&b, "#check-result");
    assert!(
        result.contains("NO [AUTHENTICATIONFAILED] Authentication failed."),
        "{result}"
    );
    assert!(
        b.find("#check-result")
            .attr("class")
            .unwrap()
            .contains("bad")
    );
    assert_eq!(
        b.find("#f-password").prop("value"),
        json!(""),
        "the password is not sent back"
    );
    assert!(!b.source().contains("wrong password"));
    b.exec(
        "document.getElementById('check-result').scrollIntoView();",
        vec![],
    );
    screenshot(&b, "admin-account-check-failed.png");

    // The right password: every step passes, with the folder and its count.
    type_into(&b, "f-password", IMAP_PASS);
    click_and_load(&b, "#check-account");
    b.wait_for("#check-result");
    let result = text_of(&b, "#check-result");
    assert!(
        b.find("#check-result")
            .attr("class")
            .unwrap()
            .contains("ok"),
        "{result}"
    );
    assert!(
        result.contains("logged in as \"frontdesk\" with"),
        "{result}"
    );
    assert!(result.contains("INBOX (1)"), "{result}");
    b.exec(
        "document.getElementById('check-result').scrollIntoView();",
        vec![],
    );
    screenshot(&b, "admin-account-check-ok.png");

    // Get folders lists the server's folders to tick.
    type_into(&b, "f-password", IMAP_PASS);
    click_and_load(&b, "#get-folders");
    b.wait_for("#server-folders");
    assert!(text_of(&b, "#server-folders").contains("INBOX"));

    // Save: the running service fetches the mail at once.
    type_into(&b, "f-password", IMAP_PASS);
    click_and_load(&b, "#save-account");
    b.wait_for("#accounts-list");
    assert!(text_of(&b, "#notice").contains("The account is saved."));
    screenshot(&b, "admin-accounts-list.png");
    let deadline = Instant::now() + SLOW;
    loop {
        b.goto(&format!("{base}/inbox"));
        if b.source().contains("Broken coffee machine") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mail did not arrive as a conversation"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The list shows the live state of the account.
    b.goto(&format!("{base}/admin/accounts"));
    b.wait_for("#accounts-list");
    let state = text_of(&b, "#accounts-list td.state");
    assert!(!state.trim().is_empty(), "a state is shown");
    screenshot(&b, "admin-accounts-after-fetch.png");
    s.stop();
}

#[test]
fn every_account_field_message_has_a_french_translation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(root.join("src/accounts.rs")).unwrap();
    let code = code.split("#[cfg(test)]").next().unwrap();
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut keys = Vec::new();
    for open in ["Msg::new(\"", "Msg::value( \"", "Msg::value(\"", "key: \""] {
        for part in flat.split(open).skip(1) {
            keys.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(keys.len() > 20, "the messages were found: {keys:?}");
    let fr: std::collections::HashMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(root.join("assets/i18n/fr-accounts.json")).unwrap(),
    )
    .unwrap();
    let missing: Vec<&String> = keys.iter().filter(|k| !fr.contains_key(*k)).collect();
    assert!(missing.is_empty(), "not in fr-accounts.json: {missing:?}");
}

//! Postmaster filters end to end: through the real pipeline (trusted vs untrusted
//! X-headers, ignore, mailbox, no auto-reply, replies), and the `/admin/filters` page over
//! HTTP (saving, a refused regex shown next to its field, "Test filters").

use crate::dovecot::Dovecot;
use crate::support::{run_ok, tmp, write_file};
use crate::webui::{PW, api, login, office};
use postroom::config::Settings;
use postroom::filters::{Action, Condition, Field, Filter};
use postroom::model::{
    AccountId, AccountRecord, AfterFetch, ConversationRecord, FixedClock, MailboxId, MailboxRecord,
    Priority, Protocol, Security, SmtpAuth, SmtpId, SmtpRecord, Status, UserId,
};
use postroom::pipeline::{self, Summary};
use postroom::store::{NewRaw, Store, StoreOptions, content_hash};

const NOW_MS: i64 = 1_793_000_000_000;
const CLOCK: FixedClock = FixedClock(NOW_MS);

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("db.redb"), &StoreOptions::default()).unwrap();
    s.write(|tx| {
        let mut support = MailboxRecord::named(MailboxId(1), "Support");
        support.address = Some("support@office.example".into());
        support.auto_reply = true;
        support.auto_reply_subject = "Received: {{ subject }}".into();
        support.auto_reply_body = "We got it.".into();
        support.smtp = Some(SmtpId(1));
        tx.put_mailbox(&support)?;
        tx.put_mailbox(&MailboxRecord::named(MailboxId(2), "Sales"))?;
        tx.put_smtp(&SmtpRecord {
            id: SmtpId(1),
            name: "relay".into(),
            host: "127.0.0.1".into(),
            port: 25,
            security: Security::None,
            auth: SmtpAuth::None,
            username: String::new(),
            password_sealed: Vec::new(),
            helo: "office.example".into(),
            pinned_cert: None,
            last_test: None,
        })?;
        for (id, name, trusted) in [(1, "inside", true), (2, "outside", false)] {
            tx.put_account(&AccountRecord {
                id: AccountId(id),
                name: name.into(),
                protocol: Protocol::Imap,
                host: "127.0.0.1".into(),
                port: 143,
                security: Security::None,
                username: "u".into(),
                password_sealed: Vec::new(),
                folders: vec!["INBOX".into()],
                after: AfterFetch::Keep,
                mailbox: MailboxId(1),
                enabled: true,
                only_new: false,
                pinned_cert: None,
                poll_secs: 60,
                max_message_bytes: 25 << 20,
                dispatch_by_address: false,
                trusted,
                login: postroom::model::LoginMethod::Auto,
                authzid: String::new(),
                validity: postroom::model::Validity::Valid,
                comment: String::new(),
                creation: Default::default(),
            })?;
        }
        Ok::<_, postroom::store::StoreError>(())
    })
    .unwrap();
    (t, s)
}

/// Mail without a Date header: it counts as just arrived (auto-replies apply).
fn mail(id: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: Carla <carla@customer.example>\r\nTo: support@office.example\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello, body of {subject}\r\n"
    )
    .into_bytes()
}

fn deliver(s: &Store, source: &str, bytes: &[u8]) -> Summary {
    s.commit_raws(
        &[NewRaw {
            bytes,
            hash: content_hash(bytes),
            source: source.into(),
            mailbox: MailboxId(1),
        }],
        NOW_MS,
    )
    .unwrap();
    let settings = Settings::load(&s.read().unwrap()).unwrap();
    pipeline::process_pending(s, &settings, &CLOCK).unwrap()
}

fn conv_with(s: &Store, subject: &str) -> ConversationRecord {
    s.read()
        .unwrap()
        .conversations()
        .unwrap()
        .into_iter()
        .find(|c| c.subject == subject)
        .unwrap_or_else(|| panic!("no conversation {subject:?}"))
}

const X_HEADERS: &str = "X-Postroom-Queue: Sales\r\nX-OTRS-Priority: 5 very high\r\nX-Postroom-Tag: vip\r\nX-OTRS-DynamicField-Contract: A-17\r\nX-Postroom-State: pending\r\n";

#[test]
fn x_headers_act_only_for_mail_from_a_trusted_account() {
    let (_t, s) = store();
    deliver(
        &s,
        "imap:inside/INBOX/uidvalidity 1/uid 1",
        &mail("t1@x", "From the trusted account", X_HEADERS),
    );
    deliver(
        &s,
        "imap:outside/INBOX/uidvalidity 1/uid 1",
        &mail("u1@x", "From the untrusted account", X_HEADERS),
    );
    deliver(
        &s,
        "import:/tmp/a.eml",
        &mail("i1@x", "Imported file", X_HEADERS),
    );
    let t = conv_with(&s, "From the trusted account");
    assert_eq!(t.mailbox, MailboxId(2));
    assert_eq!(t.priority, Priority::Urgent);
    assert_eq!(t.status, Status::Pending);
    assert_eq!(t.tags, vec!["vip"]);
    assert_eq!(t.fields.get("Contract").map(String::as_str), Some("A-17"));
    for subject in ["From the untrusted account", "Imported file"] {
        let u = conv_with(&s, subject);
        assert_eq!(
            (
                u.mailbox,
                u.priority,
                u.status,
                u.tags.len(),
                u.fields.len()
            ),
            (MailboxId(1), Priority::Normal, Status::Active, 0, 0),
            "{subject}"
        );
    }
    let log = s.read().unwrap().log(100).unwrap();
    assert!(
        log.iter().any(|l| l
            .text
            .contains("trusted headers X-Postroom-Queue: Sales (mailbox Sales)")),
        "{log:#?}"
    );
}

/// The same X-headers fetched by IMAP from a real Dovecot through two accounts: only the
/// one marked trusted makes them act.
#[test]
fn x_headers_fetched_from_dovecot_act_only_for_the_trusted_account() {
    let d = Dovecot::start();
    d.add_user("inside", "pw-in");
    d.add_user("outside", "pw-out");
    d.append(
        "inside",
        "pw-in",
        "INBOX",
        &mail("dv1@x", "Via the trusted account", X_HEADERS),
    );
    d.append(
        "outside",
        "pw-out",
        "INBOX",
        &mail("dv2@x", "Via the untrusted account", X_HEADERS),
    );
    let data = tmp();
    let dir = data.path();
    run_ok(dir, &["mailbox", "add", "Support"]);
    run_ok(dir, &["mailbox", "add", "Sales"]);
    for (name, pw, trusted) in [("inside", "pw-in", "yes"), ("outside", "pw-out", "no")] {
        let port = d.imap_port.to_string();
        run_ok(
            dir,
            &[
                "account",
                "add",
                name,
                "--protocol",
                "imap",
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--security",
                "none",
                "--user",
                name,
                "--password",
                pw,
                "--mailbox",
                "Support",
                "--dispatch",
                "mailbox",
                "--trusted",
                trusted,
            ],
        );
        run_ok(dir, &["fetch", name]);
    }
    let s = Store::open(
        &dir.join(postroom::app::STORE_FILE),
        &StoreOptions::default(),
    )
    .unwrap();
    let sales = s
        .read()
        .unwrap()
        .mailboxes()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "Sales")
        .unwrap()
        .id;
    let t = conv_with(&s, "Via the trusted account");
    assert_eq!(
        (t.mailbox, t.priority, t.status, t.tags.clone()),
        (
            sales,
            Priority::Urgent,
            Status::Pending,
            vec!["vip".to_string()]
        )
    );
    let u = conv_with(&s, "Via the untrusted account");
    assert_ne!(u.mailbox, sales);
    assert_eq!(
        (u.priority, u.status, u.tags.len()),
        (Priority::Normal, Status::Active, 0)
    );
}

fn cond(field: Field, pattern: &str) -> Condition {
    Condition {
        field,
        pattern: pattern.into(),
        negate: false,
        case_sensitive: false,
    }
}

fn save(s: &Store, f: Filter) {
    s.write(|tx| tx.put_filter(&f)).unwrap();
}

#[test]
fn filters_route_ignore_and_silence_mail_in_the_pipeline() {
    let (_t, s) = store();
    save(
        &s,
        Filter {
            id: 0,
            name: "10 newsletters".into(),
            enabled: true,
            stop: true,
            conditions: vec![cond(Field::Header("Subject".into()), "^newsletter")],
            actions: vec![Action::Ignore],
        },
    );
    save(
        &s,
        Filter {
            id: 0,
            name: "20 orders".into(),
            enabled: true,
            stop: false,
            conditions: vec![cond(Field::Body, "order")],
            actions: vec![
                Action::Mailbox(MailboxId(2)),
                Action::SetPriority(Priority::High),
                Action::AddTags(vec!["orders".into()]),
                Action::SetField("Channel".into(), "mail".into()),
                Action::NoAutoReply,
            ],
        },
    );
    save(
        &s,
        Filter {
            id: 0,
            name: "30 assign".into(),
            enabled: true,
            stop: false,
            conditions: vec![cond(Field::Header("X-Nothing".into()), "^$")],
            actions: vec![Action::Assign(UserId(99))],
        },
    );
    let live = "imap:outside/INBOX/uidvalidity 1/uid ";
    // Ignored: raw kept, no conversation, a log line.
    let sum = deliver(&s, &format!("{live}1"), &mail("n1@x", "Newsletter 12", ""));
    assert_eq!((sum.ignored, sum.new_conversations), (1, 0));
    let r = s.read().unwrap();
    assert_eq!(r.conversations().unwrap().len(), 0);
    assert_eq!(r.raw_count().unwrap(), 1);
    assert_eq!(r.pending_count().unwrap(), 0);
    assert!(
        r.log(10)
            .unwrap()
            .iter()
            .any(|l| l.text.contains("ignored") && l.text.contains("\"10 newsletters\"")),
    );
    drop(r);
    // Routed, prioritised, tagged, no auto-reply.
    let sum = deliver(&s, &format!("{live}2"), &mail("o1@x", "My order 7", ""));
    assert_eq!((sum.new_conversations, sum.auto_replies), (1, 0));
    let c = conv_with(&s, "My order 7");
    assert_eq!(c.mailbox, MailboxId(2));
    assert_eq!(c.priority, Priority::High);
    assert_eq!(c.tags, vec!["orders"]);
    assert_eq!(c.fields.get("Channel").map(String::as_str), Some("mail"));
    // A user that does not exist is not assigned (and the log says so).
    assert_eq!(c.assignee, None);
    assert!(s.read().unwrap().log(50).unwrap().iter().any(|l| {
        l.text
            .contains("user 99 does not exist or is disabled; left unassigned")
    }));
    // Mail no filter silences gets its auto-reply (Support answers).
    let sum = deliver(&s, &format!("{live}3"), &mail("q1@x", "A question", ""));
    assert_eq!((sum.new_conversations, sum.auto_replies), (1, 1));
    let q = conv_with(&s, "A question");
    assert_eq!((q.mailbox, q.priority), (MailboxId(1), Priority::Normal));
}

#[test]
fn a_reply_gets_tags_and_priority_but_keeps_its_mailbox_and_status() {
    let (_t, s) = store();
    let live = "imap:outside/INBOX/uidvalidity 1/uid ";
    deliver(&s, &format!("{live}1"), &mail("a1@x", "Broken printer", ""));
    let first = conv_with(&s, "Broken printer");
    assert_eq!(first.mailbox, MailboxId(1));
    save(
        &s,
        Filter {
            id: 0,
            name: "urgent words".into(),
            enabled: true,
            stop: false,
            conditions: vec![cond(Field::Body, "body of Re:")],
            actions: vec![
                Action::Mailbox(MailboxId(2)),
                Action::SetStatus(Status::Closed),
                Action::SetPriority(Priority::Urgent),
                Action::AddTags(vec!["escalated".into()]),
                Action::MarkSpam,
            ],
        },
    );
    let reply = mail("a2@x", "Re: Broken printer", "In-Reply-To: <a1@x>\r\n");
    let sum = deliver(&s, &format!("{live}2"), &reply);
    assert_eq!(sum.joined, 1);
    let c = s.read().unwrap().conversation(first.id).unwrap().unwrap();
    // The first mail, Support's auto-reply to it, the reply.
    assert_eq!(c.message_count, 3);
    assert_eq!(
        (c.priority, c.tags.clone()),
        (Priority::Urgent, vec!["escalated".to_string()])
    );
    assert_eq!((c.mailbox, c.status), (MailboxId(1), Status::Active));
}

fn field_error<'a>(page: &'a str, field: &str) -> &'a str {
    let at = page
        .find(&format!("id=\"err-{field}\">"))
        .unwrap_or_else(|| panic!("no error next to {field}: {page}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    &rest[start..rest.find("</span>").unwrap()]
}

#[test]
fn the_filters_page_saves_refuses_bad_regexes_next_to_their_field_and_tests() {
    let o = office(None);
    let boss = login(o.port, "boss", PW);
    let (status, _, page) = boss.get("/admin/filters");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"no-filters\""), "{page}");
    let (status, _, page) = boss.get("/admin/filters/new");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"cond-1-pattern\""), "{page}");
    // Enter in a field presses the first submit button: Save, not "Add rows".
    let first_button = page.find("<button name=\"op\"").unwrap();
    assert!(
        page[first_button..].starts_with("<button name=\"op\" value=\"save\""),
        "{page}"
    );
    let base = [
        ("name", "10 quotes"),
        ("enabled", "1"),
        ("conds", "2"),
        ("acts", "3"),
        ("cond-0-field", "Subject"),
        ("cond-0-match", "matches"),
        ("cond-1-field", "header"),
        ("cond-1-header", "X-Mailer"),
        ("cond-1-match", "not"),
        ("cond-1-pattern", "^bulk"),
        ("act-0-kind", "priority"),
        ("act-0-choice", "p:urgent"),
        ("act-1-kind", "tags"),
        ("act-1-arg", "sales-lead, b2b"),
        ("act-2-kind", "assign"),
        ("act-2-choice", "u:1"),
        ("op", "save"),
    ];
    let with = |pattern: &str| {
        let mut f: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.push(("cond-0-pattern", pattern.to_owned()));
        f
    };
    let post = |fields: &[(&str, String)]| {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        boss.post("/admin/filters/new", &f)
    };
    // A regex that does not compile: refused, the reason next to the field, nothing saved.
    let (status, _, page) = post(&with("(quote"));
    assert_eq!(status, 200);
    assert!(
        field_error(&page, "cond-0-pattern").contains("does not compile"),
        "{page}"
    );
    assert!(
        page.contains("value=\"(quote\""),
        "the typed value stays: {page}"
    );
    // Too big once compiled.
    let (_, _, page) = post(&with("(quote{1000}){1000}"));
    assert!(
        field_error(&page, "cond-0-pattern").contains("too big"),
        "{page}"
    );
    // Too long.
    let (_, _, page) = post(&with(&"q".repeat(1001)));
    assert!(
        field_error(&page, "cond-0-pattern").contains("1001"),
        "{page}"
    );
    let (_, _, list) = boss.get("/admin/filters");
    assert!(
        list.contains("id=\"no-filters\""),
        "nothing saved yet: {list}"
    );
    // "Add condition rows" re-renders with more empty rows and saves nothing.
    let mut more = with("quote");
    more.retain(|(k, _)| *k != "op");
    more.push(("op", "add-cond".into()));
    let (_, _, page) = post(&more);
    assert!(page.contains("name=\"cond-3-pattern\""), "{page}");
    assert!(page.contains("value=\"X-Mailer\""), "{page}");
    // "Test filter" on the form runs the filter as typed, before it is saved.
    let mut test = with("desks");
    test.retain(|(k, _)| *k != "op");
    test.push(("op", "test".into()));
    test.push((
        "mail",
        "Subject: Six desks\r\nX-Mailer: bulkmail\r\n\r\nHi\r\n".into(),
    ));
    let (_, _, page) = post(&test);
    assert!(page.contains("id=\"test-report\""), "{page}");
    assert!(
        page.contains("✔ Subject matches &#x2f;desks&#x2f;"),
        "{page}"
    );
    assert!(
        page.contains("✘ X-Mailer does not match &#x2f;^bulk&#x2f;"),
        "{page}"
    );
    assert!(
        page.contains("Nothing: the mail is handled as usual."),
        "{page}"
    );
    assert!(
        page.contains("value=\"desks\""),
        "the form keeps what was typed: {page}"
    );
    // A refused regex is shown instead of a test run.
    let mut bad = test.clone();
    bad.retain(|(k, _)| *k != "cond-0-pattern");
    bad.push(("cond-0-pattern", "(desks".into()));
    let (_, _, page) = post(&bad);
    assert!(
        field_error(&page, "cond-0-pattern").contains("does not compile"),
        "{page}"
    );
    assert!(!page.contains("id=\"test-report\""), "{page}");
    // Saved.
    let (status, _, page) = post(&with("quote"));
    assert_eq!(status, 200);
    assert!(page.contains("Filter “10 quotes” saved."), "{page}");
    assert!(
        page.contains("id=\"filters-list\"") && page.contains("data-sort"),
        "{page}"
    );
    assert!(page.contains("Subject matches &#x2f;quote&#x2f;"), "{page}");
    assert!(
        page.contains("X-Mailer does not match &#x2f;^bulk&#x2f;"),
        "{page}"
    );
    // The same name again is refused next to the name.
    let (_, _, page) = post(&with("x"));
    assert!(
        field_error(&page, "name").contains("already named"),
        "{page}"
    );
    // "Test filters" with a pasted mail: which conditions matched, what would happen.
    let pasted = "From: ben@customer.example\r\nTo: sales@example.org\r\nSubject: Quote for 5 desks\r\nX-Postroom-Priority: low\r\nX-Postroom-Tag: from-header\r\n\r\nHi\r\n";
    let (status, _, page) = boss.post("/admin/filters/test", &[("mail", pasted)]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"test-report\""), "{page}");
    assert!(page.contains("class=\"matched\""), "{page}");
    assert!(page.contains("<code>Quote for 5 desks</code>"), "{page}");
    assert!(
        page.contains("Urgent") && page.contains("sales-lead, b2b"),
        "{page}"
    );
    assert!(page.contains("Not a trusted account"), "{page}");
    assert!(!page.contains("id=\"x-headers\""), "{page}");
    // As if trusted: the X-headers count, the filter (run after them) still sets urgent.
    let (_, _, page) = boss.post("/admin/filters/test", &[("mail", pasted), ("trusted", "1")]);
    assert!(
        page.contains("X-Postroom-Tag: from-header → tags from-header"),
        "{page}"
    );
    // A stored message by number: the imported "Printer jammed" does not match.
    let (_, _, page) = boss.post("/admin/filters/test", &[("message", "1")]);
    assert!(page.contains("class=\"not-matched\""), "{page}");
    assert!(page.contains("id=\"would\""), "{page}");
    let (_, _, page) = boss.post("/admin/filters/test", &[("message", "999")]);
    assert!(field_error(&page, "message").contains("999"), "{page}");
    // Nothing changed by testing: still one filter, conversations untouched.
    let (_, _, page) = boss.get(&format!("/c/{}", o.convs.1));
    assert!(page.contains("id=\"priority\""), "{page}");
    assert!(!page.contains("sales-lead"), "{page}");
    // Mail imported now goes through the saved filter (imports are never trusted: the
    // X-Postroom header is ignored); the page and the API show the outcome.
    let file = write_file(o._data.path(), "desks.eml", pasted.as_bytes());
    run_ok(
        o._data.path(),
        &["import", file.to_str().unwrap(), "--mailbox", "Sales"],
    );
    let (_, v) = api(
        o.port,
        Some(&o.admin_token),
        "GET",
        "/api/v1/conversations?q=desks",
        None,
    );
    let c = &v["conversations"][0];
    assert_eq!(c["priority"], "urgent", "{v}");
    assert_eq!(c["tags"], serde_json::json!(["sales-lead", "b2b"]), "{v}");
    assert_eq!(c["assignee"], 1, "{v}");
    let (_, _, page) = boss.get(&format!("/c/{}", c["id"]));
    assert!(page.contains("id=\"priority\">Urgent<"), "{page}");
    assert!(page.contains("<span class=\"tag\">b2b</span>"), "{page}");
    // Disable, then delete.
    let (_, _, list) = boss.get("/admin/filters");
    let id: String = list
        .split("id=\"frow-")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (_, _, page) = boss.post(&format!("/admin/filters/{id}/toggle"), &[]);
    assert!(page.contains("disabled."), "{page}");
    let (_, _, page) = boss.get(&format!("/admin/filters/{id}"));
    assert!(page.contains("value=\"quote\""), "{page}");
    let (_, _, page) = boss.post(&format!("/admin/filters/{id}/delete"), &[]);
    assert!(
        page.contains("deleted.") && page.contains("id=\"no-filters\""),
        "{page}"
    );
    // In French: the page and the refusal.
    let (st, _, _) = boss.post("/profile/save", &[("name", "Boss"), ("language", "fr")]);
    assert_eq!(st, 303);
    let (_, _, page) = post(&with("(quote"));
    let why = field_error(&page, "cond-0-pattern");
    assert!(why.contains("ne compile pas"), "{page}");
    assert!(page.contains("Nouveau filtre"), "{page}");
    // Not for agents.
    let sam = login(o.port, "sam", PW);
    assert_eq!(sam.get("/admin/filters").0, 404);
    assert_eq!(sam.post("/admin/filters/test", &[("mail", pasted)]).0, 404);
}

/// What filters see of a mail: decoded, unfolded headers in order, the text body, the
/// attachments' names; a message too odd to take apart still shows its headers.
#[test]
fn filters_see_decoded_headers_the_body_and_attachment_names() {
    let raw = b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\r\nSubject: =?iso-8859-1?q?R=E9sum=E9?=\r\n and more\r\nX-Tag: a\r\nX-Tag: b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease pay\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"facture 7.pdf\"\r\n\r\n%PDF\r\n--b--\r\n";
    let m = postroom::pipeline::parse::filter_mail(raw);
    assert_eq!(m.header("from"), Some("Zoë <zoe@example.com>"));
    assert_eq!(m.header("Subject"), Some("Résumé and more"));
    assert_eq!(m.values(&Field::Header("x-tag".into())), vec!["a", "b"]);
    assert!(m.body.contains("Please pay"), "{m:?}");
    assert_eq!(m.attachments, vec!["facture 7.pdf"]);
    // Not a MIME message at all: no panic, whatever headers there are.
    let odd = postroom::pipeline::parse::filter_mail(b"Subject: only\r\n");
    assert_eq!(odd.header("subject"), Some("only"));
    let nothing = postroom::pipeline::parse::filter_mail(b"\x00\xff");
    assert!(nothing.attachments.is_empty());
}

//! Ticket-creation options per mail account (issue 6, item 8), end to end:
//!
//! - "mail creates no new conversations", with mail fetched from the real Dovecot and
//!   answers sent to the real SMTP server: new mail is refused (raw kept, no
//!   conversation, a notice in the log), answered once with the template and never to
//!   automatic mail, or only logged when "drop" is chosen; a reply with a valid tag is
//!   accepted;
//! - customers made from unknown senders with their domain as the company, shown on the
//!   customer and conversation pages, and the defaults (assignee, priority, tags) applied
//!   to new conversations (Dovecot, CLI flags, `postroom serve`);
//! - defaults overridden by a filter, and bundling within the poll interval but not after
//!   it (raw records with an account's source through the real pipeline, times injected);
//! - the account form saves and shows the options, and refuses a default assignee who
//!   may not see the mailbox, with the reason next to the field.

use crate::dovecot::Dovecot;
use crate::smtpd::Smtpd;
use crate::support::{Serve, run_ok, tmp, web_port, write_file};
use crate::webui::{PW, login, office};
use postroom::config::Settings;
use postroom::filters::{Action, Condition, Field, Filter};
use postroom::model::{
    AccountId, AccountRecord, AfterFetch, ConversationRecord, Creation, FixedClock, Level,
    MailboxId, MailboxRecord, Priority, Protocol, Role, Security, UserId, UserRecord,
};
use postroom::pipeline::{self, Summary};
use postroom::store::{NewRaw, Store, StoreOptions, content_hash};
use std::path::Path;
use std::time::Duration;

const DPASS: &str = "dovecot-pass";

/// A mail without a Date header: it counts as just arrived.
fn mail(from: &str, subject: &str, id: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\nBody of {subject}\r\n"
    )
    .into_bytes()
}

fn open_store(p: &Path) -> Store {
    Store::open(&p.join(postroom::app::STORE_FILE), &StoreOptions::default()).unwrap()
}

/// A data dir with an SMTP relay, the Support mailbox sending through it, and the
/// account "in" on Dovecot's user "desk" with `flags`.
fn setup(p: &Path, d: &Dovecot, s: Option<&Smtpd>, flags: &[&str]) {
    if let Some(s) = s {
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
        run_ok(
            p,
            &[
                "mailbox",
                "add",
                "Support",
                "--address",
                "support@example.org",
                "--smtp",
                "relay",
            ],
        );
    } else {
        run_ok(
            p,
            &[
                "mailbox",
                "add",
                "Support",
                "--address",
                "support@example.org",
            ],
        );
    }
    let port = d.imap_port.to_string();
    let mut args = vec![
        "account",
        "add",
        "in",
        "--protocol",
        "imap",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "none",
        "--user",
        "desk",
        "--password",
        DPASS,
        "--mailbox",
        "Support",
        "--dispatch",
        "mailbox",
    ];
    args.extend_from_slice(flags);
    run_ok(p, &args);
}

#[test]
fn an_account_without_new_conversations_refuses_to_the_log_answers_once_and_accepts_tagged_replies()
{
    let d = Dovecot::start();
    d.add_user("desk", DPASS);
    let smtp = Smtpd::start();
    let data = tmp();
    let p = data.path();
    setup(p, &d, Some(&smtp), &[]);
    // While the account still creates conversations: the one customers answer later.
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &mail("Carla <carla@customer.example>", "Order 17", "o17@c", ""),
    );
    run_ok(p, &["fetch", "in"]);
    let conv = {
        let s = open_store(p);
        let convs = s.read().unwrap().conversations().unwrap();
        assert_eq!(convs.len(), 1);
        convs[0].id.0
    };
    run_ok(
        p,
        &[
            "account",
            "edit",
            "in",
            "--no-new-conversations",
            "yes",
            "--refused",
            "answer",
            "--refused-subject",
            "Only replies: {{ subject }}",
            "--refused-body",
            "Dear {{ customer_name }},\\nplease answer one of our mails ({{ account }}).",
        ],
    );
    let reply_subject = format!("Re: [#{conv}] Order 17");
    for m in [
        mail("Dora <dora@new.example>", "A new question", "q1@n", ""),
        mail("Carla <carla@customer.example>", &reply_subject, "r1@c", ""),
        mail(
            "Erik <erik@away.example>",
            "Out of office",
            "ooo@a",
            "Auto-Submitted: auto-replied\r\n",
        ),
        mail("Dora <dora@new.example>", "A second question", "q2@n", ""),
    ] {
        d.append("desk", DPASS, "INBOX", &m);
    }
    run_ok(p, &["fetch", "in"]);
    run_ok(p, &["outbox", "--send"]);
    let got = smtp.wait_for(1, Duration::from_secs(30));
    // Once: not to the automatic mail, not a second time to the same sender today.
    std::thread::sleep(Duration::from_millis(300));
    let got_all = smtp.received();
    assert_eq!(got_all.len(), 1, "{got_all:#?}");
    let answer = &got[0];
    assert_eq!(answer.rcpt_tos, ["dora@new.example"]);
    assert_eq!(answer.mail_from, "", "automatic mail has a null sender");
    let text = String::from_utf8_lossy(&answer.data).into_owned();
    assert!(
        text.contains("Subject: Only replies: A new question"),
        "{text}"
    );
    assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
    assert!(text.contains("In-Reply-To: <q1@n>"), "{text}");
    let body = postroom::pipeline::parse::body_text(&answer.data)
        .unwrap()
        .replace("\r\n", "\n");
    assert!(
        body.contains("Dear Dora,\nplease answer one of our mails (in)."),
        "{body}"
    );

    let s = open_store(p);
    let r = s.read().unwrap();
    // One conversation, which the tagged reply joined.
    let convs = r.conversations().unwrap();
    assert_eq!(convs.len(), 1, "{convs:#?}");
    assert_eq!(convs[0].message_count, 2);
    // Refused mail: raw bytes kept, no message made of them.
    let mut fetched = Vec::new();
    r.raws_rev(|id, rec| {
        if rec.sources.iter().any(|s| s.starts_with("imap:in/")) {
            fetched.push(id);
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let mut refused = 0;
    for id in fetched {
        let bytes = r.raw_bytes(id).unwrap().unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.contains("question") || text.contains("Out of office") {
            assert_eq!(r.message_of_raw(id).unwrap(), None, "{text}");
            refused += 1;
        }
    }
    assert_eq!(refused, 3);
    assert_eq!(r.pending_count().unwrap(), 0, "all processed");
    let log = r.log(200).unwrap();
    for (who, subject) in [
        ("dora@new.example", "A new question"),
        ("erik@away.example", "Out of office"),
        ("dora@new.example", "A second question"),
    ] {
        assert!(
            log.iter().any(|l| l.level == Level::Notice
                && l.text.contains(who)
                && l.text.contains(subject)
                && l.text.contains("refused")
                && l.text.contains("no conversation")),
            "no notice for {who} {subject}: {log:#?}"
        );
    }
    assert!(
        log.iter().any(|l| l
            .text
            .contains("no answer to the refused message from Erik")
            && l.text.contains("automatic")),
        "{log:#?}"
    );
    drop(r);
    drop(s);

    // "drop": refused mail is only logged.
    run_ok(p, &["account", "edit", "in", "--refused", "drop"]);
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &mail("Fred <fred@else.example>", "Hello there", "h1@e", ""),
    );
    run_ok(p, &["fetch", "in"]);
    run_ok(p, &["outbox", "--send"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.received().len(), 1, "nothing more was sent");
    let s = open_store(p);
    let r = s.read().unwrap();
    assert_eq!(r.conversations().unwrap().len(), 1);
    let log = r.log(200).unwrap();
    assert!(
        log.iter().any(|l| l.level == Level::Notice
            && l.text.contains("fred@else.example")
            && l.text.contains("Hello there")
            && l.text.contains("refused")),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.text.contains("answer to mail refused")
                && l.text.contains("fred@else.example")),
        "{log:#?}"
    );
}

#[test]
fn unknown_senders_become_customers_with_their_domain_and_new_conversations_get_the_defaults() {
    let d = Dovecot::start();
    d.add_user("desk", DPASS);
    let data = tmp();
    let p = data.path();
    let pw = write_file(p, "pw", format!("{PW}\n").as_bytes());
    run_ok(
        p,
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
    setup(
        p,
        &d,
        None,
        &[
            "--create-customers",
            "yes",
            "--default-assignee",
            "boss",
            "--default-priority",
            "high",
            "--default-tags",
            "web, new",
        ],
    );
    let list = run_ok(p, &["account", "list"]);
    assert!(
        list.contains(
            "creating conversations: create customers; assign to boss; priority high; tags web, new"
        ),
        "{list}"
    );
    // A default assignee who does not exist is refused, with the reason.
    let out = crate::support::run(
        p,
        &["account", "edit", "in", "--default-assignee", "nobody"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("default_assignee: There is no user \"nobody\"."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &mail(
            "Zoe Brown <Zoe.Brown@Shop.Example>",
            "Broken lamp",
            "l1@s",
            "",
        ),
    );
    d.append(
        "desk",
        DPASS,
        "INBOX",
        &mail("Support <support@example.org>", "Our own note", "own@x", ""),
    );
    run_ok(p, &["fetch", "in"]);
    let conv = {
        let s = open_store(p);
        let r = s.read().unwrap();
        let c = r
            .customer("zoe.brown@shop.example")
            .unwrap()
            .expect("a customer record");
        assert_eq!(
            (c.email.as_str(), c.name.as_str(), c.company.as_str()),
            ("zoe.brown@shop.example", "Zoe Brown", "shop.example")
        );
        assert_eq!(
            r.customer("support@example.org").unwrap(),
            None,
            "never for our own addresses"
        );
        let convs = r.conversations().unwrap();
        let lamp = convs.iter().find(|c| c.subject == "Broken lamp").unwrap();
        let boss = r.user_by_login("boss").unwrap().unwrap();
        assert_eq!(lamp.assignee, Some(boss.id));
        assert_eq!(lamp.priority, Priority::High);
        assert_eq!(lamp.tags, ["web", "new"]);
        lamp.id.0
    };
    let mut serve = Serve::start_with(p, &["--no-https", "--no-mdns"], &[]);
    let ready = serve.wait_for("ready", Duration::from_secs(60));
    let s = login(web_port(&ready), "boss", PW);
    let (status, _, page) = s.get("/customer?email=zoe.brown%40shop.example");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"customer-company\">Company: shop.example<"),
        "{page}"
    );
    let (status, _, page) = s.get(&format!("/c/{conv}"));
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"customer-company\">(shop.example)<"),
        "{page}"
    );
    serve.stop();
}

// ---------------------------------------------------------------------------------------
// Raw records with an account's source, through the real pipeline, times injected

const T0: i64 = 1_793_000_000_000;

fn account(id: u64, name: &str, creation: Creation) -> AccountRecord {
    AccountRecord {
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
        trusted: false,
        login: postroom::model::LoginMethod::Auto,
        authzid: String::new(),
        validity: postroom::model::Validity::Valid,
        comment: String::new(),
        creation,
    }
}

fn user(id: u64, login: &str, role: Role, mailboxes: Vec<MailboxId>) -> UserRecord {
    UserRecord {
        id: UserId(id),
        login: login.into(),
        name: login.into(),
        email: format!("{login}@office.example"),
        role,
        password_hash: String::new(),
        mailboxes,
        disabled: false,
        created: 0,
        password_changed: 0,
        language: String::new(),
        signature: String::new(),
    }
}

fn store(accounts: &[AccountRecord]) -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("db.redb"), &StoreOptions::default()).unwrap();
    s.write(|tx| {
        let mut support = MailboxRecord::named(MailboxId(1), "Support");
        support.address = Some("support@office.example".into());
        tx.put_mailbox(&support)?;
        tx.put_mailbox(&MailboxRecord::named(MailboxId(2), "Sales"))?;
        tx.put_user(&user(1, "anna", Role::Agent, vec![MailboxId(1)]))?;
        tx.put_user(&user(2, "ben", Role::Agent, vec![MailboxId(1)]))?;
        for a in accounts {
            tx.put_account(a)?;
        }
        Ok::<_, postroom::store::StoreError>(())
    })
    .unwrap();
    (t, s)
}

/// Commits `bytes` as fetched by `account` at `at` (unix ms) and runs the pipeline then.
fn deliver_at(s: &Store, account: &str, uid: u32, bytes: &[u8], at: i64) -> Summary {
    s.commit_raws(
        &[NewRaw {
            bytes,
            hash: content_hash(bytes),
            source: format!("imap:{account}/INBOX/uidvalidity 1/uid {uid}"),
            mailbox: MailboxId(1),
        }],
        at,
    )
    .unwrap();
    let settings = Settings::load(&s.read().unwrap()).unwrap();
    pipeline::process_pending(s, &settings, &FixedClock(at)).unwrap()
}

fn convs(s: &Store) -> Vec<ConversationRecord> {
    s.read().unwrap().conversations().unwrap()
}

#[test]
fn defaults_apply_to_new_conversations_and_a_filter_overrides_them() {
    let (_t, s) = store(&[account(
        1,
        "shop",
        Creation {
            default_assignee: Some(UserId(1)),
            default_priority: Priority::Low,
            default_tags: vec!["shop".into()],
            ..Creation::default()
        },
    )]);
    s.write(|tx| {
        tx.put_filter(&Filter {
            id: 1,
            name: "urgent orders".into(),
            enabled: true,
            stop: false,
            conditions: vec![Condition {
                field: Field::Header("Subject".into()),
                pattern: "urgent".into(),
                negate: false,
                case_sensitive: false,
            }],
            actions: vec![
                Action::SetPriority(Priority::Urgent),
                Action::Assign(UserId(2)),
                Action::AddTags(vec!["rush".into()]),
            ],
        })
    })
    .unwrap();
    deliver_at(
        &s,
        "shop",
        1,
        &mail("Carla <carla@c.example>", "Plain order", "p1@c", ""),
        T0,
    );
    deliver_at(
        &s,
        "shop",
        2,
        &mail("Carla <carla@c.example>", "Urgent order", "u1@c", ""),
        T0 + 1000,
    );
    let all = convs(&s);
    let plain = all.iter().find(|c| c.subject == "Plain order").unwrap();
    assert_eq!(
        (plain.assignee, plain.priority, plain.tags.clone()),
        (Some(UserId(1)), Priority::Low, vec!["shop".to_string()])
    );
    let urgent = all.iter().find(|c| c.subject == "Urgent order").unwrap();
    assert_eq!(
        (urgent.assignee, urgent.priority, urgent.tags.clone()),
        (
            Some(UserId(2)),
            Priority::Urgent,
            vec!["shop".to_string(), "rush".to_string()]
        ),
        "the filter runs after the defaults"
    );
    // Customers are made only when the account says so.
    assert_eq!(s.read().unwrap().customer("carla@c.example").unwrap(), None);
}

#[test]
fn bundling_joins_same_sender_and_subject_within_the_poll_interval_and_not_after() {
    let bundling = Creation {
        bundle: true,
        ..Creation::default()
    };
    let (_t, s) = store(&[
        account(1, "shop", bundling),
        account(2, "plain", Creation::default()),
    ]);
    let carla = "Carla <carla@c.example>";
    let first = deliver_at(&s, "shop", 1, &mail(carla, "Order 17", "b1@c", ""), T0);
    assert_eq!(first.new_conversations, 1);
    // 30 s later, another case of the address, a reply prefix and spaces: joins.
    let joined = deliver_at(
        &s,
        "shop",
        2,
        &mail("Carla <CARLA@C.example>", "  AW: order 17 ", "b2@c", ""),
        T0 + 30_000,
    );
    assert_eq!((joined.new_conversations, joined.joined), (0, 1));
    // Another subject, or another sender, within the interval: new conversations.
    let other_subject = deliver_at(
        &s,
        "shop",
        3,
        &mail(carla, "Order 18", "b3@c", ""),
        T0 + 40_000,
    );
    assert_eq!(other_subject.new_conversations, 1);
    let other_sender = deliver_at(
        &s,
        "shop",
        4,
        &mail("Dora <dora@d.example>", "Order 17", "b4@d", ""),
        T0 + 45_000,
    );
    assert_eq!(other_sender.new_conversations, 1);
    // 61 s after the conversation started: the interval is over.
    let late = deliver_at(
        &s,
        "shop",
        5,
        &mail(carla, "Order 17", "b5@c", ""),
        T0 + 61_000,
    );
    assert_eq!(late.new_conversations, 1);
    // An account that does not bundle: same sender and subject within seconds, two.
    let a = deliver_at(&s, "plain", 1, &mail(carla, "Invoice 9", "i1@c", ""), T0);
    let b = deliver_at(
        &s,
        "plain",
        2,
        &mail(carla, "Invoice 9", "i2@c", ""),
        T0 + 1000,
    );
    assert_eq!((a.new_conversations, b.new_conversations), (1, 1));
    let all = convs(&s);
    let order17: Vec<&ConversationRecord> = all
        .iter()
        .filter(|c| {
            c.subject == "Order 17"
                && c.customer
                    .as_ref()
                    .unwrap()
                    .email
                    .eq_ignore_ascii_case("carla@c.example")
        })
        .collect();
    assert_eq!(order17.len(), 2, "{all:#?}");
    let counts: Vec<u32> = order17.iter().map(|c| c.message_count).collect();
    assert!(counts.contains(&2) && counts.contains(&1), "{counts:?}");
    let log = s.read().unwrap().log(100).unwrap();
    assert!(
        log.iter().any(|l| l
            .text
            .contains("same sender and subject within the poll interval")),
        "{log:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// The account form

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

#[test]
fn the_account_form_saves_and_shows_the_creation_options_and_refuses_an_assignee_who_cannot_see_the_mailbox()
 {
    let o = office(None);
    let s = login(o.port, "boss", PW);
    let (status, _, page) = s.get("/admin/accounts/new");
    assert_eq!(status, 200);
    assert!(page.contains("Creating conversations"), "{page}");
    assert!(
        page.contains("{{ subject }}, {{ customer_name }}, {{ customer_address }}"),
        "the template names show as typed: {page}"
    );
    // The mailbox Support (sam sees only Sales).
    let at = page.find(">Support</option>").unwrap();
    let support = page[..at]
        .rsplit("<option value=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let fields = |assignee: &'static str, body: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("do", "save".into()),
            ("name", "shop".into()),
            ("protocol", "imap".into()),
            ("host", "127.0.0.1".into()),
            ("port", "9".into()),
            ("security", "none".into()),
            ("username", "office".into()),
            ("password", "pw".into()),
            ("login", "auto".into()),
            ("folders", "INBOX".into()),
            ("after", "keep".into()),
            ("poll_secs", "120".into()),
            ("max_mb", "25".into()),
            ("mailbox", support.clone()),
            ("dispatch", "mailbox".into()),
            ("only_new", "all".into()),
            ("validity", "valid".into()),
            ("enabled", "1".into()),
            ("no_new", "1".into()),
            ("refused", "answer".into()),
            ("refused_subject", "Only replies: {{ subject }}".into()),
            ("refused_body", body.into()),
            ("create_customers", "1".into()),
            ("default_assignee", assignee.into()),
            ("default_priority", "urgent".into()),
            ("default_tags", "web, shop".into()),
            ("bundle", "1".into()),
        ]
    };
    let post = |f: &[(&'static str, String)]| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.post("/admin/accounts/new", &f)
    };
    let (status, _, page) = post(&fields("sam", "{% if %}"));
    assert_eq!(status, 400, "{page}");
    let err = element(&page, "err-default_assignee");
    assert!(
        err.contains("sam may not see the mailbox Support"),
        "{err:?}"
    );
    assert!(
        element(&page, "err-refused_body").contains("The template does not work"),
        "{page}"
    );
    // In French too.
    {
        let f = fields("sam", "{% if %}");
        let mut f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f.insert(0, ("csrf", s.csrf.as_str()));
        let cookie = format!("postroom_session={}", s.cookie);
        let origin = s.origin();
        let (status, _, fr) = crate::support::request(
            s.port,
            "POST",
            "/admin/accounts/new",
            &[
                ("Cookie", &cookie),
                ("Origin", &origin),
                ("Accept-Language", "fr"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &crate::webui::form(&f),
        );
        assert_eq!(status, 400);
        let err = element(&fr, "err-default_assignee");
        assert!(
            err.contains("sam ne peut pas voir la boîte Support"),
            "{err:?}"
        );
        assert!(fr.contains("Création des conversations"));
    }
    // Next to its field.
    let input_at = page.find("id=\"f-default_assignee\"").unwrap();
    let err_at = page.find("id=\"err-default_assignee\"").unwrap();
    assert!(err_at > input_at && !page[input_at..err_at].contains("</label>"));
    let (_, _, list) = s.get("/admin/accounts");
    assert!(!list.contains(">shop</a>"), "nothing saved");
    // Saved with an assignee who sees every mailbox.
    let (status, head, body) = post(&fields("boss", "Hello {{ customer_name }}"));
    assert_eq!(status, 303, "{head}\n{body}");
    let (_, _, list) = s.get("/admin/accounts");
    let at = list.find(">shop</a>").unwrap();
    let href = list[..at].rfind("/admin/accounts/").unwrap();
    let id: String = list[href + "/admin/accounts/".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (status, _, page) = s.get(&format!("/admin/accounts/{id}"));
    assert_eq!(status, 200);
    for checked in ["no_new", "create_customers", "bundle"] {
        let at = page.find(&format!("id=\"f-{checked}\"")).unwrap();
        assert!(
            page[at..at + 60].contains("checked"),
            "{checked}: {}",
            &page[at..at + 60]
        );
    }
    assert!(
        page.contains("<option value=\"answer\" selected>"),
        "{page}"
    );
    assert!(page.contains("<option value=\"boss\" selected>"), "{page}");
    assert!(
        page.contains("<option value=\"urgent\" selected>"),
        "{page}"
    );
    assert!(page.contains("value=\"web, shop\""), "{page}");
    assert!(
        page.contains("Hello {{ customer_name }}</textarea>"),
        "{page}"
    );
    o.serve.stop();
}

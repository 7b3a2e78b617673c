//! The store's file format: a database written by schema version 1 (committed under
//! `tests/fixtures/store-v1.redb`) must open, migrate and read correctly in every later
//! version.

use crate::support::tmp;
use postroom::config::Settings;
use postroom::model::{ConvId, FixedClock, MailboxId, RawId, Status};
use postroom::store::schema::SCHEMA_VERSION;
use postroom::store::{NewRaw, Store, StoreOptions, content_hash};
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the v1 fixture holds: the `in-order` threading case, imported in name order,
/// and the tag prefix set to `Ticket#`.
fn fill_fixture(data: &Path) {
    let clock = FixedClock(1_795_000_000_000);
    let dir = postroom::app::DataDir::open(data, &clock).unwrap();
    dir.store
        .write(|tx| {
            postroom::config::set(tx, "subject_tag_prefix", "Ticket#")
                .map_err(postroom::app::AppError::Setting)
        })
        .unwrap();
    let settings = dir.settings().unwrap();
    let case = fixture_dir().join("threading/in-order");
    postroom::import::import(
        &dir.store,
        &[case],
        MailboxId(1),
        &settings,
        &clock,
        &mut |_| {},
    )
    .unwrap();
    // Since version 3: an SMTP server and a mailbox with addresses (format 2).
    let keys = dir.keyring().unwrap();
    dir.store
        .write(|tx| {
            let relay = postroom::smtp::servers::add(
                tx,
                &keys,
                &postroom::smtp::servers::SmtpInput {
                    name: Some("relay".into()),
                    host: Some("smtp.example.org".into()),
                    auth: Some("none".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            postroom::mailboxes::add(
                tx,
                &postroom::mailboxes::MailboxInput {
                    name: Some("Support".into()),
                    address: Some("support@example.org".into()),
                    add_aliases: vec!["help@example.org".into()],
                    smtp: Some(relay.name),
                    ..Default::default()
                },
            )
            .unwrap();
            Ok::<_, postroom::store::StoreError>(())
        })
        .unwrap();
    // Since version 4: an agent who sees Support, assigned to conversation 1, who read it.
    dir.store
        .write(|tx| {
            let support = postroom::mailboxes::find(tx, "Support").unwrap();
            let u = postroom::users::add(
                tx,
                &postroom::users::UserInput {
                    login: Some("ann".into()),
                    name: Some("Ann Agent".into()),
                    role: Some("agent".into()),
                    mailboxes: Some(vec![support.name]),
                    password: Some(postroom::secret::Secret::new("fixture password")),
                    ..Default::default()
                },
                1_795_000_000,
            )
            .unwrap();
            let mut c = tx.conversation(ConvId(1))?.unwrap();
            c.assignee = Some(u.id);
            tx.put_conversation(&c)?;
            tx.set_read(u.id, ConvId(1), c.last_activity)?;
            Ok::<_, postroom::store::StoreError>(())
        })
        .unwrap(); // Since version 5: the administration's records. A trusted account with a login
    // method and creation options, a filter, a permission, an invitation, notification
    // settings, a customer, and a conversation with priority, tags and a field.
    dir.store
        .write(|tx| {
            use postroom::model::{
                AccountId, AccountRecord, AfterFetch, Creation, CustomerRecord, InviteRecord,
                LoginMethod, NotifyPrefs, Priority, Protocol, Security, Validity,
            };
            let support = postroom::mailboxes::find(tx, "Support").unwrap();
            let ann = tx.user_by_login("ann")?.unwrap();
            let id = AccountId(tx.next_id("account")?);
            tx.put_account(&AccountRecord {
                id,
                name: "inside".into(),
                protocol: Protocol::Imap,
                host: "imap.example.org".into(),
                port: 993,
                security: Security::Tls,
                username: "OFFICE\\ann\\support".into(),
                password_sealed: Vec::new(),
                folders: vec!["INBOX".into()],
                after: AfterFetch::Keep,
                mailbox: support.id,
                enabled: false,
                only_new: true,
                pinned_cert: None,
                poll_secs: 120,
                max_message_bytes: 10 << 20,
                dispatch_by_address: false,
                trusted: true,
                login: LoginMethod::Plain,
                authzid: "support".into(),
                validity: Validity::TemporarilyInvalid,
                comment: "the shared mailbox".into(),
                creation: Creation {
                    no_new: true,
                    answer_refused: true,
                    refused_subject: "Please use your ticket".into(),
                    refused_body: "Write to us with [Ticket#{{ tag }}].".into(),
                    create_customers: true,
                    default_assignee: Some(ann.id),
                    default_priority: Priority::High,
                    default_tags: vec!["vip".into()],
                    bundle: true,
                },
            })?;
            tx.put_filter(&postroom::filters::Filter {
                id: 0,
                name: "10 invoices".into(),
                enabled: true,
                stop: true,
                conditions: vec![postroom::filters::Condition {
                    field: postroom::filters::Field::Header("Subject".into()),
                    pattern: "invoice".into(),
                    negate: false,
                    case_sensitive: false,
                }],
                actions: vec![postroom::filters::Action::SetPriority(Priority::Urgent)],
            })?;
            tx.set_mailbox_perm(support.id, ann.id, 0b101)?;
            tx.put_invite(
                &[7; 32],
                &InviteRecord {
                    user: ann.id,
                    created: 1_795_000_000,
                    expires: 1_795_604_800,
                    reset: true,
                },
            )?;
            tx.put_notify_prefs(
                ann.id,
                &NotifyPrefs {
                    new_conversation: true,
                    customer_reply: false,
                    assigned: true,
                    mentioned: false,
                },
            )?;
            tx.put_customer(&CustomerRecord {
                email: "anna@customer.example".into(),
                name: "Anna".into(),
                company: "customer.example".into(),
                created: 1_795_000_000_000,
            })?;
            let mut c = tx.conversation(ConvId(1))?.unwrap();
            c.priority = Priority::High;
            c.tags = vec!["printer".into()];
            c.fields.insert("Contract".into(), "A-17".into());
            tx.put_conversation(&c)?;
            Ok::<_, postroom::store::StoreError>(())
        })
        .unwrap();
}

#[test]
fn every_schema_fixture_still_opens_and_reads() {
    for v in 1..=SCHEMA_VERSION {
        fixture_opens_and_reads(v);
    }
}

fn fixture_opens_and_reads(version: u32) {
    let t = tmp();
    let copy = t.path().join("store.redb");
    let name = format!("store-v{version}.redb");
    std::fs::copy(fixture_dir().join(&name), &copy)
        .unwrap_or_else(|e| panic!("tests/fixtures/{name} is committed: {e}"));
    let store = Store::open(&copy, &StoreOptions::default()).unwrap();
    if version >= 3 {
        let r = store.read().unwrap();
        let smtp = r.smtp_servers().unwrap();
        assert_eq!(smtp[0].name, "relay");
        let support = r
            .mailboxes()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "Support")
            .unwrap();
        assert_eq!(support.address.as_deref(), Some("support@example.org"));
        assert_eq!(support.aliases[0].address, "help@example.org");
        assert_eq!(support.smtp, Some(smtp[0].id));
    }
    if version >= 4 {
        let r = store.read().unwrap();
        let ann = r.user_by_login("ANN").unwrap().expect("the fixture's user");
        assert_eq!(ann.name, "Ann Agent");
        assert!(postroom::users::verify_password(
            &ann.password_hash,
            &postroom::secret::Secret::new("fixture password")
        ));
        let c = r.conversation(ConvId(1)).unwrap().unwrap();
        assert_eq!(c.assignee, Some(ann.id));
        assert_eq!(
            r.read_mark(ann.id, ConvId(1)).unwrap(),
            Some(c.last_activity)
        );
    }
    if version >= 5 {
        use postroom::model::{LoginMethod, Priority, Validity};
        let r = store.read().unwrap();
        let ann = r.user_by_login("ann").unwrap().unwrap();
        let inside = r
            .accounts()
            .unwrap()
            .into_iter()
            .find(|a| a.name == "inside")
            .expect("the fixture's account");
        assert!(inside.trusted);
        assert_eq!(inside.login, LoginMethod::Plain);
        assert_eq!(inside.authzid, "support");
        assert_eq!(inside.validity, Validity::TemporarilyInvalid);
        assert_eq!(inside.username, "OFFICE\\ann\\support");
        assert!(inside.creation.no_new && inside.creation.bundle);
        assert_eq!(inside.creation.default_assignee, Some(ann.id));
        assert_eq!(inside.creation.default_tags, vec!["vip".to_string()]);
        let filters = r.filters().unwrap();
        assert_eq!(filters[0].name, "10 invoices");
        assert!(filters[0].stop);
        let support = r
            .mailboxes()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "Support")
            .unwrap();
        assert_eq!(r.mailbox_perms(support.id).unwrap(), vec![(ann.id, 0b101)]);
        assert!(r.invite(&[7; 32]).unwrap().unwrap().reset);
        let prefs = r.notify_prefs(ann.id).unwrap();
        assert!(prefs.new_conversation && !prefs.customer_reply);
        assert_eq!(
            r.customer("anna@customer.example")
                .unwrap()
                .unwrap()
                .company,
            "customer.example"
        );
        let c = r.conversation(ConvId(1)).unwrap().unwrap();
        assert_eq!(c.priority, Priority::High);
        assert_eq!(c.tags, vec!["printer".to_string()]);
        assert_eq!(c.fields.get("Contract").map(String::as_str), Some("A-17"));
    }
    let r = store.read().unwrap();
    assert_eq!(
        r.schema_version().unwrap(),
        Some(SCHEMA_VERSION),
        "migrated to the current version"
    );
    assert_eq!(
        r.setting("subject_tag_prefix").unwrap().as_deref(),
        Some("Ticket#")
    );
    let convs = r.conversations().unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[0].subject, "Printer on floor 2 is jammed");
    assert_eq!(convs[0].message_count, 3);
    assert_eq!(convs[0].status, Status::Active);
    assert_eq!(r.conversation_messages(ConvId(1)).unwrap().len(), 3);
    assert_eq!(r.mailboxes().unwrap()[0].name, "Inbox");
    // Version 4 indexed every older conversation for the inbox and its customer.
    let page = r.inbox_page(MailboxId(1), 0, 0, 10).unwrap();
    assert_eq!(page.total, 2, "both active conversations are listed");
    assert_eq!(page.convs.len(), 2);
    assert_eq!(
        r.inbox_count(MailboxId(1), 0).unwrap(),
        2,
        "the count index agrees"
    );
    let customer = convs[0].customer.as_ref().unwrap().email.to_uppercase();
    assert!(
        r.customer_conversations(&customer)
            .unwrap()
            .contains(&ConvId(1)),
        "customer index, case-insensitive"
    );
    // Raw bytes come back exactly as received.
    let original = std::fs::read(fixture_dir().join("threading/in-order/01-question.eml")).unwrap();
    assert_eq!(r.raw_bytes(RawId(1)).unwrap().unwrap(), original);
    assert!(!r.log(100).unwrap().is_empty());
    drop(r);
    // And it stays writable: a new reply threads onto the old data.
    let reply = b"From: Anna <anna@customer.example>\nSubject: Re: still jammed\nMessage-ID: <q4@customer.example>\nIn-Reply-To: <q3@customer.example>\n\nx\n";
    let raw = [NewRaw {
        bytes: reply,
        hash: content_hash(reply),
        source: "test".into(),
        mailbox: MailboxId(1),
    }];
    store.commit_raws(&raw, 1).unwrap();
    let settings = Settings::load(&store.read().unwrap()).unwrap();
    postroom::pipeline::process_pending(&store, &settings, &FixedClock(1)).unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .conversation_messages(ConvId(1))
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn a_store_from_a_newer_version_is_refused_with_a_clear_message() {
    let t = tmp();
    let path = t.path().join("new.redb");
    {
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        store
            .write(|tx| tx.set_meta("schema_version", &(SCHEMA_VERSION + 1).to_le_bytes()))
            .unwrap();
    }
    let err = Store::open(&path, &StoreOptions::default())
        .err()
        .expect("must refuse")
        .to_string();
    assert!(
        err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
        "{err}"
    );
    assert!(err.contains("newer postroom"), "{err}");
}

/// Writes `tests/fixtures/store-vN.redb` for the current schema version if it does not
/// exist yet. Run once when a new schema version is introduced:
/// `cargo test --test it -- --ignored write_store_fixture`.
#[test]
#[ignore = "writes a fixture file; run by hand when the schema version changes"]
fn write_store_fixture() {
    let target = fixture_dir().join(format!("store-v{SCHEMA_VERSION}.redb"));
    assert!(
        !target.exists(),
        "{} exists; fixtures are never rewritten",
        target.display()
    );
    let t = tmp();
    fill_fixture(t.path());
    std::fs::copy(t.path().join(postroom::app::STORE_FILE), &target).unwrap();
}

#[test]
fn the_communication_log_keeps_only_the_configured_days() {
    let t = tmp();
    let store = Store::open(&t.path().join("s.redb"), &StoreOptions::default()).unwrap();
    let day = 86_400_000i64;
    let entry = |at: i64, text: &str| postroom::model::LogEntry {
        at,
        level: postroom::model::Level::Info,
        component: "test".into(),
        raw: None,
        conv: None,
        text: text.into(),
    };
    store
        .write(|tx| {
            tx.log(&entry(day, "old"))?;
            tx.log(&entry(5 * day, "older than a week"))?;
            tx.log(&entry(20 * day, "recent"))?;
            postroom::config::set(tx, "comm_log_retention_days", "7").map_err(|_| {
                postroom::store::StoreError::NotFound {
                    what: "setting",
                    id: 0,
                }
            })
        })
        .unwrap();
    let removed = postroom::app::prune_log(&store, &FixedClock(25 * day)).unwrap();
    assert_eq!(removed, 2);
    let left: Vec<String> = store
        .read()
        .unwrap()
        .log(10)
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(left, vec!["recent".to_string()]);
}

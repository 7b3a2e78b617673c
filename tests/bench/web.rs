//! Web UI benchmark: server time to render the inbox and a conversation of 10 messages
//! with 10,000 and 100,000 conversations in the store (median and p99 of the handler,
//! in-process, no network), and the RSS of `postroom serve` idle on the 100,000 store.
//! Prints figures; asserts nothing. FreeScout's published figure (48 ms for an inbox of
//! 8,000 conversations) is the peer; its PHP/MySQL stack cannot run here.
//!
//! Then the administration's lists with hundreds of entries (300 accounts, mailboxes,
//! users and filters; 100,000 communication-log entries): server time of each page.
//!
//! `cargo bench --bench web` (POSTROOM_BENCH_SIZES=10000,100000 to change the sizes).

use postroom::config::Settings;
use postroom::model::{
    Addr, ConvId, ConversationRecord, FixedClock, MailboxId, Status, SystemClock, UserId,
};
use postroom::store::{NewRaw, Store, content_hash};
use postroom::web::{Peer, Req, WebCtx};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Fills the store with `n` conversations: 4 % active (half of them assigned), 1 %
/// pending, 2 % spam, the rest closed, over three mailboxes.
fn populate(store: &Store, n: u64, admin: UserId) -> Res<()> {
    let base = 1_700_000_000i64;
    let mut next = 0u64;
    while next < n {
        let end = (next + 5000).min(n);
        store.write(|tx| {
            for i in next..end {
                let id = ConvId(tx.next_id("conv")?);
                let status = match i % 100 {
                    0..=3 => Status::Active,
                    4 => Status::Pending,
                    5..=6 => Status::Spam,
                    _ => Status::Closed,
                };
                tx.put_conversation(&ConversationRecord {
                    id,
                    mailbox: MailboxId(1 + i % 3),
                    status,
                    subject: format!("Question number {i} about the printer on floor {}", i % 7),
                    customer: Some(Addr {
                        name: format!("Customer {}", i % 5000),
                        email: format!("c{}@example.net", i % 5000),
                    }),
                    created: base + i as i64 * 60,
                    last_activity: base + i as i64 * 60 + 30,
                    message_count: 1 + (i % 4) as u32,
                    merged_into: None,
                    assignee: (i % 2 == 0 && status == Status::Active).then_some(admin),
                    followers: Vec::new(),
                    priority: Default::default(),
                    tags: Vec::new(),
                    fields: Default::default(),
                })?;
            }
            Ok::<_, postroom::store::StoreError>(())
        })?;
        next = end;
    }
    Ok(())
}

/// A thread of 10 messages (question, replies, an HTML one) in mailbox 1.
fn thread(store: &Store) -> Res<ConvId> {
    let mut raws = Vec::new();
    for i in 0..10 {
        let irt = if i == 0 {
            String::new()
        } else {
            format!("In-Reply-To: <t{}@example.net>\r\n", i - 1)
        };
        let body = if i % 3 == 2 {
            "Content-Type: text/html\r\n\r\n<p>Hello <b>again</b>, see <a href=\"https://example.com\">this</a>.</p>\r\n".to_owned()
        } else {
            format!(
                "Content-Type: text/plain\r\n\r\nMessage {i} of the thread.\r\n> quoted line\r\n"
            )
        };
        raws.push(format!(
            "From: Dana <dana@example.net>\r\nTo: support@example.org\r\nSubject: Re: The long thread\r\nMessage-ID: <t{i}@example.net>\r\n{irt}Date: Mon, 2 Nov 2026 08:{i:02}:00 +0000\r\nMIME-Version: 1.0\r\n{body}"
        ));
    }
    let batch: Vec<NewRaw> = raws
        .iter()
        .map(|r| NewRaw {
            bytes: r.as_bytes(),
            hash: content_hash(r.as_bytes()),
            source: "bench".into(),
            mailbox: MailboxId(1),
        })
        .collect();
    store.commit_raws(&batch, 1)?;
    let settings = Settings::load(&store.read()?)?;
    postroom::pipeline::process_pending(store, &settings, &FixedClock(1_800_000_000_000))?;
    let r = store.read()?;
    let id = r
        .conversations()?
        .into_iter()
        .find(|c| c.message_count == 10)
        .map(|c| c.id)
        .ok_or("the thread was not stored as one conversation of 10")?;
    Ok(id)
}

fn req(path: &str, cookie: &str) -> Req {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Req {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![
            ("host".into(), "127.0.0.1:8080".into()),
            ("cookie".into(), format!("postroom_session={cookie}")),
        ],
        body: Vec::new(),
        peer: Peer {
            addr: None,
            https: false,
        },
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = v.get(v.len() / 2).copied().unwrap_or_default();
    let p99 = v
        .get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    (ms(median), ms(p99))
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() -> Res<()> {
    let sizes: Vec<u64> = std::env::var("POSTROOM_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds = 200;
    println!(
        "web render benchmark: {rounds} requests each, handler time in-process (median / p99)"
    );
    println!(
        "{:>8}  {:>22}  {:>22}  {:>22}  {:>22}",
        "convs",
        "inbox (unassigned)",
        "inbox (mine)",
        "inbox (closed, p.10)",
        "conversation (10 msgs)"
    );
    let mut last_dir = None;
    for n in sizes {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_owned();
        let token;
        let conv;
        {
            let opened = postroom::app::DataDir::open(&data, &SystemClock)?;
            let store = opened.store.clone();
            store.write(|tx| {
                for name in ["Sales", "Billing"] {
                    postroom::mailboxes::add(
                        tx,
                        &postroom::mailboxes::MailboxInput {
                            name: Some(name.into()),
                            ..Default::default()
                        },
                    )?;
                }
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
            let admin = store.write(|tx| {
                postroom::users::add(
                    tx,
                    &postroom::users::UserInput {
                        login: Some("admin".into()),
                        role: Some("admin".into()),
                        password: Some(postroom::secret::Secret::new("benchmark password")),
                        ..Default::default()
                    },
                    1,
                )
                .map_err(Box::<dyn std::error::Error>::from)
            })?;
            let t0 = Instant::now();
            populate(&store, n, admin.id)?;
            conv = thread(&store)?;
            eprintln!(
                "  {n} conversations stored in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            token =
                store.write(|tx| postroom::users::start_session(tx, admin.id, 1_900_000_000))?;
            let ctx = WebCtx::new(store.clone());
            // The session must look fresh to the clock the handlers use.
            let mut ctx = ctx;
            ctx.clock = Arc::new(FixedClock(1_900_000_000_000));
            let mut row = vec![format!("{n:>8}")];
            for path in [
                "/inbox".to_owned(),
                "/inbox?folder=mine".to_owned(),
                "/inbox?folder=closed&page=10".to_owned(),
                format!("/c/{conv}"),
            ] {
                let mut times = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    let r = req(&path, &token);
                    let t = Instant::now();
                    let reply = postroom::web::pages::route(&ctx, &r);
                    times.push(t.elapsed());
                    if reply.status != 200 {
                        return Err(format!("{path}: status {}", reply.status).into());
                    }
                }
                let (med, p99) = stats(times);
                row.push(format!("{:>22}", format!("{med:.2} / {p99:.2} ms")));
            }
            println!("{}", row.join("  "));
        }
        last_dir = Some(dir);
    }
    println!(
        "targets: inbox < 5 ms median at 10,000, < 20 ms at 100,000; FreeScout 48 ms at 8,000"
    );
    admin_lists(rounds)?;
    // Idle RSS of the service on the largest store.
    if let Some(dir) = last_dir {
        let bin = postroom_bin();
        let mut child = std::process::Command::new(&bin)
            .arg("--data")
            .arg(dir.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-https",
                "--no-mdns",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_secs(5));
        let idle = rss_kb(child.id());
        let _ = std::process::Command::new("kill")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        println!(
            "postroom serve idle on the largest store: RSS {} (target < 30 MB)",
            idle.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
                .unwrap_or_else(|| "unknown".into())
        );
    }
    Ok(())
}

/// The admin pages over a store with 300 of everything and 100,000 log entries.
fn admin_lists(rounds: usize) -> Res<()> {
    use postroom::model::{
        AccountId, AccountRecord, AfterFetch, Level, LogEntry, LoginMethod, Protocol, Role,
        Security, UserRecord, Validity,
    };
    const N: u64 = 300;
    let dir = tempfile::tempdir()?;
    let opened = postroom::app::DataDir::open(dir.path(), &SystemClock)?;
    let store = opened.store.clone();
    let t0 = Instant::now();
    let admin = store.write(|tx| {
        for i in 0..N {
            postroom::mailboxes::add(
                tx,
                &postroom::mailboxes::MailboxInput {
                    name: Some(format!("Mailbox {i}")),
                    address: Some(format!("box{i}@example.org")),
                    ..Default::default()
                },
            )?;
        }
        for i in 0..N {
            let id = tx.next_id("account")?;
            tx.put_account(&AccountRecord {
                id: AccountId(id),
                name: format!("account-{i}"),
                protocol: if i % 3 == 0 {
                    Protocol::Pop3
                } else {
                    Protocol::Imap
                },
                host: format!("mail{}.example.org", i % 17),
                port: 993,
                security: Security::Tls,
                username: format!("user{i}"),
                password_sealed: Vec::new(),
                folders: vec!["INBOX".into()],
                after: AfterFetch::Keep,
                mailbox: MailboxId(1 + i % N),
                enabled: i % 5 != 0,
                only_new: false,
                pinned_cert: None,
                poll_secs: 60,
                max_message_bytes: 25 << 20,
                dispatch_by_address: true,
                trusted: false,
                login: LoginMethod::Auto,
                authzid: String::new(),
                validity: Validity::Valid,
                comment: format!("the office's account {i}"),
                creation: Default::default(),
            })?;
        }
        let mut admin = None;
        for i in 0..N {
            let id = UserId(tx.next_id("user")?);
            let u = UserRecord {
                id,
                login: format!("agent{i}"),
                name: format!("Agent Number {i}"),
                email: format!("agent{i}@example.org"),
                role: if i == 0 { Role::Admin } else { Role::Agent },
                password_hash: String::new(),
                mailboxes: (0..5).map(|k| MailboxId(1 + (i + k) % N)).collect(),
                disabled: i % 20 == 0 && i > 0,
                created: 1_700_000_000,
                password_changed: 0,
                language: String::new(),
                signature: String::new(),
            };
            tx.put_user(&u)?;
            admin.get_or_insert(id);
        }
        for i in 0..N {
            tx.put_filter(&postroom::filters::Filter {
                id: 0,
                name: format!("{i:03} route invoices {i}"),
                enabled: true,
                stop: i % 2 == 0,
                conditions: vec![postroom::filters::Condition {
                    field: postroom::filters::Field::Header("Subject".into()),
                    pattern: format!("invoice|rechnung {i}"),
                    negate: false,
                    case_sensitive: false,
                }],
                actions: vec![postroom::filters::Action::SetPriority(Default::default())],
            })?;
        }
        for i in 0..100_000i64 {
            tx.log(&LogEntry {
                at: 1_899_990_000_000 + i * 90,
                level: match i % 50 {
                    0 => Level::Error,
                    1..=3 => Level::Warn,
                    4..=8 => Level::Notice,
                    _ => Level::Info,
                },
                component: format!("imap:account-{}", i % N as i64),
                raw: None,
                conv: None,
                text: format!("INBOX UID {i} (UIDVALIDITY 7): 4211 bytes stored as raw {i}"),
            })?;
        }
        admin.ok_or_else(|| Box::<dyn std::error::Error>::from("no user was made"))
    })?;
    eprintln!(
        "  admin store filled in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let token = store.write(|tx| postroom::users::start_session(tx, admin, 1_900_000_000))?;
    let mut ctx = WebCtx::new(store.clone());
    ctx.clock = Arc::new(FixedClock(1_900_000_000_000));
    println!(
        "admin pages, {N} accounts / mailboxes / users / filters, 100,000 log entries (median / p99):"
    );
    for path in [
        "/admin",
        "/admin/accounts",
        "/admin/mailboxes",
        "/admin/users",
        "/admin/filters",
        "/admin/smtp",
        "/admin/log",
        "/admin/log?level=error",
        "/admin/log?q=uid%2099999",
    ] {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let r = req(path, &token);
            let t = Instant::now();
            let reply = postroom::web::pages::route(&ctx, &r);
            times.push(t.elapsed());
            if reply.status != 200 {
                return Err(format!("{path}: status {}", reply.status).into());
            }
        }
        let (med, p99) = stats(times);
        println!("  {path:<28} {med:>7.2} / {p99:.2} ms");
    }
    Ok(())
}

/// The binary cargo built for this benchmark.
fn postroom_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_postroom"))
}

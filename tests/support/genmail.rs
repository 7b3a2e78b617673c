//! Deterministic generator of realistic helpdesk mail, for tests and benchmarks.
//!
//! A dependency-free Rust port of the reference generator `genmail.py` (kept beside the
//! project, never called at test time): same mix of traffic, same dice, its own PRNG
//! (xoshiro256** seeded by splitmix64), so a `(seed, count)` pair always gives the same
//! bytes on every machine.
//!
//! The mix, per message:
//! - new conversations from ~N/4 customers (some with non-ASCII names);
//! - ~20 % customer follow-ups: `Re: <subject>`, `In-Reply-To` = the previous message of
//!   that conversation, `References` = the chain (last 10), quoted text; biased to recent
//!   conversations, like real traffic;
//! - ~3 % auto-replies (`Auto-Submitted: auto-replied`, `X-Autoreply`, `Precedence:
//!   auto_reply`, null `Return-Path`) answering a `<reply-N@helpdesk.example>` we never
//!   sent, so each one stands alone;
//! - ~15 % non-ASCII subjects, as RFC 2047 encoded-words (non-ASCII display names too);
//! - bodies: ~60 % text/plain (quoted-printable or 8bit UTF-8), ~35 %
//!   multipart/alternative text + HTML, ~4 % multipart/mixed with 1-2 base64 attachments
//!   of log-uniform random size (`attach_min..attach_max`, 50 KB..2 MB by default);
//! - `Cc` and `Reply-To` sometimes; dates ascend; Message-IDs are unique.
//!
//! Differences from the Python reference, on purpose: dates are anchored at a fixed
//! instant (not "now") so output is reproducible, and an auto-reply is not appended to the
//! chain of the conversation it mentions (in the reference a later follow-up could then
//! point at the auto-reply and make the "truth" ambiguous). Here the truth is exact: a
//! conversation is one new message plus its follow-ups, or one auto-reply alone.
//!
//! Output: [`Generator`] yields [`Mail`]s; [`Truth`] collects counts and the true
//! partition; `write_maildir`, `write_maildir_shuffled`, `write_eml_dir` and `write_mbox`
//! deliver a whole run to disk without holding it in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------

/// xoshiro256** seeded through splitmix64: small, fast, and identical everywhere.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        Rng {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n` > 0; returns 0 for `n` == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of `len` items.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// One item of a non-empty list of strings.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.index(items.len())).copied().unwrap_or("")
    }

    /// Exponential with rate `lambda` (mean `1/lambda`), like Python's `expovariate`.
    pub fn exp(&mut self, lambda: f64) -> f64 {
        -(1.0 - self.f64()).ln() / lambda
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(v) {
                *d = s;
            }
        }
    }
}

/// A permutation of `0..n`, deterministic per seed (Fisher-Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ 0x5348_5546_464C_4521);
    for i in (1..n).rev() {
        let j = rng.index(i + 1);
        v.swap(i, j);
    }
    v
}

// ---------------------------------------------------------------------------------------
// Vocabulary (as in genmail.py, plus one sentence that starts with "From " so mbox
// writers have to escape it)
// ---------------------------------------------------------------------------------------

const FIRST: &[&str] = &[
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Eva",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Katarzyna",
    "Liam",
    "Mia",
    "Noah",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
    "Søren",
    "Tomás",
    "Uma",
    "Viktor",
    "Wen",
    "Xavier",
    "Yara",
    "Zoë",
    "Jürgen",
    "François",
    "Ólafur",
    "Дмитрий",
    "さくら",
    "Łukasz",
];
const LAST: &[&str] = &[
    "Müller",
    "Smith",
    "García",
    "Nakamura",
    "O'Brien",
    "Kowalski",
    "Dubois",
    "Jensen",
    "Rossi",
    "Petrov",
    "Silva",
    "Schäfer",
    "Nguyen",
    "Öztürk",
    "Brown",
    "Lefèvre",
    "Иванова",
    "田中",
    "Novak",
    "Hansen",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "kunde.example",
    "client.example",
    "shop.example",
    "mail.example",
    "corp.example",
];
const TOPICS: &[&str] = &[
    "Order #{n} has not arrived",
    "Invoice {n} is wrong",
    "Cannot log in to my account",
    "Refund request for order {n}",
    "Question about the Pro plan",
    "Password reset link expired",
    "Shipping address change for order {n}",
    "Damaged item received",
    "How do I export my data?",
    "Feature request: dark mode",
    "API returns 500 on /v2/items",
    "Cancel my subscription",
    "Wrong size delivered (order {n})",
    "Payment failed twice",
    "Where is my tracking number?",
    "Bulk discount for {n} seats?",
    "GDPR data request",
    "Two-factor codes not arriving",
    "Warranty claim #{n}",
    "Upgrade from Basic to Team",
];
const TOPICS_INTL: &[&str] = &[
    "Bestellung Nr. {n} ist nicht angekommen",
    "Rückerstattung für Bestellung {n} – dringend",
    "Problème de facturation n° {n}",
    "Où est ma commande ? Référence {n}",
    "Не могу войти в аккаунт",
    "Заказ №{n} повреждён",
    "注文番号{n}がまだ届きません",
    "パスワードを再設定できません",
    "Pedido {n}: ¿cuándo llega?",
    "Zamówienie {n} – reklamacja",
    "Frage zur Rechnung – Öffnungszeiten?",
    "🚚 Lieferung {n} verspätet",
    "Ärger mit Größe XL",
];
const SENTENCES: &[&str] = &[
    "I placed the order last week and the status still says processing.",
    "Could you please check what is going on with my account?",
    "I have attached a screenshot of the error message I am seeing.",
    "This is the third time I am writing about this issue.",
    "The tracking page shows the parcel stuck at the depot since Monday.",
    "We are a team of twelve and would like to move everyone to the annual plan.",
    "When I click the reset link it says the token has expired.",
    "The invoice lists VAT twice, which our accounting cannot accept.",
    "Please let me know whether a refund or a replacement is possible.",
    "Our integration started failing after yesterday's maintenance window.",
    "I would appreciate a quick answer as this blocks our month-end closing.",
    "Thanks a lot for your help so far, it is much appreciated.",
    "Vielen Dank im Voraus für Ihre Hilfe.",
    "Merci de votre retour rapide.",
    "Заранее спасибо за помощь.",
    "よろしくお願いいたします。",
    "The box was crushed on one side and the item inside is scratched.",
    "I tried a different browser and cleared the cache, same result.",
    "Is there an ETA for a fix, or a workaround we can use meanwhile?",
    "My colleague in CC can provide more details if needed.",
    "From what I can see, the parcel never left the warehouse.",
];
const AUTOREPLY_SUBJ: &[&str] = &[
    "Automatic reply: {s}",
    "Out of Office: {s}",
    "Abwesenheitsnotiz: {s}",
    "Réponse automatique : {s}",
    "Auto: {s}",
];
const ATTACH_TYPES: &[(&str, &str)] = &[
    ("application/pdf", "invoice-{n}.pdf"),
    ("image/jpeg", "photo_{n}.jpg"),
    ("image/png", "screenshot-{n}.png"),
    ("application/zip", "logs-{n}.zip"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Übersicht-{n}.xlsx",
    ),
];
const MAILERS: &[&str] = &[
    "Thunderbird 115.8",
    "Apple Mail (2.3774)",
    "Microsoft Outlook 16.0",
    "Roundcube Webmail 1.6",
];
/// Customer time zones, minutes east of UTC.
const ZONES: &[i64] = &[0, 60, 60, 120, -300, -240, 330, 540, 60, 0, 180, -180];

// ---------------------------------------------------------------------------------------
// Options, output
// ---------------------------------------------------------------------------------------

/// Bumped whenever the output for a given seed changes (keys cached corpora).
pub const VERSION: u32 = 2;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub count: usize,
    pub seed: u64,
    /// Attachment sizes are log-uniform in `attach_min..attach_max` bytes.
    pub attach_min: usize,
    pub attach_max: usize,
    /// Dates ascend over `days_back` days ending at `end_unix` (a fixed instant, so the
    /// output does not depend on when it runs).
    pub end_unix: i64,
    pub days_back: f64,
    pub reply_ratio: f64,
    pub auto_ratio: f64,
    pub intl_ratio: f64,
    pub html_ratio: f64,
    pub attach_ratio: f64,
    pub to: String,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            count: 1000,
            seed: 1,
            attach_min: 50_000,
            attach_max: 2_000_000,
            end_unix: 1_780_000_000, // 2026-05-28
            days_back: 2.0,
            reply_ratio: 0.20,
            auto_ratio: 0.03,
            intl_ratio: 0.15,
            html_ratio: 0.35,
            attach_ratio: 0.04,
            to: "Support <support@helpdesk.example>".into(),
        }
    }
}

/// What a generated message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Starts a conversation.
    New,
    /// A customer follow-up in an existing conversation.
    Reply,
    /// An auto-reply to mail we never sent: a conversation of its own.
    Auto,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Reply => "reply",
            Kind::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "new" => Some(Kind::New),
            "reply" => Some(Kind::Reply),
            "auto" => Some(Kind::Auto),
            _ => None,
        }
    }
}

/// One generated message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Position in the generated stream, from 0.
    pub index: usize,
    /// The complete message, LF line endings.
    pub bytes: Vec<u8>,
    pub kind: Kind,
    /// Message-ID without angle brackets (as Postroom stores it).
    pub message_id: String,
    /// The true conversation: 0, 1, 2, ... in order of creation.
    pub conv: usize,
    /// Unix seconds of the `Date:` header.
    pub date: i64,
    /// Microseconds within that second (for Maildir names).
    pub micros: u32,
    /// Envelope sender, for mbox `From ` lines.
    pub sender: String,
    /// How many attachments the message carries.
    pub attachments: u32,
}

/// The true shape of a generated run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    pub new: usize,
    pub reply: usize,
    pub auto: usize,
    pub bytes: u64,
    pub attachments: u64,
    /// Message-ID (no brackets) -> true conversation index.
    pub conv_of: BTreeMap<String, usize>,
    /// Message-ID -> what it is.
    pub kind_of: BTreeMap<String, Kind>,
}

impl Truth {
    pub fn record(&mut self, m: &Mail) {
        match m.kind {
            Kind::New => self.new += 1,
            Kind::Reply => self.reply += 1,
            Kind::Auto => self.auto += 1,
        }
        self.bytes += m.bytes.len() as u64;
        self.attachments += u64::from(m.attachments);
        self.conv_of.insert(m.message_id.clone(), m.conv);
        self.kind_of.insert(m.message_id.clone(), m.kind);
    }

    pub fn of<'a>(mails: impl IntoIterator<Item = &'a Mail>) -> Truth {
        let mut t = Truth::default();
        for m in mails {
            t.record(m);
        }
        t
    }

    pub fn count(&self) -> usize {
        self.new + self.reply + self.auto
    }

    /// New conversations plus auto-replies (each of which stands alone).
    pub fn conversations(&self) -> usize {
        self.new + self.auto
    }

    /// Conversations as sets of Message-IDs.
    pub fn partition(&self) -> BTreeSet<BTreeSet<String>> {
        let mut by_conv: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for (id, c) in &self.conv_of {
            by_conv.entry(*c).or_default().insert(id.clone());
        }
        by_conv.into_values().collect()
    }

    /// A line-based text form (for caching beside generated data).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "genmail-truth v1 new={} reply={} auto={} bytes={} attachments={}\n",
            self.new, self.reply, self.auto, self.bytes, self.attachments
        );
        for (id, c) in &self.conv_of {
            let kind = self.kind_of.get(id).map(|k| k.as_str()).unwrap_or("?");
            let _ = writeln!(s, "{kind} {c} {id}");
        }
        s
    }

    pub fn from_text(text: &str) -> Option<Truth> {
        let mut lines = text.lines();
        let head = lines.next()?;
        let mut t = Truth::default();
        let mut fields = head.split_whitespace();
        if fields.next()? != "genmail-truth" || fields.next()? != "v1" {
            return None;
        }
        for f in fields {
            let (k, v) = f.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "new" => t.new = v as usize,
                "reply" => t.reply = v as usize,
                "auto" => t.auto = v as usize,
                "bytes" => t.bytes = v,
                "attachments" => t.attachments = v,
                _ => return None,
            }
        }
        for l in lines {
            let mut p = l.split_whitespace();
            let kind = Kind::parse(p.next()?)?;
            let conv: usize = p.next()?.parse().ok()?;
            let id = p.next()?.to_owned();
            t.conv_of.insert(id.clone(), conv);
            t.kind_of.insert(id, kind);
        }
        (t.conv_of.len() == t.count()).then_some(t)
    }
}

// ---------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Person {
    name: String,
    local: String,
    domain: String,
    zone: i64,
}

#[derive(Clone, Debug)]
struct Conv {
    cust: usize,
    subject: String,
    /// Message-IDs of the chain, with angle brackets.
    ids: Vec<String>,
    last_text: String,
    truth: usize,
}

/// Yields `count` messages, deterministic per seed.
pub struct Generator {
    o: GenOptions,
    rng: Rng,
    customers: Vec<Person>,
    convs: Vec<Conv>,
    next_truth: usize,
    fake_ids: BTreeSet<u64>,
    attach_seq: u64,
    i: usize,
    start: f64,
    step: f64,
}

fn person(rng: &mut Rng) -> Person {
    let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
    let local = format!("cust{:06}", rng.below(1_000_000));
    let domain = rng.pick(DOMAINS).to_owned();
    let zone = ZONES.get(rng.index(ZONES.len())).copied().unwrap_or(0);
    Person {
        name,
        local,
        domain,
        zone,
    }
}

fn body_text(rng: &mut Rng, paragraphs: u64) -> String {
    let mut paras = Vec::new();
    for _ in 0..paragraphs {
        let n = rng.range(2, 7);
        let p: Vec<&str> = (0..n).map(|_| rng.pick(SENTENCES)).collect();
        paras.push(p.join(" "));
    }
    paras.join("\n\n")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn html_of(text: &str) -> String {
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body \
         style=\"font-family:Arial,sans-serif;font-size:14px\">\n",
    );
    for p in text.split("\n\n") {
        let _ = writeln!(s, "<p>{}</p>", html_escape(p).replace('\n', "<br>"));
    }
    s.push_str("<div style=\"color:#888\">--<br>Sent from my phone</div></body></html>\n");
    s
}

impl Generator {
    pub fn new(o: GenOptions) -> Generator {
        let mut rng = Rng::new(o.seed);
        let ncust = (o.count / 4).max(1);
        let customers = (0..ncust).map(|_| person(&mut rng)).collect();
        let end = o.end_unix as f64 - 60.0;
        let start = end - o.days_back * 86_400.0;
        let step = (end - start) / o.count.max(1) as f64;
        Generator {
            o,
            rng,
            customers,
            convs: Vec::new(),
            next_truth: 0,
            fake_ids: BTreeSet::new(),
            attach_seq: 0,
            i: 0,
            start,
            step,
        }
    }

    fn customer(&self, i: usize) -> Person {
        self.customers.get(i).cloned().unwrap_or(Person {
            name: "Anna Smith".into(),
            local: "cust000000".into(),
            domain: "example.com".into(),
            zone: 0,
        })
    }

    fn make(&mut self) -> Mail {
        let i = self.i;
        self.i += 1;
        let ts = self.start + i as f64 * self.step + self.rng.f64() * self.step * 0.5;
        let date = ts.floor() as i64;
        let micros = ((ts - ts.floor()) * 1e6) as u32;
        let o = self.o.clone();
        let roll = self.rng.f64();
        let kind = if !self.convs.is_empty() && roll < o.reply_ratio {
            Kind::Reply
        } else if !self.convs.is_empty() && roll < o.reply_ratio + o.auto_ratio {
            Kind::Auto
        } else {
            Kind::New
        };

        // Headers in the order a delivery agent leaves them; values unfolded here.
        let mut thread_headers: Vec<(&str, String)> = Vec::new();
        let (cust_idx, subject, text, conv_slot, truth) = match kind {
            Kind::New => {
                let cust_idx = self.rng.index(self.customers.len());
                let cust = self.customer(cust_idx);
                let pool = if self.rng.f64() < o.intl_ratio {
                    TOPICS_INTL
                } else {
                    TOPICS
                };
                let n = self.rng.range(10_000, 99_998).to_string();
                let subject = self.rng.pick(pool).replace("{n}", &n);
                let paras = self.rng.range(1, 6);
                let text = format!(
                    "Hello support team,\n\n{}\n\nBest regards,\n{}",
                    body_text(&mut self.rng, paras),
                    cust.name
                );
                let truth = self.next_truth;
                self.next_truth += 1;
                self.convs.push(Conv {
                    cust: cust_idx,
                    subject: subject.clone(),
                    ids: Vec::new(),
                    last_text: String::new(),
                    truth,
                });
                (cust_idx, subject, text, Some(self.convs.len() - 1), truth)
            }
            Kind::Reply => {
                let back = self.rng.exp(1.0 / 40.0) as usize;
                let slot = self.convs.len().saturating_sub(1).saturating_sub(back);
                let conv = self.convs.get(slot).cloned().unwrap_or_else(|| Conv {
                    cust: 0,
                    subject: String::new(),
                    ids: Vec::new(),
                    last_text: String::new(),
                    truth: 0,
                });
                let cust = self.customer(conv.cust);
                let quoted: Vec<String> = conv
                    .last_text
                    .lines()
                    .take(30)
                    .map(|l| format!("> {l}"))
                    .collect();
                let paras = self.rng.range(1, 3);
                let text = format!(
                    "{}\n\n{}\n\nOn {}, {} wrote:\n{}",
                    body_text(&mut self.rng, paras),
                    cust.name,
                    human_date(date - 3600 * 5, cust.zone),
                    cust.name,
                    quoted.join("\n")
                );
                if let Some(last) = conv.ids.last() {
                    thread_headers.push(("In-Reply-To", last.clone()));
                }
                let skip = conv.ids.len().saturating_sub(10);
                let refs: Vec<&str> = conv.ids.iter().skip(skip).map(String::as_str).collect();
                thread_headers.push(("References", refs.join(" ")));
                (
                    conv.cust,
                    format!("Re: {}", conv.subject),
                    text,
                    Some(slot),
                    conv.truth,
                )
            }
            Kind::Auto => {
                let slot = self.rng.index(self.convs.len());
                let (cust_idx, conv_subject) = self
                    .convs
                    .get(slot)
                    .map(|c| (c.cust, c.subject.clone()))
                    .unwrap_or_default();
                let cust = self.customer(cust_idx);
                let subject = self.rng.pick(AUTOREPLY_SUBJ).replace("{s}", &conv_subject);
                let text = format!(
                    "Thank you for your message. I am out of the office until next Monday \
                     with limited access to e-mail.\n\n{}",
                    cust.name
                );
                let mut n = self.rng.below(1_000_000_000);
                while !self.fake_ids.insert(n) {
                    n = self.rng.below(1_000_000_000);
                }
                let fake = format!("<reply-{n}@helpdesk.example>");
                thread_headers.push(("In-Reply-To", fake.clone()));
                thread_headers.push(("References", fake));
                thread_headers.push(("Auto-Submitted", "auto-replied".into()));
                thread_headers.push(("X-Autoreply", "yes".into()));
                thread_headers.push(("Precedence", "auto_reply".into()));
                let truth = self.next_truth;
                self.next_truth += 1;
                // Not appended to the conversation's chain: we never sent what it answers.
                (cust_idx, subject, text, None, truth)
            }
        };
        let cust = self.customer(cust_idx);
        let local_time = civil(date + cust.zone * 60);
        let mid = format!(
            "<{:04}{:02}{:02}{:02}{:02}{:02}.{}.{}.{:08x}@{}>",
            local_time.year,
            local_time.month,
            local_time.day,
            local_time.hour,
            local_time.minute,
            local_time.second,
            o.seed,
            i,
            self.rng.below(1 << 32),
            cust.domain
        );
        if let Some(c) = conv_slot.and_then(|s| self.convs.get_mut(s)) {
            c.ids.push(mid.clone());
            c.last_text = text.clone();
        }
        let sender = format!("{}@{}", cust.local, cust.domain);

        let mut h: Vec<(String, String)> = Vec::new();
        let push = |h: &mut Vec<(String, String)>, k: &str, v: String| h.push((k.to_owned(), v));
        push(
            &mut h,
            "Return-Path",
            if kind == Kind::Auto {
                "<>".into()
            } else {
                format!("<{sender}>")
            },
        );
        push(&mut h, "Delivered-To", "support@helpdesk.example".into());
        let relay = 1 + self.rng.below(254);
        let queue_id = self.rng.below(1 << 40);
        let received = format!(
            "from mail.{d} (mail.{d} [198.51.100.{relay}])\n\tby mx.helpdesk.example (Postfix) with ESMTPS id {queue_id:010X}\n\tfor <support@helpdesk.example>; {}",
            rfc5322_date(date + 2 + self.rng.range(0, 20) as i64, 0),
            d = cust.domain,
        );
        push(&mut h, "Received", received);
        let from = address(&cust.name, &sender, &mut self.rng);
        push(&mut h, "From", from);
        push(&mut h, "To", o.to.clone());
        if self.rng.f64() < 0.07 {
            let colleague = self.rng.pick(FIRST).to_owned();
            let email = format!(
                "colleague{}@{}",
                cust.local.get(4..).unwrap_or(""),
                cust.domain
            );
            let cc = address(&colleague, &email, &mut self.rng);
            push(&mut h, "Cc", cc);
        }
        if self.rng.f64() < 0.03 {
            let email = format!("{}.alt@{}", cust.local, cust.domain);
            let rt = address(&cust.name, &email, &mut self.rng);
            push(&mut h, "Reply-To", rt);
        }
        let subj = encode_words(&subject, &mut self.rng);
        push(&mut h, "Subject", subj);
        push(&mut h, "Date", rfc5322_date(date, cust.zone));
        push(&mut h, "Message-ID", mid.clone());
        for (k, v) in thread_headers {
            push(&mut h, k, v);
        }
        push(&mut h, "MIME-Version", "1.0".into());
        push(&mut h, "X-Mailer", self.rng.pick(MAILERS).to_owned());

        // Body.
        let broll = self.rng.f64();
        let text_part = self.text_part("plain", &text);
        let mut attachments = 0u32;
        let body = if kind != Kind::Auto && broll < o.attach_ratio {
            let html = self.text_part("html", &html_of(&text));
            let alt = Part::Multi {
                subtype: "alternative",
                boundary: self.boundary(),
                parts: vec![text_part, html],
            };
            let mut parts = vec![alt];
            for _ in 0..self.rng.range(1, 2) {
                parts.push(self.attachment());
                attachments += 1;
            }
            Part::Multi {
                subtype: "mixed",
                boundary: self.boundary(),
                parts,
            }
        } else if broll < o.attach_ratio + o.html_ratio {
            let html = self.text_part("html", &html_of(&text));
            Part::Multi {
                subtype: "alternative",
                boundary: self.boundary(),
                parts: vec![text_part, html],
            }
        } else {
            text_part
        };

        let mut out = Vec::with_capacity(4096);
        for (k, v) in &h {
            out.extend_from_slice(fold(k, v).as_bytes());
        }
        body.write(&mut out, true);
        Mail {
            index: i,
            bytes: out,
            kind,
            message_id: mid.trim_start_matches('<').trim_end_matches('>').to_owned(),
            conv: truth,
            date,
            micros,
            sender,
            attachments,
        }
    }

    fn boundary(&mut self) -> String {
        format!(
            "----=_Part_{}_{:016x}",
            self.rng.below(100_000),
            self.rng.next_u64()
        )
    }

    fn text_part(&mut self, subtype: &'static str, text: &str) -> Part {
        let mut body = text.to_owned();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let long_lines = body.lines().any(|l| l.len() > 78);
        let cte = if !body.is_ascii() || long_lines {
            if self.rng.f64() < 0.3 {
                if body.is_ascii() { "7bit" } else { "8bit" }
            } else {
                "quoted-printable"
            }
        } else {
            "7bit"
        };
        let content = if cte == "quoted-printable" {
            qp_encode(&body)
        } else {
            body
        };
        Part::Text {
            subtype,
            cte,
            content,
        }
    }

    fn attachment(&mut self) -> Part {
        let (ctype, name) = ATTACH_TYPES
            .get(self.rng.index(ATTACH_TYPES.len()))
            .copied()
            .unwrap_or(("application/octet-stream", "file-{n}.bin"));
        let filename = name.replace("{n}", &self.rng.range(1000, 9999).to_string());
        let lo = self.o.attach_min.max(1) as f64;
        let hi = (self.o.attach_max as f64).max(lo);
        let size = (lo * (hi / lo).powf(self.rng.f64())).round() as usize;
        // The bytes come from their own stream, so that the attachment size range changes
        // only the sizes, never the rest of the run (same conversations at any size).
        self.attach_seq += 1;
        let mut data_rng = Rng::new(self.o.seed.rotate_left(32) ^ self.attach_seq);
        let mut data = vec![0u8; size];
        data_rng.fill(&mut data);
        Part::Attachment {
            ctype,
            filename,
            data,
        }
    }
}

impl Iterator for Generator {
    type Item = Mail;
    fn next(&mut self) -> Option<Mail> {
        if self.i >= self.o.count {
            return None;
        }
        Some(self.make())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.o.count.saturating_sub(self.i);
        (left, Some(left))
    }
}

// ---------------------------------------------------------------------------------------
// MIME
// ---------------------------------------------------------------------------------------

enum Part {
    Text {
        subtype: &'static str,
        cte: &'static str,
        content: String,
    },
    Multi {
        subtype: &'static str,
        boundary: String,
        parts: Vec<Part>,
    },
    Attachment {
        ctype: &'static str,
        filename: String,
        data: Vec<u8>,
    },
}

impl Part {
    /// Writes the part's headers, a blank line and its body. At the top level the
    /// headers continue the message's header block.
    fn write(&self, out: &mut Vec<u8>, top: bool) {
        match self {
            Part::Text {
                subtype,
                cte,
                content,
            } => {
                out.extend_from_slice(
                    fold(
                        "Content-Type",
                        &format!("text/{subtype}; charset=\"utf-8\""),
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(fold("Content-Transfer-Encoding", cte).as_bytes());
                out.push(b'\n');
                out.extend_from_slice(content.as_bytes());
            }
            Part::Multi {
                subtype,
                boundary,
                parts,
            } => {
                out.extend_from_slice(
                    fold(
                        "Content-Type",
                        &format!("multipart/{subtype}; boundary=\"{boundary}\""),
                    )
                    .as_bytes(),
                );
                out.push(b'\n');
                if top {
                    out.extend_from_slice(b"This is a multi-part message in MIME format.\n");
                }
                for p in parts {
                    out.extend_from_slice(format!("--{boundary}\n").as_bytes());
                    p.write(out, false);
                    out.push(b'\n');
                }
                out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
            }
            Part::Attachment {
                ctype,
                filename,
                data,
            } => {
                let disp = if filename.is_ascii() {
                    format!("attachment; filename=\"{filename}\"")
                } else {
                    format!("attachment; filename*=utf-8''{}", percent_encode(filename))
                };
                out.extend_from_slice(fold("Content-Type", ctype).as_bytes());
                out.extend_from_slice(b"Content-Transfer-Encoding: base64\n");
                out.extend_from_slice(fold("Content-Disposition", &disp).as_bytes());
                out.push(b'\n');
                base64_lines(data, out);
            }
        }
    }
}

/// `Name: value` folded at spaces so that lines stay within 78 characters where
/// possible; values that already contain line breaks are written as they are.
fn fold(name: &str, value: &str) -> String {
    let mut out = format!("{name}:");
    if value.contains('\n') {
        out.push(' ');
        out.push_str(value);
        out.push('\n');
        return out;
    }
    let mut len = out.len();
    let mut first = true;
    for tok in value.split(' ').filter(|t| !t.is_empty()) {
        if len + 1 + tok.len() > 78 && !(first && name.len() + 2 + tok.len() <= 78) {
            out.push('\n');
            len = 0;
        }
        out.push(' ');
        out.push_str(tok);
        len += 1 + tok.len();
        first = false;
    }
    out.push('\n');
    out
}

/// A header phrase or unstructured text with its non-ASCII runs as RFC 2047
/// encoded-words (Q for mostly-Latin text, B otherwise), each at most 75 characters.
fn encode_words(s: &str, rng: &mut Rng) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    let charset = if rng.f64() < 0.8 { "utf-8" } else { "UTF-8" };
    let words: Vec<&str> = s.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let flush = |run: &mut Vec<&str>, out: &mut Vec<String>| {
        if !run.is_empty() {
            out.push(encoded_words(&run.join(" "), charset));
            run.clear();
        }
    };
    for w in words {
        if w.is_ascii() {
            flush(&mut run, &mut out);
            out.push(w.to_owned());
        } else {
            run.push(w);
        }
    }
    flush(&mut run, &mut out);
    out.join(" ")
}

fn encoded_words(text: &str, charset: &str) -> String {
    let non_ascii = text.bytes().filter(|b| !b.is_ascii()).count();
    let q = non_ascii * 3 < text.len();
    let overhead = charset.len() + 7; // =? ? q ? ?=
    let budget = 75 - overhead;
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    let mut raw = Vec::new();
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        if q {
            let enc: String = bytes.iter().map(|b| q_char(*b)).collect();
            if cur_len + enc.len() > budget && !cur.is_empty() {
                words.push(format!("=?{charset}?q?{cur}?="));
                cur.clear();
                cur_len = 0;
            }
            cur_len += enc.len();
            cur.push_str(&enc);
        } else {
            if (raw.len() + bytes.len()).div_ceil(3) * 4 > budget && !raw.is_empty() {
                words.push(format!("=?{charset}?b?{}?=", base64(&raw)));
                raw.clear();
            }
            raw.extend_from_slice(bytes);
        }
    }
    if q && !cur.is_empty() {
        words.push(format!("=?{charset}?q?{cur}?="));
    }
    if !q && !raw.is_empty() {
        words.push(format!("=?{charset}?b?{}?=", base64(&raw)));
    }
    words.join(" ")
}

/// One byte in RFC 2047 Q encoding, restricted to what a phrase allows.
fn q_char(b: u8) -> String {
    match b {
        b' ' => "_".into(),
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
            char::from(b).to_string()
        }
        _ => format!("={b:02X}"),
    }
}

/// `Name <email>`, the name encoded when it is not ASCII.
fn address(name: &str, email: &str, rng: &mut Rng) -> String {
    format!("{} <{email}>", encode_words(name, rng))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Quoted-printable (RFC 2045) with soft line breaks at 76 characters.
fn qp_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (k, &b) in bytes.iter().enumerate() {
            let last = k + 1 == bytes.len();
            let literal = match b {
                b' ' | b'\t' => !last,
                33..=126 => b != b'=',
                _ => false,
            };
            let enc_len = if literal { 1 } else { 3 };
            // Leave room for the soft break's "=" (76 characters in all).
            let room = if last { 76 } else { 75 };
            if col + enc_len > room {
                out.push_str("=\n");
                col = 0;
            }
            if literal {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "={b:02X}");
            }
            col += enc_len;
        }
        out.push('\n');
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_char(v: u32) -> u8 {
    B64.get((v & 63) as usize).copied().unwrap_or(b'A')
}

fn base64_into(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let b = |k: usize| u32::from(chunk.get(k).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(b64_char(n >> 18));
        out.push(b64_char(n >> 12));
        out.push(if chunk.len() > 1 {
            b64_char(n >> 6)
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 { b64_char(n) } else { b'=' });
    }
}

fn base64(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    base64_into(data, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64 with CRLF after every full 76-character line, as mail clients write it
/// (no line break after a short last line).
pub fn base64_crlf(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(57) * 78);
    for chunk in data.chunks(57) {
        base64_into(chunk, &mut out);
        if chunk.len() == 57 {
            out.extend_from_slice(b"\r\n");
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64 in 76-character lines (57 input bytes each).
fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() / 57 * 78 + 80);
    for chunk in data.chunks(57) {
        base64_into(chunk, out);
        out.push(b'\n');
    }
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    weekday: usize,
}

/// Howard Hinnant's days-to-civil, for unix seconds.
fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        weekday: (days + 4).rem_euclid(7) as usize, // 1970-01-01 was a Thursday
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month_name(m: i64) -> &'static str {
    MONTHS.get((m - 1) as usize).copied().unwrap_or("Jan")
}

/// `Tue, 03 Mar 2026 14:05:09 +0100` for unix seconds seen in a zone.
fn rfc5322_date(secs: i64, zone_minutes: i64) -> String {
    let c = civil(secs + zone_minutes * 60);
    let sign = if zone_minutes < 0 { '-' } else { '+' };
    let z = zone_minutes.abs();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        WEEKDAYS.get(c.weekday).copied().unwrap_or("Mon"),
        c.day,
        month_name(c.month),
        c.year,
        c.hour,
        c.minute,
        c.second,
        z / 60,
        z % 60
    )
}

/// `Tue 3 Mar 2026 at 14:05`, as mail clients write above a quote.
fn human_date(secs: i64, zone_minutes: i64) -> String {
    let c = civil(secs + zone_minutes * 60);
    format!(
        "{} {} {} {} at {:02}:{:02}",
        WEEKDAYS.get(c.weekday).copied().unwrap_or("Mon"),
        c.day,
        month_name(c.month),
        c.year,
        c.hour,
        c.minute
    )
}

/// `Sat Jan  3 01:05:34 1996`, for mbox `From ` lines.
fn asctime(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        WEEKDAYS.get(c.weekday).copied().unwrap_or("Mon"),
        month_name(c.month),
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

// ---------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------

/// A Maildir with `cur/`, `new/` and `tmp/`.
pub fn create_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

/// The Maildir file name for a message delivered as the `rank`-th (names sort by rank,
/// as they sort by time for an in-order delivery).
pub fn maildir_name(m: &Mail, rank: usize, in_order: bool) -> String {
    let vsize = m.bytes.len() + m.bytes.iter().filter(|b| **b == b'\n').count();
    let (ts, micros) = if in_order {
        (m.date, m.micros)
    } else {
        (1_700_000_000 + rank as i64, 0)
    };
    format!(
        "{ts}.M{micros:06}P4242Q{rank:07}.genmail.example,S={},W={vsize}",
        m.bytes.len()
    )
}

/// Writes one message into `dir/new` through `dir/tmp` (like a delivery agent), with
/// the file's mtime set to its date.
pub fn deliver(dir: &Path, m: &Mail, name: &str) -> io::Result<()> {
    let tmp = dir.join("tmp").join(name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&m.bytes)?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(m.date.max(0) as u64))?;
    }
    fs::rename(&tmp, dir.join("new").join(name))
}

/// Generates `opts.count` messages into a Maildir, in date order.
pub fn write_maildir(dir: &Path, opts: &GenOptions) -> io::Result<Truth> {
    create_maildir(dir)?;
    let mut t = Truth::default();
    for m in Generator::new(opts.clone()) {
        deliver(dir, &m, &maildir_name(&m, m.index, true))?;
        t.record(&m);
    }
    Ok(t)
}

/// Writes already generated messages into a Maildir so that an importer that reads in
/// name order sees them in the order of `order` (indices into `mails`).
pub fn deliver_in_order(dir: &Path, mails: &[Mail], order: &[usize]) -> io::Result<Truth> {
    create_maildir(dir)?;
    let mut t = Truth::default();
    for (rank, &k) in order.iter().enumerate() {
        if let Some(m) = mails.get(k) {
            deliver(dir, m, &maildir_name(m, rank, false))?;
            t.record(m);
        }
    }
    Ok(t)
}

/// Generates into a Maildir whose name order is a seeded shuffle of the date order, so
/// that many replies come before the messages they answer.
pub fn write_maildir_shuffled(
    dir: &Path,
    opts: &GenOptions,
    shuffle_seed: u64,
) -> io::Result<Truth> {
    create_maildir(dir)?;
    let perm = permutation(opts.count, shuffle_seed);
    let mut t = Truth::default();
    for (m, rank) in Generator::new(opts.clone()).zip(perm) {
        deliver(dir, &m, &maildir_name(&m, rank, false))?;
        t.record(&m);
    }
    Ok(t)
}

/// Writes messages as `NNNNNN.eml` files.
pub fn eml_dir_from<'a>(
    dir: &Path,
    mails: impl IntoIterator<Item = &'a Mail>,
) -> io::Result<Truth> {
    fs::create_dir_all(dir)?;
    let mut t = Truth::default();
    for m in mails {
        fs::write(dir.join(format!("{:06}.eml", m.index)), &m.bytes)?;
        t.record(m);
    }
    Ok(t)
}

/// Generates `opts.count` messages as `NNNNNN.eml` files.
pub fn write_eml_dir(dir: &Path, opts: &GenOptions) -> io::Result<Truth> {
    fs::create_dir_all(dir)?;
    let mut t = Truth::default();
    for m in Generator::new(opts.clone()) {
        fs::write(dir.join(format!("{:06}.eml", m.index)), &m.bytes)?;
        t.record(&m);
    }
    Ok(t)
}

/// Appends one message in mboxrd form: a `From ` line, the message with every
/// `>*From ` line quoted once more, and a blank line.
pub fn mbox_append(out: &mut impl Write, m: &Mail) -> io::Result<()> {
    writeln!(out, "From {} {}", m.sender, asctime(m.date))?;
    for line in m.bytes.split_inclusive(|b| *b == b'\n') {
        let quotes = line.iter().take_while(|b| **b == b'>').count();
        if line
            .get(quotes..)
            .is_some_and(|rest| rest.starts_with(b"From "))
        {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    if !m.bytes.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

/// Writes messages into one mboxrd file.
pub fn mbox_from<'a>(path: &Path, mails: impl IntoIterator<Item = &'a Mail>) -> io::Result<Truth> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut w = BufWriter::new(File::create(path)?);
    let mut t = Truth::default();
    for m in mails {
        mbox_append(&mut w, m)?;
        t.record(m);
    }
    w.flush()?;
    Ok(t)
}

/// Generates `opts.count` messages into one mboxrd file.
pub fn write_mbox(path: &Path, opts: &GenOptions) -> io::Result<Truth> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut w = BufWriter::new(File::create(path)?);
    let mut t = Truth::default();
    for m in Generator::new(opts.clone()) {
        mbox_append(&mut w, &m)?;
        t.record(&m);
    }
    w.flush()?;
    Ok(t)
}

/// Self-checks of the generator's encoders (run with the integration tests).
#[cfg(test)]
mod tests {
    // A harness-less bench sees `cfg(test)` without the test functions.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn genmail_is_deterministic_and_distinct_per_seed() {
        let o = GenOptions {
            count: 300,
            attach_min: 100,
            attach_max: 1000,
            ..GenOptions::default()
        };
        let a: Vec<Vec<u8>> = Generator::new(o.clone()).map(|m| m.bytes).collect();
        let b: Vec<Vec<u8>> = Generator::new(o.clone()).map(|m| m.bytes).collect();
        assert_eq!(a, b);
        let c: Vec<Vec<u8>> = Generator::new(GenOptions { seed: 9, ..o })
            .map(|m| m.bytes)
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn genmail_encoders_follow_the_rfcs() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(qp_encode("a=b \n"), "a=3Db=20\n");
        let long = "é".repeat(100) + "\n";
        for l in qp_encode(&long).lines() {
            assert!(l.len() <= 76, "{l}");
        }
        let mut rng = Rng::new(1);
        let w = encode_words("Rückerstattung für Bestellung 12345 – dringend", &mut rng);
        assert!(w.is_ascii(), "{w}");
        assert!(w.contains("Bestellung 12345"), "{w}");
        for piece in w.split(' ').filter(|p| p.starts_with("=?")) {
            assert!(piece.len() <= 75, "{piece}");
        }
        let c = civil(1_795_363_200);
        assert_eq!((c.year, c.month, c.day, c.weekday), (2026, 11, 22, 0));
        assert_eq!(rfc5322_date(0, 60), "Thu, 01 Jan 1970 01:00:00 +0100");
        assert_eq!(asctime(820_631_134), "Wed Jan  3 01:05:34 1996");
    }

    #[test]
    fn genmail_mix_is_realistic() {
        let o = GenOptions {
            count: 2000,
            seed: 2,
            attach_min: 100,
            attach_max: 1000,
            ..GenOptions::default()
        };
        let mails: Vec<Mail> = Generator::new(o).collect();
        let t = Truth::of(&mails);
        assert_eq!(t.count(), 2000);
        assert_eq!(t.conv_of.len(), 2000, "Message-IDs are unique");
        assert!((300..500).contains(&t.reply), "{t:?}");
        assert!((30..100).contains(&t.auto), "{}", t.auto);
        assert!(t.attachments > 50, "{}", t.attachments);
        assert!(mails.windows(2).all(|w| w[0].date <= w[1].date));
        let encoded = mails
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.bytes).contains("Subject: =?"))
            .count();
        assert!(encoded > 100, "{encoded}");
        for m in &mails {
            let head_end = m.bytes.windows(2).position(|w| w == b"\n\n").unwrap();
            let head = std::str::from_utf8(&m.bytes[..head_end]).unwrap();
            assert!(head.is_ascii(), "{head}");
            assert!(head.lines().all(|l| l.len() <= 998), "{head}");
            assert!(head.contains("MIME-Version: 1.0"));
        }
        assert_eq!(t.partition().len(), t.conversations());
    }

    #[test]
    fn genmail_writers_deliver_the_same_messages() {
        let o = GenOptions {
            count: 60,
            seed: 5,
            attach_min: 100,
            attach_max: 1000,
            ..GenOptions::default()
        };
        let mails: Vec<Mail> = Generator::new(o.clone()).collect();
        let truth = Truth::of(&mails);
        let dir = std::env::temp_dir().join(format!("genmail-self-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(write_eml_dir(&dir.join("eml"), &o).unwrap(), truth);
        assert_eq!(write_mbox(&dir.join("mbox"), &o).unwrap(), truth);
        assert_eq!(write_maildir(&dir.join("md"), &o).unwrap(), truth);
        assert_eq!(
            write_maildir_shuffled(&dir.join("shuf"), &o, 3).unwrap(),
            truth
        );
        for m in &mails {
            let eml = fs::read(dir.join("eml").join(format!("{:06}.eml", m.index))).unwrap();
            assert_eq!(eml, m.bytes);
        }
        let mut names: Vec<String> = fs::read_dir(dir.join("md").join("new"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), mails.len());
        for (name, m) in names.iter().zip(&mails) {
            assert_eq!(
                fs::read(dir.join("md").join("new").join(name)).unwrap(),
                m.bytes
            );
        }
        let mbox = fs::read(dir.join("mbox")).unwrap();
        let separators = mbox
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"From "))
            .count();
        assert_eq!(separators, mails.len(), "every body From_ line is escaped");
        assert_eq!(Truth::from_text(&truth.to_text()), Some(truth));
        let _ = fs::remove_dir_all(&dir);
    }
}

//! The pipeline: raw bytes -> parse -> thread -> conversation, as pure stages behind one
//! orchestrator that applies them in commit 2 (one write transaction per batch).
//!
//! Owns: processing queued raw messages exactly once (idempotent per raw id: a raw that
//! is no longer pending is skipped), duplicate detection by Message-ID, conversation
//! creation, merges and status rules, and the communication-log lines about them; and
//! applying the source account's ticket-creation options (`crate::creation`): refusing
//! mail that would start a conversation (raw kept, logged, answered as chosen), bundling,
//! the defaults before the filters' outcome, customer records.
//! Must not: touch the network, or write outside `Store::write`.
//!
//! Replay: everything not yet processed sits in the store's pending queue, so running
//! `process_pending` at startup finishes whatever a crash interrupted.

pub mod filter;
pub mod parse;
pub mod thread;

use crate::config::Settings;
use crate::model::{
    Addr, Clock, ConvId, ConversationRecord, Direction, Level, LogEntry, MailboxId, MessageRecord,
    MsgFlags, MsgId, RawId, RawRecord, Status,
};
use crate::store::{Store, StoreError, Tx};
use parse::Parsed;
use thread::{Matched, ThreadInput, ThreadView};

/// Raw messages processed per commit.
const BATCH_ITEMS: usize = 512;
/// Raw bytes parsed per commit (keeps memory flat on a Pi).
const BATCH_BYTES: u64 = 4 << 20;
/// Longest chain of merged conversations we follow.
const MAX_MERGE_HOPS: u32 = 64;

/// What processing did, summed over messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub processed: u64,
    pub new_conversations: u64,
    pub joined: u64,
    pub merged_conversations: u64,
    /// Same Message-ID and content delivered again (another account, another copy).
    pub duplicates: u64,
    /// Messages that carried at least one parse warning.
    pub with_warnings: u64,
    /// Auto-replies queued for new conversations.
    pub auto_replies: u64,
    /// Messages a filter or a trusted header said to ignore (raw kept, no conversation).
    pub ignored: u64,
    /// Other mail queued: notifications, agents' answers by mail sent on as replies.
    pub queued: u64,
    /// Messages refused by an account that creates no new conversations (raw kept).
    pub refused: u64,
}

impl Summary {
    pub fn add(&mut self, o: &Summary) {
        self.processed += o.processed;
        self.new_conversations += o.new_conversations;
        self.auto_replies += o.auto_replies;
        self.queued += o.queued;
        self.joined += o.joined;
        self.merged_conversations += o.merged_conversations;
        self.duplicates += o.duplicates;
        self.with_warnings += o.with_warnings;
        self.ignored += o.ignored;
        self.refused += o.refused;
    }
}

/// Processes every pending raw message, in arrival order, batch by batch.
pub fn process_pending(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
) -> Result<Summary, StoreError> {
    process_pending_with(store, settings, clock, &std::collections::BTreeMap::new())
}

/// Like `process_pending`, with the bytes of some raw messages already in memory (intake
/// just committed them), so they are not read back from the store.
pub fn process_pending_with(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    in_memory: &std::collections::BTreeMap<RawId, &[u8]>,
) -> Result<Summary, StoreError> {
    let mut total = Summary::default();
    loop {
        let reader = store.read()?;
        // Bytes handed over in memory cost nothing more to hold: one commit for them all.
        let max_bytes = if in_memory.is_empty() {
            BATCH_BYTES
        } else {
            u64::MAX
        };
        let ids = reader.pending(BATCH_ITEMS, max_bytes)?;
        if ids.is_empty() {
            return Ok(total);
        }
        let mut batch = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(rec) = reader.raw(id)? else { continue };
            let bytes = match in_memory.get(&id) {
                Some(b) => std::borrow::Cow::Borrowed(*b),
                None => std::borrow::Cow::Owned(reader.raw_bytes(id)?.unwrap_or_default()),
            };
            batch.push((id, rec, bytes));
        }
        // Filters, loaded once per batch, decide before the write transaction starts.
        let stage = filter::Stage::load(&reader)?;
        drop(reader);
        let parsed = parse_all(&batch);
        let decided: Vec<Option<filter::Decision>> = batch
            .iter()
            .map(|(_, rec, bytes)| stage.decide(rec, bytes))
            .collect();
        let s = store.write(|tx| {
            let mut s = Summary::default();
            for ((item, p), d) in batch.iter().zip(parsed).zip(&decided) {
                s.add(&process_one(tx, item, p, d.as_ref(), settings, clock)?);
            }
            Ok::<_, StoreError>(s)
        })?;
        total.add(&s);
    }
}

/// Parses a batch, on two threads when it is worth it (the Pi has four cores).
fn parse_all(batch: &[(RawId, RawRecord, std::borrow::Cow<'_, [u8]>)]) -> Vec<Parsed> {
    if batch.len() < 8 {
        return batch.iter().map(|(_, _, b)| parse::parse(b)).collect();
    }
    let mid = batch.len() / 2;
    let (a, b) = batch.split_at(mid);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            b.iter()
                .map(|(_, _, b)| parse::parse(b))
                .collect::<Vec<_>>()
        });
        let mut out: Vec<Parsed> = a.iter().map(|(_, _, b)| parse::parse(b)).collect();
        match h.join() {
            Ok(mut rest) => out.append(&mut rest),
            // The parse stage catches panics itself; this is belt and braces.
            Err(_) => out.extend(b.iter().map(|(_, _, b)| parse::parse(b))),
        }
        out
    })
}

/// Resolves a conversation through merges to the one that holds its messages now.
fn resolve(tx: &Tx<'_>, mut id: ConvId) -> Result<Option<ConvId>, StoreError> {
    for _ in 0..MAX_MERGE_HOPS {
        match tx.conversation(id)? {
            Some(c) => match c.merged_into {
                Some(next) if c.status == Status::Merged => id = next,
                _ => return Ok(Some(id)),
            },
            None => return Ok(None),
        }
    }
    Ok(None)
}

struct View<'a, 't>(&'a Tx<'t>);

impl ThreadView for View<'_, '_> {
    type Error = StoreError;
    fn conversation_of_msgid(&self, id: &str) -> Result<Option<ConvId>, StoreError> {
        match self.0.message_by_msgid(id)? {
            Some(m) => match self.0.message(m)? {
                Some(rec) => resolve(self.0, rec.conv),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }
    fn conversation_by_number(&self, n: u64) -> Result<Option<ConvId>, StoreError> {
        resolve(self.0, ConvId(n))
    }
    fn waiting_on(&self, id: &str) -> Result<Vec<ConvId>, StoreError> {
        let mut out = Vec::new();
        for c in self.0.waiting_for(id)? {
            if let Some(r) = resolve(self.0, c)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn log(
    tx: &mut Tx<'_>,
    clock: &dyn Clock,
    level: Level,
    raw: Option<RawId>,
    conv: Option<ConvId>,
    text: String,
) -> Result<(), StoreError> {
    tx.log(&LogEntry {
        at: clock.now_ms(),
        level,
        component: "pipeline".into(),
        raw,
        conv,
        text,
    })
}

/// Same sender, subject and date: a second delivery of the same mail, not a collision.
fn same_mail(a: &MessageRecord, p: &Parsed, date: i64) -> bool {
    let email = |x: Option<&Addr>| x.map(|a| a.email.to_ascii_lowercase());
    email(a.from.as_ref()) == email(p.from.as_ref()) && a.subject == p.subject && a.date == date
}

fn process_one(
    tx: &mut Tx<'_>,
    item: &(RawId, RawRecord, std::borrow::Cow<'_, [u8]>),
    mut p: Parsed,
    decided: Option<&filter::Decision>,
    settings: &Settings,
    clock: &dyn Clock,
) -> Result<Summary, StoreError> {
    let (raw, rec, bytes) = (item.0, &item.1, item.2.as_ref());
    let mut s = Summary::default();
    if !tx.is_pending(raw)? {
        return Ok(s); // already processed: idempotent
    }
    s.processed = 1;
    let date = p.date.unwrap_or(rec.received_at.div_euclid(1000));
    // Duplicate delivery of a Message-ID we already have?
    let mut index_own_id = p.message_id.is_some();
    if let Some(mid) = p.message_id.clone()
        && let Some(existing) = tx.message_by_msgid(&mid)?
        && let Some(mut m) = tx.message(existing)?
    {
        if m.direction != Direction::In || same_mail(&m, &p, date) {
            if !m.also_raw.contains(&raw) && m.raw != raw {
                m.also_raw.push(raw);
            }
            tx.put_message(&m)?;
            tx.finish_raw(raw, Some(m.id))?;
            let sources = rec.sources.first().cloned().unwrap_or_default();
            log(
                tx,
                clock,
                Level::Notice,
                Some(raw),
                Some(m.conv),
                format!(
                    "duplicate of message {} (Message-ID <{mid}>) from {sources}; recorded as a second source",
                    m.id
                ),
            )?;
            s.duplicates = 1;
            return Ok(s);
        }
        p.warnings.push(format!(
                    "Message-ID <{mid}> is already used by message {} with different content; kept as a separate message",
                    m.id
                ));
        index_own_id = false;
    }
    // An agent's answer to a notification (their address and the notification's token):
    // a reply to the customer, never customer mail.
    if let Some((agent, conv, made)) = crate::notify::agent_answer(tx, &p)? {
        if crate::notify::answer_by_mail(tx, clock, settings, raw, &p, bytes, &agent, conv, made)? {
            s.queued = 1;
        }
        return Ok(s);
    }
    let filtered = decided.and_then(filter::describe);
    if let Some(d) = decided
        && d.outcome.ignore
    {
        tx.finish_raw(raw, None)?;
        let who = p.from.as_ref().map(|a| a.to_string()).unwrap_or_default();
        log(
            tx,
            clock,
            Level::Info,
            Some(raw),
            None,
            format!(
                "message from {who} ({}) ignored: {}; raw message {raw} kept, no conversation",
                p.subject,
                filtered.as_deref().unwrap_or("filters")
            ),
        )?;
        s.ignored = 1;
        return Ok(s);
    }
    let outcome = decided.map(|d| &d.outcome);
    let decision = thread::decide(
        &ThreadInput {
            message_id: if index_own_id {
                p.message_id.as_deref()
            } else {
                None
            },
            in_reply_to: &p.in_reply_to,
            references: &p.references,
            reported_ids: &p.reported_ids,
            subject: &p.subject,
        },
        &settings.subject_tag_prefix,
        &View(tx),
    )?;
    // Only mail that just arrived from a mail account is answered: never imported
    // files, never old mail an account brought in when it was added.
    let live = rec
        .sources
        .first()
        .is_some_and(|s| s.starts_with("imap:") || s.starts_with("pop3:"))
        && clock.now_ms() / 1000 - date < 2 * 86_400;
    let quiet = outcome
        .is_some_and(|o| o.no_auto_reply || o.spam || o.status == Some(crate::model::Status::Spam));
    // The account's ticket-creation options, for mail that would start a conversation.
    let account = crate::creation::account_of_raw(tx, rec)?;
    let mut target = decision.target;
    let mut bundled = false;
    let mut mailbox_of_new = None;
    if target.is_none()
        && let Some(a) = &account
    {
        let mailbox = new_mailbox(tx, rec, &p)?;
        mailbox_of_new = Some(mailbox);
        if a.creation.no_new {
            return refuse(tx, raw, a, mailbox, &p, live && !quiet, clock);
        }
        if let Some(c) = crate::creation::bundle_target(tx, a, mailbox, &p, rec.received_at)? {
            target = Some(c);
            bundled = true;
        }
    }
    let msg_id = MsgId(tx.next_id("msg")?);
    let (conv_id, created) = match target {
        Some(c) => (c, false),
        None => {
            let id = ConvId(tx.next_id("conv")?);
            let mailbox = match mailbox_of_new {
                Some(m) => m,
                None => new_mailbox(tx, rec, &p)?,
            };
            let mut c = ConversationRecord {
                id,
                mailbox,
                status: Status::Active,
                subject: p.subject.clone(),
                customer: p.from.clone(),
                created: date,
                last_activity: date,
                message_count: 0,
                merged_into: None,
                assignee: None,
                followers: Vec::new(),
                priority: Default::default(),
                tags: Vec::new(),
                fields: Default::default(),
            };
            // The account's defaults first: the filters override them.
            if let Some(a) = &account {
                for note in crate::creation::apply_defaults(tx, &mut c, &a.creation)? {
                    log(tx, clock, Level::Warn, Some(raw), Some(id), note)?;
                }
            }
            if let Some(o) = outcome {
                for note in filter::apply_new(tx, &mut c, o)? {
                    log(tx, clock, Level::Warn, Some(raw), Some(id), note)?;
                }
            }
            tx.put_conversation(&c)?;
            (id, true)
        }
    };
    for from in &decision.merge {
        merge(tx, *from, conv_id, clock)?;
        s.merged_conversations += 1;
    }
    if !p.warnings.is_empty() {
        s.with_warnings = 1;
    }
    let record = MessageRecord {
        id: msg_id,
        conv: conv_id,
        raw,
        also_raw: Vec::new(),
        direction: Direction::In,
        message_id: p.message_id.clone(),
        in_reply_to: p.in_reply_to.clone(),
        references: p.references.clone(),
        subject: p.subject.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        cc: p.cc.clone(),
        date,
        flags: p.flags,
        attachments: p.attachments,
        preview: p.preview.clone(),
        warnings: p.warnings.clone(),
    };
    tx.put_message(&record)?;
    tx.link(conv_id, msg_id)?;
    if index_own_id && let Some(mid) = &p.message_id {
        tx.index_msgid(mid, msg_id)?;
        tx.clear_waiting(mid)?;
    }
    for r in &decision.unknown_refs {
        tx.add_waiting(r, conv_id)?;
    }
    let reopened = add_to_conversation(tx, conv_id, &record)?;
    if !created
        && let Some(o) = outcome
        && let Some(mut c) = tx.conversation(conv_id)?
        && filter::apply_existing(&mut c, o)
    {
        tx.put_conversation(&c)?;
    }
    tx.finish_raw(raw, Some(msg_id))?;
    if p.flags.has(MsgFlags::BOUNCE) {
        mark_bounced(tx, &p, msg_id, clock)?;
    }
    if let Some(a) = &account
        && a.creation.create_customers
        && !p.flags.is_automatic()
        && let Some(c) = crate::creation::note_customer(tx, &p, clock)?
    {
        log(
            tx,
            clock,
            Level::Info,
            Some(raw),
            Some(conv_id),
            format!(
                "new customer {} (company {}) from account {:?}",
                c.email, c.company, a.name
            ),
        )?;
    }
    if created
        && live
        && !quiet
        && crate::autoreply::on_new_conversation(tx, conv_id, &record, &p, settings, clock)?
    {
        s.auto_replies = 1;
    }
    // Notifications, for mail that just arrived (like auto-replies): a new conversation,
    // or a person's mail joining one.
    let from_us = match p.from.as_ref() {
        Some(a) => crate::mailboxes::is_ours(&tx.mailboxes()?, &a.email),
        None => false,
    };
    if live && !from_us && (created || !p.flags.is_automatic()) {
        let event = if created {
            crate::notify::Event::NewConversation
        } else {
            crate::notify::Event::CustomerReply
        };
        if let Some(c) = tx.conversation(conv_id)? {
            let text = parse::body_text(bytes).unwrap_or_else(|| p.preview.clone());
            let sender = p.from.as_ref().map(|a| a.email.as_str());
            s.queued += crate::notify::notify_in(tx, clock, &event, &c, &text, sender, "")?;
        }
    }
    let who = p
        .from
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "(no sender)".into());
    let kind = flag_words(p.flags);
    let text = if created {
        s.new_conversations = 1;
        format!(
            "new conversation #{conv_id} from {who}{kind}: {}",
            p.subject
        )
    } else {
        s.joined = 1;
        let how = match decision.matched {
            Matched::Nothing if bundled => format!(
                "as mail of the same sender and subject within the poll interval of account {:?}",
                account.as_ref().map(|a| a.name.as_str()).unwrap_or("")
            ),
            Matched::Tag(n) => format!("by the subject tag #{n}"),
            Matched::InReplyTo => "by In-Reply-To".into(),
            Matched::References => "by References".into(),
            Matched::Report => "as a delivery report about a message in it".into(),
            Matched::EarlierReplies => "as the message its earlier-arrived replies answer".into(),
            Matched::Nothing => "".into(),
        };
        format!(
            "message from {who}{kind} joined conversation #{conv_id} {how}{}",
            if reopened {
                "; conversation reopened"
            } else {
                ""
            }
        )
    };
    log(tx, clock, Level::Info, Some(raw), Some(conv_id), text)?;
    if let Some(f) = filtered {
        log(
            tx,
            clock,
            Level::Info,
            Some(raw),
            Some(conv_id),
            format!("message {msg_id}: {f}"),
        )?;
    }
    if !p.warnings.is_empty() {
        log(
            tx,
            clock,
            Level::Warn,
            Some(raw),
            Some(conv_id),
            format!("message {msg_id}: {}", p.warnings.join("; ")),
        )?;
    }
    Ok(s)
}

/// The mailbox a new conversation of this raw message goes to: by address when its
/// account dispatches so, else the source's mailbox (the first when that one is gone).
fn new_mailbox(tx: &Tx<'_>, rec: &RawRecord, p: &Parsed) -> Result<MailboxId, StoreError> {
    Ok(match dispatch(tx, rec, p)? {
        Some(m) => m,
        None if tx.mailbox(rec.mailbox)?.is_some() => rec.mailbox,
        None => MailboxId(1),
    })
}

/// Mail that would start a conversation, from an account that creates none: the raw
/// message is kept (never deleted), no conversation is made, the log says so, and the
/// sender is answered with the account's template when it was chosen and the guards
/// allow (`answer`: live mail no filter silenced).
fn refuse(
    tx: &mut Tx<'_>,
    raw: RawId,
    a: &crate::model::AccountRecord,
    mailbox: MailboxId,
    p: &Parsed,
    answer: bool,
    clock: &dyn Clock,
) -> Result<Summary, StoreError> {
    let mut s = Summary {
        processed: 1,
        refused: 1,
        ..Summary::default()
    };
    tx.finish_raw(raw, None)?;
    let who = p
        .from
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "(no sender)".into());
    log(
        tx,
        clock,
        Level::Notice,
        Some(raw),
        None,
        format!(
            "message from {who} ({:?}) refused: account {:?} creates no new conversations and it answers none of ours; raw message {raw} kept, no conversation",
            p.subject, a.name
        ),
    )?;
    if a.creation.answer_refused {
        let why = if answer {
            match crate::creation::answer_refused(tx, a, mailbox, p, clock)? {
                Ok(_) => {
                    s.queued = 1;
                    None
                }
                Err(why) => Some(why),
            }
        } else {
            Some("it did not just arrive, or a filter silenced it".to_owned())
        };
        if let Some(why) = why {
            log(
                tx,
                clock,
                Level::Info,
                Some(raw),
                None,
                format!("no answer to the refused message from {who}: {why}"),
            )?;
        }
    }
    Ok(s)
}

/// A delivery report about mail we sent: the outbox entry of each reported message of
/// ours is marked failed with the report's text, and the log says so.
fn mark_bounced(
    tx: &mut Tx<'_>,
    p: &Parsed,
    report: MsgId,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    let now = clock.now_ms();
    for id in &p.reported_ids {
        let Some(ours) = tx.message_by_msgid(id)? else {
            continue;
        };
        let Some(m) = tx.message(ours)? else {
            continue;
        };
        if m.direction != Direction::Out {
            continue;
        }
        for mut o in tx.outbox()?.into_iter().filter(|o| o.msg == ours) {
            let why = format!(
                "bounced: the delivery report (message {report}) says: {}",
                if p.preview.is_empty() {
                    p.subject.as_str()
                } else {
                    p.preview.as_str()
                }
            );
            o.state = crate::model::OutboxState::Failed {
                at: now,
                reply: why.clone(),
            };
            o.last_error = why.clone();
            tx.put_outbox(&o)?;
            log(
                tx,
                clock,
                Level::Error,
                Some(o.raw),
                Some(m.conv),
                format!("message {ours} to {} {why}", o.rcpt_to.join(", ")),
            )?;
        }
    }
    Ok(())
}

/// The mailbox a new conversation belongs to by the address its first message was sent
/// to, when its account dispatches by address: the envelope recipients a server recorded
/// (Delivered-To, X-Original-To) first, then To and Cc. `None`: the source's mailbox.
fn dispatch(tx: &Tx<'_>, rec: &RawRecord, p: &Parsed) -> Result<Option<MailboxId>, StoreError> {
    let Some(account) = rec.sources.first().and_then(|s| {
        s.strip_prefix("imap:")
            .or_else(|| s.strip_prefix("pop3:"))
            .and_then(|rest| rest.split('/').next())
    }) else {
        return Ok(None);
    };
    let Some(acct) = tx.accounts()?.into_iter().find(|a| a.name == account) else {
        return Ok(None);
    };
    if !acct.dispatch_by_address {
        return Ok(None);
    }
    let mailboxes = tx.mailboxes()?;
    let candidates = p
        .delivered_to
        .iter()
        .cloned()
        .chain(p.to.iter().chain(&p.cc).map(|a| a.email.clone()));
    for a in candidates {
        if let Some(m) = crate::mailboxes::owner_of(&mailboxes, &a) {
            return Ok(Some(m.id));
        }
    }
    Ok(None)
}

fn flag_words(f: MsgFlags) -> String {
    let names = f.names();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// Updates a conversation for a new message; returns whether it was reopened.
fn add_to_conversation(
    tx: &mut Tx<'_>,
    conv: ConvId,
    m: &MessageRecord,
) -> Result<bool, StoreError> {
    let mut c = tx.conversation(conv)?.ok_or(StoreError::NotFound {
        what: "conversation",
        id: conv.0,
    })?;
    let first = c.message_count == 0;
    c.message_count = c.message_count.saturating_add(1);
    if first || m.date < c.created {
        // The earliest message names the conversation (an original that arrived after
        // its replies takes over the subject and the customer).
        c.created = m.date;
        if m.direction == Direction::In {
            c.subject = m.subject.clone();
            c.customer = m.from.clone();
        }
    }
    c.last_activity = c.last_activity.max(m.date);
    let mut reopened = false;
    if !first
        && m.direction == Direction::In
        && !m.flags.is_automatic()
        && !m.flags.has(MsgFlags::BULK)
        && matches!(c.status, Status::Closed | Status::Pending)
    {
        c.status = Status::Active;
        reopened = true;
    }
    tx.put_conversation(&c)?;
    Ok(reopened)
}

/// Folds conversation `from` into `into`: its messages move, it stays as a forward pointer.
pub fn merge(
    tx: &mut Tx<'_>,
    from: ConvId,
    into: ConvId,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    if from == into {
        return Ok(());
    }
    let mut src = tx.conversation(from)?.ok_or(StoreError::NotFound {
        what: "conversation",
        id: from.0,
    })?;
    let mut dst = tx.conversation(into)?.ok_or(StoreError::NotFound {
        what: "conversation",
        id: into.0,
    })?;
    for id in tx.conversation_messages(from)? {
        tx.unlink(from, id)?;
        tx.link(into, id)?;
        if let Some(mut m) = tx.message(id)? {
            m.conv = into;
            tx.put_message(&m)?;
        }
    }
    dst.message_count = dst.message_count.saturating_add(src.message_count);
    if src.message_count > 0
        && (dst.message_count == src.message_count || src.created < dst.created)
    {
        dst.created = src.created;
        dst.subject = src.subject.clone();
        dst.customer = src.customer.clone();
    }
    dst.last_activity = dst.last_activity.max(src.last_activity);
    if src.status == Status::Active && matches!(dst.status, Status::Closed | Status::Pending) {
        dst.status = Status::Active;
    }
    src.status = Status::Merged;
    src.merged_into = Some(into);
    src.message_count = 0;
    tx.put_conversation(&src)?;
    tx.put_conversation(&dst)?;
    log(
        tx,
        clock,
        Level::Info,
        None,
        Some(into),
        format!("conversation #{from} merged into #{into}"),
    )?;
    Ok(())
}

/// Files a message of our own (a reply, an auto-reply, a note) whose exact bytes were
/// just stored as `raw`: a message record in `conv` built from the parsed bytes, its
/// Message-ID indexed so answers thread to it, the conversation's activity updated. Runs
/// in the transaction that stores the bytes (and, for mail, queues it in the outbox).
pub fn record_own(
    tx: &mut Tx<'_>,
    conv: ConvId,
    raw: RawId,
    p: &Parsed,
    direction: Direction,
    clock: &dyn Clock,
) -> Result<MessageRecord, StoreError> {
    let m = put_own(tx, conv, raw, p, direction, clock)?;
    tx.finish_raw(raw, Some(m.id))?;
    Ok(m)
}

/// Records a message we sent without its bytes (tests of threading against our own
/// Message-IDs): answers to it thread by its Message-ID.
pub fn record_sent(
    tx: &mut Tx<'_>,
    conv: ConvId,
    message_id: &str,
    subject: &str,
    from: Addr,
    to: Vec<Addr>,
    date: i64,
) -> Result<MsgId, StoreError> {
    let p = Parsed {
        message_id: Some(message_id.to_owned()),
        subject: subject.to_owned(),
        from: Some(from),
        to,
        date: Some(date),
        ..Parsed::default()
    };
    Ok(put_own(
        tx,
        conv,
        RawId(0),
        &p,
        Direction::Out,
        &crate::model::FixedClock(date * 1000),
    )?
    .id)
}

/// The message record of our own message, linked, indexed and counted on `conv`.
fn put_own(
    tx: &mut Tx<'_>,
    conv: ConvId,
    raw: RawId,
    p: &Parsed,
    direction: Direction,
    clock: &dyn Clock,
) -> Result<MessageRecord, StoreError> {
    let conv = resolve(tx, conv)?.ok_or(StoreError::NotFound {
        what: "conversation",
        id: conv.0,
    })?;
    let id = MsgId(tx.next_id("msg")?);
    let m = MessageRecord {
        id,
        conv,
        raw,
        also_raw: Vec::new(),
        direction,
        message_id: p.message_id.clone(),
        in_reply_to: p.in_reply_to.clone(),
        references: p.references.clone(),
        subject: p.subject.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        cc: p.cc.clone(),
        date: p.date.unwrap_or(clock.now_ms().div_euclid(1000)),
        flags: p.flags,
        attachments: p.attachments,
        preview: p.preview.clone(),
        warnings: Vec::new(),
    };
    tx.put_message(&m)?;
    tx.link(conv, id)?;
    if let Some(mid) = &p.message_id {
        tx.index_msgid(mid, id)?;
    }
    add_to_conversation(tx, conv, &m)?;
    Ok(m)
}

/// Wakes the pipeline worker after commit 1 (cheap; wakes coalesce).
#[derive(Clone, Debug)]
pub struct Waker(smol::channel::Sender<()>);

impl Waker {
    pub fn wake(&self) {
        let _ = self.0.try_send(());
    }

    /// A waker connected to nothing (one-shot commands run the pipeline themselves).
    pub fn detached() -> Waker {
        let (tx, _rx) = smol::channel::bounded(1);
        Waker(tx)
    }
}

/// Starts the pipeline worker thread: it processes the pending queue whenever woken, and
/// ends when every `Waker` is dropped.
pub fn spawn_worker(
    store: std::sync::Arc<Store>,
    clock: std::sync::Arc<dyn Clock>,
) -> (Waker, std::thread::JoinHandle<Summary>) {
    spawn_worker_with(store, clock, None)
}

/// `spawn_worker`, waking `outbox` whenever a batch queued auto-replies.
pub fn spawn_worker_with(
    store: std::sync::Arc<Store>,
    clock: std::sync::Arc<dyn Clock>,
    outbox: Option<smol::channel::Sender<()>>,
) -> (Waker, std::thread::JoinHandle<Summary>) {
    let (tx, rx) = smol::channel::bounded::<()>(1);
    let handle = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let mut total = Summary::default();
            while rx.recv_blocking().is_ok() {
                let result = store
                    .read()
                    .and_then(|r| Settings::load(&r))
                    .and_then(|settings| process_pending(&store, &settings, clock.as_ref()));
                match result {
                    Ok(s) if s.processed > 0 => {
                        total.add(&s);
                        if (s.auto_replies > 0 || s.queued > 0)
                            && let Some(o) = &outbox
                        {
                            let _ = o.try_send(());
                        }
                        log::info!(
                        "pipeline: {} messages, {} new conversations, {} joined, {} duplicates",
                        s.processed,
                        s.new_conversations,
                        s.joined,
                        s.duplicates
                        );
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("pipeline: {e}; the messages stay queued and are retried at the next wake or start"),
                }
            }
            total
        });
    match handle {
        Ok(h) => (Waker(tx), h),
        Err(e) => {
            // Without a thread the queue is still processed at the next start.
            log::error!("cannot start the pipeline thread: {e}");
            (Waker(tx), std::thread::spawn(Summary::default))
        }
    }
}

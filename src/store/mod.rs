//! The one store: a redb file in the data dir.
//!
//! Owns: the only code that names redb; opening with crash-safe settings, migrations,
//! the intake commit of raw bytes (commit 1), typed access to every table for the
//! pipeline's commit 2, and the read side used by the CLI and the web UI.
//! Must not: hold business rules (threading, status changes, who is told what). Those
//! live in `pipeline` and call the typed accessors here.
//!
//! Durability: every write transaction is `Durability::Immediate` with two-phase commit
//! and quick-repair, so a power cut at any instant leaves the last committed state, and
//! reopening after a crash is fast (redb >= 4.2 fixed the double-crash rollback that
//! two-phase commit also guards against).

pub mod codec;
mod migrate;
pub mod schema;

use crate::model::{
    AccountId, AccountRecord, ContentHash, ConvId, ConversationRecord, FolderCursor, LogEntry,
    MailboxId, MailboxRecord, MessageRecord, MsgId, OutboxRecord, RawId, RawRecord, SmtpId,
    SmtpRecord, TakenRecord,
};
use codec::DecodeError;
use redb::{
    Database, Durability, MultimapTable, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, ReadableTableMetadata, Table, WriteTransaction,
};
use schema::*;
use std::fmt;
use std::path::{Path, PathBuf};

/// The inbox index sorts newest first: it stores the time counted down from the end.
fn inbox_time(last_activity: i64) -> u64 {
    u64::MAX - (last_activity.max(0) as u64)
}

/// How many source labels a raw record lists before it only counts further sightings.
const MAX_SOURCES: usize = 16;

/// What went wrong in the store, for people.
#[derive(Debug)]
pub enum StoreError {
    /// Another process holds the database file.
    AlreadyOpen { path: PathBuf },
    /// The file could not be opened or created.
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    /// The file was written by a newer Postroom.
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A redb operation failed.
    Db {
        op: &'static str,
        source: redb::Error,
    },
    /// A stored value could not be decoded.
    Decode(DecodeError),
    /// A caller asked for something that is not there.
    NotFound { what: &'static str, id: u64 },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::AlreadyOpen { path } => write!(
                f,
                "the store {} is open in another postroom process. Stop that process first \
                 (for the service: systemctl stop postroom), or use another --data directory",
                path.display()
            ),
            StoreError::Open { path, source } => write!(
                f,
                "could not open the store {}: {source}. Check that the data directory is \
                 writable and the disk is not full",
                path.display()
            ),
            StoreError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "the store {} has schema version {found}, but this postroom only knows up to \
                 version {supported}. Install the newer postroom that wrote it, or restore a backup",
                path.display()
            ),
            StoreError::Db { op, source } => write!(f, "store: {op} failed: {source}"),
            StoreError::Decode(e) => write!(f, "{e}. Restore the data directory from a backup"),
            StoreError::NotFound { what, id } => write!(f, "there is no {what} {id}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Decode(e)
    }
}

/// Adds the operation's name to a redb error.
pub(crate) trait Ctx<T> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Ctx<T> for Result<T, E> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db {
            op,
            source: e.into(),
        })
    }
}

/// SHA-256 of raw bytes: the content address.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    ContentHash(out)
}

/// One raw message handed to intake.
pub struct NewRaw<'a> {
    pub bytes: &'a [u8],
    pub hash: ContentHash,
    pub source: String,
    pub mailbox: MailboxId,
}

/// What intake did with one raw message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// Stored for the first time; the pipeline will process it.
    New(RawId),
    /// The exact bytes were already stored under this id; the source was recorded.
    SameBytes(RawId),
}

/// Options for opening the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// redb page cache in bytes (the Pi has little RAM).
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 4 << 20,
        }
    }
}

/// The open store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store file and migrates it to `SCHEMA_VERSION`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(usize::try_from(opts.cache_bytes).unwrap_or(usize::MAX));
        let db = builder.create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
                path: path.to_owned(),
            },
            source => StoreError::Open {
                path: path.to_owned(),
                source,
            },
        })?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        migrate::run(&store)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().ctx("starting a write transaction")?;
        txn.set_durability(Durability::Immediate)
            .ctx("setting durability")?;
        txn.set_two_phase_commit(true);
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// Runs `f` on the bare redb transaction (migrations that rename or drop tables).
    pub(crate) fn write_raw<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.begin_write()?;
        let out = f(&txn)?;
        txn.commit().ctx("committing a write transaction")?;
        Ok(out)
    }

    /// Runs `f` in one durable write transaction; commits if it returns `Ok`, rolls back
    /// otherwise.
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let txn = self.begin_write()?;
        let out = {
            let mut tx = Tx::open(&txn)?;
            f(&mut tx)?
        };
        txn.commit().ctx("committing a write transaction")?;
        Ok(out)
    }

    /// Commit 1 of the data flow: stores raw bytes durably (one fsync for the batch),
    /// content-addressed, and queues the new ones for the pipeline.
    pub fn commit_raws(
        &self,
        batch: &[NewRaw<'_>],
        now_ms: i64,
    ) -> Result<Vec<RawOutcome>, StoreError> {
        self.write(|tx| batch.iter().map(|raw| tx.add_raw(raw, now_ms)).collect())
    }

    /// A read-only snapshot.
    pub fn read(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            txn: self.db.begin_read().ctx("starting a read transaction")?,
        })
    }
}

/// All tables of one write transaction, opened once.
pub struct Tx<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    counters: Table<'t, &'static str, u64>,
    settings: Table<'t, &'static str, &'static str>,
    blobs: Table<'t, ([u8; 32], u32), &'static [u8]>,
    blob_owner: Table<'t, [u8; 32], u64>,
    raws: Table<'t, u64, &'static [u8]>,
    pending: Table<'t, u64, ()>,
    messages: Table<'t, u64, &'static [u8]>,
    raw_message: Table<'t, u64, u64>,
    msgids: Table<'t, &'static str, u64>,
    convs: Table<'t, u64, &'static [u8]>,
    conv_msgs: Table<'t, (u64, u64), ()>,
    waiting: MultimapTable<'t, &'static str, u64>,
    mailboxes: Table<'t, u64, &'static [u8]>,
    log: Table<'t, u64, &'static [u8]>,
    accounts: Table<'t, u64, &'static [u8]>,
    cursors: Table<'t, (u64, &'static str), &'static [u8]>,
    taken: Table<'t, (u64, &'static str, u32, &'static str), &'static [u8]>,
    skipped: Table<'t, (u64, &'static str, u32, &'static str), u64>,
    smtp: Table<'t, u64, &'static [u8]>,
    outbox: Table<'t, u64, &'static [u8]>,
    auto_sent: Table<'t, (&'static str, i64), u64>,
    users: Table<'t, u64, &'static [u8]>,
    user_logins: Table<'t, &'static str, u64>,
    sessions: Table<'t, [u8; 32], &'static [u8]>,
    api_tokens: Table<'t, [u8; 32], &'static [u8]>,
    invites: Table<'t, [u8; 32], &'static [u8]>,
    notify_prefs: Table<'t, u64, &'static [u8]>,
    notify_tokens: Table<'t, [u8; 32], &'static [u8]>,
    read_marks: Table<'t, (u64, u64), i64>,
    drafts: Table<'t, (u64, u64), &'static [u8]>,
    inbox: Table<'t, (u64, u8, u64, u64), ()>,
    inbox_counts: Table<'t, (u64, u8), u64>,
    open_by_assignee: Table<'t, (u64, u64, u64, u64), ()>,
    customer_convs: Table<'t, (&'static str, u64), ()>,
    mailbox_perms: Table<'t, (u64, u64), u32>,
    filters: Table<'t, u64, &'static [u8]>,
    customers: Table<'t, &'static str, &'static [u8]>,
}

/// The key of one message on a server: which account, folder, UIDVALIDITY and item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemKey {
    pub account: AccountId,
    pub folder: String,
    pub uidvalidity: u32,
    /// IMAP UID as 10 zero-padded digits, or a POP3 UIDL.
    pub item: String,
}

impl ItemKey {
    /// The key of an IMAP UID.
    pub fn imap(account: AccountId, folder: &str, uidvalidity: u32, uid: u32) -> ItemKey {
        ItemKey {
            account,
            folder: folder.to_owned(),
            uidvalidity,
            item: format!("{uid:010}"),
        }
    }
    /// The key of a POP3 UIDL.
    pub fn pop3(account: AccountId, uidl: &str) -> ItemKey {
        ItemKey {
            account,
            folder: "INBOX".into(),
            uidvalidity: 0,
            item: uidl.to_owned(),
        }
    }
    /// The key as stored in the `TAKEN` and `SKIPPED` tables.
    fn parts(&self) -> (u64, &str, u32, &str) {
        (
            self.account.0,
            self.folder.as_str(),
            self.uidvalidity,
            self.item.as_str(),
        )
    }

    /// The IMAP UID, if the item is one.
    pub fn uid(&self) -> Option<u32> {
        self.item.parse().ok()
    }
}

impl<'t> Tx<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tx<'t>, StoreError> {
        const OP: &str = "opening a table";
        Ok(Tx {
            meta: txn.open_table(META).ctx(OP)?,
            counters: txn.open_table(COUNTERS).ctx(OP)?,
            settings: txn.open_table(SETTINGS).ctx(OP)?,
            blobs: txn.open_table(BLOB_CHUNKS).ctx(OP)?,
            blob_owner: txn.open_table(BLOB_OWNER).ctx(OP)?,
            raws: txn.open_table(RAWS).ctx(OP)?,
            pending: txn.open_table(PENDING).ctx(OP)?,
            messages: txn.open_table(MESSAGES).ctx(OP)?,
            raw_message: txn.open_table(RAW_MESSAGE).ctx(OP)?,
            msgids: txn.open_table(MSGID_INDEX).ctx(OP)?,
            convs: txn.open_table(CONVERSATIONS).ctx(OP)?,
            conv_msgs: txn.open_table(CONV_MESSAGES).ctx(OP)?,
            waiting: txn.open_multimap_table(WAITING).ctx(OP)?,
            mailboxes: txn.open_table(MAILBOXES).ctx(OP)?,
            log: txn.open_table(COMM_LOG).ctx(OP)?,
            accounts: txn.open_table(ACCOUNTS).ctx(OP)?,
            cursors: txn.open_table(CURSORS).ctx(OP)?,
            taken: txn.open_table(TAKEN).ctx(OP)?,
            skipped: txn.open_table(SKIPPED).ctx(OP)?,
            smtp: txn.open_table(SMTP_SERVERS).ctx(OP)?,
            outbox: txn.open_table(OUTBOX).ctx(OP)?,
            auto_sent: txn.open_table(AUTO_SENT).ctx(OP)?,
            users: txn.open_table(USERS).ctx(OP)?,
            user_logins: txn.open_table(USER_LOGINS).ctx(OP)?,
            sessions: txn.open_table(SESSIONS).ctx(OP)?,
            api_tokens: txn.open_table(API_TOKENS).ctx(OP)?,
            invites: txn.open_table(INVITES).ctx(OP)?,
            notify_prefs: txn.open_table(NOTIFY_PREFS).ctx(OP)?,
            notify_tokens: txn.open_table(NOTIFY_TOKENS).ctx(OP)?,
            read_marks: txn.open_table(READ_MARKS).ctx(OP)?,
            drafts: txn.open_table(DRAFTS).ctx(OP)?,
            inbox: txn.open_table(INBOX).ctx(OP)?,
            inbox_counts: txn.open_table(INBOX_COUNTS).ctx(OP)?,
            open_by_assignee: txn.open_table(OPEN_BY_ASSIGNEE).ctx(OP)?,
            customer_convs: txn.open_table(CUSTOMER_CONVS).ctx(OP)?,
            mailbox_perms: txn.open_table(MAILBOX_PERMS).ctx(OP)?,
            filters: txn.open_table(FILTERS).ctx(OP)?,
            customers: txn.open_table(CUSTOMERS).ctx(OP)?,
        })
    }

    pub fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        get_decoded(
            &self.accounts,
            id.0,
            "reading an account",
            codec::decode_account,
        )
    }

    pub fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        all_decoded(&self.accounts, "listing accounts", codec::decode_account)
    }

    pub fn put_account(&mut self, a: &AccountRecord) -> Result<(), StoreError> {
        self.accounts
            .insert(a.id.0, codec::encode_account(a).as_slice())
            .ctx("writing an account")?;
        Ok(())
    }

    /// Removes an account with its cursors and what it remembers of the server. The
    /// messages it brought in stay.
    pub fn remove_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        self.accounts.remove(id.0).ctx("removing an account")?;
        let lo = (id.0, "");
        self.cursors
            .retain_in(lo.., |k, _| k.0 != id.0)
            .ctx("removing cursors")?;
        self.taken
            .retain_in((id.0, "", 0u32, "").., |k, _| k.0 != id.0)
            .ctx("removing taken messages")?;
        self.skipped
            .retain_in((id.0, "", 0u32, "").., |k, _| k.0 != id.0)
            .ctx("removing skipped messages")?;
        Ok(())
    }

    pub fn cursor(
        &self,
        account: AccountId,
        folder: &str,
    ) -> Result<Option<FolderCursor>, StoreError> {
        get_cursor(&self.cursors, account, folder)
    }

    pub fn put_cursor(
        &mut self,
        account: AccountId,
        folder: &str,
        c: &FolderCursor,
    ) -> Result<(), StoreError> {
        self.cursors
            .insert((account.0, folder), codec::encode_cursor(c).as_slice())
            .ctx("writing a cursor")?;
        Ok(())
    }

    pub fn taken(&self, k: &ItemKey) -> Result<Option<TakenRecord>, StoreError> {
        get_taken(&self.taken, k)
    }

    pub fn put_taken(&mut self, k: &ItemKey, t: &TakenRecord) -> Result<(), StoreError> {
        self.taken
            .insert(k.parts(), codec::encode_taken(t).as_slice())
            .ctx("recording a taken message")?;
        Ok(())
    }

    pub fn remove_taken(&mut self, k: &ItemKey) -> Result<(), StoreError> {
        self.taken
            .remove(k.parts())
            .ctx("forgetting a taken message")?;
        Ok(())
    }

    /// Everything taken from one folder of an account, in key order.
    pub fn taken_in_folder(
        &self,
        account: AccountId,
        folder: &str,
    ) -> Result<Vec<(ItemKey, TakenRecord)>, StoreError> {
        taken_range(&self.taken, account, folder)
    }

    pub fn skipped(&self, k: &ItemKey) -> Result<Option<u64>, StoreError> {
        get_skipped(&self.skipped, k)
    }

    pub fn put_skipped(&mut self, k: &ItemKey, size: u64) -> Result<(), StoreError> {
        self.skipped
            .insert(k.parts(), size)
            .ctx("recording a skipped message")?;
        Ok(())
    }

    /// Hands out the next id of a counter (1, 2, 3, ...).
    pub fn next_id(&mut self, counter: &'static str) -> Result<u64, StoreError> {
        let next = self
            .counters
            .get(counter)
            .ctx("reading a counter")?
            .map(|g| g.value())
            .unwrap_or(0)
            + 1;
        self.counters
            .insert(counter, next)
            .ctx("advancing a counter")?;
        Ok(next)
    }

    /// Writes a `META` entry (migrations; tests that fake other versions).
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value).ctx("writing meta")?;
        Ok(())
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(key)
            .ctx("reading meta")?
            .map(|g| g.value().to_vec()))
    }

    /// Stores raw bytes (part of commit 1); the fetchers call it in the transaction that
    /// also advances their cursor.
    pub fn add_raw(&mut self, raw: &NewRaw<'_>, now_ms: i64) -> Result<RawOutcome, StoreError> {
        let owner = self
            .blob_owner
            .get(raw.hash.0)
            .ctx("looking up a content hash")?
            .map(|g| g.value());
        if let Some(id) = owner {
            let mut rec = self.raw(RawId(id))?.ok_or(StoreError::NotFound {
                what: "raw message",
                id,
            })?;
            if rec.sources.len() < MAX_SOURCES {
                if !rec.sources.contains(&raw.source) {
                    rec.sources.push(raw.source.clone());
                }
            } else {
                rec.sources_dropped = rec.sources_dropped.saturating_add(1);
            }
            self.put_raw(RawId(id), &rec)?;
            return Ok(RawOutcome::SameBytes(RawId(id)));
        }
        let id = RawId(self.next_id("raw")?);
        for (n, chunk) in (0u32..).zip(raw.bytes.chunks(BLOB_CHUNK)) {
            self.blobs
                .insert((raw.hash.0, n), chunk)
                .ctx("storing raw bytes")?;
        }
        if raw.bytes.is_empty() {
            self.blobs
                .insert((raw.hash.0, 0), &[][..])
                .ctx("storing raw bytes")?;
        }
        self.blob_owner
            .insert(raw.hash.0, id.0)
            .ctx("indexing raw bytes")?;
        let rec = RawRecord {
            hash: raw.hash,
            size: raw.bytes.len() as u64,
            received_at: now_ms,
            sources: vec![raw.source.clone()],
            sources_dropped: 0,
            mailbox: raw.mailbox,
        };
        self.put_raw(id, &rec)?;
        self.pending
            .insert(id.0, ())
            .ctx("queueing a raw message")?;
        Ok(RawOutcome::New(id))
    }

    fn put_raw(&mut self, id: RawId, rec: &RawRecord) -> Result<(), StoreError> {
        self.raws
            .insert(id.0, codec::encode_raw(rec).as_slice())
            .ctx("writing a raw record")?;
        Ok(())
    }

    pub fn raw(&self, id: RawId) -> Result<Option<RawRecord>, StoreError> {
        get_decoded(&self.raws, id.0, "reading a raw record", codec::decode_raw)
    }

    pub fn is_pending(&self, id: RawId) -> Result<bool, StoreError> {
        Ok(self.pending.get(id.0).ctx("reading the queue")?.is_some())
    }

    /// Marks a raw message as processed (part of commit 2) and remembers which message
    /// it became.
    pub fn finish_raw(&mut self, id: RawId, msg: Option<MsgId>) -> Result<(), StoreError> {
        self.pending.remove(id.0).ctx("dequeueing a raw message")?;
        if let Some(m) = msg {
            self.raw_message
                .insert(id.0, m.0)
                .ctx("linking a raw message")?;
        }
        Ok(())
    }

    pub fn message(&self, id: MsgId) -> Result<Option<MessageRecord>, StoreError> {
        get_decoded(
            &self.messages,
            id.0,
            "reading a message",
            codec::decode_message,
        )
    }

    pub fn put_message(&mut self, m: &MessageRecord) -> Result<(), StoreError> {
        self.messages
            .insert(m.id.0, codec::encode_message(m).as_slice())
            .ctx("writing a message")?;
        Ok(())
    }

    /// The message carrying this Message-ID, received or sent.
    pub fn message_by_msgid(&self, message_id: &str) -> Result<Option<MsgId>, StoreError> {
        Ok(self
            .msgids
            .get(msgid_key(message_id).as_str())
            .ctx("looking up a Message-ID")?
            .map(|g| MsgId(g.value())))
    }

    pub fn index_msgid(&mut self, message_id: &str, msg: MsgId) -> Result<(), StoreError> {
        self.msgids
            .insert(msgid_key(message_id).as_str(), msg.0)
            .ctx("indexing a Message-ID")?;
        Ok(())
    }

    pub fn conversation(&self, id: ConvId) -> Result<Option<ConversationRecord>, StoreError> {
        get_decoded(
            &self.convs,
            id.0,
            "reading a conversation",
            codec::decode_conversation,
        )
    }

    fn count_inbox(&mut self, mailbox: u64, bucket: u8, delta: i64) -> Result<(), StoreError> {
        const OP: &str = "counting the inbox";
        let n = self
            .inbox_counts
            .get((mailbox, bucket))
            .ctx(OP)?
            .map(|g| g.value())
            .unwrap_or(0);
        let n = if delta < 0 {
            n.saturating_sub(delta.unsigned_abs())
        } else {
            n.saturating_add(delta.unsigned_abs())
        };
        self.inbox_counts.insert((mailbox, bucket), n).ctx(OP)?;
        Ok(())
    }

    /// Writes a conversation and keeps the inbox and customer indexes in step with it.
    pub fn put_conversation(&mut self, c: &ConversationRecord) -> Result<(), StoreError> {
        const OP: &str = "writing a conversation";
        let old = self.conversation(c.id)?;
        if let Some(old) = &old {
            if let Some(b) = old.bucket() {
                let was = self
                    .inbox
                    .remove((old.mailbox.0, b, inbox_time(old.last_activity), old.id.0))
                    .ctx(OP)?
                    .is_some();
                if was {
                    self.count_inbox(old.mailbox.0, b, -1)?;
                }
            }
            if old.is_open() {
                self.open_by_assignee
                    .remove((
                        old.mailbox.0,
                        old.assignee.map_or(0, |u| u.0),
                        inbox_time(old.last_activity),
                        old.id.0,
                    ))
                    .ctx(OP)?;
            }
            if let Some(a) = &old.customer {
                let k = a.email.to_lowercase();
                self.customer_convs.remove((k.as_str(), old.id.0)).ctx(OP)?;
            }
        }
        self.convs
            .insert(c.id.0, codec::encode_conversation(c).as_slice())
            .ctx(OP)?;
        if let Some(b) = c.bucket() {
            let was = self
                .inbox
                .insert((c.mailbox.0, b, inbox_time(c.last_activity), c.id.0), ())
                .ctx(OP)?
                .is_some();
            if !was {
                self.count_inbox(c.mailbox.0, b, 1)?;
            }
        }
        if c.is_open() {
            self.open_by_assignee
                .insert(
                    (
                        c.mailbox.0,
                        c.assignee.map_or(0, |u| u.0),
                        inbox_time(c.last_activity),
                        c.id.0,
                    ),
                    (),
                )
                .ctx(OP)?;
        }
        if let Some(a) = c.customer.as_ref().filter(|a| !a.email.is_empty()) {
            let k = a.email.to_lowercase();
            self.customer_convs
                .insert((k.as_str(), c.id.0), ())
                .ctx(OP)?;
        }
        Ok(())
    }

    pub fn link(&mut self, conv: ConvId, msg: MsgId) -> Result<(), StoreError> {
        self.conv_msgs
            .insert((conv.0, msg.0), ())
            .ctx("linking a message")?;
        Ok(())
    }

    pub fn unlink(&mut self, conv: ConvId, msg: MsgId) -> Result<(), StoreError> {
        self.conv_msgs
            .remove((conv.0, msg.0))
            .ctx("unlinking a message")?;
        Ok(())
    }

    pub fn conversation_messages(&self, conv: ConvId) -> Result<Vec<MsgId>, StoreError> {
        conv_message_ids(&self.conv_msgs, conv)
    }

    /// Conversations that hold a message referring to this (not yet known) Message-ID.
    pub fn waiting_for(&self, message_id: &str) -> Result<Vec<ConvId>, StoreError> {
        let mut out = Vec::new();
        for v in self
            .waiting
            .get(msgid_key(message_id).as_str())
            .ctx("reading waiting references")?
        {
            out.push(ConvId(v.ctx("reading waiting references")?.value()));
        }
        Ok(out)
    }

    pub fn add_waiting(&mut self, message_id: &str, conv: ConvId) -> Result<(), StoreError> {
        self.waiting
            .insert(msgid_key(message_id).as_str(), conv.0)
            .ctx("recording a waiting reference")?;
        Ok(())
    }

    pub fn clear_waiting(&mut self, message_id: &str) -> Result<(), StoreError> {
        self.waiting
            .remove_all(msgid_key(message_id).as_str())
            .ctx("clearing waiting references")?;
        Ok(())
    }

    pub fn mailbox(&self, id: MailboxId) -> Result<Option<MailboxRecord>, StoreError> {
        get_decoded(
            &self.mailboxes,
            id.0,
            "reading a mailbox",
            codec::decode_mailbox,
        )
    }

    pub fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError> {
        all_decoded(&self.mailboxes, "listing mailboxes", codec::decode_mailbox)
    }

    pub fn put_mailbox(&mut self, m: &MailboxRecord) -> Result<(), StoreError> {
        self.mailboxes
            .insert(m.id.0, codec::encode_mailbox(m).as_slice())
            .ctx("writing a mailbox")?;
        Ok(())
    }

    pub fn smtp_servers(&self) -> Result<Vec<SmtpRecord>, StoreError> {
        all_decoded(&self.smtp, "listing SMTP servers", codec::decode_smtp)
    }

    pub fn put_smtp(&mut self, s: &SmtpRecord) -> Result<(), StoreError> {
        self.smtp
            .insert(s.id.0, codec::encode_smtp(s).as_slice())
            .ctx("writing an SMTP server")?;
        Ok(())
    }

    pub fn remove_smtp(&mut self, id: SmtpId) -> Result<(), StoreError> {
        self.smtp.remove(id.0).ctx("removing an SMTP server")?;
        Ok(())
    }

    pub fn outbox(&self) -> Result<Vec<OutboxRecord>, StoreError> {
        all_decoded(&self.outbox, "reading the outbox", codec::decode_outbox)
    }

    pub fn outbox_entry(&self, id: u64) -> Result<Option<OutboxRecord>, StoreError> {
        get_decoded(&self.outbox, id, "reading the outbox", codec::decode_outbox)
    }

    pub fn put_outbox(&mut self, o: &OutboxRecord) -> Result<(), StoreError> {
        self.outbox
            .insert(o.id, codec::encode_outbox(o).as_slice())
            .ctx("writing the outbox")?;
        Ok(())
    }

    /// Records an automatic message sent to `sender` from `mailbox` at `at` (unix ms).
    pub fn note_auto_sent(
        &mut self,
        sender: &str,
        at: i64,
        mailbox: MailboxId,
    ) -> Result<(), StoreError> {
        self.auto_sent
            .insert((sender, at), mailbox.0)
            .ctx("recording an automatic reply")?;
        Ok(())
    }

    /// Automatic messages sent to `sender` since `since` (unix ms): (when, mailbox).
    pub fn auto_sent_since(
        &self,
        sender: &str,
        since: i64,
    ) -> Result<Vec<(i64, MailboxId)>, StoreError> {
        const OP: &str = "reading the automatic replies";
        let mut out = Vec::new();
        for item in self
            .auto_sent
            .range((sender, since)..=(sender, i64::MAX))
            .ctx(OP)?
        {
            let (k, v) = item.ctx(OP)?;
            out.push((k.value().1, MailboxId(v.value())));
        }
        Ok(out)
    }

    /// Forgets automatic-reply records older than `before` (unix ms).
    pub fn prune_auto_sent(&mut self, before: i64) -> Result<u64, StoreError> {
        let mut n = 0u64;
        self.auto_sent
            .retain(|k, _| {
                let keep = k.1 >= before;
                if !keep {
                    n += 1;
                }
                keep
            })
            .ctx("pruning the automatic replies")?;
        Ok(n)
    }

    /// Appends to the communication log.
    pub fn log(&mut self, entry: &LogEntry) -> Result<(), StoreError> {
        let seq = self.next_id("log")?;
        self.log
            .insert(seq, codec::encode_log(entry).as_slice())
            .ctx("writing the communication log")?;
        Ok(())
    }

    /// Removes communication-log entries older than `before_ms`; returns how many.
    pub fn prune_log(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let mut old = Vec::new();
        for item in self.log.iter().ctx("reading the log")? {
            let (k, v) = item.ctx("reading the log")?;
            // Entries are appended in time order; stop at the first one to keep.
            match codec::decode_log(v.value()) {
                Ok(e) if e.at >= before_ms => break,
                _ => old.push(k.value()),
            }
        }
        for k in &old {
            self.log.remove(*k).ctx("pruning the log")?;
        }
        Ok(old.len() as u64)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .settings
            .get(key)
            .ctx("reading a setting")?
            .map(|g| g.value().to_owned()))
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.settings.insert(key, value).ctx("writing a setting")?;
        Ok(())
    }

    pub fn remove_setting(&mut self, key: &str) -> Result<(), StoreError> {
        self.settings.remove(key).ctx("removing a setting")?;
        Ok(())
    }
}

fn get_decoded<T>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    key: u64,
    op: &'static str,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Option<T>, StoreError> {
    match table.get(key).ctx(op)? {
        Some(g) => Ok(Some(decode(g.value())?)),
        None => Ok(None),
    }
}

fn all_decoded<T>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    op: &'static str,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in table.iter().ctx(op)? {
        let (_, v) = item.ctx(op)?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Reassembles a chunked blob and checks it is whole.
fn read_blob(
    table: &impl ReadableTable<([u8; 32], u32), &'static [u8]>,
    hash: &[u8; 32],
    size: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for item in table
        .range((*hash, 0u32)..=(*hash, u32::MAX))
        .ctx("reading raw bytes")?
    {
        let (_, v) = item.ctx("reading raw bytes")?;
        out.extend_from_slice(v.value());
    }
    if out.len() as u64 != size {
        return Err(StoreError::Decode(DecodeError {
            record: "raw message",
            what: format!("{} bytes stored, {size} expected", out.len()),
        }));
    }
    Ok(out)
}

type TakenKey = (u64, &'static str, u32, &'static str);

fn get_taken(
    table: &impl ReadableTable<TakenKey, &'static [u8]>,
    k: &ItemKey,
) -> Result<Option<TakenRecord>, StoreError> {
    match table.get(k.parts()).ctx("reading a taken message")? {
        Some(g) => Ok(Some(codec::decode_taken(g.value())?)),
        None => Ok(None),
    }
}

fn get_skipped(
    table: &impl ReadableTable<TakenKey, u64>,
    k: &ItemKey,
) -> Result<Option<u64>, StoreError> {
    Ok(table
        .get(k.parts())
        .ctx("reading a skipped message")?
        .map(|g| g.value()))
}

fn get_cursor(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    account: AccountId,
    folder: &str,
) -> Result<Option<FolderCursor>, StoreError> {
    match table.get((account.0, folder)).ctx("reading a cursor")? {
        Some(g) => Ok(Some(codec::decode_cursor(g.value())?)),
        None => Ok(None),
    }
}

fn taken_range(
    table: &impl ReadableTable<TakenKey, &'static [u8]>,
    account: AccountId,
    folder: &str,
) -> Result<Vec<(ItemKey, TakenRecord)>, StoreError> {
    let mut out = Vec::new();
    for item in table
        .range((account.0, folder, 0u32, "")..=(account.0, folder, u32::MAX, "\u{10FFFF}"))
        .ctx("listing taken messages")?
    {
        let (k, v) = item.ctx("listing taken messages")?;
        let (a, f, uv, it) = k.value();
        out.push((
            ItemKey {
                account: AccountId(a),
                folder: f.to_owned(),
                uidvalidity: uv,
                item: it.to_owned(),
            },
            codec::decode_taken(v.value())?,
        ));
    }
    Ok(out)
}

fn conv_message_ids(
    table: &impl ReadableTable<(u64, u64), ()>,
    conv: ConvId,
) -> Result<Vec<MsgId>, StoreError> {
    let mut out = Vec::new();
    for item in table
        .range((conv.0, 0)..=(conv.0, u64::MAX))
        .ctx("listing a conversation's messages")?
    {
        let (k, _) = item.ctx("listing a conversation's messages")?;
        out.push(MsgId(k.value().1));
    }
    Ok(out)
}

/// A consistent read-only snapshot of the store.
pub struct Reader {
    txn: ReadTransaction,
}

/// Opens a table for reading; a table that does not exist yet reads as empty.
macro_rules! read_table {
    ($self:ident, $def:expr) => {
        match $self.txn.open_table($def) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => {
                return Err(StoreError::Db {
                    op: "opening a table for reading",
                    source: e.into(),
                })
            }
        }
    };
}

impl Reader {
    fn table_u64(
        &self,
        def: redb::TableDefinition<'static, u64, &'static [u8]>,
    ) -> Result<Option<ReadOnlyTable<u64, &'static [u8]>>, StoreError> {
        Ok(read_table!(self, def))
    }

    pub fn conversation(&self, id: ConvId) -> Result<Option<ConversationRecord>, StoreError> {
        match self.table_u64(CONVERSATIONS)? {
            Some(t) => get_decoded(
                &t,
                id.0,
                "reading a conversation",
                codec::decode_conversation,
            ),
            None => Ok(None),
        }
    }

    /// Every conversation, merged ones included, in id order.
    pub fn conversations(&self) -> Result<Vec<ConversationRecord>, StoreError> {
        match self.table_u64(CONVERSATIONS)? {
            Some(t) => all_decoded(&t, "listing conversations", codec::decode_conversation),
            None => Ok(Vec::new()),
        }
    }

    pub fn message(&self, id: MsgId) -> Result<Option<MessageRecord>, StoreError> {
        match self.table_u64(MESSAGES)? {
            Some(t) => get_decoded(&t, id.0, "reading a message", codec::decode_message),
            None => Ok(None),
        }
    }

    /// The messages of a conversation, oldest first (by date, then id).
    pub fn conversation_messages(&self, conv: ConvId) -> Result<Vec<MessageRecord>, StoreError> {
        let Some(links) = read_table!(self, CONV_MESSAGES) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in conv_message_ids(&links, conv)? {
            if let Some(m) = self.message(id)? {
                out.push(m);
            }
        }
        out.sort_by_key(|m| (m.date, m.id));
        Ok(out)
    }

    pub fn message_count(&self) -> Result<u64, StoreError> {
        match self.table_u64(MESSAGES)? {
            Some(t) => t.len().ctx("counting messages"),
            None => Ok(0),
        }
    }

    pub fn raw(&self, id: RawId) -> Result<Option<RawRecord>, StoreError> {
        match self.table_u64(RAWS)? {
            Some(t) => get_decoded(&t, id.0, "reading a raw record", codec::decode_raw),
            None => Ok(None),
        }
    }

    /// Walks the raw records from the newest backwards (ids grow with time), handing each
    /// to `visit` until it answers `Break`.
    pub fn raws_rev(
        &self,
        mut visit: impl FnMut(RawId, RawRecord) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        const OP: &str = "reading raw records";
        let Some(t) = self.table_u64(RAWS)? else {
            return Ok(());
        };
        for item in t.iter().ctx(OP)?.rev() {
            let (k, v) = item.ctx(OP)?;
            if visit(RawId(k.value()), codec::decode_raw(v.value())?).is_break() {
                break;
            }
        }
        Ok(())
    }

    pub fn raw_count(&self) -> Result<u64, StoreError> {
        match self.table_u64(RAWS)? {
            Some(t) => t.len().ctx("counting raw messages"),
            None => Ok(0),
        }
    }

    /// The exact bytes of a raw message.
    pub fn raw_bytes(&self, id: RawId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(rec) = self.raw(id)? else {
            return Ok(None);
        };
        let Some(blobs) = read_table!(self, BLOB_CHUNKS) else {
            return Ok(None);
        };
        read_blob(&blobs, &rec.hash.0, rec.size).map(Some)
    }

    /// Raw messages waiting for the pipeline, oldest first: up to `max_items`, and no
    /// more than `max_bytes` in all (always at least one).
    pub fn pending(&self, max_items: usize, max_bytes: u64) -> Result<Vec<RawId>, StoreError> {
        let Some(pending) = read_table!(self, PENDING) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for item in pending.iter().ctx("reading the queue")? {
            let (k, _) = item.ctx("reading the queue")?;
            let id = RawId(k.value());
            let size = self.raw(id)?.map(|r| r.size).unwrap_or(0);
            if !out.is_empty() && (out.len() >= max_items || bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            out.push(id);
        }
        Ok(out)
    }

    pub fn pending_count(&self) -> Result<u64, StoreError> {
        match read_table!(self, PENDING) {
            Some(t) => t.len().ctx("counting the queue"),
            None => Ok(0),
        }
    }

    /// The message a raw message became, if any.
    pub fn message_of_raw(&self, raw: RawId) -> Result<Option<MsgId>, StoreError> {
        let Some(t) = read_table!(self, RAW_MESSAGE) else {
            return Ok(None);
        };
        Ok(t.get(raw.0)
            .ctx("reading raw links")?
            .map(|g| MsgId(g.value())))
    }

    pub fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError> {
        match self.table_u64(MAILBOXES)? {
            Some(t) => all_decoded(&t, "listing mailboxes", codec::decode_mailbox),
            None => Ok(Vec::new()),
        }
    }

    /// Walks the communication log from the newest entry backwards (from just before
    /// `before`, a sequence number, when given), handing each `(seq, entry)` to `visit`
    /// until it answers `Break`. Entries are appended in time order.
    pub fn log_rev(
        &self,
        before: Option<u64>,
        mut visit: impl FnMut(u64, LogEntry) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        const OP: &str = "reading the log";
        let Some(t) = self.table_u64(COMM_LOG)? else {
            return Ok(());
        };
        let range = t.range(..before.unwrap_or(u64::MAX)).ctx(OP)?;
        for item in range.rev() {
            let (k, v) = item.ctx(OP)?;
            if visit(k.value(), codec::decode_log(v.value())?).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// One communication-log entry by its sequence number.
    pub fn log_entry(&self, seq: u64) -> Result<Option<LogEntry>, StoreError> {
        let Some(t) = self.table_u64(COMM_LOG)? else {
            return Ok(None);
        };
        match t.get(seq).ctx("reading the log")? {
            Some(v) => Ok(Some(codec::decode_log(v.value())?)),
            None => Ok(None),
        }
    }

    /// The newest `limit` entries of the communication log, oldest first.
    pub fn log(&self, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let Some(t) = self.table_u64(COMM_LOG)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.iter().ctx("reading the log")?.rev().take(limit) {
            let (_, v) = item.ctx("reading the log")?;
            out.push(codec::decode_log(v.value())?);
        }
        out.reverse();
        Ok(out)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(t) = read_table!(self, SETTINGS) else {
            return Ok(None);
        };
        Ok(t.get(key)
            .ctx("reading a setting")?
            .map(|g| g.value().to_owned()))
    }

    pub fn settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let Some(t) = read_table!(self, SETTINGS) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.iter().ctx("listing settings")? {
            let (k, v) = item.ctx("listing settings")?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }

    pub fn smtp_servers(&self) -> Result<Vec<SmtpRecord>, StoreError> {
        match self.table_u64(SMTP_SERVERS)? {
            Some(t) => all_decoded(&t, "listing SMTP servers", codec::decode_smtp),
            None => Ok(Vec::new()),
        }
    }

    pub fn outbox(&self) -> Result<Vec<OutboxRecord>, StoreError> {
        match self.table_u64(OUTBOX)? {
            Some(t) => all_decoded(&t, "reading the outbox", codec::decode_outbox),
            None => Ok(Vec::new()),
        }
    }

    pub fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        match self.table_u64(ACCOUNTS)? {
            Some(t) => all_decoded(&t, "listing accounts", codec::decode_account),
            None => Ok(Vec::new()),
        }
    }

    pub fn taken(&self, k: &ItemKey) -> Result<Option<TakenRecord>, StoreError> {
        match read_table!(self, TAKEN) {
            Some(t) => get_taken(&t, k),
            None => Ok(None),
        }
    }

    pub fn skipped(&self, k: &ItemKey) -> Result<Option<u64>, StoreError> {
        match read_table!(self, SKIPPED) {
            Some(t) => get_skipped(&t, k),
            None => Ok(None),
        }
    }

    /// Everything taken from one folder of an account, in key order.
    pub fn taken_in_folder(
        &self,
        account: AccountId,
        folder: &str,
    ) -> Result<Vec<(ItemKey, TakenRecord)>, StoreError> {
        match read_table!(self, TAKEN) {
            Some(t) => taken_range(&t, account, folder),
            None => Ok(Vec::new()),
        }
    }

    /// How many messages are remembered as taken from a folder of an account.
    pub fn taken_count(&self, account: AccountId, folder: &str) -> Result<u64, StoreError> {
        Ok(self.taken_in_folder(account, folder)?.len() as u64)
    }

    pub fn cursor(
        &self,
        account: AccountId,
        folder: &str,
    ) -> Result<Option<FolderCursor>, StoreError> {
        match read_table!(self, CURSORS) {
            Some(t) => get_cursor(&t, account, folder),
            None => Ok(None),
        }
    }

    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let Some(t) = read_table!(self, META) else {
            return Ok(None);
        };
        let v = t.get("schema_version").ctx("reading meta")?;
        Ok(v.and_then(|g| <[u8; 4]>::try_from(g.value()).ok().map(u32::from_le_bytes)))
    }
}

// After `read_table!`: the macro must be defined before the module that uses it.
mod users;
pub use users::InboxPage;
mod customers;
mod filters;
mod perms;

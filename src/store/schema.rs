//! Every table and key layout of the store, in one place, and the schema version.
//!
//! Owns: table names, key and value types, the meaning of each key. Values named `&[u8]`
//! are records encoded by `store::codec` (first byte = record format).
//! Must not: change a layout without raising `SCHEMA_VERSION` and adding a migration in
//! `store::migrate`, plus keeping the old-version fixture test green.

use redb::{MultimapTableDefinition, TableDefinition};

/// Version of the layout below. Stored in `META["schema_version"]` as `u32` LE.
/// History: 1 = raw store, messages, conversations, mailboxes, log, settings;
/// 2 = mail accounts, folder cursors, taken and skipped messages; raw bytes in chunks;
/// 3 = SMTP servers, the outbox, the auto-reply record; mailbox records format 2 (addresses,
/// aliases, signature, auto-reply, SMTP server; format 1 still reads);
/// 4 = users, sessions, API tokens, read marks, drafts, the inbox and customer indexes;
/// conversation records format 2 (assignee, followers; format 1 still reads).
pub const SCHEMA_VERSION: u32 = 5;

/// `name -> value`. Keys: `schema_version` (u32 LE), `created_by` (utf-8 program version).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `counter name -> last id handed out`. Names: `raw`, `msg`, `conv`, `mailbox`, `log`,
/// `account`.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// Admin settings that live with the data: `name -> value` (utf-8). See `crate::config`.
pub const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");

/// Content-addressed raw bytes: `(SHA-256 of the bytes, chunk number) -> chunk`, the exact
/// bytes received cut into `BLOB_CHUNK`-byte chunks (the last one shorter). Never
/// rewritten; only ever inserted. Chunks keep redb's allocations tight: whole multi-MB
/// values are rounded up to a power of two (measured: 1.47x the data, chunks 1.02x).
/// Since version 2.
pub const BLOB_CHUNKS: TableDefinition<([u8; 32], u32), &[u8]> =
    TableDefinition::new("blob_chunks");

/// Bytes per blob chunk.
pub const BLOB_CHUNK: usize = 64_000;

/// Version 1 stored each blob whole: `SHA-256 -> bytes`. Migrated into `BLOB_CHUNKS` and
/// deleted by the step to version 2.
pub const BLOBS_V1: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blobs");

/// `SHA-256 -> RawId` of the raw record that owns the blob (dedup of identical bytes).
pub const BLOB_OWNER: TableDefinition<[u8; 32], u64> = TableDefinition::new("blob_owner");

/// `RawId -> RawRecord` (codec `raw message`), in arrival order.
pub const RAWS: TableDefinition<u64, &[u8]> = TableDefinition::new("raws");

/// `RawId -> ()`: raw messages committed by intake (commit 1) that the pipeline has not
/// yet turned into a message (commit 2). Replayed at startup.
pub const PENDING: TableDefinition<u64, ()> = TableDefinition::new("pending");

/// `MsgId -> MessageRecord` (codec `message`).
pub const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");

/// `RawId -> MsgId`: which message a processed raw became (or was merged into as a
/// duplicate delivery). Absent for raws a filter chose to ignore.
pub const RAW_MESSAGE: TableDefinition<u64, u64> = TableDefinition::new("raw_message");

/// `Message-ID key -> MsgId`, for every Message-ID we know, received or sent.
/// The key is the Message-ID without angle brackets; one longer than
/// `MSGID_KEY_MAX` bytes is stored as `sha256:<hex>` of it (see `msgid_key`).
pub const MSGID_INDEX: TableDefinition<&str, u64> = TableDefinition::new("msgid_index");

/// `ConvId -> ConversationRecord` (codec `conversation`). Merged conversations stay,
/// with status `merged` and `merged_into`, so their tag still resolves.
pub const CONVERSATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("conversations");

/// `(ConvId, MsgId) -> ()`: the messages of each conversation.
pub const CONV_MESSAGES: TableDefinition<(u64, u64), ()> = TableDefinition::new("conv_messages");

/// `Message-ID key -> ConvId` (multimap): conversations holding a message that referenced
/// this Message-ID before we had it. When it arrives, those conversations merge into its.
pub const WAITING: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("waiting");

/// `MailboxId -> MailboxRecord` (codec `mailbox`).
pub const MAILBOXES: TableDefinition<u64, &[u8]> = TableDefinition::new("mailboxes");

/// `sequence -> LogEntry` (codec `log entry`): the communication log.
pub const COMM_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("comm_log");

/// `AccountId -> AccountRecord` (codec `account`). Since version 2.
pub const ACCOUNTS: TableDefinition<u64, &[u8]> = TableDefinition::new("accounts");

/// `(AccountId, folder) -> FolderCursor` (codec `folder cursor`): IMAP `(UIDVALIDITY,
/// last UID)`; POP3 uses folder `INBOX` with UIDVALIDITY 0. Since version 2.
pub const CURSORS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("cursors");

/// `(AccountId, folder, UIDVALIDITY, item) -> TakenRecord` (codec `taken message`): every
/// message taken from a server. `item` is the IMAP UID as 10 zero-padded digits (so keys
/// sort by UID) or the POP3 UIDL. Written in the same transaction as the raw bytes and the
/// cursor. Since version 2.
pub const TAKEN: TableDefinition<(u64, &str, u32, &str), &[u8]> = TableDefinition::new("taken");

/// `(AccountId, folder, UIDVALIDITY, item) -> size`: messages left on the server on
/// purpose (over the size limit), reported once. Since version 2.
pub const SKIPPED: TableDefinition<(u64, &str, u32, &str), u64> = TableDefinition::new("skipped");

/// `SmtpId -> SmtpRecord` (codec `smtp server`). Since version 3.
pub const SMTP_SERVERS: TableDefinition<u64, &[u8]> = TableDefinition::new("smtp_servers");

/// `outbox id -> OutboxRecord` (codec `outbox entry`): every message queued for sending,
/// kept after it was sent or failed (the conversation shows the relay's reply).
/// Since version 3.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// `(sender address lower-cased, unix ms) -> MailboxId`: every automatic message sent to a
/// sender (auto-replies), for the one-per-day-per-mailbox rule and the daily cap.
/// Since version 3.
pub const AUTO_SENT: TableDefinition<(&str, i64), u64> = TableDefinition::new("auto_sent");

/// `UserId -> UserRecord` (codec `user`). Since version 4.
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");

/// `login (lower-case) -> UserId`. Since version 4.
pub const USER_LOGINS: TableDefinition<&str, u64> = TableDefinition::new("user_logins");

/// `SHA-256 of the session cookie's token -> SessionRecord` (codec `session`). The token
/// itself is never stored. Since version 4.
pub const SESSIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sessions");

/// `SHA-256 of an API token -> ApiTokenRecord` (codec `api token`). Since version 4.
pub const API_TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("api_tokens");

/// `SHA-256 of an invitation link's token -> InviteRecord` (codec `invite`): single use,
/// removed when used or replaced. Since version 5 (created on open).
pub const INVITES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("invites");

/// `UserId -> NotifyPrefs` (codec `notify prefs`); absent: the defaults. Since version 5.
pub const NOTIFY_PREFS: TableDefinition<u64, &[u8]> = TableDefinition::new("notify_prefs");

/// `SHA-256 of a notification's token -> NotifyTokenRecord` (codec `notify token`): lets
/// an agent answer a notification by mail. Since version 5.
pub const NOTIFY_TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("notify_tokens");

/// `(UserId, ConvId) -> last_activity the user has seen`: a conversation is unread for a
/// user while its `last_activity` is newer. Since version 4.
pub const READ_MARKS: TableDefinition<(u64, u64), i64> = TableDefinition::new("read_marks");

/// `(UserId, ConvId) -> DraftRecord` (codec `draft`): replies and notes being written.
/// Since version 4.
pub const DRAFTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("drafts");

/// `(MailboxId, bucket, u64::MAX - last_activity, ConvId) -> ()`: the inbox listing, newest
/// first per mailbox and bucket (`ConversationRecord::bucket`: 0 active, 1 pending,
/// 2 closed, 3 spam; merged conversations are not listed). Kept by `Tx::put_conversation`
/// only. Since version 4.
pub const INBOX: TableDefinition<(u64, u8, u64, u64), ()> = TableDefinition::new("inbox");

/// `(MailboxId, assignee UserId or 0, u64::MAX - last_activity, ConvId) -> ()`: the open
/// conversations (active and pending) by assignee, newest first, so the Unassigned, Mine
/// and Assigned folders and their unread counts come from keys alone. Kept by
/// `Tx::put_conversation` only. Since version 4.
pub const OPEN_BY_ASSIGNEE: TableDefinition<(u64, u64, u64, u64), ()> =
    TableDefinition::new("open_by_assignee");

/// `(MailboxId, bucket) -> number of conversations in INBOX under it`. Kept by
/// `Tx::put_conversation` only. Since version 4.
pub const INBOX_COUNTS: TableDefinition<(u64, u8), u64> = TableDefinition::new("inbox_counts");

/// `(customer address lower-cased, ConvId) -> ()`: each customer's conversations. Kept by
/// `Tx::put_conversation` only. Since version 4.
pub const CUSTOMER_CONVS: TableDefinition<(&str, u64), ()> = TableDefinition::new("customer_convs");

/// `(MailboxId, UserId) -> permission flags` (`mailboxes::MailboxPerms`, u32 bits): what a
/// user may do with a mailbox beyond seeing it (seeing stays `UserRecord.mailboxes`).
/// A user without flags has no row.
pub const MAILBOX_PERMS: TableDefinition<(u64, u64), u32> = TableDefinition::new("mailbox_perms");
/// `filter id -> Filter` (codec `filter`, in `store::filters`): the postmaster filters.
/// Ids come from the counter `filter`. New with issue 6 (created on open; the schema
/// version is raised once for all of issue 6 when it is merged).
pub const FILTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("filters");

/// `customer address lower-cased -> CustomerRecord` (codec `customer`, in
/// `store::customers`): customers made from unknown senders by accounts that create
/// customers (name, company = the sender's domain). New with issue 6 (created on open).
pub const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");

/// Longest Message-ID stored verbatim as an index key.
pub const MSGID_KEY_MAX: usize = 512;

/// The index key of a Message-ID (without angle brackets).
pub fn msgid_key(message_id: &str) -> String {
    if message_id.len() <= MSGID_KEY_MAX {
        return message_id.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, message_id.as_bytes());
    let mut key = String::from("sha256:");
    for b in digest.as_ref() {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

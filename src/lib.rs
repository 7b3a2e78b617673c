//! # Postroom
//!
//! A shared-mailbox helpdesk for a small office, as one statically linked program that
//! runs on a Raspberry Pi. It fetches the office's mail, turns it into conversations the
//! team works on, and replies from the right address.
//!
//! ## Bird's-eye view
//!
//! Data flows one way:
//!
//! ```text
//! mail source --intake--> raw store      (commit 1: exact bytes + source, durable)
//!                             | pending queue
//!        pipeline: parse -> filters -> thread -> conversation
//!                             |
//!        one write transaction (commit 2): message, conversation, log. Idempotent per raw id.
//! CLI / web UI --reads/writes--> store (the only path to data)
//! ```
//!
//! Sources: `postroom import` (files, mbox, Maildir) and the IMAP/POP3 fetchers (commit 1
//! also records what was taken and advances the folder cursor; only then is mail removed on
//! the server). The SMTP outbox and the web UI plug into the same two commits.
//!
//! ## Codemap
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`model`] | plain types: ids, records, flags, the injected clock | do I/O, know redb, HTTP or sockets |
//! | [`store`] | the only code that names redb: schema, migrations, encodings, commit 1 | hold business rules |
//! | [`pipeline`] | parse -> filters -> thread -> conversation as pure stages + the orchestrator of commit 2 | touch the network |
//! | [`filters`] | postmaster filters: conditions, actions, regex limits, trusted X-Postroom/OTOBO/OTRS headers, evaluation with a trace | do I/O or apply an outcome (the pipeline's filter stage does) |
//! | [`import`] | reading .eml/mbox/Maildir into commit 1 | parse MIME or thread |
//! | [`fetch`] | the only code that speaks IMAP or POP3: cursors, IDLE, removal after commit | parse MIME, create conversations |
//! | [`compose`] | building outgoing mail (mail-builder), Message-IDs, threading headers; refusing injected headers | send, queue or store |
//! | [`autoreply`] | whether a new conversation gets an auto-reply (RFC 3834, loops, rate limits) and queueing it | send, or answer anything but a new conversation |
//! | [`outbox`] | replies and notes committed in one transaction with their outbox entry; the sender with retries | speak SMTP or send what is not committed |
//! | [`smtp`] | the only code that speaks SMTP: one delivery, step by step, failures sorted into temporary and permanent | queue, retry or compose |
//! | [`net`] | TCP + rustls (ring) connect, STARTTLS upgrade, certificate policy and pinning | speak a mail protocol |
//! | [`notify`] | who is told what by mail (invitations, reset links, agents' notifications per their settings), as outbox rows in the event's transaction; an agent's answer to a notification (token + their address) becomes a reply | send anything itself or log a token |
//! | [`mailboxes`] | mailbox settings and system addresses (aliases, validity), address lookup | send mail or delete an address |
//! | [`accounts`] | validation of mail-account settings, sealing passwords | connect anywhere |
//! | [`creation`] | the accounts' ticket-creation options: refusing new conversations (kept, logged, answered as chosen), customer records with the domain as the company, defaults for new conversations, bundling by sender and subject within the poll interval | send, thread by subject outside bundling, or delete a raw message |
//! | [`secret`] | `Secret` (prints `***`), the key file, sealed passwords | log or store a key in clear |
//! | [`timezone`] | the office's time zone for showing times to people: UTC, fixed offsets, IANA zones from the system's TZif files | fail a page (an unreadable zone shows UTC) |
//! | [`config`] | data-dir resolution, the settings table with validation | hold globals |
//! | [`app`] | data dir, lock, replay at startup, `serve` and its shutdown | hold business rules |
//! | [`cli`] | subcommands, printing, progress bar | hold business rules |
//! | [`control`] | the Unix socket that runs CLI commands inside a running `serve` | parse arguments or run commands |
//! | [`web`] | HTTP/HTTPS on its own threads: the team's pages, the JSON API, sessions and CSRF, templates, the catalog, mail HTML made safe, `/healthz` | block on the network, speak a mail protocol, or show a body without `web::sanitize` |
//! | [`users`] | users, argon2id passwords, session and API tokens, the setup code, login throttling | speak HTTP or log a secret |
//! | [`mdns`] | announcing `postroom.local` and the web UI by multicast DNS | announce a loopback-only server or stop the service on failure |
//! | [`failpoint`] | crash injection for crash tests | act unless `POSTROOM_FAILPOINT` is set |
//!
//! ## Invariants (each has a test that fails when it is broken)
//!
//! - **Accepted means stored**: raw bytes are committed durably (redb two-phase commit,
//!   `Durability::Immediate`) before anything else happens to them, and are never
//!   rewritten. Replaying the pending queue after a crash converges to the same state as
//!   an uninterrupted run (`tests/it/crash.rs`).
//! - **Parsing never fails**: any byte string becomes a message plus warnings; the
//!   malformed-mail corpus and generated bombs (deep nesting, part-count and encoded
//!   forward bombs that once overflowed the stack) replay without a panic and within
//!   bounded memory (`tests/it/corpus.rs`, `fuzz/`).
//! - **Removed on the server only after durable storage**: intake commits bytes, what was
//!   taken and the cursor in one transaction before any DELE/EXPUNGE/MOVE
//!   (`tests/it/intake.rs`).
//! - **Threading is exact**: Message-ID chains and the subject tag, never the subject
//!   alone (`tests/it/threading.rs`).
//! - **Only `store` names redb**, and no `usize` is encoded (`tests/it/architecture.rs`).
//! - **Portable format**: the committed schema-v1 fixture still opens (`tests/it/store.rs`).
//! - No `unsafe` (`forbid`), no `unwrap`/`expect`/indexing outside tests (clippy `deny`).

pub mod accounts;
pub mod app;
pub mod autoreply;
pub mod cli;
pub mod compose;
pub mod config;
pub mod control;
pub mod creation;
pub mod failpoint;
pub mod fetch;
pub mod filters;
pub mod import;
pub mod mailboxes;
pub mod mdns;
pub mod model;
pub mod net;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod timezone;
pub mod users;
pub mod web;

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
//!        pipeline: parse -> thread -> conversation
//!                             |
//!        one write transaction (commit 2): message, conversation, log. Idempotent per raw id.
//! CLI / web UI --reads/writes--> store (the only path to data)
//! ```
//!
//! Sources today: `postroom import` (files, mbox, Maildir). IMAP/POP3 fetchers, the SMTP
//! outbox and the web UI plug into the same two commits.
//!
//! ## Codemap
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`model`] | plain types: ids, records, flags, the injected clock | do I/O, know redb, HTTP or sockets |
//! | [`store`] | the only code that names redb: schema, migrations, encodings, commit 1 | hold business rules |
//! | [`pipeline`] | parse -> thread -> conversation as pure stages + the orchestrator of commit 2 | touch the network |
//! | [`import`] | reading .eml/mbox/Maildir into commit 1 | parse MIME or thread |
//! | [`config`] | data-dir resolution, the settings table with validation | hold globals |
//! | [`app`] | data dir, lock, replay at startup, `serve` and its shutdown | hold business rules |
//! | [`cli`] | subcommands, printing, progress bar | hold business rules |
//! | [`failpoint`] | crash injection for crash tests | act unless `POSTROOM_FAILPOINT` is set |
//!
//! ## Invariants (each has a test that fails when it is broken)
//!
//! - **Accepted means stored**: raw bytes are committed durably (redb two-phase commit,
//!   `Durability::Immediate`) before anything else happens to them, and are never
//!   rewritten. Replaying the pending queue after a crash converges to the same state as
//!   an uninterrupted run (`tests/it/crash.rs`).
//! - **Parsing never fails**: any byte string becomes a message plus warnings; the
//!   malformed-mail corpus replays without a panic (`tests/it/corpus.rs`).
//! - **Threading is exact**: Message-ID chains and the subject tag, never the subject
//!   alone (`tests/it/threading.rs`).
//! - **Only `store` names redb**, and no `usize` is encoded (`tests/it/architecture.rs`).
//! - **Portable format**: the committed schema-v1 fixture still opens (`tests/it/store.rs`).
//! - No `unsafe` (`forbid`), no `unwrap`/`expect`/indexing outside tests (clippy `deny`).

pub mod accounts;
pub mod app;
pub mod cli;
pub mod config;
pub mod failpoint;
pub mod fetch;
pub mod import;
pub mod model;
pub mod net;
pub mod pipeline;
pub mod secret;
pub mod store;

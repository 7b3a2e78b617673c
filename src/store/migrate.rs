//! Schema migrations, run at every open in one durable transaction.
//!
//! Owns: bringing a store file of any earlier schema version up to `SCHEMA_VERSION`.
//! Must not: skip a version, or touch raw bytes (they are never rewritten).
//!
//! To change a layout: raise `schema::SCHEMA_VERSION`, append a step to `STEPS` that turns
//! version N-1 into N, keep the fixture `tests/fixtures/store-v1.redb` (and add one for the
//! new version), and make `tests/it/store.rs` check that old fixtures still open.

use super::schema::{BLOB_CHUNK, BLOB_CHUNKS, BLOBS_V1, SCHEMA_VERSION};
use super::{Ctx, Store, StoreError, Tx};
use crate::model::{MailboxId, MailboxRecord};
use redb::{ReadableTable, WriteTransaction};

/// One migration step: the version it produces and what it does (steps that only add
/// tables or rows use `Tx`; those that drop tables get the bare transaction).
type Step = (u32, fn(&WriteTransaction) -> Result<(), StoreError>);

/// Steps from an empty file upwards. Version 1 is the first layout: creating the tables
/// happens when `Tx` opens them; the step adds the default mailbox.
const STEPS: &[Step] = &[(1, init_v1), (2, to_v2), (3, to_v3), (4, to_v4), (5, to_v5)];

fn init_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut tx = Tx::open(txn)?;
    let id = MailboxId(tx.next_id("mailbox")?);
    tx.put_mailbox(&MailboxRecord::named(id, "Inbox"))
}

/// Version 2 adds the account tables (created when `Tx` opens them) and cuts the raw
/// bytes of version 1 (`blobs`, one value per message) into chunks.
fn to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    const OP: &str = "migrating raw bytes to chunks";
    let old = txn.open_table(BLOBS_V1).ctx(OP)?;
    let mut chunks = txn.open_table(BLOB_CHUNKS).ctx(OP)?;
    let mut moved = 0u64;
    for item in old.iter().ctx(OP)? {
        let (k, v) = item.ctx(OP)?;
        let (hash, bytes) = (k.value(), v.value());
        for (n, chunk) in (0u32..).zip(bytes.chunks(BLOB_CHUNK)) {
            chunks.insert((hash, n), chunk).ctx(OP)?;
        }
        if bytes.is_empty() {
            chunks.insert((hash, 0), &[][..]).ctx(OP)?;
        }
        moved += 1;
    }
    drop((old, chunks));
    txn.delete_table(BLOBS_V1).ctx(OP)?;
    if moved > 0 {
        log::info!("store: {moved} raw messages cut into chunks");
    }
    Ok(())
}

/// Version 3 adds the SMTP, outbox and auto-reply tables (created when `Tx` opens them).
/// Mailbox records of format 1 stay as they are: the decoder reads both formats.
fn to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    Tx::open(txn).map(drop)
}

/// Version 5 adds the tables of the administration: postmaster filters, mailbox
/// permissions, invitations, notification settings and tokens, customers (created when
/// `Tx` opens them). Account records of format 3 and conversation records of format 3
/// are written from now on; the decoders read every earlier format.
fn to_v5(txn: &WriteTransaction) -> Result<(), StoreError> {
    Tx::open(txn).map(drop)
}

pub(super) fn run(store: &Store) -> Result<(), StoreError> {
    store.write_raw(|txn| {
        let mut tx = Tx::open(txn)?;
        let found = match tx.meta("schema_version")? {
            Some(v) => match <[u8; 4]>::try_from(v.as_slice()) {
                Ok(b) => u32::from_le_bytes(b),
                Err(_) => {
                    return Err(StoreError::Decode(super::codec::DecodeError {
                        record: "meta",
                        what: format!("schema_version has {} bytes", v.len()),
                    }));
                }
            },
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: store.path().to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            tx.set_meta("created_by", env!("CARGO_PKG_VERSION").as_bytes())?;
        }
        drop(tx);
        for (version, step) in STEPS {
            if *version > found {
                log::info!("store: migrating schema to version {version}");
                step(txn)?;
                Tx::open(txn)?.set_meta("schema_version", &version.to_le_bytes())?;
            }
        }
        Ok(())
    })
}

/// Version 4 adds the user tables and builds the inbox and customer indexes from the
/// conversations (rewriting each in format 2 on the way).
fn to_v4(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut tx = Tx::open(txn)?;
    let convs = tx.all_conversations()?;
    let n = convs.len();
    for c in convs {
        tx.put_conversation(&c)?;
    }
    if n > 0 {
        log::info!("store: {n} conversations indexed for the inbox");
    }
    Ok(())
}

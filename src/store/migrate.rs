//! Schema migrations, run at every open in one durable transaction.
//!
//! Owns: bringing a store file of any earlier schema version up to `SCHEMA_VERSION`.
//! Must not: skip a version, or touch raw bytes (they are never rewritten).
//!
//! To change a layout: raise `schema::SCHEMA_VERSION`, append a step to `STEPS` that turns
//! version N-1 into N, keep the fixture `tests/fixtures/store-v1.redb` (and add one for the
//! new version), and make `tests/it/store.rs` check that old fixtures still open.

use super::schema::SCHEMA_VERSION;
use super::{Store, StoreError, Tx};
use crate::model::{MailboxId, MailboxRecord};

/// One migration step: the version it produces and what it does.
type Step = (u32, fn(&mut Tx<'_>) -> Result<(), StoreError>);

/// Steps from an empty file upwards. Version 1 is the first layout: creating the tables
/// happens when `Tx` opens them; the step adds the default mailbox.
const STEPS: &[Step] = &[(1, init_v1), (2, accounts_v2)];

fn init_v1(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    let id = MailboxId(tx.next_id("mailbox")?);
    tx.put_mailbox(&MailboxRecord {
        id,
        name: "Inbox".into(),
        address: None,
    })
}

/// Version 2 adds the account tables; `Tx` creates them, no data changes.
fn accounts_v2(_tx: &mut Tx<'_>) -> Result<(), StoreError> {
    Ok(())
}

pub(super) fn run(store: &Store) -> Result<(), StoreError> {
    store.write(|tx| {
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
        for (version, step) in STEPS {
            if *version > found {
                log::info!("store: migrating schema to version {version}");
                step(tx)?;
                tx.set_meta("schema_version", &version.to_le_bytes())?;
            }
        }
        Ok(())
    })
}

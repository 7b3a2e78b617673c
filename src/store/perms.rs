//! Typed access to `MAILBOX_PERMS`: per mailbox and user, the permission bits beyond
//! seeing the mailbox.
//!
//! Owns: reading and writing that table (a value of 0 removes the row).
//! Must not: decide what the bits mean or who may change them (`crate::mailboxes` and
//! `crate::web::admin::mailboxes`).

use super::schema::MAILBOX_PERMS;
use super::{Ctx, Reader, StoreError, Tx};
use crate::model::{MailboxId, UserId};
use redb::ReadableTable;

fn of_mailbox(
    t: &impl ReadableTable<(u64, u64), u32>,
    mailbox: MailboxId,
) -> Result<Vec<(UserId, u32)>, StoreError> {
    const OP: &str = "listing a mailbox's permissions";
    let mut out = Vec::new();
    for item in t.range((mailbox.0, 0)..=(mailbox.0, u64::MAX)).ctx(OP)? {
        let (k, v) = item.ctx(OP)?;
        out.push((UserId(k.value().1), v.value()));
    }
    Ok(out)
}

fn all(
    t: &impl ReadableTable<(u64, u64), u32>,
) -> Result<Vec<(MailboxId, UserId, u32)>, StoreError> {
    const OP: &str = "listing mailbox permissions";
    let mut out = Vec::new();
    for item in t.iter().ctx(OP)? {
        let (k, v) = item.ctx(OP)?;
        let (m, u) = k.value();
        out.push((MailboxId(m), UserId(u), v.value()));
    }
    Ok(out)
}

impl Tx<'_> {
    /// The permission bits of `user` on `mailbox` (0: none).
    pub fn mailbox_perm(&self, mailbox: MailboxId, user: UserId) -> Result<u32, StoreError> {
        Ok(self
            .mailbox_perms
            .get((mailbox.0, user.0))
            .ctx("reading a mailbox permission")?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// Every user with bits on `mailbox`.
    pub fn mailbox_perms(&self, mailbox: MailboxId) -> Result<Vec<(UserId, u32)>, StoreError> {
        of_mailbox(&self.mailbox_perms, mailbox)
    }

    /// Sets the bits of `user` on `mailbox`; 0 removes the row.
    pub fn set_mailbox_perm(
        &mut self,
        mailbox: MailboxId,
        user: UserId,
        bits: u32,
    ) -> Result<(), StoreError> {
        const OP: &str = "writing a mailbox permission";
        if bits == 0 {
            self.mailbox_perms.remove((mailbox.0, user.0)).ctx(OP)?;
        } else {
            self.mailbox_perms
                .insert((mailbox.0, user.0), bits)
                .ctx(OP)?;
        }
        Ok(())
    }
}

impl Reader {
    /// The permission bits of `user` on `mailbox` (0: none).
    pub fn mailbox_perm(&self, mailbox: MailboxId, user: UserId) -> Result<u32, StoreError> {
        match read_table!(self, MAILBOX_PERMS) {
            Some(t) => Ok(t
                .get((mailbox.0, user.0))
                .ctx("reading a mailbox permission")?
                .map(|g| g.value())
                .unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// Every user with bits on `mailbox`.
    pub fn mailbox_perms(&self, mailbox: MailboxId) -> Result<Vec<(UserId, u32)>, StoreError> {
        match read_table!(self, MAILBOX_PERMS) {
            Some(t) => of_mailbox(&t, mailbox),
            None => Ok(Vec::new()),
        }
    }

    /// Every row: (mailbox, user, bits).
    pub fn all_mailbox_perms(&self) -> Result<Vec<(MailboxId, UserId, u32)>, StoreError> {
        match read_table!(self, MAILBOX_PERMS) {
            Some(t) => all(&t),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Store, StoreOptions};

    #[test]
    fn bits_are_kept_per_mailbox_and_user_and_zero_removes_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), &StoreOptions::default()).unwrap();
        // Before any write the table reads as empty.
        assert_eq!(store.read().unwrap().all_mailbox_perms().unwrap(), vec![]);
        store
            .write(|tx| {
                tx.set_mailbox_perm(MailboxId(1), UserId(7), 5)?;
                tx.set_mailbox_perm(MailboxId(2), UserId(7), 8)?;
                tx.set_mailbox_perm(MailboxId(1), UserId(9), 2)?;
                assert_eq!(tx.mailbox_perm(MailboxId(1), UserId(7))?, 5);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let r = store.read().unwrap();
        assert_eq!(
            r.mailbox_perms(MailboxId(1)).unwrap(),
            vec![(UserId(7), 5), (UserId(9), 2)]
        );
        assert_eq!(r.mailbox_perm(MailboxId(2), UserId(7)).unwrap(), 8);
        assert_eq!(r.mailbox_perm(MailboxId(2), UserId(9)).unwrap(), 0);
        drop(r);
        store
            .write(|tx| tx.set_mailbox_perm(MailboxId(1), UserId(7), 0))
            .unwrap();
        assert_eq!(
            store.read().unwrap().all_mailbox_perms().unwrap(),
            vec![(MailboxId(1), UserId(9), 2), (MailboxId(2), UserId(7), 8)]
        );
    }
}

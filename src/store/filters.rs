//! The postmaster filters table: its record encoding and its accessors.
//!
//! Owns: how a `filters::Filter` is laid out in `FILTERS` (format byte first, fixed-width
//! little-endian integers, no `usize`), reading and writing the table.
//! Must not: check a filter (that is `crate::filters::validate`) or run one.

use super::codec::{Dec, DecodeError, Enc};
use super::schema::FILTERS;
use super::{Ctx, Reader, StoreError, Tx, all_decoded, get_decoded};
use crate::filters::{Action, Condition, Field, Filter};
use crate::model::{MailboxId, Priority, Status, UserId};

const FILTER_V1: u8 = 1;
/// A damaged count larger than this is an error, not an allocation.
const MAX_ITEMS: u32 = 10_000;

fn status_u8(s: Status) -> u8 {
    match s {
        Status::Active => 0,
        Status::Pending => 1,
        Status::Closed => 2,
        Status::Spam => 3,
        Status::Merged => 4,
    }
}

fn priority_u8(p: Priority) -> u8 {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

pub fn encode_filter(f: &Filter) -> Vec<u8> {
    let mut e = Enc::new(FILTER_V1);
    e.u64(f.id)
        .str(&f.name)
        .u8(u8::from(f.enabled))
        .u8(u8::from(f.stop))
        .u32(u32::try_from(f.conditions.len()).unwrap_or(u32::MAX));
    for c in &f.conditions {
        match &c.field {
            Field::Header(h) => e.u8(0).str(h),
            Field::Body => e.u8(1),
            Field::AttachmentCount => e.u8(2),
            Field::AttachmentName => e.u8(3),
        };
        e.str(&c.pattern)
            .u8(u8::from(c.negate))
            .u8(u8::from(c.case_sensitive));
    }
    e.u32(u32::try_from(f.actions.len()).unwrap_or(u32::MAX));
    for a in &f.actions {
        match a {
            Action::Mailbox(m) => e.u8(0).u64(m.0),
            Action::SetStatus(s) => e.u8(1).u8(status_u8(*s)),
            Action::SetPriority(p) => e.u8(2).u8(priority_u8(*p)),
            Action::Assign(u) => e.u8(3).u64(u.0),
            Action::AddTags(t) => e.u8(4).strs(t),
            Action::SetField(k, v) => e.u8(5).str(k).str(v),
            Action::MarkSpam => e.u8(6),
            Action::NoAutoReply => e.u8(7),
            Action::Ignore => e.u8(8),
        };
    }
    e.finish()
}

fn count(d: &mut Dec<'_>) -> Result<u32, DecodeError> {
    let n = d.u32()?;
    if n > MAX_ITEMS {
        return Err(d.err(format!("{n} items")));
    }
    Ok(n)
}

pub fn decode_filter(v: &[u8]) -> Result<Filter, DecodeError> {
    let mut d = Dec::new(v, "filter", FILTER_V1)?;
    let mut f = Filter {
        id: d.u64()?,
        name: d.str()?,
        enabled: d.flag()?,
        stop: d.flag()?,
        conditions: Vec::new(),
        actions: Vec::new(),
    };
    for _ in 0..count(&mut d)? {
        let field = match d.u8()? {
            0 => Field::Header(d.str()?),
            1 => Field::Body,
            2 => Field::AttachmentCount,
            3 => Field::AttachmentName,
            n => return Err(d.err(format!("condition field {n}"))),
        };
        f.conditions.push(Condition {
            field,
            pattern: d.str()?,
            negate: d.flag()?,
            case_sensitive: d.flag()?,
        });
    }
    for _ in 0..count(&mut d)? {
        let a = match d.u8()? {
            0 => Action::Mailbox(MailboxId(d.u64()?)),
            1 => Action::SetStatus(match d.u8()? {
                0 => Status::Active,
                1 => Status::Pending,
                2 => Status::Closed,
                3 => Status::Spam,
                4 => Status::Merged,
                n => return Err(d.err(format!("status {n}"))),
            }),
            2 => Action::SetPriority(match d.u8()? {
                0 => Priority::Low,
                1 => Priority::Normal,
                2 => Priority::High,
                3 => Priority::Urgent,
                n => return Err(d.err(format!("priority {n}"))),
            }),
            3 => Action::Assign(UserId(d.u64()?)),
            4 => Action::AddTags(d.strs()?),
            5 => Action::SetField(d.str()?, d.str()?),
            6 => Action::MarkSpam,
            7 => Action::NoAutoReply,
            8 => Action::Ignore,
            n => return Err(d.err(format!("action {n}"))),
        };
        f.actions.push(a);
    }
    d.end()?;
    Ok(f)
}

impl Tx<'_> {
    pub fn filters(&self) -> Result<Vec<Filter>, StoreError> {
        all_decoded(&self.filters, "listing filters", decode_filter)
    }

    pub fn filter(&self, id: u64) -> Result<Option<Filter>, StoreError> {
        get_decoded(&self.filters, id, "reading a filter", decode_filter)
    }

    /// Writes a filter; one with id 0 gets the next id (returned).
    pub fn put_filter(&mut self, f: &Filter) -> Result<u64, StoreError> {
        let mut f = f.clone();
        if f.id == 0 {
            f.id = self.next_id("filter")?;
        }
        self.filters
            .insert(f.id, encode_filter(&f).as_slice())
            .ctx("writing a filter")?;
        Ok(f.id)
    }

    pub fn remove_filter(&mut self, id: u64) -> Result<(), StoreError> {
        self.filters.remove(id).ctx("removing a filter")?;
        Ok(())
    }
}

impl Reader {
    pub fn filters(&self) -> Result<Vec<Filter>, StoreError> {
        match self.table_u64(FILTERS)? {
            Some(t) => all_decoded(&t, "listing filters", decode_filter),
            None => Ok(Vec::new()),
        }
    }

    pub fn filter(&self, id: u64) -> Result<Option<Filter>, StoreError> {
        match self.table_u64(FILTERS)? {
            Some(t) => get_decoded(&t, id, "reading a filter", decode_filter),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn filters_round_trip_and_damage_is_an_error() {
        let f = Filter {
            id: 4,
            name: "10 Rechnungen".into(),
            enabled: true,
            stop: true,
            conditions: vec![
                Condition {
                    field: Field::Header("X-Spam-Flag".into()),
                    pattern: "^yes$".into(),
                    negate: true,
                    case_sensitive: false,
                },
                Condition {
                    field: Field::Body,
                    pattern: "é".into(),
                    negate: false,
                    case_sensitive: true,
                },
                Condition {
                    field: Field::AttachmentCount,
                    pattern: "^0$".into(),
                    negate: false,
                    case_sensitive: false,
                },
                Condition {
                    field: Field::AttachmentName,
                    pattern: "pdf".into(),
                    negate: false,
                    case_sensitive: false,
                },
            ],
            actions: vec![
                Action::Mailbox(MailboxId(2)),
                Action::SetStatus(Status::Pending),
                Action::SetPriority(Priority::Urgent),
                Action::Assign(UserId(3)),
                Action::AddTags(vec!["a".into(), "b".into()]),
                Action::SetField("k".into(), "v".into()),
                Action::MarkSpam,
                Action::NoAutoReply,
                Action::Ignore,
            ],
        };
        let bytes = encode_filter(&f);
        assert_eq!(decode_filter(&bytes).unwrap(), f);
        for cut in 0..bytes.len() {
            assert!(decode_filter(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

//! The customer records table and the write-side customer index lookup.
//!
//! Owns: how a `CustomerRecord` is laid out in `CUSTOMERS` (format byte first, no
//! `usize`), reading and writing it, and listing a customer's conversations inside a
//! write transaction (the pipeline's bundling uses it).
//! Must not: decide who becomes a customer or what their company is (that is
//! `crate::creation`).

use super::codec::{Dec, DecodeError, Enc};
use super::schema::CUSTOMERS;
use super::{Ctx, Reader, StoreError, Tx};
use crate::model::{ConvId, CustomerRecord};
use redb::ReadableTable;

const CUSTOMER_V1: u8 = 1;

pub fn encode_customer(c: &CustomerRecord) -> Vec<u8> {
    let mut e = Enc::new(CUSTOMER_V1);
    e.str(&c.email).str(&c.name).str(&c.company).i64(c.created);
    e.finish()
}

pub fn decode_customer(v: &[u8]) -> Result<CustomerRecord, DecodeError> {
    let mut d = Dec::new(v, "customer", CUSTOMER_V1)?;
    let c = CustomerRecord {
        email: d.str()?,
        name: d.str()?,
        company: d.str()?,
        created: d.i64()?,
    };
    d.end()?;
    Ok(c)
}

fn get(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    email: &str,
) -> Result<Option<CustomerRecord>, StoreError> {
    const OP: &str = "reading a customer";
    let key = email.to_lowercase();
    match t.get(key.as_str()).ctx(OP)? {
        Some(v) => decode_customer(v.value())
            .map(Some)
            .map_err(StoreError::from),
        None => Ok(None),
    }
}

impl Tx<'_> {
    /// The customer record of an address (compared lower-cased).
    pub fn customer(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError> {
        get(&self.customers, email)
    }

    /// Writes a customer record under its lower-cased address.
    pub fn put_customer(&mut self, c: &CustomerRecord) -> Result<(), StoreError> {
        let key = c.email.to_lowercase();
        self.customers
            .insert(key.as_str(), encode_customer(c).as_slice())
            .ctx("writing a customer")?;
        Ok(())
    }

    /// The conversations whose customer is `email`, newest id first (the customer index).
    pub fn customer_conversations(&self, email: &str) -> Result<Vec<ConvId>, StoreError> {
        const OP: &str = "listing a customer's conversations";
        let key = email.to_lowercase();
        let mut out = Vec::new();
        for item in self
            .customer_convs
            .range((key.as_str(), 0u64)..=(key.as_str(), u64::MAX))
            .ctx(OP)?
        {
            let (k, _) = item.ctx(OP)?;
            out.push(ConvId(k.value().1));
        }
        out.reverse();
        Ok(out)
    }
}

impl Reader {
    /// The customer record of an address (compared lower-cased).
    pub fn customer(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError> {
        match read_table!(self, CUSTOMERS) {
            Some(t) => get(&t, email),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn customers_round_trip_and_damage_is_an_error() {
        let c = CustomerRecord {
            email: "zoe@example.com".into(),
            name: "Zoë".into(),
            company: "example.com".into(),
            created: 1_793_000_000_000,
        };
        let bytes = encode_customer(&c);
        assert_eq!(decode_customer(&bytes).unwrap(), c);
        for cut in 0..bytes.len() {
            assert!(decode_customer(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

//! Modified UTF-7 for IMAP folder names (RFC 3501 section 5.1.3): `Entwürfe` travels as
//! `Entw&APw-rfe`. Admins type folder names in Unicode; the wire needs this form.
//!
//! Owns: the two conversions. Must not: be used for anything but IMAP mailbox names.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64(i: u32) -> char {
    B64.get((i & 63) as usize).map_or('A', |b| char::from(*b))
}

/// Unicode -> modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let mut bits = 0u32;
        let mut nbits = 0u32;
        for b in bytes {
            bits = (bits << 8) | u32::from(b);
            nbits += 8;
            while nbits >= 6 {
                nbits -= 6;
                out.push(b64(bits >> nbits));
            }
        }
        if nbits > 0 {
            out.push(b64(bits << (6 - nbits)));
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 -> Unicode; a malformed name is returned as it came.
pub fn decode(wire: &str) -> String {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let after = rest.get(amp + 1..).unwrap_or("");
        let Some(end) = after.find('-') else {
            return wire.to_owned();
        };
        let chunk = after.get(..end).unwrap_or("");
        if chunk.is_empty() {
            out.push('&');
        } else {
            let mut bits = 0u32;
            let mut nbits = 0u32;
            let mut units = Vec::new();
            let mut bytes = Vec::new();
            for c in chunk.bytes() {
                let Some(v) = B64.iter().position(|b| *b == c) else {
                    return wire.to_owned();
                };
                bits = (bits << 6) | v as u32;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push(((bits >> nbits) & 0xff) as u8);
                }
            }
            for pair in bytes.chunks_exact(2) {
                if let [hi, lo] = pair {
                    units.push(u16::from_be_bytes([*hi, *lo]));
                }
            }
            match String::from_utf16(&units) {
                Ok(s) => out.push_str(&s),
                Err(_) => return wire.to_owned(),
            }
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_and_round_trips() {
        // RFC 3501 5.1.3 example.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode("A&-B"), "A&B");
        for s in [
            "INBOX",
            "Gelöschte Elemente",
            "Отправленные",
            "🚚 Lieferungen",
            "a&b&c",
            "",
        ] {
            assert_eq!(decode(&encode(s)), s, "{s}");
        }
        assert_eq!(decode("broken&abc"), "broken&abc");
    }
}

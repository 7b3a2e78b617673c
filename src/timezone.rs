//! The office's time zone, for showing times to people (the pages; mail headers and the
//! API stay in UTC / RFC 3339 with offset).
//!
//! Owns: naming a zone (`UTC`, a fixed offset like `+01:00`, or an IANA name like
//! `Europe/Paris` read from the system's `/usr/share/zoneinfo`), reading a TZif file
//! (versions 1 to 4, the 64-bit data when present), and the UTC offset at an instant.
//! Must not: fail a page: a zone that cannot be read is refused when it is set and falls
//! back to UTC (with a warning in the log) when it is used.

use std::path::Path;

/// Where the system keeps its zone files (Debian's `tzdata`).
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A time zone: its name and the offsets it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeZone {
    pub name: String,
    /// `(from unix seconds, offset seconds east of UTC)`, ascending; before the first
    /// transition the zone's first standard offset applies.
    transitions: Vec<(i64, i32)>,
    initial: i32,
}

impl TimeZone {
    pub fn utc() -> TimeZone {
        TimeZone {
            name: "UTC".into(),
            transitions: Vec::new(),
            initial: 0,
        }
    }

    /// A zone by name: `UTC`, `+HH:MM` / `-HH:MM`, or an IANA name under `zoneinfo`.
    pub fn named(name: &str, zoneinfo: &Path) -> Result<TimeZone, String> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("gmt") {
            return Ok(TimeZone::utc());
        }
        if let Some(off) = parse_offset(name) {
            return Ok(TimeZone {
                name: name.to_owned(),
                transitions: Vec::new(),
                initial: off,
            });
        }
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('/')
            && name.split('/').all(|p| {
                !p.is_empty()
                    && p != ".."
                    && p != "."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            });
        if !valid {
            return Err(
                "is not a time zone: use UTC, an offset like +01:00, or a name like Europe/Paris"
                    .into(),
            );
        }
        let bytes = std::fs::read(zoneinfo.join(name)).map_err(|_| {
            "is not a time zone this system knows (no zone file for it)".to_string()
        })?;
        let (initial, transitions) =
            parse_tzif(&bytes).ok_or_else(|| "has a damaged zone file".to_string())?;
        Ok(TimeZone {
            name: name.to_owned(),
            transitions,
            initial,
        })
    }

    /// The zone named `name` from the system, or UTC when it cannot be read.
    pub fn load_or_utc(name: &str) -> TimeZone {
        match TimeZone::named(name, Path::new(ZONEINFO)) {
            Ok(tz) => tz,
            Err(e) => {
                log::warn!("time zone {name:?} {e}; showing times in UTC");
                TimeZone::utc()
            }
        }
    }

    /// Seconds east of UTC at unix time `t`.
    pub fn offset_at(&self, t: i64) -> i32 {
        match self.transitions.partition_point(|(at, _)| *at <= t) {
            0 => self.initial,
            n => self
                .transitions
                .get(n - 1)
                .map_or(self.initial, |(_, off)| *off),
        }
    }

    /// `YYYY-MM-DD HH:MM` in this zone.
    pub fn format(&self, t: i64) -> String {
        crate::model::format_utc(t + i64::from(self.offset_at(t)))
    }

    /// The offset at `t` as `+HH:MM`.
    pub fn offset_label(&self, t: i64) -> String {
        let off = self.offset_at(t);
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    }
}

/// `+HH:MM`, `-HH:MM`, `+HH`, `UTC+HH:MM`: seconds east of UTC (at most 14 hours).
fn parse_offset(s: &str) -> Option<i32> {
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("utc"))
        .unwrap_or(s);
    let (sign, rest) = match s.chars().next()? {
        '+' => (1, s.get(1..)?),
        '-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None => (rest, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.len() > 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 || (h == 14 && m > 0) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a TZif file: `(offset before the first transition, transitions)`. Uses the
/// 64-bit block of version 2+ files.
fn parse_tzif(b: &[u8]) -> Option<(i32, Vec<(i64, i32)>)> {
    struct Header {
        isutcnt: usize,
        isstdcnt: usize,
        leapcnt: usize,
        timecnt: usize,
        typecnt: usize,
        charcnt: usize,
    }
    let header = |at: usize| -> Option<Header> {
        if b.get(at..at + 4)? != b"TZif" {
            return None;
        }
        let n = |i: usize| be_i32(b, at + 20 + 4 * i).and_then(|v| usize::try_from(v).ok());
        Some(Header {
            isutcnt: n(0)?,
            isstdcnt: n(1)?,
            leapcnt: n(2)?,
            timecnt: n(3)?,
            typecnt: n(4)?,
            charcnt: n(5)?,
        })
    };
    let h1 = header(0)?;
    let version = *b.get(4)?;
    let v1_len =
        h1.timecnt * 5 + h1.typecnt * 6 + h1.charcnt + h1.leapcnt * 8 + h1.isstdcnt + h1.isutcnt;
    let (h, at, tsize) = if version >= b'2' {
        (header(44 + v1_len)?, 44 + v1_len + 44, 8)
    } else {
        (h1, 44, 4)
    };
    if h.typecnt == 0 || h.timecnt > 10_000 || h.typecnt > 256 {
        return None;
    }
    let times_at = at;
    let idx_at = times_at + h.timecnt * tsize;
    let types_at = idx_at + h.timecnt;
    let ttype = |i: usize| -> Option<(i32, bool)> {
        let p = types_at + 6 * i;
        Some((be_i32(b, p)?, *b.get(p + 4)? != 0))
    };
    // Before the first transition: the first standard-time type (RFC 8536 3.2).
    let initial = (0..h.typecnt)
        .filter_map(ttype)
        .find(|(_, dst)| !dst)
        .or_else(|| ttype(0))?
        .0;
    let mut out = Vec::with_capacity(h.timecnt);
    for i in 0..h.timecnt {
        let t = if tsize == 8 {
            be_i64(b, times_at + 8 * i)?
        } else {
            i64::from(be_i32(b, times_at + 4 * i)?)
        };
        let idx = usize::from(*b.get(idx_at + i)?);
        out.push((t, ttype(idx)?.0));
    }
    Some((initial, out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn offsets_and_utc_are_named_without_files() {
        let none = Path::new("/nonexistent");
        assert_eq!(TimeZone::named("UTC", none).unwrap().offset_at(0), 0);
        assert_eq!(TimeZone::named("+01:00", none).unwrap().offset_at(0), 3600);
        assert_eq!(
            TimeZone::named("-03:30", none).unwrap().offset_at(0),
            -12_600
        );
        assert_eq!(TimeZone::named("UTC+5", none).unwrap().offset_at(0), 18_000);
        for bad in [
            "+15:00",
            "+1:75",
            "Europe/../../etc/passwd",
            "/etc/passwd",
            "",
            "a b",
        ] {
            assert!(TimeZone::named(bad, none).is_err(), "{bad}");
        }
        assert!(TimeZone::named("Europe/Paris", none).is_err());
    }

    #[test]
    fn a_system_zone_follows_summer_time() {
        let zi = Path::new(ZONEINFO);
        if !zi.join("Europe/Paris").exists() {
            // tzdata is part of every Debian system; say so loudly if it is not.
            panic!("{ZONEINFO}/Europe/Paris is missing: apt-get install tzdata");
        }
        let paris = TimeZone::named("Europe/Paris", zi).unwrap();
        // 2026-01-15 12:00 UTC: winter, +01:00; 2026-07-15 12:00 UTC: summer, +02:00.
        assert_eq!(paris.offset_at(1_768_478_400), 3600);
        assert_eq!(paris.offset_at(1_784_116_800), 7200);
        assert_eq!(paris.format(1_784_116_800), "2026-07-15 14:00");
        assert_eq!(paris.offset_label(1_784_116_800), "+02:00");
        // The change on 2026-03-29 at 01:00 UTC.
        assert_eq!(paris.offset_at(1_774_745_999), 3600);
        assert_eq!(paris.offset_at(1_774_746_000), 7200);
        let ny = TimeZone::named("America/New_York", zi).unwrap();
        assert_eq!(ny.offset_at(1_768_478_400), -18_000);
        assert!(TimeZone::named("Mars/Olympus_Mons", zi).is_err());
    }
}

//! UTC instants as microseconds since the Unix epoch.
//!
//! Feeds write times in a dozen shapes; the common ones ("2021-03-04 00:00:00",
//! RFC 3339 with or without fraction and offset) are parsed by hand because this runs once
//! per line on the hot path, and chrono's format-string parser costs more than the rest of a
//! Shadowserver row together.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A UTC instant with microsecond resolution.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1_000_000))
    }
    pub const fn micros(self) -> i64 {
        self.0
    }
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0).single().unwrap_or_default()
    }
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_micros())
    }
    /// RFC 3339 with an explicit `+00:00`, the way IntelMQ writes `time.source`.
    pub fn to_rfc3339(self) -> String {
        let dt = self.to_datetime();
        if self.0 % 1_000_000 == 0 {
            dt.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
        } else {
            dt.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
        }
    }
    /// The calendar day, `YYYY-MM-DD`.
    pub fn day(self) -> String {
        self.to_datetime().format("%Y-%m-%d").to_string()
    }
    pub fn saturating_add_secs(self, s: i64) -> Self {
        Timestamp(self.0.saturating_add(s.saturating_mul(1_000_000)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_timestamp(&s).ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {s}")))
    }
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as u32;
    }
    Some(n)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][Z|±HH[:MM]| UTC]`.
fn parse_iso(s: &[u8]) -> Option<Timestamp> {
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let y = digits(&s[0..4])? as i64;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let mut micros = 0i64;
    let mut rest = &s[10..];
    if !rest.is_empty() && (rest[0] == b' ' || rest[0] == b'T' || rest[0] == b't') && rest.len() >= 6 {
        let t = &rest[1..];
        if t.len() < 5 || t[2] != b':' {
            return None;
        }
        let h = digits(&t[0..2])?;
        let mi = digits(&t[3..5])?;
        let mut sec = 0;
        let mut i = 5;
        if t.len() >= 8 && t[5] == b':' {
            sec = digits(&t[6..8])?;
            i = 8;
            if t.len() > 8 && (t[8] == b'.' || t[8] == b',') {
                let mut j = 9;
                let mut frac = 0i64;
                let mut scale = 100_000i64;
                while j < t.len() && t[j].is_ascii_digit() {
                    frac += (t[j] - b'0') as i64 * scale;
                    scale /= 10;
                    j += 1;
                }
                if j == 9 {
                    return None;
                }
                micros = frac;
                i = j;
            }
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        secs += (h * 3600 + mi * 60 + sec) as i64;
        rest = &t[i..];
    }
    // Offset.
    let rest = match rest {
        [b' ', tail @ ..] => tail,
        r => r,
    };
    match rest {
        [] | b"Z" | b"z" | b"UTC" | b"GMT" | b"+00" | b"+0000" | b"+00:00" => {}
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail.len() {
                2 => (digits(&tail[0..2])?, 0),
                4 => (digits(&tail[0..2])?, digits(&tail[2..4])?),
                5 if tail[2] == b':' => (digits(&tail[0..2])?, digits(&tail[3..5])?),
                _ => return None,
            };
            let off = (h * 3600 + m * 60) as i64;
            secs -= if *sign == b'+' { off } else { -off };
        }
        _ => return None,
    }
    Some(Timestamp(secs * 1_000_000 + micros))
}

/// Parses the time formats feeds use. Returns `None` for anything else; callers decide
/// whether that rejects the line.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(t) = parse_iso(s.as_bytes()) {
        return Some(t);
    }
    // Unix seconds (Spamhaus CERT bots, MISP) or milliseconds.
    if !s.is_empty() && s.len() <= 13 && s.bytes().all(|c| c.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return Some(if s.len() == 13 { Timestamp(n * 1000) } else { Timestamp::from_secs(n) });
    }
    // Windows FILETIME (100 ns ticks since 1601), used by Microsoft's CTIP.
    if s.len() == 18 && s.bytes().all(|c| c.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return Some(Timestamp(n / 10 - 11_644_473_600_000_000));
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(s) {
        return Some(Timestamp::from_datetime(dt.with_timezone(&Utc)));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(Timestamp::from_datetime(dt.with_timezone(&Utc)));
    }
    for fmt in [
        "%a %b %e %H:%M:%S UTC %Y",
        "%a %b %e %H:%M:%S %Y UTC",
        "%a %b %e %H:%M:%S %Y",
        "%Y/%m/%d %H:%M:%S",
        "%d/%m/%Y %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%A %B %d %Y %H:%M:%S%.f",
    ] {
        let cleaned = s.trim_end_matches(" GMT");
        if let Ok(n) = NaiveDateTime::parse_from_str(cleaned, fmt) {
            return Some(Timestamp::from_datetime(n.and_utc()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y/%m/%d") {
        return Some(Timestamp::from_datetime(d.and_hms_opt(0, 0, 0)?.and_utc()));
    }
    None
}

/// Where "now" comes from. Logic takes a clock so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(t: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(t.0))
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1_000_000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_ref(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn parses_common_shapes() {
        assert_eq!(parse_timestamp("2021-03-04 00:00:00").unwrap().0, chrono_ref("2021-03-04T00:00:00Z"));
        assert_eq!(
            parse_timestamp("2018-04-07T03:02:15.951205Z").unwrap().0,
            chrono_ref("2018-04-07T03:02:15.951205Z")
        );
        assert_eq!(
            parse_timestamp("2024-02-29T10:00:00+02:00").unwrap().0,
            chrono_ref("2024-02-29T08:00:00Z")
        );
        assert_eq!(parse_timestamp("2021-02-10").unwrap().0, chrono_ref("2021-02-10T00:00:00Z"));
        assert_eq!(parse_timestamp("1441008970").unwrap(), Timestamp::from_secs(1441008970));
        assert_eq!(parse_timestamp("2016-11-12 15:16").unwrap().0, chrono_ref("2016-11-12T15:16:00Z"));
        assert_eq!(
            parse_timestamp("Sat Nov 12 00:15:01 UTC 2016").unwrap().0,
            chrono_ref("2016-11-12T00:15:01Z")
        );
        assert_eq!(parse_timestamp("131349599830000000").unwrap().0, chrono_ref("2017-03-25T23:59:43Z"));
    }

    #[test]
    fn rejects_nonsense() {
        for s in ["", "2021-13-01", "2021-02-30", "2021-02-03 25:00:00", "yesterday", "2021-02-03T10:00:00+9"]
        {
            assert!(parse_timestamp(s).is_none(), "{s}");
        }
    }

    #[test]
    fn formats_like_intelmq() {
        let t = parse_timestamp("2021-03-04 00:00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2021-03-04T00:00:00+00:00");
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(us in -2_000_000_000_000_000i64..4_000_000_000_000_000i64) {
            let t = Timestamp(us);
            proptest::prop_assert_eq!(parse_timestamp(&t.to_rfc3339()), Some(t));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_timestamp(&s);
        }
    }
}

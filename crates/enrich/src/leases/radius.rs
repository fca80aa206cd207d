//! FreeRADIUS accounting `detail` files (the `detail` module of FreeRADIUS 3.x; attributes
//! from RFC 2866 and RFC 3162/4818).
//!
//! Records are separated by blank lines. Each starts with an unindented date line
//! (`Tue Nov 24 10:00:00 2026`, the server's clock, taken as UTC) followed by indented
//! `Attr = value` lines. The instant of a record is `Event-Timestamp` when present (the NAS's
//! own clock, RFC 2869), else the `Timestamp` FreeRADIUS appends, else the date line.
//!
//! Sessions are paired by `Acct-Unique-Session-Id`, else `Acct-Session-Id` with the NAS
//! address. A Start opens the interval; an Interim-Update opens one when the Start was lost
//! (at the update's time minus `Acct-Session-Time`); a Stop closes it, or — without a Start —
//! yields the interval `Stop − Acct-Session-Time .. Stop`. `Accounting-On`/`-Off` from a NAS
//! (it rebooted) close every open session of that NAS. Sessions never stopped stay open. Each
//! framed address (`Framed-IP-Address`, `Framed-IPv6-Prefix`, `Delegated-IPv6-Prefix`,
//! `Framed-IPv6-Address`) becomes one record; the holder is `User-Name`, else
//! `Calling-Station-Id`.

use super::{Parsed, civil, hms, host, lines, month, num};
use botwatch_model::{LeaseRecord, Timestamp};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// Open sessions by key; SipHash would cost more than the parsing around it.
type Open = HashMap<String, Session, Xxh3DefaultBuilder>;

/// The seconds of a `Tue Nov 24 10:00:00 2026` date line.
pub(crate) fn header_time(l: &[u8]) -> Option<i64> {
    let mut p = l.split(|&c| c == b' ').filter(|w| !w.is_empty());
    let (_dow, mon, day, t, year) = (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
    if p.next().is_some() {
        return None;
    }
    let (h, m, s) = hms(t)?;
    civil(num(year)? as i64, month(mon)?, num(day)?, h, m, s)
}

/// `Event-Timestamp`: FreeRADIUS prints `"Nov 24 2026 10:00:00 UTC"`; some write epoch seconds.
fn event_time(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse::<i64>() {
        return Some(n);
    }
    let mut p = v.split(' ').filter(|w| !w.is_empty());
    let (mon, day, year, t) = (p.next()?, p.next()?, p.next()?, p.next()?);
    let (h, m, s) = hms(t.as_bytes())?;
    if !matches!(p.next(), None | Some("UTC" | "GMT" | "+0000")) {
        return None;
    }
    civil(num(year.as_bytes())? as i64, month(mon.as_bytes())?, num(day.as_bytes())?, h, m, s)
}

struct Session {
    start: i64,
    line: u64,
    subscriber: String,
    ids: Vec<(String, String)>,
    nets: Vec<IpNet>,
    nas: String,
}

#[derive(Default)]
struct Rec<'a> {
    attrs: Vec<(&'a str, &'a str)>,
}

impl<'a> Rec<'a> {
    fn get(&self, k: &str) -> Option<&'a str> {
        self.attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v)
}

pub(crate) fn parse(data: &[u8], out: &mut Parsed) {
    let mut open: Open = HashMap::default();
    // Records in input order; a record is the lines from its date line up to a blank line.
    let mut block: Vec<(u64, &[u8])> = Vec::new();
    let all: Vec<(u64, &[u8])> = lines(data).collect();
    let mut i = 0;
    while i <= all.len() {
        let end_of_block = i == all.len() || all[i].1.trim_ascii().is_empty();
        if !end_of_block {
            block.push(all[i]);
            i += 1;
            continue;
        }
        i += 1;
        if block.is_empty() {
            continue;
        }
        let blk = std::mem::take(&mut block);
        record(&blk, data, &mut open, out);
    }
    // Sessions never stopped stay open.
    let mut rest: Vec<Session> = open.into_values().collect();
    rest.sort_by_key(|s| s.line);
    for s in rest {
        emit(s, None, out);
    }
}

fn raw_of<'a>(data: &'a [u8], blk: &[(u64, &'a [u8])]) -> &'a [u8] {
    // The block's lines are slices of `data`: take the span from the first to the last.
    let (Some(first), Some(last)) = (blk.first(), blk.last()) else { return &[] };
    let base = data.as_ptr() as usize;
    let a = (first.1.as_ptr() as usize).saturating_sub(base);
    let b = (last.1.as_ptr() as usize + last.1.len()).saturating_sub(base);
    data.get(a..b).unwrap_or(first.1)
}

fn record(blk: &[(u64, &[u8])], data: &[u8], open: &mut Open, out: &mut Parsed) {
    let line = blk[0].0;
    let raw = raw_of(data, blk);
    let Some(header) = header_time(blk[0].1.trim_ascii()) else {
        out.reject(line, raw, "record does not start with a date line");
        return;
    };
    let mut r = Rec::default();
    for &(n, l) in &blk[1..] {
        let Ok(s) = std::str::from_utf8(l) else {
            out.reject(n, l, "attribute line is not UTF-8");
            continue;
        };
        match s.trim().split_once(" = ") {
            Some((k, v)) => r.attrs.push((k.trim(), unquote(v.trim()))),
            None => out.reject(n, l, "attribute line without ' = '"),
        }
    }
    let t = match r.get("Event-Timestamp") {
        Some(v) => match event_time(v) {
            Some(t) => t,
            None => {
                out.reject(line, raw, "bad Event-Timestamp");
                return;
            }
        },
        None => r.get("Timestamp").and_then(|v| v.parse().ok()).unwrap_or(header),
    };
    let Some(status) = r.get("Acct-Status-Type") else {
        out.reject(line, raw, "record without Acct-Status-Type");
        return;
    };
    let nas = r.get("NAS-IP-Address").or(r.get("NAS-IPv6-Address")).or(r.get("NAS-Identifier")).unwrap_or("");
    if matches!(status, "Accounting-On" | "Accounting-Off") {
        let keys: Vec<String> = open.iter().filter(|(_, s)| s.nas == nas).map(|(k, _)| k.clone()).collect();
        for k in keys {
            if let Some(s) = open.remove(&k) {
                emit(s, Some(t), out);
            }
        }
        return;
    }
    let key = match (r.get("Acct-Unique-Session-Id"), r.get("Acct-Session-Id")) {
        (Some(u), _) => u.to_string(),
        (None, Some(s)) => format!("{nas}\u{0}{s}"),
        (None, None) => {
            out.reject(line, raw, "record without Acct-Session-Id");
            return;
        }
    };
    let session_time = match r.get("Acct-Session-Time").map(|v| v.parse::<u32>()) {
        Some(Ok(s)) => Some(s as i64),
        Some(Err(_)) => {
            out.reject(line, raw, "bad Acct-Session-Time");
            return;
        }
        None => None,
    };
    let mut nets = Vec::new();
    for k in ["Framed-IP-Address", "Framed-IPv6-Address", "Framed-IPv6-Prefix", "Delegated-IPv6-Prefix"] {
        let Some(v) = r.get(k) else { continue };
        let net = if v.contains('/') {
            v.parse::<IpNet>().ok().map(|n| n.trunc())
        } else {
            v.parse::<IpAddr>().ok().map(host)
        };
        match net {
            Some(n) => nets.push(n),
            None => {
                out.reject(line, raw, format!("bad {k}"));
                return;
            }
        }
    }
    let mut ids: Vec<(String, String)> = Vec::new();
    for (attr, name) in [
        ("User-Name", "user-name"),
        ("Calling-Station-Id", "calling-station-id"),
        ("Acct-Session-Id", "session-id"),
        ("NAS-Port-Id", "nas-port-id"),
        ("NAS-IP-Address", "nas-ip"),
    ] {
        if let Some(v) = r.get(attr) {
            ids.push((name.into(), v.to_string()));
        }
    }
    let subscriber = r.get("User-Name").or(r.get("Calling-Station-Id")).unwrap_or("").to_string();
    let since = |t: i64| session_time.map(|s| t.saturating_sub(s));
    match status {
        "Start" | "Interim-Update" | "Alive" => {
            if let Some(s) = open.get_mut(&key) {
                for n in nets {
                    if !s.nets.contains(&n) {
                        s.nets.push(n);
                    }
                }
                return;
            }
            let start = if status == "Start" { t } else { since(t).unwrap_or(t) };
            if subscriber.is_empty() {
                out.reject(line, raw, "session without User-Name or Calling-Station-Id");
                return;
            }
            open.insert(key, Session { start, line, subscriber, ids, nets, nas: nas.to_string() });
        }
        "Stop" => {
            let s = match open.remove(&key) {
                Some(mut s) => {
                    for n in nets {
                        if !s.nets.contains(&n) {
                            s.nets.push(n);
                        }
                    }
                    s
                }
                None => {
                    let Some(start) = since(t) else {
                        out.reject(line, raw, "Stop without Start and without Acct-Session-Time");
                        return;
                    };
                    if subscriber.is_empty() {
                        out.reject(line, raw, "session without User-Name or Calling-Station-Id");
                        return;
                    }
                    Session { start, line, subscriber, ids, nets, nas: nas.to_string() }
                }
            };
            emit(s, Some(t), out);
        }
        other => out.reject(line, raw, format!("unknown Acct-Status-Type {other}")),
    }
}

fn emit(s: Session, end: Option<i64>, out: &mut Parsed) {
    for n in &s.nets {
        out.records.push(LeaseRecord {
            ip: *n,
            ports: None,
            start: Timestamp::from_secs(s.start),
            end: end.map(Timestamp::from_secs),
            subscriber: s.subscriber.clone(),
            identifiers: s.ids.clone(),
            source: out.source.clone(),
            line: s.line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, parse_as};

    #[test]
    fn stop_without_start_uses_session_time_and_open_sessions_stay_open() {
        let data = b"Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Stop\n\tUser-Name = \"alice\"\n\tAcct-Session-Id = \"s1\"\n\tFramed-IP-Address = 100.64.0.9\n\tAcct-Session-Time = 600\n\tEvent-Timestamp = \"Nov 24 2026 10:00:00 UTC\"\n\n\
Tue Nov 24 10:05:00 2026\n\tAcct-Status-Type = Start\n\tUser-Name = \"bob\"\n\tAcct-Session-Id = \"s2\"\n\tFramed-IP-Address = 100.64.0.10\n\tEvent-Timestamp = 1795514700\n";
        let (r, j) = parse_as(Format::RadiusDetail, data, "x");
        assert!(j.is_empty(), "{j:?}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].subscriber, "alice");
        assert_eq!(r[0].start.secs(), 1795514400 - 600);
        assert_eq!(r[0].end.unwrap().secs(), 1795514400);
        assert_eq!(r[1].end, None);
        assert_eq!(r[1].line, 9);
    }
}

//! Unbound `log-queries`/`log-replies` and BIND `querylog` text.
//!
//! Unbound (1.17, `log-tag-queryreply: yes`; `info:` instead of the tag otherwise):
//! `Nov 25 17:20:05 unbound[29117:0] query: 127.0.0.27 detik.com. A IN`
//! `Nov 25 17:20:05 unbound[29117:0] reply: 127.0.0.27 detik.com. A IN NOERROR 0.000000 1 54`
//! BIND 9.11+:
//! `25-Nov-2026 17:20:05.123 client @0x7f… 10.0.0.5#53422 (example.com): query: example.com IN A +E(0)K (10.0.0.1)`
//! Lines with a time prefix that are other log messages are counted as skipped.

use super::{DnsFormat, DnsSink, ReadOptions, Stats, reject, wire::normalise_qname};
use crate::lines::{Line, LineSource, MAX_LINE, SliceLines};
use crate::record::DnsRecord;
use botwatch_model::{Timestamp, parse_timestamp};
use chrono::{Datelike, NaiveDate};
use std::borrow::Cow;
// foldhash: SipHash on the waiting queries was the reader's largest single cost.
use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;
use std::net::IpAddr;

/// A reply further than this from its query line belongs to another query.
const REPLY_WINDOW_US: i64 = 30_000_000;
/// Most records held for their reply (~200 bytes each): two reply windows of a resolver
/// answering ~17,000 queries a second.
const MAX_HELD: usize = 1 << 21;

pub(crate) fn detect_text(bytes: &[u8], name: &str) -> Option<DnsFormat> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(head);
    let (mut unbound, mut bind) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(50) {
        if line.contains("unbound[") || line.contains("unbound:") {
            unbound += 1;
        }
        if line.contains("client ") && line.contains("query: ") && line.contains('#') {
            bind += 1;
        }
    }
    if bind > 0 && bind >= unbound {
        Some(DnsFormat::BindQueryLog)
    } else if unbound > 0 || name.contains("unbound") {
        Some(DnsFormat::UnboundLog)
    } else if name.contains("named") || name.contains("bind") {
        Some(DnsFormat::BindQueryLog)
    } else {
        None
    }
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s)).map(|i| i as u32 + 1)
}

/// `HH:MM:SS[.frac]` → seconds of day and microseconds.
fn clock(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once(['.', ',']).unwrap_or((s, ""));
    let mut it = hms.split(':');
    let (h, m, sec): (i64, i64, i64) =
        (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 || hms.len() != 8 {
        return None;
    }
    let mut us = 0i64;
    let mut scale = 100_000;
    for c in frac.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        us += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some((h * 3600 + m * 60 + sec) * 1_000_000 + us)
}

fn date_us(y: i32, m: u32, d: u32) -> Option<i64> {
    let days = NaiveDate::from_ymd_opt(y, m, d)?.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?);
    days.num_days().checked_mul(86_400_000_000)
}

pub(super) fn epoch(s: &str) -> Option<Timestamp> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if sec.is_empty() || sec.len() > 12 || !sec.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut us = sec.parse::<i64>().ok()? * 1_000_000;
    let mut scale = 100_000;
    for c in frac.bytes().take(6) {
        if !c.is_ascii_digit() {
            return None;
        }
        us += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(Timestamp(us))
}

#[derive(Debug, PartialEq)]
enum TimeErr {
    Missing,
    NoYear,
}

/// Splits the time prefix off a line: `(time, rest)`.
fn split_time<'a>(line: &'a str, reference: Option<Timestamp>) -> Result<(Timestamp, &'a str), TimeErr> {
    let mut toks = line.split(' ').filter(|t| !t.is_empty());
    let t1 = toks.next().ok_or(TimeErr::Missing)?;
    let after = |tok: &str| -> &'a str {
        // `tok` borrows from `line`; everything after it, leading blanks trimmed.
        let end = tok.as_ptr() as usize - line.as_ptr() as usize + tok.len();
        line[end..].trim_start()
    };
    if let Some(inner) = t1.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return epoch(inner).map(|t| (t, after(t1))).ok_or(TimeErr::Missing);
    }
    if let Some(t) = epoch(t1).filter(|_| t1.len() >= 9) {
        return Ok((t, after(t1)));
    }
    let t2 = toks.next();
    // BIND: 25-Nov-2026 17:20:05.123
    let dmy: Vec<&str> = t1.split('-').collect();
    if let ([d, m, y], Some(t2)) = (dmy.as_slice(), t2)
        && let (Ok(d), Some(m), Ok(y)) = (d.parse(), month(m), y.parse())
    {
        let us = date_us(y, m, d).zip(clock(t2)).ok_or(TimeErr::Missing)?;
        return Ok((Timestamp(us.0 + us.1), after(t2)));
    }
    if t1.len() > 10 && t1.as_bytes()[4] == b'-' && (t1.as_bytes()[10] == b'T' || t1.as_bytes()[10] == b't') {
        return parse_timestamp(t1).map(|t| (t, after(t1))).ok_or(TimeErr::Missing);
    }
    if t1.len() == 10
        && t1.as_bytes()[4] == b'-'
        && let Some(t2) = t2
    {
        let t = parse_timestamp(&format!("{t1} {t2}")).ok_or(TimeErr::Missing)?;
        return Ok((t, after(t2)));
    }
    // Syslog: Nov 25 17:20:05 (day may be padded: "Nov  5").
    if let (Some(m), Some(d), Some(t3)) = (month(t1), t2.and_then(|d| d.parse::<u32>().ok()), toks.next()) {
        let tod = clock(t3).ok_or(TimeErr::Missing)?;
        let reference = reference.ok_or(TimeErr::NoYear)?;
        let ry = reference.to_datetime().year();
        // The latest year that does not put the line more than a day after the reference.
        for y in [ry + 1, ry, ry - 1] {
            if let Some(us) = date_us(y, m, d)
                && us + tod <= reference.0 + 86_400_000_000
            {
                return Ok((Timestamp(us + tod), after(t3)));
            }
        }
        return Err(TimeErr::Missing);
    }
    Err(TimeErr::Missing)
}

/// Client as Unbound/BIND print it: `10.0.0.5`, `10.0.0.5#53422`, `10.0.0.5@53422`.
fn client(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse() {
        return Some((ip, None));
    }
    let (ip, port) = s.rsplit_once(['#', '@'])?;
    Some((ip.parse().ok()?, Some(port.parse().ok()?)))
}

enum Parsed {
    Query(DnsRecord),
    Reply(DnsRecord),
    Other,
}

fn is_class(s: &str) -> bool {
    matches!(s, "IN" | "CH" | "HS" | "ANY" | "NONE") || s.starts_with("CLASS")
}

/// Fields after the Unbound tag: `ip name type class [rcode time cached size …]`.
fn unbound_fields(rest: &str, time: Timestamp, tagged: Option<bool>) -> Result<Parsed, String> {
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let Some(&first) = f.first() else { return Err("empty query/reply line".into()) };
    let Some((ip, port)) = client(first) else {
        // `info:` carries every other message too; tagged lines must start with the client.
        return if tagged.is_none() {
            Ok(Parsed::Other)
        } else {
            Err(format!("bad client address {first:?}"))
        };
    };
    if f.len() < 4 || !is_class(f[3]) {
        return Err("expected `client name type class`".into());
    }
    let is_reply = match tagged {
        Some(r) => r,
        None => f.len() >= 5,
    };
    let rcode = if is_reply {
        let rc = f.get(4).ok_or("reply without rcode")?;
        if rc.is_empty() || !rc.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("bad rcode {rc:?}"));
        }
        Some(rc.to_ascii_uppercase().into())
    } else {
        None
    };
    let rec = DnsRecord {
        time,
        client: ip,
        client_port: port,
        qname: normalise_qname(f[1]),
        qtype: f[2].to_ascii_uppercase().into(),
        rcode,
        answers: Vec::new(),
        server: None,
    };
    Ok(if is_reply { Parsed::Reply(rec) } else { Parsed::Query(rec) })
}

fn find_tag<'a>(rest: &'a str, tag: &str) -> Option<&'a str> {
    let i = rest.find(tag)?;
    (i == 0 || rest.as_bytes()[i - 1] == b' ').then(|| &rest[i + tag.len()..])
}

fn unbound_line(rest: &str, time: Timestamp) -> Result<Parsed, String> {
    if let Some(r) = find_tag(rest, "query: ") {
        return unbound_fields(r, time, Some(false));
    }
    if let Some(r) = find_tag(rest, "reply: ") {
        return unbound_fields(r, time, Some(true));
    }
    if let Some(r) = find_tag(rest, "info: ") {
        return unbound_fields(r, time, None);
    }
    Ok(Parsed::Other)
}

fn bind_line(rest: &str, time: Timestamp) -> Result<Parsed, String> {
    let Some(c) = find_tag(rest, "client ") else { return Ok(Parsed::Other) };
    let Some(q) = find_tag(c, "query: ") else { return Ok(Parsed::Other) };
    let mut ct = c.split_ascii_whitespace();
    let mut who = ct.next().unwrap_or("");
    if who.starts_with("@0x") {
        who = ct.next().unwrap_or("");
    }
    let who = who.trim_end_matches(':');
    let (ip, port) = client(who).ok_or_else(|| format!("bad client address {who:?}"))?;
    let f: Vec<&str> = q.split_ascii_whitespace().collect();
    if f.len() < 3 || !is_class(f[1]) {
        return Err("expected `query: name class type`".into());
    }
    Ok(Parsed::Query(DnsRecord {
        time,
        client: ip,
        client_port: port,
        qname: normalise_qname(f[0]),
        qtype: f[2].to_ascii_uppercase().into(),
        rcode: None,
        answers: Vec::new(),
        server: None,
    }))
}

pub(crate) fn read_log(
    bytes: &[u8],
    format: DnsFormat,
    opts: &ReadOptions,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    read_log_lines(&mut SliceLines::new(bytes), format, opts, out, stats)
}

/// Type of the queries waiting for their reply: client, name, type.
type Key = (IpAddr, String, Cow<'static, str>);

/// Hands on the oldest held record; a query no reply completed leaves the waiting list.
fn release(
    held: &mut VecDeque<DnsRecord>,
    first: &mut usize,
    waiting: &mut HashMap<Key, VecDeque<usize>>,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    let Some(r) = held.pop_front() else { return };
    if r.rcode.is_none() {
        stats.unanswered += 1;
        let key = (r.client, r.qname.clone(), r.qtype.clone());
        if let Some(w) = waiting.get_mut(&key) {
            // Its number is the smallest held, so it is first in line if still waiting.
            if w.front() == Some(first) {
                w.pop_front();
            }
            if w.is_empty() {
                waiting.remove(&key);
            }
        }
    }
    *first += 1;
    out.record(r);
}

/// [`read_log`] from any line source. A query is held until its reply can no longer come
/// (two reply windows behind the latest time read), so a resolver's log of any length is
/// read in the memory of a minute of its queries; records go out in line order.
pub(crate) fn read_log_lines(
    lines: &mut dyn LineSource,
    format: DnsFormat,
    opts: &ReadOptions,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    // `held[i]` is record number `first + i`; `waiting` holds record numbers.
    let mut held: VecDeque<DnsRecord> = VecDeque::new();
    let mut first = 0usize;
    let mut waiting: HashMap<Key, VecDeque<usize>> = HashMap::new();
    let mut latest = i64::MIN;
    while let Some(Line { number: n, bytes: raw, cut }) = lines.next_line() {
        if raw.iter().all(u8::is_ascii_whitespace) && !cut {
            continue;
        }
        stats.lines += 1;
        if cut {
            out.reject(reject(n, raw, format!("line longer than {} MiB", MAX_LINE >> 20)));
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            out.reject(reject(n, raw, "not UTF-8"));
            continue;
        };
        let (time, rest) = match split_time(line, opts.reference) {
            Ok(v) => v,
            Err(TimeErr::Missing) => {
                out.reject(reject(n, raw, "no time stamp at the start of the line"));
                continue;
            }
            Err(TimeErr::NoYear) => {
                // Only query/reply lines matter; other yearless lines are just skipped.
                let probe = Timestamp(0);
                let parsed = match format {
                    DnsFormat::BindQueryLog => bind_line(line, probe),
                    _ => unbound_line(line, probe),
                };
                if matches!(parsed, Ok(Parsed::Other)) {
                    stats.lines_skipped += 1;
                } else {
                    out.reject(reject(
                        n,
                        raw,
                        "syslog time stamp has no year and no reference time was given",
                    ));
                }
                continue;
            }
        };
        // Time that jumps back further than two windows (logs joined out of order, a clock
        // set back, a line from the far future before this one) starts the window over:
        // what is held can no longer be answered by what follows.
        if time.0 < latest.saturating_sub(2 * REPLY_WINDOW_US) {
            while !held.is_empty() {
                release(&mut held, &mut first, &mut waiting, out, stats);
            }
            latest = time.0;
        }
        let parsed = match format {
            DnsFormat::BindQueryLog => bind_line(rest, time),
            _ => unbound_line(rest, time),
        };
        match parsed {
            Err(e) => out.reject(reject(n, raw, e)),
            Ok(Parsed::Other) => stats.lines_skipped += 1,
            Ok(Parsed::Query(r)) => {
                stats.queries += 1;
                waiting
                    .entry((r.client, r.qname.clone(), r.qtype.clone()))
                    .or_default()
                    .push_back(first + held.len());
                held.push_back(r);
            }
            Ok(Parsed::Reply(r)) => {
                stats.responses += 1;
                let key = (r.client, r.qname.clone(), r.qtype.clone());
                let q = waiting.get_mut(&key).and_then(|w| {
                    while let Some(&j) = w.front() {
                        if r.time.0 - held[j - first].time.0 > REPLY_WINDOW_US {
                            w.pop_front();
                        } else {
                            return w.pop_front();
                        }
                    }
                    None
                });
                // A name asked once is the common case: its entry goes with its reply.
                if waiting.get(&key).is_some_and(VecDeque::is_empty) {
                    waiting.remove(&key);
                }
                match q {
                    Some(j) => {
                        stats.paired += 1;
                        held[j - first].rcode = r.rcode;
                    }
                    None => {
                        stats.unmatched_responses += 1;
                        held.push_back(r);
                    }
                }
            }
        }
        // Lines may be a little out of order; two windows behind the latest is safe. A
        // resolver with more than MAX_HELD queries a minute pairs its oldest ones less well
        // rather than growing.
        latest = latest.max(time.0);
        while held.front().is_some_and(|r| r.time.0 < latest.saturating_sub(2 * REPLY_WINDOW_US))
            || held.len() > MAX_HELD
        {
            release(&mut held, &mut first, &mut waiting, out, stats);
        }
    }
    while !held.is_empty() {
        release(&mut held, &mut first, &mut waiting, out, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Collected, read_as};

    fn run(text: &str, format: DnsFormat) -> (Vec<DnsRecord>, Vec<botwatch_model::Reject>, Stats) {
        let opts = ReadOptions { reference: Some(parse_timestamp("2026-11-26T00:00:00Z").unwrap()) };
        read_as(text.as_bytes(), format, &opts)
    }

    #[test]
    fn queries_are_handed_on_once_their_reply_can_no_longer_come() {
        // Ten minutes of Unbound log, a query a second: each record must leave well before
        // the log ends, so memory holds about a minute of queries, not the log.
        let mut text = String::new();
        for i in 0..600 {
            let (m, s) = (i / 60, i % 60);
            text +=
                &format!("Nov 25 17:{m:02}:{s:02} unbound[1:0] query: 10.0.0.{} n{i}.example. A IN\n", i % 7);
            if i % 2 == 0 {
                text += &format!(
                    "Nov 25 17:{m:02}:{s:02} unbound[1:0] reply: 10.0.0.{} n{i}.example. A IN NOERROR 0.001 0 60\n",
                    i % 7
                );
            }
        }
        let (seen, stats) = held_until(&text, DnsFormat::UnboundLog);
        assert_eq!(seen.len(), 600);
        assert_eq!((stats.paired, stats.unanswered), (300, 300));
        // Record i is out by the time the line of second i + 61 is read (two reply windows).
        for (i, (line, r)) in seen.iter().enumerate() {
            assert_eq!(r.qname, format!("n{i}.example"));
            assert_eq!(r.rcode.is_some(), i % 2 == 0, "{i}");
            if i < 530 {
                assert!(*line <= (i as u64 + 62) * 3 / 2 + 1, "record {i} held until line {line}");
            }
        }
        // The same as reading it all in memory.
        let (whole, _, st) = run(&text, DnsFormat::UnboundLog);
        assert!(whole == seen.into_iter().map(|x| x.1).collect::<Vec<_>>());
        assert_eq!((st.paired, st.unanswered, st.lines), (stats.paired, stats.unanswered, stats.lines));

        // A line from the far future, then time back to normal, then a log joined in
        // reverse (an hour back): nothing stays held behind the jumps.
        let mut text = String::new();
        text += "25-Nov-2099 17:20:05.000 client @0x1 10.0.0.9#5353 (f.example): query: f.example IN A +E(0)K (10.0.0.1)\n";
        for i in 0..300 {
            let (m, s) = (20 + i / 60, i % 60);
            text += &format!(
                "25-Nov-2026 17:{m:02}:{s:02}.000 client @0x1 10.0.0.{}#5353 (b{i}.example): query: b{i}.example IN A +E(0)K (10.0.0.1)\n",
                i % 7
            );
        }
        for i in 0..300 {
            let (m, s) = (20 + i / 60, i % 60);
            text += &format!(
                "25-Nov-2026 16:{m:02}:{s:02}.000 client @0x1 10.0.0.{}#5353 (c{i}.example): query: c{i}.example IN A +E(0)K (10.0.0.1)\n",
                i % 7
            );
        }
        let (seen, stats) = held_until(&text, DnsFormat::BindQueryLog);
        assert_eq!((seen.len(), stats.unanswered), (601, 601));
        // The future line goes out when time comes back; b0 before the first c line is read.
        assert_eq!((seen[0].0, seen[0].1.qname.as_str()), (2, "f.example"));
        let b0 = seen.iter().find(|x| x.1.qname == "b0.example").unwrap().0;
        assert!(b0 <= 65, "b0 held until line {b0}");
        assert!(seen.iter().find(|x| x.1.qname == "b299.example").unwrap().0 <= 303);
    }

    /// Each record of a query log with the number of the line being read when it went out.
    fn held_until(text: &str, format: DnsFormat) -> (Vec<(u64, DnsRecord)>, Stats) {
        struct Counting<'a>(SliceLines<'a>, std::rc::Rc<std::cell::Cell<u64>>);
        impl LineSource for Counting<'_> {
            fn next_line(&mut self) -> Option<Line<'_>> {
                let l = self.0.next_line()?;
                self.1.set(l.number);
                Some(l)
            }
        }
        struct Seen(std::rc::Rc<std::cell::Cell<u64>>, Vec<(u64, DnsRecord)>);
        impl DnsSink for Seen {
            fn record(&mut self, r: DnsRecord) {
                self.1.push((self.0.get(), r));
            }
        }
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut seen = Seen(read.clone(), Vec::new());
        let opts = ReadOptions { reference: Some(parse_timestamp("2026-11-26T00:00:00Z").unwrap()) };
        let mut stats = Stats::default();
        read_log_lines(
            &mut Counting(SliceLines::new(text.as_bytes()), read),
            format,
            &opts,
            &mut seen,
            &mut stats,
        );
        (seen.1, stats)
    }

    #[test]
    fn time_prefixes() {
        let r = Some(parse_timestamp("2026-01-02T00:00:00Z").unwrap());
        let cases = [
            ("[1764091205] x", "2025-11-25T17:20:05+00:00"),
            ("1764091205.25 x", "2025-11-25T17:20:05.250000+00:00"),
            ("25-Nov-2026 17:20:05.123 x", "2026-11-25T17:20:05.123000+00:00"),
            ("2026-11-25T17:20:05.5+01:00 x", "2026-11-25T16:20:05.500000+00:00"),
            ("2026-11-25 17:20:05 x", "2026-11-25T17:20:05+00:00"),
            // December seen from early January is last year's.
            ("Dec 31 23:59:59 x", "2025-12-31T23:59:59+00:00"),
            ("Jan  2 10:00:00 x", "2026-01-02T10:00:00+00:00"),
        ];
        for (line, want) in cases {
            let (t, rest) = split_time(line, r).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            assert_eq!((t.to_rfc3339().as_str(), rest), (want, "x"), "{line}");
        }
        assert_eq!(split_time("Nov 25 17:20:05 x", None), Err(TimeErr::NoYear));
        for bad in ["", "x", "Nov 25 27:20:05 y", "31-Feb-2026 10:00:00 y", "[12a] y"] {
            assert!(split_time(bad, r).is_err(), "{bad}");
        }
    }

    #[test]
    fn unbound_query_and_reply_pair() {
        let text = "Nov 25 17:20:05 unbound[1:0] query: 127.0.0.27 Detik.com. A IN\n\
                    Nov 25 17:20:05 unbound[1:0] info: start of service (unbound 1.17.1).\n\
                    Nov 25 17:20:05 unbound[1:0] reply: 127.0.0.27 detik.com. A IN NOERROR 0.000000 1 54\n\
                    Nov 25 17:20:06 unbound[1:0] info: 10.0.0.5 x.example. AAAA IN\n\
                    Nov 25 17:20:06 unbound[1:0] info: 10.0.0.5 x.example. AAAA IN NXDOMAIN 0.1 0 40\n\
                    Nov 25 17:20:07 unbound[1:0] query: 10.0.0.300 x.example. AAAA IN\n\
                    Nov 25 17:20:07 unbound[1:0] query: 10.0.0.3 x.example.\n\
                    garbage\n";
        let (recs, rejects, stats) = run(text, DnsFormat::UnboundLog);
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].qname.as_str(), recs[0].rcode.as_deref()), ("detik.com", Some("NOERROR")));
        assert_eq!((&*recs[1].qtype, recs[1].rcode.as_deref()), ("AAAA", Some("NXDOMAIN")));
        assert_eq!(rejects.iter().map(|r| r.line).collect::<Vec<_>>(), vec![6, 7, 8]);
        assert!(rejects.iter().all(|r| !r.reason.is_empty()));
        assert_eq!((stats.paired, stats.lines_skipped, stats.lines), (2, 1, 8));
    }

    #[test]
    fn bind_query_lines() {
        let text = "25-Nov-2026 17:20:05.123 queries: info: client @0x7f3a2c0 10.0.0.5#53422 (Example.com): query: Example.com IN A +E(0)K (10.0.0.1)\n\
                    25-Nov-2026 17:20:06.000 client 2001:db8::7#5353: view internal: query: x.test IN TXT + (::1)\n\
                    2026-11-25T17:20:07.000Z client @0x1 10.0.0.5 (a): query: a IN A +\n\
                    25-Nov-2026 17:20:08.000 general: info: zone loaded\n";
        let (recs, rejects, stats) = run(text, DnsFormat::BindQueryLog);
        assert_eq!(recs.len(), 3, "{rejects:?}");
        assert_eq!((recs[2].qname.as_str(), recs[2].client_port), ("a", None));
        assert_eq!(recs[0].client_port, Some(53422));
        assert_eq!(recs[0].qname, "example.com");
        assert_eq!(recs[1].client, "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(recs[1].qtype, "TXT");
        assert_eq!(rejects.len(), 0);
        assert_eq!(stats.lines_skipped, 1);
        assert_eq!(detect_text(text.as_bytes(), "x"), Some(DnsFormat::BindQueryLog));
        // BIND without port is still a client: the record keeps no port.
        let (r, _, _) =
            run("2026-11-25T17:20:07Z client 10.0.0.5 (a): query: a IN A +\n", DnsFormat::BindQueryLog);
        assert_eq!(r[0].client_port, None);
    }

    #[test]
    fn yearless_without_reference_rejects_only_query_lines() {
        let text = "Nov 25 17:20:05 unbound[1:0] query: 127.0.0.27 detik.com. A IN\n\
                    Nov 25 17:20:05 unbound[1:0] info: start of service\n";
        let mut out = Collected::default();
        let mut stats = Stats::default();
        read_log(text.as_bytes(), DnsFormat::UnboundLog, &ReadOptions::default(), &mut out, &mut stats);
        assert_eq!((out.rejects.len(), stats.lines_skipped), (1, 1));
        assert!(out.rejects[0].reason.contains("no year"));
    }
}

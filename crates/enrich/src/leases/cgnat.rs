//! CGNAT port-block allocation logs: which inside (subscriber) address had which block of
//! ports on which public address, when.
//!
//! * Juniper Junos "secured port block allocation" syslog (Junos Address Aware / CGNAT on
//!   MS-MPC, see Juniper's "Secured Port Block Allocation" and "Interim Logging" topics):
//!   `JSERVICES_NAT_PORT_BLOCK_ALLOC: <inside> -> <public>:<first>-<last> 0x<alloc time>`,
//!   `…_RELEASE` when the block is freed and `…_ACTIVE` as interim re-logs of live blocks.
//!   The hex number is the block's allocation time in Unix seconds; it also supplies the year
//!   a BSD-style syslog date lacks.
//! * A plain CSV for everything else (a SIEM export or a vendor log reformatted):
//!   `time,event,inside_ip,public_ip,port_start,port_end,subscriber` with `event` `alloc` or
//!   `release`; columns found by header name, `subscriber` optional.
//!
//! Allocations pair with releases by (public address, port range). An allocation for a
//! block still open to another inside address ends the old one (the release was lost); a
//! release without allocation is rejected for the CSV (its start is unknown) and starts at
//! the allocation time for Juniper. Blocks never released stay open. Without a subscriber
//! column the holder is the inside address, to be resolved through the DHCP/RADIUS records.

use super::{Parsed, civil, hms, host, lines, month, num};
use botwatch_model::{LeaseRecord, Timestamp, parse_timestamp};
use std::collections::HashMap;
use std::net::IpAddr;

struct Block {
    inside: IpAddr,
    start: i64,
    line: u64,
    subscriber: Option<String>,
}

#[derive(Default)]
struct Pairing {
    open: HashMap<(IpAddr, u16, u16), Block, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
}

impl Pairing {
    fn alloc(&mut self, key: (IpAddr, u16, u16), b: Block, out: &mut Parsed) {
        if let Some(prev) = self.open.get(&key) {
            if prev.inside == b.inside {
                return; // an interim re-log of the open block
            }
            if let Some(prev) = self.open.remove(&key) {
                let at = b.start.max(prev.start);
                emit(key, prev, Some(at), out);
            }
        }
        self.open.insert(key, b);
    }

    fn release(
        &mut self,
        key: (IpAddr, u16, u16),
        inside: IpAddr,
        at: i64,
    ) -> Result<Option<Block>, &'static str> {
        match self.open.get(&key) {
            Some(b) if b.inside != inside => Err("release names another inside address than the allocation"),
            Some(_) => Ok(self.open.remove(&key)),
            None => Ok(None),
        }
        .map(|b| b.map(|b| Block { start: b.start.min(at), ..b }))
    }

    fn finish(self, out: &mut Parsed) {
        let mut rest: Vec<_> = self.open.into_iter().collect();
        rest.sort_by_key(|(_, b)| b.line);
        for (k, b) in rest {
            emit(k, b, None, out);
        }
    }
}

fn emit(key: (IpAddr, u16, u16), b: Block, end: Option<i64>, out: &mut Parsed) {
    let inside = b.inside.to_string();
    out.records.push(LeaseRecord {
        ip: host(key.0),
        ports: Some((key.1, key.2)),
        start: Timestamp::from_secs(b.start),
        end: end.map(Timestamp::from_secs),
        subscriber: b.subscriber.unwrap_or_else(|| inside.clone()),
        identifiers: vec![("inside-ip".into(), inside)],
        source: out.source.clone(),
        line: b.line,
    });
}

/// `<public>:<first>-<last>`.
fn public_block(s: &str) -> Option<(IpAddr, u16, u16)> {
    let (ip, ports) = s.rsplit_once(':')?;
    let ip = ip.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(ip);
    let (a, b) = ports.split_once('-')?;
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((ip.parse().ok()?, a, b))
}

/// The syslog header's time: RFC 5424 (`<pri>1 2026-…`), an RFC 3339 first word, or BSD
/// `Mmm dd hh:mm:ss` with the year taken from `hint` (the allocation time).
fn syslog_time(line: &str, hint: Option<i64>) -> Option<i64> {
    let mut words = line.split_ascii_whitespace();
    let mut first = words.next()?;
    if first.starts_with('<') {
        first = words.next()?;
    }
    if first.len() >= 19 && first.as_bytes()[4] == b'-' {
        return parse_timestamp(first).map(|t| t.secs());
    }
    let (mon, day, t) =
        (month(first.as_bytes())?, num(words.next()?.as_bytes())?, hms(words.next()?.as_bytes())?);
    let hint = hint?;
    let y = Timestamp::from_secs(hint).to_datetime().format("%Y").to_string().parse::<i64>().ok()?;
    // The log line is written at or after the allocation: the first candidate year not
    // before the hint (a block allocated on 31 December released on 2 January).
    [y, y + 1]
        .into_iter()
        .filter_map(|y| civil(y, mon, day, t.0, t.1, t.2))
        .find(|&s| s >= hint.saturating_sub(86_400))
}

pub(crate) fn parse_juniper(data: &[u8], out: &mut Parsed) {
    let mut p = Pairing::default();
    for (n, raw) in lines(data) {
        if raw.trim_ascii().is_empty() {
            continue;
        }
        let Ok(l) = std::str::from_utf8(raw) else {
            out.reject(n, raw, "line is not UTF-8");
            continue;
        };
        // The last occurrence: RFC 5424 lines also carry the tag as MSGID before the text.
        let Some(pos) = l.rfind("JSERVICES_NAT_PORT_BLOCK_") else {
            // Other jservices messages share these logs; they say nothing about blocks.
            continue;
        };
        let msg = &l[pos + "JSERVICES_NAT_PORT_BLOCK_".len()..];
        let Some((kind, rest)) = msg.split_once(':') else {
            out.reject(n, raw, "port-block message without ':'");
            continue;
        };
        let w: Vec<&str> = rest.split_ascii_whitespace().collect();
        let (inside, block, hex) = match w.as_slice() {
            [inside, "->", block, rest @ ..] => (*inside, *block, rest.first().copied()),
            _ => {
                out.reject(n, raw, "expected '<inside> -> <public>:<first>-<last>'");
                continue;
            }
        };
        let Ok(inside) = inside.parse::<IpAddr>() else {
            out.reject(n, raw, "bad inside address");
            continue;
        };
        let Some(key) = public_block(block) else {
            out.reject(n, raw, "bad public address or port range");
            continue;
        };
        let alloc_time = hex.and_then(|h| i64::from_str_radix(h.strip_prefix("0x")?, 16).ok());
        let Some(t) = syslog_time(&l[..pos], alloc_time) else {
            out.reject(n, raw, "no usable time (a BSD syslog date needs the allocation time for its year)");
            continue;
        };
        match kind {
            "ALLOC" | "ACTIVE" | "INTERIM" => {
                // The hex allocation time, also on interim re-logs of a block whose ALLOC was lost.
                let start = alloc_time.unwrap_or(t);
                p.alloc(key, Block { inside, start, line: n, subscriber: None }, out);
            }
            "RELEASE" => match p.release(key, inside, t) {
                Ok(Some(b)) => emit(key, b, Some(t), out),
                Ok(None) => match alloc_time {
                    Some(a) => {
                        emit(key, Block { inside, start: a.min(t), line: n, subscriber: None }, Some(t), out)
                    }
                    None => out.reject(n, raw, "release without allocation or allocation time"),
                },
                Err(e) => out.reject(n, raw, e),
            },
            other => out.reject(n, raw, format!("unknown port-block message {other}")),
        }
    }
    p.finish(out);
}

pub(crate) fn parse_csv(data: &[u8], out: &mut Parsed) {
    let mut it = lines(data);
    let Some((hn, header)) = it.next() else { return };
    let cols: Vec<String> =
        String::from_utf8_lossy(header).split(',').map(|c| c.trim().trim_matches('"').to_string()).collect();
    let col = |n: &str| cols.iter().position(|c| c == n);
    let (Some(ct), Some(ce), Some(ci), Some(cp), Some(c0), Some(c1)) =
        (col("time"), col("event"), col("inside_ip"), col("public_ip"), col("port_start"), col("port_end"))
    else {
        out.reject(hn, header, "header lacks time, event, inside_ip, public_ip, port_start or port_end");
        return;
    };
    let cs = col("subscriber");
    let mut p = Pairing::default();
    for (n, raw) in it {
        if raw.trim_ascii().is_empty() {
            continue;
        }
        let s = String::from_utf8_lossy(raw);
        let f: Vec<&str> = s.split(',').map(|x| x.trim().trim_matches('"')).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let row = (|| {
            let t = parse_timestamp(get(ct)).ok_or("bad time")?.secs();
            let inside: IpAddr = get(ci).parse().map_err(|_| "bad inside_ip")?;
            let public: IpAddr = get(cp).parse().map_err(|_| "bad public_ip")?;
            let (a, b): (u16, u16) = (
                get(c0).parse().map_err(|_| "bad port_start")?,
                get(c1).parse().map_err(|_| "bad port_end")?,
            );
            if a > b {
                return Err("port_start after port_end");
            }
            Ok((t, inside, (public, a, b)))
        })();
        let (t, inside, key) = match row {
            Ok(x) => x,
            Err(e) => {
                out.reject(n, raw, e);
                continue;
            }
        };
        let subscriber = cs.map(get).filter(|s| !s.is_empty()).map(str::to_string);
        match get(ce).to_ascii_lowercase().as_str() {
            "alloc" | "allocate" | "allocation" => {
                p.alloc(key, Block { inside, start: t, line: n, subscriber }, out)
            }
            "release" => match p.release(key, inside, t) {
                Ok(Some(b)) => emit(key, b, Some(t), out),
                Ok(None) => out.reject(n, raw, "release without allocation"),
                Err(e) => out.reject(n, raw, e),
            },
            _ => out.reject(n, raw, "event is neither alloc nor release"),
        }
    }
    p.finish(out);
}

#[cfg(test)]
mod tests {
    use super::super::{Format, parse_as};

    #[test]
    fn juniper_alloc_release_pairs_and_bsd_dates_take_the_year_from_the_allocation() {
        // 0x6a0d1b20 = 2026-05-20T02:23:28Z
        let data = b"May 20 02:23:28 mx1 (FPC Slot 1, PIC Slot 0) {cgn}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 198.51.100.7:2048-2175 0x6a0d1b20\n\
May 20 04:00:00 mx1 (FPC Slot 1, PIC Slot 0) {cgn}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_RELEASE: 100.64.1.2 -> 198.51.100.7:2048-2175 0x6a0d1b20\n\
May 20 04:00:01 mx1 {cgn}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> bogus 0x6a0d1b20\n";
        let (r, j) = parse_as(Format::JuniperPba, data, "x");
        assert_eq!(r.len(), 1, "{j:?}");
        assert_eq!(r[0].start.secs(), 0x6a0d1b20);
        assert_eq!(r[0].end.unwrap().to_rfc3339(), "2026-05-20T04:00:00+00:00");
        assert_eq!(r[0].ports, Some((2048, 2175)));
        assert_eq!(r[0].subscriber, "100.64.1.2");
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].line, 3);
    }
}

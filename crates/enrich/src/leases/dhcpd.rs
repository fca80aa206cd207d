//! ISC dhcpd `dhcpd.leases` (format: the dhcpd.leases(5) manual page, ISC DHCP 4.x).
//!
//! The file is a log of declarations: dhcpd appends a `lease A.B.C.D { … }` block each time a
//! lease changes, and "if more than one declaration appears for a given lease, the last one
//! in the file is the current one". So declarations are applied in order per address: a
//! later one for the same client continues (or shortens) the earlier interval, a later one
//! for a different client ends the earlier interval where the new one starts.
//!
//! Times are `W YYYY/MM/DD HH:MM:SS` in UTC, or `epoch N` (with `db-time-format local`);
//! `ends never;` leaves the interval open. The holder is named by the relay agent's
//! `agent.remote-id` (the line id ISPs key on), else `agent.circuit-id`, else the MAC, else
//! the client `uid`. `server-duid`, `authoring-byte-order`, `failover peer`, `host`,
//! `class`/`subclass` and DHCPv6 `ia-*` blocks are skipped.

use super::{Parsed, civil, hms, host, num};
use botwatch_model::{LeaseRecord, Timestamp};
use std::collections::HashMap;
use std::net::IpAddr;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Word(&'a [u8]),
    Str(&'a [u8]),
    Open,
    Close,
    Semi,
}

struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> Lexer<'a> {
    /// The next token with its line, or `None` at the end.
    fn next(&mut self) -> Option<(Tok<'a>, u64, usize)> {
        let d = self.data;
        loop {
            while self.pos < d.len() && d[self.pos].is_ascii_whitespace() {
                if d[self.pos] == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            if self.pos < d.len() && d[self.pos] == b'#' {
                while self.pos < d.len() && d[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        if self.pos >= d.len() {
            return None;
        }
        let start = self.pos;
        let line = self.line;
        let tok = match d[start] {
            b'{' => {
                self.pos += 1;
                Tok::Open
            }
            b'}' => {
                self.pos += 1;
                Tok::Close
            }
            b';' => {
                self.pos += 1;
                Tok::Semi
            }
            b'"' => {
                let mut i = start + 1;
                while i < d.len() && d[i] != b'"' {
                    if d[i] == b'\\' {
                        i += 1;
                    } else if d[i] == b'\n' {
                        self.line += 1;
                    }
                    i += 1;
                }
                self.pos = (i + 1).min(d.len());
                Tok::Str(&d[start + 1..i.min(d.len())])
            }
            _ => {
                let mut i = start;
                while i < d.len()
                    && !d[i].is_ascii_whitespace()
                    && !matches!(d[i], b'{' | b'}' | b';' | b'"' | b'#')
                {
                    i += 1;
                }
                self.pos = i;
                Tok::Word(&d[start..i])
            }
        };
        Some((tok, line, start))
    }
}

/// What one `lease` block said.
#[derive(Default)]
struct Decl<'a> {
    starts: Option<i64>,
    ends: Option<Option<i64>>,
    state: Option<&'a [u8]>,
    ids: Vec<(String, String)>,
}

fn text(t: Tok<'_>) -> String {
    match t {
        Tok::Word(w) | Tok::Str(w) => String::from_utf8_lossy(w).into_owned(),
        _ => String::new(),
    }
}

/// `W YYYY/MM/DD HH:MM:SS`, `epoch N` or `never`, from a statement's arguments.
fn time(args: &[Tok<'_>]) -> Result<Option<i64>, &'static str> {
    match args {
        [Tok::Word(b"never")] => Ok(None),
        [Tok::Word(b"epoch"), Tok::Word(n)] => {
            let s =
                std::str::from_utf8(n).ok().and_then(|s| s.parse::<i64>().ok()).ok_or("bad epoch time")?;
            Ok(Some(s))
        }
        [Tok::Word(_dow), Tok::Word(date), Tok::Word(t)] => {
            let mut p = date.split(|&c| c == b'/');
            let (y, m, d) = (p.next().and_then(num), p.next().and_then(num), p.next().and_then(num));
            let (Some(y), Some(m), Some(d), None) = (y, m, d, p.next()) else { return Err("bad date") };
            let (h, mi, s) = hms(t).ok_or("bad time of day")?;
            civil(y as i64, m, d, h, mi, s).map(Some).ok_or("bad date")
        }
        _ => Err("bad time"),
    }
}

/// Reads statements up to the block's closing brace. Returns `Err` with a reason for a
/// malformed block (the caller rejects it whole).
/// Errors carry whether the block's closing brace was already consumed.
fn lease_block<'a>(lx: &mut Lexer<'a>) -> Result<Decl<'a>, (String, bool)> {
    let mut d = Decl::default();
    let mut args: Vec<Tok<'_>> = Vec::new();
    loop {
        args.clear();
        // One statement: tokens up to `;` (nested `{…}` of e.g. `on commit` skipped).
        let mut depth = 0u32;
        loop {
            let Some((t, _, _)) = lx.next() else { return Err(("unterminated lease block".into(), true)) };
            match t {
                Tok::Close if depth == 0 && args.is_empty() => return Ok(d),
                Tok::Close if depth == 0 => return Err(("missing ';' before '}'".into(), true)),
                Tok::Close => depth -= 1,
                Tok::Open => depth += 1,
                Tok::Semi if depth == 0 => break,
                _ if depth > 0 => {}
                t => args.push(t),
            }
        }
        match args.as_slice() {
            [Tok::Word(b"starts"), rest @ ..] => {
                let t = time(rest).map_err(|e| (format!("starts: {e}"), false))?;
                d.starts = Some(t.ok_or(("starts never".to_string(), false))?);
            }
            [Tok::Word(b"ends"), rest @ ..] => {
                d.ends = Some(time(rest).map_err(|e| (format!("ends: {e}"), false))?)
            }
            [Tok::Word(b"binding"), Tok::Word(b"state"), Tok::Word(s)] => d.state = Some(s),
            [Tok::Word(b"hardware"), Tok::Word(_), v] => {
                let mut mac = text(*v);
                if mac.is_ascii() {
                    mac.make_ascii_lowercase();
                } else {
                    mac = mac.to_lowercase();
                }
                d.ids.push(("mac".into(), mac))
            }
            [Tok::Word(b"uid"), v] => d.ids.push(("uid".into(), text(*v))),
            [Tok::Word(b"client-hostname"), v] => d.ids.push(("hostname".into(), text(*v))),
            [Tok::Word(b"option"), Tok::Word(b"agent.remote-id"), v] => {
                d.ids.push(("remote-id".into(), text(*v)))
            }
            [Tok::Word(b"option"), Tok::Word(b"agent.circuit-id"), v] => {
                d.ids.push(("circuit-id".into(), text(*v)))
            }
            // cltt, tstp, tsfp, atsfp, next binding state, set …, option …: not needed.
            _ => {}
        }
    }
}

/// Skips a top-level statement or block whose first token was already read.
fn skip(lx: &mut Lexer<'_>) -> bool {
    skip_from(lx, 0)
}

/// Skips to the end of the statement or of the block `depth` braces deep.
fn skip_from(lx: &mut Lexer<'_>, mut depth: u32) -> bool {
    while let Some((t, _, _)) = lx.next() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close if depth <= 1 => return depth == 1,
            Tok::Close => depth -= 1,
            Tok::Semi if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn primary(ids: &[(String, String)]) -> Option<String> {
    ["remote-id", "circuit-id", "mac", "uid"]
        .iter()
        .find_map(|k| ids.iter().find(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone()))
}

pub(crate) fn parse(data: &[u8], out: &mut Parsed) {
    let mut lx = Lexer { data, pos: 0, line: 1 };
    // Per address, the index in `recs` of its latest record (None once superseded away).
    let mut last: HashMap<IpAddr, usize, Xxh3DefaultBuilder> = HashMap::default();
    let mut recs: Vec<Option<LeaseRecord>> = Vec::new();
    while let Some((t, line, start)) = lx.next() {
        let raw_to = |lx: &Lexer<'_>| &data[start..lx.pos.min(data.len())];
        let Tok::Word(w) = t else {
            out.reject(line, &data[start..(start + 1).min(data.len())], "stray token at top level");
            continue;
        };
        match w {
            b"lease" => {}
            b"server-duid"
            | b"authoring-byte-order"
            | b"failover"
            | b"host"
            | b"class"
            | b"subclass"
            | b"ia-na"
            | b"ia-ta"
            | b"ia-pd"
            | b"group"
            | b"db-time-format" => {
                if !skip(&mut lx) {
                    out.reject(line, raw_to(&lx), "unterminated statement");
                }
                continue;
            }
            _ => {
                let ok = skip(&mut lx);
                let reason = if ok { "unknown statement" } else { "unterminated statement" };
                out.reject(line, raw_to(&lx), reason);
                continue;
            }
        }
        let (addr, open) = (lx.next(), lx.next());
        let ip = match (addr, open) {
            (Some((Tok::Word(a), _, _)), Some((Tok::Open, _, _))) => {
                match std::str::from_utf8(a).ok().and_then(|s| s.parse::<IpAddr>().ok()) {
                    Some(ip) => Ok(ip),
                    None => Err("lease address is not an IP address".to_string()),
                }
            }
            _ => Err("expected 'lease <address> {'".to_string()),
        };
        let decl = match ip {
            Ok(ip) => lease_block(&mut lx).map(|d| (ip, d)).map_err(|(e, closed)| {
                if !closed {
                    skip_from(&mut lx, 1);
                }
                e
            }),
            Err(e) => {
                // Resynchronise after the block (or statement) the bad header opened.
                match (addr, open) {
                    (_, Some((Tok::Open, _, _))) | (Some((Tok::Open, _, _)), _) => skip_from(&mut lx, 1),
                    (_, Some((Tok::Semi, _, _))) | (Some((Tok::Semi, _, _)), _) => true,
                    _ => skip(&mut lx),
                };
                Err(e)
            }
        };
        let (ip, d) = match decl {
            Ok(x) => x,
            Err(e) => {
                out.reject(line, raw_to(&lx), e);
                continue;
            }
        };
        let Some(starts) = d.starts else {
            out.reject(line, raw_to(&lx), "lease without 'starts'");
            continue;
        };
        let state = d.state.unwrap_or(b"active");
        // abandoned/backup/reset leases have no holder; free/expired/released ones still name
        // the client that held it until `ends`.
        if !matches!(state, b"active" | b"bootp" | b"free" | b"expired" | b"released") {
            continue;
        }
        let Some(subscriber) = primary(&d.ids) else {
            if state == b"active" || state == b"bootp" {
                out.reject(line, raw_to(&lx), "active lease without any client identifier");
            }
            continue;
        };
        let end = d.ends.unwrap_or(None);
        let rec = LeaseRecord {
            ip: host(ip),
            ports: None,
            start: Timestamp::from_secs(starts),
            end: end.map(Timestamp::from_secs),
            subscriber,
            identifiers: d.ids,
            source: out.source.clone(),
            line,
        };
        if let Some(&i) = last.get(&ip)
            && let Some(prev) = recs[i].as_mut()
        {
            let overlaps = prev.end.is_none_or(|e| rec.start <= e);
            if overlaps && prev.subscriber == rec.subscriber {
                // The same client's lease, renewed or ended early: the later declaration's end
                // is current.
                prev.end = rec.end;
                prev.start = prev.start.min(rec.start);
                for id in rec.identifiers {
                    if !prev.identifiers.contains(&id) {
                        prev.identifiers.push(id);
                    }
                }
                continue;
            }
            if overlaps {
                if prev.start >= rec.start {
                    recs[i] = None;
                } else {
                    prev.end = Some(rec.start);
                }
            }
        }
        last.insert(ip, recs.len());
        recs.push(Some(rec));
    }
    out.records.extend(recs.into_iter().flatten());
}

#[cfg(test)]
mod tests {
    use super::super::{Format, parse_as};
    use botwatch_model::Timestamp;

    fn t(s: &str) -> Timestamp {
        botwatch_model::parse_timestamp(s).unwrap()
    }

    #[test]
    fn renewal_supersedes_and_new_client_ends_the_old_interval() {
        let data = b"lease 10.0.0.5 {\n  starts 2 2026/11/24 10:00:00;\n  ends 2 2026/11/24 12:00:00;\n  hardware ethernet 00:11:22:33:44:55;\n}\n\
lease 10.0.0.5 {\n  starts 2 2026/11/24 11:00:00;\n  ends 2 2026/11/24 13:00:00;\n  hardware ethernet 00:11:22:33:44:55;\n}\n\
lease 10.0.0.5 {\n  starts epoch 1795522200; # 2026/11/24 12:10:00\n  ends never;\n  hardware ethernet 66:77:88:99:aa:bb;\n}\n";
        let (r, j) = parse_as(Format::Dhcpd, data, "x");
        assert!(j.is_empty(), "{j:?}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].start, t("2026-11-24 10:00:00"));
        assert_eq!(r[0].end, Some(t("2026-11-24 12:10:00")), "cut where the next client starts");
        assert_eq!(r[1].subscriber, "66:77:88:99:aa:bb");
        assert_eq!(r[1].end, None);
    }

    #[test]
    fn truncated_and_garbage_inputs_reject_without_panic() {
        let data =
            b"lease 10.0.0.1 {\n starts 2 2026/11/24 10:00:00;\n hardware ethernet 00:11:22:33:44:55;\n";
        let (r, j) = parse_as(Format::Dhcpd, data, "x");
        assert!(r.is_empty());
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].line, 1);
        for junk in
            [&b"}}}{{{;;;"[..], b"lease", b"lease {", b"\"unterminated", b"\xff\xfe lease 1.2.3.4 { starts"]
        {
            let (_, j) = parse_as(Format::Dhcpd, junk, "x");
            assert!(j.iter().all(|r| r.line > 0 && !r.reason.is_empty()));
        }
    }
}

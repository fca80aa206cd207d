//! Flow logs: Argus `binetflow` CSV/TSV, Zeek `conn.log` (TSV, or JSON lines as
//! `LogAscii::use_json=T` writes them) and `nfdump -o csv`.
//!
//! Header-driven: columns are found by name, so reordered or extra columns (labels, Argus
//! `srcUdata`, Zeek's `label`) do not matter. Argus and nfdump write local/UTC wall-clock
//! times without a zone; they are read as UTC. Records that are valid but not IP flows
//! (Argus `arp`, `llc`, `man` records) are skipped and counted, not rejected.

use super::FlowError;
use crate::lines::{Line, LineSource, MAX_LINE, SliceLines};
use crate::record::FlowRecord;
use botwatch_model::{Reject, Timestamp, parse_timestamp};
use bytes::Bytes;
use serde::Serialize;
use std::net::IpAddr;

/// Which flow-log dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// Argus `ra -c ,` output (`binetflow`), comma or tab separated.
    Argus,
    /// Zeek `conn.log`: TSV with `#fields`, or one JSON object per line.
    Zeek,
    /// `nfdump -o csv`: how nfcapd files are read (`nfdump -r FILE -o csv > flows.csv`).
    Nfdump,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Data lines seen (not header, comments or blank lines).
    pub lines: u64,
    pub records: u64,
    pub rejected: u64,
    /// Valid lines that describe no IP flow (Argus ARP/LLC/management records).
    pub skipped_non_ip: u64,
}

#[derive(Clone, Copy)]
enum Role {
    Start,
    End,
    Dur,
    Src,
    Dst,
    Sport,
    Dport,
    Proto,
    Packets,
    Bytes,
    PacketsOut,
    BytesOut,
    /// Argus `SrcBytes`: of `TotBytes`, those the originator sent.
    SrcBytes,
    /// Argus `DstBytes`: those the responder sent.
    DstBytes,
    /// Argus `State`, Zeek `conn_state`: whether the responder answered.
    State,
    /// Zeek `local_orig`, `local_resp`.
    LocalOrig,
    LocalResp,
    /// A labelled capture's per-flow label (Stratosphere's Argus `Label`, Zeek `label`),
    /// read only for an evaluation.
    Label,
}

fn role(kind: LogKind, col: &str) -> Option<Role> {
    use Role::*;
    Some(match (kind, col.trim()) {
        (LogKind::Argus, "StartTime") => Start,
        (LogKind::Argus, "LastTime") => End,
        (LogKind::Argus, "Dur") => Dur,
        (LogKind::Argus, "SrcAddr") => Src,
        (LogKind::Argus, "DstAddr") => Dst,
        (LogKind::Argus, "Sport") => Sport,
        (LogKind::Argus, "Dport") => Dport,
        (LogKind::Argus, "Proto") => Proto,
        (LogKind::Argus, "TotPkts") => Packets,
        (LogKind::Argus, "TotBytes") => Bytes,
        (LogKind::Argus, "SrcBytes") => SrcBytes,
        (LogKind::Argus, "DstBytes") => DstBytes,
        (LogKind::Argus, "State") => State,
        (LogKind::Argus, "Label") => Label,
        (LogKind::Zeek, "ts") => Start,
        (LogKind::Zeek, "duration") => Dur,
        (LogKind::Zeek, "id.orig_h") => Src,
        (LogKind::Zeek, "id.resp_h") => Dst,
        (LogKind::Zeek, "id.orig_p") => Sport,
        (LogKind::Zeek, "id.resp_p") => Dport,
        (LogKind::Zeek, "proto") => Proto,
        (LogKind::Zeek, "orig_pkts") => Packets,
        (LogKind::Zeek, "orig_ip_bytes") => Bytes,
        (LogKind::Zeek, "resp_pkts") => PacketsOut,
        (LogKind::Zeek, "resp_ip_bytes") => BytesOut,
        (LogKind::Zeek, "conn_state") => State,
        (LogKind::Zeek, "local_orig") => LocalOrig,
        (LogKind::Zeek, "local_resp") => LocalResp,
        (LogKind::Zeek, "label") => Label,
        (LogKind::Nfdump, "ts") => Start,
        (LogKind::Nfdump, "te") => End,
        (LogKind::Nfdump, "td") => Dur,
        (LogKind::Nfdump, "sa") => Src,
        (LogKind::Nfdump, "da") => Dst,
        (LogKind::Nfdump, "sp") => Sport,
        (LogKind::Nfdump, "dp") => Dport,
        (LogKind::Nfdump, "pr") => Proto,
        (LogKind::Nfdump, "ipkt") => Packets,
        (LogKind::Nfdump, "ibyt") => Bytes,
        (LogKind::Nfdump, "opkt") => PacketsOut,
        (LogKind::Nfdump, "obyt") => BytesOut,
        _ => return None,
    })
}

const ROLES: usize = 18;
const REQUIRED: [(Role, &str); 4] = [
    (Role::Start, "start time"),
    (Role::Src, "source address"),
    (Role::Dst, "destination address"),
    (Role::Proto, "protocol"),
];

/// Reads a whole flow log. Fails only when the header is missing or lacks the columns a flow
/// needs; every bad data line becomes a reject with its 1-based line number.
pub fn read_log(
    data: &[u8],
    kind: LogKind,
    out: &mut Vec<FlowRecord>,
    rejects: &mut Vec<Reject>,
) -> Result<LogStats, FlowError> {
    read_log_labelled(data, kind, out, None, rejects)
}

/// [`read_log`], also giving each record's per-flow label (`None` where the log has no
/// label column or the line none), one per record pushed to `out`.
pub fn read_log_labelled(
    data: &[u8],
    kind: LogKind,
    out: &mut Vec<FlowRecord>,
    labels: Option<&mut Vec<Option<String>>>,
    rejects: &mut Vec<Reject>,
) -> Result<LogStats, FlowError> {
    read_lines(&mut SliceLines::new(data), kind, &mut Collect { out, labels, rejects })
}

/// Where a flow-log reader puts what it reads, line by line.
pub trait LogSink {
    /// A flow and, in a labelled capture, its line's label.
    fn record(&mut self, r: FlowRecord, label: Option<String>);
    fn reject(&mut self, r: Reject);
}

struct Collect<'a> {
    out: &'a mut Vec<FlowRecord>,
    labels: Option<&'a mut Vec<Option<String>>>,
    rejects: &'a mut Vec<Reject>,
}

impl LogSink for Collect<'_> {
    fn record(&mut self, r: FlowRecord, label: Option<String>) {
        self.out.push(r);
        if let Some(l) = self.labels.as_deref_mut() {
            l.push(label);
        }
    }
    fn reject(&mut self, r: Reject) {
        self.rejects.push(r);
    }
}

/// A flow log from any line source (a buffer, or a file streamed through one line's
/// buffer) into `sink`. Fails only when the header is missing or lacks the columns a flow
/// needs; every bad data line is a reject with its 1-based line number.
pub fn read_lines(
    lines: &mut dyn LineSource,
    kind: LogKind,
    sink: &mut dyn LogSink,
) -> Result<LogStats, FlowError> {
    let mut st = LogStats::default();
    let mut cols: Option<[Option<usize>; ROLES]> = None;
    let mut sep =
        if kind == LogKind::Argus { None } else { Some(if kind == LogKind::Zeek { b'\t' } else { b',' }) };
    let mut unset: Vec<u8> = b"-".to_vec();
    // A Zeek log whose first line is an object is JSON lines throughout.
    let mut json: Option<bool> = (kind != LogKind::Zeek).then_some(false);
    while let Some(Line { number: lineno, bytes: line, cut }) = lines.next_line() {
        if line.iter().all(|c| c.is_ascii_whitespace()) && !cut {
            continue;
        }
        if cut {
            take(Err(format!("line longer than {} MiB", MAX_LINE >> 20)), lineno, line, &mut st, sink);
            continue;
        }
        if *json.get_or_insert_with(|| line.trim_ascii_start().starts_with(b"{")) {
            let parsed = json_values(line).and_then(|owned| {
                let vals: [Option<&str>; ROLES] = std::array::from_fn(|r| owned[r].as_deref());
                build(LogKind::Zeek, &vals, b"-")
            });
            take(parsed, lineno, line, &mut st, sink);
            continue;
        }
        if kind == LogKind::Zeek && line.starts_with(b"#") {
            if let Some(rest) = line.strip_prefix(b"#separator ") {
                sep = Some(zeek_separator(rest).unwrap_or(b'\t'));
            } else if let Some(rest) = line.strip_prefix(b"#unset_field")
                && rest.len() > 1
            {
                unset = rest[1..].to_vec();
            } else if let Some(rest) = line.strip_prefix(b"#fields")
                && rest.len() > 1
            {
                cols = Some(header(kind, &rest[1..], sep.unwrap_or(b'\t'))?);
            }
            continue;
        }
        // nfdump appends a summary block after the flows.
        if kind == LogKind::Nfdump && line == b"Summary" {
            break;
        }
        let Some(c) = cols else {
            if kind == LogKind::Zeek {
                return Err(FlowError::NoHeader);
            }
            let s = *sep.get_or_insert(if line.contains(&b'\t') { b'\t' } else { b',' });
            cols = Some(header(kind, line, s)?);
            continue;
        };
        let parsed = parse_line(kind, &c, line, sep.unwrap_or(b','), &unset);
        take(parsed, lineno, line, &mut st, sink);
    }
    if cols.is_none() && json != Some(true) {
        return Err(FlowError::NoHeader);
    }
    Ok(st)
}

fn zeek_separator(s: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(s).ok()?.trim();
    match s.strip_prefix("\\x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => s.bytes().next(),
    }
}

fn header(kind: LogKind, line: &[u8], sep: u8) -> Result<[Option<usize>; ROLES], FlowError> {
    let mut cols = [None; ROLES];
    for (i, name) in line.split(|&c| c == sep).enumerate() {
        if let Some(r) = std::str::from_utf8(name).ok().and_then(|n| role(kind, n))
            && cols[r as usize].is_none()
        {
            cols[r as usize] = Some(i);
        }
    }
    let missing: Vec<&'static str> =
        REQUIRED.iter().filter(|(r, _)| cols[*r as usize].is_none()).map(|(_, n)| *n).collect();
    if missing.is_empty() { Ok(cols) } else { Err(FlowError::MissingColumns { kind, missing }) }
}

fn parse_line(kind: LogKind, cols: &[Option<usize>; ROLES], line: &[u8], sep: u8, unset: &[u8]) -> Parsed {
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_string())?;
    // Only the columns a flow needs, in one pass that stops after the last of them: an
    // nfdump CSV line has 48 fields and a Vec of them per line was the reader's main cost.
    let last = cols.iter().flatten().copied().max().unwrap_or(0);
    let mut vals: [Option<&str>; ROLES] = [None; ROLES];
    for (i, f) in line.split(sep as char).take(last + 1).enumerate() {
        for (r, c) in cols.iter().enumerate() {
            if *c == Some(i) {
                vals[r] = Some(f);
            }
        }
    }
    build(kind, &vals, unset)
}

type Parsed = Result<Option<(FlowRecord, Option<String>)>, String>;

/// One data line's outcome into the sink and the counts. A rejected line keeps at most
/// 64 KiB of itself.
fn take(parsed: Parsed, lineno: u64, line: &[u8], st: &mut LogStats, sink: &mut dyn LogSink) {
    st.lines += 1;
    match parsed {
        Ok(Some((r, label))) => {
            st.records += 1;
            sink.record(r, label);
        }
        Ok(None) => st.skipped_non_ip += 1,
        Err(reason) => {
            st.rejected += 1;
            let raw = Bytes::copy_from_slice(&line[..line.len().min(64 * 1024)]);
            sink.reject(Reject { line: lineno, raw, reason });
        }
    }
}

/// One JSON object's values for the roles, as the TSV form would write them.
fn json_values(line: &[u8]) -> Result<[Option<String>; ROLES], String> {
    use serde_json::Value;
    let obj: serde_json::Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let mut vals: [Option<String>; ROLES] = Default::default();
    for (k, v) in &obj {
        let Some(r) = role(LogKind::Zeek, k) else { continue };
        vals[r as usize] = match v {
            Value::String(s) => Some(s.clone()),
            // Epoch seconds may come without a fraction; the TSV form always has one.
            Value::Number(n) if matches!(r, Role::Start) && n.is_u64() => Some(format!("{n}.0")),
            // Times and durations as the TSV form writes them: serde_json prints the shortest
            // form, with an exponent for small values (a 3 µs flow's `3e-6`).
            Value::Number(n) if n.is_f64() => n.as_f64().map(|f| format!("{f:.6}")),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "T" } else { "F" }.to_string()),
            Value::Null => None,
            other => return Err(format!("unexpected {k}: {other}")),
        };
    }
    Ok(vals)
}

/// A flow from its fields, found by role.
fn build(kind: LogKind, vals: &[Option<&str>; ROLES], unset: &[u8]) -> Parsed {
    let get = |r: Role| -> Option<&str> {
        let v = vals[r as usize]?.trim();
        if v.is_empty() || v.as_bytes() == unset || v == "(empty)" { None } else { Some(v) }
    };
    let need = |r: Role, what: &str| get(r).ok_or_else(|| format!("missing {what}"));
    let proto_s = need(Role::Proto, "protocol")?;
    let Some(proto) = proto_number(proto_s) else {
        return if NON_IP.contains(&proto_s.to_ascii_lowercase().as_str()) {
            Ok(None)
        } else {
            Err(format!("unknown protocol {proto_s:?}"))
        };
    };
    let start_s = need(Role::Start, "start time")?;
    let start = parse_time(start_s).ok_or_else(|| format!("bad start time {start_s:?}"))?;
    let ip = |r: Role, what: &str| -> Result<IpAddr, String> {
        let s = need(r, what)?;
        s.parse().map_err(|_| format!("bad {what} {s:?}"))
    };
    let (src, dst) = (ip(Role::Src, "source address")?, ip(Role::Dst, "destination address")?);
    let port = |r: Role| -> Result<u16, String> {
        get(r).map_or(Ok(0), |s| parse_port(s).ok_or(format!("bad port {s:?}")))
    };
    let count = |r: Role| -> Result<u64, String> {
        get(r).map_or(Ok(0), |s| s.parse::<u64>().map_err(|_| format!("bad count {s:?}")))
    };
    let end = match (get(Role::End), get(Role::Dur)) {
        (Some(e), _) => parse_time(e).ok_or_else(|| format!("bad end time {e:?}"))?,
        (None, Some(d)) => {
            let us = parse_decimal_micros(d).ok_or_else(|| format!("bad duration {d:?}"))?;
            Timestamp(start.0.saturating_add(us))
        }
        (None, None) => start,
    };
    let flag = |r: Role| match get(r) {
        Some("T") => Some(true),
        Some("F") => Some(false),
        _ => None,
    };
    // Zeek says `icmp` for ICMPv6 too.
    let proto = if proto == 1 && src.is_ipv6() { 58 } else { proto };
    let (mut src_port, mut dst_port) = (port(Role::Sport)?, port(Role::Dport)?);
    let mut answered = get(Role::State).and_then(|st| answered(proto, st));
    // A record without the type (no source port) is left as it came.
    if matches!(proto, 1 | 58) && kind != LogKind::Nfdump && get(Role::Sport).is_some() {
        dst_port = icmp_type_code(kind, proto, get(Role::Sport), src_port, dst_port);
        src_port = 0;
        // Zeek's state for ICMP is always `OTH`; whether an echo request was answered is in
        // the responder's packet count.
        if kind == LogKind::Zeek
            && crate::record::is_echo_request(proto, dst_port)
            && get(Role::PacketsOut).is_some()
        {
            answered = Some(count(Role::PacketsOut)? > 0);
        }
    }
    // Zeek and nfdump give each direction's bytes; Argus the total and the originator's, or
    // each direction's.
    // nfdump writes 0 for the reverse of a one-way NetFlow record: nothing said, not nothing sent.
    let resp_bytes = match (get(Role::BytesOut), get(Role::DstBytes), get(Role::Bytes), get(Role::SrcBytes)) {
        (Some(_), ..) if kind == LogKind::Nfdump && count(Role::BytesOut)? == 0 => None,
        (Some(_), ..) => Some(count(Role::BytesOut)?),
        (None, Some(_), ..) => Some(count(Role::DstBytes)?),
        (None, None, Some(_), Some(_)) => Some(count(Role::Bytes)?.saturating_sub(count(Role::SrcBytes)?)),
        _ => None,
    };
    Ok(Some((
        FlowRecord {
            start,
            end,
            src,
            dst,
            src_port,
            dst_port,
            proto,
            packets: count(Role::Packets)?.saturating_add(count(Role::PacketsOut)?),
            bytes: if get(Role::Bytes).is_some() {
                count(Role::Bytes)?.saturating_add(count(Role::BytesOut)?)
            } else {
                count(Role::SrcBytes)?.saturating_add(count(Role::DstBytes)?)
            },
            resp_bytes,
            exporter: None,
            answered,
            local_orig: flag(Role::LocalOrig),
            local_resp: flag(Role::LocalResp),
        },
        get(Role::Label).map(str::to_string),
    )))
}

/// ICMP's type and code as every other reader gives them (NetFlow v5, nfdump, packets):
/// type × 256 + code in the destination port, so an echo request is one thing whatever the
/// log. Zeek writes the type as the originator's port and the code as the responder's,
/// except for the types that come in pairs, where the responder's port is the other type
/// of the pair (echo request 8 → 0, timestamp 13 → 14, neighbour solicitation 135 → 136):
/// their code is 0. Argus writes code × 256 + type as the source port (`0x0008` an echo
/// request, `0x0403` fragmentation needed) with the echo identifier as the destination port,
/// or, in short forms (`0x03`, `135`), the type and code as the two ports.
fn icmp_type_code(kind: LogKind, proto: u8, sport_text: Option<&str>, sport: u16, dport: u16) -> u16 {
    let ty = sport & 0xff;
    let paired = match proto {
        1 => matches!(ty, 0 | 8 | 9 | 10 | 13..=18),
        _ => matches!(ty, 128..=131 | 133..=136 | 139 | 140),
    };
    let long_hex = sport_text.and_then(|s| s.strip_prefix("0x")).is_some_and(|h| h.len() > 2);
    let code = match kind {
        LogKind::Argus if long_hex || sport > 0xff => sport >> 8,
        LogKind::Zeek if paired => 0,
        _ if dport <= 0xff => dport,
        _ => 0,
    };
    ty << 8 | code
}

/// Whether a flow's state says the responder answered. Zeek's `conn_state`: `S0` (no
/// reply), `REJ` (refused), `RSTOS0` and `SH` (the originator gave up or closed before any
/// reply) are attempts; `OTH` (no handshake seen) says nothing. Argus's TCP state is the
/// flags each side sent, `src_dst`: no flags back (`S_`) or only a reset (`S_RA`) is an
/// attempt; its summary states (without `-Z`, as in CTU-13's `2format` files) say `REQ`/`INT`
/// (one side only), `CON` (both), or a TCP connection accepted, established or closed
/// (`ACC`, `EST`, `FIN`, `CLO`); `RST` (refused, or reset later) and `TIM` say nothing.
fn answered(proto: u8, state: &str) -> Option<bool> {
    match state {
        "S0" | "REJ" | "RSTOS0" | "SH" => return Some(false),
        "S1" | "SF" | "S2" | "S3" | "RSTO" | "RSTR" | "RSTRH" | "SHR" => return Some(true),
        "OTH" => return None,
        // Argus's summary states: a request nobody answered, a conversation, an echo reply.
        "REQ" | "INT" => return Some(false),
        "CON" | "EST" | "ECR" => return Some(true),
        "ACC" | "FIN" | "CLO" if proto == 6 => return Some(true),
        _ => {}
    }
    match proto {
        6 => {
            let (_, back) = state.split_once('_')?;
            // Nothing back, or only a reset (with its ACK), is no answer.
            Some(!back.chars().all(|c| c == 'R' || c == 'A'))
        }
        _ => None,
    }
}

/// Argus protocol names that are link-layer or Argus's own records.
const NON_IP: &[&str] = &["arp", "rarp", "llc", "man", "ipx/spx", "stp", "lldp", "ipv6", "ipnip"];

fn proto_number(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    // The common names without allocating a lower-case copy.
    for (name, n) in [("tcp", 6), ("udp", 17), ("icmp", 1)] {
        if s.eq_ignore_ascii_case(name) {
            return Some(n);
        }
    }
    Some(match s.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmp6" | "ipv6-icmp" | "icmpv6" => 58,
        "pim" => 103,
        "sctp" => 132,
        "udt" | "rtp" | "rtcp" => 17,
        _ => return None,
    })
}

/// Decimal, or Argus's hex for ICMP type/code (`0x0303`).
fn parse_port(s: &str) -> Option<u16> {
    match s.strip_prefix("0x") {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `123.456789` seconds → µs, without going through a float.
fn parse_decimal_micros(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut us: i64 = 0;
    for (i, c) in frac.bytes().take(6).enumerate() {
        us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
    }
    secs.checked_mul(1_000_000)?.checked_add(us)
}

/// Epoch seconds with a fraction (Zeek), or wall-clock times (`2018/09/27 22:40:52.362768`,
/// `2018-03-09 20:49:16`).
fn parse_time(s: &str) -> Option<Timestamp> {
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') && s.contains('.') {
        return parse_decimal_micros(s).map(Timestamp);
    }
    if s.as_bytes().get(4) == Some(&b'/') {
        return parse_timestamp(&s.replace('/', "-"));
    }
    parse_timestamp(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers() {
        assert_eq!(parse_time("1677024003.714845"), Some(Timestamp(1_677_024_003_714_845)));
        assert_eq!(parse_time("2018/09/27 22:40:52.362768"), Some(Timestamp(1_538_088_052_362_768)));
        assert_eq!(parse_time("2018-03-09 20:49:16"), Some(Timestamp(1_520_628_556_000_000)));
        assert_eq!(parse_decimal_micros("0.5"), Some(500_000));
        assert_eq!(parse_decimal_micros("."), None);
        assert_eq!(parse_decimal_micros("1.2.3"), None);
        assert_eq!(parse_port("0x0303"), Some(0x303));
    }

    #[test]
    fn flow_states_say_whether_the_responder_answered() {
        // Zeek, Argus flag pairs (`-Z b`), and Argus summary states (CTU-13's `2format`).
        for (proto, state, want) in [
            (6, "S0", Some(false)),
            (6, "SF", Some(true)),
            (6, "OTH", None),
            (6, "S_", Some(false)),
            (6, "S_RA", Some(false)),
            (6, "FSPA_FSPA", Some(true)),
            (6, "REQ", Some(false)),
            (17, "INT", Some(false)),
            (17, "CON", Some(true)),
            (6, "FIN", Some(true)),
            (6, "CLO", Some(true)),
            (6, "ACC", Some(true)),
            // A reset may be a refusal or the end of a conversation; a timeout either.
            (6, "RST", None),
            (6, "TIM", None),
            (1, "ECO", None),
            (1, "ECR", Some(true)),
        ] {
            assert_eq!(answered(proto, state), want, "{proto} {state}");
        }
    }

    #[test]
    fn zeek_json_lines_read_as_the_tsv_form() {
        let tsv = "#separator \\x09\n#unset_field\t-\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\tconn_state\tlocal_orig\tlocal_resp\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n\
                   1664464850.117582\tC1\t172.16.1.11\t35356\t8.8.8.8\t443\ttcp\t-\tS0\tT\tF\t1\t44\t0\t0\n\
                   1664462456.755299\tC2\t172.16.1.11\t40042\t8.8.8.8\t53\tudp\t0.012166\tSHR\tT\tF\t0\t0\t1\t139\n\
                   1664462457\tC3\t172.16.1.11\t40043\t8.8.8.8\t53\tudp\t0.000003\tSF\tT\tF\t1\t60\t1\t90\n";
        let json = r#"{"ts":1664464850.117582,"uid":"C1","id.orig_h":"172.16.1.11","id.orig_p":35356,"id.resp_h":"8.8.8.8","id.resp_p":443,"proto":"tcp","conn_state":"S0","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"S","orig_pkts":1,"orig_ip_bytes":44,"resp_pkts":0,"resp_ip_bytes":0}
{"ts":1664462456.755299,"uid":"C2","id.orig_h":"172.16.1.11","id.orig_p":40042,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp","duration":0.012166,"conn_state":"SHR","local_orig":true,"local_resp":false,"orig_pkts":0,"orig_ip_bytes":0,"resp_pkts":1,"resp_ip_bytes":139}
{"ts":1664462457,"uid":"C3","id.orig_h":"172.16.1.11","id.orig_p":40043,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp","duration":0.000003,"conn_state":"SF","local_orig":true,"local_resp":false,"orig_pkts":1,"orig_ip_bytes":60,"resp_pkts":1,"resp_ip_bytes":90}

{"ts":"not a time","id.orig_h":"172.16.1.11","id.resp_h":"8.8.8.8","proto":"tcp"}
[1, 2]
"#;
        let (mut a, mut b, mut rej_a, mut rej_b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        read_log(tsv.as_bytes(), LogKind::Zeek, &mut a, &mut rej_a).unwrap();
        let st = read_log(json.as_bytes(), LogKind::Zeek, &mut b, &mut rej_b).unwrap();
        assert!(rej_a.is_empty(), "{rej_a:?}");
        assert_eq!(a, b);
        assert_eq!(
            (a[0].answered, a[0].local_orig, a[1].end.0 - a[1].start.0),
            (Some(false), Some(true), 12_166)
        );
        assert_eq!(a[2].end.0 - a[2].start.0, 3);
        assert_eq!((st.records, st.rejected), (3, 2));
        assert_eq!(rej_b.iter().map(|r| r.line).collect::<Vec<_>>(), [5, 6]);
        assert!(rej_b[0].reason.contains("bad start time"), "{}", rej_b[0].reason);
        assert!(rej_b[1].reason.contains("not a JSON object"), "{}", rej_b[1].reason);
        assert_eq!(super::super::detect(json.as_bytes(), "x.log"), Some(super::super::FlowFormat::ZeekConn));
    }

    #[test]
    fn icmp_type_and_code_follow_one_convention() {
        // Zeek: type and code as the two ports, the reply in the responder's packets.
        let zeek = r#"{"ts":1664464850.1,"id.orig_h":"172.16.1.11","id.orig_p":8,"id.resp_h":"172.16.1.2","id.resp_p":0,"proto":"icmp","conn_state":"OTH","orig_pkts":2,"resp_pkts":2}
{"ts":1664464850.2,"id.orig_h":"172.16.1.11","id.orig_p":8,"id.resp_h":"172.16.1.3","id.resp_p":0,"proto":"icmp","conn_state":"OTH","orig_pkts":1,"resp_pkts":0}
{"ts":1664464850.3,"id.orig_h":"172.16.1.1","id.orig_p":3,"id.resp_h":"172.16.1.11","id.resp_p":3,"proto":"icmp","conn_state":"OTH","orig_pkts":1,"resp_pkts":0}
{"ts":1664464850.4,"id.orig_h":"172.16.1.11","id.orig_p":13,"id.resp_h":"172.16.1.1","id.resp_p":14,"proto":"icmp","conn_state":"OTH","orig_pkts":2,"resp_pkts":0}
{"ts":1664464850.5,"id.orig_h":"2001:db8::1","id.orig_p":1,"id.resp_h":"2001:db8::2","id.resp_p":4,"proto":"icmp","conn_state":"OTH","orig_pkts":1,"resp_pkts":0}
"#;
        let mut out = Vec::new();
        read_log(zeek.as_bytes(), LogKind::Zeek, &mut out, &mut Vec::new()).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.src_port, r.dst_port, r.answered)).collect();
        assert_eq!(
            got,
            [
                (0, 0x0800, Some(true)),
                (0, 0x0800, Some(false)),
                (0, 0x0303, None),
                (0, 0x0d00, None),
                (0, 0x0104, None)
            ]
        );
        // The same in Zeek's TSV form.
        let tsv = "#separator \\x09\n#unset_field\t-\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state\torig_pkts\tresp_pkts\n\
                   1664464850.1\t172.16.1.11\t8\t172.16.1.2\t0\ticmp\tOTH\t2\t2\n\
                   1664464850.2\tfe80::1\t135\tfe80::2\t136\ticmp\tOTH\t1\t0\n";
        let mut out = Vec::new();
        read_log(tsv.as_bytes(), LogKind::Zeek, &mut out, &mut Vec::new()).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.proto, r.dst_port, r.answered)).collect();
        assert_eq!(got, [(1, 0x0800, Some(true)), (58, 135 << 8, None)]);
        // Argus: `0xCCTT` with the echo identifier, or the short forms.
        let argus = "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,TotPkts,TotBytes\n\
            2019/04/04 16:30:10.2,1.2,icmp,10.8.0.69,0x0008,   ->,110.128.128.128,0x7208,ECO,2,144\n\
            2019/04/04 16:25:29.2,3469.4,icmp,10.8.0.1,0x0403,   ->,10.8.0.69,0x0000,URF,96,55296\n\
            2018/09/27 22:42:41.2,2.9,icmp,5.202.176.1,0x03,   ->,192.168.2.12,0x03,URP,2,200\n\
            2018/12/18 14:00:08.5,0.0,ipv6-icmp,fe80::1,135,   ->,ff02::1:ffdd:53e7,0,NNS,1,78\n\
            2018/12/18 14:00:09.5,0.0,tcp,10.0.0.1,0x0008,   ->,10.0.0.2,0x7208,CON,1,78\n\
            2018/12/18 14:00:10.5,0.0,icmp,10.0.0.1,1027,   ->,10.0.0.2,0,URF,1,78\n\
            2018/12/18 14:00:11.5,0.0,icmp,10.0.0.1,,   ->,10.0.0.2,0,URF,1,78\n";
        let mut out = Vec::new();
        read_log(argus.as_bytes(), LogKind::Argus, &mut out, &mut Vec::new()).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.src_port, r.dst_port)).collect();
        assert_eq!(
            got,
            [(0, 0x0800), (0, 0x0304), (0, 0x0303), (0, 135 << 8), (8, 0x7208), (0, 0x0304), (0, 0)]
        );
    }

    #[test]
    fn bad_lines_are_rejects_with_line_numbers() {
        let log = b"StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,TotPkts,TotBytes\n\
            2018/09/27 22:40:52.36,1.5,tcp,192.168.2.1,52893,  ->,192.168.2.12,22,35,3766\n\
            2018/09/27 22:40:53,0.1,tcp,not-an-ip,1,->,10.0.0.1,2,3,4\n\
            1970/01/01 01:00:06.5,1.9,arp,0.0.0.0,,who,192.168.1.114,,3,126\n\
            garbage\n";
        let (mut out, mut rej) = (Vec::new(), Vec::new());
        let st = read_log(log, LogKind::Argus, &mut out, &mut rej).unwrap();
        assert_eq!((st.lines, st.records, st.rejected, st.skipped_non_ip), (4, 1, 2, 1));
        assert_eq!(out[0].end.0 - out[0].start.0, 1_500_000);
        assert_eq!((out[0].packets, out[0].bytes, out[0].proto), (35, 3766, 6));
        assert_eq!(rej[0].line, 3);
        assert!(rej[0].reason.contains("source address"), "{}", rej[0].reason);
        assert_eq!(rej[1].line, 5);
    }

    #[test]
    fn each_direction_s_bytes_come_from_whichever_columns_the_log_has() {
        let argus = |cols: &str, vals: &str| {
            let text = format!(
                "StartTime,Proto,SrcAddr,Sport,DstAddr,Dport,{cols}\n2019/04/04 16:30:10,tcp,10.0.0.1,40000,198.51.100.1,1337,{vals}\n"
            );
            let mut out = Vec::new();
            read_log(text.as_bytes(), LogKind::Argus, &mut out, &mut Vec::new()).unwrap();
            (out[0].bytes, out[0].resp_bytes)
        };
        assert_eq!(argus("TotBytes,SrcBytes", "1000,900"), (1000, Some(100)));
        assert_eq!(argus("SrcBytes,DstBytes", "900,100"), (1000, Some(100)));
        assert_eq!(argus("TotBytes", "1000"), (1000, None));
        // nfdump: a 0 reverse counter is a one-way record's, not nothing sent back.
        let nfdump = |obyt: u64| {
            let text = format!(
                "ts,te,sa,da,sp,dp,pr,ibyt,obyt\n2019-04-04 16:30:10,2019-04-04 16:30:11,10.0.0.1,198.51.100.1,40000,1337,TCP,900,{obyt}\n"
            );
            let mut out = Vec::new();
            read_log(text.as_bytes(), LogKind::Nfdump, &mut out, &mut Vec::new()).unwrap();
            (out[0].bytes, out[0].resp_bytes)
        };
        assert_eq!(nfdump(100), (1000, Some(100)));
        assert_eq!(nfdump(0), (900, None));
    }

    #[test]
    fn header_without_addresses_is_an_error() {
        let e = read_log(b"Proto,State,Dur\nudp,CON,0.1\n", LogKind::Argus, &mut Vec::new(), &mut Vec::new());
        assert!(matches!(e, Err(FlowError::MissingColumns { .. })));
        let e = read_log(b"", LogKind::Zeek, &mut Vec::new(), &mut Vec::new());
        assert!(matches!(e, Err(FlowError::NoHeader)));
    }
}

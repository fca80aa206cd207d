//! Zeek `dns.log`, in its TSV form (`#separator`, `#path dns`, `#fields …`) and as Zeek's
//! JSON logs (one object per line, `LogAscii::use_json=T`, times as epoch seconds or ISO
//! 8601). One record per line: the query, the client, its response code and the addresses
//! in the answer. (docs.zeek.org, "dns.log".)
//!
//! Zeek logs of other kinds share the TSV framing; [`path`] names a log's kind from its own
//! header, which is how `scan` tells a `dns.log` from a `conn.log` and refuses the rest.

use super::{DnsSink, Stats, reject};
use crate::lines::{Line, LineSource, MAX_LINE, SliceLines};
use crate::record::DnsRecord;
use botwatch_model::{Timestamp, parse_timestamp};
use std::borrow::Cow;
use std::net::IpAddr;

/// The kind of Zeek log, from a TSV log's `#path` line, or for a JSON log from the keys of
/// its first object (`query` → `dns`, `conn_state`/`orig_bytes` → `conn`). `None` when the
/// input is no Zeek log.
pub fn path(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let mut lines = head.split(|&c| c == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.clone().find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    if first.starts_with(b"#separator") || first.starts_with(b"#fields") || first.starts_with(b"#path") {
        let mut fields: Option<Vec<&[u8]>> = None;
        for l in lines.by_ref().take(16) {
            if let Some(p) = l.strip_prefix(b"#path") {
                let p = String::from_utf8_lossy(p).trim().to_string();
                return (!p.is_empty()).then_some(p);
            }
            if let Some(f) = l.strip_prefix(b"#fields") {
                fields = Some(f.split(|c| c.is_ascii_whitespace()).filter(|x| !x.is_empty()).collect());
            }
        }
        // No #path (a log cut by hand): its fields tell.
        let f = fields?;
        let has = |k: &[u8]| f.contains(&k);
        return Some(if has(b"query") && has(b"qtype_name") {
            "dns".into()
        } else if has(b"conn_state") || has(b"orig_bytes") {
            "conn".into()
        } else {
            "unknown".into()
        });
    }
    if first.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(first).ok()?;
        let o = v.as_object()?;
        if !(o.contains_key("ts") && o.contains_key("uid")) {
            return None;
        }
        return Some(if o.contains_key("query") {
            "dns".into()
        } else if o.contains_key("conn_state") || o.contains_key("orig_bytes") {
            "conn".into()
        } else {
            "unknown".into()
        });
    }
    None
}

/// The fields a DNS record needs, by column index.
#[derive(Default)]
struct Columns {
    ts: Option<usize>,
    client: Option<usize>,
    client_port: Option<usize>,
    server: Option<usize>,
    query: Option<usize>,
    qtype_name: Option<usize>,
    qtype: Option<usize>,
    rcode_name: Option<usize>,
    answers: Option<usize>,
    len: usize,
}

impl Columns {
    fn from_fields(fields: &[&str]) -> Columns {
        let at = |k: &str| fields.iter().position(|f| *f == k);
        Columns {
            ts: at("ts"),
            client: at("id.orig_h"),
            client_port: at("id.orig_p"),
            server: at("id.resp_h"),
            query: at("query"),
            qtype_name: at("qtype_name"),
            qtype: at("qtype"),
            rcode_name: at("rcode_name"),
            answers: at("answers"),
            len: fields.len(),
        }
    }
}

/// A Zeek TSV separator as the header writes it (`\x09`, or a literal character).
fn separator(s: &str) -> Option<u8> {
    let s = s.trim_start_matches([' ', '\t']);
    if let Some(hex) = s.strip_prefix("\\x") {
        return u8::from_str_radix(hex.get(..2)?, 16).ok();
    }
    s.bytes().next()
}

/// Epoch seconds with a fraction (Zeek's default, read as the Unbound/BIND logs' epoch
/// stamps are) or an ISO 8601 time (`JSON::TimestampFormat`).
fn time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    super::log::epoch(s).or_else(|| parse_timestamp(s))
}

/// A mnemonic as the text logs carry it: upper case; Zeek writes ANY (255) as `*`.
fn mnemonic(name: &str) -> Cow<'static, str> {
    if name == "*" { Cow::Borrowed("ANY") } else { Cow::Owned(name.to_ascii_uppercase()) }
}

/// What one line says, before it becomes a record.
struct Fields<'a> {
    ts: Option<&'a str>,
    client: Option<&'a str>,
    client_port: Option<&'a str>,
    server: Option<&'a str>,
    query: Option<&'a str>,
    qtype_name: Option<&'a str>,
    qtype: Option<&'a str>,
    rcode_name: Option<&'a str>,
    answers: Vec<&'a str>,
}

fn record(f: Fields<'_>) -> Result<DnsRecord, String> {
    let time = f.ts.and_then(time).ok_or_else(|| format!("bad or missing ts {:?}", f.ts.unwrap_or("")))?;
    let client: IpAddr = f
        .client
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| format!("bad or missing id.orig_h {:?}", f.client.unwrap_or("")))?;
    // Zeek logs a DNS message that carried no question (a bare response, a malformed
    // packet) with an unset query: there is no name to match.
    let qname = f.query.map(str::trim).filter(|q| !q.is_empty()).ok_or("no query name")?;
    let qname = super::wire::normalise_qname(qname);
    let qtype = match (f.qtype_name, f.qtype) {
        (Some(n), _) if !n.is_empty() => mnemonic(n),
        (_, Some(t)) if t.bytes().all(|c| c.is_ascii_digit()) && !t.is_empty() => {
            Cow::Owned(format!("TYPE{t}"))
        }
        _ => Cow::Borrowed("ANY"),
    };
    Ok(DnsRecord {
        time,
        client,
        client_port: f.client_port.and_then(|p| p.trim().parse().ok()),
        qname,
        qtype,
        rcode: f.rcode_name.filter(|r| !r.is_empty()).map(mnemonic),
        answers: f.answers.iter().filter_map(|a| a.trim().parse().ok()).collect(),
        server: f.server.and_then(|a| a.trim().parse().ok()),
    })
}

/// Reads a Zeek `dns.log` (TSV or JSON) into `out`. Header lines are framing; every data
/// line is a record or a reject with its line number and reason.
pub(crate) fn read_zeek(bytes: &[u8], out: &mut dyn DnsSink, stats: &mut Stats) {
    read_zeek_lines(&mut SliceLines::new(bytes), out, stats)
}

/// [`read_zeek`] from any line source: a `dns.log` streamed from a file is read in the
/// memory of one line.
pub fn read_zeek_lines(lines: &mut dyn LineSource, out: &mut dyn DnsSink, stats: &mut Stats) {
    let mut sep = b'\t';
    let mut set_sep = b',';
    let mut unset = "-".to_string();
    let mut empty = "(empty)".to_string();
    let mut cols: Option<Columns> = None;
    while let Some(Line { number: n, bytes: raw, cut }) = lines.next_line() {
        if cut {
            stats.lines += 1;
            out.reject(reject(n, raw, format!("line longer than {} MiB", MAX_LINE >> 20)));
            continue;
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            stats.lines += 1;
            out.reject(reject(n, raw, "not UTF-8"));
            continue;
        };
        if let Some(h) = line.strip_prefix('#') {
            // Zeek writes each header word after the separator it declares.
            if let Some(v) = h.strip_prefix("separator") {
                sep = separator(v).unwrap_or(b'\t');
            } else {
                let s = char::from(sep);
                let (key, rest) = h.split_once(s).unwrap_or((h, ""));
                match key {
                    "set_separator" => set_sep = rest.bytes().next().unwrap_or(b','),
                    "unset_field" => unset = rest.to_string(),
                    "empty_field" => empty = rest.to_string(),
                    "fields" => cols = Some(Columns::from_fields(&rest.split(s).collect::<Vec<_>>())),
                    _ => {}
                }
            }
            continue;
        }
        stats.lines += 1;
        let rec = if line.starts_with('{') {
            json_line(line)
        } else {
            match &cols {
                None => Err("a data line before the #fields header".to_string()),
                Some(c) => {
                    let v: Vec<&str> = line.split(char::from(sep)).collect();
                    if v.len() != c.len {
                        Err(format!("{} fields, the #fields header has {}", v.len(), c.len))
                    } else {
                        let get = |i: Option<usize>| {
                            i.map(|i| v[i]).filter(|x| *x != unset && *x != empty && !x.is_empty())
                        };
                        record(Fields {
                            ts: get(c.ts),
                            client: get(c.client),
                            client_port: get(c.client_port),
                            server: get(c.server),
                            query: get(c.query),
                            qtype_name: get(c.qtype_name),
                            qtype: get(c.qtype),
                            rcode_name: get(c.rcode_name),
                            answers: get(c.answers)
                                .map(|a| a.split(char::from(set_sep)).collect())
                                .unwrap_or_default(),
                        })
                    }
                }
            }
        };
        match rec {
            Ok(r) => {
                // Zeek logs one exchange per line: a query, answered when it has a code.
                stats.queries += 1;
                if r.rcode.is_some() {
                    stats.responses += 1;
                    stats.paired += 1;
                } else {
                    stats.unanswered += 1;
                }
                out.record(r)
            }
            Err(why) => out.reject(reject(n, raw, why)),
        }
    }
}

fn json_line(line: &str) -> Result<DnsRecord, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let o = v.as_object().ok_or("not a JSON object")?;
    let ts = match o.get("ts") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let s = |k: &str| o.get(k).and_then(|x| x.as_str());
    let port = o.get("id.orig_p").map(|p| p.to_string());
    let qtype = o.get("qtype").map(|t| t.to_string());
    let answers: Vec<&str> = match o.get("answers") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).collect(),
        _ => Vec::new(),
    };
    record(Fields {
        ts: ts.as_deref(),
        client: s("id.orig_h"),
        client_port: port.as_deref(),
        server: s("id.resp_h"),
        query: s("query"),
        qtype_name: s("qtype_name"),
        qtype: qtype.as_deref(),
        rcode_name: s("rcode_name"),
        answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Collected;

    const TSV: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tqtype\tqtype_name\trcode_name\tanswers\n\
        1596790164.509987\tC1\t10.8.0.61\t35740\t8.8.8.8\t53\tudp\tInfiniteData-pa.googleapis.com.\t1\tA\tNOERROR\t172.217.23.202,www.x.test,2001:db8::1\n\
        1596790165.5\tC2\t10.8.0.61\t35741\t8.8.8.8\t53\tudp\tnx.example\t28\tAAAA\tNXDOMAIN\t-\n\
        1596790166\tC3\t10.8.0.62\t1\t8.8.8.8\t53\tudp\t-\t-\t-\t-\t-\n\
        1596790167\tC4\t10.8.0.62\t1\t8.8.8.8\n#close\t2021\n";

    #[test]
    fn tsv_lines_become_records_and_bad_ones_rejects() {
        assert_eq!(path(TSV.as_bytes()).as_deref(), Some("dns"));
        let mut out = Collected::default();
        let mut st = Stats::default();
        read_zeek(TSV.as_bytes(), &mut out, &mut st);
        assert_eq!(out.records.len(), 2);
        let r = &out.records[0];
        assert_eq!(
            (r.qname.as_str(), &*r.qtype, r.rcode.as_deref()),
            ("infinitedata-pa.googleapis.com", "A", Some("NOERROR"))
        );
        assert_eq!(r.time, Timestamp::from_micros(1_596_790_164_509_987));
        assert_eq!(r.client.to_string(), "10.8.0.61");
        assert_eq!(r.answers.len(), 2, "names in the answer are not addresses");
        assert_eq!(out.records[1].rcode.as_deref(), Some("NXDOMAIN"));
        let why: Vec<(u64, &str)> = out.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(why, [(9, "no query name"), (10, "5 fields, the #fields header has 12")]);
    }

    #[test]
    fn json_lines_and_kinds_of_log() {
        let j = "{\"ts\":1596790164.509987,\"uid\":\"C1\",\"id.orig_h\":\"10.8.0.61\",\"id.orig_p\":35740,\"query\":\"a.example\",\"qtype\":1,\"qtype_name\":\"A\",\"rcode_name\":\"NOERROR\",\"answers\":[\"192.0.2.1\"]}\n\
                 {\"ts\":\"2020-08-07T08:49:25.5Z\",\"uid\":\"C2\",\"id.orig_h\":\"10.8.0.61\",\"query\":\"b.example\",\"qtype\":16}\n\
                 {\"ts\":1,\"uid\":\"C3\"}\n";
        assert_eq!(path(j.as_bytes()).as_deref(), Some("dns"));
        let mut out = Collected::default();
        read_zeek(j.as_bytes(), &mut out, &mut Stats::default());
        assert_eq!(out.records.len(), 2);
        assert_eq!((&*out.records[1].qtype, out.records[1].rcode.as_deref()), ("TYPE16", None));
        assert_eq!(out.records[1].time, parse_timestamp("2020-08-07T08:49:25.5Z").unwrap());
        assert_eq!(out.rejects.len(), 1);
        let conn = "{\"ts\":1.0,\"uid\":\"C\",\"id.orig_h\":\"10.0.0.1\",\"conn_state\":\"SF\"}\n";
        assert_eq!(path(conn.as_bytes()).as_deref(), Some("conn"));
        assert_eq!(path(b"#separator \\x09\n#path\thttp\n").as_deref(), Some("http"));
        assert_eq!(path(b"hello\n"), None);
        assert_eq!(path(b"{\"a\":1}\n"), None);
    }

    #[test]
    fn never_panics_on_junk() {
        for junk in [
            &b""[..],
            b"#",
            b"#separator",
            b"#separator \\x",
            b"#fields\n\t\t\n",
            b"{",
            b"\xff\xfe",
            b"#separator \\xzz\n1\t2",
        ] {
            let mut out = Collected::default();
            read_zeek(junk, &mut out, &mut Stats::default());
            let _ = path(junk);
        }
    }
}

//! Feodo Tracker IP blocklist, CSV and JSON.

use crate::generic::shared::{extra_key, json_text, keep_extra, set_json_opt, split_record};
use crate::util::{self, Line};
use crate::{ParseContext, Parser};
use botwatch_model::{ClassificationType, Event, Sink};
use bytes::Bytes;
use serde_json::Value as Json;

/// The columns of the CSV since 2020, used when a file carries no header.
const DEFAULT_COLUMNS: &[&str] =
    &["first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware"];

/// IntelMQ key for a Feodo column or JSON key; `None` for columns kept under `extra.`.
fn key_for(name: &str) -> Option<&'static str> {
    Some(match name {
        "first_seen_utc" | "first_seen" | "firstseen" => "time.source",
        "dst_ip" | "dstip" | "ip_address" | "ip" => "source.ip",
        "dst_port" | "dstport" | "port" => "source.port",
        "c2_status" | "status" => "extra.status",
        "last_online" | "lastonline" => "extra.last_online",
        "malware" => "malware.name",
        "hostname" => "source.reverse_dns",
        "as_number" => "source.asn",
        "as_name" => "source.as_name",
        "country" => "source.geolocation.cc",
        _ => return None,
    })
}

fn norm(name: &str) -> String {
    extra_key(name).trim_start_matches("extra.").to_string()
}

fn is_header(fields: &[String]) -> bool {
    fields.iter().any(|f| matches!(norm(f).as_str(), "dst_ip" | "dstip"))
        && fields.iter().any(|f| norm(f).contains("first"))
}

pub(super) struct Csv;

impl Parser for Csv {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut columns: Vec<String> = DEFAULT_COLUMNS.iter().map(|s| s.to_string()).collect();
        for line in util::lines(input) {
            let text = line.text();
            let t = text.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(c) = t.strip_prefix('#') {
                // Files before 2020 name their columns in a comment ("# Firstseen,DstIP,…").
                if let Ok(f) = split_record(c.trim(), ',', Some('"'))
                    && is_header(&f)
                {
                    columns = f.iter().map(|s| norm(s)).collect();
                }
                continue;
            }
            let fields = match split_record(t, ',', Some('"')) {
                Ok(f) => f,
                Err(m) => {
                    util::reject(sink, line.number, line.raw.clone(), m);
                    continue;
                }
            };
            if is_header(&fields) {
                columns = fields.iter().map(|s| norm(s)).collect();
                continue;
            }
            let mut e = util::event(ctx, ClassificationType::C2Server, &line);
            let mut ip_err = None;
            for (i, v) in fields.iter().enumerate() {
                let v = v.trim();
                let col = columns.get(i).map(String::as_str);
                match col.and_then(key_for) {
                    Some("source.ip") => {
                        if let Err(m) = util::set(&mut e, ctx, "source.ip", v) {
                            ip_err = Some(m);
                        }
                    }
                    Some(key) => util::set_opt(&mut e, ctx, key, v),
                    None if v.is_empty() => {}
                    None => {
                        let key = match col {
                            Some(c) => format!("extra.{c}"),
                            None => format!("extra.column_{}", i + 1),
                        };
                        e.set_attr(&key, botwatch_model::Value::Str(v.into()));
                    }
                }
            }
            finish(e, ip_err, &line, sink);
        }
    }
}

fn finish(e: Event, ip_err: Option<String>, line: &Line, sink: &mut dyn Sink) {
    match ip_err {
        Some(m) => util::reject(sink, line.number, line.raw.clone(), m),
        None if e.source.ip.is_none() => {
            util::reject(sink, line.number, line.raw.clone(), "no C2 IP address")
        }
        None => sink.event(e),
    }
}

pub(super) struct JsonParser;

impl Parser for JsonParser {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let Some(doc) = util::json_document(input, sink, "Feodo Tracker") else { return };
        let Json::Array(items) = doc else {
            util::reject_whole(sink, input, "Feodo Tracker JSON must be an array of C2 entries");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let line = Line { number: i as u64 + 1, raw: util::json_raw(item) };
            let Json::Object(map) = item else {
                util::reject(sink, line.number, line.raw, "entry is not a JSON object");
                continue;
            };
            let mut e = util::event(ctx, ClassificationType::C2Server, &line);
            let mut ip_err = None;
            for (k, v) in map {
                match key_for(k) {
                    Some("source.ip") => {
                        let t = json_text(v).unwrap_or_default();
                        if let Err(m) = util::set(&mut e, ctx, "source.ip", &t) {
                            ip_err = Some(m);
                        }
                    }
                    Some(key) => set_json_opt(&mut e, ctx, key, v),
                    None => keep_extra(&mut e, k, v),
                }
            }
            finish(e, ip_err, &line, sink);
        }
    }
}

#[cfg(test)]
mod tests {

    use crate::abusech::PROVIDER;
    use botwatch_model::Collected;

    fn run(id: &str, data: &'static [u8]) -> Collected {
        crate::util::parse_feed(&PROVIDER, id, data)
    }

    #[test]
    fn csv_rows_headers_and_bad_lines() {
        let out = run(
            "abusech_feodo_csv",
            b"# Firstseen,DstIP,DstPort,LastOnline,Malware\n2019-01-01 00:00:00,192.0.2.1,443,2019-01-02,Heodo\n\"2021\",\"999.1.1.1\"\n\"open\n",
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].malware_name.as_deref(), Some("emotet"));
        assert_eq!(out.events[0].attr("extra.last_online").unwrap().as_str(), Some("2019-01-02"));
        assert_eq!(out.rejects.len(), 2);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        for id in ["abusech_feodo_csv", "abusech_feodo_json"] {
            assert!(run(id, b"").events.is_empty());
            assert!(run(id, b"\xff\xfe\x00garbage").events.is_empty());
            assert!(run(id, b"[{\"ip_address\": \"1.2.3").events.is_empty());
        }
        let out = run("abusech_feodo_json", b"{\"a\":1}");
        assert_eq!(out.rejects.len(), 1);
        let out = run(
            "abusech_feodo_json",
            b"[1, {\"port\": 1}, {\"ip_address\": \"192.0.2.1\", \"port\": 99999}]",
        );
        assert_eq!((out.events.len(), out.rejects.len()), (1, 2));
        assert!(out.events[0].attr("extra.invalid.source.port").is_some());
    }
}

//! ThreatFox IOCs: API responses (`{"query_status": "ok", "data": [...]}`) and JSON
//! exports (`{"<id>": [{...}], ...}`, whose keys say `ioc_value`, `first_seen_utc`, …).
//!
//! Classification by `threat_type`: `botnet_cc` → c2-server; `payload_delivery` (where
//! payloads are fetched) and `payload` (sample hashes) → malware-distribution;
//! `cc_skimming` → other; anything new → undetermined, with the type kept as
//! `classification.identifier`.

use crate::generic::shared::{Hash, json_text, json_value, keep_extra, set_host, set_url};
use crate::util::{self, Line};
use crate::{ParseContext, Parser};
use botwatch_model::{ClassificationType, Side, Sink, Value};
use bytes::Bytes;
use serde_json::{Map, Value as Json};

fn classification(threat_type: &str) -> ClassificationType {
    match threat_type {
        "botnet_cc" => ClassificationType::C2Server,
        "payload_delivery" | "payload" => ClassificationType::MalwareDistribution,
        "cc_skimming" => ClassificationType::Other,
        _ => ClassificationType::Undetermined,
    }
}

/// Puts the IOC where its type says.
fn set_ioc(e: &mut botwatch_model::Event, ioc_type: &str, ioc: &str) -> Result<(), String> {
    match ioc_type {
        "ip:port" => {
            let (host, port) =
                ioc.rsplit_once(':').ok_or_else(|| format!("ip:port IOC without a port: {ioc:?}"))?;
            set_host(e, Side::Source, host)?;
            if e.source.ip.is_none() {
                return Err(format!("ip:port IOC without an IP address: {ioc:?}"));
            }
            e.source.port = Some(port.trim().parse().map_err(|_| format!("invalid port in IOC {ioc:?}"))?);
            Ok(())
        }
        "domain" => set_host(e, Side::Source, ioc),
        "url" => set_url(e, Side::Source, ioc),
        "md5_hash" => Hash::Md5.set(e, ioc),
        "sha1_hash" => Hash::Sha1.set(e, ioc),
        "sha256_hash" => Hash::Sha256.set(e, ioc),
        "sha512_hash" => Hash::Sha512.set(e, ioc),
        other => Err(format!("unsupported ioc_type {other:?}")),
    }
}

pub(super) struct JsonParser;

impl Parser for JsonParser {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let Some(doc) = util::json_document(input, sink, "ThreatFox") else { return };
        let items: Vec<&Json> = match &doc {
            Json::Object(m) if m.contains_key("query_status") => {
                let status = m.get("query_status").and_then(Json::as_str).unwrap_or("");
                match m.get("data") {
                    Some(Json::Array(a)) => a.iter().collect(),
                    // "no_result" and friends carry a message instead of data.
                    _ if status == "ok" || status == "no_result" => Vec::new(),
                    _ => {
                        util::reject_whole(
                            sink,
                            input,
                            format!("ThreatFox query failed: query_status {status:?}"),
                        );
                        return;
                    }
                }
            }
            Json::Object(m) => m.values().flat_map(|v| v.as_array().into_iter().flatten()).collect(),
            Json::Array(a) => a.iter().collect(),
            _ => {
                util::reject_whole(sink, input, "not a ThreatFox API response or export");
                return;
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let line = Line { number: i as u64 + 1, raw: util::json_raw(item) };
            let Json::Object(map) = item else {
                util::reject(sink, line.number, line.raw, "IOC entry is not a JSON object");
                continue;
            };
            if let Err(m) = one(map, ctx, &line, sink) {
                util::reject(sink, line.number, line.raw, m);
            }
        }
    }
}

fn one(
    map: &Map<String, Json>,
    ctx: &ParseContext<'_>,
    line: &Line,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let text = |k: &str| map.get(k).and_then(json_text);
    let threat_type = text("threat_type").unwrap_or_default();
    let ty = classification(&threat_type);
    let mut e = util::event(ctx, ty, line);
    if ty == ClassificationType::Undetermined && !threat_type.is_empty() {
        e.classification_identifier = Some(threat_type.as_str().into());
    }
    let ioc = text("ioc").or_else(|| text("ioc_value")).ok_or("IOC entry without an ioc value")?;
    let ioc_type = text("ioc_type").ok_or("IOC entry without an ioc_type")?;
    set_ioc(&mut e, &ioc_type, &ioc)?;
    // The Malpedia name ("win.cobalt_strike") folds onto the family table better than the
    // printable one; "unknown" means no family, whatever the printable name says.
    if let Some(m) = text("malware") {
        util::set(&mut e, ctx, "malware.name", &m)?;
    } else if let Some(m) = text("malware_printable") {
        util::set(&mut e, ctx, "malware.name", &m)?;
    }
    for (k, v) in map {
        match k.as_str() {
            "ioc" | "ioc_value" | "ioc_type" | "threat_type" | "malware" => {}
            "first_seen" | "first_seen_utc" => {
                if let Some(t) = json_text(v) {
                    util::set_opt(&mut e, ctx, "time.source", &t);
                }
            }
            "confidence_level" => keep_extra(&mut e, "confidence", v),
            "id" => keep_extra(&mut e, "threatfox_id", v),
            "tags" => {
                if let Some(t) = json_value(v) {
                    e.set_attr("extra.tags", t);
                }
            }
            "reference" => {
                if let Some(t) = json_text(v) {
                    e.set_attr("event_description.url", Value::Str(t.into()));
                }
            }
            _ => keep_extra(&mut e, k, v),
        }
    }
    sink.event(e);
    Ok(())
}

#[cfg(test)]
mod tests {

    use crate::abusech::PROVIDER;
    use botwatch_model::Collected;

    fn run(data: &'static [u8]) -> Collected {
        let spec = (PROVIDER.feeds)().into_iter().find(|f| f.id == "abusech_threatfox").unwrap();
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn export_format_and_ip_port() {
        let out = run(br#"{"1": [{"ioc_value": "192.0.2.1:443", "ioc_type": "ip:port", "threat_type": "botnet_cc",
            "malware": "win.qakbot", "malware_printable": "QakBot", "first_seen_utc": "2024-01-01 00:00:00", "tags": "a,b"}],
            "2": [{"ioc_value": "[2001:db8::1]:8080", "ioc_type": "ip:port", "threat_type": "botnet_cc", "malware": "unknown"}]}"#);
        assert_eq!(out.events.len(), 2, "{:?}", out.rejects);
        assert_eq!(out.events[0].source.port, Some(443));
        assert_eq!(out.events[0].malware_name.as_deref(), Some("qakbot"));
        assert_eq!(out.events[1].source.ip.unwrap().to_string(), "2001:db8::1");
        assert_eq!(out.events[1].malware_name, None);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert_eq!(run(b"").rejects.len(), 1);
        assert_eq!(run(b"{\"query_status\": \"ok\", \"data\": [{\"ioc\"").rejects.len(), 1);
        assert_eq!(run(b"{\"query_status\": \"illegal_search_term\", \"data\": \"x\"}").rejects.len(), 1);
        let out =
            run(b"{\"query_status\": \"no_result\", \"data\": \"Your search did not yield any results\"}");
        assert!(out.events.is_empty() && out.rejects.is_empty());
        let out = run(br#"{"query_status": "ok", "data": [7, {"ioc": "x:y", "ioc_type": "ip:port"}, {"ioc": "zz", "ioc_type": "md5_hash"}]}"#);
        assert_eq!(out.rejects.len(), 3);
    }
}

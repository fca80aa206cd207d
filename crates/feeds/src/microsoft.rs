//! Microsoft Cyber Threat Intelligence Program (CTIP): infected hosts seen by Microsoft's
//! sinkholes and sensors, delivered to network owners and CERTs.
//!
//! - `microsoft_ctip`: the older Interflow format, a JSON array of objects with lower-case
//!   keys (`networksourceipv4`, `externalid`, `tlplevel`, `version: 1.5`, …).
//! - `microsoft_ctip_azure`: the Azure blob format, NDJSON with `SourceIp`, `ThreatCode`,
//!   `Malware`, nested `SourceIpInfo`/`HttpInfo`/`CustomInfo`, a base64 `Payload`, and
//!   `DateTimeReceivedUtc` as a Windows FILETIME.
//!
//! Pulled hourly under an agreement with Microsoft; TLP is per record. The format is not
//! published; the program is described at
//! <https://blogs.microsoft.com/cybertrust/2013/05/28/using-the-cloud-to-provide-near-real-time-threat-intelligence-to-isps-and-certs/>,
//! and the field mapping follows IntelMQ's CTIP parser.
//!
//! Family names: the Azure `Malware` field names either the family ("Emotet") or an
//! umbrella ("Avalanche" for everything behind that takedown), in which case the threat
//! code (`B67-SS-TINBA`) names the family in its last segment. Codes are kept in
//! `extra.threat_code` / `extra.externalid` either way. Confidence stays per record in
//! `extra.confidence` / `extra.threat_confidence` (feed accuracy is per feed here).

use crate::generic::shared::{
    base_name, contains_ci, extra_key, first_byte, json_text, json_value, keep_extra, set_json_opt, spec,
};
use crate::registry::Provider;
use crate::util::{self, Line};
use crate::{FeedSpec, ParseContext, Parser};
use botwatch_model::{ClassificationType, Event, Sink, Value};
use bytes::Bytes;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "microsoft", feeds, detect };

const DOC: &str = "https://blogs.microsoft.com/cybertrust/2013/05/28/using-the-cloud-to-provide-near-real-time-threat-intelligence-to-isps-and-certs/";

fn feeds() -> Vec<FeedSpec> {
    vec![
        spec(
            "microsoft_ctip",
            "CTIP Infected (Interflow)",
            "Microsoft",
            100.0,
            DOC,
            "Infected hosts seen by Microsoft's sinkholes, Interflow JSON array",
            Arc::new(Interflow),
        ),
        spec(
            "microsoft_ctip_azure",
            "CTIP Infected (Azure)",
            "Microsoft",
            100.0,
            DOC,
            "Infected hosts seen by Microsoft's sinkholes and sensors, Azure NDJSON",
            Arc::new(Azure),
        ),
    ]
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let first = first_byte(head);
    let interflow =
        contains_ci(head, "\"networksourceipv4\"") || contains_ci(head, "\"indicatorthreattype\"");
    let azure = contains_ci(head, "\"DataFeed\"")
        && (contains_ci(head, "\"ThreatCode\"") || contains_ci(head, "CTIP"));
    let named = base_name(name).is_some_and(|n| n.contains("ctip"));
    match first {
        Some(b'[') if interflow || (named && !azure) => Some("microsoft_ctip".into()),
        Some(b'{') if azure || (named && !interflow) => Some("microsoft_ctip_azure".into()),
        _ => None,
    }
}

/// The family behind a threat code such as `B67-SS-TINBA` or `B106-Jenxcus`: the last
/// segment when it is a word; codes like `B85-R2S` name no family.
fn family_from_code(code: &str) -> Option<&str> {
    let last = code.rsplit('-').next()?;
    let word = last.len() >= 4 && last.bytes().all(|c| c.is_ascii_alphabetic());
    (code.contains('-') && word).then_some(last)
}

/// The TLP of a record; "Unknown" and empty mean none. Other unrecognised values are kept.
fn tlp(e: &mut Event, ctx: &ParseContext<'_>, v: &Json) {
    match json_text(v) {
        Some(t) if t.eq_ignore_ascii_case("unknown") || t.eq_ignore_ascii_case("none") => {}
        Some(t) => util::set_opt(e, ctx, "tlp", &t),
        None => {}
    }
}

/// Sets a destination IP unless it is the `0.0.0.0` placeholder; CTIP sometimes repeats
/// the address ("a, a").
fn destination_ip(e: &mut Event, ctx: &ParseContext<'_>, v: &Json) {
    let Some(t) = json_text(v) else { return };
    let first = t.split(',').next().unwrap_or("").trim();
    if first == "0.0.0.0" {
        return;
    }
    util::set_opt(e, ctx, "destination.ip", first);
    if t.split(',').map(str::trim).any(|x| x != first) {
        e.set_attr("extra.destination_ips", Value::Str(t.as_str().into()));
    }
}

/// Maps one CTIP record onto an event.
type RecordFn = fn(&mut Event, &ParseContext<'_>, &Map<String, Json>) -> Result<(), String>;

fn objects<'a>(
    items: impl Iterator<Item = (Line, Option<&'a Map<String, Json>>)>,
    ctx: &ParseContext<'_>,
    sink: &mut dyn Sink,
    f: RecordFn,
) {
    for (line, map) in items {
        let Some(map) = map else {
            util::reject(sink, line.number, line.raw, "record is not a JSON object");
            continue;
        };
        let mut e = util::event(ctx, ClassificationType::InfectedSystem, &line);
        match f(&mut e, ctx, map) {
            Ok(()) => sink.event(e),
            Err(m) => util::reject(sink, line.number, line.raw, m),
        }
    }
}

struct Interflow;

impl Parser for Interflow {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let Some(doc) = util::json_document(input, sink, "CTIP Interflow") else { return };
        let Json::Array(items) = doc else {
            util::reject_whole(sink, input, "CTIP Interflow data must be a JSON array");
            return;
        };
        let lines = items
            .iter()
            .enumerate()
            .map(|(i, v)| (Line { number: i as u64 + 1, raw: util::json_raw(v) }, v.as_object()));
        objects(lines, ctx, sink, interflow);
    }
}

fn interflow(e: &mut Event, ctx: &ParseContext<'_>, m: &Map<String, Json>) -> Result<(), String> {
    let src = m.get("networksourceipv4").and_then(json_text).ok_or("record without networksourceipv4")?;
    util::set(e, ctx, "source.ip", &src)?;
    let dest_ip = m.get("networkdestinationipv4").and_then(json_text);
    for (k, v) in m {
        match k.as_str() {
            "networksourceipv4" => {}
            "networksourceport" => set_json_opt(e, ctx, "source.port", v),
            "networksourceasn" => set_json_opt(e, ctx, "source.asn", v),
            "networkdestinationipv4" => destination_ip(e, ctx, v),
            "networkdestinationport" => set_json_opt(e, ctx, "destination.port", v),
            "firstreporteddatetime" => set_json_opt(e, ctx, "time.source", v),
            "tlplevel" => tlp(e, ctx, v),
            "description" => {
                if let Some(t) = json_text(v) {
                    e.set_attr("event_description.text", Value::Str(t.into()));
                }
            }
            "externalid" => {
                if let Some(code) = json_text(v) {
                    let _ = util::set(e, ctx, "malware.name", family_from_code(&code).unwrap_or(&code));
                    e.set_attr("extra.externalid", Value::Str(code.into()));
                }
            }
            // The host name field repeats the destination IP or holds binary noise.
            "hostname" => match json_text(v) {
                Some(h) if Some(&h) == dest_ip.as_ref() => {}
                Some(h) => util::set_opt(e, ctx, "destination.fqdn", &h),
                None => {}
            },
            "useragent" => keep_extra(e, "user_agent", v),
            "indicatorexpirationdatetime" => keep_extra(e, "expiration", v),
            "additionalmetadata" => {
                let useful = match v {
                    Json::Array(a) => a
                        .iter()
                        .any(|x| !matches!(x, Json::Null) && json_text(x).is_some_and(|t| t != "null")),
                    other => json_value(other).is_some(),
                };
                if useful {
                    keep_extra(e, k, v);
                }
            }
            _ => keep_extra(e, k, v),
        }
    }
    Ok(())
}

struct Azure;

impl Parser for Azure {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        for line in util::lines(input) {
            if line.raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Json>(&line.raw) {
                Ok(v) => objects(std::iter::once((line, v.as_object())), ctx, sink, azure),
                Err(err) => {
                    util::reject(sink, line.number, line.raw.clone(), format!("not a JSON record: {err}"))
                }
            }
        }
    }
}

fn azure(e: &mut Event, ctx: &ParseContext<'_>, m: &Map<String, Json>) -> Result<(), String> {
    let src = m.get("SourceIp").and_then(json_text).ok_or("record without SourceIp")?;
    util::set(e, ctx, "source.ip", &src)?;
    let malware = m.get("Malware").and_then(json_text);
    let code = m.get("ThreatCode").and_then(json_text);
    let family = match (&malware, &code) {
        (Some(mw), Some(c)) if mw.eq_ignore_ascii_case("avalanche") || mw.eq_ignore_ascii_case("malware") => {
            family_from_code(c).or(Some(c.as_str()))
        }
        (Some(mw), _) => Some(mw.as_str()),
        (None, Some(c)) => family_from_code(c).or(Some(c.as_str())),
        (None, None) => None,
    };
    if let Some(f) = family {
        util::set(e, ctx, "malware.name", f)?;
    }
    for (k, v) in m {
        match k.as_str() {
            "SourceIp" => {}
            "Malware" => keep_extra(e, "malware", v),
            "ThreatCode" => keep_extra(e, "threat_code", v),
            "SourcePort" => set_json_opt(e, ctx, "source.port", v),
            "DestinationIp" => destination_ip(e, ctx, v),
            "DestinationPort" => set_json_opt(e, ctx, "destination.port", v),
            "DateTimeReceivedUtc" => set_json_opt(e, ctx, "time.source", v),
            // The same instant as DateTimeReceivedUtc, as prose.
            "DateTimeReceivedUtcTxt" => {}
            "TLP" => tlp(e, ctx, v),
            "ThreatConfidence" => keep_extra(e, "threat_confidence", v),
            "TotalEncounters" => keep_extra(e, "total_encounters", v),
            "DataFeed" => keep_extra(e, "data_feed", v),
            "SourcedFrom" => {
                if let Some(t) = json_text(v) {
                    e.set_attr("event_description.text", Value::Str(t.into()));
                }
            }
            "TargetIp" => keep_extra(e, "target_ip", v),
            "TargetPort" => keep_extra(e, "target_port", v),
            "SourceIpInfo" | "DestinationIpInfo" => {
                let side = if k == "SourceIpInfo" { "source" } else { "destination" };
                if let Some(info) = v.as_object() {
                    ip_info(e, ctx, side, info);
                }
            }
            "HttpInfo" => {
                for (hk, hv) in v.as_object().into_iter().flatten() {
                    let key = match hk.as_str() {
                        "HttpUserAgent" => "extra.user_agent".to_string(),
                        other => {
                            format!("extra.http.{}", other.trim_start_matches("Http").to_ascii_lowercase())
                        }
                    };
                    if let Some(val) = json_value(hv) {
                        e.set_attr(&key, val);
                    }
                }
            }
            "CustomInfo" => {
                for (ck, cv) in v.as_object().into_iter().flatten() {
                    let n = ck.trim_start_matches("CustomField");
                    if let Some(val) = json_value(cv) {
                        e.set_attr(&format!("extra.custom_field{n}"), val);
                    }
                }
            }
            "Payload" => payload(e, v),
            _ => keep_extra(e, k, v),
        }
    }
    Ok(())
}

/// `SourceIpInfo` / `DestinationIpInfo`: AS and geolocation of the address.
fn ip_info(e: &mut Event, ctx: &ParseContext<'_>, side: &str, info: &Map<String, Json>) {
    let prefix = if side == "source" { "SourceIp" } else { "DestinationIp" };
    for (k, v) in info {
        let field = k.strip_prefix(prefix).unwrap_or(k);
        match field {
            "AsnNumber" => set_json_opt(e, ctx, &format!("{side}.asn"), v),
            "AsnOrgName" => set_json_opt(e, ctx, &format!("{side}.as_name"), v),
            "CountryCode" => set_json_opt(e, ctx, &format!("{side}.geolocation.cc"), v),
            "Region" | "City" | "Latitude" | "Longitude" => {
                if let Some(val) = json_value(v) {
                    e.set_attr(&format!("{side}.geolocation.{}", field.to_ascii_lowercase()), val);
                }
            }
            // The address again, as an integer.
            "v4Int" => {}
            "PostalCode" | "MetroCode" | "AreaCode" => {
                let name = match field {
                    "PostalCode" => "postal_code",
                    "MetroCode" => "metro_code",
                    _ => "area_code",
                };
                // Zero means "none" for the numeric codes.
                if v.as_i64() != Some(0)
                    && let Some(val) = json_value(v)
                {
                    e.set_attr(&format!("extra.{side}.geolocation.{name}"), val);
                }
            }
            "ConnectionType" => {
                if let Some(val) = json_value(v) {
                    e.set_attr(&format!("extra.{side}.connection_type"), val);
                }
            }
            _ => {
                if let Some(val) = json_value(v) {
                    e.set_attr(
                        &format!("extra.{side}.{}", extra_key(field).trim_start_matches("extra.")),
                        val,
                    );
                }
            }
        }
    }
}

/// The sinkhole's payload: base64 of a JSON object (flattened into `extra.payload.*`) or of
/// text; some records carry the JSON unencoded. `AA==` is an encoded NUL: nothing.
fn payload(e: &mut Event, v: &Json) {
    use base64::Engine as _;
    let Some(text) = json_text(v) else { return };
    if text == "AA==" {
        return;
    }
    let decoded = match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(o)) => Json::Object(o),
        _ => match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
            Ok(bytes) => match serde_json::from_slice::<Json>(&bytes) {
                Ok(Json::Object(o)) => Json::Object(o),
                _ => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
            },
            Err(_) => Json::String(text.clone()),
        },
    };
    match decoded {
        Json::Object(o) => {
            for (k, v) in &o {
                if let Some(val) = json_value(v) {
                    e.set_attr(&format!("extra.payload.{}", extra_key(k).trim_start_matches("extra.")), val);
                }
            }
        }
        other => {
            if let Some(val) = json_value(&other) {
                e.set_attr("extra.payload.text", val);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::{Collected, Tlp};

    fn run(id: &str, data: &'static [u8]) -> Collected {
        crate::util::parse_feed(&super::PROVIDER, id, data)
    }

    #[test]
    fn threat_codes() {
        assert_eq!(family_from_code("B67-SS-TINBA"), Some("TINBA"));
        assert_eq!(family_from_code("B106-Jenxcus"), Some("Jenxcus"));
        assert_eq!(family_from_code("B85-R2S"), None);
        assert_eq!(family_from_code("Conficker"), None);
    }

    #[test]
    fn azure_record() {
        let out = run(
            "microsoft_ctip_azure",
            br#"{"Malware":"Avalanche","ThreatCode":"B67-SS-Gamarue","TLP":"Amber","SourceIp":"224.0.5.8","DateTimeReceivedUtc":132651352622420000,"SourceIpInfo":{"SourceIpAsnNumber":"64496","SourceIpv4Int":1},"Payload":"dGhpcyBpcyBqdXN0IHNvbWUgdGV4dA=="}
{"SourceIp":"nope"}
"#,
        );
        assert_eq!(out.events.len(), 1);
        let e = &out.events[0];
        assert_eq!(e.malware_name.as_deref(), Some("andromeda"));
        assert_eq!(e.tlp, Some(Tlp::Amber));
        assert_eq!(e.source.asn, Some(64496));
        assert_eq!(e.time_source.unwrap().to_rfc3339(), "2021-05-10T15:47:42.242000+00:00");
        assert_eq!(e.attr("extra.payload.text").unwrap().as_str(), Some("this is just some text"));
        assert_eq!(out.rejects.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert_eq!(run("microsoft_ctip", b"").rejects.len(), 1);
        assert_eq!(run("microsoft_ctip", b"[{\"networksourceipv4\": \"1.2").rejects.len(), 1);
        assert_eq!(run("microsoft_ctip", b"{}").rejects.len(), 1);
        assert_eq!(run("microsoft_ctip", b"[1, {}]").rejects.len(), 2);
        assert!(run("microsoft_ctip_azure", b"").rejects.is_empty());
        assert_eq!(run("microsoft_ctip_azure", b"\xff\x00\n{\"SourceIp\": \"1.2").rejects.len(), 2);
    }
}

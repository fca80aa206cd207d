//! The DROP family: text lists and their NDJSON variants.

use crate::generic::shared::{json_text, keep_extra};
use crate::util::{self, Line};
use crate::{ParseContext, Parser};
use botwatch_model::{ClassificationType, Event, Sink, Timestamp, Value, parse_timestamp};
use bytes::Bytes;
use serde_json::Value as Json;

/// `DROP`/`EDROP`/`DROPv6` (`asn: false`) or `ASN-DROP` (`asn: true`) text.
pub(super) struct Text {
    pub(super) asn: bool,
}

impl Parser for Text {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut modified: Option<Timestamp> = None;
        for line in util::lines(input) {
            let text = line.text();
            let t = text.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(c) = t.strip_prefix(';') {
                if let Some(v) = c.trim().strip_prefix("Last-Modified:") {
                    modified = parse_timestamp(v.trim());
                }
                continue;
            }
            let mut e = util::event(ctx, ClassificationType::Blocklist, &line);
            e.time_source = modified;
            let (left, right) = t.split_once(';').unwrap_or((t, ""));
            let res = if self.asn {
                asn_line(&mut e, ctx, left, right)
            } else {
                network_line(&mut e, ctx, left, right)
            };
            match res {
                Ok(()) => sink.event(e),
                Err(m) => util::reject(sink, line.number, line.raw.clone(), m),
            }
        }
    }
}

fn network_line(e: &mut Event, ctx: &ParseContext<'_>, net: &str, sbl: &str) -> Result<(), String> {
    let net = net.trim();
    if !net.contains('/') {
        return Err(format!("source.network: not a CIDR network: {net:?}"));
    }
    util::set(e, ctx, "source.network", net)?;
    let sbl = sbl.trim();
    if !sbl.is_empty() {
        e.set_attr("extra.blocklist", Value::Str(sbl.into()));
    }
    Ok(())
}

fn asn_line(e: &mut Event, ctx: &ParseContext<'_>, asn: &str, rest: &str) -> Result<(), String> {
    util::set(e, ctx, "source.asn", asn.trim())?;
    let (cc, name) = rest.split_once('|').unwrap_or((rest, ""));
    util::set_opt(e, ctx, "source.geolocation.cc", cc);
    util::set_opt(e, ctx, "source.as_name", name);
    // An AS number alone is not a subject the harness or IntelMQ consumers recognise as
    // naming anything; say which list it is on.
    e.set_attr("event_description.text", Value::Str("AS listed on Spamhaus ASN-DROP".into()));
    Ok(())
}

/// NDJSON `drop_v4.json`, `drop_v6.json` and `asndrop.json`.
pub(super) struct Ndjson;

impl Parser for Ndjson {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        // The metadata record comes last but dates every entry, so look for it first.
        let generated = util::lines(input)
            .filter_map(|l| serde_json::from_slice::<Json>(&l.raw).ok())
            .find(|v| v.get("type").and_then(Json::as_str) == Some("metadata"))
            .and_then(|m| m.get("timestamp").and_then(json_text))
            .and_then(|t| parse_timestamp(&t));
        for line in util::lines(input) {
            if line.raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Json = match serde_json::from_slice(&line.raw) {
                Ok(v) => v,
                Err(err) => {
                    util::reject(sink, line.number, line.raw.clone(), format!("not a JSON record: {err}"));
                    continue;
                }
            };
            let Json::Object(map) = &v else {
                util::reject(sink, line.number, line.raw.clone(), "record is not a JSON object");
                continue;
            };
            if map.get("type").and_then(Json::as_str) == Some("metadata") {
                continue;
            }
            if let Err(m) = record(map, ctx, &line, generated, sink) {
                util::reject(sink, line.number, line.raw.clone(), m);
            }
        }
    }
}

fn record(
    map: &serde_json::Map<String, Json>,
    ctx: &ParseContext<'_>,
    line: &Line,
    generated: Option<Timestamp>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let mut e = util::event(ctx, ClassificationType::Blocklist, line);
    e.time_source = generated;
    let text = |k: &str| map.get(k).and_then(json_text);
    if let Some(cidr) = text("cidr") {
        network_line(&mut e, ctx, &cidr, "")?;
    } else if let Some(asn) = text("asn") {
        util::set(&mut e, ctx, "source.asn", &asn)?;
    } else {
        return Err("record has neither cidr nor asn".into());
    }
    for (k, v) in map {
        match k.as_str() {
            "cidr" | "asn" => {}
            "sblid" => keep_extra(&mut e, "blocklist", v),
            "asname" => {
                if let Some(t) = json_text(v) {
                    util::set_opt(&mut e, ctx, "source.as_name", &t);
                }
            }
            "cc" => {
                if let Some(t) = json_text(v) {
                    util::set_opt(&mut e, ctx, "source.geolocation.cc", &t);
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

    use crate::spamhaus::PROVIDER;
    use botwatch_model::{Collected, Timestamp};

    fn run(id: &str, data: &'static [u8]) -> Collected {
        crate::util::parse_feed(&PROVIDER, id, data)
    }

    #[test]
    fn text_lists() {
        let out = run(
            "spamhaus_drop",
            b"; Last-Modified: Fri, 17 Jan 2025 17:03:47 GMT\n1.10.16.0/20 ; SBL256894\n2a06:e480::/29 ; SBL1\n1.2.3.4 ; SBL2\n",
        );
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0].time_source.unwrap().to_rfc3339(), "2025-01-17T17:03:47+00:00");
        assert_eq!(out.rejects.len(), 1);
        let out = run("spamhaus_asndrop", b"AS260 ; AE | XCONNECT24\nAS10516 ; | Orb-bit\nASX ; | y\n");
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0].source.asn, Some(260));
        assert_eq!(out.events[1].source.cc, None);
        assert_eq!(out.rejects.len(), 1);
    }

    #[test]
    fn ndjson_with_metadata() {
        let out = run(
            "spamhaus_drop_json",
            b"{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n{\"cidr\":\"x\"}\n{\"type\":\"metadata\",\"timestamp\":1744682874}\n",
        );
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].time_source, Some(Timestamp::from_secs(1744682874)));
        assert_eq!(out.rejects.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        for id in ["spamhaus_drop", "spamhaus_asndrop", "spamhaus_drop_json", "spamhaus_cert"] {
            let out = run(id, b"");
            assert!(out.events.is_empty() && out.rejects.is_empty());
            let out = run(id, b"\x00\xff garbage\n{\"cidr\":\"1.2.");
            assert!(out.events.is_empty());
            assert_eq!(out.rejects.len(), 2, "{id}");
        }
    }
}

//! XARF v4: the JSON abuse-report format CERTs and ISPs exchange (github.com/xarf/xarf-spec,
//! schema 4.x; AbuseIO and the `xarf` libraries read and write it), arriving as the body or
//! attachment of an abuse mail, or as JSON Lines (one report per line, as botwatch's own
//! daily reports are written). Both shapes of the spec are read:
//!
//! - 4.x (`xarf_version`, `category`, `type`, `source_identifier`, `source_port`,
//!   `first_seen`/`timestamp`, `bot_name`/`malware_family`, `destination_ip`, …);
//! - the earlier 4.0 draft (`Version: "4"`, `ReporterInfo`, `Report` with `ReportClass`,
//!   `ReportType`, `SourceIp`, `SourcePort`, `Date`).
//!
//! The category and type decide the classification (an infected host or botnet member is an
//! `infected-system`); an unknown pair is `undetermined`, with a schema-drift warning once. The
//! report id, reporter and description are kept under `extra.xarf.*` and
//! `event_description.text`.

use crate::generic::shared::{contains_ci, spec};
use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{ClassificationType as T, Sink, Value, Warning, WarningKind};
use bytes::Bytes;
use serde_json::Value as J;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "xarf", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    vec![spec(
        "xarf_v4",
        "XARF v4 abuse reports",
        "XARF",
        70.0,
        "https://github.com/xarf/xarf-spec",
        "Abuse reports in XARF v4 JSON (one document, an array, or JSON Lines), as mailed between CERTs and ISPs",
        Arc::new(Report),
    )]
}

fn detect(_name: Option<&str>, head: &[u8]) -> Option<String> {
    let t = head.iter().position(|b| !b.is_ascii_whitespace()).map(|i| head[i]);
    if !matches!(t, Some(b'{') | Some(b'[')) {
        return None;
    }
    (contains_ci(head, "\"xarf_version\"")
        || (contains_ci(head, "\"ReportClass\"") && contains_ci(head, "\"Version\"")))
    .then(|| "xarf_v4".to_string())
}

/// (category, type) → classification, lower-case as the 4.x schemas name them.
fn classify(category: &str, ty: &str) -> Option<T> {
    Some(match (category, ty) {
        ("connection", "infected_host") | ("infrastructure", "botnet") => T::InfectedSystem,
        ("infrastructure", "compromised_server") => T::SystemCompromise,
        ("connection", "ddos") => T::Ddos,
        ("connection", "port_scan") | ("connection", "scan") => T::Scanner,
        ("connection", "login_attack") | ("connection", "brute_force") => T::BruteForce,
        ("connection", "vulnerability_scan") | ("connection", "sql_injection") => T::Exploit,
        ("messaging", "spam") | ("messaging", "bulk_messaging") => T::Spam,
        ("content", "phishing") => T::Phishing,
        ("content", "malware") => T::MalwareDistribution,
        ("vulnerability", _) => T::VulnerableSystem,
        // The 4.0 draft's classes and types.
        ("activity", "botnet") | ("activity", "malware") | ("malware", _) => T::InfectedSystem,
        ("activity", "login-attack") => T::BruteForce,
        ("activity", "port-scan") => T::Scanner,
        ("activity", "ddos") => T::Ddos,
        ("activity", "spam") => T::Spam,
        ("content", "phishing-site") => T::Phishing,
        _ => return None,
    })
}

struct Report;

impl Parser for Report {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut warned: Vec<String> = Vec::new();
        // JSON Lines when every non-empty line is a whole object; else one document.
        let lines: Vec<util::Line> = util::lines(input).filter(|l| !l.text().trim().is_empty()).collect();
        let jsonl = lines.len() > 1
            && lines.iter().all(|l| {
                let t = l.text();
                let t = t.trim();
                t.starts_with('{') && t.ends_with('}')
            });
        if jsonl {
            for line in &lines {
                match serde_json::from_slice::<J>(&line.raw) {
                    Ok(v) => one(&v, line, ctx, sink, &mut warned),
                    Err(e) => {
                        util::reject(sink, line.number, line.raw.clone(), format!("not a JSON object: {e}"))
                    }
                }
            }
            return;
        }
        let Some(doc) = util::json_document(input, sink, "XARF") else { return };
        let reports: Vec<&J> = match &doc {
            J::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for (i, v) in reports.into_iter().enumerate() {
            let line = util::Line { number: i as u64 + 1, raw: util::json_raw(v) };
            one(v, &line, ctx, sink, &mut warned);
        }
    }
}

fn text(v: Option<&J>) -> Option<String> {
    match v? {
        J::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        J::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn one(v: &J, line: &util::Line, ctx: &ParseContext<'_>, sink: &mut dyn Sink, warned: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        util::reject(sink, line.number, line.raw.clone(), "an XARF report must be a JSON object");
        return;
    };
    // The 4.0 draft nests the report; 4.x is flat.
    let (r, draft) = match obj.get("Report").and_then(J::as_object) {
        Some(r) => (r, true),
        None => (obj, false),
    };
    let get = |k4: &str, k40: &str| text(r.get(if draft { k40 } else { k4 }));
    let category = get("category", "ReportClass").unwrap_or_default().to_ascii_lowercase();
    let ty = get("type", "ReportType").unwrap_or_default().to_ascii_lowercase();
    let class = classify(&category, &ty);
    if class.is_none() {
        let pair = format!("{category}/{ty}");
        if !warned.contains(&pair) {
            sink.warning(Warning {
                kind: WarningKind::SchemaDrift,
                line: Some(line.number),
                message: format!(
                    "XARF category/type {pair:?} is not one botwatch classifies; events are 'undetermined'"
                ),
            });
            warned.push(pair);
        }
    }
    let mut e = util::event(ctx, class.unwrap_or(T::Undetermined), line);
    let Some(source) = get("source_identifier", "SourceIp") else {
        util::reject(sink, line.number, line.raw.clone(), "no source (source_identifier / SourceIp)");
        return;
    };
    // A source is an address, else a host name or URL (phishing, spam sources).
    let key = if source.parse::<std::net::IpAddr>().is_ok() {
        "source.ip"
    } else if source.contains("://") {
        "source.url"
    } else {
        "source.fqdn"
    };
    if let Err(m) = util::set(&mut e, ctx, key, &source) {
        util::reject(sink, line.number, line.raw.clone(), m);
        return;
    }
    let time =
        if draft { get("", "Date") } else { text(r.get("first_seen")).or_else(|| text(r.get("timestamp"))) };
    let Some(time) = time else {
        util::reject(sink, line.number, line.raw.clone(), "no time (first_seen / timestamp / Date)");
        return;
    };
    if let Err(m) = util::set(&mut e, ctx, "time.source", &time) {
        util::reject(sink, line.number, line.raw.clone(), m);
        return;
    }
    for (k4, k40, key) in [
        ("source_port", "SourcePort", "source.port"),
        ("destination_ip", "DestinationIp", "destination.ip"),
        ("destination_port", "DestinationPort", "destination.port"),
        ("protocol", "Protocol", "protocol.application"),
    ] {
        if let Some(x) = get(k4, k40) {
            util::set_opt(&mut e, ctx, key, &x);
        }
    }
    if let Some(f) =
        text(r.get("bot_name")).or_else(|| text(r.get("malware_family"))).or_else(|| get("", "MalwareFamily"))
    {
        let _ = util::set(&mut e, ctx, "malware.name", &f);
    }
    if let Some(d) = get("description", "Description") {
        e.set_attr("event_description.text", Value::Str(d.chars().take(2000).collect::<String>().into()));
    }
    if let Some(id) = text(obj.get("report_id")).or_else(|| text(obj.get("ReportID"))) {
        e.set_attr("extra.xarf.report_id", Value::Str(id.into()));
    }
    let reporter = obj
        .get("reporter")
        .and_then(|r| text(r.get("org")).or_else(|| text(r.get("contact"))))
        .or_else(|| obj.get("ReporterInfo").and_then(|r| text(r.get("ReporterOrg"))));
    if let Some(org) = reporter {
        e.set_attr("extra.xarf.reporter", Value::Str(org.into()));
    }
    e.set_attr("extra.xarf.category", Value::Str(format!("{category}/{ty}").into()));
    sink.event(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &'static [u8]) -> botwatch_model::Collected {
        crate::util::parse_feed(&super::PROVIDER, "xarf_v4", data)
    }

    #[test]
    fn infected_hosts_in_json_lines_as_botwatch_writes_them() {
        let data = br#"{"xarf_version":"4.2.0","report_id":"3f1c","timestamp":"2026-11-25T06:00:00Z","reporter":{"org":"Example CERT","contact":"cert@example.org","domain":"example.org"},"source_identifier":"192.0.2.10","source_port":49152,"category":"connection","type":"infected_host","protocol":"tcp","bot_type":"malicious","bot_name":"emotet","first_seen":"2026-11-24T10:00:00Z","last_seen":"2026-11-24T10:00:00Z","destination_ip":"198.51.100.7","destination_port":443}
{"xarf_version":"4.2.0","report_id":"3f1d","timestamp":"2026-11-25T06:00:00Z","reporter":{"org":"Example CERT"},"source_identifier":"192.0.2.11","category":"infrastructure","type":"botnet","malware_family":"mirai","timestamp":"2026-11-24T11:00:00Z"}
{"xarf_version":"4.2.0","category":"connection","type":"infected_host","first_seen":"2026-11-24T10:00:00Z"}
"#;
        let c = run(data);
        assert_eq!(c.events.len(), 2, "{:?}", c.rejects);
        let e = &c.events[0];
        assert_eq!(e.classification_type, T::InfectedSystem);
        assert_eq!(e.source.ip.map(|i| i.to_string()).as_deref(), Some("192.0.2.10"));
        assert_eq!(e.malware_name.as_deref(), Some("emotet"));
        assert_eq!(c.events[1].malware_name.as_deref(), Some("mirai"));
        assert_eq!(c.rejects.len(), 1, "the report without a source is kept as a reject");
        assert_eq!(c.rejects[0].line, 3);
    }

    #[test]
    fn the_draft_form_and_unknown_types() {
        let data = br#"[{"Version":"4","ReporterInfo":{"ReporterOrg":"Old CERT"},"Report":{"ReportClass":"Activity","ReportType":"Login-Attack","Date":"2018-02-05T14:17:10Z","SourceIp":"203.0.113.5","SourcePort":22}},
{"Version":"4","Report":{"ReportClass":"Oddity","ReportType":"Unusual","Date":"2018-02-05T14:17:10Z","SourceIp":"203.0.113.6"}}]"#;
        assert_eq!(detect(None, data), Some("xarf_v4".into()));
        let c = run(data);
        assert_eq!(c.events.len(), 2);
        assert_eq!(c.events[0].classification_type, T::BruteForce);
        assert_eq!(c.events[1].classification_type, T::Undetermined);
        assert_eq!(c.warnings.len(), 1);
        assert!(detect(None, b"\"timestamp\",\"ip\"\n").is_none());
    }
}

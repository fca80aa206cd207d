//! Daily reports per network owner: CSV, JSON and XARF v4. Pure: rows in, bytes out.
//!
//! XARF v4 (github.com/xarf/xarf-spec, schema 4.2.0) is the JSON abuse-report format
//! receivers' tooling parses (AbuseIO, the `xarf` libraries): one JSON object per incident,
//! written as JSON Lines. An infected machine seen on a known transport is a
//! `connection`/`infected_host` report (`bot_type: malicious`, the family as `bot_name`); one
//! whose transport the feed did not give is an `infrastructure`/`botnet` report (the family
//! as `malware_family`, the contacted C2 as `c2_server`), since `infected_host` requires a
//! `protocol` and botwatch does not invent one. Every report names the reporter, the source
//! feed, the time, port and ASN (as tags and in the description: no XARF type has ASN
//! fields), and carries the feed's original line as base64 evidence with its SHA-256.
//! `report_id` is a name-based UUID over what the report is about, so regenerating a day's
//! reports gives the same ids and receivers can deduplicate.
//!
//! The legacy X-ARF 0.2 mail form is no longer written: no maintained validator for it
//! exists, and receivers that take XARF take v4.

use base64::Engine;
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// One sighting to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub time: Timestamp,
    pub ip: IpAddr,
    /// Source port (what an ISP needs to find the subscriber behind a CGNAT address).
    pub port: Option<u16>,
    /// The network the address is announced from (offline IP → ASN data).
    pub asn: Option<u32>,
    pub classification_type: String,
    pub malware: Option<String>,
    /// The source feed's id (`shadowserver_event4_sinkhole`, …).
    pub feed: String,
    pub subscriber: Option<String>,
    /// What the machine contacted (`ip:port` or a name), when the feed said.
    #[serde(default)]
    pub destination: Option<String>,
    /// `protocol.transport` as the feed gave it (`tcp`, `udp`, …).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The feed's original line, quoted as evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Vec<u8>>,
    /// The case the sighting belongs to.
    #[serde(default)]
    pub case_id: Option<i64>,
}

/// An XARF party (`reporter`, `sender`): exactly these three fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub org: String,
    pub contact: String,
    pub domain: String,
}

impl Party {
    /// From an RFC 5322 mailbox (`Name <addr@domain>` or `addr@domain`); the display name,
    /// else the domain, is the organisation. `None` without an address.
    pub fn from_mailbox(mailbox: &str) -> Option<Party> {
        let s = mailbox.trim();
        let (name, addr) = match (s.rfind('<'), s.rfind('>')) {
            (Some(a), Some(b)) if a < b => (s[..a].trim().trim_matches('"').trim(), s[a + 1..b].trim()),
            _ => ("", s),
        };
        let (_, domain) = addr.rsplit_once('@').filter(|(l, d)| !l.is_empty() && !d.is_empty())?;
        let org = if name.is_empty() { domain } else { name };
        Some(Party { org: org.chars().take(200).collect(), contact: addr.into(), domain: domain.into() })
    }
}

/// Who reports to whom, about which day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The network owner's id.
    pub owner: String,
    /// Its name, as the reports address it.
    pub owner_name: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub generated_at: Timestamp,
    /// XARF `reporter` and `sender`.
    pub reporter: Party,
    /// The owner's abuse address.
    pub reported_to: String,
}

impl ReportMeta {
    pub fn new(
        owner: &str,
        owner_name: &str,
        day: &str,
        generated_at: Timestamp,
        reporter: Party,
        to: &str,
    ) -> ReportMeta {
        ReportMeta {
            owner: owner.into(),
            owner_name: if owner_name.is_empty() { owner.into() } else { owner_name.into() },
            day: day.into(),
            generated_at,
            reporter,
            reported_to: to.into(),
        }
    }
}

const COLUMNS: [&str; 11] =
    ["time", "ip", "port", "asn", "type", "malware", "feed", "destination", "protocol", "subscriber", "case"];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// CSV with a header row; times in RFC 3339 UTC.
pub fn csv(rows: &[ReportRow]) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    for r in rows {
        let _ = w.write_record([
            r.time.to_rfc3339(),
            r.ip.to_string(),
            opt(&r.port),
            opt(&r.asn),
            r.classification_type.clone(),
            opt(&r.malware),
            r.feed.clone(),
            opt(&r.destination),
            opt(&r.protocol),
            opt(&r.subscriber),
            opt(&r.case_id),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// `{"owner", "owner_name", "day", "generated_at", "count", "rows": [...]}`.
pub fn json(meta: &ReportMeta, rows: &[ReportRow]) -> Vec<u8> {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "time": r.time, "ip": r.ip, "port": r.port, "asn": r.asn, "type": r.classification_type,
                "malware": r.malware, "feed": r.feed, "destination": r.destination, "protocol": r.protocol,
                "subscriber": r.subscriber, "case": r.case_id,
            })
        })
        .collect();
    let doc = json!({
        "owner": meta.owner, "owner_name": meta.owner_name, "day": meta.day, "generated_at": meta.generated_at,
        "count": rows.len(), "rows": rows,
    });
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// The XARF spec version the reports claim (and the `xarf` validator checks against).
pub const XARF_VERSION: &str = "4.2.0";

/// A tag value: XARF tags are `namespace:value` in `[a-z0-9_+-]`.
fn tag_value(s: &str) -> Option<String> {
    let v: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-') { c } else { '-' })
        .collect();
    let v = v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    (!v.is_empty()).then_some(v)
}

/// `destination` as an address and port, when it is one (`ip`, `ip:port`, `[v6]:port`).
fn destination_addr(d: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = d.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let sa: std::net::SocketAddr = d.parse().ok()?;
    Some((sa.ip(), Some(sa.port()).filter(|p| *p > 0)))
}

/// One XARF v4 report per row.
pub fn xarf(meta: &ReportMeta, rows: &[ReportRow]) -> Vec<Value> {
    rows.iter().map(|r| xarf_one(meta, r)).collect()
}

/// The reports as JSON Lines (one object per line).
pub fn xarf_jsonl(meta: &ReportMeta, rows: &[ReportRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in xarf(meta, rows) {
        if serde_json::to_writer(&mut out, &v).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

fn xarf_one(meta: &ReportMeta, r: &ReportRow) -> Value {
    let family = r.malware.as_deref().filter(|m| !m.is_empty());
    let when = r.time.to_rfc3339();
    let key = format!(
        "{}|{}|{}|{}|{}|{}|{}",
        meta.reporter.domain,
        meta.owner,
        r.ip,
        opt(&r.port),
        r.time.micros(),
        r.feed,
        family.unwrap_or(&r.classification_type)
    );
    let report_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("botwatch:xarf:{key}").as_bytes());
    let protocol = r.protocol.as_deref().map(str::to_ascii_lowercase).filter(|p| p == "tcp" || p == "udp");
    let dest = r.destination.as_deref().and_then(destination_addr);
    let mut tags: Vec<String> = Vec::new();
    if let Some(f) = family.and_then(tag_value) {
        tags.push(format!("malware:{f}"));
    }
    if let Some(a) = r.asn {
        tags.push(format!("asn:{a}"));
    }
    if let Some(f) = tag_value(&r.feed) {
        tags.push(format!("feed:{f}"));
    }
    if let Some(t) = tag_value(&r.classification_type) {
        tags.push(format!("classification:{t}"));
    }
    let port = r.port.filter(|p| *p > 0);
    let where_ = match (port, r.asn) {
        (Some(p), Some(a)) => format!("{}:{p} (AS{a})", r.ip),
        (Some(p), None) => format!("{}:{p}", r.ip),
        (None, Some(a)) => format!("{} (AS{a})", r.ip),
        (None, None) => r.ip.to_string(),
    };
    let what =
        family.map(|f| format!("{f} ({})", r.classification_type)).unwrap_or(r.classification_type.clone());
    let mut description = format!(
        "To {}: {where_} was seen at {when} with traffic of {what}{}, reported by the feed {}.",
        meta.owner_name,
        r.destination.as_deref().map(|d| format!(" to {d}")).unwrap_or_default(),
        r.feed
    );
    description.truncate(description.floor_char_boundary(1000));
    let evidence_source =
        if r.feed.starts_with("botwatch_sensor") { "traffic_analysis" } else { "threat_intelligence" };
    let mut v = json!({
        "xarf_version": XARF_VERSION,
        "report_id": report_id.to_string(),
        "timestamp": meta.generated_at.to_rfc3339(),
        "reporter": meta.reporter,
        "sender": meta.reporter,
        "source_identifier": r.ip.to_string(),
        "evidence_source": evidence_source,
        "description": description,
        "tags": tags,
    });
    let o = v.as_object_mut().expect("a JSON object literal");
    if let Some(p) = port {
        o.insert("source_port".into(), p.into());
    }
    match protocol {
        Some(proto) => {
            o.insert("category".into(), "connection".into());
            o.insert("type".into(), "infected_host".into());
            o.insert("protocol".into(), proto.into());
            o.insert("bot_type".into(), "malicious".into());
            if let Some(f) = family {
                o.insert("bot_name".into(), f.into());
            }
            o.insert("first_seen".into(), when.clone().into());
            o.insert("last_seen".into(), when.clone().into());
            if let Some((ip, dport)) = dest {
                o.insert("destination_ip".into(), ip.to_string().into());
                if let Some(p) = dport {
                    o.insert("destination_port".into(), p.into());
                }
            }
        }
        None => {
            o.insert("category".into(), "infrastructure".into());
            o.insert("type".into(), "botnet".into());
            o.insert(
                "compromise_evidence".into(),
                format!("{what} seen at {when} by the feed {}", r.feed).into(),
            );
            if let Some(f) = family {
                o.insert("malware_family".into(), f.chars().take(200).collect::<String>().into());
            }
            if let Some(d) = &r.destination {
                o.insert("c2_server".into(), d.clone().into());
            }
        }
    }
    if let Some(raw) = r.raw.as_ref().filter(|b| !b.is_empty()) {
        let hash = Sha256::digest(raw);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let mut desc = format!("The line of the feed {} this report is made from", r.feed);
        desc.truncate(desc.floor_char_boundary(500));
        o.insert(
            "evidence".into(),
            json!([{
                "content_type": "text/plain",
                "description": desc,
                "payload": base64::engine::general_purpose::STANDARD.encode(raw),
                "hash": format!("sha256:{hex}"),
                "size": raw.len().min(5_242_880),
            }]),
        );
    }
    v
}

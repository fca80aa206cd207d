//! Daily reports per network owner: CSV, JSON and X-ARF. Pure: rows in, bytes out.
//!
//! X-ARF (v0.2, http://x-arf.org) is the abuse-reporting container German and Dutch ISPs'
//! abuse tooling (AbuseIO, the AISI's tools) parse: one e-mail per incident, `multipart/mixed`
//! with a human-readable part, a YAML `report.txt` carrying the schema's fields, and the
//! evidence as a third part. Header `X-XARF: PLAIN` marks it.

use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::net::IpAddr;

/// One sighting (or one case) to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub time: Timestamp,
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub asn: Option<u32>,
    pub classification_type: String,
    pub malware: Option<String>,
    pub feed: String,
    pub subscriber: Option<String>,
}

/// Who reports to whom, about which day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The network owner (organisation id or name).
    pub owner: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub generated_at: Timestamp,
    /// X-ARF `Reported-From` and the e-mail `From`.
    pub reported_from: String,
    /// X-ARF e-mail `To` (the owner's abuse address).
    pub reported_to: String,
    /// X-ARF schema the reports claim.
    pub xarf_schema_url: String,
    pub xarf_report_type: String,
}

impl ReportMeta {
    pub fn new(owner: &str, day: &str, generated_at: Timestamp, from: &str, to: &str) -> ReportMeta {
        ReportMeta {
            owner: owner.into(),
            day: day.into(),
            generated_at,
            reported_from: from.into(),
            reported_to: to.into(),
            xarf_schema_url: "http://www.x-arf.org/schema/abuse_malware-attack_0.1.2.json".into(),
            xarf_report_type: "malware-attack".into(),
        }
    }
}

const COLUMNS: [&str; 8] = ["time", "ip", "port", "asn", "type", "malware", "feed", "subscriber"];

/// CSV with a header row; times in RFC 3339 UTC.
pub fn csv(rows: &[ReportRow]) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    for r in rows {
        let _ = w.write_record([
            r.time.to_rfc3339(),
            r.ip.to_string(),
            r.port.map(|p| p.to_string()).unwrap_or_default(),
            r.asn.map(|a| a.to_string()).unwrap_or_default(),
            r.classification_type.clone(),
            r.malware.clone().unwrap_or_default(),
            r.feed.clone(),
            r.subscriber.clone().unwrap_or_default(),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// `{"owner", "day", "generated_at", "count", "rows": [...]}`.
pub fn json(meta: &ReportMeta, rows: &[ReportRow]) -> Vec<u8> {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "time": r.time, "ip": r.ip, "port": r.port, "asn": r.asn, "type": r.classification_type,
                "malware": r.malware, "feed": r.feed, "subscriber": r.subscriber,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "owner": meta.owner, "day": meta.day, "generated_at": meta.generated_at,
        "count": rows.len(), "rows": rows,
    });
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// A YAML scalar that no YAML parser reads as anything but this string.
fn yaml_str(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("'{}'", clean.replace('\'', "''"))
}

fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// One X-ARF message (RFC 5322 bytes, CRLF line ends) per row.
pub fn xarf(meta: &ReportMeta, rows: &[ReportRow]) -> Vec<Vec<u8>> {
    rows.iter().enumerate().map(|(i, r)| xarf_one(meta, i, r)).collect()
}

fn xarf_one(meta: &ReportMeta, i: usize, r: &ReportRow) -> Vec<u8> {
    let domain = meta.reported_from.rsplit_once('@').map(|x| x.1).unwrap_or("botwatch.invalid");
    let owner_slug: String = meta
        .owner
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let report_id = format!("{}-{}-{}@{}", meta.day, owner_slug, i + 1, header_safe(domain));
    let boundary = format!("=_botwatch_xarf_{}_{}", meta.generated_at.secs(), i + 1);
    let date = r.time.to_datetime().to_rfc2822();
    let source_type = if r.ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let malware = r.malware.as_deref().unwrap_or("unknown");

    let mut human = String::new();
    let _ = writeln!(human, "Dear {},", meta.owner);
    let _ = writeln!(human);
    let _ = writeln!(
        human,
        "the address {} in your network was seen at {} UTC",
        r.ip,
        r.time.to_datetime().format("%Y-%m-%d %H:%M:%S")
    );
    let _ = writeln!(
        human,
        "with traffic typical of {malware} ({}), reported by {}.",
        r.classification_type, r.feed
    );
    let _ = writeln!(human, "Please identify and help clean the affected system.");
    let _ = writeln!(human);
    let _ = writeln!(human, "This is an X-ARF report (http://x-arf.org); the machine-readable part follows.");

    let mut yaml = String::new();
    let _ = writeln!(yaml, "Reported-From: {}", yaml_str(&meta.reported_from));
    let _ = writeln!(yaml, "Category: abuse");
    let _ = writeln!(yaml, "Report-Type: {}", yaml_str(&meta.xarf_report_type));
    let _ = writeln!(yaml, "Service: {}", yaml_str(malware));
    let _ = writeln!(yaml, "Version: '0.2'");
    let _ = writeln!(yaml, "User-Agent: 'botwatch {}'", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(yaml, "Date: {}", yaml_str(&date));
    let _ = writeln!(yaml, "Source-Type: {source_type}");
    let _ = writeln!(yaml, "Source: {}", yaml_str(&r.ip.to_string()));
    if let Some(p) = r.port {
        let _ = writeln!(yaml, "Port: {p}");
    }
    let _ = writeln!(yaml, "Report-ID: {}", yaml_str(&report_id));
    let _ = writeln!(yaml, "Schema-URL: {}", yaml_str(&meta.xarf_schema_url));
    let _ = writeln!(yaml, "Attachment: text/plain");
    let _ = writeln!(yaml, "Occurrences: 1");
    let _ = writeln!(yaml, "TLP: amber");

    let mut evidence = String::new();
    let _ = writeln!(evidence, "{}", COLUMNS.join(","));
    let one = csv(std::slice::from_ref(r));
    let body = String::from_utf8_lossy(&one);
    let _ = write!(evidence, "{}", body.lines().nth(1).unwrap_or(""));
    let _ = writeln!(evidence);

    let mut m = String::new();
    let _ = writeln!(m, "From: {}", header_safe(&meta.reported_from));
    let _ = writeln!(m, "To: {}", header_safe(&meta.reported_to));
    let _ = writeln!(m, "Subject: abuse report about {} - {}", r.ip, r.time.to_datetime().format("%Y-%m-%d"));
    let _ = writeln!(m, "Date: {}", meta.generated_at.to_datetime().to_rfc2822());
    let _ = writeln!(m, "Message-ID: <{report_id}>");
    let _ = writeln!(m, "MIME-Version: 1.0");
    let _ = writeln!(m, "Auto-Submitted: auto-generated");
    let _ = writeln!(m, "X-XARF: PLAIN");
    let _ = writeln!(m, "X-ARF: YES");
    let _ = writeln!(m, "Content-Type: multipart/mixed; boundary=\"{boundary}\"");
    let _ = writeln!(m);
    let _ = writeln!(m, "This is a multi-part message in MIME format.");
    let part = |m: &mut String, extra: &str, body: &str| {
        let _ = writeln!(m, "--{boundary}");
        let _ = writeln!(m, "Content-Type: text/plain; charset=utf-8{extra}");
        let _ = writeln!(m, "Content-Transfer-Encoding: 8bit");
        let _ = writeln!(m);
        let _ = write!(m, "{body}");
    };
    part(&mut m, "", &human);
    part(&mut m, "; name=\"report.txt\"", &yaml);
    part(&mut m, "; name=\"evidence.txt\"", &evidence);
    let _ = writeln!(m, "--{boundary}--");
    m.replace('\n', "\r\n").into_bytes()
}

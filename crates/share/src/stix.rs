//! STIX 2.1 objects from observations.
//!
//! What one observation becomes:
//! - an indicator type (C2, malware distribution, configuration; DGA domains from the
//!   sensors): an `indicator` with its pattern, an `indicates` relationship to the
//!   family's `infrastructure` (command-and-control or hosting-malware), and a `sighting`
//!   of the indicator by this node (count, first and last seen);
//! - an infected system: an `ipv4-addr`/`ipv6-addr`, the `observed-data` of it and a
//!   `sighting` of the family's `malware` — labelled as naming an address, so the gate
//!   keeps it home unless the partner is entitled to it.
//!
//! Reference objects (the producer's `identity`, each family's `malware` and
//! `infrastructure` with the `uses` relationship between them, TLP marking definitions) are
//! written once per export, before the first object that refers to them.
//!
//! Ids are deterministic ([`crate::ids`]) and independent of the producer for what two
//! nodes may both know (indicators, malware, infrastructure, observables), so a partner's
//! sighting of an indicator names the indicator by the id this node gave it too.

use crate::gate::Label;
use crate::ids;
use crate::tlp;
use botwatch_model::{Timestamp, Tlp};
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;

/// When reference objects (malware, infrastructure, identity) were "created": fixed, so
/// they are byte-identical on every export and every node.
pub const REFERENCE_TIME: &str = "2024-01-01T00:00:00.000Z";

/// STIX timestamp: UTC, millisecond precision.
pub fn time(t: Timestamp) -> String {
    match chrono::DateTime::from_timestamp_micros(t.micros()) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => REFERENCE_TIME.to_string(),
    }
}

/// The node that produces the objects.
#[derive(Debug, Clone)]
pub struct Producer {
    pub name: String,
    /// ISO 3166-1 alpha-2 of the node's country.
    pub country: Option<String>,
    pub contact: Option<String>,
    /// How unmarked observations are marked on the way out.
    pub default_tlp: Tlp,
}

impl Producer {
    pub fn identity_id(&self) -> String {
        ids::sdo("identity", &[&self.name])
    }

    pub fn identity(&self) -> Obj {
        let mut v = serde_json::json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": self.identity_id(),
            "created": REFERENCE_TIME,
            "modified": REFERENCE_TIME,
            "name": self.name,
            "identity_class": "organization",
            "sectors": ["government"],
        });
        if let Some(c) = &self.contact {
            v["contact_information"] = c.clone().into();
        }
        if let Some(c) = &self.country {
            v["description"] = format!("botwatch node, country {c}").into();
        }
        Obj::reference(v)
    }
}

/// One observation as the exporter reads it.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub subject: &'a str,
    pub classification_type: &'a str,
    pub family: &'a str,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// 0–100.
    pub confidence: f64,
    /// Strictest TLP of its events; `None` when none was marked.
    pub tlp: Option<Tlp>,
    /// The address lies inside this node's constituency.
    pub home: bool,
    /// How many feeds reported it.
    pub sources: u32,
}

/// A STIX object ready to send: its id, version, label and serialised body.
#[derive(Debug, Clone)]
pub struct Obj {
    pub id: String,
    pub ty: String,
    /// `modified` (or `created` for objects without one, as TAXII versions them).
    pub version: String,
    pub label: Label,
    pub body: String,
}

impl Obj {
    fn reference(v: serde_json::Value) -> Obj {
        Obj::from_value(v, Label { tlp: Some(Tlp::Clear), ..Default::default() })
    }

    /// An object from its JSON; `version` from `modified`, else `created`.
    pub fn from_value(v: serde_json::Value, label: Label) -> Obj {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let version = if v.get("modified").is_some() { s("modified") } else { s("created") };
        Obj { id: s("id"), ty: s("type"), version, label, body: v.to_string() }
    }

    fn typed<T: Serialize>(o: &T, id: String, ty: &str, version: String, label: Label) -> Obj {
        // Serialising a struct of strings cannot fail.
        let body = serde_json::to_string(o).unwrap_or_default();
        Obj { id, ty: ty.to_string(), version, label, body }
    }
}

/// What a subject is, as STIX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Ipv4,
    Ipv6,
    Domain,
    Url,
    Asn,
}

pub fn kind(subject: &str) -> SubjectKind {
    if let Ok(ip) = subject.parse::<IpAddr>() {
        return if ip.is_ipv4() { SubjectKind::Ipv4 } else { SubjectKind::Ipv6 };
    }
    if let Ok(n) = subject.parse::<ipnet::IpNet>() {
        return if matches!(n, ipnet::IpNet::V4(_)) { SubjectKind::Ipv4 } else { SubjectKind::Ipv6 };
    }
    if subject.contains("://") {
        return SubjectKind::Url;
    }
    if subject.strip_prefix("AS").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return SubjectKind::Asn;
    }
    SubjectKind::Domain
}

/// A STIX pattern string literal: backslash and quote escaped.
fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

pub fn pattern(subject: &str) -> String {
    match kind(subject) {
        SubjectKind::Ipv4 => format!("[ipv4-addr:value = '{}']", quote(subject)),
        SubjectKind::Ipv6 => format!("[ipv6-addr:value = '{}']", quote(subject)),
        SubjectKind::Url => format!("[url:value = '{}']", quote(subject)),
        SubjectKind::Asn => format!("[autonomous-system:number = {}]", &subject[2..]),
        SubjectKind::Domain => format!("[domain-name:value = '{}']", quote(subject)),
    }
}

/// The indicator id for a subject: the same on every node.
pub fn indicator_id(subject: &str) -> String {
    ids::sdo("indicator", &[&pattern(subject)])
}

pub fn malware_id(family: &str) -> String {
    ids::sdo("malware", &[&family.to_ascii_lowercase()])
}

/// Which infrastructure an indicator type points at, if any.
fn infrastructure_type(classification: &str) -> Option<&'static str> {
    match classification {
        "c2-server" => Some("command-and-control"),
        "malware-distribution" | "malware-configuration" => Some("hosting-malware"),
        _ => None,
    }
}

fn infrastructure_id(infra_type: &str, family: &str) -> String {
    ids::sdo("infrastructure", &[infra_type, &family.to_ascii_lowercase()])
}

#[derive(Serialize)]
struct Indicator<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    spec_version: &'static str,
    id: &'a str,
    created_by_ref: &'a str,
    created: &'a str,
    modified: &'a str,
    name: &'a str,
    indicator_types: [&'static str; 1],
    pattern: &'a str,
    pattern_type: &'static str,
    pattern_version: &'static str,
    description: &'a str,
    valid_from: &'a str,
    confidence: u8,
    object_marking_refs: [&'static str; 1],
}

#[derive(Serialize)]
struct Relationship<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    spec_version: &'static str,
    id: &'a str,
    created_by_ref: &'a str,
    created: &'a str,
    modified: &'a str,
    relationship_type: &'static str,
    source_ref: &'a str,
    target_ref: &'a str,
    object_marking_refs: [&'static str; 1],
}

#[derive(Serialize)]
struct Sighting<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    spec_version: &'static str,
    id: &'a str,
    created_by_ref: &'a str,
    created: &'a str,
    modified: &'a str,
    first_seen: &'a str,
    last_seen: &'a str,
    count: u64,
    sighting_of_ref: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_data_refs: Option<[&'a str; 1]>,
    where_sighted_refs: [&'a str; 1],
    object_marking_refs: [&'static str; 1],
}

#[derive(Serialize)]
struct ObservedData<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    spec_version: &'static str,
    id: &'a str,
    created_by_ref: &'a str,
    created: &'a str,
    modified: &'a str,
    first_observed: &'a str,
    last_observed: &'a str,
    number_observed: u64,
    object_refs: [&'a str; 1],
    object_marking_refs: [&'static str; 1],
}

#[derive(Serialize)]
struct Sco<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    spec_version: &'static str,
    id: &'a str,
    value: &'a str,
}

/// Turns observations into STIX objects; remembers which reference objects it has written.
pub struct Exporter {
    pub producer: Producer,
    identity_id: String,
    written: HashSet<String>,
    /// Classification types exported as indicators.
    indicator_types: Vec<String>,
}

impl Exporter {
    pub fn new(producer: Producer, indicator_types: Vec<String>) -> Exporter {
        let identity_id = producer.identity_id();
        Exporter { producer, identity_id, written: HashSet::new(), indicator_types }
    }

    /// Writes an object once per export (reference objects).
    fn once(&mut self, o: impl FnOnce() -> Obj, out: &mut dyn FnMut(Obj)) {
        // Ids are computed before the body, so a repeat costs a lookup, not a build.
        let obj = o();
        if self.written.insert(obj.id.clone()) {
            out(obj);
        }
    }

    /// The producer's identity and the marking definitions: first in every export.
    pub fn start(&mut self, out: &mut dyn FnMut(Obj)) {
        let ident = self.producer.identity();
        self.once(|| ident, out);
        for t in tlp::ALL.iter().filter(|t| **t != Tlp::Red) {
            self.once(|| Obj::reference(tlp::marking_object(*t)), out);
        }
    }

    fn family_objects(&mut self, family: &str, infra: Option<&str>, out: &mut dyn FnMut(Obj)) {
        let mid = malware_id(family);
        if !self.written.contains(&mid) {
            let v = serde_json::json!({
                "type": "malware", "spec_version": "2.1", "id": mid,
                "created_by_ref": self.identity_id,
                "created": REFERENCE_TIME, "modified": REFERENCE_TIME,
                "name": family, "is_family": true, "malware_types": ["bot"],
            });
            self.once(|| Obj::reference(v), out);
        }
        if let Some(it) = infra {
            let iid = infrastructure_id(it, family);
            if self.written.contains(&iid) {
                return;
            }
            let what = if it == "command-and-control" { "command and control" } else { "malware hosting" };
            let name =
                if family.is_empty() { format!("Unattributed {what}") } else { format!("{family} {what}") };
            let v = serde_json::json!({
                "type": "infrastructure", "spec_version": "2.1", "id": iid,
                "created_by_ref": self.identity_id,
                "created": REFERENCE_TIME, "modified": REFERENCE_TIME,
                "name": name, "infrastructure_types": [it],
            });
            self.once(|| Obj::reference(v), out);
            if !family.is_empty() {
                let rid = ids::sdo("relationship", &[&mid, "uses", &iid]);
                let r = Relationship {
                    ty: "relationship",
                    spec_version: "2.1",
                    id: &rid,
                    created_by_ref: &self.identity_id,
                    created: REFERENCE_TIME,
                    modified: REFERENCE_TIME,
                    relationship_type: "uses",
                    source_ref: &mid,
                    target_ref: &iid,
                    object_marking_refs: [tlp::marking_id(Tlp::Clear)],
                };
                let o = Obj::typed(
                    &r,
                    rid.clone(),
                    "relationship",
                    REFERENCE_TIME.into(),
                    Label { tlp: Some(Tlp::Clear), ..Default::default() },
                );
                self.once(|| o, out);
            }
        }
    }

    /// The objects one observation becomes (none for types not shared).
    pub fn row(&mut self, r: &Row<'_>, out: &mut dyn FnMut(Obj)) {
        let marking = tlp::marking_id(r.tlp.unwrap_or(self.producer.default_tlp));
        let created = time(r.first_seen);
        let modified = time(r.last_seen.max(r.first_seen));
        let confidence = r.confidence.clamp(0.0, 100.0).round() as u8;
        if self.indicator_types.iter().any(|t| t == r.classification_type) {
            let infra = infrastructure_type(r.classification_type);
            // An indicator at an address inside the constituency names that address too.
            let label = Label { tlp: r.tlp, home: r.home, sighting: false, subscriber: false };
            self.family_objects(r.family, infra, out);
            let pat = pattern(r.subject);
            let id = ids::sdo("indicator", &[&pat]);
            let what = match r.classification_type {
                "c2-server" => "C2 server",
                "malware-distribution" => "Malware distribution",
                "malware-configuration" => "Malware configuration",
                other => other,
            };
            let name = if r.family.is_empty() {
                format!("{what} {}", r.subject)
            } else {
                format!("{} {what} {}", r.family, r.subject)
            };
            let description = format!(
                "{what} reported by {} feed(s) to {}; {} sightings from {} to {}",
                r.sources.max(1),
                self.producer.name,
                r.count,
                created,
                modified
            );
            let ind = Indicator {
                ty: "indicator",
                spec_version: "2.1",
                id: &id,
                created_by_ref: &self.identity_id,
                created: &created,
                modified: &modified,
                name: &name,
                indicator_types: ["malicious-activity"],
                pattern: &pat,
                pattern_type: "stix",
                pattern_version: "2.1",
                description: &description,
                valid_from: &created,
                confidence,
                object_marking_refs: [marking],
            };
            out(Obj::typed(&ind, id.clone(), "indicator", modified.clone(), label));
            let target = match infra {
                Some(it) => infrastructure_id(it, r.family),
                None if !r.family.is_empty() => malware_id(r.family),
                None => String::new(),
            };
            if !target.is_empty() {
                let rid = ids::sdo("relationship", &[&id, "indicates", &target]);
                let rel = Relationship {
                    ty: "relationship",
                    spec_version: "2.1",
                    id: &rid,
                    created_by_ref: &self.identity_id,
                    created: &created,
                    modified: &created,
                    relationship_type: "indicates",
                    source_ref: &id,
                    target_ref: &target,
                    object_marking_refs: [marking],
                };
                out(Obj::typed(&rel, rid.clone(), "relationship", created.clone(), label));
            }
            let seen = Seen { first: &created, last: &modified, count: r.count, marking };
            out(self.sighting(&id, None, &seen, Label { sighting: true, ..label }));
            return;
        }
        if r.classification_type == "infected-system" && !r.family.is_empty() {
            let ty = match kind(r.subject) {
                SubjectKind::Ipv4 => "ipv4-addr",
                SubjectKind::Ipv6 => "ipv6-addr",
                _ => return,
            };
            self.family_objects(r.family, None, out);
            let label = Label { tlp: r.tlp, sighting: true, home: r.home, subscriber: false };
            let sco_id = ids::sco(ty, r.subject);
            let sco = Sco { ty, spec_version: "2.1", id: &sco_id, value: r.subject };
            // An observable has no version of its own: the observation's first sighting.
            out(Obj::typed(&sco, sco_id.clone(), ty, created.clone(), label));
            let mid = malware_id(r.family);
            let oid = ids::sdo("observed-data", &[&self.identity_id, &sco_id, &mid, &created]);
            let od = ObservedData {
                ty: "observed-data",
                spec_version: "2.1",
                id: &oid,
                created_by_ref: &self.identity_id,
                created: &created,
                modified: &modified,
                first_observed: &created,
                last_observed: &modified,
                number_observed: r.count.clamp(1, 999_999_999),
                object_refs: [&sco_id],
                object_marking_refs: [marking],
            };
            out(Obj::typed(&od, oid.clone(), "observed-data", modified.clone(), label));
            let seen = Seen { first: &created, last: &modified, count: r.count, marking };
            out(self.sighting(&mid, Some(&oid), &seen, label));
        }
    }

    /// This node's sighting of `of` (an indicator, or a family with the observed data behind
    /// it); its id names this node and what it saw, so a re-export is the same sighting.
    fn sighting(&self, of: &str, observed: Option<&str>, seen: &Seen<'_>, label: Label) -> Obj {
        let sid = ids::sdo("sighting", &[&self.identity_id, observed.unwrap_or(of)]);
        let s = Sighting {
            ty: "sighting",
            spec_version: "2.1",
            id: &sid,
            created_by_ref: &self.identity_id,
            created: seen.first,
            modified: seen.last,
            first_seen: seen.first,
            last_seen: seen.last,
            count: seen.count.min(999_999_999),
            sighting_of_ref: of,
            observed_data_refs: observed.map(|o| [o]),
            where_sighted_refs: [&self.identity_id],
            object_marking_refs: [seen.marking],
        };
        Obj::typed(&s, sid.clone(), "sighting", seen.last.to_string(), label)
    }
}

/// When and how often something was seen, and its marking.
struct Seen<'a> {
    first: &'a str,
    last: &'a str,
    count: u64,
    marking: &'static str,
}

/// Streams a bundle: `{"type":"bundle","id":…,"objects":[…]}` one object at a time, so
/// memory does not grow with the collection.
pub struct BundleWriter<W: std::io::Write> {
    w: W,
    first: bool,
    pub written: u64,
}

impl<W: std::io::Write> BundleWriter<W> {
    pub fn new(mut w: W, bundle_key: &str) -> std::io::Result<Self> {
        let id = ids::sdo("bundle", &[bundle_key]);
        write!(w, "{{\"type\":\"bundle\",\"id\":\"{id}\",\"objects\":[")?;
        Ok(BundleWriter { w, first: true, written: 0 })
    }

    pub fn push(&mut self, body: &str) -> std::io::Result<()> {
        if !self.first {
            self.w.write_all(b",\n")?;
        } else {
            self.w.write_all(b"\n")?;
        }
        self.first = false;
        self.w.write_all(body.as_bytes())?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.write_all(b"\n]}\n")?;
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter() -> Exporter {
        Exporter::new(
            Producer {
                name: "CERT-A".into(),
                country: Some("AA".into()),
                contact: None,
                default_tlp: Tlp::Amber,
            },
            vec!["c2-server".into(), "malware-distribution".into()],
        )
    }

    fn row<'a>(subject: &'a str, ty: &'a str, family: &'a str) -> Row<'a> {
        Row {
            subject,
            classification_type: ty,
            family,
            first_seen: Timestamp(1_700_000_000_000_000),
            last_seen: Timestamp(1_700_000_360_000_000),
            count: 3,
            confidence: 70.0,
            tlp: None,
            home: false,
            sources: 1,
        }
    }

    #[test]
    fn an_indicator_brings_its_family_once_and_is_stable() {
        let mut e = exporter();
        let mut objs = Vec::new();
        e.start(&mut |o| objs.push(o));
        e.row(&row("192.0.2.1", "c2-server", "Emotet"), &mut |o| objs.push(o));
        e.row(&row("192.0.2.2", "c2-server", "Emotet"), &mut |o| objs.push(o));
        let types: Vec<&str> = objs.iter().map(|o| o.ty.as_str()).collect();
        assert_eq!(types.iter().filter(|t| **t == "malware").count(), 1);
        assert_eq!(types.iter().filter(|t| **t == "infrastructure").count(), 1);
        assert_eq!(types.iter().filter(|t| **t == "indicator").count(), 2);
        assert_eq!(types.iter().filter(|t| **t == "sighting").count(), 2);
        let ind = objs.iter().find(|o| o.ty == "indicator").unwrap();
        assert_eq!(ind.id, indicator_id("192.0.2.1"));
        let v: serde_json::Value = serde_json::from_str(&ind.body).unwrap();
        assert_eq!(v["pattern"], "[ipv4-addr:value = '192.0.2.1']");
        assert_eq!(v["object_marking_refs"][0], tlp::marking_id(Tlp::Amber));
        assert_eq!(v["modified"], "2023-11-14T22:19:20.000Z");
        let mut again = Vec::new();
        let mut e2 = exporter();
        e2.start(&mut |o| again.push(o));
        e2.row(&row("192.0.2.1", "c2-server", "Emotet"), &mut |o| again.push(o));
        e2.row(&row("192.0.2.2", "c2-server", "Emotet"), &mut |o| again.push(o));
        assert_eq!(
            objs.iter().map(|o| &o.body).collect::<Vec<_>>(),
            again.iter().map(|o| &o.body).collect::<Vec<_>>()
        );
    }

    #[test]
    fn infected_hosts_are_labelled_sightings_with_their_home() {
        let mut e = exporter();
        let mut objs = Vec::new();
        let mut r = row("198.51.100.3", "infected-system", "Mirai");
        r.home = true;
        r.tlp = Some(Tlp::Green);
        e.row(&r, &mut |o| objs.push(o));
        let sco = objs.iter().find(|o| o.ty == "ipv4-addr").unwrap();
        assert_eq!(sco.id, "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4");
        assert!(sco.label.home && sco.label.sighting);
        assert!(objs.iter().filter(|o| o.ty != "malware").all(|o| o.label.home));
        // Other types are not shared at all.
        let mut none = 0;
        e.row(&row("198.51.100.4", "scanner", ""), &mut |_| none += 1);
        assert_eq!(none, 0);
    }

    #[test]
    fn patterns_escape_and_name_kinds() {
        assert_eq!(pattern("http://x/'a'\\"), "[url:value = 'http://x/\\'a\\'\\\\']");
        assert_eq!(pattern("2001:db8::1"), "[ipv6-addr:value = '2001:db8::1']");
        assert_eq!(pattern("10.0.0.0/8"), "[ipv4-addr:value = '10.0.0.0/8']");
        assert_eq!(pattern("AS64500"), "[autonomous-system:number = 64500]");
        assert_eq!(pattern("evil.example"), "[domain-name:value = 'evil.example']");
    }
}

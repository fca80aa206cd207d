//! STIX 2.1 (and 2.0) bundles: indicators, observed data and infrastructure become events.
//!
//! Format: <https://docs.oasis-open.org/cti/stix/v2.1/os/stix-v2.1-os.html>. Bundles come
//! from TAXII servers, MISP and vendors at their own cadence and under their own terms;
//! TLP markings on each object say how far events may be shared and are kept in `tlp`.
//!
//! - An indicator with a STIX pattern yields one event per IP, network, domain, URL or
//!   file hash compared with `=` (or `IN`) in it; patterns naming none of those (e-mail
//!   subjects, registry keys) are rejected with that reason, so nothing vanishes silently.
//! - Observed data yields one event per such cyber-observable, embedded (`objects`) or
//!   referenced (`object_refs`); infrastructure yields one per object it `consists-of`.
//! - Family: `malware` objects the indicator `indicates`, or that control or use the
//!   infrastructure. Classification: `c2-server` when the object, its infrastructure type
//!   or its text says C2 / command and control; `phishing` and `system-compromise` when
//!   it says so; else `blocklist` for indicators (someone published it to block) and
//!   `undetermined` for observed data (a sighting is not a verdict).
//! - `raw` is the serialised container object (indicator, observed-data,
//!   infrastructure); `line` its 1-based index in `objects`.

mod pattern;

use crate::generic::shared::{
    Hash, Kind, classify, contains_ci, first_byte, set_host, set_ip_or_network, set_url, spec,
};
use crate::registry::Provider;
use crate::util::{self, Line};
use crate::{FeedSpec, ParseContext, Parser};
use botwatch_model::{ClassificationType as T, Event, Side, Sink, Tlp, Value};
use bytes::Bytes;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "stix", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    vec![spec(
        "stix_bundle",
        "STIX bundle",
        "STIX",
        70.0,
        "https://docs.oasis-open.org/cti/stix/v2.1/os/stix-v2.1-os.html",
        "STIX 2.0/2.1 bundle (or TAXII envelope): indicators, observed data and infrastructure, JSON",
        Arc::new(Bundle),
    )]
}

fn detect(_name: Option<&str>, head: &[u8]) -> Option<String> {
    let json = first_byte(head) == Some(b'{');
    let bundle = contains_ci(head, "\"bundle--")
        || (contains_ci(head, "\"objects\"")
            && contains_ci(head, "\"spec_version\"")
            && (contains_ci(head, "\"indicator--") || contains_ci(head, "\"observed-data--")));
    (json && bundle).then(|| "stix_bundle".to_string())
}

/// TLP markings predefined by STIX 2.1 §7.2.1.4 (TLP 1.0) and by the OASIS TLP 2.0
/// extension (cti-stix-common-objects, extension-definition--60a3c5c5-…).
const TLP_MARKINGS: &[(&str, Tlp)] = &[
    ("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", Tlp::Clear),
    ("marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", Tlp::Green),
    ("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", Tlp::Amber),
    ("marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", Tlp::Red),
    ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", Tlp::Clear),
    ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", Tlp::Green),
    ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", Tlp::Amber),
    ("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", Tlp::AmberStrict),
    ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", Tlp::Red),
];

/// The bundle's objects and the links between them.
struct Graph<'a> {
    objects: &'a [Json],
    by_id: HashMap<&'a str, usize>,
    /// (source id, relationship type, target id).
    rels: Vec<(&'a str, &'a str, &'a str)>,
    /// Indexes into `rels` by source and by target id: a bundle of a million indicators has
    /// a million relationships, and a scan per object would be quadratic.
    by_source: HashMap<&'a str, Vec<usize>>,
    by_target: HashMap<&'a str, Vec<usize>>,
    /// Observed-data id → what a sighting of it is a sighting of.
    sighted: HashMap<&'a str, Vec<&'a str>>,
    /// Object id → names of reports that reference it.
    reports: HashMap<&'a str, Vec<&'a str>>,
}

fn s<'a>(o: &'a Json, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Json::as_str)
}

fn strs<'a>(o: &'a Json, k: &str) -> Vec<&'a str> {
    o.get(k).and_then(Json::as_array).map(|a| a.iter().filter_map(Json::as_str).collect()).unwrap_or_default()
}

impl<'a> Graph<'a> {
    fn new(objects: &'a [Json]) -> Self {
        let mut g = Graph {
            objects,
            by_id: HashMap::new(),
            rels: Vec::new(),
            by_source: HashMap::new(),
            by_target: HashMap::new(),
            sighted: HashMap::new(),
            reports: HashMap::new(),
        };
        for (i, o) in objects.iter().enumerate() {
            if let Some(id) = s(o, "id") {
                g.by_id.insert(id, i);
            }
            match s(o, "type") {
                Some("relationship") => {
                    if let (Some(a), Some(t), Some(b)) =
                        (s(o, "source_ref"), s(o, "relationship_type"), s(o, "target_ref"))
                    {
                        g.by_source.entry(a).or_default().push(g.rels.len());
                        g.by_target.entry(b).or_default().push(g.rels.len());
                        g.rels.push((a, t, b));
                    }
                }
                Some("sighting") => {
                    if let Some(of) = s(o, "sighting_of_ref") {
                        for od in strs(o, "observed_data_refs") {
                            g.sighted.entry(od).or_default().push(of);
                        }
                    }
                }
                Some("report") => {
                    let name = s(o, "name").unwrap_or("");
                    for r in strs(o, "object_refs") {
                        g.reports.entry(r).or_default().push(name);
                    }
                }
                _ => {}
            }
        }
        g
    }

    fn get(&self, id: &str) -> Option<&'a Json> {
        self.by_id.get(id).and_then(|&i| self.objects.get(i))
    }

    /// Objects `id` points to with one of `types` (outgoing relationships).
    fn targets(&self, id: &str, types: &[&str]) -> Vec<&'a Json> {
        let idx = self.by_source.get(id).map(Vec::as_slice).unwrap_or(&[]);
        idx.iter()
            .map(|&i| self.rels[i])
            .filter(|r| types.contains(&r.1))
            .filter_map(|r| self.get(r.2))
            .collect()
    }

    /// Objects pointing to `id` with one of `types` (incoming relationships).
    fn sources(&self, id: &str, types: &[&str]) -> Vec<&'a Json> {
        let idx = self.by_target.get(id).map(Vec::as_slice).unwrap_or(&[]);
        idx.iter()
            .map(|&i| self.rels[i])
            .filter(|r| types.contains(&r.1))
            .filter_map(|r| self.get(r.0))
            .collect()
    }

    /// The most restrictive TLP among the object's markings.
    fn tlp(&self, o: &Json) -> Option<Tlp> {
        strs(o, "object_marking_refs").into_iter().filter_map(|id| self.marking(id)).max()
    }

    fn marking(&self, id: &str) -> Option<Tlp> {
        if let Some((_, t)) = TLP_MARKINGS.iter().find(|(m, _)| *m == id) {
            return Some(*t);
        }
        let m = self.get(id)?;
        // A marking defined in the bundle: TLP 1.0 `definition.tlp`, the TLP 2.0
        // extension's `tlp_2_0`, or at least a "TLP:…" name.
        if let Some(t) = m.get("definition").and_then(|d| s(d, "tlp")).and_then(Tlp::from_name) {
            return Some(t);
        }
        if let Some(ext) = m.get("extensions").and_then(Json::as_object)
            && let Some(t) = ext.values().find_map(|e| s(e, "tlp_2_0")).and_then(Tlp::from_name)
        {
            return Some(t);
        }
        s(m, "name").filter(|n| n.to_ascii_uppercase().starts_with("TLP")).and_then(Tlp::from_name)
    }

    fn name_of(&self, id: Option<&str>) -> Option<&'a str> {
        id.and_then(|i| self.get(i)).and_then(|o| s(o, "name"))
    }
}

/// Words that mean "command and control" in names, descriptions and labels.
fn says_c2(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("command and control")
        || t.contains("command-and-control")
        || t.contains("botnet controller")
        || t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '&'))
            .any(|w| matches!(w, "c2" | "c&c" | "cnc"))
}

/// Classification from an object's own words and its infrastructure.
fn classification(o: &Json, infra: &[&Json], default: T) -> T {
    let mut words: Vec<&str> = ["name", "description"].iter().filter_map(|k| s(o, k)).collect();
    words.extend(strs(o, "labels"));
    words.extend(strs(o, "indicator_types"));
    let infra_types: Vec<&str> = infra
        .iter()
        .flat_map(|i| strs(i, "infrastructure_types"))
        .chain(strs(o, "infrastructure_types"))
        .collect();
    let infra_text = infra.iter().filter_map(|i| s(i, "name"));
    if infra_types.iter().any(|t| matches!(*t, "command-and-control" | "botnet"))
        || words.iter().copied().chain(infra_text).any(says_c2)
    {
        return T::C2Server;
    }
    if infra_types.contains(&"hosting-malware") {
        return T::MalwareDistribution;
    }
    if infra_types.contains(&"phishing") || words.iter().any(|w| w.to_ascii_lowercase().contains("phishing"))
    {
        return T::Phishing;
    }
    if words.contains(&"compromised") {
        return T::SystemCompromise;
    }
    default
}

/// What every event from one container object shares.
struct Context {
    ty: T,
    malware: Option<String>,
    tlp: Option<Tlp>,
    time: Option<String>,
    attrs: Vec<(&'static str, Value)>,
}

impl Context {
    fn new(g: &Graph<'_>, o: &Json, infra: &[&Json], malware: &[&Json], default: T) -> Context {
        let mut attrs = Vec::new();
        let mut put = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                attrs.push((k, Value::Str(v.into())));
            }
        };
        put("extra.stix_id", s(o, "id"));
        put("extra.stix_type", s(o, "type"));
        put("extra.name", s(o, "name"));
        put("event_description.text", s(o, "description"));
        put("extra.valid_from", s(o, "valid_from"));
        put("extra.valid_until", s(o, "valid_until"));
        put("extra.first_observed", s(o, "first_observed"));
        put("extra.last_observed", s(o, "last_observed"));
        let join = |v: Vec<&str>| (!v.is_empty()).then(|| v.join(","));
        put("extra.indicator_types", join(strs(o, "indicator_types")).as_deref());
        put("extra.infrastructure_types", join(strs(o, "infrastructure_types")).as_deref());
        put("extra.labels", join(strs(o, "labels")).as_deref());
        put("extra.created_by", g.name_of(s(o, "created_by_ref")));
        let id = s(o, "id").unwrap_or("");
        put("extra.stix_report", join(g.reports.get(id).cloned().unwrap_or_default()).as_deref());
        let related = |types: &[&str]| {
            join(
                g.targets(id, &["indicates", "attributed-to", "related-to"])
                    .into_iter()
                    .filter(|t| s(t, "type").is_some_and(|ty| types.contains(&ty)))
                    .filter_map(|t| s(t, "name"))
                    .collect(),
            )
        };
        put("extra.campaign", related(&["campaign"]).as_deref());
        put("extra.threat_actor", related(&["threat-actor", "intrusion-set"]).as_deref());
        put("extra.attack_pattern", related(&["attack-pattern"]).as_deref());
        put("extra.infrastructure", join(infra.iter().filter_map(|i| s(i, "name")).collect()).as_deref());
        let names: Vec<&str> = malware.iter().filter_map(|m| s(m, "name")).collect();
        if names.len() > 1 {
            put("extra.malware_names", Some(&names.join(",")));
        }
        if let Some(n) = o.get("number_observed").and_then(Json::as_i64) {
            attrs.push(("extra.number_observed", Value::Int(n)));
        }
        Context {
            ty: classification(o, infra, default),
            malware: names.first().map(|n| n.to_string()),
            tlp: g.tlp(o),
            time: s(o, "valid_from")
                .or_else(|| s(o, "last_observed"))
                .or_else(|| s(o, "first_observed"))
                .map(str::to_string),
            attrs,
        }
    }

    fn event(&self, ctx: &ParseContext<'_>, line: &Line) -> Event {
        let mut e = util::event(ctx, self.ty, line);
        if let Some(m) = &self.malware {
            let _ = util::set(&mut e, ctx, "malware.name", m);
        }
        e.tlp = self.tlp;
        if let Some(t) = &self.time {
            util::set_opt(&mut e, ctx, "time.source", t);
        }
        for (k, v) in &self.attrs {
            e.attrs.push((k, v.clone()));
        }
        e
    }
}

/// An observable value and what kind of thing it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Obs {
    Ip(String),
    Domain(String),
    Url(String),
    Hash(Hash, String),
}

impl Obs {
    fn apply(&self, e: &mut Event) -> Result<(), String> {
        match self {
            Obs::Ip(v) => set_ip_or_network(e, Side::Source, v),
            Obs::Domain(v) => set_host(e, Side::Source, v),
            Obs::Url(v) => set_url(e, Side::Source, v),
            Obs::Hash(h, v) => h.set(e, v),
        }
    }
}

/// Hash algorithm names as STIX writes them (`'SHA-256'`, `SHA256`, `MD5`, …).
fn hash_kind(name: &str) -> Option<Hash> {
    let n: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    Some(match n.as_str() {
        "MD5" => Hash::Md5,
        "SHA1" => Hash::Sha1,
        "SHA256" => Hash::Sha256,
        "SHA512" => Hash::Sha512,
        _ => return None,
    })
}

fn from_comparison(c: &pattern::Comparison) -> Vec<Obs> {
    if c.negated || !(c.op == "=" || c.op == "IN") {
        return Vec::new();
    }
    let make = |v: &String| -> Option<Obs> {
        Some(match (c.object.as_str(), c.path.as_str()) {
            ("ipv4-addr" | "ipv6-addr", "value") => Obs::Ip(v.clone()),
            ("domain-name", "value") => Obs::Domain(v.clone()),
            ("url", "value") => Obs::Url(v.clone()),
            ("network-traffic", "dst_ref.value" | "src_ref.value") => match classify(v) {
                Kind::Ip(_) | Kind::Network(_) => Obs::Ip(v.clone()),
                Kind::Fqdn => Obs::Domain(v.clone()),
                _ => return None,
            },
            ("file" | "artifact", p) => Obs::Hash(hash_kind(p.strip_prefix("hashes.")?)?, v.clone()),
            _ => return None,
        })
    };
    c.values.iter().filter_map(make).collect()
}

fn from_sco(o: &Json) -> Vec<Obs> {
    let v = s(o, "value").map(str::to_string);
    match (s(o, "type"), v) {
        (Some("ipv4-addr" | "ipv6-addr"), Some(v)) => vec![Obs::Ip(v)],
        (Some("domain-name"), Some(v)) => vec![Obs::Domain(v)],
        (Some("url"), Some(v)) => vec![Obs::Url(v)],
        (Some("file" | "artifact"), _) => o
            .get("hashes")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some(Obs::Hash(hash_kind(k)?, v.as_str()?.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

struct Bundle;

impl Parser for Bundle {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let Some(doc) = util::json_document(input, sink, "STIX") else { return };
        let single;
        let objects: &[Json] = match &doc {
            Json::Object(m) => match m.get("objects") {
                Some(Json::Array(a)) => a,
                _ if m.get("type").and_then(Json::as_str).is_some_and(|t| t != "bundle") => {
                    single = [doc.clone()];
                    &single
                }
                _ => {
                    util::reject_whole(sink, input, "not a STIX bundle: no \"objects\" array");
                    return;
                }
            },
            Json::Array(a) => a,
            _ => {
                util::reject_whole(sink, input, "not a STIX bundle");
                return;
            }
        };
        let g = Graph::new(objects);
        for (i, o) in objects.iter().enumerate() {
            let line = Line { number: i as u64 + 1, raw: Bytes::new() };
            let kind = match o {
                Json::Object(_) => s(o, "type").unwrap_or(""),
                _ => {
                    util::reject(sink, line.number, util::json_raw(o), "STIX object is not a JSON object");
                    continue;
                }
            };
            match kind {
                "indicator" => indicator(&g, o, line, ctx, sink),
                "observed-data" => observed(&g, o, line, ctx, sink),
                "infrastructure" => infrastructure(&g, o, line, ctx, sink),
                _ => {}
            }
        }
    }
}

impl Obs {
    /// The observable as a STIX comparison (what an indicator of this one alone says).
    fn comparison(&self) -> String {
        let q = |v: &str| v.replace('\\', "\\\\").replace('\'', "\\'");
        match self {
            Obs::Ip(v) if v.contains(':') => format!("[ipv6-addr:value = '{}']", q(v)),
            Obs::Ip(v) => format!("[ipv4-addr:value = '{}']", q(v)),
            Obs::Domain(v) => format!("[domain-name:value = '{}']", q(v)),
            Obs::Url(v) => format!("[url:value = '{}']", q(v)),
            Obs::Hash(h, v) => format!("[file:hashes.'{}' = '{}']", h.stix_name(), q(v)),
        }
    }
}

impl Obs {
    /// The observable as a STIX cyber-observable object.
    fn sco(&self) -> Json {
        match self {
            Obs::Ip(v) if v.contains(':') => serde_json::json!({"type": "ipv6-addr", "value": v}),
            Obs::Ip(v) => serde_json::json!({"type": "ipv4-addr", "value": v}),
            Obs::Domain(v) => serde_json::json!({"type": "domain-name", "value": v}),
            Obs::Url(v) => serde_json::json!({"type": "url", "value": v}),
            Obs::Hash(h, v) => serde_json::json!({"type": "file", "hashes": { h.stix_name(): v }}),
        }
    }
}

/// The object as each of its events keeps it when it names several observables: the same
/// object (id, times, markings, labels) with the pattern, or the observed objects, reduced
/// to that event's one observable. Keeping the whole object in each would store it once
/// per observable: 100,000 addresses would be 100,000 copies of a 3 MB pattern.
fn reduced(o: &Json, ob: &Obs) -> Bytes {
    let Some(src) = o.as_object() else { return util::json_raw(o) };
    // Copied without the big members, which are what is replaced: a copy per observable of
    // the whole object would make the many-observable case quadratic again.
    let mut m = serde_json::Map::with_capacity(src.len());
    for (k, v) in src {
        if !matches!(k.as_str(), "pattern" | "objects" | "object_refs") {
            m.insert(k.clone(), v.clone());
        }
    }
    if src.contains_key("pattern") {
        m.insert("pattern".into(), Json::String(ob.comparison()));
    } else {
        m.insert("objects".into(), serde_json::json!({ "0": ob.sco() }));
    }
    util::json_raw(&Json::Object(m))
}

/// One event per distinct observable of an object (a pattern OR-ing 100,000 addresses is
/// 100,000 events, in linear time); the store tells them apart by their subject (see
/// `botwatch_store::encode::fingerprint`).
fn emit(obs: Vec<Obs>, o: &Json, c: &Context, line: &Line, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
    let several = obs.len() > 1;
    let mut seen = std::collections::HashSet::with_capacity(obs.len());
    for ob in obs {
        if seen.contains(&ob) {
            continue;
        }
        let own;
        let line = if several {
            own = Line { number: line.number, raw: reduced(o, &ob) };
            &own
        } else {
            line
        };
        let mut e = c.event(ctx, line);
        match ob.apply(&mut e) {
            Ok(()) => sink.event(e),
            Err(m) => util::reject(sink, line.number, line.raw.clone(), m),
        }
        seen.insert(ob);
    }
}

fn indicator(g: &Graph<'_>, o: &Json, mut line: Line, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
    line.raw = util::json_raw(o);
    let id = s(o, "id").unwrap_or("");
    let pattern_type = s(o, "pattern_type").unwrap_or("stix");
    if pattern_type != "stix" {
        util::reject(
            sink,
            line.number,
            line.raw,
            format!("pattern_type {pattern_type:?} is not supported, only stix"),
        );
        return;
    }
    let Some(p) = s(o, "pattern") else {
        util::reject(sink, line.number, line.raw, "indicator without a pattern");
        return;
    };
    let comps = match pattern::comparisons(p) {
        Ok(c) => c,
        Err(m) => {
            util::reject(sink, line.number, line.raw, format!("invalid STIX pattern: {m}"));
            return;
        }
    };
    let obs: Vec<Obs> = comps.iter().flat_map(from_comparison).collect();
    if obs.is_empty() {
        let what: Vec<String> = comps.iter().map(|c| format!("{}:{} {}", c.object, c.path, c.op)).collect();
        util::reject(
            sink,
            line.number,
            line.raw,
            format!("pattern compares no IP, domain, URL or file hash ({})", what.join(", ")),
        );
        return;
    }
    let indicated = g.targets(id, &["indicates"]);
    let infra: Vec<&Json> =
        indicated.iter().copied().filter(|t| s(t, "type") == Some("infrastructure")).collect();
    let mut malware: Vec<&Json> =
        indicated.iter().copied().filter(|t| s(t, "type") == Some("malware")).collect();
    for i in &infra {
        malware.extend(infra_malware(g, i));
    }
    let c = Context::new(g, o, &infra, &malware, T::Blocklist);
    emit(obs, o, &c, &line, ctx, sink);
}

fn infra_malware<'a>(g: &Graph<'a>, infra: &Json) -> Vec<&'a Json> {
    let id = s(infra, "id").unwrap_or("");
    let mut m = g.targets(id, &["controls", "delivers", "hosts"]);
    m.extend(g.sources(id, &["uses", "controls", "beacons-to", "exfiltrates-to", "communicates-with"]));
    m.retain(|x| s(x, "type") == Some("malware"));
    m
}

fn observed(g: &Graph<'_>, o: &Json, mut line: Line, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
    line.raw = util::json_raw(o);
    let mut scos: Vec<&Json> = match o.get("objects") {
        Some(Json::Object(m)) => m.values().collect(),
        _ => Vec::new(),
    };
    scos.extend(strs(o, "object_refs").into_iter().filter_map(|r| g.get(r)));
    let obs: Vec<Obs> = scos.into_iter().flat_map(from_sco).collect();
    if obs.is_empty() {
        util::reject(sink, line.number, line.raw, "observed data holds no IP, domain, URL or file hash");
        return;
    }
    let id = s(o, "id").unwrap_or("");
    let mut malware: Vec<&Json> = g
        .sources(id, &["based-on"])
        .into_iter()
        .flat_map(|ind| g.targets(s(ind, "id").unwrap_or(""), &["indicates"]))
        .filter(|t| s(t, "type") == Some("malware"))
        .collect();
    // A sighting of a malware family with this observed data behind it: the observed
    // addresses are infected with it (what botwatch and other centres publish for hosts).
    let sighted: Vec<&Json> = g
        .sighted
        .get(id)
        .into_iter()
        .flatten()
        .filter_map(|of| g.get(of))
        .filter(|m| s(m, "type") == Some("malware"))
        .collect();
    let default = if sighted.is_empty() { T::Undetermined } else { T::InfectedSystem };
    malware.extend(sighted);
    let c = Context::new(g, o, &[], &malware, default);
    emit(obs, o, &c, &line, ctx, sink);
}

fn infrastructure(g: &Graph<'_>, o: &Json, mut line: Line, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
    let id = s(o, "id").unwrap_or("");
    let obs: Vec<Obs> = g.targets(id, &["consists-of"]).into_iter().flat_map(from_sco).collect();
    if obs.is_empty() {
        // Infrastructure described only in words is context for indicators, not an event.
        return;
    }
    line.raw = util::json_raw(o);
    let malware = infra_malware(g, o);
    let c = Context::new(g, o, &[], &malware, T::Blocklist);
    emit(obs, o, &c, &line, ctx, sink);
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Collected;

    fn run(data: &'static [u8]) -> Collected {
        let spec = feeds().remove(0);
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn indicator_with_malware_tlp_and_cidr() {
        let out = run(br#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"indicator","id":"indicator--1","pattern_type":"stix","pattern":"[ipv4-addr:value = '198.51.100.0/24'] OR [url:value = 'http://x.example/a'] OR [file:hashes.'SHA-256' = 'AA00000000000000000000000000000000000000000000000000000000000000']","valid_from":"2024-01-01T00:00:00Z","object_marking_refs":["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],"indicator_types":["malicious-activity"]},
            {"type":"malware","id":"malware--1","name":"Heodo","is_family":true},
            {"type":"relationship","id":"relationship--1","relationship_type":"indicates","source_ref":"indicator--1","target_ref":"malware--1"}]}"#);
        assert_eq!(out.events.len(), 3, "{:?}", out.rejects);
        let e = &out.events[0];
        assert_eq!(e.source.network.unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(e.malware_name.as_deref(), Some("emotet"));
        assert_eq!(e.tlp, Some(Tlp::Green));
        assert_eq!(e.classification_type, T::Blocklist);
        assert_eq!(out.events[1].source.fqdn.as_deref(), Some("x.example"));
        assert_eq!(out.events[2].attr("malware.hash.sha256").unwrap().as_str().unwrap().len(), 64);
    }

    #[test]
    fn c2_wording_and_tlp_defined_in_bundle() {
        let out = run(br#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"marking-definition","id":"marking-definition--x","definition_type":"tlp","definition":{"tlp":"red"}},
            {"type":"indicator","id":"indicator--2","name":"C2 channel","pattern":"[domain-name:value = 'c2.example']","object_marking_refs":["marking-definition--x","marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}]}"#);
        assert_eq!(out.events[0].classification_type, T::C2Server);
        assert_eq!(out.events[0].tlp, Some(Tlp::Red));
    }

    #[test]
    fn a_sighting_of_a_family_makes_its_observed_hosts_infected() {
        let out = run(br#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"malware","id":"malware--1","name":"mirai","is_family":true},
            {"type":"ipv4-addr","id":"ipv4-addr--1","value":"198.51.100.7"},
            {"type":"observed-data","id":"observed-data--1","first_observed":"2026-12-01T00:00:00Z","last_observed":"2026-12-01T01:00:00Z","number_observed":3,"object_refs":["ipv4-addr--1"]},
            {"type":"sighting","id":"sighting--1","sighting_of_ref":"malware--1","observed_data_refs":["observed-data--1"],"count":3}]}"#);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].classification_type, T::InfectedSystem);
        assert_eq!(out.events[0].malware_name.as_deref(), Some("mirai"));
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert_eq!(run(b"").rejects.len(), 1);
        assert_eq!(run(b"{\"type\":\"bundle\",\"objects\":[{\"type\":\"indic").rejects.len(), 1);
        assert_eq!(run(b"{\"type\":\"bundle\"}").rejects.len(), 1);
        assert_eq!(run(b"42").rejects.len(), 1);
        let out = run(br#"{"type":"bundle","objects":[7,{"type":"indicator","pattern":"[ipv4-addr:value = '999.1.1.1']"},{"type":"indicator","pattern":"[x"},{"type":"indicator"}]}"#);
        assert_eq!((out.events.len(), out.rejects.len()), (0, 4));
    }
}

//! MISP events in MISP's JSON format: `{"Event": {...}}`, the bare event object, lists of
//! either, `restSearch` responses (`{"response": [...]}`), or a single attribute.
//!
//! Format: <https://www.misp-standard.org/rfc/misp-standard-core.html>. Events come from
//! MISP instances and feeds at their own cadence and under their own terms; their TLP tags
//! say how far they may go and become `tlp`.
//!
//! - Each attribute that is an IP (`ip-src`, `ip-dst`, `…|port`), domain or host name,
//!   `domain|ip`, URL or file hash (`md5`, `sha1`, `sha256`, `sha512`, `filename|…`,
//!   `malware-sample`) is an event. Each MISP object holding such attributes is *one*
//!   event (a `domain-ip` object is one host; a `file` object one sample), its other
//!   attributes kept under `extra.<object_relation>`. The IntelMQ convention holds:
//!   `ip-dst` is the subject, so it goes in `source.ip`.
//! - Attributes that are context (comments, links, free text, file names alone) are not
//!   events; one warning counts them by type. The `Payload type` category and
//!   `misp-galaxy:malpedia="…"`-style tags and galaxies name the family.
//! - Classification: a role-giving `ecsirt:`/`rsit:`/`circl:incident-classification`
//!   tag on the attribute, else on the event (`…="c2-server"`, `…="phishing"`, …); else the
//!   category (`Payload delivery` → malware-distribution; `Network activity` →
//!   c2-server for destinations, blocklist for `ip-src`); else a malware-type tag
//!   (`…="ransomware"`) means infected-system; else blocklist.
//! - `raw` is the attribute (or object) as JSON; `line` counts attributes and objects in
//!   document order, from 1.

use crate::generic::shared::{
    Hash, contains_ci, extra_key, first_byte, json_text, set_host, set_ip_or_network, set_url, spec,
};
use crate::registry::Provider;
use crate::util::{self, Line};
use crate::{FeedSpec, ParseContext, Parser};
use botwatch_model::{
    ClassificationType as T, Endpoint, Event, Side, Sink, Tlp, Value, Warning, WarningKind,
};
use bytes::Bytes;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "misp", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    vec![spec(
        "misp_event",
        "MISP event",
        "MISP",
        70.0,
        "https://www.misp-standard.org/rfc/misp-standard-core.html",
        "MISP event JSON (event, event list, restSearch response or attribute): network indicators and hashes",
        Arc::new(Misp),
    )]
}

fn detect(_name: Option<&str>, head: &[u8]) -> Option<String> {
    let json = matches!(first_byte(head), Some(b'{' | b'['));
    // "to_ids" as a JSON key is MISP's own; STIX exported by MISP only mentions it in labels.
    let misp = contains_ci(head, "\"to_ids\"")
        || (contains_ci(head, "\"Event\"") && contains_ci(head, "\"Attribute\""));
    let stix = contains_ci(head, "\"bundle--");
    (json && misp && !stix).then(|| "misp_event".to_string())
}

fn s<'a>(o: &'a Map<String, Json>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Json::as_str).filter(|v| !v.trim().is_empty())
}

fn list<'a>(o: &'a Map<String, Json>, k: &str) -> impl Iterator<Item = &'a Map<String, Json>> {
    o.get(k).and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_object)
}

fn tag_names(o: &Map<String, Json>) -> Vec<&str> {
    list(o, "Tag").filter_map(|t| s(t, "name")).collect()
}

/// `namespace:predicate="value"` → (namespace, value).
fn machine_tag(tag: &str) -> Option<(&str, &str)> {
    let (ns, rest) = tag.split_once(':')?;
    let value = rest.split_once('=').map(|(_, v)| v).unwrap_or(rest);
    Some((ns, value.trim().trim_matches('"')))
}

/// Tag values that name the kind of malware rather than the indicator's role.
const MALWARE_TYPES: &[&str] =
    &["ransomware", "virus", "worm", "trojan", "spyware", "dialer", "rootkit", "malware", "backdoor"];

/// (role-giving classification, whether a malware-type tag was seen).
fn tag_class(tags: &[&str]) -> (Option<T>, bool) {
    let mut malware_type = false;
    for t in tags {
        let Some((ns, v)) = machine_tag(t) else { continue };
        if !matches!(ns.to_ascii_lowercase().as_str(), "ecsirt" | "rsit" | "circl") {
            continue;
        }
        let v = v.to_ascii_lowercase();
        if MALWARE_TYPES.contains(&v.as_str()) {
            malware_type = true;
            continue;
        }
        let ty = match v.as_str() {
            "botnet-drone" => Some(T::InfectedSystem),
            "scan" | "scanning" => Some(T::Scanner),
            "unknown" => None,
            other => T::from_name(other),
        };
        if ty.is_some() {
            return (ty, malware_type);
        }
    }
    (None, malware_type)
}

fn tlp_of(tags: &[&str]) -> Option<Tlp> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("tlp:").or_else(|| t.strip_prefix("TLP:")))
        .filter_map(Tlp::from_name)
        .max()
}

const FAMILY_GALAXIES: &[&str] =
    &["malpedia", "ransomware", "botnet", "banker", "rat", "stealer", "backdoor", "android", "mitre-malware"];

/// "BlackEnergy - S0089" (MITRE's naming) → "BlackEnergy".
fn strip_mitre_id(v: &str) -> &str {
    match v.rsplit_once(" - ") {
        Some((name, id)) if id.starts_with('S') && id[1..].bytes().all(|c| c.is_ascii_digit()) => name,
        _ => v,
    }
}

fn family_from_tags<'a>(tags: &[&'a str]) -> Option<&'a str> {
    tags.iter().find_map(|t| {
        let rest = t.strip_prefix("misp-galaxy:")?;
        let (galaxy, value) = rest.split_once('=')?;
        FAMILY_GALAXIES.contains(&galaxy).then(|| strip_mitre_id(value.trim_matches('"')))
    })
}

fn family_from_galaxies(o: &Map<String, Json>) -> Option<&str> {
    list(o, "Galaxy").find_map(|g| {
        let ty = s(g, "type")?;
        if !FAMILY_GALAXIES.contains(&ty) {
            return None;
        }
        list(g, "GalaxyCluster").find_map(|c| s(c, "value")).map(strip_mitre_id)
    })
}

/// What an event's attributes share.
struct EventCtx<'a> {
    tags: Vec<&'a str>,
    family: Option<&'a str>,
    attrs: Vec<(&'static str, Value)>,
}

impl<'a> EventCtx<'a> {
    fn new(ev: &'a Map<String, Json>) -> Self {
        let tags = tag_names(ev);
        let payload_type = list(ev, "Attribute")
            .filter(|a| s(a, "category") == Some("Payload type"))
            .find_map(|a| s(a, "value"));
        let family = family_from_tags(&tags).or(payload_type).or_else(|| family_from_galaxies(ev));
        let mut attrs = Vec::new();
        let mut put = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                attrs.push((k, Value::Str(v.into())));
            }
        };
        put("event_description.text", s(ev, "info"));
        put("extra.misp_event_uuid", s(ev, "uuid"));
        put("extra.misp_event_date", s(ev, "date"));
        put("extra.misp_org", ev.get("Orgc").and_then(Json::as_object).and_then(|o| s(o, "name")));
        EventCtx { tags, family, attrs }
    }
}

/// Puts one attribute's value where its type says. `Ok(false)`: not an indicator type.
fn apply(e: &mut Event, ty: &str, value: &str) -> Result<bool, String> {
    let split = || value.split_once('|').ok_or_else(|| format!("{ty} value without '|': {value:?}"));
    let port = |e: &mut Event, p: &str| -> Result<(), String> {
        e.source.port = Some(p.trim().parse().map_err(|_| format!("invalid port {p:?} in {ty}"))?);
        Ok(())
    };
    match ty {
        "ip-src" | "ip-dst" => set_ip_or_network(e, Side::Source, value)?,
        "ip-src|port" | "ip-dst|port" => {
            let (ip, p) = split()?;
            set_ip_or_network(e, Side::Source, ip)?;
            port(e, p)?;
        }
        "domain" | "hostname" => set_host(e, Side::Source, value)?,
        "domain|ip" => {
            let (d, ip) = split()?;
            set_host(e, Side::Source, d)?;
            set_ip_or_network(e, Side::Source, ip)?;
        }
        "hostname|port" => {
            let (h, p) = split()?;
            set_host(e, Side::Source, h)?;
            port(e, p)?;
        }
        "url" => set_url(e, Side::Source, value)?,
        "md5" => Hash::Md5.set(e, value)?,
        "sha1" => Hash::Sha1.set(e, value)?,
        "sha256" => Hash::Sha256.set(e, value)?,
        "sha512" => Hash::Sha512.set(e, value)?,
        "filename|md5" | "filename|sha1" | "filename|sha256" | "filename|sha512" | "malware-sample" => {
            let (name, h) = split()?;
            let kind = match ty {
                "filename|sha1" => Hash::Sha1,
                "filename|sha256" => Hash::Sha256,
                "filename|sha512" => Hash::Sha512,
                _ => Hash::Md5,
            };
            kind.set(e, h)?;
            e.set_attr("extra.file_name", Value::Str(name.into()));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The classification an attribute gets (see the module docs).
fn classify(attr_tags: &[&str], ev: &EventCtx<'_>, category: &str, ty: &str) -> T {
    let (a, a_mw) = tag_class(attr_tags);
    let (e, e_mw) = tag_class(&ev.tags);
    if let Some(t) = a.or(e) {
        return t;
    }
    match category {
        "Payload delivery" => T::MalwareDistribution,
        "Network activity" if ty.starts_with("ip-src") => T::Blocklist,
        "Network activity" => T::C2Server,
        _ if a_mw || e_mw => T::InfectedSystem,
        _ => T::Blocklist,
    }
}

/// Moves what `from` set into `into`; values for fields `into` already has go to
/// `extra.<name>` instead.
fn merge(into: &mut Event, from: Event, name: &str, value: &str) {
    fn take<V: PartialEq>(dst: &mut Option<V>, src: Option<V>, clash: &mut bool) {
        if let Some(v) = src {
            match dst {
                None => *dst = Some(v),
                Some(d) if *d == v => {}
                Some(_) => *clash = true,
            }
        }
    }
    let mut clash = false;
    let Endpoint { ip, port, asn, as_name, network, fqdn, url, cc } = from.source;
    let d = &mut into.source;
    take(&mut d.ip, ip, &mut clash);
    take(&mut d.port, port, &mut clash);
    take(&mut d.asn, asn, &mut clash);
    take(&mut d.as_name, as_name, &mut clash);
    take(&mut d.network, network, &mut clash);
    take(&mut d.fqdn, fqdn, &mut clash);
    take(&mut d.url, url, &mut clash);
    take(&mut d.cc, cc, &mut clash);
    for (k, v) in from.attrs {
        if into.attr(k).is_some() {
            clash = true;
        } else {
            into.attrs.push((k, v));
        }
    }
    if clash {
        into.set_attr(&extra_key(name), Value::Str(value.into()));
    }
}

struct Misp;

type Handler = fn(&Map<String, Json>, &EventCtx<'_>, &ParseContext<'_>, &mut dyn Sink, &mut Tally);

#[derive(Default)]
struct Tally {
    line: u64,
    context: BTreeMap<String, usize>,
}

impl Parser for Misp {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let Some(doc) = util::json_document(input, sink, "MISP") else { return };
        let mut events: Vec<&Map<String, Json>> = Vec::new();
        let mut loose: Vec<&Map<String, Json>> = Vec::new();
        fn unwrap(v: &Json) -> Option<&Map<String, Json>> {
            let o = v.as_object()?;
            match o.get("Event").and_then(Json::as_object) {
                Some(inner) => Some(inner),
                None => Some(o),
            }
        }
        let top: Vec<&Json> = match &doc {
            Json::Array(a) => a.iter().collect(),
            Json::Object(o) => match o.get("response") {
                Some(Json::Array(a)) => a.iter().collect(),
                Some(r @ Json::Object(_)) => vec![r],
                _ => vec![&doc],
            },
            _ => Vec::new(),
        };
        for v in top {
            let Some(o) = unwrap(v) else { continue };
            if o.contains_key("Attribute") || o.contains_key("Object") || o.contains_key("info") {
                events.push(o);
            } else if o.contains_key("type") && o.contains_key("value") {
                loose.push(o);
            }
        }
        if events.is_empty() && loose.is_empty() {
            util::reject_whole(sink, input, "not a MISP event, event list or attribute");
            return;
        }
        let mut tally = Tally::default();
        let empty = Map::new();
        for ev in events {
            let ectx = EventCtx::new(ev);
            for (key, f) in [("Attribute", attribute as Handler), ("Object", object)] {
                for item in ev.get(key).and_then(Json::as_array).into_iter().flatten() {
                    match item.as_object() {
                        Some(o) => f(o, &ectx, ctx, sink, &mut tally),
                        None => {
                            tally.line += 1;
                            util::reject(
                                sink,
                                tally.line,
                                util::json_raw(item),
                                format!("{key} entry is not a JSON object"),
                            );
                        }
                    }
                }
            }
        }
        let none = EventCtx::new(&empty);
        for a in loose {
            attribute(a, &none, ctx, sink, &mut tally);
        }
        if !tally.context.is_empty() {
            let total: usize = tally.context.values().sum();
            let types: Vec<String> = tally.context.iter().map(|(t, n)| format!("{t} ×{n}")).collect();
            sink.warning(Warning {
                kind: WarningKind::Other,
                line: None,
                message: format!(
                    "{total} MISP attribute(s) or object(s) hold no network indicator or hash and are context, not events: {}",
                    types.join(", ")
                ),
            });
        }
    }
}

fn common(e: &mut Event, ctx: &ParseContext<'_>, ectx: &EventCtx<'_>, tags: &[&str], a: &Map<String, Json>) {
    let family = family_from_tags(tags).or(ectx.family);
    if let Some(f) = family {
        let _ = util::set(e, ctx, "malware.name", f);
    }
    e.tlp = tlp_of(tags).or_else(|| tlp_of(&ectx.tags));
    if let Some(t) = a.get("timestamp").and_then(json_text) {
        util::set_opt(e, ctx, "time.source", &t);
    }
    for (k, v) in &ectx.attrs {
        e.attrs.push((k, v.clone()));
    }
    let other: Vec<&str> = ectx
        .tags
        .iter()
        .chain(tags)
        .copied()
        .filter(|t| !t.to_ascii_lowercase().starts_with("tlp:"))
        .collect();
    if !other.is_empty() {
        e.set_attr("extra.misp_tags", Value::Str(other.join(",").into()));
    }
}

fn attribute(
    a: &Map<String, Json>,
    ectx: &EventCtx<'_>,
    ctx: &ParseContext<'_>,
    sink: &mut dyn Sink,
    tally: &mut Tally,
) {
    tally.line += 1;
    let line = Line { number: tally.line, raw: util::json_raw(&Json::Object(a.clone())) };
    if a.get("deleted").and_then(Json::as_bool) == Some(true) {
        *tally.context.entry("deleted".into()).or_default() += 1;
        return;
    }
    let (Some(ty), Some(value)) = (s(a, "type"), a.get("value").and_then(json_text)) else {
        util::reject(sink, line.number, line.raw, "attribute without type or value");
        return;
    };
    let category = s(a, "category").unwrap_or("");
    let tags = tag_names(a);
    let mut e = util::event(ctx, classify(&tags, ectx, category, ty), &line);
    match apply(&mut e, ty, &value) {
        Ok(true) => {}
        Ok(false) => {
            *tally.context.entry(ty.to_string()).or_default() += 1;
            return;
        }
        Err(m) => {
            util::reject(sink, line.number, line.raw, m);
            return;
        }
    }
    common(&mut e, ctx, ectx, &tags, a);
    attr_extras(&mut e, a, ty, category);
    sink.event(e);
}

fn attr_extras(e: &mut Event, a: &Map<String, Json>, ty: &str, category: &str) {
    e.set_attr("extra.misp_type", Value::Str(ty.into()));
    if !category.is_empty() {
        e.set_attr("extra.misp_category", Value::Str(category.into()));
    }
    if let Some(u) = s(a, "uuid") {
        e.set_attr("extra.misp_attribute_uuid", Value::Str(u.into()));
    }
    if let Some(b) = a.get("to_ids").and_then(Json::as_bool) {
        e.set_attr("extra.to_ids", Value::Bool(b));
    }
    if let Some(c) = s(a, "comment") {
        e.set_attr("comment", Value::Str(c.into()));
    }
    for k in ["first_seen", "last_seen"] {
        if let Some(v) = s(a, k) {
            e.set_attr(&format!("extra.{k}"), Value::Str(v.into()));
        }
    }
}

fn object(
    o: &Map<String, Json>,
    ectx: &EventCtx<'_>,
    ctx: &ParseContext<'_>,
    sink: &mut dyn Sink,
    tally: &mut Tally,
) {
    tally.line += 1;
    let line = Line { number: tally.line, raw: util::json_raw(&Json::Object(o.clone())) };
    let attrs: Vec<&Map<String, Json>> =
        list(o, "Attribute").filter(|a| a.get("deleted").and_then(Json::as_bool) != Some(true)).collect();
    // The first indicator attribute decides classification and timestamp.
    let lead = attrs.iter().find(|a| {
        let mut probe = Event::new(ctx.feed.clone(), T::Other, ctx.observed);
        matches!((s(a, "type"), a.get("value").and_then(json_text)), (Some(t), Some(v)) if apply(&mut probe, t, &v) == Ok(true))
    });
    let Some(lead) = lead else {
        let name = s(o, "name").unwrap_or("object");
        *tally.context.entry(format!("object {name}")).or_default() += 1;
        return;
    };
    let mut tags: Vec<&str> = Vec::new();
    for t in attrs.iter().flat_map(|a| tag_names(a)) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let lead_ty = s(lead, "type").unwrap_or("");
    let lead_cat = s(lead, "category").unwrap_or("");
    let mut e = util::event(ctx, classify(&tags, ectx, lead_cat, lead_ty), &line);
    for a in &attrs {
        let (Some(ty), Some(value)) = (s(a, "type"), a.get("value").and_then(json_text)) else { continue };
        let rel = s(a, "object_relation").unwrap_or(ty);
        let mut scratch = Event::new(ctx.feed.clone(), T::Other, ctx.observed);
        match apply(&mut scratch, ty, &value) {
            Ok(true) => merge(&mut e, scratch, rel, &value),
            // Context attributes of an object describe its indicator: keep them on it.
            Ok(false) => e.set_attr(&extra_key(rel), Value::Str(value.as_str().into())),
            Err(_) => e.set_attr(
                &format!("extra.invalid.{}", extra_key(rel).trim_start_matches("extra.")),
                Value::Str(value.as_str().into()),
            ),
        }
    }
    common(&mut e, ctx, ectx, &tags, lead);
    e.set_attr("extra.misp_object_name", Value::Str(s(o, "name").unwrap_or("").into()));
    if let Some(u) = s(o, "uuid") {
        e.set_attr("extra.misp_object_uuid", Value::Str(u.into()));
    }
    if !lead_cat.is_empty() {
        e.set_attr("extra.misp_category", Value::Str(lead_cat.into()));
    }
    let to_ids = attrs.iter().any(|a| a.get("to_ids").and_then(Json::as_bool) == Some(true));
    e.set_attr("extra.to_ids", Value::Bool(to_ids));
    if let Some(c) = s(o, "comment") {
        e.set_attr("comment", Value::Str(c.into()));
    }
    sink.event(e);
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
    fn attributes_objects_tags() {
        let out = run(br#"{"Event": {"info": "x", "Tag": [{"name": "tlp:amber"}, {"name": "misp-galaxy:malpedia=\"Heodo\""}],
            "Attribute": [
              {"type": "ip-dst|port", "category": "Network activity", "value": "192.0.2.1|8080", "to_ids": true},
              {"type": "ip-src", "category": "Network activity", "value": "198.51.100.7", "Tag": [{"name": "rsit:intrusion-attempts=\"brute-force\""}]},
              {"type": "comment", "category": "Other", "value": "hello"},
              {"type": "md5", "category": "Payload delivery", "value": "xyz"}],
            "Object": [{"name": "domain-ip", "Attribute": [
              {"type": "domain", "object_relation": "domain", "category": "Network activity", "value": "c2.example"},
              {"type": "ip-dst", "object_relation": "ip", "category": "Network activity", "value": "192.0.2.2"},
              {"type": "ip-dst", "object_relation": "ip", "category": "Network activity", "value": "192.0.2.3"},
              {"type": "text", "object_relation": "text", "value": "note"}]}]}}"#);
        assert_eq!(out.events.len(), 3, "{:?}", out.rejects);
        let e = &out.events[0];
        assert_eq!(e.classification_type, T::C2Server);
        assert_eq!(e.source.port, Some(8080));
        assert_eq!(e.tlp, Some(Tlp::Amber));
        assert_eq!(e.malware_name.as_deref(), Some("emotet"));
        assert_eq!(out.events[1].classification_type, T::BruteForce);
        let o = &out.events[2];
        assert_eq!(o.source.fqdn.as_deref(), Some("c2.example"));
        assert_eq!(o.source.ip.unwrap().to_string(), "192.0.2.2");
        assert_eq!(o.attr("extra.ip").unwrap().as_str(), Some("192.0.2.3"));
        assert_eq!(o.attr("extra.text").unwrap().as_str(), Some("note"));
        assert_eq!(o.line, 5);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.warnings.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert_eq!(run(b"").rejects.len(), 1);
        assert_eq!(run(b"{\"Event\": {\"Attribute\": [{\"type\"").rejects.len(), 1);
        assert_eq!(run(b"{\"foo\": 1}").rejects.len(), 1);
        assert_eq!(run(b"[1, 2]").rejects.len(), 1);
        let out = run(br#"{"Attribute": [7, {"type": "url"}, {"type": "ip-src", "value": "1.2.3"}]}"#);
        assert_eq!((out.events.len(), out.rejects.len()), (0, 3));
    }
}

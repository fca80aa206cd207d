//! Events encoded for storage, off the writer's thread.
//!
//! The store writer is the pipeline's serial stage, so everything that can happen before
//! it (fingerprints, the JSON document, address keys) happens here, on the parser's
//! thread. The document holds only what the typed columns do not: feed metadata lives once
//! per report, and time, addresses, ASN, country, type and family are columns.

use crate::ip_key;
use botwatch_model::{Endpoint, Event, Value};
use bytes::Bytes;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// One event, ready to insert.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    pub fingerprint: i64,
    pub line: i64,
    pub feed: botwatch_model::Text,
    pub accuracy: f64,
    pub subject: Option<String>,
    pub time: i64,
    pub time_source: Option<i64>,
    pub time_observation: i64,
    pub ip: Option<[u8; 16]>,
    pub asn: Option<u32>,
    pub cc: Option<botwatch_model::Text>,
    pub ty: &'static str,
    pub family: Option<botwatch_model::Text>,
    /// JSON object of the remaining IntelMQ keys.
    pub doc: Vec<u8>,
    /// TLP rank (0 CLEAR … 4 RED), `None` when unmarked.
    pub tlp: Option<u8>,
    /// (observation id, opened by this event), when resolved before the writer.
    pub observation: Option<(i64, bool)>,
    pub raw: Bytes,
}

/// Same feed, same raw line, same time: the same event, whichever report carries it.
/// What makes an event the same event again: feed, raw line, time and what it is about. One
/// line of most feeds is one subject, so the subject changes nothing there; a STIX object
/// or MISP event naming many addresses or hashes is one raw document for all of them, and
/// without the subject all but the first were taken for duplicates.
pub fn fingerprint(e: &Event) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(e.feed.id.as_bytes());
    h.update(&[0]);
    h.update(&e.raw);
    h.update(&e.time_source.unwrap_or(e.time_observation).micros().to_le_bytes());
    if let Some(s) = e.subject() {
        h.update(&[1]);
        h.update(s.as_bytes());
    }
    for (k, v) in &e.attrs {
        if k.starts_with("malware.hash.") {
            h.update(k.as_bytes());
            h.update(v.to_json().to_string().as_bytes());
        }
    }
    h.digest() as i64
}

/// One value of the document, borrowed from the event where it can be.
enum Field<'a> {
    Str(&'a str),
    Owned(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Field<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        // Serialising a str or number into a Vec cannot fail.
        let _ = match self {
            Field::Str(s) => serde_json::to_writer(&mut *out, s),
            Field::Owned(s) => serde_json::to_writer(&mut *out, s),
            Field::Int(i) => serde_json::to_writer(&mut *out, i),
            Field::Float(f) => serde_json::to_writer(&mut *out, f),
            Field::Bool(b) => serde_json::to_writer(&mut *out, b),
        };
    }
}

struct EndpointKeys {
    ip: &'static str,
    asn: &'static str,
    cc: &'static str,
    port: &'static str,
    as_name: &'static str,
    network: &'static str,
    fqdn: &'static str,
    url: &'static str,
}

const SOURCE: EndpointKeys = EndpointKeys {
    ip: "source.ip",
    asn: "source.asn",
    cc: "source.geolocation.cc",
    port: "source.port",
    as_name: "source.as_name",
    network: "source.network",
    fqdn: "source.fqdn",
    url: "source.url",
};

const DESTINATION: EndpointKeys = EndpointKeys {
    ip: "destination.ip",
    asn: "destination.asn",
    cc: "destination.geolocation.cc",
    port: "destination.port",
    as_name: "destination.as_name",
    network: "destination.network",
    fqdn: "destination.fqdn",
    url: "destination.url",
};

fn endpoint<'a>(k: &EndpointKeys, e: &'a Endpoint, typed: bool, f: &mut impl FnMut(&'static str, Field<'a>)) {
    if !typed {
        if let Some(ip) = e.ip {
            f(k.ip, Field::Owned(ip.to_string()));
        }
        if let Some(a) = e.asn {
            f(k.asn, Field::Int(a as i64));
        }
        if let Some(c) = &e.cc {
            f(k.cc, Field::Str(c.as_str()));
        }
    }
    if let Some(p) = e.port {
        f(k.port, Field::Int(p as i64));
    }
    if let Some(a) = &e.as_name {
        f(k.as_name, Field::Str(a.as_str()));
    }
    if let Some(n) = e.network {
        f(k.network, Field::Owned(n.to_string()));
    }
    if let Some(x) = &e.fqdn {
        f(k.fqdn, Field::Str(x.as_str()));
    }
    if let Some(u) = &e.url {
        f(k.url, Field::Str(u.as_str()));
    }
}

/// Every IntelMQ key of the event not kept in a column, with its value.
fn fields<'a>(e: &'a Event, mut f: impl FnMut(&'static str, Field<'a>)) {
    endpoint(&SOURCE, &e.source, true, &mut f);
    endpoint(&DESTINATION, &e.destination, false, &mut f);
    if let Some(x) = &e.classification_identifier {
        f("classification.identifier", Field::Str(x.as_str()));
    }
    if let Some(x) = &e.protocol_transport {
        f("protocol.transport", Field::Str(x.as_str()));
    }
    if let Some(x) = &e.protocol_application {
        f("protocol.application", Field::Str(x.as_str()));
    }
    if let Some(t) = e.tlp {
        f("tlp", Field::Str(t.as_str()));
    }
    for (k, v) in &e.attrs {
        f(
            k,
            match v {
                Value::Str(s) => Field::Str(s.as_str()),
                Value::Int(i) => Field::Int(*i),
                Value::Float(x) => Field::Float(*x),
                Value::Bool(b) => Field::Bool(*b),
            },
        );
    }
}

/// The document as a JSON object: every IntelMQ key of the event not kept in a column.
pub fn document(e: &Event, out: &mut Vec<u8>) {
    let mut first = true;
    fields(e, |k, v| {
        out.push(if first { b'{' } else { b',' });
        first = false;
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        v.write(out);
    });
    if first {
        out.push(b'{');
    }
    out.push(b'}');
}

/// A report's dictionary of document keys. Every event of a report carries much the same
/// keys (`extra.destination.naics`, …), which were two thirds of a stored document; with
/// the dictionary stored once per report, a document is a JSON array of values by key
/// position (`null` where the event has no value, trailing ones left out). Fewer bytes per
/// event is the largest single lever on the writer's speed and on the database size.
#[derive(Debug, Default)]
pub struct DocKeys {
    /// Keys are `&'static str` (interned or literals), so their address identifies them and
    /// hashing is one multiply instead of hashing the text.
    index: HashMap<(usize, usize), u32, BuildHasherDefault<AddrHasher>>,
    /// Same key text at another address (a key interned twice): found by text.
    by_text: HashMap<&'static str, u32>,
    keys: Vec<&'static str>,
}

#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl DocKeys {
    fn slot(&mut self, k: &'static str) -> usize {
        let addr = (k.as_ptr() as usize, k.len());
        if let Some(&i) = self.index.get(&addr) {
            return i as usize;
        }
        let i = match self.by_text.get(k) {
            Some(&i) => i,
            None => {
                let i = self.keys.len() as u32;
                self.keys.push(k);
                self.by_text.insert(k, i);
                i
            }
        };
        self.index.insert(addr, i);
        i as usize
    }

    /// Writes `e`'s document as an array over this dictionary, adding keys it lacks.
    pub fn document(&mut self, e: &Event, out: &mut Vec<u8>) {
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(32);
        let mut vals: Vec<Field<'_>> = Vec::with_capacity(32);
        fields(e, |k, v| {
            placed.push((self.slot(k), vals.len()));
            vals.push(v);
        });
        placed.sort_unstable();
        out.push(b'[');
        let mut next = 0;
        for (slot, vi) in placed {
            if slot < next {
                // The same key twice in one event: the first value wins, as in the object form.
                continue;
            }
            while next < slot {
                out.extend_from_slice(if next == 0 { b"null" } else { b",null" });
                next += 1;
            }
            if slot > 0 {
                out.push(b',');
            }
            vals[vi].write(out);
            next = slot + 1;
        }
        out.push(b']');
    }

    /// The keys in slot order, to store with the report.
    pub fn keys(&self) -> &[&'static str] {
        &self.keys
    }
}

/// Reads a stored document, object or array form, into IntelMQ key/value pairs.
pub fn read_document(
    doc: &str,
    keys: Option<&[String]>,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let v: serde_json::Value = serde_json::from_str(doc).map_err(|e| e.to_string())?;
    match v {
        serde_json::Value::Object(m) => Ok(m),
        serde_json::Value::Array(a) => {
            // An event without document keys leaves the dictionary empty, stored as none.
            let keys = if a.is_empty() {
                &[][..]
            } else {
                keys.ok_or("array document but the report has no key dictionary")?
            };
            if a.len() > keys.len() {
                return Err(format!("document has {} values, dictionary {} keys", a.len(), keys.len()));
            }
            Ok(a.into_iter().zip(keys).filter(|(v, _)| !v.is_null()).map(|(v, k)| (k.clone(), v)).collect())
        }
        _ => Err("document is neither an object nor an array".into()),
    }
}

/// Encodes with a self-describing (object) document.
pub fn encode(e: &Event) -> EncodedEvent {
    let mut doc = Vec::with_capacity(512);
    document(e, &mut doc);
    encoded(e, doc)
}

/// Encodes with a compact (array) document over the report's key dictionary, which must be
/// stored with the report ([`crate::ReportTotals::doc_keys`]).
pub fn encode_with(e: &Event, keys: &mut DocKeys) -> EncodedEvent {
    let mut doc = Vec::with_capacity(256);
    keys.document(e, &mut doc);
    encoded(e, doc)
}

fn encoded(e: &Event, doc: Vec<u8>) -> EncodedEvent {
    EncodedEvent {
        fingerprint: fingerprint(e),
        line: e.line as i64,
        feed: e.feed.id.clone(),
        accuracy: e.feed.accuracy as f64,
        subject: e.subject(),
        time: e.time_source.unwrap_or(e.time_observation).micros(),
        time_source: e.time_source.map(|t| t.micros()),
        time_observation: e.time_observation.micros(),
        ip: e.source.ip.map(ip_key),
        asn: e.source.asn,
        cc: e.source.cc.clone(),
        ty: e.classification_type.as_str(),
        family: e.malware_name.clone(),
        tlp: e.tlp.map(|t| t as u8),
        doc,
        observation: None,
        raw: e.raw.clone(),
    }
}

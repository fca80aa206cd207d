//! Events encoded for storage, off the writer's thread.
//!
//! The store writer is the pipeline's serial stage, so everything that can happen before
//! it (fingerprints, the JSON document, address keys) happens here, on the parser's
//! thread. The document holds only what the typed columns do not: feed metadata lives once
//! per report, and time, addresses, ASN, country, type and family are columns.

use crate::ip_key;
use botwatch_model::{Endpoint, Event, Value};
use bytes::Bytes;
use std::io::Write;

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
    pub raw: Bytes,
}

/// Same feed, same raw line, same time: the same event, whichever report carries it.
pub fn fingerprint(e: &Event) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(e.feed.id.as_bytes());
    h.update(&[0]);
    h.update(&e.raw);
    h.update(&e.time_source.unwrap_or(e.time_observation).micros().to_le_bytes());
    h.digest() as i64
}

fn put(out: &mut Vec<u8>, first: &mut bool, key: &str, v: impl serde::Serialize) {
    out.push(if *first { b'{' } else { b',' });
    *first = false;
    // Serialising a str or number into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, &v);
}

fn endpoint(out: &mut Vec<u8>, first: &mut bool, prefix: &str, e: &Endpoint, typed: bool) {
    let k = |s: &str| format!("{prefix}.{s}");
    if !typed {
        if let Some(ip) = e.ip {
            put(out, first, &k("ip"), ip.to_string());
        }
        if let Some(a) = e.asn {
            put(out, first, &k("asn"), a);
        }
        if let Some(c) = &e.cc {
            put(out, first, &k("geolocation.cc"), c.as_str());
        }
    }
    if let Some(p) = e.port {
        put(out, first, &k("port"), p);
    }
    if let Some(a) = &e.as_name {
        put(out, first, &k("as_name"), a.as_str());
    }
    if let Some(n) = e.network {
        put(out, first, &k("network"), n.to_string());
    }
    if let Some(f) = &e.fqdn {
        put(out, first, &k("fqdn"), f.as_str());
    }
    if let Some(u) = &e.url {
        put(out, first, &k("url"), u.as_str());
    }
}

/// The document: every IntelMQ key of the event not kept in a column.
pub fn document(e: &Event, out: &mut Vec<u8>) {
    let mut first = true;
    endpoint(out, &mut first, "source", &e.source, true);
    endpoint(out, &mut first, "destination", &e.destination, false);
    if let Some(x) = &e.classification_identifier {
        put(out, &mut first, "classification.identifier", x.as_str());
    }
    if let Some(x) = &e.protocol_transport {
        put(out, &mut first, "protocol.transport", x.as_str());
    }
    if let Some(x) = &e.protocol_application {
        put(out, &mut first, "protocol.application", x.as_str());
    }
    if let Some(t) = e.tlp {
        put(out, &mut first, "tlp", t.as_str());
    }
    for (k, v) in &e.attrs {
        match v {
            Value::Str(s) => put(out, &mut first, k, s.as_str()),
            Value::Int(i) => put(out, &mut first, k, i),
            Value::Float(f) => put(out, &mut first, k, f),
            Value::Bool(b) => put(out, &mut first, k, b),
        }
    }
    if first {
        out.push(b'{');
    }
    out.push(b'}');
    let _ = out.flush();
}

pub fn encode(e: &Event) -> EncodedEvent {
    let mut doc = Vec::with_capacity(512);
    document(e, &mut doc);
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
        doc,
        raw: e.raw.clone(),
    }
}

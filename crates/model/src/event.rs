//! The event: one line of one report, in IntelMQ's harmonised vocabulary.
//!
//! The fields every stage reads (addresses, ports, ASN, classification, family, times) are
//! typed; everything else a feed carries lives in [`Event::attrs`] under its full IntelMQ key
//! (`source.reverse_dns`, `extra.tag`, …), so nothing a feed says is lost and export to
//! IntelMQ's flat JSON is a mapping, not a translation.

use crate::intern::intern;
use crate::taxonomy::{ClassificationType, Tlp};
use crate::time::{Timestamp, parse_timestamp};
use bytes::Bytes;
use compact_str::CompactString;
use ipnet::IpNet;
use serde_json::{Map, Value as Json};
use std::net::IpAddr;
use std::sync::Arc;

pub type Text = CompactString;

/// What IntelMQ calls `feed.*`; shared by every event of a report.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeedInfo {
    /// botwatch's feed id, `<provider>_<feed>`; IntelMQ's `feed.code`.
    pub id: Text,
    pub name: Text,
    pub provider: Text,
    /// 0–100, IntelMQ's `feed.accuracy`; how far one sighting from this feed is trusted.
    pub accuracy: f32,
    pub url: Option<Text>,
    pub documentation: Option<Text>,
}

impl FeedInfo {
    pub fn new(id: &str, name: &str, provider: &str, accuracy: f32) -> Self {
        FeedInfo {
            id: id.into(),
            name: name.into(),
            provider: provider.into(),
            accuracy,
            url: None,
            documentation: None,
        }
    }
}

/// A value under a free-form key.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Text),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    pub fn to_json(&self) -> Json {
        match self {
            Value::Str(s) => Json::String(s.to_string()),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Value::Bool(b) => Json::Bool(*b),
        }
    }
    fn from_json(v: &Json) -> Option<Value> {
        Some(match v {
            Json::String(s) => Value::Str(s.into()),
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            },
            Json::Null => return None,
            other => Value::Str(other.to_string().into()),
        })
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `source.*` or `destination.*`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub asn: Option<u32>,
    pub as_name: Option<Text>,
    pub network: Option<IpNet>,
    pub fqdn: Option<Text>,
    pub url: Option<Text>,
    /// ISO 3166-1 alpha-2, upper case: `*.geolocation.cc`.
    pub cc: Option<Text>,
}

impl Endpoint {
    /// Names no host: no address, network, host name or URL.
    pub fn lacks_host(&self) -> bool {
        self.ip.is_none() && self.network.is_none() && self.fqdn.is_none() && self.url.is_none()
    }

    /// Names nothing: no address, network, host, URL or AS.
    pub fn is_empty(&self) -> bool {
        self.ip.is_none()
            && self.network.is_none()
            && self.fqdn.is_none()
            && self.url.is_none()
            && self.asn.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub feed: Arc<FeedInfo>,
    pub time_source: Option<Timestamp>,
    pub time_observation: Timestamp,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub classification_type: ClassificationType,
    pub classification_identifier: Option<Text>,
    pub malware_name: Option<Text>,
    pub protocol_transport: Option<Text>,
    pub protocol_application: Option<Text>,
    pub tlp: Option<Tlp>,
    /// Every other IntelMQ key, by full dotted name, in the order the feed gave them.
    pub attrs: Vec<(&'static str, Value)>,
    /// The original line (or JSON object) exactly as received.
    pub raw: Bytes,
    /// 1-based line number in the report (for JSON feeds: the object's index, 1-based).
    pub line: u64,
}

/// Why a value could not be put in a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error("invalid IP address {0:?}")]
    Ip(String),
    #[error("invalid port {0:?}")]
    Port(String),
    #[error("invalid ASN {0:?}")]
    Asn(String),
    #[error("invalid network {0:?}")]
    Network(String),
    #[error("invalid timestamp {0:?}")]
    Time(String),
    #[error("invalid classification.type {0:?}")]
    Type(String),
    #[error("invalid TLP {0:?}")]
    Tlp(String),
    #[error("invalid country code {0:?}")]
    Country(String),
    #[error("invalid FQDN {0:?}")]
    Fqdn(String),
}

/// Where an IntelMQ key lands in an [`Event`]; resolved once per column, not per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    TimeSource,
    TimeObservation,
    Endpoint(Side, EndpointField),
    ClassificationType,
    ClassificationIdentifier,
    /// Derived from the type; accepted and ignored on input.
    ClassificationTaxonomy,
    MalwareName,
    ProtocolTransport,
    ProtocolApplication,
    Tlp,
    Raw,
    /// `feed.*`: owned by the report, ignored on input.
    Feed,
    Attr(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointField {
    Ip,
    Port,
    Asn,
    AsName,
    Network,
    Fqdn,
    Url,
    Cc,
}

impl Slot {
    pub fn for_key(key: &str) -> Slot {
        let endpoint = |rest: &str, side| {
            let f = match rest {
                "ip" => EndpointField::Ip,
                "port" => EndpointField::Port,
                "asn" => EndpointField::Asn,
                "as_name" => EndpointField::AsName,
                "network" => EndpointField::Network,
                "fqdn" => EndpointField::Fqdn,
                "url" => EndpointField::Url,
                "geolocation.cc" => EndpointField::Cc,
                _ => return None,
            };
            Some(Slot::Endpoint(side, f))
        };
        if let Some(r) = key.strip_prefix("source.") {
            if let Some(s) = endpoint(r, Side::Source) {
                return s;
            }
        } else if let Some(r) = key.strip_prefix("destination.")
            && let Some(s) = endpoint(r, Side::Destination)
        {
            return s;
        }
        match key {
            "time.source" => Slot::TimeSource,
            "time.observation" => Slot::TimeObservation,
            "classification.type" => Slot::ClassificationType,
            "classification.identifier" => Slot::ClassificationIdentifier,
            "classification.taxonomy" => Slot::ClassificationTaxonomy,
            "malware.name" => Slot::MalwareName,
            "protocol.transport" => Slot::ProtocolTransport,
            "protocol.application" => Slot::ProtocolApplication,
            "tlp" => Slot::Tlp,
            "raw" => Slot::Raw,
            k if k.starts_with("feed.") => Slot::Feed,
            k => Slot::Attr(intern(k)),
        }
    }
}

/// Strips brackets and zone ids that some feeds put around IPv6 addresses.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

pub fn parse_asn(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s.strip_prefix("AS").or_else(|| s.strip_prefix("as")).unwrap_or(s);
    s.parse().ok()
}

/// A network in CIDR form; a bare address becomes a host route.
pub fn parse_network(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n.trunc());
    }
    parse_ip(s).map(IpNet::from)
}

/// A DNS name: labels of 1–63 letters, digits, hyphens or underscores, 253 characters at most.
pub fn valid_fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.contains('.')
        && parse_ip(s).is_none()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

impl Event {
    pub fn new(feed: Arc<FeedInfo>, classification_type: ClassificationType, observed: Timestamp) -> Self {
        Event {
            feed,
            time_source: None,
            time_observation: observed,
            source: Endpoint::default(),
            destination: Endpoint::default(),
            classification_type,
            classification_identifier: None,
            malware_name: None,
            protocol_transport: None,
            protocol_application: None,
            tlp: None,
            attrs: Vec::new(),
            raw: Bytes::new(),
            line: 0,
        }
    }

    pub fn endpoint_mut(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Source => &mut self.source,
            Side::Destination => &mut self.destination,
        }
    }

    /// Puts a textual value into a slot, validating typed fields.
    pub fn set_str(&mut self, slot: Slot, v: &str) -> Result<(), FieldError> {
        match slot {
            Slot::TimeSource => {
                self.time_source = Some(parse_timestamp(v).ok_or_else(|| FieldError::Time(v.into()))?)
            }
            Slot::TimeObservation => {
                self.time_observation = parse_timestamp(v).ok_or_else(|| FieldError::Time(v.into()))?
            }
            Slot::Endpoint(side, f) => {
                let e = self.endpoint_mut(side);
                match f {
                    EndpointField::Ip => e.ip = Some(parse_ip(v).ok_or_else(|| FieldError::Ip(v.into()))?),
                    EndpointField::Port => {
                        e.port = Some(v.trim().parse().map_err(|_| FieldError::Port(v.into()))?)
                    }
                    EndpointField::Asn => {
                        e.asn = Some(parse_asn(v).ok_or_else(|| FieldError::Asn(v.into()))?)
                    }
                    EndpointField::AsName => e.as_name = Some(v.into()),
                    EndpointField::Network => {
                        e.network = Some(parse_network(v).ok_or_else(|| FieldError::Network(v.into()))?)
                    }
                    EndpointField::Fqdn => {
                        let v = v.trim();
                        if !valid_fqdn(v) {
                            return Err(FieldError::Fqdn(v.into()));
                        }
                        e.fqdn = Some(v.trim_end_matches('.').to_ascii_lowercase().into())
                    }
                    EndpointField::Url => e.url = Some(v.into()),
                    EndpointField::Cc => {
                        let v = v.trim();
                        if v.len() != 2 || !v.bytes().all(|c| c.is_ascii_alphabetic()) {
                            return Err(FieldError::Country(v.into()));
                        }
                        e.cc = Some(v.to_ascii_uppercase().into())
                    }
                }
            }
            Slot::ClassificationType => {
                self.classification_type =
                    ClassificationType::from_name(v).ok_or_else(|| FieldError::Type(v.into()))?
            }
            Slot::ClassificationIdentifier => self.classification_identifier = Some(v.into()),
            Slot::ClassificationTaxonomy | Slot::Feed | Slot::Raw => {}
            Slot::MalwareName => self.malware_name = Some(v.into()),
            Slot::ProtocolTransport => self.protocol_transport = Some(v.to_ascii_lowercase().into()),
            Slot::ProtocolApplication => self.protocol_application = Some(v.to_ascii_lowercase().into()),
            Slot::Tlp => self.tlp = Some(Tlp::from_name(v).ok_or_else(|| FieldError::Tlp(v.into()))?),
            Slot::Attr(k) => self.attrs.push((k, Value::Str(v.into()))),
        }
        Ok(())
    }

    /// Puts a typed value into a slot; non-strings go to typed fields by their text.
    pub fn set_value(&mut self, slot: Slot, v: Value) -> Result<(), FieldError> {
        match (slot, v) {
            (Slot::Attr(k), v) => {
                self.attrs.push((k, v));
                Ok(())
            }
            (Slot::Endpoint(side, EndpointField::Port), Value::Int(i)) => {
                self.endpoint_mut(side).port =
                    Some(u16::try_from(i).map_err(|_| FieldError::Port(i.to_string()))?);
                Ok(())
            }
            (Slot::Endpoint(side, EndpointField::Asn), Value::Int(i)) => {
                self.endpoint_mut(side).asn =
                    Some(u32::try_from(i).map_err(|_| FieldError::Asn(i.to_string()))?);
                Ok(())
            }
            (slot, Value::Str(s)) => self.set_str(slot, &s),
            (slot, other) => self.set_str(slot, &other.to_string()),
        }
    }

    /// Sets an attribute by IntelMQ key (interning the key).
    pub fn set_attr(&mut self, key: &str, v: Value) {
        self.attrs.push((intern(key), v));
    }

    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// What dedup and cases count: the source address, else its network, host name, URL or AS.
    pub fn subject(&self) -> Option<String> {
        let s = &self.source;
        if let Some(ip) = s.ip {
            return Some(ip.to_string());
        }
        if let Some(n) = s.network {
            return Some(n.to_string());
        }
        if let Some(f) = &s.fqdn {
            return Some(f.to_string());
        }
        if let Some(u) = &s.url {
            return Some(u.to_string());
        }
        // ASN-DROP and similar list whole networks by AS number.
        s.asn.map(|a| format!("AS{a}"))
    }

    /// The flat, dotted-key object IntelMQ's file output writes (keys sorted). `raw` is base64
    /// as in IntelMQ when `with_raw`.
    pub fn to_intelmq(&self, with_raw: bool) -> Map<String, Json> {
        let mut m = Map::new();
        let f = &self.feed;
        m.insert("feed.code".into(), Json::String(f.id.to_string()));
        m.insert("feed.name".into(), Json::String(f.name.to_string()));
        m.insert("feed.provider".into(), Json::String(f.provider.to_string()));
        m.insert("feed.accuracy".into(), Json::from(f.accuracy as f64));
        if let Some(u) = &f.url {
            m.insert("feed.url".into(), Json::String(u.to_string()));
        }
        if let Some(u) = &f.documentation {
            m.insert("feed.documentation".into(), Json::String(u.to_string()));
        }
        if let Some(t) = self.time_source {
            m.insert("time.source".into(), Json::String(t.to_rfc3339()));
        }
        m.insert("time.observation".into(), Json::String(self.time_observation.to_rfc3339()));
        for (prefix, e) in [("source", &self.source), ("destination", &self.destination)] {
            let mut put = |k: &str, v: Json| {
                m.insert(format!("{prefix}.{k}"), v);
            };
            if let Some(ip) = e.ip {
                put("ip", Json::String(ip.to_string()));
            }
            if let Some(p) = e.port {
                put("port", Json::from(p));
            }
            if let Some(a) = e.asn {
                put("asn", Json::from(a));
            }
            if let Some(a) = &e.as_name {
                put("as_name", Json::String(a.to_string()));
            }
            if let Some(n) = e.network {
                put("network", Json::String(n.to_string()));
            }
            if let Some(x) = &e.fqdn {
                put("fqdn", Json::String(x.to_string()));
            }
            if let Some(x) = &e.url {
                put("url", Json::String(x.to_string()));
            }
            if let Some(x) = &e.cc {
                put("geolocation.cc", Json::String(x.to_string()));
            }
        }
        m.insert("classification.taxonomy".into(), Json::String(self.classification_type.taxonomy().into()));
        m.insert("classification.type".into(), Json::String(self.classification_type.as_str().into()));
        if let Some(x) = &self.classification_identifier {
            m.insert("classification.identifier".into(), Json::String(x.to_string()));
        }
        if let Some(x) = &self.malware_name {
            m.insert("malware.name".into(), Json::String(x.to_string()));
        }
        if let Some(x) = &self.protocol_transport {
            m.insert("protocol.transport".into(), Json::String(x.to_string()));
        }
        if let Some(x) = &self.protocol_application {
            m.insert("protocol.application".into(), Json::String(x.to_string()));
        }
        if let Some(t) = self.tlp {
            m.insert("tlp".into(), Json::String(t.as_str().into()));
        }
        for (k, v) in &self.attrs {
            m.insert((*k).to_string(), v.to_json());
        }
        if with_raw {
            use base64::Engine as _;
            m.insert("raw".into(), Json::String(base64::engine::general_purpose::STANDARD.encode(&self.raw)));
        }
        m
    }

    /// Rebuilds an event from IntelMQ's flat form (what [`Event::to_intelmq`] wrote, or an
    /// IntelMQ file output line). Unknown keys become attributes.
    pub fn from_intelmq(m: &Map<String, Json>) -> Result<Event, FieldError> {
        let s = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let feed = FeedInfo {
            id: s("feed.code").into(),
            name: s("feed.name").into(),
            provider: s("feed.provider").into(),
            accuracy: m.get("feed.accuracy").and_then(|v| v.as_f64()).unwrap_or(100.0) as f32,
            url: m.get("feed.url").and_then(|v| v.as_str()).map(Into::into),
            documentation: m.get("feed.documentation").and_then(|v| v.as_str()).map(Into::into),
        };
        let ty = m
            .get("classification.type")
            .and_then(|v| v.as_str())
            .map(|t| ClassificationType::from_name(t).ok_or_else(|| FieldError::Type(t.into())))
            .transpose()?
            .unwrap_or(ClassificationType::Undetermined);
        let observed = m
            .get("time.observation")
            .and_then(|v| v.as_str())
            .and_then(parse_timestamp)
            .unwrap_or(Timestamp(0));
        let mut e = Event::new(Arc::new(feed), ty, observed);
        for (k, v) in m {
            let slot = Slot::for_key(k);
            match slot {
                Slot::Feed
                | Slot::ClassificationType
                | Slot::TimeObservation
                | Slot::ClassificationTaxonomy => {}
                Slot::Raw => {
                    use base64::Engine as _;
                    if let Some(b) =
                        v.as_str().and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
                    {
                        e.raw = Bytes::from(b);
                    }
                }
                slot => {
                    if let Some(val) = Value::from_json(v) {
                        e.set_value(slot, val)?;
                    }
                }
            }
        }
        Ok(e)
    }
}

/// A line that could not become an event: kept whole, with where and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    pub line: u64,
    pub raw: Bytes,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A column the publisher's schema does not know; its values are kept under `extra.`.
    SchemaDrift,
    /// An optional value that failed validation; kept raw under `extra.`.
    InvalidValue,
    /// Anything else worth a line in the summary.
    Other,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub line: Option<u64>,
    pub message: String,
}

/// Where a parser puts what it produces. Parsers never do I/O; the sink decides whether
/// events are collected, streamed to the store, or counted.
pub trait Sink {
    fn event(&mut self, e: Event);
    fn reject(&mut self, r: Reject);
    fn warning(&mut self, w: Warning);
}

/// A sink that keeps everything in memory: tests, small reports.
#[derive(Default, Debug)]
pub struct Collected {
    pub events: Vec<Event>,
    pub rejects: Vec<Reject>,
    pub warnings: Vec<Warning>,
}

impl Sink for Collected {
    fn event(&mut self, e: Event) {
        self.events.push(e)
    }
    fn reject(&mut self, r: Reject) {
        self.rejects.push(r)
    }
    fn warning(&mut self, w: Warning) {
        self.warnings.push(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intelmq_roundtrip_keeps_meaning() {
        let feed = Arc::new(FeedInfo::new("x_y", "Y", "X", 90.0));
        let mut e = Event::new(feed, ClassificationType::InfectedSystem, Timestamp::from_secs(1_600_000_000));
        e.set_str(Slot::for_key("source.ip"), "192.0.2.1").unwrap();
        e.set_str(Slot::for_key("source.port"), "443").unwrap();
        e.set_str(Slot::for_key("source.geolocation.cc"), "at").unwrap();
        e.set_str(Slot::for_key("malware.name"), "emotet").unwrap();
        e.set_str(Slot::for_key("extra.tag"), "sinkhole").unwrap();
        e.set_value(Slot::for_key("extra.count"), Value::Int(3)).unwrap();
        e.raw = Bytes::from_static(b"a,b,c");
        let m = e.to_intelmq(true);
        assert_eq!(m["classification.taxonomy"], "malicious-code");
        assert_eq!(m["source.geolocation.cc"], "AT");
        let back = Event::from_intelmq(&m).unwrap();
        assert_eq!(back.to_intelmq(true), m);
    }

    #[test]
    fn field_validation() {
        let feed = Arc::new(FeedInfo::new("x_y", "Y", "X", 90.0));
        let mut e = Event::new(feed, ClassificationType::Other, Timestamp(0));
        assert!(e.set_str(Slot::for_key("source.ip"), "999.1.1.1").is_err());
        assert!(e.set_str(Slot::for_key("source.port"), "70000").is_err());
        assert!(e.set_str(Slot::for_key("source.fqdn"), "bad..name").is_err());
        assert!(e.set_str(Slot::for_key("source.fqdn"), "Good.Example.").is_ok());
        assert_eq!(e.source.fqdn.as_deref(), Some("good.example"));
        assert!(e.set_str(Slot::for_key("source.network"), "10.1.2.3/8").is_ok());
        assert_eq!(e.source.network.unwrap().to_string(), "10.0.0.0/8");
    }
}

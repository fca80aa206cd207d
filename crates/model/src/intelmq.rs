//! Events as a given IntelMQ version accepts them: IntelMQ 3.5's harmonisation.
//!
//! botwatch's own model is a superset of IntelMQ's (TLP 2.0, `blocklist`, keys some feeds
//! carry that IntelMQ has no name for, values IntelMQ only takes after "sanitation"), so the
//! export maps on the way out, the same way for every event:
//! - `classification.type` `blocklist` → `blacklist` (IntelMQ's name for it);
//! - TLP 2.0 → TLP 1.0: `CLEAR` → `WHITE`; `AMBER+STRICT` → `AMBER` (TLP 1.0's AMBER is
//!   "participants' organisations only", which is AMBER+STRICT's meaning; the original
//!   spelling is kept in `extra.tlp`);
//! - a key IntelMQ does not define → `extra.<key>`, and every `extra.` key made to match
//!   IntelMQ's pattern (`[a-z_][a-z_0-9]+(\.[a-z_0-9]+)*`);
//! - a value IntelMQ would reject for its key's type (an address `0.0.0.0`, AS 0, a URL
//!   without a host, an unknown transport, a non-ASCII family name, …) → `extra.<key>`
//!   unchanged, so nothing is lost; values it would silently drop (empty, `-`, `N/A`) are
//!   left out; values it accepts only after cleaning (upper-case host names, trailing dots,
//!   numbers as strings, times with `Z`) are written in the form it accepts as is.
//!
//! The key list and types are those of IntelMQ 3.5.0's `harmonization.conf` (names and
//! types only, for interoperability). A test loads every exported line with IntelMQ's own
//! `MessageFactory` and checks every key and value with its harmonisation.

use crate::time::parse_timestamp;
use serde_json::{Map, Value as Json};
use std::net::IpAddr;

/// The IntelMQ version whose harmonisation [`harmonise`] targets.
pub const TARGET: &str = "3.5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Asn,
    Accuracy,
    Base64,
    Boolean,
    Taxonomy,
    Type,
    DateTime,
    Fqdn,
    Float,
    Ip,
    Network,
    Integer,
    /// `source.port`: an integer of at most five digits.
    Port,
    JsonAny,
    Lower,
    /// Lower case, printable ASCII (`malware.name`, `protocol.application`, …), at most N.
    LowerAscii(usize),
    Registry,
    Str,
    /// Printable ASCII, at most N characters (hashes, `malware.version`).
    Ascii(usize),
    StrMax(usize),
    Tlp,
    Transport,
    Url,
    /// Two characters `[A-Za-z0-9]`, upper case.
    CountryCode,
    Severity,
    Uuid,
    EventHash,
}

fn kind(key: &str) -> Option<Kind> {
    use Kind::*;
    Some(match key {
        "classification.identifier" | "comment" | "constituency" | "status" => Str,
        "classification.taxonomy" => Taxonomy,
        "classification.type" => Type,
        "event_description.target" | "event_description.text" => Str,
        "event_description.url" | "screenshot_url" | "feed.url" => Url,
        "event_hash" => EventHash,
        "feed.accuracy" => Accuracy,
        "feed.code" => StrMax(100),
        "feed.documentation" | "feed.name" | "feed.provider" => Str,
        "malware.hash.md5" | "malware.hash.sha1" | "malware.hash.sha256" => Ascii(200),
        "malware.name" => LowerAscii(usize::MAX),
        "malware.version" => Ascii(usize::MAX),
        "misp.attribute_uuid" | "misp.event_uuid" => Uuid,
        "output" => JsonAny,
        "product.full_name" => Str,
        "product.name" | "product.vendor" | "product.version" | "product.vulnerabilities" => Lower,
        "protocol.application" => LowerAscii(100),
        "protocol.transport" => Transport,
        "raw" => Base64,
        "rtir_id" => Integer,
        "severity" => Severity,
        "time.observation" | "time.source" => DateTime,
        "tlp" => Tlp,
        "source.port" => Port,
        _ => {
            let (side, rest) = key.split_once('.')?;
            if side != "source" && side != "destination" {
                return None;
            }
            match rest {
                "abuse_contact" => Lower,
                "account" | "as_name" | "local_hostname" | "urlpath" => Str,
                "geolocation.city" | "geolocation.country" | "geolocation.region" | "geolocation.state" => {
                    Str
                }
                "allocated" => DateTime,
                "asn" => Asn,
                "domain_suffix" | "fqdn" | "reverse_dns" => Fqdn,
                "geolocation.cc" => CountryCode,
                "geolocation.cymru_cc" | "geolocation.geoip_cc" if side == "source" => CountryCode,
                "geolocation.latitude" | "geolocation.longitude" => Float,
                "ip" | "local_ip" => Ip,
                "network" => Network,
                "port" => Integer,
                "registry" => Registry,
                "tor_node" => Boolean,
                "url" => Url,
                _ => return None,
            }
        }
    })
}

/// IntelMQ 3.5's classification types.
const TYPES: &[&str] = &[
    "application-compromise",
    "blacklist",
    "brute-force",
    "burglary",
    "c2-server",
    "copyright",
    "data-leak",
    "data-loss",
    "ddos",
    "ddos-amplifier",
    "dga-domain",
    "dos",
    "exploit",
    "harmful-speech",
    "ids-alert",
    "infected-system",
    "information-disclosure",
    "malware",
    "malware-configuration",
    "malware-distribution",
    "masquerade",
    "misconfiguration",
    "other",
    "outage",
    "phishing",
    "potentially-unwanted-accessible",
    "privileged-account-compromise",
    "proxy",
    "sabotage",
    "scanner",
    "sniffing",
    "social-engineering",
    "spam",
    "system-compromise",
    "test",
    "tor",
    "unauthorised-information-access",
    "unauthorised-information-modification",
    "unauthorized-use-of-resources",
    "undetermined",
    "unprivileged-account-compromise",
    "violence",
    "vulnerable-system",
    "weak-crypto",
];

const TAXONOMIES: &[&str] = &[
    "abusive-content",
    "availability",
    "fraud",
    "information-content-security",
    "information-gathering",
    "intrusion-attempts",
    "intrusions",
    "malicious-code",
    "other",
    "test",
    "vulnerable",
];

/// IANA protocol keywords botwatch's feeds carry, as IntelMQ spells them.
fn transport(s: &str) -> Option<&'static str> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        "ipv6-icmp" | "icmpv6" | "icmp6" | "58" => "ipv6-icmp",
        "sctp" | "132" => "sctp",
        "gre" | "47" => "gre",
        "esp" | "50" => "esp",
        "ah" | "51" => "ah",
        "igmp" | "2" => "igmp",
        "udplite" | "136" => "udplite",
        "dccp" | "33" => "dccp",
        "ipv6" | "41" => "ipv6",
        "ipv4" | "4" => "ipv4",
        _ => return None,
    })
}

fn printable_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// Values IntelMQ drops without a word.
fn dropped(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => matches!(s.as_str(), "" | "-" | "N/A"),
        _ => false,
    }
}

fn as_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_int(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// The value as IntelMQ accepts it for `kind` without sanitation, or `None` when it would
/// refuse it.
fn accept(kind: Kind, v: &Json) -> Option<Json> {
    use Kind::*;
    let text = || as_text(v).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    match kind {
        Str => text().map(Json::String),
        StrMax(n) => text().filter(|s| s.chars().count() <= n).map(Json::String),
        Ascii(n) => text().filter(|s| printable_ascii(s) && s.len() <= n).map(Json::String),
        Lower => text().map(|s| Json::String(s.to_lowercase())),
        LowerAscii(n) => text()
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| printable_ascii(s) && s.len() <= n)
            .map(Json::String),
        Asn => as_int(v).filter(|a| (1..=4_294_967_295).contains(a)).map(Json::from),
        Integer => as_int(v).map(Json::from),
        Port => as_int(v).filter(|p| (0..=99_999).contains(p)).map(Json::from),
        Float => as_float(v).map(Json::from),
        Accuracy => as_float(v).map(|a| Json::from(a.clamp(0.0, 100.0))),
        Boolean => match v {
            Json::Bool(b) => Some(Json::Bool(*b)),
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Json::Bool(true)),
                "false" | "0" | "no" => Some(Json::Bool(false)),
                _ => None,
            },
            _ => None,
        },
        Ip => text()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified() || ip.is_ipv6())
            .map(|ip| Json::String(ip.to_string())),
        Network => {
            text().and_then(|s| s.parse::<ipnet::IpNet>().ok()).map(|n| Json::String(n.trunc().to_string()))
        }
        Fqdn => text()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| {
                !s.is_empty()
                    && s.parse::<IpAddr>().is_err()
                    && !s.contains([':', '/', ' '])
                    && !s.starts_with('.')
                    && !s.contains("..")
                    && s.is_ascii()
            })
            .map(Json::String),
        Url => text().filter(|s| url_has_host(s)).map(Json::String),
        DateTime => text().and_then(|s| parse_timestamp(&s)).map(|t| Json::String(t.to_rfc3339())),
        Base64 => text()
            .filter(|s| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(s).is_ok()
            })
            .map(Json::String),
        JsonAny => Some(v.clone()),
        Registry => text()
            .map(|s| s.to_ascii_uppercase())
            .filter(|s| matches!(s.as_str(), "AFRINIC" | "APNIC" | "ARIN" | "LACNIC" | "RIPE"))
            .map(Json::String),
        Taxonomy => text().filter(|s| TAXONOMIES.contains(&s.as_str())).map(Json::String),
        Type => text()
            .map(|s| if s == "blocklist" { "blacklist".to_string() } else { s })
            .filter(|s| TYPES.contains(&s.as_str()))
            .map(Json::String),
        Tlp => text().and_then(|s| {
            Some(Json::String(
                match s.to_ascii_uppercase().trim_start_matches("TLP:") {
                    "CLEAR" | "WHITE" => "WHITE",
                    "GREEN" => "GREEN",
                    "AMBER" | "AMBER+STRICT" => "AMBER",
                    "RED" => "RED",
                    _ => return None,
                }
                .to_string(),
            ))
        }),
        Transport => text().and_then(|s| transport(&s)).map(|t| Json::String(t.into())),
        CountryCode => text()
            .filter(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(|s| Json::String(s.to_ascii_uppercase())),
        Severity => text()
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| matches!(s.as_str(), "critical" | "high" | "medium" | "low" | "info" | "undefined"))
            .map(Json::String),
        Uuid => text()
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| {
                let b = s.as_bytes();
                b.len() == 36
                    && b.iter().enumerate().all(|(i, c)| {
                        if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_alphanumeric() }
                    })
            })
            .map(Json::String),
        EventHash => text()
            .map(|s| s.to_ascii_uppercase())
            .filter(|s| s.len() <= 40 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'/'))
            .map(Json::String),
    }
}

/// What Python's `urlsplit(url).netloc` finds: `scheme://host…` with a non-empty host part.
fn url_has_host(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    scheme_ok && !host.is_empty()
}

/// An `extra.` key IntelMQ accepts: the whole key must match
/// `[a-z_][a-z_0-9]+(\.[a-z_0-9]+)*`, so lower-case ASCII letters, digits and `_` in
/// non-empty dot-separated segments.
fn extra_key(key: &str) -> String {
    let body = key.strip_prefix("extra.").unwrap_or(key);
    let segs: Vec<String> = body
        .split('.')
        .map(|seg| {
            seg.chars()
                .map(|c| c.to_ascii_lowercase())
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
                .collect::<String>()
        })
        .filter(|s| !s.is_empty() && s.chars().any(|c| c != '_'))
        .collect();
    if segs.is_empty() { "extra.value".into() } else { format!("extra.{}", segs.join(".")) }
}

/// `m` (what [`crate::Event::to_intelmq`] writes) as IntelMQ [`TARGET`] accepts it: see the
/// module documentation for what is mapped.
pub fn harmonise(m: Map<String, Json>) -> Map<String, Json> {
    let mut out = Map::new();
    let mut extra: Vec<(String, Json)> = Vec::new();
    for (k, v) in m {
        if dropped(&v) {
            continue;
        }
        if k.starts_with("extra.") || k == "extra" {
            extra.push((extra_key(&k), v));
            continue;
        }
        let Some(kind) = kind(&k) else {
            extra.push((extra_key(&k), v));
            continue;
        };
        match accept(kind, &v) {
            Some(ok) => {
                if kind == Kind::Tlp
                    && as_text(&v).is_some_and(|s| s.to_ascii_uppercase().ends_with("STRICT"))
                {
                    extra.push(("extra.tlp".into(), v));
                }
                out.insert(k, ok);
            }
            None => extra.push((extra_key(&k), v)),
        }
    }
    for (k, v) in extra {
        // A key the event already has under `extra.` keeps the event's own value.
        out.entry(k).or_insert(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(v: Json) -> Json {
        Json::Object(harmonise(v.as_object().unwrap().clone()))
    }

    #[test]
    fn maps_names_tlp_and_unknown_keys() {
        let out = h(json!({
            "classification.type": "blocklist", "classification.taxonomy": "other", "tlp": "AMBER+STRICT",
            "malware.hash.sha512": "ab", "extra.Foo-Bar": 1, "extra.2x": "y", "feed.name": "",
            "source.ip": "0.0.0.0", "source.asn": 0, "destination.url": "example.com/x",
            "protocol.transport": "ICMPv6", "source.reverse_dns": "Host.Example.", "feed.accuracy": 140.0,
            "malware.name": "Zeus ü", "time.source": "2026-11-24T10:00:00Z", "source.port": "443",
        }));
        assert_eq!(
            out,
            json!({
                "classification.type": "blacklist", "classification.taxonomy": "other", "tlp": "AMBER",
                "extra.tlp": "AMBER+STRICT", "extra.malware.hash.sha512": "ab", "extra.foo_bar": 1,
                "extra.2x": "y", "extra.source.ip": "0.0.0.0", "extra.source.asn": 0,
                "extra.destination.url": "example.com/x", "protocol.transport": "ipv6-icmp",
                "source.reverse_dns": "host.example", "feed.accuracy": 100.0, "extra.malware.name": "Zeus ü",
                "time.source": "2026-11-24T10:00:00+00:00", "source.port": 443,
            })
        );
        assert_eq!(h(json!({"tlp": "CLEAR"}))["tlp"], "WHITE");
    }

    #[test]
    fn extra_keys_match_intelmqs_pattern() {
        for k in ["extra.", "extra.A", "extra.é", "extra..x", "extra.a-b.C d", "extra.1", "extra.__"] {
            let e = extra_key(k);
            let segs: Vec<&str> = e.split('.').collect();
            assert_eq!(segs[0], "extra");
            assert!(segs.len() >= 2, "{e}");
            assert!(
                segs.iter().all(|s| !s.is_empty()
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
                "{e}"
            );
        }
        assert_eq!(extra_key("extra.Foo-Bar"), "extra.foo_bar");
        assert_eq!(extra_key("malware.hash.sha512"), "extra.malware.hash.sha512");
    }
}

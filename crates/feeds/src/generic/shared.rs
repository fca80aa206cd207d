//! Helpers the provider parsers share: telling an IP from a network, host name, URL or hash;
//! splitting quoted delimited records; naming `extra.*` keys; turning JSON scalars into
//! [`Value`]s; and sniffing report heads for detection.
//!
//! They live beside the generic parser because recognising "whatever is in this column" is
//! exactly its job; the provider modules reach them as `crate::generic::shared`.

use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{EndpointField, Event, Side, Slot, Value, parse_ip, valid_fqdn};
use ipnet::IpNet;
use serde_json::Value as Json;
use std::net::IpAddr;
use std::sync::Arc;

/// Builds a built-in feed's spec.
pub(crate) fn spec(
    id: &str,
    name: &str,
    provider: &str,
    accuracy: f32,
    documentation: &str,
    description: &str,
    parser: Arc<dyn Parser>,
) -> FeedSpec {
    FeedSpec {
        id: id.into(),
        name: name.into(),
        provider: provider.into(),
        accuracy,
        documentation: documentation.into(),
        description: description.into(),
        parser,
    }
}

/// A file hash, recognised by length (all feeds write them in hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Hash {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    /// The algorithm's name as STIX writes it in `hashes`.
    pub(crate) fn stix_name(self) -> &'static str {
        match self {
            Hash::Md5 => "MD5",
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA-256",
            Hash::Sha512 => "SHA-512",
        }
    }

    pub(crate) fn of(s: &str) -> Option<Hash> {
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(match s.len() {
            32 => Hash::Md5,
            40 => Hash::Sha1,
            64 => Hash::Sha256,
            128 => Hash::Sha512,
            _ => return None,
        })
    }

    /// The IntelMQ key the hash goes under.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Hash::Md5 => "malware.hash.md5",
            Hash::Sha1 => "malware.hash.sha1",
            Hash::Sha256 => "malware.hash.sha256",
            Hash::Sha512 => "malware.hash.sha512",
        }
    }

    /// Sets the hash (lower-cased) after checking it really is one of this kind.
    pub(crate) fn set(self, e: &mut Event, v: &str) -> Result<(), String> {
        let v = v.trim();
        if Hash::of(v) != Some(self) {
            return Err(format!(
                "{}: not a {} hex digest: {v:?}",
                self.key(),
                self.key().rsplit('.').next().unwrap_or("")
            ));
        }
        e.set_attr(self.key(), Value::Str(v.to_ascii_lowercase().into()));
        Ok(())
    }
}

/// What a free-form value is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Ip(IpAddr),
    Network(IpNet),
    Url,
    Fqdn,
    Hash(Hash),
    Other,
}

/// Classifies a value the way a human reading a blocklist would.
pub(crate) fn classify(s: &str) -> Kind {
    let s = s.trim();
    if let Some(ip) = parse_ip(s) {
        return Kind::Ip(ip);
    }
    if s.contains('/')
        && !s.contains("://")
        && let Ok(n) = s.parse::<IpNet>()
    {
        return Kind::Network(n);
    }
    if has_scheme(s) {
        return Kind::Url;
    }
    if let Some(h) = Hash::of(s) {
        return Kind::Hash(h);
    }
    if valid_fqdn(s) {
        return Kind::Fqdn;
    }
    Kind::Other
}

/// `scheme://` with a plausible scheme (letters, digits, `+-.`).
pub(crate) fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => {
            s[..i].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
        }
        _ => false,
    }
}

/// The host of a URL (with or without scheme), without user info, port or IPv6 brackets.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = match hostport.strip_prefix('[') {
        Some(r) => r.split_once(']').map(|(h, _)| h)?,
        None => hostport.split(':').next().unwrap_or(hostport),
    };
    (!host.is_empty()).then_some(host)
}

fn side_key(side: Side, field: &str) -> String {
    match side {
        Side::Source => format!("source.{field}"),
        Side::Destination => format!("destination.{field}"),
    }
}

/// Sets `<side>.ip`, or `<side>.network` for a CIDR (a host-length prefix is an IP).
pub(crate) fn set_ip_or_network(e: &mut Event, side: Side, v: &str) -> Result<(), String> {
    let v = v.trim();
    if let Some(ip) = parse_ip(v) {
        e.endpoint_mut(side).ip = Some(ip);
        return Ok(());
    }
    match v.parse::<IpNet>() {
        Ok(n) if n.prefix_len() == n.max_prefix_len() => e.endpoint_mut(side).ip = Some(n.addr()),
        Ok(n) => e.endpoint_mut(side).network = Some(n.trunc()),
        Err(_) => return Err(format!("{}: invalid IP address or network {v:?}", side_key(side, "ip"))),
    }
    Ok(())
}

/// Sets `<side>.ip` or `<side>.fqdn` from a host name or address.
pub(crate) fn set_host(e: &mut Event, side: Side, v: &str) -> Result<(), String> {
    let v = v.trim();
    if let Some(ip) = parse_ip(v) {
        e.endpoint_mut(side).ip = Some(ip);
        return Ok(());
    }
    e.set_str(Slot::Endpoint(side, EndpointField::Fqdn), v)
        .map_err(|err| format!("{}: {err}", side_key(side, "fqdn")))
}

/// Sets `<side>.url`, and fills the side's IP or FQDN from the URL's host when they are not
/// set yet (a host that is neither stays only in the URL).
pub(crate) fn set_url(e: &mut Event, side: Side, url: &str) -> Result<(), String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{}: invalid URL {url:?}", side_key(side, "url")));
    }
    e.endpoint_mut(side).url = Some(url.into());
    if let Some(host) = url_host(url) {
        let ep = e.endpoint_mut(side);
        if let Some(ip) = parse_ip(host) {
            ep.ip.get_or_insert(ip);
        } else if ep.fqdn.is_none() && valid_fqdn(host) {
            ep.fqdn = Some(host.trim_end_matches('.').to_ascii_lowercase().into());
        }
    }
    Ok(())
}

/// `extra.<name>` with the name lower-cased and runs of other characters folded into `_`.
pub(crate) fn extra_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 6);
    out.push_str("extra.");
    let start = out.len();
    let mut gap = false;
    for c in name.trim().chars() {
        if c.is_alphanumeric() || c == '.' {
            if gap && out.len() > start {
                out.push('_');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    if out.len() == start {
        out.push_str("unnamed");
    }
    out
}

/// A JSON value as an attribute value: `None` for null and empty strings; arrays of scalars
/// are joined with commas; objects and nested arrays keep their JSON text.
pub(crate) fn json_value(v: &Json) -> Option<Value> {
    match v {
        Json::Null => None,
        Json::String(s) if s.trim().is_empty() => None,
        Json::String(s) => Some(Value::Str(s.as_str().into())),
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::Int(i)),
            None => n.as_f64().map(Value::Float),
        },
        Json::Array(a) => {
            let parts: Vec<String> = a
                .iter()
                .filter_map(|x| match x {
                    Json::String(s) if !s.trim().is_empty() => Some(Some(s.clone())),
                    Json::String(_) | Json::Null => None,
                    Json::Number(n) => Some(Some(n.to_string())),
                    Json::Bool(b) => Some(Some(b.to_string())),
                    _ => Some(None),
                })
                .collect::<Option<Vec<_>>>()
                .unwrap_or_else(|| vec![v.to_string()]);
            (!parts.is_empty()).then(|| Value::Str(parts.join(",").into()))
        }
        Json::Object(o) if o.is_empty() => None,
        Json::Object(_) => Some(Value::Str(v.to_string().into())),
    }
}

/// A JSON value as text for typed fields: strings as they are, numbers and booleans printed.
pub(crate) fn json_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Keeps an unmapped JSON key as `extra.<key>`.
pub(crate) fn keep_extra(e: &mut Event, key: &str, v: &Json) {
    if let Some(val) = json_value(v) {
        e.set_attr(&extra_key(key), val);
    }
}

/// Sets a typed field from JSON; failures keep the value under `extra.invalid.<key>`.
pub(crate) fn set_json_opt(e: &mut Event, ctx: &ParseContext<'_>, key: &str, v: &Json) {
    if let Some(t) = json_text(v) {
        util::set_opt(e, ctx, key, &t);
    }
}

/// Splits one delimited record. A field that starts with `quote` runs to the matching quote
/// (a doubled quote inside is a literal quote); quotes elsewhere are literal. Fields are not
/// trimmed. Records spanning lines are not supported: every feed here writes one per line.
pub(crate) fn split_record(line: &str, delim: char, quote: Option<char>) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    let mut closed = false;
    while let Some(c) = chars.next() {
        if quoted {
            if Some(c) == quote {
                if chars.peek() == quote.as_ref() {
                    cur.push(c);
                    chars.next();
                } else {
                    quoted = false;
                    closed = true;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        if c == delim {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
            closed = false;
            continue;
        }
        if at_start && Some(c) == quote && cur.trim().is_empty() {
            cur.clear();
            quoted = true;
            at_start = false;
            continue;
        }
        if closed && !c.is_whitespace() {
            return Err(format!("text after the closing quote of field {}", fields.len() + 1));
        }
        if !closed {
            cur.push(c);
        }
        at_start = at_start && c.is_whitespace();
    }
    if quoted {
        return Err(format!("unterminated quoted field {}", fields.len() + 1));
    }
    fields.push(cur);
    Ok(fields)
}

/// ASCII case-insensitive substring test on raw bytes (report heads need not be UTF-8).
pub(crate) fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The file name without directories, lower-cased, with compression suffixes removed.
pub(crate) fn base_name(name: Option<&str>) -> Option<String> {
    let n = name?;
    let n = n.rsplit(['/', '\\']).next().unwrap_or(n).to_ascii_lowercase();
    let n = n.strip_suffix(".gz").or_else(|| n.strip_suffix(".zip")).map(str::to_string).unwrap_or(n);
    Some(n)
}

/// The head's lines that can be trusted whole: a head cut mid-line loses its last line.
pub(crate) fn head_lines(head: &[u8]) -> impl Iterator<Item = &str> {
    let complete = match head.iter().rposition(|&c| c == b'\n') {
        Some(i) if head.len() >= crate::registry::HEAD_LEN => &head[..i],
        _ => head,
    };
    complete.split(|&c| c == b'\n').map(|l| std::str::from_utf8(l).unwrap_or("").trim_end_matches('\r'))
}

/// The first non-whitespace byte.
pub(crate) fn first_byte(head: &[u8]) -> Option<u8> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    head.iter().copied().find(|c| !c.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_like_csv() {
        assert_eq!(split_record(r#""a","b,c",d"#, ',', Some('"')).unwrap(), vec!["a", "b,c", "d"]);
        assert_eq!(split_record(r#""say ""hi""",x"#, ',', Some('"')).unwrap(), vec![r#"say "hi""#, "x"]);
        assert_eq!(split_record("a\t\tb", '\t', None).unwrap(), vec!["a", "", "b"]);
        assert_eq!(split_record("", ',', Some('"')).unwrap(), vec![""]);
        assert!(split_record(r#""open,x"#, ',', Some('"')).is_err());
        assert!(split_record(r#""a"b,c"#, ',', Some('"')).is_err());
        assert_eq!(split_record(r#"5" disk,x"#, ',', Some('"')).unwrap(), vec![r#"5" disk"#, "x"]);
    }

    #[test]
    fn values_are_classified() {
        assert!(matches!(classify("192.0.2.1"), Kind::Ip(_)));
        assert!(matches!(classify("192.0.2.0/24"), Kind::Network(_)));
        assert_eq!(classify("http://x.example/a"), Kind::Url);
        assert_eq!(classify("x.example"), Kind::Fqdn);
        assert_eq!(classify("d41d8cd98f00b204e9800998ecf8427e"), Kind::Hash(Hash::Md5));
        assert_eq!(classify("not a thing"), Kind::Other);
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://u:p@Host.example:8080/x?y"), Some("Host.example"));
        assert_eq!(url_host("https://[2001:db8::1]:443/"), Some("2001:db8::1"));
        assert_eq!(url_host("www.example.com/a/b"), Some("www.example.com"));
        assert_eq!(url_host("http:///x"), None);
        assert_eq!(url_host("http://[::1"), None);
    }

    #[test]
    fn extra_keys() {
        assert_eq!(extra_key("Dateadded (UTC)"), "extra.dateadded_utc");
        assert_eq!(extra_key("Feed-Source"), "extra.feed_source");
        assert_eq!(extra_key("  "), "extra.unnamed");
    }
}

//! Generic feeds: plain lists of IPs, domains or URLs, and delimited files described by a
//! [`GenericConfig`] in configuration (IntelMQ's generic CSV parser, as data).
//!
//! - `generic_ip_list`, `generic_domain_list`, `generic_url_list`: one value per line;
//!   lines starting with `#`, `;` or `//` are comments, and so is anything after ` #` or
//!   ` ;` on a value line (kept as `comment`). The IP list takes networks too
//!   (`source.network`); the domain list takes hosts-file lines (`0.0.0.0 name`).
//!   Classification `blocklist`: a bare list says nothing more.
//! - Configured feeds ([`custom_feed`]): columns by position or header name mapped to
//!   IntelMQ keys; `source.ip|source.network` tries each key in turn, as IntelMQ does.
//!
//! Update cadence, licence and terms are whatever the publisher of the list says; botwatch
//! adds none. Format documentation: IntelMQ's generic CSV parser,
//! <https://docs.intelmq.org/latest/user/bots/#generic-csv>.
//!
//! Detection only claims lists whose every complete non-comment line in the head is one
//! value of the same kind (at least two of them), since the generic provider is asked last.

pub(crate) mod shared;

use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{
    ClassificationType, Event, Sink, Slot, Timestamp, Value, Warning, WarningKind, parse_ip,
};
use bytes::Bytes;
use shared::{Kind, classify, extra_key, set_host, set_ip_or_network, set_url, split_record};
use std::collections::BTreeMap;
use std::sync::Arc;

const DOC: &str = "https://docs.intelmq.org/latest/user/bots/#generic-csv";

pub const PROVIDER: Provider = Provider { name: "generic", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    let list = |id: &str, name: &str, kind: ListKind, desc: &str| {
        shared::spec(id, name, "generic", 50.0, DOC, desc, Arc::new(ListParser(kind)))
    };
    vec![
        list(
            "generic_ip_list",
            "IP list",
            ListKind::Ip,
            "Plain list of IP addresses or CIDR networks, one per line",
        ),
        list(
            "generic_domain_list",
            "Domain list",
            ListKind::Domain,
            "Plain list of domain names, one per line",
        ),
        list("generic_url_list", "URL list", ListKind::Url, "Plain list of URLs, one per line"),
    ]
}

fn detect(_name: Option<&str>, head: &[u8]) -> Option<String> {
    let mut kind = None;
    let mut n = 0;
    for line in shared::head_lines(head) {
        if util::is_comment(line, LIST_COMMENTS) {
            continue;
        }
        let v = line.trim();
        let k = match classify(v) {
            Kind::Ip(_) | Kind::Network(_) => ListKind::Ip,
            Kind::Fqdn => ListKind::Domain,
            Kind::Url if !v.contains(char::is_whitespace) => ListKind::Url,
            _ => return None,
        };
        if *kind.get_or_insert(k) != k {
            return None;
        }
        n += 1;
    }
    if n < 2 {
        return None;
    }
    Some(
        match kind? {
            ListKind::Ip => "generic_ip_list",
            ListKind::Domain => "generic_domain_list",
            ListKind::Url => "generic_url_list",
        }
        .to_string(),
    )
}

const LIST_COMMENTS: &[&str] = &["#", ";", "//"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ListKind {
    Ip,
    Domain,
    Url,
}

struct ListParser(ListKind);

impl Parser for ListParser {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        for line in util::lines(input) {
            let text = line.text();
            if util::is_comment(&text, LIST_COMMENTS) {
                continue;
            }
            let (value, comment) = split_inline_comment(text.trim());
            let mut e = util::event(ctx, ClassificationType::Blocklist, &line);
            let res = match self.0 {
                ListKind::Ip => set_ip_or_network(&mut e, botwatch_model::Side::Source, value),
                ListKind::Url => set_url(&mut e, botwatch_model::Side::Source, value),
                ListKind::Domain => {
                    // Hosts-file lines ("0.0.0.0 bad.example") name the domain second.
                    let mut parts = value.split_whitespace();
                    let first = parts.next().unwrap_or_default();
                    let name = match (parse_ip(first), parts.next()) {
                        (Some(_), Some(second)) => second,
                        _ => value,
                    };
                    set_host(&mut e, botwatch_model::Side::Source, name).and_then(|_| {
                        if e.source.ip.is_some() {
                            Err(format!("source.fqdn: an IP address, not a domain: {name:?}"))
                        } else {
                            Ok(())
                        }
                    })
                }
            };
            if let Err(reason) = res {
                util::reject(sink, line.number, line.raw.clone(), reason);
                continue;
            }
            if let Some(c) = comment {
                e.set_attr("comment", Value::Str(c.into()));
            }
            sink.event(e);
        }
    }
}

/// Splits `value # comment` (or `;`); the marker must follow white space so URLs with
/// fragments survive.
fn split_inline_comment(s: &str) -> (&str, Option<&str>) {
    for m in [" #", "\t#", " ;", "\t;"] {
        if let Some(i) = s.find(m) {
            let c = s[i + m.len()..].trim();
            return (s[..i].trim(), (!c.is_empty()).then_some(c));
        }
    }
    (s, None)
}

/// A delimited feed described in configuration.
///
/// ```json
/// {"delimiter": ",", "has_header": true, "classification_type": "infected-system",
///  "columns": ["source.ip|source.network", "source.url"]}
/// ```
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// `feed.name`; defaults to the feed id.
    #[serde(default)]
    pub name: Option<String>,
    /// `feed.provider`; defaults to "generic".
    #[serde(default)]
    pub provider: Option<String>,
    /// `feed.accuracy`, 0–100; defaults to 50.
    #[serde(default)]
    pub accuracy: Option<f32>,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// One character; `"\t"` for tab-separated files.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The quote character; `null` for files that never quote.
    #[serde(default = "default_quote")]
    pub quote: Option<char>,
    /// Lines starting with any of these (after white space) are skipped.
    #[serde(default = "default_comments")]
    pub comment_markers: Vec<String>,
    /// Lines to skip at the start, before the header (banners without a comment marker).
    #[serde(default)]
    pub skip_lines: usize,
    /// The first record (after skipped lines and comments) names the columns.
    #[serde(default)]
    pub has_header: bool,
    pub columns: Columns,
    /// `classification.type` of every event unless a column sets it.
    pub classification_type: ClassificationType,
    /// Values of a `classification.type` column translated before use (IntelMQ's
    /// `type_translation`).
    #[serde(default)]
    pub type_translation: BTreeMap<String, String>,
    /// Fields set on every event, IntelMQ key → value (e.g. `protocol.application: ssh`).
    #[serde(default)]
    pub constant_fields: BTreeMap<String, String>,
    /// How `time.*` columns are written: `auto` (default; the formats botwatch knows),
    /// `epoch`, `epoch_millis`, `windows_nt`, or a chrono format like `%d.%m.%Y %H:%M`.
    #[serde(default)]
    pub time_format: Option<String>,
    /// Prefixed to `*.url` values that have no scheme, e.g. `http://`.
    #[serde(default)]
    pub default_url_protocol: Option<String>,
}

/// Which column holds what: by position (`"__IGNORE__"` or `""` skips a column) or by
/// header name (needs `has_header`). A key may list alternatives: `source.ip|source.network`.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
#[serde(untagged)]
pub enum Columns {
    Positional(Vec<String>),
    ByHeader(BTreeMap<String, String>),
}

fn default_delimiter() -> char {
    ','
}
fn default_quote() -> Option<char> {
    Some('"')
}
fn default_comments() -> Vec<String> {
    vec!["#".into()]
}

/// A configured generic feed.
pub fn custom_feed(id: &str, cfg: GenericConfig) -> FeedSpec {
    FeedSpec {
        id: id.to_string(),
        name: cfg.name.clone().unwrap_or_else(|| id.to_string()),
        provider: cfg.provider.clone().unwrap_or_else(|| "generic".into()),
        accuracy: cfg.accuracy.unwrap_or(50.0).clamp(0.0, 100.0),
        documentation: cfg.documentation.clone().unwrap_or_else(|| DOC.into()),
        description: cfg.description.clone().unwrap_or_else(|| "Configured delimited feed".into()),
        parser: Arc::new(CsvParser { cfg }),
    }
}

struct CsvParser {
    cfg: GenericConfig,
}

/// One column's destination: alternatives tried in order.
#[derive(Clone, Debug)]
enum Target {
    Ignore,
    Keys(Vec<String>),
}

impl Target {
    fn parse(spec: &str) -> Target {
        let keys: Vec<String> = spec
            .split('|')
            .map(str::trim)
            .filter(|k| !k.is_empty() && *k != "__IGNORE__")
            .map(str::to_string)
            .collect();
        if keys.is_empty() { Target::Ignore } else { Target::Keys(keys) }
    }
}

impl CsvParser {
    fn comment(&self, text: &str) -> bool {
        let t = text.trim_start();
        t.is_empty() || self.cfg.comment_markers.iter().any(|m| !m.is_empty() && t.starts_with(m.as_str()))
    }

    fn fields(&self, text: &str) -> Result<Vec<String>, String> {
        split_record(text, self.cfg.delimiter, self.cfg.quote)
            .map(|v| v.into_iter().map(|f| f.trim().to_string()).collect())
    }

    fn time(&self, v: &str) -> Result<Timestamp, String> {
        let bad = || format!("invalid time {v:?}");
        let v = v.trim();
        match self.cfg.time_format.as_deref().unwrap_or("auto") {
            "auto" => botwatch_model::parse_timestamp(v).ok_or_else(bad),
            "epoch" | "timestamp" => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .map(|s| Timestamp((s * 1e6) as i64))
                .ok_or_else(bad),
            "epoch_millis" => {
                v.parse::<i64>().ok().map(|ms| Timestamp(ms.saturating_mul(1000))).ok_or_else(bad)
            }
            "windows_nt" => {
                v.parse::<i64>().ok().map(|t| Timestamp(t / 10 - 11_644_473_600_000_000)).ok_or_else(bad)
            }
            fmt => {
                if let Ok(dt) = chrono::DateTime::parse_from_str(v, fmt) {
                    return Ok(Timestamp::from_datetime(dt.with_timezone(&chrono::Utc)));
                }
                if let Ok(n) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
                    return Ok(Timestamp::from_datetime(n.and_utc()));
                }
                chrono::NaiveDate::parse_from_str(v, fmt)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|n| Timestamp::from_datetime(n.and_utc()))
                    .ok_or_else(|| format!("time {v:?} does not match format {fmt:?}"))
            }
        }
    }

    /// Puts one value under one key; `Err` when it does not fit.
    fn put(&self, e: &mut Event, ctx: &ParseContext<'_>, key: &str, v: &str) -> Result<(), String> {
        match Slot::for_key(key) {
            Slot::TimeSource => e.time_source = Some(self.time(v).map_err(|m| format!("{key}: {m}"))?),
            Slot::TimeObservation => e.time_observation = self.time(v).map_err(|m| format!("{key}: {m}"))?,
            Slot::Endpoint(side, botwatch_model::EndpointField::Url) => {
                let url = match &self.cfg.default_url_protocol {
                    Some(p) if !shared::has_scheme(v) => format!("{p}{v}"),
                    _ => v.to_string(),
                };
                set_url(e, side, &url)?
            }
            Slot::ClassificationType => {
                let t = self.cfg.type_translation.get(v).map(String::as_str).unwrap_or(v);
                util::set(e, ctx, key, t)?
            }
            // IntelMQ types coordinates as floats.
            _ if key.ends_with(".geolocation.latitude") || key.ends_with(".geolocation.longitude") => {
                let f: f64 = v.trim().parse().map_err(|_| format!("{key}: not a number: {v:?}"))?;
                e.set_attr(key, Value::Float(f));
            }
            _ if key.starts_with("malware.hash.") => {
                let h =
                    shared::Hash::of(v.trim()).ok_or_else(|| format!("{key}: not a hex digest: {v:?}"))?;
                if h.key() != key {
                    return Err(format!("{key}: a {} digest, not this one: {v:?}", h.key()));
                }
                h.set(e, v)?
            }
            _ => util::set(e, ctx, key, v)?,
        }
        Ok(())
    }
}

impl Parser for CsvParser {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        // Validate constants once: a broken configuration is one reject, not one per line.
        let probe = Event::new(ctx.feed.clone(), self.cfg.classification_type, ctx.observed);
        for (k, v) in &self.cfg.constant_fields {
            let mut p = probe.clone();
            if let Err(m) = self.put(&mut p, ctx, k, v) {
                util::reject_whole(
                    sink,
                    input,
                    format!("invalid constant field in the feed configuration: {m}"),
                );
                return;
            }
        }
        // Indexed by column position.
        let mut targets: Option<Vec<Target>> = match &self.cfg.columns {
            Columns::Positional(cols) => Some(cols.iter().map(|c| Target::parse(c)).collect()),
            Columns::ByHeader(_) if !self.cfg.has_header => {
                util::reject_whole(sink, input, "columns are mapped by header name but has_header is false");
                return;
            }
            Columns::ByHeader(_) => None,
        };
        let mut header: Option<Vec<String>> = None;
        let mut need_header = self.cfg.has_header;
        let mut skipped_lines = 0;
        for line in util::lines(input) {
            if skipped_lines < self.cfg.skip_lines {
                skipped_lines += 1;
                continue;
            }
            let text = line.text();
            if self.comment(&text) {
                continue;
            }
            let fields = match self.fields(&text) {
                Ok(f) => f,
                Err(m) => {
                    util::reject(sink, line.number, line.raw.clone(), m);
                    continue;
                }
            };
            if need_header {
                need_header = false;
                if let Columns::ByHeader(map) = &self.cfg.columns {
                    let by_name: BTreeMap<String, &String> =
                        map.iter().map(|(k, v)| (k.trim().to_ascii_lowercase(), v)).collect();
                    let mut t = Vec::new();
                    for name in &fields {
                        match by_name.get(&name.to_ascii_lowercase()) {
                            Some(spec) => t.push(Target::parse(spec)),
                            None => t.push(Target::Keys(vec![extra_key(name)])),
                        }
                    }
                    let missing: Vec<&String> = map
                        .keys()
                        .filter(|k| !fields.iter().any(|f| f.eq_ignore_ascii_case(k.trim())))
                        .collect();
                    if !missing.is_empty() {
                        sink.warning(Warning {
                            kind: WarningKind::SchemaDrift,
                            line: Some(line.number),
                            message: format!("configured columns missing from the header: {missing:?}"),
                        });
                    }
                    targets = Some(t);
                }
                header = Some(fields);
                continue;
            }
            let Some(targets) = targets.as_ref() else { continue };
            let mut e = util::event(ctx, self.cfg.classification_type, &line);
            let mut failed = None;
            for (k, v) in &self.cfg.constant_fields {
                let _ = self.put(&mut e, ctx, k, v);
            }
            for (i, value) in fields.iter().enumerate() {
                if value.is_empty() {
                    continue;
                }
                let unmapped;
                let keys: &[String] = match targets.get(i) {
                    Some(Target::Ignore) => continue,
                    Some(Target::Keys(k)) => k,
                    // Columns beyond the mapping are kept under their header name or position.
                    None => {
                        unmapped = [match header.as_ref().and_then(|h| h.get(i)) {
                            Some(name) => extra_key(name),
                            None => format!("extra.column_{}", i + 1),
                        }];
                        &unmapped
                    }
                };
                let mut errors = Vec::new();
                for key in keys {
                    match self.put(&mut e, ctx, key, value) {
                        Ok(()) => {
                            errors.clear();
                            break;
                        }
                        Err(m) => errors.push(m),
                    }
                }
                if !errors.is_empty() {
                    failed = Some(errors.join("; "));
                    break;
                }
            }
            match failed {
                Some(reason) => util::reject(sink, line.number, line.raw.clone(), reason),
                None if e.source.is_empty() && e.destination.is_empty() && e.attrs.is_empty() => {
                    util::reject(sink, line.number, line.raw.clone(), "no mapped column has a value")
                }
                None => sink.event(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::{Collected, FamilyTable};

    fn run(spec: &FeedSpec, data: &'static [u8]) -> Collected {
        let families = FamilyTable::default();
        let ctx = ParseContext::new(spec, None, Timestamp(0), &families);
        let mut out = Collected::default();
        spec.parser.parse(&Bytes::from_static(data), &ctx, &mut out);
        out
    }

    fn builtin(id: &str) -> FeedSpec {
        feeds().into_iter().find(|f| f.id == id).unwrap()
    }

    #[test]
    fn lists_parse_and_reject() {
        let out =
            run(&builtin("generic_ip_list"), b"# c\n192.0.2.1\n198.51.100.0/24 # net\n10.0.0.1/32\nnope\n");
        assert_eq!(out.events.len(), 3);
        assert_eq!(out.events[1].source.network.unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(out.events[2].source.ip.unwrap().to_string(), "10.0.0.1");
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].line, 5);
        let out = run(&builtin("generic_domain_list"), b"0.0.0.0 Bad.Example\n192.0.2.1\n");
        assert_eq!(out.events[0].source.fqdn.as_deref(), Some("bad.example"));
        assert_eq!(out.rejects.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        for id in ["generic_ip_list", "generic_domain_list", "generic_url_list"] {
            let spec = builtin(id);
            assert!(run(&spec, b"").events.is_empty());
            let out = run(&spec, b"\x00\xff\xfe garbage\n");
            assert!(out.events.is_empty());
            assert_eq!(out.rejects.len(), 1);
            let _ = run(&spec, b"192.0.2");
        }
    }

    #[test]
    fn detection_is_conservative() {
        assert_eq!(detect(None, b"# x\n192.0.2.1\n192.0.2.2\n").as_deref(), Some("generic_ip_list"));
        assert_eq!(detect(None, b"a.example\nb.example\n").as_deref(), Some("generic_domain_list"));
        assert_eq!(
            detect(None, b"http://a.example/x\nhttps://b.example/\n").as_deref(),
            Some("generic_url_list")
        );
        assert_eq!(detect(None, b"192.0.2.1\n"), None);
        assert_eq!(detect(None, b"192.0.2.1\na.example\n"), None);
        assert_eq!(detect(None, b"192.0.2.0/24 ; SBL1\n192.0.2.0/24 ; SBL2\n"), None);
    }

    #[test]
    fn configured_csv_with_alternatives_and_header() {
        let cfg: GenericConfig = serde_json::from_str(
            r#"{"has_header": true, "classification_type": "infected-system",
                "columns": ["source.ip|source.network", "source.url"], "constant_fields": {"protocol.application": "http"}}"#,
        )
        .unwrap();
        let spec = custom_feed("x_y", cfg);
        let out = run(
            &spec,
            b"ip,url\n192.0.2.1,http://a.example\n192.0.2.0/24,http://b.example,extra\nbad,x\n\"open\n",
        );
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[1].source.network.unwrap().to_string(), "192.0.2.0/24");
        assert_eq!(out.events[1].attr("extra.column_3").unwrap().as_str(), Some("extra"));
        assert_eq!(out.events[0].protocol_application.as_deref(), Some("http"));
        assert_eq!(out.rejects.len(), 2);
    }

    #[test]
    fn configured_csv_by_header_and_time_format() {
        let cfg: GenericConfig = serde_json::from_str(
            r#"{"has_header": true, "delimiter": ";", "classification_type": "scanner", "time_format": "%d.%m.%Y %H:%M",
                "columns": {"Addr": "source.ip", "When": "time.source"}}"#,
        )
        .unwrap();
        let spec = custom_feed("x_z", cfg);
        let out = run(&spec, b"When;Addr;Note\n04.03.2021 10:00;192.0.2.9;hi\n04.03.2021;192.0.2.9;x\n");
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].time_source.unwrap().to_rfc3339(), "2021-03-04T10:00:00+00:00");
        assert_eq!(out.events[0].attr("extra.note").unwrap().as_str(), Some("hi"));
        assert_eq!(out.rejects.len(), 1);
        let cfg: GenericConfig =
            serde_json::from_str(r#"{"classification_type": "scanner", "columns": {"a": "source.ip"}}"#)
                .unwrap();
        let out = run(&custom_feed("x_w", cfg), b"a\n1.2.3.4\n");
        assert_eq!(out.rejects.len(), 1);
    }
}

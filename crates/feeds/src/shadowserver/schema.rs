//! Shadowserver's published schema, compiled for parsing.

use botwatch_model::{
    ClassificationType, Slot, Value, intern, parse_ip, parse_network, parse_timestamp, valid_fqdn,
};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::RowContext;

/// A conversion named in `intelmq.json` (the names of IntelMQ's Shadowserver helpers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// No conversion: the text as is.
    Text,
    /// `add_UTC_to_timestamp`, `convert_date_utc`: a UTC timestamp.
    Utc,
    /// `convert_date`: a date or timestamp.
    Date,
    /// `validate_ip`: an address, or nothing.
    Ip,
    /// `convert_int`.
    Int,
    /// `invalidate_zero`: an integer, with 0 meaning "unknown".
    NonZero,
    /// `convert_float`.
    Float,
    /// `convert_bool`.
    Bool,
    /// `validate_to_none`: empty, "0" and "unknown" mean nothing.
    ToNone,
    /// `extract_cve_from_tag`: the CVE ids in a `;`-separated tag.
    CveFromTag,
    /// `convert_http_host_and_url`: a URL from the host and path columns.
    HttpHostAndUrl,
    /// `validate_fqdn`.
    Fqdn,
    /// `validate_network`.
    Network,
    /// `category_or_detail`.
    CategoryOrDetail,
    /// `force_base64`.
    Base64,
    /// `scan_exchange_taxonomy/type/identifier`: a webshell tag means compromise.
    ExchangeTaxonomy,
    ExchangeType,
    ExchangeIdentifier,
}

impl Conv {
    fn from_name(s: Option<&str>) -> Result<Conv, String> {
        Ok(match s {
            None => Conv::Text,
            Some("add_UTC_to_timestamp" | "convert_date_utc") => Conv::Utc,
            Some("convert_date") => Conv::Date,
            Some("validate_ip") => Conv::Ip,
            Some("convert_int") => Conv::Int,
            Some("invalidate_zero") => Conv::NonZero,
            Some("convert_float") => Conv::Float,
            Some("convert_bool") => Conv::Bool,
            Some("validate_to_none") => Conv::ToNone,
            Some("extract_cve_from_tag") => Conv::CveFromTag,
            Some("convert_http_host_and_url") => Conv::HttpHostAndUrl,
            Some("validate_fqdn") => Conv::Fqdn,
            Some("validate_network") => Conv::Network,
            Some("category_or_detail") => Conv::CategoryOrDetail,
            Some("force_base64") => Conv::Base64,
            Some("scan_exchange_taxonomy") => Conv::ExchangeTaxonomy,
            Some("scan_exchange_type") => Conv::ExchangeType,
            Some("scan_exchange_identifier") => Conv::ExchangeIdentifier,
            Some(other) => return Err(format!("unknown conversion {other:?}")),
        })
    }

    /// `Ok(None)`: no value (empty, or a placeholder). `Err`: present but invalid.
    pub(super) fn apply(
        self,
        v: &str,
        rec: &csv::ByteRecord,
        row: &RowContext,
    ) -> Result<Option<Value>, String> {
        let text = |s: &str| Value::Str(s.into());
        if v.is_empty() && self != Conv::CategoryOrDetail {
            return Ok(None);
        }
        Ok(Some(match self {
            Conv::Text => text(v),
            Conv::Utc | Conv::Date => {
                let t = parse_timestamp(v.trim_end_matches(" UTC"))
                    .ok_or_else(|| format!("invalid timestamp {v:?}"))?;
                Value::Str(t.to_rfc3339().into())
            }
            Conv::Ip => {
                // As IntelMQ's validate_ip: a network or the null address is "no address".
                if v.contains('/') || v == "0.0.0.0" {
                    return Ok(None);
                }
                let ip = parse_ip(v).ok_or_else(|| format!("invalid IP address {v:?}"))?;
                Value::Str(ip.to_string().into())
            }
            Conv::Int => Value::Int(v.parse().map_err(|_| format!("not an integer: {v:?}"))?),
            Conv::NonZero => match v.parse::<i64>() {
                Ok(0) => return Ok(None),
                Ok(n) => Value::Int(n),
                Err(_) => return Err(format!("not an integer: {v:?}")),
            },
            Conv::Float => Value::Float(v.parse().map_err(|_| format!("not a number: {v:?}"))?),
            Conv::Bool => match v.to_ascii_lowercase().as_str() {
                "y" | "yes" | "true" | "t" | "1" => Value::Bool(true),
                "n" | "no" | "false" | "f" | "0" => Value::Bool(false),
                _ => return Err(format!("not a boolean: {v:?}")),
            },
            Conv::ToNone => {
                if v == "0" || v.eq_ignore_ascii_case("unknown") {
                    return Ok(None);
                }
                text(v)
            }
            Conv::CveFromTag => {
                let cves: Vec<String> = v
                    .split([';', ',', ' '])
                    .filter(|t| {
                        let u = t.to_ascii_uppercase();
                        u.starts_with("CVE-") && u.len() > 9
                    })
                    .map(|t| t.to_ascii_uppercase())
                    .collect();
                if cves.is_empty() {
                    return Ok(None);
                }
                Value::Str(cves.join(";").into())
            }
            Conv::HttpHostAndUrl => {
                // IntelMQ's convert_http_host_and_url: the column may hold a request line
                // ("GET /favicon.ico HTTP/1.1"); the path runs from the first '/' to the
                // first space.
                if v.contains("://") {
                    return Ok(Some(text(v.split(' ').next().unwrap_or(v))));
                }
                let path = match v.find('/') {
                    Some(i) => v[i..].split(' ').next().unwrap_or(""),
                    None => return Err(format!("no path in {v:?}")),
                };
                let host = super::field(rec, row.http_host);
                if host.is_empty() {
                    return Err("no host column to make a URL with".into());
                }
                let app = super::field(rec, row.application);
                let scheme = if app.eq_ignore_ascii_case("https") || super::field(rec, row.port) == "443" {
                    "https"
                } else {
                    "http"
                };
                Value::Str(format!("{scheme}://{host}{path}").into())
            }
            Conv::Fqdn => {
                if !valid_fqdn(v) {
                    return Err(format!("invalid FQDN {v:?}"));
                }
                text(v)
            }
            Conv::Network => {
                if !v.contains('/') {
                    return Ok(None); // a bare address is no network
                }
                let n = parse_network(v).ok_or_else(|| format!("invalid network {v:?}"))?;
                Value::Str(n.to_string().into())
            }
            Conv::CategoryOrDetail => {
                let c = super::field(rec, row.category);
                let c = if c.is_empty() { super::field(rec, row.detail) } else { c };
                if c.is_empty() {
                    return Ok(None);
                }
                text(c)
            }
            Conv::Base64 => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                // Already base64 (Shadowserver sends some requests encoded): keep it.
                if b64.decode(v).is_ok() { text(v) } else { Value::Str(b64.encode(v).into()) }
            }
            Conv::ExchangeTaxonomy | Conv::ExchangeType | Conv::ExchangeIdentifier => {
                let webshell = v.to_ascii_lowercase().contains("webshell");
                text(match (self, webshell) {
                    (Conv::ExchangeTaxonomy, true) => "intrusions",
                    (Conv::ExchangeTaxonomy, false) => "vulnerable",
                    (Conv::ExchangeType, true) => "system-compromise",
                    (Conv::ExchangeType, false) => "vulnerable-system",
                    (_, true) => "exchange-server-webshell",
                    (_, false) => "vulnerable-exchange-server",
                })
            }
        }))
    }
}

/// Columns dropped from the published schema that reports from before the change carry.
const RETIRED: &[&str] = &["sic", "cc_sic", "dst_sic", "dest_sic", "src_sic", "http_referer_sic"];

/// One column → one field.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub column: String,
    /// The IntelMQ key it fills.
    pub key: String,
    pub slot: Slot,
    pub conv: Conv,
    pub required: bool,
    /// Where the raw text goes when the conversion fails on an optional field.
    pub fallback: &'static str,
}

/// One report type.
#[derive(Debug)]
pub struct ReportType {
    /// Shadowserver's report type name as in file names (`event4_sinkhole`).
    pub file_name: String,
    pub feed_name: String,
    pub url: Option<String>,
    pub legacy: bool,
    pub default_type: ClassificationType,
    /// Constant fields other than the classification type.
    pub constants: Vec<(Slot, String)>,
    pub columns: HashMap<String, Vec<Mapping>>,
    /// Every column the schema knows for this report (documented or mapped).
    pub known_fields: HashSet<String>,
    /// The columns `reports.json` documents, which header detection compares against.
    pub documented: HashSet<String>,
    pub required_columns: Vec<String>,
}

/// All report types.
#[derive(Debug, Default)]
pub struct Schema {
    by_name: HashMap<String, Arc<ReportType>>,
}

impl Schema {
    /// Builds the schema from `intelmq.json` (mappings), `reports.json` (column lists) and the
    /// legacy file (both in one, intelmq.json's structure plus a `fields` list).
    pub fn from_json(intelmq: &str, reports: &str, legacy: &str) -> Result<Schema, String> {
        let intelmq: Json = serde_json::from_str(intelmq).map_err(|e| format!("intelmq.json: {e}"))?;
        let reports: Json = serde_json::from_str(reports).map_err(|e| format!("reports.json: {e}"))?;
        let legacy: Json = serde_json::from_str(legacy).map_err(|e| format!("legacy.json: {e}"))?;
        let mut s = Schema::default();
        for (doc, is_legacy) in [(&intelmq, false), (&legacy, true)] {
            let obj = doc.as_object().ok_or("schema root is not an object")?;
            for (key, entry) in obj {
                if key.starts_with('_') {
                    continue;
                }
                let file_name = entry["file_name"].as_str().unwrap_or(key).to_string();
                let fields = if is_legacy { &entry["fields"] } else { &reports[&file_name]["fields"] };
                let r = compile_report(&file_name, entry, fields, is_legacy)
                    .map_err(|e| format!("{file_name}: {e}"))?;
                s.by_name.insert(file_name, Arc::new(r));
            }
        }
        Ok(s)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ReportType>> {
        self.by_name.get(name)
    }

    /// Report types sorted by name.
    pub fn reports(&self) -> impl Iterator<Item = &Arc<ReportType>> {
        let mut v: Vec<_> = self.by_name.values().collect();
        v.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        v.into_iter()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn lookup(&self, t: &str) -> Option<Arc<ReportType>> {
        // Older file names drop the `scan_`/`event4_` prefix (`2020-08-02-cisco_smart_install-…`).
        [t.to_string(), format!("scan_{t}"), format!("event4_{t}")]
            .iter()
            .find_map(|c| self.by_name.get(c.as_str()))
            .cloned()
    }

    /// `2024-07-04-event4_sinkhole-123-sample-asn.csv` (Shadowserver's documented pattern)
    /// or a bare `event4_sinkhole.csv`.
    pub fn type_from_file_name(&self, name: &str) -> Option<Arc<ReportType>> {
        let base = name.rsplit(['/', '\\']).next()?;
        let stem = base.strip_suffix(".gz").unwrap_or(base);
        let stem = stem.strip_suffix(".csv").unwrap_or(stem);
        let b = stem.as_bytes();
        let dated = b.len() > 11
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit)
            && b[10] == b'-';
        if dated {
            let t = stem[11..].split('-').next()?;
            return self.lookup(t);
        }
        self.by_name.get(stem).cloned()
    }

    /// The report type whose documented columns best match a header (Jaccard ≥ 0.7).
    /// IPv4 and IPv6 variants share columns; the first data row's address decides. Reports
    /// with identical columns (the Microsoft sinkhole variants) fall to the shorter, more
    /// general name; a file name settles it when there is one.
    pub fn type_from_header(
        &self,
        header: &[String],
        first_row: Option<&[String]>,
    ) -> Option<Arc<ReportType>> {
        if !header.iter().any(|h| h == "timestamp") {
            return None;
        }
        let h: HashSet<&str> = header.iter().map(String::as_str).collect();
        let v6 = first_row.is_some_and(|row| {
            header
                .iter()
                .zip(row)
                .any(|(col, val)| matches!(col.as_str(), "ip" | "src_ip") && val.contains(':'))
        });
        // A row naming a malware family is a bot's, not a scanner's: when the header fits a
        // sinkhole report and a honeypot report about as well (a 2021 sinkhole layout has
        // neither today's `ssl_*` columns nor the honeypots' `count`), the infected-system
        // type is the one meant.
        let names_family = first_row.is_some_and(|row| {
            header.iter().zip(row).any(|(col, val)| col == "family" && !val.trim().is_empty())
        });
        let mut best: Option<(f64, bool, &Arc<ReportType>)> = None;
        let mut all: Vec<_> = self.reports().collect();
        all.sort_by_key(|r| r.file_name.len());
        for r in all {
            let cols = if r.documented.is_empty() { &r.known_fields } else { &r.documented };
            let inter = cols.iter().filter(|f| h.contains(f.as_str())).count();
            let union = h.len() + cols.len() - inter;
            let mut score = inter as f64 / union.max(1) as f64;
            if names_family && r.default_type == ClassificationType::InfectedSystem {
                score += 0.05;
            }
            let family_ok = r.file_name.contains('6') == v6;
            let better = match best {
                None => true,
                Some((s, ok, _)) => score > s + 1e-9 || ((score - s).abs() <= 1e-9 && family_ok && !ok),
            };
            if better {
                best = Some((score, family_ok, r));
            }
        }
        best.filter(|(s, _, r)| {
            let bonus =
                if names_family && r.default_type == ClassificationType::InfectedSystem { 0.05 } else { 0.0 };
            *s - bonus >= 0.7
        })
        .map(|(_, _, r)| r.clone())
    }
}

fn compile_report(file_name: &str, entry: &Json, fields: &Json, legacy: bool) -> Result<ReportType, String> {
    let mut default_type = ClassificationType::Undetermined;
    let mut constants = Vec::new();
    if let Some(c) = entry["constant_fields"].as_object() {
        for (k, v) in c {
            let v = v.as_str().ok_or_else(|| format!("constant {k} is not a string"))?;
            match k.as_str() {
                "classification.type" => {
                    default_type =
                        ClassificationType::from_name(v).ok_or_else(|| format!("unknown type {v:?}"))?
                }
                "classification.taxonomy" => {}
                _ => constants.push((Slot::for_key(k), v.to_string())),
            }
        }
    }
    let mut columns: HashMap<String, Vec<Mapping>> = HashMap::new();
    let mut required_columns = Vec::new();
    for (list, required) in [(&entry["required_fields"], true), (&entry["optional_fields"], false)] {
        for m in list.as_array().into_iter().flatten() {
            let arr = m.as_array().ok_or("mapping is not a list")?;
            let target = arr.first().and_then(Json::as_str).ok_or("mapping without target")?;
            let column = arr.get(1).and_then(Json::as_str).ok_or("mapping without column")?;
            let conv = Conv::from_name(arr.get(2).and_then(Json::as_str))?;
            let key = if target == "extra." { format!("extra.{column}") } else { target.to_string() };
            if required {
                required_columns.push(column.to_string());
            }
            columns.entry(column.to_string()).or_default().push(Mapping {
                column: column.to_string(),
                slot: Slot::for_key(&key),
                key,
                conv,
                required,
                fallback: intern(&format!("extra.{column}")),
            });
        }
    }
    let documented: HashSet<String> =
        fields.as_array().into_iter().flatten().filter_map(Json::as_str).map(str::to_string).collect();
    let mut known_fields = documented.clone();
    known_fields.extend(columns.keys().cloned());
    // Columns Shadowserver retired but older reports still carry: known, not drift.
    known_fields.extend(RETIRED.iter().map(|c| c.to_string()));
    Ok(ReportType {
        file_name: file_name.to_string(),
        feed_name: entry["feed_name"].as_str().unwrap_or(file_name).to_string(),
        url: entry["url"].as_str().map(str::to_string),
        legacy,
        default_type,
        constants,
        columns,
        known_fields,
        documented,
        required_columns,
    })
}

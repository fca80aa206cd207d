//! Shadowserver reports, driven by Shadowserver's published report schema.
//!
//! Shadowserver sends dozens of CSV report types (sinkhole events, honeypots, scans, …) and
//! changes their columns over time. Instead of one parser per report, this module reads the
//! schema Shadowserver publishes (github.com/The-Shadowserver-Foundation/report_schema:
//! `reports.json` lists each report's columns, `intelmq.json` maps them to IntelMQ fields
//! with a conversion each) and compiles it into a per-column plan when a report's header is
//! read. The 2011–2018 formats Shadowserver retired before publishing the schema are
//! described in `schema/shadowserver/legacy.json` in the same structure.
//!
//! - Report type: from the file name (`2024-07-04-event4_sinkhole-<org>-asn.csv`, or just
//!   `event4_sinkhole.csv`), else from the header's columns (best overlap with a schema).
//! - A column the schema does not know is kept under `extra.<column>`, counted and warned
//!   about as schema drift; nothing is dropped.
//! - A row missing a required value (timestamp, source IP, …) or with an invalid one is a
//!   reject; an optional value that fails its conversion is kept raw under `extra.<column>`
//!   and counted.
//!
//! Format: CSV with a header row, daily. Terms: Shadowserver's reports are free for the
//! network owners and national CERTs they are sent to. Docs:
//! <https://www.shadowserver.org/what-we-do/network-reporting/>.

mod schema;
pub mod synth;

pub use schema::{Conv, Mapping, ReportType, Schema};

use crate::registry::Provider;
use crate::util::{reject, reject_whole};
use crate::{FeedSpec, ParseContext, Parser};
use botwatch_model::{Event, Sink, Slot, Value, Warning, WarningKind, intern};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub const PROVIDER: Provider = Provider { name: "shadowserver", feeds, detect };

/// Feed id of the report type-agnostic parser (type from file name or header).
pub const ANY_REPORT: &str = "shadowserver_report";

/// The schema shipped in the binary.
pub fn builtin_schema() -> &'static Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        // The embedded files are checked by the tests; failing here means a broken build.
        let s = Schema::from_json(
            include_str!("../../schema/shadowserver/intelmq.json"),
            include_str!("../../schema/shadowserver/reports.json"),
            include_str!("../../schema/shadowserver/legacy.json"),
        )
        .expect("embedded Shadowserver schema is valid");
        Arc::new(s)
    })
}

fn feeds() -> Vec<FeedSpec> {
    feeds_for(builtin_schema())
}

/// One feed per report type, plus [`ANY_REPORT`].
pub fn feeds_for(schema: &Arc<Schema>) -> Vec<FeedSpec> {
    let mut v: Vec<FeedSpec> = schema
        .reports()
        .map(|r| FeedSpec {
            id: format!("shadowserver_{}", r.file_name),
            name: r.feed_name.clone(),
            provider: "Shadowserver".into(),
            accuracy: 100.0,
            documentation: r
                .url
                .clone()
                .unwrap_or_else(|| "https://www.shadowserver.org/what-we-do/network-reporting/".into()),
            description: format!(
                "Shadowserver {} report{} (CSV, schema-driven)",
                r.file_name,
                if r.legacy { ", retired 2011-2018 format" } else { "" }
            ),
            parser: Arc::new(ShadowserverParser { schema: schema.clone(), fixed: Some(r.clone()) }),
        })
        .collect();
    v.push(FeedSpec {
        id: ANY_REPORT.into(),
        name: "Shadowserver report (any type)".into(),
        provider: "Shadowserver".into(),
        accuracy: 100.0,
        documentation: "https://github.com/The-Shadowserver-Foundation/report_schema".into(),
        description: "Any Shadowserver CSV report; type taken from the file name or the header".into(),
        parser: Arc::new(ShadowserverParser { schema: schema.clone(), fixed: None }),
    });
    v
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let schema = builtin_schema();
    if let Some(r) = name.and_then(|n| schema.type_from_file_name(n)) {
        return Some(format!("shadowserver_{}", r.file_name));
    }
    let (header, first_row) = header_and_first_row(head)?;
    schema.type_from_header(&header, first_row.as_deref()).map(|r| format!("shadowserver_{}", r.file_name))
}

/// The first CSV record and the first data record of `head`.
fn header_and_first_row(head: &[u8]) -> Option<(Vec<String>, Option<Vec<String>>)> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(head);
    let mut rec = csv::StringRecord::new();
    if !rdr.read_record(&mut rec).ok()? {
        return None;
    }
    let header: Vec<String> =
        rec.iter().map(|s| s.trim_start_matches('\u{feff}').trim().to_string()).collect();
    let first = match rdr.read_record(&mut rec) {
        Ok(true) => Some(rec.iter().map(str::to_string).collect()),
        _ => None,
    };
    Some((header, first))
}

/// Parses one report type (or, with `fixed: None`, whichever type the report is).
pub struct ShadowserverParser {
    schema: Arc<Schema>,
    fixed: Option<Arc<ReportType>>,
}

/// What to do with one column of this report.
enum Plan {
    /// Mapped by the schema (one column may feed several fields).
    Map(Vec<Mapping>),
    /// Unmapped: kept under this `extra.` key; `drift` when the schema does not know it.
    Extra { key: &'static str, drift: bool },
}

/// Per-column counters, reported once per report instead of once per row.
#[derive(Default)]
struct Counters {
    invalid: HashMap<usize, u64>,
    drift_rows: HashMap<usize, u64>,
    /// A report names few families many times: canonicalise each spelling once.
    families: HashMap<Box<str>, Option<botwatch_model::Text>>,
}

impl Parser for ShadowserverParser {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        self.parse_chunks(&mut std::iter::once(input.clone()), ctx, sink);
    }

    fn chunking(&self) -> Option<crate::Chunking> {
        Some(crate::Chunking::Csv)
    }

    /// The header and report type come from the first chunk; rows are read chunk by chunk
    /// with the same plan and counters, so a report of any size is read in pieces.
    fn parse_chunks(
        &self,
        chunks: &mut dyn Iterator<Item = Bytes>,
        ctx: &ParseContext<'_>,
        sink: &mut dyn Sink,
    ) {
        let Some(input) = chunks.next() else { return };
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&input[..]);
        let mut rec = csv::ByteRecord::new();
        // Header.
        let header: Vec<String> = loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => return,
                Ok(true) => {
                    if rec.len() == 1 && rec.get(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
                        continue;
                    }
                    // A byte-order mark (a report re-saved by a spreadsheet) is not part of
                    // the first column's name.
                    break rec
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).trim_start_matches('\u{feff}').trim().to_string())
                        .collect();
                }
                Err(e) => {
                    reject_whole(sink, &input, format!("unreadable CSV header: {e}"));
                    return;
                }
            }
        };
        let report = match &self.fixed {
            Some(r) => r.clone(),
            None => {
                let first_row =
                    header_and_first_row(&input[..input.len().min(64 * 1024)]).and_then(|(_, r)| r);
                match ctx
                    .file_name
                    .and_then(|n| self.schema.type_from_file_name(n))
                    .or_else(|| self.schema.type_from_header(&header, first_row.as_deref()))
                {
                    Some(r) => r,
                    None => {
                        reject_whole(
                            sink,
                            &input,
                            "not a Shadowserver report: file name and header match no report type in the schema",
                        );
                        return;
                    }
                }
            }
        };
        let (plan, missing_required) = compile(&report, &header, sink);
        let mut rows = Rows {
            report: &report,
            plan: &plan,
            missing_required: &missing_required,
            row_ctx: RowContext::new(&header),
            ncols: header.len(),
            counters: Counters::default(),
        };
        rows.read(&mut rdr, &mut rec, &input, 0, ctx, sink);
        let mut line_base = count_lines(&input);
        for chunk in chunks {
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&chunk[..]);
            rows.read(&mut rdr, &mut rec, &chunk, line_base, ctx, sink);
            line_base += count_lines(&chunk);
        }
        let counters = rows.counters;
        let mut drift: Vec<_> = counters.drift_rows.into_iter().collect();
        drift.sort();
        for (col, n) in drift {
            sink.warning(Warning {
                kind: WarningKind::SchemaDrift,
                line: None,
                message: format!(
                    "column {:?} is not in the {} schema; kept as extra.{} in {n} rows",
                    header[col], report.file_name, header[col]
                ),
            });
        }
        let mut invalid: Vec<_> = counters.invalid.into_iter().collect();
        invalid.sort();
        for (col, n) in invalid {
            sink.warning(Warning {
                kind: WarningKind::InvalidValue,
                line: None,
                message: format!(
                    "column {:?}: {n} values failed validation; kept raw as extra.{}",
                    header[col], header[col]
                ),
            });
        }
    }
}

/// Lines in a chunk: chunks end at record ends, so this is where the next one starts.
fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// What reading the rows needs, kept from chunk to chunk.
struct Rows<'r> {
    report: &'r Arc<ReportType>,
    plan: &'r [Plan],
    missing_required: &'r [String],
    row_ctx: RowContext,
    ncols: usize,
    counters: Counters,
}

impl Rows<'_> {
    /// The records of one chunk; `line_base` lines came before it.
    fn read(
        &mut self,
        rdr: &mut csv::Reader<&[u8]>,
        rec: &mut csv::ByteRecord,
        input: &Bytes,
        line_base: u64,
        ctx: &ParseContext<'_>,
        sink: &mut dyn Sink,
    ) {
        let (report, ncols) = (self.report, self.ncols);
        loop {
            let start = rdr.position().byte() as usize;
            match rdr.read_byte_record(rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    // The csv reader recovers at the next record; keep what we know.
                    let line = e.position().map(|p| p.line()).unwrap_or(0).max(1) + line_base;
                    let end = (rdr.position().byte() as usize).min(input.len());
                    reject(
                        sink,
                        line,
                        input.slice(start.min(end)..end),
                        format!("unreadable CSV record: {e}"),
                    );
                    continue;
                }
            }
            let pos = rec.position().map(|p| (p.byte() as usize, p.line())).unwrap_or((start, 0));
            let end = (rdr.position().byte() as usize).min(input.len());
            let mut raw_end = end;
            while raw_end > pos.0 && matches!(input[raw_end - 1], b'\n' | b'\r') {
                raw_end -= 1;
            }
            let raw = input.slice(pos.0.min(raw_end)..raw_end);
            let line = pos.1 + line_base;
            if rec.len() == 1 && rec.get(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue; // blank line
            }
            if !self.missing_required.is_empty() {
                reject(
                    sink,
                    line,
                    raw,
                    format!("header lacks required column(s) {}", self.missing_required.join(", ")),
                );
                continue;
            }
            // A short row is padded (trailing empty columns are often dropped, and IntelMQ
            // reads them as empty); a long one means a broken line or wrong delimiter.
            if rec.len() > ncols {
                reject(sink, line, raw, format!("row has {} fields, header has {ncols}", rec.len()));
                continue;
            }
            while rec.len() < ncols {
                rec.push_field(b"");
            }
            let mut e = Event::new(ctx.feed.clone(), report.default_type, ctx.observed);
            e.attrs.reserve(ncols);
            for (slot, v) in &report.constants {
                // Constants come from the schema and were validated when it was loaded.
                let _ = e.set_str(*slot, v);
            }
            match fill(&mut e, rec, self.plan, &self.row_ctx, ctx, &mut self.counters) {
                Ok(()) => {
                    if e.malware_name.is_none()
                        && report.default_type == botwatch_model::ClassificationType::InfectedSystem
                    {
                        // Sinkhole rows with an empty `infection` still name the `family`.
                        if let Some(Value::Str(f)) = e.attr("extra.family") {
                            e.malware_name = ctx.families.canonical(f);
                        }
                    }
                    e.raw = raw;
                    e.line = line;
                    sink.event(e);
                }
                Err(reason) => reject(sink, line, raw, reason),
            }
        }
    }
}

/// Columns that row-level conversions read besides their own.
struct RowContext {
    http_host: Option<usize>,
    application: Option<usize>,
    port: Option<usize>,
    category: Option<usize>,
    detail: Option<usize>,
}

impl RowContext {
    fn new(header: &[String]) -> Self {
        let find = |names: &[&str]| names.iter().find_map(|n| header.iter().position(|h| h == n));
        RowContext {
            http_host: find(&["http_host", "host", "cc_dns"]),
            application: find(&["application"]),
            port: find(&["port", "dst_port"]),
            category: find(&["category"]),
            detail: find(&["detail"]),
        }
    }
}

fn compile(report: &ReportType, header: &[String], sink: &mut dyn Sink) -> (Vec<Plan>, Vec<String>) {
    let mut plan = Vec::with_capacity(header.len());
    let mut drift = Vec::new();
    for col in header {
        if let Some(maps) = report.columns.get(col.as_str()) {
            plan.push(Plan::Map(maps.clone()));
        } else {
            let unknown = !report.known_fields.contains(col.as_str());
            if unknown {
                drift.push(col.clone());
            }
            plan.push(Plan::Extra { key: intern(&format!("extra.{col}")), drift: unknown });
        }
    }
    if !drift.is_empty() {
        sink.warning(Warning {
            kind: WarningKind::SchemaDrift,
            line: Some(1),
            message: format!(
                "{}: header has columns the schema does not know: {}",
                report.file_name,
                drift.join(", ")
            ),
        });
    }
    let missing: Vec<String> =
        report.required_columns.iter().filter(|c| !header.iter().any(|h| h == *c)).cloned().collect();
    if !missing.is_empty() {
        sink.warning(Warning {
            kind: WarningKind::SchemaDrift,
            line: Some(1),
            message: format!("{}: header lacks required column(s) {}", report.file_name, missing.join(", ")),
        });
    }
    (plan, missing)
}

fn field(rec: &csv::ByteRecord, i: Option<usize>) -> &str {
    i.and_then(|i| rec.get(i)).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
}

/// The conversions every row of the big reports runs, done in one step into the typed
/// field (the general path formats a value and parses it again).
fn fast_path(e: &mut Event, m: &Mapping, v: &str) -> Option<Result<(), String>> {
    use botwatch_model::{EndpointField as F, parse_ip, parse_timestamp};
    if v.is_empty() {
        return matches!(m.conv, Conv::Utc | Conv::Ip | Conv::Int | Conv::NonZero).then_some(Ok(()));
    }
    Some(match (m.conv, m.slot) {
        (Conv::Utc, Slot::TimeSource) => match parse_timestamp(v.trim_end_matches(" UTC")) {
            Some(t) => {
                e.time_source = Some(t);
                Ok(())
            }
            None => Err(format!("invalid timestamp {v:?}")),
        },
        (Conv::Ip, Slot::Endpoint(side, F::Ip)) => match parse_ip(v) {
            Some(ip) => {
                e.endpoint_mut(side).ip = Some(ip);
                Ok(())
            }
            None => Err(format!("invalid IP address {v:?}")),
        },
        (Conv::Int | Conv::NonZero | Conv::Text, Slot::Endpoint(side, F::Port)) => match v.parse::<u16>() {
            Ok(p) => {
                e.endpoint_mut(side).port = Some(p);
                Ok(())
            }
            Err(_) => Err(format!("invalid port {v:?}")),
        },
        (Conv::Int | Conv::NonZero | Conv::Text, Slot::Endpoint(side, F::Asn)) => match v.parse::<u32>() {
            Ok(0) if m.conv == Conv::NonZero => Ok(()),
            Ok(a) => {
                e.endpoint_mut(side).asn = Some(a);
                Ok(())
            }
            Err(_) => Err(format!("invalid ASN {v:?}")),
        },
        (Conv::NonZero | Conv::Int, Slot::Attr(k)) => match v.parse::<i64>() {
            Ok(0) if m.conv == Conv::NonZero => Ok(()),
            Ok(n) => {
                e.attrs.push((k, Value::Int(n)));
                Ok(())
            }
            Err(_) => Err(format!("not an integer: {v:?}")),
        },
        (Conv::ToNone | Conv::Text, Slot::Attr(k)) => {
            if m.conv == Conv::ToNone && (v == "0" || v.eq_ignore_ascii_case("unknown")) {
                return Some(Ok(()));
            }
            e.attrs.push((k, Value::Str(v.into())));
            Ok(())
        }
        (Conv::ToNone | Conv::Text, slot)
            if slot != Slot::MalwareName && slot != Slot::ClassificationType =>
        {
            if m.conv == Conv::ToNone && (v == "0" || v.eq_ignore_ascii_case("unknown")) {
                return Some(Ok(()));
            }
            e.set_str(slot, v).map_err(|err| err.to_string())
        }
        _ => return None,
    })
}

fn fill(
    e: &mut Event,
    rec: &csv::ByteRecord,
    plan: &[Plan],
    row: &RowContext,
    ctx: &ParseContext<'_>,
    counters: &mut Counters,
) -> Result<(), String> {
    let mut first_error: Option<String> = None;
    // One UTF-8 check per record; fields are then sliced out of it. Only a record with
    // invalid bytes pays for a lossy copy per field.
    let whole = std::str::from_utf8(rec.as_slice()).ok();
    for (i, p) in plan.iter().enumerate() {
        let Some(range) = rec.range(i) else { break };
        let text = match whole.and_then(|w| w.get(range.clone())) {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => String::from_utf8_lossy(&rec.as_slice()[range]),
        };
        let v = text.trim_ascii();
        match p {
            Plan::Extra { key, drift } => {
                if !v.is_empty() {
                    e.attrs.push((key, Value::Str(v.into())));
                    if *drift {
                        *counters.drift_rows.entry(i).or_default() += 1;
                    }
                }
            }
            Plan::Map(maps) => {
                for m in maps {
                    let res = match fast_path(e, m, v) {
                        Some(r) => r,
                        None => match m.conv.apply(v, rec, row) {
                            Ok(None) => Ok(()),
                            Ok(Some(val)) if m.slot == Slot::MalwareName => {
                                let raw = val.to_string();
                                e.malware_name = match counters.families.get(raw.as_str()) {
                                    Some(c) => c.clone(),
                                    None => {
                                        let c = ctx.families.canonical(&raw);
                                        counters.families.insert(raw.into_boxed_str(), c.clone());
                                        c
                                    }
                                };
                                Ok(())
                            }
                            Ok(Some(val)) => e.set_value(m.slot, val).map_err(|err| err.to_string()),
                            Err(err) => Err(err),
                        },
                    };
                    if let Err(err) = res {
                        // Like IntelMQ, a required column must exist but an empty or bad
                        // value only costs the line if the event is left without a time or
                        // without anything to name (checked below).
                        if m.required && first_error.is_none() {
                            first_error = Some(format!("column {:?} ({}): {err}", m.column, m.key));
                        }
                        *counters.invalid.entry(i).or_default() += 1;
                        e.attrs.push((m.fallback, Value::Str(v.into())));
                    }
                }
            }
        }
    }
    if e.time_source.is_none() {
        return Err(first_error.unwrap_or_else(|| "no timestamp".into()));
    }
    if e.source.lacks_host() && e.destination.lacks_host() {
        let why = first_error.unwrap_or_else(|| "empty".into());
        return Err(format!("no source address, network, host name or URL: {why}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

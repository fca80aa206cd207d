//! Table, CSV and JSON-lines writers for the CLI. Tables are for people; CSV and JSON
//! lines are for pipes (`| jq`, spreadsheets, IntelMQ).

use anyhow::Result;
use botwatch_store::{StoredEvent, StoredReject};
use serde_json::Value;
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// A simple left-aligned table, column widths from the content (capped).
pub fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    const MAX: usize = 48;
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count().min(MAX));
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let c: String = if c.chars().count() > MAX {
                c.chars().take(MAX - 1).chain(['…']).collect()
            } else {
                c.clone()
            };
            if i + 1 == cells.len() {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.iter().map(|h| h.to_string()).collect()))?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

/// Writes `items` as JSON lines, or their `rows` as CSV or a table under `header`.
pub fn emit<T: serde::Serialize>(
    out: &mut dyn Write,
    format: Format,
    items: &[T],
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<()> {
    match format {
        Format::Jsonl => {
            for i in items {
                writeln!(out, "{}", serde_json::to_string(i)?)?;
            }
            Ok(())
        }
        Format::Csv => csv_rows(out, header, rows),
        Format::Table => table(out, header, rows),
    }
}

pub fn csv_rows(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    w.flush()?;
    Ok(())
}

pub const EVENT_COLUMNS: &[&str] = &[
    "id",
    "time.source",
    "feed.code",
    "classification.type",
    "malware.name",
    "source.ip",
    "source.port",
    "source.asn",
    "source.geolocation.cc",
    "source.as_name",
    "destination.ip",
    "destination.port",
];

pub fn event_row(e: &StoredEvent) -> Vec<String> {
    let ev = &e.event;
    let o = |x: Option<String>| x.unwrap_or_default();
    vec![
        e.id.to_string(),
        o(ev.time_source.map(|t| t.to_rfc3339())),
        ev.feed.id.to_string(),
        ev.classification_type.as_str().to_string(),
        o(ev.malware_name.as_ref().map(|s| s.to_string())),
        o(ev.source
            .ip
            .map(|i| i.to_string())
            .or_else(|| ev.source.network.map(|n| n.to_string()))
            .or_else(|| ev.source.fqdn.as_ref().map(|s| s.to_string()))
            .or_else(|| ev.source.url.as_ref().map(|s| s.to_string()))),
        o(ev.source.port.map(|p| p.to_string())),
        o(ev.source.asn.map(|a| a.to_string())),
        o(ev.source.cc.as_ref().map(|s| s.to_string())),
        o(ev.source.as_name.as_ref().map(|s| s.to_string())),
        o(ev.destination.ip.map(|i| i.to_string())),
        o(ev.destination.port.map(|p| p.to_string())),
    ]
}

/// The IntelMQ document plus botwatch's ids (not IntelMQ keys, so prefixed); with
/// `intelmq_raw`, the line IntelMQ loads as it is (see `botwatch_model::intelmq`).
pub fn event_json(e: &StoredEvent, intelmq_raw: bool) -> Value {
    let mut m = e.event.to_intelmq(intelmq_raw);
    if intelmq_raw {
        // For IntelMQ itself: exactly what its harmonisation accepts (names, TLP, extra.*).
        return Value::Object(botwatch_model::intelmq::harmonise(m));
    }
    {
        m.insert("botwatch.id".into(), Value::from(e.id));
        m.insert("botwatch.report_id".into(), Value::from(e.report_id));
        if let Some(o) = e.observation_id {
            m.insert("botwatch.observation_id".into(), Value::from(o));
        }
        m.insert("botwatch.line".into(), Value::from(e.event.line));
        m.insert("raw".into(), Value::String(String::from_utf8_lossy(&e.event.raw).into_owned()));
    }
    Value::Object(m)
}

pub fn reject_row(r: &StoredReject) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.report_id.to_string(),
        r.feed.clone(),
        r.line.to_string(),
        r.reason.clone(),
        String::from_utf8_lossy(&r.raw).into_owned(),
    ]
}

pub const REJECT_COLUMNS: &[&str] = &["id", "report", "feed", "line", "reason", "raw"];

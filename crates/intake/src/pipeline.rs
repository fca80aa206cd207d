//! The ingest pipeline for one report: detect → parse → enrich → dedup/store.
//!
//! The input is read as a stream (gzip and zip decompressed as they are read, under the
//! [`input::Limits`]): a first pass hashes it and keeps its head for detection, a second
//! parses it in record-aligned chunks where the format allows ([`botwatch_feeds::Chunking`]).
//! Parsing and enrichment run on one thread, the store writer on the caller's; batches pass
//! through a bounded channel, so memory stays at a few chunks and batches whatever the report
//! size, and a slow disk slows the parser instead of filling memory. The whole report is one
//! store transaction: it lands wholly or not at all.

use anyhow::{Context, Result};
use botwatch_enrich::IpDb;
use botwatch_feeds::{ParseContext, input, registry::Registry};
use botwatch_model::{Event, FamilyTable, Reject, Sink, Timestamp, Warning, WarningKind};
use botwatch_store::{
    BatchOutcome, DocKeys, EncodedEvent, ObservationResolver, ObservationRow, ReportMeta, ReportTotals, Store,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Events per batch handed from the parser to the store. 2048 × 2 in flight measured
/// faster than 4096 × 4 (better overlap of the two threads) and holds less memory.
pub const BATCH: usize = 2048;
/// Batches in flight between the two threads.
const CHANNEL_DEPTH: usize = 2;

/// Shared, read-only context of an ingest run.
pub struct Ingestor<'a> {
    pub registry: &'a Registry,
    pub ipdb: &'a IpDb,
    pub families: &'a FamilyTable,
    /// What one input may expand to (`[ingest]` in the config).
    pub limits: input::Limits,
    /// Where inputs go instead of the store when another process stores them (NATS
    /// JetStream and `botwatch worker`); `None`: parsed and stored here.
    pub publish: Option<&'a dyn Publish>,
}

/// Hands an input on, unparsed, to be stored elsewhere (see [`crate::stream`]).
pub trait Publish: Sync {
    fn publish(&self, inp: &Input<'_>) -> Result<crate::stream::Published>;
}

/// What happened to one report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub name: String,
    pub feed: String,
    pub sha256: String,
    pub bytes: u64,
    /// `false` when the same report (same content hash) was already stored.
    pub new: bool,
    pub report_id: Option<i64>,
    pub events: u64,
    pub duplicates: u64,
    pub merged: u64,
    pub new_observations: u64,
    pub rejects: u64,
    pub drift_warnings: u64,
    pub warnings: Vec<Warning>,
    /// Published to JetStream for a worker to store (the stream's sequence number): the
    /// events are then counted by the worker, not here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
}

/// Options for one input.
pub struct Input<'a> {
    pub name: &'a str,
    pub data: input::Source,
    /// Feed id; detected when `None`.
    pub feed: Option<&'a str>,
    pub source: Option<String>,
    pub observed: Timestamp,
    pub archive: Option<String>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    digest_hex(Sha256::new_with_prefix(data))
}

/// A finished SHA-256 in lower-case hex: a report's identity in the store.
pub fn digest_hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

struct BatchSink<'a> {
    ipdb: &'a IpDb,
    resolver: Option<Box<dyn ObservationResolver>>,
    doc_keys: DocKeys,
    /// A resolver error stops the parser's output; the writer side reports it.
    error: Option<botwatch_store::StoreError>,
    events: Vec<EncodedEvent>,
    rejects: Vec<Reject>,
    warnings: Vec<Warning>,
    tx: crossbeam_channel::Sender<(Vec<EncodedEvent>, Vec<Reject>, u64)>,
    bytes: u64,
    closed: bool,
    /// Event times outside this range are rejects (see [`time_bounds`]).
    times: (Timestamp, Timestamp),
}

/// The plausible times of a report observed at `observed`: from 1990 (before any botnet
/// feed) to a day after it was observed (clocks and time zones drift; a week-old "future"
/// does not). A row dated 9999-12-31 or 1970 is a broken row: as an event it would take
/// over every chart and window.
pub fn time_bounds(observed: Timestamp) -> (Timestamp, Timestamp) {
    (Timestamp::from_secs(631_152_000), observed.saturating_add_secs(86_400))
}

impl BatchSink<'_> {
    fn flush(&mut self) {
        if self.events.is_empty() && self.rejects.is_empty() {
            return;
        }
        let mut ev = std::mem::replace(&mut self.events, Vec::with_capacity(BATCH));
        if let Some(r) = &mut self.resolver
            && let Err(e) = r.resolve(&mut ev)
        {
            self.error = Some(e);
            self.closed = true;
            return;
        }
        let rj = std::mem::take(&mut self.rejects);
        let bytes = std::mem::take(&mut self.bytes);
        // The receiver stops only on a store error; the parser then runs to the end unheard
        // and the error is reported by the writer side.
        if self.tx.send((ev, rj, bytes)).is_err() {
            self.closed = true;
        }
    }
}

impl Sink for BatchSink<'_> {
    fn event(&mut self, mut e: Event) {
        if self.closed {
            return;
        }
        if let Some(t) = e.time_source
            && (t < self.times.0 || t > self.times.1)
        {
            let why = if t > self.times.1 { "in the future" } else { "before 1990" };
            let reason = format!("time.source {} is {why}: not a plausible sighting time", t.to_rfc3339());
            self.reject(Reject { line: e.line, raw: e.raw, reason });
            return;
        }
        self.ipdb.enrich(&mut e);
        self.bytes += e.raw.len() as u64 + 1;
        // Encoding here keeps it off the store writer, the pipeline's serial stage.
        self.events.push(botwatch_store::encode_with(&e, &mut self.doc_keys));
        if self.events.len() >= BATCH {
            self.flush();
        }
    }
    fn reject(&mut self, r: Reject) {
        self.bytes += r.raw.len() as u64 + 1;
        self.rejects.push(r);
        if self.rejects.len() >= BATCH {
            self.flush();
        }
    }
    fn warning(&mut self, w: Warning) {
        self.warnings.push(w);
    }
}

impl Ingestor<'_> {
    /// Ingests one input (which may unpack to several reports: a zip).
    pub fn ingest(
        &self,
        store: &mut dyn Store,
        inp: Input<'_>,
        progress: &dyn Fn(u64),
    ) -> Result<Vec<ReportSummary>> {
        if let Some(p) = self.publish {
            let done = p.publish(&inp)?;
            progress(done.size);
            return Ok(vec![ReportSummary {
                name: inp.name.to_string(),
                feed: inp.feed.unwrap_or_default().to_string(),
                sha256: done.sha256,
                bytes: done.size,
                new: !done.duplicate,
                report_id: None,
                events: 0,
                duplicates: 0,
                merged: 0,
                new_observations: 0,
                rejects: 0,
                drift_warnings: 0,
                warnings: Vec::new(),
                published: Some(done.sequence),
            }]);
        }
        let members = input::members(inp.name, &inp.data)?;
        let mut out = Vec::new();
        let mut used = 0u64;
        for m in members {
            // Pass 1: the report's hash and size, and its head for detection.
            let (sha, size, head) = input::with_reader(&inp.data, &m, &self.limits, used, |r| {
                let mut h = Sha256::new();
                let mut head = Vec::new();
                let mut size = 0u64;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => {
                            h.update(&buf[..k]);
                            if head.len() < botwatch_feeds::registry::HEAD_LEN {
                                let take = k.min(botwatch_feeds::registry::HEAD_LEN - head.len());
                                head.extend_from_slice(&buf[..take]);
                            }
                            size += k as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(input::read_error(&m.what, e)),
                    }
                }
                Ok((digest_hex(h), size, head))
            })??;
            used += size;
            let spec = match inp.feed {
                Some(id) => self.registry.get(id)?,
                None => self.registry.detect(Some(&m.name), &head)?,
            };
            let mut meta = ReportMeta::new(&sha, &spec.id, size, inp.observed);
            meta.name = Some(m.name.clone());
            meta.source = inp.source.clone();
            meta.archive = inp.archive.clone();
            meta.feed_info = Some(spec.info());
            let mut summary = ReportSummary {
                name: m.name.clone(),
                feed: spec.id.clone(),
                sha256: sha,
                bytes: size,
                new: false,
                report_id: None,
                events: 0,
                duplicates: 0,
                merged: 0,
                new_observations: 0,
                rejects: 0,
                drift_warnings: 0,
                warnings: vec![],
                published: None,
            };
            let Some(mut writer) = store.begin_report(&meta)? else {
                progress(size);
                out.push(summary);
                continue;
            };
            summary.new = true;
            let (tx, rx) = crossbeam_channel::bounded(CHANNEL_DEPTH);
            let resolver = writer.resolver().context("opening the observation resolver")?;
            let ctx = ParseContext::new(spec, Some(&m.name), inp.observed, self.families);
            let (totals, warnings, doc_keys) =
                std::thread::scope(|s| -> Result<(BatchOutcome, Vec<Warning>, Vec<String>)> {
                    let parser = std::thread::Builder::new().name("parse".into()).spawn_scoped(s, || {
                        let mut sink = BatchSink {
                            ipdb: self.ipdb,
                            resolver,
                            doc_keys: DocKeys::default(),
                            error: None,
                            events: Vec::with_capacity(BATCH),
                            rejects: Vec::new(),
                            warnings: Vec::new(),
                            tx,
                            bytes: 0,
                            closed: false,
                            times: time_bounds(inp.observed),
                        };
                        // Pass 2: parse, in chunks where the format allows.
                        let read =
                            input::with_reader(&inp.data, &m, &self.limits, used - size, |r| {
                                match spec.parser.chunking() {
                                    Some(kind) => {
                                        let mut chunks = input::Chunker::new(r, kind, input::CHUNK);
                                        spec.parser.parse_chunks(&mut chunks, &ctx, &mut sink);
                                        match chunks.error.take() {
                                            Some(e) => Err(input::read_error(&m.what, e)),
                                            None => Ok(()),
                                        }
                                    }
                                    None => {
                                        let data = input::read_all(r, &m.what, self.limits.max_document)?;
                                        spec.parser.parse(&data, &ctx, &mut sink);
                                        Ok(())
                                    }
                                }
                            });
                        let read_err = match read {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) | Err(e) => Some(e),
                        };
                        sink.flush();
                        let observations: Option<Vec<ObservationRow>> =
                            sink.resolver.take().map(|r| r.finish());
                        let keys: Vec<String> = sink.doc_keys.keys().iter().map(|k| k.to_string()).collect();
                        (sink.warnings, observations, sink.error, keys, read_err)
                    })?;
                    let mut totals = BatchOutcome::default();
                    let mut err = None;
                    for (events, rejects, bytes) in rx.iter() {
                        match writer.write_batch(&events, &rejects) {
                            Ok(o) => totals += o,
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                        progress(bytes);
                    }
                    drop(rx);
                    let (warnings, observations, resolve_err, doc_keys, read_err) =
                        parser.join().map_err(|_| anyhow::anyhow!("parser thread panicked"))?;
                    // The input could not be read to its end (a limit, a broken archive):
                    // nothing of it is stored, and the error says why.
                    if let Some(e) = read_err {
                        return Err(e).context("reading the report");
                    }
                    if let Some(e) = err {
                        return Err(e).context("storing events");
                    }
                    if let Some(e) = resolve_err {
                        return Err(e).context("resolving observations");
                    }
                    if let Some(rows) = observations {
                        let (merged, new) = writer.observations(rows).context("storing observations")?;
                        totals.merged = merged;
                        totals.new_observations = new;
                    }
                    Ok((totals, warnings, doc_keys))
                })?;
            let warnings = aggregate(warnings);
            let report_id = writer
                .commit(&ReportTotals { outcome: totals, warnings: warnings.clone(), doc_keys })
                .context("committing report")?;
            summary.report_id = Some(report_id);
            summary.events = totals.inserted;
            summary.duplicates = totals.duplicates;
            summary.merged = totals.merged;
            summary.new_observations = totals.new_observations;
            summary.rejects = totals.rejects;
            summary.drift_warnings =
                warnings.iter().filter(|w| w.kind == WarningKind::SchemaDrift).count() as u64;
            summary.warnings = warnings;
            // The summary shows the warnings; the log keeps them for unattended runs. Drift is
            // the one worth a warning: the publisher changed the format.
            for w in &summary.warnings {
                if w.kind == WarningKind::SchemaDrift {
                    tracing::warn!(feed = %summary.feed, report = %summary.name, "{}", w.message);
                } else {
                    tracing::info!(feed = %summary.feed, report = %summary.name, kind = ?w.kind, "{}", w.message);
                }
            }
            tracing::info!(
                feed = %summary.feed,
                report = %summary.name,
                events = summary.events,
                duplicates = summary.duplicates,
                rejects = summary.rejects,
                "Report stored"
            );
            out.push(summary);
        }
        Ok(out)
    }
}

/// Identical warnings (same kind and message) are counted once.
fn aggregate(ws: Vec<Warning>) -> Vec<Warning> {
    let mut m: BTreeMap<(WarningKind, String), (Option<u64>, u64)> = BTreeMap::new();
    for w in ws {
        let e = m.entry((w.kind, w.message)).or_insert((w.line, 0));
        e.1 += 1;
    }
    m.into_iter()
        .map(|((kind, message), (line, n))| Warning {
            kind,
            line,
            message: if n > 1 { format!("{message} (×{n})") } else { message },
        })
        .collect()
}

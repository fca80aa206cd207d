//! `botwatch demo`: ingest the shipped sample reports (plus one synthetic busy day of
//! sinkhole data) into a fresh embedded store and show what an analyst looks at first.

use crate::pipeline::{Ingestor, Input, ReportSummary};
use anyhow::Result;
use botwatch_model::{Clock, SystemClock, Timestamp};
use botwatch_store::{EventQuery, GroupBy, Store, StoreConfig, sqlite::SqliteStore};
use std::io::Write;
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

pub struct DemoResult {
    pub summaries: Vec<ReportSummary>,
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
}

/// Ingests the samples into `db` (removed first).
pub fn run(
    db: &Path,
    ing: &Ingestor<'_>,
    synthetic_rows: usize,
    out: &mut dyn Write,
    progress: bool,
) -> Result<DemoResult> {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let mut store = SqliteStore::open(db, StoreConfig::default())?;
    let now = SystemClock.now();
    let day = Timestamp(now.micros() - 86_400_000_000).day();
    let synthetic = botwatch_feeds::shadowserver::synth::event4_sinkhole(
        synthetic_rows,
        (synthetic_rows / 6).max(1) as u32,
        &day,
        2026,
    );
    let synthetic_name = format!("{day}-event4_sinkhole-demo_isp-asn.csv");
    let total: u64 = SAMPLES.iter().map(|s| s.1.len() as u64).sum::<u64>() + synthetic.len() as u64;
    let bar = if progress { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} ingesting [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut summaries = Vec::new();
    let mut failed = Vec::new();
    let inputs = SAMPLES
        .iter()
        .map(|(name, data)| (name.to_string(), bytes::Bytes::from_static(data)))
        .chain(std::iter::once((synthetic_name, bytes::Bytes::from(synthetic))));
    for (name, data) in inputs {
        bar.set_message(name.clone());
        let len = data.len() as u64;
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        match ing.ingest(
            &mut store,
            Input {
                name: &base,
                data,
                feed: None,
                source: Some(format!("demo:{name}")),
                observed: now,
                archive: None,
            },
            &|_| {},
        ) {
            Ok(s) => summaries.extend(s),
            Err(e) => failed.push((name.clone(), format!("{e:#}"))),
        }
        bar.inc(len);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    store.checkpoint()?;
    report(&store, &summaries, &failed, seconds, db, out)?;
    Ok(DemoResult { summaries, failed, seconds })
}

fn report(
    store: &SqliteStore,
    sums: &[ReportSummary],
    failed: &[(String, String)],
    secs: f64,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let counts = store.counts()?;
    writeln!(
        out,
        "\nbotwatch demo — {} reports from {} feeds ingested in {:.2} s",
        sums.len(),
        {
            let mut f: Vec<_> = sums.iter().map(|s| s.feed.as_str()).collect();
            f.sort();
            f.dedup();
            f.len()
        },
        secs
    )?;
    writeln!(
        out,
        "{} events → {} deduplicated observations · {} duplicates merged · {} rejected lines kept · {} schema-drift warnings\n",
        counts.events,
        counts.observations,
        sums.iter().map(|s| s.merged).sum::<u64>(),
        counts.rejects,
        sums.iter().map(|s| s.drift_warnings).sum::<u64>()
    )?;
    let q = EventQuery { limit: Some(8), ..Default::default() };
    let infected = EventQuery {
        classification_type: Some("infected-system".into()),
        limit: Some(8),
        ..Default::default()
    };
    let fam = store.stats(GroupBy::Family, &infected)?;
    writeln!(out, "Infected systems by malware family (events / distinct IPs):")?;
    for r in fam.iter().filter(|r| !r.key.is_empty()) {
        writeln!(
            out,
            "  {:<22} {:>7} {:>7}  {}",
            r.key,
            r.events,
            r.subjects,
            bar(r.subjects, fam.iter().map(|x| x.subjects).max().unwrap_or(1))
        )?;
    }
    writeln!(out, "\nInfected systems by country:")?;
    let cc = store.stats(GroupBy::Country, &infected)?;
    for r in &cc {
        writeln!(
            out,
            "  {:<4} {:>7} events {:>7} IPs  {}",
            if r.key.is_empty() { "??" } else { &r.key },
            r.events,
            r.subjects,
            bar(r.subjects, cc.iter().map(|x| x.subjects).max().unwrap_or(1))
        )?;
    }
    writeln!(out, "\nNetworks with the most infected IPs:")?;
    let ipdb = botwatch_enrich::IpDb::builtin();
    let mut nets = store.stats(GroupBy::Asn, &EventQuery { limit: None, ..infected.clone() })?;
    nets.retain(|r| !r.key.is_empty());
    nets.sort_by(|a, b| b.subjects.cmp(&a.subjects).then(a.key.cmp(&b.key)));
    for r in nets.iter().take(8) {
        let name = r.key.parse().ok().and_then(|a| ipdb.as_name(a)).unwrap_or("");
        writeln!(out, "  AS{:<8} {:>7} IPs  {}", r.key, r.subjects, name)?;
    }
    writeln!(out, "\nWhat the feeds say, by classification:")?;
    for r in store.stats(GroupBy::Type, &q)? {
        writeln!(out, "  {:<32} {:>7}", r.key, r.events)?;
    }
    let mut corroborated: Vec<_> =
        store.observations(&EventQuery::default())?.into_iter().filter(|o| o.sources.len() > 1).collect();
    corroborated.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    if !corroborated.is_empty() {
        writeln!(out, "\nSeen by more than one feed (confidence rises with independent sources):")?;
        for o in corroborated.iter().take(5) {
            let srcs: Vec<_> = o.sources.keys().cloned().collect();
            writeln!(
                out,
                "  {:<18} {:<18} {:<12} conf {:.2}  {}",
                o.subject,
                o.classification_type,
                o.family,
                o.confidence,
                srcs.join(", ")
            )?;
        }
    }
    writeln!(out, "\nPer report:")?;
    writeln!(
        out,
        "  {:<52} {:<36} {:>6} {:>6} {:>6} {:>5}",
        "report", "feed", "events", "merged", "reject", "drift"
    )?;
    for s in sums {
        let name: String = if s.name.chars().count() > 52 {
            s.name.chars().take(51).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        writeln!(
            out,
            "  {:<52} {:<36} {:>6} {:>6} {:>6} {:>5}",
            name, s.feed, s.events, s.merged, s.rejects, s.drift_warnings
        )?;
    }
    for (n, e) in failed {
        writeln!(out, "  {n}: NOT INGESTED: {e}")?;
    }
    let d = db.display();
    writeln!(out, "\n{}", botwatch_enrich::CREDIT)?;
    writeln!(out, "\nNext, try:")?;
    writeln!(out, "  botwatch events --db {d} --family andromeda --limit 5")?;
    writeln!(out, "  botwatch stats --db {d} --by asn")?;
    writeln!(out, "  botwatch rejects --db {d}            # every line that did not parse, with the reason")?;
    writeln!(out, "  botwatch export --db {d} --format intelmq > events.jsonl")?;
    Ok(())
}

fn bar(n: u64, max: u64) -> String {
    let w = ((n as f64 / max.max(1) as f64) * 24.0).round() as usize;
    "█".repeat(w.max(usize::from(n > 0)))
}

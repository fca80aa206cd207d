//! `botwatch ingest`: report files (plain, gzip, zip, mail, mbox, MISP feed directories) into the store.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;
use botwatch::pipeline::{Ingestor, ReportSummary};
use botwatch_model::{Clock, SystemClock};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Ingests each file; exit code 3 when some could not be ingested at all.
pub(crate) fn ingest(
    cfg: &Config,
    files: Vec<PathBuf>,
    feed: Option<String>,
    db: DbArg,
    json: bool,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let families = botwatch::families(cfg);
    let registry = botwatch::registry(cfg);
    if let Some(f) = &feed {
        registry.get(f)?;
    }
    // With [nats] url (and no --db asking for a file), intake publishes and workers store.
    if db.db.is_none()
        && let Some(url) = nats_url(cfg)?
    {
        return publish(cfg, &url, files, feed, json, out);
    }
    let ipdb = botwatch::ipdb(cfg)?;
    let mut store = open_store(cfg, &db)?;
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: cfg.ingest.limits(),
        publish: None,
    };
    // A MISP feed directory (or its manifest.json) is the events its manifest lists.
    let (files, missing) = botwatch::share::expand_misp_feeds(&files);
    for m in &missing {
        eprintln!("{m}");
    }
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar =
        if quiet || json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total) };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut failed = missing.len();
    let mut all: Vec<ReportSummary> = Vec::new();
    let started = std::time::Instant::now();
    for f in &files {
        let name = f.display().to_string();
        bar.set_message(name.clone());
        // Files are read as streams, never whole; standard input is spooled to a
        // temporary file first (it is read twice: once to hash, once to parse).
        let spool;
        let path = if name == "-" {
            spool = botwatch::spool_stdin()?;
            spool.path().to_path_buf()
        } else {
            if let Err(e) = std::fs::File::open(f) {
                eprintln!("{name}: cannot read: {e}");
                failed += 1;
                continue;
            }
            f.clone()
        };
        let base = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or(name.clone());
        let before = bar.position();
        // A report, or a mail (.eml) or mbox whose attachments are reports.
        let r = botwatch_intake::ingest_file(
            &ing,
            &mut store,
            &path,
            &base,
            &botwatch_intake::Origin {
                feed: feed.as_deref(),
                source: name.clone(),
                observed: SystemClock.now(),
                archive: None,
            },
            &|b| bar.inc(b),
        );
        bar.set_position(before + std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
        match r {
            Ok(d) => {
                for u in &d.unreadable {
                    bar.suspend(|| eprintln!("{name}: not ingested: {u}"));
                }
                if d.reports.is_empty() && !d.unreadable.is_empty() {
                    failed += 1;
                }
                all.extend(d.reports);
            }
            Err(e) => {
                bar.suspend(|| eprintln!("{name}: not ingested: {e:#}"));
                failed += 1;
            }
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    store.checkpoint()?;
    if json {
        for s in &all {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
    } else {
        print_summary(out, &all, secs)?;
    }
    out.flush()?;
    return Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS });
    #[allow(unreachable_code)]
    Ok(ExitCode::SUCCESS)
}

/// `ingest` with `[nats] url`: each file is published to JetStream, unparsed, for the
/// workers; printed once JetStream has stored it.
fn publish(
    cfg: &Config,
    url: &str,
    files: Vec<PathBuf>,
    feed: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let nats = botwatch_intake::stream::Nats::connect(url, &cfg.nats)?;
    let (files, missing) = botwatch::share::expand_misp_feeds(&files);
    for m in &missing {
        eprintln!("{m}");
    }
    let mut failed = missing.len();
    let (mut count, mut bytes, mut dups) = (0u64, 0u64, 0u64);
    for f in &files {
        let name = f.display().to_string();
        let spool;
        let path = if name == "-" {
            spool = botwatch::spool_stdin()?;
            spool.path().to_path_buf()
        } else {
            f.clone()
        };
        let base = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or(name.clone());
        let origin = botwatch_intake::Origin {
            feed: feed.as_deref(),
            source: name.clone(),
            observed: SystemClock.now(),
            archive: None,
        };
        match nats.publish_file(&path, &base, &origin) {
            Ok(p) => {
                count += 1;
                bytes += p.size;
                dups += p.duplicate as u64;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&p)?)?;
                }
            }
            Err(e) => {
                eprintln!("{name}: not published: {e:#}");
                failed += 1;
            }
        }
    }
    if !json {
        writeln!(
            out,
            "{count} files ({bytes} bytes) published to JetStream stream {} ({dups} already there); `botwatch worker` stores them",
            cfg.nats.stream
        )?;
    }
    out.flush()?;
    Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

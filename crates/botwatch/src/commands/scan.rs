//! `botwatch scan`: telemetry files against the active indicators and the detectors.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) struct ScanOpts {
    pub(crate) json: bool,
    pub(crate) ignore_validity: bool,
    pub(crate) no_store: bool,
    pub(crate) no_detect: bool,
}

pub(crate) fn scan(
    cfg: &Config,
    files: &[PathBuf],
    db: &DbArg,
    opts: ScanOpts,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    use botwatch::sensor;
    let ScanOpts { json, ignore_validity, no_store, no_detect } = opts;
    let mut store = open_store(cfg, db)?;
    let path = db.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    let (matcher, compiled) =
        sensor::matcher_cached(&store, &cfg.sensor, sensor::matcher_snapshot_path(&path).as_deref())?;
    let matcher = std::sync::Arc::new(matcher);
    let ms = matcher.stats();
    let mut scanner = sensor::Scanner::new(matcher, &cfg.sensor, ignore_validity);
    if no_detect {
        scanner = scanner.without_detectors();
    }
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} scanning [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut failed = 0;
    let mut scanned = Vec::new();
    for f in files {
        let name = f.display().to_string();
        bar.set_message(name.clone());
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        // The digest names the sightings' report (a second scan of the same files adds
        // nothing); a scan that stores nothing need not pay for it. nfcapd files and
        // line-by-line logs stream; a gzipped log or a zipped capture is read as what it holds.
        let digest = (!no_store).then_some(&mut hasher);
        let start = bar.position();
        for got in sensor::scan_path(&mut scanner, f, &cfg.ingest.limits(), digest, &|n| bar.inc(n)) {
            match got {
                Ok(s) => scanned.push(s),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    failed += 1;
                }
            }
        }
        bar.set_position(start + size);
    }
    bar.finish_and_clear();
    let counts = scanner.counts();
    let flagged = scanner.finish();
    let secs = started.elapsed().as_secs_f64();
    let mut handed = Vec::new();
    if !no_store && !flagged.is_empty() {
        let sha = botwatch::pipeline::digest_hex(hasher);
        let (hits, found): (Vec<_>, Vec<_>) = flagged.iter().cloned().partition(|f| f.reason == "indicator");
        let name = format!("scan of {} file(s)", files.len());
        // With [nats] url (and no --db asking for a file), the sightings go to the stream
        // for a worker, as reports from intake do.
        let nats = match botwatch::serve::nats_url(cfg)? {
            Some(url) if db.db.is_none() => Some(botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?),
            _ => None,
        };
        handed.push(sensor::hand_sightings(
            &mut store,
            nats.as_ref(),
            &format!("{sha}:match"),
            &name,
            "match",
            &hits,
        )?);
        handed.push(sensor::hand_sightings(
            &mut store,
            nats.as_ref(),
            &format!("{sha}:detect"),
            &name,
            "detect",
            &found,
        )?);
        store.checkpoint()?;
    }
    if json {
        for f in &flagged {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        }
    } else {
        for s in &scanned {
            writeln!(
                out,
                "{}: {} records ({}), {} rejected",
                s.file,
                s.records,
                s.kinds.join("+"),
                s.rejects
            )?;
        }
        writeln!(
            out,
            "matched against {} active indicators ({} IPv4 / {} IPv6 segments, {} domains; {})",
            ms.indicators,
            ms.v4_segments,
            ms.v6_segments,
            ms.domains,
            match compiled {
                sensor::Compiled::Snapshot => "compiled snapshot",
                sensor::Compiled::Store => "compiled from the store",
            }
        )?;
        for f in &flagged {
            writeln!(
                out,
                "  {:<40} {:<9} {:<28} ×{:<6} {} – {}  {}",
                f.client.to_string(),
                f.reason,
                f.indicator.clone().or(f.score.map(|s| format!("score {s:.2}"))).unwrap_or_default(),
                f.count,
                f.first_seen.to_rfc3339(),
                f.last_seen.to_rfc3339(),
                f.detail
            )?;
        }
        let clients: std::collections::BTreeSet<_> = flagged.iter().map(|f| f.client).collect();
        writeln!(
            out,
            "{} flow records, {} DNS records, {} indicator hits; {} clients flagged; {}; {:.2} s ({:.0} records/s){}",
            counts.flows,
            counts.dns,
            counts.hits,
            clients.len(),
            sensor::Handed::describe(&handed),
            secs,
            (counts.flows + counts.dns) as f64 / secs.max(1e-9),
            counts.over_bounds()
        )?;
    }
    out.flush()?;
    Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

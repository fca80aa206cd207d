//! `botwatch sensor`: the live NetFlow/IPFIX collector and dnstap socket.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::{Result, bail};
use botwatch::config::Config;
use botwatch_model::{Clock, SystemClock};
use botwatch_store::Store;
use std::io::Write;

pub(crate) fn sensor(cfg: &Config, cmd: SensorCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch::sensor;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let SensorRun { db, flush, duration } = match &cmd {
        SensorCmd::Netflow { run, .. } | SensorCmd::Dnstap { run, .. } => run.clone(),
    };
    let mut store = open_store(cfg, &db)?;
    // With [nats] url (and no --db asking for a file), each window's sightings go to the
    // stream for a worker, as reports from intake do.
    let nats = match botwatch::serve::nats_url(cfg)? {
        Some(url) if db.db.is_none() => Some(botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?),
        _ => None,
    };
    let snapshot = sensor::matcher_snapshot_path(&db.db.clone().unwrap_or_else(|| cfg.store.path.clone()));
    let mut matcher = Arc::new(sensor::matcher_cached(&store, &cfg.sensor, snapshot.as_deref())?.0);
    let mut generation = store.generation(sensor::SIGHTING_FEEDS)?;
    let scanner = Arc::new(Mutex::new(sensor::Scanner::new(matcher.clone(), &cfg.sensor, false)));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let scanner = scanner.clone();
        let stop = stop.clone();
        match cmd {
            SensorCmd::Netflow { listen, .. } => std::thread::spawn(move || -> Result<()> {
                botwatch_telemetry::flow::udp::serve(
                    listen,
                    |recs| {
                        let mut s = scanner.lock().unwrap_or_else(|e| e.into_inner());
                        for r in &recs {
                            s.flow(r);
                        }
                    },
                    &stop,
                )?;
                Ok(())
            }),
            SensorCmd::Dnstap { socket, .. } => std::thread::spawn(move || -> Result<()> {
                let sink = SharedDnsSink(scanner);
                botwatch_telemetry::dns::serve_unix(&socket, sink, &stop)?;
                Ok(())
            }),
        }
    };
    let started = std::time::Instant::now();
    let mut round = 0u64;
    loop {
        let done = duration.is_some_and(|d| started.elapsed().as_secs() >= d) || worker.is_finished();
        std::thread::sleep(std::time::Duration::from_millis(200));
        if !done && started.elapsed().as_secs() < (round + 1) * flush.max(1) {
            continue;
        }
        round += 1;
        // Indicators the feeds added since are compiled outside the lock; the receiving
        // thread keeps matching meanwhile and is held only for the swap. Unchanged
        // observations (the store's generation) are not compiled again.
        match store.generation(sensor::SIGHTING_FEEDS) {
            Ok(g) if g == generation => {}
            Ok(g) => match sensor::matcher_cached(&store, &cfg.sensor, snapshot.as_deref()) {
                Ok((m, _)) => {
                    matcher = Arc::new(m);
                    generation = g;
                }
                Err(e) => tracing::warn!("Keeping the previous indicators: {e:#}"),
            },
            Err(e) => tracing::warn!("Keeping the previous indicators: {e:#}"),
        }
        // Hand the window's findings to the store; a fresh scanner takes over.
        let finished = {
            let mut s = scanner.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *s, sensor::Scanner::new(matcher.clone(), &cfg.sensor, false))
        };
        let counts = finished.counts();
        let flagged = finished.finish();
        let (hits, found): (Vec<_>, Vec<_>) = flagged.iter().cloned().partition(|f| f.reason == "indicator");
        let tag = format!("sensor:{}:{}", std::process::id(), SystemClock.now().micros());
        let handed = [
            sensor::hand_sightings(
                &mut store,
                nats.as_ref(),
                &format!("{tag}:match"),
                "live sensor",
                "match",
                &hits,
            )?,
            sensor::hand_sightings(
                &mut store,
                nats.as_ref(),
                &format!("{tag}:detect"),
                "live sensor",
                "detect",
                &found,
            )?,
        ];
        writeln!(
            out,
            "{} flows, {} DNS records, {} hits, {} clients flagged, {}{}",
            counts.flows,
            counts.dns,
            counts.hits,
            flagged.iter().map(|f| f.client).collect::<std::collections::BTreeSet<_>>().len(),
            sensor::Handed::describe(&handed),
            counts.over_bounds()
        )?;
        out.flush()?;
        if done {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(r) => r?,
        Err(_) => bail!("sensor thread panicked"),
    }
    Ok(())
}

/// The dnstap socket's sink: records into the shared scanner.
#[derive(Clone)]
pub(crate) struct SharedDnsSink(std::sync::Arc<std::sync::Mutex<botwatch::sensor::Scanner>>);

impl botwatch_telemetry::dns::DnsSink for SharedDnsSink {
    fn record(&mut self, r: botwatch_telemetry::record::DnsRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).dns(&r);
    }
}

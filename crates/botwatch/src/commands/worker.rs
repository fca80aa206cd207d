//! `botwatch worker`: stores what intake published to NATS JetStream.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;
use botwatch::pipeline::Ingestor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The NATS URL `[nats] url` names, its `env:`/`file:` indirection resolved.
pub(crate) fn nats_url(cfg: &Config) -> Result<Option<String>> {
    match &cfg.nats.url {
        None => Ok(None),
        Some(u) => {
            botwatch_model::secret::secret(u).map(Some).map_err(|e| anyhow::anyhow!("[nats] url: {e}"))
        }
    }
}

pub(crate) fn worker(cfg: &Config, idle_exit: Option<std::time::Duration>, db: DbArg) -> Result<()> {
    let Some(url) = nats_url(cfg)? else {
        anyhow::bail!("`botwatch worker` takes deliveries from NATS JetStream: set [nats] url in the config");
    };
    let families = botwatch::families(cfg);
    let registry = botwatch::registry(cfg);
    let ipdb = botwatch::ipdb(cfg)?;
    let ing = Ingestor { registry: &registry, ipdb: &ipdb, families: &families, limits: cfg.ingest.limits() };
    let mut store = open_any(cfg, &db, true)?;
    let nats = botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Signals end the loop between deliveries: the one at hand is stored and
        // acknowledged (or, if the process is killed instead, delivered again later).
        let stop = stop.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            stop.store(true, Ordering::Relaxed);
        })?;
    }
    if let Some(idle) = idle_exit {
        let stop = stop.clone();
        let last = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        LAST.with(|l| *l.borrow_mut() = Some(last.clone()));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if last.lock().map(|t| t.elapsed() > idle).unwrap_or(true) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        });
    }
    tracing::info!(backend = store.backend(), "worker taking deliveries from {}", cfg.nats.stream);
    eprintln!(
        "botwatch worker: taking deliveries from JetStream stream {} into {}",
        cfg.nats.stream,
        store.backend()
    );
    let started = std::time::Instant::now();
    let (mut deliveries, mut events, mut failures) = (0u64, 0u64, 0u64);
    nats.work(
        &stop,
        |path, name, origin| {
            touch();
            tracing::info!(%name, "storing");
            let r = botwatch_intake::ingest_file(&ing, &mut store, path, name, origin, &|_| {});
            touch();
            r
        },
        |item, result| match result {
            Ok(d) => {
                deliveries += 1;
                let n: u64 = d.reports.iter().map(|r| r.events).sum();
                events += n;
                tracing::info!(
                    name = %item.name, sequence = item.sequence, delivered = item.delivered,
                    reports = d.reports.len(), events = n, "stored"
                );
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(name = %item.name, sequence = item.sequence, delivered = item.delivered, error = %format!("{e:#}"), "not stored; given back to retry");
                eprintln!("botwatch worker: {}: not stored (delivery {}): {e:#}", item.name, item.delivered);
            }
        },
    )?;
    store.checkpoint()?;
    eprintln!(
        "botwatch worker: stopped after {:.1} s: {deliveries} deliveries stored ({events} new events), {failures} failed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

thread_local! {
    static LAST: std::cell::RefCell<Option<Arc<std::sync::Mutex<std::time::Instant>>>> = const { std::cell::RefCell::new(None) };
}

/// Work happened: the idle timer starts again.
fn touch() {
    LAST.with(|l| {
        if let Some(t) = &*l.borrow()
            && let Ok(mut t) = t.lock()
        {
            *t = std::time::Instant::now();
        }
    });
}

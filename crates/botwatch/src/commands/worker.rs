//! `botwatch worker`: stores what intake published to NATS JetStream.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;
use botwatch::pipeline::Ingestor;
use botwatch_model::{Clock, SystemClock};
use botwatch_store::jobs::JobStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) use botwatch::serve::nats_url;

pub(crate) fn worker(
    cfg: &Config,
    idle_exit: Option<std::time::Duration>,
    name: Option<String>,
    db: DbArg,
) -> Result<()> {
    let Some(url) = nats_url(cfg)? else {
        anyhow::bail!("`botwatch worker` takes deliveries from NATS JetStream: set [nats] url in the config");
    };
    let families = botwatch::families(cfg);
    let registry = botwatch::registry(cfg);
    let ipdb = botwatch::ipdb(cfg)?;
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: cfg.ingest.limits(),
        publish: None,
    };
    let store = open_store(cfg, &db)?;
    let nats = botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Signals end the loop between deliveries: the one at hand is stored and
        // acknowledged (or, if the process is killed instead, delivered again later).
        // The worker says it is taking deliveries only once the handlers are in place, so a
        // SIGTERM sent on that line stops it gracefully instead of by the default action.
        let stop = stop.clone();
        let (installed_tx, installed) = std::sync::mpsc::sync_channel::<bool>(1);
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                let _ = installed_tx.send(false);
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    let _ = installed_tx.send(false);
                    return;
                };
                let _ = installed_tx.send(true);
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            stop.store(true, Ordering::Relaxed);
        })?;
        if !installed.recv().unwrap_or(false) {
            anyhow::bail!("cannot install the SIGTERM/SIGINT handlers");
        }
    }
    let activity = Arc::new(Activity {
        busy: AtomicBool::new(false),
        last: std::sync::Mutex::new(std::time::Instant::now()),
    });
    if let Some(idle) = idle_exit {
        // Idle means no delivery for that long: time spent storing one (or waiting for
        // another worker's write lock to store it) is not idleness.
        let stop = stop.clone();
        let activity = activity.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let quiet = activity.last.lock().map(|t| t.elapsed() > idle).unwrap_or(true);
                if quiet && !activity.busy.load(Ordering::Relaxed) {
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
    // Each delivery is a run of this worker's job: /metrics, /healthz and the dashboard show
    // its last success, failures in a row and whether it is at work (a worker killed mid-
    // delivery counts as a failed run at its next start).
    let job = match name {
        Some(n) => format!("worker {n}"),
        None => format!("worker {}/{}", hostname(), std::process::id()),
    };
    let store = std::cell::RefCell::new(store);
    let began = std::cell::Cell::new(std::time::Instant::now());
    nats.work(
        &stop,
        |path, item, origin| {
            let name = &item.name;
            activity.touch(true);
            tracing::info!(%name, kind = item.kind.as_deref().unwrap_or("report"), "storing");
            let now = SystemClock.now();
            began.set(std::time::Instant::now());
            let mut s = store.borrow_mut();
            if let Err(e) = s.job_started(&job, 0, now) {
                tracing::warn!(error = %e, "could not record the worker's run");
            }
            let r = match item.kind.as_deref() {
                None => botwatch_intake::ingest_file(&ing, &mut *s, path, name, origin, &|_| {}),
                Some(botwatch_intake::stream::KIND_SIGHTINGS) => {
                    botwatch::sensor::store_sightings_delivery(&mut *s, path)
                }
                // From a newer botwatch: given back (and, after `max_deliver`, left) rather
                // than read as a report it is not.
                Some(other) => Err(anyhow::anyhow!("a delivery of kind {other:?}, which this worker does not know")),
            };
            activity.touch(false);
            r
        },
        |item, result| {
            let now = SystemClock.now();
            let outcome = match result {
                Ok(d) => {
                    deliveries += 1;
                    let n: u64 = d.reports.iter().map(|r| r.events).sum();
                    events += n;
                    tracing::info!(
                        name = %item.name, sequence = item.sequence, delivered = item.delivered,
                        reports = d.reports.len(), events = n, "stored"
                    );
                    Ok(format!("{}: {} reports, {n} new events", item.name, d.reports.len()))
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(name = %item.name, sequence = item.sequence, delivered = item.delivered, error = %format!("{e:#}"), "not stored; given back to retry");
                    eprintln!("botwatch worker: {}: not stored (delivery {}): {e:#}", item.name, item.delivered);
                    Err(format!("{}: {e:#}", item.name))
                }
            };
            let end = botwatch_store::jobs::JobEnd {
                at: now,
                duration_ms: began.get().elapsed().as_millis().min(i64::MAX as u128) as i64,
                outcome,
                next_run: now,
            };
            if let Err(e) = store.borrow_mut().job_finished(&job, &end) {
                tracing::warn!(error = %e, "could not record the worker's run");
            }
        },
        |pending, ack_pending| {
            let lag = botwatch_store::jobs::StreamLag {
                stream: cfg.nats.stream.clone(),
                consumer: cfg.nats.consumer.clone(),
                pending: pending.min(i64::MAX as u64) as i64,
                ack_pending: ack_pending.min(i64::MAX as u64) as i64,
                at: SystemClock.now(),
            };
            if let Err(e) = store.borrow_mut().stream_lag_put(&lag) {
                tracing::warn!(error = %e, "could not record the stream's backlog");
            }
        },
    )?;
    let store = store.into_inner();
    store.checkpoint()?;
    eprintln!(
        "botwatch worker: stopped after {:.1} s: {deliveries} deliveries stored ({events} new events), {failures} failed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `--idle-exit` watches.
struct Activity {
    busy: AtomicBool,
    last: std::sync::Mutex<std::time::Instant>,
}

impl Activity {
    /// A delivery starts (`busy`) or ends: the idle timer starts again.
    fn touch(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
        if let Ok(mut t) = self.last.lock() {
            *t = std::time::Instant::now();
        }
    }
}

/// This machine's name, for the worker's job row (several machines run workers).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

//! `botwatch run`: one supervised process that keeps the whole chain moving, on the
//! schedules of `botwatch.toml`: every intake (HTTP feeds, IMAP mailboxes, the Shadowserver
//! Reports API, the spool directory), `cases update`, notice delivery, the daily reports,
//! retention, and the web side beside them.
//!
//! - Each job runs on its own thread, so a job never overlaps itself and a slow or failing
//!   one never holds up the others. A failure is retried after the job's interval doubled
//!   per failure in a row, up to `[run] max_backoff`.
//! - Each run's start, end, outcome and duration, and each intake source's last new report,
//!   are written to the store (`jobs`, `intake_sources`): `/metrics`, `/healthz`,
//!   `/api/v1/jobs` and the dashboard read them there, in this process or another. A source
//!   quiet longer than its `stale_after` is logged as a warning once, and shown as stale.
//! - systemd: `READY=1` once the jobs are started, `WATCHDOG=1` at half the watchdog
//!   interval from the event loop (a wedged process stops pinging and is restarted),
//!   `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` on the way out, `STATUS=` lines.
//! - SIGHUP re-reads the config: the jobs are stopped (a run in progress finishes first) and
//!   started from the new config; a config that does not load is logged and the old one
//!   kept. The web side keeps its settings until a restart.
//! - SIGTERM or SIGINT: no new runs; the process exits within 10 s, abandoning a run still in
//!   progress. That is safe: a report is one transaction, and a mail or spool file is marked
//!   processed only after it, so the next start takes it again and the store recognises the
//!   same report by its content.

use crate::config::{Config, Every};
use anyhow::{Context, Result, bail};
use botwatch_intake::config::{FeedSource, ImapSource, ShadowserverSource, stale_after};
use botwatch_intake::pipeline::Ingestor;
use botwatch_model::{Clock, SystemClock, Timestamp};
use botwatch_store::jobs::{JobEnd, JobStore};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long SIGTERM waits for runs in progress before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

/// `botwatch run`'s arguments.
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub listen: Option<std::net::SocketAddr>,
}

/// What a job does.
#[derive(Debug, Clone)]
enum Kind {
    Fetch(FeedSource),
    Imap(ImapSource),
    Shadowserver(ShadowserverSource),
    Spool(PathBuf),
    Cases,
    Notify,
    DailyReports(PathBuf),
    Retention(u32),
}

/// One scheduled job.
#[derive(Debug, Clone)]
struct Job {
    name: String,
    every: Every,
    kind: Kind,
    /// The intake source it feeds: name, kind, how long it may stay quiet (`None`: never
    /// stale).
    source: Option<(String, &'static str, Option<Every>)>,
}

/// The jobs the config asks for.
fn jobs(cfg: &Config) -> Vec<Job> {
    let mut out = Vec::new();
    for f in &cfg.feeds {
        out.push(Job {
            name: format!("fetch {}", f.url),
            every: f.every(),
            kind: Kind::Fetch(f.clone()),
            source: Some((f.url.clone(), "http", Some(stale_after(f.every(), f.stale_after)))),
        });
    }
    for m in &cfg.intake.imap {
        out.push(Job {
            name: format!("mail {}", m.name()),
            every: m.every,
            kind: Kind::Imap(m.clone()),
            source: Some((m.name(), "imap", Some(stale_after(m.every, m.stale_after)))),
        });
    }
    for s in &cfg.intake.shadowserver {
        let name = format!("shadowserver:{}", s.name);
        out.push(Job {
            name: format!("shadowserver {}", s.name),
            every: s.every,
            kind: Kind::Shadowserver(s.clone()),
            source: Some((name, "shadowserver-api", Some(stale_after(s.every, s.stale_after)))),
        });
    }
    if let Some(dir) = &cfg.intake.spool {
        out.push(Job {
            name: "spool".into(),
            every: cfg.intake.spool_every,
            kind: Kind::Spool(dir.clone()),
            source: Some((format!("spool:{}", dir.display()), "spool", cfg.intake.spool_stale_after)),
        });
    }
    out.push(Job { name: "cases".into(), every: cfg.run.cases_every, kind: Kind::Cases, source: None });
    out.push(Job { name: "notify".into(), every: cfg.run.notify_every, kind: Kind::Notify, source: None });
    if let Some(dir) = &cfg.run.daily_reports_dir {
        out.push(Job {
            name: "daily-reports".into(),
            every: cfg.run.daily_reports_every,
            kind: Kind::DailyReports(dir.clone()),
            source: None,
        });
    }
    if let Some(days) = cfg.store.retain_days {
        out.push(Job {
            name: "retention".into(),
            every: cfg.run.retention_every,
            kind: Kind::Retention(days),
            source: None,
        });
    }
    out
}

/// A stop flag a sleeping job thread wakes up for.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d` or until stopped; true when stopped.
    fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut g = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*g {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self.cv.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

/// What every job of one config generation shares.
struct Ctx {
    cfg: Config,
    db: PathBuf,
    registry: botwatch_feeds::registry::Registry,
    ipdb: Arc<botwatch_enrich::IpDb>,
    families: botwatch_model::FamilyTable,
    /// The attributor with every stored lease record, kept between `cases` runs while the
    /// lease imports are the same (building it from 10M records takes seconds); retention
    /// drops it, so pruned records do not live on in memory.
    attributor: Mutex<Option<(LeaseGeneration, Arc<crate::isp::EnrichAttributor>)>>,
    /// With `[nats]`: intake publishes what arrives for `botwatch worker`s to store.
    nats: Option<botwatch_intake::stream::Nats>,
}

/// Which lease imports an attributor was built from: how many, and the newest id.
type LeaseGeneration = (usize, i64);

impl Ctx {
    fn attributor(&self, store: &botwatch_store::any::AnyStore) -> Result<Arc<crate::isp::EnrichAttributor>> {
        use botwatch_store::leases::LeaseStore;
        let imports = store.lease_imports()?;
        let generation = (imports.len(), imports.iter().map(|i| i.id).max().unwrap_or(0));
        let mut cached = self.attributor.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, a)) = cached.as_ref()
            && *g == generation
        {
            return Ok(a.clone());
        }
        let a = Arc::new(crate::isp::attributor(&self.cfg, store)?);
        *cached = Some((generation, a.clone()));
        Ok(a)
    }

    fn ingestor(&self) -> Ingestor<'_> {
        Ingestor {
            registry: &self.registry,
            ipdb: &self.ipdb,
            families: &self.families,
            limits: self.cfg.ingest.limits(),
            publish: self.nats.as_ref().map(|n| n as &dyn botwatch_intake::pipeline::Publish),
        }
    }

    fn store(&self) -> Result<botwatch_store::any::AnyStore> {
        crate::serve::open_write(&self.cfg, &self.db)
    }
}

/// The job threads of one config generation.
struct Generation {
    stop: Arc<Stop>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ctx: Arc<Ctx>,
}

impl Generation {
    fn start(cfg: Config, db: PathBuf) -> Result<Generation> {
        let ctx = Arc::new(Ctx {
            registry: crate::registry(&cfg),
            ipdb: crate::ipdb(&cfg)?,
            families: crate::families(&cfg),
            nats: match crate::serve::nats_url(&cfg)? {
                Some(url) => Some(botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?),
                None => None,
            },
            cfg,
            db,
            attributor: Mutex::new(None),
        });
        let list = jobs(&ctx.cfg);
        check(&ctx.cfg, &list)?;
        {
            let mut store = ctx.store()?;
            let now = SystemClock.now();
            for j in &list {
                if let Some((name, kind, stale)) = &j.source {
                    store.source_configured(
                        name,
                        kind,
                        j.every.as_secs(),
                        stale.map(|s| s.as_secs()),
                        now,
                    )?;
                }
            }
        }
        let stop = Arc::new(Stop::default());
        let mut threads = Vec::new();
        for job in list {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            let t = std::thread::Builder::new()
                .name(format!("job {}", job.name))
                .spawn(move || job_loop(&ctx, &job, &stop))
                .context("starting a job thread")?;
            threads.push(t);
        }
        Ok(Generation { stop, threads, ctx })
    }

    fn job_count(&self) -> usize {
        self.threads.len()
    }

    /// Asks every job to stop and waits up to `grace` for runs in progress; returns whether
    /// all finished.
    fn stop(self, grace: Duration) -> bool {
        self.stop.stop();
        let deadline = Instant::now() + grace;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !t.is_finished() {
                return false;
            }
            let _ = t.join();
        }
        true
    }
}

/// Configuration mistakes found before any job starts.
fn check(cfg: &Config, list: &[Job]) -> Result<()> {
    for f in &cfg.feeds {
        crate::fetch::check_url(&f.url)?;
    }
    if let Some(dir) = &cfg.intake.spool {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("[intake] spool: creating {}", dir.display()))?;
    }
    let mut names = std::collections::HashSet::new();
    for j in list {
        if !names.insert(&j.name) {
            bail!("two jobs would both be called {:?}: give the sources distinct names", j.name);
        }
    }
    Ok(())
}

fn job_loop(ctx: &Ctx, job: &Job, stop: &Stop) {
    let mut failures: u32 = 0;
    let mut warned_stale = false;
    loop {
        if stop.is_stopped() {
            return;
        }
        let started = Instant::now();
        let at = SystemClock.now();
        if let Ok(mut s) = ctx.store() {
            let _ = s.job_started(&job.name, job.every.as_secs(), at);
        }
        // A panic in a run is that run's failure, never the end of the job's thread.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_once(ctx, job)))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Err(anyhow::anyhow!("the run panicked: {what}"))
            });
        let took = started.elapsed();
        let wait = match &result {
            Ok(_) => {
                failures = 0;
                job.every.0
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                backoff(job.every.0, failures, ctx.cfg.run.max_backoff.0)
            }
        };
        let end = SystemClock.now();
        let outcome = match &result {
            Ok(r) => {
                // A run that found nothing to do is not news at info level.
                if r.idle {
                    tracing::debug!(job = %job.name, seconds = took.as_secs_f64(), "{}", r.detail);
                } else {
                    tracing::info!(job = %job.name, seconds = took.as_secs_f64(), "{}", r.detail);
                }
                Ok(r.detail.clone())
            }
            Err(e) => {
                tracing::warn!(job = %job.name, failures, retry_in_secs = wait.as_secs(), error = %format!("{e:#}"), "Job failed");
                Err(format!("{e:#}"))
            }
        };
        match ctx.store() {
            Ok(mut s) => {
                let rec = JobEnd {
                    at: end,
                    duration_ms: took.as_millis() as i64,
                    outcome,
                    next_run: Timestamp::from_micros(end.micros() + wait.as_micros() as i64),
                };
                if let Err(e) = s.job_finished(&job.name, &rec) {
                    tracing::warn!(job = %job.name, error = %e, "Could not record the job's run");
                }
                if let Some((name, _, _)) = &job.source {
                    let (reports, events, error) = match &result {
                        Ok(r) => (r.new_reports, r.events, None),
                        Err(e) => (0, 0, Some(format!("{e:#}"))),
                    };
                    let _ = s.source_checked(name, end, reports, events, error.as_deref());
                    if let Ok(rows) = s.sources()
                        && let Some(row) = rows.iter().find(|r| &r.name == name)
                    {
                        let stale = row.stale(end);
                        if stale && !warned_stale {
                            tracing::warn!(
                                source = %name,
                                quiet_secs = row.quiet_secs(end),
                                expected_every_secs = row.expected_secs,
                                "Source has gone quiet: no new report for longer than allowed (stale)"
                            );
                        } else if !stale && warned_stale {
                            tracing::info!(source = %name, "Source delivers again");
                        }
                        warned_stale = stale;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(job = %job.name, error = %format!("{e:#}"), "Could not open the store to record the job's run")
            }
        }
        if stop.wait(wait) {
            return;
        }
    }
}

/// The interval doubled per failure in a row, capped (but never below the interval).
fn backoff(every: Duration, failures: u32, max: Duration) -> Duration {
    let doubled = every.saturating_mul(1u32 << failures.min(16));
    doubled.min(max.max(every))
}

/// What a run did.
struct Ran {
    detail: String,
    new_reports: i64,
    events: i64,
    /// Nothing to do this time.
    idle: bool,
}

impl Ran {
    fn said(detail: impl Into<String>, idle: bool) -> Ran {
        Ran { detail: detail.into(), new_reports: 0, events: 0, idle }
    }

    fn delivered(d: &botwatch_intake::Delivered) -> Ran {
        Ran {
            detail: d.line(),
            new_reports: d.new_reports() as i64,
            events: d.events() as i64,
            idle: d.reports.is_empty() && d.unreadable.is_empty(),
        }
    }
}

fn run_once(ctx: &Ctx, job: &Job) -> Result<Ran> {
    let cfg = &ctx.cfg;
    let clock = SystemClock;
    match &job.kind {
        Kind::Fetch(src) => {
            let mut store = ctx.store()?;
            let fetcher = crate::fetch::Fetcher::new(&cfg.fetch, &clock)?;
            let out = fetcher.fetch(src, &mut store, &ctx.ingestor());
            if let Some(e) = out.error {
                bail!("{e}");
            }
            let d = botwatch_intake::Delivered { reports: out.reports, ..Default::default() };
            let mut ran = Ran::delivered(&d);
            ran.detail = format!("{}: {}", out.status, ran.detail);
            Ok(ran)
        }
        Kind::Imap(src) => {
            let mut store = ctx.store()?;
            let now = || SystemClock.now();
            let d = botwatch_intake::imap::collect(
                src,
                &cfg.fetch,
                &ctx.ingestor(),
                &mut store,
                &cfg.fetch.archive_dir,
                &now,
            )?;
            Ok(Ran::delivered(&d))
        }
        Kind::Shadowserver(src) => {
            let mut store = ctx.store()?;
            let client = botwatch_intake::shadowserver::Client::new(src, &cfg.fetch)?;
            let d = botwatch_intake::shadowserver::collect(
                &client,
                &ctx.ingestor(),
                &mut store,
                &cfg.fetch.archive_dir,
                clock.now(),
            )?;
            Ok(Ran::delivered(&d))
        }
        Kind::Spool(dir) => {
            let mut store = ctx.store()?;
            let d =
                botwatch_intake::spool::drain(&ctx.ingestor(), &mut store, dir, None, || SystemClock.now())?;
            Ok(Ran::delivered(&d))
        }
        Kind::Cases => {
            let mut store = ctx.store()?;
            let attributor = ctx.attributor(&store)?;
            let engine = botwatch_cases::CaseEngine::new(cfg.cases.clone()).context("invalid [cases]")?;
            let s = engine.update(&mut store, &*attributor, &clock, 10_000)?;
            let p = &s.process;
            let idle = p.events == 0 && s.tick.transitions == 0;
            Ok(Ran::said(
                format!(
                    "{} events: {} cases opened, {} re-opened, {} attached; {} notices queued; {} closed as silent",
                    p.events,
                    p.opened,
                    p.reopened,
                    p.attached,
                    p.notices + s.tick.notices,
                    s.tick.closed
                ),
                idle,
            ))
        }
        Kind::Notify => {
            let mut store = ctx.store()?;
            let sum = crate::deliver_notices(cfg, &mut store, &clock, false)?;
            let line = format!(
                "{} due, {} sent, {} deferred, {} to retry, {} failed, {} cancelled",
                sum.due,
                sum.sent,
                sum.deferred_rate_limit + sum.deferred_quiet_hours,
                sum.retried,
                sum.failed,
                sum.cancelled
            );
            // Notices that cannot go out are a failure to see, not a quiet success.
            if sum.no_transport > 0 {
                bail!("{line}; {} left queued: no transport configured for them", sum.no_transport);
            }
            Ok(Ran::said(line, sum.due == 0))
        }
        Kind::DailyReports(dir) => {
            let now = clock.now();
            let day = crate::isp::yesterday(now);
            // Written once per day: the marker says it was.
            let marker = dir.join(format!(".{day}.done"));
            if marker.exists() {
                return Ok(Ran::said(format!("{day}: already written"), true));
            }
            let store = crate::serve::open_read(cfg, &ctx.db)?;
            let written = crate::isp::write_daily_reports(cfg, &store, &day, dir, now)?;
            std::fs::write(&marker, format!("{}\n", now.to_rfc3339()))?;
            let rows: usize = written.iter().map(|w| w.rows).sum();
            Ok(Ran::said(format!("{day}: {} organisations, {rows} rows", written.len()), false))
        }
        Kind::Retention(days) => {
            let mut store = ctx.store()?;
            let before = Timestamp::from_micros(clock.now().micros() - i64::from(*days) * 86_400_000_000);
            let s = store.prune(before)?;
            *ctx.attributor.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let archived = crate::fetch::prune_archive(&cfg.fetch, before)?;
            Ok(Ran::said(
                format!(
                    "older than {days} days: {} events, {} observations, {} rejected lines, {} lease records, {archived} archived reports deleted",
                    s.events, s.observations, s.rejects, s.lease_records
                ),
                false,
            ))
        }
    }
}

fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Runs until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    let db = args.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    // Made (and migrated) now, so the web side and the jobs find it.
    drop(crate::serve::open_write(&cfg, &db)?);
    let server =
        if cfg.run.serve { Some(crate::serve::prepare(&cfg, db.clone(), args.listen)?) } else { None };
    let mut generation = Some(Generation::start(cfg, db.clone())?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let (down_tx, down_rx) = tokio::sync::watch::channel(false);
        let server_task = server.map(|p| {
            let mut rx = down_rx.clone();
            tokio::spawn(crate::serve::serve(p, async move {
                let _ = rx.wait_for(|v| *v).await;
            }))
        });
        let summary = |g: &Option<Generation>| {
            let Some(g) = g else { return "botwatch run: no jobs".to_string() };
            format!(
                "botwatch run: {} jobs ({}), store {}",
                g.job_count(),
                jobs(&g.ctx.cfg).iter().map(|j| j.name.as_str()).collect::<Vec<_>>().join(", "),
                db.display()
            )
        };
        // The handlers go in before anyone is told we are ready: a SIGHUP sent on READY=1
        // would otherwise meet the default action and end the process.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        println!("{}", summary(&generation));
        std::io::Write::flush(&mut std::io::stdout())?;
        notify_systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&summary(&generation))]);
        let watchdog = watchdog_task();
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    notify_systemd(&[sd_notify::NotifyState::Reloading, sd_notify::NotifyState::monotonic_usec_now().unwrap_or(sd_notify::NotifyState::Status("reloading"))]);
                    match Config::load(args.config.as_deref()) {
                        Ok(new) => {
                            tracing::info!("Reloading the configuration: stopping the jobs");
                            let mut old_cfg = None;
                            if let Some(old) = generation.take() {
                                old_cfg = Some(old.ctx.cfg.clone());
                                let finished = tokio::task::spawn_blocking(move || old.stop(Duration::from_secs(600))).await?;
                                if !finished {
                                    tracing::warn!("A job did not finish within 10 minutes; starting the new jobs beside it");
                                }
                            }
                            match Generation::start(new, db.clone()) {
                                Ok(g) => {
                                    generation = Some(g);
                                    tracing::info!("Configuration reloaded");
                                }
                                Err(e) => {
                                    tracing::error!(error = %format!("{e:#}"), "The new configuration cannot run; keeping the old one");
                                    if let Some(c) = old_cfg {
                                        generation = Some(Generation::start(c, db.clone())?);
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "The configuration does not load; keeping the old one"),
                    }
                    println!("{}", summary(&generation));
                    std::io::Write::flush(&mut std::io::stdout())?;
                    notify_systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&summary(&generation))]);
                }
            }
        }
        tracing::info!("Stopping: no new runs; waiting for runs in progress");
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        if let Some(w) = watchdog {
            w.abort();
        }
        let _ = down_tx.send(true);
        let all = tokio::task::spawn_blocking(move || generation.is_none_or(|g| g.stop(SHUTDOWN_GRACE))).await?;
        if !all {
            tracing::warn!("A run was still in progress; abandoned (it is taken again at the next start)");
        }
        if let Some(t) = server_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        anyhow::Ok(())
    })?;
    // Threads of an abandoned run end with the process.
    Ok(())
}

/// Pings systemd's watchdog at half its interval while the event loop lives (a wedged
/// process stops pinging and is restarted).
fn watchdog_task() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled().filter(|d| !d.is_zero())?;
    Some(tokio::spawn(async move {
        let every = interval / 2;
        loop {
            notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            tokio::time::sleep(every).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let m = Duration::from_secs(60);
        assert_eq!(backoff(m, 1, Duration::from_secs(3600)), Duration::from_secs(120));
        assert_eq!(backoff(m, 3, Duration::from_secs(3600)), Duration::from_secs(480));
        assert_eq!(backoff(m, 30, Duration::from_secs(3600)), Duration::from_secs(3600));
        // A cap below the interval never makes a failing job run more often.
        assert_eq!(
            backoff(Duration::from_secs(7200), 1, Duration::from_secs(3600)),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn a_stop_wakes_a_sleeping_job() {
        let s = Arc::new(Stop::default());
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(50));
        s.stop();
        assert!(t.join().unwrap());
        assert!(!Stop::default().wait(Duration::from_millis(1)));
    }
}

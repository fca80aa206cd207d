//! `/metrics` in the Prometheus text format (0.0.4), written by hand: a few counters and
//! one latency histogram need no metrics framework. Pipeline figures (events, rejects per
//! feed, notices by status, sensor hits) are read from the store, so they count what every
//! botwatch process did, not only this server; they are read at most once per
//! [`STORE_FIGURES_TTL`], so scrapes (or a flood of them) cost the store nothing more. Reading
//! `/metrics` takes an admin's or analyst's token unless `[server] metrics_access = "public"`.

use crate::Shared;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use botwatch_store::Store;
use botwatch_store::outbox::OutboxStore;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How long the store's figures are reused between scrapes: they are maintained counts, cheap
/// to read (a few rows), so this only spares the store a burst of scrapes.
pub const STORE_FIGURES_TTL: Duration = Duration::from_secs(1);

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Portal outcomes: listed, clean, rate_limited, …
    portal: Mutex<BTreeMap<&'static str, u64>>,
    actions: Mutex<BTreeMap<&'static str, u64>>,
    /// TLS handshakes by outcome: ok, failed, timeout.
    tls_handshakes: Mutex<BTreeMap<&'static str, u64>>,
    /// Connections closed at once: the client had its share open already.
    refused: std::sync::atomic::AtomicU64,
    /// TAXII objects by (partner, direction): sent, withheld (by the TLP gate), received.
    taxii: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The last publish of the `indicators` collection: (unix seconds, objects, new ones).
    published: Mutex<Option<(i64, u64, u64)>>,
    /// The store's part of the page and when it was read.
    store_part: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        *lock(&self.requests).entry((route.to_string(), status)).or_default() += 1;
        let secs = took.as_secs_f64();
        let mut l = lock(&self.latency);
        let h = l.entry(route.to_string()).or_default();
        h.count += 1;
        h.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.counts[i] += 1;
        }
    }

    pub fn portal(&self, outcome: &'static str) {
        *lock(&self.portal).entry(outcome).or_default() += 1;
    }

    pub fn case_action(&self, action: &'static str) {
        *lock(&self.actions).entry(action).or_default() += 1;
    }

    pub fn connection_refused(&self) {
        self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn taxii_objects(&self, partner: &str, direction: &'static str, n: u64) {
        if n > 0 {
            *lock(&self.taxii).entry((partner.to_string(), direction)).or_default() += n;
        }
    }

    pub fn published(&self, at_secs: i64, objects: u64, added: u64) {
        *lock(&self.published) = Some((at_secs, objects, added));
    }

    pub fn tls_handshake(&self, outcome: &'static str) {
        *lock(&self.tls_handshakes).entry(outcome).or_default() += 1;
    }

    fn write_own(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP botwatch_http_requests_total HTTP requests by route and status.");
        let _ = writeln!(out, "# TYPE botwatch_http_requests_total counter");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "botwatch_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                esc(route)
            );
        }
        let _ = writeln!(out, "# HELP botwatch_http_request_duration_seconds Request latency by route.");
        let _ = writeln!(out, "# TYPE botwatch_http_request_duration_seconds histogram");
        for (route, h) in lock(&self.latency).iter() {
            let r = esc(route);
            let mut cum = 0;
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                cum += c;
                let _ = writeln!(
                    out,
                    "botwatch_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {cum}"
                );
            }
            let _ = writeln!(
                out,
                "botwatch_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "botwatch_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ =
                writeln!(out, "botwatch_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        let _ = writeln!(out, "# HELP botwatch_portal_lookups_total Self-check portal look-ups by outcome.");
        let _ = writeln!(out, "# TYPE botwatch_portal_lookups_total counter");
        for (k, n) in lock(&self.portal).iter() {
            let _ = writeln!(out, "botwatch_portal_lookups_total{{outcome=\"{k}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP botwatch_case_actions_total Case actions taken through the server.");
        let _ = writeln!(out, "# TYPE botwatch_case_actions_total counter");
        for (k, n) in lock(&self.actions).iter() {
            let _ = writeln!(out, "botwatch_case_actions_total{{action=\"{k}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP botwatch_tls_handshakes_total TLS handshakes by outcome (HTTPS only).");
        let _ = writeln!(out, "# TYPE botwatch_tls_handshakes_total counter");
        for (k, n) in lock(&self.tls_handshakes).iter() {
            let _ = writeln!(out, "botwatch_tls_handshakes_total{{outcome=\"{k}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP botwatch_connections_refused_total Connections closed at once: the client already had its share open."
        );
        let _ = writeln!(out, "# TYPE botwatch_connections_refused_total counter");
        let _ = writeln!(
            out,
            "botwatch_connections_refused_total {}",
            self.refused.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP botwatch_taxii_objects_total STIX objects over TAXII by partner: sent, withheld by the TLP gate, received."
        );
        let _ = writeln!(out, "# TYPE botwatch_taxii_objects_total counter");
        for ((p, d), n) in lock(&self.taxii).iter() {
            let _ =
                writeln!(out, "botwatch_taxii_objects_total{{partner=\"{}\",direction=\"{d}\"}} {n}", esc(p));
        }
        if let Some((at, objects, added)) = *lock(&self.published) {
            let _ = writeln!(
                out,
                "# HELP botwatch_share_last_publish_timestamp_seconds When serve last published the TAXII indicators collection."
            );
            let _ = writeln!(out, "# TYPE botwatch_share_last_publish_timestamp_seconds gauge");
            let _ = writeln!(out, "botwatch_share_last_publish_timestamp_seconds {at}");
            let _ = writeln!(
                out,
                "# HELP botwatch_share_published_objects Objects the last publish wrote (all, and new or changed)."
            );
            let _ = writeln!(out, "# TYPE botwatch_share_published_objects gauge");
            let _ = writeln!(out, "botwatch_share_published_objects{{kind=\"all\"}} {objects}");
            let _ = writeln!(out, "botwatch_share_published_objects{{kind=\"new\"}} {added}");
        }
    }
}

/// Label values escaped as the text format requires.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What the store holds, summed per feed.
struct StoreFigures {
    feeds: BTreeMap<String, (u64, u64, u64, u64)>,
    notices: Vec<(String, u64)>,
    open_cases: u64,
    jobs: Vec<botwatch_store::jobs::JobRow>,
    sources: Vec<botwatch_store::jobs::SourceRow>,
    lags: Vec<botwatch_store::jobs::StreamLag>,
    now: botwatch_model::Timestamp,
}

pub async fn render(State(st): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    if st.cfg.metrics_access == crate::MetricsAccess::Token {
        let token = match crate::auth::bearer(&headers) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return crate::api::ApiError::unauthorized(
                    "/metrics takes an admin's or analyst's token (Authorization: Bearer)",
                )
                .into_response();
            }
            Err(e) => return e.into_response(),
        };
        match crate::auth::principal_for_token(&st, token).await {
            Ok(p) if p.sees_all() => {}
            Ok(_) => return crate::api::ApiError::forbidden("analysts and admins only").into_response(),
            Err(e) => return e.into_response(),
        }
    }
    let mut out = String::new();
    st.metrics.write_own(&mut out);
    // One store read per TTL, whatever the scrape rate; concurrent scrapes wait for it.
    let mut cached = st.metrics.store_part.lock().await;
    let fresh = cached.as_ref().is_some_and(|(at, _)| at.elapsed() < STORE_FIGURES_TTL);
    if !fresh {
        *cached = Some((std::time::Instant::now(), store_part(&st).await));
    }
    if let Some((_, part)) = cached.as_ref() {
        out.push_str(part);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn store_part(st: &Shared) -> String {
    let now = st.deps.clock.now();
    let figures = st
        .deps
        .db
        .run(move |s| {
            let mut feeds: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
            // Maintained totals: no report row is read.
            for t in s.feed_totals()? {
                feeds.insert(t.feed, (t.events, t.rejects, t.duplicates, t.reports));
            }
            let notices = s.notice_counts()?;
            let open_cases = botwatch_store::cases::CaseStore::open_case_count(s)?;
            use botwatch_store::jobs::JobStore;
            Ok(StoreFigures {
                feeds,
                notices,
                open_cases,
                jobs: s.jobs()?,
                sources: s.sources()?,
                lags: s.stream_lags()?,
                now,
            })
        })
        .await;
    let mut out = String::new();
    match figures {
        Ok(f) => {
            for (name, help, pick) in [
                ("botwatch_feed_events_total", "Events stored per feed.", 0),
                ("botwatch_feed_rejects_total", "Lines rejected per feed (kept as dead letters).", 1),
                ("botwatch_feed_duplicates_total", "Events dropped as duplicates per feed.", 2),
                ("botwatch_feed_reports_total", "Reports ingested per feed.", 3),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} counter");
                for (feed, v) in &f.feeds {
                    let x = [v.0, v.1, v.2, v.3][pick];
                    let _ = writeln!(out, "{name}{{feed=\"{}\"}} {x}", esc(feed));
                }
            }
            let _ = writeln!(
                out,
                "# HELP botwatch_sensor_hits_total Sightings from botwatch's own sensors (indicator matches and detections)."
            );
            let _ = writeln!(out, "# TYPE botwatch_sensor_hits_total counter");
            for (feed, v) in f.feeds.iter().filter(|(k, _)| k.starts_with("botwatch_sensor_")) {
                let _ = writeln!(
                    out,
                    "botwatch_sensor_hits_total{{sensor=\"{}\"}} {}",
                    esc(&feed["botwatch_sensor_".len()..]),
                    v.0
                );
            }
            let _ = writeln!(
                out,
                "# HELP botwatch_notices Notices in the outbox by status (sent, failed, pending, cancelled)."
            );
            let _ = writeln!(out, "# TYPE botwatch_notices gauge");
            for (status, n) in &f.notices {
                let _ = writeln!(out, "botwatch_notices{{status=\"{}\"}} {n}", esc(status));
            }
            let _ = writeln!(out, "# HELP botwatch_open_cases Cases not closed.");
            let _ = writeln!(out, "# TYPE botwatch_open_cases gauge");
            let _ = writeln!(out, "botwatch_open_cases {}", f.open_cases);
            write_jobs(&mut out, &f);
            let _ = writeln!(out, "botwatch_store_up 1");
        }
        Err(_) => {
            let _ = writeln!(out, "botwatch_store_up 0");
        }
    }
    out
}

/// `botwatch run`'s jobs and intake sources, as recorded in the store (empty when nothing
/// runs them).
fn write_jobs(out: &mut String, f: &StoreFigures) {
    type JobPick = fn(&botwatch_store::jobs::JobRow) -> Option<f64>;
    let job_metrics: [(&str, &str, &str, JobPick); 7] = [
        ("botwatch_job_runs_total", "counter", "Runs of each botwatch run job.", |j| Some(j.runs as f64)),
        ("botwatch_job_failures_total", "counter", "Failed runs of each job.", |j| Some(j.failures as f64)),
        (
            "botwatch_job_consecutive_failures",
            "gauge",
            "Failures in a row since the job last succeeded (its back-off grows with them).",
            |j| Some(j.consecutive_failures as f64),
        ),
        ("botwatch_job_last_success_timestamp_seconds", "gauge", "When each job last succeeded.", |j| {
            j.last_success.map(|t| t.micros() as f64 / 1e6)
        }),
        ("botwatch_job_last_failure_timestamp_seconds", "gauge", "When each job last failed.", |j| {
            j.last_failure.map(|t| t.micros() as f64 / 1e6)
        }),
        ("botwatch_job_last_duration_seconds", "gauge", "How long each job's last run took.", |j| {
            j.last_duration_ms.map(|ms| ms as f64 / 1e3)
        }),
        ("botwatch_job_running", "gauge", "1 while a run of the job is in progress.", |j| {
            Some(if j.running_since.is_some() { 1.0 } else { 0.0 })
        }),
    ];
    for (name, kind, help, pick) in job_metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for j in &f.jobs {
            if let Some(v) = pick(j) {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {v}", esc(&j.name));
            }
        }
    }
    type SourcePick = fn(&botwatch_store::jobs::SourceRow, botwatch_model::Timestamp) -> Option<f64>;
    let source_metrics: [(&str, &str, &str, SourcePick); 5] = [
        (
            "botwatch_intake_last_report_timestamp_seconds",
            "gauge",
            "When each intake source (feed, mailbox, spool, API account) last delivered a new report.",
            |s, _| s.last_report.map(|t| t.micros() as f64 / 1e6),
        ),
        (
            "botwatch_intake_quiet_seconds",
            "gauge",
            "Seconds since each source's last new report (since it was configured, before any).",
            |s, now| Some(s.quiet_secs(now) as f64),
        ),
        (
            "botwatch_intake_stale_after_seconds",
            "gauge",
            "How long each source may stay quiet before it counts as stale.",
            // A source never stale (the spool by default) has no allowance to show.
            |s, _| s.stale_after_secs.map(|a| a as f64),
        ),
        (
            "botwatch_intake_stale",
            "gauge",
            "1 when a source has been quiet longer than allowed.",
            |s, now| Some(if s.stale(now) { 1.0 } else { 0.0 }),
        ),
        ("botwatch_intake_reports_total", "counter", "New reports each source delivered.", |s, _| {
            Some(s.reports as f64)
        }),
    ];
    for (name, kind, help, pick) in source_metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in &f.sources {
            if let Some(v) = pick(s, f.now) {
                let _ = writeln!(out, "{name}{{source=\"{}\",kind=\"{}\"}} {v}", esc(&s.name), esc(&s.kind));
            }
        }
    }
    type LagPick = fn(&botwatch_store::jobs::StreamLag, botwatch_model::Timestamp) -> f64;
    let lag_metrics: [(&str, &str, LagPick); 3] = [
        ("botwatch_stream_pending", "Deliveries in the JetStream stream waiting for a worker.", |l, _| {
            l.pending as f64
        }),
        (
            "botwatch_stream_ack_pending",
            "Deliveries a worker has taken and not yet stored (acknowledged).",
            |l, _| l.ack_pending as f64,
        ),
        (
            "botwatch_stream_reading_age_seconds",
            "Seconds since a worker last reported the backlog (grows when no worker runs).",
            |l, now| (now.micros() - l.at.micros()).max(0) as f64 / 1e6,
        ),
    ];
    for (name, help, pick) in lag_metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for l in &f.lags {
            let _ = writeln!(
                out,
                "{name}{{stream=\"{}\",consumer=\"{}\"}} {}",
                esc(&l.stream),
                esc(&l.consumer),
                pick(l, f.now)
            );
        }
    }
}

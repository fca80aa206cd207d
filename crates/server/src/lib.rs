//! botwatch's HTTP side, served by `botwatch serve`: the REST API (`/api/v1`, described by
//! `/api/v1/openapi.json`), the dashboard and abuse-desk console (server-rendered pages, a
//! vendored chart library, no script or style inline, nothing fetched from elsewhere), the
//! public self-check portal (`/check`), `/metrics` (Prometheus) and `/healthz`.
//!
//! Who sees what is decided in one place, [`auth::Principal`]: an API token (stored as its
//! SHA-256) or a web session carries a role — admin, analyst (everything), organisation (only
//! what lies in its own networks and ASNs: events, observations, cases, notices, its own
//! compliance) — and the portal is public but answers only for the visitor's own address.
//!
//! The store is SQLite, blocking: every query runs on tokio's blocking pool through a small
//! pool of connections ([`db::Db`]), so a slow query never stalls the event loop.

pub mod api;
pub mod auth;
pub mod db;
pub mod metrics;
pub mod net;
pub mod portal;
pub mod push;
pub mod taxii;
pub mod tls;
pub mod web;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use botwatch_cases::{Attributor, Bar, CaseEngine};
use botwatch_enrich::owners::Constituency;
use botwatch_model::Clock;
use botwatch_notify::render::Advice;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// `[server]` in botwatch.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Reverse proxies whose `X-Forwarded-For` is believed (the portal's client address).
    pub trusted_proxies: Vec<IpNet>,
    /// Portal look-ups per second and burst, per client address (IPv6: per /64).
    pub portal_rate: f64,
    pub portal_burst: f64,
    /// Web sessions expire after this long.
    pub session_hours: u64,
    /// Read connections to the store (the blocking pool runs at most this many queries).
    pub db_connections: usize,
    /// Marks cookies `Secure`; on whenever the server is reached over HTTPS (directly or
    /// through a proxy). Implied by `tls_cert`.
    pub secure_cookies: bool,
    /// PEM certificate chain, the server's own certificate first, to serve HTTPS directly
    /// (HTTP/2 and HTTP/1.1); with `tls_key`, or neither for plain HTTP (e.g. behind a
    /// proxy that terminates TLS). Read once at start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert`: PKCS#8 (`PRIVATE KEY`), RSA (`RSA PRIVATE KEY`) or
    /// SEC1 (`EC PRIVATE KEY`), unencrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<std::path::PathBuf>,
    /// With TLS: a client must finish its handshake within this many milliseconds.
    pub tls_handshake_timeout_ms: u64,
    /// A request's headers must arrive within this many seconds of the connection (or of
    /// the previous response, on a kept-alive one); else the connection is closed.
    pub header_timeout_secs: u64,
    /// Connections open at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64); further ones are
    /// closed at once. Trusted proxies are exempt.
    pub max_connections_per_client: usize,
    /// Who may read `/metrics`: `token` (an admin's or analyst's API token, as Prometheus's
    /// `authorization` sends it) or `public`.
    pub metrics_access: MetricsAccess,
}

/// See [`ServerConfig::metrics_access`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAccess {
    #[default]
    Token,
    Public,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            portal_rate: 1.0,
            portal_burst: 10.0,
            session_hours: 12,
            db_connections: 4,
            secure_cookies: false,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: 10_000,
            header_timeout_secs: 10,
            // Under the usual soft limit of 1,024 open files, with room for the store's.
            max_connections: 900,
            max_connections_per_client: 32,
            metrics_access: MetricsAccess::Token,
        }
    }
}

/// What the server needs from the rest of botwatch, built by the binary from its config.
pub struct Deps {
    pub db: db::Db,
    /// Organisations, for tenancy and the organisation list.
    pub constituency: Constituency,
    /// Organisations and subscribers, for compliance figures.
    pub attributor: Arc<dyn Attributor + Send + Sync>,
    pub engine: CaseEngine,
    pub bar: Bar,
    pub advice: Advice,
    /// Key of the signed links in notices (see `botwatch_notify::token`).
    pub token_secret: Vec<u8>,
    pub clock: Arc<dyn Clock + Send + Sync>,
    /// `[store] retain_days`: personal data older than this is pruned once a day (not on a
    /// store served read-only).
    pub retain_days: Option<u32>,
    /// The key subscriber ids are stored under: a raw id asked for (`?subscriber=`) is
    /// looked up as its pseudonym. `None`: ids are stored as imported.
    pub pseudonymiser: Option<botwatch_enrich::subscriber::Pseudonymiser>,
    /// `[share]` and `[[partners]]`: the TAXII server answers only when set.
    pub share: Option<Arc<taxii::Sharing>>,
    /// What `POST /api/v1/reports` ingests with; `None`: pushes are refused.
    pub intake: Option<Arc<push::Intake>>,
}

/// Shared by every request.
pub struct AppState {
    pub cfg: ServerConfig,
    pub deps: Deps,
    pub sessions: auth::Sessions,
    pub metrics: metrics::Metrics,
    pub limiter: net::RateLimiter,
    pub pages: web::Pages,
    /// Addresses the portal has something to say about, refreshed every
    /// [`FLAGGED_REFRESH`]; any other visitor is answered "clean" without a query. `None`
    /// until the first refresh: then every visitor is looked up.
    pub flagged: std::sync::RwLock<Option<Arc<std::collections::HashSet<[u8; 16]>>>>,
    /// (window's first day, newest event id) when `flagged` was last brought up to date.
    flagged_mark: std::sync::Mutex<Option<(i64, i64)>>,
    /// Every organisation's compliance figures, reused while no case changed.
    compliance: std::sync::Mutex<Option<ComplianceCache>>,
    /// When personal data was last pruned.
    last_prune: std::sync::Mutex<Option<botwatch_model::Timestamp>>,
    /// When the TAXII `indicators` collection was last brought up to date.
    last_publish: std::sync::Mutex<Option<botwatch_model::Timestamp>>,
}

/// Compliance figures read every case: computed once per change of the cases (and per
/// hour, since "old enough to have been notified" moves with the clock).
struct ComplianceCache {
    generation: String,
    hour: i64,
    rows: Arc<Vec<botwatch_cases::OrgCompliance>>,
}

/// How stale the portal's "clean" answer may be: a new listing shows within this.
pub const FLAGGED_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

impl AppState {
    /// Brings the set of flagged addresses up to date and returns its size. Once a day (the
    /// window moves) and at start it is rebuilt from the store; in between, the addresses of
    /// events stored since are added (every new listing, case or exposure comes from an
    /// event). Nothing is removed in between: an address no longer flagged only costs a
    /// look-up, which answers correctly. Reading a million addresses every 30 s would take a
    /// core from the portal under load.
    /// Prunes personal data past `retain_days`, at most once a day.
    pub async fn prune_if_due(self: &Arc<Self>) {
        let Some(days) = self.deps.retain_days else { return };
        if self.deps.db.read_only() {
            return;
        }
        let now = self.deps.clock.now();
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| now.micros() - t.micros() < 86_400_000_000) {
                return;
            }
            *last = Some(now);
        }
        let before = botwatch_model::Timestamp::from_micros(now.micros() - i64::from(days) * 86_400_000_000);
        match self.deps.db.run(move |s| Ok(s.prune(before)?)).await {
            Ok(s) => {
                tracing::info!(before = %before, events = s.events, observations = s.observations, lease_records = s.lease_records, "Pruned personal data past the retention period")
            }
            Err(e) => {
                tracing::warn!(error = %e, "Pruning past the retention period failed; tried again tomorrow")
            }
        }
    }

    /// Keeps the TAXII `indicators` collection current while serving: the store's
    /// observations are published every `[share] publish_every_minutes` (unchanged objects
    /// keep their version, so partners polling with `added_after` see only what is new).
    pub async fn publish_if_due(self: &Arc<Self>) {
        let Some(share) = self.deps.share.clone() else { return };
        if self.deps.db.read_only() || share.cfg.publish_every_minutes == 0 {
            return;
        }
        let now = self.deps.clock.now();
        {
            let mut last = self.last_publish.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| {
                now.micros() - t.micros() < i64::from(share.cfg.publish_every_minutes) * 60_000_000
            }) {
                return;
            }
            *last = Some(now);
        }
        let st = self.clone();
        let r = self
            .deps
            .db
            .run(move |s| {
                let homes: Vec<String> =
                    share.cfg.home_countries.iter().map(|c| c.to_ascii_uppercase()).collect();
                let home = |ip: Option<std::net::IpAddr>, asn: Option<u32>, cc: Option<&str>| {
                    cc.is_some_and(|c| homes.iter().any(|h| h.eq_ignore_ascii_case(c)))
                        || ip.is_some_and(|ip| st.deps.constituency.org_for(ip, asn).is_some())
                };
                botwatch_share::publish::publish(s, &share.cfg, &home, now)
            })
            .await;
        match r {
            Ok(p) => {
                self.metrics.published(now.micros() / 1_000_000, p.objects, p.added);
                tracing::info!(
                    objects = p.objects,
                    added = p.added,
                    "Published the TAXII indicators collection"
                )
            }
            Err(e) => {
                // Tried again next round, not a whole interval later.
                *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::warn!(error = %e.message, "Publishing the TAXII indicators collection failed; tried again next round")
            }
        }
    }

    pub async fn refresh_flagged(self: &Arc<Self>) -> Result<usize, api::ApiError> {
        let now = self.deps.clock.now();
        let window = portal::WINDOW_DAYS.max(self.deps.bar.exposure_window_days);
        let since = botwatch_model::Timestamp(now.micros().saturating_sub(window * 86_400_000_000));
        let day = since.micros().div_euclid(86_400_000_000);
        let started = std::time::Instant::now();
        let st = self.clone();
        let update = self
            .deps
            .db
            .run(move |s| {
                let last = *st.flagged_mark.lock().unwrap_or_else(|e| e.into_inner());
                // The newest event first: one stored while the set is read is added by the
                // next refresh.
                let newest = botwatch_store::Store::newest_event_id(s)?;
                match last {
                    Some((d, after)) if d == day => {
                        Ok((false, botwatch_store::Store::addresses_between(s, after, newest)?, newest))
                    }
                    _ => Ok((true, botwatch_store::cases::CaseStore::flagged_addresses(s, since)?, newest)),
                }
            })
            .await?;
        let (full, keys, newest) = update;
        if full {
            tracing::info!(
                addresses = keys.len(),
                seconds = started.elapsed().as_secs_f64(),
                "Flagged addresses read"
            );
        }
        let mut g = self.flagged.write().unwrap_or_else(|e| e.into_inner());
        if full || g.is_none() {
            *g = Some(Arc::new(keys.into_iter().collect()));
        } else if let Some(set) = g.as_mut()
            && !keys.is_empty()
        {
            Arc::make_mut(set).extend(keys);
        }
        *self.flagged_mark.lock().unwrap_or_else(|e| e.into_inner()) = Some((day, newest));
        Ok(g.as_ref().map_or(0, |set| set.len()))
    }

    /// Every organisation's compliance figures (unfiltered: callers apply tenancy).
    pub async fn compliance_all(
        self: &Arc<Self>,
    ) -> Result<Arc<Vec<botwatch_cases::OrgCompliance>>, api::ApiError> {
        let st = self.clone();
        self.deps
            .db
            .run(move |s| {
                let now = st.deps.clock.now();
                let generation = botwatch_store::cases::CaseStore::cases_generation(s)?;
                let hour = now.micros().div_euclid(3_600_000_000);
                let lock = || st.compliance.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = lock().as_ref()
                    && c.generation == generation
                    && c.hour == hour
                {
                    return Ok(c.rows.clone());
                }
                let started = std::time::Instant::now();
                let rows = Arc::new(botwatch_cases::compliance::org_report(
                    s,
                    &*st.deps.attributor,
                    &st.deps.bar,
                    now,
                )?);
                tracing::info!(
                    organisations = rows.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "Compliance figures computed"
                );
                *lock() = Some(ComplianceCache { generation, hour, rows: rows.clone() });
                Ok(rows)
            })
            .await
    }

    /// Whether `ip` is certainly clean (not flagged at the last refresh).
    pub fn surely_clean(&self, ip: std::net::IpAddr) -> bool {
        let g = self.flagged.read().unwrap_or_else(|e| e.into_inner());
        g.as_ref().is_some_and(|set| !set.contains(&botwatch_store::ip_key(ip)))
    }
}

pub type Shared = Arc<AppState>;

impl Deps {
    /// A subscriber id as the store holds it: a raw id becomes its keyed pseudonym (one that
    /// already is one, `sub-…`, is kept).
    pub fn stored_subscriber(&self, id: &str) -> String {
        match &self.pseudonymiser {
            Some(p) if !id.starts_with("sub-") => p.pseudonym(id),
            _ => id.to_string(),
        }
    }
}

impl AppState {
    pub fn new(mut cfg: ServerConfig, deps: Deps) -> anyhow::Result<Shared> {
        // A cookie set over HTTPS without `Secure` would be sent over plain HTTP too.
        cfg.secure_cookies |= cfg.tls_enabled();
        let limiter = net::RateLimiter::new(cfg.portal_rate, cfg.portal_burst);
        Ok(Arc::new(AppState {
            sessions: auth::Sessions::new(std::time::Duration::from_secs(cfg.session_hours * 3600)),
            metrics: metrics::Metrics::default(),
            limiter,
            pages: web::Pages::new()?,
            flagged: std::sync::RwLock::new(None),
            compliance: std::sync::Mutex::new(None),
            flagged_mark: std::sync::Mutex::new(None),
            last_prune: std::sync::Mutex::new(None),
            last_publish: std::sync::Mutex::new(None),
            cfg,
            deps,
        }))
    }
}

/// Every route of the server.
pub fn router(state: Shared) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(web::routes())
        .merge(portal::routes())
        .merge(taxii::routes())
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics::render))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn healthz(State(st): State<Shared>) -> Response {
    use axum::response::IntoResponse;
    let now = st.deps.clock.now();
    let r = st
        .deps
        .db
        .run(|s| {
            use botwatch_store::jobs::JobStore;
            Ok((s.schema_version()?, s.jobs()?, s.sources()?))
        })
        .await;
    match r {
        // `portal_ready`: the flagged addresses are loaded, so clean visitors are answered
        // from memory (before that every visitor is looked up: correct, slower). `failing`
        // and `stale`: `botwatch run`'s jobs whose last run failed, and intake sources quiet
        // longer than allowed; either makes the status "degraded" (still 200: the server
        // itself is up, and a load balancer should keep sending it requests).
        Ok((v, jobs, sources)) => {
            let ready = st.flagged.read().unwrap_or_else(|e| e.into_inner()).is_some();
            let failing: Vec<&str> =
                jobs.iter().filter(|j| j.consecutive_failures > 0).map(|j| j.name.as_str()).collect();
            let stale: Vec<&str> = sources.iter().filter(|s| s.stale(now)).map(|s| s.name.as_str()).collect();
            let status = if failing.is_empty() && stale.is_empty() { "ok" } else { "degraded" };
            axum::Json(serde_json::json!({
                "status": status,
                "schema_version": v,
                "portal_ready": ready,
                "jobs": jobs.len(),
                "failing_jobs": failing,
                "stale_sources": stale,
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Security headers on every response, and the request's latency and status counted under
/// its route (never the raw path: ids and tokens would make unbounded label sets).
async fn observe(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    st.metrics.request(&route, resp.status().as_u16(), started.elapsed());
    let h = resp.headers_mut();
    // No inline script or style anywhere: the CSP says so and the pages keep to it.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if st.cfg.tls_enabled() {
        // Only when serving HTTPS ourselves: behind a proxy, the proxy owns this policy.
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    resp
}

/// Serves until `shutdown` resolves; requests in flight finish first. Over HTTPS when `tls`
/// is given, which must be `state.cfg.tls()` (the config also decides `Secure` cookies and
/// `Strict-Transport-Security`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if tls.is_some() != state.cfg.tls_enabled() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "TLS given to serve() disagrees with [server] tls_cert/tls_key",
        ));
    }
    // Served from the first moment: until the flagged set is read (seconds, with a million
    // cases), the portal looks every visitor up, which answers the same.
    let refresher = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = state.refresh_flagged().await {
                    tracing::warn!(error = %e, "Refreshing the flagged addresses failed; the portal looks visitors up");
                }
                // Recomputed here when cases changed, so no page waits for it.
                if let Err(e) = state.compliance_all().await {
                    tracing::warn!(error = %e, "Refreshing the compliance figures failed");
                }
                state.prune_if_due().await;
                state.publish_if_due().await;
                tokio::time::sleep(FLAGGED_REFRESH).await;
            }
        })
    };
    let r = tls::serve(listener, state, tls, shutdown).await;
    refresher.abort();
    r
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal sent as soon as the server says it listens must find
/// them in place (the default action would end the process without a graceful stop). Call it
/// inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Shutting down: finishing requests in flight");
    }
}

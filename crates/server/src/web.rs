//! Server-rendered pages: log-in, the dashboard (charts drawn by the vendored uPlot from a
//! JSON block in the page), compliance, and the abuse desk's case queue and case pages with
//! their actions. Templates are minijinja with HTML auto-escaping; forms carry the
//! session's anti-forgery token; no script or style is inline.

use crate::Shared;
use crate::api::{self, Action, ApiError, CaseParams};
use crate::auth::{self, Principal, SESSION_COOKIE};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use botwatch_model::{CaseState, Timestamp};
use botwatch_store::cases::{CaseOrder, CaseStore};
use botwatch_store::{EventQuery, GroupBy, Store};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("dashboard.html", include_str!("../templates/dashboard.html")),
    ("compliance.html", include_str!("../templates/compliance.html")),
    ("sharing.html", include_str!("../templates/sharing.html")),
    ("cases.html", include_str!("../templates/cases.html")),
    ("case.html", include_str!("../templates/case.html")),
    ("portal_base.html", include_str!("../templates/portal_base.html")),
    ("portal.html", include_str!("../templates/portal.html")),
    ("portal_verify.html", include_str!("../templates/portal_verify.html")),
    ("portal_limited.html", include_str!("../templates/portal_limited.html")),
];

const ASSETS: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css", include_bytes!("../assets/style.css")),
    ("app.js", "text/javascript", include_bytes!("../assets/app.js")),
    ("uPlot.iife.min.js", "text/javascript", include_bytes!("../assets/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css", include_bytes!("../assets/uPlot.min.css")),
];

/// The compiled templates.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> anyhow::Result<Pages> {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)?;
        }
        Ok(Pages { env })
    }

    /// A page; a template error is logged and shown as a plain error page, never a panic.
    pub fn render(&self, name: &str, ctx: Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(template = name, error = %e, "Rendering failed");
                "<!doctype html><title>error</title><p>This page could not be rendered (logged).".to_string()
            }
        }
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/compliance", get(compliance))
        .route("/sharing", get(sharing))
        .route("/cases", get(cases))
        .route("/cases/bulk", post(bulk))
        .route("/cases/{id}", get(case))
        .route("/cases/{id}/action", post(action))
        .route("/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ty, body)) => {
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "public, max-age=3600")], *body)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The logged-in user, or the way to the log-in page.
// The error is the response to send as it is; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
/// The logged-in user; a session whose token was revoked (here or by `botwatch token
/// revoke` in another process) ends at its next request.
async fn user(st: &Shared, headers: &HeaderMap) -> Result<Principal, Response> {
    let p = st.sessions.principal(headers).ok_or_else(|| Redirect::to("/login").into_response())?;
    if !auth::session_token_live(st, &p).await {
        st.sessions.end(headers);
        return Err(Redirect::to("/login").into_response());
    }
    Ok(p)
}

fn page(st: &Shared, name: &str, p: &Principal, extra: Value) -> Response {
    let ctx = context! { user => p, csrf => p.csrf.clone().unwrap_or_default(), ..extra };
    Html(st.pages.render(name, ctx)).into_response()
}

/// The session's anti-forgery token must come back with every form.
#[allow(clippy::result_large_err)]
fn check_csrf(p: &Principal, sent: &str) -> Result<(), Response> {
    match &p.csrf {
        Some(c) if !sent.is_empty() && c == sent => Ok(()),
        _ => Err(ApiError::forbidden("form expired: reload the page").into_response()),
    }
}

/// The log-in page with a fresh form nonce (and its cookie), and an error when there is one.
fn login_page(st: &Shared, status: StatusCode, error: Option<&str>) -> Response {
    let nonce = auth::form_nonce().unwrap_or_default();
    let body = st.pages.render("login.html", context! { nonce => &nonce, error, user => Value::from(()) });
    auth::with_nonce_cookie((status, Html(body)).into_response(), &nonce, st.cfg.secure_cookies)
}

async fn login_form(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if st.sessions.principal(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&st, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    nonce: String,
}

async fn login(
    State(st): State<Shared>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    if !auth::nonce_matches(&headers, &f.nonce) {
        return ApiError::forbidden("form expired: reload the log-in page").into_response();
    }
    let p = match auth::principal_for_token(&st, &f.token).await {
        Ok(p) => p,
        Err(_) => return login_page(&st, StatusCode::UNAUTHORIZED, Some("Unknown or revoked token.")),
    };
    let home = if p.sees_all() { "/" } else { "/cases" };
    let sid = match st.sessions.create(p) {
        Ok(s) => s,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    auth::set_cookie(Redirect::to(home).into_response(), SESSION_COOKIE, &sid, st.cfg.secure_cookies, None)
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(st): State<Shared>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&p, &f.csrf) {
        return r;
    }
    st.sessions.end(&headers);
    auth::set_cookie(
        Redirect::to("/login").into_response(),
        SESSION_COOKIE,
        "",
        st.cfg.secure_cookies,
        Some(0),
    )
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped so the
/// data can never close the element, then marked safe for the template.
fn json_block(v: &serde_json::Value) -> Value {
    let s = v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    Value::from_safe_string(s)
}

const TOP: u64 = 10;
/// Days the dashboard's charts cover, up to the newest report.
const DASHBOARD_DAYS: i64 = 90;

/// A duration in seconds as a person reads it: "45 s", "12 min", "3.5 h", "2.0 d".
fn human_secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

async fn dashboard(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.sees_all() {
        // An organisation's home is its own case queue; the dashboard spans everyone.
        return Redirect::to("/cases").into_response();
    }
    let rows = match api::compliance_rows(&st, &p).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let st_clock = st.deps.clock.clone();
    let data = st
        .deps
        .db
        .run(move |s| {
            // Everything here reads the per-day rollup (see botwatch-store's rollup.rs), never
            // the events: a few thousand rows whatever the store holds.
            let infected = |family: Option<String>, since: Option<Timestamp>| EventQuery {
                classification_type: Some("infected-system".into()),
                family,
                since,
                ..Default::default()
            };
            // The 90 days up to the newest report: old samples would stretch the axis over
            // years. The top lists cover the same days.
            let mut days: Vec<String> =
                s.stats(GroupBy::Day, &infected(None, None))?.into_iter().map(|r| r.key).collect();
            let since = days
                .last()
                .and_then(|d| botwatch_model::parse_timestamp(d))
                .map(|t| t.saturating_add_secs(-(DASHBOARD_DAYS - 1) * 86_400));
            if let Some(first) = since.map(|t| t.day()) {
                days.retain(|d| *d >= first);
            }
            let families: Vec<String> = s
                .stats(GroupBy::Family, &EventQuery { limit: Some(6), ..infected(None, since) })?
                .into_iter()
                .map(|r| r.key)
                .filter(|k| !k.is_empty())
                .take(5)
                .collect();
            let mut series = Vec::new();
            for f in &families {
                let by_day: BTreeMap<String, u64> = s
                    .stats(GroupBy::Day, &infected(Some(f.clone()), since))?
                    .into_iter()
                    .map(|r| (r.key, r.subjects))
                    .collect();
                series.push(json!({"name": f, "values": days.iter().map(|d| by_day.get(d).copied().unwrap_or(0)).collect::<Vec<_>>()}));
            }
            let top = |by: GroupBy| -> anyhow::Result<(Vec<String>, Vec<u64>)> {
                let mut rows = s.stats(by, &infected(None, since))?;
                rows.retain(|r| !r.key.is_empty());
                // Ranked by infected addresses (the rollup ranks by events).
                rows.sort_by(|a, b| b.subjects.cmp(&a.subjects).then_with(|| a.key.cmp(&b.key)));
                rows.truncate(TOP as usize);
                Ok((rows.iter().map(|r| r.key.clone()).collect(), rows.iter().map(|r| r.subjects).collect()))
            };
            let (asn_l, asn_v) = top(GroupBy::Asn)?;
            let (cc_l, cc_v) = top(GroupBy::Country)?;
            let counts = s.counts()?;
            // Feed health: per feed, the newest report and the totals.
            let mut feeds: BTreeMap<String, serde_json::Value> = BTreeMap::new();
            for r in s.reports(10_000)? {
                let drift = r.warnings.as_array().map(|w| w.len()).unwrap_or(0);
                let e = feeds.entry(r.feed.clone()).or_insert_with(|| {
                    json!({"feed": r.feed, "last": r.ingested_at.to_rfc3339(), "reports": 0, "events": 0, "rejects": 0, "duplicates": 0, "drift": 0})
                });
                for (k, v) in [("reports", 1), ("events", r.events), ("rejects", r.rejects), ("duplicates", r.duplicates), ("drift", drift as u64)] {
                    e[k] = json!(e[k].as_u64().unwrap_or(0) + v);
                }
            }
            // `botwatch run`'s jobs and intake sources (empty when nothing runs them).
            let now = st_clock.now();
            let jobs: Vec<serde_json::Value> = botwatch_store::jobs::JobStore::jobs(s)?
                .into_iter()
                .map(|j| {
                    json!({
                        "name": j.name,
                        "every": human_secs(j.every_secs),
                        "runs": j.runs,
                        "failures": j.failures,
                        "failing": j.consecutive_failures > 0,
                        "consecutive_failures": j.consecutive_failures,
                        "running": j.running_since.is_some(),
                        "last_success": j.last_success.map(|t| t.to_rfc3339()),
                        "last_duration": j.last_duration_ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0)),
                        "last_error": j.last_error,
                        "last_detail": j.last_detail,
                    })
                })
                .collect();
            let sources: Vec<serde_json::Value> = botwatch_store::jobs::JobStore::sources(s)?
                .into_iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "kind": r.kind,
                        "stale": r.stale(now),
                        "quiet": human_secs(r.quiet_secs(now)),
                        "stale_after": r.stale_after_secs.map_or_else(|| "never".to_string(), human_secs),
                        "last_report": r.last_report.map(|t| t.to_rfc3339()),
                        "reports": r.reports,
                        "last_error": r.last_error,
                    })
                })
                .collect();
            Ok((days, series, (asn_l, asn_v), (cc_l, cc_v), counts, feeds, (jobs, sources)))
        })
        .await;
    let (days, series, (asn_l, asn_v), (cc_l, cc_v), counts, feeds, (jobs, sources)) = match data {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    // Dismissed cases are closed, so the compliance rows hold every open case.
    let open_cases: u64 = rows.iter().map(|r| r.open_cases).sum();
    let rated: Vec<_> = rows.iter().filter(|r| r.infections_per_1000.is_some()).collect();
    let charts = json!({
        "timeline": {"kind": "timeline", "days": days, "series": series, "empty": "No infected systems reported yet."},
        "asn": {"kind": "bars", "label": "infected addresses", "labels": asn_l.iter().map(|a| format!("AS{a}")).collect::<Vec<_>>(), "values": asn_v, "empty": "No data."},
        "country": {"kind": "bars", "label": "infected addresses", "labels": cc_l, "values": cc_v, "empty": "No data."},
        "rate": {"kind": "bars", "label": "per 1,000 subscribers",
                 "labels": rated.iter().map(|r| r.name.clone().or(r.org.clone()).unwrap_or_default()).collect::<Vec<_>>(),
                 "values": rated.iter().map(|r| r.infections_per_1000.unwrap_or(0.0)).collect::<Vec<_>>(),
                 "empty": "No organisation with a subscriber count."},
    });
    page(
        &st,
        "dashboard.html",
        &p,
        context! {
            counts, open_cases, feeds => feeds.into_values().collect::<Vec<_>>(), jobs, sources,
            charts_json => json_block(&charts),
        },
    )
}

/// Partners, the exchange log and the global view of every node's published figures.
async fn sharing(State(st): State<Shared>, headers: HeaderMap) -> Response {
    use botwatch_share::federation::{By, global};
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.sees_all() {
        return Redirect::to("/cases").into_response();
    }
    let got = st
        .deps
        .db
        .run(|s| Ok((s.federation_cells(None)?, s.share_exchanges()?, s.share_audit_list(None, 50)?)))
        .await;
    let (cells, ex, recent) = match got {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let share = st.deps.share.clone();
    let partners: Vec<serde_json::Value> = share
        .iter()
        .flat_map(|s| s.partners.iter())
        .map(|pt| {
            let x = ex.iter().find(|x| x.partner == pt.name).cloned().unwrap_or_default();
            serde_json::json!({
                "name": pt.name, "country": pt.country, "max_tlp": format!("TLP:{}", pt.max_tlp.as_str()),
                "sightings": pt.sightings, "home_addresses": pt.home_addresses, "sent": x.sent, "received": x.received,
                "withheld": x.withheld, "last_exchange": x.last_exchange.map(|t| t.to_rfc3339()), "last_error": x.last_error,
            })
        })
        .collect();
    let by_day = global(&cells, By::Day);
    let nodes: Vec<String> = by_day.nodes.iter().map(|n| n.node.clone()).collect();
    let series: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| serde_json::json!({"name": n, "values": by_day.rows.iter().map(|r| r.by_node.get(n).copied().unwrap_or(0)).collect::<Vec<_>>()}))
        .collect();
    let bars = |by: By, label: &str| {
        let mut rows = global(&cells, by).rows;
        rows.sort_by_key(|r| std::cmp::Reverse(r.infected));
        rows.truncate(15);
        serde_json::json!({"kind": "bars", "label": label, "labels": rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
            "values": rows.iter().map(|r| r.infected).collect::<Vec<_>>(), "empty": "No federated figures yet."})
    };
    let charts = serde_json::json!({
        "days": {"kind": "timeline", "days": by_day.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(), "series": series, "empty": "No federated figures yet."},
        "family": bars(By::Family, "infected addresses"),
        "country": bars(By::Country, "infected addresses"),
    });
    let recent: Vec<serde_json::Value> = recent
        .iter()
        .map(|a| serde_json::json!({"at": a.at.to_rfc3339(), "partner": a.partner, "direction": a.direction, "channel": a.channel,
            "collection": a.collection, "objects": a.objects, "withheld": a.withheld, "tlp_max": a.tlp_max, "error": a.error}))
        .collect();
    let node = share.as_ref().map(|s| s.cfg.node.clone());
    page(
        &st,
        "sharing.html",
        &p,
        context! { node, partners, recent, global => by_day, charts_json => json_block(&charts) },
    )
}

async fn compliance(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match api::compliance_rows(&st, &p).await {
        Ok(rows) => page(&st, "compliance.html", &p, context! { rows }),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CaseFilter {
    state: Option<String>,
    org: Option<String>,
    ip: Option<String>,
    subscriber: Option<String>,
    /// Threat (family or type) contains this.
    q: Option<String>,
    /// `all` to list cases outside the constituency too.
    scope: Option<String>,
    /// `id` for oldest first; the desk's order otherwise.
    order: Option<String>,
    offset: Option<u64>,
    after: Option<i64>,
}

async fn cases(State(st): State<Shared>, headers: HeaderMap, Query(f): Query<CaseFilter>) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let blank =
        |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let state = blank(&f.state);
    let ip = match blank(&f.ip).map(|s| s.parse()) {
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => return ApiError::bad_request("address: not an IP address").into_response(),
        None => None,
    };
    let params = CaseParams {
        open: Some(state.is_none()),
        state: state.clone().filter(|s| s != "all"),
        org: blank(&f.org),
        subscriber: blank(&f.subscriber).map(|s| st.deps.stored_subscriber(&s)),
        ip,
        after: f.after,
        limit: Some(100),
        threat: blank(&f.q),
        constituency: Some(f.scope.as_deref() != Some("all")),
        order: Some(if f.order.as_deref() == Some("id") { CaseOrder::Id } else { CaseOrder::Desk }),
        offset: f.offset,
    };
    let q = match api::case_query(&p, &params) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let list = match st.deps.db.run(move |s| Ok(s.cases(&q)?)).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let next = (list.len() == 100).then(|| {
        let mut n = match params.order {
            Some(CaseOrder::Id) => CaseFilter { after: list.last().map(|c| c.id), ..f.clone() },
            _ => CaseFilter { offset: Some(f.offset.unwrap_or(0) + 100), ..f.clone() },
        };
        n.state = state.clone();
        serde_urlencoded_pairs(&n)
    });
    let states: Vec<&str> = [
        CaseState::Detected,
        CaseState::Notified,
        CaseState::Acknowledged,
        CaseState::Escalated,
        CaseState::WalledGarden,
        CaseState::Closed,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    page(
        &st,
        "cases.html",
        &p,
        context! { cases => list, states, f => context!{ state, org => params.org, ip => f.ip, subscriber => params.subscriber, q => f.q, scope => f.scope, order => f.order }, next },
    )
}

/// A query string for the filter (values percent-encoded).
fn serde_urlencoded_pairs(f: &CaseFilter) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let mut parts = Vec::new();
    for (k, v) in [
        ("state", &f.state),
        ("org", &f.org),
        ("ip", &f.ip),
        ("subscriber", &f.subscriber),
        ("q", &f.q),
        ("scope", &f.scope),
        ("order", &f.order),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    if let Some(a) = f.after {
        parts.push(format!("after={a}"));
    }
    if let Some(o) = f.offset {
        parts.push(format!("offset={o}"));
    }
    parts.join("&")
}

async fn case(State(st): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match api::case_detail(&st, &p, id).await {
        Ok(d) => page(&st, "case.html", &p, context! { d }),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    action: String,
}

fn parse_action(a: &str) -> Option<(Action, Option<&'static str>)> {
    match a {
        "ack" => Some((Action::Ack, None)),
        "close" => Some((Action::Close, Some("remediated"))),
        "dismiss" => Some((Action::Close, Some("dismissed"))),
        "notify" => Some((Action::Notify, None)),
        "escalate" => Some((Action::Escalate, None)),
        _ => None,
    }
}

async fn action(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(f): axum::Form<ActionForm>,
) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&p, &f.csrf) {
        return r;
    }
    let Some((a, reason)) = parse_action(&f.action) else {
        return ApiError::bad_request("unknown action").into_response();
    };
    match api::act(&st, &p, id, a, reason).await {
        Ok(_) => Redirect::to(&format!("/cases/{id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn bulk(State(st): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let p = match user(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Repeated `ids` fields: read the pairs by hand (a form may select many).
    let mut csrf = String::new();
    let mut act_name = String::new();
    let mut ids = Vec::new();
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "csrf" => csrf = percent_decode(v),
            "action" => act_name = percent_decode(v),
            "ids" => {
                if let Ok(id) = v.parse::<i64>() {
                    ids.push(id);
                }
            }
            _ => {}
        }
    }
    if let Err(r) = check_csrf(&p, &csrf) {
        return r;
    }
    let Some((a, reason)) = parse_action(&act_name) else {
        return ApiError::bad_request("unknown action").into_response();
    };
    // Each case succeeds or fails on its own (one already closed does not stop the rest).
    for id in ids.iter().take(1000) {
        let _ = api::act(&st, &p, *id, a, reason).await;
    }
    Redirect::to("/cases").into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_json_blocks_cannot_close_the_script() {
        Pages::new().unwrap();
        let v = json_block(&json!({"x": "</script><b>&"}));
        let s = v.to_string();
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'), "{s}");
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%e2%9c%93"), "✓");
    }
}

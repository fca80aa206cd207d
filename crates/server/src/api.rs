//! The REST API under `/api/v1`: JSON, cursor pagination (`after` = the last id of the
//! previous page, `next` in the answer), errors as `{"error": "…"}` with the HTTP status.
//!
//! [`ROUTES`] lists every operation; `openapi.json` (served at `/api/v1/openapi.json`)
//! documents exactly those, which a test checks in both directions.

use crate::auth::{self, Principal, Role};
use crate::{AppState, Shared};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use botwatch_model::{CaseState, CloseReason, Timestamp, parse_timestamp};
use botwatch_store::cases::{CaseQuery, CaseStore};
use botwatch_store::outbox::{NoticeStatus, OutboxStore};
use botwatch_store::tokens::TokenStore;
use botwatch_store::{EventQuery, GroupBy, Store, StoredEvent};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The OpenAPI document, checked against [`ROUTES`] by a test.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every API operation: method and path (axum's `{param}` syntax, as OpenAPI's).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/observations"),
    ("get", "/api/v1/cases"),
    ("get", "/api/v1/cases/{id}"),
    ("post", "/api/v1/cases/{id}/ack"),
    ("post", "/api/v1/cases/{id}/close"),
    ("post", "/api/v1/cases/{id}/notify"),
    ("post", "/api/v1/cases/{id}/escalate"),
    ("post", "/api/v1/cases/bulk"),
    ("get", "/api/v1/notices"),
    ("get", "/api/v1/organisations"),
    ("get", "/api/v1/compliance"),
    ("get", "/api/v1/stats/{by}"),
    ("get", "/api/v1/feeds"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/partners"),
    ("get", "/api/v1/federation/stats"),
    ("post", "/api/v1/reports"),
    ("get", "/api/v1/jobs"),
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route("/api/v1/events", get(events))
        .route("/api/v1/observations", get(observations))
        .route("/api/v1/cases", get(cases))
        .route("/api/v1/cases/{id}", get(case))
        .route("/api/v1/cases/{id}/ack", post(ack))
        .route("/api/v1/cases/{id}/close", post(close))
        .route("/api/v1/cases/{id}/notify", post(notify))
        .route("/api/v1/cases/{id}/escalate", post(escalate))
        .route("/api/v1/cases/bulk", post(bulk))
        .route("/api/v1/notices", get(notices))
        .route("/api/v1/organisations", get(organisations))
        .route("/api/v1/compliance", get(compliance))
        .route("/api/v1/stats/{by}", get(stats))
        .route("/api/v1/feeds", get(feeds))
        .route("/api/v1/tokens", get(tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/partners", get(partners))
        .route("/api/v1/federation/stats", get(federation_stats))
        .route(
            "/api/v1/reports",
            post(crate::push::push).layer(axum::extract::DefaultBodyLimit::max(crate::push::MAX_BODY)),
        )
        .route("/api/v1/jobs", get(jobs))
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, m: impl Into<String>) -> Self {
        ApiError { status, message: m.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    /// Also what another organisation's object looks like: its existence is not confirmed.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, m)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "Request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged)")
    }
    pub fn from_anyhow(e: anyhow::Error) -> Self {
        match e.downcast::<ApiError>() {
            Ok(a) => a,
            Err(e) => match e.downcast_ref::<botwatch_cases::CaseError>() {
                Some(botwatch_cases::CaseError::NotFound(_)) => Self::not_found(),
                Some(
                    c @ (botwatch_cases::CaseError::Transition { .. }
                    | botwatch_cases::CaseError::NoRecipient(_)
                    | botwatch_cases::CaseError::NoticesExhausted { .. }
                    | botwatch_cases::CaseError::AtTopLevel { .. }),
                ) => Self::new(StatusCode::CONFLICT, c.to_string()),
                // Another process holds the write lock (an ingest writes a whole report in
                // one transaction), or this user may not write the store: the request may
                // succeed later or elsewhere, and the server is not broken.
                _ if busy_or_read_only(&e) => Self::unavailable(
                    "the store is busy (another botwatch process is writing) or read-only here; try again later",
                ),
                _ => Self::internal(format!("{e:#}")),
            },
        }
    }
}

fn busy_or_read_only(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let sqlite = c.downcast_ref::<rusqlite::Error>().or_else(|| {
            match c.downcast_ref::<botwatch_store::StoreError>() {
                Some(botwatch_store::StoreError::Sqlite(s)) => Some(s),
                _ => None,
            }
        });
        matches!(
            sqlite.and_then(rusqlite::Error::sqlite_error_code),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::ReadOnly
            )
        )
    })
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("30"));
        }
        r
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

const MAX_LIMIT: u64 = 1000;
const DEFAULT_LIMIT: u64 = 100;
/// Rows an organisation's filtered listing reads per request at most: a page of another
/// organisation's rows costs bounded work and ends with a cursor, never a long scan.
const SCAN_BUDGET: u64 = 20_000;

fn limit(l: Option<u64>) -> u64 {
    l.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.as_deref()
        .map(|s| parse_timestamp(s).ok_or_else(|| ApiError::bad_request(format!("{name}: not a time: {s}"))))
        .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    pub ip: Option<IpAddr>,
    pub cidr: Option<IpNet>,
    pub asn: Option<u32>,
    pub cc: Option<String>,
    pub family: Option<String>,
    pub feed: Option<String>,
    #[serde(rename = "type")]
    pub classification_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<u64>,
}

impl EventParams {
    fn query(&self) -> Result<EventQuery, ApiError> {
        Ok(EventQuery {
            ip: self.ip,
            cidr: self.cidr,
            asn: self.asn,
            cc: self.cc.clone(),
            family: self.family.clone(),
            feed: self.feed.clone(),
            classification_type: self.classification_type.clone(),
            since: time_param("since", &self.since)?,
            until: time_param("until", &self.until)?,
            after_id: self.after,
            limit: Some(limit(self.limit)),
        })
    }
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn me(p: Principal) -> Json<Principal> {
    Json(p)
}

/// The IntelMQ document of a stored event plus botwatch's ids.
pub fn event_json(e: &StoredEvent) -> Value {
    let mut m = e.event.to_intelmq(false);
    m.insert("botwatch.id".into(), Value::from(e.id));
    m.insert("botwatch.report_id".into(), Value::from(e.report_id));
    if let Some(o) = e.observation_id {
        m.insert("botwatch.observation_id".into(), Value::from(o));
    }
    m.insert("raw".into(), Value::String(String::from_utf8_lossy(&e.event.raw).into_owned()));
    Value::Object(m)
}

/// Pages through rows with increasing ids, keeping those `keep` accepts: at most `want`
/// kept, at most [`SCAN_BUDGET`] read. `next` is the last id read whenever more may follow.
fn filtered<T>(
    want: u64,
    after: Option<i64>,
    mut fetch: impl FnMut(Option<i64>, u64) -> anyhow::Result<Vec<T>>,
    id: impl Fn(&T) -> i64,
    keep: impl Fn(&T) -> bool,
) -> anyhow::Result<(Vec<T>, Option<String>)> {
    let mut out = Vec::new();
    let mut cursor = after;
    let mut read = 0;
    loop {
        let batch_size = if read == 0 && want < 500 { want.max(50) } else { 500 };
        let rows = fetch(cursor, batch_size)?;
        let full = rows.len() as u64 == batch_size;
        read += rows.len() as u64;
        for r in rows {
            cursor = Some(id(&r));
            if keep(&r) {
                out.push(r);
                if out.len() as u64 == want {
                    return Ok((out, cursor.map(|c| c.to_string())));
                }
            }
        }
        if !full {
            return Ok((out, None));
        }
        if read >= SCAN_BUDGET {
            return Ok((out, cursor.map(|c| c.to_string())));
        }
    }
}

async fn events(State(st): State<Shared>, p: Principal, Query(q): Query<EventParams>) -> ApiResult {
    let query = q.query()?;
    let want = limit(q.limit);
    let shared = st.clone();
    let page = st
        .deps
        .db
        .run(move |s| {
            let c = &shared.deps.constituency;
            let (items, next) = filtered(
                want,
                query.after_id,
                |after, n| Ok(s.events(&EventQuery { after_id: after, limit: Some(n), ..query.clone() })?),
                |e: &StoredEvent| e.id,
                |e| p.sees_ip(c, e.event.source.ip, e.event.source.asn),
            )?;
            Ok(Page { items: items.iter().map(event_json).collect(), next })
        })
        .await?;
    Ok(Json(page).into_response())
}

async fn observations(State(st): State<Shared>, p: Principal, Query(q): Query<EventParams>) -> ApiResult {
    let query = q.query()?;
    let want = limit(q.limit);
    let shared = st.clone();
    let page = st
        .deps
        .db
        .run(move |s| {
            let c = &shared.deps.constituency;
            let (items, next) = filtered(
                want,
                query.after_id,
                |after, n| {
                    Ok(s.observations(&EventQuery { after_id: after, limit: Some(n), ..query.clone() })?)
                },
                |o: &botwatch_store::Observation| o.id,
                |o| p.sees_ip(c, o.subject.parse().ok(), o.asn),
            )?;
            Ok(Page { items, next })
        })
        .await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseParams {
    pub state: Option<String>,
    pub open: Option<bool>,
    pub org: Option<String>,
    pub subscriber: Option<String>,
    pub ip: Option<IpAddr>,
    pub after: Option<i64>,
    pub limit: Option<u64>,
    /// Threat (family or type) contains this.
    pub threat: Option<String>,
    /// Only cases of the constituency's organisations.
    pub constituency: Option<bool>,
    /// `id` (default; `after` pages) or `desk` (constituency first, most escalated, newest
    /// evidence; `offset` pages).
    pub order: Option<botwatch_store::cases::CaseOrder>,
    pub offset: Option<u64>,
}

/// The case query a caller may run: an organisation's is pinned to its own organisation.
pub fn case_query(p: &Principal, q: &CaseParams) -> Result<CaseQuery, ApiError> {
    let state = match &q.state {
        Some(s) => Some(
            CaseState::from_name(s).ok_or_else(|| ApiError::bad_request(format!("state: unknown {s}")))?,
        ),
        None => None,
    };
    let org = if p.sees_all() {
        q.org.clone()
    } else {
        if q.org.is_some() && q.org != p.org {
            return Err(ApiError::forbidden("an organisation sees only its own cases"));
        }
        p.org.clone()
    };
    Ok(CaseQuery {
        state,
        open_only: q.open.unwrap_or(false),
        org,
        subscriber: q.subscriber.clone(),
        ip: q.ip,
        after_id: q.after,
        limit: Some(limit(q.limit)),
        threat: q.threat.clone(),
        constituency_only: q.constituency.unwrap_or(false),
        order: q.order.unwrap_or_default(),
        offset: q.offset.unwrap_or(0),
    })
}

async fn cases(State(st): State<Shared>, p: Principal, Query(mut q): Query<CaseParams>) -> ApiResult {
    q.subscriber = q.subscriber.map(|s| st.deps.stored_subscriber(&s));
    let query = case_query(&p, &q)?;
    let want = limit(q.limit);
    let page = st
        .deps
        .db
        .run(move |s| {
            let items = s.cases(&query)?;
            let next = (items.len() as u64 == want).then(|| items.last().map(|c| c.id.to_string())).flatten();
            Ok(Page { items, next })
        })
        .await?;
    Ok(Json(page).into_response())
}

/// A case with its history and evidence, if the caller may see it.
pub async fn case_detail(st: &AppState, p: &Principal, id: i64) -> Result<Value, ApiError> {
    let p = p.clone();
    st.deps
        .db
        .run(move |s| {
            let Some(rec) = s.case(id)? else { return Err(ApiError::not_found().into()) };
            if !p.sees_org(rec.case.org.as_deref()) {
                return Err(ApiError::not_found().into());
            }
            let history = s.case_history(id)?;
            // Every source behind the case: the events of its address in the case's span.
            let evidence = match rec.case.ip {
                Some(ip) => s.events(&EventQuery {
                    ip: Some(ip),
                    since: Some(Timestamp(rec.case.first_seen.micros().saturating_sub(86_400_000_000))),
                    limit: Some(200),
                    ..Default::default()
                })?,
                None => Vec::new(),
            };
            Ok(json!({
                "case": rec.case,
                "next_check": rec.next_check,
                "recent": rec.recent,
                "history": history,
                "evidence": evidence.iter().map(event_json).collect::<Vec<_>>(),
            }))
        })
        .await
}

async fn case(State(st): State<Shared>, p: Principal, Path(id): Path<i64>) -> ApiResult {
    Ok(Json(case_detail(&st, &p, id).await?).into_response())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Ack,
    Close,
    /// The first notice without the batching delay, or a reminder now.
    Notify,
    /// One escalation level up.
    Escalate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// `remediated` (default), `dismissed` or `silent`.
    pub reason: Option<String>,
}

fn close_reason(s: Option<&str>) -> Result<CloseReason, ApiError> {
    match s.unwrap_or("remediated") {
        "remediated" => Ok(CloseReason::Remediated),
        "dismissed" => Ok(CloseReason::Dismissed),
        "silent" => Ok(CloseReason::Silent),
        other => Err(ApiError::bad_request(format!("reason: unknown {other}"))),
    }
}

/// Applies an action to a case the caller may see; the actor in the history is the caller.
pub async fn act(
    st: &Shared,
    p: &Principal,
    id: i64,
    action: Action,
    reason: Option<&str>,
) -> Result<Value, ApiError> {
    let reason = close_reason(reason)?;
    let p = p.clone();
    let shared = st.clone();
    let done = st
        .deps
        .db
        .run(move |s| {
            let Some(rec) = s.case(id)? else { return Err(ApiError::not_found().into()) };
            if !p.sees_org(rec.case.org.as_deref()) {
                return Err(ApiError::not_found().into());
            }
            let actor = format!("{}:{}", p.role.as_str(), p.name);
            let clock = &*shared.deps.clock;
            let (engine, attr) = (&shared.deps.engine, &*shared.deps.attributor);
            let c = match action {
                Action::Ack => engine.ack(s, id, &actor, clock)?,
                Action::Close => engine.close(s, id, reason, &actor, clock)?,
                Action::Notify => engine.notify_now(s, attr, id, &actor, clock)?,
                Action::Escalate => engine.escalate(s, attr, id, &actor, clock)?,
            };
            Ok(serde_json::to_value(c)?)
        })
        .await?;
    // Counted here, once per applied action, whichever page or endpoint (single or bulk) asked.
    st.metrics.case_action(match action {
        Action::Ack => "ack",
        Action::Close => "close",
        Action::Notify => "notify",
        Action::Escalate => "escalate",
    });
    Ok(done)
}

async fn ack(State(st): State<Shared>, p: Principal, Path(id): Path<i64>) -> ApiResult {
    let c = act(&st, &p, id, Action::Ack, None).await?;
    Ok(Json(c).into_response())
}

async fn close(
    State(st): State<Shared>,
    p: Principal,
    Path(id): Path<i64>,
    body: Option<Json<CloseBody>>,
) -> ApiResult {
    let reason = body.and_then(|Json(b)| b.reason);
    let c = act(&st, &p, id, Action::Close, reason.as_deref()).await?;
    Ok(Json(c).into_response())
}

async fn notify(State(st): State<Shared>, p: Principal, Path(id): Path<i64>) -> ApiResult {
    let c = act(&st, &p, id, Action::Notify, None).await?;
    Ok(Json(c).into_response())
}

async fn escalate(State(st): State<Shared>, p: Principal, Path(id): Path<i64>) -> ApiResult {
    let c = act(&st, &p, id, Action::Escalate, None).await?;
    Ok(Json(c).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    pub ids: Vec<i64>,
    pub action: Action,
    pub reason: Option<String>,
}

/// One action over many cases; each succeeds or fails on its own.
async fn bulk(State(st): State<Shared>, p: Principal, Json(b): Json<BulkBody>) -> ApiResult {
    if b.ids.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 cases per request"));
    }
    let mut results = Vec::with_capacity(b.ids.len());
    for id in b.ids {
        match act(&st, &p, id, b.action, b.reason.as_deref()).await {
            Ok(c) => results.push(json!({"id": id, "ok": true, "state": c["state"]})),
            Err(e) => results.push(json!({"id": id, "ok": false, "error": e.message})),
        }
    }
    Ok(Json(json!({ "results": results })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeParams {
    pub status: Option<String>,
    pub limit: Option<u64>,
}

async fn notices(State(st): State<Shared>, p: Principal, Query(q): Query<NoticeParams>) -> ApiResult {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<NoticeStatus>(Value::String(s.to_string()))
                .map_err(|_| ApiError::bad_request(format!("status: unknown {s}")))?,
        ),
    };
    let want = limit(q.limit);
    let items = st
        .deps
        .db
        .run(move |s| {
            // Newest first and not paged by id: a bounded window of recent notices.
            let all = s.notices(status, if p.sees_all() { want } else { SCAN_BUDGET })?;
            Ok(all
                .into_iter()
                .filter(|n| p.sees_org(n.notice.org.as_deref()))
                .take(want as usize)
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn organisations(State(st): State<Shared>, p: Principal) -> ApiResult {
    let orgs: Vec<_> = st.deps.constituency.orgs().iter().filter(|o| p.sees_org(Some(&o.id))).collect();
    Ok(Json(json!({ "items": orgs })).into_response())
}

/// Partners, their entitlement and what was exchanged with each (admin and analyst only:
/// the exchange log is the centre's, not an organisation's).
async fn partners(State(st): State<Shared>, p: Principal) -> ApiResult {
    if !p.sees_all() {
        return Err(ApiError::forbidden("partners are visible to admins and analysts"));
    }
    let Some(share) = st.deps.share.clone() else {
        return Ok(Json(json!({ "node": null, "items": [], "recent": [] })).into_response());
    };
    let (ex, recent) = st.deps.db.run(|s| Ok((s.share_exchanges()?, s.share_audit_list(None, 50)?))).await?;
    let items: Vec<_> = share
        .partners
        .iter()
        .map(|pt| {
            let x = ex.iter().find(|x| x.partner == pt.name).cloned().unwrap_or_default();
            json!({
                "name": pt.name, "country": pt.country, "organisation": pt.organisation,
                "max_tlp": format!("TLP:{}", pt.max_tlp.as_str()), "sightings": pt.sightings,
                "home_addresses": pt.home_addresses, "read": pt.read, "write": pt.write,
                "url": pt.url, "sent": x.sent, "received": x.received, "withheld": x.withheld,
                "exchanges": x.exchanges, "errors": x.errors, "last_exchange": x.last_exchange, "last_error": x.last_error,
            })
        })
        .collect();
    Ok(Json(json!({ "node": share.cfg.node, "items": items, "recent": recent })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationParams {
    pub by: Option<String>,
}

/// Every node's published aggregates summed, with each node's share (no organisation or
/// subscriber data: the cells are what the nodes published to each other).
async fn federation_stats(
    State(st): State<Shared>,
    p: Principal,
    Query(q): Query<FederationParams>,
) -> ApiResult {
    if !p.sees_all() {
        return Err(ApiError::forbidden("the federation view is for admins and analysts"));
    }
    let by = match q.by.as_deref() {
        None => botwatch_share::federation::By::Day,
        Some(b) => botwatch_share::federation::By::parse(b)
            .ok_or_else(|| ApiError::bad_request("by: day, country, family, asn or node"))?,
    };
    let cells = st.deps.db.run(|s| Ok(s.federation_cells(None)?)).await?;
    Ok(Json(botwatch_share::federation::global(&cells, by)).into_response())
}

async fn compliance(State(st): State<Shared>, p: Principal) -> ApiResult {
    let rows = compliance_rows(&st, &p).await?;
    Ok(Json(json!({ "items": rows })).into_response())
}

/// Compliance per organisation against the security bar; an organisation gets its own row.
pub async fn compliance_rows(
    st: &Shared,
    p: &Principal,
) -> Result<Vec<botwatch_cases::OrgCompliance>, ApiError> {
    let all = st.compliance_all().await?;
    Ok(all.iter().filter(|r| p.sees_org(r.org.as_deref())).cloned().collect())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    pub since: Option<String>,
    pub until: Option<String>,
    pub family: Option<String>,
    #[serde(rename = "type")]
    pub classification_type: Option<String>,
    pub limit: Option<u64>,
}

pub fn group_by(s: &str) -> Option<GroupBy> {
    Some(match s {
        "family" => GroupBy::Family,
        "asn" => GroupBy::Asn,
        "country" => GroupBy::Country,
        "day" => GroupBy::Day,
        "feed" => GroupBy::Feed,
        "type" => GroupBy::Type,
        _ => return None,
    })
}

/// Counts across every organisation: analysts and admins only.
async fn stats(
    State(st): State<Shared>,
    p: Principal,
    Path(by): Path<String>,
    Query(q): Query<StatsParams>,
) -> ApiResult {
    p.require_all()?;
    let by = group_by(&by).ok_or_else(ApiError::not_found)?;
    let query = EventQuery {
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        family: q.family.clone(),
        classification_type: q.classification_type.clone(),
        limit: Some(q.limit.unwrap_or(50).clamp(1, 10_000)),
        ..Default::default()
    };
    let rows = st.deps.db.run(move |s| Ok(s.stats(by, &query)?)).await?;
    Ok(Json(json!({ "items": rows })).into_response())
}

/// Feed health: the latest reports, newest first (analysts and admins).
async fn feeds(State(st): State<Shared>, p: Principal) -> ApiResult {
    p.require_all()?;
    let reports = st.deps.db.run(|s| Ok(s.reports(200)?)).await?;
    Ok(Json(json!({ "items": reports })).into_response())
}

async fn tokens(State(st): State<Shared>, p: Principal) -> ApiResult {
    p.require_admin()?;
    let rows = st.deps.db.run(|s| Ok(s.tokens()?)).await?;
    Ok(Json(json!({ "items": rows })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub org: Option<String>,
}

async fn create_token(State(st): State<Shared>, p: Principal, Json(b): Json<NewToken>) -> ApiResult {
    p.require_admin()?;
    let role =
        Role::parse(&b.role).ok_or_else(|| ApiError::bad_request("role: admin, analyst or organisation"))?;
    if role == Role::Organisation {
        match &b.org {
            Some(o) if st.deps.constituency.get(o).is_some() => {}
            _ => {
                return Err(ApiError::bad_request(
                    "org: an organisation token needs a known organisation id",
                ));
            }
        }
    }
    let token = auth::new_token().map_err(ApiError::internal)?;
    let hash = auth::hash_token(&token);
    let now = st.deps.clock.now();
    let org = if role == Role::Organisation { b.org.clone() } else { None };
    let name = b.name.clone();
    let id = st
        .deps
        .db
        .run(move |s| Ok(s.create_token(&name, role.as_str(), org.as_deref(), &hash, now)?))
        .await?;
    // The only time the token is shown.
    Ok((StatusCode::CREATED, Json(json!({"id": id, "token": token, "role": role.as_str(), "org": b.org})))
        .into_response())
}

async fn revoke_token(State(st): State<Shared>, p: Principal, Path(id): Path<i64>) -> ApiResult {
    p.require_admin()?;
    let now = st.deps.clock.now();
    if st.deps.db.run(move |s| Ok(s.revoke_token(id, now)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// `botwatch run`'s jobs (last run, failures, back-off) and intake sources (last report,
/// staleness), as the runner recorded them in the store.
async fn jobs(State(st): State<Shared>, p: Principal) -> ApiResult {
    p.require_all()?;
    let now = st.deps.clock.now();
    let (jobs, sources) = st
        .deps
        .db
        .run(|s| {
            use botwatch_store::jobs::JobStore;
            Ok((s.jobs()?, s.sources()?))
        })
        .await?;
    let sources: Vec<Value> = sources
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["quiet_secs"] = json!(r.quiet_secs(now));
            v["stale"] = json!(r.stale(now));
            v
        })
        .collect();
    Ok(Json(json!({"jobs": jobs, "sources": sources})).into_response())
}

//! TAXII 2.1 at `/taxii2/` (OASIS TAXII 2.1 CS01): discovery, one API root (`api/`), the
//! node's collections, objects with `added_after`, `match[…]` and `limit`/`next` paging,
//! POSTed envelopes, manifests, versions and status.
//!
//! Callers: a partner of `[[partners]]` (HTTP Basic with its name and password, or its
//! bearer token) reads and writes what its entry allows and receives what the gate admits
//! for its entitlement; the REST API's admin and analyst tokens (bearer) read everything
//! but TLP:RED and subscriber data, and may post to the inbox. Pages are read from the store
//! by sequence number, so paging a collection of any size takes constant memory.

use crate::Shared;
use crate::auth::{Role, principal_for_token};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use botwatch_share::gate::{self, Entitlement, Label};
use botwatch_share::partners::{Partner, ShareConfig};
use botwatch_share::taxii::{self, CollectionKind, MEDIA_STIX, MEDIA_TAXII};
use botwatch_store::share::{AuditEntry, SharePage, Versions};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// `[share]` and the partners, with their secrets read.
pub struct Sharing {
    pub cfg: ShareConfig,
    pub partners: Vec<Partner>,
    /// SHA-256 of each partner's token and password, by partner index.
    tokens: Vec<Option<[u8; 32]>>,
    passwords: Vec<Option<[u8; 32]>>,
}

/// Secrets are compared as SHA-256 digests: equal digests leak nothing about the secret
/// through timing, as a byte-wise compare of the secrets themselves would.
fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Sharing {
    pub fn new(cfg: ShareConfig, partners: Vec<Partner>) -> anyhow::Result<Sharing> {
        botwatch_share::partners::check(&partners).map_err(anyhow::Error::msg)?;
        cfg.feed_rules().map_err(anyhow::Error::msg)?;
        let read = |v: &Option<String>| -> anyhow::Result<Option<[u8; 32]>> {
            Ok(match v {
                Some(s) => Some(sha(&botwatch_share::partners::secret(s).map_err(anyhow::Error::msg)?)),
                None => None,
            })
        };
        let tokens = partners.iter().map(|p| read(&p.token)).collect::<anyhow::Result<_>>()?;
        let passwords = partners.iter().map(|p| read(&p.password)).collect::<anyhow::Result<_>>()?;
        Ok(Sharing { cfg, partners, tokens, passwords })
    }
}

/// Who is asking.
enum Caller {
    /// An admin or analyst token of the REST API.
    Local(String),
    Partner(usize),
}

impl Caller {
    fn name(&self, s: &Sharing) -> String {
        match self {
            Caller::Local(n) => format!("local:{n}"),
            Caller::Partner(i) => s.partners[*i].name.clone(),
        }
    }

    fn entitlement(&self, s: &Sharing) -> Entitlement {
        match self {
            // The node's own staff: everything but RED and subscriber data, which never
            // leave through TAXII.
            Caller::Local(_) => Entitlement {
                max_tlp: botwatch_model::Tlp::AmberStrict,
                sightings: true,
                home_addresses: true,
                same_organisation: true,
                default_tlp: s.cfg.default_tlp,
            },
            Caller::Partner(i) => s.partners[*i].entitlement(&s.cfg),
        }
    }

    fn may_read(&self, s: &Sharing, c: CollectionKind) -> bool {
        match self {
            Caller::Local(_) => true,
            Caller::Partner(i) => s.partners[*i].may_read(c),
        }
    }

    fn may_write(&self, s: &Sharing, c: CollectionKind) -> bool {
        match self {
            Caller::Local(_) => c.writable(),
            Caller::Partner(i) => s.partners[*i].may_write(c),
        }
    }

    fn partner(&self, s: &Sharing) -> Option<String> {
        match self {
            Caller::Local(_) => None,
            Caller::Partner(i) => Some(s.partners[*i].name.clone()),
        }
    }
}

/// A TAXII error message resource (§3.6.1) with its status.
struct TaxiiError(StatusCode, String);

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"title": self.0.canonical_reason().unwrap_or("error"), "description": self.1, "http_status": self.0.as_u16().to_string()});
        let mut r = (self.0, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"botwatch TAXII\", Bearer"),
            );
        }
        r
    }
}

impl From<crate::api::ApiError> for TaxiiError {
    fn from(e: crate::api::ApiError) -> Self {
        TaxiiError(e.status, e.message)
    }
}

type TResult = Result<Response, TaxiiError>;

fn ok(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
    r
}

fn sharing(st: &Shared) -> Result<Arc<Sharing>, TaxiiError> {
    st.deps.share.clone().ok_or_else(|| {
        TaxiiError(StatusCode::NOT_FOUND, "sharing is not configured ([share] in botwatch.toml)".into())
    })
}

/// The media type check TAXII asks for: a client must accept TAXII 2.1 JSON.
fn accepts(h: &HeaderMap) -> Result<(), TaxiiError> {
    let Some(a) = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let fine = a.split(',').any(|m| {
        let m: String = m
            .split(";q=")
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        m == "application/taxii+json;version=2.1"
            || m == "application/taxii+json"
            || m == "*/*"
            || m == "application/*"
    });
    if fine {
        Ok(())
    } else {
        Err(TaxiiError(StatusCode::NOT_ACCEPTABLE, format!("this server answers {MEDIA_TAXII}")))
    }
}

async fn caller(st: &Shared, s: &Sharing, h: &HeaderMap) -> Result<Caller, TaxiiError> {
    accepts(h)?;
    let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(TaxiiError(
            StatusCode::UNAUTHORIZED,
            "send HTTP Basic credentials or a bearer token".into(),
        ));
    };
    if let Some(b) = v.strip_prefix("Basic ") {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| TaxiiError(StatusCode::UNAUTHORIZED, "malformed Basic credentials".into()))?;
        let raw = String::from_utf8(raw)
            .map_err(|_| TaxiiError(StatusCode::UNAUTHORIZED, "malformed Basic credentials".into()))?;
        let (user, pass) = raw
            .split_once(':')
            .ok_or_else(|| TaxiiError(StatusCode::UNAUTHORIZED, "malformed Basic credentials".into()))?;
        let given = sha(pass);
        for (i, p) in s.partners.iter().enumerate() {
            if p.name == user && s.passwords[i] == Some(given) {
                return Ok(Caller::Partner(i));
            }
        }
        return Err(TaxiiError(StatusCode::UNAUTHORIZED, "unknown partner or wrong password".into()));
    }
    if let Some(t) = v.strip_prefix("Bearer ") {
        let given = sha(t.trim());
        for (i, h) in s.tokens.iter().enumerate() {
            if *h == Some(given) {
                return Ok(Caller::Partner(i));
            }
        }
        let p = principal_for_token(st, t).await?;
        return match p.role {
            Role::Admin | Role::Analyst => Ok(Caller::Local(p.name)),
            Role::Organisation => {
                Err(TaxiiError(StatusCode::FORBIDDEN, "organisation tokens have no TAXII access".into()))
            }
        };
    }
    Err(TaxiiError(StatusCode::UNAUTHORIZED, "send HTTP Basic credentials or a bearer token".into()))
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/taxii2/api/", get(api_root))
        .route("/taxii2/api/status/{id}/", get(status))
        .route("/taxii2/api/collections/", get(collections))
        .route("/taxii2/api/collections/{cid}/", get(collection))
        .route(
            "/taxii2/api/collections/{cid}/objects/",
            get(objects).post(post_objects).layer(axum::extract::DefaultBodyLimit::max(taxii::MAX_CONTENT)),
        )
        .route("/taxii2/api/collections/{cid}/objects/{oid}/", get(object))
        .route("/taxii2/api/collections/{cid}/objects/{oid}/versions/", get(versions))
        .route("/taxii2/api/collections/{cid}/manifest/", get(manifest))
}

/// The API root's URL as the client reached this server.
fn base(st: &Shared, h: &HeaderMap) -> String {
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = if st.cfg.tls_enabled() { "https" } else { "http" };
    format!("{scheme}://{host}/taxii2/api/")
}

async fn discovery(State(st): State<Shared>, h: HeaderMap) -> TResult {
    let s = sharing(&st)?;
    caller(&st, &s, &h).await?;
    let root = base(&st, &h);
    Ok(ok(serde_json::json!({
        "title": format!("botwatch node {}", s.cfg.node),
        "description": "Botnet indicators, sightings and federated statistics",
        "contact": s.cfg.contact.clone().unwrap_or_default(),
        "default": root,
        "api_roots": [root],
    })
    .to_string()))
}

async fn api_root(State(st): State<Shared>, h: HeaderMap) -> TResult {
    let s = sharing(&st)?;
    caller(&st, &s, &h).await?;
    Ok(ok(serde_json::json!({
        "title": format!("{} API root", s.cfg.node),
        "versions": [MEDIA_TAXII],
        "max_content_length": taxii::MAX_CONTENT,
    })
    .to_string()))
}

fn collection_json(s: &Sharing, c: &Caller, k: CollectionKind) -> serde_json::Value {
    serde_json::json!({
        "id": k.id(&s.cfg.node),
        "title": k.title(),
        "alias": k.alias(),
        "can_read": c.may_read(s, k),
        "can_write": c.may_write(s, k),
        "media_types": [MEDIA_STIX],
    })
}

fn visible(s: &Sharing, c: &Caller) -> Vec<CollectionKind> {
    CollectionKind::ALL.into_iter().filter(|k| c.may_read(s, *k) || c.may_write(s, *k)).collect()
}

async fn collections(State(st): State<Shared>, h: HeaderMap) -> TResult {
    let s = sharing(&st)?;
    let c = caller(&st, &s, &h).await?;
    let list: Vec<_> = visible(&s, &c).into_iter().map(|k| collection_json(&s, &c, k)).collect();
    Ok(ok(serde_json::json!({ "collections": list }).to_string()))
}

/// The collection `cid` names, if this caller may see it at all (else 404: its existence
/// is not confirmed).
fn find(s: &Sharing, c: &Caller, cid: &str) -> Result<CollectionKind, TaxiiError> {
    visible(s, c)
        .into_iter()
        .find(|k| k.id(&s.cfg.node) == cid || k.alias() == cid)
        .ok_or_else(|| TaxiiError(StatusCode::NOT_FOUND, "no such collection".into()))
}

async fn collection(State(st): State<Shared>, h: HeaderMap, Path(cid): Path<String>) -> TResult {
    let s = sharing(&st)?;
    let c = caller(&st, &s, &h).await?;
    let k = find(&s, &c, &cid)?;
    Ok(ok(collection_json(&s, &c, k).to_string()))
}

/// The caller, its sharing setup and the collection `cid`, which it must be allowed to read.
async fn reader(
    st: &Shared,
    h: &HeaderMap,
    cid: &str,
) -> Result<(Arc<Sharing>, Caller, CollectionKind), TaxiiError> {
    let s = sharing(st)?;
    let c = caller(st, &s, h).await?;
    let k = find(&s, &c, cid)?;
    if !c.may_read(&s, k) {
        return Err(TaxiiError(StatusCode::FORBIDDEN, "this collection is not readable for you".into()));
    }
    Ok((s, c, k))
}

/// The filters of a GET, parsed.
struct Filter {
    added_after: Option<botwatch_model::Timestamp>,
    limit: usize,
    next: Option<String>,
    types: Vec<String>,
    ids: Vec<String>,
    versions: Versions,
    key: String,
}

fn filter(q: &[(String, String)]) -> Result<Filter, TaxiiError> {
    let mut f = Filter {
        added_after: None,
        limit: 100,
        next: None,
        types: vec![],
        ids: vec![],
        versions: Versions::Last,
        key: String::new(),
    };
    let bad = |m: String| TaxiiError(StatusCode::BAD_REQUEST, m);
    let mut key_parts = Vec::new();
    for (k, v) in q {
        let list =
            || v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
        match k.as_str() {
            "added_after" => {
                f.added_after = Some(
                    botwatch_model::parse_timestamp(v)
                        .ok_or_else(|| bad(format!("added_after: not a timestamp: {v:?}")))?,
                );
                key_parts.push(format!("a={v}"));
            }
            "limit" => {
                let n: usize = v.parse().map_err(|_| bad(format!("limit: not a number: {v:?}")))?;
                f.limit = n.clamp(1, taxii::MAX_PAGE);
            }
            "next" => f.next = Some(v.clone()),
            "match[type]" => {
                f.types = list();
                key_parts.push(format!("t={v}"));
            }
            "match[id]" => {
                f.ids = list();
                key_parts.push(format!("i={v}"));
            }
            "match[version]" => {
                let l = list();
                f.versions = match l.as_slice() {
                    [one] if one == "last" => Versions::Last,
                    [one] if one == "first" => Versions::First,
                    [one] if one == "all" => Versions::All,
                    _ => Versions::These(l),
                };
                key_parts.push(format!("v={v}"));
            }
            // Only 2.1 objects are kept: asking for other versions finds nothing.
            "match[spec_version]" if !list().iter().any(|x| x == "2.1") => f.ids = vec!["\u{0}none".into()],
            _ => {}
        }
    }
    f.key = key_parts.join("&");
    Ok(f)
}

/// One gated page of a collection: the rows the gate admits, and the cursor.
async fn page(
    st: &Shared,
    s: &Arc<Sharing>,
    c: &Caller,
    k: CollectionKind,
    f: &Filter,
    without_body: bool,
    ids: Vec<String>,
) -> Result<(Vec<botwatch_store::share::SharedObject>, Option<String>, u64), TaxiiError> {
    let e = c.entitlement(s);
    let after = match &f.next {
        Some(n) => Some(taxii::decode_next(n, &f.key).ok_or_else(|| {
            TaxiiError(StatusCode::BAD_REQUEST, "next does not belong to these filters".into())
        })?),
        None => None,
    };
    let q = SharePage {
        collection: k.id(&s.cfg.node),
        condition: Some(gate::sql_condition(&e)),
        after_seq: after,
        added_after: f.added_after,
        types: f.types.clone(),
        ids: if ids.is_empty() { f.ids.clone() } else { ids },
        versions: f.versions.clone(),
        partner: None,
        limit: f.limit,
        without_body,
    };
    let (rows, more, held) = st.deps.db.run(move |db| Ok(db.share_page_counted(&q)?)).await?;
    let next = (more && !rows.is_empty())
        .then(|| taxii::encode_next(rows.last().map(|r| r.seq).unwrap_or(0), &f.key));
    // The pre-filter above is the gate's own condition; the gate still decides each row.
    let before = rows.len();
    let rows: Vec<_> =
        rows.into_iter().filter(|r| gate::admit(&e, &Label::from_parts(r.tlp, r.flags)).sends()).collect();
    let refused = (before - rows.len()) as u64;
    if refused > 0 {
        tracing::error!(refused, "TAXII page: rows past the SQL pre-filter were refused by the gate");
    }
    Ok((rows, next, held + refused))
}

fn added_headers(r: &mut Response, rows: &[botwatch_store::share::SharedObject]) {
    if let (Some(a), Some(b)) = (rows.first(), rows.last()) {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&taxii::time(a.date_added)) {
            h.insert("X-TAXII-Date-Added-First", v);
        }
        if let Ok(v) = HeaderValue::from_str(&taxii::time(b.date_added)) {
            h.insert("X-TAXII-Date-Added-Last", v);
        }
    }
}

async fn audit_sent(
    st: &Shared,
    s: &Sharing,
    c: &Caller,
    k: CollectionKind,
    channel: &str,
    rows: &[botwatch_store::share::SharedObject],
    withheld: u64,
) {
    let Some(partner) = c.partner(s) else { return };
    st.metrics.taxii_objects(&partner, "sent", rows.len() as u64);
    st.metrics.taxii_objects(&partner, "withheld", withheld);
    let e = c.entitlement(s);
    let tlp_max = rows.iter().map(|r| gate::effective(&Label::from_parts(r.tlp, r.flags), &e)).max();
    let a = AuditEntry {
        at: st.deps.clock.now(),
        partner,
        direction: "sent".into(),
        channel: channel.into(),
        collection: Some(k.alias().into()),
        objects: rows.len() as u64,
        withheld,
        tlp_max: tlp_max.map(|t| format!("TLP:{}", t.as_str())),
        error: None,
    };
    if st.deps.db.read_only() {
        return;
    }
    if let Err(e) = st.deps.db.run(move |db| Ok(db.share_audit(&a)?)).await {
        tracing::warn!(error = ?e.message, "Recording a TAXII exchange in the audit log failed");
    }
}

fn envelope(rows: &[botwatch_store::share::SharedObject], next: Option<String>) -> String {
    if rows.is_empty() && next.is_none() {
        return "{}".into();
    }
    let mut out = String::with_capacity(rows.iter().map(|r| r.body.len() + 2).sum::<usize>() + 64);
    out.push_str("{\"more\":");
    out.push_str(if next.is_some() { "true" } else { "false" });
    if let Some(n) = &next {
        out.push_str(",\"next\":");
        out.push_str(&serde_json::Value::String(n.clone()).to_string());
    }
    out.push_str(",\"objects\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&r.body);
    }
    out.push_str("]}");
    out
}

async fn objects(
    State(st): State<Shared>,
    h: HeaderMap,
    Path(cid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> TResult {
    envelope_response(&st, &h, &cid, &q, None).await
}

async fn object(
    State(st): State<Shared>,
    h: HeaderMap,
    Path((cid, oid)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> TResult {
    envelope_response(&st, &h, &cid, &q, Some(oid)).await
}

/// A page of objects (of one object's versions when `oid` is given: 404 when it has none),
/// recorded in the audit log as sent.
async fn envelope_response(
    st: &Shared,
    h: &HeaderMap,
    cid: &str,
    q: &[(String, String)],
    oid: Option<String>,
) -> TResult {
    let (s, c, k) = reader(st, h, cid).await?;
    let f = filter(q)?;
    let one = oid.is_some();
    let (rows, next, withheld) = page(st, &s, &c, k, &f, false, oid.into_iter().collect()).await?;
    if one && rows.is_empty() && next.is_none() {
        return Err(TaxiiError(StatusCode::NOT_FOUND, "no such object".into()));
    }
    audit_sent(st, &s, &c, k, "taxii-get", &rows, withheld).await;
    let mut r = ok(envelope(&rows, next));
    added_headers(&mut r, &rows);
    Ok(r)
}

async fn versions(
    State(st): State<Shared>,
    h: HeaderMap,
    Path((cid, oid)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> TResult {
    let (s, c, k) = reader(&st, &h, &cid).await?;
    let mut f = filter(&q)?;
    f.versions = Versions::All;
    let (rows, next, _) = page(&st, &s, &c, k, &f, true, vec![oid]).await?;
    if rows.is_empty() {
        return Err(TaxiiError(StatusCode::NOT_FOUND, "no such object".into()));
    }
    let body = serde_json::json!({"more": next.is_some(), "versions": rows.iter().map(|r| r.version.clone()).collect::<Vec<_>>()});
    let mut r = ok(body.to_string());
    added_headers(&mut r, &rows);
    Ok(r)
}

async fn manifest(
    State(st): State<Shared>,
    h: HeaderMap,
    Path(cid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> TResult {
    let (s, c, k) = reader(&st, &h, &cid).await?;
    let f = filter(&q)?;
    let (rows, next, _) = page(&st, &s, &c, k, &f, true, vec![]).await?;
    if rows.is_empty() && next.is_none() {
        return Ok(ok("{}".into()));
    }
    let list: Vec<_> = rows
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "date_added": taxii::time(r.date_added), "version": r.version, "media_type": MEDIA_STIX}))
        .collect();
    let mut body = serde_json::json!({"more": next.is_some(), "objects": list});
    if let Some(n) = next {
        body["next"] = n.into();
    }
    let mut r = ok(body.to_string());
    added_headers(&mut r, &rows);
    Ok(r)
}

async fn post_objects(
    State(st): State<Shared>,
    h: HeaderMap,
    Path(cid): Path<String>,
    body: Bytes,
) -> TResult {
    let s = sharing(&st)?;
    let c = caller(&st, &s, &h).await?;
    let k = find(&s, &c, &cid)?;
    if !c.may_write(&s, k) {
        return Err(TaxiiError(StatusCode::FORBIDDEN, "this collection is not writable for you".into()));
    }
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .replace(' ', "")
        .to_ascii_lowercase();
    if !ct.starts_with("application/taxii+json") {
        return Err(TaxiiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("send {MEDIA_TAXII}")));
    }
    if st.deps.db.read_only() {
        return Err(TaxiiError(StatusCode::SERVICE_UNAVAILABLE, "the store is served read-only".into()));
    }
    let env: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| TaxiiError(StatusCode::BAD_REQUEST, format!("not JSON: {e}")))?;
    let objs = env.get("objects").and_then(|o| o.as_array()).cloned().unwrap_or_default();
    let now = st.deps.clock.now();
    let mut good = Vec::new();
    let mut failures = Vec::new();
    for o in objs {
        let id = o.get("id").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let ty = o.get("type").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let ver = o
            .get("modified")
            .or_else(|| o.get("created"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| taxii::time(now));
        if id.split_once("--").is_none_or(|(t, _)| t != ty || t.is_empty()) {
            failures.push((id, ver, "an object needs a type and an id of that type".to_string()));
            continue;
        }
        let label = Label { tlp: botwatch_share::tlp::of_object(&o), ..Default::default() };
        good.push((id, ty, ver, label, o.to_string()));
    }
    let partner = c.name(&s);
    st.metrics.taxii_objects(&partner, "received", good.len() as u64);
    let coll = k.id(&s.cfg.node);
    let status_id =
        botwatch_share::ids::sdo("status", &[&partner, &taxii::time(now), &good.len().to_string()])
            .trim_start_matches("status--")
            .to_string();
    let successes: Vec<(String, String)> = good.iter().map(|g| (g.0.clone(), g.2.clone())).collect();
    let status = taxii::status(&status_id, now, &successes, &failures);
    let n = good.len() as u64;
    let (p2, sid2, coll2, status_s) = (partner.clone(), status_id.clone(), coll.clone(), status.to_string());
    st.deps
        .db
        .run(move |db| {
            db.share_put(
                &coll2,
                Some(&p2),
                good.iter().map(|(id, ty, v, l, b)| botwatch_store::share::NewShareObject {
                    id,
                    ty,
                    version: v,
                    tlp: l.tlp.map(botwatch_share::tlp::rank),
                    flags: l.flags(),
                    body: b,
                    content: None,
                }),
                now,
            )?;
            db.share_status_put(&sid2, &coll2, Some(&p2), now, &status_s)?;
            db.share_audit(&AuditEntry {
                at: now,
                partner: p2.clone(),
                direction: "received".into(),
                channel: "taxii-post".into(),
                collection: Some("inbox".into()),
                objects: n,
                withheld: 0,
                tlp_max: None,
                error: None,
            })?;
            Ok(())
        })
        .await?;
    let mut r = (StatusCode::ACCEPTED, status.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAXII));
    Ok(r)
}

async fn status(State(st): State<Shared>, h: HeaderMap, Path(id): Path<String>) -> TResult {
    let s = sharing(&st)?;
    let c = caller(&st, &s, &h).await?;
    let me = c.name(&s);
    let local = matches!(c, Caller::Local(_));
    let found = st.deps.db.run(move |db| Ok(db.share_status(&id)?)).await?;
    match found {
        Some((owner, body)) if local || owner.as_deref() == Some(me.as_str()) => Ok(ok(body)),
        _ => Err(TaxiiError(StatusCode::NOT_FOUND, "no such status".into())),
    }
}

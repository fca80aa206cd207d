//! Issue 11: on an address several subscribers share (CGNAT) the portal, which sees no port
//! to tell them apart, shows no one's infections and acknowledges nothing; where the lease
//! records name the visitor's line, it shows and acknowledges that line's cases only.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use botwatch_cases::{Bar, CaseEngine, Policy, StaticAttributor};
use botwatch_model::{Case, CaseState, ManualClock, Timestamp};
use botwatch_server::{AppState, Deps, ServerConfig};
use botwatch_store::StoreConfig;
use botwatch_store::cases::{CaseRecord, CaseStore};
use botwatch_store::sqlite::SqliteStore;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::ServiceExt;

const SHARED: &str = "100.64.7.9";

fn setup(db: &std::path::Path, t0: Timestamp) {
    let mut s = SqliteStore::open(db, StoreConfig::default()).unwrap();
    let mut tx = s.case_tx().unwrap();
    for (id, sub, threat) in [(1, "sub-a", "emotet"), (2, "sub-b", "qakbot")] {
        let mut c = Case::new(id, format!("sub:{sub}|{threat}"), threat.into(), "infected-system".into(), t0);
        c.subscriber = Some(sub.into());
        c.ip = Some(SHARED.parse().unwrap());
        c.state = CaseState::Notified;
        c.evidence = 1;
        tx.save(&CaseRecord { case: c, recent: vec![], next_check: Some(t0) }).unwrap();
    }
    tx.commit().unwrap();
}

fn app(db: &std::path::Path, attr: StaticAttributor, now: Timestamp) -> axum::Router {
    let deps = Deps {
        db: botwatch_server::db::Db::open(db.to_path_buf(), StoreConfig::default(), 2, false).unwrap(),
        constituency: botwatch_enrich::owners::Constituency::new(Vec::new()).unwrap(),
        attributor: Arc::new(attr),
        engine: CaseEngine::new(Policy::default()).unwrap(),
        bar: Bar::default(),
        advice: botwatch_notify::render::Advice::embedded().unwrap(),
        token_secret: b"0123456789abcdef".to_vec(),
        retain_days: None,
        pseudonymiser: None,
        share: None,
        intake: None,
        clock: Arc::new(ManualClock::new(now)),
    };
    botwatch_server::router(AppState::new(ServerConfig::default(), deps).unwrap())
}

async fn get(app: &axum::Router, peer: SocketAddr) -> (String, Option<String>) {
    let req =
        Request::builder().uri("/check?lang=en").extension(ConnectInfo(peer)).body(Body::empty()).unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let cookie = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("bw_form="));
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), cookie)
}

async fn cleaned(app: &axum::Router, peer: SocketAddr, cookie: &str) -> String {
    let nonce = cookie.trim_start_matches("bw_form=");
    let req = Request::builder()
        .method("POST")
        .uri("/check/cleaned")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .extension(ConnectInfo(peer))
        .body(Body::from(format!("nonce={nonce}&lang=en")))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

fn states(db: &std::path::Path) -> Vec<CaseState> {
    let s = SqliteStore::open(db, StoreConfig::default()).unwrap();
    (1..=2).map(|id| s.case(id).unwrap().unwrap().case.state).collect()
}

/// The two cases on the shared address, a portal whose lease records give the address to
/// `holders` now, and the visitor (straight from the address, port 40001).
fn scenario(dir: &std::path::Path, holders: &[&str]) -> (std::path::PathBuf, axum::Router, SocketAddr) {
    let db = dir.join("p.db");
    let t0 = Timestamp::from_secs(1_790_000_000);
    setup(&db, t0);
    let ip: IpAddr = SHARED.parse().unwrap();
    let mut attr = StaticAttributor::default();
    for h in holders {
        attr.lease(ip, h, t0, t0.saturating_add_secs(86_400));
    }
    let app = app(&db, attr, t0.saturating_add_secs(60));
    (db, app, SocketAddr::new(ip, 40001))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_address_shows_and_acknowledges_no_ones_cases() {
    let dir = tempfile::tempdir().unwrap();
    // Both lines hold the address now: without a port block, the records cannot tell.
    let (db, app, peer) = scenario(dir.path(), &["sub-a", "sub-b"]);
    let (page, cookie) = get(&app, peer).await;
    assert!(page.contains("data-listed=\"shared\""), "{page}");
    assert!(!page.contains("emotet") && !page.contains("qakbot"), "nobody else's infections: {page}");
    assert!(!page.contains("id=\"cleaned\""), "nothing to acknowledge");
    cleaned(&app, peer, &cookie.unwrap()).await;
    assert_eq!(states(&db), [CaseState::Notified, CaseState::Notified], "no case acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitors_own_line_sees_and_acknowledges_only_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (db, app, peer) = scenario(dir.path(), &["sub-a"]);
    let (page, cookie) = get(&app, peer).await;
    assert!(page.contains("emotet") && !page.contains("qakbot"), "{page}");
    cleaned(&app, peer, &cookie.unwrap()).await;
    assert_eq!(states(&db), [CaseState::Acknowledged, CaseState::Notified]);
}

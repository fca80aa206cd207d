//! The portal's set of flagged addresses: rebuilt at start and when the window moves a
//! day, extended by the addresses of newly stored events in between, never wrong in the
//! "clean" direction.

use botwatch_cases::{Bar, CaseEngine, Policy, StaticAttributor};
use botwatch_model::{ClassificationType, Event, FeedInfo, ManualClock, Slot, Timestamp};
use botwatch_server::{AppState, Deps, ServerConfig};
use botwatch_store::{
    DocKeys, ReportMeta, ReportTotals, Store, StoreConfig, encode_with, sqlite::SqliteStore,
};
use std::sync::Arc;

fn report(path: &std::path::Path, name: &str, ip: &str, at: Timestamp) {
    let mut store = SqliteStore::open(path, StoreConfig::default()).unwrap();
    let feed = Arc::new(FeedInfo::new("t_sinkhole", "Sinkhole", "T", 90.0));
    let mut e = Event::new(feed, ClassificationType::InfectedSystem, at);
    e.time_source = Some(at);
    e.set_str(Slot::for_key("source.ip"), ip).unwrap();
    e.malware_name = Some("mirai".into());
    e.raw = bytes::Bytes::from(format!("{name},{ip}"));
    let mut w = store.begin_report(&ReportMeta::new(name, "t_sinkhole", 1, at)).unwrap().unwrap();
    let mut keys = DocKeys::default();
    let out = w.write_batch(&[encode_with(&e, &mut keys)], &[]).unwrap();
    let doc_keys = keys.keys().iter().map(|k| k.to_string()).collect();
    w.commit(&ReportTotals { outcome: out, doc_keys, ..Default::default() }).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_listings_join_the_set_and_old_ones_leave_at_the_daily_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let t0 = Timestamp::from_secs(1_790_000_000);
    report(&db, "a", "192.0.2.1", t0);
    let clock = Arc::new(ManualClock::new(t0.saturating_add_secs(3600)));
    let deps = Deps {
        db: botwatch_server::db::Db::open(db.clone(), StoreConfig::default(), 2, false).unwrap(),
        constituency: botwatch_enrich::owners::Constituency::new(Vec::new()).unwrap(),
        attributor: Arc::new(StaticAttributor::default()),
        engine: CaseEngine::new(Policy::default()).unwrap(),
        bar: Bar::default(),
        advice: botwatch_notify::render::Advice::embedded().unwrap(),
        token_secret: b"k".to_vec(),
        retain_days: None,
        pseudonymiser: None,
        share: None,
        intake: None,
        clock: clock.clone(),
    };
    let st = AppState::new(ServerConfig::default(), deps).unwrap();
    let ip = |s: &str| s.parse().unwrap();
    // Before the first refresh nobody is "surely clean": every visitor is looked up.
    assert!(!st.surely_clean(ip("198.51.100.1")));
    assert_eq!(st.refresh_flagged().await.unwrap(), 1);
    assert!(!st.surely_clean(ip("192.0.2.1")));
    assert!(st.surely_clean(ip("192.0.2.9")));

    // A listing stored after the rebuild joins at the next refresh (the incremental path).
    report(&db, "b", "192.0.2.9", t0.saturating_add_secs(1800));
    assert_eq!(st.refresh_flagged().await.unwrap(), 2);
    assert!(!st.surely_clean(ip("192.0.2.9")));
    // Nothing new: nothing changes.
    assert_eq!(st.refresh_flagged().await.unwrap(), 2);

    // Forty days on, the window has moved: the rebuild drops both old listings.
    clock.advance_secs(40 * 86_400);
    assert_eq!(st.refresh_flagged().await.unwrap(), 0);
    assert!(st.surely_clean(ip("192.0.2.1")));
}

//! Shared by the integration tests: real Shadowserver rows parsed with botwatch-feeds,
//! stored through the real ingest path, and an in-memory attribution table.
#![allow(dead_code)] // each test binary uses a different subset

use botwatch_cases::{OrgInfo, Policy, StaticAttributor};
use botwatch_feeds::{ParseContext, registry};
use botwatch_model::{Collected, Event, FamilyTable, Timestamp, parse_timestamp};
use botwatch_store::any::AnyStore;
use botwatch_store::postgres::TestSchema;
use botwatch_store::{ReportMeta, ReportTotals, Store, StoreConfig, encode, sqlite::SqliteStore};
use std::sync::atomic::{AtomicU64, Ordering};

pub fn t(s: &str) -> Timestamp {
    parse_timestamp(s).unwrap()
}

/// The events of a fixture under crates/feeds/tests/data, parsed as `botwatch ingest` would.
pub fn fixture(rel: &str) -> Vec<Event> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../feeds/tests/data").join(rel);
    let data = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let reg = registry::Registry::builtin();
    let spec = reg.detect(Some(&name), &data).unwrap();
    let families = FamilyTable::default();
    let ctx = ParseContext::new(spec, Some(&name), Timestamp::from_secs(1_614_816_000), &families);
    let mut out = Collected::default();
    spec.parser.parse(&data, &ctx, &mut out);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    out.events
}

/// Stores events as one report (a new content hash each call).
pub fn ingest(store: &mut AnyStore, events: &[Event]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let meta = ReportMeta::new(&format!("sha-{n}-{}", events.len()), "test", 1, Timestamp::from_secs(0));
    let mut w = store.begin_report(&meta).unwrap().unwrap();
    let enc: Vec<_> = events.iter().map(encode).collect();
    w.write_batch(&enc, &[]).unwrap();
    w.commit(&ReportTotals::default()).unwrap();
}

/// `base` seen again at each time (a new line of the same report type).
pub fn again(base: &Event, times: &[Timestamp]) -> Vec<Event> {
    times
        .iter()
        .map(|&at| {
            let mut e = base.clone();
            e.time_source = Some(at);
            e
        })
        .collect()
}

thread_local! {
    /// Which backend [`store`] opens while [`each_backend`] runs a test body: `None`
    /// SQLite in memory, else the PostgreSQL test schemas made so far (kept to the end).
    static PG: std::cell::RefCell<Option<Vec<TestSchema>>> = const { std::cell::RefCell::new(None) };
}

/// Runs a test body on SQLite, then on PostgreSQL (when `BOTWATCH_PG_URL` is set; required
/// under `BOTWATCH_REQUIRE_PEERS=1`): each [`store`] the body opens is of that backend.
pub fn each_backend(name: &str, body: impl Fn()) {
    body();
    if TestSchema::new(name).is_some() {
        PG.with(|p| *p.borrow_mut() = Some(Vec::new()));
        body();
        PG.with(|p| *p.borrow_mut() = None);
    }
}

/// An empty store of the backend the running [`each_backend`] pass is on.
pub fn store() -> AnyStore {
    PG.with(|p| match &mut *p.borrow_mut() {
        None => AnyStore::Sqlite(SqliteStore::open_in_memory(StoreConfig::default()).unwrap()),
        Some(schemas) => {
            let schema = TestSchema::new("cases store").expect("PostgreSQL was there a moment ago");
            let s = AnyStore::Postgres(Box::new(schema.store(StoreConfig::default())));
            schemas.push(schema);
            s
        }
    })
}

/// ISP A (AS 12252 and 15169): two abuse addresses and a webhook; subscriber sub-17 leased
/// 35.205.9.10 during March 2021.
pub fn attributor() -> StaticAttributor {
    let mut a = StaticAttributor::default();
    a.add_org(OrgInfo {
        id: "isp-a".into(),
        name: "ISP A".into(),
        abuse_emails: vec!["abuse@isp-a.example".into(), "noc@isp-a.example".into()],
        webhook: Some("http://127.0.0.1:9/hook".into()),
        lang: "de".into(),
        tz_offset_minutes: 60,
        subscribers: Some(2000),
    });
    a.org_by_asn.insert(12252, "isp-a".into());
    a.org_by_asn.insert(15169, "isp-a".into());
    a.lease("35.205.9.10".parse().unwrap(), "sub-17", t("2021-03-01T00:00:00Z"), t("2021-04-01T00:00:00Z"));
    a
}

pub fn policy() -> Policy {
    Policy {
        notify_delay_minutes: 60,
        renotify_days: 7,
        escalate_after_repeats: 5,
        escalate_after_days: 14,
        walled_garden_level: 2,
        auto_close_days: 30,
        max_notices: 6,
        message_domain: "abuse.test".into(),
        ..Policy::default()
    }
}

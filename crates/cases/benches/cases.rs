//! Case update throughput: N new events against N open cases (one new sighting per case),
//! in the batches `CaseEngine::update` uses, into a SQLite file.
//!
//! `cargo bench -p botwatch-cases --bench cases`; N defaults to 1,000,000 and can be set
//! with `BOTWATCH_CASES_BENCH_N`.

use botwatch_cases::{CaseEngine, OrgInfo, Policy, StaticAttributor};
use botwatch_model::{ClassificationType, Event, FeedInfo, ManualClock, Timestamp};
use botwatch_store::{StoreConfig, StoredEvent, sqlite::SqliteStore};
use divan::{Bencher, counter::ItemsCount};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn main() {
    divan::main();
}

const BATCH: usize = 10_000;
const T0: i64 = 1_700_000_000;

fn n() -> usize {
    std::env::var("BOTWATCH_CASES_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// A sinkhole sighting of a distinct address per `i` (10.0.0.0/8 and onwards).
fn events(n: usize, first_id: i64, at: Timestamp) -> Vec<StoredEvent> {
    let feed =
        Arc::new(FeedInfo::new("shadowserver_event4_sinkhole", "Sinkhole Events", "Shadowserver", 100.0));
    let families = ["mirai", "emotet", "qakbot", "andromeda"];
    (0..n)
        .map(|i| {
            let mut e = Event::new(feed.clone(), ClassificationType::InfectedSystem, at);
            e.time_source = Some(Timestamp(at.0 - 1000 + (i % 1000) as i64));
            e.source.ip = Some(IpAddr::V4(Ipv4Addr::from(0x0A00_0000u32 + (i / 4) as u32)));
            e.source.port = Some(40_000 + (i % 20_000) as u16);
            e.source.asn = Some(64_500);
            e.destination.ip = Some("198.51.100.7".parse().expect("literal"));
            e.destination.port = Some(443);
            e.malware_name = Some(families[i % 4].into());
            StoredEvent { id: first_id + i as i64, report_id: 1, observation_id: None, event: e }
        })
        .collect()
}

fn attributor() -> StaticAttributor {
    let mut a = StaticAttributor::default();
    a.add_org(OrgInfo {
        id: "isp".into(),
        name: "ISP".into(),
        abuse_emails: vec!["abuse@isp.example".into()],
        webhook: None,
        lang: "en".into(),
        tz_offset_minutes: 0,
        subscribers: Some(5_000_000),
    });
    a.org_by_asn.insert(64_500, "isp".into());
    a
}

fn run(engine: &CaseEngine, store: &mut SqliteStore, events: &[StoredEvent], clock: &ManualClock) {
    let attr = attributor();
    for chunk in events.chunks(BATCH) {
        engine.process(store, chunk, &attr, clock).expect("process");
    }
}

#[divan::bench(sample_count = 1, sample_size = 1)]
fn update_n_events_against_n_open_cases(bencher: Bencher) {
    let n = n();
    let engine = CaseEngine::new(Policy { notify_delay_minutes: 0, ..Policy::default() }).expect("policy");
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store =
                SqliteStore::open(&dir.path().join("cases.db"), StoreConfig::default()).expect("open");
            let clock = ManualClock::new(Timestamp::from_secs(T0));
            // N open, notified cases.
            run(&engine, &mut store, &events(n, 1, Timestamp::from_secs(T0)), &clock);
            clock.advance_secs(3600);
            let next = events(n, n as i64 + 1, Timestamp::from_secs(T0 + 3600));
            (dir, store, next, clock)
        })
        .bench_local_values(|(dir, mut store, next, clock)| {
            run(&engine, &mut store, &next, &clock);
            (dir, store)
        });
}

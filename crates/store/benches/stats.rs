//! Statistics as the dashboard asks for them: from the per-day rollup, and by scanning the
//! events (what `stats` did before the rollup), on the same store; and the distinct-count
//! sketch's own costs.
//!
//! `cargo bench -p botwatch-store --bench stats`. The store holds N events (default
//! 1,000,000; `BOTWATCH_STATS_BENCH_N`) over 90 days, 12 families, 200 ASNs and 5
//! countries from 300,000 addresses: about 100,000 rollup rows, a national centre's worth.

use botwatch_model::{ClassificationType, Event, FeedInfo, Slot, Timestamp};
use botwatch_store::sketch::{QUERY_EXACT, STORED_EXACT, Sketch};
use botwatch_store::{
    DocKeys, EventQuery, GroupBy, ReportMeta, ReportTotals, Store, StoreConfig, encode_with,
    sqlite::SqliteStore,
};
use bytes::Bytes;
use divan::{Bencher, black_box, counter::ItemsCount};
use std::sync::{Arc, OnceLock};

fn main() {
    divan::main();
}

const DAY: i64 = 86_400;
const T0: i64 = 1_780_000_000 / DAY * DAY;

fn n() -> usize {
    std::env::var("BOTWATCH_STATS_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
}

/// Built once (it takes a while), read by every benchmark.
struct Shared(std::sync::Mutex<Fixture>);

fn fixture() -> &'static Shared {
    static F: OnceLock<Shared> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store =
            SqliteStore::open(&dir.path().join("stats.db"), StoreConfig::default()).expect("open");
        let feed = Arc::new(FeedInfo::new("bench_sinkhole", "Sinkhole", "Bench", 90.0));
        let families = [
            "andromeda",
            "conficker",
            "necurs",
            "ramnit",
            "sality",
            "virut",
            "mirai",
            "qsnatch",
            "emotet",
            "gozi",
            "avalanche",
            "zeus",
        ];
        let ccs = ["DE", "JP", "AU", "NL", "US"];
        let n = n();
        let per_day = n.div_ceil(90);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for day in 0..90i64 {
            let meta = ReportMeta::new(&format!("day{day}"), "bench_sinkhole", 1, Timestamp::from_secs(T0));
            let mut w = store.begin_report(&meta).expect("begin").expect("new report");
            let mut keys = DocKeys::default();
            let mut batch = Vec::with_capacity(10_000);
            for i in 0..per_day {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let bot = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 300_000) as u32;
                let t = Timestamp::from_secs(T0 + day * DAY + (i as i64 % DAY));
                let mut e = Event::new(feed.clone(), ClassificationType::InfectedSystem, t);
                e.time_source = Some(t);
                e.set_str(
                    Slot::for_key("source.ip"),
                    &std::net::Ipv4Addr::from(0x5000_0000 + bot).to_string(),
                )
                .expect("ip");
                e.source.asn = Some(64_500 + bot % 200);
                e.source.cc = Some(ccs[(bot % 5) as usize].into());
                e.malware_name = Some(families[(bot % 12) as usize].into());
                e.raw = Bytes::from(format!("{day},{i}"));
                batch.push(encode_with(&e, &mut keys));
                if batch.len() == 10_000 {
                    w.write_batch(&batch, &[]).expect("write");
                    batch.clear();
                }
            }
            w.write_batch(&batch, &[]).expect("write");
            let doc_keys = keys.keys().iter().map(|k| k.to_string()).collect();
            w.commit(&ReportTotals { doc_keys, ..Default::default() }).expect("commit");
        }
        store.checkpoint().expect("checkpoint");
        Shared(std::sync::Mutex::new(Fixture { _dir: dir, store }))
    })
}

fn infected(since_days: Option<i64>) -> EventQuery {
    EventQuery {
        classification_type: Some("infected-system".into()),
        since: since_days.map(|d| Timestamp::from_secs(T0 + (90 - d) * DAY)),
        ..Default::default()
    }
}

/// What the dashboard asks: top families, ASNs and countries over 90 days, and one
/// family's days.
#[divan::bench(args = [GroupBy::Family, GroupBy::Asn, GroupBy::Country, GroupBy::Day])]
fn rollup(bencher: Bencher, by: GroupBy) {
    let f = fixture().0.lock().expect("fixture");
    bencher.bench_local(|| black_box(f.store.stats(by, &infected(Some(90))).expect("stats")));
}

/// The same answers by scanning the events.
#[divan::bench(args = [GroupBy::Family, GroupBy::Asn], sample_count = 3, sample_size = 1)]
fn scan(bencher: Bencher, by: GroupBy) {
    let f = fixture().0.lock().expect("fixture");
    bencher.bench_local(|| black_box(f.store.stats_scan(by, &infected(Some(90))).expect("stats")));
}

/// One stored cell's sketch built from a day's addresses (many repeats).
#[divan::bench]
fn sketch_insert(bencher: Bencher) {
    let hashes: Vec<u64> = (0..100_000u64).map(|i| Sketch::hash(&(i % 20_000).to_le_bytes())).collect();
    bencher.counter(ItemsCount::new(hashes.len())).bench_local(|| {
        let mut s = Sketch::new(STORED_EXACT);
        for h in &hashes {
            s.insert(*h);
        }
        black_box(s.count())
    });
}

/// Merging 1,000 dense sketches into one answer (a top-ASN chart over 90 days merges
/// about this many per bar).
#[divan::bench]
fn sketch_merge_dense(bencher: Bencher) {
    let parts: Vec<Sketch> = (0..1000u64)
        .map(|p| {
            let mut s = Sketch::new(STORED_EXACT);
            for i in 0..2_000u64 {
                s.insert(Sketch::hash(&(p * 1_000 + i).to_le_bytes()));
            }
            s.normalise();
            s
        })
        .collect();
    bencher.counter(ItemsCount::new(parts.len())).bench_local(|| {
        let mut u = Sketch::new(QUERY_EXACT);
        for p in &parts {
            u.merge(p);
        }
        black_box(u.count())
    });
}

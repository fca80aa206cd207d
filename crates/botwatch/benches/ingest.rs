//! Full ingest throughput: detect, parse, enrich (IP → ASN/country), dedup and store in a
//! fresh SQLite file, for a 100,000-row Shadowserver `event4_sinkhole` report in the current
//! column layout. Wall-clock events/s: the parser and the store writer run on two threads.
//!
//! `cargo bench -p botwatch --bench ingest`

use botwatch::pipeline::{Ingestor, Input};
use botwatch_feeds::registry::Registry;
use botwatch_model::{FamilyTable, Timestamp};
use botwatch_store::{Store, StoreConfig, sqlite::SqliteStore};

fn main() {
    divan::main();
}

const ROWS: usize = 100_000;

#[divan::bench(sample_count = 5)]
fn ingest_event4_sinkhole_100k_sqlite(b: divan::Bencher) {
    let data = bytes::Bytes::from(botwatch_feeds::shadowserver::synth::event4_sinkhole(
        ROWS,
        20_000,
        "2026-11-24",
        1,
    ));
    let registry = Registry::builtin();
    let ipdb = botwatch_enrich::IpDb::builtin();
    let families = FamilyTable::default();
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: Default::default(),
        publish: None,
    };
    b.counter(divan::counter::ItemsCount::new(ROWS))
        .with_inputs(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("b.db"), StoreConfig::default()).unwrap();
            (dir, store)
        })
        .bench_local_values(|(dir, mut store)| {
            let s = ing
                .ingest(
                    &mut store,
                    Input {
                        name: "2026-11-24-event4_sinkhole-bench-asn.csv",
                        data: botwatch_feeds::input::Source::Bytes(data.clone()),
                        feed: None,
                        source: None,
                        observed: Timestamp::from_secs(1_800_000_000),
                        archive: None,
                    },
                    &|_| {},
                )
                .unwrap();
            assert_eq!(s[0].events, ROWS as u64);
            assert_eq!(store.counts().unwrap().events, ROWS as u64);
            // Returned values are dropped outside the timed region: closing checkpoints the
            // WAL, which `checkpoint_after_ingest` measures on its own.
            (dir, store)
        });
}

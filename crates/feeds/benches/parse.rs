//! Parse + normalise throughput over a 100,000-row Shadowserver `event4_sinkhole` report in
//! the current published column layout, and over the shipped sample files.
//!
//! `cargo bench -p botwatch-feeds --bench parse`

use botwatch_feeds::{ParseContext, registry};
use botwatch_model::{Event, FamilyTable, Reject, Sink, Timestamp, Warning};
use bytes::Bytes;

fn main() {
    divan::main();
}

/// Counts and drops: measures the parser alone.
#[derive(Default)]
struct Count(u64, u64);
impl Sink for Count {
    fn event(&mut self, e: Event) {
        self.0 += 1;
        drop(e);
    }
    fn reject(&mut self, _: Reject) {
        self.1 += 1;
    }
    fn warning(&mut self, _: Warning) {}
}

const ROWS: usize = 100_000;

#[divan::bench(sample_count = 10)]
fn event4_sinkhole_100k(b: divan::Bencher) {
    let data =
        Bytes::from(botwatch_feeds::shadowserver::synth::event4_sinkhole(ROWS, 20_000, "2026-11-24", 1));
    let spec = registry::get("shadowserver_event4_sinkhole").unwrap();
    let fam = FamilyTable::default();
    b.counter(divan::counter::ItemsCount::new(ROWS))
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench_local(|| {
            let ctx = ParseContext::new(&spec, None, Timestamp::from_secs(0), &fam);
            let mut sink = Count::default();
            spec.parser.parse(&data, &ctx, &mut sink);
            assert_eq!(sink.0, ROWS as u64);
            sink.0
        });
}

#[divan::bench(sample_count = 10)]
fn event4_sinkhole_100k_autodetect(b: divan::Bencher) {
    let data =
        Bytes::from(botwatch_feeds::shadowserver::synth::event4_sinkhole(ROWS, 20_000, "2026-11-24", 1));
    let reg = registry::Registry::builtin();
    let fam = FamilyTable::default();
    b.counter(divan::counter::ItemsCount::new(ROWS)).bench_local(|| {
        let spec = reg.detect(Some("2026-11-24-event4_sinkhole-x-asn.csv"), &data).unwrap();
        let ctx = ParseContext::new(spec, None, Timestamp::from_secs(0), &fam);
        let mut sink = Count::default();
        spec.parser.parse(&data, &ctx, &mut sink);
        sink.0
    });
}

/// The floor: the CSV reader alone over the same bytes.
#[divan::bench(sample_count = 10)]
fn csv_reader_only_100k(b: divan::Bencher) {
    let data =
        Bytes::from(botwatch_feeds::shadowserver::synth::event4_sinkhole(ROWS, 20_000, "2026-11-24", 1));
    b.counter(divan::counter::ItemsCount::new(ROWS)).bench_local(|| {
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&data[..]);
        let mut rec = csv::ByteRecord::new();
        let mut n = 0;
        while rdr.read_byte_record(&mut rec).unwrap() {
            n += rec.len();
        }
        n
    });
}

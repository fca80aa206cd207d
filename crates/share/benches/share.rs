//! STIX export throughput: observations → serialised objects, one core.
use botwatch_model::{Timestamp, Tlp};
use botwatch_share::stix::{Exporter, Producer, Row};

fn main() {
    divan::main();
}

#[divan::bench(args = [100_000])]
fn stix_export_indicators(b: divan::Bencher, n: usize) {
    let subjects: Vec<String> =
        (0..n).map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)).collect();
    b.counter(divan::counter::ItemsCount::new(n)).bench_local(|| {
        let mut e = Exporter::new(
            Producer { name: "bench".into(), country: None, contact: None, default_tlp: Tlp::Amber },
            vec!["c2-server".into()],
        );
        let mut bytes = 0usize;
        for (i, s) in subjects.iter().enumerate() {
            let r = Row {
                subject: s,
                classification_type: "c2-server",
                family: if i % 2 == 0 { "emotet" } else { "qakbot" },
                first_seen: Timestamp(1_700_000_000_000_000 + i as i64),
                last_seen: Timestamp(1_700_100_000_000_000 + i as i64),
                count: 3,
                confidence: 80.0,
                tlp: None,
                home: false,
                sources: 1,
            };
            e.row(&r, &mut |o| bytes += o.body.len());
        }
        bytes
    });
}

//! Replays the matcher-snapshot fuzz corpus on stable, and every truncation and byte flip
//! of a real snapshot body: each either reads back and answers look-ups, or is refused.

use botwatch_model::Timestamp;
use botwatch_telemetry::matcher::{Indicator, IndicatorValue, Matcher, fuzzing};
use std::path::Path;

#[test]
fn every_snapshot_corpus_entry_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/telemetry_matcher_snapshot");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display())) {
        fuzzing::snapshot(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 3, "corpus too small: {n}");
}

#[test]
fn damaged_snapshot_bodies_never_panic() {
    let ind = |v: IndicatorValue| Indicator {
        value: v,
        source_id: 1,
        label: "x".into(),
        feeds: "f".into(),
        valid_from: Timestamp::from_secs(100),
        valid_until: Timestamp::from_secs(200),
    };
    let m = Matcher::build([
        ind(IndicatorValue::Ip("198.51.100.7".parse().unwrap())),
        ind(IndicatorValue::Net("2001:db8::/32".parse().unwrap())),
        ind(IndicatorValue::Domain("evil.example".into())),
    ]);
    let body = fuzzing::seed(&m);
    // Each try decodes up to the whole body (megabytes: the filters are fixed-size), so
    // sample: every boundary in the first bytes (the lengths and small columns), then
    // evenly through the rest.
    let spread = (0..64).map(|k| k * body.len() / 64);
    for cut in (0..96).chain(spread.clone()) {
        fuzzing::snapshot(&body[..cut.min(body.len())]);
    }
    for i in (0..96).chain(spread) {
        let mut bad = body.clone();
        bad[i] ^= 0xa5;
        fuzzing::snapshot(&bad);
    }
}

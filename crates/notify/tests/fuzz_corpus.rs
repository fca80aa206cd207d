//! Replays the notify fuzz corpus on stable through the cargo-fuzz entry points.

use botwatch_notify::fuzzing;
use std::path::Path;

#[test]
fn every_corpus_entry_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for t in fuzzing::TARGETS {
        let dir = root.join(t);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("no corpus for {t} at {}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(entries.len() >= 3, "{t}: corpus too small");
        for p in entries {
            fuzzing::run(t, &std::fs::read(&p).unwrap());
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        for t in fuzzing::TARGETS {
            fuzzing::run(t, &data);
        }
    }
}

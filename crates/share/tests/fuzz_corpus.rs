//! Replays the `share_objects` fuzz corpus on stable: what a partner could send (federated
//! cells, signed bars, cursors, markings) never panics the reader.

#[test]
fn every_share_corpus_entry_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/share_objects");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display())) {
        botwatch_share::fuzz(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 5, "corpus too small: {n}");
}

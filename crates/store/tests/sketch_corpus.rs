//! Replays the `store_sketch` fuzz corpus on stable: every stored-sketch blob is refused or
//! reads back consistently.

#[test]
fn every_sketch_corpus_entry_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store_sketch");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display())) {
        botwatch_store::sketch::fuzz(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 5, "corpus too small: {n}");
}

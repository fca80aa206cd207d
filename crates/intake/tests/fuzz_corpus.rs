//! Replays the `intake_mail` fuzz corpus on stable: mails, mboxes and API listings of every
//! shape never panic the readers.

#[test]
fn every_intake_corpus_entry_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/intake_mail");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display())) {
        botwatch_intake::fuzz(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 8, "corpus too small: {n}");
}

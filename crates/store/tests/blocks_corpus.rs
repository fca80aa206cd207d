//! Replays the `store_blocks` fuzz corpus on stable: any bytes as a stored event block are
//! refused or read back, never a panic. The seeds are a real block's frames
//! (`blocks::sample`) and damaged copies of them; `BOTWATCH_WRITE_SEEDS=1` writes them again.

#[test]
fn every_block_corpus_entry_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store_blocks");
    let (lean, body) = botwatch_store::blocks::sample();
    let mut seeds = vec![("lean", lean.clone()), ("body", body.clone())];
    for (name, frame) in [("lean", &lean), ("body", &body)] {
        seeds.push((if name == "lean" { "lean-cut" } else { "body-cut" }, frame[..frame.len() / 2].to_vec()));
        let mut flipped = frame.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x5a;
        seeds.push((if name == "lean" { "lean-flipped" } else { "body-flipped" }, flipped));
    }
    if std::env::var_os("BOTWATCH_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
    for (_, bytes) in &seeds {
        botwatch_store::blocks::fuzz(bytes);
    }
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display())) {
        botwatch_store::blocks::fuzz(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 6, "corpus too small: {n}");
}

//! The sensors' detectors on every labelled capture in ../shared/data/flows (or
//! `$BOTWATCH_SHARED_DATA/flows`), scored per client as `botwatch eval flows` prints it. Pins
//! the figures in bench/README.md ("Sensors on labelled captures"): no benign or Internet host
//! flagged anywhere, every infected client found but in the captures listed as known misses.
//!
//! `cargo test -p botwatch --test eval_captures -- --nocapture`

use botwatch::eval::{self, Truth};
use botwatch::sensor::SensorSection;
use std::path::PathBuf;

fn flows_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BOTWATCH_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.join("flows").is_dir().then(|| dir.join("flows"))
}

/// Captures whose infected client the detectors miss today, and why (bench/README.md): an
/// Android capture whose truth names no malicious flow, and a Kovter capture with 14 DNS
/// records and no C2 series.
const KNOWN_MISSES: [&str; 2] = ["test2-malicious.binetflow", "009-zeek-malicious"];

#[test]
fn labelled_captures_flag_infected_clients_only() {
    let Some(dir) = flows_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data/flows absent");
        return;
    };
    let truth = Truth::builtin().unwrap();
    let caps = eval::captures(&[dir]).unwrap();
    let cfg = SensorSection::default();
    let scores: Vec<eval::Score> =
        caps.iter().map(|c| eval::evaluate(c, &truth, &cfg, &Default::default())).collect();
    for s in &scores {
        println!(
            "{}: infected {:?} found {:?} missed {:?}; benign flagged {:?} of {}; Internet flagged {:?} of {}{}",
            s.capture,
            s.infected,
            s.found.iter().map(|f| f.client).collect::<Vec<_>>(),
            s.missed,
            s.benign_flagged.iter().map(|f| (f.client, &f.reasons)).collect::<Vec<_>>(),
            s.benign_hosts,
            s.internet_flagged.iter().map(|f| (f.client, &f.reasons)).collect::<Vec<_>>(),
            s.internet_hosts,
            s.skipped.as_deref().map(|w| format!(" (skipped: {w})")).unwrap_or_default()
        );
    }
    let t = eval::totals(&scores);
    println!("{t:?}");
    assert!(t.captures >= 14, "captures scored: {}", t.captures);
    assert_eq!(t.benign_flagged, 0, "benign internal hosts flagged");
    assert_eq!(t.internet_flagged, 0, "Internet hosts flagged as infected clients");
    assert!(t.benign_hosts >= 17 && t.internet_hosts >= 3000, "{t:?}");
    for s in scores.iter().filter(|s| s.skipped.is_none() && !s.missed.is_empty()) {
        assert!(
            KNOWN_MISSES.iter().any(|k| s.capture.ends_with(k)),
            "{}: infected clients missed {:?}",
            s.capture,
            s.missed
        );
    }
    assert!(t.found >= 10, "infected found {} of {}", t.found, t.infected);
    // A sensor cannot flag a client before the evidence its finding rests on has arrived.
    for f in scores.iter().flat_map(|s| &s.found) {
        let d = f.detected_after_secs.expect("detection time of a found client");
        assert!(
            d + 1.0 >= f.first_evidence_secs,
            "{}: flagged after {d} s, evidence after {} s",
            f.client,
            f.first_evidence_secs
        );
    }
}

/// Zeek archives its logs gzipped: a capture whose conn.log is gzipped scores as the plain one.
#[test]
fn a_gzipped_capture_scores_as_the_plain_one() {
    let Some(dir) = flows_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data/flows absent");
        return;
    };
    let plain = dir.join("slips_dataset/test18-malicious-ctu-sme-11-win");
    let tmp = tempfile::tempdir().unwrap();
    let packed = tmp.path().join("test18-gz");
    std::fs::create_dir(&packed).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &std::fs::read(plain.join("conn.log.labeled")).unwrap()).unwrap();
    std::fs::write(packed.join("conn.log.labeled.gz"), gz.finish().unwrap()).unwrap();
    std::fs::copy(plain.join("dns.log.labeled"), packed.join("dns.log.labeled")).unwrap();
    let truth = Truth::builtin().unwrap();
    let score = |d: PathBuf| {
        let caps = eval::captures(&[d]).unwrap();
        assert_eq!(caps.len(), 1, "{caps:?}");
        eval::evaluate(&caps[0], &truth, &SensorSection::default(), &Default::default())
    };
    let (a, b) = (score(plain), score(packed));
    assert!(b.unreadable.is_empty(), "{:?}", b.unreadable);
    assert_eq!((a.records, a.rejects, a.benign_hosts), (b.records, b.rejects, b.benign_hosts));
    assert_eq!(
        a.found.iter().map(|f| f.client).collect::<Vec<_>>(),
        b.found.iter().map(|f| f.client).collect::<Vec<_>>()
    );
    assert!(!b.found.is_empty());
}

//! Replays every lease fuzz corpus entry through the same entry point as the cargo-fuzz
//! targets, on stable, plus truncations of each sample and a long garbage line.

use botwatch_enrich::leases::{self, Format, fuzzing};
use std::path::Path;

#[test]
fn every_corpus_entry_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut n = 0;
    for t in fuzzing::TARGETS {
        let dir = root.join(t);
        let rd = std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus for {t} at {}", dir.display()));
        for f in rd {
            let data = std::fs::read(f.unwrap().path()).unwrap();
            fuzzing::run(t, &data);
            n += 1;
        }
    }
    assert!(n >= 20, "corpus too small: {n}");
}

#[test]
fn truncated_samples_and_garbage_never_panic_and_reject_with_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leases");
    let mut garbage = vec![b'x'; 8 << 20];
    garbage.extend_from_slice(b"\n\x00\xff{{;;}}\n");
    for f in [
        "dhcpd.leases",
        "kea-leases4.csv",
        "kea-leases6.csv",
        "radius.detail",
        "juniper-pba.log",
        "cgnat.csv",
    ] {
        let src = std::fs::read(dir.join(f)).unwrap();
        let format = leases::detect(&src).unwrap();
        for cut in (1..src.len()).step_by(37) {
            let (_, rejects) = leases::parse_as(format, &src[..cut], f);
            assert!(rejects.iter().all(|r| r.line > 0 && !r.reason.is_empty()), "{f} cut at {cut}");
        }
        for fmt in Format::ALL {
            let (records, rejects) = leases::parse_as(fmt, &garbage, "garbage");
            assert!(records.is_empty(), "{fmt}: records from garbage");
            let raw: usize = rejects.iter().map(|r| r.raw.len()).sum();
            assert!(raw <= garbage.len() + 1024, "{fmt}: rejects larger than the input");
        }
    }
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leases");
        [
            "dhcpd.leases",
            "kea-leases4.csv",
            "kea-leases6.csv",
            "radius.detail",
            "juniper-pba.log",
            "cgnat.csv",
        ]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// A sample with a few bytes overwritten, through every target (a poor man's fuzzer
        /// that runs on stable in every test run).
        #[test]
        fn mutated_samples_never_panic(
            which in 0usize..6,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            target in 0usize..7,
        ) {
            let mut data = samples().swap_remove(which);
            for (i, b) in edits {
                let i = i.index(data.len());
                data[i] = b;
            }
            fuzzing::run(fuzzing::TARGETS[target], &data);
        }
    }
}

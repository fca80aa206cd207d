//! Replays every fuzz corpus entry (seeds and anything the fuzzers found and were
//! committed) through the same entry points as the cargo-fuzz targets, on stable, plus the
//! adversarial shapes the issue names: truncation, binary garbage, wrong delimiter, and a
//! single 100 MB line.

use botwatch_feeds::{ParseContext, fuzzing, registry};
use botwatch_model::{Collected, FamilyTable, Timestamp};
use bytes::Bytes;
use std::path::Path;

#[test]
fn every_corpus_entry_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut n = 0;
    for t in fuzzing::TARGETS {
        let dir = root.join(t);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            panic!("no corpus for fuzz target {t} at {}", dir.display())
        };
        for f in rd {
            let data = std::fs::read(f.unwrap().path()).unwrap();
            fuzzing::run(t, &data);
            n += 1;
        }
    }
    assert!(n > 50, "corpus too small: {n}");
}

#[test]
fn a_single_100_mb_line_is_one_reject_without_copying() {
    let mut line = vec![b'9'; 100 << 20];
    line.extend_from_slice(b"\n1.2.3.0/24 ; SBL1\n");
    let data = Bytes::from(line);
    let families = FamilyTable::default();
    for id in ["spamhaus_drop", "shadowserver_event4_sinkhole", "abusech_feodo_csv", "generic_ip_list"] {
        let spec = registry::get(id).unwrap();
        let ctx = ParseContext::new(&spec, None, Timestamp(0), &families);
        let mut out = Collected::default();
        spec.parser.parse(&data, &ctx, &mut out);
        let total: usize = out.rejects.iter().map(|r| r.raw.len()).sum::<usize>()
            + out.events.iter().map(|e| e.raw.len()).sum::<usize>();
        assert!(total <= data.len() + 64 * 1024, "{id}: output larger than input");
        assert!(!out.rejects.is_empty() || !out.events.is_empty(), "{id}: the long line vanished");
        // Raw bytes share the input buffer instead of copying 100 MB.
        for r in &out.rejects {
            if r.raw.len() > 1 << 20 {
                assert!(data.as_ptr_range().contains(&r.raw.as_ptr()), "{id}: long line was copied");
            }
        }
    }
}

#[test]
fn wrong_delimiter_and_truncation_on_shadowserver() {
    let src = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/shadowserver/event4_sinkhole_http.csv"),
    )
    .unwrap();
    let families = FamilyTable::default();
    let spec = registry::get("shadowserver_event4_sinkhole_http").unwrap();
    let ctx = ParseContext::new(&spec, None, Timestamp(0), &families);
    let semicolons: Vec<u8> = src.iter().map(|&c| if c == b',' { b';' } else { c }).collect();
    let mut out = Collected::default();
    spec.parser.parse(&Bytes::from(semicolons), &ctx, &mut out);
    assert!(out.events.is_empty());
    assert_eq!(
        out.rejects.len(),
        src.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count() - 1,
        "every data line rejected"
    );
    for cut in [1, src.len() / 3, src.len() / 2, src.len() - 1] {
        let mut out = Collected::default();
        spec.parser.parse(&Bytes::copy_from_slice(&src[..cut]), &ctx, &mut out);
        for r in &out.rejects {
            assert!(r.line > 0 && !r.reason.is_empty());
        }
    }
}

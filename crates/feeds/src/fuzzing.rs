//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus replay test, so
//! the code fuzzed is the code tested on stable.

use crate::{ParseContext, registry};
use botwatch_model::{Event, FamilyTable, Reject, Sink, Timestamp, Warning};
use bytes::Bytes;

/// Fuzz target names: one per provider, plus detection and decompression.
pub const TARGETS: &[&str] = &[
    "abusech",
    "bambenek",
    "blocklistde",
    "cymru",
    "dataplane",
    "decode",
    "detect",
    "dshield",
    "generic",
    "microsoft",
    "misp",
    "shadowserver",
    "spamhaus",
    "stix",
    "xarf",
];

/// Checks the invariants a parser owes every input, panicking (which is what a fuzzer
/// reports) when one breaks.
struct Check<'a>(&'a str);

impl Sink for Check<'_> {
    fn event(&mut self, e: Event) {
        assert!(e.line > 0, "{}: event without line", self.0);
        assert!(!e.raw.is_empty(), "{}: event without raw", self.0);
    }
    fn reject(&mut self, r: Reject) {
        assert!(r.line > 0 && !r.reason.is_empty(), "{}: reject without line or reason", self.0);
    }
    fn warning(&mut self, _: Warning) {}
}

/// Runs one fuzz target over `data`.
pub fn run(target: &str, data: &[u8]) {
    let families = FamilyTable::default();
    let bytes = Bytes::copy_from_slice(data);
    match target {
        "decode" => {
            let _ = crate::input::decode("x.gz", bytes.clone(), 1 << 24);
            // Streamed, under a tight ratio: a bomb stops, anything else reads to its end.
            let src = crate::input::Source::Bytes(bytes.clone());
            let limits = crate::input::Limits { max_bytes: 1 << 24, max_ratio: 4, max_document: 1 << 20 };
            if let Ok(members) = crate::input::members("x.csv.gz", &src) {
                for m in &members {
                    let _ = crate::input::with_reader(&src, m, &limits, 0, |r| {
                        let mut ch = crate::input::Chunker::new(r, crate::Chunking::Csv, 1024);
                        ch.by_ref().count()
                    });
                }
            }
            // Chunks of the plain bytes join to the input, each ending at a record end.
            for kind in [crate::Chunking::Csv, crate::Chunking::Lines] {
                let mut r: &[u8] = data;
                let mut ch = crate::input::Chunker::new(&mut r, kind, 1024);
                let parts: Vec<Bytes> = ch.by_ref().collect();
                assert!(ch.error.is_none());
                assert_eq!(parts.concat(), data, "chunks join to the input");
            }
        }
        "detect" => {
            let reg = registry::Registry::builtin();
            if let Ok(spec) = reg.detect(Some("report.csv"), data) {
                let ctx = ParseContext::new(spec, Some("report.csv"), Timestamp(0), &families);
                spec.parser.parse(&bytes, &ctx, &mut Check(&spec.id));
            }
        }
        provider => {
            // Every feed of the provider; Shadowserver's one parser per report type share
            // their code, so a sample of types is enough per input.
            let feeds = registry::all().iter().filter(|f| f.id.starts_with(&format!("{provider}_")));
            let step = if provider == "shadowserver" { 17 } else { 1 };
            for spec in feeds.step_by(step) {
                let ctx = ParseContext::new(
                    spec,
                    Some("2026-01-01-event4_sinkhole-x.csv"),
                    Timestamp(0),
                    &families,
                );
                spec.parser.parse(&bytes, &ctx, &mut Check(&spec.id));
            }
        }
    }
}

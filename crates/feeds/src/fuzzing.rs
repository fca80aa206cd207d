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
            let _ = crate::input::decode("x.gz", bytes, 1 << 24);
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

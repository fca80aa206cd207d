//! Replays the `telemetry_dnstap`, `telemetry_dnslog` and `telemetry_dnspcap` fuzz corpora
//! through the same entry points as the cargo-fuzz targets, on stable, plus mutations of the
//! real samples.

use botwatch_telemetry::dns::{self, DnsFormat, ReadOptions, fuzzing};
use std::path::Path;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display()));
    rd.map(|f| std::fs::read(f.unwrap().path()).unwrap()).collect()
}

#[test]
fn every_corpus_entry_replays_without_panic() {
    let tap = corpus("telemetry_dnstap");
    let log = corpus("telemetry_dnslog");
    assert!(tap.len() >= 5 && log.len() >= 5);
    for d in &tap {
        fuzzing::dnstap(d);
    }
    for d in &log {
        fuzzing::dnslog(d);
    }
    let pcap = corpus("telemetry_dnspcap");
    assert!(pcap.len() >= 5);
    for d in &pcap {
        fuzzing::dnspcap(d);
    }
}

#[test]
fn corrupt_seeds_are_rejects_not_silence() {
    for d in corpus("telemetry_dnstap") {
        let (records, rejects, stats) = dns::read_as(&d, DnsFormat::Dnstap, &ReadOptions::default());
        assert!(!records.is_empty() || !rejects.is_empty() || stats.frames > 0, "input vanished");
        for r in rejects {
            assert!(r.line > 0 && !r.reason.is_empty());
        }
    }
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns").join(rel)).unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Flipped bytes anywhere in the real dnstap file: frames around the damage still decode.
    #[test]
    fn mutated_dnstap_never_panics(flips in proptest::collection::vec((0usize..179_272, proptest::prelude::any::<u8>()), 1..8)) {
        let mut d = sample("generated_unbound/unbound.dnstap.fstrm");
        for (i, b) in flips {
            let n = d.len();
            d[i % n] ^= b | 1;
        }
        fuzzing::dnstap(&d);
    }

    #[test]
    fn mutated_pcap_never_panics(flips in proptest::collection::vec((0usize..7_000, proptest::prelude::any::<u8>()), 1..8)) {
        let mut d = sample("go-dnscollector/dnsdump_tcp.pcap");
        for (i, b) in flips {
            let n = d.len();
            d[i % n] ^= b | 1;
        }
        fuzzing::dnslog(&d);
        fuzzing::dnspcap(&d);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "(\\[?[0-9A-Za-z:#@. \\-\\]]{0,40}(query|reply|info|client)?: ?[0-9A-Za-z:#@. ()+\\-]{0,60}\n){0,6}") {
        fuzzing::dnslog(s.as_bytes());
    }
}

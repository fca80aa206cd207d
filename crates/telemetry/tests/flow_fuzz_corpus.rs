//! Replays the flow fuzz corpora through the cargo-fuzz entry points on stable, plus every
//! truncation and single-byte corruption of a real v9 and IPFIX export packet.

use botwatch_telemetry::flow::{Collector, fuzzing};
use std::net::SocketAddr;
use std::path::Path;

#[test]
fn every_flow_corpus_entry_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut n = 0;
    for (target, run) in [
        ("telemetry_netflow", fuzzing::netflow as fn(&[u8])),
        ("telemetry_flowlog", fuzzing::flowlog),
        ("telemetry_nfcapd", fuzzing::nfcapd),
    ] {
        let dir = root.join(target);
        let rd = std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("no corpus at {}", dir.display()));
        for f in rd {
            run(&std::fs::read(f.unwrap().path()).unwrap());
            n += 1;
        }
    }
    assert!(n >= 10, "corpus too small: {n}");
}

fn payloads(pcap: &str) -> Vec<Vec<u8>> {
    // Ethernet + IPv4 + UDP without options: 42 bytes before the export packet.
    let d = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows").join(pcap)).unwrap();
    let mut off = 24;
    let mut v = Vec::new();
    while off + 16 <= d.len() {
        let cap = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        v.push(d[off + 16 + 42..off + 16 + cap].to_vec());
        off += 16 + cap;
    }
    v
}

#[test]
fn truncated_and_corrupted_packets_are_counted_never_fatal() {
    let ex: SocketAddr = "192.0.2.9:2055".parse().unwrap();
    for pcap in ["slips_netflow/test7-malicious_netflow_v9_export.pcap", "akvorado/data+templates.pcap"] {
        let p = payloads(pcap);
        let first = &p[0];
        let mut c = Collector::new();
        let mut out = Vec::new();
        for cut in 0..first.len() {
            let _ = c.decode(ex, &first[..cut], &mut out);
        }
        assert!(c.counters().malformed > 0, "{pcap}");
        for i in 0..first.len().min(400) {
            let mut bad = first.clone();
            bad[i] ^= 0xa5;
            let _ = c.decode(ex, &bad, &mut out);
        }
        // After all that, the real packets still decode with the same collector.
        let mut fresh = Vec::new();
        for pkt in &p {
            let _ = c.decode(ex, pkt, &mut fresh);
        }
        assert!(!fresh.is_empty(), "{pcap}");
        assert_eq!(c.counters().records as usize, out.len() + fresh.len());
    }
}

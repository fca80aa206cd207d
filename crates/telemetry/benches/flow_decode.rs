//! NetFlow v9 and IPFIX decoding throughput (records/s) over the real export captures in
//! tests/data/flows, each replayed many times through one collector (templates stay cached,
//! as in a long-running collector).
//!   cargo bench -p botwatch-telemetry --bench flow_decode

use botwatch_telemetry::flow::Collector;
use divan::Bencher;
use divan::counter::ItemsCount;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

const REPLAYS: usize = 50;

fn main() {
    divan::main();
}

/// (exporter, export packet) of every UDP datagram with the given NetFlow version.
fn packets(files: &[&str], version: u16) -> Vec<(SocketAddr, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows");
    let mut v = Vec::new();
    for f in files {
        let d = std::fs::read(dir.join(f)).unwrap();
        let slice = pcap_parser::LegacyPcapSlice::from_slice(&d).unwrap();
        for b in slice {
            let pcap_parser::PcapBlockOwned::Legacy(b) = b.unwrap() else { continue };
            let Ok(p) = SlicedPacket::from_ethernet(b.data) else { continue };
            let src: IpAddr = match p.net {
                Some(NetSlice::Ipv4(x)) => x.header().source_addr().into(),
                Some(NetSlice::Ipv6(x)) => x.header().source_addr().into(),
                _ => continue,
            };
            if let Some(TransportSlice::Udp(u)) = p.transport
                && u.payload().get(..2) == Some(&version.to_be_bytes())
            {
                v.push((SocketAddr::new(src, u.source_port()), u.payload().to_vec()));
            }
        }
    }
    v
}

fn run(bencher: Bencher, pkts: &[(SocketAddr, Vec<u8>)]) {
    let mut c = Collector::new();
    let mut out = Vec::new();
    for (ex, p) in pkts {
        let _ = c.decode(*ex, p, &mut out);
    }
    let per_pass = out.len();
    assert!(per_pass > 0);
    bencher.counter(ItemsCount::new(per_pass * REPLAYS)).bench_local(|| {
        let mut out = Vec::with_capacity(per_pass);
        for _ in 0..REPLAYS {
            out.clear();
            for (ex, p) in pkts {
                let _ = c.decode(*ex, p, &mut out);
            }
        }
        out.len()
    });
}

#[divan::bench]
fn netflow_v9(bencher: Bencher) {
    let pkts = packets(
        &[
            "slips_netflow/test7-malicious_netflow_v9_export.pcap",
            "slips_netflow/test-cc-capture-2_netflow_v9_export.pcap",
        ],
        9,
    );
    run(bencher, &pkts);
}

#[divan::bench]
fn netflow_v5(bencher: Bencher) {
    let pkts = packets(
        &[
            "slips_netflow/test7-malicious_netflow_v5_export.pcap",
            "slips_netflow/test-cc-capture-2_netflow_v5_export.pcap",
        ],
        5,
    );
    run(bencher, &pkts);
}

#[divan::bench]
fn ipfix(bencher: Bencher) {
    // Templates first, then data, as an exporter sends them.
    let pkts = packets(
        &[
            "akvorado/ipfixprobe-templates.pcap",
            "akvorado/ipfixprobe-data.pcap",
            "akvorado/data+templates.pcap",
            "akvorado/nat.pcap",
            "akvorado/physicalinterfaces.pcap",
        ],
        10,
    );
    run(bencher, &pkts);
}

//! NetFlow v9 and IPFIX decoding throughput (records/s) over the real export captures in
//! tests/data/flows, each replayed many times through one collector (templates stay cached,
//! as in a long-running collector); nfcapd file decoding over the committed nfpcapd file's
//! data block repeated (uncompressed and LZ4), or over the file named by `BOTWATCH_NFCAPD`.
//!   cargo bench -p botwatch-telemetry --bench flow_decode
//!   BOTWATCH_NFCAPD=/path/nfcapd.202611240000 cargo bench -p botwatch-telemetry --bench flow_decode -- nfcapd

use botwatch_telemetry::flow::{Collector, nfcapd};
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

/// The data block of a committed nfcapd file, `copies` times behind its own header (appendix
/// dropped): a file of realistic records of any size without nfdump at bench time.
fn nfcapd_repeated(name: &str, copies: u32) -> Vec<u8> {
    let d = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows/nfcapd").join(name))
        .unwrap();
    let size = u32::from_le_bytes(d[44..48].try_into().unwrap()) as usize;
    let block = &d[40..52 + size];
    let mut f = d[..40].to_vec();
    f[18..20].fill(0);
    f[24..32].fill(0);
    f[36..40].copy_from_slice(&copies.to_le_bytes());
    for _ in 0..copies {
        f.extend_from_slice(block);
    }
    f
}

fn run_nfcapd(bencher: Bencher, data: &[u8]) {
    let count = || {
        let mut n = 0u64;
        let st =
            nfcapd::read_nfcapd(data, |r| n += u64::from(divan::black_box(r).proto > 0), &mut Vec::new());
        st.map(|s| (s.records, n)).unwrap()
    };
    let (records, _) = count();
    assert!(records > 0);
    bencher.counter(ItemsCount::new(records as usize)).bench_local(count);
}

#[divan::bench]
fn nfcapd_plain(bencher: Bencher) {
    let data = match std::env::var_os("BOTWATCH_NFCAPD") {
        Some(p) => std::fs::read(p).unwrap(),
        None => nfcapd_repeated("test7-malicious.nfcapd", 200),
    };
    run_nfcapd(bencher, &data);
}

/// The same file read block by block from disk (page cache), as `botwatch scan` reads it.
#[divan::bench]
fn nfcapd_plain_file(bencher: Bencher) {
    let (path, _tmp) = match std::env::var_os("BOTWATCH_NFCAPD") {
        Some(p) => (std::path::PathBuf::from(p), None),
        None => {
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), nfcapd_repeated("test7-malicious.nfcapd", 200)).unwrap();
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let count = || {
        let mut n = 0u64;
        let f = std::fs::File::open(&path).unwrap();
        let st =
            nfcapd::read_nfcapd_from(f, |r| n += u64::from(divan::black_box(r).proto > 0), &mut Vec::new());
        st.map(|s| (s.records, n)).unwrap()
    };
    let (records, _) = count();
    assert!(records > 0);
    bencher.counter(ItemsCount::new(records as usize)).bench_local(count);
}

#[divan::bench]
fn nfcapd_lz4(bencher: Bencher) {
    run_nfcapd(bencher, &nfcapd_repeated("test7-malicious.lz4.nfcapd", 200));
}

//! DNS telemetry decoding throughput (records/s) over the real samples, replayed 20 times:
//! the generated Unbound resolver's dnstap file (840 exchanges, 1,680 frames) and its
//! query/reply log (1,682 lines), plus the go-dnscollector TCP capture; and generated UDP
//! captures of the shape `bench/gen_dns.py` writes (100,000 A queries from 65,536 clients over
//! 1,800 s, or 50,000 queries each answered), streamed as `botwatch scan` reads them.
//!
//! `cargo bench -p botwatch-telemetry --bench dns_decode`

use botwatch_model::parse_timestamp;
use botwatch_telemetry::dns::{self, DnsFormat, DnsSink, ReadOptions, fstrm};
use botwatch_telemetry::record::DnsRecord;
use divan::counter::{BytesCount, ItemsCount};
use std::path::Path;

const REPLAYS: usize = 20;

fn main() {
    divan::main();
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns").join(rel)).unwrap()
}

fn opts() -> ReadOptions {
    ReadOptions { reference: parse_timestamp("2026-11-26T00:00:00Z") }
}

/// The sample's data frames repeated between one START and STOP, as a long capture would be.
fn dnstap_replayed() -> Vec<u8> {
    let file = sample("generated_unbound/unbound.dnstap.fstrm");
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Ok(Some((f, used))) = fstrm::parse_frame(&file[pos..], fstrm::MAX_DATA_FRAME) {
        if let fstrm::Frame::Data(d) = f {
            frames.extend(fstrm::encode_data(d));
        }
        pos += used;
    }
    let mut out = fstrm::encode_control(fstrm::START, Some(fstrm::CONTENT_TYPE));
    for _ in 0..REPLAYS {
        out.extend_from_slice(&frames);
    }
    out.extend(fstrm::encode_control(fstrm::STOP, None));
    out
}

fn run(bencher: divan::Bencher, input: Vec<u8>, format: DnsFormat) {
    let (records, rejects, _) = dns::read_as(&input, format, &opts());
    assert!(rejects.is_empty() && !records.is_empty());
    bencher
        .counter(ItemsCount::new(records.len()))
        .counter(BytesCount::new(input.len()))
        .bench(|| dns::read_as(divan::black_box(&input), format, &opts()));
}

#[divan::bench]
fn dnstap_unbound_x20(bencher: divan::Bencher) {
    run(bencher, dnstap_replayed(), DnsFormat::Dnstap);
}

#[divan::bench]
fn unbound_query_reply_log_x20(bencher: divan::Bencher) {
    let log = sample("generated_unbound/unbound_querylog_replylog.log");
    run(bencher, log.repeat(REPLAYS), DnsFormat::UnboundLog);
}

#[divan::bench]
fn pcap_tcp_single(bencher: divan::Bencher) {
    run(bencher, sample("go-dnscollector/dnsdump_tcp.pcap"), DnsFormat::Pcap);
}

/// Little-endian pcap, Ethernet link type.
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    for v in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65535, 1] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

/// One Ethernet/IPv4/UDP frame as a pcap record.
fn udp_record(out: &mut Vec<u8>, t_us: u64, src: [u8; 4], dst: [u8; 4], ports: (u16, u16), dns: &[u8]) {
    let ip_len = (28 + dns.len()) as u16;
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&ports.0.to_be_bytes());
    f.extend_from_slice(&ports.1.to_be_bytes());
    f.extend_from_slice(&(8 + dns.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(dns);
    for v in [(t_us / 1_000_000) as u32, (t_us % 1_000_000) as u32, f.len() as u32, f.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&f);
}

/// `n` A queries (and, when `answered`, each one's response with one A record).
fn generated_capture(n: u32, answered: bool) -> Vec<u8> {
    let tlds = ["com", "net", "org", "info", "ru", "top"];
    let words = ["mail", "www", "cdn", "api", "static", "img", "login", "news", "shop", "video"];
    let mut out = pcap_header();
    let resolver = [10, 0, 0, 53];
    for i in 0..n {
        let k = i.wrapping_mul(2_654_435_761);
        let name = format!("{}.site{}.{}", words[(k % 10) as usize], k % 200_000, tlds[(k % 6) as usize]);
        let mut q = Vec::with_capacity(64);
        q.extend_from_slice(&(i as u16).to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let client = [10, 1, (i >> 8) as u8, i as u8];
        let port = 1024 + ((i >> 16) * 16 + i % 16) as u16;
        let t = 1_795_478_400_000_000 + u64::from(i) * 1_800_000_000 / u64::from(n);
        udp_record(&mut out, t, client, resolver, (port, 53), &q);
        if answered {
            let mut r = q.clone();
            r[2] = 0x81;
            r[3] = 0x80;
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, i as u8]);
            udp_record(&mut out, t + 900, resolver, client, (53, port), &r);
        }
    }
    out
}

/// Counts what `read_into` streams; the records are dropped as `scan` drops its misses.
#[derive(Default)]
struct Count(usize);

impl DnsSink for Count {
    fn record(&mut self, r: DnsRecord) {
        self.0 += usize::from(!r.qname.is_empty());
    }
}

fn run_streamed(bencher: divan::Bencher, input: Vec<u8>) {
    let mut c = Count::default();
    let stats = dns::read_into(&input, DnsFormat::Pcap, &opts(), &mut c);
    assert!(stats.rejects == 0 && c.0 > 0);
    bencher.counter(ItemsCount::new(c.0)).counter(BytesCount::new(input.len())).bench(|| {
        let mut c = Count::default();
        dns::read_into(divan::black_box(&input), DnsFormat::Pcap, &opts(), &mut c);
        c.0
    });
}

#[divan::bench]
fn pcap_udp_queries_100k_streamed(bencher: divan::Bencher) {
    run_streamed(bencher, generated_capture(100_000, false));
}

#[divan::bench]
fn pcap_udp_exchanges_50k_streamed(bencher: divan::Bencher) {
    run_streamed(bencher, generated_capture(50_000, true));
}

#[divan::bench]
fn pcap_udp_queries_100k_collected(bencher: divan::Bencher) {
    run(bencher, generated_capture(100_000, false), DnsFormat::Pcap);
}

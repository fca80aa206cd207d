//! DNS telemetry decoding throughput (records/s) over the real samples, replayed 20 times:
//! the generated Unbound resolver's dnstap file (840 exchanges, 1,680 frames) and its
//! query/reply log (1,682 lines), plus the go-dnscollector TCP capture.
//!
//! `cargo bench -p botwatch-telemetry --bench dns_decode`

use botwatch_model::parse_timestamp;
use botwatch_telemetry::dns::{self, DnsFormat, ReadOptions, fstrm};
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

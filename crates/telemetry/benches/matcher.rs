//! The compiled indicator matcher at ISP scale: 1,000,000 indicators (IPv4/IPv6 addresses
//! and CIDRs; domains), decoded flow records and DNS names looked up on one core.
//!
//! `cargo bench -p botwatch-telemetry --bench matcher`

use botwatch_model::Timestamp;
use botwatch_telemetry::matcher::{Indicator, IndicatorValue, Matcher};
use botwatch_telemetry::record::FlowRecord;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

fn main() {
    divan::main();
}

const N: usize = 1_000_000;

mod common;
use common::Rng;

fn indicator(value: IndicatorValue, i: usize) -> Indicator {
    Indicator {
        value,
        source_id: i as i64,
        label: "c2".into(),
        feeds: "bench".into(),
        valid_from: Timestamp::from_secs(0),
        valid_until: Timestamp::from_secs(4_000_000_000),
    }
}

/// 1M address indicators: 60 % IPv4 hosts, 15 % IPv4 CIDRs (/16–/30), 20 % IPv6 hosts,
/// 5 % IPv6 CIDRs (/32–/64).
fn ip_indicators() -> Vec<Indicator> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..N)
        .map(|i| {
            let x = r.next();
            let v = match i % 20 {
                0..=11 => IndicatorValue::Ip(IpAddr::V4(Ipv4Addr::from(x as u32))),
                12..=14 => {
                    let len = 16 + (x >> 40) as u8 % 15;
                    IndicatorValue::Net(
                        ipnet::Ipv4Net::new(Ipv4Addr::from(x as u32), len).unwrap().trunc().into(),
                    )
                }
                15..=18 => IndicatorValue::Ip(IpAddr::V6(Ipv6Addr::from(
                    (0x2001u128 << 112) | ((x as u128) << 32) | (r.next() as u128 & 0xffff_ffff),
                ))),
                _ => {
                    let len = 32 + (x >> 50) as u8 % 33;
                    let a = Ipv6Addr::from((0x2a00u128 << 112) | ((x as u128) << 48));
                    IndicatorValue::Net(ipnet::Ipv6Net::new(a, len).unwrap().trunc().into())
                }
            };
            indicator(v, i)
        })
        .collect()
}

fn words(r: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| A[(r.next() % A.len() as u64) as usize] as char).collect()
}

const TLDS: [&str; 6] = ["com", "net", "org", "ru", "info", "co.uk"];

fn domain_indicators() -> Vec<Indicator> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    (0..N)
        .map(|i| {
            let len = 6 + (r.next() % 10) as usize;
            let d = format!("{}.{}", words(&mut r, len), TLDS[i % TLDS.len()]);
            indicator(IndicatorValue::Domain(d), i)
        })
        .collect()
}

fn ip_matcher() -> &'static (Matcher, Vec<FlowRecord>) {
    static M: OnceLock<(Matcher, Vec<FlowRecord>)> = OnceLock::new();
    M.get_or_init(|| {
        let inds = ip_indicators();
        // Flows: one in 50 goes to a listed host, the rest to random addresses (some of
        // which fall into listed CIDRs).
        let mut r = Rng(42);
        let listed: Vec<IpAddr> = inds
            .iter()
            .filter_map(|i| match i.value {
                IndicatorValue::Ip(ip) => Some(ip),
                _ => None,
            })
            .collect();
        let flows = (0..N)
            .map(|i| {
                let x = r.next();
                let dst = if i % 50 == 0 {
                    listed[(x % listed.len() as u64) as usize]
                } else if i % 5 == 0 {
                    IpAddr::V6(Ipv6Addr::from(((0x2001u128) << 112) | x as u128))
                } else {
                    IpAddr::V4(Ipv4Addr::from((x >> 8) as u32))
                };
                FlowRecord {
                    start: Timestamp::from_secs(1_800_000_000),
                    end: Timestamp::from_secs(1_800_000_001),
                    src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (x as u32 & 0x00ff_ffff))),
                    dst,
                    src_port: 40000,
                    dst_port: 443,
                    proto: 6,
                    packets: 3,
                    bytes: 300,
                    resp_bytes: None,
                    exporter: None,
                    answered: None,
                    local_orig: None,
                    local_resp: None,
                }
            })
            .collect();
        (Matcher::build(inds), flows)
    })
}

fn dns_matcher() -> &'static (Matcher, Vec<String>) {
    static M: OnceLock<(Matcher, Vec<String>)> = OnceLock::new();
    M.get_or_init(|| {
        let inds = domain_indicators();
        let mut r = Rng(7);
        let names = (0..N)
            .map(|i| {
                if i % 50 == 0 {
                    // A subdomain of a listed domain.
                    let IndicatorValue::Domain(d) = &inds[(r.next() % N as u64) as usize].value else {
                        unreachable!()
                    };
                    format!("www.{d}")
                } else {
                    let len = 5 + (r.next() % 12) as usize;
                    format!("{}.{}.{}", words(&mut r, 3), words(&mut r, len), TLDS[i % TLDS.len()])
                }
            })
            .collect();
        (Matcher::build(inds), names)
    })
}

#[divan::bench(sample_count = 3)]
fn build_1m_ip_indicators(b: divan::Bencher) {
    let inds = ip_indicators();
    b.counter(divan::counter::ItemsCount::new(N)).bench(|| Matcher::build(inds.clone()));
}

#[divan::bench(sample_count = 3)]
fn build_1m_domain_indicators(b: divan::Bencher) {
    let inds = domain_indicators();
    b.counter(divan::counter::ItemsCount::new(N)).bench(|| Matcher::build(inds.clone()));
}

/// Both ends of every flow looked up.
#[divan::bench(sample_count = 10)]
fn flows_vs_1m_ip_indicators(b: divan::Bencher) {
    let (m, flows) = ip_matcher();
    b.counter(divan::counter::ItemsCount::new(flows.len())).bench(|| {
        let mut hits = 0usize;
        for f in flows {
            hits +=
                m.match_ip(f.dst, f.start).is_some() as usize + m.match_ip(f.src, f.start).is_some() as usize;
        }
        divan::black_box(hits)
    });
}

/// Only the external end, as the sensor does once `[sensor] internal` names the ISP's own
/// address space (the internal end is never an indicator).
#[divan::bench(sample_count = 10)]
fn flows_vs_1m_ip_indicators_external_end(b: divan::Bencher) {
    let (m, flows) = ip_matcher();
    b.counter(divan::counter::ItemsCount::new(flows.len())).bench(|| {
        let mut hits = 0usize;
        for f in flows {
            hits += m.match_ip(f.dst, f.start).is_some() as usize;
        }
        divan::black_box(hits)
    });
}

#[divan::bench(sample_count = 10)]
fn dns_names_vs_1m_domains(b: divan::Bencher) {
    let (m, names) = dns_matcher();
    let t = Timestamp::from_secs(1_800_000_000);
    b.counter(divan::counter::ItemsCount::new(names.len())).bench(|| {
        let mut hits = 0usize;
        for n in names {
            hits += m.match_domain(n, t).is_some() as usize;
        }
        divan::black_box(hits)
    });
}

#[divan::bench(sample_count = 1)]
fn memory_of_1m_indicators() {
    let (m, _) = ip_matcher();
    let (d, _) = dns_matcher();
    eprintln!("\nmatcher heap: 1M address indicators {:?}; 1M domains {:?}", m.stats(), d.stats());
}

//! The DNS detector at resolver scale: 200,000 answered queries from 2,000 clients over an
//! hour through `DnsDetector::observe`, then `finish`, on one core. Each client draws its
//! queries from its own few hundred of 5,000 popular names, which many clients share (about
//! one query in eight repeats a name the same client asked before); about one answer in
//! eight is NXDOMAIN (a popular name mistyped or with a search suffix appended); one client
//! in fifty runs a DGA (a fresh random name each time, all NXDOMAIN). Names are built from
//! the committed word list, so the bench needs no data files.
//!
//! `cargo bench -p botwatch-telemetry --bench dns_detect`

use botwatch_model::Timestamp;
use botwatch_telemetry::detect::{DnsDetector, DnsDetectorConfig};
use botwatch_telemetry::record::DnsRecord;
use divan::counter::ItemsCount;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

mod common;
use common::Rng;

fn main() {
    divan::main();
}

const N: usize = 200_000;
const CLIENTS: u32 = 2_000;
const SUFFIXES: [&str; 8] = ["com", "net", "org", "de", "co.uk", "com.au", "io", "info"];

fn records() -> &'static [DnsRecord] {
    static R: OnceLock<Vec<DnsRecord>> = OnceLock::new();
    R.get_or_init(|| {
        let words: Vec<&str> =
            include_str!("../data/dga_words.txt").lines().filter(|w| w.len() >= 3).collect();
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let pick = |r: &mut Rng, n: usize| (r.next() % n as u64) as usize;
        // 5,000 popular names everybody asks, a few labels deep like real ones.
        let popular: Vec<String> = (0..5_000)
            .map(|i| {
                let (a, b) = (words[pick(&mut r, words.len())], words[pick(&mut r, words.len())]);
                let host = ["www", "api", "cdn", "mail", "static"][i % 5];
                format!("{host}.{a}{b}.{}", SUFFIXES[i % SUFFIXES.len()])
            })
            .collect();
        let mut t = 1_700_000_000_000_000i64;
        (0..N)
            .map(|_| {
                let x = r.next();
                let client = (x as u32) % CLIENTS;
                t += 3_600_000_000 / N as i64;
                let (qname, nx) = if client.is_multiple_of(50) && x >> 61 < 2 {
                    let len = 10 + (x >> 40) as usize % 10;
                    let label: String = (0..len).map(|_| (b'a' + (r.next() % 26) as u8) as char).collect();
                    (format!("{label}.{}", SUFFIXES[(x >> 20) as usize % 4]), true)
                } else if x >> 60 < 2 {
                    // This client's own NXDOMAINs: a typo or a name under its search suffix.
                    let name = &popular[(client as usize * 7 + (x >> 32) as usize % 40) % popular.len()];
                    (
                        if client.is_multiple_of(2) {
                            format!("{name}.lan")
                        } else {
                            name.replacen('.', "", 1)
                        },
                        true,
                    )
                } else {
                    (
                        popular[(client as usize * 13 + (x >> 24) as usize % 300) % popular.len()].clone(),
                        false,
                    )
                };
                DnsRecord {
                    time: Timestamp(t),
                    client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | client)),
                    client_port: None,
                    qname,
                    qtype: Cow::Borrowed("A"),
                    rcode: Some(Cow::Borrowed(if nx { "NXDOMAIN" } else { "NOERROR" })),
                    answers: Vec::new(),
                    server: Some(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1))),
                }
            })
            .collect()
    })
}

#[divan::bench(sample_count = 5)]
fn observe_and_finish(bencher: divan::Bencher) {
    let rs = records();
    bencher.counter(ItemsCount::new(rs.len())).bench(|| {
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        for r in rs {
            d.observe(r);
        }
        divan::black_box(d.finish().len())
    });
}

/// The same with the tunnel search off (`[sensor.dns.tunnel] min_names = 0` and
/// `[sensor.dns.tunnel.slow] min_names = 0`): what it costs.
#[divan::bench(sample_count = 5)]
fn observe_and_finish_without_tunnel_search(bencher: divan::Bencher) {
    let rs = records();
    let cfg = DnsDetectorConfig {
        tunnel: botwatch_telemetry::detect::tunnel::TunnelConfig {
            min_names: 0,
            slow: botwatch_telemetry::detect::tunnel::SlowBar { min_names: 0, ..Default::default() },
            ..Default::default()
        },
        ..Default::default()
    };
    bencher.counter(ItemsCount::new(rs.len())).bench(|| {
        let mut d = DnsDetector::new(cfg.clone());
        for r in rs {
            d.observe(r);
        }
        divan::black_box(d.finish().len())
    });
}

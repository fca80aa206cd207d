//! The flow detectors at sensor scale: 1,000,000 flow records from 5,000 internal clients
//! (browsing-like traffic to many destinations, one flow in ten to an unregistered port as
//! apps and games use, 2 % of clients beaconing, a few scanning) through the beacon and scan
//! detectors, `observe` per record and `finish` once, on one core; and all of them (beacon,
//! scan, upload, spam, flood) on one [`FlowMemory`], as a sensor runs them. Memory per tracked client is
//! printed once from the memory's own sizes.
//!
//! `cargo bench -p botwatch-telemetry --bench detect`

use botwatch_model::Timestamp;
use botwatch_telemetry::detect::beacon::{self, BeaconConfig, BeaconDetector};
use botwatch_telemetry::detect::flood::{self, FloodConfig};
use botwatch_telemetry::detect::flows::FlowMemory;
use botwatch_telemetry::detect::scan::{self, ScanConfig, ScanDetector};
use botwatch_telemetry::detect::scope::Scope;
use botwatch_telemetry::detect::spam::{self, SpamConfig};
use botwatch_telemetry::detect::upload::{self, UploadConfig};
use botwatch_telemetry::record::FlowRecord;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

fn main() {
    let mut m = FlowMemory::default();
    for r in flows() {
        m.observe(r);
    }
    let (clients, bytes) = m.state();
    println!(
        "state after {N} flows: {clients} clients, {:.1} MiB ({} B/client, {:.1} B/flow)",
        bytes as f64 / 1048576.0,
        bytes / clients.max(1),
        bytes as f64 / N as f64
    );
    divan::main();
}

const N: usize = 1_000_000;
const CLIENTS: u32 = 5_000;

mod common;
use common::Rng;

fn flows() -> &'static [FlowRecord] {
    static F: OnceLock<Vec<FlowRecord>> = OnceLock::new();
    F.get_or_init(|| {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut t = 1_700_000_000_000_000i64;
        (0..N)
            .map(|i| {
                let x = r.next();
                let client = (x as u32) % CLIENTS;
                t += 3_600_000_000 / (N as i64 / 24);
                let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | client));
                // One in fifty clients beacons to its C2; the rest browse 2,000 destinations.
                let (dst, port) = if client.is_multiple_of(50) && x >> 60 < 4 {
                    (IpAddr::V4(Ipv4Addr::new(203, 0, 113, (client % 200) as u8)), 8443)
                } else {
                    let d = (x >> 32) as u32 % 2_000;
                    let port = if (x >> 50).is_multiple_of(10) { 3_000 + d as u16 } else { 443 };
                    (IpAddr::V4(Ipv4Addr::from(0x5000_0000 | d)), port)
                };
                let start = Timestamp(t);
                FlowRecord {
                    start,
                    end: start,
                    src,
                    dst,
                    src_port: 30_000 + (i % 30_000) as u16,
                    dst_port: port,
                    proto: 6,
                    packets: 10,
                    bytes: 600 + (x >> 40) % 5_000,
                    resp_bytes: Some((600 + (x >> 40) % 5_000) / 3),
                    exporter: None,
                    answered: Some(!x.is_multiple_of(10)),
                    local_orig: None,
                    local_resp: None,
                }
            })
            .collect()
    })
}

fn beacon(b: divan::Bencher, finish: bool) {
    let f = flows();
    b.counter(divan::counter::ItemsCount::new(N)).bench(|| {
        let mut d = BeaconDetector::new(BeaconConfig::default());
        for r in f {
            d.observe(r);
        }
        if finish { d.finish(&Scope::default()).len() } else { d.dropped() as usize }
    });
}

#[divan::bench(sample_count = 5)]
fn beacon_observe_and_finish(b: divan::Bencher) {
    beacon(b, true);
}

/// `observe` alone (the flow memory), to tell the per-record cost from `finish`.
#[divan::bench(sample_count = 5)]
fn beacon_observe_only(b: divan::Bencher) {
    beacon(b, false);
}

#[divan::bench(sample_count = 5)]
fn scan_observe_and_finish(b: divan::Bencher) {
    let f = flows();
    b.counter(divan::counter::ItemsCount::new(N)).bench(|| {
        let mut d = ScanDetector::new(ScanConfig::default());
        for r in f {
            d.observe(r);
        }
        d.finish(&Scope::default()).len()
    });
}

/// What a sensor does: one memory of the flows, every flow detector's `find`.
#[divan::bench(sample_count = 5)]
fn all_flow_detectors_on_one_memory(b: divan::Bencher) {
    let f = flows();
    b.counter(divan::counter::ItemsCount::new(N)).bench(|| {
        let mut m = FlowMemory::default();
        for r in f {
            m.observe(r);
        }
        let scope = Scope::default();
        let s = scan::find(&m, &ScanConfig::default(), &scope).len();
        let u = upload::find(&m, &UploadConfig::default(), &scope).0.len();
        let sp = spam::find(&m, &SpamConfig::default(), &scope).0.len();
        let fl = flood::find(&m, &FloodConfig::default(), &scope).len();
        s + u + sp + fl + beacon::find(&mut m, &BeaconConfig::default(), &scope).0.len()
    });
}

fn filled() -> FlowMemory {
    let mut m = FlowMemory::default();
    for r in flows() {
        m.observe(r);
    }
    m
}

#[divan::bench(sample_count = 5)]
fn upload_find(b: divan::Bencher) {
    let m = filled();
    b.counter(divan::counter::ItemsCount::new(N))
        .bench(|| upload::find(&m, &UploadConfig::default(), &Scope::default()).0.len());
}

#[divan::bench(sample_count = 5)]
fn spam_find(b: divan::Bencher) {
    let m = filled();
    b.counter(divan::counter::ItemsCount::new(N))
        .bench(|| spam::find(&m, &SpamConfig::default(), &Scope::default()).0.len());
}

#[divan::bench(sample_count = 5)]
fn flood_find(b: divan::Bencher) {
    let m = filled();
    b.counter(divan::counter::ItemsCount::new(N))
        .bench(|| flood::find(&m, &FloodConfig::default(), &Scope::default()).len());
}

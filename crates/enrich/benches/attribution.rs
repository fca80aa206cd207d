//! Subscriber attribution at ISP scale: an index over 10,000,000 synthetic records (7 M DHCP
//! /32 leases, 3 M CGNAT port blocks), lookups per second on one core, and import speed
//! (parse + index) of generated dhcpd.leases and RADIUS detail files.
//!
//! `cargo bench -p botwatch-enrich --bench attribution`

use botwatch_enrich::leases::{self, Format};
use botwatch_enrich::subscriber::SubscriberIndex;
use botwatch_model::{LeaseRecord, Timestamp};
use divan::counter::ItemsCount;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

fn main() {
    divan::main();
}

const T0: i64 = 1_795_000_000;
const DHCP_ADDRS: u32 = 2_000_000;
const LEASES_PER_ADDR: u32 = 3; // + one open lease every other address → 7 M
const NAT_IPS: u32 = 5_000;
const NAT_BLOCKS: u32 = 60; // 1,024 ports each from 1024
const NAT_SLOTS: u32 = 10; // → 3 M
const SLOT: i64 = 86_400;
const SUBSCRIBERS: u32 = 1_000_000;
/// Lookups per timed iteration, so timer overhead does not count.
const BATCH: usize = 10_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn sub(n: u32) -> String {
    format!("line-{:07}", n % SUBSCRIBERS)
}

fn records() -> Vec<LeaseRecord> {
    let mut v = Vec::with_capacity(10_000_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ids = |s: &str| vec![("mac".to_string(), format!("52:54:{}", &s[5..]))];
    for a in 0..DHCP_ADDRS {
        let ip = Ipv4Addr::from(0x0a00_0000 + a);
        let n = LEASES_PER_ADDR + (a % 2);
        for k in 0..n {
            let s = sub(rng.next() as u32);
            let start = T0 + k as i64 * SLOT;
            let end = if k + 1 == n && a % 2 == 1 { None } else { Some(start + SLOT - 600) };
            v.push(LeaseRecord {
                ip: IpAddr::V4(ip).into(),
                ports: None,
                start: Timestamp::from_secs(start),
                end: end.map(Timestamp::from_secs),
                identifiers: ids(&s),
                subscriber: s,
                source: "dhcpd:synthetic".into(),
                line: v.len() as u64 + 1,
            });
        }
    }
    for p in 0..NAT_IPS {
        let ip = Ipv4Addr::from(0xcb00_7100 + p); // 203.0.113.0 onwards
        for b in 0..NAT_BLOCKS {
            for k in 0..NAT_SLOTS {
                let s = sub(rng.next() as u32);
                let lo = 1024 + b as u16 * 1024;
                let start = T0 + k as i64 * SLOT;
                v.push(LeaseRecord {
                    ip: IpAddr::V4(ip).into(),
                    ports: Some((lo, lo + 1023)),
                    start: Timestamp::from_secs(start),
                    end: Some(Timestamp::from_secs(start + SLOT - 60)),
                    identifiers: vec![("inside-ip".into(), format!("100.64.{}", &s[5..]))],
                    subscriber: s,
                    source: "cgnat_csv:synthetic".into(),
                    line: v.len() as u64 + 1,
                });
            }
        }
    }
    v
}

fn index() -> &'static SubscriberIndex {
    static IDX: OnceLock<SubscriberIndex> = OnceLock::new();
    IDX.get_or_init(|| {
        let recs = records();
        let n = recs.len();
        let t = std::time::Instant::now();
        let idx = SubscriberIndex::build(recs);
        let secs = t.elapsed().as_secs_f64();
        let bytes = idx.heap_bytes();
        eprintln!(
            "index: {n} records, {} subscribers, built in {secs:.1} s ({:.2} M records/s), {:.0} MiB heap = {:.1} bytes/record",
            idx.subscribers(),
            n as f64 / secs / 1e6,
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 / n as f64
        );
        idx
    })
}

/// Random (address, time) among the DHCP leases: a quarter of the instants fall in a gap or
/// off the end, and one address in sixteen was never leased (just past the pool).
#[divan::bench]
fn lookup_dhcp_10m(b: divan::Bencher) {
    let idx = index();
    let mut rng = Rng(42);
    b.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut found = 0usize;
        for _ in 0..BATCH {
            let r = rng.next();
            let ip = Ipv4Addr::from(0x0a00_0000 + (r as u32 % (DHCP_ADDRS + DHCP_ADDRS / 15)));
            let t = T0 + ((r >> 32) % (5 * SLOT as u64)) as i64;
            found +=
                idx.attribute(IpAddr::V4(ip), None, Timestamp::from_secs(t)).subscriber().is_some() as usize;
        }
        divan::black_box(found)
    });
}

/// Random (public address, port, time) among the CGNAT blocks; one port in sixty-one is
/// below the first block (a well-known port no block covers).
#[divan::bench]
fn lookup_cgnat_10m(b: divan::Bencher) {
    let idx = index();
    let mut rng = Rng(43);
    b.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut found = 0usize;
        for _ in 0..BATCH {
            let r = rng.next();
            let ip = Ipv4Addr::from(0xcb00_7100 + (r as u32 % NAT_IPS));
            let port = ((r >> 20) % ((NAT_BLOCKS as u64 + 1) * 1024)) as u16;
            let t = T0 + ((r >> 36) % (NAT_SLOTS as u64 * SLOT as u64)) as i64;
            let a = idx.attribute(IpAddr::V4(ip), Some(port), Timestamp::from_secs(t));
            found += a.subscriber().is_some() as usize;
        }
        divan::black_box(found)
    });
}

fn dhcpd_file(n: u32) -> Vec<u8> {
    let mut s = String::with_capacity(n as usize * 260);
    s.push_str("# The format of this file is documented in the dhcpd.leases(5) manual page.\n");
    s.push_str("authoring-byte-order little-endian;\n\n");
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i % (n / 2).max(1));
        let start = T0 + (i / (n / 2).max(1)) as i64 * SLOT;
        let dt = |t: i64| Timestamp::from_secs(t).to_datetime().format("%w %Y/%m/%d %H:%M:%S").to_string();
        let _ = write!(
            s,
            "lease {ip} {{\n  starts {};\n  ends {};\n  cltt {};\n  binding state active;\n  next binding state free;\n  hardware ethernet 52:54:00:{:02x}:{:02x}:{:02x};\n  option agent.remote-id \"CPE-{:07}\";\n  client-hostname \"host-{i}\";\n}}\n",
            dt(start),
            dt(start + 43_200),
            dt(start),
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            i % SUBSCRIBERS,
        );
    }
    s.into_bytes()
}

fn radius_file(n: u32) -> Vec<u8> {
    let mut s = String::with_capacity(n as usize * 600);
    for i in 0..n {
        let ip = Ipv4Addr::from(0x6440_0000 + i % 65_536);
        let t = T0 + i as i64 * 10;
        let hdr = |t: i64| Timestamp::from_secs(t).to_datetime().format("%a %b %e %H:%M:%S %Y").to_string();
        let _ = write!(
            s,
            "{}\n\tAcct-Status-Type = Start\n\tUser-Name = \"user{i}@isp.example\"\n\tAcct-Session-Id = \"{i:08X}\"\n\tNAS-IP-Address = 192.0.2.1\n\tCalling-Station-Id = \"52-54-00-00-00-01\"\n\tFramed-IP-Address = {ip}\n\tEvent-Timestamp = {t}\n\n{}\n\tAcct-Status-Type = Stop\n\tUser-Name = \"user{i}@isp.example\"\n\tAcct-Session-Id = \"{i:08X}\"\n\tNAS-IP-Address = 192.0.2.1\n\tFramed-IP-Address = {ip}\n\tAcct-Session-Time = 3600\n\tEvent-Timestamp = {}\n\n",
            hdr(t),
            hdr(t + 3600),
            t + 3600
        );
    }
    s.into_bytes()
}

/// Parse + build the index for a 200,000-lease dhcpd.leases (~50 MB); items = records.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn import_dhcpd_200k(b: divan::Bencher) {
    let data = dhcpd_file(200_000);
    b.counter(ItemsCount::new(200_000usize)).bench_local(|| {
        let (recs, rejects) = leases::parse_as(Format::Dhcpd, &data, "dhcpd.leases");
        assert!(rejects.is_empty());
        SubscriberIndex::build(recs)
    });
}

/// Parse + build for a RADIUS detail file of 100,000 sessions (Start + Stop each);
/// items = accounting records (200,000).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn import_radius_100k_sessions(b: divan::Bencher) {
    let data = radius_file(100_000);
    b.counter(ItemsCount::new(200_000usize)).bench_local(|| {
        let (recs, rejects) = leases::parse_as(Format::RadiusDetail, &data, "detail");
        assert!(rejects.is_empty());
        SubscriberIndex::build(recs)
    });
}

/// Parsing alone (no index) of the 200,000-lease dhcpd.leases.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn parse_dhcpd_200k(b: divan::Bencher) {
    let data = dhcpd_file(200_000);
    b.counter(ItemsCount::new(200_000usize))
        .bench_local(|| leases::parse_as(Format::Dhcpd, &data, "dhcpd.leases"));
}

/// Parsing alone of the 100,000-session RADIUS detail file; items = accounting records.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn parse_radius_100k_sessions(b: divan::Bencher) {
    let data = radius_file(100_000);
    b.counter(ItemsCount::new(200_000usize))
        .bench_local(|| leases::parse_as(Format::RadiusDetail, &data, "detail"));
}

/// Building the index alone from the dhcpd file's 200,000 parsed records (cloned untimed).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn build_dhcpd_200k(b: divan::Bencher) {
    let (recs, _) = leases::parse_as(Format::Dhcpd, &dhcpd_file(200_000), "dhcpd.leases");
    b.counter(ItemsCount::new(200_000usize))
        .with_inputs(|| recs.clone())
        .bench_local_values(SubscriberIndex::build);
}

//! IP → ASN/country lookups over the shipped tables.
use botwatch_enrich::IpDb;
use std::net::{IpAddr, Ipv4Addr};

fn main() {
    divan::main();
}

#[divan::bench]
fn lookup_v4(b: divan::Bencher) {
    let db = IpDb::builtin();
    let mut x: u32 = 0x0100_0000;
    b.counter(divan::counter::ItemsCount::new(1usize)).bench_local(|| {
        x = x.wrapping_mul(2_654_435_761).wrapping_add(12345);
        divan::black_box(db.lookup(IpAddr::V4(Ipv4Addr::from(x))))
    });
}

#[divan::bench(sample_count = 3)]
fn load_builtin_tables() -> IpDb {
    IpDb::from_readers(
        &include_bytes!("../data/asn-ipv4.csv.gz")[..],
        &include_bytes!("../data/asn-ipv6.csv.gz")[..],
        &include_bytes!("../data/asn-country-ipv4.csv.gz")[..],
        &include_bytes!("../data/asn-country-ipv6.csv.gz")[..],
    )
    .unwrap()
}

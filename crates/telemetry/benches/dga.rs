//! DGA scoring throughput: names scored per second with the shipped model.
//!
//! `cargo bench -p botwatch-telemetry --bench dga`. Input: a fixed mix of benign-looking and
//! DGA-looking names of realistic lengths (generated, so the bench needs no data files).

use botwatch_telemetry::detect::dga::DgaModel;
use divan::counter::ItemsCount;

fn main() {
    divan::main();
}

fn names() -> Vec<String> {
    let benign = ["google.com", "www.bbc.co.uk", "mail.example.org", "stackoverflow.com", "cdn.shopify.com"];
    let mut state = 0x1234_5678u64;
    let mut out: Vec<String> = Vec::new();
    for i in 0..1000 {
        if i % 2 == 0 {
            out.push(format!("{i}.{}", benign[i % benign.len()]));
        } else {
            let len = 8 + i % 16;
            let label: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (b'a' + (state % 26) as u8) as char
                })
                .collect();
            out.push(format!("{label}.net"));
        }
    }
    out
}

#[divan::bench]
fn score_1000_names(bencher: divan::Bencher) {
    let m = DgaModel::builtin();
    let names = names();
    bencher
        .counter(ItemsCount::new(names.len()))
        .bench(|| names.iter().map(|n| m.score(divan::black_box(n))).sum::<f64>());
}

//! Synthetic Shadowserver reports in the real, current column layout of `event4_sinkhole`
//! (as published in Shadowserver's `reports.json`), for benches and the demo's "one busy
//! day" section. Addresses are drawn from real allocated ranges so enrichment has
//! something to find; nothing here is real infection data.

use std::fmt::Write;

const HEADER: &str = "\"timestamp\",\"protocol\",\"src_ip\",\"src_port\",\"src_asn\",\"src_geo\",\"src_region\",\"src_city\",\"src_hostname\",\"src_naics\",\"src_sector\",\"device_vendor\",\"device_type\",\"device_model\",\"severity\",\"dst_ip\",\"dst_port\",\"dst_asn\",\"dst_geo\",\"dst_region\",\"dst_city\",\"dst_hostname\",\"dst_naics\",\"dst_sector\",\"public_source\",\"infection\",\"family\",\"tag\",\"application\",\"version\",\"event_id\",\"ssl_cipher\",\"ssl_servername\"";

/// (infection name as Shadowserver writes it, family column, share weight)
const FAMILIES: &[(&str, &str, u32)] = &[
    ("andromeda", "andromeda", 18),
    ("conficker", "conficker", 14),
    ("necurs", "necurs", 8),
    ("ramnit", "ramnit", 9),
    ("sality", "sality", 6),
    ("virut", "virut", 5),
    ("mirai", "mirai", 10),
    ("avalanche-andromeda", "andromeda", 4),
    ("qsnatch", "qsnatch", 7),
    ("emotet", "emotet", 3),
    ("gozi", "gozi", 3),
    ("zeus-gameover", "zeus_gameover", 2),
];

/// Networks to draw sources from: (first address, size, ASN, country, region, city). Each
/// lies inside one range the shipped IP → ASN data gives to that ASN, so a synthetic row's
/// ASN is the one botwatch itself finds for its address (ownership goes by the address).
const NETS: &[(u32, u32, u32, &str, &str, &str)] = &[
    (0x4F_C0_00_00, 1 << 16, 3320, "DE", "HESSEN", "FRANKFURT AM MAIN"),
    (0x58_40_00_00, 1 << 15, 3209, "DE", "BERLIN", "BERLIN"),
    (0x99_80_00_00, 1 << 16, 4713, "JP", "TOKYO", "TOKYO"),
    (0x6A_80_00_00, 1 << 14, 2516, "JP", "OSAKA", "OSAKA"),
    (0x01_80_00_00, 1 << 15, 1221, "AU", "VICTORIA", "MELBOURNE"),
    (0x4D_A0_00_00, 1 << 14, 1136, "NL", "NOORD-HOLLAND", "AMSTERDAM"),
    (0xB3_06_00_00, 1 << 14, 12252, "PE", "LIMA", "LIMA"),
    (0x75_C0_00_00, 1 << 15, 9829, "IN", "MAHARASHTRA", "MUMBAI"),
    (0x49_00_00_00, 1 << 16, 7922, "US", "PENNSYLVANIA", "PHILADELPHIA"),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, fast, good enough for test data.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ip(n: u32) -> String {
    format!("{}.{}.{}.{}", n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

/// A report of `rows` rows for `day` (`YYYY-MM-DD`). `infected` distinct sources are
/// drawn so that most of them show up several times, as bots beacon all day.
pub fn event4_sinkhole(rows: usize, infected: u32, day: &str, seed: u64) -> String {
    let total_w: u32 = FAMILIES.iter().map(|f| f.2).sum();
    let mut rng = Rng(seed | 1);
    let mut s = String::with_capacity(rows * 330 + HEADER.len() + 1);
    s.push_str(HEADER);
    s.push('\n');
    for _ in 0..rows {
        let bot = rng.below(infected as u64) as u32;
        // The bot's identity fixes its network, address and family.
        let mut b = Rng((bot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let net = NETS[b.below(NETS.len() as u64) as usize];
        let addr = net.0 + (b.below(net.1 as u64) as u32);
        let mut w = b.below(total_w as u64) as u32;
        let fam = FAMILIES.iter().find(|f| {
            if w < f.2 {
                true
            } else {
                w -= f.2;
                false
            }
        });
        let fam = fam.unwrap_or(&FAMILIES[0]);
        let secs = rng.below(86_400);
        let sink = 0xB2_A2_00_00 + rng.below(256) as u32;
        let _ = writeln!(
            s,
            "\"{day} {:02}:{:02}:{:02}\",\"tcp\",\"{}\",{},{},\"{}\",\"{}\",\"{}\",,,,,,,\"critical\",\"{}\",{},28753,\"DE\",\"HESSEN\",\"FRANKFURT AM MAIN\",,518210,\"Communications, Service Provider, and Hosting Service\",\"Shadowserver\",\"{}\",\"{}\",,,,,,",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            ip(addr),
            1024 + rng.below(60_000),
            net.2,
            net.3,
            net.4,
            net.5,
            ip(sink),
            [80, 443, 8080][rng.below(3) as usize],
            fam.0,
            fam.1,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout_matches_the_published_schema() {
        let r = super::event4_sinkhole(10, 5, "2026-11-24", 7);
        let mut lines = r.lines();
        let header = lines.next().unwrap();
        let cols = header.split(',').count();
        assert_eq!(cols, 33);
        for l in lines {
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(l.as_bytes());
            let rec = rdr.records().next().unwrap().unwrap();
            assert_eq!(rec.len(), cols, "{l}");
        }
    }
}

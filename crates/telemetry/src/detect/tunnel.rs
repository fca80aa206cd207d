//! DNS tunnels: a client moving data through DNS (dns2tcp, iodine, dnscat2, a RAT's DNS
//! channel) asks a stream of distinct, long, encoded names under one domain, each query
//! carrying a few dozen bytes up and its answer some back, so that a transfer of a few
//! kilobytes is hundreds of names within minutes. Browsing asks no domain for that many
//! distinct long names; what else does (antivirus and reputation look-ups, hashed names asked
//! as addresses) asks for `A` records, so a domain asked mostly for addresses must show four
//! times the volume, and one the network's clients share is theirs, not a tunnel (counted,
//! not flagged). Per client and domain, distinct names in a sliding window; bounded per
//! client ([`TunnelConfig::max_domains_per_client`]) and per domain (the window stops growing
//! once far past the bar).

use super::{Finding, FindingKind, Popularity};
use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::IpAddr;

/// `[sensor.dns.tunnel]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelConfig {
    /// Distinct names under one domain within `window_secs` that flag a client (0: off).
    pub min_names: usize,
    /// … carrying at least this many bytes of name left of the domain, together.
    pub min_bytes: usize,
    pub window_secs: i64,
    /// A name counts only with at least this many bytes left of its domain (`www`, `mail`
    /// and CDN node names are shorter or few).
    pub min_encoded: usize,
    /// When fewer than half the names are asked for types that carry data back (TXT, NULL,
    /// CNAME, MX, …), both bars are this many times higher.
    pub address_factor: usize,
    /// Domains followed per client; a new one replaces the least used.
    pub max_domains_per_client: usize,
    /// A domain this many of the network's clients ask such names of is a service of theirs …
    pub popular_clients: usize,
    /// … or this share of them, whichever is more.
    pub popular_share: f64,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            min_names: 200,
            min_bytes: 4000,
            window_secs: 600,
            min_encoded: 10,
            address_factor: 4,
            max_domains_per_client: 64,
            popular_clients: 3,
            popular_share: 0.1,
        }
    }
}

/// What the tunnel search set aside, for the scan's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    /// Clients past the bar for a domain many clients ask such names of.
    pub popular: u64,
    /// Domains dropped for a client's newer ones.
    pub replaced: u64,
}

/// One name in a window: when, which (hashed), how long its encoded part, whether its type
/// carries data.
#[derive(Debug, Clone, Copy)]
struct Asked {
    t: i64,
    key: u64,
    len: u32,
    data: bool,
}

/// The strongest window seen.
#[derive(Debug, Clone, Copy, Default)]
struct Peak {
    strength: f64,
    names: usize,
    bytes: u64,
    data: usize,
    from: i64,
    to: i64,
}

#[derive(Debug, Default)]
struct Domain {
    /// Distinct names in the window, oldest first, each once.
    window: VecDeque<Asked>,
    keys: foldhash::HashSet<u64>,
    bytes: u64,
    data: usize,
    peak: Peak,
    asked: u64,
    last: i64,
    samples: Vec<String>,
}

/// Follows each client's names per domain; see the module's text.
#[derive(Debug, Default)]
pub struct TunnelTracker {
    cfg: TunnelConfig,
    clients: HashMap<IpAddr, HashMap<String, Domain>>,
    counts: TunnelCounts,
}

/// Query types that bring nothing back but addresses or the zone's own records: what
/// browsers and reputation look-ups ask.
fn address_type(qtype: &str) -> bool {
    ["A", "AAAA", "HTTPS", "SVCB", "PTR", "NB", "NBSTAT", "SOA", "NS", "DS", "DNSKEY"]
        .iter()
        .any(|t| qtype.eq_ignore_ascii_case(t))
}

/// A reversed address asked under a reputation zone (`4.3.2.1.zen.example`, or an IPv6
/// address's 32 nibbles): a mail server's look-ups, not encoded data. What follows the address
/// must be short (the zone's own labels), or data after four numbers would pass as one.
fn reversed_address(sub: &str, min_encoded: usize) -> bool {
    let address_label = |l: &str| {
        (!l.is_empty() && l.len() <= 3 && l.bytes().all(|c| c.is_ascii_digit()))
            || (l.len() == 1 && l.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    let (mut labels, mut len) = (0, 0);
    for l in sub.split('.').take_while(|l| address_label(l)) {
        labels += 1;
        len += l.len() + 1;
    }
    labels >= 4 && sub.len().saturating_sub(len) < min_encoded
}

impl TunnelTracker {
    pub fn new(cfg: TunnelConfig) -> Self {
        TunnelTracker { cfg, ..Default::default() }
    }

    /// A cheap test before the client's state is touched: whether `name` could have
    /// `min_encoded` bytes left of its registrable domain (it has them left of its last two
    /// labels).
    pub fn worth_a_look(&self, name: &str) -> bool {
        if self.cfg.min_names == 0 {
            return false;
        }
        let mut dots = name.rmatch_indices('.');
        match (dots.next(), dots.next()) {
            (Some(_), Some((i, _))) => i >= self.cfg.min_encoded,
            _ => false,
        }
    }

    /// One query of `name` (lower case, no trailing dot) under its registrable domain `reg`.
    pub fn observe(&mut self, r: &DnsRecord, name: &str, reg: &str) {
        let cfg = &self.cfg;
        let Some(sub) = name.strip_suffix(reg).and_then(|s| s.strip_suffix('.')) else { return };
        if sub.len() < cfg.min_encoded || reversed_address(sub, cfg.min_encoded) {
            return;
        }
        let domains = self.clients.entry(r.client).or_default();
        if !domains.contains_key(reg) {
            if domains.len() >= cfg.max_domains_per_client.max(1) {
                // The least used (fewest names, then longest idle) makes room: a tunnel that
                // starts after a day's browsing is still followed.
                if let Some(k) = domains.iter().min_by_key(|(_, d)| (d.asked, d.last)).map(|(k, _)| k.clone())
                {
                    domains.remove(&k);
                    self.counts.replaced += 1;
                }
            }
            domains.insert(reg.to_string(), Domain::default());
        }
        let Some(d) = domains.get_mut(reg) else { return };
        let t = r.time.0;
        d.asked += 1;
        d.last = t;
        let data = !address_type(&r.qtype);
        let key = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = foldhash::fast::FixedState::with_seed(0x7475_6e6e_656c).build_hasher();
            sub.hash(&mut h);
            data.hash(&mut h);
            h.finish()
        };
        let horizon = t.saturating_sub(cfg.window_secs.saturating_mul(1_000_000));
        while d.window.front().is_some_and(|a| a.t < horizon) {
            let Some(old) = d.window.pop_front() else { break };
            d.keys.remove(&old.key);
            d.bytes = d.bytes.saturating_sub(u64::from(old.len));
            d.data = d.data.saturating_sub(usize::from(old.data));
        }
        // A name already in the window (a retry, a padding repeat) adds nothing: the window
        // holds distinct names only, each once, so what leaves it is what came in.
        if d.keys.contains(&key) {
            return;
        }
        // Twice the highest bar (in names, or in names of `min_encoded` bytes) and the window
        // stops growing: the finding is made, and memory bounded.
        let factor = cfg.address_factor.max(1);
        let bar = cfg.min_names.max(cfg.min_bytes.div_ceil(cfg.min_encoded.max(1)));
        if d.window.len() >= bar.saturating_mul(factor).saturating_mul(2) {
            return;
        }
        let len = u32::try_from(sub.len()).unwrap_or(u32::MAX);
        d.window.push_back(Asked { t, key, len, data });
        d.keys.insert(key);
        d.bytes += u64::from(len);
        d.data += usize::from(data);
        if d.samples.len() < 3 {
            d.samples.push(name.to_string());
        }
        let names = d.window.len();
        let factor = if d.data * 2 >= names { 1.0 } else { cfg.address_factor.max(1) as f64 };
        let strength = (names as f64 / (cfg.min_names.max(1) as f64 * factor))
            .min(d.bytes as f64 / (cfg.min_bytes.max(1) as f64 * factor));
        if strength > d.peak.strength {
            // Records come roughly in time order; one that came late does not make the span
            // negative.
            let from = d.window.front().map_or(t, |a| a.t.min(t));
            d.peak = Peak { strength, names, bytes: d.bytes, data: d.data, from, to: t.max(from) };
        }
    }

    /// Findings for clients past the bar for a domain of their own, and what was set aside.
    pub fn finish(self) -> (Vec<Finding>, TunnelCounts) {
        let mut counts = self.counts;
        // A service's reach is its ordinary users': clients that ask it such names below the
        // bar. Bots sharing one tunnel domain are all past it, and do not hide each other.
        let mut reach: HashMap<&str, usize> = HashMap::new();
        for domains in self.clients.values() {
            for (reg, d) in domains {
                if d.peak.strength < 1.0 {
                    *reach.entry(reg.as_str()).or_default() += 1;
                }
            }
        }
        let bar = Popularity::new(self.cfg.popular_clients, self.cfg.popular_share, self.clients.len());
        let mut out = Vec::new();
        for (client, domains) in &self.clients {
            // A client's strongest domain is its finding; a tunnel has one.
            let past: Vec<_> = domains.iter().filter(|(_, d)| d.peak.strength >= 1.0).collect();
            let best = past
                .iter()
                .filter(|(reg, _)| !bar.popular(reach.get(reg.as_str()).copied().unwrap_or(0)))
                .max_by(|a, b| a.1.peak.strength.total_cmp(&b.1.peak.strength).then_with(|| b.0.cmp(a.0)));
            let Some((reg, d)) = best else {
                counts.popular += u64::from(!past.is_empty());
                continue;
            };
            let p = d.peak;
            let share = p.data as f64 / p.names.max(1) as f64;
            let secs = (p.to - p.from) as f64 / 1e6;
            out.push(Finding {
                client: *client,
                kind: FindingKind::Tunnel,
                // Volume past the bar and data-carrying types both raise it.
                confidence: (0.55 + 0.15 * (p.strength.min(4.0) - 1.0) / 3.0 + 0.25 * share).min(0.99),
                reason: format!(
                    "{} distinct names under {reg} within {secs:.1} s carrying {:.1} kB left of the domain \
                     (mean {:.0} characters), {:.0} % asked for types that carry data back (TXT, NULL, CNAME, MX, …): \
                     data moved through DNS (bar: {} names and {:.1} kB within {} s{})",
                    p.names,
                    p.bytes as f64 / 1000.0,
                    p.bytes as f64 / p.names.max(1) as f64,
                    share * 100.0,
                    self.cfg.min_names,
                    self.cfg.min_bytes as f64 / 1000.0,
                    self.cfg.window_secs,
                    if share < 0.5 {
                        format!(", {} times that for names asked as addresses", self.cfg.address_factor)
                    } else {
                        String::new()
                    }
                ),
                count: p.names,
                first_seen: Timestamp(p.from),
                last_seen: Timestamp(p.to),
                samples: d.samples.clone(),
            });
        }
        (out, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn q(t: f64, client: &str, name: &str, qtype: &'static str) -> DnsRecord {
        DnsRecord {
            time: Timestamp((t * 1e6) as i64),
            client: client.parse().unwrap(),
            client_port: None,
            qname: name.to_string(),
            qtype: Cow::Borrowed(qtype),
            rcode: None,
            answers: vec![],
            server: None,
        }
    }

    fn feed(t: &mut TunnelTracker, r: &DnsRecord) {
        let reg = crate::detect::dga::registrable_domain(&r.qname).unwrap();
        if t.worth_a_look(&r.qname) {
            t.observe(r, &r.qname, &reg);
        }
    }

    /// `n` encoded names a second under `domain`, 24 characters each.
    fn tunnel(t: &mut TunnelTracker, client: &str, domain: &str, n: usize, qtype: &'static str) {
        for i in 0..n {
            let name = format!("{:016x}{:08x}.{domain}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
            feed(t, &q(1_700_000_000.0 + i as f64 * 0.5, client, &name, qtype));
        }
    }

    #[test]
    fn a_data_stream_under_one_domain_is_a_tunnel_and_browsing_is_not() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        tunnel(&mut t, "10.0.0.9", "t.example.com", 400, "TXT");
        // Browsing: a few long CDN names per domain, many domains.
        for i in 0..2000 {
            let name = format!("r{}---sn-4g5e6nzz.cdn{}-example.net", i % 5, i % 300);
            feed(&mut t, &q(1_700_000_000.0 + i as f64, "10.0.0.8", &name, "A"));
        }
        let (f, counts) = t.finish();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].client.to_string().as_str(), f[0].kind), ("10.0.0.9", FindingKind::Tunnel));
        assert!(f[0].reason.contains("400 distinct names under example.com"), "{}", f[0].reason);
        assert!(f[0].reason.contains("100 % asked for types that carry data"), "{}", f[0].reason);
        assert!(counts.replaced > 0, "the browser's many domains made room");
    }

    #[test]
    fn names_asked_as_addresses_need_four_times_the_volume() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        tunnel(&mut t, "10.0.0.9", "av.example.com", 400, "A");
        tunnel(&mut t, "10.0.0.7", "exfil.example.org", 900, "A");
        let (f, _) = t.finish();
        let flagged: Vec<_> = f.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, ["10.0.0.7"]);
        assert!(f[0].reason.contains("4 times that for names asked as addresses"), "{}", f[0].reason);
    }

    #[test]
    fn a_slow_trickle_reversed_addresses_and_a_shared_service_are_not_tunnels() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        // 400 names over four hours: never 200 within ten minutes.
        for i in 0..400 {
            let name = format!("{:024x}.slow.example.com", i);
            feed(&mut t, &q(1_700_000_000.0 + i as f64 * 36.0, "10.0.0.9", &name, "TXT"));
        }
        // A mail server's reputation look-ups: reversed IPv6 addresses, long but no data.
        for i in 0..1000u32 {
            let nibbles: String = format!("{:032x}", u128::from(i) << 64 | 0x2001_0db8)
                .chars()
                .rev()
                .map(|c| format!("{c}."))
                .collect();
            feed(
                &mut t,
                &q(1_700_000_000.0 + f64::from(i), "10.0.0.25", &format!("{nibbles}zen.example.org"), "TXT"),
            );
        }
        // A service the network's clients ask encoded names of: twenty lightly, ten heavily.
        for c in 1..=20 {
            tunnel(&mut t, &format!("10.0.2.{c}"), "shared.example.net", 5, "TXT");
        }
        for c in 1..=10 {
            tunnel(&mut t, &format!("10.0.1.{c}"), "shared.example.net", 300, "TXT");
        }
        // Data after four numbers is no reversed address.
        for i in 0..300 {
            let name = format!("1.2.3.4.{i:020x}.exfil.example.org");
            feed(&mut t, &q(1_700_000_000.0 + f64::from(i), "10.0.0.66", &name, "TXT"));
        }
        let (f, counts) = t.finish();
        let flagged: Vec<_> = f.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, ["10.0.0.66"], "{f:?}");
        assert_eq!(counts.popular, 10);
    }

    #[test]
    fn bots_sharing_one_tunnel_domain_do_not_hide_each_other() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        for c in 1..=5 {
            tunnel(&mut t, &format!("10.0.3.{c}"), "c2.example.com", 300, "TXT");
        }
        // Retries of names already asked add nothing.
        for _ in 0..3 {
            tunnel(&mut t, "10.0.3.9", "c2.example.com", 150, "TXT");
        }
        let (f, counts) = t.finish();
        let mut flagged: Vec<_> = f.iter().map(|f| f.client.to_string()).collect();
        flagged.sort();
        assert_eq!(flagged, ["10.0.3.1", "10.0.3.2", "10.0.3.3", "10.0.3.4", "10.0.3.5"]);
        assert_eq!(counts.popular, 0);
    }

    #[test]
    fn the_window_stays_bounded_and_off_means_off() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        // 20,000 names in 200 s, all inside one window.
        for i in 0..20_000 {
            let name = format!("{i:024x}.t.example.com");
            feed(&mut t, &q(1_700_000_000.0 + f64::from(i) * 0.01, "10.0.0.9", &name, "NULL"));
        }
        let d = &t.clients.values().next().unwrap()["example.com"];
        // Twice the highest bar: 4 kB in names of 10 bytes is 400 names, times 4 for addresses.
        assert!(d.window.len() <= 400 * 4 * 2, "{}", d.window.len());
        let off = TunnelTracker::new(TunnelConfig { min_names: 0, ..Default::default() });
        assert!(!off.worth_a_look("0123456789abcdef.t.example.com"));
    }
}

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
//!
//! A tunnel left idle moves no data but keeps asking: iodine's client polls its server with a
//! fresh eight-character name every four seconds (450 names in half an hour, under one domain,
//! for `NULL` records), far below the first bar's volume. A second, slower bar
//! ([`TunnelConfig::slow`]: 300 names and 2 kB of names within 30 minutes, names of six
//! characters or more) counts only names asked for types that carry data back, which browsers
//! and reputation look-ups do not ask.

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
    /// CNAME, MX, …), `min_names` and `min_bytes` are this many times higher (the slow bar
    /// counts no name asked as an address at all).
    pub address_factor: usize,
    /// Domains followed per client; a new one replaces the least used.
    pub max_domains_per_client: usize,
    /// A domain this many of the network's clients ask such names of is a service of theirs …
    pub popular_clients: usize,
    /// … or this share of them, whichever is more.
    pub popular_share: f64,
    /// `[sensor.dns.tunnel.slow]`: the bar for a tunnel left idle, over names asked for types
    /// that carry data back only (`min_names = 0`: off).
    pub slow: SlowBar,
}

/// `[sensor.dns.tunnel.slow]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowBar {
    pub min_names: usize,
    pub min_bytes: usize,
    pub window_secs: i64,
    pub min_encoded: usize,
}

impl Default for SlowBar {
    fn default() -> Self {
        SlowBar { min_names: 300, min_bytes: 2000, window_secs: 1800, min_encoded: 6 }
    }
}

/// One bar a window of names is held to.
#[derive(Debug, Clone, Copy)]
struct Bar {
    min_names: usize,
    min_bytes: usize,
    window_secs: i64,
    min_encoded: usize,
    /// Names asked as addresses are not counted at all (rather than raising the bar).
    data_only: bool,
}

impl Bar {
    /// Whether a name `sub_len` long left of its domain counts; `named_data`: asked for a
    /// type known to carry data back ([`data_type`]).
    fn takes(&self, sub_len: usize, named_data: bool) -> bool {
        self.min_names > 0 && sub_len >= self.min_encoded && (named_data || !self.data_only)
    }
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
            slow: SlowBar::default(),
        }
    }
}

impl TunnelConfig {
    /// The bars, fast first.
    fn bars(&self) -> [Bar; 2] {
        [
            Bar {
                min_names: self.min_names,
                min_bytes: self.min_bytes,
                window_secs: self.window_secs,
                min_encoded: self.min_encoded,
                data_only: false,
            },
            Bar {
                min_names: self.slow.min_names,
                min_bytes: self.slow.min_bytes,
                window_secs: self.slow.window_secs,
                min_encoded: self.slow.min_encoded,
                data_only: true,
            },
        ]
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
    /// Which bar ([`TunnelConfig::bars`]).
    bar: usize,
    names: usize,
    bytes: u64,
    data: usize,
    from: i64,
    to: i64,
}

/// Distinct names within one bar's window, oldest first, each once.
#[derive(Debug, Default)]
struct Window {
    names: VecDeque<Asked>,
    keys: foldhash::HashSet<u64>,
    bytes: u64,
    data: usize,
    peak: Peak,
}

impl Window {
    /// Whether the name entered the window (it was not there, and the window not full).
    fn push(&mut self, a: Asked, bar: &Bar, index: usize, address_factor: usize) -> bool {
        let horizon = a.t.saturating_sub(bar.window_secs.saturating_mul(1_000_000));
        while self.names.front().is_some_and(|o| o.t < horizon) {
            let Some(old) = self.names.pop_front() else { break };
            self.keys.remove(&old.key);
            self.bytes = self.bytes.saturating_sub(u64::from(old.len));
            self.data = self.data.saturating_sub(usize::from(old.data));
        }
        // A name already in the window (a retry, a padding repeat) adds nothing: the window
        // holds distinct names only, each once, so what leaves it is what came in.
        if self.keys.contains(&a.key) {
            return false;
        }
        // Twice the highest bar (in names, or in names of `min_encoded` bytes) and the window
        // stops growing: the finding is made, and memory bounded.
        let factor = if bar.data_only { 1 } else { address_factor.max(1) };
        let most = bar.min_names.max(bar.min_bytes.div_ceil(bar.min_encoded.max(1)));
        if self.names.len() >= most.saturating_mul(factor).saturating_mul(2) {
            return false;
        }
        self.names.push_back(a);
        self.keys.insert(a.key);
        self.bytes += u64::from(a.len);
        self.data += usize::from(a.data);
        let names = self.names.len();
        let factor = if self.data * 2 >= names { 1.0 } else { factor as f64 };
        let strength = (names as f64 / (bar.min_names.max(1) as f64 * factor))
            .min(self.bytes as f64 / (bar.min_bytes.max(1) as f64 * factor));
        if strength > self.peak.strength {
            // Records come roughly in time order; one that came late does not make the span
            // negative.
            let from = self.names.front().map_or(a.t, |o| o.t.min(a.t));
            self.peak = Peak {
                strength,
                bar: index,
                names,
                bytes: self.bytes,
                data: self.data,
                from,
                to: a.t.max(from),
            };
        }
        true
    }
}

#[derive(Debug, Default)]
struct Domain {
    windows: [Window; 2],
    asked: u64,
    last: i64,
    samples: Vec<String>,
}

impl Domain {
    /// The peak of the bar the domain is past: the first bar's if it is past that, since a
    /// transfer says more than the trickle the slow window also holds of it (whose figures
    /// would be its cap's and its half hour's), else the slow bar's.
    fn past(&self) -> Option<Peak> {
        let [fast, slow] = &self.windows;
        [fast.peak, slow.peak].into_iter().find(|p| p.strength >= 1.0)
    }
}

/// Follows each client's names per domain; see the module's text.
#[derive(Debug)]
pub struct TunnelTracker {
    cfg: TunnelConfig,
    bars: [Bar; 2],
    /// The shortest name part any bar takes.
    min_encoded: usize,
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

/// Query types a tunnel's server answers with its data (iodine's `NULL`, `PRIVATE` and
/// `TXT`, dnscat2's `TXT`, `CNAME` and `MX`, dns2tcp's `TXT` and `KEY`, private-use numbers).
/// Named, not inferred: a log with no query type says nothing of it.
fn data_type(qtype: &str) -> bool {
    // Their numbers too, as a log writes a type it has no name for (Zeek's `TYPE16`), and
    // the private-use range (RFC 6895), iodine's `PRIVATE` among them.
    const NAMED: [(&str, u16); 9] = [
        ("TXT", 16),
        ("NULL", 10),
        ("CNAME", 5),
        ("MX", 15),
        ("SRV", 33),
        ("KEY", 25),
        ("NAPTR", 35),
        ("DNAME", 39),
        ("HINFO", 13),
    ];
    if qtype.eq_ignore_ascii_case("PRIVATE") || NAMED.iter().any(|(t, _)| qtype.eq_ignore_ascii_case(t)) {
        return true;
    }
    let number = qtype
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("TYPE"))
        .and_then(|_| qtype[4..].parse::<u16>().ok());
    number.is_some_and(|n| (65280..=65534).contains(&n) || NAMED.iter().any(|(_, v)| *v == n))
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
        let bars = cfg.bars();
        let min_encoded = bars.iter().filter(|b| b.min_names > 0).map(|b| b.min_encoded).min().unwrap_or(0);
        TunnelTracker { cfg, bars, min_encoded, clients: HashMap::new(), counts: TunnelCounts::default() }
    }

    /// A cheap test before the client's state is touched: whether `name` could have
    /// `min_encoded` bytes left of its registrable domain (it has them left of its last two
    /// labels).
    pub fn worth_a_look(&self, name: &str) -> bool {
        if self.bars.iter().all(|b| b.min_names == 0) {
            return false;
        }
        let mut dots = name.rmatch_indices('.');
        match (dots.next(), dots.next()) {
            (Some(_), Some((i, _))) => i >= self.min_encoded,
            _ => false,
        }
    }

    /// One query of `name` (lower case, no trailing dot) under its registrable domain `reg`.
    pub fn observe(&mut self, r: &DnsRecord, name: &str, reg: &str) {
        let cfg = &self.cfg;
        let Some(sub) = name.strip_suffix(reg).and_then(|s| s.strip_suffix('.')) else { return };
        let data = !address_type(&r.qtype);
        let named_data = data_type(&r.qtype);
        // A reversed address is told by what follows it being shorter than the first bar's
        // `min_encoded` for every bar: the slow bar's shorter names would let a blocklist's
        // zone label (`4.3.2.1.sbl-xbl`) pass as data.
        let reversed = reversed_address(sub, cfg.min_encoded.max(self.bars[1].min_encoded).max(1));
        if reversed || !self.bars.iter().any(|b| b.takes(sub.len(), named_data)) {
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
        let key = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = foldhash::fast::FixedState::with_seed(0x7475_6e6e_656c).build_hasher();
            sub.hash(&mut h);
            data.hash(&mut h);
            h.finish()
        };
        let asked = Asked { t, key, len: u32::try_from(sub.len()).unwrap_or(u32::MAX), data };
        let mut counted = false;
        for (i, (w, bar)) in d.windows.iter_mut().zip(&self.bars).enumerate() {
            if bar.takes(sub.len(), named_data) {
                counted |= w.push(asked, bar, i, cfg.address_factor);
            }
        }
        if counted && d.samples.len() < 3 && !d.samples.iter().any(|s| s == name) {
            d.samples.push(name.to_string());
        }
    }

    /// Findings for clients past the bar for a domain of their own, and what was set aside.
    pub fn finish(self) -> (Vec<Finding>, TunnelCounts) {
        let mut counts = self.counts;
        // A service's reach is its ordinary users': clients that ask it such names below the
        // bar, per bar. Bots sharing one tunnel domain are all past it, and do not hide each
        // other.
        let mut reach: HashMap<(&str, usize), usize> = HashMap::new();
        for domains in self.clients.values() {
            for (reg, d) in domains {
                for (b, w) in d.windows.iter().enumerate() {
                    if w.peak.strength < 1.0 {
                        *reach.entry((reg.as_str(), b)).or_default() += 1;
                    }
                }
            }
        }
        let bar = Popularity::new(self.cfg.popular_clients, self.cfg.popular_share, self.clients.len());
        let mut out = Vec::new();
        for (client, domains) in &self.clients {
            // A client's strongest domain is its finding (past the first bar before the slow
            // one); a tunnel has one.
            let past: Vec<_> = domains.iter().filter_map(|(reg, d)| Some((reg, d, d.past()?))).collect();
            let best = past
                .iter()
                .filter(|(reg, _, p)| !bar.popular(reach.get(&(reg.as_str(), p.bar)).copied().unwrap_or(0)))
                .max_by(|a, b| {
                    (a.2.bar == 0)
                        .cmp(&(b.2.bar == 0))
                        .then(a.2.strength.total_cmp(&b.2.strength))
                        .then_with(|| b.0.cmp(a.0))
                });
            let Some(&(reg, d, p)) = best else {
                counts.popular += u64::from(!past.is_empty());
                continue;
            };
            let bar = self.bars[p.bar];
            let share = p.data as f64 / p.names.max(1) as f64;
            let secs = (p.to - p.from) as f64 / 1e6;
            let rule = if bar.data_only {
                format!(
                    "the bar for a tunnel left idle: {} names and {:.1} kB within {} s, of names asked for types that carry data",
                    bar.min_names,
                    bar.min_bytes as f64 / 1000.0,
                    bar.window_secs
                )
            } else {
                format!(
                    "bar: {} names and {:.1} kB within {} s{}",
                    bar.min_names,
                    bar.min_bytes as f64 / 1000.0,
                    bar.window_secs,
                    if share < 0.5 {
                        format!(", {} times that for names asked as addresses", self.cfg.address_factor)
                    } else {
                        String::new()
                    }
                )
            };
            out.push(Finding {
                client: *client,
                kind: FindingKind::Tunnel,
                // Volume past the bar and data-carrying types both raise it; a keep-alive's
                // trickle is weaker evidence than a transfer.
                confidence: (if bar.data_only { 0.45 } else { 0.55 }
                    + 0.15 * (p.strength.min(4.0) - 1.0) / 3.0
                    + 0.25 * share)
                    .min(0.99),
                reason: format!(
                    "{} distinct names under {reg} within {secs:.1} s carrying {:.1} kB left of the domain \
                     (mean {:.0} characters), {:.0} % asked for types that carry data back (TXT, NULL, CNAME, MX, …): \
                     data moved through DNS ({rule})",
                    p.names,
                    p.bytes as f64 / 1000.0,
                    p.bytes as f64 / p.names.max(1) as f64,
                    share * 100.0,
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

    /// iodine's keep-alive: a fresh eight-character name every four seconds for `NULL`.
    fn keep_alive(t: &mut TunnelTracker, client: &str, minutes: usize, qtype: &'static str) {
        // Each client a domain of its own: three clients below the bar on one would make it
        // a shared service.
        for i in 0..minutes * 15 {
            let name = format!("paa{:05x}.t.example-{}.com", i * 7, client.replace('.', "-"));
            feed(t, &q(1_700_000_000.0 + i as f64 * 4.0, client, &name, qtype));
        }
    }

    #[test]
    fn an_idle_tunnel_meets_the_slow_bar_and_names_asked_as_addresses_never_do() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        keep_alive(&mut t, "10.0.0.9", 30, "NULL");
        keep_alive(&mut t, "10.0.0.10", 30, "TYPE65399");
        // The same cadence, asked as addresses or with no type the log could tell, and a
        // quarter hour of it for data.
        keep_alive(&mut t, "10.0.0.11", 60, "A");
        keep_alive(&mut t, "10.0.0.12", 60, "-");
        keep_alive(&mut t, "10.0.0.13", 15, "NULL");
        let (f, _) = t.finish();
        let mut flagged: Vec<_> = f.iter().map(|f| f.client.to_string()).collect();
        flagged.sort();
        assert_eq!(flagged, ["10.0.0.10", "10.0.0.9"], "{f:?}");
        let r = &f[0].reason;
        assert!(r.contains("the bar for a tunnel left idle: 300 names and 2.0 kB within 1800 s"), "{r}");
        assert!(f[0].confidence < 0.8, "{}", f[0].confidence);
        // Off means off.
        let mut t = TunnelTracker::new(TunnelConfig {
            slow: SlowBar { min_names: 0, ..Default::default() },
            ..Default::default()
        });
        keep_alive(&mut t, "10.0.0.9", 30, "NULL");
        assert!(t.finish().0.is_empty());
    }

    #[test]
    fn short_names_right_under_the_domain_count_for_the_slow_bar_and_blocklist_zones_do_not() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        // Eight characters left of the registrable domain, a NULL query every four seconds.
        for i in 0..450 {
            let name = format!("p{:07x}.example.net", i * 13);
            feed(&mut t, &q(1_700_000_000.0 + f64::from(i) * 4.0, "10.0.0.9", &name, "NULL"));
        }
        // A mail server's TXT look-ups of reversed addresses under a zone of seven and nine
        // characters: no data, for either bar.
        for i in 0..2000u32 {
            let [a, b, c, d] = (0x0a00_0000 + i * 7919).to_be_bytes();
            for zone in ["sbl-xbl.spamhaus.org", "dnsbl-1.uceprotect.net"] {
                let name = format!("{d}.{c}.{b}.{a}.{zone}");
                feed(&mut t, &q(1_700_000_000.0 + f64::from(i) * 0.5, "10.0.0.25", &name, "TXT"));
            }
        }
        let (f, _) = t.finish();
        let flagged: Vec<_> = f.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, ["10.0.0.9"], "{f:?}");
        assert!(f[0].reason.contains("tunnel left idle"), "{}", f[0].reason);
        assert_eq!(f[0].samples.len(), 3);
    }

    #[test]
    fn a_transfer_is_told_by_the_first_bar_though_the_slow_window_holds_more() {
        let mut t = TunnelTracker::new(TunnelConfig::default());
        // 25 names a minute for half an hour, 24 characters each, TXT: past both bars, the
        // slow one further.
        for i in 0..750 {
            let name = format!("{:024x}.t.example.com", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            feed(&mut t, &q(1_700_000_000.0 + f64::from(i) * 2.4, "10.0.0.9", &name, "TXT"));
        }
        let (f, _) = t.finish();
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].reason.contains("(bar: 200 names and 4.0 kB within 600 s)"), "{}", f[0].reason);
        // The first bar's figures: its ten minutes at 2.4 s a name, both ends counted.
        assert!(f[0].reason.starts_with("251 distinct names"), "{}", f[0].reason);
    }

    #[test]
    fn data_types_are_named_or_numbered() {
        for t in ["TXT", "null", "CNAME", "MX", "PRIVATE", "TYPE16", "TYPE10", "TYPE65399", "type65280"] {
            assert!(data_type(t), "{t}");
        }
        for t in
            ["A", "AAAA", "HTTPS", "-", "", "TYPE", "TYPE1", "TYPE28", "TYPE65", "TYPE65535", "TYPE99999"]
        {
            assert!(!data_type(t), "{t}");
        }
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
        assert!(d.windows[0].names.len() <= 400 * 4 * 2, "{}", d.windows[0].names.len());
        // The slow bar's: 2 kB in names of 6 bytes is 334 names.
        assert!(d.windows[1].names.len() <= 334 * 2, "{}", d.windows[1].names.len());
        let off = TunnelTracker::new(TunnelConfig {
            min_names: 0,
            slow: SlowBar { min_names: 0, ..Default::default() },
            ..Default::default()
        });
        assert!(!off.worth_a_look("0123456789abcdef.t.example.com"));
    }
}

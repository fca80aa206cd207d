//! Beaconing: an internal client that connects to the same `ip:port` at regular intervals
//! with similar-sized payloads, the way implants poll their C2 — or keep trying to, when the
//! C2 is down and every attempt goes unanswered or is refused.
//!
//! Per client the flows are kept ([`FlowMemory`]: start, bytes, whether answered); at [`find`]
//! they are grouped into series per (destination ip, destination port, protocol), and only
//! series that leave the network from an internal client count ([`Scope`]): traffic from the
//! Internet in (scanners, pingers), inside the network and to multicast or broadcast never
//! makes a client a beacon. Each series with enough attempts over enough time is tested:
//! - the period is the median of the gaps summed over a cycle of `k` attempts, for the
//!   smallest `k` up to `max_cycle` that is regular: an implant that retries twice before
//!   sleeping (gaps of 0.5, 0.5, 1.0 s) repeats every three attempts;
//! - every cycle is divided by its nearest whole number of periods, so a missed beat (2P,
//!   3P) still counts as regular, and gaps past `max_missed_beats` periods (sleep, an
//!   outage) do not fit but do not end the series;
//! - a cycle *fits* when that per-beat interval is within `tolerance` of the period; beacons
//!   need most cycles to fit and the fitting intervals to have a small coefficient of
//!   variation (Poisson-like gaps, as browsing makes, have one near 1);
//! - most flows must be within 25 % (or 64 bytes) of the median size.
//!
//! A C2 that moves (fallback addresses, a new address every few beats) leaves too few
//! connections on each address for a series of its own: a client's connections to one port
//! on two to `max_destination_set` unpopular addresses, none of which beacons alone, are
//! tested as one series too.
//!
//! Discounted, and said so: destinations that many of the network's clients reach (an OS
//! update service, a CDN, the resolver: learned from the traffic, see `popular_clients`), and
//! ports whose protocols are periodic by design (`ignore_ports`: time, name resolution,
//! discovery, DHCP), which an operator can change.

use super::flows::{Flow, FlowMemory};
use super::scope::Scope;
use super::{Finding, FindingKind};
use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Thresholds of [`BeaconDetector`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeaconConfig {
    /// Fewest connections in a series.
    pub min_events: usize,
    /// Shortest time from first to last connection, seconds.
    pub min_span_secs: f64,
    /// Shortest period considered, seconds (below it, bursts of parallel connections look regular).
    pub min_period_secs: f64,
    /// Relative deviation of a per-beat interval from the period that still fits.
    pub tolerance: f64,
    /// Share of gaps that must fit.
    pub min_fit: f64,
    /// Largest coefficient of variation of the fitting intervals.
    pub max_cv: f64,
    /// Share of flows whose size must be near the median size.
    pub min_size_fit: f64,
    /// Gaps of more than this many periods are outages, not missed beats, and do not fit.
    pub max_missed_beats: u32,
    /// Longest cycle of attempts (a connection and its retries) tried as the beat.
    pub max_cycle: usize,
    /// A destination this many of the network's clients reach is popular, not a C2 …
    pub popular_clients: usize,
    /// … or this share of them, whichever is more.
    pub popular_share: f64,
    /// Destination ports whose protocols poll by design: NTP, DNS and DNS over TLS, DHCP,
    /// NetBIOS, SSDP, mDNS, LLMNR.
    pub ignore_ports: Vec<u16>,
    /// A client reaching one port on several unpopular addresses in turn (a C2 that moves,
    /// or a list of fallbacks) is tested as one series when there are at least two and at
    /// most this many addresses (below 2: not tested).
    pub max_destination_set: usize,
    /// Flows of one series analysed, the earliest (the cost of `finish` is bounded by it; the
    /// memory by `[sensor.flows]`).
    pub max_events_per_series: usize,
}

impl Default for BeaconConfig {
    fn default() -> Self {
        BeaconConfig {
            min_events: 12,
            min_span_secs: 60.0,
            min_period_secs: 0.25,
            tolerance: 0.2,
            min_fit: 0.75,
            max_cv: 0.15,
            min_size_fit: 0.7,
            max_missed_beats: 4,
            max_cycle: 3,
            popular_clients: 3,
            popular_share: 0.1,
            ignore_ports: vec![53, 67, 68, 123, 137, 138, 853, 1900, 5353, 5355],
            max_destination_set: 8,
            max_events_per_series: 4096,
        }
    }
}

/// What [`analyse`] measured on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconStats {
    pub events: usize,
    /// Attempts per beat (1: every connection is a beat).
    pub cycle: usize,
    pub period_secs: f64,
    pub period_sd_secs: f64,
    pub fit: f64,
    pub missed_beats: u64,
    pub bytes_mean: f64,
    pub bytes_sd: f64,
    pub size_fit: f64,
    pub span_secs: f64,
    pub confidence: f64,
    pub is_beacon: bool,
}

/// What [`find`] set aside, for the evidence of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BeaconCounts {
    /// Series that do not leave the network from an internal client.
    pub not_outbound: u64,
    /// Beaconing series to a popular destination.
    pub popular: u64,
    /// Flows to an ignored port.
    pub ignored_port: u64,
    /// Flows past `max_events_per_series`, not analysed.
    pub over_series_bound: u64,
}

/// Collects flows and reports beaconing series: a [`FlowMemory`] of its own and [`find`].
/// A sensor running several flow detectors keeps one memory and calls each `find`.
#[derive(Debug)]
pub struct BeaconDetector {
    cfg: BeaconConfig,
    memory: FlowMemory,
}

impl BeaconDetector {
    pub fn new(cfg: BeaconConfig) -> Self {
        BeaconDetector { cfg, memory: FlowMemory::default() }
    }

    /// Flows over the memory bounds are dropped and counted.
    pub fn dropped(&self) -> u64 {
        self.memory.dropped()
    }

    /// Internal state held now: (clients, bytes), see [`FlowMemory::state`].
    pub fn state(&self) -> (usize, usize) {
        self.memory.state()
    }

    pub fn observe(&mut self, f: &FlowRecord) {
        self.memory.observe(f);
    }

    /// One finding per beaconing series of an internal client, highest confidence first.
    pub fn finish(self, scope: &Scope) -> Vec<Finding> {
        self.finish_counted(scope).0
    }

    /// [`BeaconDetector::finish`], with what was set aside.
    pub fn finish_counted(mut self, scope: &Scope) -> (Vec<Finding>, BeaconCounts) {
        find(&mut self.memory, &self.cfg, scope)
    }
}

/// What the scope and the ignored ports make of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeriesKind {
    Ignored,
    Outbound,
    Inside,
}

/// The runs of one client's flows (sorted by destination, port, protocol, time) that are
/// one series each.
fn series(flows: &[Flow]) -> impl Iterator<Item = &[Flow]> {
    flows.chunk_by(|a, b| (a.dst, a.port, a.proto) == (b.dst, b.port, b.proto))
}

/// The beaconing series in a memory of flows, one finding each, highest confidence first.
/// Sorts each client's flows by series and time.
pub fn find(memory: &mut FlowMemory, cfg: &BeaconConfig, scope: &Scope) -> (Vec<Finding>, BeaconCounts) {
    let scope = scope.clone().with_vantage(memory.vantage());
    let mut counts = BeaconCounts::default();
    let ignored = |f: &Flow| matches!(f.proto, 6 | 17) && cfg.ignore_ports.contains(&f.port);
    for c in memory.clients_mut() {
        c.flows.sort_unstable_by_key(|f| (f.dst, f.port, f.proto, f.t, f.bytes));
    }
    let memory = &*memory;
    // A series' ends as the record saw them at its first flow.
    let outbound = |client: IpAddr, s: &[Flow]| {
        scope.outbound(client, memory.dest(s[0].dst), s[0].local_orig(), s[0].local_resp())
    };
    // Who reaches each destination: popularity is learned from the network's clients. A
    // series is one client's, so counting series counts distinct clients.
    let mut reached: HashMap<(u32, u16, u8), usize> = HashMap::new();
    let mut clients = 0usize;
    // What this pass found of each series, in the order the next pass meets them, so the
    // scope is asked once a series.
    let mut kinds: Vec<SeriesKind> = Vec::new();
    for c in memory.clients() {
        let mut any = false;
        for s in series(&c.flows) {
            let kind = if ignored(&s[0]) {
                counts.ignored_port += s.len() as u64;
                SeriesKind::Ignored
            } else if outbound(c.ip, s) {
                *reached.entry((s[0].dst, s[0].port, s[0].proto)).or_default() += 1;
                any = true;
                SeriesKind::Outbound
            } else {
                SeriesKind::Inside
            };
            kinds.push(kind);
        }
        clients += usize::from(any);
    }
    let mut kinds = kinds.into_iter();
    let bar = super::Popularity::new(cfg.popular_clients, cfg.popular_share, clients);
    let mut out = Vec::new();
    let popular =
        |dst: u32, port: u16, proto: u8| bar.popular(reached.get(&(dst, port, proto)).copied().unwrap_or(0));
    // Past the bound, the earliest flows are analysed (as a sensor that stopped adding to a
    // full series would have).
    let bounded = |s: &[Flow], counts: &mut BeaconCounts| -> usize {
        let kept = s.len().min(cfg.max_events_per_series.max(1));
        counts.over_series_bound += (s.len() - kept) as u64;
        kept
    };
    let timed = |s: &[Flow]| -> Vec<(Timestamp, u64)> {
        s.iter().map(|e| (Timestamp(e.t), u64::from(e.bytes))).collect()
    };
    for c in memory.clients() {
        // (port, protocol) of this client's beacons to one destination.
        let mut beaconing: Vec<(u16, u8)> = Vec::new();
        // Series that may be part of a destination set: (port, protocol, start, length).
        let mut parts: Vec<(u16, u8, usize, usize)> = Vec::new();
        let mut at = 0;
        for s in series(&c.flows) {
            let start = at;
            at += s.len();
            let kind = kinds.next().expect("one kind per series, in the same order");
            if kind == SeriesKind::Ignored {
                continue;
            }
            let out_of_net = kind == SeriesKind::Outbound;
            if out_of_net && !popular(s[0].dst, s[0].port, s[0].proto) {
                parts.push((s[0].port, s[0].proto, start, s.len()));
            }
            if s.len() < cfg.min_events {
                continue;
            }
            if !out_of_net {
                counts.not_outbound += 1;
                continue;
            }
            let s = &s[..bounded(s, &mut counts)];
            let st = analyse(&timed(s), cfg);
            if !st.is_beacon {
                continue;
            }
            let (dst, port, proto) = (s[0].dst, s[0].port, s[0].proto);
            if popular(dst, port, proto) {
                counts.popular += 1;
                continue;
            }
            beaconing.push((port, proto));
            let dest = std::net::SocketAddr::new(memory.dest(dst), port).to_string();
            out.push(finding(c.ip, s, &st, &dest, vec![dest.clone()]));
        }
        // Several C2 addresses in turn: one client, one port, a few unpopular destinations
        // none of which beacons alone, together on a beat. Only the series' positions are
        // sorted, and flows are gathered for the few (port, protocol) that qualify.
        if cfg.max_destination_set < 2 || parts.len() < 2 {
            continue;
        }
        parts.sort_unstable_by_key(|p| (p.0, p.1));
        for group in parts.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let total: usize = group.iter().map(|p| p.3).sum();
            if group.len() < 2
                || group.len() > cfg.max_destination_set
                || total < cfg.min_events
                || beaconing.contains(&(group[0].0, group[0].1))
            {
                continue;
            }
            let mut set: Vec<Flow> =
                group.iter().flat_map(|p| c.flows[p.2..p.2 + p.3].iter().copied()).collect();
            set.sort_unstable_by_key(|f| (f.t, f.bytes));
            let s = &set[..bounded(&set, &mut counts)];
            let st = analyse(&timed(s), cfg);
            if !st.is_beacon {
                continue;
            }
            let port = s[0].port;
            let addrs: Vec<String> =
                group.iter().map(|p| memory.dest(c.flows[p.2].dst).to_string()).collect();
            let dest = format!("{} addresses in turn on port {port} ({})", addrs.len(), addrs.join(", "));
            let samples = addrs.iter().map(|a| format!("{a}:{port}")).collect();
            out.push(finding(c.ip, s, &st, &dest, samples));
        }
    }
    super::rank(&mut out);
    (out, counts)
}

/// The finding of a beaconing series, its evidence stated.
fn finding(client: IpAddr, s: &[Flow], st: &BeaconStats, dest: &str, samples: Vec<String>) -> Finding {
    let unanswered = s.iter().filter(|e| e.answered() == Some(false)).count();
    let proto = super::proto_name(s[0].proto);
    let beat = if st.cycle > 1 { format!(" in cycles of {} attempts", st.cycle) } else { String::new() };
    Finding {
        client,
        kind: FindingKind::Beacon,
        confidence: st.confidence,
        reason: format!(
            "{} connections to {dest}/{proto}{beat} every {:.1} s ± {:.1} s, {:.0} ± {:.0} bytes, over {:.0} s \
             ({:.0} % of beats regular, {} missed beats{})",
            st.events,
            st.period_secs,
            st.period_sd_secs,
            st.bytes_mean,
            st.bytes_sd,
            st.span_secs,
            st.fit * 100.0,
            st.missed_beats,
            if unanswered > 0 { format!(", {unanswered} unanswered or refused") } else { String::new() }
        ),
        count: st.events,
        first_seen: Timestamp(s[0].t),
        last_seen: Timestamp(s[s.len() - 1].t),
        samples,
    }
}

/// Test one series, sorted by time, for beaconing: the smallest cycle that is regular, or
/// (none being) the plain one.
pub fn analyse(events: &[(Timestamp, u64)], cfg: &BeaconConfig) -> BeaconStats {
    let mut first = None;
    for k in 1..=cfg.max_cycle.max(1) {
        let s = analyse_cycle(events, cfg, k);
        if s.is_beacon {
            return s;
        }
        first.get_or_insert(s);
    }
    first.unwrap_or_else(|| analyse_cycle(events, cfg, 1))
}

fn analyse_cycle(events: &[(Timestamp, u64)], cfg: &BeaconConfig, k: usize) -> BeaconStats {
    let n = events.len();
    let span = if n > 1 { (events[n - 1].0.0 - events[0].0.0) as f64 / 1e6 } else { 0.0 };
    // Gaps summed over k consecutive attempts, one sum per cycle.
    let gaps: Vec<f64> = events
        .iter()
        .step_by(k)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1].0.0 - w[0].0.0) as f64 / 1e6)
        .collect();
    let sizes: Vec<f64> = events.iter().map(|e| e.1 as f64).collect();
    let (bytes_mean, bytes_sd) = mean_sd(&sizes);
    let med_size = median(&sizes);
    let size_fit =
        ratio(sizes.iter().filter(|s| (**s - med_size).abs() <= (0.25 * med_size).max(64.0)).count(), n);
    let p0 = median(&gaps);
    let mut units = Vec::with_capacity(gaps.len());
    let mut missed = 0u64;
    // A cycle of attempts is a repeating pattern: a missing beat would shift it, so only
    // plain series have their long gaps divided into beats.
    let max_beats = if k == 1 { cfg.max_missed_beats as f64 } else { 1.0 };
    if p0 > 0.0 {
        for g in &gaps {
            let m = (g / p0).round();
            if m >= 1.0 && m <= max_beats {
                let unit = g / m;
                if (unit - p0).abs() <= cfg.tolerance * p0 {
                    units.push(unit);
                    missed += m as u64 - 1;
                }
            }
        }
    }
    let fit = ratio(units.len(), gaps.len());
    let (period, period_sd) = mean_sd(&units);
    let cv = if period > 0.0 { period_sd / period } else { f64::INFINITY };
    // A longer cycle needs as many beats as a plain series does.
    let beats = gaps.len() + 1;
    let is_beacon = n >= cfg.min_events
        && beats * k >= cfg.min_events
        && beats >= (cfg.min_events / k).max(4)
        && span >= cfg.min_span_secs
        && period >= cfg.min_period_secs
        && fit >= cfg.min_fit
        // Random gaps, divided into "beats", fit often; a beacon misses few beats.
        && missed as usize * 2 <= units.len()
        && cv <= cfg.max_cv
        && size_fit >= cfg.min_size_fit;
    let repetition = (n as f64 / (3.0 * cfg.min_events as f64)).min(1.0);
    let confidence = if is_beacon {
        (0.35 * fit + 0.2 * size_fit + 0.25 * (1.0 - cv / cfg.max_cv).max(0.0) + 0.2 * repetition)
            .clamp(0.0, 1.0)
    } else {
        0.0
    };
    BeaconStats {
        events: n,
        cycle: k,
        period_secs: period,
        period_sd_secs: period_sd,
        fit,
        missed_beats: missed,
        bytes_mean,
        bytes_sd,
        size_fit,
        span_secs: span,
        confidence,
        is_beacon,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: deterministic noise without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn flow(t: f64, src: &str, dst: &str, port: u16, bytes: u64) -> FlowRecord {
        let start = Timestamp((t * 1e6) as i64);
        FlowRecord {
            start,
            end: start,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 40000,
            dst_port: port,
            proto: 6,
            packets: 4,
            bytes,
            resp_bytes: None,
            exporter: None,
            answered: None,
            local_orig: None,
            local_resp: None,
        }
    }

    #[test]
    fn jittered_beacon_with_missing_beats_is_found() {
        let mut rng = Rng(7);
        let mut d = BeaconDetector::new(BeaconConfig::default());
        let mut t = 1_700_000_000.0;
        for i in 0..60 {
            t += 60.0 * (1.0 + 0.1 * (2.0 * rng.next() - 1.0));
            if i % 9 == 4 {
                continue; // a missed beat
            }
            d.observe(&flow(t, "10.0.0.5", "203.0.113.9", 443, 300 + (rng.next() * 20.0) as u64));
        }
        let f = d.finish(&Scope::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::Beacon);
        assert_eq!(f[0].samples, vec!["203.0.113.9:443".to_string()]);
        assert!(f[0].confidence > 0.6, "{:?}", f[0]);
        assert!(f[0].reason.contains("every 6"), "{}", f[0].reason);
    }

    #[test]
    fn a_c2_moving_between_addresses_is_one_series() {
        let mut rng = Rng(5);
        let mut d = BeaconDetector::new(BeaconConfig::default());
        // Every 30 s (± 1 s) for half an hour, the C2 address changing every five beats among
        // six: ten connections to each, too few for a series of its own.
        for i in 0..60 {
            let t = i as f64 * 30.0 + rng.next();
            let dst = format!("198.51.100.{}", 10 + (i / 5) % 6);
            d.observe(&flow(t, "10.0.0.5", &dst, 8443, 400 + (rng.next() * 20.0) as u64));
        }
        // A browser on 443 to six sites, Poisson arrivals, pages of all sizes: no beat.
        let mut t = 0.0;
        for _ in 0..120 {
            t += -20.0 * (1.0 - rng.next()).ln();
            let site = (rng.next() * 6.0) as u32;
            d.observe(&flow(
                t,
                "10.0.0.6",
                &format!("203.0.113.{site}"),
                443,
                300 + (rng.next() * 3000.0) as u64,
            ));
        }
        let found = d.finish(&Scope::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].client.to_string(), "10.0.0.5");
        assert!(found[0].reason.contains("6 addresses in turn on port 8443"), "{}", found[0].reason);
        assert_eq!(found[0].samples.len(), 6);
        // Off, it is not tested.
        let mut d = BeaconDetector::new(BeaconConfig { max_destination_set: 0, ..Default::default() });
        for i in 0..60 {
            let dst = format!("198.51.100.{}", 10 + (i / 5) % 6);
            d.observe(&flow(i as f64 * 30.0, "10.0.0.5", &dst, 8443, 400));
        }
        assert!(d.finish(&Scope::default()).is_empty());
    }

    #[test]
    fn browsing_like_random_intervals_are_not_beacons() {
        let mut rng = Rng(11);
        let mut flagged = 0;
        for series in 0..300 {
            let mut events = Vec::new();
            let mut t = 0.0;
            let mean = 5.0 + series as f64;
            for _ in 0..80 {
                // Exponential gaps (Poisson arrivals) and variable sizes, as page loads.
                t += -mean * (1.0 - rng.next()).ln();
                events.push((Timestamp((t * 1e6) as i64), 300 + (rng.next() * 200.0) as u64));
            }
            if analyse(&events, &BeaconConfig::default()).is_beacon {
                flagged += 1;
            }
        }
        assert_eq!(flagged, 0);
    }

    #[test]
    fn regular_timing_with_random_sizes_is_not_a_beacon() {
        let mut rng = Rng(3);
        let events: Vec<_> =
            (0..50).map(|i| (Timestamp::from_secs(i * 30), 100 + (rng.next() * 50_000.0) as u64)).collect();
        let s = analyse(&events, &BeaconConfig::default());
        assert!(s.fit > 0.99 && !s.is_beacon, "{s:?}");
    }

    #[test]
    fn too_few_or_too_short_series_are_ignored() {
        let cfg = BeaconConfig::default();
        let few: Vec<_> = (0..5).map(|i| (Timestamp::from_secs(i * 60), 300)).collect();
        assert!(!analyse(&few, &cfg).is_beacon);
        let short: Vec<_> = (0..50).map(|i| (Timestamp::from_micros(i * 100_000), 300)).collect();
        assert!(!analyse(&short, &cfg).is_beacon);
        assert!(!analyse(&[], &cfg).is_beacon);
    }
}

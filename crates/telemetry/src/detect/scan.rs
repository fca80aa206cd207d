//! Scanning: an internal client that tries many Internet hosts on one port (a worm looking
//! for its next victim: telnet, SMB, RDP), many ports of one host, or pings many hosts, and
//! is mostly not answered. A user's own traffic reaches many hosts too (a page load touches
//! dozens of CDNs), but is answered: the unanswered share is what tells them apart.
//!
//! Per internal client the detector keeps its outbound attempts (bounded). At
//! [`ScanDetector::finish`], within any `window_secs`, it counts:
//! - distinct destinations on one (protocol, port): a horizontal scan;
//! - distinct ports on one destination: a vertical scan;
//! - distinct destinations of ICMP echo requests: a sweep.
//!
//! A count at or over `min_targets` flags the client when at least `min_unanswered` of the
//! attempts whose outcome the record says went unanswered or were refused; where no record
//! says (NetFlow), `unknown_factor` times as many targets are needed. ICMP sweeps need only
//! the count: a flow record rarely says whether an echo was answered.

use super::scope::{Scope, Vantage, never_a_host};
use super::{Finding, FindingKind};
use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
// foldhash: the per-flow map lookups are the detectors' cost (SipHash was a third of it).
use foldhash::{HashMap, HashMapExt, HashSet};
use std::net::IpAddr;

/// Thresholds of [`ScanDetector`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// The window targets are counted in, seconds.
    pub window_secs: f64,
    /// Distinct targets (hosts on one port, ports on one host, hosts pinged) in a window.
    pub min_targets: usize,
    /// Share of attempts with a known outcome that went unanswered or were refused.
    pub min_unanswered: f64,
    /// How many times `min_targets` are needed when no record says whether attempts were
    /// answered.
    pub unknown_factor: usize,
    /// DNS queries (flows to port 53, each from its own source port) within
    /// `query_burst_secs` that make a resolution storm: hundreds of names looked up at once,
    /// as a DGA does, seen in flow telemetry where the names are not.
    pub query_burst: usize,
    pub query_burst_secs: f64,
    /// Memory bounds.
    pub max_attempts_per_client: usize,
    pub max_clients: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            window_secs: 60.0,
            min_targets: 20,
            min_unanswered: 0.8,
            unknown_factor: 4,
            query_burst: 50,
            query_burst_secs: 5.0,
            max_attempts_per_client: 20_000,
            max_clients: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    t: Timestamp,
    dst: IpAddr,
    sport: u16,
    port: u16,
    proto: u8,
    answered: Option<bool>,
}

#[derive(Debug, Default)]
struct Client {
    attempts: Vec<Attempt>,
    /// Zeek's word on the client's side, from its first flow.
    local: Option<bool>,
}

/// Collects flows and reports scanning clients.
#[derive(Debug)]
pub struct ScanDetector {
    cfg: ScanConfig,
    clients: HashMap<IpAddr, Client>,
    vantage: Vantage,
    dropped: u64,
}

/// The kind of sweep a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sweep {
    /// Many hosts on one port (protocol, port).
    Hosts(u8, u16),
    /// Many ports of one host.
    Ports(IpAddr),
    /// Many hosts pinged.
    Echo,
    /// Many DNS queries to one resolver at once.
    Queries(IpAddr),
}

impl ScanDetector {
    pub fn new(cfg: ScanConfig) -> Self {
        ScanDetector { cfg, clients: HashMap::new(), vantage: Vantage::default(), dropped: 0 }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Internal state held now: (clients, bytes), counted from the containers' capacities.
    pub fn state(&self) -> (usize, usize) {
        let per_entry = std::mem::size_of::<(IpAddr, Client)>() + 1;
        let attempts: usize = self.clients.values().map(|c| c.attempts.capacity()).sum();
        (self.clients.len(), self.clients.capacity() * per_entry + attempts * std::mem::size_of::<Attempt>())
    }

    pub fn observe(&mut self, f: &FlowRecord) {
        if never_a_host(f.src) || never_a_host(f.dst) {
            return;
        }
        self.vantage.observe(f);
        // Only attempts: ICMP other than echo requests (replies, errors) is no probe.
        let echo = matches!((f.proto, f.dst_port >> 8), (1, 8) | (58, 128));
        if matches!(f.proto, 1 | 58) && !echo {
            return;
        }
        let full = self.clients.len() >= self.cfg.max_clients;
        let a = Attempt {
            t: f.start,
            dst: f.dst,
            sport: f.src_port,
            port: f.dst_port,
            proto: f.proto,
            answered: f.answered,
        };
        match self.clients.get_mut(&f.src) {
            Some(c) if c.attempts.len() < self.cfg.max_attempts_per_client => c.attempts.push(a),
            None if !full => {
                self.clients.insert(f.src, Client { attempts: vec![a], local: f.local_orig });
            }
            _ => self.dropped += 1,
        }
    }

    /// One finding per scanning internal client (its widest sweep), highest confidence first.
    pub fn finish(self, scope: &Scope) -> Vec<Finding> {
        let scope = scope.clone().with_vantage(&self.vantage);
        let window = (self.cfg.window_secs * 1e6) as i64;
        let mut out = Vec::new();
        for (client, c) in self.clients {
            if c.attempts.len() < self.cfg.min_targets {
                continue;
            }
            let mut attempts: Vec<Attempt> =
                c.attempts.into_iter().filter(|a| scope.outbound(client, a.dst, c.local, None)).collect();
            if attempts.len() < self.cfg.min_targets {
                continue;
            }
            attempts.sort_by_key(|a| a.t);
            let mut best: Option<(Sweep, usize, usize, usize, Timestamp, Timestamp)> = None;
            let mut best_queries: Option<(Sweep, usize, usize, usize, Timestamp, Timestamp)> = None;
            let mut groups: HashMap<Sweep, Vec<&Attempt>> = HashMap::new();
            for a in &attempts {
                let echo = matches!(a.proto, 1 | 58);
                if echo {
                    groups.entry(Sweep::Echo).or_default().push(a);
                } else if a.port == 53 {
                    groups.entry(Sweep::Queries(a.dst)).or_default().push(a);
                } else {
                    groups.entry(Sweep::Hosts(a.proto, a.port)).or_default().push(a);
                    groups.entry(Sweep::Ports(a.dst)).or_default().push(a);
                }
            }
            for (sweep, list) in &groups {
                if list.len() < self.cfg.min_targets {
                    continue;
                }
                // The window with the most distinct targets (two pointers over time).
                let target = |a: &Attempt| match sweep {
                    Sweep::Ports(_) => (a.port as u128, a.proto),
                    Sweep::Queries(_) => (a.sport as u128, a.proto),
                    _ => (ip_bits(a.dst), a.proto),
                };
                let window = match sweep {
                    Sweep::Queries(_) => (self.cfg.query_burst_secs * 1e6) as i64,
                    _ => window,
                };
                let mut counts: HashMap<(u128, u8), usize> = HashMap::new();
                let mut lo = 0;
                let mut distinct = 0usize;
                for hi in 0..list.len() {
                    *counts.entry(target(list[hi])).or_default() += 1;
                    while list[hi].t.0 - list[lo].t.0 > window {
                        let k = target(list[lo]);
                        if let Some(n) = counts.get_mut(&k) {
                            *n -= 1;
                            if *n == 0 {
                                counts.remove(&k);
                            }
                        }
                        lo += 1;
                    }
                    distinct = distinct.max(counts.len());
                }
                let known = list.iter().filter(|a| a.answered.is_some()).count();
                let unanswered = list.iter().filter(|a| a.answered == Some(false)).count();
                let needed = if let Sweep::Queries(_) = sweep {
                    self.cfg.query_burst
                } else if *sweep == Sweep::Echo {
                    self.cfg.min_targets
                } else if known * 2 >= list.len() {
                    if (unanswered as f64) < self.cfg.min_unanswered * known as f64 {
                        continue;
                    }
                    self.cfg.min_targets
                } else {
                    self.cfg.min_targets * self.cfg.unknown_factor
                };
                // The widest scan and the largest query storm, each its own finding.
                let slot = if matches!(sweep, Sweep::Queries(_)) { &mut best_queries } else { &mut best };
                if distinct >= needed && slot.as_ref().is_none_or(|b| distinct > b.1) {
                    let all: HashSet<(u128, u8)> = list.iter().map(|a| target(a)).collect();
                    *slot =
                        Some((*sweep, distinct, all.len(), unanswered, list[0].t, list[list.len() - 1].t));
                }
            }
            for (sweep, distinct, total, unanswered, first, last) in best.into_iter().chain(best_queries) {
                let (kind, reason, sample, confidence) = match sweep {
                    Sweep::Queries(resolver) => (
                        FindingKind::QueryBurst,
                        format!(
                            "{distinct} DNS queries to {resolver} within {:.0} s, {total} in all (names not in flow telemetry)",
                            self.cfg.query_burst_secs
                        ),
                        format!("{resolver}:53"),
                        0.55 + 0.4 * (distinct as f64 / (4.0 * self.cfg.query_burst as f64)).min(1.0),
                    ),
                    other => {
                        let (what, sample) = match other {
                            Sweep::Hosts(proto, port) => (
                                format!("{total} hosts on {port}/{}", super::proto_name(proto)),
                                format!("*:{port}/{}", super::proto_name(proto)),
                            ),
                            Sweep::Ports(dst) => (format!("{total} ports of {dst}"), dst.to_string()),
                            _ => (format!("{total} hosts pinged"), "icmp echo".to_string()),
                        };
                        (
                            FindingKind::Scan,
                            format!(
                                "scanned {what}, {distinct} within {:.0} s; {unanswered} attempts unanswered or refused",
                                self.cfg.window_secs
                            ),
                            sample,
                            0.6 + 0.4 * (distinct as f64 / (4.0 * self.cfg.min_targets as f64)).min(1.0),
                        )
                    }
                };
                out.push(Finding {
                    client,
                    kind,
                    confidence: confidence.min(1.0),
                    reason,
                    count: total,
                    first_seen: first,
                    last_seen: last,
                    samples: vec![sample],
                });
            }
        }
        super::rank(&mut out);
        out
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: f64, src: &str, dst: String, port: u16, proto: u8, answered: Option<bool>) -> FlowRecord {
        let start = Timestamp((t * 1e6) as i64);
        FlowRecord {
            start,
            end: start,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 40000,
            dst_port: port,
            proto,
            packets: 1,
            bytes: 60,
            exporter: None,
            answered,
            local_orig: None,
            local_resp: None,
        }
    }

    #[test]
    fn worms_scan_browsers_do_not() {
        let mut d = ScanDetector::new(ScanConfig::default());
        // A telnet worm: one random host a second, nobody answers.
        for i in 0..60 {
            d.observe(&f(
                i as f64,
                "192.168.2.16",
                format!("{}.{}.7.9", 20 + i, i * 3 % 250),
                23,
                6,
                Some(false),
            ));
        }
        // A vertical scan of one host.
        for p in 0..25 {
            d.observe(&f(p as f64, "10.8.0.69", "14.1.11.113".into(), 999 - p, 6, Some(false)));
        }
        // A browser: 80 hosts on 443 in a minute, all answered.
        for i in 0..80 {
            d.observe(&f(i as f64 * 0.5, "192.168.2.20", format!("{}.1.2.3", 20 + i), 443, 6, Some(true)));
        }
        // The Internet scanning us: not our client.
        for i in 0..60 {
            d.observe(&f(i as f64, "46.166.151.160", format!("192.168.2.{}", i + 1), 3389, 6, Some(false)));
        }
        let found = d.finish(&Scope::default());
        let set: std::collections::BTreeSet<String> = found.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(set, ["10.8.0.69", "192.168.2.16"].map(String::from).into_iter().collect(), "{found:#?}");
        let worm = found.iter().find(|f| f.client.to_string() == "192.168.2.16").unwrap();
        assert!(worm.reason.contains("60 hosts on 23/tcp"), "{}", worm.reason);
    }

    #[test]
    fn a_storm_of_queries_is_one_and_a_page_load_is_not() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let q = |t: f64, src: &str, sport: u16| {
            let mut r = f(t, src, "8.8.8.8".into(), 53, 17, Some(true));
            r.src_port = sport;
            r
        };
        for i in 0..90 {
            d.observe(&q(100.0 + i as f64 / 100.0, "10.0.2.15", 30000 + i));
        }
        // A browser's busiest second, and its day: 30 at once, 600 in all.
        for i in 0..600 {
            d.observe(&q(if i < 30 { 50.0 } else { 100.0 + i as f64 * 6.0 }, "10.0.2.20", 20000 + i));
        }
        let found = d.finish(&Scope::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            (found[0].client.to_string(), found[0].kind),
            ("10.0.2.15".to_string(), FindingKind::QueryBurst)
        );
        assert!(found[0].reason.starts_with("90 DNS queries to 8.8.8.8 within 5 s"), "{}", found[0].reason);
    }
}

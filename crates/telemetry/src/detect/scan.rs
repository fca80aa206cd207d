//! Scanning: an internal client that tries many hosts on one port (a worm looking for its
//! next victim: telnet, SMB, RDP), many ports of one host, or pings many hosts, and is mostly
//! not answered. The hosts may be on the Internet or inside the network: a worm spreading
//! sideways scans its own LAN, and a subscriber scanning other subscribers is as much abuse.
//! A user's own traffic reaches many hosts too (a page load touches dozens of CDNs), but is
//! answered: the unanswered share is what tells them apart.
//!
//! Per client the flows are kept ([`FlowMemory`], bounded). At [`find`], over each internal
//! client's attempts (to any host: multicast and broadcast are none; to hosts inside the
//! network only where the record says whether it was answered, as Zeek, Argus and packets
//! do and a one-direction NetFlow record does not), within any `window_secs`, it counts:
//! - distinct destinations on one (protocol, port): a horizontal scan;
//! - distinct ports on one destination: a vertical scan;
//! - distinct destinations of ICMP echo requests: a sweep;
//! - DNS queries to one resolver, each from its own source port: a storm (to the network's
//!   own resolver too, where a DGA's look-ups usually go).
//!
//! A count at or over `min_targets` flags the client when at least `min_unanswered` of the
//! attempts whose outcome the record says went unanswered or were refused; where no record
//! says (NetFlow), `unknown_factor` times as many targets are needed. ICMP sweeps need only
//! the count: a flow record rarely says whether an echo was answered.

use super::flows::{Flow, FlowMemory};
use super::scope::Scope;
use super::{Finding, FindingKind};
use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
// foldhash: the per-flow map lookups are the detectors' cost (SipHash was a third of it).
use foldhash::HashSet;
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
        }
    }
}

/// An attempt is a kept flow; its destination is a number in the memory (distinct numbers
/// are distinct hosts), resolved to an address only for the scope and the finding.
type Attempt = Flow;

/// Collects flows and reports scanning clients: a [`FlowMemory`] of its own and [`find`].
#[derive(Debug)]
pub struct ScanDetector {
    cfg: ScanConfig,
    memory: FlowMemory,
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
        ScanDetector { cfg, memory: FlowMemory::default() }
    }

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

    /// One finding per scanning internal client (its widest sweep), highest confidence first.
    pub fn finish(self, scope: &Scope) -> Vec<Finding> {
        find(&self.memory, &self.cfg, scope)
    }
}

/// The scanning clients in a memory of flows, one finding per client and kind of sweep,
/// highest confidence first.
pub fn find(memory: &FlowMemory, cfg: &ScanConfig, scope: &Scope) -> Vec<Finding> {
    let scope = scope.clone().with_vantage(memory.vantage());
    let window = (cfg.window_secs * 1e6) as i64;
    let mut out = Vec::new();
    for c in memory.clients() {
        if c.flows.len() < cfg.min_targets {
            continue;
        }
        let client = c.ip;
        // Whether the client is internal depends on the flow only through its `local_orig`:
        // asked once for each of its three values, not once a flow.
        let internal = [None, Some(false), Some(true)].map(|lo| scope.internal_client(client, lo));
        let is_internal = |lo: Option<bool>| internal[lo.map_or(0, |l| 1 + usize::from(l))];
        // Only attempts: ICMP other than echo requests (replies, errors) is no probe.
        let attempts: Vec<&Attempt> = c
            .flows
            .iter()
            .filter(|f| !matches!(f.proto, 1 | 58) || crate::record::is_echo_request(f.proto, f.port))
            // Inside targets only where the record says how the attempt went: a NetFlow
            // record is one direction, and an internal server's replies to a LAN client's
            // changing ports would look like a scan of that client.
            .filter(|f| {
                is_internal(f.local_orig())
                    && (f.answered().is_some()
                        || scope.outbound(client, memory.dest(f.dst), f.local_orig(), None))
            })
            .collect();
        if attempts.len() < cfg.min_targets {
            continue;
        }
        let mut best: Option<(Sweep, usize, usize, usize, Timestamp, Timestamp)> = None;
        // Every sweep that reached the bar (a port scan, then a ping sweep): the finding names
        // the widest, and spans them all, so it dates from the first evidence.
        let (mut sweeps, mut earliest, mut latest) = (0usize, Timestamp(i64::MAX), Timestamp(i64::MIN));
        let mut best_queries: Option<(Sweep, usize, usize, usize, Timestamp, Timestamp)> = None;
        // The groups a sweep is counted in, each in time order. Sorting and cutting runs
        // instead of a map of lists: most clients' groups are small and cost no allocation.
        let mut groups: Vec<(Sweep, Vec<&Attempt>)> = Vec::new();
        fn keep<'a>(
            groups: &mut Vec<(Sweep, Vec<&'a Attempt>)>,
            min: usize,
            sweep: Sweep,
            run: &[&'a Attempt],
        ) {
            if !run.is_empty() && run.len() >= min {
                groups.push((sweep, run.to_vec()));
            }
        }
        let min = cfg.min_targets;
        let (mut echo, mut rest): (Vec<&Attempt>, Vec<&Attempt>) =
            attempts.iter().partition(|a| matches!(a.proto, 1 | 58));
        echo.sort_unstable_by_key(|a| a.t);
        keep(&mut groups, min, Sweep::Echo, &echo);
        rest.sort_unstable_by_key(|a| (a.port == 53, a.dst, a.t));
        for run in rest.chunk_by(|a, b| (a.port == 53, a.dst) == (b.port == 53, b.dst)) {
            keep(
                &mut groups,
                min,
                if run[0].port == 53 {
                    Sweep::Queries(memory.dest(run[0].dst))
                } else {
                    Sweep::Ports(memory.dest(run[0].dst))
                },
                run,
            );
        }
        rest.retain(|a| a.port != 53);
        rest.sort_unstable_by_key(|a| (a.proto, a.port, a.t));
        for run in rest.chunk_by(|a, b| (a.proto, a.port) == (b.proto, b.port)) {
            keep(&mut groups, min, Sweep::Hosts(run[0].proto, run[0].port), run);
        }
        for (sweep, list) in &groups {
            let known = list.iter().filter(|a| a.answered().is_some()).count();
            let unanswered = list.iter().filter(|a| a.answered() == Some(false)).count();
            let needed = if let Sweep::Queries(_) = sweep {
                cfg.query_burst
            } else if *sweep == Sweep::Echo {
                cfg.min_targets
            } else if known * 2 >= list.len() {
                if (unanswered as f64) < cfg.min_unanswered * known as f64 {
                    continue;
                }
                cfg.min_targets
            } else {
                cfg.min_targets * cfg.unknown_factor
            };
            // Fewer attempts than targets needed: no window can hold enough.
            if list.len() < needed {
                continue;
            }
            // The window with the most distinct targets (two pointers over time).
            let target = |a: &Attempt| match sweep {
                Sweep::Ports(_) => (a.port as u128, a.proto),
                Sweep::Queries(_) => (a.sport as u128, a.proto),
                _ => (a.dst as u128, a.proto),
            };
            let window = match sweep {
                Sweep::Queries(_) => (cfg.query_burst_secs * 1e6) as i64,
                _ => window,
            };
            let (distinct, from, to) = super::widest_window(list, |a| a.t, |a| target(a), window, needed);
            let from = from.unwrap_or(list[0].t);
            // The widest scan and the largest query storm, each its own finding.
            let slot = if matches!(sweep, Sweep::Queries(_)) { &mut best_queries } else { &mut best };
            if distinct >= needed && !matches!(sweep, Sweep::Queries(_)) {
                sweeps += 1;
                earliest = earliest.min(Timestamp(from));
                latest = latest.max(Timestamp(to));
            }
            if distinct >= needed && slot.as_ref().is_none_or(|b| distinct > b.1) {
                let all: HashSet<(u128, u8)> = list.iter().map(|a| target(a)).collect();
                *slot = Some((*sweep, distinct, all.len(), unanswered, Timestamp(from), Timestamp(to)));
            }
        }
        if let Some(b) = best.as_mut() {
            (b.4, b.5) = (earliest, latest);
        }
        for (sweep, distinct, total, unanswered, first, last) in best.into_iter().chain(best_queries) {
            let (kind, reason, sample, confidence) = match sweep {
                Sweep::Queries(resolver) => (
                    FindingKind::QueryBurst,
                    format!(
                        "{distinct} DNS queries to {resolver} within {:.0} s, {total} in all (names not in flow telemetry)",
                        cfg.query_burst_secs
                    ),
                    format!("{resolver}:53"),
                    0.55 + 0.4 * (distinct as f64 / (4.0 * cfg.query_burst as f64)).min(1.0),
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
                            "scanned {what}, {distinct} within {:.0} s; {unanswered} attempts unanswered or refused{}",
                            cfg.window_secs,
                            match sweeps {
                                0 | 1 => String::new(),
                                2 => " (and one more sweep)".to_string(),
                                n => format!(" (and {} more sweeps)", n - 1),
                            }
                        ),
                        sample,
                        0.6 + 0.4 * (distinct as f64 / (4.0 * cfg.min_targets as f64)).min(1.0),
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
            resp_bytes: None,
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
        // A worm sweeping its own LAN for SMB, and a host whose LAN answers it (discovery).
        for i in 0..30 {
            d.observe(&f(i as f64, "192.168.5.7", format!("192.168.5.{}", 100 + i), 445, 6, Some(false)));
            d.observe(&f(i as f64, "192.168.6.7", format!("192.168.6.{}", 100 + i), 445, 6, Some(true)));
        }
        // The Internet scanning us: not our client.
        for i in 0..60 {
            d.observe(&f(i as f64, "46.166.151.160", format!("192.168.2.{}", i + 1), 3389, 6, Some(false)));
        }
        let found = d.finish(&Scope::default());
        let set: std::collections::BTreeSet<String> = found.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(
            set,
            ["10.8.0.69", "192.168.2.16", "192.168.5.7"].map(String::from).into_iter().collect(),
            "{found:#?}"
        );
        let worm = found.iter().find(|f| f.client.to_string() == "192.168.2.16").unwrap();
        assert!(worm.reason.contains("60 hosts on 23/tcp"), "{}", worm.reason);
    }

    #[test]
    fn a_ping_sweep_in_a_zeek_log_is_found() {
        // Nmap's host discovery as Zeek logs it (an echo request is type 8 as the originator's
        // port), and a host pinging its gateway all along.
        let mut log = String::new();
        for i in 2..40 {
            log.push_str(&format!(
                r#"{{"ts":{},"id.orig_h":"172.16.1.11","id.orig_p":8,"id.resp_h":"172.16.1.{i}","id.resp_p":0,"proto":"icmp","conn_state":"OTH","local_orig":true,"local_resp":true,"orig_pkts":2,"resp_pkts":2}}"#,
                1_664_464_850.0 + i as f64 * 0.001
            ));
            log.push('\n');
            log.push_str(&format!(
                r#"{{"ts":{},"id.orig_h":"172.16.1.12","id.orig_p":8,"id.resp_h":"172.16.1.1","id.resp_p":0,"proto":"icmp","conn_state":"OTH","local_orig":true,"local_resp":true,"orig_pkts":1,"resp_pkts":1}}"#,
                1_664_464_850.0 + i as f64
            ));
            log.push('\n');
        }
        // The scanner pinged its gateway hours before, and scans one host's ports after.
        log.push_str(
            r#"{"ts":1664450000.0,"id.orig_h":"172.16.1.11","id.orig_p":8,"id.resp_h":"172.16.1.1","id.resp_p":0,"proto":"icmp","conn_state":"OTH","local_orig":true,"local_resp":true,"orig_pkts":1,"resp_pkts":1}"#,
        );
        log.push('\n');
        for p in 0..30 {
            log.push_str(&format!(
                r#"{{"ts":{},"id.orig_h":"172.16.1.11","id.orig_p":40000,"id.resp_h":"172.16.1.30","id.resp_p":{},"proto":"tcp","conn_state":"REJ","local_orig":true,"local_resp":true,"orig_pkts":1,"resp_pkts":1}}"#,
                1_664_464_900.0 + p as f64 * 0.01,
                1000 + p
            ));
            log.push('\n');
        }
        let mut records = Vec::new();
        crate::flow::log::read_log(
            log.as_bytes(),
            crate::flow::log::LogKind::Zeek,
            &mut records,
            &mut Vec::new(),
        )
        .unwrap();
        let mut d = ScanDetector::new(ScanConfig::default());
        records.iter().for_each(|r| d.observe(r));
        let found = d.finish(&Scope::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].client.to_string(), "172.16.1.11");
        assert!(found[0].reason.contains("39 hosts pinged, 38 within 60 s"), "{}", found[0].reason);
        // One finding, the widest sweep, spanning both sweeps' evidence and not the gateway's ping.
        assert!(found[0].reason.ends_with("(and one more sweep)"), "{}", found[0].reason);
        assert_eq!(found[0].first_seen, Timestamp(1_664_464_850_002_000));
        assert_eq!(found[0].last_seen, Timestamp(1_664_464_900_290_000));
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

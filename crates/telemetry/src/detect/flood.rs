//! Floods: an internal client taking part in a denial-of-service attack, sending one Internet
//! host far more than any conversation would, and getting nothing back. What Rbot and the
//! Mirai family do on command (CTU-13's Rbot captures, IoT-23's DDoS labels), and what an
//! ISP's abuse desk hears about from the victim. Per client and target host, within any
//! `window_secs`:
//! - connection attempts nobody answered or the target refused (a SYN flood, a UDP flood
//!   over changing ports): `min_attempts` of them; where the records do not say whether
//!   attempts were answered (NetFlow), `unknown_factor` times as many;
//! - bytes of ICMP echo requests (a ping flood, answered or not): `min_bytes`;
//! - bytes of UDP flows the target never answered (one long flood flow): `min_bytes`. A
//!   transfer over UDP that is answered at all (QUIC, a VPN, a call) never counts, and a
//!   flow longer than the window counts with the window's share of its bytes.
//!
//! Where a record does not say whether it was answered (one-way NetFlow), flows from a
//! system port (a server's replies) and DNS queries (a resolver forwarding to its upstream)
//! are not counted: only the outcome would tell them from a flood.
//!
//! Scans are the scan detector's: many hosts or ports, each tried a few times; a flood is one
//! host tried without end.

use super::flows::{Flow, FlowMemory};
use super::scope::Scope;
use super::{Finding, FindingKind};
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};

/// Thresholds of the flood detector (`[sensor.flood]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodConfig {
    /// The window attempts and bytes are counted in, seconds.
    pub window_secs: f64,
    /// Unanswered or refused connection attempts to one host within a window.
    pub min_attempts: usize,
    /// How many times `min_attempts` are needed when the records do not say whether attempts
    /// were answered.
    pub unknown_factor: usize,
    /// Bytes of ICMP echo requests, or of UDP the target never answered, to one host within a
    /// window.
    pub min_bytes: u64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig { window_secs: 60.0, min_attempts: 1000, unknown_factor: 4, min_bytes: 50_000_000 }
    }
}

/// What a flow adds to a flood, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A TCP or UDP attempt answered by nobody, or refused.
    Refused,
    /// A TCP or UDP attempt whose outcome the record does not say.
    Unknown,
    /// Volume nothing came back for (ICMP echo requests, unanswered UDP).
    Volume,
}

fn part(f: &Flow) -> Option<Part> {
    match f.proto {
        1 | 58 if crate::record::is_echo_request(f.proto, f.port) => Some(Part::Volume),
        6 | 17 => match f.answered() {
            Some(true) => None,
            Some(false) => Some(Part::Refused),
            // A one-way record may be a server's reply (from a system port) and a resolver's
            // forwarded queries are many to one host by design: with no word on the outcome,
            // neither counts.
            None if f.sport < 1024 || matches!(f.port, 53 | 853) => None,
            None => Some(Part::Unknown),
        },
        _ => None,
    }
}

/// The flooding clients in a memory of flows, one finding per client and target, highest
/// confidence first.
pub fn find(memory: &FlowMemory, cfg: &FloodConfig, scope: &Scope) -> Vec<Finding> {
    let scope = scope.clone().with_vantage(memory.vantage());
    let window = (cfg.window_secs.max(0.0) * 1e6) as i64;
    let mut out = Vec::new();
    for c in memory.clients() {
        let mut parts: Vec<(&Flow, Part)> = c.flows.iter().filter_map(|f| Some((f, part(f)?))).collect();
        if parts.is_empty() {
            continue;
        }
        parts.sort_unstable_by_key(|(f, _)| (f.dst, f.t));
        for run in parts.chunk_by(|a, b| a.0.dst == b.0.dst) {
            let (first, _) = run[0];
            if !scope.outbound(c.ip, memory.dest(first.dst), first.local_orig(), first.local_resp()) {
                continue;
            }
            // A long flow's bytes are spread over its duration: only a window's share of them
            // counts in a window (at most; its duration is known to a power of two).
            let bytes_of = |(f, p): &(&Flow, Part)| -> u64 {
                let udp_unanswered = f.proto == 17 && *p == Part::Refused;
                if *p == Part::Volume || udp_unanswered {
                    let sent = f.sent_received().map_or(u64::from(f.bytes), |(s, _)| s);
                    let share = (cfg.window_secs.max(0.0) / f.max_duration_secs()).min(1.0);
                    (sent as f64 * share) as u64
                } else {
                    0
                }
            };
            let worth = |(_, p): &(&Flow, Part)| -> (usize, usize) {
                match p {
                    Part::Refused => (1, 0),
                    Part::Unknown => (0, 1),
                    Part::Volume => (0, 0),
                }
            };
            // Two pointers over time: the window with the most attempts, and with the most bytes.
            let (mut lo, mut refused, mut unknown, mut bytes) = (0usize, 0usize, 0usize, 0u64);
            let (mut most_attempts, mut most_bytes, mut from, mut to) = (0usize, 0u64, None, run[0].0.t);
            let (mut most_refused, mut most_unknown) = (0usize, 0usize);
            let mut by_attempts = false;
            for hi in 0..run.len() {
                let (r, u) = worth(&run[hi]);
                refused += r;
                unknown += u;
                bytes += bytes_of(&run[hi]);
                while run[hi].0.t.saturating_sub(run[lo].0.t) > window {
                    let (r, u) = worth(&run[lo]);
                    refused -= r;
                    unknown -= u;
                    bytes -= bytes_of(&run[lo]);
                    lo += 1;
                }
                // Unknown outcomes count for a fraction of an attempt each.
                let attempts = refused + unknown / cfg.unknown_factor.max(1);
                if attempts > most_attempts {
                    (most_attempts, most_refused, most_unknown) = (attempts, refused, unknown);
                }
                most_bytes = most_bytes.max(bytes);
                let over_attempts = attempts >= cfg.min_attempts.max(1);
                if over_attempts || bytes >= cfg.min_bytes.max(1) {
                    by_attempts |= over_attempts;
                    from.get_or_insert(run[lo].0.t);
                    to = run[hi].0.t;
                }
            }
            let Some(from) = from else { continue };
            let target = memory.dest(first.dst);
            let protos: Vec<String> = {
                let mut p: Vec<u8> = run.iter().map(|(f, _)| f.proto).collect();
                p.sort_unstable();
                p.dedup();
                p.into_iter().map(super::proto_name).collect()
            };
            let ports = {
                let mut p: Vec<u16> =
                    run.iter().filter(|(f, _)| matches!(f.proto, 6 | 17)).map(|(f, _)| f.port).collect();
                p.sort_unstable();
                p.dedup();
                match p.len() {
                    0 => String::new(),
                    1 => format!(" port {}", p[0]),
                    n => format!(" {n} ports"),
                }
            };
            let strength = if by_attempts {
                most_attempts as f64 / cfg.min_attempts.max(1) as f64
            } else {
                most_bytes as f64 / cfg.min_bytes.max(1) as f64
            };
            out.push(Finding {
                client: c.ip,
                kind: FindingKind::Flood,
                confidence: (0.6 + 0.35 * (strength / 4.0).min(1.0)).min(0.95),
                reason: format!(
                    "flooded {target}{ports} ({}): within {:.0} s up to {most_refused} attempts unanswered or refused{} \
                     and {:.1} MB nothing came back for; {} flows in all",
                    protos.join("/"),
                    cfg.window_secs,
                    if most_unknown > 0 {
                        format!(" and {most_unknown} whose outcome the records do not say")
                    } else {
                        String::new()
                    },
                    most_bytes as f64 / 1e6,
                    run.len()
                ),
                count: run.len(),
                first_seen: Timestamp(from),
                last_seen: Timestamp(to),
                samples: vec![target.to_string()],
            });
        }
    }
    super::rank(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing;
    use crate::record::FlowRecord;

    #[allow(clippy::too_many_arguments)]
    fn flow(
        t: f64,
        src: &str,
        dst: &str,
        proto: u8,
        port: u16,
        bytes: u64,
        back: Option<u64>,
        answered: Option<bool>,
    ) -> FlowRecord {
        let mut f =
            testing::flow(t, src, dst, proto, 1024 + (t as u64 % 60_000) as u16, port, bytes, back, answered);
        f.packets = 1;
        f
    }

    fn run(flows: &[FlowRecord]) -> Vec<Finding> {
        find(&testing::memory(flows), &FloodConfig::default(), &testing::scope())
    }

    #[test]
    fn a_syn_flood_a_ping_flood_and_a_udp_flood_are_floods() {
        // 3,000 SYNs in 30 s to one web server, unanswered.
        let syn: Vec<FlowRecord> = (0..3000)
            .map(|i| flow(i as f64 / 100.0, "10.0.0.5", "198.51.100.80", 6, 80, 60, Some(0), Some(false)))
            .collect();
        let out = run(&syn);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, FindingKind::Flood);
        assert!(
            out[0].reason.starts_with("flooded 198.51.100.80 port 80 (tcp): within 60 s up to 3000 attempts unanswered or refused and"),
            "{}",
            out[0].reason
        );
        // Echo requests: 60 MB in two flow records, answered or not.
        let ping = [
            flow(0.0, "10.0.0.6", "198.51.100.1", 1, 2048, 30_000_000, Some(0), Some(false)),
            flow(20.0, "10.0.0.6", "198.51.100.1", 1, 2048, 60_000_000, Some(30_000_000), Some(true)),
        ];
        assert_eq!(run(&ping).len(), 1);
        // One long UDP flow the target never answered.
        let udp = [flow(0.0, "10.0.0.7", "198.51.100.53", 17, 53, 80_000_000, Some(0), Some(false))];
        assert_eq!(run(&udp).len(), 1);
    }

    #[test]
    fn answered_traffic_slow_retries_and_inbound_floods_are_not_floods() {
        // A QUIC upload: 200 MB over UDP, answered.
        let quic = [flow(0.0, "10.0.0.5", "198.51.100.9", 17, 443, 200_000_000, Some(4_000_000), Some(true))];
        // An app retrying a dead server every 5 s all day.
        let retry: Vec<FlowRecord> = (0..5000)
            .map(|i| flow(5.0 * i as f64, "10.0.0.6", "198.51.100.9", 6, 5222, 60, Some(0), Some(false)))
            .collect();
        // A flood of the network from outside: the victim is no client.
        let inbound: Vec<FlowRecord> = (0..3000)
            .map(|i| flow(i as f64 / 100.0, "198.51.100.66", "10.0.0.7", 6, 80, 60, Some(0), Some(false)))
            .collect();
        // NetFlow: 1,500 attempts of unknown outcome are not enough (4 × 1,000 needed) …
        let netflow: Vec<FlowRecord> = (0..1500)
            .map(|i| flow(i as f64 / 100.0, "10.0.0.8", "198.51.100.80", 6, 80, 60, None, None))
            .collect();
        for f in [&quic[..], &retry, &inbound, &netflow] {
            assert!(run(f).is_empty(), "{:?}", run(f));
        }
        // … 5,000 are.
        let netflow: Vec<FlowRecord> = (0..5000)
            .map(|i| flow(i as f64 / 100.0, "10.0.0.8", "198.51.100.80", 6, 80, 60, None, None))
            .collect();
        assert_eq!(run(&netflow).len(), 1);
    }
}

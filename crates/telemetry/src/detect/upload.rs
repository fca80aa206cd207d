//! Bulk upload on a port no common service uses: an internal client that sends megabytes to
//! one Internet `ip:port` and gets little back, over TCP, to a port that is neither a system
//! port (below 1024: web, mail, SSH, FTP, …) nor one of the registered ports ordinary
//! software uploads on (`service_ports`: HTTP alternates, push, VPN, streaming, calls, remote
//! desktop). A remote-access trojan shipping a phone's photos or a desktop's screen to its
//! controller on 1337/tcp (ATT&CK T1041 over T1571, "non-standard port") looks like this;
//! a user's own uploads go to web ports, and a remote desktop or a game sends about as much
//! as it receives.
//!
//! Per client, TCP flows to unregistered ports are summed per destination `ip:port`: bytes
//! sent and bytes back. A biflow record (Zeek, Argus, nfdump's bidirectional output, flows
//! built from packets) gives both; for a one-way record (NetFlow, IPFIX) what came back is
//! read from the reverse records, and where none was kept it is unknown and the series is
//! not flagged (counted instead).
//!
//! Discounted, and said so: destinations many of the network's clients reach (learned, as
//! for beacons), and clients that exchange data with many Internet addresses on unregistered
//! ports, as peer-to-peer file sharing does, whose seeding is bulk upload too.

use super::flows::{Flow, FlowMemory};
use super::scope::Scope;
use super::{Finding, FindingKind};
use botwatch_model::Timestamp;
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

/// Thresholds of the upload detector (`[sensor.upload]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Fewest bytes a client sends one destination `ip:port` over the observation.
    pub min_bytes: u64,
    /// What was sent must be at least this many times what came back. A biflow's direction
    /// is kept in 254ths of its bytes, so ratios above ~250 are not told apart (one record
    /// with nothing back passes any).
    pub min_ratio: f64,
    /// Destination ports below this are system ports, services' (IANA).
    pub service_ports_below: u16,
    /// Registered ports ordinary software uploads or talks both ways on: OpenVPN, RTMP,
    /// RDP, STUN/TURN, SIP, XMPP and the Apple/Google push channels, HTTP alternates, and
    /// backup, log and telemetry shipping (CrashPlan 4242, Beats 5044, iperf3 5201, Veeam
    /// 6180, Synology Hyper Backup 6281, syslog over TLS 6514, MQTT over TLS 8883, Splunk 9997,
    /// Fluentd 24224).
    pub service_ports: Vec<u16>,
    /// A client exchanging data with this many Internet addresses on unregistered ports looks
    /// like peer-to-peer file sharing and is not flagged for uploading (0: never).
    pub p2p_peers: usize,
    /// A destination this many of the network's clients reach is popular, not a C2 …
    pub popular_clients: usize,
    /// … or this share of them, whichever is more.
    pub popular_share: f64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            min_bytes: 10_000_000,
            min_ratio: 10.0,
            service_ports_below: 1024,
            service_ports: vec![
                1194, 1935, 3389, 3478, 3479, 4242, 5044, 5060, 5061, 5201, 5222, 5223, 5228, 6180, 6281,
                6514, 8000, 8008, 8080, 8443, 8883, 8888, 9997, 24224,
            ],
            p2p_peers: 16,
            popular_clients: 3,
            popular_share: 0.1,
        }
    }
}

impl UploadConfig {
    fn service(&self, port: u16) -> bool {
        port < self.service_ports_below || self.service_ports.contains(&port)
    }
}

/// What [`find`] set aside, for the evidence of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UploadCounts {
    /// Uploads over the thresholds whose reverse direction no record gave.
    pub direction_unknown: u64,
    /// Uploads to a popular destination.
    pub popular: u64,
    /// Uploads of clients that look like peer-to-peer file sharing.
    pub p2p: u64,
    /// Uploads to an address the client also runs FTP with (its data connections).
    pub ftp: u64,
}

/// One client's TCP traffic to one destination `ip:port`.
#[derive(Debug, Clone, Copy)]
struct Series {
    dst: u32,
    port: u16,
    flows: usize,
    sent: u64,
    back: u64,
    /// Bytes of one-way records (all the client's): what came back is in reverse records.
    one_way: u64,
    answered: bool,
    first: i64,
    last: i64,
    /// The first flow, for the record's word on its ends.
    head: Flow,
}

/// Whether a flow is one the client may have uploaded on: TCP to an unregistered port, and,
/// for a one-way record (which does not say who opened the connection), not a server's reply:
/// one from a service port, or from a port below the one it goes to (clients connect from
/// high, ephemeral ports).
fn candidate(f: &Flow, cfg: &UploadConfig) -> bool {
    f.proto == 6
        && !cfg.service(f.port)
        && (f.sent_received().is_some() || (!cfg.service(f.sport) && f.sport >= f.port))
}

/// The bulk uploads on unregistered ports in a memory of flows, one finding each, highest
/// confidence first.
pub fn find(memory: &FlowMemory, cfg: &UploadConfig, scope: &Scope) -> (Vec<Finding>, UploadCounts) {
    let scope = scope.clone().with_vantage(memory.vantage());
    let mut counts = UploadCounts::default();
    // Per client, its outbound series to unregistered TCP ports over `min_bytes`; the sums are
    // per client and dropped with it, so only the few large series are kept past it.
    let mut per_client: Vec<(usize, Vec<Series>)> = Vec::new();
    // Clients with any outbound series to an unregistered port: the network's size for
    // popularity.
    let mut clients = 0usize;
    let mut by_dest: HashMap<(u32, u16), Series> = HashMap::new();
    for (ci, c) in memory.clients().iter().enumerate() {
        by_dest.clear();
        for f in c.flows.iter().filter(|f| candidate(f, cfg)) {
            let s = by_dest.entry((f.dst, f.port)).or_insert(Series {
                dst: f.dst,
                port: f.port,
                flows: 0,
                sent: 0,
                back: 0,
                one_way: 0,
                answered: false,
                first: f.t,
                last: f.t,
                head: *f,
            });
            s.flows += 1;
            match f.sent_received() {
                Some((sent, back)) => {
                    s.sent += sent;
                    s.back += back;
                }
                None => {
                    s.sent += u64::from(f.bytes);
                    s.one_way += u64::from(f.bytes);
                }
            }
            s.answered |= f.answered() != Some(false);
            s.first = s.first.min(f.t);
            s.last = s.last.max(f.t);
        }
        let outbound =
            |s: &Series| scope.outbound(c.ip, memory.dest(s.dst), s.head.local_orig(), s.head.local_resp());
        if !by_dest.values().any(outbound) {
            continue;
        }
        clients += 1;
        let large: Vec<Series> =
            by_dest.values().filter(|s| s.sent >= cfg.min_bytes && outbound(s)).copied().collect();
        if !large.is_empty() {
            per_client.push((ci, large));
        }
    }
    // Popularity of the large series' destinations only: how many clients reach each.
    let mut reached: HashMap<(u32, u16), usize> =
        per_client.iter().flat_map(|(_, v)| v.iter().map(|s| ((s.dst, s.port), 0))).collect();
    let bar = super::Popularity::new(cfg.popular_clients, cfg.popular_share, clients);
    if bar.possible() && !reached.is_empty() {
        let mut seen: Vec<(u32, u16)> = Vec::new();
        for c in memory.clients() {
            seen.clear();
            seen.extend(
                c.flows
                    .iter()
                    .filter(|f| candidate(f, cfg) && reached.contains_key(&(f.dst, f.port)))
                    .map(|f| (f.dst, f.port)),
            );
            seen.sort_unstable();
            seen.dedup();
            for k in &seen {
                *reached.get_mut(k).expect("only candidate keys are seen") += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (ci, series) in per_client {
        let c = &memory.clients()[ci];
        // Peers: distinct Internet addresses this client exchanged data with on unregistered
        // TCP ports (one counted per address, whatever its ports); and the addresses it runs
        // FTP with, whose data connections go to the server's unregistered ports.
        let (peers, ftp) = {
            let mut p: Vec<u32> = c
                .flows
                .iter()
                .filter(|f| candidate(f, cfg) && f.answered() != Some(false))
                .map(|f| f.dst)
                .collect();
            p.sort_unstable();
            p.dedup();
            p.retain(|&d| scope.outbound(c.ip, memory.dest(d), None, None));
            let mut ftp: Vec<u32> = c
                .flows
                .iter()
                .filter(|f| f.proto == 6 && matches!(f.port, 21 | 990))
                .map(|f| f.dst)
                .collect();
            ftp.sort_unstable();
            ftp.dedup();
            (p.len(), ftp)
        };
        for mut s in series {
            if bar.popular(reached.get(&(s.dst, s.port)).copied().unwrap_or(0)) {
                counts.popular += 1;
                continue;
            }
            if cfg.p2p_peers > 0 && peers >= cfg.p2p_peers {
                counts.p2p += 1;
                continue;
            }
            if ftp.binary_search(&s.dst).is_ok() {
                counts.ftp += 1;
                continue;
            }
            if s.one_way > 0 {
                match returned(memory, c.ip, &s) {
                    Some(b) => s.back += b,
                    None => {
                        counts.direction_unknown += 1;
                        continue;
                    }
                }
            }
            if (s.sent as f64) < cfg.min_ratio * s.back as f64 {
                continue;
            }
            out.push(finding(c.ip, memory, &s, cfg));
        }
    }
    super::rank(&mut out);
    (out, counts)
}

/// Bytes the destination sent back to `client` in one-way records of their own: the reverse
/// of the series' flows (from its port to the client). `None` when no such record was kept.
fn returned(memory: &FlowMemory, client: std::net::IpAddr, s: &Series) -> Option<u64> {
    let to_client = memory.dest_number(client)?;
    let rev = memory.flows_of(memory.dest(s.dst))?;
    let mut any = false;
    let mut bytes = 0u64;
    for f in rev.flows.iter().filter(|f| f.proto == 6 && f.dst == to_client && f.sport == s.port) {
        any = true;
        bytes += u64::from(f.bytes);
    }
    any.then_some(bytes)
}

fn megabytes(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn finding(client: std::net::IpAddr, memory: &FlowMemory, s: &Series, cfg: &UploadConfig) -> Finding {
    let dest = std::net::SocketAddr::new(memory.dest(s.dst), s.port).to_string();
    let ratio = s.sent as f64 / (s.back.max(1)) as f64;
    // Fuller confidence for more volume (16 × the threshold) and a more one-sided exchange
    // (100 × the ratio asked).
    let volume = ((s.sent as f64 / cfg.min_bytes.max(1) as f64).log2() / 4.0).clamp(0.0, 1.0);
    let lopsided = ((ratio / cfg.min_ratio.max(1.0)).log10() / 2.0).clamp(0.0, 1.0);
    Finding {
        client,
        kind: FindingKind::Upload,
        confidence: (0.55 + 0.2 * volume + 0.2 * lopsided).min(0.95),
        reason: format!(
            "sent {} to {dest}/tcp in {} connection{} over {:.0} s and got {} back ({:.0}:1), \
             on a port no common service uses{}",
            megabytes(s.sent),
            s.flows,
            if s.flows == 1 { "" } else { "s" },
            s.last.saturating_sub(s.first) as f64 / 1e6,
            megabytes(s.back),
            ratio,
            if s.answered { "" } else { "; no connection was answered" }
        ),
        count: s.flows,
        first_seen: Timestamp(s.first),
        last_seen: Timestamp(s.last),
        samples: vec![dest],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing;
    use crate::record::FlowRecord;

    fn flow(
        t: f64,
        src: &str,
        dst: &str,
        sport: u16,
        port: u16,
        bytes: u64,
        back: Option<u64>,
    ) -> FlowRecord {
        testing::flow(t, src, dst, 6, sport, port, bytes, back, Some(true))
    }

    fn run(flows: &[FlowRecord]) -> (Vec<Finding>, UploadCounts) {
        find(&testing::memory(flows), &UploadConfig::default(), &testing::scope())
    }

    #[test]
    fn a_trojan_shipping_data_to_its_port_is_flagged_with_the_evidence() {
        // Three sessions to 1337/tcp, 40 MB out, a few kB back (biflows, as Zeek gives them).
        let f = [
            flow(0.0, "10.8.0.61", "198.51.100.7", 40000, 1337, 19_400_000, Some(60_000)),
            flow(120.0, "10.8.0.61", "198.51.100.7", 40001, 1337, 7_700_000, Some(50_000)),
            flow(300.0, "10.8.0.61", "198.51.100.7", 40002, 1337, 14_000_000, Some(20_000)),
            // Web uploads are the user's own.
            flow(10.0, "10.8.0.61", "203.0.113.5", 40003, 443, 90_000_000, Some(1_000_000)),
        ];
        let (out, _) = run(&f);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, FindingKind::Upload);
        assert_eq!(out[0].client.to_string(), "10.8.0.61");
        assert_eq!(out[0].samples, vec!["198.51.100.7:1337".to_string()]);
        assert!(
            out[0].reason.starts_with("sent 41.0 MB to 198.51.100.7:1337/tcp in 3 connections over 300 s")
        );
        assert!(out[0].confidence > 0.55 && out[0].confidence < 0.95, "{}", out[0].confidence);
    }

    #[test]
    fn balanced_traffic_small_uploads_and_inbound_traffic_are_not_uploads() {
        let f = [
            // A remote desktop or a game: as much back as out.
            flow(0.0, "10.0.0.2", "198.51.100.7", 40000, 27015, 40_000_000, Some(20_000_000)),
            // Lopsided but small.
            flow(0.0, "10.0.0.3", "198.51.100.7", 40000, 4444, 9_000_000, Some(1_000)),
            // From the Internet in: the responder is the internal host.
            flow(0.0, "198.51.100.9", "10.0.0.4", 40000, 4444, 50_000_000, Some(1_000)),
        ];
        assert!(run(&f).0.is_empty());
    }

    #[test]
    fn one_way_records_are_paired_with_their_reverse_or_left_unknown() {
        // NetFlow: the upload and, as a record of its own, what came back.
        let up = flow(0.0, "10.0.0.2", "198.51.100.7", 40000, 1337, 30_000_000, None);
        let back = flow(0.0, "198.51.100.7", "10.0.0.2", 1337, 40000, 20_000, None);
        let (out, counts) = run(&[up.clone(), back]);
        assert_eq!(out.len(), 1);
        assert!(out[0].reason.contains("got 0.0 MB back"), "{}", out[0].reason);
        assert_eq!(counts.direction_unknown, 0);
        // Nothing said of the way back: not flagged, counted.
        let (out, counts) = run(std::slice::from_ref(&up));
        assert!(out.is_empty());
        assert_eq!(counts.direction_unknown, 1);
        // A reverse as large as the upload: a conversation.
        let big_back = flow(0.0, "198.51.100.7", "10.0.0.2", 1337, 40000, 25_000_000, None);
        assert!(run(&[up, big_back]).0.is_empty());
        // An internal server's replies, one-way: from its service port, or from its own
        // unregistered port down to a visitor's ephemeral one, with the small requests back.
        for (server_port, visitor_port) in [(443, 51234), (32400, 51234)] {
            let reply = flow(0.0, "10.0.0.5", "198.51.100.9", server_port, visitor_port, 30_000_000, None);
            let request = flow(0.0, "198.51.100.9", "10.0.0.5", visitor_port, server_port, 20_000, None);
            assert!(run(&[reply, request]).0.is_empty(), "{server_port}");
        }
    }

    #[test]
    fn ftp_data_connections_are_the_users_own() {
        // Passive FTP: the control connection on 21, the upload to the server's high port.
        let f = [
            flow(0.0, "10.0.0.2", "198.51.100.7", 40000, 21, 3_000, Some(2_000)),
            flow(1.0, "10.0.0.2", "198.51.100.7", 40001, 50123, 30_000_000, Some(10_000)),
        ];
        let (out, counts) = run(&f);
        assert!(out.is_empty());
        assert_eq!(counts.ftp, 1);
    }

    #[test]
    fn peer_to_peer_seeding_and_popular_destinations_are_discounted() {
        // A seeder: one large upload among twenty peers on high ports.
        let mut f: Vec<FlowRecord> = (0..20)
            .map(|i| {
                flow(
                    i as f64,
                    "10.0.0.2",
                    &format!("198.51.100.{}", 10 + i),
                    50000,
                    51413,
                    500_000,
                    Some(400_000),
                )
            })
            .collect();
        f.push(flow(30.0, "10.0.0.2", "198.51.100.200", 50001, 6881, 30_000_000, Some(100_000)));
        let (out, counts) = run(&f);
        assert!(out.is_empty());
        assert_eq!(counts.p2p, 1);
        // A backup service on an odd port that most of the network's clients use.
        let f: Vec<FlowRecord> = (0..4)
            .map(|i| {
                flow(0.0, &format!("10.0.0.{}", 2 + i), "198.51.100.7", 40000, 2222, 30_000_000, Some(10_000))
            })
            .collect();
        let (out, counts) = run(&f);
        assert!(out.is_empty());
        assert_eq!(counts.popular, 4);
    }
}

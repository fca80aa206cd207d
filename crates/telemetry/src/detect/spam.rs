//! Spam bots: an internal client that delivers mail straight to many Internet mail servers
//! (SMTP, 25/tcp). A subscriber's mail program hands mail to its provider's submission
//! server (587 or 465, one address); only a mail server talks to other domains' MX hosts on
//! 25, and a PC that does so while receiving no mail is sending spam: the case M3AAWG's
//! port 25 practice and the spam-trap feeds an abuse desk gets (Spamhaus, Abusix) are about,
//! and what Neris, Virut and Cutwail do in the CTU-13 captures.
//!
//! Per internal client, its outbound connections to the SMTP ports are counted within any
//! `window_secs`: distinct destination hosts, answered or not (a spam run is both: refused by
//! greylisting and dead MX hosts, and delivered). `min_servers` of them flag it.
//!
//! Not flagged, and counted: the network's own mail servers. They are listed by the operator
//! (`mail_servers`) or learned from the traffic: a host the Internet delivers mail to (an
//! answered connection to its port 25 from outside, or, where the record does not say, one
//! carrying a message's bytes) is a mail server, and a mail server sends to many others by
//! design. A send-only server (an application mailing its users straight to their MX hosts)
//! receives nothing and must be listed.

use super::flows::FlowMemory;
use super::scope::Scope;
use super::{Finding, FindingKind};
use botwatch_model::Timestamp;
use foldhash::{HashSet, HashSetExt};

/// Bytes an inbound SMTP record of unknown outcome must carry to count as a delivery: a
/// message with its envelope, more than a probe or a refused greeting.
const MESSAGE_BYTES: u64 = 2_000;
use serde::{Deserialize, Serialize};

/// Thresholds of the spam detector (`[sensor.spam]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamConfig {
    /// The ports of server-to-server mail delivery.
    pub ports: Vec<u16>,
    /// The window distinct mail servers are counted in, seconds.
    pub window_secs: f64,
    /// Distinct Internet hosts reached on those ports within a window that flag a client.
    pub min_servers: usize,
    /// The network's own mail servers (and relays): never flagged for sending mail.
    pub mail_servers: Vec<ipnet::IpNet>,
}

impl Default for SpamConfig {
    fn default() -> Self {
        SpamConfig { ports: vec![25], window_secs: 3600.0, min_servers: 20, mail_servers: Vec::new() }
    }
}

/// What [`find`] set aside, for the evidence of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpamCounts {
    /// Clients over the bar that are mail servers (listed, or receiving mail from outside).
    pub mail_servers: u64,
}

/// The clients that send mail to many Internet mail servers, one finding each, highest
/// confidence first.
pub fn find(memory: &FlowMemory, cfg: &SpamConfig, scope: &Scope) -> (Vec<Finding>, SpamCounts) {
    let scope = scope.clone().with_vantage(memory.vantage());
    let mut counts = SpamCounts::default();
    let window = (cfg.window_secs.max(0.0) * 1e6) as i64;
    let smtp = |port: u16| cfg.ports.contains(&port);
    // Hosts that receive mail: SMTP from outside to them that was answered, or, where the
    // record does not say (one-way NetFlow), that carried a message's worth of bytes (a
    // scanner's probe of port 25, which never stops, carries a few dozen).
    let mut receivers: HashSet<u32> = HashSet::new();
    for c in memory.clients() {
        for f in &c.flows {
            if f.proto != 6 || !smtp(f.port) {
                continue;
            }
            let delivered = match f.answered() {
                Some(a) => a,
                None => f.sent_received().map_or(u64::from(f.bytes), |(sent, _)| sent) >= MESSAGE_BYTES,
            };
            if delivered && !scope.internal_client(c.ip, f.local_orig()) {
                receivers.insert(f.dst);
            }
        }
    }
    let mut out = Vec::new();
    for c in memory.clients() {
        let mut sends: Vec<&super::flows::Flow> = c
            .flows
            .iter()
            .filter(|f| {
                f.proto == 6
                    && smtp(f.port)
                    && scope.outbound(c.ip, memory.dest(f.dst), f.local_orig(), f.local_resp())
            })
            .collect();
        if sends.is_empty() || sends.len() < cfg.min_servers {
            continue;
        }
        sends.sort_unstable_by_key(|f| f.t);
        // The window with the most distinct servers, and when the bar was first reached (the
        // evidence's start) and last held.
        let (widest, from, to) = super::widest_window(&sends, |f| f.t, |f| f.dst, window, cfg.min_servers);
        if widest < cfg.min_servers.max(1) {
            continue;
        }
        let listed = cfg.mail_servers.iter().any(|n| n.contains(&c.ip));
        let receives = memory.dest_number(c.ip).is_some_and(|d| receivers.contains(&d));
        if listed || receives {
            counts.mail_servers += 1;
            continue;
        }
        let servers: HashSet<u32> = sends.iter().map(|f| f.dst).collect();
        let answered = sends.iter().filter(|f| f.answered() == Some(true)).count();
        let refused = sends.iter().filter(|f| f.answered() == Some(false)).count();
        let port = sends[0].port;
        let mut samples: Vec<String> = Vec::new();
        for f in &sends {
            let s = std::net::SocketAddr::new(memory.dest(f.dst), f.port).to_string();
            if !samples.contains(&s) {
                samples.push(s);
            }
            if samples.len() == 5 {
                break;
            }
        }
        out.push(Finding {
            client: c.ip,
            kind: FindingKind::Spam,
            confidence: (0.6 + 0.35 * (widest as f64 / (5.0 * cfg.min_servers.max(1) as f64)).min(1.0)).min(0.95),
            reason: format!(
                "mail sent straight to {widest} Internet mail servers on {port}/tcp within {:.0} s, {} in all \
                 ({} connections: {answered} answered, {refused} refused or unanswered); no mail was seen \
                 delivered to it (a send-only mail server or relay belongs in [sensor.spam] mail_servers)",
                cfg.window_secs,
                servers.len(),
                sends.len(),
            ),
            count: sends.len(),
            first_seen: Timestamp(from.unwrap_or(sends[0].t)),
            last_seen: Timestamp(to),
            samples,
        });
    }
    super::rank(&mut out);
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing;
    use crate::record::FlowRecord;

    fn flow(t: f64, src: &str, dst: &str, sport: u16, port: u16, answered: Option<bool>) -> FlowRecord {
        let back = answered.map(|a| if a { 500 } else { 0 });
        testing::flow(t, src, dst, 6, sport, port, 3_000, back, answered)
    }

    fn run(flows: &[FlowRecord], cfg: &SpamConfig) -> (Vec<Finding>, SpamCounts) {
        find(&testing::memory(flows), cfg, &testing::scope())
    }

    /// One delivery attempt a minute, each to a new server; every third refused.
    fn spam_run(client: &str, servers: usize) -> Vec<FlowRecord> {
        (0..servers)
            .map(|i| {
                let dst = format!("198.51.{}.{}", i / 200, 1 + i % 200);
                flow(60.0 * i as f64, client, &dst, 40_000 + i as u16, 25, Some(i % 3 != 0))
            })
            .collect()
    }

    #[test]
    fn a_pc_delivering_to_many_mail_servers_is_a_spam_bot() {
        let (out, counts) = run(&spam_run("10.0.0.5", 45), &SpamConfig::default());
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!((f.kind, f.client.to_string()), (FindingKind::Spam, "10.0.0.5".to_string()));
        // Within the hour: servers 0..=60 minutes apart, so 45 in the first window.
        assert!(
            f.reason.starts_with("mail sent straight to 45 Internet mail servers on 25/tcp"),
            "{}",
            f.reason
        );
        assert!(f.reason.contains("30 answered, 15 refused or unanswered"), "{}", f.reason);
        // The evidence starts when the twentieth server was reached within an hour: at once.
        assert_eq!(f.first_seen, Timestamp(0));
        assert_eq!(f.samples.len(), 5);
        assert_eq!(counts.mail_servers, 0);
        // Fewer servers than the bar within any hour: a slow sender is not flagged.
        let slow: Vec<FlowRecord> = (0..40)
            .map(|i| {
                flow(400.0 * i as f64, "10.0.0.6", &format!("198.51.100.{}", i + 1), 40_000, 25, Some(true))
            })
            .collect();
        assert!(run(&slow, &SpamConfig::default()).0.is_empty());
    }

    #[test]
    fn mail_servers_listed_or_receiving_mail_and_submission_are_not_spam() {
        // Submission to the provider: one server, port 587.
        let submit: Vec<FlowRecord> = (0..50)
            .map(|i| flow(i as f64, "10.0.0.7", "203.0.113.25", 40_000 + i, 587, Some(true)))
            .collect();
        assert!(run(&submit, &SpamConfig::default()).0.is_empty());
        // A mail server: the Internet delivers to it as well.
        let mut f = spam_run("10.0.0.8", 45);
        f.push(flow(5.0, "192.0.2.44", "10.0.0.8", 50_000, 25, Some(true)));
        let (out, counts) = run(&f, &SpamConfig::default());
        assert!(out.is_empty());
        assert_eq!(counts.mail_servers, 1);
        // A one-way export does not say whether it was answered: a message's bytes do.
        let mut f = spam_run("10.0.0.8", 45);
        let mut delivery = flow(5.0, "192.0.2.44", "10.0.0.8", 50_000, 25, None);
        delivery.bytes = 12_000;
        f.push(delivery.clone());
        assert!(run(&f, &SpamConfig::default()).0.is_empty());
        // … a scanner's probe of port 25, or the bot's reset from it, does not.
        let mut f = spam_run("10.0.0.8", 45);
        let mut probe = delivery;
        probe.bytes = 44;
        f.push(probe);
        f.push(flow(5.0, "10.0.0.8", "192.0.2.44", 25, 50_000, None));
        assert_eq!(run(&f, &SpamConfig::default()).0.len(), 1);
        // No bar at all (0) flags nobody without mail traffic and panics on nothing.
        let cfg = SpamConfig { min_servers: 0, ..Default::default() };
        assert!(run(&[flow(0.0, "10.0.0.3", "198.51.100.1", 40_000, 443, Some(true))], &cfg).0.is_empty());
        // Or the operator lists it.
        let cfg = SpamConfig { mail_servers: vec!["10.0.0.8/32".parse().unwrap()], ..Default::default() };
        let (out, counts) = run(&spam_run("10.0.0.8", 45), &cfg);
        assert!(out.is_empty());
        assert_eq!(counts.mail_servers, 1);
        // Refused attempts from outside to the client's port 25 (a scan of it) make no server.
        let mut f = spam_run("10.0.0.9", 45);
        f.push(flow(5.0, "192.0.2.44", "10.0.0.9", 50_000, 25, Some(false)));
        assert_eq!(run(&f, &SpamConfig::default()).0.len(), 1);
    }
}

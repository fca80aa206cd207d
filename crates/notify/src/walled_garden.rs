//! Walled-garden exports: who is in the garden, in the shapes enforcement points load.
//!
//! Input is the case list (those in [`CaseState::WalledGarden`] with an address) and an
//! allow-list of destinations that stay reachable (remediation sites, update servers).
//! - [`rpz`]: a DNS Response Policy Zone. Each address is a client-IP trigger
//!   (`32.<reversed v4>.rpz-client-ip`, `128.<reversed v6, zz for the zero run>.rpz-client-ip`)
//!   rewriting every answer to the walled-garden host by CNAME. Allow-listed domains are
//!   `rpz-passthru.` QNAME rules written first. Note that within *one* policy zone BIND
//!   ranks client-IP triggers above QNAME triggers, so for the passthru rules to win load
//!   [`rpz_allow`] as its own zone listed before this one in `response-policy { … }`.
//! - [`nftables`]: a script that replaces `table inet botwatch` atomically (`nft -f` applies
//!   a file as one transaction): garden sets per family, allow sets, a forward chain.
//! - [`list`]: one address per line, for RADIUS CoA tooling.

use botwatch_model::{Case, CaseState, Timestamp};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Destinations that stay reachable from the garden.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllowList {
    /// Domains; each also allows its subdomains.
    pub domains: Vec<String>,
    pub cidrs: Vec<IpNet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RpzOptions {
    /// Zone origin, e.g. `rpz.botwatch.example.`.
    pub zone: String,
    /// Where garden clients are sent: the remediation portal's host name.
    pub garden_host: String,
    /// SOA RNAME as a domain name (`hostmaster.example.net.`).
    pub hostmaster: String,
    pub ttl: u32,
}

impl Default for RpzOptions {
    fn default() -> Self {
        RpzOptions {
            zone: "rpz.botwatch.invalid.".into(),
            garden_host: "garden.botwatch.invalid.".into(),
            hostmaster: "hostmaster.botwatch.invalid.".into(),
            ttl: 60,
        }
    }
}

fn fqdn(s: &str) -> String {
    let s = s.trim();
    if s.ends_with('.') { s.to_string() } else { format!("{s}.") }
}

/// Addresses in the garden, deduplicated and sorted, IPv4 then IPv6.
pub fn addresses(cases: &[Case]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for c in cases.iter().filter(|c| c.state == CaseState::WalledGarden) {
        match c.ip {
            Some(IpAddr::V4(a)) => {
                v4.insert(a);
            }
            // A v4-mapped address is a v4 client as far as resolvers and firewalls see it.
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(m) => {
                    v4.insert(m);
                }
                None => {
                    v6.insert(a);
                }
            },
            None => {}
        }
    }
    (v4.into_iter().collect(), v6.into_iter().collect())
}

/// `<reversed labels>` of an address in RPZ's trigger form, without the prefix length.
fn rpz_v4(a: Ipv4Addr) -> String {
    let o = a.octets();
    format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
}

fn rpz_v6(a: Ipv6Addr) -> String {
    let seg = a.segments();
    // The longest run of two or more zero groups becomes "zz" (first one on a tie), as in
    // RFC 5952's "::".
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < 8 {
        if seg[i] == 0 {
            let start = i;
            while i < 8 && seg[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let mut labels: Vec<String> = Vec::new();
    let mut i = 0;
    while i < 8 {
        if best_len >= 2 && i == best {
            labels.push("zz".into());
            i += best_len;
        } else {
            labels.push(format!("{:x}", seg[i]));
            i += 1;
        }
    }
    labels.reverse();
    labels.join(".")
}

fn net_trigger(n: &IpNet) -> String {
    match n.trunc() {
        IpNet::V4(n) => format!("{}.{}", n.prefix_len(), rpz_v4(n.addr())),
        IpNet::V6(n) => format!("{}.{}", n.prefix_len(), rpz_v6(n.addr())),
    }
}

fn valid_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

fn header(out: &mut String, opts: &RpzOptions, now: Timestamp) {
    let zone = fqdn(&opts.zone);
    // Seconds since the epoch fit the 32-bit serial until 2106 and always increase.
    let serial = now.secs().clamp(1, u32::MAX as i64) as u32;
    let _ = writeln!(out, "; Generated by botwatch at {now}. Replaced whole on every export.");
    let _ = writeln!(out, "$ORIGIN {zone}");
    let _ = writeln!(out, "$TTL {}", opts.ttl);
    let _ = writeln!(out, "@ SOA localhost. {} {serial} 3600 600 86400 {}", fqdn(&opts.hostmaster), opts.ttl);
    let _ = writeln!(out, "@ NS localhost.");
}

fn allow_rules(out: &mut String, allow: &AllowList) {
    let _ = writeln!(out, "; Allow-list: always answered normally.");
    for d in allow.domains.iter().filter_map(|d| valid_domain(d)) {
        let _ = writeln!(out, "{d} CNAME rpz-passthru.");
        let _ = writeln!(out, "*.{d} CNAME rpz-passthru.");
    }
    for n in &allow.cidrs {
        let _ = writeln!(out, "{}.rpz-ip CNAME rpz-passthru.", net_trigger(n));
    }
}

/// The allow-list alone as a policy zone (see the module notes on precedence).
pub fn rpz_allow(allow: &AllowList, opts: &RpzOptions, now: Timestamp) -> Vec<u8> {
    let mut out = String::new();
    header(&mut out, opts, now);
    allow_rules(&mut out, allow);
    out.into_bytes()
}

/// The garden as a policy zone: allow-list passthru rules first, then one client-IP
/// trigger per address.
pub fn rpz(cases: &[Case], allow: &AllowList, opts: &RpzOptions, now: Timestamp) -> Vec<u8> {
    let mut out = String::new();
    header(&mut out, opts, now);
    allow_rules(&mut out, allow);
    let garden = fqdn(&opts.garden_host);
    let (v4, v6) = addresses(cases);
    let _ = writeln!(out, "; Walled garden: {} addresses.", v4.len() + v6.len());
    for a in v4 {
        let _ = writeln!(out, "32.{}.rpz-client-ip CNAME {garden}", rpz_v4(a));
    }
    for a in v6 {
        let _ = writeln!(out, "128.{}.rpz-client-ip CNAME {garden}", rpz_v6(a));
    }
    out.into_bytes()
}

fn elements<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> Option<String> {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    (!v.is_empty()).then(|| v.join(", "))
}

/// An `nft -f` script replacing `table inet botwatch` in one transaction.
pub fn nftables(cases: &[Case], allow: &AllowList, now: Timestamp) -> Vec<u8> {
    let (v4, v6) = addresses(cases);
    let a4 = allow.cidrs.iter().filter_map(|n| match n.trunc() {
        IpNet::V4(n) => Some(n),
        _ => None,
    });
    let a6 = allow.cidrs.iter().filter_map(|n| match n.trunc() {
        IpNet::V6(n) => Some(n),
        _ => None,
    });
    let mut out = String::new();
    let _ = writeln!(out, "#!/usr/sbin/nft -f");
    let _ = writeln!(out, "# Generated by botwatch at {now}. `nft -f` applies this file atomically.");
    // Creating the table first makes the delete succeed on the first run as well.
    let _ = writeln!(out, "table inet botwatch");
    let _ = writeln!(out, "delete table inet botwatch");
    let _ = writeln!(out, "table inet botwatch {{");
    let set = |out: &mut String, name: &str, ty: &str, interval: bool, el: Option<String>| {
        let _ = writeln!(out, "\tset {name} {{");
        let _ = writeln!(out, "\t\ttype {ty}");
        if interval {
            let _ = writeln!(out, "\t\tflags interval");
            // Overlapping allow-list entries are merged rather than refused.
            let _ = writeln!(out, "\t\tauto-merge");
        }
        if let Some(el) = el {
            let _ = writeln!(out, "\t\telements = {{ {el} }}");
        }
        let _ = writeln!(out, "\t}}");
    };
    set(&mut out, "garden4", "ipv4_addr", false, elements(v4));
    set(&mut out, "garden6", "ipv6_addr", false, elements(v6));
    set(&mut out, "allow4", "ipv4_addr", true, elements(a4));
    set(&mut out, "allow6", "ipv6_addr", true, elements(a6));
    let _ = writeln!(out, "\tchain forward {{");
    let _ = writeln!(out, "\t\ttype filter hook forward priority filter - 10; policy accept;");
    let _ = writeln!(out, "\t\tip saddr @garden4 ip daddr @allow4 accept");
    let _ = writeln!(out, "\t\tip6 saddr @garden6 ip6 daddr @allow6 accept");
    let _ = writeln!(out, "\t\t# DNS stays open: the resolver's RPZ sends garden clients to the portal.");
    let _ = writeln!(out, "\t\tip saddr @garden4 meta l4proto {{ tcp, udp }} th dport 53 accept");
    let _ = writeln!(out, "\t\tip6 saddr @garden6 meta l4proto {{ tcp, udp }} th dport 53 accept");
    let _ = writeln!(out, "\t\tip saddr @garden4 reject with icmpx admin-prohibited");
    let _ = writeln!(out, "\t\tip6 saddr @garden6 reject with icmpx admin-prohibited");
    let _ = writeln!(out, "\t}}");
    let _ = writeln!(out, "}}");
    out.into_bytes()
}

/// One address per line.
pub fn list(cases: &[Case]) -> Vec<u8> {
    let (v4, v6) = addresses(cases);
    let mut out = String::new();
    for a in v4 {
        let _ = writeln!(out, "{a}");
    }
    for a in v6 {
        let _ = writeln!(out, "{a}");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpz_v6_labels() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(rpz_v6(a), "1.zz.db8.2001");
        let b: Ipv6Addr = "2001:db8:0:1:0:0:0:5".parse().unwrap();
        assert_eq!(rpz_v6(b), "5.zz.1.0.db8.2001");
        let c: Ipv6Addr = "1:2:3:4:5:6:7:8".parse().unwrap();
        assert_eq!(rpz_v6(c), "8.7.6.5.4.3.2.1");
        assert_eq!(rpz_v6(Ipv6Addr::UNSPECIFIED), "zz");
        assert_eq!(rpz_v4("192.0.2.10".parse().unwrap()), "10.2.0.192");
    }
}

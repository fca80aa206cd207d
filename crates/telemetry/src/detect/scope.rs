//! Who can be an infected client: a host of the monitored network that reaches out.
//!
//! A finding names an *internal client*. Which addresses are internal comes, in order of
//! trust, from the operator (`[sensor] internal`), from the record itself (Zeek's
//! `local_orig`/`local_resp`), or, when neither says, from the capture: the private and shared
//! ranges (RFC 1918, RFC 6598, RFC 4193) and the one /16 (/48 for IPv6) that most flows
//! touch, where that is most of them — the network a capture was taken in. An address that
//! never names one host (multicast, broadcast, link-local, unspecified, loopback) is never a
//! client, and traffic towards it is not beaconing.

use crate::record::FlowRecord;
use foldhash::HashMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// An address that names no single host on the Internet, or one that is no host's own:
/// multicast, broadcast, link-local, unspecified, loopback.
pub fn never_a_host(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_loopback()
                // A directed broadcast of the common /24s (NetBIOS, SSDP replies).
                || a.octets()[3] == 255
                || a.octets()[0] == 0
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return never_a_host(IpAddr::V4(v4));
            }
            a.is_multicast() || a.is_unspecified() || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An address that is no one host's: multicast, broadcast, unspecified. (Loopback and
/// link-local ones are some host's own, as a resolver on the same machine sees them.)
pub fn not_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.is_unspecified(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => not_unicast(IpAddr::V4(v4)),
            None => a.is_multicast() || a.is_unspecified(),
        },
    }
}

/// The private and shared ranges: inside some network whoever sees them.
pub fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The /16 or /48 an address is in, the unit the inference counts, as a number: an IPv6
/// /48 is its top 48 bits, an IPv4 /16 its top 16 bits above 2^48 (no /48 reaches that high).
/// Hashing a `u64` instead of an `IpNet` is a fifth of a flow's cost less.
fn prefix(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => (1 << 48) | u64::from(u32::from(a) >> 16),
        IpAddr::V6(a) => (u128::from(a) >> 80) as u64,
    }
}

fn prefix_net(p: u64) -> IpNet {
    let net = if p >> 48 == 1 {
        IpNet::new(IpAddr::V4(std::net::Ipv4Addr::from(((p & 0xffff) as u32) << 16)), 16)
    } else {
        IpNet::new(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(p) << 80)), 48)
    };
    net.expect("16 and 48 are valid prefix lengths")
}

/// Counts, per /16 (/48), the flows that touch it, to find the capture's own network.
#[derive(Debug, Default, Clone)]
pub struct Vantage {
    flows: u64,
    /// Per prefix: flows that touch it, and flows it originates.
    touched: HashMap<u64, (u64, u64)>,
}

/// No more prefixes are counted past this many (a scan of the whole Internet would
/// otherwise grow the map); the capture's own network is among the first seen anyway.
const MAX_PREFIXES: usize = 100_000;

impl Vantage {
    pub fn observe(&mut self, f: &FlowRecord) {
        self.flows += 1;
        let (a, b) = (prefix(f.src), prefix(f.dst));
        let both = [(a, 1), (b, 0)];
        for &(p, orig) in &both[..if a == b { 1 } else { 2 }] {
            if let Some(n) = self.touched.get_mut(&p) {
                n.0 += 1;
                n.1 += orig;
            } else if self.touched.len() < MAX_PREFIXES {
                self.touched.insert(p, (1, orig));
            }
        }
    }

    /// The public /16 (/48) most flows touch, when more than half of them do and it
    /// originates a fair share of them: a C2 that a one-client capture is all about is in
    /// every flow too, but only ever answers.
    pub fn home(&self) -> Option<IpNet> {
        let (p, (n, orig)) = self
            .touched
            .iter()
            .map(|(p, n)| (prefix_net(*p), n))
            .filter(|(p, _)| !private(p.network()))
            .max_by_key(|(p, n)| (n.0, *p))?;
        (*n * 2 > self.flows && *orig * 4 >= *n).then_some(p)
    }

    /// Bytes held, counted from the table's capacity.
    pub fn bytes(&self) -> usize {
        self.touched.capacity() * (std::mem::size_of::<(u64, (u64, u64))>() + 1)
    }
}

/// Where the monitored network is.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Set by the operator: only these are internal.
    configured: Vec<IpNet>,
    /// Inferred from a capture (used only when nothing is configured).
    home: Option<IpNet>,
}

impl Scope {
    pub fn new(configured: Vec<IpNet>) -> Scope {
        Scope { configured, home: None }
    }

    /// With nothing configured, the capture's own public network counts as internal too.
    pub fn with_vantage(mut self, v: &Vantage) -> Scope {
        if self.configured.is_empty() {
            self.home = v.home();
        }
        self
    }

    pub fn configured(&self) -> bool {
        !self.configured.is_empty()
    }

    /// The inferred home network, if any.
    pub fn home(&self) -> Option<IpNet> {
        self.home
    }

    /// Inside the monitored network, by address alone.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        if never_a_host(ip) {
            return false;
        }
        if self.configured() {
            return self.configured.iter().any(|n| n.contains(&ip));
        }
        private(ip) || self.home.is_some_and(|h| h.contains(&ip))
    }

    /// The internal client of a flow that goes out of the network: the originator, when it
    /// is internal and the responder is not (and is a host). `None` for traffic from the
    /// Internet towards the network, inside it, or to multicast and broadcast.
    pub fn outbound_client(&self, f: &FlowRecord) -> Option<IpAddr> {
        self.outbound(f.src, f.dst, f.local_orig, f.local_resp).then_some(f.src)
    }

    /// Whether `src` is an internal client, by the operator's word, else the record's
    /// (`local_orig`), else its address.
    pub fn internal_client(&self, src: IpAddr, local_orig: Option<bool>) -> bool {
        if never_a_host(src) {
            return false;
        }
        if self.configured() {
            self.is_internal(src)
        } else {
            local_orig.unwrap_or_else(|| self.is_internal(src))
        }
    }

    /// Whether traffic from `src` to `dst` leaves the network from an internal client;
    /// `local_orig`/`local_resp` are the record's word on each end (Zeek), if any.
    pub fn outbound(
        &self,
        src: IpAddr,
        dst: IpAddr,
        local_orig: Option<bool>,
        local_resp: Option<bool>,
    ) -> bool {
        if never_a_host(src) || never_a_host(dst) {
            return false;
        }
        // The operator's word first; then the record's; then the address.
        let inside = |ip: IpAddr, said: Option<bool>| {
            if self.configured() {
                self.is_internal(ip)
            } else {
                said.unwrap_or_else(|| self.is_internal(ip))
            }
        };
        inside(src, local_orig) && !inside(dst, local_resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Timestamp;

    fn flow(src: &str, dst: &str, local: Option<(bool, bool)>) -> FlowRecord {
        FlowRecord {
            start: Timestamp(0),
            end: Timestamp(0),
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            proto: 6,
            packets: 1,
            bytes: 1,
            resp_bytes: None,
            exporter: None,
            answered: None,
            local_orig: local.map(|l| l.0),
            local_resp: local.map(|l| l.1),
        }
    }

    #[test]
    fn hosts_that_are_no_clients() {
        for a in [
            "224.0.0.252",
            "255.255.255.255",
            "192.168.1.255",
            "169.254.3.4",
            "0.0.0.0",
            "ff02::16",
            "fe80::1",
            "::",
            "::1",
            "127.0.0.1",
        ] {
            assert!(never_a_host(a.parse().unwrap()), "{a}");
        }
        for a in ["192.168.1.7", "8.8.8.8", "2001:db8::1", "fd00::5"] {
            assert!(!never_a_host(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn outbound_only_and_the_record_or_operator_decides() {
        let s = Scope::default();
        assert_eq!(
            s.outbound_client(&flow("10.0.0.5", "203.0.113.9", None)),
            Some("10.0.0.5".parse().unwrap())
        );
        // From the Internet in, inside the network, to multicast: no client.
        assert_eq!(s.outbound_client(&flow("203.0.113.9", "10.0.0.5", None)), None);
        assert_eq!(s.outbound_client(&flow("10.0.0.5", "10.0.0.1", None)), None);
        assert_eq!(s.outbound_client(&flow("fe80::1", "ff02::16", None)), None);
        // Zeek's local_orig/local_resp for public addresses.
        assert!(s.outbound_client(&flow("147.32.83.165", "17.253.54.251", Some((true, false)))).is_some());
        assert!(s.outbound_client(&flow("128.9.29.131", "147.32.83.165", Some((false, true)))).is_none());
        // The operator's networks override both.
        let op = Scope::new(vec!["147.32.0.0/16".parse().unwrap()]);
        assert!(op.outbound_client(&flow("147.32.83.165", "17.253.54.251", Some((false, false)))).is_some());
        assert!(op.outbound_client(&flow("10.0.0.5", "203.0.113.9", None)).is_none());
    }

    #[test]
    fn a_capture_names_its_own_network() {
        let mut v = Vantage::default();
        for i in 0..100 {
            v.observe(&flow("147.32.83.165", &format!("17.253.{}.1", i % 3), None));
        }
        for i in 0..60 {
            v.observe(&flow(&format!("128.9.{i}.1"), "147.32.83.165", None));
        }
        let s = Scope::default().with_vantage(&v);
        assert_eq!(s.home(), Some("147.32.0.0/16".parse().unwrap()));
        let mut v6 = Vantage::default();
        for i in 0..10 {
            v6.observe(&flow("2001:718:1:5::7", &format!("2a00:1450:{i}::1"), None));
        }
        assert_eq!(Scope::default().with_vantage(&v6).home(), Some("2001:718:1::/48".parse().unwrap()));
        assert!(s.outbound_client(&flow("147.32.83.165", "17.253.1.1", None)).is_some());
        assert!(s.outbound_client(&flow("128.9.3.1", "147.32.83.165", None)).is_none());
        // A C2 in every flow of a one-client capture only answers: not the home network.
        let mut c = Vantage::default();
        for _ in 0..50 {
            c.observe(&flow("10.0.0.5", "203.0.113.9", None));
        }
        assert_eq!(Scope::default().with_vantage(&c).home(), None);
        // No public network in most flows: only the private ranges are inside.
        let mut w = Vantage::default();
        for i in 0..10 {
            w.observe(&flow("10.0.0.5", &format!("{}.1.2.3", 20 + i), None));
        }
        assert_eq!(Scope::default().with_vantage(&w).home(), None);
    }
}

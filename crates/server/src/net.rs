//! The client's address (behind trusted proxies only) and a per-client rate limiter for the
//! public portal.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// The address the request came from. `X-Forwarded-For` is believed only when the peer is
/// a trusted proxy, and then read from the right: the first hop that is not itself a
/// trusted proxy is the client (entries further left are whatever the client wrote).
pub fn client_ip<'a>(peer: IpAddr, forwarded: impl Iterator<Item = &'a str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut client = peer;
    // Bounded: a header of thousands of hops is not walked.
    for hop in hops.iter().rev().take(32) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                client = ip;
                if !is_trusted(&ip) {
                    return ip;
                }
            }
            // Garbage: what was read so far is all that can be believed.
            Err(_) => return client,
        }
    }
    client
}

/// Rate-limit key: an IPv4 address, or an IPv6 /64 (one subscriber's prefix, so rotating
/// addresses inside it does not help).
fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => (u128::from(a) & !((1u128 << 64) - 1)) | 1,
    }
}

const SHARDS: usize = 16;
/// Clients tracked per shard before idle ones are swept; beyond it, new clients wait.
const SHARD_CAP: usize = 65_536;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per client: `rate` requests per second, bursts of `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<HashMap<u128, Bucket>>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate: rate.max(1e-6),
            burst: burst.max(1.0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// `Ok` to serve, or `Err(seconds)` to wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let k = key(ip);
        let shard = &self.shards[(k as usize ^ (k >> 64) as usize) % SHARDS];
        let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= SHARD_CAP && !m.contains_key(&k) {
            // A bucket idle long enough to be full again says nothing: drop those.
            let full_after = self.burst / self.rate;
            m.retain(|_, b| now.duration_since(b.last).as_secs_f64() < full_after);
            if m.len() >= SHARD_CAP {
                return Err(1);
            }
        }
        let b = m.entry(k).or_insert(Bucket { tokens: self.burst, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(ip("203.0.113.5"), ["198.51.100.1"].into_iter(), &trusted), ip("203.0.113.5"));
        // Trusted peer: the right-most untrusted hop; a spoofed left entry changes nothing.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.1, 10.0.0.9"].into_iter(), &trusted),
            ip("198.51.100.1")
        );
        // Several header lines read as one list.
        assert_eq!(client_ip(ip("::1"), ["6.6.6.6", "2001:db8::7"].into_iter(), &trusted), ip("2001:db8::7"));
        // Mapped addresses are plain IPv4.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), ["::ffff:198.51.100.1"].into_iter(), &trusted),
            ip("198.51.100.1")
        );
        // Garbage stops the walk at what was believed so far.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["198.51.100.1, nonsense"].into_iter(), &trusted),
            ip("10.0.0.2")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), std::iter::empty(), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn buckets_refill_at_the_rate_and_ipv6_counts_per_64() {
        let l = RateLimiter::new(1.0, 3.0);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("192.0.2.1"), t).is_ok());
        }
        assert_eq!(l.check(ip("192.0.2.1"), t), Err(1));
        assert!(l.check(ip("192.0.2.2"), t).is_ok(), "another client has its own bucket");
        assert!(l.check(ip("192.0.2.1"), t + Duration::from_millis(1100)).is_ok());
        for i in 0..3 {
            assert!(l.check(ip(&format!("2001:db8::{i}")), t).is_ok());
        }
        assert!(l.check(ip("2001:db8::ffff"), t).is_err(), "same /64");
        assert!(l.check(ip("2001:db8:0:1::1"), t).is_ok(), "another /64");
    }
}

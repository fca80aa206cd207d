//! The compiled indicator set: every flow and DNS record is looked up here, so it is built
//! once into flat arrays and read without locks or allocation.
//!
//! - Addresses: exact IPs and CIDRs become disjoint segments (the most specific prefix wins
//!   where they nest), searched through a radix directory — one bucket read, then a short
//!   binary search inside a cache line or two.
//! - Domains: a query matches an indicator domain equal to it or to any suffix of it that
//!   starts at a label boundary (`a.b.evil.example` hits `evil.example`; `notevil.example`
//!   does not), ignoring ASCII case and a trailing dot. The hashes of every suffix of a name
//!   come from one right-to-left pass; each is probed in an open-addressing table of 64-bit
//!   hashes and confirmed by comparing the text.
//! - Each indicator has a validity window; a hit outside it is no hit.
//! - [`SharedMatcher`] swaps a rebuilt matcher in atomically: readers keep the one they
//!   loaded, ingestion never pauses.
//! - [`Matcher::to_snapshot`] / [`Matcher::from_snapshot`]: the compiled arrays as a file,
//!   labelled with what they were compiled from, so a scan against unchanged indicators
//!   reads them instead of compiling again.

mod snapshot;

pub use snapshot::{SnapshotError, fuzzing};

use botwatch_model::Timestamp;
use ipnet::IpNet;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// What an indicator says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndicatorValue {
    Ip(IpAddr),
    Net(IpNet),
    /// A domain (lower case, no trailing dot); URLs contribute their host.
    Domain(String),
}

/// One indicator as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    pub value: IndicatorValue,
    /// Where it came from (observation id in the store).
    pub source_id: i64,
    /// Malware family when known, else the classification type.
    pub label: String,
    /// Feeds that reported it, comma separated.
    pub feeds: String,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
}

/// What a hit reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorMeta {
    /// The indicator as written (`192.0.2.7`, `198.51.100.0/24`, `evil.example`).
    pub value: String,
    pub source_id: i64,
    pub label: String,
    pub feeds: String,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
}

/// Unsigned address keys.
trait Key: Copy + Ord {
    fn bucket(self) -> u128;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

impl Key for u32 {
    fn bucket(self) -> u128 {
        self as u128
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Key for u128 {
    fn bucket(self) -> u128 {
        self
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

/// Disjoint inclusive segments `starts[i]..=ends[i]` → `vals[i]`, with a directory of
/// bucket offsets over the key space.
struct Segments<K> {
    /// (start, end, value) side by side: the end and value of the segment a search lands
    /// on are in the cache line it already read.
    segs: Vec<(K, K, u32)>,
    min: u128,
    shift: u32,
    dir: Vec<u32>,
    /// Every `FENCE`-th start, for key spaces the directory cannot split evenly (IPv6
    /// indicators cluster in a few prefixes): a binary search over this small array (it
    /// stays in cache), then one short block of segments.
    fences: Vec<K>,
}

const FENCE: usize = 16;

impl<K: Key> Segments<K> {
    /// `ranges` must form a laminar family (any two are disjoint or nested), as CIDRs do.
    fn build(mut ranges: Vec<(K, K, u32)>) -> Self {
        // Wider first among equal starts, so the narrower one is pushed on top of it.
        ranges.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        ranges.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
        let mut segs: Vec<(K, K, u32)> = Vec::with_capacity(ranges.len());
        let mut stack: Vec<(K, K, u32)> = Vec::new();
        // Next key not yet covered by an emitted segment; `None` once past the top.
        let mut cursor: Option<K> = None;
        let emit = |segs: &mut Vec<(K, K, u32)>, from: K, to: K, v: u32| {
            if from <= to {
                match segs.last_mut() {
                    Some(last) if last.2 == v && last.1.succ() == Some(from) => last.1 = to,
                    _ => segs.push((from, to, v)),
                }
            }
        };
        for (s, e, v) in ranges {
            // Close the enclosing ranges that end before this one starts.
            while let Some(&(_, te, tv)) = stack.last() {
                if te >= s {
                    break;
                }
                if let Some(c) = cursor {
                    emit(&mut segs, c, te, tv);
                }
                cursor = te.succ();
                stack.pop();
            }
            if let (Some(&(_, _, tv)), Some(c)) = (stack.last(), cursor)
                && let Some(before) = s.pred()
                && c <= before
            {
                emit(&mut segs, c, before, tv);
            }
            cursor = Some(match cursor {
                Some(c) if c > s => c,
                _ => s,
            });
            stack.push((s, e, v));
        }
        while let Some((_, te, tv)) = stack.pop() {
            if let Some(c) = cursor {
                emit(&mut segs, c, te, tv);
            }
            cursor = te.succ();
        }
        segs.shrink_to_fit();
        let mut t = Segments { segs, min: 0, shift: 0, dir: vec![0, 0], fences: Vec::new() };
        let n = t.segs.len();
        if n == 0 {
            return t;
        }
        t.min = t.segs[0].0.bucket();
        let range = t.segs[n - 1].0.bucket() - t.min;
        // About two segments per bucket.
        let want = (n / 2).clamp(1, 1 << 22) as u128;
        while (range >> t.shift) >= want {
            t.shift += 1;
        }
        let nb = (range >> t.shift) as usize + 1;
        let mut dir = Vec::with_capacity(nb + 1);
        let mut i = 0usize;
        for b in 0..nb {
            while i < n && ((t.segs[i].0.bucket() - t.min) >> t.shift) < b as u128 {
                i += 1;
            }
            dir.push(i as u32);
        }
        dir.push(n as u32);
        let worst = dir.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
        if worst > 4 * FENCE {
            t.fences = t.segs.iter().step_by(FENCE).map(|s| s.0).collect();
            t.dir = vec![0, 0];
        } else {
            t.dir = dir;
        }
        t
    }

    #[inline]
    fn get(&self, k: K) -> Option<u32> {
        let kb = k.bucket();
        if self.segs.is_empty() || kb < self.min {
            return None;
        }
        let (lo, hi) = if self.fences.is_empty() {
            let b = ((kb - self.min) >> self.shift).min((self.dir.len() - 2) as u128) as usize;
            // Every start in [dir[b], dir[b+1]) is in bucket b; the one before may still
            // cover k.
            ((self.dir[b] as usize).saturating_sub(1), self.dir[b + 1] as usize)
        } else {
            let f = self.fences.partition_point(|x| *x <= k);
            if f == 0 {
                return None;
            }
            ((f - 1) * FENCE, (f * FENCE).min(self.segs.len()))
        };
        let p = lo + self.segs[lo..hi].partition_point(|s| s.0 <= k);
        if p == 0 {
            return None;
        }
        let (start, end, v) = self.segs[p - 1];
        (start <= k && k <= end).then_some(v)
    }

    fn heap_bytes(&self) -> usize {
        self.segs.capacity() * std::mem::size_of::<(K, K, u32)>()
            + self.dir.capacity() * 4
            + self.fences.capacity() * std::mem::size_of::<K>()
    }
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[inline]
fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// Hash of a whole (already lower-case) domain, in the same right-to-left order the query
/// side uses for its suffixes. Never 0: 0 marks an empty slot.
fn domain_hash(d: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in d.iter().rev() {
        h = (h ^ fold(b) as u64).wrapping_mul(FNV_PRIME);
    }
    finish(h)
}

#[inline]
fn finish(h: u64) -> u64 {
    // FNV's low bits mix poorly; the table indexes by the low bits.
    let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = h ^ (h >> 32);
    h.max(1)
}

/// Open-addressing set of domains: parallel arrays of hashes and indicator ids, the text in
/// one arena for the final comparison.
struct Domains {
    hashes: Vec<u64>,
    ids: Vec<u32>,
    mask: usize,
    /// Offsets into `text` per indicator id (only domain indicators have a range).
    spans: Vec<(u32, u32)>,
    text: Vec<u8>,
    /// Fewest labels any indicator has: shorter suffixes are not probed.
    min_dots: usize,
    /// One bit per hash (2^23 bits, 1 MiB, stays in cache): most suffixes of most names
    /// are answered "no" here without touching the table.
    filter: Vec<u64>,
}

const FILTER_BITS: u32 = 23;

#[inline]
fn filter_bit(h: u64) -> usize {
    (h >> (64 - FILTER_BITS)) as usize
}

impl Domains {
    fn build(items: Vec<(String, u32)>, n_ids: usize) -> Self {
        let cap = (items.len() * 2).next_power_of_two().max(16);
        let mut d = Domains {
            hashes: vec![0; cap],
            ids: vec![0; cap],
            mask: cap - 1,
            spans: vec![(0, 0); n_ids],
            text: Vec::new(),
            min_dots: usize::MAX,
            filter: vec![0; (1 << FILTER_BITS) / 64],
        };
        for (name, id) in items {
            let b = name.as_bytes();
            if d.lookup_hash(domain_hash(b), b).is_some() {
                continue;
            }
            d.min_dots = d.min_dots.min(b.iter().filter(|c| **c == b'.').count());
            let start = d.text.len() as u32;
            d.text.extend_from_slice(b);
            d.spans[id as usize] = (start, d.text.len() as u32);
            let h = domain_hash(b);
            d.filter[filter_bit(h) / 64] |= 1 << (filter_bit(h) % 64);
            let mut i = h as usize & d.mask;
            while d.hashes[i] != 0 {
                i = (i + 1) & d.mask;
            }
            d.hashes[i] = h;
            d.ids[i] = id;
        }
        if d.min_dots == usize::MAX {
            d.min_dots = 0;
        }
        d
    }

    #[inline]
    fn lookup_hash(&self, h: u64, name: &[u8]) -> Option<u32> {
        let bit = filter_bit(h);
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let mut i = h as usize & self.mask;
        loop {
            let x = self.hashes[i];
            if x == 0 {
                return None;
            }
            if x == h {
                let id = self.ids[i];
                let (a, b) = self.spans[id as usize];
                if self.text[a as usize..b as usize].eq_ignore_ascii_case(name) {
                    return Some(id);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The longest indicator domain that `name` equals or ends with on a label boundary.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<u32> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || self.spans.is_empty() {
            return None;
        }
        // Suffix hashes from the right; the longest matching suffix is the last one found,
        // so keep overwriting.
        let mut h = FNV_OFFSET;
        let mut dots = 0usize;
        let mut best = None;
        let mut i = name.len();
        while i > 0 {
            i -= 1;
            let c = name[i];
            if c == b'.' {
                // name[i+1..] is a whole-label suffix.
                if dots >= self.min_dots
                    && let Some(id) = self.lookup_hash(finish(h), &name[i + 1..])
                {
                    best = Some(id);
                }
                dots += 1;
            }
            h = (h ^ fold(c) as u64).wrapping_mul(FNV_PRIME);
        }
        if dots >= self.min_dots
            && let Some(id) = self.lookup_hash(finish(h), name)
        {
            best = Some(id);
        }
        best
    }

    fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.ids.capacity() * 4
            + self.spans.capacity() * 8
            + self.text.capacity()
            + self.filter.capacity() * 8
    }
}

/// One indicator, compactly: the texts it shares with others (label, feeds) are pooled;
/// an address indicator keeps only its prefix length (its value is the queried address
/// under that mask), a domain its span in the domain arena.
#[derive(Clone, Copy)]
struct Entry {
    source_id: i64,
    valid_from: i64,
    valid_until: i64,
    label: u32,
    feeds: u32,
    /// Prefix length for addresses; `u8::MAX` for domains.
    plen: u8,
}

/// A hit: a view of the indicator that matched.
#[derive(Clone, Copy)]
pub struct Hit<'a> {
    m: &'a Matcher,
    id: u32,
    /// The address looked up (an address hit's value is it under the indicator's mask).
    ip: Option<IpAddr>,
}

impl<'a> Hit<'a> {
    fn e(&self) -> &'a Entry {
        &self.m.entries[self.id as usize]
    }

    /// The indicator as written: `192.0.2.7`, `198.51.100.0/24`, `evil.example`.
    pub fn value(&self) -> String {
        let e = self.e();
        match self.ip {
            Some(ip) if e.plen != u8::MAX => {
                let ip = match ip {
                    IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                    v4 => v4,
                };
                let full = if ip.is_ipv4() { 32 } else { 128 };
                if e.plen >= full {
                    ip.to_string()
                } else {
                    IpNet::new(ip, e.plen).map(|n| n.trunc().to_string()).unwrap_or_else(|_| ip.to_string())
                }
            }
            _ => {
                let (a, b) = self.m.domains.spans[self.id as usize];
                String::from_utf8_lossy(&self.m.domains.text[a as usize..b as usize]).into_owned()
            }
        }
    }

    pub fn label(&self) -> &'a str {
        &self.m.pool[self.e().label as usize]
    }

    pub fn feeds(&self) -> &'a str {
        &self.m.pool[self.e().feeds as usize]
    }

    pub fn source_id(&self) -> i64 {
        self.e().source_id
    }

    pub fn valid_from(&self) -> Timestamp {
        Timestamp::from_micros(self.e().valid_from)
    }

    pub fn valid_until(&self) -> Timestamp {
        Timestamp::from_micros(self.e().valid_until)
    }

    fn valid_at(&self, t: Timestamp) -> bool {
        let e = self.e();
        e.valid_from <= t.micros() && t.micros() <= e.valid_until
    }

    /// An owned copy, for reporting.
    pub fn to_meta(&self) -> IndicatorMeta {
        IndicatorMeta {
            value: self.value(),
            source_id: self.source_id(),
            label: self.label().to_string(),
            feeds: self.feeds().to_string(),
            valid_from: self.valid_from(),
            valid_until: self.valid_until(),
        }
    }
}

/// The compiled indicator set.
pub struct Matcher {
    v4: Segments<u32>,
    /// One bit per IPv4 /24 that any segment touches: most addresses of a flow are in no
    /// listed /24 and are answered here, from a 2 MiB table that stays in cache.
    v4_filter: Vec<u64>,
    v6: Segments<u128>,
    domains: Domains,
    entries: Vec<Entry>,
    /// Labels and feed lists, deduplicated.
    pool: Vec<String>,
}

/// Sizes of a built matcher.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MatcherStats {
    pub indicators: usize,
    pub v4_segments: usize,
    pub v6_segments: usize,
    pub domains: usize,
    pub heap_bytes: usize,
}

fn v4_range(n: ipnet::Ipv4Net) -> (u32, u32) {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

fn v6_range(n: ipnet::Ipv6Net) -> (u128, u128) {
    (u128::from(n.network()), u128::from(n.broadcast()))
}

/// SipHash was a fifth of compiling a million indicators; nothing here is attacker-keyed
/// in a way that matters (a slow rebuild at worst).
type FastMap<K, V> = std::collections::HashMap<K, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

/// Deduplicating string pool.
#[derive(Default)]
struct Pool {
    strings: Vec<String>,
    index: FastMap<String, u32>,
    /// Indicators come grouped by feed: most strings equal the previous one asked for.
    last: Option<u32>,
}

impl Pool {
    fn get(&mut self, s: String) -> u32 {
        if let Some(l) = self.last
            && self.strings[l as usize] == s
        {
            return l;
        }
        if let Some(&i) = self.index.get(&s) {
            self.last = Some(i);
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.clone());
        self.index.insert(s, i);
        self.last = Some(i);
        i
    }
}

impl Matcher {
    /// Compiles `indicators`. The same value listed twice keeps one entry with the union
    /// of the validity windows.
    pub fn build(indicators: impl IntoIterator<Item = Indicator>) -> Matcher {
        let mut entries: Vec<Entry> = Vec::new();
        let mut index: FastMap<IndicatorValue, u32> = FastMap::default();
        let mut pool = Pool::default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut doms = Vec::new();
        for ind in indicators {
            let canon = match ind.value {
                IndicatorValue::Ip(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                    Some(v4) => IndicatorValue::Ip(IpAddr::V4(v4)),
                    None => IndicatorValue::Ip(IpAddr::V6(a)),
                },
                IndicatorValue::Ip(ip) => IndicatorValue::Ip(ip),
                IndicatorValue::Net(n) => {
                    let n = n.trunc();
                    if n.prefix_len() == n.max_prefix_len() {
                        IndicatorValue::Ip(n.addr())
                    } else {
                        IndicatorValue::Net(n)
                    }
                }
                IndicatorValue::Domain(d) => {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    if d.is_empty() {
                        continue;
                    }
                    IndicatorValue::Domain(d)
                }
            };
            let (from, until) = (ind.valid_from.micros(), ind.valid_until.micros());
            if let Some(&id) = index.get(&canon) {
                let e = &mut entries[id as usize];
                if until > e.valid_until {
                    e.label = pool.get(ind.label);
                    e.feeds = pool.get(ind.feeds);
                    e.source_id = ind.source_id;
                }
                e.valid_from = e.valid_from.min(from);
                e.valid_until = e.valid_until.max(until);
                continue;
            }
            let id = entries.len() as u32;
            let plen = match &canon {
                IndicatorValue::Ip(IpAddr::V4(a)) => {
                    v4.push((u32::from(*a), u32::from(*a), id));
                    32
                }
                IndicatorValue::Ip(IpAddr::V6(a)) => {
                    v6.push((u128::from(*a), u128::from(*a), id));
                    128
                }
                IndicatorValue::Net(IpNet::V4(n)) => {
                    let (a, b) = v4_range(*n);
                    v4.push((a, b, id));
                    n.prefix_len()
                }
                IndicatorValue::Net(IpNet::V6(n)) => {
                    let (a, b) = v6_range(*n);
                    v6.push((a, b, id));
                    n.prefix_len()
                }
                IndicatorValue::Domain(d) => {
                    doms.push((d.clone(), id));
                    u8::MAX
                }
            };
            entries.push(Entry {
                source_id: ind.source_id,
                valid_from: from,
                valid_until: until,
                label: pool.get(ind.label),
                feeds: pool.get(ind.feeds),
                plen,
            });
            index.insert(canon, id);
        }
        drop(index);
        let n = entries.len();
        let v4 = Segments::build(v4);
        let mut v4_filter = vec![0u64; (1 << 24) / 64];
        for &(a, b, _) in &v4.segs {
            for blk in (a >> 8)..=(b >> 8) {
                v4_filter[blk as usize / 64] |= 1 << (blk % 64);
            }
        }
        entries.shrink_to_fit();
        Matcher {
            v4,
            v4_filter,
            v6: Segments::build(v6),
            domains: Domains::build(doms, n),
            entries,
            pool: pool.strings,
        }
    }

    /// An empty matcher: nothing hits.
    pub fn empty() -> Matcher {
        Matcher::build(std::iter::empty())
    }

    #[inline]
    fn v4_get(&self, a: u32) -> Option<u32> {
        let blk = (a >> 8) as usize;
        if self.v4_filter[blk / 64] & (1 << (blk % 64)) == 0 {
            return None;
        }
        self.v4.get(a)
    }

    /// The indicator `ip` falls under at `t` (most specific prefix), if any. IPv4-mapped
    /// IPv6 addresses are looked up as the IPv4 address.
    #[inline]
    pub fn match_ip(&self, ip: IpAddr, t: Timestamp) -> Option<Hit<'_>> {
        self.lookup_ip(ip).filter(|h| h.valid_at(t))
    }

    /// The longest indicator domain `name` is equal to or under, valid at `t`.
    #[inline]
    pub fn match_domain(&self, name: &str, t: Timestamp) -> Option<Hit<'_>> {
        self.lookup_domain(name).filter(|h| h.valid_at(t))
    }

    /// The most specific indicator for `ip`, whatever its validity window.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<Hit<'_>> {
        let id = match ip {
            IpAddr::V4(a) => self.v4_get(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4_get(u32::from(v4)),
                None => self.v6.get(u128::from(a)),
            },
        }?;
        Some(Hit { m: self, id, ip: Some(ip) })
    }

    /// The longest indicator domain for `name`, whatever its validity window.
    #[inline]
    pub fn lookup_domain(&self, name: &str) -> Option<Hit<'_>> {
        self.domains.find(name.as_bytes()).map(|id| Hit { m: self, id, ip: None })
    }

    pub fn stats(&self) -> MatcherStats {
        MatcherStats {
            indicators: self.entries.len(),
            v4_segments: self.v4.segs.len(),
            v6_segments: self.v6.segs.len(),
            domains: self.domains.spans.iter().filter(|s| s.1 > s.0).count(),
            heap_bytes: self.v4.heap_bytes()
                + self.v4_filter.capacity() * 8
                + self.v6.heap_bytes()
                + self.domains.heap_bytes()
                + self.entries.capacity() * std::mem::size_of::<Entry>()
                + self.pool.iter().map(|p| p.capacity() + 24).sum::<usize>(),
        }
    }
}

/// The matcher in use, replaced whole when indicators change. Readers `load` a snapshot
/// (an `Arc`) and keep it for a batch; a rebuild never blocks them.
pub struct SharedMatcher {
    cur: arc_swap::ArcSwap<Matcher>,
}

impl SharedMatcher {
    pub fn new(m: Matcher) -> Self {
        SharedMatcher { cur: arc_swap::ArcSwap::from_pointee(m) }
    }
    pub fn load(&self) -> Arc<Matcher> {
        self.cur.load_full()
    }
    pub fn store(&self, m: Matcher) {
        self.cur.store(Arc::new(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ind(v: &str, label: &str) -> Indicator {
        let value = if let Ok(ip) = v.parse::<IpAddr>() {
            IndicatorValue::Ip(ip)
        } else if let Ok(n) = v.parse::<IpNet>() {
            IndicatorValue::Net(n)
        } else {
            IndicatorValue::Domain(v.into())
        };
        Indicator {
            value,
            source_id: 1,
            label: label.into(),
            feeds: "test".into(),
            valid_from: Timestamp::from_secs(100),
            valid_until: Timestamp::from_secs(200),
        }
    }

    const T: Timestamp = Timestamp::from_secs(150);

    #[test]
    fn domains_match_on_label_boundaries_ignoring_case() {
        let m = Matcher::build([ind("evil.example", "emotet"), ind("c2.other.example", "qakbot")]);
        let hit = |n: &str| m.match_domain(n, T).map(|x| x.value());
        assert_eq!(hit("evil.example").as_deref(), Some("evil.example"));
        assert_eq!(hit("a.b.EVIL.example.").as_deref(), Some("evil.example"));
        assert_eq!(hit("notevil.example"), None);
        assert_eq!(hit("evil.example.com"), None);
        assert_eq!(hit("other.example"), None);
        assert_eq!(hit("x.c2.other.example").as_deref(), Some("c2.other.example"));
        assert_eq!(hit("example"), None);
        assert_eq!(hit(""), None);
        assert_eq!(hit("."), None);
        // Outside the validity window: no hit.
        assert!(m.match_domain("evil.example", Timestamp::from_secs(99)).is_none());
        assert!(m.match_domain("evil.example", Timestamp::from_secs(201)).is_none());
    }

    #[test]
    fn the_longest_suffix_wins() {
        let m = Matcher::build([ind("example.net", "wide"), ind("bad.example.net", "narrow")]);
        assert_eq!(m.match_domain("x.bad.example.net", T).unwrap().label(), "narrow");
        assert_eq!(m.match_domain("good.example.net", T).unwrap().label(), "wide");
    }

    #[test]
    fn addresses_most_specific_prefix_wins() {
        let m = Matcher::build([
            ind("198.51.100.0/24", "drop"),
            ind("198.51.100.7", "c2"),
            ind("198.51.0.0/16", "wider"),
            ind("2001:db8::/32", "v6net"),
            ind("2001:db8::1", "v6host"),
            ind("0.0.0.0/0", "everything"),
        ]);
        let l = |ip: &str| m.match_ip(ip.parse().unwrap(), T).map(|x| x.label().to_string());
        assert_eq!(l("198.51.100.7").as_deref(), Some("c2"));
        assert_eq!(l("198.51.100.8").as_deref(), Some("drop"));
        assert_eq!(l("198.51.101.1").as_deref(), Some("wider"));
        assert_eq!(l("203.0.113.1").as_deref(), Some("everything"));
        assert_eq!(l("255.255.255.255").as_deref(), Some("everything"));
        assert_eq!(l("2001:db8::1").as_deref(), Some("v6host"));
        assert_eq!(l("2001:db8::2").as_deref(), Some("v6net"));
        assert_eq!(l("2001:db9::1"), None);
        assert_eq!(l("::ffff:198.51.100.7").as_deref(), Some("c2"));
    }

    #[test]
    fn duplicates_merge_windows_and_empty_matches_nothing() {
        let mut a = ind("192.0.2.1", "x");
        a.valid_from = Timestamp::from_secs(0);
        a.valid_until = Timestamp::from_secs(10);
        let b = ind("192.0.2.1", "y");
        let m = Matcher::build([a, b]);
        assert_eq!(m.stats().indicators, 1);
        assert!(m.match_ip("192.0.2.1".parse().unwrap(), Timestamp::from_secs(5)).is_some());
        assert_eq!(m.match_ip("192.0.2.1".parse().unwrap(), T).unwrap().label(), "y");
        let e = Matcher::empty();
        assert!(e.match_ip("192.0.2.1".parse().unwrap(), T).is_none());
        assert!(e.match_domain("a.example", T).is_none());
    }

    #[test]
    fn swapping_keeps_readers_on_their_snapshot() {
        let s = SharedMatcher::new(Matcher::build([ind("a.example", "old")]));
        let before = s.load();
        s.store(Matcher::build([ind("b.example", "new")]));
        assert!(before.match_domain("a.example", T).is_some());
        assert!(s.load().match_domain("a.example", T).is_none());
        assert!(s.load().match_domain("b.example", T).is_some());
    }

    fn arb_net() -> impl Strategy<Value = ipnet::Ipv4Net> {
        // A small address space so prefixes nest and collide often.
        (0u32..64, prop::sample::select(vec![26u8, 27, 28, 29, 30, 31, 32]))
            .prop_map(|(a, len)| ipnet::Ipv4Net::new((0xC000_0200u32 + a).into(), len).unwrap().trunc())
    }

    proptest! {
        /// Against a brute-force oracle: the longest containing prefix, or nothing.
        #[test]
        fn prefix_match_agrees_with_brute_force(nets in prop::collection::vec(arb_net(), 0..40), probe in 0u32..80) {
            let inds: Vec<Indicator> = nets.iter().map(|n| ind(&n.to_string(), &n.to_string())).collect();
            let m = Matcher::build(inds);
            let ip = std::net::Ipv4Addr::from(0xC000_0200u32 + probe);
            // A /32 reads back as the bare address.
            let show = |n: &ipnet::Ipv4Net| if n.prefix_len() == 32 { n.addr().to_string() } else { n.to_string() };
            let want = nets.iter().filter(|n| n.contains(&ip)).max_by_key(|n| n.prefix_len()).map(show);
            let got = m.match_ip(IpAddr::V4(ip), T).map(|x| x.value());
            prop_assert_eq!(got, want);
        }

        /// Against a brute-force oracle over label-boundary suffixes.
        #[test]
        fn domain_match_agrees_with_brute_force(
            doms in prop::collection::vec("[ab]{1,2}(\\.[ab]{1,2}){0,2}", 0..20),
            q in "[aAbB]{1,2}(\\.[aAbB]{1,2}){0,3}",
        ) {
            let m = Matcher::build(doms.iter().map(|d| ind(d, d)));
            let ql = q.to_ascii_lowercase();
            let want = doms
                .iter()
                .filter(|d| ql == **d || ql.ends_with(&format!(".{d}")))
                .max_by_key(|d| d.len())
                .cloned();
            let got = m.match_domain(&q, T).map(|x| x.value());
            prop_assert_eq!(got, want);
        }
    }
}

//! "Who held this address at that instant?": lease, accounting and CGNAT port-block records
//! turned into an index answering in O(log n) without allocating.
//!
//! Records are grouped by key — the network (one table per prefix length, so a /32, a /128
//! and a delegated /56 each get an exact-match table), or (public address, port) behind
//! CGNAT — and each key's intervals are cut into disjoint *segments*. A segment covered by
//! one subscriber points at the record that covers it (the latest-starting one, so a renewal
//! supersedes); a segment covered by two different subscribers points at a conflict list
//! and is answered as [`Attribution::Ambiguous`], never with one of them. CGNAT port blocks
//! are first split at every block boundary seen on their public address, so a lookup is one
//! "greatest key ≤ (address, port)" search.
//!
//! Memory: a record costs one [`Rec`] (56 bytes), one or more 24-byte segments (one when
//! intervals of a key do not overlap), one key (4 bytes for IPv4 /32, 8 for an IPv4 port
//! block) and ~2 bytes of bucket table: ~86 bytes for an IPv4 lease or port block, plus the
//! interned subscriber, identifier-set and source strings, shared by every record that
//! repeats them. [`SubscriberIndex::heap_bytes`] reports the real figure.
//!
//! ```
//! use botwatch_enrich::subscriber::{Attribution, SubscriberIndex};
//! use botwatch_model::{LeaseRecord, Timestamp};
//! let rec = LeaseRecord {
//!     ip: "192.0.2.7/32".parse().unwrap(), ports: None,
//!     start: Timestamp::from_secs(100), end: Some(Timestamp::from_secs(200)),
//!     subscriber: "line-1".into(), identifiers: vec![], source: "doc".into(), line: 1,
//! };
//! let idx = SubscriberIndex::build(vec![rec]);
//! let a = idx.attribute("192.0.2.7".parse().unwrap(), None, Timestamp::from_secs(150));
//! assert!(matches!(a, Attribution::Exact { record } if record.subscriber() == "line-1"));
//! ```

use botwatch_model::{LeaseRecord, Timestamp};
use hmac::{Hmac, Mac};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const OPEN: i64 = i64::MAX;
/// A segment value with this bit set indexes the conflict lists, not the records.
const CONFLICT: u32 = 1 << 31;

/// The index's compact copy of a [`LeaseRecord`]; strings are interned.
#[derive(Debug, Clone, Copy)]
struct Rec {
    addr_hi: u64,
    addr_lo: u64,
    start: i64,
    end: i64,
    sub: u32,
    ident: u32,
    source: u32,
    line: u32,
    port_lo: u16,
    port_hi: u16,
    plen: u8,
    v6: bool,
    has_ports: bool,
}

impl Rec {
    fn addr(&self) -> u128 {
        ((self.addr_hi as u128) << 64) | self.addr_lo as u128
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Seg {
    start: i64,
    end: i64,
    val: u32,
    /// Last port of the key's elementary port range (CGNAT tables only).
    hi: u16,
}

trait Key: Copy + Ord + std::fmt::Debug {
    /// Monotone in the key order; keys of one address share it (for CGNAT keys).
    fn bucket(self) -> u128;
    fn same_addr(self, other: Self) -> bool;
}

impl Key for u32 {
    fn bucket(self) -> u128 {
        self as u128
    }
    fn same_addr(self, other: Self) -> bool {
        self == other
    }
}

impl Key for u128 {
    fn bucket(self) -> u128 {
        self
    }
    fn same_addr(self, other: Self) -> bool {
        self == other
    }
}

impl Key for (u32, u16) {
    fn bucket(self) -> u128 {
        self.0 as u128
    }
    fn same_addr(self, other: Self) -> bool {
        self.0 == other.0
    }
}

impl Key for (u128, u16) {
    fn bucket(self) -> u128 {
        self.0
    }
    fn same_addr(self, other: Self) -> bool {
        self.0 == other.0
    }
}

/// Keys sorted (with their segments sorted by start inside a key), plus a bucket table over
/// the key space so a search touches a handful of entries instead of log2(n) cache lines.
#[derive(Debug)]
struct Table<K> {
    keys: Vec<K>,
    segs: Vec<Seg>,
    min: u128,
    shift: u32,
    offs: Vec<u32>,
}

enum Found {
    Hit(u32),
    Miss { before: Option<u32>, after: Option<u32> },
}

impl<K: Key> Table<K> {
    fn new(keys: Vec<K>, segs: Vec<Seg>) -> Self {
        let mut t = Table { keys, segs, min: 0, shift: 0, offs: vec![0, 0] };
        let n = t.keys.len();
        if n == 0 {
            return t;
        }
        t.min = t.keys[0].bucket();
        let range = t.keys[n - 1].bucket() - t.min;
        let want = (n / 2).clamp(1, 1 << 24) as u128;
        while (range >> t.shift) >= want {
            t.shift += 1;
        }
        let nb = (range >> t.shift) as usize + 1;
        let mut offs = Vec::with_capacity(nb + 1);
        let mut i = 0usize;
        for b in 0..nb {
            while i < n && ((t.keys[i].bucket() - t.min) >> t.shift) < b as u128 {
                i += 1;
            }
            offs.push(i as u32);
        }
        offs.push(n as u32);
        t.offs = offs;
        t
    }

    fn bucket_range(&self, k: K) -> (usize, usize) {
        let v = k.bucket();
        if self.keys.is_empty() || v < self.min {
            return (0, 0);
        }
        let b = (v - self.min) >> self.shift;
        if b >= (self.offs.len() - 1) as u128 {
            return (0, 0);
        }
        (self.offs[b as usize] as usize, self.offs[b as usize + 1] as usize)
    }

    /// The segments of the greatest key ≤ `probe` that passes `accept`, as an index range.
    fn key_range(&self, probe: K, accept: impl Fn(K, &Seg) -> bool) -> Option<(usize, usize)> {
        let (lo, hi) = self.bucket_range(probe);
        let j = lo + self.keys[lo..hi].partition_point(|k| *k <= probe);
        if j == lo {
            return None;
        }
        let k = self.keys[j - 1];
        if !accept(k, &self.segs[j - 1]) {
            return None;
        }
        let first = lo + self.keys[lo..j].partition_point(|x| *x < k);
        Some((first, j))
    }

    fn find(&self, probe: K, t: i64, accept: impl Fn(K, &Seg) -> bool) -> Option<Found> {
        let (first, end) = self.key_range(probe, accept)?;
        let p = first + self.segs[first..end].partition_point(|s| s.start <= t);
        if p == first {
            return Some(Found::Miss { before: None, after: Some(self.segs[first].val) });
        }
        let s = self.segs[p - 1];
        if t < s.end {
            return Some(Found::Hit(s.val));
        }
        Some(Found::Miss { before: Some(s.val), after: (p < end).then(|| self.segs[p].val) })
    }

    fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<K>()
            + self.segs.capacity() * std::mem::size_of::<Seg>()
            + self.offs.capacity() * 4
    }
}

/// Why an answer is not one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguityReason {
    /// Records of different subscribers cover the instant: the source data conflict.
    Conflict,
    /// The address is a CGNAT public address and no source port was given.
    CgnatWithoutPort,
}

/// A record inside the index; cheap to copy, [`RecordRef::to_record`] rebuilds the full one.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    index: &'a SubscriberIndex,
    id: u32,
}

impl std::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_record().fmt(f)
    }
}

impl PartialEq for RecordRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.index, other.index) && self.id == other.id
    }
}

impl<'a> RecordRef<'a> {
    fn rec(&self) -> &'a Rec {
        &self.index.recs[self.id as usize]
    }
    /// Position of the record in the input given to [`SubscriberIndex::build`] (after
    /// dropping empty intervals).
    pub fn id(&self) -> u32 {
        self.id
    }
    pub fn subscriber(&self) -> &'a str {
        &self.index.subscribers[self.rec().sub as usize]
    }
    pub fn identifiers(&self) -> &'a [(String, String)] {
        &self.index.ident_sets[self.rec().ident as usize]
    }
    pub fn source(&self) -> &'a str {
        &self.index.sources[self.rec().source as usize]
    }
    pub fn line(&self) -> u64 {
        self.rec().line as u64
    }
    pub fn start(&self) -> Timestamp {
        Timestamp(self.rec().start)
    }
    pub fn end(&self) -> Option<Timestamp> {
        let e = self.rec().end;
        (e != OPEN).then_some(Timestamp(e))
    }
    pub fn ports(&self) -> Option<(u16, u16)> {
        let r = self.rec();
        r.has_ports.then_some((r.port_lo, r.port_hi))
    }
    pub fn ip(&self) -> IpNet {
        let r = self.rec();
        if r.v6 {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(r.addr()), r.plen).unwrap_or_default())
        } else {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(r.addr() as u32), r.plen).unwrap_or_default())
        }
    }
    pub fn to_record(&self) -> LeaseRecord {
        LeaseRecord {
            ip: self.ip(),
            ports: self.ports(),
            start: self.start(),
            end: self.end(),
            subscriber: self.subscriber().to_string(),
            identifiers: self.identifiers().to_vec(),
            source: self.source().to_string(),
            line: self.line(),
        }
    }
}

impl Serialize for RecordRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_record().serialize(s)
    }
}

/// The answer to "who held this address (and port) at that instant".
#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Attribution<'a> {
    /// One subscriber; `record` is the (most specific, latest-starting) record covering it.
    Exact { record: RecordRef<'a> },
    /// Not one subscriber: every covering record is listed.
    Ambiguous { candidates: Vec<RecordRef<'a>>, reason: AmbiguityReason },
    /// Nobody held it then; the nearest records on the same key before and after, if any.
    NotFound { before: Option<RecordRef<'a>>, after: Option<RecordRef<'a>> },
}

impl Attribution<'_> {
    /// The subscriber of an exact answer.
    pub fn subscriber(&self) -> Option<&str> {
        match self {
            Attribution::Exact { record } => Some(record.subscriber()),
            _ => None,
        }
    }
}

/// Records indexed for [`SubscriberIndex::attribute`].
#[derive(Debug, Default)]
pub struct SubscriberIndex {
    recs: Vec<Rec>,
    subscribers: Vec<String>,
    ident_sets: Vec<Vec<(String, String)>>,
    sources: Vec<String>,
    conflicts: Vec<Box<[u32]>>,
    /// Address tables, most specific prefix length first.
    v4: Vec<(u8, Table<u32>)>,
    v6: Vec<(u8, Table<u128>)>,
    nat4: Option<Table<(u32, u16)>>,
    nat6: Option<Table<(u128, u16)>>,
}

/// SipHash, the std default, costs more than the rest of building; keys are not attacker-
/// chosen in a way that matters here (a slow import, at worst).
type FastMap<K, V> = HashMap<K, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

#[derive(Default)]
struct Interner<T: std::hash::Hash + Eq + Clone> {
    map: FastMap<T, u32>,
    vals: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Clone> Interner<T> {
    fn get(&mut self, v: T) -> u32 {
        if let Some(&i) = self.map.get(&v) {
            return i;
        }
        let i = self.vals.len() as u32;
        self.vals.push(v.clone());
        self.map.insert(v, i);
        i
    }
}

impl SubscriberIndex {
    /// Builds the index. Records whose interval is empty or reversed are dropped: they cover
    /// no instant.
    pub fn build(records: impl IntoIterator<Item = LeaseRecord>) -> Self {
        let mut subs: Interner<String> = Interner::default();
        let mut idents: Interner<Vec<(String, String)>> = Interner::default();
        let mut sources: Interner<String> = Interner::default();
        let records = records.into_iter();
        let mut recs = Vec::with_capacity(records.size_hint().0);
        for r in records {
            let end = r.end.map_or(OPEN, |e| e.0);
            if end <= r.start.0 {
                continue;
            }
            let (addr, plen, v6) = match r.ip {
                IpNet::V4(n) => (u32::from(n.network()) as u128, n.prefix_len(), false),
                IpNet::V6(n) => (u128::from(n.network()), n.prefix_len(), true),
            };
            let (port_lo, port_hi) = r.ports.map_or((0, 0), |(a, b)| (a.min(b), a.max(b)));
            recs.push(Rec {
                addr_hi: (addr >> 64) as u64,
                addr_lo: addr as u64,
                start: r.start.0,
                end,
                sub: subs.get(r.subscriber),
                ident: idents.get(r.identifiers),
                source: sources.get(r.source),
                line: r.line.min(u32::MAX as u64) as u32,
                port_lo,
                port_hi,
                plen,
                v6,
                has_ports: r.ports.is_some(),
            });
        }
        let mut idx = SubscriberIndex {
            subscribers: subs.vals,
            ident_sets: idents.vals,
            sources: sources.vals,
            ..Default::default()
        };
        let mut conflicts = Vec::new();

        // Plain address/prefix tables, one per (family, prefix length).
        let mut by_len4: HashMap<u8, Vec<(u32, i64, u16, u32)>> = HashMap::new();
        let mut by_len6: HashMap<u8, Vec<(u128, i64, u16, u32)>> = HashMap::new();
        let mut nat4: Vec<(u32, u16, u16, u32)> = Vec::new();
        let mut nat6: Vec<(u128, u16, u16, u32)> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            let i = i as u32;
            match (r.v6, r.has_ports) {
                (false, false) => by_len4.entry(r.plen).or_default().push((r.addr() as u32, r.start, 0, i)),
                (true, false) => by_len6.entry(r.plen).or_default().push((r.addr(), r.start, 0, i)),
                (false, true) => nat4.push((r.addr() as u32, r.port_lo, r.port_hi, i)),
                (true, true) => nat6.push((r.addr(), r.port_lo, r.port_hi, i)),
            }
        }
        for (len, items) in by_len4 {
            idx.v4.push((len, build_table(items, &recs, &mut conflicts)));
        }
        for (len, items) in by_len6 {
            idx.v6.push((len, build_table(items, &recs, &mut conflicts)));
        }
        idx.v4.sort_by_key(|t| std::cmp::Reverse(t.0));
        idx.v6.sort_by_key(|t| std::cmp::Reverse(t.0));
        if !nat4.is_empty() {
            idx.nat4 = Some(build_table(split_blocks(nat4, &recs), &recs, &mut conflicts));
        }
        if !nat6.is_empty() {
            idx.nat6 = Some(build_table(split_blocks(nat6, &recs), &recs, &mut conflicts));
        }
        recs.shrink_to_fit();
        idx.recs = recs;
        idx.conflicts = conflicts;
        idx
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Distinct subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Bytes held on the heap by the index, strings included.
    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.subscribers.iter().map(|s| s.capacity() + 24).sum::<usize>()
            + self
                .ident_sets
                .iter()
                .map(|v| 24 + v.iter().map(|(a, b)| 48 + a.capacity() + b.capacity()).sum::<usize>())
                .sum::<usize>()
            + self.sources.iter().map(|s| s.capacity() + 24).sum::<usize>();
        self.recs.capacity() * std::mem::size_of::<Rec>()
            + strings
            + self.conflicts.iter().map(|c| 16 + c.len() * 4).sum::<usize>()
            + self.v4.iter().map(|(_, t)| t.heap_bytes()).sum::<usize>()
            + self.v6.iter().map(|(_, t)| t.heap_bytes()).sum::<usize>()
            + self.nat4.as_ref().map_or(0, Table::heap_bytes)
            + self.nat6.as_ref().map_or(0, Table::heap_bytes)
    }

    fn r(&self, id: u32) -> RecordRef<'_> {
        RecordRef { index: self, id }
    }

    /// Who held `ip` (and `port`, behind CGNAT) at `at`.
    ///
    /// Every record covering the instant is considered — host, delegated prefix and port
    /// block alike: one subscriber → `Exact`, several → `Ambiguous`. A CGNAT public address
    /// asked without a port is `Ambiguous` whenever a port block on it covers the instant.
    pub fn attribute(&self, ip: IpAddr, port: Option<u16>, at: Timestamp) -> Attribution<'_> {
        let t = at.0;
        let mut hits = Hits::default();
        let mut no_port: Vec<u32> = Vec::new();
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for (len, table) in &self.v4 {
                    let k = if *len == 0 { 0 } else { a & (u32::MAX << (32 - *len as u32)) };
                    hits.add(self, table.find(k, t, |x, _| x == k));
                }
                if let Some(nat) = &self.nat4 {
                    self.nat_lookup(nat, (a, 0), port, t, &mut hits, &mut no_port);
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, table) in &self.v6 {
                    let k = if *len == 0 { 0 } else { a & (u128::MAX << (128 - *len as u32)) };
                    hits.add(self, table.find(k, t, |x, _| x == k));
                }
                if let Some(nat) = &self.nat6 {
                    self.nat_lookup(nat, (a, 0), port, t, &mut hits, &mut no_port);
                }
            }
        }
        if !no_port.is_empty() {
            let mut c = no_port;
            c.extend(hits.all(self));
            c.sort_unstable();
            c.dedup();
            return Attribution::Ambiguous {
                candidates: c.into_iter().map(|i| self.r(i)).collect(),
                reason: AmbiguityReason::CgnatWithoutPort,
            };
        }
        hits.resolve(self)
    }

    fn nat_lookup<K: Key>(
        &self,
        nat: &Table<(K, u16)>,
        base: (K, u16),
        port: Option<u16>,
        t: i64,
        hits: &mut Hits,
        no_port: &mut Vec<u32>,
    ) where
        (K, u16): Key,
    {
        match port {
            Some(p) => {
                let probe = (base.0, p);
                hits.add(self, nat.find(probe, t, |k, s| k.same_addr(probe) && s.hi >= p));
            }
            None => {
                // Every block on the address covering the instant.
                let probe = (base.0, u16::MAX);
                let (lo, hi) = nat.bucket_range(probe);
                let first = lo + nat.keys[lo..hi].partition_point(|k| k.0 < base.0);
                let last = lo + nat.keys[lo..hi].partition_point(|k| k.0 <= base.0);
                for s in &nat.segs[first..last] {
                    if s.start <= t && t < s.end {
                        no_port.extend(self.expand(s.val));
                    }
                }
            }
        }
    }

    fn expand(&self, val: u32) -> impl Iterator<Item = u32> + '_ {
        let (one, many): (Option<u32>, &[u32]) = if val & CONFLICT != 0 {
            (None, &self.conflicts[(val & !CONFLICT) as usize])
        } else {
            (Some(val), &[])
        };
        one.into_iter().chain(many.iter().copied())
    }
}

/// What the tables said, gathered without allocating in the common one-hit case.
#[derive(Default)]
struct Hits {
    first: Option<u32>,
    more: Vec<u32>,
    before: Option<u32>,
    after: Option<u32>,
}

impl Hits {
    fn add(&mut self, idx: &SubscriberIndex, f: Option<Found>) {
        match f {
            None => {}
            Some(Found::Hit(v)) => {
                if self.first.is_none() {
                    self.first = Some(v);
                } else {
                    self.more.push(v);
                }
            }
            Some(Found::Miss { before, after }) => {
                // Nearest on either side: the latest-ending before, the earliest-starting after.
                let pick = |v: u32| idx.expand(v).next();
                if let Some(b) = before.and_then(pick)
                    && self.before.is_none_or(|x| idx.recs[b as usize].end > idx.recs[x as usize].end)
                {
                    self.before = Some(b);
                }
                if let Some(a) = after.and_then(pick)
                    && self.after.is_none_or(|x| idx.recs[a as usize].start < idx.recs[x as usize].start)
                {
                    self.after = Some(a);
                }
            }
        }
    }

    fn all<'a>(&'a self, idx: &'a SubscriberIndex) -> impl Iterator<Item = u32> + 'a {
        self.first.into_iter().chain(self.more.iter().copied()).flat_map(|v| idx.expand(v))
    }

    fn resolve(self, idx: &SubscriberIndex) -> Attribution<'_> {
        let Some(first) = self.first else {
            return Attribution::NotFound {
                before: self.before.map(|i| idx.r(i)),
                after: self.after.map(|i| idx.r(i)),
            };
        };
        if first & CONFLICT == 0 && self.more.is_empty() {
            return Attribution::Exact { record: idx.r(first) };
        }
        let mut c: Vec<u32> = self.all(idx).collect();
        let sub = idx.recs[c[0] as usize].sub;
        if c.iter().all(|&i| idx.recs[i as usize].sub == sub) {
            // Tables are searched most specific first, so the first hit is the narrowest.
            return Attribution::Exact { record: idx.r(c[0]) };
        }
        c.sort_unstable();
        c.dedup();
        Attribution::Ambiguous {
            candidates: c.into_iter().map(|i| idx.r(i)).collect(),
            reason: AmbiguityReason::Conflict,
        }
    }
}

/// Cuts each port block at every block boundary seen on its public address, so blocks on
/// one address become disjoint elementary ranges keyed by their first port.
fn split_blocks<A: Copy + Ord>(
    mut items: Vec<(A, u16, u16, u32)>,
    recs: &[Rec],
) -> Vec<((A, u16), i64, u16, u32)> {
    items.sort_unstable_by_key(|x| (x.0, x.1, x.2));
    let mut out = Vec::with_capacity(items.len());
    let mut bounds: Vec<u32> = Vec::new();
    for group in items.chunk_by(|a, b| a.0 == b.0) {
        bounds.clear();
        for &(_, lo, hi, _) in group {
            bounds.push(lo as u32);
            bounds.push(hi as u32 + 1);
        }
        bounds.sort_unstable();
        bounds.dedup();
        for &(a, lo, hi, r) in group {
            let mut i = bounds.partition_point(|b| *b < lo as u32);
            while i + 1 < bounds.len() && bounds[i] <= hi as u32 {
                out.push(((a, bounds[i] as u16), recs[r as usize].start, (bounds[i + 1] - 1) as u16, r));
                i += 1;
            }
        }
    }
    out
}

/// `items` are (key, record start, last port, record); the start rides along so sorting
/// does not chase records around memory.
fn build_table<K: Key>(
    mut items: Vec<(K, i64, u16, u32)>,
    recs: &[Rec],
    conflicts: &mut Vec<Box<[u32]>>,
) -> Table<K> {
    items.sort_unstable_by_key(|&(k, s, _, r)| (k, s, r));
    let mut keys = Vec::with_capacity(items.len());
    let mut segs = Vec::with_capacity(items.len());
    let mut group: Vec<u32> = Vec::new();
    for chunk in items.chunk_by(|a, b| a.0 == b.0) {
        let (k, hi) = (chunk[0].0, chunk[0].2);
        group.clear();
        group.extend(chunk.iter().map(|x| x.3));
        let before = segs.len();
        segment(&group, hi, recs, conflicts, &mut segs);
        keys.resize(segs.len().max(before), k);
    }
    Table::new(keys, segs)
}

/// Cuts one key's intervals (sorted by start) into disjoint segments.
fn segment(group: &[u32], hi: u16, recs: &[Rec], conflicts: &mut Vec<Box<[u32]>>, out: &mut Vec<Seg>) {
    let disjoint = group.windows(2).all(|w| recs[w[0] as usize].end <= recs[w[1] as usize].start);
    if disjoint {
        out.extend(group.iter().map(|&r| {
            let x = &recs[r as usize];
            Seg { start: x.start, end: x.end, val: r, hi }
        }));
        return;
    }
    let mut pts: Vec<i64> =
        group.iter().flat_map(|&r| [recs[r as usize].start, recs[r as usize].end]).collect();
    pts.sort_unstable();
    pts.dedup();
    let mut active: Vec<u32> = Vec::new();
    let mut next = 0;
    let mut last_conflict: Option<u32> = None;
    // Merging stops at the key's first segment: a split port block's record id also ends the
    // previous key's segments.
    let base = out.len();
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        active.retain(|&r| recs[r as usize].end > a);
        while next < group.len() && recs[group[next] as usize].start <= a {
            if recs[group[next] as usize].end > a {
                active.push(group[next]);
            }
            next += 1;
        }
        if active.is_empty() {
            continue;
        }
        let sub = recs[active[0] as usize].sub;
        let val = if active.iter().all(|&r| recs[r as usize].sub == sub) {
            // Same subscriber renewing: the latest-starting record speaks for the segment.
            *active.iter().max_by_key(|&&r| (recs[r as usize].start, r)).unwrap_or(&active[0])
        } else {
            let mut c = active.clone();
            c.sort_unstable();
            match last_conflict {
                Some(i) if *conflicts[i as usize] == *c => i | CONFLICT,
                _ => {
                    let i = conflicts.len() as u32;
                    conflicts.push(c.into_boxed_slice());
                    last_conflict = Some(i);
                    i | CONFLICT
                }
            }
        };
        let len = out.len();
        match out.last_mut() {
            Some(p) if base < len && p.end == a && p.val == val => p.end = b,
            _ => out.push(Seg { start: a, end: b, val, hi }),
        }
    }
}

/// Keyed pseudonyms for subscriber ids and identifiers: HMAC-SHA256 under a secret the
/// operator keeps, so the same id always maps to the same pseudonym (joins still work) but
/// nobody without the secret can reverse or confirm a guess.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

impl Pseudonymiser {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length; the error case does not exist for it.
        let mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Pseudonymiser { mac }
    }

    /// `sub-` and the first 64 bits of the MAC in hex.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut m = self.mac.clone();
        m.update(value.as_bytes());
        let out = m.finalize().into_bytes();
        let mut s = String::with_capacity(20);
        s.push_str("sub-");
        for b in &out[..8] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Replaces the subscriber id and every identifier value. Addresses the record is *about*
    /// (`ip`) stay: they are what attribution is asked for.
    pub fn apply(&self, r: &mut LeaseRecord) {
        r.subscriber = self.pseudonym(&r.subscriber);
        for (_, v) in &mut r.identifiers {
            *v = self.pseudonym(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(ip: &str, ports: Option<(u16, u16)>, s: i64, e: Option<i64>, sub: &str) -> LeaseRecord {
        LeaseRecord {
            ip: ip.parse().unwrap(),
            ports,
            start: Timestamp::from_secs(s),
            end: e.map(Timestamp::from_secs),
            subscriber: sub.into(),
            identifiers: vec![("mac".into(), format!("mac-of-{sub}"))],
            source: "test".into(),
            line: 1,
        }
    }

    fn at<'a>(idx: &'a SubscriberIndex, ip: &str, port: Option<u16>, t: i64) -> Attribution<'a> {
        idx.attribute(ip.parse().unwrap(), port, Timestamp::from_secs(t))
    }

    #[test]
    fn exact_gap_and_neighbours() {
        let idx = SubscriberIndex::build(vec![
            rec("10.0.0.1/32", None, 100, Some(200), "a"),
            rec("10.0.0.1/32", None, 300, None, "b"),
        ]);
        assert_eq!(at(&idx, "10.0.0.1", None, 150).subscriber(), Some("a"));
        assert_eq!(at(&idx, "10.0.0.1", None, 100).subscriber(), Some("a"), "start inclusive");
        assert_eq!(at(&idx, "10.0.0.1", None, 10_000_000).subscriber(), Some("b"), "open end");
        match at(&idx, "10.0.0.1", None, 200) {
            Attribution::NotFound { before, after } => {
                assert_eq!(before.unwrap().subscriber(), "a", "end exclusive");
                assert_eq!(after.unwrap().subscriber(), "b");
            }
            x => panic!("{x:?}"),
        }
        match at(&idx, "10.0.0.1", None, 50) {
            Attribution::NotFound { before: None, after: Some(a) } => assert_eq!(a.subscriber(), "a"),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            at(&idx, "10.0.0.2", None, 150),
            Attribution::NotFound { before: None, after: None }
        ));
        let r = match at(&idx, "10.0.0.1", None, 150) {
            Attribution::Exact { record } => record.to_record(),
            x => panic!("{x:?}"),
        };
        assert_eq!(r, rec("10.0.0.1/32", None, 100, Some(200), "a"));
    }

    #[test]
    fn renewals_merge_and_conflicts_are_ambiguous() {
        let idx = SubscriberIndex::build(vec![
            rec("10.0.0.1/32", None, 100, Some(200), "a"),
            rec("10.0.0.1/32", None, 150, Some(300), "a"),
            rec("10.0.0.1/32", None, 250, Some(400), "b"),
        ]);
        match at(&idx, "10.0.0.1", None, 170) {
            Attribution::Exact { record } => assert_eq!(record.start(), Timestamp::from_secs(150)),
            x => panic!("{x:?}"),
        }
        match at(&idx, "10.0.0.1", None, 260) {
            Attribution::Ambiguous { candidates, reason } => {
                assert_eq!(reason, AmbiguityReason::Conflict);
                let subs: Vec<_> = candidates.iter().map(|c| c.subscriber()).collect();
                assert_eq!(subs, ["a", "b"]);
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(at(&idx, "10.0.0.1", None, 350).subscriber(), Some("b"));
    }

    #[test]
    fn cgnat_ports_select_the_block_and_no_port_is_ambiguous() {
        let idx = SubscriberIndex::build(vec![
            rec("198.51.100.1/32", Some((1024, 2047)), 0, Some(1000), "a"),
            rec("198.51.100.1/32", Some((2048, 3071)), 0, Some(1000), "b"),
            rec("198.51.100.1/32", Some((1024, 2047)), 1000, None, "c"),
        ]);
        assert_eq!(at(&idx, "198.51.100.1", Some(1500), 10).subscriber(), Some("a"));
        assert_eq!(at(&idx, "198.51.100.1", Some(2048), 10).subscriber(), Some("b"));
        assert_eq!(at(&idx, "198.51.100.1", Some(2047), 1000).subscriber(), Some("c"));
        assert!(matches!(at(&idx, "198.51.100.1", Some(80), 10), Attribution::NotFound { .. }));
        assert!(matches!(at(&idx, "198.51.100.1", Some(4000), 10), Attribution::NotFound { .. }));
        match at(&idx, "198.51.100.1", None, 10) {
            Attribution::Ambiguous { candidates, reason } => {
                assert_eq!(reason, AmbiguityReason::CgnatWithoutPort);
                assert_eq!(candidates.len(), 2);
            }
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn delegated_prefix_and_host_of_same_subscriber_agree() {
        let idx = SubscriberIndex::build(vec![
            rec("2001:db8:1:100::/56", None, 0, Some(1000), "a"),
            rec("2001:db8:1:100::5/128", None, 0, Some(1000), "a"),
            rec("2001:db8:2::/48", None, 0, Some(1000), "x"),
            rec("2001:db8:2:1::/64", None, 0, Some(1000), "y"),
        ]);
        match at(&idx, "2001:db8:1:100::5", None, 5) {
            Attribution::Exact { record } => assert_eq!(record.ip().prefix_len(), 128, "most specific"),
            x => panic!("{x:?}"),
        }
        assert_eq!(at(&idx, "2001:db8:1:1ff::9", None, 5).subscriber(), Some("a"));
        assert!(matches!(at(&idx, "2001:db8:2:1::1", None, 5), Attribution::Ambiguous { .. }));
        assert_eq!(at(&idx, "2001:db8:2:2::1", None, 5).subscriber(), Some("x"));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let p = Pseudonymiser::new(b"secret");
        let q = Pseudonymiser::new(b"other");
        let a = p.pseudonym("line-1");
        assert_eq!(a, p.pseudonym("line-1"));
        assert_ne!(a, q.pseudonym("line-1"));
        assert_ne!(a, p.pseudonym("line-2"));
        assert!(a.starts_with("sub-") && a.len() == 20, "{a}");
        let mut r = rec("10.0.0.1/32", None, 0, None, "line-1");
        p.apply(&mut r);
        assert_eq!(r.subscriber, a);
        assert_eq!(r.identifiers[0].1, p.pseudonym("mac-of-line-1"));
    }

    /// Small address, port and time spaces so generated records collide often.
    fn arb_rec() -> impl Strategy<Value = LeaseRecord> {
        (0u32..4, prop::option::of((0u16..6, 0u16..3)), 0i64..40, prop::option::of(1i64..20), 0u8..4)
            .prop_map(|(a, ports, s, len, sub)| {
                let ports = ports.map(|(p, w)| (p * 10, p * 10 + w * 10 + 9));
                rec(&format!("10.0.0.{a}/32"), ports, s, len.map(|l| s + l), &format!("s{sub}"))
            })
    }

    fn oracle(recs: &[LeaseRecord], ip: u32, port: Option<u16>, t: i64) -> (Vec<String>, bool) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let t = Timestamp::from_secs(t);
        let mut subs = Vec::new();
        let mut no_port = false;
        for r in recs.iter().filter(|r| r.ip.contains(&ip) && r.covers(t)) {
            match (r.ports, port) {
                (Some(_), None) => no_port = true,
                (Some((lo, hi)), Some(p)) if !(lo..=hi).contains(&p) => continue,
                _ => {}
            }
            subs.push(r.subscriber.clone());
        }
        subs.sort();
        subs.dedup();
        (subs, no_port)
    }

    fn check(recs: &[LeaseRecord], idx: &SubscriberIndex) -> Result<(), TestCaseError> {
        for ip in (0..5u32).flat_map(|a| [0x0a00_0000 | a, 0x0a00_0100 | a]) {
            for port in [None, Some(0), Some(5), Some(10), Some(19), Some(25), Some(55), Some(70)] {
                for t in -1..62 {
                    let (subs, no_port) = oracle(recs, ip, port, t);
                    let got = idx.attribute(IpAddr::V4(Ipv4Addr::from(ip)), port, Timestamp::from_secs(t));
                    match &got {
                        Attribution::Exact { record } => {
                            prop_assert!(!no_port);
                            prop_assert_eq!(&subs, &vec![record.subscriber().to_string()]);
                            let r = record.to_record();
                            prop_assert!(r.covers(Timestamp::from_secs(t)));
                            if let (Some((lo, hi)), Some(p)) = (r.ports, port) {
                                prop_assert!((lo..=hi).contains(&p));
                            }
                        }
                        Attribution::Ambiguous { candidates, reason } => {
                            prop_assert!(no_port || subs.len() > 1, "{:?} vs {:?}", got, subs);
                            prop_assert_eq!(*reason == AmbiguityReason::CgnatWithoutPort, no_port);
                            let mut cs: Vec<String> =
                                candidates.iter().map(|c| c.subscriber().to_string()).collect();
                            cs.sort();
                            cs.dedup();
                            prop_assert_eq!(cs, subs);
                        }
                        Attribution::NotFound { before, after } => {
                            prop_assert!(subs.is_empty() && !no_port, "{:?} vs {:?}", got, subs);
                            for r in before.iter().chain(after.iter()) {
                                prop_assert!(!r.to_record().covers(Timestamp::from_secs(t)));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any record set, conflicting or not: the index agrees with brute force; a conflict
        /// is always Ambiguous and never one of the subscribers.
        #[test]
        fn index_agrees_with_brute_force(recs in prop::collection::vec(arb_rec(), 0..24)) {
            let idx = SubscriberIndex::build(recs.clone());
            check(&recs, &idx)?;
        }

        /// Non-conflicting sets (each address or block held by one subscriber at a time, built
        /// by giving every (address, block, time slot) one owner): at most one subscriber, always
        /// Exact where covered.
        #[test]
        fn non_conflicting_sets_map_to_at_most_one(
            owners in prop::collection::vec((0u32..4, prop::option::of(0u16..6), 0i64..6, 0u8..5), 0..40)
        ) {
            let mut seen = std::collections::HashSet::new();
            let mut recs = Vec::new();
            for (a, block, slot, sub) in owners {
                if !seen.insert((a, block.is_some(), block, slot)) {
                    continue;
                }
                // Plain and port-block records live on disjoint addresses here.
                let (ip, ports) = match block {
                    Some(b) => (format!("10.0.1.{a}/32"), Some((b * 10, b * 10 + 9))),
                    None => (format!("10.0.0.{a}/32"), None),
                };
                recs.push(rec(&ip, ports, slot * 10, Some(slot * 10 + 7 + (sub as i64 % 3)), &format!("s{sub}")));
            }
            let idx = SubscriberIndex::build(recs.clone());
            check(&recs, &idx)?;
            for a in 0..4u32 {
                for t in 0..62 {
                    for p in [0u16, 15, 33, 59] {
                        let got = idx.attribute(IpAddr::V4(Ipv4Addr::from(0x0a00_0100 | a)), Some(p), Timestamp::from_secs(t));
                        let ambiguous = matches!(got, Attribution::Ambiguous { .. });
                        prop_assert!(!ambiguous, "{:?}", got);
                    }
                }
            }
        }
    }
}

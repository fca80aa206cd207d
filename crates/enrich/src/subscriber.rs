//! "Who held this address at that instant?": lease, accounting and CGNAT port-block records
//! turned into an index answering with two or three memory reads and no allocation.
//!
//! Records are grouped by key — the network (one table per prefix length, so a /32, a /128
//! and a delegated /56 each get an exact-match table), or the public address behind CGNAT —
//! and each key's intervals are cut into disjoint *segments* stored as one contiguous run.
//! A segment covered by one subscriber points at the record that covers it (the
//! latest-starting one, so a renewal supersedes) and carries its subscriber; a segment
//! covered by two different subscribers points at a conflict list and is answered as
//! [`Attribution::Ambiguous`], never with one of them. An open-addressed hash directory maps
//! a key to its run, so an exact lookup is one directory slot, one run of segments and the
//! subscriber's text. CGNAT port blocks are first split at every block boundary seen on
//! their public address; the address's slot leads to its sorted elementary port ranges, each
//! with its own run of segments.
//!
//! Memory: a record costs one [`Rec`] (56 bytes), one or more 24-byte segments (one when
//! intervals of a key do not overlap), ~12 bytes of directory per distinct IPv4 address (at
//! most half full) or 12 bytes per elementary port range, plus the pooled subscriber,
//! identifier-set and source strings, shared by every record that repeats them.
//! [`SubscriberIndex::heap_bytes`] reports the real figure.
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xxhash_rust::xxh3::xxh3_64;

const OPEN: i64 = i64::MAX;
/// A segment value with this bit set indexes the conflict lists, not the records.
const CONFLICT: u32 = 1 << 31;
/// The subscriber of a conflict segment: there is none.
const NO_SUB: u32 = u32::MAX;

/// The index's compact copy of a [`LeaseRecord`]; strings are pooled.
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

/// The subscriber rides in the segment so an exact answer's name needs no trip to the record.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seg {
    start: i64,
    end: i64,
    val: u32,
    sub: u32,
}

trait Key: Copy + Eq + Ord + Default + std::fmt::Debug {
    fn hash(self) -> u64;
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Key for u32 {
    fn hash(self) -> u64 {
        (self as u64).wrapping_mul(MUL)
    }
}

impl Key for u128 {
    fn hash(self) -> u64 {
        // Prefix keys have zero low bits, so the high half must reach the top bits too.
        (((self >> 64) as u64).wrapping_mul(MUL) ^ self as u64).wrapping_mul(MUL)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot<K> {
    key: K,
    off: u32,
    /// 0 marks an empty slot: only keys with at least one entry are inserted.
    n: u32,
}

/// Open-addressed (linear probing, at most half full) map from a key to a run `off..off+n`
/// of another array; a lookup is usually one cache line.
#[derive(Debug)]
struct Dir<K> {
    slots: Vec<Slot<K>>,
    shift: u32,
}

impl<K: Key> Dir<K> {
    fn with_capacity(keys: usize) -> Self {
        let cap = (keys * 2).next_power_of_two().max(2);
        Dir { slots: vec![Slot::default(); cap], shift: 64 - cap.trailing_zeros() }
    }

    fn insert(&mut self, key: K, off: usize, n: usize) {
        let mask = self.slots.len() - 1;
        let mut i = (key.hash() >> self.shift) as usize;
        while self.slots[i].n != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { key, off: off as u32, n: n as u32 };
    }

    fn get(&self, key: K) -> Option<std::ops::Range<usize>> {
        let mask = self.slots.len() - 1;
        let mut i = (key.hash() >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.n == 0 {
                return None;
            }
            if s.key == key {
                return Some(s.off as usize..s.off as usize + s.n as usize);
            }
            i = (i + 1) & mask;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K>>()
    }
}

enum Found {
    Hit { val: u32, sub: u32 },
    Miss { before: Option<u32>, after: Option<u32> },
}

/// The answer of one key's run of segments (sorted by start, disjoint, non-empty) at `t`.
fn find_in(segs: &[Seg], t: i64) -> Found {
    let p = segs.partition_point(|s| s.start <= t);
    if p == 0 {
        return Found::Miss { before: None, after: segs.first().map(|s| s.val) };
    }
    let s = segs[p - 1];
    if t < s.end {
        return Found::Hit { val: s.val, sub: s.sub };
    }
    Found::Miss { before: Some(s.val), after: segs.get(p).map(|s| s.val) }
}

/// An exact-match table: one prefix length of one family.
#[derive(Debug)]
struct Table<K> {
    dir: Dir<K>,
    segs: Vec<Seg>,
}

impl<K: Key> Table<K> {
    fn find(&self, k: K, t: i64) -> Option<Found> {
        Some(find_in(&self.segs[self.dir.get(k)?], t))
    }

    fn heap_bytes(&self) -> usize {
        self.dir.heap_bytes() + self.segs.capacity() * std::mem::size_of::<Seg>()
    }
}

/// One elementary port range of a public address and its run of segments.
#[derive(Debug, Clone, Copy)]
struct PortRange {
    lo: u16,
    hi: u16,
    off: u32,
    n: u32,
}

/// CGNAT port blocks: public address → its elementary port ranges (sorted) → segments.
#[derive(Debug)]
struct NatTable<A> {
    dir: Dir<A>,
    ranges: Vec<PortRange>,
    segs: Vec<Seg>,
}

impl<A: Key> NatTable<A> {
    fn ranges(&self, a: A) -> &[PortRange] {
        self.dir.get(a).map_or(&[], |r| &self.ranges[r])
    }

    fn run(&self, r: &PortRange) -> &[Seg] {
        &self.segs[r.off as usize..r.off as usize + r.n as usize]
    }

    fn find(&self, a: A, port: u16, t: i64) -> Option<Found> {
        let rs = self.ranges(a);
        let j = rs.partition_point(|r| r.lo <= port);
        let r = rs.get(j.checked_sub(1)?)?;
        (port <= r.hi).then(|| find_in(self.run(r), t))
    }

    fn heap_bytes(&self) -> usize {
        self.dir.heap_bytes()
            + self.ranges.capacity() * std::mem::size_of::<PortRange>()
            + self.segs.capacity() * std::mem::size_of::<Seg>()
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
    /// The record's subscriber, known from the segment on the hot path.
    sub: u32,
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
        self.index.subscribers.get(self.sub)
    }
    pub fn identifiers(&self) -> &'a [(String, String)] {
        self.index.ident_sets.get(self.rec().ident)
    }
    pub fn source(&self) -> &'a str {
        self.index.sources.get(self.rec().source)
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
    subscribers: StrPool,
    ident_sets: IdentPool,
    sources: StrPool,
    conflicts: Vec<Box<[u32]>>,
    /// Address tables, most specific prefix length first.
    v4: Vec<(u8, Table<u32>)>,
    v6: Vec<(u8, Table<u128>)>,
    nat4: Option<NatTable<u32>>,
    nat6: Option<NatTable<u128>>,
}

/// Interning slots, at most half full: (value id + 1, 0 empty; 32 bits of the value's hash).
/// The hash kept beside the id lets growth and most mismatches skip the values, which lie
/// scattered in memory.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<(u32, u32)>,
}

impl Slots {
    /// The slot holding the value equal per `eq`, or the empty slot where it belongs.
    fn probe(&mut self, len: usize, hash: u64, eq: impl Fn(u32) -> bool) -> usize {
        if (len + 1) * 2 > self.slots.len() {
            let cap = (self.slots.len() * 2).max(64);
            let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
            for (v, h) in old.into_iter().filter(|s| s.0 != 0) {
                let mut i = h as usize & (cap - 1);
                while self.slots[i].0 != 0 {
                    i = (i + 1) & (cap - 1);
                }
                self.slots[i] = (v, h);
            }
        }
        let h = (hash >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (v, sh) = self.slots[i];
            if v == 0 || (sh == h && eq(v - 1)) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn fill(&mut self, i: usize, id: u32, hash: u64) {
        self.slots[i] = (id + 1, (hash >> 32) as u32);
    }
}

/// Strings back to back in one buffer: one allocation for a million subscriber ids.
#[derive(Debug, Default)]
struct StrPool {
    text: String,
    ends: Vec<usize>,
    slots: Slots,
}

impl StrPool {
    fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let a = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[a..self.ends[i]]
    }

    fn intern(&mut self, s: &str) -> u32 {
        let mut slots = std::mem::take(&mut self.slots);
        let this = &*self;
        let hash = xxh3_64(s.as_bytes());
        let i = slots.probe(this.ends.len(), hash, |v| this.get(v) == s);
        let id = match slots.slots[i].0 {
            0 => {
                self.text.push_str(s);
                self.ends.push(self.text.len());
                let id = self.ends.len() as u32 - 1;
                slots.fill(i, id, hash);
                id
            }
            v => v - 1,
        };
        self.slots = slots;
        id
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Drops the interning slots once building is done.
    fn finish(&mut self) {
        self.slots = Slots::default();
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 8 + self.slots.slots.capacity() * 8
    }
}

/// Identifier sets back to back; a set is a slice of `pairs`.
#[derive(Debug, Default)]
struct IdentPool {
    pairs: Vec<(String, String)>,
    ends: Vec<usize>,
    slots: Slots,
}

fn ident_hash(v: &[(String, String)]) -> u64 {
    v.iter().fold(v.len() as u64, |h, (k, x)| {
        (h.rotate_left(23) ^ xxh3_64(k.as_bytes())).wrapping_mul(MUL) ^ xxh3_64(x.as_bytes())
    })
}

impl IdentPool {
    fn get(&self, i: u32) -> &[(String, String)] {
        let i = i as usize;
        let a = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.pairs[a..self.ends[i]]
    }

    /// Takes the strings of a new set; a repeated set is dropped.
    fn intern(&mut self, v: Vec<(String, String)>) -> u32 {
        let mut slots = std::mem::take(&mut self.slots);
        let this = &*self;
        let hash = ident_hash(&v);
        let i = slots.probe(this.ends.len(), hash, |x| this.get(x) == v);
        let id = match slots.slots[i].0 {
            0 => {
                self.pairs.extend(v);
                self.ends.push(self.pairs.len());
                let id = self.ends.len() as u32 - 1;
                slots.fill(i, id, hash);
                id
            }
            x => x - 1,
        };
        self.slots = slots;
        id
    }

    fn finish(&mut self) {
        self.slots = Slots::default();
        self.pairs.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * 48
            + self.pairs.iter().map(|(a, b)| a.capacity() + b.capacity()).sum::<usize>()
            + self.ends.capacity() * 8
            + self.slots.slots.capacity() * 8
    }
}

impl SubscriberIndex {
    /// Builds the index. Records whose interval is empty or reversed are dropped: they cover
    /// no instant.
    pub fn build(records: impl IntoIterator<Item = LeaseRecord>) -> Self {
        let mut idx = SubscriberIndex::default();
        let records = records.into_iter();
        let mut recs = Vec::with_capacity(records.size_hint().0);
        // Keys gathered while reading, so the records are walked once.
        let mut by_len4: Vec<Vec<(u32, i64, u32)>> = (0..=32).map(|_| Vec::new()).collect();
        let mut by_len6: Vec<Vec<(u128, i64, u32)>> = (0..=128).map(|_| Vec::new()).collect();
        let mut nat4: Vec<(u32, u16, u16, u32)> = Vec::new();
        let mut nat6: Vec<(u128, u16, u16, u32)> = Vec::new();
        let mut last_source: Option<(String, u32)> = None;
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
            // A file's records all name the same source: skip the pool for a repeat.
            let source = match &last_source {
                Some((s, i)) if *s == r.source => *i,
                _ => {
                    let i = idx.sources.intern(&r.source);
                    last_source = Some((r.source, i));
                    i
                }
            };
            let i = recs.len() as u32;
            match (v6, r.ports.is_some()) {
                (false, false) => by_len4[plen as usize].push((addr as u32, r.start.0, i)),
                (true, false) => by_len6[plen as usize].push((addr, r.start.0, i)),
                (false, true) => nat4.push((addr as u32, port_lo, port_hi, i)),
                (true, true) => nat6.push((addr, port_lo, port_hi, i)),
            }
            recs.push(Rec {
                addr_hi: (addr >> 64) as u64,
                addr_lo: addr as u64,
                start: r.start.0,
                end,
                sub: idx.subscribers.intern(&r.subscriber),
                ident: idx.ident_sets.intern(r.identifiers),
                source,
                line: r.line.min(u32::MAX as u64) as u32,
                port_lo,
                port_hi,
                plen,
                v6,
                has_ports: r.ports.is_some(),
            });
        }
        idx.subscribers.finish();
        idx.ident_sets.finish();
        idx.sources.finish();
        let mut conflicts = Vec::new();
        for (len, items) in by_len4.into_iter().enumerate().rev() {
            if !items.is_empty() {
                idx.v4.push((len as u8, build_table(items, &recs, &mut conflicts)));
            }
        }
        for (len, items) in by_len6.into_iter().enumerate().rev() {
            if !items.is_empty() {
                idx.v6.push((len as u8, build_table(items, &recs, &mut conflicts)));
            }
        }
        if !nat4.is_empty() {
            idx.nat4 = Some(build_nat(nat4, &recs, &mut conflicts));
        }
        if !nat6.is_empty() {
            idx.nat6 = Some(build_nat(nat6, &recs, &mut conflicts));
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

    /// Whether any record names this subscriber (a scan: for one-off look-ups, not per event).
    pub fn knows_subscriber(&self, s: &str) -> bool {
        (0..self.subscribers.len() as u32).any(|i| self.subscribers.get(i) == s)
    }

    /// Distinct subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Bytes held on the heap by the index, strings included.
    pub fn heap_bytes(&self) -> usize {
        self.recs.capacity() * std::mem::size_of::<Rec>()
            + self.subscribers.heap_bytes()
            + self.ident_sets.heap_bytes()
            + self.sources.heap_bytes()
            + self.conflicts.iter().map(|c| 16 + c.len() * 4).sum::<usize>()
            + self.v4.iter().map(|(_, t)| t.heap_bytes()).sum::<usize>()
            + self.v6.iter().map(|(_, t)| t.heap_bytes()).sum::<usize>()
            + self.nat4.as_ref().map_or(0, NatTable::heap_bytes)
            + self.nat6.as_ref().map_or(0, NatTable::heap_bytes)
    }

    fn r(&self, id: u32) -> RecordRef<'_> {
        RecordRef { index: self, id, sub: self.recs[id as usize].sub }
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
                    hits.add(self, table.find(k, t));
                }
                if let Some(nat) = &self.nat4 {
                    self.nat_lookup(nat, a, port, t, &mut hits, &mut no_port);
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, table) in &self.v6 {
                    let k = if *len == 0 { 0 } else { a & (u128::MAX << (128 - *len as u32)) };
                    hits.add(self, table.find(k, t));
                }
                if let Some(nat) = &self.nat6 {
                    self.nat_lookup(nat, a, port, t, &mut hits, &mut no_port);
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

    fn nat_lookup<A: Key>(
        &self,
        nat: &NatTable<A>,
        a: A,
        port: Option<u16>,
        t: i64,
        hits: &mut Hits,
        no_port: &mut Vec<u32>,
    ) {
        match port {
            Some(p) => hits.add(self, nat.find(a, p, t)),
            None => {
                // Every block on the address covering the instant.
                for r in nat.ranges(a) {
                    for s in nat.run(r) {
                        if s.start <= t && t < s.end {
                            no_port.extend(self.expand(s.val));
                        }
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
    /// Segment value and subscriber of the first (most specific) hit.
    first: Option<(u32, u32)>,
    more: Vec<u32>,
    before: Option<u32>,
    after: Option<u32>,
}

impl Hits {
    fn add(&mut self, idx: &SubscriberIndex, f: Option<Found>) {
        match f {
            None => {}
            Some(Found::Hit { val, sub }) => {
                if self.first.is_none() {
                    self.first = Some((val, sub));
                } else {
                    self.more.push(val);
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
        self.first.map(|f| f.0).into_iter().chain(self.more.iter().copied()).flat_map(|v| idx.expand(v))
    }

    fn resolve(self, idx: &SubscriberIndex) -> Attribution<'_> {
        let Some((first, sub)) = self.first else {
            return Attribution::NotFound {
                before: self.before.map(|i| idx.r(i)),
                after: self.after.map(|i| idx.r(i)),
            };
        };
        if first & CONFLICT == 0 && self.more.is_empty() {
            return Attribution::Exact { record: RecordRef { index: idx, id: first, sub } };
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

/// `items` are (key, record start, record); the start rides along so sorting does not chase
/// records around memory.
fn build_table<K: Key>(
    mut items: Vec<(K, i64, u32)>,
    recs: &[Rec],
    conflicts: &mut Vec<Box<[u32]>>,
) -> Table<K> {
    items.sort_unstable_by_key(|&(k, s, r)| (k, s, r));
    let keys = items.chunk_by(|a, b| a.0 == b.0).count();
    let mut dir = Dir::with_capacity(keys);
    let mut segs = Vec::with_capacity(items.len());
    let mut group: Vec<u32> = Vec::new();
    for chunk in items.chunk_by(|a, b| a.0 == b.0) {
        group.clear();
        group.extend(chunk.iter().map(|x| x.2));
        let off = segs.len();
        segment(&group, recs, conflicts, &mut segs);
        if segs.len() > off {
            dir.insert(chunk[0].0, off, segs.len() - off);
        }
    }
    segs.shrink_to_fit();
    Table { dir, segs }
}

/// `items` are (public address, first port, last port, record). Each block is cut at every
/// block boundary seen on its address, so the blocks of one address become disjoint
/// elementary ranges, each segmented on its own.
fn build_nat<A: Key>(
    mut items: Vec<(A, u16, u16, u32)>,
    recs: &[Rec],
    conflicts: &mut Vec<Box<[u32]>>,
) -> NatTable<A> {
    items.sort_unstable_by_key(|x| x.0);
    let addrs = items.chunk_by(|a, b| a.0 == b.0).count();
    let mut dir = Dir::with_capacity(addrs);
    let mut ranges = Vec::new();
    let mut segs = Vec::with_capacity(items.len());
    let mut bounds: Vec<u32> = Vec::new();
    // (elementary first port, its last port, record start, record) of one address.
    let mut pieces: Vec<(u16, u16, i64, u32)> = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    for block in items.chunk_by(|a, b| a.0 == b.0) {
        bounds.clear();
        for &(_, lo, hi, _) in block {
            bounds.push(lo as u32);
            bounds.push(hi as u32 + 1);
        }
        bounds.sort_unstable();
        bounds.dedup();
        pieces.clear();
        for &(_, lo, hi, r) in block {
            let mut i = bounds.partition_point(|b| *b < lo as u32);
            while i + 1 < bounds.len() && bounds[i] <= hi as u32 {
                pieces.push((bounds[i] as u16, (bounds[i + 1] - 1) as u16, recs[r as usize].start, r));
                i += 1;
            }
        }
        pieces.sort_unstable_by_key(|p| (p.0, p.2, p.3));
        let first = ranges.len();
        for chunk in pieces.chunk_by(|a, b| a.0 == b.0) {
            group.clear();
            group.extend(chunk.iter().map(|p| p.3));
            let off = segs.len();
            segment(&group, recs, conflicts, &mut segs);
            if segs.len() > off {
                let (lo, hi) = (chunk[0].0, chunk[0].1);
                ranges.push(PortRange { lo, hi, off: off as u32, n: (segs.len() - off) as u32 });
            }
        }
        if ranges.len() > first {
            dir.insert(block[0].0, first, ranges.len() - first);
        }
    }
    ranges.shrink_to_fit();
    segs.shrink_to_fit();
    NatTable { dir, ranges, segs }
}

/// Cuts one key's intervals (sorted by start) into disjoint segments.
fn segment(group: &[u32], recs: &[Rec], conflicts: &mut Vec<Box<[u32]>>, out: &mut Vec<Seg>) {
    let disjoint = group.windows(2).all(|w| recs[w[0] as usize].end <= recs[w[1] as usize].start);
    if disjoint {
        out.extend(group.iter().map(|&r| {
            let x = &recs[r as usize];
            Seg { start: x.start, end: x.end, val: r, sub: x.sub }
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
    // Merging stops at the key's first segment: the previous key's run ends before it.
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
        let (val, sub) = if active.iter().all(|&r| recs[r as usize].sub == sub) {
            // Same subscriber renewing: the latest-starting record speaks for the segment.
            (*active.iter().max_by_key(|&&r| (recs[r as usize].start, r)).unwrap_or(&active[0]), sub)
        } else {
            let mut c = active.clone();
            c.sort_unstable();
            let i = match last_conflict {
                Some(i) if *conflicts[i as usize] == *c => i,
                _ => {
                    let i = conflicts.len() as u32;
                    conflicts.push(c.into_boxed_slice());
                    last_conflict = Some(i);
                    i
                }
            };
            (i | CONFLICT, NO_SUB)
        };
        let len = out.len();
        match out.last_mut() {
            Some(p) if base < len && p.end == a && p.val == val => p.end = b,
            _ => out.push(Seg { start: a, end: b, val, sub }),
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

    /// Enough keys, subscribers and identifier sets that the directories probe past
    /// collisions and the string pools grow several times; every record reads back whole.
    #[test]
    fn many_keys_probe_and_pools_grow() {
        let mut recs = Vec::new();
        for a in 0..2000u32 {
            for k in 0..3i64 {
                let ip = format!("10.{}.{}.{}/32", a >> 16, (a >> 8) & 0xff, a & 0xff);
                recs.push(rec(
                    &ip,
                    None,
                    k * 100,
                    Some(k * 100 + 90),
                    &format!("s{}", (a * 3 + k as u32) % 700),
                ));
            }
            let nat = format!("198.51.{}.{}/32", (a >> 8) & 0xff, a & 0xff);
            let lo = 1024 + (a % 7) as u16 * 512;
            recs.push(rec(&nat, Some((lo, lo + 511)), 0, Some(50), &format!("n{a}")));
        }
        let idx = SubscriberIndex::build(recs.clone());
        assert_eq!(idx.len(), recs.len());
        for r in &recs {
            let port = r.ports.map(|p| p.0 + 7);
            let t = Timestamp::from_secs(r.start.secs() + 5);
            match idx.attribute(r.ip.addr(), port, t) {
                Attribution::Exact { record } => assert_eq!(&record.to_record(), r),
                x => panic!("{r:?}: {x:?}"),
            }
            let gap = Timestamp::from_secs(r.start.secs() + 95);
            assert!(matches!(idx.attribute(r.ip.addr(), port, gap), Attribution::NotFound { .. }));
        }
        assert!(matches!(
            at(&idx, "10.200.0.1", None, 5),
            Attribution::NotFound { before: None, after: None }
        ));
        assert!(matches!(at(&idx, "198.51.0.1", Some(80), 5), Attribution::NotFound { .. }));
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

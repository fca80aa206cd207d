//! A compiled matcher written to a file and read back, so a scan or a sensor that starts
//! against an unchanged indicator set skips compiling it (a second or more for a million
//! indicators; reading the snapshot is a copy of its arrays).
//!
//! Layout: magic, a caller's key (what the matcher was compiled from: the store's generation
//! and the settings), the arrays as little-endian columns with lengths, and an xxh3 of all
//! of that. A snapshot whose key differs is stale; one whose checksum or shape is wrong is
//! corrupt. Either way the caller rebuilds from the store, so nothing here is trusted
//! beyond the checks that keep look-ups in bounds.

use super::{Domains, Entry, FILTER_BITS, Key, Matcher, Segments};

const MAGIC: &[u8; 8] = b"BWMATCH1";

/// Why a snapshot could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("compiled for another indicator set")]
    Stale,
    #[error("corrupt matcher snapshot: {0}")]
    Corrupt(&'static str),
}

trait Col: Sized + Copy {
    const N: usize;
    fn put(self, out: &mut Vec<u8>);
    fn take(b: &[u8]) -> Self;
}

macro_rules! col {
    ($($t:ty),*) => {$(
        impl Col for $t {
            const N: usize = std::mem::size_of::<$t>();
            #[inline]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn take(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
col!(u8, u32, u64, i64, u128);

struct Out(Vec<u8>);

impl Out {
    fn n(&mut self, n: usize) {
        (n as u64).put(&mut self.0);
    }
    fn col<T: Col>(&mut self, xs: impl ExactSizeIterator<Item = T>) {
        self.n(xs.len());
        self.0.reserve(xs.len() * T::N);
        for x in xs {
            x.put(&mut self.0);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.n(b.len());
        self.0.extend_from_slice(b);
    }
    fn segments<K: Key + Col>(&mut self, s: &Segments<K>) {
        self.col(s.segs.iter().map(|x| x.0));
        self.col(s.segs.iter().map(|x| x.1));
        self.col(s.segs.iter().map(|x| x.2));
        s.min.put(&mut self.0);
        s.shift.put(&mut self.0);
        self.col(s.dir.iter().copied());
        self.col(s.fences.iter().copied());
    }
}

/// Reads a snapshot in chunks straight into the arrays it becomes, hashing as it goes:
/// no copy of the whole file in memory.
struct In<Rd> {
    r: Rd,
    /// Bytes the source still holds: a length is checked against it before anything is
    /// allocated for it.
    left: u64,
    hash: xxhash_rust::xxh3::Xxh3,
    chunk: Vec<u8>,
}

type R<T> = Result<T, SnapshotError>;

/// Elements per read: a few hundred KiB, so the chunk stays in cache while it is decoded.
const CHUNK: usize = 1 << 15;

impl<Rd: std::io::Read> In<Rd> {
    fn fill(&mut self, n: usize) -> R<()> {
        if n as u64 > self.left {
            return Err(SnapshotError::Corrupt("truncated"));
        }
        self.chunk.resize(n, 0);
        self.r.read_exact(&mut self.chunk).map_err(|_| SnapshotError::Corrupt("truncated"))?;
        self.left -= n as u64;
        self.hash.update(&self.chunk);
        Ok(())
    }
    fn one<T: Col>(&mut self) -> R<T> {
        self.fill(T::N)?;
        Ok(T::take(&self.chunk))
    }
    fn n(&mut self) -> R<usize> {
        usize::try_from(self.one::<u64>()?).map_err(|_| SnapshotError::Corrupt("length"))
    }
    fn col<T: Col>(&mut self) -> R<Vec<T>> {
        let n = self.n()?;
        let bytes = n.checked_mul(T::N).ok_or(SnapshotError::Corrupt("length"))?;
        if bytes as u64 > self.left {
            return Err(SnapshotError::Corrupt("truncated"));
        }
        let mut v = Vec::with_capacity(n);
        let mut todo = n;
        while todo > 0 {
            let k = todo.min(CHUNK);
            self.fill(k * T::N)?;
            v.extend(self.chunk.chunks_exact(T::N).map(T::take));
            todo -= k;
        }
        Ok(v)
    }
    fn bytes(&mut self) -> R<Vec<u8>> {
        self.col::<u8>()
    }
    /// The segments' indicator ids are checked by the caller, once it knows how many.
    fn segments<K: Key + Col>(&mut self) -> R<Segments<K>> {
        let (a, b, v) = (self.col::<K>()?, self.col::<K>()?, self.col::<u32>()?);
        if a.len() != b.len() || a.len() != v.len() {
            return Err(SnapshotError::Corrupt("segment columns differ in length"));
        }
        let segs: Vec<(K, K, u32)> = a.into_iter().zip(b).zip(v).map(|((a, b), v)| (a, b, v)).collect();
        let min = self.one::<u128>()?;
        let shift = self.one::<u32>()?;
        let dir = self.col::<u32>()?;
        let fences = self.col::<K>()?;
        // What `get` indexes: the directory's buckets and the fence blocks.
        if dir.len() < 2 || shift > 127 || dir.iter().any(|&d| d as usize > segs.len()) {
            return Err(SnapshotError::Corrupt("segment directory"));
        }
        if !dir.windows(2).all(|w| w[0] <= w[1]) || fences.len() > segs.len().div_ceil(super::FENCE) {
            return Err(SnapshotError::Corrupt("segment directory"));
        }
        Ok(Segments { segs, min, shift, dir, fences })
    }
}

impl Matcher {
    /// The compiled matcher as bytes, labelled with `key` (what it was compiled from).
    pub fn to_snapshot(&self, key: &str) -> Vec<u8> {
        let mut o = Out(Vec::with_capacity(self.stats().heap_bytes + 1024));
        o.0.extend_from_slice(MAGIC);
        o.bytes(key.as_bytes());
        o.segments(&self.v4);
        o.col(self.v4_filter.iter().copied());
        o.segments(&self.v6);
        let d = &self.domains;
        o.col(d.hashes.iter().copied());
        o.col(d.ids.iter().copied());
        o.col(d.spans.iter().map(|s| s.0));
        o.col(d.spans.iter().map(|s| s.1));
        o.bytes(&d.text);
        o.n(d.min_dots);
        o.col(d.filter.iter().copied());
        let e = &self.entries;
        o.col(e.iter().map(|e| e.source_id));
        o.col(e.iter().map(|e| e.valid_from));
        o.col(e.iter().map(|e| e.valid_until));
        o.col(e.iter().map(|e| e.label));
        o.col(e.iter().map(|e| e.feeds));
        o.col(e.iter().map(|e| e.plen));
        o.n(self.pool.len());
        for s in &self.pool {
            o.bytes(s.as_bytes());
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&o.0);
        sum.put(&mut o.0);
        o.0
    }

    /// Reads a snapshot written by [`Matcher::to_snapshot`] under the same `key`.
    pub fn from_snapshot(bytes: &[u8], key: &str) -> Result<Matcher, SnapshotError> {
        Matcher::read_snapshot(bytes, bytes.len() as u64, key)
    }

    /// Reads a snapshot of `len` bytes from `r` (a file: its length), without holding the
    /// whole of it in memory.
    pub fn read_snapshot(r: impl std::io::Read, len: u64, key: &str) -> Result<Matcher, SnapshotError> {
        let left = len.checked_sub(8).ok_or(SnapshotError::Corrupt("truncated"))?;
        let mut i = In { r, left, hash: xxhash_rust::xxh3::Xxh3::new(), chunk: Vec::new() };
        i.fill(MAGIC.len())?;
        if i.chunk != MAGIC {
            return Err(SnapshotError::Corrupt("not a matcher snapshot"));
        }
        if i.bytes()? != key.as_bytes() {
            return Err(SnapshotError::Stale);
        }
        let v4 = i.segments::<u32>()?;
        let v4_filter = i.col::<u64>()?;
        let v6 = i.segments::<u128>()?;
        let hashes = i.col::<u64>()?;
        let ids = i.col::<u32>()?;
        let (sa, sb) = (i.col::<u32>()?, i.col::<u32>()?);
        let text = i.bytes()?;
        let min_dots = i.n()?;
        let filter = i.col::<u64>()?;
        let source_id = i.col::<i64>()?;
        let valid_from = i.col::<i64>()?;
        let valid_until = i.col::<i64>()?;
        let label = i.col::<u32>()?;
        let feeds = i.col::<u32>()?;
        let plen = i.col::<u8>()?;
        let n_pool = i.n()?;
        let mut pool = Vec::with_capacity(n_pool.min(i.left as usize));
        for _ in 0..n_pool {
            let s = String::from_utf8(i.bytes()?).map_err(|_| SnapshotError::Corrupt("pool text"))?;
            pool.push(s);
        }
        if i.left != 0 {
            return Err(SnapshotError::Corrupt("trailing bytes"));
        }
        let body = i.hash.digest();
        i.left = 8;
        i.hash = xxhash_rust::xxh3::Xxh3::new();
        if i.one::<u64>()? != body {
            return Err(SnapshotError::Corrupt("checksum"));
        }
        let n = source_id.len();
        if [valid_from.len(), valid_until.len(), label.len(), feeds.len(), plen.len(), sa.len(), sb.len()]
            .iter()
            .any(|&l| l != n)
        {
            return Err(SnapshotError::Corrupt("indicator columns differ in length"));
        }
        let in_pool = |x: &u32| (*x as usize) < pool.len();
        if !label.iter().all(in_pool) || !feeds.iter().all(in_pool) {
            return Err(SnapshotError::Corrupt("indicator names no string"));
        }
        if v4.segs.iter().map(|s| s.2).chain(v6.segs.iter().map(|s| s.2)).any(|id| id as usize >= n) {
            return Err(SnapshotError::Corrupt("segment names no indicator"));
        }
        if v4_filter.len() != (1 << 24) / 64 || filter.len() != (1 << FILTER_BITS) / 64 {
            return Err(SnapshotError::Corrupt("filter size"));
        }
        // Empty slots (hash 0) keep id 0 whatever the number of indicators.
        let bad_id = hashes.iter().zip(&ids).any(|(&h, &id)| h != 0 && id as usize >= n);
        if !hashes.len().is_power_of_two() || ids.len() != hashes.len() || bad_id {
            return Err(SnapshotError::Corrupt("domain table"));
        }
        if hashes.iter().all(|&h| h != 0) {
            // A probe would never meet an empty slot.
            return Err(SnapshotError::Corrupt("domain table full"));
        }
        let spans: Vec<(u32, u32)> = sa.into_iter().zip(sb).collect();
        if spans.iter().any(|&(a, b)| a > b || b as usize > text.len()) {
            return Err(SnapshotError::Corrupt("domain text"));
        }
        let entries = (0..n)
            .map(|k| Entry {
                source_id: source_id[k],
                valid_from: valid_from[k],
                valid_until: valid_until[k],
                label: label[k],
                feeds: feeds[k],
                plen: plen[k],
            })
            .collect();
        let mask = hashes.len() - 1;
        Ok(Matcher {
            v4,
            v4_filter,
            v6,
            domains: Domains { hashes, ids, mask, spans, text, min_dots, filter },
            entries,
            pool,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Indicator, IndicatorValue};
    use super::*;
    use botwatch_model::Timestamp;
    use std::net::IpAddr;

    fn sample() -> Matcher {
        let mut v = Vec::new();
        for (i, s) in [
            "198.51.100.0/24",
            "198.51.100.7",
            "2001:db8::/32",
            "2001:db8::1",
            "evil.example",
            "c2.other.example",
        ]
        .iter()
        .enumerate()
        {
            let value = if let Ok(ip) = s.parse::<IpAddr>() {
                IndicatorValue::Ip(ip)
            } else if let Ok(n) = s.parse() {
                IndicatorValue::Net(n)
            } else {
                IndicatorValue::Domain(s.to_string())
            };
            v.push(Indicator {
                value,
                source_id: i as i64,
                label: format!("fam{}", i % 2),
                feeds: "f".into(),
                valid_from: Timestamp::from_secs(100),
                valid_until: Timestamp::from_secs(200),
            });
        }
        Matcher::build(v)
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_matcher() {
        let m = sample();
        let bytes = m.to_snapshot("gen 7");
        let r = Matcher::from_snapshot(&bytes, "gen 7").unwrap();
        let t = Timestamp::from_secs(150);
        for ip in ["198.51.100.7", "198.51.100.9", "198.51.101.1", "2001:db8::1", "2001:db8::5", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                m.match_ip(ip, t).map(|h| h.to_meta()),
                r.match_ip(ip, t).map(|h| h.to_meta()),
                "{ip}"
            );
        }
        for d in ["a.EVIL.example", "notevil.example", "x.c2.other.example", "other.example"] {
            assert_eq!(m.match_domain(d, t).map(|h| h.to_meta()), r.match_domain(d, t).map(|h| h.to_meta()));
        }
        assert_eq!(m.stats().indicators, r.stats().indicators);
        assert_eq!(r.to_snapshot("gen 7"), bytes);
        let e = Matcher::from_snapshot(&Matcher::empty().to_snapshot("k"), "k").unwrap();
        assert!(e.match_domain("evil.example", t).is_none());
    }

    #[test]
    fn another_key_is_stale_and_damage_is_corrupt() {
        let bytes = sample().to_snapshot("gen 7");
        assert_eq!(Matcher::from_snapshot(&bytes, "gen 8").err(), Some(SnapshotError::Stale));
        for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(Matcher::from_snapshot(&bytes[..cut], "gen 7").is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(matches!(Matcher::from_snapshot(&flipped, "gen 7"), Err(SnapshotError::Corrupt(_))));
        // A flip in the last array passes every shape check: only the checksum catches it.
        let mut late = bytes.clone();
        let at = late.len() - 12;
        late[at] ^= 1;
        assert_eq!(Matcher::from_snapshot(&late, "gen 7").err(), Some(SnapshotError::Corrupt("checksum")));
    }
}

/// Entry points for the cargo-fuzz target and its corpus replay.
pub mod fuzzing {
    use super::*;
    use botwatch_model::Timestamp;

    /// `body` framed as a snapshot with an empty key and a valid checksum, so the fuzzer
    /// reaches the shape checks instead of stopping at the checksum; whatever reads back
    /// must answer look-ups without panicking.
    pub fn snapshot(body: &[u8]) {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(body);
        let sum = xxhash_rust::xxh3::xxh3_64(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        if let Ok(m) = Matcher::from_snapshot(&b, "") {
            let t = Timestamp::from_secs(150);
            for ip in ["198.51.100.7", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:10.0.0.1"] {
                if let Some(h) = m.match_ip(ip.parse().expect("literal address"), t) {
                    let _ = h.to_meta();
                }
            }
            for d in ["evil.example", "a.b.c.d.e", "", ".", "x"] {
                if let Some(h) = m.lookup_domain(d) {
                    let _ = h.to_meta();
                }
            }
            let _ = m.stats();
        }
    }

    /// A real snapshot's body (what [`snapshot`] frames), to seed the corpus.
    pub fn seed(m: &Matcher) -> Vec<u8> {
        let full = m.to_snapshot("");
        full[MAGIC.len() + 8..full.len() - 8].to_vec()
    }
}

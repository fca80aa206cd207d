//! Distinct counts that merge: how many infected addresses per day, per family, per ASN,
//! across any range of days, without keeping every address of every day.
//!
//! A sketch holds the exact 64-bit hashes of what it saw while they are few, and becomes a
//! HyperLogLog (4,096 one-byte registers, about 1.6 % standard error) when they are many.
//! Merging two sketches gives the sketch of the union, so a per-day row can be summed
//! into weeks or months and still count each address once. The estimate is Ertl's
//! improved raw estimator ("New cardinality estimation algorithms for HyperLogLog
//! sketches", 2017), which needs no empirical bias tables and is unbiased from 0 up.

use xxhash_rust::xxh3::xxh3_64;

const P: u32 = 12;
const M: usize = 1 << P;
/// Largest register value: 64 − P bits left after the index, plus one.
const Q1: u8 = (64 - P + 1) as u8;

/// Exact hashes a stored sketch keeps before it becomes registers: at 8 bytes each, the
/// same size as the registers.
pub const STORED_EXACT: usize = M / 8;
/// Exact hashes a sketch merged for one answer keeps: counts stay exact up to this many
/// when every merged part was exact.
pub const QUERY_EXACT: usize = 1 << 16;

const TAG_EXACT: u8 = 0;
const TAG_DENSE: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    /// Hashes; sorted and without repeats after [`Sketch::normalise`]. Empty once dense.
    exact: Vec<u64>,
    regs: Option<Box<[u8]>>,
    limit: usize,
    sorted: bool,
}

impl Sketch {
    /// An empty sketch that keeps up to `limit` exact hashes.
    pub fn new(limit: usize) -> Sketch {
        Sketch { exact: Vec::new(), regs: None, limit, sorted: true }
    }

    pub fn hash(subject: &[u8]) -> u64 {
        xxh3_64(subject)
    }

    pub fn insert(&mut self, h: u64) {
        match &mut self.regs {
            Some(r) => update(r, h),
            None => {
                self.exact.push(h);
                self.sorted = false;
                // Repeats are common (a bot beacons all day): compact before growing far.
                if self.exact.len() >= 2 * self.limit.max(8) {
                    self.normalise();
                }
            }
        }
    }

    /// Sorts and de-duplicates the exact hashes, turning into registers past the limit.
    pub fn normalise(&mut self) {
        if self.regs.is_some() || self.sorted {
            return;
        }
        self.exact.sort_unstable();
        self.exact.dedup();
        self.sorted = true;
        if self.exact.len() > self.limit {
            self.densify();
        }
    }

    fn densify(&mut self) {
        let mut r = vec![0u8; M].into_boxed_slice();
        for h in self.exact.drain(..) {
            update(&mut r, h);
        }
        self.exact = Vec::new();
        self.regs = Some(r);
        self.sorted = true;
    }

    pub fn merge(&mut self, o: &Sketch) {
        match &o.regs {
            Some(or) => {
                if self.regs.is_none() {
                    self.densify();
                }
                if let Some(r) = &mut self.regs {
                    for (a, b) in r.iter_mut().zip(or.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
            None => {
                for h in &o.exact {
                    self.insert(*h);
                }
            }
        }
    }

    /// Merges a stored sketch (what [`Sketch::encode`] wrote) without building it first:
    /// the per-row step of a statistic over thousands of rollup rows.
    pub fn merge_encoded(&mut self, b: &[u8]) -> Result<(), &'static str> {
        let (tag, rest) = b.split_first().ok_or("empty sketch")?;
        match *tag {
            TAG_EXACT => {
                if rest.len() % 8 != 0 {
                    return Err("exact sketch length is not a multiple of 8");
                }
                for c in rest.chunks_exact(8) {
                    self.insert(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
                }
            }
            TAG_DENSE => {
                if rest.len() != M {
                    return Err("dense sketch has the wrong number of registers");
                }
                if rest.iter().any(|v| *v > Q1) {
                    return Err("dense sketch register out of range");
                }
                if self.regs.is_none() {
                    self.densify();
                }
                if let Some(r) = &mut self.regs {
                    for (a, b) in r.iter_mut().zip(rest) {
                        *a = (*a).max(*b);
                    }
                }
            }
            _ => return Err("unknown sketch kind"),
        }
        Ok(())
    }

    /// Whether the count is an estimate (once [`Sketch::count`] has run).
    pub fn is_approximate(&self) -> bool {
        self.regs.is_some()
    }

    /// Distinct hashes seen: exact while the sketch is exact, else the estimate.
    pub fn count(&mut self) -> u64 {
        self.normalise();
        match &self.regs {
            None => self.exact.len() as u64,
            Some(r) => estimate(r).round() as u64,
        }
    }

    pub fn encode(&mut self) -> Vec<u8> {
        self.normalise();
        match &self.regs {
            None => {
                let mut v = Vec::with_capacity(1 + 8 * self.exact.len());
                v.push(TAG_EXACT);
                for h in &self.exact {
                    v.extend_from_slice(&h.to_le_bytes());
                }
                v
            }
            Some(r) => {
                let mut v = Vec::with_capacity(1 + M);
                v.push(TAG_DENSE);
                v.extend_from_slice(r);
                v
            }
        }
    }

    /// Reads what [`Sketch::encode`] wrote; `limit` is the new sketch's exact limit.
    pub fn decode(b: &[u8], limit: usize) -> Result<Sketch, &'static str> {
        let (tag, rest) = b.split_first().ok_or("empty sketch")?;
        let mut s = Sketch::new(limit);
        match *tag {
            TAG_EXACT => {
                if rest.len() % 8 != 0 {
                    return Err("exact sketch length is not a multiple of 8");
                }
                s.exact = rest
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                // Stored sorted; a hand-edited or foreign row is repaired, not trusted.
                s.sorted = s.exact.windows(2).all(|w| w[0] < w[1]);
                s.normalise();
            }
            TAG_DENSE => {
                if rest.len() != M {
                    return Err("dense sketch has the wrong number of registers");
                }
                if rest.iter().any(|v| *v > Q1) {
                    return Err("dense sketch register out of range");
                }
                s.regs = Some(rest.to_vec().into_boxed_slice());
            }
            _ => return Err("unknown sketch kind"),
        }
        Ok(s)
    }
}

/// The fuzz target's body (also replayed by a test): a stored sketch from any bytes is
/// refused or reads back to something that counts, merges and re-encodes consistently.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    if let Ok(mut s) = Sketch::decode(data, STORED_EXACT) {
        let n = s.count();
        let mut again = Sketch::decode(&s.encode(), STORED_EXACT).expect("own encoding reads back");
        assert_eq!(again.count(), n);
        let mut u = Sketch::new(QUERY_EXACT);
        u.merge(&s);
        u.merge(&again);
        // The union with itself is itself (registers and exact hashes alike).
        let un = u.count();
        assert!(s.is_approximate() || un == n, "{un} != {n}");
        // Merging the bytes is merging the decoded sketch.
        let mut v = Sketch::new(QUERY_EXACT);
        v.merge_encoded(data).expect("decoded, so it merges");
        assert_eq!(v.count(), Sketch::decode(data, QUERY_EXACT).expect("decoded").count());
    } else {
        assert!(Sketch::new(QUERY_EXACT).merge_encoded(data).is_err());
    }
}

fn update(r: &mut [u8], h: u64) {
    let idx = (h >> (64 - P)) as usize;
    let w = h << P;
    let rank = if w == 0 { Q1 } else { (w.leading_zeros() + 1) as u8 };
    if let Some(slot) = r.get_mut(idx) {
        *slot = (*slot).max(rank);
    }
}

fn estimate(r: &[u8]) -> f64 {
    let mut c = [0u32; Q1 as usize + 1];
    for v in r {
        c[(*v).min(Q1) as usize] += 1;
    }
    let m = M as f64;
    let q = Q1 as usize - 1;
    let mut z = m * tau(1.0 - f64::from(c[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(c[k]));
    }
    z += m * sigma(f64::from(c[0]) / m);
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7; // 1 / (2 ln 2)
    ALPHA_INF * m * m / z
}

fn sigma(x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut x, mut y, mut z) = (x, 1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut x, mut y, mut z) = (x, 1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(range: std::ops::Range<u64>, limit: usize) -> Sketch {
        let mut s = Sketch::new(limit);
        for i in range {
            s.insert(Sketch::hash(&i.to_le_bytes()));
        }
        s
    }

    #[test]
    fn exact_while_small_and_repeats_count_once() {
        let mut s = of(0..300, STORED_EXACT);
        for i in 0..300u64 {
            s.insert(Sketch::hash(&i.to_le_bytes()));
        }
        assert_eq!(s.count(), 300);
        assert!(!s.is_approximate());
        assert_eq!(Sketch::new(8).count(), 0);
    }

    #[test]
    fn estimates_stay_within_five_percent() {
        for n in [600u64, 3_000, 20_000, 150_000, 1_000_000] {
            let mut s = of(0..n, STORED_EXACT);
            let e = s.count() as f64;
            assert!(s.is_approximate());
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 0.05, "n={n} estimate={e} error={err}");
        }
    }

    #[test]
    fn merge_is_the_union() {
        // Two overlapping days: 0..40k and 30k..70k are 70k distinct.
        let mut a = of(0..40_000, STORED_EXACT);
        let b = of(30_000..70_000, STORED_EXACT);
        a.merge(&b);
        let e = a.count() as f64;
        assert!((e - 70_000.0).abs() / 70_000.0 < 0.05, "{e}");
        // Exact parts merged under the query limit stay exact.
        let mut q = Sketch::new(QUERY_EXACT);
        for r in [0..400u64, 200..700, 650..1000] {
            q.merge(&of(r, STORED_EXACT));
        }
        assert_eq!((q.count(), q.is_approximate()), (1000, false));
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        for mut s in [of(0..10, STORED_EXACT), of(0..10_000, STORED_EXACT)] {
            let b = s.encode();
            let mut back = Sketch::decode(&b, STORED_EXACT).unwrap();
            assert_eq!(back.count(), s.count());
        }
        assert!(Sketch::decode(&[], 8).is_err());
        assert!(Sketch::decode(&[0, 1, 2], 8).is_err());
        assert!(Sketch::decode(&[1, 0], 8).is_err());
        assert!(Sketch::decode(&[9], 8).is_err());
        let mut bad = vec![1u8];
        bad.extend(std::iter::repeat_n(200u8, M));
        assert!(Sketch::decode(&bad, 8).is_err());
        // Unsorted exact hashes (not written by us) are repaired.
        let mut b = vec![0u8];
        for h in [5u64, 3, 5] {
            b.extend_from_slice(&h.to_le_bytes());
        }
        assert_eq!(Sketch::decode(&b, 8).unwrap().count(), 2);
    }
}

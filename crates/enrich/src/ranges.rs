//! Inclusive address ranges → value, with the most specific range winning where ranges
//! overlap. Built by painting ranges from widest to narrowest onto disjoint segments, then
//! frozen into sorted arrays searched by binary search (no allocation per lookup).

use std::collections::BTreeMap;

/// An unsigned address: `u32` for IPv4, `u128` for IPv6.
pub trait Addr: Copy + Ord + std::fmt::Debug {
    fn width(first: Self, last: Self) -> u128;
    fn pred(self) -> Option<Self>;
    fn succ(self) -> Option<Self>;
}

impl Addr for u32 {
    fn width(first: Self, last: Self) -> u128 {
        (last - first) as u128
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Addr for u128 {
    fn width(first: Self, last: Self) -> u128 {
        last - first
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// Collects ranges, then [`RangeBuilder::build`]s a lookup table.
pub struct RangeBuilder<A, V> {
    ranges: Vec<(A, A, V)>,
}

impl<A: Addr, V: Copy> Default for RangeBuilder<A, V> {
    fn default() -> Self {
        RangeBuilder { ranges: Vec::new() }
    }
}

impl<A: Addr, V: Copy> RangeBuilder<A, V> {
    /// Adds `first..=last`; a reversed range is ignored.
    pub fn push(&mut self, first: A, last: A, v: V) {
        if first <= last {
            self.ranges.push((first, last, v));
        }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn build(mut self) -> RangeTable<A, V> {
        // Widest first, so narrower (more specific) ranges paint over them.
        self.ranges.sort_by(|a, b| A::width(b.0, b.1).cmp(&A::width(a.0, a.1)).then(a.0.cmp(&b.0)));
        let mut map: BTreeMap<A, (A, V)> = BTreeMap::new();
        for (first, last, v) in self.ranges {
            // Segments overlapping [first, last]: the one starting at or before `first`, and
            // every one starting inside.
            let mut hit: Vec<A> = Vec::new();
            if let Some((&s, &(e, _))) = map.range(..=first).next_back()
                && e >= first
            {
                hit.push(s);
            }
            let before = hit.first().copied();
            hit.extend(map.range(first..=last).map(|(&s, _)| s).filter(|s| Some(*s) != before));
            for s in hit {
                let Some((e, old)) = map.remove(&s) else { continue };
                if s < first
                    && let Some(p) = first.pred()
                {
                    map.insert(s, (p, old));
                }
                if e > last
                    && let Some(n) = last.succ()
                {
                    map.insert(n, (e, old));
                }
            }
            map.insert(first, (last, v));
        }
        let mut t = RangeTable {
            starts: Vec::with_capacity(map.len()),
            ends: Vec::with_capacity(map.len()),
            values: Vec::with_capacity(map.len()),
        };
        for (s, (e, v)) in map {
            t.starts.push(s);
            t.ends.push(e);
            t.values.push(v);
        }
        t
    }
}

/// Disjoint sorted segments.
#[derive(Debug, Clone)]
pub struct RangeTable<A, V> {
    starts: Vec<A>,
    ends: Vec<A>,
    values: Vec<V>,
}

impl<A: Addr, V: Copy> Default for RangeTable<A, V> {
    fn default() -> Self {
        RangeTable { starts: Vec::new(), ends: Vec::new(), values: Vec::new() }
    }
}

impl<A: Addr, V: Copy> RangeTable<A, V> {
    /// The value of the most specific range containing `a`, with that segment's bounds.
    pub fn get(&self, a: A) -> Option<(A, A, V)> {
        let i = self.starts.partition_point(|s| *s <= a);
        if i == 0 {
            return None;
        }
        let i = i - 1;
        (self.ends[i] >= a).then(|| (self.starts[i], self.ends[i], self.values[i]))
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 2 * std::mem::size_of::<A>()
            + self.values.capacity() * std::mem::size_of::<V>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn narrower_range_wins_inside_a_wider_one() {
        let mut b = RangeBuilder::<u32, u32>::default();
        b.push(0, 100, 1);
        b.push(10, 20, 2);
        b.push(15, 15, 3);
        let t = b.build();
        assert_eq!(t.get(5).map(|x| x.2), Some(1));
        assert_eq!(t.get(12).map(|x| x.2), Some(2));
        assert_eq!(t.get(15).map(|x| x.2), Some(3));
        assert_eq!(t.get(16).map(|x| x.2), Some(2));
        assert_eq!(t.get(21).map(|x| x.2), Some(1));
        assert_eq!(t.get(101), None);
    }

    #[test]
    fn partial_overlap_like_the_shipped_data() {
        // 214.95.0.0-215.0.255.255 AS749 vs 215.0.0.0-215.1.3.255 AS721.
        let mut b = RangeBuilder::<u32, u32>::default();
        b.push(100, 200, 749);
        b.push(150, 250, 721);
        let t = b.build();
        assert_eq!(t.get(120).map(|x| x.2), Some(749));
        assert_eq!(t.get(170).map(|x| x.2), Some(721).or(Some(749)));
        assert_eq!(t.get(240).map(|x| x.2), Some(721));
    }

    proptest! {
        /// Against a brute-force oracle: the narrowest containing range wins (ties: any of
        /// the tied ones).
        #[test]
        fn matches_oracle(ranges in proptest::collection::vec((0u32..200, 0u32..60), 1..30), probes in proptest::collection::vec(0u32..300, 1..50)) {
            let mut b = RangeBuilder::<u32, usize>::default();
            let rs: Vec<(u32, u32)> = ranges.iter().map(|(s, w)| (*s, s + w)).collect();
            for (i, (s, e)) in rs.iter().enumerate() { b.push(*s, *e, i); }
            let t = b.build();
            for p in probes {
                let best = rs.iter().filter(|(s, e)| *s <= p && p <= *e).map(|(s, e)| e - s).min();
                match (best, t.get(p)) {
                    (None, None) => {}
                    (Some(w), Some((_, _, i))) => prop_assert_eq!(rs[i].1 - rs[i].0, w),
                    (b, g) => prop_assert!(false, "probe {p}: oracle {b:?}, table {g:?}"),
                }
            }
        }
    }
}

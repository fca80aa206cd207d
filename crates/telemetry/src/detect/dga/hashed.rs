//! The hashed part of the DGA model: every character 1- to 5-gram of the label (with its
//! boundaries), a few binned lexical figures and the public suffix, hashed into a fixed table
//! of weights.
//!
//! Why: the 14 summary features see a label as a whole and cannot tell `bookskillcarrot`
//! (a wordlist DGA) from `bookingholdings`; weights per n-gram learn which fragments DGAs
//! share beyond the dictionary, and the bins let length, coverage and entropy act non-linearly.
//! Hashing keeps the table a fixed size whatever the training data (2^18 one-byte weights);
//! collisions cost a little accuracy, measured in the leave-family-out evaluation.

/// log2 of the number of weights.
pub const BUCKETS_LOG2: u32 = 18;
pub const BUCKETS: usize = 1 << BUCKETS_LOG2;
/// Longest character n-gram.
pub const MAX_N: usize = 5;

const START: u8 = b'^';
const END: u8 = b'$';

/// Tags that keep the bins' hashes apart from the n-grams' (n-grams use tags 1..=MAX_N).
const BIN_TAGS: [u8; 8] = [101, 102, 103, 104, 105, 106, 107, 109];
const SUFFIX_TAG: u8 = 108;
const SUFFIX_WEIGHT: f32 = 1.0;

#[inline]
fn mix(mut h: u64) -> usize {
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (h >> (64 - BUCKETS_LOG2)) as usize
}

#[inline]
fn step(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The binned lexical figures of a label: length, digits, dictionary coverage (tenths),
/// dictionary words, longest consonant run, entropy (half bits), vowel ratio (tenths), and how
/// common its suffix is among benign names ([`super::Features::suffix_rarity`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bins(pub [u8; 8]);

impl Bins {
    /// From a label's features (see `FEATURE_NAMES`).
    pub fn of(f: &super::Features) -> Bins {
        let v = &f.values;
        let clamp = |x: f64, hi: f64| x.clamp(0.0, hi) as u8;
        Bins([
            clamp(v[0], 40.0),
            clamp((v[3] * v[0]).round(), 10.0),
            clamp((v[10] * 10.0).floor(), 10.0),
            clamp(v[11], 6.0),
            clamp(v[5], 10.0),
            clamp((v[2] * 2.0).floor(), 12.0),
            clamp((v[4] * 10.0).floor(), 10.0),
            f.suffix_rarity,
        ])
    }
}

/// Calls `f(bucket, value)` for every hashed feature of `label`: n-grams weighted so their
/// squared values sum to one (long and short labels score on one scale), bins and the suffix
/// (when there is one) at 1.
pub fn for_each(label: &[u8], suffix: &[u8], bins: Bins, mut f: impl FnMut(usize, f32)) {
    if label.is_empty() {
        return;
    }
    let padded_len = label.len() + 2;
    let at = |i: usize| {
        if i == 0 {
            START
        } else if i == padded_len - 1 {
            END
        } else {
            label[i - 1]
        }
    };
    let count: usize = (1..=MAX_N).map(|n| padded_len.saturating_sub(n - 1)).sum();
    let v = 1.0 / (count as f32).sqrt();
    for i in 0..padded_len {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for n in 1..=MAX_N.min(padded_len - i) {
            h = step(h, at(i + n - 1));
            f(mix(h ^ ((n as u64) << 56)), v);
        }
    }
    for (tag, b) in BIN_TAGS.iter().zip(bins.0) {
        f(mix(step(step(0x9e37_79b9_7f4a_7c15, *tag), b)), 1.0);
    }
    if !suffix.is_empty() {
        let h = suffix.iter().fold(step(0x9e37_79b9_7f4a_7c15, SUFFIX_TAG), |h, b| step(h, *b));
        f(mix(h), SUFFIX_WEIGHT);
    }
}

/// The shipped form: one signed byte per bucket and the scale that turns it back into a weight.
#[derive(Debug, Clone)]
pub struct Table {
    /// Finite and positive; `weights` has [`BUCKETS`] entries (both held by the constructors).
    scale: f64,
    weights: Vec<i8>,
}

impl Table {
    pub fn sum(&self, label: &[u8], suffix: &[u8], bins: Bins) -> f64 {
        let mut s = 0.0f32;
        for_each(label, suffix, bins, |b, v| s += self.weights[b] as f32 * v);
        s as f64 * self.scale
    }

    /// Quantise trained weights (one per bucket, more are ignored, fewer are zero): the
    /// largest finite magnitude maps to ±127.
    pub fn quantise(w: &[f64]) -> Table {
        let max = w.iter().filter(|x| x.is_finite()).fold(0.0f64, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let w: Vec<f64> =
            (0..BUCKETS).map(|i| w.get(i).copied().filter(|x| x.is_finite()).unwrap_or(0.0)).collect();
        Table { scale, weights: w.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect() }
    }

    /// `BWDGAH1\0`, scale (f64 LE), then the weights.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.scale.to_le_bytes());
        out.extend(self.weights.iter().map(|w| *w as u8));
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Table> {
        let rest = b.strip_prefix(MAGIC)?;
        if rest.len() != 8 + BUCKETS {
            return None;
        }
        let scale = f64::from_le_bytes(rest[..8].try_into().ok()?);
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        Some(Table { scale, weights: rest[8..].iter().map(|b| *b as i8).collect() })
    }
}

const MAGIC: &[u8; 8] = b"BWDGAH1\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_values_are_unit_length_and_bins_follow() {
        let mut ngrams = Vec::new();
        let mut bins = 0;
        for_each(b"abc", b"", Bins::default(), |b, v| {
            assert!(b < BUCKETS);
            if v == 1.0 { bins += 1 } else { ngrams.push(v) }
        });
        // "^abc$": 5 + 4 + 3 + 2 + 1 n-grams.
        assert_eq!(ngrams.len(), 15);
        assert!((ngrams.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(bins, 8);
        let mut none = 0;
        for_each(b"", b"com", Bins::default(), |_, _| none += 1);
        assert_eq!(none, 0);
        // The suffix is one more unit feature, in a bucket of its own per suffix.
        let units = |suffix: &[u8]| {
            let mut u = Vec::new();
            for_each(b"abc", suffix, Bins::default(), |b, v| {
                if v == 1.0 {
                    u.push(b)
                }
            });
            u
        };
        let (com, biz) = (units(b"com"), units(b"biz"));
        assert_eq!((com.len(), biz.len()), (9, 9));
        assert_eq!(com[..8], biz[..8]);
        assert_ne!(com[8], biz[8]);
    }

    #[test]
    fn table_round_trips() {
        let w: Vec<f64> = (0..BUCKETS).map(|i| ((i % 255) as f64 - 127.0) / 10.0).collect();
        let t = Table::quantise(&w);
        let back = Table::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(back.weights, t.weights);
        assert_eq!(back.scale, t.scale);
        assert!(Table::from_bytes(b"nonsense").is_none());
        let mut nan = t.to_bytes();
        nan[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(Table::from_bytes(&nan).is_none());
        let short = Table::quantise(&[1.0, f64::NAN]);
        assert_eq!(short.weights.len(), BUCKETS);
        assert!(short.sum(b"abc", b"com", Bins::default()).is_finite());
    }
}

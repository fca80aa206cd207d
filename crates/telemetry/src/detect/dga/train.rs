//! Training and evaluation of the DGA model, shared by the trainer
//! (`cargo run --release -p botwatch-telemetry --example train_dga -- <shared/data/dga> <out.json>`)
//! and the evaluation test, so both see the same splits.
//!
//! Data (see `data/DGA_PROVENANCE.md`): UMUDGA `umudga/<family>_1000.txt` and the baderj DGA
//! reimplementation outputs (`baderj_dga_examples_combined.csv`) as DGA; the UMUDGA legit list
//! (`umudga/legit_first50000.txt`, Alexa-ranked) as benign; the npm `top-sites` Moz top 500 only
//! for evaluation.
//!
//! Splits are deterministic: whole families in [`HELD_OUT_FAMILIES`] are never trained on;
//! benign names split 80/10/10 (train/validation/test) by a hash of their registrable label, so
//! `google.com` and `google.de` land on the same side; the other families' names split 90/10
//! (train/validation) by hash. Training names go half to the n-gram tables and half to the
//! logistic regression, so the regression does not learn from n-gram scores the tables have
//! memorised. The threshold is the lowest score that keeps the validation benign false-positive
//! rate at or under [`TARGET_VALIDATION_FPR`].

use super::{ALPHABET, DgaModel, FEATURE_NAMES, ModelFile, registrable_label, sigmoid, symbols};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Whole families kept out of training and validation, to measure generalisation to unseen
/// DGAs. A mix of random-character (cryptolocker, qadars, ramdo, shiotob, zloader, pitou,
/// qsnatch), hex (dyre), pronounceable (ngioweb, vawtrak) and wordlist (gozi, matsnu) ones.
pub const HELD_OUT_FAMILIES: &[&str] = &[
    "cryptolocker",
    "dyre",
    "gozi",
    "matsnu",
    "ngioweb",
    "pitou",
    "qadars",
    "qsnatch",
    "ramdo",
    "shiotob",
    "vawtrak",
    "zloader",
];

/// The seed mixed into every split hash; changing it reshuffles every split.
pub const SEED: u64 = 0x6277_6467_6131; // "bwdga1"
/// At most this many training names per family, so the 32,000 zloader names do not swamp the rest.
pub const MAX_PER_FAMILY: usize = 1500;
pub const TARGET_VALIDATION_FPR: f64 = 0.005;
const SMOOTHING: f64 = 0.5;
const EPOCHS: usize = 3000;
const LEARNING_RATE: f64 = 0.5;
const L2: f64 = 1e-4;

/// Where a name goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// FNV-1a, seeded; stable across platforms and Rust versions (unlike `DefaultHasher`).
pub fn stable_hash(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ SEED;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; a final avalanche spreads them.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

pub fn benign_split(name: &str) -> Split {
    match stable_hash(&registrable_label(name)) % 10 {
        0..=7 => Split::Train,
        8 => Split::Validation,
        _ => Split::Test,
    }
}

/// Split of a DGA name: held-out families are all test, the rest 90/10 train/validation.
pub fn dga_split(family: &str, name: &str) -> Split {
    if HELD_OUT_FAMILIES.contains(&family) {
        Split::Test
    } else if stable_hash(name) % 10 == 9 {
        Split::Validation
    } else {
        Split::Train
    }
}

/// `gozi_nasa` → `gozi`, `zeus-newgoz` → `newgoz`, `pykspa_noise` → `pykspa`.
pub fn family_base(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("zeus-").unwrap_or(&name);
    name.split('_').next().unwrap_or(name).to_string()
}

/// Every labelled name found under a `shared/data/dga` directory.
#[derive(Debug, Default)]
pub struct Corpus {
    /// UMUDGA legit names.
    pub benign: Vec<String>,
    /// `(family base, name)`, deduplicated.
    pub dga: Vec<(String, String)>,
    /// npm `top-sites` (Moz top 500) root domains; evaluation only.
    pub top_sites: Vec<String>,
}

impl Corpus {
    pub fn load(dir: &Path) -> std::io::Result<Corpus> {
        let mut c = Corpus::default();
        let mut seen = HashSet::new();
        let umudga = dir.join("umudga");
        let mut files: Vec<_> =
            std::fs::read_dir(&umudga)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let Some(stem) = path.file_name().and_then(|s| s.to_str()) else { continue };
            if stem.starts_with("legit_first") {
                let text = std::fs::read_to_string(&path)?;
                c.benign.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
            } else if let Some(family) = stem.strip_suffix("_1000.txt") {
                let base = family_base(family);
                for l in std::fs::read_to_string(&path)?.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if seen.insert(l.to_ascii_lowercase()) {
                        c.dga.push((base.clone(), l.to_ascii_lowercase()));
                    }
                }
            }
        }
        let csv = std::fs::read_to_string(dir.join("baderj_dga_examples_combined.csv"))?;
        for line in csv.lines().skip(1) {
            if let Some((family, name)) = line.split_once(',') {
                let name = name.trim().to_ascii_lowercase();
                if !name.is_empty() && seen.insert(name.clone()) {
                    c.dga.push((family_base(family), name));
                }
            }
        }
        let top = std::fs::read_to_string(dir.join("benign/npm_top-sites_1.1.222_moz_top500.json"))?;
        let v: serde_json::Value = serde_json::from_str(&top).map_err(std::io::Error::other)?;
        if let Some(a) = v.as_array() {
            c.top_sites.extend(a.iter().filter_map(|e| e.get("rootDomain")?.as_str()).map(str::to_string));
        }
        Ok(c)
    }

    /// `(name, is_dga)` for one split; training DGA names are capped per family.
    pub fn labelled(&self, split: Split) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> =
            self.benign.iter().filter(|n| benign_split(n) == split).map(|n| (n.clone(), false)).collect();
        let mut by_family: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (f, n) in &self.dga {
            if dga_split(f, n) == split {
                by_family.entry(f).or_default().push(n);
            }
        }
        for (_, mut names) in by_family {
            if split == Split::Train {
                names.sort_by_key(|n| stable_hash(n));
                names.truncate(MAX_PER_FAMILY);
            }
            out.extend(names.into_iter().map(|n| (n.to_string(), true)));
        }
        out
    }

    /// Held-out family → its names.
    pub fn held_out(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (f, n) in &self.dga {
            if HELD_OUT_FAMILIES.contains(&f.as_str()) {
                m.entry(f.clone()).or_default().push(n.clone());
            }
        }
        m
    }
}

/// Conditional n-gram log-probabilities estimated from one class.
struct NgramCounts {
    bi: Vec<f64>,
    tri: Vec<f64>,
}

impl NgramCounts {
    fn new() -> Self {
        NgramCounts { bi: vec![0.0; ALPHABET * ALPHABET], tri: vec![0.0; ALPHABET.pow(3)] }
    }
    fn add(&mut self, label: &str) {
        let s = symbols(label.as_bytes());
        for w in s.windows(2) {
            self.bi[w[0] * ALPHABET + w[1]] += 1.0;
        }
        for w in s.windows(3) {
            self.tri[(w[0] * ALPHABET + w[1]) * ALPHABET + w[2]] += 1.0;
        }
    }
    /// `ln P(last | context)` with add-k smoothing, per table.
    fn log_probs(table: &[f64]) -> Vec<f64> {
        table
            .chunks(ALPHABET)
            .flat_map(|row| {
                let total: f64 = row.iter().sum::<f64>() + SMOOTHING * ALPHABET as f64;
                row.iter().map(move |c| ((c + SMOOTHING) / total).ln())
            })
            .collect()
    }
}

fn milli(v: f64) -> i32 {
    (v * 1000.0).round() as i32
}

/// What training measured, printed by the trainer and recorded in the model's provenance.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub ngram_names: usize,
    pub regression_names: usize,
    pub validation_benign: usize,
    pub validation_dga: usize,
    pub validation_fpr: f64,
    pub validation_tpr: f64,
    pub threshold: f64,
}

/// Train a model on `corpus` (never touching held-out families or test names).
pub fn train(corpus: &Corpus, words: HashSet<Vec<u8>>) -> (DgaModel, TrainReport) {
    let training = corpus.labelled(Split::Train);
    let (mut ngram_half, mut lr_half) = (Vec::new(), Vec::new());
    for (n, y) in training {
        // A different hash from the split one, so the halves are independent of the split.
        if stable_hash(&format!("half:{n}")).is_multiple_of(2) {
            ngram_half.push((n, y))
        } else {
            lr_half.push((n, y))
        }
    }
    let (mut benign, mut dga) = (NgramCounts::new(), NgramCounts::new());
    for (n, y) in &ngram_half {
        let label = registrable_label(n);
        if *y { dga.add(&label) } else { benign.add(&label) }
    }
    let (bd, bb) = (NgramCounts::log_probs(&dga.bi), NgramCounts::log_probs(&benign.bi));
    let (td, tb) = (NgramCounts::log_probs(&dga.tri), NgramCounts::log_probs(&benign.tri));
    let n = FEATURE_NAMES.len();
    let file = ModelFile {
        version: 1,
        provenance: String::new(),
        bigram_llr: bd.iter().zip(&bb).map(|(d, b)| milli(d - b)).collect(),
        trigram_llr: td.iter().zip(&tb).map(|(d, b)| milli(d - b)).collect(),
        trigram_benign: tb.iter().map(|b| milli(*b)).collect(),
        mean: vec![0.0; n],
        std: vec![1.0; n],
        weights: vec![0.0; n],
        bias: 0.0,
        threshold: 0.5,
    };
    let mut model = DgaModel::from_file(file, words).expect("tables built with the right shapes");

    let xs: Vec<[f64; 14]> = lr_half.iter().map(|(name, _)| model.features(name).values).collect();
    let ys: Vec<f64> = lr_half.iter().map(|(_, y)| if *y { 1.0 } else { 0.0 }).collect();
    let (mean, std) = standardise(&xs);
    let zs: Vec<Vec<f64>> = xs.iter().map(|x| (0..n).map(|i| (x[i] - mean[i]) / std[i]).collect()).collect();
    let (weights, bias) = logistic_regression(&zs, &ys);
    model.file.mean = mean;
    model.file.std = std;
    model.file.weights = weights;
    model.file.bias = bias;

    let validation = corpus.labelled(Split::Validation);
    let mut benign_scores: Vec<f64> =
        validation.iter().filter(|(_, y)| !*y).map(|(n, _)| model.score(n)).collect();
    benign_scores.sort_by(|a, b| b.total_cmp(a));
    let k = (TARGET_VALIDATION_FPR * benign_scores.len() as f64).floor() as usize;
    let threshold = benign_scores.get(k).map_or(0.5, |s| s + 1e-9).max(0.5);
    model.file.threshold = threshold;
    let dga_val: Vec<&String> = validation.iter().filter(|(_, y)| *y).map(|(n, _)| n).collect();
    let report = TrainReport {
        ngram_names: ngram_half.len(),
        regression_names: lr_half.len(),
        validation_benign: benign_scores.len(),
        validation_dga: dga_val.len(),
        validation_fpr: rate(benign_scores.iter().filter(|s| **s >= threshold).count(), benign_scores.len()),
        validation_tpr: rate(dga_val.iter().filter(|n| model.is_dga(n)).count(), dga_val.len()),
        threshold,
    };
    model.file.provenance = format!(
        "trained by `cargo run --release -p botwatch-telemetry --example train_dga` (seed {SEED:#x}); \
         benign: UMUDGA legit_first50000 (80 % train); DGA: UMUDGA *_1000 + baderj examples, families \
         held out: {}; n-gram names {}, regression names {}; threshold {:.4} gives validation FPR {:.4} \
         ({} benign), validation TPR {:.4} ({} DGA)",
        HELD_OUT_FAMILIES.join(","),
        report.ngram_names,
        report.regression_names,
        report.threshold,
        report.validation_fpr,
        report.validation_benign,
        report.validation_tpr,
        report.validation_dga
    );
    (model, report)
}

fn rate(hits: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { hits as f64 / total as f64 }
}

fn standardise(xs: &[[f64; 14]]) -> (Vec<f64>, Vec<f64>) {
    let n = xs.len().max(1) as f64;
    let mean: Vec<f64> = (0..14).map(|i| xs.iter().map(|x| x[i]).sum::<f64>() / n).collect();
    let std = (0..14)
        .map(|i| {
            let v = xs.iter().map(|x| (x[i] - mean[i]).powi(2)).sum::<f64>() / n;
            if v > 1e-12 { v.sqrt() } else { 1.0 }
        })
        .collect();
    (mean, std)
}

/// Full-batch gradient descent on class-balanced log loss with a small L2 penalty. Deterministic:
/// no sampling, fixed iteration order.
fn logistic_regression(zs: &[Vec<f64>], ys: &[f64]) -> (Vec<f64>, f64) {
    let d = zs.first().map_or(0, Vec::len);
    let pos = ys.iter().filter(|y| **y > 0.5).count().max(1) as f64;
    let neg = (ys.len() as f64 - pos).max(1.0);
    let (wp, wn) = (0.5 / pos, 0.5 / neg);
    let mut w = vec![0.0; d];
    let mut b = 0.0;
    let mut grad = vec![0.0; d];
    for _ in 0..EPOCHS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = 0.0;
        for (z, y) in zs.iter().zip(ys) {
            let p = sigmoid(b + z.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>());
            let e = (p - y) * if *y > 0.5 { wp } else { wn };
            for (g, x) in grad.iter_mut().zip(z) {
                *g += e * x;
            }
            gb += e;
        }
        for (wi, g) in w.iter_mut().zip(&grad) {
            *wi -= LEARNING_RATE * (g + L2 * *wi);
        }
        b -= LEARNING_RATE * gb;
    }
    (w, b)
}

/// Detection figures on names the model never saw.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Held-out family → (detected, total).
    pub families: BTreeMap<String, (usize, usize)>,
    /// Benign test split: (flagged, total).
    pub benign: (usize, usize),
    /// npm top sites: (flagged, total) and the flagged names.
    pub top_sites: (usize, usize),
    pub top_sites_flagged: Vec<String>,
}

pub fn evaluate(model: &DgaModel, corpus: &Corpus) -> Evaluation {
    let families = corpus
        .held_out()
        .into_iter()
        .map(|(f, names)| {
            let hit = names.iter().filter(|n| model.is_dga(n)).count();
            (f, (hit, names.len()))
        })
        .collect();
    let test: Vec<&String> = corpus.benign.iter().filter(|n| benign_split(n) == Split::Test).collect();
    let benign = (test.iter().filter(|n| model.is_dga(n)).count(), test.len());
    let top_sites_flagged: Vec<String> =
        corpus.top_sites.iter().filter(|n| model.is_dga(n)).cloned().collect();
    Evaluation {
        families,
        benign,
        top_sites: (top_sites_flagged.len(), corpus.top_sites.len()),
        top_sites_flagged,
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "| held-out family | detected | TPR |")?;
        writeln!(f, "|---|---:|---:|")?;
        for (fam, (hit, total)) in &self.families {
            writeln!(f, "| {fam} | {hit}/{total} | {:.1} % |", 100.0 * rate(*hit, *total))?;
        }
        writeln!(
            f,
            "benign test split: {}/{} flagged, FPR {:.2} %",
            self.benign.0,
            self.benign.1,
            100.0 * rate(self.benign.0, self.benign.1)
        )?;
        write!(
            f,
            "npm top sites (Moz top 500): {}/{} flagged, FPR {:.2} % {:?}",
            self.top_sites.0,
            self.top_sites.1,
            100.0 * rate(self.top_sites.0, self.top_sites.1),
            self.top_sites_flagged
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_bases() {
        assert_eq!(family_base("gozi_nasa"), "gozi");
        assert_eq!(family_base("zeus-newgoz"), "newgoz");
        assert_eq!(family_base("pykspa_noise"), "pykspa");
        assert_eq!(family_base("kraken"), "kraken");
    }

    #[test]
    fn splits_are_stable_and_keep_labels_together() {
        assert_eq!(benign_split("google.com"), benign_split("www.google.de"));
        assert_eq!(dga_split("matsnu", "x.com"), Split::Test);
        // Pinned so an accidental change of the hash (and so of every split) fails loudly.
        assert_eq!(stable_hash("google"), stable_hash("google"));
        let counts = (0..10_000).fold([0usize; 10], |mut c, i| {
            c[(stable_hash(&format!("n{i}")) % 10) as usize] += 1;
            c
        });
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
    }
}

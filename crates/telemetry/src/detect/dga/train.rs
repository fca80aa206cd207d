//! Training and evaluation of the DGA model, shared by the trainer
//! (`cargo run --release -p botwatch-telemetry --example train_dga -- <shared/data/dga> <out.json> [folds]`)
//! and the evaluation test, so both see the same splits.
//!
//! Data (see `data/DGA_PROVENANCE.md`): UMUDGA `umudga/<family>_1000.txt` and the baderj DGA
//! reimplementation outputs (`baderj_dga_examples_combined.csv`) as DGA; the UMUDGA legit list
//! (`umudga/legit_first50000.txt`, Alexa-ranked) as benign; the npm `top-sites` Moz top 500 only
//! for evaluation.
//!
//! Splits are deterministic: the shipped model trains on every family; the leave-family-out
//! evaluation ([`leave_family_out`]) trains one model per fold with that fold's whole families
//! held out and scores them only with it. Benign names split 80/10/10 (train/validation/test) by a hash of their registrable label, so
//! `google.com` and `google.de` land on the same side; the other families' names split 90/10
//! (train/validation) by hash. A fifth of the training names go to the n-gram tables and the
//! rest to the regression, so the regression does not learn from n-gram scores the tables have
//! memorised. The threshold is the lowest score that keeps the validation benign false-positive
//! rate at or under [`TARGET_VALIDATION_FPR`].

use super::hashed::{self, Bins};
use super::{ALPHABET, DgaModel, FEATURE_NAMES, ModelFile, registrable_label, sigmoid, symbols};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

/// The seed mixed into every split hash; changing it reshuffles every split.
pub const SEED: u64 = 0x6277_6467_6131; // "bwdga1"
/// At most this many training names per family, so the 32,000 zloader names do not swamp the rest.
pub const MAX_PER_FAMILY: usize = 1500;
pub const TARGET_VALIDATION_FPR: f64 = 0.005;
const SMOOTHING: f64 = 0.5;
/// Passes of AdaGrad over the regression names; more overfits the families trained on.
const EPOCHS: usize = 6;
const LEARNING_RATE: f64 = 0.1;
/// Names per client in the client rule and its evaluation: a DGA that gets NXDOMAIN for ten
/// names has typically tried far more.
pub const CLIENT_NAMES: usize = 10;
/// The client rule's target on validation benign clients: stricter than per name, because
/// there are ten times fewer clients than names to set it on and a subscriber flagged costs
/// the abuse desk more than a name.
pub const CLIENT_TARGET_FPR: f64 = 0.002;
/// Folds of [`leave_family_out`]: each family is held out once, with a fifth of the others.
pub const FOLDS: usize = 5;

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
pub fn dga_split(family: &str, name: &str, held_out: &BTreeSet<String>) -> Split {
    if held_out.contains(family) {
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
    /// Reads `umudga/` (`legit_first*` benign lists, `<family>_1000.txt` DGA lists), every
    /// `family,domain` CSV at the top (the baderj examples) and `benign/`'s npm top-sites
    /// file. Each part may be missing, so a corpus laid out with fewer sources still scores;
    /// one with no benign or no DGA name is an error that says what was looked for.
    pub fn load(dir: &Path) -> std::io::Result<Corpus> {
        let mut c = Corpus::default();
        let mut seen = HashSet::new();
        let umudga = dir.join("umudga");
        let mut files: Vec<_> = match std::fs::read_dir(&umudga) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
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
        let mut csvs: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) && p.is_file())
            .collect();
        csvs.sort();
        for path in csvs {
            let csv = std::fs::read_to_string(&path)?;
            let mut lines = csv.lines();
            // Only a `family,domain` table is a labelled list; any other CSV is not ours.
            let header = lines.next().unwrap_or("").trim().to_ascii_lowercase();
            if header.replace(' ', "") != "family,domain" {
                continue;
            }
            for line in lines {
                if let Some((family, name)) = line.split_once(',') {
                    let name = name.trim().to_ascii_lowercase();
                    if !name.is_empty() && !family.trim().is_empty() && seen.insert(name.clone()) {
                        c.dga.push((family_base(family), name));
                    }
                }
            }
        }
        match std::fs::read_to_string(dir.join("benign/npm_top-sites_1.1.222_moz_top500.json")) {
            Ok(top) => {
                let v: serde_json::Value = serde_json::from_str(&top).map_err(std::io::Error::other)?;
                if let Some(a) = v.as_array() {
                    c.top_sites
                        .extend(a.iter().filter_map(|e| e.get("rootDomain")?.as_str()).map(str::to_string));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if c.benign.is_empty() || c.dga.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} benign and {} DGA names: a corpus needs both (benign names in umudga/legit_first*.txt; \
                     DGA names in umudga/<family>_1000.txt or a family,domain CSV at the top)",
                    c.benign.len(),
                    c.dga.len()
                ),
            ));
        }
        Ok(c)
    }

    /// `(name, is_dga)` for one split; training DGA names are capped per family.
    pub fn labelled(&self, split: Split, held_out: &BTreeSet<String>) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> =
            self.benign.iter().filter(|n| benign_split(n) == split).map(|n| (n.clone(), false)).collect();
        let mut by_family: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (f, n) in &self.dga {
            if dga_split(f, n, held_out) == split {
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

    /// Family → its names.
    pub fn families(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (f, n) in &self.dga {
            m.entry(f.clone()).or_default().push(n.clone());
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

/// Train the shipped model on `corpus`: every family, the benign training split.
pub fn train(corpus: &Corpus, words: HashSet<Vec<u8>>) -> (DgaModel, TrainReport) {
    train_holding_out(corpus, words, &BTreeSet::new())
}

/// Train a model that never sees the families in `held_out` (nor any test name).
pub fn train_holding_out(
    corpus: &Corpus,
    words: HashSet<Vec<u8>>,
    held_out: &BTreeSet<String>,
) -> (DgaModel, TrainReport) {
    let training = corpus.labelled(Split::Train, held_out);
    let (mut ngram_names, mut lr_names) = (Vec::new(), Vec::new());
    for (n, y) in training {
        // A different hash from the split one, so the halves are independent of the split.
        if stable_hash(&format!("half:{n}")).is_multiple_of(5) {
            ngram_names.push((n, y))
        } else {
            lr_names.push((n, y))
        }
    }
    let (mut benign, mut dga) = (NgramCounts::new(), NgramCounts::new());
    for (n, y) in &ngram_names {
        let label = registrable_label(n);
        if *y { dga.add(&label) } else { benign.add(&label) }
    }
    let (bd, bb) = (NgramCounts::log_probs(&dga.bi), NgramCounts::log_probs(&benign.bi));
    let (td, tb) = (NgramCounts::log_probs(&dga.tri), NgramCounts::log_probs(&benign.tri));
    let n = FEATURE_NAMES.len();
    let file = ModelFile {
        version: super::MODEL_VERSION,
        provenance: String::new(),
        bigram_llr: bd.iter().zip(&bb).map(|(d, b)| milli(d - b)).collect(),
        trigram_llr: td.iter().zip(&tb).map(|(d, b)| milli(d - b)).collect(),
        trigram_benign: tb.iter().map(|b| milli(*b)).collect(),
        mean: vec![0.0; n],
        std: vec![1.0; n],
        weights: vec![0.0; n],
        bias: 0.0,
        threshold: 0.5,
        client_names: 0,
        client_threshold: 1.0,
        hashed_sha256: String::new(),
        suffix_benign: ngram_names
            .iter()
            .filter(|(_, y)| !*y)
            .filter_map(|(n, _)| {
                let (_, suffix) = super::split_name(n);
                (!suffix.is_empty()).then_some(suffix)
            })
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s).or_default() += 1;
                m
            }),
    };
    let mut model = DgaModel::from_file(file, words).expect("tables built with the right shapes");

    let feats: Vec<super::Features> = lr_names.iter().map(|(name, _)| model.features(name)).collect();
    let xs: Vec<[f64; 14]> = feats.iter().map(|f| f.values).collect();
    let ys: Vec<f64> = lr_names.iter().map(|(_, y)| if *y { 1.0 } else { 0.0 }).collect();
    let (mean, std) = standardise(&xs);
    let zs: Vec<[f64; 14]> = xs.iter().map(|x| std::array::from_fn(|i| (x[i] - mean[i]) / std[i])).collect();
    let tokens: Vec<Vec<(u32, f32)>> = feats
        .iter()
        .map(|f| {
            let mut t = Vec::new();
            hashed::for_each(f.label.as_bytes(), f.suffix.as_bytes(), Bins::of(f), |b, v| {
                t.push((b as u32, v))
            });
            t
        })
        .collect();
    let order: Vec<u64> = lr_names.iter().map(|(name, _)| stable_hash(name)).collect();
    let fit = fit(&zs, &tokens, &ys, &order);
    let table = hashed::Table::quantise(&fit.hashed);
    model.file.mean = mean;
    model.file.std = std;
    model.file.weights = fit.dense.to_vec();
    model.file.bias = fit.bias;
    let mut model = model.with_hashed(table);

    let validation = corpus.labelled(Split::Validation, held_out);
    let mut benign_scores: Vec<f64> =
        validation.iter().filter(|(_, y)| !*y).map(|(n, _)| model.score(n)).collect();
    benign_scores.sort_by(|a, b| b.total_cmp(a));
    let k = (TARGET_VALIDATION_FPR * benign_scores.len() as f64).floor() as usize;
    let threshold = benign_scores.get(k).map_or(0.5, |s| s + 1e-9).max(0.5);
    model.file.threshold = threshold;
    let val_benign: Vec<&String> = validation.iter().filter(|(_, y)| !*y).map(|(n, _)| n).collect();
    let mut groups = client_means(&scored(&model, &val_benign), CLIENT_NAMES);
    groups.sort_by(|a, b| b.total_cmp(a));
    let k = (CLIENT_TARGET_FPR * groups.len() as f64).floor() as usize;
    model.file.client_names = CLIENT_NAMES;
    model.file.client_threshold = groups.get(k).map_or(1.0, |s| s + 1e-9);
    let dga_val: Vec<&String> = validation.iter().filter(|(_, y)| *y).map(|(n, _)| n).collect();
    let report = TrainReport {
        ngram_names: ngram_names.len(),
        regression_names: lr_names.len(),
        validation_benign: benign_scores.len(),
        validation_dga: dga_val.len(),
        validation_fpr: rate(benign_scores.iter().filter(|s| **s >= threshold).count(), benign_scores.len()),
        validation_tpr: rate(dga_val.iter().filter(|n| model.is_dga(n)).count(), dga_val.len()),
        threshold,
    };
    model.file.provenance = format!(
        "trained by `cargo run --release -p botwatch-telemetry --example train_dga` (seed {SEED:#x}); \
         benign: UMUDGA legit_first50000 (80 % train); DGA: UMUDGA *_1000 + baderj examples, families \
         held out: {}; n-gram tables from {} names, regression (14 features + 2^{} hashed n-grams, \
         bins and public suffix, {EPOCHS} AdaGrad passes) on {} names; threshold {:.4} gives validation FPR {:.4} \
         ({} benign), validation TPR {:.4} ({} DGA); client threshold {:.4} (mean of {} names, \
         ≤ {CLIENT_TARGET_FPR} of validation benign groups)",
        if held_out.is_empty() {
            "none".to_string()
        } else {
            held_out.iter().cloned().collect::<Vec<_>>().join(",")
        },
        report.ngram_names,
        hashed::BUCKETS_LOG2,
        report.regression_names,
        report.threshold,
        report.validation_fpr,
        report.validation_benign,
        report.validation_tpr,
        report.validation_dga,
        model.file.client_threshold,
        model.file.client_names
    );
    (model, report)
}

/// Each name with its score, in an order set by its hash (a data set's order is not a client's).
fn scored(model: &DgaModel, names: &[&String]) -> Vec<f64> {
    let mut v: Vec<(u64, f64)> =
        names.iter().map(|n| (stable_hash(&format!("client:{n}")), model.score(n))).collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

/// Mean scores of consecutive groups of `g` (the rest, fewer than `g`, is no client).
fn client_means(scores: &[f64], g: usize) -> Vec<f64> {
    scores.chunks_exact(g.max(1)).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect()
}

struct Fit {
    dense: [f64; 14],
    bias: f64,
    hashed: Vec<f64>,
}

/// AdaGrad on class-balanced log loss over dense (standardised) and hashed features together.
/// Deterministic: each pass visits the names in an order fixed by their hash and the pass.
fn fit(zs: &[[f64; 14]], tokens: &[Vec<(u32, f32)>], ys: &[f64], keys: &[u64]) -> Fit {
    let pos = ys.iter().filter(|y| **y > 0.5).count().max(1) as f64;
    let neg = (ys.len() as f64 - pos).max(1.0);
    let total = ys.len() as f64;
    let (wp, wn) = (total / (2.0 * pos), total / (2.0 * neg));
    let mut f = Fit { dense: [0.0; 14], bias: 0.0, hashed: vec![0.0; hashed::BUCKETS] };
    let (mut gd, mut gb, mut gh) = ([1e-8; 14], 1e-8, vec![1e-8; hashed::BUCKETS]);
    let mut order: Vec<usize> = (0..ys.len()).collect();
    for epoch in 0..EPOCHS as u64 {
        order.sort_by_key(|i| {
            (keys[*i] ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd)
        });
        for &i in &order {
            let (z, t) = (&zs[i], &tokens[i]);
            let mut s = f.bias;
            s += z.iter().zip(&f.dense).map(|(a, w)| a * w).sum::<f64>();
            s += t.iter().map(|(b, v)| f.hashed[*b as usize] * *v as f64).sum::<f64>();
            let e = (sigmoid(s) - ys[i]) * if ys[i] > 0.5 { wp } else { wn };
            for k in 0..14 {
                let g = e * z[k];
                gd[k] += g * g;
                f.dense[k] -= LEARNING_RATE * g / gd[k].sqrt();
            }
            gb += e * e;
            f.bias -= LEARNING_RATE * e / gb.sqrt();
            for (b, v) in t {
                let b = *b as usize;
                let g = e * *v as f64;
                gh[b] += g * g;
                f.hashed[b] -= LEARNING_RATE * g / gh[b].sqrt();
            }
        }
    }
    f
}

/// Per-family detection with every family held out of the model that scores it.
#[derive(Debug, Clone)]
pub struct FoldEvaluation {
    /// Family → (detected, total), each scored by the fold model that never saw it.
    pub families: BTreeMap<String, (usize, usize)>,
    /// Distinct names of the benign test split (never trained on), and how many each fold's
    /// model flags.
    pub benign_names: usize,
    pub benign_flagged: Vec<usize>,
    /// npm top sites: distinct names, and how many each fold's model flags.
    pub top_sites_names: usize,
    pub top_sites_flagged: Vec<usize>,
    /// Each fold's threshold (for ≤ 0.5 % FPR on its validation benign names).
    pub thresholds: Vec<f64>,
    /// The client rule: family → (clients flagged, clients), a client being [`CLIENT_NAMES`]
    /// of the family's names; benign clients of the test split and how many each fold flags.
    pub clients: BTreeMap<String, (usize, usize)>,
    pub benign_clients: usize,
    pub benign_clients_flagged: Vec<usize>,
}

impl FoldEvaluation {
    /// Mean of the families' TPRs, each family weighing the same.
    pub fn macro_tpr(&self) -> f64 {
        self.macro_tpr_of(1)
    }

    /// The same over families with at least `min` names (a family of 5 names moves the plain
    /// mean as much as one of 20,000).
    pub fn macro_tpr_of(&self, min: usize) -> f64 {
        let rates: Vec<f64> =
            self.families.values().filter(|(_, t)| *t >= min).map(|(h, t)| rate(*h, *t)).collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    }

    /// Mean of the families' client TPRs (families with at least one client's worth of names).
    pub fn macro_client_tpr(&self) -> f64 {
        let rates: Vec<f64> =
            self.clients.values().filter(|(_, t)| *t > 0).map(|(h, t)| rate(*h, *t)).collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    }

    /// The fold models' mean and worst FPR on benign clients.
    pub fn client_fpr(&self) -> (f64, f64) {
        let r: Vec<f64> = self.benign_clients_flagged.iter().map(|f| rate(*f, self.benign_clients)).collect();
        (r.iter().sum::<f64>() / r.len().max(1) as f64, r.iter().copied().fold(0.0, f64::max))
    }

    pub fn families_with(&self, min: usize) -> usize {
        self.families.values().filter(|(_, t)| *t >= min).count()
    }

    pub fn tpr(&self, family: &str) -> Option<f64> {
        self.families.get(family).map(|(h, t)| rate(*h, *t))
    }

    /// The fold models' mean FPR on the benign test names.
    pub fn fpr(&self) -> f64 {
        let n = self.benign_flagged.len().max(1) as f64;
        self.benign_flagged.iter().map(|f| rate(*f, self.benign_names)).sum::<f64>() / n
    }

    /// The worst fold model's FPR on the benign test names.
    pub fn max_fpr(&self) -> f64 {
        self.benign_flagged.iter().map(|f| rate(*f, self.benign_names)).fold(0.0, f64::max)
    }
}

/// Whether `folds` is a split [`leave_family_out`] can make: one fold would hold every family
/// out and train on none.
pub fn check_folds(folds: usize) -> Result<(), &'static str> {
    if folds == 1 { Err("folds must be 0 (one family at a time) or at least 2") } else { Ok(()) }
}

/// Which fold holds a family out.
pub fn fold_of(family: &str, folds: usize) -> usize {
    (stable_hash(&format!("fold:{family}")) % folds.max(1) as u64) as usize
}

/// Leave whole families out: `folds` models, each trained without one group of families and
/// scoring only those; `folds == 0` trains one model per family (leave one family out: each
/// model sees every other family). Benign figures come from the test split, never trained on.
pub fn leave_family_out(corpus: &Corpus, words: &HashSet<Vec<u8>>, folds: usize) -> FoldEvaluation {
    let families = corpus.families();
    let test: Vec<&String> = corpus.benign.iter().filter(|n| benign_split(n) == Split::Test).collect();
    let mut e = FoldEvaluation {
        families: BTreeMap::new(),
        benign_names: test.len(),
        benign_flagged: Vec::new(),
        top_sites_names: corpus.top_sites.len(),
        top_sites_flagged: Vec::new(),
        thresholds: Vec::new(),
        clients: BTreeMap::new(),
        benign_clients: test.len() / CLIENT_NAMES,
        benign_clients_flagged: Vec::new(),
    };
    let groups: Vec<BTreeSet<String>> = if folds == 0 {
        families.keys().map(|f| BTreeSet::from([f.clone()])).collect()
    } else {
        (0..folds).map(|k| families.keys().filter(|f| fold_of(f, folds) == k).cloned().collect()).collect()
    };
    for held in groups {
        if held.is_empty() {
            continue;
        }
        let (model, report) = train_holding_out(corpus, words.clone(), &held);
        e.thresholds.push(report.threshold);
        let flagged_clients = |names: &[&String]| {
            let means = client_means(&scored(&model, names), CLIENT_NAMES);
            (means.iter().filter(|m| model.client_is_dga(**m, CLIENT_NAMES)).count(), means.len())
        };
        for f in &held {
            let names = &families[f];
            e.families.insert(f.clone(), (names.iter().filter(|n| model.is_dga(n)).count(), names.len()));
            e.clients.insert(f.clone(), flagged_clients(&names.iter().collect::<Vec<_>>()));
        }
        e.benign_flagged.push(test.iter().filter(|n| model.is_dga(n)).count());
        e.benign_clients_flagged.push(flagged_clients(&test).0);
        e.top_sites_flagged.push(corpus.top_sites.iter().filter(|n| model.is_dga(n)).count());
    }
    e
}

impl std::fmt::Display for FoldEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "| family (held out) | names detected | TPR per name | clients of {CLIENT_NAMES} names flagged | TPR per client |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|")?;
        let mut rows: Vec<_> = self.families.iter().collect();
        rows.sort_by(|a, b| rate(a.1.0, a.1.1).total_cmp(&rate(b.1.0, b.1.1)).then(a.0.cmp(b.0)));
        for (fam, (hit, total)) in rows {
            let (ch, ct) = self.clients.get(fam).copied().unwrap_or((0, 0));
            let client = if ct > 0 { format!("{:.1} %", 100.0 * rate(ch, ct)) } else { "–".to_string() };
            writeln!(
                f,
                "| {fam} | {hit}/{total} | {:.1} % | {ch}/{ct} | {client} |",
                100.0 * rate(*hit, *total)
            )?;
        }
        writeln!(
            f,
            "macro TPR {:.1} % over {} families ({:.1} % over the {} with at least 100 names); {} folds, thresholds {}",
            100.0 * self.macro_tpr(),
            self.families.len(),
            100.0 * self.macro_tpr_of(100),
            self.families_with(100),
            self.thresholds.len(),
            self.thresholds.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(" ")
        )?;
        let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("/");
        writeln!(
            f,
            "benign test split: {} names, flagged {} by the fold models: mean FPR {:.2} %, worst {:.2} %",
            self.benign_names,
            list(&self.benign_flagged),
            100.0 * self.fpr(),
            100.0 * self.max_fpr()
        )?;
        writeln!(
            f,
            "npm top sites (Moz top 500): {} names, flagged {} by the fold models",
            self.top_sites_names,
            list(&self.top_sites_flagged)
        )?;
        let (mean, worst) = self.client_fpr();
        write!(
            f,
            "per client ({CLIENT_NAMES} NXDOMAIN names, mean score): macro TPR {:.1} % over the {} families with a client's worth of names; \
             benign clients of the test split: {}, flagged {} by the fold models: mean FPR {:.2} %, worst {:.2} %",
            100.0 * self.macro_client_tpr(),
            self.clients.values().filter(|(_, t)| *t > 0).count(),
            self.benign_clients,
            list(&self.benign_clients_flagged),
            100.0 * mean,
            100.0 * worst
        )
    }
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

/// The shipped model's false positives on benign names it never saw.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Benign test split: (flagged, total).
    pub benign: (usize, usize),
    /// npm top sites: (flagged, total) and the flagged names.
    pub top_sites: (usize, usize),
    pub top_sites_flagged: Vec<String>,
}

pub fn evaluate(model: &DgaModel, corpus: &Corpus) -> Evaluation {
    let test: Vec<&String> = corpus.benign.iter().filter(|n| benign_split(n) == Split::Test).collect();
    let benign = (test.iter().filter(|n| model.is_dga(n)).count(), test.len());
    let top_sites_flagged: Vec<String> =
        corpus.top_sites.iter().filter(|n| model.is_dga(n)).cloned().collect();
    Evaluation { benign, top_sites: (top_sites_flagged.len(), corpus.top_sites.len()), top_sites_flagged }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        let held: BTreeSet<String> = ["matsnu".to_string()].into();
        assert_eq!(dga_split("matsnu", "x.com", &held), Split::Test);
        assert_ne!(dga_split("gozi", "x.com", &held), Split::Test);
        // Pinned so an accidental change of the hash (and so of every split) fails loudly.
        assert_eq!(stable_hash("google"), stable_hash("google"));
        let counts = (0..10_000).fold([0usize; 10], |mut c, i| {
            c[(stable_hash(&format!("n{i}")) % 10) as usize] += 1;
            c
        });
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
    }
}

//! DGA scoring of one domain name, offline.
//!
//! The name is cut down to its registrable label with the public suffix list and a list of
//! dynamic-DNS zones (`a.b.example.co.uk` → `example`, `x7kq.mooo.com` → `x7kq`), because that is the part a DGA generates and the part a
//! resolver operator cannot influence. The label becomes a handful of features — character
//! bigram/trigram log-likelihood ratios (DGA vs benign), how likely the trigrams are under the
//! benign model alone, length, Shannon entropy, digit ratio, vowel ratio, longest consonant run,
//! dictionary-word coverage — and a logistic regression turns them into a probability-like score.
//! The public suffix itself (`com`, `biz`, `co.uk`) is one more learned feature: DGAs pick from
//! a few suffixes their authors can register cheaply, benign names spread over every country's.
//!
//! The model (n-gram tables, feature scaling, weights, threshold) ships in
//! `data/dga_model.json`; the word list in `data/dga_words.txt` (SCOWL via Debian
//! `wamerican-small`). Both are built by `cargo run --release -p botwatch-telemetry --example
//! train_dga`, see [`train`].

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::OnceLock;

pub mod hashed;
pub mod train;

/// Symbols the n-gram tables know: 0 = start/end of label, 1..=26 letters, 27 any digit (digit
/// identity carries little signal and would make the trigram table 2.3x larger), 28 anything else.
pub(crate) const ALPHABET: usize = 29;
const BOUNDARY: usize = 0;
/// Dictionary words shorter than this match by chance inside random strings too often.
const MIN_WORD: usize = 3;
const MAX_WORD: usize = 12;
/// Tables are stored in thousandths to keep the shipped JSON compact.
const MILLI: f64 = 1000.0;

static BUILTIN: OnceLock<DgaModel> = OnceLock::new();
const MODEL_JSON: &[u8] = include_bytes!("../../data/dga_model.json");
const HASHED: &[u8] = include_bytes!("../../data/dga_hashed.bin");
const WORDS: &str = include_str!("../../data/dga_words.txt");
const DYNDNS_ZONES: &str = include_str!("../../data/dyndns_zones.txt");

/// Names of the features, in the order of [`Features::values`] and of the model weights.
pub const FEATURE_NAMES: [&str; 14] = [
    "length",
    "ln_length",
    "entropy",
    "digit_ratio",
    "vowel_ratio",
    "max_consonant_run",
    "hyphens",
    "bigram_llr",
    "trigram_llr",
    "benign_trigram_logp",
    "dict_coverage",
    "dict_words",
    "unique_ratio",
    "longest_word",
];

/// The model file format this code reads and writes: 3 added the public suffix to the hashed
/// features, 4 how common the suffix is among benign names (`suffix_benign`, a hashed bin).
pub const MODEL_VERSION: u32 = 4;

/// The trained model as serialised in `data/dga_model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    pub version: u32,
    /// How the model was made: data sets, held-out families, seed, validation figures.
    pub provenance: String,
    /// `ln P_dga(b|a) - ln P_benign(b|a)`, milli-units, index `a * ALPHABET + b`.
    pub bigram_llr: Vec<i32>,
    /// `ln P_dga(c|ab) - ln P_benign(c|ab)`, milli-units, index `(a * ALPHABET + b) * ALPHABET + c`.
    pub trigram_llr: Vec<i32>,
    /// `ln P_benign(c|ab)`, milli-units.
    pub trigram_benign: Vec<i32>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Scores at or above this are DGA; chosen on validation benign names (see provenance).
    pub threshold: f64,
    /// A client is DGA-infected when at least this many of its NXDOMAIN names have a mean
    /// score at or above `client_threshold` (chosen like `threshold`, on validation benign
    /// names grouped this many at a time): names each too ambiguous to flag alone, together
    /// unlike any benign client's. 0: no such rule.
    #[serde(default)]
    pub client_names: usize,
    #[serde(default)]
    pub client_threshold: f64,
    /// SHA-256 of the hashed table (`data/dga_hashed.bin`) trained with these weights;
    /// empty for a model without one.
    #[serde(default)]
    pub hashed_sha256: String,
    /// How many of the n-gram tables' benign names sit on each public suffix: how common a
    /// suffix is among popular sites, so a model can learn that one none of them uses (an
    /// exotic ccTLD, an alternative root's `bazar`) is a DGA's sign, for suffixes it never
    /// saw a DGA use too.
    #[serde(default)]
    pub suffix_benign: std::collections::BTreeMap<String, u32>,
}

/// A loaded DGA model; cheap to share (`&'static` via [`DgaModel::builtin`]).
#[derive(Debug, Clone)]
pub struct DgaModel {
    file: ModelFile,
    words: Dictionary,
    hashed: Option<Arc<hashed::Table>>,
    /// `file.suffix_benign`, hashed for the per-name lookup.
    suffixes: foldhash::HashMap<String, u32>,
}

/// Error loading a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model tables have the wrong size: {0}")]
    Shape(&'static str),
    #[error("hashed table: {0}")]
    Hashed(&'static str),
    #[error(
        "model file version {found}, this botwatch reads version {expected}: retrain with the train_dga example"
    )]
    Version { found: u32, expected: u32 },
}

/// The features of one label, before scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// The registrable label the features describe.
    pub label: String,
    /// The public suffix the label sits on (`com`, `co.uk`, `bazar`).
    pub suffix: String,
    pub values: [f64; 14],
    /// The dictionary words found, in order.
    pub words: Vec<String>,
    /// How common the suffix is among the training's benign names, binned: 0 never seen,
    /// 1 once or twice, 2 under 10, 3 under 50, 4 under 500, 5 more; 6 no suffix or a name
    /// of a private network's (`lan`, `home`, `corp`, `internal`, …); 7 a hosting or CDN
    /// platform's zone (the public suffix list's private section, dynamic DNS zones aside).
    pub suffix_rarity: u8,
}

impl Features {
    /// The registrable domain the label and suffix make, as [`registrable_domain`] gives it
    /// for the name; `None` where the name had no label left of a suffix.
    pub fn registrable_domain(&self) -> Option<String> {
        (!self.suffix.is_empty()).then(|| format!("{}.{}", self.label, self.suffix))
    }
}

impl DgaModel {
    /// The model shipped with botwatch. Parsing happens once per process.
    pub fn builtin() -> &'static DgaModel {
        BUILTIN.get_or_init(|| {
            // The shipped file is produced by the trainer and checked by the unit tests, so a
            // failure here is a build defect, not an input problem.
            DgaModel::from_json(MODEL_JSON, builtin_words(), Some(HASHED))
                .expect("shipped DGA model is valid")
        })
    }

    /// Load a model file with the given dictionary and, when the file names one, the hashed
    /// table it was trained with (its weights and threshold mean nothing without it).
    pub fn from_json(
        json: &[u8],
        words: HashSet<Vec<u8>>,
        hashed: Option<&[u8]>,
    ) -> Result<Self, ModelError> {
        let file: ModelFile = serde_json::from_slice(json)?;
        match (file.hashed_sha256.is_empty(), hashed) {
            (true, None) => Self::from_file(file, words),
            (false, Some(bytes)) => Self::from_file(file, words)?.with_hashed_bytes(bytes),
            (true, Some(_)) => Err(ModelError::Hashed("the model file names no table")),
            (false, None) => Err(ModelError::Hashed("the model file needs its table")),
        }
    }

    pub fn from_file(file: ModelFile, words: HashSet<Vec<u8>>) -> Result<Self, ModelError> {
        if file.version != MODEL_VERSION {
            // Version 2 tables were trained without the suffix feature: scoring them with it
            // would add a weight that belongs to some n-gram.
            return Err(ModelError::Version { found: file.version, expected: MODEL_VERSION });
        }
        let n = FEATURE_NAMES.len();
        if file.bigram_llr.len() != ALPHABET * ALPHABET {
            return Err(ModelError::Shape("bigram_llr"));
        }
        if file.trigram_llr.len() != ALPHABET.pow(3) || file.trigram_benign.len() != ALPHABET.pow(3) {
            return Err(ModelError::Shape("trigram tables"));
        }
        if file.mean.len() != n || file.std.len() != n || file.weights.len() != n {
            return Err(ModelError::Shape("feature vectors"));
        }
        let suffixes = file.suffix_benign.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Ok(DgaModel { file, words: Dictionary::new(words), hashed: None, suffixes })
    }

    /// Attach the hashed table the model file names (by its SHA-256).
    fn with_hashed_bytes(self, bytes: &[u8]) -> Result<Self, ModelError> {
        let sum = sha256_hex(bytes);
        if sum != self.file.hashed_sha256 {
            return Err(ModelError::Hashed("not the table the model was trained with"));
        }
        let t = hashed::Table::from_bytes(bytes).ok_or(ModelError::Hashed("malformed"))?;
        Ok(self.with_hashed(t))
    }

    /// Attach a table (the trainer's); the model file records its SHA-256.
    pub(crate) fn with_hashed(mut self, t: hashed::Table) -> Self {
        self.file.hashed_sha256 = sha256_hex(&t.to_bytes());
        self.hashed = Some(Arc::new(t));
        self
    }

    pub fn hashed(&self) -> Option<&hashed::Table> {
        self.hashed.as_deref()
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    pub fn threshold(&self) -> f64 {
        self.file.threshold
    }

    /// Score 0..1: how DGA-like the registrable label of `name` is.
    pub fn score(&self, name: &str) -> f64 {
        self.score_features(&self.features(name))
    }

    /// `score(name) >= threshold`.
    pub fn is_dga(&self, name: &str) -> bool {
        self.score(name) >= self.file.threshold
    }

    /// Whether `n` names of one client with mean score `mean` make it a DGA client.
    pub fn client_is_dga(&self, mean: f64, n: usize) -> bool {
        self.file.client_names > 0 && n >= self.file.client_names && mean >= self.file.client_threshold
    }

    pub fn score_features(&self, f: &Features) -> f64 {
        if f.label.is_empty() {
            return 0.0;
        }
        let mut z = self.file.bias;
        for i in 0..f.values.len() {
            let s = if self.file.std[i] > 0.0 { self.file.std[i] } else { 1.0 };
            z += self.file.weights[i] * (f.values[i] - self.file.mean[i]) / s;
        }
        if let Some(t) = &self.hashed {
            z += t.sum(f.label.as_bytes(), f.suffix.as_bytes(), hashed::Bins::of(f));
        }
        sigmoid(z)
    }

    /// The reason shown to an analyst, e.g.
    /// `score 0.97 (DGA) for "qxxsoxcwrcplo": entropy 3.4, bigram LLR +1.9, …, no dictionary words`.
    pub fn explain(&self, name: &str) -> String {
        let f = self.features(name);
        let score = self.score_features(&f);
        let v = &f.values;
        let mut s = format!(
            "score {score:.2} ({}) for \"{}\": length {}, entropy {:.1}, bigram LLR {:+.1}, trigram LLR {:+.1}, \
             benign trigram log-p {:.1}, digits {:.0} %, longest consonant run {}",
            if score >= self.file.threshold { "DGA" } else { "not DGA" },
            f.label,
            v[0],
            v[2],
            v[7],
            v[8],
            v[9],
            v[3] * 100.0,
            v[5],
        );
        if !f.suffix.is_empty() {
            let _ = write!(s, ", under .{}", f.suffix);
        }
        if f.words.is_empty() {
            s.push_str(", no dictionary words");
        } else {
            let _ = write!(s, ", dictionary words {} cover {:.0} %", f.words.join("+"), v[10] * 100.0);
        }
        s
    }

    /// Compute the features of `name`'s registrable label.
    pub fn features(&self, name: &str) -> Features {
        let (label, suffix) = split_name(name);
        let b = label.as_bytes();
        let mut values = [0.0; 14];
        let suffix_rarity = suffix_rarity(&suffix, &self.suffixes);
        if b.is_empty() {
            return Features { label, suffix, values, words: Vec::new(), suffix_rarity };
        }
        let n = b.len() as f64;
        values[0] = n;
        values[1] = n.ln();
        values[2] = entropy(b);
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        values[3] = digits as f64 / n;
        let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
        let vowels = b.iter().filter(|c| is_vowel(**c)).count();
        values[4] = if letters > 0 { vowels as f64 / letters as f64 } else { 0.0 };
        values[5] = max_consonant_run(b) as f64;
        values[6] = b.iter().filter(|c| **c == b'-').count() as f64;
        let (bi, tri, ben) = self.ngram_scores(b);
        values[7] = bi;
        values[8] = tri;
        values[9] = ben;
        let (covered, words) = segment(b, &self.words);
        values[10] = covered as f64 / n;
        values[11] = words.len() as f64;
        let mut seen = [false; 256];
        for c in b {
            seen[*c as usize] = true;
        }
        values[12] = seen.iter().filter(|s| **s).count() as f64 / n;
        values[13] = words.iter().map(|w| w.len()).max().unwrap_or(0) as f64;
        let words = words.into_iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        Features { label, suffix, values, words, suffix_rarity }
    }

    /// Mean bigram LLR, mean trigram LLR, mean benign trigram log-probability over the label
    /// padded with boundary symbols.
    fn ngram_scores(&self, label: &[u8]) -> (f64, f64, f64) {
        let syms = symbols(label);
        let (mut bi, mut tri, mut ben) = (0.0, 0.0, 0.0);
        for w in syms.windows(2) {
            bi += self.file.bigram_llr[w[0] * ALPHABET + w[1]] as f64;
        }
        for w in syms.windows(3) {
            let i = (w[0] * ALPHABET + w[1]) * ALPHABET + w[2];
            tri += self.file.trigram_llr[i] as f64;
            ben += self.file.trigram_benign[i] as f64;
        }
        let nb = (syms.len() - 1) as f64;
        let nt = (syms.len() - 2) as f64;
        (bi / nb / MILLI, tri / nt / MILLI, ben / nt / MILLI)
    }
}

/// Lower-case hex SHA-256, as the model file records its table.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The dictionary shipped with the model.
pub fn builtin_words() -> HashSet<Vec<u8>> {
    parse_words(WORDS)
}

/// One word a line; lines that are not 3..=12 ASCII lower-case letters are ignored.
pub fn parse_words(text: &str) -> HashSet<Vec<u8>> {
    text.lines()
        .map(str::trim)
        .filter(|w| (MIN_WORD..=MAX_WORD).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase()))
        .map(|w| w.as_bytes().to_vec())
        .collect()
}

/// The label left of the public suffix (or dynamic-DNS zone, see [`split_name`]):
/// `a.b.example.co.uk` → `example`. Lower-cased; a trailing dot is ignored. A name that is
/// itself a suffix gives its leftmost label.
pub fn registrable_label(name: &str) -> String {
    split_name(name).0
}

/// The registrable label and the public suffix under it: `a.b.example.co.uk` → (`example`,
/// `co.uk`); under a dynamic-DNS zone the user's label: `x7kq.mooo.com` → (`x7kq`, `mooo.com`)
/// (a zone alone is an ordinary name: `mooo.com` → (`mooo`, `com`)). A name that is itself a
/// public suffix gives its leftmost label and no suffix.
pub fn split_name(name: &str) -> (String, String) {
    let mut name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some((domain, suffix)) = locate(&name) {
        // Scoring runs per NXDOMAIN name: the lower-cased copy becomes the suffix in place
        // rather than costing a third allocation.
        let label = name[domain..suffix - 1].to_string();
        name.drain(..suffix);
        return (label, name);
    }
    (name.split('.').next().unwrap_or("").to_string(), String::new())
}

/// Top-level names private networks and their search suffixes use (RFC 6761, RFC 6762,
/// RFC 8375, ICANN's `internal` and its name-collision list): a resolver sees them all day
/// from clean hosts (Chrome's intranet probes with the search suffix appended, printers,
/// routers), so they are binned with "no suffix", never as a suffix no popular site uses.
const PRIVATE_NETWORK_TLDS: [&str; 15] = [
    "local",
    "localhost",
    "localdomain",
    "lan",
    "home",
    "corp",
    "internal",
    "intranet",
    "private",
    "test",
    "invalid",
    "example",
    "arpa",
    "domain",
    "workgroup",
];

/// Whether `name` (lower case, no trailing dot) is one no DGA can register: a single label, or
/// one under a private network's top-level name (`lan`, `home`, `local`, `internal`, `arpa`,
/// …). Clean hosts ask such names all day: Chromium asks three random single labels of 7–15
/// letters at every start and address change (its intranet-redirect probe, which reaches the
/// root servers: about half of their load), and a stub resolver appends its search suffix
/// (`.lan`, `.home`) to them.
pub fn private_network_name(name: &str) -> bool {
    !name.contains('.') || under_private_tld(name)
}

/// Whether a name's or suffix's last label is a private network's top-level name.
fn under_private_tld(name: &str) -> bool {
    PRIVATE_NETWORK_TLDS.contains(&name.rsplit('.').next().unwrap_or(name))
}

/// Zones whose labels the platform assigns, random by design (`d3c33hcgiwev3.cloudfront.net`,
/// an API gateway's `a1b2c3d4e5`, a tunnel service's hex): a browser meets dozens a day and no
/// DGA can pick one. Listed, not taken from the public suffix list's private section, which
/// also holds zones whose users choose the label (`github.io`, CentralNic's `hk.org`), where
/// DGAs do live. Each entry covers its subzones (`us-east-1.elb.amazonaws.com`).
const ASSIGNED_LABEL_ZONES: [&str; 15] = [
    "cloudfront.net",
    "azureedge.net",
    "azurefd.net",
    "blob.core.windows.net",
    "elb.amazonaws.com",
    "elb.amazonaws.com.cn",
    "amplifyapp.com",
    "awsglobalaccelerator.com",
    "on.aws",
    "ngrok.io",
    "ngrok.app",
    "ngrok-free.app",
    "ngrok.dev",
    "ngrok-free.dev",
    "trycloudflare.com",
];

/// Whether a public suffix (as [`split_name`] gives it) is a zone whose labels the platform
/// assigns: [`ASSIGNED_LABEL_ZONES`] and AWS API Gateway's `execute-api.<region>` zones.
pub fn assigned_label_zone(suffix: &str) -> bool {
    let under = |z: &str| suffix.strip_suffix(z).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
    ASSIGNED_LABEL_ZONES.iter().any(|z| under(z))
        || (suffix.starts_with("execute-api.") && (under("amazonaws.com") || under("amazonaws.com.cn")))
}

/// [`Features::suffix_rarity`] of a suffix, from the counts of the model's benign names.
fn suffix_rarity(suffix: &str, counts: &foldhash::HashMap<String, u32>) -> u8 {
    if suffix.is_empty() || under_private_tld(suffix) {
        return 6;
    }
    // A hosting or CDN platform's zone: its labels are the platform's customers', often
    // machine-made (`d1a2b3c4e5.cloudfront.net`). Dynamic-DNS zones, though in the list's
    // private section too, stay counted: popular sites do not live there, and malware does.
    let platform = psl::suffix(suffix.as_bytes()).and_then(|s| s.typ()) == Some(psl::Type::Private)
        && !dyndns_zones().contains(suffix);
    if platform {
        return 7;
    }
    match counts.get(suffix).copied().unwrap_or(0) {
        0 => 0,
        1..=2 => 1,
        3..=9 => 2,
        10..=49 => 3,
        50..=499 => 4,
        _ => 5,
    }
}

/// The registrable domain of `name` (lower-cased, no trailing dot), as [`split_name`] finds
/// it: `a.b.example.co.uk` → `example.co.uk`, `a.x7kq.mooo.com` → `x7kq.mooo.com`.
pub fn registrable_domain(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    match locate(&name) {
        Some((domain, _)) => Some(name[domain..].to_string()),
        // Malformed names (`x..com`) keep the list's answer, so nothing is dropped for it.
        None => psl::domain(name.as_bytes()).map(|d| String::from_utf8_lossy(d.as_bytes()).into_owned()),
    }
}

/// Where the registrable domain and its suffix start in a lower-cased name; `None` when the
/// name has no label left of its public suffix.
fn locate(name: &str) -> Option<(usize, usize)> {
    let d = psl::domain(name.as_bytes())?;
    let (full, suffix) = (d.as_bytes().len(), d.suffix().as_bytes().len());
    if full <= suffix + 1 {
        return None;
    }
    let (mut domain, mut suffix) = (name.len() - full, name.len() - suffix);
    // A dynamic-DNS zone is a suffix in all but the list: its users pick the labels under it.
    // An empty label left of it (`a..mooo.com`) is no user's name.
    while domain > 1 && !name[..domain - 1].ends_with('.') && dyndns_zones().contains(&name[domain..]) {
        let left = &name[..domain - 1];
        suffix = domain;
        domain = left.rfind('.').map_or(0, |i| i + 1);
    }
    Some((domain, suffix))
}

/// `data/dyndns_zones.txt`, parsed once.
fn dyndns_zones() -> &'static HashSet<&'static str> {
    static ZONES: OnceLock<HashSet<&'static str>> = OnceLock::new();
    ZONES.get_or_init(|| {
        DYNDNS_ZONES.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    })
}

pub(crate) fn symbol(c: u8) -> usize {
    match c {
        b'a'..=b'z' => (c - b'a') as usize + 1,
        b'0'..=b'9' => 27,
        _ => 28,
    }
}

/// The label as symbols with one boundary on each side.
pub(crate) fn symbols(label: &[u8]) -> Vec<usize> {
    let mut v = Vec::with_capacity(label.len() + 2);
    v.push(BOUNDARY);
    v.extend(label.iter().map(|c| symbol(*c)));
    v.push(BOUNDARY);
    v
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

fn max_consonant_run(b: &[u8]) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in b {
        if c.is_ascii_alphabetic() && !is_vowel(*c) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

fn entropy(b: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for c in b {
        counts[*c as usize] += 1;
    }
    let n = b.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| *c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Words and their prefixes, so the segmentation stops extending a candidate as soon as no
/// word starts that way (most positions of a random label stop at three letters) instead of
/// looking up every length from 3 to 12: scoring ran at 0.75M names/s with one lookup per
/// length, the lookups being most of the cost.
#[derive(Debug, Clone)]
struct Dictionary {
    /// Every prefix of 4.. letters of a word → whether it is itself a word (foldhash: short keys).
    prefixes: foldhash::HashMap<Box<[u8]>, bool>,
    /// The first three letters of a word (index `a*27*27 + b*27 + c`): 0 none, 1 prefix, 2 word.
    three: Vec<u8>,
}

impl Dictionary {
    fn new(words: HashSet<Vec<u8>>) -> Dictionary {
        let mut d = Dictionary { prefixes: foldhash::HashMap::default(), three: vec![0; 27 * 27 * 27] };
        // What parse_words keeps; a caller's own set may hold other strings, never matched.
        for w in words.iter().filter(|w| (MIN_WORD..=MAX_WORD).contains(&w.len())) {
            let Some(t) = Self::index3(w) else { continue };
            d.three[t] = d.three[t].max(if w.len() == MIN_WORD { 2 } else { 1 });
            for l in MIN_WORD + 1..=w.len() {
                let e = d.prefixes.entry(w[..l].into()).or_insert(false);
                *e |= l == w.len();
            }
        }
        d
    }

    fn index3(w: &[u8]) -> Option<usize> {
        let c = |x: u8| x.is_ascii_lowercase().then(|| (x - b'a' + 1) as usize);
        Some((c(*w.first()?)? * 27 + c(*w.get(1)?)?) * 27 + c(*w.get(2)?)?)
    }

    /// Lengths `l` (3..=12) for which `b[..l]` is a word, shortest first.
    fn words_at(&self, b: &[u8], mut f: impl FnMut(usize)) {
        let Some(t) = Self::index3(b) else { return };
        match self.three[t] {
            0 => return,
            2 => f(MIN_WORD),
            _ => {}
        }
        for l in MIN_WORD + 1..=MAX_WORD.min(b.len()) {
            match self.prefixes.get(&b[..l]) {
                None => return,
                Some(true) => f(l),
                Some(false) => {}
            }
        }
    }
}

/// Cover as many characters as possible with dictionary words (fewest words on ties).
/// Returns characters covered and the words used.
fn segment<'a>(b: &'a [u8], words: &Dictionary) -> (usize, Vec<&'a [u8]>) {
    let n = b.len();
    // best[i] = (covered, -words) for the prefix of length i, with a back-pointer.
    let mut best: Vec<(usize, i64)> = vec![(0, 0); n + 1];
    let mut back: Vec<Option<usize>> = vec![None; n + 1];
    for i in 0..n {
        let cur = best[i];
        if cur > best[i + 1] {
            best[i + 1] = cur;
            back[i + 1] = None;
        }
        words.words_at(&b[i..], |l| {
            let cand = (cur.0 + l, cur.1 - 1);
            if cand > best[i + l] {
                best[i + l] = cand;
                back[i + l] = Some(i);
            }
        });
    }
    let mut out = Vec::new();
    let mut i = n;
    while i > 0 {
        match back[i] {
            Some(start) => {
                out.push(&b[start..i]);
                i = start;
            }
            None => i -= 1,
        }
    }
    out.reverse();
    (best[n].0, out)
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_label_uses_public_suffix_list() {
        assert_eq!(registrable_label("a.b.example.co.uk"), "example");
        assert_eq!(registrable_label("WWW.Google.COM."), "google");
        assert_eq!(registrable_label("qxxsoxcwrcplo.net"), "qxxsoxcwrcplo");
        assert_eq!(registrable_label("co.uk"), "co");
        assert_eq!(split_name("A.B.Example.CO.uk."), ("example".to_string(), "co.uk".to_string()));
        assert_eq!(split_name("x.bazar"), ("x".to_string(), "bazar".to_string()));
        assert_eq!(split_name("localhost"), ("localhost".to_string(), String::new()));
        // Dynamic-DNS zones outside the public suffix list (FreeDNS, ChangeIP) and inside it.
        assert_eq!(split_name("a.Ibbwnhgh.mooo.com"), ("ibbwnhgh".to_string(), "mooo.com".to_string()));
        assert_eq!(split_name("x.onmypc.net"), ("x".to_string(), "onmypc.net".to_string()));
        assert_eq!(split_name("x.duckdns.org"), ("x".to_string(), "duckdns.org".to_string()));
        // Older free-subdomain zones (Elastic's DGA integration's list), as Kraken used them.
        assert_eq!(split_name("ffzmosei.yi.org"), ("ffzmosei".to_string(), "yi.org".to_string()));
        assert_eq!(split_name("jzoynv.dynserv.com"), ("jzoynv".to_string(), "dynserv.com".to_string()));
        assert_eq!(split_name("mooo.com"), ("mooo".to_string(), "com".to_string()));
        assert_eq!(registrable_domain("www.x7kq.mooo.com."), Some("x7kq.mooo.com".to_string()));
        assert_eq!(registrable_domain("www.example.co.uk"), Some("example.co.uk".to_string()));
        assert_eq!(registrable_domain("uk"), None);
        assert_eq!(registrable_label(""), "");
    }

    #[test]
    fn segmentation_prefers_coverage() {
        let words = Dictionary::new(parse_words("face\nbook\nfacebook\nthe\nweather\nchannel\n"));
        let (c, w) = segment(b"facebook", &words);
        assert_eq!((c, w), (8, vec![&b"facebook"[..]]));
        let (c, w) = segment(b"theweatherchannel", &words);
        assert_eq!(c, 17);
        assert_eq!(w.len(), 3);
        assert_eq!(segment(b"xqzv", &words).0, 0);
    }

    #[test]
    fn builtin_model_loads_and_separates_obvious_cases() {
        let m = DgaModel::builtin();
        for benign in ["google.com", "wikipedia.org", "www.bbc.co.uk", "stackoverflow.com", "amazon.de"] {
            assert!(!m.is_dga(benign), "{benign}: {}", m.explain(benign));
        }
        for dga in ["qxxsoxcwrcplo.net", "xtwscsoqwxobqdcuibtorby.ru", "1cfci3lpp2g03jym.ru"] {
            assert!(m.is_dga(dga), "{dga}: {}", m.explain(dga));
        }
        let e = m.explain("qxxsoxcwrcplo.net");
        assert!(e.contains("entropy") && e.contains("bigram LLR"), "{e}");
    }

    #[test]
    fn a_suffix_is_binned_by_how_many_benign_names_use_it() {
        let m = DgaModel::builtin();
        let rarity = |n: &str| m.features(n).suffix_rarity;
        // `com` carries most popular sites; an alternative root's `bazar` none.
        assert_eq!(rarity("example.com"), 5);
        assert_eq!(rarity("ylhoxyoq.bazar"), 0);
        assert_eq!(rarity("localhost"), 6);
        assert!(rarity("example.co.uk") > rarity("example.cw"));
        // A private network's names and a provider's zones are bins of their own.
        for n in ["qwhfkxpz.lan", "printer.home", "fileserver.corp", "x.home.arpa", "build.internal"] {
            assert_eq!(rarity(n), 6, "{n}");
        }
        for n in ["d1a2b3c4e5.cloudfront.net", "myapp.herokuapp.com"] {
            assert_eq!(rarity(n), 7, "{n}");
        }
        assert!(rarity("ibbwnhgh.mooo.com") < 6);
    }

    #[test]
    fn odd_input_does_not_panic() {
        let m = DgaModel::builtin();
        for s in [
            "",
            ".",
            "..",
            "a",
            "-",
            "ä.com",
            "xn--bcher-kva.example",
            "😀😀.de",
            "a..b",
            "ab_c.com",
            "a..mooo.com",
            "..mooo.com",
            ".mooo.com",
            "MOOO.COM.",
            "😀.mooo.com",
            "x.go.dyndns.org",
            "x..com",
        ] {
            let v = m.score(s);
            assert!((0.0..=1.0).contains(&v), "{s}: {v}");
            let _ = m.explain(s);
            let _ = registrable_domain(s);
        }
        assert_eq!(split_name("a..mooo.com").0, "mooo");
        assert_eq!(registrable_domain("x..com"), Some(".com".to_string()));
    }

    #[test]
    fn a_model_file_of_another_version_is_refused() {
        let mut file = DgaModel::builtin().file().clone();
        file.version = 2;
        let e = DgaModel::from_file(file, HashSet::new()).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
    }
}

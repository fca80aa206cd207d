//! The DGA model on names it never trained on: every family scored by a model trained without
//! it (leave-family-out folds), the held-out benign split and the npm top-sites list. Floors
//! below are what the model must keep; the printed table is the one in bench/README.md ("DGA
//! detection").
//!
//! `cargo test -p botwatch-telemetry --test dga_eval -- --nocapture`

use botwatch_telemetry::detect::dga::{DgaModel, builtin_words, train};
use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BOTWATCH_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.join("dga").is_dir().then(|| dir.join("dga"))
}

/// Every family scored by a model trained without it (five folds of whole families), at the
/// threshold each fold chose for ≤ 0.5 % FPR on its validation benign names. The floors sit a
/// little under what was measured (bench/README.md, "DGA detection") so a regression fails.
#[test]
fn leave_family_out_meets_floors() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data/dga absent");
        return;
    };
    let corpus = train::Corpus::load(&dir).unwrap();
    let e = train::leave_family_out(&corpus, &builtin_words(), train::FOLDS);
    println!("{e}");
    assert!(e.families.len() >= 45, "families: {:?}", e.families.keys());
    assert!(e.benign_names > 4000, "benign test names: {}", e.benign_names);
    assert!(e.max_fpr() <= 0.006, "FPR on held-out benign {:?}", e.benign_flagged);
    assert!(e.fpr() <= 0.005, "FPR on held-out benign {}", e.fpr());
    assert!(e.top_sites_flagged.iter().all(|f| f * 100 <= e.top_sites_names), "{:?}", e.top_sites_flagged);
    // Measured 71.6 %: the per-name goal of 80 % is not reached (wordlist and pronounceable
    // families); this floor keeps what is.
    assert!(e.macro_tpr() >= 0.70, "macro TPR {}", e.macro_tpr());
    let tpr = |f: &str| e.tpr(f).unwrap_or_else(|| panic!("{f} missing"));
    // Random-character and hex families: the model's strength.
    for f in ["cryptolocker", "dyre", "qadars", "ramdo", "shiotob", "zloader", "murofet", "newgoz", "chinad"]
    {
        assert!(tpr(f) >= 0.85, "{f}: TPR {}", tpr(f));
    }
    // A client's ten NXDOMAIN names together (the detector's client rule).
    let (mean, worst) = e.client_fpr();
    assert!(e.benign_clients >= 500, "benign clients: {}", e.benign_clients);
    assert!(worst <= 0.01 && mean <= 0.006, "client FPR mean {mean}, worst {worst}");
    assert!(e.macro_client_tpr() >= 0.88, "client macro TPR {}", e.macro_client_tpr());
    // Kraken's names under dynamic-DNS zones (mooo.com, yi.org, dynserv.com, …) are scored on
    // the user's label, not the provider's.
    assert!(tpr("kraken") >= 0.8, "kraken: TPR {}", tpr("kraken"));
    // A suffix no popular site uses (`bazar`, an alternative root's) counts without the model
    // having seen a DGA use it.
    assert!(tpr("bazarbackdoor") >= 0.55, "bazarbackdoor: TPR {}", tpr("bazarbackdoor"));
    // Pronounceable ones the n-grams reach in part.
    for (f, floor) in
        [("ngioweb", 0.55), ("vawtrak", 0.2), ("pykspa", 0.6), ("rovnix", 0.6), ("tempedreve", 0.65)]
    {
        assert!(tpr(f) >= floor, "{f}: TPR {}", tpr(f));
    }
}

/// The shipped model (trained on every family) on benign names it never saw.
#[test]
fn shipped_model_keeps_benign_names_quiet() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data/dga absent");
        return;
    };
    let corpus = train::Corpus::load(&dir).unwrap();
    let e = train::evaluate(DgaModel::builtin(), &corpus);
    println!("{e}");
    assert!(e.benign.1 > 4000, "benign test split too small: {}", e.benign.1);
    let fpr = e.benign.0 as f64 / e.benign.1 as f64;
    assert!(fpr <= 0.005, "FPR on held-out benign {fpr}");
    assert!(e.top_sites.0 * 100 <= e.top_sites.1, "{:?}", e.top_sites_flagged);
}

#[test]
fn explanations_name_the_evidence() {
    let m = DgaModel::builtin();
    let e = m.explain("a.b.xtwscsoqwxobqdcuibtorby.co.uk");
    assert!(e.contains("\"xtwscsoqwxobqdcuibtorby\"") && e.contains("under .co.uk"), "{e}");
    assert!(e.contains("(DGA)") && e.contains("no dictionary words"), "{e}");
    let e = m.explain("theweatherchannel.com");
    assert!(e.contains("(not DGA)") && e.contains("weather"), "{e}");
}

/// Retraining from the shared data reproduces the shipped model exactly. Slow in debug builds:
/// `cargo test --release -p botwatch-telemetry --test dga_eval -- --ignored`.
#[test]
#[ignore]
fn retraining_reproduces_shipped_model() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data/dga absent");
        return;
    };
    let corpus = train::Corpus::load(&dir).unwrap();
    let (model, _) = train::train(&corpus, builtin_words());
    let fresh = serde_json::to_string(model.file()).unwrap();
    // The file's own text: parsing and printing it again may move a float by one ulp (serde_json
    // parses floats fast, not exactly), which would hide nothing and fail this test.
    let shipped = include_str!("../data/dga_model.json");
    assert!(fresh == shipped, "retrained model differs from data/dga_model.json");
    let table = model.hashed().unwrap().to_bytes();
    let shipped_table = DgaModel::builtin().hashed().unwrap().to_bytes();
    assert!(table == shipped_table, "retrained table differs from data/dga_hashed.bin");
}

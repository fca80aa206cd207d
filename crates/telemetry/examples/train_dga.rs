//! Trains the shipped DGA model, then prints the leave-family-out evaluation.
//!
//! ```text
//! cargo run --release -p botwatch-telemetry --example train_dga -- \
//!     ../shared/data/dga crates/telemetry/data/dga_model.json [folds]
//! ```
//!
//! `folds` is the evaluation's (default 5; 0 holds out one family at a time).
//!
//! Writes the model file and, beside it, `dga_hashed.bin` (the hashed n-gram table the model
//! file names by SHA-256). Deterministic: the same data gives the same files byte for byte
//! (splits use a fixed seeded hash, the passes a fixed order). The word list is the shipped
//! `data/dga_words.txt`.

use botwatch_telemetry::detect::dga::{builtin_words, train};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().unwrap_or_else(|| "../shared/data/dga".into()));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "crates/telemetry/data/dga_model.json".into()));
    let folds = args.next().map(|f| f.parse()).transpose()?.unwrap_or(train::FOLDS);
    train::check_folds(folds)?;
    let corpus = train::Corpus::load(&data)?;
    eprintln!(
        "Loaded {} benign, {} DGA names, {} top sites from {}",
        corpus.benign.len(),
        corpus.dga.len(),
        corpus.top_sites.len(),
        data.display()
    );
    let (model, report) = train::train(&corpus, builtin_words());
    eprintln!("{report:?}");
    let m = model.file();
    for (name, w) in botwatch_telemetry::detect::dga::FEATURE_NAMES.iter().zip(&m.weights) {
        eprintln!("  weight {name:>20} {w:+.3}");
    }
    std::fs::write(&out, serde_json::to_string(m)?)?;
    let table = out.with_file_name("dga_hashed.bin");
    std::fs::write(&table, model.hashed().expect("trained with a table").to_bytes())?;
    eprintln!("Wrote {} and {}", out.display(), table.display());
    println!("{}", train::evaluate(&model, &corpus));
    println!("{}", train::leave_family_out(&corpus, &builtin_words(), folds));
    Ok(())
}

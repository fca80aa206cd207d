//! Embeds the sample reports listed in `demo-samples.txt` (real reports under
//! `crates/feeds/tests/data` whose licences allow it) into the binary for `botwatch demo`,
//! so the demo works from any directory with no files beside it. An explicit list, not a
//! walk of the folder: a fixture added for the tests is not compiled in by accident.

use std::path::{Path, PathBuf};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = dir.join("demo-samples.txt");
    let root = dir.join("../feeds/tests/data");
    println!("cargo:rerun-if-changed={}", list.display());
    let text = std::fs::read_to_string(&list).unwrap_or_default();
    let mut code = String::from(
        "/// (path relative to the samples folder, bytes)\npub const SAMPLES: &[(&str, &[u8])] = &[\n",
    );
    for rel in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f = root.join(rel);
        println!("cargo:rerun-if-changed={}", f.display());
        let abs =
            f.canonicalize().unwrap_or_else(|_| panic!("demo-samples.txt names {rel}, which does not exist"));
        code.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("samples.rs");
    std::fs::write(out, code).unwrap_or_default();
}

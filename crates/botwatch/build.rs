//! Embeds the sample reports under `crates/feeds/tests/data` into the binary for
//! `botwatch demo`, so the demo works from any directory with no files beside it.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
            continue;
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let skip = name.ends_with(".expected.json")
            || name.ends_with(".feed.json")
            || name.starts_with("PROVENANCE")
            || name.starts_with("LICENSE")
            || name.ends_with(".md")
            || name.contains("bad")
            || name.contains("garbage")
            // Generic CSVs are read through a column mapping (their `.feed.json`), which
            // detection cannot guess: the demo would only report them as not ingested.
            || p.with_file_name(format!("{name}.feed.json")).exists();
        if !skip {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../feeds/tests/data");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// (path relative to the samples folder, bytes)\npub const SAMPLES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let abs = f.canonicalize().unwrap_or(f.clone());
        code.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("samples.rs");
    std::fs::write(out, code).unwrap_or_default();
}

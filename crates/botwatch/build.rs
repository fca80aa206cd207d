//! Two things the binary carries from its build:
//! - the sample reports listed in `demo-samples.txt` (real reports under
//!   `crates/feeds/tests/data` whose licences allow it), for `botwatch demo`, so the demo
//!   works from any directory with no files beside it. An explicit list, not a walk of the
//!   folder: a fixture added for the tests is not compiled in by accident;
//! - what `botwatch --version` says beyond the version: the commit built, and the date of
//!   the IP → ASN data shipped in the binary (from the enrich crate's provenance record).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    samples();
    version();
}

fn samples() {
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

fn version() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        // A build from a source archive has no repository to ask.
        .or_else(|| std::env::var("BOTWATCH_COMMIT").ok())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    println!("cargo:rustc-env=BOTWATCH_COMMIT={commit}{}", if dirty { "-modified" } else { "" });
    println!("cargo:rerun-if-env-changed=BOTWATCH_COMMIT");
    for p in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }

    let prov = "../enrich/data/PROVENANCE.txt";
    println!("cargo:rerun-if-changed={prov}");
    let text = std::fs::read_to_string(prov).unwrap_or_default();
    // "ip-location-db-asn-2.3.2026061719.tgz": the last version part is YYYYMMDDHH.
    let data = text
        .split("ip-location-db-asn-")
        .nth(1)
        .and_then(|r| r.split(".tgz").next())
        .and_then(|v| {
            let stamp = v.rsplit('.').next()?;
            (stamp.len() >= 8 && stamp.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{}-{}-{} (ip-location-db {v})", &stamp[..4], &stamp[4..6], &stamp[6..8]))
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BOTWATCH_IPASN_DATA={data}");
}

//! Every sample under `tests/data/leases/` is detected, parsed and compared with its golden
//! `<file>.expected.json`; `UPDATE_GOLDEN=1 cargo test -p botwatch-enrich --test leases_golden`
//! rewrites the goldens (review the diff!). The same walk checks what holds for every lease
//! parser: records have a subscriber, a source naming format and file, a line, and an
//! interval that does not end before it starts; rejects have a line and a reason.

use botwatch_enrich::leases;
use botwatch_enrich::subscriber::SubscriberIndex;
use serde_json::{Value, json};
use std::path::Path;

#[test]
fn golden_files_match_and_invariants_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leases");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            !n.ends_with(".expected.json") && !n.ends_with(".md")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6, "fixtures missing: {files:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let data = std::fs::read(path).unwrap();
        let (records, rejects, format) = leases::parse(&data, &name).unwrap();
        assert!(!records.is_empty(), "{name}: no records");
        assert!(!rejects.is_empty(), "{name}: the sample's malformed lines were not rejected");
        for r in &records {
            assert!(!r.subscriber.is_empty(), "{name}: record without subscriber (line {})", r.line);
            assert!(r.line > 0);
            assert_eq!(r.source, format!("{format}:{name}"));
            assert!(r.end.is_none_or(|e| e >= r.start), "{name}: line {} ends before it starts", r.line);
        }
        for j in &rejects {
            assert!(j.line > 0 && !j.reason.is_empty(), "{name}: {j:?}");
        }
        // Whatever a file holds builds an index.
        let idx = SubscriberIndex::build(records.clone());
        assert!(idx.len() <= records.len());
        let got = json!({
            "format": format,
            "records": records,
            "rejects": rejects.iter().map(|r| json!({
                "line": r.line, "reason": r.reason, "raw": String::from_utf8_lossy(&r.raw),
            })).collect::<Vec<_>>(),
        });
        let golden = path.with_file_name(format!("{name}.expected.json"));
        if update {
            std::fs::write(&golden, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let Ok(want) = std::fs::read(&golden) else {
            failures.push(format!("{name}: no golden file (run with UPDATE_GOLDEN=1)"));
            continue;
        };
        let want: Value = serde_json::from_slice(&want).unwrap();
        if want != got {
            failures.push(format!(
                "{name}: output differs from {}\n--- got ---\n{}",
                golden.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

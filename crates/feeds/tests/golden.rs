//! Every fixture under `tests/data/<provider>/` is parsed and compared with its golden
//! `<file>.expected.json`; `UPDATE_GOLDEN=1 cargo test -p botwatch-feeds --test golden`
//! rewrites the goldens (review the diff!).
//!
//! The feed is detected the way `botwatch ingest` would without `--feed`, so the golden file
//! also pins detection. A `<file>.feed.json` sidecar overrides it: `{"feed": "<id>"}` or
//! `{"id": "<id>", "generic": { …GenericConfig… }}` for a configured generic feed.
//!
//! The same walk checks what holds for every parser: each event carries the feed id, a
//! classification, its raw line and a line number; each reject a line number and a reason.

use botwatch_feeds::{ParseContext, input, registry::Registry};
use botwatch_model::{Collected, FamilyTable, Timestamp};
use bytes::Bytes;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            fixtures(&p, out);
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let skip = name.ends_with(".expected.json")
            || name.ends_with(".feed.json")
            || name.starts_with("PROVENANCE")
            || name.starts_with("LICENSE")
            || name.ends_with(".md");
        if !skip {
            out.push(p);
        }
    }
}

pub fn render(c: &Collected, feed: &str) -> Value {
    let events: Vec<Value> = c
        .events
        .iter()
        .map(|e| {
            let mut m = e.to_intelmq(false);
            m.remove("feed.documentation");
            m.insert("raw".into(), Value::String(String::from_utf8_lossy(&e.raw).into_owned()));
            m.insert("line".into(), json!(e.line));
            Value::Object(m)
        })
        .collect();
    let rejects: Vec<Value> = c
        .rejects
        .iter()
        .map(|r| json!({"line": r.line, "reason": r.reason, "raw": String::from_utf8_lossy(&r.raw)}))
        .collect();
    json!({"feed": feed, "events": events, "rejects": rejects, "warnings": c.warnings})
}

#[test]
fn golden_files_match_and_invariants_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    fixtures(&root, &mut files);
    files.sort();
    assert!(files.len() >= 30, "expected the fixture corpus, found {} files", files.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let families = FamilyTable::default();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let data = Bytes::from(std::fs::read(path).unwrap());
        let members = input::decode(&name, data, 1 << 30).unwrap();
        let member = &members[0];
        let mut registry = Registry::builtin();
        let sidecar = path.with_file_name(format!("{name}.feed.json"));
        let forced: Option<String> = if sidecar.exists() {
            let v: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
            if let Some(cfg) = v.get("generic") {
                let id = v["id"].as_str().unwrap();
                let cfg = serde_json::from_value(cfg.clone()).unwrap();
                registry.add(botwatch_feeds::generic::custom_feed(id, cfg));
                Some(id.to_string())
            } else {
                Some(v["feed"].as_str().unwrap().to_string())
            }
        } else {
            None
        };
        let spec = match &forced {
            Some(id) => registry.get(id).unwrap(),
            None => match registry.detect(Some(&member.name), &member.data) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{}: {e}", path.display()));
                    continue;
                }
            },
        };
        let ctx = ParseContext::new(spec, Some(&member.name), Timestamp::from_secs(1_767_225_600), &families);
        let mut out = Collected::default();
        spec.parser.parse(&member.data, &ctx, &mut out);

        // Invariants of every parser.
        for e in &out.events {
            assert_eq!(e.feed.id, spec.id.as_str(), "{name}: feed id");
            assert!(!e.raw.is_empty(), "{name}: event without raw line (line {})", e.line);
            assert!(e.line > 0, "{name}: event without line number");
            assert!(!e.classification_type.as_str().is_empty());
            assert!(
                !e.source.is_empty() || !e.destination.is_empty() || !e.attrs.is_empty(),
                "{name}: event {} names nothing",
                e.line
            );
        }
        for r in &out.rejects {
            assert!(r.line > 0, "{name}: reject without line");
            assert!(!r.reason.is_empty(), "{name}: reject without reason");
        }
        assert!(
            !out.events.is_empty()
                || !out.rejects.is_empty()
                || name.contains("empty")
                || name.contains("notice"),
            "{name}: parsed to nothing"
        );

        let got = render(&out, &spec.id);
        // A format read in chunks (large reports are) gives the same output in small ones.
        if let Some(kind) = spec.parser.chunking() {
            let mut r: &[u8] = &member.data;
            let mut chunks = input::Chunker::new(&mut r, kind, 1024);
            let mut pieces = Collected::default();
            spec.parser.parse_chunks(&mut chunks, &ctx, &mut pieces);
            assert!(chunks.error.is_none());
            if render(&pieces, &spec.id) != got {
                failures.push(format!("{}: parsed in 1 KiB chunks, the output differs", path.display()));
            }
        }
        let golden = path.with_file_name(format!("{name}.expected.json"));
        if update {
            std::fs::write(&golden, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        } else if !golden.exists() {
            failures.push(format!("{}: no golden file (run with UPDATE_GOLDEN=1)", path.display()));
        } else {
            let want: Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
            if want != got {
                failures.push(format!(
                    "{}: output differs from {} (run with UPDATE_GOLDEN=1 and review the diff)",
                    path.display(),
                    golden.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "golden failures:\n{}", failures.join("\n"));
}

//! Every non-Shadowserver parser and detector survives arbitrary bytes, and truncated or
//! corrupted copies of every fixture: no panic, and whatever comes out keeps the harness
//! invariants (events name something, rejects say where and why).

use botwatch_feeds::{ParseContext, registry};
use botwatch_model::{Collected, FamilyTable, Timestamp};
use bytes::Bytes;
use std::path::Path;

/// The built-in non-Shadowserver feeds plus the generic CSV feeds the fixtures configure.
fn ours() -> Vec<botwatch_feeds::FeedSpec> {
    let mut v: Vec<_> =
        registry::all().iter().filter(|f| !f.id.starts_with("shadowserver")).cloned().collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/generic");
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap().path();
        if f.to_string_lossy().ends_with(".feed.json") {
            let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            if let (Some(id), Some(g)) = (cfg["id"].as_str(), cfg.get("generic")) {
                v.push(botwatch_feeds::generic::custom_feed(id, serde_json::from_value(g.clone()).unwrap()));
            }
        }
    }
    v
}

fn check(spec: &botwatch_feeds::FeedSpec, data: &[u8], families: &FamilyTable) {
    let ctx = ParseContext::new(spec, Some("x.txt"), Timestamp(0), families);
    let mut out = Collected::default();
    spec.parser.parse(&Bytes::copy_from_slice(data), &ctx, &mut out);
    for e in &out.events {
        assert!(e.line > 0 && !e.raw.is_empty(), "{}: event without line or raw", spec.id);
        assert!(
            !e.source.is_empty() || !e.destination.is_empty() || !e.attrs.is_empty(),
            "{}: event names nothing",
            spec.id
        );
    }
    for r in &out.rejects {
        assert!(r.line > 0 && !r.reason.is_empty(), "{}: reject without line or reason", spec.id);
    }
}

#[test]
fn truncated_and_corrupted_fixtures() {
    let families = FamilyTable::default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() || dir.ends_with("shadowserver") {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".json") || !name.contains(".expected.") && !name.ends_with(".feed.json") {
                files.push(f);
            }
        }
    }
    assert!(files.len() > 20);
    let specs = ours();
    assert!(specs.iter().any(|s| s.id == "generic_dcu_sample"));
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let _ = registry::Registry::builtin().detect(Some(&name), &data);
        let step = (data.len() / 9).max(1);
        for cut in (0..data.len()).step_by(step) {
            let mut corrupt = data.clone();
            if let Some(b) = corrupt.get_mut(cut) {
                *b ^= 0xa5;
            }
            for spec in &specs {
                check(spec, &data[..cut], &families);
                check(spec, &corrupt, &families);
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let families = FamilyTable::default();
        for spec in ours() {
            check(&spec, &data, &families);
        }
        let _ = registry::Registry::builtin().detect(Some("x.txt"), &data);
    }

    #[test]
    fn arbitrary_text_shaped_like_feeds(data in "([0-9a-f.:/,;|\"'\\[\\]{} #\\t\\n-]|AS|http://|SBL|ip|null){0,80}") {
        let families = FamilyTable::default();
        for spec in ours() {
            check(&spec, data.as_bytes(), &families);
        }
    }
}

/// Each fixture is claimed by exactly one provider (sidecar-configured ones by none or
/// one), and no provider but Shadowserver claims Shadowserver's reports.
#[test]
fn detection_is_unambiguous() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let shadowserver = dir.ends_with("shadowserver");
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".expected.json")
                || name.ends_with(".feed.json")
                || name.starts_with("PROVENANCE")
                || name.starts_with("LICENSE")
                || name.ends_with(".md")
            {
                continue;
            }
            let data = std::fs::read(&f).unwrap();
            let head = &data[..data.len().min(registry::HEAD_LEN)];
            // Generic is asked last and may overlap the others by design.
            let claims: Vec<String> = registry::PROVIDERS
                .iter()
                .filter(|p| p.name != "shadowserver" && p.name != "generic")
                .filter_map(|p| (p.detect)(Some(&name), head).map(|id| format!("{}:{id}", p.name)))
                .collect();
            let generic = (registry::PROVIDERS.last().unwrap().detect)(Some(&name), head);
            let claims = if claims.is_empty() { generic.into_iter().collect() } else { claims };
            let sidecar = f.with_file_name(format!("{name}.feed.json")).exists();
            if shadowserver {
                assert!(claims.is_empty(), "{name} (Shadowserver) claimed by {claims:?}");
            } else if sidecar {
                assert!(claims.len() <= 1, "{name} claimed by {claims:?}");
            } else {
                assert_eq!(claims.len(), 1, "{name} claimed by {claims:?}");
            }
        }
    }
}

//! The same commands on both backends: the demo's sample reports ingested into the
//! embedded SQLite store and into PostgreSQL (`[store] url`) read back identically through
//! every query command. Needs a PostgreSQL server (`BOTWATCH_PG_URL`,
//! scripts/postgres/start.sh): skipped, saying so, without one, and a failure in CI.

mod common;
use botwatch_store::postgres::TestSchema;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn samples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = std::fs::read_to_string(root.join("demo-samples.txt")).unwrap();
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| root.join("../feeds/tests/data").join(l))
        .collect()
}

#[test]
fn demo_samples_read_back_the_same_on_sqlite_and_postgresql() {
    let Some(schema) = TestSchema::new("demo_samples_read_back_the_same_on_sqlite_and_postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("lite.toml");
    let pg = dir.path().join("pg.toml");
    std::fs::write(&lite, format!("[store]\npath = {:?}\n", dir.path().join("b.db"))).unwrap();
    std::fs::write(
        &pg,
        format!("[store]\npath = {:?}\nurl = {:?}\n", dir.path().join("unused.db"), schema.url),
    )
    .unwrap();
    let (lite, pg) = (lite.to_str().unwrap(), pg.to_str().unwrap());
    let files: Vec<String> = samples().iter().map(|p| p.display().to_string()).collect();
    assert!(files.len() >= 5, "demo samples: {files:?}");
    for cfg in [lite, pg] {
        let mut args = vec!["--config", cfg, "ingest", "--quiet"];
        args.extend(files.iter().map(String::as_str));
        ok(&args);
        // Again: every report is already stored, on either backend.
        let again = ok(&[
            &["--config", cfg, "ingest", "--json"][..],
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat());
        for s in json_lines(&again) {
            assert_eq!((&s["new"], &s["events"]), (&Value::Bool(false), &Value::from(0)), "{s}");
        }
    }
    assert!(!dir.path().join("unused.db").exists(), "with [store] url nothing goes to the SQLite file");

    // The two ingests ran seconds apart: when botwatch read a line (time.observation, and
    // the seen times of sightings that carry no time of their own) differs by nature. The
    // samples date from 2024, so a time of today is such a reading time.
    let today = ok(&["--config", lite, "reports", "--format", "jsonl", "--limit", "1"]);
    let today = json_lines(&today)[0]["ingested_at"].as_str().unwrap()[..10].to_string();
    let normal = |out: String| -> Vec<Value> {
        let mut rows = json_lines(&out);
        for r in &mut rows {
            for v in r.as_object_mut().unwrap().values_mut() {
                if v.as_str().is_some_and(|s| s.starts_with(&today)) {
                    *v = Value::from("(time of ingest)");
                }
            }
        }
        rows
    };
    let same = |args: &[&str]| {
        let a = normal(ok(&[&["--config", lite][..], args].concat()));
        let b = normal(ok(&[&["--config", pg][..], args].concat()));
        assert_eq!(a.len(), b.len(), "{args:?}: as many rows on SQLite and PostgreSQL");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{args:?} differs between SQLite and PostgreSQL");
        }
        a
    };
    let events = same(&["events", "--format", "jsonl", "--limit", "100000"]);
    assert!(events.len() > 100, "the samples hold events");
    same(&["observations", "--format", "jsonl", "--limit", "100000"]);
    for by in ["family", "asn", "country", "day", "feed", "type"] {
        same(&["stats", "--by", by, "--format", "jsonl"]);
    }
    same(&["stats", "--by", "family", "--format", "jsonl", "--country", "de", "--since", "2024-01-01"]);
    same(&["events", "--format", "jsonl", "--cidr", "0.0.0.0/1"]);
    same(&["events", "--format", "jsonl", "--family", "mirai", "--limit", "50"]);
    same(&["observations", "--format", "jsonl", "--feed", "abusech_feodo", "--limit", "500"]);
    same(&["rejects", "--format", "jsonl", "--limit", "1000"]);
    same(&["export", "--format", "intelmq", "--limit", "500"]);
    let reports = same(&["reports", "--format", "jsonl", "--limit", "1000"]);
    assert_eq!(reports.len(), files.len());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    // Port 9 on loopback: nothing listens there.
    std::fs::write(&cfg, "[store]\nurl = \"postgres://botwatch:secret@127.0.0.1:9/botwatch\"\n").unwrap();
    let o = run(&["--config", cfg.to_str().unwrap(), "events"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("connecting to postgres://botwatch:***@127.0.0.1:9/botwatch"), "{err}");
    assert!(!err.contains("secret"), "the password is not shown: {err}");
    // A command that works on the embedded store only says so instead of writing a file.
    let o = run(&["--config", cfg.to_str().unwrap(), "cases", "list"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("[store] url"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

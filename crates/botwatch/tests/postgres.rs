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
    assert!(err.contains("refused"), "the cause is given: {err}");
    // Every command that opens the store says the same; none falls back to a file.
    let o = run(&["--config", cfg.to_str().unwrap(), "cases", "list"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("connecting to postgres://"), "{err}");
}

/// When the demos ran: `today` (a date) and the times from a few hours before the first run
/// to the end of the last (the desk's clock runs the notice delay, an hour, behind: in the
/// first hour after midnight UTC its times fall on the day before).
struct RunTime<'a> {
    today: &'a str,
    from: botwatch_model::Timestamp,
    to: botwatch_model::Timestamp,
}

impl RunTime<'_> {
    fn covers(&self, s: &str) -> bool {
        s.starts_with(self.today)
            || (s.len() > 10
                && botwatch_model::parse_timestamp(s).is_some_and(|t| self.from <= t && t <= self.to))
    }
}

/// Replaces values that are times of the run (when a demo ran: its ingest, its desk clock)
/// by a placeholder, recursively, and subscriber pseudonyms (keyed by a key each store
/// generates for itself) by their order of first appearance: two runs a minute apart on two
/// stores agree on everything else.
fn without_today(v: &mut Value, run: &RunTime<'_>, names: &mut Vec<String>) {
    match v {
        Value::String(s) if run.covers(s) => *s = "(today)".into(),
        Value::String(s) if s.contains("sub-") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("sub-") {
                out.push_str(&rest[..i]);
                let id: String = rest[i + 4..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
                let n = match names.iter().position(|x| *x == id) {
                    Some(n) => n,
                    None => {
                        names.push(id.clone());
                        names.len() - 1
                    }
                };
                out.push_str(&format!("subscriber#{n}"));
                rest = &rest[i + 4 + id.len()..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| without_today(x, run, names)),
        Value::Object(o) => o.values_mut().for_each(|x| without_today(x, run, names)),
        _ => {}
    }
}

/// `data-listed` and what the portal page names, without its per-visit nonce.
fn portal(base: &str, ip: &str) -> (bool, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::blocking::Client::builder().build().unwrap();
    let body = c.get(format!("{base}/check")).header("x-forwarded-for", ip).send().unwrap().text().unwrap();
    let listed = body.contains("data-listed=\"1\"");
    let cut = |s: &str| {
        s.split("name=\"nonce\" value=\"")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_string()
                } else {
                    part.split_once('"').map(|x| x.1).unwrap_or("").to_string()
                }
            })
            .collect::<String>()
    };
    (listed, cut(&body))
}

#[test]
fn the_demo_gives_the_same_results_on_sqlite_and_postgresql() {
    let Some(schema) = TestSchema::new("the_demo_gives_the_same_results_on_sqlite_and_postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let now = || botwatch_model::Clock::now(&botwatch_model::SystemClock);
    let today = || now().to_rfc3339()[..10].to_string();
    // The desk clock runs the notice delay (60 min) and a minute behind: three hours cover it.
    let from = botwatch_model::Timestamp(now().micros() - 3 * 3_600_000_000);
    // Both runs on one day (the demo's report day is yesterday): again if midnight passed.
    #[allow(clippy::never_loop)]
    let (lite, pg, day) = loop {
        let day = today();
        for (name, url) in [("lite", None), ("pg", Some(schema.url.as_str()))] {
            let db = dir.path().join(name).display().to_string();
            let mut args = vec!["demo", "--db", db.as_str(), "--synthetic-rows", "4000"];
            if let Some(u) = url {
                args.extend(["--store-url", u]);
            }
            let o = bin().current_dir(dir.path()).args(&args).output().unwrap();
            assert!(o.status.success(), "demo on {name}: {}", String::from_utf8_lossy(&o.stderr));
        }
        if today() == day {
            break (dir.path().join("lite.toml"), dir.path().join("pg.toml"), day);
        }
        panic!("the day changed during the test (midnight UTC); run it again");
    };
    let (lite, pg) = (lite.to_str().unwrap(), pg.to_str().unwrap());
    let run = RunTime { today: &day, from, to: botwatch_model::Timestamp(now().micros() + 60_000_000) };
    assert!(
        std::fs::read_to_string(pg).unwrap().contains("url = "),
        "the demo's config points at PostgreSQL"
    );
    let same = |args: &[&str]| -> Vec<Value> {
        let run = |cfg: &str| {
            let mut rows = json_lines(&ok(&[&["--config", cfg][..], args].concat()));
            let mut names = Vec::new();
            for r in &mut rows {
                without_today(r, &run, &mut names);
                // A notice's Message-ID ends in a tag keyed by the store's own secret.
                if let Some(m) = r.get_mut("message_id") {
                    let v = m.as_str().unwrap_or_default();
                    *m = Value::from(format!(
                        "{}@{}",
                        v.rsplit_once('-').map(|x| x.0).unwrap_or(v),
                        v.rsplit('@').next().unwrap_or("")
                    ));
                }
            }
            rows
        };
        let (a, b) = (run(lite), run(pg));
        assert_eq!(a.len(), b.len(), "{args:?}: as many rows on SQLite and PostgreSQL");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{args:?} differs between SQLite and PostgreSQL");
        }
        a
    };
    let events = same(&["events", "--format", "jsonl", "--limit", "1000000"]);
    assert!(events.len() > 4000);
    same(&["observations", "--format", "jsonl", "--limit", "1000000"]);
    for by in ["family", "asn", "country", "day", "feed", "type"] {
        same(&["stats", "--by", by, "--format", "jsonl"]);
    }
    let cases = same(&["cases", "list", "--json", "--limit", "1000000"]);
    assert!(cases.len() > 100, "the demo opens cases");
    same(&["compliance", "--json"]);
    let notices = same(&["notify", "list", "--json", "--limit", "100000"]);
    assert!(!notices.is_empty());
    // The portal: an infected subscriber's address is listed with the same page on both,
    // a clean one is not.
    let infected = cases.iter().find_map(|c| c["ip"].as_str().map(str::to_string)).unwrap();
    let (_a, base_a, _) = serve(Some(dir.path()), lite, "http");
    let (_b, base_b, _) = serve(Some(dir.path()), pg, "http");
    let (la, pa) = portal(&base_a, &infected);
    let (lb, pb) = portal(&base_b, &infected);
    assert!(la && lb, "{infected} is listed on both");
    assert_eq!(pa, pb, "the portal page for {infected} is the same");
    assert_eq!((portal(&base_a, "198.51.100.77").0, portal(&base_b, "198.51.100.77").0), (false, false));
}

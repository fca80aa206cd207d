//! The CLI end to end, as a user runs it: ingest real samples, query, export, re-ingest,
//! bad input, exit codes, and a crash in the middle of a report.

mod common;

use common::{bin, data, json_lines, ok, run};

#[test]
fn ingest_query_export_and_reingest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let db = db.to_str().unwrap();
    let sink = data("shadowserver/event4_sinkhole.csv");
    let drone = data("shadowserver/legacy_botnet_drone.csv");
    let feodo = data("abusech/feodo_ipblocklist_2024-04-04.csv");
    let out = ok(&[
        "ingest",
        "--db",
        db,
        "--quiet",
        sink.to_str().unwrap(),
        drone.to_str().unwrap(),
        feodo.to_str().unwrap(),
    ]);
    assert!(out.contains("shadowserver_event4_sinkhole"), "{out}");
    assert!(out.contains("shadowserver_botnet_drone"), "{out}");
    assert!(out.contains("abusech_feodo_csv"), "{out}");

    // Same files again: no-op.
    let again = ok(&["ingest", "--db", db, "--json", sink.to_str().unwrap()]);
    let s: serde_json::Value = serde_json::from_str(again.lines().next().unwrap()).unwrap();
    assert_eq!(s["new"], false);

    // Events as JSON lines, filtered.
    let jl = ok(&[
        "events",
        "--db",
        db,
        "--feed",
        "shadowserver_botnet_drone",
        "--format",
        "jsonl",
        "--limit",
        "5",
    ]);
    let lines: Vec<serde_json::Value> = jl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    for l in &lines {
        assert_eq!(l["feed.code"], "shadowserver_botnet_drone");
        assert_eq!(l["classification.type"], "infected-system");
        assert!(l["source.ip"].is_string());
        assert!(l["raw"].as_str().unwrap().contains(l["source.ip"].as_str().unwrap()));
    }
    let cc = lines[0]["source.geolocation.cc"].as_str().unwrap().to_string();
    let by_cc = ok(&["events", "--db", db, "--country", &cc, "--format", "csv"]);
    assert!(by_cc.lines().count() >= 2);

    // CIDR and IP filters.
    let ip = lines[0]["source.ip"].as_str().unwrap().to_string();
    let one = ok(&["events", "--db", db, "--ip", &ip, "--format", "jsonl"]);
    assert!(one.lines().count() >= 1);
    assert!(one.lines().all(|l| l.contains(&ip)));
    let cidr = format!("{}/16", ip);
    let net: ipnet::IpNet = cidr.parse::<ipnet::IpNet>().unwrap().trunc();
    let wide = ok(&["events", "--db", db, "--cidr", &net.to_string(), "--format", "jsonl"]);
    assert!(wide.lines().count() >= one.lines().count());

    // IntelMQ export: flat keys, raw in base64 decoding to the original line.
    let exp = ok(&["export", "--db", db, "--format", "intelmq", "--feed", "abusech_feodo_csv"]);
    let first: serde_json::Value = serde_json::from_str(exp.lines().next().unwrap()).unwrap();
    assert_eq!(first["feed.provider"], "abuse.ch");
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(first["raw"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(raw).unwrap().contains(first["source.ip"].as_str().unwrap()));
    assert!(first.as_object().unwrap().keys().all(|k| !k.starts_with("botwatch.")));

    // Stats and rejects.
    let stats = ok(&["stats", "--db", db, "--by", "family", "--format", "jsonl"]);
    assert!(stats.lines().count() >= 3);
    let rejects = ok(&["rejects", "--db", db, "--format", "jsonl"]);
    for l in rejects.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(r["line"].as_u64().unwrap() > 0);
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
    let reports = ok(&["reports", "--db", db, "--format", "jsonl"]);
    assert_eq!(reports.lines().count(), 3);
}

#[test]
fn unrecognised_and_broken_inputs_exit_3_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
    let gz = dir.path().join("cut.csv.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2]).unwrap();
    let o = run(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        "--quiet",
        junk.to_str().unwrap(),
        gz.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("junk.bin") && err.contains("recognise"), "{err}");
    assert!(err.contains("cut.csv.gz") && err.contains("decompress"), "{err}");
    // Unknown feed id: an error before anything is read.
    let o = run(&["ingest", "--db", db.to_str().unwrap(), "--feed", "nope", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    // Usage error.
    assert_eq!(run(&["ingest"]).status.code(), Some(2));
}

#[test]
fn every_command_has_help() {
    // Every command and subcommand the binary lists, found from its own help.
    fn commands(help: &str) -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            // Wrapped descriptions continue on lines indented deeper than a command's.
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| c != "help")
            .collect()
    }
    let top = commands(&ok(&["--help"]));
    assert!(top.len() >= 20, "{top:?}");
    let mut seen = 0;
    for cmd in &top {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage"), "{cmd}");
        seen += 1;
        for sub in commands(&out) {
            let out = ok(&[cmd, &sub, "--help"]);
            assert!(out.contains("Usage"), "{cmd} {sub}");
            seen += 1;
        }
    }
    assert!(seen >= 35, "{seen} commands with help");
    let feeds = ok(&["feeds", "--json"]);
    assert!(feeds.lines().count() > 200, "all Shadowserver report types and the other feeds");
}

#[test]
fn a_killed_ingest_leaves_the_report_wholly_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let big = dir.path().join("2026-11-24-event4_sinkhole-x-asn.csv");
    let o = bin().args(["synth", "--rows", "300000"]).output().unwrap();
    std::fs::write(&big, &o.stdout).unwrap();
    let mut child = bin()
        .args(["ingest", "--quiet", "--db", db.to_str().unwrap(), big.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Kill it while the report is being written (the database file exists by then).
    let start = std::time::Instant::now();
    while !db.exists() && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    let reports = run(&["reports", "--db", db.to_str().unwrap(), "--format", "jsonl"]);
    let text = String::from_utf8_lossy(&reports.stdout);
    let events: u64 = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["events"].as_u64().unwrap())
        .sum();
    assert!(events == 0 || events == 300_000, "partial report visible: {events}");
    let n = run(&["events", "--db", db.to_str().unwrap(), "--format", "csv", "--limit", "1000000"]);
    let rows = String::from_utf8_lossy(&n.stdout).lines().count().saturating_sub(1) as u64;
    assert_eq!(rows, events, "events table agrees with the report row");
    // And the report can be ingested (again) to completion.
    let out = ok(&["ingest", "--quiet", "--db", db.to_str().unwrap(), "--json", big.to_str().unwrap()]);
    let s: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(s["new"] == true || events == 300_000);
}

/// Issue 11 (10): logs written to a file carry no colour codes; `--log-format json` writes
/// one JSON object per line.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("2026-11-24-event4_sinkhole-test.csv");
    std::fs::write(&report, ok(&["synth", "--rows", "50", "--infected", "5", "--day", "2026-11-24"]))
        .unwrap();
    let db = dir.path().join("l.db");
    let (db, report) = (db.to_str().unwrap(), report.to_str().unwrap());
    let o = run(&["--log", "debug", "ingest", "--quiet", "--db", db, report]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.is_empty(), "debug logging says something");
    assert!(!err.contains('\u{1b}'), "no ANSI escapes in a log file: {err:?}");
    let second = dir.path().join("2026-11-25-event4_sinkhole-test.csv");
    std::fs::write(&second, ok(&["synth", "--rows", "60", "--infected", "5", "--day", "2026-11-25"]))
        .unwrap();
    let o = run(&[
        "--log",
        "debug",
        "--log-format",
        "json",
        "ingest",
        "--quiet",
        "--db",
        db,
        second.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
    }
}

/// Synthetic reports claim for each address the ASN the shipped IP data gives it: ownership
/// goes by the address, so a mismatch would put the demo's cases under no organisation.
#[test]
fn synthetic_rows_carry_the_asn_of_their_address() {
    let ipdb = botwatch_enrich::IpDb::builtin();
    let csv = ok(&["synth", "--rows", "3000", "--infected", "500", "--day", "2026-11-24"]);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let h = r.headers().unwrap().clone();
    let (ip_i, asn_i) =
        (h.iter().position(|c| c == "src_ip").unwrap(), h.iter().position(|c| c == "src_asn").unwrap());
    let mut n = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let ip: std::net::IpAddr = rec[ip_i].parse().unwrap();
        let claimed: u32 = rec[asn_i].parse().unwrap();
        assert_eq!(ipdb.lookup(ip).and_then(|i| i.asn), Some(claimed), "{ip}");
        n += 1;
    }
    assert_eq!(n, 3000);
}

/// Issue 11: personal data has a retention period: `botwatch prune` (and `serve`, daily)
/// deletes what is older; without a period configured it says so instead of guessing.
#[test]
fn prune_deletes_what_is_older_than_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let db = db.to_str().unwrap();
    let day = |back: i64| {
        use botwatch_model::Clock;
        botwatch_model::SystemClock.now().saturating_add_secs(-back * 86_400).to_rfc3339()[..10].to_string()
    };
    let (old, new) = (day(40), day(1));
    for (d, rows) in [(&old, "300"), (&new, "200")] {
        let p = dir.path().join(format!("{d}-event4_sinkhole-t.csv"));
        std::fs::write(&p, ok(&["synth", "--rows", rows, "--infected", "20", "--day", d])).unwrap();
        ok(&["ingest", "--quiet", "--db", db, p.to_str().unwrap()]);
    }
    let count = || json_lines(&ok(&["events", "--db", db, "--format", "jsonl", "--limit", "100000"])).len();
    assert_eq!(count(), 500);
    let o = run(&["prune", "--db", db]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("retain_days"));
    let cfg = dir.path().join("bw.toml");
    std::fs::write(&cfg, "[store]\nretain_days = 30\n").unwrap();
    let s: serde_json::Value =
        serde_json::from_str(ok(&["--config", cfg.to_str().unwrap(), "prune", "--db", db, "--json"]).trim())
            .unwrap();
    assert_eq!(s["store"]["events"], 300, "{s}");
    assert_eq!(count(), 200, "the recent day is kept");
    let obs = json_lines(&ok(&["observations", "--db", db, "--format", "jsonl", "--limit", "100000"]));
    assert!(
        obs.iter().all(|o| o["last_seen"].as_str().unwrap() >= new.as_str()),
        "only recent observations remain"
    );
    // Again: nothing more to delete.
    let s: serde_json::Value =
        serde_json::from_str(ok(&["--config", cfg.to_str().unwrap(), "prune", "--db", db, "--json"]).trim())
            .unwrap();
    assert_eq!(s["store"]["events"], 0);
}

/// Issue 11: a writer that finds the store's write lock taken (an ingest holds it for a whole
/// report) waits and says so, instead of failing with "database is locked" after 10 s.
#[test]
fn a_writer_waits_for_the_write_lock_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let p = dir.path().join("2026-11-24-event4_sinkhole-w.csv");
    std::fs::write(&p, ok(&["synth", "--rows", "100", "--infected", "10", "--day", "2026-11-24"])).unwrap();
    ok(&["ingest", "--quiet", "--db", db.to_str().unwrap(), p.to_str().unwrap()]);
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = bin()
        .args(["cases", "update", "--db", db.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its standard error, line by line, as it comes.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The lock is held longer than the 10 s after which the writer used to fail, and until
    // the writer has said it waits (however slowly a loaded machine starts it).
    let start = std::time::Instant::now();
    let mut err = String::new();
    while start.elapsed() < std::time::Duration::from_secs(11) || !err.contains("waiting") {
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "no progress said: {err}");
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            err.push_str(&line);
            err.push('\n');
        }
    }
    holder.execute_batch("COMMIT").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    err.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(status.success(), "{err}");
    assert!(err.contains("waiting") && err.contains("write lock"), "{err}");
    assert!(!err.contains("database is locked"), "{err}");
}

/// Issue 11 (STIX data loss): every address of an indicator's pattern (or an observed-data
/// object) is its own event, not one event and the rest "duplicates"; many addresses are
/// read in linear time.
#[test]
fn every_address_of_a_stix_pattern_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let bundle = |n: usize| {
        let ips: Vec<String> = (0..n)
            .map(|i| format!("[ipv4-addr:value = '10.{}.{}.{}']", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        serde_json::json!({
            "type": "bundle", "id": "bundle--8d4f1c2e-0000-4000-8000-000000000001",
            "objects": [{
                "type": "indicator", "spec_version": "2.1", "id": "indicator--8d4f1c2e-0000-4000-8000-000000000002",
                "created": "2026-11-20T00:00:00Z", "modified": "2026-11-20T00:00:00Z",
                "pattern_type": "stix", "pattern": ips.join(" OR "), "valid_from": "2026-11-20T00:00:00Z",
                "indicator_types": ["malicious-activity"]
            }]
        })
        .to_string()
    };
    for (name, n) in [("three.json", 3usize), ("many.json", 100_000)] {
        let p = dir.path().join(name);
        std::fs::write(&p, bundle(n)).unwrap();
        // A store each: the three addresses are also among the many (and would rightly be
        // duplicates of the first report there).
        let db = db.with_extension(name);
        let out = ok(&[
            "ingest",
            "--json",
            "--db",
            db.to_str().unwrap(),
            "--feed",
            "stix_bundle",
            p.to_str().unwrap(),
        ]);
        let s: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(
            (s["events"].as_u64(), s["duplicates"].as_u64()),
            (Some(n as u64), Some(0)),
            "{name}: {s}"
        );
    }
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    for (shell, marker) in
        [("bash", "_botwatch()"), ("zsh", "#compdef botwatch"), ("fish", "complete -c botwatch")]
    {
        let out = ok(&["completions", shell]);
        assert!(out.contains(marker), "{shell}");
        assert!(out.contains("taxii") && out.contains("federation"), "{shell} completes the subcommands");
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    ok(&["man", "--out", man.to_str().unwrap()]);
    for page in ["botwatch.1", "botwatch-ingest.1", "botwatch-taxii-pull.1", "botwatch-export.1"] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is roff");
    }
    // A closed pipe is an error exit, never a panic.
    let mut child = bin()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

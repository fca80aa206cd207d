//! Issue 11 (3, 4): what botwatch writes for other tools passes those tools' own
//! validators: IntelMQ 3.5's harmonisation (`MessageFactory`) for `export --format intelmq`,
//! and the `xarf` package (XARF v4 schemas) for the daily reports. Run on the demo's data:
//! every shipped real sample and a synthetic day.

mod common;

use common::{bin, json_lines, validate, validator_python};
use serde_json::Value;
use std::path::Path;

fn demo(dir: &Path) -> String {
    let o = bin().current_dir(dir).args(["demo", "--db", "botwatch-demo.db"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("botwatch-demo.toml").to_str().unwrap().to_string()
}

fn with(dir: &Path, cfg: &str, args: &[&str]) -> String {
    let o = bin().current_dir(dir).arg("--config").arg(cfg).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn intelmq_export_and_xarf_reports_pass_their_validators() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo(dir.path());

    // IntelMQ: every exported line, every key and value as IntelMQ's harmonisation wants it.
    let export = dir.path().join("events.jsonl");
    with(dir.path(), &cfg, &["export", "--format", "intelmq", "--output", export.to_str().unwrap()]);
    let lines = json_lines(&std::fs::read_to_string(&export).unwrap());
    assert!(lines.len() > 10_000, "the demo exports its events: {}", lines.len());
    let types: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l["classification.type"].as_str()).collect();
    assert!(types.contains("blacklist") && !types.contains("blocklist"), "{types:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["tlp"].as_str().is_none_or(|t| ["WHITE", "GREEN", "AMBER", "RED"].contains(&t)))
    );

    // XARF v4: the daily reports of the demo's busiest day.
    let cases = json_lines(&with(dir.path(), &cfg, &["cases", "list", "--json"]));
    let owned = cases.iter().find(|c| c["org"].is_string()).expect("a case in the constituency");
    let day = owned["last_seen"].as_str().unwrap()[..10].to_string();
    let out = dir.path().join("reports");
    let said = with(dir.path(), &cfg, &["reports", "daily", "--day", &day, "--out", out.to_str().unwrap()]);
    assert!(said.contains("xarf.jsonl"), "{said}");
    let mut reports = Vec::new();
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".xarf.jsonl") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            reports.extend(json_lines(&text).into_iter().map(|r| (e.path(), r)));
        }
    }
    assert!(!reports.is_empty(), "XARF reports written: {said}");
    for (path, r) in &reports {
        assert_eq!(r["xarf_version"], "4.2.0");
        let desc = r["description"].as_str().unwrap();
        // Named by name (not "Dear as3320"), with the source feed, time, port and ASN.
        assert!(!desc.starts_with("To as"), "{desc}");
        let tags: Vec<&str> = r["tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(
            tags.iter().any(|t| t.starts_with("feed:")) && !tags.contains(&"feed:botwatch"),
            "{tags:?} in {}",
            path.display()
        );
        assert!(tags.iter().any(|t| t.starts_with("asn:")), "{tags:?}");
        assert!(r["reporter"]["org"].as_str().is_some_and(|o| !o.contains('<')), "{r}");
        assert!(r["evidence"][0]["payload"].is_string(), "the feed's line as evidence: {r}");
    }
    let with_port = reports.iter().filter(|(_, r)| r["source_port"].is_u64()).count();
    assert!(with_port > 0, "source ports reach the reports");

    let Some(py) = validator_python() else { return };
    eprintln!("{}", validate(&py, "intelmq", &export).trim());
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".xarf.jsonl") {
            eprintln!("{}", validate(&py, "xarf", &e.path()).trim());
        }
    }
}

/// Rows of every shape (IPv6, no port, no transport, a family with odd characters, a
/// destination by name) give valid XARF.
#[test]
fn xarf_rows_of_every_shape_pass_the_validator() {
    use botwatch_model::Timestamp;
    use botwatch_notify::reports::{Party, ReportMeta, ReportRow, xarf_jsonl};
    let reporter = Party::from_mailbox("\"Example CERT\" <abuse@cert.example>").unwrap();
    let meta = ReportMeta::new(
        "isp-a",
        "ISP A GmbH",
        "2026-11-24",
        Timestamp::from_secs(1_795_500_000),
        reporter,
        "abuse@isp-a.example",
    );
    let row =
        |ip: &str, port: Option<u16>, proto: Option<&str>, malware: Option<&str>, dest: Option<&str>| {
            ReportRow {
                time: Timestamp::from_secs(1_795_480_000),
                ip: ip.parse().unwrap(),
                port,
                asn: Some(64496),
                classification_type: "infected-system".into(),
                malware: malware.map(Into::into),
                feed: "shadowserver_event4_sinkhole".into(),
                subscriber: None,
                destination: dest.map(Into::into),
                protocol: proto.map(Into::into),
                raw: Some(b"\"2026-11-24 10:00:00\",\"192.0.2.7\",40001".to_vec()),
                case_id: Some(1),
            }
        };
    let rows = vec![
        row("192.0.2.7", Some(40001), Some("tcp"), Some("emotet"), Some("198.51.100.7:443")),
        row("2001:db8::7", None, Some("UDP"), Some("Zeus.Gameover v2 ü"), Some("[2001:db8::1]:53")),
        row("192.0.2.8", Some(1), None, None, Some("c2.example")),
        row("192.0.2.9", Some(65535), Some("icmp"), Some("mirai"), None),
    ];
    let text = xarf_jsonl(&meta, &rows);
    let reports = json_lines(std::str::from_utf8(&text).unwrap());
    assert_eq!(reports.len(), 4);
    assert_eq!(
        (reports[0]["category"].as_str(), reports[0]["type"].as_str()),
        (Some("connection"), Some("infected_host"))
    );
    assert_eq!(reports[0]["destination_port"], 443);
    assert_eq!(
        (reports[2]["category"].as_str(), reports[2]["type"].as_str()),
        (Some("infrastructure"), Some("botnet"))
    );
    assert_eq!(reports[3]["type"], "botnet", "icmp is not an infected_host protocol");
    assert!(reports[1].get("source_port").is_none());
    // Regenerating gives the same ids (receivers deduplicate on them).
    assert_eq!(xarf_jsonl(&meta, &rows), text);
    let Some(py) = validator_python() else { return };
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &text).unwrap();
    eprintln!("{}", validate(&py, "xarf", f.path()).trim());
}

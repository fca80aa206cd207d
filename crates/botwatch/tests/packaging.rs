//! What an operator installs: the systemd unit (checked by systemd's own `systemd-analyze
//! verify`), the Dockerfile (built where a container engine answers), `--version`, where the
//! config is found, and reports that arrive as mail files on the command line.

mod common;

use common::{bin, ok};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

fn required() -> bool {
    std::env::var("BOTWATCH_REQUIRE_PEERS").as_deref() == Ok("1")
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(!required(), "BOTWATCH_REQUIRE_PEERS=1 but systemd-analyze is missing");
        eprintln!("skipped: no systemd-analyze");
        return;
    }
    let unit = std::fs::read_to_string(repo("packaging/botwatch.service")).unwrap();
    // Hardened and supervised as the unit promises.
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=botwatch",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(key), "the unit sets {key:?}");
    }
    // Verified as installed, with the binary where the unit expects it: here, the one built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("botwatch.service");
    std::fs::write(&path, unit.replace("/usr/bin/botwatch", env!("CARGO_BIN_EXE_botwatch"))).unwrap();
    let o = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // systemd only warns about an unknown or misspelt setting: any word about the unit fails.
    let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("botwatch.service")).collect();
    assert!(o.status.success() && about_unit.is_empty(), "systemd-analyze verify: {err}");
    // A deliberate mistake is caught the same way, so the check can fail.
    std::fs::write(
        &path,
        unit.replace("ProtectSystem=strict", "ProtectSystem=bogus")
            .replace("/usr/bin/botwatch", env!("CARGO_BIN_EXE_botwatch")),
    )
    .unwrap();
    let o = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("botwatch.service"), "a bad setting is reported");
    // The command line it runs parses.
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=/usr/bin/botwatch ")).unwrap();
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args, ["run", "--config", "/etc/botwatch/botwatch.toml"]);
    assert!(ok(&["run", "--help"]).contains("SIGHUP"));
}

#[test]
fn the_dockerfile_builds_where_an_engine_runs() {
    let df = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert_eq!(df.lines().filter(|l| l.starts_with("FROM ")).count(), 2, "multi-stage");
    assert!(df.contains("--profile dist") && df.contains("--locked"), "the stripped release build");
    let user = df.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(df.contains("ENTRYPOINT [\"/usr/local/bin/botwatch\"]") && df.contains("CMD [\"run\"]"));
    let engine = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    if !engine {
        eprintln!("skipped: no container engine answers `docker info`; the Dockerfile was only read");
        return;
    }
    let o = Command::new("docker")
        .args(["build", "-t", "botwatch:test", "."])
        .current_dir(repo(""))
        .output()
        .unwrap();
    assert!(o.status.success(), "docker build: {}", String::from_utf8_lossy(&o.stderr));
    let v = Command::new("docker").args(["run", "--rm", "botwatch:test", "--version"]).output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("botwatch"));
    let who = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "id", "botwatch:test", "-u"])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&who.stdout).trim(), "0", "not root in the container");
}

#[test]
fn version_names_the_commit_and_the_ip_data() {
    let v = ok(&["--version"]);
    assert!(v.starts_with(concat!("botwatch ", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(v.contains("commit "), "{v}");
    // The shipped ip-location-db release, as its provenance record names it.
    let prov = std::fs::read_to_string(repo("crates/enrich/data/PROVENANCE.txt")).unwrap();
    let release = prov.split("ip-location-db-asn-").nth(1).unwrap().split(".tgz").next().unwrap();
    let stamp = release.rsplit('.').next().unwrap();
    let date = format!("{}-{}-{}", &stamp[..4], &stamp[4..6], &stamp[6..8]);
    assert!(v.contains(&format!("IP→ASN data {date}")) && v.contains(release), "{v}");
}

#[test]
fn the_config_is_found_where_operators_put_it() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.csv");
    std::fs::write(&report, ok(&["synth", "--rows", "10", "--infected", "5"])).unwrap();
    // ./botwatch.toml in the working directory.
    std::fs::write(dir.path().join("botwatch.toml"), "[store]\npath = \"from-cwd.db\"\n").unwrap();
    let o = bin().current_dir(dir.path()).args(["ingest", "--quiet"]).arg(&report).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("from-cwd.db").exists());
    // BOTWATCH_CONFIG wins over it, and --config over both.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[store]\npath = \"from-env.db\"\n").unwrap();
    let o = bin()
        .current_dir(dir.path())
        .env("BOTWATCH_CONFIG", &other)
        .args(["ingest", "--quiet"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success() && dir.path().join("from-env.db").exists());
    let third = dir.path().join("third.toml");
    std::fs::write(&third, "[store]\npath = \"from-flag.db\"\n").unwrap();
    let o = bin()
        .current_dir(dir.path())
        .env("BOTWATCH_CONFIG", &other)
        .args(["--config", third.to_str().unwrap(), "ingest", "--quiet"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success() && dir.path().join("from-flag.db").exists());
    // A named config that is missing is an error, not the defaults.
    let o = bin().args(["--config", "/nonexistent/botwatch.toml", "feeds"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nonexistent/botwatch.toml"));
    // Secrets named as env:/file: are read from there; a missing one is a clear error.
    std::fs::write(
        dir.path().join("secret.toml"),
        "[store]\npath = \"s.db\"\n\n[notify]\nsecret = \"env:BOTWATCH_TEST_UNSET_SECRET\"\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--config", "secret.toml", "ingest", "--quiet"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .current_dir(dir.path())
        .args(["--config", "secret.toml", "notify", "run"])
        .env_remove("BOTWATCH_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("BOTWATCH_TEST_UNSET_SECRET"), "{err}");
}

/// A mail as a CERT receives it, built by Python's email package (an independent writer):
/// the report as an attachment, gzipped, plus a signature part that is not a report.
fn write_mail(path: &Path, csv: &str, name: &str, message_id: &str) {
    let script = r#"
import gzip, sys
from email.message import EmailMessage
path, csv, name, mid = sys.argv[1:5]
m = EmailMessage()
m["From"] = "Shadowserver <autoreports@shadowserver.org>"
m["To"] = "cert@example.org"
m["Subject"] = "[Shadowserver] report"
m["Message-ID"] = mid
m.set_content("Attached.")
m.add_attachment(gzip.compress(open(csv, "rb").read()), maintype="application", subtype="gzip", filename=name + ".gz")
m.add_attachment(b"-----BEGIN PGP SIGNATURE-----\n", maintype="application", subtype="pgp-signature", filename="signature.asc")
open(path, "wb").write(m.as_bytes())
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(csv)
        .args([name, message_id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn mail_files_and_mboxes_ingest_their_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let day = "2026-11-24";
    let csv = p("r.csv");
    std::fs::write(&csv, ok(&["synth", "--rows", "120", "--infected", "30", "--day", day, "--seed", "71"]))
        .unwrap();
    let csv2 = p("r2.csv");
    std::fs::write(&csv2, ok(&["synth", "--rows", "80", "--infected", "20", "--day", day, "--seed", "81"]))
        .unwrap();
    let name = format!("{day}-event4_sinkhole-example-geo.csv");
    write_mail(&p("report.eml"), csv.to_str().unwrap(), &name, "<one@example>");
    write_mail(&p("two.eml"), csv2.to_str().unwrap(), &name, "<two@example>");
    let db = p("m.db");
    let db = db.to_str().unwrap();
    let out = ok(&["ingest", "--db", db, "--json", p("report.eml").to_str().unwrap()]);
    let r = common::json_lines(&out);
    assert_eq!(r.len(), 1, "one report in the mail: {out}");
    assert_eq!(
        (r[0]["feed"].as_str(), r[0]["events"].as_u64()),
        (Some("shadowserver_event4_sinkhole"), Some(120))
    );
    // An mbox of both mails: the first is recognised as already stored, the second is new.
    let mut mbox = Vec::new();
    for f in ["report.eml", "two.eml"] {
        mbox.extend_from_slice(b"From autoreports@shadowserver.org Tue Nov 24 06:00:00 2026\n");
        mbox.extend_from_slice(
            &std::fs::read(p(f)).unwrap().iter().copied().filter(|&b| b != b'\r').collect::<Vec<_>>(),
        );
        mbox.push(b'\n');
    }
    std::fs::write(p("reports.mbox"), mbox).unwrap();
    let out = ok(&["ingest", "--db", db, "--json", p("reports.mbox").to_str().unwrap()]);
    let r = common::json_lines(&out);
    assert_eq!(r.len(), 2, "{out}");
    assert_eq!(r.iter().filter(|v| v["new"] == true).map(|v| v["events"].as_u64().unwrap()).sum::<u64>(), 80);
    assert_eq!(r.iter().filter(|v| v["new"] == false).count(), 1, "the first mail's report counted once");
    // A mail with nothing that is a report: a clear error, exit code 3.
    std::fs::write(
        p("empty.eml"),
        "From: a@example.org\r\nSubject: hello\r\nContent-Type: image/png; name=x.png\r\n\r\n\u{1}",
    )
    .unwrap();
    let o = bin().args(["ingest", "--db", db, p("empty.eml").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not ingested"));
    let stats: Vec<Value> = common::json_lines(&ok(&["reports", "--db", db, "--format", "jsonl"]));
    assert_eq!(stats.len(), 2);
}

#[test]
fn xarf_reports_made_by_the_xarf_library_ingest_by_mail() {
    // The reference library (PyPI `xarf`, in the validators' virtualenv) writes the report;
    // Python's email package mails it as an attachment; botwatch reads the mail.
    let Some(py) = common::validator_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("xarf.eml");
    let script = r#"
import json, sys
from email.message import EmailMessage
from xarf.generator import create_report
contact = {"org": "Example CERT", "contact": "cert@example.org", "domain": "example.org"}
r = create_report(category="connection", type="infected_host", source_identifier="192.0.2.44",
    reporter=contact, sender=contact, protocol="tcp", bot_type="malicious", bot_name="qakbot",
    first_seen="2026-11-24T10:00:00Z", source_port=51000)
assert not r.errors, r.errors
doc = r.report.model_dump(mode="json", exclude_none=True, by_alias=True)
m = EmailMessage()
m["From"] = "Example CERT <cert@example.org>"
m["To"] = "abuse@isp.example"
m["Subject"] = "XARF report"
m["Message-ID"] = "<xarf-1@example.org>"
m.set_content("An infected host in your network; the XARF report is attached.")
m.add_attachment(json.dumps(doc).encode(), maintype="application", subtype="json", filename="report.json")
open(sys.argv[1], "wb").write(m.as_bytes())
"#;
    let o = Command::new(&py).args(["-c", script]).arg(&mail).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let r = common::json_lines(&ok(&["ingest", "--db", db, "--json", mail.to_str().unwrap()]));
    assert_eq!(
        (r[0]["feed"].as_str(), r[0]["events"].as_u64(), r[0]["rejects"].as_u64()),
        (Some("xarf_v4"), Some(1), Some(0)),
        "{r:?}"
    );
    let ev = common::json_lines(&ok(&["events", "--db", db, "--format", "jsonl"]));
    assert_eq!(ev[0]["source.ip"], "192.0.2.44");
    assert_eq!(ev[0]["classification.type"], "infected-system");
    assert_eq!(ev[0]["malware.name"], "qakbot");
}

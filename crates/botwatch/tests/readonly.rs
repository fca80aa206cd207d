//! Issue 11 (7): a user who may read the store but not write it (nor its directory) can
//! query, export and serve it; a command that must write says so in one clear error.
//! As root the commands run as `nobody` (setpriv); otherwise the directory is made read-only.

mod common;

use common::{json_lines, ok};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// botwatch as a user who cannot write the store's directory.
fn reader() -> Command {
    let exe = env!("CARGO_BIN_EXE_botwatch");
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", exe]);
        c
    } else {
        Command::new(exe)
    };
    c.env_remove("BOTWATCH_DB").env_remove("BOTWATCH_CONFIG").env("HOME", "/tmp");
    c
}

fn as_reader(args: &[&str]) -> Output {
    reader().args(args).output().unwrap()
}

#[test]
fn a_read_only_user_can_query_export_and_serve_and_writes_say_why() {
    if is_root() && Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: running as root without setpriv to drop to another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("x.db");
    let db = db.to_str().unwrap();
    let report = tmp.path().join("2026-11-24-event4_sinkhole-test.csv");
    std::fs::write(&report, ok(&["synth", "--rows", "300", "--infected", "30", "--day", "2026-11-24"]))
        .unwrap();
    ok(&["ingest", "--quiet", "--db", db, report.to_str().unwrap()]);
    ok(&["cases", "update", "--db", db]);
    let created: serde_json::Value = serde_json::from_str(
        ok(&["token", "create", "--db", db, "--name", "ro", "--role", "admin", "--json"]).trim(),
    )
    .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let want = ok(&["stats", "--db", db, "--by", "family"]);
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        v.sort();
        v
    };
    let before = listing();
    // Readable by all, writable by nobody but root (which setpriv drops).
    for p in [tmp.path(), dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let restore = || {
        for p in [tmp.path(), dir.as_path()] {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        }
    };

    let run_ok = |args: &[&str]| {
        let o = as_reader(args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(run_ok(&["stats", "--db", db, "--by", "family"]), want);
    assert!(!json_lines(&run_ok(&["events", "--db", db, "--format", "jsonl", "--limit", "3"])).is_empty());
    assert!(run_ok(&["export", "--db", db, "--format", "intelmq"]).lines().count() >= 300);
    run_ok(&["observations", "--db", db, "--limit", "2"]);
    run_ok(&["reports", "--db", db]);
    run_ok(&["rejects", "--db", db]);
    run_ok(&["cases", "list", "--db", db]);
    run_ok(&["compliance", "--db", db]);
    assert_eq!(listing(), before, "nothing was created beside the store");

    // A write: one error that says why, not "attempt to write a readonly database".
    let o = as_reader(&["cases", "update", "--db", db]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot write the store") && err.contains("read-only"), "{err}");
    assert!(!err.contains("attempt to write a readonly database"), "{err}");

    // serve, read-only: pages and the API answer.
    let mut cmd = reader();
    let mut child = common::Running(
        cmd.args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.0.stdout.take().unwrap()), &mut line)
        .unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| {
        let mut e = String::new();
        let _ = std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut e);
        panic!("serve did not start read-only: {line} {e}")
    });
    botwatch_notify::webhook::install_crypto_provider();
    let health = reqwest::blocking::get(format!("{}/healthz", base.trim_end_matches('/'))).unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let page = reqwest::blocking::get(format!("{}/check", base.trim_end_matches('/'))).unwrap();
    assert_eq!(page.status().as_u16(), 200);
    // The API reads; a case action cannot write here and says so (503, not a 500).
    let c = reqwest::blocking::Client::new();
    let cases = c
        .get(format!("{}/api/v1/cases?limit=1", base.trim_end_matches('/')))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(cases.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_str(&cases.text().unwrap()).unwrap();
    let id = v["items"][0]["id"].as_i64().unwrap();
    let ack = c
        .post(format!("{}/api/v1/cases/{id}/ack", base.trim_end_matches('/')))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(ack.status().as_u16(), 503, "{:?}", ack.text());
    drop(child);
    restore();
}

//! The flow detectors on real captures kept in the repository (tests/data/flows/logs, each
//! with its provenance), so they run without `../shared`: the AndroidTester RAT of
//! Stratosphere's 003, found by its uploads to 1337/tcp and by nothing else, and Slips'
//! test2 phone, whose traffic holds nothing any detector should call infected.

use botwatch_telemetry::detect::flows::FlowMemory;
use botwatch_telemetry::detect::scope::Scope;
use botwatch_telemetry::detect::{FindingKind, beacon, flood, scan, spam, upload};
use botwatch_telemetry::flow::log::{LogKind, read_log};
use std::path::PathBuf;

fn memory(file: &str, kind: LogKind) -> FlowMemory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows/logs").join(file);
    let data = std::fs::read(&path).unwrap();
    let (mut out, mut rejects) = (Vec::new(), Vec::new());
    read_log(&data, kind, &mut out, &mut rejects).unwrap();
    assert!(rejects.is_empty(), "{rejects:?}");
    let mut m = FlowMemory::default();
    for f in &out {
        m.observe(f);
    }
    m
}

/// Every flow detector's findings, by kind and client.
fn findings(m: &mut FlowMemory) -> Vec<(FindingKind, String, String)> {
    let scope = Scope::default();
    let mut all = scan::find(m, &Default::default(), &scope);
    all.extend(upload::find(m, &Default::default(), &scope).0);
    all.extend(spam::find(m, &Default::default(), &scope).0);
    all.extend(flood::find(m, &Default::default(), &scope));
    all.extend(beacon::find(m, &Default::default(), &scope).0);
    all.into_iter().map(|f| (f.kind, f.client.to_string(), f.samples.join(" "))).collect()
}

#[test]
fn the_android_rat_is_found_by_its_uploads_alone() {
    let mut m = memory("003-androidtester-conn.log", LogKind::Zeek);
    let found = findings(&mut m);
    assert_eq!(found, vec![(FindingKind::Upload, "10.8.0.61".to_string(), "147.32.83.234:1337".to_string())]);
    let (up, _) = upload::find(&m, &Default::default(), &Scope::default());
    assert!(
        up[0].reason.starts_with("sent 43.8 MB to 147.32.83.234:1337/tcp in 12 connections"),
        "{}",
        up[0].reason
    );
}

#[test]
fn a_phone_s_ordinary_traffic_is_nothing() {
    // The first 300 flows of Slips' test2: Facebook, Google, Telegram on 443 and 5222.
    let mut m = memory("test2-malicious.binetflow", LogKind::Argus);
    assert_eq!(findings(&mut m), vec![]);
}

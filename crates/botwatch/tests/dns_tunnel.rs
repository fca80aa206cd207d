//! Real DNS tunnels (dns2tcp and iodine, captured here; `crates/telemetry/tests/data/dns/tunnel`),
//! gzipped as a sensor archives its captures: `scan` flags each tunnelling client as a tunnel,
//! and nothing else in them, and no client of the repository's other DNS telemetry as one.

use botwatch::sensor::{Flagged, Scanner, SensorSection, scan_path};
use botwatch_telemetry::matcher::Matcher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../telemetry/tests/data/dns")
}

fn scan(files: &[PathBuf]) -> Vec<Flagged> {
    scan_with(files, &SensorSection::default())
}

fn scan_with(files: &[PathBuf], cfg: &SensorSection) -> Vec<Flagged> {
    let mut s = Scanner::new(Arc::new(Matcher::empty()), cfg, true);
    for f in files {
        for r in scan_path(&mut s, f, &Default::default(), None, &|_| {}) {
            r.unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        }
    }
    s.finish()
}

#[test]
fn dns2tcp_uploads_and_downloads_are_tunnels() {
    for (file, client) in
        [("dns2tcp-upload.pcap.gz", "10.20.30.40"), ("dns2tcp-download-head.pcap.gz", "10.20.30.41")]
    {
        let got = scan(&[data().join("tunnel").join(file)]);
        let found: Vec<(String, &str)> =
            got.iter().map(|f| (f.client.to_string(), f.reason.as_str())).collect();
        assert_eq!(found, [(client.to_string(), "tunnel")], "{file}: {got:?}");
        eprintln!("{file}: {}", got[0].detail);
        assert!(got[0].detail.contains("under example.com"), "{}", got[0].detail);
    }
}

/// Half an hour of an iodine tunnel left idle: its handshake, then a `NULL` query for a fresh
/// eight-character name every four seconds. Far under the first bar (15 names a minute); the
/// slow bar, which counts only names asked for types that carry data, finds it.
#[test]
fn an_idle_iodine_tunnel_meets_the_slow_bar_only() {
    let file = data().join("tunnel/iodine-idle.pcap.gz");
    let got = scan(std::slice::from_ref(&file));
    let found: Vec<(String, &str)> = got.iter().map(|f| (f.client.to_string(), f.reason.as_str())).collect();
    assert_eq!(found, [("10.20.30.42".to_string(), "tunnel")], "{got:?}");
    eprintln!("iodine-idle.pcap.gz: {}", got[0].detail);
    assert!(got[0].detail.contains("under example.com"), "{}", got[0].detail);
    assert!(got[0].detail.contains("the bar for a tunnel left idle"), "{}", got[0].detail);
    let mut fast_only = SensorSection::default();
    fast_only.dns.tunnel.slow.min_names = 0;
    let got = scan_with(&[file], &fast_only);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn no_other_dns_telemetry_of_the_repository_is_a_tunnel() {
    let mut files = Vec::new();
    let mut dirs = vec![data(), data().join("../flows")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("tunnel") {
                    dirs.push(p);
                }
            } else if !p.extension().is_some_and(|x| x == "json" || x == "txt" || x == "md")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("LICENSE"))
            {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let mut s = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), true);
        // Files of no telemetry format (labels, configurations) are refused; that is not
        // what this test is about.
        let _ = scan_path(&mut s, &f, &Default::default(), None, &|_| {});
        let tunnels: Vec<_> = s.finish().into_iter().filter(|f| f.reason == "tunnel").collect();
        assert!(tunnels.is_empty(), "{}: {tunnels:?}", f.display());
    }
}

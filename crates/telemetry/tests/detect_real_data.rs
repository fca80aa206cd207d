//! Detectors on real captures from /work/shared/data (or `$BOTWATCH_SHARED_DATA`):
//! - the generated Unbound query/reply log with its ground truth (two Simda-infected clients,
//!   eight clean ones);
//! - a Zeek conn.log excerpt of CTU-SME-11 with expert labels (RemcosRAT reconnect loop);
//! - the CTU-13 scenario 1 sample, which has no addresses or times, so no series can be built.
//!
//! The parsers here are deliberately minimal test helpers; the real decoders live in `dns/` and
//! `flow/`.

use botwatch_model::Timestamp;
use botwatch_telemetry::detect::beacon::{BeaconConfig, BeaconDetector};
use botwatch_telemetry::detect::{DnsDetector, DnsDetectorConfig, FindingKind};
use botwatch_telemetry::record::{DnsRecord, FlowRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BOTWATCH_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.is_dir().then_some(dir)
}

/// `Nov 25 17:20:05 unbound[29117:0] reply: 127.0.0.27 detik.com. A IN NOERROR 0.000000 1 54`;
/// the syslog time has no year, seconds of the month are enough for a window.
fn parse_unbound_reply(line: &str) -> Option<DnsRecord> {
    let (head, rest) = line.split_once(" reply: ")?;
    let mut t = head.split_whitespace();
    let (_month, day, hms) = (t.next()?, t.next()?.parse::<i64>().ok()?, t.next()?);
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let secs = day * 86_400 + hms.next()?? * 3600 + hms.next()?? * 60 + hms.next()??;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(DnsRecord {
        time: Timestamp::from_secs(secs),
        client: f.first()?.parse().ok()?,
        client_port: None,
        qname: f.get(1)?.trim_end_matches('.').to_ascii_lowercase(),
        qtype: f.get(2)?.to_string().into(),
        rcode: Some(f.get(4)?.to_string().into()),
        answers: vec![],
        server: None,
    })
}

#[test]
fn unbound_log_flags_both_infected_clients_and_no_clean_one() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data absent");
        return;
    };
    let base = dir.join("dns/generated_unbound");
    let truth = std::fs::read_to_string(base.join("ground_truth.csv")).unwrap();
    let mut infected = BTreeSet::new();
    let mut clean = BTreeSet::new();
    for l in truth.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f[1].starts_with("infected") {
            infected.insert(f[0].to_string())
        } else {
            clean.insert(f[0].to_string())
        };
    }
    assert_eq!((infected.len(), clean.len()), (2, 8));
    let log = std::fs::read_to_string(base.join("unbound_querylog_replylog.log")).unwrap();
    let mut d = DnsDetector::new(DnsDetectorConfig::default());
    let mut replies = 0;
    for line in log.lines() {
        if let Some(r) = parse_unbound_reply(line) {
            d.observe(&r);
            replies += 1;
        }
    }
    assert_eq!(replies, 840);
    let findings = d.finish();
    for f in &findings {
        println!("{} {:?} {:.2} {} | {:?}", f.client, f.kind, f.confidence, f.reason, &f.samples[..3]);
    }
    let flagged: BTreeSet<String> = findings.iter().map(|f| f.client.to_string()).collect();
    assert_eq!(flagged, infected, "{findings:#?}");
    let bursts: BTreeSet<String> =
        findings.iter().filter(|f| f.kind == FindingKind::NxBurst).map(|f| f.client.to_string()).collect();
    assert_eq!(bursts, infected);
    assert!(findings.iter().all(|f| f.confidence > 0.5));
}

/// Zeek conn.log: ts, uid, orig_h, orig_p, resp_h, resp_p, proto, …, orig_bytes (9), …, label.
fn parse_conn_log(text: &str) -> Vec<(FlowRecord, String)> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 22 {
            continue;
        }
        let (Ok(ts), Ok(src), Ok(dst)) = (f[0].parse::<f64>(), f[2].parse(), f[4].parse()) else { continue };
        let start = Timestamp((ts * 1e6) as i64);
        out.push((
            FlowRecord {
                start,
                end: start,
                src,
                dst,
                src_port: f[3].parse().unwrap_or(0),
                dst_port: f[5].parse().unwrap_or(0),
                proto: if f[6] == "udp" { 17 } else { 6 },
                packets: f[16].parse().unwrap_or(0),
                bytes: f[17].parse().unwrap_or(0),
                resp_bytes: None,
                exporter: None,
                answered: None,
                local_orig: None,
                local_resp: None,
            },
            f[f.len() - 1].to_string(),
        ));
    }
    out
}

#[test]
fn remcos_reconnect_loop_is_a_beacon_and_benign_flows_are_not() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data absent");
        return;
    };
    let path = dir.join("flows/slips_dataset/test18-malicious-ctu-sme-11-win/conn.log.labeled");
    let flows = parse_conn_log(&std::fs::read_to_string(path).unwrap());
    assert!(flows.len() > 700);
    let mut d = BeaconDetector::new(BeaconConfig::default());
    let mut label_of = BTreeMap::new();
    for (f, label) in &flows {
        d.observe(f);
        label_of.insert(format!("{}:{}", f.dst, f.dst_port), label.clone());
    }
    let findings = d.finish(&botwatch_telemetry::detect::scope::Scope::default());
    for f in &findings {
        println!("{} {:.2} {} ({})", f.client, f.confidence, f.reason, label_of[&f.samples[0]]);
    }
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].client.to_string(), "192.168.1.107");
    assert_eq!(findings[0].samples, vec!["66.63.168.35:5888".to_string()]);
    assert!(label_of[&findings[0].samples[0]].contains("RemcosRAT"));
}

#[test]
fn ctu13_sample_has_no_series_to_test() {
    let Some(dir) = data_dir() else {
        println!("skipped: BOTWATCH_SHARED_DATA not set and ../shared/data absent");
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("flows/ctu13_sample/ctu13_scenario1_sample_10k.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let label = header.iter().position(|h| *h == "Label").unwrap();
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        if let Some(v) = l.split(',').nth(label) {
            let class = v.split('-').next().unwrap_or(v).trim_start_matches("flow=").to_string();
            *labels.entry(class).or_default() += 1;
        }
    }
    println!("CTU-13 scenario 1 sample: {labels:?}; columns {header:?}");
    // Beaconing needs who talked to whom and when; this sample dropped all three, so it can only
    // say how many botnet flows there are, not which series they form.
    for missing in ["StartTime", "SrcAddr", "DstAddr", "Dport"] {
        assert!(!header.contains(&missing), "{missing} present: the beacon test could use it now");
    }
    assert_eq!(labels.values().sum::<usize>(), 10_000);
    assert!(labels.get("From").copied().unwrap_or(0) > 0, "{labels:?}");
}

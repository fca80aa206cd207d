//! Every DNS sample under tests/data/dns decoded and summarised against its golden
//! `<file>.expected.json` (rewritten with `UPDATE_GOLDEN=1`), plus what must hold for every
//! decoder, and the cross-check of the generated Unbound sample's three views (dnstap,
//! query/reply log, ground truth).

use botwatch_model::{Timestamp, parse_timestamp};
use botwatch_telemetry::dns::{self, DnsFormat, ReadOptions};
use botwatch_telemetry::record::DnsRecord;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns")
}

/// The samples were made on 2026-11-25; syslog stamps need a year from somewhere.
fn opts() -> ReadOptions {
    ReadOptions { reference: Some(parse_timestamp("2026-11-26T00:00:00Z").unwrap()) }
}

fn inputs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(data_dir()).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let is_input = [".fstrm", ".pcap", ".log"].iter().any(|e| name.ends_with(e));
            if is_input {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn summary(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    let format = dns::detect(&bytes, &name).unwrap_or_else(|| panic!("{name}: not detected"));
    let (records, rejects, stats) = dns::read_with(&bytes, &name, &opts()).unwrap();
    let clients: BTreeSet<_> = records.iter().map(|r| r.client).collect();
    let qnames: BTreeSet<_> = records.iter().map(|r| r.qname.as_str()).collect();
    let mut rcodes = BTreeMap::new();
    let mut qtypes = BTreeMap::new();
    for r in &records {
        *rcodes.entry(r.rcode.clone().unwrap_or_else(|| "-".into())).or_insert(0) += 1;
        *qtypes.entry(r.qtype.clone()).or_insert(0) += 1;
    }
    json!({
        "format": format,
        "records": records.len(),
        "distinct_clients": clients.len(),
        "distinct_qnames": qnames.len(),
        "with_answers": records.iter().filter(|r| !r.answers.is_empty()).count(),
        "rcodes": rcodes,
        "qtypes": qtypes,
        "first_records": records.iter().take(4).collect::<Vec<_>>(),
        "last_record": records.last(),
        "rejects": rejects.iter().take(5).map(|r| json!({"line": r.line, "reason": r.reason})).collect::<Vec<_>>(),
        "stats": stats,
    })
}

#[test]
fn every_sample_matches_its_golden_summary() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let files = inputs();
    assert!(files.len() >= 6, "samples missing: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let got = summary(f);
        let golden = PathBuf::from(format!("{}.expected.json", f.display()));
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if update {
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == text => {}
            Ok(_) => failures.push(format!("{} differs from {}", f.display(), golden.display())),
            Err(_) => failures.push(format!("{} has no golden (run with UPDATE_GOLDEN=1)", f.display())),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_record_and_reject_is_well_formed() {
    for f in inputs() {
        let bytes = std::fs::read(&f).unwrap();
        let (records, rejects, stats) = dns::read_with(&bytes, "", &opts()).unwrap();
        assert!(!records.is_empty(), "{}: no records", f.display());
        for r in &records {
            assert!(!r.qname.is_empty() && !r.qtype.is_empty(), "{}: {r:?}", f.display());
            assert!(!r.qname.ends_with('.') || r.qname == ".", "{}: {r:?}", f.display());
            assert_eq!(r.qname, r.qname.to_ascii_lowercase());
            assert!(r.time > Timestamp(1_500_000_000_000_000), "{}: {r:?}", f.display());
        }
        for r in &rejects {
            assert!(r.line > 0 && !r.reason.is_empty(), "{}: {r:?}", f.display());
        }
        assert!(records.windows(2).all(|w| w[0].time <= w[1].time), "{}: not in time order", f.display());
        assert_eq!(stats.records as usize, records.len());
        // Every query and every unmatched response is one record.
        assert_eq!(stats.queries + stats.unmatched_responses, stats.records, "{}", f.display());
    }
}

fn read_sample(rel: &str) -> Vec<DnsRecord> {
    let bytes = std::fs::read(data_dir().join(rel)).unwrap();
    let (records, rejects, _) = dns::read_with(&bytes, rel, &opts()).unwrap();
    assert!(rejects.is_empty(), "{rel}: {rejects:?}");
    records
}

#[test]
fn dnstap_and_query_log_of_the_same_resolver_agree() {
    let tap = read_sample("generated_unbound/unbound.dnstap.fstrm");
    let log = read_sample("generated_unbound/unbound_querylog_replylog.log");
    let truth = std::fs::read_to_string(data_dir().join("generated_unbound/ground_truth.csv")).unwrap();
    let truth: Vec<(String, String, String, String)> = truth
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            // Some Simda names were asked in upper case; records are lower case by contract.
            (f[0].into(), f[2].to_ascii_lowercase(), f[3].into(), f[4].into())
        })
        .collect();
    assert_eq!((tap.len(), log.len(), truth.len()), (840, 840, 840));
    let key = |r: &DnsRecord| (r.client.to_string(), r.qname.clone(), r.qtype.to_string());
    let mut a: Vec<_> = tap.iter().map(key).collect();
    let mut b: Vec<_> = log.iter().map(key).collect();
    let mut c: Vec<_> = truth.iter().map(|t| (t.0.clone(), t.1.clone(), t.2.clone())).collect();
    a.sort();
    b.sort();
    c.sort();
    assert!(a == b, "dnstap and query log differ");
    let only_tap: Vec<_> = a.iter().filter(|k| !c.contains(k)).take(5).collect();
    let only_truth: Vec<_> = c.iter().filter(|k| !a.contains(k)).take(5).collect();
    assert!(a == c, "dnstap vs ground truth: only in dnstap {only_tap:?}, only in truth {only_truth:?}");
    // Same rcode per query in both views; DGA names all NXDOMAIN, benign ones answered.
    let rc = |v: &[DnsRecord]| -> BTreeMap<_, _> { v.iter().map(|r| (key(r), r.rcode.clone())).collect() };
    assert_eq!(rc(&tap), rc(&log));
    let dga: BTreeSet<_> = truth.iter().filter(|t| t.3 == "dga_simda").map(|t| t.1.clone()).collect();
    assert_eq!(truth.iter().filter(|t| t.3 == "dga_simda").count(), 300);
    for r in &tap {
        let want = if dga.contains(&r.qname) { "NXDOMAIN" } else { "NOERROR" };
        assert_eq!(r.rcode.as_deref(), Some(want), "{r:?}");
        if r.qtype == "A" && want == "NOERROR" {
            assert!(r.answers.iter().all(|a| a.to_string().starts_with("198.51.100.")), "{r:?}");
            assert!(!r.answers.is_empty(), "{r:?}");
        }
    }
    // The log has second resolution, dnstap microseconds: same second for each query.
    let secs = |v: &[DnsRecord]| -> BTreeSet<_> { v.iter().map(|r| (key(r), r.time.secs())).collect() };
    let (ts, ls) = (secs(&tap), secs(&log));
    let off = ts.difference(&ls).count();
    assert!(off <= 5, "{off} queries differ in their second");
}

#[test]
fn pcap_samples_pair_queries_and_responses() {
    for rel in ["go-dnscollector/dnsdump_udp.pcap", "go-dnscollector/dnsdump_tcp.pcap"] {
        let bytes = std::fs::read(data_dir().join(rel)).unwrap();
        let (records, _, stats) = dns::read_with(&bytes, rel, &opts()).unwrap();
        assert_eq!(dns::detect(&bytes, rel), Some(DnsFormat::Pcap));
        assert!(stats.paired > 0, "{rel}: {stats:?}");
        assert!(records.iter().any(|r| r.rcode.is_some()), "{rel}");
    }
}

#[test]
fn truncated_samples_never_panic_and_keep_a_prefix() {
    for f in inputs() {
        let bytes = std::fs::read(&f).unwrap();
        let (full, _, _) = dns::read_with(&bytes, "", &opts()).unwrap();
        for cut in [1, 13, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let Ok((part, rejects, _)) = dns::read_with(&bytes[..cut], "", &opts()) else { continue };
            assert!(part.len() <= full.len() + 1, "{}", f.display());
            for r in rejects {
                assert!(r.line > 0 && !r.reason.is_empty());
            }
        }
    }
}

/// Issue 11 (5): a Zeek dns.log reads as DNS, the same records from its TSV and JSON forms,
/// and is never taken for a flow log.
#[test]
fn zeek_dns_log_is_dns_in_tsv_and_json() {
    let tsv = std::fs::read(data_dir().join("zeek/test18-dns.log")).unwrap();
    let json = std::fs::read(data_dir().join("zeek/test18-dns-json.log")).unwrap();
    assert_eq!(dns::detect(&tsv, "dns.log"), Some(DnsFormat::ZeekDns));
    assert_eq!(dns::detect(&json, "dns.log"), Some(DnsFormat::ZeekDns));
    assert_eq!(botwatch_telemetry::flow::detect(&tsv, "dns.log"), None, "not flows");
    assert_eq!(botwatch_telemetry::flow::detect(&json, "dns.log"), None);
    let (a, ra, _) = dns::read_with(&tsv, "dns.log", &opts()).unwrap();
    let (b, rb, _) = dns::read_with(&json, "dns.log", &opts()).unwrap();
    assert!(ra.is_empty() && rb.is_empty(), "{ra:?} {rb:?}");
    assert_eq!(a, b);
    assert_eq!(a.len(), 22, "every data line of the log");
    let conn =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows/logs/test18-conn.log"))
            .unwrap();
    assert_eq!(dns::detect(&conn, "conn.log"), None, "a conn.log is not DNS");
    assert!(botwatch_telemetry::flow::detect(&conn, "conn.log").is_some());
}

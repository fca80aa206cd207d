//! Every flow sample under tests/data/flows/ (real NetFlow/IPFIX captures and flow logs, each
//! directory with its PROVENANCE.txt) read through `flow::read` and compared with its
//! `<file>.expected.json` summary; `UPDATE_GOLDEN=1` rewrites the summaries. Plus checks
//! against independent ground truth: nfdump's own decoding of the same flows.

use botwatch_telemetry::flow::{self, Collector, FlowFormat, PortFilter, pcap};
use botwatch_telemetry::record::FlowRecord;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows")
}

fn samples() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(data_dir()).unwrap() {
        let d = d.unwrap().path();
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if !(name.ends_with(".expected.json") || name.ends_with(".txt") || name.ends_with(".md")) {
                v.push(f);
            }
        }
    }
    v.sort();
    v
}

fn summary(data: &[u8], name: &str) -> Value {
    match flow::read(data, name) {
        Err(e) => json!({ "error": e.to_string() }),
        Ok((records, rejects, stats)) => {
            assert_eq!(stats.records as usize, records.len(), "{name}");
            assert_eq!(stats.rejected as usize, rejects.len(), "{name}");
            for r in &rejects {
                assert!(r.line > 0 && !r.reason.is_empty(), "{name}: {r:?}");
            }
            json!({
                "stats": stats,
                "first_records": records.iter().take(5).collect::<Vec<_>>(),
                "last_record": records.last(),
                "first_rejects": rejects.iter().take(5)
                    .map(|r| json!({ "line": r.line, "reason": r.reason })).collect::<Vec<_>>(),
            })
        }
    }
}

#[test]
fn every_sample_matches_its_golden_summary() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let files = samples();
    assert!(files.len() >= 40, "samples missing: {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let got = summary(&std::fs::read(f).unwrap(), &name);
        let golden = f.with_file_name(format!("{name}.expected.json"));
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if update {
            std::fs::write(&golden, text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if serde_json::from_str::<Value>(&want).unwrap() == got => {}
            Ok(_) => failures.push(format!("{}: differs from golden\n{text}", f.display())),
            Err(_) => failures.push(format!("{}: no golden file (run with UPDATE_GOLDEN=1)", f.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn formats_are_detected() {
    for f in samples() {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let want = if name.ends_with(".pcap") {
            FlowFormat::Pcap
        } else if name.ends_with(".nfcapd") {
            FlowFormat::Nfcapd
        } else if name.ends_with(".nfdump.csv") {
            FlowFormat::NfdumpCsv
        } else if name.ends_with("conn.log") {
            FlowFormat::ZeekConn
        } else {
            FlowFormat::Argus
        };
        assert_eq!(flow::detect(&std::fs::read(&f).unwrap(), &name), Some(want), "{name}");
    }
    assert_eq!(flow::detect(b"hello world\n", "notes.txt"), None);
}

type Key = (IpAddr, IpAddr, u16, u16, u8, u64, u64);

fn key(r: &FlowRecord) -> Key {
    (r.src, r.dst, r.src_port, r.dst_port, r.proto, r.packets, r.bytes)
}

/// nfdump's own decoding of the nfcapd files that were replayed as v5 and v9: the IPv4 rows.
fn nfdump_truth(csv: &str) -> BTreeMap<Key, usize> {
    let (records, rejects, _) = flow::read(&std::fs::read(data_dir().join(csv)).unwrap(), csv).unwrap();
    assert!(rejects.is_empty(), "{rejects:?}");
    let mut m = BTreeMap::new();
    for r in records.iter().filter(|r| r.src.is_ipv4()) {
        *m.entry(key(r)).or_default() += 1;
    }
    m
}

fn decoded(pcap_name: &str) -> (Vec<FlowRecord>, BTreeMap<Key, usize>) {
    let (records, rejects, stats) =
        flow::read(&std::fs::read(data_dir().join("slips_netflow").join(pcap_name)).unwrap(), pcap_name)
            .unwrap();
    assert!(rejects.is_empty(), "{pcap_name}: {rejects:?}");
    assert_eq!(stats.netflow.unwrap().missing_template, 0, "{pcap_name}");
    let mut m = BTreeMap::new();
    for r in &records {
        assert_eq!(r.exporter, Some(IpAddr::from([127, 0, 0, 1])));
        *m.entry(key(r)).or_default() += 1;
    }
    (records, m)
}

#[test]
fn v5_and_v9_exports_equal_nfdumps_own_decoding() {
    let truth = nfdump_truth("slips_netflow/test7-malicious_flows.nfdump.csv");
    assert!(truth.values().sum::<usize>() > 300);
    for p in ["test7-malicious_netflow_v5_export.pcap", "test7-malicious_netflow_v9_export.pcap"] {
        let (records, got) = decoded(p);
        let diff: Vec<_> = got.iter().filter(|(k, n)| truth.get(k) != Some(n)).take(5).collect();
        let missing: Vec<_> = truth.iter().filter(|(k, n)| got.get(k) != Some(n)).take(5).collect();
        assert!(diff.is_empty() && missing.is_empty(), "{p}: decoded {diff:?}, nfdump {missing:?}");
        // The capture is of 2018-03-09 20:49–20:59 UTC; uptime-relative times must land there.
        for r in &records {
            assert!(r.start <= r.end, "{p}: {r:?}");
            assert!(r.start.to_rfc3339().starts_with("2018-03-09T20:"), "{p}: {}", r.start);
        }
    }
}

#[test]
fn v5_and_v9_exports_of_the_beacon_capture_agree() {
    let (r5, m5) = decoded("test-cc-capture-2_netflow_v5_export.pcap");
    let (r9, m9) = decoded("test-cc-capture-2_netflow_v9_export.pcap");
    assert!(r5.len() > 100);
    assert!(m5 == m9, "v5 and v9 decode different flows");
    // v5 carries ms; v9 via nfreplay too: the same flows start at the same instants.
    let mut s5: Vec<_> = r5.iter().map(|r| (r.start, key(r))).collect();
    let mut s9: Vec<_> = r9.iter().map(|r| (r.start, key(r))).collect();
    s5.sort();
    s9.sort();
    assert!(s5 == s9, "v5 and v9 flows start at different times");
    let beacon = r5.iter().filter(|r| r.src == IpAddr::from([147, 32, 80, 37]) && r.dst_port == 443).count();
    assert!(beacon > 10, "beacon flows: {beacon}");
}

fn akvorado(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("akvorado").join(name)).unwrap()
}

#[test]
fn templates_then_data_from_separate_captures_decode() {
    for (t, d) in [
        ("template.pcap", "data.pcap"),
        ("ipfixprobe-templates.pcap", "ipfixprobe-data.pcap"),
        ("icmp-template.pcap", "icmp-data.pcap"),
        ("samplingrate-template.pcap", "samplingrate-data.pcap"),
    ] {
        let mut c = Collector::new();
        let (mut out, mut rej) = (Vec::new(), Vec::new());
        pcap::replay(&akvorado(t), &mut c, &PortFilter::Any, &mut out, &mut rej).unwrap();
        assert!(c.counters().templates > 0, "{t}");
        pcap::replay(&akvorado(d), &mut c, &PortFilter::Any, &mut out, &mut rej).unwrap();
        assert!(rej.is_empty(), "{d}: {rej:?}");
        assert_eq!(c.counters().missing_template, 0, "{d}");
        assert!(!out.is_empty(), "{d}: no records");
        assert!(out.iter().all(|r| r.start.0 > 1_000_000_000_000_000), "{d}: times not absolute: {out:?}");

        // The same data alone: every data set is counted as missing its template.
        let mut c = Collector::new();
        let mut out = Vec::new();
        pcap::replay(&akvorado(d), &mut c, &PortFilter::Any, &mut out, &mut rej).unwrap();
        assert!(out.is_empty() && c.counters().missing_template > 0, "{d}");
    }
}

/// A little-endian pcap rewritten in the other byte order, as a big-endian host writes it.
fn big_endian(le: &[u8]) -> Vec<u8> {
    let swap = |b: &[u8]| -> Vec<u8> { b.iter().rev().copied().collect() };
    let mut out = Vec::with_capacity(le.len());
    // Magic and the 32-bit fields swap whole; the two version halves each swap.
    out.extend(swap(&le[0..4]));
    out.extend(swap(&le[4..6]));
    out.extend(swap(&le[6..8]));
    for f in le[8..24].chunks(4) {
        out.extend(swap(f));
    }
    let mut rest = &le[24..];
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        for f in rest[..16].chunks(4) {
            out.extend(swap(f));
        }
        out.extend_from_slice(&rest[16..16 + caplen]);
        rest = &rest[16 + caplen..];
    }
    out
}

#[test]
fn a_big_endian_capture_replays_as_its_little_endian_twin() {
    let le = akvorado("data+templates.pcap");
    let be = big_endian(&le);
    assert_eq!(&be[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    let run = |data: &[u8]| {
        let mut c = Collector::new();
        let (mut out, mut rej) = (Vec::new(), Vec::new());
        let st = pcap::replay(data, &mut c, &PortFilter::Any, &mut out, &mut rej).unwrap();
        (out, rej.len(), st)
    };
    let (a, b) = (run(&le), run(&be));
    assert!(!a.0.is_empty() && !a.2.truncated);
    assert_eq!(a.0, b.0);
    assert_eq!((a.1, a.2), (b.1, b.2));
}

#[test]
fn default_port_filter_skips_lab_ports() {
    let data =
        std::fs::read(data_dir().join("slips_netflow/test7-malicious_netflow_v9_export.pcap")).unwrap();
    let mut c = Collector::new();
    let (mut out, mut rej) = (Vec::new(), Vec::new());
    let st = pcap::replay(&data, &mut c, &PortFilter::default(), &mut out, &mut rej).unwrap();
    assert!(out.is_empty() && st.export_packets == 0 && st.not_flow == st.frames);
    let st = pcap::replay(&data, &mut c, &PortFilter::Ports(vec![29055]), &mut out, &mut rej).unwrap();
    assert_eq!(st.export_packets, st.frames);
    assert!(!out.is_empty());
}

#[test]
fn truncated_captures_keep_what_came_before() {
    let data =
        std::fs::read(data_dir().join("slips_netflow/test7-malicious_netflow_v5_export.pcap")).unwrap();
    let (full, _, _) = flow::read(&data, "x.pcap").unwrap();
    for cut in [25, 100, data.len() / 2, data.len() - 1] {
        let (part, _, st) = flow::read(&data[..cut], "x.pcap").unwrap();
        assert!(st.pcap.unwrap().truncated, "cut {cut}");
        assert!(part.len() < full.len());
        assert_eq!(&full[..part.len()], &part[..]);
    }
}

/// nfdump's CSV of an nfcapd file with the `ra` (exporter) column, and its millisecond times.
fn nfdump_csv(name: &str) -> Vec<(FlowRecord, String, String, String)> {
    let dir = data_dir().join("nfcapd");
    let csv = std::fs::read(dir.join(format!("{name}.nfdump.csv"))).unwrap();
    let (records, rejects, _) = flow::read(&csv, "x.nfdump.csv").unwrap();
    assert!(rejects.is_empty(), "{rejects:?}");
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    let ra = lines.next().unwrap().split(',').position(|c| c == "ra").unwrap();
    let times = std::fs::read_to_string(dir.join(format!("{name}.times.txt"))).unwrap();
    let mut times = times.lines();
    records
        .into_iter()
        .zip(lines)
        .map(|(r, line)| {
            let (ts, te) = times.next().unwrap().split_once(',').unwrap();
            (r, line.split(',').nth(ra).unwrap().to_string(), ts.to_string(), te.to_string())
        })
        .collect()
}

#[test]
fn nfcapd_files_equal_nfdumps_own_decoding() {
    let ms = |t: botwatch_model::Timestamp| t.to_datetime().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    for (file, truth) in [
        ("test7-malicious.nfcapd", "test7-malicious"),
        ("test7-malicious.lz4.nfcapd", "test7-malicious"),
        ("test7-notudp-v9.lz4.nfcapd", "test7-notudp-v9"),
    ] {
        let want = nfdump_csv(truth);
        let data = std::fs::read(data_dir().join("nfcapd").join(file)).unwrap();
        let (got, rejects, stats) = flow::read(&data, file).unwrap();
        assert!(rejects.is_empty(), "{file}: {rejects:?}");
        let st = stats.nfcapd.unwrap();
        assert_eq!(st.declared_flows, Some(got.len() as u64), "{file}");
        assert_eq!(got.len(), want.len(), "{file}");
        assert!(got.iter().any(|r| r.src.is_ipv6()) || !file.starts_with("test7-malicious"), "{file}");
        for (i, (g, (w, ra, ts, te))) in got.iter().zip(&want).enumerate() {
            let ctx = format!("{file} flow {i}: {g:?} vs nfdump {w:?}");
            assert_eq!(key(g), key(w), "{ctx}");
            assert_eq!((g.start.secs(), g.end.secs()), (w.start.secs(), w.end.secs()), "{ctx}");
            assert_eq!((&ms(g.start), &ms(g.end)), (ts, te), "{ctx}");
            let exporter = g.exporter.map_or("0.0.0.0".to_string(), |e| e.to_string());
            assert_eq!(&exporter, ra, "{ctx}");
        }
    }
}

#[test]
fn unsupported_nfcapd_files_say_how_to_convert_them() {
    for (file, want) in [
        ("test8-malicious.lzo.nfcapd", "nfdump -r FILE -J 0"),
        ("test8-malicious.bz2.nfcapd", "nfdump -r FILE -J 0"),
        ("test1-malicious-head.nfcapd", "nfdump -r FILE -w NEW"),
    ] {
        let data = std::fs::read(data_dir().join("nfcapd").join(file)).unwrap();
        let e = flow::read(&data, file).unwrap_err().to_string();
        assert!(e.contains(want), "{file}: {e}");
    }
}

#[test]
fn truncated_nfcapd_files_keep_what_came_before() {
    let data = std::fs::read(data_dir().join("nfcapd/test7-malicious.nfcapd")).unwrap();
    let (full, _, _) = flow::read(&data, "x").unwrap();
    // One data block: cut anywhere inside it, nothing is read but nothing fails either.
    for cut in [40, 41, 56, 100, data.len() / 2] {
        let (part, rejects, st) = flow::read(&data[..cut], "x").unwrap();
        assert!(part.is_empty() && st.nfcapd.unwrap().truncated, "cut {cut}");
        assert_eq!((rejects.len(), rejects[0].line), (1, 1), "cut {cut}: {rejects:?}");
    }
    // Cut in the appendix: every flow, and a reject for the appendix block.
    let (part, rejects, _) = flow::read(&data[..data.len() - 10], "x").unwrap();
    assert_eq!((part.len(), rejects.len(), rejects[0].line), (full.len(), 1, 2));
}

//! Own sensors through the CLI: feed indicators in the store, telemetry files scanned
//! against them, sightings stored and turned into cases; the detectors on the Unbound
//! sample reproduce its ground truth.

mod common;

use common::{bin, data as feeds, json_lines, ok, run};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn telemetry(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../telemetry/tests/data").join(rel)
}

/// Argus `ra -c ,` time format.
fn argus_time(iso: &str) -> String {
    // 2024-04-01T00:00:00+00:00 → 2024/04/01 00:00:00.000000
    format!("{} {}.000000", iso[..10].replace('-', "/"), &iso[11..19])
}

#[test]
fn flows_and_queries_to_feed_indicators_become_sightings_and_cases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let db = db.to_str().unwrap();
    let feodo = feeds("abusech/feodo_ipblocklist_2024-04-04.csv");
    let bambenek = feeds("bambenek/bambenek_c2-dommasterlist.txt");
    ok(&["ingest", "--db", db, "--quiet", feodo.to_str().unwrap(), bambenek.to_str().unwrap()]);

    let c2 = json_lines(&ok(&["observations", "--db", db, "--type", "c2-server", "--format", "jsonl"]));
    let ip_ind =
        c2.iter().find(|o| o["subject"].as_str().unwrap().parse::<std::net::IpAddr>().is_ok()).unwrap();
    let dom_ind = c2
        .iter()
        .find(|o| o["subject"].as_str().unwrap().contains(|c: char| c.is_ascii_alphabetic()))
        .unwrap();
    let c2_ip = ip_ind["subject"].as_str().unwrap();
    let c2_dom = dom_ind["subject"].as_str().unwrap();
    // Times inside each indicator's validity window.
    let t_ip = ip_ind["last_seen"].as_str().unwrap();
    let t_dom = dom_ind["last_seen"].as_str().unwrap();

    // A flow log: an infected client talks to the C2 every minute; a clean one browses.
    let mut flows = String::from(
        "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,SrcBytes,Label\n",
    );
    for i in 0..5 {
        let t = argus_time(t_ip);
        flows.push_str(&format!(
            "{t},0.5,tcp,10.0.0.5,{},   ->,{c2_ip},443,FSPA_FSPA,0,0,10,900,400,flow\n",
            40000 + i
        ));
        flows.push_str(&format!(
            "{t},0.5,tcp,10.0.0.9,{},   ->,93.184.216.34,443,FSPA_FSPA,0,0,10,900,400,flow\n",
            41000 + i
        ));
    }
    flows.push_str("this is not a flow line\n");
    let flow_path = dir.path().join("capture.binetflow");
    std::fs::write(&flow_path, flows).unwrap();

    // A BIND query log: one client resolves a subdomain of a C2 domain, another a clean name.
    let bind_time = |iso: &str| {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let m: usize = iso[5..7].parse().unwrap();
        format!("{}-{}-{} {}.000", &iso[8..10], months[m - 1], &iso[..4], &iso[11..19])
    };
    let t = bind_time(t_dom);
    let log = format!(
        "{t} queries: info: client @0x7f0001 10.0.0.7#53422 (www.{c2_dom}): query: www.{c2_dom} IN A +E(0)K (10.0.0.1)\n\
         {t} queries: info: client @0x7f0002 10.0.0.8#53423 (example.org): query: example.org IN A +E(0)K (10.0.0.1)\n\
         {t} queries: info: client @0x7f0003 10.0.0.8#53424 (notx{c2_dom}): query: notx{c2_dom} IN A +E(0)K (10.0.0.1)\n"
    );
    let dns_path = dir.path().join("query.log");
    std::fs::write(&dns_path, log).unwrap();

    let out = ok(&["scan", "--db", db, "--json", flow_path.to_str().unwrap(), dns_path.to_str().unwrap()]);
    let flagged = json_lines(&out);
    let by = |client: &str| -> Vec<&Value> { flagged.iter().filter(|f| f["client"] == client).collect() };
    let five = by("10.0.0.5");
    assert_eq!(five.len(), 1, "one aggregated sighting for the bot: {flagged:?}");
    assert_eq!(five[0]["reason"], "indicator");
    assert_eq!(five[0]["indicator"], c2_ip);
    assert_eq!(five[0]["count"], 5);
    let seven = by("10.0.0.7");
    assert_eq!(seven.len(), 1, "{flagged:?}");
    assert_eq!(seven[0]["indicator"], c2_dom);
    assert!(by("10.0.0.9").is_empty() && by("10.0.0.8").is_empty(), "clean clients not flagged: {flagged:?}");

    // Stored as infected-system sightings; the same scan again adds nothing.
    let ev = json_lines(&ok(&["events", "--db", db, "--feed", "botwatch_sensor_match", "--format", "jsonl"]));
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|e| e["classification.type"] == "infected-system"));
    // The flow's sighting carries the C2's family from Feodo Tracker.
    let flow_ev = ev.iter().find(|e| e["source.ip"] == "10.0.0.5").unwrap();
    assert_eq!(flow_ev["malware.name"], ip_ind["malware.name"], "{flow_ev}");
    assert_eq!(flow_ev["destination.ip"], c2_ip);
    ok(&["scan", "--db", db, "--json", flow_path.to_str().unwrap(), dns_path.to_str().unwrap()]);
    let again =
        json_lines(&ok(&["events", "--db", db, "--feed", "botwatch_sensor_match", "--format", "jsonl"]));
    assert_eq!(again.len(), 2);

    // And cases follow, as for any feed's infected-system events (the fixture's indicators
    // are from 2024: a long auto-close period keeps those sightings from being stale).
    let cfg = dir.path().join("botwatch.toml");
    std::fs::write(&cfg, "[cases]\nauto_close_days = 100000\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let up: Value =
        serde_json::from_str(ok(&["--config", cfg, "cases", "update", "--db", db, "--json"]).trim()).unwrap();
    assert!(up["process"]["opened"].as_u64().unwrap() >= 2, "{up}");
    let cases = json_lines(&ok(&["--config", cfg, "cases", "list", "--db", db, "--json"]));
    assert!(cases.iter().any(|c| c["ip"] == "10.0.0.5"), "{cases:?}");

    // Telemetry that is not telemetry: exit 3 and a clear message.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x00\x01garbage").unwrap();
    let o = run(&["scan", "--db", db, junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a recognised telemetry format"));

    // Issue 11 (5): a Zeek dns.log is DNS (it was read as flows: "N records (flows), 0 DNS
    // records"); its query for the C2 domain flags the client.
    let epoch = botwatch_model::parse_timestamp(t_dom).unwrap().secs();
    let zeek = format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n\
         {epoch}.5\tC1\t10.0.0.11\t5353\t10.0.0.1\t53\tudp\t1\t0.01\twww.{c2_dom}\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t192.0.2.1\t60.0\tF\n"
    );
    let zeek_path = dir.path().join("dns.log");
    std::fs::write(&zeek_path, zeek).unwrap();
    let flagged = json_lines(&ok(&["scan", "--db", db, "--json", "--no-store", zeek_path.to_str().unwrap()]));
    assert!(flagged.iter().any(|f| f["client"] == "10.0.0.11" && f["indicator"] == c2_dom), "{flagged:?}");
    let said = ok(&["scan", "--db", db, "--no-store", zeek_path.to_str().unwrap()]);
    assert!(said.contains("dns") && !said.contains("flows"), "{said}");
    // Zeek archives its logs gzipped: the same log as `dns.log.gz` is read as what it holds.
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    };
    let zeek_gz = dir.path().join("dns.log.gz");
    std::fs::write(&zeek_gz, gz(&std::fs::read(&zeek_path).unwrap())).unwrap();
    let flagged = json_lines(&ok(&["scan", "--db", db, "--json", "--no-store", zeek_gz.to_str().unwrap()]));
    assert!(flagged.iter().any(|f| f["client"] == "10.0.0.11" && f["indicator"] == c2_dom), "{flagged:?}");
    // A compression bomb is refused with the limit it broke, not expanded.
    let bomb = dir.path().join("conn.log.gz");
    std::fs::write(&bomb, gz(&vec![b'\t'; 40 << 20])).unwrap();
    let o = run(&["scan", "--db", db, "--no-store", bomb.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("conn.log.gz") && err.contains("ratio"), "{err}");
    // Another kind of Zeek log is named as such and refused, not misread.
    let http = dir.path().join("http.log");
    std::fs::write(&http, "#separator \\x09\n#path\thttp\n#fields\tts\tuid\n1.0\tC1\n").unwrap();
    let o = run(&["scan", "--db", db, http.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a Zeek http log"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn unbound_sample_ground_truth_is_reproduced() {
    let gt = telemetry("dns/generated_unbound/ground_truth.csv");
    let log = telemetry("dns/generated_unbound/unbound_querylog_replylog.log");
    let tap = telemetry("dns/generated_unbound/unbound.dnstap.fstrm");
    if !gt.exists() || !log.exists() || !tap.exists() {
        panic!("the Unbound sample is missing from crates/telemetry/tests/data/dns/generated_unbound");
    }
    // Infected clients per the ground truth.
    let truth = std::fs::read_to_string(&gt).unwrap();
    let header: Vec<&str> = truth.lines().next().unwrap().split(',').collect();
    let ci = header.iter().position(|h| h.contains("client")).unwrap();
    let li = header.iter().position(|h| h.contains("label")).unwrap();
    let mut infected = std::collections::BTreeSet::new();
    let mut clean = std::collections::BTreeSet::new();
    for l in truth.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() <= ci.max(li) {
            continue;
        }
        if f[li].eq_ignore_ascii_case("benign") || f[li].eq_ignore_ascii_case("clean") {
            clean.insert(f[ci].to_string());
        } else {
            infected.insert(f[ci].to_string());
        }
    }
    let clean: std::collections::BTreeSet<_> = clean.difference(&infected).cloned().collect();
    assert_eq!(infected.len(), 2, "{infected:?}");
    for input in [&log, &tap] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("u.db");
        let out =
            ok(&["scan", "--db", db.to_str().unwrap(), "--json", "--no-store", input.to_str().unwrap()]);
        let flagged: std::collections::BTreeSet<String> =
            json_lines(&out).iter().map(|f| f["client"].as_str().unwrap().to_string()).collect();
        assert_eq!(flagged, infected, "{}: flagged {flagged:?}, clean ones {clean:?}", input.display());
    }
}

#[test]
fn dga_score_prints_one_verdict_per_name() {
    let out = ok(&["dga", "score", "--json", "google.com", "xjw7qk2mzpa9rtd.com"]);
    let v = json_lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["domain"], "google.com");
    assert_eq!(v[0]["dga"], false, "{v:?}");
    assert_eq!(v[1]["dga"], true, "{v:?}");
    let s = v[1]["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&s));
    // Names on stdin, table output.
    let mut child = bin()
        .args(["dga", "score"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"wikipedia.org\nqwxzkjvbnmpl.net\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
}

/// NetFlow v9 (RFC 3954) export packet: template set 256 and one data set, as a router
/// sends them.
fn v9_packet(unix_secs: u32, flows: &[([u8; 4], [u8; 4], u16, u16)]) -> Vec<u8> {
    const TEMPLATE: [(u16, u16); 9] =
        [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4)];
    let uptime: u32 = 100_000;
    let mut tpl = Vec::new();
    tpl.extend(0u16.to_be_bytes());
    tpl.extend((8 + 4 * TEMPLATE.len() as u16).to_be_bytes());
    tpl.extend(256u16.to_be_bytes());
    tpl.extend((TEMPLATE.len() as u16).to_be_bytes());
    for (t, l) in TEMPLATE {
        tpl.extend(t.to_be_bytes());
        tpl.extend(l.to_be_bytes());
    }
    let mut body = Vec::new();
    for (src, dst, sport, dport) in flows {
        body.extend(src);
        body.extend(dst);
        body.extend(sport.to_be_bytes());
        body.extend(dport.to_be_bytes());
        body.push(6);
        body.extend(10u32.to_be_bytes());
        body.extend(900u32.to_be_bytes());
        body.extend((uptime - 5_000).to_be_bytes());
        body.extend((uptime - 1_000).to_be_bytes());
    }
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut p = Vec::new();
    p.extend(9u16.to_be_bytes());
    p.extend((1 + flows.len() as u16).to_be_bytes());
    p.extend(uptime.to_be_bytes());
    p.extend(unix_secs.to_be_bytes());
    p.extend(1u32.to_be_bytes());
    p.extend(7u32.to_be_bytes());
    p.extend(tpl);
    p.extend(256u16.to_be_bytes());
    p.extend((4 + body.len() as u16).to_be_bytes());
    p.extend(body);
    p
}

#[test]
fn live_netflow_v9_over_udp_becomes_sightings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let db = db.to_str().unwrap();
    let feodo = feeds("abusech/feodo_ipblocklist_2024-04-04.csv");
    ok(&["ingest", "--db", db, "--quiet", feodo.to_str().unwrap()]);
    let c2 = json_lines(&ok(&["observations", "--db", db, "--type", "c2-server", "--format", "jsonl"]));
    let c2_ip: std::net::Ipv4Addr = c2[0]["subject"].as_str().unwrap().parse().unwrap();
    let last_seen = botwatch_model::parse_timestamp(c2[0]["last_seen"].as_str().unwrap()).unwrap();

    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let child = bin()
        .args(["sensor", "netflow", "--listen", &listen, "--db", db, "--duration", "4", "--flush", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // Garbage first: counted, not fatal.
    sock.send_to(b"\x00\x09garbage", &listen).unwrap();
    let pkt = v9_packet(
        last_seen.secs() as u32,
        &[([10, 0, 0, 5], c2_ip.octets(), 40001, 443), ([10, 0, 0, 9], [93, 184, 216, 34], 40002, 443)],
    );
    sock.send_to(&pkt, &listen).unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("1 hits"), "{stdout}");
    let ev = json_lines(&ok(&["events", "--db", db, "--feed", "botwatch_sensor_match", "--format", "jsonl"]));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["source.ip"], "10.0.0.5");
    assert_eq!(ev[0]["destination.ip"], c2_ip.to_string());
}

#[test]
fn live_dnstap_socket_finds_the_dga_clients() {
    use botwatch_telemetry::dns::fstrm;
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tap.db");
    let db = db.to_str().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let child = bin()
        .args([
            "sensor",
            "dnstap",
            "--socket",
            sock.to_str().unwrap(),
            "--db",
            db,
            "--duration",
            "6",
            "--flush",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Unbound's writer side of the Frame Streams handshake, then the sample's frames.
    let mut c = None;
    for _ in 0..100 {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&sock) {
            c = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut c = c.expect("the sensor listens on its socket");
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    c.write_all(&fstrm::encode_control(fstrm::READY, Some(fstrm::CONTENT_TYPE))).unwrap();
    let mut head = [0u8; 8];
    c.read_exact(&mut head).unwrap();
    let mut accept = vec![0u8; u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize];
    c.read_exact(&mut accept).unwrap();
    c.write_all(&fstrm::encode_control(fstrm::START, Some(fstrm::CONTENT_TYPE))).unwrap();
    let file = std::fs::read(telemetry("dns/generated_unbound/unbound.dnstap.fstrm")).unwrap();
    let mut pos = 0;
    while let Ok(Some((f, used))) = fstrm::parse_frame(&file[pos..], fstrm::MAX_DATA_FRAME) {
        if let fstrm::Frame::Data(d) = f {
            c.write_all(&fstrm::encode_data(d)).unwrap();
        }
        pos += used;
    }
    c.write_all(&fstrm::encode_control(fstrm::STOP, None)).unwrap();
    let mut finish = Vec::new();
    let _ = c.read_to_end(&mut finish);
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("840 DNS records"), "{stdout}");
    let ev =
        json_lines(&ok(&["events", "--db", db, "--feed", "botwatch_sensor_detect", "--format", "jsonl"]));
    let clients: std::collections::BTreeSet<&str> =
        ev.iter().map(|e| e["source.ip"].as_str().unwrap()).collect();
    assert_eq!(clients, ["127.0.0.11", "127.0.0.12"].into_iter().collect(), "{ev:?}");
}

#[test]
fn the_compiled_matcher_is_reused_until_a_feed_changes_the_indicators() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("m.db");
    let db = db_path.to_str().unwrap();
    let feodo = feeds("abusech/feodo_ipblocklist_2024-04-04.csv");
    ok(&["ingest", "--db", db, "--quiet", feodo.to_str().unwrap()]);
    let c2 = json_lines(&ok(&["observations", "--db", db, "--type", "c2-server", "--format", "jsonl"]));
    let ind = &c2[0];
    let (c2_ip, t) = (ind["subject"].as_str().unwrap(), argus_time(ind["last_seen"].as_str().unwrap()));
    let flows = dir.path().join("f.binetflow");
    std::fs::write(
        &flows,
        format!(
            "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,TotPkts,TotBytes\n{t},1,tcp,10.0.0.5,40000,   ->,{c2_ip},443,10,900\n"
        ),
    )
    .unwrap();
    let scan = || ok(&["scan", "--db", db, flows.to_str().unwrap()]);
    let snapshot = dir.path().join("m.db.matcher");

    let first = scan();
    assert!(first.contains("compiled from the store") && first.contains("1 indicator hits"), "{first}");
    assert!(snapshot.exists());
    // The first scan stored a sighting: that is not a change of indicators.
    let second = scan();
    assert!(second.contains("compiled snapshot") && second.contains("1 indicator hits"), "{second}");

    // A feed adds indicators: compiled again, and the new ones match.
    let bambenek = feeds("bambenek/bambenek_c2-dommasterlist.txt");
    ok(&["ingest", "--db", db, "--quiet", bambenek.to_str().unwrap()]);
    let third = scan();
    assert!(third.contains("compiled from the store"), "{third}");
    let before: u64 =
        first.split(" active indicators").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let after: u64 =
        third.split(" active indicators").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(after > before, "{first}\n{third}");

    // A damaged snapshot costs a compile, never the scan.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();
    let fourth = scan();
    assert!(fourth.contains("compiled from the store") && fourth.contains("1 indicator hits"), "{fourth}");
    assert!(scan().contains("compiled snapshot"));
}

#[test]
fn nfcapd_files_are_streamed_and_matched() {
    use botwatch_telemetry::flow::nfcapd::build;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nf.db");
    let db = db.to_str().unwrap();
    let feodo = feeds("abusech/feodo_ipblocklist_2024-04-04.csv");
    ok(&["ingest", "--db", db, "--quiet", feodo.to_str().unwrap()]);
    let c2 = json_lines(&ok(&["observations", "--db", db, "--type", "c2-server", "--format", "jsonl"]));
    let (ip_ind, c2_ip) = c2
        .iter()
        .find_map(|o| Some((o, o["subject"].as_str()?.parse::<std::net::Ipv4Addr>().ok()?)))
        .unwrap();
    let t_ms = botwatch_model::parse_timestamp(ip_ind["last_seen"].as_str().unwrap()).unwrap().0 / 1000;
    let t_ms = u64::try_from(t_ms).unwrap();

    // Two data blocks: the bot reaches the C2 in each, a clean client browses in the first.
    let first = [
        build::v4_flow([10, 0, 0, 5], c2_ip.octets(), 40000, 443, t_ms),
        build::v4_flow([10, 0, 0, 9], [93, 184, 216, 34], 41000, 443, t_ms),
    ]
    .concat();
    let mut file = build::header(0, 2, 0, 0);
    file.extend(build::block(2, &first));
    file.extend(build::block(1, &build::v4_flow([10, 0, 0, 5], c2_ip.octets(), 40001, 443, t_ms + 1000)));
    let nf = dir.path().join("nfcapd.202404040000");
    std::fs::write(&nf, &file).unwrap();
    let nf = nf.to_str().unwrap();

    let flagged = json_lines(&ok(&["scan", "--db", db, "--json", nf]));
    assert_eq!(flagged.len(), 1, "only the bot: {flagged:?}");
    assert_eq!(flagged[0]["client"], "10.0.0.5");
    assert_eq!(flagged[0]["reason"], "indicator");
    assert_eq!(flagged[0]["indicator"], c2_ip.to_string());
    assert_eq!(flagged[0]["count"], 2);
    // The streamed file names the stored report like any other: scanning it again adds nothing.
    let events = || {
        json_lines(&ok(&["events", "--db", db, "--feed", "botwatch_sensor_match", "--format", "jsonl"])).len()
    };
    assert_eq!(events(), 1);
    let summary = ok(&["scan", "--db", db, nf]);
    assert!(summary.contains(&format!("{nf}: 3 records (flows), 0 rejected")), "{summary}");
    assert_eq!(events(), 1);

    // Cut inside the second block: the first block's flows stand, the cut block is a reject.
    let cut = dir.path().join("cut.nfcapd");
    std::fs::write(&cut, &file[..file.len() - 10]).unwrap();
    let cut = cut.to_str().unwrap();
    let summary = ok(&["scan", "--db", db, "--no-store", cut]);
    assert!(summary.contains(&format!("{cut}: 2 records (flows), 1 rejected")), "{summary}");
    let flagged = json_lines(&ok(&["scan", "--db", db, "--no-store", "--json", cut]));
    assert_eq!((flagged.len(), &flagged[0]["count"]), (1, &Value::from(1)), "{flagged:?}");

    // Cut inside the header: the file cannot be read at all, exit 3 and why.
    let stub = dir.path().join("stub.nfcapd");
    std::fs::write(&stub, &file[..20]).unwrap();
    let o = run(&["scan", "--db", db, "--no-store", stub.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stub.nfcapd: nfdump file header truncated: 20 of 40 bytes"), "{err}");
}

/// `eval dga` on a corpus laid out otherwise than ../shared/data/dga (benign names and one
/// `family,domain` CSV, no npm list): every family scored by a fold model that never saw it,
/// per name and per client in the JSON; a folder with no DGA names says what it looked for.
#[test]
fn eval_dga_scores_a_corpus_of_any_layout_per_name_and_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let words =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../telemetry/data/dga_words.txt"))
            .unwrap();
    let benign: Vec<String> =
        words.lines().filter(|w| w.len() >= 5).step_by(7).take(3000).map(|w| format!("{w}.com")).collect();
    std::fs::create_dir(dir.path().join("umudga")).unwrap();
    std::fs::write(dir.path().join("umudga/legit_first50000.txt"), benign.join("\n")).unwrap();
    // Three random-character families from a fixed generator, each on its own suffix.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut csv = String::from("family,domain\n");
    for (family, tld) in [("alpha", "net"), ("beta", "info"), ("gamma", "biz")] {
        for _ in 0..300 {
            let label: String = (0..14)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (b'a' + (x % 26) as u8) as char
                })
                .collect();
            csv.push_str(&format!("{family},{label}.{tld}\n"));
        }
    }
    std::fs::write(dir.path().join("names.csv"), csv).unwrap();
    let out = ok(&["eval", "dga", "--folds", "3", "--json", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let families = v["families"].as_object().unwrap();
    assert_eq!(families.len(), 3, "{v}");
    for (f, r) in families {
        assert_eq!(r["names"], 300, "{f}: {r}");
        assert!(r["tpr"].as_f64().unwrap() > 0.5, "{f}: {r}");
    }
    let clients = &v["clients"];
    assert_eq!(clients["names_per_client"], 10, "{clients}");
    assert_eq!(clients["families"]["alpha"]["clients"], 30, "{clients}");
    assert!(clients["macro_tpr"].as_f64().unwrap() > 0.5, "{clients}");
    assert!(clients["benign"]["clients"].as_u64().unwrap() > 10, "{clients}");
    assert_eq!(v["top_sites"]["names"], 0, "{v}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("other.csv"), "a,b\n1,2\n").unwrap();
    let o = bin().args(["eval", "dga"]).arg(empty.path()).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a corpus needs both"), "{err}");
}

//! Reports and walled-garden exports, checked with real tools where installed
//! (named-checkzone from bind9-utils, nft).

use botwatch_model::{Case, CaseState, Timestamp};
use botwatch_notify::reports::{self, ReportMeta, ReportRow};
use botwatch_notify::walled_garden::{self, AllowList, RpzOptions};
use std::process::Command;

// Built through serde so fields the case engine adds (with serde defaults) need no edit here.
fn case(id: i64, ip: &str, state: CaseState) -> Case {
    let t = "2026-11-24T12:00:00+00:00";
    serde_json::from_value(serde_json::json!({
        "id": id, "key": format!("ip:{ip}|mirai"), "org": "example-isp", "subscriber": null,
        "ip": if ip.is_empty() { serde_json::Value::Null } else { ip.into() },
        "threat": "mirai", "classification_type": "infected-system", "state": state, "level": 3,
        "opened_at": t, "first_seen": t, "last_seen": t, "evidence": 5, "evidence_at_notice": 1,
        "notices": 3, "first_notified_at": t, "last_notified_at": t, "acknowledged_at": null,
        "escalated_at": t, "closed_at": null, "close_reason": null, "reinfections": 0, "last_event_id": null,
    }))
    .unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        case(1, "192.0.2.10", CaseState::WalledGarden),
        case(2, "2001:db8::7", CaseState::WalledGarden),
        case(3, "198.51.100.3", CaseState::Escalated),
        case(4, "192.0.2.10", CaseState::WalledGarden),
        case(5, "2001:db8:1:2:3:4:5:6", CaseState::WalledGarden),
        case(6, "::ffff:203.0.113.5", CaseState::WalledGarden),
        case(7, "", CaseState::WalledGarden),
    ]
}

fn allow() -> AllowList {
    AllowList {
        domains: vec!["update.microsoft.com".into(), "portal.isp.test.".into(), "bad domain!".into()],
        cidrs: vec!["203.0.113.0/24".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()],
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

#[test]
fn list_has_each_garden_address_once() {
    let l = String::from_utf8(walled_garden::list(&cases())).unwrap();
    assert_eq!(l, "192.0.2.10\n203.0.113.5\n2001:db8::7\n2001:db8:1:2:3:4:5:6\n");
}

#[test]
fn rpz_zone_has_passthru_first_and_client_ip_triggers_and_loads_in_named_checkzone() {
    let now = Timestamp::from_secs(1_795_521_600);
    let opts = RpzOptions {
        zone: "rpz.isp.test".into(),
        garden_host: "garden.isp.test".into(),
        ..Default::default()
    };
    let z = String::from_utf8(walled_garden::rpz(&cases(), &allow(), &opts, now)).unwrap();
    assert!(z.contains("@ SOA localhost. hostmaster.botwatch.invalid. 1795521600 "));
    let pos = |s: &str| z.find(s).unwrap_or_else(|| panic!("missing {s:?} in\n{z}"));
    assert!(
        pos("update.microsoft.com CNAME rpz-passthru.")
            < pos("32.10.2.0.192.rpz-client-ip CNAME garden.isp.test.")
    );
    pos("*.portal.isp.test CNAME rpz-passthru.");
    pos("24.0.113.0.203.rpz-ip CNAME rpz-passthru.");
    pos("48.zz.ffff.db8.2001.rpz-ip CNAME rpz-passthru.");
    pos("128.7.zz.db8.2001.rpz-client-ip CNAME garden.isp.test.");
    pos("128.6.5.4.3.2.1.db8.2001.rpz-client-ip CNAME garden.isp.test.");
    pos("32.5.113.0.203.rpz-client-ip");
    assert!(!z.contains("198.51.100.3") && !z.contains("3.100.51.198"), "escalated, not gardened");
    assert!(!z.contains("bad domain"));
    if !have("named-checkzone") {
        eprintln!("skipped: named-checkzone not installed (apt-get install bind9-utils)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rpz.zone");
    std::fs::write(&f, &z).unwrap();
    let out = Command::new("named-checkzone").arg("rpz.isp.test").arg(&f).output().unwrap();
    let msg = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "named-checkzone:\n{msg}\n{z}");
    assert!(msg.contains("loaded serial 1795521600"), "{msg}");
    let a = dir.path().join("allow.zone");
    std::fs::write(&a, walled_garden::rpz_allow(&allow(), &opts, now)).unwrap();
    let out = Command::new("named-checkzone").arg("rpz.isp.test").arg(&a).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn nftables_script_has_sets_and_passes_nft_check() {
    let s = String::from_utf8(walled_garden::nftables(&cases(), &allow(), Timestamp::from_secs(0))).unwrap();
    assert!(s.contains("elements = { 192.0.2.10, 203.0.113.5 }"), "{s}");
    assert!(s.contains("elements = { 2001:db8::7, 2001:db8:1:2:3:4:5:6 }"));
    assert!(s.contains("elements = { 203.0.113.0/24 }"));
    assert!(s.find("delete table inet botwatch").unwrap() < s.find("table inet botwatch {").unwrap());
    let empty =
        String::from_utf8(walled_garden::nftables(&[], &AllowList::default(), Timestamp::from_secs(0)))
            .unwrap();
    assert!(!empty.contains("elements"), "nft refuses empty element lists");
    if !have("nft") {
        eprintln!("skipped: nft not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, script) in [("full.nft", &s), ("empty.nft", &empty)] {
        let f = dir.path().join(name);
        std::fs::write(&f, script).unwrap();
        let out = Command::new("nft").arg("-c").arg("-f").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            && (err.contains("Operation not permitted") || err.contains("Permission denied"))
        {
            eprintln!("skipped: nft -c needs CAP_NET_ADMIN here: {err}");
            return;
        }
        assert!(out.status.success(), "nft -c -f {name}:\n{err}\n{script}");
    }
}

fn rows() -> Vec<ReportRow> {
    vec![
        ReportRow {
            time: Timestamp::from_secs(1_795_521_600),
            ip: "192.0.2.10".parse().unwrap(),
            port: Some(23),
            asn: Some(64496),
            classification_type: "infected-system".into(),
            malware: Some("mirai".into()),
            feed: "shadowserver_event4_sinkhole".into(),
            subscriber: Some("cust,\"42\"".into()),
            destination: Some("198.51.100.7:80".into()),
            protocol: Some("tcp".into()),
            raw: Some(b"2026-11-24 12:00:00,192.0.2.10,23".to_vec()),
            case_id: Some(7),
        },
        ReportRow {
            time: Timestamp::from_secs(1_795_525_200),
            ip: "2001:db8::7".parse().unwrap(),
            port: None,
            asn: None,
            classification_type: "infected-system".into(),
            malware: None,
            feed: "abusech_feodo".into(),
            subscriber: None,
            destination: None,
            protocol: None,
            raw: None,
            case_id: None,
        },
    ]
}

fn meta() -> ReportMeta {
    ReportMeta::new(
        "example-isp",
        "Example ISP",
        "2026-11-24",
        Timestamp::from_secs(1_795_600_000),
        reports::Party::from_mailbox("CERT Test <cert@botwatch.test>").unwrap(),
        "abuse@example.net",
    )
}

#[test]
fn csv_and_json_round_trip() {
    let c = reports::csv(&rows());
    let mut r = csv::Reader::from_reader(c.as_slice());
    assert_eq!(
        r.headers().unwrap(),
        vec![
            "time",
            "ip",
            "port",
            "asn",
            "type",
            "malware",
            "feed",
            "destination",
            "protocol",
            "subscriber",
            "case"
        ]
    );
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(&recs[0][0], "2026-11-24T12:00:00+00:00");
    assert_eq!(&recs[0][2], "23", "the source port, which a CGNAT operator needs");
    assert_eq!(&recs[0][9], "cust,\"42\"");
    assert_eq!(&recs[1][2], "");
    let j: serde_json::Value = serde_json::from_slice(&reports::json(&meta(), &rows())).unwrap();
    assert_eq!(j["count"], 2);
    assert_eq!((j["owner"].as_str(), j["owner_name"].as_str()), (Some("example-isp"), Some("Example ISP")));
    assert_eq!(j["rows"][1]["ip"], "2001:db8::7");
    assert_eq!(j["rows"][0]["type"], "infected-system");
    assert_eq!(j["rows"][0]["port"], 23);
    assert_eq!(j["rows"][1]["port"], serde_json::Value::Null);
}

/// Issue 11 (3): the fields XARF v4 wants, the organisation by name, the real feed, port and
/// ASN, the evidence; no mail-header artefacts. (`crates/botwatch/tests/validators.rs` runs
/// the `xarf` package's validator on the same output.)
#[test]
fn xarf_v4_one_report_per_incident_with_required_fields() {
    let reports = reports::xarf(&meta(), &rows());
    assert_eq!(reports.len(), 2);
    let a = &reports[0];
    assert_eq!(a["xarf_version"], reports::XARF_VERSION);
    assert_eq!((a["category"].as_str(), a["type"].as_str()), (Some("connection"), Some("infected_host")));
    assert_eq!(
        a["reporter"],
        serde_json::json!({"org": "CERT Test", "contact": "cert@botwatch.test", "domain": "botwatch.test"})
    );
    assert_eq!(a["sender"], a["reporter"]);
    assert_eq!((a["source_identifier"].as_str(), a["source_port"].as_u64()), (Some("192.0.2.10"), Some(23)));
    assert_eq!(
        (a["protocol"].as_str(), a["bot_type"].as_str(), a["bot_name"].as_str()),
        (Some("tcp"), Some("malicious"), Some("mirai"))
    );
    assert_eq!(
        (a["destination_ip"].as_str(), a["destination_port"].as_u64()),
        (Some("198.51.100.7"), Some(80))
    );
    assert_eq!(a["first_seen"], "2026-11-24T12:00:00+00:00");
    let tags: Vec<&str> = a["tags"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(
        tags,
        ["malware:mirai", "asn:64496", "feed:shadowserver_event4_sinkhole", "classification:infected-system"]
    );
    let desc = a["description"].as_str().unwrap();
    assert!(
        desc.starts_with("To Example ISP: 192.0.2.10:23 (AS64496)")
            && desc.contains("shadowserver_event4_sinkhole"),
        "{desc}"
    );
    assert_eq!(a["evidence"][0]["hash"].as_str().unwrap().len(), "sha256:".len() + 64);
    let id = a["report_id"].as_str().unwrap();
    assert_eq!((id.len(), &id[14..15]), (36, "5"), "a name-based UUID: {id}");
    assert!(!a.to_string().contains('>') && !a.to_string().contains("1970"));
    // No transport given: an infrastructure/botnet report, no port, no evidence it lacks.
    let b = &reports[1];
    assert_eq!((b["category"].as_str(), b["type"].as_str()), (Some("infrastructure"), Some("botnet")));
    assert!(b.get("source_port").is_none() && b.get("evidence").is_none());
    assert!(b["compromise_evidence"].as_str().unwrap().contains("abusech_feodo"));
    assert_ne!(a["report_id"], b["report_id"]);
}

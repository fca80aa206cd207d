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
        },
    ]
}

fn meta() -> ReportMeta {
    ReportMeta::new(
        "Example ISP",
        "2026-11-24",
        Timestamp::from_secs(1_795_600_000),
        "cert@botwatch.test",
        "abuse@example.net",
    )
}

#[test]
fn csv_and_json_round_trip() {
    let c = reports::csv(&rows());
    let mut r = csv::Reader::from_reader(c.as_slice());
    assert_eq!(
        r.headers().unwrap(),
        vec!["time", "ip", "port", "asn", "type", "malware", "feed", "subscriber"]
    );
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(&recs[0][0], "2026-11-24T12:00:00+00:00");
    assert_eq!(&recs[0][7], "cust,\"42\"");
    assert_eq!(&recs[1][2], "");
    let j: serde_json::Value = serde_json::from_slice(&reports::json(&meta(), &rows())).unwrap();
    assert_eq!(j["count"], 2);
    assert_eq!(j["owner"], "Example ISP");
    assert_eq!(j["rows"][1]["ip"], "2001:db8::7");
    assert_eq!(j["rows"][0]["type"], "infected-system");
    assert_eq!(j["rows"][1]["port"], serde_json::Value::Null);
}

#[test]
fn xarf_one_multipart_message_per_incident_with_required_fields() {
    let msgs = reports::xarf(&meta(), &rows());
    assert_eq!(msgs.len(), 2);
    for (i, m) in msgs.iter().enumerate() {
        let s = String::from_utf8(m.clone()).unwrap();
        assert!(!s.replace("\r\n", "").contains('\n'), "CRLF line ends only");
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        for h in
            ["X-XARF: PLAIN", "Auto-Submitted: auto-generated", "MIME-Version: 1.0", "To: abuse@example.net"]
        {
            assert!(head.contains(h), "{h}");
        }
        let boundary = head.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap();
        let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
        // preamble, 3 parts, closing "--"
        assert_eq!(parts.len(), 5, "{s}");
        assert!(parts[4].starts_with("--"));
        assert!(parts[2].contains("name=\"report.txt\""));
        let yaml = parts[2].split_once("\r\n\r\n").unwrap().1;
        let fields: std::collections::BTreeMap<&str, &str> =
            yaml.lines().filter_map(|l| l.split_once(": ")).collect();
        for f in [
            "Reported-From",
            "Category",
            "Report-Type",
            "User-Agent",
            "Date",
            "Source-Type",
            "Source",
            "Attachment",
            "Schema-URL",
            "Version",
            "Report-ID",
        ] {
            assert!(fields.contains_key(f), "report {i} lacks {f}:\n{yaml}");
        }
        assert_eq!(fields["Category"], "abuse");
        assert_eq!(fields["Version"], "'0.2'");
        assert_eq!(fields["Source-Type"], if i == 0 { "ipv4" } else { "ipv6" });
        assert_eq!(fields["Source"], if i == 0 { "'192.0.2.10'" } else { "'2001:db8::7'" });
        assert_eq!(fields.get("Port").copied(), if i == 0 { Some("23") } else { None });
        assert!(parts[3].contains(if i == 0 { "192.0.2.10" } else { "2001:db8::7" }));
    }
}

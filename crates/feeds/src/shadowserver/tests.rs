use super::*;
use botwatch_model::{Collected, FamilyTable, Timestamp};

fn run(id: &str, name: Option<&str>, data: &str) -> Collected {
    let spec = crate::registry::get(id).unwrap();
    let fam = FamilyTable::default();
    let ctx = ParseContext::new(&spec, name, Timestamp::from_secs(0), &fam);
    let mut out = Collected::default();
    spec.parser.parse(&Bytes::copy_from_slice(data.as_bytes()), &ctx, &mut out);
    out
}

const SINKHOLE_HEADER: &str = "\"timestamp\",\"protocol\",\"src_ip\",\"src_port\",\"src_asn\",\"src_geo\",\"src_region\",\"src_city\",\"src_hostname\",\"src_naics\",\"src_sector\",\"device_vendor\",\"device_type\",\"device_model\",\"dst_ip\",\"dst_port\",\"dst_asn\",\"dst_geo\",\"dst_region\",\"dst_city\",\"dst_hostname\",\"dst_naics\",\"dst_sector\",\"public_source\",\"infection\",\"family\",\"tag\",\"application\",\"version\",\"event_id\"";

#[test]
fn schema_has_every_published_report_and_the_legacy_ones() {
    let s = builtin_schema();
    assert!(s.len() >= 174, "{}", s.len());
    for r in s.reports() {
        assert!(!r.required_columns.is_empty(), "{} has no required columns", r.file_name);
    }
    assert!(s.get("botnet_drone").unwrap().legacy);
}

#[test]
fn type_from_file_names() {
    let s = builtin_schema();
    let t = |n: &str| s.type_from_file_name(n).map(|r| r.file_name.clone());
    assert_eq!(t("2024-07-04-event4_sinkhole-123-sample-asn.csv").as_deref(), Some("event4_sinkhole"));
    assert_eq!(
        t("/x/2020-08-02-cisco_smart_install-anarres-geo.csv").as_deref(),
        Some("scan_cisco_smart_install")
    );
    assert_eq!(t("scan_ssh.csv").as_deref(), Some("scan_ssh"));
    assert_eq!(t("2016-01-01-botnet_drone-x-geo.csv.gz").as_deref(), Some("botnet_drone"));
    assert_eq!(t("2024-07-04-no_such_report-x.csv"), None);
    assert_eq!(t("report.csv"), None);
}

#[test]
fn type_from_header_prefers_the_address_family_of_the_data() {
    let s = builtin_schema();
    // The current published column list, as a new report would carry it.
    let reports: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/shadowserver/reports.json")).unwrap();
    let header: Vec<String> = reports["event4_sinkhole"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let src = header.iter().position(|h| h == "src_ip").unwrap();
    let mut row = vec![String::new(); header.len()];
    row[src] = "192.0.2.1".into();
    assert_eq!(s.type_from_header(&header, Some(&row)).unwrap().file_name, "event4_sinkhole");
    row[src] = "2001:db8::1".into();
    assert_eq!(s.type_from_header(&header, Some(&row)).unwrap().file_name, "event6_sinkhole");
}

#[test]
fn sinkhole_row_maps_to_intelmq_fields() {
    let data = format!(
        "{SINKHOLE_HEADER}\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",17409,12252,\"PE\",\"LIMA\",\"LIMA\",,,,,,,\"178.162.1.2\",4455,28753,\"DE\",\"HESSEN\",\"FRANKFURT\",,518210,\"Comms\",\"eset\",\"Heodo\",\"emotet\",,,,\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let e = &out.events[0];
    assert_eq!(e.source.ip.unwrap().to_string(), "190.113.1.2");
    assert_eq!(e.source.port, Some(17409));
    assert_eq!(e.source.asn, Some(12252));
    assert_eq!(e.destination.port, Some(4455));
    assert_eq!(e.malware_name.as_deref(), Some("emotet"));
    assert_eq!(e.classification_identifier.as_deref(), Some("Heodo"));
    assert_eq!(e.classification_type, botwatch_model::ClassificationType::InfectedSystem);
    assert_eq!(e.time_source.unwrap().to_rfc3339(), "2021-03-04T00:00:00+00:00");
    assert_eq!(e.attr("extra.destination.naics"), Some(&Value::Int(518210)));
    assert_eq!(e.line, 2);
    assert!(e.raw.starts_with(b"\"2021-03-04"));
    assert!(!e.raw.ends_with(b"\n"));
}

#[test]
fn invalid_required_value_rejects_the_row_and_goes_on() {
    let data = format!(
        "{SINKHOLE_HEADER}\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.999.2\",1,,,,,,,,,,,,,,,,,,,,,,,,,,\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",1,,,,,,,,,,,,,,,,,,,,,,,,,,\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.rejects.len(), 1);
    assert_eq!(out.rejects[0].line, 2);
    assert!(out.rejects[0].reason.contains("src_ip"), "{}", out.rejects[0].reason);
    // An empty required port (real ip_spoofer reports have none) does not cost the line.
    let data = format!(
        "{SINKHOLE_HEADER}\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",,,,,,,,,,,,,,,,,,,,,,,,,,,\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!((out.events.len(), out.rejects.len()), (1, 0));
}

#[test]
fn unknown_columns_are_kept_and_reported_as_drift() {
    let data = format!(
        "{SINKHOLE_HEADER},\"brand_new\"\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",1,,,,,,,,,,,,,,,,,,,,,,,,,,,\"surprise\"\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!(out.events[0].attr("extra.brand_new"), Some(&Value::Str("surprise".into())));
    assert!(
        out.warnings.iter().any(|w| w.kind == WarningKind::SchemaDrift && w.message.contains("brand_new"))
    );
}

#[test]
fn optional_invalid_value_is_kept_raw() {
    let data = format!(
        "{SINKHOLE_HEADER}\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",1,,,,,,,,,,,\"not-an-ip\",,,,,,,,,,,,,,,\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].attr("extra.dst_ip"), Some(&Value::Str("not-an-ip".into())));
    assert!(out.warnings.iter().any(|w| w.kind == WarningKind::InvalidValue));
}

#[test]
fn missing_required_column_rejects_every_row_with_the_reason() {
    let out = run(
        "shadowserver_event4_sinkhole",
        None,
        "\"timestamp\",\"protocol\"\n\"2021-03-04 00:00:00\",\"tcp\"\n",
    );
    assert_eq!(out.events.len(), 0);
    assert_eq!(out.rejects.len(), 1);
    assert!(out.rejects[0].reason.contains("src_ip"));
}

#[test]
fn wrong_delimiter_gives_rejects_not_silence() {
    let data = SINKHOLE_HEADER.replace(',', ";") + "\n\"2021-03-04 00:00:00\";\"tcp\";\"190.113.1.2\";1\n";
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!(out.events.len(), 0);
    assert_eq!(out.rejects.len(), 1);
}

#[test]
fn short_row_and_garbage_are_rejected() {
    let data = format!("{SINKHOLE_HEADER}\n\"2021-03-04 00:00:00\",\"tcp\"\n\u{0}\u{1}\u{2}garbage\n");
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!(out.events.len(), 0);
    assert_eq!(out.rejects.len(), 2);
}

#[test]
fn any_report_parser_needs_a_recognisable_report() {
    let out = run(ANY_REPORT, Some("notes.txt"), "hello,world\n1,2\n");
    assert_eq!(out.events.len(), 0);
    assert_eq!(out.rejects.len(), 1);
    let out = run(ANY_REPORT, Some("2021-03-04-event4_sinkhole-x-asn.csv"), &format!("{SINKHOLE_HEADER}\n"));
    assert!(out.rejects.is_empty());
}

#[test]
fn empty_input_yields_nothing() {
    let out = run("shadowserver_scan_ssh", None, "");
    assert!(out.events.is_empty() && out.rejects.is_empty());
}

#[test]
fn byte_order_mark_and_crlf_are_tolerated() {
    let data = format!(
        "\u{feff}{SINKHOLE_HEADER}\r\n\"2021-03-04 00:00:00\",\"tcp\",\"190.113.1.2\",1,,,,,,,,,,,,,,,,,,,,,,,,,,\r\n"
    );
    let out = run("shadowserver_event4_sinkhole", None, &data);
    assert_eq!((out.events.len(), out.rejects.len()), (1, 0), "{:?}", out.rejects);
    assert!(!out.events[0].raw.ends_with(b"\r"));
    let s = builtin_schema();
    let (h, r) = header_and_first_row(data.as_bytes()).unwrap();
    assert_eq!(h[0], "timestamp");
    assert!(s.type_from_header(&h, r.as_deref()).is_some());
}

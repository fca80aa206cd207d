//! The UDP collector on a real socket on 127.0.0.1: NetFlow v9 packets encoded here by RFC 3954
//! (template FlowSet 0, data FlowSet 256), plus a malformed packet and a data set sent before
//! its template, which must be counted and not stop the collector.

use botwatch_model::Timestamp;
use botwatch_telemetry::flow::udp;
use botwatch_telemetry::record::FlowRecord;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const UNIX_SECS: u32 = 1_700_000_000;
const UPTIME_MS: u32 = 100_000;
const SOURCE_ID: u32 = 7;

/// (field type, length): IPV4_SRC_ADDR, IPV4_DST_ADDR, L4_SRC_PORT, L4_DST_PORT, PROTOCOL,
/// IN_PKTS, IN_BYTES, FIRST_SWITCHED, LAST_SWITCHED.
const TEMPLATE: [(u16, u16); 9] =
    [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4)];

fn header(count: u16, seq: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(9u16.to_be_bytes());
    p.extend(count.to_be_bytes());
    p.extend(UPTIME_MS.to_be_bytes());
    p.extend(UNIX_SECS.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(SOURCE_ID.to_be_bytes());
    p
}

fn template_set() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(0u16.to_be_bytes());
    s.extend((4 + 4 + 4 * TEMPLATE.len() as u16).to_be_bytes());
    s.extend(256u16.to_be_bytes());
    s.extend((TEMPLATE.len() as u16).to_be_bytes());
    for (t, l) in TEMPLATE {
        s.extend(t.to_be_bytes());
        s.extend(l.to_be_bytes());
    }
    s
}

struct Flow {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    pkts: u32,
    bytes: u32,
    first: u32,
    last: u32,
}

fn data_set(flows: &[Flow]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in flows {
        body.extend(f.src);
        body.extend(f.dst);
        body.extend(f.sport.to_be_bytes());
        body.extend(f.dport.to_be_bytes());
        body.push(f.proto);
        body.extend(f.pkts.to_be_bytes());
        body.extend(f.bytes.to_be_bytes());
        body.extend(f.first.to_be_bytes());
        body.extend(f.last.to_be_bytes());
    }
    // FlowSets are padded to a 32-bit boundary (RFC 3954 §5.3).
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut s = Vec::new();
    s.extend(256u16.to_be_bytes());
    s.extend((4 + body.len() as u16).to_be_bytes());
    s.extend(body);
    s
}

fn flows() -> Vec<Flow> {
    vec![
        Flow {
            src: [10, 0, 0, 1],
            dst: [198, 51, 100, 7],
            sport: 49152,
            dport: 443,
            proto: 6,
            pkts: 12,
            bytes: 3400,
            first: 95_000,
            last: 99_500,
        },
        Flow {
            src: [10, 0, 0, 2],
            dst: [203, 0, 113, 53],
            sport: 5353,
            dport: 53,
            proto: 17,
            pkts: 1,
            bytes: 80,
            first: 99_990,
            last: 99_990,
        },
    ]
}

#[test]
fn v9_over_udp_decodes_and_survives_bad_packets() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Vec<FlowRecord>>();
    std::thread::scope(|s| {
        let server = s.spawn(|| udp::serve_socket(socket, move |b| tx.send(b).unwrap(), &stop));
        let exporter = UdpSocket::bind("127.0.0.1:0").unwrap();

        // 1. Data before its template: dropped and counted.
        let mut early = header(1, 1);
        early.extend(data_set(&flows()));
        exporter.send_to(&early, addr).unwrap();
        // 2. Garbage and a truncated header.
        exporter.send_to(b"\x00\x09garbage", addr).unwrap();
        exporter.send_to(b"not netflow at all", addr).unwrap();
        // 3. Template and data in one packet.
        let mut p = header(2, 2);
        p.extend(template_set());
        p.extend(data_set(&flows()));
        exporter.send_to(&p, addr).unwrap();

        let got = rx.recv_timeout(Duration::from_secs(10)).expect("no records arrived");
        // 4. Data alone now that the template is known, from a new source port (exporter
        // restart): templates are scoped to address + Source ID.
        let exporter2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut p = header(1, 3);
        p.extend(data_set(&flows()[..1]));
        exporter2.send_to(&p, addr).unwrap();
        let got2 = rx.recv_timeout(Duration::from_secs(10)).expect("no records for data-only packet");

        stop.store(true, Ordering::Relaxed);
        let counters = server.join().unwrap().unwrap();

        assert_eq!(got.len(), 2);
        let r = &got[0];
        assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!((r.src_port, r.dst_port, r.proto, r.packets, r.bytes), (49152, 443, 6, 12, 3400));
        // FIRST_SWITCHED 95 000 ms of uptime, exported at uptime 100 000 ms = 1 700 000 000 s.
        assert_eq!(r.start, Timestamp::from_secs(i64::from(UNIX_SECS) - 5));
        assert_eq!(r.end, Timestamp(i64::from(UNIX_SECS) * 1_000_000 - 500_000));
        assert_eq!(r.exporter, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!((got[1].dst_port, got[1].proto), (53, 17));
        assert_eq!(got2.len(), 1);
        assert_eq!(got2[0].bytes, 3400);

        assert_eq!(counters.packets, 5);
        assert_eq!(counters.records, 3);
        assert_eq!(counters.missing_template, 1);
        assert_eq!(counters.malformed, 2);
        assert_eq!(counters.templates, 1);
    });
}

#[test]
fn serve_binds_and_stops() {
    let stop = AtomicBool::new(true);
    let c = udp::serve("127.0.0.1:0".parse().unwrap(), |_| panic!("no data expected"), &stop).unwrap();
    assert_eq!(c.packets, 0);
}

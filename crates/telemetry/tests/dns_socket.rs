//! The dnstap Unix-socket receiver, driven the way Unbound's and BIND's writers drive it:
//! READY → ACCEPT, START, the data frames of the real sample file, STOP → FINISH.

use botwatch_telemetry::dns::{self, fstrm, serve_unix};
use botwatch_telemetry::record::DnsRecord;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn sample() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns/generated_unbound/unbound.dnstap.fstrm"),
    )
    .unwrap()
}

fn data_frames(file: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(Some((f, used))) = fstrm::parse_frame(&file[pos..], fstrm::MAX_DATA_FRAME) {
        if let fstrm::Frame::Data(d) = f {
            out.push(d.to_vec());
        }
        pos += used;
    }
    out
}

fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("connect: {e}"),
        }
    }
}

fn read_control(s: &mut UnixStream) -> (u32, Vec<Vec<u8>>) {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let mut all = head.to_vec();
    all.extend(body);
    match fstrm::parse_frame(&all, 0).unwrap().unwrap().0 {
        fstrm::Frame::Control { kind, content_types } => {
            (kind, content_types.into_iter().map(<[u8]>::to_vec).collect())
        }
        f => panic!("expected a control frame, got {f:?}"),
    }
}

#[test]
fn bidirectional_handshake_and_sample_frames_give_the_file_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.sock");
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<DnsRecord>();
    let file = sample();
    let frames = data_frames(&file);
    assert_eq!(frames.len(), 1680);

    let totals = std::thread::scope(|s| {
        let server = s.spawn(|| serve_unix(&path, tx, &stop).unwrap());
        let mut c = connect(&path);
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&fstrm::encode_control(fstrm::READY, Some(fstrm::CONTENT_TYPE))).unwrap();
        assert_eq!(read_control(&mut c), (fstrm::ACCEPT, vec![fstrm::CONTENT_TYPE.to_vec()]));
        c.write_all(&fstrm::encode_control(fstrm::START, Some(fstrm::CONTENT_TYPE))).unwrap();
        // Odd-sized writes so frames straddle reads.
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend(fstrm::encode_data(f));
        }
        for chunk in stream.chunks(1000) {
            c.write_all(chunk).unwrap();
        }
        c.write_all(&fstrm::encode_control(fstrm::STOP, None)).unwrap();
        assert_eq!(read_control(&mut c).0, fstrm::FINISH);
        drop(c);
        // The connection thread has sent everything once FINISH went out; wait for its count.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 840 && Instant::now() < deadline {
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(100)) {
                got.push(r);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let totals = server.join().unwrap();
        (totals, got)
    });
    let (totals, mut got) = totals;
    assert_eq!(totals.connections, 1);
    assert_eq!(totals.protocol_errors, 0);
    assert_eq!((totals.stats.paired, totals.stats.records, totals.stats.rejects), (840, 840, 0));
    let (mut want, _, _) = dns::read(&file, "unbound.dnstap.fstrm").unwrap();
    let key = |r: &DnsRecord| (r.time, r.client, r.client_port, r.qname.clone());
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn a_writer_offering_another_content_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sock");
    let stop = AtomicBool::new(false);
    let (tx, _rx) = mpsc::channel::<DnsRecord>();
    let totals = std::thread::scope(|s| {
        let server = s.spawn(|| serve_unix(&path, tx, &stop).unwrap());
        let mut c = connect(&path);
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&fstrm::encode_control(fstrm::READY, Some(b"protobuf:other"))).unwrap();
        // The receiver hangs up without ACCEPT.
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf).unwrap(), 0);
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap()
    });
    assert_eq!((totals.connections, totals.protocol_errors), (1, 1));
}

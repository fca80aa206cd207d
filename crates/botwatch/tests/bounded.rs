//! Issue 11 (6): compressed input is decompressed as a stream, under a ratio and a total
//! limit, so a compression bomb is refused with a clear error after a few megabytes and
//! peak memory does not follow the input's size. Peak RSS is the child's, measured by the
//! kernel (`getrusage` through Python's `resource`, which every CI machine here has).

mod common;

use common::ok;
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Runs botwatch and returns (exit code, stderr, peak RSS in KiB).
fn run_measured(args: &[&str]) -> (i32, String, u64) {
    let py = "import resource, subprocess, sys\n\
              p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
              sys.stderr.buffer.write(p.stderr)\n\
              print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let o = Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(env!("CARGO_BIN_EXE_botwatch"))
        .args(args)
        .env_remove("BOTWATCH_DB")
        .env_remove("BOTWATCH_CONFIG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut it = out.split_whitespace();
    let code: i32 = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no result: {out}"));
    let rss: u64 = it.next().and_then(|v| v.parse().ok()).unwrap();
    (code, String::from_utf8_lossy(&o.stderr).to_string(), rss)
}

/// Peak RSS of `botwatch [pre] scan --no-store` over the file `make` writes at each of `sizes`
/// (`what` names it in the output): (file bytes, peak KiB) per size.
fn scan_peaks(
    dir: &Path,
    pre: &[&str],
    what: &str,
    sizes: [u64; 2],
    make: impl Fn(&Path, u64),
) -> Vec<(u64, u64)> {
    let mut peaks = Vec::new();
    for n in sizes {
        let p = dir.join(format!("{n}-{what}"));
        make(&p, n);
        let size = std::fs::metadata(&p).unwrap().len();
        let db = dir.join(format!("{n}.db"));
        let mut args = pre.to_vec();
        args.extend(["scan", "--no-store", "--db", db.to_str().unwrap(), p.to_str().unwrap()]);
        let (code, err, rss) = run_measured(&args);
        assert_eq!(code, 0, "{err}");
        eprintln!("{what} of {n} ({} MB): peak RSS {} MiB", size / 1_000_000, rss / 1024);
        peaks.push((size, rss));
    }
    // Eight times the input, not eight times the memory: at most a third more.
    let (small, big) = (peaks[0], peaks[1]);
    assert!(big.0 > 7 * small.0, "{peaks:?}");
    assert!(big.1 * 3 < small.1 * 4, "peak RSS grew with the {what}: {peaks:?}");
    peaks
}

/// Peak RSS (KiB) of `botwatch [pre] scan --no-store` over `dir/plain` gzipped (named as it
/// with `.gz`, so detection sees the same name).
fn gzipped_peak(dir: &Path, pre: &[&str], plain: &str) -> u64 {
    let gz = dir.join(format!("{plain}.gz"));
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(dir.join(plain)).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let db = dir.join("gz.db");
    let mut args = pre.to_vec();
    args.extend(["scan", "--no-store", "--db", db.to_str().unwrap(), gz.to_str().unwrap()]);
    let (code, err, rss) = run_measured(&args);
    assert_eq!(code, 0, "{err}");
    eprintln!("{plain} gzipped: peak RSS {} MiB", rss / 1024);
    rss
}

/// A gzip that expands to `members` × 16 MiB of the same CSV row: concatenated gzip
/// members (which `gzip -d` and IntelMQ read as one stream) make it cheap to build.
fn bomb(path: &Path, members: usize) {
    let header = "\"timestamp\",\"ip\",\"port\",\"asn\",\"geo\",\"region\",\"city\",\"hostname\",\"type\",\"infection\"\n";
    let row = "\"2026-11-24 10:00:00\",\"192.0.2.7\",\"40001\",\"64496\",\"DE\",\"x\",\"y\",\"\",\"tcp\",\"emotet\"\n";
    let mut block = String::with_capacity(16 << 20);
    while block.len() + row.len() <= 16 << 20 {
        block.push_str(row);
    }
    let gz = |s: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&gz(header)).unwrap();
    let one = gz(&block);
    for _ in 0..members {
        f.write_all(&one).unwrap();
    }
}

#[test]
fn a_gzip_bomb_is_refused_early_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("2026-11-24-event4_sinkhole-bomb.csv.gz");
    bomb(&path, 120); // 1.9 GiB expanded
    let compressed = std::fs::metadata(&path).unwrap().len();
    assert!(compressed < 16 << 20, "{compressed}");
    let db = dir.path().join("b.db");
    let (code, err, rss_kib) =
        run_measured(&["ingest", "--quiet", "--db", db.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("compression bomb") && err.contains("max_ratio"), "{err}");
    // The old path held the whole 1.9 GiB (2.1 GB RSS); streaming stops past 16 MiB.
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB for a refused bomb");
    let reports = ok(&["reports", "--db", db.to_str().unwrap()]);
    assert!(!reports.contains("bomb"), "nothing of it was stored: {reports}");
    eprintln!("1.9 GiB gzip bomb ({compressed} bytes): refused, peak RSS {} MiB", rss_kib / 1024);
}

#[test]
fn a_large_report_is_read_in_chunks_in_bounded_memory() {
    // Peak memory of a 10 MB and a 40 MB report: chunked reading keeps it from growing with
    // the input (the old path held the whole input and its events' raw lines).
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for rows in [40_000u64, 160_000] {
        let p = dir.path().join(format!("2026-11-24-event4_sinkhole-{rows}.csv"));
        let report = ok(&["synth", "--rows", &rows.to_string(), "--infected", "2000", "--day", "2026-11-24"]);
        std::fs::write(&p, report).unwrap();
        let size = std::fs::metadata(&p).unwrap().len();
        let db = dir.path().join(format!("{rows}.db"));
        let (code, err, rss) =
            run_measured(&["ingest", "--quiet", "--db", db.to_str().unwrap(), p.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        eprintln!("{rows} rows ({} MB): peak RSS {} MiB", size / 1_000_000, rss / 1024);
        peaks.push((size, rss));
    }
    let (small, big) = (peaks[0], peaks[1]);
    assert!(big.0 > 3 * small.0);
    // Four times the input, not four times the memory: at most a third more.
    assert!(big.1 * 3 < small.1 * 4, "peak RSS grew with the input: {peaks:?}");
}

#[test]
fn a_large_flow_log_is_scanned_line_by_line_in_bounded_memory() {
    // A Zeek conn.log of 5 MB and of eight times that, plain and gzipped: `scan` reads it line
    // by line, so peak memory is the detectors' (bounded by [sensor.flows]), not the file's.
    // The old path held the whole file and a Vec of its records.
    let dir = tempfile::tempdir().unwrap();
    let peaks = scan_peaks(dir.path(), &[], "conn.log", [75_000, 600_000], |p, lines| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
        writeln!(w, "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state").unwrap();
        // One client past its flow bound (100,000), so the detectors' memory stops growing
        // while the file goes on.
        for i in 0..lines {
            let (t, port, dst) = (1_700_000_000 + i / 10, 1024 + i % 60000, i % 200);
            writeln!(w, "{t}.{:06}\tC{i}\t10.1.2.3\t{port}\t198.51.100.{dst}\t443\ttcp\tSF", i % 10).unwrap();
        }
        w.flush().unwrap();
    });
    let rss = gzipped_peak(dir.path(), &[], "600000-conn.log");
    assert!(rss * 3 < peaks[0].1 * 4, "a gzipped log was held whole: {rss} KiB against {peaks:?}");
}

#[test]
fn a_large_resolver_log_is_scanned_line_by_line_in_bounded_memory() {
    // An Unbound query log of ~3 MB and of eight times that: each query waits for its reply
    // for at most two reply windows (a minute), so memory holds about a minute of queries.
    // The old reader held every record until the end of the file.
    let dir = tempfile::tempdir().unwrap();
    scan_peaks(dir.path(), &[], "unbound.log", [20_000, 160_000], |p, queries| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
        for i in 0..queries {
            let t = i / 20;
            let stamp = format!("Nov 25 {:02}:{:02}:{:02} unbound[1:0]", t / 3600 % 24, t / 60 % 60, t % 60);
            let (client, name) = (format!("10.0.0.{}", i % 50 + 1), format!("host{}.example.com.", i % 2000));
            writeln!(w, "{stamp} query: {client} {name} A IN").unwrap();
            if i % 3 > 0 {
                writeln!(w, "{stamp} reply: {client} {name} A IN NOERROR 0.001 0 60").unwrap();
            }
        }
        w.flush().unwrap();
    });
}

/// A classic pcap of `n` DNS queries over UDP/IPv4 from 50 clients (each from one port), ten
/// a second, for names that repeat every 2,000.
fn dns_capture(path: &Path, n: u32) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    // Little-endian pcap header: version 2.4, snap length 65535, Ethernet.
    let mut head = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    head.extend([0u8; 8]);
    head.extend(65535u32.to_le_bytes());
    head.extend(1u32.to_le_bytes());
    w.write_all(&head).unwrap();
    for i in 0..n {
        let mut dns = Vec::new();
        dns.extend((i as u16).to_be_bytes());
        dns.extend([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let label = format!("host{}", i % 2000);
        dns.push(label.len() as u8);
        dns.extend(label.bytes());
        dns.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let client = (i % 50) as u8 + 1;
        let udp_len = 8 + dns.len() as u16;
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, client, 10, 0, 0, 53]);
        let total = 20 + udp_len;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend((40000 + client as u16).to_be_bytes());
        f.extend(53u16.to_be_bytes());
        f.extend(udp_len.to_be_bytes());
        f.extend([0, 0]);
        f.extend(&dns);
        let (secs, usec) = (1_700_000_000 + i / 10, (i % 10) * 100_000);
        w.write_all(&secs.to_le_bytes()).unwrap();
        w.write_all(&usec.to_le_bytes()).unwrap();
        w.write_all(&(f.len() as u32).to_le_bytes()).unwrap();
        w.write_all(&(f.len() as u32).to_le_bytes()).unwrap();
        w.write_all(&f).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn a_capture_over_max_document_is_streamed_in_bounded_memory() {
    // A DNS capture of ~2 MB and of eight times that (with `[ingest] max_document_mib = 1`,
    // which holds only compressed ones): `scan` reads them from disk through one buffer
    // (once for flow exports, once for the packets' flows, once for DNS) instead of whole.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("botwatch.toml");
    std::fs::write(&cfg, "[ingest]\nmax_document_mib = 1\n").unwrap();
    let peaks = scan_peaks(
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
        "dns.pcap",
        [25_000, 200_000],
        |p, n| dns_capture(p, n as u32),
    );
    // The larger one gzipped, 16 times `max_document_mib` expanded: decompressed once per
    // pass, as it is read, so neither refused nor held whole. The old path refused it.
    let rss = gzipped_peak(dir.path(), &["--config", cfg.to_str().unwrap()], "200000-dns.pcap");
    assert!(rss * 3 < peaks[0].1 * 4, "a gzipped capture was held whole: {rss} KiB against {peaks:?}");
}

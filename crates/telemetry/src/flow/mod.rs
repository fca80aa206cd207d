//! Flow telemetry: an ISP's own NetFlow/IPFIX and flow logs, decoded into [`FlowRecord`]s.
//!
//! Public API:
//! - [`Collector`] — NetFlow v5/v7/v9 and IPFIX decoding (wire format by `netflow_parser`)
//!   with template caches per exporter (address + v9 Source ID / IPFIX Observation Domain);
//!   `decode(exporter, packet, &mut out) -> Result<usize, DecodeError>`, never panics,
//!   [`Counters`] for malformed packets and data sets whose template is missing. v5/v9
//!   uptime-relative times become absolute through the header's sysUpTime/unix_secs; IPFIX
//!   `flowStart/End{Seconds,Milliseconds,Microseconds,Nanoseconds}`, `…DeltaMicroseconds` and
//!   `…SysUpTime` (with `systemInitTimeMilliseconds` from the record or options data) too.
//! - [`pcap::replay`] — export traffic captured in pcap/pcapng (Ethernet, Linux cooked, raw IP,
//!   loopback) fed to a collector, exporter = the frame's source address; [`PortFilter`]
//!   chooses the default ports (2055, 9995, 9996, 4739; sFlow's 6343 never) or any datagram
//!   that starts with a flow version.
//! - [`udp::serve`] / [`udp::serve_socket`] — a blocking collector on a `UdpSocket` with a
//!   read timeout, until an `AtomicBool` says stop; returns the counters.
//! - [`log::read_log`] — Argus `binetflow` (CSV or TSV), Zeek `conn.log`, and `nfdump -o csv`.
//!   Header-driven; bad lines become [`botwatch_model::Reject`]s with line number and reason.
//! - [`nfcapd::read_nfcapd`] — nfdump 1.7 binary files (nfcapd, nfpcapd, `nfdump -w`; our own
//!   reader, uncompressed and LZ4), streamed: one reused record per flow to a callback; bad
//!   blocks and records are rejects numbered by block. [`nfcapd::read_nfcapd_from`] reads the
//!   same from a file, one block at a time into a reused buffer. LZO/BZ2/ZSTD and nfdump 1.6 files
//!   are refused with the `nfdump` command that converts them.
//! - [`detect`] and [`read`] — a file's format from its first bytes (name as a hint), and the
//!   whole file decoded: records, rejects and [`Stats`]. Files are replayed with
//!   [`PortFilter::Any`] because captures are often made on a lab port.
//!
//! ```
//! use botwatch_telemetry::flow::{self, FlowFormat};
//! let log = b"StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,TotPkts,TotBytes\n\
//!             2018/09/27 22:40:52.36,1.5,tcp,192.168.2.1,52893,  ->,192.0.2.12,22,35,3766\n";
//! assert_eq!(flow::detect(log, "x.binetflow"), Some(FlowFormat::Argus));
//! let (records, rejects, stats) = flow::read(log, "x.binetflow").unwrap();
//! assert_eq!((records.len(), rejects.len(), stats.records), (1, 0, 1));
//! ```

pub mod log;
pub mod netflow;
pub mod nfcapd;
pub mod packets;
pub mod pcap;
pub mod udp;

pub use log::{LogKind, LogStats, read_log};
pub use netflow::{Collector, Counters, DecodeError};
pub use pcap::{PcapStats, PortFilter};

use crate::record::FlowRecord;
use botwatch_model::Reject;
use serde::Serialize;

/// A flow file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowFormat {
    /// pcap or pcapng holding NetFlow/IPFIX export datagrams.
    Pcap,
    Argus,
    ZeekConn,
    NfdumpCsv,
    /// nfdump's binary file (nfcapd, layout 2).
    Nfcapd,
}

impl FlowFormat {
    /// The dialect of a flow log, which is read line by line ([`log::read_lines`]) and so
    /// can be streamed from a file of any size; `None` for binary formats.
    pub fn log_kind(self) -> Option<LogKind> {
        match self {
            FlowFormat::Argus => Some(LogKind::Argus),
            FlowFormat::ZeekConn => Some(LogKind::Zeek),
            FlowFormat::NfdumpCsv => Some(LogKind::Nfdump),
            FlowFormat::Pcap | FlowFormat::Nfcapd => None,
        }
    }
}

/// Why a whole file could not be read (single bad lines or packets are rejects instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("unrecognised flow file format")]
    Unrecognised,
    #[error("no header line")]
    NoHeader,
    #[error("{kind:?} header lacks the columns a flow needs: {}", missing.join(", "))]
    MissingColumns { kind: LogKind, missing: Vec<&'static str> },
    #[error(transparent)]
    Pcap(#[from] pcap::PcapError),
    #[error(transparent)]
    Nfcapd(#[from] nfcapd::NfcapdError),
}

/// What reading one file saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub format: FlowFormat,
    pub records: u64,
    pub rejected: u64,
    /// Flow logs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogStats>,
    /// Captures only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PcapStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netflow: Option<Counters>,
    /// nfcapd files only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfcapd: Option<nfcapd::NfcapdStats>,
    /// Captures without NetFlow/IPFIX exports, whose packets became the flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<packets::PacketStats>,
}

/// Detects a flow file from its first bytes; `name` only breaks ties.
pub fn detect(data: &[u8], name: &str) -> Option<FlowFormat> {
    if pcap::is_pcap(data) {
        return Some(FlowFormat::Pcap);
    }
    if nfcapd::is_nfcapd(data) {
        return Some(FlowFormat::Nfcapd);
    }
    // A Zeek log names its kind (`#path`, or its JSON keys): only `conn` is flows.
    if let Some(kind) = crate::dns::zeek::path(data) {
        return (kind == "conn").then_some(FlowFormat::ZeekConn);
    }
    let head = &data[..data.len().min(4096)];
    let first = head.split(|&c| c == b'\n').find(|l| !l.iter().all(u8::is_ascii_whitespace)).unwrap_or(b"");
    if first.starts_with(b"ts,te,td,sa,da") {
        return Some(FlowFormat::NfdumpCsv);
    }
    let has = |w: &[u8]| first.windows(w.len()).any(|x| x == w);
    if has(b"StartTime") && has(b"SrcAddr") || has(b"Proto") && (has(b"TotPkts") || has(b"SrcBytes")) {
        return Some(FlowFormat::Argus);
    }
    let name = name.to_ascii_lowercase();
    if name.ends_with(".binetflow") {
        Some(FlowFormat::Argus)
    } else if name.contains("conn.log") {
        Some(FlowFormat::ZeekConn)
    } else {
        None
    }
}

/// Reads a whole flow file of any supported format.
pub fn read(data: &[u8], name: &str) -> Result<(Vec<FlowRecord>, Vec<Reject>, Stats), FlowError> {
    let format = detect(data, name).ok_or(FlowError::Unrecognised)?;
    let (mut out, mut rejects) = (Vec::new(), Vec::new());
    let kind = match format {
        FlowFormat::Pcap => {
            let mut c = Collector::new();
            let p = pcap::replay(data, &mut c, &PortFilter::Any, &mut out, &mut rejects)?;
            // No flow exports in it: a capture at a host or a tap, whose packets are the flows.
            let packets = (p.export_packets == 0).then(|| {
                let (f, st) = packets::flows(data);
                out = f;
                st
            });
            let stats = Stats {
                format,
                records: out.len() as u64,
                rejected: rejects.len() as u64,
                log: None,
                pcap: Some(p),
                netflow: Some(c.counters()),
                nfcapd: None,
                packets,
            };
            return Ok((out, rejects, stats));
        }
        FlowFormat::Nfcapd => {
            let n = nfcapd::read_nfcapd(data, |r| out.push(r.clone()), &mut rejects)?;
            let stats = Stats {
                format,
                records: n.records,
                rejected: n.rejected,
                log: None,
                pcap: None,
                netflow: None,
                nfcapd: Some(n),
                packets: None,
            };
            return Ok((out, rejects, stats));
        }
        FlowFormat::Argus | FlowFormat::ZeekConn | FlowFormat::NfdumpCsv => {
            format.log_kind().expect("a flow log")
        }
    };
    let l = read_log(data, kind, &mut out, &mut rejects)?;
    let stats = Stats {
        format,
        records: l.records,
        rejected: l.rejected,
        log: Some(l),
        pcap: None,
        netflow: None,
        nfcapd: None,
        packets: None,
    };
    Ok((out, rejects, stats))
}

/// Entry points for the cargo-fuzz targets and the corpus replay test.
pub mod fuzzing {
    use super::*;
    use std::net::SocketAddr;

    /// The input as one export packet, then as a sequence of packets framed by a 2-byte
    /// big-endian length (so templates followed by data reach the same collector), then as
    /// a capture.
    pub fn netflow(data: &[u8]) {
        let ex: SocketAddr = ([192, 0, 2, 1], 2055).into();
        let mut c = Collector::new();
        let mut out = Vec::new();
        let _ = c.decode(ex, data, &mut out);
        let mut rest = data;
        while rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let _ = c.decode(ex, &rest[2..2 + n], &mut out);
            rest = &rest[2 + n..];
        }
        let k = c.counters();
        assert!(k.records as usize == out.len() && k.malformed <= k.packets);
        let _ = pcap::replay(data, &mut c, &PortFilter::Any, &mut out, &mut Vec::new());
        // The same bytes as a capture of raw packets (a host's or a tap's), and what the
        // flow detectors make of whatever came out.
        let (flows, st) = packets::flows(data);
        assert_eq!(st.flows as usize, flows.len());
        detectors(&flows);
    }

    /// Every flow through the beacon, scan, upload, spam and flood detectors: no input may panic them.
    fn detectors(flows: &[FlowRecord]) {
        use crate::detect::{beacon, flood, flows::FlowMemory, scan, scope::Scope, spam, upload};
        let mut b = beacon::BeaconDetector::new(beacon::BeaconConfig { min_events: 3, ..Default::default() });
        let mut s = scan::ScanDetector::new(scan::ScanConfig { min_targets: 2, ..Default::default() });
        let mut m = FlowMemory::default();
        for f in flows {
            b.observe(f);
            s.observe(f);
            m.observe(f);
        }
        let _ = b.finish(&Scope::default());
        let _ = s.finish(&Scope::default());
        let low = upload::UploadConfig { min_bytes: 1, min_ratio: 0.0, ..Default::default() };
        // Each finding is well formed whatever the flows: a confidence in its range, evidence
        // in time order, a destination named.
        let sane = |f: &crate::detect::Finding| {
            (0.55..=0.95).contains(&f.confidence) && f.first_seen <= f.last_seen && !f.samples.is_empty()
        };
        let (found, _) = upload::find(&m, &low, &Scope::default());
        assert!(found.iter().all(sane), "{found:?}");
        let low = spam::SpamConfig { min_servers: 0, ..Default::default() };
        let (found, _) = spam::find(&m, &low, &Scope::default());
        assert!(found.iter().all(sane), "{found:?}");
        let low = flood::FloodConfig { min_attempts: 0, min_bytes: 0, ..Default::default() };
        let found = flood::find(&m, &low, &Scope::default());
        assert!(found.iter().all(sane), "{found:?}");
    }

    /// The input as each flow-log dialect and through detection. Each is also streamed
    /// through a 5-byte read buffer, which must give what the in-memory read gives.
    pub fn flowlog(data: &[u8]) {
        for kind in [LogKind::Argus, LogKind::Zeek, LogKind::Nfdump] {
            let (mut out, mut rej) = (Vec::new(), Vec::new());
            let whole = read_log(data, kind, &mut out, &mut rej);
            if let Ok(st) = &whole {
                assert_eq!(st.records as usize, out.len());
                assert!(rej.iter().all(|r| r.line > 0 && !r.reason.is_empty()));
                detectors(&out);
            }
            struct Both(Vec<FlowRecord>, Vec<Reject>);
            impl log::LogSink for Both {
                fn record(&mut self, r: FlowRecord, _label: Option<String>) {
                    self.0.push(r);
                }
                fn reject(&mut self, r: Reject) {
                    self.1.push(r);
                }
            }
            let mut lines = crate::lines::ReadLines::new(std::io::BufReader::with_capacity(5, data));
            let mut streamed = Both(Vec::new(), Vec::new());
            let st = log::read_lines(&mut lines, kind, &mut streamed);
            assert_eq!(st, whole);
            assert_eq!((streamed.0, streamed.1), (out, rej));
        }
        let _ = read(data, "fuzz");
    }

    /// The input as an nfcapd file, then as the payload of one uncompressed and one LZ4
    /// block behind a valid header, so mutations reach the records without first having to
    /// find the magic. Each is also read block by block from a reader, which must give what
    /// the in-memory reader gives.
    pub fn nfcapd(data: &[u8]) {
        let check = |file: &[u8]| {
            let (mut out, mut rej) = (Vec::new(), Vec::new());
            let r = nfcapd::read_nfcapd(file, |f| out.push(f.clone()), &mut rej);
            if let Ok(st) = &r {
                assert!(st.records == out.len() as u64 && st.rejected as usize == rej.len());
                assert!(rej.iter().all(|r| r.line > 0 && !r.reason.is_empty()));
            }
            let (mut out2, mut rej2) = (Vec::new(), Vec::new());
            let r2 =
                nfcapd::read_nfcapd_from(std::io::Cursor::new(file), |f| out2.push(f.clone()), &mut rej2);
            assert!(r2 == r && out2 == out && rej2 == rej);
        };
        check(data);
        let records = u32::from(data.first().copied().unwrap_or(1));
        let mut f = nfcapd::build::header(0, 1, 0, 0);
        f.extend(nfcapd::build::block(records, data));
        check(&f);
        let mut f = nfcapd::build::header(3, 1, 0, 0);
        f.extend(nfcapd::build::block(records, &lz4_flex::block::compress(data)));
        check(&f);
        let _ = read(data, "fuzz.nfcapd");
    }
}

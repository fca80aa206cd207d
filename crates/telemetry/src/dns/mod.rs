//! DNS resolver telemetry into [`DnsRecord`]s: one record per client query, completed by
//! its response (rcode, A/AAAA answers) when the source shows both.
//!
//! Inputs, each detected from the first bytes (and the file name as a hint):
//! - **dnstap** in Frame Streams files (`fstrm_capture`, `dnstap-ldns -w`, Unbound/BIND/
//!   Knot/dnsdist writers): `CLIENT_QUERY` and `CLIENT_RESPONSE` messages, paired by
//!   (client address, client port, DNS id). Other message types (resolver/auth side) are
//!   counted and skipped. The protobuf schema is written as prost structs in [`dnstap`].
//! - **Unbound** `log-queries`/`log-replies` lines (`query:`/`reply:` tags or `info:`) and
//!   **BIND** query-log lines (`client @0x… 10.0.0.5#53422 (name): query: name IN A +E(0)K`),
//!   behind syslog (`Nov 25 17:20:05`), ISO 8601, BIND (`25-Nov-2026 17:20:05.123`) or epoch
//!   (`[1700000000]`) time prefixes. Unbound reply lines complete the query line before them.
//! - **pcap / pcapng** captures (Ethernet, raw IP, Linux SLL, BSD loopback): DNS over
//!   UDP and TCP port 53; responses complete queries by (client, port, DNS id).
//!
//! All wire-format DNS goes through hickory-proto, except the common shapes (a query, an
//! A/AAAA answer) that `wire` reads directly and hickory would read identically. Naive
//! times (syslog, BIND) are UTC.
//! Syslog stamps carry no year: they are placed in the year that puts them at most one day
//! after [`ReadOptions::reference`] (normally the file's mtime or the clock); without a
//! reference such query lines are rejected rather than guessed.
//!
//! Public API:
//! - [`detect`]`(bytes, name) -> Option<DnsFormat>`
//! - [`read`]`(bytes, name)` / [`read_with`]`(bytes, name, &ReadOptions)` →
//!   `(Vec<DnsRecord>, Vec<Reject>, Stats)`, records in query-time order; [`read_as`] for a
//!   known format. Never panics; bad lines, frames and packets become [`Reject`]s with their
//!   line/frame/packet number (1-based), raw bytes and reason.
//! - [`read_into`]`(bytes, format, &ReadOptions, sink)`: the same decode streamed into a
//!   [`DnsSink`] as exchanges complete, unsorted, without collecting the records.
//! - [`serve_unix`]`(path, sink, &stop)`: a Frame Streams receiver on a Unix socket for
//!   `dnstap-socket-path` (bidirectional READY/ACCEPT/START … STOP/FINISH handshake, or
//!   unidirectional START); records go to a [`DnsSink`] as their responses arrive.
//! - [`fstrm`]: the Frame Streams framing (decoder and control-frame encoder).
//! - [`fuzzing`]: the entry points of the `telemetry_dnstap`, `telemetry_dnslog` and
//!   `telemetry_dnspcap` targets.
//!
//! ```
//! use botwatch_telemetry::dns;
//! let log = b"[1764091205] unbound[1:0] query: 10.0.0.5 Example.COM. A IN\n";
//! let (records, rejects, _stats) = dns::read(log, "unbound.log").unwrap();
//! assert_eq!((records[0].qname.as_str(), rejects.len()), ("example.com", 0));
//! ```

pub mod dnstap;
pub mod fstrm;
mod log;
mod pair;
mod pcap;
mod socket;
mod wire;
pub mod zeek;

use crate::record::DnsRecord;
use botwatch_model::{Reject, Timestamp};
pub use socket::{ServeStats, serve_unix};

/// The DNS telemetry formats [`read`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsFormat {
    /// Frame Streams file of `protobuf:dnstap.Dnstap` frames.
    Dnstap,
    /// Unbound `log-queries` / `log-replies` text.
    UnboundLog,
    /// BIND `querylog` text.
    BindQueryLog,
    /// pcap or pcapng capture.
    Pcap,
    /// Zeek `dns.log`, TSV or JSON.
    ZeekDns,
}

/// What [`read`] could not do at all (as opposed to per-line rejects).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("input is not a recognised DNS telemetry format ({name})")]
    Unrecognised { name: String },
}

/// Context a pure decoder cannot know by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Resolves the missing year of syslog time stamps; see the module header.
    pub reference: Option<Timestamp>,
}

/// Counters of one decode; what came in, what went out, what was skipped and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Frame Streams frames (control + data).
    pub frames: u64,
    pub control_frames: u64,
    /// dnstap messages that are not CLIENT_QUERY/CLIENT_RESPONSE (resolver side, …).
    pub messages_skipped: u64,
    /// Captured packets, and those that are not DNS on port 53 (or are IP fragments).
    pub packets: u64,
    pub packets_skipped: u64,
    /// Text lines, and well-formed lines that are other log messages.
    pub lines: u64,
    pub lines_skipped: u64,
    /// Queries and responses seen (a response without its query still makes a record).
    pub queries: u64,
    pub responses: u64,
    /// Queries completed by their response.
    pub paired: u64,
    /// Queries whose response was never seen.
    pub unanswered: u64,
    /// Responses whose query was never seen.
    pub unmatched_responses: u64,
    pub records: u64,
    pub rejects: u64,
}

/// Where decoders put records and rejects.
pub trait DnsSink {
    fn record(&mut self, r: DnsRecord);
    fn reject(&mut self, r: Reject) {
        let _ = r;
    }
}

/// Collects everything; what [`read`] uses.
#[derive(Debug, Default)]
pub struct Collected {
    pub records: Vec<DnsRecord>,
    pub rejects: Vec<Reject>,
}

impl DnsSink for Collected {
    fn record(&mut self, r: DnsRecord) {
        self.records.push(r);
    }
    fn reject(&mut self, r: Reject) {
        self.rejects.push(r);
    }
}

/// Streams records to another thread; rejects are dropped (they are counted in [`Stats`]).
impl DnsSink for std::sync::mpsc::Sender<DnsRecord> {
    fn record(&mut self, r: DnsRecord) {
        // A closed receiver means nobody wants more; the stream is still drained.
        let _ = self.send(r);
    }
}

pub(crate) fn reject(line: u64, raw: &[u8], reason: impl Into<String>) -> Reject {
    // Cap what one reject holds: a desynchronised binary stream can leave megabytes of tail.
    const MAX_RAW: usize = 64 * 1024;
    Reject { line, raw: bytes::Bytes::copy_from_slice(&raw[..raw.len().min(MAX_RAW)]), reason: reason.into() }
}

/// Identifies the format from the first bytes; the name only breaks ties for text.
pub fn detect(bytes: &[u8], name: &str) -> Option<DnsFormat> {
    if fstrm::looks_like_file(bytes) {
        return Some(DnsFormat::Dnstap);
    }
    if pcap::looks_like_pcap(bytes) {
        return Some(DnsFormat::Pcap);
    }
    // A Zeek log says what it is; only its `dns` kind is DNS.
    if let Some(kind) = zeek::path(bytes) {
        return (kind == "dns").then_some(DnsFormat::ZeekDns);
    }
    log::detect_text(bytes, name)
}

/// [`read_with`] without a reference time.
pub fn read(bytes: &[u8], name: &str) -> Result<(Vec<DnsRecord>, Vec<Reject>, Stats), DnsError> {
    read_with(bytes, name, &ReadOptions::default())
}

/// Detects the format and decodes the whole input.
pub fn read_with(
    bytes: &[u8],
    name: &str,
    opts: &ReadOptions,
) -> Result<(Vec<DnsRecord>, Vec<Reject>, Stats), DnsError> {
    let format = detect(bytes, name).ok_or_else(|| DnsError::Unrecognised { name: name.to_string() })?;
    Ok(read_as(bytes, format, opts))
}

/// Decodes input known to be `format`.
pub fn read_as(bytes: &[u8], format: DnsFormat, opts: &ReadOptions) -> (Vec<DnsRecord>, Vec<Reject>, Stats) {
    let mut out = Collected::default();
    let stats = read_into(bytes, format, opts, &mut out);
    // Pairing emits a query when its response arrives; callers expect query order.
    out.records.sort_by_key(|r| r.time);
    (out.records, out.rejects, stats)
}

/// Decodes input known to be `format` straight into `sink`, holding no more than the
/// pairing window (dnstap, pcap) or a text file's records: a capture of any size streams.
/// Records come as their exchange completes (a query with its response, or unanswered
/// once the window has passed), so only roughly in query order; [`read_as`] sorts them.
/// `Stats::records` and `Stats::rejects` count what went to the sink.
pub fn read_into(bytes: &[u8], format: DnsFormat, opts: &ReadOptions, sink: &mut dyn DnsSink) -> Stats {
    counting(sink, |out, stats| match format {
        DnsFormat::Dnstap => dnstap::read_file(bytes, out, stats),
        DnsFormat::Pcap => pcap::read_pcap(bytes, out, stats),
        DnsFormat::ZeekDns => zeek::read_zeek(bytes, out, stats),
        DnsFormat::UnboundLog | DnsFormat::BindQueryLog => log::read_log(bytes, format, opts, out, stats),
    })
}

/// Runs a decoder into `sink`, with what went to the sink counted in [`Stats`].
fn counting(sink: &mut dyn DnsSink, read: impl FnOnce(&mut dyn DnsSink, &mut Stats)) -> Stats {
    let mut out = Counted { inner: sink, records: 0, rejects: 0 };
    let mut stats = Stats::default();
    read(&mut out, &mut stats);
    stats.records = out.records;
    stats.rejects = out.rejects;
    stats
}

/// Decodes a text format (Unbound and BIND query logs, Zeek `dns.log`) line by line from
/// `lines` into `sink`: a log of any size is read in the memory of one line and, for the
/// query logs, a minute of unanswered queries. `None` for the binary formats, which
/// [`read_into`] reads from memory.
pub fn read_lines_into(
    lines: &mut dyn crate::lines::LineSource,
    format: DnsFormat,
    opts: &ReadOptions,
    sink: &mut dyn DnsSink,
) -> Option<Stats> {
    match format {
        DnsFormat::ZeekDns => Some(counting(sink, |out, stats| zeek::read_zeek_lines(lines, out, stats))),
        DnsFormat::UnboundLog | DnsFormat::BindQueryLog => {
            Some(counting(sink, |out, stats| log::read_log_lines(lines, format, opts, out, stats)))
        }
        DnsFormat::Dnstap | DnsFormat::Pcap => None,
    }
}

/// Decodes a pcap or pcapng capture from `input` into `sink`, through one read buffer: a
/// capture too large for memory is read so (a classic pcap in memory is read in place by
/// [`read_into`], which is faster).
pub fn read_pcap_into<R: std::io::Read>(input: R, sink: &mut dyn DnsSink) -> Stats {
    counting(sink, |out, stats| pcap::read_pcap_from(input, out, stats))
}

/// Decodes a dnstap Frame Streams file from `input` into `sink`, holding one frame at a
/// time: a file of any size.
pub fn read_dnstap_into<R: std::io::Read>(input: R, sink: &mut dyn DnsSink) -> Stats {
    counting(sink, |out, stats| dnstap::read_file_from(input, out, stats))
}

/// Counts what passes to the sink for [`Stats`].
struct Counted<'a> {
    inner: &'a mut dyn DnsSink,
    records: u64,
    rejects: u64,
}

impl DnsSink for Counted<'_> {
    fn record(&mut self, r: DnsRecord) {
        self.records += 1;
        self.inner.record(r);
    }
    fn reject(&mut self, r: Reject) {
        self.rejects += 1;
        self.inner.reject(r);
    }
}

/// Entry points shared by the cargo-fuzz targets and the corpus replay test.
pub mod fuzzing {
    use super::*;

    /// `telemetry_dnstap`: the file decoder, the incremental framing decoder fed in small
    /// chunks, and detection.
    pub fn dnstap(data: &[u8]) {
        let _ = read_as(data, DnsFormat::Dnstap, &ReadOptions::default());
        // Streamed through a 3-byte reader, the same records and rejects.
        let (mut whole, mut streamed) = (Collected::default(), Collected::default());
        let a = read_into(data, DnsFormat::Dnstap, &ReadOptions::default(), &mut whole);
        let b = read_dnstap_into(std::io::BufReader::with_capacity(3, data), &mut streamed);
        assert_eq!(a, b);
        assert_eq!((whole.records, whole.rejects), (streamed.records, streamed.rejects));
        let mut dec = fstrm::Decoder::new(fstrm::MAX_DATA_FRAME);
        for chunk in data.chunks(7) {
            dec.push(chunk);
            while let Ok(Some(_)) = dec.next_frame() {}
        }
        let _ = detect(data, "x.fstrm");
    }

    /// `telemetry_dnspcap`: the capture reader, and its two fast paths held to the readers
    /// they stand in for: the bytes as a DNS message (hickory-proto) and as a frame
    /// (etherparse). A disagreement panics, which is what the fuzzer looks for.
    pub fn dnspcap(data: &[u8]) {
        let _ = read_as(data, DnsFormat::Pcap, &ReadOptions::default());
        wire::check_fast(data);
        pcap::check_udp_fast(data);
    }

    /// `telemetry_dnslog`: the text parsers (Unbound and BIND with and without a reference
    /// time, Zeek dns.log TSV and JSON), pcap, Zeek's log-kind sniffing, and detection.
    pub fn dnslog(data: &[u8]) {
        let with_ref = ReadOptions { reference: Some(Timestamp::from_secs(1_764_000_000)) };
        let _ = zeek::path(data);
        for f in [DnsFormat::UnboundLog, DnsFormat::BindQueryLog, DnsFormat::ZeekDns] {
            let _ = read_as(data, f, &ReadOptions::default());
            let _ = read_as(data, f, &with_ref);
        }
        let _ = read_as(data, DnsFormat::Pcap, &with_ref);
        let _ = read(data, "query.log");
        // Each text format streamed through a 5-byte read buffer gives what it gives in memory.
        for f in [DnsFormat::UnboundLog, DnsFormat::BindQueryLog, DnsFormat::ZeekDns] {
            let (mut whole, mut streamed) = (Collected::default(), Collected::default());
            let a = read_into(data, f, &with_ref, &mut whole);
            let mut lines = crate::lines::ReadLines::new(std::io::BufReader::with_capacity(5, data));
            let b = read_lines_into(&mut lines, f, &with_ref, &mut streamed);
            assert_eq!(Some(a), b);
            assert_eq!((whole.records, whole.rejects), (streamed.records, streamed.rejects));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_content_and_name() {
        let tap = fstrm::encode_control(fstrm::START, Some(fstrm::CONTENT_TYPE));
        assert_eq!(detect(&tap, "x"), Some(DnsFormat::Dnstap));
        assert_eq!(detect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0], "x"), Some(DnsFormat::Pcap));
        assert_eq!(detect(&[0x0a, 0x0d, 0x0d, 0x0a], "x"), Some(DnsFormat::Pcap));
        assert_eq!(detect(b"hello\n", "notes.txt"), None);
        assert_eq!(detect(b"", "unbound.log"), Some(DnsFormat::UnboundLog));
        assert!(matches!(read(b"\x00\x01garbage", "blob"), Err(DnsError::Unrecognised { .. })));
    }

    #[test]
    fn empty_and_garbage_inputs_of_each_format() {
        for f in [DnsFormat::Dnstap, DnsFormat::Pcap, DnsFormat::UnboundLog, DnsFormat::BindQueryLog] {
            let (r, _, _) = read_as(b"", f, &ReadOptions::default());
            assert!(r.is_empty());
            let (r, rejects, _) = read_as(b"\x00\x00\x00\x00\xff\xfe binary\n", f, &ReadOptions::default());
            assert!(r.is_empty(), "{f:?}");
            assert!(!rejects.is_empty(), "{f:?}: garbage vanished");
        }
    }
}

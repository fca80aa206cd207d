//! nfdump 1.7 binary flow files: what `nfcapd`, `nfpcapd`, `sfcapd` and `nfdump -w` write
//! (file layout 2, V3 records), read natively so `botwatch scan` takes them as they are
//! instead of through `nfdump -o csv`.
//!
//! Our own reader because the only Rust crate for the format (`nfdump` 0.2 on crates.io)
//! calls itself experimental and builds C libraries (minilzo, zstd, bzip2), and the hot path
//! wants a streaming decoder: one reused [`FlowRecord`] handed to a callback, no allocation
//! per record, fields read little-endian straight from the file's bytes.
//!
//! The layout, as nfdump 1.7.1 writes it (`src/lib/nffileV2.h`, `nfxV3.h`, `id.h` in
//! github.com/phaag/nfdump; fields in host order, and every nfdump build in use is
//! little-endian):
//! - file header, 40 bytes: magic `0xA50C` u16, layout u16 (2), nfdump version u32, created
//!   u64, compression u8 (0 none, 1 LZO, 2 BZ2, 3 LZ4, 4 ZSTD from 1.7.2), encryption u8,
//!   appendix blocks u16, creator u32, appendix offset u64, block size u32, data blocks u32;
//! - data blocks, 12-byte header: records u32, size u32 (payload bytes as stored), type u16
//!   (3), flags u16; then the payload, compressed as a whole with the file's compression (raw LZ4 block);
//! - records: type u16, size u16 (including itself). V3 flow records (type 11) have a 12-byte
//!   header (elements u16, engine type u8, engine id u8, exporter sysid u16, flags u8, NetFlow
//!   version u8) and then elements (type u16, length u16 including itself): EXgenericFlow (1:
//!   msecFirst, msecLast, msecReceived, inPackets, inBytes u64, srcPort, dstPort u16, proto
//!   u8, …), EXipv4Flow (2), EXipv6Flow (3: each address as two u64 halves, high half first),
//!   EXcntFlow (5: flows, outPackets, outBytes), EXipReceivedV4/V6 (12/13); any other element
//!   is skipped by its length. Exporter info records (type 7: version u32, address in 16
//!   bytes with IPv4 in bytes 8..12, address family u16, sysid u16, id u32) name the
//!   exporters V3 records point at;
//! - after the data blocks, at the appendix offset: blocks holding the ident string (record
//!   type 0x8001) and the writer's statistics (0x8002, first u64 = flows).
//!
//! Uncompressed and LZ4 files are read. LZO, BZ2 and ZSTD files are refused with the
//! command that converts them (`nfdump -r FILE -J 0`); so are nfdump 1.6 files (layout 1,
//! extension maps: `nfdump -r OLD -w NEW` converts), encrypted and big-endian ones. Record
//! flags (event, sampled, anonymised) are not needed for matching and are ignored; counts
//! are as exported, not scaled by a sampling rate, as `nfdump -o csv` prints them. A flow's
//! packets and bytes are both directions (`in` + `out`), as the CSV reader counts them.
//!
//! Partial success: a block that runs past the end of the file, fails to decompress or
//! holds an inconsistent record is a [`Reject`] whose `line` is the 1-based block number
//! (appendix blocks are numbered after the data blocks); the rest of that block is skipped
//! and the next block is read whenever the block framing allows.
//!
//! [`read_nfcapd`] takes the file in memory; [`read_nfcapd_from`] reads it from a file (any
//! `Read + Seek`) one block at a time into one reused buffer, so a scan holds one block of
//! at most 5 MiB instead of the whole file and never faults in a file-sized buffer. Both
//! share the decoder and give the same records, rejects and statistics.

use crate::record::FlowRecord;
use botwatch_model::{Reject, Timestamp};
use bytes::Bytes;
use serde::Serialize;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MAGIC: [u8; 2] = 0xA50Cu16.to_le_bytes();
const HEADER_LEN: usize = 40;
const BLOCK_HEADER_LEN: usize = 12;
/// nfdump's own buffer size (`BUFFSIZE`): no block it writes expands beyond it.
const MAX_BLOCK: usize = 5 * 1024 * 1024;
const DATA_BLOCK_TYPE_3: u16 = 3;
const EXPORTER_INFO: u16 = 7;
const V3_RECORD: u16 = 11;
const TYPE_IDENT: u16 = 0x8001;
const TYPE_STAT: u16 = 0x8002;
const EX_GENERIC_FLOW: u16 = 1;
const EX_IPV4_FLOW: u16 = 2;
const EX_IPV6_FLOW: u16 = 3;
const EX_CNT_FLOW: u16 = 5;
const EX_RECEIVED_V4: u16 = 12;
const EX_RECEIVED_V6: u16 = 13;
/// EXgenericFlow up to and including `proto`.
const GENERIC_NEED: usize = 45;
const AF_INET: u16 = 2;
/// Bytes of a rejected block or record kept in the reject.
const RAW_KEEP: usize = 64;

/// A file's compression, from its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Lzo,
    Bz2,
    Lz4,
    Zstd,
    Unknown(u8),
}

impl Compression {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => Compression::None,
            1 => Compression::Lzo,
            2 => Compression::Bz2,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            n => Compression::Unknown(n),
        }
    }

    fn name(self) -> String {
        match self {
            Compression::None => "uncompressed".into(),
            Compression::Lzo => "LZO".into(),
            Compression::Bz2 => "BZ2".into(),
            Compression::Lz4 => "LZ4".into(),
            Compression::Zstd => "ZSTD".into(),
            Compression::Unknown(n) => format!("unknown compression {n}"),
        }
    }
}

/// Why a whole file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NfcapdError {
    #[error("not an nfdump file (no 0xA50C magic)")]
    NotNfcapd,
    #[error("big-endian nfdump file: only little-endian files are read")]
    BigEndian,
    #[error(
        "nfdump 1.6 file (layout 1) is not supported: convert it with nfdump 1.7, `nfdump -r FILE -w NEW`"
    )]
    Layout1,
    #[error("nfdump file layout {0} is not supported (only layout 2, written by nfdump 1.7)")]
    Layout(u16),
    #[error("nfdump file header truncated: {0} of 40 bytes")]
    TruncatedHeader(usize),
    #[error("encrypted nfdump file (encryption {0}) is not supported")]
    Encrypted(u8),
    #[error(
        "{} nfdump file is not supported (only uncompressed and LZ4): convert it with `nfdump -r FILE -J 0` (rewrites it uncompressed, in place; `-J 3` for LZ4)",
        .0.name()
    )]
    Compression(Compression),
    /// Reading or seeking the source failed ([`read_nfcapd_from`] only); the message is the
    /// I/O error's, as `std::fs::read` would have reported it.
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for NfcapdError {
    fn from(e: io::Error) -> Self {
        NfcapdError::Io(e.to_string())
    }
}

/// What reading one file saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NfcapdStats {
    pub compression: Compression,
    /// Data blocks the header announces.
    pub blocks: u64,
    /// Data blocks whose records were read (a block with a bad record still counts).
    pub blocks_read: u64,
    /// Flows handed to the sink.
    pub records: u64,
    /// Rejects: bad blocks and bad records.
    pub rejected: u64,
    /// Records that are no flow: exporter statistics, samplers, unknown record types, and
    /// V3 records without EXgenericFlow or addresses.
    pub skipped_records: u64,
    /// Exporter info records seen.
    pub exporters: u64,
    /// From the appendix: the file's ident and the flows its writer counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ident: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_flows: Option<u64>,
    /// The file ended inside a block or before the announced number of blocks.
    pub truncated: bool,
}

/// Whether `data` starts with nfdump's magic (either byte order) and a layout this module
/// knows of, so that unsupported layouts still get a clear error instead of "unrecognised".
pub fn is_nfcapd(data: &[u8]) -> bool {
    match data.get(..4) {
        Some([m0, m1, v0, v1]) if [*m0, *m1] == MAGIC => matches!(u16::from_le_bytes([*v0, *v1]), 1..=3),
        Some([m0, m1, v0, v1]) if [*m1, *m0] == MAGIC => matches!(u16::from_be_bytes([*v0, *v1]), 1..=3),
        _ => false,
    }
}

struct Header {
    compression: Compression,
    appendix_blocks: u16,
    appendix_offset: u64,
    blocks: u32,
}

fn header(data: &[u8]) -> Result<Header, NfcapdError> {
    if !is_nfcapd(data) {
        return Err(NfcapdError::NotNfcapd);
    }
    if data[..2] != MAGIC {
        return Err(NfcapdError::BigEndian);
    }
    match u16_at(data, 2) {
        2 => {}
        1 => return Err(NfcapdError::Layout1),
        v => return Err(NfcapdError::Layout(v)),
    }
    if data.len() < HEADER_LEN {
        return Err(NfcapdError::TruncatedHeader(data.len()));
    }
    let compression = Compression::from_byte(data[16]);
    if data[17] != 0 {
        return Err(NfcapdError::Encrypted(data[17]));
    }
    if !matches!(compression, Compression::None | Compression::Lz4) {
        return Err(NfcapdError::Compression(compression));
    }
    Ok(Header {
        compression,
        appendix_blocks: u16_at(data, 18),
        appendix_offset: u64_at(data, 24),
        blocks: u32_at(data, 36),
    })
}

/// Reads a whole nfcapd file, calling `sink` once per flow with a record that is reused
/// (clone it to keep it). Fails only when the file as a whole cannot be read (not nfdump,
/// another layout, an unsupported compression); bad blocks and records become rejects.
pub fn read_nfcapd(
    data: &[u8],
    sink: impl FnMut(&FlowRecord),
    rejects: &mut Vec<Reject>,
) -> Result<NfcapdStats, NfcapdError> {
    let h = header(data)?;
    let src = SliceSource { data, off: HEADER_LEN };
    Ok(read_blocks(&h, src, sink, rejects)?)
}

/// [`read_nfcapd`] from a reader holding the file from offset 0 (it seeks there first):
/// blocks are read one at a time into one buffer reused for the whole file, and the
/// appendix is reached by seeking. Truncation is judged against the length the reader
/// reports (`SeekFrom::End`), so a truncated file gives the same rejects as in memory. An
/// I/O error is [`NfcapdError::Io`]; flows handed to `sink` before it stand.
pub fn read_nfcapd_from<R: Read + Seek>(
    mut reader: R,
    sink: impl FnMut(&FlowRecord),
    rejects: &mut Vec<Reject>,
) -> Result<NfcapdStats, NfcapdError> {
    let len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let h = header(&head[..got])?;
    let src = ReaderSource { reader, len, pos: got as u64, buf: Vec::new() };
    Ok(read_blocks(&h, src, sink, rejects)?)
}

/// The data blocks, then the appendix; generic over where blocks come from so the
/// in-memory path keeps borrowing payloads straight from the file's bytes.
fn read_blocks<S: Source>(
    h: &Header,
    src: S,
    mut sink: impl FnMut(&FlowRecord),
    rejects: &mut Vec<Reject>,
) -> io::Result<NfcapdStats> {
    let mut st =
        NfcapdStats { compression: h.compression, blocks: u64::from(h.blocks), ..Default::default() };
    let mut blocks = Blocks { src, compression: h.compression, buf: Vec::new() };
    let mut dec = Decoder::new();
    for n in 1..=u64::from(h.blocks) {
        match blocks.next()? {
            Next::End(reason) => {
                reject(
                    rejects,
                    &mut st,
                    n,
                    &[],
                    format!("block {n}: {reason} (the header announces {} blocks)", h.blocks),
                );
                st.truncated = true;
                break;
            }
            Next::Bad(reason, raw) => reject(rejects, &mut st, n, &raw, format!("block {n}: {reason}")),
            Next::Block { kind, records, payload } => {
                if kind != DATA_BLOCK_TYPE_3 {
                    let reason = format!("block {n}: block type {kind} is not a flow block (type 3)");
                    reject(rejects, &mut st, n, &[], reason);
                    continue;
                }
                st.blocks_read += 1;
                dec.block(n, payload, records, &mut sink, rejects, &mut st);
            }
        }
    }
    // The appendix follows the data blocks: in a truncated file it is gone too.
    if !st.truncated {
        appendix(h, &mut blocks, rejects, &mut st)?;
    }
    Ok(st)
}

fn reject(rejects: &mut Vec<Reject>, st: &mut NfcapdStats, block: u64, raw: &[u8], reason: String) {
    st.rejected += 1;
    rejects.push(Reject {
        line: block,
        raw: Bytes::copy_from_slice(&raw[..raw.len().min(RAW_KEEP)]),
        reason,
    });
}

/// The ident and statistics records; the flows do not depend on them, so a bad appendix is
/// a reject and nothing more.
fn appendix<S: Source>(
    h: &Header,
    blocks: &mut Blocks<S>,
    rejects: &mut Vec<Reject>,
    st: &mut NfcapdStats,
) -> io::Result<()> {
    if h.appendix_blocks == 0 {
        return Ok(());
    }
    let first = u64::from(h.blocks) + 1;
    if !blocks.src.seek_to(h.appendix_offset)? {
        let reason = format!("block {first}: appendix offset {} is outside the file", h.appendix_offset);
        reject(rejects, st, first, &[], reason);
        return Ok(());
    }
    for n in first..first + u64::from(h.appendix_blocks) {
        let (records, payload) = match blocks.next()? {
            Next::Block { records, payload, .. } => (records, payload),
            Next::Bad(reason, raw) => {
                reject(rejects, st, n, &raw, format!("block {n} (appendix): {reason}"));
                continue;
            }
            Next::End(reason) => {
                reject(rejects, st, n, &[], format!("block {n} (appendix): {reason}"));
                break;
            }
        };
        let mut off = 0;
        for _ in 0..records {
            let Some(rec) = record_at(payload, off) else {
                reject(
                    rejects,
                    st,
                    n,
                    &payload[off.min(payload.len())..],
                    format!("block {n} (appendix): bad record"),
                );
                break;
            };
            off += rec.len();
            let body = &rec[4..];
            match u16_at(rec, 0) {
                TYPE_IDENT => {
                    let s = body.split(|&c| c == 0).next().unwrap_or_default();
                    st.ident = Some(String::from_utf8_lossy(&s[..s.len().min(128)]).into_owned());
                }
                TYPE_STAT if body.len() >= 8 => st.declared_flows = Some(u64_at(body, 0)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The record that starts at `off`, when its header is sane and it fits in the block.
#[inline]
fn record_at(block: &[u8], off: usize) -> Option<&[u8]> {
    let size = usize::from(u16_at(block.get(off..off.checked_add(4)?)?, 2));
    if size < 4 {
        return None;
    }
    block.get(off..off.checked_add(size)?)
}

enum Next<'a> {
    Block {
        kind: u16,
        records: u32,
        payload: &'a [u8],
    },
    /// The block is framed but unusable (decompression failed); the next one can be read.
    /// Holds the block's header.
    Bad(String, [u8; BLOCK_HEADER_LEN]),
    /// No further block can be framed.
    End(String),
}

/// A block as stored in the file, or why none can be framed where the source stands.
enum Frame<'a> {
    Block([u8; BLOCK_HEADER_LEN], &'a [u8]),
    End(String),
}

/// Where blocks come from: the file in memory, or a reader.
trait Source {
    /// The block at the current position, and moves past it.
    fn frame(&mut self) -> io::Result<Frame<'_>>;
    /// Moves to the appendix at `off`; false when `off` is not inside the file past its
    /// header.
    fn seek_to(&mut self, off: u64) -> io::Result<bool>;
}

fn truncated_block(have: u64, size: usize) -> String {
    format!("block truncated: {have} of {size} bytes in the file")
}

/// The whole file in memory: payloads are borrowed, never copied.
struct SliceSource<'a> {
    data: &'a [u8],
    off: usize,
}

impl Source for SliceSource<'_> {
    fn frame(&mut self) -> io::Result<Frame<'_>> {
        let data = self.data;
        let rest = &data[self.off.min(data.len())..];
        if rest.is_empty() {
            return Ok(Frame::End("the file ends before it".into()));
        }
        let Some(hdr) = rest.first_chunk::<BLOCK_HEADER_LEN>() else {
            return Ok(Frame::End(format!("block header truncated ({} of 12 bytes)", rest.len())));
        };
        let size = u32_at(hdr, 4) as usize;
        let Some(stored) = rest.get(BLOCK_HEADER_LEN..BLOCK_HEADER_LEN.saturating_add(size)) else {
            return Ok(Frame::End(truncated_block((rest.len() - BLOCK_HEADER_LEN) as u64, size)));
        };
        self.off += BLOCK_HEADER_LEN + size;
        Ok(Frame::Block(*hdr, stored))
    }

    fn seek_to(&mut self, off: u64) -> io::Result<bool> {
        Ok(match usize::try_from(off) {
            Ok(off) if off >= HEADER_LEN && off < self.data.len() => {
                self.off = off;
                true
            }
            _ => false,
        })
    }
}

/// A file read block by block into one buffer. `len` is the file's length: a block is read
/// only when it fits, so the buffer never grows past the file (nor, for files nfdump
/// wrote, past its 5 MiB blocks) whatever size a corrupt header claims.
struct ReaderSource<R> {
    reader: R,
    len: u64,
    /// Where `reader` stands.
    pos: u64,
    buf: Vec<u8>,
}

impl<R: Read + Seek> Source for ReaderSource<R> {
    fn frame(&mut self) -> io::Result<Frame<'_>> {
        let rest = self.len.saturating_sub(self.pos);
        if rest == 0 {
            return Ok(Frame::End("the file ends before it".into()));
        }
        if rest < BLOCK_HEADER_LEN as u64 {
            return Ok(Frame::End(format!("block header truncated ({rest} of 12 bytes)")));
        }
        let mut hdr = [0u8; BLOCK_HEADER_LEN];
        self.reader.read_exact(&mut hdr)?;
        self.pos += BLOCK_HEADER_LEN as u64;
        let size = u32_at(&hdr, 4) as usize;
        let have = rest - BLOCK_HEADER_LEN as u64;
        if size as u64 > have {
            return Ok(Frame::End(truncated_block(have, size)));
        }
        // Grown, never shrunk: after the first blocks no block allocates or faults in pages.
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        let stored = &mut self.buf[..size];
        self.reader.read_exact(stored)?;
        self.pos += size as u64;
        Ok(Frame::Block(hdr, stored))
    }

    fn seek_to(&mut self, off: u64) -> io::Result<bool> {
        if off < HEADER_LEN as u64 || off >= self.len {
            return Ok(false);
        }
        // nfdump writes the appendix right after the data blocks: usually no seek at all.
        if off != self.pos {
            self.reader.seek(SeekFrom::Start(off))?;
            self.pos = off;
        }
        Ok(true)
    }
}

struct Blocks<S> {
    src: S,
    compression: Compression,
    /// Decompressed payload, reused from block to block.
    buf: Vec<u8>,
}

impl<S: Source> Blocks<S> {
    fn next(&mut self) -> io::Result<Next<'_>> {
        let (hdr, stored) = match self.src.frame()? {
            Frame::Block(hdr, stored) => (hdr, stored),
            Frame::End(why) => return Ok(Next::End(why)),
        };
        let (records, size, kind) = (u32_at(&hdr, 0), stored.len(), u16_at(&hdr, 8));
        // nfdump 1.7.1 decompresses every block with the file's compression and ignores the
        // block's "uncompressed" flag when reading; so do we.
        let payload = match self.compression {
            Compression::Lz4 if size > 0 => {
                // Small blocks need no 5 MiB buffer; one that does not fit gets the most any
                // block can need, once per file.
                if self.buf.len() < MAX_BLOCK {
                    let want = size.saturating_mul(8).clamp(1 << 16, MAX_BLOCK);
                    if self.buf.len() < want {
                        self.buf.resize(want, 0);
                    }
                }
                let mut r = lz4_flex::block::decompress_into(stored, &mut self.buf);
                if matches!(r, Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }))
                    && self.buf.len() < MAX_BLOCK
                {
                    self.buf.resize(MAX_BLOCK, 0);
                    r = lz4_flex::block::decompress_into(stored, &mut self.buf);
                }
                match r {
                    Ok(n) => &self.buf[..n],
                    Err(e) => return Ok(Next::Bad(format!("LZ4 decompression failed: {e}"), hdr)),
                }
            }
            _ => stored,
        };
        Ok(Next::Block { kind, records, payload })
    }
}

/// Per-file decoding state: the exporters seen so far and the record handed to the sink.
struct Decoder {
    /// Exporter address by sysid.
    exporters: Vec<Option<IpAddr>>,
    rec: FlowRecord,
}

/// A V3 record's outcome.
enum V3 {
    Flow,
    /// Valid, but no flow (no EXgenericFlow or no addresses).
    NoFlow,
}

impl Decoder {
    fn new() -> Self {
        let zero = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Decoder {
            exporters: Vec::new(),
            rec: FlowRecord {
                start: Timestamp(0),
                end: Timestamp(0),
                src: zero,
                dst: zero,
                src_port: 0,
                dst_port: 0,
                proto: 0,
                packets: 0,
                bytes: 0,
                resp_bytes: None,
                exporter: None,
                answered: None,
                local_orig: None,
                local_resp: None,
            },
        }
    }

    fn block(
        &mut self,
        n: u64,
        payload: &[u8],
        records: u32,
        sink: &mut impl FnMut(&FlowRecord),
        rejects: &mut Vec<Reject>,
        st: &mut NfcapdStats,
    ) {
        let mut off = 0;
        for i in 0..records {
            let Some(rec) = record_at(payload, off) else {
                let reason = if off >= payload.len() {
                    format!("block {n}: ends after {i} of {records} records")
                } else {
                    format!("block {n}, record {i}: size runs past the block's end or is below 4")
                };
                reject(rejects, st, n, &payload[off.min(payload.len())..], reason);
                return;
            };
            off += rec.len();
            match u16_at(rec, 0) {
                V3_RECORD => match self.v3(rec) {
                    Ok(V3::Flow) => {
                        st.records += 1;
                        sink(&self.rec);
                    }
                    Ok(V3::NoFlow) => st.skipped_records += 1,
                    Err(why) => reject(rejects, st, n, rec, format!("block {n}, record {i}: {why}")),
                },
                EXPORTER_INFO => match self.exporter_info(rec) {
                    Ok(()) => st.exporters += 1,
                    Err(why) => reject(rejects, st, n, rec, format!("block {n}, record {i}: {why}")),
                },
                _ => st.skipped_records += 1,
            }
        }
    }

    fn exporter_info(&mut self, r: &[u8]) -> Result<(), String> {
        if r.len() < 32 {
            return Err(format!("exporter info record of {} bytes (needs 32)", r.len()));
        }
        let ip = if u16_at(r, 24) == AF_INET {
            IpAddr::V4(Ipv4Addr::from(u32_at(r, 16)))
        } else {
            IpAddr::V6(v6(u64_at(r, 8), u64_at(r, 16)))
        };
        let sysid = usize::from(u16_at(r, 26));
        if self.exporters.len() <= sysid {
            self.exporters.resize(sysid + 1, None);
        }
        self.exporters[sysid] = Some(ip);
        Ok(())
    }

    /// Fills `self.rec` from a V3 record; every field of it is written when this returns
    /// `V3::Flow`. Always inlined: with two callers (file in memory, reader) LLVM keeps it
    /// out of line, which cost 8 % of decoding throughput.
    #[inline(always)]
    fn v3(&mut self, r: &[u8]) -> Result<V3, String> {
        if r.len() < 12 {
            return Err(format!("V3 record of {} bytes (header needs 12)", r.len()));
        }
        let elements = u16_at(r, 4);
        let exporter_id = usize::from(u16_at(r, 8));
        let (mut generic, mut addrs) = (false, false);
        let (mut out_packets, mut out_bytes) = (0u64, 0u64);
        let mut received = None;
        let mut p = 12;
        for e in 0..elements {
            let Some(eh) = r.get(p..).and_then(<[u8]>::first_chunk::<4>) else {
                return Err(format!("element {e} of {elements} starts past the record's end"));
            };
            let (kind, len) = (u16_at(eh, 0), usize::from(u16_at(eh, 2)));
            let Some(d) = r.get(p + 4..p + len).filter(|_| len >= 4) else {
                return Err(format!("element {e} (type {kind}) has bad length {len}"));
            };
            p += len;
            let short =
                |need: usize, name: &str| format!("{name} element of {} bytes (needs {need})", d.len());
            match kind {
                EX_GENERIC_FLOW => {
                    if d.len() < GENERIC_NEED {
                        return Err(short(GENERIC_NEED, "EXgenericFlow"));
                    }
                    let (first, last, recv) = (u64_at(d, 0), u64_at(d, 8), u64_at(d, 16));
                    let start = if first != 0 { first } else { recv };
                    self.rec.start = ms(start);
                    self.rec.end = if last != 0 { ms(last) } else { self.rec.start };
                    self.rec.packets = u64_at(d, 24);
                    self.rec.bytes = u64_at(d, 32);
                    self.rec.src_port = u16_at(d, 40);
                    self.rec.dst_port = u16_at(d, 42);
                    self.rec.proto = d[44];
                    generic = true;
                }
                EX_IPV4_FLOW => {
                    if d.len() < 8 {
                        return Err(short(8, "EXipv4Flow"));
                    }
                    self.rec.src = IpAddr::V4(Ipv4Addr::from(u32_at(d, 0)));
                    self.rec.dst = IpAddr::V4(Ipv4Addr::from(u32_at(d, 4)));
                    addrs = true;
                }
                EX_IPV6_FLOW => {
                    if d.len() < 32 {
                        return Err(short(32, "EXipv6Flow"));
                    }
                    self.rec.src = IpAddr::V6(v6(u64_at(d, 0), u64_at(d, 8)));
                    self.rec.dst = IpAddr::V6(v6(u64_at(d, 16), u64_at(d, 24)));
                    addrs = true;
                }
                EX_CNT_FLOW if d.len() >= 24 => (out_packets, out_bytes) = (u64_at(d, 8), u64_at(d, 16)),
                EX_RECEIVED_V4 if d.len() >= 4 => received = Some(IpAddr::V4(Ipv4Addr::from(u32_at(d, 0)))),
                EX_RECEIVED_V6 if d.len() >= 16 => {
                    received = Some(IpAddr::V6(v6(u64_at(d, 0), u64_at(d, 8))))
                }
                _ => {}
            }
        }
        if !(generic && addrs) {
            return Ok(V3::NoFlow);
        }
        self.rec.packets = self.rec.packets.saturating_add(out_packets);
        self.rec.bytes = self.rec.bytes.saturating_add(out_bytes);
        // A biflow's reverse bytes; 0 is what a one-way NetFlow record's counter holds, as in
        // nfdump's CSV (not that nothing came back).
        self.rec.resp_bytes = (out_bytes > 0).then_some(out_bytes);
        // The address the export came from, else the exporter the record names.
        self.rec.exporter = received.or_else(|| self.exporters.get(exporter_id).copied().flatten());
        Ok(V3::Flow)
    }
}

fn ms(v: u64) -> Timestamp {
    Timestamp(i64::try_from(v).unwrap_or(i64::MAX).saturating_mul(1000))
}

fn v6(hi: u64, lo: u64) -> Ipv6Addr {
    Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo))
}

/// `N` bytes at `at`; callers check lengths first, so the zero fallback is never taken and
/// only keeps the reads panic-free.
#[inline(always)]
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..).and_then(<[u8]>::first_chunk::<N>).copied().unwrap_or([0; N])
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes_at(b, at))
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

#[inline(always)]
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

/// Builders of synthetic files for tests (here and in other crates) and the fuzz entry
/// point; not part of the API.
#[doc(hidden)]
pub mod build {
    /// A layout-2 file header.
    pub fn header(compression: u8, blocks: u32, appendix_blocks: u16, appendix_offset: u64) -> Vec<u8> {
        let mut h = Vec::with_capacity(super::HEADER_LEN);
        h.extend_from_slice(&super::MAGIC);
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&0x0107_0100u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&[compression, 0]);
        h.extend_from_slice(&appendix_blocks.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&appendix_offset.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&blocks.to_le_bytes());
        h
    }

    /// A type-3 block holding `payload` as stored.
    pub fn block(records: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(super::BLOCK_HEADER_LEN + payload.len());
        b.extend_from_slice(&records.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&3u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    /// A V3 record of one IPv4 TCP flow (EXgenericFlow + EXipv4Flow), 3 packets and 180
    /// bytes from `first_ms` (Unix milliseconds) for 1.5 s.
    pub fn v4_flow(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, first_ms: u64) -> Vec<u8> {
        let mut r = Vec::with_capacity(76);
        r.extend_from_slice(&11u16.to_le_bytes());
        r.extend_from_slice(&76u16.to_le_bytes());
        r.extend_from_slice(&2u16.to_le_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
        r.extend_from_slice(&1u16.to_le_bytes());
        r.extend_from_slice(&52u16.to_le_bytes());
        for v in [first_ms, first_ms + 1500, first_ms + 2000, 3, 180] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(&sport.to_le_bytes());
        r.extend_from_slice(&dport.to_le_bytes());
        r.extend_from_slice(&[6, 0x12, 0, 0]);
        r.extend_from_slice(&2u16.to_le_bytes());
        r.extend_from_slice(&12u16.to_le_bytes());
        r.extend_from_slice(&u32::from_be_bytes(src).to_le_bytes());
        r.extend_from_slice(&u32::from_be_bytes(dst).to_le_bytes());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &[u8]) -> (Result<NfcapdStats, NfcapdError>, Vec<FlowRecord>, Vec<Reject>) {
        let (mut out, mut rej) = (Vec::new(), Vec::new());
        let r = read_nfcapd(data, |f| out.push(f.clone()), &mut rej);
        if let Ok(st) = &r {
            assert_eq!(st.records as usize, out.len());
            assert_eq!(st.rejected as usize, rej.len());
            assert!(rej.iter().all(|r| r.line > 0 && !r.reason.is_empty()));
        }
        (r, out, rej)
    }

    /// Two blocks of two flows each.
    fn file() -> Vec<u8> {
        let recs = |a: u8| {
            [
                build::v4_flow([10, 0, 0, a], [192, 0, 2, 1], 40000, 443, 1_520_628_556_520),
                build::v4_flow([10, 0, 0, a + 1], [192, 0, 2, 2], 53, 53, 1_520_628_557_000),
            ]
            .concat()
        };
        let mut f = build::header(0, 2, 0, 0);
        f.extend(build::block(2, &recs(1)));
        f.extend(build::block(2, &recs(3)));
        f
    }

    #[test]
    fn synthetic_flows_decode() {
        let (st, out, rej) = read(&file());
        let st = st.unwrap();
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!((st.blocks, st.blocks_read, st.records), (2, 2, 4));
        let r = &out[0];
        assert_eq!((r.src, r.dst), (IpAddr::from([10, 0, 0, 1]), IpAddr::from([192, 0, 2, 1])));
        assert_eq!((r.src_port, r.dst_port, r.proto, r.packets, r.bytes), (40000, 443, 6, 3, 180));
        assert_eq!((r.start.0, r.end.0 - r.start.0), (1_520_628_556_520_000, 1_500_000));
        assert_eq!(out[3].src, IpAddr::from([10, 0, 0, 4]));
    }

    #[test]
    fn lz4_blocks_decode_like_plain_ones() {
        let plain = file();
        let (_, want, _) = read(&plain);
        let mut f = build::header(3, 2, 0, 0);
        let mut off = HEADER_LEN;
        for _ in 0..2 {
            let size = u32_at(&plain, off + 4) as usize;
            let payload =
                lz4_flex::block::compress(&plain[off + BLOCK_HEADER_LEN..off + BLOCK_HEADER_LEN + size]);
            f.extend(build::block(2, &payload));
            off += BLOCK_HEADER_LEN + size;
        }
        let (st, got, rej) = read(&f);
        assert_eq!(st.unwrap().compression, Compression::Lz4);
        assert!(rej.is_empty());
        assert_eq!(got, want);

        // A corrupt compressed block is a reject; the next block still decodes.
        let first = BLOCK_HEADER_LEN + u32_at(&f, HEADER_LEN + 4) as usize;
        for b in &mut f[HEADER_LEN + BLOCK_HEADER_LEN..HEADER_LEN + first] {
            *b = 0xff;
        }
        let (st, got, rej) = read(&f);
        assert_eq!(st.unwrap().records, 2);
        assert_eq!(got[..], want[2..]);
        assert_eq!(rej[0].line, 1);
        assert!(rej[0].reason.contains("LZ4"), "{}", rej[0].reason);
    }

    #[test]
    fn truncated_header_and_garbage_are_errors() {
        let f = file();
        assert_eq!(read(&f[..20]).0, Err(NfcapdError::TruncatedHeader(20)));
        assert_eq!(read(&f[..3]).0, Err(NfcapdError::NotNfcapd));
        assert_eq!(read(b"").0, Err(NfcapdError::NotNfcapd));
        assert_eq!(read(b"ts,te,td,sa,da,sp,dp\n").0, Err(NfcapdError::NotNfcapd));
        let mut v1 = f.clone();
        v1[2] = 1;
        assert_eq!(read(&v1).0, Err(NfcapdError::Layout1));
        let be = [0xa5, 0x0c, 0, 2, 0, 0];
        assert_eq!(read(&be).0, Err(NfcapdError::BigEndian));
        let mut enc = f.clone();
        enc[17] = 1;
        assert_eq!(read(&enc).0, Err(NfcapdError::Encrypted(1)));
    }

    #[test]
    fn unsupported_compression_names_the_conversion() {
        for (b, name) in [(1, "LZO"), (2, "BZ2"), (4, "ZSTD"), (9, "unknown compression 9")] {
            let mut f = file();
            f[16] = b;
            let e = read(&f).0.unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(name) && msg.contains("nfdump -r FILE -J 0"), "{msg}");
        }
    }

    #[test]
    fn truncated_block_keeps_what_came_before() {
        let f = file();
        let second = HEADER_LEN + BLOCK_HEADER_LEN + u32_at(&f, HEADER_LEN + 4) as usize;
        for cut in [second, second + 8, second + 20, f.len() - 1] {
            let (st, out, rej) = read(&f[..cut]);
            let st = st.unwrap();
            assert!(st.truncated, "cut {cut}");
            assert_eq!((out.len(), rej.len(), rej[0].line), (2, 1, 2), "cut {cut}: {rej:?}");
        }
        // Cut inside the first block: nothing, one reject, no panic.
        let (st, out, rej) = read(&f[..HEADER_LEN + 30]);
        assert!(st.unwrap().truncated && out.is_empty() && rej[0].line == 1);
    }

    #[test]
    fn bad_element_lengths_are_rejects_and_the_next_block_is_read() {
        let rec = build::v4_flow([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 1_000);
        // (offset of a length field, bad value): element length 0, past the record, too short
        // for EXgenericFlow; record size below 4 and past the block.
        for (at, v) in [(14, 0u16), (14, 200), (14, 20), (66, 2), (2, 2), (2, 300)] {
            let mut bad = rec.clone();
            bad[at..at + 2].copy_from_slice(&v.to_le_bytes());
            let mut f = build::header(0, 2, 0, 0);
            f.extend(build::block(2, &[bad, rec.clone()].concat()));
            f.extend(build::block(1, &rec));
            let (st, out, rej) = read(&f);
            let st = st.unwrap();
            assert_eq!(rej.len(), 1, "{at}={v}: {rej:?}");
            assert_eq!(rej[0].line, 1);
            assert!(rej[0].reason.starts_with("block 1"), "{}", rej[0].reason);
            assert!(!out.is_empty() && st.records == out.len() as u64, "{at}={v}");
        }
    }

    #[test]
    fn exporters_and_other_records() {
        // Exporter info (sysid 3 = 198.51.100.7), then a flow naming exporter 3, an IPv6 flow
        // with out counts, a record type nobody knows, and a V3 record without addresses.
        let mut exp = vec![0u8; 32];
        exp[..4].copy_from_slice(&[7, 0, 32, 0]);
        exp[16..20].copy_from_slice(&u32::from_be_bytes([198, 51, 100, 7]).to_le_bytes());
        exp[24..28].copy_from_slice(&[2, 0, 3, 0]);
        let mut flow = build::v4_flow([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 1_000);
        flow[8] = 3;
        let mut v6rec = flow[..64].to_vec();
        v6rec[2..4].copy_from_slice(&(64u16 + 36 + 28).to_le_bytes());
        v6rec[4] = 3;
        v6rec.extend_from_slice(&[3, 0, 36, 0]);
        let a: u128 = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        let b: u128 = "2001:db8::2".parse::<Ipv6Addr>().unwrap().into();
        for x in [a, b] {
            v6rec.extend_from_slice(&((x >> 64) as u64).to_le_bytes());
            v6rec.extend_from_slice(&(x as u64).to_le_bytes());
        }
        v6rec.extend_from_slice(&[5, 0, 28, 0]);
        for v in [1u64, 4, 1000] {
            v6rec.extend_from_slice(&v.to_le_bytes());
        }
        let unknown = [99u8, 0, 8, 0, 1, 2, 3, 4];
        let mut no_addr = flow[..64].to_vec();
        no_addr[2..4].copy_from_slice(&64u16.to_le_bytes());
        no_addr[4] = 1;
        let payload = [exp, flow, v6rec, unknown.to_vec(), no_addr].concat();
        let mut f = build::header(0, 1, 0, 0);
        f.extend(build::block(5, &payload));
        let (st, out, rej) = read(&f);
        let st = st.unwrap();
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!((st.records, st.exporters, st.skipped_records), (2, 1, 2));
        assert_eq!(out[0].exporter, Some(IpAddr::from([198, 51, 100, 7])));
        assert_eq!(out[1].src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(out[1].dst, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!((out[1].packets, out[1].bytes), (3 + 4, 180 + 1000));
    }

    #[test]
    fn appendix_gives_ident_and_declared_flows() {
        let rec = build::v4_flow([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 1_000);
        let mut f = build::header(0, 1, 1, 0);
        f.extend(build::block(1, &rec));
        let off = f.len() as u64;
        f[24..32].copy_from_slice(&off.to_le_bytes());
        let mut ident = vec![0x01, 0x80, 9, 0];
        ident.extend_from_slice(b"lab\0\0");
        let mut stat = vec![0x02, 0x80, 12, 0];
        stat.extend_from_slice(&1u64.to_le_bytes());
        f.extend(build::block(2, &[ident, stat].concat()));
        let (st, out, rej) = read(&f);
        let st = st.unwrap();
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!((out.len(), st.ident.as_deref(), st.declared_flows), (1, Some("lab"), Some(1)));

        // An appendix offset past the end is one reject; the flows stand.
        f[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let (st, out, rej) = read(&f);
        assert_eq!((st.unwrap().records, out.len(), rej.len(), rej[0].line), (1, 1, 1, 2));
    }

    /// Reads `data` through [`read_nfcapd_from`] and checks it gives what [`read_nfcapd`] does.
    fn same_through_a_reader(data: &[u8]) {
        let (want, want_out, want_rej) = read(data);
        let (mut out, mut rej) = (Vec::new(), Vec::new());
        let got = read_nfcapd_from(io::Cursor::new(data), |f| out.push(f.clone()), &mut rej);
        assert_eq!(got, want);
        assert_eq!((out, rej), (want_out, want_rej));
    }

    #[test]
    fn a_reader_gives_what_memory_gives() {
        // Plain, LZ4, and an appendix that is not where the data blocks end (a seek forward).
        let plain = file();
        let mut lz4 = build::header(3, 2, 0, 0);
        let mut off = HEADER_LEN;
        for _ in 0..2 {
            let size = u32_at(&plain, off + 4) as usize;
            let stored = &plain[off + BLOCK_HEADER_LEN..off + BLOCK_HEADER_LEN + size];
            lz4.extend(build::block(2, &lz4_flex::block::compress(stored)));
            off += BLOCK_HEADER_LEN + size;
        }
        let mut apx = plain.clone();
        apx[18] = 1;
        apx.extend_from_slice(b"padding!");
        let at = apx.len() as u64;
        apx[24..32].copy_from_slice(&at.to_le_bytes());
        let mut ident = vec![0x01, 0x80, 9, 0];
        ident.extend_from_slice(b"lab\0\0");
        apx.extend(build::block(1, &ident));
        assert_eq!(read(&apx).0.unwrap().ident.as_deref(), Some("lab"));
        for f in [plain, lz4, apx] {
            for cut in 0..=f.len() {
                same_through_a_reader(&f[..cut]);
            }
            for i in 0..f.len() {
                for x in [0x00, 0xff, 0x80] {
                    let mut bad = f.clone();
                    bad[i] ^= x;
                    same_through_a_reader(&bad);
                }
            }
        }
    }

    #[test]
    fn a_failing_reader_is_an_io_error_after_the_flows_it_gave() {
        /// Reads like the file until `fail_at`, then fails.
        struct Failing {
            inner: io::Cursor<Vec<u8>>,
            fail_at: u64,
        }
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.inner.position() >= self.fail_at {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min((self.fail_at - self.inner.position()) as usize);
                self.inner.read(&mut buf[..n])
            }
        }
        impl Seek for Failing {
            fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
                self.inner.seek(to)
            }
        }
        let f = file();
        let second = HEADER_LEN + BLOCK_HEADER_LEN + u32_at(&f, HEADER_LEN + 4) as usize;
        let (mut n, mut rej) = (0, Vec::new());
        let r = read_nfcapd_from(
            Failing { inner: io::Cursor::new(f), fail_at: second as u64 + 20 },
            |_| n += 1,
            &mut rej,
        );
        assert_eq!(r, Err(NfcapdError::Io("disk on fire".into())));
        assert_eq!((n, rej.len()), (2, 0));
    }

    #[test]
    fn every_truncation_and_corruption_is_survived() {
        let f = file();
        for cut in 0..f.len() {
            let _ = read(&f[..cut]);
        }
        for i in 0..f.len() {
            for x in [0x00, 0xff, 0x80] {
                let mut bad = f.clone();
                bad[i] ^= x;
                let _ = read(&bad);
            }
        }
    }
}

//! Reports as streams: gzip and zip inputs are decompressed as they are read, never into
//! memory as a whole, under limits on the expanded size (total and ratio) so a compression
//! bomb is a clear error after reading a few megabytes, not an out-of-memory kill.
//!
//! A report is read twice: once to hash it (its identity in the store, and the first
//! [`crate::registry::HEAD_LEN`] bytes for format detection), once to parse it in
//! record-aligned chunks ([`Chunker`]) for formats that allow it ([`crate::Chunking`]).
//! Whole-document formats (JSON bundles, MISP events) are read whole, up to
//! [`Limits::max_document`]. Decompressing twice costs CPU, not memory; it is what keeps
//! peak memory independent of the report's size.

use crate::{Chunking, FeedError};
use bytes::{Bytes, BytesMut};
use std::cell::Cell;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::rc::Rc;

/// Limits on what one input may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total decompressed bytes of one input (all members of a zip together).
    pub max_bytes: u64,
    /// Decompressed over compressed size, checked once past [`RATIO_GRACE`] bytes: real
    /// reports compress 5–20×; a bomb, hundreds to millions of times.
    pub max_ratio: u64,
    /// A whole-document report (a format that cannot be read in chunks) is held in memory
    /// up to this size.
    pub max_document: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 64 << 30, max_ratio: 200, max_document: 512 << 20 }
    }
}

/// Bytes decompressed before the ratio limit applies: small inputs of very repetitive text
/// compress far beyond any sane ratio and are harmless.
pub const RATIO_GRACE: u64 = 16 << 20;

/// Default size of one parse chunk.
pub const CHUNK: usize = 4 << 20;

/// Where an input's bytes are.
#[derive(Debug, Clone)]
pub enum Source {
    /// Read from the file as a stream.
    File(PathBuf),
    /// Already in memory (fetched bodies, embedded samples).
    Bytes(Bytes),
}

trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl Source {
    fn open(&self) -> std::io::Result<Box<dyn ReadSeek>> {
        Ok(match self {
            Source::File(p) => Box::new(std::fs::File::open(p)?),
            Source::Bytes(b) => Box::new(std::io::Cursor::new(b.clone())),
        })
    }

    fn head(&self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(n);
        self.open()?.take(n as u64).read_to_end(&mut v)?;
        Ok(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Plain,
    Gzip,
    Zip { index: usize, compressed: u64 },
}

/// One report inside an input: the file itself, the inside of a gzip, or a zip member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The file name, without `.gz`; for a zip member, the member's name.
    pub name: String,
    /// `file.zip:member` or the file name: what errors name.
    pub what: String,
    kind: Kind,
}

fn decompress_err(what: &str, e: impl std::fmt::Display) -> FeedError {
    FeedError::Decompress { what: what.to_string(), source: std::io::Error::other(e.to_string()) }
}

/// What a gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// What a zip archive's first member starts with.
pub const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// The reports in an input, by magic bytes: a gzip holds one, a zip one per file member,
/// anything else is one report as it is.
pub fn members(name: &str, src: &Source) -> Result<Vec<MemberRef>, FeedError> {
    let head = src.head(4).map_err(|source| FeedError::Decompress { what: name.to_string(), source })?;
    if head.starts_with(&GZIP_MAGIC) {
        let inner = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".gzip")).unwrap_or(name);
        return Ok(vec![MemberRef { name: inner.to_string(), what: name.to_string(), kind: Kind::Gzip }]);
    }
    if head.starts_with(&ZIP_MAGIC) {
        let r = src.open().map_err(|source| FeedError::Decompress { what: name.to_string(), source })?;
        let mut archive = zip::ZipArchive::new(r).map_err(|e| decompress_err(name, e))?;
        let mut out = Vec::new();
        for i in 0..archive.len() {
            let file = archive.by_index(i).map_err(|e| decompress_err(name, e))?;
            if file.is_dir() {
                continue;
            }
            let member = match file.name() {
                Ok(n) => n.to_string(),
                Err(_) => format!("member-{i}"),
            };
            out.push(MemberRef {
                what: format!("{name}:{member}"),
                name: member,
                kind: Kind::Zip { index: i, compressed: file.compressed_size() },
            });
        }
        return Ok(out);
    }
    Ok(vec![MemberRef { name: name.to_string(), what: name.to_string(), kind: Kind::Plain }])
}

/// Why a limited reader stopped; carried inside an `io::Error` through the decoders.
#[derive(Debug)]
struct Exceeded(FeedError);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for Exceeded {}

/// Counts what a decoder takes from the compressed input.
struct Counting<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// The decompressed stream, failing once it passes the limits.
struct Limited<R> {
    inner: R,
    out: u64,
    max: u64,
    max_ratio: u64,
    /// Compressed bytes consumed so far (gzip), or the member's compressed size (zip).
    compressed: Rc<Cell<u64>>,
    /// `None` for plain input: nothing to compare against.
    ratio_applies: bool,
    what: String,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.out += k as u64;
        if self.out > self.max {
            return Err(std::io::Error::other(Exceeded(FeedError::TooLarge {
                what: self.what.clone(),
                limit: self.max,
            })));
        }
        if self.ratio_applies && self.out > RATIO_GRACE {
            let c = self.compressed.get().max(1);
            if self.out / c > self.max_ratio {
                return Err(std::io::Error::other(Exceeded(FeedError::Ratio {
                    what: self.what.clone(),
                    ratio: self.out / c,
                    limit: self.max_ratio,
                })));
            }
        }
        Ok(k)
    }
}

/// A gzip stream decompressed within `limits` (at most `max_bytes` less `used` out, and a
/// bomb's ratio over the compressed bytes it read): a gzip input, or a gzip inside another
/// input (a zip's gzipped member), held to the same limits either way.
pub struct Gunzipped<R: Read>(Limited<flate2::read::MultiGzDecoder<Counting<R>>>);

impl<R: Read> Gunzipped<R> {
    pub fn new(inner: R, limits: &Limits, used: u64, what: &str) -> Self {
        let compressed = Rc::new(Cell::new(0));
        Gunzipped(Limited {
            inner: flate2::read::MultiGzDecoder::new(Counting { inner, n: compressed.clone() }),
            out: 0,
            max: limits.max_bytes.saturating_sub(used),
            max_ratio: limits.max_ratio,
            compressed,
            ratio_applies: true,
            what: what.to_string(),
        })
    }

    /// Bytes decompressed so far.
    pub fn expanded(&self) -> u64 {
        self.0.out
    }
}

impl<R: Read> Read for Gunzipped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// The limit an `io::Error` from a limited reader carries, else a decompression error.
pub fn read_error(what: &str, e: std::io::Error) -> FeedError {
    if e.get_ref().is_some_and(|i| i.is::<Exceeded>()) {
        match e.into_inner().map(|i| i.downcast::<Exceeded>()) {
            Some(Ok(x)) => return x.0,
            Some(Err(other)) => {
                return FeedError::Decompress { what: what.into(), source: std::io::Error::other(other) };
            }
            None => {
                return FeedError::Decompress {
                    what: what.into(),
                    source: std::io::Error::other("read failed"),
                };
            }
        }
    }
    FeedError::Decompress { what: what.to_string(), source: e }
}

/// Runs `f` over the member's decompressed bytes as a stream, within `limits`
/// (`max_bytes` less what earlier members of the same input used: `used`).
pub fn with_reader<T>(
    src: &Source,
    m: &MemberRef,
    limits: &Limits,
    used: u64,
    f: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, FeedError> {
    let io = |source| FeedError::Decompress { what: m.what.clone(), source };
    let max = limits.max_bytes.saturating_sub(used);
    let compressed = Rc::new(Cell::new(0));
    fn limited<R: Read>(
        inner: R,
        ratio_applies: bool,
        max: u64,
        limits: &Limits,
        c: &Rc<Cell<u64>>,
        what: &str,
    ) -> Limited<R> {
        Limited {
            inner,
            out: 0,
            max,
            max_ratio: limits.max_ratio,
            compressed: c.clone(),
            ratio_applies,
            what: what.to_string(),
        }
    }
    match &m.kind {
        Kind::Plain => {
            let r = src.open().map_err(io)?;
            let mut l = limited(r, false, max, limits, &compressed, &m.what);
            Ok(f(&mut l))
        }
        Kind::Gzip => Ok(f(&mut Gunzipped::new(src.open().map_err(io)?, limits, used, &m.what))),
        Kind::Zip { index, compressed: size } => {
            let r = src.open().map_err(io)?;
            let mut archive = zip::ZipArchive::new(r).map_err(|e| decompress_err(&m.what, e))?;
            let file = archive.by_index(*index).map_err(|e| decompress_err(&m.what, e))?;
            compressed.set(*size);
            let mut l = limited(file, true, max, limits, &compressed, &m.what);
            Ok(f(&mut l))
        }
    }
}

/// Reads a stream to its end into memory, up to `max` bytes.
pub fn read_all(r: &mut dyn Read, what: &str, max: u64) -> Result<Bytes, FeedError> {
    let mut v = Vec::new();
    let n = r.take(max + 1).read_to_end(&mut v).map_err(|e| read_error(what, e))?;
    if n as u64 > max {
        return Err(FeedError::TooLarge { what: what.to_string(), limit: max });
    }
    Ok(Bytes::from(v))
}

/// A stream cut into record-aligned chunks of about `size` bytes: each ends at a line end
/// (for CSV, one outside double quotes), so a record never spans two chunks. A read error
/// ends the chunks and is kept in [`Chunker::error`].
pub struct Chunker<'r> {
    r: &'r mut dyn Read,
    kind: Chunking,
    size: usize,
    /// Bytes read but not yet handed out (the start of an unfinished record).
    carry: BytesMut,
    done: bool,
    pub error: Option<std::io::Error>,
}

impl<'r> Chunker<'r> {
    pub fn new(r: &'r mut dyn Read, kind: Chunking, size: usize) -> Self {
        Chunker { r, kind, size: size.max(1024), carry: BytesMut::new(), done: false, error: None }
    }
}

/// The end (exclusive) of the last whole record in `buf`, which starts at a record start.
fn boundary(kind: Chunking, buf: &[u8]) -> Option<usize> {
    match kind {
        Chunking::Lines => memchr::memrchr(b'\n', buf).map(|i| i + 1),
        Chunking::Csv => {
            // RFC 4180: a line end is a record end when an even number of quotes precede it
            // in the record ("" inside a field toggles twice).
            let mut q = false;
            let mut last = None;
            for i in memchr::memchr2_iter(b'"', b'\n', buf) {
                if buf[i] == b'"' {
                    q = !q;
                } else if !q {
                    last = Some(i + 1);
                }
            }
            last
        }
    }
}

impl Iterator for Chunker<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            // Fill up to the chunk size.
            let target = self.carry.len().max(self.size);
            let mut filled = self.carry.len();
            self.carry.resize(target, 0);
            let mut eof = false;
            while filled < target {
                match self.r.read(&mut self.carry[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.error = Some(e);
                        self.done = true;
                        return None;
                    }
                }
            }
            self.carry.truncate(filled);
            if eof {
                self.done = true;
                return (!self.carry.is_empty()).then(|| self.carry.split().freeze());
            }
            match boundary(self.kind, &self.carry) {
                Some(end) => return Some(self.carry.split_to(end).freeze()),
                // One record longer than a chunk: grow and read on.
                None => {
                    self.size = self.size.saturating_mul(2);
                    continue;
                }
            }
        }
    }
}

/// One report inside an input, in memory.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub data: Bytes,
}

/// Every report of an input, decompressed into memory within `limit` bytes in all: for
/// tests, fuzzing and small inputs. The ingest pipeline streams instead.
pub fn decode(name: &str, data: Bytes, limit: u64) -> Result<Vec<Member>, FeedError> {
    let src = Source::Bytes(data);
    let limits = Limits { max_bytes: limit, max_ratio: u64::MAX, max_document: limit };
    let mut out = Vec::new();
    let mut used = 0;
    for m in members(name, &src)? {
        let data =
            with_reader(&src, &m, &limits, used, |r| read_all(r, &m.what, limit.saturating_sub(used)))??;
        used += data.len() as u64;
        out.push(Member { name: m.name, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_unwrapped_and_renamed() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello\n").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        let m = decode("2024-01-01-event4_sinkhole-x.csv.gz", gz, 100).unwrap();
        assert_eq!(m[0].name, "2024-01-01-event4_sinkhole-x.csv");
        assert_eq!(&m[0].data[..], b"hello\n");
    }

    #[test]
    fn bomb_is_refused() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10_000]).unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        assert!(matches!(decode("x.gz", gz, 1000), Err(FeedError::TooLarge { .. })));
    }

    #[test]
    fn a_bomb_stops_at_the_ratio_after_the_grace_bytes() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..64 {
            enc.write_all(&vec![b'a'; 1 << 20]).unwrap();
        }
        let src = Source::Bytes(Bytes::from(enc.finish().unwrap()));
        let m = &members("x.csv.gz", &src).unwrap()[0];
        let mut seen = 0u64;
        let r = with_reader(&src, m, &Limits::default(), 0, |r| {
            let mut buf = vec![0; 1 << 16];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(k) => seen += k as u64,
                    Err(e) => return Err(read_error("x", e)),
                }
            }
        })
        .unwrap();
        assert!(matches!(r, Err(FeedError::Ratio { .. })), "{r:?}");
        assert!(seen <= RATIO_GRACE + (1 << 20), "stopped soon after the grace: {seen}");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[7u8; 5000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(decode("x.gz", Bytes::copy_from_slice(&gz[..gz.len() / 2]), 1 << 20).is_err());
    }

    #[test]
    fn zip_members_are_listed() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file("a.txt", zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(b"1.2.3.4\n").unwrap();
            w.finish().unwrap();
        }
        let m = decode("x.zip", Bytes::from(buf.into_inner()), 1 << 20).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "a.txt");
    }

    #[test]
    fn chunks_end_at_records_and_join_to_the_input() {
        let csv = b"a,b\n1,\"x\ny\"\n2,z\n3,\"q\"\"\n\"\n4,w\n5,v".to_vec();
        for size in [1024, 2048] {
            for kind in [Chunking::Csv, Chunking::Lines] {
                let mut r: &[u8] = &csv;
                let mut ch = Chunker::new(&mut r, kind, size);
                let parts: Vec<Bytes> = ch.by_ref().collect();
                assert!(ch.error.is_none());
                assert_eq!(parts.concat(), csv);
            }
        }
        // Tiny chunks (the size floor is 1 KiB): force cuts by a long input.
        let mut big = Vec::new();
        for i in 0..2000 {
            big.extend_from_slice(format!("{i},\"multi\nline {i}\"\n").as_bytes());
        }
        let mut r: &[u8] = &big;
        let parts: Vec<Bytes> = Chunker::new(&mut r, Chunking::Csv, 1024).collect();
        assert!(parts.len() > 10);
        assert_eq!(parts.concat(), big);
        for p in &parts {
            let quotes = p.iter().filter(|&&b| b == b'"').count();
            assert_eq!(quotes % 2, 0, "a chunk never ends inside quotes");
            assert!(p.ends_with(b"\n"));
        }
    }
}

//! The embedded store's events, kept as compressed blocks.
//!
//! A row per event cost ~740 bytes on disk and a B-tree insert of that size; the same lines
//! compress with zstd to a few dozen bytes, because a report's rows repeat each other. So
//! the events of a report are cut into blocks of up to [`BLOCK_EVENTS`] consecutive events,
//! each block one row of `event_blocks` holding two zstd frames laid out by column:
//!
//! - `lean`: ids, line numbers, times, address, subject, ASN, country, type, family, feed and
//!   observation: what filters, statistics, the rollup and the sensors' address cache read;
//! - `body`: the IntelMQ documents and the raw lines, read only for rows a query returns.
//!
//! Numbers are stored as varint deltas from the row before and text as length-prefixed
//! bytes, column after column, so zstd sees long runs of like values. What must be found
//! without opening a block has its own small table, keyed by day first so that a day's
//! writes stay together in the B-tree however large the store grows: `event_keys` (the
//! fingerprints that make a re-sent event a duplicate) and `event_obs` (the events of an
//! observation, which is how events are found by address). Whole days are what retention
//! removes.

use crate::{Result, StoreError};

/// Events per block: large enough that zstd finds a report's repetitions (2,048 sinkhole
/// rows are ~1.5 MB of text), small enough that reading one event decompresses little.
pub(crate) const BLOCK_EVENTS: usize = 2048;

/// Uncompressed bytes of documents and raw lines past which a block is closed early.
pub(crate) const BLOCK_BYTES: usize = 8 << 20;

/// zstd level: 1 compresses these blocks within a few per cent of 3 at twice the speed, and
/// the writer is the pipeline's serial stage.
const LEVEL: i32 = 1;

/// No block decompresses to more than this; a larger size in a header is corruption.
const MAX_FRAME: usize = 1 << 30;

/// The indexed fields of one event, as a block stores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lean {
    pub id: i64,
    pub line: i64,
    pub feed: String,
    pub time_source: Option<i64>,
    pub time_observation: i64,
    pub ip: Option<[u8; 16]>,
    pub subject: Option<String>,
    pub asn: Option<i64>,
    pub cc: Option<String>,
    pub ty: String,
    pub family: Option<String>,
    pub observation: Option<i64>,
}

impl Lean {
    /// The time the event is counted under: its source time, else when it was observed.
    pub fn time(&self) -> i64 {
        self.time_source.unwrap_or(self.time_observation)
    }
}

/// The borrowed fields [`BlockBuilder::push`] takes, whichever form the event comes in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub line: i64,
    pub feed: &'a str,
    pub time_source: Option<i64>,
    pub time_observation: i64,
    pub ip: Option<&'a [u8; 16]>,
    pub subject: Option<&'a str>,
    pub asn: Option<i64>,
    pub cc: Option<&'a str>,
    pub ty: &'a str,
    pub family: Option<&'a str>,
    pub observation: Option<i64>,
    pub doc: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn of_lean(l: &'a Lean, doc: &'a [u8], raw: &'a [u8]) -> Self {
        Fields {
            line: l.line,
            feed: &l.feed,
            time_source: l.time_source,
            time_observation: l.time_observation,
            ip: l.ip.as_ref(),
            subject: l.subject.as_deref(),
            asn: l.asn,
            cc: l.cc.as_deref(),
            ty: &l.ty,
            family: l.family.as_deref(),
            observation: l.observation,
            doc,
            raw,
        }
    }
}

/// A block ready to store.
#[derive(Debug)]
pub(crate) struct Block {
    pub first_id: i64,
    pub last_id: i64,
    pub count: i64,
    pub day_min: i64,
    pub day_max: i64,
    pub lean: Vec<u8>,
    pub body: Vec<u8>,
}

// Column numbers of the lean frame.
const ID: usize = 0;
const LINE: usize = 1;
const TOBS: usize = 2;
const TSRC: usize = 3;
const OBS: usize = 4;
const ASN: usize = 5;
const IP: usize = 6;
const FEED: usize = 7;
const TY: usize = 8;
const SUBJECT: usize = 9;
const CC: usize = 10;
const FAMILY: usize = 11;
const COLUMNS: usize = 12;

#[derive(Default)]
struct Prev {
    id: i64,
    line: i64,
    tobs: i64,
    tsrc: i64,
    obs: i64,
}

/// Collects events into a block; [`BlockBuilder::finish`] compresses it.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    n: usize,
    first_id: i64,
    last_id: i64,
    day_min: i64,
    day_max: i64,
    prev: Prev,
    cols: [Vec<u8>; COLUMNS],
    docs: Vec<u8>,
    raws: Vec<u8>,
    scratch: Vec<u8>,
}

impl BlockBuilder {
    /// Full at [`BLOCK_EVENTS`] events, or earlier when their documents and raw lines
    /// reach [`BLOCK_BYTES`] (whole-document formats carry large raw values).
    pub fn is_full(&self) -> bool {
        self.n >= BLOCK_EVENTS || self.docs.len() + self.raws.len() >= BLOCK_BYTES
    }

    /// Adds an event; ids must grow.
    pub fn push(&mut self, id: i64, f: &Fields<'_>) {
        let day = crate::rollup::day_of(f.time_source.unwrap_or(f.time_observation));
        if self.n == 0 {
            self.first_id = id;
            self.day_min = day;
            self.day_max = day;
        }
        self.last_id = id;
        self.day_min = self.day_min.min(day);
        self.day_max = self.day_max.max(day);
        self.n += 1;
        let c = &mut self.cols;
        let p = &mut self.prev;
        put_signed(&mut c[ID], id.wrapping_sub(p.id));
        p.id = id;
        put_signed(&mut c[LINE], f.line.wrapping_sub(p.line));
        p.line = f.line;
        put_signed(&mut c[TOBS], f.time_observation.wrapping_sub(p.tobs));
        p.tobs = f.time_observation;
        put_opt_delta(&mut c[TSRC], f.time_source, &mut p.tsrc);
        put_opt_delta(&mut c[OBS], f.observation, &mut p.obs);
        match f.asn {
            Some(a) => put_varint(&mut c[ASN], zigzag(a).wrapping_add(1)),
            None => put_varint(&mut c[ASN], 0),
        }
        match f.ip {
            None => c[IP].push(0),
            Some(k) if k[..12] == V4_PREFIX => {
                c[IP].push(4);
                c[IP].extend_from_slice(&k[12..]);
            }
            Some(k) => {
                c[IP].push(16);
                c[IP].extend_from_slice(k);
            }
        }
        put_str(&mut c[FEED], Some(f.feed));
        put_str(&mut c[TY], Some(f.ty));
        put_str(&mut c[SUBJECT], f.subject);
        put_str(&mut c[CC], f.cc);
        put_str(&mut c[FAMILY], f.family);
        put_varint(&mut self.docs, f.doc.len() as u64);
        self.docs.extend_from_slice(f.doc);
        put_varint(&mut self.raws, f.raw.len() as u64);
        self.raws.extend_from_slice(f.raw);
    }

    /// The block so far, compressed; the builder is empty again. `None` when it was empty.
    pub fn finish(&mut self) -> Result<Option<Block>> {
        if self.n == 0 {
            return Ok(None);
        }
        let s = &mut self.scratch;
        s.clear();
        put_varint(s, self.n as u64);
        for c in &self.cols {
            put_varint(s, c.len() as u64);
        }
        for c in &self.cols {
            s.extend_from_slice(c);
        }
        let lean = compress(s)?;
        s.clear();
        put_varint(s, self.docs.len() as u64);
        s.extend_from_slice(&self.docs);
        s.extend_from_slice(&self.raws);
        let body = compress(s)?;
        let block = Block {
            first_id: self.first_id,
            last_id: self.last_id,
            count: self.n as i64,
            day_min: self.day_min,
            day_max: self.day_max,
            lean,
            body,
        };
        self.n = 0;
        self.prev = Prev::default();
        for c in &mut self.cols {
            c.clear();
        }
        self.docs.clear();
        self.raws.clear();
        Ok(Some(block))
    }
}

const V4_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

// One zstd context per thread: making one per call (what `zstd::bulk::compress` and
// `decompress` do) cost more than compressing a case's sightings, about 20 µs each.
thread_local! {
    static ZC: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static ZD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// `data` as one zstd frame at [`LEVEL`] (the frame states its size), with this thread's
/// context. Also what case rows keep their recent sightings in.
pub(crate) fn zstd_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    ZC.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(LEVEL)?);
        }
        c.as_mut().map_or_else(|| Ok(Vec::new()), |c| c.compress(data))
    })
}

/// One zstd frame of at most `max` bytes, with this thread's context. The output is sized
/// by the frame's own header, so a frame that states no size or more than `max` is refused
/// before anything is allocated (and a capacity of `max` is not mapped for every read).
pub(crate) fn zstd_decompress(data: &[u8], max: usize) -> std::io::Result<Vec<u8>> {
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n <= max as u64 => n as usize,
        _ => return Err(std::io::Error::other("frame size missing or too large")),
    };
    ZD.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().map_or_else(|| Ok(Vec::new()), |d| d.decompress(data, size))
    })
}

fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 8 + 16);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let z = zstd_compress(data).map_err(|e| StoreError::Corrupt(format!("zstd: {e}")))?;
    out.extend_from_slice(&z);
    Ok(out)
}

fn decompress(blob: &[u8]) -> Result<Vec<u8>> {
    let (len, z) = blob.split_first_chunk::<4>().ok_or_else(|| corrupt("block shorter than its header"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_FRAME {
        return Err(corrupt("block larger than any botwatch writes"));
    }
    // The frame states its size too: one larger than the header's is refused before
    // anything is allocated for it, a smaller one after.
    let out = zstd_decompress(z, len).map_err(|e| corrupt(&format!("zstd: {e}")))?;
    if out.len() != len {
        return Err(corrupt("block shorter than its header says"));
    }
    Ok(out)
}

fn corrupt(why: &str) -> StoreError {
    StoreError::Corrupt(format!("event block: {why}"))
}

/// The lean columns of a stored block, one [`Lean`] per event.
pub(crate) fn decode_lean(blob: &[u8]) -> Result<Vec<Lean>> {
    let buf = decompress(blob)?;
    let mut head = Reader { b: &buf };
    let n = head.varint()? as usize;
    if n > buf.len() {
        return Err(corrupt("more events than bytes"));
    }
    let mut cols: Vec<Reader<'_>> = Vec::with_capacity(COLUMNS);
    let mut lens = [0usize; COLUMNS];
    for l in &mut lens {
        *l = head.varint()? as usize;
    }
    let mut rest = head.b;
    for l in lens {
        if l > rest.len() {
            return Err(corrupt("column past the end"));
        }
        let (c, r) = rest.split_at(l);
        cols.push(Reader { b: c });
        rest = r;
    }
    let mut out = Vec::with_capacity(n);
    let mut p = Prev::default();
    for _ in 0..n {
        p.id = p.id.wrapping_add(cols[ID].signed()?);
        p.line = p.line.wrapping_add(cols[LINE].signed()?);
        p.tobs = p.tobs.wrapping_add(cols[TOBS].signed()?);
        let tsrc = cols[TSRC].opt_delta(&mut p.tsrc)?;
        let obs = cols[OBS].opt_delta(&mut p.obs)?;
        let asn = match cols[ASN].varint()? {
            0 => None,
            v => Some(unzigzag(v - 1)),
        };
        let ip = match cols[IP].byte()? {
            0 => None,
            4 => {
                let mut k = [0u8; 16];
                k[..12].copy_from_slice(&V4_PREFIX);
                k[12..].copy_from_slice(cols[IP].take(4)?);
                Some(k)
            }
            16 => Some(<[u8; 16]>::try_from(cols[IP].take(16)?).map_err(|_| corrupt("address"))?),
            _ => return Err(corrupt("address tag")),
        };
        out.push(Lean {
            id: p.id,
            line: p.line,
            time_observation: p.tobs,
            time_source: tsrc,
            observation: obs,
            asn,
            ip,
            feed: cols[FEED].string()?.unwrap_or_default(),
            ty: cols[TY].string()?.unwrap_or_default(),
            subject: cols[SUBJECT].string()?,
            cc: cols[CC].string()?,
            family: cols[FAMILY].string()?,
        });
    }
    Ok(out)
}

/// The documents and raw lines of a stored block, in event order.
pub(crate) struct Body {
    buf: Vec<u8>,
    /// (document, raw line) byte ranges in `buf`.
    rows: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl Body {
    pub fn decode(blob: &[u8], n: usize) -> Result<Body> {
        let buf = decompress(blob)?;
        let mut r = Reader { b: &buf };
        let docs_len = r.varint()? as usize;
        let start = buf.len() - r.b.len();
        if docs_len > r.b.len() {
            return Err(corrupt("documents past the end"));
        }
        let mut docs = Reader { b: &buf[start..start + docs_len] };
        let mut raws = Reader { b: &buf[start + docs_len..] };
        let mut rows = Vec::with_capacity(n.min(BLOCK_EVENTS * 4));
        for _ in 0..n {
            let d = docs.span(&buf)?;
            let w = raws.span(&buf)?;
            rows.push((d, w));
        }
        Ok(Body { buf, rows })
    }

    /// Event `i`'s (document, raw line).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.rows.get(i).map(|(d, w)| (&self.buf[d.clone()], &self.buf[w.clone()]))
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let (&x, rest) = self.b.split_first().ok_or_else(|| corrupt("column ends early"))?;
        self.b = rest;
        Ok(x)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.byte()?;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn signed(&mut self) -> Result<i64> {
        Ok(unzigzag(self.varint()?))
    }

    fn opt_delta(&mut self, prev: &mut i64) -> Result<Option<i64>> {
        Ok(match self.varint()? {
            0 => None,
            v => {
                *prev = prev.wrapping_add(unzigzag(v - 1));
                Some(*prev)
            }
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(corrupt("value past the end of its column"));
        }
        let (x, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(x)
    }

    fn string(&mut self) -> Result<Option<String>> {
        match self.varint()? {
            0 => Ok(None),
            n => {
                let b = self.take((n - 1) as usize)?;
                Ok(Some(String::from_utf8(b.to_vec()).map_err(|_| corrupt("text is not UTF-8"))?))
            }
        }
    }

    /// A length-prefixed value's range within `whole`, which `self` is a slice of.
    fn span(&mut self, whole: &[u8]) -> Result<std::ops::Range<usize>> {
        let n = self.varint()? as usize;
        let b = self.take(n)?;
        let start = b.as_ptr() as usize - whole.as_ptr() as usize;
        Ok(start..start + n)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

fn put_opt_delta(out: &mut Vec<u8>, v: Option<i64>, prev: &mut i64) {
    match v {
        None => put_varint(out, 0),
        Some(x) => {
            put_varint(out, zigzag(x.wrapping_sub(*prev)).wrapping_add(1));
            *prev = x;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_varint(out, 0),
        Some(s) => {
            put_varint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The fuzz entry point (`fuzz/fuzz_targets/store_blocks.rs`): any bytes as a stored block's
/// frames are refused or read back, never a panic; a block that reads back re-encodes to the
/// same rows. The first byte picks how many events the body is asked for.
pub fn fuzz(data: &[u8]) {
    if let Ok(rows) = decode_lean(data) {
        let mut b = BlockBuilder::default();
        for l in &rows {
            b.push(l.id, &Fields::of_lean(l, b"", b""));
        }
        if let Ok(Some(block)) = b.finish() {
            assert_eq!(decode_lean(&block.lean).expect("own encoding reads back"), rows);
        }
    }
    let n = data.first().copied().unwrap_or(0) as usize;
    if let Ok(body) = Body::decode(data, n) {
        for i in 0..n {
            assert!(body.get(i).is_some());
        }
    }
}

/// A valid block's two frames, for seeding the fuzz corpus.
pub fn sample() -> (Vec<u8>, Vec<u8>) {
    let mut b = BlockBuilder::default();
    for i in 0..40i64 {
        let l = Lean {
            id: 100 + i,
            line: i + 2,
            feed: "shadowserver_event4_sinkhole".into(),
            time_source: Some(1_700_000_000_000_000 + i * 1_000_000),
            time_observation: 1_700_000_100_000_000,
            ip: Some(crate::ip_key(std::net::IpAddr::from([192, 0, 2, i as u8]))),
            subject: Some(format!("192.0.2.{i}")),
            asn: Some(64496),
            cc: Some("NL".into()),
            ty: "infected-system".into(),
            family: (i % 3 != 0).then(|| "emotet".into()),
            observation: Some(i / 2),
        };
        b.push(
            l.id,
            &Fields::of_lean(
                &l,
                format!("[{i},\"tcp\"]").as_bytes(),
                format!("row {i},192.0.2.{i},80").as_bytes(),
            ),
        );
    }
    let block = b.finish().ok().flatten().expect("a block of 40 events");
    (block.lean, block.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lean_strategy() -> impl Strategy<Value = (Lean, Vec<u8>, Vec<u8>)> {
        (
            (any::<i64>(), any::<Option<i64>>(), any::<i64>(), any::<Option<[u8; 16]>>(), any::<bool>()),
            (
                any::<Option<String>>(),
                any::<Option<i64>>(),
                any::<Option<String>>(),
                ".*",
                any::<Option<String>>(),
            ),
            (any::<Option<i64>>(), any::<Vec<u8>>(), any::<Vec<u8>>(), ".*"),
        )
            .prop_map(
                |((line, tsrc, tobs, ip, v4), (subject, asn, cc, ty, family), (obs, doc, raw, feed))| {
                    // Half the addresses as IPv4, which blocks store in four bytes.
                    let ip = ip.map(|mut k| {
                        if v4 {
                            k[..12].copy_from_slice(&V4_PREFIX);
                        }
                        k
                    });
                    (
                        Lean {
                            id: 0,
                            line,
                            feed,
                            time_source: tsrc,
                            time_observation: tobs,
                            ip,
                            subject,
                            asn: asn.map(|a| a.clamp(i64::MIN / 2, i64::MAX / 2)),
                            cc,
                            ty,
                            family,
                            observation: obs,
                        },
                        doc,
                        raw,
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn blocks_give_back_what_went_in(rows in proptest::collection::vec(lean_strategy(), 1..40), start in 0i64..1 << 40) {
            let mut b = BlockBuilder::default();
            let mut want = Vec::new();
            for (i, (mut l, doc, raw)) in rows.into_iter().enumerate() {
                l.id = start + (i as i64) * 3;
                b.push(l.id, &Fields::of_lean(&l, &doc, &raw));
                want.push((l, doc, raw));
            }
            let block = b.finish().unwrap().unwrap();
            prop_assert_eq!(block.count as usize, want.len());
            prop_assert_eq!(block.first_id, want[0].0.id);
            let lean = decode_lean(&block.lean).unwrap();
            let body = Body::decode(&block.body, lean.len()).unwrap();
            for (i, (l, doc, raw)) in want.iter().enumerate() {
                prop_assert_eq!(&lean[i], l);
                let (d, r) = body.get(i).unwrap();
                prop_assert_eq!(d, &doc[..]);
                prop_assert_eq!(r, &raw[..]);
            }
            prop_assert!(b.finish().unwrap().is_none(), "finish empties the builder");
        }

        #[test]
        fn a_damaged_block_is_an_error_never_a_panic(bytes in any::<Vec<u8>>(), n in 0usize..5000) {
            let _ = decode_lean(&bytes);
            let _ = Body::decode(&bytes, n);
        }
    }

    #[test]
    fn damaged_frames_inside_a_valid_header_are_errors() {
        let mut b = BlockBuilder::default();
        let l = Lean { ty: "infected-system".into(), feed: "f".into(), ..Default::default() };
        for id in 1..=100 {
            b.push(id, &Fields::of_lean(&l, b"[1,2]", b"a,b,c"));
        }
        let block = b.finish().unwrap().unwrap();
        for cut in [4, 5, block.lean.len() / 2, block.lean.len() - 1] {
            assert!(decode_lean(&block.lean[..cut]).is_err(), "cut at {cut}");
        }
        // More rows asked of the body than it holds.
        assert!(Body::decode(&block.body, 101).is_err());
    }
}

//! Frame Streams (fstrm) framing, the transport under dnstap files and sockets.
//!
//! A data frame is a big-endian u32 length and that many bytes. A zero length escapes a
//! control frame: u32 control length, u32 control type, then fields (u32 type, u32 length,
//! bytes); field type 1 is a content type. Control frames are at most 512 bytes.
//! No maintained Rust crate reads Frame Streams (the `framestream` crate only writes), so
//! this small reader is our own.

/// The content type dnstap uses.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Largest control frame the protocol allows.
pub const MAX_CONTROL_FRAME: usize = 512;
/// Largest data frame we accept; a DNS message is at most 64 KiB, so a dnstap message
/// carrying two of them fits easily. Larger lengths mean a corrupt stream.
pub const MAX_DATA_FRAME: usize = 1 << 20;

pub const ACCEPT: u32 = 1;
pub const START: u32 = 2;
pub const STOP: u32 = 3;
pub const READY: u32 = 4;
pub const FINISH: u32 = 5;
const FIELD_CONTENT_TYPE: u32 = 1;

/// One frame, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(&'a [u8]),
    Control { kind: u32, content_types: Vec<&'a [u8]> },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses the frame at the start of `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((frame, consumed)))`, or `Err(reason)` when the stream cannot be followed.
pub fn parse_frame(buf: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be32(buf) as usize;
    if len != 0 {
        if len > max_data {
            return Err(format!("data frame of {len} bytes exceeds the {max_data}-byte limit"));
        }
        return Ok(buf.get(4..4 + len).map(|d| (Frame::Data(d), 4 + len)));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let clen = be32(&buf[4..]) as usize;
    if !(4..=MAX_CONTROL_FRAME).contains(&clen) {
        return Err(format!("control frame length {clen} outside 4..=512"));
    }
    let Some(body) = buf.get(8..8 + clen) else { return Ok(None) };
    let kind = be32(body);
    if !(ACCEPT..=FINISH).contains(&kind) {
        return Err(format!("unknown control frame type {kind}"));
    }
    let mut content_types = Vec::new();
    let mut rest = &body[4..];
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err("truncated control field".into());
        }
        let (ftype, flen) = (be32(rest), be32(&rest[4..]) as usize);
        let value = rest.get(8..8 + flen).ok_or("control field longer than its frame")?;
        if ftype == FIELD_CONTENT_TYPE {
            content_types.push(value);
        }
        rest = &rest[8 + flen..];
    }
    Ok(Some((Frame::Control { kind, content_types }, 8 + clen)))
}

/// A control frame with an optional content type, escape included.
pub fn encode_control(kind: u32, content_type: Option<&[u8]>) -> Vec<u8> {
    let field_len = content_type.map_or(0, |c| 8 + c.len());
    let mut out = Vec::with_capacity(12 + field_len);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&((4 + field_len) as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    if let Some(c) = content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// A data frame: length and payload.
pub fn encode_data(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A file starts with a START control frame.
pub(crate) fn looks_like_file(b: &[u8]) -> bool {
    b.len() >= 12 && b[..4] == [0; 4] && be32(&b[8..]) == START && (4..=512).contains(&be32(&b[4..]))
}

/// Incremental decoder for byte streams (sockets) that arrive in arbitrary pieces.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    max_data: usize,
}

/// An owned frame from [`Decoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedFrame {
    Data(Vec<u8>),
    Control { kind: u32, content_types: Vec<Vec<u8>> },
}

impl Decoder {
    pub fn new(max_data: usize) -> Self {
        Decoder { buf: Vec::new(), pos: 0, max_data }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next whole frame, `Ok(None)` until more bytes arrive, `Err` once the stream is
    /// corrupt (the caller should drop the connection).
    pub fn next_frame(&mut self) -> Result<Option<OwnedFrame>, String> {
        let Some((frame, used)) = parse_frame(&self.buf[self.pos..], self.max_data)? else {
            return Ok(None);
        };
        let owned = match frame {
            Frame::Data(d) => OwnedFrame::Data(d.to_vec()),
            Frame::Control { kind, content_types } => OwnedFrame::Control {
                kind,
                content_types: content_types.into_iter().map(<[u8]>::to_vec).collect(),
            },
        };
        self.pos += used;
        Ok(Some(owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trip_and_data() {
        let mut s = encode_control(START, Some(CONTENT_TYPE));
        s.extend(encode_data(b"hello"));
        s.extend(encode_control(STOP, None));
        assert!(looks_like_file(&s));
        let (f, n) = parse_frame(&s, MAX_DATA_FRAME).unwrap().unwrap();
        assert_eq!(f, Frame::Control { kind: START, content_types: vec![CONTENT_TYPE] });
        let (f, m) = parse_frame(&s[n..], MAX_DATA_FRAME).unwrap().unwrap();
        assert_eq!(f, Frame::Data(b"hello"));
        let (f, _) = parse_frame(&s[n + m..], MAX_DATA_FRAME).unwrap().unwrap();
        assert_eq!(f, Frame::Control { kind: STOP, content_types: vec![] });
        // Every prefix is "need more", never an error or a wrong frame.
        for cut in 0..n {
            assert_eq!(parse_frame(&s[..cut], MAX_DATA_FRAME), Ok(None));
        }
    }

    #[test]
    fn corrupt_lengths_are_errors() {
        assert!(parse_frame(&[0, 0, 0, 0, 0, 0, 16, 0], MAX_DATA_FRAME).is_err());
        assert!(parse_frame(&[0xff, 0xff, 0xff, 0xff], MAX_DATA_FRAME).is_err());
        assert!(parse_frame(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 9], MAX_DATA_FRAME).is_err());
        // A field claiming more bytes than the frame holds.
        assert!(parse_frame(&[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 0], 64).is_err());
    }

    #[test]
    fn decoder_reassembles_byte_by_byte() {
        let mut s = encode_control(START, Some(CONTENT_TYPE));
        for i in 0..50u8 {
            s.extend(encode_data(&[i; 33]));
        }
        let mut d = Decoder::new(MAX_DATA_FRAME);
        let mut data = 0;
        for b in &s {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                if let OwnedFrame::Data(p) = f {
                    assert_eq!(p, vec![data as u8; 33]);
                    data += 1;
                }
            }
        }
        assert_eq!((data, d.pending()), (50, 0));
    }
}

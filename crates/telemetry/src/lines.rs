//! Lines of a text log, one at a time, from memory or streamed from a reader through one
//! reused buffer. The text readers (flow logs, Zeek `dns.log`) take their lines from here, so
//! a log of any size is read in the memory of its longest line, capped at [`MAX_LINE`].

use std::io::BufRead;

/// The longest line kept whole. A file with no newline for gigabytes (a binary file, a
/// corrupt log) must not become one gigabyte-sized line; the rest of such a line is skipped
/// and the line is handed on marked [`Line::cut`], for the reader to reject.
pub const MAX_LINE: usize = 1 << 20;

/// One line without its `\n` (nor a `\r` before it).
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// 1-based, counting every line of the input.
    pub number: u64,
    pub bytes: &'a [u8],
    /// Longer than [`MAX_LINE`]: `bytes` holds its start only.
    pub cut: bool,
}

/// Where a text reader takes its lines from: a lending iterator (each line borrows the
/// source until the next is asked for).
pub trait LineSource {
    fn next_line(&mut self) -> Option<Line<'_>>;
}

/// The lines of a buffer in memory, as `split(b'\n')` gives them (the empty piece after a
/// final newline included, which readers skip as blank).
pub struct SliceLines<'a> {
    rest: Option<&'a [u8]>,
    number: u64,
}

impl<'a> SliceLines<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        SliceLines { rest: Some(data), number: 0 }
    }
}

impl LineSource for SliceLines<'_> {
    fn next_line(&mut self) -> Option<Line<'_>> {
        let rest = self.rest?;
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        self.rest = next;
        self.number += 1;
        Some(Line { number: self.number, bytes: line.strip_suffix(b"\r").unwrap_or(line), cut: false })
    }
}

/// The lines of a reader, each read into one reused buffer. A read error ends the lines;
/// it is kept in [`ReadLines::error`] for the caller to report, so the lines before it are
/// not lost.
pub struct ReadLines<R> {
    inner: R,
    buf: Vec<u8>,
    number: u64,
    done: bool,
    pub error: Option<std::io::Error>,
}

impl<R: BufRead> ReadLines<R> {
    pub fn new(inner: R) -> Self {
        ReadLines { inner, buf: Vec::new(), number: 0, done: false, error: None }
    }

    /// The reader back, where the lines left it.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: BufRead> LineSource for ReadLines<R> {
    fn next_line(&mut self) -> Option<Line<'_>> {
        if self.done {
            return None;
        }
        self.buf.clear();
        let (mut cut, mut newline) = (false, false);
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A line cut short by the failure is not a line: its last field would
                    // read as a wrong address or count.
                    self.error = Some(e);
                    self.done = true;
                    return None;
                }
            };
            if avail.is_empty() {
                self.done = true;
                break;
            }
            let (take, used) = match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    newline = true;
                    (i, i + 1)
                }
                None => (avail.len(), avail.len()),
            };
            let room = MAX_LINE.saturating_sub(self.buf.len());
            cut |= take > room;
            self.buf.extend_from_slice(&avail[..take.min(room)]);
            self.inner.consume(used);
            if newline {
                break;
            }
        }
        if !newline && self.buf.is_empty() && !cut {
            // The end: as with a slice, input that ends in a newline ends in an empty line,
            // which readers skip as blank; nothing is lost by not giving it.
            return None;
        }
        self.number += 1;
        let line = if cut { &self.buf[..] } else { self.buf.strip_suffix(b"\r").unwrap_or(&self.buf) };
        Some(Line { number: self.number, bytes: line, cut })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &mut dyn LineSource) -> Vec<(u64, Vec<u8>, bool)> {
        let mut v = Vec::new();
        while let Some(l) = src.next_line() {
            v.push((l.number, l.bytes.to_vec(), l.cut));
        }
        v
    }

    #[test]
    fn slices_and_readers_give_the_same_lines() {
        for text in [&b"a\r\nbb\n\nccc"[..], b"a\n", b"", b"\n\n", b"x"] {
            let from_slice: Vec<_> =
                all(&mut SliceLines::new(text)).into_iter().filter(|l| !l.1.is_empty()).collect();
            // A reader whose buffer holds 2 bytes: lines cross many fills.
            let mut r = ReadLines::new(std::io::BufReader::with_capacity(2, text));
            let from_reader: Vec<_> = all(&mut r).into_iter().filter(|l| !l.1.is_empty()).collect();
            assert_eq!(from_slice, from_reader, "{:?}", String::from_utf8_lossy(text));
            assert!(r.error.is_none());
        }
    }

    #[test]
    fn a_line_past_the_cap_is_cut_and_the_next_is_whole() {
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\nnext\n");
        let got = all(&mut ReadLines::new(std::io::BufReader::new(&text[..])));
        assert_eq!(got.len(), 2);
        assert!(got[0].2 && got[0].1.len() == MAX_LINE && got[0].0 == 1);
        assert_eq!(got[1], (2, b"next".to_vec(), false));
    }

    #[test]
    fn a_read_error_ends_the_lines_and_is_kept() {
        struct Failing(bool);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(std::io::Error::other("disk gone"));
                }
                buf[..6].copy_from_slice(b"one\ntw");
                Ok(6)
            }
        }
        let mut r = ReadLines::new(std::io::BufReader::new(Failing(false)));
        let got = all(&mut r);
        // `tw` was cut short by the failure: not handed on.
        assert_eq!(got, [(1, b"one".to_vec(), false)]);
        assert_eq!(r.error.unwrap().to_string(), "disk gone");
    }
}

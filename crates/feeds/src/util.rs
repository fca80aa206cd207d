//! Helpers shared by the line- and CSV-oriented parsers.

use botwatch_model::{ClassificationType, Event, Reject, Sink, Slot};
use bytes::Bytes;

use crate::ParseContext;

/// One line of a report: 1-based number and the bytes without the line terminator.
pub struct Line {
    pub number: u64,
    pub raw: Bytes,
}

impl Line {
    /// The line as text; invalid UTF-8 is replaced rather than failing the line, since
    /// the raw bytes are kept anyway.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

/// Splits on `\n`, strips a trailing `\r`. Slices share the input buffer (no copies).
pub fn lines(input: &Bytes) -> impl Iterator<Item = Line> + '_ {
    let mut pos = 0usize;
    let mut number = 0u64;
    std::iter::from_fn(move || {
        if pos >= input.len() {
            return None;
        }
        let rest = &input[pos..];
        let len = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        let mut end = pos + len;
        let next = end + 1;
        if end > pos && input[end - 1] == b'\r' {
            end -= 1;
        }
        number += 1;
        let line = Line { number, raw: input.slice(pos..end) };
        pos = next;
        Some(line)
    })
}

/// True for blank lines and lines starting with one of `markers` after leading white space.
pub fn is_comment(text: &str, markers: &[&str]) -> bool {
    let t = text.trim_start();
    t.is_empty() || markers.iter().any(|m| t.starts_with(m))
}

/// Records a rejected line.
pub fn reject(sink: &mut dyn Sink, number: u64, raw: Bytes, reason: impl Into<String>) {
    sink.reject(Reject { line: number, raw, reason: reason.into() });
}

/// A report that is not the expected format at all: one reject holding (at most 64 KiB of)
/// the input, so the user sees what arrived.
pub fn reject_whole(sink: &mut dyn Sink, input: &Bytes, reason: impl Into<String>) {
    let end = input.len().min(64 * 1024);
    sink.reject(Reject { line: 1, raw: input.slice(..end), reason: reason.into() });
}

/// A fresh event for this report, with raw line and number set.
pub fn event(ctx: &ParseContext<'_>, ty: ClassificationType, line: &Line) -> Event {
    let mut e = Event::new(ctx.feed.clone(), ty, ctx.observed);
    e.raw = line.raw.clone();
    e.line = line.number;
    e
}

/// Sets a field from text, canonicalising `malware.name`; errors name the key.
pub fn set(e: &mut Event, ctx: &ParseContext<'_>, key: &str, v: &str) -> Result<(), String> {
    let slot = Slot::for_key(key);
    if slot == Slot::MalwareName {
        e.malware_name = ctx.families.canonical(v);
        return Ok(());
    }
    e.set_str(slot, v).map_err(|err| format!("{key}: {err}"))
}

/// Sets an optional field: empty or placeholder values are skipped, invalid ones are kept
/// under `extra.invalid.<key>` instead of failing the line.
pub fn set_opt(e: &mut Event, ctx: &ParseContext<'_>, key: &str, v: &str) {
    let v = v.trim();
    if v.is_empty() || v == "-" || v == "?" {
        return;
    }
    if set(e, ctx, key, v).is_err() {
        e.set_attr(&format!("extra.invalid.{key}"), botwatch_model::Value::Str(v.into()));
    }
}

/// Parses a JSON document, or rejects the whole report with the parser's message.
pub fn json_document(input: &Bytes, sink: &mut dyn Sink, what: &str) -> Option<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(input) {
        Ok(v) => Some(v),
        Err(e) => {
            reject_whole(sink, input, format!("not a valid {what} JSON document: {e}"));
            None
        }
    }
}

/// The raw bytes of one JSON element, re-serialised (the input's formatting is not kept,
/// its content is).
pub fn json_raw(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Parses `data` with the provider's feed `id`: the parsers' unit tests.
#[cfg(test)]
pub(crate) fn parse_feed(
    provider: &crate::registry::Provider,
    id: &str,
    data: &'static [u8],
) -> botwatch_model::Collected {
    let spec = (provider.feeds)().into_iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no feed {id}"));
    parse_with(&spec, data)
}

/// Parses `data` with `spec` in a fixed context: the parsers' unit tests.
#[cfg(test)]
pub(crate) fn parse_with(spec: &crate::FeedSpec, data: &'static [u8]) -> botwatch_model::Collected {
    let families = botwatch_model::FamilyTable::default();
    let ctx = ParseContext::new(spec, None, botwatch_model::Timestamp(0), &families);
    let mut out = botwatch_model::Collected::default();
    spec.parser.parse(&Bytes::from_static(data), &ctx, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_number_and_strip() {
        let b = Bytes::from_static(b"a\r\nb\n\nc");
        let v: Vec<_> = lines(&b).map(|l| (l.number, l.raw)).collect();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].1, Bytes::from_static(b"a"));
        assert_eq!(v[2].1, Bytes::new());
        assert_eq!(v[3], (4, Bytes::from_static(b"c")));
    }
}

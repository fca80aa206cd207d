//! Pure parsers for security feeds.
//!
//! A parser turns the bytes of one report into [`Event`]s, [`Reject`]s and [`Warning`]s
//! pushed into a [`Sink`]. Parsers do no I/O, read no clock and keep no state between
//! reports, so they are fuzzable, benchmarkable and safe to run in parallel. A line that
//! cannot be parsed is never dropped: it becomes a reject with its line number, raw bytes
//! and reason, and the parser goes on.
//!
//! [`registry`] lists every supported feed; [`registry::detect`] picks one from a file name
//! and the first bytes when the user names none; [`input::decode`] unwraps gzip and zip.
//!
//! ```
//! use botwatch_feeds::{registry, ParseContext};
//! use botwatch_model::{Collected, FamilyTable, Timestamp};
//! let data = bytes::Bytes::from_static(b"; Spamhaus DROP List\n192.0.2.0/24 ; SBL1\n");
//! let spec = registry::get("spamhaus_drop").unwrap();
//! let families = FamilyTable::default();
//! let ctx = ParseContext::new(&spec, None, Timestamp::from_secs(0), &families);
//! let mut out = Collected::default();
//! spec.parser.parse(&data, &ctx, &mut out);
//! assert_eq!(out.events.len(), 1);
//! ```

pub mod abusech;
pub mod bambenek;
pub mod blocklistde;
pub mod cymru;
pub mod dataplane;
pub mod dshield;
#[doc(hidden)]
pub mod fuzzing;
pub mod generic;
pub mod input;
pub mod microsoft;
pub mod misp;
pub mod registry;
pub mod shadowserver;
pub mod spamhaus;
pub mod stix;
pub mod util;
pub mod xarf;

use botwatch_model::{FamilyTable, FeedInfo, Sink, Timestamp};
use bytes::Bytes;
use std::sync::Arc;

pub use botwatch_model::{Collected, Event, Reject, Warning, WarningKind};

/// What a parser may know about the report besides its bytes.
pub struct ParseContext<'a> {
    /// Copied into every event (`feed.*`).
    pub feed: Arc<FeedInfo>,
    /// The report's file name, when it came from a file or URL: Shadowserver encodes the
    /// report type and date in it.
    pub file_name: Option<&'a str>,
    /// `time.observation` for every event: when the report was fetched or read.
    pub observed: Timestamp,
    pub families: &'a FamilyTable,
}

impl<'a> ParseContext<'a> {
    pub fn new(
        spec: &FeedSpec,
        file_name: Option<&'a str>,
        observed: Timestamp,
        families: &'a FamilyTable,
    ) -> Self {
        ParseContext { feed: Arc::new(spec.info()), file_name, observed, families }
    }
}

/// How a report of a format can be cut into pieces that parse in turn (see
/// [`Parser::parse_chunks`]), so that a report of any size is read in bounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// RFC 4180 CSV: pieces end at a line end outside double quotes.
    Csv,
    /// One record per line: pieces end at a line end.
    Lines,
}

/// A feed format: bytes in, events and rejects out.
pub trait Parser: Send + Sync {
    /// Parses one whole report. Never panics and never fails as a whole: what cannot be
    /// read becomes rejects (a report that is not the expected format at all becomes one
    /// reject holding its first bytes and the reason).
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink);

    /// Whether the format reads in pieces, and where pieces may end. `None` (the default):
    /// whole documents only (JSON bundles, MISP events), which callers cap in size.
    fn chunking(&self) -> Option<Chunking> {
        None
    }

    /// Parses one report given as consecutive pieces cut as [`Parser::chunking`] says: the
    /// same events, rejects (with the same line numbers) and warnings as [`Parser::parse`]
    /// over their concatenation. The default concatenates, for formats that cannot do better.
    fn parse_chunks(
        &self,
        chunks: &mut dyn Iterator<Item = Bytes>,
        ctx: &ParseContext<'_>,
        sink: &mut dyn Sink,
    ) {
        let mut all = bytes::BytesMut::new();
        for c in chunks {
            all.extend_from_slice(&c);
        }
        self.parse(&all.freeze(), ctx, sink);
    }
}

/// One supported feed.
#[derive(Clone)]
pub struct FeedSpec {
    /// `<provider>_<feed>`, lowercase snake_case.
    pub id: String,
    pub name: String,
    pub provider: String,
    /// 0–100: how far one sighting in this feed is trusted (IntelMQ's `feed.accuracy`).
    pub accuracy: f32,
    /// The publisher's documentation of the format.
    pub documentation: String,
    /// One line: what the feed is and its format.
    pub description: String,
    pub parser: Arc<dyn Parser>,
}

impl FeedSpec {
    pub fn info(&self) -> FeedInfo {
        FeedInfo {
            id: self.id.as_str().into(),
            name: self.name.as_str().into(),
            provider: self.provider.as_str().into(),
            accuracy: self.accuracy,
            url: None,
            documentation: Some(self.documentation.as_str().into()),
        }
    }
}

impl std::fmt::Debug for FeedSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSpec").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Report-level failures outside parsing proper (reading compressed input, unknown feeds).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("unknown feed id {0:?}; `botwatch feeds` lists the supported ones")]
    UnknownFeed(String),
    #[error("could not recognise the format of {0}; name the feed with --feed")]
    Undetected(String),
    #[error("could not decompress {what}: {source}")]
    Decompress {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "decompressed size of {what} exceeds the limit of {limit} bytes ([ingest] max_gib / max_document_mib)"
    )]
    TooLarge { what: String, limit: u64 },
    #[error(
        "{what} expands more than {limit} times its compressed size ({ratio}×, a compression bomb?); refused ([ingest] max_ratio)"
    )]
    Ratio { what: String, ratio: u64, limit: u64 },
}

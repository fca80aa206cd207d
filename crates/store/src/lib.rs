//! botwatch's storage.
//!
//! One batch-oriented [`Store`] trait; [`sqlite::SqliteStore`] is the embedded default (one
//! file, WAL, versioned migrations). A PostgreSQL backend implements the same trait, so
//! callers never see SQL: nothing outside this crate writes any.
//!
//! Ingesting a report is one transaction: [`Store::begin_report`] returns a
//! [`ReportWriter`]; batches go in with [`ReportWriter::write_batch`]; nothing is visible
//! (and a crash leaves nothing behind) until [`ReportWriter::commit`]. A report whose content
//! hash is already stored is skipped: re-ingesting is a no-op.
//!
//! ```
//! use botwatch_store::{Store, sqlite::SqliteStore, ReportMeta, StoreConfig};
//! let mut store = SqliteStore::open_in_memory(StoreConfig::default()).unwrap();
//! let meta = ReportMeta::new("abc123", "spamhaus_drop", 10, botwatch_model::Timestamp::from_secs(0));
//! let w = store.begin_report(&meta).unwrap().expect("new report");
//! let id = w.commit(&Default::default()).unwrap();
//! assert!(store.begin_report(&meta).unwrap().is_none(), "same hash: no-op");
//! # let _ = id;
//! ```

pub mod any;
/// Only the fuzz entry point and its seed are public.
pub mod blocks;
pub mod cases;
pub mod encode;
mod eventlog;
mod filter;
pub mod jobs;
pub mod leases;
pub mod outbox;
pub mod postgres;
mod resolve;
pub mod retention;
mod rollup;
pub mod secrets;
pub mod share;
pub mod sketch;
pub mod sqlite;
pub mod tokens;

pub use encode::{DocKeys, EncodedEvent, encode, encode_with};

use botwatch_model::{Event, Reject, Timestamp, Warning};
use ipnet::IpNet;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("stored document is corrupt: {0}")]
    Corrupt(String),
    #[error("database schema version {found} is newer than this botwatch knows ({known}); upgrade botwatch")]
    TooNew { found: i64, known: i64 },
    #[error(
        "database schema version {found} is older than this botwatch's ({known}) and a read-only open cannot migrate it; run any write command (e.g. `botwatch cases update`) once as a user who can write the store"
    )]
    TooOld { found: i64, known: i64 },
    /// The store (or its directory, where SQLite keeps the write-ahead log) is not writable
    /// by this user: only read-only commands can use it.
    #[error(
        "cannot write the store {path}: {why}; run as a user who can write it and its directory (queries, exports and `serve` open it read-only)"
    )]
    NotWritable { path: String, why: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tuning that callers set from config.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Sightings of the same (subject, type, family) closer than this merge into one
    /// observation.
    pub dedup_window_secs: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { dedup_window_secs: 24 * 3600 }
    }
}

/// What is known about a report before parsing it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMeta {
    pub sha256: String,
    pub feed: String,
    pub name: Option<String>,
    /// Where it came from: a path or URL.
    pub source: Option<String>,
    pub size: u64,
    pub observed_at: Timestamp,
    /// Where the raw bytes were archived.
    pub archive: Option<String>,
    /// `feed.*` of every event of the report, stored once.
    pub feed_info: Option<botwatch_model::FeedInfo>,
}

impl ReportMeta {
    pub fn new(sha256: &str, feed: &str, size: u64, observed_at: Timestamp) -> Self {
        ReportMeta {
            sha256: sha256.into(),
            feed: feed.into(),
            name: None,
            source: None,
            size,
            observed_at,
            archive: None,
            feed_info: None,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// New events stored.
    pub inserted: u64,
    /// Events already stored (same feed, line and time): skipped.
    pub duplicates: u64,
    /// Stored events that joined an existing observation.
    pub merged: u64,
    /// New observations opened.
    pub new_observations: u64,
    pub rejects: u64,
}

impl std::ops::AddAssign for BatchOutcome {
    fn add_assign(&mut self, o: Self) {
        self.inserted += o.inserted;
        self.duplicates += o.duplicates;
        self.merged += o.merged;
        self.new_observations += o.new_observations;
        self.rejects += o.rejects;
    }
}

/// Totals recorded with the report when it commits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportTotals {
    pub outcome: BatchOutcome,
    pub warnings: Vec<Warning>,
    /// The report's document key dictionary when events were encoded with
    /// [`encode_with`].
    pub doc_keys: Vec<String>,
}

/// Writes one report's batches inside one transaction. Dropping it without `commit` rolls
/// everything back.
pub trait ReportWriter {
    /// Events are encoded with [`encode`] beforehand, on the producer's thread.
    fn write_batch(&mut self, events: &[EncodedEvent], rejects: &[Reject]) -> Result<BatchOutcome>;
    fn commit(self: Box<Self>, totals: &ReportTotals) -> Result<i64>;

    /// Moves observation resolution (dedup) to the producer's thread, where it overlaps
    /// with the writer instead of adding to it. `None`: this writer resolves by itself.
    /// When `Some`, every batch must pass through [`ObservationResolver::resolve`] before
    /// [`ReportWriter::write_batch`], and what [`ObservationResolver::finish`] returns must
    /// reach [`ReportWriter::observations`] before `commit`.
    fn resolver(&mut self) -> Result<Option<Box<dyn ObservationResolver>>> {
        Ok(None)
    }

    /// Takes the resolver's observations for the commit; returns (merged, new
    /// observations) with the events the writer found to be duplicates taken out again.
    fn observations(&mut self, resolved: Vec<ObservationRow>) -> Result<(u64, u64)> {
        let _ = resolved;
        Ok((0, 0))
    }
}

/// Assigns events to observations, on the producer's thread (see [`ReportWriter::resolver`]).
pub trait ObservationResolver: Send {
    /// Sets [`EncodedEvent::observation`] for every event with a subject, in order.
    fn resolve(&mut self, events: &mut [EncodedEvent]) -> Result<()>;
    /// The observations this report touched, ready to write.
    fn finish(self: Box<Self>) -> Vec<ObservationRow>;
}

/// An observation as the resolver leaves it: final values plus what this report added.
#[derive(Debug, Clone)]
pub struct ObservationRow {
    pub id: i64,
    pub subject: String,
    pub ty: &'static str,
    pub family: String,
    pub ip: Option<[u8; 16]>,
    pub asn: Option<u32>,
    pub cc: Option<String>,
    pub first: i64,
    pub last: i64,
    pub count: i64,
    /// Feed id → accuracy.
    pub sources: Vec<(String, f64)>,
    /// Strictest TLP rank (0 CLEAR … 4 RED) among its events; `None`: none was marked.
    pub tlp: Option<u8>,
    /// Events of this report counted in `count`.
    pub added: i64,
    /// Stored before this report.
    pub existing: bool,
}

impl ObservationRow {
    /// Opened by this report and kept: it holds at least one of the report's stored events.
    /// (One that only duplicates opened refers to nothing and is not written.)
    pub fn opened(&self) -> bool {
        !self.existing && self.added > 0
    }
}

/// Filters shared by event and observation queries. `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub ip: Option<IpAddr>,
    pub cidr: Option<IpNet>,
    pub asn: Option<u32>,
    pub cc: Option<String>,
    pub family: Option<String>,
    pub feed: Option<String>,
    pub classification_type: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Cursor: only rows with id greater than this.
    pub after_id: Option<i64>,
    pub limit: Option<u64>,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub report_id: i64,
    pub observation_id: Option<i64>,
    pub event: Event,
}

/// One observation as an indicator source (see [`Store::for_each_indicator`]).
#[derive(Debug, Clone, Copy)]
pub struct IndicatorRow<'a> {
    pub id: i64,
    pub subject: &'a str,
    pub classification_type: &'a str,
    pub family: &'a str,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The stored `{"feed": accuracy, …}` object, unparsed.
    pub sources_json: &'a str,
}

/// A deduplicated observation.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub id: i64,
    pub subject: String,
    #[serde(rename = "classification.type")]
    pub classification_type: String,
    #[serde(rename = "malware.name")]
    pub family: String,
    pub asn: Option<u32>,
    pub cc: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// Feed id → that feed's accuracy (0–100).
    pub sources: serde_json::Map<String, serde_json::Value>,
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredReject {
    pub id: i64,
    pub report_id: i64,
    pub feed: String,
    pub line: u64,
    pub reason: String,
    #[serde(serialize_with = "lossy")]
    pub raw: Vec<u8>,
}

fn lossy<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredReport {
    pub id: i64,
    pub sha256: String,
    pub feed: String,
    pub name: Option<String>,
    pub source: Option<String>,
    pub size: u64,
    pub observed_at: Timestamp,
    pub ingested_at: Timestamp,
    pub events: u64,
    pub duplicates: u64,
    pub merged: u64,
    pub rejects: u64,
    pub warnings: serde_json::Value,
    pub archive: Option<String>,
}

/// Dimensions `stats` can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Family,
    Asn,
    Country,
    Day,
    Feed,
    Type,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatRow {
    pub key: String,
    pub events: u64,
    /// Distinct subjects (infected addresses, C2 hosts, …).
    pub subjects: u64,
    /// `subjects` is an estimate (about 1.6 % standard error): too many to count exactly
    /// from the per-day rollup.
    pub approximate: bool,
}

/// Conditional-GET state of a fetched URL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchState {
    pub url: String,
    pub feed: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_fetch: Option<Timestamp>,
    pub last_status: Option<String>,
    pub last_sha256: Option<String>,
}

/// The storage operations botwatch needs. Implementations: SQLite (embedded), PostgreSQL.
pub trait Store: Send {
    /// Starts a report; `None` when a report with the same content hash is already stored.
    fn begin_report<'s>(&'s mut self, meta: &ReportMeta) -> Result<Option<Box<dyn ReportWriter + 's>>>;
    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>>;
    fn observations(&self, q: &EventQuery) -> Result<Vec<Observation>>;
    fn rejects(&self, report_id: Option<i64>, feed: Option<&str>, limit: u64) -> Result<Vec<StoredReject>>;
    fn reports(&self, limit: u64) -> Result<Vec<StoredReport>>;
    fn stats(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>>;
    fn fetch_state(&self, url: &str) -> Result<Option<FetchState>>;
    fn save_fetch_state(&mut self, s: &FetchState) -> Result<()>;
    /// Totals: events, observations, rejects, reports.
    fn counts(&self) -> Result<Counts>;
    /// What arrived per feed, ever, by feed id.
    fn feed_totals(&self) -> Result<Vec<FeedTotals>>;
    /// Streams the observations of these classification types, lean, for compiling
    /// indicator matchers over millions of them without materialising each one.
    fn for_each_indicator(&self, types: &[String], f: &mut dyn FnMut(IndicatorRow<'_>)) -> Result<()>;
    /// Changes whenever a report of a feed other than `ignore_feeds` is stored, so whenever
    /// the observations those feeds contribute may have changed: what is compiled from them
    /// (an indicator matcher) can be cached under it. A sensor ignores its own sightings'
    /// feeds, which never yield indicators, so storing them does not force a recompile.
    fn generation(&self, ignore_feeds: &[&str]) -> Result<String>;
    /// The id of the newest stored event (0 when none); ids only grow.
    fn newest_event_id(&self) -> Result<i64>;
    /// The addresses (16-byte keys) of the events with ids in `after_id + 1 ..= upto_id`:
    /// what a cache of flagged addresses adds between full rebuilds.
    fn addresses_between(&self, after_id: i64, upto_id: i64) -> Result<Vec<[u8; 16]>>;
    /// Lets the backend tidy up between batches of a long run (SQLite: copy the
    /// write-ahead log into the main file, so it does not grow over the whole run).
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
}

/// One feed's reports, and the events stored, lines rejected and duplicates dropped from
/// them, since the store began (retention does not lower these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedTotals {
    pub feed: String,
    pub reports: u64,
    pub events: u64,
    pub rejects: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub reports: u64,
    pub events: u64,
    pub observations: u64,
    pub rejects: u64,
}

/// How much independent sources raise confidence: each source of accuracy `a` (0–100)
/// removes a share `0.6·a/100` of the remaining doubt, so one perfect source gives 0.6,
/// two give 0.84, three 0.94; repeated sightings from one source add nothing.
pub fn confidence<'a>(accuracies: impl IntoIterator<Item = &'a f64>) -> f64 {
    1.0 - accuracies.into_iter().map(|a| 1.0 - 0.6 * (a / 100.0).clamp(0.0, 1.0)).product::<f64>()
}

/// Addresses as 16 bytes (IPv4 mapped into IPv6) so one BLOB column sorts and range-scans
/// both families.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a key written by [`ip_key`].
pub fn key_ip(b: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// First and last key of a network.
pub fn net_keys(n: IpNet) -> ([u8; 16], [u8; 16]) {
    (ip_key(n.network()), ip_key(n.broadcast()))
}

/// The module tests' stores: each test runs on every backend. PostgreSQL joins when
/// `BOTWATCH_PG_URL` is set (a schema of its own per test), and is required under
/// `BOTWATCH_REQUIRE_PEERS=1`.
#[cfg(test)]
pub(crate) mod testing {
    use crate::StoreConfig;
    use crate::any::AnyStore;
    use crate::postgres::TestSchema;

    /// (store, its schema): the schema is dropped after the store.
    pub(crate) fn backends(test: &str) -> Vec<(AnyStore, Option<TestSchema>)> {
        let mut v = vec![(
            AnyStore::Sqlite(crate::sqlite::SqliteStore::open_in_memory(StoreConfig::default()).unwrap()),
            None,
        )];
        if let Some(schema) = TestSchema::new(test) {
            v.push((AnyStore::Postgres(Box::new(schema.store(StoreConfig::default()))), Some(schema)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_rises_with_independent_sources() {
        let one = confidence(&[100.0]);
        let two = confidence(&[100.0, 100.0]);
        let three = confidence(&[100.0, 100.0, 50.0]);
        assert!((one - 0.6).abs() < 1e-9);
        assert!(two > one && three > two && three < 1.0);
        assert_eq!(confidence(&[]), 0.0);
    }
}

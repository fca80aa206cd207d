//! One store whichever backend the config chose: the embedded SQLite file, or PostgreSQL
//! (`[store] url`). Callers that need only [`Store`] take an [`AnyStore`] and never ask
//! which it is.

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::*;

pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

/// Calls the same method on whichever backend this is.
macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl AnyStore {
    /// "sqlite" or "postgresql", for messages and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgresql",
        }
    }

    pub fn stats_scan(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        both!(self, s => s.stats_scan(by, q))
    }

    pub fn rebuild_rollup(&mut self) -> Result<()> {
        both!(self, s => s.rebuild_rollup())
    }

    pub fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        both!(self, s => s.secret(name))
    }

    pub fn secret_or_init(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
        now_micros: i64,
    ) -> Result<Vec<u8>> {
        both!(self, s => s.secret_or_init(name, make, now_micros))
    }

    /// The SQLite store, for what only it does so far.
    pub fn sqlite(&mut self) -> Option<&mut SqliteStore> {
        match self {
            AnyStore::Sqlite(s) => Some(s),
            AnyStore::Postgres(_) => None,
        }
    }
}

impl Store for AnyStore {
    fn begin_report<'s>(&'s mut self, meta: &ReportMeta) -> Result<Option<Box<dyn ReportWriter + 's>>> {
        both!(self, s => s.begin_report(meta))
    }
    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        both!(self, s => s.events(q))
    }
    fn observations(&self, q: &EventQuery) -> Result<Vec<Observation>> {
        match self {
            AnyStore::Sqlite(s) => Store::observations(s, q),
            AnyStore::Postgres(s) => Store::observations(&**s, q),
        }
    }
    fn rejects(&self, report_id: Option<i64>, feed: Option<&str>, limit: u64) -> Result<Vec<StoredReject>> {
        both!(self, s => s.rejects(report_id, feed, limit))
    }
    fn reports(&self, limit: u64) -> Result<Vec<StoredReport>> {
        both!(self, s => s.reports(limit))
    }
    fn stats(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        both!(self, s => s.stats(by, q))
    }
    fn fetch_state(&self, url: &str) -> Result<Option<FetchState>> {
        both!(self, s => s.fetch_state(url))
    }
    fn save_fetch_state(&mut self, st: &FetchState) -> Result<()> {
        both!(self, s => s.save_fetch_state(st))
    }
    fn counts(&self) -> Result<Counts> {
        both!(self, s => s.counts())
    }
    fn for_each_indicator(&self, types: &[String], f: &mut dyn FnMut(IndicatorRow<'_>)) -> Result<()> {
        both!(self, s => s.for_each_indicator(types, f))
    }
    fn generation(&self, ignore_feeds: &[&str]) -> Result<String> {
        both!(self, s => s.generation(ignore_feeds))
    }
    fn newest_event_id(&self) -> Result<i64> {
        both!(self, s => s.newest_event_id())
    }
    fn addresses_between(&self, after_id: i64, upto_id: i64) -> Result<Vec<[u8; 16]>> {
        both!(self, s => s.addresses_between(after_id, upto_id))
    }
    fn checkpoint(&self) -> Result<()> {
        match self {
            AnyStore::Sqlite(s) => Store::checkpoint(s),
            AnyStore::Postgres(s) => Store::checkpoint(&**s),
        }
    }
}

//! One store whichever backend the config chose: the embedded SQLite file, or PostgreSQL
//! (`[store] url`). Callers that need only [`Store`] take an [`AnyStore`] and never ask
//! which it is.

use crate::postgres::PgStore;
use crate::share::*;
use crate::sqlite::SqliteStore;
use crate::*;
use botwatch_model::Timestamp;
use std::net::IpAddr;

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

    /// See `SqliteStore::wait_for_writers` (PostgreSQL writers wait for locks anyway).
    pub fn wait_for_writers(&mut self) -> Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.wait_for_writers(),
            AnyStore::Postgres(_) => Ok(()),
        }
    }

    /// The connection is gone (a PostgreSQL server closed it); SQLite's never is.
    pub fn is_closed(&self) -> bool {
        match self {
            AnyStore::Sqlite(_) => false,
            AnyStore::Postgres(s) => s.is_closed(),
        }
    }

    /// See `SqliteStore::tune_for_reads` (nothing to tune on a server).
    pub fn tune_for_reads(&self) -> Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.tune_for_reads(),
            AnyStore::Postgres(_) => Ok(()),
        }
    }

    pub fn schema_version(&mut self) -> Result<i64> {
        match self {
            AnyStore::Sqlite(s) => s.schema_version(),
            AnyStore::Postgres(s) => s.schema_version(),
        }
    }

    pub fn prune(&mut self, before: Timestamp) -> Result<crate::retention::PruneSummary> {
        both!(self, s => s.prune(before))
    }

    pub fn for_each_share_row(
        &self,
        types: &[String],
        by_group: Option<u8>,
        f: &mut dyn FnMut(&ShareRow) -> Result<()>,
    ) -> Result<()> {
        both!(self, s => s.for_each_share_row(types, by_group, f))
    }

    pub fn share_put<'a>(
        &mut self,
        collection: &str,
        partner: Option<&str>,
        objects: impl IntoIterator<Item = NewShareObject<'a>>,
        now: Timestamp,
    ) -> Result<(u64, u64)> {
        both!(self, s => s.share_put(collection, partner, objects, now))
    }

    pub fn share_page(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool)> {
        both!(self, s => s.share_page(q))
    }

    pub fn share_page_counted(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool, u64)> {
        both!(self, s => s.share_page_counted(q))
    }

    pub fn share_counts(&self) -> Result<Vec<(String, u64)>> {
        both!(self, s => s.share_counts())
    }

    pub fn share_status_put(
        &mut self,
        id: &str,
        collection: &str,
        partner: Option<&str>,
        now: Timestamp,
        body: &str,
    ) -> Result<()> {
        both!(self, s => s.share_status_put(id, collection, partner, now, body))
    }

    pub fn share_status(&self, id: &str) -> Result<Option<(Option<String>, String)>> {
        both!(self, s => s.share_status(id))
    }

    pub fn share_audit(&self, a: &AuditEntry) -> Result<()> {
        both!(self, s => s.share_audit(a))
    }

    pub fn share_audit_list(&self, partner: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>> {
        both!(self, s => s.share_audit_list(partner, limit))
    }

    pub fn share_exchanges(&self) -> Result<Vec<PartnerExchange>> {
        both!(self, s => s.share_exchanges())
    }

    pub fn pull_state(&self, partner: &str, url: &str) -> Result<Option<PullState>> {
        both!(self, s => s.pull_state(partner, url))
    }

    pub fn save_pull_state(&self, st: &PullState) -> Result<()> {
        both!(self, s => s.save_pull_state(st))
    }

    pub fn federation_put(&mut self, node: &str, cells: &[FederationCell], now: Timestamp) -> Result<()> {
        both!(self, s => s.federation_put(node, cells, now))
    }

    pub fn federation_forget(&mut self, node: &str) -> Result<u64> {
        both!(self, s => s.federation_forget(node))
    }

    pub fn federation_cells(&self, node: Option<&str>) -> Result<Vec<FederationCell>> {
        both!(self, s => s.federation_cells(node))
    }

    pub fn federation_release(
        &self,
        now: Timestamp,
        epsilon: Option<f64>,
        cells: u64,
        suppressed: u64,
    ) -> Result<()> {
        both!(self, s => s.federation_release(now, epsilon, cells, suppressed))
    }

    pub fn federation_budget(&self) -> Result<(u64, f64)> {
        both!(self, s => s.federation_budget())
    }

    pub fn infected_cells(&self, from: i64, until: i64) -> Result<Vec<InfectedCell>> {
        both!(self, s => s.infected_cells(from, until))
    }

    pub fn release_cases(&self, from: i64, until: i64) -> Result<Vec<ReleaseCase>> {
        both!(self, s => s.release_cases(from, until))
    }

    pub fn released_days(&self, node: &str) -> Result<Vec<String>> {
        both!(self, s => s.released_days(node))
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
    fn feed_totals(&self) -> Result<Vec<FeedTotals>> {
        both!(self, s => s.feed_totals())
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

impl crate::leases::LeaseStore for AnyStore {
    fn import_leases(
        &mut self,
        import: &crate::leases::LeaseImport,
        records: &[botwatch_model::LeaseRecord],
    ) -> Result<Option<i64>> {
        both!(self, s => s.import_leases(import, records))
    }
    fn load_leases(&self) -> Result<Vec<botwatch_model::LeaseRecord>> {
        both!(self, s => s.load_leases())
    }
    fn lease_imports(&self) -> Result<Vec<crate::leases::StoredLeaseImport>> {
        both!(self, s => s.lease_imports())
    }
}

impl crate::tokens::TokenStore for AnyStore {
    fn create_token(
        &mut self,
        name: &str,
        role: &str,
        org: Option<&str>,
        hash: &str,
        at: Timestamp,
    ) -> Result<i64> {
        both!(self, s => s.create_token(name, role, org, hash, at))
    }
    fn token_by_hash(&self, hash: &str) -> Result<Option<crate::tokens::TokenRow>> {
        both!(self, s => s.token_by_hash(hash))
    }
    fn touch_token(&mut self, id: i64, at: Timestamp) -> Result<()> {
        both!(self, s => s.touch_token(id, at))
    }
    fn touch_token_nowait(&mut self, id: i64, at: Timestamp) -> Result<()> {
        both!(self, s => s.touch_token_nowait(id, at))
    }
    fn tokens(&self) -> Result<Vec<crate::tokens::TokenRow>> {
        both!(self, s => s.tokens())
    }
    fn revoke_token(&mut self, id: i64, at: Timestamp) -> Result<bool> {
        both!(self, s => s.revoke_token(id, at))
    }
    fn token_live(&self, id: i64) -> Result<bool> {
        both!(self, s => s.token_live(id))
    }
}

impl crate::jobs::JobStore for AnyStore {
    fn job_started(&mut self, name: &str, every_secs: i64, at: Timestamp) -> Result<()> {
        both!(self, s => s.job_started(name, every_secs, at))
    }
    fn job_finished(&mut self, name: &str, end: &crate::jobs::JobEnd) -> Result<()> {
        both!(self, s => s.job_finished(name, end))
    }
    fn jobs(&self) -> Result<Vec<crate::jobs::JobRow>> {
        both!(self, s => s.jobs())
    }
    fn source_configured(
        &mut self,
        name: &str,
        kind: &str,
        expected_secs: i64,
        stale_after_secs: Option<i64>,
        now: Timestamp,
    ) -> Result<()> {
        both!(self, s => s.source_configured(name, kind, expected_secs, stale_after_secs, now))
    }
    fn source_checked(
        &mut self,
        name: &str,
        at: Timestamp,
        new_reports: i64,
        events: i64,
        error: Option<&str>,
    ) -> Result<()> {
        both!(self, s => s.source_checked(name, at, new_reports, events, error))
    }
    fn sources(&self) -> Result<Vec<crate::jobs::SourceRow>> {
        both!(self, s => s.sources())
    }
    fn stream_lag_put(&mut self, lag: &crate::jobs::StreamLag) -> Result<()> {
        both!(self, s => s.stream_lag_put(lag))
    }
    fn stream_lags(&self) -> Result<Vec<crate::jobs::StreamLag>> {
        both!(self, s => s.stream_lags())
    }
}

impl crate::outbox::OutboxStore for AnyStore {
    fn enqueue(&mut self, n: &[crate::outbox::NewNotice]) -> Result<u64> {
        both!(self, s => s.enqueue(n))
    }
    fn due_notices(&self, now: Timestamp, limit: u64) -> Result<Vec<crate::outbox::Notice>> {
        both!(self, s => s.due_notices(now, limit))
    }
    fn claim_due(
        &mut self,
        now: Timestamp,
        limit: u64,
        runner: &str,
        lease_until: Timestamp,
    ) -> Result<Vec<crate::outbox::Notice>> {
        both!(self, s => s.claim_due(now, limit, runner, lease_until))
    }
    fn start_sending(
        &mut self,
        id: i64,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<crate::outbox::SendCheck> {
        both!(self, s => s.start_sending(id, runner, now, lease_until))
    }
    fn mark_sent(&mut self, id: i64, runner: &str, at: Timestamp) -> Result<bool> {
        both!(self, s => s.mark_sent(id, runner, at))
    }
    fn mark_failed(
        &mut self,
        id: i64,
        runner: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool> {
        both!(self, s => s.mark_failed(id, runner, error, retry_at))
    }
    fn defer(&mut self, id: i64, runner: &str, due_at: Timestamp) -> Result<bool> {
        both!(self, s => s.defer(id, runner, due_at))
    }
    fn release(&mut self, id: i64, runner: &str) -> Result<bool> {
        both!(self, s => s.release(id, runner))
    }
    fn sent_since(&self, recipient: &str, since: Timestamp) -> Result<u64> {
        both!(self, s => s.sent_since(recipient, since))
    }
    fn notices(
        &self,
        status: Option<crate::outbox::NoticeStatus>,
        limit: u64,
    ) -> Result<Vec<crate::outbox::Notice>> {
        both!(self, s => s.notices(status, limit))
    }
    fn notice(&self, id: i64) -> Result<Option<crate::outbox::Notice>> {
        both!(self, s => s.notice(id))
    }
    fn notice_by_message_id(&self, message_id: &str) -> Result<Option<crate::outbox::Notice>> {
        both!(self, s => s.notice_by_message_id(message_id))
    }
    fn notice_counts(&self) -> Result<Vec<(String, u64)>> {
        both!(self, s => s.notice_counts())
    }
}

impl crate::cases::CaseStore for AnyStore {
    fn case_tx(&mut self) -> Result<Box<dyn crate::cases::CaseTx + '_>> {
        both!(self, s => s.case_tx())
    }
    fn case_cursor(&self) -> Result<i64> {
        both!(self, s => s.case_cursor())
    }
    fn case(&self, id: i64) -> Result<Option<crate::cases::CaseRecord>> {
        both!(self, s => s.case(id))
    }
    fn cases(&self, q: &crate::cases::CaseQuery) -> Result<Vec<botwatch_model::Case>> {
        both!(self, s => s.cases(q))
    }
    fn case_history(&self, id: i64) -> Result<Vec<crate::cases::HistoryEntry>> {
        both!(self, s => s.case_history(id))
    }
    fn exposures(
        &self,
        subscriber: Option<&str>,
        ip: Option<IpAddr>,
        since: Timestamp,
    ) -> Result<Vec<crate::cases::Exposure>> {
        both!(self, s => s.exposures(subscriber, ip, since))
    }
    fn flagged_addresses(&self, since: Timestamp) -> Result<Vec<[u8; 16]>> {
        both!(self, s => s.flagged_addresses(since))
    }
    fn case_figures(&self) -> Result<Vec<crate::cases::CaseFigures>> {
        both!(self, s => s.case_figures())
    }
    fn open_case_count(&self) -> Result<u64> {
        both!(self, s => s.open_case_count())
    }
    fn cases_generation(&self) -> Result<String> {
        both!(self, s => s.cases_generation())
    }
}

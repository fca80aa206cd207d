//! Retention of personal data: what identifies a subscriber or an address is deleted once
//! older than the configured period (`[store] retain_days`), by `botwatch store prune` and
//! daily by `botwatch serve`. Aggregates stay (the per-day rollup, report totals, case rows
//! and their history, which compliance figures are computed from); the rows, raw lines and
//! evidence behind them go.

use crate::Result;
use crate::sqlite::SqliteStore;
use botwatch_model::Timestamp;
use rusqlite::params;
use serde::Serialize;

/// What one prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneSummary {
    /// Events (with their raw lines) whose sighting time is older.
    pub events: u64,
    /// Observations last seen before the cut-off.
    pub observations: u64,
    /// Rejected lines (raw bytes) of reports ingested before the cut-off.
    pub rejects: u64,
    /// Lease and accounting records that ended before the cut-off.
    pub lease_records: u64,
    /// Closed cases whose quoted evidence was cleared (the case row stays).
    pub closed_case_evidence: u64,
    /// Exposures (vulnerable services per subscriber) older than the cut-off.
    pub exposures: u64,
    /// Finished notices whose payload (evidence, subscriber) was cleared (status and times
    /// stay: compliance measures delivery with them).
    pub notice_payloads: u64,
    /// Shared and received STIX objects that name an address or a sighting of one
    /// (addresses, observed data, sightings) added before the cut-off. Indicators of
    /// infrastructure, families and federated aggregates stay.
    pub shared_objects: u64,
}

/// The first day whose events a prune at `before` keeps: events go by whole days (UTC), and
/// every day that began before `before` goes, so that nothing past the horizon survives.
pub(crate) fn cut_day(before: Timestamp) -> i64 {
    crate::rollup::day_of(before.micros().saturating_add(crate::rollup::DAY_US - 1))
}

impl SqliteStore {
    /// Deletes personal data older than `before`, in one transaction. Events go by whole
    /// days ([`cut_day`]): up to a day's events just inside the horizon go with them.
    pub fn prune(&mut self, before: Timestamp) -> Result<PruneSummary> {
        let t = before.micros();
        let cut_day = cut_day(before);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = |sql: &str| -> Result<u64> { Ok(tx.execute(sql, params![t])? as u64) };
        let s = PruneSummary {
            events: crate::eventlog::prune_days(&tx, cut_day)?,
            observations: n("DELETE FROM observations WHERE last_seen < ?1")?,
            rejects: n(
                "DELETE FROM rejects WHERE report_id IN (SELECT id FROM reports WHERE ingested_at < ?1)",
            )?,
            lease_records: n("DELETE FROM leases WHERE end_us IS NOT NULL AND end_us < ?1")?,
            closed_case_evidence: n(
                "UPDATE cases SET recent = '[]' WHERE state = 'closed' AND closed_at < ?1 AND recent != '[]'",
            )?,
            exposures: n("DELETE FROM case_exposures WHERE time < ?1")?,
            notice_payloads: n(
                "UPDATE outbox SET payload = '{}' WHERE status IN ('sent', 'failed', 'cancelled') AND created_at < ?1 AND payload != '{}'",
            )?,
            shared_objects: n(
                "DELETE FROM share_objects WHERE date_added < ?1 AND type IN ('ipv4-addr', 'ipv6-addr', 'observed-data', 'sighting')",
            )?,
        };
        crate::eventlog::bump(&tx, "observations", -(s.observations as i64))?;
        crate::eventlog::bump(&tx, "rejects", -(s.rejects as i64))?;
        tx.commit()?;
        Ok(s)
    }
}

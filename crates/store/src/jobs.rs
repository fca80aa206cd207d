//! `botwatch run`'s bookkeeping: each scheduled job's last run (success, failure, duration,
//! back-off) and each intake source's last report, from which its staleness follows. The
//! runner writes it; `serve`, `/metrics`, `/healthz` and the dashboard read it, in the same
//! process or another.

use crate::Result;
use crate::sqlite::SqliteStore;
use botwatch_model::Timestamp;
use rusqlite::params;
use serde::Serialize;

/// One job's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub name: String,
    pub every_secs: i64,
    pub runs: i64,
    pub failures: i64,
    /// Failures since the last success: the back-off grows with it.
    pub consecutive_failures: i64,
    /// Set while a run is in progress. A run the process did not live to finish stays set
    /// until the job's next start, which counts it as a failed run.
    pub running_since: Option<Timestamp>,
    pub last_start: Option<Timestamp>,
    pub last_end: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Timestamp>,
    pub last_duration_ms: Option<i64>,
    pub last_error: Option<String>,
    /// What the last run did, in a line (e.g. "2 reports, 1,204 events").
    pub last_detail: Option<String>,
    pub next_run: Option<Timestamp>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub at: Timestamp,
    pub duration_ms: i64,
    /// `Err(message)` for a failure.
    pub outcome: std::result::Result<String, String>,
    pub next_run: Timestamp,
}

/// One intake source (a feed URL, a mailbox, the spool, a Shadowserver API account).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    pub name: String,
    pub kind: String,
    /// How often it is checked.
    pub expected_secs: i64,
    /// Quiet for longer than this (no new report) is stale; `None`: never stale.
    pub stale_after_secs: Option<i64>,
    pub since: Timestamp,
    pub last_check: Option<Timestamp>,
    pub last_report: Option<Timestamp>,
    pub reports: i64,
    pub events: i64,
    pub last_error: Option<String>,
}

impl SourceRow {
    /// Seconds since its last new report (or since it was configured, before any).
    pub fn quiet_secs(&self, now: Timestamp) -> i64 {
        let from = self.last_report.unwrap_or(self.since);
        (now.micros() - from.micros()).max(0) / 1_000_000
    }

    pub fn stale(&self, now: Timestamp) -> bool {
        self.stale_after_secs.is_some_and(|a| self.quiet_secs(now) > a)
    }
}

/// A JetStream consumer's backlog as a worker last saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamLag {
    pub stream: String,
    pub consumer: String,
    /// Deliveries waiting for a worker.
    pub pending: i64,
    /// Delivered to a worker and not yet acknowledged (being stored).
    pub ack_pending: i64,
    pub at: Timestamp,
}

/// The error recorded for a run its process did not live to finish.
pub const ABANDONED: &str = "the run never finished: the process stopped during it";

/// Job and source persistence; the PostgreSQL backend implements the same.
pub trait JobStore {
    fn job_started(&mut self, name: &str, every_secs: i64, at: Timestamp) -> Result<()>;
    fn job_finished(&mut self, name: &str, end: &JobEnd) -> Result<()>;
    fn jobs(&self) -> Result<Vec<JobRow>>;
    /// Registers a configured source (or updates its schedule); its history is kept.
    fn source_configured(
        &mut self,
        name: &str,
        kind: &str,
        expected_secs: i64,
        stale_after_secs: Option<i64>,
        now: Timestamp,
    ) -> Result<()>;
    /// A check of the source: `new_reports` new ones (with `events` events), or an error.
    fn source_checked(
        &mut self,
        name: &str,
        at: Timestamp,
        new_reports: i64,
        events: i64,
        error: Option<&str>,
    ) -> Result<()>;
    fn sources(&self) -> Result<Vec<SourceRow>>;
    /// Records a consumer's backlog (replacing the last reading).
    fn stream_lag_put(&mut self, lag: &StreamLag) -> Result<()>;
    fn stream_lags(&self) -> Result<Vec<StreamLag>>;
}

impl JobStore for SqliteStore {
    fn job_started(&mut self, name: &str, every_secs: i64, at: Timestamp) -> Result<()> {
        // A run still marked as running never ended (the process was killed during it): it
        // is counted as the failed run it was, not left looking as if it still ran. (SET
        // reads the row as it was before the update.)
        self.conn.execute(
            "INSERT INTO jobs (name, every_secs, running_since, last_start) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO UPDATE SET every_secs = ?2,
                runs = runs + (running_since IS NOT NULL),
                failures = failures + (running_since IS NOT NULL),
                consecutive_failures = consecutive_failures + (running_since IS NOT NULL),
                last_failure = COALESCE(running_since, last_failure),
                last_error = CASE WHEN running_since IS NOT NULL THEN ?4 ELSE last_error END,
                running_since = ?3, last_start = ?3",
            params![name, every_secs, at.micros(), ABANDONED],
        )?;
        Ok(())
    }

    fn job_finished(&mut self, name: &str, end: &JobEnd) -> Result<()> {
        let (ok, detail, error) = match &end.outcome {
            Ok(d) => (true, Some(d.as_str()), None),
            Err(e) => (false, None, Some(e.as_str())),
        };
        self.conn.execute(
            "UPDATE jobs SET runs = runs + 1,
                failures = failures + ?2,
                consecutive_failures = CASE WHEN ?2 = 1 THEN consecutive_failures + 1 ELSE 0 END,
                running_since = NULL, last_end = ?3,
                last_success = CASE WHEN ?2 = 0 THEN ?3 ELSE last_success END,
                last_failure = CASE WHEN ?2 = 1 THEN ?3 ELSE last_failure END,
                last_duration_ms = ?4,
                last_error = CASE WHEN ?2 = 1 THEN ?5 ELSE last_error END,
                last_detail = COALESCE(?6, last_detail),
                next_run = ?7
             WHERE name = ?1",
            params![
                name,
                i64::from(!ok),
                end.at.micros(),
                end.duration_ms,
                error,
                detail,
                end.next_run.micros()
            ],
        )?;
        Ok(())
    }

    fn jobs(&self) -> Result<Vec<JobRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, every_secs, runs, failures, consecutive_failures, running_since, last_start,
                    last_end, last_success, last_failure, last_duration_ms, last_error, last_detail, next_run
             FROM jobs ORDER BY name",
        )?;
        let t = |v: Option<i64>| v.map(Timestamp);
        let rows = st.query_map([], |r| {
            Ok(JobRow {
                name: r.get(0)?,
                every_secs: r.get(1)?,
                runs: r.get(2)?,
                failures: r.get(3)?,
                consecutive_failures: r.get(4)?,
                running_since: t(r.get(5)?),
                last_start: t(r.get(6)?),
                last_end: t(r.get(7)?),
                last_success: t(r.get(8)?),
                last_failure: t(r.get(9)?),
                last_duration_ms: r.get(10)?,
                last_error: r.get(11)?,
                last_detail: r.get(12)?,
                next_run: t(r.get(13)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn source_configured(
        &mut self,
        name: &str,
        kind: &str,
        expected_secs: i64,
        stale_after_secs: Option<i64>,
        now: Timestamp,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO intake_sources (name, kind, expected_secs, stale_after_secs, since)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET kind = ?2, expected_secs = ?3, stale_after_secs = ?4",
            params![name, kind, expected_secs, stale_after_secs, now.micros()],
        )?;
        Ok(())
    }

    fn source_checked(
        &mut self,
        name: &str,
        at: Timestamp,
        new_reports: i64,
        events: i64,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE intake_sources SET last_check = ?2,
                last_report = CASE WHEN ?3 > 0 THEN ?2 ELSE last_report END,
                reports = reports + ?3, events = events + ?4, last_error = ?5
             WHERE name = ?1",
            params![name, at.micros(), new_reports, events, error],
        )?;
        Ok(())
    }

    fn sources(&self) -> Result<Vec<SourceRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, kind, expected_secs, stale_after_secs, since, last_check, last_report, reports,
                    events, last_error FROM intake_sources ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(SourceRow {
                name: r.get(0)?,
                kind: r.get(1)?,
                expected_secs: r.get(2)?,
                stale_after_secs: r.get(3)?,
                since: Timestamp(r.get(4)?),
                last_check: r.get::<_, Option<i64>>(5)?.map(Timestamp),
                last_report: r.get::<_, Option<i64>>(6)?.map(Timestamp),
                reports: r.get(7)?,
                events: r.get(8)?,
                last_error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stream_lag_put(&mut self, lag: &StreamLag) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO stream_lag (stream, consumer, pending, ack_pending, at) VALUES (?,?,?,?,?)",
            params![lag.stream, lag.consumer, lag.pending, lag.ack_pending, lag.at.micros()],
        )?;
        Ok(())
    }

    fn stream_lags(&self) -> Result<Vec<StreamLag>> {
        let mut st = self.conn.prepare(
            "SELECT stream, consumer, pending, ack_pending, at FROM stream_lag ORDER BY stream, consumer",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StreamLag {
                stream: r.get(0)?,
                consumer: r.get(1)?,
                pending: r.get(2)?,
                ack_pending: r.get(3)?,
                at: Timestamp(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_backs_off_until_a_success_resets_it() {
        for (mut s, _schema) in
            crate::testing::backends("jobs::a_failure_backs_off_until_a_success_resets_it")
        {
            let t = |x: i64| Timestamp::from_secs(1_700_000_000 + x);
            let end = |at, outcome| JobEnd { at, duration_ms: 5, outcome, next_run: at };
            s.job_started("fetch", 60, t(0)).unwrap();
            assert_eq!(s.jobs().unwrap()[0].running_since, Some(t(0)));
            s.job_finished("fetch", &end(t(1), Err("boom".into()))).unwrap();
            s.job_started("fetch", 60, t(2)).unwrap();
            s.job_finished("fetch", &end(t(3), Err("boom again".into()))).unwrap();
            let j = &s.jobs().unwrap()[0];
            assert_eq!((j.runs, j.failures, j.consecutive_failures), (2, 2, 2));
            assert_eq!((j.last_success, j.last_failure, j.running_since), (None, Some(t(3)), None));
            assert_eq!(j.last_error.as_deref(), Some("boom again"));
            s.job_started("fetch", 60, t(4)).unwrap();
            s.job_finished("fetch", &end(t(5), Ok("2 reports".into()))).unwrap();
            let j = &s.jobs().unwrap()[0];
            assert_eq!((j.runs, j.failures, j.consecutive_failures), (3, 2, 0));
            assert_eq!((j.last_success, j.last_detail.as_deref()), (Some(t(5)), Some("2 reports")));
        }
    }

    #[test]
    fn a_run_the_process_did_not_finish_counts_as_failed_at_the_next_start() {
        for (mut s, _schema) in crate::testing::backends(
            "jobs::a_run_the_process_did_not_finish_counts_as_failed_at_the_next_start",
        ) {
            let t = |x: i64| Timestamp::from_secs(1_700_000_000 + x);
            s.job_started("spool", 1, t(0)).unwrap();
            // Killed here; started again.
            s.job_started("spool", 1, t(10)).unwrap();
            let j = &s.jobs().unwrap()[0];
            assert_eq!((j.runs, j.failures, j.consecutive_failures), (1, 1, 1));
            assert_eq!((j.last_failure, j.last_error.as_deref()), (Some(t(0)), Some(ABANDONED)));
            assert_eq!(j.running_since, Some(t(10)));
            s.job_finished(
                "spool",
                &JobEnd { at: t(11), duration_ms: 5, outcome: Ok("1 report".into()), next_run: t(12) },
            )
            .unwrap();
            let j = &s.jobs().unwrap()[0];
            assert_eq!((j.runs, j.failures, j.consecutive_failures, j.running_since), (2, 1, 0, None));
        }
    }

    #[test]
    fn a_source_is_stale_once_quiet_longer_than_allowed() {
        for (mut s, _schema) in
            crate::testing::backends("jobs::a_source_is_stale_once_quiet_longer_than_allowed")
        {
            let t = |x: i64| Timestamp::from_secs(1_700_000_000 + x);
            s.source_configured("feed", "http", 60, Some(180), t(0)).unwrap();
            s.source_configured("spool", "spool", 10, None, t(0)).unwrap();
            let src = |s: &crate::any::AnyStore| s.sources().unwrap()[0].clone();
            assert!(
                !s.sources().unwrap()[1].stale(t(1_000_000)),
                "a source without an allowance is never stale"
            );
            assert!(!src(&s).stale(t(100)));
            assert!(src(&s).stale(t(181)), "no report since it was configured");
            s.source_checked("feed", t(200), 1, 10, None).unwrap();
            assert!(!src(&s).stale(t(300)));
            s.source_checked("feed", t(400), 0, 0, Some("server answered 404")).unwrap();
            let r = src(&s);
            assert_eq!((r.reports, r.events, r.last_report), (1, 10, Some(t(200))));
            assert!(r.stale(t(400)) && r.quiet_secs(t(400)) == 200);
            // A consumer's backlog: the last reading replaces the one before.
            let lag = |pending, at| StreamLag {
                stream: "S".into(),
                consumer: "w".into(),
                pending,
                ack_pending: 1,
                at: t(at),
            };
            s.stream_lag_put(&lag(40, 10)).unwrap();
            s.stream_lag_put(&lag(7, 20)).unwrap();
            assert_eq!(s.stream_lags().unwrap(), vec![lag(7, 20)]);
            // Reconfiguring keeps the history.
            s.source_configured("feed", "http", 30, Some(90), t(500)).unwrap();
            assert_eq!((src(&s).since, src(&s).stale_after_secs), (t(0), Some(90)));
        }
    }
}

//! The desk's stores on PostgreSQL: leases, API tokens, the runner's jobs and sources, the
//! outbox and cases. Same contracts as the SQLite implementations beside each trait; where
//! SQLite takes its one write lock to make a read-then-write atomic, these take row locks
//! (`FOR UPDATE`) or a transaction-scoped advisory lock, so any number of processes on any
//! number of machines may call them at once.

use super::PgStore;
use crate::cases::{CaseFigures, CaseQuery, CaseRecord, CaseStore, CaseTx, Evidence, Exposure, HistoryEntry};
use crate::jobs::{ABANDONED, JobEnd, JobRow, JobStore, SourceRow, StreamLag};
use crate::leases::{LeaseImport, LeaseStore, StoredLeaseImport};
use crate::outbox::{Channel, NewNotice, Notice, NoticeStatus, OutboxStore, SendCheck};
use crate::tokens::{TokenRow, TokenStore};
use crate::{Result, StoreError, ip_key, key_ip};
use ::postgres::types::ToSql;
use ::postgres::{GenericClient, Row, Transaction};
use botwatch_model::{Case, CaseState, CloseReason, LeaseRecord, Timestamp};
use std::net::IpAddr;

/// Advisory-lock key of the case engine: one batch of case changes at a time (the engine
/// numbers the cases it opens from `MAX(id) + 1`, as with SQLite's write lock).
const CASE_LOCK: i64 = super::WRITE_LOCK + 2;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_micros)
}

// ---- leases --------------------------------------------------------------------------

impl LeaseStore for PgStore {
    fn import_leases(&mut self, import: &LeaseImport, records: &[LeaseRecord]) -> Result<Option<i64>> {
        let mut tx = self.client.get_mut().transaction()?;
        // A second import of the same file waits here for the first to commit, then sees it.
        let row = tx.query_opt(
            "INSERT INTO lease_imports (sha256, name, format, imported_at, records, rejects) VALUES ($1,$2,$3,$4,$5,$6)
             ON CONFLICT (sha256) DO NOTHING RETURNING id",
            &[
                &import.sha256,
                &import.name,
                &import.format,
                &import.imported_at.micros(),
                &(records.len() as i64),
                &(import.rejects as i64),
            ],
        )?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.get(0);
        let sink = tx.copy_in(
            "COPY leases (import_id, ip, port_lo, port_hi, start_us, end_us, subscriber, identifiers, source, line) FROM STDIN BINARY",
        )?;
        use ::postgres::types::Type;
        let mut w = ::postgres::binary_copy::BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::TEXT,
                Type::INT4,
                Type::INT4,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
            ],
        );
        for r in records {
            let ids = serde_json::to_string(&r.identifiers).map_err(corrupt)?;
            w.write(&[
                &id,
                &r.ip.to_string(),
                &r.ports.map(|p| i32::from(p.0)),
                &r.ports.map(|p| i32::from(p.1)),
                &r.start.micros(),
                &r.end.map(|e| e.micros()),
                &r.subscriber,
                &ids,
                &r.source,
                &(r.line as i64),
            ])?;
        }
        w.finish()?;
        tx.commit()?;
        Ok(Some(id))
    }

    fn load_leases(&self) -> Result<Vec<LeaseRecord>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT ip, port_lo, port_hi, start_us, end_us, subscriber, identifiers, source, line FROM leases ORDER BY seq",
                &[],
            )
        })?;
        rows.iter()
            .map(|r| {
                let ip: &str = r.get(0);
                let lo: Option<i32> = r.get(1);
                let hi: Option<i32> = r.get(2);
                let port = |p: i32| u16::try_from(p).map_err(|_| corrupt(format!("lease port {p}")));
                let ports = match (lo, hi) {
                    (Some(a), Some(b)) => Some((port(a)?, port(b)?)),
                    _ => None,
                };
                Ok(LeaseRecord {
                    ip: ip.parse().map_err(|_| corrupt(format!("lease address {ip}")))?,
                    ports,
                    start: Timestamp(r.get(3)),
                    end: r.get::<_, Option<i64>>(4).map(Timestamp),
                    subscriber: r.get(5),
                    identifiers: serde_json::from_str(r.get(6))
                        .map_err(|e| corrupt(format!("lease identifiers: {e}")))?,
                    source: r.get(7),
                    line: r.get::<_, i64>(8) as u64,
                })
            })
            .collect()
    }

    fn lease_imports(&self) -> Result<Vec<StoredLeaseImport>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, sha256, name, format, imported_at, records, rejects FROM lease_imports ORDER BY id DESC",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| StoredLeaseImport {
                id: r.get(0),
                import: LeaseImport {
                    sha256: r.get(1),
                    name: r.get(2),
                    format: r.get(3),
                    imported_at: Timestamp(r.get(4)),
                    rejects: r.get::<_, i64>(6) as u64,
                },
                records: r.get::<_, i64>(5) as u64,
            })
            .collect())
    }
}

// ---- tokens --------------------------------------------------------------------------

const TOKEN_COLS: &str = "id, name, role, org, created_at, last_used, revoked_at";

fn token_row(r: &Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        org: r.get(3),
        created_at: Timestamp(r.get(4)),
        last_used: ts(r.get(5)),
        revoked_at: ts(r.get(6)),
    }
}

impl TokenStore for PgStore {
    fn create_token(
        &mut self,
        name: &str,
        role: &str,
        org: Option<&str>,
        hash: &str,
        at: Timestamp,
    ) -> Result<i64> {
        Ok(self
            .client
            .get_mut()
            .query_one(
                "INSERT INTO api_tokens (name, role, org, hash, created_at) VALUES ($1,$2,$3,$4,$5) RETURNING id",
                &[&name, &role, &org, &hash, &at.micros()],
            )?
            .get(0))
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL"),
                &[&hash],
            )
        })?;
        Ok(row.as_ref().map(token_row))
    }

    fn touch_token(&mut self, id: i64, at: Timestamp) -> Result<()> {
        self.client
            .get_mut()
            .execute("UPDATE api_tokens SET last_used = $1 WHERE id = $2", &[&at.micros(), &id])?;
        Ok(())
    }

    fn touch_token_nowait(&mut self, id: i64, at: Timestamp) -> Result<()> {
        // Row locks are short here and nothing holds this row long: no waiting to avoid.
        self.touch_token(id, at)
    }

    fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows =
            self.with_client(|c| c.query(&format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY id"), &[]))?;
        Ok(rows.iter().map(token_row).collect())
    }

    fn revoke_token(&mut self, id: i64, at: Timestamp) -> Result<bool> {
        Ok(self.client.get_mut().execute(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            &[&at.micros(), &id],
        )? == 1)
    }

    fn token_live(&self, id: i64) -> Result<bool> {
        Ok(self
            .with_client(|c| {
                c.query_opt("SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL", &[&id])
            })?
            .is_some())
    }
}

// ---- jobs ----------------------------------------------------------------------------

impl JobStore for PgStore {
    fn job_started(&mut self, name: &str, every_secs: i64, at: Timestamp) -> Result<()> {
        // As in SQLite: a run still marked running never ended and counts as failed.
        self.client.get_mut().execute(
            "INSERT INTO jobs AS j (name, every_secs, running_since, last_start) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET every_secs = $2,
                runs = j.runs + (j.running_since IS NOT NULL)::int,
                failures = j.failures + (j.running_since IS NOT NULL)::int,
                consecutive_failures = j.consecutive_failures + (j.running_since IS NOT NULL)::int,
                last_failure = COALESCE(j.running_since, j.last_failure),
                last_error = CASE WHEN j.running_since IS NOT NULL THEN $4 ELSE j.last_error END,
                running_since = $3, last_start = $3",
            &[&name, &every_secs, &at.micros(), &ABANDONED],
        )?;
        Ok(())
    }

    fn job_finished(&mut self, name: &str, end: &JobEnd) -> Result<()> {
        let (failed, detail, error): (i64, Option<&str>, Option<&str>) = match &end.outcome {
            Ok(d) => (0, Some(d.as_str()), None),
            Err(e) => (1, None, Some(e.as_str())),
        };
        self.client.get_mut().execute(
            "UPDATE jobs SET runs = runs + 1,
                failures = failures + $2::bigint,
                consecutive_failures = CASE WHEN $2::bigint = 1 THEN consecutive_failures + 1 ELSE 0 END,
                running_since = NULL, last_end = $3,
                last_success = CASE WHEN $2::bigint = 0 THEN $3 ELSE last_success END,
                last_failure = CASE WHEN $2::bigint = 1 THEN $3 ELSE last_failure END,
                last_duration_ms = $4,
                last_error = CASE WHEN $2::bigint = 1 THEN $5::text ELSE last_error END,
                last_detail = COALESCE($6::text, last_detail),
                next_run = $7
             WHERE name = $1",
            &[&name, &failed, &end.at.micros(), &end.duration_ms, &error, &detail, &end.next_run.micros()],
        )?;
        Ok(())
    }

    fn jobs(&self) -> Result<Vec<JobRow>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT name, every_secs, runs, failures, consecutive_failures, running_since, last_start,
                        last_end, last_success, last_failure, last_duration_ms, last_error, last_detail, next_run
                 FROM jobs ORDER BY name",
                &[],
            )
        })?;
        let t = |v: Option<i64>| v.map(Timestamp);
        Ok(rows
            .iter()
            .map(|r| JobRow {
                name: r.get(0),
                every_secs: r.get(1),
                runs: r.get(2),
                failures: r.get(3),
                consecutive_failures: r.get(4),
                running_since: t(r.get(5)),
                last_start: t(r.get(6)),
                last_end: t(r.get(7)),
                last_success: t(r.get(8)),
                last_failure: t(r.get(9)),
                last_duration_ms: r.get(10),
                last_error: r.get(11),
                last_detail: r.get(12),
                next_run: t(r.get(13)),
            })
            .collect())
    }

    fn source_configured(
        &mut self,
        name: &str,
        kind: &str,
        expected_secs: i64,
        stale_after_secs: Option<i64>,
        now: Timestamp,
    ) -> Result<()> {
        self.client.get_mut().execute(
            "INSERT INTO intake_sources (name, kind, expected_secs, stale_after_secs, since) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET kind = $2, expected_secs = $3, stale_after_secs = $4",
            &[&name, &kind, &expected_secs, &stale_after_secs, &now.micros()],
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
        self.client.get_mut().execute(
            "UPDATE intake_sources SET last_check = $2,
                last_report = CASE WHEN $3::bigint > 0 THEN $2 ELSE last_report END,
                reports = reports + $3::bigint, events = events + $4::bigint, last_error = $5
             WHERE name = $1",
            &[&name, &at.micros(), &new_reports, &events, &error],
        )?;
        Ok(())
    }

    fn sources(&self) -> Result<Vec<SourceRow>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT name, kind, expected_secs, stale_after_secs, since, last_check, last_report, reports,
                        events, last_error FROM intake_sources ORDER BY name",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| SourceRow {
                name: r.get(0),
                kind: r.get(1),
                expected_secs: r.get(2),
                stale_after_secs: r.get(3),
                since: Timestamp(r.get(4)),
                last_check: ts(r.get(5)),
                last_report: ts(r.get(6)),
                reports: r.get(7),
                events: r.get(8),
                last_error: r.get(9),
            })
            .collect())
    }

    fn stream_lag_put(&mut self, lag: &StreamLag) -> Result<()> {
        self.client.get_mut().execute(
            "INSERT INTO stream_lag (stream, consumer, pending, ack_pending, at) VALUES ($1,$2,$3,$4,$5)
             ON CONFLICT (stream, consumer) DO UPDATE SET pending = excluded.pending,
               ack_pending = excluded.ack_pending, at = excluded.at",
            &[&lag.stream, &lag.consumer, &lag.pending, &lag.ack_pending, &lag.at.micros()],
        )?;
        Ok(())
    }

    fn stream_lags(&self) -> Result<Vec<StreamLag>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT stream, consumer, pending, ack_pending, at FROM stream_lag ORDER BY stream, consumer",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| StreamLag {
                stream: r.get(0),
                consumer: r.get(1),
                pending: r.get(2),
                ack_pending: r.get(3),
                at: Timestamp(r.get(4)),
            })
            .collect())
    }
}

// ---- outbox --------------------------------------------------------------------------

const NOTICE_COLS: &str = "id, key, message_id, kind, channel, recipient, lang, org, case_id, payload, created_at, due_at, attempts, last_error, status, sent_at";

fn notice_row(r: &Row) -> Result<Notice> {
    let channel: &str = r.get(4);
    let status: &str = r.get(14);
    Ok(Notice {
        id: r.get(0),
        notice: NewNotice {
            key: r.get(1),
            message_id: r.get(2),
            kind: r.get(3),
            channel: Channel::from_name(channel)
                .ok_or_else(|| corrupt(format!("unknown channel {channel}")))?,
            recipient: r.get(5),
            lang: r.get(6),
            org: r.get(7),
            case_id: r.get(8),
            payload: serde_json::from_str(r.get(9)).map_err(|e| corrupt(format!("notice payload: {e}")))?,
            created_at: Timestamp::from_micros(r.get(10)),
            due_at: Timestamp::from_micros(r.get(11)),
        },
        attempts: r.get::<_, i64>(12) as u32,
        last_error: r.get(13),
        status: NoticeStatus::from_name(status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        sent_at: ts(r.get(15)),
    })
}

fn notices(rows: &[Row]) -> Result<Vec<Notice>> {
    rows.iter().map(notice_row).collect()
}

/// Enqueues on any client or open transaction (the case engine's, so a notice commits with
/// the case change that caused it).
pub(crate) fn enqueue_on(c: &mut impl GenericClient, n: &[NewNotice]) -> Result<u64> {
    let st = c.prepare(
        "INSERT INTO outbox (key, message_id, kind, channel, recipient, lang, org, case_id, payload, created_at, due_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (key) DO NOTHING",
    )?;
    let mut count = 0;
    for x in n {
        count += c.execute(
            &st,
            &[
                &x.key,
                &x.message_id,
                &x.kind,
                &x.channel.as_str(),
                &x.recipient,
                &x.lang,
                &x.org,
                &x.case_id,
                &x.payload.to_string(),
                &x.created_at.micros(),
                &x.due_at.micros(),
            ],
        )?;
    }
    Ok(count)
}

impl OutboxStore for PgStore {
    fn enqueue(&mut self, n: &[NewNotice]) -> Result<u64> {
        let mut tx = self.client.get_mut().transaction()?;
        let count = enqueue_on(&mut tx, n)?;
        tx.commit()?;
        Ok(count)
    }

    fn due_notices(&self, now: Timestamp, limit: u64) -> Result<Vec<Notice>> {
        let rows = self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT {NOTICE_COLS} FROM outbox WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $2"
                ),
                &[&now.micros(), &(limit.min(i64::MAX as u64) as i64)],
            )
        })?;
        notices(&rows)
    }

    fn claim_due(
        &mut self,
        now: Timestamp,
        limit: u64,
        runner: &str,
        lease_until: Timestamp,
    ) -> Result<Vec<Notice>> {
        // SKIP LOCKED: runners claiming at the same moment take different notices instead
        // of waiting for each other; a row one of them claims, the others never see free.
        let rows = self.client.get_mut().query(
            &format!(
                "UPDATE outbox SET claimed_by = $1, claim_until = $2
                 WHERE id IN (SELECT id FROM outbox
                              WHERE ((status = 'pending' AND due_at <= $3) OR status = 'sending')
                                AND (claim_until IS NULL OR claim_until < $3)
                              ORDER BY due_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING {NOTICE_COLS}"
            ),
            &[&runner, &lease_until.micros(), &now.micros(), &(limit.min(i64::MAX as u64) as i64)],
        )?;
        let mut claimed = notices(&rows)?;
        claimed.sort_by_key(|n| (n.notice.due_at, n.id));
        Ok(claimed)
    }

    fn start_sending(
        &mut self,
        id: i64,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<SendCheck> {
        let mut tx = self.client.get_mut().transaction()?;
        let found = tx.query_opt(
            "SELECT o.status, o.claimed_by, o.claim_until, COALESCE(c.state = 'closed', false)
             FROM outbox o LEFT JOIN cases c ON c.id = o.case_id WHERE o.id = $1 FOR UPDATE OF o",
            &[&id],
        )?;
        let Some(r) = found else { return Ok(SendCheck::Lost) };
        let (status, by, until, case_closed): (String, Option<String>, Option<i64>, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let ours = by.as_deref() == Some(runner) && until.is_some_and(|u| u >= now.micros());
        let check = match status.as_str() {
            "pending" if case_closed => {
                tx.execute(
                    "UPDATE outbox SET status = 'cancelled', last_error = 'case closed before sending', claimed_by = NULL, claim_until = NULL WHERE id = $1",
                    &[&id],
                )?;
                SendCheck::Cancelled
            }
            "pending" | "sending" if ours => {
                tx.execute(
                    "UPDATE outbox SET status = 'sending', claim_until = $1 WHERE id = $2",
                    &[&lease_until.micros(), &id],
                )?;
                SendCheck::Go
            }
            _ => SendCheck::Lost,
        };
        tx.commit()?;
        Ok(check)
    }

    fn mark_sent(&mut self, id: i64, runner: &str, at: Timestamp) -> Result<bool> {
        Ok(self.client.get_mut().execute(
            "UPDATE outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claim_until = NULL
             WHERE id = $2 AND status = 'sending' AND claimed_by = $3",
            &[&at.micros(), &id, &runner],
        )? == 1)
    }

    fn mark_failed(
        &mut self,
        id: i64,
        runner: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool> {
        let c = self.client.get_mut();
        let n = match retry_at {
            Some(t) => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, due_at = $2, status = 'pending', claimed_by = NULL, claim_until = NULL
                 WHERE id = $3 AND status IN ('pending', 'sending') AND claimed_by = $4",
                &[&error, &t.micros(), &id, &runner],
            )?,
            None => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, status = 'failed', claimed_by = NULL, claim_until = NULL
                 WHERE id = $2 AND status IN ('pending', 'sending') AND claimed_by = $3",
                &[&error, &id, &runner],
            )?,
        };
        Ok(n == 1)
    }

    fn defer(&mut self, id: i64, runner: &str, due_at: Timestamp) -> Result<bool> {
        Ok(self.client.get_mut().execute(
            "UPDATE outbox SET due_at = $1, claimed_by = NULL, claim_until = NULL WHERE id = $2 AND status = 'pending' AND claimed_by = $3",
            &[&due_at.micros(), &id, &runner],
        )? == 1)
    }

    fn release(&mut self, id: i64, runner: &str) -> Result<bool> {
        Ok(self.client.get_mut().execute(
            "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE id = $1 AND status = 'pending' AND claimed_by = $2",
            &[&id, &runner],
        )? == 1)
    }

    fn sent_since(&self, recipient: &str, since: Timestamp) -> Result<u64> {
        let r = self.with_client(|c| {
            c.query_one(
                "SELECT COUNT(*) FROM outbox WHERE recipient = $1 AND sent_at >= $2",
                &[&recipient, &since.micros()],
            )
        })?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn notices(&self, status: Option<NoticeStatus>, limit: u64) -> Result<Vec<Notice>> {
        let rows = self.with_client(|c| {
            c.query(
                &format!("SELECT {NOTICE_COLS} FROM outbox WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"),
                &[&status.map(|s| s.as_str()), &(limit.min(i64::MAX as u64) as i64)],
            )
        })?;
        notices(&rows)
    }

    fn notice(&self, id: i64) -> Result<Option<Notice>> {
        let row = self.with_client(|c| {
            c.query_opt(&format!("SELECT {NOTICE_COLS} FROM outbox WHERE id = $1"), &[&id])
        })?;
        row.as_ref().map(notice_row).transpose()
    }

    fn notice_by_message_id(&self, message_id: &str) -> Result<Option<Notice>> {
        let row = self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {NOTICE_COLS} FROM outbox WHERE message_id = $1 ORDER BY id LIMIT 1"),
                &[&message_id],
            )
        })?;
        row.as_ref().map(notice_row).transpose()
    }

    fn notice_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows = self.with_client(|c| {
            c.query("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status", &[])
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
    }
}

// ---- cases ---------------------------------------------------------------------------

const CASE_COLS: &str = "id, key, state, level, org, subscriber, ip, threat, type, opened_at, first_seen, last_seen, evidence, \
     evidence_at_notice, notices, episode_notices, first_notified_at, last_notified_at, acknowledged_at, escalated_at, \
     stage_since, closed_at, close_reason, reinfections, last_event_id, recent, next_check";
const CASE_LIST_COLS: &str = "id, key, state, level, org, subscriber, ip, threat, type, opened_at, first_seen, last_seen, evidence, \
     evidence_at_notice, notices, episode_notices, first_notified_at, last_notified_at, acknowledged_at, escalated_at, \
     stage_since, closed_at, close_reason, reinfections, last_event_id, '[]'::text, next_check";
/// What was delivered for a case (see the SQLite `DELIVERY`).
const DELIVERY: &str = ", (SELECT COUNT(*) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'), \
     (SELECT MIN(o.sent_at) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'), \
     (SELECT COUNT(*) FROM outbox o WHERE o.case_id = cases.id AND o.status IN ('pending', 'sending'))";

fn case_row(r: &Row) -> Result<CaseRecord> {
    let state: &str = r.get(2);
    let close: Option<&str> = r.get(22);
    let ip: Option<&[u8]> = r.get(6);
    let recent: &str = r.get(25);
    let delivery = r.len() > 27;
    let mut recent: Vec<Evidence> =
        serde_json::from_str(recent).map_err(|e| corrupt(format!("case evidence: {e}")))?;
    recent.sort_by_key(|e| (e.time, e.event_id));
    Ok(CaseRecord {
        case: Case {
            id: r.get(0),
            key: r.get(1),
            state: CaseState::from_name(state).ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
            level: r.get::<_, i64>(3).clamp(0, u8::MAX as i64) as u8,
            org: r.get(4),
            subscriber: r.get(5),
            ip: ip.and_then(|b| <[u8; 16]>::try_from(b).ok()).map(key_ip),
            threat: r.get(7),
            classification_type: r.get(8),
            opened_at: Timestamp::from_micros(r.get(9)),
            first_seen: Timestamp::from_micros(r.get(10)),
            last_seen: Timestamp::from_micros(r.get(11)),
            evidence: r.get::<_, i64>(12) as u64,
            evidence_at_notice: r.get::<_, i64>(13) as u64,
            notices: r.get::<_, i64>(14) as u32,
            episode_notices: r.get::<_, i64>(15) as u32,
            first_notified_at: ts(r.get(16)),
            last_notified_at: ts(r.get(17)),
            acknowledged_at: ts(r.get(18)),
            escalated_at: ts(r.get(19)),
            stage_since: ts(r.get(20)),
            closed_at: ts(r.get(21)),
            close_reason: match close {
                Some(c) => {
                    Some(CloseReason::from_name(c).ok_or_else(|| corrupt(format!("unknown reason {c:?}")))?)
                }
                None => None,
            },
            reinfections: r.get::<_, i64>(23) as u32,
            last_event_id: r.get(24),
            notices_sent: if delivery { r.get::<_, i64>(27).clamp(0, u32::MAX as i64) as u32 } else { 0 },
            first_sent_at: if delivery { ts(r.get(28)) } else { None },
            notices_queued: if delivery { r.get::<_, i64>(29).clamp(0, u32::MAX as i64) as u32 } else { 0 },
        },
        recent,
        next_check: ts(r.get(26)),
    })
}

fn case_rows(rows: &[Row]) -> Result<Vec<CaseRecord>> {
    rows.iter().map(case_row).collect()
}

struct PgCaseTx<'s> {
    tx: Transaction<'s>,
    /// Prepared once per batch: a batch saves thousands of cases.
    save: Option<::postgres::Statement>,
}

impl CaseTx for PgCaseTx<'_> {
    fn cursor(&mut self) -> Result<i64> {
        Ok(self.tx.query_one("SELECT last_event_id FROM case_cursor WHERE id = 1", &[])?.get(0))
    }

    fn set_cursor(&mut self, last_event_id: i64) -> Result<()> {
        self.tx.execute("UPDATE case_cursor SET last_event_id = $1 WHERE id = 1", &[&last_event_id])?;
        Ok(())
    }

    fn by_keys(&mut self, keys: &[&str]) -> Result<Vec<CaseRecord>> {
        let rows = self.tx.query(&format!("SELECT {CASE_COLS} FROM cases WHERE key = ANY($1)"), &[&keys])?;
        case_rows(&rows)
    }

    fn by_id(&mut self, id: i64) -> Result<Option<CaseRecord>> {
        let row = self.tx.query_opt(&format!("SELECT {CASE_COLS} FROM cases WHERE id = $1"), &[&id])?;
        row.as_ref().map(case_row).transpose()
    }

    fn due(&mut self, now: Timestamp, limit: u64) -> Result<Vec<CaseRecord>> {
        let rows = self.tx.query(
            &format!(
                "SELECT {CASE_COLS} FROM cases WHERE next_check IS NOT NULL AND next_check <= $1 ORDER BY next_check, id LIMIT $2"
            ),
            &[&now.micros(), &(limit.min(i64::MAX as u64) as i64)],
        )?;
        case_rows(&rows)
    }

    fn next_case_id(&mut self) -> Result<i64> {
        Ok(self.tx.query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM cases", &[])?.get(0))
    }

    fn save(&mut self, r: &CaseRecord) -> Result<()> {
        let c = &r.case;
        let recent = serde_json::to_string(&r.recent).map_err(corrupt)?;
        let m = |t: Option<Timestamp>| t.map(|t| t.micros());
        let st = match &self.save {
            Some(st) => st.clone(),
            None => {
                let marks: Vec<String> = (1..=27).map(|i| format!("${i}")).collect();
                let sets: Vec<String> =
                    CASE_COLS.split(", ").skip(1).map(|c| format!("{c} = excluded.{c}")).collect();
                let st = self.tx.prepare(&format!(
                    "INSERT INTO cases ({CASE_COLS}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
                    marks.join(","),
                    sets.join(", ")
                ))?;
                self.save = Some(st.clone());
                st
            }
        };
        let args: [&(dyn ToSql + Sync); 27] = [
            &c.id,
            &c.key,
            &c.state.as_str(),
            &(c.level as i64),
            &c.org,
            &c.subscriber,
            &c.ip.map(|ip| ip_key(ip).to_vec()),
            &c.threat,
            &c.classification_type,
            &c.opened_at.micros(),
            &c.first_seen.micros(),
            &c.last_seen.micros(),
            &(c.evidence.min(i64::MAX as u64) as i64),
            &(c.evidence_at_notice.min(i64::MAX as u64) as i64),
            &(c.notices as i64),
            &(c.episode_notices as i64),
            &m(c.first_notified_at),
            &m(c.last_notified_at),
            &m(c.acknowledged_at),
            &m(c.escalated_at),
            &m(c.stage_since),
            &m(c.closed_at),
            &c.close_reason.map(|x| x.as_str()),
            &(c.reinfections as i64),
            &c.last_event_id,
            &recent,
            &m(r.next_check),
        ];
        self.tx.execute(&st, &args)?;
        if c.state == CaseState::Closed {
            self.tx.execute(
                "UPDATE outbox SET status = 'cancelled', last_error = 'case closed before sending' WHERE case_id = $1 AND status = 'pending'",
                &[&c.id],
            )?;
        }
        Ok(())
    }

    fn append_history(&mut self, h: &[HistoryEntry]) -> Result<()> {
        let st = self.tx.prepare(
            "INSERT INTO case_history (case_id, at, actor, action, from_state, to_state, level, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )?;
        for x in h {
            self.tx.execute(
                &st,
                &[
                    &x.case_id,
                    &x.at.micros(),
                    &x.actor,
                    &x.action,
                    &x.from.map(|s| s.as_str()),
                    &x.to.as_str(),
                    &(x.level as i64),
                    &x.detail,
                ],
            )?;
        }
        Ok(())
    }

    fn add_exposures(&mut self, e: &[Exposure]) -> Result<()> {
        let st = self.tx.prepare(
            "INSERT INTO case_exposures (event_id, time, ip, port, subscriber, org, type, identifier) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
             ON CONFLICT (event_id) DO NOTHING",
        )?;
        for x in e {
            self.tx.execute(
                &st,
                &[
                    &x.event_id,
                    &x.time.micros(),
                    &ip_key(x.ip).to_vec(),
                    &x.port.map(i32::from),
                    &x.subscriber,
                    &x.org,
                    &x.classification_type,
                    &x.identifier,
                ],
            )?;
        }
        Ok(())
    }

    fn enqueue(&mut self, n: &[NewNotice]) -> Result<u64> {
        enqueue_on(&mut self.tx, n)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

impl CaseStore for PgStore {
    fn case_tx(&mut self) -> Result<Box<dyn CaseTx + '_>> {
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CASE_LOCK])?;
        Ok(Box::new(PgCaseTx { tx, save: None }))
    }

    fn case_cursor(&self) -> Result<i64> {
        Ok(self
            .with_client(|c| c.query_one("SELECT last_event_id FROM case_cursor WHERE id = 1", &[]))?
            .get(0))
    }

    fn case(&self, id: i64) -> Result<Option<CaseRecord>> {
        let row = self.with_client(|c| {
            c.query_opt(&format!("SELECT {CASE_COLS}{DELIVERY} FROM cases WHERE id = $1"), &[&id])
        })?;
        row.as_ref().map(case_row).transpose()
    }

    fn cases(&self, q: &CaseQuery) -> Result<Vec<Case>> {
        let (conds, args) = crate::cases::case_conditions(q);
        let wh = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let limit = q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
        let order = match q.order {
            crate::cases::CaseOrder::Id => "ORDER BY id",
            crate::cases::CaseOrder::Desk => "ORDER BY org IS NULL, level DESC, last_seen DESC, id DESC",
        };
        let sql = format!(
            "SELECT {CASE_LIST_COLS}{DELIVERY} FROM cases {wh} {order} LIMIT {limit} OFFSET {}",
            q.offset
        );
        let rows = self.with_client(|c| c.query(&super::numbered(&sql), &super::pg_args(&args)))?;
        rows.iter().map(|r| case_row(r).map(|x| x.case)).collect()
    }

    fn case_history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT case_id, at, actor, action, from_state, to_state, level, detail FROM case_history WHERE case_id = $1 ORDER BY id",
                &[&id],
            )
        })?;
        rows.iter()
            .map(|r| {
                let from: Option<&str> = r.get(4);
                let to: &str = r.get(5);
                let state =
                    |s: &str| CaseState::from_name(s).ok_or_else(|| corrupt(format!("unknown state {s:?}")));
                Ok(HistoryEntry {
                    case_id: r.get(0),
                    at: Timestamp::from_micros(r.get(1)),
                    actor: r.get(2),
                    action: r.get(3),
                    from: from.map(state).transpose()?,
                    to: state(to)?,
                    level: r.get::<_, i64>(6).clamp(0, u8::MAX as i64) as u8,
                    detail: r.get(7),
                })
            })
            .collect()
    }

    fn exposures(
        &self,
        subscriber: Option<&str>,
        ip: Option<IpAddr>,
        since: Timestamp,
    ) -> Result<Vec<Exposure>> {
        if subscriber.is_none() && ip.is_none() {
            return Ok(Vec::new());
        }
        let key = ip.map(|ip| ip_key(ip).to_vec());
        let rows = self.with_client(|c| {
            c.query(
                "SELECT event_id, time, ip, port, subscriber, org, type, identifier FROM case_exposures
                 WHERE time >= $1 AND (subscriber = $2 OR ip = $3) ORDER BY time, event_id",
                &[&since.micros(), &subscriber, &key],
            )
        })?;
        rows.iter()
            .map(|r| {
                let b: &[u8] = r.get(2);
                Ok(Exposure {
                    event_id: r.get(0),
                    time: Timestamp::from_micros(r.get(1)),
                    ip: <[u8; 16]>::try_from(b)
                        .map(key_ip)
                        .map_err(|_| corrupt("exposure address is not 16 bytes"))?,
                    port: r.get::<_, Option<i32>>(3).and_then(|p| u16::try_from(p).ok()),
                    subscriber: r.get(4),
                    org: r.get(5),
                    classification_type: r.get(6),
                    identifier: r.get(7),
                })
            })
            .collect()
    }

    fn flagged_addresses(&self, since: Timestamp) -> Result<Vec<[u8; 16]>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT ip FROM observations WHERE last_seen >= $1 AND type = 'infected-system' AND ip IS NOT NULL
                 UNION SELECT ip FROM cases WHERE state != 'closed' AND ip IS NOT NULL
                 UNION SELECT ip FROM case_exposures WHERE time >= $1",
                &[&since.micros()],
            )
        })?;
        Ok(rows.iter().filter_map(|r| <[u8; 16]>::try_from(r.get::<_, &[u8]>(0)).ok()).collect())
    }

    fn case_figures(&self) -> Result<Vec<CaseFigures>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT org, state != 'closed', close_reason IS NOT DISTINCT FROM 'dismissed', first_seen,
                        (SELECT MIN(o.sent_at) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'),
                        closed_at, reinfections, first_notified_at IS NOT NULL FROM cases",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                let first_sent_at = ts(r.get(4));
                CaseFigures {
                    org: r.get(0),
                    open: r.get(1),
                    dismissed: r.get(2),
                    first_seen: Timestamp(r.get(3)),
                    first_sent_at,
                    queued: first_sent_at.is_none() && r.get::<_, bool>(7),
                    closed_at: ts(r.get(5)),
                    reinfections: r.get::<_, i64>(6) as u32,
                }
            })
            .collect())
    }

    fn open_case_count(&self) -> Result<u64> {
        Ok(self
            .with_client(|c| c.query_one("SELECT COUNT(*) FROM cases WHERE state != 'closed'", &[]))?
            .get::<_, i64>(0) as u64)
    }

    fn cases_generation(&self) -> Result<String> {
        Ok(self
            .with_client(|c| {
                c.query_one(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM case_history)::text || ':' || (SELECT COALESCE(MAX(id), 0) FROM cases)::text
                        || ':' || (SELECT last_event_id FROM case_cursor WHERE id = 1)::text
                        || ':' || (SELECT COALESCE(MAX(sent_at), 0) FROM outbox)::text",
                    &[],
                )
            })?
            .get(0))
    }
}

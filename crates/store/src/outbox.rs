//! The durable outbox (transactional outbox pattern).
//!
//! A notice is an *intent*: who to tell, over which channel, about what (a JSON payload the
//! notifier renders at send time). It is written in the same transaction as the case change
//! that caused it, so a crash can never leave a case "notified" without its notice or the
//! other way round. A sender drains due notices and marks each one sent only after the
//! SMTP server or webhook accepted it: killed between the two, the notice is sent again on
//! restart with the same `message_id`, which receivers deduplicate on. That single in-flight
//! notice is the only one that can ever repeat.
//!
//! `key` is the idempotency key: enqueueing a key that exists is a no-op, so "one notice
//! per key" holds whatever the callers do.
//!
//! Runners *claim* what they send ([`OutboxStore::claim_due`]: runner id and lease expiry
//! written in one write transaction), so two or more `notify run` at once never send a
//! notice twice. Right before the hand-over to a transport the claim is confirmed
//! ([`OutboxStore::start_sending`]): the notice must still be pending, still ours, and its
//! case not closed, and it becomes `sending`. Closing a case cancels only pending notices,
//! and every later write is conditional on the state it expects, so no terminal state
//! (`sent`, `failed`, `cancelled`) is ever overwritten. A runner killed mid-send leaves a
//! `sending` notice whose lease expires; the next runner sends it again with the same
//! Message-ID — still the one notice that can repeat.

use crate::Result;
use crate::sqlite::SqliteStore;
use botwatch_model::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// How a notice travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
    pub fn from_name(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// Queued: not handed to any transport yet (possibly claimed by a runner).
    Pending,
    /// Handed to a transport by the runner holding the claim; not accepted yet.
    Sending,
    /// Accepted by the receiver (SMTP 250, webhook 2xx): the only status that means sent.
    Sent,
    /// Given up: a permanent error (bad address, 4xx from a webhook) or too many attempts.
    Failed,
    /// Not sent: its case closed while it waited.
    Cancelled,
}

impl NoticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Pending => "pending",
            NoticeStatus::Sending => "sending",
            NoticeStatus::Sent => "sent",
            NoticeStatus::Failed => "failed",
            NoticeStatus::Cancelled => "cancelled",
        }
    }
    pub fn from_name(s: &str) -> Option<NoticeStatus> {
        match s {
            "pending" => Some(NoticeStatus::Pending),
            "sending" => Some(NoticeStatus::Sending),
            "sent" => Some(NoticeStatus::Sent),
            "failed" => Some(NoticeStatus::Failed),
            "cancelled" => Some(NoticeStatus::Cancelled),
            _ => None,
        }
    }
}

/// A notice to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNotice {
    /// Idempotency key, e.g. `case:42:notice:1` or `daily:2026-11-24:org:example-isp`.
    pub key: String,
    /// RFC 5322 Message-ID without angle brackets, e.g. `case-42-1.abc@botwatch.example`;
    /// webhooks send it as the idempotency key header.
    pub message_id: String,
    /// What the payload is: `case_notice`, `case_escalation`, `daily_report`, …
    pub kind: String,
    pub channel: Channel,
    /// Email address or webhook URL.
    pub recipient: String,
    /// Template language (BCP 47 primary tag: `en`, `de`, `ja`, `nl`).
    pub lang: String,
    pub org: Option<String>,
    pub case_id: Option<i64>,
    /// What the notifier renders: a JSON object (case snapshot, evidence, organisation).
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
    /// Not before this instant (quiet hours and rate limits move it later).
    pub due_at: Timestamp,
}

/// A stored notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: i64,
    #[serde(flatten)]
    pub notice: NewNotice,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub status: NoticeStatus,
    pub sent_at: Option<Timestamp>,
}

/// What [`OutboxStore::start_sending`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendCheck {
    /// Still pending and ours: now `sending`, hand it to the transport.
    Go,
    /// Its case closed while it waited: now `cancelled`, not to be sent.
    Cancelled,
    /// No longer ours (the lease ran out and another runner took it) or no longer pending.
    Lost,
}

/// Outbox operations; the PostgreSQL backend implements the same.
pub trait OutboxStore {
    /// Inserts the notices whose key is new; returns how many were new.
    fn enqueue(&mut self, notices: &[NewNotice]) -> Result<u64>;
    /// Pending notices due at `now`, oldest due first, claimed or not (read-only: previews
    /// and listings; senders use [`OutboxStore::claim_due`]).
    fn due_notices(&self, now: Timestamp, limit: u64) -> Result<Vec<Notice>>;
    /// Claims up to `limit` due notices for `runner` until `lease_until`, atomically: those
    /// pending and unclaimed (or whose claim expired), and those a runner whose lease
    /// expired left `sending`. What one runner holds, no other gets.
    fn claim_due(
        &mut self,
        now: Timestamp,
        limit: u64,
        runner: &str,
        lease_until: Timestamp,
    ) -> Result<Vec<Notice>>;
    /// Confirms the claim right before sending (see [`SendCheck`]) and extends the lease to
    /// `lease_until`, so a slow transport does not lose it.
    fn start_sending(
        &mut self,
        id: i64,
        runner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<SendCheck>;
    /// The receiver accepted it. False (and nothing changed) when it was not `runner`'s.
    fn mark_sent(&mut self, id: i64, runner: &str, at: Timestamp) -> Result<bool>;
    /// A failed attempt: retried at `retry_at`, or given up when `None`. Releases the claim.
    fn mark_failed(
        &mut self,
        id: i64,
        runner: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool>;
    /// Not sent now (quiet hours, rate limit) and not an attempt: due again at `due_at`.
    /// Releases the claim.
    fn defer(&mut self, id: i64, runner: &str, due_at: Timestamp) -> Result<bool>;
    /// Gives a claimed notice back untouched (no transport for it here).
    fn release(&mut self, id: i64, runner: &str) -> Result<bool>;
    /// Notices sent to `recipient` at or after `since` (for per-recipient rate limits).
    fn sent_since(&self, recipient: &str, since: Timestamp) -> Result<u64>;
    /// Newest first, optionally only one status.
    fn notices(&self, status: Option<NoticeStatus>, limit: u64) -> Result<Vec<Notice>>;
    fn notice(&self, id: i64) -> Result<Option<Notice>>;
    /// The notice with this Message-ID (what a notice's signed link names).
    fn notice_by_message_id(&self, message_id: &str) -> Result<Option<Notice>>;
    /// How many notices are in each status, by status name.
    fn notice_counts(&self) -> Result<Vec<(String, u64)>>;
}

/// Enqueues on any connection or open transaction: the case engine calls this inside the
/// transaction that changes the case.
pub fn enqueue_on(conn: &Connection, notices: &[NewNotice]) -> Result<u64> {
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox (key, message_id, kind, channel, recipient, lang, org, case_id, payload, created_at, due_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    )?;
    let mut n = 0;
    for x in notices {
        n += st.execute(params![
            x.key,
            x.message_id,
            x.kind,
            x.channel.as_str(),
            x.recipient,
            x.lang,
            x.org,
            x.case_id,
            x.payload.to_string(),
            x.created_at.micros(),
            x.due_at.micros(),
        ])? as u64;
    }
    Ok(n)
}

const COLS: &str = "id, key, message_id, kind, channel, recipient, lang, org, case_id, payload, created_at, due_at, attempts, last_error, status, sent_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notice> {
    let channel: String = r.get(4)?;
    let payload: String = r.get(9)?;
    let status: String = r.get(14)?;
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    Ok(Notice {
        id: r.get(0)?,
        notice: NewNotice {
            key: r.get(1)?,
            message_id: r.get(2)?,
            kind: r.get(3)?,
            channel: Channel::from_name(&channel).ok_or_else(|| bad(4, "channel"))?,
            recipient: r.get(5)?,
            lang: r.get(6)?,
            org: r.get(7)?,
            case_id: r.get(8)?,
            payload: serde_json::from_str(&payload).map_err(|_| bad(9, "payload"))?,
            created_at: Timestamp::from_micros(r.get(10)?),
            due_at: Timestamp::from_micros(r.get(11)?),
        },
        attempts: r.get::<_, i64>(12)? as u32,
        last_error: r.get(13)?,
        status: NoticeStatus::from_name(&status).ok_or_else(|| bad(14, "status"))?,
        sent_at: r.get::<_, Option<i64>>(15)?.map(Timestamp::from_micros),
    })
}

impl OutboxStore for SqliteStore {
    fn enqueue(&mut self, notices: &[NewNotice]) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let n = enqueue_on(&tx, notices)?;
        tx.commit()?;
        Ok(n)
    }

    fn due_notices(&self, now: Timestamp, limit: u64) -> Result<Vec<Notice>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM outbox WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?"
        ))?;
        let rows = st.query_map(params![now.micros(), limit as i64], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn claim_due(
        &mut self,
        now: Timestamp,
        limit: u64,
        runner: &str,
        lease_until: Timestamp,
    ) -> Result<Vec<Notice>> {
        // IMMEDIATE takes the write lock before reading, so two runners cannot both read a
        // notice as free and both claim it.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut claimed: Vec<Notice> = {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE outbox SET claimed_by = ?1, claim_until = ?2
                 WHERE id IN (SELECT id FROM outbox
                              WHERE ((status = 'pending' AND due_at <= ?3) OR status = 'sending')
                                AND (claim_until IS NULL OR claim_until < ?3)
                              ORDER BY due_at, id LIMIT ?4)
                 RETURNING {COLS}"
            ))?;
            let rows =
                st.query_map(params![runner, lease_until.micros(), now.micros(), limit as i64], row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        tx.commit()?;
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
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: Option<(String, Option<String>, Option<i64>, bool)> = tx
            .query_row(
                "SELECT o.status, o.claimed_by, o.claim_until, COALESCE(c.state = 'closed', 0)
                 FROM outbox o LEFT JOIN cases c ON c.id = o.case_id WHERE o.id = ?",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((status, by, until, case_closed)) = found else {
            return Ok(SendCheck::Lost);
        };
        let ours = by.as_deref() == Some(runner) && until.is_some_and(|u| u >= now.micros());
        let check = match status.as_str() {
            "pending" if case_closed => {
                tx.execute(
                    "UPDATE outbox SET status = 'cancelled', last_error = 'case closed before sending', claimed_by = NULL, claim_until = NULL WHERE id = ?",
                    [id],
                )?;
                SendCheck::Cancelled
            }
            // A `sending` notice of ours is one a dead runner left and this one took over.
            "pending" | "sending" if ours => {
                tx.execute(
                    "UPDATE outbox SET status = 'sending', claim_until = ? WHERE id = ?",
                    params![lease_until.micros(), id],
                )?;
                SendCheck::Go
            }
            _ => SendCheck::Lost,
        };
        tx.commit()?;
        Ok(check)
    }

    fn mark_sent(&mut self, id: i64, runner: &str, at: Timestamp) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claim_until = NULL
             WHERE id = ? AND status = 'sending' AND claimed_by = ?",
            params![at.micros(), id, runner],
        )? == 1)
    }

    fn mark_failed(
        &mut self,
        id: i64,
        runner: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool> {
        let n = match retry_at {
            Some(t) => self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, due_at = ?, status = 'pending', claimed_by = NULL, claim_until = NULL
                 WHERE id = ? AND status IN ('pending', 'sending') AND claimed_by = ?",
                params![error, t.micros(), id, runner],
            )?,
            None => self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, status = 'failed', claimed_by = NULL, claim_until = NULL
                 WHERE id = ? AND status IN ('pending', 'sending') AND claimed_by = ?",
                params![error, id, runner],
            )?,
        };
        Ok(n == 1)
    }

    fn defer(&mut self, id: i64, runner: &str, due_at: Timestamp) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET due_at = ?, claimed_by = NULL, claim_until = NULL WHERE id = ? AND status = 'pending' AND claimed_by = ?",
            params![due_at.micros(), id, runner],
        )? == 1)
    }

    fn release(&mut self, id: i64, runner: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE id = ? AND status = 'pending' AND claimed_by = ?",
            params![id, runner],
        )? == 1)
    }

    fn sent_since(&self, recipient: &str, since: Timestamp) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE recipient = ? AND sent_at >= ?",
            params![recipient, since.micros()],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    fn notices(&self, status: Option<NoticeStatus>, limit: u64) -> Result<Vec<Notice>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = st.query_map(params![status.map(|s| s.as_str()), limit as i64], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn notice(&self, id: i64) -> Result<Option<Notice>> {
        Ok(self.conn.query_row(&format!("SELECT {COLS} FROM outbox WHERE id = ?"), [id], row).optional()?)
    }

    fn notice_by_message_id(&self, message_id: &str) -> Result<Option<Notice>> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM outbox WHERE message_id = ? ORDER BY id LIMIT 1"))?;
        Ok(st.query_row([message_id], row).optional()?)
    }

    fn notice_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            // Maintained by triggers (migration 16), not counted.
            .prepare_cached(
                "SELECT status, n FROM status_counts WHERE kind = 'notice' AND n > 0 ORDER BY status",
            )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(key: &str, due: i64) -> NewNotice {
        NewNotice {
            key: key.into(),
            message_id: format!("{key}@botwatch.test"),
            kind: "case_notice".into(),
            channel: Channel::Email,
            recipient: "abuse@example.net".into(),
            lang: "en".into(),
            org: Some("example".into()),
            case_id: Some(1),
            payload: serde_json::json!({"case": {"id": 1}}),
            created_at: Timestamp::from_secs(0),
            due_at: Timestamp::from_secs(due),
        }
    }

    #[test]
    fn one_notice_per_key_and_the_lifecycle_of_a_send() {
        for (mut s, _schema) in
            crate::testing::backends("outbox::one_notice_per_key_and_the_lifecycle_of_a_send")
        {
            let t = Timestamp::from_secs;
            assert_eq!(s.enqueue(&[notice("a", 10), notice("b", 20)]).unwrap(), 2);
            assert_eq!(s.enqueue(&[notice("a", 10)]).unwrap(), 0, "same key again: nothing new");
            assert!(s.claim_due(t(5), 10, "r1", t(65)).unwrap().is_empty());
            let due = s.claim_due(t(15), 10, "r1", t(75)).unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].notice, notice("a", 10));
            let a = due[0].id;
            assert!(s.claim_due(t(15), 10, "r2", t(75)).unwrap().is_empty(), "claimed by r1");
            assert_eq!(s.start_sending(a, "r2", t(16), t(80)).unwrap(), SendCheck::Lost);
            assert_eq!(s.start_sending(a, "r1", t(16), t(80)).unwrap(), SendCheck::Go);
            assert!(s.mark_failed(a, "r1", "421 try later", Some(t(30))).unwrap());
            assert_eq!(s.notice(a).unwrap().unwrap().status, NoticeStatus::Pending);
            assert_eq!(s.claim_due(t(25), 10, "r1", t(85)).unwrap().len(), 1, "b only");
            let again = s.claim_due(t(31), 10, "r2", t(91)).unwrap();
            assert_eq!(again.iter().map(|n| n.id).collect::<Vec<_>>(), vec![a], "b is still r1's");
            assert_eq!(s.start_sending(a, "r2", t(31), t(91)).unwrap(), SendCheck::Go);
            assert!(!s.mark_sent(a, "r1", t(31)).unwrap(), "not r1's any more");
            assert!(s.mark_sent(a, "r2", t(31)).unwrap());
            let n = s.notice(a).unwrap().unwrap();
            assert_eq!((n.status, n.attempts, n.sent_at), (NoticeStatus::Sent, 2, Some(t(31))));
            assert!(!s.mark_failed(a, "r2", "late", None).unwrap(), "a terminal state stays");
            assert_eq!(s.notice_by_message_id("a@botwatch.test").unwrap().unwrap().id, a);
            assert_eq!(s.sent_since("abuse@example.net", t(30)).unwrap(), 1);
            let b = s.notice_by_message_id("b@botwatch.test").unwrap().unwrap().id;
            assert!(s.defer(b, "r1", t(100)).unwrap());
            assert!(s.claim_due(t(40), 10, "r1", t(100)).unwrap().is_empty());
            assert_eq!(s.claim_due(t(100), 10, "r1", t(160)).unwrap().len(), 1);
            assert!(s.mark_failed(b, "r1", "550 no such user", None).unwrap());
            assert!(s.claim_due(t(200), 10, "r1", t(260)).unwrap().is_empty());
            assert_eq!(s.notices(Some(NoticeStatus::Failed), 10).unwrap().len(), 1);
        }
    }

    #[test]
    fn a_runner_that_died_mid_send_is_taken_over_after_its_lease() {
        for (mut s, _schema) in
            crate::testing::backends("outbox::a_runner_that_died_mid_send_is_taken_over_after_its_lease")
        {
            let t = Timestamp::from_secs;
            s.enqueue(&[notice("a", 0)]).unwrap();
            let a = s.claim_due(t(1), 10, "dead", t(61)).unwrap()[0].id;
            assert_eq!(s.start_sending(a, "dead", t(2), t(62)).unwrap(), SendCheck::Go);
            assert!(s.claim_due(t(50), 10, "r2", t(110)).unwrap().is_empty(), "lease still running");
            assert_eq!(s.claim_due(t(63), 10, "r2", t(123)).unwrap().len(), 1);
            assert_eq!(s.start_sending(a, "r2", t(63), t(123)).unwrap(), SendCheck::Go);
            assert!(s.mark_sent(a, "r2", t(64)).unwrap());
        }
    }
}

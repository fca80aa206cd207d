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
    Pending,
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
            NoticeStatus::Sent => "sent",
            NoticeStatus::Failed => "failed",
            NoticeStatus::Cancelled => "cancelled",
        }
    }
    pub fn from_name(s: &str) -> Option<NoticeStatus> {
        match s {
            "pending" => Some(NoticeStatus::Pending),
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

/// Outbox operations; the PostgreSQL backend implements the same.
pub trait OutboxStore {
    /// Inserts the notices whose key is new; returns how many were new.
    fn enqueue(&mut self, notices: &[NewNotice]) -> Result<u64>;
    /// Pending notices due at `now`, oldest due first.
    fn due_notices(&self, now: Timestamp, limit: u64) -> Result<Vec<Notice>>;
    /// The receiver accepted it.
    fn mark_sent(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// A failed attempt: retried at `retry_at`, or given up when `None`.
    fn mark_failed(&mut self, id: i64, error: &str, retry_at: Option<Timestamp>) -> Result<()>;
    /// Not sent now (quiet hours, rate limit) and not an attempt: due again at `due_at`.
    fn defer(&mut self, id: i64, due_at: Timestamp) -> Result<()>;
    /// Notices sent to `recipient` at or after `since` (for per-recipient rate limits).
    fn sent_since(&self, recipient: &str, since: Timestamp) -> Result<u64>;
    /// Newest first, optionally only one status.
    fn notices(&self, status: Option<NoticeStatus>, limit: u64) -> Result<Vec<Notice>>;
    fn notice(&self, id: i64) -> Result<Option<Notice>>;
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

    fn mark_sent(&mut self, id: i64, at: Timestamp) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
            params![at.micros(), id],
        )?;
        Ok(())
    }

    fn mark_failed(&mut self, id: i64, error: &str, retry_at: Option<Timestamp>) -> Result<()> {
        match retry_at {
            Some(t) => self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, due_at = ? WHERE id = ?",
                params![error, t.micros(), id],
            )?,
            None => self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, status = 'failed' WHERE id = ?",
                params![error, id],
            )?,
        };
        Ok(())
    }

    fn defer(&mut self, id: i64, due_at: Timestamp) -> Result<()> {
        self.conn.execute("UPDATE outbox SET due_at = ? WHERE id = ?", params![due_at.micros(), id])?;
        Ok(())
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

    fn notice_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

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
        let mut s = SqliteStore::open_in_memory(StoreConfig::default()).unwrap();
        assert_eq!(s.enqueue(&[notice("a", 10), notice("b", 20)]).unwrap(), 2);
        assert_eq!(s.enqueue(&[notice("a", 10)]).unwrap(), 0, "same key again: nothing new");
        assert!(s.due_notices(Timestamp::from_secs(5), 10).unwrap().is_empty());
        let due = s.due_notices(Timestamp::from_secs(15), 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].notice, notice("a", 10));
        s.mark_failed(due[0].id, "421 try later", Some(Timestamp::from_secs(30))).unwrap();
        assert_eq!(s.due_notices(Timestamp::from_secs(25), 10).unwrap().len(), 1, "b only");
        s.mark_sent(due[0].id, Timestamp::from_secs(31)).unwrap();
        let n = s.notice(due[0].id).unwrap().unwrap();
        assert_eq!((n.status, n.attempts), (NoticeStatus::Sent, 2));
        assert_eq!(s.sent_since("abuse@example.net", Timestamp::from_secs(30)).unwrap(), 1);
        let b = s.due_notices(Timestamp::from_secs(40), 10).unwrap()[0].id;
        s.defer(b, Timestamp::from_secs(100)).unwrap();
        assert!(s.due_notices(Timestamp::from_secs(40), 10).unwrap().is_empty());
        s.mark_failed(b, "550 no such user", None).unwrap();
        assert!(s.due_notices(Timestamp::from_secs(200), 10).unwrap().is_empty());
        assert_eq!(s.notices(Some(NoticeStatus::Failed), 10).unwrap().len(), 1);
    }
}

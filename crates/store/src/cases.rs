//! Case persistence: cases, their history, exposures seen by scan feeds, and the case
//! engine's event cursor.
//!
//! The state machine lives in `botwatch-cases`; this module only stores what it decides.
//! A batch of decisions is applied through one [`CaseTx`]: case rows, history rows, the
//! notices they cause (via [`crate::outbox::enqueue_on`]) and the cursor move commit
//! together or not at all, so a crash can neither lose a notice nor send one for a change
//! that was rolled back.

use crate::filter::Arg;
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError, ip_key, key_ip};
use botwatch_model::{Case, CaseState, CloseReason, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter, types::Value as Sql};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// One sighting as quoted in a notice (the `evidence` items of a `case_notice` payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub event_id: i64,
    pub time: Timestamp,
    pub feed: String,
    pub ip: String,
    pub port: Option<u16>,
    pub classification_type: String,
    pub malware: Option<String>,
    pub destination: Option<String>,
}

/// A case with what the engine keeps beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRecord {
    pub case: Case,
    /// The latest sightings, newest last.
    pub recent: Vec<Evidence>,
    /// Earliest instant a time-driven transition may be due; `None` when closed.
    pub next_check: Option<Timestamp>,
}

/// One row of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub case_id: i64,
    pub at: Timestamp,
    /// `engine` for automatic transitions, the operator's name otherwise.
    pub actor: String,
    /// `opened`, `notified`, `renotified`, `escalated`, `walled_garden`, `acknowledged`,
    /// `closed`, `reopened`.
    pub action: String,
    pub from: Option<CaseState>,
    pub to: CaseState,
    pub level: u8,
    pub detail: String,
}

/// An exposed vulnerable service reported by a scan feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub event_id: i64,
    pub time: Timestamp,
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub subscriber: Option<String>,
    pub org: Option<String>,
    pub classification_type: String,
    /// `classification.identifier` (e.g. `open-telnet`), when the feed gave one.
    pub identifier: Option<String>,
}

/// Filters for listing cases; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub state: Option<CaseState>,
    pub open_only: bool,
    pub org: Option<String>,
    pub subscriber: Option<String>,
    pub ip: Option<IpAddr>,
    /// Cursor: only cases with an id greater than this (with [`CaseOrder::Id`]).
    pub after_id: Option<i64>,
    pub limit: Option<u64>,
    /// Only cases whose threat (family or type) contains this, case-insensitively.
    pub threat: Option<String>,
    /// Only cases attributed to an organisation of the constituency.
    pub constituency_only: bool,
    pub order: CaseOrder,
    /// Rows skipped (paging in [`CaseOrder::Desk`]).
    pub offset: u64,
}

/// The order cases are listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseOrder {
    /// Oldest first, by id (stable, for cursors and exports).
    #[default]
    Id,
    /// How a desk works a queue: its own constituency's cases first, then the most
    /// escalated, then the newest evidence.
    Desk,
}

/// What compliance figures need of one case, read without the rest of it (a million
/// cases' figures are a fraction of their rows).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFigures {
    pub org: Option<String>,
    pub open: bool,
    pub dismissed: bool,
    pub first_seen: Timestamp,
    /// When a transport first accepted a notice about the case (not when one was queued).
    pub first_sent_at: Option<Timestamp>,
    /// A notice was queued but none has been accepted yet.
    pub queued: bool,
    pub closed_at: Option<Timestamp>,
    pub reinfections: u32,
}

impl From<&Case> for CaseFigures {
    fn from(c: &Case) -> Self {
        CaseFigures {
            org: c.org.clone(),
            open: c.state.is_open(),
            dismissed: c.close_reason == Some(CloseReason::Dismissed),
            first_seen: c.first_seen,
            first_sent_at: c.first_sent_at,
            queued: c.first_notified_at.is_some() && c.first_sent_at.is_none(),
            closed_at: c.closed_at,
            reinfections: c.reinfections,
        }
    }
}

/// Case operations; a PostgreSQL backend implements the same.
pub trait CaseStore {
    /// Starts one atomic batch of case changes. Dropping it without `commit` rolls back.
    fn case_tx(&mut self) -> Result<Box<dyn CaseTx + '_>>;
    /// Last event id the engine processed.
    fn case_cursor(&self) -> Result<i64>;
    fn case(&self, id: i64) -> Result<Option<CaseRecord>>;
    /// Ordered by id.
    fn cases(&self, q: &CaseQuery) -> Result<Vec<Case>>;
    fn case_history(&self, id: i64) -> Result<Vec<HistoryEntry>>;
    /// Exposures of a subscriber or an address (either matches) at or after `since`.
    fn exposures(
        &self,
        subscriber: Option<&str>,
        ip: Option<IpAddr>,
        since: Timestamp,
    ) -> Result<Vec<Exposure>>;
    /// Every address the self-check portal has something to say about: an open case, an
    /// infected-system observation seen at or after `since`, or an exposure since then.
    /// As 16-byte keys (IPv4 mapped into IPv6).
    fn flagged_addresses(&self, since: Timestamp) -> Result<Vec<[u8; 16]>>;
    /// Every case's [`CaseFigures`].
    fn case_figures(&self) -> Result<Vec<CaseFigures>>;
    /// Cases not closed, counted without reading them.
    fn open_case_count(&self) -> Result<u64>;
    /// Changes whenever a case is opened, changes state, is notified or gets evidence: what
    /// is computed from all cases (compliance figures) can be cached under it. Cheap.
    fn cases_generation(&self) -> Result<String>;
}

/// One open transaction of case changes.
pub trait CaseTx {
    fn cursor(&mut self) -> Result<i64>;
    fn set_cursor(&mut self, last_event_id: i64) -> Result<()>;
    /// The cases with these keys (any state).
    fn by_keys(&mut self, keys: &[&str]) -> Result<Vec<CaseRecord>>;
    fn by_id(&mut self, id: i64) -> Result<Option<CaseRecord>>;
    /// Cases whose `next_check` is at or before `now`, earliest first.
    fn due(&mut self, now: Timestamp, limit: u64) -> Result<Vec<CaseRecord>>;
    /// An id no case has; the engine numbers the cases it opens from here.
    fn next_case_id(&mut self) -> Result<i64>;
    /// Inserts or replaces by id.
    fn save(&mut self, r: &CaseRecord) -> Result<()>;
    fn append_history(&mut self, h: &[HistoryEntry]) -> Result<()>;
    /// Ignores exposures whose event id is stored already.
    fn add_exposures(&mut self, e: &[Exposure]) -> Result<()>;
    /// Enqueues on the outbox inside this transaction; returns how many keys were new.
    fn enqueue(&mut self, n: &[crate::outbox::NewNotice]) -> Result<u64>;
    fn commit(self: Box<Self>) -> Result<()>;
}

const COLS: &str = "id, key, state, level, org, subscriber, ip, threat, type, opened_at, first_seen, last_seen, evidence, \
     evidence_at_notice, notices, episode_notices, first_notified_at, last_notified_at, acknowledged_at, escalated_at, \
     stage_since, closed_at, close_reason, reinfections, last_event_id, recent, next_check";
/// `COLS` for listings, which return `Case` and drop the recent sightings: not reading and
/// parsing that JSON is most of a portal look-up's case query.
const LIST_COLS: &str = "id, key, state, level, org, subscriber, ip, threat, type, opened_at, first_seen, last_seen, evidence, \
     evidence_at_notice, notices, episode_notices, first_notified_at, last_notified_at, acknowledged_at, escalated_at, \
     stage_since, closed_at, close_reason, reinfections, last_event_id, '[]', next_check";

/// What was delivered for a case, read from the outbox beside the case's own columns for
/// what users see (the engine's reads go without): notices a transport accepted and when the
/// first was. The case's own `notices`/`first_notified_at` count what was *queued*.
const DELIVERY: &str = ", (SELECT COUNT(*) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'), \
     (SELECT MIN(o.sent_at) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'), \
     (SELECT COUNT(*) FROM outbox o WHERE o.case_id = cases.id AND o.status IN ('pending', 'sending'))";

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_micros)
}

/// A case row by `id` (`?1`), every column but `id` and `key` from the parameters in `COLS`
/// order. The key never changes, so its unique index is left alone.
static UPDATE_CASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let set: Vec<String> = COLS
        .split(", ")
        .map(str::trim)
        .enumerate()
        .filter(|(_, c)| !matches!(*c, "id" | "key"))
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    format!("UPDATE cases SET {} WHERE id = ?1", set.join(", "))
});

/// [`UPDATE_CASE`] for a row whose indexed columns stay as they are: only the others are
/// set, so SQLite leaves every index of the row alone. It changes nothing (and the full
/// update runs) unless `next_check` is what the writer believes it is; it also makes `?27`,
/// the last parameter, part of the statement, so both take the same parameters.
static UPDATE_CASE_UNINDEXED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let set: Vec<String> = COLS
        .split(", ")
        .map(str::trim)
        .enumerate()
        .filter(|(_, c)| !matches!(*c, "id" | "key" | "state" | "org" | "subscriber" | "ip" | "next_check"))
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    let next_check = COLS.split(", ").position(|c| c.trim() == "next_check").map_or(0, |i| i + 1);
    format!("UPDATE cases SET {} WHERE id = ?1 AND next_check IS ?{next_check}", set.join(", "))
});

/// A new case row, the parameters in `COLS` order.
static INSERT_CASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let marks: Vec<String> = (1..=COLS.split(", ").count()).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO cases ({COLS}) VALUES ({})", marks.join(","))
});

/// No case's recent sightings decompress to more than this (ten sightings are ~1.2 KB).
const MAX_RECENT: usize = 1 << 20;

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRecord> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
    };
    let state: String = r.get(2)?;
    let close: Option<String> = r.get(22)?;
    let ip: Option<Vec<u8>> = r.get(6)?;
    // JSON text, or (written since schema 16) the same JSON zstd-compressed as a blob.
    let recent: Vec<u8> = match r.get_ref(25)? {
        rusqlite::types::ValueRef::Text(t) => t.to_vec(),
        rusqlite::types::ValueRef::Blob(b) => crate::blocks::zstd_decompress(b, MAX_RECENT)
            .map_err(|e| bad(25, format!("recent sightings: {e}")))?,
        _ => b"[]".to_vec(),
    };
    let delivery = r.as_ref().column_count() > 27;
    Ok(CaseRecord {
        case: Case {
            id: r.get(0)?,
            key: r.get(1)?,
            state: CaseState::from_name(&state).ok_or_else(|| bad(2, format!("unknown state {state:?}")))?,
            level: r.get::<_, i64>(3)?.clamp(0, u8::MAX as i64) as u8,
            org: r.get(4)?,
            subscriber: r.get(5)?,
            ip: ip.and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok()).map(key_ip),
            threat: r.get(7)?,
            classification_type: r.get(8)?,
            opened_at: Timestamp::from_micros(r.get(9)?),
            first_seen: Timestamp::from_micros(r.get(10)?),
            last_seen: Timestamp::from_micros(r.get(11)?),
            evidence: r.get::<_, i64>(12)? as u64,
            evidence_at_notice: r.get::<_, i64>(13)? as u64,
            notices: r.get::<_, i64>(14)? as u32,
            episode_notices: r.get::<_, i64>(15)? as u32,
            first_notified_at: ts(r.get(16)?),
            last_notified_at: ts(r.get(17)?),
            acknowledged_at: ts(r.get(18)?),
            escalated_at: ts(r.get(19)?),
            stage_since: ts(r.get(20)?),
            closed_at: ts(r.get(21)?),
            close_reason: match close {
                Some(c) => {
                    Some(CloseReason::from_name(&c).ok_or_else(|| bad(22, format!("unknown reason {c:?}")))?)
                }
                None => None,
            },
            reinfections: r.get::<_, i64>(23)? as u32,
            last_event_id: r.get(24)?,
            notices_sent: if delivery { r.get::<_, i64>(27)?.clamp(0, u32::MAX as i64) as u32 } else { 0 },
            first_sent_at: if delivery { ts(r.get(28)?) } else { None },
            notices_queued: if delivery { r.get::<_, i64>(29)?.clamp(0, u32::MAX as i64) as u32 } else { 0 },
        },
        // Sorted on read too: rows written before evidence was kept in order.
        recent: {
            let mut v: Vec<Evidence> = serde_json::from_slice(&recent).map_err(|e| bad(25, e.to_string()))?;
            v.sort_by_key(|e| (e.time, e.event_id));
            v
        },
        next_check: ts(r.get(26)?),
    })
}

struct SqliteCaseTx<'s> {
    tx: Transaction<'s>,
    /// Cases that changed state in this transaction, as (state, change in count), written
    /// to `status_counts` at commit. Kept here rather than by a trigger: a trigger makes
    /// SQLite keep a statement journal for every case written, a tenth of a bulk update.
    moved: HashMap<&'static str, i64>,
    /// The indexed columns of each case read in this transaction, as read (or last saved):
    /// a save that leaves them as they were updates the row without touching its indexes
    /// (most saves in a bulk update only add evidence), and knows the row exists and its
    /// state without reading it again.
    loaded: HashMap<i64, Indexed>,
}

/// A case row's columns that its indexes hold (other than the key, which never changes).
#[derive(PartialEq, Eq)]
struct Indexed {
    state: &'static str,
    org: Option<String>,
    subscriber: Option<String>,
    ip: Option<[u8; 16]>,
    next_check: Option<i64>,
}

impl Indexed {
    fn of(r: &CaseRecord) -> Indexed {
        let c = &r.case;
        Indexed {
            state: c.state.as_str(),
            org: c.org.clone(),
            subscriber: c.subscriber.clone(),
            ip: c.ip.map(ip_key),
            next_check: r.next_check.map(|t| t.micros()),
        }
    }
}

impl SqliteCaseTx<'_> {
    fn remember(&mut self, rows: &[CaseRecord]) {
        for r in rows {
            self.loaded.insert(r.case.id, Indexed::of(r));
        }
    }
}

impl CaseTx for SqliteCaseTx<'_> {
    fn cursor(&mut self) -> Result<i64> {
        Ok(self.tx.query_row("SELECT last_event_id FROM case_cursor WHERE id = 1", [], |r| r.get(0))?)
    }

    fn set_cursor(&mut self, last_event_id: i64) -> Result<()> {
        self.tx.execute("UPDATE case_cursor SET last_event_id = ? WHERE id = 1", [last_event_id])?;
        Ok(())
    }

    fn by_keys(&mut self, keys: &[&str]) -> Result<Vec<CaseRecord>> {
        let mut out = Vec::with_capacity(keys.len());
        // Chunks of a fixed size reuse one cached statement; the last one is padded.
        const CHUNK: usize = 256;
        let marks = vec!["?"; CHUNK].join(",");
        let sql = format!("SELECT {COLS} FROM cases WHERE key IN ({marks})");
        let mut st = self.tx.prepare_cached(&sql)?;
        for chunk in keys.chunks(CHUNK) {
            let args = (0..CHUNK).map(|i| Sql::Text(chunk.get(i).unwrap_or(&chunk[0]).to_string()));
            let rows = st.query_map(params_from_iter(args), row)?;
            for r in rows {
                out.push(r?);
            }
        }
        drop(st);
        self.remember(&out);
        Ok(out)
    }

    fn by_id(&mut self, id: i64) -> Result<Option<CaseRecord>> {
        let r = self.tx.query_row(&format!("SELECT {COLS} FROM cases WHERE id = ?"), [id], row).optional()?;
        self.remember(r.as_slice());
        Ok(r)
    }

    fn due(&mut self, now: Timestamp, limit: u64) -> Result<Vec<CaseRecord>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COLS} FROM cases WHERE next_check IS NOT NULL AND next_check <= ? ORDER BY next_check, id LIMIT ?"
        ))?;
        let rows: Vec<CaseRecord> = st
            .query_map(params![now.micros(), limit.min(i64::MAX as u64) as i64], row)?
            .collect::<rusqlite::Result<_>>()?;
        drop(st);
        self.remember(&rows);
        Ok(rows)
    }

    fn next_case_id(&mut self) -> Result<i64> {
        Ok(self.tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM cases", [], |r| r.get(0))?)
    }

    fn save(&mut self, r: &CaseRecord) -> Result<()> {
        let c = &r.case;
        let json = serde_json::to_vec(&r.recent).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The recent sightings are most of a case row (~1.2 KB of JSON for ten), and a
        // batch rewrites every case it touches: compressed, a third of the bytes go through
        // the write-ahead log and the checkpoint. Short lists stay text.
        let recent = if json.len() > 256 {
            Sql::Blob(
                crate::blocks::zstd_compress(&json).map_err(|e| StoreError::Corrupt(format!("zstd: {e}")))?,
            )
        } else {
            Sql::Text(String::from_utf8(json).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        };
        let indexed = Indexed::of(r);
        let old: Option<&'static str> = match self.loaded.get(&c.id) {
            Some(i) => Some(i.state),
            None => self
                .tx
                .prepare_cached("SELECT state FROM cases WHERE id = ?")?
                .query_row([c.id], |r| r.get::<_, String>(0))
                .optional()?
                .map(|o| CaseState::from_name(&o).map(CaseState::as_str).unwrap_or("unknown")),
        };
        // An update in place, not `INSERT OR REPLACE`: a replace deletes the row and inserts
        // it again, rewriting every index, for each case a batch touches.
        let unindexed = old.is_some() && self.loaded.get(&c.id) == Some(&indexed);
        let sql = match old {
            None => &*INSERT_CASE,
            Some(_) if unindexed => &*UPDATE_CASE_UNINDEXED,
            Some(_) => &*UPDATE_CASE,
        };
        let new_state = c.state.as_str();
        if old != Some(new_state) {
            if let Some(o) = old {
                *self.moved.entry(o).or_default() -= 1;
            }
            *self.moved.entry(new_state).or_default() += 1;
        }
        self.loaded.insert(c.id, indexed);
        let m = |t: Option<Timestamp>| t.map(|t| t.micros());
        let args = params![
            c.id,
            c.key,
            c.state.as_str(),
            c.level as i64,
            c.org,
            c.subscriber,
            c.ip.map(|ip| ip_key(ip).to_vec()),
            c.threat,
            c.classification_type,
            c.opened_at.micros(),
            c.first_seen.micros(),
            c.last_seen.micros(),
            c.evidence.min(i64::MAX as u64) as i64,
            c.evidence_at_notice.min(i64::MAX as u64) as i64,
            c.notices as i64,
            c.episode_notices as i64,
            m(c.first_notified_at),
            m(c.last_notified_at),
            m(c.acknowledged_at),
            m(c.escalated_at),
            m(c.stage_since),
            m(c.closed_at),
            c.close_reason.map(|x| x.as_str()),
            c.reinfections as i64,
            c.last_event_id,
            recent,
            m(r.next_check),
        ];
        let changed = self.tx.prepare_cached(sql)?.execute(args)?;
        if changed == 0 && unindexed {
            // `next_check` was not what this transaction read: set every column.
            self.tx.prepare_cached(&UPDATE_CASE)?.execute(args)?;
        }
        if c.state == botwatch_model::CaseState::Closed {
            // A notice still waiting (delay, quiet hours, rate limit) must not tell someone
            // about an infection the desk has just closed.
            self.tx.execute(
                "UPDATE outbox SET status = 'cancelled', last_error = 'case closed before sending' WHERE case_id = ? AND status = 'pending'",
                [c.id],
            )?;
        }
        Ok(())
    }

    fn append_history(&mut self, h: &[HistoryEntry]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO case_history (case_id, at, actor, action, from_state, to_state, level, detail) VALUES (?,?,?,?,?,?,?,?)",
        )?;
        for x in h {
            st.execute(params![
                x.case_id,
                x.at.micros(),
                x.actor,
                x.action,
                x.from.map(|s| s.as_str()),
                x.to.as_str(),
                x.level as i64,
                x.detail
            ])?;
        }
        Ok(())
    }

    fn add_exposures(&mut self, e: &[Exposure]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO case_exposures (event_id, time, ip, port, subscriber, org, type, identifier) VALUES (?,?,?,?,?,?,?,?)",
        )?;
        for x in e {
            st.execute(params![
                x.event_id,
                x.time.micros(),
                ip_key(x.ip).to_vec(),
                x.port,
                x.subscriber,
                x.org,
                x.classification_type,
                x.identifier
            ])?;
        }
        Ok(())
    }

    fn enqueue(&mut self, n: &[crate::outbox::NewNotice]) -> Result<u64> {
        crate::outbox::enqueue_on(&self.tx, n)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        for (state, by) in &self.moved {
            if *by != 0 {
                self.tx.execute(
                    "INSERT INTO status_counts (kind, status, n) VALUES ('case', ?1, ?2)
                     ON CONFLICT(kind, status) DO UPDATE SET n = n + ?2",
                    params![state, by],
                )?;
            }
        }
        self.tx.commit()?;
        Ok(())
    }
}

fn history_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let from: Option<String> = r.get(4)?;
    let to: String = r.get(5)?;
    let bad = |i: usize| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, "unknown state".into())
    };
    Ok(HistoryEntry {
        case_id: r.get(0)?,
        at: Timestamp::from_micros(r.get(1)?),
        actor: r.get(2)?,
        action: r.get(3)?,
        from: match from {
            Some(f) => Some(CaseState::from_name(&f).ok_or_else(|| bad(4))?),
            None => None,
        },
        to: CaseState::from_name(&to).ok_or_else(|| bad(5))?,
        level: r.get::<_, i64>(6)?.clamp(0, u8::MAX as i64) as u8,
        detail: r.get(7)?,
    })
}

/// The WHERE conditions of a case listing (`?` marks) and their arguments: the same on both
/// backends.
pub(crate) fn case_conditions(q: &CaseQuery) -> (Vec<&'static str>, Vec<Arg>) {
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    if let Some(s) = q.state {
        conds.push("state = ?");
        args.push(Arg::Text(s.as_str().into()));
    }
    if q.open_only {
        conds.push("state != 'closed'");
    }
    if let Some(o) = &q.org {
        conds.push("org = ?");
        args.push(Arg::Text(o.clone()));
    }
    if let Some(s) = &q.subscriber {
        conds.push("subscriber = ?");
        args.push(Arg::Text(s.clone()));
    }
    if let Some(ip) = q.ip {
        conds.push("ip = ?");
        args.push(Arg::Blob(ip_key(ip).to_vec()));
    }
    if let Some(a) = q.after_id {
        conds.push("id > ?");
        args.push(Arg::Int(a));
    }
    if let Some(t) = q.threat.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        conds.push("threat LIKE ? ESCAPE '\\'");
        let esc = t.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        args.push(Arg::Text(format!("%{esc}%")));
    }
    if q.constituency_only {
        conds.push("org IS NOT NULL");
    }
    (conds, args)
}

impl CaseStore for SqliteStore {
    fn case_tx(&mut self) -> Result<Box<dyn CaseTx + '_>> {
        // Immediate: the engine reads cases and then writes them; taking the write lock
        // first means a second writer waits instead of failing with SQLITE_BUSY mid-batch.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Box::new(SqliteCaseTx { tx, moved: HashMap::new(), loaded: HashMap::new() }))
    }

    fn case_cursor(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT last_event_id FROM case_cursor WHERE id = 1", [], |r| r.get(0))?)
    }

    fn case(&self, id: i64) -> Result<Option<CaseRecord>> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {COLS}{DELIVERY} FROM cases WHERE id = ?"), [id], row)
            .optional()?)
    }

    fn cases(&self, q: &CaseQuery) -> Result<Vec<Case>> {
        let (conds, args) = case_conditions(q);
        let args = crate::sqlite::sql_args(args);
        let wh = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let limit = q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
        // One address's or subscriber's cases are few: read them unordered and sort here.
        // With ORDER BY, SQLite (built with STAT4) re-prepares the cached statement on every
        // new binding of the address, which was a sixth of a portal look-up.
        let few = q.ip.is_some() || q.subscriber.is_some();
        let tail = match (few, q.order) {
            (true, _) => String::new(),
            (false, CaseOrder::Id) => format!("ORDER BY id LIMIT {limit} OFFSET {}", q.offset),
            (false, CaseOrder::Desk) => {
                format!(
                    "ORDER BY org IS NULL, level DESC, last_seen DESC, id DESC LIMIT {limit} OFFSET {}",
                    q.offset
                )
            }
        };
        let mut st =
            self.conn.prepare_cached(&format!("SELECT {LIST_COLS}{DELIVERY} FROM cases {wh} {tail}"))?;
        let rows = st.query_map(params_from_iter(args), |r| row(r).map(|x| x.case))?;
        let mut out: Vec<Case> = rows.collect::<rusqlite::Result<_>>()?;
        if few {
            match q.order {
                CaseOrder::Id => out.sort_by_key(|c| c.id),
                CaseOrder::Desk => out.sort_by_key(|c| {
                    (
                        c.org.is_none(),
                        std::cmp::Reverse(c.level),
                        std::cmp::Reverse(c.last_seen),
                        std::cmp::Reverse(c.id),
                    )
                }),
            }
            let skip = q.offset.min(out.len() as u64) as usize;
            out.drain(..skip);
            out.truncate(limit.min(usize::MAX as u64) as usize);
        }
        Ok(out)
    }

    fn case_history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT case_id, at, actor, action, from_state, to_state, level, detail FROM case_history WHERE case_id = ? ORDER BY id",
        )?;
        let rows = st.query_map([id], history_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flagged_addresses(&self, since: Timestamp) -> Result<Vec<[u8; 16]>> {
        let mut st = self.conn.prepare_cached(
            "SELECT ip FROM observations WHERE last_seen >= ?1 AND type = 'infected-system' AND ip IS NOT NULL
             UNION SELECT ip FROM cases WHERE state != 'closed' AND ip IS NOT NULL
             UNION SELECT ip FROM case_exposures WHERE time >= ?1",
        )?;
        let rows = st.query_map([since.micros()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            if let Ok(k) = <[u8; 16]>::try_from(b?.as_slice()) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn case_figures(&self) -> Result<Vec<CaseFigures>> {
        let mut st = self.conn.prepare(
            "SELECT org, state != 'closed', close_reason IS 'dismissed', first_seen,
                    (SELECT MIN(o.sent_at) FROM outbox o WHERE o.case_id = cases.id AND o.status = 'sent'),
                    closed_at, reinfections, first_notified_at IS NOT NULL FROM cases",
        )?;
        let rows = st.query_map([], |r| {
            let first_sent_at = ts(r.get(4)?);
            Ok(CaseFigures {
                org: r.get(0)?,
                open: r.get(1)?,
                dismissed: r.get(2)?,
                first_seen: Timestamp(r.get(3)?),
                first_sent_at,
                queued: first_sent_at.is_none() && r.get::<_, bool>(7)?,
                closed_at: ts(r.get(5)?),
                reinfections: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn open_case_count(&self) -> Result<u64> {
        Ok(self
            .conn
            // Maintained by the case writer (`SqliteCaseTx::commit`), not counted.
            .query_row(
                "SELECT COALESCE(SUM(n), 0) FROM status_counts WHERE kind = 'case' AND status != 'closed'",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
    }

    fn cases_generation(&self) -> Result<String> {
        // History ids and case ids only grow (rowids, never deleted); every transition
        // appends history, evidence moves the engine's cursor, and a delivery sets a
        // newer `sent_at` (compliance counts only delivered notices).
        Ok(self.conn.query_row(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM case_history) || ':' || (SELECT COALESCE(MAX(id), 0) FROM cases)
                    || ':' || (SELECT last_event_id FROM case_cursor WHERE id = 1)
                    || ':' || (SELECT COALESCE(MAX(sent_at), 0) FROM outbox)",
            [],
            |r| r.get(0),
        )?)
    }

    fn exposures(
        &self,
        subscriber: Option<&str>,
        ip: Option<IpAddr>,
        since: Timestamp,
    ) -> Result<Vec<Exposure>> {
        // One statement per shape: each uses its index.
        let (cond, args) = match (subscriber, ip) {
            (Some(s), Some(ip)) => (
                "(subscriber = ?2 OR ip = ?3)",
                vec![Sql::Text(s.to_string()), Sql::Blob(ip_key(ip).to_vec())],
            ),
            (Some(s), None) => ("subscriber = ?2", vec![Sql::Text(s.to_string())]),
            (None, Some(ip)) => ("ip = ?2", vec![Sql::Blob(ip_key(ip).to_vec())]),
            (None, None) => return Ok(Vec::new()),
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT event_id, time, ip, port, subscriber, org, type, identifier FROM case_exposures
             WHERE time >= ?1 AND {cond}"
        ))?;
        let args: Vec<Sql> = std::iter::once(Sql::Integer(since.micros())).chain(args).collect();
        let rows = st.query_map(params_from_iter(args), |r| {
            let b: Vec<u8> = r.get(2)?;
            let ip = <[u8; 16]>::try_from(b.as_slice()).map(key_ip).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Blob,
                    "address is not 16 bytes".into(),
                )
            })?;
            Ok(Exposure {
                event_id: r.get(0)?,
                time: Timestamp::from_micros(r.get(1)?),
                ip,
                port: r.get(3)?,
                subscriber: r.get(4)?,
                org: r.get(5)?,
                classification_type: r.get(6)?,
                identifier: r.get(7)?,
            })
        })?;
        // Sorted here, not by ORDER BY (see `cases`).
        let mut out: Vec<Exposure> = rows.collect::<rusqlite::Result<_>>()?;
        out.sort_by_key(|e| (e.time, e.event_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: i64, key: &str) -> Case {
        let mut c =
            Case::new(id, key.into(), "mirai".into(), "infected-system".into(), Timestamp::from_secs(100));
        c.org = Some("org-a".into());
        c.ip = Some("192.0.2.7".parse().unwrap());
        c.first_seen = Timestamp::from_secs(90);
        c.last_seen = Timestamp::from_secs(95);
        c.evidence = 2;
        c.last_event_id = Some(7);
        c
    }

    #[test]
    fn listing_columns_are_the_record_columns_without_recent() {
        assert_eq!(LIST_COLS.replace("'[]'", "recent"), COLS);
    }

    #[test]
    fn cases_roundtrip_and_due_selects_by_next_check() {
        for (mut s, _schema) in
            crate::testing::backends("cases::cases_roundtrip_and_due_selects_by_next_check")
        {
            let mut tx = s.case_tx().unwrap();
            assert_eq!(tx.next_case_id().unwrap(), 1);
            let mut a = CaseRecord {
                case: case(1, "ip:192.0.2.7|mirai"),
                recent: vec![],
                next_check: Some(Timestamp::from_secs(200)),
            };
            a.case.close_reason = Some(CloseReason::Silent);
            let mut b = CaseRecord { case: case(2, "ip:192.0.2.8|mirai"), recent: vec![], next_check: None };
            b.case.ip = Some("192.0.2.8".parse().unwrap());
            tx.save(&a).unwrap();
            tx.save(&b).unwrap();
            tx.set_cursor(42).unwrap();
            tx.append_history(&[HistoryEntry {
                case_id: 1,
                at: Timestamp::from_secs(100),
                actor: "engine".into(),
                action: "opened".into(),
                from: None,
                to: CaseState::Detected,
                level: 0,
                detail: String::new(),
            }])
            .unwrap();
            assert_eq!(tx.due(Timestamp::from_secs(199), 10).unwrap().len(), 0);
            assert_eq!(tx.due(Timestamp::from_secs(200), 10).unwrap(), vec![a.clone()]);
            let got = tx.by_keys(&["ip:192.0.2.8|mirai", "nope"]).unwrap();
            assert_eq!(got, vec![b.clone()]);
            tx.commit().unwrap();
            assert_eq!(s.case_cursor().unwrap(), 42);
            assert_eq!(s.case(1).unwrap().unwrap(), a);
            assert_eq!(s.case_history(1).unwrap().len(), 1);
            let q = CaseQuery { ip: Some("192.0.2.8".parse().unwrap()), ..Default::default() };
            assert_eq!(s.cases(&q).unwrap(), vec![b.case]);
        }
    }

    #[test]
    fn dropping_a_case_tx_rolls_back() {
        for (mut s, _schema) in crate::testing::backends("cases::dropping_a_case_tx_rolls_back") {
            {
                let mut tx = s.case_tx().unwrap();
                tx.save(&CaseRecord { case: case(1, "k"), recent: vec![], next_check: None }).unwrap();
                tx.set_cursor(9).unwrap();
            }
            assert!(s.case(1).unwrap().is_none());
            assert_eq!(s.case_cursor().unwrap(), 0);
        }
    }
}

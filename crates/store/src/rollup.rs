//! The per-day rollup of stored events (table `event_days`), kept up to date by the report
//! writer in the report's own transaction. Statistics and the dashboard read a few
//! thousand rows of it instead of scanning millions of events: one row per day and
//! (classification type, family, feed, ASN, country), with the event count and a
//! [`Sketch`] of the distinct subjects, so "infected addresses per family over 90 days"
//! counts an address seen on many days once.

use crate::sketch::{QUERY_EXACT, STORED_EXACT, Sketch};
use crate::{EventQuery, GroupBy, Result, StatRow, StoreError};
use botwatch_model::Timestamp;
use rusqlite::{Connection, params, params_from_iter, types::Value as Sql};
use std::collections::HashMap;

pub const DAY_US: i64 = 86_400_000_000;

/// Days since 1970-01-01 (UTC) of an instant in microseconds.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_US)
}

struct Cell {
    day: i64,
    ty: String,
    family: String,
    feed: String,
    /// −1 when unknown: primary-key columns cannot be NULL.
    asn: i64,
    cc: String,
    events: i64,
    subjects: Sketch,
}

impl Cell {
    fn is(&self, day: i64, ty: &str, family: &str, feed: &str, asn: i64, cc: &str) -> bool {
        self.day == day
            && self.asn == asn
            && self.ty == ty
            && self.family == family
            && self.feed == feed
            && self.cc == cc
    }
}

/// The cells one report (or the backfill) touched, merged into the table on flush.
#[derive(Default)]
pub(crate) struct DayCells {
    /// Hash of the cell key → index in `cells`; a key whose hash is taken (never seen in
    /// practice, but possible) goes to `spill` and is found by comparison.
    index: HashMap<u64, usize>,
    spill: Vec<usize>,
    cells: Vec<Cell>,
}

impl DayCells {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        time: i64,
        ty: &str,
        family: &str,
        feed: &str,
        asn: Option<i64>,
        cc: &str,
        subject: Option<&str>,
    ) {
        let day = day_of(time);
        let asn = asn.unwrap_or(-1);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&day.to_le_bytes());
        h.update(&asn.to_le_bytes());
        for s in [ty, family, feed, cc] {
            h.update(s.as_bytes());
            h.update(&[0xff]);
        }
        let key = h.digest();
        let found = match self.index.get(&key) {
            Some(&i) if self.cells[i].is(day, ty, family, feed, asn, cc) => Some(i),
            Some(_) => self.spill.iter().copied().find(|&i| self.cells[i].is(day, ty, family, feed, asn, cc)),
            None => None,
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.cells.push(Cell {
                    day,
                    ty: ty.to_string(),
                    family: family.to_string(),
                    feed: feed.to_string(),
                    asn,
                    cc: cc.to_string(),
                    events: 0,
                    subjects: Sketch::new(STORED_EXACT),
                });
                let i = self.cells.len() - 1;
                match self.index.entry(key) {
                    std::collections::hash_map::Entry::Occupied(_) => self.spill.push(i),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(i);
                    }
                }
                i
            }
        };
        let c = &mut self.cells[i];
        c.events += 1;
        if let Some(s) = subject {
            c.subjects.insert(Sketch::hash(s.as_bytes()));
        }
    }

    /// Adds the cells to what the table holds.
    pub(crate) fn flush(&mut self, conn: &Connection) -> Result<()> {
        let mut get = conn.prepare_cached(
            "SELECT events, subjects FROM event_days WHERE day = ? AND type = ? AND family = ? AND feed = ? AND asn = ? AND cc = ?",
        )?;
        let mut put = conn.prepare_cached(
            "INSERT OR REPLACE INTO event_days (day, type, family, feed, asn, cc, events, subjects) VALUES (?,?,?,?,?,?,?,?)",
        )?;
        for mut c in self.cells.drain(..) {
            let old: Option<(i64, Vec<u8>)> = get
                .query_row(params![c.day, c.ty, c.family, c.feed, c.asn, c.cc], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            if let Some((events, blob)) = old {
                c.events += events;
                let stored = Sketch::decode(&blob, STORED_EXACT)
                    .map_err(|e| StoreError::Corrupt(format!("event_days: {e}")))?;
                c.subjects.merge(&stored);
            }
            put.execute(params![c.day, c.ty, c.family, c.feed, c.asn, c.cc, c.events, c.subjects.encode()])?;
        }
        self.index.clear();
        self.spill.clear();
        Ok(())
    }
}

/// Builds the rollup from the events already stored (the migration that adds the table).
pub(crate) fn backfill(conn: &Connection) -> Result<()> {
    let mut cells = DayCells::default();
    let mut st = conn.prepare(
        "SELECT COALESCE(time_source, time_observation), type, COALESCE(family, ''), feed, asn, COALESCE(cc, ''), subject FROM events",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (ty, family, feed, cc): (String, String, String, String) =
            (r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?);
        let subject: Option<String> = r.get(6)?;
        cells.add(r.get(0)?, &ty, &family, &feed, r.get(4)?, &cc, subject.as_deref());
    }
    drop(rows);
    cells.flush(conn)
}

/// `stats` from the rollup, or `None` when the query filters on something the rollup does
/// not keep (an address, a network, an event id, or a time not on a day boundary).
pub(crate) fn stats(conn: &Connection, by: GroupBy, q: &EventQuery) -> Result<Option<Vec<StatRow>>> {
    let aligned = |t: Option<Timestamp>| t.is_none_or(|t| t.micros().rem_euclid(DAY_US) == 0);
    if q.ip.is_some() || q.cidr.is_some() || q.after_id.is_some() || !aligned(q.since) || !aligned(q.until) {
        return Ok(None);
    }
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    if let Some(t) = &q.classification_type {
        conds.push("type = ?");
        args.push(Sql::Text(crate::sqlite::norm_type(t)));
    }
    if let Some(f) = &q.family {
        conds.push("family = ?");
        args.push(Sql::Text(botwatch_model::family::normalise(f).to_string()));
    }
    if let Some(f) = &q.feed {
        conds.push("feed = ?");
        args.push(Sql::Text(f.clone()));
    }
    if let Some(a) = q.asn {
        conds.push("asn = ?");
        args.push(Sql::Integer(a as i64));
    }
    if let Some(cc) = &q.cc {
        conds.push("cc = ?");
        args.push(Sql::Text(cc.to_ascii_uppercase()));
    }
    if let Some(s) = q.since {
        conds.push("day >= ?");
        args.push(Sql::Integer(day_of(s.micros())));
    }
    if let Some(u) = q.until {
        conds.push("day < ?");
        args.push(Sql::Integer(day_of(u.micros())));
    }
    let wh = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let col = match by {
        GroupBy::Family => "family",
        GroupBy::Asn => "CASE WHEN asn < 0 THEN '' ELSE CAST(asn AS TEXT) END",
        GroupBy::Country => "cc",
        GroupBy::Day => "day",
        GroupBy::Feed => "feed",
        GroupBy::Type => "type",
    };
    let mut st = conn.prepare(&format!("SELECT {col}, events, subjects FROM event_days {wh}"))?;
    let mut rows = st.query(params_from_iter(args))?;
    let mut groups: HashMap<String, (u64, Sketch)> = HashMap::new();
    while let Some(r) = rows.next()? {
        let key = match by {
            GroupBy::Day => Timestamp(r.get::<_, i64>(0)?.saturating_mul(DAY_US)).day(),
            _ => r.get(0)?,
        };
        let blob: Vec<u8> = r.get(2)?;
        let stored = Sketch::decode(&blob, STORED_EXACT)
            .map_err(|e| StoreError::Corrupt(format!("event_days: {e}")))?;
        let g = groups.entry(key).or_insert_with(|| (0, Sketch::new(QUERY_EXACT)));
        g.0 += r.get::<_, i64>(1)?.max(0) as u64;
        g.1.merge(&stored);
    }
    let mut out: Vec<StatRow> = groups
        .into_iter()
        .map(|(key, (events, mut s))| StatRow {
            key,
            events,
            subjects: s.count(),
            approximate: s.is_approximate(),
        })
        .collect();
    if by == GroupBy::Day {
        out.sort_by(|a, b| a.key.cmp(&b.key));
    } else {
        out.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
    }
    out.truncate(q.limit.unwrap_or(u64::MAX).min(usize::MAX as u64) as usize);
    Ok(Some(out))
}

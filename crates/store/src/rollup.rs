//! The per-day rollup of stored events (table `event_days`), kept up to date by the report
//! writer in the report's own transaction. Statistics and the dashboard read a few
//! thousand rows of it instead of scanning millions of events: one row per day and
//! (classification type, family, feed, ASN, country), with the event count and a
//! [`Sketch`] of the distinct subjects, so "infected addresses per family over 90 days"
//! counts an address seen on many days once.
//!
//! Two slimmer tables hold the same rows summed over the dimensions a chart does not need:
//! `event_days_threat` (day, type, family, feed) and `event_days_net` (day, type, ASN,
//! country). A query reads the smallest table that has every dimension it groups or
//! filters by (an aggregate navigator): "top ASNs" reads one row per ASN and day instead of
//! one per ASN, family, feed, country and day.

use crate::filter::Arg;
use crate::sketch::{QUERY_EXACT, STORED_EXACT, Sketch};
use crate::{EventQuery, GroupBy, Result, StatRow, StoreError};
use botwatch_model::Timestamp;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, params_from_iter};
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

    /// The rows to add to each table: every cell, and the cells summed into the slim
    /// tables' keys. Leaves the set empty.
    pub(crate) fn take(&mut self) -> Vec<RollupRow> {
        type Part = (i64, Sketch);
        let fresh = || (0i64, Sketch::new(STORED_EXACT));
        let mut threat: HashMap<(i64, String, String, String), Part> = HashMap::new();
        let mut net: HashMap<(i64, String, i64, String), Part> = HashMap::new();
        let mut out = Vec::with_capacity(self.cells.len() * 2);
        for c in self.cells.drain(..) {
            let t =
                threat.entry((c.day, c.ty.clone(), c.family.clone(), c.feed.clone())).or_insert_with(fresh);
            t.0 += c.events;
            t.1.merge(&c.subjects);
            let n = net.entry((c.day, c.ty.clone(), c.asn, c.cc.clone())).or_insert_with(fresh);
            n.0 += c.events;
            n.1.merge(&c.subjects);
            out.push(RollupRow {
                table: Table::Full,
                key: vec![
                    Arg::Int(c.day),
                    Arg::Text(c.ty),
                    Arg::Text(c.family),
                    Arg::Text(c.feed),
                    Arg::Int(c.asn),
                    Arg::Text(c.cc),
                ],
                events: c.events,
                subjects: c.subjects,
            });
        }
        for ((day, ty, family, feed), (events, subjects)) in threat {
            out.push(RollupRow {
                table: Table::Threat,
                key: vec![Arg::Int(day), Arg::Text(ty), Arg::Text(family), Arg::Text(feed)],
                events,
                subjects,
            });
        }
        for ((day, ty, asn, cc), (events, subjects)) in net {
            out.push(RollupRow {
                table: Table::Net,
                key: vec![Arg::Int(day), Arg::Text(ty), Arg::Int(asn), Arg::Text(cc)],
                events,
                subjects,
            });
        }
        self.index.clear();
        self.spill.clear();
        out
    }

    /// Adds the cells to what the (SQLite) tables hold.
    pub(crate) fn flush(&mut self, conn: &Connection) -> Result<()> {
        for r in self.take() {
            add_row(conn, r)?;
        }
        Ok(())
    }
}

/// One row's worth to add to a rollup table: its key columns in the table's order.
pub(crate) struct RollupRow {
    pub(crate) table: Table,
    pub(crate) key: Vec<Arg>,
    pub(crate) events: i64,
    pub(crate) subjects: Sketch,
}

/// The three rollup tables, from the finest to the slimmest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Full,
    Threat,
    Net,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Full => "event_days",
            Table::Threat => "event_days_threat",
            Table::Net => "event_days_net",
        }
    }

    /// The key columns, in the order of [`RollupRow::key`].
    pub(crate) fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::Full => &["day", "type", "family", "feed", "asn", "cc"],
            Table::Threat => &["day", "type", "family", "feed"],
            Table::Net => &["day", "type", "asn", "cc"],
        }
    }

    /// (read the row, write the row) by key, as literals: the writer runs them for every
    /// cell of every report.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Table::Full => (
                "SELECT events, subjects FROM event_days WHERE day = ? AND type = ? AND family = ? AND feed = ? AND asn = ? AND cc = ?",
                "INSERT OR REPLACE INTO event_days (day, type, family, feed, asn, cc, events, subjects) VALUES (?,?,?,?,?,?,?,?)",
            ),
            Table::Threat => (
                "SELECT events, subjects FROM event_days_threat WHERE day = ? AND type = ? AND family = ? AND feed = ?",
                "INSERT OR REPLACE INTO event_days_threat (day, type, family, feed, events, subjects) VALUES (?,?,?,?,?,?)",
            ),
            Table::Net => (
                "SELECT events, subjects FROM event_days_net WHERE day = ? AND type = ? AND asn = ? AND cc = ?",
                "INSERT OR REPLACE INTO event_days_net (day, type, asn, cc, events, subjects) VALUES (?,?,?,?,?,?)",
            ),
        }
    }

    /// The smallest table holding every dimension `q` and `by` need.
    fn for_query(by: GroupBy, q: &EventQuery) -> Table {
        let threat_dims =
            matches!(by, GroupBy::Family | GroupBy::Feed) || q.family.is_some() || q.feed.is_some();
        let net_dims = matches!(by, GroupBy::Asn | GroupBy::Country) || q.asn.is_some() || q.cc.is_some();
        match (threat_dims, net_dims) {
            (true, true) => Table::Full,
            (false, true) => Table::Net,
            // Day and type alone: either slim table has them; threat rows are fewer.
            (_, false) => Table::Threat,
        }
    }
}

/// Adds a row's events and subjects to what its table holds under its key.
fn add_row(conn: &Connection, row: RollupRow) -> Result<()> {
    let RollupRow { table, key, mut events, mut subjects } = row;
    let key = crate::sqlite::sql_args(key);
    let (read, write) = table.sql();
    let mut get = conn.prepare_cached(read)?;
    let old: Option<(i64, Vec<u8>)> = get
        .query_row(params_from_iter(key.iter()), |r| Ok((r.get(0)?, r.get(1)?)))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    if let Some((n, blob)) = old {
        events += n;
        subjects.merge_encoded(&blob).map_err(|e| StoreError::Corrupt(format!("{}: {e}", table.name())))?;
    }
    let mut put = conn.prepare_cached(write)?;
    let mut args = key;
    args.push(Sql::Integer(events));
    args.push(Sql::Blob(subjects.encode()));
    put.execute(params_from_iter(args))?;
    Ok(())
}

/// Builds the rollup from the events already stored (a rebuild): whatever the tables held
/// is replaced.
pub(crate) fn backfill(conn: &Connection) -> Result<()> {
    clear(conn)?;
    let mut cells = DayCells::default();
    crate::eventlog::scan(conn, &EventQuery::default(), false, &mut |h| {
        let l = h.lean;
        cells.add(
            l.time(),
            &l.ty,
            l.family.as_deref().unwrap_or(""),
            &l.feed,
            l.asn,
            l.cc.as_deref().unwrap_or(""),
            l.subject.as_deref(),
        );
        Ok(true)
    })?;
    cells.flush(conn)
}

/// The same from the one-row-per-event table of schema 14 and before: what the migration
/// that added the rollup tables ran, before events moved into blocks.
pub(crate) fn backfill_rows(conn: &Connection) -> Result<()> {
    clear(conn)?;
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

fn clear(conn: &Connection) -> Result<()> {
    for t in [Table::Full, Table::Threat, Table::Net] {
        conn.execute(&format!("DELETE FROM {}", t.name()), [])?;
    }
    Ok(())
}

/// What a `stats` query reads from the rollup: the SQL (`?` marks) and its arguments, or
/// `None` when the query filters on something the rollup does not keep (an address, a
/// network, an event id, or a time not on a day boundary). Rows are (group key, events,
/// encoded sketch); [`StatsFold`] sums them.
pub(crate) fn stats_plan(by: GroupBy, q: &EventQuery) -> Option<(String, Vec<Arg>)> {
    let aligned = |t: Option<Timestamp>| t.is_none_or(|t| t.micros().rem_euclid(DAY_US) == 0);
    if q.ip.is_some() || q.cidr.is_some() || q.after_id.is_some() || !aligned(q.since) || !aligned(q.until) {
        return None;
    }
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    if let Some(t) = &q.classification_type {
        conds.push("type = ?");
        args.push(Arg::Text(crate::filter::norm_type(t)));
    }
    if let Some(f) = &q.family {
        conds.push("family = ?");
        args.push(Arg::Text(crate::filter::norm_family(f)));
    }
    if let Some(f) = &q.feed {
        conds.push("feed = ?");
        args.push(Arg::Text(f.clone()));
    }
    if let Some(a) = q.asn {
        conds.push("asn = ?");
        args.push(Arg::Int(a as i64));
    }
    if let Some(cc) = &q.cc {
        conds.push("cc = ?");
        args.push(Arg::Text(crate::filter::norm_cc(cc)));
    }
    if let Some(s) = q.since {
        conds.push("day >= ?");
        args.push(Arg::Int(day_of(s.micros())));
    }
    if let Some(u) = q.until {
        conds.push("day < ?");
        args.push(Arg::Int(day_of(u.micros())));
    }
    let wh = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let table = Table::for_query(by, q);
    let col = match by {
        GroupBy::Family => "family",
        GroupBy::Asn => "asn",
        GroupBy::Country => "cc",
        GroupBy::Day => "day",
        GroupBy::Feed => "feed",
        GroupBy::Type => "type",
    };
    Some((format!("SELECT {col}, events, subjects FROM {} {wh}", table.name()), args))
}

/// Sums the rollup rows of a [`stats_plan`] query into groups, without allocating per row:
/// integer keys (day, ASN) as they are, text borrowed for the look-up and copied only for a
/// new group.
pub(crate) struct StatsFold {
    by: GroupBy,
    by_int: HashMap<i64, (u64, Sketch)>,
    by_text: HashMap<String, (u64, Sketch)>,
}

/// A group key as a row holds it.
pub(crate) enum GroupKey<'a> {
    Int(i64),
    Text(&'a str),
}

impl StatsFold {
    pub(crate) fn new(by: GroupBy) -> StatsFold {
        StatsFold { by, by_int: HashMap::new(), by_text: HashMap::new() }
    }

    pub(crate) fn add(&mut self, key: GroupKey<'_>, events: i64, sketch: &[u8]) -> Result<()> {
        let fresh = || (0u64, Sketch::new(QUERY_EXACT));
        let g = match key {
            GroupKey::Int(k) => self.by_int.entry(k).or_insert_with(fresh),
            GroupKey::Text(k) => {
                if !self.by_text.contains_key(k) {
                    self.by_text.insert(k.to_string(), fresh());
                }
                self.by_text.get_mut(k).ok_or_else(|| StoreError::Corrupt("rollup group vanished".into()))?
            }
        };
        g.0 += events.max(0) as u64;
        g.1.merge_encoded(sketch).map_err(|e| StoreError::Corrupt(format!("rollup: {e}")))
    }

    pub(crate) fn finish(self, limit: Option<u64>) -> Vec<StatRow> {
        let by = self.by;
        let int_key = |k: i64| match by {
            GroupBy::Day => Timestamp(k.saturating_mul(DAY_US)).day(),
            _ if k < 0 => String::new(),
            _ => k.to_string(),
        };
        let groups = self.by_int.into_iter().map(|(k, v)| (int_key(k), v)).chain(self.by_text);
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
        out.truncate(limit.unwrap_or(u64::MAX).min(usize::MAX as u64) as usize);
        out
    }
}

/// `stats` from the (SQLite) rollup; `None` as for [`stats_plan`].
pub(crate) fn stats(conn: &Connection, by: GroupBy, q: &EventQuery) -> Result<Option<Vec<StatRow>>> {
    let Some((sql, args)) = stats_plan(by, q) else { return Ok(None) };
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params_from_iter(crate::sqlite::sql_args(args)))?;
    let mut fold = StatsFold::new(by);
    let bad = |i: usize, e: rusqlite::types::FromSqlError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
    };
    while let Some(r) = rows.next()? {
        let key = match r.get_ref(0)? {
            ValueRef::Integer(k) => GroupKey::Int(k),
            v => GroupKey::Text(v.as_str().map_err(|e| bad(0, e))?),
        };
        let blob = r.get_ref(2)?.as_blob().map_err(|e| bad(2, e))?;
        fold.add(key, r.get(1)?, blob)?;
    }
    Ok(Some(fold.finish(q.limit)))
}

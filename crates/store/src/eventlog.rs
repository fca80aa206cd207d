//! The SQLite store's events on disk: compressed blocks ([`crate::blocks`]) and the two
//! day-keyed tables that find events without opening blocks (`event_keys`, `event_obs`).
//! Writing, scanning with a query's filters, retention by whole days, and the migration
//! that moved the old one-row-per-event table into blocks.

use crate::blocks::{BlockBuilder, Body, Fields, Lean, decode_lean};
use crate::encode::EncodedEvent;
use crate::filter::{norm_cc, norm_family, norm_type};
use crate::rollup::day_of;
use crate::{EventQuery, Result, StoreError, ip_key, net_keys};
use rusqlite::{Connection, OptionalExtension, params};

/// Adds a counter's change in the writer's transaction.
pub(crate) fn bump(conn: &Connection, name: &str, by: i64) -> Result<()> {
    if by != 0 {
        conn.prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = value + ?2",
        )?
        .execute(params![name, by])?;
    }
    Ok(())
}

/// A maintained counter's value (0 when never set).
pub(crate) fn counter(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = ?")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// One report's events on their way into blocks, inside the report's transaction.
pub(crate) struct EventSink {
    builder: BlockBuilder,
    report_id: i64,
    next_id: i64,
    stored: i64,
}

impl EventSink {
    pub fn begin(conn: &Connection, report_id: i64) -> Result<Self> {
        let next_id: i64 = conn.query_row("SELECT next FROM event_seq", [], |r| r.get(0))?;
        Ok(EventSink { builder: BlockBuilder::default(), report_id, next_id, stored: 0 })
    }

    /// Stores the event unless its fingerprint is stored already; its id when it was new.
    pub fn add(
        &mut self,
        conn: &Connection,
        e: &EncodedEvent,
        observation: Option<i64>,
    ) -> Result<Option<i64>> {
        let day = day_of(e.time);
        let fresh = conn
            .prepare_cached("INSERT OR IGNORE INTO event_keys (day, fingerprint) VALUES (?, ?)")?
            .execute(params![day, e.fingerprint])?;
        if fresh == 0 {
            return Ok(None);
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(o) = observation {
            conn.prepare_cached("INSERT INTO event_obs (day, observation_id, event_id) VALUES (?, ?, ?)")?
                .execute(params![day, o, id])?;
        }
        self.builder.push(
            id,
            &Fields {
                line: e.line,
                feed: e.feed.as_str(),
                time_source: e.time_source,
                time_observation: e.time_observation,
                ip: e.ip.as_ref(),
                subject: e.subject.as_deref(),
                asn: e.asn.map(i64::from),
                cc: e.cc.as_deref(),
                ty: e.ty,
                family: e.family.as_deref(),
                observation,
                doc: &e.doc,
                raw: &e.raw,
            },
        );
        self.stored += 1;
        if self.builder.is_full() {
            flush(conn, &mut self.builder, self.report_id)?;
        }
        Ok(Some(id))
    }

    /// Writes the last block, the next id and the event counter.
    pub fn finish(&mut self, conn: &Connection) -> Result<()> {
        flush(conn, &mut self.builder, self.report_id)?;
        conn.execute("UPDATE event_seq SET next = ?", [self.next_id])?;
        bump(conn, "events", self.stored)
    }
}

fn flush(conn: &Connection, b: &mut BlockBuilder, report_id: i64) -> Result<()> {
    if let Some(block) = b.finish()? {
        conn.prepare_cached(
            "INSERT INTO event_blocks (last_id, first_id, report_id, count, day_min, day_max, lean, body) VALUES (?,?,?,?,?,?,?,?)",
        )?
        .execute(params![
            block.last_id,
            block.first_id,
            report_id,
            block.count,
            block.day_min,
            block.day_max,
            block.lean,
            block.body
        ])?;
    }
    Ok(())
}

/// A query's filters, normalised once, tested against each event of a block.
struct Filter {
    ip: Option<[u8; 16]>,
    net: Option<([u8; 16], [u8; 16])>,
    asn: Option<i64>,
    cc: Option<String>,
    family: Option<String>,
    feed: Option<String>,
    ty: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    after: i64,
}

impl Filter {
    fn new(q: &EventQuery) -> Self {
        Filter {
            ip: q.ip.map(ip_key),
            net: q.cidr.map(net_keys),
            asn: q.asn.map(i64::from),
            cc: q.cc.as_deref().map(norm_cc),
            family: q.family.as_deref().map(norm_family),
            feed: q.feed.clone(),
            ty: q.classification_type.as_deref().map(norm_type),
            since: q.since.map(|t| t.micros()),
            until: q.until.map(|t| t.micros()),
            after: q.after_id.unwrap_or(i64::MIN),
        }
    }

    fn matches(&self, l: &Lean) -> bool {
        let t = l.time();
        l.id > self.after
            && self.ip.is_none_or(|k| l.ip == Some(k))
            && self.net.is_none_or(|(lo, hi)| l.ip.is_some_and(|k| k >= lo && k <= hi))
            && self.asn.is_none_or(|a| l.asn == Some(a))
            && self.cc.as_deref().is_none_or(|c| l.cc.as_deref() == Some(c))
            && self.family.as_deref().is_none_or(|f| l.family.as_deref() == Some(f))
            && self.feed.as_deref().is_none_or(|f| l.feed == f)
            && self.ty.as_deref().is_none_or(|ty| l.ty == ty)
            && self.since.is_none_or(|s| t >= s)
            && self.until.is_none_or(|u| t < u)
    }

    /// Days an event that matches can fall on.
    fn days(&self) -> (i64, i64) {
        (
            self.since.map(day_of).unwrap_or(i64::MIN),
            self.until.map(|u| day_of(u.saturating_sub(1))).unwrap_or(i64::MAX),
        )
    }
}

/// One matching event of a scan: its indexed fields, report, and (when asked for) its
/// document and raw line.
pub(crate) struct Hit<'a> {
    pub lean: &'a Lean,
    pub report_id: i64,
    pub body: Option<(&'a [u8], &'a [u8])>,
}

/// Calls `f` with each event matching `q` in id order, up to `q.limit`, until `f` returns
/// false. Only blocks that can hold a match are opened, and a block's documents and raw
/// lines are decompressed only when `body` is asked for and a row of it matches.
pub(crate) fn scan(
    conn: &Connection,
    q: &EventQuery,
    body: bool,
    f: &mut dyn FnMut(Hit<'_>) -> Result<bool>,
) -> Result<()> {
    let filter = Filter::new(q);
    let mut left = q.limit.unwrap_or(u64::MAX);
    if left == 0 {
        return Ok(());
    }
    let mut visit = |report_id: i64,
                     lean: &[Lean],
                     pick: &dyn Fn(&Lean) -> bool,
                     blob: &dyn Fn() -> Result<Vec<u8>>|
     -> Result<bool> {
        let mut bodies: Option<Body> = None;
        for (i, l) in lean.iter().enumerate() {
            if !pick(l) || !filter.matches(l) {
                continue;
            }
            if body && bodies.is_none() {
                bodies = Some(Body::decode(&blob()?, lean.len())?);
            }
            let b = match &bodies {
                Some(b) => Some(
                    b.get(i)
                        .ok_or_else(|| StoreError::Corrupt("event block: body shorter than lean".into()))?,
                ),
                None => None,
            };
            if !f(Hit { lean: l, report_id, body: b })? {
                return Ok(false);
            }
            left -= 1;
            if left == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if filter.ip.is_some() || filter.net.is_some() {
        // By address: the observations' address index, then each observation's events by
        // day, then only the blocks that hold them.
        let ids = ids_by_address(conn, &filter)?;
        let mut st = conn.prepare_cached(
            "SELECT last_id, first_id, report_id, lean FROM event_blocks WHERE last_id >= ? ORDER BY last_id LIMIT 1",
        )?;
        let mut i = 0;
        while i < ids.len() {
            let Some((last, first, report_id, lean)) = st
                .query_row([ids[i]], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .optional()?
            else {
                break;
            };
            let end = ids[i..].partition_point(|&id| id <= last) + i;
            let wanted = &ids[i..end];
            i = end;
            if wanted.last().is_none_or(|&id| id < first) {
                continue;
            }
            let lean = decode_lean(&lean)?;
            let pick = |l: &Lean| wanted.binary_search(&l.id).is_ok();
            let blob = || -> Result<Vec<u8>> {
                Ok(conn.query_row("SELECT body FROM event_blocks WHERE last_id = ?", [last], |r| r.get(0))?)
            };
            if !visit(report_id, &lean, &pick, &blob)? {
                return Ok(());
            }
        }
        return Ok(());
    }
    let (lo, hi) = filter.days();
    let mut st = conn.prepare_cached(
        "SELECT last_id, report_id, lean FROM event_blocks WHERE last_id > ?1 AND day_max >= ?2 AND day_min <= ?3 ORDER BY last_id",
    )?;
    let mut rows = st.query(params![filter.after, lo, hi])?;
    while let Some(r) = rows.next()? {
        let last: i64 = r.get(0)?;
        let report_id: i64 = r.get(1)?;
        let lean = decode_lean(r.get_ref(2)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?)?;
        let blob = || -> Result<Vec<u8>> {
            Ok(conn.query_row("SELECT body FROM event_blocks WHERE last_id = ?", [last], |r| r.get(0))?)
        };
        if !visit(report_id, &lean, &|_| true, &blob)? {
            return Ok(());
        }
    }
    Ok(())
}

/// The ids (sorted, after the cursor) of the events whose observation has the address or
/// lies in the network: per observation, one look-up per day it was seen on.
fn ids_by_address(conn: &Connection, f: &Filter) -> Result<Vec<i64>> {
    let (sql, args): (&str, Vec<Vec<u8>>) = match (f.ip, f.net) {
        (Some(k), _) => ("SELECT id, first_seen, last_seen FROM observations WHERE ip = ?", vec![k.to_vec()]),
        (None, Some((lo, hi))) => (
            "SELECT id, first_seen, last_seen FROM observations WHERE ip BETWEEN ? AND ?",
            vec![lo.to_vec(), hi.to_vec()],
        ),
        (None, None) => return Ok(Vec::new()),
    };
    let mut st = conn.prepare_cached(sql)?;
    let obs: Vec<(i64, i64, i64)> = st
        .query_map(rusqlite::params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (lo, hi) = f.days();
    let mut by_day = conn.prepare_cached(
        "SELECT event_id FROM event_obs WHERE day = ? AND observation_id = ? AND event_id > ?",
    )?;
    let mut ids = Vec::new();
    for (id, first, last) in obs {
        for day in day_of(first).max(lo)..=day_of(last).min(hi) {
            let rows = by_day.query_map(params![day, id, f.after], |r| r.get::<_, i64>(0))?;
            for r in rows {
                ids.push(r?);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The addresses of the events with ids in `after + 1 ..= upto`, in id order.
pub(crate) fn addresses_between(conn: &Connection, after: i64, upto: i64) -> Result<Vec<[u8; 16]>> {
    let mut st = conn.prepare_cached(
        "SELECT lean FROM event_blocks WHERE last_id > ? AND first_id <= ? ORDER BY last_id",
    )?;
    let mut rows = st.query([after, upto])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        for l in decode_lean(r.get_ref(0)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?)? {
            if l.id > after
                && l.id <= upto
                && let Some(k) = l.ip
            {
                out.push(k);
            }
        }
    }
    Ok(out)
}

/// Removes every event of a day before `cut_day`: whole blocks where they hold only such
/// days, rewritten blocks where a report spans the cut. Returns how many events went.
pub(crate) fn prune_days(conn: &Connection, cut_day: i64) -> Result<u64> {
    let whole: i64 = conn.query_row(
        "SELECT COALESCE(SUM(count), 0) FROM event_blocks WHERE day_max < ?",
        [cut_day],
        |r| r.get(0),
    )?;
    conn.execute("DELETE FROM event_blocks WHERE day_max < ?", [cut_day])?;
    let straddling: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT last_id, report_id, lean, body FROM event_blocks WHERE day_min < ?")?
        .query_map([cut_day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut removed = whole;
    for (last, report_id, lean, body) in straddling {
        let lean = decode_lean(&lean)?;
        let body = Body::decode(&body, lean.len())?;
        let mut b = BlockBuilder::default();
        for (i, l) in lean.iter().enumerate() {
            if day_of(l.time()) < cut_day {
                removed += 1;
                continue;
            }
            let (doc, raw) = body
                .get(i)
                .ok_or_else(|| StoreError::Corrupt("event block: body shorter than lean".into()))?;
            b.push(l.id, &Fields::of_lean(l, doc, raw));
        }
        conn.execute("DELETE FROM event_blocks WHERE last_id = ?", [last])?;
        flush(conn, &mut b, report_id)?;
    }
    conn.execute("DELETE FROM event_keys WHERE day < ?", [cut_day])?;
    conn.execute("DELETE FROM event_obs WHERE day < ?", [cut_day])?;
    bump(conn, "events", -removed)?;
    Ok(removed as u64)
}

/// Moves the events of the one-row-per-event table (schema 14 and before) into blocks, in
/// id order, one report's consecutive events per block, then drops that table.
pub(crate) fn migrate_rows(conn: &Connection) -> Result<()> {
    let mut st = conn.prepare(
        "SELECT id, report_id, observation_id, fingerprint, line, feed, time_source, time_observation, ip, subject, asn, cc, type, family, doc, raw FROM events ORDER BY id",
    )?;
    let mut rows = st.query([])?;
    let mut b = BlockBuilder::default();
    let mut report: Option<i64> = None;
    let mut keys = conn.prepare("INSERT OR IGNORE INTO event_keys (day, fingerprint) VALUES (?, ?)")?;
    let mut obs =
        conn.prepare("INSERT OR IGNORE INTO event_obs (day, observation_id, event_id) VALUES (?, ?, ?)")?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let report_id: i64 = r.get(1)?;
        if report.is_some_and(|p| p != report_id) || b.is_full() {
            flush(conn, &mut b, report.unwrap_or(report_id))?;
        }
        report = Some(report_id);
        let ip: Option<Vec<u8>> = r.get(8)?;
        let ip = ip.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok());
        let l = Lean {
            id,
            line: r.get(4)?,
            feed: r.get(5)?,
            time_source: r.get(6)?,
            time_observation: r.get(7)?,
            ip,
            subject: r.get(9)?,
            asn: r.get(10)?,
            cc: r.get(11)?,
            ty: r.get(12)?,
            family: r.get(13)?,
            observation: r.get(2)?,
        };
        let doc: String = r.get(14)?;
        let raw: Vec<u8> = r.get(15)?;
        let day = day_of(l.time());
        keys.execute(params![day, r.get::<_, i64>(3)?])?;
        if let Some(o) = l.observation {
            obs.execute(params![day, o, id])?;
        }
        b.push(id, &Fields::of_lean(&l, doc.as_bytes(), &raw));
    }
    if let Some(p) = report {
        flush(conn, &mut b, p)?;
    }
    drop(rows);
    drop(st);
    drop(keys);
    drop(obs);
    conn.execute_batch("DROP TABLE events")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::sqlite::{MIGRATIONS, SqliteStore};
    use crate::{EventQuery, GroupBy, Store, StoreConfig, ip_key};
    use rusqlite::{Connection, params};

    /// A store an older botwatch (schema 14, a row per event) left behind opens with every
    /// event moved into blocks: the same ids, lines, raw bytes, documents, observations and
    /// counts, found by address as before, and the old table gone.
    #[test]
    fn a_store_of_schema_14_moves_its_events_into_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 14) {
                c.execute_batch(sql).unwrap();
                c.execute_batch(&format!("PRAGMA user_version = {v}")).unwrap();
            }
            for r in 1..=2i64 {
                c.execute(
                    "INSERT INTO reports (id, sha256, feed, size, observed_at, ingested_at, events) VALUES (?, ?, 'a_b', 1, 0, 0, ?)",
                    params![r, format!("h{r}"), if r == 1 { 3000 } else { 10 }],
                )
                .unwrap();
            }
            let day = 86_400_000_000i64 * 20_000;
            for o in 1..=50i64 {
                let ip = ip_key(format!("192.0.2.{o}").parse().unwrap());
                c.execute(
                    "INSERT INTO observations (id, subject, type, family, ip, first_seen, last_seen, count, sources, confidence)
                     VALUES (?, ?, 'infected-system', 'emotet', ?, ?, ?, 0, '{\"a_b\":100}', 0.6)",
                    params![o, format!("192.0.2.{o}"), &ip[..], day, day + 3_000_000_000],
                )
                .unwrap();
            }
            // Ids with a gap, as an older prune could leave them.
            let ids = (1..=3000i64).chain(3101..3111);
            for (n, id) in ids.enumerate() {
                let o = (n as i64 % 50) + 1;
                let ip = ip_key(format!("192.0.2.{o}").parse().unwrap());
                c.execute(
                    "INSERT INTO events (id, report_id, observation_id, fingerprint, line, feed, time_source, time_observation, ip, subject, asn, cc, type, family, doc, raw)
                     VALUES (?, ?, ?, ?, ?, 'a_b', ?, ?, ?, ?, 64496, 'NL', 'infected-system', 'emotet', ?, ?)",
                    params![
                        id,
                        if id > 3000 { 2 } else { 1 },
                        o,
                        id * 7919,
                        n as i64 + 2,
                        day + id * 1_000_000,
                        day + 5_000_000_000,
                        &ip[..],
                        format!("192.0.2.{o}"),
                        format!("{{\"source.port\":{}}}", 1000 + id),
                        format!("line {id},192.0.2.{o}").into_bytes(),
                    ],
                )
                .unwrap();
            }
            c.execute("UPDATE observations SET count = (SELECT COUNT(*) FROM events WHERE observation_id = observations.id)", [])
                .unwrap();
        }
        let s = SqliteStore::open(&path, StoreConfig::default()).unwrap();
        let tables: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "the old table is dropped");
        let all = s.events(&EventQuery::default()).unwrap();
        assert_eq!(all.len(), 3010);
        assert_eq!(
            all.iter().map(|e| e.id).collect::<Vec<_>>(),
            (1..=3000).chain(3101..3111).collect::<Vec<_>>()
        );
        for e in [&all[0], &all[2047], &all[2048], &all[3009]] {
            let id = e.id;
            assert_eq!(&e.event.raw[..], format!("line {id},{}", e.event.source.ip.unwrap()).as_bytes());
            assert_eq!(e.event.source.port, Some(1000 + id as u16));
            assert_eq!(e.event.source.asn, Some(64496));
            assert_eq!(e.report_id, if id > 3000 { 2 } else { 1 });
        }
        let c = s.counts().unwrap();
        assert_eq!((c.events, c.reports, c.observations), (3010, 2, 50));
        assert_eq!(s.newest_event_id().unwrap(), 3110);
        let one = EventQuery { ip: Some("192.0.2.7".parse().unwrap()), ..Default::default() };
        let got = s.events(&one).unwrap();
        assert_eq!(got.len(), 61);
        assert!(got.iter().all(|e| e.observation_id == Some(7)));
        let by_family = s.stats_scan(GroupBy::Family, &EventQuery::default()).unwrap();
        assert_eq!((by_family[0].events, by_family[0].subjects), (3010, 50));
        // A fingerprint of a moved event is still a duplicate.
        let keys: i64 = s.conn.query_row("SELECT COUNT(*) FROM event_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(keys, 3010);
    }
}

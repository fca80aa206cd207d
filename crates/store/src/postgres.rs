//! The shared backend: PostgreSQL, for deployments past one machine (`[store] url =
//! "postgres://…"`). Same trait, same meanings as the SQLite store; what differs is how
//! the work reaches the server.
//!
//! Write path: one transaction per report, as in SQLite. Report writers take one
//! transaction-scoped advisory lock ([`WRITE_LOCK`]) before anything else, so reports are
//! stored one after another whichever process or machine stores them: observation ids are
//! allocated, and observations merged, by exactly one writer at a time (the same guarantee
//! SQLite's write lock gives the embedded store), and event ids grow in commit order.
//! Readers never wait for it. Parsing and encoding, the work before the store, run in every
//! worker at once.
//!
//! Events go in with binary `COPY` into a table partitioned by day: duplicates (same
//! fingerprint) are looked up first, a batch at a time, because `COPY` cannot skip them.
//! A day's partition is created on a separate connection in its own short transaction, so
//! the report's long transaction never holds the lock that creating a partition takes on
//! the parent table (which would stall every reader until the report commits).
//! Observations and the per-day rollup are written at commit through temporary tables and
//! one `INSERT … ON CONFLICT` each, not a statement per row.

use crate::encode::EncodedEvent;
use crate::filter::{Arg, Dialect, where_clause};
use crate::resolve::{Obs, ObsState, event_keys, sources_json};
use crate::rollup::{GroupKey, StatsFold, Table};
use crate::sketch::Sketch;
use crate::*;
use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, NoTls, Transaction};
use botwatch_model::Timestamp;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Versioned migrations; table `botwatch_schema` records the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_desk.sql")),
    (3, include_str!("../migrations/postgres/0003_share.sql")),
    (4, include_str!("../migrations/postgres/0004_stream_lag.sql")),
    (5, include_str!("../migrations/postgres/0005_counters.sql")),
];

mod desk;
mod share;

/// Advisory-lock key of the report writers ("botwatch" in ASCII, as an integer).
pub const WRITE_LOCK: i64 = 0x626f_7477_6174_6368;
/// Advisory-lock key that serialises migrations between processes starting together.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // The server's message (a `DbError`) or the I/O cause ("connection refused") is the
        // source; the error's own text is only its kind.
        let mut msg = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            cause = c.source();
        }
        StoreError::Postgres(msg)
    }
}

/// The schema version a store opened by this build has.
pub fn schema_version_latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub struct PgStore {
    /// In a cell because the trait reads through `&self` but a client sends a query through
    /// `&mut`; a store is used by one thread at a time (`Send`, not `Sync`).
    client: RefCell<Client>,
    cfg: StoreConfig,
    config: ::postgres::Config,
    /// Days whose event partition is known to exist, shared by the stores of one process.
    partitions: Arc<Mutex<HashSet<i64>>>,
}

/// `?` marks numbered as PostgreSQL wants them (`$1`, `$2`, …). The SQL given never has a
/// `?` inside a literal.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_args(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Int(i) => i as &(dyn ToSql + Sync),
            Arg::Text(t) => t as &(dyn ToSql + Sync),
            Arg::Blob(b) => b as &(dyn ToSql + Sync),
        })
        .collect()
}

/// A URL's password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &url[s + 3..at];
            match auth.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &auth[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or
    /// key=value form) and migrates it.
    pub fn connect(url: &str, cfg: StoreConfig) -> Result<Self> {
        let config: ::postgres::Config =
            url.parse().map_err(|e| StoreError::Postgres(format!("{}: {e}", redact(url))))?;
        Self::with_partitions(config, cfg, Arc::default())
    }

    fn with_partitions(
        config: ::postgres::Config,
        cfg: StoreConfig,
        partitions: Arc<Mutex<HashSet<i64>>>,
    ) -> Result<Self> {
        let client = RefCell::new(config.connect(NoTls)?);
        let mut s = PgStore { client, cfg, config, partitions };
        s.migrate()?;
        Ok(s)
    }

    /// Another connection to the same database, sharing what this one knows of partitions
    /// (a pool's next member).
    pub fn reconnect(&self) -> Result<Self> {
        let client = RefCell::new(self.config.connect(NoTls)?);
        Ok(PgStore {
            client,
            cfg: self.cfg.clone(),
            config: self.config.clone(),
            partitions: self.partitions.clone(),
        })
    }

    fn migrate(&mut self) -> Result<()> {
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS botwatch_schema (version bigint NOT NULL)")?;
        let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM botwatch_schema", &[])?.get(0);
        let known = schema_version_latest();
        if current > known {
            return Err(StoreError::TooNew { found: current, known });
        }
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO botwatch_schema (version) VALUES ($1)", &[v])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The server closed this session.
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    pub fn schema_version(&mut self) -> Result<i64> {
        Ok(self
            .client
            .get_mut()
            .query_one("SELECT COALESCE(MAX(version), 0) FROM botwatch_schema", &[])?
            .get(0))
    }
}

/// Makes the event partitions of these days that are not known to exist, each in its own
/// transaction on a connection of its own (see the module's notes).
fn ensure_partitions(
    config: &::postgres::Config,
    partitions: &Mutex<HashSet<i64>>,
    days: &HashSet<i64>,
) -> Result<()> {
    let missing: Vec<i64> = {
        let known = partitions.lock().unwrap_or_else(|p| p.into_inner());
        days.iter().copied().filter(|d| !known.contains(d)).collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let mut ddl = config.connect(NoTls)?;
    for day in missing {
        let name = partition_name(day);
        // Made apart, then attached: ATTACH PARTITION takes a lock on the parent that
        // neither readers nor the report's own open transaction (which has written events
        // already) hold, where CREATE TABLE … PARTITION OF would wait for both, and so for
        // the very writer asking. Only writers make partitions, one at a time (they hold
        // the write lock), so looking before making is not a race.
        let attached: bool = ddl
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'events'::regclass AND c.relname = $1)",
                &[&name],
            )?
            .get(0);
        if !attached {
            ddl.batch_execute(&format!(
                "DROP TABLE IF EXISTS {name};
                 CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 ALTER TABLE {name} ADD CONSTRAINT {name}_day CHECK (day >= {day} AND day < {});
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({day}) TO ({})",
                day + 1,
                day + 1
            ))?;
        }
        partitions.lock().unwrap_or_else(|p| p.into_inner()).insert(day);
    }
    Ok(())
}

impl PgStore {
    /// `stats` by scanning the events (see `SqliteStore::stats_scan`).
    pub fn stats_scan(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        let key = match by {
            GroupBy::Family => "COALESCE(e.family, '')",
            GroupBy::Asn => "COALESCE(CAST(e.asn AS text), '')",
            GroupBy::Country => "COALESCE(e.cc, '')",
            GroupBy::Day => {
                "to_char(to_timestamp(COALESCE(e.time_source, e.time_observation) / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
            GroupBy::Feed => "e.feed",
            GroupBy::Type => "e.type",
        };
        let (wh, args) = where_clause(q, true, Dialect::Postgres);
        let order = if by == GroupBy::Day { "k" } else { "n DESC, k" };
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS n, COUNT(DISTINCT e.subject) FROM events e {wh} GROUP BY k ORDER BY {order} LIMIT {}",
            q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64)
        );
        let rows = self.client.borrow_mut().query(&numbered(&sql), &pg_args(&args))?;
        Ok(rows
            .iter()
            .map(|r| StatRow {
                key: r.get(0),
                events: r.get::<_, i64>(1) as u64,
                subjects: r.get::<_, i64>(2) as u64,
                approximate: false,
            })
            .collect())
    }

    /// Rebuilds the per-day rollup from the stored events (see
    /// `SqliteStore::rebuild_rollup`).
    pub fn rebuild_rollup(&mut self) -> Result<()> {
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        tx.batch_execute(
            "DELETE FROM event_days; DELETE FROM event_days_threat; DELETE FROM event_days_net",
        )?;
        let mut cells = crate::rollup::DayCells::default();
        {
            let mut rows = tx.query_raw(
                "SELECT COALESCE(time_source, time_observation), type, COALESCE(family, ''), feed, asn, COALESCE(cc, ''), subject FROM events",
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )?;
            while let Some(r) = rows.next()? {
                cells.add(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
            }
        }
        write_rollup(&mut tx, cells.take())?;
        tx.commit()?;
        Ok(())
    }

    /// The stored key `name`, if one was made.
    pub fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client
            .borrow_mut()
            .query_opt("SELECT value FROM secrets WHERE name = $1", &[&name])?
            .map(|r| r.get(0)))
    }

    /// The stored key `name`, made by `make` and stored the first time; racing processes
    /// agree on the first one stored.
    pub fn secret_or_init(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
        now_micros: i64,
    ) -> Result<Vec<u8>> {
        if let Some(v) = self.secret(name)? {
            return Ok(v);
        }
        let v = make();
        self.client.get_mut().execute(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&name, &v, &now_micros],
        )?;
        Ok(self.secret(name)?.unwrap_or(v))
    }
}

/// Inside a prune's transaction (which holds the write lock): drops the event partitions of
/// days wholly before `t`, deletes the cut-off day's older events, and the observations and
/// rejects past it. Returns (events, observations, rejects) removed and the dropped days,
/// which the caller forgets from its partition cache once the transaction commits.
fn prune_events(tx: &mut Transaction<'_>, t: i64) -> Result<((u64, u64, u64), Vec<i64>)> {
    let cut_day = crate::retention::cut_day(botwatch_model::Timestamp(t));
    let parts = tx.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'events'::regclass",
        &[],
    )?;
    let mut events = 0u64;
    let mut dropped = Vec::new();
    for r in parts {
        let name: String = r.get(0);
        let Some(day) = name.strip_prefix("events_d").and_then(|d| d.parse::<i64>().ok()) else {
            continue;
        };
        if day < cut_day {
            let n: i64 = tx.query_one(&format!("SELECT COUNT(*) FROM {name}"), &[])?.get(0);
            events += n as u64;
            tx.batch_execute(&format!("DROP TABLE {name}"))?;
            dropped.push(day);
        }
    }
    // Whole days, as on SQLite: the partitions are the days.
    let observations = tx.execute("DELETE FROM observations WHERE last_seen < $1", &[&t])?;
    let rejects = tx.execute(
        "DELETE FROM rejects WHERE report_id IN (SELECT id FROM reports WHERE ingested_at < $1)",
        &[&t],
    )?;
    Ok(((events, observations, rejects), dropped))
}

/// Adds a maintained counter's change in the caller's transaction.
pub(crate) fn bump(tx: &mut Transaction<'_>, name: &str, by: i64) -> Result<()> {
    if by != 0 {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = counters.value + $2",
            &[&name, &by],
        )?;
    }
    Ok(())
}

fn partition_name(day: i64) -> String {
    // Days before 1970 (negative) are not real sightings but must not break the name.
    if day < 0 { format!("events_dm{}", -day) } else { format!("events_d{day}") }
}

/// The stored observations of these subjects last seen at or after `floor`.
fn load_observations(tx: &mut Transaction<'_>, subjects: &[&str], floor: i64) -> Result<Vec<ObsState>> {
    let rows = tx.query(
        "SELECT id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, sources, tlp
         FROM observations WHERE last_seen >= $1 AND subject = ANY($2)",
        &[&floor, &subjects],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            ObsState::stored(
                r.get(0),
                r.get(1),
                r.get::<_, &str>(2),
                r.get(3),
                r.get(4),
                r.get::<_, Option<i64>>(5).map(|a| a as u32),
                r.get(6),
                (r.get(7), r.get(8), r.get(9)),
                r.get::<_, &str>(10),
                r.get::<_, Option<i16>>(11).map(|t| t as u8),
            )
        })
        .collect())
}

struct PgWriter<'s> {
    tx: Transaction<'s>,
    config: &'s ::postgres::Config,
    partitions: &'s Mutex<HashSet<i64>>,
    report_id: i64,
    feed: String,
    obs: Obs,
    days: crate::rollup::DayCells,
}

const EVENT_COLUMNS: &str = "id, day, report_id, observation_id, fingerprint, line, feed, time_source, time_observation, ip, subject, asn, cc, type, family, doc, raw";
const EVENT_TYPES: &[Type] = &[
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
];

impl Store for PgStore {
    fn begin_report<'s>(&'s mut self, meta: &ReportMeta) -> Result<Option<Box<dyn ReportWriter + 's>>> {
        let window_us = self.cfg.dedup_window_secs.saturating_mul(1_000_000);
        // The writer's transaction borrows the client; partitions are made on connections
        // of their own from the config.
        let PgStore { client, config, partitions, .. } = self;
        let mut tx = client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        // Asked under the lock: two intakes delivering the same report at once store it
        // once, the second sees it.
        if tx.query_opt("SELECT id FROM reports WHERE sha256 = $1", &[&meta.sha256])?.is_some() {
            return Ok(None);
        }
        let row = tx.query_one(
            "INSERT INTO reports (sha256, feed, name, source, size, observed_at, ingested_at, archive, feed_info)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
            &[
                &meta.sha256,
                &meta.feed,
                &meta.name,
                &meta.source,
                &(meta.size as i64),
                &meta.observed_at.micros(),
                &botwatch_model::Clock::now(&botwatch_model::SystemClock).micros(),
                &meta.archive,
                &meta.feed_info.as_ref().and_then(|f| serde_json::to_string(f).ok()),
            ],
        )?;
        let report_id: i64 = row.get(0);
        let next_obs_id: i64 = tx.query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM observations", &[])?.get(0);
        Ok(Some(Box::new(PgWriter {
            tx,
            config,
            partitions,
            report_id,
            feed: meta.feed.clone(),
            obs: Obs::new(window_us, next_obs_id),
            days: Default::default(),
        })))
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let (wh, args) = where_clause(q, true, Dialect::Postgres);
        let sql = format!(
            "SELECT e.id, e.report_id, e.observation_id, e.doc, e.raw, e.line, e.feed, e.time_source, e.time_observation, e.ip, e.asn, e.cc, e.type, e.family, r.feed_info, r.doc_keys
             FROM events e JOIN reports r ON r.id = e.report_id {wh} ORDER BY e.id LIMIT {}",
            q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64)
        );
        let rows = self.with_client(|c| c.query(&numbered(&sql), &pg_args(&args)))?;
        let mut feeds: HashMap<i64, Arc<botwatch_model::FeedInfo>> = HashMap::new();
        let mut dicts: HashMap<i64, Option<Vec<String>>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let report_id: i64 = r.get(1);
            let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("event {id}: {e}"));
            let keys = match dicts.entry(report_id) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let keys: Option<&str> = r.get(15);
                    v.insert(match keys {
                        Some(k) => Some(serde_json::from_str::<Vec<String>>(k).map_err(|e| corrupt(&e))?),
                        None => None,
                    })
                }
            };
            let doc: &str = r.get(3);
            let mut map = crate::encode::read_document(doc, keys.as_deref()).map_err(|e| corrupt(&e))?;
            map.insert("classification.type".into(), r.get::<_, String>(12).into());
            if let Some(t) = r.get::<_, Option<i64>>(7) {
                map.insert("time.source".into(), Timestamp(t).to_rfc3339().into());
            }
            map.insert("time.observation".into(), Timestamp(r.get(8)).to_rfc3339().into());
            if let Some(ip) = r.get::<_, Option<&[u8]>>(9)
                && let Ok(b) = <[u8; 16]>::try_from(ip)
            {
                map.insert("source.ip".into(), key_ip(b).to_string().into());
            }
            if let Some(a) = r.get::<_, Option<i64>>(10) {
                map.insert("source.asn".into(), a.into());
            }
            if let Some(c) = r.get::<_, Option<String>>(11) {
                map.insert("source.geolocation.cc".into(), c.into());
            }
            if let Some(f) = r.get::<_, Option<String>>(13) {
                map.insert("malware.name".into(), f.into());
            }
            let mut event = Event::from_intelmq(&map).map_err(|e| corrupt(&e))?;
            event.feed = match feeds.get(&report_id) {
                Some(f) => f.clone(),
                None => {
                    let info: Option<&str> = r.get(14);
                    let fid: &str = r.get(6);
                    let f = info
                        .and_then(|i| serde_json::from_str::<botwatch_model::FeedInfo>(i).ok())
                        .unwrap_or_else(|| botwatch_model::FeedInfo::new(fid, fid, "", 100.0));
                    let f = Arc::new(f);
                    feeds.insert(report_id, f.clone());
                    f
                }
            };
            event.raw = Bytes::copy_from_slice(r.get::<_, &[u8]>(4));
            event.line = r.get::<_, i64>(5) as u64;
            out.push(StoredEvent { id, report_id, observation_id: r.get(2), event });
        }
        Ok(out)
    }

    fn observations(&self, q: &EventQuery) -> Result<Vec<Observation>> {
        let (wh, args) = where_clause(q, false, Dialect::Postgres);
        let limit = q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
        let sql = format!(
            "SELECT id, subject, type, family, asn, cc, first_seen, last_seen, count, sources, confidence FROM observations {wh} ORDER BY id LIMIT {limit}"
        );
        let rows = self.with_client(|c| c.query(&numbered(&sql), &pg_args(&args)))?;
        Ok(rows
            .iter()
            .map(|r| Observation {
                id: r.get(0),
                subject: r.get(1),
                classification_type: r.get(2),
                family: r.get(3),
                asn: r.get::<_, Option<i64>>(4).map(|a| a as u32),
                cc: r.get(5),
                first_seen: Timestamp(r.get(6)),
                last_seen: Timestamp(r.get(7)),
                count: r.get::<_, i64>(8) as u64,
                sources: serde_json::from_str(r.get::<_, &str>(9)).unwrap_or_default(),
                confidence: r.get(10),
            })
            .collect())
    }

    fn rejects(&self, report_id: Option<i64>, feed: Option<&str>, limit: u64) -> Result<Vec<StoredReject>> {
        let limit = limit.min(i64::MAX as u64) as i64;
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, report_id, feed, line, reason, raw FROM rejects
                 WHERE ($1::bigint IS NULL OR report_id = $1) AND ($2::text IS NULL OR feed = $2) ORDER BY id LIMIT $3",
                &[&report_id, &feed, &limit],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| StoredReject {
                id: r.get(0),
                report_id: r.get(1),
                feed: r.get(2),
                line: r.get::<_, i64>(3) as u64,
                reason: r.get(4),
                raw: r.get(5),
            })
            .collect())
    }

    fn reports(&self, limit: u64) -> Result<Vec<StoredReport>> {
        let limit = limit.min(i64::MAX as u64) as i64;
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, sha256, feed, name, source, size, observed_at, ingested_at, events, duplicates, merged, rejects, warnings, archive
                 FROM reports ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| StoredReport {
                id: r.get(0),
                sha256: r.get(1),
                feed: r.get(2),
                name: r.get(3),
                source: r.get(4),
                size: r.get::<_, i64>(5) as u64,
                observed_at: Timestamp(r.get(6)),
                ingested_at: Timestamp(r.get(7)),
                events: r.get::<_, i64>(8) as u64,
                duplicates: r.get::<_, i64>(9) as u64,
                merged: r.get::<_, i64>(10) as u64,
                rejects: r.get::<_, i64>(11) as u64,
                warnings: serde_json::from_str(r.get::<_, &str>(12)).unwrap_or_default(),
                archive: r.get(13),
            })
            .collect())
    }

    fn stats(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        let Some((sql, args)) = crate::rollup::stats_plan(by, q) else {
            return self.stats_scan(by, q);
        };
        let rows = self.with_client(|c| c.query(&numbered(&sql), &pg_args(&args)))?;
        let mut fold = StatsFold::new(by);
        for r in &rows {
            let key = match r.columns()[0].type_() {
                &Type::INT8 => GroupKey::Int(r.get(0)),
                _ => GroupKey::Text(r.get(0)),
            };
            fold.add(key, r.get(1), r.get::<_, &[u8]>(2))?;
        }
        Ok(fold.finish(q.limit))
    }

    fn fetch_state(&self, url: &str) -> Result<Option<FetchState>> {
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT url, feed, etag, last_modified, last_fetch, last_status, last_sha256 FROM fetch_state WHERE url = $1",
                &[&url],
            )
        })?;
        Ok(row.map(|r| FetchState {
            url: r.get(0),
            feed: r.get(1),
            etag: r.get(2),
            last_modified: r.get(3),
            last_fetch: r.get::<_, Option<i64>>(4).map(Timestamp),
            last_status: r.get(5),
            last_sha256: r.get(6),
        }))
    }

    fn save_fetch_state(&mut self, s: &FetchState) -> Result<()> {
        self.client.get_mut().execute(
            "INSERT INTO fetch_state (url, feed, etag, last_modified, last_fetch, last_status, last_sha256) VALUES ($1,$2,$3,$4,$5,$6,$7)
             ON CONFLICT (url) DO UPDATE SET feed=excluded.feed, etag=excluded.etag, last_modified=excluded.last_modified,
               last_fetch=excluded.last_fetch, last_status=excluded.last_status, last_sha256=excluded.last_sha256",
            &[&s.url, &s.feed, &s.etag, &s.last_modified, &s.last_fetch.map(|t| t.micros()), &s.last_status, &s.last_sha256],
        )?;
        Ok(())
    }

    fn feed_totals(&self) -> Result<Vec<FeedTotals>> {
        // Summed over the reports: one row per report, far fewer than events or cases.
        let rows = self.with_client(|c| {
            c.query(
                "SELECT feed, COUNT(*), COALESCE(SUM(events), 0)::bigint, COALESCE(SUM(rejects), 0)::bigint,
                        COALESCE(SUM(duplicates), 0)::bigint FROM reports GROUP BY feed ORDER BY feed",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| FeedTotals {
                feed: r.get(0),
                reports: r.get::<_, i64>(1) as u64,
                events: r.get::<_, i64>(2) as u64,
                rejects: r.get::<_, i64>(3) as u64,
                duplicates: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    fn counts(&self) -> Result<Counts> {
        let r = self.with_client(|c| {
            // Maintained by the writers and by retention: nothing counted again.
            c.query_one(
                "SELECT COALESCE(MAX(value) FILTER (WHERE name = 'reports'), 0),
                        COALESCE(MAX(value) FILTER (WHERE name = 'events'), 0),
                        COALESCE(MAX(value) FILTER (WHERE name = 'rejects'), 0),
                        COALESCE(MAX(value) FILTER (WHERE name = 'observations'), 0) FROM counters",
                &[],
            )
        })?;
        Ok(Counts {
            reports: r.get::<_, i64>(0) as u64,
            events: r.get::<_, i64>(1) as u64,
            rejects: r.get::<_, i64>(2) as u64,
            observations: r.get::<_, i64>(3) as u64,
        })
    }

    fn for_each_indicator(&self, types: &[String], f: &mut dyn FnMut(IndicatorRow<'_>)) -> Result<()> {
        if types.is_empty() {
            return Ok(());
        }
        // Streamed (millions of rows are never all in memory), on a connection of its own:
        // `f` may query the store meanwhile.
        let mut c = self.stream_client()?;
        {
            let mut rows = c.query_raw(
                "SELECT id, subject, type, family, first_seen, last_seen, sources FROM observations WHERE type = ANY($1)",
                [&types as &(dyn ToSql + Sync)],
            )?;
            while let Some(r) = rows.next()? {
                f(IndicatorRow {
                    id: r.get(0),
                    subject: r.get(1),
                    classification_type: r.get(2),
                    family: r.get(3),
                    first_seen: Timestamp(r.get(4)),
                    last_seen: Timestamp(r.get(5)),
                    sources_json: r.get(6),
                });
            }
            Ok(())
        }
    }

    fn generation(&self, ignore_feeds: &[&str]) -> Result<String> {
        let row = self.with_client(|c| {
            c.query_one(
                "SELECT COALESCE((SELECT id::text || ':' || sha256 || ':' || ingested_at::text FROM reports
                   WHERE NOT (feed = ANY($1)) ORDER BY id DESC LIMIT 1), '-')",
                &[&ignore_feeds],
            )
        })?;
        Ok(row.get(0))
    }

    fn newest_event_id(&self) -> Result<i64> {
        Ok(self.with_client(|c| c.query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[]))?.get(0))
    }

    fn addresses_between(&self, after_id: i64, upto_id: i64) -> Result<Vec<[u8; 16]>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT ip FROM events WHERE id > $1 AND id <= $2 AND ip IS NOT NULL",
                &[&after_id, &upto_id],
            )
        })?;
        Ok(rows.iter().filter_map(|r| <[u8; 16]>::try_from(r.get::<_, &[u8]>(0)).ok()).collect())
    }
}

impl PgStore {
    /// A second connection, for a long read whose consumer may use the store meanwhile.
    fn stream_client(&self) -> Result<Client> {
        Ok(self.config.connect(NoTls)?)
    }

    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, ::postgres::Error>) -> Result<T> {
        Ok(f(&mut self.client.borrow_mut())?)
    }
}

impl PgWriter<'_> {
    /// Fingerprints of these events already stored (in this transaction or before).
    fn stored_fingerprints(&mut self, events: &[EncodedEvent]) -> Result<HashSet<i64>> {
        let fps: Vec<i64> = events.iter().map(|e| e.fingerprint).collect();
        let days: Vec<i64> = {
            let mut d: Vec<i64> = events.iter().map(|e| crate::rollup::day_of(e.time)).collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        let rows = self.tx.query(
            "SELECT fingerprint FROM events WHERE day = ANY($1) AND fingerprint = ANY($2)",
            &[&days, &fps],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl ReportWriter for PgWriter<'_> {
    fn write_batch(&mut self, events: &[EncodedEvent], rejects: &[Reject]) -> Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        let keys = event_keys(events);
        {
            let tx = &mut self.tx;
            self.obs.preload(events, &keys, |subjects, floor| load_observations(tx, subjects, floor))?;
        }
        let mut seen = self.stored_fingerprints(events)?;
        // Duplicates of stored events, or of an earlier line of this batch, go no further.
        let new: Vec<bool> = events.iter().map(|e| seen.insert(e.fingerprint)).collect();
        let fresh = new.iter().filter(|n| **n).count() as i64;
        let days: HashSet<i64> = events
            .iter()
            .zip(&new)
            .filter(|(_, n)| **n)
            .map(|(e, _)| crate::rollup::day_of(e.time))
            .collect();
        ensure_partitions(self.config, self.partitions, &days)?;
        // A block of ids in one round trip: the sequence is advanced by the batch's size.
        // Nobody else draws from it meanwhile (the write lock), so the block is ours.
        let mut next_id: i64 = if fresh > 0 {
            let last: i64 = self
                .tx
                .query_one("SELECT setval('events_id_seq', nextval('events_id_seq') + $1 - 1)", &[&fresh])?
                .get(0);
            last - fresh + 1
        } else {
            0
        };
        let sink = self.tx.copy_in(&format!("COPY events ({EVENT_COLUMNS}) FROM STDIN BINARY"))?;
        let mut w = BinaryCopyInWriter::new(sink, EVENT_TYPES);
        for ((e, key), new) in events.iter().zip(keys).zip(new) {
            if !new {
                out.duplicates += 1;
                continue;
            }
            let obs_id = match key {
                Some((k, t)) => {
                    let (i, merged) = self.obs.observe(k, e, t);
                    if merged {
                        out.merged += 1;
                    } else {
                        out.new_observations += 1;
                    }
                    Some(self.obs.touched[i].id)
                }
                None => None,
            };
            let doc = std::str::from_utf8(&e.doc).map_err(|err| StoreError::Corrupt(err.to_string()))?;
            let id = next_id;
            next_id += 1;
            w.write(&[
                &id,
                &crate::rollup::day_of(e.time),
                &self.report_id,
                &obs_id,
                &e.fingerprint,
                &e.line,
                &e.feed.as_str(),
                &e.time_source,
                &e.time_observation,
                &e.ip.as_ref().map(|b| &b[..]),
                &e.subject.as_deref(),
                &e.asn.map(i64::from),
                &e.cc.as_deref(),
                &e.ty,
                &e.family.as_deref(),
                &doc,
                &&e.raw[..],
            ])?;
            self.days.add(
                e.time,
                e.ty,
                e.family.as_deref().unwrap_or(""),
                e.feed.as_str(),
                e.asn.map(i64::from),
                e.cc.as_deref().unwrap_or(""),
                e.subject.as_deref(),
            );
            out.inserted += 1;
        }
        w.finish()?;
        if !rejects.is_empty() {
            let sink =
                self.tx.copy_in("COPY rejects (report_id, feed, line, reason, raw) FROM STDIN BINARY")?;
            let mut w =
                BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::BYTEA]);
            for r in rejects {
                w.write(&[&self.report_id, &self.feed, &(r.line as i64), &r.reason, &&r.raw[..]])?;
                out.rejects += 1;
            }
            w.finish()?;
        }
        Ok(out)
    }

    fn commit(self: Box<Self>, totals: &ReportTotals) -> Result<i64> {
        let mut me = *self;
        let rows: Vec<ObservationRow> =
            std::mem::take(&mut me.obs.touched).into_iter().map(|o| o.into_row()).collect();
        write_observations(&mut me.tx, &rows)?;
        write_rollup(&mut me.tx, me.days.take())?;
        let o = &totals.outcome;
        let opened = rows.iter().filter(|o| o.opened()).count() as i64;
        for (name, by) in [
            ("events", o.inserted as i64),
            ("observations", opened),
            ("reports", 1),
            ("rejects", o.rejects as i64),
        ] {
            bump(&mut me.tx, name, by)?;
        }
        me.tx.execute(
            "UPDATE reports SET events = $1, duplicates = $2, merged = $3, rejects = $4, warnings = $5, doc_keys = $6 WHERE id = $7",
            &[
                &(o.inserted as i64),
                &(o.duplicates as i64),
                &(o.merged as i64),
                &(o.rejects as i64),
                &serde_json::to_string(&totals.warnings).unwrap_or_else(|_| "[]".into()),
                &(!totals.doc_keys.is_empty()).then(|| serde_json::to_string(&totals.doc_keys).ok()).flatten(),
                &me.report_id,
            ],
        )?;
        let id = me.report_id;
        me.tx.commit()?;
        Ok(id)
    }
}

/// Inserts or updates the observations a report touched: copied into a temporary table,
/// then one upsert.
fn write_observations(tx: &mut Transaction<'_>, rows: &[ObservationRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    tx.batch_execute("CREATE TEMP TABLE IF NOT EXISTS obs_in (LIKE observations) ON COMMIT DELETE ROWS")?;
    let sink = tx.copy_in(
        "COPY obs_in (id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, sources, confidence, tlp) FROM STDIN BINARY",
    )?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::FLOAT8,
        Type::INT2,
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    let mut sources = String::new();
    for o in rows {
        if !(o.existing || o.opened()) {
            continue;
        }
        sources.clear();
        sources_json(&o.sources, &mut sources);
        let conf = confidence(o.sources.iter().map(|(_, a)| a));
        w.write(&[
            &o.id,
            &o.subject,
            &o.ty,
            &o.family,
            &o.ip.as_ref().map(|b| &b[..]),
            &o.asn.map(i64::from),
            &o.cc,
            &o.first,
            &o.last,
            &o.count,
            &sources,
            &conf,
            &o.tlp.map(i16::from),
        ])?;
    }
    w.finish()?;
    tx.batch_execute(
        "INSERT INTO observations SELECT * FROM obs_in
         ON CONFLICT (id) DO UPDATE SET asn=excluded.asn, cc=excluded.cc, first_seen=excluded.first_seen,
           last_seen=excluded.last_seen, count=excluded.count, sources=excluded.sources,
           confidence=excluded.confidence, tlp=excluded.tlp;
         TRUNCATE obs_in",
    )?;
    Ok(())
}

/// Adds a report's rollup rows to the three tables: the stored rows of the same keys are
/// read in one query per table, merged here (sketches merge in Rust), and written back
/// with one upsert per table.
fn write_rollup(tx: &mut Transaction<'_>, rows: Vec<crate::rollup::RollupRow>) -> Result<()> {
    for table in [Table::Full, Table::Threat, Table::Net] {
        let cols = table.key_columns();
        let mut mine: HashMap<String, (Vec<Arg>, i64, Sketch)> = HashMap::new();
        let mut days: Vec<i64> = Vec::new();
        for r in rows.iter().filter(|r| r.table == table) {
            let k = key_string(&r.key);
            if let Some(Arg::Int(d)) = r.key.first() {
                days.push(*d);
            }
            mine.insert(k, (r.key.clone(), r.events, r.subjects.clone()));
        }
        if mine.is_empty() {
            continue;
        }
        days.sort_unstable();
        days.dedup();
        let name = table.name();
        let stored = tx.query(
            &format!("SELECT {}, events, subjects FROM {name} WHERE day = ANY($1)", cols.join(", ")),
            &[&days],
        )?;
        for r in &stored {
            let key: Vec<Arg> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| match *c {
                    "day" | "asn" => Arg::Int(r.get(i)),
                    _ => Arg::Text(r.get(i)),
                })
                .collect();
            if let Some(m) = mine.get_mut(&key_string(&key)) {
                m.1 += r.get::<_, i64>(cols.len());
                m.2.merge_encoded(r.get::<_, &[u8]>(cols.len() + 1))
                    .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
            }
        }
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {name}_in (LIKE {name}) ON COMMIT DELETE ROWS"
        ))?;
        let mut types: Vec<Type> =
            cols.iter().map(|c| if matches!(*c, "day" | "asn") { Type::INT8 } else { Type::TEXT }).collect();
        types.push(Type::INT8);
        types.push(Type::BYTEA);
        let all = cols.join(", ");
        let sink = tx.copy_in(&format!("COPY {name}_in ({all}, events, subjects) FROM STDIN BINARY"))?;
        let mut w = BinaryCopyInWriter::new(sink, &types);
        for (_, (key, events, mut sketch)) in mine {
            let blob = sketch.encode();
            let mut vals: Vec<&(dyn ToSql + Sync)> = pg_args(&key);
            vals.push(&events);
            vals.push(&blob);
            w.write(&vals)?;
        }
        w.finish()?;
        tx.batch_execute(&format!(
            "INSERT INTO {name} SELECT * FROM {name}_in ON CONFLICT ({all}) DO UPDATE SET events = excluded.events, subjects = excluded.subjects;
             TRUNCATE {name}_in"
        ))?;
    }
    Ok(())
}

fn key_string(key: &[Arg]) -> String {
    let mut s = String::new();
    for a in key {
        match a {
            Arg::Int(i) => s.push_str(&i.to_string()),
            Arg::Text(t) => s.push_str(t),
            Arg::Blob(b) => s.push_str(&format!("{b:?}")),
        }
        s.push('\u{1f}');
    }
    s
}

/// For tests of this and other crates: a schema of its own in the test server's database
/// (`BOTWATCH_PG_URL`), dropped when the value is. A test asks with [`TestSchema::new`] and
/// skips, saying so, when no server is configured; under `BOTWATCH_REQUIRE_PEERS=1` (CI) a
/// missing server is a failure instead.
pub struct TestSchema {
    /// Connects to the schema (its `search_path` set in the URL's options).
    pub url: String,
    base: String,
    name: String,
}

impl TestSchema {
    pub fn new(test: &str) -> Option<TestSchema> {
        let base = match std::env::var("BOTWATCH_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("BOTWATCH_REQUIRE_PEERS").as_deref() != Ok("1"),
                    "{test}: BOTWATCH_PG_URL is not set but BOTWATCH_REQUIRE_PEERS=1 (start one with scripts/postgres/start.sh)"
                );
                eprintln!(
                    "{test}: skipped on PostgreSQL: BOTWATCH_PG_URL is not set (scripts/postgres/start.sh)"
                );
                return None;
            }
        };
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut c = base
            .parse::<::postgres::Config>()
            .unwrap_or_else(|e| panic!("BOTWATCH_PG_URL: {e}"))
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("{test}: cannot reach PostgreSQL at {}: {e}", redact(&base)));
        c.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Some(TestSchema { url, base, name })
    }

    pub fn store(&self, cfg: StoreConfig) -> PgStore {
        PgStore::connect(&self.url, cfg).expect("connect to the test schema")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = self.base.parse::<::postgres::Config>().and_then(|c| c.connect(NoTls)) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

//! The embedded default: one SQLite file in WAL mode.
//!
//! Write path: one transaction per report, prepared statements, events into compressed
//! blocks (`eventlog.rs`) after `INSERT OR IGNORE` of their fingerprint (feed, raw line, time)
//! so an overlapping report adds nothing twice. Observations are resolved in memory per report: the keys of a batch are
//! looked up with a few `IN (…)` queries instead of one query per event, and touched
//! observations are written once, at commit.
//!
//! The writer connection is the pipeline's serial stage, so for a store on disk the
//! resolution runs on the producer's thread ([`ReportWriter::resolver`]) over a second,
//! read-only connection. That is safe because the writer holds the write lock from
//! `begin_report` on: the reader sees exactly the committed state, no other writer can
//! allocate observation ids, and this report's own observations are in the resolver's memory.

use crate::encode::EncodedEvent;
use crate::filter::{Arg, Dialect, where_clause};
use crate::resolve::{Obs, ObsState, event_keys, sources_json};
use crate::*;
use botwatch_model::Timestamp;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter, types::Value as Sql};
use std::collections::HashMap;
use std::path::Path;

/// Versioned migrations; `PRAGMA user_version` records the last one applied.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_outbox.sql")),
    (3, include_str!("../migrations/sqlite/0003_leases.sql")),
    (4, include_str!("../migrations/sqlite/0004_cases.sql")),
    (5, include_str!("../migrations/sqlite/0005_doc_keys.sql")),
    (6, include_str!("../migrations/sqlite/0006_tokens.sql")),
    (7, include_str!("../migrations/sqlite/0007_event_days.sql")),
    (8, include_str!("../migrations/sqlite/0008_cases_next_check.sql")),
    (9, include_str!("../migrations/sqlite/0009_event_days_slim.sql")),
    (10, include_str!("../migrations/sqlite/0010_outbox_claims.sql")),
    (11, include_str!("../migrations/sqlite/0011_secrets.sql")),
    (12, include_str!("../migrations/sqlite/0012_share.sql")),
    (13, include_str!("../migrations/sqlite/0013_jobs.sql")),
    (14, include_str!("../migrations/sqlite/0014_stream_lag.sql")),
    (15, include_str!("../migrations/sqlite/0015_event_blocks.sql")),
    (16, include_str!("../migrations/sqlite/0016_metric_counts.sql")),
];

/// The last migration that changes the per-day rollup's tables: they are then (re)filled
/// from the stored events, once, in its transaction.
const ROLLUP_MIGRATION: i64 = 9;

/// The migration that moves events into compressed blocks (see `eventlog.rs`).
const BLOCKS_MIGRATION: i64 = 15;

/// Why this process cannot write the store at `path` (the file, or the directory SQLite
/// writes its journal and WAL into), if it cannot.
fn not_writable(path: &Path) -> Option<String> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    if path.exists() && std::fs::OpenOptions::new().append(true).open(path).is_err() {
        return Some("the file is not writable by this user".into());
    }
    // The only portable test of a directory's write permission is to write in it.
    let probe = dir.join(format!(".botwatch-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(e) => Some(format!(
            "its directory {} is not writable ({e}); SQLite keeps its write-ahead log there",
            dir.display()
        )),
    }
}

/// `path` for a `file:` URI: the characters URIs give a meaning escaped.
fn uri_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// For command-line writers: wait for another process's write lock (an ingest holds it for
/// a whole report, minutes for a large one) up to an hour instead of failing after
/// [`BUSY_TIMEOUT`], saying on standard error every five seconds what it waits for.
fn patient(retries: i32) -> bool {
    std::thread::sleep(std::time::Duration::from_millis(50));
    if retries > 0 && retries % 100 == 0 {
        eprintln!(
            "botwatch: waiting {} s for the store's write lock (another botwatch process is writing, e.g. an ingest)…",
            retries / 20
        );
    }
    retries < 20 * 3600
}

/// How long a statement waits for another connection's lock before failing busy.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The schema version a store opened by this build has.
pub fn schema_version_latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub struct SqliteStore {
    // Visible to the sibling modules (outbox, cases, leases) that add their own tables.
    pub(crate) conn: Connection,
    cfg: StoreConfig,
    /// `None` in memory: no second connection can see the data, the writer resolves.
    path: Option<std::path::PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path, cfg: StoreConfig) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        // SQLite silently opens a file it may not write read-only, and fails later on the
        // first write with "attempt to write a readonly database": say why up front instead.
        if let Some(why) = not_writable(path) {
            return Err(StoreError::NotWritable { path: path.display().to_string(), why });
        }
        let conn = Connection::open(path)?;
        Self::init(conn, cfg, Some(path.to_path_buf()))
    }

    /// Opens an existing store for reading only: nothing is created, migrated or written
    /// (`query_only`), so a user who may read but not write the store (or its directory)
    /// can query it. Where SQLite cannot create the WAL index beside the file (a directory
    /// this user cannot write), the file is opened as immutable: nobody can be writing it
    /// through this directory's WAL anyway.
    pub fn open_read_only(path: &Path, cfg: StoreConfig) -> Result<Self> {
        use rusqlite::OpenFlags;
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let check = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let conn = match Connection::open_with_flags(path, flags).and_then(|c| check(&c).map(|_| c)) {
            Ok(c) => c,
            Err(first) => {
                let uri = format!("file:{}?immutable=1", uri_path(path));
                match Connection::open_with_flags(&uri, flags).and_then(|c| check(&c).map(|_| c)) {
                    Ok(c) => c,
                    Err(_) => return Err(first.into()),
                }
            }
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA query_only=1; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384;")?;
        conn.set_prepared_statement_cache_capacity(64);
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = schema_version_latest();
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found < known {
            return Err(StoreError::TooOld { found, known });
        }
        Ok(SqliteStore { conn, cfg, path: Some(path.to_path_buf()) })
    }

    pub fn open_in_memory(cfg: StoreConfig) -> Result<Self> {
        Self::init(Connection::open_in_memory()?, cfg, None)
    }

    fn init(conn: Connection, cfg: StoreConfig, path: Option<std::path::PathBuf>) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers (the API, `botwatch events`) never block the ingest writer.
        // synchronous=NORMAL: a committed report survives a process crash; a power cut may
        // lose the last commit but never corrupts the file.
        // page_size applies to new files only; 8 KiB halves B-tree splits for ~1 KiB events.
        // 16 MiB page cache: as fast as 64 or 256 MiB (measured); 4 MiB was as fast on a
        // sinkhole report but a third slower on a 200k-indicator feed, whose observation
        // indexes then spill and are read back during the transaction.
        // wal_autocheckpoint=0: a commit never stalls on copying the WAL into the main
        // file; `checkpoint()` does that when the caller is idle (and SQLite on close).
        // recursive_triggers: a row that `INSERT OR REPLACE` replaces fires its delete
        // trigger, which keeps the maintained counts (migration 16) right.
        conn.execute_batch(
            "PRAGMA page_size=8192; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384; PRAGMA wal_autocheckpoint=0; PRAGMA recursive_triggers=1;",
        )?;
        // Room for the query shapes of the server's read paths (the default is 16).
        conn.set_prepared_statement_cache_capacity(64);
        let mut s = SqliteStore { conn, cfg, path };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew { found: current, known });
        }
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            if *v == ROLLUP_MIGRATION {
                crate::rollup::backfill_rows(&tx)?;
            }
            if *v == BLOCKS_MIGRATION {
                crate::eventlog::migrate_rows(&tx)?;
                for (name, table) in
                    [("reports", "reports"), ("observations", "observations"), ("rejects", "rejects")]
                {
                    tx.execute(
                        &format!(
                            "INSERT OR REPLACE INTO counters (name, value) SELECT ?, COUNT(*) FROM {table}"
                        ),
                        [name],
                    )?;
                }
            }
            tx.execute_batch(&format!("PRAGMA user_version = {v}"))?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Waits (up to an hour, with progress on standard error) for other writers instead of
    /// failing after ten seconds: what a command-line writer wants, not a server request.
    pub fn wait_for_writers(&mut self) -> Result<()> {
        self.conn.busy_handler(Some(patient))?;
        Ok(())
    }

    /// Copies the write-ahead log into the main file and truncates it. Cheap when idle;
    /// call after a burst of ingests (the CLI does, after its last report).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// `stats` by scanning the events: exact, and able to filter on anything, but it reads
    /// every matching event. [`Store::stats`] uses the per-day rollup when it can.
    pub fn stats_scan(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        use std::collections::HashSet;
        let mut groups: HashMap<String, (u64, HashSet<String>)> = HashMap::new();
        let all = EventQuery { limit: None, ..q.clone() };
        crate::eventlog::scan(&self.conn, &all, false, &mut |h| {
            let l = h.lean;
            let key = match by {
                GroupBy::Family => l.family.clone().unwrap_or_default(),
                GroupBy::Asn => l.asn.map(|a| a.to_string()).unwrap_or_default(),
                GroupBy::Country => l.cc.clone().unwrap_or_default(),
                GroupBy::Day => Timestamp(l.time()).day(),
                GroupBy::Feed => l.feed.clone(),
                GroupBy::Type => l.ty.clone(),
            };
            let g = groups.entry(key).or_default();
            g.0 += 1;
            if let Some(s) = &l.subject {
                g.1.insert(s.clone());
            }
            Ok(true)
        })?;
        let mut out: Vec<StatRow> = groups
            .into_iter()
            .map(|(key, (events, subjects))| StatRow {
                key,
                events,
                subjects: subjects.len() as u64,
                approximate: false,
            })
            .collect();
        if by == GroupBy::Day {
            out.sort_by(|a, b| a.key.cmp(&b.key));
        } else {
            out.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
        }
        out.truncate(q.limit.unwrap_or(u64::MAX).min(usize::MAX as u64) as usize);
        Ok(out)
    }

    /// Rebuilds the per-day rollup from the stored events (it is maintained at ingest; this
    /// is for a repaired or hand-edited database).
    pub fn rebuild_rollup(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        crate::rollup::backfill(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Settings for a connection that serves many small random reads (the HTTP server's):
    /// the file is memory-mapped, so a page the OS has cached is read in place instead of
    /// copied into SQLite's own cache by a system call per page, which was a quarter of a
    /// portal look-up on a 10 GB store. Writes still go through the normal path.
    pub fn tune_for_reads(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA mmap_size = 68719476736;")?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

struct SqliteWriter<'s> {
    tx: Transaction<'s>,
    report_id: i64,
    obs: Obs,
    path: Option<std::path::PathBuf>,
    /// Set once a resolver was handed out: events then arrive with their observation.
    resolved: Option<Vec<ObservationRow>>,
    /// Observations of events that turned out to be duplicates: (id, opened it).
    uncount: Vec<(i64, bool)>,
    /// This report's share of the per-day rollup, merged into it at commit.
    days: crate::rollup::DayCells,
    events: crate::eventlog::EventSink,
}

/// Resolves observations on the producer's thread with its own read-only connection.
struct SqliteResolver {
    conn: Connection,
    obs: Obs,
}

impl Store for SqliteStore {
    fn begin_report<'s>(&'s mut self, meta: &ReportMeta) -> Result<Option<Box<dyn ReportWriter + 's>>> {
        let window_us = self.cfg.dedup_window_secs.saturating_mul(1_000_000);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Asked under the write lock: two intakes delivering the same report at once (the
        // same Shadowserver report by mail and by the API) store it once, the second sees it.
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM reports WHERE sha256 = ?", [&meta.sha256], |r| r.get(0))
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO reports (sha256, feed, name, source, size, observed_at, ingested_at, archive, feed_info) VALUES (?,?,?,?,?,?,?,?,?)",
            params![
                meta.sha256,
                meta.feed,
                meta.name,
                meta.source,
                meta.size as i64,
                meta.observed_at.micros(),
                botwatch_model::Clock::now(&botwatch_model::SystemClock).micros(),
                meta.archive,
                meta.feed_info.as_ref().and_then(|f| serde_json::to_string(f).ok())
            ],
        )?;
        let report_id = tx.last_insert_rowid();
        let next_obs_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM observations", [], |r| r.get(0))?;
        let events = crate::eventlog::EventSink::begin(&tx, report_id)?;
        Ok(Some(Box::new(SqliteWriter {
            events,
            tx,
            report_id,
            obs: Obs::new(window_us, next_obs_id),
            path: self.path.clone(),
            resolved: None,
            uncount: Vec::new(),
            days: Default::default(),
        })))
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let mut reports: HashMap<i64, (std::sync::Arc<botwatch_model::FeedInfo>, Option<Vec<String>>)> =
            HashMap::new();
        let mut out = Vec::new();
        crate::eventlog::scan(&self.conn, q, true, &mut |h| {
            let l = h.lean;
            let id = l.id;
            let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("event {id}: {e}"));
            let (doc, raw) = h.body.ok_or_else(|| corrupt(&"no body"))?;
            if let std::collections::hash_map::Entry::Vacant(slot) = reports.entry(h.report_id) {
                let (info, keys): (Option<String>, Option<String>) = self
                    .conn
                    .prepare_cached("SELECT feed_info, doc_keys FROM reports WHERE id = ?")?
                    .query_row([h.report_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .unwrap_or((None, None));
                let f = info
                    .and_then(|i| serde_json::from_str::<botwatch_model::FeedInfo>(&i).ok())
                    .unwrap_or_else(|| botwatch_model::FeedInfo::new(&l.feed, &l.feed, "", 100.0));
                let keys = match keys {
                    Some(k) => Some(serde_json::from_str::<Vec<String>>(&k).map_err(|e| corrupt(&e))?),
                    None => None,
                };
                slot.insert((std::sync::Arc::new(f), keys));
            }
            let (feed, keys) = &reports[&h.report_id];
            let doc = std::str::from_utf8(doc).map_err(|e| corrupt(&e))?;
            let mut map = crate::encode::read_document(doc, keys.as_deref()).map_err(|e| corrupt(&e))?;
            map.insert("classification.type".into(), l.ty.clone().into());
            if let Some(t) = l.time_source {
                map.insert("time.source".into(), Timestamp(t).to_rfc3339().into());
            }
            map.insert("time.observation".into(), Timestamp(l.time_observation).to_rfc3339().into());
            if let Some(b) = l.ip {
                map.insert("source.ip".into(), key_ip(b).to_string().into());
            }
            if let Some(a) = l.asn {
                map.insert("source.asn".into(), a.into());
            }
            if let Some(c) = &l.cc {
                map.insert("source.geolocation.cc".into(), c.clone().into());
            }
            if let Some(f) = &l.family {
                map.insert("malware.name".into(), f.clone().into());
            }
            let mut event = Event::from_intelmq(&map).map_err(|e| corrupt(&e))?;
            event.feed = feed.clone();
            event.raw = Bytes::copy_from_slice(raw);
            event.line = l.line as u64;
            out.push(StoredEvent { id, report_id: h.report_id, observation_id: l.observation, event });
            Ok(true)
        })?;
        Ok(out)
    }

    fn observations(&self, q: &EventQuery) -> Result<Vec<Observation>> {
        let (wh, args) = where_clause(q, false, Dialect::Sqlite);
        let limit = q.limit.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
        // One address's observations are few: unordered, sorted below (an ORDER BY makes
        // SQLite re-prepare the cached statement for every address; see `cases`).
        let few = q.ip.is_some();
        let tail = if few { String::new() } else { format!("ORDER BY id LIMIT {limit}") };
        let sql = format!(
            "SELECT id, subject, type, family, asn, cc, first_seen, last_seen, count, sources, confidence FROM observations {wh} {tail}"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params_from_iter(sql_args(args)), |r| {
            Ok(Observation {
                id: r.get(0)?,
                subject: r.get(1)?,
                classification_type: r.get(2)?,
                family: r.get(3)?,
                asn: r.get(4)?,
                cc: r.get(5)?,
                first_seen: Timestamp(r.get(6)?),
                last_seen: Timestamp(r.get(7)?),
                count: r.get::<_, i64>(8)? as u64,
                sources: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                confidence: r.get(10)?,
            })
        })?;
        let mut out: Vec<Observation> = rows.collect::<rusqlite::Result<_>>()?;
        if few {
            out.sort_by_key(|o| o.id);
            out.truncate(limit.min(usize::MAX as u64) as usize);
        }
        Ok(out)
    }

    fn rejects(&self, report_id: Option<i64>, feed: Option<&str>, limit: u64) -> Result<Vec<StoredReject>> {
        let mut st = self.conn.prepare(
            "SELECT id, report_id, feed, line, reason, raw FROM rejects WHERE (?1 IS NULL OR report_id = ?1) AND (?2 IS NULL OR feed = ?2) ORDER BY id LIMIT ?3",
        )?;
        let rows = st.query_map(params![report_id, feed, limit.min(i64::MAX as u64) as i64], |r| {
            Ok(StoredReject {
                id: r.get(0)?,
                report_id: r.get(1)?,
                feed: r.get(2)?,
                line: r.get::<_, i64>(3)? as u64,
                reason: r.get(4)?,
                raw: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn reports(&self, limit: u64) -> Result<Vec<StoredReport>> {
        let mut st = self.conn.prepare(
            "SELECT id, sha256, feed, name, source, size, observed_at, ingested_at, events, duplicates, merged, rejects, warnings, archive FROM reports ORDER BY id DESC LIMIT ?",
        )?;
        let rows = st.query_map([limit.min(i64::MAX as u64) as i64], |r| {
            Ok(StoredReport {
                id: r.get(0)?,
                sha256: r.get(1)?,
                feed: r.get(2)?,
                name: r.get(3)?,
                source: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                observed_at: Timestamp(r.get(6)?),
                ingested_at: Timestamp(r.get(7)?),
                events: r.get::<_, i64>(8)? as u64,
                duplicates: r.get::<_, i64>(9)? as u64,
                merged: r.get::<_, i64>(10)? as u64,
                rejects: r.get::<_, i64>(11)? as u64,
                warnings: serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or_default(),
                archive: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stats(&self, by: GroupBy, q: &EventQuery) -> Result<Vec<StatRow>> {
        match crate::rollup::stats(&self.conn, by, q)? {
            Some(rows) => Ok(rows),
            None => self.stats_scan(by, q),
        }
    }

    fn fetch_state(&self, url: &str) -> Result<Option<FetchState>> {
        Ok(self
            .conn
            .query_row(
                "SELECT url, feed, etag, last_modified, last_fetch, last_status, last_sha256 FROM fetch_state WHERE url = ?",
                [url],
                |r| {
                    Ok(FetchState {
                        url: r.get(0)?,
                        feed: r.get(1)?,
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                        last_fetch: r.get::<_, Option<i64>>(4)?.map(Timestamp),
                        last_status: r.get(5)?,
                        last_sha256: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    fn save_fetch_state(&mut self, s: &FetchState) -> Result<()> {
        self.conn.execute(
            "INSERT INTO fetch_state (url, feed, etag, last_modified, last_fetch, last_status, last_sha256) VALUES (?,?,?,?,?,?,?)
             ON CONFLICT(url) DO UPDATE SET feed=excluded.feed, etag=excluded.etag, last_modified=excluded.last_modified,
               last_fetch=excluded.last_fetch, last_status=excluded.last_status, last_sha256=excluded.last_sha256",
            params![s.url, s.feed, s.etag, s.last_modified, s.last_fetch.map(|t| t.micros()), s.last_status, s.last_sha256],
        )?;
        Ok(())
    }

    fn for_each_indicator(&self, types: &[String], f: &mut dyn FnMut(IndicatorRow<'_>)) -> Result<()> {
        if types.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; types.len()].join(",");
        let mut st = self.conn.prepare(&format!(
            "SELECT id, subject, type, family, first_seen, last_seen, sources FROM observations WHERE type IN ({marks})"
        ))?;
        let mut rows = st.query(params_from_iter(types.iter()))?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> Result<&str> {
                r.get_ref(i)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))
            };
            f(IndicatorRow {
                id: r.get(0)?,
                subject: text(1)?,
                classification_type: text(2)?,
                family: text(3)?,
                first_seen: Timestamp(r.get(4)?),
                last_seen: Timestamp(r.get(5)?),
                sources_json: text(6)?,
            });
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<()> {
        SqliteStore::checkpoint(self)
    }

    fn generation(&self, ignore_feeds: &[&str]) -> Result<String> {
        // Observations only change inside a report's transaction and reports are never
        // deleted, so the newest report pins them down; its content hash and time tell a
        // database replaced by another one apart.
        let marks = vec!["?"; ignore_feeds.len()].join(",");
        Ok(self.conn.query_row(
            &format!(
                "SELECT COALESCE((SELECT id || ':' || sha256 || ':' || ingested_at FROM reports
                   WHERE feed NOT IN ({marks}) ORDER BY id DESC LIMIT 1), '-')"
            ),
            params_from_iter(ignore_feeds.iter()),
            |r| r.get(0),
        )?)
    }

    fn newest_event_id(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT next - 1 FROM event_seq", [], |r| r.get(0))?)
    }

    fn addresses_between(&self, after_id: i64, upto_id: i64) -> Result<Vec<[u8; 16]>> {
        // Only the blocks of the new events, however many are stored.
        crate::eventlog::addresses_between(&self.conn, after_id, upto_id)
    }

    fn feed_totals(&self) -> Result<Vec<FeedTotals>> {
        // Maintained by triggers (migration 16), not summed over every report.
        let mut st = self.conn.prepare_cached(
            "SELECT feed, reports, events, rejects, duplicates FROM feed_counts ORDER BY feed",
        )?;
        let rows = st.query_map([], |r| {
            Ok(FeedTotals {
                feed: r.get(0)?,
                reports: r.get::<_, i64>(1)?.max(0) as u64,
                events: r.get::<_, i64>(2)?.max(0) as u64,
                rejects: r.get::<_, i64>(3)?.max(0) as u64,
                duplicates: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn counts(&self) -> Result<Counts> {
        // Maintained by the writers and by retention in their own transactions: nothing is
        // counted again, however large the store.
        let c = |name: &str| -> Result<u64> { Ok(crate::eventlog::counter(&self.conn, name)?.max(0) as u64) };
        Ok(Counts {
            reports: c("reports")?,
            events: c("events")?,
            observations: c("observations")?,
            rejects: c("rejects")?,
        })
    }
}

impl ObservationResolver for SqliteResolver {
    fn resolve(&mut self, events: &mut [EncodedEvent]) -> Result<()> {
        let keys = event_keys(events);
        self.obs.preload(events, &keys, |subjects, floor| load_observations(&self.conn, subjects, floor))?;
        for (e, k) in events.iter_mut().zip(keys) {
            let Some((key, t)) = k else { continue };
            let (i, merged) = self.obs.observe(key, e, t);
            e.observation = Some((self.obs.touched[i].id, !merged));
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Vec<ObservationRow> {
        self.obs.touched.into_iter().map(ObsState::into_row).collect()
    }
}

impl ReportWriter for SqliteWriter<'_> {
    fn resolver(&mut self) -> Result<Option<Box<dyn ObservationResolver>>> {
        let Some(path) = &self.path else { return Ok(None) };
        if self.resolved.is_some() || !self.obs.touched.is_empty() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        self.resolved = Some(Vec::new());
        let obs = Obs::new(self.obs.window_us, self.obs.next_obs_id);
        Ok(Some(Box::new(SqliteResolver { conn, obs })))
    }

    fn observations(&mut self, resolved: Vec<ObservationRow>) -> Result<(u64, u64)> {
        let mut rows = resolved;
        // Events the resolver counted but the insert found already stored.
        let mut dups: HashMap<i64, i64> = HashMap::new();
        for (id, _) in self.uncount.drain(..) {
            *dups.entry(id).or_default() += 1;
        }
        let (mut merged, mut new) = (0, 0);
        for r in &mut rows {
            let d = dups.get(&r.id).copied().unwrap_or(0);
            r.added -= d;
            r.count -= d;
            if r.existing {
                merged += r.added.max(0) as u64;
            } else if r.added > 0 {
                new += 1;
                merged += (r.added - 1) as u64;
            }
        }
        self.resolved = Some(rows);
        Ok((merged, new))
    }

    fn write_batch(&mut self, events: &[EncodedEvent], rejects: &[Reject]) -> Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        let pre_resolved = self.resolved.is_some();
        let keys = if pre_resolved { vec![None; events.len()] } else { event_keys(events) };
        if !pre_resolved {
            self.obs
                .preload(events, &keys, |subjects, floor| load_observations(&self.tx, subjects, floor))?;
        }
        for (e, key) in events.iter().zip(keys) {
            // The observation this event would join, or the id a new one would get; applied
            // only if the event is not a duplicate.
            let obs_id = match key {
                Some((k, t)) => Some(self.obs.peek(k, t)),
                None => e.observation.map(|o| o.0),
            };
            if self.events.add(&self.tx, e, obs_id)?.is_none() {
                out.duplicates += 1;
                if let Some(o) = e.observation.filter(|_| pre_resolved) {
                    self.uncount.push(o);
                }
                continue;
            }
            if let Some((key, t)) = key {
                let (_, merged) = self.obs.observe(key, e, t);
                if merged {
                    out.merged += 1;
                } else {
                    out.new_observations += 1;
                }
            }
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
        if !rejects.is_empty() {
            let feed: String =
                self.tx.query_row("SELECT feed FROM reports WHERE id = ?", [self.report_id], |r| r.get(0))?;
            let mut ins = self.tx.prepare_cached(
                "INSERT INTO rejects (report_id, feed, line, reason, raw) VALUES (?,?,?,?,?)",
            )?;
            for r in rejects {
                ins.execute(params![self.report_id, feed, r.line as i64, r.reason, &r.raw[..]])?;
                out.rejects += 1;
            }
        }
        Ok(out)
    }

    fn commit(self: Box<Self>, totals: &ReportTotals) -> Result<i64> {
        let mut me = *self;
        let rows = match me.resolved.take() {
            Some(rows) => rows,
            None => std::mem::take(&mut me.obs.touched).into_iter().map(ObsState::into_row).collect(),
        };
        {
            let mut up = me.tx.prepare_cached(
                "INSERT INTO observations (id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, sources, confidence, tlp)
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
                 ON CONFLICT(id) DO UPDATE SET asn=excluded.asn, cc=excluded.cc, first_seen=excluded.first_seen,
                   last_seen=excluded.last_seen, count=excluded.count, sources=excluded.sources, confidence=excluded.confidence,
                   tlp=excluded.tlp",
            )?;
            let mut sources = String::new();
            for o in &rows {
                // Only duplicates opened it: nothing refers to it.
                if !(o.existing || o.opened()) {
                    continue;
                }
                sources.clear();
                sources_json(&o.sources, &mut sources);
                let conf = confidence(o.sources.iter().map(|(_, a)| a));
                up.execute(params![
                    o.id,
                    o.subject,
                    o.ty,
                    o.family,
                    o.ip.as_ref().map(|b| &b[..]),
                    o.asn,
                    o.cc,
                    o.first,
                    o.last,
                    o.count,
                    sources,
                    conf,
                    o.tlp
                ])?;
            }
            drop(up);
            me.days.flush(&me.tx)?;
            me.events.finish(&me.tx)?;
            let opened = rows.iter().filter(|o| o.opened()).count() as i64;
            crate::eventlog::bump(&me.tx, "observations", opened)?;
            crate::eventlog::bump(&me.tx, "reports", 1)?;
            crate::eventlog::bump(&me.tx, "rejects", totals.outcome.rejects as i64)?;
            let o = &totals.outcome;
            me.tx.execute(
                "UPDATE reports SET events = ?, duplicates = ?, merged = ?, rejects = ?, warnings = ?, doc_keys = ? WHERE id = ?",
                params![
                    o.inserted as i64,
                    o.duplicates as i64,
                    o.merged as i64,
                    o.rejects as i64,
                    serde_json::to_string(&totals.warnings).unwrap_or_else(|_| "[]".into()),
                    (!totals.doc_keys.is_empty()).then(|| serde_json::to_string(&totals.doc_keys).ok()).flatten(),
                    me.report_id
                ],
            )?;
        }
        let id = me.report_id;
        me.tx.commit()?;
        Ok(id)
    }
}

/// The stored observations of these subjects last seen at or after `floor`.
fn load_observations(conn: &Connection, subjects: &[&str], floor: i64) -> Result<Vec<ObsState>> {
    let marks = vec!["?"; subjects.len()].join(",");
    let sql = format!(
        "SELECT id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, sources, tlp FROM observations WHERE last_seen >= ? AND subject IN ({marks})"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut args: Vec<Sql> = vec![Sql::Integer(floor)];
    args.extend(subjects.iter().map(|s| Sql::Text((*s).to_string())));
    let mut rows = st.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let ty: String = r.get(2)?;
        out.extend(ObsState::stored(
            r.get(0)?,
            r.get(1)?,
            &ty,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            (r.get(7)?, r.get(8)?, r.get(9)?),
            &r.get::<_, String>(10)?,
            r.get(11)?,
        ));
    }
    Ok(out)
}

pub(crate) fn sql_args(args: Vec<Arg>) -> Vec<Sql> {
    args.into_iter()
        .map(|a| match a {
            Arg::Int(i) => Sql::Integer(i),
            Arg::Text(t) => Sql::Text(t),
            Arg::Blob(b) => Sql::Blob(b),
        })
        .collect()
}

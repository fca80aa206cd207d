//! Stored lease, accounting and port-block records (the input of subscriber attribution).
//!
//! The record type is [`botwatch_model::LeaseRecord`], shared with the parsers and the index
//! in `botwatch-enrich` (this crate must not depend on enrich). A file is imported in one
//! transaction; importing the same content hash again is a no-op, so re-running an import
//! over a directory of rotated logs only adds what is new.

use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};
use botwatch_model::{LeaseRecord, Timestamp};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// One imported file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseImport {
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub name: String,
    /// Parser format id (`dhcpd`, `kea4`, `radius_detail`, …).
    pub format: String,
    pub imported_at: Timestamp,
    /// Lines the parser rejected (kept by the caller; counted here).
    pub rejects: u64,
}

/// A stored import with its id and record count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLeaseImport {
    pub id: i64,
    #[serde(flatten)]
    pub import: LeaseImport,
    pub records: u64,
}

/// Lease persistence; the PostgreSQL backend implements the same.
pub trait LeaseStore {
    /// Stores the records of one file in one transaction. `None` when a file with the same
    /// hash was imported before (nothing is written), else the new import's id.
    fn import_leases(&mut self, import: &LeaseImport, records: &[LeaseRecord]) -> Result<Option<i64>>;
    /// Every stored record, in import order, for building the attribution index.
    fn load_leases(&self) -> Result<Vec<LeaseRecord>>;
    /// Imports, newest first.
    fn lease_imports(&self) -> Result<Vec<StoredLeaseImport>>;
}

impl LeaseStore for SqliteStore {
    fn import_leases(&mut self, import: &LeaseImport, records: &[LeaseRecord]) -> Result<Option<i64>> {
        let tx = self.conn.transaction()?;
        let seen: Option<i64> = tx
            .query_row("SELECT id FROM lease_imports WHERE sha256 = ?", [&import.sha256], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO lease_imports (sha256, name, format, imported_at, records, rejects) VALUES (?,?,?,?,?,?)",
            params![
                import.sha256,
                import.name,
                import.format,
                import.imported_at.micros(),
                records.len() as i64,
                import.rejects as i64
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO leases (import_id, ip, port_lo, port_hi, start_us, end_us, subscriber, identifiers, source, line)
                 VALUES (?,?,?,?,?,?,?,?,?,?)",
            )?;
            for r in records {
                let ids =
                    serde_json::to_string(&r.identifiers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                st.execute(params![
                    id,
                    r.ip.to_string(),
                    r.ports.map(|p| p.0),
                    r.ports.map(|p| p.1),
                    r.start.micros(),
                    r.end.map(|e| e.micros()),
                    r.subscriber,
                    ids,
                    r.source,
                    r.line as i64,
                ])?;
            }
        }
        tx.commit()?;
        Ok(Some(id))
    }

    fn load_leases(&self) -> Result<Vec<LeaseRecord>> {
        let mut st = self.conn.prepare(
            "SELECT ip, port_lo, port_hi, start_us, end_us, subscriber, identifiers, source, line FROM leases ORDER BY rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<u16>>(1)?,
                r.get::<_, Option<u16>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ip, lo, hi, start, end, subscriber, ids, source, line) = row?;
            let ip = ip.parse().map_err(|_| StoreError::Corrupt(format!("lease address {ip}")))?;
            let identifiers = serde_json::from_str(&ids)
                .map_err(|e| StoreError::Corrupt(format!("lease identifiers: {e}")))?;
            out.push(LeaseRecord {
                ip,
                ports: lo.zip(hi),
                start: Timestamp(start),
                end: end.map(Timestamp),
                subscriber,
                identifiers,
                source,
                line: line as u64,
            });
        }
        Ok(out)
    }

    fn lease_imports(&self) -> Result<Vec<StoredLeaseImport>> {
        let mut st = self.conn.prepare(
            "SELECT id, sha256, name, format, imported_at, records, rejects FROM lease_imports ORDER BY id DESC",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StoredLeaseImport {
                id: r.get(0)?,
                import: LeaseImport {
                    sha256: r.get(1)?,
                    name: r.get(2)?,
                    format: r.get(3)?,
                    imported_at: Timestamp(r.get(4)?),
                    rejects: r.get::<_, i64>(6)? as u64,
                },
                records: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, ports: Option<(u16, u16)>, end: Option<i64>, sub: &str) -> LeaseRecord {
        LeaseRecord {
            ip: ip.parse().unwrap(),
            ports,
            start: Timestamp::from_secs(100),
            end: end.map(Timestamp::from_secs),
            subscriber: sub.into(),
            identifiers: vec![
                ("mac".into(), "52:54:00:00:00:01".into()),
                ("inside-ip".into(), "100.64.0.1".into()),
            ],
            source: "dhcpd:dhcpd.leases".into(),
            line: 7,
        }
    }

    fn import(sha: &str) -> LeaseImport {
        LeaseImport {
            sha256: sha.into(),
            name: "dhcpd.leases".into(),
            format: "dhcpd".into(),
            imported_at: Timestamp::from_secs(5),
            rejects: 2,
        }
    }

    #[test]
    fn records_round_trip_and_the_same_file_imports_once() {
        for (mut s, _schema) in
            crate::testing::backends("leases::records_round_trip_and_the_same_file_imports_once")
        {
            let recs = vec![
                rec("192.0.2.1/32", None, Some(200), "a"),
                rec("203.0.113.1/32", Some((1024, 2047)), None, "b"),
                rec("2001:db8:aa00::/56", None, None, "c"),
            ];
            assert!(s.import_leases(&import("aa"), &recs).unwrap().is_some());
            assert_eq!(s.import_leases(&import("aa"), &recs).unwrap(), None, "same hash: no-op");
            assert_eq!(s.load_leases().unwrap(), recs);
            assert!(s.import_leases(&import("bb"), &recs[..1]).unwrap().is_some());
            assert_eq!(s.load_leases().unwrap().len(), 4);
            let imports = s.lease_imports().unwrap();
            assert_eq!(imports.len(), 2);
            assert_eq!((imports[0].import.sha256.as_str(), imports[0].records), ("bb", 1));
            assert_eq!(imports[1].import, import("aa"));
        }
    }
}

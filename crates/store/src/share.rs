//! What the sharing layer keeps: published and received STIX objects by TAXII collection,
//! TAXII status resources, the audit of what went to whom, pull state per partner, and
//! federated aggregates (see `botwatch-share`).

use crate::Result;
use crate::filter::Arg;
use crate::sqlite::SqliteStore;
use botwatch_model::Timestamp;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::Serialize;

/// One observation as sharing reads it.
#[derive(Debug, Clone)]
pub struct ShareRow {
    pub id: i64,
    pub subject: String,
    pub ty: String,
    pub family: String,
    pub ip: Option<[u8; 16]>,
    pub asn: Option<u32>,
    pub cc: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    pub confidence: f64,
    /// Strictest TLP rank of its events (`None`: unmarked).
    pub tlp: Option<u8>,
    /// How many feeds reported it.
    pub sources: u32,
    /// The `{"feed": accuracy, …}` object of the feeds that reported it, unparsed.
    pub sources_json: String,
}

/// An object to keep in a collection.
#[derive(Debug, Clone)]
pub struct NewShareObject<'a> {
    pub id: &'a str,
    pub ty: &'a str,
    pub version: &'a str,
    pub tlp: Option<u8>,
    pub flags: u8,
    pub body: &'a str,
    /// What decides whether the content changed (default: the body); an object whose
    /// `modified` moves with every release names its content here.
    pub content: Option<&'a str>,
}

/// An object as kept.
#[derive(Debug, Clone, Serialize)]
pub struct SharedObject {
    pub seq: i64,
    pub id: String,
    pub ty: String,
    pub version: String,
    pub date_added: Timestamp,
    pub tlp: Option<u8>,
    pub flags: u8,
    pub partner: Option<String>,
    pub body: String,
}

/// Which versions of each object a page holds (TAXII `match[version]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Versions {
    #[default]
    Last,
    First,
    All,
    These(Vec<String>),
}

/// One page of a collection (TAXII `GET …/objects/` and `…/manifest/`).
#[derive(Debug, Clone, Default)]
pub struct SharePage {
    pub collection: String,
    /// An SQL condition over `tlp` and `flags` (the gate's pre-filter); `None`: no limit.
    pub condition: Option<String>,
    pub after_seq: Option<i64>,
    /// Only objects added after this instant.
    pub added_after: Option<Timestamp>,
    pub types: Vec<String>,
    pub ids: Vec<String>,
    pub versions: Versions,
    /// Only objects this partner posted (`Some("")`: only this node's own).
    pub partner: Option<String>,
    pub limit: usize,
    /// Leave the body out (manifests).
    pub without_body: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub partner: String,
    /// sent | received | refused
    pub direction: String,
    pub channel: String,
    pub collection: Option<String>,
    pub objects: u64,
    pub withheld: u64,
    pub tlp_max: Option<String>,
    pub error: Option<String>,
}

/// Per partner: what was exchanged and when.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PartnerExchange {
    pub partner: String,
    pub sent: u64,
    pub received: u64,
    pub withheld: u64,
    pub exchanges: u64,
    pub errors: u64,
    pub last_exchange: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// One aggregate cell (day × country × ASN × family) of one node.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FederationCell {
    pub node: String,
    pub day: String,
    pub cc: String,
    pub asn: u32,
    pub family: String,
    pub infected: u64,
    pub new_cases: u64,
    pub remediation_hours_median: Option<f64>,
    pub noised: bool,
    pub bar_version: Option<String>,
    /// The carrier's compliance against `bar_version`, as the node measured it (JSON).
    pub compliance: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullState {
    pub partner: String,
    pub url: String,
    pub added_after: Option<String>,
    pub last_pull: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl SqliteStore {
    /// Every observation of `types` (all when empty), in id order; or, with `by_group` (the
    /// rank unmarked ones count as), in (type, family, day of last sighting, TLP) order for
    /// writers that group (a MISP feed).
    /// Streams: memory does not depend on how many there are.
    pub fn for_each_share_row(
        &self,
        types: &[String],
        by_group: Option<u8>,
        f: &mut dyn FnMut(&ShareRow) -> Result<()>,
    ) -> Result<()> {
        let marks = vec!["?"; types.len()].join(",");
        let wh = if types.is_empty() { String::new() } else { format!("WHERE type IN ({marks})") };
        let order = match by_group {
            Some(d) => format!("type, family, last_seen / 86400000000, COALESCE(tlp, {d}), id"),
            None => "id".to_string(),
        };
        let mut st = self.conn.prepare(&format!(
            "SELECT id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, confidence, tlp, sources FROM observations {wh} ORDER BY {order}"
        ))?;
        let mut rows = st.query(params_from_iter(types.iter()))?;
        while let Some(r) = rows.next()? {
            let row = ShareRow {
                id: r.get(0)?,
                subject: r.get(1)?,
                ty: r.get(2)?,
                family: r.get(3)?,
                ip: r.get::<_, Option<Vec<u8>>>(4)?.and_then(|b| b.try_into().ok()),
                asn: r.get(5)?,
                cc: r.get(6)?,
                first_seen: Timestamp(r.get(7)?),
                last_seen: Timestamp(r.get(8)?),
                count: r.get::<_, i64>(9)?.max(0) as u64,
                confidence: r.get(10)?,
                tlp: r.get(11)?,
                // `{"feed": accuracy, …}`: one `":` per feed (feed ids have no quotes).
                sources: r.get_ref(12)?.as_str().map(|s| s.matches("\":").count().max(1) as u32).unwrap_or(1),
                sources_json: r.get(12)?,
            };
            f(&row)?;
        }
        Ok(())
    }

    /// Adds objects to a collection in one transaction. An object whose latest version there
    /// has the same content is left alone; returns (added, unchanged).
    pub fn share_put<'a>(
        &mut self,
        collection: &str,
        partner: Option<&str>,
        objects: impl IntoIterator<Item = NewShareObject<'a>>,
        now: Timestamp,
    ) -> Result<(u64, u64)> {
        // Immediate: a deferred transaction that reads first and then writes fails at once
        // (no busy wait) when another connection wrote in between, e.g. the audit row of a
        // TAXII page served meanwhile.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (mut added, mut same) = (0, 0);
        {
            let mut last = tx.prepare_cached(
                "SELECT digest, version FROM share_objects WHERE collection = ? AND id = ? ORDER BY seq DESC LIMIT 1",
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO share_objects (collection, id, type, version, date_added, tlp, flags, partner, digest, body)
                 VALUES (?,?,?,?,?,?,?,?,?,?)",
            )?;
            for o in objects {
                let digest =
                    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(o.content.unwrap_or(o.body).as_bytes()));
                let prev: Option<(String, String)> =
                    last.query_row(params![collection, o.id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                if prev
                    .as_ref()
                    .is_some_and(|(d, v)| *d == digest || (o.content.is_none() && *v == o.version))
                {
                    same += 1;
                    continue;
                }
                let n = ins.execute(params![
                    collection,
                    o.id,
                    o.ty,
                    o.version,
                    now.micros(),
                    o.tlp,
                    o.flags,
                    partner,
                    digest,
                    o.body
                ])?;
                if n == 0 {
                    same += 1;
                } else {
                    added += 1;
                }
            }
        }
        tx.commit()?;
        Ok((added, same))
    }

    /// One page, in `date_added` order; `more` when another page follows.
    pub fn share_page(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool)> {
        self.share_page_counted(q).map(|(rows, more, _)| (rows, more))
    }

    /// [`Self::share_page`], and how many objects the page's span held that the condition
    /// kept out (what a recipient was not sent, counted where it was decided).
    pub fn share_page_counted(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool, u64)> {
        let (rows, more) = self.share_page_inner(q)?;
        let Some(cond) = &q.condition else { return Ok((rows, more, 0)) };
        let mut held = q.clone();
        held.condition = Some(format!("NOT ({cond})"));
        held.without_body = true;
        // The span this page covered: up to its last row, or to the end when it was the last.
        let upto = if more { rows.last().map(|r| r.seq) } else { None };
        let withheld = self.share_count(&held, upto)?;
        Ok((rows, more, withheld))
    }

    fn share_count(&self, q: &SharePage, upto: Option<i64>) -> Result<u64> {
        let (conds, mut args) = page_conditions(q);
        let mut sql = format!("SELECT COUNT(*) FROM share_objects o WHERE {}", conds.join(" AND "));
        if let Some(u) = upto {
            sql.push_str(" AND o.seq <= ?");
            args.push(Arg::Int(u));
        }
        let mut st = self.conn.prepare_cached(&sql)?;
        Ok(st.query_row(params_from_iter(crate::sqlite::sql_args(args)), |r| r.get::<_, i64>(0))? as u64)
    }

    fn share_page_inner(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool)> {
        let (conds, mut args) = page_conditions(q);
        let limit = q.limit.max(1);
        args.push(Arg::Int(limit as i64 + 1));
        let body = if q.without_body { "''" } else { "o.body" };
        let sql = format!(
            "SELECT o.seq, o.id, o.type, o.version, o.date_added, o.tlp, o.flags, o.partner, {body} FROM share_objects o
             WHERE {} ORDER BY o.seq LIMIT ?",
            conds.join(" AND ")
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(crate::sqlite::sql_args(args)))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        while let Some(r) = rows.next()? {
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(SharedObject {
                seq: r.get(0)?,
                id: r.get(1)?,
                ty: r.get(2)?,
                version: r.get(3)?,
                date_added: Timestamp(r.get(4)?),
                tlp: r.get(5)?,
                flags: r.get::<_, i64>(6)? as u8,
                partner: r.get(7)?,
                body: r.get(8)?,
            });
        }
        Ok((out, more))
    }
}

/// The WHERE conditions of a page query (`?` marks), with their arguments: the same on
/// both backends.
pub(crate) fn page_conditions(q: &SharePage) -> (Vec<String>, Vec<Arg>) {
    let mut conds = vec!["o.collection = ?".to_string()];
    let mut args = vec![Arg::Text(q.collection.clone())];
    if let Some(c) = &q.condition {
        conds.push(format!("({})", c.replace("tlp", "o.tlp").replace("flags", "o.flags")));
    }
    if let Some(s) = q.after_seq {
        conds.push("o.seq > ?".into());
        args.push(Arg::Int(s));
    }
    if let Some(t) = q.added_after {
        conds.push("o.date_added > ?".into());
        args.push(Arg::Int(t.micros()));
    }
    if !q.types.is_empty() {
        conds.push(format!("o.type IN ({})", vec!["?"; q.types.len()].join(",")));
        args.extend(q.types.iter().map(|t| Arg::Text(t.clone())));
    }
    if !q.ids.is_empty() {
        conds.push(format!("o.id IN ({})", vec!["?"; q.ids.len()].join(",")));
        args.extend(q.ids.iter().map(|t| Arg::Text(t.clone())));
    }
    match &q.partner {
        Some(p) if p.is_empty() => conds.push("o.partner IS NULL".into()),
        Some(p) => {
            conds.push("o.partner = ?".into());
            args.push(Arg::Text(p.clone()));
        }
        None => {}
    }
    match &q.versions {
        Versions::Last => conds.push(
            "o.seq = (SELECT MAX(seq) FROM share_objects l WHERE l.collection = o.collection AND l.id = o.id)".into(),
        ),
        Versions::First => conds.push(
            "o.seq = (SELECT MIN(seq) FROM share_objects l WHERE l.collection = o.collection AND l.id = o.id)".into(),
        ),
        Versions::All => {}
        // No version asked for: nothing matches.
        Versions::These(v) if v.is_empty() => conds.push("1 = 0".into()),
        Versions::These(v) => {
            conds.push(format!("o.version IN ({})", vec!["?"; v.len()].join(",")));
            args.extend(v.iter().map(|t| Arg::Text(t.clone())));
        }
    }
    (conds, args)
}

impl SqliteStore {
    /// Objects per collection (all versions).
    pub fn share_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st =
            self.conn.prepare("SELECT collection, COUNT(*) FROM share_objects GROUP BY collection")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn share_status_put(
        &mut self,
        id: &str,
        collection: &str,
        partner: Option<&str>,
        now: Timestamp,
        body: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO share_status (id, collection, partner, created, body) VALUES (?,?,?,?,?)",
            params![id, collection, partner, now.micros(), body],
        )?;
        Ok(())
    }

    /// A status resource and the partner that caused it.
    pub fn share_status(&self, id: &str) -> Result<Option<(Option<String>, String)>> {
        Ok(self
            .conn
            .query_row("SELECT partner, body FROM share_status WHERE id = ?", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    pub fn share_audit(&self, a: &AuditEntry) -> Result<()> {
        self.conn.execute(
            "INSERT INTO share_audit (at, partner, direction, channel, collection, objects, withheld, tlp_max, error)
             VALUES (?,?,?,?,?,?,?,?,?)",
            params![
                a.at.micros(),
                a.partner,
                a.direction,
                a.channel,
                a.collection,
                a.objects as i64,
                a.withheld as i64,
                a.tlp_max,
                a.error
            ],
        )?;
        Ok(())
    }

    /// The newest audit entries, optionally of one partner.
    pub fn share_audit_list(&self, partner: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare(
            "SELECT at, partner, direction, channel, collection, objects, withheld, tlp_max, error FROM share_audit
             WHERE (?1 IS NULL OR partner = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![partner, limit as i64], |r| {
            Ok(AuditEntry {
                at: Timestamp(r.get(0)?),
                partner: r.get(1)?,
                direction: r.get(2)?,
                channel: r.get(3)?,
                collection: r.get(4)?,
                objects: r.get::<_, i64>(5)? as u64,
                withheld: r.get::<_, i64>(6)? as u64,
                tlp_max: r.get(7)?,
                error: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Totals per partner over the whole audit log.
    pub fn share_exchanges(&self) -> Result<Vec<PartnerExchange>> {
        let mut st = self.conn.prepare(
            "SELECT partner,
                    SUM(CASE WHEN direction = 'sent' THEN objects ELSE 0 END),
                    SUM(CASE WHEN direction = 'received' THEN objects ELSE 0 END),
                    SUM(withheld), COUNT(*), SUM(error IS NOT NULL), MAX(at),
                    (SELECT error FROM share_audit b WHERE b.partner = a.partner AND b.error IS NOT NULL ORDER BY id DESC LIMIT 1)
             FROM share_audit a GROUP BY partner ORDER BY partner",
        )?;
        let rows = st.query_map([], |r| {
            Ok(PartnerExchange {
                partner: r.get(0)?,
                sent: r.get::<_, i64>(1)? as u64,
                received: r.get::<_, i64>(2)? as u64,
                withheld: r.get::<_, i64>(3)? as u64,
                exchanges: r.get::<_, i64>(4)? as u64,
                errors: r.get::<_, i64>(5)? as u64,
                last_exchange: r.get::<_, Option<i64>>(6)?.map(Timestamp),
                last_error: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn pull_state(&self, partner: &str, url: &str) -> Result<Option<PullState>> {
        Ok(self
            .conn
            .query_row(
                "SELECT partner, url, added_after, last_pull, last_error FROM share_pull_state WHERE partner = ? AND url = ?",
                params![partner, url],
                |r| {
                    Ok(PullState {
                        partner: r.get(0)?,
                        url: r.get(1)?,
                        added_after: r.get(2)?,
                        last_pull: r.get::<_, Option<i64>>(3)?.map(Timestamp),
                        last_error: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn save_pull_state(&self, s: &PullState) -> Result<()> {
        self.conn.execute(
            "INSERT INTO share_pull_state (partner, url, added_after, last_pull, last_error) VALUES (?,?,?,?,?)
             ON CONFLICT(partner, url) DO UPDATE SET added_after = excluded.added_after,
               last_pull = excluded.last_pull, last_error = excluded.last_error",
            params![s.partner, s.url, s.added_after, s.last_pull.map(|t| t.micros()), s.last_error],
        )?;
        Ok(())
    }

    /// Replaces every cell of `node` for the days the new cells cover (a node's release
    /// supersedes its earlier one for those days).
    pub fn federation_put(&mut self, node: &str, cells: &[FederationCell], now: Timestamp) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut days: Vec<&str> = cells.iter().map(|c| c.day.as_str()).collect();
            days.sort_unstable();
            days.dedup();
            let mut del = tx.prepare_cached("DELETE FROM federation_cells WHERE node = ? AND day = ?")?;
            for d in days {
                del.execute(params![node, d])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO federation_cells (node, day, cc, asn, family, infected, new_cases, remediation_hours_median, noised, bar_version, compliance, received_at)
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            )?;
            for c in cells {
                ins.execute(params![
                    node,
                    c.day,
                    c.cc,
                    c.asn,
                    c.family,
                    c.infected as i64,
                    c.new_cases as i64,
                    c.remediation_hours_median,
                    c.noised,
                    c.bar_version,
                    c.compliance.as_ref().map(|v| v.to_string()),
                    now.micros()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A node leaves: its figures go with it. Returns the cells removed.
    pub fn federation_forget(&mut self, node: &str) -> Result<u64> {
        Ok(self.conn.execute("DELETE FROM federation_cells WHERE node = ?", [node])? as u64)
    }

    pub fn federation_cells(&self, node: Option<&str>) -> Result<Vec<FederationCell>> {
        let mut st = self.conn.prepare(
            "SELECT node, day, cc, asn, family, infected, new_cases, remediation_hours_median, noised, bar_version, compliance
             FROM federation_cells WHERE (?1 IS NULL OR node = ?1) ORDER BY day, node, cc, asn, family",
        )?;
        let rows = st.query_map(params![node], |r| {
            Ok(FederationCell {
                node: r.get(0)?,
                day: r.get(1)?,
                cc: r.get(2)?,
                asn: r.get::<_, i64>(3)? as u32,
                family: r.get(4)?,
                infected: r.get::<_, i64>(5)? as u64,
                new_cases: r.get::<_, i64>(6)? as u64,
                remediation_hours_median: r.get(7)?,
                noised: r.get(8)?,
                bar_version: r.get(9)?,
                compliance: r.get::<_, Option<String>>(10)?.and_then(|s| serde_json::from_str(&s).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a release and the privacy budget it spent.
    pub fn federation_release(
        &self,
        now: Timestamp,
        epsilon: Option<f64>,
        cells: u64,
        suppressed: u64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO federation_releases (at, epsilon, cells, suppressed) VALUES (?,?,?,?)",
            params![now.micros(), epsilon, cells as i64, suppressed as i64],
        )?;
        Ok(())
    }

    /// Releases so far and the epsilon they spent in total.
    pub fn federation_budget(&self) -> Result<(u64, f64)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(epsilon), 0) FROM federation_releases",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )?)
    }
}

/// Infected addresses of one day × country × ASN × family, as the events say.
#[derive(Debug, Clone)]
pub struct InfectedCell {
    pub day: String,
    pub cc: String,
    pub asn: u32,
    pub family: String,
    pub addresses: u64,
}

/// A case as a federated release counts it.
#[derive(Debug, Clone)]
pub struct ReleaseCase {
    pub opened_at: Timestamp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub close_reason: Option<String>,
    pub ip: Option<[u8; 16]>,
    pub threat: String,
}

impl SqliteStore {
    /// Distinct infected addresses per day × country × ASN × family, for days in
    /// `[from, until)` (microseconds).
    pub fn infected_cells(&self, from: i64, until: i64) -> Result<Vec<InfectedCell>> {
        let q = crate::EventQuery {
            classification_type: Some("infected-system".into()),
            since: Some(botwatch_model::Timestamp(from)),
            until: Some(botwatch_model::Timestamp(until)),
            ..Default::default()
        };
        let mut cells: std::collections::BTreeMap<
            (String, String, u32, String),
            std::collections::HashSet<String>,
        > = Default::default();
        crate::eventlog::scan(&self.conn, &q, false, &mut |h| {
            let l = h.lean;
            if let Some(s) = &l.subject {
                let key = (
                    botwatch_model::Timestamp(l.time()).day(),
                    l.cc.clone().unwrap_or_default(),
                    l.asn.unwrap_or(0) as u32,
                    l.family.clone().unwrap_or_default(),
                );
                cells.entry(key).or_default().insert(s.clone());
            }
            Ok(true)
        })?;
        Ok(cells
            .into_iter()
            .map(|((day, cc, asn, family), subjects)| InfectedCell {
                day,
                cc,
                asn,
                family,
                addresses: subjects.len() as u64,
            })
            .collect())
    }

    /// Cases opened or closed in `[from, until)`.
    pub fn release_cases(&self, from: i64, until: i64) -> Result<Vec<ReleaseCase>> {
        let mut st = self.conn.prepare(
            "SELECT opened_at, first_seen, last_seen, closed_at, close_reason, ip, threat FROM cases
             WHERE (opened_at >= ?1 AND opened_at < ?2) OR (closed_at >= ?1 AND closed_at < ?2)",
        )?;
        let rows = st.query_map(params![from, until], |r| {
            Ok(ReleaseCase {
                opened_at: Timestamp(r.get(0)?),
                first_seen: Timestamp(r.get(1)?),
                last_seen: Timestamp(r.get(2)?),
                closed_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
                close_reason: r.get(4)?,
                ip: r.get::<_, Option<Vec<u8>>>(5)?.and_then(|b| b.try_into().ok()),
                threat: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Days this node already released (its own cells).
    pub fn released_days(&self, node: &str) -> Result<Vec<String>> {
        let mut st =
            self.conn.prepare("SELECT DISTINCT day FROM federation_cells WHERE node = ? ORDER BY day")?;
        let rows = st.query_map([node], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<'a>(id: &'a str, ty: &'a str, body: &'a str) -> NewShareObject<'a> {
        NewShareObject {
            id,
            ty,
            version: "2026-01-01T00:00:00.000Z",
            tlp: None,
            flags: 0,
            body,
            content: None,
        }
    }

    #[test]
    fn unchanged_objects_keep_their_version_and_pages_follow_the_cursor() {
        for (mut s, _schema) in crate::testing::backends(
            "share::unchanged_objects_keep_their_version_and_pages_follow_the_cursor",
        ) {
            let t = Timestamp(1_000_000);
            let (a, u) = s
                .share_put(
                    "c",
                    None,
                    [obj("indicator--1", "indicator", "{\"a\":1}"), obj("indicator--2", "indicator", "{}")],
                    t,
                )
                .unwrap();
            assert_eq!((a, u), (2, 0));
            let (a, u) = s.share_put("c", None, [obj("indicator--1", "indicator", "{\"a\":1}")], t).unwrap();
            assert_eq!((a, u), (0, 1));
            let mut q = SharePage { collection: "c".into(), limit: 1, ..Default::default() };
            let (p1, more) = s.share_page(&q).unwrap();
            assert!(more && p1.len() == 1);
            q.after_seq = Some(p1[0].seq);
            let (p2, more) = s.share_page(&q).unwrap();
            assert!(!more && p2.len() == 1 && p2[0].id != p1[0].id);
        }
    }

    #[test]
    fn retention_removes_shared_addresses_and_sightings_past_the_horizon() {
        for (mut s, _schema) in crate::testing::backends(
            "share::retention_removes_shared_addresses_and_sightings_past_the_horizon",
        ) {
            let old = Timestamp(1_000_000);
            let new = Timestamp(9_000_000_000);
            s.share_put(
                "c",
                None,
                [
                    obj("ipv4-addr--1", "ipv4-addr", "{}"),
                    obj("sighting--1", "sighting", "{}"),
                    obj("indicator--1", "indicator", "{}"),
                ],
                old,
            )
            .unwrap();
            s.share_put("c", None, [obj("ipv4-addr--2", "ipv4-addr", "{}")], new).unwrap();
            let p = s.prune(Timestamp(5_000_000_000)).unwrap();
            assert_eq!(p.shared_objects, 2);
            let (left, _) =
                s.share_page(&SharePage { collection: "c".into(), limit: 10, ..Default::default() }).unwrap();
            let ids: Vec<&str> = left.iter().map(|o| o.id.as_str()).collect();
            assert_eq!(ids, ["indicator--1", "ipv4-addr--2"]);
        }
    }
}

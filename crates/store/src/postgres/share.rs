//! What the sharing layer keeps, on PostgreSQL: the same methods, with the same meanings, as
//! the SQLite store's in `share.rs`, and retention.

use super::{PgStore, numbered, pg_args};
use crate::Result;
use crate::filter::Arg;
use crate::retention::PruneSummary;
use crate::share::page_conditions;
use crate::share::*;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use botwatch_model::Timestamp;

impl PgStore {
    /// See `SqliteStore::for_each_share_row`. Streams.
    pub fn for_each_share_row(
        &self,
        types: &[String],
        by_group: Option<u8>,
        f: &mut dyn FnMut(&ShareRow) -> Result<()>,
    ) -> Result<()> {
        let wh = if types.is_empty() { "" } else { "WHERE type = ANY($1)" };
        let order = match by_group {
            Some(d) => format!("type, family, last_seen / 86400000000, COALESCE(tlp, {d}), id"),
            None => "id".to_string(),
        };
        let sql = format!(
            "SELECT id, subject, type, family, ip, asn, cc, first_seen, last_seen, count, confidence, tlp, sources FROM observations {wh} ORDER BY {order}"
        );
        // A connection of its own: `f` may query the store while the rows stream.
        let mut c = self.stream_client()?;
        let params: Vec<&(dyn ToSql + Sync)> = if types.is_empty() { vec![] } else { vec![&types] };
        let mut rows = c.query_raw(&sql, params)?;
        while let Some(r) = rows.next()? {
            let sources: String = r.get(12);
            let row = ShareRow {
                id: r.get(0),
                subject: r.get(1),
                ty: r.get(2),
                family: r.get(3),
                ip: r.get::<_, Option<Vec<u8>>>(4).and_then(|b| b.try_into().ok()),
                asn: r.get::<_, Option<i64>>(5).map(|a| a as u32),
                cc: r.get(6),
                first_seen: Timestamp(r.get(7)),
                last_seen: Timestamp(r.get(8)),
                count: r.get::<_, i64>(9).max(0) as u64,
                confidence: r.get(10),
                tlp: r.get::<_, Option<i16>>(11).map(|t| t as u8),
                sources: sources.matches("\":").count().max(1) as u32,
                sources_json: sources,
            };
            f(&row)?;
        }
        Ok(())
    }

    /// See `SqliteStore::share_put`. Objects of one collection are put one writer at a
    /// time (a transaction-scoped advisory lock per collection), so "is the latest version
    /// the same?" is asked and answered without a race.
    pub fn share_put<'a>(
        &mut self,
        collection: &str,
        partner: Option<&str>,
        objects: impl IntoIterator<Item = NewShareObject<'a>>,
        now: Timestamp,
    ) -> Result<(u64, u64)> {
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('share:' || $1))", &[&collection])?;
        let last = tx.prepare(
            "SELECT digest, version FROM share_objects WHERE collection = $1 AND id = $2 ORDER BY seq DESC LIMIT 1",
        )?;
        let ins = tx.prepare(
            "INSERT INTO share_objects (collection, id, type, version, date_added, tlp, flags, partner, digest, body)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (collection, id, version) DO NOTHING",
        )?;
        let (mut added, mut same) = (0, 0);
        for o in objects {
            let digest =
                format!("{:032x}", xxhash_rust::xxh3::xxh3_128(o.content.unwrap_or(o.body).as_bytes()));
            let prev = tx.query_opt(&last, &[&collection, &o.id])?;
            if prev.as_ref().is_some_and(|r| {
                r.get::<_, &str>(0) == digest || (o.content.is_none() && r.get::<_, &str>(1) == o.version)
            }) {
                same += 1;
                continue;
            }
            let n = tx.execute(
                &ins,
                &[
                    &collection,
                    &o.id,
                    &o.ty,
                    &o.version,
                    &now.micros(),
                    &o.tlp.map(i16::from),
                    &i64::from(o.flags),
                    &partner,
                    &digest,
                    &o.body,
                ],
            )?;
            if n == 0 {
                same += 1;
            } else {
                added += 1;
            }
        }
        tx.commit()?;
        Ok((added, same))
    }

    pub fn share_page(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool)> {
        self.share_page_counted(q).map(|(rows, more, _)| (rows, more))
    }

    pub fn share_page_counted(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool, u64)> {
        let (rows, more) = self.share_page_inner(q)?;
        let Some(cond) = &q.condition else { return Ok((rows, more, 0)) };
        let mut held = q.clone();
        held.condition = Some(format!("NOT ({cond})"));
        held.without_body = true;
        let upto = if more { rows.last().map(|r| r.seq) } else { None };
        let (conds, mut args) = page_conditions(&held);
        let mut sql = format!("SELECT COUNT(*) FROM share_objects o WHERE {}", conds.join(" AND "));
        if let Some(u) = upto {
            sql.push_str(" AND o.seq <= ?");
            args.push(Arg::Int(u));
        }
        let n: i64 = self.with_client(|c| c.query_one(&numbered(&sql), &pg_args(&args)))?.get(0);
        Ok((rows, more, n as u64))
    }

    fn share_page_inner(&self, q: &SharePage) -> Result<(Vec<SharedObject>, bool)> {
        let (conds, mut args) = page_conditions(q);
        let limit = q.limit.max(1);
        args.push(Arg::Int(limit as i64 + 1));
        let body = if q.without_body { "''::text" } else { "o.body" };
        let sql = format!(
            "SELECT o.seq, o.id, o.type, o.version, o.date_added, o.tlp, o.flags, o.partner, {body} FROM share_objects o
             WHERE {} ORDER BY o.seq LIMIT ?",
            conds.join(" AND ")
        );
        let rows = self.with_client(|c| c.query(&numbered(&sql), &pg_args(&args)))?;
        let more = rows.len() > limit;
        Ok((
            rows.iter()
                .take(limit)
                .map(|r| SharedObject {
                    seq: r.get(0),
                    id: r.get(1),
                    ty: r.get(2),
                    version: r.get(3),
                    date_added: Timestamp(r.get(4)),
                    tlp: r.get::<_, Option<i16>>(5).map(|t| t as u8),
                    flags: r.get::<_, i64>(6) as u8,
                    partner: r.get(7),
                    body: r.get(8),
                })
                .collect(),
            more,
        ))
    }

    pub fn share_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows = self.with_client(|c| {
            c.query("SELECT collection, COUNT(*) FROM share_objects GROUP BY collection", &[])
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
    }

    pub fn share_status_put(
        &mut self,
        id: &str,
        collection: &str,
        partner: Option<&str>,
        now: Timestamp,
        body: &str,
    ) -> Result<()> {
        self.client.get_mut().execute(
            "INSERT INTO share_status (id, collection, partner, created, body) VALUES ($1,$2,$3,$4,$5)
             ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, partner = excluded.partner,
               created = excluded.created, body = excluded.body",
            &[&id, &collection, &partner, &now.micros(), &body],
        )?;
        Ok(())
    }

    pub fn share_status(&self, id: &str) -> Result<Option<(Option<String>, String)>> {
        let row = self
            .with_client(|c| c.query_opt("SELECT partner, body FROM share_status WHERE id = $1", &[&id]))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    pub fn share_audit(&self, a: &AuditEntry) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO share_audit (at, partner, direction, channel, collection, objects, withheld, tlp_max, error)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                &[
                    &a.at.micros(),
                    &a.partner,
                    &a.direction,
                    &a.channel,
                    &a.collection,
                    &(a.objects as i64),
                    &(a.withheld as i64),
                    &a.tlp_max,
                    &a.error,
                ],
            )
        })?;
        Ok(())
    }

    pub fn share_audit_list(&self, partner: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT at, partner, direction, channel, collection, objects, withheld, tlp_max, error FROM share_audit
                 WHERE ($1::text IS NULL OR partner = $1) ORDER BY id DESC LIMIT $2",
                &[&partner, &(limit.min(i64::MAX as u64) as i64)],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: Timestamp(r.get(0)),
                partner: r.get(1),
                direction: r.get(2),
                channel: r.get(3),
                collection: r.get(4),
                objects: r.get::<_, i64>(5) as u64,
                withheld: r.get::<_, i64>(6) as u64,
                tlp_max: r.get(7),
                error: r.get(8),
            })
            .collect())
    }

    pub fn share_exchanges(&self) -> Result<Vec<PartnerExchange>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT partner,
                        SUM(CASE WHEN direction = 'sent' THEN objects ELSE 0 END)::bigint,
                        SUM(CASE WHEN direction = 'received' THEN objects ELSE 0 END)::bigint,
                        SUM(withheld)::bigint, COUNT(*), COUNT(error), MAX(at),
                        (SELECT error FROM share_audit b WHERE b.partner = a.partner AND b.error IS NOT NULL ORDER BY id DESC LIMIT 1)
                 FROM share_audit a GROUP BY partner ORDER BY partner",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| PartnerExchange {
                partner: r.get(0),
                sent: r.get::<_, i64>(1) as u64,
                received: r.get::<_, i64>(2) as u64,
                withheld: r.get::<_, i64>(3) as u64,
                exchanges: r.get::<_, i64>(4) as u64,
                errors: r.get::<_, i64>(5) as u64,
                last_exchange: r.get::<_, Option<i64>>(6).map(Timestamp),
                last_error: r.get(7),
            })
            .collect())
    }

    pub fn pull_state(&self, partner: &str, url: &str) -> Result<Option<PullState>> {
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT partner, url, added_after, last_pull, last_error FROM share_pull_state WHERE partner = $1 AND url = $2",
                &[&partner, &url],
            )
        })?;
        Ok(row.map(|r| PullState {
            partner: r.get(0),
            url: r.get(1),
            added_after: r.get(2),
            last_pull: r.get::<_, Option<i64>>(3).map(Timestamp),
            last_error: r.get(4),
        }))
    }

    pub fn save_pull_state(&self, s: &PullState) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO share_pull_state (partner, url, added_after, last_pull, last_error) VALUES ($1,$2,$3,$4,$5)
                 ON CONFLICT (partner, url) DO UPDATE SET added_after = excluded.added_after,
                   last_pull = excluded.last_pull, last_error = excluded.last_error",
                &[&s.partner, &s.url, &s.added_after, &s.last_pull.map(|t| t.micros()), &s.last_error],
            )
        })?;
        Ok(())
    }

    pub fn federation_put(&mut self, node: &str, cells: &[FederationCell], now: Timestamp) -> Result<()> {
        let mut tx = self.client.get_mut().transaction()?;
        let mut days: Vec<&str> = cells.iter().map(|c| c.day.as_str()).collect();
        days.sort_unstable();
        days.dedup();
        tx.execute("DELETE FROM federation_cells WHERE node = $1 AND day = ANY($2)", &[&node, &days])?;
        let ins = tx.prepare(
            "INSERT INTO federation_cells (node, day, cc, asn, family, infected, new_cases, remediation_hours_median, noised, bar_version, compliance, received_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
             ON CONFLICT (node, day, cc, asn, family) DO UPDATE SET infected = excluded.infected, new_cases = excluded.new_cases,
               remediation_hours_median = excluded.remediation_hours_median, noised = excluded.noised,
               bar_version = excluded.bar_version, compliance = excluded.compliance, received_at = excluded.received_at",
        )?;
        for c in cells {
            tx.execute(
                &ins,
                &[
                    &node,
                    &c.day,
                    &c.cc,
                    &i64::from(c.asn),
                    &c.family,
                    &(c.infected as i64),
                    &(c.new_cases as i64),
                    &c.remediation_hours_median,
                    &c.noised,
                    &c.bar_version,
                    &c.compliance.as_ref().map(|v| v.to_string()),
                    &now.micros(),
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn federation_forget(&mut self, node: &str) -> Result<u64> {
        Ok(self.client.get_mut().execute("DELETE FROM federation_cells WHERE node = $1", &[&node])?)
    }

    pub fn federation_cells(&self, node: Option<&str>) -> Result<Vec<FederationCell>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT node, day, cc, asn, family, infected, new_cases, remediation_hours_median, noised, bar_version, compliance
                 FROM federation_cells WHERE ($1::text IS NULL OR node = $1) ORDER BY day, node, cc, asn, family",
                &[&node],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| FederationCell {
                node: r.get(0),
                day: r.get(1),
                cc: r.get(2),
                asn: r.get::<_, i64>(3) as u32,
                family: r.get(4),
                infected: r.get::<_, i64>(5) as u64,
                new_cases: r.get::<_, i64>(6) as u64,
                remediation_hours_median: r.get(7),
                noised: r.get(8),
                bar_version: r.get(9),
                compliance: r.get::<_, Option<&str>>(10).and_then(|s| serde_json::from_str(s).ok()),
            })
            .collect())
    }

    pub fn federation_release(
        &self,
        now: Timestamp,
        epsilon: Option<f64>,
        cells: u64,
        suppressed: u64,
    ) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO federation_releases (at, epsilon, cells, suppressed) VALUES ($1,$2,$3,$4)",
                &[&now.micros(), &epsilon, &(cells as i64), &(suppressed as i64)],
            )
        })?;
        Ok(())
    }

    pub fn federation_budget(&self) -> Result<(u64, f64)> {
        let r = self.with_client(|c| {
            c.query_one(
                "SELECT COUNT(*), COALESCE(SUM(epsilon), 0)::double precision FROM federation_releases",
                &[],
            )
        })?;
        Ok((r.get::<_, i64>(0) as u64, r.get(1)))
    }

    pub fn infected_cells(&self, from: i64, until: i64) -> Result<Vec<InfectedCell>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT to_char(to_timestamp(COALESCE(time_source, time_observation) / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        COALESCE(cc, ''), COALESCE(asn, 0), COALESCE(family, ''), COUNT(DISTINCT subject)
                 FROM events WHERE type = 'infected-system' AND COALESCE(time_source, time_observation) >= $1
                   AND COALESCE(time_source, time_observation) < $2 AND subject IS NOT NULL
                 GROUP BY 1, 2, 3, 4",
                &[&from, &until],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| InfectedCell {
                day: r.get(0),
                cc: r.get(1),
                asn: r.get::<_, i64>(2) as u32,
                family: r.get(3),
                addresses: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    pub fn release_cases(&self, from: i64, until: i64) -> Result<Vec<ReleaseCase>> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT opened_at, first_seen, last_seen, closed_at, close_reason, ip, threat FROM cases
                 WHERE (opened_at >= $1 AND opened_at < $2) OR (closed_at >= $1 AND closed_at < $2)",
                &[&from, &until],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| ReleaseCase {
                opened_at: Timestamp(r.get(0)),
                first_seen: Timestamp(r.get(1)),
                last_seen: Timestamp(r.get(2)),
                closed_at: r.get::<_, Option<i64>>(3).map(Timestamp),
                close_reason: r.get(4),
                ip: r.get::<_, Option<Vec<u8>>>(5).and_then(|b| b.try_into().ok()),
                threat: r.get(6),
            })
            .collect())
    }

    pub fn released_days(&self, node: &str) -> Result<Vec<String>> {
        let rows = self.with_client(|c| {
            c.query("SELECT DISTINCT day FROM federation_cells WHERE node = $1 ORDER BY day", &[&node])
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Deletes personal data older than `before` (see `SqliteStore::prune`): whole days of
    /// events by dropping their partitions, the rest row by row, in one transaction.
    pub fn prune(&mut self, before: Timestamp) -> Result<PruneSummary> {
        let t = before.micros();
        let mut tx = self.client.get_mut().transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::WRITE_LOCK])?;
        let ((events, observations, rejects), dropped) = super::prune_events(&mut tx, t)?;
        for (name, by) in [("events", events), ("observations", observations), ("rejects", rejects)] {
            super::bump(&mut tx, name, -(by as i64))?;
        }
        let mut n = |sql: &str| -> Result<u64> { Ok(tx.execute(sql, &[&t])?) };
        let s = PruneSummary {
            events,
            observations,
            rejects,
            lease_records: n("DELETE FROM leases WHERE end_us IS NOT NULL AND end_us < $1")?,
            closed_case_evidence: n(
                "UPDATE cases SET recent = '[]' WHERE state = 'closed' AND closed_at < $1 AND recent != '[]'",
            )?,
            exposures: n("DELETE FROM case_exposures WHERE time < $1")?,
            notice_payloads: n(
                "UPDATE outbox SET payload = '{}' WHERE status IN ('sent', 'failed', 'cancelled') AND created_at < $1 AND payload != '{}'",
            )?,
            shared_objects: n(
                "DELETE FROM share_objects WHERE date_added < $1 AND type IN ('ipv4-addr', 'ipv6-addr', 'observed-data', 'sighting')",
            )?,
        };
        tx.commit()?;
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for d in dropped {
            known.remove(&d);
        }
        Ok(s)
    }
}

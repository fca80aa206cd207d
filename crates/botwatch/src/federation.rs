//! Federated releases: this node's aggregates per day × country × ASN × family, protected
//! (k-anonymity, optional differential privacy), kept as this node's cells and published
//! into the `federation` TAXII collection for peers to pull.

use crate::config::Config;
use anyhow::Result;
use botwatch_model::Timestamp;
use botwatch_share::federation::{self, Cell, OsRandom, Privacy};
use botwatch_share::taxii::CollectionKind;
use botwatch_store::any::AnyStore;
use botwatch_store::share::{FederationCell, NewShareObject};
use std::collections::BTreeMap;

#[derive(Debug, Default, serde::Serialize)]
pub struct ReleaseSummary {
    pub days: Vec<String>,
    pub cells: u64,
    pub suppressed: u64,
    pub epsilon: Option<f64>,
    pub published: u64,
    /// Epsilon spent by every release so far.
    pub budget_spent: f64,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

/// The cells of the complete days `[today - days, today)` not released yet (each day is
/// released once, so its noise budget is spent once).
pub fn compute(cfg: &Config, store: &AnyStore, now: Timestamp, days: u32) -> Result<Vec<Cell>> {
    const DAY: i64 = 86_400_000_000;
    let today = now.micros().div_euclid(DAY) * DAY;
    let from = today - i64::from(days.max(1)) * DAY;
    let node = &crate::share::share_cfg(cfg).node;
    let done: std::collections::HashSet<String> = store.released_days(node)?.into_iter().collect();
    let ipdb = crate::ipdb(cfg)?;
    let mut cells: BTreeMap<(String, String, u32, String), Cell> = BTreeMap::new();
    fn cell<'c>(
        cells: &'c mut BTreeMap<(String, String, u32, String), Cell>,
        done: &std::collections::HashSet<String>,
        day: &str,
        cc: &str,
        asn: u32,
        family: &str,
    ) -> Option<&'c mut Cell> {
        if done.contains(day) {
            return None;
        }
        Some(cells.entry((day.to_string(), cc.to_string(), asn, family.to_string())).or_insert_with(|| {
            Cell {
                day: day.to_string(),
                cc: cc.to_string(),
                asn,
                family: family.to_string(),
                infected: 0,
                new_cases: 0,
                remediation_hours_median: None,
                bar_version: None,
                compliance: None,
            }
        }))
    }
    for c in store.infected_cells(from, today)? {
        if let Some(x) = cell(&mut cells, &done, &c.day, &c.cc, c.asn, &c.family) {
            x.infected += c.addresses;
        }
    }
    let mut hours: BTreeMap<(String, String, u32, String), Vec<f64>> = BTreeMap::new();
    for c in store.release_cases(from, today)? {
        let info = c.ip.map(botwatch_store::key_ip).and_then(|ip| ipdb.lookup(ip));
        let asn = info.as_ref().and_then(|i| i.asn).unwrap_or(0);
        let cc = info.as_ref().and_then(|i| i.cc_str().map(str::to_string)).unwrap_or_default();
        if c.opened_at.micros() >= from && c.opened_at.micros() < today {
            let day = c.opened_at.day();
            if let Some(x) = cell(&mut cells, &done, &day, &cc, asn, &c.threat) {
                x.new_cases += 1;
            }
        }
        // Remediated: until the desk closed it; silent: until the last evidence.
        let end = match (c.closed_at, c.close_reason.as_deref()) {
            (Some(t), Some("remediated")) => Some((t, t)),
            (Some(t), Some("silent")) => Some((t, c.last_seen)),
            _ => None,
        };
        if let Some((closed, stop)) = end
            && closed.micros() >= from
            && closed.micros() < today
        {
            let h = (stop.micros() - c.opened_at.micros()).max(0) as f64 / 3.6e9;
            hours.entry((closed.day(), cc, asn, c.threat.clone())).or_default().push(h);
        }
    }
    for (k, mut v) in hours {
        if let Some(c) = cells.get_mut(&k) {
            c.remediation_hours_median = median(&mut v);
        }
    }
    // Each carrier's compliance against the bar (and the bar's version), on the cells of its
    // networks, so the global view compares carriers across countries on the same standard.
    let carriers = carrier_compliance(cfg, store, now)?;
    for c in cells.values_mut() {
        if let Some(v) = carriers.get(&c.asn) {
            c.compliance = Some(v.clone());
            c.bar_version = cfg.bar_version.clone();
        }
    }
    Ok(cells.into_values().collect())
}

/// ASN → the compliance of the constituency organisation that holds it.
fn carrier_compliance(
    cfg: &Config,
    store: &AnyStore,
    now: Timestamp,
) -> Result<BTreeMap<u32, serde_json::Value>> {
    let Some(orgs) = crate::isp::constituency(cfg)? else { return Ok(BTreeMap::new()) };
    let attr = crate::isp::attributor(cfg, store)?;
    let report = botwatch_cases::compliance::org_report(store, &attr, &cfg.bar, now)?;
    let mut out = BTreeMap::new();
    for r in report {
        let Some(org) = r.org.as_deref().and_then(|id| orgs.get(id)) else { continue };
        let v = serde_json::json!({
            "carrier": org.name,
            "verdict": r.verdict.as_str(),
            "infections_per_1000": r.infections_per_1000,
            "share_notified_within": r.share_notified_within,
            "reinfection_rate": r.reinfection_rate,
        });
        for asn in &org.asns {
            out.insert(*asn, v.clone());
        }
    }
    Ok(out)
}

/// Releases: protects the cells, keeps them as this node's, publishes them as STIX objects
/// into the `federation` collection and records the privacy budget spent.
pub fn release(cfg: &Config, store: &mut AnyStore, now: Timestamp, days: u32) -> Result<ReleaseSummary> {
    let me = crate::share::share_cfg(cfg);
    let cells = compute(cfg, store, now, days)?;
    let privacy = Privacy { k: me.k_anonymity, epsilon: me.epsilon };
    let mut days_out: Vec<String> = cells.iter().map(|c| c.day.clone()).collect();
    days_out.dedup();
    let r = federation::protect(cells, privacy, &mut OsRandom::default());
    let rows: Vec<FederationCell> = r
        .cells
        .iter()
        .map(|c| FederationCell {
            node: me.node.clone(),
            day: c.day.clone(),
            cc: c.cc.clone(),
            asn: c.asn,
            family: c.family.clone(),
            infected: c.infected,
            new_cases: c.new_cases,
            remediation_hours_median: c.remediation_hours_median,
            noised: r.epsilon.is_some(),
            bar_version: c.bar_version.clone(),
            compliance: c.compliance.clone(),
        })
        .collect();
    store.federation_put(&me.node, &rows, now)?;
    let producer = me.producer();
    let released = botwatch_share::stix::time(now);
    let mut objs = federation::reference_objects();
    objs.push(producer.identity());
    for t in [botwatch_model::Tlp::Clear, botwatch_model::Tlp::Green, botwatch_model::Tlp::Amber] {
        objs.push(botwatch_share::stix::Obj::from_value(
            botwatch_share::tlp::marking_object(t),
            botwatch_share::gate::Label { tlp: Some(botwatch_model::Tlp::Clear), ..Default::default() },
        ));
    }
    let contents: Vec<Option<String>> = objs.iter().map(|_| None).collect();
    let mut contents = contents;
    for c in &r.cells {
        objs.push(federation::cell_object(
            c,
            &producer.identity_id(),
            &me.node,
            privacy,
            &released,
            me.aggregate_tlp,
        ));
        contents.push(Some(serde_json::to_string(&(c, privacy.k, privacy.epsilon.map(|e| e.to_string())))?));
    }
    let coll = CollectionKind::Federation.id(&me.node);
    let (added, _) = store.share_put(
        &coll,
        None,
        objs.iter().zip(&contents).map(|(o, c)| NewShareObject {
            id: &o.id,
            ty: &o.ty,
            version: &o.version,
            tlp: o.label.tlp.map(botwatch_share::tlp::rank),
            flags: o.label.flags(),
            body: &o.body,
            content: c.as_deref(),
        }),
        now,
    )?;
    store.federation_release(now, r.epsilon, r.cells.len() as u64, r.suppressed)?;
    let (_, spent) = store.federation_budget()?;
    Ok(ReleaseSummary {
        days: days_out,
        cells: r.cells.len() as u64,
        suppressed: r.suppressed,
        epsilon: r.epsilon,
        published: added,
        budget_spent: spent,
    })
}

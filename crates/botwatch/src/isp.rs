//! The ISP workflow's wiring: constituency and lease data → the case engine's
//! [`Attributor`]; `leases import`, `attribute`, `notify run`, `reports daily` and
//! `walled-garden export`. The logic lives in `botwatch-enrich`, `botwatch-cases` and
//! `botwatch-notify`; this module only connects them to the config and the store.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use botwatch_cases::{Attributor, CaseQuery, CaseStore, OrgInfo, SubscriberHit};
use botwatch_enrich::owners::{Constituency, Org};
use botwatch_enrich::subscriber::{Attribution, SubscriberIndex};
use botwatch_model::{CaseState, Clock, Timestamp};
use botwatch_store::any::AnyStore;
use botwatch_store::leases::{LeaseImport, LeaseStore};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// `[constituency]`: the organisations botwatch attributes addresses to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstituencySection {
    /// A TOML (`[[org]]` tables) or CSV file of organisations with their ASNs, networks and
    /// abuse contacts.
    pub file: Option<PathBuf>,
}

/// `[leases]`: subscriber attribution from lease and accounting logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeasesSection {
    /// Subscriber ids and identifiers are stored as keyed pseudonyms (HMAC-SHA256), never
    /// in clear; `false` stores them as imported.
    pub pseudonymise: bool,
    /// The pseudonymisation key; unset, botwatch generates one and keeps it in the store.
    /// Changing it breaks the link to earlier imports.
    pub pseudonymise_secret: Option<String>,
}

impl Default for LeasesSection {
    fn default() -> Self {
        LeasesSection { pseudonymise: true, pseudonymise_secret: None }
    }
}

/// `[walled_garden]`: what escalated subscribers can still reach, and the RPZ zone's names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalledGardenSection {
    pub allow: botwatch_notify::walled_garden::AllowList,
    pub rpz: botwatch_notify::walled_garden::RpzOptions,
}

/// Organisations from config, subscribers from the stored lease records.
pub struct EnrichAttributor {
    pub constituency: Option<Constituency>,
    pub index: SubscriberIndex,
    /// The offline IP → ASN data: who announces an address decides its owner, not the
    /// ASN a feed row claims.
    pub ipdb: std::sync::Arc<botwatch_enrich::IpDb>,
}

fn org_info(o: &Org) -> OrgInfo {
    OrgInfo {
        id: o.id.clone(),
        name: o.name.clone(),
        abuse_emails: o.abuse_emails.clone(),
        webhook: o.webhook.clone(),
        lang: o.lang.clone(),
        tz_offset_minutes: o.timezone_offset_minutes,
        subscribers: o.subscribers,
    }
}

impl Attributor for EnrichAttributor {
    /// Ownership from the address alone: the constituency's networks, then the ASN the
    /// offline data gives for the address. The feed's ASN (`_feed_asn`) is evidence (kept in
    /// the event and shown there), never trusted for ownership: a row claiming another
    /// organisation's ASN must not open a case under it.
    fn org(&self, ip: IpAddr, _feed_asn: Option<u32>) -> Option<OrgInfo> {
        let asn = self.ipdb.lookup(ip).and_then(|i| i.asn);
        self.constituency.as_ref()?.org_for(ip, asn).map(org_info)
    }
    fn org_by_id(&self, id: &str) -> Option<OrgInfo> {
        self.constituency.as_ref()?.get(id).map(org_info)
    }
    fn subscriber(&self, ip: IpAddr, port: Option<u16>, at: Timestamp) -> SubscriberHit {
        match self.index.attribute(ip, port, at) {
            Attribution::Exact { record } => SubscriberHit::Exact(record.subscriber().to_string()),
            Attribution::Ambiguous { candidates, reason } => {
                SubscriberHit::Ambiguous(format!("{reason:?}: {} candidate records", candidates.len()))
            }
            Attribution::NotFound { .. } => SubscriberHit::NotFound,
        }
    }
}

/// Loads the configured constituency file, if any.
pub fn constituency(cfg: &Config) -> Result<Option<Constituency>> {
    let Some(path) = &cfg.constituency.file else { return Ok(None) };
    let data = std::fs::read(path).with_context(|| format!("reading constituency {}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("constituency.toml");
    Ok(Some(
        Constituency::load(name, &data).with_context(|| format!("constituency file {}", path.display()))?,
    ))
}

/// The attributor for `store`: constituency from config, every stored lease record.
pub fn attributor(cfg: &Config, store: &AnyStore) -> Result<EnrichAttributor> {
    let records = store.load_leases().context("loading lease records")?;
    Ok(EnrichAttributor {
        constituency: constituency(cfg)?,
        index: SubscriberIndex::build(records),
        ipdb: crate::ipdb(cfg)?,
    })
}

/// What one lease file import did.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseImportSummary {
    pub file: String,
    pub format: String,
    pub records: u64,
    pub rejects: u64,
    /// `false`: the same content was imported before; nothing was added.
    pub new: bool,
    pub import_id: Option<i64>,
    /// The first few rejects: line and reason.
    pub reject_samples: Vec<(u64, String)>,
}

/// Parses (format detected unless given), pseudonymises when configured, stores.
pub fn import_leases(
    cfg: &Config,
    store: &mut AnyStore,
    path: &std::path::Path,
    format: Option<&str>,
    clock: &dyn Clock,
) -> Result<LeaseImportSummary> {
    use botwatch_enrich::leases;
    use botwatch_feeds::input::{GZIP_MAGIC, Source, members, read_all, with_reader};
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("leases").to_string();
    // Rotated logs are often gzipped, and `cat`-joined rotations are several gzip members,
    // all read. Parsed whole, as a plain file is, up to `[ingest] max_gib`; a bomb stops at
    // `max_ratio`.
    let data = if raw.starts_with(&GZIP_MAGIC) {
        let limits = cfg.ingest.limits();
        let src = Source::Bytes(raw.into());
        let what = path.display().to_string();
        let m = members(&what, &src)?.remove(0);
        Vec::from(with_reader(&src, &m, &limits, 0, |r| read_all(r, &m.what, limits.max_bytes))??)
    } else {
        raw
    };
    let (mut records, rejects, fmt) = match format {
        Some(f) => {
            let fmt = leases::Format::from_name(f).with_context(|| format!("unknown lease format {f:?}"))?;
            let (r, j) = leases::parse_as(fmt, &data, &name);
            (r, j, fmt)
        }
        None => leases::parse(&data, &name).map_err(|_| {
            anyhow::anyhow!(
                "{}: not a recognised lease/accounting format (dhcpd.leases, Kea CSV, FreeRADIUS detail, CGNAT port-block log); pass --format",
                path.display()
            )
        })?,
    };
    if let Some(p) = crate::keys::pseudonymiser(cfg, store)? {
        for r in &mut records {
            p.apply(r);
        }
    }
    let import = LeaseImport {
        sha256: crate::pipeline::sha256_hex(&data),
        name: name.clone(),
        format: fmt.as_str().to_string(),
        imported_at: clock.now(),
        rejects: rejects.len() as u64,
    };
    let id = store.import_leases(&import, &records).context("storing lease records")?;
    Ok(LeaseImportSummary {
        file: path.display().to_string(),
        format: fmt.as_str().to_string(),
        records: records.len() as u64,
        rejects: rejects.len() as u64,
        new: id.is_some(),
        import_id: id,
        reject_samples: rejects.iter().take(5).map(|r| (r.line, r.reason.to_string())).collect(),
    })
}

/// Cases currently in the walled garden.
pub fn garden_cases(store: &AnyStore) -> Result<Vec<botwatch_model::Case>> {
    let q = CaseQuery { state: Some(CaseState::WalledGarden), ..Default::default() };
    Ok(store.cases(&q)?)
}

/// Writes a walled-garden export.
pub fn walled_garden_export(cfg: &Config, store: &AnyStore, format: &str, now: Timestamp) -> Result<Vec<u8>> {
    use botwatch_notify::walled_garden as wg;
    let cases = garden_cases(store)?;
    let allow = &cfg.walled_garden.allow;
    Ok(match format {
        "rpz" => wg::rpz(&cases, allow, &cfg.walled_garden.rpz, now),
        "rpz-allow" => wg::rpz_allow(allow, &cfg.walled_garden.rpz, now),
        "nftables" => wg::nftables(&cases, allow, now),
        "list" => wg::list(&cases),
        other => bail!("unknown walled-garden format {other:?} (rpz, rpz-allow, nftables, list)"),
    })
}

/// One owner's rows for a day's report: each sighting on `day` of the organisation's cases
/// (the sightings a case keeps), with the feed's original line, port, transport and the
/// address's ASN. A case with evidence that day but none of it kept gives one row from the
/// case itself.
pub fn daily_rows(
    store: &AnyStore,
    org: &str,
    day_start: Timestamp,
) -> Result<Vec<botwatch_notify::reports::ReportRow>> {
    use botwatch_store::{EventQuery, Store};
    let day_end = Timestamp::from_micros(day_start.micros() + 86_400_000_000);
    let ipdb = botwatch_enrich::IpDb::builtin();
    let q = CaseQuery { org: Some(org.to_string()), ..Default::default() };
    let mut rows = Vec::new();
    for c in store.cases(&q)? {
        if c.last_seen < day_start || c.first_seen >= day_end {
            continue;
        }
        let Some(rec) = store.case(c.id)? else { continue };
        let malware = (c.threat != c.classification_type).then(|| c.threat.clone());
        let before = rows.len();
        for e in rec.recent.iter().filter(|e| e.time >= day_start && e.time < day_end) {
            let Ok(ip) = e.ip.parse::<IpAddr>() else { continue };
            // The stored event, for its original line and transport: the first event at or
            // after its id on that address is the event itself.
            let ev = store
                .events(&EventQuery {
                    ip: Some(ip),
                    after_id: Some(e.event_id - 1),
                    limit: Some(1),
                    ..Default::default()
                })?
                .into_iter()
                .find(|x| x.id == e.event_id);
            rows.push(botwatch_notify::reports::ReportRow {
                time: e.time,
                ip,
                port: e.port,
                asn: ipdb.lookup(ip).and_then(|i| i.asn).filter(|a| *a > 0),
                classification_type: e.classification_type.clone(),
                malware: e.malware.clone().or_else(|| malware.clone()),
                feed: e.feed.clone(),
                subscriber: c.subscriber.clone(),
                destination: e.destination.clone(),
                protocol: ev
                    .as_ref()
                    .and_then(|x| x.event.protocol_transport.as_ref().map(|p| p.to_string())),
                raw: ev.map(|x| x.event.raw.to_vec()),
                case_id: Some(c.id),
            });
        }
        if rows.len() == before
            && let Some(ip) = c.ip
        {
            rows.push(botwatch_notify::reports::ReportRow {
                time: c.last_seen,
                ip,
                port: None,
                asn: ipdb.lookup(ip).and_then(|i| i.asn).filter(|a| *a > 0),
                classification_type: c.classification_type.clone(),
                malware,
                feed: rec.recent.last().map(|e| e.feed.clone()).unwrap_or_else(|| "unknown".into()),
                subscriber: c.subscriber.clone(),
                destination: None,
                protocol: None,
                raw: None,
                case_id: Some(c.id),
            });
        }
    }
    rows.sort_by_key(|r| (r.time, r.ip, r.case_id));
    Ok(rows)
}

/// The day before `now` (UTC), `YYYY-MM-DD`: the last finished day.
pub fn yesterday(now: botwatch_model::Timestamp) -> String {
    botwatch_model::Timestamp::from_micros(now.micros() - 86_400_000_000).day()
}

/// One organisation's daily report files.
pub struct DailyWritten {
    pub org: String,
    pub rows: usize,
    /// `DIR/<day>-<org>`; the files are this plus `.csv`, `.json`, `.xarf.jsonl`.
    pub base: std::path::PathBuf,
}

/// Writes `day`'s per-owner reports (CSV, JSON, XARF) into `dir`, one set per organisation
/// of `[constituency]` with anything that day.
pub fn write_daily_reports(
    cfg: &Config,
    store: &AnyStore,
    day: &str,
    dir: &std::path::Path,
    now: botwatch_model::Timestamp,
) -> Result<Vec<DailyWritten>> {
    let start = botwatch_model::parse_timestamp(day).with_context(|| format!("not a day: {day:?}"))?;
    let Some(constituency) = constituency(cfg)? else {
        anyhow::bail!(
            "no [constituency] file configured: daily reports go to the organisations listed there"
        );
    };
    // The XARF reporter: who the receiving ISP answers. The shipped placeholder is not one.
    let reporter = botwatch_notify::reports::Party::from_mailbox(&cfg.notify.from)
        .filter(|p| !p.domain.ends_with(".invalid"))
        .with_context(|| {
            format!(
                "[notify] from = {:?} is not the desk's address: set it (e.g. \"Example CERT <abuse@cert.example>\"); it is the XARF reports' reporter",
                cfg.notify.from
            )
        })?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for org in constituency.orgs() {
        let rows = daily_rows(store, &org.id, start)?;
        if rows.is_empty() {
            continue;
        }
        let to = org.abuse_emails.first().cloned().unwrap_or_default();
        let meta =
            botwatch_notify::reports::ReportMeta::new(&org.id, &org.name, day, now, reporter.clone(), &to);
        let base = dir.join(format!("{day}-{}", org.id));
        std::fs::write(base.with_extension("csv"), botwatch_notify::reports::csv(&rows))?;
        std::fs::write(base.with_extension("json"), botwatch_notify::reports::json(&meta, &rows))?;
        std::fs::write(
            base.with_extension("xarf.jsonl"),
            botwatch_notify::reports::xarf_jsonl(&meta, &rows),
        )?;
        out.push(DailyWritten { org: org.id.clone(), rows: rows.len(), base });
    }
    Ok(out)
}

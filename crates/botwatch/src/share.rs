//! Sharing with partners from the command line: STIX and MISP exports, publishing into the
//! TAXII collections `serve` offers, and the TAXII client (`taxii pull`, `taxii push`).

use crate::config::Config;
use crate::pipeline::{Ingestor, Input};
use anyhow::{Context, Result, bail};
use botwatch_model::{Clock, Timestamp};
use botwatch_share::gate::{self, Entitlement, Label};
use botwatch_share::partners::{Partner, ShareConfig, secret};
use botwatch_share::taxii::{CollectionKind, MEDIA_TAXII};
use botwatch_store::any::AnyStore;
use botwatch_store::share::{AuditEntry, PullState, SharePage, Versions};
use std::io::Write;
use std::net::IpAddr;

/// `[share]`, or an error naming it.
pub fn share_cfg(cfg: &Config) -> ShareConfig {
    cfg.share.clone().unwrap_or_default()
}

pub fn partner<'a>(cfg: &'a Config, name: &str) -> Result<&'a Partner> {
    cfg.partners.iter().find(|p| p.name == name).with_context(|| {
        let known: Vec<&str> = cfg.partners.iter().map(|p| p.name.as_str()).collect();
        format!(
            "no partner {name:?} in [[partners]] (known: {})",
            if known.is_empty() { "none".into() } else { known.join(", ") }
        )
    })
}

/// Whether an address is inside the constituency: an organisation of `[constituency]`
/// holds it, or its country is one of `[share] home_countries`.
/// See [`home_test`].
pub type HomeTest = Box<dyn Fn(Option<IpAddr>, Option<u32>, Option<&str>) -> bool>;

pub fn home_test(cfg: &Config) -> Result<HomeTest> {
    let orgs = crate::isp::constituency(cfg)?;
    let countries: Vec<String> =
        share_cfg(cfg).home_countries.iter().map(|c| c.to_ascii_uppercase()).collect();
    Ok(Box::new(move |ip: Option<IpAddr>, asn: Option<u32>, cc: Option<&str>| {
        if cc.is_some_and(|c| countries.iter().any(|h| h.eq_ignore_ascii_case(c))) {
            return true;
        }
        match (&orgs, ip) {
            (Some(o), Some(ip)) => o.org_for(ip, asn).is_some(),
            _ => false,
        }
    }))
}

/// The recipient of an export: a partner, or the options given for a file.
pub fn entitlement(
    cfg: &Config,
    partner_name: Option<&str>,
    tlp: botwatch_model::Tlp,
    sightings: bool,
    home: bool,
) -> Result<(String, Entitlement)> {
    let me = share_cfg(cfg);
    Ok(match partner_name {
        Some(n) => {
            let p = partner(cfg, n)?;
            (p.name.clone(), p.entitlement(&me))
        }
        None => (
            "file".into(),
            Entitlement {
                max_tlp: tlp,
                sightings,
                home_addresses: home,
                same_organisation: false,
                default_tlp: me.default_tlp,
            },
        ),
    })
}

// One row of the audit log, each column an argument: call sites read as the row they write.
#[allow(clippy::too_many_arguments)]
pub fn audit(
    store: &AnyStore,
    now: Timestamp,
    partner: &str,
    direction: &str,
    channel: &str,
    collection: Option<&str>,
    objects: u64,
    withheld: u64,
    tlp_max: Option<botwatch_model::Tlp>,
    error: Option<String>,
) -> Result<()> {
    store.share_audit(&AuditEntry {
        at: now,
        partner: partner.into(),
        direction: direction.into(),
        channel: channel.into(),
        collection: collection.map(str::to_string),
        objects,
        withheld,
        tlp_max: tlp_max.map(|t| format!("TLP:{}", t.as_str())),
        error,
    })?;
    Ok(())
}

/// The HTTP client for partners' TAXII servers.
struct Taxii {
    client: reqwest::blocking::Client,
    auth: Auth,
}

enum Auth {
    Bearer(String),
    Basic(String, String),
    None,
}

impl Taxii {
    fn new(cfg: &Config, p: &Partner) -> Result<Taxii> {
        crate::fetch::install_tls_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(cfg.fetch.timeout_secs.max(30)))
            .user_agent(cfg.fetch.user_agent.clone())
            .build()?;
        let auth = match (&p.remote_token, &p.remote_username, &p.remote_password) {
            (Some(t), _, _) => Auth::Bearer(secret(t).map_err(anyhow::Error::msg)?),
            (None, Some(u), Some(pw)) => Auth::Basic(u.clone(), secret(pw).map_err(anyhow::Error::msg)?),
            _ => Auth::None,
        };
        Ok(Taxii { client, auth })
    }

    fn req(&self, r: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        let r = r.header(reqwest::header::ACCEPT, MEDIA_TAXII);
        match &self.auth {
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
            Auth::None => r,
        }
    }

    fn get(&self, url: &str) -> Result<(serde_json::Value, Option<String>)> {
        let resp = self.req(self.client.get(url)).send().with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let last =
            resp.headers().get("X-TAXII-Date-Added-Last").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.text()?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", body.chars().take(300).collect::<String>());
        }
        Ok((serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON"))?, last))
    }

    fn post(&self, url: &str, body: String) -> Result<serde_json::Value> {
        let resp = self
            .req(self.client.post(url))
            .header(reqwest::header::CONTENT_TYPE, MEDIA_TAXII)
            .body(body)
            .send()
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        let text = resp.text()?;
        if !status.is_success() {
            bail!("POST {url}: {status}: {}", text.chars().take(300).collect::<String>());
        }
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }
}

fn root(p: &Partner) -> Result<String> {
    let u = p.url.clone().with_context(|| format!("partner {:?} has no url (its TAXII API root)", p.name))?;
    Ok(if u.ends_with('/') { u } else { format!("{u}/") })
}

fn qs(v: &str) -> String {
    let mut o = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PullSummary {
    pub partner: String,
    pub collection: String,
    pub objects: u64,
    pub pages: u64,
    pub aggregates: u64,
    pub events: u64,
    pub rejects: u64,
    pub added_after: Option<String>,
}

/// Pulls every readable collection of a partner since the last pull, keeps what came with
/// the partner as its provenance, and ingests indicators and observed data through the
/// normal pipeline (rejects kept, duplicates merged).
pub fn pull(
    cfg: &Config,
    store: &mut AnyStore,
    ing: &Ingestor<'_>,
    p: &Partner,
    clock: &dyn Clock,
) -> Result<Vec<PullSummary>> {
    let t = Taxii::new(cfg, p)?;
    let base = root(p)?;
    let ids: Vec<String> = if p.collections.is_empty() {
        let (v, _) = t.get(&format!("{base}collections/"))?;
        v.get("collections")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("can_read").and_then(|x| x.as_bool()).unwrap_or(false))
                    .filter_map(|c| c.get("id").and_then(|x| x.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        p.collections.clone()
    };
    let mut out = Vec::new();
    for cid in ids {
        let url = format!("{base}collections/{cid}/objects/");
        let now = clock.now();
        match pull_collection(&t, store, ing, p, &url, &cid, now) {
            Ok(s) => out.push(s),
            Err(e) => {
                let msg = format!("{e:#}");
                audit(
                    store,
                    now,
                    &p.name,
                    "received",
                    "taxii-pull",
                    Some(&cid),
                    0,
                    0,
                    None,
                    Some(msg.clone()),
                )?;
                let mut st = store.pull_state(&p.name, &url)?.unwrap_or(PullState {
                    partner: p.name.clone(),
                    url: url.clone(),
                    added_after: None,
                    last_pull: None,
                    last_error: None,
                });
                st.last_error = Some(msg);
                store.save_pull_state(&st)?;
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn pull_collection(
    t: &Taxii,
    store: &mut AnyStore,
    ing: &Ingestor<'_>,
    p: &Partner,
    url: &str,
    cid: &str,
    now: Timestamp,
) -> Result<PullSummary> {
    let state = store.pull_state(&p.name, url)?;
    let after = state.as_ref().and_then(|s| s.added_after.clone());
    let mut sum = PullSummary {
        partner: p.name.clone(),
        collection: cid.into(),
        added_after: after.clone(),
        ..Default::default()
    };
    // The pages go to one bundle on disk: relationships in one page name objects in another,
    // and the STIX reader needs them together.
    let tmp = tempfile::NamedTempFile::new()?;
    let mut bw = botwatch_share::stix::BundleWriter::new(
        std::io::BufWriter::new(tmp.reopen()?),
        &format!("{}|{url}|{}", p.name, now.micros()),
    )?;
    let mut cells = Vec::new();
    // What came is kept under the partner's name page by page (sightings of shared
    // indicators among it), so a large pull does not sit in memory.
    let coll = format!("received:{}", p.name);
    let mut next: Option<String> = None;
    let mut newest = after.clone();
    loop {
        let mut u = format!("{url}?limit=100");
        if let Some(a) = &after {
            u.push_str(&format!("&added_after={}", qs(a)));
        }
        if let Some(n) = &next {
            u.push_str(&format!("&next={}", qs(n)));
        }
        let (v, last) = t.get(&u)?;
        sum.pages += 1;
        if let Some(l) = last {
            newest = Some(l);
        }
        let mut received: Vec<(String, String, String, Option<u8>, String)> = Vec::new();
        for o in v.get("objects").and_then(|o| o.as_array()).into_iter().flatten() {
            sum.objects += 1;
            if let Some(c) = botwatch_share::federation::cell_from_object(o) {
                cells.push((c, o.get("noise").is_some()));
            }
            let s = |k: &str| o.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let ver = if o.get("modified").is_some() { s("modified") } else { s("created") };
            let tlp = botwatch_share::tlp::of_object(o);
            received.push((s("id"), s("type"), ver, tlp.map(botwatch_share::tlp::rank), o.to_string()));
            bw.push(&o.to_string())?;
        }
        store.share_put(
            &coll,
            Some(&p.name),
            received.iter().map(|(id, ty, v, tlp, b)| botwatch_store::share::NewShareObject {
                id,
                ty,
                version: v,
                tlp: *tlp,
                flags: 0,
                body: b,
                content: None,
            }),
            now,
        )?;
        match v.get("next").and_then(|n| n.as_str()) {
            Some(n) if v.get("more").and_then(|m| m.as_bool()).unwrap_or(false) => next = Some(n.to_string()),
            _ => break,
        }
    }
    bw.finish()?;
    if !cells.is_empty() {
        sum.aggregates = cells.len() as u64;
        let rows: Vec<_> = cells
            .into_iter()
            .map(|(c, noised)| botwatch_store::share::FederationCell {
                node: p.name.clone(),
                day: c.day,
                cc: c.cc,
                asn: c.asn,
                family: c.family,
                infected: c.infected,
                new_cases: c.new_cases,
                remediation_hours_median: c.remediation_hours_median,
                noised,
                bar_version: c.bar_version,
                compliance: c.compliance,
            })
            .collect();
        store.federation_put(&p.name, &rows, now)?;
    }
    if sum.objects > 0 {
        let name = format!("taxii-{}-{}.json", p.name, cid);
        ingest_bundle(store, ing, tmp.path(), &name, format!("taxii:{}:{url}", p.name), now, &mut sum)?;
    }
    sum.added_after = newest.clone();
    store.save_pull_state(&PullState {
        partner: p.name.clone(),
        url: url.into(),
        added_after: newest,
        last_pull: Some(now),
        last_error: None,
    })?;
    audit(store, now, &p.name, "received", "taxii-pull", Some(cid), sum.objects, 0, None, None)?;
    Ok(sum)
}

/// A bundle of what a partner sent, through the normal pipeline; `source` names the partner.
fn ingest_bundle(
    store: &mut AnyStore,
    ing: &Ingestor<'_>,
    path: &std::path::Path,
    name: &str,
    source: String,
    now: Timestamp,
    sum: &mut PullSummary,
) -> Result<()> {
    let input = Input {
        name,
        data: botwatch_feeds::input::Source::File(path.to_path_buf()),
        feed: Some("stix_bundle"),
        source: Some(source),
        observed: now,
        archive: None,
    };
    for r in ing.ingest(store, input, &|_| {})? {
        sum.events += r.events;
        sum.rejects += r.rejects;
    }
    Ok(())
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PushSummary {
    pub partner: String,
    /// Objects the partner's TAXII status reported as taken.
    pub sent: u64,
    /// Objects the partner's status reported as failed (already there, or refused).
    pub refused: u64,
    pub withheld: u64,
    pub posts: u64,
}

/// Sends what this node published since the last push, as the gate admits it for the
/// partner, in envelopes of at most 1,000 objects.
pub fn push(cfg: &Config, store: &mut AnyStore, p: &Partner, clock: &dyn Clock) -> Result<PushSummary> {
    let me = share_cfg(cfg);
    let t = Taxii::new(cfg, p)?;
    let coll =
        p.push_collection.clone().with_context(|| format!("partner {:?} has no push_collection", p.name))?;
    let url = format!("{}collections/{coll}/objects/", root(p)?);
    let key = format!("push:{url}");
    let e = p.entitlement(&me);
    let now = clock.now();
    let state = store.pull_state(&p.name, &key)?;
    let mut sum = PushSummary { partner: p.name.clone(), ..Default::default() };
    let mut tlp_max = None;
    let mut last_seq: i64 =
        state.as_ref().and_then(|s| s.added_after.as_deref()).and_then(|s| s.parse().ok()).unwrap_or(0);
    for kind in [CollectionKind::Indicators, CollectionKind::Federation] {
        let cid = kind.id(&me.node);
        let mut after = last_seq;
        loop {
            let q = SharePage {
                collection: cid.clone(),
                condition: None,
                after_seq: Some(after),
                versions: Versions::All,
                partner: Some(String::new()),
                limit: 1000,
                ..Default::default()
            };
            let (rows, more) = store.share_page(&q)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|r| r.seq).unwrap_or(after);
            let mut body = String::from("{\"objects\":[");
            let mut n = 0;
            for r in &rows {
                let l = Label::from_parts(r.tlp, r.flags);
                if !gate::admit(&e, &l).sends() {
                    sum.withheld += 1;
                    continue;
                }
                tlp_max = tlp_max.max(Some(gate::effective(&l, &e)));
                if n > 0 {
                    body.push(',');
                }
                body.push_str(&r.body);
                n += 1;
            }
            body.push_str("]}");
            if n > 0 {
                let status = t.post(&url, body);
                if let Err(err) = status {
                    audit(
                        store,
                        now,
                        &p.name,
                        "sent",
                        "taxii-push",
                        Some(&coll),
                        sum.sent,
                        sum.withheld,
                        tlp_max,
                        Some(format!("{err:#}")),
                    )?;
                    return Err(err);
                }
                sum.posts += 1;
                // Sent is what the partner's status resource says it took; one without
                // counts (a server answering 2xx without a status) counts as all taken.
                let st = status.unwrap_or_default();
                let ok = st.get("success_count").and_then(|c| c.as_u64()).unwrap_or(n);
                sum.sent += ok;
                sum.refused += st.get("failure_count").and_then(|c| c.as_u64()).unwrap_or(0);
            }
            if !more {
                break;
            }
        }
        last_seq = last_seq.max(after);
    }
    store.save_pull_state(&PullState {
        partner: p.name.clone(),
        url: key,
        added_after: Some(last_seq.to_string()),
        last_pull: Some(now),
        last_error: None,
    })?;
    audit(store, now, &p.name, "sent", "taxii-push", Some(&coll), sum.sent, sum.withheld, tlp_max, None)?;
    Ok(sum)
}

/// `botwatch export --format stix`: a bundle for one recipient.
pub fn export_stix(
    cfg: &Config,
    store: &AnyStore,
    who: &str,
    e: &Entitlement,
    w: &mut dyn Write,
    now: Timestamp,
) -> Result<botwatch_share::publish::Sent> {
    let me = share_cfg(cfg);
    let home = home_test(cfg)?;
    let sent = botwatch_share::publish::bundle(
        store,
        &me,
        &home,
        e,
        w,
        &format!("{}|{who}|{}", me.node, now.micros()),
    )?;
    Ok(sent)
}

/// Ingest arguments with MISP feeds expanded: a directory holding `manifest.json` (or the
/// manifest itself) stands for the event files the manifest lists, in its order. Events the
/// manifest lists but the directory lacks are returned as errors, not skipped silently.
pub fn expand_misp_feeds(paths: &[std::path::PathBuf]) -> (Vec<std::path::PathBuf>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let (dir, manifest) = if p.is_dir() {
            (p.clone(), p.join("manifest.json"))
        } else if p.file_name().is_some_and(|n| n == "manifest.json") {
            (p.parent().map(|d| d.to_path_buf()).unwrap_or_default(), p.clone())
        } else {
            out.push(p.clone());
            continue;
        };
        let text = match std::fs::read_to_string(&manifest) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!(
                    "{}: not a MISP feed directory (no readable manifest.json: {e})",
                    dir.display()
                ));
                continue;
            }
        };
        let m: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!(
                    "{}: manifest.json is not a JSON object of events: {e}",
                    manifest.display()
                ));
                continue;
            }
        };
        for uuid in m.keys() {
            // Only a UUID names a file: a manifest key cannot walk out of the directory.
            if uuid.len() != 36 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                errors.push(format!("{}: manifest key {uuid:?} is not an event UUID", manifest.display()));
                continue;
            }
            let f = dir.join(format!("{uuid}.json"));
            if f.is_file() {
                out.push(f);
            } else {
                errors.push(format!("{}: listed in manifest.json but missing", f.display()));
            }
        }
    }
    (out, errors)
}

/// What partners posted to this node's inbox since the last time, per partner, through the
/// normal pipeline (rejects kept, duplicates merged; the report's source names the partner).
pub fn ingest_inbox(
    cfg: &Config,
    store: &mut AnyStore,
    ing: &Ingestor<'_>,
    clock: &dyn Clock,
) -> Result<Vec<PullSummary>> {
    let me = share_cfg(cfg);
    let coll = CollectionKind::Inbox.id(&me.node);
    let mut out = Vec::new();
    for p in &cfg.partners {
        let key = format!("inbox:{coll}");
        let state = store.pull_state(&p.name, &key)?;
        let mut after: i64 =
            state.as_ref().and_then(|s| s.added_after.as_deref()).and_then(|s| s.parse().ok()).unwrap_or(0);
        let now = clock.now();
        let tmp = tempfile::NamedTempFile::new()?;
        let mut bw = botwatch_share::stix::BundleWriter::new(
            std::io::BufWriter::new(tmp.reopen()?),
            &format!("inbox|{}|{}", p.name, now.micros()),
        )?;
        let mut sum =
            PullSummary { partner: p.name.clone(), collection: "inbox".into(), ..Default::default() };
        loop {
            let q = SharePage {
                collection: coll.clone(),
                after_seq: Some(after),
                versions: Versions::All,
                partner: Some(p.name.clone()),
                limit: 1000,
                ..Default::default()
            };
            let (rows, more) = store.share_page(&q)?;
            for r in &rows {
                bw.push(&r.body)?;
                sum.objects += 1;
            }
            after = rows.last().map(|r| r.seq).unwrap_or(after);
            sum.pages += 1;
            if !more {
                break;
            }
        }
        bw.finish()?;
        if sum.objects == 0 {
            continue;
        }
        let name = format!("taxii-inbox-{}.json", p.name);
        ingest_bundle(store, ing, tmp.path(), &name, format!("taxii-inbox:{}", p.name), now, &mut sum)?;
        store.save_pull_state(&PullState {
            partner: p.name.clone(),
            url: key,
            added_after: Some(after.to_string()),
            last_pull: Some(now),
            last_error: None,
        })?;
        out.push(sum);
    }
    Ok(out)
}

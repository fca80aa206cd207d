//! Own sensors: flow and DNS telemetry matched against the store's active indicators and run
//! through the detectors; what is found becomes sightings — events in the same store, so
//! attribution and cases apply unchanged.
//!
//! Sightings are aggregated per (client, indicator or detector) and window: one busy bot is
//! one sighting per window with a count, not a million events.

use anyhow::{Context, Result};
use botwatch_model::{ClassificationType, Event, FeedInfo, Slot, Timestamp};
use botwatch_store::{ReportMeta, ReportTotals, Store};
use botwatch_telemetry::detect::flows::{FlowBounds, FlowMemory};
use botwatch_telemetry::detect::{
    DnsDetector, DnsDetectorConfig, Finding, beacon, flood, scan, spam, upload,
};
use botwatch_telemetry::matcher::{Indicator, IndicatorMeta, IndicatorValue, Matcher};
use botwatch_telemetry::record::{DnsRecord, FlowRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Classification types whose subjects are, by default, indicators to look for in
/// telemetry: places a bot talks to. Block lists (`blacklist`: DROP networks, generic IP
/// lists) are left out by default — reaching one is not evidence of an infection.
pub const INDICATOR_TYPES: &[&str] = &["c2-server", "malware-distribution", "malware-configuration"];

/// `[sensor]` in botwatch.toml.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorSection {
    /// Classification types whose observations become indicators.
    pub indicator_types: Vec<String>,
    /// An indicator stays active this long after its last sighting in a feed.
    pub indicator_ttl_days: i64,
    /// Sightings of one client and indicator closer than this are one sighting.
    pub window_secs: i64,
    /// The ISP's own address space: the client of a flow is the end inside it. Empty: the
    /// end that is not the indicator.
    pub internal: Vec<ipnet::IpNet>,
    pub dns: DnsDetectorConfig,
    pub beacon: beacon::BeaconConfig,
    pub scan: scan::ScanConfig,
    pub upload: upload::UploadConfig,
    pub spam: spam::SpamConfig,
    pub flood: flood::FloodConfig,
    /// Memory bounds of the flows the flow detectors (beacon, scan, upload, spam, flood) keep.
    pub flows: FlowBounds,
}

impl Default for SensorSection {
    fn default() -> Self {
        SensorSection {
            indicator_types: INDICATOR_TYPES.iter().map(|t| t.to_string()).collect(),
            indicator_ttl_days: 30,
            window_secs: 3600,
            internal: Vec::new(),
            dns: DnsDetectorConfig::default(),
            beacon: beacon::BeaconConfig::default(),
            scan: Default::default(),
            upload: Default::default(),
            spam: Default::default(),
            flood: Default::default(),
            flows: FlowBounds::default(),
        }
    }
}

/// The active indicators in the store, compiled.
pub fn matcher_from_store(store: &dyn Store, cfg: &SensorSection) -> Result<Matcher> {
    let ttl = cfg.indicator_ttl_days.max(0) * 86_400_000_000;
    let mut inds = Vec::new();
    // Few distinct source sets exist: turn each stored JSON object into "feed,feed" once.
    let mut feeds_of: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    store
        .for_each_indicator(&cfg.indicator_types, &mut |o| {
            let Some(value) = indicator_value(o.subject) else { return };
            let feeds = match feeds_of.get(o.sources_json) {
                Some(f) => f.clone(),
                None => {
                    let m: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(o.sources_json).unwrap_or_default();
                    let f = m.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(",");
                    feeds_of.insert(o.sources_json.to_string(), f.clone());
                    f
                }
            };
            inds.push(Indicator {
                value,
                source_id: o.id,
                label: if o.family.is_empty() {
                    o.classification_type.to_string()
                } else {
                    o.family.to_string()
                },
                feeds,
                // A feed lists what was active around its report; a day's slack before.
                valid_from: Timestamp::from_micros(o.first_seen.micros() - 86_400_000_000),
                valid_until: Timestamp::from_micros(o.last_seen.micros().saturating_add(ttl)),
            });
        })
        .context("reading indicators")?;
    Ok(Matcher::build(inds))
}

/// Bumped when what [`matcher_from_store`] derives from the same observations changes, so
/// snapshots compiled under the old rules are not used.
const INDICATOR_RULES: u32 = 1;

/// Where a compiled matcher came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compiled {
    /// A snapshot compiled from the same observations and settings.
    Snapshot,
    /// Compiled from the store just now.
    Store,
}

/// The matcher snapshot of the database at `db`: beside it. None for an in-memory database.
pub fn matcher_snapshot_path(db: &std::path::Path) -> Option<std::path::PathBuf> {
    let s = db.to_str()?;
    if s.is_empty() || s == ":memory:" || s.starts_with("file::memory:") {
        return None;
    }
    let mut p = db.as_os_str().to_owned();
    p.push(".matcher");
    Some(p.into())
}

/// The feeds sightings are stored under ([`sightings`]); never indicator sources.
pub const SIGHTING_FEEDS: &[&str] = &["botwatch_sensor_match", "botwatch_sensor_detect"];

/// What the snapshot of the store's current indicators is labelled with.
pub fn snapshot_key(store: &dyn Store, cfg: &SensorSection) -> Result<String> {
    Ok(format!(
        "rules {INDICATOR_RULES}|{}|types {:?}|ttl {}",
        store.generation(SIGHTING_FEEDS).context("reading the store's generation")?,
        cfg.indicator_types,
        cfg.indicator_ttl_days
    ))
}

/// [`matcher_from_store`] through a snapshot file: read when it was compiled from the same
/// observations and settings, else compiled and the snapshot rewritten. A snapshot that
/// cannot be read or written costs a compile, never the scan.
pub fn matcher_cached(
    store: &dyn Store,
    cfg: &SensorSection,
    snapshot: Option<&std::path::Path>,
) -> Result<(Matcher, Compiled)> {
    let Some(path) = snapshot else { return Ok((matcher_from_store(store, cfg)?, Compiled::Store)) };
    let key = snapshot_key(store, cfg)?;
    if let Ok(file) = std::fs::File::open(path)
        && let Ok(meta) = file.metadata()
    {
        match Matcher::read_snapshot(file, meta.len(), &key) {
            Ok(m) => return Ok((m, Compiled::Snapshot)),
            Err(botwatch_telemetry::matcher::SnapshotError::Stale) => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "Ignoring the matcher snapshot"),
        }
    }
    let m = matcher_from_store(store, cfg)?;
    // Written aside and renamed: a concurrent reader sees the old snapshot or the new one.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, m.to_snapshot(&key))
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        });
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "Could not write the matcher snapshot");
    }
    Ok((m, Compiled::Store))
}

/// Addresses no real traffic comes from: documentation (RFC 5737, RFC 3849), loopback,
/// unspecified. Feed examples and sample data use them; as indicators they only match
/// other examples.
fn never_routed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_unspecified()
                || (o[0], o[1], o[2]) == (192, 0, 2)
                || (o[0], o[1], o[2]) == (198, 51, 100)
                || (o[0], o[1], o[2]) == (203, 0, 113)
        }
        IpAddr::V6(a) => a.is_loopback() || a.is_unspecified() || a.segments()[..2] == [0x2001, 0x0db8],
    }
}

/// An observation's subject as an indicator: address, network, domain, or a URL's host.
pub fn indicator_value(subject: &str) -> Option<IndicatorValue> {
    let v = indicator_value_any(subject)?;
    match &v {
        IndicatorValue::Ip(ip) if never_routed(*ip) => None,
        IndicatorValue::Net(n) if never_routed(n.network()) => None,
        _ => Some(v),
    }
}

fn indicator_value_any(subject: &str) -> Option<IndicatorValue> {
    if let Ok(ip) = subject.parse::<IpAddr>() {
        return Some(IndicatorValue::Ip(ip));
    }
    if let Ok(n) = subject.parse::<ipnet::IpNet>() {
        return Some(IndicatorValue::Net(n));
    }
    if subject.starts_with("AS") && subject[2..].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let host = match subject.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if let Some(v6) = host.strip_prefix('[').and_then(|h| h.split(']').next()) {
                return v6.parse().ok().map(IndicatorValue::Ip);
            }
            host.split(':').next().unwrap_or("")
        }
        None => subject,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(IndicatorValue::Ip(ip));
    }
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    (h.contains('.') && botwatch_model::valid_fqdn(&h)).then_some(IndicatorValue::Domain(h))
}

/// One flagged client, as `scan --json` prints it (and a sightings delivery carries it).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Flagged {
    pub client: IpAddr,
    /// `indicator` (matched a feed's indicator), `dga`, `nx_burst`, `beacon`.
    pub reason: String,
    /// The matched indicator (`indicator`) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicator: Option<String>,
    /// … or the detector's confidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The indicator's malware family, when its feeds named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malware: Option<String>,
    /// Family or classification of the indicator, the feeds behind it; or the detector's
    /// explanation.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// What the client talked to: the indicator's address or name as seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ScanCounts {
    pub flows: u64,
    pub dns: u64,
    pub hits: u64,
    /// Flows the flow detectors did not keep: over `[sensor.flows]`.
    pub flows_over_bounds: u64,
}

impl ScanCounts {
    /// "; N flows over the detectors' memory bounds, not analysed", or nothing.
    pub fn over_bounds(&self) -> String {
        if self.flows_over_bounds == 0 {
            String::new()
        } else {
            format!(
                "; {} flows over the detectors' memory bounds ([sensor.flows]), not analysed",
                self.flows_over_bounds
            )
        }
    }
}

/// Matching and detection over records from any number of files or packets.
pub struct Scanner {
    matcher: Arc<Matcher>,
    ignore_validity: bool,
    window_us: i64,
    internal: Vec<ipnet::IpNet>,
    /// (client, indicator, window number) → aggregate.
    hits: BTreeMap<(IpAddr, String, i64), Flagged>,
    dns: DnsDetector,
    /// The flows the flow detectors read at `finish`, kept once for all of them.
    flows: FlowMemory,
    beacon: beacon::BeaconConfig,
    scan: scan::ScanConfig,
    upload: upload::UploadConfig,
    spam: spam::SpamConfig,
    flood: flood::FloodConfig,
    /// Run the DNS and flow detectors (they keep per-client state).
    detect: bool,
    counts: ScanCounts,
    /// Records after this time are passed over, as if the capture ended there (an
    /// evaluation's "when would a sensor have flagged it").
    until: Option<Timestamp>,
    /// Every flow originator and DNS client with when it was first seen and what the record
    /// said of it (Zeek `local_orig`), kept only for an evaluation ([`Scanner::collect_hosts`]).
    pub hosts: Option<BTreeMap<IpAddr, HostSeen>>,
}

/// A host as an evaluation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSeen {
    pub first: Timestamp,
    pub last: Timestamp,
    /// Zeek's `local_orig` on its flows, when it said.
    pub local: Option<bool>,
    /// Flows it originated and DNS records of its queries.
    pub flows: u64,
    pub dns: u64,
}

impl Scanner {
    pub fn new(matcher: Arc<Matcher>, cfg: &SensorSection, ignore_validity: bool) -> Self {
        Scanner {
            matcher,
            ignore_validity,
            window_us: cfg.window_secs.max(1) * 1_000_000,
            internal: cfg.internal.clone(),
            hits: BTreeMap::new(),
            dns: DnsDetector::new(cfg.dns.clone())
                .with_scope(botwatch_telemetry::detect::scope::Scope::new(cfg.internal.clone())),
            flows: FlowMemory::new(cfg.flows.clone()),
            beacon: cfg.beacon.clone(),
            scan: cfg.scan.clone(),
            upload: cfg.upload.clone(),
            spam: cfg.spam.clone(),
            flood: cfg.flood.clone(),
            detect: true,
            counts: ScanCounts::default(),
            until: None,
            hosts: None,
        }
    }

    /// What was read and matched so far, with the flows the detectors' memory dropped.
    pub fn counts(&self) -> ScanCounts {
        ScanCounts { flows_over_bounds: self.flows.dropped(), ..self.counts }
    }

    /// Passes over records after `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.until = Some(t);
        self
    }

    /// The capture's own network as the detectors infer it where nothing else says (the
    /// public /16 or /48 most flows touch): what an evaluation counts as internal too.
    pub fn home(&self) -> Option<ipnet::IpNet> {
        self.flows.vantage().home()
    }

    /// Keeps every originator and DNS client seen, for [`crate::eval`].
    pub fn collect_hosts(mut self) -> Self {
        self.hosts = Some(BTreeMap::new());
        self
    }

    fn saw(&mut self, ip: IpAddr, t: Timestamp, local: Option<bool>, dns: bool) {
        if let Some(h) = &mut self.hosts {
            let e = h.entry(ip).or_insert(HostSeen { first: t, last: t, local, flows: 0, dns: 0 });
            e.first = e.first.min(t);
            e.last = e.last.max(t);
            e.local = e.local.or(local);
            if dns {
                e.dns += 1;
            } else {
                e.flows += 1;
            }
        }
    }

    /// Indicator matching only: no detector state per client and flow series.
    pub fn without_detectors(mut self) -> Self {
        self.detect = false;
        self
    }

    fn ip_hit(&self, ip: IpAddr, t: Timestamp) -> Option<IndicatorMeta> {
        if self.ignore_validity { self.matcher.lookup_ip(ip) } else { self.matcher.match_ip(ip, t) }
            .map(|h| h.to_meta())
    }

    fn internal(&self, ip: IpAddr) -> bool {
        self.internal.iter().any(|n| n.contains(&ip))
    }

    fn record_hit(
        &mut self,
        client: IpAddr,
        client_port: Option<u16>,
        peer: String,
        m: IndicatorMeta,
        t: Timestamp,
    ) {
        self.counts.hits += 1;
        let w = t.micros().div_euclid(self.window_us);
        let e = self.hits.entry((client, m.value.clone(), w)).or_insert_with(|| Flagged {
            client,
            reason: "indicator".into(),
            indicator: Some(m.value.clone()),
            score: None,
            count: 0,
            first_seen: t,
            last_seen: t,
            // A label that is a classification type is no family.
            malware: ClassificationType::from_name(&m.label).is_none().then(|| m.label.clone()),
            detail: format!("{} (from {})", m.label, m.feeds),
            client_port: None,
            peer: None,
        });
        // Port and peer of the earliest hit, whatever order records come in (streamed DNS
        // comes as exchanges complete, not by time).
        if e.count == 0 || t < e.first_seen {
            e.client_port = client_port;
            e.peer = Some(peer);
        }
        e.count += 1;
        e.first_seen = e.first_seen.min(t);
        e.last_seen = e.last_seen.max(t);
    }

    pub fn flow(&mut self, f: &FlowRecord) {
        if self.until.is_some_and(|u| f.start > u) {
            return;
        }
        self.counts.flows += 1;
        self.saw(f.src, f.start, f.local_orig, false);
        if self.detect {
            self.flows.observe(f);
        }
        if !self.internal.is_empty() {
            // Only the external end can be an indicator: one look-up per flow.
            let (client, cport, peer, pport) = if self.internal(f.src) {
                (f.src, f.src_port, f.dst, f.dst_port)
            } else if self.internal(f.dst) {
                (f.dst, f.dst_port, f.src, f.src_port)
            } else {
                return;
            };
            if let Some(m) = self.ip_hit(peer, f.start) {
                self.record_hit(client, Some(cport), format!("{peer}:{pport}"), m, f.start);
            }
            return;
        }
        if let Some(m) = self.ip_hit(f.dst, f.start)
            && (self.internal.is_empty() || self.internal(f.src))
        {
            self.record_hit(f.src, Some(f.src_port), format!("{}:{}", f.dst, f.dst_port), m, f.start);
        } else if let Some(m) = self.ip_hit(f.src, f.start)
            && (self.internal.is_empty() || self.internal(f.dst))
        {
            // The C2 answering, or calling in: the client is the other end.
            self.record_hit(f.dst, Some(f.dst_port), format!("{}:{}", f.src, f.src_port), m, f.start);
        }
    }

    pub fn dns(&mut self, r: &DnsRecord) {
        if self.until.is_some_and(|u| r.time > u) {
            return;
        }
        self.counts.dns += 1;
        self.saw(r.client, r.time, None, true);
        if self.detect {
            self.dns.observe(r);
        }
        let m = if self.ignore_validity {
            self.matcher.lookup_domain(&r.qname)
        } else {
            self.matcher.match_domain(&r.qname, r.time)
        }
        .map(|h| h.to_meta());
        if let Some(m) = m {
            self.record_hit(r.client, r.client_port, r.qname.clone(), m, r.time);
            return;
        }
        // Answers pointing at a listed address.
        for &a in &r.answers {
            if let Some(m) = self.ip_hit(a, r.time) {
                self.record_hit(r.client, r.client_port, format!("{} → {a}", r.qname), m, r.time);
                break;
            }
        }
    }

    /// Every flagged client: indicator hits, then detector findings, by client.
    pub fn finish(mut self) -> Vec<Flagged> {
        let mut out: Vec<Flagged> = self.hits.into_values().collect();
        let scope = botwatch_telemetry::detect::scope::Scope::new(self.internal.clone());
        let scans = scan::find(&self.flows, &self.scan, &scope);
        let (uploads, upload_aside) = upload::find(&self.flows, &self.upload, &scope);
        let (spam, spam_aside) = spam::find(&self.flows, &self.spam, &scope);
        let floods = flood::find(&self.flows, &self.flood, &scope);
        if upload_aside != upload::UploadCounts::default() {
            tracing::info!(
                direction_unknown = upload_aside.direction_unknown,
                popular = upload_aside.popular,
                p2p = upload_aside.p2p,
                ftp = upload_aside.ftp,
                "Bulk uploads to unregistered ports set aside: reverse direction not in any record, \
                 popular destination, peer-to-peer client, FTP data"
            );
        }
        if spam_aside.mail_servers > 0 {
            tracing::info!(
                clients = spam_aside.mail_servers,
                "Hosts delivering mail to many servers not flagged: mail servers ([sensor.spam] mail_servers, or receiving mail)"
            );
        }
        let (beacons, set_aside) = beacon::find(&mut self.flows, &self.beacon, &scope);
        if set_aside.over_series_bound > 0 {
            tracing::warn!(
                flows = set_aside.over_series_bound,
                bound = self.beacon.max_events_per_series,
                "Flows past [sensor.beacon] max_events_per_series were not analysed for beaconing"
            );
        }
        let (dns, tunnel_aside) = self.dns.finish_counted();
        if tunnel_aside.popular > 0 {
            tracing::info!(
                clients = tunnel_aside.popular,
                "DNS tunnel-like volume to a domain many clients ask such names of not flagged (a service of theirs)"
            );
        }
        let findings: Vec<Finding> =
            dns.into_iter().chain(beacons).chain(scans).chain(uploads).chain(spam).chain(floods).collect();
        for f in findings {
            let reason = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_string));
            out.push(Flagged {
                client: f.client,
                reason: reason.unwrap_or_else(|| "detector".into()),
                indicator: None,
                malware: None,
                score: Some((f.confidence * 1000.0).round() / 1000.0),
                count: f.count as u64,
                first_seen: f.first_seen,
                last_seen: f.last_seen,
                detail: format!("{}; e.g. {}", f.reason, f.samples.join(", ")),
                client_port: None,
                peer: f.samples.first().cloned(),
            });
        }
        out.sort_by(|a, b| a.client.cmp(&b.client).then(a.first_seen.cmp(&b.first_seen)));
        out
    }
}

/// Sightings as events: infected-system on the client, what it talked to as destination.
pub fn sightings(flagged: &[Flagged], sensor: &str) -> Vec<Event> {
    let feed = Arc::new(FeedInfo::new(
        &format!("botwatch_sensor_{sensor}"),
        &format!("botwatch {sensor} sensor"),
        "botwatch",
        if sensor == "detect" { 60.0 } else { 90.0 },
    ));
    flagged
        .iter()
        .map(|f| {
            let mut e = Event::new(feed.clone(), ClassificationType::InfectedSystem, f.last_seen);
            e.time_source = Some(f.first_seen);
            e.source.ip = Some(f.client);
            e.source.port = f.client_port;
            if let Some(p) = &f.peer {
                let host = p.split(" → ").next().unwrap_or(p);
                match host
                    .rsplit_once(':')
                    .and_then(|(h, port)| Some((h.parse::<IpAddr>().ok()?, port.parse::<u16>().ok()?)))
                {
                    Some((ip, port)) => {
                        e.destination.ip = Some(ip);
                        e.destination.port = Some(port);
                    }
                    None => {
                        let _ = e.set_str(Slot::for_key("destination.fqdn"), host);
                    }
                }
            }
            e.malware_name = f.malware.as_deref().filter(|m| !m.is_empty()).map(Into::into);
            e.attrs.push(("extra.sensor.reason", botwatch_model::Value::Str(f.reason.as_str().into())));
            e.attrs.push(("extra.sensor.detail", botwatch_model::Value::Str(f.detail.as_str().into())));
            e.attrs.push(("extra.sensor.count", botwatch_model::Value::Int(f.count as i64)));
            if let Some(i) = &f.indicator {
                e.attrs.push(("extra.sensor.indicator", botwatch_model::Value::Str(i.as_str().into())));
            }
            if let Some(s) = f.score {
                e.attrs.push(("extra.sensor.score", botwatch_model::Value::Float(s)));
            }
            e.raw = bytes::Bytes::from(serde_json::to_vec(f).unwrap_or_default());
            e
        })
        .collect()
}

/// Stores sightings as one report (named by `sha256` of what was scanned, so scanning the
/// same input again adds nothing). Returns events stored.
pub fn store_sightings(store: &mut dyn Store, sha256: &str, name: &str, events: &[Event]) -> Result<u64> {
    Ok(store_sightings_report(store, sha256, name, events)?.unwrap_or(0))
}

/// [`store_sightings`], telling a report stored before (`None`) from one stored now.
fn store_sightings_report(
    store: &mut dyn Store,
    sha256: &str,
    name: &str,
    events: &[Event],
) -> Result<Option<u64>> {
    let Some(first) = events.first() else { return Ok(Some(0)) };
    let mut meta = ReportMeta::new(sha256, &first.feed.id, 0, first.time_observation);
    meta.name = Some(name.to_string());
    meta.feed_info = Some((*first.feed).clone());
    let Some(mut w) = store.begin_report(&meta)? else { return Ok(None) };
    let mut keys = botwatch_store::DocKeys::default();
    let mut enc: Vec<_> = events.iter().map(|e| botwatch_store::encode_with(e, &mut keys)).collect();
    let mut resolver = w.resolver()?;
    if let Some(r) = &mut resolver {
        r.resolve(&mut enc)?;
    }
    let mut out = w.write_batch(&enc, &[])?;
    if let Some(r) = resolver {
        (out.merged, out.new_observations) = w.observations(r.finish())?;
    }
    let doc_keys = keys.keys().iter().map(|k| k.to_string()).collect();
    w.commit(&ReportTotals { outcome: out, warnings: vec![], doc_keys })?;
    Ok(Some(out.inserted))
}

/// The form of a sightings delivery, in its `format` field.
pub const SIGHTINGS_FORMAT: &str = "botwatch-sightings/1";

/// A sensor's findings on their way to a `botwatch worker` (with `[nats] url`): the
/// findings themselves, not events, so the worker makes the same events
/// [`store_sightings`] would have stored here.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct SightingsDelivery {
    /// [`SIGHTINGS_FORMAT`].
    pub format: String,
    /// The report they are stored as; the same delivery stored twice counts once.
    pub report: String,
    pub name: String,
    /// `match` (feed indicators) or `detect` (the detectors): the feed is
    /// `botwatch_sensor_<sensor>`.
    pub sensor: String,
    pub flagged: Vec<Flagged>,
}

/// Where a sensor's findings went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Into the store: this many new events.
    Stored(u64),
    /// To JetStream, this many sightings; a worker stores (and counts) them.
    Published(u64),
}

impl Handed {
    /// "12 sightings stored" / "12 sightings published for a worker to store".
    pub fn describe(list: &[Handed]) -> String {
        let stored: u64 = list.iter().map(|h| if let Handed::Stored(n) = h { *n } else { 0 }).sum();
        let published: u64 = list.iter().map(|h| if let Handed::Published(n) = h { *n } else { 0 }).sum();
        if list.iter().any(|h| matches!(h, Handed::Published(_))) {
            format!("{published} sightings published for a worker to store")
        } else {
            format!("{stored} sightings stored")
        }
    }
}

/// Stores `flagged` as the `sensor`'s report `report`, or, with a stream, publishes them
/// for a worker to store.
pub fn hand_sightings(
    store: &mut dyn Store,
    nats: Option<&botwatch_intake::stream::Nats>,
    report: &str,
    name: &str,
    sensor: &str,
    flagged: &[Flagged],
) -> Result<Handed> {
    if flagged.is_empty() {
        return Ok(Handed::Stored(0));
    }
    let Some(nats) = nats else {
        return Ok(Handed::Stored(store_sightings(store, report, name, &sightings(flagged, sensor))?));
    };
    let doc = SightingsDelivery {
        format: SIGHTINGS_FORMAT.into(),
        report: report.into(),
        name: name.into(),
        sensor: sensor.into(),
        flagged: flagged.to_vec(),
    };
    let body = bytes::Bytes::from(serde_json::to_vec(&doc)?);
    let feed = format!("botwatch_sensor_{sensor}");
    let origin = botwatch_intake::Origin {
        feed: Some(&feed),
        source: format!("sensor:{name}"),
        observed: flagged.iter().map(|f| f.last_seen).max().unwrap_or(Timestamp(0)),
        archive: None,
    };
    nats.publish_kind(
        &botwatch_feeds::input::Source::Bytes(body),
        &format!("{name} ({sensor})"),
        &origin,
        Some(botwatch_intake::stream::KIND_SIGHTINGS),
    )?;
    Ok(Handed::Published(flagged.len() as u64))
}

/// No sightings delivery is read past this; a sensor's window of findings is far smaller
/// (100k flagged clients are ~30 MB).
const MAX_SIGHTINGS_DELIVERY: u64 = 256 << 20;

/// A worker's side of [`hand_sightings`]: the delivery in the file at `path`, stored.
pub fn store_sightings_delivery(
    store: &mut dyn Store,
    path: &std::path::Path,
) -> Result<botwatch_intake::Delivered> {
    use std::io::Read;
    let size = std::fs::metadata(path)?.len();
    anyhow::ensure!(
        size <= MAX_SIGHTINGS_DELIVERY,
        "a sightings delivery of {size} bytes: more than the {MAX_SIGHTINGS_DELIVERY} a sensor sends"
    );
    let mut body = Vec::with_capacity(size as usize);
    std::fs::File::open(path)?.take(MAX_SIGHTINGS_DELIVERY).read_to_end(&mut body)?;
    let doc: SightingsDelivery = serde_json::from_slice(&body).context("not a sightings delivery")?;
    anyhow::ensure!(
        doc.format == SIGHTINGS_FORMAT,
        "sightings delivery in form {:?}; this botwatch reads {SIGHTINGS_FORMAT:?}",
        doc.format
    );
    // The feed is named after the sensor, so only botwatch's own two are taken.
    anyhow::ensure!(
        matches!(doc.sensor.as_str(), "match" | "detect"),
        "sightings from sensor {:?}: expected \"match\" or \"detect\"",
        doc.sensor
    );
    let events = sightings(&doc.flagged, &doc.sensor);
    let stored = store_sightings_report(store, &doc.report, &doc.name, &events)?;
    Ok(botwatch_intake::Delivered {
        reports: vec![botwatch_intake::pipeline::ReportSummary {
            name: doc.name,
            feed: format!("botwatch_sensor_{}", doc.sensor),
            sha256: doc.report,
            bytes: size,
            new: stored.is_some(),
            report_id: None,
            events: stored.unwrap_or(0),
            duplicates: 0,
            merged: 0,
            new_observations: 0,
            rejects: 0,
            drift_warnings: 0,
            warnings: Vec::new(),
            published: None,
        }],
        ..Default::default()
    })
}

/// The DNS decoders hand their records straight to the scanner.
impl botwatch_telemetry::dns::DnsSink for Scanner {
    fn record(&mut self, r: DnsRecord) {
        self.dns(&r);
    }
}

/// So do the flow-log readers; rejects are counted in their stats, which `scan` reports.
impl botwatch_telemetry::flow::log::LogSink for Scanner {
    fn record(&mut self, r: FlowRecord, _label: Option<String>) {
        self.flow(&r);
    }
    fn reject(&mut self, _r: botwatch_model::Reject) {}
}

/// What one scanned file gave.
#[derive(Debug, Clone, Serialize)]
pub struct FileScan {
    pub file: String,
    /// `flows`, `dns` or both (a pcap can carry NetFlow exports and DNS).
    pub kinds: Vec<&'static str>,
    pub records: u64,
    pub rejects: u64,
}

/// How much of each file is read to tell its format; every format's detection looks at no
/// more.
const HEAD: u64 = 64 * 1024;

/// The files `path` holds, each handed to `f` as an [`Inside`], streamed: the file itself, a gzip's content (named without `.gz`: Zeek
/// archives its logs gzipped), or a zip's members (`file.zip:member`; macOS resource forks
/// skipped; a gzipped member as what it holds). A compressed file stops at `[ingest]`'s limits (`max_gib` in all, a bomb at
/// `max_ratio`), and `f` is told the cap for what it holds in memory (`max_document_mib`);
/// a plain file has none. With `digest`, the stored file's bytes go into it once, in order.
pub fn each_file<T>(
    path: &std::path::Path,
    limits: &botwatch_feeds::input::Limits,
    digest: Option<&mut sha2::Sha256>,
    progress: &dyn Fn(u64),
    mut f: impl FnMut(Inside<'_>) -> Result<T>,
) -> Result<Vec<Result<T>>> {
    use botwatch_feeds::input::{GZIP_MAGIC, Source, ZIP_MAGIC, members, read_error, with_reader};
    use std::io::Read;
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| name.clone())?;
    let mut plain = HashRead { inner: file, hasher: digest, progress };
    let mut head = Vec::new();
    (&mut plain).take(HEAD).read_to_end(&mut head).with_context(|| name.clone())?;
    if !(head.starts_with(&GZIP_MAGIC) || head.starts_with(&ZIP_MAGIC)) {
        let mut again = |f: &mut dyn FnMut(&mut dyn Read) -> Result<()>| -> Result<()> {
            f(&mut std::fs::File::open(path).with_context(|| name.clone())?)
        };
        let got =
            f(Inside { name: &name, what: &name, head, rest: &mut plain, cap: None, again: &mut again });
        // What `f` left unread (nfdump's summary, a file it gave up on) is still the file's;
        // a failure here leaves what `f` read counted, and says so.
        if plain.hasher.is_some()
            && let Err(e) = std::io::copy(&mut plain, &mut std::io::sink())
        {
            return Ok(vec![got, Err(anyhow::anyhow!("{name}: {e}"))]);
        }
        return Ok(vec![got]);
    }
    // A compressed file is hashed as stored, then read again through its decompressor.
    if plain.hasher.is_some() {
        plain.progress = &no_progress;
        std::io::copy(&mut plain, &mut std::io::sink()).with_context(|| name.clone())?;
    }
    let src = Source::File(path.to_path_buf());
    let cap = limits.max_bytes.min(limits.max_document);
    let mut used = 0;
    let mut out = Vec::new();
    for m in members(&name, &src)?.into_iter().filter(|m| !m.name.starts_with("__MACOSX/")) {
        // A gzip's content keeps the file's path (detection reads its name); a zip member
        // is named inside its archive.
        let inner = if m.what == name { m.name.clone() } else { m.what.clone() };
        let mut again = |f: &mut dyn FnMut(&mut dyn Read) -> Result<()>| -> Result<()> {
            with_reader(&src, &m, limits, used, |r| {
                // The same nesting as below: a gzip inside a zip is opened as well.
                let mut head = Vec::new();
                (&mut *r).take(2).read_to_end(&mut head).map_err(|e| read_error(&m.what, e))?;
                let gz = head.starts_with(&GZIP_MAGIC);
                let inside = std::io::Cursor::new(head).chain(r);
                if gz {
                    f(&mut botwatch_feeds::input::Gunzipped::new(inside, limits, used, &m.what))
                } else {
                    f(&mut { inside })
                }
            })?
        };
        let got = with_reader(&src, &m, limits, used, |r| {
            let mut counted = Counted { inner: r, n: 0 };
            let mut head = Vec::new();
            let got = match (&mut counted).take(HEAD).read_to_end(&mut head) {
                // A zip of gzipped logs (a Zeek log directory zipped whole): one level more,
                // under the same limits as the outer one.
                Ok(_) if head.starts_with(&GZIP_MAGIC) => {
                    let inside = std::io::Cursor::new(head).chain(&mut counted);
                    let mut gz = botwatch_feeds::input::Gunzipped::new(inside, limits, used, &m.what);
                    let mut head = Vec::new();
                    let got = match (&mut gz).take(HEAD).read_to_end(&mut head) {
                        Ok(_) => f(Inside {
                            name: inner.strip_suffix(".gz").unwrap_or(&inner),
                            what: &m.what,
                            head,
                            rest: &mut gz,
                            cap: Some(cap),
                            again: &mut again,
                        }),
                        Err(e) => Err(read_error(&m.what, e).into()),
                    };
                    return (got, gz.expanded());
                }
                Ok(_) => f(Inside {
                    name: &inner,
                    what: &m.what,
                    head,
                    rest: &mut counted,
                    cap: Some(cap),
                    again: &mut again,
                }),
                Err(e) => Err(read_error(&m.what, e).into()),
            };
            (got, counted.n)
        });
        match got {
            Ok((got, n)) => {
                used += n;
                out.push(got);
            }
            Err(e) => out.push(Err(e.into())),
        }
    }
    anyhow::ensure!(!out.is_empty(), "{name}: a zip with no file in it");
    Ok(out)
}

/// One file of those a path holds ([`each_file`]).
pub struct Inside<'a> {
    /// What detection reads: the path, a gzip's without `.gz`, `file.zip:member`.
    pub name: &'a str,
    /// What messages name: the path, or `file.zip:member`.
    pub what: &'a str,
    /// The first 64 KiB (all of a shorter file).
    pub head: Vec<u8>,
    /// The rest.
    pub rest: &'a mut dyn std::io::Read,
    /// What the file may expand to in memory, when it is compressed.
    pub cap: Option<u64>,
    /// Reads the same content again from its start, for a format read in passes (a capture):
    /// the file opened anew, or a compressed file decompressed anew under the same limits,
    /// which costs CPU, not memory.
    pub again: &'a mut Reread<'a>,
}

/// See [`Inside::again`].
pub type Reread<'a> = dyn FnMut(&mut dyn FnMut(&mut dyn std::io::Read) -> Result<()>) -> Result<()> + 'a;

/// Hashes what passes through it, when it has a hasher, and says how much did.
struct HashRead<'a, R> {
    inner: R,
    hasher: Option<&'a mut sha2::Sha256>,
    progress: &'a dyn Fn(u64),
}

impl<R: std::io::Read> std::io::Read for HashRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            sha2::Digest::update(h, &buf[..n]);
        }
        (self.progress)(n as u64);
        Ok(n)
    }
}

fn no_progress(_: u64) {}

/// Counts what passes through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// The text formats read line by line, whatever their size: flow logs (Zeek `conn.log`,
/// Argus, nfdump CSV) and DNS logs (Zeek `dns.log`, Unbound and BIND query logs).
#[derive(Debug, Clone, Copy)]
enum ByLine {
    Flows(botwatch_telemetry::flow::log::LogKind),
    Dns(botwatch_telemetry::dns::DnsFormat),
}

fn by_line(head: &[u8], name: &str) -> Option<ByLine> {
    use botwatch_telemetry::{dns, flow};
    match (flow::detect(head, name).and_then(flow::FlowFormat::log_kind), dns::detect(head, name)) {
        (Some(kind), None) => Some(ByLine::Flows(kind)),
        (
            None,
            Some(f @ (dns::DnsFormat::ZeekDns | dns::DnsFormat::UnboundLog | dns::DnsFormat::BindQueryLog)),
        ) => Some(ByLine::Dns(f)),
        _ => None,
    }
}

/// Scans the file at `path` into the scanner, never holding a file whole: an nfcapd file
/// block by block, text logs line by line, a pcap or dnstap file through one buffer (plain,
/// gzipped or zipped; a compressed capture decompressed once per pass). Only an nfcapd file
/// inside a gzip or zip is read whole ([`scan_file`]), within `[ingest] max_document_mib`.
/// One result per file inside (a zip's members). With `digest`, the file's stored bytes go
/// into it, so the scan's report digest does not depend on how it was read. `progress` is
/// told the bytes of an uncompressed file as they are read; a compressed one is not.
pub fn scan_path(
    scanner: &mut Scanner,
    path: &std::path::Path,
    limits: &botwatch_feeds::input::Limits,
    digest: Option<&mut sha2::Sha256>,
    progress: &dyn Fn(u64),
) -> Vec<Result<FileScan>> {
    use std::io::Read;
    let name = path.display().to_string();
    let opened = std::fs::File::open(path).and_then(|mut f| {
        let mut head = Vec::with_capacity(4096);
        (&mut f).take(4096).read_to_end(&mut head)?;
        Ok((f, head))
    });
    let (mut file, head) = match opened {
        Ok(x) => x,
        Err(e) => return vec![Err(anyhow::anyhow!("{name}: {e}"))],
    };
    if botwatch_telemetry::flow::nfcapd::is_nfcapd(&head) {
        return vec![scan_nfcapd_reader(scanner, &name, &mut file, digest)];
    }
    drop(file);
    // Syslog time stamps leave out the year; the file's modification time supplies it.
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Timestamp::from_micros(d.as_micros() as i64));
    let got = each_file(path, limits, digest, progress, |Inside { name, what, head, rest, cap, again }| {
        // A read that failed part-way (a disk error, a compressed file past its limits): the
        // records before it are in the scanner, the file is still a failure.
        let failed = |e: std::io::Error| match cap {
            Some(_) => anyhow::anyhow!("{}", botwatch_feeds::input::read_error(what, e)),
            None => anyhow::anyhow!("{what}: {e}"),
        };
        // A capture is read through one buffer, once per kind of content (a compressed one
        // decompressed again for each), rather than whole: bounded, and faster than holding
        // and sorting its flows (a 289 MB capture: 3.8 s and 158 MB against 5.0 s and 865 MB).
        if botwatch_telemetry::flow::pcap::is_pcap(&head) {
            let mut first = std::io::Cursor::new(head).chain(rest);
            return scan_pcap_passes(scanner, name, &mut first, again, &failed);
        }
        if botwatch_telemetry::dns::detect(&head, name) == Some(botwatch_telemetry::dns::DnsFormat::Dnstap) {
            let mut input = KeepError::new(std::io::Cursor::new(head).chain(rest));
            let st = botwatch_telemetry::dns::read_dnstap_into(&mut input, scanner);
            if let Some(e) = input.error {
                return Err(failed(e));
            }
            return Ok(FileScan {
                file: name.to_string(),
                kinds: vec!["dns"],
                records: st.records,
                rejects: st.rejects,
            });
        }
        if let Some(how) = by_line(&head, name) {
            let mut lines = botwatch_telemetry::lines::ReadLines::new(std::io::BufReader::with_capacity(
                256 * 1024,
                std::io::Cursor::new(head).chain(rest),
            ));
            let scanned = scan_lines(scanner, name, &mut lines, how, written);
            return match lines.error {
                // The lines before the failure are in the scanner; the file is still a failure.
                Some(e) => Err(anyhow::anyhow!(
                    "{what}: reading stopped after line {}: {}",
                    scanned.as_ref().map_or(0, |s| s.lines),
                    match cap {
                        Some(_) => botwatch_feeds::input::read_error(what, e).to_string(),
                        None => e.to_string(),
                    }
                )),
                None => scanned.map(|s| s.scan),
            };
        }
        if botwatch_telemetry::flow::detect(&head, name).is_none()
            && botwatch_telemetry::dns::detect(&head, name).is_none()
        {
            // Detection reads no more than the head: what it does not know is said now, not
            // after reading (and decompressing) the rest.
            return scan_file(scanner, name, &head, written);
        }
        // Left, read whole: an nfcapd file inside a compressed one (its reader seeks), and the
        // rare head two formats' detections both claim, which `scan_file` settles on all of
        // it (a compressed one within `max_document_mib`).
        let mut data = head;
        let res = match cap {
            None => rest.read_to_end(&mut data).map(|_| ()),
            Some(cap) => {
                let room = cap.saturating_sub(data.len() as u64);
                match rest.take(room + 1).read_to_end(&mut data) {
                    Ok(_) if data.len() as u64 > cap => anyhow::bail!(
                        "{what} expands past {} MiB, what a compressed telemetry file of this format may \
                         expand to in memory ([ingest] max_document_mib; line-by-line logs and uncompressed \
                         files are read without it)",
                        cap >> 20
                    ),
                    r => r.map(|_| ()),
                }
            }
        };
        res.map_err(failed)?;
        scan_file(scanner, name, &data, written)
    });
    match got {
        Ok(v) => v,
        Err(e) => vec![Err(e)],
    }
}

/// A pcap or pcapng file streamed, read as [`scan_file`] reads one in memory: flow exports in
/// it (NetFlow/IPFIX replayed), else its packets as flows, and its DNS; one pass each, the
/// first over `first` (the content as [`each_file`] hands it, so a compressed file's reads
/// count towards its limits), the others over `again`.
fn scan_pcap_passes(
    scanner: &mut Scanner,
    name: &str,
    first: &mut dyn std::io::Read,
    again: &mut Reread<'_>,
    failed: &dyn Fn(std::io::Error) -> anyhow::Error,
) -> Result<FileScan> {
    use botwatch_telemetry::{dns, flow};
    use std::io::BufReader;
    // Each pass reads through `KeepError`: the capture readers take a read error for the end
    // of the file, where it must fail the file.
    let through = |r: &mut dyn std::io::Read, f: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<()>| {
        let mut input = KeepError::new(r);
        let got = f(&mut input);
        // A read error is the cause of whatever the reader then made of the input (a header
        // cut short is "not a pcap"): it is what the file fails with.
        match input.error {
            Some(e) => Err(failed(e)),
            None => got,
        }
    };
    let mut first = Some(first);
    let mut pass = |f: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<()>| -> Result<()> {
        match first.take() {
            Some(r) => through(r, f),
            None => again(&mut |r| through(r, f)),
        }
    };
    let mut scan = FileScan { file: name.to_string(), kinds: vec!["flows", "dns"], records: 0, rejects: 0 };
    let mut collector = flow::netflow::Collector::new();
    let (mut flows, mut rejects, mut exports) = (0u64, 0u64, 0u64);
    pass(&mut |r| {
        let st = flow::pcap::replay_from(
            BufReader::new(r),
            &mut collector,
            &flow::pcap::PortFilter::Any,
            &mut |rec| {
                flows += 1;
                scanner.flow(&rec);
            },
            &mut |_| rejects += 1,
        )
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        exports = st.export_packets;
        Ok(())
    })?;
    if exports == 0 {
        // No flow exports: a capture at a host or a tap, whose packets are the flows.
        pass(&mut |r| {
            flows = flow::packets::flows_into(BufReader::new(r), &mut |rec| scanner.flow(&rec)).flows;
            Ok(())
        })?;
    }
    let mut st = dns::Stats::default();
    pass(&mut |r| {
        st = dns::read_pcap_into(BufReader::new(r), scanner);
        Ok(())
    })?;
    scan.records = flows + st.records;
    scan.rejects = rejects + st.rejects;
    Ok(scan)
}

/// Keeps the first read error of what it reads, for readers that take an error for the end
/// of their input.
struct KeepError<R> {
    inner: R,
    error: Option<std::io::Error>,
}

impl<R> KeepError<R> {
    fn new(inner: R) -> Self {
        KeepError { inner, error: None }
    }
}

impl<R: std::io::Read> std::io::Read for KeepError<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => {
                // What the caller gets says the same; the kept one (its cause, such as a
                // compressed file past its limits) is what the file fails with.
                let told = std::io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(told)
            }
            r => r,
        }
    }
}

/// What a line-by-line read gave, and how many lines it read.
struct LinesScan {
    scan: FileScan,
    lines: u64,
}

fn scan_lines(
    scanner: &mut Scanner,
    name: &str,
    lines: &mut dyn botwatch_telemetry::lines::LineSource,
    how: ByLine,
    written: Option<Timestamp>,
) -> Result<LinesScan> {
    use botwatch_telemetry::{dns, flow};
    /// Counts the lines it passes on, for where a read failed.
    struct Counting<'a>(&'a mut dyn botwatch_telemetry::lines::LineSource, u64);
    impl botwatch_telemetry::lines::LineSource for Counting<'_> {
        fn next_line(&mut self) -> Option<botwatch_telemetry::lines::Line<'_>> {
            let l = self.0.next_line()?;
            self.1 = l.number;
            Some(l)
        }
    }
    let mut lines = Counting(lines, 0);
    let mut scan = FileScan { file: name.to_string(), kinds: Vec::new(), records: 0, rejects: 0 };
    match how {
        ByLine::Flows(kind) => {
            let st = flow::log::read_lines(&mut lines, kind, scanner)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            scan.kinds.push("flows");
            scan.records = st.records;
            scan.rejects = st.rejected;
        }
        ByLine::Dns(format) => {
            let opts = dns::ReadOptions { reference: written };
            let st = dns::read_lines_into(&mut lines, format, &opts, scanner).expect("a text format");
            scan.kinds.push("dns");
            (scan.records, scan.rejects) = (st.records, st.rejects);
        }
    }
    Ok(LinesScan { scan, lines: lines.1 })
}

/// Reads one file as flows and/or DNS (auto-detected) into the scanner. `written` (the
/// file's modification time) supplies the year syslog time stamps leave out.
pub fn scan_file(
    scanner: &mut Scanner,
    name: &str,
    data: &[u8],
    written: Option<Timestamp>,
) -> Result<FileScan> {
    use botwatch_telemetry::{dns, flow};
    let mut out = FileScan { file: name.to_string(), kinds: Vec::new(), records: 0, rejects: 0 };
    let flow_format = flow::detect(data, name);
    let as_flow = flow_format.is_some();
    let dns_format = dns::detect(data, name);
    if !as_flow && dns_format.is_none() {
        // A Zeek log of another kind is said to be one, not reported as unknown or misread.
        if let Some(kind) = dns::zeek::path(data) {
            let json = data.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
            anyhow::bail!(
                "{name}: a Zeek {kind} log{}; botwatch reads Zeek conn.log and dns.log (TSV or JSON)",
                if json { " in JSON" } else { "" }
            );
        }
        anyhow::bail!(
            "{name}: not a recognised telemetry format (NetFlow/IPFIX pcap, nfcapd file, flow log, nfdump CSV, dnstap, Unbound/BIND query log, Zeek conn.log/dns.log, DNS pcap)"
        );
    }
    if flow_format == Some(flow::FlowFormat::Nfcapd) {
        // Streamed into the scanner: a million-flow file never becomes a Vec of records. A
        // file that cannot be read at all (LZO/BZ2, nfdump 1.6) says how to convert it.
        let st = flow::nfcapd::read_nfcapd(data, |r| scanner.flow(r), &mut Vec::new())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        out.kinds.push("flows");
        out.records += st.records;
        out.rejects += st.rejected;
    } else if as_flow && let Ok((recs, rejects, _)) = flow::read(data, name) {
        out.kinds.push("flows");
        out.records += recs.len() as u64;
        out.rejects += rejects.len() as u64;
        for r in &recs {
            scanner.flow(r);
        }
    }
    if let Some(format) = dns_format {
        // Streamed: a capture's records never all sit in memory at once. They arrive as
        // their exchanges complete rather than sorted, which matching does not mind and the
        // detectors' windows tolerate (within the 30 s pairing window).
        let stats = dns::read_into(data, format, &dns::ReadOptions { reference: written }, scanner);
        out.kinds.push("dns");
        out.records += stats.records;
        out.rejects += stats.rejects;
    }
    if out.kinds.is_empty() {
        anyhow::bail!("{name}: recognised but could not be read");
    }
    Ok(out)
}

/// [`scan_file`] for an nfcapd file read from `reader` block by block into one reused buffer
/// (`flow::nfcapd::read_nfcapd_from`): the file is never in memory whole, so a scan pays
/// for no file-sized buffer. With `digest`, the file's bytes go into it exactly as if the
/// whole file had been hashed, so the scan's report digest does not depend on the path.
pub fn scan_nfcapd_reader<R: std::io::Read + std::io::Seek>(
    scanner: &mut Scanner,
    name: &str,
    mut reader: R,
    digest: Option<&mut sha2::Sha256>,
) -> Result<FileScan> {
    use botwatch_telemetry::flow::nfcapd;
    let mut read = |r: &mut dyn ReadSeek| nfcapd::read_nfcapd_from(r, |f| scanner.flow(f), &mut Vec::new());
    let st = match digest {
        Some(hasher) => {
            let mut hashed = HashingReader { inner: &mut reader, hasher, pos: 0, hashed: 0 };
            let st = read(&mut hashed);
            hashed.finish().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            st
        }
        None => read(&mut reader),
    };
    // As in `scan_file`: a file that cannot be read at all (LZO/BZ2, nfdump 1.6) says how
    // to convert it.
    let st = st.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(FileScan { file: name.to_string(), kinds: vec!["flows"], records: st.records, rejects: st.rejected })
}

/// One instantiation of the nfcapd reader for both plain and hashed files.
trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

/// Hashes each byte of a file once, in file order, however it is read and sought: a read
/// that continues where hashing stands is hashed as it passes, and [`HashingReader::finish`]
/// hashes whatever was skipped or never read. The reader starts at offset 0 (the nfcapd
/// reader seeks there first).
struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut sha2::Sha256,
    /// Where `inner` stands.
    pos: u64,
    /// Bytes `0..hashed` are in the digest.
    hashed: u64,
}

impl<R: std::io::Read> std::io::Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let end = self.pos + n as u64;
        if (self.pos..end).contains(&self.hashed) {
            sha2::Digest::update(&mut *self.hasher, &buf[(self.hashed - self.pos) as usize..n]);
            self.hashed = end;
        }
        self.pos = end;
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for HashingReader<'_, R> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

impl<R: std::io::Read + std::io::Seek> HashingReader<'_, R> {
    fn finish(mut self) -> std::io::Result<()> {
        self.inner.seek(std::io::SeekFrom::Start(self.hashed))?;
        std::io::copy(&mut self.inner, self.hasher)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `each_file` hands on, read to the end: each file's name and bytes.
    fn inside(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
        let limits = botwatch_feeds::input::Limits::default();
        each_file(path, &limits, None, &|_| {}, |Inside { name, mut head, rest, .. }| {
            rest.read_to_end(&mut head)?;
            Ok((name.to_string(), head))
        })?
        .into_iter()
        .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, data).unwrap();
        gz.finish().unwrap()
    }

    fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (member, data) in members {
            z.start_file(*member, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, data).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    #[test]
    fn a_capture_streamed_from_disk_gives_what_it_gives_in_memory() {
        // Every capture the telemetry tests carry (NetFlow/IPFIX exports, DNS over UDP and
        // TCP, pcapng), scanned in memory, streamed from disk, gzipped, and gzipped inside a
        // zip (decompressed once per pass): the same records, rejects, counts and findings.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../telemetry/tests/data");
        let mut caps = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p
                    .extension()
                    .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "fstrm" || x == "dnstap")
                {
                    caps.push(p);
                }
            }
        }
        assert!(caps.len() >= 20, "{caps:?}");
        let dir = tempfile::tempdir().unwrap();
        for p in caps {
            let bytes = std::fs::read(&p).unwrap();
            let file = p.file_name().unwrap().to_str().unwrap();
            let gz = dir.path().join(format!("{file}.gz"));
            std::fs::write(&gz, gzip(&bytes)).unwrap();
            let zipped = dir.path().join(format!("{file}.zip"));
            std::fs::write(&zipped, zip(&[(&format!("logs/{file}.gz"), &gzip(&bytes))])).unwrap();
            let run = |from: Option<&std::path::Path>| {
                let mut s = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), true);
                let got: Vec<_> = match from {
                    None => vec![scan_file(&mut s, &p.display().to_string(), &bytes, None)],
                    Some(f) => scan_path(&mut s, f, &botwatch_feeds::input::Limits::default(), None, &|_| {}),
                }
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect();
                let counts = s.counts();
                let found = serde_json::to_string(&s.finish()).unwrap();
                let got: Vec<_> =
                    got.into_iter().map(|r| r.map(|f| (f.kinds, f.records, f.rejects))).collect();
                (got, (counts.flows, counts.dns, counts.hits), found)
            };
            let whole = run(None);
            for f in [&p, &gz, &zipped] {
                assert_eq!(run(Some(f)), whole, "{}", f.display());
            }
        }
    }

    #[test]
    fn a_compressed_capture_past_its_limits_fails_and_says_why() {
        // A pcap of 4,000 UDP datagrams (past the 64 KiB head, so a pass meets the limit).
        let mut pcap =
            vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
        for i in 0..4000u32 {
            let mut frame = vec![0u8; 12];
            frame
                .extend([0x08, 0x00, 0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 198, 51, 100, 1]);
            frame.extend([0x9c, 0x40, 0, 53, 0, 28, 0, 0]);
            frame.extend([0u8; 20]);
            pcap.extend((1_700_000_000 + i).to_le_bytes());
            pcap.extend(0u32.to_le_bytes());
            pcap.extend((frame.len() as u32).to_le_bytes());
            pcap.extend((frame.len() as u32).to_le_bytes());
            pcap.extend(frame);
        }
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("udp.pcap.gz");
        std::fs::write(&gz, gzip(&pcap)).unwrap();
        let scan = |limits: &botwatch_feeds::input::Limits| {
            let mut s = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), true);
            scan_path(&mut s, &gz, limits, None, &|_| {}).remove(0).map_err(|e| e.to_string())
        };
        let all = scan(&Default::default()).unwrap();
        // One flow; 4,000 datagrams to port 53 that are no DNS message, each kept as a reject.
        assert_eq!((all.records, all.rejects), (1, 4000), "{all:?}");
        let tight = botwatch_feeds::input::Limits { max_bytes: pcap.len() as u64 / 2, ..Default::default() };
        let e = scan(&tight).unwrap_err();
        assert!(e.contains("udp.pcap.gz") && e.contains("max_gib"), "{e}");
    }

    #[test]
    fn compressed_telemetry_is_read_as_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let name = |p: &std::path::Path| p.display().to_string();
        let plain = at("conn.log", b"#path\tconn\n");
        assert_eq!(inside(&plain).unwrap(), [(name(&plain), b"#path\tconn\n".to_vec())]);
        let gz = at("dns.04:00:00-05:00:00.log.gz", &gzip(b"#path\tdns\n"));
        let got = inside(&gz).unwrap();
        assert_eq!(got, [(name(&gz).strip_suffix(".gz").unwrap().to_string(), b"#path\tdns\n".to_vec())]);
        let zipped = at(
            "cap.zip",
            &zip(&[
                ("cap/conn.log", b"a"),
                ("__MACOSX/cap/._conn.log", b"fork"),
                ("cap/dns.log", b"b"),
                ("cap/dns.00:00:00-01:00:00.log.gz", &gzip(b"c")),
            ]),
        );
        let got = inside(&zipped).unwrap();
        let z = name(&zipped);
        assert_eq!(
            got,
            [
                (format!("{z}:cap/conn.log"), b"a".to_vec()),
                (format!("{z}:cap/dns.log"), b"b".to_vec()),
                (format!("{z}:cap/dns.00:00:00-01:00:00.log"), b"c".to_vec())
            ]
        );
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.add_directory("logs/", zip::write::SimpleFileOptions::default()).unwrap();
        let empty = at("empty.zip", &z.finish().unwrap().into_inner());
        assert!(inside(&empty).unwrap_err().to_string().contains("no file"));
    }

    #[test]
    fn only_formats_read_whole_are_capped_and_line_logs_stream_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let small = botwatch_feeds::input::Limits { max_document: 1 << 20, ..Default::default() };
        let scan = |name: &str, data: &[u8], digest: Option<&mut sha2::Sha256>| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            let mut s = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), true);
            scan_path(&mut s, &p, &small, digest, &|_| {})
        };
        // What no format's detection knows is said from the head, not read to the cap.
        let e = scan("x.gz", &gzip(&vec![b'x'; 2 << 20]), None).remove(0).unwrap_err();
        assert!(e.to_string().contains("not a recognised telemetry format"), "{e}");
        let got = scan("two.zip", &zip(&[("a", &[b'x'; 700 << 10]), ("b", &[b'x'; 700 << 10])]), None);
        assert_eq!(got.len(), 2);
        for r in got {
            assert!(r.unwrap_err().to_string().contains("not a recognised telemetry format"));
        }
        // The one format read whole, an nfcapd file inside a compressed one, stops at
        // `max_document_mib`.
        let mut nfcapd = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../telemetry/tests/data/flows/nfcapd/test7-malicious.nfcapd"),
        )
        .unwrap();
        nfcapd.resize(2 << 20, 0);
        let e = scan("nfcapd.gz", &gzip(&nfcapd), None).remove(0).unwrap_err();
        assert!(e.to_string().contains("nfcapd.gz expands past 1 MiB"), "{e}");
        // A conn.log of 4 MiB, gzipped, streams past the 1 MiB cap; the digest is the stored
        // file's, however it was read.
        let mut log = b"#separator \\x09\n#path\tconn\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n".to_vec();
        let mut n = 0;
        while log.len() < 4 << 20 {
            log.extend(
                format!(
                    "{}.5\t10.0.0.{}\t40000\t192.0.2.{}\t443\ttcp\n",
                    1_700_000_000 + n,
                    n % 200,
                    n % 250
                )
                .bytes(),
            );
            n += 1;
        }
        log.extend(b"1700000000.5\tnot an address\t1\t192.0.2.1\t443\ttcp\n");
        // A gzipped log inside a zip is held to `max_gib` and `max_ratio` as the zip is.
        let tight = botwatch_feeds::input::Limits { max_bytes: 2 << 20, max_document: 1 << 30, ..small };
        let p = dir.path().join("nested.zip");
        std::fs::write(&p, zip(&[("logs/conn.log.gz", &gzip(&log))])).unwrap();
        let mut s = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), true);
        let e = scan_path(&mut s, &p, &tight, None, &|_| {}).remove(0).unwrap_err().to_string();
        assert!(e.contains("nested.zip:logs/conn.log.gz") && e.contains("max_gib"), "{e}");
        for (name, data) in [("conn.log", log.clone()), ("conn.log.gz", gzip(&log))] {
            let mut digest = <sha2::Sha256 as sha2::Digest>::new();
            let got = scan(name, &data, Some(&mut digest)).remove(0).unwrap();
            assert_eq!((got.records, got.rejects), (n, 1), "{name}");
            assert_eq!(
                sha2::Digest::finalize(digest),
                <sha2::Sha256 as sha2::Digest>::digest(&data),
                "{name}"
            );
        }
    }

    #[test]
    fn a_sightings_delivery_stored_twice_counts_once_and_a_foreign_one_is_refused() {
        let mut store = botwatch_store::sqlite::SqliteStore::open_in_memory(Default::default()).unwrap();
        let flagged = |client: &str, reason: &str| Flagged {
            client: client.parse().unwrap(),
            reason: reason.into(),
            indicator: None,
            score: Some(0.97),
            count: 40,
            first_seen: Timestamp(1_700_000_000_000_000),
            last_seen: Timestamp(1_700_000_600_000_000),
            malware: None,
            detail: "40 NXDOMAIN answers".into(),
            client_port: None,
            peer: Some("xkqzvbnt.example".into()),
        };
        let doc = SightingsDelivery {
            format: SIGHTINGS_FORMAT.into(),
            report: "abc:detect".into(),
            name: "live sensor".into(),
            sensor: "detect".into(),
            flagged: vec![flagged("10.0.0.7", "nx_burst"), flagged("10.0.0.8", "dga")],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let first = store_sightings_delivery(&mut store, &path).unwrap();
        assert_eq!((first.reports[0].new, first.events()), (true, 2));
        // Delivered again (a worker died before its acknowledgement): nothing more.
        let again = store_sightings_delivery(&mut store, &path).unwrap();
        assert_eq!((again.reports[0].new, again.events()), (false, 0));
        // The same events the sensor would have stored directly.
        let direct = sightings(&doc.flagged, "detect");
        let stored = store.events(&botwatch_store::EventQuery::default()).unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].event.raw, direct[0].raw);
        for (bad, why) in [
            (
                serde_json::json!({"format": "botwatch-sightings/9", "report": "r", "name": "n", "sensor": "detect", "flagged": []}),
                "form",
            ),
            (
                serde_json::json!({"format": SIGHTINGS_FORMAT, "report": "r", "name": "n", "sensor": "evil", "flagged": []}),
                "sensor",
            ),
            (serde_json::json!({"rows": 3}), "not a sightings delivery"),
        ] {
            std::fs::write(&path, bad.to_string()).unwrap();
            let e = format!("{:#}", store_sightings_delivery(&mut store, &path).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn subjects_become_indicators_but_documentation_addresses_do_not() {
        let v = |s: &str| indicator_value(s);
        assert_eq!(v("185.220.101.1"), Some(IndicatorValue::Ip("185.220.101.1".parse().unwrap())));
        assert_eq!(v("45.9.148.0/24"), Some(IndicatorValue::Net("45.9.148.0/24".parse().unwrap())));
        assert_eq!(v("Evil.Example.COM."), Some(IndicatorValue::Domain("evil.example.com".into())));
        assert_eq!(
            v("http://user@bad.example.net:8080/x?y"),
            Some(IndicatorValue::Domain("bad.example.net".into()))
        );
        assert_eq!(v("https://[2a00:1450::1]/p"), Some(IndicatorValue::Ip("2a00:1450::1".parse().unwrap())));
        assert_eq!(v("http://45.9.148.7/x.exe"), Some(IndicatorValue::Ip("45.9.148.7".parse().unwrap())));
        for never in [
            "198.51.100.3",
            "192.0.2.0/24",
            "203.0.113.9",
            "2001:db8::1",
            "127.0.0.1",
            "AS64500",
            "localhost",
        ] {
            assert_eq!(v(never), None, "{never}");
        }
    }

    #[test]
    fn a_streamed_nfcapd_file_is_hashed_as_if_read_whole() {
        use botwatch_telemetry::flow::nfcapd::build;
        use sha2::Digest;
        // Data blocks, a gap the reader seeks over, the appendix, and bytes after it that
        // are never read: all of them are in the digest, in file order.
        let flow = build::v4_flow([10, 0, 0, 5], [185, 220, 101, 1], 40000, 443, 1_700_000_000_000);
        let mut file = build::header(0, 2, 1, 0);
        file.extend(build::block(1, &flow));
        file.extend(build::block(1, &flow));
        file.extend_from_slice(b"gap");
        let at = file.len() as u64;
        file[24..32].copy_from_slice(&at.to_le_bytes());
        file.extend(build::block(1, &[0x01, 0x80, 8, 0, b'x', 0, 0, 0]));
        file.extend_from_slice(b"trailer");
        let mut scanner = Scanner::new(Arc::new(Matcher::empty()), &SensorSection::default(), false);
        let mut hasher = sha2::Sha256::new();
        let cursor = std::io::Cursor::new(&file);
        let s = scan_nfcapd_reader(&mut scanner, "f", cursor, Some(&mut hasher)).unwrap();
        assert_eq!((s.kinds, s.records, s.rejects), (vec!["flows"], 2, 0));
        assert_eq!(hasher.finalize(), sha2::Sha256::digest(&file));
        // A file that is not read at all still is hashed whole.
        let mut hasher = sha2::Sha256::new();
        let e = scan_nfcapd_reader(&mut scanner, "f", std::io::Cursor::new(&file[..30]), Some(&mut hasher));
        assert!(e.unwrap_err().to_string().starts_with("f: nfdump file header truncated"));
        assert_eq!(hasher.finalize(), sha2::Sha256::digest(&file[..30]));
    }
}

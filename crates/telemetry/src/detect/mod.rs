//! Detection without indicators: infected subscribers found from their own DNS and flow
//! behaviour when no feed lists the C2.
//!
//! Public API:
//! - [`dga::DgaModel`]: `DgaModel::builtin()` (shipped model, `data/dga_model.json`),
//!   `score(&str) -> f64` in 0..1 over the registrable label and its suffix, `is_dga(&str)` (threshold chosen on
//!   validation data), `explain(&str)` (the analyst-facing reason). Trainer and evaluation
//!   splits in [`dga::train`].
//! - [`score_names`]: the CLI's `dga score`: names in, [`NameScore`] (serde) out.
//! - [`DnsDetector`]: `new(DnsDetectorConfig)`, `observe(&DnsRecord)`, `finish() -> Vec<Finding>`;
//!   per client, NXDOMAIN bursts to distinct names in a sliding window ([`FindingKind::NxBurst`])
//!   and many distinct DGA-looking names ([`FindingKind::Dga`]), each confidence raised by the
//!   other signal; and data moved through DNS ([`tunnel`], [`FindingKind::Tunnel`]).
//! - [`flows::FlowMemory`]: `new(FlowBounds)`, `observe(&FlowRecord)`: the flows the flow
//!   detectors read, kept once; then [`beacon::find`] (regular connections per client and
//!   destination ip:port, [`FindingKind::Beacon`]) and [`scan::find`] (many hosts or ports
//!   tried, mostly unanswered, [`FindingKind::Scan`]; DNS query storms,
//!   [`FindingKind::QueryBurst`]) and [`upload::find`] (bulk, one-sided upload to a port no
//!   common service uses, [`FindingKind::Upload`]) and [`spam::find`] (mail delivered
//!   straight to many Internet mail servers, [`FindingKind::Spam`]) and [`flood::find`]
//!   (denial-of-service traffic to one host, [`FindingKind::Flood`]) over it. [`beacon::BeaconDetector`] and
//!   [`scan::ScanDetector`] are each one detector on a memory of its own.
//!
//! ```
//! use botwatch_telemetry::detect::dga::DgaModel;
//! let m = DgaModel::builtin();
//! assert!(m.score("xtwscsoqwxobqdcuibtorby.ru") > m.score("wikipedia.org"));
//! ```
//!
//! Time comes only from the records, so replays and tests are deterministic.

pub mod beacon;
pub mod dga;
pub mod flood;
pub mod flows;
pub mod scan;
pub mod scope;
pub mod spam;
pub mod tunnel;
pub mod upload;

use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use dga::DgaModel;
use serde::{Deserialize, Serialize};
// foldhash: a resolver's every query probes these maps (SipHash was a twentieth of the
// detector's time).
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

/// What kind of behaviour a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Dga,
    NxBurst,
    /// Many NXDOMAIN answers over the whole observation to domains of one shape.
    NxFamily,
    Beacon,
    /// Many hosts or ports tried, mostly unanswered.
    Scan,
    /// A storm of DNS queries in flow telemetry.
    QueryBurst,
    /// Bulk upload to one Internet `ip:port` on a port no common service uses, little back.
    Upload,
    /// Mail delivered straight to many Internet mail servers by a host that receives none.
    Spam,
    /// Far more attempts or one-sided volume to one Internet host than a conversation makes.
    Flood,
    /// Data moved through DNS: many distinct encoded names under one domain of the client's own.
    Tunnel,
}

/// One suspicious client, with the evidence an analyst needs to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub client: IpAddr,
    pub kind: FindingKind,
    /// 0..1.
    pub confidence: f64,
    /// Human-readable reason, e.g. "152 NXDOMAIN to distinct names within 300 s; 140 look DGA".
    pub reason: String,
    /// Events behind the finding (names or connections).
    pub count: usize,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// A few names (DNS) or `ip:port` destinations (beacon), most telling first.
    pub samples: Vec<String>,
}

/// One scored name, as `botwatch dga score` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameScore {
    pub domain: String,
    pub score: f64,
    pub dga: bool,
}

/// Score names with the built-in model.
pub fn score_names<I, S>(names: I) -> Vec<NameScore>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let m = DgaModel::builtin();
    names
        .into_iter()
        .map(|n| {
            let domain = n.as_ref().trim().to_string();
            let score = m.score(&domain);
            NameScore { dga: score >= m.threshold(), score, domain }
        })
        .collect()
}

/// Thresholds of [`DnsDetector`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsDetectorConfig {
    /// Sliding window for NXDOMAIN counting, seconds.
    pub window_secs: i64,
    /// NXDOMAIN responses to this many distinct names inside one window flag the client.
    pub nx_threshold: usize,
    /// This many distinct DGA-scored names (any rcode) flag the client.
    pub dga_threshold: usize,
    /// NXDOMAIN answers for this many distinct domains of one shape (suffix, length, digits
    /// or not) over the whole observation flag the client, however slowly they came.
    pub nx_family_threshold: usize,
    /// Names kept per finding.
    pub samples: usize,
    /// Memory bound: distinct names remembered per client.
    pub max_names_per_client: usize,
    /// Names whose DGA score is kept for every client to reuse (most queries are for names
    /// many clients ask); the cache starts over when full, and 0 turns it off.
    pub max_cached_scores: usize,
    /// `[sensor.dns.tunnel]`: data moved through DNS.
    pub tunnel: tunnel::TunnelConfig,
}

impl Default for DnsDetectorConfig {
    fn default() -> Self {
        DnsDetectorConfig {
            window_secs: 300,
            nx_threshold: 25,
            dga_threshold: 10,
            nx_family_threshold: 20,
            samples: 10,
            max_names_per_client: 10_000,
            max_cached_scores: 1 << 18,
            tunnel: tunnel::TunnelConfig::default(),
        }
    }
}

#[derive(Debug, Default)]
struct ClientState {
    /// NXDOMAIN events inside the window, oldest first.
    nx_window: VecDeque<(Timestamp, String)>,
    /// Registrable domain → occurrences in `nx_window`; its length is the distinct count.
    nx_names: HashMap<String, usize>,
    /// NXDOMAIN registrable domains by shape (bounded).
    nx_shapes: HashMap<Shape, BTreeSet<String>>,
    nx_shape_count: usize,
    nx_peak: usize,
    nx_peak_start: Option<Timestamp>,
    nx_peak_end: Option<Timestamp>,
    /// Every distinct NXDOMAIN name with its DGA score (bounded).
    nx_scored: BTreeMap<String, f64>,
    /// Distinct names the model calls DGA, any rcode (bounded).
    dga_names: BTreeMap<String, f64>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    dga_first: Option<Timestamp>,
    dga_last: Option<Timestamp>,
    nx_first: Option<Timestamp>,
    nx_last: Option<Timestamp>,
}

/// Per-client DNS behaviour: NXDOMAIN bursts and DGA-looking names.
#[derive(Debug)]
pub struct DnsDetector {
    cfg: DnsDetectorConfig,
    model: &'static DgaModel,
    clients: HashMap<IpAddr, ClientState>,
    /// Name → DGA score, the length of its registrable domain plus one (0: none), and whether
    /// its label is one a platform assigned ([`dga::assigned_label_zone`]); shared by the
    /// clients (bounded by `max_cached_scores`): a name asked again needs no walk of the public
    /// suffix list.
    scores: HashMap<String, (f64, u32, bool)>,
    scope: scope::Scope,
    tunnel: tunnel::TunnelTracker,
}

impl DnsDetector {
    pub fn new(cfg: DnsDetectorConfig) -> Self {
        DnsDetector {
            tunnel: tunnel::TunnelTracker::new(cfg.tunnel.clone()),
            cfg,
            model: DgaModel::builtin(),
            clients: HashMap::new(),
            scores: HashMap::new(),
            scope: scope::Scope::default(),
        }
    }

    /// Only clients inside a configured network are looked at (with none configured, every
    /// client a resolver answers is one of its own).
    pub fn with_scope(mut self, scope: scope::Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Feed one record; records should come roughly in time order (the window only slides
    /// forward).
    pub fn observe(&mut self, r: &DnsRecord) {
        // Multicast name resolution (mDNS, LLMNR, NetBIOS) asks the link, not a resolver,
        // and a client that is no host or outside the network is no subscriber.
        if scope::not_unicast(r.client)
            || r.server.is_some_and(scope::not_unicast)
            || (self.scope.configured() && !self.scope.is_internal(r.client))
        {
            return;
        }
        let name = r.qname.trim().trim_end_matches('.').to_ascii_lowercase();
        // No DGA can register a single label or a private network's name, and clean hosts ask
        // them all day: a browser's random intranet probes, bare or with the search suffix
        // appended, a printer's name. They count for no finding.
        if name.is_empty() || dga::private_network_name(&name) {
            return;
        }
        let cfg = &self.cfg;
        let st = self.clients.entry(r.client).or_default();
        st.first = Some(st.first.map_or(r.time, |f| f.min(r.time)));
        st.last = Some(st.last.map_or(r.time, |l| l.max(r.time)));
        let nx = r.rcode.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("NXDOMAIN"));
        // A name scored for the first time gives its registrable domain with the score: the
        // one walk of the public suffix list serves both, and the cache keeps both.
        let (score, reg_len, assigned) = match self.scores.get(&name) {
            Some(&cached) => cached,
            None => {
                let f = self.model.features(&name);
                let s = self.model.score_features(&f);
                // Kept as a length, so only where it is the name's own ending.
                let reg_len = registrable(&name, Some(&f))
                    .filter(|d| name.ends_with(d.as_str()))
                    .map_or(0, |d| d.len() as u32 + 1);
                let assigned = dga::assigned_label_zone(&f.suffix);
                if self.scores.len() >= cfg.max_cached_scores {
                    self.scores.clear();
                }
                if cfg.max_cached_scores > 0 {
                    self.scores.insert(name.clone(), (s, reg_len, assigned));
                }
                (s, reg_len, assigned)
            }
        };
        let reg: Option<&str> = (reg_len as usize)
            .checked_sub(1)
            .and_then(|n| name.get(name.len().checked_sub(n)?..))
            .filter(|d| !d.is_empty());
        // A tunnel's names are answered (its server makes them up as they come); names that
        // do not exist are the NXDOMAIN counts' (a search suffix appended, a DGA).
        if !nx
            && let Some(d) = reg
            && self.tunnel.worth_a_look(&name)
        {
            self.tunnel.observe(r, &name, d);
        }
        // A label a cloud or CDN platform assigned (`d3c33hcgiwev3.cloudfront.net`) looks as
        // random as a DGA's and is met dozens of times a day in browsing; no DGA can pick it,
        // so it counts for no DGA finding (it still counts towards NXDOMAIN bursts).
        if !assigned && score >= self.model.threshold() && st.dga_names.len() < cfg.max_names_per_client {
            st.dga_names.insert(name.clone(), score);
            st.dga_first = Some(st.dga_first.map_or(r.time, |f| f.min(r.time)));
            st.dga_last = Some(st.dga_last.map_or(r.time, |l| l.max(r.time)));
        }
        if nx {
            // Bursts and families count registrable domains: a reputation service's
            // reversed addresses or a search suffix appended to names are one domain, a
            // DGA's names many.
            // (A name with no registrable domain in the cache is looked up again: rare, and
            // one whose normalised form differs from the scored one keeps its count.)
            let Some(reg) = reg.map(str::to_string).or_else(|| registrable(&name, None)) else { return };
            if !assigned && st.nx_scored.len() < cfg.max_names_per_client {
                st.nx_scored.insert(name.clone(), score);
            }
            if !assigned
                && st.nx_shape_count < cfg.max_names_per_client
                && st.nx_shapes.entry(shape(&reg)).or_default().insert(reg.clone())
            {
                st.nx_shape_count += 1;
            }
            st.nx_first = Some(st.nx_first.map_or(r.time, |f| f.min(r.time)));
            st.nx_last = Some(st.nx_last.map_or(r.time, |l| l.max(r.time)));
            let name = reg;
            let horizon = Timestamp(r.time.0.saturating_sub(cfg.window_secs.saturating_mul(1_000_000)));
            while st.nx_window.front().is_some_and(|(t, _)| *t < horizon) {
                if let Some((_, old)) = st.nx_window.pop_front()
                    && let Some(c) = st.nx_names.get_mut(&old)
                {
                    *c -= 1;
                    if *c == 0 {
                        st.nx_names.remove(&old);
                    }
                }
            }
            if st.nx_window.len() < cfg.max_names_per_client {
                *st.nx_names.entry(name.clone()).or_insert(0) += 1;
                st.nx_window.push_back((r.time, name));
            }
            if st.nx_names.len() > st.nx_peak {
                st.nx_peak = st.nx_names.len();
                st.nx_peak_start = st.nx_window.front().map(|(t, _)| *t);
                st.nx_peak_end = Some(r.time);
            }
        }
    }

    /// Findings for every flagged client, highest confidence first.
    pub fn finish(self) -> Vec<Finding> {
        self.finish_counted().0
    }

    /// [`DnsDetector::finish`], and what the tunnel search set aside.
    pub fn finish_counted(self) -> (Vec<Finding>, tunnel::TunnelCounts) {
        let (mut out, counts) = self.tunnel.finish();
        let threshold = self.model.threshold();
        for (client, st) in self.clients {
            let nx_dga = st.nx_scored.values().filter(|s| **s >= threshold).count();
            let nx_mean = mean(st.nx_scored.values().copied());
            if st.nx_peak >= self.cfg.nx_threshold {
                // Burst strength saturates at 4x the threshold; the DGA look of the names
                // (mean score) then moves confidence between that and 1.
                let burst =
                    (0.5 + 0.5 * ((st.nx_peak as f64 / self.cfg.nx_threshold as f64) - 1.0) / 3.0).min(1.0);
                let confidence = 1.0 - (1.0 - burst * 0.8) * (1.0 - nx_mean * 0.8);
                out.push(Finding {
                    client,
                    kind: FindingKind::NxBurst,
                    confidence,
                    reason: format!(
                        "{} NXDOMAIN responses to distinct names within {} s (threshold {}); \
                         {} of {} NXDOMAIN names look DGA (mean score {:.2})",
                        st.nx_peak,
                        self.cfg.window_secs,
                        self.cfg.nx_threshold,
                        nx_dga,
                        st.nx_scored.len(),
                        nx_mean
                    ),
                    count: st.nx_peak,
                    first_seen: st.nx_peak_start.or(st.first).unwrap_or(Timestamp(0)),
                    last_seen: st.nx_peak_end.or(st.last).unwrap_or(Timestamp(0)),
                    samples: top_names(&st.nx_scored, self.cfg.samples),
                });
            }
            let family =
                st.nx_shapes.iter().max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)));
            if let Some((sh, domains)) = family
                && domains.len() >= self.cfg.nx_family_threshold
                && st.nx_peak < self.cfg.nx_threshold
            {
                let n = domains.len();
                let fam_scores: Vec<f64> = st
                    .nx_scored
                    .iter()
                    .filter(|(k, _)| registrable(k, None).is_some_and(|r| domains.contains(&r)))
                    .map(|(_, v)| *v)
                    .collect();
                let look = mean(fam_scores.iter().copied());
                let volume =
                    (0.5 + 0.5 * ((n as f64 / self.cfg.nx_family_threshold as f64) - 1.0) / 3.0).min(1.0);
                let confidence = 1.0 - (1.0 - volume * 0.75) * (1.0 - look * 0.8);
                let span = match (st.nx_first, st.nx_last) {
                    (Some(a), Some(b)) => (b.0 - a.0) as f64 / 1e6,
                    _ => 0.0,
                };
                out.push(Finding {
                    client,
                    kind: FindingKind::NxFamily,
                    confidence,
                    reason: format!(
                        "NXDOMAIN for {n} distinct .{} domains of {}–{} letters{} over {:.0} s (threshold {}); \
                         mean DGA score {:.2}",
                        sh.0,
                        sh.1 * 3,
                        sh.1 * 3 + 2,
                        if sh.2 { " with digits" } else { "" },
                        span,
                        self.cfg.nx_family_threshold,
                        look
                    ),
                    count: n,
                    first_seen: st.nx_first.or(st.first).unwrap_or(Timestamp(0)),
                    last_seen: st.nx_last.or(st.last).unwrap_or(Timestamp(0)),
                    samples: domains.iter().take(self.cfg.samples).cloned().collect(),
                });
            }
            if st.dga_names.len() >= self.cfg.dga_threshold {
                let n = st.dga_names.len();
                let volume = (n as f64 / (4.0 * self.cfg.dga_threshold as f64)).min(1.0);
                let nx_share = if n > 0 {
                    st.dga_names.keys().filter(|k| st.nx_scored.contains_key(*k)).count() as f64 / n as f64
                } else {
                    0.0
                };
                let base = mean(st.dga_names.values().copied()) * (0.6 + 0.3 * volume);
                let confidence = 1.0 - (1.0 - base) * (1.0 - 0.5 * nx_share);
                out.push(Finding {
                    client,
                    kind: FindingKind::Dga,
                    confidence,
                    reason: format!(
                        "{n} distinct DGA-looking names (threshold {}), {:.0} % of them NXDOMAIN; e.g. {}",
                        self.cfg.dga_threshold,
                        nx_share * 100.0,
                        top_names(&st.dga_names, 1).first().map_or(String::new(), |s| self.model.explain(s))
                    ),
                    count: n,
                    first_seen: st.dga_first.unwrap_or(Timestamp(0)),
                    last_seen: st.dga_last.unwrap_or(Timestamp(0)),
                    samples: top_names(&st.dga_names, self.cfg.samples),
                });
            } else if self.model.client_is_dga(nx_mean, st.nx_scored.len()) {
                // Names each too ambiguous to flag (wordlist and pronounceable DGAs), whose
                // mean score no benign client's NXDOMAIN names reach.
                let n = st.nx_scored.len();
                let cn = self.model.file().client_names.max(1);
                let volume = (n as f64 / (4.0 * cn as f64)).min(1.0);
                out.push(Finding {
                    client,
                    kind: FindingKind::Dga,
                    confidence: nx_mean * (0.6 + 0.3 * volume),
                    reason: format!(
                        "{n} distinct NXDOMAIN names with mean DGA score {nx_mean:.2} (a client's threshold {:.2} \
                         over at least {cn} names), {nx_dga} of them DGA-looking alone",
                        self.model.file().client_threshold
                    ),
                    count: n,
                    first_seen: st.nx_first.or(st.first).unwrap_or(Timestamp(0)),
                    last_seen: st.nx_last.or(st.last).unwrap_or(Timestamp(0)),
                    samples: top_names(&st.nx_scored, self.cfg.samples),
                });
            }
        }
        rank(&mut out);
        (out, counts)
    }
}

/// The registrable domain (public suffix and one label; under a dynamic-DNS zone, the
/// user's name) of a name [`DnsDetector::observe`] kept (single labels and private networks'
/// names, `.arpa` among them, it sets aside first). Taken from `scored`, the name's features
/// when it was just scored, rather than found again.
fn registrable(name: &str, scored: Option<&dga::Features>) -> Option<String> {
    scored.and_then(dga::Features::registrable_domain).or_else(|| dga::registrable_domain(name))
}

/// What a generator's domains share: the suffix, the registrable label's length (in
/// steps of three) and whether it has digits.
type Shape = (String, usize, bool);

fn shape(reg: &str) -> Shape {
    let (label, suffix) = reg.split_once('.').unwrap_or((reg, ""));
    (suffix.to_string(), label.len() / 3, label.bytes().any(|c| c.is_ascii_digit()))
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

fn top_names(m: &BTreeMap<String, f64>, k: usize) -> Vec<String> {
    let mut v: Vec<(&String, &f64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(k).map(|(n, _)| n.clone()).collect()
}

/// A protocol number as findings name it.
pub(crate) fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 | 58 => "icmp".into(),
        p => format!("proto {p}"),
    }
}

/// Findings in the order every detector reports them: highest confidence first, then by
/// client and samples, so equal findings come out the same on every run.
pub(crate) fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.confidence.total_cmp(&a.confidence).then(a.client.cmp(&b.client)).then(a.samples.cmp(&b.samples))
    });
}

/// The most distinct keys any `window` (µs) of `items`, in time order, holds (two pointers
/// over time), when `bar` distinct keys were first reached (that window's start) and the last
/// item of a window at the bar: a sweep's evidence, not its group's first and last item (a
/// gateway pinged all day). `to` is the first item's time while the bar was never reached.
pub(crate) fn widest_window<T, K: std::hash::Hash + Eq>(
    items: &[T],
    time: impl Fn(&T) -> i64,
    key: impl Fn(&T) -> K,
    window: i64,
    bar: usize,
) -> (usize, Option<i64>, i64) {
    let Some(first) = items.first() else { return (0, None, 0) };
    let mut counts: HashMap<K, usize> = HashMap::new();
    let (mut lo, mut widest) = (0usize, 0usize);
    let (mut from, mut to) = (None, time(first));
    for hi in 0..items.len() {
        *counts.entry(key(&items[hi])).or_default() += 1;
        while time(&items[hi]).saturating_sub(time(&items[lo])) > window {
            let k = key(&items[lo]);
            if let Some(n) = counts.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&k);
                }
            }
            lo += 1;
        }
        widest = widest.max(counts.len());
        if counts.len() >= bar {
            from.get_or_insert(time(&items[lo]));
            to = time(&items[hi]);
        }
    }
    (widest, from, to)
}

/// The bar at which a destination is the network's, not one client's: reached by
/// `popular_clients` of the network's clients or by `popular_share` of them, whichever is more,
/// and only in a network of at least `popular_clients` (in a one-host capture nothing is
/// popular, or the infected host's C2 would be). Beacon and upload count reach their own way
/// (per series, per large upload) and share this rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Popularity {
    clients: usize,
    min_clients: usize,
    at: usize,
}

impl Popularity {
    pub(crate) fn new(popular_clients: usize, popular_share: f64, clients: usize) -> Self {
        let at = (popular_clients as f64).max(popular_share * clients as f64).ceil() as usize;
        Popularity { clients, min_clients: popular_clients, at }
    }

    /// Whether a destination `reached` by that many clients is popular.
    pub(crate) fn popular(&self, reached: usize) -> bool {
        self.clients >= self.min_clients && reached >= self.at
    }

    /// Whether counting reach is worth it: in a network too small nothing is popular.
    pub(crate) fn possible(&self) -> bool {
        self.clients >= self.min_clients
    }
}

/// What the flow detectors' tests share: a flow from its few telling fields, and a memory of
/// flows.
#[cfg(test)]
pub(crate) mod testing {
    use super::flows::{FlowBounds, FlowMemory};
    use crate::record::FlowRecord;
    use botwatch_model::Timestamp;

    #[allow(clippy::too_many_arguments)]
    pub fn flow(
        t: f64,
        src: &str,
        dst: &str,
        proto: u8,
        sport: u16,
        port: u16,
        bytes: u64,
        back: Option<u64>,
        answered: Option<bool>,
    ) -> FlowRecord {
        FlowRecord {
            start: Timestamp((t * 1e6) as i64),
            end: Timestamp((t * 1e6) as i64),
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: port,
            proto,
            packets: 10,
            bytes,
            resp_bytes: back,
            exporter: None,
            answered,
            local_orig: None,
            local_resp: None,
        }
    }

    pub fn memory(flows: &[FlowRecord]) -> FlowMemory {
        let mut m = FlowMemory::new(FlowBounds::default());
        for f in flows {
            m.observe(f);
        }
        m
    }

    /// The network the tests' clients are in.
    pub fn scope() -> super::scope::Scope {
        super::scope::Scope::new(vec!["10.0.0.0/8".parse().unwrap()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: i64, client: &str, name: &str, rcode: &str) -> DnsRecord {
        DnsRecord {
            time: Timestamp::from_secs(t),
            client: client.parse().unwrap(),
            client_port: None,
            qname: name.to_string(),
            qtype: "A".into(),
            rcode: Some(rcode.to_string().into()),
            answers: vec![],
            server: None,
        }
    }

    #[test]
    fn popularity_is_the_larger_bar_and_needs_a_network() {
        // Two clients: too few for anything to be popular, even what both reach.
        assert!(!Popularity::new(3, 0.1, 2).popular(2));
        // Ten clients: three of them.
        let p = Popularity::new(3, 0.1, 10);
        assert!(p.possible() && p.popular(3) && !p.popular(2));
        // A thousand: a tenth of them, not three.
        let p = Popularity::new(3, 0.1, 1000);
        assert!(!p.popular(99) && p.popular(100));
    }

    /// Chromium's intranet-redirect probe: three random single labels of 7–15 letters at every
    /// start and address change, asked bare and with the stub's search suffix appended, all
    /// NXDOMAIN. A day of a laptop's browser starts is no DGA; the same random labels under
    /// `.com` are.
    #[test]
    fn a_browsers_random_intranet_probes_are_no_dga() {
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut label = || {
            let len = 7 + (next() % 9) as usize;
            (0..len).map(|_| (b'a' + (next() % 26) as u8) as char).collect::<String>()
        };
        let probes: Vec<String> = (0..60).map(|_| label()).collect();
        for (i, p) in probes.iter().enumerate() {
            let t = i as i64 * 600;
            d.observe(&rec(t, "10.0.0.1", p, "NXDOMAIN"));
            for suffix in ["lan", "home", "localdomain", "internal"] {
                d.observe(&rec(t, "10.0.0.1", &format!("{p}.{suffix}"), "NXDOMAIN"));
            }
            d.observe(&rec(t, "10.0.0.2", &format!("{p}.com"), "NXDOMAIN"));
        }
        let f = d.finish();
        let flagged: BTreeSet<String> = f.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, BTreeSet::from(["10.0.0.2".to_string()]), "{f:?}");
        assert!(private_network_names_are_told());
    }

    /// A day's browsing meets many cloud and CDN platforms' assigned labels, answered; a DGA's
    /// names under a dynamic-DNS zone or a zone whose users choose the label (`hk.org`, both in
    /// the public suffix list's private section too) still count.
    #[test]
    fn a_platforms_assigned_labels_are_no_dga_and_chosen_ones_still_are() {
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        let platforms = [
            "cloudfront.net",
            "azureedge.net",
            "blob.core.windows.net",
            "execute-api.us-east-1.amazonaws.com",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut label = || {
            (0..13)
                .map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789"[(next() % 36) as usize] as char)
                .collect::<String>()
        };
        let m = DgaModel::builtin();
        for i in 0..40 {
            let name = format!("d{}.{}", label(), platforms[i % platforms.len()]);
            // Each looks DGA alone: without the rule, ten of them would be a finding.
            assert!(m.is_dga(&name), "{name}: {}", m.explain(&name));
            d.observe(&rec(i as i64 * 60, "10.0.0.1", &name, "NOERROR"));
            d.observe(&rec(i as i64 * 60, "10.0.0.4", &name, "NXDOMAIN"));
        }
        for (client, zone) in
            [("10.0.0.2", "duckdns.org"), ("10.0.0.3", "hk.org"), ("10.0.0.5", "dyn.addr.tools")]
        {
            for i in 0..12 {
                d.observe(&rec(i * 60, client, &format!("{}.{zone}", label()), "NXDOMAIN"));
            }
        }
        let f = d.finish();
        let flagged: BTreeSet<String> =
            f.iter().filter(|f| f.kind == FindingKind::Dga).map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, BTreeSet::from(["10.0.0.2", "10.0.0.3", "10.0.0.5"].map(String::from)), "{f:?}");
        // The user's label under a zone of several labels, and not binned as a platform's.
        let f = m.features("x7kq2m.dyn.addr.tools");
        assert_eq!((f.label.as_str(), f.suffix.as_str()), ("x7kq2m", "dyn.addr.tools"));
        assert_ne!(f.suffix_rarity, 7);
        assert!(dga::assigned_label_zone("execute-api.eu-west-1.amazonaws.com"));
        assert!(dga::assigned_label_zone("us-east-1.elb.amazonaws.com"));
        assert!(!dga::assigned_label_zone("github.io") && !dga::assigned_label_zone("s3.amazonaws.com"));
        assert!(!dga::assigned_label_zone("notcloudfront.net"));
    }

    /// A fixed pseudo-random sequence, so generated names are the same on every run.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn private_network_names_are_told() -> bool {
        ["rociwefoie", "rociwefoie.lan", "printer.home", "nas.home.arpa", "x.corp"]
            .iter()
            .all(|n| dga::private_network_name(n))
            && !["rociwefoie.com", "example.co.uk", "x.bazar", "lan.com"]
                .iter()
                .any(|n| dga::private_network_name(n))
    }

    #[test]
    fn a_client_whose_nxdomain_names_are_each_ambiguous_is_found_by_their_mean() {
        // Word-pair names like a wordlist DGA's: none scores DGA alone, spread over an hour so
        // no burst, of varied shape so no family.
        let words = [
            "windowseasonfriend.com",
            "motherbreadrain.net",
            "silvertableriver.org",
            "quietgardenpaper.com",
            "brightcornerstone.net",
            "wintermarketfloor.com",
            "summerhousegreen.org",
            "colorsoundpaper.com",
            "heavytrainmountain.net",
            "simpleboatlight.com",
            "stonebridgeweather.com",
            "fishwindowriver.org",
        ];
        let m = DgaModel::builtin();
        assert!(words.iter().all(|w| !m.is_dga(w)), "a name flags alone: pick another");
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        for (i, w) in words.iter().enumerate() {
            d.observe(&rec(i as i64 * 300, "10.0.0.7", w, "NXDOMAIN"));
        }
        // A client mistyping popular names: NXDOMAIN as often, nothing DGA about them.
        let typos = [
            "gooogle.com",
            "facebok.com",
            "amazom.com",
            "wikipedya.org",
            "youtub.com",
            "twiter.com",
            "linkdin.com",
            "netflx.com",
            "instagam.com",
            "redit.com",
            "microsfot.com",
            "yahooo.com",
        ];
        for (i, w) in typos.iter().enumerate() {
            d.observe(&rec(i as i64 * 300, "10.0.0.8", w, "NXDOMAIN"));
        }
        let f = d.finish();
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].client.to_string().as_str(), f[0].kind), ("10.0.0.7", FindingKind::Dga));
        assert!(f[0].reason.contains("12 distinct NXDOMAIN names with mean DGA score"), "{}", f[0].reason);
    }

    #[test]
    fn the_shared_score_cache_changes_no_finding_and_stays_bounded() {
        // Findings that rest on names another client asked first (cache hits): two clients
        // running one DGA, two with NXDOMAIN bursts under a dynamic-DNS zone, reverse
        // look-ups and a malformed name beside them. Whatever the cache holds (nothing,
        // three names, all), the findings are the same.
        let run = |max_cached_scores: usize| {
            let mut d = DnsDetector::new(DnsDetectorConfig { max_cached_scores, ..Default::default() });
            for i in 0..60i64 {
                let dga = format!("{}xq{}zvkw{}tjpl.info", (b'a' + (i % 26) as u8) as char, i * 7, i % 13);
                let ddns = format!("{}k{}vq{}.mooo.com", (b'b' + (i % 20) as u8) as char, i % 7, i);
                for client in ["10.0.0.9", "10.0.0.10"] {
                    d.observe(&rec(i, client, &dga, "NXDOMAIN"));
                }
                for client in ["10.0.0.11", "10.0.0.12"] {
                    d.observe(&rec(i, client, &ddns, "NXDOMAIN"));
                    d.observe(&rec(i, client, &format!("{i}.2.0.192.in-addr.arpa"), "NXDOMAIN"));
                    d.observe(&rec(i, client, "x..com", "NXDOMAIN"));
                }
                let client = format!("10.0.0.{}", i % 5);
                d.observe(&rec(
                    i,
                    &client,
                    ["example.com", "www.bbc.co.uk", "github.com"][i as usize % 3],
                    "NOERROR",
                ));
            }
            assert!(d.scores.len() <= max_cached_scores.max(1), "{} cached", d.scores.len());
            d.finish()
        };
        let all = run(1 << 18);
        for client in ["10.0.0.10", "10.0.0.12"] {
            assert!(all.iter().any(|f| f.client.to_string() == client), "{client}: {all:#?}");
        }
        // The first asker's domains come from the scoring's split, the second's from the
        // cache hit's own look-up: 60 users' domains under the zone each, the reverse
        // look-ups none, the malformed name the suffix list's answer (one more).
        for client in ["10.0.0.11", "10.0.0.12"] {
            let burst = all.iter().find(|f| f.client.to_string() == client && f.kind == FindingKind::NxBurst);
            assert!(burst.is_some_and(|b| b.count == 61), "{client}: {all:#?}");
        }
        for bound in [0, 3] {
            let f = run(bound);
            assert_eq!(format!("{f:?}"), format!("{all:?}"), "max_cached_scores {bound}");
        }
    }

    #[test]
    fn nx_window_slides_and_counts_distinct_names() {
        let cfg = DnsDetectorConfig { window_secs: 60, nx_threshold: 10, ..Default::default() };
        let mut d = DnsDetector::new(cfg);
        // 9 distinct names every 10 s never reach 10 in 60 s: the window holds at most 7.
        for i in 0..40 {
            d.observe(&rec(i * 10, "10.0.0.1", &format!("name{}.example", i % 9), "NXDOMAIN"));
        }
        // The same name repeated is one name.
        for i in 0..100 {
            d.observe(&rec(i, "10.0.0.2", "printer.local.example", "NXDOMAIN"));
        }
        // 30 distinct names in 30 s: a burst.
        for i in 0..30 {
            d.observe(&rec(1000 + i, "10.0.0.3", &format!("qx{i}zkvbwpt.com"), "NXDOMAIN"));
        }
        let f = d.finish();
        assert_eq!(f.iter().filter(|f| f.kind == FindingKind::NxBurst).count(), 1, "{f:?}");
        let burst = f.iter().find(|f| f.kind == FindingKind::NxBurst).unwrap();
        assert_eq!(burst.client.to_string(), "10.0.0.3");
        assert_eq!(burst.count, 30);
        assert_eq!(burst.first_seen, Timestamp::from_secs(1000));
        assert!(burst.confidence > 0.4 && burst.confidence <= 1.0);
    }

    #[test]
    fn confidence_rises_with_dga_look() {
        let cfg = DnsDetectorConfig { nx_threshold: 10, ..Default::default() };
        let mut d = DnsDetector::new(cfg);
        let words =
            ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
        for (i, w) in words.iter().enumerate() {
            d.observe(&rec(i as i64, "10.0.0.1", &format!("{w}.intranet.example.com"), "NXDOMAIN"));
            d.observe(&rec(i as i64, "10.0.0.1", &format!("mail{w}shop.com"), "NXDOMAIN"));
        }
        for i in 0..20 {
            let n = format!("{}xq{}zvkw{}tj.ru", (b'a' + i as u8) as char, i * 7, (b'z' - i as u8) as char);
            d.observe(&rec(i, "10.0.0.2", &n, "NXDOMAIN"));
        }
        let f = d.finish();
        let c = |ip: &str| {
            f.iter()
                .find(|f| f.kind == FindingKind::NxBurst && f.client.to_string() == ip)
                .map(|f| f.confidence)
                .unwrap()
        };
        assert!(c("10.0.0.2") > c("10.0.0.1"), "{f:#?}");
    }

    #[test]
    fn a_slow_generator_is_a_family_and_reputation_lookups_are_no_burst() {
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        // 40 pronounceable .com names, one NXDOMAIN every five minutes: never a burst.
        let syl = ["ka", "ro", "mi", "te", "su", "no", "ba", "le"];
        for i in 0..40usize {
            let n: String = (0..4).map(|k| syl[(i >> (k * 2)) % 8]).collect::<String>() + syl[i % 7];
            d.observe(&rec(i as i64 * 300, "10.0.0.7", &format!("{n}.com"), "NXDOMAIN"));
        }
        // Hundreds of reversed addresses under one reputation zone and names under one
        // search suffix, within a minute: two domains, no burst.
        for i in 0..200 {
            d.observe(&rec(
                i / 4,
                "10.0.0.8",
                &format!("{}.{}.1.10.zen.spamhaus.org", i % 250, i / 7),
                "NXDOMAIN",
            ));
            d.observe(&rec(i / 4, "10.0.0.8", &format!("host{i}.corp.example"), "NXDOMAIN"));
        }
        let f = d.finish();
        let flagged: Vec<(String, FindingKind)> = f.iter().map(|f| (f.client.to_string(), f.kind)).collect();
        assert_eq!(flagged, [("10.0.0.7".to_string(), FindingKind::NxFamily)], "{f:#?}");
        assert!(f[0].reason.contains("40 distinct .com domains"), "{}", f[0].reason);
    }

    #[test]
    fn names_under_a_dynamic_dns_zone_are_their_users_domains() {
        let mut d = DnsDetector::new(DnsDetectorConfig::default());
        // A DGA that registers its names with a dynamic-DNS provider (Kraken under FreeDNS's
        // mooo.com, outside the public suffix list): 30 distinct names in 30 s are a burst.
        for i in 0..30u8 {
            let label: String = (0..8u32)
                .map(|k| char::from(b'a' + ((u32::from(i) * 7 + k * k * 11) % 26) as u8))
                .chain([char::from(b'a' + i % 26), char::from(b'a' + i / 26)])
                .collect();
            d.observe(&rec(i64::from(i), "10.0.0.3", &format!("{label}.mooo.com"), "NXDOMAIN"));
        }
        // One user's name there, its hosts looked up: one domain, no burst.
        for i in 0..60 {
            d.observe(&rec(i / 2, "10.0.0.4", &format!("cam{i}.myhome.mooo.com"), "NXDOMAIN"));
        }
        let f = d.finish();
        let flagged: BTreeSet<String> = f.iter().map(|f| f.client.to_string()).collect();
        assert_eq!(flagged, BTreeSet::from(["10.0.0.3".to_string()]), "{f:#?}");
        let burst = f.iter().find(|f| f.kind == FindingKind::NxBurst).expect("a burst");
        assert_eq!(burst.count, 30);
    }

    #[test]
    fn score_names_serialises() {
        let v = score_names(["wikipedia.org", "xtwscsoqwxobqdcuibtorby.ru"]);
        assert!(!v[0].dga && v[1].dga, "{v:?}");
        let j = serde_json::to_string(&v).unwrap();
        assert!(j.contains("\"domain\":\"wikipedia.org\""), "{j}");
    }
}

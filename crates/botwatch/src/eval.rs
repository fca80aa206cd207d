//! `botwatch eval flows`: the sensors' detectors on labelled captures, scored per client.
//!
//! A capture is one file, or a folder's Zeek logs (its `conn.log` and `dns.log` are one
//! network at one time). Its ground truth comes from its own per-flow labels (Stratosphere's
//! Zeek `label`, Argus `Label`): the infected clients are the internal originators of flows
//! labelled malicious. Where a capture has no labels, or its labels leave hosts open, the
//! truth file (`eval_truth.toml`, built in; `--truth` adds entries) says what the dataset's
//! documentation says. The detectors run as `scan` runs them, with no indicators, and each
//! flagged client is one of: an infected client found, a benign internal host wrongly
//! flagged, an Internet host wrongly flagged as a client, or a host left open (by the truth
//! file, or in a labelled capture an internal host no line labels benign or malicious:
//! `Background` is the labeller's "not known").

use crate::sensor::{self, Flagged, HostSeen, Scanner, SensorSection};
use anyhow::{Context, Result};
use botwatch_feeds::input::Limits;
use botwatch_model::Timestamp;
use botwatch_telemetry::detect::scope::{never_a_host, private};
use botwatch_telemetry::lines::LineSource;
use botwatch_telemetry::matcher::Matcher;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One capture's truth where its labels do not give it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The end of the capture's path: a file, or the folder of its Zeek logs.
    pub path: String,
    #[serde(default)]
    pub infected: Vec<IpAddr>,
    #[serde(default)]
    pub unknown: Vec<IpAddr>,
    #[serde(default)]
    pub internal: Vec<IpNet>,
    pub skip: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    #[serde(default)]
    pub capture: Vec<Entry>,
}

impl Truth {
    /// The entries for the captures in `../shared/data/flows` (`src/eval_truth.toml`).
    pub fn builtin() -> Result<Truth> {
        toml::from_str(include_str!("eval_truth.toml")).context("the built-in eval_truth.toml")
    }

    /// A truth file's entries, taking precedence over these.
    pub fn with_file(mut self, path: &Path) -> Result<Truth> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut t: Truth = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        t.capture.append(&mut self.capture);
        Ok(t)
    }

    fn find(&self, capture: &str) -> Option<&Entry> {
        let capture = capture.replace('\\', "/");
        // A file's entry holds for it gzipped or zipped too.
        let capture =
            [".gz", ".gzip", ".zip"].iter().find_map(|x| capture.strip_suffix(x)).unwrap_or(&capture);
        self.capture.iter().find(|e| {
            let p = e.path.trim_end_matches('/');
            capture == p || capture.ends_with(&format!("/{p}"))
        })
    }
}

/// One capture: its name (path) and files.
#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// Documentation and labeller configuration, not captures.
fn not_a_capture(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with('.')
        || lower.starts_with("readme")
        || lower.starts_with("license")
        || lower.starts_with("provenance")
        || lower == "labels.config"
        || lower.ends_with(".md")
        || lower.ends_with(".txt")
}

/// `conn.log`, `dns.log.labeled`, and Zeek's archived `conn.00:00:00-01:00:00.log.gz`.
fn is_zeek_log(name: &str) -> bool {
    (name.starts_with("conn.") || name.starts_with("dns.")) && name.contains(".log")
}

/// The captures under `roots`, in path order.
pub fn captures(roots: &[PathBuf]) -> Result<Vec<Capture>> {
    let mut files = Vec::new();
    for r in roots {
        walk(r, &mut files).with_context(|| format!("reading {}", r.display()))?;
    }
    files.sort();
    let mut zeek: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if not_a_capture(&name) {
            continue;
        }
        match f.parent() {
            Some(dir) if is_zeek_log(&name) => zeek.entry(dir.to_path_buf()).or_default().push(f),
            _ => out.push(Capture { name: f.display().to_string(), files: vec![f] }),
        }
    }
    out.extend(zeek.into_iter().map(|(dir, files)| Capture { name: dir.display().to_string(), files }));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            walk(&e?.path(), out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// What a capture's label says of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Malicious,
    Benign,
    /// Background, unknown, empty.
    Other,
}

fn class(label: &str) -> Class {
    let l = label.trim().to_ascii_lowercase();
    let l = l.strip_prefix("flow=").unwrap_or(&l);
    // CTU-13's `To-Botnet-…` and `To-Normal-…` describe a flow's responder: its originator
    // is whoever called the bot or the normal host (a scanner from the Internet, the
    // university's DNS server), known neither infected nor clean by that line.
    if l.starts_with("to-") {
        return Class::Other;
    }
    if l.starts_with("malicious") || l.contains("botnet") || l.starts_with("malware") {
        Class::Malicious
    } else if l.starts_with("benign") || l.contains("normal") {
        Class::Benign
    } else {
        Class::Other
    }
}

/// What a capture's labels say of its hosts: per originator (with Zeek's `local_orig`),
/// how many lines of each class it originated.
#[derive(Debug, Default)]
struct Labels {
    hosts: BTreeMap<(IpAddr, Option<bool>), LabelCount>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LabelCount {
    malicious: u64,
    benign: u64,
    other: u64,
}

impl Labels {
    fn add(&mut self, ip: IpAddr, local: Option<bool>, c: Class) {
        let n = self.hosts.entry((ip, local)).or_default();
        match c {
            Class::Malicious => n.malicious += 1,
            Class::Benign => n.benign += 1,
            Class::Other => n.other += 1,
        }
    }

    fn merge(&mut self, other: Labels) {
        for (k, v) in other.hosts {
            let n = self.hosts.entry(k).or_default();
            n.malicious += v.malicious;
            n.benign += v.benign;
            n.other += v.other;
        }
    }
}

/// The labels of a labelled Zeek log (TSV or JSON lines) or Argus flow file, line by line,
/// so a capture of any size is read in the memory of its hosts; `None` when the file has no
/// label column or no line fills it in.
fn read_labels(lines: &mut dyn LineSource) -> Option<Labels> {
    let mut out = Labels::default();
    let mut any = false;
    let mut json: Option<bool> = None;
    let mut cols: Option<Columns> = None;
    let mut zeek = false;
    while let Some(line) = lines.next_line() {
        if line.cut {
            continue;
        }
        let l = String::from_utf8_lossy(line.bytes);
        if l.trim().is_empty() {
            continue;
        }
        if *json.get_or_insert_with(|| l.trim_start().starts_with('{')) {
            let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(&l) else {
                continue;
            };
            let Some(ip) = o.get("id.orig_h").and_then(|v| v.as_str()).and_then(|s| s.parse().ok()) else {
                continue;
            };
            let label = o.get("label").and_then(|v| v.as_str()).and_then(filled);
            any |= label.is_some();
            out.add(ip, o.get("local_orig").and_then(|v| v.as_bool()), label.map_or(Class::Other, class));
            continue;
        }
        if line.number == 1 && l.starts_with('#') {
            zeek = true;
        }
        // A comment after a CSV header is no data.
        if !zeek && cols.is_some() && l.starts_with('#') {
            continue;
        }
        if zeek && l.starts_with('#') {
            if let Some(fields) = l.strip_prefix("#fields") {
                // IoT-23's logs join their last three columns with three spaces instead of a
                // tab (`tunnel_parents   label   detailed-label`, `-   Malicious   C&C`).
                let (mut joined, mut names) = (Vec::new(), Vec::new());
                for f in fields.trim_start_matches('\t').split('\t') {
                    let parts: Vec<&str> = f.split("   ").map(str::trim).filter(|p| !p.is_empty()).collect();
                    joined.push(parts.len().max(1));
                    names.extend(parts.into_iter().map(str::to_string));
                }
                cols = Some(columns('\t', joined, &names)?);
            }
            continue;
        }
        let Some(Columns { sep, joined, orig, label, local }) = &cols else {
            if zeek {
                continue;
            }
            let sep = if l.contains('\t') { '\t' } else { ',' };
            let names: Vec<String> = l.split(sep).map(|c| c.trim().to_string()).collect();
            cols = Some(columns(sep, vec![1; names.len()], &names)?);
            continue;
        };
        let f: Vec<&str> = if joined.iter().all(|n| *n == 1) {
            l.split(*sep).collect()
        } else {
            l.split(*sep)
                .enumerate()
                .flat_map(|(i, v)| match joined.get(i) {
                    Some(n) if *n > 1 => v.splitn(*n, "   ").map(str::trim).collect::<Vec<_>>(),
                    _ => vec![v],
                })
                .collect()
        };
        let Some(ip) = f.get(*orig).and_then(|s| s.trim().parse().ok()) else { continue };
        let local = local.and_then(|i| f.get(i)).and_then(|v| match *v {
            "T" => Some(true),
            "F" => Some(false),
            _ => None,
        });
        let label = f.get(*label).and_then(|v| filled(v));
        any |= label.is_some();
        out.add(ip, local, label.map_or(Class::Other, class));
    }
    // A label column nobody filled in (Slips' unlabelled Argus files) is no labelling.
    any.then_some(out)
}

/// A labelled log's columns, once its header is read.
struct Columns {
    sep: char,
    /// Per separated column, how many columns it holds (IoT-23 joins three).
    joined: Vec<usize>,
    orig: usize,
    label: usize,
    local: Option<usize>,
}

/// Where a header's originator, label and `local_orig` columns are; `None` without the
/// first two.
fn columns(sep: char, joined: Vec<usize>, names: &[String]) -> Option<Columns> {
    let at = |want: &[&str]| names.iter().position(|c| want.contains(&c.as_str()));
    Some(Columns {
        sep,
        joined,
        orig: at(&["id.orig_h", "SrcAddr"])?,
        label: at(&["label", "Label"])?,
        local: at(&["local_orig"]),
    })
}

/// A label as written, unless it is empty or Zeek's unset (`-`) or empty-set (`(empty)`) mark.
fn filled(v: &str) -> Option<&str> {
    Some(v.trim()).filter(|v| !matches!(*v, "" | "-" | "(empty)"))
}

/// A flagged client, as the evaluation reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    pub client: IpAddr,
    /// The detectors that flagged it (`beacon`, `nx_burst`, `dga`).
    pub reasons: Vec<String>,
    /// Seconds from the capture's first record to the first evidence of the earliest
    /// finding (the detectors run over the whole capture; a live sensor flags the client at
    /// its next flush after enough evidence).
    pub first_evidence_secs: f64,
    /// Seconds from the capture's first record to the earliest end of the capture at which
    /// the detectors, run over the records up to it, flag the client: what a sensor running
    /// them continuously would take (found by bisection on the records' times, to 1 s or a
    /// thousandth of the capture). Set for infected clients found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_after_secs: Option<f64>,
    pub detail: String,
}

/// A host's records in a capture.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Evidence {
    /// Flows it originated.
    pub flows: u64,
    /// DNS records of its queries.
    pub dns: u64,
    /// Of its lines, those the capture's labels call malicious.
    pub labelled_malicious: u64,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} flows, {} DNS records", self.flows, self.dns)?;
        if self.labelled_malicious > 0 {
            write!(f, "; {} lines labelled malicious", self.labelled_malicious)?;
        }
        Ok(())
    }
}

/// One capture's score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    pub capture: String,
    pub records: u64,
    pub rejects: u64,
    /// Files of the capture botwatch could not read, with why.
    pub unreadable: Vec<String>,
    /// Why the capture is not scored, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Where the truth came from: `labels`, `truth file`, or both.
    pub truth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub infected: Vec<IpAddr>,
    pub found: Vec<Flag>,
    pub missed: Vec<IpAddr>,
    /// What each missed host left in the capture, to tell a detector's miss from a host
    /// the capture shows doing nothing.
    pub missed_evidence: BTreeMap<IpAddr, Evidence>,
    pub benign_hosts: usize,
    pub benign_flagged: Vec<Flag>,
    pub internet_hosts: usize,
    pub internet_flagged: Vec<Flag>,
    /// Internal hosts whose role is left open (by the truth file, or, in a labelled capture,
    /// with no line labelled benign or malicious), not scored either way.
    pub unknown_hosts: usize,
    /// Of those, the ones flagged.
    pub unknown_flagged: Vec<Flag>,
}

/// Runs the detectors over one capture and scores them.
pub fn evaluate(cap: &Capture, truth: &Truth, cfg: &SensorSection, limits: &Limits) -> Score {
    let entry = truth.find(&cap.name);
    let mut score =
        Score { capture: cap.name.clone(), note: entry.and_then(|e| e.note.clone()), ..Default::default() };
    if let Some(why) = entry.and_then(|e| e.skip.clone()) {
        score.skipped = Some(why);
        return score;
    }
    let mut section = cfg.clone();
    // The capture's own network, as its operator would configure it.
    if let Some(e) = entry
        && !e.internal.is_empty()
    {
        section.internal = e.internal.clone();
    }
    let mut scanner = Scanner::new(Arc::new(Matcher::empty()), &section, true).collect_hosts();
    let mut labelled = Labels::default();
    let mut has_labels = false;
    // Every file is streamed from disk, for its labels and then through the detectors, so a
    // capture of any size is read in the detectors' bounded memory.
    for f in &cap.files {
        let got = sensor::each_file(f, limits, None, &|_| {}, |sensor::Inside { head, rest, .. }| {
            let mut lines = botwatch_telemetry::lines::ReadLines::new(std::io::BufReader::new(
                std::io::Read::chain(std::io::Cursor::new(head), rest),
            ));
            Ok(read_labels(&mut lines))
        });
        for labels in got.into_iter().flatten().flatten().flatten() {
            has_labels = true;
            labelled.merge(labels);
        }
        for scanned in sensor::scan_path(&mut scanner, f, limits, None, &|_| {}) {
            match scanned {
                Ok(s) => {
                    score.records += s.records;
                    score.rejects += s.rejects;
                }
                Err(e) => score.unreadable.push(format!("{e:#}")),
            }
        }
    }
    let hosts: BTreeMap<IpAddr, HostSeen> = scanner.hosts.take().unwrap_or_default();
    let home = scanner.home();
    let flagged = scanner.finish();
    let configured: &[IpNet] = &section.internal;
    // Who is inside, as the detectors decide it: the truth's network (else `[sensor]
    // internal`), else the record's word, else the private ranges and the capture's own
    // public /16 (CTU-13's 147.32/16).
    let internal = |ip: IpAddr, local: Option<bool>| {
        if never_a_host(ip) {
            false
        } else if !configured.is_empty() {
            configured.iter().any(|n| n.contains(&ip))
        } else {
            local.unwrap_or_else(|| private(ip) || home.is_some_and(|h| h.contains(&ip)))
        }
    };
    let mut infected: BTreeSet<IpAddr> = BTreeSet::new();
    for ((ip, local), n) in &labelled.hosts {
        if n.malicious > 0 && internal(*ip, *local) {
            infected.insert(*ip);
        }
    }
    let listed = entry.map_or(&[][..], |e| &e.infected);
    infected.extend(listed.iter().copied());
    score.truth = match (has_labels, !listed.is_empty() || entry.is_some()) {
        (true, true) => "labels and truth file",
        (true, false) => "labels",
        (false, true) => "truth file",
        (false, false) => {
            score.skipped = Some("no per-flow labels and no entry in the truth file".into());
            return score;
        }
    }
    .to_string();
    let mut unknown: BTreeSet<IpAddr> =
        entry.map(|e| e.unknown.iter().copied().collect()).unwrap_or_default();
    // In a labelled capture only a host with a line labelled benign is known benign: one
    // labelled only `Background` or `Unknown` (the labeller's "not known": CTU-13's whole
    // university network), or not at all, is left open, not counted benign.
    if has_labels {
        let benign: BTreeSet<IpAddr> =
            labelled.hosts.iter().filter(|(_, n)| n.benign > 0).map(|((ip, _), _)| *ip).collect();
        for (ip, h) in &hosts {
            if !infected.contains(ip) && !benign.contains(ip) && internal(*ip, h.local) {
                unknown.insert(*ip);
            }
        }
    }
    score.unknown_hosts = hosts.keys().filter(|ip| unknown.contains(ip) && !infected.contains(ip)).count();
    let start = hosts.values().map(|h| h.first).min();
    let mut by_client: BTreeMap<IpAddr, Vec<&Flagged>> = BTreeMap::new();
    for f in &flagged {
        by_client.entry(f.client).or_default().push(f);
    }
    let flag = |client: IpAddr, fs: &[&Flagged]| {
        let first = fs.iter().map(|f| f.first_seen).min();
        Flag {
            client,
            reasons: fs.iter().map(|f| f.reason.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
            first_evidence_secs: match (first, start) {
                (Some(f), Some(s)) => ((f.0 - s.0).max(0) as f64 / 1e6 * 10.0).round() / 10.0,
                _ => 0.0,
            },
            detected_after_secs: None,
            detail: fs.first().map(|f| f.detail.clone()).unwrap_or_default(),
        }
    };
    let local_of = |ip: IpAddr| hosts.get(&ip).and_then(|h| h.local);
    for (ip, h) in &hosts {
        if infected.contains(ip) || unknown.contains(ip) || never_a_host(*ip) {
            continue;
        }
        if internal(*ip, h.local) {
            score.benign_hosts += 1;
        } else {
            score.internet_hosts += 1;
        }
    }
    let end = hosts.values().map(|h| h.last).max();
    let flags_at = |client: IpAddr, until: Timestamp| {
        let mut s = Scanner::new(Arc::new(Matcher::empty()), &section, true).until(until);
        for f in &cap.files {
            let _ = sensor::scan_path(&mut s, f, limits, None, &|_| {});
        }
        s.finish().iter().any(|f| f.client == client)
    };
    for ip in &infected {
        match by_client.get(ip) {
            Some(fs) => {
                let mut f = flag(*ip, fs);
                if let (Some(s), Some(e)) = (start, end) {
                    f.detected_after_secs = Some(detection_time(s, e, |t| flags_at(*ip, t)));
                }
                score.found.push(f)
            }
            None => {
                score.missed.push(*ip);
                let h = hosts.get(ip);
                let evidence = Evidence {
                    flows: h.map_or(0, |h| h.flows),
                    dns: h.map_or(0, |h| h.dns),
                    labelled_malicious: labelled
                        .hosts
                        .iter()
                        .filter(|((l, _), _)| l == ip)
                        .map(|(_, n)| n.malicious)
                        .sum(),
                };
                score.missed_evidence.insert(*ip, evidence);
            }
        }
    }
    for (ip, fs) in &by_client {
        if infected.contains(ip) {
            continue;
        }
        let f = flag(*ip, fs);
        if unknown.contains(ip) {
            score.unknown_flagged.push(f);
        } else if internal(*ip, local_of(*ip)) {
            score.benign_flagged.push(f);
        } else {
            score.internet_flagged.push(f);
        }
    }
    score.infected = infected.into_iter().collect();
    score
}

/// Seconds from `start` to the earliest cut-off at which `flags(cut)` holds, by bisection
/// between `start` and `end` (where it is known to hold), to 1 s or a thousandth of the span.
fn detection_time(start: Timestamp, end: Timestamp, mut flags: impl FnMut(Timestamp) -> bool) -> f64 {
    let (mut lo, mut hi) = (start.0 - 1, end.0);
    let step = ((end.0 - start.0) / 1000).max(1_000_000);
    while hi - lo > step {
        let mid = lo + (hi - lo) / 2;
        if flags(Timestamp(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    ((hi - start.0).max(0) as f64 / 1e6 * 10.0).round() / 10.0
}

/// The figures over every scored capture.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub captures: usize,
    pub skipped: usize,
    pub infected: usize,
    pub found: usize,
    pub missed: usize,
    pub benign_hosts: usize,
    pub benign_flagged: usize,
    pub internet_hosts: usize,
    pub internet_flagged: usize,
    /// Internal hosts left open (truth file, or no benign or malicious label), not scored.
    pub unknown_hosts: usize,
    pub unknown_flagged: usize,
}

pub fn totals(scores: &[Score]) -> Totals {
    let mut t = Totals::default();
    for s in scores {
        if s.skipped.is_some() {
            t.skipped += 1;
            continue;
        }
        t.captures += 1;
        t.infected += s.infected.len();
        t.found += s.found.len();
        t.missed += s.missed.len();
        t.benign_hosts += s.benign_hosts;
        t.benign_flagged += s.benign_flagged.len();
        t.internet_hosts += s.internet_hosts;
        t.internet_flagged += s.internet_flagged.len();
        t.unknown_hosts += s.unknown_hosts;
        t.unknown_flagged += s.unknown_flagged.len();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_time_is_the_earliest_cut_off_that_flags() {
        let s = Timestamp(1_000_000_000);
        let e = Timestamp(s.0 + 600_000_000);
        // Flagged from 137.4 s on: found to within a second, never before.
        let t = detection_time(s, e, |t| t.0 - s.0 >= 137_400_000);
        assert!((137.4..=138.5).contains(&t), "{t}");
        assert!(detection_time(s, e, |_| true) <= 1.0);
    }

    #[test]
    fn the_builtin_truth_reads_and_finds_captures_by_path_end() {
        let t = Truth::builtin().unwrap();
        assert!(t.find("/x/flows/slips_dataset/test4-malicious.binetflow").is_some());
        assert!(t.find("/x/flows/stratosphere_zeek/003-zeek-scenario-malicious").is_some());
        assert!(t.find("/x/flows/slips_dataset/test5-mixed.binetflow").is_none());
        assert!(t.find("/x/flows/other-test4-malicious.binetflow").is_none());
        assert!(t.find("/x/flows/slips_dataset/test4-malicious.binetflow.gz").is_some());
    }

    #[test]
    fn a_labelled_capture_of_a_public_network_is_scored_inside_its_own_16() {
        // CTU-13's shape: the university's public 147.32/16, no truth entry; the bot beacons,
        // a labelled normal host browses, the Internet calls in.
        let mut csv = String::from(
            "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,SrcBytes,Label\n",
        );
        for i in 0..40 {
            let t = |s: u32| format!("2011/08/10 10:{:02}:{:02}.000000", s / 60, s % 60);
            csv += &format!(
                "{},0.5,tcp,147.32.84.165,{},   ->,91.121.1.9,80,FSPA_FSPA,0,0,8,900,400,flow=From-Botnet-V42-TCP-CC1\n",
                t(i * 30),
                1025 + i
            );
            csv += &format!(
                "{},0.5,tcp,147.32.84.170,{},   ->,{}.20.30.40,443,FSPA_FSPA,0,0,12,9000,900,flow=From-Normal-V42-HTTPS\n",
                t(i * 30 + 7),
                2025 + i,
                20 + i
            );
            csv += &format!(
                "{},0.1,tcp,{}.9.9.9,{},   ->,147.32.84.59,6881,S_RA,0,0,2,120,60,flow=Background-Established\n",
                t(i * 30 + 11),
                60 + i,
                3025 + i
            );
        }
        // A host of the network only ever labelled Background: the labeller does not know it.
        csv += "2011/08/10 10:30:00.000000,0.1,udp,147.32.84.59,6881,   ->,60.9.9.9,6881,CON,0,0,2,120,60,flow=Background-UDP\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture20110810.binetflow");
        std::fs::write(&path, csv).unwrap();
        let caps = captures(&[path]).unwrap();
        let s = evaluate(&caps[0], &Truth::default(), &SensorSection::default(), &Limits::default());
        assert_eq!(s.infected, ["147.32.84.165".parse::<IpAddr>().unwrap()], "{s:#?}");
        assert_eq!(s.found.iter().map(|f| f.client).collect::<Vec<_>>(), s.infected);
        // The normal host and the torrent client the Internet calls are inside; the callers not.
        assert_eq!((s.benign_hosts, s.benign_flagged.len(), s.unknown_hosts), (1, 0, 1), "{s:#?}");
        assert_eq!((s.internet_hosts, s.internet_flagged.len()), (40, 0), "{s:#?}");
    }

    #[test]
    fn labels_name_the_infected_originators() {
        assert_eq!(class("flow=From-Botnet-V42-UDP-DNS"), Class::Malicious);
        assert_eq!(class("flow=Malware-TCP"), Class::Malicious);
        assert_eq!(class("Malicious"), Class::Malicious);
        assert_eq!(class("flow=From-Normal-V42-Grill"), Class::Benign);
        assert_eq!(class("flow=Normal-V52-Stribika-Web"), Class::Benign);
        assert_eq!(class("flow=To-Botnet-V52-UDP-Attempt"), Class::Other);
        assert_eq!(class("flow=To-Normal-V42-TCP"), Class::Other);
        assert_eq!(class("Benign"), Class::Benign);
        assert_eq!(class("flow=Background-UDP-DNS"), Class::Other);
        assert_eq!(class("(empty)"), Class::Other);
        let zeek = b"#separator \\x09\n#fields\tts\tid.orig_h\tid.resp_h\tlocal_orig\tlabel\n\
            1.0\t10.0.0.5\t8.8.8.8\tT\tMalicious\n1.0\t9.9.9.9\t10.0.0.5\tF\tMalicious\n";
        let l = labels(zeek).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[&("9.9.9.9".parse().unwrap(), Some(false))], count(1, 0, 0));
        assert_eq!(l[&("10.0.0.5".parse().unwrap(), Some(true))], count(1, 0, 0));
        // IoT-23's joined last columns.
        let iot23 = b"#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.resp_h\ttunnel_parents   label   detailed-label\n\
            #types\ttime\tstring\taddr\taddr\tset[string]   string   string\n\
            1545403816.962094\tC1\t192.168.1.195\t185.244.25.235\t-   Malicious   C&C\n\
            1545403824.181240\tC2\t192.168.1.196\t185.244.25.235\t(empty)   Benign   -\n\
            1545403825.181240\tC3\t192.168.1.196\t185.244.25.235\t(empty)   Benign   -\n";
        let l = labels(iot23).unwrap();
        assert_eq!(l[&("192.168.1.195".parse().unwrap(), None)], count(1, 0, 0));
        assert_eq!(l[&("192.168.1.196".parse().unwrap(), None)], count(0, 2, 0));
        let argus =
            b"StartTime,SrcAddr,DstAddr,Label\n2018/01/01 00:00:00,10.0.2.15,8.8.8.8,flow=Malware-UDP-DNS\n\
            2018/01/01 00:00:01,10.0.2.15,8.8.8.8,flow=Background\n";
        assert_eq!(labels(argus).unwrap()[&("10.0.2.15".parse().unwrap(), None)], count(1, 0, 1));
        assert!(labels(b"StartTime,SrcAddr,DstAddr\n").is_none());
        assert!(
            labels(b"StartTime,SrcAddr,DstAddr,Label\n2018/01/01 00:00:00,10.0.2.15,8.8.8.8,\n").is_none()
        );
        let json = br#"{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.5","local_orig":true,"label":"Malicious"}
{"ts":2.0,"uid":"C2","id.orig_h":"10.0.0.6","label":"Benign"}
"#;
        let l = labels(json).unwrap();
        assert_eq!(l[&("10.0.0.5".parse().unwrap(), Some(true))], count(1, 0, 0));
        assert_eq!(l[&("10.0.0.6".parse().unwrap(), None)], count(0, 1, 0));
        assert!(labels(br#"{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.5"}"#).is_none());
        assert!(labels(br#"{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.5","label":"-"}"#).is_none());
    }

    /// The labels of a file read through a 7-byte buffer: lines cross many reads.
    fn labels(data: &[u8]) -> Option<BTreeMap<(IpAddr, Option<bool>), LabelCount>> {
        let mut lines = botwatch_telemetry::lines::ReadLines::new(std::io::BufReader::with_capacity(7, data));
        read_labels(&mut lines).map(|l| l.hosts)
    }

    fn count(malicious: u64, benign: u64, other: u64) -> LabelCount {
        LabelCount { malicious, benign, other }
    }
}

//! Federated statistics: what a node tells its peers about infections in its country,
//! never who is infected.
//!
//! A release is a set of cells (day × country × ASN × family): infected addresses, new
//! cases, the median remediation time. Before anything leaves:
//! - **k-anonymity**: a cell with fewer than `k` infected addresses (default 10) is
//!   suppressed whole, so no cell points at a handful of subscribers;
//! - **differential privacy** when `epsilon` is set: counts get two-sided geometric noise
//!   (the discrete Laplace mechanism; one address changes one cell's count by one, so the
//!   sensitivity is 1), clamped at zero; the median remediation time is withheld from
//!   noised releases (a median has no bounded sensitivity without a bound on the times).
//!   Each release records the epsilon it spent.
//!
//! Cells travel as STIX 2.1 objects of a new type, `x-botwatch-infection-aggregate`,
//! declared by a published extension definition, so any TAXII server can carry them.

use crate::gate::Label;
use crate::ids;
use crate::stix::{Obj, REFERENCE_TIME};
use botwatch_model::Tlp;
use serde::{Deserialize, Serialize};

pub const OBJECT_TYPE: &str = "x-botwatch-infection-aggregate";
pub const EXTENSION_VERSION: &str = "1.0";
/// Where the extension's JSON schema is published (in the repository).
pub const SCHEMA_URL: &str =
    "https://github.com/botwatch/botwatch/blob/main/docs/stix/x-botwatch-infection-aggregate.json";

/// One cell as a node computes it, before protection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub day: String,
    pub cc: String,
    pub asn: u32,
    pub family: String,
    pub infected: u64,
    pub new_cases: u64,
    pub remediation_hours_median: Option<f64>,
    pub bar_version: Option<String>,
    pub compliance: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Privacy {
    /// Cells with fewer infected addresses are suppressed.
    pub k: u64,
    /// Per-release epsilon; `None`: no noise.
    pub epsilon: Option<f64>,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy { k: 10, epsilon: None }
    }
}

#[derive(Debug, Clone)]
pub struct Release {
    pub cells: Vec<Cell>,
    pub suppressed: u64,
    pub epsilon: Option<f64>,
}

/// A source of uniform random 64-bit words (the OS's, in production).
pub trait Random {
    fn next_u64(&mut self) -> u64;
}

/// The operating system's random numbers (ring's `SystemRandom`).
pub struct OsRandom(ring::rand::SystemRandom);

impl Default for OsRandom {
    fn default() -> Self {
        OsRandom(ring::rand::SystemRandom::new())
    }
}

impl Random for OsRandom {
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        // The OS generator failing is not recoverable; a fixed value would silently remove
        // the noise, so stop instead.
        ring::rand::SecureRandom::fill(&self.0, &mut b).expect("the OS random generator failed");
        u64::from_le_bytes(b)
    }
}

/// Uniform in (0, 1].
fn unit(r: &mut dyn Random) -> f64 {
    ((r.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Two-sided geometric noise with P(z) ∝ exp(-ε|z|): the difference of two geometric
/// variables with success probability 1 - e^{-ε}.
pub fn geometric_noise(epsilon: f64, r: &mut dyn Random) -> i64 {
    let alpha = (-epsilon).exp();
    let geo = |r: &mut dyn Random| -> i64 { (unit(r).ln() / alpha.ln()).floor().min(1e12) as i64 };
    if alpha <= 0.0 {
        return 0;
    }
    geo(r) - geo(r)
}

/// Applies k-anonymity and, when set, differential privacy.
pub fn protect(cells: Vec<Cell>, p: Privacy, r: &mut dyn Random) -> Release {
    let mut out = Vec::with_capacity(cells.len());
    let mut suppressed = 0;
    for mut c in cells {
        if c.infected < p.k.max(1) {
            suppressed += 1;
            continue;
        }
        if let Some(eps) = p.epsilon {
            c.infected = (c.infected as i64 + geometric_noise(eps, r)).max(0) as u64;
            c.new_cases = (c.new_cases as i64 + geometric_noise(eps, r)).max(0) as u64;
            c.remediation_hours_median = None;
        }
        out.push(c);
    }
    Release { cells: out, suppressed, epsilon: p.epsilon }
}

/// The project's identity: the creator of the extension definition, the same on every node.
pub fn project_identity() -> serde_json::Value {
    serde_json::json!({
        "type": "identity", "spec_version": "2.1",
        "id": ids::project_identity_id(),
        "created": REFERENCE_TIME, "modified": REFERENCE_TIME,
        "name": "botwatch project", "identity_class": "organization",
    })
}

pub fn extension_id() -> String {
    ids::sdo("extension-definition", &[OBJECT_TYPE, EXTENSION_VERSION])
}

pub fn extension_definition() -> serde_json::Value {
    ids::extension_definition(
        OBJECT_TYPE,
        EXTENSION_VERSION,
        "botwatch infection aggregate",
        "Infected addresses, new cases and median remediation time per day, country, AS and malware family, as one national node publishes them to its peers (k-anonymous, optionally differentially private).",
    )
}

/// The reference objects every release starts with.
pub fn reference_objects() -> Vec<Obj> {
    let l = Label { tlp: Some(Tlp::Clear), ..Default::default() };
    vec![Obj::from_value(project_identity(), l), Obj::from_value(extension_definition(), l)]
}

/// One cell as a STIX object. Its id names the node, day, country, ASN and family, so a
/// new release of the same cell is a new version of the same object.
pub fn cell_object(
    c: &Cell,
    producer_identity: &str,
    node: &str,
    p: Privacy,
    released: &str,
    tlp: Tlp,
) -> Obj {
    let id =
        ids::sdo(OBJECT_TYPE, &[node, &c.day, &c.cc, &c.asn.to_string(), &c.family.to_ascii_lowercase()]);
    let mut v = serde_json::json!({
        "type": OBJECT_TYPE, "spec_version": "2.1", "id": id,
        "created_by_ref": producer_identity,
        "created": format!("{}T00:00:00.000Z", c.day), "modified": released,
        "day": c.day, "country": c.cc, "asn": c.asn, "malware_family": c.family,
        "infected_addresses": c.infected, "new_cases": c.new_cases,
        "k_anonymity": p.k,
        "object_marking_refs": [crate::tlp::marking_id(tlp)],
        "extensions": { extension_id(): { "extension_type": "new-sdo" } },
    });
    if let Some(m) = c.remediation_hours_median {
        v["remediation_hours_median"] = m.into();
    }
    if let Some(e) = p.epsilon {
        v["noise"] = serde_json::json!({"mechanism": "geometric", "epsilon": e});
    }
    if let Some(b) = &c.bar_version {
        v["bar_version"] = b.clone().into();
    }
    if let Some(cmp) = &c.compliance {
        v["compliance"] = cmp.clone();
    }
    Obj::from_value(v, Label { tlp: Some(tlp), ..Default::default() })
}

/// A cell back from its STIX object (`None` when it is not one).
pub fn cell_from_object(v: &serde_json::Value) -> Option<Cell> {
    if v.get("type")?.as_str()? != OBJECT_TYPE {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(Cell {
        day: s("day")?,
        cc: s("country").unwrap_or_default(),
        asn: v.get("asn").and_then(|x| x.as_u64()).unwrap_or(0) as u32,
        family: s("malware_family").unwrap_or_default(),
        infected: v.get("infected_addresses")?.as_u64()?,
        new_cases: v.get("new_cases").and_then(|x| x.as_u64()).unwrap_or(0),
        remediation_hours_median: v.get("remediation_hours_median").and_then(|x| x.as_f64()),
        bar_version: s("bar_version"),
        compliance: v.get("compliance").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u64);
    impl Random for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0
        }
    }

    fn cell(infected: u64) -> Cell {
        Cell {
            day: "2026-12-01".into(),
            cc: "NL".into(),
            asn: 1136,
            family: "mirai".into(),
            infected,
            new_cases: 3,
            remediation_hours_median: Some(12.0),
            bar_version: None,
            compliance: None,
        }
    }

    #[test]
    fn small_cells_are_suppressed() {
        let r = protect(vec![cell(9), cell(10), cell(500)], Privacy::default(), &mut Fixed(1));
        assert_eq!(r.suppressed, 1);
        assert_eq!(r.cells.iter().map(|c| c.infected).collect::<Vec<_>>(), vec![10, 500]);
    }

    #[test]
    fn noise_is_centred_with_the_right_spread() {
        let mut r = Fixed(7);
        let eps = 0.5f64;
        let n = 200_000;
        let xs: Vec<i64> = (0..n).map(|_| geometric_noise(eps, &mut r)).collect();
        let mean = xs.iter().sum::<i64>() as f64 / n as f64;
        let var = xs.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let a = (-eps).exp();
        let expected = 2.0 * a / (1.0 - a).powi(2);
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!((var - expected).abs() / expected < 0.05, "var {var} vs {expected}");
    }

    #[test]
    fn cells_round_trip_through_stix() {
        let c = cell(42);
        let o =
            cell_object(&c, "identity--x", "A", Privacy::default(), "2026-12-02T00:00:00.000Z", Tlp::Green);
        let v: serde_json::Value = serde_json::from_str(&o.body).unwrap();
        assert_eq!(cell_from_object(&v), Some(c));
    }
}

/// What the global view groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Day,
    Country,
    Family,
    Asn,
    Node,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "day" => By::Day,
            "country" => By::Country,
            "family" => By::Family,
            "asn" => By::Asn,
            "node" => By::Node,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeTotals {
    pub node: String,
    pub cells: u64,
    pub infected: u64,
    pub new_cases: u64,
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    /// Some of its figures carry differential-privacy noise.
    pub noised: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GlobalRow {
    pub key: String,
    pub infected: u64,
    pub new_cases: u64,
    /// Infected addresses per node: the provenance of the sum.
    pub by_node: std::collections::BTreeMap<String, u64>,
}

/// One carrier's compliance as a node published it, with the bar version it was measured
/// against: carriers on the same version compare across countries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CarrierRow {
    pub node: String,
    pub carrier: String,
    pub bar_version: Option<String>,
    pub verdict: Option<String>,
    pub infections_per_1000: Option<f64>,
}

/// Every node's published figures summed, with each node's share.
#[derive(Debug, Clone, Serialize)]
pub struct GlobalView {
    pub by: By,
    pub nodes: Vec<NodeTotals>,
    /// Carriers by bar version, then node.
    pub carriers: Vec<CarrierRow>,
    pub rows: Vec<GlobalRow>,
    pub infected: u64,
    pub new_cases: u64,
}

pub fn global(cells: &[botwatch_store::share::FederationCell], by: By) -> GlobalView {
    use std::collections::BTreeMap;
    let mut nodes: BTreeMap<&str, NodeTotals> = BTreeMap::new();
    let mut rows: BTreeMap<String, GlobalRow> = BTreeMap::new();
    for c in cells {
        let n =
            nodes.entry(&c.node).or_insert_with(|| NodeTotals { node: c.node.clone(), ..Default::default() });
        n.cells += 1;
        n.infected += c.infected;
        n.new_cases += c.new_cases;
        n.noised |= c.noised;
        if n.first_day.as_deref().is_none_or(|d| c.day.as_str() < d) {
            n.first_day = Some(c.day.clone());
        }
        if n.last_day.as_deref().is_none_or(|d| c.day.as_str() > d) {
            n.last_day = Some(c.day.clone());
        }
        let key = match by {
            By::Day => c.day.clone(),
            By::Country => c.cc.clone(),
            By::Family => c.family.clone(),
            By::Asn => c.asn.to_string(),
            By::Node => c.node.clone(),
        };
        let r = rows.entry(key.clone()).or_insert_with(|| GlobalRow {
            key,
            infected: 0,
            new_cases: 0,
            by_node: BTreeMap::new(),
        });
        r.infected += c.infected;
        r.new_cases += c.new_cases;
        *r.by_node.entry(c.node.clone()).or_default() += c.infected;
    }
    let nodes: Vec<NodeTotals> = nodes.into_values().collect();
    let mut carriers: Vec<CarrierRow> = Vec::new();
    for c in cells {
        let Some(cmp) = &c.compliance else { continue };
        let Some(name) = cmp.get("carrier").and_then(|v| v.as_str()) else { continue };
        let row = CarrierRow {
            node: c.node.clone(),
            carrier: name.to_string(),
            bar_version: c.bar_version.clone(),
            verdict: cmp.get("verdict").and_then(|v| v.as_str()).map(str::to_string),
            infections_per_1000: cmp.get("infections_per_1000").and_then(|v| v.as_f64()),
        };
        if !carriers.contains(&row) {
            carriers.push(row);
        }
    }
    carriers
        .sort_by(|a, b| (&a.bar_version, &a.node, &a.carrier).cmp(&(&b.bar_version, &b.node, &b.carrier)));
    GlobalView {
        by,
        carriers,
        infected: nodes.iter().map(|n| n.infected).sum(),
        new_cases: nodes.iter().map(|n| n.new_cases).sum(),
        nodes,
        rows: rows.into_values().collect(),
    }
}
